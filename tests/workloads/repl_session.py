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


class Terminal:
    """A program running in a pseudo-terminal of 200 columns, and what the screen shows."""

    def __init__(self, command):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["TERM"] = "xterm"
            os.execvp(command[0], command)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.screen = bytearray()
        # Where the last input was typed: a prompt counts only if drawn after it.
        self.typed_at = 0

    def read(self, timeout):
        """Reads what the terminal shows within `timeout`: "data", "quiet" or "closed"."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return "quiet"
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return "closed"
        if not data:
            return "closed"
        self.screen.extend(data)
        # A terminal answers a cursor position query; the prompt waits for the answer.
        for _ in range(data.count(b"\x1b[6n")):
            os.write(self.fd, b"\x1b[1;1R")
        return "data"

    def lines(self):
        """The screen as text: a carriage return goes back to the start of the line, ESC [K
        clears to its end, ESC [nC moves right; other escape sequences are dropped."""
        out, line, col = [], [], 0
        for token in TOKEN.finditer(bytes(self.screen)):
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

    def prompt(self, timeout=10):
        """Waits until a prompt drawn since the last input waits for input, as a user would
        before typing; False on a timeout."""
        deadline = time.time() + timeout
        while not (PROMPT.search(bytes(self.screen[self.typed_at:])) and self.lines()[-1].endswith("> ")):
            if time.time() > deadline or self.read(0.1) == "closed":
                return False
        return True

    def type(self, text):
        self.typed_at = len(self.screen)
        os.write(self.fd, text)

    def wait_line(self, pattern, after, timeout=10):
        """The index of the first screen line from `after` on that matches, or None."""
        deadline = time.time() + timeout
        while True:
            text = self.lines()
            found = next((i for i in range(after, len(text)) if pattern.search(text[i])), None)
            if found is not None:
                return found
            if time.time() > deadline or self.read(0.1) == "closed":
                return None

    def exit_status(self, timeout=10):
        """The program's exit status, or None (then it is killed) if it runs on."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.read(0.1)
            done, code = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(code)
        os.kill(self.pid, 9)
        return None


def main():
    term = Terminal(shlex.split(os.environ["REPL_COMMAND"]))
    os.environ["REPL_PID"] = str(term.pid)
    seen = 0

    def finish(status):
        while term.read(0.2) == "data":
            pass
        for line in term.lines():
            print(line)
        sys.exit(status)

    def prompt():
        if not term.prompt():
            print("TIMEOUT waiting for the prompt")
            finish(1)

    status = None
    for step in sys.argv[1:]:
        kind, _, arg = step.partition(":")
        if kind == "send":
            prompt()
            term.type(arg.encode() + b"\r")
        elif kind == "type":
            prompt()
            term.type(arg.encode())
        elif kind == "key":
            if arg == "ctrl-d":
                prompt()
            term.type(KEYS[arg])
        elif kind == "wait":
            found = term.wait_line(re.compile(arg), seen)
            if found is None:
                print(f"TIMEOUT waiting for {arg}")
                finish(1)
            seen = found + 1
        elif kind == "run":
            subprocess.run(arg, shell=True, check=False)
        elif kind == "exit":
            status = term.exit_status()
            print(f"exit status {status}")
        else:
            print(f"unknown step {step}")
            finish(2)
    finish(0 if status in (None, 0) else 1)


if __name__ == "__main__":
    main()
