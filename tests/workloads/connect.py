#!/usr/bin/env python3
"""connect.py HOST PORT [COUNT]: make COUNT (default 1) TCP connections to HOST:PORT.

A refused or timed-out connection is fine: the test looks at the connect(2) call, not at its
result. HOST must be a loopback address."""
import ipaddress
import socket
import sys


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    host, port = sys.argv[1], int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) == 4 else 1
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"connect.py: {host} is not a loopback address")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(count):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            try:
                sock.connect((host, port))
            except OSError:
                pass


main()
