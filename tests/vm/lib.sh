# Shared by run-e2e.sh and run-compat.sh, which run one of the repository's harness-less test
# binaries (tests/e2e.rs, tests/compat.rs) inside a VM with run-in-vm.sh. Sourced from the
# repository's root.

# The bpftap to test: BPFTAP_BIN, else target/debug/bpftap; exported as an absolute path.
resolve_bpftap() {
    BPFTAP_BIN=${BPFTAP_BIN:-$PWD/target/debug/bpftap}
    [ -x "$BPFTAP_BIN" ] || { echo "$0: no bpftap at $BPFTAP_BIN: run cargo build first" >&2; exit 2; }
    BPFTAP_BIN=$(realpath "$BPFTAP_BIN")
    export BPFTAP_BIN
}

# resolve_test_binary NAME VAR: the test binary NAME (e2e, compat) to run: $VAR if set, else
# the newest target/debug/deps/NAME-*; VAR is set to its absolute path and exported.
resolve_test_binary() {
    local name=$1 var=$2 bin=${!2:-}
    if [ -z "$bin" ]; then
        bin=$(find target/debug/deps -maxdepth 1 -name "$name-*" -type f -perm -u+x \
            -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)
    fi
    [ -n "$bin" ] && [ -x "$bin" ] \
        || { echo "$0: no $name test binary: run cargo test --test $name --no-run first" >&2; exit 2; }
    printf -v "$var" '%s' "$(realpath "$bin")"
    export "${var?}"
}

# run_binary_in_vm KERNEL_SPEC BINARY: runs BINARY in the VM, its output shown and kept in
# $LOG (removed at exit); sets RC (the VM's status: 124 timed out, 125 VM failure), SECS
# and RELEASE (the guest kernel's release). Under CI=true the runners fail (rather than
# skip) what CI was to provide, so CI goes into the guest.
run_binary_in_vm() {
    export BPFTAP_VM_PASSENV="${BPFTAP_VM_PASSENV:-} CI"
    LOG=$(mktemp "${TMPDIR:-/tmp}/bpftap-vm-run.XXXXXX")
    trap 'rm -f "$LOG"' EXIT
    local t0 cache
    t0=$(date +%s)
    set +e
    tests/vm/run-in-vm.sh "$1" -- "$2" 2>&1 | tee "$LOG"
    RC=${PIPESTATUS[0]}
    set -e
    SECS=$(($(date +%s) - t0))
    cache=${BPFTAP_VM_CACHE:-/var/cache/bpftap-vm}
    RELEASE=$(cat "$cache/kernels/$(cat "$cache/spec/$1" 2>/dev/null)/release" 2>/dev/null || echo '?')
}

# with_vm_status COUNTS: the runner's closing counts, with what stopped the VM added (RC).
with_vm_status() {
    local counts=$1
    case $RC in
        0) ;;
        124) counts="${counts:+$counts, }timed out after ${BPFTAP_VM_TIMEOUT}s" ;;
        125) counts="${counts:+$counts, }VM failure" ;;
        *) counts=${counts:-"exit status $RC"} ;;
    esac
    echo "$counts"
}
