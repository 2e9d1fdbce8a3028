//! `lang`: everything that knows the SystemTap language and nothing of BPF instructions.
//!
//! Code map, in pipeline order:
//! - [`span`]: file ids, byte spans and the source map holding scripts and tapsets.
//! - [`lexer`] (logos) and `grammar.lalrpop`, driven by [`parse`]: text to [`ast::Script`].
//! - [`preprocess`]: `%( cond %? a %: b %)` conditionals and `@define` macros.
//! - [`syscall_aliases`]: the `syscall.NAME` aliases written as tapset source from a table.
//! - [`select`]: the tapset items a script needs; only those are parsed.
//! - [`ast`]: the syntax tree the grammar builds; [`pretty`] prints it back (`-p1`).
//! - [`family`]: the probe families, one module each: what a point resolves to, the
//!   context its handler gets, the program it compiles to and how it attaches.
//! - [`elaborate`]: probe points resolved against tapset aliases and the kernel, alias
//!   bodies merged, globals and functions gathered: [`ast::Script`] to
//!   [`elaborate::Elaborated`], still untyped. [`glob`] matches the points' wildcards.
//! - [`number`]: the one number parser (literals, script arguments, `-G` values).
//! - [`lint`]: warnings about the user's script (variables assigned and never read).
//! - [`types`]: type inference for locals, globals and functions (a [`types::TypeTable`]).
//! - [`builtins`]: the built-in functions, where each may run and how it lowers.
//! - [`ir`] and [`lower`]: the typed script to a per-handler control-flow graph;
//!   [`optimize`] removes dead code from each handler, by [`liveness`].
//! - [`printf`]: format strings parsed into [`printf::Format`]; `lower` checks a printf's
//!   arguments with it, the runtime formats with it.
//! - [`arch`]: the machine compiled for (from the kernel's uname), and [`syscall_table`]:
//!   its syscall numbers to names.
//! - [`regex`]: `=~` patterns compiled to a DFA table (kernel) and a matcher with groups.
//! - [`kernel`]: the [`kernel::KernelInfo`] trait through which every fact about the running
//!   kernel arrives (tracepoint formats, BTF, version), with a fixture for tests.
//! - [`diag`]: the only module that turns errors into miette reports.
//!
//! Invariants:
//! - `lang` never names a BPF instruction, and it touches no kernel interface itself: the
//!   real `KernelInfo` lives in `runtime`.
//! - Front-end passes return their result together with every diagnostic they collected;
//!   user input never makes them panic.

// Diagnostics are plain values carried in `Err`; boxing them would buy nothing here.
#![allow(clippy::result_large_err)]

pub mod arch;
pub mod ast;
pub mod builtins;
pub mod diag;
pub mod elaborate;
pub mod family;
pub mod glob;
pub mod ir;
pub mod kernel;
pub mod lexer;
pub mod lint;
pub mod liveness;
pub mod lower;
pub mod number;
pub mod optimize;
pub mod parse;
pub mod preprocess;
pub mod pretty;
pub mod printf;
pub mod regex;
pub mod select;
pub mod span;
pub mod syscall_aliases;
pub mod syscall_table;
pub mod types;
