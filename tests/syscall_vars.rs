//! `bpftap -L 'syscall.*'` against SystemTap's own tapset: each syscall below must have at
//! least the variables SystemTap's `syscall.NAME` sets, as its tapset file
//! (`/usr/share/systemtap/tapset/linux/sysc_NAME.stp`, package systemtap-common) assigns
//! them in its `_SYSCALL_NAME_REGARGS` macro, plus `name` and `argstr`.
//!
//! Without that package the test says SKIP, and fails under `CI=true`, where the install
//! scripts provide it. Needs root and tracefs like the end-to-end cases.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const STAP_TAPSET: &str = "/usr/share/systemtap/tapset/linux";

/// The syscalls the systemtap-doc examples probe, then common others.
const SYSCALLS: &[&str] = &[
    "futex",
    "write",
    "read",
    "open",
    "execve",
    "close",
    "nanosleep",
    "io_submit",
    "exit",
    "ptrace",
    "writev",
    "wait4",
    "sendto",
    "sendmsg",
    "recvmsg",
    "recvfrom",
    "recv",
    "send",
    "readv",
    "openat",
    "kill",
    "ioctl",
    "clock_nanosleep",
    "epoll_wait",
    "vmsplice",
    "socket",
    "connect",
    "clone",
    "accept4",
    "accept",
    "poll",
    "select",
    "rt_sigtimedwait",
    "fork",
    "exit_group",
    "pread",
    "pwrite",
    "lseek",
    "stat",
    "lstat",
    "access",
    "faccessat",
    "unlink",
    "unlinkat",
    "rename",
    "mkdir",
    "rmdir",
    "chdir",
    "chmod",
    "dup",
    "dup2",
    "dup3",
    "bind",
    "listen",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "fcntl",
    "munmap",
    "mprotect",
    "brk",
    "madvise",
    "tgkill",
    "waitid",
    "statx",
    "splice",
    "sendfile",
    "epoll_ctl",
    "readlink",
    "rt_sigaction",
    "creat",
    "getdents",
];

/// Variables SystemTap's alias sets, from its tapset file; `None` when the file or macro is
/// missing (a syscall this kernel's stap does not describe that way).
fn stap_variables(name: &str) -> Option<BTreeSet<String>> {
    let text = std::fs::read_to_string(format!("{STAP_TAPSET}/sysc_{name}.stp")).ok()?;
    let start = format!("@define _SYSCALL_{}_REGARGS\n", name.to_uppercase());
    let body = &text[text.find(&start)? + start.len()..];
    let body = &body[..body.find("\n%)")?];
    let mut vars: BTreeSet<String> = body
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once('=')?;
            let var = left.trim();
            let assigns = !right.starts_with('=') && !var.is_empty();
            let plain = var.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            (assigns && plain && !var.starts_with("__")).then(|| var.to_string())
        })
        .collect();
    vars.extend(["name".to_string(), "argstr".to_string()]);
    Some(vars)
}

/// `-L` output: each point's variables, without the `$field`s.
fn listed(output: &str) -> BTreeMap<String, BTreeSet<String>> {
    output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let point = words.next()?.to_string();
            let vars = words.filter(|w| !w.starts_with('$')).filter_map(|w| w.split(':').next()).map(String::from);
            Some((point, vars.collect()))
        })
        .collect()
}

#[test]
fn syscall_variables_match_systemtap() {
    if !Path::new(STAP_TAPSET).is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{STAP_TAPSET} is missing: the install scripts install systemtap-common"
        );
        eprintln!("SKIP: {STAP_TAPSET} is missing (install systemtap-common)");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_bpftap")).args(["-L", "syscall.*"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = listed(&String::from_utf8_lossy(&out.stdout));
    let mut compared = 0;
    let mut problems = Vec::new();
    for name in SYSCALLS {
        let Some(want) = stap_variables(name) else { continue };
        compared += 1;
        let Some(have) = listed.get(&format!("syscall.{name}")) else {
            problems.push(format!("syscall.{name} is not listed"));
            continue;
        };
        let missing: Vec<_> = want.difference(have).collect();
        if !missing.is_empty() {
            problems.push(format!("syscall.{name} lacks {missing:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 50, "only {compared} syscalls have a REGARGS macro in SystemTap's tapset");
}
