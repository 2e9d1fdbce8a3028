#!/bin/bash
# bpftap_prog_ids.sh [PID] > FILE: print the ids of the BPF programs named bpftap_p* (tracepoints,
# fentry) or bpftap_k* (kprobes) that process PID holds open, one a line. Without PID, PID is
# the bpftap that the e2e runner (this script's parent, when run as a BEFORE workload) started.
# Fails if there are none.
# Only this process's programs are listed, so bpftap runs elsewhere on the machine do not count.
set -euo pipefail
pid=${1:-}
if [[ -z $pid ]]; then
    for p in $(pgrep -P "$PPID"); do
        if [[ $(readlink "/proc/$p/exe" 2>/dev/null) == */bpftap ]]; then
            pid=$p
        fi
    done
fi
[[ -n $pid ]] || { echo "bpftap_prog_ids.sh: no bpftap child of $PPID" >&2; exit 1; }
found=0
for fd in /proc/"$pid"/fd/*; do
    [[ $(readlink "$fd" 2>/dev/null) == anon_inode:bpf-prog ]] || continue
    id=$(awk '$1 == "prog_id:" { print $2 }' "/proc/$pid/fdinfo/${fd##*/}")
    # Not `bpftool ... | grep -q`: under pipefail, grep leaving at the first match can kill
    # bpftool with SIGPIPE mid-output and fail the pipeline, which made a program go missing.
    info=$(bpftool prog show id "$id")
    if [[ $info =~ \ name\ bpftap_[pk] ]]; then
        echo "$id"
        found=1
    fi
done
[[ $found == 1 ]] || { echo "bpftap_prog_ids.sh: process $pid holds no bpftap_p or bpftap_k program" >&2; exit 1; }
