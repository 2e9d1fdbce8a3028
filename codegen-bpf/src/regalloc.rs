//! Storage assignment for IR variables: liveness, live intervals and linear-scan packing.
//!
//! Input: an [`ir::Function`] and the block order the emitter will use. Output: for every
//! variable, a [`Home`]: long variables get an 8-byte stack slot, string variables a
//! string-capacity slot in the per-CPU scratch area. Variables whose live intervals do not
//! overlap share a slot, so the 512-byte stack holds handlers with many temporaries.
//!
//! Variables the emitter computes in place at their one use (see `emit`'s sunk `execname()`)
//! get no home.
//!
//! Register pressure is never an error: every variable has a memory home and the emitter
//! loads operands into scratch registers per instruction. A handler whose simultaneously
//! live longs exceed the stack is reported as [`AllocError::StackFull`] with the count.
//!
//! A copy `d = s` where `s` dies and `d` is born gives `d` the slot of `s`, so the copy
//! moves nothing. [`dead_insts`] names the instructions whose results no one reads, from
//! the same liveness.
//!
//! Invariant: two variables share a slot only if no program point has both live with
//! different values.

use std::collections::{HashMap, HashSet};

use cranelift_entity::{EntityRef, SecondaryMap};
use lang::ir::{Block, Function, InstKind, Ty, Var};

/// Where a variable lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Home {
    /// Never used: no storage.
    #[default]
    None,
    /// `r10 + offset` (offset negative).
    Stack(i16),
    /// Byte offset in the scratch area.
    Scratch(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocError {
    StackFull { live_longs: usize },
}

#[derive(Clone, Debug)]
pub struct Allocation {
    pub homes: SecondaryMap<Var, Home>,
    /// Bytes of stack used below `stack_base`.
    pub stack_bytes: u32,
    /// Bytes of scratch used for string slots.
    pub scratch_bytes: u32,
}

/// Live range of a variable over the linear instruction numbering, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Interval {
    start: u32,
    end: u32,
}

/// Assigns homes to every variable but those in `in_place`, ignoring the instructions in
/// `dead` (see [`dead_insts`]), which the emitter leaves out. Stack slots start below
/// `stack_base` (a negative offset from r10, the emitter keeps the bytes above for itself);
/// string slots are `slot_size` apart.
pub fn allocate(
    func: &Function,
    order: &[Block],
    in_place: &HashSet<Var>,
    dead: &HashSet<(Block, usize)>,
    stack_base: i16,
    stack_limit: u32,
    slot_size: u32,
) -> Result<Allocation, AllocError> {
    let (intervals, copies) = live_intervals(func, order, dead);
    // The source of a copy that ends its life where the copy begins the destination's.
    let mut coalesce: HashMap<Var, Var> = HashMap::new();
    for (dst, src, at) in copies {
        let (Some(d), Some(s)) = (intervals[dst], intervals[src]) else { continue };
        if dst != src && d.start == at && s.end == at && !in_place.contains(&src) {
            coalesce.insert(dst, src);
        }
    }
    let mut vars: Vec<(Var, Interval)> =
        intervals.iter().filter(|(v, _)| !in_place.contains(v)).filter_map(|(v, i)| i.map(|i| (v, i))).collect();
    vars.sort_by_key(|(v, i)| (i.start, v.index()));
    let mut slots: SecondaryMap<Var, u32> = SecondaryMap::new();
    let mut homes = SecondaryMap::new();
    let mut pools = [Pool::default(), Pool::default()];
    for (v, interval) in vars {
        let kind = match func.ty(v) {
            Ty::Long => 0,
            Ty::Str => 1,
        };
        // The source was placed first: it starts before the copy.
        let slot = match coalesce.get(&v) {
            Some(src) => pools[kind].take_over(slots[*src], interval),
            None => pools[kind].take(interval),
        };
        slots[v] = slot;
        homes[v] = match kind {
            0 => Home::Stack(stack_base - 8 * (slot as i16 + 1)),
            _ => Home::Scratch(slot * slot_size),
        };
    }
    let stack_bytes = pools[0].slots.len() as u32 * 8;
    if stack_bytes > stack_limit {
        return Err(AllocError::StackFull { live_longs: pools[0].slots.len() });
    }
    Ok(Allocation { homes, stack_bytes, scratch_bytes: pools[1].slots.len() as u32 * slot_size })
}

/// Slots of one kind, each remembering until when it is busy.
#[derive(Default)]
struct Pool {
    slots: Vec<u32>,
}

impl Pool {
    /// `slot` if it is free from `interval`'s start on (its last holder ends there), else
    /// any.
    fn take_over(&mut self, slot: u32, interval: Interval) -> u32 {
        if self.slots[slot as usize] <= interval.start {
            self.slots[slot as usize] = interval.end;
            return slot;
        }
        self.take(interval)
    }

    fn take(&mut self, interval: Interval) -> u32 {
        if let Some(i) = self.slots.iter().position(|busy_until| *busy_until < interval.start) {
            self.slots[i] = interval.end;
            return i as u32;
        }
        self.slots.push(interval.end);
        self.slots.len() as u32 - 1
    }
}

/// Instructions without side effects whose results nothing reads, as `(block, index)`.
pub fn dead_insts(func: &Function, order: &[Block]) -> HashSet<(Block, usize)> {
    let (_, live_out) = block_liveness(func, order);
    let mut dead = HashSet::new();
    for &b in order {
        let data = &func.blocks[b];
        let mut live = live_out[b].clone();
        if let Some(c) = data.term.uses() {
            set(&mut live, c);
        }
        for (k, inst) in data.insts.iter().enumerate().rev() {
            let defs = inst.kind.defs();
            if !inst.kind.has_side_effects() && !defs.is_empty() && defs.iter().all(|d| !is_set(&live, *d)) {
                // Its operands are not read here either.
                dead.insert((b, k));
                continue;
            }
            for d in defs {
                clear(&mut live, d);
            }
            for u in inst.kind.uses() {
                set(&mut live, u);
            }
        }
    }
    dead
}

type LiveSets = SecondaryMap<Block, Vec<u64>>;

/// The variables live into and out of each block: backward dataflow to a fixpoint.
fn block_liveness(func: &Function, order: &[Block]) -> (LiveSets, LiveSets) {
    let n = func.vars.len();
    let words = n.div_ceil(64).max(1);
    let mut live_in: SecondaryMap<Block, Vec<u64>> = SecondaryMap::with_default(vec![0; words]);
    let mut live_out: SecondaryMap<Block, Vec<u64>> = SecondaryMap::with_default(vec![0; words]);
    // Backward dataflow to a fixpoint.
    let mut changed = true;
    while changed {
        changed = false;
        for &b in order.iter().rev() {
            let data = &func.blocks[b];
            let mut out = vec![0u64; words];
            for s in data.term.successors() {
                for (o, i) in out.iter_mut().zip(&live_in[s]) {
                    *o |= i;
                }
            }
            let mut live = out.clone();
            if let Some(c) = data.term.uses() {
                set(&mut live, c);
            }
            for inst in data.insts.iter().rev() {
                for d in inst.kind.defs() {
                    clear(&mut live, d);
                }
                for u in inst.kind.uses() {
                    set(&mut live, u);
                }
            }
            if live != live_in[b] || out != live_out[b] {
                live_in[b] = live;
                live_out[b] = out;
                changed = true;
            }
        }
    }
    (live_in, live_out)
}

/// A copy `dst = src` at a position of the linear numbering.
type CopyAt = (Var, Var, u32);

/// Per-variable hull of every point where it is defined, used or live, and the copies.
fn live_intervals(
    func: &Function,
    order: &[Block],
    dead: &HashSet<(Block, usize)>,
) -> (SecondaryMap<Var, Option<Interval>>, Vec<CopyAt>) {
    let n = func.vars.len();
    let (live_in, live_out) = block_liveness(func, order);
    let mut copies = Vec::new();
    let mut intervals: SecondaryMap<Var, Option<Interval>> = SecondaryMap::with_capacity(n);
    let mut extend = |v: Var, at: u32| {
        let slot = &mut intervals[v];
        *slot = Some(match *slot {
            None => Interval { start: at, end: at },
            Some(i) => Interval { start: i.start.min(at), end: i.end.max(at) },
        });
    };
    let mut pos = 0u32;
    for &b in order {
        let data = &func.blocks[b];
        let start = pos;
        let end = pos + data.insts.len() as u32 + 1;
        for v in iter(&live_in[b]) {
            extend(v, start);
        }
        for (k, inst) in data.insts.iter().enumerate().filter(|(k, _)| !dead.contains(&(b, *k))) {
            let at = start + k as u32;
            if let InstKind::Copy { dst, src } = inst.kind {
                copies.push((dst, src, at));
            }
            for u in inst.kind.uses() {
                extend(u, at);
            }
            for d in inst.kind.defs() {
                extend(d, at);
            }
        }
        if let Some(c) = data.term.uses() {
            extend(c, end);
        }
        for v in iter(&live_out[b]) {
            extend(v, end);
        }
        pos = end + 1;
    }
    (intervals, copies)
}

fn set(bits: &mut [u64], v: Var) {
    bits[v.index() / 64] |= 1 << (v.index() % 64);
}

fn is_set(bits: &[u64], v: Var) -> bool {
    bits[v.index() / 64] & (1 << (v.index() % 64)) != 0
}

fn clear(bits: &mut [u64], v: Var) {
    bits[v.index() / 64] &= !(1 << (v.index() % 64));
}

fn iter(bits: &[u64]) -> impl Iterator<Item = Var> + '_ {
    bits.iter()
        .enumerate()
        .flat_map(|(w, word)| (0..64).filter(move |b| word & (1 << b) != 0).map(move |b| Var::new(w * 64 + b)))
}

#[cfg(test)]
mod tests {
    use lang::ir::{InstKind, Operand, Terminator};
    use lang::span::Span;

    use super::*;

    fn inst(kind: InstKind) -> lang::ir::Inst {
        lang::ir::Inst { kind, span: Span::default() }
    }

    /// Three temporaries used one after the other share one slot; two live at once do not.
    #[test]
    fn disjoint_intervals_share_slots() {
        let mut f = Function::default();
        let b = f.new_block();
        f.entry = Some(b);
        let (a, c, d) = (f.new_var(Ty::Long, None), f.new_var(Ty::Long, None), f.new_var(Ty::Long, None));
        let insts = vec![
            inst(InstKind::Const { dst: a, value: 1 }),
            inst(InstKind::Binary { op: lang::ir::BinOp::Add, dst: c, lhs: a, rhs: Operand::Imm(1) }),
            inst(InstKind::Binary { op: lang::ir::BinOp::Add, dst: d, lhs: c, rhs: Operand::Imm(1) }),
        ];
        f.blocks[b].insts = insts;
        f.blocks[b].term = Terminator::Branch { cond: d, then: b, els: b };
        let alloc = allocate(&f, &[b], &HashSet::new(), &HashSet::new(), -16, 400, 128).unwrap();
        // a and c overlap at the second instruction, c and d at the third; a and d do not.
        assert_ne!(alloc.homes[a], alloc.homes[c]);
        assert_ne!(alloc.homes[c], alloc.homes[d]);
        assert_eq!(alloc.stack_bytes, 16);
    }

    /// `b = a` where `a` dies gives `b` the slot of `a`; `a = 2` before `a = 1` is dead.
    #[test]
    fn copies_coalesce_and_overwritten_definitions_are_dead() {
        let mut f = Function::default();
        let blk = f.new_block();
        f.entry = Some(blk);
        let (a, b) = (f.new_var(Ty::Long, None), f.new_var(Ty::Long, None));
        f.blocks[blk].insts = vec![
            inst(InstKind::Const { dst: a, value: 2 }),
            inst(InstKind::Const { dst: a, value: 1 }),
            inst(InstKind::Copy { dst: b, src: a }),
        ];
        f.blocks[blk].term = Terminator::Branch { cond: b, then: blk, els: blk };
        let dead = dead_insts(&f, &[blk]);
        assert_eq!(dead, HashSet::from([(blk, 0)]));
        let alloc = allocate(&f, &[blk], &HashSet::new(), &dead, -16, 400, 128).unwrap();
        assert_eq!(alloc.homes[a], alloc.homes[b]);
        assert_eq!(alloc.stack_bytes, 8);
    }

    /// A long live across a loop keeps its slot for the whole loop.
    #[test]
    fn loop_keeps_variable_live() {
        let mut f = Function::default();
        let (entry, head, body, exit) = (f.new_block(), f.new_block(), f.new_block(), f.new_block());
        f.entry = Some(entry);
        let (i, t) = (f.new_var(Ty::Long, None), f.new_var(Ty::Long, None));
        f.blocks[entry].insts = vec![inst(InstKind::Const { dst: i, value: 0 })];
        f.blocks[entry].term = Terminator::Jump(head);
        f.blocks[head].insts =
            vec![inst(InstKind::Compare { op: lang::ir::CmpOp::Lt, dst: t, lhs: i, rhs: Operand::Imm(10) })];
        f.blocks[head].term = Terminator::Branch { cond: t, then: body, els: exit };
        f.blocks[body].insts =
            vec![inst(InstKind::Binary { op: lang::ir::BinOp::Add, dst: i, lhs: i, rhs: Operand::Imm(1) })];
        f.blocks[body].term = Terminator::Jump(head);
        let alloc = allocate(&f, &[entry, head, body, exit], &HashSet::new(), &HashSet::new(), -16, 400, 128).unwrap();
        assert_ne!(alloc.homes[i], alloc.homes[t]);
    }
}
