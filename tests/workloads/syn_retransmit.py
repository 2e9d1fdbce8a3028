#!/usr/bin/env python3
"""syn_retransmit.py PORT: make the kernel retransmit a SYN, on loopback.

A listener with a backlog of 0 that never accepts: once its queue holds one connection, the
kernel drops the next SYNs, and their senders retransmit them after the initial RTO (1 s).
Waits 3 s for that to happen, then closes everything."""
import socket
import sys
import time


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    port = int(sys.argv[1])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(0)
    clients = []
    for _ in range(4):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        clients.append(c)
    time.sleep(3)
    for c in clients:
        c.close()
    listener.close()


main()
