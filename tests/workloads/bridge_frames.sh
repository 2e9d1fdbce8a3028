#!/bin/bash
# bridge_frames.sh SECONDS: a bridge brF (spanning tree off, so its ports forward at once)
# with ports p1 and p2, veth peers of h1 and h2, which are no bridge ports. For SECONDS, five
# times a second, it sends two broadcast frames: one of EtherType 0x88b5 on h1, which brF
# receives on p1 and floods out of p2, and one of EtherType 0x88b6 on brF itself, which
# goes out of p1 and p2. As stp_bridges.sh, it lives in a network namespace of its own,
# torn down with its last process, so nothing is left behind however it ends.
set -euo pipefail
[[ $# == 1 ]] || { echo "usage: $0 SECONDS" >&2; exit 2; }
if [[ ${BRIDGE_FRAMES_IN_NETNS:-} != 1 ]]; then
    BRIDGE_FRAMES_IN_NETNS=1 exec unshare --net "$0" "$@"
fi
ip link add brF type bridge stp_state 0
for n in 1 2; do
    ip link add "p$n" type veth peer name "h$n"
    ip link set "p$n" master brF
    ip link set "p$n" up
    ip link set "h$n" up
done
ip link set brF up
python="$(python3 -c 'import sys; print(sys.executable)')"
exec "$python" - "$1" <<'PY'
import socket
import sys
import time


def sender(dev, ethertype):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    sock.bind((dev, ethertype))
    frame = b"\xff" * 6 + sock.getsockname()[4] + ethertype.to_bytes(2, "big") + b"bpftap".ljust(46, b"\0")
    return lambda: sock.send(frame)


sends = [sender("h1", 0x88B5), sender("brF", 0x88B6)]
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for send in sends:
        send()
    time.sleep(0.2)
PY
