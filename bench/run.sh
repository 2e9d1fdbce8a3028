#!/usr/bin/env bash
# bpftap vs bpftrace, side by side in one run; see bench/README.md.
# Installs what it needs (bpftrace, bpftool, time, gcc, python3, matplotlib) from Debian's packages when
# missing, builds bpftap in release (unless BPFTAP=path is given), compiles the C workloads
# into a temporary directory, runs every measurement, prints the table and writes
# bench/RESULTS.md. Extra arguments go to bench/bench.py (--runs N, --only abcdefghijk, ...).
set -euo pipefail
SELF="$(realpath "$0")"
cd "$(dirname "$SELF")/.."
source scripts/lib.sh

ensure_root "$@"
apt_ensure bpftrace bpftool time gcc libc6-dev python3 python3-matplotlib libbpf-tools bpfcc-tools
mount_tracefs
if [ -z "${BPFTAP:-}" ]; then
    ensure_cargo
    cargo build --release --quiet
    BPFTAP="$PWD/target/release/bpftap"
fi
[ -x "$BPFTAP" ] || die "no bpftap at $BPFTAP"

TOOLS="$(mktemp -d /tmp/bpftap-bench-tools.XXXXXX)"
trap 'rm -rf "$TOOLS"' EXIT
gcc -O2 -Wall -o "$TOOLS/benchload" bench/workload.c
gcc -O2 -Wall -o "$TOOLS/firstevent" bench/firstevent.c

# bpftrace asks for a larger RLIMIT_MEMLOCK; give both tools the same unlimited one.
ulimit -l unlimited 2>/dev/null || true
# Debian's python3, which sees python3-matplotlib (the curves' pictures); a pyenv shim may not.
/usr/bin/python3 bench/bench.py --bpftap "$BPFTAP" --bpftrace "$(command -v bpftrace)" --tools "$TOOLS" "$@"
