#!/usr/bin/env python3
"""syn_retransmit.py PORT: make the kernel retransmit a SYN.

Connects from 127.0.0.1 to 192.0.2.1:PORT (TEST-NET-1) through a host route on the
loopback device: the SYN comes back in on lo for an address that is not local, and a host
that does not forward drops it without an answer, so the sender retransmits it after the
initial RTO (1 s) and again 2 s later. Waits 3.5 s for that, then closes the socket and removes the route. Needs
root (the route); a route already there is left alone."""
import socket
import subprocess
import sys
import time

ADDRESS = "192.0.2.1"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    port = int(sys.argv[1])
    added = subprocess.run(["ip", "route", "add", ADDRESS + "/32", "dev", "lo", "src", "127.0.0.1"]).returncode == 0
    try:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        c.connect_ex((ADDRESS, port))
        time.sleep(3.5)
        c.close()
    finally:
        if added:
            subprocess.run(["ip", "route", "del", ADDRESS + "/32", "dev", "lo"])


main()
