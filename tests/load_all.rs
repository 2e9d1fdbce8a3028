//! The verifier as a contract: every script bpftap compiles also loads.
//!
//! Runs `bpftap -T 0` (compile, load, attach, detach at once) on every script of the project
//! (`examples/`, `tests/e2e/scripts/`, each `PROG` line of `tests/e2e/*.test`) and of Debian's
//! systemtap-doc examples. A script the kernel's verifier rejects fails the run, with
//! bpftap's diagnostic (the script line of the rejected instruction). Scripts that stop
//! before loading (they need arguments, kprobes, DWARF, a construct bpftap lacks) or whose
//! probe cannot attach on this kernel are counted and listed, not failures: the install
//! checks (`tests/compat.rs`) and the end-to-end cases own those outcomes.
//! `fuzz/load-sample/` adds a few inputs the fuzzing campaign grew (`fuzz/load-corpus.sh`
//! loads the whole corpus). `BPFTAP_LOAD_FILTER=text` runs only the scripts whose names
//! contain `text`.
//!
//! One kind of rejection is not a bug of the code bpftap emits but a limit of the verifier:
//! "BPF program is too large", its budget of one million instructions explored, or "the
//! sequence of 8193 jumps is too complex", more branches pending along one walk than it
//! holds, reached by a probe whose loops branch a lot. The scripts known to hit one are
//! listed in [`TOO_COMPLEX`] with the reason; each must still be rejected for exactly that
//! (else the list is stale and the run fails), and any other rejection fails the run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[path = "support/timed.rs"]
mod timed;

const STAP_EXAMPLES: &str = "/usr/share/systemtap/examples";
/// `-T 0` ends a run as soon as it has attached; a run still going after this is a failure.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Scripts whose probes exceed the verifier's complexity budget, and why.
const TOO_COMPLEX: &[(&str, &str)] = &[(
    "stapgames/2048.stp",
    "a key press runs the whole game move in one kernel probe: loops over the 4x4 board, each \
         iteration branching on array lookups, more paths than the verifier explores",
)];

/// What the verifier says when it gives up on a program's size rather than its safety.
const TOO_LARGE: [&str; 2] = ["BPF program is too large", "jumps is too complex"];

enum Source {
    File(PathBuf),
    Text { name: String, text: String },
}

impl Source {
    fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Text { name, .. } => name.clone(),
        }
    }
}

fn stp_files(dir: &Path, out: &mut Vec<Source>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            stp_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "stp") {
            out.push(Source::File(p));
        }
    }
}

/// The one-liners of the end-to-end cases: `PROG script` lines.
fn e2e_progs(dir: &Path, out: &mut Vec<Source>) {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "test"));
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            if let Some(prog) = line.strip_prefix("PROG ") {
                let name = format!("{}:{}", file.display(), n + 1);
                out.push(Source::Text { name, text: prog.to_string() });
            }
        }
    }
}

enum Outcome {
    Loaded,
    Rejected(String),
    NotLoaded(String),
}

fn load(bin: &Path, source: &Source, root: &Path) -> Outcome {
    let mut command = Command::new(bin);
    command.arg("-T").arg("0");
    match source {
        Source::File(p) => {
            command.arg(p);
            if let Some(dir) = p.parent() {
                command.current_dir(dir);
            }
        }
        Source::Text { text, .. } => {
            command.arg("-e").arg(text).current_dir(root);
        }
    }
    let (status, stderr) = match timed::run(command, TIMEOUT) {
        Ok(f) => (f.status, f.stderr),
        Err(e) => return Outcome::Rejected(format!("cannot run {}: {e}", bin.display())),
    };
    match status {
        None => Outcome::Rejected(format!("still running {} s after -T 0", TIMEOUT.as_secs())),
        Some(_) if stderr.contains("verifier rejected") => Outcome::Rejected(stderr),
        Some(s) if s.success() => Outcome::Loaded,
        Some(_) => {
            let first = stderr.lines().map(str::trim).find(|l| l.contains('×') || l.starts_with("bpftap:"));
            Outcome::NotLoaded(first.or_else(|| stderr.lines().next()).unwrap_or("").to_string())
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("load_all: test");
        }
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = std::env::var_os("BPFTAP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bpftap")));
    let bin = std::fs::canonicalize(&bin).unwrap_or(bin);
    let mut sources = Vec::new();
    stp_files(&root.join("examples"), &mut sources);
    stp_files(&root.join("tests/e2e/scripts"), &mut sources);
    stp_files(&root.join("fuzz/load-sample"), &mut sources);
    e2e_progs(&root.join("tests/e2e"), &mut sources);
    let ours = sources.len();
    stp_files(Path::new(STAP_EXAMPLES), &mut sources);
    if sources.len() == ours {
        println!("load_all: {STAP_EXAMPLES} is missing (Debian's systemtap-doc): only the project's scripts run");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            println!("load_all: under CI=true the test command installs systemtap-doc, so this is a failure");
            std::process::exit(1);
        }
    }
    let filter = std::env::var("BPFTAP_LOAD_FILTER").ok();
    sources.retain(|s| filter.as_ref().is_none_or(|f| s.name().contains(f)));
    let (mut loaded, mut rejected, mut not_loaded, mut too_complex) = (0, 0, 0, 0);
    for source in &sources {
        let name = source.name();
        let listed = TOO_COMPLEX.iter().find(|(script, _)| name.ends_with(script));
        match (load(&bin, source, root), listed) {
            (Outcome::Rejected(why), Some((_, reason))) if TOO_LARGE.iter().any(|t| why.contains(t)) => {
                too_complex += 1;
                println!("too complex for the verifier, as listed: {name}: {reason}");
            }
            (outcome, Some(_)) => {
                rejected += 1;
                let what = match outcome {
                    Outcome::Loaded => "it loads now".to_string(),
                    Outcome::Rejected(why) => format!("rejected for another reason:\n{why}"),
                    Outcome::NotLoaded(why) => format!("it stops before loading: {why}"),
                };
                println!("FAIL {name}: listed in TOO_COMPLEX, but {what}");
            }
            (Outcome::Loaded, None) => loaded += 1,
            (Outcome::Rejected(why), None) => {
                rejected += 1;
                println!("FAIL {name}: rejected:\n{why}");
            }
            (Outcome::NotLoaded(why), None) => {
                not_loaded += 1;
                println!("not loaded: {name}: {why}");
            }
        }
    }
    println!(
        "load_all: {} scripts: {loaded} loaded, {rejected} rejected by the verifier, {too_complex} over its \
         complexity budget as listed, {not_loaded} not compiled or attached here",
        sources.len()
    );
    if rejected > 0 {
        std::process::exit(1);
    }
}
