//! `runtime`: loads a compiled script into the kernel, attaches it, runs the event loop and the
//! user-space handlers, and prints what the script prints.
//!
//! Code map:
//! - [`session`]: load, attach, the event loop, `end`, exit-time printing, detach.
//! - [`loader`]: maps created, programs relocated, loaded and attached, with no object file.
//! - [`bpf`]: the `bpf(2)` and `perf_event_open(2)` calls, by their uapi layouts.
//! - [`ringbuf`]: the consumer side of the output ring buffer.
//! - [`symbols`]: ELF symbols to file offsets, for uprobes.
//! - [`userspace`]: the IR interpreter for `begin`, `end`, `error`, timer and `prometheus`
//!   handlers.
//! - [`metrics`]: `--metrics`: the HTTP endpoint and the metrics generated from globals.
//! - [`output`]: ring-buffer records decoded; the script's output stream.
//! - [`event`]: the output as typed [`event::Event`]s, and the sink trait with its text form;
//!   [`json_sink`] its `-f json` form.
//! - [`stats`]: statistics merged over CPUs, extracted and printed as SystemTap does.
//! - [`arrays`]: the script's arrays and statistics over their BPF maps.
//! - [`format`]: SystemTap's printf, applied to decoded arguments.
//! - [`kernel_info`]: the real [`lang::kernel::KernelInfo`] (tracefs formats, kernel BTF).
//! - [`kernel_memory`]: kernel memory read for user-space handlers.
//! - [`sys`]: mmap of the globals, signals, clocks.
//!
//! Invariants: `runtime` never sees the AST; it is the only crate that touches the kernel.

pub mod arrays;
pub mod bpf;
pub mod event;
pub mod format;
pub mod json_sink;
pub mod kernel_info;
pub mod kernel_memory;
pub mod loader;
pub mod metrics;
pub mod output;
pub mod ringbuf;
pub mod session;
pub mod stats;
pub mod symbols;
pub mod sys;
pub mod userspace;
