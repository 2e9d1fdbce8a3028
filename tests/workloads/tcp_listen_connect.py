#!/usr/bin/env python3
"""tcp_listen_connect.py PORT: listen on 127.0.0.1:PORT, connect to it, accept, send one byte
from the accepted side, read it on the connecting side, and close both.

PORT 0 picks a free port. Every step has a timeout, so the program always ends."""
import socket
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    port = int(sys.argv[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(1)
        listener.settimeout(5)
        with socket.create_connection(listener.getsockname(), timeout=5) as client:
            server, _ = listener.accept()
            with server:
                server.sendall(b"x")
                if client.recv(1) != b"x":
                    sys.exit("tcp_listen_connect.py: did not receive the byte")


main()
