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
//! The submodules each do one job for the [`Emitter`]: `fixup` (labels, jumps, the order of
//! blocks), `sink` (values computed at their one use), `arrays`, `stats`, `foreach`,
//! `strings`, `syscall` and `regex_match`.
//!
//! Invariant: every memory access has a constant offset within its region, or a variable
//! offset the verifier can bound. That is what makes the verifier accept what emits; where
//! it still refuses, the runtime names the script line of the refused instruction from the
//! spans recorded here.

mod arrays;
mod fixup;
mod foreach;
mod regex_match;
mod sink;
mod stats;
mod strings;
mod syscall;

use fixup::{layout_blocks, BlockLayout};
use foreach::{key_list_offsets, MatchOp};
use sink::{constant_vars, sinkable_values, use_counts};
use stats::{Fold, VarianceStep, VARIANCE_WORDS};
use syscall::{check_syscall_reads, syscall_record_slot, SyscallSlot};

use std::collections::{HashMap, HashSet};

use lang::arch::Arch;
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

/// Where a machine's `struct pt_regs` keeps what handlers read.
pub(crate) struct PtRegs {
    /// The argument registers of a function call.
    args: [i16; 6],
    /// The register holding a function's return value.
    ret: i16,
    /// A syscall's six arguments as the task entered the kernel, and the syscall's number.
    syscall_args: [i16; 6],
    syscall_nr: i16,
    /// The instruction pointer.
    ip: i16,
    /// Where the privilege level is told, its mask, and the masked value of user mode.
    mode: (i16, i32, i32),
}

impl PtRegs {
    pub(crate) fn of(arch: Arch) -> &'static PtRegs {
        match arch {
            Arch::X86_64 => &X86_64_PT_REGS,
            Arch::Arm64 => &ARM64_PT_REGS,
        }
    }
}

/// x86-64: di, si, dx, cx, r8, r9 carry a call's arguments, ax its result; a syscall's
/// fourth argument is in r10, not cx, and its number in orig_ax; cs's two low bits are 3 in
/// user mode.
const X86_64_PT_REGS: PtRegs = PtRegs {
    args: [112, 104, 96, 88, 72, 64],
    ret: 80,
    syscall_args: [112, 104, 96, 56, 72, 64],
    syscall_nr: 120,
    ip: 128,
    mode: (136, 3, 3),
};

/// arm64: `struct pt_regs` starts with x0..x30; x0..x5 carry the arguments (at a syscall's
/// entry x0 still holds the first), x0 the result; then sp, pc, pstate (mode bits 0 in
/// EL0), orig_x0, syscallno.
const ARM64_PT_REGS: PtRegs = PtRegs {
    args: [0, 8, 16, 24, 32, 40],
    ret: 0,
    syscall_args: [0, 8, 16, 24, 32, 40],
    syscall_nr: 280,
    ip: 256,
    mode: (264, 0xf, 0),
};

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
    let alloc = regalloc::allocate(func, &blocks.reachable, &in_place, STACK_BASE, STACK_LIMIT, slot_size)
        .map_err(|regalloc::AllocError::StackFull { live_longs }| EmitError::StackFull { live_longs, span })?;
    // Scratch: string slots, one slot of slack (see `concat`), a string temporary, the
    // snprintf argument array, a 16-byte buffer for addresses, and the key buffer when
    // the stack has no room for it.
    let str_tmp_off = alloc.scratch_bytes + slot_size;
    let args_off = str_tmp_off + slot_size;
    let tmp_off = args_off + SNPRINTF_MAX_ARGS * 8;
    let key_off = tmp_off + 16;
    let max_key = program.arrays.values().map(|a| layout::key_layout(a).1).max().unwrap_or(0).div_ceil(8) * 8;
    let insts = || func.blocks.values().flat_map(|b| &b.insts).map(|i| &i.kind);
    // `@variance` folds the CPUs' shares into words just past its key (see `stat_variance`).
    let takes_variance = insts().any(|i| matches!(i, InstKind::StatGet { op: StatOp::Variance, .. }));
    let max_key = if takes_variance { max_key + VARIANCE_WORDS * 8 } else { max_key };
    // The loop iterator's 8 bytes, below the variables, where the handler has kernel loops
    // counted by the kernel's iterator (see `Emitter::iterator`).
    let loop_nests = insts().filter(|i| matches!(i, InstKind::LoopStart)).count();
    let iterator_bytes = if loop_nests > 0 { 8 } else { 0 };
    if alloc.stack_bytes + iterator_bytes > STACK_LIMIT {
        let live_longs = alloc.stack_bytes as usize / 8;
        return Err(EmitError::StackFull { live_longs, span });
    }
    let iterator = (iterator_bytes > 0).then(|| STACK_BASE - (alloc.stack_bytes + iterator_bytes) as i16);
    let vars_bytes = alloc.stack_bytes + iterator_bytes;
    let (key, frames_off) = if vars_bytes + max_key <= STACK_LIMIT {
        (Buf { base: Reg::R10, off: STACK_BASE - (vars_bytes + max_key) as i16 }, key_off)
    } else {
        (Buf::scratch(key_off), key_off + max_key)
    };
    // The frames of a backtrace, last, only for a handler that walks the stack.
    let walks_stack = insts().any(|i| matches!(i, InstKind::Call { builtin: Builtin::Backtrace { .. }, .. }));
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
    // Where the second pass keeps the key buffer's address (see `Emitter::key_in`).
    let mut key_in = None;
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
            key: key_in.map_or(key, |(r, _)| Buf { base: r, off: 0 }),
            key_in,
            key_addrs: 0,
            iterator,
            loop_nests,
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
        e.handler(&blocks, &uses, exit_value)?;
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
        key_in = e.key_register().map(|r| (r, key.off));
        read_back = Some(e.read_back);
    }
}

/// The label of the common exit; block labels are the block numbers.
const EXIT_LABEL: Label = Label(u32::MAX);
/// The exit of the prologue's early returns: past the loop iterator's destruction, as they
/// leave before it is made.
const ENTRY_EXIT_LABEL: Label = Label(u32::MAX - 1);

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
    /// The stack offset of the handler's `struct bpf_iter_num`, where its kernel loops count
    /// their budget with it ([`lang::ir::Program::loop_iterator`]). The prologue makes it,
    /// so that every way to the exit, which destroys it, has one; each loop nest starts it
    /// afresh ([`InstKind::LoopStart`]), unless it is the handler's only one, which runs at
    /// most once and takes the prologue's.
    iterator: Option<i16>,
    /// The handler's [`InstKind::LoopStart`]s.
    loop_nests: usize,
    /// A callee-saved register the prologue sets to the key buffer's address on the stack
    /// (`r10 + offset`), when the first pass took that address three times or more and left
    /// the register unused: each `r = key` is then one instruction, not two.
    key_in: Option<(Reg, i16)>,
    /// How many times `addr` took the key buffer's address.
    key_addrs: u32,
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

/// The largest per-CPU map value the kernel allocates (`PCPU_MIN_UNIT_SIZE`): the bound of
/// the scratch area.
const SCRATCH_MAX: u32 = 32 * 1024;
impl Emitter<'_> {
    fn handler(&mut self, blocks: &BlockLayout, uses: &HashMap<Var, usize>, exit_value: i32) -> Result<(), EmitError> {
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
                if fused.is_none() || n + 1 < data.insts.len() {
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
        if let Some(it) = self.iterator {
            self.iterator_call(it, |iterator| iterator.destroy);
        }
        self.bind(ENTRY_EXIT_LABEL);
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

    fn prologue(&mut self) {
        // A handler that does nothing needs no filter.
        let filter = match self.args {
            ProgramContext::Syscall { exit, only: Some(nr) } if self.insts().next().is_some() => Some((exit, nr)),
            _ => None,
        };
        if let Some((false, nr)) = filter {
            // The raw tracepoint's `long id`.
            self.push(insn::ldx(Size::DW, Reg::R0, Reg::R1, 8));
            self.jump_if_imm(JmpOp::Ne, Reg::R0, nr as i32, ENTRY_EXIT_LABEL);
        }
        // The rare paths need the globals: loading their address once here is smaller than
        // on each of two or more of them.
        let (scratch, globals) = (self.uses_scratch(), self.uses_globals() || self.rare_globals_sites() >= 2);
        if self.guard_exit {
            // if (globals.exited) return, through the globals register when it is loaded anyway.
            let base = if globals { GLOBALS } else { Reg::R0 };
            self.globals_ptr(base);
            self.push(insn::ldx(Size::DW, Reg::R0, base, self.globals.exited as i16));
            self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, ENTRY_EXIT_LABEL);
        }
        let exit_filter = matches!(filter, Some((true, _)));
        if self.func.reads_context() || exit_filter {
            self.push(insn::mov64_reg(CTX, Reg::R1));
        }
        if let Some((true, nr)) = filter {
            // At the exit the number is in the registers, read through a helper; compared as
            // the `int` the kernel takes it as (see `load_context`).
            self.load_syscall_slot(SyscallSlot::Number, true);
            self.fixups.push((self.insns.len(), ENTRY_EXIT_LABEL));
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
            self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, ENTRY_EXIT_LABEL);
            self.push(insn::mov64_reg(SCRATCH, Reg::R0));
        }
        if globals && !self.guard_exit {
            self.globals_ptr(GLOBALS);
        }
        if let Some((r, off)) = self.key_in {
            self.push(insn::mov64_reg(r, Reg::R10));
            self.push(insn::alu64_imm(AluOp::Add, r, off as i32));
        }
        if let Some(it) = self.iterator {
            self.iterator_new(it, if self.loop_nests == 1 { self.program.loop_budget as i32 } else { 0 });
        }
    }

    /// `bpf_iter_num_new(it, 0, end)`: an iterator at stack offset `it` that yields `end`
    /// times.
    fn iterator_new(&mut self, it: i16, end: i32) {
        self.push(insn::mov64_imm(Reg::R2, 0));
        self.push(insn::mov64_imm(Reg::R3, end));
        self.iterator_call(it, |iterator| iterator.new);
    }

    /// Calls the iterator function `which` picks on the iterator at stack offset `it`.
    fn iterator_call(&mut self, it: i16, which: fn(&lang::ir::LoopIterator) -> u32) {
        let iterator = self.program.loop_iterator.as_ref().expect("a handler with an iterator has its functions");
        self.push(insn::mov64_reg(Reg::R1, Reg::R10));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, it as i32));
        self.push(insn::call_kfunc(which(iterator)));
    }

    /// Where a loop nest starts: the iterator afresh, unless the prologue's is this one's.
    fn loop_start(&mut self) {
        let it = self.iterator.expect("set for a handler with LoopStart");
        if self.loop_nests > 1 {
            self.iterator_call(it, |iterator| iterator.destroy);
            self.iterator_new(it, self.program.loop_budget as i32);
        }
    }

    /// One iteration: `dst` is the iterator's next value, null once the budget is spent.
    fn loop_step(&mut self, dst: Var) {
        let it = self.iterator.expect("set for a handler with LoopStart");
        self.iterator_call(it, |iterator| iterator.next);
        self.store(dst, Reg::R0);
    }

    /// After the first pass: a callee-saved register for the key buffer's address (see
    /// `key_in`). Not with callbacks, which find their results at offsets from the key on
    /// the stack, and not r7, which says the scratch area is loaded.
    fn key_register(&self) -> Option<Reg> {
        if self.key.base != Reg::R10 || !self.callbacks.is_empty() || self.key_addrs < 3 {
            return None;
        }
        [CTX, GLOBALS, RECORD].into_iter().find(|r| !self.insns.iter().any(|i| i.dst == r.0 || i.src == r.0))
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
        self.forget(v);
        if let Some(slot) = self.cached.get_mut(r.0 as usize) {
            *slot = Some(v);
        }
    }

    /// No register holds `v` any more: its home was written behind their back.
    fn forget(&mut self, v: Var) {
        for c in self.cached.iter_mut() {
            if *c == Some(v) {
                *c = None;
            }
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
        self.key_addrs += u32::from(buf == self.key);
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
                let in_home = |e: &mut Self| match e.args {
                    ProgramContext::Syscall { exit, .. } => e.read_syscall_slot_home(*dst, *offset, *size, exit),
                    _ => false,
                };
                if !self.sunk.contains_key(dst) && !in_home(self) {
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
            InstKind::LoopStart => self.loop_start(),
            InstKind::LoopStep { dst } => self.loop_step(*dst),
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
        // No zeroing first: on a fault the helper zeroes the `size` bytes it was to write,
        // the bytes loaded below.
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

    /// The `struct pt_regs` of the machine compiled for.
    fn regs(&self) -> &'static PtRegs {
        PtRegs::of(self.program.arch)
    }

    fn load_arg(&mut self, dst: Var, index: u32) -> Result<(), EmitError> {
        let off = match self.args {
            ProgramContext::Args { .. } => 8 * index as i16,
            ProgramContext::PtRegs { ret: true } => {
                return Err(self.unsupported("an argument in a kretprobe (it needs fexit)"))
            }
            ProgramContext::PtRegs { ret: false } => match self.regs().args.get(index as usize) {
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
            ProgramContext::PtRegs { .. } => self.regs().ret,
            ProgramContext::Record | ProgramContext::PerfEvent | ProgramContext::Syscall { .. } => {
                return Err(self.unsupported("`$return` outside a function probe"))
            }
        };
        self.push(insn::ldx(Size::DW, Reg::R0, CTX, off));
        self.store(dst, Reg::R0);
        Ok(())
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
            | Builtin::SprintSyms
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
                        self.push(insn::ldx(Size::DW, Reg::R0, CTX, self.regs().ip))
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

    /// r0 = `uaddr()`: the user instruction pointer of the interrupted or current task.
    fn uaddr(&mut self) {
        let done = self.new_label();
        if matches!(self.args, ProgramContext::PtRegs { .. } | ProgramContext::PerfEvent) {
            // Interrupted in user mode: the context's registers are the user's.
            let (offset, mask, user) = self.regs().mode;
            let kernel_mode = self.new_label();
            self.push(insn::ldx(Size::DW, Reg::R1, CTX, offset));
            self.push(insn::alu64_imm(AluOp::And, Reg::R1, mask));
            self.jump_if_imm(JmpOp::Ne, Reg::R1, user, kernel_mode);
            self.push(insn::ldx(Size::DW, Reg::R0, CTX, self.regs().ip));
            self.jump(done);
            self.bind(kernel_mode);
        }
        // The registers the task entered the kernel with (zeros for a kernel thread).
        self.push(insn::call(Helper::GetCurrentTaskBtf));
        self.push(insn::mov64_reg(Reg::R1, Reg::R0));
        self.push(insn::call(Helper::TaskPtRegs));
        self.push(insn::ldx(Size::DW, Reg::R0, Reg::R0, self.regs().ip));
        self.bind(done);
    }

    /// r0 = `user_mode()`: whether the probe interrupted user mode.
    fn user_mode(&mut self) {
        match self.args {
            ProgramContext::PtRegs { .. } | ProgramContext::PerfEvent => {
                let (offset, mask, user) = self.regs().mode;
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
}

/// The kernel's comm length (`TASK_COMM_LEN`).
const COMM_LEN: u32 = 16;

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
