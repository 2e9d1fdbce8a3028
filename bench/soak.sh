#!/usr/bin/env bash
# bench/soak.sh [SECONDS]: bpftap printing and counting under a syscall-heavy workload for
# SECONDS (default 600). Prints bpftap's RSS every 30 s, the events the workload
# made against those bpftap counted and printed, what it reported lost, and whether any
# bpftap program is left in the kernel afterwards. A benchmark, not a test: read the numbers.
set -euo pipefail
SELF="$(realpath "$0")"
cd "$(dirname "$SELF")/.."
source scripts/lib.sh
ensure_root "$@"
SECS=${1:-600}
BPFTAP=${BPFTAP:-target/release/bpftap}
[ -x "$BPFTAP" ] || cargo build --release --quiet
OUT=$(mktemp -d /tmp/bpftap-soak.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

# The workload: getppid in a loop, as fast as one python3 can, for the whole soak.
python3 -c "
import os, time
end = time.time() + $SECS + 5
n = 0
while time.time() < end:
    for _ in range(1000):
        os.getppid()
    n += 1000
print(n)" > "$OUT/made" &
WORKLOAD=$!
"$BPFTAP" -T "$SECS" -e "
global counted, printed
probe syscall.getppid {
    if (pid() != $WORKLOAD) next
    counted++
    if (counted % 100 == 0) { printed++; printf(\"%d %s\\n\", counted, execname()) }
}
probe end { printf(\"counted %d printed %d\\n\", counted, printed) }" > "$OUT/trace" 2> "$OUT/stderr" &
TAP=$!
# RSS every 30 s from 10 s on, while bpftap runs.
sleep 10
samples=()
while rss=$(awk '/^VmRSS/ { print $2 }' /proc/$TAP/status 2>/dev/null) && [ -n "$rss" ]; do
    samples+=("$rss")
    sleep 30
done
wait $TAP || true
wait $WORKLOAD || true
lines=$(grep -c ' python3$' "$OUT/trace" || true)
echo "soak: ${SECS} s; bpftap RSS every 30 s from 10 s on (KiB): ${samples[*]}"
tail -1 "$OUT/trace"
echo "soak: printed lines seen: $lines; workload calls made (incl. 5 s after the end): $(cat "$OUT/made")"
echo "soak: stderr: $(tr '\n' ' ' < "$OUT/stderr")"
# Programs another bpftap holds have pids; one this run left behind would have none.
left=$(bpftool -j prog show | python3 -c 'import json, sys
print(sum(1 for p in json.load(sys.stdin) if p.get("name", "").startswith("bpftap_") and not p.get("pids")))')
echo "soak: bpftap programs left in the kernel (held by no process): $left"
