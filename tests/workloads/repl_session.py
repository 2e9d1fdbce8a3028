#!/usr/bin/env python3
"""Drives an interactive bpftap session in a pseudo-terminal, as a user at a keyboard would.

usage: repl_session.py STEP...  (bpftap's command line comes from $REPL_COMMAND)

Each STEP is one of:
  send:TEXT      type TEXT and Enter, once the prompt is there (the last line ends in "> ")
  type:TEXT      type TEXT without Enter, once the prompt is there
  key:NAME       press tab, enter or ctrl-c, or ctrl-d once a prompt is there
  wait:REGEX     wait (10 s at most) until the screen shows a line matching REGEX, printed
                 since the previous wait
  run:COMMAND    run a shell command (a workload) and wait for it to exit; $REPL_PID is
                 bpftap's pid
  exit           wait (10 s at most) for bpftap to exit; prints "exit status N"

Everything the terminal showed is printed at the end, one line per screen line, escape
sequences removed, so a test can match on it. A wait that times out prints
"TIMEOUT waiting for REGEX" and ends the run with status 1.
"""

import fcntl
import os
import pty
import re
import select
import shlex
import struct
import subprocess
import sys
import termios
import time

KEYS = {"tab": b"\t", "enter": b"\r", "ctrl-c": b"\x03", "ctrl-d": b"\x04"}
PROMPT = re.compile(rb"(bpftap|\.\.\.)> ")
TOKEN = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r|\n|[^\x1b\r\n]+|\x1b")


def main():
    command = shlex.split(os.environ["REPL_COMMAND"])
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm"
        os.execvp(command[0], command)
    # A terminal of 200 columns, so that no input line wraps.
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    os.environ["REPL_PID"] = str(pid)
    screen = bytearray()
    seen = 0

    def read(timeout):
        """Reads what the terminal shows within `timeout`: "data", "quiet" or "closed"."""
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return "quiet"
        try:
            data = os.read(fd, 65536)
        except OSError:
            return "closed"
        if not data:
            return "closed"
        screen.extend(data)
        # A terminal answers a cursor position query; the prompt waits for the answer.
        for _ in range(data.count(b"\x1b[6n")):
            os.write(fd, b"\x1b[1;1R")
        return "data"

    def lines():
        """The screen as text: a carriage return goes back to the start of the line, ESC [K
        clears to its end, ESC [nC moves right; other escape sequences are dropped."""
        out, line, col = [], [], 0
        for token in TOKEN.finditer(bytes(screen)):
            t = token.group()
            if t == b"\n":
                out.append("".join(line))
                line, col = [], 0
            elif t == b"\r":
                col = 0
            elif t == b"\x1b[K":
                del line[col:]
            elif t.startswith(b"\x1b[") and t.endswith(b"C"):
                col += int(t[2:-1] or b"1")
                line.extend(" " * (col - len(line)))
            elif not t.startswith(b"\x1b"):
                for ch in t.decode("utf-8", "replace"):
                    if col < len(line):
                        line[col] = ch
                    else:
                        line.append(ch)
                    col += 1
        out.append("".join(line))
        return out

    def finish(status):
        while read(0.2) == "data":
            pass
        for line in lines():
            print(line)
        sys.exit(status)

    typed_at = [0]

    def prompt():
        """Waits until a prompt drawn since the last input waits for input, as a user would
        before typing."""
        deadline = time.time() + 10
        while not (PROMPT.search(bytes(screen[typed_at[0]:])) and lines()[-1].endswith("> ")):
            if time.time() > deadline or read(0.1) == "closed":
                print("TIMEOUT waiting for the prompt")
                finish(1)

    status = None
    for step in sys.argv[1:]:
        kind, _, arg = step.partition(":")
        if kind == "send":
            prompt()
            typed_at[0] = len(screen)
            os.write(fd, arg.encode() + b"\r")
        elif kind == "type":
            prompt()
            typed_at[0] = len(screen)
            os.write(fd, arg.encode())
        elif kind == "key":
            if arg == "ctrl-d":
                prompt()
            typed_at[0] = len(screen)
            os.write(fd, KEYS[arg])
        elif kind == "wait":
            pattern = re.compile(arg)
            deadline = time.time() + 10
            while True:
                text = lines()
                found = next((i for i in range(seen, len(text)) if pattern.search(text[i])), None)
                if found is not None:
                    seen = found + 1
                    break
                if time.time() > deadline or read(0.1) == "closed":
                    print(f"TIMEOUT waiting for {arg}")
                    finish(1)
        elif kind == "run":
            subprocess.run(arg, shell=True, check=False)
        elif kind == "exit":
            deadline = time.time() + 10
            while time.time() < deadline:
                read(0.1)
                done, code = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = os.waitstatus_to_exitcode(code)
                    break
            else:
                os.kill(pid, 9)
            print(f"exit status {status}")
        else:
            print(f"unknown step {step}")
            finish(2)
    finish(0 if status in (None, 0) else 1)


if __name__ == "__main__":
    main()
