//! Tapset selection: which top-level items of the tapsets a script needs, so that only those
//! go through the grammar. Parsing every built-in tapset took most of a small script's compile
//! time, and compile time should grow with the script, not with the tapsets it does not use.
//!
//! Input: the parsed script with its [`Items`], and the tapset files. A file is lexed and
//! preprocessed (prepared) only once something it defines may be needed: what it defines is
//! first read from its text ([`Summary`]), since preparing every tapset cost more than
//! compiling a small script. Files defining macros are prepared before the script, which may
//! use them. Output: one [`ast::Script`] per tapset holding the items needed, in file order,
//! and the diagnostics of parsing them.
//!
//! An item is needed when the script or a needed item names what it defines:
//! - a function or global, by an identifier with its name. Any identifier token counts, so a
//!   local sharing a tapset function's name selects that function too: more than needed,
//!   never less;
//! - an alias, by a probe point of the script, of a needed alias or of a needed tapset probe
//!   that matches one of its names as elaboration matches them (wildcards included);
//! - the functions elaboration calls itself ([`GENERATED_CALLS`]) in a syscall probe, once a
//!   point may name one.
//!
//! A needed global also selects every item of its file naming it: its type is inferred from
//! all of them (`__syscall_names_types` gives `__syscall_names` its types).
//!
//! Invariant: every item that elaborating with all tapsets would use is selected. Diagnostics
//! can still differ (a did-you-mean looks at every alias and function), so the driver
//! elaborates again with every tapset (see [`all`]) when elaboration fails.

use std::collections::{HashMap, HashSet};

use crate::ast::{self, Component, Item};
use crate::diag::Diagnostic;
use crate::elaborate::{is_pattern, point_matches, Glob};
use crate::glob::glob_match;
use crate::lexer::{SpannedToken, Token};
use crate::parse::Items;
use crate::preprocess::PreprocessEnv;

/// Tapset functions that elaboration calls in the bodies it generates for syscall probes
/// (`syscall.NAME`, `kernel.trace("syscalls:...")`).
// IMPORTANT: keep in sync with the calls `elaborate.rs` builds.
pub const GENERATED_CALLS: &[&str] = &["syscall_name", "_syscall_retstr", "_syscall_raw_argstr", "_user_string_quoted"];

/// A tapset file to select from.
pub struct Tapset {
    /// Its items once prepared; `None` until something it defines may be needed.
    pub items: Option<Items>,
    /// What it defines, read from its text.
    pub summary: Summary,
    /// Parse every item, needed or not: files from `-I`, whose syntax errors must show even
    /// when the script uses nothing from them. The built-in tapsets parse cleanly (see
    /// `lang/tests/corpus.rs`). Only the needed items go on, as for any tapset: SystemTap
    /// elaborates just what a script uses, so an unused function of a `-I` file (embedded C,
    /// or one whose types nothing fixes) is no error.
    pub whole: bool,
}

/// Lexes and preprocesses tapset file `f` (an index into the `tapsets` given with it).
pub type Prepare<'p> = dyn FnMut(usize) -> (Items, Vec<Diagnostic>) + 'p;

/// The items of `tapsets` that `script` needs, parsed; see the module doc. Files are prepared
/// with `prepare` as needed (`tapsets` keeps them for [`all`]).
pub fn select(
    script: &ast::Script,
    script_items: &[&Items],
    tapsets: &mut [Tapset],
    env: &PreprocessEnv,
    prepare: &mut Prepare,
) -> (Vec<ast::Script>, Vec<Diagnostic>) {
    let mut cx = Ctx::new(tapsets, env, prepare);
    for items in script_items {
        for i in 0..items.len() {
            let names = idents(items.tokens(i));
            cx.name_all(names);
        }
    }
    for item in &script.items {
        let points = match item {
            Item::Probe(p) => &p.points,
            Item::Alias(a) => &a.points,
            _ => continue,
        };
        cx.points.extend(points.iter().map(|p| p.components.clone()));
    }
    for f in 0..cx.tapsets.len() {
        if cx.tapsets[f].whole {
            for i in 0..cx.items(f).len() {
                cx.parsed(f, i);
            }
        }
    }
    cx.run();
    // A tapset file's own probes (`probe begin { ... }` initialising its globals) come with
    // the file, as in SystemTap: once anything it defines is used.
    loop {
        let probes: Vec<(usize, usize)> = (0..cx.tapsets.len())
            .filter(|&f| cx.referenced[f])
            .flat_map(|f| (0..prepared(cx.tapsets, f).len()).map(move |i| (f, i)))
            .filter(|&(f, i)| !cx.needed[f][i] && is_plain_probe(prepared(cx.tapsets, f).tokens(i)))
            .collect();
        if probes.is_empty() {
            break;
        }
        for (f, i) in probes {
            cx.need(f, i);
        }
        cx.run();
    }
    cx.finish()
}

/// Whether an item is a probe rather than an alias: no `=` or `+=` before its body.
fn is_plain_probe(tokens: &[SpannedToken]) -> bool {
    matches!(tokens.first(), Some((Token::Probe, _)))
        && !tokens
            .iter()
            .take_while(|(t, _)| *t != Token::LBrace)
            .any(|(t, _)| matches!(t, Token::Assign | Token::AddAssign))
}

/// Every item of every tapset, parsed.
pub fn all(tapsets: &mut [Tapset], env: &PreprocessEnv, prepare: &mut Prepare) -> (Vec<ast::Script>, Vec<Diagnostic>) {
    let mut cx = Ctx::new(tapsets, env, prepare);
    for f in 0..cx.tapsets.len() {
        cx.referenced[f] = true;
        for i in 0..cx.items(f).len() {
            cx.need(f, i);
        }
    }
    cx.finish()
}

/// What a tapset file defines, read from its text without preparing it: each top-level
/// `function`, `global` and `probe` starting a line, its header running on over lines that
/// end with a comma. This finds every name the prepared file defines, in every branch of its
/// conditionals (a test checks the built-in tapsets), and maybe more: a file found through a
/// name it does not define is prepared for nothing, nothing worse.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Names of functions and globals, and first components of alias names.
    defines: Vec<(String, Kind)>,
    /// The full names of aliases whose names are plain words; a file with an alias of another
    /// kind keeps `None` here and is matched by first components alone.
    alias_names: Option<Vec<Vec<Component>>>,
    /// Whether it defines macros (`@define` starting a line), which the script may use.
    pub defines_macros: bool,
}

impl Summary {
    pub fn of(text: &str) -> Summary {
        let mut summary = Summary { alias_names: Some(Vec::new()), ..Summary::default() };
        let line_starts = std::iter::once(0).chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        for start in line_starts {
            let rest = &text[start..];
            if rest.starts_with("@define") {
                summary.defines_macros = true;
            }
            let Some(keyword) = ["function", "global", "probe", "private"]
                .into_iter()
                .find(|k| rest.strip_prefix(k).is_some_and(|r| r.starts_with([' ', '\t'])))
            else {
                continue;
            };
            let mut end = 0;
            loop {
                end += rest[end..].find('\n').map_or(rest.len() - end, |i| i + 1);
                if end == rest.len() || !rest[..end].trim_end().ends_with(',') {
                    break;
                }
            }
            let header = &rest[..end];
            if keyword == "function" {
                // The common case, without lexing: `function NAME` and what follows.
                let name = header[keyword.len()..].trim_start();
                let len = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(name.len());
                summary.defines.push((name[..len].to_string(), Kind::Function));
                continue;
            }
            let (tokens, _) = crate::lexer::lex(header, crate::span::FileId(0));
            let defined = definitions(&tokens);
            if defined.iter().any(|(_, kind)| *kind == Kind::Alias) {
                match (plain_alias_names(&tokens), &mut summary.alias_names) {
                    (Some(names), Some(all)) => all.extend(names),
                    _ => summary.alias_names = None,
                }
            }
            summary.defines.extend(defined);
        }
        summary
    }

    /// Whether the file may define the function or global `name`.
    pub fn may_define(&self, name: &str) -> bool {
        self.defines.iter().any(|(n, kind)| *kind != Kind::Alias && n == name)
    }

    /// Whether the file may have an alias `point` names.
    pub fn may_alias(&self, point: &[Component]) -> bool {
        let Some(first) = point.first() else { return false };
        // Most points rule most files out by their first component.
        let first_matches =
            |n: &str| if is_pattern(&first.name) { glob_match(&first.name, n) } else { first.name == n };
        if !self.defines.iter().any(|(n, kind)| *kind == Kind::Alias && first_matches(n)) {
            return false;
        }
        match &self.alias_names {
            Some(names) => names.iter().any(|n| point_matches(point, n)),
            None => true,
        }
    }
}

/// What a top-level item defines, read from its first tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Function,
    Global,
    /// Keyed by the first component of each name.
    Alias,
}

struct Ctx<'a, 'p> {
    tapsets: &'a mut [Tapset],
    env: &'a PreprocessEnv<'a>,
    prepare: &'a mut Prepare<'p>,
    /// Definitions by name in the files prepared: (file, item, kind).
    defs: HashMap<String, Vec<(usize, usize, Kind)>>,
    /// The items parsed so far (needed ones, and aliases looked at as candidates).
    parsed: Vec<Vec<Option<Vec<Item>>>>,
    needed: Vec<Vec<bool>>,
    /// Files something needed was found in through a name or a probe point: their own
    /// probes are needed too, and only theirs are kept.
    referenced: Vec<bool>,
    diags: Vec<Diagnostic>,
    /// Names still to look up, and those looked up already.
    names: Vec<String>,
    seen: HashSet<String>,
    /// Probe points still to match against alias names.
    points: Vec<Vec<Component>>,
}

impl<'a, 'p> Ctx<'a, 'p> {
    fn new(tapsets: &'a mut [Tapset], env: &'a PreprocessEnv<'a>, prepare: &'a mut Prepare<'p>) -> Ctx<'a, 'p> {
        let files = tapsets.len();
        let mut cx = Ctx {
            tapsets,
            env,
            prepare,
            defs: HashMap::new(),
            parsed: vec![Vec::new(); files],
            needed: vec![Vec::new(); files],
            referenced: vec![false; files],
            diags: Vec::new(),
            names: Vec::new(),
            seen: HashSet::new(),
            points: Vec::new(),
        };
        for f in 0..files {
            if cx.tapsets[f].items.is_some() {
                cx.register(f);
            }
        }
        cx
    }

    /// The items of file `f`, prepared now if they were not.
    fn items(&mut self, f: usize) -> &Items {
        if self.tapsets[f].items.is_none() {
            let (items, diags) = (self.prepare)(f);
            self.tapsets[f].items = Some(items);
            self.diags.extend(diags);
            self.register(f);
        }
        self.tapsets[f].items.as_ref().expect("prepared above")
    }

    /// Records what the items of prepared file `f` define.
    fn register(&mut self, f: usize) {
        let items = self.tapsets[f].items.as_ref().expect("registered once prepared");
        for i in 0..items.len() {
            for (name, kind) in definitions(items.tokens(i)) {
                self.defs.entry(name).or_default().push((f, i, kind));
            }
        }
        self.parsed[f] = vec![None; items.len()];
        self.needed[f] = vec![false; items.len()];
    }

    /// Prepares the files not prepared yet whose summaries `may` accept.
    fn prepare_where(&mut self, may: impl Fn(&Summary) -> bool) {
        for f in 0..self.tapsets.len() {
            if self.tapsets[f].items.is_none() && may(&self.tapsets[f].summary) {
                self.items(f);
            }
        }
    }

    fn run(&mut self) {
        loop {
            if let Some(point) = self.points.pop() {
                self.match_point(&point);
                continue;
            }
            let Some(name) = self.names.pop() else { break };
            if !self.seen.insert(name.clone()) {
                continue;
            }
            self.prepare_where(|s| s.may_define(&name));
            for (f, i, kind) in self.defs.get(&name).cloned().unwrap_or_default() {
                match kind {
                    // Aliases are found by the probe points naming them.
                    Kind::Alias => {}
                    Kind::Function => {
                        self.referenced[f] = true;
                        self.need(f, i);
                    }
                    Kind::Global => {
                        self.referenced[f] = true;
                        self.need(f, i);
                        let items = self.items(f);
                        let users: Vec<usize> =
                            (0..items.len()).filter(|&j| items.tokens(j).iter().any(|t| is_ident(t, &name))).collect();
                        for j in users {
                            self.need(f, j);
                        }
                    }
                }
            }
        }
    }

    /// Selects the aliases `point` names: candidates by first component, then checked by
    /// their full names as elaboration matches them.
    fn match_point(&mut self, point: &[Component]) {
        if may_trace_syscalls(point) {
            let names = GENERATED_CALLS.iter().map(|n| n.to_string()).collect();
            self.name_all(names);
        }
        let Some(first) = point.first() else { return };
        self.prepare_where(|s| s.may_alias(point));
        let tapsets = &*self.tapsets;
        let defs: Vec<&Vec<(usize, usize, Kind)>> = if is_pattern(&first.name) {
            // Elaboration reports a pattern `Glob` refuses.
            let Ok(first_glob) = Glob::new(&first.name) else { return };
            self.defs.iter().filter(|(name, _)| first_glob.matches(name)).map(|(_, defs)| defs).collect()
        } else {
            self.defs.get(&first.name).into_iter().collect()
        };
        let candidates: Vec<(usize, usize)> = defs
            .into_iter()
            .flat_map(|defs| defs.iter().filter(|d| d.2 == Kind::Alias).map(|d| (d.0, d.1)))
            // Names read from the tokens rule most candidates out without parsing them (the
            // syscall table alone has a hundred `syscall.*` aliases).
            .filter(|&(f, i)| match plain_alias_names(prepared(tapsets, f).tokens(i)) {
                Some(names) => names.iter().any(|n| point_matches(point, n)),
                None => true,
            })
            .collect();
        for (f, i) in candidates {
            let named = self.parsed(f, i).iter().any(|item| match item {
                Item::Alias(a) => a.names.iter().any(|n| point_matches(point, &n.components)),
                _ => false,
            });
            if named {
                self.referenced[f] = true;
                self.need(f, i);
            }
        }
    }

    /// Item `i` of tapset `f`, parsed once.
    fn parsed(&mut self, f: usize, i: usize) -> &[Item] {
        if self.parsed[f][i].is_none() {
            let parsed = prepared(self.tapsets, f).parse(i, self.env, &mut self.diags);
            self.parsed[f][i] = Some(parsed);
        }
        self.parsed[f][i].as_deref().unwrap_or_default()
    }

    fn need(&mut self, f: usize, i: usize) {
        if self.needed[f][i] {
            return;
        }
        self.needed[f][i] = true;
        let names = idents(prepared(self.tapsets, f).tokens(i));
        self.name_all(names);
        let points: Vec<Vec<Component>> = self
            .parsed(f, i)
            .iter()
            .flat_map(|item| match item {
                Item::Alias(a) => a.points.iter().map(|p| p.components.clone()).collect(),
                // A tapset's own probe may sit on another tapset's alias (`process.begin`).
                Item::Probe(p) => p.points.iter().map(|p| p.components.clone()).collect(),
                _ => Vec::new(),
            })
            .collect();
        self.points.extend(points);
    }

    fn name_all(&mut self, names: Vec<String>) {
        self.names.extend(names.into_iter().filter(|n| !self.seen.contains(n)));
    }

    fn finish(self) -> (Vec<ast::Script>, Vec<Diagnostic>) {
        let scripts = self
            .parsed
            .into_iter()
            .zip(self.needed)
            .zip(self.referenced)
            .map(|((items, needed), referenced)| ast::Script {
                items: items
                    .into_iter()
                    .zip(needed)
                    .filter(|(_, n)| *n)
                    .flat_map(|(i, _)| i)
                    .flatten()
                    .filter(|item| referenced || !matches!(item, Item::Probe(_)))
                    .collect(),
            })
            .collect();
        (scripts, self.diags)
    }
}

/// The names of an alias whose names are all plain dotted words (`probe a.b, c.d.return =`),
/// as components; `None` when a name has an argument or anything else, or it is no alias.
fn plain_alias_names(tokens: &[SpannedToken]) -> Option<Vec<Vec<Component>>> {
    let tokens = match tokens.first() {
        Some((Token::Private, _)) => &tokens[1..],
        _ => tokens,
    };
    if !matches!(tokens.first(), Some((Token::Probe, _))) {
        return None;
    }
    let mut names = vec![Vec::new()];
    for (t, span) in &tokens[1..] {
        let word = match t {
            Token::Ident(n) => n.as_str(),
            Token::Return => "return",
            Token::Dot => continue,
            Token::Comma => {
                names.push(Vec::new());
                continue;
            }
            Token::Assign | Token::AddAssign => return Some(names),
            _ => return None,
        };
        names.last_mut()?.push(Component { name: word.to_string(), arg: None, span: *span });
    }
    None
}

/// Whether `point` may be a syscall probe, whose body elaboration writes: a component or a
/// string argument naming syscalls, or a pattern.
fn may_trace_syscalls(point: &[Component]) -> bool {
    let may = |s: &str| s.contains("syscall") || is_pattern(s);
    point.iter().any(|c| may(&c.name) || matches!(&c.arg, Some(ast::Literal::String(s)) if may(s)))
}

/// Every identifier in `tokens`: each may name a function or a global.
fn idents(tokens: &[SpannedToken]) -> Vec<String> {
    tokens
        .iter()
        .filter_map(|(t, _)| match t {
            Token::Ident(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// The items of file `f`, which something found in it has prepared.
fn prepared(tapsets: &[Tapset], f: usize) -> &Items {
    tapsets[f].items.as_ref().expect("a file is prepared before its items are looked at")
}

fn is_ident(t: &SpannedToken, name: &str) -> bool {
    matches!(&t.0, Token::Ident(n) if n == name)
}

/// The names an item defines: `function NAME`, `global A, B[10], C = 1`, and the first
/// components of alias names (`probe A.x, B.y = ...`). A plain probe defines nothing.
fn definitions(tokens: &[SpannedToken]) -> Vec<(String, Kind)> {
    let tokens = match tokens.first() {
        Some((Token::Private, _)) => &tokens[1..],
        _ => tokens,
    };
    let ident = |i: usize| match tokens.get(i) {
        Some((Token::Ident(n), _)) => Some(n.clone()),
        _ => None,
    };
    let mut out = Vec::new();
    match tokens.first().map(|t| &t.0) {
        Some(Token::Function) => out.extend(ident(1).map(|n| (n, Kind::Function))),
        Some(Token::Global) => {
            let mut depth = 0;
            for (i, (t, _)) in tokens.iter().enumerate() {
                match t {
                    Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
                    Token::RParen | Token::RBracket | Token::RBrace => depth -= 1,
                    Token::Global | Token::Comma if depth == 0 => out.extend(ident(i + 1).map(|n| (n, Kind::Global))),
                    _ => {}
                }
            }
        }
        Some(Token::Probe) => {
            let mut depth = 0;
            let mut names = Vec::new();
            for (i, (t, _)) in tokens.iter().enumerate() {
                match t {
                    Token::LParen | Token::LBracket => depth += 1,
                    Token::RParen | Token::RBracket => depth -= 1,
                    Token::Probe | Token::Comma if depth == 0 => names.extend(ident(i + 1)),
                    Token::Assign | Token::AddAssign if depth == 0 => {
                        out.extend(names.drain(..).map(|n| (n, Kind::Alias)));
                        break;
                    }
                    // The body or a predicate: a probe, not an alias.
                    Token::LBrace | Token::Slash => break,
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use expect_test::{expect, Expect};

    use super::*;
    use crate::parse::{parse, prepare};
    use crate::preprocess::Macros;
    use crate::span::{SourceKind, SourceMap};

    const TAPSET: &str = r#"
global counts[10], unrelated
function counts_types() { counts["x"] = 1 }
function bump(k) { counts[k]++ }
function helper() { return 1 }
function uses_helper() { return helper() }
probe fam.a = kernel.trace("sched:sched_switch") { v = uses_helper() }
probe fam.b, other.b = fam.a { }
probe lone = kernel.trace("sched:sched_wakeup") { }
probe lone { unrelated = 1 }
    "#;

    /// The names of the items selected for `script`, in file order.
    fn check(script: &str, expect: Expect) {
        let mut sources = SourceMap::default();
        let t = sources.add("t.stp", TAPSET, SourceKind::Tapset);
        let s = sources.add("s.stp", script, SourceKind::Script);
        let env = PreprocessEnv::default();
        let mut macros = Macros::default();
        let (script_items, _) = prepare(&sources, s, &env, &mut macros);
        let (ast, _) = parse(&sources, s, &env, &mut macros);
        let mut tapsets = [Tapset { items: None, summary: Summary::of(TAPSET), whole: false }];
        let mut prepare = |_| prepare(&sources, t, &env, &mut Macros::default());
        let (selected, diags) = select(&ast, &[&script_items], &mut tapsets, &env, &mut prepare);
        assert!(diags.is_empty());
        let mut names: Vec<String> = selected[0]
            .items
            .iter()
            .map(|item| match item {
                Item::Function(f) => f.name.clone(),
                Item::Global(g) => g.name.clone(),
                Item::Alias(a) => crate::elaborate::point_text(&a.names[0]),
                Item::Probe(_) => "probe".into(),
                Item::EmbeddedC(_) => "%{ %}".into(),
            })
            .collect();
        if tapsets[0].items.is_none() {
            names.push("(not prepared)".into());
        }
        expect.assert_eq(&names.join(" "));
    }

    #[test]
    fn selects_what_the_script_names() {
        check("probe begin { exit() }", expect!["(not prepared)"]);
        check("probe begin { println(unrelated) }", expect!["counts unrelated counts_types bump lone probe"]);
        // The file's own probe comes with anything it defines, and brings what it uses, the alias
        // it sits on included.
        check("probe begin { helper() }", expect!["counts unrelated counts_types bump helper lone probe"]);
        // A global brings every function of its file that names it, for its types.
        check("probe begin { bump(1) }", expect!["counts unrelated counts_types bump lone probe"]);
        // Aliases by their full names, and what their bodies use.
        check("probe fam.a { }", expect!["counts unrelated counts_types bump helper uses_helper fam.a lone probe"]);
        check(
            "probe other.b { }",
            expect!["counts unrelated counts_types bump helper uses_helper fam.a fam.b lone probe"],
        );
        check("probe l* { }", expect!["counts unrelated counts_types bump lone probe"]);
        check(
            "probe **.b { }",
            expect!["counts unrelated counts_types bump helper uses_helper fam.a fam.b lone probe"],
        );
    }
}
