//! The built-in function library: one record per function (name, signature, where it may run,
//! how it lowers). SystemTap implements these in tapsets with embedded C; bpftap implements
//! them here, in BPF by `codegen-bpf` and in user space by the runtime's interpreter.
//!
//! IMPORTANT: a [`Builtin`] added here needs a case in `codegen-bpf`'s emitter and in the
//! runtime's interpreter (or must be marked [`Runs::Kernel`]).

use crate::ir::{AddrSpace, Ty};

/// Functions whose value comes from the machine, lowered to [`crate::ir::InstKind::Call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Builtin {
    Pid,
    Tid,
    Uid,
    Gid,
    Cpu,
    Execname,
    /// The current `struct task_struct *`.
    TaskCurrent,
    GettimeofdayS,
    GettimeofdayMs,
    GettimeofdayUs,
    GettimeofdayNs,
    /// Monotonic nanoseconds (`local_clock_ns`, `cpu_clock_ns`).
    KtimeNs,
    /// The pid of `-c CMD` or `-x PID`, 0 without either.
    Target,
    Strlen,
    Ntohs,
    Ntohl,
    Htons,
    Htonl,
    /// `ip_ntop(addr)`: an IPv4 address in network order as a dotted string.
    IpNtop,
    /// The IPv6 address at a user-space address as text (`::1`).
    UserIpv6Str,
    /// The IPv6 address at a kernel address as text.
    KernelIpv6Str,
    /// `_kernel_buffer_hex(addr, len)`: the first `len` bytes at a kernel address in hex,
    /// two digits a byte, as many as a string holds (netfilter's `data_hex`).
    KernelBufferHex,
    /// `_kernel_buffer_text(addr, len)`: the same bytes as text, a `.` for each byte that is
    /// not printable ASCII (netfilter's `data_str`).
    KernelBufferText,
    /// `randint(n)`.
    Randint,
    /// `substr(s, start, length)`.
    Substr,
    /// `stringat(s, i)`: the byte at `i`.
    Stringat,
    /// `isinstr(s1, s2)`: 1 when `s2` occurs in `s1`.
    Isinstr,
    /// `strtol(s, base)`.
    Strtol,
    /// `text_str(s)`: non-printable bytes escaped.
    TextStr,
    /// `str_replace(s, old, new)`.
    StrReplace,
    /// `tokenize(s, delim)`: the first token; `tokenize("", delim)`: the next one.
    Tokenize,
    /// `errno_str(n)`: `ENOENT` for 2.
    ErrnoStr,
    /// `tz_gmtoff()`: the local time zone's offset, in seconds west of UTC (`-3600` in Paris
    /// in winter), as staprun passes it to SystemTap.
    TzGmtoff,
    /// `tz_name()`: the local time zone's abbreviation (`UTC`, `CET`).
    TzName,
    /// `matched(n)`: group `n` of the last successful `=~` (0: the whole match).
    Matched,
    /// `matched_str()`: the string the last successful `=~` matched.
    MatchedStr,
    /// `ngroups()`: the groups of the last successful `=~`'s pattern, group 0 included.
    Ngroups,
    /// `user_mode()`: 1 when the probe interrupted user-space code (a perf event's sample, a
    /// uprobe), 0 in the kernel and in begin/end/timer probes.
    UserMode,
    /// `symname(addr)`: the kernel symbol holding `addr`, or the address in hex: from
    /// /proc/kallsyms in user space, from the kernel's own table (`%ps`) in a kernel probe.
    Symname,
    /// `symdata(addr)`: `name+0xoffset/0xsize` for a kernel address (`%pS` in the kernel).
    Symdata,
    /// `sprint_syms(callers)`: each address of a `backtrace()` string with its symbol.
    SprintSyms,
    /// `addr()`: the instruction pointer the probe interrupted (a perf event's sample, a
    /// kprobe's), kernel or user; 0 where there are no registers (tracepoints, fentry, user
    /// space).
    Addr,
    /// `symfileline(addr)`, `usymfileline(addr)`: `file:line` of `addr` from DWARF line
    /// tables. bpftap reads none, so this is the address in hex, SystemTap's answer when
    /// the line tables are missing (scripts test for it with `strtol(s, 16)`).
    Fileline {
        user: bool,
    },
    /// `uaddr()`: where the current task is in user space: the sampled instruction pointer in
    /// user mode, else the one saved on entry to the kernel (0 for a kernel thread).
    Uaddr,
    /// `usymname(addr)`, `usymdata(addr)`: a user address's symbol. BPF has no user symbol
    /// tables, so this is the address in hex, SystemTap's answer for an unknown symbol.
    Usym,
    /// `_modname(addr)`: the kernel module holding `addr`, "kernel" for the kernel's own
    /// text, "" for any other address (the tapset's `modname` makes that an error): from
    /// /proc/modules in user space, from the kernel's symbol table (`%ps`) in a kernel probe.
    Modname,
    /// `_user_vma(addr)`: the `struct vm_area_struct *` holding user address `addr` in the
    /// current task (`bpf_find_vma`), 0 where none does (the tapset's `umodname` reads the
    /// path of the file it maps).
    UserVma,
    /// The current stack as text, one frame a line: `sprint_backtrace()` (kernel frames,
    /// `name+0xoff/0xsize`), `sprint_ubacktrace()` (user frames in hex, which BPF cannot
    /// symbolize), or with `symbols: false` the hex addresses each followed by a space
    /// (`backtrace()`, `ubacktrace()`).
    Backtrace {
        user: bool,
        symbols: bool,
    },
    /// `system(cmd)`: `sh -c cmd` started once the probe is done, not waited for. In a kernel
    /// probe `lower` makes `system`, `warn` and `error` records instead (see `ir::Sink`).
    System,
    /// `switch_file()`: with `-o FILE`, go on writing to FILE.1, FILE.2, ...
    SwitchFile,
    /// `warn(msg)`: `WARNING: msg` on stderr.
    Warn,
    /// `error(msg)`: stop the probe and the script with msg on stderr.
    Error,
}

/// Where a function may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs {
    Anywhere,
    /// Only in user-space probes (begin, end, timers): string work BPF cannot do cheaply.
    User,
    /// Only in a probe that fires in the kernel (it reads the current task or user memory).
    Kernel,
}

/// How a call lowers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lowering {
    Builtin(Builtin),
    /// A fault-safe scalar read: `user_ushort(addr)`, `kernel_long(addr)`.
    Read {
        size: u8,
        signed: bool,
        space: AddrSpace,
    },
    /// A fault-safe string read (kernel memory anywhere, user memory in kernel probes):
    /// `user_string(addr)`, `kernel_string(addr)`, and with a
    /// second argument, the string to give on a fault: `user_string(addr, "<unknown>")`, or
    /// the most bytes to read: `kernel_string_n(addr, n)`.
    ReadStr(AddrSpace),
}

#[derive(Clone, Copy, Debug)]
pub struct Signature {
    pub name: &'static str,
    pub params: &'static [Ty],
    pub ret: Ty,
    pub runs: Runs,
    pub lowering: Lowering,
}

const L: Ty = Ty::Long;
const S: Ty = Ty::Str;

const fn sig(name: &'static str, params: &'static [Ty], ret: Ty, runs: Runs, lowering: Lowering) -> Signature {
    Signature { name, params, ret, runs, lowering }
}

/// Facts about the current task. In a user-space probe (`begin`, `end`, timers) the current
/// task is bpftap itself, as it is stapio's for SystemTap.
const fn context(name: &'static str, ret: Ty, b: Builtin) -> Signature {
    sig(name, &[], ret, Runs::Anywhere, Lowering::Builtin(b))
}

const fn pure(name: &'static str, params: &'static [Ty], ret: Ty, b: Builtin) -> Signature {
    sig(name, params, ret, Runs::Anywhere, Lowering::Builtin(b))
}

const fn user(name: &'static str, params: &'static [Ty], ret: Ty, b: Builtin) -> Signature {
    sig(name, params, ret, Runs::User, Lowering::Builtin(b))
}

/// Kernel memory is readable anywhere (user-space probes read it through a BPF program run
/// on demand); user memory only in a probe that has a current process.
const fn read(name: &'static str, size: u8, signed: bool, space: AddrSpace) -> Signature {
    let runs = match space {
        AddrSpace::Kernel => Runs::Anywhere,
        AddrSpace::User => Runs::Kernel,
    };
    sig(name, &[L], L, runs, Lowering::Read { size, signed, space })
}

/// A stack walk, which needs the kernel context of a probe.
const fn stack(name: &'static str, user: bool, symbols: bool) -> Signature {
    sig(name, &[], S, Runs::Kernel, Lowering::Builtin(Builtin::Backtrace { user, symbols }))
}

use AddrSpace::{Kernel as K, User as U};

/// Every built-in function. `printf`, `sprintf`, `print`, `println` and `exit` are handled by
/// `lower` itself because they take any number or type of arguments.
pub const BUILTINS: &[Signature] = &[
    context("pid", L, Builtin::Pid),
    context("tid", L, Builtin::Tid),
    context("uid", L, Builtin::Uid),
    context("gid", L, Builtin::Gid),
    context("cpu", L, Builtin::Cpu),
    context("execname", S, Builtin::Execname),
    // In a user-space probe: bpftap's own task (`codegen_bpf::reader`).
    sig("task_current", &[], L, Runs::Anywhere, Lowering::Builtin(Builtin::TaskCurrent)),
    pure("gettimeofday_s", &[], L, Builtin::GettimeofdayS),
    pure("gettimeofday_ms", &[], L, Builtin::GettimeofdayMs),
    pure("gettimeofday_us", &[], L, Builtin::GettimeofdayUs),
    pure("gettimeofday_ns", &[], L, Builtin::GettimeofdayNs),
    pure("local_clock_ns", &[], L, Builtin::KtimeNs),
    pure("cpu_clock_ns", &[], L, Builtin::KtimeNs),
    pure("target", &[], L, Builtin::Target),
    pure("strlen", &[S], L, Builtin::Strlen),
    pure("ntohs", &[L], L, Builtin::Ntohs),
    pure("ntohl", &[L], L, Builtin::Ntohl),
    pure("htons", &[L], L, Builtin::Htons),
    pure("htonl", &[L], L, Builtin::Htonl),
    pure("ip_ntop", &[L], S, Builtin::IpNtop),
    pure("randint", &[L], L, Builtin::Randint),
    pure("substr", &[S, L, L], S, Builtin::Substr),
    pure("stringat", &[S, L], L, Builtin::Stringat),
    // In a kernel probe the second argument must be a constant string (see codegen-bpf).
    pure("isinstr", &[S, S], L, Builtin::Isinstr),
    // In a kernel probe the base must be 0, 8, 10 or 16 (bpf_strtol's).
    pure("strtol", &[S, L], L, Builtin::Strtol),
    user("text_str", &[S], S, Builtin::TextStr),
    // In a kernel probe the second and third arguments must be constant strings.
    pure("str_replace", &[S, S, S], S, Builtin::StrReplace),
    user("tokenize", &[S, S], S, Builtin::Tokenize),
    pure("errno_str", &[L], S, Builtin::ErrnoStr),
    user("tz_gmtoff", &[], L, Builtin::TzGmtoff),
    user("tz_name", &[], S, Builtin::TzName),
    // The groups of a match exist only in user space: a kernel probe's `=~` walks a DFA
    // that says whether the string matches, not where.
    user("matched", &[L], S, Builtin::Matched),
    user("matched_str", &[], S, Builtin::MatchedStr),
    user("ngroups", &[], L, Builtin::Ngroups),
    pure("symname", &[L], S, Builtin::Symname),
    pure("symdata", &[L], S, Builtin::Symdata),
    // User space only: a kernel probe's `print` or `printf` of it carries the string, and the
    // runtime symbolizes it (see `Builtin::deferrable`).
    user("sprint_syms", &[S], S, Builtin::SprintSyms),
    context("addr", L, Builtin::Addr),
    sig("uaddr", &[], L, Runs::Kernel, Lowering::Builtin(Builtin::Uaddr)),
    pure("usymname", &[L], S, Builtin::Usym),
    pure("usymdata", &[L], S, Builtin::Usym),
    pure("_modname", &[L], S, Builtin::Modname),
    sig("_user_vma", &[L], L, Runs::Kernel, Lowering::Builtin(Builtin::UserVma)),
    pure("symfileline", &[L], S, Builtin::Fileline { user: false }),
    pure("usymfileline", &[L], S, Builtin::Fileline { user: true }),
    stack("sprint_backtrace", false, true),
    stack("sprint_ubacktrace", true, true),
    stack("backtrace", false, false),
    stack("ubacktrace", true, false),
    context("user_mode", L, Builtin::UserMode),
    user("system", &[S], L, Builtin::System),
    user("switch_file", &[], L, Builtin::SwitchFile),
    user("warn", &[S], L, Builtin::Warn),
    user("error", &[S], L, Builtin::Error),
    sig("_user_ipv6_str", &[L], S, Runs::Kernel, Lowering::Builtin(Builtin::UserIpv6Str)),
    sig("_kernel_ipv6_str", &[L], S, Runs::Kernel, Lowering::Builtin(Builtin::KernelIpv6Str)),
    sig("_kernel_buffer_hex", &[L, L], S, Runs::Kernel, Lowering::Builtin(Builtin::KernelBufferHex)),
    sig("_kernel_buffer_text", &[L, L], S, Runs::Kernel, Lowering::Builtin(Builtin::KernelBufferText)),
    sig("user_string", &[L], S, Runs::Kernel, Lowering::ReadStr(U)),
    sig("kernel_string", &[L], S, Runs::Anywhere, Lowering::ReadStr(K)),
    // The second argument is what a faulting read gives instead of "".
    sig("user_string", &[L, S], S, Runs::Kernel, Lowering::ReadStr(U)),
    sig("kernel_string", &[L, S], S, Runs::Anywhere, Lowering::ReadStr(K)),
    sig("user_string_n", &[L, L], S, Runs::Kernel, Lowering::ReadStr(U)),
    sig("kernel_string_n", &[L, L], S, Runs::Anywhere, Lowering::ReadStr(K)),
    read("user_char", 1, true, U),
    read("user_short", 2, true, U),
    read("user_ushort", 2, false, U),
    read("user_int", 4, true, U),
    read("user_uint32", 4, false, U),
    read("user_long", 8, true, U),
    read("user_int8", 1, true, U),
    read("user_uint8", 1, false, U),
    read("user_int16", 2, true, U),
    read("user_uint16", 2, false, U),
    read("user_int32", 4, true, U),
    read("user_int64", 8, true, U),
    read("user_uint64", 8, false, U),
    read("kernel_char", 1, true, K),
    read("kernel_short", 2, true, K),
    read("kernel_int", 4, true, K),
    read("kernel_long", 8, true, K),
    read("kernel_pointer", 8, false, K),
];

/// Functions handled by `lower` directly.
pub const SPECIAL: &[&str] = &[
    "printf",
    "sprintf",
    "print",
    "println",
    "sprint",
    "sprintln",
    "exit",
    "printd",
    "printdln",
    "pp",
    "pn",
    "ppfunc",
    "probefunc",
    "int_arg",
    "uint_arg",
    "long_arg",
    "ulong_arg",
    "pointer_arg",
    "s32_arg",
    "u32_arg",
    "s64_arg",
    "u64_arg",
];

/// `int_arg(n)` and friends: argument n (from 1) of the probed function, read from the
/// registers, as `(bytes, signed)`.
pub fn arg_function(name: &str) -> Option<(u8, bool)> {
    Some(match name {
        "int_arg" | "s32_arg" => (4, true),
        "uint_arg" | "u32_arg" => (4, false),
        "long_arg" | "s64_arg" => (8, true),
        "ulong_arg" | "pointer_arg" | "u64_arg" => (8, false),
        _ => return None,
    })
}

/// The built-in `name` taking `argc` arguments, else the first one named `name` (whose arity
/// the type checker then reports): `user_string(addr)` and `user_string(addr, default)`.
pub fn lookup(name: &str, argc: usize) -> Option<&'static Signature> {
    let mut named = BUILTINS.iter().filter(|s| s.name == name);
    named.clone().find(|s| s.params.len() == argc).or_else(|| named.next())
}

impl Builtin {
    pub fn name(self) -> &'static str {
        BUILTINS.iter().find(|s| s.lowering == Lowering::Builtin(self)).map_or("?", |s| s.name)
    }

    /// A user-space function of one argument giving a string, which a kernel probe's `printf`
    /// or `print` can leave to user space: the record carries the argument, the runtime
    /// makes the text.
    pub fn deferrable(self) -> bool {
        matches!(self, Builtin::ErrnoStr | Builtin::Symname | Builtin::Symdata | Builtin::SprintSyms)
    }

    pub fn has_side_effects(self) -> bool {
        matches!(self, Builtin::Randint | Builtin::System | Builtin::SwitchFile | Builtin::Warn | Builtin::Error)
    }
}

/// The symbolic name of an errno value, as SystemTap's `errno_str` (the runtime's, and the
/// table kernel probes look names up in).
pub fn errno_name(n: i64) -> String {
    const NAMES: &[&str] = &[
        "",
        "EPERM",
        "ENOENT",
        "ESRCH",
        "EINTR",
        "EIO",
        "ENXIO",
        "E2BIG",
        "ENOEXEC",
        "EBADF",
        "ECHILD",
        "EAGAIN",
        "ENOMEM",
        "EACCES",
        "EFAULT",
        "ENOTBLK",
        "EBUSY",
        "EEXIST",
        "EXDEV",
        "ENODEV",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "ENFILE",
        "EMFILE",
        "ENOTTY",
        "ETXTBSY",
        "EFBIG",
        "ENOSPC",
        "ESPIPE",
        "EROFS",
        "EMLINK",
        "EPIPE",
        "EDOM",
        "ERANGE",
        "EDEADLK",
        "ENAMETOOLONG",
        "ENOLCK",
        "ENOSYS",
        "ENOTEMPTY",
        "ELOOP",
    ];
    let n = n.unsigned_abs() as usize;
    match NAMES.get(n) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => match n {
            95 => "EOPNOTSUPP".into(),
            97 => "EAFNOSUPPORT".into(),
            98 => "EADDRINUSE".into(),
            99 => "EADDRNOTAVAIL".into(),
            100 => "ENETDOWN".into(),
            101 => "ENETUNREACH".into(),
            104 => "ECONNRESET".into(),
            110 => "ETIMEDOUT".into(),
            111 => "ECONNREFUSED".into(),
            113 => "EHOSTUNREACH".into(),
            115 => "EINPROGRESS".into(),
            _ => format!("E{n}"),
        },
    }
}
