//! A running script: create the maps, set the globals, run `begin`, load and attach the
//! kernel probes, loop over ring-buffer records and timers, then run `end`, print what the
//! script left unread, and detach everything.
//!
//! [`Session::load`] creates the maps, maps the ring buffer and the globals, sets the globals
//! and runs `begin`; [`Session::attach`] loads and attaches the kernel programs, then starts
//! `-c CMD`; [`Session::run`] drives the loop and runs `error` and `end`. Dropping the session
//! detaches every program and closes every map, on every path, errors included.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use codegen_bpf::compile::{CompiledScript, RINGBUF_BYTES};
use codegen_bpf::layout;
use codegen_bpf::layout::{GLOBAL_ARRAY_FULL, GLOBAL_BOOT_OFFSET, GLOBAL_LOST, GLOBAL_TARGET};
use lang::ir::{ArrayId, Const, Handler, Target, Ty, ValueKind, METRICS_PATH};
use lang::span::Span;

use crate::arrays::Arrays;
use crate::kernel_info::LiveKernel;
use crate::kernel_memory::KernelMemory;
use crate::loader::{self, Maps};
use crate::metrics::{self, MetricsServer, Scrape};
use crate::output::{Decoder, Record, ScriptOutput};
use crate::ringbuf::RingBuf;
use crate::sys::{self, MappedValue, RawMap};
use crate::userspace::{self, Env, HandlerError};

/// How to run a script.
#[derive(Default)]
pub struct RunOptions {
    /// `-x PID`: `target()`, and the script stops when that process exits.
    pub target_pid: Option<i32>,
    /// `-c CMD`: run after the probes are attached; `target()` is its pid; stop when it exits.
    pub command: Option<String>,
    /// Who `-c CMD` runs as; bpftap's own user when `None`.
    pub command_user: Option<sys::Credentials>,
    /// `-T SECONDS`.
    pub duration: Option<Duration>,
    /// `-G NAME=VALUE`, applied before `begin`.
    pub set_globals: Vec<(String, String)>,
    /// Created once every probe is attached (for tests and scripts that wait on us).
    pub ready_file: Option<PathBuf>,
    /// Attach `kernel.function` probes as kprobes even where fentry works (`--kprobes`), so
    /// both code paths can be tested on one kernel.
    pub force_kprobes: bool,
    /// Bytes of the output ring buffer (`-s`): a power of two, a multiple of the page size;
    /// 0 for the default, [`RINGBUF_BYTES`].
    pub buffer_bytes: u32,
    /// `--metrics ADDR`: serve `GET /metrics` there while the script runs.
    pub metrics: Option<String>,
}

/// What went wrong while running; rendered by the binary.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot drop capabilities once attached: {0}")]
    DropCapabilities(std::io::Error),
    /// The kernel refused to create maps or parse the object.
    #[error("cannot load the BPF object: {0}")]
    Object(String),
    /// The verifier rejected a program. `span` is the script code of the failing instruction.
    #[error("the kernel's verifier rejected probe {point}")]
    Verifier { point: String, span: Option<Span>, log: String },
    #[error("cannot load probe {point}: {reason}")]
    Load { point: String, reason: String },
    #[error("cannot attach probe {point}: {reason}")]
    Attach { point: String, reason: String },
    /// A netfilter hook of a protocol family the kernel links no BPF program to (bridge,
    /// ARP). Skipped with a warning while some other kernel probe attaches, so a wildcard
    /// such as `netfilter.*.*` still watches IPv4 and IPv6.
    #[error(
        "cannot attach probe {point}: this kernel links BPF programs to IPv4 and IPv6 netfilter hooks \
         only, not to {family}"
    )]
    FamilyRefused { point: String, family: String },
    #[error("loading BPF programs needs root (or CAP_BPF and CAP_PERFMON): run bpftap with sudo")]
    NotPermitted,
    #[error("cannot map the globals: {0}")]
    Globals(std::io::Error),
    #[error("global {name}: {reason}")]
    SetGlobal { name: String, reason: String },
    #[error("cannot run -c command: {0}")]
    Command(std::io::Error),
    #[error("error in {point}: {source}")]
    Handler { point: String, source: HandlerError },
    #[error("array `{0}` is full: raise its size (`global {0}[N]`) or -D MAXMAPENTRIES, or mark it `%` to wrap")]
    ArrayFull(String),
    #[error("probe {0} ran more than {max} loop iterations (MAXACTION)", max = lang::lower::MAX_LOOP_ITERATIONS)]
    MaxAction(String),
    #[error("--metrics {addr}: {source}")]
    Metrics { addr: String, source: std::io::Error },
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

pub struct Session<'a> {
    compiled: &'a CompiledScript,
    kernel: &'a LiveKernel,
    /// Programs, perf events and links, in the order they were made: closing them detaches.
    // Field order matters on drop: probes are detached before their maps go.
    attached: Vec<OwnedFd>,
    ring: RingBuf,
    globals: MappedValue,
    arrays: Arrays<'a>,
    maps: Maps,
    decoder: Decoder,
    child: Option<sys::HeldChild>,
    options: RunOptions,
    exit_requested: bool,
    metrics: Option<MetricsServer>,
    /// Whether stdin is still read: from the start in a script with `__stdin` probes
    /// (`input.char`, `input.line`), until its end.
    reading_stdin: bool,
    /// What user-space handlers read kernel memory through.
    kernel_memory: KernelMemory,
}

impl<'a> Session<'a> {
    /// Loads the object, sets the globals and runs `begin`; attaches nothing yet.
    pub fn load(
        compiled: &'a CompiledScript,
        kernel: &'a LiveKernel,
        options: RunOptions,
        out: &mut ScriptOutput,
    ) -> Result<Session<'a>, RuntimeError> {
        let ring_bytes = if options.buffer_bytes == 0 { RINGBUF_BYTES } else { options.buffer_bytes };
        let maps = Maps::create(&compiled.object, ring_bytes)?;
        let ring = maps
            .fd(compiled.maps.ringbuf)
            .try_clone_to_owned()
            .and_then(|fd| RingBuf::new(fd, ring_bytes))
            .map_err(|e| RuntimeError::Object(format!("cannot map the output ring buffer: {e}")))?;
        let globals = MappedValue::map(maps.fd(compiled.maps.globals), compiled.globals.size as usize)
            .map_err(RuntimeError::Globals)?;
        let mut array_maps = Vec::new();
        for (a, decl) in compiled.program.arrays.iter() {
            let (_, key_size) = layout::key_layout(decl);
            let value_size = layout::array_value_size(decl, compiled.program.string_capacity);
            let per_cpu = decl.value == ValueKind::Stat;
            let fd = maps.fd(layout::array_map_index(a));
            array_maps.push(RawMap::new(fd, key_size as usize, value_size as usize, per_cpu));
        }
        let arrays = Arrays::new(&compiled.program, array_maps);
        let mut session = Session {
            compiled,
            kernel,
            attached: Vec::new(),
            ring,
            globals,
            arrays,
            maps,
            decoder: Decoder::new(&compiled.program),
            child: None,
            options,
            exit_requested: false,
            metrics: None,
            reading_stdin: compiled.program.handlers.iter().any(|h| matches!(h.target, Target::Stdin)),
            kernel_memory: KernelMemory::default(),
        };
        if let Some(addr) = &session.options.metrics {
            let server =
                MetricsServer::start(addr).map_err(|source| RuntimeError::Metrics { addr: addr.clone(), source })?;
            session.metrics = Some(server);
        }
        session.init_globals()?;
        session.fill_syscall_names();
        if let Some(cmd) = &session.options.command {
            let argv = sys::command_argv(cmd);
            if argv.is_empty() {
                return Err(RuntimeError::Command(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "empty command",
                )));
            }
            let child = sys::HeldChild::spawn(&argv, session.options.command_user).map_err(RuntimeError::Command)?;
            session.globals.store_long(GLOBAL_TARGET, child.pid as i64);
            session.child = Some(child);
        }
        session.run_user(|t| matches!(t, Target::Begin { .. }), out)?;
        Ok(session)
    }

    fn init_globals(&mut self) -> Result<(), RuntimeError> {
        let program = &self.compiled.program;
        let cap = program.string_capacity as usize;
        self.globals.store_long(GLOBAL_BOOT_OFFSET, sys::boot_to_realtime_offset());
        self.globals.store_long(GLOBAL_TARGET, self.options.target_pid.unwrap_or(0) as i64);
        for (g, decl) in program.globals.iter() {
            let off = self.compiled.globals.offset(g);
            match &decl.init {
                Some(Const::Long(n)) => self.globals.store_long(off, *n),
                Some(Const::Str(s)) => userspace::write_c_string(&self.globals, off, s, cap),
                None => {}
            }
        }
        for (name, value) in &self.options.set_globals {
            let Some((g, decl)) = program.globals.iter().find(|(_, d)| &d.name == name) else {
                return Err(RuntimeError::SetGlobal {
                    name: name.clone(),
                    reason: "the script has no such global".into(),
                });
            };
            let off = self.compiled.globals.offset(g);
            match decl.ty {
                Ty::Long => {
                    let n = parse_long(value).ok_or_else(|| RuntimeError::SetGlobal {
                        name: name.clone(),
                        reason: format!("`{value}` is not a number, and the global is a long"),
                    })?;
                    self.globals.store_long(off, n);
                }
                Ty::Str => userspace::write_c_string(&self.globals, off, value, cap),
            }
        }
        Ok(())
    }

    /// The tapsets name syscalls through the array `__syscall_names`, filled here.
    fn fill_syscall_names(&self) {
        let Some((a, _)) = self.compiled.program.arrays.iter().find(|(_, d)| d.name == "__syscall_names") else {
            return;
        };
        for (nr, name) in lang::syscall_table::SYSCALLS {
            let _ = self.arrays.set(
                a,
                &[crate::format::Value::Long(*nr as i64)],
                &crate::format::Value::Str(name.to_string()),
            );
        }
    }

    /// Runs the user-space handlers whose target matches, in priority order.
    fn run_user(&mut self, which: impl Fn(&Target) -> bool, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
        let mut handlers: Vec<&Handler> = self.compiled.program.handlers.iter().filter(|h| which(&h.target)).collect();
        handlers.sort_by_key(|h| match h.target {
            Target::Begin { priority } | Target::End { priority } | Target::Error { priority } => priority,
            _ => 0,
        });
        for h in handlers {
            self.run_handler(h, out)?;
        }
        Ok(())
    }

    fn run_handler(&mut self, h: &Handler, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
        let mut write_err = None;
        let mut sink = |bytes: &[u8]| {
            if let Err(e) = out.write_all(bytes) {
                write_err.get_or_insert(e);
            }
        };
        let mut env = Env {
            program: &self.compiled.program,
            arrays: &self.arrays,
            globals: &self.globals,
            layout: &self.compiled.globals,
            out: &mut sink,
            kernel_memory: &self.kernel_memory,
        };
        let effects = userspace::run(&mut env, &h.func)
            .map_err(|source| RuntimeError::Handler { point: h.point.clone(), source })?;
        if let Some(e) = write_err {
            return Err(RuntimeError::Output(e));
        }
        if effects.exit {
            self.stop_kernel_handlers();
        }
        self.exit_requested |= effects.exit;
        if effects.switch_file {
            out.switch_file().map_err(RuntimeError::Output)?;
        }
        if !effects.commands.is_empty() {
            // What the probe printed comes before what the commands print.
            out.flush().map_err(RuntimeError::Output)?;
            for command in effects.commands {
                run_detached(&command);
            }
        }
        Ok(())
    }

    /// Loads and attaches every kernel probe, then starts `-c CMD`.
    pub fn attach(&mut self) -> Result<(), RuntimeError> {
        if self.exit_requested {
            return Ok(());
        }
        let mut refused = Vec::new();
        for probe in &self.compiled.kernel_probes {
            let result = loader::attach(
                self.compiled,
                &self.maps,
                probe,
                self.kernel,
                self.options.force_kprobes,
                &mut self.attached,
            );
            match result {
                Err(e @ RuntimeError::FamilyRefused { .. }) => refused.push(e),
                other => other?,
            }
        }
        if refused.len() == self.compiled.kernel_probes.len() {
            if let Some(e) = refused.into_iter().next() {
                return Err(e);
            }
        } else {
            for e in refused {
                eprintln!("WARNING: skipped: {e}");
            }
        }
        // Attached: nothing from here on needs a capability (see sys::drop_capabilities),
        // except reading kernel symbols' real addresses, which an fd opened now keeps, and
        // the kernel memory reader of user-space handlers, loaded now.
        crate::symbols::open_kallsyms();
        if KernelMemory::needed_by(&self.compiled.program) {
            self.kernel_memory.load();
        }
        sys::drop_capabilities().map_err(RuntimeError::DropCapabilities)?;
        if let Some(path) = &self.options.ready_file {
            let _ = std::fs::write(path, b"");
        }
        if let Some(child) = &mut self.child {
            child.release();
        }
        Ok(())
    }

    /// The event loop, then `end` and the exit-time report. Returns when the script ends.
    /// An error while running (a full array, MAXACTION, a failing handler) stops the loop;
    /// then, as in SystemTap, the `error` probes run, then `end`, and the error is returned.
    pub fn run(&mut self, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
        let result = self.event_loop(out);
        self.stop_kernel_handlers();
        let result = result.and_then(|()| self.drain(out));
        if result.is_err() {
            self.run_user(|t| matches!(t, Target::Error { .. }), out)?;
        }
        self.run_user(|t| matches!(t, Target::End { .. }), out)?;
        self.print_unread_globals(out)?;
        out.flush().map_err(RuntimeError::Output)?;
        let lost = self.globals.load_long(GLOBAL_LOST);
        if lost > 0 {
            eprintln!("bpftap: {lost} output record(s) lost: the ring buffer was full");
        }
        result
    }

    /// Sets the exit flag: handlers compiled to check it return at once from now on, so the
    /// counts `end` sees are those made before `exit()` (see `GlobalsLayout::exited`).
    fn stop_kernel_handlers(&self) {
        self.globals.store_long(self.compiled.globals.exited, 1);
    }

    fn event_loop(&mut self, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
        let started = Instant::now();
        let compiled = self.compiled;
        let mut timers: Vec<(Instant, Duration, &Handler)> = compiled
            .program
            .handlers
            .iter()
            .filter_map(|h| match h.target {
                Target::Timer { interval_ns } => {
                    let every = Duration::from_nanos(interval_ns.max(1000));
                    Some((started + every, every, h))
                }
                _ => None,
            })
            .collect();
        while !self.exit_requested && sys::stop_signal().is_none() && !out.reader_gone() {
            let now = Instant::now();
            let mut wait = Duration::from_millis(100);
            for (due, _, _) in &timers {
                wait = wait.min(due.saturating_duration_since(now));
            }
            if let Some(limit) = self.options.duration {
                if now >= started + limit {
                    break;
                }
                wait = wait.min(started + limit - now);
            }
            let stdin = std::io::stdin();
            let fds = if self.reading_stdin { vec![self.ring.as_fd(), stdin.as_fd()] } else { vec![self.ring.as_fd()] };
            let stdin_ready = sys::poll_readable(&fds, wait.as_millis() as i32).get(1) == Some(&true);
            self.drain(out)?;
            if stdin_ready {
                self.read_stdin(stdin.as_fd(), out)?;
            }
            for i in 0..timers.len() {
                if Instant::now() >= timers[i].0 && !self.exit_requested {
                    let (_, every, h) = timers[i];
                    timers[i].0 += every;
                    self.run_handler(h, out)?;
                }
            }
            self.answer_scrapes()?;
            out.flush().map_err(RuntimeError::Output)?;
            if self.target_gone() {
                break;
            }
        }
        Ok(())
    }

    /// Runs the `__stdin` probes once for each byte `stdin` has now, the byte in the global
    /// `__stdin_char` (see `tapsets/input.stp`). The end of the input, or an error reading
    /// it, ends the reading and not the script, as in SystemTap.
    fn read_stdin(&mut self, stdin: std::os::fd::BorrowedFd<'_>, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
        let mut buf = [0u8; 4096];
        let n = match sys::read_some(stdin, &mut buf) {
            Ok(0) => {
                self.reading_stdin = false;
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(()),
            Err(_) => {
                self.reading_stdin = false;
                return Ok(());
            }
        };
        let compiled = self.compiled;
        let program = &compiled.program;
        let probes: Vec<&Handler> = program.handlers.iter().filter(|h| matches!(h.target, Target::Stdin)).collect();
        let Some((g, _)) = program.globals.iter().find(|(_, d)| d.name == "__stdin_char") else {
            return Ok(());
        };
        let off = compiled.globals.offset(g);
        for &byte in &buf[..n] {
            if self.exit_requested {
                break;
            }
            // The raw byte, not text: a multi-byte character arrives a byte at a time.
            self.globals.write_bytes(off, &[byte, 0]);
            probes.iter().try_for_each(|h| self.run_handler(h, out))?;
        }
        Ok(())
    }

    /// Answers the `--metrics` GETs waiting: with what the page probes of the path print
    /// (`prometheus` for /metrics, `json_data` for /data.json); at /metrics, in a script
    /// without a `prometheus` probe, with the globals as they are now.
    fn answer_scrapes(&mut self) -> Result<(), RuntimeError> {
        let scrapes: Vec<Scrape> = self.metrics.as_ref().map(|m| m.pending().collect()).unwrap_or_default();
        let compiled = self.compiled;
        for scrape in scrapes {
            let probes: Vec<&Handler> = compiled
                .program
                .handlers
                .iter()
                .filter(|h| matches!(h.target, Target::Page { path } if path == scrape.path()))
                .collect();
            if probes.is_empty() {
                let body = (scrape.path() == METRICS_PATH)
                    .then(|| metrics::exposition(&compiled.program, &compiled.globals, &self.globals, &self.arrays));
                scrape.answer(body);
                continue;
            }
            let body = metrics::Body::default();
            let mut out = ScriptOutput::to_writer(Box::new(body.clone()));
            // A failing handler stops the script, as in any other probe; the scraper gets
            // what was printed before the failure.
            let result = probes.iter().try_for_each(|h| self.run_handler(h, &mut out));
            let _ = out.flush();
            scrape.answer(Some(body.text()));
            result?;
        }
        Ok(())
    }

    fn drain(&mut self, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
        let program = &self.compiled.program;
        let (decoder, exit_requested) = (&self.decoder, &mut self.exit_requested);
        let mut result = Ok(());
        self.ring.drain(|record| {
            result = match decoder.decode(record) {
                Record::Print(bytes) => out.write_all(&bytes).map_err(RuntimeError::Output),
                Record::Stderr(bytes) => {
                    let _ = std::io::stderr().write_all(&bytes);
                    Ok(())
                }
                Record::Error(message) => {
                    Err(RuntimeError::Handler { point: "a kernel probe".into(), source: HandlerError::Script(message) })
                }
                Record::Command(command) => out.flush().map_err(RuntimeError::Output).map(|()| run_detached(&command)),
                Record::Exit => {
                    *exit_requested = true;
                    Ok(())
                }
                Record::MaxAction(h) => {
                    let point = program.handlers.get(h).map_or("?", |h| h.point.as_str());
                    Err(RuntimeError::MaxAction(point.to_string()))
                }
                Record::Malformed(why) => {
                    eprintln!("bpftap: internal error: malformed output record: {why}");
                    Ok(())
                }
            };
            result.is_ok()
        });
        result?;
        let full = self.globals.load_long(GLOBAL_ARRAY_FULL);
        if full > 0 {
            let name = program.arrays.get(ArrayId::from_u32(full as u32 - 1)).map_or("?", |d| d.name.as_str());
            return Err(RuntimeError::ArrayFull(name.to_string()));
        }
        Ok(())
    }

    /// Whether the `-c` child or the `-x` process has exited.
    fn target_gone(&mut self) -> bool {
        if let Some(child) = &mut self.child {
            return child.exited();
        }
        match self.options.target_pid {
            Some(pid) if self.options.command.is_none() => !sys::process_alive(pid),
            _ => false,
        }
    }

    /// Globals written but never read are printed at exit, as SystemTap does.
    fn print_unread_globals(&mut self, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
        let cap = self.compiled.program.string_capacity as usize;
        for (g, decl) in self.compiled.program.globals.iter() {
            if decl.read || decl.name.starts_with("__") {
                continue;
            }
            let off = self.compiled.globals.offset(g);
            let line = match decl.ty {
                Ty::Long => format!("{}={}\n", decl.name, self.globals.load_long(off)),
                Ty::Str => {
                    format!("{}=\"{}\"\n", decl.name, userspace::read_c_string(&self.globals.read_bytes(off, cap)))
                }
            };
            out.write_all(line.as_bytes()).map_err(RuntimeError::Output)?;
        }
        for (a, decl) in self.compiled.program.arrays.iter() {
            // Names starting with `__` are the tapsets' own.
            if !decl.read && !decl.name.starts_with("__") {
                out.write_all(self.arrays.exit_lines(a).as_bytes()).map_err(RuntimeError::Output)?;
            }
        }
        Ok(())
    }
}

/// Starts `sh -c command` with bpftap's stdout and stderr, as SystemTap's `system()` does,
/// and reaps it from a thread so the event loop does not wait. A command that cannot start
/// is reported and the script goes on.
fn run_detached(command: &str) {
    match std::process::Command::new("/bin/sh").arg("-c").arg(command).stdin(std::process::Stdio::null()).spawn() {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => eprintln!("WARNING: system(\"{command}\"): {e}"),
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            child.kill();
        }
        detach(std::mem::take(&mut self.attached));
    }
}

/// Closes the fds that keep the probes attached. Closing a perf event on a tracepoint,
/// kprobe or uprobe waits for an RCU grace period in the kernel (70–90 ms here), so one
/// after the other a script of 8 probes took 0.6 s to stop; closed from a thread each, the
/// waits overlap and the whole takes one grace period.
fn detach(fds: Vec<OwnedFd>) {
    std::thread::scope(|scope| {
        for fd in fds {
            let closer = std::thread::Builder::new().stack_size(64 << 10);
            // Without a thread (the system refuses one), it is closed here when the
            // closure is dropped.
            let _ = closer.spawn_scoped(scope, move || drop(fd));
        }
    });
}

fn parse_long(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    s.parse().ok()
}
