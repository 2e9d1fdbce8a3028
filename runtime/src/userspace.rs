//! The IR interpreter for handlers that run in user space: `begin`, `end`, `error`,
//! interval timers and `prometheus`. It executes the same IR the kernel handlers compile from, with the
//! globals read and written in the memory-mapped globals map, so both sides see one state.
//!
//! Invariant: the interpreter never panics on a valid IR program (`ir::verify` passes);
//! a handler runs at most `Program::user_max_steps` steps, SystemTap's MAXACTION (an error
//! when exceeded), so no loop runs forever.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use codegen_bpf::layout::{GlobalsLayout, GLOBAL_TARGET};
use lang::builtins::Builtin;
use lang::ir::{
    AddrSpace, BinOp, CmpOp, Function, GlobalId, InstKind, IterId, Operand, Program, Terminator, UnOp, Var,
};

use crate::arrays::{self, Arrays, Elem, Entry};
use crate::event::Event;
use crate::format::Value;
use crate::kernel_memory::KernelMemory;
use crate::sys::{self, MappedValue};

/// What a handler asks of the session.
#[derive(Debug, Default)]
pub struct Effects {
    pub exit: bool,
    /// `system(cmd)`: shell commands to start once the handler is done.
    pub commands: Vec<String>,
    /// `switch_file()`: the output file is to be rotated.
    pub switch_file: bool,
}

/// Why a user-space handler stopped early.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("handler ran more than {0} instructions (MAXACTION; -D MAXACTION_INTERRUPTIBLE=N allows N statements)")]
    TooLong(u64),
    #[error("`{0}` is not available in user space")]
    KernelOnly(&'static str),
    /// `error(msg)`.
    #[error("{0}")]
    Script(String),
    #[error("{0}")]
    KernelMemory(String),
    #[error("{0}")]
    Stat(#[from] crate::stats::StatError),
    #[error("array `{0}` is full (MAXMAPENTRIES)")]
    ArrayFull(String),
    #[error("`{0}` needs a successful `=~` before it")]
    NoMatch(&'static str),
    #[error("`matched({index})`: the last `=~` pattern has {groups} groups (0 to {})", groups - 1)]
    NoGroup { index: i64, groups: usize },
}

/// The last `=~` a handler ran, for `matched(n)`, `matched_str()` and `ngroups()`:
/// the subject and the byte ranges of the groups, `None` after a failed match.
type LastMatch = Option<(String, Vec<Option<std::ops::Range<usize>>>)>;

/// The state a user-space handler sees.
pub struct Env<'a> {
    pub program: &'a Program,
    pub arrays: &'a Arrays<'a>,
    pub globals: &'a MappedValue,
    pub layout: &'a GlobalsLayout,
    /// The handler's probe point, which its output events name.
    pub probe: &'a str,
    /// Where `printf` and `print(@hist_*)` go.
    pub out: &'a mut dyn FnMut(&Event<'_>),
    /// Where `warn(msg)` goes (see [`crate::output::Messages`]).
    pub messages: &'a dyn Fn(&str),
    pub kernel_memory: &'a KernelMemory,
}

pub fn run(env: &mut Env<'_>, func: &Function) -> Result<Effects, HandlerError> {
    let cap = env.program.user_string_capacity() as usize;
    let mut vars: Vec<Value> = func
        .vars
        .values()
        .map(|d| match d.ty {
            lang::ir::Ty::Long => Value::Long(0),
            lang::ir::Ty::Str => Value::Str(String::new()),
        })
        .collect();
    let mut effects = Effects::default();
    let mut iters: HashMap<IterId, std::vec::IntoIter<Entry>> = HashMap::new();
    let mut last_match: LastMatch = None;
    let Some(mut block) = func.entry else { return Ok(effects) };
    let mut steps = 0u64;
    loop {
        let data = &func.blocks[block];
        // Each instruction is a step, and so is each block's end: `for (;;) {}` is a cycle
        // of blocks with no instructions.
        for kind in data.insts.iter().map(|inst| Some(&inst.kind)).chain([None]) {
            steps += 1;
            if steps > env.program.user_max_steps {
                return Err(HandlerError::TooLong(env.program.user_max_steps));
            }
            if let Some(kind) = kind {
                exec(env, &mut vars, &mut iters, &mut last_match, kind, cap, &mut effects)?;
            }
        }
        block = match &data.term {
            Terminator::Jump(b) => *b,
            Terminator::Branch { cond, then, els } => {
                if long(&vars, *cond) != 0 {
                    *then
                } else {
                    *els
                }
            }
            Terminator::Return => return Ok(effects),
        };
    }
}

fn long(vars: &[Value], v: Var) -> i64 {
    match &vars[v.as_u32() as usize] {
        Value::Long(n) => *n,
        _ => 0,
    }
}

fn text(vars: &[Value], v: Var) -> String {
    crate::arrays::value_text(&vars[v.as_u32() as usize])
}

fn operand(vars: &[Value], o: Operand) -> i64 {
    match o {
        Operand::Var(v) => long(vars, v),
        Operand::Imm(i) => i,
    }
}

/// A string cut to the capacity, as a BPF buffer would hold it.
fn truncate(mut s: String, cap: usize) -> String {
    if s.len() >= cap {
        let mut end = cap.saturating_sub(1);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn exec(
    env: &mut Env<'_>,
    vars: &mut [Value],
    iters: &mut HashMap<IterId, std::vec::IntoIter<Entry>>,
    last_match: &mut LastMatch,
    kind: &InstKind,
    cap: usize,
    effects: &mut Effects,
) -> Result<(), HandlerError> {
    let set = |vars: &mut [Value], v: Var, value: Value| vars[v.as_u32() as usize] = value;
    match kind {
        InstKind::Const { dst, value } => set(vars, *dst, Value::Long(*value)),
        InstKind::StrConst { dst, value } => set(vars, *dst, Value::Str(truncate(value.clone(), cap))),
        InstKind::Copy { dst, src } => set(vars, *dst, vars[src.as_u32() as usize].clone()),
        InstKind::Unary { op, dst, src } => set(vars, *dst, Value::Long(unary(*op, long(vars, *src)))),
        InstKind::Binary { op, dst, lhs, rhs } => {
            set(vars, *dst, Value::Long(binary(*op, long(vars, *lhs), operand(vars, *rhs))))
        }
        InstKind::Compare { op, dst, lhs, rhs } => {
            let r = compare(*op, long(vars, *lhs).cmp(&operand(vars, *rhs)));
            set(vars, *dst, Value::Long(r as i64))
        }
        InstKind::StrCompare { op, dst, lhs, rhs } => {
            let r = compare(*op, text(vars, *lhs).as_bytes().cmp(text(vars, *rhs).as_bytes()));
            set(vars, *dst, Value::Long(r as i64))
        }
        InstKind::RegexMatch { dst, regex, subject } => {
            let subject = text(vars, *subject);
            *last_match = env.program.regexes[*regex].captures(subject.as_bytes()).map(|groups| (subject, groups));
            set(vars, *dst, Value::Long(last_match.is_some() as i64))
        }
        InstKind::Call {
            dst: Some(dst),
            builtin: builtin @ (Builtin::Matched | Builtin::MatchedStr | Builtin::Ngroups),
            args,
        } => {
            let value = matched(*builtin, last_match, args.first().map(|a| long(vars, *a)))?;
            set(vars, *dst, value)
        }
        InstKind::Concat { dst, lhs, rhs } => {
            let s = truncate(text(vars, *lhs) + &text(vars, *rhs), cap);
            set(vars, *dst, Value::Str(s))
        }
        InstKind::LoadContext { .. }
        | InstKind::LoadContextDataLoc { .. }
        | InstKind::LoadContextStr { .. }
        | InstKind::LoadArg { .. }
        | InstKind::LoadReturn { .. } => return Err(HandlerError::KernelOnly("a target variable")),
        // Kernel memory through the reader; as in a kernel probe, a fault reads 0 or "" (or
        // the fallback). No process's user memory is at hand here.
        InstKind::Read { dst, addr, size, signed, space: AddrSpace::Kernel, .. } => {
            let value = read_kernel(env, long(vars, *addr), *size, *signed)?;
            set(vars, *dst, Value::Long(value))
        }
        InstKind::ReadStr { dst, addr, space: AddrSpace::Kernel, fallback, limit } => {
            let max = match limit {
                Some(n) => long(vars, *n).clamp(0, cap as i64 - 1) as usize,
                None => cap - 1,
            };
            let read = env.kernel_memory.read_str(long(vars, *addr) as u64, max).map_err(HandlerError::KernelMemory)?;
            let value = match (read, fallback) {
                (Some(bytes), _) => String::from_utf8_lossy(&bytes).into_owned(),
                (None, Some(f)) => text(vars, *f),
                (None, None) => String::new(),
            };
            set(vars, *dst, Value::Str(truncate(value, cap)))
        }
        InstKind::Read { .. } | InstKind::ReadStr { .. } => {
            return Err(HandlerError::KernelOnly("reading user memory"))
        }
        InstKind::Call { dst, builtin, args } => {
            let value = match builtin {
                Builtin::System | Builtin::SwitchFile | Builtin::Warn | Builtin::Error => {
                    effect(effects, env.messages, *builtin, vars, args)?
                }
                _ => call(env, vars, *builtin, args)?,
            };
            if let Some(d) = dst {
                set(vars, *d, value);
            }
        }
        InstKind::Sprintf { dst, fmt, args } => {
            let s = format(env.program, *fmt, &values(vars, args));
            set(vars, *dst, Value::Str(truncate(String::from_utf8_lossy(&s).into_owned(), cap)))
        }
        InstKind::Printf { fmt, args } => {
            let args = values(vars, args);
            let text = format(env.program, *fmt, &args);
            let format = &env.program.formats[*fmt].text;
            (env.out)(&Event::Printf { probe: Some(env.probe), format, args: &args, text: &text });
        }
        InstKind::LoadGlobal { dst, global } => {
            set(vars, *dst, load_global(env.program, env.layout, env.globals, *global))
        }
        InstKind::StoreGlobal { global, src } => {
            store_global(env.program, env.layout, env.globals, *global, &vars[src.as_u32() as usize])
        }
        InstKind::AddGlobal { global, src } => env.globals.add_long(env.layout.offset(*global), long(vars, *src)),
        InstKind::Exit => effects.exit = true,
        InstKind::MaxActionExceeded => return Err(HandlerError::TooLong(env.program.user_max_steps)),
        // Lowered for kernel handlers only; user space counts its steps itself.
        InstKind::LoopStart | InstKind::LoopStep { .. } => return Err(HandlerError::KernelOnly("loop_step")),
        InstKind::ArrayGet { .. }
        | InstKind::ArraySet { .. }
        | InstKind::ArrayAdd { .. }
        | InstKind::ArrayDelete { .. }
        | InstKind::ArrayDeleteMatching { .. }
        | InstKind::ArrayClear { .. }
        | InstKind::ArrayContainsMatching { .. }
        | InstKind::ArrayContains { .. }
        | InstKind::StatAdd { .. }
        | InstKind::StatGet { .. }
        | InstKind::PrintHist { .. }
        | InstKind::IterStart { .. }
        | InstKind::IterNext { .. } => exec_array(env, vars, iters, kind)?,
    }
    Ok(())
}

/// The instructions on arrays, statistics and `foreach` iterators (see [`exec`]).
fn exec_array(
    env: &mut Env<'_>,
    vars: &mut [Value],
    iters: &mut HashMap<IterId, std::vec::IntoIter<Entry>>,
    kind: &InstKind,
) -> Result<(), HandlerError> {
    let set = |vars: &mut [Value], v: Var, value: Value| vars[v.as_u32() as usize] = value;
    match kind {
        InstKind::ArrayGet { dst, array, keys } => {
            let v = env.arrays.get_value(*array, &values(vars, keys));
            set(vars, *dst, v)
        }
        InstKind::ArraySet { array, keys, src } => {
            let v = vars[src.as_u32() as usize].clone();
            env.arrays
                .set(*array, &values(vars, keys), &v)
                .map_err(|_| HandlerError::ArrayFull(env.program.arrays[*array].name.clone()))?;
        }
        InstKind::ArrayAdd { array, keys, src } => {
            let k = values(vars, keys);
            let now = match env.arrays.get_value(*array, &k) {
                Value::Long(n) => n,
                _ => 0,
            };
            env.arrays
                .set(*array, &k, &Value::Long(now.wrapping_add(long(vars, *src))))
                .map_err(|_| HandlerError::ArrayFull(env.program.arrays[*array].name.clone()))?;
        }
        InstKind::ArrayDelete { array, keys } => env.arrays.delete(*array, &values(vars, keys)),
        InstKind::ArrayDeleteMatching { array, keys } => env.arrays.delete_matching(*array, &pattern(vars, keys)),
        InstKind::ArrayClear { array } => env.arrays.clear(*array),
        InstKind::ArrayContainsMatching { dst, array, keys } => {
            let has = env.arrays.contains_matching(*array, &pattern(vars, keys));
            set(vars, *dst, Value::Long(has as i64))
        }
        InstKind::ArrayContains { dst, array, keys } => {
            let has = env.arrays.contains(*array, &values(vars, keys));
            set(vars, *dst, Value::Long(has as i64))
        }
        InstKind::StatAdd { array, keys, value } => env
            .arrays
            .stat_add(*array, &values(vars, keys), long(vars, *value))
            .map_err(|_| HandlerError::ArrayFull(env.program.arrays[*array].name.clone()))?,
        InstKind::StatGet { dst, array, keys, op } => {
            let v = env.arrays.stat_value(*array, &values(vars, keys), *op)?;
            set(vars, *dst, Value::Long(v))
        }
        InstKind::PrintHist { array, keys, kind } => {
            let keys = values(vars, keys);
            let (stat, hist, text) = env.arrays.hist(*array, &keys, *kind)?;
            let array = &env.program.arrays[*array].name;
            (env.out)(&Event::Hist { probe: Some(env.probe), array, keys: &keys, hist, stat: &stat, text: &text });
        }
        InstKind::IterStart { iter, array, sort, limit } => {
            let mut entries = env.arrays.entries(*array);
            if let Some(sort) = sort {
                entries = sort_entries(entries, sort);
            }
            if let Some(l) = limit {
                entries.truncate(long(vars, *l).max(0) as usize);
            }
            iters.insert(*iter, entries.into_iter());
        }
        InstKind::IterNext { has, iter, keys, value } => {
            let next = iters.get_mut(iter).and_then(|it| it.next());
            set(vars, *has, Value::Long(next.is_some() as i64));
            let Some((k, elem)) = next else { return Ok(()) };
            for (var, key) in keys.iter().zip(k) {
                set(vars, *var, key);
            }
            if let Some(v) = value {
                let val = match elem {
                    Elem::Long(n) => Value::Long(n),
                    Elem::Str(s) => Value::Str(s),
                    Elem::Stat(s) => Value::Long(s.count()),
                };
                set(vars, *v, val);
            }
        }
        other => unreachable!("not an array instruction: {other:?}"),
    }
    Ok(())
}

/// `size` bytes of kernel memory at `addr`, sign-extended when `signed`; 0 on a fault.
fn read_kernel(env: &Env<'_>, addr: i64, size: u8, signed: bool) -> Result<i64, HandlerError> {
    let raw = env.kernel_memory.read(addr as u64, size).map_err(HandlerError::KernelMemory)?;
    let bits = 64 - 8 * u32::from(size);
    let raw = raw.unwrap_or(0) as i64;
    Ok(if signed && bits > 0 { (raw << bits) >> bits } else { raw })
}

/// The builtins that change the session rather than compute a value: `system`,
/// `switch_file`, `warn`, `error`.
fn effect(
    effects: &mut Effects,
    messages: &dyn Fn(&str),
    builtin: Builtin,
    vars: &[Value],
    args: &[Var],
) -> Result<Value, HandlerError> {
    match builtin {
        Builtin::System => effects.commands.push(text(vars, args[0])),
        Builtin::SwitchFile => effects.switch_file = true,
        Builtin::Warn => messages(&format!("WARNING: {}\n", text(vars, args[0]))),
        Builtin::Error => return Err(HandlerError::Script(text(vars, args[0]))),
        other => unreachable!("`{}` changes nothing", other.name()),
    }
    Ok(Value::Long(0))
}

fn unary(op: UnOp, x: i64) -> i64 {
    match op {
        UnOp::Neg => x.wrapping_neg(),
        UnOp::BitNot => !x,
        UnOp::Not => (x == 0) as i64,
    }
}

fn binary(op: BinOp, a: i64, b: i64) -> i64 {
    match op {
        BinOp::Add => a.wrapping_add(b),
        BinOp::Sub => a.wrapping_sub(b),
        BinOp::Mul => a.wrapping_mul(b),
        // Division by zero gives 0, as in the kernel programs.
        BinOp::Div => a.checked_div(b).unwrap_or(0),
        BinOp::Mod => a.checked_rem(b).unwrap_or(0),
        BinOp::Shl => a.wrapping_shl(b as u32),
        BinOp::Shr => a.wrapping_shr(b as u32),
        BinOp::And => a & b,
        BinOp::Or => a | b,
        BinOp::Xor => a ^ b,
    }
}

/// `matched(index)`, `matched_str()` or `ngroups()` of the last successful `=~`.
fn matched(builtin: Builtin, last_match: &LastMatch, index: Option<i64>) -> Result<Value, HandlerError> {
    let Some((subject, groups)) = last_match else { return Err(HandlerError::NoMatch(builtin.name())) };
    Ok(match builtin {
        Builtin::MatchedStr => Value::Str(subject.clone()),
        Builtin::Ngroups => Value::Long(groups.len() as i64),
        _ => {
            let index = index.unwrap_or(0);
            let group = usize::try_from(index).ok().and_then(|i| groups.get(i));
            let Some(range) = group else { return Err(HandlerError::NoGroup { index, groups: groups.len() }) };
            let bytes = range.clone().map_or(&[][..], |r| &subject.as_bytes()[r]);
            Value::Str(String::from_utf8_lossy(bytes).into_owned())
        }
    })
}

/// `foreach`'s order: by the value (column 0) or a key, ascending or descending.
/// Sorts a `foreach`'s elements, stably, each element's key computed once.
fn sort_entries(entries: Vec<Entry>, sort: &lang::ir::SortSpec) -> Vec<Entry> {
    let key = |e: &Entry| match sort.column {
        0 => arrays::sort_value(&e.1, sort.stat),
        c => match e.0.get(c - 1) {
            Some(Value::Long(n)) => arrays::SortKey::Long(*n),
            Some(other) => arrays::SortKey::Str(text_of(other)),
            None => arrays::SortKey::Long(0),
        },
    };
    if sort.ascending {
        arrays::sorted_by_key(entries, key)
    } else {
        arrays::sorted_by_key(entries, |e| std::cmp::Reverse(key(e)))
    }
}

fn values(vars: &[Value], keys: &[Var]) -> Vec<Value> {
    keys.iter().map(|k| vars[k.as_u32() as usize].clone()).collect()
}

/// Keys with `None` for `*`.
fn pattern(vars: &[Value], keys: &[Option<Var>]) -> Vec<Option<Value>> {
    keys.iter().map(|k| k.map(|k| vars[k.as_u32() as usize].clone())).collect()
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Long(n) => n.to_string(),
    }
}

/// Global `g`'s value in the globals map.
pub fn load_global(program: &Program, layout: &GlobalsLayout, globals: &MappedValue, g: GlobalId) -> Value {
    let decl = &program.globals[g];
    let off = layout.offset(g);
    match decl.ty {
        lang::ir::Ty::Long => Value::Long(globals.load_long(off)),
        lang::ir::Ty::Str => {
            let cap = program.global_string_capacity(decl) as usize;
            Value::Str(read_c_string(&globals.read_bytes(off, cap)))
        }
    }
}

/// Sets global `g`; a string is cut to the global's capacity (a shared global's is the
/// kernel's, as a kernel handler would cut it).
pub fn store_global(program: &Program, layout: &GlobalsLayout, globals: &MappedValue, g: GlobalId, value: &Value) {
    let off = layout.offset(g);
    match value {
        Value::Long(n) => globals.store_long(off, *n),
        v => write_c_string(globals, off, &text_of(v), program.global_string_capacity(&program.globals[g]) as usize),
    }
}

/// Writes a string into a global's slot, NUL-terminated and cut to the capacity.
fn write_c_string(globals: &MappedValue, off: u32, s: &str, cap: usize) {
    let mut bytes = truncate(s.to_string(), cap).into_bytes();
    bytes.push(0);
    globals.write_bytes(off, &bytes);
}

/// The bytes up to the first NUL.
fn read_c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn compare(op: CmpOp, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => ord == Equal,
        CmpOp::Ne => ord != Equal,
        CmpOp::Lt => ord == Less,
        CmpOp::Le => ord != Greater,
        CmpOp::Gt => ord == Greater,
        CmpOp::Ge => ord != Less,
    }
}

fn format(program: &Program, fmt: lang::ir::FmtId, values: &[Value]) -> Vec<u8> {
    crate::format::format_bytes(&program.formats[fmt].format, values)
}

/// C's `strtol` on the longest valid prefix; 0 when there is none.
fn strtol(s: &str, base: i64) -> i64 {
    let t = s.trim_start();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (base, t) = match base {
        0 if t.starts_with("0x") || t.starts_with("0X") => (16, &t[2..]),
        0 if t.starts_with('0') && t.len() > 1 => (8, &t[1..]),
        0 => (10, t),
        16 => (16, t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t)),
        b => (b.clamp(2, 36) as u32, t),
    };
    let digits: String = t.chars().take_while(|c| c.is_digit(base)).collect();
    let n = i64::from_str_radix(&digits, base).unwrap_or(if digits.is_empty() { 0 } else { i64::MAX });
    if neg {
        n.wrapping_neg()
    } else {
        n
    }
}

/// SystemTap's `text_str`: printable ASCII as is, the rest as C escapes.
fn text_str(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            other => out.push_str(&format!("\\{other:03o}")),
        }
    }
    out
}

thread_local! {
    /// What `tokenize("", delim)` continues from.
    static TOKENIZE_REST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn tokenize(_env: &Env<'_>, s: &str, delim: &str) -> String {
    TOKENIZE_REST.with(|rest| {
        let mut rest = rest.borrow_mut();
        if !s.is_empty() {
            *rest = s.to_string();
        }
        let is_delim = |c: char| delim.contains(c);
        let trimmed = rest.trim_start_matches(is_delim).to_string();
        match trimmed.find(is_delim) {
            Some(i) => {
                let token = trimmed[..i].to_string();
                *rest = trimmed[i..].to_string();
                token
            }
            None => {
                rest.clear();
                trimmed
            }
        }
    })
}

/// The text of a [`Builtin::deferrable`] function of `arg`: in a user-space probe, and for
/// the argument a kernel probe's record carries in its place.
pub fn deferred_text(builtin: Builtin, arg: &Value) -> String {
    let long = || match arg {
        Value::Long(n) => *n,
        _ => 0,
    };
    match builtin {
        Builtin::ErrnoStr => lang::builtins::errno_name(long()),
        Builtin::Symname => crate::symbols::symname(long() as u64),
        Builtin::Symdata => crate::symbols::symdata(long() as u64),
        Builtin::SprintSyms => sprint_syms(&crate::arrays::value_text(arg)),
        other => unreachable!("`{}` is not deferrable", other.name()),
    }
}

/// SystemTap's `sprint_syms`: each address of a `backtrace()` string (hex, space-separated)
/// with its symbol, one a line: ` 0xffffffff81234567 : vfs_read+0x17/0x1a0`.
fn sprint_syms(callers: &str) -> String {
    let mut text = String::new();
    for token in callers.split(' ').filter(|t| !t.is_empty()) {
        let digits = token.trim_start_matches("0x");
        let addr = u64::from_str_radix(digits, 16).unwrap_or(0);
        text.push_str(&format!(" {token} : {}\n", crate::symbols::symdata(addr)));
    }
    text
}

fn call(env: &Env<'_>, vars: &[Value], builtin: Builtin, args: &[Var]) -> Result<Value, HandlerError> {
    let arg = |i: usize| long(vars, args[i]);
    let now = sys::realtime_ns();
    Ok(match builtin {
        Builtin::GettimeofdayS => Value::Long(now / 1_000_000_000),
        Builtin::GettimeofdayMs => Value::Long(now / 1_000_000),
        Builtin::GettimeofdayUs => Value::Long(now / 1_000),
        Builtin::GettimeofdayNs => Value::Long(now),
        Builtin::KtimeNs => Value::Long(sys::monotonic_ns()),
        Builtin::Pid => Value::Long(std::process::id() as i64),
        Builtin::Tid => Value::Long(sys::self_ids().0),
        Builtin::Uid => Value::Long(sys::self_ids().1),
        Builtin::Gid => Value::Long(sys::self_ids().2),
        Builtin::Cpu => Value::Long(sys::self_ids().3),
        Builtin::Execname => {
            Value::Str(std::fs::read_to_string("/proc/self/comm").map(|s| s.trim_end().to_string()).unwrap_or_default())
        }
        Builtin::Target => Value::Long(env.globals.load_long(GLOBAL_TARGET)),
        Builtin::Strlen => Value::Long(text(vars, args[0]).len() as i64),
        Builtin::Ntohs | Builtin::Htons => Value::Long((arg(0) as u16).swap_bytes() as i64),
        Builtin::Ntohl | Builtin::Htonl => Value::Long((arg(0) as u32).swap_bytes() as i64),
        Builtin::IpNtop => Value::Str(Ipv4Addr::from((arg(0) as u32).swap_bytes()).to_string()),
        Builtin::Randint => {
            let n = arg(0);
            Value::Long(if n > 0 { sys::random_u32() as i64 % n } else { 0 })
        }
        Builtin::UserIpv6Str | Builtin::KernelIpv6Str => return Err(HandlerError::KernelOnly(builtin.name())),
        Builtin::Substr => {
            let s = text(vars, args[0]);
            let (start, len) = (arg(1), arg(2));
            let bytes = s.as_bytes();
            let value = if start < 0 || len <= 0 || start as usize >= bytes.len() {
                String::new()
            } else {
                let end = (start as usize).saturating_add(len as usize).min(bytes.len());
                String::from_utf8_lossy(&bytes[start as usize..end]).into_owned()
            };
            Value::Str(value)
        }
        Builtin::Stringat => {
            let s = text(vars, args[0]);
            let i = arg(1);
            Value::Long(if i >= 0 { s.as_bytes().get(i as usize).copied().unwrap_or(0) as i64 } else { 0 })
        }
        Builtin::Isinstr => Value::Long(text(vars, args[0]).contains(&text(vars, args[1])) as i64),
        Builtin::Strtol => Value::Long(strtol(&text(vars, args[0]), arg(1))),
        Builtin::TextStr => Value::Str(text_str(&text(vars, args[0]))),
        Builtin::StrReplace => {
            let (s, from, to) = (text(vars, args[0]), text(vars, args[1]), text(vars, args[2]));
            Value::Str(if from.is_empty() { s } else { s.replace(&from, &to) })
        }
        Builtin::Tokenize => Value::Str(tokenize(env, &text(vars, args[0]), &text(vars, args[1]))),
        Builtin::ErrnoStr | Builtin::Symname | Builtin::Symdata | Builtin::SprintSyms => {
            Value::Str(deferred_text(builtin, &vars[args[0].as_u32() as usize]))
        }
        Builtin::TzGmtoff => Value::Long(-sys::local_time_zone().0),
        Builtin::TzName => Value::Str(sys::local_time_zone().1),
        Builtin::Fileline { .. } | Builtin::Usym => Value::Str(format!("{:#x}", arg(0))),
        Builtin::Modname => Value::Str(crate::symbols::modname(arg(0) as u64).unwrap_or_default()),
        // A user-space probe runs in bpftap, not in an interrupted context: no registers.
        Builtin::UserMode | Builtin::Addr => Value::Long(0),
        Builtin::TaskCurrent => {
            Value::Long(env.kernel_memory.current_task().map_err(HandlerError::KernelMemory)? as i64)
        }
        Builtin::System | Builtin::SwitchFile | Builtin::Warn | Builtin::Error => {
            unreachable!("`{}` changes the session: `exec` runs it", builtin.name())
        }
        other => return Err(HandlerError::KernelOnly(other.name())),
    })
}
