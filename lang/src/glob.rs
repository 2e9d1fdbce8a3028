//! The one glob matcher: shell-style `*`, `?` and `{a,b}` alternation, used for probe-point
//! patterns, tracepoint and function names, and the preprocessor's `kernel_vr == "6.1*"`;
//! and the one matcher of a point pattern's components, `**` included.
//!
//! A pattern is parsed once into a [`Glob`]: its `{a,b}` groups expanded into at most
//! [`MAX_ALTERNATIVES`] patterns of `*` and `?` only, nested at most [`MAX_BRACE_DEPTH`] deep
//! (a deeper or larger pattern is a [`GlobError`], which elaboration reports with the probe
//! point's span). Parsing takes time linear in the pattern times its depth, and matching one
//! name time linear in `alternatives × pattern × name` at worst (one backtrack point, the
//! last `*`), never exponential: `kernel.function("*")` checks tens of thousands of names, so
//! the callers that match many names build the `Glob` once, and a pattern typed by a user
//! must not be able to hang bpftap.

use std::fmt;

/// Alternations may expand to at most this many patterns.
pub const MAX_ALTERNATIVES: usize = 4096;

/// `{` groups may nest at most this deep.
pub const MAX_BRACE_DEPTH: usize = 32;

/// A pattern bpftap refuses to expand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlobError {
    /// `{` groups nested deeper than [`MAX_BRACE_DEPTH`].
    TooDeep,
    /// The groups expand to more than [`MAX_ALTERNATIVES`] patterns.
    TooManyAlternatives,
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlobError::TooDeep => write!(f, "`{{` groups nest more than {MAX_BRACE_DEPTH} deep"),
            GlobError::TooManyAlternatives => {
                write!(f, "`{{a,b}}` groups expand to more than {MAX_ALTERNATIVES} patterns")
            }
        }
    }
}

/// A parsed pattern, to match many names against.
#[derive(Clone, Debug)]
pub struct Glob {
    /// The pattern with its groups expanded: `*` and `?` only.
    alternatives: Vec<Vec<u8>>,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let bytes = pattern.as_bytes();
        let partner = brace_partners(bytes);
        let alternatives = expand_sequence(bytes, 0..bytes.len(), &partner, 0)?;
        Ok(Glob { alternatives })
    }

    pub fn matches(&self, text: &str) -> bool {
        self.alternatives.iter().any(|p| match_simple(p, text.as_bytes()))
    }
}

/// Whether `text` matches `pattern`; a pattern [`Glob::new`] refuses matches nothing. For one
/// name: to match many, build the [`Glob`] once.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains('{') {
        return match_simple(pattern.as_bytes(), text.as_bytes());
    }
    Glob::new(pattern).is_ok_and(|g| g.matches(text))
}

/// Whether a probe-point pattern names a point, component by component: a pattern component
/// `**` (without argument) stands for any number of point components, none included; every
/// other one must pass `component_matches` with exactly one. Time linear in the product of
/// the two lengths (one pass of a table, however many `**` the pattern has), never
/// exponential.
pub fn components_match<P, T>(
    pattern: &[P],
    point: &[T],
    spans_any: impl Fn(&P) -> bool,
    component_matches: impl Fn(&P, &T) -> bool,
) -> bool {
    // rest[j]: pattern[i..] matches point[j..], for the `i` of the last row computed (from
    // the end of the pattern backwards).
    let mut rest: Vec<bool> = (0..=point.len()).map(|j| j == point.len()).collect();
    for p in pattern.iter().rev() {
        let mut row = vec![false; point.len() + 1];
        for j in (0..=point.len()).rev() {
            row[j] = if spans_any(p) {
                rest[j] || (j < point.len() && row[j + 1])
            } else {
                j < point.len() && rest[j + 1] && component_matches(p, &point[j])
            };
        }
        rest = row;
    }
    rest[0]
}

/// Whether the text has glob characters at all.
pub fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '{'])
}

/// `*` and `?` only, by the greedy algorithm with one backtrack point.
fn match_simple(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// For each `{`, the index of its matching `}`, as a shell pairs them; a `{` or `}` without
/// a partner is an ordinary character.
fn brace_partners(p: &[u8]) -> Vec<Option<usize>> {
    let mut partner = vec![None; p.len()];
    let mut open = Vec::new();
    for (i, &c) in p.iter().enumerate() {
        match c {
            b'{' => open.push(i),
            b'}' => {
                if let Some(o) = open.pop() {
                    partner[o] = Some(i);
                }
            }
            _ => {}
        }
    }
    partner
}

/// `a{b,c}d{e,f}` → `abde`, `abdf`, `acde`, `acdf` (nested groups too), for the part
/// `range` of the pattern, at group depth `depth`.
fn expand_sequence(
    p: &[u8],
    range: std::ops::Range<usize>,
    partner: &[Option<usize>],
    depth: usize,
) -> Result<Vec<Vec<u8>>, GlobError> {
    let mut out = vec![Vec::new()];
    let mut i = range.start;
    while i < range.end {
        let Some(close) = partner[i] else {
            // A run of ordinary characters, up to the next group.
            let end = (i + 1..range.end).find(|&j| partner[j].is_some()).unwrap_or(range.end);
            out.iter_mut().for_each(|o| o.extend_from_slice(&p[i..end]));
            i = end;
            continue;
        };
        if depth == MAX_BRACE_DEPTH {
            return Err(GlobError::TooDeep);
        }
        let mut group = Vec::new();
        for alt in split_alternatives(p, i + 1..close, partner) {
            group.extend(expand_sequence(p, alt, partner, depth + 1)?);
            if group.len() > MAX_ALTERNATIVES {
                return Err(GlobError::TooManyAlternatives);
            }
        }
        if out.len().saturating_mul(group.len()) > MAX_ALTERNATIVES {
            return Err(GlobError::TooManyAlternatives);
        }
        out = out.iter().flat_map(|head| group.iter().map(move |g| [head.as_slice(), g].concat())).collect();
        i = close + 1;
    }
    Ok(out)
}

/// The comma-separated alternatives of a group's body `range` (commas in nested groups
/// excepted).
fn split_alternatives(
    p: &[u8],
    range: std::ops::Range<usize>,
    partner: &[Option<usize>],
) -> Vec<std::ops::Range<usize>> {
    let (mut out, mut start, mut i) = (Vec::new(), range.start, range.start);
    while i < range.end {
        match (p[i], partner[i]) {
            (_, Some(close)) => i = close,
            (b',', None) => {
                out.push(start..i);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(start..range.end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points_match(pattern: &str, point: &str) -> bool {
        let p: Vec<&str> = pattern.split('.').collect();
        let t: Vec<&str> = point.split('.').collect();
        components_match(&p, &t, |c| *c == "**", |c, n| glob_match(c, n))
    }

    #[test]
    fn components_with_double_star() {
        assert!(points_match("syscall.*", "syscall.open"));
        assert!(!points_match("syscall.*", "syscall.open.return"));
        assert!(points_match("syscall.**", "syscall.open.return"));
        assert!(points_match("**.return", "syscall.open.return"));
        assert!(points_match("syscall.**.return", "syscall.return"));
        assert!(!points_match("**.call", "syscall.open.return"));
        assert!(points_match("**", ""));
    }

    #[test]
    fn many_double_stars_take_linear_time() {
        // Backtracking over every split would try more placements than atoms in the sun.
        let pattern = vec!["**"; 2000].join(".") + ".x";
        assert!(!points_match(&pattern, "a.b.c.d.e.f.g.h"));
        assert!(points_match(&pattern, "a.b.c.d.e.f.g.x"));
    }

    #[test]
    fn matches_like_a_shell() {
        for (p, t, want) in [
            ("sys_*", "sys_enter_connect", true),
            ("{connect,accept}", "accept", true),
            ("conn?", "connect", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*_read", "vfs_read", true),
            ("?fs_*", "vfs_read", true),
            ("syscall.{open,close}*", "syscall.openat", true),
            ("x{a,{b,c}}y", "xcy", true),
            ("x{a,{b,c}}y", "xdy", false),
            ("{", "{", true),
            ("6.1*", "6.18.0", true),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn pathological_patterns_finish_at_once() {
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(200));
        // With exponential backtracking this test would not finish.
        assert!(!glob_match(&pattern, &text));
        let braces = "{a,b}".repeat(30);
        assert!(!glob_match(&braces, "c"));
        assert_eq!(Glob::new(&braces).unwrap_err(), GlobError::TooManyAlternatives);
    }

    #[test]
    fn nesting_is_bounded_and_parsed_in_linear_time() {
        // 400 levels took 11 s to expand once per tracepoint name (issue 14's fuzzing).
        let deep = |n| format!("sys_ente{}{}r_close", "{".repeat(n), "}".repeat(n));
        assert_eq!(Glob::new(&deep(400)).unwrap_err(), GlobError::TooDeep);
        assert_eq!(Glob::new(&deep(100_000)).unwrap_err(), GlobError::TooDeep);
        let glob = Glob::new(&deep(MAX_BRACE_DEPTH)).unwrap();
        assert!(glob.matches("sys_enter_close"));
        assert!(!glob.matches("sys_enter_open"));
        // Unpaired braces are ordinary characters, as in a shell.
        assert!(glob_match("{x{a,b}", "{xb"));
        assert!(glob_match("a}{b,c}", "a}c"));
        assert!(glob_match("{a,}z", "z"));
    }
}
