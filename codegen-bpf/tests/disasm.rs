//! Encode → disassemble → compare with the kernel's notation, and bytes → `Insn` → bytes,
//! for every instruction class and every operation the encoder offers.

use codegen_bpf::disasm::{disasm, insn_text};
use codegen_bpf::insn::*;

/// Checks the text of one instruction (or `ld_imm64` pair) and that its bytes round-trip.
/// A macro so a failure points at the case's own line.
macro_rules! check {
    ($insns:expr, $text:expr) => {{
        let insns: Vec<Insn> = $insns.into_iter().collect();
        assert_eq!(insn_text(insns[0], insns.get(1).copied(), &[]), $text);
        let bytes = encode(&insns);
        assert_eq!(bytes.len(), insns.len() * 8);
        assert_eq!(decode(&bytes), insns);
        assert_eq!(encode(&decode(&bytes)), bytes);
    }};
}

#[test]
fn alu64() {
    check!([mov64_imm(Reg::R1, 42)], "r1 = 42");
    check!([mov64_imm(Reg::R1, -1)], "r1 = -1");
    check!([mov64_reg(Reg::R6, Reg::R1)], "r6 = r1");
    check!([alu64_imm(AluOp::Add, Reg::R10, -8)], "r10 += -8");
    check!([alu64_reg(AluOp::Sub, Reg::R1, Reg::R2)], "r1 -= r2");
    check!([alu64_imm(AluOp::Mul, Reg::R1, 3)], "r1 *= 3");
    check!([alu64_reg(AluOp::Div, Reg::R1, Reg::R2)], "r1 /= r2");
    check!([alu64_imm(AluOp::Or, Reg::R1, 1)], "r1 |= 1");
    check!([alu64_imm(AluOp::And, Reg::R1, 255)], "r1 &= 255");
    check!([alu64_imm(AluOp::Lsh, Reg::R1, 32)], "r1 <<= 32");
    check!([alu64_imm(AluOp::Rsh, Reg::R0, 32)], "r0 >>= 32");
    check!([alu64_reg(AluOp::Mod, Reg::R3, Reg::R4)], "r3 %= r4");
    check!([alu64_reg(AluOp::Xor, Reg::R3, Reg::R3)], "r3 ^= r3");
    check!([alu64_imm(AluOp::Arsh, Reg::R1, 63)], "r1 s>>= 63");
    check!([neg64(Reg::R2)], "r2 = -r2");
    check!([movsx64(Reg::R1, Reg::R2, 32)], "r1 = (s32)r2");
    check!([sdiv64_reg(Reg::R1, Reg::R2)], "r1 s/= r2");
    check!([smod64_reg(Reg::R1, Reg::R2)], "r1 s%= r2");
}

#[test]
fn alu32() {
    check!([mov32_imm(Reg::R1, 7)], "w1 = 7");
    check!([mov32_reg(Reg::R1, Reg::R1)], "w1 = w1");
    check!([alu32_imm(AluOp::Add, Reg::R2, 1)], "w2 += 1");
    check!([alu32_reg(AluOp::And, Reg::R2, Reg::R3)], "w2 &= w3");
    check!([neg32(Reg::R4)], "w4 = -w4");
}

#[test]
fn endianness() {
    check!([be16(Reg::R1)], "r1 = be16 r1");
    check!([be32(Reg::R2)], "r2 = be32 r2");
    check!([be64(Reg::R3)], "r3 = be64 r3");
    check!([le(Reg::R1, 16)], "r1 = le16 r1");
    check!([bswap(Reg::R1, 64)], "r1 = bswap64 r1");
}

#[test]
fn ld_imm64_forms() {
    check!(ld_imm64(Reg::R1, 0x1122_3344_5566_7788), "r1 = 0x1122334455667788");
    check!(ld_imm64(Reg::R1, u64::MAX), "r1 = 0xffffffffffffffff");
    check!(ld_map_fd(Reg::R1, 5), "r1 = map[id:5]");
    check!(ld_map_value(Reg::R2, 5, 16), "r2 = map[id:5][0]+16");
    let [first, second] = ld_map_fd(Reg::R1, 1);
    assert_eq!(insn_text(first, Some(second), &["events", "counts"]), "r1 = map[counts]");
}

#[test]
fn ld_legacy_packet() {
    check!([Insn { code: class::LD | mode::ABS | size::B, dst: 0, src: 0, off: 0, imm: 12 }], "r0 = *(u8 *)skb[12]");
    check!(
        [Insn { code: class::LD | mode::IND | size::H, dst: 0, src: 3, off: 0, imm: 2 }],
        "r0 = *(u16 *)skb[r3 + 2]"
    );
}

#[test]
fn loads_and_stores() {
    check!([ldx(Size::DW, Reg::R1, Reg::R10, -8)], "r1 = *(u64 *)(r10 -8)");
    check!([ldx(Size::B, Reg::R1, Reg::R2, 0)], "r1 = *(u8 *)(r2 +0)");
    check!([ldx(Size::H, Reg::R1, Reg::R2, 24)], "r1 = *(u16 *)(r2 +24)");
    check!([ldx_sx(Size::W, Reg::R1, Reg::R2, 4)], "r1 = *(s32 *)(r2 +4)");
    check!([stx(Size::DW, Reg::R10, Reg::R1, -8)], "*(u64 *)(r10 -8) = r1");
    check!([stx(Size::W, Reg::R10, Reg::R1, -12)], "*(u32 *)(r10 -12) = r1");
    check!([st_imm(Size::DW, Reg::R10, -16, 0)], "*(u64 *)(r10 -16) = 0");
    check!([st_imm(Size::B, Reg::R10, -1, -1)], "*(u8 *)(r10 -1) = -1");
}

#[test]
fn atomics() {
    check!([atomic_add(Size::DW, Reg::R0, Reg::R1, 0)], "lock *(u64 *)(r0 +0) += r1");
    check!([atomic_add(Size::W, Reg::R0, Reg::R1, 8)], "lock *(u32 *)(r0 +8) += r1");
    check!([atomic_fetch_add(Size::DW, Reg::R0, Reg::R1, 0)], "r1 = atomic64_fetch_add((u64 *)(r0 +0), r1)");
    check!([atomic_fetch_add(Size::W, Reg::R0, Reg::R1, 0)], "r1 = atomic_fetch_add((u32 *)(r0 +0), r1)");
    check!([atomic_op(Size::DW, atomic::OR, Reg::R0, Reg::R1, 0)], "lock *(u64 *)(r0 +0) |= r1");
    check!(
        [atomic_op(Size::DW, atomic::XOR | atomic::FETCH, Reg::R0, Reg::R1, 0)],
        "r1 = atomic64_fetch_xor((u64 *)(r0 +0), r1)"
    );
    check!([atomic_op(Size::DW, atomic::XCHG, Reg::R0, Reg::R2, 0)], "r2 = atomic64_xchg((u64 *)(r0 +0), r2)");
    check!(
        [atomic_op(Size::DW, atomic::CMPXCHG, Reg::R3, Reg::R2, -8)],
        "r0 = atomic64_cmpxchg((u64 *)(r3 -8), r0, r2)"
    );
}

#[test]
fn jumps() {
    check!([ja(3)], "goto pc+3");
    check!([ja(-1)], "goto pc-1");
    check!([jmp_imm(JmpOp::Ne, Reg::R1, 0x17, 3)], "if r1 != 0x17 goto pc+3");
    check!([jmp_imm(JmpOp::Eq, Reg::R0, 0, 1)], "if r0 == 0x0 goto pc+1");
    check!([jmp_imm(JmpOp::Sgt, Reg::R0, -1, 1)], "if r0 s> 0xffffffff goto pc+1");
    check!([jmp_reg(JmpOp::Gt, Reg::R1, Reg::R2, -4)], "if r1 > r2 goto pc-4");
    check!([jmp_reg(JmpOp::Ge, Reg::R1, Reg::R2, 1)], "if r1 >= r2 goto pc+1");
    check!([jmp_reg(JmpOp::Lt, Reg::R1, Reg::R2, 1)], "if r1 < r2 goto pc+1");
    check!([jmp_reg(JmpOp::Le, Reg::R1, Reg::R2, 1)], "if r1 <= r2 goto pc+1");
    check!([jmp_reg(JmpOp::Sge, Reg::R1, Reg::R2, 1)], "if r1 s>= r2 goto pc+1");
    check!([jmp_reg(JmpOp::Slt, Reg::R1, Reg::R2, 1)], "if r1 s< r2 goto pc+1");
    check!([jmp_reg(JmpOp::Sle, Reg::R1, Reg::R2, 1)], "if r1 s<= r2 goto pc+1");
    check!([jmp_imm(JmpOp::Set, Reg::R1, 4, 1)], "if r1 & 0x4 goto pc+1");
    check!([jmp32_imm(JmpOp::Lt, Reg::R1, 10, 2)], "if w1 < 0xa goto pc+2");
    check!([jmp32_reg(JmpOp::Eq, Reg::R1, Reg::R2, 2)], "if w1 == w2 goto pc+2");
    check!([Insn { code: class::JMP32 | jmp::JA, dst: 0, src: 0, off: 0, imm: 70000 }], "gotol pc+70000");
}

#[test]
fn calls_and_exit() {
    check!([call(Helper::GetCurrentPidTgid)], "call bpf_get_current_pid_tgid#14");
    check!([call(Helper::RingbufOutput)], "call bpf_ringbuf_output#130");
    check!([call(Helper::Snprintf)], "call bpf_snprintf#165");
    check!([call_local(5)], "call pc+5");
    check!([Insn { code: class::JMP | jmp::CALL, dst: 0, src: 0, off: 0, imm: 9999 }], "call unknown#9999");
    check!([exit()], "exit");
}

#[test]
fn unknown_opcodes_do_not_panic() {
    check!([Insn { code: class::ALU64 | 0xe0, dst: 1, src: 0, off: 0, imm: 0 }], "invalid insn 0xe7");
    check!(
        [Insn { code: class::STX | mode::ATOMIC | size::DW, dst: 1, src: 2, off: 0, imm: 0x33 }],
        "invalid insn 0xdb"
    );
    check!([Insn { code: class::JMP32 | jmp::EXIT, dst: 0, src: 0, off: 0, imm: 0 }], "invalid insn 0x96");
}

#[test]
fn program_listing_counts_ld_imm64_as_two_slots() {
    let mut prog = vec![call(Helper::GetCurrentPidTgid), alu64_imm(AluOp::Rsh, Reg::R0, 32)];
    prog.extend(ld_map_fd(Reg::R1, 0));
    prog.push(jmp_imm(JmpOp::Ne, Reg::R0, 0x17, 1));
    prog.push(mov64_imm(Reg::R0, 1));
    prog.push(exit());
    expect_test::expect![[r#"
           0: (85) call bpf_get_current_pid_tgid#14
           1: (77) r0 >>= 32
           2: (18) r1 = map[events]
           4: (55) if r0 != 0x17 goto pc+1
           5: (b7) r0 = 1
           6: (95) exit
    "#]]
    .assert_eq(&disasm(&prog, &["events"]));
}
