#!/bin/bash
# stp_bridges.sh SECONDS: two bridges with the spanning-tree protocol on, brA (bridge id
# 8000.02:00:00:00:0a:01, so the root) and brB (8000.02:00:00:00:0b:01), joined by a veth
# pair vA-vB, sending BPDUs every second (hello time 1 s) for SECONDS. Everything is made in
# a network namespace of this script's own (unshare), which the kernel tears down with its
# last process, links and all: nothing is left behind, however the script ends (SIGKILL too).
set -euo pipefail
[[ $# == 1 ]] || { echo "usage: $0 SECONDS" >&2; exit 2; }
if [[ ${STP_BRIDGES_IN_NETNS:-} != 1 ]]; then
    STP_BRIDGES_IN_NETNS=1 exec unshare --net "$0" "$@"
fi
for side in A B; do
    mac=02:00:00:00:0${side,,}:01
    ip link add "br$side" address "$mac" type bridge stp_state 1 hello_time 100 forward_delay 400
done
ip link add vA type veth peer name vB
ip link set vA master brA
ip link set vB master brB
for dev in vA vB brA brB; do
    ip link set "$dev" up
done
sleep "$1"
