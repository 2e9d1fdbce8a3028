//! `=~` in a kernel probe: a walk of the pattern's DFA table (see [`lang::regex::DfaTable`])
//! over the subject string, one table read per byte.
//!
//! The table lives in `.rodata`, `u16` states, 256 entries per state; the walk is a loop of
//! at most the string capacity, so the verifier sees it end. Each index is checked against
//! the table's length before the read, which both proves the read in bounds and stops a
//! walk that could only come from a corrupt table.

use lang::ir::{RegexId, Var};
use lang::regex::MATCHED;

use super::{EmitError, Emitter, Label};
use crate::insn::{self, AluOp, JmpOp, Reg, Size};

/// Registers of the walk (no helper call happens inside it).
const TEXT: Reg = Reg::R1;
const TABLE: Reg = Reg::R2;
const STATE: Reg = Reg::R3;
const COUNT: Reg = Reg::R4;
const BYTE: Reg = Reg::R5;

impl Emitter<'_> {
    /// `dst = subject =~ regex`.
    pub(super) fn regex_match(&mut self, dst: Var, regex: RegexId, subject: Var) -> Result<(), EmitError> {
        // `lower` refuses a pattern without a table in a kernel probe.
        let Ok(table) = &self.program.regexes[regex].table else {
            return Err(self.unsupported("a regular expression this large"));
        };
        let (entries, start) = (table.next.len() as i32, table.start as i32);
        let off = self.rodata.intern_bytes(&table.to_le_bytes());
        let (top, done, dead) = (self.new_label(), self.new_label(), self.new_label());
        self.str_addr(TEXT, subject);
        self.rodata_ptr_at(TABLE, off);
        self.push(insn::mov64_imm(STATE, start));
        self.push(insn::mov64_imm(COUNT, 0));
        self.bind(top);
        self.push(insn::ldx(Size::B, BYTE, TEXT, 0));
        self.next_state(entries, dead);
        self.jump_if_imm(JmpOp::Le, STATE, MATCHED as i32, done);
        self.push(insn::alu64_imm(AluOp::Add, TEXT, 1));
        self.push(insn::alu64_imm(AluOp::Add, COUNT, 1));
        self.jump_if_imm(JmpOp::Lt, COUNT, self.cap as i32, top);
        // No NUL within the capacity: the string ends here.
        self.push(insn::mov64_imm(BYTE, 0));
        self.next_state(entries, dead);
        self.jump(done);
        self.bind(dead);
        self.push(insn::mov64_imm(STATE, 0));
        self.bind(done);
        self.push(insn::mov64_imm(Reg::R0, 1));
        self.push(insn::jmp_imm(JmpOp::Eq, STATE, MATCHED as i32, 1));
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.store(dst, Reg::R0);
        Ok(())
    }

    /// `STATE = table[STATE * 256 + BYTE]`, or a jump to `dead` for an index past the table.
    fn next_state(&mut self, entries: i32, dead: Label) {
        self.push(insn::mov64_reg(Reg::R0, STATE));
        self.push(insn::alu64_imm(AluOp::Lsh, Reg::R0, 8));
        self.push(insn::alu64_reg(AluOp::Or, Reg::R0, BYTE));
        self.jump_if_imm(JmpOp::Ge, Reg::R0, entries, dead);
        self.push(insn::alu64_imm(AluOp::Lsh, Reg::R0, 1));
        self.push(insn::mov64_reg(BYTE, TABLE));
        self.push(insn::alu64_reg(AluOp::Add, BYTE, Reg::R0));
        self.push(insn::ldx(Size::H, STATE, BYTE, 0));
    }
}
