//! Script text through passes 1-4 (parse, elaborate and type-check, lower, generate BPF), as
//! `bpftap -p4 -e TEXT` runs them, with the built-in tapsets. Any input must end in a compiled
//! object or diagnostics: a panic, a hang or a stack overflow is a finding.
//!
//! The kernel is a `lang::kernel::Fixture`, so that no input reaches the machine: the
//! tracepoints of the groups the tapsets use, copied once from this machine's tracefs when
//! it is readable (the more tracepoints resolve, the deeper inputs get), else a few built in.

#![no_main]

use std::sync::OnceLock;

use bpftap::driver;
use lang::kernel::{Fixture, FunctionSig, KernelInfo, TracepointField, TracepointFormat};
use lang::span::SourceKind;
use libfuzzer_sys::fuzz_target;

/// The tracepoint groups the built-in tapsets and the example scripts probe.
const GROUPS: &[&str] =
    &["syscalls", "raw_syscalls", "sched", "signal", "irq", "block", "kmem", "sock", "tcp", "net", "skb", "timer"];

/// Kernel functions with their parameter names (no types: the fixture has none).
const FUNCTIONS: &[(&str, &[&str])] = &[
    ("__probestub_sched_switch", &["__data", "preempt", "prev", "next"]),
    ("vfs_read", &["file", "buf", "count", "pos"]),
    ("vfs_write", &["file", "buf", "count", "pos"]),
    ("tcp_connect", &["sk"]),
    ("do_sys_openat2", &["dfd", "filename", "how"]),
];

fn kernel() -> Fixture {
    let mut k = Fixture::default();
    let live = runtime::kernel_info::LiveKernel::new();
    for (group, event) in live.tracepoints().into_iter().filter(|(g, _)| GROUPS.contains(&g.as_str())) {
        if let Ok(format) = live.tracepoint(&group, &event) {
            k.tracepoints.insert((group, event), format);
        }
    }
    if k.tracepoints.is_empty() {
        let field = |name: &str, c_type: &str, offset, size| TracepointField {
            name: name.into(),
            c_type: c_type.into(),
            offset,
            size,
            signed: true,
        };
        let mut add = |group: &str, event: &str, fields| {
            let format = TracepointFormat { group: group.into(), event: event.into(), common_fields: vec![], fields };
            k.tracepoints.insert((group.into(), event.into()), format);
        };
        let nr = || field("__syscall_nr", "int", 8, 4);
        add("syscalls", "sys_enter_getppid", vec![nr()]);
        add("syscalls", "sys_exit_getppid", vec![nr(), field("ret", "long", 16, 8)]);
        add("syscalls", "sys_enter_close", vec![nr(), field("fd", "unsigned int", 16, 8)]);
        add(
            "syscalls",
            "sys_enter_connect",
            vec![
                nr(),
                field("fd", "int", 16, 8),
                field("uservaddr", "struct sockaddr *", 24, 8),
                field("addrlen", "int", 32, 8),
            ],
        );
        add("sched", "sched_switch", vec![field("prev_pid", "pid_t", 24, 4), field("next_pid", "pid_t", 56, 4)]);
        add("sched", "sched_process_exit", vec![field("comm", "char[16]", 8, 16), field("pid", "pid_t", 24, 4)]);
    }
    for (name, params) in FUNCTIONS {
        let params = params.iter().map(|p| (p.to_string(), 0)).collect();
        k.functions.insert(name.to_string(), FunctionSig { name: name.to_string(), params, ret: 0 });
    }
    k
}

fn options() -> driver::Options {
    driver::Options {
        script_args: vec!["1".into(), "two".into()],
        string_capacity: 128,
        max_map_entries: 2048,
        max_action_interruptible: lang::lower::MAX_ACTION_INTERRUPTIBLE,
        verbose: 0,
        known: Default::default(),
        session: None,
        globals_plan: Default::default(),
        include: Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    static KERNEL: OnceLock<Fixture> = OnceLock::new();
    let Ok(text) = std::str::from_utf8(data) else { return };
    let kernel: &dyn KernelInfo = KERNEL.get_or_init(kernel);
    let _ = driver::compile("fuzz.stp", text, SourceKind::Script, 4, kernel, &options());
});
