#!/usr/bin/env bash
# Installs bpftap on a Debian machine that has the Rust toolchain: the Debian packages it and
# its tests use, tracefs, a release build in /usr/local/bin/bpftap, then a first real trace.
set -euo pipefail
SELF="$(realpath "$0")"
cd "$(dirname "$SELF")/.."
source scripts/lib.sh

ensure_root "$@"
ensure_cargo
# bpftrace is the reference the benchmarks in bench/ compare against.
apt_ensure "${TEST_PACKAGES[@]}" bpftrace
mount_tracefs
cargo build --release
install -m 0755 target/release/bpftap /usr/local/bin/bpftap

# A first trace: count a workload's getppid calls, started once bpftap says it is attached.
echo "running a first trace"
ready="$(mktemp -u /tmp/bpftap-install.XXXXXX)"
BPFTAP_READY_FILE="$ready" bpftap -T 2 -e '
    global calls
    probe begin { println("bpftap works") }
    probe syscall.getppid { calls++ }
    probe end { printf("%d getppid calls seen\n", calls) }' &
trace=$!
for _ in $(seq 100); do
    [ -e "$ready" ] && break
    sleep 0.05
done
python3 tests/workloads/getppid_loop.py 100 >/dev/null
wait "$trace"
rm -f "$ready"
