//! End-to-end tests: run the real `bpftap` binary on the cases in `tests/e2e/*.test` and check
//! the lines a user would see.
//!
//! # Case files
//!
//! A `.test` file is a list of cases separated by blank lines, in the style of bpftrace's
//! runtime tests. Lines starting with `#` are comments. Every other line is one directive,
//! `KEYWORD VALUE`, where the value is the rest of the line after the first space (trailing
//! whitespace is dropped; there are no continuation lines, so a long script goes in a file
//! and is run with `RUN`):
//!
//! | directive | meaning | times |
//! | --- | --- | --- |
//! | `NAME text` | the case's name, unique across all files | exactly once |
//! | `PROG script` | run `bpftap -e script` | once, not with `RUN` |
//! | `RUN command` | run `bash -c command`; `{{BPFTAP}}` is the binary | once, not with `PROG` |
//! | `BEFORE command` | a workload started once bpftap has attached its probes | at most once |
//! | `AFTER command` | a command run once bpftap has exited; it must exit 0 | at most once |
//! | `EXPECT line` | this exact line must appear on stdout | any |
//! | `EXPECT_REGEX re` | some stdout line must match `re` | any |
//! | `EXPECT_NONE re` | no stdout line may match `re` | any |
//! | `EXPECT_STDERR_REGEX re` | some stderr line must match `re` | any |
//! | `EXPECT_STDERR_NONE re` | no stderr line may match `re` | any |
//! | `TIMEOUT seconds` | when to send SIGINT (see below) | exactly once |
//! | `RETURN_CODE n` | the exit status bpftap must have (default 0) | at most once |
//! | `WILL_FAIL` | bpftap must exit with a non-zero status | at most once |
//! | `REQUIRES_FEATURE f` | skip the case, saying why, when the machine lacks `f` | any |
//! | `ENV NAME=VALUE` | set an environment variable for bpftap | any |
//!
//! Features: `kprobe` (tracefs `kprobe_events` exists and accepts a probe), `fentry` (kernel
//! BTF, and tracefs lists the functions ftrace can attach to), `netfilter` (kernel 6.4 or later
//! with `CONFIG_NETFILTER_BPF_LINK`), `python3` (a `python3` runs; under `CI=true` its absence
//! fails the case instead, since CI installs it), `disk` (`BPFTAP_E2E_DISK` names a block
//! device with an ext2 filesystem the case may mount and write to, as `tests/vm/run-e2e.sh`
//! gives the VMs; under `CI=true` a named device that is missing fails the case). In every regex and in `EXPECT`,
//! `{{BEFORE_PID}}` is replaced by the BEFORE process's pid. The parser is strict: an unknown
//! directive or feature, a case without `NAME` or `TIMEOUT`, with both or neither of `RUN` and
//! `PROG`, without any `EXPECT*`, or a repeated single directive, is an error that fails the run.
//!
//! # How a case runs
//!
//! Commands run from the repository root, in their own process group, with stdin closed. The
//! runner sets `BPFTAP_READY_FILE` to a fresh path; bpftap must create that file once all
//! probes are attached, and BEFORE starts only then (as `bash -c 'exec COMMAND'`, so its pid
//! is the workload's). The case ends when bpftap exits, or at TIMEOUT, when the runner sends
//! SIGINT to bpftap's process group (bpftap then runs its end probes and exits 0); if it has
//! not exited 5 s later it is killed and the case fails. A BEFORE workload still running then
//! is killed. Commands go through bash rather than sh: bash waits for a child that handles
//! SIGINT and carries on, where dash dies with it, so a `RUN` line such as
//! `{{BPFTAP}} f.stp && echo ok` still ends as bpftap does. Cases run one after another;
//! `BPFTAP_E2E_FILTER=text` (or a positional argument) runs only the cases whose names contain
//! `text`, and `BPFTAP_BIN=path` tests another binary.
//!
//! # Why a harness-less runner
//!
//! This file is declared with `harness = false` and is its own `main`, rather than one
//! `#[test]` that runs every case. libtest captures a test's output until it ends and has no
//! way to skip at run time, so one `#[test]` would print nothing during a long run and report
//! a skipped kernel feature as a pass. Here each case prints PASS, FAIL (with bpftap's full
//! stdout and stderr) or SKIP with its reason as it finishes, and the run closes with the
//! plain line `e2e: N passed, N failed, N skipped`. cargo still prints its own closing lines
//! for every other test binary in `cargo test`. The directive parser's unit tests are run
//! first by the same `main` and counted in that line. `--list` answers as a libtest binary
//! would (one test, `e2e`), so `cargo nextest` can run this binary too.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write as _};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use regex::Regex;

/// One parsed case of a `.test` file.
#[derive(Debug, Clone, PartialEq)]
struct Case {
    name: String,
    /// Where the case starts, as `file:line`, for messages.
    origin: String,
    invocation: Invocation,
    before: Option<String>,
    after: Option<String>,
    expects: Vec<Expect>,
    timeout: Duration,
    /// The exit status required; `None` with `will_fail` means any non-zero status.
    return_code: Option<i32>,
    will_fail: bool,
    features: Vec<Feature>,
    env: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Invocation {
    Prog(String),
    Run(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Line(String),
    Regex(String),
    None(String),
    StderrRegex(String),
    StderrNone(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Feature {
    Kprobe,
    Fentry,
    Netfilter,
    Python3,
    Disk,
}

/// A problem in a case file, at a 1-based line.
#[derive(Debug, PartialEq)]
struct ParseError {
    line: usize,
    message: String,
}

const BPFTAP_PLACEHOLDER: &str = "{{BPFTAP}}";
const BEFORE_PID_PLACEHOLDER: &str = "{{BEFORE_PID}}";
/// How long bpftap may take to exit after SIGINT before it is killed.
const SIGINT_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // Answer like libtest: this binary is one test named `e2e`, and it is not ignored.
        if !args.iter().any(|a| a == "--ignored") {
            println!("e2e: test");
        }
        return;
    }
    // A positional argument is a name filter, as for libtest (`cargo test --test e2e -- connect`),
    // except the binary's own name when nextest passes it with `--exact`.
    let filter = std::env::var("BPFTAP_E2E_FILTER")
        .ok()
        .or_else(|| args.iter().find(|a| !a.starts_with('-') && a.as_str() != "e2e").cloned());

    let mut tally = Tally::default();
    println!("e2e: directive parser unit tests");
    for (name, check) in parser_unit_tests() {
        match check() {
            Ok(()) => tally.pass(&format!("parser: {name}"), Duration::ZERO),
            Err(why) => tally.fail(&format!("parser: {name}"), &why),
        }
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = match load_cases(&root.join("tests/e2e")) {
        Ok(cases) => cases,
        Err(errors) => {
            for error in &errors {
                tally.fail("loading tests/e2e", error);
            }
            Vec::new()
        }
    };
    let bin = std::env::var_os("BPFTAP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bpftap")));
    println!("e2e: {} cases, binary {}", cases.len(), bin.display());

    let mut features = FeatureCache::default();
    for (idx, case) in cases.iter().enumerate() {
        if let Some(filter) = &filter {
            if !case.name.contains(filter.as_str()) {
                continue;
            }
        }
        if let Some(reason) = case.features.iter().find_map(|f| features.missing(*f)) {
            if reason.fatal {
                tally.fail(&case.name, &format!("{}: {}", case.origin, reason.text));
            } else {
                tally.skip(&case.name, &reason.text);
            }
            continue;
        }
        let started = Instant::now();
        let outcome = run_case(case, &bin, root, idx);
        match outcome.failures.is_empty() {
            true => tally.pass(&case.name, started.elapsed()),
            false => tally.fail(&case.name, &outcome.report(case)),
        }
    }

    println!();
    println!("e2e: {} passed, {} failed, {} skipped", tally.passed, tally.failed, tally.skipped);
    if tally.failed > 0 {
        std::process::exit(1);
    }
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Tally {
    fn pass(&mut self, name: &str, took: Duration) {
        self.passed += 1;
        if took.is_zero() {
            println!("PASS {name}");
        } else {
            println!("PASS {name} ({:.1}s)", took.as_secs_f64());
        }
    }

    fn fail(&mut self, name: &str, why: &str) {
        self.failed += 1;
        println!("FAIL {name}");
        for line in why.lines() {
            println!("    {line}");
        }
    }

    fn skip(&mut self, name: &str, why: &str) {
        self.skipped += 1;
        println!("SKIP {name}: {why}");
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Reads every `*.test` file under `dir`, in name order. Returns every error found, not only
/// the first, each prefixed with `file:line`.
fn load_cases(dir: &Path) -> Result<Vec<Case>, Vec<String>> {
    let mut paths: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "test"))
            .collect(),
        Err(err) => return Err(vec![format!("{}: {err}", dir.display())]),
    };
    paths.sort();
    let mut cases: Vec<Case> = Vec::new();
    let mut errors = Vec::new();
    for path in &paths {
        let shown = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path);
        let shown = shown.display().to_string();
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) => {
                errors.push(format!("{shown}: {err}"));
                continue;
            }
        };
        match parse_cases(&text, &shown) {
            Ok(parsed) => {
                for case in parsed {
                    if let Some(other) = cases.iter().find(|c| c.name == case.name) {
                        errors.push(format!(
                            "{}: case name {:?} is already used at {}",
                            case.origin, case.name, other.origin
                        ));
                    }
                    cases.push(case);
                }
            }
            Err(errs) => errors.extend(errs.into_iter().map(|e| format!("{shown}:{}: {}", e.line, e.message))),
        }
    }
    if paths.is_empty() {
        errors.push(format!("{}: no .test files", dir.display()));
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

/// Parses one case file. `file` is used only to fill in `Case::origin`.
fn parse_cases(text: &str, file: &str) -> Result<Vec<Case>, Vec<ParseError>> {
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    let mut block: Vec<(usize, &str)> = Vec::new();
    let lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    // A sentinel blank line at the end closes the last block.
    for (line_no, line) in lines.chain(std::iter::once((0, ""))) {
        if line.trim().is_empty() {
            if !block.is_empty() {
                match parse_case(&block, file) {
                    Ok(case) => {
                        if let Some(prev) = cases.iter().find(|c: &&Case| c.name == case.name) {
                            errors.push(ParseError {
                                line: block[0].0,
                                message: format!("case name {:?} is already used at {}", case.name, prev.origin),
                            });
                        }
                        cases.push(case);
                    }
                    Err(err) => errors.push(err),
                }
                block.clear();
            }
        } else if !line.trim_start().starts_with('#') {
            block.push((line_no, line));
        }
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

/// Parses one block of directive lines (no blank or comment lines) into a case.
fn parse_case(block: &[(usize, &str)], file: &str) -> Result<Case, ParseError> {
    let first_line = block[0].0;
    let err = |line: usize, message: String| ParseError { line, message };

    let mut name = None;
    let mut prog = None;
    let mut run = None;
    let mut before = None;
    let mut after = None;
    let mut timeout = None;
    let mut return_code = None;
    let mut will_fail = false;
    let mut expects = Vec::new();
    let mut features = Vec::new();
    let mut env = Vec::new();

    for &(line, text) in block {
        let text = text.trim_end();
        let (keyword, value) = match text.split_once(' ') {
            Some((k, v)) => (k, v.trim_start()),
            None => (text, ""),
        };
        // Directives that may appear once; a second one is an error, not an override.
        let once = |slot: &Option<String>| -> Result<(), ParseError> {
            match slot {
                Some(_) => Err(err(line, format!("{keyword} given twice in one case"))),
                None => Ok(()),
            }
        };
        let needs_value = || -> Result<String, ParseError> {
            match value.is_empty() {
                true => Err(err(line, format!("{keyword} needs a value"))),
                false => Ok(value.to_string()),
            }
        };
        let regex = |re: &str| -> Result<(), ParseError> {
            // Validate with the placeholder filled in, as it will be when the case runs.
            Regex::new(&re.replace(BEFORE_PID_PLACEHOLDER, "1"))
                .map(|_| ())
                .map_err(|e| err(line, format!("{keyword}: bad regex: {e}")))
        };
        match keyword {
            "NAME" => {
                once(&name)?;
                name = Some(needs_value()?);
            }
            "PROG" => {
                once(&prog)?;
                prog = Some(needs_value()?);
            }
            "RUN" => {
                once(&run)?;
                let command = needs_value()?;
                if !command.contains(BPFTAP_PLACEHOLDER) {
                    return Err(err(line, format!("RUN does not mention {BPFTAP_PLACEHOLDER}")));
                }
                run = Some(command);
            }
            "BEFORE" => {
                once(&before)?;
                before = Some(needs_value()?);
            }
            "AFTER" => {
                once(&after)?;
                after = Some(needs_value()?);
            }
            "EXPECT" => expects.push(Expect::Line(needs_value()?)),
            "EXPECT_REGEX" => {
                let re = needs_value()?;
                regex(&re)?;
                expects.push(Expect::Regex(re));
            }
            "EXPECT_NONE" => {
                let re = needs_value()?;
                regex(&re)?;
                expects.push(Expect::None(re));
            }
            "EXPECT_STDERR_REGEX" => {
                let re = needs_value()?;
                regex(&re)?;
                expects.push(Expect::StderrRegex(re));
            }
            "EXPECT_STDERR_NONE" => {
                let re = needs_value()?;
                regex(&re)?;
                expects.push(Expect::StderrNone(re));
            }
            "TIMEOUT" => {
                if timeout.is_some() {
                    return Err(err(line, "TIMEOUT given twice in one case".into()));
                }
                let secs: f64 = needs_value()?
                    .parse()
                    .map_err(|_| err(line, format!("TIMEOUT {value:?} is not a number of seconds")))?;
                if !(secs > 0.0 && secs <= 600.0) {
                    return Err(err(line, format!("TIMEOUT {value} is not between 0 and 600 s")));
                }
                timeout = Some(Duration::from_secs_f64(secs));
            }
            "RETURN_CODE" => {
                if return_code.is_some() {
                    return Err(err(line, "RETURN_CODE given twice in one case".into()));
                }
                let code: i32 = needs_value()?
                    .parse()
                    .ok()
                    .filter(|c| (0..=255).contains(c))
                    .ok_or_else(|| err(line, format!("RETURN_CODE {value:?} is not 0 to 255")))?;
                return_code = Some(code);
            }
            "WILL_FAIL" => {
                if !value.is_empty() {
                    return Err(err(line, "WILL_FAIL takes no value".into()));
                }
                if will_fail {
                    return Err(err(line, "WILL_FAIL given twice in one case".into()));
                }
                will_fail = true;
            }
            "REQUIRES_FEATURE" => {
                let feature = match value {
                    "kprobe" => Feature::Kprobe,
                    "fentry" => Feature::Fentry,
                    "netfilter" => Feature::Netfilter,
                    "python3" => Feature::Python3,
                    "disk" => Feature::Disk,
                    _ => {
                        return Err(err(
                            line,
                            format!("unknown feature {value:?} (known: kprobe, fentry, netfilter, python3, disk)"),
                        ))
                    }
                };
                features.push(feature);
            }
            "ENV" => {
                let assignment = needs_value()?;
                let (key, val) = assignment
                    .split_once('=')
                    .filter(|(k, _)| {
                        !k.is_empty()
                            && !k.starts_with(|c: char| c.is_ascii_digit())
                            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
                    .ok_or_else(|| err(line, format!("ENV {assignment:?} is not NAME=VALUE")))?;
                env.push((key.to_string(), val.to_string()));
            }
            _ => return Err(err(line, format!("unknown directive {keyword:?}"))),
        }
    }

    let name = name.ok_or_else(|| err(first_line, "case has no NAME".into()))?;
    let in_case = |what: &str| err(first_line, format!("case {name:?}: {what}"));
    let invocation = match (prog, run) {
        (Some(prog), None) => Invocation::Prog(prog),
        (None, Some(run)) => Invocation::Run(run),
        (Some(_), Some(_)) => return Err(in_case("has both PROG and RUN")),
        (None, None) => return Err(in_case("has neither PROG nor RUN")),
    };
    if expects.is_empty() {
        return Err(in_case("has no EXPECT, EXPECT_REGEX, EXPECT_NONE, EXPECT_STDERR_REGEX or EXPECT_STDERR_NONE"));
    }
    let timeout = timeout.ok_or_else(|| in_case("has no TIMEOUT"))?;
    if will_fail && return_code == Some(0) {
        return Err(in_case("has WILL_FAIL and RETURN_CODE 0"));
    }
    let uses_pid = expects.iter().any(|e| match e {
        Expect::Line(s) | Expect::Regex(s) | Expect::None(s) | Expect::StderrRegex(s) | Expect::StderrNone(s) => {
            s.contains(BEFORE_PID_PLACEHOLDER)
        }
    });
    if uses_pid && before.is_none() {
        return Err(in_case("uses {{BEFORE_PID}} but has no BEFORE"));
    }
    Ok(Case {
        name,
        origin: format!("{file}:{first_line}"),
        invocation,
        before,
        after,
        expects,
        timeout,
        return_code,
        will_fail,
        features,
        env,
    })
}

// ---------------------------------------------------------------------------------------------
// Running

/// What happened when a case ran, and what was wrong with it.
struct Outcome {
    failures: Vec<String>,
    status: Option<ExitStatus>,
    interrupted: bool,
    stdout: String,
    stderr: String,
    before_pid: Option<u32>,
    before_output: String,
    after_output: String,
}

impl Outcome {
    fn report(&self, case: &Case) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "at {}", case.origin);
        match &case.invocation {
            Invocation::Prog(prog) => _ = writeln!(out, "command: bpftap -e '{prog}'"),
            Invocation::Run(run) => _ = writeln!(out, "command: bash -c '{run}'"),
        }
        for failure in &self.failures {
            let _ = writeln!(out, "- {failure}");
        }
        let status = match self.status {
            Some(status) => describe_status(status),
            None => "none (still running when killed)".into(),
        };
        let interrupted = if self.interrupted { ", after SIGINT at TIMEOUT" } else { "" };
        let _ = writeln!(out, "exit: {status}{interrupted}");
        if let Some(pid) = self.before_pid {
            let _ = writeln!(out, "BEFORE pid: {pid}");
        }
        for (what, text) in [
            ("stdout", &self.stdout),
            ("stderr", &self.stderr),
            ("BEFORE output", &self.before_output),
            ("AFTER output", &self.after_output),
        ] {
            if what == "stdout" || what == "stderr" || !text.is_empty() {
                let _ = writeln!(out, "--- {what} ({} bytes) ---", text.len());
                out.push_str(text);
                if !text.is_empty() && !text.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        out.push_str("---");
        out
    }
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => format!("{status}"),
    }
}

/// A spawned process whose stdout and stderr are read to the end by two threads.
struct Captured {
    child: Child,
    stdout: mpsc::Receiver<Vec<u8>>,
    stderr: mpsc::Receiver<Vec<u8>>,
}

impl Captured {
    fn spawn(mut command: Command) -> std::io::Result<Captured> {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // Its own process group, so SIGINT and SIGKILL reach everything it started.
        command.process_group(0);
        let mut child = command.spawn()?;
        let stdout = read_in_thread(child.stdout.take().expect("piped stdout"));
        let stderr = read_in_thread(child.stderr.take().expect("piped stderr"));
        Ok(Captured { child, stdout, stderr })
    }

    fn signal_group(&self, signal: i32) {
        // SAFETY: kill(2) takes plain integers. The group id is the child's pid. Either the
        // child is not reaped yet, or a member of its group still holds its pipes open; in both
        // cases the kernel cannot have given that number to another process.
        unsafe {
            libc::kill(-(self.child.id() as i32), signal);
        }
    }

    /// Waits until the process exits or `deadline` passes.
    fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// Kills the process group unless it already exited, then reaps the process.
    fn kill_and_wait(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        self.signal_group(libc::SIGKILL);
        self.child.wait().ok()
    }

    /// Collects what the process printed. Something it started in the background may hold the
    /// pipes open; after a short wait its group is killed so the run cannot hang.
    fn output(self) -> (String, String) {
        let grace = Duration::from_secs(2);
        let stdout = self.stdout.recv_timeout(grace).or_else(|_| {
            self.signal_group(libc::SIGKILL);
            self.stdout.recv()
        });
        let stderr = self.stderr.recv_timeout(grace).or_else(|_| {
            self.signal_group(libc::SIGKILL);
            self.stderr.recv()
        });
        let text = |bytes: Result<Vec<u8>, _>| String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned();
        (text(stdout), text(stderr))
    }
}

fn read_in_thread(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn shell(command: &str, root: &Path) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(command).current_dir(root);
    cmd
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn run_case(case: &Case, bin: &Path, root: &Path, idx: usize) -> Outcome {
    let mut outcome = Outcome {
        failures: Vec::new(),
        status: None,
        interrupted: false,
        stdout: String::new(),
        stderr: String::new(),
        before_pid: None,
        before_output: String::new(),
        after_output: String::new(),
    };
    let ready_file = std::env::temp_dir().join(format!("bpftap-e2e-{}-{idx}.ready", std::process::id()));
    let _ = fs::remove_file(&ready_file);

    let mut command = match &case.invocation {
        Invocation::Prog(prog) => {
            let mut cmd = Command::new(bin);
            cmd.arg("-e").arg(prog).current_dir(root);
            cmd
        }
        Invocation::Run(run) => {
            let bin_text = bin.to_string_lossy();
            shell(&run.replace(BPFTAP_PLACEHOLDER, &shell_quote(&bin_text)), root)
        }
    };
    command.env("BPFTAP_READY_FILE", &ready_file);
    // Under `sudo ./scripts/test.sh`, `-c` commands would run as the invoking user; cases
    // that test that set these themselves.
    command.env_remove("SUDO_UID").env_remove("SUDO_GID");
    command.envs(case.env.iter().map(|(k, v)| (k, v)));
    let mut bpftap = match Captured::spawn(command) {
        Ok(child) => child,
        Err(err) => {
            outcome.failures.push(format!("could not start {}: {err}", bin.display()));
            return outcome;
        }
    };

    // Wait for bpftap to exit or TIMEOUT to pass; start BEFORE once the ready file appears.
    let start = Instant::now();
    let deadline = start + case.timeout;
    let mut before: Option<Captured> = None;
    loop {
        if let Ok(Some(status)) = bpftap.child.try_wait() {
            outcome.status = Some(status);
            break;
        }
        if Instant::now() >= deadline {
            outcome.interrupted = true;
            bpftap.signal_group(libc::SIGINT);
            outcome.status = bpftap.wait_until(Instant::now() + SIGINT_GRACE);
            if outcome.status.is_none() {
                outcome.failures.push(format!(
                    "still running {} s after SIGINT at TIMEOUT {} s; killed",
                    SIGINT_GRACE.as_secs(),
                    case.timeout.as_secs_f64()
                ));
                outcome.status = bpftap.kill_and_wait();
            }
            break;
        }
        if let (Some(workload), None) = (&case.before, &before) {
            if ready_file.exists() {
                match Captured::spawn(shell(&format!("exec {workload}"), root)) {
                    Ok(child) => {
                        outcome.before_pid = Some(child.child.id());
                        before = Some(child);
                    }
                    Err(err) => {
                        outcome.failures.push(format!("could not start BEFORE: {err}"));
                        bpftap.kill_and_wait();
                        break;
                    }
                }
            }
        }
        thread::sleep(POLL);
    }
    let ready = ready_file.exists();
    let _ = fs::remove_file(&ready_file);
    if case.before.is_some() && before.is_none() && outcome.failures.is_empty() {
        outcome.failures.push(match ready {
            true => "bpftap exited as soon as it was ready; BEFORE was never started".into(),
            false => "BEFORE was never started: bpftap did not create $BPFTAP_READY_FILE".into(),
        });
    }
    if let Some(mut workload) = before {
        workload.kill_and_wait();
        outcome.before_output = join_output(workload.output());
    }
    (outcome.stdout, outcome.stderr) = bpftap.output();

    if let Some(after) = &case.after {
        match Captured::spawn(shell(after, root)) {
            Ok(mut child) => {
                let status = child.wait_until(Instant::now() + case.timeout);
                let status = status.or_else(|| child.kill_and_wait());
                outcome.after_output = join_output(child.output());
                if !status.is_some_and(|s| s.success()) {
                    let status = status.map_or("none".into(), describe_status);
                    outcome.failures.push(format!("AFTER failed: {status}"));
                }
            }
            Err(err) => outcome.failures.push(format!("could not start AFTER: {err}")),
        }
    }

    check_outcome(case, &mut outcome);
    outcome
}

fn join_output((stdout, stderr): (String, String)) -> String {
    stdout + &stderr
}

/// Adds to `outcome.failures` every expectation of `case` that its run did not meet.
fn check_outcome(case: &Case, outcome: &mut Outcome) {
    match outcome.status {
        Some(status) => {
            let code = status.code();
            let ok = match (case.return_code, case.will_fail) {
                (Some(want), _) => code == Some(want),
                (None, true) => code.is_some_and(|c| c != 0),
                (None, false) => code == Some(0),
            };
            if !ok {
                let want = match (case.return_code, case.will_fail) {
                    (Some(want), _) => format!("status {want}"),
                    (None, true) => "a non-zero status (WILL_FAIL)".into(),
                    (None, false) => "status 0".into(),
                };
                outcome.failures.push(format!("expected {want}, got {}", describe_status(status)));
            }
        }
        None => outcome.failures.push("no exit status".into()),
    }

    // A BEFORE that never started has no pid: a word no output line contains keeps the
    // expectation failing (and the regex valid).
    let pid = outcome.before_pid.map_or("NO_BEFORE_PID".into(), |p| p.to_string());
    let fill = |s: &str| s.replace(BEFORE_PID_PLACEHOLDER, &pid);
    let stdout: Vec<&str> = outcome.stdout.lines().collect();
    let stderr: Vec<&str> = outcome.stderr.lines().collect();
    for expect in &case.expects {
        let failure = match expect {
            Expect::Line(line) => {
                let line = fill(line);
                (!stdout.contains(&line.as_str())).then(|| format!("no stdout line is {line:?}"))
            }
            Expect::Regex(re) => {
                let re = Regex::new(&fill(re)).expect("validated when parsed");
                (!stdout.iter().any(|l| re.is_match(l))).then(|| format!("no stdout line matches /{re}/"))
            }
            Expect::None(re) => {
                let re = Regex::new(&fill(re)).expect("validated when parsed");
                stdout
                    .iter()
                    .find(|l| re.is_match(l))
                    .map(|l| format!("stdout line {l:?} matches /{re}/ (EXPECT_NONE)"))
            }
            Expect::StderrRegex(re) => {
                let re = Regex::new(&fill(re)).expect("validated when parsed");
                (!stderr.iter().any(|l| re.is_match(l))).then(|| format!("no stderr line matches /{re}/"))
            }
            Expect::StderrNone(re) => {
                let re = Regex::new(&fill(re)).expect("validated when parsed");
                stderr
                    .iter()
                    .find(|l| re.is_match(l))
                    .map(|l| format!("stderr line {l:?} matches /{re}/ (EXPECT_STDERR_NONE)"))
            }
        };
        outcome.failures.extend(failure);
    }
}

// ---------------------------------------------------------------------------------------------
// Features

/// Why a feature is missing; `fatal` when its absence is a failure rather than a skip.
#[derive(Clone)]
struct Missing {
    text: String,
    fatal: bool,
}

#[derive(Default)]
struct FeatureCache(HashMap<Feature, Option<Missing>>);

impl FeatureCache {
    fn missing(&mut self, feature: Feature) -> Option<Missing> {
        self.0.entry(feature).or_insert_with(|| detect(feature)).clone()
    }
}

fn tracefs() -> Option<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("events").is_dir())
}

fn detect(feature: Feature) -> Option<Missing> {
    let skip = |text: String| Some(Missing { text, fatal: false });
    match feature {
        Feature::Kprobe => {
            let Some(tracefs) = tracefs() else {
                return skip("kprobe: tracefs is not mounted".into());
            };
            let path = tracefs.join("kprobe_events");
            if !path.exists() {
                return skip(format!("kprobe: {} does not exist", path.display()));
            }
            // Add a probe and remove it again. Append, never truncate: truncating the file
            // would remove every kprobe event on the machine.
            let name = format!("bpftap_e2e_check_{}", std::process::id());
            let attempt = fs::OpenOptions::new().append(true).open(&path).and_then(|mut f| {
                f.write_all(format!("p:{name} vfs_read\n").as_bytes())?;
                f.write_all(format!("-:{name}\n").as_bytes())
            });
            match attempt {
                Ok(()) => None,
                Err(err) => skip(format!("kprobe: cannot add a probe to {}: {err}", path.display())),
            }
        }
        Feature::Fentry => {
            if !Path::new("/sys/kernel/btf/vmlinux").exists() {
                return skip("fentry: the kernel has no BTF (/sys/kernel/btf/vmlinux)".into());
            }
            let Some(tracefs) = tracefs() else {
                return skip("fentry: tracefs is not mounted".into());
            };
            let path = tracefs.join("available_filter_functions");
            let mut first = [0u8; 64];
            match fs::File::open(&path).and_then(|mut f| f.read(&mut first)) {
                Ok(n) if n > 0 => None,
                Ok(_) => skip(format!("fentry: {} is empty", path.display())),
                Err(err) => skip(format!("fentry: cannot read {}: {err}", path.display())),
            }
        }
        Feature::Netfilter => {
            let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
            let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            if (major, minor) < (6, 4) {
                return skip(format!("netfilter: kernel {} is older than 6.4", release.trim()));
            }
            if Path::new("/proc/config.gz").exists() {
                let has_link = Command::new("sh")
                    .arg("-c")
                    .arg("zcat /proc/config.gz | grep -q '^CONFIG_NETFILTER_BPF_LINK=y'")
                    .status()
                    .is_ok_and(|s| s.success());
                if !has_link {
                    return skip("netfilter: kernel built without CONFIG_NETFILTER_BPF_LINK".into());
                }
            }
            None
        }
        Feature::Python3 => {
            let works =
                Command::new("python3").args(["-c", ""]).stdin(Stdio::null()).status().is_ok_and(|s| s.success());
            match works {
                true => None,
                false => Some(Missing {
                    text: "python3: no working python3 on PATH".into(),
                    // CI installs python3, so there its absence is a missing install step.
                    fatal: std::env::var("CI").is_ok_and(|v| v == "true"),
                }),
            }
        }
        Feature::Disk => match std::env::var("BPFTAP_E2E_DISK") {
            Ok(device) if Path::new(&device).exists() => None,
            Ok(device) => Some(Missing {
                text: format!("disk: BPFTAP_E2E_DISK={device} does not exist"),
                // tests/vm/run-e2e.sh gives the VMs a disk; under CI it must be there.
                fatal: std::env::var("CI").is_ok_and(|v| v == "true"),
            }),
            Err(_) => skip("disk: BPFTAP_E2E_DISK names no scratch ext2 filesystem to mount".into()),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Unit tests of the directive parser, run by `main` before the cases.

type UnitTest = (&'static str, fn() -> Result<(), String>);

fn parser_unit_tests() -> Vec<UnitTest> {
    vec![
        ("parses a full case", parses_a_full_case),
        ("parses several cases and skips comments", parses_several_cases),
        ("rejects an unknown directive", || {
            rejects("NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\nEXPECTED z", 5, "unknown directive \"EXPECTED\"")
        }),
        ("rejects a lowercase directive", || {
            rejects("name a\nPROG x\nEXPECT y\nTIMEOUT 1", 1, "unknown directive \"name\"")
        }),
        ("rejects a case without NAME", || rejects("PROG x\nEXPECT y\nTIMEOUT 1", 1, "case has no NAME")),
        ("rejects RUN and PROG together", || {
            rejects("NAME a\nPROG x\nRUN {{BPFTAP}} f\nEXPECT y\nTIMEOUT 1", 1, "has both PROG and RUN")
        }),
        ("rejects a case without PROG or RUN", || {
            rejects("NAME a\nEXPECT y\nTIMEOUT 1", 1, "has neither PROG nor RUN")
        }),
        ("rejects a case without expectation", || {
            rejects("NAME a\nPROG x\nTIMEOUT 1\nRETURN_CODE 0", 1, "has no EXPECT")
        }),
        ("rejects a case without TIMEOUT", || rejects("NAME a\nPROG x\nEXPECT y", 1, "has no TIMEOUT")),
        ("rejects an unknown feature", || {
            rejects("NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\nREQUIRES_FEATURE kprobes", 5, "unknown feature \"kprobes\"")
        }),
        ("rejects a repeated NAME", || rejects("NAME a\nNAME b\nPROG x\nEXPECT y\nTIMEOUT 1", 2, "NAME given twice")),
        ("rejects a repeated PROG", || rejects("NAME a\nPROG x\nPROG y\nEXPECT y\nTIMEOUT 1", 3, "PROG given twice")),
        ("rejects a repeated TIMEOUT", || {
            rejects("NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\nTIMEOUT 2", 5, "TIMEOUT given twice")
        }),
        ("rejects a directive without value", || rejects("NAME a\nPROG\nEXPECT y\nTIMEOUT 1", 2, "PROG needs a value")),
        ("rejects WILL_FAIL with a value", || {
            rejects("NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\nWILL_FAIL yes", 5, "WILL_FAIL takes no value")
        }),
        ("rejects WILL_FAIL with RETURN_CODE 0", || {
            rejects("NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\nWILL_FAIL\nRETURN_CODE 0", 1, "WILL_FAIL and RETURN_CODE 0")
        }),
        ("rejects a bad TIMEOUT", || rejects("NAME a\nPROG x\nEXPECT y\nTIMEOUT soon", 4, "not a number")),
        ("rejects a zero TIMEOUT", || rejects("NAME a\nPROG x\nEXPECT y\nTIMEOUT 0", 4, "not between")),
        ("rejects a bad RETURN_CODE", || {
            rejects("NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\nRETURN_CODE 256", 5, "not 0 to 255")
        }),
        ("rejects a bad regex", || rejects("NAME a\nPROG x\nEXPECT_REGEX (\nTIMEOUT 1", 3, "bad regex")),
        ("rejects BEFORE_PID without BEFORE", || {
            rejects("NAME a\nPROG x\nEXPECT_REGEX ^{{BEFORE_PID}}$\nTIMEOUT 1", 1, "no BEFORE")
        }),
        ("rejects RUN without the binary", || {
            rejects("NAME a\nRUN bpftap -e x\nEXPECT y\nTIMEOUT 1", 2, "does not mention {{BPFTAP}}")
        }),
        ("rejects a malformed ENV", || rejects("NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\nENV 1X=2", 5, "not NAME=VALUE")),
        ("rejects a repeated case name", || {
            rejects(
                "NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\n\nNAME a\nPROG z\nEXPECT y\nTIMEOUT 1",
                6,
                "already used at f.test:1",
            )
        }),
        ("reports every bad case of a file", reports_every_bad_case),
    ]
}

fn parses_a_full_case() -> Result<(), String> {
    let text = "\
NAME connect is seen
PROG probe syscall.connect { println(pid()) }
BEFORE python3 tests/workloads/connect.py 127.0.0.1 23
AFTER true
EXPECT_REGEX ^{{BEFORE_PID}}$
EXPECT_NONE error
EXPECT done
EXPECT_STDERR_REGEX warn
EXPECT_STDERR_NONE panicked
TIMEOUT 2.5
RETURN_CODE 3
WILL_FAIL
REQUIRES_FEATURE kprobe
REQUIRES_FEATURE python3
ENV A=b=c
";
    let cases = parse_cases(text, "f.test").map_err(|e| format!("{e:?}"))?;
    let want = Case {
        name: "connect is seen".into(),
        origin: "f.test:1".into(),
        invocation: Invocation::Prog("probe syscall.connect { println(pid()) }".into()),
        before: Some("python3 tests/workloads/connect.py 127.0.0.1 23".into()),
        after: Some("true".into()),
        expects: vec![
            Expect::Regex("^{{BEFORE_PID}}$".into()),
            Expect::None("error".into()),
            Expect::Line("done".into()),
            Expect::StderrRegex("warn".into()),
            Expect::StderrNone("panicked".into()),
        ],
        timeout: Duration::from_millis(2500),
        return_code: Some(3),
        will_fail: true,
        features: vec![Feature::Kprobe, Feature::Python3],
        env: vec![("A".into(), "b=c".into())],
    };
    match cases.as_slice() {
        [case] if *case == want => Ok(()),
        _ => Err(format!("got {cases:#?}\nwant {want:#?}")),
    }
}

fn parses_several_cases() -> Result<(), String> {
    let text = "\n# a comment\n\nNAME one\nRUN {{BPFTAP}} a.stp x\n# inside\nEXPECT 1  \nTIMEOUT 1\n\n\n\
                NAME two\nPROG x\nEXPECT_NONE .\nTIMEOUT 1\n";
    let cases = parse_cases(text, "f.test").map_err(|e| format!("{e:?}"))?;
    let got: Vec<(&str, &str, &Invocation, &Vec<Expect>)> =
        cases.iter().map(|c| (c.name.as_str(), c.origin.as_str(), &c.invocation, &c.expects)).collect();
    let run = Invocation::Run("{{BPFTAP}} a.stp x".into());
    let prog = Invocation::Prog("x".into());
    let one = vec![Expect::Line("1".into())];
    let two = vec![Expect::None(".".into())];
    let want = vec![("one", "f.test:4", &run, &one), ("two", "f.test:11", &prog, &two)];
    match got == want {
        true => Ok(()),
        false => Err(format!("got {got:#?}\nwant {want:#?}")),
    }
}

fn reports_every_bad_case() -> Result<(), String> {
    let text = "NAME a\nEXPECT y\nTIMEOUT 1\n\nNAME ok\nPROG x\nEXPECT y\nTIMEOUT 1\n\nBOGUS\n";
    match parse_cases(text, "f.test") {
        Err(errors) if errors.iter().map(|e| e.line).collect::<Vec<_>>() == [1, 10] => Ok(()),
        other => Err(format!("expected errors at lines 1 and 10, got {other:?}")),
    }
}

/// Checks that `text` fails to parse with an error at `line` whose message contains `needle`.
fn rejects(text: &str, line: usize, needle: &str) -> Result<(), String> {
    match parse_cases(text, "f.test") {
        Ok(cases) => Err(format!("parsed, expected an error: {cases:?}")),
        Err(errors) => match errors.as_slice() {
            [e] if e.line == line && e.message.contains(needle) => Ok(()),
            _ => Err(format!("expected one error at line {line} containing {needle:?}, got {errors:?}")),
        },
    }
}
