//! The typed intermediate representation: one control-flow graph per probe handler.
//!
//! Input: built by [`crate::lower`] from the elaborated, typed script. Output: consumed by
//! `codegen-bpf` (kernel handlers) and by the runtime's interpreter (user-space handlers,
//! [`Target::is_user_space`]: `begin`, `end`, `error`, interval timers, `prometheus`), which
//! is why the IR names no BPF register or instruction.
//!
//! The form is three-address code over mutable variables (not SSA): every [`Var`] has one
//! type, is written by any number of instructions and read by others. Locals of the script,
//! alias variables and temporaries are all `Var`s. In BPF, long variables become stack slots
//! and string variables fixed-capacity buffers in the per-CPU scratch area (see
//! `codegen_bpf::regalloc`).
//!
//! Invariants (checked by [`verify`]):
//! - every block ends in exactly one terminator, and every block id it names exists;
//! - every instruction's operands have the types the instruction expects;
//! - a handler's `entry` block exists.

use std::fmt;

use cranelift_entity::{entity_impl, PrimaryMap, SecondaryMap};

use crate::builtins::Builtin;
use crate::span::Span;

/// A basic block of a handler.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Block(u32);
entity_impl!(Block, "block");

/// A variable of a handler: a script local, an alias variable or a temporary.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Var(u32);
entity_impl!(Var, "v");

/// A script global.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GlobalId(u32);
entity_impl!(GlobalId, "g");

/// A global array or statistic.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ArrayId(u32);
entity_impl!(ArrayId, "a");

/// An interned printf/sprintf format.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FmtId(u32);
entity_impl!(FmtId, "fmt");

/// A compiled `=~` pattern.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RegexId(u32);
entity_impl!(RegexId, "re");

/// The two value types a variable can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Ty {
    Long,
    Str,
}

/// A whole compiled script.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Program {
    pub globals: PrimaryMap<GlobalId, GlobalDecl>,
    pub arrays: PrimaryMap<ArrayId, ArrayDecl>,
    pub formats: PrimaryMap<FmtId, FormatDecl>,
    /// The patterns of `=~`, each compiled once.
    pub regexes: PrimaryMap<RegexId, crate::regex::Regex>,
    pub handlers: Vec<Handler>,
    /// Capacity in bytes, the terminating NUL included, of every string a kernel handler
    /// holds, records and keys, and of the globals kept where kernel handlers reach them
    /// ([`GlobalStorage::Shared`]): `-D MAXSTRINGLEN`, 128 by default where SystemTap has 512,
    /// as BPF pays for each byte on the stack, in the scratch area and in every record.
    /// User-space handlers hold [`Program::user_string_capacity`].
    pub string_capacity: u32,
    /// Loop iterations a kernel handler may run before it reports MAXACTION and ends
    /// ([`InstKind::MaxActionExceeded`]): what its loop budget counts down from, and how many
    /// keys a kernel `foreach` snapshots.
    pub loop_budget: u32,
    /// The kernel's numeric iterator, which kernel loops count their budget with where the
    /// kernel has it (Linux 6.4+): the verifier checks a loop body until its states repeat,
    /// where a counter on the stack makes it walk every iteration (see `lower`'s
    /// `loop_budget`).
    pub loop_iterator: Option<LoopIterator>,
    /// Steps (IR instructions and block ends) a user-space handler may run before it is
    /// stopped, as SystemTap stops a probe at MAXACTION (`-D MAXACTION_INTERRUPTIBLE`).
    pub user_max_steps: u64,
    /// The tapsets' `__syscall_names` array, when the script uses it: the runtime fills it
    /// with the syscall table before the first probe runs.
    pub syscall_names: Option<ArrayId>,
    /// The machine the kernel handlers are compiled for: it fixes `struct pt_regs` offsets
    /// and syscall numbers.
    pub arch: crate::arch::Arch,
}

/// The BTF ids of the kernel functions (kfuncs) of `struct bpf_iter_num`, in the kernel
/// compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LoopIterator {
    pub new: u32,
    pub next: u32,
    pub destroy: u32,
}

/// SystemTap's MAXSTRINGLEN on 64-bit machines: the least a user-space handler's strings hold.
pub const SYSTEMTAP_MAXSTRINGLEN: u32 = 512;

impl Program {
    /// Capacity of the strings of user-space handlers and of [`GlobalStorage::UserSpace`]
    /// globals: SystemTap's 512, or `string_capacity` when that is larger. User space pays
    /// nothing per byte, so it keeps SystemTap's width whatever the kernel's.
    pub fn user_string_capacity(&self) -> u32 {
        self.string_capacity.max(SYSTEMTAP_MAXSTRINGLEN)
    }

    /// Capacity of a string global where it is stored.
    pub fn global_string_capacity(&self, decl: &GlobalDecl) -> u32 {
        match decl.storage {
            GlobalStorage::Shared => self.string_capacity,
            GlobalStorage::UserSpace => self.user_string_capacity(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GlobalDecl {
    pub name: String,
    pub ty: Ty,
    pub init: Option<Const>,
    /// Read somewhere in the script, or declared by a tapset: the globals that are not
    /// are printed at exit (SystemTap prints only the script's own).
    pub read: bool,
    pub storage: GlobalStorage,
}

/// Where a global's value is kept, so how wide a string global is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum GlobalStorage {
    /// Where kernel handlers address it: some kernel handler (or a function one calls)
    /// touches it, or later inputs of an interactive session might. A string holds
    /// [`Program::string_capacity`].
    #[default]
    Shared,
    /// Only user-space handlers touch it: it lies past everything kernel code addresses and
    /// a string holds [`Program::user_string_capacity`], SystemTap's width.
    UserSpace,
}

/// A global array (`keys` non-empty) or a scalar statistic (no keys, `value` Stat).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ArrayDecl {
    pub name: String,
    pub keys: Vec<Ty>,
    /// Bytes each key takes in the map's key: 8 for a long; for a string, what its values
    /// can need (16 when every use is `execname()`), at most the string capacity.
    pub key_widths: Vec<u32>,
    pub value: ValueKind,
    /// Entries the array can hold (MAXMAPENTRIES or the declared size).
    pub max_entries: u32,
    /// Declared with `%`: the oldest entries go when it is full, instead of an error.
    pub wrap: bool,
    /// Histogram buckets the statistic keeps.
    pub hist: HistSpec,
    /// Read somewhere in the script, or declared by a tapset: see [`GlobalDecl::read`].
    pub read: bool,
    /// A counter of longs kernel handlers only add to (`c[k]++`), outside an interactive
    /// session: one counter per CPU, which its CPU adds to without an atomic operation and
    /// without taking the cache line from the others. Whoever reads it sums the CPUs'.
    pub per_cpu: bool,
}

/// Which histograms a statistic keeps buckets for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HistSpec {
    pub log: bool,
    /// `(lo, hi, step)` of `@hist_linear`.
    pub linear: Option<(i64, i64, i64)>,
}

/// Most buckets a linear histogram may have, under/overflow included (stap's `STP_MAX_BUCKETS`).
pub const MAX_LINEAR_BUCKETS: usize = 128;

/// The buckets of `@hist_linear(s, lo, hi, step)`, under- and overflow included:
/// `(hi - lo) / step + 3`, or `None` where stap refuses the parameters (no bucket, more than
/// [`MAX_LINEAR_BUCKETS`], or a range that does not fit in 64 bits). The one check of them,
/// used by the type checker, the code generator and the runtime.
pub fn linear_buckets(lo: i64, hi: i64, step: i64) -> Option<usize> {
    if step <= 0 {
        return None;
    }
    let n = (hi.checked_sub(lo)? / step).checked_add(3)?;
    (3..=MAX_LINEAR_BUCKETS as i64).contains(&n).then_some(n as usize)
}

pub use crate::types::ValueKind;

/// A statistic's summary value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum StatOp {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    Variance,
}

/// A histogram to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum HistKind {
    Log,
    Linear { lo: i64, hi: i64, step: i64 },
}

/// How `foreach` orders the elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SortSpec {
    /// 0 sorts by the value, `i + 1` by the i-th key.
    pub column: usize,
    pub ascending: bool,
    /// For statistics: which summary the value column means (`@count` by default).
    pub stat: StatOp,
}

/// An iteration in progress (a `foreach`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IterId(u32);
entity_impl!(IterId, "it");

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Const {
    Long(i64),
    Str(String),
}

/// A format string with the types of the arguments it takes, in order.
#[derive(Clone, Debug, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FormatDecl {
    pub text: String,
    /// `text` parsed, once: the emitter, the decoder and the interpreter format with it.
    pub format: crate::printf::Format,
    pub args: Vec<Ty>,
    /// Arguments (by position) that a kernel probe's `printf` carries as the long argument of
    /// a user-space function, which the runtime applies before formatting:
    /// `printf("%s", errno_str(e))` records `e` (see [`crate::builtins::Builtin::deferrable`]).
    pub deferred: Vec<(usize, crate::builtins::Builtin)>,
    /// Where a kernel probe's record of this format goes.
    pub sink: Sink,
}

/// What the runtime does with the text of a kernel probe's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Sink {
    /// The script's output (`printf`, `print`, ...).
    #[default]
    Output,
    /// bpftap's stderr (`warn`).
    Stderr,
    /// `error(msg)`: the script stops with this message, as when a user-space probe calls it.
    Error,
    /// A shell command to start (`system`).
    Command,
}

/// Where and when a handler runs.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Target {
    /// `begin(priority)`: user space, before kernel probes fire.
    Begin { priority: i64 },
    /// `end(priority)`: user space, at exit.
    End { priority: i64 },
    /// `error`: user space, when the script stops because of an error.
    Error { priority: i64 },
    /// `timer.ms(N)` and friends: user space, every `interval_ns`.
    Timer { interval_ns: u64 },
    /// A page of the `--metrics` endpoint: user space, once per GET of `path`; what it
    /// prints is the response body. `prometheus` serves [`METRICS_PATH`], `json_data`
    /// [`JSON_DATA_PATH`] (and json.stp's `__json_metadata` [`JSON_METADATA_PATH`]), where
    /// SystemTap serves procfs files. Without `--metrics` it never runs, as in SystemTap when
    /// nobody reads the file.
    Page {
        #[cfg_attr(feature = "serde", serde(with = "page_path"))]
        path: PagePath,
    },
    /// `__stdin`: user space, once for each byte read from bpftap's standard input, with the
    /// byte in the global `__stdin_char` (the `input.char` and `input.line` aliases of
    /// `tapsets/input.stp` build on it, as SystemTap's do on its `__stdin` procfs file). At
    /// the end of the input it runs no more.
    Stdin,
    /// A kernel tracepoint; handler code reads fields at offsets within `record_size`.
    Tracepoint { group: String, event: String, record_size: u32 },
    /// A tracepoint whose handler reads the tracepoint's C arguments (`$prev` of
    /// sched_switch) rather than its record: a BTF-typed raw tracepoint (`tp_btf`) where the
    /// kernel allows one, a plain raw tracepoint otherwise. Either way the context is the
    /// `nargs` arguments as `u64`s, as an fentry program's is.
    RawTracepoint { event: String, nargs: u32 },
    /// A probe on a syscall tracepoint (`syscalls:sys_enter_NAME`, `raw_syscalls:sys_exit`)
    /// run on raw_syscalls' raw tracepoint (`sys_exit` with `exit`, else `sys_enter`): it costs a fraction of a perf-event tracepoint per event, and detaches in
    /// a millisecond where a perf event takes tens. The handler still reads the record of
    /// `event` (a syscall tracepoint's record is the number at offset 8, then one 8-byte slot
    /// per argument or the result), which code generation reads from the raw tracepoint's
    /// arguments `(struct pt_regs *regs, long id_or_ret)`. The raw tracepoint fires for every
    /// syscall: a `syscalls:` event's handler runs only for its syscall's number `nr`.
    Syscall { event: String, exit: bool, nr: Option<u32> },
    /// Entry to (or, with `ret`, return from) a kernel function: fentry/fexit where the
    /// kernel allows them, kprobe/kretprobe otherwise (the runtime decides at attach time,
    /// so both variants are compiled). `module` names the loaded module the function is in
    /// (`module("nfsd").function(...)`), whose BTF object fentry attaches through; `None`
    /// for the kernel's own.
    KernelFunction {
        name: String,
        #[cfg_attr(feature = "serde", serde(default))]
        module: Option<String>,
        ret: bool,
        nargs: u32,
    },
    /// Entry to (or return from) a function of a user-space executable or library: a uprobe.
    Uprobe { path: String, symbol: String, ret: bool },
    /// A perf event sampled on every CPU: `timer.profile`, `perf.sw.cpu_clock`.
    Perf { event: PerfEvent, sample: PerfSample },
    /// A netfilter hook (a BPF netfilter program on a netfilter link, kernel 6.4+); the
    /// context is `struct bpf_nf_ctx { state, skb }`. The program always accepts the packet.
    Netfilter { pf: u32, hook: u32, priority: i32 },
}

/// The pages of the `--metrics` endpoint (see [`Target::Page`]).
pub const METRICS_PATH: &str = "/metrics";
pub const JSON_DATA_PATH: &str = "/data.json";
pub const JSON_METADATA_PATH: &str = "/metadata.json";

/// One of the pages above. An alias because serde's derive would borrow a field spelled
/// `&'static str` from the input, which a `.bo` read does not outlive.
pub type PagePath = &'static str;

/// [`Target::Page`]'s path in a serialized program: written as text, read back as one of the
/// pages above (anything else is an error), so the target keeps its `&'static str`.
#[cfg(feature = "serde")]
mod page_path {
    pub fn serialize<S: serde::Serializer>(path: &&'static str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(path)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        [super::METRICS_PATH, super::JSON_DATA_PATH, super::JSON_METADATA_PATH]
            .into_iter()
            .find(|p| *p == text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown metrics page `{text}`")))
    }
}

/// The software perf events a probe can sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PerfEvent {
    CpuClock,
    TaskClock,
}

/// How often a perf event fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PerfSample {
    /// Times per second.
    Frequency(u64),
    /// Every N events (nanoseconds for the clocks).
    Period(u64),
}

/// One probe handler: one resolved probe point and its code.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Handler {
    /// The probe point as the user would write it resolved, e.g. `kernel.trace("syscalls:sys_enter_connect")`.
    pub point: String,
    /// The point as the script names it, wildcards expanded, e.g. `syscall.connect`: what
    /// output records and reports call the probe.
    pub user_point: String,
    pub target: Target,
    pub func: Function,
    pub span: Span,
    /// A match of a wildcard, or of a point marked `?`/`!`: the runtime skips it, with a
    /// warning, where the kernel refuses to attach it (some other probe of the script
    /// attaching), as SystemTap skips functions it cannot probe.
    #[cfg_attr(feature = "serde", serde(default))]
    pub optional: bool,
}

#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Function {
    pub vars: PrimaryMap<Var, VarDecl>,
    pub blocks: PrimaryMap<Block, BlockData>,
    pub entry: Option<Block>,
    /// The variables set by `Binary { op: Add, rhs: Imm(offset) }` where `offset` is a
    /// kernel struct member's, with the member: another kernel may have it elsewhere, and a
    /// compiled object moves it there (`codegen_bpf::kernel_facts`).
    pub member_offsets: Vec<(Var, MemberOffset)>,
}

/// A struct member's offset as the compiling kernel's BTF gave it: what was asked,
/// `member(ty, member)` (a member of an anonymous struct or union inside counts as the
/// struct's own, as `KernelInfo::member` finds it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MemberOffset {
    /// The struct's BTF type id on the compiling kernel.
    pub ty: crate::kernel::TypeId,
    pub member: String,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct VarDecl {
    pub ty: Ty,
    /// The script name for locals; `None` for temporaries.
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BlockData {
    pub insts: Vec<Inst>,
    pub term: Terminator,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Inst {
    pub kind: InstKind,
    /// The script text this instruction came from (for `-p4` and verifier errors).
    pub span: Span,
}

/// A long operand: a variable or an immediate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Operand {
    Var(Var),
    Imm(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Shl,
    Shr,
    And,
    Or,
    Xor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum UnOp {
    Neg,
    BitNot,
    /// Logical not: 1 if zero, else 0.
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Which address space a pointer read goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AddrSpace {
    Kernel,
    User,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum InstKind {
    Const {
        dst: Var,
        value: i64,
    },
    StrConst {
        dst: Var,
        value: String,
    },
    /// `dst = src`, both of the same type.
    Copy {
        dst: Var,
        src: Var,
    },
    Unary {
        op: UnOp,
        dst: Var,
        src: Var,
    },
    Binary {
        op: BinOp,
        dst: Var,
        lhs: Var,
        rhs: Operand,
    },
    /// Long comparison, `dst` is 0 or 1.
    Compare {
        op: CmpOp,
        dst: Var,
        lhs: Var,
        rhs: Operand,
    },
    /// String comparison (bytewise, as `strcmp`), `dst` is 0 or 1.
    StrCompare {
        op: CmpOp,
        dst: Var,
        lhs: Var,
        rhs: Var,
    },
    /// `dst = subject =~ regex`, 0 or 1. In user space it also keeps the groups of a match
    /// for `matched(n)`, hence a side effect.
    RegexMatch {
        dst: Var,
        regex: RegexId,
        subject: Var,
    },
    /// `dst = lhs . rhs`, truncated to the string capacity.
    Concat {
        dst: Var,
        lhs: Var,
        rhs: Var,
    },
    /// A field of the probe's context record (a tracepoint's), `size` in bytes.
    LoadContext {
        dst: Var,
        offset: u32,
        size: u8,
        signed: bool,
    },
    /// A `__data_loc char[]` string field of a tracepoint record.
    LoadContextDataLoc {
        dst: Var,
        offset: u32,
    },
    /// A fixed-size `char[N]` field of the context record.
    LoadContextStr {
        dst: Var,
        offset: u32,
        len: u32,
    },
    /// `*(size *)addr` read with a fault-safe helper; 0 on fault. Inside `try`, `fault` is
    /// set to 1 on a fault and 0 otherwise (for `lower` to branch to the `catch`).
    Read {
        dst: Var,
        addr: Var,
        size: u8,
        signed: bool,
        space: AddrSpace,
        fault: Option<Var>,
    },
    /// The NUL-terminated string at `addr`, at most `limit` bytes of it when given
    /// (`kernel_string_n`); on fault `fallback`, or "" without one.
    ReadStr {
        dst: Var,
        addr: Var,
        space: AddrSpace,
        fallback: Option<Var>,
        limit: Option<Var>,
    },
    /// A built-in function of the language's library.
    Call {
        dst: Option<Var>,
        builtin: Builtin,
        args: Vec<Var>,
    },
    /// `dst = sprintf(fmt, args...)`.
    Sprintf {
        dst: Var,
        fmt: FmtId,
        args: Vec<Var>,
    },
    /// `printf(fmt, args...)` (also `print`/`println`, with formats made by `lower`).
    Printf {
        fmt: FmtId,
        args: Vec<Var>,
    },
    LoadGlobal {
        dst: Var,
        global: GlobalId,
    },
    StoreGlobal {
        global: GlobalId,
        src: Var,
    },
    /// `global += src` without losing concurrent updates (long globals only).
    AddGlobal {
        global: GlobalId,
        src: Var,
    },
    /// `exit()`: ask the runtime to stop after this handler.
    Exit,
    /// Argument `index` of the probed kernel function.
    LoadArg {
        dst: Var,
        index: u32,
    },
    /// The probed kernel function's return value (`$return`).
    LoadReturn {
        dst: Var,
    },
    /// A kernel handler ran more loop iterations than MAXACTION allows: report it and end
    /// the script (as SystemTap does), then end the handler.
    MaxActionExceeded,
    /// Where an outermost kernel loop starts, with [`Program::loop_iterator`]: the handler's
    /// iterator starts a fresh budget of [`Program::loop_budget`] iterations.
    LoopStart,
    /// One iteration of a kernel loop, with [`Program::loop_iterator`]: `dst` is non-zero
    /// while the budget [`InstKind::LoopStart`] started lasts.
    LoopStep {
        dst: Var,
    },
    /// `dst = array[keys]`; 0 or "" when absent.
    ArrayGet {
        dst: Var,
        array: ArrayId,
        keys: Vec<Var>,
    },
    ArraySet {
        array: ArrayId,
        keys: Vec<Var>,
        src: Var,
    },
    /// `array[keys] += src` without losing concurrent updates.
    ArrayAdd {
        array: ArrayId,
        keys: Vec<Var>,
        src: Var,
    },
    /// `delete array[keys]`.
    ArrayDelete {
        array: ArrayId,
        keys: Vec<Var>,
    },
    /// `delete array[pattern]` with `*` among the keys: every element whose keys equal the
    /// pattern's where it has a `Some`.
    ArrayDeleteMatching {
        array: ArrayId,
        keys: Vec<Option<Var>>,
    },
    /// `delete array`.
    ArrayClear {
        array: ArrayId,
    },
    /// `dst = [keys] in array`.
    ArrayContains {
        dst: Var,
        array: ArrayId,
        keys: Vec<Var>,
    },
    /// `dst = [pattern] in array` with `*` among the keys (see `ArrayDeleteMatching`).
    ArrayContainsMatching {
        dst: Var,
        array: ArrayId,
        keys: Vec<Option<Var>>,
    },
    /// `array[keys] <<< value`.
    StatAdd {
        array: ArrayId,
        keys: Vec<Var>,
        value: Var,
    },
    /// `dst = @op(array[keys])` (user space: merges the CPUs).
    StatGet {
        dst: Var,
        array: ArrayId,
        keys: Vec<Var>,
        op: StatOp,
    },
    /// `print(@hist_log(array[keys]))`.
    PrintHist {
        array: ArrayId,
        keys: Vec<Var>,
        kind: HistKind,
    },
    /// Starts a `foreach`: snapshots and sorts the keys (in a kernel probe: of up to two
    /// number keys, sorted by a key at most; `lower` refuses the rest).
    IterStart {
        iter: IterId,
        array: ArrayId,
        sort: Option<SortSpec>,
        limit: Option<Var>,
    },
    /// `has = 1` and the next element's keys (and value) set, or `has = 0` at the end.
    IterNext {
        has: Var,
        iter: IterId,
        keys: Vec<Var>,
        value: Option<Var>,
    },
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Terminator {
    Jump(Block),
    /// Go to `then` when `cond` is non-zero, else to `els`.
    Branch {
        cond: Var,
        then: Block,
        els: Block,
    },
    /// The handler is done.
    Return,
}

impl InstKind {
    /// The variable this instruction writes, if any.
    pub fn def(&self) -> Option<Var> {
        match self {
            InstKind::Const { dst, .. }
            | InstKind::StrConst { dst, .. }
            | InstKind::Copy { dst, .. }
            | InstKind::Unary { dst, .. }
            | InstKind::Binary { dst, .. }
            | InstKind::Compare { dst, .. }
            | InstKind::StrCompare { dst, .. }
            | InstKind::RegexMatch { dst, .. }
            | InstKind::Concat { dst, .. }
            | InstKind::LoadContext { dst, .. }
            | InstKind::LoadContextDataLoc { dst, .. }
            | InstKind::LoadContextStr { dst, .. }
            | InstKind::Read { dst, .. }
            | InstKind::ReadStr { dst, .. }
            | InstKind::Sprintf { dst, .. }
            | InstKind::LoadGlobal { dst, .. }
            | InstKind::ArrayGet { dst, .. }
            | InstKind::ArrayContains { dst, .. }
            | InstKind::ArrayContainsMatching { dst, .. }
            | InstKind::StatGet { dst, .. }
            | InstKind::LoadArg { dst, .. }
            | InstKind::LoopStep { dst }
            | InstKind::LoadReturn { dst } => Some(*dst),
            InstKind::Call { dst, .. } => *dst,
            InstKind::Printf { .. }
            | InstKind::StoreGlobal { .. }
            | InstKind::AddGlobal { .. }
            | InstKind::Exit
            | InstKind::MaxActionExceeded
            | InstKind::LoopStart
            | InstKind::ArraySet { .. }
            | InstKind::ArrayAdd { .. }
            | InstKind::ArrayDelete { .. }
            | InstKind::ArrayDeleteMatching { .. }
            | InstKind::ArrayClear { .. }
            | InstKind::StatAdd { .. }
            | InstKind::PrintHist { .. }
            | InstKind::IterStart { .. } => None,
            // IterNext writes several variables; `defs` lists them all.
            InstKind::IterNext { has, .. } => Some(*has),
        }
    }

    /// The variables this instruction reads.
    pub fn uses(&self) -> Vec<Var> {
        let op = |o: &Operand| match o {
            Operand::Var(v) => Some(*v),
            Operand::Imm(_) => None,
        };
        match self {
            InstKind::Const { .. }
            | InstKind::StrConst { .. }
            | InstKind::LoadContext { .. }
            | InstKind::LoadContextDataLoc { .. }
            | InstKind::LoadContextStr { .. }
            | InstKind::LoadGlobal { .. }
            | InstKind::Exit
            | InstKind::LoadArg { .. }
            | InstKind::LoadReturn { .. }
            | InstKind::MaxActionExceeded
            | InstKind::LoopStart
            | InstKind::LoopStep { .. } => vec![],
            InstKind::Copy { src, .. } | InstKind::Unary { src, .. } | InstKind::RegexMatch { subject: src, .. } => {
                vec![*src]
            }
            InstKind::Binary { lhs, rhs, .. } | InstKind::Compare { lhs, rhs, .. } => {
                std::iter::once(*lhs).chain(op(rhs)).collect()
            }
            InstKind::StrCompare { lhs, rhs, .. } | InstKind::Concat { lhs, rhs, .. } => vec![*lhs, *rhs],
            InstKind::Read { addr, .. } => vec![*addr],
            InstKind::ReadStr { addr, fallback, limit, .. } => {
                std::iter::once(*addr).chain(*fallback).chain(*limit).collect()
            }
            InstKind::Call { args, .. } | InstKind::Sprintf { args, .. } | InstKind::Printf { args, .. } => {
                args.clone()
            }
            InstKind::StoreGlobal { src, .. } | InstKind::AddGlobal { src, .. } => vec![*src],
            InstKind::ArrayGet { keys, .. }
            | InstKind::ArrayDelete { keys, .. }
            | InstKind::ArrayContains { keys, .. }
            | InstKind::StatGet { keys, .. }
            | InstKind::PrintHist { keys, .. } => keys.clone(),
            InstKind::ArrayDeleteMatching { keys, .. } | InstKind::ArrayContainsMatching { keys, .. } => {
                keys.iter().flatten().copied().collect()
            }
            InstKind::ArraySet { keys, src, .. } | InstKind::ArrayAdd { keys, src, .. } => {
                keys.iter().copied().chain([*src]).collect()
            }
            InstKind::StatAdd { keys, value, .. } => keys.iter().copied().chain([*value]).collect(),
            InstKind::ArrayClear { .. } | InstKind::IterNext { .. } => vec![],
            InstKind::IterStart { limit, .. } => limit.iter().copied().collect(),
        }
    }

    /// The array this instruction works on.
    pub fn array(&self) -> Option<ArrayId> {
        match self {
            InstKind::ArrayGet { array, .. }
            | InstKind::ArraySet { array, .. }
            | InstKind::ArrayAdd { array, .. }
            | InstKind::ArrayDelete { array, .. }
            | InstKind::ArrayDeleteMatching { array, .. }
            | InstKind::ArrayClear { array }
            | InstKind::ArrayContains { array, .. }
            | InstKind::ArrayContainsMatching { array, .. }
            | InstKind::StatAdd { array, .. }
            | InstKind::StatGet { array, .. }
            | InstKind::PrintHist { array, .. }
            | InstKind::IterStart { array, .. } => Some(*array),
            _ => None,
        }
    }

    /// Every variable this instruction writes.
    pub fn defs(&self) -> Vec<Var> {
        match self {
            InstKind::IterNext { has, keys, value, .. } => {
                std::iter::once(*has).chain(keys.iter().copied()).chain(*value).collect()
            }
            InstKind::Read { dst, fault, .. } => std::iter::once(*dst).chain(*fault).collect(),
            other => other.def().into_iter().collect(),
        }
    }

    /// Whether removing this instruction (when its result is unused) changes behaviour.
    pub fn has_side_effects(&self) -> bool {
        match self {
            InstKind::Printf { .. }
            | InstKind::StoreGlobal { .. }
            | InstKind::AddGlobal { .. }
            | InstKind::Exit
            | InstKind::MaxActionExceeded
            | InstKind::LoopStart
            | InstKind::LoopStep { .. }
            | InstKind::ArraySet { .. }
            | InstKind::ArrayAdd { .. }
            | InstKind::ArrayDelete { .. }
            | InstKind::ArrayDeleteMatching { .. }
            | InstKind::ArrayClear { .. }
            | InstKind::StatAdd { .. }
            | InstKind::PrintHist { .. }
            | InstKind::IterStart { .. }
            | InstKind::IterNext { .. }
            | InstKind::RegexMatch { .. } => true,
            InstKind::Read { fault, .. } => fault.is_some(),
            InstKind::Call { builtin, .. } => builtin.has_side_effects(),
            _ => false,
        }
    }
}

impl Terminator {
    pub fn successors(&self) -> Vec<Block> {
        match self {
            Terminator::Jump(b) => vec![*b],
            Terminator::Branch { then, els, .. } => vec![*then, *els],
            Terminator::Return => vec![],
        }
    }

    pub fn uses(&self) -> Option<Var> {
        match self {
            Terminator::Branch { cond, .. } => Some(*cond),
            _ => None,
        }
    }
}

impl Function {
    /// Whether the handler reads its program's context: a record field, an argument, the
    /// return value, or the registers (`user_mode()`, `addr()`, `uaddr()`, backtraces).
    pub fn reads_context(&self) -> bool {
        self.blocks.values().flat_map(|b| &b.insts).any(|i| {
            matches!(
                i.kind,
                InstKind::LoadContext { .. }
                    | InstKind::LoadContextDataLoc { .. }
                    | InstKind::LoadContextStr { .. }
                    | InstKind::LoadArg { .. }
                    | InstKind::LoadReturn { .. }
                    | InstKind::Call {
                        builtin: Builtin::UserMode | Builtin::Addr | Builtin::Uaddr | Builtin::Backtrace { .. },
                        ..
                    }
            )
        })
    }

    pub fn new_var(&mut self, ty: Ty, name: Option<String>) -> Var {
        self.vars.push(VarDecl { ty, name })
    }

    pub fn new_block(&mut self) -> Block {
        self.blocks.push(BlockData { insts: Vec::new(), term: Terminator::Return })
    }

    pub fn ty(&self, v: Var) -> Ty {
        self.vars[v].ty
    }

    /// The member whose offset the instruction setting `v` adds, if it is one.
    pub fn member_offset(&self, v: Var) -> Option<&MemberOffset> {
        self.member_offsets.iter().find(|(w, _)| *w == v).map(|(_, m)| m)
    }
}

/// An invariant violation found by [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    pub handler: usize,
    pub message: String,
}

/// Checks the invariants listed in the module doc; returns every violation.
pub fn verify(program: &Program) -> Vec<VerifyError> {
    let mut errors = Vec::new();
    for (h, handler) in program.handlers.iter().enumerate() {
        let f = &handler.func;
        let mut err = |message: String| errors.push(VerifyError { handler: h, message });
        match f.entry {
            Some(b) if f.blocks.is_valid(b) => {}
            _ => err("handler has no valid entry block".to_string()),
        }
        for (block, data) in f.blocks.iter() {
            for succ in data.term.successors() {
                if !f.blocks.is_valid(succ) {
                    err(format!("{block} jumps to missing {succ}"));
                }
            }
            for inst in &data.insts {
                for v in inst.kind.uses().into_iter().chain(inst.kind.def()) {
                    if !f.vars.is_valid(v) {
                        err(format!("{block}: {v} is not declared"));
                    }
                }
                if let Some(msg) = type_error(f, program, &inst.kind) {
                    err(format!("{block}: {msg}"));
                }
            }
            if let Some(c) = data.term.uses() {
                if f.vars.is_valid(c) && f.ty(c) != Ty::Long {
                    err(format!("{block}: branch on string {c}"));
                }
            }
        }
    }
    errors
}

fn type_error(f: &Function, program: &Program, kind: &InstKind) -> Option<String> {
    let ty = |v: Var| f.vars.get(v).map(|d| d.ty);
    let want = |v: Var, t: Ty| if ty(v).is_some_and(|x| x != t) { Some(format!("{v} should be {t:?}")) } else { None };
    match kind {
        InstKind::Const { dst, .. }
        | InstKind::LoadContext { dst, .. }
        | InstKind::Read { dst, .. }
        | InstKind::Compare { dst, .. }
        | InstKind::StrCompare { dst, .. } => want(*dst, Ty::Long),
        InstKind::RegexMatch { dst, regex, subject } => want(*dst, Ty::Long)
            .or_else(|| want(*subject, Ty::Str))
            .or_else(|| (!program.regexes.is_valid(*regex)).then(|| format!("{regex} is not declared"))),
        InstKind::StrConst { dst, .. }
        | InstKind::Concat { dst, .. }
        | InstKind::ReadStr { dst, .. }
        | InstKind::LoadContextDataLoc { dst, .. }
        | InstKind::LoadContextStr { dst, .. }
        | InstKind::Sprintf { dst, .. } => want(*dst, Ty::Str),
        InstKind::Copy { dst, src } => (ty(*dst) != ty(*src)).then(|| format!("copy {src} to {dst} changes type")),
        InstKind::Binary { dst, lhs, .. } => want(*dst, Ty::Long).or_else(|| want(*lhs, Ty::Long)),
        InstKind::LoadGlobal { dst, global } | InstKind::StoreGlobal { global, src: dst } => program
            .globals
            .get(*global)
            .and_then(|g| want(*dst, g.ty))
            .or_else(|| (!program.globals.is_valid(*global)).then(|| format!("{global} is not declared"))),
        InstKind::Printf { fmt, args } => program.formats.get(*fmt).and_then(|d| {
            (d.args.len() != args.len() || d.args.iter().zip(args).any(|(t, a)| ty(*a) != Some(*t)))
                .then(|| format!("arguments of {fmt} do not match its format"))
        }),
        _ => None,
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ty::Long => "long",
            Ty::Str => "string",
        })
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Var(v) => write!(f, "{v}"),
            Operand::Imm(i) => write!(f, "{i}"),
        }
    }
}

fn join(vars: &[Var]) -> String {
    vars.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
}

/// Keys with `*` where they are `None`.
fn pattern(keys: &[Option<Var>]) -> String {
    keys.iter().map(|k| k.map_or("*".to_string(), |v| v.to_string())).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for InstKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstKind::Const { dst, value } => write!(f, "{dst} = {value}"),
            InstKind::StrConst { dst, value } => write!(f, "{dst} = {value:?}"),
            InstKind::Copy { dst, src } => write!(f, "{dst} = {src}"),
            InstKind::Unary { op, dst, src } => write!(f, "{dst} = {op:?} {src}"),
            InstKind::Binary { op, dst, lhs, rhs } => write!(f, "{dst} = {op:?} {lhs}, {rhs}"),
            InstKind::Compare { op, dst, lhs, rhs } => write!(f, "{dst} = cmp.{op:?} {lhs}, {rhs}"),
            InstKind::StrCompare { op, dst, lhs, rhs } => write!(f, "{dst} = strcmp.{op:?} {lhs}, {rhs}"),
            InstKind::RegexMatch { dst, regex, subject } => write!(f, "{dst} = {subject} =~ {regex}"),
            InstKind::Concat { dst, lhs, rhs } => write!(f, "{dst} = concat {lhs}, {rhs}"),
            InstKind::LoadContext { dst, offset, size, signed } => {
                write!(f, "{dst} = ctx[{offset}] {}{}", if *signed { "s" } else { "u" }, size * 8)
            }
            InstKind::LoadContextDataLoc { dst, offset } => write!(f, "{dst} = ctx.data_loc[{offset}]"),
            InstKind::LoadContextStr { dst, offset, len } => write!(f, "{dst} = ctx.str[{offset}; {len}]"),
            InstKind::Read { dst, addr, size, signed, space, fault } => {
                write!(f, "{dst} = read.{space:?} {}{} [{addr}]", if *signed { "s" } else { "u" }, size * 8)?;
                match fault {
                    Some(v) => write!(f, ", fault {v}"),
                    None => Ok(()),
                }
            }
            InstKind::ReadStr { dst, addr, space, fallback, limit } => {
                write!(f, "{dst} = read_str.{space:?} [{addr}]")?;
                if let Some(n) = limit {
                    write!(f, " limit {n}")?;
                }
                match fallback {
                    Some(d) => write!(f, " or {d}"),
                    None => Ok(()),
                }
            }
            InstKind::Call { dst: Some(d), builtin, args } => {
                write!(f, "{d} = call {}({})", builtin.name(), join(args))
            }
            InstKind::Call { dst: None, builtin, args } => write!(f, "call {}({})", builtin.name(), join(args)),
            InstKind::Sprintf { dst, fmt, args } => write!(f, "{dst} = sprintf {fmt}({})", join(args)),
            InstKind::Printf { fmt, args } => write!(f, "printf {fmt}({})", join(args)),
            InstKind::LoadGlobal { dst, global } => write!(f, "{dst} = load {global}"),
            InstKind::StoreGlobal { global, src } => write!(f, "store {global}, {src}"),
            InstKind::AddGlobal { global, src } => write!(f, "atomic_add {global}, {src}"),
            InstKind::Exit => write!(f, "exit"),
            InstKind::MaxActionExceeded => write!(f, "maxaction_exceeded"),
            InstKind::LoopStart => write!(f, "loop_start"),
            InstKind::LoopStep { dst } => write!(f, "{dst} = loop_step"),
            InstKind::LoadArg { dst, index } => write!(f, "{dst} = arg{index}"),
            InstKind::LoadReturn { dst } => write!(f, "{dst} = return_value"),
            InstKind::ArrayGet { dst, array, keys } => write!(f, "{dst} = {array}[{}]", join(keys)),
            InstKind::ArraySet { array, keys, src } => write!(f, "{array}[{}] = {src}", join(keys)),
            InstKind::ArrayAdd { array, keys, src } => write!(f, "atomic_add {array}[{}], {src}", join(keys)),
            InstKind::ArrayDelete { array, keys } => write!(f, "delete {array}[{}]", join(keys)),
            InstKind::ArrayDeleteMatching { array, keys } => write!(f, "delete {array}[{}]", pattern(keys)),
            InstKind::ArrayClear { array } => write!(f, "delete {array}"),
            InstKind::ArrayContainsMatching { dst, array, keys } => {
                write!(f, "{dst} = [{}] in {array}", pattern(keys))
            }
            InstKind::ArrayContains { dst, array, keys } => write!(f, "{dst} = [{}] in {array}", join(keys)),
            InstKind::StatAdd { array, keys, value } => write!(f, "{array}[{}] <<< {value}", join(keys)),
            InstKind::StatGet { dst, array, keys, op } => write!(f, "{dst} = @{op:?}({array}[{}])", join(keys)),
            InstKind::PrintHist { array, keys, kind } => write!(f, "print_hist {kind:?} {array}[{}]", join(keys)),
            InstKind::IterStart { iter, array, sort, limit } => {
                write!(f, "{iter} = iterate {array} sort {sort:?}")?;
                match limit {
                    Some(l) => write!(f, " limit {l}"),
                    None => Ok(()),
                }
            }
            InstKind::IterNext { has, iter, keys, value } => {
                write!(f, "{has} = next {iter} -> [{}]", join(keys))?;
                match value {
                    Some(v) => write!(f, ", {v}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Display for Terminator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Terminator::Jump(b) => write!(f, "jump {b}"),
            Terminator::Branch { cond, then, els } => write!(f, "branch {cond}, {then}, {els}"),
            Terminator::Return => write!(f, "return"),
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The variables instructions name: dead code `optimize` removed leaves others.
        let mut named: SecondaryMap<Var, bool> = SecondaryMap::new();
        for data in self.blocks.values() {
            for inst in &data.insts {
                for v in inst.kind.uses().into_iter().chain(inst.kind.defs()) {
                    named[v] = true;
                }
            }
            if let Some(v) = data.term.uses() {
                named[v] = true;
            }
        }
        for (v, decl) in self.vars.iter().filter(|(v, _)| named[*v]) {
            match &decl.name {
                Some(n) => writeln!(f, "  {v}: {} ; {n}", decl.ty)?,
                None => writeln!(f, "  {v}: {}", decl.ty)?,
            }
        }
        // The blocks the entry reaches: lowering and `optimize` leave others behind.
        let mut reached: SecondaryMap<Block, bool> = SecondaryMap::new();
        let mut todo: Vec<Block> = self.entry.into_iter().collect();
        while let Some(b) = todo.pop() {
            if !std::mem::replace(&mut reached[b], true) {
                todo.extend(self.blocks[b].term.successors());
            }
        }
        for (b, data) in self.blocks.iter().filter(|(b, _)| reached[*b]) {
            let entry = if Some(b) == self.entry { " (entry)" } else { "" };
            writeln!(f, "{b}:{entry}")?;
            for inst in &data.insts {
                writeln!(f, "    {}", inst.kind)?;
            }
            writeln!(f, "    {}", data.term)?;
        }
        Ok(())
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (g, decl) in self.globals.iter() {
            write!(f, "global {g}: {} ; {}", decl.ty, decl.name)?;
            if decl.storage == GlobalStorage::UserSpace {
                write!(f, " [user space]")?;
            }
            match &decl.init {
                Some(Const::Long(n)) => writeln!(f, " = {n}")?,
                Some(Const::Str(s)) => writeln!(f, " = {s:?}")?,
                None => writeln!(f)?,
            }
        }
        for (a, decl) in self.arrays.iter() {
            writeln!(f, "array {a}: {:?} -> {:?} ; {}", decl.keys, decl.value, decl.name)?;
        }
        for (id, decl) in self.formats.iter() {
            writeln!(f, "{id} = {:?}", decl.text)?;
            if decl.sink != Sink::Output {
                writeln!(f, "  to {:?}", decl.sink)?;
            }
            for (i, b) in &decl.deferred {
                writeln!(f, "  argument {i}: {}() in user space", b.name())?;
            }
        }
        for (id, regex) in self.regexes.iter() {
            writeln!(f, "{id} = /{}/", regex.source)?;
        }
        for handler in &self.handlers {
            writeln!(f, "\nprobe {} ; {:?}", handler.point, handler.target)?;
            write!(f, "{}", handler.func)?;
        }
        Ok(())
    }
}
