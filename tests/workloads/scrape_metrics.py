#!/usr/bin/env python3
"""scrape_metrics.py URL CALLS ROUNDS: ROUNDS times, call getppid(2) CALLS times and then GET
URL, printing each line of the body as `scrape R: LINE`. Run under bpftap -c, so the probes
are attached before the first call."""
import os
import sys
import urllib.request


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    url, calls, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for r in range(1, rounds + 1):
        for _ in range(calls):
            os.getppid()
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
        for line in body.splitlines():
            print(f"scrape {r}: {line}", flush=True)


main()
