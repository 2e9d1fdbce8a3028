//! IR-to-IR clean-ups run by `lower` on every handler.
//!
//! Dead-code elimination: an instruction without side effects whose results are dead where
//! it writes them (by [`crate::liveness`]: unread, or overwritten before any read) is
//! removed, and so is `x = x + 1` where that is x's only read, and a branch whose ways
//! both lead, through blocks left empty, to the same block becomes a jump (jumps skip
//! empty blocks); repeatedly, so
//! alias variables a probe never uses (`argstr = sprintf(...)` of `syscall.connect`, with
//! the tapset functions' branches it inlines) cost nothing at run time, as in SystemTap.
//! The code generator emits the instructions left, all of them.
//!
//! Jump threading: a jump into blocks that only copy and compare, and end in a branch the
//! values known at the jump decide (`af = -1` then `if (af == 2)`, the way inlined tapset
//! functions return constants), goes straight to where the branch leads, with the copies
//! and compares on its way repeated before it; dead-code elimination then removes what
//! nothing reads. Blocks on a cycle are not threaded through, so a loop keeps its one way in.
//!
//! Invariant: the observable behaviour of the handler is unchanged, and the result still
//! passes `ir::verify`.

use std::collections::HashMap;

use cranelift_entity::{PrimaryMap, SecondaryMap};

use crate::ir::{Block, CmpOp, FmtId, Function, Inst, InstKind, Operand, Program, Terminator, Var};
use crate::liveness::block_liveness;

pub fn run(func: &mut Function) {
    eliminate_dead_code(func);
    while thread_jumps(func) {
        eliminate_dead_code(func);
    }
}

/// Blocks threaded through at most, and instructions repeated at most, per jump.
const THREAD_BLOCKS: usize = 16;
const THREAD_INSTS: usize = 16;

/// Threads every jump whose way on a known branch decides (see the module's comment).
fn thread_jumps(func: &mut Function) -> bool {
    let on_cycle = blocks_on_cycles(func);
    let mut changed = false;
    for b in func.blocks.keys().collect::<Vec<_>>() {
        let Terminator::Jump(first) = func.blocks[b].term else { continue };
        let mut known = HashMap::new();
        for inst in &func.blocks[b].insts {
            step(&mut known, &inst.kind);
        }
        let (mut at, mut copied, mut decided) = (first, Vec::new(), None);
        for _ in 0..THREAD_BLOCKS {
            if at == b || on_cycle[at] {
                break;
            }
            let data = &func.blocks[at];
            if copied.len() + data.insts.len() > THREAD_INSTS
                || !data.insts.iter().all(|i| {
                    matches!(i.kind, InstKind::Const { .. } | InstKind::Copy { .. } | InstKind::Compare { .. })
                })
            {
                break;
            }
            for inst in &data.insts {
                step(&mut known, &inst.kind);
            }
            copied.extend(data.insts.iter().cloned());
            at = match data.term {
                Terminator::Jump(next) => next,
                Terminator::Branch { cond, then, els } => match known.get(&cond) {
                    Some(&value) => {
                        let to = if value != 0 { then } else { els };
                        decided = Some((copied.len(), to));
                        to
                    }
                    None => break,
                },
                Terminator::Return => break,
            };
        }
        if let Some((n, to)) = decided {
            copied.truncate(n);
            func.blocks[b].insts.extend(copied);
            func.blocks[b].term = Terminator::Jump(to);
            changed = true;
        }
    }
    changed
}

/// What `kind` leaves known of the long values in `known`.
fn step(known: &mut HashMap<Var, i64>, kind: &InstKind) {
    let value = match *kind {
        InstKind::Const { value, .. } => Some(value),
        InstKind::Copy { src, .. } => known.get(&src).copied(),
        InstKind::Compare { op, lhs, rhs, .. } => {
            let rhs = match rhs {
                Operand::Imm(v) => Some(v),
                Operand::Var(v) => known.get(&v).copied(),
            };
            known.get(&lhs).zip(rhs).map(|(&l, r)| i64::from(compare(op, l, r)))
        }
        _ => None,
    };
    for d in kind.defs() {
        known.remove(&d);
    }
    if let (Some(d), Some(v)) = (kind.def(), value) {
        known.insert(d, v);
    }
}

/// `l op r` on longs, signed, as the code generator compares them.
fn compare(op: CmpOp, l: i64, r: i64) -> bool {
    match op {
        CmpOp::Eq => l == r,
        CmpOp::Ne => l != r,
        CmpOp::Lt => l < r,
        CmpOp::Le => l <= r,
        CmpOp::Gt => l > r,
        CmpOp::Ge => l >= r,
    }
}

/// The blocks from which the block itself can be reached again.
fn blocks_on_cycles(func: &Function) -> SecondaryMap<Block, bool> {
    let succs = |b: Block| func.blocks[b].term.successors();
    let mut on_cycle = SecondaryMap::new();
    for start in func.blocks.keys() {
        let (mut seen, mut work) = (SecondaryMap::<Block, bool>::new(), succs(start));
        while let Some(b) = work.pop() {
            if b == start {
                on_cycle[start] = true;
                break;
            }
            if !std::mem::replace(&mut seen[b], true) {
                work.extend(succs(b));
            }
        }
    }
    on_cycle
}

/// Drops the formats no instruction uses any more (a dead `sprintf`'s), renumbering the rest
/// in order: they would cost `.rodata` and show in `-p3`.
pub fn drop_unused_formats(program: &mut Program) {
    fn each_format(program: &mut Program, mut f: impl FnMut(&mut FmtId)) {
        for handler in &mut program.handlers {
            for data in handler.func.blocks.values_mut() {
                for inst in &mut data.insts {
                    if let InstKind::Printf { fmt, .. } | InstKind::Sprintf { fmt, .. } = &mut inst.kind {
                        f(fmt);
                    }
                }
            }
        }
    }
    let mut used: SecondaryMap<FmtId, bool> = SecondaryMap::new();
    each_format(program, |fmt| used[*fmt] = true);
    let mut kept = PrimaryMap::new();
    let mut renumbered: SecondaryMap<FmtId, Option<FmtId>> = SecondaryMap::new();
    for (id, decl) in std::mem::take(&mut program.formats) {
        if used[id] {
            renumbered[id] = Some(kept.push(decl));
        }
    }
    program.formats = kept;
    each_format(program, |fmt| *fmt = renumbered[*fmt].expect("a used format is kept"));
}

pub fn eliminate_dead_code(func: &mut Function) {
    while remove_dead_writes(func) | remove_self_updates(func) | collapse_branches(func) {}
}

/// A branch both of whose ways reach the same block through empty blocks becomes a jump
/// there: the test decides nothing (what was computed on the ways was dead). A jump to an
/// empty block goes straight on to where that leads.
fn collapse_branches(func: &mut Function) -> bool {
    // Where `start` leads through empty blocks; itself on a cycle of empty blocks (`for (;;) {}`).
    let through_empty = |func: &Function, start: Block| {
        let mut b = start;
        for _ in 0..func.blocks.len() {
            match func.blocks[b].term {
                Terminator::Jump(next) if func.blocks[b].insts.is_empty() => b = next,
                _ => return b,
            }
        }
        start
    };
    let mut changed = false;
    for b in func.blocks.keys().collect::<Vec<_>>() {
        match func.blocks[b].term {
            Terminator::Branch { then, els, .. } => {
                let to = through_empty(func, then);
                if to == through_empty(func, els) {
                    func.blocks[b].term = Terminator::Jump(to);
                    changed = true;
                }
            }
            Terminator::Jump(to) => {
                let past = through_empty(func, to);
                if past != to && past != b {
                    func.blocks[b].term = Terminator::Jump(past);
                    changed = true;
                }
            }
            Terminator::Return => {}
        }
    }
    changed
}

/// The blocks reachable from the entry in reverse postorder, in which a backward dataflow
/// (walking it backward) settles in a round or two.
fn reverse_postorder(func: &Function) -> Vec<Block> {
    let mut post = Vec::with_capacity(func.blocks.len());
    let mut seen: SecondaryMap<Block, bool> = SecondaryMap::with_capacity(func.blocks.len());
    // Each block with the successors it has yet to visit.
    let mut stack: Vec<(Block, Vec<Block>)> = Vec::new();
    if let Some(entry) = func.entry {
        seen[entry] = true;
        stack.push((entry, func.blocks[entry].term.successors()));
    }
    while let Some((b, next)) = stack.last_mut() {
        match next.pop() {
            Some(s) if !seen[s] => {
                seen[s] = true;
                let succs = func.blocks[s].term.successors();
                stack.push((s, succs));
            }
            Some(_) => {}
            None => {
                post.push(*b);
                stack.pop();
            }
        }
    }
    post.reverse();
    post
}

/// Removes the side-effect-free instructions whose every result is dead after them.
fn remove_dead_writes(func: &mut Function) -> bool {
    // Blocks no longer reachable (the ways of a collapsed branch) are left as they are.
    let order = reverse_postorder(func);
    let (_, live_out) = block_liveness(func, &order);
    let mut removed = false;
    for b in order {
        let data = &mut func.blocks[b];
        let mut live = live_out[b].clone();
        if let Some(c) = data.term.uses() {
            live.insert(c);
        }
        let mut keep = vec![true; data.insts.len()];
        for (k, inst) in data.insts.iter().enumerate().rev() {
            let defs = inst.kind.defs();
            if !inst.kind.has_side_effects() && !defs.is_empty() && defs.iter().all(|d| !live.contains(*d)) {
                // Its operands are not read here either.
                keep[k] = false;
                removed = true;
                continue;
            }
            for d in defs {
                live.remove(d);
            }
            for u in inst.kind.uses() {
                live.insert(u);
            }
        }
        let mut keep = keep.into_iter();
        data.insts.retain(|_| keep.next().unwrap_or(true));
    }
    removed
}

/// Removes `x = x + 1` where that is x's only read: the variable is never read for real.
/// (Liveness keeps it around a loop, where the update reads its own last value.)
fn remove_self_updates(func: &mut Function) -> bool {
    let mut uses: SecondaryMap<Var, u32> = SecondaryMap::new();
    for data in func.blocks.values() {
        for inst in &data.insts {
            for v in inst.kind.uses() {
                uses[v] += 1;
            }
        }
        if let Some(v) = data.term.uses() {
            uses[v] += 1;
        }
    }
    let mut removed = false;
    for data in func.blocks.values_mut() {
        data.insts.retain(|inst| {
            let dead = !inst.kind.has_side_effects() && inst.kind.def().is_some_and(|d| is_self_update(inst, d, &uses));
            removed |= dead;
            !dead
        });
    }
    removed
}

fn is_self_update(inst: &Inst, def: Var, uses: &SecondaryMap<Var, u32>) -> bool {
    uses[def] == 1 && inst.kind.uses().contains(&def)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{BinOp, InstKind, Operand, Terminator, Ty};
    use crate::span::Span;

    fn inst(kind: InstKind) -> Inst {
        Inst { kind, span: Span::default() }
    }

    /// `a = 2` overwritten by `a = 1` before any read goes; so does a counter only its own
    /// update reads, in a loop; what the branch reads stays.
    #[test]
    fn dead_writes_and_self_updates_go() {
        let mut f = Function::default();
        let (entry, body, exit) = (f.new_block(), f.new_block(), f.new_block());
        f.entry = Some(entry);
        let (a, n) = (f.new_var(Ty::Long, None), f.new_var(Ty::Long, None));
        f.blocks[entry].insts =
            vec![inst(InstKind::Const { dst: a, value: 2 }), inst(InstKind::Const { dst: a, value: 1 })];
        f.blocks[entry].term = Terminator::Jump(body);
        f.blocks[body].insts = vec![inst(InstKind::Binary { op: BinOp::Add, dst: n, lhs: n, rhs: Operand::Imm(1) })];
        f.blocks[body].term = Terminator::Branch { cond: a, then: body, els: exit };
        eliminate_dead_code(&mut f);
        assert_eq!(f.blocks[entry].insts.len(), 1);
        assert!(matches!(f.blocks[entry].insts[0].kind, InstKind::Const { value: 1, .. }));
        assert!(f.blocks[body].insts.is_empty());
    }

    /// `if (c) x = 1 else x = 2` with x never read: both ways are empty once their writes
    /// go, so the branch becomes a jump and the test goes too.
    #[test]
    fn branches_that_decide_nothing_go() {
        let mut f = Function::default();
        let [entry, then, els, join] = [(); 4].map(|_| f.new_block());
        f.entry = Some(entry);
        let (c, x) = (f.new_var(Ty::Long, None), f.new_var(Ty::Long, None));
        f.blocks[entry].insts = vec![inst(InstKind::Const { dst: c, value: 1 })];
        f.blocks[entry].term = Terminator::Branch { cond: c, then, els };
        f.blocks[then].insts = vec![inst(InstKind::Const { dst: x, value: 1 })];
        f.blocks[then].term = Terminator::Jump(join);
        f.blocks[els].insts = vec![inst(InstKind::Const { dst: x, value: 2 })];
        f.blocks[els].term = Terminator::Jump(join);
        f.blocks[join].term = Terminator::Return;
        eliminate_dead_code(&mut f);
        assert!(matches!(f.blocks[entry].term, Terminator::Jump(b) if b == join));
        assert!(f.blocks.values().all(|b| b.insts.is_empty()));
    }

    /// An inlined `f()` returning -1 on one way: `r = -1; af = r; if (af == 2) ...` from
    /// there goes straight to the else, and the copies nothing reads any more go; the way
    /// where `r` is unknown keeps its test.
    #[test]
    fn jumps_a_known_value_decides_are_threaded() {
        let mut f = Function::default();
        let [entry, minus, read, test, two, other] = [(); 6].map(|_| f.new_block());
        f.entry = Some(entry);
        let [c, r, af, is2] = [(); 4].map(|_| f.new_var(Ty::Long, None));
        f.blocks[entry].insts = vec![inst(InstKind::LoadContext { dst: c, offset: 24, size: 8, signed: false })];
        f.blocks[entry].term = Terminator::Branch { cond: c, then: minus, els: read };
        f.blocks[minus].insts = vec![inst(InstKind::Const { dst: r, value: -1 })];
        f.blocks[minus].term = Terminator::Jump(test);
        f.blocks[read].insts = vec![inst(InstKind::LoadContext { dst: r, offset: 16, size: 8, signed: false })];
        f.blocks[read].term = Terminator::Jump(test);
        f.blocks[test].insts = vec![
            inst(InstKind::Copy { dst: af, src: r }),
            inst(InstKind::Compare { op: CmpOp::Eq, dst: is2, lhs: af, rhs: Operand::Imm(2) }),
        ];
        f.blocks[test].term = Terminator::Branch { cond: is2, then: two, els: other };
        f.blocks[two].term = Terminator::Return;
        f.blocks[other].term = Terminator::Return;
        run(&mut f);
        assert!(matches!(f.blocks[minus].term, Terminator::Jump(b) if b == other));
        assert!(f.blocks[minus].insts.is_empty());
        assert!(matches!(f.blocks[read].term, Terminator::Jump(b) if b == test));
    }
}
