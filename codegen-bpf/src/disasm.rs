//! BPF instructions back to text, in the kernel's own notation.
//!
//! In: [`Insn`]s (as emitted, or decoded from bytes). Out: one line per instruction, the
//! way the verifier log and `bpftool prog dump xlated` print them (`kernel/bpf/disasm.c`):
//!
//! ```text
//! 0: (79) r1 = *(u64 *)(r10 -8)
//! 1: (55) if r1 != 0x17 goto pc+3
//! 2: (85) call bpf_get_current_pid_tgid#14
//! 3: (18) r1 = map[id:3]
//! ```
//!
//! Keeping the kernel's notation means a verifier rejection and our `-p4` output read the
//! same. Map loads are printed as `map[NAME]` when the caller gives names (indexed by the
//! instruction's `imm`), otherwise as the kernel does, `map[id:IMM]`.
//!
//! Invariant: every byte pattern disassembles to some text; an opcode we do not know prints
//! as `invalid insn 0xNN` rather than panicking.

use std::fmt::Write as _;

use crate::insn::{alu, atomic, class, end, jmp, mode, pseudo, size, source, Helper, Insn, Size};

/// Disassembles a program, one numbered line per instruction, unpadded as in the verifier
/// log (`ld_imm64` takes two slots and prints on the first). `map_names[i]` names the map
/// whose fd or index is `i`.
pub fn disasm(insns: &[Insn], map_names: &[&str]) -> String {
    let mut out = String::new();
    let mut idx = 0;
    while idx < insns.len() {
        let insn = insns[idx];
        let next = insns.get(idx + 1).copied();
        let _ = writeln!(out, "{idx}: ({:02x}) {}", insn.code, insn_text(insn, next, map_names));
        idx += if insn.is_ld_imm64() { 2 } else { 1 };
    }
    out
}

/// The text of one instruction, without index or opcode. `next` is the following slot,
/// needed only by `ld_imm64`.
pub fn insn_text(insn: Insn, next: Option<Insn>, map_names: &[&str]) -> String {
    match insn.class() {
        class::ALU | class::ALU64 => alu_text(insn),
        class::JMP | class::JMP32 => jmp_text(insn),
        class::LDX => ldx_text(insn),
        class::ST => st_text(insn),
        class::STX => stx_text(insn),
        class::LD => ld_text(insn, next, map_names),
        _ => unreachable!("the class has three bits"),
    }
}

fn invalid(insn: Insn) -> String {
    format!("invalid insn 0x{:02x}", insn.code)
}

/// `r1` for 64-bit operations, `w1` for 32-bit ones.
fn reg(wide: bool, n: u8) -> String {
    format!("{}{n}", if wide { 'r' } else { 'w' })
}

fn size_name(code: u8) -> &'static str {
    match Size::from_code(code) {
        Size::B => "u8",
        Size::H => "u16",
        Size::W => "u32",
        Size::DW => "u64",
    }
}

/// `(r10 -8)`: the kernel prints the offset with an explicit sign after a space.
fn addr(base: u8, off: i16) -> String {
    format!("(r{base} {off:+})")
}

fn alu_text(insn: Insn) -> String {
    let wide = insn.class() == class::ALU64;
    let op = insn.code & 0xf0;
    let is_reg = insn.code & source::X != 0;
    let dst = reg(wide, insn.dst);
    match op {
        alu::END => {
            let bits = insn.imm;
            if wide {
                format!("r{0} = bswap{bits} r{0}", insn.dst)
            } else {
                let order = if insn.code & end::TO_BE != 0 { "be" } else { "le" };
                format!("r{0} = {order}{bits} r{0}", insn.dst)
            }
        }
        alu::NEG => format!("{dst} = -{dst}"),
        alu::MOV if is_reg && insn.off != 0 => {
            format!("{dst} = (s{}){}", insn.off, reg(wide, insn.src))
        }
        _ => {
            let sym = match (op, insn.off) {
                (alu::ADD, _) => "+=",
                (alu::SUB, _) => "-=",
                (alu::MUL, _) => "*=",
                (alu::DIV, 0) => "/=",
                (alu::DIV, _) => "s/=",
                (alu::OR, _) => "|=",
                (alu::AND, _) => "&=",
                (alu::LSH, _) => "<<=",
                (alu::RSH, _) => ">>=",
                (alu::MOD, 0) => "%=",
                (alu::MOD, _) => "s%=",
                (alu::XOR, _) => "^=",
                (alu::MOV, _) => "=",
                (alu::ARSH, _) => "s>>=",
                _ => return invalid(insn),
            };
            if is_reg {
                format!("{dst} {sym} {}", reg(wide, insn.src))
            } else {
                format!("{dst} {sym} {}", insn.imm)
            }
        }
    }
}

fn jmp_text(insn: Insn) -> String {
    let wide = insn.class() == class::JMP;
    let op = insn.code & 0xf0;
    match op {
        jmp::JA if wide => format!("goto pc{:+}", insn.off),
        jmp::JA => format!("gotol pc{:+}", insn.imm),
        jmp::CALL if wide => call_text(insn),
        jmp::EXIT if wide => "exit".to_string(),
        _ => {
            let sym = match op {
                jmp::JEQ => "==",
                jmp::JNE => "!=",
                jmp::JGT => ">",
                jmp::JGE => ">=",
                jmp::JLT => "<",
                jmp::JLE => "<=",
                jmp::JSGT => "s>",
                jmp::JSGE => "s>=",
                jmp::JSLT => "s<",
                jmp::JSLE => "s<=",
                jmp::JSET => "&",
                _ => return invalid(insn),
            };
            let rhs = if insn.code & source::X != 0 { reg(wide, insn.src) } else { format!("{:#x}", insn.imm) };
            format!("if {} {sym} {rhs} goto pc{:+}", reg(wide, insn.dst), insn.off)
        }
    }
}

fn call_text(insn: Insn) -> String {
    match insn.src {
        pseudo::CALL => format!("call pc{:+}", insn.imm),
        pseudo::KFUNC_CALL => format!("call kernel-function#{}", insn.imm),
        _ => match Helper::from_id(insn.imm) {
            Some(helper) => format!("call bpf_{}#{}", helper.name(), insn.imm),
            None => format!("call unknown#{}", insn.imm),
        },
    }
}

fn ldx_text(insn: Insn) -> String {
    match insn.code & 0xe0 {
        mode::MEM => format!("r{} = *({} *){}", insn.dst, size_name(insn.code), addr(insn.src, insn.off)),
        mode::MEMSX => {
            let bits = Size::from_code(insn.code).bytes() * 8;
            format!("r{} = *(s{bits} *){}", insn.dst, addr(insn.src, insn.off))
        }
        _ => invalid(insn),
    }
}

fn st_text(insn: Insn) -> String {
    match insn.code & 0xe0 {
        mode::MEM => format!("*({} *){} = {}", size_name(insn.code), addr(insn.dst, insn.off), insn.imm),
        _ => invalid(insn),
    }
}

fn stx_text(insn: Insn) -> String {
    let ty = size_name(insn.code);
    let at = addr(insn.dst, insn.off);
    match insn.code & 0xe0 {
        mode::MEM => format!("*({ty} *){at} = r{}", insn.src),
        mode::ATOMIC => {
            let width = if insn.code & 0x18 == size::DW { "64" } else { "" };
            let src = insn.src;
            let name = match insn.imm & !atomic::FETCH {
                atomic::ADD => ("+=", "add"),
                atomic::OR => ("|=", "or"),
                atomic::AND => ("&=", "and"),
                atomic::XOR => ("^=", "xor"),
                _ if insn.imm == atomic::XCHG => {
                    return format!("r{src} = atomic{width}_xchg(({ty} *){at}, r{src})");
                }
                _ if insn.imm == atomic::CMPXCHG => {
                    return format!("r0 = atomic{width}_cmpxchg(({ty} *){at}, r0, r{src})");
                }
                _ => return invalid(insn),
            };
            if insn.imm & atomic::FETCH != 0 {
                format!("r{src} = atomic{width}_fetch_{}(({ty} *){at}, r{src})", name.1)
            } else {
                format!("lock *({ty} *){at} {} r{src}", name.0)
            }
        }
        _ => invalid(insn),
    }
}

fn ld_text(insn: Insn, next: Option<Insn>, map_names: &[&str]) -> String {
    let ty = size_name(insn.code);
    match insn.code & 0xe0 {
        mode::IMM if insn.code & 0x18 == size::DW => {
            let hi = next.map_or(0, |n| n.imm);
            let map = || match usize::try_from(insn.imm).ok().and_then(|i| map_names.get(i)) {
                Some(name) => format!("map[{name}]"),
                None => format!("map[id:{}]", insn.imm),
            };
            match insn.src {
                pseudo::MAP_FD => format!("r{} = {}", insn.dst, map()),
                pseudo::MAP_VALUE => format!("r{} = {}[0]+{}", insn.dst, map(), hi),
                pseudo::BTF_ID => format!("r{} = btf_id:{}", insn.dst, insn.imm),
                pseudo::FUNC => format!("r{} = func pc{:+}", insn.dst, insn.imm),
                _ => {
                    let value = (u64::from(hi as u32) << 32) | u64::from(insn.imm as u32);
                    format!("r{} = {value:#x}", insn.dst)
                }
            }
        }
        mode::ABS => format!("r0 = *({ty} *)skb[{}]", insn.imm),
        mode::IND => format!("r0 = *({ty} *)skb[r{} + {}]", insn.src, insn.imm),
        _ => invalid(insn),
    }
}
