#!/usr/bin/env python3
"""getppid_loop.py N: call getppid(2) N times, then print the count of calls made."""
import os
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    n = int(sys.argv[1])
    for _ in range(n):
        os.getppid()
    # One write, line and newline together: under PYTHONUNBUFFERED print() writes them
    # apart, and bpftap's output (the same pipe under -c) could land between the two.
    sys.stdout.write(f"{n}\n")


main()
