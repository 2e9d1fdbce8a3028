//! The probe families: for each kind of probe point, how it resolves to an [`ir::Target`],
//! what context its handler gets, which BPF program it compiles to and how the runtime
//! attaches it. ply's providers are the model: one module a family, and this table.
//!
//! | family | points | module |
//! | --- | --- | --- |
//! | user space | `begin`, `end`, `error`, `never`, `timer.s(N)`.., `prometheus`, `json_data`, `__stdin` | [`user_space`] |
//! | tracepoint | `kernel.trace("group:event")`: its record, or its C arguments | [`tracepoint`] |
//! | syscall | `syscalls:`/`raw_syscalls:` tracepoints, run on raw_syscalls' raw tracepoint | [`syscall`] |
//! | kernel function | `kernel.function("f")`, `kprobe.function("f")`, `module("m").function("f")`, `.return` | [`kernel_function`] |
//! | uprobe | `process("path").function("sym")`, `.return` | [`uprobe`] |
//! | perf | `timer.profile`, `perf.sw.cpu_clock`.. | [`perf`] |
//! | netfilter | `netfilter.hook("NF_INET_LOCAL_OUT").pf("NFPROTO_IPV4")`.. | [`netfilter`] |
//!
//! A family's module resolves its points (an `impl` of elaboration's context, or plain
//! functions) and gives [`KernelProgram`] for its targets: the code generator reads the
//! section and the [`Context`], the runtime the [`Attach`] mechanism, and neither matches on
//! `Target`. A new family whose context and attachment exist touches its module and this
//! table (a row of `family_point`, one of [`Target::kernel_program`]) besides its variant of
//! `Target`; a new context touches `codegen_bpf::emit` too, a new attachment
//! `runtime::loader`. User-space families run when the runtime's session says (`begin` at
//! start, timers on their clock), which `runtime::session` decides by their `Target`.

use crate::ast::ProbePoint;
use crate::elaborate::{Ctx, Resolved, Unresolved};
use crate::ir::{PerfEvent, PerfSample, Target};

pub mod kernel_function;
pub mod netfilter;
pub mod perf;
pub mod syscall;
pub mod tracepoint;
pub mod uprobe;
pub mod user_space;

/// The BPF program a kernel probe compiles to, and how it attaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelProgram<'t> {
    /// Its section in an ELF object (`--emit-elf`): `libbpf`'s name for the program type.
    pub section: String,
    /// What the program's context holds.
    pub context: Context,
    /// What the program returns (a netfilter program's verdict; 0 elsewhere).
    pub returns: i32,
    /// How the runtime attaches it.
    pub attach: Attach<'t>,
    /// A second form of the same handler, tried where the kernel refuses the first: the
    /// kprobe form of a function probe (`None` where the handler cannot have one).
    pub fallback: Option<Fallback>,
}

/// The other form of a handler ([`KernelProgram::fallback`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    pub section: String,
    pub context: Context,
}

/// What a kernel program's context holds, which decides how its handler reads arguments
/// and the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// A record read at fixed offsets: a tracepoint's (tracefs' format), or a netfilter
    /// program's `struct bpf_nf_ctx`.
    Record,
    /// fentry/fexit and raw tracepoints: the arguments as `u64`s, then (at an fexit) the
    /// return value.
    Args { nargs: u32 },
    /// kprobe/kretprobe and uprobes: `struct pt_regs`. At a return the argument registers
    /// hold other values, so arguments are only readable on entry.
    PtRegs { ret: bool },
    /// A perf event: it starts with the `struct pt_regs` it interrupted (no arguments, but
    /// `user_mode()` reads the privilege level there).
    PerfEvent,
    /// A syscall probe on raw_syscalls' raw tracepoint ([`Target::Syscall`]): the context is
    /// `(struct pt_regs *regs, long id)` at entry and `(regs, long ret)` at exit, from which
    /// the handler's reads of a syscall tracepoint's record are served. The program returns
    /// at once for a syscall other than `only`.
    Syscall { exit: bool, only: Option<u32> },
}

/// How the runtime attaches a kernel program: one way each, shared by the families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach<'t> {
    /// A tracepoint program on a perf event of the tracepoint's id.
    Tracepoint { group: &'t str, event: &'t str },
    /// A tracing program on the BTF typedef `btf_trace_EVENT` (tp_btf), else the same code
    /// as a raw tracepoint program on the event's name.
    BtfRawTracepoint { event: &'t str },
    /// A raw tracepoint program, by the event's name (no BTF to look up).
    RawTracepoint { event: &'t str },
    /// fentry/fexit on the function's BTF (a loaded module's, for `module`), else the
    /// [`KernelProgram::fallback`] as a kprobe/kretprobe, by name.
    Function { name: &'t str, module: Option<&'t str>, ret: bool },
    /// A uprobe or uretprobe on a symbol of an executable or library.
    Uprobe { path: &'t str, symbol: &'t str, ret: bool },
    /// A sampling perf event on every online CPU.
    PerfEvent { event: PerfEvent, sample: PerfSample },
    /// A netfilter link on a hook.
    Netfilter { pf: u32, hook: u32, priority: i32 },
}

impl Target {
    /// The program a kernel probe compiles to; `None` for a handler run in user space.
    pub fn kernel_program(&self) -> Option<KernelProgram<'_>> {
        Some(match self {
            Target::Begin { .. }
            | Target::End { .. }
            | Target::Error { .. }
            | Target::Timer { .. }
            | Target::Page { .. }
            | Target::Stdin => return None,
            Target::Tracepoint { group, event, .. } => tracepoint::record_program(group, event),
            Target::RawTracepoint { event, nargs } => tracepoint::args_program(event, *nargs),
            Target::Syscall { exit, nr, .. } => syscall::program(*exit, *nr),
            Target::KernelFunction { name, module, ret, nargs } => {
                kernel_function::program(name, module.as_deref(), *ret, *nargs)
            }
            Target::Uprobe { path, symbol, ret } => uprobe::program(path, symbol, *ret),
            Target::Perf { event, sample } => perf::program(*event, *sample),
            Target::Netfilter { pf, hook, priority } => netfilter::program(*pf, *hook, *priority),
        })
    }

    /// What `probefunc()` and `ppfunc()` give in the handler: the function probed, or the
    /// tracepoint's event; empty where there is neither.
    pub fn function_name(&self) -> &str {
        match self {
            Target::KernelFunction { name, .. } => name,
            Target::Tracepoint { event, .. } | Target::RawTracepoint { event, .. } | Target::Syscall { event, .. } => {
                event
            }
            _ => "",
        }
    }

    /// Handlers that run in user space, interpreted by the runtime.
    pub fn is_user_space(&self) -> bool {
        self.kernel_program().is_none()
    }
}

/// A program with no other form.
fn single<'t>(section: String, context: Context, attach: Attach<'t>) -> KernelProgram<'t> {
    KernelProgram { section, context, returns: 0, attach, fallback: None }
}

impl Ctx<'_> {
    /// The table of the families' points: a point no alias names, resolved by the family
    /// its component names select (the `syscall.NAME` points are tried before, in
    /// `elaborate`, as they give way to a tapset's alias of the same name).
    pub(crate) fn family_point(&mut self, point: &ProbePoint) -> Result<Vec<Resolved>, Unresolved> {
        let comps = &point.components;
        let names: Vec<&str> = comps.iter().map(|c| c.name.as_str()).collect();
        match names.as_slice() {
            [name] => user_space::named(name, &comps[0]).map(|r| vec![r]).ok_or(Unresolved::Unknown),
            ["timer", "profile"] => Ok(vec![perf::timer_profile(self.kernel)]),
            ["timer", unit] | ["timer", unit, "randomize"] => user_space::timer(unit, &comps[1]),
            ["netfilter", "hook", "pf"] | ["netfilter", "pf", "hook"] => netfilter::netfilter(point),
            ["perf", "sw", clock] | ["perf", "sw", clock, "sample"] if matches!(*clock, "cpu_clock" | "task_clock") => {
                perf::software(point, clock)
            }
            ["process", "function"] | ["process", "function", "call"] | ["process", "function", "return"] => {
                uprobe::process_function(point)
            }
            [family @ ("kernel" | "kprobe"), "function"]
            | [family @ ("kernel" | "kprobe"), "function", "call" | "return"] => self.function_point(family, point),
            ["module", "function"] | ["module", "function", "call" | "return"] => self.module_function_point(point),
            ["kernel", "trace"] => self.trace_point(point),
            _ => Err(Unresolved::Unknown),
        }
    }
}
