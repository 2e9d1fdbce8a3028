//! The one glob matcher: shell-style `*`, `?` and `{a,b}` alternation, used for probe-point
//! patterns, tracepoint and function names, and the preprocessor's `kernel_vr == "6.1*"`.
//!
//! Matching takes time linear in `pattern × text` at worst (one backtrack point, the last
//! `*`), never exponential: `kernel.function("*")` checks tens of thousands of names, and a
//! pattern typed by a user must not be able to hang bpftap.

/// Alternations expand to at most this many patterns; the rest are not tried.
const MAX_ALTERNATIVES: usize = 4096;

/// Whether `text` matches `pattern`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains('{') {
        return match_simple(pattern.as_bytes(), text.as_bytes());
    }
    expand_braces(pattern).iter().any(|p| match_simple(p.as_bytes(), text.as_bytes()))
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

/// `a{b,c}d{e,f}` → `abde`, `abdf`, `acde`, `acdf` (nested groups too). An unclosed `{` is
/// an ordinary character.
fn expand_braces(pattern: &str) -> Vec<String> {
    let Some((open, close)) = outer_group(pattern) else {
        return vec![pattern.to_string()];
    };
    let (head, body, tail) = (&pattern[..open], &pattern[open + 1..close], &pattern[close + 1..]);
    let tails = expand_braces(tail);
    let mut out = Vec::new();
    for alt in split_top_level(body) {
        for mid in expand_braces(alt) {
            for t in &tails {
                if out.len() == MAX_ALTERNATIVES {
                    return out;
                }
                out.push(format!("{head}{mid}{t}"));
            }
        }
    }
    out
}

/// The first `{` and its matching `}`.
fn outer_group(s: &str) -> Option<(usize, usize)> {
    let open = s.find('{')?;
    let mut depth = 0;
    for (i, c) in s.char_indices().skip_while(|&(i, _)| i < open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some((open, i));
                }
            }
            _ => {}
        }
    }
    None
}

/// `a,{b,c},d` → `a`, `{b,c}`, `d`.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
