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
//! A copy `d = s` after which the two hold the same value wherever both are live (see
//! `coalescable_copies`) gives them one slot, so the copy moves nothing. Liveness is
//! `lang::liveness`'s, the one `lang::optimize` removed dead instructions by.
//!
//! Invariant: two variables share a slot only if no program point has both live with
//! different values.

use std::collections::{HashMap, HashSet};

use cranelift_entity::{EntityRef, SecondaryMap};
use lang::ir::{Block, Function, InstKind, Ty, Var};
use lang::liveness::block_liveness;

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

/// Assigns homes to every variable but those in `in_place`. Stack slots start below
/// `stack_base` (a negative offset from r10, the emitter keeps the bytes above for itself);
/// string slots are `slot_size` apart.
pub fn allocate(
    func: &Function,
    order: &[Block],
    in_place: &HashSet<Var>,
    stack_base: i16,
    stack_limit: u32,
    slot_size: u32,
) -> Result<Allocation, AllocError> {
    let (intervals, copies) = live_intervals(func, order);
    // Variables joined by coalesced copies share one slot, for the hull of their intervals.
    let mut leader: HashMap<Var, Var> = HashMap::new();
    let find = |leader: &HashMap<Var, Var>, mut v: Var| {
        while let Some(l) = leader.get(&v) {
            v = *l;
        }
        v
    };
    // Each group's members. A copy is safe for its own two variables; joining their groups
    // must not put two others in one slot whose intervals overlap: `d = s` in one branch
    // and `d = u` in the other would give `s` and `u`, both live before the branch with
    // different values, one slot.
    let mut members: HashMap<Var, Vec<Var>> = HashMap::new();
    let overlap = |a: Var, b: Var| match (intervals[a], intervals[b]) {
        (Some(x), Some(y)) => x.start <= y.end && y.start <= x.end,
        _ => false,
    };
    for (dst, src) in coalescable_copies(func, order, &intervals, &copies) {
        if in_place.contains(&dst) || in_place.contains(&src) || func.ty(dst) != func.ty(src) {
            continue;
        }
        let (d, s) = (find(&leader, dst), find(&leader, src));
        if d == s {
            continue;
        }
        let (dm, sm) = (members.remove(&d).unwrap_or_else(|| vec![d]), members.remove(&s).unwrap_or_else(|| vec![s]));
        let clash = dm.iter().any(|&a| sm.iter().any(|&b| (a, b) != (dst, src) && overlap(a, b)));
        if clash {
            members.insert(d, dm);
            members.insert(s, sm);
            continue;
        }
        leader.insert(d, s);
        members.insert(s, sm.into_iter().chain(dm).collect());
    }
    let mut groups: HashMap<Var, Interval> = HashMap::new();
    for (v, interval) in intervals.iter().filter(|(v, _)| !in_place.contains(v)) {
        if let Some(i) = interval {
            groups
                .entry(find(&leader, v))
                .and_modify(|g| *g = Interval { start: g.start.min(i.start), end: g.end.max(i.end) })
                .or_insert(*i);
        }
    }
    let mut groups: Vec<(Var, Interval)> = groups.into_iter().collect();
    groups.sort_by_key(|(v, i)| (i.start, v.index()));
    let mut group_homes: HashMap<Var, Home> = HashMap::new();
    let mut pools = [Pool::default(), Pool::default()];
    for (v, interval) in groups {
        let kind = match func.ty(v) {
            Ty::Long => 0,
            Ty::Str => 1,
        };
        let slot = pools[kind].take(interval);
        group_homes.insert(
            v,
            match kind {
                0 => Home::Stack(stack_base - 8 * (slot as i16 + 1)),
                _ => Home::Scratch(slot * slot_size),
            },
        );
    }
    let mut homes = SecondaryMap::new();
    for (v, interval) in intervals.iter() {
        if interval.is_some() && !in_place.contains(&v) {
            homes[v] = group_homes[&find(&leader, v)];
        }
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
    fn take(&mut self, interval: Interval) -> u32 {
        if let Some(i) = self.slots.iter().position(|busy_until| *busy_until < interval.start) {
            self.slots[i] = interval.end;
            return i as u32;
        }
        self.slots.push(interval.end);
        self.slots.len() as u32 - 1
    }
}

/// Copies `dst = src` after which both may share a slot, because wherever both are live
/// they hold the same value:
/// - `src` dies at the copy and `dst` is born there; or
/// - each has one definition, `src`'s earlier in the copy's block, and nothing reads `dst`
///   between the two: `src` never changes after the copy without the copy running again
///   right after.
fn coalescable_copies(
    func: &Function,
    order: &[Block],
    intervals: &SecondaryMap<Var, Option<Interval>>,
    copies: &[CopyAt],
) -> Vec<(Var, Var)> {
    let mut def_counts: HashMap<Var, usize> = HashMap::new();
    for &b in order {
        for inst in &func.blocks[b].insts {
            for d in inst.kind.defs() {
                *def_counts.entry(d).or_default() += 1;
            }
        }
    }
    let mut out = Vec::new();
    for &(dst, src, at) in copies {
        if let (Some(d), Some(s)) = (intervals[dst], intervals[src]) {
            if dst != src && d.start == at && s.end == at {
                out.push((dst, src));
            }
        }
    }
    for &b in order {
        // Where in this block single-definition variables were defined, and each variable
        // last read.
        let mut defined_at: HashMap<Var, usize> = HashMap::new();
        let mut last_read: HashMap<Var, usize> = HashMap::new();
        for (k, inst) in func.blocks[b].insts.iter().enumerate() {
            if let InstKind::Copy { dst, src } = inst.kind {
                let single = |v: Var| def_counts.get(&v) == Some(&1);
                let unread_since_src = |def: &usize| last_read.get(&dst).is_none_or(|r| r < def);
                if dst != src && single(dst) && single(src) && defined_at.get(&src).is_some_and(unread_since_src) {
                    out.push((dst, src));
                }
            }
            for u in inst.kind.uses() {
                last_read.insert(u, k);
            }
            for d in inst.kind.defs() {
                if def_counts.get(&d) == Some(&1) {
                    defined_at.insert(d, k);
                }
            }
        }
    }
    out
}

/// A copy `dst = src` at a position of the linear numbering.
type CopyAt = (Var, Var, u32);

/// Per-variable hull of every point where it is defined, used or live, and the copies.
fn live_intervals(func: &Function, order: &[Block]) -> (SecondaryMap<Var, Option<Interval>>, Vec<CopyAt>) {
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
        for v in live_in[b].iter() {
            extend(v, start);
        }
        for (k, inst) in data.insts.iter().enumerate() {
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
        for v in live_out[b].iter() {
            extend(v, end);
        }
        pos = end + 1;
    }
    (intervals, copies)
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
        let alloc = allocate(&f, &[b], &HashSet::new(), -16, 400, 128).unwrap();
        // a and c overlap at the second instruction, c and d at the third; a and d do not.
        assert_ne!(alloc.homes[a], alloc.homes[c]);
        assert_ne!(alloc.homes[c], alloc.homes[d]);
        assert_eq!(alloc.stack_bytes, 16);
    }

    /// `b = a` where `a` dies gives `b` the slot of `a`.
    #[test]
    fn copies_coalesce() {
        let mut f = Function::default();
        let blk = f.new_block();
        f.entry = Some(blk);
        let (a, b) = (f.new_var(Ty::Long, None), f.new_var(Ty::Long, None));
        f.blocks[blk].insts = vec![inst(InstKind::Const { dst: a, value: 1 }), inst(InstKind::Copy { dst: b, src: a })];
        f.blocks[blk].term = Terminator::Branch { cond: b, then: blk, els: blk };
        let alloc = allocate(&f, &[blk], &HashSet::new(), -16, 400, 128).unwrap();
        assert_eq!(alloc.homes[a], alloc.homes[b]);
        assert_eq!(alloc.stack_bytes, 8);
    }

    /// `b = a`, both set once and both read later, share a slot; not when `b` is read
    /// between `a`'s definition and the copy (in a loop it still holds its old value there).
    #[test]
    fn single_definition_copies_share_a_slot() {
        let check = |read_b_first: bool| {
            let mut f = Function::default();
            let blk = f.new_block();
            f.entry = Some(blk);
            let (a, b, t, u) = (
                f.new_var(Ty::Long, None),
                f.new_var(Ty::Long, None),
                f.new_var(Ty::Long, None),
                f.new_var(Ty::Long, None),
            );
            let mut insts = vec![inst(InstKind::Const { dst: a, value: 1 })];
            if read_b_first {
                insts.push(inst(InstKind::Binary { op: lang::ir::BinOp::Add, dst: t, lhs: b, rhs: Operand::Imm(1) }));
            }
            insts.push(inst(InstKind::Copy { dst: b, src: a }));
            insts.push(inst(InstKind::Binary { op: lang::ir::BinOp::Add, dst: u, lhs: a, rhs: Operand::Var(b) }));
            f.blocks[blk].insts = insts;
            f.blocks[blk].term = Terminator::Branch { cond: u, then: blk, els: blk };
            let alloc = allocate(&f, &[blk], &HashSet::new(), -16, 400, 128).unwrap();
            alloc.homes[a] == alloc.homes[b]
        };
        assert!(check(false));
        assert!(!check(true));
    }

    /// `s = t` (both set once: one value) and `d = s` where `s` dies may each share a slot,
    /// but joined they would put `d` in `t`'s: after `d` changes, `t`, still live, would
    /// read `d`'s value.
    #[test]
    fn joined_copies_keep_a_changed_copy_apart() {
        let mut f = Function::default();
        let blk = f.new_block();
        f.entry = Some(blk);
        let var = |f: &mut Function| f.new_var(Ty::Long, None);
        let (t, s, d, u) = (var(&mut f), var(&mut f), var(&mut f), var(&mut f));
        let add = |dst, lhs, rhs| inst(InstKind::Binary { op: lang::ir::BinOp::Add, dst, lhs, rhs });
        f.blocks[blk].insts = vec![
            inst(InstKind::Const { dst: t, value: 1 }),
            inst(InstKind::Copy { dst: s, src: t }),
            inst(InstKind::Copy { dst: d, src: s }),
            add(d, d, Operand::Imm(1)),
            add(u, t, Operand::Var(d)),
        ];
        f.blocks[blk].term = Terminator::Branch { cond: u, then: blk, els: blk };
        let alloc = allocate(&f, &[blk], &HashSet::new(), -16, 400, 128).unwrap();
        assert_ne!(alloc.homes[d], alloc.homes[t]);
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
        let alloc = allocate(&f, &[entry, head, body, exit], &HashSet::new(), -16, 400, 128).unwrap();
        assert_ne!(alloc.homes[i], alloc.homes[t]);
    }
}
