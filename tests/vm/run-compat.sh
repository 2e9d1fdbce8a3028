#!/bin/bash
# Run SystemTap's T2 install checks (tests/compat/t2.txt: the examples that need
# kernel.function probes, directly or through tapset aliases) inside a stock Debian kernel
# under QEMU, with run-in-vm.sh: the compat test binary with BPFTAP_COMPAT_LIST, one VM for all.
#
#   tests/vm/run-compat.sh KERNEL_SPEC
#
# Builds nothing: the binaries must exist (scripts/test.sh builds them first).
#   BPFTAP_BIN          the bpftap to test              (default target/debug/bpftap)
#   BPFTAP_COMPAT_BIN   the compat test binary           (default the newest target/debug/deps/compat-*)
#   BPFTAP_COMPAT_LIST  the list                         (default tests/compat/t2.txt)
# and run-in-vm.sh's BPFTAP_VM_* knobs (BPFTAP_VM_TIMEOUT defaults to 1800 s here).
#
# Prints the runner's output, then one line
#   vm-compat newest (7.3.4+deb13-amd64) tests/compat/t2.txt: 58 passed, 0 failed in 600 s
# and exits with the runner's status (124 timed out, 125 VM failure).
set -euo pipefail
cd "$(dirname "$(realpath "$0")")/../.."

[ $# -eq 1 ] || { echo "usage: $0 KERNEL_SPEC" >&2; exit 2; }
KERNEL=$1

export BPFTAP_BIN=${BPFTAP_BIN:-$PWD/target/debug/bpftap}
export BPFTAP_COMPAT_LIST=${BPFTAP_COMPAT_LIST:-tests/compat/t2.txt}
if [ -z "${BPFTAP_COMPAT_BIN:-}" ]; then
    BPFTAP_COMPAT_BIN=$(find target/debug/deps -maxdepth 1 -name 'compat-*' -type f -perm -u+x \
        -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)
fi
[ -x "$BPFTAP_BIN" ] || { echo "$0: no bpftap at $BPFTAP_BIN: run cargo build first" >&2; exit 2; }
[ -n "$BPFTAP_COMPAT_BIN" ] && [ -x "$BPFTAP_COMPAT_BIN" ] \
    || { echo "$0: no compat test binary: run cargo test --test compat --no-run first" >&2; exit 2; }
BPFTAP_COMPAT_BIN=$(realpath "$BPFTAP_COMPAT_BIN")
BPFTAP_BIN=$(realpath "$BPFTAP_BIN")
export BPFTAP_VM_TIMEOUT=${BPFTAP_VM_TIMEOUT:-1800}
# Under CI=true the runner fails (rather than skips) when the examples are missing.
export BPFTAP_VM_PASSENV="${BPFTAP_VM_PASSENV:-} CI"

LOG=$(mktemp "${TMPDIR:-/tmp}/bpftap-vm-compat.XXXXXX")
trap 'rm -f "$LOG"' EXIT
T0=$(date +%s)
set +e
tests/vm/run-in-vm.sh "$KERNEL" -- "$BPFTAP_COMPAT_BIN" 2>&1 | tee "$LOG"
RC=${PIPESTATUS[0]}
set -e
SECS=$(($(date +%s) - T0))

CACHE=${BPFTAP_VM_CACHE:-/var/cache/bpftap-vm}
RELEASE=$(cat "$CACHE/kernels/$(cat "$CACHE/spec/$KERNEL" 2>/dev/null)/release" 2>/dev/null || echo '?')
COUNTS=$(sed -n 's/^compat: \([0-9]* passed, [0-9]* failed.*\)$/\1/p' "$LOG" | tail -1)
case $RC in
    0) ;;
    124) COUNTS="${COUNTS:+$COUNTS, }timed out after ${BPFTAP_VM_TIMEOUT}s" ;;
    125) COUNTS="${COUNTS:+$COUNTS, }VM failure" ;;
    *) COUNTS=${COUNTS:-"exit status $RC"} ;;
esac
echo "vm-compat $KERNEL ($RELEASE) $BPFTAP_COMPAT_LIST: $COUNTS in $SECS s"
exit "$RC"
