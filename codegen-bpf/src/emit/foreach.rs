//! `foreach` in a kernel probe: the matching keys snapshotted with `bpf_for_each_map_elem`
//! into a key list in scratch, sorted with `bpf_loop` when asked, then walked.

use super::*;

impl Emitter<'_> {
    /// `delete array[pattern]` (`found` = None) or `found = [pattern] in array`: the pattern
    /// is built in the key buffer, which must be on the stack (a callback's context is a
    /// stack pointer) unless it is all `*`, and a [`Callback::Match`] visits every element.
    /// `delete array` is the pattern of all `*`.
    pub(super) fn for_each_matching(
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
    pub(super) fn callback_ptr(&mut self, dst: Reg, callback: Callback) {
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

    /// Starts a `foreach` in a kernel probe: snapshots the keys into its key list in scratch
    /// with `bpf_for_each_map_elem`, in order when it sorts by a key. As in user space (and
    /// SystemTap), the loop then visits the snapshot; [`Emitter::iter_next`] reads each
    /// value when the loop asks for it.
    pub(super) fn iter_start(
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
    pub(super) fn iter_next(&mut self, has: Var, iter: lang::ir::IterId, keys: &[Var], value: Option<Var>) {
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
        self.leave_first(done, |e, on| e.jump_if_reg(JmpOp::Lt, Reg::R1, Reg::R2, on));
        self.push(insn::ldx(Size::DW, Reg::R2, SCRATCH, list + 16));
        self.leave_first(done, |e, on| e.jump_if_reg(JmpOp::Slt, Reg::R1, Reg::R2, on));
        // The verifier's bound on the index.
        let bound = self.program.loop_budget as i32;
        self.leave_first(done, |e, on| e.jump_if_imm(JmpOp::Lt, Reg::R1, bound, on));
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

    /// Goes on where `stay` jumps to the label it is given, else to `done`, the way out of
    /// the loop: the verifier walks a jump's fall-through first and holds its target
    /// pending, so with the way out first it follows that to the handler's end before the
    /// next iteration, rather than holding a way out pending for each iteration it walks
    /// (8192 pending at most, `BPF_COMPLEXITY_LIMIT_JMP_SEQ` in `push_stack` of the kernel's
    /// `kernel/bpf/verifier.c`: "the sequence of 8193 jumps is too complex"). Each way out
    /// after the first is pruned where the loop ends, as the loop's budget is dead there.
    fn leave_first(&mut self, done: Label, stay: impl FnOnce(&mut Self, Label)) {
        let on = self.new_label();
        stay(self, on);
        self.jump(done);
        self.bind(on);
    }

    /// The body of a [`Callback::CollectKey`]: `(r1 map, r2 key, r3 value, r4 ctx)`, returns
    /// 0 to go on and 1 to stop. It finds the scratch area itself; r6 keeps the key, r7 the
    /// list, r8 the place of the new key.
    pub(super) fn collect_key(&mut self, list: u32, words: u32, sort: Option<(u32, bool)>) {
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
    pub(super) fn callback_scratch(&mut self, stop: Label) {
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
    pub(super) fn make_room(&mut self, list: u32, words: u32, word: u32, ascending: bool) {
        let (entry, first, word) = ((words * 8) as i32, (list + KEY_LIST_HEADER) as i16, (8 * word) as i16);
        let stop = self.new_label();
        self.push(insn::mov64_reg(Reg::R6, Reg::R2));
        self.callback_scratch(stop);
        // r1 = the key before the place, if any: one unsigned compare, as the place 0 wraps
        // around, both stops at the first place and bounds r1 for the verifier (which before
        // Linux 6.8 or so learns no lower bound from `r1 != 0`, and refuses the unbounded
        // `r1 - 1` below as an offset).
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R6, 0));
        self.push(insn::alu64_imm(AluOp::Sub, Reg::R1, 1));
        self.jump_if_imm(JmpOp::Gt, Reg::R1, self.program.loop_budget as i32 - 2, stop);
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
    pub(super) fn matcher(&mut self, words: &[i16], op: MatchOp) {
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
}

/// The bytes of one key of `decl` in a `foreach`'s key list: its key, in 8-byte words.
pub(super) fn key_list_entry(decl: &lang::ir::ArrayDecl) -> u32 {
    layout::key_layout(decl).1.div_ceil(8) * 8
}

/// Where each `foreach`'s key list lives in scratch, from `base`, and the end of the last.
/// A list is needed until its loop ends, so a `foreach` in another's body gets the bytes
/// after the other's, and loops one after another share theirs.
pub(super) fn key_list_offsets(program: &Program, func: &Function, base: u32) -> (HashMap<lang::ir::IterId, u32>, u32) {
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

/// A key list's header words: the keys taken, the next to visit, the `limit`.
pub(super) const KEY_LIST_HEADER: u32 = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MatchOp {
    /// Delete every match.
    Delete,
    /// Stop at the first match, setting the handler's word at this offset from the
    /// pattern to 1.
    Find { flag: i16 },
}
