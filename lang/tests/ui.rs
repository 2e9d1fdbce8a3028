//! Diagnostics as data: each `ui/*.stp` starts with a comment line stating the outcome,
//! `# expect: ok` or `# expect: error CODE at LINE:COL`, and is run through parse,
//! elaboration (against a small fixture kernel), type checking and lowering.

use std::path::Path;

use lang::elaborate::{self, Input};
use lang::kernel::{Fixture, FunctionSig, TracepointField, TracepointFormat};
use lang::preprocess::{Macros, PreprocessEnv};
use lang::span::{SourceKind, SourceMap};

fn kernel() -> Fixture {
    let field = |name: &str, c_type: &str, offset, size| TracepointField {
        name: name.into(),
        c_type: c_type.into(),
        offset,
        size,
        signed: true,
    };
    let mut k = Fixture::default();
    let mut add = |group: &str, event: &str, fields| {
        let format = TracepointFormat { group: group.into(), event: event.into(), common_fields: vec![], fields };
        k.tracepoints.insert((group.into(), event.into()), format);
    };
    add("syscalls", "sys_enter_close", vec![field("__syscall_nr", "int", 8, 4), field("fd", "unsigned int", 16, 8)]);
    // sched_switch: record fields, and C arguments named by its probe stub.
    add("sched", "sched_switch", vec![field("prev_pid", "pid_t", 24, 4), field("next_pid", "pid_t", 56, 4)]);
    let params = ["__data", "preempt", "prev", "next"].map(|p| (p.to_string(), 0));
    let stub = FunctionSig { name: "__probestub_sched_switch".into(), params: params.to_vec(), ret: 0 };
    k.functions.insert(stub.name.clone(), stub);
    k
}

/// The first error's code and position, or "ok".
fn outcome(text: &str) -> String {
    let mut sources = SourceMap::default();
    let file = sources.add("ui.stp", text, SourceKind::Script);
    let (script, mut diags) = lang::parse::parse(&sources, file, &PreprocessEnv::default(), &mut Macros::default());
    let kernel = kernel();
    if diags.is_empty() {
        let (elaborated, d) = elaborate::elaborate(&Input { script: &script, tapsets: &[] }, &kernel);
        diags = d;
        if diags.is_empty() {
            let (types, d) = lang::types::check(&elaborated, &Default::default());
            diags = d;
            if diags.is_empty() {
                diags = lang::lower::lower(&elaborated, &types, &kernel, &Default::default()).1;
            }
        }
    }
    match diags.first() {
        None => "ok".to_string(),
        Some(d) => {
            let (line, col) = sources.line_col(d.span);
            format!("error {} at {line}:{col}", d.code)
        }
    }
}

#[test]
fn ui_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut paths: Vec<_> = std::fs::read_dir(&dir).expect("tests/ui").flatten().map(|e| e.path()).collect();
    paths.sort();
    let mut failures = Vec::new();
    for path in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "stp")) {
        let text = std::fs::read_to_string(path).expect("read");
        let want = text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).expect("a `# expect:` first line");
        let got = outcome(&text);
        if got != want {
            failures.push(format!("{}: expected `{want}`, got `{got}`", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
