#!/usr/bin/env python3
"""udp_send.py HOST PORT [COUNT]: send COUNT (default 1) small UDP datagrams to HOST:PORT.

HOST must be a loopback address. Nothing needs to listen there."""
import ipaddress
import socket
import sys


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    host, port = sys.argv[1], int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) == 4 else 1
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"udp_send.py: {host} is not a loopback address")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for _ in range(count):
            try:
                sock.sendto(b"bpftap", (host, port))
            except OSError:
                pass


main()
