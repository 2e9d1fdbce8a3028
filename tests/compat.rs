//! SystemTap's own install checks, run with bpftap in `stap`'s place.
//!
//! `tests/compat/t1.txt` lists the examples of Debian's `systemtap-doc` whose probe points
//! resolve to tracepoints, timers, perf events, netfilter hooks or syscalls, one a line:
//! `PATH pass`, or `PATH fail: REASON` for one that does not pass: `kernel: ...` for what
//! this kernel lacks or refuses, `bpftap gap: ...` for what bpftap lacks today, `bpftap by
//! design: ...` for what it will not do (embedded C).
//! For each, the runner takes the `test_installcheck:` line of the script's `.meta`, runs it
//! with `bash -c` from the script's folder with a `stap` on PATH that is bpftap, and calls it
//! passed when it exits 0 with no error on stderr (a `WARNING:` line is none): what
//! SystemTap's test suite checks. A listed expectation that does not hold fails the run,
//! either way, so the list stays true.
//! `BPFTAP_COMPAT_FILTER=text` runs only the scripts whose paths contain `text`.
//!
//! `BPFTAP_COMPAT_LIST=tests/compat/t2.txt` runs another list: T2, the examples that need
//! `kernel.function` probes (fentry or kprobes), which this machine's kernel lacks.
//! `tests/vm/run-compat.sh` runs this binary with it inside a stock Debian kernel under QEMU.
//!
//! Without the examples (no `systemtap-doc`) every script is reported SKIP, and under
//! `CI=true`, where the test command installs them, that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/timed.rs"]
mod timed;

const EXAMPLES: &str = "/usr/share/systemtap/examples";
/// The longest an install check may run: the longest `-T` in the list is 10 s.
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, PartialEq)]
enum Expect {
    Pass,
    Fail(String),
}

fn parse_list(text: &str) -> Result<Vec<(String, Expect)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (path, rest) = line.split_once(' ').ok_or(format!("line {}: `PATH pass` or `PATH fail: REASON`", n + 1))?;
        let expect = match rest.trim() {
            "pass" => Expect::Pass,
            r => match r.strip_prefix("fail:") {
                Some(reason) if !reason.trim().is_empty() => Expect::Fail(reason.trim().to_string()),
                _ => return Err(format!("line {}: `{r}` is neither `pass` nor `fail: REASON`", n + 1)),
            },
        };
        out.push((path.to_string(), expect));
    }
    Ok(out)
}

/// The `test_installcheck:` command of a script's `.meta`, else its `test_installcheck_bpf:`
/// (`stap --bpf ...`, for a script SystemTap checks on its BPF backend only).
fn installcheck(script: &Path) -> Option<String> {
    let meta = std::fs::read_to_string(script.with_extension("meta")).ok()?;
    let line = |key: &str| meta.lines().find_map(|l| l.strip_prefix(key)).map(|c| c.trim().to_string());
    line("test_installcheck:").or_else(|| line("test_installcheck_bpf:"))
}

struct Outcome {
    passed: bool,
    /// The first diagnostic line, for a failure.
    first_error: String,
    took: Duration,
}

fn run_check(command: &str, dir: &Path, stap_dir: &Path) -> Outcome {
    let path = format!("{}:{}", stap_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut bash = Command::new("bash");
    bash.arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("PATH", path)
        // SystemTap's checks run as root; under sudo, `-c` commands would not.
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID");
    let started = Instant::now();
    let timed::Finished { status, stderr } = match timed::run(bash, TIMEOUT) {
        Ok(f) => f,
        Err(e) => return Outcome { passed: false, first_error: format!("cannot run bash: {e}"), took: Duration::ZERO },
    };
    // A warning is not an error, whatever its reason quotes (`os error 16`): as in SystemTap.
    let is_error = |l: &&str| !l.starts_with("WARNING") && (l.to_lowercase().contains("error") || l.contains('×'));
    let error_line = stderr.lines().find(is_error);
    let passed = status.is_some_and(|s| s.success()) && error_line.is_none();
    let first_error = match status {
        None => format!("still running after {} s", TIMEOUT.as_secs()),
        Some(_) => {
            let first = stderr.lines().filter(is_error).map(str::trim).next();
            first.or_else(|| stderr.lines().map(str::trim).find(|l| !l.is_empty())).unwrap_or("").to_string()
        }
    };
    let first_error = match status {
        Some(s) if !s.success() => {
            format!("exit {}: {first_error}", s.code().map_or("signal".into(), |c| c.to_string()))
        }
        _ => first_error,
    };
    Outcome { passed, first_error, took: started.elapsed() }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("compat: test");
        }
        return;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let list_name = std::env::var("BPFTAP_COMPAT_LIST").unwrap_or_else(|_| "tests/compat/t1.txt".into());
    let list = match std::fs::read_to_string(root.join(&list_name)) {
        Ok(text) => parse_list(&text),
        Err(e) => Err(format!("cannot read: {e}")),
    };
    let list = match list {
        Ok(l) => l,
        Err(e) => {
            println!("compat: {list_name}: {e}");
            println!("compat: 0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    let filter = std::env::var("BPFTAP_COMPAT_FILTER").ok();
    let list: Vec<_> = list.into_iter().filter(|(p, _)| filter.as_ref().is_none_or(|f| p.contains(f))).collect();
    let (mut passed, mut failed) = (0, 0);
    if !Path::new(EXAMPLES).is_dir() {
        let why = format!("{EXAMPLES} is missing (Debian's systemtap-doc)");
        for (path, _) in &list {
            println!("SKIP {path}: {why}");
        }
        if ci {
            println!("compat: under CI=true the test command installs systemtap-doc, so this is a failure");
            println!("compat: 0 passed, 1 failed, {} skipped", list.len());
            std::process::exit(1);
        }
        println!("compat: 0 passed, 0 failed, {} skipped", list.len());
        return;
    }
    let bin = std::env::var_os("BPFTAP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bpftap")));
    let stap_dir = std::env::temp_dir().join(format!("bpftap-compat-{}", std::process::id()));
    std::fs::create_dir_all(&stap_dir).expect("temporary directory");
    let stap = stap_dir.join("stap");
    let _ = std::fs::remove_file(&stap);
    std::os::unix::fs::symlink(std::fs::canonicalize(&bin).unwrap_or(bin), &stap).expect("stap link");

    let mut installcheck_passes = 0;
    for (path, expect) in &list {
        let script = Path::new(EXAMPLES).join(path);
        let (command, outcome) = match installcheck(&script) {
            Some(command) => {
                let outcome = run_check(&command, script.parent().unwrap_or(Path::new(EXAMPLES)), &stap_dir);
                (command, outcome)
            }
            None => {
                let why = "no test_installcheck line in its .meta".to_string();
                (String::new(), Outcome { passed: false, first_error: why, took: Duration::ZERO })
            }
        };
        installcheck_passes += outcome.passed as usize;
        let secs = outcome.took.as_secs_f64();
        match (expect, outcome.passed) {
            (Expect::Pass, true) => {
                println!("PASS {path} ({secs:.1}s)");
                passed += 1;
            }
            (Expect::Fail(reason), false) => {
                println!("PASS {path}: fails as expected: {reason} [{}]", outcome.first_error);
                passed += 1;
            }
            (Expect::Pass, false) => {
                println!("FAIL {path}: `{command}`: {}", outcome.first_error);
                failed += 1;
            }
            (Expect::Fail(reason), true) => {
                println!("FAIL {path}: passes now, though listed as failing ({reason}): mark it `pass`");
                failed += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&stap_dir);
    println!("compat: SystemTap's install checks ({list_name}): {installcheck_passes} of {} pass", list.len());
    println!("compat: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
