"""The arguments connect.py and udp_send.py share: HOST PORT [COUNT], HOST a loopback address
(workloads never reach beyond this machine)."""
import ipaddress
import socket
import sys


def target(doc):
    """(address family, host, port, count) from the command line, or exit with `doc`."""
    if len(sys.argv) not in (3, 4):
        sys.exit(doc)
    host, port = sys.argv[1], int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) == 4 else 1
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"{sys.argv[0]}: {host} is not a loopback address")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, host, port, count
