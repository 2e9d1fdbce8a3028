//! `codegen-bpf`: the typed IR of `lang` to BPF programs, map specifications and an ELF object.
//!
//! Code map:
//! - [`compile`]: the driver, IR program to [`compile::CompiledScript`].
//! - [`emit`]: one handler's IR to instructions; [`regalloc`] gives each variable its home;
//!   [`layout`] fixes the byte layouts the runtime shares.
//! - [`insn`]: instruction encoding only (opcodes, the 8-byte instruction, helper ids).
//! - [`disasm`]: instructions back to the text `-p4` prints.
//! - [`object`]: the script as programs, maps and `.rodata`, and its ELF form (`--emit-elf`).
//! - [`reader`]: the program user-space handlers read kernel memory through.
//!
//! Invariant: this crate makes no syscall and reads no file; the same input gives the same
//! bytes on any machine.

pub mod compile;
pub mod disasm;
pub mod emit;
pub mod insn;
pub mod layout;
pub mod object;
pub mod reader;
pub mod regalloc;
