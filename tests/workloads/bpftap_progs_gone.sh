#!/bin/bash
# bpftap_progs_gone.sh FILE: succeed if FILE (written by bpftap_prog_ids.sh while bpftap ran)
# lists at least one program id, and none of those programs is still loaded. The kernel frees
# a program shortly after its last reference goes, so it is given a second to do so.
set -euo pipefail
[[ -s $1 ]] || { echo "bpftap_progs_gone.sh: $1 lists no program" >&2; exit 1; }
for _ in $(seq 10); do
    left=0
    while read -r id; do
        if bpftool prog show id "$id" >/dev/null 2>&1; then left=1; fi
    done < "$1"
    [[ $left == 0 ]] && exit 0
    sleep 0.1
done
status=0
while read -r id; do
    if bpftool prog show id "$id" >/dev/null 2>&1; then
        echo "bpftap_progs_gone.sh: program $id is still loaded:" >&2
        bpftool prog show id "$id" >&2
        status=1
    fi
done < "$1"
exit $status
