#!/usr/bin/env python3
"""bpftap vs bpftrace, side by side in one run. Started by bench/run.sh (see bench/README.md).

Every number is a median of RUNS runs; a run whose tool did not produce the expected events
counts as failed and gives no number. Nothing here is a test assertion: goals are reported.
"""
import argparse
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "workloads"))
from repl_session import Terminal  # noqa: E402  (the pty driver the REPL's tests use)

ap = argparse.ArgumentParser()
ap.add_argument("--bpftap", required=True)
ap.add_argument("--bpftrace", default="bpftrace")
ap.add_argument("--tools", required=True, help="dir with the compiled C helpers")
ap.add_argument("--runs", type=int, default=5)
ALL = "abcdefghijk"
ap.add_argument("--only", default=ALL, help="sections to run, e.g. 'ac'")
ap.add_argument("--loop", type=int, default=2_000_000, help="syscalls in the overhead loop")
ap.add_argument("--burst", type=int, default=1_000_000, help="events in the printf burst")
ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
ap.add_argument("--curve-runs", type=int, help="runs per point of the scale curves (k); default min(runs, 3)")
ap.add_argument("--curve-burst", type=int, default=200_000, help="events per printf burst in k")
ap.add_argument("--probes-max", type=int, default=1000, help="largest number of probes in k")
ap.add_argument("--array-max", type=int, default=1_000_000, help="largest array printed in k")
ap.add_argument("--printf-args-max", type=int, default=16, help="most printf arguments in k")
ap.add_argument("--printf-width-max", type=int, default=1000, help="widest printed string in k")
ap.add_argument("--maps-max", type=int, default=1000, help="most arrays (maps) in k")
args = ap.parse_args()
args.curve_runs = args.curve_runs or min(args.runs, 3)

BPFTAP = args.bpftap
BPFTRACE = args.bpftrace
LOAD = os.path.join(args.tools, "benchload")  # comm "benchload"
FIRST = os.path.join(args.tools, "firstevent")
RUNS = args.runs
LOAD0 = []
TMP = tempfile.mkdtemp(prefix="bpftap-bench-")
NA = "n/a (not supported yet)"

rows = []   # (section, what, bpftrace, bpftap, unit, ratio, goal, verdict)
notes = []  # free text for RESULTS.md
live = []   # processes to kill on exit


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs) if xs else None


def first_line(s):
    for l in s.splitlines():  # bpftap's diagnostics: "  × message"
        if "×" in l:
            return l.split("×", 1)[1].strip()[:160]
    for l in s.splitlines():
        l = l.strip()
        if l and not l.startswith("ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK"):
            return l[:160]
    return ""


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    live.append(p)
    return p


def stop(p, sig=signal.SIGINT, timeout=120):
    """Stop p with sig, then SIGKILL after timeout. Returns (seconds to exit, killed?)."""
    if p.poll() is not None:
        return 0.0, False
    t0 = time.monotonic()
    try:
        p.send_signal(sig)
        p.wait(timeout)
        killed = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        killed = True
    if p in live:
        live.remove(p)
    return time.monotonic() - t0, killed


def cleanup():
    for p in list(live):
        try:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
        except Exception:
            pass


def run(cmd, timeout=300, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, -9, e.stdout or "", (e.stderr or "") + "\n(timeout)")


def bpftap_supported(script):
    """None if bpftap compiles the script, else the reason (its first error line)."""
    r = run([BPFTAP, "-p4", "-e", script], timeout=60)
    if r.returncode == 0:
        return None
    return first_line(r.stderr) or f"exit {r.returncode}"


def na_reason(reason):
    if re.search(r"not (yet )?supported|unsupported|not implemented", reason, re.I):
        return NA
    return "n/a (error: " + reason + ")"


# ---------------------------------------------------------------- tools started until ready

class Tool:
    """A tracer started in the background with stdout in a file, waited for until attached."""

    def __init__(self, kind, script, ready_timeout=120, options=(), env=()):
        self.kind = kind
        self.out = tempfile.NamedTemporaryFile(dir=TMP, delete=False, prefix=kind + "-out-")
        self.err = tempfile.NamedTemporaryFile(dir=TMP, delete=False, prefix=kind + "-err-")
        env = dict(os.environ, **dict(env))
        self.t0 = time.monotonic()
        if kind == "bpftap":
            self.ready = os.path.join(TMP, f"ready-{time.monotonic_ns()}")
            env["BPFTAP_READY_FILE"] = self.ready
            cmd = [BPFTAP, *options, "-e", script]
        else:
            # bpftrace runs BEGIN once every probe is attached
            cmd = [BPFTRACE, *options, "-e", script + ' BEGIN { printf("READY\\n"); }']
        self.p = spawn(cmd, stdout=self.out, stderr=self.err, env=env)
        self.ok = self._wait_ready(ready_timeout)
        self.ready_s = time.monotonic() - self.t0

    def _wait_ready(self, timeout):
        while time.monotonic() - self.t0 < timeout:
            if self.p.poll() is not None:
                return False
            if self.kind == "bpftap":
                if os.path.exists(self.ready):
                    return True
            else:
                with open(self.out.name, "rb") as f:
                    # READY in text, or in a -f json printf record
                    if re.search(rb"READY(\n|\\n)", f.read()):
                        return True
            time.sleep(0.002)
        return False

    def hwm_kb(self):
        try:
            with open(f"/proc/{self.p.pid}/status") as f:
                for l in f:
                    if l.startswith("VmHWM:"):
                        return int(l.split()[1])
        except OSError:
            return None

    def prog_ids(self):
        ids = []
        fdd = f"/proc/{self.p.pid}/fd"
        for fd in os.listdir(fdd):
            try:
                if "bpf-prog" not in os.readlink(f"{fdd}/{fd}"):
                    continue
                with open(f"/proc/{self.p.pid}/fdinfo/{fd}") as f:
                    for l in f:
                        if l.startswith("prog_id:"):
                            ids.append(int(l.split()[1]))
            except OSError:
                pass
        return sorted(set(ids))

    def stop(self, timeout=120):
        self.stop_s, self.killed = stop(self.p, timeout=timeout)
        return self.stop_s

    def stdout(self):
        with open(self.out.name, errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.err.name, errors="replace") as f:
            return f.read()


def add(section, what, bt, tap, unit, goal=None, better="lower", fmt="{:.1f}", flag=""):
    """bt/tap: numbers, None (failed) or strings (n/a). goal: max (or min) ratio tap/bt.
    flag: the last column's text where there is no goal (a finding)."""
    def show(v):
        if v is None:
            return "failed"
        if isinstance(v, str):
            return v
        return fmt.format(v)
    ratio = verdict = ""
    if isinstance(bt, (int, float)) and isinstance(tap, (int, float)) and bt:
        r = tap / bt
        ratio = f"{r:.2f}"
        if goal is not None:
            ok = r <= goal if better == "lower" else r >= goal
            verdict = "met" if ok else "missed"
    goal_s = "" if goal is None else ("≤ " if better == "lower" else "≥ ") + f"{goal:g}×"
    rows.append((section, what, show(bt), show(tap), unit, ratio, goal_s, verdict or flag))
    log(f"  {section} {what}: bpftrace {show(bt)} bpftap {show(tap)} {unit} ratio {ratio}")


# ---------------------------------------------------------------- a. exec -> first event

def first_event(cmd, needle):
    r = run([FIRST, "20000", needle] + cmd, timeout=60)
    if r.returncode != 0:
        return None, first_line(r.stderr)
    return float(r.stdout.strip()), ""


def section_a():
    log("a. exec -> first event")
    cases = [
        ("getppid printf", "tick",
         [BPFTRACE, "-e", 'tracepoint:syscalls:sys_enter_getppid { printf("hit\\n"); }'],
         [BPFTAP, "-e", 'probe syscall.getppid { printf("hit\\n") }'], "hit"),
        ("getppid printf, kernel.trace", "tick",
         [BPFTRACE, "-e", 'tracepoint:syscalls:sys_enter_getppid { printf("hit\\n"); }'],
         [BPFTAP, "-e", 'probe kernel.trace("syscalls:sys_enter_getppid") { printf("hit\\n") }'], "hit"),
        ("connect one-liner", "connect",
         [BPFTRACE, "-e", 'tracepoint:syscalls:sys_enter_connect { printf("%s %d\\n", comm, pid); }'],
         [BPFTAP, "-e", 'probe syscall.connect /dport == 23/ { printf("%s %d\\n", execname(), pid()) }'],
         "benchload"),
    ]
    for what, mode, bt_cmd, tap_cmd, needle in cases:
        load = spawn([LOAD, mode, "200"], stdout=subprocess.DEVNULL)
        try:
            res = {"bpftrace": [], "bpftap": []}
            errs = {"bpftrace": "", "bpftap": ""}
            reason = bpftap_supported(tap_cmd[-1])
            for _ in range(RUNS):
                for kind, cmd in (("bpftrace", bt_cmd), ("bpftap", tap_cmd)):
                    if kind == "bpftap" and reason:
                        continue
                    ms, err = first_event(cmd, needle)
                    if ms is None:
                        errs[kind] = err
                    else:
                        res[kind].append(ms)
            bt = median(res["bpftrace"])
            tap = na_reason(reason) if reason else median(res["bpftap"])
            add("a", f"exec → first event: {what}", bt, tap, "ms", goal=0.25)
            for kind in res:
                if errs[kind]:
                    notes.append(f"a. {what}: a {kind} run failed: {errs[kind]}")
                if res[kind]:
                    notes.append(f"a. {what}: {kind} samples (ms): "
                                 + ", ".join(f"{x:.1f}" for x in res[kind]))
        finally:
            stop(load, signal.SIGKILL)
    # The getppid one-liner from source and from its compiled object (-p4 -m, then
    # `bpftap run`, which runs no front-end pass): the bpftrace column holds the first.
    script = 'probe syscall.getppid { printf("hit\\n") }'
    obj = os.path.join(TMP, "getppid")
    made = run([BPFTAP, "-p4", "-m", obj, "-e", script], timeout=60)
    if made.returncode != 0:
        notes.append(f"a. bpftap -p4 -m failed: {first_line(made.stderr)}")
    else:
        load = spawn([LOAD, "tick", "200"], stdout=subprocess.DEVNULL)
        try:
            res = {"source": [], "object": []}
            for _ in range(RUNS):
                for kind, cmd in (("source", [BPFTAP, "-e", script]), ("object", [BPFTAP, "run", obj + ".bo"])):
                    ms, err = first_event(cmd, "hit")
                    if ms is None:
                        notes.append(f"a. getppid from {kind}: a run failed: {err}")
                    else:
                        res[kind].append(ms)
            add("a", "exec → first event: bpftap from source (left) vs bpftap run .bo (right)",
                median(res["source"]), median(res["object"]), "ms")
        finally:
            stop(load, signal.SIGKILL)
    # where bpftap's startup goes: one run with -v
    load = spawn([LOAD, "tick", "200"], stdout=subprocess.DEVNULL)
    try:
        r = run([BPFTAP, "-v", "-T", "1", "-e", 'probe syscall.getppid { printf("hit\\n") }'], timeout=60)
        v = "\n".join(l for l in r.stderr.splitlines() if l.strip())[:3000]
        notes.append("a. bpftap -v pass timings for the getppid one-liner:\n\n```\n" + v + "\n```")
    finally:
        stop(load, signal.SIGKILL)


# ---------------------------------------------------------------- b. peak RSS

def time_v(cmd, timeout=120):
    r = run(["/usr/bin/time", "-v"] + cmd, timeout=timeout)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    return r, (int(m.group(1)) if m else None)


def section_b():
    log("b. peak RSS")
    cases = [
        ("counter, exit at begin (n++ / @n = count())", None,
         [BPFTRACE, "-e", 'tracepoint:syscalls:sys_enter_getppid { @n = count(); } BEGIN { exit(); }'],
         [BPFTAP, "-e", 'global n probe syscall.getppid { n++ } probe begin { exit() }'], None),
        ("array counter, exit at begin (c[execname()]++ / @c[comm] = count())", None,
         [BPFTRACE, "-e", 'tracepoint:syscalls:sys_enter_getppid { @c[comm] = count(); } BEGIN { exit(); }'],
         [BPFTAP, "-e", 'global c probe syscall.getppid { c[execname()]++ } probe begin { exit() }'], None),
        ("connect one-liner, 1 s", "connect",
         ["timeout", "--preserve-status", "-s", "INT", "1", BPFTRACE, "-e",
          'tracepoint:syscalls:sys_enter_connect { printf("%s %d\\n", comm, pid); }'],
         ["timeout", "--preserve-status", "-s", "INT", "1", BPFTAP, "-e",
          'probe syscall.connect /dport == 23/ { printf("%s %d\\n", execname(), pid()) }'],
         "benchload"),
    ]
    for what, mode, bt_cmd, tap_cmd, needle in cases:
        load = spawn([LOAD, mode, "200"], stdout=subprocess.DEVNULL) if mode else None
        try:
            res = {"bpftrace": [], "bpftap": []}
            reason = bpftap_supported(tap_cmd[-1])
            for _ in range(RUNS):
                for kind, cmd in (("bpftrace", bt_cmd), ("bpftap", tap_cmd)):
                    if kind == "bpftap" and reason:
                        continue
                    r, kb = time_v(cmd)
                    good = r.returncode == 0 and kb and (needle is None or needle in r.stdout)
                    if good:
                        res[kind].append(kb / 1024)
                    else:
                        notes.append(f"b. {what}: a {kind} run failed (exit {r.returncode}): "
                                     f"{first_line(r.stderr)}")
            tap = na_reason(reason) if reason else median(res["bpftap"])
            add("b", f"peak RSS: {what}", median(res["bpftrace"]), tap, "MB", goal=0.2)
        finally:
            if load:
                stop(load, signal.SIGKILL)


# ---------------------------------------------------------------- c. per-event overhead

def loop_once(mode="loop", n=None):
    """benchload's MODE run N times (default: --loop getppid), its seconds. Mode "pair": the
    getppid loop on CPUs 0 and 1 at once, the slower one's seconds."""
    if mode == "pair":
        loops = [subprocess.Popen(["taskset", "-c", str(cpu), LOAD, "loop", str(n or args.loop)],
                                  stdout=subprocess.PIPE, text=True) for cpu in (0, 1)]
        outs = [p.communicate(timeout=300)[0] for p in loops]
        ok = all(p.returncode == 0 for p in loops)
        return max(float(o.strip()) for o in outs) if ok else None
    r = run([LOAD, mode, str(n or args.loop)], timeout=300)
    return float(r.stdout.strip()) if r.returncode == 0 else None


def attached(kind, script, work=None, timeout=120, **tool):
    """The one cycle of the sections that run a tool: start it, wait until it is attached, run
    work(tool) (if any) while it is, stop it with SIGINT. Returns (Tool, work's result); the
    Tool has ok, ready_s (exec → attached), hwm (peak RSS in KiB once attached), stop_s."""
    t = Tool(kind, script, ready_timeout=timeout, **tool)
    t.hwm = t.hwm_kb() if t.ok else None
    try:
        result = work(t) if t.ok and work else None
    finally:
        t.stop(timeout=timeout)
    return t, result


def traced_loop(kind, script, check, mode="loop", n=None):
    t, secs = attached(kind, script, lambda t: loop_once(mode, n))
    if not t.ok:
        return None, "not ready: " + first_line(t.stderr())
    if secs is None:
        return None, "loop failed"
    err = check(t.stdout()) if check else None
    if err:
        return None, err
    return secs, ""


def count_check(pattern):
    def check(out):
        m = re.search(pattern, out)
        if not m:
            return "no count in output: " + first_line(out)
        if int(m.group(1)) < args.loop:
            return f"count {m.group(1)} < {args.loop}"
        return None
    return check


def section_c():
    log("c. per-event overhead")
    plain = ('tracepoint:syscalls:sys_enter_getppid { @n = count(); }', count_check(r"@n: (\d+)"),
             'global n probe syscall.getppid { n++ } probe end { printf("n=%d\\n", n) }',
             count_check(r"n=(\d+)"))
    array = ('tracepoint:syscalls:sys_enter_getppid { @c[comm] = count(); }',
             count_check(r"@c\[benchload\]: (\d+)"),
             'global c probe syscall.getppid { c[execname()]++ } '
             'probe end { printf("c=%d\\n", c["benchload"]) }',
             count_check(r"c=(\d+)"))
    # Mode "pair": the loop on both CPUs at once, counting the same counter (the same key):
    # what an atomic add costs when two CPUs take the cache line from each other.
    variants = [
        ("empty probe (floor)", "loop",
         'tracepoint:syscalls:sys_enter_getppid { }', None,
         'probe syscall.getppid { }', None),
        ("plain counter (n++ / @n = count())", "loop", *plain),
        ("array counter (c[execname()]++ / @c[comm] = count())", "loop", *array),
        ("plain counter, loops on two CPUs at once", "pair", *plain),
        ("array counter, loops on two CPUs at once", "pair", *array),
    ]
    reasons = [bpftap_supported(v[4]) for v in variants]
    base, res, errs = {"loop": [], "pair": []}, {}, {}
    for _ in range(RUNS):
        for mode in base:
            s = loop_once(mode)
            if s is not None:
                base[mode].append(s)
        for (what, mode, bts, btc, taps, tapc), reason in zip(variants, reasons):
            for kind, script, check in (("bpftrace", bts, btc), ("bpftap", taps, tapc)):
                if kind == "bpftap" and reason:
                    continue
                secs, err = traced_loop(kind, script, check, mode)
                if secs is None:
                    errs[(what, kind)] = err
                else:
                    res.setdefault((what, kind), []).append(secs)
    b = {mode: median(samples) for mode, samples in base.items()}
    add("c", f"untraced loop of {args.loop} getppid", b["loop"], b["loop"], "s", fmt="{:.3f}")
    add("c", f"untraced loops of {args.loop} getppid on two CPUs at once", b["pair"], b["pair"], "s",
        fmt="{:.3f}")
    for mode, samples in base.items():
        notes.append(f"c. untraced {mode} samples (s): " + ", ".join(f"{x:.3f}" for x in samples))
    for (what, mode, *_), reason in zip(variants, reasons):
        per = lambda s: None if s is None else (s - b[mode]) / args.loop * 1e6
        bt = median(res.get((what, "bpftrace"), []))
        tap = median(res.get((what, "bpftap"), []))
        # bpftrace's empty probe is the perf-event tracepoint's floor; bpftap's syscall
        # probes sit on raw_syscalls' raw tracepoint, whose floor is to be half of it (issue 17).
        goal = 0.5 if what.startswith("empty probe") else 0.7
        add("c", f"loop time: {what}", bt, na_reason(reason) if reason else tap, "s", fmt="{:.3f}")
        add("c", f"overhead: {what}", per(bt), na_reason(reason) if reason else per(tap),
            "µs/event", goal=goal, fmt="{:.3f}")
        for kind in ("bpftrace", "bpftap"):
            if (what, kind) in errs:
                notes.append(f"c. {what}: a {kind} run failed: {errs[(what, kind)]}")
            if (what, kind) in res:
                notes.append(f"c. {what}: {kind} samples (s): "
                             + ", ".join(f"{x:.3f}" for x in res[(what, kind)]))


# ---------------------------------------------------------------- d. BPF instruction counts

def insns(kind, script):
    def show(t):
        shown = (run(["bpftool", "prog", "show", "id", str(pid), "-j"], timeout=30) for pid in t.prog_ids())
        return [json.loads(r.stdout) for r in shown if r.returncode == 0]
    t, progs = attached(kind, script, show)
    if not t.ok:
        return None, "not ready: " + first_line(t.stderr())
    progs = [p for p in progs if p.get("name") not in ("BEGIN", "END")]
    if not progs:
        return None, "no program found"
    n = sum(p.get("bytes_xlated", 0) for p in progs) // 8
    return n, ", ".join(f"{p.get('name')}={p.get('bytes_xlated', 0) // 8}" for p in progs)


def section_d():
    log("d. BPF instruction counts")
    cases = [
        ("empty probe",
         'tracepoint:syscalls:sys_enter_getppid { }',
         'probe syscall.getppid { }'),
        ("counter (n++ / @n = count())",
         'tracepoint:syscalls:sys_enter_getppid { @n = count(); }',
         'global n probe syscall.getppid { n++ }'),
        ("array counter (c[execname()]++ / @c[comm] = count())",
         'tracepoint:syscalls:sys_enter_getppid { @c[comm] = count(); }',
         'global c probe syscall.getppid { c[execname()]++ }'),
        ("printf pid and comm",
         'tracepoint:syscalls:sys_enter_getppid { printf("%d %s\\n", pid, comm); }',
         'probe syscall.getppid { printf("%d %s\\n", pid(), execname()) }'),
        ("predicate on a field (close fd == 12345, counter)",
         'tracepoint:syscalls:sys_enter_close /args->fd == 12345/ { @n = count(); }',
         'global n probe kernel.trace("syscalls:sys_enter_close") { if ($fd == 12345) n++ }'),
        # The same job on both sides: read the user's sockaddr (family, length, port, as
        # syscall.connect's dport does for AF_INET and AF_INET6), keep port 23, print. bpftrace
        # 0.17 has no ntohs: the port is compared in network order.
        ("connect to port 23 (both read the user sockaddr)",
         'tracepoint:syscalls:sys_enter_connect { $sa = (struct sockaddr_in *)args->uservaddr; '
         '$af = $sa->sin_family; '
         'if ((($af == 2 && args->addrlen >= 16) || ($af == 10 && args->addrlen >= 28)) '
         '&& $sa->sin_port == 0x1700) { printf("%s %d\\n", comm, pid); } }',
         'probe syscall.connect /dport == 23/ { printf("%s %d\\n", execname(), pid()) }'),
    ]
    for what, bts, taps in cases:
        bt, btd = insns("bpftrace", bts)
        reason = bpftap_supported(taps)
        if reason:
            tap, tapd = na_reason(reason), ""
        else:
            tap, tapd = insns("bpftap", taps)
        add("d", f"xlated insns: {what}", bt, tap, "insns", goal=1.0, fmt="{:d}")
        notes.append(f"d. {what}: bpftrace [{btd}] bpftap [{tapd}]")


# ---------------------------------------------------------------- e. printf throughput

def printed_text(line):
    """What a line of output printed: the line itself, or the text of a -f json printf record
    (bpftrace's `data` is the text, bpftap's `data.text`)."""
    if not line.startswith("{"):
        return line
    try:
        record = json.loads(line)
    except ValueError:
        return ""
    data = record.get("data")
    return (data.get("text", "") if isinstance(data, dict) else str(data or "")).strip()


def burst(kind, script, options=(), events=None, text=str, env=()):
    """`events` getppid calls (default --burst) as fast as the loop goes while the tool prints
    a line for each: (lines whose text is text(loop's pid), seconds from the loop's start to
    the last line, lost-record messages, the loop's own seconds)."""
    t, r = attached(kind, script, lambda t: emit(t, events or args.burst), options=options, env=env)
    if not t.ok:
        return None, "not ready: " + first_line(t.stderr())
    loop_pid, secs, loop_s = r
    want = text(loop_pid)
    got = sum(1 for l in t.stdout().splitlines() if printed_text(l.strip()) == want)
    lost_msg = [l for l in (t.stderr() + t.stdout()).splitlines() if re.search(r"lost", l, re.I)]
    return (got, secs, lost_msg, loop_s), ""


def emit(t, events):
    """Run the getppid loop while t prints; (the loop's pid, seconds until the output stopped
    growing, the loop's own seconds)."""
    size0 = os.path.getsize(t.out.name)
    p = subprocess.Popen([LOAD, "loop", str(events)], stdout=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    # poll the output size until it has not grown for 1 s after the loop ended
    last_size, last_grow = size0, t0
    while True:
        time.sleep(0.005)
        sz = os.path.getsize(t.out.name)
        now = time.monotonic()
        if sz != last_size:
            last_size, last_grow = sz, now
        if p.poll() is not None and now - last_grow > 1.0:
            break
        if now - t0 > 120:
            break
    loop_s = float(p.stdout.read().strip() or "nan")
    p.wait()
    return p.pid, last_grow - t0, loop_s


def section_e():
    log("e. printf throughput")
    bts = 'tracepoint:syscalls:sys_enter_getppid { printf("%d\\n", pid); }'
    taps = 'probe syscall.getppid { printf("%d\\n", pid()) }'
    for options in ((), ("-f", "json")):
        burst_rows(bts, taps, options)


def burst_rows(bts, taps, options):
    res = {"bpftrace": [], "bpftap": []}
    json_out = " with -f json" if options else ""
    for _ in range(RUNS):
        for kind, script in (("bpftrace", bts), ("bpftap", taps)):
            r, err = burst(kind, script, options)
            if r is None:
                notes.append(f"e. a {kind}{json_out} run failed: {err}")
            else:
                res[kind].append(r)
    rates, losts = {}, {}
    for kind, rs in res.items():
        if not rs:
            rates[kind] = losts[kind] = None
            continue
        # "with none lost": the rate is over the runs that lost nothing
        clean = [got / secs / 1000 for got, secs, _, _ in rs if got == args.burst]
        rates[kind] = median(clean) if clean else "lossy in every run"
        losts[kind] = median([args.burst - got for got, _, _, _ in rs])
        notes.append(f"e. {kind}{json_out}: burst of {args.burst}: received "
                     + ", ".join(str(r[0]) for r in rs) + "; emitting loop took (s) "
                     + ", ".join(f"{r[3]:.2f}" for r in rs) + "; exec of loop to last line (s) "
                     + ", ".join(f"{r[1]:.2f}" for r in rs) + "; lost-record messages: "
                     + ("; ".join(sorted({m.strip()[:100] for r in rs for m in r[2]})) or "none"))
    add("e", f"printf rate{json_out} with none lost, burst of {args.burst} events", rates["bpftrace"],
        rates["bpftap"], "k lines/s", goal=1.0, better="higher")
    add("e", f"events lost{json_out} of {args.burst} (median; worst run in notes)", losts["bpftrace"],
        losts["bpftap"], "events", fmt="{:.0f}")


# ---------------------------------------------------------------- f. compile time and memory

def syscall_names(n):
    names = sorted(x[len("sys_enter_"):] for x in os.listdir("/sys/kernel/tracing/events/syscalls")
                   if x.startswith("sys_enter_"))
    return names[:n]


def section_f():
    log("f. compile time and memory")
    names = syscall_names(200)
    bt_script = "\n".join(f'tracepoint:syscalls:sys_enter_{n} {{ printf("{n} %d\\n", pid); }}'
                          for n in names)
    tap_script = "\n".join(f'probe syscall.{n} {{ printf("{n} %d\\n", pid()) }}' for n in names)
    bt1 = f'tracepoint:syscalls:sys_enter_{names[0]} {{ printf("{names[0]} %d\\n", pid); }}'
    tap1 = f'probe syscall.{names[0]} {{ printf("{names[0]} %d\\n", pid()) }}'
    for what, bts, taps in ((f"compile 1 probe", bt1, tap1),
                            (f"compile {len(names)} probes with printf", bt_script, tap_script)):
        btf = os.path.join(TMP, "bt.stp")
        tapf = os.path.join(TMP, "tap.stp")
        open(btf, "w").write(bts)
        open(tapf, "w").write(taps)
        reason = bpftap_supported(taps)
        tm = {"bpftrace": [], "bpftap": []}
        rss = {"bpftrace": [], "bpftap": []}
        for _ in range(RUNS):
            for kind, cmd in (("bpftrace", [BPFTRACE, "--emit-elf", os.path.join(TMP, "bt.elf"), btf]),
                              ("bpftap", [BPFTAP, "--emit-elf", os.path.join(TMP, "tap.elf"), tapf])):
                if kind == "bpftap" and reason:
                    continue
                t0 = time.monotonic()
                r, kb = time_v(cmd)
                dt = (time.monotonic() - t0) * 1000
                if r.returncode == 0 and kb:
                    tm[kind].append(dt)
                    rss[kind].append(kb / 1024)
                else:
                    notes.append(f"f. {what}: a {kind} run failed (exit {r.returncode}): "
                                 f"{first_line(r.stderr)}")
        na = na_reason(reason) if reason else None
        add("f", f"{what}: time", median(tm["bpftrace"]), na or median(tm["bpftap"]), "ms", goal=0.1)
        add("f", f"{what}: peak RSS", median(rss["bpftrace"]), na or median(rss["bpftap"]), "MB",
            goal=0.1)
    notes.append("f. compile only: `--emit-elf FILE` in both tools (the dry run that compiles the script and "
                 "writes the BPF ELF object), under /usr/bin/time -v")
    # Ten syscall probes, and syscall.*: run until attached, then stopped (SIGINT → exit is
    # where detaching shows: a perf event closes in tens of ms, a BPF link in microseconds).
    ten = names[:10]
    cases = (("10 syscall probes",
              ", ".join(f"tracepoint:syscalls:sys_enter_{n}" for n in ten) + " { @n = count(); }",
              "global n probe " + ", ".join(f"syscall.{n}" for n in ten) + " { n++ }"),
             ("syscall.*", 'tracepoint:syscalls:sys_enter_* { @n = count(); }', 'global n probe syscall.* { n++ }'))
    for what, bts, taps in cases:
        reason = bpftap_supported(taps)
        att = {"bpftrace": [], "bpftap": []}
        stp = {"bpftrace": [], "bpftap": []}
        rss = {"bpftrace": [], "bpftap": []}
        for _ in range(RUNS):
            for kind, script in (("bpftrace", bts), ("bpftap", taps)):
                if kind == "bpftap" and reason:
                    continue
                t, nprog = attached(kind, script, lambda t: len(t.prog_ids()), timeout=300)
                if t.ok and t.hwm:
                    att[kind].append(t.ready_s * 1000)
                    stp[kind].append(t.stop_s * 1000)
                    rss[kind].append(t.hwm / 1024)
                    notes.append(f"f. {what}: {kind} attached {nprog} programs")
                else:
                    notes.append(f"f. {what}: a {kind} run failed: {first_line(t.stderr())}")
        na = na_reason(reason) if reason else None
        add("f", f"{what}: exec → attached", median(att["bpftrace"]), na or median(att["bpftap"]), "ms",
            goal=0.1)
        add("f", f"{what}: stop (SIGINT → exit)", median(stp["bpftrace"]), na or median(stp["bpftap"]),
            "ms")
        add("f", f"{what}: peak RSS while attached", median(rss["bpftrace"]),
            na or median(rss["bpftap"]), "MB", goal=0.1)


# ---------------------------------------------------------------- g. interactive session

def repl_session():
    """One `bpftap -i` in a pseudo-terminal: ms from exec to the prompt, and from typing a
    syscall probe (Enter) to its "probe 1:" answer, which comes once it is attached."""
    t0 = time.monotonic()
    term = Terminal([BPFTAP, "-i"])
    try:
        if not term.prompt(timeout=60):
            return None, None, "no prompt: " + " / ".join(term.lines()[-3:])
        to_prompt = (time.monotonic() - t0) * 1000
        term.type(b"global n\r")
        if not term.prompt(timeout=60):
            return to_prompt, None, "no prompt after `global n`"
        t1 = time.monotonic()
        term.type(b"probe syscall.getppid { n++ }\r")
        if term.wait_line(re.compile(r"^probe 1: "), 0, timeout=60) is None:
            return to_prompt, None, "not attached: " + " / ".join(term.lines()[-3:])
        to_attached = (time.monotonic() - t1) * 1000
        term.prompt(timeout=60)
        term.type(b"quit\r")
        return to_prompt, to_attached, ""
    finally:
        term.exit_status(timeout=30)


def section_g():
    log("g. interactive session")
    prompt = {"bpftrace": [], "bpftap": []}
    attach = {"bpftrace": [], "bpftap": []}
    for _ in range(RUNS):
        p, a, err = repl_session()
        if err:
            notes.append(f"g. a bpftap -i run failed: {err}")
        if p is not None:
            prompt["bpftap"].append(p)
        if a is not None:
            attach["bpftap"].append(a)
        # bpftrace has no REPL: the nearest is starting it afresh for each probe.
        for what, script in (("prompt", ""),
                             ("attach", "tracepoint:syscalls:sys_enter_getppid { @n = count(); }")):
            t, _ = attached("bpftrace", script)
            if t.ok:
                (prompt if what == "prompt" else attach)["bpftrace"].append(t.ready_s * 1000)
    add("g", "REPL: exec → prompt (bpftrace: exec → BEGIN ran)", median(prompt["bpftrace"]),
        median(prompt["bpftap"]), "ms", goal=0.25)
    add("g", "REPL: syscall probe typed → attached (bpftrace: exec → attached)", median(attach["bpftrace"]),
        median(attach["bpftap"]), "ms", goal=0.25)
    tap = median(attach["bpftap"])
    if tap is not None:
        notes.append(f"g. a syscall probe typed at the prompt is attached in {tap:.1f} ms (goal: under 20 ms; "
                     f"stap -i rebuilds a kernel module for each `run`); bpftrace has no REPL, so its column is "
                     f"a fresh bpftrace for the same probe")
    for kind in prompt:
        for what, xs in (("prompt", prompt[kind]), ("attach", attach[kind])):
            if xs:
                notes.append(f"g. {what}: {kind} samples (ms): " + ", ".join(f"{x:.1f}" for x in xs))


# ---------------------------------------------------------------- h. live metrics

def section_h():
    log("h. live metrics")
    import urllib.request
    port, keys = 39499, 10000
    script = 'global a[20000], n probe syscall.getppid /execname() == "benchload"/ { a[n++] = n }'

    def scrapes(t):
        latencies = []
        run([LOAD, "loop", str(keys)])
        for _ in range(max(RUNS, 5) * 4):
            t0 = time.monotonic()
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
            dt = (time.monotonic() - t0) * 1000
            got = sum(1 for l in body.splitlines() if l.startswith("bpftap_a{"))
            if got == keys:
                latencies.append(dt)
            else:
                notes.append(f"h. a scrape had {got} elements of `a`, not {keys}")
        return latencies
    t, latencies = attached("bpftap", script, scrapes, options=("--metrics", str(port)))
    if not t.ok:
        notes.append(f"h. bpftap --metrics did not start: {first_line(t.stderr())}")
        return
    add("h", f"--metrics: scrape of a {keys}-key array", "n/a (no metrics endpoint)", median(latencies), "ms")
    if latencies:
        notes.append("h. scrape samples (ms): " + ", ".join(f"{x:.1f}" for x in latencies))


# ---------------------------------------------------------------- report

def machine():
    mem = ""
    with open("/proc/meminfo") as f:
        for l in f:
            if l.startswith("MemTotal:"):
                mem = f"{int(l.split()[1]) / 1024 / 1024:.1f} GiB"
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    cpu = l.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    bt_ver = run([BPFTRACE, "--version"]).stdout.strip()
    commit = run(["git", "-C", ROOT, "describe", "--always", "--dirty"]).stdout.strip()
    return [
        ("date", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("CPUs (nproc)", str(os.cpu_count())),
        ("CPU", cpu),
        ("memory", mem),
        ("kernel", platform.release()),
        ("bpftrace", bt_ver),
        ("bpftap commit", commit),
        ("runs per number (median)", str(RUNS)),
        ("load average (1, 5, 15 min) at start / end of the run",
         " ".join(LOAD0) + " / " + " ".join(open("/proc/loadavg").read().split()[:3])),
    ]


def table_md():
    head = "| | what | bpftrace | bpftap | unit | bpftap/bpftrace | goal | |\n"
    head += "|---|---|---:|---:|---|---:|---|---|\n"
    return head + "".join("| " + " | ".join(r) + " |\n" for r in rows)


def table_text():
    cols = list(zip(*([("", "what", "bpftrace", "bpftap", "unit", "ratio", "goal", "")] + rows)))
    w = [max(len(c) for c in col) for col in cols]
    out = []
    for i, r in enumerate([("", "what", "bpftrace", "bpftap", "unit", "ratio", "goal", "")] + rows):
        out.append("  ".join(c.ljust(w[j]) if j in (0, 1, 4, 6, 7) else c.rjust(w[j])
                             for j, c in enumerate(r)))
        if i == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)


# ---------------------------------------------------------------- i. BCC's tools

STAP_EXAMPLES = "/usr/share/systemtap/examples"
# BCC's CO-RE tools (Debian's libbpf-tools) beside the SystemTap example that does the same
# job, run by bpftap: (what, BCC command, a line BCC prints once attached, script).
BCC_PEERS = [
    ("execsnoop", ["/usr/sbin/execsnoop"], "PCOMM", f"{STAP_EXAMPLES}/lwtools/execsnoop-nd.stp"),
    ("opensnoop", ["/usr/sbin/opensnoop"], "PID", f"{STAP_EXAMPLES}/lwtools/opensnoop-nd.stp"),
    # syscount's stdout is a file's full buffer: line-buffered, its first line shows on time.
    ("syscount / syscalls_by_proc", ["stdbuf", "-oL", "/usr/sbin/syscount"], "Tracing",
     f"{STAP_EXAMPLES}/process/syscalls_by_proc.stp"),
]
# BCC's Python tools (bpfcc-tools) compile C with the kernel's headers at every start.
BCC_PYTHON = ["/usr/sbin/execsnoop-bpfcc", "/usr/sbin/tcpconnect-bpfcc", "/usr/sbin/funccount-bpfcc",
              "/usr/sbin/trace-bpfcc"]


def started(cmd, needle=None, timeout=60):
    """cmd started with stdout in a file, until it prints `needle` (or, for bpftap, writes its
    ready file). Returns (process, seconds to attached or None, peak RSS in KiB then)."""
    out = tempfile.NamedTemporaryFile(dir=TMP, delete=False, prefix="peer-out-")
    env = dict(os.environ)
    ready = os.path.join(TMP, f"ready-{time.monotonic_ns()}")
    env["BPFTAP_READY_FILE"] = ready
    t0 = time.monotonic()
    p = spawn(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    while time.monotonic() - t0 < timeout and p.poll() is None:
        with open(out.name, "rb") as f:
            text = f.read()
        if os.path.exists(ready) if needle is None else needle.encode() in text:
            kb = None
            with open(f"/proc/{p.pid}/status") as f:
                kb = next((int(l.split()[1]) for l in f if l.startswith("VmHWM:")), None)
            return p, time.monotonic() - t0, kb, out.name
        time.sleep(0.002)
    return p, None, None, out.name


def section_i():
    log("i. BCC's tools (left column: BCC, not bpftrace)")
    for tool in BCC_PYTHON:
        if not os.path.exists(tool):
            notes.append(f"i. {os.path.basename(tool)}: not installed (bpfcc-tools)")
            continue
        r = run([tool] + (["t:syscalls:sys_enter_getppid"] if "trace" in tool or "funccount" in tool else []),
                timeout=30)
        lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip() and "modprobe" not in l]
        notes.append(f"i. {os.path.basename(tool)} (BCC's Python tools) does not run here: exit "
                     f"{r.returncode}: {lines[0][:200] if lines else '(no output)'}")
    for what, bcc_cmd, needle, script in BCC_PEERS:
        if not os.path.exists(bcc_cmd[-1]):
            notes.append(f"i. {what}: {bcc_cmd[-1]} is not installed (libbpf-tools)")
            continue
        att = {"bcc": [], "bpftap": []}
        rss = {"bcc": [], "bpftap": []}
        stp = {"bcc": [], "bpftap": []}
        for _ in range(RUNS):
            for kind, cmd, want in (("bcc", bcc_cmd, needle), ("bpftap", [BPFTAP, script], None)):
                p, secs, kb, out = started(cmd, want)
                s, killed = stop(p, timeout=30)
                if secs is None or kb is None or killed:
                    with open(out, errors="replace") as f:
                        notes.append(f"i. {what}: a {kind} run failed: {first_line(f.read())}")
                    continue
                att[kind].append(secs * 1000)
                rss[kind].append(kb / 1024)
                stp[kind].append(s * 1000)
        label = f"vs BCC's {what} ({os.path.basename(script)})"
        add("i", f"{label}: exec → attached", median(att["bcc"]), median(att["bpftap"]), "ms")
        add("i", f"{label}: peak RSS while attached", median(rss["bcc"]), median(rss["bpftap"]), "MB")
        add("i", f"{label}: stop (SIGINT → exit)", median(stp["bcc"]), median(stp["bpftap"]), "ms")


# ---------------------------------------------------------------- j. attachments

def kernel_hz():
    try:
        with open(f"/boot/config-{platform.release()}") as f:
            return next((l.split("=")[1].strip() for l in f if l.startswith("CONFIG_HZ=")), "250")
    except OSError:
        return "250"


def attachments():
    """Each way bpftap hooks an event here: (what, benchload mode and its calls per run (None:
    no per-event cost to measure), bpftrace's script or why it has none, bpftap's or why not).
    Which attachment a script gets is lang/src/family/'s choice (see bench/README.md)."""
    n = args.loop
    return [
        ("syscall.getppid: bpftap raw_tp sys_enter + number filter, bpftrace perf-event tracepoint",
         ("loop", n), 'tracepoint:syscalls:sys_enter_getppid { }', 'probe syscall.getppid { }'),
        ('kernel.trace("syscalls:sys_enter_getppid"): bpftap raw_tp as above',
         ("loop", n), 'tracepoint:syscalls:sys_enter_getppid { }',
         'probe kernel.trace("syscalls:sys_enter_getppid") { }'),
        ("task:task_rename, perf-event tracepoint (the body reads a record field)",
         ("rename", n // 2), 'tracepoint:task:task_rename /args->pid == -1/ { @n = count(); }',
         'global n probe kernel.trace("task:task_rename") { if ($pid == -1) n++ }'),
        ("task:task_rename, tp_btf (the body reads the C argument $task)",
         ("rename", n // 2), "n/a (no tp_btf in 0.17)",
         'probe kernel.trace("task:task_rename") { t = $task }'),
        ("task_rename, raw_tp by name (the body reads nothing of the event)",
         ("rename", n // 2), 'rawtracepoint:task_rename { }',
         'probe kernel.trace("task:task_rename") { }'),
        ("uprobe on benchload's bench_hook()",
         ("uprobe", n // 10), f'uprobe:{LOAD}:bench_hook {{ }}',
         f'probe process("{LOAD}").function("bench_hook") {{ }}'),
        (f"timer.profile / profile:hz:{kernel_hz()} (perf event on every CPU)",
         None, f'profile:hz:{kernel_hz()} {{ }}', 'probe timer.profile { }'),
        ("netfilter link, IPv4 LOCAL_IN (per UDP datagram to itself on 127.0.0.1)",
         ("udp", n // 10), "n/a (no netfilter in 0.17)",
         'probe netfilter.hook("NF_INET_LOCAL_IN").pf("NFPROTO_IPV4") { }'),
        ("kernel.function / kfunc: fentry",
         None, 'kfunc:vfs_read { }', 'probe kernel.function("vfs_read") { }'),
        ("kprobe.function / kprobe",
         None, 'kprobe:vfs_read { }', 'probe kprobe.function("vfs_read") { }'),
    ]


def section_j():
    log("j. attachments: per-event cost, attach and detach of each kind")
    cases = attachments()
    base, res, errs = {}, {}, {}
    for _ in range(RUNS):
        for _what, work, *_ in cases:
            if work and work not in base:
                base[work] = []
        for work in base:
            s = loop_once(*work)
            if s is not None:
                base[work].append(s)
        for what, work, bts, taps in cases:
            for kind, script in (("bpftrace", bts), ("bpftap", taps)):
                if script.startswith("n/a"):
                    continue
                t, secs = attached(kind, script, (lambda t: loop_once(*work)) if work else None, timeout=60)
                if not t.ok or t.killed:
                    # its error lines say why (bpftrace warns first, and echoes the source)
                    said = [l.strip() for l in t.stderr().splitlines() if l.strip() and "RLIMIT_MEMLOCK" not in l]
                    errors = [l for l in said if re.search(r"error|fatal|cannot|×", l, re.I)]
                    errs[(what, kind)] = " / ".join(errors or said[-2:])[:300] or "not attached"
                    continue
                r = res.setdefault((what, kind), {"loop": [], "attach": [], "stop": []})
                r["attach"].append(t.ready_s * 1000)
                r["stop"].append(t.stop_s * 1000)
                if secs is not None:
                    r["loop"].append(secs)
    per_event = {w: median(xs) / w[1] * 1e6 for w, xs in base.items() if xs}
    for (mode, n), us in per_event.items():
        add("j", f"untraced: benchload {mode} (µs per call)", us, us, "µs/event", fmt="{:.3f}")
    for what, work, bts, taps in cases:
        def cell(kind, script, key, per=None):
            if script.startswith("n/a"):
                return script
            if (what, kind) not in res:
                return "fails here (notes)"
            m = median(res[(what, kind)][key])
            return m if per is None or m is None else per(m)
        if work and work in per_event:
            over = lambda secs: (secs - median(base[work])) / work[1] * 1e6
            add("j", f"{what}: overhead", cell("bpftrace", bts, "loop", over), cell("bpftap", taps, "loop", over),
                "µs/event", fmt="{:.3f}")
        add("j", f"{what}: exec → attached", cell("bpftrace", bts, "attach"), cell("bpftap", taps, "attach"), "ms")
        if any((what, kind) in res for kind in ("bpftrace", "bpftap")):
            add("j", f"{what}: stop (SIGINT → exit)", cell("bpftrace", bts, "stop"), cell("bpftap", taps, "stop"),
                "ms")
        for kind in ("bpftrace", "bpftap"):
            if (what, kind) in errs:
                notes.append(f"j. {what}: a {kind} run failed: {errs[(what, kind)]}")
            for key, xs in res.get((what, kind), {}).items():
                if xs:
                    notes.append(f"j. {what}: {kind} {key} samples: " + ", ".join(f"{x:.3f}" for x in xs))


# ---------------------------------------------------------------- k. scale curves

# curve title -> (x axis, unit, {series: {size: [samples]}})
curves = {}


def sample(curve, xlabel, unit, series, x, y):
    curves.setdefault(curve, (xlabel, unit, {}))[2].setdefault(series, {}).setdefault(x, []).append(y)


def sizes(top, step=10):
    """1, 10, 100... (or 1, 2, 4... for step 2) up to top, and top itself."""
    out = [1]
    while out[-1] * step <= top:
        out.append(out[-1] * step)
    return out + ([top] if out[-1] != top else [])


def growth(points):
    """The slope of log(y) against log(x) over the upper three sizes (least squares): 1 is
    linear, above ~1.15 worse than linear."""
    import math
    pts = sorted((x, y) for x, y in points.items() if y and y > 0 and x > 1)[-3:]
    if len(pts) < 2:
        return None
    lx = [math.log(x) for x, _ in pts]
    ly = [math.log(y) for _, y in pts]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


WORSE_THAN_LINEAR = 1.15


def curve_rows(curve, label=lambda x: ""):
    """The rows of a finished curve: its medians at each size, then its growth exponents."""
    xlabel, unit, series = curves[curve]
    meds = {s: {x: median(ys) for x, ys in pts.items()} for s, pts in series.items()}
    for x in sorted({x for pts in series.values() for x in pts}):
        add("k", f"{curve}: {x} {xlabel}{label(x)}", meds.get("bpftrace", {}).get(x),
            meds.get("bpftap", {}).get(x), unit, fmt="{:.3g}")
    exps = {s: growth(m) for s, m in meds.items()}
    worse = [s for s, e in exps.items() if e is not None and e > WORSE_THAN_LINEAR]
    # as text, so no ratio is made of two exponents
    show = lambda e: None if e is None else f"{e:.2f}"
    add("k", f"{curve}: growth exponent (log-log slope, upper sizes)", show(exps.get("bpftrace")),
        show(exps.get("bpftap")), "exponent", flag="worse than linear: " + ", ".join(worse) if worse else "")
    for s, e in exps.items():
        if s not in ("bpftrace", "bpftap") and e is not None:
            notes.append(f"k. {curve}: {s}'s growth exponent {e:.2f}"
                         + (" (worse than linear)" if e > WORSE_THAN_LINEAR else ""))
    for s, pts in series.items():
        notes.append(f"k. {curve}: {s} samples: " + "; ".join(
            f"{x}: " + ", ".join(f"{y:.4g}" for y in ys) for x, ys in sorted(pts.items())))


# Tracepoints the kernel refuses a sampling perf event (TRACE_EVENT_PERF_PERM: EPERM).
NO_PERF_EVENT = {"irq_vectors:irq_work_exit"}


def tracepoint_names(n):
    """n tracepoints that are perf-event tracepoints for both tools (syscalls' are raw_tp
    programs in bpftap), in sorted order."""
    with open("/sys/kernel/tracing/available_events") as f:
        events = sorted(l.strip() for l in f if not l.startswith(("syscalls:", "raw_syscalls:")))
    return [e for e in events if e not in NO_PERF_EVENT][:n]


def section_k():
    log("k. scale curves")
    curve_probes()
    curve_array()
    curve_printf()
    curve_maps()
    path = os.path.join(os.path.dirname(args.out) if ALL == args.only else TMP, "curves.svg")
    draw_curves(path)


def curve_probes():
    """Compile time (--emit-elf) and exec → attached, SIGINT → exit against N tracepoint probes."""
    for n in sizes(args.probes_max):
        tps = tracepoint_names(n)
        n = len(tps)
        scripts = {"bpftrace": "\n".join(f"tracepoint:{tp} {{ @n = count(); }}" for tp in tps),
                   "bpftap": "global n\n" + "\n".join(f'probe kernel.trace("{tp}") {{ n++ }}' for tp in tps)}
        for _ in range(args.curve_runs):
            for kind, script in scripts.items():
                src = os.path.join(TMP, f"probes-{kind}")
                with open(src, "w") as f:
                    f.write(script)
                t0 = time.monotonic()
                r = run([BPFTAP if kind == "bpftap" else BPFTRACE, "--emit-elf", src + ".elf", src], timeout=300)
                if r.returncode == 0:
                    sample("compile time", "probes", "ms", kind, n, (time.monotonic() - t0) * 1000)
                else:
                    notes.append(f"k. compile {n} probes: a {kind} run failed: {first_line(r.stderr)}")
                t, _ = attached(kind, script, timeout=300, env={"BPFTRACE_MAX_PROBES": str(n + 10)})
                if t.ok and not t.killed:
                    sample("exec → attached", "probes", "ms", kind, n, t.ready_s * 1000)
                    sample("stop (SIGINT → exit)", "probes", "ms", kind, n, t.stop_s * 1000)
                else:
                    notes.append(f"k. attach {n} probes: a {kind} run failed: {first_line(t.stderr())}")
    for curve in ("compile time", "exec → attached", "stop (SIGINT → exit)"):
        if curve in curves:
            curve_rows(curve)
    notes.append("k. probes: N tracepoints from available_events (syscalls' left out, which bpftap runs on "
                 "raw_syscalls, and " + ", ".join(sorted(NO_PERF_EVENT)) + ", which refuses perf events), each "
                 "counting (`n++` / `@n = count()`; BPFTRACE_MAX_PROBES raised from 512); compile is "
                 "`--emit-elf` in both tools")


def array_value(k):
    return k * 7919 % 1000003  # a permutation-like order, so sorting has work to do


def curve_array():
    """An array of N entries filled by N getppid of one process, printed sorted by value at
    exit: SIGINT → exit (the last line), against `sort -n -k2` of the same lines."""
    for n in sizes(args.array_max):
        text = os.path.join(TMP, "unsorted")
        with open(text, "w") as f:
            f.writelines(f"{k} {array_value(k)}\n" for k in range(n))
        for _ in range(args.curve_runs):
            t0 = time.monotonic()
            r = run(["sort", "-n", "-k2", "-o", text + ".sorted", text], env=dict(os.environ, LC_ALL="C"))
            if r.returncode == 0:
                sample("exit-time sorted print", "entries", "ms", "sort -n", n, (time.monotonic() - t0) * 1000)
            for kind in ("bpftrace", "bpftap"):
                ms, err = sorted_print(kind, n)
                if ms is None:
                    notes.append(f"k. sorted print of {n}: a {kind} run failed: {err}")
                else:
                    sample("exit-time sorted print", "entries", "ms", kind, n, ms)
    if "exit-time sorted print" in curves:
        sort_n = curves["exit-time sorted print"][2].get("sort -n", {})
        curve_rows("exit-time sorted print",
                   lambda x: f" (sort -n: {median(sort_n[x]):.3g} ms)" if sort_n.get(x) else "")
    notes.append("k. sorted print: the array filled from a getppid probe filtered on the loop's pid "
                 "(key = event number, value = key·7919 mod 1000003), printed at exit sorted by value "
                 "(`foreach (k in a+)` / bpftrace's map print); time from SIGINT to the tool's exit after "
                 "its last line; `sort -n -k2` (LC_ALL=C) sorts the same lines from a file to a file; "
                 "bpftap runs with `-D MAXACTION_INTERRUPTIBLE=2n`, which SystemTap needs as well past "
                 "10 000 statements in an end probe")


def sorted_print(kind, n):
    # the loop waits on its stdin for the tool to attach; its pid is the filter's
    gate = spawn(["sh", "-c", f"read _ && exec {shlex.quote(LOAD)} loop {n} >/dev/null"], stdin=subprocess.PIPE)
    value = "%s * 7919 %% 1000003"
    if kind == "bpftap":
        script = (f"global a[{max(n, 2)}], n\n"
                  f"probe syscall.getppid {{ if (pid() == {gate.pid}) {{ a[n] = {value % 'n'}; n++ }} }}\n"
                  'probe end { foreach (k in a+) printf("%d %d\\n", k, a[k]) }')
        line = re.compile(r"^\d+ \d+$", re.M)
    else:
        script = (f"tracepoint:syscalls:sys_enter_getppid /pid == {gate.pid}/ "
                  f"{{ @a[@n] = {value % '@n'}; @n = @n + 1; }}")
        line = re.compile(r"^@a\[\d+\]: \d+$", re.M)

    def fill(t):
        gate.stdin.write(b"\n")
        gate.stdin.close()
        return gate.wait(300)
    try:
        # SystemTap stops an end probe at MAXACTION_INTERRUPTIBLE statements (10 000); the
        # print takes about one per line
        options = ("-D", f"MAXACTION_INTERRUPTIBLE={max(10000, 2 * n)}") if kind == "bpftap" else ()
        t, rc = attached(kind, script, fill, timeout=300, options=options,
                         env={"BPFTRACE_MAP_KEYS_MAX": str(max(n, 4096))})
    finally:
        stop(gate, signal.SIGKILL)
    if not t.ok or t.killed or rc != 0:
        return None, first_line(t.stderr()) or "not attached, killed or loop failed"
    got = len(line.findall(t.stdout()))
    if got != n:
        return None, f"{got} lines, not {n}: {first_line(t.stderr())}"
    return t.stop_s * 1000, ""


def curve_printf():
    """µs per printed line against printf's argument count and a string's printed width."""
    events = args.curve_burst
    # bpftap's output buffer holds the whole burst (a printf record takes up to ~300 bytes
    # here): the curve is the cost of a line, not of the buffer's size. bpftrace 0.17 loses
    # nothing: it wakes its reader for every event, which slows the loop instead.
    options = {"bpftrace": (), "bpftap": ("-s", str(max(1, events * 300 >> 20)))}
    forms = [("printf arguments", "arguments", sizes(args.printf_args_max, 2),
              lambda k: ('"' + " ".join(["%d"] * k) + '\\n"', ", ".join(["pid"] * k), ", ".join(["pid()"] * k)),
              lambda k: lambda pid: " ".join([str(pid)] * k)),
             ("printf string width (%-Ws of the comm)", "columns", sizes(args.printf_width_max),
              lambda w: (f'"%d %-{w}s\\n"', "pid, comm", "pid(), execname()"),
              lambda w: lambda pid: f"{pid} benchload")]
    for curve, xlabel, xs, fmt, text in forms:
        for x in xs:
            f, bt_args, tap_args = fmt(x)
            scripts = {"bpftrace": f"tracepoint:syscalls:sys_enter_getppid {{ printf({f}, {bt_args}); }}",
                       "bpftap": f"probe syscall.getppid {{ printf({f}, {tap_args}) }}"}
            for _ in range(args.curve_runs):
                for kind, script in scripts.items():
                    r, err = burst(kind, script, options=options[kind], events=events, text=text(x))
                    if r is None:
                        notes.append(f"k. {curve} {x}: a {kind} run failed: {err}")
                        continue
                    got, secs, lost, _ = r
                    if got == events:
                        sample(curve, xlabel, "µs/line", kind, x, secs / got * 1e6)
                    else:
                        notes.append(f"k. {curve} {x}: {kind} printed {got} of {events} lines (no sample): "
                                     + "; ".join(sorted({m.strip()[:100] for m in lost})))
        if curve in curves:
            curve_rows(curve)
    notes.append(f"k. printf: a burst of {events} getppid as in e, each printing one line (bpftap with "
                 f"`{' '.join(options['bpftap'])}`); µs per line is the time from the loop's start to the last "
                 "line over the lines; a run that lost lines gives no sample")


MAPS_PER_PROGRAM = 50  # the kernel lets a program use at most 64 maps


def curve_maps():
    """Peak RSS once attached, and exec → attached, against the number of arrays (one BPF map
    each) getppid probes write, MAPS_PER_PROGRAM a probe."""
    for n in sizes(args.maps_max):
        groups = [range(i, min(i + MAPS_PER_PROGRAM, n)) for i in range(0, n, MAPS_PER_PROGRAM)]
        scripts = {"bpftrace": "\n".join("tracepoint:syscalls:sys_enter_getppid { "
                                         + " ".join(f"@a{i}[1] = 1;" for i in g) + " }" for g in groups),
                   "bpftap": "global " + ", ".join(f"a{i}[16]" for i in range(n)) + "\n"
                             + "\n".join("probe syscall.getppid { " + "; ".join(f"a{i}[1] = 1" for i in g) + " }"
                                         for g in groups)}
        for _ in range(args.curve_runs):
            for kind, script in scripts.items():
                t, _ = attached(kind, script, timeout=300, env={"BPFTRACE_MAP_KEYS_MAX": "16"})
                if t.ok and t.hwm and not t.killed:
                    sample("peak RSS", "maps", "MB", kind, n, t.hwm / 1024)
                    sample("exec → attached, maps", "maps", "ms", kind, n, t.ready_s * 1000)
                else:
                    notes.append(f"k. {n} maps: a {kind} run failed: {first_line(t.stderr())}")
    for curve in ("peak RSS", "exec → attached, maps"):
        if curve in curves:
            curve_rows(curve)
    notes.append(f"k. maps: N arrays of 16 entries (BPFTRACE_MAP_KEYS_MAX=16) written by getppid probes, "
                 f"{MAPS_PER_PROGRAM} a probe (a BPF program may use at most 64 maps)")


def draw_curves(path):
    """Every curve on log-log axes, bpftap and bpftrace (and sort -n) on the same axes."""
    if not curves:
        return
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
        # text as text and fixed ids: a smaller SVG whose diff from run to run is the curves'
        matplotlib.rcParams["svg.fonttype"] = "none"
        matplotlib.rcParams["svg.hashsalt"] = "bpftap"
    except ImportError as e:
        notes.append(f"k. no pictures: {e} (Debian's python3-matplotlib, for /usr/bin/python3)")
        return
    cols = 3
    rows_ = (len(curves) + cols - 1) // cols
    fig, axes = plt.subplots(rows_, cols, figsize=(5 * cols, 4 * rows_), squeeze=False)
    color = {"bpftrace": "tab:blue", "bpftap": "tab:orange", "sort -n": "tab:green"}
    for ax, (curve, (xlabel, unit, series)) in zip(axes.flat, curves.items()):
        for s, pts in sorted(series.items(), key=lambda item: list(color).index(item[0])):
            xs = sorted(x for x in pts if median(pts[x]))
            e = growth({x: median(pts[x]) for x in xs})
            ax.loglog(xs, [median(pts[x]) for x in xs], marker="o", color=color[s],
                      label=s + ("" if e is None else f" (exponent {e:.2f})"))
        sizes_drawn = sorted({x for pts in series.values() for x in pts})
        ax.set_xticks(sizes_drawn, [str(x) for x in sizes_drawn])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_title(curve)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    fig.suptitle(f"bpftap vs bpftrace: scale curves ({args.curve_runs} runs per point, medians)")
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    notes.append(f"k. curves drawn in {os.path.relpath(path, ROOT) if path.startswith(ROOT) else path}")
    log(f"drew {path}")


def main():
    secs = {"a": section_a, "b": section_b, "c": section_c, "d": section_d, "e": section_e,
            "f": section_f, "g": section_g, "h": section_h, "i": section_i, "j": section_j, "k": section_k}
    t0 = time.monotonic()
    load0 = open("/proc/loadavg").read().split()[:3]
    try:
        for s in args.only:
            try:
                secs[s]()
            except Exception as e:  # a broken section must not hide the others
                notes.append(f"{s}. section failed: {e!r}")
                log(f"section {s} failed: {e!r}")
    finally:
        cleanup()
        for f in os.listdir(TMP):
            if f not in ("RESULTS.md", "curves.svg"):
                os.unlink(os.path.join(TMP, f))
    global LOAD0
    LOAD0 = load0
    m = machine()
    print()
    print(table_text())
    md = ["# bpftap vs bpftrace: benchmark results", "",
          "Written by `bench/run.sh` (see `bench/README.md`). Every number is the median of "
          f"{RUNS} runs done side by side in one run of the harness; ratios are bpftap/bpftrace. "
          "Goals are from issue 7; none of this is a test assertion.", "",
          "## Machine", ""]
    md += [f"- {k}: {v}" for k, v in m]
    md += ["", "## Results", "", table_md(), "## Notes and samples", ""]
    seen = set()
    for n in notes:
        if n in seen:
            continue
        seen.add(n)
        md.append(n if n.startswith("a. bpftap -v") else f"- {n}")
    analysis = os.path.join(HERE, "ANALYSIS.md")
    if os.path.exists(analysis):
        md += ["", open(analysis).read()]
    md += ["", f"Harness wall time: {time.monotonic() - t0:.0f} s.", ""]
    if args.only == ALL:
        with open(args.out, "w") as f:
            f.write("\n".join(md))
        os.rmdir(TMP)
        log(f"wrote {args.out}")
    else:
        part = os.path.join(TMP, "RESULTS.md")
        with open(part, "w") as f:
            f.write("\n".join(md))
        log(f"partial run (--only {args.only}): wrote {part}, not {args.out}")


main()
