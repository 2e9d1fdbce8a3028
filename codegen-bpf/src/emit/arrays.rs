//! Global arrays in kernel probes: keys built in a buffer, lookups, inserts (an array that
//! is full reports it), `+=` on an element.

use super::*;

impl Emitter<'_> {
    /// `dst = array[keys]`: 0 or "" where the key is absent.
    pub(super) fn array_get(&mut self, dst: Var, array: lang::ir::ArrayId, keys: &[Var]) {
        self.lookup(array, keys);
        let missing = self.new_label();
        let done = self.new_label();
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, missing);
        match self.func.ty(dst) {
            Ty::Long => {
                self.push(insn::ldx(Size::DW, Reg::R0, Reg::R0, 0));
                self.store(dst, Reg::R0);
                self.jump(done);
                self.bind(missing);
                self.push(insn::mov64_imm(Reg::R0, 0));
                self.store(dst, Reg::R0);
            }
            Ty::Str => {
                let off = self.scratch(dst);
                self.push(insn::mov64_reg(Reg::R3, Reg::R0));
                self.copy_str(off, self.cap);
                self.jump(done);
                self.bind(missing);
                self.push(insn::st_imm(Size::B, SCRATCH, off as i16, 0));
            }
        }
        self.bind(done);
    }

    pub(super) fn array_set(&mut self, array: lang::ir::ArrayId, keys: &[Var], src: Var) {
        self.build_key(array, keys);
        self.map_ptr(Reg::R1, layout::array_map_index(array));
        self.addr(Reg::R2, self.key);
        match self.func.ty(src) {
            Ty::Long => self.home_addr(Reg::R3, src),
            Ty::Str => self.str_addr(Reg::R3, src),
        }
        self.push(insn::mov64_imm(Reg::R4, BPF_ANY));
        self.push(insn::call(Helper::MapUpdateElem));
        self.on_full(array);
    }

    /// Writes the key of `array[keys]` into the key buffer. String keys are zero-padded
    /// first: the map compares every byte of the key.
    pub(super) fn build_key(&mut self, array: lang::ir::ArrayId, keys: &[Var]) {
        if keys.is_empty() {
            self.push(insn::st_imm(Size::W, self.key.base, self.key.off, 0));
            return;
        }
        let keys: Vec<Option<Var>> = keys.iter().copied().map(Some).collect();
        self.build_key_parts(array, &keys);
    }

    /// Writes the keys that are given (`Some`) into their places in the key buffer.
    pub(super) fn build_key_parts(&mut self, array: lang::ir::ArrayId, keys: &[Option<Var>]) {
        let decl = &self.program.arrays[array];
        let (offsets, _) = layout::key_layout(decl);
        let widths = decl.key_widths.clone();
        for ((k, off), width) in keys.iter().zip(offsets).zip(widths) {
            let Some(k) = k else { continue };
            let at = self.key.at(off);
            match self.func.ty(*k) {
                Ty::Long => {
                    self.load(Reg::R0, *k);
                    self.push(insn::stx(Size::DW, at.base, Reg::R0, at.off));
                }
                Ty::Str if self.sunk.contains_key(k) => {
                    // The comm straight into the key, zeroed first: before Linux 6.4 the
                    // helper copies up to the NUL and leaves the bytes after it, which would
                    // make one name many keys.
                    self.zero_fill(at, 0, width.div_ceil(8) * 8);
                    self.current_comm(at, COMM_LEN.min(width));
                }
                Ty::Str => {
                    self.zero_fill(at, 0, width.div_ceil(8) * 8);
                    self.str_addr(Reg::R3, *k);
                    self.copy_str_to(at, width);
                }
            }
        }
    }

    /// Zeroes the 8-byte words of `buf` from byte `from` up to `to`.
    pub(super) fn zero_fill(&mut self, buf: Buf, from: u32, to: u32) {
        for w in (from..to).step_by(8) {
            let at = buf.at(w);
            self.push(insn::st_imm(Size::DW, at.base, at.off, 0));
        }
    }

    /// `r0 = bpf_map_lookup_elem(array, key)`.
    pub(super) fn lookup(&mut self, array: lang::ir::ArrayId, keys: &[Var]) {
        self.build_key(array, keys);
        self.lookup_built(array);
    }

    pub(super) fn lookup_built(&mut self, array: lang::ir::ArrayId) {
        self.map_ptr(Reg::R1, layout::array_map_index(array));
        self.addr(Reg::R2, self.key);
        self.push(insn::call(Helper::MapLookupElem));
    }

    /// `r0` = the element's value, created zeroed when missing. A full array ends the
    /// handler after reporting it.
    pub(super) fn lookup_or_insert(&mut self, array: lang::ir::ArrayId, keys: &[Var], value_size: u32) {
        let found = self.new_label();
        self.lookup(array, keys);
        self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, found);
        let zeros = self.rodata.zeros(value_size);
        self.insert(array, |e| {
            e.relocs.push(Reloc { insn_index: e.insns.len(), target: RelocTarget::Rodata(zeros) });
            e.push2(insn::ld_imm64_pseudo(Reg::R3, insn::pseudo::MAP_VALUE, 0, zeros as i32));
        });
        self.lookup_after_insert(array, found);
        self.bind(found);
    }

    /// `array[keys] += src`: a missing element is inserted as 0 first, so one atomic add
    /// serves both ways (and a key another CPU inserted first loses nothing).
    pub(super) fn array_add(&mut self, array: lang::ir::ArrayId, keys: &[Var], src: Var) {
        if self.program.arrays[array].per_cpu {
            return self.counter_add(array, keys, src);
        }
        self.lookup_or_insert(array, keys, 8);
        self.load(Reg::R1, src);
        self.push(insn::atomic_add(Size::DW, Reg::R0, Reg::R1, 0));
    }

    /// `array[keys] += src` on a per-CPU counter (`ArrayDecl::per_cpu`): the lookup finds
    /// this CPU's counter, which no other CPU writes, so a plain add does. A missing element
    /// is inserted holding `src` (the kernel zeroes the other CPUs' counters; were another
    /// CPU inserting the key too, each insert sets only its own CPU's counter).
    fn counter_add(&mut self, array: lang::ir::ArrayId, keys: &[Var], src: Var) {
        let (insert, done) = (self.new_label(), self.new_label());
        self.lookup(array, keys);
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, insert);
        self.load(Reg::R1, src);
        self.push(insn::ldx(Size::DW, Reg::R2, Reg::R0, 0));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R1));
        self.push(insn::stx(Size::DW, Reg::R0, Reg::R2, 0));
        self.jump(done);
        self.bind(insert);
        self.map_ptr(Reg::R1, layout::array_map_index(array));
        self.addr(Reg::R2, self.key);
        self.home_addr(Reg::R3, src);
        self.push(insn::mov64_imm(Reg::R4, BPF_ANY));
        self.push(insn::call(Helper::MapUpdateElem));
        self.on_full(array);
        self.bind(done);
    }

    /// `map_update_elem(array, key, r3, BPF_NOEXIST)`, with `value` setting `r3`.
    pub(super) fn insert(&mut self, array: lang::ir::ArrayId, value: impl FnOnce(&mut Self)) {
        self.map_ptr(Reg::R1, layout::array_map_index(array));
        self.addr(Reg::R2, self.key);
        value(self);
        self.push(insn::mov64_imm(Reg::R4, BPF_NOEXIST));
        self.push(insn::call(Helper::MapUpdateElem));
    }

    /// After an insert: look the key up again and go to `found` with `r0` = the value. The
    /// insert fails with -EEXIST when another CPU inserted the key since our lookup, which
    /// this lookup sees; it finds nothing only when the insert failed for want of room,
    /// and then the handler reports the full array and ends.
    pub(super) fn lookup_after_insert(&mut self, array: lang::ir::ArrayId, found: Label) {
        self.lookup_built(array);
        self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, found);
        self.report_full(array);
        self.jump(EXIT_LABEL);
    }

    /// After `map_update_elem`: when it failed for want of room, report and end the handler.
    pub(super) fn on_full(&mut self, array: lang::ir::ArrayId) {
        let ok = self.new_label();
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, ok);
        self.report_full(array);
        self.jump(EXIT_LABEL);
        self.bind(ok);
    }

    pub(super) fn report_full(&mut self, array: lang::ir::ArrayId) {
        let globals = self.globals_in(Reg::R1);
        self.push(insn::st_imm(Size::DW, globals, layout::GLOBAL_ARRAY_FULL as i16, array.as_u32() as i32 + 1));
    }
}
