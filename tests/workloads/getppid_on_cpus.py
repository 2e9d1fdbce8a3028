#!/usr/bin/env python3
"""getppid_on_cpus.py CPU...: call getppid(2) once on each CPU given, in order.

Moving itself to one CPU at a time puts each call's probe on a known CPU, so a script can
record samples in several CPUs' shares of a per-CPU statistic deterministically.
"""
import os
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for cpu in map(int, sys.argv[1:]):
        # The kernel moves the task off a CPU it may no longer use before this returns.
        os.sched_setaffinity(0, {cpu})
        os.getppid()


main()
