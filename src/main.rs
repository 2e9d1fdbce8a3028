//! `bpftap`: SystemTap scripts compiled straight to BPF. This file is the command line only:
//! it parses options, calls the driver and the runtime, and renders errors.

use bpftap::driver;
mod list;
mod repl;
mod stap_options;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lang::kernel::KernelInfo;
use lang::span::SourceKind;
use runtime::event::{Event, Location};
use runtime::kernel_info::LiveKernel;
use runtime::output::{OutputFormat, ScriptOutput};
use runtime::session::{RunOptions, RuntimeError, Session};

#[derive(Parser, Debug)]
#[command(
    name = "bpftap",
    version,
    about = "Run SystemTap scripts as BPF programs: no compiler, no kernel module, no debuginfo",
    after_help = "Examples:\n  bpftap -e 'probe syscall.connect /dport == 23/ { printf(\"%s %d\\n\", execname(), pid()) }'\n  bpftap script.stp ARG1 ARG2\n  bpftap -p4 -e 'probe syscall.getppid { println(pid()) }'"
)]
struct Cli {
    /// The script text (instead of a script file).
    #[arg(short = 'e', value_name = "SCRIPT")]
    script: Option<String>,
    /// An interactive session: probes typed at a prompt attach at once and print live
    /// (also what `bpftap` with no script starts). Type `help` there.
    #[arg(short = 'i', conflicts_with_all = ["script", "pass", "emit_elf"])]
    interactive: bool,
    /// Stop after pass N (1 parse, 2 elaborate, 3 IR, 4 BPF) and print its result.
    #[arg(short = 'p', value_name = "N", value_parser = clap::value_parser!(u8).range(1..=5))]
    pass: Option<u8>,
    /// Print each pass with its time (repeat for more).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,
    /// Write the script's output to FILE.
    #[arg(short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Run CMD once the probes are attached; target() is its pid; stop when it exits.
    #[arg(short = 'c', value_name = "CMD")]
    command: Option<String>,
    /// Run the -c command as root even under sudo (by default it runs as the user who ran
    /// sudo, SUDO_UID and SUDO_GID, as SystemTap does).
    #[arg(long = "cmd-as-root", requires = "command")]
    cmd_as_root: bool,
    /// Set target() to PID and stop when that process exits.
    #[arg(short = 'x', value_name = "PID")]
    target_pid: Option<i32>,
    /// Stop after SECONDS.
    #[arg(short = 'T', value_name = "SECONDS", value_parser = parse_seconds, allow_hyphen_values = true)]
    timeout: Option<Duration>,
    /// Set a global before `begin` runs (repeatable).
    #[arg(short = 'G', value_name = "NAME=VALUE")]
    globals: Vec<String>,
    /// Set a limit: MAXSTRINGLEN=N, MAXMAPENTRIES=N or MAXACTION_INTERRUPTIBLE=N.
    #[arg(short = 'D', value_name = "NAME=VALUE")]
    defines: Vec<String>,
    /// Attach kernel.function probes as kprobes even where fentry/fexit work (also set by
    /// the environment variable BPFTAP_FORCE_KPROBES=1).
    #[arg(long = "kprobes")]
    force_kprobes: bool,
    /// Compile only, and write the BPF programs and maps as an ELF object to FILE (as
    /// bpftrace's --emit-elf; netfilter probes are left out: ELF loaders do not know them).
    #[arg(long = "emit-elf", value_name = "FILE")]
    emit_elf: Option<PathBuf>,
    /// Write the compiled script to NAME.bo (NAME itself if it ends in .bo), an object that
    /// `bpftap run NAME.bo [GLOBAL=VALUE ...]` runs without compiling; with -p4, only that.
    #[arg(short = 'm', value_name = "NAME", conflicts_with = "emit_elf")]
    module: Option<String>,
    /// Use an output buffer of NUM megabytes (rounded up to a power of two) between the
    /// kernel and bpftap, for scripts that print in bursts.
    #[arg(short = 's', value_name = "NUM", value_parser = clap::value_parser!(u32).range(1..=1024))]
    buffer_mb: Option<u32>,
    /// Write the script's output as `text` (SystemTap's) or `json` (one JSON object a line,
    /// described by docs/output.schema.json).
    #[arg(short = 'f', long = "format", value_name = "FORMAT", value_parser = ["text", "json"], default_value = "text")]
    format: String,
    /// While the script runs, serve GET /metrics at ADDR (HOST:PORT, or PORT for
    /// 127.0.0.1) in Prometheus's text format: what the script's `probe prometheus` prints,
    /// or, without one, its globals read at scrape time, lost records, and each probe's runs
    /// and run time as the kernel counts them; and GET /data.json and
    /// /metadata.json for a script with `probe json_data`.
    #[arg(long = "metrics", value_name = "ADDR")]
    metrics: Option<String>,
    /// Add a tapset directory.
    #[arg(short = 'I', value_name = "DIR")]
    include: Vec<PathBuf>,
    /// List the probe points matching PROBE (wildcards allowed), one a line.
    #[arg(short = 'l', value_name = "PROBE", conflicts_with_all = ["list_vars", "script"])]
    list: Option<String>,
    /// Like -l, with each point's variables and their types.
    #[arg(short = 'L', value_name = "PROBE", conflicts_with = "script")]
    list_vars: Option<String>,
    /// Print bpftap's man page (`man`) or completions for a shell (`bash`, `zsh`, `fish`),
    /// made from these options; the install puts them where Debian looks.
    #[arg(long = "generate", value_name = "KIND", value_parser = ["man", "bash", "zsh", "fish"], exclusive = true)]
    generate: Option<String>,
    /// The script file, then its arguments ($1, @1, ...); or `run NAME.bo` (or NAME.bo
    /// alone), then GLOBAL=VALUE settings of its globals.
    #[arg(value_name = "SCRIPT_FILE")]
    args: Vec<String>,
    #[command(flatten)]
    stap: stap_options::StapOptions,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("bpftap: {message}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    if let Some(kind) = &cli.generate {
        generate(kind).map_err(|e| format!("cannot write the {kind} text: {e}"))?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(pattern) = cli.list.as_ref().or(cli.list_vars.as_ref()) {
        let missing = runtime::sys::missing_capabilities(false);
        if !missing.is_empty() {
            return Err(format!(
                "listing probe points reads tracefs, which needs root or {}: run bpftap with sudo",
                missing.join(", ")
            ));
        }
        let listing = list::list(pattern, cli.list_vars.is_some(), &cli.include, &LiveKernel::new())?;
        let _ = std::io::stdout().lock().write_all(listing.as_bytes());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some((path, globals)) = object_to_run(&cli)? {
        return run_object(&cli, &path, globals);
    }
    let interactive = cli.interactive
        || (cli.script.is_none()
            && cli.args.is_empty()
            && cli.pass.is_none()
            && cli.emit_elf.is_none()
            && cli.module.is_none());
    let (name, text, kind, script_args) = match (&cli.script, cli.args.split_first()) {
        _ if interactive => ("<input>".to_string(), String::new(), SourceKind::CommandLine, cli.args.clone()),
        (Some(text), _) => ("<command line>".to_string(), text.clone(), SourceKind::CommandLine, cli.args.clone()),
        (None, Some((file, rest))) => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
            (file.clone(), text, SourceKind::Script, rest.to_vec())
        }
        (None, None) => return Err("no script: give -e 'SCRIPT' or a script file (see --help)".into()),
    };
    let kernel = LiveKernel::new();
    let checked = cli.stap.check(&kernel.release(), &kernel.arch())?;
    for w in &checked.warnings {
        eprintln!("bpftap: warning: {w}");
    }
    // -E SCRIPT: more script text, compiled as if it followed the script.
    let text = cli.stap.extra_scripts.iter().fold(text, |all, extra| all + "\n" + extra);
    let Limits { string_capacity, max_map_entries, max_action_interruptible } = limits(&cli.defines)?;
    let last_pass = match cli.emit_elf {
        Some(_) => 4,
        None => cli.pass.unwrap_or(5),
    };
    if cli.module.is_some() && last_pass < 4 {
        return Err(format!("-m writes the compiled object, which pass {last_pass} does not reach: use -p4"));
    }
    let missing = runtime::sys::missing_capabilities(false);
    if last_pass >= 2 && !missing.is_empty() {
        return Err(format!(
            "resolving probes and loading BPF programs needs root or {}: run bpftap with sudo",
            missing.join(", ")
        ));
    }
    let set_globals = cli.globals.iter().map(|g| parse_global(g, "-G ")).collect::<Result<Vec<_>, _>>()?;
    // A -G global's type is what its value looks like, as SystemTap infers it.
    let known_globals = set_globals
        .iter()
        .map(|(n, v)| (n.clone(), if lang::number::parse(v).is_ok() { lang::ir::Ty::Long } else { lang::ir::Ty::Str }))
        .collect();
    let options = driver::Options {
        known: lang::types::Known { globals: known_globals, arrays: Vec::new() },
        session: None,
        globals_plan: Default::default(),
        script_args,
        string_capacity,
        max_map_entries,
        max_action_interruptible,
        verbose: cli.verbose,
        include: cli.include.clone(),
    };
    if interactive {
        runtime::sys::catch_stop_signals();
        let config = repl::Config {
            options,
            run: run_options(&cli, set_globals),
            output: cli.output.clone(),
            format: output_format(&cli),
        };
        return repl::run(config, &kernel);
    }
    // An object keeps what it asked of this kernel, to check it on the one it runs on.
    let recorder = codegen_bpf::kernel_facts::Recorder::new(&kernel);
    let compiling: &dyn KernelInfo = if cli.module.is_some() { &recorder } else { &kernel };
    let mut compiled = match driver::compile(&name, &text, kind, last_pass.min(4), compiling, &options) {
        Ok(c) => c,
        Err(failure) => {
            let color = std::io::stderr().is_terminal();
            eprint!("{}", lang::diag::render(&failure.diags, &failure.sources, color));
            if cli.format == "json" && last_pass == 5 {
                let mut out = script_output(&cli)?;
                for d in failure.diags.iter().filter(|d| d.severity == lang::diag::Severity::Error) {
                    let message = format!("{}: {}", d.code, d.message);
                    let location = Some(location(&failure.sources, d.span));
                    let _ = out.emit(&Event::Error { message: &message, probe: None, location });
                }
                let _ = out.flush();
            }
            return Ok(ExitCode::from(1));
        }
    };
    if !compiled.warnings.is_empty() && !cli.stap.no_warnings {
        let color = std::io::stderr().is_terminal();
        eprint!("{}", lang::diag::render(&compiled.warnings, &compiled.sources, color));
        if cli.stap.warnings_are_errors {
            return Ok(ExitCode::from(1));
        }
    }
    if let Some(name) = &cli.module {
        let path = if name.ends_with(".bo") { name.clone() } else { format!("{name}.bo") };
        let object = compiled.object.as_ref().expect("pass 4 ran");
        let bytes = codegen_bpf::bo::write(object, &compiled.sources, env!("CARGO_PKG_VERSION"), &recorder);
        std::fs::write(&path, bytes).map_err(|e| format!("cannot write {path}: {e}"))?;
        if last_pass == 4 {
            // As stap -p4 prints the module it built.
            println!("{path}");
            return Ok(ExitCode::SUCCESS);
        }
    }
    if let Some(path) = &cli.emit_elf {
        let object = compiled.object.as_ref().expect("pass 4 ran");
        let bytes = codegen_bpf::object::write_object(&object.object);
        std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if last_pass < 5 {
        let _ = std::io::stdout().lock().write_all(pass_listing(&compiled, last_pass).as_bytes());
        return Ok(ExitCode::SUCCESS);
    }
    let object = compiled.object.take().expect("pass 4 ran");
    let code = run_compiled(&cli, object, &compiled.sources, &kernel, set_globals);
    // The process ends now: freeing what the compile built would only cost time (after a
    // large exit-time print, glibc then consolidates a heap of freed entries: a tenth of it).
    std::mem::forget(compiled);
    code
}

/// What `-p N` prints: the script back from its AST, the resolved probes and types, the IR,
/// or the BPF listing.
fn pass_listing(compiled: &driver::Compiled, last_pass: u8) -> String {
    let kept = "the driver keeps the last pass's result";
    match last_pass {
        1 => lang::pretty::script(compiled.script.as_ref().expect(kept), &compiled.sources),
        2 => {
            let (elaborated, types) = compiled.elaborated.as_ref().expect(kept);
            driver::describe_elaborated(elaborated, types)
        }
        3 => compiled.ir.as_ref().expect(kept).to_string(),
        _ => compiled.object.as_ref().expect(kept).listing(&compiled.sources),
    }
}

/// Pass 5: loads, attaches and runs a compiled script, from source or from a `.bo`.
fn run_compiled(
    cli: &Cli,
    object: codegen_bpf::compile::CompiledScript,
    sources: &lang::span::SourceMap,
    kernel: &LiveKernel,
    set_globals: Vec<(String, String)>,
) -> Result<ExitCode, String> {
    let netfilter = object
        .kernel_probes
        .iter()
        .any(|p| matches!(p.target.kernel_program().map(|k| k.attach), Some(lang::family::Attach::Netfilter { .. })));
    let missing = runtime::sys::missing_capabilities(netfilter);
    if !missing.is_empty() {
        return Err(format!("netfilter probes need root or {}: run bpftap with sudo", missing.join(", ")));
    }
    runtime::sys::catch_stop_signals();
    let mut out = script_output(cli)?;
    // For the error record: the session takes the program.
    let probe_spans: Vec<(String, lang::span::Span)> =
        object.program.handlers.iter().map(|h| (h.point.clone(), h.span)).collect();
    let verbose = cli.verbose > 0;
    let timing = cli.stap.timing;
    let started = std::time::Instant::now();
    let result = Session::load(object, kernel, run_options(cli, set_globals), &mut out).and_then(|mut session| {
        let loaded = started.elapsed();
        if timing {
            // Before attach, which drops the capability (CAP_SYS_ADMIN) this needs.
            if let Err(e) = session.count_runs() {
                eprintln!("bpftap: warning: -t: the kernel refuses to count probe runs ({e})");
            }
        }
        session.attach()?;
        if verbose {
            let attached = started.elapsed() - loaded;
            eprintln!(
                "Pass 5: loaded in {:.1}ms, attached in {:.1}ms (rss {} KiB)",
                loaded.as_secs_f64() * 1000.0,
                attached.as_secs_f64() * 1000.0,
                driver::peak_rss_kib()
            );
        }
        let result = session.run(&mut out);
        if timing {
            eprint!("{}", probe_hit_report(&session));
        }
        result
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_runtime_error(&e, sources);
            let _ = out.emit(&error_event(&e, &e.to_string(), &probe_spans, sources));
            ExitCode::from(1)
        }
    };
    let _ = out.flush();
    Ok(code)
}

/// `-t`: each kernel probe's hits and run time, as the kernel counted them, in the spirit of
/// SystemTap's probe hit report (which counts cycles; the kernel counts nanoseconds).
fn probe_hit_report(session: &Session) -> String {
    let mut report = String::from("----- probe hit report:\n");
    for (_, sample) in session.probe_samples() {
        let (hits, ns) = (sample.stats.run_cnt, sample.stats.run_time_ns);
        let avg = if hits == 0 { 0 } else { ns / hits };
        report.push_str(&format!(
            "{} ({}), hits: {hits}, run time: {ns} ns total, {avg} ns avg\n",
            sample.user_point, sample.point
        ));
    }
    report
}

/// SystemTap's limits that `-D NAME=N` sets.
struct Limits {
    string_capacity: u32,
    max_map_entries: u32,
    max_action_interruptible: u32,
}

/// `-D MAXSTRINGLEN=N`, `-D MAXMAPENTRIES=N` and `-D MAXACTION_INTERRUPTIBLE=N`.
fn limits(defines: &[String]) -> Result<Limits, String> {
    let mut limits = Limits {
        string_capacity: 128,
        max_map_entries: 2048,
        max_action_interruptible: lang::lower::MAX_ACTION_INTERRUPTIBLE,
    };
    for d in defines {
        let (name, value) = d.split_once('=').unwrap_or((d, ""));
        let (slot, range) = match name {
            "MAXMAPENTRIES" => (&mut limits.max_map_entries, 1..=1 << 24),
            "MAXSTRINGLEN" => (&mut limits.string_capacity, 16..=2048),
            "MAXACTION_INTERRUPTIBLE" => (&mut limits.max_action_interruptible, 1..=100_000_000),
            _ => {
                return Err(format!(
                    "-D {d}: unknown setting (bpftap knows MAXSTRINGLEN, MAXMAPENTRIES and MAXACTION_INTERRUPTIBLE)"
                ))
            }
        };
        *slot = value
            .parse::<u32>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| format!("-D {name}={value}: give a number from {} to {}", range.start(), range.end()))?;
    }
    Ok(limits)
}

/// How to run a script, from the command line.
fn run_options(cli: &Cli, set_globals: Vec<(String, String)>) -> RunOptions {
    RunOptions {
        target_pid: cli.target_pid,
        command: cli.command.clone(),
        command_user: if cli.cmd_as_root { None } else { runtime::sys::Credentials::sudo_invoker() },
        duration: cli.timeout,
        set_globals,
        ready_file: std::env::var_os("BPFTAP_READY_FILE").map(PathBuf::from),
        buffer_bytes: cli.buffer_mb.map_or(0, |mb| mb.next_power_of_two() << 20),
        force_kprobes: cli.force_kprobes || std::env::var_os("BPFTAP_FORCE_KPROBES").is_some_and(|v| v == "1"),
        metrics: cli.metrics.clone(),
        messages: stderr_messages(),
    }
}

/// Where the script's output goes (`-o`), in the format `-f` asks for.
/// Messages for the user (warnings, lost records) go to stderr, beside the diagnostics.
fn stderr_messages() -> runtime::output::Messages {
    std::sync::Arc::new(|message: &str| eprint!("{message}"))
}

fn script_output(cli: &Cli) -> Result<ScriptOutput, String> {
    let format = output_format(cli);
    let messages = stderr_messages();
    match &cli.output {
        Some(path) => ScriptOutput::file(path.clone(), format, messages)
            .map_err(|e| format!("cannot create {}: {e}", path.display())),
        None => ScriptOutput::stdout(format, messages).map_err(|e| format!("cannot write the output: {e}")),
    }
}

fn output_format(cli: &Cli) -> OutputFormat {
    if cli.format == "json" {
        OutputFormat::Json
    } else {
        OutputFormat::Text
    }
}

fn location(sources: &lang::span::SourceMap, span: lang::span::Span) -> Location<'_> {
    let (line, column) = sources.line_col(span);
    Location { file: &sources.file(span.file).name, line, column }
}

/// The output's record of the error that stopped the script: at the code the verifier
/// refused, or else at the probe the error happened in.
fn error_event<'a>(
    e: &'a RuntimeError,
    message: &'a str,
    probe_spans: &[(String, lang::span::Span)],
    sources: &'a lang::span::SourceMap,
) -> Event<'a> {
    let span = match e {
        RuntimeError::Verifier { span: Some(span), .. } => Some(*span),
        _ => e.probe().and_then(|point| probe_spans.iter().find(|(p, _)| p == point)).map(|(_, span)| *span),
    };
    Event::Error { message, probe: e.probe(), location: span.map(|span| location(sources, span)) }
}

/// The object `bpftap run NAME.bo ...` or `bpftap NAME.bo ...` names (`.bo` files are told
/// by their first bytes), with the arguments after it; `None` for a script.
fn object_to_run(cli: &Cli) -> Result<Option<(String, &[String])>, String> {
    match cli.args.split_first() {
        _ if cli.script.is_some() => Ok(None),
        Some((first, rest)) if first == "run" => match rest.split_first() {
            Some((path, globals)) => Ok(Some((path.clone(), globals))),
            None => Err("run: give the object to run, as in `bpftap run NAME.bo GLOBAL=VALUE`".into()),
        },
        Some((path, globals)) => {
            let mut head = [0u8; 20];
            let is_object = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                .is_ok_and(|()| codegen_bpf::bo::looks_like_bo(&head));
            Ok(is_object.then(|| (path.clone(), globals)))
        }
        None => Ok(None),
    }
}

/// `bpftap run NAME.bo [GLOBAL=VALUE ...]`: pass 5 only, on the script the object holds.
fn run_object(cli: &Cli, path: &str, globals: &[String]) -> Result<ExitCode, String> {
    let compile_options = [
        ("-p", cli.pass.is_some()),
        ("-m", cli.module.is_some()),
        ("-D", !cli.defines.is_empty()),
        ("-I", !cli.include.is_empty()),
        ("-E", !cli.stap.extra_scripts.is_empty()),
        ("--emit-elf", cli.emit_elf.is_some()),
    ];
    if let Some((option, _)) = compile_options.iter().find(|(_, given)| *given) {
        return Err(format!("{option} acts on compiling, and {path} is already compiled: give it when compiling"));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut object = codegen_bpf::bo::read(&bytes, env!("CARGO_PKG_VERSION")).map_err(|e| format!("{path}: {e}"))?;
    let mut set_globals = Vec::new();
    for g in globals {
        set_globals.push(parse_global(g, "")?);
    }
    for g in &cli.globals {
        set_globals.push(parse_global(g, "-G ")?);
    }
    let missing = runtime::sys::missing_capabilities(false);
    if !missing.is_empty() {
        return Err(format!("loading BPF programs needs root or {}: run bpftap with sudo", missing.join(", ")));
    }
    let kernel = LiveKernel::new();
    object.fit_kernel(&kernel).map_err(|e| format!("{path}: {e}"))?;
    run_compiled(cli, object.compiled, &object.sources, &kernel, set_globals)
}

/// `NAME=VALUE` (from `-G`, or after a `.bo` as staprun takes module parameters); a value
/// in double quotes (`name="text"` that reached us quoted) loses them.
fn parse_global(text: &str, option: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| {
        format!("{option}{text}: set a global as NAME=VALUE (script arguments are fixed at compile time)")
    })?;
    let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    Ok((name.to_string(), value.to_string()))
}

/// `--generate KIND`: the man page or a shell's completions, from the clap definitions, so
/// they never disagree with `--help`.
fn generate(kind: &str) -> std::io::Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let mut command = Cli::command();
    // Made in memory first: clap_complete panics on a failed write.
    let mut text = Vec::new();
    match kind {
        "man" => clap_mangen::Man::new(command).render(&mut text)?,
        "bash" => clap_complete::generate(Shell::Bash, &mut command, "bpftap", &mut text),
        "zsh" => clap_complete::generate(Shell::Zsh, &mut command, "bpftap", &mut text),
        _ => clap_complete::generate(Shell::Fish, &mut command, "bpftap", &mut text),
    }
    match std::io::stdout().lock().write_all(&text) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `-T SECONDS`: a finite, non-negative number of seconds, at most a year.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    const MAX: f64 = 365.0 * 24.0 * 3600.0;
    match text.trim().parse::<f64>() {
        Ok(s) if (0.0..=MAX).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Ok(_) => Err(format!("give a number of seconds from 0 to {MAX}")),
        Err(_) => Err("give a number of seconds, such as 10 or 0.5".into()),
    }
}

fn report_runtime_error(e: &RuntimeError, sources: &lang::span::SourceMap) {
    write_runtime_error(&mut std::io::stderr().lock(), e, sources);
}

/// A runtime error as the user reads it: a verifier rejection points at the script code
/// the failing instruction was generated for.
fn write_runtime_error(to: &mut dyn Write, e: &RuntimeError, sources: &lang::span::SourceMap) {
    match e {
        RuntimeError::Verifier { point, span, log } => {
            let mut d = lang::diag::Diagnostic::error(
                "E0500",
                format!("the kernel's verifier rejected probe {point}"),
                span.unwrap_or_default(),
            )
            .with_label("the verifier stopped at code generated for this");
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            d = d.with_help(format!(
                "the verifier said (last lines):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
            let _ = if span.is_some() {
                write!(to, "{}", lang::diag::render(&[d], sources, std::io::stderr().is_terminal()))
            } else {
                writeln!(to, "bpftap: {e}\n{log}")
            };
        }
        other => {
            let _ = writeln!(to, "bpftap: {other}");
        }
    }
}
