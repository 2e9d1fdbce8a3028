//! Emission: one kernel handler's IR to BPF instructions.
//!
//! Input: an [`ir::Function`] whose variables have homes from [`crate::regalloc`]. Output:
//! instructions with map/rodata relocations and, per instruction, the script span it came
//! from (for `-p4` and for mapping verifier errors back to the script).
//!
//! Register conventions, fixed for the whole program:
//! - `r6` holds the context pointer, `r7` the per-CPU scratch area, `r8` the globals value,
//!   each only in handlers that need it; `r9` the ring-buffer record a `printf` fills (or
//!   the statistic value a `<<<` updates);
//!   they are callee-saved, so helper calls do not disturb them;
//! - `r0`..`r5` are per-instruction temporaries: each IR instruction loads its operands from
//!   their homes, computes, and stores its result, so nothing is live in them across
//!   IR instructions.
//!
//! Stack, below `r10`: `-8` a zero `u32` key for map lookups, `-16` a read buffer (also the
//! record of `exit()` and of errors), `-24` a spill slot, then the long variables' slots,
//! then the key buffer of array accesses when it fits. Everything else that is too big for
//! the stack (string variables, `sprintf` arguments, large keys) lives in the per-CPU
//! scratch area, which a handler looks up only when it uses it.
//!
//! Callbacks, the BPF functions a handler passes to `for_each_map_elem` and `bpf_loop`
//! (see `Callback`), follow the handler's exit, each once per handler; they run in their
//! own frame and use r0..r6 of it. A program with callbacks is loaded with the BTF of
//! [`crate::btf`].
//!
//! Invariant: every memory access has a constant offset within its region, or a variable
//! offset the verifier can bound. That is what makes the verifier accept what emits; where
//! it still refuses, the runtime names the script line of the refused instruction from the
//! spans recorded here.

mod regex_match;

use std::collections::{HashMap, HashSet};

use lang::builtins::Builtin;
use lang::family::Context as ProgramContext;
use lang::ir::{
    AddrSpace, BinOp, Block, CmpOp, FmtId, Function, InstKind, Operand, Program, StatOp, Terminator, Ty, UnOp, Var,
};
use lang::printf::{ConvKind, Count, Format, Piece};
use lang::span::Span;

use crate::insn::{self, AluOp, Helper, Insn, JmpOp, Reg, Size};
use crate::layout::{self, GlobalsLayout, GLOBAL_BOOT_OFFSET, GLOBAL_LOST, GLOBAL_TARGET};
use crate::object::{FieldReloc, Reloc, RelocTarget};
use crate::regalloc::{self, Allocation, Home};

/// Offsets in x86-64's `struct pt_regs` of the argument registers (di, si, dx, cx, r8, r9)
/// and of ax, which holds the return value.
#[cfg(target_arch = "x86_64")]
const PT_REGS_ARGS: [i16; 6] = [112, 104, 96, 88, 72, 64];
#[cfg(target_arch = "x86_64")]
const PT_REGS_RET: i16 = 80;
/// arm64's `struct pt_regs` starts with x0..x30; x0 holds the return value.
#[cfg(not(target_arch = "x86_64"))]
const PT_REGS_ARGS: [i16; 6] = [0, 8, 16, 24, 32, 40];
#[cfg(not(target_arch = "x86_64"))]
const PT_REGS_RET: i16 = 0;
/// Where `struct pt_regs` tells the privilege level, and the bits that say user mode there:
/// cs's two low bits are 3 on x86-64; pstate's mode bits are 0 (EL0) on arm64.
/// Where `struct pt_regs` keeps the instruction pointer: ip on x86-64, pc on arm64.
/// Offsets in `struct pt_regs` of a syscall's six arguments as the task entered the kernel
/// (x86-64 passes the fourth in r10, not cx), and of the syscall's number.
#[cfg(target_arch = "x86_64")]
const SYSCALL_ARGS: [i16; 6] = [112, 104, 96, 56, 72, 64];
#[cfg(target_arch = "x86_64")]
const SYSCALL_NR: i16 = 120;
/// arm64: x0..x5 (at entry x0 still holds the first argument), then `syscallno`.
#[cfg(not(target_arch = "x86_64"))]
const SYSCALL_ARGS: [i16; 6] = PT_REGS_ARGS;
#[cfg(not(target_arch = "x86_64"))]
const SYSCALL_NR: i16 = 280;
#[cfg(target_arch = "x86_64")]
const PT_REGS_IP: i16 = 128;
#[cfg(not(target_arch = "x86_64"))]
const PT_REGS_IP: i16 = 256;
#[cfg(target_arch = "x86_64")]
const PT_REGS_MODE: (i16, i32, i32) = (136, 3, 3);
#[cfg(not(target_arch = "x86_64"))]
const PT_REGS_MODE: (i16, i32, i32) = (264, 0xf, 0);

/// Indexes of the maps every program may use, in the object's map list.
#[derive(Clone, Copy, Debug)]
pub struct MapIndexes {
    pub ringbuf: usize,
    pub globals: usize,
    pub scratch: usize,
}

/// Read-only data shared by all programs: strings for `bpf_snprintf` and the tables of
/// regular expressions, interned.
#[derive(Debug, Default)]
pub struct Rodata {
    pub bytes: Vec<u8>,
    interned: HashMap<Vec<u8>, u32>,
    /// `(offset, length)` of a run of zero bytes, the initial value of new map elements.
    zeros: Option<(u32, u32)>,
}

impl Rodata {
    /// The offset of `s` as a NUL-terminated string.
    pub fn intern(&mut self, s: &str) -> u32 {
        let mut bytes = s.as_bytes().to_vec();
        bytes.push(0);
        self.intern_bytes(&bytes)
    }

    /// The offset of `bytes`, 8-byte aligned.
    pub fn intern_bytes(&mut self, bytes: &[u8]) -> u32 {
        if let Some(off) = self.interned.get(bytes) {
            return *off;
        }
        let off = self.bytes.len() as u32;
        self.bytes.extend_from_slice(bytes);
        while self.bytes.len() % 8 != 0 {
            self.bytes.push(0);
        }
        self.interned.insert(bytes.to_vec(), off);
        off
    }

    /// The offset of at least `len` zero bytes.
    pub fn zeros(&mut self, len: u32) -> u32 {
        match self.zeros {
            Some((off, have)) if have >= len => off,
            _ => {
                let off = self.bytes.len() as u32;
                self.bytes.resize(self.bytes.len() + len.div_ceil(8) as usize * 8, 0);
                self.zeros = Some((off, len));
                off
            }
        }
    }
}

/// The emitted code of one handler.
#[derive(Clone, Debug)]
pub struct Emitted {
    pub insns: Vec<Insn>,
    pub relocs: Vec<Reloc>,
    /// The instructions holding a tracepoint record field's or a kernel struct member's offset.
    pub field_relocs: Vec<FieldReloc>,
    /// `(first instruction, span)` for each IR instruction, in order.
    pub spans: Vec<(usize, Span)>,
    /// Bytes of scratch area this program needs.
    pub scratch_size: u32,
}

/// Why a handler could not be emitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    #[error("{what} is not supported in a kernel probe yet")]
    Unsupported { what: String, span: Span },
    #[error("the probe needs {live_longs} long variables live at once, more than the 512-byte BPF stack holds")]
    StackFull { live_longs: usize, span: Span },
    /// An interactive session's globals map, of a fixed size, has no room for this input's.
    #[error("the session's {size} bytes of globals are full")]
    GlobalsFull { size: u32, span: Span },
    #[error("a jump is too far for a BPF instruction")]
    JumpTooFar { span: Span },
}

const KEY_ZERO: i16 = -8;
const READ_BUF: i16 = -16;
/// A record of only a header (`exit()`, errors). No instruction keeps the read buffer live
/// into another, and these records are sent within one.
const HEADER_RECORD: i16 = READ_BUF;
/// A spill slot for `<<<`.
const SPILL: i16 = -24;
const STACK_BASE: i16 = -24;
/// Stack bytes for long variables: all of the 512 but our own 24.
const STACK_LIMIT: u32 = 512 - 24;
/// `map_update_elem` flags.
const BPF_ANY: i32 = 0;
const BPF_NOEXIST: i32 = 1;
/// Maximum arguments of `bpf_snprintf`.
const SNPRINTF_MAX_ARGS: u32 = 12;
/// The frames a backtrace walks, SystemTap's MAXBACKTRACE.
const MAX_FRAMES: u32 = 20;
/// `bpf_get_stack`'s flag for the user-space stack.
const BPF_F_USER_STACK: i32 = 1 << 8;

const CTX: Reg = Reg::R6;
const SCRATCH: Reg = Reg::R7;
const GLOBALS: Reg = Reg::R8;
/// The record a `printf` reserved in the ring buffer, while it fills it.
const RECORD: Reg = Reg::R9;

/// A buffer the emitter writes at `base + off`: on the stack, in scratch, in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Buf {
    base: Reg,
    off: i16,
}

impl Buf {
    fn scratch(off: u32) -> Buf {
        Buf { base: SCRATCH, off: off as i16 }
    }

    fn at(self, delta: u32) -> Buf {
        Buf { base: self.base, off: self.off + delta as i16 }
    }
}

/// A jump target within the program being emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Label(u32);

/// What the emitter needs to know about the program around one handler.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub program: &'a Program,
    pub globals: &'a GlobalsLayout,
    pub maps: MapIndexes,
    /// The script calls `exit()` somewhere: every kernel handler first checks the exit flag
    /// (`GlobalsLayout::exited`). Scripts without `exit()` pay nothing.
    pub guard_exit: bool,
}

/// How one handler is emitted: which handler, what it returns, how it reads arguments.
#[derive(Clone, Copy)]
pub struct HandlerSpec<'a> {
    pub index: u32,
    pub func: &'a Function,
    pub span: Span,
    /// What the program returns (0, or `NF_ACCEPT` for netfilter).
    pub exit_value: i32,
    pub args: ProgramContext,
}

pub fn emit_handler(cx: Context<'_>, handler: HandlerSpec<'_>, rodata: &mut Rodata) -> Result<Emitted, EmitError> {
    let Context { program, globals, maps, guard_exit } = cx;
    let HandlerSpec { index: handler_index, func, span, exit_value, args } = handler;
    let cap = program.string_capacity;
    let slot_size = layout::value_size(Ty::Str, cap);
    let blocks = layout_blocks(func);
    let uses = use_counts(func);
    let sunk = sinkable_values(func, &uses);
    let in_place: HashSet<Var> = sunk.keys().copied().collect();
    let dead = regalloc::dead_insts(func, &blocks.reachable);
    let alloc = regalloc::allocate(func, &blocks.reachable, &in_place, &dead, STACK_BASE, STACK_LIMIT, slot_size)
        .map_err(|regalloc::AllocError::StackFull { live_longs }| EmitError::StackFull { live_longs, span })?;
    // Scratch: string slots, one slot of slack (see `concat`), a string temporary, the
    // snprintf argument array, a 16-byte buffer for addresses, and the key buffer when
    // the stack has no room for it.
    let str_tmp_off = alloc.scratch_bytes + slot_size;
    let args_off = str_tmp_off + slot_size;
    let tmp_off = args_off + SNPRINTF_MAX_ARGS * 8;
    let key_off = tmp_off + 16;
    let max_key = program.arrays.values().map(|a| layout::key_layout(a).1).max().unwrap_or(0).div_ceil(8) * 8;
    // `@variance` folds the CPUs' shares into words just past its key (see `stat_variance`).
    let takes_variance = func
        .blocks
        .values()
        .flat_map(|b| &b.insts)
        .any(|i| matches!(i.kind, InstKind::StatGet { op: StatOp::Variance, .. }));
    let max_key = if takes_variance { max_key + VARIANCE_WORDS * 8 } else { max_key };
    let (key, frames_off) = if alloc.stack_bytes + max_key <= STACK_LIMIT {
        (Buf { base: Reg::R10, off: STACK_BASE - (alloc.stack_bytes + max_key) as i16 }, key_off)
    } else {
        (Buf::scratch(key_off), key_off + max_key)
    };
    // The frames of a backtrace, last, only for a handler that walks the stack.
    let walks_stack = func
        .blocks
        .values()
        .flat_map(|b| &b.insts)
        .any(|i| matches!(i.kind, InstKind::Call { builtin: Builtin::Backtrace { .. }, .. }));
    let frames_end = if walks_stack { frames_off + MAX_FRAMES * 8 } else { frames_off };
    // Each `foreach`'s snapshot of keys, last (see `iter_start`).
    let (key_lists, scratch_size) = key_list_offsets(program, func, frames_end);
    if scratch_size > SCRATCH_MAX && !key_lists.is_empty() {
        let what = "`foreach` nested this deep (its key lists need more than 32 KiB of scratch)";
        return Err(EmitError::Unsupported { what: what.into(), span });
    }
    let consts = constant_vars(func);
    // Two passes: the first learns which variables are ever read back from their homes, the
    // second stores only those. Stores do not change what the registers hold, so both
    // passes load the same way and the second reads back exactly what the first did.
    if let ProgramContext::Syscall { exit, .. } = args {
        check_syscall_reads(func, exit)?;
    }
    let mut read_back: Option<HashSet<Var>> = None;
    loop {
        let mut e = Emitter {
            program,
            func,
            alloc: &alloc,
            globals,
            maps,
            rodata: &mut *rodata,
            cap,
            str_tmp_off,
            args_off,
            tmp_off,
            frames_off,
            key_lists: &key_lists,
            key,
            handler_index,
            args,
            guard_exit,
            globals_loaded: false,
            scratch_loaded: false,
            sunk: &sunk,
            consts: &consts,
            stored: read_back.as_ref(),
            read_back: HashSet::new(),
            aliases: Vec::new(),
            cached: [None; 6],
            insns: Vec::new(),
            relocs: Vec::new(),
            field_relocs: Vec::new(),
            spans: Vec::new(),
            labels: HashMap::new(),
            fixups: Vec::new(),
            func_refs: Vec::new(),
            callbacks: Vec::new(),
            next_label: func.blocks.len() as u32 + 1,
            span,
        };
        e.handler(&blocks, &uses, &dead, exit_value)?;
        e.read_back_through_aliases();
        if let Some(stored) = &read_back {
            debug_assert_eq!(&e.read_back, stored);
            return Ok(Emitted {
                insns: e.insns,
                relocs: e.relocs,
                field_relocs: e.field_relocs,
                spans: e.spans,
                scratch_size,
            });
        }
        read_back = Some(e.read_back);
    }
}

/// The label of the common exit; block labels are the block numbers.
const EXIT_LABEL: Label = Label(u32::MAX);

struct Emitter<'a> {
    program: &'a Program,
    func: &'a Function,
    alloc: &'a Allocation,
    globals: &'a GlobalsLayout,
    maps: MapIndexes,
    /// See [`Context::guard_exit`].
    guard_exit: bool,
    rodata: &'a mut Rodata,
    cap: u32,
    /// A string-sized temporary in scratch.
    str_tmp_off: u32,
    args_off: u32,
    tmp_off: u32,
    /// Where a backtrace's frames are read to (`MAX_FRAMES` of 8 bytes).
    frames_off: u32,
    /// The scratch offset of each `foreach`'s key list.
    key_lists: &'a HashMap<lang::ir::IterId, u32>,
    /// Where array keys are built.
    key: Buf,
    /// This handler's index in the program, for error records.
    handler_index: u32,
    args: ProgramContext,
    /// `r8` holds the globals value (loaded in the prologue when the handler uses globals).
    globals_loaded: bool,
    /// `r7` holds the scratch area (loaded in the prologue when the handler uses it).
    scratch_loaded: bool,
    /// Values used once, as a printf argument or an array key, in the block that computes
    /// them, with the instruction that does: the use computes them, straight into place.
    sunk: &'a HashMap<Var, InstKind>,
    /// Variables set once, to a constant: loads use the constant, and they have no store.
    consts: &'a HashMap<Var, i32>,
    /// In the second pass, the variables whose stores are kept: those read back in the
    /// first.
    stored: Option<&'a HashSet<Var>>,
    /// Variables read back from their homes so far.
    read_back: HashSet<Var>,
    /// `(dst, src)` of the copies coalesced away: reading `dst` back reads what `src` stored.
    aliases: Vec<(Var, Var)>,
    /// Which variable each of r0..r5 holds, where known (straight-line code only).
    cached: [Option<Var>; 6],
    insns: Vec<Insn>,
    relocs: Vec<Reloc>,
    field_relocs: Vec<FieldReloc>,
    spans: Vec<(usize, Span)>,
    labels: HashMap<Label, usize>,
    fixups: Vec<(usize, Label)>,
    /// `ld_imm64` of a callback (`pseudo::FUNC`) and the label of the callback's start.
    func_refs: Vec<(usize, Label)>,
    /// The callbacks this handler passes to helpers, emitted after its exit.
    callbacks: Vec<(Callback, Label)>,
    next_label: u32,
    span: Span,
}

/// A BPF function the handler passes to a helper. Its context, where it has one, is the
/// handler's key buffer (a pointer into the handler's stack); results go to the handler's
/// stack at fixed offsets from it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Callback {
    /// For `for_each_map_elem`, for `delete a[k, *]` and `[k, *] in a`: compares the words
    /// of each element's key with the pattern in the key buffer, only where the pattern has
    /// a key.
    Match {
        /// Offsets of the 8-byte words of the key to compare.
        words: Vec<i16>,
        op: MatchOp,
    },
    /// For `bpf_loop` over CPU numbers, for `@count`, `@sum`, `@min` and `@max`: folds the
    /// field at `field` of the CPU's value of `array[key]` into the word at `acc` (`seen`:
    /// whether a CPU with samples came yet); stops at the first CPU that does not exist.
    FoldCpus { map: usize, field: i16, fold: Fold, acc: i16, seen: i16 },
    /// For `for_each_map_elem`, for `foreach`: appends the element's key (`words` 8-byte
    /// words) to the key list at scratch `list`, or inserts it in order of its word `word`
    /// when `sort` is `Some((word, ascending))`; stops when the list is full.
    CollectKey { list: u32, words: u32, sort: Option<(u32, bool)> },
    /// For `bpf_loop`, for a sorted `foreach`'s [`Callback::CollectKey`]: one step of the
    /// insertion, which moves the key before the new one's place (the word at `ctx`) up one
    /// place unless it comes before the new key (whose word `word` is at `ctx + 8`) in the
    /// order. A loop of its own in `CollectKey` would cost the verifier a walk of every
    /// length of the list each time it checks the callback.
    MakeRoom { list: u32, words: u32, word: u32, ascending: bool },
    /// For `bpf_loop` over CPU numbers, for `@variance`: combines the CPU's share of
    /// `array[key]` into the [`VARIANCE_WORDS`] words at `words`; stops as `FoldCpus`.
    Variance { map: usize, words: i16, step: VarianceStep },
    /// For `bpf_loop`, for `str_replace(s, needle, with)` with constant strings: one step
    /// copies the byte of `s` (at scratch `src`) at the source index (the word at scratch
    /// `idx`) to the output (scratch `out`, at the output index, the word after), or the
    /// replacement where the needle starts there; stops at the end of `s` or of the output.
    /// The indexes live in scratch, not on the stack: the verifier tracks stack words
    /// exactly and would walk every (source, output) pair, where a map value's words are
    /// unknown to it and one pass over the step suffices.
    Replace { src: u32, out: u32, idx: u32, needle: Vec<u8>, with: Vec<u8> },
    /// For `bpf_find_vma`, for `_user_vma(addr)`: writes the vma found to the word at
    /// scratch `at`.
    KeepVma { at: u32 },
}

/// The errno values `errno_str` finds in its table in kernel probes (Linux's last is 133),
/// and the bytes of one entry: the longest name, `ENOTRECOVERABLE`, and its NUL.
const ERRNO_MAX: i64 = 133;
const ERRNO_ENTRY: u32 = 16;

/// How [`Callback::FoldCpus`] combines the CPUs' shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fold {
    Sum,
    Min,
    Max,
}

/// The words `@variance` folds the CPUs' shares into: count, sum, mean (scaled as `avg_s`)
/// and variance (for a scalar, first the sum that divides into it).
const VARIANCE_WORDS: u32 = 4;

/// How [`Callback::Variance`] combines one CPU's share of a statistic, as SystemTap does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VarianceStep {
    /// A scalar global (stap's `_stp_stat_get`, `runtime::stats::merge`): adds the spread
    /// of the CPU's samples around the mean of all (word 2) to word 3.
    Spread,
    /// An array element (stap's `_new_map_copy_stat`, `runtime::stats::merge_entry`): merges
    /// the CPU's count, sum, mean and variance into words 0..4, CPU by CPU.
    Pairwise,
}

/// The largest per-CPU map value the kernel allocates (`PCPU_MIN_UNIT_SIZE`): the bound of
/// the scratch area.
const SCRATCH_MAX: u32 = 32 * 1024;
/// A key list's header words: the keys taken, the next to visit, the `limit`.
const KEY_LIST_HEADER: u32 = 24;

/// The bytes of one key of `decl` in a `foreach`'s key list: its key, in 8-byte words.
fn key_list_entry(decl: &lang::ir::ArrayDecl) -> u32 {
    layout::key_layout(decl).1.div_ceil(8) * 8
}

/// Where each `foreach`'s key list lives in scratch, from `base`, and the end of the last.
/// A list is needed until its loop ends, so a `foreach` in another's body gets the bytes
/// after the other's, and loops one after another share theirs.
fn key_list_offsets(program: &Program, func: &Function, base: u32) -> (HashMap<lang::ir::IterId, u32>, u32) {
    let mut starts = Vec::new();
    // The loop of each iteration: the block that asks for the next key, and its branches.
    let mut loops = HashMap::new();
    for (b, data) in func.blocks.iter() {
        for inst in &data.insts {
            match inst.kind {
                InstKind::IterStart { iter, array, .. } => starts.push((iter, b, array)),
                InstKind::IterNext { iter, has, .. } => {
                    if let Terminator::Branch { cond, then, els } = data.term {
                        if cond == has {
                            loops.insert(iter, (b, then, els));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    // The blocks of a loop's body: those reached from its start before the next key is asked
    // for or the loop is left.
    let body = |iter| {
        let mut seen = HashSet::new();
        if let Some(&(next, then, done)) = loops.get(&iter) {
            let mut todo = vec![then];
            while let Some(b) = todo.pop() {
                if b != next && b != done && seen.insert(b) {
                    todo.extend(func.blocks[b].term.successors());
                }
            }
        }
        seen
    };
    starts.sort_by_key(|(iter, ..)| *iter);
    let mut placed: Vec<(HashSet<Block>, u32)> = Vec::new();
    let (mut offsets, mut end) = (HashMap::new(), base);
    for (iter, block, array) in starts {
        let at = placed.iter().filter(|(blocks, _)| blocks.contains(&block)).map(|(_, end)| *end).max().unwrap_or(base);
        let list_end = at + KEY_LIST_HEADER + program.loop_budget * key_list_entry(&program.arrays[array]);
        offsets.insert(iter, at);
        placed.push((body(iter), list_end));
        end = end.max(list_end);
    }
    (offsets, end)
}

/// More CPUs than any kernel has (`NR_CPUS` is at most 8192): the bound of the loop over
/// CPUs, which stops at the first CPU number the kernel does not know.
const MAX_CPUS: i32 = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchOp {
    /// Delete every match.
    Delete,
    /// Stop at the first match, setting the handler's word at this offset from the
    /// pattern to 1.
    Find { flag: i16 },
}

impl Emitter<'_> {
    fn handler(
        &mut self,
        blocks: &BlockLayout,
        uses: &HashMap<Var, usize>,
        dead: &HashSet<(Block, usize)>,
        exit_value: i32,
    ) -> Result<(), EmitError> {
        let func = self.func;
        let successors = |b: Block| func.blocks[b].term.successors().into_iter().map(|s| blocks.target(s));
        let mut edges_into: HashMap<Label, usize> = HashMap::new();
        for &b in &blocks.order {
            for to in successors(b) {
                *edges_into.entry(to).or_default() += 1;
            }
        }
        self.prologue();
        for (k, &b) in blocks.order.iter().enumerate() {
            let label = Label(b.as_u32());
            // A block entered only from the one before it, falling through, starts with the
            // registers as that one left them.
            let edges = edges_into.get(&label).copied().unwrap_or(0);
            let falls_in = k == 0 || successors(blocks.order[k - 1]).any(|to| to == label);
            if falls_in && edges == usize::from(k > 0) {
                self.labels.insert(label, self.insns.len());
            } else {
                self.bind(label);
            }
            let data = &func.blocks[b];
            // A comparison whose only use is the branch that ends its block becomes the jump.
            let fused = match (data.insts.last().map(|i| &i.kind), &data.term) {
                (Some(&InstKind::Compare { op, dst, lhs, rhs }), Terminator::Branch { cond, .. })
                    if dst == *cond && uses.get(&dst) == Some(&1) =>
                {
                    Some((op, lhs, rhs))
                }
                _ => None,
            };
            for (n, inst) in data.insts.iter().enumerate() {
                self.span = inst.span;
                self.spans.push((self.insns.len(), inst.span));
                if (fused.is_none() || n + 1 < data.insts.len()) && !dead.contains(&(b, n)) {
                    self.inst(&inst.kind)?;
                }
            }
            let next = blocks.order.get(k + 1).map_or(EXIT_LABEL, |n| Label(n.as_u32()));
            match &data.term {
                Terminator::Jump(t) => {
                    if blocks.target(*t) != next {
                        self.jump(blocks.target(*t));
                    }
                }
                Terminator::Branch { cond, then, els } => {
                    let (then, els) = (blocks.target(*then), blocks.target(*els));
                    if then == els {
                        if then != next {
                            self.jump(then);
                        }
                        continue;
                    }
                    // Fall through to `then` where it comes next: jump to `els` on the opposite test.
                    let negate = then == next;
                    let (to, other) = if negate { (els, then) } else { (then, els) };
                    match fused {
                        Some((op, lhs, rhs)) => {
                            self.jump_if_compare(if negate { negated(op) } else { op }, lhs, rhs, to)
                        }
                        None => {
                            self.load(Reg::R0, *cond);
                            self.jump_if_imm(if negate { JmpOp::Eq } else { JmpOp::Ne }, Reg::R0, 0, to);
                        }
                    }
                    if other != next {
                        self.jump(other);
                    }
                }
                Terminator::Return => {
                    if next != EXIT_LABEL {
                        self.jump(EXIT_LABEL);
                    }
                }
            }
        }
        self.bind(EXIT_LABEL);
        self.push(insn::mov64_imm(Reg::R0, exit_value));
        self.push(insn::exit());
        // A callback may pass another to a helper, which then joins the list.
        let mut next = 0;
        while let Some((callback, label)) = self.callbacks.get(next).cloned() {
            next += 1;
            self.bind(label);
            match callback {
                Callback::Match { words, op } => self.matcher(&words, op),
                Callback::FoldCpus { map, field, fold, acc, seen } => self.fold_cpus(map, field, fold, acc, seen),
                Callback::Variance { map, words, step } => self.variance_step(map, words, step),
                Callback::CollectKey { list, words, sort } => self.collect_key(list, words, sort),
                Callback::MakeRoom { list, words, word, ascending } => self.make_room(list, words, word, ascending),
                Callback::Replace { src, out, idx, needle, with } => {
                    self.replace_step(src, out, idx as i16, &needle, &with)
                }
                Callback::KeepVma { at } => self.keep_vma(at),
            }
        }
        self.resolve_jumps()?;
        self.drop_jumps_to_next();
        Ok(())
    }

    /// A coalesced copy's source is read back wherever its destination is.
    fn read_back_through_aliases(&mut self) {
        let mut changed = true;
        while changed {
            changed = false;
            for (dst, src) in &self.aliases {
                if self.read_back.contains(dst) {
                    changed |= self.read_back.insert(*src);
                }
            }
        }
    }

    fn push(&mut self, i: Insn) {
        debug_assert!(
            self.scratch_loaded || (i.dst != SCRATCH.0 && i.src != SCRATCH.0),
            "r7 used in a handler that does not load the scratch area"
        );
        self.clobber(i);
        self.insns.push(i);
    }

    fn push2(&mut self, pair: [Insn; 2]) {
        self.clobber(pair[0]);
        self.insns.extend(pair);
    }

    /// Forgets what the registers an instruction writes held. A jump forgets everything: an
    /// instruction it skips to may be reached with other values (labels forget too, see
    /// `bind`; conditional jumps to labels keep what they know, see `jump_if_imm`).
    fn clobber(&mut self, i: Insn) {
        use insn::class;
        match i.class() {
            class::ALU | class::ALU64 | class::LDX | class::LD => {
                if let Some(slot) = self.cached.get_mut(i.dst as usize) {
                    *slot = None;
                }
            }
            class::JMP | class::JMP32 => self.cached = [None; 6],
            _ => {}
        }
    }

    fn new_label(&mut self) -> Label {
        self.next_label += 1;
        Label(self.next_label)
    }

    fn bind(&mut self, l: Label) {
        self.labels.insert(l, self.insns.len());
        self.cached = [None; 6];
    }

    fn jump(&mut self, l: Label) {
        self.fixups.push((self.insns.len(), l));
        self.push(insn::ja(0));
    }

    /// A conditional jump to a label. The registers keep their values on the way on, and
    /// the label forgets them where it is bound, so what they hold stays known here.
    fn jump_if_imm(&mut self, op: JmpOp, r: Reg, imm: i32, l: Label) {
        self.fixups.push((self.insns.len(), l));
        let cached = self.cached;
        self.push(insn::jmp_imm(op, r, imm, 0));
        self.cached = cached;
    }

    fn jump_if_reg(&mut self, op: JmpOp, a: Reg, b: Reg, l: Label) {
        self.fixups.push((self.insns.len(), l));
        let cached = self.cached;
        self.push(insn::jmp_reg(op, a, b, 0));
        self.cached = cached;
    }

    /// Jumps to `l` when `lhs op rhs` holds.
    fn jump_if_compare(&mut self, op: CmpOp, lhs: Var, rhs: Operand, l: Label) {
        let a = self.reg_of(lhs, Reg::R1);
        let other = if a == Reg::R2 { Reg::R1 } else { Reg::R2 };
        match rhs {
            Operand::Imm(imm) if i32::try_from(imm).is_ok() => self.jump_if_imm(signed_jmp(op), a, imm as i32, l),
            Operand::Imm(imm) => {
                self.load_imm(other, imm);
                self.jump_if_reg(signed_jmp(op), a, other, l);
            }
            Operand::Var(v) => {
                let b = self.reg_of(v, other);
                self.jump_if_reg(signed_jmp(op), a, b, l);
            }
        }
    }

    /// Removes `goto +0` (a block that ends by jumping to the one laid out next) and
    /// renumbers the jumps, relocations and spans around the removed instructions.
    fn drop_jumps_to_next(&mut self) {
        let is_nop = |i: &Insn| i.code == insn::class::JMP && i.off == 0 && i.imm == 0;
        let n = self.insns.len();
        // new_index[i]: where instruction i (or, if removed, the next kept one) ends up.
        let mut new_index = Vec::with_capacity(n + 1);
        let mut kept = 0usize;
        let mut second_half = false;
        for i in &self.insns {
            new_index.push(kept);
            let removable = !second_half && is_nop(i);
            second_half = !second_half && i.is_ld_imm64();
            if !removable {
                kept += 1;
            }
        }
        new_index.push(kept);
        if kept == n {
            return;
        }
        let mut out = Vec::with_capacity(kept);
        let mut second_half = false;
        for (at, i) in self.insns.iter().enumerate() {
            let mut i = *i;
            let removable = !second_half && is_nop(&i);
            let jump = !second_half
                && matches!(i.class(), insn::class::JMP | insn::class::JMP32)
                && i.code & 0xf0 != insn::jmp::CALL
                && i.code & 0xf0 != insn::jmp::EXIT;
            let callback_ref = !second_half && i.is_ld_imm64() && i.src == insn::pseudo::FUNC;
            second_half = !second_half && i.is_ld_imm64();
            if removable {
                continue;
            }
            if jump {
                let target = (at as i64 + 1 + i.off as i64) as usize;
                i.off = (new_index[target] as i64 - (new_index[at] as i64 + 1)) as i16;
            }
            if callback_ref {
                let target = (at as i64 + 1 + i.imm as i64) as usize;
                i.imm = (new_index[target] as i64 - (new_index[at] as i64 + 1)) as i32;
            }
            out.push(i);
        }
        self.insns = out;
        for r in &mut self.relocs {
            r.insn_index = new_index[r.insn_index];
        }
        for r in &mut self.field_relocs {
            r.insn_index = new_index[r.insn_index];
        }
        for (at, _) in &mut self.spans {
            *at = new_index[*at];
        }
    }

    fn resolve_jumps(&mut self) -> Result<(), EmitError> {
        for &(at, label) in &self.fixups {
            let target = self.labels[&label] as i64;
            let off = target - (at as i64 + 1);
            self.insns[at].off = i16::try_from(off).map_err(|_| EmitError::JumpTooFar { span: self.span })?;
        }
        for &(at, label) in &self.func_refs {
            self.insns[at].imm = (self.labels[&label] as i64 - (at as i64 + 1)) as i32;
        }
        Ok(())
    }

    fn map_ptr(&mut self, dst: Reg, map: usize) {
        self.relocs.push(Reloc { insn_index: self.insns.len(), target: RelocTarget::Map(map) });
        self.push2(insn::ld_map_fd(dst, 0));
    }

    fn rodata_ptr(&mut self, dst: Reg, s: &str) {
        let off = self.rodata.intern(s);
        self.rodata_ptr_at(dst, off);
    }

    fn rodata_ptr_at(&mut self, dst: Reg, off: u32) {
        self.relocs.push(Reloc { insn_index: self.insns.len(), target: RelocTarget::Rodata(off) });
        self.push2(insn::ld_imm64_pseudo(dst, insn::pseudo::MAP_VALUE, 0, off as i32));
    }

    fn uses_scratch(&self) -> bool {
        // String variables live in scratch; the instructions below use its temporaries.
        self.alloc.scratch_bytes > 0
            || self.insts().any(|i| match &i.kind {
                InstKind::Sprintf { .. }
                | InstKind::Call {
                    builtin:
                        Builtin::Strlen
                        | Builtin::Substr
                        | Builtin::IpNtop
                        | Builtin::UserIpv6Str
                        | Builtin::KernelIpv6Str
                        | Builtin::ErrnoStr
                        | Builtin::StrReplace
                        | Builtin::UserVma,
                    ..
                } => true,
                InstKind::ArrayGet { .. }
                | InstKind::ArraySet { .. }
                | InstKind::ArrayAdd { .. }
                | InstKind::ArrayDelete { .. }
                | InstKind::ArrayContains { .. }
                | InstKind::StatAdd { .. } => self.key.base == SCRATCH,
                InstKind::IterStart { .. } | InstKind::IterNext { .. } => true,
                _ => false,
            })
    }

    fn uses_globals(&self) -> bool {
        self.insts().any(|i| {
            matches!(
                i.kind,
                InstKind::LoadGlobal { .. }
                    | InstKind::StoreGlobal { .. }
                    | InstKind::AddGlobal { .. }
                    | InstKind::Call {
                        builtin: Builtin::Target
                            | Builtin::GettimeofdayS
                            | Builtin::GettimeofdayMs
                            | Builtin::GettimeofdayUs
                            | Builtin::GettimeofdayNs,
                        ..
                    }
            )
        })
    }

    /// Instructions that reach the globals on a rare path: a record the ring buffer had no
    /// room for is counted there, and a full array is flagged there.
    fn rare_globals_sites(&self) -> usize {
        let reaches = |i: &&lang::ir::Inst| {
            matches!(
                i.kind,
                InstKind::Printf { .. }
                    | InstKind::Exit
                    | InstKind::MaxActionExceeded
                    | InstKind::ArraySet { .. }
                    | InstKind::ArrayAdd { .. }
                    | InstKind::StatAdd { .. }
            )
        };
        self.insts().filter(reaches).count()
    }

    /// Every IR instruction of the handler.
    fn insts(&self) -> impl Iterator<Item = &lang::ir::Inst> {
        self.func.blocks.values().flat_map(|b| &b.insts)
    }

    fn uses_ctx(&self) -> bool {
        self.insts().any(|i| {
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

    fn prologue(&mut self) {
        // A handler that does nothing needs no filter.
        let filter = match self.args {
            ProgramContext::Syscall { exit, only: Some(nr) } if self.insts().next().is_some() => Some((exit, nr)),
            _ => None,
        };
        if let Some((false, nr)) = filter {
            // The raw tracepoint's `long id`.
            self.push(insn::ldx(Size::DW, Reg::R0, Reg::R1, 8));
            self.jump_if_imm(JmpOp::Ne, Reg::R0, nr as i32, EXIT_LABEL);
        }
        // The rare paths need the globals: loading their address once here is smaller than
        // on each of two or more of them.
        let (scratch, globals) = (self.uses_scratch(), self.uses_globals() || self.rare_globals_sites() >= 2);
        if self.guard_exit {
            // if (globals.exited) return, through the globals register when it is loaded anyway.
            let base = if globals { GLOBALS } else { Reg::R0 };
            self.globals_ptr(base);
            self.push(insn::ldx(Size::DW, Reg::R0, base, self.globals.exited as i16));
            self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, EXIT_LABEL);
        }
        let exit_filter = matches!(filter, Some((true, _)));
        if self.uses_ctx() || exit_filter {
            self.push(insn::mov64_reg(CTX, Reg::R1));
        }
        if let Some((true, nr)) = filter {
            // At the exit the number is in the registers, read through a helper; compared as
            // the `int` the kernel takes it as (see `load_context`).
            self.load_syscall_slot(SyscallSlot::Number, true);
            self.fixups.push((self.insns.len(), EXIT_LABEL));
            self.push(insn::jmp32_imm(JmpOp::Ne, Reg::R0, nr as i32, 0));
        }
        self.globals_loaded = globals;
        self.scratch_loaded = scratch;
        if scratch {
            self.push(insn::st_imm(Size::W, Reg::R10, KEY_ZERO, 0));
            self.map_ptr(Reg::R1, self.maps.scratch);
            self.push(insn::mov64_reg(Reg::R2, Reg::R10));
            self.push(insn::alu64_imm(AluOp::Add, Reg::R2, KEY_ZERO as i32));
            self.push(insn::call(Helper::MapLookupElem));
            self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, EXIT_LABEL);
            self.push(insn::mov64_reg(SCRATCH, Reg::R0));
        }
        if globals && !self.guard_exit {
            self.globals_ptr(GLOBALS);
        }
    }

    /// `dst` = the address of the globals: the globals map is a one-entry array, whose value
    /// the kernel lets a program address directly (`BPF_PSEUDO_MAP_VALUE`), with no lookup
    /// and no null check.
    fn globals_ptr(&mut self, dst: Reg) {
        self.relocs.push(Reloc { insn_index: self.insns.len(), target: RelocTarget::MapValue(self.maps.globals) });
        self.push2(insn::ld_imm64_pseudo(dst, insn::pseudo::MAP_VALUE, 0, 0));
    }

    fn stack(&self, v: Var) -> i16 {
        match self.alloc.homes[v] {
            Home::Stack(off) => off,
            other => panic!("{v} is a long but lives in {other:?}"),
        }
    }

    fn scratch(&self, v: Var) -> u32 {
        match self.alloc.homes[v] {
            Home::Scratch(off) => off,
            other => panic!("{v} is a string but lives in {other:?}"),
        }
    }

    /// `r = v`, from a register that already holds it when one does.
    fn load(&mut self, r: Reg, v: Var) {
        if self.cached.get(r.0 as usize) == Some(&Some(v)) {
            return;
        }
        match (self.cached.iter().position(|c| *c == Some(v)), self.consts.get(&v)) {
            (Some(src), _) => self.push(insn::mov64_reg(r, Reg(src as u8))),
            (None, Some(value)) => self.push(insn::mov64_imm(r, *value)),
            (None, None) => {
                let off = self.stack(v);
                self.read_back.insert(v);
                self.push(insn::ldx(Size::DW, r, Reg::R10, off));
            }
        }
        if let Some(slot) = self.cached.get_mut(r.0 as usize) {
            *slot = Some(v);
        }
    }

    /// A register holding `v`: one that already does, else `r` after loading it.
    fn reg_of(&mut self, v: Var, r: Reg) -> Reg {
        match self.cached.iter().position(|c| *c == Some(v)) {
            Some(held) => Reg(held as u8),
            None => {
                self.load(r, v);
                r
            }
        }
    }

    /// `v = r`. The store to `v`'s home is left out when nothing reads it back (known in
    /// the second pass) or `v` is a constant.
    fn store(&mut self, v: Var, r: Reg) {
        let off = self.stack(v);
        if self.stored.is_none_or(|stored| stored.contains(&v)) && !self.consts.contains_key(&v) {
            self.push(insn::stx(Size::DW, Reg::R10, r, off));
        }
        for c in self.cached.iter_mut() {
            if *c == Some(v) {
                *c = None;
            }
        }
        if let Some(slot) = self.cached.get_mut(r.0 as usize) {
            *slot = Some(v);
        }
    }

    /// `r = r10 + the home of v`, with `v`'s value there.
    fn home_addr(&mut self, r: Reg, v: Var) {
        let off = self.stack(v);
        match self.consts.get(&v) {
            Some(value) => self.push(insn::st_imm(Size::DW, Reg::R10, off, *value)),
            None => {
                self.read_back.insert(v);
            }
        }
        self.addr(r, Buf { base: Reg::R10, off });
    }

    fn load_operand(&mut self, r: Reg, o: Operand) {
        match o {
            Operand::Var(v) => self.load(r, v),
            Operand::Imm(i) => self.load_imm(r, i),
        }
    }

    fn load_imm(&mut self, r: Reg, value: i64) {
        match i32::try_from(value) {
            Ok(i) => self.push(insn::mov64_imm(r, i)),
            Err(_) => self.push2(insn::ld_imm64(r, value as u64)),
        }
    }

    /// `r = &scratch[off]`.
    fn scratch_addr(&mut self, r: Reg, off: u32) {
        self.addr(r, Buf::scratch(off));
    }

    /// `r = buf.base + buf.off`.
    fn addr(&mut self, r: Reg, buf: Buf) {
        self.push(insn::mov64_reg(r, buf.base));
        if buf.off != 0 {
            self.push(insn::alu64_imm(AluOp::Add, r, buf.off as i32));
        }
    }

    fn str_addr(&mut self, r: Reg, v: Var) {
        let off = self.scratch(v);
        self.scratch_addr(r, off);
    }

    fn unsupported(&self, what: &str) -> EmitError {
        EmitError::Unsupported { what: what.to_string(), span: self.span }
    }

    fn inst(&mut self, kind: &InstKind) -> Result<(), EmitError> {
        match kind {
            InstKind::Const { dst, value } => {
                if !self.consts.contains_key(dst) {
                    self.load_imm(Reg::R0, *value);
                    self.store(*dst, Reg::R0);
                }
            }
            InstKind::StrConst { dst, value } => self.str_const(*dst, value),
            InstKind::Copy { dst, src } => match self.func.ty(*dst) {
                Ty::Long if self.alloc.homes[*dst] == self.alloc.homes[*src] && !self.consts.contains_key(src) => {
                    // Coalesced: `src` dies here, and what held it now holds `dst`.
                    for c in self.cached.iter_mut().filter(|c| **c == Some(*src)) {
                        *c = Some(*dst);
                    }
                    self.aliases.push((*dst, *src));
                }
                Ty::Long => {
                    self.load(Reg::R0, *src);
                    self.store(*dst, Reg::R0);
                }
                Ty::Str => {
                    if self.scratch(*dst) != self.scratch(*src) {
                        let off = self.scratch(*dst);
                        self.str_addr(Reg::R3, *src);
                        self.copy_str(off, self.cap);
                    }
                }
            },
            InstKind::Unary { op, dst, src } => self.unary(*op, *dst, *src),
            InstKind::Binary { op, dst, lhs, rhs } => self.binary_inst(*op, *dst, *lhs, *rhs),
            InstKind::Compare { op, dst, lhs, rhs } => {
                self.load(Reg::R1, *lhs);
                self.load_operand(Reg::R2, *rhs);
                self.push(insn::mov64_imm(Reg::R0, 1));
                self.push(insn::jmp_reg(signed_jmp(*op), Reg::R1, Reg::R2, 1));
                self.push(insn::mov64_imm(Reg::R0, 0));
                self.store(*dst, Reg::R0);
            }
            InstKind::StrCompare { op, dst, lhs, rhs } => self.str_compare(*op, *dst, *lhs, *rhs),
            InstKind::Concat { dst, lhs, rhs } => self.concat(*dst, *lhs, *rhs),
            InstKind::RegexMatch { dst, regex, subject } => self.regex_match(*dst, *regex, *subject)?,
            InstKind::LoadContext { dst, offset, size, signed } => {
                if !self.sunk.contains_key(dst) {
                    self.load_context(*offset, *size, *signed);
                    self.store(*dst, Reg::R0);
                }
            }
            InstKind::LoadContextDataLoc { dst, offset } => self.load_context_data_loc(*dst, *offset),
            InstKind::LoadContextStr { dst, offset, len } => self.load_context_str(*dst, *offset, *len),
            InstKind::Read { dst, addr, size, signed, space, fault } => {
                self.read(*dst, *addr, *size, *signed, *space, *fault)
            }
            InstKind::ReadStr { dst, addr, space, fallback, limit } => {
                self.read_str(*dst, *addr, *space, *fallback, *limit)
            }
            InstKind::Call { dst, builtin, args } => self.call(*dst, *builtin, args)?,
            InstKind::Sprintf { dst, fmt, args } => self.sprintf(*dst, *fmt, args)?,
            InstKind::Printf { fmt, args } => self.printf(*fmt, args),
            InstKind::LoadGlobal { dst, global } => self.load_global(*dst, *global),
            InstKind::StoreGlobal { global, src } => self.store_global(*global, *src),
            InstKind::AddGlobal { global, src } => {
                let off = self.globals.offset(*global);
                let value = self.reg_of(*src, Reg::R1);
                self.push(insn::atomic_add(Size::DW, GLOBALS, value, off as i16));
            }
            InstKind::Exit => self.exit(),
            InstKind::LoadArg { dst, index } => self.load_arg(*dst, *index)?,
            InstKind::LoadReturn { dst } => self.load_return(*dst)?,
            InstKind::MaxActionExceeded => {
                self.output_header_record(layout::record_error::MAX_ACTION | self.handler_index);
            }
            InstKind::ArrayGet { dst, array, keys } => self.array_get(*dst, *array, keys),
            InstKind::ArrayContains { dst, array, keys } => {
                self.lookup(*array, keys);
                self.push(insn::mov64_reg(Reg::R1, Reg::R0));
                self.push(insn::mov64_imm(Reg::R0, 1));
                self.push(insn::jmp_imm(JmpOp::Ne, Reg::R1, 0, 1));
                self.push(insn::mov64_imm(Reg::R0, 0));
                self.store(*dst, Reg::R0);
            }
            InstKind::ArraySet { array, keys, src } => self.array_set(*array, keys, *src),
            InstKind::ArrayAdd { array, keys, src } => self.array_add(*array, keys, *src),
            InstKind::ArrayDelete { array, keys } => {
                self.build_key(*array, keys);
                self.map_ptr(Reg::R1, layout::array_map_index(*array));
                self.addr(Reg::R2, self.key);
                self.push(insn::call(Helper::MapDeleteElem));
            }
            InstKind::StatAdd { array, keys, value } => self.stat_add(*array, keys, *value),
            InstKind::ArrayDeleteMatching { array, keys } => self.for_each_matching(*array, keys, None)?,
            InstKind::ArrayContainsMatching { dst, array, keys } => {
                self.for_each_matching(*array, keys, Some(*dst))?;
            }
            InstKind::ArrayClear { array } => {
                let every = vec![None; self.program.arrays[*array].keys.len()];
                self.for_each_matching(*array, &every, None)?;
            }
            InstKind::StatGet { dst, array, keys, op } => self.stat_get(*dst, *array, keys, *op)?,
            InstKind::PrintHist { .. } => return Err(self.unsupported("printing a histogram")),
            InstKind::IterStart { iter, array, sort, limit } => self.iter_start(*iter, *array, *sort, *limit),
            InstKind::IterNext { has, iter, keys, value } => self.iter_next(*has, *iter, keys, *value),
        }
        Ok(())
    }

    fn unary(&mut self, op: UnOp, dst: Var, src: Var) {
        self.load(Reg::R0, src);
        match op {
            UnOp::Neg => self.push(insn::neg64(Reg::R0)),
            UnOp::BitNot => self.push(insn::alu64_imm(AluOp::Xor, Reg::R0, -1)),
            UnOp::Not => {
                self.push(insn::mov64_reg(Reg::R1, Reg::R0));
                self.push(insn::mov64_imm(Reg::R0, 1));
                self.push(insn::jmp_imm(JmpOp::Eq, Reg::R1, 0, 1));
                self.push(insn::mov64_imm(Reg::R0, 0));
            }
        }
        self.store(dst, Reg::R0);
    }

    /// `dst = lhs op rhs`: an immediate where the instruction takes one (a member offset's add is recorded for relocation).
    fn binary_inst(&mut self, op: BinOp, dst: Var, lhs: Var, rhs: Operand) {
        self.load(Reg::R0, lhs);
        match (alu_op(op), rhs) {
            // The verifier rejects constant shifts out of range; the register form
            // keeps BPF's behaviour for those.
            (Some(alu), Operand::Imm(imm))
                if i32::try_from(imm).is_ok() && (!matches!(op, BinOp::Shl | BinOp::Shr) || (0..64).contains(&imm)) =>
            {
                if let Some(member) = self.func.member_offset(dst) {
                    let reloc =
                        FieldReloc { insn_index: self.insns.len(), offset: imm as u32, member: Some(member.clone()) };
                    self.field_relocs.push(reloc);
                }
                self.push(insn::alu64_imm(alu, Reg::R0, imm as i32));
            }
            _ => {
                self.load_operand(Reg::R1, rhs);
                self.binary(op);
            }
        }
        self.store(dst, Reg::R0);
    }

    fn load_context_data_loc(&mut self, dst: Var, offset: u32) {
        // The u32 at `offset` holds (length << 16 | offset within the record).
        let off = self.scratch(dst);
        self.field_reloc(offset);
        self.push(insn::ldx(Size::W, Reg::R3, CTX, offset as i16));
        self.push(insn::alu64_imm(AluOp::And, Reg::R3, 0xffff));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R3, CTX));
        self.scratch_addr(Reg::R1, off);
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.push(insn::call(Helper::ProbeReadKernelStr));
    }

    fn load_context_str(&mut self, dst: Var, offset: u32, len: u32) {
        let n = (len).min(self.cap - 1);
        let off = self.scratch(dst);
        self.scratch_addr(Reg::R1, off);
        self.push(insn::mov64_imm(Reg::R2, n as i32));
        self.push(insn::mov64_reg(Reg::R3, CTX));
        self.field_reloc(offset);
        self.push(insn::alu64_imm(AluOp::Add, Reg::R3, offset as i32));
        self.push(insn::call(Helper::ProbeReadKernel));
        self.push(insn::st_imm(Size::B, SCRATCH, (off + n) as i16, 0));
    }

    /// A fault-safe read of `size` bytes at `addr`; `fault` (where given) is set to 1 on a fault.
    fn read(&mut self, dst: Var, addr: Var, size: u8, signed: bool, space: AddrSpace, fault: Option<Var>) {
        self.push(insn::st_imm(Size::DW, Reg::R10, READ_BUF, 0));
        self.push(insn::mov64_reg(Reg::R1, Reg::R10));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, READ_BUF as i32));
        self.push(insn::mov64_imm(Reg::R2, size as i32));
        self.load(Reg::R3, addr);
        self.push(insn::call(read_helper(space)));
        if let Some(fault) = fault {
            // The helper returns 0 or a negative error.
            self.push(insn::mov64_imm(Reg::R1, 0));
            self.push(insn::jmp_imm(JmpOp::Eq, Reg::R0, 0, 1));
            self.push(insn::mov64_imm(Reg::R1, 1));
            self.store(fault, Reg::R1);
        }
        self.push(insn::ldx(size_of(size), Reg::R0, Reg::R10, READ_BUF));
        if signed && size < 8 {
            self.sign_extend(Reg::R0, size);
        }
        self.store(dst, Reg::R0);
    }

    /// A string read at `addr`: `""` or `fallback` on a fault, at most `limit` bytes.
    fn read_str(&mut self, dst: Var, addr: Var, space: AddrSpace, fallback: Option<Var>, limit: Option<Var>) {
        let off = self.scratch(dst);
        match limit {
            // SystemTap reads n bytes and the NUL, 1 to MAXSTRINGLEN in all.
            Some(n) => {
                self.load(Reg::R2, n);
                self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
                self.push(insn::jmp_imm(JmpOp::Sge, Reg::R2, 1, 1));
                self.push(insn::mov64_imm(Reg::R2, 1));
                self.push(insn::jmp_imm(JmpOp::Sle, Reg::R2, self.cap as i32, 1));
                self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
            }
            None => self.push(insn::mov64_imm(Reg::R2, self.cap as i32)),
        }
        self.scratch_addr(Reg::R1, off);
        self.load(Reg::R3, addr);
        let helper = match space {
            AddrSpace::User => Helper::ProbeReadUserStr,
            AddrSpace::Kernel => Helper::ProbeReadKernelStr,
        };
        self.push(insn::call(helper));
        // On a fault the buffer is undefined: make it "" or the fallback.
        match fallback {
            None => {
                self.push(insn::jmp_imm(JmpOp::Sgt, Reg::R0, 0, 1));
                self.push(insn::st_imm(Size::B, SCRATCH, off as i16, 0));
            }
            Some(fallback) => {
                let done = self.new_label();
                self.jump_if_imm(JmpOp::Sgt, Reg::R0, 0, done);
                self.str_addr(Reg::R3, fallback);
                self.copy_str(off, self.cap);
                self.bind(done);
            }
        }
    }

    fn load_global(&mut self, dst: Var, global: lang::ir::GlobalId) {
        let off = self.globals.offset(global);
        match self.func.ty(dst) {
            Ty::Long => {
                self.push(insn::ldx(Size::DW, Reg::R0, GLOBALS, off as i16));
                self.store(dst, Reg::R0);
            }
            Ty::Str => {
                let d = self.scratch(dst);
                self.push(insn::mov64_reg(Reg::R3, GLOBALS));
                self.push(insn::alu64_imm(AluOp::Add, Reg::R3, off as i32));
                self.copy_str(d, self.cap);
            }
        }
    }

    fn store_global(&mut self, global: lang::ir::GlobalId, src: Var) {
        let off = self.globals.offset(global);
        match self.func.ty(src) {
            Ty::Long => {
                self.load(Reg::R0, src);
                self.push(insn::stx(Size::DW, GLOBALS, Reg::R0, off as i16));
            }
            Ty::Str => {
                self.push(insn::mov64_reg(Reg::R1, GLOBALS));
                self.push(insn::alu64_imm(AluOp::Add, Reg::R1, off as i32));
                self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
                self.str_addr(Reg::R3, src);
                self.push(insn::call(Helper::ProbeReadKernelStr));
            }
        }
    }

    /// The register holding the globals' address: the handler's own where it loaded it,
    /// else `spare`, loaded now (for code on a rare path).
    fn globals_in(&mut self, spare: Reg) -> Reg {
        if self.globals_loaded {
            GLOBALS
        } else {
            self.globals_ptr(spare);
            spare
        }
    }

    /// `exit()`: the stop flag, then the record that tells user space.
    fn exit(&mut self) {
        // The flag first, so that no handler on another CPU starts after this one.
        let globals = self.globals_in(Reg::R1);
        self.push(insn::st_imm(Size::DW, globals, self.globals.exited as i16, 1));
        self.output_header_record(layout::record_kind::EXIT)
    }

    fn load_arg(&mut self, dst: Var, index: u32) -> Result<(), EmitError> {
        let off = match self.args {
            ProgramContext::Args { .. } => 8 * index as i16,
            ProgramContext::PtRegs { ret: true } => {
                return Err(self.unsupported("an argument in a kretprobe (it needs fexit)"))
            }
            ProgramContext::PtRegs { ret: false } => match PT_REGS_ARGS.get(index as usize) {
                Some(off) => *off,
                None => return Err(self.unsupported("a kprobe argument past the sixth")),
            },
            ProgramContext::Record | ProgramContext::PerfEvent | ProgramContext::Syscall { .. } => {
                return Err(self.unsupported("a function argument outside a function probe"))
            }
        };
        self.push(insn::ldx(Size::DW, Reg::R0, CTX, off));
        self.store(dst, Reg::R0);
        Ok(())
    }

    fn load_return(&mut self, dst: Var) -> Result<(), EmitError> {
        let off = match self.args {
            ProgramContext::Args { nargs } => 8 * nargs as i16,
            ProgramContext::PtRegs { .. } => PT_REGS_RET,
            ProgramContext::Record | ProgramContext::PerfEvent | ProgramContext::Syscall { .. } => {
                return Err(self.unsupported("`$return` outside a function probe"))
            }
        };
        self.push(insn::ldx(Size::DW, Reg::R0, CTX, off));
        self.store(dst, Reg::R0);
        Ok(())
    }

    /// `dst = array[keys]`: 0 or "" where the key is absent.
    fn array_get(&mut self, dst: Var, array: lang::ir::ArrayId, keys: &[Var]) {
        self.lookup(array, keys);
        let missing = self.new_label();
        let done = self.new_label();
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, missing);
        match self.func.ty(dst) {
            Ty::Long => {
                self.push(insn::ldx(Size::DW, Reg::R0, Reg::R0, 0));
                self.store(dst, Reg::R0);
                self.jump(done);
                self.bind(missing);
                self.push(insn::mov64_imm(Reg::R0, 0));
                self.store(dst, Reg::R0);
            }
            Ty::Str => {
                let off = self.scratch(dst);
                self.push(insn::mov64_reg(Reg::R3, Reg::R0));
                self.copy_str(off, self.cap);
                self.jump(done);
                self.bind(missing);
                self.push(insn::st_imm(Size::B, SCRATCH, off as i16, 0));
            }
        }
        self.bind(done);
    }

    fn array_set(&mut self, array: lang::ir::ArrayId, keys: &[Var], src: Var) {
        self.build_key(array, keys);
        self.map_ptr(Reg::R1, layout::array_map_index(array));
        self.addr(Reg::R2, self.key);
        match self.func.ty(src) {
            Ty::Long => self.home_addr(Reg::R3, src),
            Ty::Str => self.str_addr(Reg::R3, src),
        }
        self.push(insn::mov64_imm(Reg::R4, BPF_ANY));
        self.push(insn::call(Helper::MapUpdateElem));
        self.on_full(array);
    }

    /// `delete array[pattern]` (`found` = None) or `found = [pattern] in array`: the pattern
    /// is built in the key buffer, which must be on the stack (a callback's context is a
    /// stack pointer) unless it is all `*`, and a [`Callback::Match`] visits every element.
    /// `delete array` is the pattern of all `*`.
    fn for_each_matching(
        &mut self,
        array: lang::ir::ArrayId,
        keys: &[Option<Var>],
        found: Option<Var>,
    ) -> Result<(), EmitError> {
        let every = keys.iter().all(Option::is_none) && found.is_none();
        if self.key.base != Reg::R10 && !every {
            return Err(self.unsupported("`*` among the keys of an array whose key does not fit on the stack"));
        }
        self.build_key_parts(array, keys);
        let decl = &self.program.arrays[array];
        let (offsets, _) = layout::key_layout(decl);
        let words = keys
            .iter()
            .zip(offsets)
            .zip(&decl.key_widths)
            .filter(|((k, _), _)| k.is_some())
            .flat_map(|((_, off), width)| (off..off + width.div_ceil(8) * 8).step_by(8).map(|w| w as i16))
            .collect();
        let op = match found {
            None => MatchOp::Delete,
            Some(_) => {
                self.push(insn::st_imm(Size::DW, Reg::R10, READ_BUF, 0));
                MatchOp::Find { flag: READ_BUF - self.key.off }
            }
        };
        self.map_ptr(Reg::R1, layout::array_map_index(array));
        self.callback_ptr(Reg::R2, Callback::Match { words, op });
        match every {
            true => self.push(insn::mov64_imm(Reg::R3, 0)),
            false => self.addr(Reg::R3, self.key),
        }
        self.push(insn::mov64_imm(Reg::R4, 0));
        self.push(insn::call(Helper::ForEachMapElem));
        if let Some(dst) = found {
            self.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, READ_BUF));
            self.store(dst, Reg::R0);
        }
        Ok(())
    }

    /// `dst = &callback`, the callback emitted once per handler.
    fn callback_ptr(&mut self, dst: Reg, callback: Callback) {
        let label = match self.callbacks.iter().find(|(c, _)| *c == callback) {
            Some((_, label)) => *label,
            None => {
                let label = self.new_label();
                self.callbacks.push((callback, label));
                label
            }
        };
        self.func_refs.push((self.insns.len(), label));
        self.push2(insn::ld_imm64_pseudo(dst, insn::pseudo::FUNC, 0, 0));
    }

    /// `dst = @count(array[keys])`, `@sum`, `@min` or `@max`: a `bpf_loop` over the CPUs
    /// folds their shares, each read with `bpf_map_lookup_percpu_elem` (Linux 5.19+), into
    /// the spill slot; `@min`/`@max` skip CPUs without samples and keep in the read buffer
    /// whether one had any (`lower` makes an empty statistic an error before asking).
    fn stat_get(&mut self, dst: Var, array: lang::ir::ArrayId, keys: &[Var], op: StatOp) -> Result<(), EmitError> {
        let (field, fold) = match op {
            StatOp::Count => (layout::stat_field::COUNT, Fold::Sum),
            StatOp::Sum => (layout::stat_field::SUM, Fold::Sum),
            StatOp::Min => (layout::stat_field::MIN, Fold::Min),
            StatOp::Max => (layout::stat_field::MAX, Fold::Max),
            StatOp::Variance => return self.stat_variance(dst, array, keys),
            // `lower` makes `@avg` of `@sum` and `@count` in kernel probes.
            StatOp::Avg => return Err(self.unsupported("`@avg`")),
        };
        if self.key.base != Reg::R10 {
            return Err(self.unsupported("`@count` and friends of a statistic whose key does not fit on the stack"));
        }
        self.build_key(array, keys);
        self.push(insn::st_imm(Size::DW, Reg::R10, SPILL, 0));
        self.push(insn::st_imm(Size::DW, Reg::R10, READ_BUF, 0));
        self.loop_over_cpus(Callback::FoldCpus {
            map: layout::array_map_index(array),
            field: field as i16,
            fold,
            acc: SPILL - self.key.off,
            seen: READ_BUF - self.key.off,
        });
        self.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, SPILL));
        self.store(dst, Reg::R0);
        Ok(())
    }

    /// `dst = @variance(array[keys])`, the CPUs' shares merged as user space merges them
    /// (`runtime::stats::merge` for a scalar, `merge_entry` for an array element: stap
    /// rounds the two differently), so both sides print the same number. The folds work in
    /// [`VARIANCE_WORDS`] words just past the key, which `emit_handler` makes room for.
    fn stat_variance(&mut self, dst: Var, array: lang::ir::ArrayId, keys: &[Var]) -> Result<(), EmitError> {
        if self.key.base != Reg::R10 {
            return Err(self.unsupported("`@variance` of a statistic whose key does not fit on the stack"));
        }
        self.build_key(array, keys);
        let decl = &self.program.arrays[array];
        let scalar = decl.keys.is_empty();
        let map = layout::array_map_index(array);
        // Offsets from the key, where the callbacks find them, and from r10.
        let words = (layout::key_layout(decl).1.div_ceil(8) * 8) as i16;
        let word = |i: i16| words + 8 * i;
        let key_off = self.key.off;
        let at = |i: i16| key_off + word(i);
        for i in 0..VARIANCE_WORDS as i16 {
            self.push(insn::st_imm(Size::DW, Reg::R10, at(i), 0));
        }
        if scalar {
            // Pass one: count and sum, and so the mean of all samples; pass two: the
            // spread around it.
            for (i, field) in [(0, layout::stat_field::COUNT), (1, layout::stat_field::SUM)] {
                let fold = Fold::Sum;
                self.loop_over_cpus(Callback::FoldCpus { map, field: field as i16, fold, acc: word(i), seen: word(3) });
            }
            self.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, at(1)));
            self.push(insn::ldx(Size::DW, Reg::R1, Reg::R10, at(0)));
            self.signed_div(false);
            self.push(insn::stx(Size::DW, Reg::R10, Reg::R0, at(2)));
            self.loop_over_cpus(Callback::Variance { map, words, step: VarianceStep::Spread });
            // variance = spread / (count - 1), 0 for a single sample.
            self.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, at(3)));
            self.push(insn::ldx(Size::DW, Reg::R1, Reg::R10, at(0)));
            self.push(insn::alu64_imm(AluOp::Sub, Reg::R1, 1));
            self.signed_div(false);
        } else {
            self.loop_over_cpus(Callback::Variance { map, words, step: VarianceStep::Pairwise });
            self.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, at(3)));
        }
        self.store(dst, Reg::R0);
        Ok(())
    }

    /// `bpf_loop(MAX_CPUS, callback, key)`: the callback, given each CPU number and the key
    /// buffer (built by the caller), folds that CPU's share into the handler's stack.
    fn loop_over_cpus(&mut self, callback: Callback) {
        self.push(insn::mov64_imm(Reg::R1, MAX_CPUS));
        self.callback_ptr(Reg::R2, callback);
        self.addr(Reg::R3, self.key);
        self.push(insn::mov64_imm(Reg::R4, 0));
        self.push(insn::call(Helper::Loop));
    }

    /// The start of a callback of [`Emitter::loop_over_cpus`], `(r1 cpu, r2 key)`: r0 = the
    /// CPU's share of `map[key]` and r6 = the key (the callback's own r6, kept across the
    /// lookup), or a return of 1 (stop) past the last CPU.
    fn lookup_cpu_share(&mut self, map: usize) {
        let found = self.new_label();
        self.push(insn::mov64_reg(Reg::R6, Reg::R2));
        self.push(insn::mov64_reg(Reg::R3, Reg::R1));
        self.map_ptr(Reg::R1, map);
        self.push(insn::mov64_reg(Reg::R2, Reg::R6));
        self.push(insn::call(Helper::MapLookupPercpuElem));
        self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, found);
        self.push(insn::mov64_imm(Reg::R0, 1));
        self.push(insn::exit());
        self.bind(found);
    }

    /// The body of a [`Callback::FoldCpus`]: returns 0 to go on and 1 to stop.
    fn fold_cpus(&mut self, map: usize, field: i16, fold: Fold, acc: i16, seen: i16) {
        let (take, next) = (self.new_label(), self.new_label());
        self.lookup_cpu_share(map);
        let keep_if = match fold {
            Fold::Sum => {
                self.push(insn::ldx(Size::DW, Reg::R1, Reg::R0, field));
                self.push(insn::ldx(Size::DW, Reg::R2, Reg::R6, acc));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R1));
                self.push(insn::stx(Size::DW, Reg::R6, Reg::R2, acc));
                self.push(insn::mov64_imm(Reg::R0, 0));
                self.push(insn::exit());
                return;
            }
            // The CPU's value is kept unless the one so far is already smaller (larger).
            Fold::Min => JmpOp::Sge,
            Fold::Max => JmpOp::Sle,
        };
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R0, layout::stat_field::COUNT as i16));
        self.jump_if_imm(JmpOp::Eq, Reg::R1, 0, next);
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R0, field));
        self.push(insn::ldx(Size::DW, Reg::R2, Reg::R6, seen));
        self.jump_if_imm(JmpOp::Eq, Reg::R2, 0, take);
        self.push(insn::ldx(Size::DW, Reg::R2, Reg::R6, acc));
        self.jump_if_reg(keep_if, Reg::R1, Reg::R2, next);
        self.bind(take);
        self.push(insn::stx(Size::DW, Reg::R6, Reg::R1, acc));
        self.push(insn::st_imm(Size::DW, Reg::R6, seen, 1));
        self.bind(next);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::exit());
    }

    /// The body of a [`Callback::Variance`]: one CPU's share combined into the words at
    /// `words` from the key (see [`VarianceStep`]), skipped when it has no samples. The
    /// arithmetic is `runtime::stats`'s, operation for operation: its integer divisions
    /// round, so any other order could print another number. The divisions use r0..r2; r7
    /// keeps the share, r8 and r9 the terms.
    fn variance_step(&mut self, map: usize, words: i16, step: VarianceStep) {
        use layout::stat_field as f;
        let (count, sum, mean, variance) = (words, words + 8, words + 16, words + 24);
        let next = self.new_label();
        self.lookup_cpu_share(map);
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R0, f::COUNT as i16));
        self.jump_if_imm(JmpOp::Eq, Reg::R1, 0, next);
        match step {
            VarianceStep::Spread => {
                // spread += count * (avg_s - mean)^2 + (count - 1) * variance_s
                self.push(insn::ldx(Size::DW, Reg::R2, Reg::R0, f::AVG_S as i16));
                self.push(insn::ldx(Size::DW, Reg::R3, Reg::R6, mean));
                self.push(insn::alu64_reg(AluOp::Sub, Reg::R2, Reg::R3));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R2, Reg::R2));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R2, Reg::R1));
                self.push(insn::alu64_imm(AluOp::Sub, Reg::R1, 1));
                self.push(insn::ldx(Size::DW, Reg::R3, Reg::R0, f::VARIANCE_S as i16));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R1, Reg::R3));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R1));
                self.push(insn::ldx(Size::DW, Reg::R3, Reg::R6, variance));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R3, Reg::R2));
                self.push(insn::stx(Size::DW, Reg::R6, Reg::R3, variance));
            }
            VarianceStep::Pairwise => {
                let combine = self.new_label();
                self.push(insn::ldx(Size::DW, Reg::R8, Reg::R6, count));
                self.jump_if_imm(JmpOp::Ne, Reg::R8, 0, combine);
                // The first CPU with samples: its values as they are.
                for (field, word) in [(f::COUNT, count), (f::SUM, sum), (f::AVG_S, mean), (f::VARIANCE_S, variance)] {
                    self.push(insn::ldx(Size::DW, Reg::R2, Reg::R0, field as i16));
                    self.push(insn::stx(Size::DW, Reg::R6, Reg::R2, word));
                }
                self.jump(next);
                // r8 = count1, r9 = avg1 of the CPUs so far; count += count2; sum += sum2;
                // mean = sum / count.
                self.bind(combine);
                self.push(insn::mov64_reg(Reg::R7, Reg::R0));
                self.push(insn::ldx(Size::DW, Reg::R9, Reg::R6, mean));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R1, Reg::R8));
                self.push(insn::stx(Size::DW, Reg::R6, Reg::R1, count));
                self.push(insn::ldx(Size::DW, Reg::R0, Reg::R6, sum));
                self.push(insn::ldx(Size::DW, Reg::R2, Reg::R7, f::SUM as i16));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R0, Reg::R2));
                self.push(insn::stx(Size::DW, Reg::R6, Reg::R0, sum));
                self.signed_div(false);
                self.push(insn::stx(Size::DW, Reg::R6, Reg::R0, mean));
                // r9 = count1 * (avg1 - mean)^2 + (count1 - 1) * variance1
                self.push(insn::alu64_reg(AluOp::Sub, Reg::R9, Reg::R0));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R9, Reg::R9));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R9, Reg::R8));
                self.push(insn::alu64_imm(AluOp::Sub, Reg::R8, 1));
                self.push(insn::ldx(Size::DW, Reg::R3, Reg::R6, variance));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R8, Reg::R3));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R9, Reg::R8));
                // r9 += count2 * (avg2 - mean)^2 + (count2 - 1) * variance2
                self.push(insn::ldx(Size::DW, Reg::R3, Reg::R7, f::AVG_S as i16));
                self.push(insn::alu64_reg(AluOp::Sub, Reg::R3, Reg::R0));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R3, Reg::R3));
                self.push(insn::ldx(Size::DW, Reg::R4, Reg::R7, f::COUNT as i16));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R3, Reg::R4));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R9, Reg::R3));
                self.push(insn::alu64_imm(AluOp::Sub, Reg::R4, 1));
                self.push(insn::ldx(Size::DW, Reg::R3, Reg::R7, f::VARIANCE_S as i16));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R4, Reg::R3));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R9, Reg::R4));
                // variance = r9 / (count - 1); count >= 2 here.
                self.push(insn::mov64_reg(Reg::R0, Reg::R9));
                self.push(insn::ldx(Size::DW, Reg::R1, Reg::R6, count));
                self.push(insn::alu64_imm(AluOp::Sub, Reg::R1, 1));
                self.signed_div(false);
                self.push(insn::stx(Size::DW, Reg::R6, Reg::R0, variance));
            }
        }
        self.bind(next);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::exit());
    }

    /// Starts a `foreach` in a kernel probe: snapshots the keys into its key list in scratch
    /// with `bpf_for_each_map_elem`, in order when it sorts by a key. As in user space (and
    /// SystemTap), the loop then visits the snapshot; [`Emitter::iter_next`] reads each
    /// value when the loop asks for it.
    fn iter_start(
        &mut self,
        iter: lang::ir::IterId,
        array: lang::ir::ArrayId,
        sort: Option<lang::ir::SortSpec>,
        limit: Option<Var>,
    ) {
        // `lower` refuses the others in a kernel probe: string keys, more than two keys (a
        // list of two-word keys fits the scratch area), a sort by value.
        let entry = key_list_entry(&self.program.arrays[array]);
        let sort = sort.map(|s| (s.column as u32 - 1, s.ascending));
        let list = self.key_lists[&iter];
        self.push(insn::st_imm(Size::DW, SCRATCH, list as i16, 0));
        self.push(insn::st_imm(Size::DW, SCRATCH, list as i16 + 8, 0));
        match limit {
            Some(l) => {
                self.load(Reg::R0, l);
                self.push(insn::stx(Size::DW, SCRATCH, Reg::R0, list as i16 + 16));
            }
            None => self.push(insn::st_imm(Size::DW, SCRATCH, list as i16 + 16, self.program.loop_budget as i32)),
        }
        self.map_ptr(Reg::R1, layout::array_map_index(array));
        self.callback_ptr(Reg::R2, Callback::CollectKey { list, words: entry / 8, sort });
        self.push(insn::mov64_imm(Reg::R3, 0));
        self.push(insn::mov64_imm(Reg::R4, 0));
        self.push(insn::call(Helper::ForEachMapElem));
    }

    /// `has` = 1 and the keys (and value) of the next key in the list, or 0 past its end or
    /// the `limit`.
    fn iter_next(&mut self, has: Var, iter: lang::ir::IterId, keys: &[Var], value: Option<Var>) {
        let array = self
            .insts()
            .find_map(|i| match i.kind {
                InstKind::IterStart { iter: it, array, .. } if it == iter => Some(array),
                _ => None,
            })
            .expect("`IterNext` follows its `IterStart`");
        let (list, entry) = (self.key_lists[&iter] as i16, key_list_entry(&self.program.arrays[array]));
        let done = self.new_label();
        self.push(insn::ldx(Size::DW, Reg::R1, SCRATCH, list + 8));
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::ldx(Size::DW, Reg::R2, SCRATCH, list));
        self.jump_if_reg(JmpOp::Ge, Reg::R1, Reg::R2, done);
        self.push(insn::ldx(Size::DW, Reg::R2, SCRATCH, list + 16));
        self.jump_if_reg(JmpOp::Sge, Reg::R1, Reg::R2, done);
        // The verifier's bound on the index.
        self.jump_if_imm(JmpOp::Ge, Reg::R1, self.program.loop_budget as i32, done);
        self.push(insn::mov64_reg(Reg::R2, Reg::R1));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        self.push(insn::stx(Size::DW, SCRATCH, Reg::R2, list + 8));
        self.push(insn::alu64_imm(AluOp::Mul, Reg::R1, entry as i32));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R1, SCRATCH));
        let first = list + KEY_LIST_HEADER as i16;
        let (offsets, _) = layout::key_layout(&self.program.arrays[array]);
        for (k, off) in keys.iter().zip(offsets) {
            self.push(insn::ldx(Size::DW, Reg::R0, Reg::R1, first + off as i16));
            self.store(*k, Reg::R0);
        }
        if let Some(v) = value {
            self.array_get(v, array, keys);
        }
        self.push(insn::mov64_imm(Reg::R0, 1));
        self.bind(done);
        self.store(has, Reg::R0);
    }

    /// The body of a [`Callback::CollectKey`]: `(r1 map, r2 key, r3 value, r4 ctx)`, returns
    /// 0 to go on and 1 to stop. It finds the scratch area itself; r6 keeps the key, r7 the
    /// list, r8 the place of the new key.
    fn collect_key(&mut self, list: u32, words: u32, sort: Option<(u32, bool)>) {
        let entry = (words * 8) as i32;
        let first = KEY_LIST_HEADER as i16;
        let (place, full) = (self.new_label(), self.new_label());
        self.push(insn::mov64_reg(Reg::R6, Reg::R2));
        self.callback_scratch(full);
        self.push(insn::mov64_reg(Reg::R7, Reg::R0));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R7, list as i32));
        self.push(insn::ldx(Size::DW, Reg::R8, Reg::R7, 0));
        self.jump_if_imm(JmpOp::Ge, Reg::R8, self.program.loop_budget as i32, full);
        if let Some((word, ascending)) = sort {
            // Insertion: the keys after the new one in the order move up one place.
            self.push(insn::stx(Size::DW, Reg::R10, Reg::R8, SPILL));
            self.push(insn::ldx(Size::DW, Reg::R1, Reg::R6, (8 * word) as i16));
            self.push(insn::stx(Size::DW, Reg::R10, Reg::R1, SPILL + 8));
            self.push(insn::mov64_imm(Reg::R1, self.program.loop_budget as i32));
            self.callback_ptr(Reg::R2, Callback::MakeRoom { list, words, word, ascending });
            self.push(insn::mov64_reg(Reg::R3, Reg::R10));
            self.push(insn::alu64_imm(AluOp::Add, Reg::R3, SPILL as i32));
            self.push(insn::mov64_imm(Reg::R4, 0));
            self.push(insn::call(Helper::Loop));
            self.push(insn::ldx(Size::DW, Reg::R8, Reg::R10, SPILL));
            self.jump_if_imm(JmpOp::Ge, Reg::R8, self.program.loop_budget as i32, full);
        }
        self.bind(place);
        self.push(insn::alu64_imm(AluOp::Mul, Reg::R8, entry));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R8, Reg::R7));
        for w in 0..words as i16 {
            self.push(insn::ldx(Size::DW, Reg::R2, Reg::R6, 8 * w));
            self.push(insn::stx(Size::DW, Reg::R8, Reg::R2, first + 8 * w));
        }
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R7, 0));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, 1));
        self.push(insn::stx(Size::DW, Reg::R7, Reg::R1, 0));
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::exit());
    }

    /// In a callback, which cannot see the handler's registers: r0 = the scratch area. Where
    /// there is none the callback returns 1 (stop), as it does from `stop`, bound here.
    fn callback_scratch(&mut self, stop: Label) {
        let found = self.new_label();
        self.push(insn::st_imm(Size::W, Reg::R10, KEY_ZERO, 0));
        self.map_ptr(Reg::R1, self.maps.scratch);
        self.push(insn::mov64_reg(Reg::R2, Reg::R10));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, KEY_ZERO as i32));
        self.push(insn::call(Helper::MapLookupElem));
        self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, found);
        self.bind(stop);
        self.push(insn::mov64_imm(Reg::R0, 1));
        self.push(insn::exit());
        self.bind(found);
    }

    /// The body of a [`Callback::MakeRoom`]: `(r1 index, r2 ctx)`, returns 0 to go on and 1
    /// when the new key's place is found (the word at ctx). It finds the scratch area itself.
    fn make_room(&mut self, list: u32, words: u32, word: u32, ascending: bool) {
        let (entry, first, word) = ((words * 8) as i32, (list + KEY_LIST_HEADER) as i16, (8 * word) as i16);
        let stop = self.new_label();
        self.push(insn::mov64_reg(Reg::R6, Reg::R2));
        self.callback_scratch(stop);
        // r1 = the key before the place, if any.
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R6, 0));
        self.jump_if_imm(JmpOp::Eq, Reg::R1, 0, stop);
        self.jump_if_imm(JmpOp::Gt, Reg::R1, self.program.loop_budget as i32 - 1, stop);
        self.push(insn::alu64_imm(AluOp::Sub, Reg::R1, 1));
        self.push(insn::stx(Size::DW, Reg::R6, Reg::R1, 0));
        self.push(insn::alu64_imm(AluOp::Mul, Reg::R1, entry));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R1, Reg::R0));
        self.push(insn::ldx(Size::DW, Reg::R2, Reg::R1, first + word));
        self.push(insn::ldx(Size::DW, Reg::R3, Reg::R6, 8));
        let stays = if ascending { JmpOp::Sle } else { JmpOp::Sge };
        let moves = self.new_label();
        self.jump_if_reg(stays, Reg::R2, Reg::R3, moves);
        for w in 0..words as i16 {
            self.push(insn::ldx(Size::DW, Reg::R2, Reg::R1, first + 8 * w));
            self.push(insn::stx(Size::DW, Reg::R1, Reg::R2, first + entry as i16 + 8 * w));
        }
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::exit());
        // It stays: the place is after it, undo the step.
        self.bind(moves);
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R6, 0));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, 1));
        self.push(insn::stx(Size::DW, Reg::R6, Reg::R1, 0));
        self.push(insn::mov64_imm(Reg::R0, 1));
        self.push(insn::exit());
    }

    /// The body of a [`Callback::Match`]: `(r1 map, r2 key, r3 value, r4 pattern)`, returns
    /// 0 to go on and 1 to stop. It uses only r0..r5 and no stack of its own.
    fn matcher(&mut self, words: &[i16], op: MatchOp) {
        let differs = self.new_label();
        for &w in words {
            self.push(insn::ldx(Size::DW, Reg::R0, Reg::R2, w));
            self.push(insn::ldx(Size::DW, Reg::R5, Reg::R4, w));
            self.jump_if_reg(JmpOp::Ne, Reg::R0, Reg::R5, differs);
        }
        match op {
            MatchOp::Delete => self.push(insn::call(Helper::MapDeleteElem)),
            MatchOp::Find { flag } => {
                self.push(insn::st_imm(Size::DW, Reg::R4, flag, 1));
                self.push(insn::mov64_imm(Reg::R0, 1));
                self.push(insn::exit());
                if words.is_empty() {
                    // Every element matches: no way on (the verifier refuses dead code).
                    return;
                }
            }
        }
        self.bind(differs);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::exit());
    }

    /// Writes the key of `array[keys]` into the key buffer. String keys are zero-padded
    /// first: the map compares every byte of the key.
    fn build_key(&mut self, array: lang::ir::ArrayId, keys: &[Var]) {
        if keys.is_empty() {
            self.push(insn::st_imm(Size::W, self.key.base, self.key.off, 0));
            return;
        }
        let keys: Vec<Option<Var>> = keys.iter().copied().map(Some).collect();
        self.build_key_parts(array, &keys);
    }

    /// Writes the keys that are given (`Some`) into their places in the key buffer.
    fn build_key_parts(&mut self, array: lang::ir::ArrayId, keys: &[Option<Var>]) {
        let decl = &self.program.arrays[array];
        let (offsets, _) = layout::key_layout(decl);
        let widths = decl.key_widths.clone();
        for ((k, off), width) in keys.iter().zip(offsets).zip(widths) {
            let Some(k) = k else { continue };
            let at = self.key.at(off);
            match self.func.ty(*k) {
                Ty::Long => {
                    self.load(Reg::R0, *k);
                    self.push(insn::stx(Size::DW, at.base, Reg::R0, at.off));
                }
                Ty::Str if self.sunk.contains_key(k) => {
                    // The comm, NUL-padded by the helper, straight into the key.
                    let comm = COMM_LEN.min(width);
                    self.zero_fill(at, comm, width.div_ceil(8) * 8);
                    self.current_comm(at, comm);
                }
                Ty::Str => {
                    self.zero_fill(at, 0, width.div_ceil(8) * 8);
                    self.str_addr(Reg::R3, *k);
                    self.copy_str_to(at, width);
                }
            }
        }
    }

    /// Zeroes the 8-byte words of `buf` from byte `from` up to `to`.
    fn zero_fill(&mut self, buf: Buf, from: u32, to: u32) {
        for w in (from..to).step_by(8) {
            let at = buf.at(w);
            self.push(insn::st_imm(Size::DW, at.base, at.off, 0));
        }
    }

    /// `r0 = bpf_map_lookup_elem(array, key)`.
    fn lookup(&mut self, array: lang::ir::ArrayId, keys: &[Var]) {
        self.build_key(array, keys);
        self.lookup_built(array);
    }

    fn lookup_built(&mut self, array: lang::ir::ArrayId) {
        self.map_ptr(Reg::R1, layout::array_map_index(array));
        self.addr(Reg::R2, self.key);
        self.push(insn::call(Helper::MapLookupElem));
    }

    /// `r0` = the element's value, created zeroed when missing. A full array ends the
    /// handler after reporting it.
    fn lookup_or_insert(&mut self, array: lang::ir::ArrayId, keys: &[Var], value_size: u32) {
        let found = self.new_label();
        self.lookup(array, keys);
        self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, found);
        let zeros = self.rodata.zeros(value_size);
        self.insert(array, |e| {
            e.relocs.push(Reloc { insn_index: e.insns.len(), target: RelocTarget::Rodata(zeros) });
            e.push2(insn::ld_imm64_pseudo(Reg::R3, insn::pseudo::MAP_VALUE, 0, zeros as i32));
        });
        self.lookup_after_insert(array, found);
        self.bind(found);
    }

    /// `array[keys] += src`. A missing element is inserted with `src` as its value, which
    /// needs no second lookup unless another CPU inserted the key first.
    fn array_add(&mut self, array: lang::ir::ArrayId, keys: &[Var], src: Var) {
        let (add, done) = (self.new_label(), self.new_label());
        self.lookup(array, keys);
        self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, add);
        self.insert(array, |e| e.home_addr(Reg::R3, src));
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, done);
        self.lookup_after_insert(array, add);
        self.bind(add);
        self.load(Reg::R1, src);
        self.push(insn::atomic_add(Size::DW, Reg::R0, Reg::R1, 0));
        self.bind(done);
    }

    /// `map_update_elem(array, key, r3, BPF_NOEXIST)`, with `value` setting `r3`.
    fn insert(&mut self, array: lang::ir::ArrayId, value: impl FnOnce(&mut Self)) {
        self.map_ptr(Reg::R1, layout::array_map_index(array));
        self.addr(Reg::R2, self.key);
        value(self);
        self.push(insn::mov64_imm(Reg::R4, BPF_NOEXIST));
        self.push(insn::call(Helper::MapUpdateElem));
    }

    /// After an insert: look the key up again and go to `found` with `r0` = the value. The
    /// insert fails with -EEXIST when another CPU inserted the key since our lookup, which
    /// this lookup sees; it finds nothing only when the insert failed for want of room,
    /// and then the handler reports the full array and ends.
    fn lookup_after_insert(&mut self, array: lang::ir::ArrayId, found: Label) {
        self.lookup_built(array);
        self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, found);
        self.report_full(array);
        self.jump(EXIT_LABEL);
    }

    /// After `map_update_elem`: when it failed for want of room, report and end the handler.
    fn on_full(&mut self, array: lang::ir::ArrayId) {
        let ok = self.new_label();
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, ok);
        self.report_full(array);
        self.jump(EXIT_LABEL);
        self.bind(ok);
    }

    fn report_full(&mut self, array: lang::ir::ArrayId) {
        let globals = self.globals_in(Reg::R1);
        self.push(insn::st_imm(Size::DW, globals, layout::GLOBAL_ARRAY_FULL as i16, array.as_u32() as i32 + 1));
    }

    /// `array[keys] <<< value`: SystemTap's per-CPU accumulation (`stats::Stat::add`) on this
    /// CPU's value, then the histogram bucket. `r9` holds the value pointer throughout.
    fn stat_add(&mut self, array: lang::ir::ArrayId, keys: &[Var], value: Var) {
        use layout::stat_field as f;
        let hist = self.program.arrays[array].hist;
        self.lookup_or_insert(array, keys, layout::stat_value_size(hist));
        let p = Reg::R9;
        self.push(insn::mov64_reg(p, Reg::R0));
        self.load(Reg::R1, value);
        let (first, buckets) = (self.new_label(), self.new_label());
        self.push(insn::ldx(Size::DW, Reg::R2, p, f::COUNT as i16));
        self.jump_if_imm(JmpOp::Eq, Reg::R2, 0, first);
        // count += 1; sum += v; min/max.
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        self.push(insn::stx(Size::DW, p, Reg::R2, f::COUNT as i16));
        self.push(insn::ldx(Size::DW, Reg::R3, p, f::SUM as i16));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R3, Reg::R1));
        self.push(insn::stx(Size::DW, p, Reg::R3, f::SUM as i16));
        self.push(insn::ldx(Size::DW, Reg::R3, p, f::MAX as i16));
        self.push(insn::jmp_reg(JmpOp::Sge, Reg::R3, Reg::R1, 1));
        self.push(insn::stx(Size::DW, p, Reg::R1, f::MAX as i16));
        self.push(insn::ldx(Size::DW, Reg::R3, p, f::MIN as i16));
        self.push(insn::jmp_reg(JmpOp::Sle, Reg::R3, Reg::R1, 1));
        self.push(insn::stx(Size::DW, p, Reg::R1, f::MIN as i16));
        // Welford: delta = v - avg; avg += delta / count; m2 += delta * (v - avg);
        // variance = m2 / (count - 1). The divisions use r0..r2, so v and delta wait on
        // the stack.
        self.push(insn::ldx(Size::DW, Reg::R3, p, f::AVG_S as i16));
        self.push(insn::mov64_reg(Reg::R0, Reg::R1));
        self.push(insn::alu64_reg(AluOp::Sub, Reg::R0, Reg::R3));
        self.push(insn::stx(Size::DW, Reg::R10, Reg::R0, READ_BUF));
        self.push(insn::stx(Size::DW, Reg::R10, Reg::R1, SPILL));
        self.push(insn::mov64_reg(Reg::R1, Reg::R2));
        self.signed_div(false);
        self.push(insn::ldx(Size::DW, Reg::R3, p, f::AVG_S as i16));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R3, Reg::R0));
        self.push(insn::stx(Size::DW, p, Reg::R3, f::AVG_S as i16));
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R10, SPILL));
        self.push(insn::mov64_reg(Reg::R0, Reg::R1));
        self.push(insn::alu64_reg(AluOp::Sub, Reg::R0, Reg::R3));
        self.push(insn::ldx(Size::DW, Reg::R2, Reg::R10, READ_BUF));
        self.push(insn::alu64_reg(AluOp::Mul, Reg::R0, Reg::R2));
        self.push(insn::ldx(Size::DW, Reg::R3, p, f::M2 as i16));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R0, Reg::R3));
        self.push(insn::stx(Size::DW, p, Reg::R0, f::M2 as i16));
        self.push(insn::ldx(Size::DW, Reg::R1, p, f::COUNT as i16));
        self.push(insn::alu64_imm(AluOp::Sub, Reg::R1, 1));
        self.signed_div(false);
        self.push(insn::stx(Size::DW, p, Reg::R0, f::VARIANCE_S as i16));
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R10, SPILL));
        self.jump(buckets);
        // First sample.
        self.bind(first);
        self.push(insn::st_imm(Size::DW, p, f::COUNT as i16, 1));
        for field in [f::SUM, f::MIN, f::MAX, f::AVG_S] {
            self.push(insn::stx(Size::DW, p, Reg::R1, field as i16));
        }
        self.push(insn::st_imm(Size::DW, p, f::M2 as i16, 0));
        self.bind(buckets);
        // r1 = v: find its bucket in r2.
        match (hist.log, hist.linear) {
            (true, _) => self.log2_bucket(),
            (false, Some((lo, hi, step))) => self.linear_bucket(lo, hi, step),
            (false, None) => return,
        }
        let n = layout::stat_buckets(hist);
        self.push(insn::alu64_imm(AluOp::And, Reg::R2, (n.next_power_of_two() - 1) as i32));
        self.push(insn::jmp_imm(JmpOp::Ge, Reg::R2, n as i32, 5));
        self.push(insn::alu64_imm(AluOp::Lsh, Reg::R2, 3));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R2, p));
        self.push(insn::ldx(Size::DW, Reg::R3, Reg::R2, f::BUCKETS as i16));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R3, 1));
        self.push(insn::stx(Size::DW, Reg::R2, Reg::R3, f::BUCKETS as i16));
    }

    /// `r2` = the `@hist_log` bucket of `r1`: 64 ± the bit length of `|r1|`.
    fn log2_bucket(&mut self) {
        self.push(insn::mov64_reg(Reg::R3, Reg::R1));
        self.push(insn::mov64_imm(Reg::R4, 0));
        self.push(insn::jmp_imm(JmpOp::Sge, Reg::R3, 0, 2));
        self.push(insn::neg64(Reg::R3));
        self.push(insn::mov64_imm(Reg::R4, 1));
        // r2 = bit length of r3 (unsigned), by halving.
        self.push(insn::mov64_imm(Reg::R2, 0));
        for shift in [32, 16, 8, 4, 2, 1] {
            self.push(insn::mov64_reg(Reg::R5, Reg::R3));
            self.push(insn::alu64_imm(AluOp::Rsh, Reg::R5, shift));
            self.push(insn::jmp_imm(JmpOp::Eq, Reg::R5, 0, 2));
            self.push(insn::mov64_reg(Reg::R3, Reg::R5));
            self.push(insn::alu64_imm(AluOp::Add, Reg::R2, shift));
        }
        self.push(insn::jmp_imm(JmpOp::Eq, Reg::R3, 0, 1));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        // Negative values mirror: 64 - len; others 64 + len.
        self.push(insn::jmp_imm(JmpOp::Eq, Reg::R4, 0, 3));
        self.push(insn::neg64(Reg::R2));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 64));
        self.push(insn::ja(1));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 64));
    }

    /// `r2` = the `@hist_linear` bucket of `r1`: 0 below `lo`, then `1 + (v - lo) / step`
    /// up to the overflow bucket.
    fn linear_bucket(&mut self, lo: i64, hi: i64, step: i64) {
        let last = ((hi - lo) / step + 2) as i32;
        self.push(insn::mov64_imm(Reg::R2, 0));
        self.load_imm(Reg::R3, lo);
        self.push(insn::jmp_reg(JmpOp::Slt, Reg::R1, Reg::R3, 6));
        self.push(insn::mov64_reg(Reg::R2, Reg::R1));
        self.push(insn::alu64_reg(AluOp::Sub, Reg::R2, Reg::R3));
        self.push(insn::alu64_imm(AluOp::Div, Reg::R2, step as i32));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        self.push(insn::jmp_imm(JmpOp::Le, Reg::R2, last, 1));
        self.push(insn::mov64_imm(Reg::R2, last));
    }

    /// `r0` = the context field at `offset`.
    fn load_context(&mut self, offset: u32, size: u8, signed: bool) {
        if let ProgramContext::Syscall { exit, .. } = self.args {
            // `syscall_record_slot` vetted every offset before emission started.
            let slot = syscall_record_slot(offset, exit).unwrap_or(SyscallSlot::Number);
            self.load_syscall_slot(slot, exit);
            // The entry's number is already an `int` widened to `long` (the kernel's syscall
            // entry takes it as an `int`), as the record's `int __syscall_nr` reads.
            if size < 8 && !(slot == SyscallSlot::Number && !exit) {
                let shift = 64 - 8 * size as i32;
                self.push(insn::alu64_imm(AluOp::Lsh, Reg::R0, shift));
                self.push(insn::alu64_imm(if signed { AluOp::Arsh } else { AluOp::Rsh }, Reg::R0, shift));
            }
            return;
        }
        self.field_reloc(offset);
        self.push(insn::ldx(size_of(size), Reg::R0, CTX, offset as i16));
        if signed && size < 8 {
            self.sign_extend(Reg::R0, size);
        }
    }

    /// The next instruction holds the offset of the tracepoint record field at `offset`
    /// (`ldx [ctx + offset]` or `add r, offset`), which a `.bo` moves on another kernel.
    fn field_reloc(&mut self, offset: u32) {
        self.field_relocs.push(FieldReloc { insn_index: self.insns.len(), offset, member: None });
    }

    /// r0 = the 8 bytes a syscall tracepoint's record holds in `slot`. A `raw_tp` program
    /// (attached by name: no BTF lookup at start) sees the raw tracepoint's `regs` as a plain
    /// number, so what it points at is read with `bpf_probe_read_kernel`.
    fn load_syscall_slot(&mut self, slot: SyscallSlot, exit: bool) {
        let regs_at = |e: &mut Self, off: i16| {
            e.push(insn::mov64_reg(Reg::R1, Reg::R10));
            e.push(insn::alu64_imm(AluOp::Add, Reg::R1, READ_BUF as i32));
            e.push(insn::mov64_imm(Reg::R2, 8));
            e.push(insn::ldx(Size::DW, Reg::R3, CTX, 0));
            e.push(insn::alu64_imm(AluOp::Add, Reg::R3, off as i32));
            e.push(insn::call(Helper::ProbeReadKernel));
            e.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, READ_BUF));
        };
        match slot {
            SyscallSlot::Number if exit => regs_at(self, SYSCALL_NR),
            SyscallSlot::Number | SyscallSlot::Result => self.push(insn::ldx(Size::DW, Reg::R0, CTX, 8)),
            SyscallSlot::Arg(i) => regs_at(self, SYSCALL_ARGS[i]),
        }
    }

    fn sign_extend(&mut self, r: Reg, size: u8) {
        let shift = 64 - 8 * size as i32;
        self.push(insn::alu64_imm(AluOp::Lsh, r, shift));
        self.push(insn::alu64_imm(AluOp::Arsh, r, shift));
    }

    /// `r0 = r0 op r1`, with SystemTap's signed division and modulo.
    fn binary(&mut self, op: BinOp) {
        match alu_op(op) {
            Some(alu) => self.push(insn::alu64_reg(alu, Reg::R0, Reg::R1)),
            None => self.signed_div(op == BinOp::Mod),
        }
    }

    /// Signed division through unsigned: BPF's signed `sdiv` needs kernel 6.6.
    /// The quotient is negative when exactly one operand is; the remainder takes the
    /// dividend's sign, as in C. Division by zero gives 0, as BPF does.
    fn signed_div(&mut self, modulo: bool) {
        // r2 = result sign flag, r0 = |r0|, r1 = |r1|
        self.push(insn::mov64_imm(Reg::R2, 0));
        self.push(insn::jmp_imm(JmpOp::Sge, Reg::R0, 0, 2));
        self.push(insn::neg64(Reg::R0));
        self.push(insn::mov64_imm(Reg::R2, 1));
        self.push(insn::jmp_imm(JmpOp::Sge, Reg::R1, 0, 2));
        self.push(insn::neg64(Reg::R1));
        if modulo {
            // The remainder's sign follows the dividend only: skip the flip.
            self.push(insn::ja(0));
        } else {
            self.push(insn::alu64_imm(AluOp::Xor, Reg::R2, 1));
        }
        self.push(insn::alu64_reg(if modulo { AluOp::Mod } else { AluOp::Div }, Reg::R0, Reg::R1));
        self.push(insn::jmp_imm(JmpOp::Eq, Reg::R2, 0, 1));
        self.push(insn::neg64(Reg::R0));
    }

    /// The string `v` always holds when its only definition is a constant (a literal, `@1`).
    fn constant_str(&self, v: Var) -> Option<String> {
        let mut defs = self.insts().filter(|i| i.kind.defs().contains(&v));
        match (defs.next().map(|i| &i.kind), defs.next()) {
            (Some(InstKind::StrConst { value, .. }), None) => Some(value.clone()),
            _ => None,
        }
    }

    /// `r0` = 1 when the constant `needle` occurs in `hay`: each start i in hay is compared
    /// with the needle's bytes unrolled, so the verifier walks one loop of at most cap
    /// iterations (a loop over the needle too would make it walk cap² of them).
    fn isinstr_const(&mut self, hay: Var, needle: &[u8]) {
        let (outer, next, found, missing, done) =
            (self.new_label(), self.new_label(), self.new_label(), self.new_label(), self.new_label());
        let cap = self.cap as i32;
        let needle = &needle[..needle.len().min(self.cap as usize - 1)];
        if needle.is_empty() {
            // "" occurs in every string.
            self.push(insn::mov64_imm(Reg::R0, 1));
            return;
        }
        self.push(insn::mov64_imm(Reg::R3, 0));
        self.bind(outer);
        for (k, byte) in needle.iter().enumerate() {
            // r1 = &hay[i + k], within the slot.
            self.push(insn::mov64_reg(Reg::R1, Reg::R3));
            self.push(insn::alu64_imm(AluOp::Add, Reg::R1, k as i32));
            self.jump_if_imm(JmpOp::Ge, Reg::R1, cap, missing);
            self.str_addr(Reg::R2, hay);
            self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R1));
            self.push(insn::ldx(Size::B, Reg::R0, Reg::R2, 0));
            self.jump_if_imm(JmpOp::Ne, Reg::R0, *byte as i32, next);
        }
        self.jump(found);
        self.bind(next);
        // hay[i] == 0: its end, no later start can match.
        self.str_addr(Reg::R2, hay);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R3));
        self.push(insn::ldx(Size::B, Reg::R0, Reg::R2, 0));
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, missing);
        self.push(insn::alu64_imm(AluOp::Add, Reg::R3, 1));
        self.jump_if_imm(JmpOp::Lt, Reg::R3, cap, outer);
        self.bind(missing);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.jump(done);
        self.bind(found);
        self.push(insn::mov64_imm(Reg::R0, 1));
        self.bind(done);
    }

    fn str_const(&mut self, dst: Var, value: &str) {
        let off = self.scratch(dst);
        self.str_const_at(off, value);
    }

    /// The string at scratch `off` = `value`, cut at the capacity.
    fn str_const_at(&mut self, off: u32, value: &str) {
        let mut bytes: Vec<u8> = value.bytes().take(self.cap as usize - 1).collect();
        bytes.push(0);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        for (k, chunk) in bytes.chunks(4).enumerate() {
            let word = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            self.push(insn::st_imm(Size::W, SCRATCH, (off + 4 * k as u32) as i16, word));
        }
    }

    /// Copies the string at `r3` to scratch offset `dst_off`, at most `size` bytes.
    fn copy_str(&mut self, dst_off: u32, size: u32) {
        self.copy_str_to(Buf::scratch(dst_off), size);
    }

    /// Copies the string at `r3` to `dst`, at most `size` bytes.
    fn copy_str_to(&mut self, dst: Buf, size: u32) {
        self.addr(Reg::R1, dst);
        self.push(insn::mov64_imm(Reg::R2, size as i32));
        self.push(insn::call(Helper::ProbeReadKernelStr));
    }

    /// `strcmp` as a bounded loop over both buffers; `r0` ends as the difference of the first
    /// differing bytes (or 0), then compared with 0 by `op`.
    fn str_compare(&mut self, op: CmpOp, dst: Var, lhs: Var, rhs: Var) {
        let (done, top) = (self.new_label(), self.new_label());
        self.str_addr(Reg::R1, lhs);
        self.str_addr(Reg::R2, rhs);
        self.push(insn::mov64_imm(Reg::R3, 0));
        self.bind(top);
        self.push(insn::ldx(Size::B, Reg::R4, Reg::R1, 0));
        self.push(insn::ldx(Size::B, Reg::R5, Reg::R2, 0));
        self.push(insn::mov64_reg(Reg::R0, Reg::R4));
        self.push(insn::alu64_reg(AluOp::Sub, Reg::R0, Reg::R5));
        self.jump_if_reg(JmpOp::Ne, Reg::R4, Reg::R5, done);
        self.jump_if_imm(JmpOp::Eq, Reg::R4, 0, done);
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, 1));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R3, 1));
        self.jump_if_imm(JmpOp::Lt, Reg::R3, self.cap as i32, top);
        self.bind(done);
        self.push(insn::mov64_reg(Reg::R1, Reg::R0));
        self.push(insn::mov64_imm(Reg::R0, 1));
        self.push(insn::jmp_imm(signed_jmp(op), Reg::R1, 0, 1));
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.store(dst, Reg::R0);
    }

    /// `dst = lhs . rhs`: copy lhs, then rhs at lhs's length. The second copy may be
    /// proven by the verifier to reach up to one slot past `dst` (it cannot relate the
    /// length to the size), which is why the scratch area keeps a slot of slack after the
    /// string slots.
    fn concat(&mut self, dst: Var, lhs: Var, rhs: Var) {
        let d = self.scratch(dst);
        let mut rhs_off = self.scratch(rhs);
        if rhs_off == d && lhs != rhs {
            // `s = t . s`: keep rhs in the record buffer while dst is written.
            self.str_addr(Reg::R3, rhs);
            self.copy_str(self.str_tmp_off, self.cap);
            rhs_off = self.str_tmp_off;
        }
        if self.scratch(lhs) != d {
            self.str_addr(Reg::R3, lhs);
            self.copy_str(d, self.cap);
        } else {
            self.str_addr(Reg::R3, lhs);
            self.copy_str(self.tmp_len_probe(), self.cap);
        }
        // r0 = bytes copied including the NUL; the length is r0 - 1, masked to the slot.
        self.push(insn::alu64_imm(AluOp::Sub, Reg::R0, 1));
        self.push(insn::jmp_imm(JmpOp::Sge, Reg::R0, 0, 1));
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::alu64_imm(AluOp::And, Reg::R0, (self.cap.next_power_of_two() - 1) as i32));
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.push(insn::alu64_reg(AluOp::Sub, Reg::R2, Reg::R0));
        self.jump_if_imm(JmpOp::Sle, Reg::R2, 0, EXIT_LABEL);
        self.scratch_addr(Reg::R1, d);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R1, Reg::R0));
        self.scratch_addr(Reg::R3, rhs_off);
        self.push(insn::call(Helper::ProbeReadKernelStr));
    }

    /// Where to copy a string only to learn its length.
    fn tmp_len_probe(&self) -> u32 {
        self.str_tmp_off
    }

    /// `bpf_get_current_comm(dst, len)`.
    fn current_comm(&mut self, dst: Buf, len: u32) {
        self.addr(Reg::R1, dst);
        self.push(insn::mov64_imm(Reg::R2, len as i32));
        self.push(insn::call(Helper::GetCurrentComm));
    }

    /// Sends a record of only a header, from the stack.
    fn output_header_record(&mut self, kind: u32) {
        // An 8-byte store sets the whole header; the runtime ignores the pad, which gets
        // the sign bits of `kind`.
        self.push(insn::st_imm(Size::DW, Reg::R10, HEADER_RECORD, kind as i32));
        self.map_ptr(Reg::R1, self.maps.ringbuf);
        self.addr(Reg::R2, Buf { base: Reg::R10, off: HEADER_RECORD });
        self.push(insn::mov64_imm(Reg::R3, layout::RECORD_HEADER as i32));
        self.push(insn::mov64_imm(Reg::R4, 0));
        self.push(insn::call(Helper::RingbufOutput));
        let sent = self.new_label();
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, sent);
        self.count_lost_record();
        self.bind(sent);
    }

    /// A full ring buffer drops the record: count it, so the runtime can say so. The globals'
    /// address is loaded here, on the rare path, unless the handler has it anyway.
    fn count_lost_record(&mut self) {
        let counter = self.globals_in(Reg::R0);
        self.push(insn::mov64_imm(Reg::R1, 1));
        self.push(insn::atomic_add(Size::DW, counter, Reg::R1, GLOBAL_LOST as i16));
    }

    /// Reserves the record in the ring buffer and writes the arguments straight into it, so
    /// no copy of the record exists anywhere else.
    fn printf(&mut self, fmt: FmtId, args: &[Var]) {
        let layout = layout::record_layout(&self.program.formats[fmt], self.cap);
        let (lost, done) = (self.new_label(), self.new_label());
        self.map_ptr(Reg::R1, self.maps.ringbuf);
        self.push(insn::mov64_imm(Reg::R2, layout.size as i32));
        self.push(insn::mov64_imm(Reg::R3, 0));
        self.push(insn::call(Helper::RingbufReserve));
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, lost);
        self.push(insn::mov64_reg(RECORD, Reg::R0));
        let record = Buf { base: RECORD, off: 0 };
        self.push(insn::st_imm(Size::W, RECORD, 0, fmt.as_u32() as i32));
        for (arg, off) in args.iter().zip(&layout.arg_offsets) {
            let at = record.at(*off);
            match self.func.ty(*arg) {
                Ty::Long => {
                    let value = match self.sunk.get(arg) {
                        Some(InstKind::Call { builtin, .. }) => {
                            self.current_id(*builtin);
                            Reg::R0
                        }
                        Some(InstKind::LoadContext { offset, size, signed, .. }) => {
                            self.load_context(*offset, *size, *signed);
                            Reg::R0
                        }
                        _ => self.reg_of(*arg, Reg::R0),
                    };
                    self.push(insn::stx(Size::DW, RECORD, value, at.off));
                }
                Ty::Str if self.sunk.contains_key(arg) => self.current_comm(at, COMM_LEN.min(self.cap)),
                Ty::Str => {
                    self.str_addr(Reg::R3, *arg);
                    self.copy_str_to(at, self.cap);
                }
            }
        }
        self.push(insn::mov64_reg(Reg::R1, RECORD));
        self.push(insn::mov64_imm(Reg::R2, 0));
        self.push(insn::call(Helper::RingbufSubmit));
        self.jump(done);
        self.bind(lost);
        self.count_lost_record();
        self.bind(done);
    }

    /// `bpf_snprintf(dst, cap, fmt, args, 8 * n)`: longs by value, strings by address.
    fn snprintf(&mut self, dst_off: u32, format: &str, args: &[Var]) {
        for (k, arg) in args.iter().enumerate() {
            match self.func.ty(*arg) {
                Ty::Long => self.load(Reg::R0, *arg),
                Ty::Str => self.str_addr(Reg::R0, *arg),
            }
            self.push(insn::stx(Size::DW, SCRATCH, Reg::R0, (self.args_off + 8 * k as u32) as i16));
        }
        self.scratch_addr(Reg::R1, dst_off);
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.rodata_ptr(Reg::R3, format);
        self.scratch_addr(Reg::R4, self.args_off);
        self.push(insn::mov64_imm(Reg::R5, 8 * args.len() as i32));
        self.push(insn::call(Helper::Snprintf));
    }

    /// The string at scratch `d` = the first `len` bytes at kernel address `addr` (as many as
    /// fit), in hex or as text with `.` for what is not printable; "" when `len` is not
    /// positive or the read faults. The bytes are read into `d` and rewritten in place from
    /// the last, so each is read before its own text overwrites it; unrolled, since the
    /// count is bounded by the string capacity and every offset is then a constant.
    fn kernel_buffer_text(&mut self, d: u32, addr: Var, len: Var, hex: bool) {
        let max = if hex { (self.cap - 1) / 2 } else { self.cap - 1 };
        let empty = self.new_label();
        let done = self.new_label();
        self.load(Reg::R2, len);
        self.jump_if_imm(JmpOp::Sle, Reg::R2, 0, empty);
        self.push(insn::jmp_imm(JmpOp::Le, Reg::R2, max as i32, 1));
        self.push(insn::mov64_imm(Reg::R2, max as i32));
        self.push(insn::stx(Size::DW, Reg::R10, Reg::R2, SPILL));
        self.load(Reg::R3, addr);
        self.scratch_addr(Reg::R1, d);
        self.push(insn::call(Helper::ProbeReadKernel));
        self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, empty);
        for i in (0..max).rev() {
            self.push(insn::ldx(Size::B, Reg::R1, SCRATCH, (d + i) as i16));
            if hex {
                for (shift, at) in [(4, 2 * i), (0, 2 * i + 1)] {
                    self.push(insn::mov64_reg(Reg::R2, Reg::R1));
                    if shift > 0 {
                        self.push(insn::alu64_imm(AluOp::Rsh, Reg::R2, shift));
                    }
                    self.push(insn::alu64_imm(AluOp::And, Reg::R2, 15));
                    self.push(insn::alu64_imm(AluOp::Add, Reg::R2, b'0' as i32));
                    self.push(insn::jmp_imm(JmpOp::Le, Reg::R2, b'9' as i32, 1));
                    self.push(insn::alu64_imm(AluOp::Add, Reg::R2, (b'a' - b'9' - 1) as i32));
                    self.push(insn::stx(Size::B, SCRATCH, Reg::R2, (d + at) as i16));
                }
            } else {
                // Printable ASCII is 32..=126: one unsigned compare after subtracting 32.
                self.push(insn::mov64_reg(Reg::R2, Reg::R1));
                self.push(insn::alu64_imm(AluOp::Sub, Reg::R2, 32));
                self.push(insn::jmp_imm(JmpOp::Le, Reg::R2, 126 - 32, 1));
                self.push(insn::mov64_imm(Reg::R1, b'.' as i32));
                self.push(insn::stx(Size::B, SCRATCH, Reg::R1, (d + i) as i16));
            }
        }
        // The NUL after the text: at `len` bytes, or `2 * len` hex digits.
        self.push(insn::ldx(Size::DW, Reg::R2, Reg::R10, SPILL));
        if hex {
            self.push(insn::alu64_imm(AluOp::Lsh, Reg::R2, 1));
        }
        self.push(insn::alu64_imm(AluOp::And, Reg::R2, (self.cap.next_power_of_two() - 1) as i32));
        self.jump_if_imm(JmpOp::Ge, Reg::R2, self.cap as i32, empty);
        self.scratch_addr(Reg::R1, d);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R1, Reg::R2));
        self.push(insn::st_imm(Size::B, Reg::R1, 0, 0));
        self.jump(done);
        self.bind(empty);
        self.push(insn::st_imm(Size::B, SCRATCH, d as i16, 0));
        self.bind(done);
    }

    /// The string at scratch `dst_off` = `errno_str(n)`: the name from a table in `.rodata`
    /// of [`ERRNO_ENTRY`]-byte entries, or `E<n>` past its end, as the runtime names them.
    fn errno_str(&mut self, dst_off: u32, n: Var) {
        let (positive, named, done) = (self.new_label(), self.new_label(), self.new_label());
        let table: Vec<u8> = (0..=ERRNO_MAX)
            .flat_map(|e| {
                let mut entry = lang::builtins::errno_name(e).into_bytes();
                entry.resize(ERRNO_ENTRY as usize, 0);
                entry
            })
            .collect();
        let table = self.rodata.intern_bytes(&table);
        self.load(Reg::R0, n);
        self.jump_if_imm(JmpOp::Sge, Reg::R0, 0, positive);
        self.push(insn::neg64(Reg::R0));
        self.bind(positive);
        self.jump_if_imm(JmpOp::Le, Reg::R0, ERRNO_MAX as i32, named);
        self.push(insn::stx(Size::DW, SCRATCH, Reg::R0, self.args_off as i16));
        self.scratch_addr(Reg::R1, dst_off);
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.rodata_ptr(Reg::R3, "E%d");
        self.scratch_addr(Reg::R4, self.args_off);
        self.push(insn::mov64_imm(Reg::R5, 8));
        self.push(insn::call(Helper::Snprintf));
        self.jump(done);
        self.bind(named);
        self.push(insn::alu64_imm(AluOp::Mul, Reg::R0, ERRNO_ENTRY as i32));
        self.rodata_ptr_at(Reg::R3, table);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R3, Reg::R0));
        self.copy_str(dst_off, ERRNO_ENTRY.min(self.cap));
        self.bind(done);
    }

    /// The string at scratch `dst_off` = `str_replace(s, needle, with)`: a `bpf_loop` of at
    /// most cap steps (each consumes a byte of `s` or more) builds it in the string
    /// temporary, with the two indexes in scratch's 16-byte buffer; then it is copied into
    /// place, as `dst` may share its slot with `s`.
    fn str_replace(&mut self, dst_off: u32, s: Var, needle: Vec<u8>, with: Vec<u8>) {
        let src = self.scratch(s);
        if needle.is_empty() || needle.len() >= self.cap as usize {
            self.str_addr(Reg::R3, s);
            self.copy_str(dst_off, self.cap);
            return;
        }
        let with = with[..with.len().min(self.cap as usize - 1)].to_vec();
        let (out, idx) = (self.str_tmp_off, self.tmp_off);
        self.push(insn::st_imm(Size::DW, SCRATCH, idx as i16, 0));
        self.push(insn::st_imm(Size::DW, SCRATCH, idx as i16 + 8, 0));
        self.push(insn::mov64_imm(Reg::R1, self.cap as i32));
        self.callback_ptr(Reg::R2, Callback::Replace { src, out, idx, needle, with });
        self.push(insn::mov64_imm(Reg::R3, 0));
        self.push(insn::mov64_imm(Reg::R4, 0));
        self.push(insn::call(Helper::Loop));
        // The output index, bounded again for the verifier, and the terminating NUL there.
        let bounded = self.new_label();
        self.push(insn::ldx(Size::DW, Reg::R2, SCRATCH, idx as i16 + 8));
        self.jump_if_imm(JmpOp::Le, Reg::R2, self.cap as i32 - 1, bounded);
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32 - 1));
        self.bind(bounded);
        self.scratch_addr(Reg::R5, out);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R5, Reg::R2));
        self.push(insn::st_imm(Size::B, Reg::R5, 0, 0));
        self.scratch_addr(Reg::R3, out);
        self.copy_str(dst_off, self.cap);
    }

    /// The body of a [`Callback::Replace`]: `(r1 step)`, returns 0 to go on and 1 to stop.
    /// It finds the scratch area itself, in r0 throughout.
    fn replace_step(&mut self, src: u32, out: u32, idx: i16, needle: &[u8], with: &[u8]) {
        let (stop, copy_one, next) = (self.new_label(), self.new_label(), self.new_label());
        let (cap, n, m) = (self.cap as i32, needle.len() as i32, with.len() as i32);
        self.push(insn::st_imm(Size::W, Reg::R10, KEY_ZERO, 0));
        self.map_ptr(Reg::R1, self.maps.scratch);
        self.push(insn::mov64_reg(Reg::R2, Reg::R10));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, KEY_ZERO as i32));
        self.push(insn::call(Helper::MapLookupElem));
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, stop);
        // r1 = source index, r2 = output index, r4 = &s[r1], r3 = s[r1].
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R0, idx));
        self.push(insn::ldx(Size::DW, Reg::R2, Reg::R0, idx + 8));
        self.jump_if_imm(JmpOp::Gt, Reg::R1, cap - 1, stop);
        self.push(insn::mov64_reg(Reg::R4, Reg::R0));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R4, src as i32));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R4, Reg::R1));
        self.push(insn::ldx(Size::B, Reg::R3, Reg::R4, 0));
        self.jump_if_imm(JmpOp::Eq, Reg::R3, 0, stop);
        self.jump_if_imm(JmpOp::Gt, Reg::R1, cap - 1 - n, copy_one);
        for (k, b) in needle.iter().enumerate() {
            self.push(insn::ldx(Size::B, Reg::R5, Reg::R4, k as i16));
            self.jump_if_imm(JmpOp::Ne, Reg::R5, *b as i32, copy_one);
        }
        self.jump_if_imm(JmpOp::Gt, Reg::R2, cap - 1 - m, stop);
        self.push(insn::mov64_reg(Reg::R5, Reg::R0));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R5, out as i32));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R5, Reg::R2));
        for (k, b) in with.iter().enumerate() {
            self.push(insn::st_imm(Size::B, Reg::R5, k as i16, *b as i32));
        }
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, n));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, m));
        self.jump(next);
        self.bind(copy_one);
        self.jump_if_imm(JmpOp::Gt, Reg::R2, cap - 2, stop);
        self.push(insn::mov64_reg(Reg::R5, Reg::R0));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R5, out as i32));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R5, Reg::R2));
        self.push(insn::stx(Size::B, Reg::R5, Reg::R3, 0));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, 1));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        self.bind(next);
        self.push(insn::stx(Size::DW, Reg::R0, Reg::R1, idx));
        self.push(insn::stx(Size::DW, Reg::R0, Reg::R2, idx + 8));
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::exit());
        self.bind(stop);
        self.push(insn::mov64_imm(Reg::R0, 1));
        self.push(insn::exit());
    }

    /// The body of a [`Callback::KeepVma`]: `(r1 task, r2 vma, r3 ctx)`, returns 0. It finds
    /// the scratch area itself; r6 keeps the vma across the lookup.
    fn keep_vma(&mut self, at: u32) {
        let done = self.new_label();
        self.push(insn::mov64_reg(Reg::R6, Reg::R2));
        self.push(insn::st_imm(Size::W, Reg::R10, KEY_ZERO, 0));
        self.map_ptr(Reg::R1, self.maps.scratch);
        self.push(insn::mov64_reg(Reg::R2, Reg::R10));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, KEY_ZERO as i32));
        self.push(insn::call(Helper::MapLookupElem));
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, done);
        self.push(insn::stx(Size::DW, Reg::R0, Reg::R6, at as i16));
        self.bind(done);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::exit());
    }

    /// Finds the first space of the string at scratch `off`: r0 = b' ', r1 = its index and
    /// r2 = its address, or r0 = 0 when the string has none.
    fn find_space(&mut self, off: u32) {
        let (next, found, none) = (self.new_label(), self.new_label(), self.new_label());
        self.push(insn::mov64_imm(Reg::R1, 0));
        self.bind(next);
        self.jump_if_imm(JmpOp::Ge, Reg::R1, self.cap as i32, none);
        self.scratch_addr(Reg::R2, off);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R1));
        self.push(insn::ldx(Size::B, Reg::R0, Reg::R2, 0));
        self.jump_if_imm(JmpOp::Eq, Reg::R0, b' ' as i32, found);
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, 1));
        self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, next);
        self.bind(none);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.bind(found);
    }

    /// The string at scratch `d` = the kernel module holding `addr`, from the kernel's
    /// symbol table: `%ps` prints `name [module]` for a module's symbol (`modname`), the name
    /// alone for the kernel's own ("kernel"), and the address in hex (`0x...`) where no
    /// symbol holds it (""). Built in the string temporary, then copied.
    fn kernel_modname(&mut self, d: u32, addr: Var) {
        let tmp = self.str_tmp_off;
        let (kernel, unknown, copy, done) = (self.new_label(), self.new_label(), self.new_label(), self.new_label());
        self.snprintf(tmp, "%ps", &[addr]);
        // r0 = the text's length with its NUL, more than the capacity when it was cut.
        self.push(insn::stx(Size::DW, Reg::R10, Reg::R0, SPILL));
        self.push(insn::ldx(Size::H, Reg::R1, SCRATCH, tmp as i16));
        self.jump_if_imm(JmpOp::Eq, Reg::R1, i32::from(u16::from_le_bytes(*b"0x")), unknown);
        self.find_space(tmp);
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, kernel);
        // The module is after " [", up to the closing "]" that ends the text (unless cut).
        self.push(insn::ldx(Size::DW, Reg::R3, Reg::R10, SPILL));
        self.jump_if_imm(JmpOp::Gt, Reg::R3, self.cap as i32, copy);
        self.jump_if_imm(JmpOp::Lt, Reg::R3, 2, copy);
        self.push(insn::alu64_imm(AluOp::Sub, Reg::R3, 2));
        self.scratch_addr(Reg::R4, tmp);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R4, Reg::R3));
        self.push(insn::ldx(Size::B, Reg::R5, Reg::R4, 0));
        self.jump_if_imm(JmpOp::Ne, Reg::R5, b']' as i32, copy);
        self.push(insn::st_imm(Size::B, Reg::R4, 0, 0));
        self.bind(copy);
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, 2));
        self.jump_if_imm(JmpOp::Ge, Reg::R1, self.cap as i32, unknown);
        self.scratch_addr(Reg::R3, tmp);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R3, Reg::R1));
        self.copy_str(d, self.cap);
        self.jump(done);
        self.bind(kernel);
        self.str_const_at(d, "kernel");
        self.jump(done);
        self.bind(unknown);
        self.push(insn::st_imm(Size::B, SCRATCH, d as i16, 0));
        self.bind(done);
    }

    fn sprintf(&mut self, dst: Var, fmt: FmtId, args: &[Var]) -> Result<(), EmitError> {
        let kernel = kernel_format(&self.program.formats[fmt].format).map_err(|what| self.unsupported(&what))?;
        if args.len() > SNPRINTF_MAX_ARGS as usize {
            return Err(self.unsupported(&format!("`sprintf` with more than {SNPRINTF_MAX_ARGS} arguments")));
        }
        let off = self.scratch(dst);
        self.snprintf(off, &kernel, args);
        Ok(())
    }

    fn call(&mut self, dst: Option<Var>, builtin: Builtin, args: &[Var]) -> Result<(), EmitError> {
        let long_result = |e: &mut Self| {
            if let Some(d) = dst {
                e.store(d, Reg::R0);
            }
        };
        match builtin {
            Builtin::Pid | Builtin::Tid | Builtin::Uid | Builtin::Gid | Builtin::Cpu => {
                // Sunk into its one use, a record, which makes the call itself.
                if dst.is_some_and(|d| !self.sunk.contains_key(&d)) {
                    self.current_id(builtin);
                    long_result(self);
                }
            }
            Builtin::Execname => {
                let d = dst.expect("execname has a result");
                // Sunk into its one use (a record or a key), which reads the comm itself.
                if !self.sunk.contains_key(&d) {
                    let off = self.scratch(d);
                    self.current_comm(Buf::scratch(off), COMM_LEN.min(self.cap));
                }
            }
            Builtin::GettimeofdayS
            | Builtin::GettimeofdayMs
            | Builtin::GettimeofdayUs
            | Builtin::GettimeofdayNs
            | Builtin::KtimeNs
            | Builtin::Target
            | Builtin::Strlen
            | Builtin::Ntohs
            | Builtin::Htons
            | Builtin::Ntohl
            | Builtin::Htonl
            | Builtin::Stringat
            | Builtin::Isinstr
            | Builtin::Randint
            | Builtin::TaskCurrent
            | Builtin::UserVma
            | Builtin::Strtol
            | Builtin::Uaddr
            | Builtin::Addr
            | Builtin::UserMode => {
                self.long_call(builtin, args)?;
                long_result(self);
            }
            Builtin::IpNtop => {
                let d = dst.expect("ip_ntop has a result");
                self.load(Reg::R0, args[0]);
                self.push(insn::stx(Size::W, SCRATCH, Reg::R0, self.tmp_off as i16));
                self.ip_to_str(d, "%pI4");
            }
            Builtin::UserIpv6Str | Builtin::KernelIpv6Str => {
                let d = dst.expect("an address has a text");
                self.scratch_addr(Reg::R1, self.tmp_off);
                self.push(insn::mov64_imm(Reg::R2, 16));
                self.load(Reg::R3, args[0]);
                let read =
                    if builtin == Builtin::UserIpv6Str { Helper::ProbeReadUser } else { Helper::ProbeReadKernel };
                self.push(insn::call(read));
                // SystemTap prints IPv6 addresses with %pI6, uncompressed (the kernel's bpf_snprintf
                // has no compressed form either).
                self.ip_to_str(d, "%pI6");
            }
            Builtin::KernelBufferHex | Builtin::KernelBufferText => {
                let d = self.scratch(dst.expect("a buffer has a text"));
                self.kernel_buffer_text(d, args[0], args[1], builtin == Builtin::KernelBufferHex);
            }
            Builtin::StrReplace => {
                let (Some(needle), Some(with)) = (self.constant_str(args[1]), self.constant_str(args[2])) else {
                    return Err(
                        self.unsupported("`str_replace` whose second and third arguments are not constant strings")
                    );
                };
                let d = self.scratch(dst.expect("str_replace has a result"));
                self.str_replace(d, args[0], needle.into_bytes(), with.into_bytes());
            }
            Builtin::ErrnoStr => {
                let d = self.scratch(dst.expect("errno_str has a result"));
                self.errno_str(d, args[0]);
            }
            Builtin::Substr => self.substr(self.scratch(dst.expect("substr has a result")), args),
            Builtin::TextStr
            | Builtin::Tokenize
            | Builtin::TzGmtoff
            | Builtin::TzName
            | Builtin::Matched
            | Builtin::MatchedStr
            | Builtin::Ngroups
            | Builtin::System
            | Builtin::SwitchFile
            | Builtin::Warn
            | Builtin::Error => return Err(self.unsupported(&format!("`{}()`", builtin.name()))),
            Builtin::Symname | Builtin::Symdata => {
                self.symbol_name(self.scratch(dst.expect("a symbol has a name")), args[0], builtin == Builtin::Symdata)
            }
            Builtin::Modname => {
                let d = self.scratch(dst.expect("a module has a name"));
                self.kernel_modname(d, args[0]);
            }
            Builtin::Fileline { .. } | Builtin::Usym => {
                let off = self.scratch(dst.expect("a file and line are a string"));
                self.snprintf(off, "0x%lx", &args[..1]);
            }
            Builtin::Backtrace { user, symbols } => {
                let d = self.scratch(dst.expect("a backtrace is a string"));
                self.backtrace(d, user, symbols);
            }
        }
        Ok(())
    }

    /// r0 = a builtin of `call` whose result is a long computed from its arguments.
    fn long_call(&mut self, builtin: Builtin, args: &[Var]) -> Result<(), EmitError> {
        match builtin {
            Builtin::GettimeofdayS | Builtin::GettimeofdayMs | Builtin::GettimeofdayUs | Builtin::GettimeofdayNs => {
                self.push(insn::call(Helper::KtimeGetBootNs));
                self.push(insn::ldx(Size::DW, Reg::R1, GLOBALS, GLOBAL_BOOT_OFFSET as i16));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R0, Reg::R1));
                let div = match builtin {
                    Builtin::GettimeofdayS => 1_000_000_000,
                    Builtin::GettimeofdayMs => 1_000_000,
                    Builtin::GettimeofdayUs => 1_000,
                    _ => 1,
                };
                if div != 1 {
                    self.push(insn::alu64_imm(AluOp::Div, Reg::R0, div));
                }
            }
            Builtin::KtimeNs => {
                self.push(insn::call(Helper::KtimeGetNs));
            }
            Builtin::Target => {
                self.push(insn::ldx(Size::DW, Reg::R0, GLOBALS, GLOBAL_TARGET as i16));
            }
            Builtin::Strlen => {
                self.str_addr(Reg::R3, args[0]);
                self.copy_str(self.tmp_len_probe(), self.cap);
                self.push(insn::alu64_imm(AluOp::Sub, Reg::R0, 1));
                self.push(insn::jmp_imm(JmpOp::Sge, Reg::R0, 0, 1));
                self.push(insn::mov64_imm(Reg::R0, 0));
            }
            Builtin::Ntohs | Builtin::Htons | Builtin::Ntohl | Builtin::Htonl => {
                self.load(Reg::R0, args[0]);
                let bits = if matches!(builtin, Builtin::Ntohs | Builtin::Htons) { 16 } else { 32 };
                self.push(insn::be(Reg::R0, bits));
            }
            Builtin::Stringat => {
                self.stringat(args);
            }
            Builtin::Isinstr => {
                let Some(needle) = self.constant_str(args[1]) else {
                    return Err(self.unsupported("`isinstr` with a second argument that is not a constant string"));
                };
                self.isinstr_const(args[0], needle.as_bytes());
            }
            Builtin::Randint => {
                self.push(insn::call(Helper::GetPrandomU32));
                self.load(Reg::R1, args[0]);
                self.push(insn::alu64_reg(AluOp::Mod, Reg::R0, Reg::R1));
            }
            Builtin::TaskCurrent => {
                self.push(insn::call(Helper::GetCurrentTask));
            }
            Builtin::UserVma => {
                self.user_vma(args[0]);
            }
            Builtin::Strtol => {
                self.strtol(args)?;
            }
            Builtin::Uaddr => {
                self.uaddr();
            }
            Builtin::Addr => {
                match self.args {
                    ProgramContext::PtRegs { .. } | ProgramContext::PerfEvent => {
                        self.push(insn::ldx(Size::DW, Reg::R0, CTX, PT_REGS_IP))
                    }
                    // No registers: SystemTap's addr() is 0 there too.
                    ProgramContext::Record | ProgramContext::Args { .. } | ProgramContext::Syscall { .. } => {
                        self.push(insn::mov64_imm(Reg::R0, 0))
                    }
                }
            }
            Builtin::UserMode => {
                self.user_mode();
            }
            other => unreachable!("`{}` is not a long builtin of `call`", other.name()),
        }
        Ok(())
    }

    /// `substr(s, start, length)` into scratch `d`: the bytes of s from `start`, at most
    /// `length`; "" past the end.
    fn substr(&mut self, d: u32, args: &[Var]) {
        let empty = self.new_label();
        let done = self.new_label();
        self.str_addr(Reg::R3, args[0]);
        self.copy_str(self.tmp_len_probe(), self.cap);
        // r0 = strlen + 1; spill it while the bounds are worked out.
        self.push(insn::stx(Size::DW, Reg::R10, Reg::R0, SPILL));
        self.load(Reg::R4, args[1]);
        self.jump_if_imm(JmpOp::Slt, Reg::R4, 0, empty);
        self.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, SPILL));
        self.push(insn::alu64_imm(AluOp::Sub, Reg::R0, 1));
        self.jump_if_reg(JmpOp::Sge, Reg::R4, Reg::R0, empty);
        self.push(insn::alu64_imm(AluOp::And, Reg::R4, (self.cap.next_power_of_two() - 1) as i32));
        self.jump_if_imm(JmpOp::Ge, Reg::R4, self.cap as i32, empty);
        self.load(Reg::R2, args[2]);
        self.jump_if_imm(JmpOp::Sle, Reg::R2, 0, empty);
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        // Unsigned: after `+ 1` the verifier no longer knows the length is positive
        // (it could have wrapped), and a signed bound would leave it unbounded below.
        self.push(insn::jmp_imm(JmpOp::Le, Reg::R2, self.cap as i32, 1));
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.str_addr(Reg::R3, args[0]);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R3, Reg::R4));
        self.scratch_addr(Reg::R1, d);
        self.push(insn::call(Helper::ProbeReadKernelStr));
        self.jump(done);
        self.bind(empty);
        self.push(insn::st_imm(Size::B, SCRATCH, d as i16, 0));
        self.bind(done);
    }

    /// r0 = `stringat(s, i)`: the byte at `i`, 0 outside the string.
    fn stringat(&mut self, args: &[Var]) {
        let zero = self.new_label();
        let done = self.new_label();
        self.load(Reg::R1, args[1]);
        self.jump_if_imm(JmpOp::Slt, Reg::R1, 0, zero);
        self.jump_if_imm(JmpOp::Sge, Reg::R1, self.cap as i32, zero);
        self.push(insn::alu64_imm(AluOp::And, Reg::R1, (self.cap.next_power_of_two() - 1) as i32));
        self.jump_if_imm(JmpOp::Ge, Reg::R1, self.cap as i32, zero);
        self.str_addr(Reg::R2, args[0]);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R1));
        self.push(insn::ldx(Size::B, Reg::R0, Reg::R2, 0));
        self.jump(done);
        self.bind(zero);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.bind(done);
    }

    /// `symname(addr)` (`with_offset`: `symdata`) into scratch `off`, from the kernel's own
    /// symbol table through bpf_snprintf: `%ps` is the name, `%pS` adds `+0xoffset/0xsize`, and
    /// both ` [module]` for a module's symbol; both give the address in hex when no symbol
    /// holds it, as SystemTap does.
    fn symbol_name(&mut self, off: u32, arg: Var, with_offset: bool) {
        if with_offset {
            self.snprintf(off, "%pS", &[arg]);
        } else {
            // SystemTap's symname is the name alone: cut at the module's space.
            let done = self.new_label();
            self.snprintf(off, "%ps", &[arg]);
            self.find_space(off);
            self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, done);
            self.push(insn::st_imm(Size::B, Reg::R2, 0, 0));
            self.bind(done);
        }
    }

    /// r0 = the current task's vma holding user address `addr` (0: none).
    fn user_vma(&mut self, addr: Var) {
        // The callback keeps the vma in scratch, where it is a plain number to the
        // verifier: reads through it are `bpf_probe_read_kernel`'s, fault-safe.
        let at = self.tmp_off;
        self.push(insn::st_imm(Size::DW, SCRATCH, at as i16, 0));
        self.push(insn::call(Helper::GetCurrentTaskBtf));
        self.push(insn::mov64_reg(Reg::R1, Reg::R0));
        self.load(Reg::R2, addr);
        self.callback_ptr(Reg::R3, Callback::KeepVma { at });
        self.push(insn::mov64_imm(Reg::R4, 0));
        self.push(insn::mov64_imm(Reg::R5, 0));
        self.push(insn::call(Helper::FindVma));
        self.push(insn::ldx(Size::DW, Reg::R0, SCRATCH, at as i16));
    }

    /// r0 = `strtol(s, base)`.
    fn strtol(&mut self, args: &[Var]) -> Result<(), EmitError> {
        let base = self.consts.get(&args[1]).copied();
        if !matches!(base, Some(0 | 8 | 10 | 16)) {
            return Err(self.unsupported("`strtol` with a base other than a constant 0, 8, 10 or 16"));
        }
        // bpf_strtol: leading spaces, a sign, then digits up to the first other byte;
        // a string with none gives 0, as SystemTap's does.
        self.push(insn::st_imm(Size::DW, SCRATCH, self.tmp_off as i16, 0));
        self.str_addr(Reg::R1, args[0]);
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.push(insn::mov64_imm(Reg::R3, base.unwrap_or(0)));
        self.scratch_addr(Reg::R4, self.tmp_off);
        self.push(insn::call(Helper::Strtol));
        self.push(insn::ldx(Size::DW, Reg::R0, SCRATCH, self.tmp_off as i16));
        Ok(())
    }

    /// r0 = `uaddr()`: the user instruction pointer of the interrupted or current task.
    fn uaddr(&mut self) {
        let done = self.new_label();
        if matches!(self.args, ProgramContext::PtRegs { .. } | ProgramContext::PerfEvent) {
            // Interrupted in user mode: the context's registers are the user's.
            let (offset, mask, user) = PT_REGS_MODE;
            let kernel_mode = self.new_label();
            self.push(insn::ldx(Size::DW, Reg::R1, CTX, offset));
            self.push(insn::alu64_imm(AluOp::And, Reg::R1, mask));
            self.jump_if_imm(JmpOp::Ne, Reg::R1, user, kernel_mode);
            self.push(insn::ldx(Size::DW, Reg::R0, CTX, PT_REGS_IP));
            self.jump(done);
            self.bind(kernel_mode);
        }
        // The registers the task entered the kernel with (zeros for a kernel thread).
        self.push(insn::call(Helper::GetCurrentTaskBtf));
        self.push(insn::mov64_reg(Reg::R1, Reg::R0));
        self.push(insn::call(Helper::TaskPtRegs));
        self.push(insn::ldx(Size::DW, Reg::R0, Reg::R0, PT_REGS_IP));
        self.bind(done);
    }

    /// r0 = `user_mode()`: whether the probe interrupted user mode.
    fn user_mode(&mut self) {
        match self.args {
            ProgramContext::PtRegs { .. } | ProgramContext::PerfEvent => {
                let (offset, mask, user) = PT_REGS_MODE;
                self.push(insn::ldx(Size::DW, Reg::R1, CTX, offset));
                self.push(insn::alu64_imm(AluOp::And, Reg::R1, mask));
                self.push(insn::mov64_imm(Reg::R0, 1));
                self.push(insn::jmp_imm(JmpOp::Eq, Reg::R1, user, 1));
                self.push(insn::mov64_imm(Reg::R0, 0));
            }
            // Tracepoints, netfilter hooks and kernel function entries run in the
            // kernel on the kernel's behalf.
            ProgramContext::Record | ProgramContext::Args { .. } | ProgramContext::Syscall { .. } => {
                self.push(insn::mov64_imm(Reg::R0, 0))
            }
        }
    }

    /// `r0` = a property of the current task or CPU, which stays the same for a whole run of
    /// a handler.
    fn current_id(&mut self, builtin: Builtin) {
        let (helper, high_half) = match builtin {
            Builtin::Pid => (Helper::GetCurrentPidTgid, true),
            Builtin::Tid => (Helper::GetCurrentPidTgid, false),
            Builtin::Gid => (Helper::GetCurrentUidGid, true),
            Builtin::Uid => (Helper::GetCurrentUidGid, false),
            _ => {
                debug_assert_eq!(builtin, Builtin::Cpu);
                self.push(insn::call(Helper::GetSmpProcessorId));
                return;
            }
        };
        self.push(insn::call(helper));
        if high_half {
            self.push(insn::alu64_imm(AluOp::Rsh, Reg::R0, 32));
        } else {
            self.push(insn::mov32_reg(Reg::R0, Reg::R0));
        }
    }

    /// The stack as text at scratch offset `dst`: `bpf_get_stack` reads up to `MAX_FRAMES`
    /// return addresses (from the interrupted registers in a perf event), then each frame is
    /// appended with bpf_snprintf while there is room, so the text is cut at the string
    /// capacity as SystemTap cuts it at MAXSTRINGLEN. Kernel frames print as `%pS` (the
    /// kernel's `name+0xoff/0xsize`); user frames as SystemTap prints an address it cannot
    /// name, its `%p`: `0x` and the hex digits.
    fn backtrace(&mut self, dst: u32, user: bool, symbols: bool) {
        let format = match (user, symbols) {
            (false, true) => "%pS\n",
            (true, true) => "0x%lx\n",
            (_, false) => "0x%lx ",
        };
        let (bytes, len) = (self.tmp_off, self.tmp_off + 8);
        let done = self.new_label();
        self.push(insn::st_imm(Size::B, SCRATCH, dst as i16, 0));
        self.push(insn::st_imm(Size::DW, SCRATCH, len as i16, 0));
        self.push(insn::mov64_reg(Reg::R1, CTX));
        self.scratch_addr(Reg::R2, self.frames_off);
        self.push(insn::mov64_imm(Reg::R3, (MAX_FRAMES * 8) as i32));
        self.push(insn::mov64_imm(Reg::R4, if user { BPF_F_USER_STACK } else { 0 }));
        self.push(insn::call(Helper::GetStack));
        self.push(insn::stx(Size::DW, SCRATCH, Reg::R0, bytes as i16));
        // Unrolled: the verifier sees each frame's bounds without a loop to prove.
        for frame in 0..MAX_FRAMES {
            self.push(insn::ldx(Size::DW, Reg::R0, SCRATCH, bytes as i16));
            self.jump_if_imm(JmpOp::Sle, Reg::R0, (frame * 8) as i32, done);
            self.push(insn::ldx(Size::DW, Reg::R0, SCRATCH, (self.frames_off + frame * 8) as i16));
            self.push(insn::stx(Size::DW, SCRATCH, Reg::R0, self.args_off as i16));
            // r1 = the length so far, below the capacity less the NUL: the room left, r2, is
            // then 2..=cap, and the slot of slack after every string slot (see `concat`)
            // keeps the verifier's worst case, longest text and most room, in scratch.
            self.push(insn::ldx(Size::DW, Reg::R3, SCRATCH, len as i16));
            self.jump_if_imm(JmpOp::Ge, Reg::R3, self.cap as i32 - 1, done);
            self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
            self.push(insn::alu64_reg(AluOp::Sub, Reg::R2, Reg::R3));
            self.scratch_addr(Reg::R1, dst);
            self.push(insn::alu64_reg(AluOp::Add, Reg::R1, Reg::R3));
            self.rodata_ptr(Reg::R3, format);
            self.scratch_addr(Reg::R4, self.args_off);
            self.push(insn::mov64_imm(Reg::R5, 8));
            self.push(insn::call(Helper::Snprintf));
            // r0 = the whole line's length with its NUL, more than the room when it was cut.
            self.jump_if_imm(JmpOp::Sle, Reg::R0, 0, done);
            self.push(insn::alu64_imm(AluOp::Sub, Reg::R0, 1));
            self.push(insn::ldx(Size::DW, Reg::R1, SCRATCH, len as i16));
            self.push(insn::alu64_reg(AluOp::Add, Reg::R1, Reg::R0));
            self.push(insn::stx(Size::DW, SCRATCH, Reg::R1, len as i16));
        }
        self.bind(done);
    }

    /// Formats the address in the scratch temporary buffer with a `%pI` conversion.
    fn ip_to_str(&mut self, dst: Var, conversion: &str) {
        let off = self.scratch(dst);
        self.scratch_addr(Reg::R0, self.tmp_off);
        self.push(insn::stx(Size::DW, SCRATCH, Reg::R0, self.args_off as i16));
        self.scratch_addr(Reg::R1, off);
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.rodata_ptr(Reg::R3, conversion);
        self.scratch_addr(Reg::R4, self.args_off);
        self.push(insn::mov64_imm(Reg::R5, 8));
        self.push(insn::call(Helper::Snprintf));
    }
}

/// The kernel's comm length (`TASK_COMM_LEN`).
const COMM_LEN: u32 = 16;

/// Values whose only use is a printf argument (or, for `execname()`, an array key) later in
/// the same block, and which would be the same there: context fields, and calls about the
/// task and the CPU, which do not change while a handler runs. The use computes the value
/// instead of reading a variable, so it needs no home and no register across calls.
fn sinkable_values(func: &Function, uses: &HashMap<Var, usize>) -> HashMap<Var, InstKind> {
    let mut out = HashMap::new();
    for data in func.blocks.values() {
        let mut pending: HashMap<Var, &InstKind> = HashMap::new();
        for inst in &data.insts {
            match &inst.kind {
                InstKind::Call {
                    dst: Some(d),
                    builtin:
                        Builtin::Execname | Builtin::Pid | Builtin::Tid | Builtin::Uid | Builtin::Gid | Builtin::Cpu,
                    ..
                }
                | InstKind::LoadContext { dst: d, .. }
                    if uses.get(d) == Some(&1) =>
                {
                    pending.insert(*d, &inst.kind);
                }
                InstKind::Printf { args, .. } => {
                    out.extend(pending.iter().filter(|(v, _)| args.contains(v)).map(|(v, kind)| (*v, (*kind).clone())))
                }
                InstKind::ArrayGet { keys, .. }
                | InstKind::ArraySet { keys, .. }
                | InstKind::ArrayAdd { keys, .. }
                | InstKind::ArrayDelete { keys, .. }
                | InstKind::ArrayContains { keys, .. }
                | InstKind::StatAdd { keys, .. } => out.extend(
                    pending
                        .iter()
                        .filter(|(v, kind)| {
                            matches!(kind, InstKind::Call { builtin: Builtin::Execname, .. }) && keys.contains(v)
                        })
                        .map(|(v, kind)| (*v, (*kind).clone())),
                ),
                _ => {}
            }
        }
    }
    out
}

/// Variables whose only definition is a constant that fits an immediate.
fn constant_vars(func: &Function) -> HashMap<Var, i32> {
    let mut defs: HashMap<Var, Option<i32>> = HashMap::new();
    for inst in func.blocks.values().flat_map(|b| &b.insts) {
        for d in inst.kind.defs() {
            let value = match inst.kind {
                InstKind::Const { value, .. } => i32::try_from(value).ok(),
                _ => None,
            };
            // A second definition, even of the same constant, makes it a variable.
            defs.entry(d).and_modify(|v| *v = None).or_insert(value);
        }
    }
    defs.into_iter().filter_map(|(v, c)| Some((v, c?))).collect()
}

/// How many times each variable is read, by instructions and terminators.
fn use_counts(func: &Function) -> HashMap<Var, usize> {
    let mut uses: HashMap<Var, usize> = HashMap::new();
    for data in func.blocks.values() {
        for inst in &data.insts {
            for v in inst.kind.uses() {
                *uses.entry(v).or_default() += 1;
            }
        }
        if let Some(v) = data.term.uses() {
            *uses.entry(v).or_default() += 1;
        }
    }
    uses
}

/// Which blocks go out, in what order, and where a jump to each block lands.
struct BlockLayout {
    /// Blocks with code, entry first; a block's likely successor follows it where it can,
    /// so the jump to it disappears.
    order: Vec<Block>,
    /// Every reachable block, for liveness; `order` leaves out the empty ones that only
    /// jump or return.
    reachable: Vec<Block>,
    /// Per block, the label a jump to it goes to: past empty blocks to where they lead.
    targets: HashMap<Block, Label>,
}

impl BlockLayout {
    fn target(&self, b: Block) -> Label {
        self.targets[&b]
    }
}

/// Lays out the blocks reachable from the entry (the verifier rejects unreachable code).
/// Lowering creates blocks in source order; a trace from each block in that order follows
/// jumps and the `then` of branches, so straight-line code stays straight.
fn layout_blocks(func: &Function) -> BlockLayout {
    let mut seen = cranelift_entity::EntitySet::with_capacity(func.blocks.len());
    let mut stack: Vec<Block> = func.entry.into_iter().collect();
    while let Some(b) = stack.pop() {
        if seen.insert(b) {
            stack.extend(func.blocks[b].term.successors());
        }
    }
    let reachable: Vec<Block> = func.blocks.keys().filter(|b| seen.contains(*b)).collect();
    let mut targets = HashMap::new();
    for &b in &reachable {
        // Bounded: an empty block may jump to itself (`while (1) {}`); it then keeps its code.
        let mut at = b;
        let mut label = Label(b.as_u32());
        for _ in 0..reachable.len() {
            let data = &func.blocks[at];
            if !data.insts.is_empty() {
                label = Label(at.as_u32());
                break;
            }
            match data.term {
                Terminator::Jump(t) if t != at => at = t,
                Terminator::Return => {
                    label = EXIT_LABEL;
                    break;
                }
                _ => {
                    label = Label(at.as_u32());
                    break;
                }
            }
        }
        targets.insert(b, label);
    }
    let has_code = |b: Block| targets[&b] == Label(b.as_u32());
    let block_of = |l: Label| reachable.iter().copied().find(|b| Label(b.as_u32()) == l);
    let mut placed = cranelift_entity::EntitySet::with_capacity(func.blocks.len());
    let mut order = Vec::new();
    let entry = func.entry.and_then(|e| block_of(targets[&e]));
    for start in entry.into_iter().chain(reachable.iter().copied()) {
        let mut at = Some(start);
        while let Some(b) = at.filter(|b| has_code(*b) && !placed.contains(*b)) {
            placed.insert(b);
            order.push(b);
            let next = match func.blocks[b].term {
                Terminator::Jump(t) | Terminator::Branch { then: t, .. } => block_of(targets[&t]),
                Terminator::Return => None,
            };
            at = next;
        }
    }
    BlockLayout { order, reachable, targets }
}

/// The BPF operation of `op`; none for division and modulo, which are signed in SystemTap.
fn alu_op(op: BinOp) -> Option<AluOp> {
    Some(match op {
        BinOp::Add => AluOp::Add,
        BinOp::Sub => AluOp::Sub,
        BinOp::Mul => AluOp::Mul,
        BinOp::Shl => AluOp::Lsh,
        BinOp::Shr => AluOp::Arsh,
        BinOp::And => AluOp::And,
        BinOp::Or => AluOp::Or,
        BinOp::Xor => AluOp::Xor,
        BinOp::Div | BinOp::Mod => return None,
    })
}

/// The test that holds exactly when `op` does not.
fn negated(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Eq => CmpOp::Ne,
        CmpOp::Ne => CmpOp::Eq,
        CmpOp::Lt => CmpOp::Ge,
        CmpOp::Le => CmpOp::Gt,
        CmpOp::Gt => CmpOp::Le,
        CmpOp::Ge => CmpOp::Lt,
    }
}

fn size_of(bytes: u8) -> Size {
    match bytes {
        1 => Size::B,
        2 => Size::H,
        4 => Size::W,
        _ => Size::DW,
    }
}

fn read_helper(space: AddrSpace) -> Helper {
    match space {
        AddrSpace::User => Helper::ProbeReadUser,
        AddrSpace::Kernel => Helper::ProbeReadKernel,
    }
}

/// The jump taken when `a op b` holds, signed (SystemTap's longs are signed).
fn signed_jmp(op: CmpOp) -> JmpOp {
    match op {
        CmpOp::Eq => JmpOp::Eq,
        CmpOp::Ne => JmpOp::Ne,
        CmpOp::Lt => JmpOp::Slt,
        CmpOp::Le => JmpOp::Sle,
        CmpOp::Gt => JmpOp::Sgt,
        CmpOp::Ge => JmpOp::Sge,
    }
}

/// A SystemTap format in the dialect of the kernel's `bpf_snprintf`: every integer
/// conversion takes a 64-bit argument (`%lld`), pointers print as `0x%016llx`.
/// The kernel has no `*` width, no `#` flag and no `%o`.
pub fn kernel_format(format: &Format) -> Result<String, String> {
    let mut out = String::new();
    for piece in &format.pieces {
        let c = match piece {
            Piece::Literal(text) => {
                out.push_str(&text.replace('%', "%%"));
                continue;
            }
            Piece::Conversion(c) => c,
        };
        if c.width == Count::Arg || c.precision == Some(Count::Arg) {
            return Err("`*` widths in `sprintf`".to_string());
        }
        if c.flags.alternate {
            return Err("the `#` flag in `sprintf`".to_string());
        }
        let mut spec = String::from("%");
        for (set, flag) in [(c.flags.left, '-'), (c.flags.plus, '+'), (c.flags.space, ' '), (c.flags.zero, '0')] {
            if set {
                spec.push(flag);
            }
        }
        if let Count::Fixed(n) = c.width {
            spec.push_str(&n.to_string());
        }
        if let Some(Count::Fixed(n)) = c.precision {
            spec.push_str(&format!(".{n}"));
        }
        let conversion = match c.kind {
            ConvKind::Signed => "lld",
            ConvKind::Unsigned => "llu",
            ConvKind::HexLower => "llx",
            ConvKind::HexUpper => "llX",
            ConvKind::Str => "s",
            ConvKind::Char => "c",
            ConvKind::Pointer => {
                out.push_str("0x%016llx");
                continue;
            }
            ConvKind::Octal => return Err("`%o` in `sprintf`".to_string()),
            ConvKind::Binary | ConvKind::Memory | ConvKind::MemoryHex => {
                return Err("`%b`, `%m` and `%M` in `sprintf`".to_string())
            }
        };
        out.push_str(&spec);
        out.push_str(conversion);
    }
    Ok(out)
}

/// What a syscall tracepoint's record holds at an offset (see `ProgramContext::Syscall`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SyscallSlot {
    Number,
    Arg(usize),
    Result,
}

/// The slot at `offset` of the record of a syscall's entry, or of its `exit`; the common
/// fields before offset 8 (`common_pid`...) are not in the raw tracepoint's arguments.
fn syscall_record_slot(offset: u32, exit: bool) -> Option<SyscallSlot> {
    match (offset, exit) {
        (8, _) => Some(SyscallSlot::Number),
        (16, true) => Some(SyscallSlot::Result),
        (16.., false) if offset % 8 == 0 && offset < 16 + 8 * 6 => Some(SyscallSlot::Arg((offset as usize - 16) / 8)),
        _ => None,
    }
}

/// A syscall probe's handler reads only what `Emitter::load_syscall_slot` serves.
fn check_syscall_reads(func: &Function, exit: bool) -> Result<(), EmitError> {
    for inst in func.blocks.values().flat_map(|b| &b.insts) {
        let served = match inst.kind {
            InstKind::LoadContext { offset, .. } => syscall_record_slot(offset, exit).is_some(),
            InstKind::LoadContextStr { .. } | InstKind::LoadContextDataLoc { .. } => false,
            _ => true,
        };
        if !served {
            let what = "this field of a syscall tracepoint's record on raw_syscalls (bpftap reads the \
                        syscall's number, arguments and result there)";
            return Err(EmitError::Unsupported { what: what.into(), span: inst.span });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{syscall_record_slot, SyscallSlot};

    #[test]
    fn a_syscall_record_offset_names_its_slot() {
        // sys_enter_openat: __syscall_nr at 8, dfd at 16, filename 24, flags 32, mode 40.
        assert_eq!(syscall_record_slot(8, false), Some(SyscallSlot::Number));
        assert_eq!(syscall_record_slot(24, false), Some(SyscallSlot::Arg(1)));
        assert_eq!(syscall_record_slot(56, false), Some(SyscallSlot::Arg(5)));
        assert_eq!(syscall_record_slot(64, false), None);
        // sys_exit_openat: __syscall_nr at 8, ret at 16.
        assert_eq!(syscall_record_slot(16, true), Some(SyscallSlot::Result));
        assert_eq!(syscall_record_slot(24, true), None);
        // common_pid and the other common fields are not in the raw tracepoint's arguments.
        assert_eq!(syscall_record_slot(4, false), None);
        assert_eq!(syscall_record_slot(20, false), None);
    }
}
