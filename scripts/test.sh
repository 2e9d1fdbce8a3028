#!/usr/bin/env bash
# Runs every test: installs what the tests need, mounts tracefs, then `cargo test` over the
# whole workspace, end-to-end tests included (they load BPF, so this runs as root).
# Extra arguments go to cargo test, e.g. `./scripts/test.sh --test e2e`.
set -euo pipefail
SELF="$(realpath "$0")"
cd "$(dirname "$SELF")/.."
source scripts/lib.sh

ensure_root "$@"
ensure_cargo
apt_ensure "${TEST_PACKAGES[@]}"
mount_tracefs
# --no-fail-fast: one failing test binary must not hide the results of the others.
rc=0
# The install command's first trace, with the binary the tests use.
cargo build --quiet && first_trace target/debug/bpftap || rc=1
cargo test --workspace --no-fail-fast "$@" || rc=$?

# test_binary NAME: the path of the test binary `cargo test --test NAME` builds.
test_binary() {
    local bin
    bin=$(cargo test --test "$1" --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p')
    [ -x "$bin" ] || { echo "vm tests: no $1 binary from cargo" >&2; return 1; }
    echo "$bin"
}
# kernel.function probes (fentry, kprobes) cannot run on this machine's kernel: the "kernel:"
# e2e cases run again inside stock Debian kernels under QEMU (tests/vm/run-e2e.sh), on the
# oldest and newest kernel, in both modes. BPFTAP_VM_TESTS=0 leaves them out;
# BPFTAP_VM_KERNELS and BPFTAP_VM_MODES choose others; BPFTAP_VM_JOBS runs that many VMs at
# once (default 2, one per core). Outside CI, a missing prerequisite (no qemu to install, no
# kernel to fetch) skips them with a message; under CI=true it fails the run.
# SystemTap's T2 install checks (tests/compat/t2.txt, the examples that need kernel.function
# probes) run in one more VM, on BPFTAP_VM_COMPAT_KERNELS (default newest; empty: none).
# And .bo objects compiled here run on each of BPFTAP_VM_KERNELS (tests/vm/run-bo.sh).
vm_tests() {
    local kernels=(${BPFTAP_VM_KERNELS:-6.1 newest}) modes=(${BPFTAP_VM_MODES:-fentry kprobes})
    local jobs=${BPFTAP_VM_JOBS:-2} t0=$SECONDS k m i pids=() logs=() vm_rc=0
    local skip_or_fail
    if [ "${CI:-}" = true ]; then skip_or_fail=fail; else skip_or_fail=skip; fi
    if ! apt_ensure "${VM_PACKAGES[@]}"; then
        echo "vm tests: cannot install ${VM_PACKAGES[*]}: $skip_or_fail"
        [ "$skip_or_fail" = skip ] && return 0 || return 1
    fi
    # The binaries the VMs run: build them here so that extra arguments to this script (say
    # `--test e2e`) still leave both in place, and name the e2e binary exactly.
    cargo build --quiet || return 1
    export BPFTAP_E2E_BIN BPFTAP_COMPAT_BIN
    BPFTAP_E2E_BIN=$(test_binary e2e) && BPFTAP_COMPAT_BIN=$(test_binary compat) || return 1
    local compat_kernels=(${BPFTAP_VM_COMPAT_KERNELS-newest})
    if [ "$skip_or_fail" = skip ]; then
        for k in "${kernels[@]}" "${compat_kernels[@]}"; do
            tests/vm/run-in-vm.sh "$k" -- true || {
                echo "vm tests: cannot boot kernel $k: skipped (they fail the run under CI=true)"
                return 0
            }
        done
    fi
    # vm_job NAME COMMAND...: COMMAND in the background once fewer than $jobs run, its output
    # in a log of its own (vm_job sees the caller's jobs, logs and pids: bash scoping).
    vm_job() {
        local name=$1
        shift
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
        logs+=("$(mktemp "${TMPDIR:-/tmp}/bpftap-vm-$name.XXXXXX")")
        "$@" >"${logs[-1]}" 2>&1 &
        pids+=($!)
    }
    for k in "${kernels[@]}"; do
        for m in "${modes[@]}"; do vm_job "$k-$m" tests/vm/run-e2e.sh "$k" "$m"; done
    done
    for k in "${compat_kernels[@]}"; do vm_job "compat-$k" tests/vm/run-compat.sh "$k"; done
    # .bo objects built here, run in the oldest and newest kernels (tests/vm/run-bo.sh).
    for k in "${kernels[@]}"; do vm_job "bo-$k" tests/vm/run-bo.sh "$k"; done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || vm_rc=1
    done
    # Each run's whole output, then the summary lines together.
    for i in "${!logs[@]}"; do cat "${logs[$i]}"; done
    echo "---- kernel VM suites ----"
    for i in "${!logs[@]}"; do tail -n 1 "${logs[$i]}"; rm -f "${logs[$i]}"; done
    echo "vm tests: $((SECONDS - t0)) s for ${#pids[@]} VM runs, $jobs at a time"
    return $vm_rc
}
# A minute (BPFTAP_FUZZ_SECONDS) of fuzzing passes 1-4 (fuzz/README.md), from the seed corpus
# alone (a campaign's corpus would take longer than that just to be read): any panic, hang or
# stack overflow fails the run and leaves its input in fuzz/artifacts. BPFTAP_FUZZ=0 leaves it
# out; without the nightly toolchain it is skipped; without cargo-fuzz too, except under
# CI=true, which installs it (see ensure_fuzz_tools).
fuzz_smoke() {
    local tools=0
    # The fuzz crate is outside the workspace: check it builds against today's driver on any
    # toolchain, so that it cannot drift unnoticed where the run itself is skipped.
    cargo check --quiet --manifest-path fuzz/Cargo.toml --bin compile || {
        echo "fuzz smoke run: the fuzz target does not build"
        return 1
    }
    ensure_fuzz_tools || tools=$?
    case $tools in
        0) ;;
        1) return 0 ;;
        *) echo "fuzz smoke run: cannot install cargo-fuzz"; return 1 ;;
    esac
    local corpus fuzz_rc=0
    corpus=$(mktemp -d "${TMPDIR:-/tmp}/bpftap-fuzz.XXXXXX")
    fuzz/seed-corpus.sh "$corpus"
    (cd fuzz && cargo +nightly fuzz run --sanitizer none compile "$corpus" -- \
        -max_total_time="${BPFTAP_FUZZ_SECONDS:-60}" -timeout=10 -dict=compile.dict -print_final_stats=1) ||
        fuzz_rc=1
    rm -rf "$corpus"
    return $fuzz_rc
}
if [ "${BPFTAP_FUZZ:-1}" != 0 ]; then
    fuzz_smoke || rc=1
fi
if [ "${BPFTAP_VM_TESTS:-1}" != 0 ]; then
    vm_tests || rc=1
fi
exit $rc
