//! Labels and jumps: a jump to a label is recorded as a fixup and patched once the handler's
//! instructions are all emitted; the order of the blocks, which makes most jumps fall
//! through; jumps to the next instruction dropped.

use super::*;

impl Emitter<'_> {
    pub(super) fn new_label(&mut self) -> Label {
        self.next_label += 1;
        Label(self.next_label)
    }

    pub(super) fn bind(&mut self, l: Label) {
        self.labels.insert(l, self.insns.len());
        self.cached = [None; 6];
    }

    pub(super) fn jump(&mut self, l: Label) {
        self.fixups.push((self.insns.len(), l));
        self.push(insn::ja(0));
    }

    /// A conditional jump to a label. The registers keep their values on the way on, and
    /// the label forgets them where it is bound, so what they hold stays known here.
    pub(super) fn jump_if_imm(&mut self, op: JmpOp, r: Reg, imm: i32, l: Label) {
        self.fixups.push((self.insns.len(), l));
        let cached = self.cached;
        self.push(insn::jmp_imm(op, r, imm, 0));
        self.cached = cached;
    }

    pub(super) fn jump_if_reg(&mut self, op: JmpOp, a: Reg, b: Reg, l: Label) {
        self.fixups.push((self.insns.len(), l));
        let cached = self.cached;
        self.push(insn::jmp_reg(op, a, b, 0));
        self.cached = cached;
    }

    /// Jumps to `l` when `lhs op rhs` holds.
    pub(super) fn jump_if_compare(&mut self, op: CmpOp, lhs: Var, rhs: Operand, l: Label) {
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
    pub(super) fn drop_jumps_to_next(&mut self) {
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

    pub(super) fn resolve_jumps(&mut self) -> Result<(), EmitError> {
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
}

/// Which blocks go out, in what order, and where a jump to each block lands.
pub(super) struct BlockLayout {
    /// Blocks with code, entry first; a block's likely successor follows it where it can,
    /// so the jump to it disappears.
    pub(super) order: Vec<Block>,
    /// Every reachable block, for liveness; `order` leaves out the empty ones that only
    /// jump or return.
    pub(super) reachable: Vec<Block>,
    /// Per block, the label a jump to it goes to: past empty blocks to where they lead.
    targets: HashMap<Block, Label>,
}

impl BlockLayout {
    pub(super) fn target(&self, b: Block) -> Label {
        self.targets[&b]
    }
}

/// Lays out the blocks reachable from the entry (the verifier rejects unreachable code).
/// Lowering creates blocks in source order; a trace from each block in that order follows
/// jumps and the `then` of branches (the `else` where the `then` is out already), so
/// straight-line code stays straight.
pub(super) fn layout_blocks(func: &Function) -> BlockLayout {
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
            // The `then` of a branch, or its `else` where the `then` is placed or the exit.
            let unplaced = |t: &Block| block_of(targets[t]).filter(|b| !placed.contains(*b));
            at = match &func.blocks[b].term {
                Terminator::Jump(t) => unplaced(t),
                Terminator::Branch { then, els, .. } => unplaced(then).or_else(|| unplaced(els)),
                Terminator::Return => None,
            };
        }
    }
    BlockLayout { order, reachable, targets }
}
