#!/bin/bash
# Run the VM suite of the e2e tests (the cases named "kernel: ...", mostly tests/e2e/
# kernel_function.test) inside a stock Debian kernel under QEMU, with run-in-vm.sh.
#
#   tests/vm/run-e2e.sh KERNEL_SPEC MODE
#
# KERNEL_SPEC is what run-in-vm.sh takes (6.1, 6.12, newest, linux-image-...). MODE is
#   fentry   bpftap chooses: fentry/fexit where the kernel allows them, else kprobes;
#   kprobes  BPFTAP_FORCE_KPROBES=1 asks bpftap to attach every kernel.function probe as a
#            kprobe/kretprobe. Cases that pass --kprobes themselves test kprobes in both modes.
#
# Builds nothing: the binaries must exist (scripts/test.sh builds them first).
#   BPFTAP_BIN       the bpftap to test           (default target/debug/bpftap)
#   BPFTAP_E2E_BIN   the e2e test binary           (default the newest target/debug/deps/e2e-*)
#   BPFTAP_VM_E2E_FILTER  the case-name filter     (default "kernel:")
# and run-in-vm.sh's BPFTAP_VM_* knobs (BPFTAP_VM_TIMEOUT defaults to 900 s here).
#
# Prints the runner's output, then one line
#   vm-e2e 6.1 (6.1.0-56-amd64) fentry: 38 passed, 0 failed, 0 skipped in 213 s
# and exits with the runner's status (non-zero when a case failed, the filter matched no
# case, or the VM failed: 124 timed out, 125 VM failure).
set -euo pipefail
cd "$(dirname "$(realpath "$0")")/../.."

[ $# -eq 2 ] || { echo "usage: $0 KERNEL_SPEC fentry|kprobes" >&2; exit 2; }
KERNEL=$1 MODE=$2
case $MODE in
    fentry) unset BPFTAP_FORCE_KPROBES ;;
    kprobes) export BPFTAP_FORCE_KPROBES=1 ;;
    *) echo "$0: MODE must be fentry or kprobes, not '$MODE'" >&2; exit 2 ;;
esac

export BPFTAP_BIN=${BPFTAP_BIN:-$PWD/target/debug/bpftap}
if [ -z "${BPFTAP_E2E_BIN:-}" ]; then
    BPFTAP_E2E_BIN=$(find target/debug/deps -maxdepth 1 -name 'e2e-*' -type f -perm -u+x \
        -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)
fi
[ -x "$BPFTAP_BIN" ] || { echo "$0: no bpftap at $BPFTAP_BIN: run cargo build first" >&2; exit 2; }
[ -n "$BPFTAP_E2E_BIN" ] && [ -x "$BPFTAP_E2E_BIN" ] \
    || { echo "$0: no e2e test binary: run cargo test --test e2e --no-run first" >&2; exit 2; }
BPFTAP_E2E_BIN=$(realpath "$BPFTAP_E2E_BIN")
BPFTAP_BIN=$(realpath "$BPFTAP_BIN")
export BPFTAP_E2E_FILTER=${BPFTAP_VM_E2E_FILTER:-kernel:}
export BPFTAP_VM_TIMEOUT=${BPFTAP_VM_TIMEOUT:-900}
# Under CI=true the runner fails (rather than skips) a case whose python3 is missing.
export BPFTAP_VM_PASSENV="${BPFTAP_VM_PASSENV:-} CI"

LOG=$(mktemp "${TMPDIR:-/tmp}/bpftap-vm-e2e.XXXXXX")
trap 'rm -f "$LOG"' EXIT
T0=$(date +%s)
set +e
tests/vm/run-in-vm.sh "$KERNEL" -- "$BPFTAP_E2E_BIN" 2>&1 | tee "$LOG"
RC=${PIPESTATUS[0]}
set -e
SECS=$(($(date +%s) - T0))

CACHE=${BPFTAP_VM_CACHE:-/var/cache/bpftap-vm}
RELEASE=$(cat "$CACHE/kernels/$(cat "$CACHE/spec/$KERNEL" 2>/dev/null)/release" 2>/dev/null || echo '?')
COUNTS=$(sed -n 's/^e2e: \([0-9]* passed, [0-9]* failed, [0-9]* skipped\)$/\1/p' "$LOG" | tail -1)
CASES=$(grep -cE '^(PASS|FAIL|SKIP) kernel:' "$LOG" || true)
if [ "$RC" = 0 ] && [ "$CASES" = 0 ]; then
    echo "run-e2e: the filter '$BPFTAP_E2E_FILTER' selected no case" >&2
    RC=1
fi
case $RC in
    0) ;;
    124) COUNTS="${COUNTS:+$COUNTS, }timed out after ${BPFTAP_VM_TIMEOUT}s" ;;
    125) COUNTS="${COUNTS:+$COUNTS, }VM failure" ;;
    *) COUNTS=${COUNTS:-"exit status $RC"} ;;
esac
echo "vm-e2e $KERNEL ($RELEASE) $MODE: $COUNTS in $SECS s"
exit "$RC"
