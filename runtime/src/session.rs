//! A running session: the globals and arrays that live as long as it does, and the compiled
//! units added to it, each with its probes, maps, output ring and timers.
//!
//! A script is one unit added to a fresh session ([`Session::load`]); an interactive session
//! adds many and removes some ([`Session::add`], [`Session::remove`]). Either way:
//! [`Session::new`] creates the globals map (its size fixed for the session's life), holds
//! `-c CMD` and starts `--metrics`; [`Session::add`] creates a unit's maps, sharing the
//! session's globals and the arrays an earlier unit made (same name, same layout, or an
//! error), sets the globals new to the session and runs the unit's `begin`;
//! [`Session::attach`] / [`Session::attach_unit`] load and attach its kernel programs;
//! [`Session::turn`] is one turn of the event loop over every unit; [`Session::finish`] runs
//! `error` and `end` and prints what no unit read.
//!
//! Invariants: every unit is compiled with the session's [`GlobalsPlan`] (the offsets of the
//! globals placed so far, the map's fixed size), so all see each global at one offset; a
//! unit's format and record ids are its own, decoded from its own ring, so ids never
//! collide. Dropping a unit detaches its probes and closes its maps (shared maps stay open
//! in the session); dropping the session detaches everything, on every path, errors
//! included.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use codegen_bpf::compile::{CompiledScript, RINGBUF_BYTES};
use codegen_bpf::layout;
use codegen_bpf::layout::{GlobalsPlan, GLOBAL_ARRAY_FULL, GLOBAL_BOOT_OFFSET, GLOBAL_LOST, GLOBAL_TARGET};
use codegen_bpf::object::MapDef;
use lang::ir::{ArrayDecl, ArrayId, Const, Target, Ty, ValueKind, METRICS_PATH};
use lang::span::Span;

use crate::arrays::Arrays;
use crate::bpf;
use crate::event::Event;
use crate::format::Value;
use crate::kernel_info::LiveKernel;
use crate::kernel_memory::KernelMemory;
use crate::loader::{self, Maps};
use crate::metrics::{self, MetricsServer, Scrape};
use crate::output::{Decoder, Messages, Record, ScriptOutput};
use crate::ringbuf::RingBuf;
use crate::sys::{self, MappedValue, RawMap};
use crate::userspace::{self, Env, HandlerError};

/// How to run a script.
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
    /// Where messages for the user go (see [`Messages`]).
    pub messages: Messages,
}

/// What went wrong while running; rendered by the binary.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot drop capabilities once attached: {0}")]
    DropCapabilities(std::io::Error),
    /// The kernel refused to create a map of the object (`bpf(BPF_MAP_CREATE)`).
    #[error("cannot create map {name}: {source}")]
    Map { name: String, source: std::io::Error },
    /// A map's fd could not be duplicated for the session (`dup`), or the ring buffer mapped
    /// (`mmap`): the process is out of fds or memory.
    #[error("cannot {what}: {source}")]
    Resources { what: &'static str, source: std::io::Error },
    /// The verifier rejected a program. `span` is the script code of the failing instruction.
    #[error("the kernel's verifier rejected probe {point}")]
    Verifier { point: String, span: Option<Span>, log: String },
    #[error("cannot load probe {point}: {source}")]
    Load { point: String, source: crate::loader::ProbeError },
    #[error("cannot attach probe {point}: {source}")]
    Attach { point: String, source: crate::loader::ProbeError },
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
    #[error("probe {point} ran more than {max} loop iterations (MAXACTION)")]
    MaxAction { point: String, max: u32 },
    /// An interactive input uses an array the session has with another layout.
    #[error("array `{name}` {reason}")]
    ArrayLayout { name: String, reason: String },
    #[error("--metrics {addr}: {source}")]
    Metrics { addr: String, source: std::io::Error },
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

impl RuntimeError {
    /// The probe point the error is about, where there is one.
    pub fn probe(&self) -> Option<&str> {
        match self {
            RuntimeError::Verifier { point, .. }
            | RuntimeError::Load { point, .. }
            | RuntimeError::Attach { point, .. }
            | RuntimeError::FamilyRefused { point, .. }
            | RuntimeError::Handler { point, .. }
            | RuntimeError::MaxAction { point, .. } => Some(point),
            _ => None,
        }
    }
}

/// A unit's number in its session, from 1, never reused.
pub type UnitId = u32;

pub struct Session<'k> {
    kernel: &'k LiveKernel,
    // Field order matters on drop: units (their probes, then their maps) go before the
    // session's own maps.
    units: Vec<Unit>,
    globals: MappedValue,
    /// The offsets given so far, and the globals map's fixed size.
    plan: GlobalsPlan,
    /// The type of each global placed so far.
    global_types: BTreeMap<String, Ty>,
    /// The arrays units made, by name, with a map fd the session keeps.
    arrays: BTreeMap<String, SharedArray>,
    /// Globals and arrays some unit reads: those no unit read are printed at the end.
    read: BTreeSet<String>,
    globals_fd: OwnedFd,
    next_unit: UnitId,
    child: Option<sys::HeldChild>,
    options: RunOptions,
    exit_requested: bool,
    metrics: Option<MetricsServer>,
    /// With `--metrics` or [`Session::count_runs`]: the kernel counts the programs' runs
    /// while this fd is open.
    run_time_stats: Option<OwnedFd>,
    /// Whether stdin is still read: from the start in a script with `__stdin` probes
    /// (`input.char`, `input.line`), until its end.
    reading_stdin: bool,
    /// What user-space handlers read kernel memory through.
    kernel_memory: KernelMemory,
    started: Instant,
}

struct SharedArray {
    fd: OwnedFd,
    decl: ArrayDecl,
    def: MapDef,
}

/// One compiled input of the session: a script, or a probe typed at the prompt.
struct Unit {
    id: UnitId,
    compiled: CompiledScript,
    /// Per kernel probe, the fds that keep it attached, its program first; empty while
    /// detached. Dropped before `maps`.
    attached: Vec<Vec<OwnedFd>>,
    ring: RingBuf,
    decoder: Decoder,
    /// The maps of the unit's arrays, by `ArrayId`.
    array_maps: Vec<RawMap>,
    /// Per `timer.*` handler: when it is next due, its interval, its index.
    timers: Vec<(Instant, Duration, usize)>,
    maps: Maps,
}

/// What `list` shows of a unit.
pub struct UnitInfo {
    pub id: UnitId,
    /// The probe points, as written.
    pub points: Vec<String>,
    pub attached: bool,
    /// Runs and nanoseconds run, summed over the unit's kernel programs (0 unless the
    /// kernel counts them: see [`Session::count_runs`]).
    pub runs: u64,
    pub run_ns: u64,
}

/// What one turn of the event loop saw.
pub struct Turn {
    /// Why the script is over, if it is.
    pub stop: Option<Stop>,
    /// The fd given to [`Session::turn`] is readable.
    pub woken: bool,
}

/// Why a script is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A probe called `exit()`.
    Exit,
    /// The `-c` command or the `-x` process has exited.
    TargetGone,
    /// `-T` elapsed.
    Timeout,
    /// The reader of the output has gone (a broken pipe).
    ReaderGone,
}

impl<'k> Session<'k> {
    /// A script's session: the script as its one unit, the globals map its size; `begin`
    /// has run and nothing is attached yet.
    pub fn load(
        compiled: CompiledScript,
        kernel: &'k LiveKernel,
        options: RunOptions,
        out: &mut ScriptOutput,
    ) -> Result<Session<'k>, RuntimeError> {
        let plan = GlobalsPlan { size: compiled.globals.size, ..GlobalsPlan::fixed(compiled.globals.size) };
        let mut session = Session::new(kernel, options, plan)?;
        session.add(compiled, out)?;
        Ok(session)
    }

    /// A session with no unit: the globals map of `plan.size` bytes, `-c CMD` spawned and
    /// held, `--metrics` serving.
    pub fn new(kernel: &'k LiveKernel, options: RunOptions, plan: GlobalsPlan) -> Result<Session<'k>, RuntimeError> {
        let globals_fd = loader::create_map(&codegen_bpf::compile::globals_map(plan.size), 0)?;
        let globals = MappedValue::map(globals_fd.as_fd(), plan.size as usize).map_err(RuntimeError::Globals)?;
        let mut session = Session {
            kernel,
            units: Vec::new(),
            globals,
            plan,
            global_types: BTreeMap::new(),
            arrays: BTreeMap::new(),
            read: BTreeSet::new(),
            globals_fd,
            next_unit: 1,
            child: None,
            options,
            exit_requested: false,
            metrics: None,
            run_time_stats: None,
            reading_stdin: false,
            kernel_memory: KernelMemory::default(),
            started: Instant::now(),
        };
        if let Some(addr) = &session.options.metrics {
            let server =
                MetricsServer::start(addr).map_err(|source| RuntimeError::Metrics { addr: addr.clone(), source })?;
            session.metrics = Some(server);
            // Needs CAP_SYS_ADMIN, so now, before attach drops it; without it (or before Linux
            // 5.8) the per-probe metrics are left out.
            if let Err(e) = session.count_runs() {
                (session.options.messages)(&format!(
                    "WARNING: --metrics: no per-probe statistics: the kernel refuses to count runs ({e})\n"
                ));
            }
        }
        session.globals.store_long(GLOBAL_BOOT_OFFSET, sys::boot_to_realtime_offset());
        session.globals.store_long(GLOBAL_TARGET, session.options.target_pid.unwrap_or(0) as i64);
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
        Ok(session)
    }

    /// Makes the kernel count the runs and run time of every program (see
    /// [`Session::units`]) for the session's life.
    pub fn count_runs(&mut self) -> std::io::Result<()> {
        if self.run_time_stats.is_none() {
            self.run_time_stats = Some(bpf::enable_run_time_stats()?);
        }
        Ok(())
    }

    /// `target()`: the `-c` command's pid, or `-x PID`.
    pub fn target(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.pid).or(self.options.target_pid)
    }

    /// Sets `target()` (the REPL's `set x PID`).
    pub fn set_target(&mut self, pid: i32) {
        self.options.target_pid = Some(pid);
        self.globals.store_long(GLOBAL_TARGET, pid as i64);
    }

    /// Where the next unit must put its globals: compile it with this.
    pub fn plan(&self) -> &GlobalsPlan {
        &self.plan
    }

    /// The types of the globals and arrays the session has, for compiling the next unit.
    pub fn known_types(&self) -> lang::types::Known {
        let arrays = self
            .arrays
            .iter()
            .map(|(name, a)| {
                let ty = lang::types::ArrayType {
                    keys: a.decl.keys.iter().map(|t| Some(*t)).collect(),
                    value: Some(a.decl.value),
                    span: Span::default(),
                    hist_log: a.decl.hist.log,
                    hist_linear: a.decl.hist.linear,
                };
                (name.clone(), ty)
            })
            .collect();
        lang::types::Known { globals: self.global_types.iter().map(|(n, t)| (n.clone(), *t)).collect(), arrays }
    }

    /// Adds a compiled unit: creates its maps (sharing the session's), sets the globals new
    /// to the session, and runs its `begin` probes. Its kernel probes are not attached yet.
    /// On error nothing of the unit stays and the session is as it was, except for what a
    /// failing `begin` changed.
    pub fn add(&mut self, compiled: CompiledScript, out: &mut ScriptOutput) -> Result<UnitId, RuntimeError> {
        let ring_bytes = if self.options.buffer_bytes == 0 { RINGBUF_BYTES } else { self.options.buffer_bytes };
        let program = &compiled.program;
        let array_at = |index: usize| program.arrays.iter().find(|(a, _)| layout::array_map_index(*a) == index);
        let maps = Maps::create(&compiled.object, ring_bytes, |index, def| {
            if index == compiled.maps.globals {
                return self.globals_fd.try_clone().map(Some).map_err(RuntimeError::Globals);
            }
            let Some((_, decl)) = array_at(index) else { return Ok(None) };
            let Some(shared) = self.arrays.get(&decl.name) else { return Ok(None) };
            if shared.decl.keys != decl.keys || shared.decl.value != decl.value || shared.def != *def {
                return Err(RuntimeError::ArrayLayout {
                    name: decl.name.clone(),
                    reason: format!(
                        "is {} in this session; this input uses it as {}",
                        describe_array(&shared.decl),
                        describe_array(decl)
                    ),
                });
            }
            shared
                .fd
                .try_clone()
                .map(Some)
                .map_err(|source| RuntimeError::Resources { what: "share an array's map", source })
        })?;
        let ring = maps
            .fd(compiled.maps.ringbuf)
            .try_clone_to_owned()
            .and_then(|fd| RingBuf::new(fd, ring_bytes))
            .map_err(|source| RuntimeError::Resources { what: "map the output ring buffer", source })?;
        let mut array_maps = Vec::new();
        let mut new_arrays = Vec::new();
        for (a, decl) in program.arrays.iter() {
            let index = layout::array_map_index(a);
            let (_, key_size) = layout::key_layout(decl);
            let value_size = layout::array_value_size(decl, program.string_capacity);
            let per_cpu = decl.value == ValueKind::Stat || decl.per_cpu;
            array_maps.push(RawMap::new(maps.fd(index), key_size as usize, value_size as usize, per_cpu));
            if !self.arrays.contains_key(&decl.name) {
                let fd = maps
                    .fd(index)
                    .try_clone_to_owned()
                    .map_err(|source| RuntimeError::Resources { what: "share an array's map", source })?;
                new_arrays.push((a, SharedArray { fd, decl: decl.clone(), def: compiled.object.maps[index].clone() }));
            }
        }
        let started = Instant::now();
        let timers = program
            .handlers
            .iter()
            .enumerate()
            .filter_map(|(i, h)| match h.target {
                Target::Timer { interval_ns } => {
                    let every = Duration::from_nanos(interval_ns.max(1000));
                    Some((started + every, every, i))
                }
                _ => None,
            })
            .collect();
        let unit = Unit {
            id: self.next_unit,
            decoder: Decoder::new(program),
            attached: Vec::new(),
            ring,
            array_maps,
            timers,
            maps,
            compiled,
        };
        self.init_globals(&unit)?;
        // From here on the unit is part of the session.
        let first = self.units.is_empty();
        for (g, decl) in unit.compiled.program.globals.iter() {
            if !self.global_types.contains_key(&decl.name) {
                self.global_types.insert(decl.name.clone(), decl.ty);
                self.plan.placed.insert(decl.name.clone(), unit.compiled.globals.offset(g));
            }
        }
        // Past the unit's globals and its exit flag (see `layout::planned_globals_layout`).
        let program = &unit.compiled.program;
        let globals_end =
            program.globals.iter().map(|(g, d)| unit.compiled.globals.offset(g) + layout::global_size(program, d));
        let end = globals_end.chain([unit.compiled.globals.exited + 8]).max().unwrap_or(0);
        if end < self.plan.size {
            self.plan.next = self.plan.next.max(end);
        }
        let new_syscall_names = new_arrays.iter().any(|(a, _)| Some(*a) == unit.compiled.program.syscall_names);
        for (_, shared) in new_arrays {
            self.arrays.insert(shared.decl.name.clone(), shared);
        }
        let program = &unit.compiled.program;
        self.read.extend(program.globals.values().filter(|d| d.read).map(|d| d.name.clone()));
        self.read.extend(program.arrays.values().filter(|d| d.read).map(|d| d.name.clone()));
        self.reading_stdin |= program.handlers.iter().any(|h| matches!(h.target, Target::Stdin));
        let id = unit.id;
        self.next_unit += 1;
        self.units.push(unit);
        if new_syscall_names {
            self.fill_syscall_names(id);
        }
        if first {
            if let Some((name, _)) = self.options.set_globals.iter().find(|(n, _)| !self.global_types.contains_key(n)) {
                return Err(RuntimeError::SetGlobal {
                    name: name.clone(),
                    reason: "the script has no such global".into(),
                });
            }
        }
        self.run_user(Some(id), |t| matches!(t, Target::Begin { .. }), out)?;
        Ok(id)
    }

    /// Sets the globals of `unit` that the session does not have yet: their initial values,
    /// then `-G`.
    fn init_globals(&self, unit: &Unit) -> Result<(), RuntimeError> {
        let program = &unit.compiled.program;
        let store = |g, value| userspace::store_global(program, &unit.compiled.globals, &self.globals, g, &value);
        let fresh = program.globals.iter().filter(|(_, d)| !self.global_types.contains_key(&d.name));
        for (g, decl) in fresh {
            match &decl.init {
                Some(Const::Long(n)) => store(g, Value::Long(*n)),
                Some(Const::Str(s)) => store(g, Value::Str(s.clone())),
                None => {}
            }
            let Some((name, value)) = self.options.set_globals.iter().find(|(n, _)| n == &decl.name) else {
                continue;
            };
            match decl.ty {
                Ty::Long => {
                    let n = lang::number::parse(value).map_err(|_| RuntimeError::SetGlobal {
                        name: name.clone(),
                        reason: format!("`{value}` is not a number, and the global is a long"),
                    })?;
                    store(g, Value::Long(n));
                }
                Ty::Str => store(g, Value::Str(value.clone())),
            }
        }
        Ok(())
    }

    /// The tapsets name syscalls through an array ([`lang::ir::Program::syscall_names`]),
    /// filled here.
    fn fill_syscall_names(&self, id: UnitId) {
        let Some(unit) = self.unit(id) else { return };
        let arrays = unit.arrays();
        let Some(a) = unit.compiled.program.syscall_names else { return };
        for (nr, name) in unit.compiled.program.arch.syscalls() {
            let _ =
                arrays.set(a, &[crate::format::Value::Long(*nr as i64)], &crate::format::Value::Str(name.to_string()));
        }
    }

    fn unit(&self, id: UnitId) -> Option<&Unit> {
        self.units.iter().find(|u| u.id == id)
    }

    /// Runs the user-space handlers whose target matches, of one unit or of all, in
    /// priority order (then unit order).
    fn run_user(
        &mut self,
        unit: Option<UnitId>,
        which: impl Fn(&Target) -> bool,
        out: &mut ScriptOutput,
    ) -> Result<(), RuntimeError> {
        let mut handlers: Vec<(i64, usize, usize)> = Vec::new();
        for (u, unit_ref) in self.units.iter().enumerate() {
            if unit.is_some_and(|id| id != unit_ref.id) {
                continue;
            }
            for (i, h) in unit_ref.compiled.program.handlers.iter().enumerate() {
                if which(&h.target) {
                    let priority = match h.target {
                        Target::Begin { priority } | Target::End { priority } | Target::Error { priority } => priority,
                        _ => 0,
                    };
                    handlers.push((priority, u, i));
                }
            }
        }
        handlers.sort_by_key(|(priority, u, _)| (*priority, *u));
        for (_, u, i) in handlers {
            self.run_handler(u, i, out)?;
        }
        Ok(())
    }

    /// Runs handler `h` of `self.units[u]` in user space.
    fn run_handler(&mut self, u: usize, h: usize, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
        let unit = &self.units[u];
        let handler = &unit.compiled.program.handlers[h];
        let mut write_err = None;
        let mut sink = |event: &Event<'_>| {
            if let Err(e) = out.emit(event) {
                write_err.get_or_insert(e);
            }
        };
        let arrays = unit.arrays();
        let mut env = Env {
            program: &unit.compiled.program,
            arrays: &arrays,
            globals: &self.globals,
            layout: &unit.compiled.globals,
            probe: &handler.user_point,
            out: &mut sink,
            messages: &*self.options.messages,
            kernel_memory: &self.kernel_memory,
        };
        let effects = userspace::run(&mut env, &handler.func)
            .map_err(|source| RuntimeError::Handler { point: handler.point.clone(), source })?;
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
        for command in effects.commands {
            run_detached(&command, out);
        }
        Ok(())
    }

    /// Loads and attaches every kernel probe of every unit, then starts `-c CMD`: a
    /// script's attach, after which bpftap needs no capability.
    pub fn attach(&mut self) -> Result<(), RuntimeError> {
        if self.exit_requested {
            return Ok(());
        }
        let ids: Vec<UnitId> = self.units.iter().map(|u| u.id).collect();
        for id in ids {
            self.attach_unit(id)?;
        }
        // Attached: nothing from here on needs a capability (see sys::drop_capabilities),
        // except reading kernel symbols' real addresses, which an fd opened now keeps, and
        // the kernel memory reader of user-space handlers, loaded by `attach_unit`.
        sys::drop_capabilities().map_err(RuntimeError::DropCapabilities)?;
        self.ready();
        Ok(())
    }

    /// Everything is attached: `-T` and the timers count from now; writes the ready file
    /// and lets `-c CMD` run.
    pub fn ready(&mut self) {
        self.started = Instant::now();
        for unit in &mut self.units {
            unit.restart_timers();
        }
        if let Some(path) = &self.options.ready_file {
            let _ = std::fs::write(path, b"");
        }
        if let Some(child) = &mut self.child {
            child.release();
        }
    }

    /// Loads and attaches the kernel probes of one unit. A netfilter probe of a family
    /// the kernel refuses is skipped with a warning while another probe attaches.
    pub fn attach_unit(&mut self, id: UnitId) -> Result<(), RuntimeError> {
        let Some(u) = self.units.iter().position(|u| u.id == id) else { return Ok(()) };
        let unit = &self.units[u];
        // Attached again after `detach_unit`, its handlers run again.
        if !self.exit_requested {
            self.globals.store_long(unit.compiled.globals.exited, 0);
        }
        let mut refused = Vec::new();
        let mut attached = Vec::new();
        for probe in &unit.compiled.kernel_probes {
            let mut held = Vec::new();
            let result =
                loader::attach(&unit.compiled, &unit.maps, probe, self.kernel, self.options.force_kprobes, &mut held);
            let optional = unit.compiled.program.handlers[probe.handler].optional;
            match result {
                Err(e @ RuntimeError::FamilyRefused { .. }) => refused.push(e),
                Err(e @ (RuntimeError::Attach { .. } | RuntimeError::Load { .. })) if optional => refused.push(e),
                other => other?,
            }
            attached.push(held);
        }
        if !refused.is_empty() && refused.len() == unit.compiled.kernel_probes.len() {
            return Err(refused.swap_remove(0));
        }
        for e in refused {
            (self.options.messages)(&format!("WARNING: skipped: {e}\n"));
        }
        crate::symbols::open_kallsyms();
        if KernelMemory::needed_by(&unit.compiled.program) {
            self.kernel_memory.load();
        }
        self.units[u].attached = attached;
        self.units[u].restart_timers();
        Ok(())
    }

    /// Detaches the kernel probes of one unit, keeping its code and maps (`disable`).
    pub fn detach_unit(&mut self, id: UnitId) {
        let Some(unit) = self.units.iter_mut().find(|u| u.id == id) else { return };
        // Its flag first: from this store on, its handlers return at once, wherever they
        // run; then the fds close on a thread of their own (a perf event's close waits
        // for an RCU grace period, 50 ms or more), so the caller does not wait.
        self.globals.store_long(unit.compiled.globals.exited, 1);
        let fds: Vec<OwnedFd> = std::mem::take(&mut unit.attached).into_iter().flatten().collect();
        if !fds.is_empty() {
            let closer = std::thread::Builder::new().name("bpftap-detach".into());
            if let Err(e) = closer.spawn(move || detach(fds)) {
                (self.options.messages)(&format!("bpftap: warning: detaching in this thread: {e}\n"));
            }
        }
    }

    /// Removes a unit: detaches its probes and closes its maps; the globals and arrays it
    /// shares with the session keep their values. What its ring holds is printed first.
    pub fn remove(&mut self, id: UnitId, out: &mut ScriptOutput) -> Result<bool, RuntimeError> {
        let Some(u) = self.units.iter().position(|u| u.id == id) else { return Ok(false) };
        self.detach_unit(id);
        let result = self.drain_unit(u, out);
        self.units.remove(u);
        result.map(|()| true)
    }

    /// The units, in the order they were added.
    pub fn units(&self) -> Vec<UnitInfo> {
        let samples = self.probe_samples();
        self.units
            .iter()
            .map(|unit| {
                let stats = samples.iter().filter(|(id, _)| *id == unit.id).map(|(_, sample)| sample.stats);
                UnitInfo {
                    id: unit.id,
                    points: unit.compiled.program.handlers.iter().map(|h| h.point.clone()).collect(),
                    attached: !unit.attached.is_empty(),
                    runs: stats.clone().map(|s| s.run_cnt).sum(),
                    run_ns: stats.map(|s| s.run_time_ns).sum(),
                }
            })
            .collect()
    }

    /// Sets every global to its zero and empties every array (`clear`).
    pub fn clear_globals(&self) {
        let start = layout::GLOBALS_RESERVED as usize;
        let end = self.plan.next as usize;
        if end > start {
            self.globals.write_bytes(start as u32, &vec![0u8; end - start]);
        }
        for unit in &self.units {
            let arrays = unit.arrays();
            for (a, d) in unit.compiled.program.arrays.iter() {
                if !d.name.starts_with("__") {
                    arrays.clear(a);
                }
            }
        }
    }

    /// A script's run: the event loop until the script ends, then [`Session::finish`].
    /// An error while running (a full array, MAXACTION, a failing handler) stops the loop;
    /// then, as in SystemTap, the `error` probes run, then `end`, and the error is returned.
    pub fn run(&mut self, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
        let result = loop {
            match self.turn(out, None) {
                Ok(turn) if turn.stop.is_some() || sys::stop_signal().is_some() => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        self.finish(result, out)
    }

    /// The end of a session: stops the kernel handlers, prints what they sent, runs the
    /// `error` probes if `result` is an error, then `end`, then prints the globals no unit
    /// read. Returns `result`, or the first error of this.
    pub fn finish(&mut self, result: Result<(), RuntimeError>, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
        self.stop_kernel_handlers();
        let result = result.and_then(|()| self.drain(out));
        if result.is_err() {
            self.run_user(None, |t| matches!(t, Target::Error { .. }), out)?;
        }
        self.run_user(None, |t| matches!(t, Target::End { .. }), out)?;
        self.print_globals(out, true)?;
        out.flush().map_err(RuntimeError::Output)?;
        let lost = self.globals.load_long(GLOBAL_LOST);
        if lost > 0 {
            out.emit(&Event::Lost { records: lost }).and_then(|()| out.flush()).map_err(RuntimeError::Output)?;
        }
        result
    }

    /// Sets the exit flag: handlers compiled to check it return at once from now on, so the
    /// counts `end` sees are those made before `exit()` (see `GlobalsLayout::exited`).
    fn stop_kernel_handlers(&self) {
        for unit in &self.units {
            self.globals.store_long(unit.compiled.globals.exited, 1);
        }
    }

    /// One turn of the event loop: waits (at most 100 ms, less when a timer or `-T` is due)
    /// for output, stdin or `wake`, then prints the output of every unit, feeds stdin to
    /// the `input` probes, runs the timers due and answers `--metrics` scrapes.
    pub fn turn(&mut self, out: &mut ScriptOutput, wake: Option<BorrowedFd<'_>>) -> Result<Turn, RuntimeError> {
        let now = Instant::now();
        let mut wait = Duration::from_millis(100);
        for unit in &self.units {
            for (due, _, _) in &unit.timers {
                wait = wait.min(due.saturating_duration_since(now));
            }
        }
        if let Some(limit) = self.options.duration {
            if now >= self.started + limit {
                return Ok(Turn { stop: Some(Stop::Timeout), woken: false });
            }
            wait = wait.min(self.started + limit - now);
        }
        let stdin = std::io::stdin();
        let mut fds: Vec<BorrowedFd<'_>> = self.units.iter().map(|u| u.ring.as_fd()).collect();
        let rings = fds.len();
        fds.extend(wake);
        if self.reading_stdin {
            fds.push(stdin.as_fd());
        }
        let ready = sys::poll_readable(&fds, wait.as_millis() as i32);
        let woken = wake.is_some() && ready.get(rings) == Some(&true);
        let stdin_ready = self.reading_stdin && ready.last() == Some(&true);
        self.drain(out)?;
        if stdin_ready {
            self.read_stdin(stdin.as_fd(), out)?;
        }
        for u in 0..self.units.len() {
            for t in 0..self.units[u].timers.len() {
                let (due, every, h) = self.units[u].timers[t];
                if Instant::now() >= due && !self.exit_requested {
                    self.units[u].timers[t].0 = due + every;
                    self.run_handler(u, h, out)?;
                }
            }
        }
        self.answer_scrapes()?;
        out.flush().map_err(RuntimeError::Output)?;
        let stop = if self.exit_requested {
            Some(Stop::Exit)
        } else if out.reader_gone() {
            Some(Stop::ReaderGone)
        } else if self.target_gone() {
            Some(Stop::TargetGone)
        } else {
            None
        };
        Ok(Turn { stop, woken })
    }

    /// Runs the `__stdin` probes once for each byte `stdin` has now, the byte in the global
    /// `__stdin_char` (see `tapsets/input.stp`). The end of the input, or an error reading
    /// it, ends the reading and not the script, as in SystemTap.
    fn read_stdin(&mut self, stdin: BorrowedFd<'_>, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
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
        let Some(off) = self.plan.placed.get("__stdin_char").copied() else {
            return Ok(());
        };
        let probes: Vec<(usize, usize)> = self.handlers_where(|t| matches!(t, Target::Stdin));
        for &byte in &buf[..n] {
            if self.exit_requested {
                break;
            }
            // The raw byte, not text: a multi-byte character arrives a byte at a time.
            self.globals.write_bytes(off, &[byte, 0]);
            probes.iter().try_for_each(|&(u, h)| self.run_handler(u, h, out))?;
        }
        Ok(())
    }

    /// `(unit index, handler index)` of every handler whose target matches.
    fn handlers_where(&self, which: impl Fn(&Target) -> bool) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for (u, unit) in self.units.iter().enumerate() {
            for (h, handler) in unit.compiled.program.handlers.iter().enumerate() {
                if which(&handler.target) {
                    found.push((u, h));
                }
            }
        }
        found
    }

    /// Answers the `--metrics` GETs waiting: with what the page probes of the path print
    /// (`prometheus` for /metrics, `json_data` for /data.json); at /metrics, in a script
    /// without a `prometheus` probe, with the globals as they are now.
    fn answer_scrapes(&mut self) -> Result<(), RuntimeError> {
        let scrapes: Vec<Scrape> = self.metrics.as_ref().map(|m| m.pending().collect()).unwrap_or_default();
        for scrape in scrapes {
            let probes = self.handlers_where(|t| matches!(t, Target::Page { path } if *path == scrape.path()));
            if probes.is_empty() {
                let body = (scrape.path() == METRICS_PATH).then(|| {
                    let samples = self
                        .run_time_stats
                        .is_some()
                        .then(|| self.probe_samples().into_iter().map(|(_, sample)| sample).collect::<Vec<_>>());
                    // Each unit's globals; the probes' statistics once, with the first.
                    self.units
                        .iter()
                        .enumerate()
                        .map(|(i, u)| {
                            let samples = samples.as_deref().filter(|_| i == 0);
                            metrics::exposition(
                                &u.compiled.program,
                                &u.compiled.globals,
                                &self.globals,
                                &u.arrays(),
                                samples,
                            )
                        })
                        .collect::<String>()
                });
                scrape.answer(body);
                continue;
            }
            let body = metrics::Body::default();
            let mut out = ScriptOutput::to_writer(Box::new(body.clone()), self.options.messages.clone());
            // A failing handler stops the script, as in any other probe; the scraper gets
            // what was printed before the failure.
            let result = probes.iter().try_for_each(|&(u, h)| self.run_handler(u, h, &mut out));
            let _ = out.flush();
            scrape.answer(Some(body.text()));
            result?;
        }
        Ok(())
    }

    /// The kernel's statistics of every attached program, with its unit (one that cannot be
    /// read is left out rather than shown as 0).
    pub fn probe_samples(&self) -> Vec<(UnitId, metrics::ProbeSample<'_>)> {
        let mut samples = Vec::new();
        for unit in &self.units {
            for (probe, fds) in unit.compiled.kernel_probes.iter().zip(&unit.attached) {
                let Some(Ok(stats)) = fds.first().map(|prog| bpf::prog_stats(prog.as_fd())) else { continue };
                let handler = &unit.compiled.program.handlers[probe.handler];
                let (point, user_point) = (handler.point.as_str(), handler.user_point.as_str());
                samples.push((unit.id, metrics::ProbeSample { point, user_point, program: &probe.name, stats }));
            }
        }
        samples
    }

    /// Prints what every unit's kernel probes sent.
    fn drain(&mut self, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
        for u in 0..self.units.len() {
            self.drain_unit(u, out)?;
        }
        let full = self.globals.load_long(GLOBAL_ARRAY_FULL);
        if full > 0 {
            // The id is of the unit that stored it; every unit's arrays are in the session.
            let name = self
                .units
                .iter()
                .find_map(|u| u.compiled.program.arrays.get(ArrayId::from_u32(full as u32 - 1)))
                .map_or("?", |d| d.name.as_str());
            return Err(RuntimeError::ArrayFull(name.to_string()));
        }
        Ok(())
    }

    fn drain_unit(&mut self, u: usize, out: &mut ScriptOutput) -> Result<(), RuntimeError> {
        let unit = &mut self.units[u];
        let program = &unit.compiled.program;
        let (decoder, exit_requested) = (&unit.decoder, &mut self.exit_requested);
        let mut result = Ok(());
        unit.ring.drain(|record| {
            result = match decoder.decode(record) {
                Record::Print(printed) => out.emit(&decoder.event(&printed)).map_err(RuntimeError::Output),
                Record::Stderr(bytes) => {
                    out.message(&String::from_utf8_lossy(&bytes));
                    Ok(())
                }
                Record::Error(message) => {
                    Err(RuntimeError::Handler { point: "a kernel probe".into(), source: HandlerError::Script(message) })
                }
                Record::Command(command) => {
                    run_detached(&command, out);
                    Ok(())
                }
                Record::Exit => {
                    *exit_requested = true;
                    Ok(())
                }
                Record::MaxAction(h) => {
                    let point = program.handlers.get(h).map_or("?", |h| h.point.as_str());
                    Err(RuntimeError::MaxAction { point: point.to_string(), max: program.loop_budget })
                }
                Record::Malformed(why) => {
                    out.message(&format!("bpftap: internal error: malformed output record: {why}\n"));
                    Ok(())
                }
            };
            result.is_ok()
        });
        result
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

    /// Prints every global and array of the session, or (`unread_only`) those that no unit
    /// reads, which a script prints at its end, as SystemTap does.
    pub fn print_globals(&self, out: &mut ScriptOutput, unread_only: bool) -> Result<(), RuntimeError> {
        let mut printed = BTreeSet::new();
        for unit in &self.units {
            let program = &unit.compiled.program;
            for (g, decl) in program.globals.iter() {
                // Names starting with `__` are the tapsets' own.
                let skip = unread_only && self.read.contains(&decl.name);
                if skip || decl.name.starts_with("__") || !printed.insert(&decl.name) {
                    continue;
                }
                let value = userspace::load_global(program, &unit.compiled.globals, &self.globals, g);
                out.emit(&Event::Global { name: &decl.name, value: &value }).map_err(RuntimeError::Output)?;
            }
            let arrays = unit.arrays();
            for (a, decl) in program.arrays.iter() {
                let skip = unread_only && self.read.contains(&decl.name);
                if !skip && !decl.name.starts_with("__") && printed.insert(&decl.name) {
                    let entries = arrays.exit_entries(a);
                    let event = Event::Array { name: &decl.name, stat: arrays.stat_hist(a), entries: &entries };
                    out.emit(&event).map_err(RuntimeError::Output)?;
                }
            }
        }
        Ok(())
    }
}

impl Unit {
    /// The timers count from now.
    fn restart_timers(&mut self) {
        let now = Instant::now();
        for (due, every, _) in &mut self.timers {
            *due = now + *every;
        }
    }

    fn arrays(&self) -> Arrays<'_> {
        Arrays::new(&self.compiled.program, self.array_maps.clone())
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        detach(std::mem::take(&mut self.attached).into_iter().flatten().collect());
    }
}

/// `a[string, long] of long`, for messages.
fn describe_array(decl: &ArrayDecl) -> String {
    let keys: Vec<&str> = decl.keys.iter().map(|t| if *t == Ty::Long { "long" } else { "string" }).collect();
    let value = match decl.value {
        ValueKind::Long => "long",
        ValueKind::Str => "string",
        ValueKind::Stat => "statistics",
    };
    format!("[{}] of {value}", keys.join(", "))
}

/// Starts `sh -c command` with bpftap's stdout and stderr, as SystemTap's `system()` does,
/// and reaps it from a thread so the event loop does not wait. A command that cannot start
/// is reported and the script goes on.
fn run_detached(command: &str, out: &mut ScriptOutput) {
    // What the probe printed comes before what the command prints.
    let _ = out.flush();
    match std::process::Command::new("/bin/sh").arg("-c").arg(command).stdin(std::process::Stdio::null()).spawn() {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => out.message(&format!("WARNING: system(\"{command}\"): {e}\n")),
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            child.kill();
        }
        // Every unit's probes at once: one grace period in all (see `detach`).
        detach(self.units.iter_mut().flat_map(|u| std::mem::take(&mut u.attached)).flatten().collect());
    }
}

/// Closes the fds that keep the probes attached, given in the order they were attached.
/// Closing a perf event on a tracepoint, kprobe or uprobe waits for an RCU grace period in
/// the kernel (40–90 ms here), so one after the other a script of 8 probes took 0.6 s to
/// stop; closed from a thread each, the waits overlap (though the kernel still serializes
/// part of each). A BPF link (raw_tp, tp_btf, fentry, netfilter) or a program closes in
/// microseconds: those close here, as a thread would cost more than the close, and last
/// attached first. A tracepoint calls its first function directly; when the second to last
/// goes and the one left is not the one it called, the kernel waits a grace period
/// (`tracepoint_remove_func`'s 2->1 transition), which made 10 syscall probes, all on
/// raw_syscalls' `sys_enter`, take 30 ms to stop. The first attached, closed last, stays
/// the first function to the end.
fn detach(fds: Vec<OwnedFd>) {
    let (perf_events, others): (Vec<OwnedFd>, Vec<OwnedFd>) = fds.into_iter().partition(is_perf_event);
    others.into_iter().rev().for_each(drop);
    std::thread::scope(|scope| {
        for fd in perf_events {
            let closer = std::thread::Builder::new().stack_size(64 << 10);
            // Without a thread (the system refuses one), it is closed here when the
            // closure is dropped.
            let _ = closer.spawn_scoped(scope, move || drop(fd));
        }
    });
}

/// Whether `fd` is a perf event (what `/proc/self/fd` says of it).
fn is_perf_event(fd: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|p| p.as_os_str() == "anon_inode:[perf_event]")
}
