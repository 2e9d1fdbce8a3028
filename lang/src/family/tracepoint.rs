//! `kernel.trace("group:event")`: a tracepoint. A handler that reads only the record's
//! fields (`$fd`) is a tracepoint program on a perf event; one that reads the tracepoint's C
//! arguments (`$prev->pid` of sched_switch) is a BTF-typed raw tracepoint (tp_btf), or a
//! plain raw tracepoint where the kernel has no tp_btf.

use super::{single, Attach, Context, KernelProgram};

pub(crate) fn record_program<'t>(group: &'t str, event: &'t str) -> KernelProgram<'t> {
    single(format!("tracepoint/{group}/{event}"), Context::Record, Attach::Tracepoint { group, event })
}

pub(crate) fn args_program(event: &str, nargs: u32) -> KernelProgram<'_> {
    single(format!("tp_btf/{event}"), Context::Args { nargs }, Attach::BtfRawTracepoint { event })
}
