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
#   BPFTAP_VM_MODULES   modules loaded in the guest      (default nfsd virtio_blk: the nfsd*.stp
#                       examples probe nfsd's functions, as SystemTap's install checks do on a
#                       host with it; virtio_blk for the disk)
#   BPFTAP_VM_DISK      default 1: a small virtio disk, since mbrwatch.stp's check reads the
#                       first partition of /proc/partitions
# and run-in-vm.sh's BPFTAP_VM_* knobs (BPFTAP_VM_TIMEOUT defaults to 1800 s here).
#
# Prints the runner's output, then one line
#   vm-compat newest (7.3.4+deb13-amd64) tests/compat/t2.txt: 58 passed, 0 failed in 600 s
# and exits with the runner's status (124 timed out, 125 VM failure).
set -euo pipefail
cd "$(dirname "$(realpath "$0")")/../.."

[ $# -eq 1 ] || { echo "usage: $0 KERNEL_SPEC" >&2; exit 2; }
KERNEL=$1

source tests/vm/lib.sh
resolve_bpftap
resolve_test_binary compat BPFTAP_COMPAT_BIN
export BPFTAP_COMPAT_LIST=${BPFTAP_COMPAT_LIST:-tests/compat/t2.txt}
export BPFTAP_VM_TIMEOUT=${BPFTAP_VM_TIMEOUT:-1800}
export BPFTAP_VM_MODULES=${BPFTAP_VM_MODULES-nfsd virtio_blk}
export BPFTAP_VM_DISK=${BPFTAP_VM_DISK-1}

run_binary_in_vm "$KERNEL" "$BPFTAP_COMPAT_BIN"
COUNTS=$(with_vm_status "$(sed -n 's/^compat: \([0-9]* passed, [0-9]* failed.*\)$/\1/p' "$LOG" | tail -1)")
echo "vm-compat $KERNEL ($RELEASE) $BPFTAP_COMPAT_LIST: $COUNTS in $SECS s"
exit "$RC"
