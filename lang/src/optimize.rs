//! IR-to-IR clean-ups run by `lower` on every handler.
//!
//! Dead-code elimination: an instruction without side effects whose result no one reads is
//! removed, repeatedly, so alias variables a probe never uses (the `argstr` of
//! `syscall.connect`, say) cost nothing at run time.
//!
//! Invariant: the observable behaviour of the handler is unchanged, and the result still
//! passes `ir::verify`.

use cranelift_entity::SecondaryMap;

use crate::ir::{Function, Var};

pub fn run(func: &mut Function) {
    eliminate_dead_code(func);
}

pub fn eliminate_dead_code(func: &mut Function) {
    loop {
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
                let dead = !inst.kind.has_side_effects()
                    && inst.kind.def().is_some_and(|d| uses[d] == 0 || is_self_update(inst, d, &uses));
                removed |= dead;
                !dead
            });
        }
        if !removed {
            break;
        }
    }
}

/// `x = x + 1` where that is x's only use: the variable is never read for real.
fn is_self_update(inst: &crate::ir::Inst, def: Var, uses: &SecondaryMap<Var, u32>) -> bool {
    uses[def] == 1 && inst.kind.uses().contains(&def)
}
