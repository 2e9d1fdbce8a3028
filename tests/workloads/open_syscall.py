#!/usr/bin/env python3
"""open_syscall.py PATH...: call open(2) itself (not openat, which Python's open uses) on
each PATH, read-only; a path that does not exist is fine, the test looks at the call."""
import ctypes
import os
import platform
import sys

# open(2) exists only on some architectures; these are the ones with a number to use.
SYS_OPEN = {"x86_64": 2}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    number = SYS_OPEN.get(platform.machine())
    if number is None:
        sys.exit(f"open_syscall.py: no open(2) on {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    for path in sys.argv[1:]:
        fd = libc.syscall(number, os.fsencode(path), os.O_RDONLY)
        if fd >= 0:
            os.close(fd)


main()
