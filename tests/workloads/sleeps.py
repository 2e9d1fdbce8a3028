#!/usr/bin/env python3
"""sleeps.py N: sleep 10 ms, N times; each sleep takes the process off its cpu and back."""
import sys
import time

for _ in range(int(sys.argv[1])):
    time.sleep(0.01)
