//! The invariants of ARCHITECTURE.md that are about the code itself (which crate may depend
//! on what, where I/O and `unsafe` may be), checked against the sources: a change that breaks
//! one fails here, not in review.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root().join(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file reads");
                out.push((path, text));
            }
        }
    }
    assert!(!out.is_empty(), "no sources under {dir}");
    out
}

/// The code of a source line: what precedes a `//` comment, string literals kept.
fn code(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with("//") {
        ""
    } else {
        line
    }
}

/// Lines of `dir`'s sources whose code contains any of `needles`, as `path:line: text`.
fn lines_with(dir: &str, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in sources(dir) {
        for (i, line) in text.lines().enumerate() {
            if needles.iter().any(|n| code(line).contains(n)) {
                let rel = path.strip_prefix(root()).unwrap_or(&path).display().to_string();
                found.push(format!("{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    found
}

/// The names in the `[dependencies]` table of a crate's manifest.
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(manifest)).expect("the manifest reads");
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            names.push(name.to_string());
        }
    }
    names
}

#[test]
fn lang_depends_on_nothing_of_bpf_or_the_kernel() {
    let deps = dependencies(Path::new("lang/Cargo.toml"));
    for banned in ["codegen-bpf", "runtime", "libc", "btf-rs", "aya", "aya-obj", "object"] {
        assert!(!deps.iter().any(|d| d == banned), "lang depends on {banned}: {deps:?}");
    }
}

#[test]
fn lang_reads_no_kernel_interface() {
    let found = lines_with("lang/src", &["\"/sys/", "\"/proc/", "std::fs::", "libc::"]);
    assert!(found.is_empty(), "lang reads the kernel itself (it must ask KernelInfo):\n{}", found.join("\n"));
}

#[test]
fn codegen_does_no_io() {
    let deps = dependencies(Path::new("codegen-bpf/Cargo.toml"));
    for banned in ["libc", "runtime", "btf-rs"] {
        assert!(!deps.iter().any(|d| d == banned), "codegen-bpf depends on {banned}: {deps:?}");
    }
    let found = lines_with(
        "codegen-bpf/src",
        &["std::fs", "std::process", "std::net", "std::env::var", "std::io::stdin", "File::open", "libc::"],
    );
    assert!(found.is_empty(), "codegen-bpf does I/O:\n{}", found.join("\n"));
}

#[test]
fn compiling_ignores_the_machine_bpftap_was_built_on() {
    // The machine compiled for is `Program::arch`, from the kernel's uname.
    let mut found = lines_with("codegen-bpf/src", &["target_arch", "std::env::consts"]);
    found.extend(lines_with("lang/src", &["target_arch", "std::env::consts"]));
    assert!(found.is_empty(), "compiling depends on the build machine:\n{}", found.join("\n"));
}

#[test]
fn runtime_never_sees_the_ast() {
    let found = lines_with("runtime/src", &["lang::ast", "lang::parse", "lang::elaborate", "lang::lower"]);
    assert!(found.is_empty(), "the runtime reaches into the front end:\n{}", found.join("\n"));
}

#[test]
fn the_runtime_writes_nothing_to_stderr_itself() {
    let found = lines_with("runtime/src", &["eprint!", "eprintln!", "std::io::stderr", "io::stderr()"]);
    assert!(found.is_empty(), "the runtime writes to stderr (it reports through `Messages`):\n{}", found.join("\n"));
}

#[test]
fn the_binary_walks_no_btf() {
    let found = lines_with("src", &["btf_rs"]);
    assert!(found.is_empty(), "the binary reads BTF itself (it asks the runtime's KernelInfo):\n{}", found.join("\n"));
}

#[test]
fn only_the_runtime_calls_the_kernel() {
    for manifest in ["lang/Cargo.toml", "codegen-bpf/Cargo.toml", "Cargo.toml"] {
        let deps = dependencies(Path::new(manifest));
        assert!(!deps.iter().any(|d| d == "libc"), "{manifest} depends on libc");
    }
    let found = lines_with("src", &["libc::", "syscall("]);
    assert!(found.is_empty(), "the binary calls the kernel itself:\n{}", found.join("\n"));
}

#[test]
fn unsafe_code_is_in_the_runtime_with_its_reason() {
    let outside =
        ["lang/src", "codegen-bpf/src", "src"].iter().flat_map(|d| lines_with(d, &["unsafe "])).collect::<Vec<_>>();
    assert!(outside.is_empty(), "unsafe code outside the runtime:\n{}", outside.join("\n"));
    let mut unexplained = Vec::new();
    for (path, text) in sources("runtime/src") {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !code(line).contains("unsafe {") && !code(line).contains("unsafe impl") {
                continue;
            }
            // The reason is in a `SAFETY:` comment above, within the statement's few lines.
            let above = &lines[i.saturating_sub(6)..i];
            if !above.iter().chain([line]).any(|l| l.contains("SAFETY:")) {
                unexplained.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(unexplained.is_empty(), "unsafe without a SAFETY: comment:\n{}", unexplained.join("\n"));
}
