//! Golden tests of generated code: each `tests/golden/NAME.stp` is compiled against a small
//! fixture kernel and its `-p4` listing compared with `tests/golden/NAME.expected`.
//! Run with `BPFTAP_BLESS=1` to rewrite the expectations, then review the diff: a change in
//! instruction count shows up in review.

use std::path::Path;

use lang::elaborate::{self, Input};
use lang::kernel::{Fixture, FunctionSig, TracepointField, TracepointFormat};
use lang::preprocess::{Macros, PreprocessEnv};
use lang::span::{SourceKind, SourceMap};

fn fixture() -> Fixture {
    let field = |name: &str, c_type: &str, offset, size, signed| TracepointField {
        name: name.into(),
        c_type: c_type.into(),
        offset,
        size,
        signed,
    };
    let common = vec![field("common_pid", "int", 4, 4, true)];
    let mut k = Fixture::default();
    let mut add = |event: &str, fields: Vec<TracepointField>| {
        let format =
            TracepointFormat { group: "syscalls".into(), event: event.into(), common_fields: common.clone(), fields };
        k.tracepoints.insert(("syscalls".into(), event.into()), format);
    };
    add("sys_enter_getppid", vec![field("__syscall_nr", "int", 8, 4, true)]);
    add("sys_enter_close", vec![field("__syscall_nr", "int", 8, 4, true), field("fd", "unsigned int", 16, 8, false)]);
    // A tracepoint whose C arguments BTF names (in its probe stub): `$next` makes a raw
    // tracepoint program reading the third argument.
    let format = TracepointFormat {
        group: "sched".into(),
        event: "sched_switch".into(),
        common_fields: common,
        fields: vec![field("next_pid", "pid_t", 56, 4, true)],
    };
    k.tracepoints.insert(("sched".into(), "sched_switch".into()), format);
    let params = ["__data", "preempt", "prev", "next"].map(|p| (p.to_string(), 0));
    let stub = FunctionSig { name: "__probestub_sched_switch".into(), params: params.to_vec(), ret: 0 };
    k.functions.insert(stub.name.clone(), stub);
    k
}

/// A script's listing against the fixture kernel; one that says `// kernel: bpf_iter_num`
/// gets a kernel with the numeric iterator (Linux 6.4+), which kernel loops count with.
fn listing(text: &str) -> String {
    let mut kernel = fixture();
    if text.contains("// kernel: bpf_iter_num") {
        let ids = [("bpf_iter_num_new", 101), ("bpf_iter_num_next", 102), ("bpf_iter_num_destroy", 103)];
        kernel.kfuncs = ids.into_iter().map(|(name, id)| (name.to_string(), id)).collect();
    }
    listing_for(kernel, text)
}

fn listing_for(kernel: Fixture, text: &str) -> String {
    let mut sources = SourceMap::default();
    let file = sources.add("golden.stp", text, SourceKind::Script);
    let (script, diags) = lang::parse::parse(&sources, file, &PreprocessEnv::default(), &mut Macros::default());
    assert!(diags.is_empty(), "parse: {diags:?}");
    let (elaborated, diags) = elaborate::elaborate(&Input { script: &script, tapsets: &[] }, &kernel);
    assert!(diags.is_empty(), "elaborate: {diags:?}");
    let (types, diags) = lang::types::check(&elaborated, &Default::default());
    assert!(diags.is_empty(), "types: {diags:?}");
    let (program, diags) = lang::lower::lower(&elaborated, &types, &kernel, &Default::default());
    assert!(diags.is_empty(), "lower: {diags:?}");
    assert!(lang::ir::verify(&program).is_empty());
    let compiled = codegen_bpf::compile::compile(program).expect("codegen");
    compiled.listing(&sources)
}

/// The machine compiled for is the kernel's, whatever bpftap was built on: `addr()` reads the
/// instruction pointer where that machine's `struct pt_regs` keeps it.
#[test]
fn pt_regs_offsets_are_the_kernels_machines() {
    let script = "probe timer.profile { printf(\"%x\\n\", addr()) }";
    let ip_load = |machine: &str| {
        let kernel = Fixture { machine: Some(machine.into()), ..fixture() };
        let text = listing_for(kernel, script);
        text.lines().find(|l| l.contains("= *(u64 *)(r6 +")).map(|l| l.split("(r6 +").nth(1).unwrap().to_string())
    };
    assert_eq!(ip_load("x86_64").as_deref(), Some("128)"));
    assert_eq!(ip_load("aarch64").as_deref(), Some("256)"));
}

#[test]
fn golden_listings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("BPFTAP_BLESS").is_some();
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "stp"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty(), "no golden scripts");
    let mut failures = Vec::new();
    for script in scripts {
        let text = std::fs::read_to_string(&script).expect("read script");
        let got = listing(&text);
        let expected_path = script.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).expect("write expectation");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!("{}:\n--- expected\n{expected}\n--- got\n{got}", script.display()));
        }
    }
    assert!(failures.is_empty(), "golden listings differ (BPFTAP_BLESS=1 rewrites them):\n{}", failures.join("\n"));
}
