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
//! Invariant: the observable behaviour of the handler is unchanged, and the result still
//! passes `ir::verify`.

use cranelift_entity::{PrimaryMap, SecondaryMap};

use crate::ir::{Block, FmtId, Function, Inst, InstKind, Program, Terminator, Var};
use crate::liveness::block_liveness;

pub fn run(func: &mut Function) {
    eliminate_dead_code(func);
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

/// Removes the side-effect-free instructions whose every result is dead after them.
fn remove_dead_writes(func: &mut Function) -> bool {
    let order: Vec<Block> = func.blocks.keys().collect();
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
}
