#!/usr/bin/env python3
"""proc_events.py: sleep, start a thread, fork a child that execs /bin/true, fork a child
that exits with status 3, then send SIGUSR1 to itself (it has a handler)."""
import os
import signal
import threading
import time


def main():
    got = []
    signal.signal(signal.SIGUSR1, lambda *_: got.append(1))
    time.sleep(0.1)
    thread = threading.Thread(target=time.sleep, args=(0.05,))
    thread.start()
    thread.join()
    child = os.fork()
    if child == 0:
        os.execv("/bin/true", ["true"])
    os.waitpid(child, 0)
    child = os.fork()
    if child == 0:
        os._exit(3)
    os.waitpid(child, 0)
    os.kill(os.getpid(), signal.SIGUSR1)
    time.sleep(0.1)


main()
