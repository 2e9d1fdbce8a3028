//! `.bo` objects are untrusted input: every truncation and every bit flip of a real object
//! (written by the real binary with `-p4 -m`) is refused with a clear error, and damage
//! behind a valid checksum (resealed with `bo::seal`) never panics either.
//!
//! Compiling reads the running kernel's tracefs and BTF, which needs root: without it the
//! test prints SKIP and passes, except under `CI=true`, which runs as root.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::Command;

use codegen_bpf::bo::{self, BoError};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A script touching every part of the body: globals of both types, arrays and a statistic,
/// a regex, formats, user-space handlers (begin, timer, end) and two kernel probes.
const SCRIPT: &str = r#"
global count, names[64], seen, greeting = "hi", wanted = 3
probe begin { printf("%s %d\n", greeting, wanted) }
probe syscall.connect { if (dport == wanted) { count++; names[execname()] = pid(); seen <<< dport } }
probe kernel.trace("syscalls:sys_enter_getppid") { if (execname() =~ "^py(thon)?") names["py"]++ }
probe kernel.trace("sched:sched_process_fork") { if ($child_pid == wanted) count++ }
probe timer.ms(500) { foreach (n in names) printf("%s=%d\n", n, names[n]) }
probe end { if (@count(seen)) print(@hist_log(seen)); printf("%d\n", count) }
"#;

/// The object `bpftap -p4 -m` writes for [`SCRIPT`], or why it cannot be made here; made
/// once for all the tests of this file.
fn real_object() -> Result<Vec<u8>, String> {
    static OBJECT: std::sync::OnceLock<Result<Vec<u8>, String>> = std::sync::OnceLock::new();
    OBJECT.get_or_init(compile_object).clone()
}

fn compile_object() -> Result<Vec<u8>, String> {
    if effective_uid() != 0 {
        return Err("compiling reads tracefs and BTF, which needs root".into());
    }
    let dir = std::env::temp_dir().join(format!("bpftap-bo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let script = dir.join("t.stp");
    std::fs::write(&script, SCRIPT).map_err(|e| e.to_string())?;
    let object: PathBuf = dir.join("t.bo");
    let out = Command::new(env!("CARGO_BIN_EXE_bpftap"))
        .arg("-p4")
        .arg("-m")
        .arg(dir.join("t"))
        .arg(&script)
        .output()
        .map_err(|e| e.to_string())?;
    assert!(out.status.success(), "bpftap -p4 -m failed: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&object).map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// The effective uid, from /proc (no libc call in this test).
fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap_or("");
    uids.split_whitespace().nth(1).and_then(|u| u.parse().ok()).unwrap_or(u32::MAX)
}

/// Reads `bytes`, turning a panic into a failure that names the case.
fn read(bytes: &[u8], case: &str) -> Result<bo::BoObject, BoError> {
    panic::catch_unwind(AssertUnwindSafe(|| bo::read(bytes, VERSION)))
        .unwrap_or_else(|_| panic!("reading the object panicked ({case})"))
}

fn assert_refused(bytes: &[u8], case: &str) {
    match read(bytes, case) {
        Ok(_) => panic!("a damaged object was accepted ({case})"),
        Err(e) => assert!(!e.to_string().is_empty(), "empty error ({case})"),
    }
}

#[test]
fn damaged_objects_are_refused_without_panic() {
    let bytes = match real_object() {
        Ok(b) => b,
        Err(reason) => {
            skip("damaged_objects_are_refused_without_panic", &reason);
            return;
        }
    };
    let mut object = read(&bytes, "intact").expect("the intact object reads");
    assert_eq!(object.compiled.kernel_probes.len(), 3);
    // The fork probe reads `child_pid` from the tracepoint record: a fact of this kernel that
    // the object records, and that holds here. (The syscall probes read a syscall record's
    // fixed layout from raw_syscalls' arguments, which is no fact of a kernel.)
    let reads_child_pid = object.compiled_for.facts.iter().any(|f| {
        matches!(f, codegen_bpf::kernel_facts::KernelFact::TracepointField { event, field, .. } if event == "sched_process_fork" && field == "child_pid")
    });
    assert!(reads_child_pid, "{:?}", object.compiled_for.facts);
    assert_eq!(object.fit_kernel(&runtime::kernel_info::LiveKernel::new()), Ok(()));

    for len in 0..bytes.len() {
        assert_refused(&bytes[..len], &format!("truncated to {len} bytes"));
    }
    for at in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 1 << (at % 8);
        assert_refused(&damaged, &format!("bit {} of byte {at} flipped", at % 8));
    }
    let mut truncated_section = bytes.clone();
    truncated_section.extend_from_slice(b"trailing bytes");
    assert_refused(&truncated_section, "bytes appended");
}

#[test]
fn damage_behind_a_valid_checksum_never_panics() {
    let bytes = match real_object() {
        Ok(b) => b,
        Err(reason) => {
            skip("damage_behind_a_valid_checksum_never_panics", &reason);
            return;
        }
    };
    // A flip may still make a valid object (a different constant, a letter of the source
    // text), but never a panic. Every fifth byte: each read compiles the regexes again.
    let (mut refused, mut accepted) = (0, 0);
    for at in (0..bytes.len()).step_by(5) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 1 << (at % 8);
        bo::seal(&mut damaged);
        match read(&damaged, &format!("bit {} of byte {at} flipped and resealed", at % 8)) {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
        }
    }
    println!("resealed bit flips: {refused} refused, {accepted} still valid objects");
}

#[test]
fn another_version_is_refused_naming_both() {
    let bytes = match real_object() {
        Ok(b) => b,
        Err(reason) => {
            skip("another_version_is_refused_naming_both", &reason);
            return;
        }
    };
    let magic = bytes.windows(bo::MAGIC.len()).position(|w| w == bo::MAGIC).expect("the section's magic");
    let version_at = magic + 18;
    assert_eq!(&bytes[version_at..version_at + VERSION.len()], VERSION.as_bytes());
    let mut older = bytes.clone();
    older[version_at..version_at + VERSION.len()].fill(b'9');
    bo::seal(&mut older);
    let other = "9".repeat(VERSION.len());
    let message = read(&older, "other version").expect_err("another version is refused").to_string();
    assert!(message.contains(&format!("bpftap {other} ")), "{message}");
    assert!(message.contains(&format!("bpftap {VERSION} ")), "{message}");
}

/// A test that cannot run here says why and passes; under `CI=true`, whose machine has what
/// these tests need (root, tracefs, BTF, the kernel's config), that is a failure.
fn skip(test: &str, why: &str) {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{test}: {why}, and CI provides it");
    eprintln!("SKIP {test}: {why}");
}
