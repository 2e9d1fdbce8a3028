"""A CPU-bound workload for sampling profiles: `busy.py MODE SECONDS`, where MODE is `user`
(a Python loop: user mode), `read` (read(2) of /dev/zero: mostly kernel mode), `both`
(half of each) or `find` (bytes.find over a zeroed buffer, in libc's memchr: user mode in a
shared library, at few addresses, alternating with reads)."""

import sys
import time


def spin_user(until):
    while time.monotonic() < until:
        sum(range(10000))


def spin_read(until):
    with open("/dev/zero", "rb", buffering=0) as f:
        while time.monotonic() < until:
            f.read(1 << 20)


def spin_find(until):
    buffer = bytes(1 << 24)
    with open("/dev/zero", "rb", buffering=0) as f:
        while time.monotonic() < until:
            buffer.find(b"\x01")
            f.read(1 << 20)


mode, seconds = sys.argv[1], float(sys.argv[2])
start = time.monotonic()
if mode in ("user", "both"):
    spin_user(start + (seconds / 2 if mode == "both" else seconds))
if mode == "find":
    spin_find(start + seconds)
if mode in ("read", "both"):
    spin_read(start + seconds)
