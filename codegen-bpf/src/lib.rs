//! `codegen-bpf`: the typed IR of `lang` to BPF programs, map specifications and an ELF object.
//!
//! Code map:
//! - [`compile`]: the driver, IR program to [`compile::CompiledScript`].
//! - [`emit`]: one handler's IR to instructions; [`regalloc`] gives each variable its home;
//!   [`layout`] fixes the byte layouts the runtime shares.
//! - [`insn`]: instruction encoding only (opcodes, the 8-byte instruction, helper ids).
//! - [`disasm`]: instructions back to the text `-p4` prints.
//! - [`btf`]: the small BTF and `func_info` a program with callbacks is loaded with.
//! - [`object`]: the script as programs, maps and `.rodata`, and its ELF form (`--emit-elf`).
//! - [`bo`]: the `.bo` object of `-p4 -m`, and reading one back (untrusted input).
//! - [`kernel_facts`]: what a `.bo` assumes of the kernel it was compiled on, recorded as
//!   asked (`Recorder`) and checked against another.
//! - [`reader`]: the program user-space handlers read kernel memory through.
//!
//! Invariant: this crate makes no syscall and reads no file; its output depends only on the
//! IR, which names the machine compiled for (`Program::arch`, from the kernel's uname:
//! `emit` picks the `struct pt_regs` offsets by it), not on the machine it runs on or
//! bpftap was built on. Checked by `tests/architecture.rs` (no I/O, no `cfg(target_arch)`).

pub mod bo;
pub mod btf;
pub mod compile;
pub mod disasm;
pub mod emit;
pub mod insn;
pub mod kernel_facts;
pub mod layout;
pub mod object;
pub mod reader;
pub mod regalloc;
