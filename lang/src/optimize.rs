//! IR-to-IR clean-ups run by `lower` on every handler.
//!
//! Dead-code elimination: an instruction without side effects whose results are dead where
//! it writes them (by [`crate::liveness`]: unread, or overwritten before any read) is
//! removed, and so is `x = x + 1` where that is x's only read; repeatedly, so alias
//! variables a probe never uses cost nothing at run time. The code generator emits the
//! instructions left, all of them.
//!
//! Invariant: the observable behaviour of the handler is unchanged, and the result still
//! passes `ir::verify`.

use cranelift_entity::SecondaryMap;

use crate::ir::{Block, Function, Inst, Var};
use crate::liveness::block_liveness;

pub fn run(func: &mut Function) {
    eliminate_dead_code(func);
}

pub fn eliminate_dead_code(func: &mut Function) {
    while remove_dead_writes(func) | remove_self_updates(func) {}
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
        let (entry, body) = (f.new_block(), f.new_block());
        f.entry = Some(entry);
        let (a, n) = (f.new_var(Ty::Long, None), f.new_var(Ty::Long, None));
        f.blocks[entry].insts =
            vec![inst(InstKind::Const { dst: a, value: 2 }), inst(InstKind::Const { dst: a, value: 1 })];
        f.blocks[entry].term = Terminator::Jump(body);
        f.blocks[body].insts = vec![inst(InstKind::Binary { op: BinOp::Add, dst: n, lhs: n, rhs: Operand::Imm(1) })];
        f.blocks[body].term = Terminator::Branch { cond: a, then: body, els: body };
        eliminate_dead_code(&mut f);
        assert_eq!(f.blocks[entry].insts.len(), 1);
        assert!(matches!(f.blocks[entry].insts[0].kind, InstKind::Const { value: 1, .. }));
        assert!(f.blocks[body].insts.is_empty());
    }
}
