#!/usr/bin/env python3
"""write_file.py PATH: create or truncate PATH and write one line to it with one write(2)."""
import os
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"bpftap e2e\n")
    finally:
        os.close(fd)


main()
