//! Strings in kernel probes: constants, copies, comparisons, concatenation, and the
//! builtins that make text (`sprintf` through `bpf_snprintf`, `substr`, `backtrace`, `%pI`
//! addresses, `errno_str`, `str_replace`, module names).

use super::*;

impl Emitter<'_> {
    /// The string `v` always holds when its only definition is a constant (a literal, `@1`).
    pub(super) fn constant_str(&self, v: Var) -> Option<String> {
        let mut defs = self.insts().filter(|i| i.kind.defs().contains(&v));
        match (defs.next().map(|i| &i.kind), defs.next()) {
            (Some(InstKind::StrConst { value, .. }), None) => Some(value.clone()),
            _ => None,
        }
    }

    /// `r0` = 1 when the constant `needle` occurs in `hay`: each start i in hay is compared
    /// with the needle's bytes unrolled, so the verifier walks one loop of at most cap
    /// iterations (a loop over the needle too would make it walk cap² of them).
    pub(super) fn isinstr_const(&mut self, hay: Var, needle: &[u8]) {
        let (outer, next, found, missing, done) =
            (self.new_label(), self.new_label(), self.new_label(), self.new_label(), self.new_label());
        let cap = self.cap as i32;
        let needle = &needle[..needle.len().min(self.cap as usize - 1)];
        if needle.is_empty() {
            // "" occurs in every string.
            self.push(insn::mov64_imm(Reg::R0, 1));
            return;
        }
        self.push(insn::mov64_imm(Reg::R3, 0));
        self.bind(outer);
        for (k, byte) in needle.iter().enumerate() {
            // r1 = &hay[i + k], within the slot.
            self.push(insn::mov64_reg(Reg::R1, Reg::R3));
            self.push(insn::alu64_imm(AluOp::Add, Reg::R1, k as i32));
            self.jump_if_imm(JmpOp::Ge, Reg::R1, cap, missing);
            self.str_addr(Reg::R2, hay);
            self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R1));
            self.push(insn::ldx(Size::B, Reg::R0, Reg::R2, 0));
            self.jump_if_imm(JmpOp::Ne, Reg::R0, *byte as i32, next);
        }
        self.jump(found);
        self.bind(next);
        // hay[i] == 0: its end, no later start can match.
        self.str_addr(Reg::R2, hay);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R3));
        self.push(insn::ldx(Size::B, Reg::R0, Reg::R2, 0));
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, missing);
        self.push(insn::alu64_imm(AluOp::Add, Reg::R3, 1));
        self.jump_if_imm(JmpOp::Lt, Reg::R3, cap, outer);
        self.bind(missing);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.jump(done);
        self.bind(found);
        self.push(insn::mov64_imm(Reg::R0, 1));
        self.bind(done);
    }

    pub(super) fn str_const(&mut self, dst: Var, value: &str) {
        let off = self.scratch(dst);
        self.str_const_at(off, value);
    }

    /// The string at scratch `off` = `value`, cut at the capacity.
    pub(super) fn str_const_at(&mut self, off: u32, value: &str) {
        let mut bytes: Vec<u8> = value.bytes().take(self.cap as usize - 1).collect();
        bytes.push(0);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        for (k, chunk) in bytes.chunks(4).enumerate() {
            let word = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            self.push(insn::st_imm(Size::W, SCRATCH, (off + 4 * k as u32) as i16, word));
        }
    }

    /// Copies the string at `r3` to scratch offset `dst_off`, at most `size` bytes.
    pub(super) fn copy_str(&mut self, dst_off: u32, size: u32) {
        self.copy_str_to(Buf::scratch(dst_off), size);
    }

    /// Copies the string at `r3` to `dst`, at most `size` bytes.
    pub(super) fn copy_str_to(&mut self, dst: Buf, size: u32) {
        self.addr(Reg::R1, dst);
        self.push(insn::mov64_imm(Reg::R2, size as i32));
        self.push(insn::call(Helper::ProbeReadKernelStr));
    }

    /// `strcmp` as a bounded loop over both buffers; `r0` ends as the difference of the first
    /// differing bytes (or 0), then compared with 0 by `op`.
    pub(super) fn str_compare(&mut self, op: CmpOp, dst: Var, lhs: Var, rhs: Var) {
        let (done, top) = (self.new_label(), self.new_label());
        self.str_addr(Reg::R1, lhs);
        self.str_addr(Reg::R2, rhs);
        self.push(insn::mov64_imm(Reg::R3, 0));
        self.bind(top);
        self.push(insn::ldx(Size::B, Reg::R4, Reg::R1, 0));
        self.push(insn::ldx(Size::B, Reg::R5, Reg::R2, 0));
        self.push(insn::mov64_reg(Reg::R0, Reg::R4));
        self.push(insn::alu64_reg(AluOp::Sub, Reg::R0, Reg::R5));
        self.jump_if_reg(JmpOp::Ne, Reg::R4, Reg::R5, done);
        self.jump_if_imm(JmpOp::Eq, Reg::R4, 0, done);
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, 1));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R3, 1));
        self.jump_if_imm(JmpOp::Lt, Reg::R3, self.cap as i32, top);
        self.bind(done);
        self.push(insn::mov64_reg(Reg::R1, Reg::R0));
        self.push(insn::mov64_imm(Reg::R0, 1));
        self.push(insn::jmp_imm(signed_jmp(op), Reg::R1, 0, 1));
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.store(dst, Reg::R0);
    }

    /// `dst = lhs . rhs`: copy lhs, then rhs at lhs's length. The second copy may be
    /// proven by the verifier to reach up to one slot past `dst` (it cannot relate the
    /// length to the size), which is why the scratch area keeps a slot of slack after the
    /// string slots.
    pub(super) fn concat(&mut self, dst: Var, lhs: Var, rhs: Var) {
        let d = self.scratch(dst);
        let mut rhs_off = self.scratch(rhs);
        if rhs_off == d && lhs != rhs {
            // `s = t . s`: keep rhs in the record buffer while dst is written.
            self.str_addr(Reg::R3, rhs);
            self.copy_str(self.str_tmp_off, self.cap);
            rhs_off = self.str_tmp_off;
        }
        if self.scratch(lhs) != d {
            self.str_addr(Reg::R3, lhs);
            self.copy_str(d, self.cap);
        } else {
            self.str_addr(Reg::R3, lhs);
            self.copy_str(self.tmp_len_probe(), self.cap);
        }
        // r0 = bytes copied including the NUL; the length is r0 - 1, masked to the slot.
        self.push(insn::alu64_imm(AluOp::Sub, Reg::R0, 1));
        self.push(insn::jmp_imm(JmpOp::Sge, Reg::R0, 0, 1));
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::alu64_imm(AluOp::And, Reg::R0, (self.cap.next_power_of_two() - 1) as i32));
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.push(insn::alu64_reg(AluOp::Sub, Reg::R2, Reg::R0));
        self.jump_if_imm(JmpOp::Sle, Reg::R2, 0, EXIT_LABEL);
        self.scratch_addr(Reg::R1, d);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R1, Reg::R0));
        self.scratch_addr(Reg::R3, rhs_off);
        self.push(insn::call(Helper::ProbeReadKernelStr));
    }

    /// Where to copy a string only to learn its length.
    pub(super) fn tmp_len_probe(&self) -> u32 {
        self.str_tmp_off
    }

    /// `bpf_snprintf(dst, cap, fmt, args, 8 * n)`: longs by value, strings by address.
    pub(super) fn snprintf(&mut self, dst_off: u32, format: &str, args: &[Var]) {
        for (k, arg) in args.iter().enumerate() {
            match self.func.ty(*arg) {
                Ty::Long => self.load(Reg::R0, *arg),
                Ty::Str => self.str_addr(Reg::R0, *arg),
            }
            self.push(insn::stx(Size::DW, SCRATCH, Reg::R0, (self.args_off + 8 * k as u32) as i16));
        }
        self.scratch_addr(Reg::R1, dst_off);
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.rodata_ptr(Reg::R3, format);
        self.scratch_addr(Reg::R4, self.args_off);
        self.push(insn::mov64_imm(Reg::R5, 8 * args.len() as i32));
        self.push(insn::call(Helper::Snprintf));
    }

    /// The string at scratch `d` = the first `len` bytes at kernel address `addr` (as many as
    /// fit), in hex or as text with `.` for what is not printable; "" when `len` is not
    /// positive or the read faults. The bytes are read into `d` and rewritten in place from
    /// the last, so each is read before its own text overwrites it; unrolled, since the
    /// count is bounded by the string capacity and every offset is then a constant.
    pub(super) fn kernel_buffer_text(&mut self, d: u32, addr: Var, len: Var, hex: bool) {
        let max = if hex { (self.cap - 1) / 2 } else { self.cap - 1 };
        let empty = self.new_label();
        let done = self.new_label();
        self.load(Reg::R2, len);
        self.jump_if_imm(JmpOp::Sle, Reg::R2, 0, empty);
        self.push(insn::jmp_imm(JmpOp::Le, Reg::R2, max as i32, 1));
        self.push(insn::mov64_imm(Reg::R2, max as i32));
        self.push(insn::stx(Size::DW, Reg::R10, Reg::R2, SPILL));
        self.load(Reg::R3, addr);
        self.scratch_addr(Reg::R1, d);
        self.push(insn::call(Helper::ProbeReadKernel));
        self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, empty);
        for i in (0..max).rev() {
            self.push(insn::ldx(Size::B, Reg::R1, SCRATCH, (d + i) as i16));
            if hex {
                for (shift, at) in [(4, 2 * i), (0, 2 * i + 1)] {
                    self.push(insn::mov64_reg(Reg::R2, Reg::R1));
                    if shift > 0 {
                        self.push(insn::alu64_imm(AluOp::Rsh, Reg::R2, shift));
                    }
                    self.push(insn::alu64_imm(AluOp::And, Reg::R2, 15));
                    self.push(insn::alu64_imm(AluOp::Add, Reg::R2, b'0' as i32));
                    self.push(insn::jmp_imm(JmpOp::Le, Reg::R2, b'9' as i32, 1));
                    self.push(insn::alu64_imm(AluOp::Add, Reg::R2, (b'a' - b'9' - 1) as i32));
                    self.push(insn::stx(Size::B, SCRATCH, Reg::R2, (d + at) as i16));
                }
            } else {
                // Printable ASCII is 32..=126: one unsigned compare after subtracting 32.
                self.push(insn::mov64_reg(Reg::R2, Reg::R1));
                self.push(insn::alu64_imm(AluOp::Sub, Reg::R2, 32));
                self.push(insn::jmp_imm(JmpOp::Le, Reg::R2, 126 - 32, 1));
                self.push(insn::mov64_imm(Reg::R1, b'.' as i32));
                self.push(insn::stx(Size::B, SCRATCH, Reg::R1, (d + i) as i16));
            }
        }
        // The NUL after the text: at `len` bytes, or `2 * len` hex digits.
        self.push(insn::ldx(Size::DW, Reg::R2, Reg::R10, SPILL));
        if hex {
            self.push(insn::alu64_imm(AluOp::Lsh, Reg::R2, 1));
        }
        self.push(insn::alu64_imm(AluOp::And, Reg::R2, (self.cap.next_power_of_two() - 1) as i32));
        self.jump_if_imm(JmpOp::Ge, Reg::R2, self.cap as i32, empty);
        self.scratch_addr(Reg::R1, d);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R1, Reg::R2));
        self.push(insn::st_imm(Size::B, Reg::R1, 0, 0));
        self.jump(done);
        self.bind(empty);
        self.push(insn::st_imm(Size::B, SCRATCH, d as i16, 0));
        self.bind(done);
    }

    /// The string at scratch `dst_off` = `errno_str(n)`: the name from a table in `.rodata`
    /// of [`ERRNO_ENTRY`]-byte entries, or `E<n>` past its end, as the runtime names them.
    pub(super) fn errno_str(&mut self, dst_off: u32, n: Var) {
        let (positive, named, done) = (self.new_label(), self.new_label(), self.new_label());
        let table: Vec<u8> = (0..=ERRNO_MAX)
            .flat_map(|e| {
                let mut entry = lang::builtins::errno_name(e).into_bytes();
                entry.resize(ERRNO_ENTRY as usize, 0);
                entry
            })
            .collect();
        let table = self.rodata.intern_bytes(&table);
        self.load(Reg::R0, n);
        self.jump_if_imm(JmpOp::Sge, Reg::R0, 0, positive);
        self.push(insn::neg64(Reg::R0));
        self.bind(positive);
        self.jump_if_imm(JmpOp::Le, Reg::R0, ERRNO_MAX as i32, named);
        self.push(insn::stx(Size::DW, SCRATCH, Reg::R0, self.args_off as i16));
        self.scratch_addr(Reg::R1, dst_off);
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.rodata_ptr(Reg::R3, "E%d");
        self.scratch_addr(Reg::R4, self.args_off);
        self.push(insn::mov64_imm(Reg::R5, 8));
        self.push(insn::call(Helper::Snprintf));
        self.jump(done);
        self.bind(named);
        self.push(insn::alu64_imm(AluOp::Mul, Reg::R0, ERRNO_ENTRY as i32));
        self.rodata_ptr_at(Reg::R3, table);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R3, Reg::R0));
        self.copy_str(dst_off, ERRNO_ENTRY.min(self.cap));
        self.bind(done);
    }

    /// The string at scratch `dst_off` = `str_replace(s, needle, with)`: a `bpf_loop` of at
    /// most cap steps (each consumes a byte of `s` or more) builds it in the string
    /// temporary, with the two indexes in scratch's 16-byte buffer; then it is copied into
    /// place, as `dst` may share its slot with `s`.
    pub(super) fn str_replace(&mut self, dst_off: u32, s: Var, needle: Vec<u8>, with: Vec<u8>) {
        let src = self.scratch(s);
        if needle.is_empty() || needle.len() >= self.cap as usize {
            self.str_addr(Reg::R3, s);
            self.copy_str(dst_off, self.cap);
            return;
        }
        let with = with[..with.len().min(self.cap as usize - 1)].to_vec();
        let (out, idx) = (self.str_tmp_off, self.tmp_off);
        self.push(insn::st_imm(Size::DW, SCRATCH, idx as i16, 0));
        self.push(insn::st_imm(Size::DW, SCRATCH, idx as i16 + 8, 0));
        self.push(insn::mov64_imm(Reg::R1, self.cap as i32));
        self.callback_ptr(Reg::R2, Callback::Replace { src, out, idx, needle, with });
        self.push(insn::mov64_imm(Reg::R3, 0));
        self.push(insn::mov64_imm(Reg::R4, 0));
        self.push(insn::call(Helper::Loop));
        // The output index, bounded again for the verifier, and the terminating NUL there.
        let bounded = self.new_label();
        self.push(insn::ldx(Size::DW, Reg::R2, SCRATCH, idx as i16 + 8));
        self.jump_if_imm(JmpOp::Le, Reg::R2, self.cap as i32 - 1, bounded);
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32 - 1));
        self.bind(bounded);
        self.scratch_addr(Reg::R5, out);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R5, Reg::R2));
        self.push(insn::st_imm(Size::B, Reg::R5, 0, 0));
        self.scratch_addr(Reg::R3, out);
        self.copy_str(dst_off, self.cap);
    }

    /// The body of a [`Callback::Replace`]: `(r1 step)`, returns 0 to go on and 1 to stop.
    /// It finds the scratch area itself, in r0 throughout.
    pub(super) fn replace_step(&mut self, src: u32, out: u32, idx: i16, needle: &[u8], with: &[u8]) {
        let (stop, copy_one, next) = (self.new_label(), self.new_label(), self.new_label());
        let (cap, n, m) = (self.cap as i32, needle.len() as i32, with.len() as i32);
        self.push(insn::st_imm(Size::W, Reg::R10, KEY_ZERO, 0));
        self.map_ptr(Reg::R1, self.maps.scratch);
        self.push(insn::mov64_reg(Reg::R2, Reg::R10));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, KEY_ZERO as i32));
        self.push(insn::call(Helper::MapLookupElem));
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, stop);
        // r1 = source index, r2 = output index, r4 = &s[r1], r3 = s[r1].
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R0, idx));
        self.push(insn::ldx(Size::DW, Reg::R2, Reg::R0, idx + 8));
        self.jump_if_imm(JmpOp::Gt, Reg::R1, cap - 1, stop);
        self.push(insn::mov64_reg(Reg::R4, Reg::R0));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R4, src as i32));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R4, Reg::R1));
        self.push(insn::ldx(Size::B, Reg::R3, Reg::R4, 0));
        self.jump_if_imm(JmpOp::Eq, Reg::R3, 0, stop);
        self.jump_if_imm(JmpOp::Gt, Reg::R1, cap - 1 - n, copy_one);
        for (k, b) in needle.iter().enumerate() {
            self.push(insn::ldx(Size::B, Reg::R5, Reg::R4, k as i16));
            self.jump_if_imm(JmpOp::Ne, Reg::R5, *b as i32, copy_one);
        }
        self.jump_if_imm(JmpOp::Gt, Reg::R2, cap - 1 - m, stop);
        self.push(insn::mov64_reg(Reg::R5, Reg::R0));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R5, out as i32));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R5, Reg::R2));
        for (k, b) in with.iter().enumerate() {
            self.push(insn::st_imm(Size::B, Reg::R5, k as i16, *b as i32));
        }
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, n));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, m));
        self.jump(next);
        self.bind(copy_one);
        self.jump_if_imm(JmpOp::Gt, Reg::R2, cap - 2, stop);
        self.push(insn::mov64_reg(Reg::R5, Reg::R0));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R5, out as i32));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R5, Reg::R2));
        self.push(insn::stx(Size::B, Reg::R5, Reg::R3, 0));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, 1));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        self.bind(next);
        self.push(insn::stx(Size::DW, Reg::R0, Reg::R1, idx));
        self.push(insn::stx(Size::DW, Reg::R0, Reg::R2, idx + 8));
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::exit());
        self.bind(stop);
        self.push(insn::mov64_imm(Reg::R0, 1));
        self.push(insn::exit());
    }

    /// The body of a [`Callback::KeepVma`]: `(r1 task, r2 vma, r3 ctx)`, returns 0. It finds
    /// the scratch area itself; r6 keeps the vma across the lookup.
    pub(super) fn keep_vma(&mut self, at: u32) {
        let done = self.new_label();
        self.push(insn::mov64_reg(Reg::R6, Reg::R2));
        self.push(insn::st_imm(Size::W, Reg::R10, KEY_ZERO, 0));
        self.map_ptr(Reg::R1, self.maps.scratch);
        self.push(insn::mov64_reg(Reg::R2, Reg::R10));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, KEY_ZERO as i32));
        self.push(insn::call(Helper::MapLookupElem));
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, done);
        self.push(insn::stx(Size::DW, Reg::R0, Reg::R6, at as i16));
        self.bind(done);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::exit());
    }

    /// Finds the first space of the string at scratch `off`: r0 = b' ', r1 = its index and
    /// r2 = its address, or r0 = 0 when the string has none.
    pub(super) fn find_space(&mut self, off: u32) {
        let (next, found, none) = (self.new_label(), self.new_label(), self.new_label());
        self.push(insn::mov64_imm(Reg::R1, 0));
        self.bind(next);
        self.jump_if_imm(JmpOp::Ge, Reg::R1, self.cap as i32, none);
        self.scratch_addr(Reg::R2, off);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R1));
        self.push(insn::ldx(Size::B, Reg::R0, Reg::R2, 0));
        self.jump_if_imm(JmpOp::Eq, Reg::R0, b' ' as i32, found);
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, 1));
        self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, next);
        self.bind(none);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.bind(found);
    }

    /// The string at scratch `d` = the kernel module holding `addr`, from the kernel's
    /// symbol table: `%ps` prints `name [module]` for a module's symbol (`modname`), the name
    /// alone for the kernel's own ("kernel"), and the address in hex (`0x...`) where no
    /// symbol holds it (""). Built in the string temporary, then copied.
    pub(super) fn kernel_modname(&mut self, d: u32, addr: Var) {
        let tmp = self.str_tmp_off;
        let (kernel, unknown, copy, done) = (self.new_label(), self.new_label(), self.new_label(), self.new_label());
        self.snprintf(tmp, "%ps", &[addr]);
        // r0 = the text's length with its NUL, more than the capacity when it was cut.
        self.push(insn::stx(Size::DW, Reg::R10, Reg::R0, SPILL));
        self.push(insn::ldx(Size::H, Reg::R1, SCRATCH, tmp as i16));
        self.jump_if_imm(JmpOp::Eq, Reg::R1, i32::from(u16::from_le_bytes(*b"0x")), unknown);
        self.find_space(tmp);
        self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, kernel);
        // The module is after " [", up to the closing "]" that ends the text (unless cut).
        self.push(insn::ldx(Size::DW, Reg::R3, Reg::R10, SPILL));
        self.jump_if_imm(JmpOp::Gt, Reg::R3, self.cap as i32, copy);
        self.jump_if_imm(JmpOp::Lt, Reg::R3, 2, copy);
        self.push(insn::alu64_imm(AluOp::Sub, Reg::R3, 2));
        self.scratch_addr(Reg::R4, tmp);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R4, Reg::R3));
        self.push(insn::ldx(Size::B, Reg::R5, Reg::R4, 0));
        self.jump_if_imm(JmpOp::Ne, Reg::R5, b']' as i32, copy);
        self.push(insn::st_imm(Size::B, Reg::R4, 0, 0));
        self.bind(copy);
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, 2));
        self.jump_if_imm(JmpOp::Ge, Reg::R1, self.cap as i32, unknown);
        self.scratch_addr(Reg::R3, tmp);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R3, Reg::R1));
        self.copy_str(d, self.cap);
        self.jump(done);
        self.bind(kernel);
        self.str_const_at(d, "kernel");
        self.jump(done);
        self.bind(unknown);
        self.push(insn::st_imm(Size::B, SCRATCH, d as i16, 0));
        self.bind(done);
    }

    pub(super) fn sprintf(&mut self, dst: Var, fmt: FmtId, args: &[Var]) -> Result<(), EmitError> {
        let kernel = kernel_format(&self.program.formats[fmt].format).map_err(|what| self.unsupported(&what))?;
        if args.len() > SNPRINTF_MAX_ARGS as usize {
            return Err(self.unsupported(&format!("`sprintf` with more than {SNPRINTF_MAX_ARGS} arguments")));
        }
        let off = self.scratch(dst);
        self.snprintf(off, &kernel, args);
        Ok(())
    }

    /// `substr(s, start, length)` into scratch `d`: the bytes of s from `start`, at most
    /// `length`; "" past the end.
    pub(super) fn substr(&mut self, d: u32, args: &[Var]) {
        let empty = self.new_label();
        let done = self.new_label();
        self.str_addr(Reg::R3, args[0]);
        self.copy_str(self.tmp_len_probe(), self.cap);
        // r0 = strlen + 1; spill it while the bounds are worked out.
        self.push(insn::stx(Size::DW, Reg::R10, Reg::R0, SPILL));
        self.load(Reg::R4, args[1]);
        self.jump_if_imm(JmpOp::Slt, Reg::R4, 0, empty);
        self.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, SPILL));
        self.push(insn::alu64_imm(AluOp::Sub, Reg::R0, 1));
        self.jump_if_reg(JmpOp::Sge, Reg::R4, Reg::R0, empty);
        self.push(insn::alu64_imm(AluOp::And, Reg::R4, (self.cap.next_power_of_two() - 1) as i32));
        self.jump_if_imm(JmpOp::Ge, Reg::R4, self.cap as i32, empty);
        self.load(Reg::R2, args[2]);
        self.jump_if_imm(JmpOp::Sle, Reg::R2, 0, empty);
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        // Unsigned: after `+ 1` the verifier no longer knows the length is positive
        // (it could have wrapped), and a signed bound would leave it unbounded below.
        self.push(insn::jmp_imm(JmpOp::Le, Reg::R2, self.cap as i32, 1));
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.str_addr(Reg::R3, args[0]);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R3, Reg::R4));
        self.scratch_addr(Reg::R1, d);
        self.push(insn::call(Helper::ProbeReadKernelStr));
        self.jump(done);
        self.bind(empty);
        self.push(insn::st_imm(Size::B, SCRATCH, d as i16, 0));
        self.bind(done);
    }

    /// r0 = `stringat(s, i)`: the byte at `i`, 0 outside the string.
    pub(super) fn stringat(&mut self, args: &[Var]) {
        let zero = self.new_label();
        let done = self.new_label();
        self.load(Reg::R1, args[1]);
        self.jump_if_imm(JmpOp::Slt, Reg::R1, 0, zero);
        self.jump_if_imm(JmpOp::Sge, Reg::R1, self.cap as i32, zero);
        self.push(insn::alu64_imm(AluOp::And, Reg::R1, (self.cap.next_power_of_two() - 1) as i32));
        self.jump_if_imm(JmpOp::Ge, Reg::R1, self.cap as i32, zero);
        self.str_addr(Reg::R2, args[0]);
        self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R1));
        self.push(insn::ldx(Size::B, Reg::R0, Reg::R2, 0));
        self.jump(done);
        self.bind(zero);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.bind(done);
    }

    /// `symname(addr)` (`with_offset`: `symdata`) into scratch `off`, from the kernel's own
    /// symbol table through bpf_snprintf: `%ps` is the name, `%pS` adds `+0xoffset/0xsize`, and
    /// both ` [module]` for a module's symbol; both give the address in hex when no symbol
    /// holds it, as SystemTap does.
    pub(super) fn symbol_name(&mut self, off: u32, arg: Var, with_offset: bool) {
        if with_offset {
            self.snprintf(off, "%pS", &[arg]);
        } else {
            // SystemTap's symname is the name alone: cut at the module's space.
            let done = self.new_label();
            self.snprintf(off, "%ps", &[arg]);
            self.find_space(off);
            self.jump_if_imm(JmpOp::Eq, Reg::R0, 0, done);
            self.push(insn::st_imm(Size::B, Reg::R2, 0, 0));
            self.bind(done);
        }
    }

    /// r0 = `strtol(s, base)`.
    pub(super) fn strtol(&mut self, args: &[Var]) -> Result<(), EmitError> {
        let base = self.consts.get(&args[1]).copied();
        if !matches!(base, Some(0 | 8 | 10 | 16)) {
            return Err(self.unsupported("`strtol` with a base other than a constant 0, 8, 10 or 16"));
        }
        // bpf_strtol: leading spaces, a sign, then digits up to the first other byte;
        // a string with none gives 0, as SystemTap's does.
        self.push(insn::st_imm(Size::DW, SCRATCH, self.tmp_off as i16, 0));
        self.str_addr(Reg::R1, args[0]);
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.push(insn::mov64_imm(Reg::R3, base.unwrap_or(0)));
        self.scratch_addr(Reg::R4, self.tmp_off);
        self.push(insn::call(Helper::Strtol));
        self.push(insn::ldx(Size::DW, Reg::R0, SCRATCH, self.tmp_off as i16));
        Ok(())
    }

    /// The stack as text at scratch offset `dst`: `bpf_get_stack` reads up to `MAX_FRAMES`
    /// return addresses (from the interrupted registers in a perf event), then each frame is
    /// appended with bpf_snprintf while there is room, so the text is cut at the string
    /// capacity as SystemTap cuts it at MAXSTRINGLEN. Kernel frames print as `%pS` (the
    /// kernel's `name+0xoff/0xsize`); user frames as SystemTap prints an address it cannot
    /// name, its `%p`: `0x` and the hex digits.
    pub(super) fn backtrace(&mut self, dst: u32, user: bool, symbols: bool) {
        let format = match (user, symbols) {
            (false, true) => "%pS\n",
            (true, true) => "0x%lx\n",
            (_, false) => "0x%lx ",
        };
        let (bytes, len) = (self.tmp_off, self.tmp_off + 8);
        let done = self.new_label();
        self.push(insn::st_imm(Size::B, SCRATCH, dst as i16, 0));
        self.push(insn::st_imm(Size::DW, SCRATCH, len as i16, 0));
        self.push(insn::mov64_reg(Reg::R1, CTX));
        self.scratch_addr(Reg::R2, self.frames_off);
        self.push(insn::mov64_imm(Reg::R3, (MAX_FRAMES * 8) as i32));
        self.push(insn::mov64_imm(Reg::R4, if user { BPF_F_USER_STACK } else { 0 }));
        self.push(insn::call(Helper::GetStack));
        self.push(insn::stx(Size::DW, SCRATCH, Reg::R0, bytes as i16));
        // Unrolled: the verifier sees each frame's bounds without a loop to prove.
        for frame in 0..MAX_FRAMES {
            self.push(insn::ldx(Size::DW, Reg::R0, SCRATCH, bytes as i16));
            self.jump_if_imm(JmpOp::Sle, Reg::R0, (frame * 8) as i32, done);
            self.push(insn::ldx(Size::DW, Reg::R0, SCRATCH, (self.frames_off + frame * 8) as i16));
            self.push(insn::stx(Size::DW, SCRATCH, Reg::R0, self.args_off as i16));
            // r1 = the length so far, below the capacity less the NUL: the room left, r2, is
            // then 2..=cap, and the slot of slack after every string slot (see `concat`)
            // keeps the verifier's worst case, longest text and most room, in scratch.
            self.push(insn::ldx(Size::DW, Reg::R3, SCRATCH, len as i16));
            self.jump_if_imm(JmpOp::Ge, Reg::R3, self.cap as i32 - 1, done);
            self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
            self.push(insn::alu64_reg(AluOp::Sub, Reg::R2, Reg::R3));
            self.scratch_addr(Reg::R1, dst);
            self.push(insn::alu64_reg(AluOp::Add, Reg::R1, Reg::R3));
            self.rodata_ptr(Reg::R3, format);
            self.scratch_addr(Reg::R4, self.args_off);
            self.push(insn::mov64_imm(Reg::R5, 8));
            self.push(insn::call(Helper::Snprintf));
            // r0 = the whole line's length with its NUL, more than the room when it was cut.
            self.jump_if_imm(JmpOp::Sle, Reg::R0, 0, done);
            self.push(insn::alu64_imm(AluOp::Sub, Reg::R0, 1));
            self.push(insn::ldx(Size::DW, Reg::R1, SCRATCH, len as i16));
            self.push(insn::alu64_reg(AluOp::Add, Reg::R1, Reg::R0));
            self.push(insn::stx(Size::DW, SCRATCH, Reg::R1, len as i16));
        }
        self.bind(done);
    }

    /// Formats the address in the scratch temporary buffer with a `%pI` conversion.
    pub(super) fn ip_to_str(&mut self, dst: Var, conversion: &str) {
        let off = self.scratch(dst);
        self.scratch_addr(Reg::R0, self.tmp_off);
        self.push(insn::stx(Size::DW, SCRATCH, Reg::R0, self.args_off as i16));
        self.scratch_addr(Reg::R1, off);
        self.push(insn::mov64_imm(Reg::R2, self.cap as i32));
        self.rodata_ptr(Reg::R3, conversion);
        self.scratch_addr(Reg::R4, self.args_off);
        self.push(insn::mov64_imm(Reg::R5, 8));
        self.push(insn::call(Helper::Snprintf));
    }
}

/// A SystemTap format in the dialect of the kernel's `bpf_snprintf`: every integer
/// conversion takes a 64-bit argument (`%lld`), pointers print as `0x%016llx`.
/// The kernel has no `*` width, no `#` flag and no `%o`.
pub fn kernel_format(format: &Format) -> Result<String, String> {
    let mut out = String::new();
    for piece in &format.pieces {
        let c = match piece {
            Piece::Literal(text) => {
                out.push_str(&text.replace('%', "%%"));
                continue;
            }
            Piece::Conversion(c) => c,
        };
        if c.width == Count::Arg || c.precision == Some(Count::Arg) {
            return Err("`*` widths in `sprintf`".to_string());
        }
        if c.flags.alternate {
            return Err("the `#` flag in `sprintf`".to_string());
        }
        let mut spec = String::from("%");
        for (set, flag) in [(c.flags.left, '-'), (c.flags.plus, '+'), (c.flags.space, ' '), (c.flags.zero, '0')] {
            if set {
                spec.push(flag);
            }
        }
        if let Count::Fixed(n) = c.width {
            spec.push_str(&n.to_string());
        }
        if let Some(Count::Fixed(n)) = c.precision {
            spec.push_str(&format!(".{n}"));
        }
        let conversion = match c.kind {
            ConvKind::Signed => "lld",
            ConvKind::Unsigned => "llu",
            ConvKind::HexLower => "llx",
            ConvKind::HexUpper => "llX",
            ConvKind::Str => "s",
            ConvKind::Char => "c",
            ConvKind::Pointer => {
                out.push_str("0x%016llx");
                continue;
            }
            ConvKind::Octal => return Err("`%o` in `sprintf`".to_string()),
            ConvKind::Binary | ConvKind::Memory | ConvKind::MemoryHex => {
                return Err("`%b`, `%m` and `%M` in `sprintf`".to_string())
            }
        };
        out.push_str(&spec);
        out.push_str(conversion);
    }
    Ok(out)
}

/// The errno values `errno_str` finds in its table in kernel probes (Linux's last is 133),
/// and the bytes of one entry: the longest name, `ENOTRECOVERABLE`, and its NUL.
pub(super) const ERRNO_MAX: i64 = 133;

pub(super) const ERRNO_ENTRY: u32 = 16;
