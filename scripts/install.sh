#!/usr/bin/env bash
# Installs bpftap on a Debian machine that has the Rust toolchain: the Debian packages it and
# its tests use, tracefs, a release build in /usr/local/bin/bpftap with its man page and bash
# completion, then a first real trace.
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
# The man page and bash completion, where Debian's man and bash-completion look for what is
# installed locally.
install -d /usr/local/share/man/man1 /usr/local/share/bash-completion/completions
/usr/local/bin/bpftap --generate man > /usr/local/share/man/man1/bpftap.1
/usr/local/bin/bpftap --generate bash > /usr/local/share/bash-completion/completions/bpftap

first_trace /usr/local/bin/bpftap
