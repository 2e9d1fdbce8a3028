#!/usr/bin/env bash
# Seeds a corpus directory (the argument, by default fuzz/corpus/compile, not committed) with every script bpftap's tests and examples
# run, and SystemTap's own examples (Debian's systemtap-doc, where installed): the `PROG`
# lines of tests/e2e/*.test, tests/e2e/scripts, examples/, the lang and codegen-bpf test
# scripts, and /usr/share/systemtap/examples/**/*.stp. Each file is named by its hash, so
# running it again adds nothing new.
set -euo pipefail
out=$(realpath -m "${1:-$(dirname "$(realpath "$0")")/corpus/compile}")
cd "$(dirname "$(realpath "$0")")/.."
mkdir -p "$out"
add() { # text on stdin
    local tmp
    tmp=$(mktemp)
    cat >"$tmp"
    mv "$tmp" "$out/$(sha1sum <"$tmp" | cut -c1-40)"
}
sed -n 's/^PROG //p' tests/e2e/*.test | while IFS= read -r prog; do printf '%s\n' "$prog" | add; done
find tests/e2e/scripts examples lang/tests codegen-bpf/tests /usr/share/systemtap/examples \
    -name '*.stp' -type f 2>/dev/null | while IFS= read -r f; do add <"$f"; done
echo "$(ls "$out" | wc -l) inputs in $out"
