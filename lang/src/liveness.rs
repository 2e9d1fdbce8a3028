//! Which variables of a handler are live into and out of each block: the backward dataflow
//! `optimize` removes dead code by and `codegen-bpf`'s register allocator packs slots by.

use cranelift_entity::{EntityRef, SecondaryMap};

use crate::ir::{Block, Function, Var};

/// A set of a function's variables, one bit each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VarSet(Vec<u64>);

impl VarSet {
    /// An empty set with room for the variables of `func`.
    pub fn for_function(func: &Function) -> VarSet {
        VarSet(vec![0; func.vars.len().div_ceil(64).max(1)])
    }

    pub fn insert(&mut self, v: Var) {
        self.0[v.index() / 64] |= 1 << (v.index() % 64);
    }

    pub fn remove(&mut self, v: Var) {
        self.0[v.index() / 64] &= !(1 << (v.index() % 64));
    }

    pub fn contains(&self, v: Var) -> bool {
        self.0[v.index() / 64] & (1 << (v.index() % 64)) != 0
    }

    pub fn union_with(&mut self, other: &VarSet) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    pub fn clear(&mut self) {
        self.0.fill(0);
    }

    /// Removes the members of `other`.
    pub fn subtract(&mut self, other: &VarSet) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= !b;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Var> + '_ {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(w, word)| (0..64).filter(move |b| word & (1 << b) != 0).map(move |b| Var::new(w * 64 + b)))
    }
}

/// Live sets per block.
pub type LiveSets = SecondaryMap<Block, VarSet>;

/// The variables live into and out of each block of `order` (which must hold every block
/// reachable from the entry): backward dataflow to a fixpoint.
pub fn block_liveness(func: &Function, order: &[Block]) -> (LiveSets, LiveSets) {
    let empty = VarSet::for_function(func);
    // Each block's upward-exposed uses and its writes, found once: the fixpoint then only
    // combines sets (`live_in = uses | (live_out - writes)`).
    let mut uses: LiveSets = SecondaryMap::with_default(empty.clone());
    let mut writes: LiveSets = SecondaryMap::with_default(empty.clone());
    for &b in order {
        let data = &func.blocks[b];
        let (used, written) = (&mut uses[b], &mut writes[b]);
        if let Some(c) = data.term.uses() {
            used.insert(c);
        }
        for inst in data.insts.iter().rev() {
            for d in inst.kind.defs() {
                used.remove(d);
                written.insert(d);
            }
            for u in inst.kind.uses() {
                used.insert(u);
            }
        }
    }
    let mut live_in: LiveSets = SecondaryMap::with_default(empty.clone());
    let mut live_out: LiveSets = SecondaryMap::with_default(empty.clone());
    let (mut out, mut live) = (empty.clone(), empty);
    let mut changed = true;
    while changed {
        changed = false;
        for &b in order.iter().rev() {
            out.clear();
            for s in func.blocks[b].term.successors() {
                out.union_with(&live_in[s]);
            }
            live.clone_from(&out);
            live.subtract(&writes[b]);
            live.union_with(&uses[b]);
            if live != live_in[b] || out != live_out[b] {
                live_in[b].clone_from(&live);
                live_out[b].clone_from(&out);
                changed = true;
            }
        }
    }
    (live_in, live_out)
}
