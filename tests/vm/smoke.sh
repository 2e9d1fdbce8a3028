#!/bin/bash
# Smoke test of the VM harness with the reference tool, bpftrace:
#   tests/vm/smoke.sh [KERNEL_SPEC...]        (default: 6.1 newest)
# On the host it builds two tiny probe targets (C and Rust) under target/vm-smoke/, then
# boots each kernel once and runs, inside the guest, a kprobe, a kretprobe, an fentry, a
# uprobe and a uretprobe with bpftrace, plus the host-built binaries. Needs bpftrace, gcc
# and rustc on the host (apt-get install -y bpftrace gcc).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$ROOT/target/vm-smoke

if [ "${1:-}" = --guest ]; then
    # Inside the guest (chrooted into the host's /).
    fail=0
    t0=$(cut -d' ' -f1 /proc/uptime)
    check() { # name expected-regex command...
        local name=$1 want=$2 s e out rc; shift 2
        s=$(cut -d' ' -f1 /proc/uptime)
        set +e; out=$(timeout 120 "$@" 2>&1); rc=$?; set -e
        e=$(cut -d' ' -f1 /proc/uptime)
        if [ $rc = 0 ] && grep -qE "$want" <<<"$out"; then
            printf 'ok   %-10s %6.1fs\n' "$name" "$(echo "$e - $s" | bc)"
        else
            printf 'FAIL %-10s %6.1fs rc=%s\n%s\n' "$name" "$(echo "$e - $s" | bc)" "$rc" "$out"
            fail=1
        fi
    }
    echo "kernel $(uname -r)"
    check python python3 /usr/bin/python3 -c 'import os; print("python3 in", os.uname().release)'
    check rust 'rust ok' "$OUT/hello-rs"
    check kprobe 'kprobe ok' bpftrace -e 'kprobe:do_sys_openat2 { printf("kprobe ok\n"); exit(); }' \
        -c '/bin/cat /etc/hostname'
    check kretprobe 'kretprobe ok' bpftrace -e 'kretprobe:do_sys_openat2 { printf("kretprobe ok %d\n", retval); exit(); }' \
        -c '/bin/cat /etc/hostname'
    check fentry 'fentry ok' bpftrace -e 'kfunc:vfs_read { printf("fentry ok %d\n", args->count); exit(); }' \
        -c '/bin/cat /etc/hostname'
    check uprobe 'uprobe ok 42' bpftrace -e "uprobe:$OUT/target:bpftap_probe_me { printf(\"uprobe ok %d\n\", arg0); exit(); }" \
        -c "$OUT/target"
    check uretprobe 'uretprobe ok 43' bpftrace -e "uretprobe:$OUT/target:bpftap_probe_me { printf(\"uretprobe ok %d\n\", retval); exit(); }" \
        -c "$OUT/target"
    printf 'all %.1fs\n' "$(echo "$(cut -d' ' -f1 /proc/uptime) - $t0" | bc)"
    exit $fail
fi

mkdir -p "$OUT"
cat >"$OUT/target.c" <<'EOF'
#include <stdio.h>
__attribute__((noinline)) int bpftap_probe_me(int x) { __asm__ volatile(""); return x + 1; }
int main(void) { printf("%d\n", bpftap_probe_me(42)); return 0; }
EOF
gcc -O1 -g -o "$OUT/target" "$OUT/target.c"
echo 'fn main() { println!("rust ok"); }' >"$OUT/hello.rs"
rustc -O -o "$OUT/hello-rs" "$OUT/hello.rs"

[ $# -gt 0 ] || set -- 6.1 newest
rc=0
for k in "$@"; do
    echo "== $k"
    BPFTAP_VM_VERBOSE=1 "$HERE/run-in-vm.sh" "$k" -- "$HERE/smoke.sh" --guest || rc=1
done
exit $rc
