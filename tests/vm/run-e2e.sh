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
# and run-in-vm.sh's BPFTAP_VM_* knobs (BPFTAP_VM_TIMEOUT defaults to 900 s here;
# BPFTAP_VM_DISK to 1 and BPFTAP_VM_MODULES to "virtio_blk ext4 crc32c_generic", for the e2e feature
# `disk`, BPFTAP_E2E_DISK=/dev/vda1).
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

source tests/vm/lib.sh
resolve_bpftap
resolve_test_binary e2e BPFTAP_E2E_BIN
export BPFTAP_E2E_FILTER=${BPFTAP_VM_E2E_FILTER:-kernel:}
export BPFTAP_VM_TIMEOUT=${BPFTAP_VM_TIMEOUT:-900}
# The disk cases (disktop.stp) write to an ext2 filesystem on the VM's small disk.
export BPFTAP_VM_DISK=${BPFTAP_VM_DISK-1}
# ext4 mounts ext2; on 6.1 it needs the crc32c crypto module too (built in or absent elsewhere).
export BPFTAP_VM_MODULES=${BPFTAP_VM_MODULES-virtio_blk ext4 crc32c_generic}
export BPFTAP_E2E_DISK=${BPFTAP_E2E_DISK-/dev/vda1}

run_binary_in_vm "$KERNEL" "$BPFTAP_E2E_BIN"
COUNTS=$(sed -n 's/^e2e: \([0-9]* passed, [0-9]* failed, [0-9]* skipped\)$/\1/p' "$LOG" | tail -1)
CASES=$(grep -cE '^(PASS|FAIL|SKIP) kernel:' "$LOG" || true)
if [ "$RC" = 0 ] && [ "$CASES" = 0 ]; then
    echo "run-e2e: the filter '$BPFTAP_E2E_FILTER' selected no case" >&2
    RC=1
fi
COUNTS=$(with_vm_status "$COUNTS")
echo "vm-e2e $KERNEL ($RELEASE) $MODE: $COUNTS in $SECS s"
exit "$RC"
