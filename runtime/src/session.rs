//! A running script: load the object, set the globals, run `begin`, attach the kernel
//! probes, loop over ring-buffer records and timers, then run `end`, print what the script
//! left unread, and detach everything.
//!
//! [`Session::start`] loads and attaches; [`Session::run`] drives the loop; dropping the
//! session detaches every program and closes every map, on every path, errors included.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aya::maps::{Map, RingBuf};
use aya::programs::{ProgramError, TracePoint};
use aya::{Ebpf, EbpfError, EbpfLoader};
use codegen_bpf::compile::{array_map_name, CompiledScript, KernelProbe, RawProgram};
use codegen_bpf::layout;
use codegen_bpf::layout::{GLOBAL_BOOT_OFFSET, GLOBAL_LOST, GLOBAL_TARGET};
use codegen_bpf::object::write_object;
use codegen_bpf::object::RelocTarget;
use lang::ir::{Const, Handler, Target, Ty, ValueKind};
use lang::span::Span;

use crate::arrays::Arrays;
use crate::output::{Decoder, Record};
use crate::sys::{self, MappedValue, RawMap};
use crate::userspace::{self, Env, HandlerError};

/// How to run a script.
#[derive(Default)]
pub struct RunOptions {
    /// `-x PID`: `target()`, and the script stops when that process exits.
    pub target_pid: Option<i32>,
    /// `-c CMD`: run after the probes are attached; `target()` is its pid; stop when it exits.
    pub command: Option<String>,
    /// `-T SECONDS`.
    pub duration: Option<Duration>,
    /// `-G NAME=VALUE`, applied before `begin`.
    pub set_globals: Vec<(String, String)>,
    /// Created once every probe is attached (for tests and scripts that wait on us).
    pub ready_file: Option<PathBuf>,
    /// Attach `kernel.function` probes as kprobes even where fentry works (`--kprobes`), so
    /// both code paths can be tested on one kernel.
    pub force_kprobes: bool,
}

/// What went wrong while running; rendered by the binary.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
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
    #[error("loading BPF programs needs root (or CAP_BPF and CAP_PERFMON): run bpftap with sudo")]
    NotPermitted,
    #[error("cannot map the globals: {0}")]
    Globals(std::io::Error),
    #[error("-G {name}: {reason}")]
    SetGlobal { name: String, reason: String },
    #[error("cannot run -c command: {0}")]
    Command(std::io::Error),
    #[error("error in {point}: {source}")]
    Handler { point: String, source: HandlerError },
    #[error("array `{0}` is full: raise its size (`global {0}[N]`) or -D MAXMAPENTRIES, or mark it `%` to wrap")]
    ArrayFull(String),
    #[error("probe {0} ran more than {max} loop iterations (MAXACTION)", max = lang::lower::MAX_LOOP_ITERATIONS)]
    MaxAction(String),
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

pub struct Session<'a> {
    compiled: &'a CompiledScript,
    // Field order matters on drop: links and programs go with `ebpf`, after the ring buffer.
    ring: RingBuf<aya::maps::MapData>,
    globals: MappedValue,
    /// Programs loaded without aya (netfilter) and their links: closing them detaches.
    raw_fds: Vec<std::os::fd::OwnedFd>,
    ebpf: Ebpf,
    arrays: Arrays<'a>,
    decoder: Decoder,
    child: Option<sys::HeldChild>,
    options: RunOptions,
    exit_requested: bool,
}

impl<'a> Session<'a> {
    /// Loads the object, sets the globals and runs `begin`; attaches nothing yet.
    pub fn load(
        compiled: &'a CompiledScript,
        options: RunOptions,
        out: &mut dyn Write,
    ) -> Result<Session<'a>, RuntimeError> {
        let bytes = write_object(&compiled.object);
        let mut ebpf = EbpfLoader::new().load(&bytes).map_err(load_error)?;
        let ring_map = ebpf.take_map("bpftap_output").ok_or_else(|| RuntimeError::Object("no output map".into()))?;
        let ring = RingBuf::try_from(ring_map).map_err(|e| RuntimeError::Object(e.to_string()))?;
        let globals = match ebpf.map("bpftap_globals") {
            Some(Map::Array(data)) => MappedValue::map(data.fd().as_fd(), compiled.globals.size as usize),
            _ => return Err(RuntimeError::Object("no globals map".into())),
        }
        .map_err(RuntimeError::Globals)?;
        let mut maps = Vec::new();
        for (a, decl) in compiled.program.arrays.iter() {
            let name = array_map_name(a, &decl.name);
            let data = match ebpf.map(&name) {
                Some(Map::HashMap(d) | Map::LruHashMap(d) | Map::PerCpuHashMap(d)) => d,
                _ => return Err(RuntimeError::Object(format!("no map for array {}", decl.name))),
            };
            let (_, key_size) = layout::key_layout(decl);
            let value_size = layout::array_value_size(decl, compiled.program.string_capacity);
            let per_cpu = decl.value == ValueKind::Stat;
            maps.push(RawMap::new(data.fd().as_fd(), key_size as usize, value_size as usize, per_cpu));
        }
        let arrays = Arrays::new(&compiled.program, maps);
        let mut session = Session {
            compiled,
            ring,
            globals,
            arrays,
            raw_fds: Vec::new(),
            ebpf,
            decoder: Decoder::new(&compiled.program),
            child: None,
            options,
            exit_requested: false,
        };
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
            let child = sys::HeldChild::spawn(&argv).map_err(RuntimeError::Command)?;
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
    fn run_user(&mut self, which: impl Fn(&Target) -> bool, out: &mut dyn Write) -> Result<(), RuntimeError> {
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

    fn run_handler(&mut self, h: &Handler, out: &mut dyn Write) -> Result<(), RuntimeError> {
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
        };
        let effects = userspace::run(&mut env, &h.func)
            .map_err(|source| RuntimeError::Handler { point: h.point.clone(), source })?;
        if let Some(e) = write_err {
            return Err(RuntimeError::Output(e));
        }
        self.exit_requested |= effects.exit;
        Ok(())
    }

    /// Loads and attaches every kernel probe, then starts `-c CMD`.
    pub fn attach(&mut self) -> Result<(), RuntimeError> {
        if self.exit_requested {
            return Ok(());
        }
        for probe in &self.compiled.kernel_probes {
            let handler = &self.compiled.program.handlers[probe.handler];
            let point = handler.point.clone();
            if let Some(raw) = &probe.raw {
                self.attach_raw(raw, probe, &point)?;
                continue;
            }
            let Some(prog) = self.ebpf.program_mut(&probe.name) else {
                return Err(RuntimeError::Load { point, reason: "missing from the object".into() });
            };
            match &probe.target {
                Target::Tracepoint { group, event, .. } => {
                    let tp: &mut TracePoint = prog.try_into().map_err(|e: ProgramError| RuntimeError::Load {
                        point: point.clone(),
                        reason: e.to_string(),
                    })?;
                    tp.load().map_err(|e| program_error(e, &point, &probe.spans))?;
                    tp.attach(group, event)
                        .map_err(|e| RuntimeError::Attach { point: point.clone(), reason: error_chain(&e) })?;
                }
                Target::Uprobe { path, symbol, .. } => {
                    let up: &mut aya::programs::UProbe = prog.try_into().map_err(|e: ProgramError| {
                        RuntimeError::Load { point: point.clone(), reason: e.to_string() }
                    })?;
                    up.load().map_err(|e| program_error(e, &point, &probe.spans))?;
                    let location = aya::programs::uprobe::UProbeAttachLocation::Symbol(symbol.as_str());
                    up.attach(location, path.as_str(), aya::programs::uprobe::UProbeScope::AllProcesses)
                        .map_err(|e| RuntimeError::Attach { point: point.clone(), reason: error_chain(&e) })?;
                }
                Target::Perf { event, sample } => {
                    use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
                    let pe: &mut aya::programs::PerfEvent = prog.try_into().map_err(|e: ProgramError| {
                        RuntimeError::Load { point: point.clone(), reason: e.to_string() }
                    })?;
                    pe.load().map_err(|e| program_error(e, &point, &probe.spans))?;
                    let config = PerfEventConfig::Software(match event {
                        lang::ir::PerfEvent::CpuClock => SoftwareEvent::CpuClock,
                        lang::ir::PerfEvent::TaskClock => SoftwareEvent::TaskClock,
                    });
                    let policy = match sample {
                        lang::ir::PerfSample::Frequency(hz) => SamplePolicy::Frequency(*hz),
                        lang::ir::PerfSample::Period(n) => SamplePolicy::Period(*n),
                    };
                    let cpus = aya::util::online_cpus().map_err(|(_, e)| RuntimeError::Attach {
                        point: point.clone(),
                        reason: format!("cannot list the online CPUs: {e}"),
                    })?;
                    // One perf event per CPU: a sampling probe fires on every CPU.
                    for cpu in cpus {
                        pe.attach(config, PerfEventScope::AllProcessesOneCpu { cpu }, policy, false)
                            .map_err(|e| RuntimeError::Attach { point: point.clone(), reason: error_chain(&e) })?;
                    }
                }
                Target::KernelFunction { name, ret, .. } => {
                    let (name, ret) = (name.clone(), *ret);
                    let fentry = if self.options.force_kprobes {
                        Err("not tried (kprobes forced)".to_string())
                    } else {
                        attach_fentry(&mut self.ebpf, &probe.name, &name, ret)
                    };
                    if let Err(fentry_error) = fentry {
                        let kprobe = match probe.kprobe_fallback.as_deref() {
                            Some(kname) => attach_kprobe(&mut self.ebpf, kname, &name),
                            None => Err("the handler reads arguments at the return, which needs fexit".into()),
                        };
                        if let Err(kprobe_error) = kprobe {
                            return Err(RuntimeError::Attach {
                                point,
                                reason: format!(
                                    "this kernel allows neither fentry/fexit ({fentry_error}) nor kprobes ({kprobe_error}); \
                                     kernel.function probes need one of them (CONFIG_KPROBES, or BPF trampolines)"
                                ),
                            });
                        }
                    }
                }
                other => {
                    return Err(RuntimeError::Attach { point, reason: format!("no attach method for {other:?}") });
                }
            }
        }
        if let Some(path) = &self.options.ready_file {
            let _ = std::fs::write(path, b"");
        }
        if let Some(child) = &mut self.child {
            child.release();
        }
        Ok(())
    }

    /// Loads a program aya cannot (netfilter): patches the map fds aya made into its map
    /// references, loads it with `BPF_PROG_LOAD` and links it.
    fn attach_raw(&mut self, raw: &RawProgram, probe: &KernelProbe, point: &str) -> Result<(), RuntimeError> {
        let mut insns = raw.insns.clone();
        for reloc in &raw.relocs {
            let (name, src, offset) = match reloc.target {
                RelocTarget::Map(i) => (self.compiled.object.maps[i].name.as_str(), 1, 0),
                RelocTarget::Rodata(off) => (".rodata", 2, off as i32),
            };
            // The ring buffer was taken out of aya's table when the session started.
            let ring_fd = (name == "bpftap_output").then(|| std::os::fd::AsRawFd::as_raw_fd(&self.ring.as_fd()));
            let fd = ring_fd.or_else(|| map_fd(&self.ebpf, name)).ok_or_else(|| RuntimeError::Load {
                point: point.to_string(),
                reason: format!("no map {name} in the loaded object"),
            })?;
            insns[reloc.insn_index].src = src;
            insns[reloc.insn_index].imm = fd;
            insns[reloc.insn_index + 1].imm = offset;
        }
        let bytes = codegen_bpf::insn::encode(&insns);
        let prog = sys::prog_load(raw.prog_type, raw.expected_attach_type, &bytes, &probe.name).map_err(|e| {
            if e.error.raw_os_error() == Some(libc::EPERM) && e.log.is_empty() {
                return RuntimeError::NotPermitted;
            }
            if e.log.is_empty() {
                return RuntimeError::Load {
                    point: point.to_string(),
                    reason: format!("{} (netfilter BPF programs need Linux 6.4 or later)", e.error),
                };
            }
            let insn =
                e.log.lines().rev().find_map(|l| l.split(':').next().and_then(|n| n.trim().parse::<usize>().ok()));
            let span = insn.and_then(|i| probe.spans.iter().take_while(|(at, _)| *at <= i).last().map(|(_, s)| *s));
            RuntimeError::Verifier { point: point.to_string(), span, log: e.log }
        })?;
        let Target::Netfilter { pf, hook, priority } = probe.target else {
            return Err(RuntimeError::Attach { point: point.to_string(), reason: "not a netfilter probe".into() });
        };
        // Two BPF programs may not share a hook's priority (EBUSY): take the next free one
        // below ours, which also lets several bpftap sessions watch the same hook.
        let mut attempt = 0;
        let link = loop {
            match sys::netfilter_link(prog.as_fd(), raw.expected_attach_type, pf, hook, priority - attempt) {
                Ok(link) => break link,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 4096 => attempt += 1,
                Err(e) => {
                    return Err(RuntimeError::Attach {
                        point: point.to_string(),
                        reason: format!("netfilter link: {e} (the kernel needs CONFIG_NETFILTER_BPF_LINK, Linux 6.4+)"),
                    })
                }
            }
        };
        self.raw_fds.push(link);
        self.raw_fds.push(prog);
        Ok(())
    }

    /// The event loop, then `end` and the exit-time report. Returns when the script ends.
    /// An error while running (a full array, MAXACTION, a failing handler) stops the loop;
    /// then, as in SystemTap, the `error` probes run, then `end`, and the error is returned.
    pub fn run(&mut self, out: &mut dyn Write) -> Result<(), RuntimeError> {
        let result = self.event_loop(out).and_then(|()| self.drain(out));
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

    fn event_loop(&mut self, out: &mut dyn Write) -> Result<(), RuntimeError> {
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
        while !self.exit_requested && sys::stop_signal().is_none() {
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
            sys::poll_readable(self.ring.as_fd(), wait.as_millis() as i32);
            self.drain(out)?;
            for i in 0..timers.len() {
                if Instant::now() >= timers[i].0 && !self.exit_requested {
                    let (_, every, h) = timers[i];
                    timers[i].0 += every;
                    self.run_handler(h, out)?;
                }
            }
            out.flush().map_err(RuntimeError::Output)?;
            if self.target_gone() {
                break;
            }
        }
        Ok(())
    }

    fn drain(&mut self, out: &mut dyn Write) -> Result<(), RuntimeError> {
        while let Some(item) = self.ring.next() {
            match self.decoder.decode(&item) {
                Record::Print(bytes) => out.write_all(&bytes).map_err(RuntimeError::Output)?,
                Record::Exit => self.exit_requested = true,
                Record::MaxAction(h) => {
                    let point = self.compiled.program.handlers.get(h).map_or("?", |h| h.point.as_str());
                    return Err(RuntimeError::MaxAction(point.to_string()));
                }
                Record::ArrayFull(a) => {
                    let name = self.compiled.program.arrays.get(a).map_or("?", |d| d.name.as_str());
                    return Err(RuntimeError::ArrayFull(name.to_string()));
                }
                Record::Malformed(why) => eprintln!("bpftap: internal error: malformed output record: {why}"),
            }
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
    fn print_unread_globals(&mut self, out: &mut dyn Write) -> Result<(), RuntimeError> {
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

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            child.kill();
        }
    }
}

/// Loads and attaches the fentry (or fexit) variant of a function probe.
fn attach_fentry(ebpf: &mut Ebpf, prog_name: &str, function: &str, ret: bool) -> Result<(), String> {
    let btf = aya::Btf::from_sys_fs().map_err(|e| error_chain(&e))?;
    let prog = ebpf.program_mut(prog_name).ok_or("missing from the object")?;
    if ret {
        let p: &mut aya::programs::FExit = prog.try_into().map_err(|e: ProgramError| error_chain(&e))?;
        p.load(function, &btf).map_err(|e| error_chain(&e))?;
        p.attach().map_err(|e| error_chain(&e))?;
    } else {
        let p: &mut aya::programs::FEntry = prog.try_into().map_err(|e: ProgramError| error_chain(&e))?;
        p.load(function, &btf).map_err(|e| error_chain(&e))?;
        p.attach().map_err(|e| error_chain(&e))?;
    }
    Ok(())
}

/// Loads and attaches the kprobe (or kretprobe) variant of a function probe.
fn attach_kprobe(ebpf: &mut Ebpf, prog_name: &str, function: &str) -> Result<(), String> {
    let prog = ebpf.program_mut(prog_name).ok_or("missing from the object")?;
    let p: &mut aya::programs::KProbe = prog.try_into().map_err(|e: ProgramError| error_chain(&e))?;
    p.load().map_err(|e| error_chain(&e))?;
    p.attach(function, 0).map_err(|e| error_chain(&e))?;
    Ok(())
}

/// The fd of one of the object's maps, as aya created it.
fn map_fd(ebpf: &Ebpf, name: &str) -> Option<i32> {
    use std::os::fd::AsRawFd;
    let data = match ebpf.map(name)? {
        Map::Array(d)
        | Map::PerCpuArray(d)
        | Map::HashMap(d)
        | Map::LruHashMap(d)
        | Map::PerCpuHashMap(d)
        | Map::RingBuf(d) => d,
        _ => return None,
    };
    Some(data.fd().as_fd().as_raw_fd())
}

fn parse_long(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    s.parse().ok()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn is_eperm(e: &dyn std::error::Error) -> bool {
    let text = error_chain(e);
    text.contains("Operation not permitted") || text.contains("os error 1)")
}

fn load_error(e: EbpfError) -> RuntimeError {
    if is_eperm(&e) {
        return RuntimeError::NotPermitted;
    }
    RuntimeError::Object(error_chain(&e))
}

/// A load failure, with the verifier's log and the script span of the instruction it
/// stopped at (the last instruction index the log names).
fn program_error(e: ProgramError, point: &str, spans: &[(usize, Span)]) -> RuntimeError {
    match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            if io_error.raw_os_error() == Some(libc::EPERM) && log.trim().is_empty() {
                return RuntimeError::NotPermitted;
            }
            let insn = log.lines().rev().find_map(|l| l.split(':').next().and_then(|n| n.trim().parse::<usize>().ok()));
            let span = insn.and_then(|i| spans.iter().take_while(|(at, _)| *at <= i).last().map(|(_, s)| *s));
            RuntimeError::Verifier { point: point.to_string(), span, log }
        }
        other => {
            if is_eperm(&other) {
                return RuntimeError::NotPermitted;
            }
            RuntimeError::Load { point: point.to_string(), reason: error_chain(&other) }
        }
    }
}
