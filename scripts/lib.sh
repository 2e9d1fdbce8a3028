# Shared by scripts/install.sh and scripts/test.sh; sourced, not run.
# Every step is idempotent: a second run changes nothing and downloads nothing.

# What the tests need on the machine: python3 runs the workloads in tests/workloads, the
# SystemTap examples in systemtap-doc are the parser's corpus and the install checks' scripts,
# systemtap-common's tapsets are what the syscall variables are checked against, and iproute2 and iputils-ping
# are the network workloads' tools; python3-prometheus-client parses --metrics output in
# tests/prometheus.rs (with Debian's python3, which sees it).
TEST_PACKAGES=(python3 python3-prometheus-client systemtap-doc systemtap-common iproute2 iputils-ping bpftool man-db)

# What tests/vm/run-in-vm.sh needs to boot Debian kernels under QEMU (binutils: readelf, for
# the faster PVH boot). It would install them itself; scripts/test.sh does it first, so that a
# failure is reported as a missing prerequisite.
VM_PACKAGES=(qemu-system-x86 busybox-static cpio xz-utils zstd binutils)

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

# Runs the calling script ($SELF) again as root when it is not, keeping the Rust toolchain on
# PATH.
ensure_root() {
    [ "$(id -u)" -eq 0 ] && return 0
    command -v sudo >/dev/null || die "must run as root (and sudo is not installed)"
    exec sudo env "PATH=$PATH" "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}" \
        "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}" "CI=${CI:-}" "$SELF" "$@"
}

# Installs the Debian packages given that are not installed yet, running apt-get update first
# only when there is something to install.
apt_ensure() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" </dev/null
}

# bpftap reads tracepoint formats and probe lists from tracefs; mount it where it is missing.
mount_tracefs() {
    [ -d /sys/kernel/tracing/events ] && return 0
    mount -t tracefs tracefs /sys/kernel/tracing ||
        die "cannot mount tracefs on /sys/kernel/tracing"
}

# The fuzzing smoke run's tools: a nightly toolchain (libFuzzer needs its sanitizer
# coverage flags) and cargo-fuzz. A machine of this project's kind has one toolchain, stable,
# and can fetch no other, so without nightly the run is skipped, with the reason, even under
# CI=true. With nightly, CI=true installs cargo-fuzz (from crates.io) where it is missing;
# elsewhere its absence skips the run. Returns 1 when the run is to be skipped.
ensure_fuzz_tools() {
    rustup toolchain list 2>/dev/null | grep -q '^nightly' || {
        echo "fuzz smoke run: SKIP: no nightly toolchain, which libFuzzer needs (this machine cannot fetch one)"
        return 1
    }
    if [ "${CI:-}" = true ]; then
        cargo fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz || return 2
        return 0
    fi
    cargo fuzz --version >/dev/null 2>&1 || {
        echo "fuzz smoke run: SKIP: no cargo-fuzz (cargo install cargo-fuzz)"
        return 1
    }
}

# Fails early, with a clear message, when there is no Rust toolchain.
ensure_cargo() {
    command -v cargo >/dev/null ||
        die "cargo not found: install the Rust toolchain (https://rustup.rs) first"
}

# The install's first trace, with the bpftap binary given: count a workload's getppid calls,
# started once bpftap says it is attached. Fails unless both lines a user expects appear.
first_trace() {
    local bpftap=$1 ready out trace
    echo "running a first trace"
    ready="$(mktemp -u /tmp/bpftap-install.XXXXXX)"
    out="$(mktemp /tmp/bpftap-first-trace.XXXXXX)"
    BPFTAP_READY_FILE="$ready" "$bpftap" -T 2 -e '
        global calls
        probe begin { println("bpftap works") }
        probe syscall.getppid { calls++ }
        probe end { printf("%d getppid calls seen\n", calls) }' >"$out" &
    trace=$!
    for _ in $(seq 200); do
        [ -e "$ready" ] && break
        sleep 0.05
    done
    python3 tests/workloads/getppid_loop.py 100 >/dev/null
    wait "$trace" || { cat "$out"; rm -f "$ready" "$out"; die "the first trace failed"; }
    cat "$out"
    rm -f "$ready"
    if ! grep -qx 'bpftap works' "$out" || ! grep -qE '^([1-9][0-9]{2,}) getppid calls seen$' "$out"; then
        rm -f "$out"
        die "the first trace did not print 'bpftap works' and at least 100 getppid calls"
    fi
    rm -f "$out"
}
