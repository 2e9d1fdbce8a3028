//! BPF instruction encoding, and nothing else.
//!
//! In: register numbers, opcodes, offsets and immediates chosen by the emitter.
//! Out: [`Insn`] values, 8 bytes each once encoded (`ld_imm64` takes two).
//!
//! The layout is the kernel's `struct bpf_insn` (little endian, as every BPF object we
//! write is little endian):
//!
//! ```text
//! byte 0     byte 1             bytes 2-3   bytes 4-7
//! code       src<<4 | dst       off (i16)   imm (i32)
//! ```
//!
//! `code` is `op | source | class` for ALU and JMP classes and `mode | size | class` for
//! loads and stores. The constants below carry the kernel's names without the `BPF_`
//! prefix; see `include/uapi/linux/bpf_common.h` and `include/uapi/linux/bpf.h`.
//!
//! Invariant: a constructor never fails and never checks semantics (offset ranges, stack
//! bounds, register use); the verifier and `emit::fixup` (jump offsets) own those rules.

/// Instruction classes: the low three bits of `code`.
pub mod class {
    /// Non-standard loads: `ld_imm64` (mode `IMM`, size `DW`) and the legacy packet loads.
    pub const LD: u8 = 0x00;
    /// Load from memory into a register.
    pub const LDX: u8 = 0x01;
    /// Store an immediate into memory.
    pub const ST: u8 = 0x02;
    /// Store a register into memory; also the atomic operations (mode `ATOMIC`).
    pub const STX: u8 = 0x03;
    /// 32-bit arithmetic; writes zero the upper half of the destination.
    pub const ALU: u8 = 0x04;
    /// 64-bit jumps, calls and exit.
    pub const JMP: u8 = 0x05;
    /// Jumps that compare the lower 32 bits only.
    pub const JMP32: u8 = 0x06;
    /// 64-bit arithmetic.
    pub const ALU64: u8 = 0x07;
}

/// Access sizes for loads and stores: bits 3-4 of `code`.
pub mod size {
    /// 4 bytes.
    pub const W: u8 = 0x00;
    /// 2 bytes.
    pub const H: u8 = 0x08;
    /// 1 byte.
    pub const B: u8 = 0x10;
    /// 8 bytes.
    pub const DW: u8 = 0x18;
}

/// Addressing modes for loads and stores: bits 5-7 of `code`.
pub mod mode {
    /// Immediate (`ld_imm64`).
    pub const IMM: u8 = 0x00;
    /// Legacy packet load at an absolute offset (socket filters only).
    pub const ABS: u8 = 0x20;
    /// Legacy packet load at a register-relative offset (socket filters only).
    pub const IND: u8 = 0x40;
    /// Ordinary memory access `*(size *)(reg + off)`.
    pub const MEM: u8 = 0x60;
    /// Sign-extending load (cpu v4).
    pub const MEMSX: u8 = 0x80;
    /// Atomic read-modify-write; the operation is in `imm`, see [`atomic`](super::atomic).
    pub const ATOMIC: u8 = 0xc0;
}

/// Operand source for ALU and JMP classes: bit 3 of `code`.
pub mod source {
    /// The operand is `imm`.
    pub const K: u8 = 0x00;
    /// The operand is the `src` register.
    pub const X: u8 = 0x08;
}

/// ALU operations: bits 4-7 of `code` in the `ALU` and `ALU64` classes.
pub mod alu {
    pub const ADD: u8 = 0x00;
    pub const SUB: u8 = 0x10;
    pub const MUL: u8 = 0x20;
    /// Unsigned division (signed with `off == 1`, cpu v4). Division by zero gives zero.
    pub const DIV: u8 = 0x30;
    pub const OR: u8 = 0x40;
    pub const AND: u8 = 0x50;
    pub const LSH: u8 = 0x60;
    /// Logical right shift.
    pub const RSH: u8 = 0x70;
    /// `dst = -dst`; no operand.
    pub const NEG: u8 = 0x80;
    /// Unsigned modulo (signed with `off == 1`, cpu v4). Modulo by zero leaves `dst`.
    pub const MOD: u8 = 0x90;
    pub const XOR: u8 = 0xa0;
    /// `dst = operand`; with `off` 8, 16 or 32 a sign-extending move (cpu v4).
    pub const MOV: u8 = 0xb0;
    /// Arithmetic right shift.
    pub const ARSH: u8 = 0xc0;
    /// Byte swap; `imm` is the width (16, 32, 64), the source bit picks the target order.
    pub const END: u8 = 0xd0;
}

/// Byte order targets of `alu::END` (in the source bit position).
pub mod end {
    /// Convert to little endian (a truncation on our little-endian targets).
    pub const TO_LE: u8 = 0x00;
    /// Convert to big endian (a swap on our little-endian targets).
    pub const TO_BE: u8 = 0x08;
}

/// JMP operations: bits 4-7 of `code` in the `JMP` and `JMP32` classes.
pub mod jmp {
    /// Unconditional jump by `off` (by `imm` in `JMP32`, "gotol").
    pub const JA: u8 = 0x00;
    pub const JEQ: u8 = 0x10;
    /// Unsigned `>`.
    pub const JGT: u8 = 0x20;
    /// Unsigned `>=`.
    pub const JGE: u8 = 0x30;
    /// Jump if `dst & operand` is non-zero.
    pub const JSET: u8 = 0x40;
    pub const JNE: u8 = 0x50;
    /// Signed `>`.
    pub const JSGT: u8 = 0x60;
    /// Signed `>=`.
    pub const JSGE: u8 = 0x70;
    /// Helper call (`imm` = helper id), or a BPF-to-BPF call with `src` = `PSEUDO_CALL`.
    pub const CALL: u8 = 0x80;
    /// Return `r0`.
    pub const EXIT: u8 = 0x90;
    /// Unsigned `<`.
    pub const JLT: u8 = 0xa0;
    /// Unsigned `<=`.
    pub const JLE: u8 = 0xb0;
    /// Signed `<`.
    pub const JSLT: u8 = 0xc0;
    /// Signed `<=`.
    pub const JSLE: u8 = 0xd0;
}

/// Operations of `mode::ATOMIC`, carried in `imm`.
pub mod atomic {
    pub const ADD: i32 = 0x00;
    pub const OR: i32 = 0x40;
    pub const AND: i32 = 0x50;
    pub const XOR: i32 = 0xa0;
    /// Flag: also load the old value into the `src` register.
    pub const FETCH: i32 = 0x01;
    /// Exchange; always fetches.
    pub const XCHG: i32 = 0xe0 | FETCH;
    /// Compare `r0` with memory and exchange with `src` if equal; old value in `r0`.
    pub const CMPXCHG: i32 = 0xf0 | FETCH;
}

/// Values of the `src` field that give `ld_imm64` and `call` a special meaning.
pub mod pseudo {
    /// `ld_imm64`: `imm` is a map file descriptor; loads the map pointer.
    pub const MAP_FD: u8 = 1;
    /// `ld_imm64`: `imm` is a map fd and the second `imm` an offset into its value 0.
    pub const MAP_VALUE: u8 = 2;
    /// `ld_imm64`: `imm` is a BTF id of a kernel variable.
    pub const BTF_ID: u8 = 3;
    /// `ld_imm64`: `imm` is the relative instruction offset of a BPF function, loaded as a
    /// callback for a helper such as `for_each_map_elem`.
    pub const FUNC: u8 = 4;
    /// `call`: `imm` is the relative instruction offset of a BPF function.
    pub const CALL: u8 = 1;
    /// `call`: `imm` is the BTF id of a kernel function (kfunc).
    pub const KFUNC_CALL: u8 = 2;
}

/// A BPF register. `R0` holds return values, `R1`-`R5` arguments (clobbered by calls),
/// `R6`-`R9` survive calls, `R10` is the read-only frame pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reg(pub u8);

impl Reg {
    pub const R0: Reg = Reg(0);
    pub const R1: Reg = Reg(1);
    pub const R2: Reg = Reg(2);
    pub const R3: Reg = Reg(3);
    pub const R4: Reg = Reg(4);
    pub const R5: Reg = Reg(5);
    pub const R6: Reg = Reg(6);
    pub const R7: Reg = Reg(7);
    pub const R8: Reg = Reg(8);
    pub const R9: Reg = Reg(9);
    /// The frame pointer; the stack is the 512 bytes below it.
    pub const R10: Reg = Reg(10);
    /// Alias of [`Reg::R10`].
    pub const FP: Reg = Reg(10);
}

/// Load and store widths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Size {
    B = size::B,
    H = size::H,
    W = size::W,
    DW = size::DW,
}

impl Size {
    /// Width in bytes.
    pub const fn bytes(self) -> u32 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    /// The size bits of a load/store `code`.
    pub const fn from_code(code: u8) -> Size {
        match code & 0x18 {
            size::B => Size::B,
            size::H => Size::H,
            size::W => Size::W,
            _ => Size::DW,
        }
    }
}

/// Binary ALU operations usable with both an immediate and a register operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AluOp {
    Add = alu::ADD,
    Sub = alu::SUB,
    Mul = alu::MUL,
    Div = alu::DIV,
    Or = alu::OR,
    And = alu::AND,
    Lsh = alu::LSH,
    Rsh = alu::RSH,
    Mod = alu::MOD,
    Xor = alu::XOR,
    Mov = alu::MOV,
    Arsh = alu::ARSH,
}

/// Conditional jump operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum JmpOp {
    Eq = jmp::JEQ,
    Ne = jmp::JNE,
    /// Unsigned.
    Gt = jmp::JGT,
    Ge = jmp::JGE,
    Lt = jmp::JLT,
    Le = jmp::JLE,
    /// Signed.
    Sgt = jmp::JSGT,
    Sge = jmp::JSGE,
    Slt = jmp::JSLT,
    Sle = jmp::JSLE,
    /// `dst & operand != 0`.
    Set = jmp::JSET,
}

/// One 8-byte BPF instruction. `dst` and `src` are 4-bit register numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The size of an encoded instruction.
    pub const SIZE: usize = 8;

    /// Encodes in the kernel's little-endian layout.
    ///
    /// ```
    /// use codegen_bpf::insn::{mov64_imm, Reg};
    /// // r1 = 42
    /// assert_eq!(mov64_imm(Reg::R1, 42).to_bytes(), [0xb7, 0x01, 0, 0, 42, 0, 0, 0]);
    /// ```
    pub const fn to_bytes(self) -> [u8; 8] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [self.code, (self.src << 4) | (self.dst & 0x0f), off[0], off[1], imm[0], imm[1], imm[2], imm[3]]
    }

    /// Decodes the kernel's little-endian layout; every byte pattern is some `Insn`.
    ///
    /// ```
    /// use codegen_bpf::insn::{ldx, Insn, Reg, Size};
    /// // r1 = *(u64 *)(r10 -8)
    /// let bytes = [0x79, 0xa1, 0xf8, 0xff, 0, 0, 0, 0];
    /// assert_eq!(Insn::from_bytes(bytes), ldx(Size::DW, Reg::R1, Reg::R10, -8));
    /// ```
    pub const fn from_bytes(b: [u8; 8]) -> Insn {
        Insn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// The class bits of `code` (one of the [`class`] constants).
    pub const fn class(self) -> u8 {
        self.code & 0x07
    }

    /// True for the first half of a two-slot `ld_imm64`.
    pub const fn is_ld_imm64(self) -> bool {
        self.code == class::LD | mode::IMM | size::DW
    }
}

/// Encodes a sequence of instructions back to back.
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|insn| insn.to_bytes()).collect()
}

/// Decodes back-to-back instructions; trailing bytes that do not fill one are ignored.
pub fn decode(bytes: &[u8]) -> Vec<Insn> {
    bytes.chunks_exact(Insn::SIZE).map(|c| Insn::from_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()
}

const fn insn(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
    Insn { code, dst: dst.0, src: src.0, off, imm }
}

// ---- ALU ----

/// `dst = imm` (sign-extended to 64 bits).
pub const fn mov64_imm(dst: Reg, imm: i32) -> Insn {
    alu64_imm(AluOp::Mov, dst, imm)
}

/// `dst = src`.
///
/// ```
/// use codegen_bpf::insn::{mov64_reg, Reg};
/// assert_eq!(mov64_reg(Reg::R6, Reg::R1).to_bytes(), [0xbf, 0x16, 0, 0, 0, 0, 0, 0]);
/// ```
pub const fn mov64_reg(dst: Reg, src: Reg) -> Insn {
    alu64_reg(AluOp::Mov, dst, src)
}

/// `dst op= imm`, 64-bit.
///
/// ```
/// use codegen_bpf::insn::{alu64_imm, AluOp, Reg};
/// // r0 >>= 32
/// assert_eq!(alu64_imm(AluOp::Rsh, Reg::R0, 32).to_bytes(), [0x77, 0, 0, 0, 32, 0, 0, 0]);
/// ```
pub const fn alu64_imm(op: AluOp, dst: Reg, imm: i32) -> Insn {
    insn(class::ALU64 | op as u8 | source::K, dst, Reg(0), 0, imm)
}

/// `dst op= src`, 64-bit.
pub const fn alu64_reg(op: AluOp, dst: Reg, src: Reg) -> Insn {
    insn(class::ALU64 | op as u8 | source::X, dst, src, 0, 0)
}

/// `dst op= imm` on the lower 32 bits; the upper 32 bits of `dst` become zero.
pub const fn alu32_imm(op: AluOp, dst: Reg, imm: i32) -> Insn {
    insn(class::ALU | op as u8 | source::K, dst, Reg(0), 0, imm)
}

/// `dst op= src` on the lower 32 bits; the upper 32 bits of `dst` become zero.
pub const fn alu32_reg(op: AluOp, dst: Reg, src: Reg) -> Insn {
    insn(class::ALU | op as u8 | source::X, dst, src, 0, 0)
}

/// `w_dst = imm`, zero-extended.
pub const fn mov32_imm(dst: Reg, imm: i32) -> Insn {
    alu32_imm(AluOp::Mov, dst, imm)
}

/// `w_dst = w_src`, zero-extended: the cheap way to truncate to 32 bits.
pub const fn mov32_reg(dst: Reg, src: Reg) -> Insn {
    alu32_reg(AluOp::Mov, dst, src)
}

/// `dst = -dst`, 64-bit.
pub const fn neg64(dst: Reg) -> Insn {
    insn(class::ALU64 | alu::NEG | source::K, dst, Reg(0), 0, 0)
}

/// `dst = -dst` on the lower 32 bits.
pub const fn neg32(dst: Reg) -> Insn {
    insn(class::ALU | alu::NEG | source::K, dst, Reg(0), 0, 0)
}

/// `dst = (s<bits>) src` sign-extending move (cpu v4); `bits` is 8, 16 or 32.
pub const fn movsx64(dst: Reg, src: Reg, bits: i16) -> Insn {
    insn(class::ALU64 | alu::MOV | source::X, dst, src, bits, 0)
}

/// Signed `dst s/= src` (cpu v4). For unsigned division use `alu64_reg(AluOp::Div, ..)`.
pub const fn sdiv64_reg(dst: Reg, src: Reg) -> Insn {
    insn(class::ALU64 | alu::DIV | source::X, dst, src, 1, 0)
}

/// Signed `dst s%= src` (cpu v4).
pub const fn smod64_reg(dst: Reg, src: Reg) -> Insn {
    insn(class::ALU64 | alu::MOD | source::X, dst, src, 1, 0)
}

/// `dst = htobe<bits>(dst)`: to network order; `bits` is 16, 32 or 64. On our
/// little-endian targets this swaps, and the 16/32 forms zero the upper bits.
///
/// ```
/// use codegen_bpf::insn::{be, Reg};
/// assert_eq!(be(Reg::R1, 16).to_bytes(), [0xdc, 0x01, 0, 0, 16, 0, 0, 0]);
/// ```
pub const fn be(dst: Reg, bits: i32) -> Insn {
    insn(class::ALU | alu::END | end::TO_BE, dst, Reg(0), 0, bits)
}

/// `dst = htole<bits>(dst)`: on little-endian targets only truncates to `bits`.
pub const fn le(dst: Reg, bits: i32) -> Insn {
    insn(class::ALU | alu::END | end::TO_LE, dst, Reg(0), 0, bits)
}

/// `be(dst, 16)`.
pub const fn be16(dst: Reg) -> Insn {
    be(dst, 16)
}

/// `be(dst, 32)`.
pub const fn be32(dst: Reg) -> Insn {
    be(dst, 32)
}

/// `be(dst, 64)`.
pub const fn be64(dst: Reg) -> Insn {
    be(dst, 64)
}

/// Unconditional byte swap of `bits` (16, 32, 64) whatever the host order (cpu v4).
pub const fn bswap(dst: Reg, bits: i32) -> Insn {
    insn(class::ALU64 | alu::END | end::TO_LE, dst, Reg(0), 0, bits)
}

// ---- loads and stores ----

/// `dst = imm` for a full 64-bit immediate; the only two-slot instruction.
///
/// ```
/// use codegen_bpf::insn::{encode, ld_imm64, Reg};
/// assert_eq!(
///     encode(&ld_imm64(Reg::R1, 0x1122_3344_5566_7788)),
///     [0x18, 0x01, 0, 0, 0x88, 0x77, 0x66, 0x55, 0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11],
/// );
/// ```
pub const fn ld_imm64(dst: Reg, imm: u64) -> [Insn; 2] {
    ld_imm64_pseudo(dst, 0, imm as u32 as i32, (imm >> 32) as u32 as i32)
}

/// `dst = map` for the map whose fd is `fd` (`src` = [`pseudo::MAP_FD`]).
/// In objects, the loader writes the fd through a relocation; see [`crate::object`].
pub const fn ld_map_fd(dst: Reg, fd: i32) -> [Insn; 2] {
    ld_imm64_pseudo(dst, pseudo::MAP_FD, fd, 0)
}

/// `dst = &value0(map) + off` for an array map's first value (`src` = [`pseudo::MAP_VALUE`]);
/// this is how `.rodata` is addressed once loaded.
pub const fn ld_map_value(dst: Reg, fd: i32, off: i32) -> [Insn; 2] {
    ld_imm64_pseudo(dst, pseudo::MAP_VALUE, fd, off)
}

/// The general `ld_imm64`: `src` selects the meaning (0 or a [`pseudo`] value),
/// `lo` goes in the first slot's `imm` and `hi` in the second's.
pub const fn ld_imm64_pseudo(dst: Reg, src: u8, lo: i32, hi: i32) -> [Insn; 2] {
    [insn(class::LD | mode::IMM | size::DW, dst, Reg(src), 0, lo), Insn { code: 0, dst: 0, src: 0, off: 0, imm: hi }]
}

/// `dst = *(size *)(src + off)`, zero-extended.
pub const fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    insn(class::LDX | mode::MEM | size as u8, dst, src, off, 0)
}

/// `dst = *(s<size> *)(src + off)`, sign-extended (cpu v4).
pub const fn ldx_sx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    insn(class::LDX | mode::MEMSX | size as u8, dst, src, off, 0)
}

/// `*(size *)(dst + off) = src`.
///
/// ```
/// use codegen_bpf::insn::{stx, Reg, Size};
/// // *(u64 *)(r10 -8) = r1
/// assert_eq!(stx(Size::DW, Reg::R10, Reg::R1, -8).to_bytes(), [0x7b, 0x1a, 0xf8, 0xff, 0, 0, 0, 0]);
/// ```
pub const fn stx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    insn(class::STX | mode::MEM | size as u8, dst, src, off, 0)
}

/// `*(size *)(dst + off) = imm` (truncated to `size`; sign-extended for `DW`).
pub const fn st_imm(size: Size, dst: Reg, off: i16, imm: i32) -> Insn {
    insn(class::ST | mode::MEM | size as u8, dst, Reg(0), off, imm)
}

/// `lock *(size *)(dst + off) += src`; `size` must be `W` or `DW`.
///
/// ```
/// use codegen_bpf::insn::{atomic_add, Reg, Size};
/// assert_eq!(atomic_add(Size::DW, Reg::R0, Reg::R1, 0).to_bytes(), [0xdb, 0x10, 0, 0, 0, 0, 0, 0]);
/// ```
pub const fn atomic_add(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    atomic_op(size, atomic::ADD, dst, src, off)
}

/// `src = atomic_fetch_add((size *)(dst + off), src)`: adds and returns the old value.
pub const fn atomic_fetch_add(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    atomic_op(size, atomic::ADD | atomic::FETCH, dst, src, off)
}

/// Any atomic operation; `op` is from [`atomic`], optionally with [`atomic::FETCH`].
pub const fn atomic_op(size: Size, op: i32, dst: Reg, src: Reg, off: i16) -> Insn {
    insn(class::STX | mode::ATOMIC | size as u8, dst, src, off, op)
}

// ---- jumps ----

/// `goto pc+off` (relative to the next instruction).
pub const fn ja(off: i16) -> Insn {
    insn(class::JMP | jmp::JA, Reg(0), Reg(0), off, 0)
}

/// `if dst op imm goto pc+off`, 64-bit compare (`imm` sign-extended).
///
/// ```
/// use codegen_bpf::insn::{jmp_imm, JmpOp, Reg};
/// // if r1 != 0x17 goto pc+3
/// assert_eq!(jmp_imm(JmpOp::Ne, Reg::R1, 0x17, 3).to_bytes(), [0x55, 0x01, 3, 0, 0x17, 0, 0, 0]);
/// ```
pub const fn jmp_imm(op: JmpOp, dst: Reg, imm: i32, off: i16) -> Insn {
    insn(class::JMP | op as u8 | source::K, dst, Reg(0), off, imm)
}

/// `if dst op src goto pc+off`, 64-bit compare.
pub const fn jmp_reg(op: JmpOp, dst: Reg, src: Reg, off: i16) -> Insn {
    insn(class::JMP | op as u8 | source::X, dst, src, off, 0)
}

/// `if w_dst op imm goto pc+off`, 32-bit compare.
pub const fn jmp32_imm(op: JmpOp, dst: Reg, imm: i32, off: i16) -> Insn {
    insn(class::JMP32 | op as u8 | source::K, dst, Reg(0), off, imm)
}

/// `if w_dst op w_src goto pc+off`, 32-bit compare.
pub const fn jmp32_reg(op: JmpOp, dst: Reg, src: Reg, off: i16) -> Insn {
    insn(class::JMP32 | op as u8 | source::X, dst, src, off, 0)
}

/// Calls a kernel helper: arguments in `r1`-`r5`, result in `r0`, `r1`-`r5` clobbered.
///
/// ```
/// use codegen_bpf::insn::{call, Helper};
/// assert_eq!(call(Helper::GetCurrentPidTgid).to_bytes(), [0x85, 0, 0, 0, 14, 0, 0, 0]);
/// ```
pub const fn call(helper: Helper) -> Insn {
    insn(class::JMP | jmp::CALL, Reg(0), Reg(0), 0, helper as i32)
}

/// Calls the kernel function (kfunc) whose BTF id in the kernel's own BTF is `btf_id`.
pub const fn call_kfunc(btf_id: u32) -> Insn {
    insn(class::JMP | jmp::CALL, Reg(0), Reg(pseudo::KFUNC_CALL), 0, btf_id as i32)
}

/// Calls the BPF function `imm` instructions after the next one (`src` = [`pseudo::CALL`]).
pub const fn call_local(imm: i32) -> Insn {
    insn(class::JMP | jmp::CALL, Reg(0), Reg(pseudo::CALL), 0, imm)
}

/// Returns `r0`.
pub const fn exit() -> Insn {
    insn(class::JMP | jmp::EXIT, Reg(0), Reg(0), 0, 0)
}

// ---- helpers ----

macro_rules! helpers {
    ($($variant:ident = $id:literal, $name:literal;)*) => {
        /// Kernel helper functions by id.
        ///
        /// IMPORTANT: the ids are positions in the kernel's `___BPF_FUNC_MAPPER` list
        /// (`include/uapi/linux/bpf.h`), counting from `unspec` = 0. They were checked with
        /// `grep -o 'FN([a-z0-9_]*)' /usr/include/linux/bpf.h | awk '{print NR-1, $0}'`;
        /// check any new entry the same way.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum Helper {
            $($variant = $id,)*
        }

        impl Helper {
            /// Every helper this enum knows, in id order.
            pub const ALL: &'static [Helper] = &[$(Helper::$variant,)*];

            /// The kernel's name without the `bpf_` prefix, e.g. `get_current_pid_tgid`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Helper::$variant => $name,)*
                }
            }

            /// The helper with this id, if this enum knows it.
            pub const fn from_id(id: i32) -> Option<Helper> {
                match id {
                    $($id => Some(Helper::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

helpers! {
    MapLookupElem = 1, "map_lookup_elem";
    MapUpdateElem = 2, "map_update_elem";
    MapDeleteElem = 3, "map_delete_elem";
    ProbeRead = 4, "probe_read";
    KtimeGetNs = 5, "ktime_get_ns";
    TracePrintk = 6, "trace_printk";
    GetPrandomU32 = 7, "get_prandom_u32";
    GetSmpProcessorId = 8, "get_smp_processor_id";
    TailCall = 12, "tail_call";
    GetCurrentPidTgid = 14, "get_current_pid_tgid";
    GetCurrentUidGid = 15, "get_current_uid_gid";
    GetCurrentComm = 16, "get_current_comm";
    PerfEventOutput = 25, "perf_event_output";
    GetStackid = 27, "get_stackid";
    GetCurrentTask = 35, "get_current_task";
    ProbeReadStr = 45, "probe_read_str";
    GetStack = 67, "get_stack";
    GetCurrentCgroupId = 80, "get_current_cgroup_id";
    Strtol = 105, "strtol";
    SendSignal = 109, "send_signal";
    ProbeReadUser = 112, "probe_read_user";
    ProbeReadKernel = 113, "probe_read_kernel";
    ProbeReadUserStr = 114, "probe_read_user_str";
    ProbeReadKernelStr = 115, "probe_read_kernel_str";
    Jiffies64 = 118, "jiffies64";
    GetNsCurrentPidTgid = 120, "get_ns_current_pid_tgid";
    KtimeGetBootNs = 125, "ktime_get_boot_ns";
    RingbufOutput = 130, "ringbuf_output";
    RingbufReserve = 131, "ringbuf_reserve";
    RingbufSubmit = 132, "ringbuf_submit";
    RingbufDiscard = 133, "ringbuf_discard";
    GetCurrentTaskBtf = 158, "get_current_task_btf";
    KtimeGetCoarseNs = 160, "ktime_get_coarse_ns";
    ForEachMapElem = 164, "for_each_map_elem";
    Snprintf = 165, "snprintf";
    GetFuncIp = 173, "get_func_ip";
    GetAttachCookie = 174, "get_attach_cookie";
    TaskPtRegs = 175, "task_pt_regs";
    FindVma = 180, "find_vma";
    Loop = 181, "loop";
    Strncmp = 182, "strncmp";
    GetFuncArg = 183, "get_func_arg";
    GetFuncRet = 184, "get_func_ret";
    GetFuncArgCnt = 185, "get_func_arg_cnt";
    MapLookupPercpuElem = 195, "map_lookup_percpu_elem";
    KtimeGetTaiNs = 208, "ktime_get_tai_ns";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_field() {
        let i = Insn { code: 0x6b, dst: 0xa, src: 0x3, off: -512, imm: -7 };
        assert_eq!(Insn::from_bytes(i.to_bytes()), i);
    }

    #[test]
    fn helper_table_is_sorted_and_unique() {
        for pair in Helper::ALL.windows(2) {
            assert!((pair[0] as i32) < (pair[1] as i32), "{pair:?}");
        }
        for &h in Helper::ALL {
            assert_eq!(Helper::from_id(h as i32), Some(h));
        }
    }
}
