//! A syscall tracepoint (`syscalls:sys_enter_NAME`, `raw_syscalls:sys_exit`, and so the
//! `syscall.NAME` aliases) run on raw_syscalls' raw tracepoint: it costs a fraction of a
//! perf-event tracepoint per event and detaches in a millisecond. The program serves the
//! handler's reads of the syscall's record from the raw tracepoint's arguments, and returns
//! at once for another syscall than its own.

use super::{single, Attach, Context, KernelProgram};

pub(crate) fn program(exit: bool, nr: Option<u32>) -> KernelProgram<'static> {
    let event = if exit { "sys_exit" } else { "sys_enter" };
    single(format!("raw_tp/{event}"), Context::Syscall { exit, only: nr }, Attach::RawTracepoint { event })
}
