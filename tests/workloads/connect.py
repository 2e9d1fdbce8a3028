#!/usr/bin/env python3
"""connect.py HOST PORT [COUNT]: make COUNT (default 1) TCP connections to HOST:PORT.

A refused or timed-out connection is fine: the test looks at the connect(2) call, not at its
result. HOST must be a loopback address."""
import socket

import loopback


def main():
    family, host, port, count = loopback.target(__doc__)
    for _ in range(count):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            try:
                sock.connect((host, port))
            except OSError:
                pass


main()
