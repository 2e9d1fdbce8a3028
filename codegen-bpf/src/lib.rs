//! `codegen-bpf`: the typed IR of `lang` to BPF programs, map specifications and an ELF object.
//!
//! Code map:
//! - [`insn`]: instruction encoding only (opcodes, the 8-byte instruction, helper ids).
//! - [`disasm`]: instructions back to the text `-p4` prints.
//! - [`object`]: the in-memory ELF object `aya` loads (programs, legacy `maps`, `.rodata`).
//!
//! Invariant: this crate makes no syscall and reads no file; the same input gives the same
//! bytes on any machine.

pub mod disasm;
pub mod insn;
pub mod object;
