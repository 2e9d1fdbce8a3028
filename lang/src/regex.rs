//! Regular expressions of `=~` and `!~`: SystemTap's syntax (POSIX extended regular
//! expressions, bytes in the C locale, an unanchored search unless `^`/`$` anchor it),
//! compiled once, at compile time, into the two forms the two sides of a script need.
//!
//! - [`DfaTable`]: a flat transition table that a kernel probe walks one byte at a time
//!   (`codegen-bpf` puts it in `.rodata`); [`DfaTable::is_match`] is that same walk in Rust.
//! - [`Regex::captures`]: the groups of a match, for `matched(n)` in user-space handlers.
//!
//! Both come from one translation of the POSIX pattern into `regex-automata`'s syntax
//! ([`translate`]), so the kernel and user space agree on what matches.
//!
//! Known difference from SystemTap: the groups follow leftmost-first (Perl) rules rather
//! than POSIX leftmost-longest, so `"a|ab" =~ "ab"` gives `matched(0) == "a"` here. Whether a
//! string matches is the same under both rules.

use std::ops::Range;

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::util::{start, syntax};
use regex_automata::{meta, Anchored, Input};

/// The table state no match can leave: the walk stops, and the string does not match.
pub const DEAD: u16 = 0;
/// The table state that means "matched": the walk stops, and the string matches.
pub const MATCHED: u16 = 1;
/// The most states a kernel table may have (its size is 512 bytes per state).
pub const MAX_STATES: usize = 512;
/// Bytes the DFA construction may use before it gives up. A state takes at most 2 KiB (a
/// 4-byte id for each byte class), so this holds [`MAX_STATES`] states of the widest
/// alphabet before minimization, and many more of a typical pattern's few byte classes.
/// With 64 MiB, `(a|b|c|d|e|f|g|h)*(a|b|c|d|e|f|g|h)*[a-z]{20}x` took 14 s to be refused.
const DETERMINIZE_LIMIT: usize = 1 << 20;

/// Why a pattern cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegexError {
    #[error("invalid regular expression: {0}")]
    Syntax(String),
    #[error("the regular expression needs more DFA states than the {MAX_STATES} a kernel probe allows")]
    TooManyStates,
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub struct Regex {
    /// The pattern as the script wrote it.
    pub source: String,
    /// The kernel's table; too many states is an error only where a kernel probe uses it.
    pub table: Result<DfaTable, RegexError>,
    matcher: meta::Regex,
}

/// A DFA as a table of `u16` states, 256 entries per state, indexed by `state * 256 + byte`.
/// The entry for byte 0 is the end of the string (strings never hold a NUL), so a walk
/// reads the terminating NUL like any byte. [`DEAD`] and [`MATCHED`] end the walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DfaTable {
    pub start: u16,
    pub next: Vec<u16>,
}

impl DfaTable {
    pub fn states(&self) -> usize {
        self.next.len() / 256
    }

    /// The walk a kernel probe does, over at most `limit` bytes of `text` (the string
    /// capacity); a text without a NUL within `limit` ends at `limit`.
    pub fn is_match(&self, text: &[u8], limit: usize) -> bool {
        let mut state = self.start;
        for i in 0..limit {
            let byte = text.get(i).copied().unwrap_or(0);
            state = self.next[state as usize * 256 + byte as usize];
            if state <= MATCHED {
                return state == MATCHED;
            }
        }
        self.next[state as usize * 256] == MATCHED
    }

    /// The table as `.rodata` holds it: little-endian `u16`s.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.next.iter().flat_map(|s| s.to_le_bytes()).collect()
    }
}

impl Regex {
    /// The number of groups, the whole match (group 0) included.
    pub fn groups(&self) -> usize {
        self.matcher.captures_len()
    }

    /// The byte ranges of every group of the leftmost match in `text`, `None` for a group
    /// that took no part in it; `None` when nothing matches.
    pub fn captures(&self, text: &[u8]) -> Option<Vec<Option<Range<usize>>>> {
        let mut caps = self.matcher.create_captures();
        self.matcher.captures(Input::new(text), &mut caps);
        caps.is_match().then(|| (0..self.groups()).map(|g| caps.get_group(g).map(|s| s.range())).collect())
    }
}

/// A serialized pattern is its source: reading it compiles it again, so the kernel's table
/// and the matcher come from the same code as at compile time.
#[cfg(feature = "serde")]
impl serde::Serialize for Regex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Regex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Regex, D::Error> {
        let source = <String as serde::Deserialize>::deserialize(d)?;
        compile(&source).map_err(serde::de::Error::custom)
    }
}

fn syntax_config() -> syntax::Config {
    // Bytes, not UTF-8 characters, as in the C locale; `.` matches a newline, as in POSIX.
    syntax::Config::new().unicode(false).utf8(false).dot_matches_new_line(true)
}

pub fn compile(pattern: &str) -> Result<Regex, RegexError> {
    let translated = translate(pattern)?;
    // regex-automata's messages quote the translated pattern over several lines; keep the
    // line that says what is wrong.
    let syntax_error = |e: &dyn std::fmt::Display| {
        let text = e.to_string();
        let reason = text.lines().rev().find_map(|l| l.trim().strip_prefix("error: ")).unwrap_or(&text);
        RegexError::Syntax(reason.to_string())
    };
    let matcher = meta::Builder::new()
        .configure(meta::Config::new().utf8_empty(false))
        .syntax(syntax_config())
        .build(&translated)
        .map_err(|e| syntax_error(&e))?;
    let table = dense::Builder::new()
        .configure(
            dense::Config::new()
                .start_kind(StartKind::Unanchored)
                .minimize(true)
                .accelerate(false)
                // The pattern parsed above, so the only way to fail is this limit.
                .determinize_size_limit(Some(DETERMINIZE_LIMIT)),
        )
        .syntax(syntax_config())
        .thompson(thompson::Config::new().utf8(false))
        .build(&translated)
        .map_err(|_| RegexError::TooManyStates)
        .and_then(|dfa| table_of(&dfa));
    Ok(Regex { source: pattern.to_string(), table, matcher })
}

/// Numbers the states reachable from the start (after [`DEAD`] and [`MATCHED`]) and
/// fills their rows. regex-automata reports a match one byte late (a match state is
/// entered on the byte after the match, or at the end of input), so entering a match
/// state is "matched", and the end-of-input transition is the row's NUL column.
fn table_of(dfa: &dense::DFA<Vec<u32>>) -> Result<DfaTable, RegexError> {
    use regex_automata::util::primitives::StateID;
    let start_config = start::Config::new().anchored(Anchored::No);
    let start = dfa.start_state(&start_config).map_err(|_| RegexError::TooManyStates)?;
    let mut ids: Vec<StateID> = vec![start];
    let mut index = std::collections::HashMap::from([(start, 2u16)]);
    let mut next = vec![DEAD; 2 * 256];
    // Both sinks go to themselves, so a walk that does not stop stays where it ended.
    next[MATCHED as usize * 256..].fill(MATCHED);
    let mut i = 0;
    while i < ids.len() {
        let id = ids[i];
        let mut row = [DEAD; 256];
        for (byte, entry) in row.iter_mut().enumerate() {
            let to = if byte == 0 { dfa.next_eoi_state(id) } else { dfa.next_state(id, byte as u8) };
            *entry = if dfa.is_match_state(to) {
                MATCHED
            } else if dfa.is_dead_state(to) || dfa.is_quit_state(to) || byte == 0 {
                DEAD
            } else {
                let fresh = index.len() as u16 + 2;
                *index.entry(to).or_insert_with(|| {
                    ids.push(to);
                    fresh
                })
            };
        }
        next.extend_from_slice(&row);
        i += 1;
        if ids.len() + 2 > MAX_STATES {
            return Err(RegexError::TooManyStates);
        }
    }
    Ok(DfaTable { start: 2, next })
}

/// POSIX ERE to regex-automata syntax. The two agree outside bracket expressions, except
/// that bytes outside ASCII are written as escapes; inside brackets POSIX takes `\` and
/// most punctuation literally, so a bracket expression is rewritten byte by byte.
pub fn translate(pattern: &str) -> Result<String, RegexError> {
    let bytes = pattern.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let Some(&c) = bytes.get(i + 1) else {
                    return Err(RegexError::Syntax("trailing backslash".to_string()));
                };
                if c.is_ascii_alphanumeric() {
                    // `\d`, `\w`, `\n`...; backreferences (`\1`) are refused by the parser.
                    out.push('\\');
                    out.push(c as char);
                } else {
                    push_byte(&mut out, c);
                }
                i += 2;
            }
            b'[' => i = bracket(bytes, i + 1, &mut out)?,
            c if c.is_ascii() => {
                out.push(c as char);
                i += 1;
            }
            c => {
                push_byte(&mut out, c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A literal byte, escaped so no syntax can take it for anything else.
fn push_byte(out: &mut String, b: u8) {
    if b.is_ascii_alphanumeric() {
        out.push(b as char);
    } else {
        out.push_str(&format!("\\x{b:02X}"));
    }
}

const CLASSES: &[&str] =
    &["alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper", "xdigit"];

/// The bracket expression whose body starts at `i` (after `[`); returns the index after `]`.
fn bracket(bytes: &[u8], mut i: usize, out: &mut String) -> Result<usize, RegexError> {
    let unterminated = || RegexError::Syntax("unterminated bracket expression `[`".to_string());
    out.push('[');
    if bytes.get(i) == Some(&b'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let &b = bytes.get(i).ok_or_else(unterminated)?;
        if b == b']' && !first {
            out.push(']');
            return Ok(i + 1);
        }
        first = false;
        if b == b'[' && matches!(bytes.get(i + 1), Some(b':' | b'=' | b'.')) {
            let kind = bytes[i + 1];
            let body = i + 2;
            let end = (body..bytes.len().saturating_sub(1))
                .find(|&k| bytes[k] == kind && bytes[k + 1] == b']')
                .ok_or_else(unterminated)?;
            let name = String::from_utf8_lossy(&bytes[body..end]).into_owned();
            if kind != b':' {
                return Err(RegexError::Syntax(format!(
                    "collating elements and equivalence classes (`[{}{name}{}]`) are not supported",
                    kind as char, kind as char
                )));
            }
            if !CLASSES.contains(&name.as_str()) {
                return Err(RegexError::Syntax(format!("unknown character class `[:{name}:]`")));
            }
            out.push_str(&format!("[:{name}:]"));
            i = end + 2;
            continue;
        }
        push_byte(out, b);
        // `a-z` is a range unless the `-` ends the expression.
        if bytes.get(i + 1) == Some(&b'-') && bytes.get(i + 2).is_some_and(|&e| e != b']') {
            let e = bytes[i + 2];
            if e < b {
                return Err(RegexError::Syntax(format!(
                    "invalid range `{}-{}` in a bracket expression",
                    b as char, e as char
                )));
            }
            out.push('-');
            push_byte(out, e);
            i += 3;
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        let re = compile(pattern).unwrap();
        let walked = re.table.as_ref().unwrap().is_match(text.as_bytes(), 128);
        assert_eq!(walked, re.captures(text.as_bytes()).is_some(), "{pattern:?} on {text:?}");
        walked
    }

    #[test]
    fn posix_semantics() {
        assert!(matches("^pyth.*3$", "python3"));
        assert!(!matches("^pyth.*3$", "python3.1"));
        assert!(matches("AF_INET*", "AF_INET6"));
        assert!(matches("(\\.tar\\.(gz|bz2|xz)|\\.zip|\\.tgz|\\.tbz)$", "/tmp/a.tar.gz"));
        assert!(!matches("(\\.tar\\.(gz|bz2|xz)|\\.zip|\\.tgz|\\.tbz)$", "/tmp/a.tar.gz.txt"));
        assert!(matches("[\\]", "a\\b"), "a backslash in brackets is literal");
        assert!(matches("[]a]", "]"));
        assert!(matches("[^]a]", "b"));
        assert!(matches("[[:digit:]]+x", "12x"));
        assert!(matches("[a-]", "-"));
        assert!(matches("a.b", "a\nb"));
        assert!(matches("", ""));
        assert!(matches("x*", ""));
        assert!(!matches("^$", "a"));
        assert!(matches("[&&]", "&"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for bad in ["(", "[a", "a\\", "[[:nope:]]", "[z-a]", "\\1", "[[.a.]]", "a{2"] {
            let e = compile(bad).unwrap_err();
            assert!(matches!(&e, RegexError::Syntax(m) if !m.contains('\n')), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_table_too_large_is_refused_but_user_space_still_matches() {
        let re = compile("(a|b)*a(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)").unwrap();
        assert_eq!(re.table, Err(RegexError::TooManyStates));
        assert!(re.captures(b"aaaaaaaaaaa").is_some());
        // Issue 14 (no input hangs bpftap): this one took 14 s of a release build (minutes of
        // a debug one) to be refused; seconds now even in a debug build on a busy machine.
        let started = std::time::Instant::now();
        let re = compile("(a|b|c|d|e|f|g|h)*(a|b|c|d|e|f|g|h)*[a-z]{20}x").unwrap();
        assert_eq!(re.table, Err(RegexError::TooManyStates));
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
    }

    #[test]
    fn a_table_near_the_state_limit_still_builds() {
        // The 8th byte from the end is an `a`: 2^8 states.
        let re = compile("(a|b)*a(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)").unwrap();
        let states = re.table.as_ref().expect("fits in MAX_STATES").states();
        assert!(states > 256 && states <= MAX_STATES, "{states} states");
    }

    #[test]
    fn groups() {
        let re = compile("(a+)(b)?c|(z)").unwrap();
        assert_eq!(re.groups(), 4);
        assert_eq!(re.captures(b"xaac"), Some(vec![Some(1..4), Some(1..3), None, None]));
        assert_eq!(re.captures(b"q"), None);
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Gen(u64);

    impl Gen {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        /// A pattern whose syntax POSIX ERE and the `regex` crate read the same way.
        fn pattern(&mut self, depth: u32) -> String {
            let atom = match self.below(if depth == 0 { 6 } else { 9 }) {
                0 => "a".to_string(),
                1 => "b".to_string(),
                2 => ".".to_string(),
                3 => "[ab]".to_string(),
                4 => "[^a]".to_string(),
                5 => "[[:digit:]c-d]".to_string(),
                6 => format!("({})", self.pattern(depth - 1)),
                7 => format!("{}|{}", self.pattern(depth - 1), self.pattern(depth - 1)),
                _ => format!("{}{}", self.pattern(depth - 1), self.pattern(depth - 1)),
            };
            let suffix = ["", "", "*", "+", "?", "{1,2}"][self.below(6) as usize];
            let quantified = if suffix.is_empty() || atom.len() == 1 || atom.starts_with('(') || atom.starts_with('[') {
                format!("{atom}{suffix}")
            } else {
                format!("({atom}){suffix}")
            };
            match self.below(8) {
                0 => format!("^{quantified}"),
                1 => format!("{quantified}$"),
                _ => quantified,
            }
        }

        fn text(&mut self) -> String {
            (0..self.below(9)).map(|_| ['a', 'b', 'c', '1', '\n'][self.below(5) as usize]).collect()
        }
    }

    /// The kernel's table walk and the user-space groups against the `regex` crate, on
    /// generated patterns and strings.
    #[test]
    fn agrees_with_the_regex_crate() {
        let mut g = Gen(0x5eed_1234_abcd_ef01);
        let mut outcomes = [0; 2];
        for _ in 0..400 {
            let pattern = g.pattern(3);
            let ours = compile(&pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
            let reference = ::regex::bytes::Regex::new(&format!("(?s-u){pattern}")).unwrap();
            for _ in 0..12 {
                let text = g.text();
                let expected = reference.captures(text.as_bytes());
                assert_eq!(
                    ours.table.as_ref().unwrap().is_match(text.as_bytes(), 128),
                    expected.is_some(),
                    "{pattern:?} on {text:?}"
                );
                outcomes[expected.is_some() as usize] += 1;
                let expected = expected.map(|c| c.iter().map(|m| m.map(|m| m.range())).collect::<Vec<_>>());
                assert_eq!(ours.captures(text.as_bytes()), expected, "{pattern:?} on {text:?}");
            }
        }
        assert!(outcomes.iter().all(|&n| n > 500), "both outcomes are exercised: {outcomes:?}");
    }
}
