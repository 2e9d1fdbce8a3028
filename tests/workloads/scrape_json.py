#!/usr/bin/env python3
"""scrape_json.py CALLS URL...: call getppid(2) CALLS times, then GET each URL, parse the body
as JSON and print it on one line, keys sorted, as `PATH: JSON`. Run under bpftap -c, so the
probes are attached before the first call."""
import json
import os
import sys
import urllib.parse
import urllib.request


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    for _ in range(int(sys.argv[1])):
        os.getppid()
    for url in sys.argv[2:]:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read().decode())
        print(f"{urllib.parse.urlparse(url).path}: {json.dumps(body, sort_keys=True)}", flush=True)


main()
