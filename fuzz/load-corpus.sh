#!/usr/bin/env bash
# Loads the fuzzing corpus into the running kernel: issue 14 wants every program emitted for
# a fuzzed script either to load or to be refused by bpftap before the verifier. Each input
# that compiles at -p4 (with the fuzz target's script arguments `1 two`) is run with `-T 0`
# (load, attach, detach at once) by the bpftap given, as root; a verifier rejection is
# printed whole and counted, apart from "BPF program is too large" (the verifier's budget of a
# million instructions explored, not a bug of the code emitted; tests/load_all.rs lists the
# scripts known to hit it), counted on its own. Inputs that call system() are skipped: a mutated command line
# is not something to run as root. Usage: fuzz/load-corpus.sh BPFTAP [CORPUS_DIR]
set -uo pipefail
bin=$(realpath "$1")
corpus=$(realpath "${2:-$(dirname "$(realpath "$0")")/corpus/compile}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
inputs=0 compiled=0 loaded=0 rejected=0 too_large=0 stopped=0 skipped=0
for f in "$corpus"/*; do
    inputs=$((inputs + 1))
    if grep -qE '(^|[^_[:alnum:]])system[[:space:]]*\(' "$f" || ! iconv -f utf-8 -t utf-8 "$f" >/dev/null 2>&1; then
        skipped=$((skipped + 1))
        continue
    fi
    timeout 30 "$bin" -p4 "$f" 1 two >/dev/null 2>&1 || continue
    compiled=$((compiled + 1))
    timeout 60 "$bin" -T 0 "$f" 1 two >/dev/null 2>err
    status=$?
    if grep -q 'BPF program is too large' err; then
        too_large=$((too_large + 1))
        echo "too large for the verifier: $f"
    elif grep -q 'verifier rejected' err; then
        rejected=$((rejected + 1))
        echo "REJECTED $f"
        cat err
    elif [ "$status" = 0 ]; then
        loaded=$((loaded + 1))
    else
        stopped=$((stopped + 1))
        echo "not loaded ($status): $f: $(grep -m1 -E '×|bpftap:' err || head -1 err)"
    fi
done
echo "load-corpus: $inputs inputs, $skipped skipped (system() or not UTF-8), $compiled compiled at -p4:" \
    "$loaded loaded, $rejected rejected by the verifier, $too_large over its complexity budget," \
    "$stopped stopped before or at attach"
[ "$rejected" = 0 ]
