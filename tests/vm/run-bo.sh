#!/bin/bash
# Compile once here, run there (issue 15): builds .bo objects on this machine and runs them
# inside a stock Debian kernel under QEMU, with run-in-vm.sh.
#
#   tests/vm/run-bo.sh KERNEL_SPEC
#
# - port.bo reads only a tracepoint field (syscall.connect's address, for dport): it must run
#   there and report a connection to port 23.
# - fork.bo reads sched:sched_process_fork's parent_pid and child_pid, which sit at other
#   offsets in other kernels (12 and 20 on 6.18, 24 and 44 on 6.1): relocated, it must see
#   the -c command fork.
# - snoop.bo (tests/e2e/scripts/snoop.stp) also reads BTF members (euid() through
#   task_struct->cred, ppid() through real_parent), which sit elsewhere in other kernels
#   (cred at 1736 on 6.18, 3392 on 7.3): relocated, it must report the connection.
# - server.bo reads task_struct->dl_server, which kernels before 6.8 lack: on 6.1 it must be
#   refused, before anything loads, by an error naming the member, the struct and both
#   kernels; elsewhere it must run.
# - loop.bo counts a loop with the kernel's numeric iterator (bpf_iter_num, Linux 6.4+), whose
#   functions' BTF ids differ between kernels: rewritten, it must run on 7.3; on 6.1, which
#   lacks them, it must be refused naming the function.
#
# Builds nothing: target/debug/bpftap must exist. Prints one line per check and a summary;
# exits non-zero when a check failed (124/125: the VM timed out or failed, see run-in-vm.sh).
set -euo pipefail
cd "$(dirname "$(realpath "$0")")/../.."

[ $# -eq 1 ] || { echo "usage: $0 KERNEL_SPEC" >&2; exit 2; }
BIN=$PWD/target/debug/bpftap
[ -x "$BIN" ] || { echo "$0: no bpftap at $BIN: run cargo build first" >&2; exit 2; }
# Under the repository, not /tmp: the guest sees the host's / but has its own /tmp.
DIR=$(mktemp -d "$PWD/target/bo-vm.XXXXXX")
trap 'rm -rf "$DIR"' EXIT
"$BIN" -p4 -m "$DIR/port" -e 'probe syscall.connect { if (dport == 23) printf("%s connects to %d\n", execname(), dport) }' >/dev/null
"$BIN" -p4 -m "$DIR/snoop" tests/e2e/scripts/snoop.stp >/dev/null
"$BIN" -p4 -m "$DIR/fork" -e 'probe kernel.trace("sched:sched_process_fork") {
    if ($parent_pid == target()) printf("target forked %d\n", $child_pid) }' >/dev/null
"$BIN" -p4 -m "$DIR/server" -e 'probe kernel.trace("sched:sched_process_fork") {
    if ($parent_pid == target()) printf("dl_server %d\n", @cast(task_current(), "task_struct")->dl_server) }' >/dev/null
"$BIN" -p4 -m "$DIR/loop" -e 'global n probe begin { n = 4 } probe kernel.trace("sched:sched_process_fork") {
    if ($parent_pid == target()) { s = 0; for (i = 0; i < n; i++) s += i; printf("loop sum %d\n", s) } }' >/dev/null
# The guest's /root is empty: the system's python, not a pyenv shim.
cat > "$DIR/guest.sh" <<GUEST
#!/bin/bash
cd "$PWD"
echo "kernel: \$(uname -r)"
"$BIN" run "$DIR/port.bo" -T 30 -c "/usr/bin/python3 tests/workloads/connect.py 127.0.0.1 23" 2>&1
"$BIN" run "$DIR/snoop.bo" testport=23 -T 30 -c "/usr/bin/python3 tests/workloads/connect.py 127.0.0.1 23" 2>&1
echo "snoop rc=\$?"
"$BIN" run "$DIR/fork.bo" -T 30 -c "/bin/sh -c '/bin/true; /bin/true'" 2>&1
"$BIN" run "$DIR/server.bo" -T 30 -c "/bin/sh -c '/bin/true; /bin/true'" 2>&1
echo "server rc=\$?"
"$BIN" run "$DIR/loop.bo" -T 30 -c "/bin/sh -c '/bin/true; /bin/true'" 2>&1
echo "loop rc=\$?"
GUEST
chmod +x "$DIR/guest.sh"
set +e
out=$(tests/vm/run-in-vm.sh "$1" -- "$DIR/guest.sh")
rc=$?
set -e
echo "$out"
[ $rc -eq 0 ] || { echo "run-bo $1: the VM failed ($rc)"; exit $rc; }
failed=0
check() {
    if grep -Eq "$2" <<<"$out"; then echo "PASS $1"; else echo "FAIL $1"; failed=1; fi
}
check "port.bo runs and sees the connection" '^python3 connects to 23$'
check "fork.bo reads the fields where this kernel has them" '^target forked [0-9]+$'
check "snoop.bo reads the members where this kernel has them" 'python3\[[0-9]+\] uid=0 euid=0, parent \S+\[[0-9]+\]$'
if grep -q "^kernel: 6\.1\." <<<"$out"; then
    check "server.bo is refused, naming the member and both kernels" \
        "server\.bo: the object was compiled on $(uname -r) \(x86_64\) and cannot run on 6\.1\..*: member \`dl_server\` of struct task_struct: no such member here$"
    check "server.bo exits non-zero" '^server rc=[1-9]'
    check "loop.bo is refused, naming the iterator function" \
        "loop\.bo: the object was compiled on .*: kernel function \`bpf_iter_num_[a-z]+\`: programs cannot call it here$"
    check "loop.bo exits non-zero" '^loop rc=[1-9]'
else
    check "server.bo reads a member this kernel has" '^dl_server -?[0-9]+$'
    check "loop.bo runs its loop with this kernel's iterator" '^loop sum 6$'
fi
echo "run-bo $1: $([ $failed -eq 0 ] && echo passed || echo failed)"
exit $failed
