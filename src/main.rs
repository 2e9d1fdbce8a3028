//! `bpftap`: SystemTap scripts compiled straight to BPF. This file is the command line only:
//! it parses options, calls the driver and the runtime, and renders errors.

use bpftap::driver;
mod list;
mod stap_options;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lang::kernel::KernelInfo;
use lang::span::SourceKind;
use runtime::kernel_info::LiveKernel;
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
    /// Set a limit: MAXSTRINGLEN=N or MAXMAPENTRIES=N.
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
    /// Use an output buffer of NUM megabytes (rounded up to a power of two) between the
    /// kernel and bpftap, for scripts that print in bursts.
    #[arg(short = 's', value_name = "NUM", value_parser = clap::value_parser!(u32).range(1..=1024))]
    buffer_mb: Option<u32>,
    /// While the script runs, serve GET /metrics at ADDR (HOST:PORT, or PORT for
    /// 127.0.0.1) in Prometheus's text format: what the script's `probe prometheus` prints,
    /// or, without one, its globals read at scrape time; and GET /data.json and
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
    /// The script file, then its arguments ($1, @1, ...).
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
    let (name, text, kind, script_args) = match (&cli.script, cli.args.split_first()) {
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
    let mut string_capacity = 128;
    let mut max_map_entries = 2048;
    for d in &cli.defines {
        match d.split_once('=') {
            Some(("MAXMAPENTRIES", v)) => {
                max_map_entries = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1 << 24).contains(n))
                    .ok_or_else(|| format!("-D MAXMAPENTRIES={v}: give a number from 1 to 16777216"))?;
            }
            Some(("MAXSTRINGLEN", v)) => {
                string_capacity = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (16..=2048).contains(n))
                    .ok_or_else(|| format!("-D MAXSTRINGLEN={v}: give a number from 16 to 2048"))?;
            }
            _ => return Err(format!("-D {d}: unknown setting (bpftap knows MAXSTRINGLEN and MAXMAPENTRIES)")),
        }
    }
    let last_pass = match cli.emit_elf {
        Some(_) => 4,
        None => cli.pass.unwrap_or(5),
    };
    let missing = runtime::sys::missing_capabilities(false);
    if last_pass >= 2 && !missing.is_empty() {
        return Err(format!(
            "resolving probes and loading BPF programs needs root or {}: run bpftap with sudo",
            missing.join(", ")
        ));
    }
    let set_globals = cli
        .globals
        .iter()
        .map(|g| {
            g.split_once('=')
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .ok_or_else(|| format!("-G {g}: use NAME=VALUE"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let preset_globals = set_globals
        .iter()
        .map(|(n, v)| {
            let is_number = v.trim().parse::<i64>().is_ok()
                || v.trim().strip_prefix("0x").is_some_and(|h| i64::from_str_radix(h, 16).is_ok());
            (n.clone(), if is_number { lang::ir::Ty::Long } else { lang::ir::Ty::Str })
        })
        .collect();
    let options = driver::Options {
        preset_globals,
        script_args,
        string_capacity,
        max_map_entries,
        verbose: cli.verbose,
        include: cli.include.clone(),
    };
    let compiled = match driver::compile(&name, &text, kind, last_pass.min(4), &kernel, &options) {
        Ok(c) => c,
        Err(failure) => {
            let color = std::io::stderr().is_terminal();
            eprint!("{}", lang::diag::render(&failure.diags, &failure.sources, color));
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(path) = &cli.emit_elf {
        let object = compiled.object.as_ref().expect("pass 4 ran");
        let bytes = codegen_bpf::object::write_object(&object.object);
        std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut stdout = std::io::stdout().lock();
    match last_pass {
        1 => {
            let script = compiled.script.as_ref().expect("pass 1 keeps the script");
            let _ = write!(stdout, "{}", lang::pretty::script(script, &compiled.sources));
            return Ok(ExitCode::SUCCESS);
        }
        2 => {
            let (e, t) = compiled.elaborated.as_ref().expect("pass 2 keeps the elaborated script");
            let _ = write!(stdout, "{}", driver::describe_elaborated(e, t));
            return Ok(ExitCode::SUCCESS);
        }
        3 => {
            let _ = write!(stdout, "{}", compiled.ir.as_ref().expect("pass 3 keeps the IR"));
            return Ok(ExitCode::SUCCESS);
        }
        4 => {
            let object = compiled.object.as_ref().expect("pass 4 keeps the object");
            let _ = write!(stdout, "{}", object.listing(&compiled.sources));
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let object = compiled.object.as_ref().expect("pass 4 ran");
    let netfilter = object.kernel_probes.iter().any(|p| matches!(p.target, lang::ir::Target::Netfilter { .. }));
    let missing = runtime::sys::missing_capabilities(netfilter);
    if !missing.is_empty() {
        return Err(format!("netfilter probes need root or {}: run bpftap with sudo", missing.join(", ")));
    }
    let options = RunOptions {
        target_pid: cli.target_pid,
        command: cli.command.clone(),
        command_user: if cli.cmd_as_root { None } else { runtime::sys::Credentials::sudo_invoker() },
        duration: cli.timeout,
        set_globals,
        ready_file: std::env::var_os("BPFTAP_READY_FILE").map(PathBuf::from),
        buffer_bytes: cli.buffer_mb.map_or(0, |mb| mb.next_power_of_two() << 20),
        force_kprobes: cli.force_kprobes || std::env::var_os("BPFTAP_FORCE_KPROBES").is_some_and(|v| v == "1"),
        metrics: cli.metrics.clone(),
    };
    let mut out = match &cli.output {
        Some(path) => runtime::output::ScriptOutput::file(path.clone())
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        None => runtime::output::ScriptOutput::stdout(),
    };
    runtime::sys::catch_stop_signals();
    let verbose = cli.verbose > 0;
    let started = std::time::Instant::now();
    let result = Session::load(object, &kernel, options, &mut out).and_then(|mut session| {
        let loaded = started.elapsed();
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
        session.run(&mut out)
    });
    let _ = out.flush();
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            report_runtime_error(&e, &compiled.sources);
            Ok(ExitCode::from(1))
        }
    }
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
            if span.is_some() {
                eprint!("{}", lang::diag::render(&[d], sources, std::io::stderr().is_terminal()));
            } else {
                eprintln!("bpftap: {e}\n{log}");
            }
        }
        other => eprintln!("bpftap: {other}"),
    }
}
