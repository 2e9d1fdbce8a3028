//! `runtime`: loads a compiled script into the kernel, attaches it, runs the event loop and the
//! user-space handlers, and prints what the script prints.
//!
//! Code map:
//! - [`session`]: load, attach, the event loop, `end`, exit-time printing, detach.
//! - [`userspace`]: the IR interpreter for `begin`, `end` and timer handlers.
//! - [`output`]: ring-buffer records to text.
//! - [`stats`]: statistics merged over CPUs, extracted and printed as SystemTap does.
//! - [`arrays`]: the script's arrays and statistics over their BPF maps.
//! - [`format`]: SystemTap's printf, applied to decoded arguments.
//! - [`kernel_info`]: the real [`lang::kernel::KernelInfo`] (tracefs formats, kernel BTF).
//! - [`sys`]: mmap of the globals, signals, clocks.
//!
//! Invariants: `runtime` never sees the AST; it is the only crate that touches the kernel.

pub mod arrays;
pub mod format;
pub mod kernel_info;
pub mod output;
pub mod session;
pub mod stats;
pub mod sys;
pub mod userspace;
