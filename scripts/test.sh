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
cargo test --workspace --no-fail-fast "$@"
