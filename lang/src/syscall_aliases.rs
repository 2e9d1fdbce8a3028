//! The `syscall.NAME` aliases with SystemTap's variables, written as script source from a
//! compact table (`tapsets/syscalls.table`: one syscall a line, its variables in terms of the
//! tracepoint record's fields, and the `argstr` format).
//!
//! Input: the table's text. Output: tapset source with, for each line, `syscall.NAME` and
//! `nd_syscall.NAME` on `syscalls:sys_enter_*` and their `.return`s on `sys_exit_*`. The
//! output goes through the parser and tapset selection like any tapset, so a script pays
//! only for the syscalls it names. Syscalls missing from the table keep the generated
//! family in `elaborate` (fields as variables, a generic `argstr`).

use std::fmt::Write as _;

/// A line of the table that does not follow its grammar.
#[derive(Debug, PartialEq)]
pub struct TableError {
    pub line: usize,
    pub message: String,
}

/// One line: the alias's name, its tracepoint's syscall, its variables and its argstr.
#[derive(Debug, PartialEq)]
pub struct SyscallEntry {
    pub name: String,
    pub tracepoint: String,
    /// Variable name and the script expression giving its value, in order.
    pub vars: Vec<(String, String)>,
    pub argstr_format: String,
    pub argstr_args: Vec<String>,
}

/// The table's entries, in order.
pub fn parse_table(text: &str) -> Result<Vec<SyscallEntry>, TableError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String| TableError { line: i + 1, message };
        let (head, argstr) =
            line.split_once(" | ").or_else(|| line.split_once("| ")).ok_or_else(|| err("no `|`".into()))?;
        let mut words = head.split_whitespace();
        let first = words.next().ok_or_else(|| err("no syscall name".into()))?;
        let (name, tracepoint) = first.split_once('@').unwrap_or((first, first));
        let mut vars = Vec::new();
        for word in words {
            vars.extend(variable(word).map_err(err)?);
        }
        let argstr = argstr.trim();
        let rest = argstr.strip_prefix('"').ok_or_else(|| err("the argstr format is not quoted".into()))?;
        let close = rest.find('"').ok_or_else(|| err("the argstr format is not closed".into()))?;
        let argstr_format = rest[..close].to_string();
        let argstr_args: Vec<String> = rest[close + 1..].split_whitespace().map(String::from).collect();
        let wanted = argstr_format.matches('%').count() - 2 * argstr_format.matches("%%").count();
        if wanted != argstr_args.len() {
            return Err(err(format!("the argstr format takes {wanted} values, not {}", argstr_args.len())));
        }
        out.push(SyscallEntry {
            name: name.to_string(),
            tracepoint: tracepoint.to_string(),
            vars,
            argstr_format,
            argstr_args,
        });
    }
    Ok(out)
}

/// `name[:kind][=value]` as the variables it sets (a string sets two).
fn variable(word: &str) -> Result<Vec<(String, String)>, String> {
    let (left, value) = match word.split_once('=') {
        Some((l, v)) => (l, Some(v)),
        None => (word, None),
    };
    let (name, kind) = match left.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (left, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{word}` does not start with a variable name"));
    }
    let value = match value {
        None => format!("${name}"),
        Some(v) if v.contains('(') => v.to_string(),
        Some(field) => format!("${field}"),
    };
    Ok(match kind {
        None => vec![(name.to_string(), value)],
        Some("i") => vec![(name.to_string(), format!("__int32({value})"))],
        Some("u") => vec![(name.to_string(), format!("__uint32({value})"))],
        Some("s") => vec![
            (name.to_string(), format!("_user_string_quoted({value})")),
            (format!("{name}_unquoted"), format!("user_string({value})")),
        ],
        Some(k) => return Err(format!("unknown kind `{k}` in `{word}`")),
    })
}

/// The aliases of every entry, as tapset source.
pub fn tapset_source(entries: &[SyscallEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        let (name, tp) = (&e.name, &e.tracepoint);
        let _ =
            writeln!(out, "probe syscall.{name}, nd_syscall.{name} = kernel.trace(\"syscalls:sys_enter_{tp}\")\n{{");
        let _ = writeln!(out, "\tname = \"{name}\"");
        for (var, value) in &e.vars {
            let _ = writeln!(out, "\t{var} = {value}");
        }
        if e.argstr_args.is_empty() {
            let _ = writeln!(out, "\targstr = \"{}\"", e.argstr_format);
        } else {
            let _ = writeln!(out, "\targstr = sprintf(\"{}\", {})", e.argstr_format, e.argstr_args.join(", "));
        }
        let _ = writeln!(out, "}}");
        let _ = writeln!(
            out,
            "probe syscall.{name}.return, nd_syscall.{name}.return = kernel.trace(\"syscalls:sys_exit_{tp}\")\n{{"
        );
        let _ = writeln!(out, "\tname = \"{name}\"\n\tretval = $ret\n\tretstr = _syscall_retstr(retval)\n}}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_aliases() {
        let entries = parse_table(
            "# comment\nwait4 pid:i=upid status_uaddr=stat_addr opt=_f(pid) | \"%d, %p, %s\" pid status_uaddr opt\n",
        )
        .unwrap();
        expect_test::expect![[r#"
            probe syscall.wait4, nd_syscall.wait4 = kernel.trace("syscalls:sys_enter_wait4")
            {
            	name = "wait4"
            	pid = __int32($upid)
            	status_uaddr = $stat_addr
            	opt = _f(pid)
            	argstr = sprintf("%d, %p, %s", pid, status_uaddr, opt)
            }
            probe syscall.wait4.return, nd_syscall.wait4.return = kernel.trace("syscalls:sys_exit_wait4")
            {
            	name = "wait4"
            	retval = $ret
            	retstr = _syscall_retstr(retval)
            }
        "#]]
        .assert_eq(&tapset_source(&entries));
    }

    #[test]
    fn other_tracepoints_strings_and_no_arguments() {
        let source = tapset_source(&parse_table("send@sendto path:s | \"%s\" path\nfork | \"\"\n").unwrap());
        for line in [
            "probe syscall.send, nd_syscall.send = kernel.trace(\"syscalls:sys_enter_sendto\")",
            "\tpath = _user_string_quoted($path)",
            "\tpath_unquoted = user_string($path)",
            "probe syscall.fork.return, nd_syscall.fork.return = kernel.trace(\"syscalls:sys_exit_fork\")",
            "\targstr = \"\"",
        ] {
            assert!(source.lines().any(|l| l == line), "{line:?} missing from:\n{source}");
        }
    }

    #[test]
    fn the_table_is_well_formed() {
        let entries = parse_table(include_str!("../../tapsets/syscalls.table")).unwrap();
        assert!(entries.len() >= 80, "{} entries", entries.len());
    }

    #[test]
    fn rejects_bad_lines() {
        let e = parse_table("read fd | \"%d, %d\" fd\n").unwrap_err();
        assert_eq!(e, TableError { line: 1, message: "the argstr format takes 2 values, not 1".into() });
        assert!(parse_table("read fd:x | \"%d\" fd\n").is_err());
        assert!(parse_table("read fd\n").is_err());
    }
}
