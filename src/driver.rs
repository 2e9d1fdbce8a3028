//! The compile pipeline as one function, in SystemTap's pass order: 1 parse, 2 elaborate
//! and type-check, 3 lower to IR, 4 generate BPF; pass 5 (run) is `runtime::session`.
//! `-p N` stops after pass N and prints its result; `-v` prints each pass with its time.

use std::fmt::Write as _;
use std::time::Instant;

use codegen_bpf::compile::CompiledScript;
use lang::diag::{self, Diagnostic};
use lang::elaborate::{self, Elaborated};
use lang::kernel::KernelInfo;
use lang::parse;
use lang::preprocess::{Macros, PreprocessEnv};
use lang::span::{FileId, SourceKind, SourceMap};
use lang::types::{self, TypeTable};
use lang::{ast, ir, lower, select};

/// The tapsets built into the binary.
// IMPORTANT: every file under tapsets/ must be listed here.
pub const TAPSETS: &[(&str, &str)] = &[
    ("context.stp", include_str!("../tapsets/context.stp")),
    ("netfilter.stp", include_str!("../tapsets/netfilter.stp")),
    ("syscalls.stp", include_str!("../tapsets/syscalls.stp")),
    ("tcp_udp.stp", include_str!("../tapsets/tcp_udp.stp")),
    ("signal.stp", include_str!("../tapsets/signal.stp")),
    ("process.stp", include_str!("../tapsets/process.stp")),
    ("scheduler.stp", include_str!("../tapsets/scheduler.stp")),
    ("vfs.stp", include_str!("../tapsets/vfs.stp")),
    ("inet.stp", include_str!("../tapsets/inet.stp")),
    ("macros.stp", include_str!("../tapsets/macros.stp")),
    ("irq.stp", include_str!("../tapsets/irq.stp")),
    ("ioblock.stp", include_str!("../tapsets/ioblock.stp")),
    ("vm.stp", include_str!("../tapsets/vm.stp")),
    ("netdev.stp", include_str!("../tapsets/netdev.stp")),
    ("queue_stats.stp", include_str!("../tapsets/queue_stats.stp")),
    ("oneshot.stp", include_str!("../tapsets/oneshot.stp")),
    ("ansi.stp", include_str!("../tapsets/ansi.stp")),
    ("stopwatch.stp", include_str!("../tapsets/stopwatch.stp")),
    ("indent.stp", include_str!("../tapsets/indent.stp")),
    ("task.stp", include_str!("../tapsets/task.stp")),
    ("sizeof.stp", include_str!("../tapsets/sizeof.stp")),
    ("proc_mem.stp", include_str!("../tapsets/proc_mem.stp")),
    ("prometheus.stp", include_str!("../tapsets/prometheus.stp")),
    ("argv.stp", include_str!("../tapsets/argv.stp")),
    ("argv_array.stp", include_str!("../tapsets/argv_array.stp")),
    ("target_set.stp", include_str!("../tapsets/target_set.stp")),
    ("timestamp.stp", include_str!("../tapsets/timestamp.stp")),
    ("ctime.stp", include_str!("../tapsets/ctime.stp")),
    ("input.stp", include_str!("../tapsets/input.stp")),
    ("tzinfo.stp", include_str!("../tapsets/tzinfo.stp")),
    ("json.stp", include_str!("../tapsets/json.stp")),
    ("nfsd.stp", include_str!("../tapsets/nfsd.stp")),
    ("tcpmib.stp", include_str!("../tapsets/tcpmib.stp")),
    ("ipmib.stp", include_str!("../tapsets/ipmib.stp")),
    ("linuxmib.stp", include_str!("../tapsets/linuxmib.stp")),
];

/// The table the `syscall.NAME` aliases with SystemTap's variables are written from.
const SYSCALL_TABLE: &str = include_str!("../tapsets/syscalls.table");
/// The name the aliases written from [`SYSCALL_TABLE`] go by in diagnostics.
const SYSCALL_TABLE_TAPSET: &str = "syscalls.table.stp";

#[derive(Clone)]
pub struct Options {
    pub script_args: Vec<String>,
    pub string_capacity: u32,
    /// SystemTap's MAXMAPENTRIES.
    pub max_map_entries: u32,
    /// SystemTap's MAXACTION_INTERRUPTIBLE.
    pub max_action_interruptible: u32,
    pub verbose: u8,
    /// Types known before inference: globals given values on the command line (`-G`), and
    /// in an interactive session every global it has.
    pub known: types::Known,
    /// An interactive session's declarations (globals and functions typed so far), parsed
    /// as a file of their own before the script.
    pub session: Option<String>,
    /// Where the globals go (see `GlobalsPlan`): the default for a script.
    pub globals_plan: codegen_bpf::layout::GlobalsPlan,
    /// Extra tapset directories (`-I`).
    pub include: Vec<std::path::PathBuf>,
}

/// Everything a compile produced, up to the pass it stopped at.
pub struct Compiled {
    pub sources: SourceMap,
    pub script: Option<ast::Script>,
    pub elaborated: Option<(Elaborated, TypeTable)>,
    pub ir: Option<ir::Program>,
    pub object: Option<CompiledScript>,
    /// Warnings about the script (from pass 2 on), for the caller to show or not (`-w`).
    pub warnings: Vec<Diagnostic>,
}

/// Why compiling stopped: diagnostics to render.
pub struct Failure {
    pub sources: SourceMap,
    pub diags: Vec<Diagnostic>,
}

pub fn compile(
    script_name: &str,
    script_text: &str,
    kind: SourceKind,
    last_pass: u8,
    kernel: &dyn KernelInfo,
    options: &Options,
) -> Result<Compiled, Failure> {
    let mut sources = SourceMap::default();
    let file = sources.add(script_name, script_text, kind);
    let env = PreprocessEnv::for_kernel(kernel, options.script_args.clone());
    let mut out = Compiled {
        sources: SourceMap::default(),
        script: None,
        elaborated: None,
        ir: None,
        object: None,
        warnings: Vec::new(),
    };
    let mut timer = PassTimer::new(options.verbose);

    // Pass 1: record the tapsets' macros (visible to the script), parse the script, then only
    // the tapset items it needs (see `lang::select`), preparing a tapset file once something
    // in it may be needed.
    let mut macros = Macros::default();
    let mut diags = Vec::new();
    let mut tapset_files = Vec::new();
    let mut tapsets: Vec<select::Tapset> = tapset_texts(&options.include)
        .into_iter()
        .map(|t| {
            let summary = select::Summary::of(&t.text);
            let f = sources.add(t.name, t.text, SourceKind::Tapset);
            tapset_files.push(f);
            let mut items = None;
            if t.included {
                let (prepared, d) = parse::prepare(&sources, f, &env, &mut macros);
                diags.extend(d);
                items = Some(prepared);
            } else if summary.defines_macros {
                diags.extend(parse::define_macros(&sources, f, &env, &mut macros));
            }
            select::Tapset { items, summary, whole: t.included }
        })
        .collect();
    // Prepared later, they see the tapsets' macros, not the script's.
    let mut tapset_macros = macros.clone();
    let mut script = ast::Script::default();
    let mut session_items = None;
    if let Some(text) = &options.session {
        let f = sources.add("<session>", text, SourceKind::Script);
        let (items, d) = parse::prepare(&sources, f, &env, &mut macros);
        diags.extend(d);
        for i in 0..items.len() {
            script.items.extend(items.parse(i, &env, &mut diags));
        }
        session_items = Some(items);
    }
    let (script_items, d) = parse::prepare(&sources, file, &env, &mut macros);
    diags.extend(d);
    for i in 0..script_items.len() {
        script.items.extend(script_items.parse(i, &env, &mut diags));
    }
    let every_items: Vec<&parse::Items> = session_items.iter().chain([&script_items]).collect();
    let mut prepare_tapset = |f: usize| parse::prepare(&sources, tapset_files[f], &env, &mut tapset_macros);
    let (selected, d) = select::select(&script, &every_items, &mut tapsets, &env, &mut prepare_tapset);
    diags.extend(d);
    timer.done("parse");
    if diag::has_errors(&diags) {
        return Err(Failure { sources, diags });
    }
    if last_pass == 1 {
        out.script = Some(script);
        out.sources = sources;
        return Ok(out);
    }

    // Pass 2: elaborate and type-check. What fails with the selected tapsets is elaborated
    // again with all of them, so that messages (did-you-mean) see every tapset name.
    let (elaborated, table) = match elaborate_and_check(&script, &selected, file, kernel, options) {
        Ok(done) => done,
        Err(_) => {
            let (every, _) = select::all(&mut tapsets, &env, &mut prepare_tapset);
            elaborate_and_check(&script, &every, file, kernel, options)
                .map_err(|diags| Failure { sources: sources.clone(), diags })?
        }
    };
    // Only the script's own places: not the tapsets', nor an interactive session's earlier
    // inputs.
    out.warnings =
        lang::lint::unused_variables(&elaborated, |name, span| span.file == file && sources.snippet(span) == name);
    timer.done("elaborate");
    if last_pass == 2 {
        out.elaborated = Some((elaborated, table));
        out.sources = sources;
        return Ok(out);
    }

    // Pass 3: lower to IR.
    let lower_options = lower::Options {
        string_capacity: options.string_capacity,
        script_args: options.script_args.clone(),
        max_map_entries: options.max_map_entries,
        max_action_interruptible: options.max_action_interruptible,
        stable_layouts: options.session.is_some(),
    };
    let (program, diags) = lower::lower(&elaborated, &table, kernel, &lower_options);
    if diag::has_errors(&diags) {
        return Err(Failure { sources, diags });
    }
    let problems = ir::verify(&program);
    if let Some(p) = problems.first() {
        let span = program.handlers[p.handler].span;
        let d = Diagnostic::error("E0900", format!("internal error: invalid IR: {}", p.message), span)
            .with_help("this is a bug in bpftap; please report it with the script");
        return Err(Failure { sources, diags: vec![d] });
    }
    timer.done("lower");
    if last_pass == 3 {
        out.ir = Some(program);
        out.sources = sources;
        return Ok(out);
    }

    // Pass 4: generate BPF.
    let compiled = codegen_bpf::compile::compile_in(program, &options.globals_plan).map_err(|e| {
        let span = match &e {
            codegen_bpf::emit::EmitError::Unsupported { span, .. }
            | codegen_bpf::emit::EmitError::StackFull { span, .. }
            | codegen_bpf::emit::EmitError::GlobalsFull { span, .. }
            | codegen_bpf::emit::EmitError::JumpTooFar { span } => *span,
        };
        Failure { diags: vec![Diagnostic::error("E0400", e.to_string(), span)], sources: sources.clone() }
    })?;
    timer.done("codegen");
    out.object = Some(compiled);
    out.sources = sources;
    Ok(out)
}

/// Pass 2 on a script and the tapsets given: the elaborated script and its types, or the
/// diagnostics of the first step that failed.
fn elaborate_and_check(
    script: &ast::Script,
    tapsets: &[ast::Script],
    file: FileId,
    kernel: &dyn KernelInfo,
    options: &Options,
) -> Result<(Elaborated, TypeTable), Vec<Diagnostic>> {
    let input = elaborate::Input { script, tapsets };
    let (elaborated, mut diags) = elaborate::elaborate(&input, kernel);
    if elaborated.probes.is_empty() && diags.is_empty() {
        let span = lang::span::Span::new(file, 0, 0);
        diags.push(
            Diagnostic::error("E0100", "the script has no probes", span)
                .with_help("add `probe begin { ... }` or another probe"),
        );
    }
    if diag::has_errors(&diags) {
        return Err(diags);
    }
    let (table, diags) = types::check(&elaborated, &options.known);
    if diag::has_errors(&diags) {
        return Err(diags);
    }
    Ok((elaborated, table))
}

/// The built-in tapsets and the syscall aliases written from the table, then the `.stp`
/// files of each `-I` directory, sorted.
/// A tapset's source.
pub struct TapsetText {
    pub name: String,
    pub text: String,
    /// From a directory given with `-I`, not built in.
    pub included: bool,
}

/// The built-in tapsets, each alias of the syscall table as a file of its own (a script uses
/// few: see `lang::select`), then the `.stp` files of the `-I` directories.
pub fn tapset_texts(include: &[std::path::PathBuf]) -> Vec<TapsetText> {
    let builtin = |name: &str, text: String| TapsetText { name: name.to_string(), text, included: false };
    let mut out: Vec<TapsetText> = TAPSETS.iter().map(|(n, t)| builtin(n, t.to_string())).collect();
    // The table is part of the binary and a unit test parses it: an error here is a bug.
    let entries = lang::syscall_aliases::parse_table(SYSCALL_TABLE).expect("tapsets/syscalls.table is well-formed");
    out.extend(entries.chunks(1).map(|e| builtin(SYSCALL_TABLE_TAPSET, lang::syscall_aliases::tapset_source(e))));
    for dir in include {
        let mut entries: Vec<_> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "stp")) {
            if let Ok(text) = std::fs::read_to_string(&path) {
                out.push(TapsetText { name: path.display().to_string(), text, included: true });
            }
        }
    }
    out
}

/// `-p2` output: each resolved probe with its locals' types, then the globals.
pub fn describe_elaborated(elaborated: &Elaborated, table: &TypeTable) -> String {
    let mut out = String::new();
    for (name, (ty, _)) in &table.globals {
        let _ = writeln!(out, "global {name}:{ty}");
    }
    for (i, p) in elaborated.probes.iter().enumerate() {
        let _ = writeln!(out, "probe {} /* {} */", p.point, p.user_point);
        if let Some(locals) = table.locals.get(&types::Scope::Probe(i)) {
            for (name, (ty, _)) in locals {
                let _ = writeln!(out, "  {name}:{ty}");
            }
        }
    }
    out
}

struct PassTimer {
    verbose: u8,
    pass: u8,
    start: Instant,
}

impl PassTimer {
    fn new(verbose: u8) -> PassTimer {
        PassTimer { verbose, pass: 0, start: Instant::now() }
    }

    fn done(&mut self, what: &str) {
        self.pass += 1;
        if self.verbose > 0 {
            let ms = self.start.elapsed().as_secs_f64() * 1000.0;
            eprintln!("Pass {}: {what} in {ms:.1}ms (rss {} KiB)", self.pass, peak_rss_kib());
        }
        self.start = Instant::now();
    }
}

/// The process's peak resident set size, from /proc/self/status.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}
