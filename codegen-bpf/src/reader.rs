//! The program through which user-space handlers (`begin`, `end`, timers) read kernel
//! memory: `kernel_string(p)` of a pointer a kernel probe kept, `@cast(p, "task_struct")->comm`
//! in an `end` probe. bpftap runs those handlers itself, and user space cannot read the
//! kernel's memory (there may be no /proc/kcore); a `BPF_PROG_TYPE_SYSCALL` program can, run
//! on demand with `BPF_PROG_TEST_RUN`, as SystemTap's handlers read it in the kernel.
//!
//! Its context, read and written back by the run, is `addr: u64` to read from; `len: u64`,
//! on the way in the bytes of a scalar read (1 to 8), 0 for a string of up to
//! [`READER_CHUNK`] bytes with its NUL, or [`READER_CURRENT_TASK`], on the way out what the
//! helper returned (negative on a fault); then [`READER_CHUNK`] bytes read. Longer strings
//! are read a chunk at a time.
//!
//! `task_current()` in a user-space handler is the task that runs it, bpftap itself, as
//! SystemTap's `begin` runs in its own tool's process: the run happens in bpftap's syscall,
//! so the program's current task is bpftap's (a tapset's `begin` finds its terminal so).

use crate::insn::{self, AluOp, Helper, Insn, JmpOp, Reg, Size};

/// The bytes one run reads at most, and the buffer at the end of the context.
pub const READER_CHUNK: u32 = 256;
/// The bytes before the buffer in the context.
pub const READER_HEADER: u32 = 16;
/// The `len` asking for the current task's address in place of a read (-1 as a u64).
pub const READER_CURRENT_TASK: u64 = u64::MAX;

/// The reader's instructions. Helpers cannot write to a syscall program's context, so it
/// reads to the stack and copies the chunk to the context word by word.
pub fn kernel_reader() -> Vec<Insn> {
    let ctx = Reg::R6;
    let buf = -(READER_CHUNK as i16);
    let words = (READER_CHUNK / 8) as i16;
    let mut insns: Vec<Insn> = (0..words).map(|k| insn::st_imm(Size::DW, Reg::R10, buf + 8 * k, 0)).collect();
    insns.extend([
        insn::mov64_reg(ctx, Reg::R1),
        insn::ldx(Size::DW, Reg::R3, ctx, 0),
        insn::ldx(Size::DW, Reg::R2, ctx, 8),
        insn::jmp_imm(JmpOp::Ne, Reg::R2, READER_CURRENT_TASK as i64 as i32, 4),
        insn::call(Helper::GetCurrentTask),
        insn::stx(Size::DW, ctx, Reg::R0, 8),
        insn::mov64_imm(Reg::R0, 0),
        insn::exit(),
        insn::mov64_reg(Reg::R1, Reg::R10),
        insn::alu64_imm(AluOp::Add, Reg::R1, buf as i32),
        // A scalar of 1 to 8 bytes, or on to the string read.
        insn::jmp_imm(JmpOp::Eq, Reg::R2, 0, 4),
        insn::jmp_imm(JmpOp::Le, Reg::R2, 8, 1),
        insn::mov64_imm(Reg::R2, 8),
        insn::call(Helper::ProbeReadKernel),
        insn::ja(2),
        insn::mov64_imm(Reg::R2, READER_CHUNK as i32),
        insn::call(Helper::ProbeReadKernelStr),
        insn::stx(Size::DW, ctx, Reg::R0, 8),
    ]);
    for k in 0..words {
        insns.push(insn::ldx(Size::DW, Reg::R1, Reg::R10, buf + 8 * k));
        insns.push(insn::stx(Size::DW, ctx, Reg::R1, READER_HEADER as i16 + 8 * k));
    }
    insns.extend([insn::mov64_imm(Reg::R0, 0), insn::exit()]);
    insns
}
