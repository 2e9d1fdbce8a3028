//! A syscall probe on raw_syscalls' raw tracepoint: reads of the syscall tracepoint's record
//! served from the raw tracepoint's `(regs, id or ret)` (see `ProgramContext::Syscall`).

use super::*;

impl Emitter<'_> {
    /// r0 = the 8 bytes a syscall tracepoint's record holds in `slot`. A `raw_tp` program
    /// (attached by name: no BTF lookup at start) sees the raw tracepoint's `regs` as a plain
    /// number, so what it points at is read with `bpf_probe_read_kernel`.
    pub(super) fn load_syscall_slot(&mut self, slot: SyscallSlot, exit: bool) {
        match self.regs_offset(slot, exit) {
            Some(off) => {
                self.read_regs(off, READ_BUF);
                self.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, READ_BUF));
            }
            None => self.push(insn::ldx(Size::DW, Reg::R0, CTX, 8)),
        }
    }

    /// `dst` = the 8-byte record field at `offset` where `regs` holds it: read straight
    /// into `dst`'s stack slot, not through the read buffer and r0. False (nothing emitted)
    /// for the fields `load_syscall_slot` serves otherwise.
    pub(super) fn read_syscall_slot_home(&mut self, dst: Var, offset: u32, size: u8, exit: bool) -> bool {
        let slot = syscall_record_slot(offset, exit).unwrap_or(SyscallSlot::Number);
        let Some(off) = self.regs_offset(slot, exit).filter(|_| size == 8) else { return false };
        let home = self.stack(dst);
        self.read_regs(off, home);
        self.forget(dst);
        true
    }

    /// The offset in `regs` of what `slot` holds, or `None` where the raw tracepoint's
    /// second argument holds it (the entry's number, the exit's result).
    fn regs_offset(&self, slot: SyscallSlot, exit: bool) -> Option<i16> {
        match slot {
            SyscallSlot::Number if exit => Some(self.regs().syscall_nr),
            SyscallSlot::Number | SyscallSlot::Result => None,
            SyscallSlot::Arg(i) => Some(self.regs().syscall_args[i]),
        }
    }

    /// The 8 bytes at `regs + off` into the stack at `r10 + into`.
    fn read_regs(&mut self, off: i16, into: i16) {
        self.push(insn::mov64_reg(Reg::R1, Reg::R10));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R1, into as i32));
        self.push(insn::mov64_imm(Reg::R2, 8));
        self.push(insn::ldx(Size::DW, Reg::R3, CTX, 0));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R3, off as i32));
        self.push(insn::call(Helper::ProbeReadKernel));
    }
}

/// What a syscall tracepoint's record holds at an offset (see `ProgramContext::Syscall`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SyscallSlot {
    Number,
    Arg(usize),
    Result,
}

/// The slot at `offset` of the record of a syscall's entry, or of its `exit`; the common
/// fields before offset 8 (`common_pid`...) are not in the raw tracepoint's arguments.
pub(super) fn syscall_record_slot(offset: u32, exit: bool) -> Option<SyscallSlot> {
    match (offset, exit) {
        (8, _) => Some(SyscallSlot::Number),
        (16, true) => Some(SyscallSlot::Result),
        (16.., false) if offset % 8 == 0 && offset < 16 + 8 * 6 => Some(SyscallSlot::Arg((offset as usize - 16) / 8)),
        _ => None,
    }
}

/// A syscall probe's handler reads only what `Emitter::load_syscall_slot` serves.
pub(super) fn check_syscall_reads(func: &Function, exit: bool) -> Result<(), EmitError> {
    for inst in func.blocks.values().flat_map(|b| &b.insts) {
        let served = match inst.kind {
            InstKind::LoadContext { offset, .. } => syscall_record_slot(offset, exit).is_some(),
            InstKind::LoadContextStr { .. } | InstKind::LoadContextDataLoc { .. } => false,
            _ => true,
        };
        if !served {
            let what = "this field of a syscall tracepoint's record on raw_syscalls (bpftap reads the \
                        syscall's number, arguments and result there)";
            return Err(EmitError::Unsupported { what: what.into(), span: inst.span });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{syscall_record_slot, SyscallSlot};

    #[test]
    fn a_syscall_record_offset_names_its_slot() {
        // sys_enter_openat: __syscall_nr at 8, dfd at 16, filename 24, flags 32, mode 40.
        assert_eq!(syscall_record_slot(8, false), Some(SyscallSlot::Number));
        assert_eq!(syscall_record_slot(24, false), Some(SyscallSlot::Arg(1)));
        assert_eq!(syscall_record_slot(56, false), Some(SyscallSlot::Arg(5)));
        assert_eq!(syscall_record_slot(64, false), None);
        // sys_exit_openat: __syscall_nr at 8, ret at 16.
        assert_eq!(syscall_record_slot(16, true), Some(SyscallSlot::Result));
        assert_eq!(syscall_record_slot(24, true), None);
        // common_pid and the other common fields are not in the raw tracepoint's arguments.
        assert_eq!(syscall_record_slot(4, false), None);
        assert_eq!(syscall_record_slot(20, false), None);
    }
}
