//! A syscall probe on raw_syscalls' raw tracepoint: reads of the syscall tracepoint's record
//! served from the raw tracepoint's `(regs, id or ret)` (see `ProgramContext::Syscall`).

use super::*;

impl Emitter<'_> {
    /// r0 = the 8 bytes a syscall tracepoint's record holds in `slot`. A `raw_tp` program
    /// (attached by name: no BTF lookup at start) sees the raw tracepoint's `regs` as a plain
    /// number, so what it points at is read with `bpf_probe_read_kernel`.
    pub(super) fn load_syscall_slot(&mut self, slot: SyscallSlot, exit: bool) {
        let regs_at = |e: &mut Self, off: i16| {
            e.push(insn::mov64_reg(Reg::R1, Reg::R10));
            e.push(insn::alu64_imm(AluOp::Add, Reg::R1, READ_BUF as i32));
            e.push(insn::mov64_imm(Reg::R2, 8));
            e.push(insn::ldx(Size::DW, Reg::R3, CTX, 0));
            e.push(insn::alu64_imm(AluOp::Add, Reg::R3, off as i32));
            e.push(insn::call(Helper::ProbeReadKernel));
            e.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, READ_BUF));
        };
        match slot {
            SyscallSlot::Number if exit => regs_at(self, self.regs().syscall_nr),
            SyscallSlot::Number | SyscallSlot::Result => self.push(insn::ldx(Size::DW, Reg::R0, CTX, 8)),
            SyscallSlot::Arg(i) => regs_at(self, self.regs().syscall_args[i]),
        }
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
