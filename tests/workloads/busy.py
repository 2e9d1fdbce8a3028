"""A CPU-bound workload for sampling profiles: `busy.py MODE SECONDS`, where MODE is `user`
(a Python loop: user mode), `read` (read(2) of /dev/zero: mostly kernel mode) or `both`
(half of each)."""

import sys
import time


def spin_user(until):
    while time.monotonic() < until:
        sum(range(10000))


def spin_read(until):
    with open("/dev/zero", "rb", buffering=0) as f:
        while time.monotonic() < until:
            f.read(1 << 20)


mode, seconds = sys.argv[1], float(sys.argv[2])
start = time.monotonic()
if mode in ("user", "both"):
    spin_user(start + (seconds / 2 if mode == "both" else seconds))
if mode in ("read", "both"):
    spin_read(start + seconds)
