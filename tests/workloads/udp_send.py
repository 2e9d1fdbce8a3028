#!/usr/bin/env python3
"""udp_send.py HOST PORT [COUNT]: send COUNT (default 1) small UDP datagrams to HOST:PORT.

HOST must be a loopback address. Nothing needs to listen there."""
import socket

import loopback


def main():
    family, host, port, count = loopback.target(__doc__)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for _ in range(count):
            try:
                sock.sendto(b"bpftap", (host, port))
            except OSError:
                pass


main()
