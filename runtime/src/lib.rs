//! `runtime`: loads a compiled script into the kernel, attaches it, runs the event loop and the
//! user-space handlers, and prints what the script prints.
//!
//! Code map:
//! - [`format`]: SystemTap's printf, applied to decoded arguments.
//! - [`kernel_info`]: the real [`lang::kernel::KernelInfo`] (tracefs formats, kernel BTF).
//! - [`stats`]: statistics: per-CPU merge, `@count`..`@variance`, histograms as stap prints them.
//!
//! Invariant: `runtime` never sees the AST.

pub mod format;
pub mod kernel_info;
pub mod stats;
