//! Tapset selection: which top-level items of the tapsets a script needs, so that only those
//! go through the grammar. Parsing every built-in tapset took most of a small script's compile
//! time, and compile time should grow with the script, not with the tapsets it does not use.
//!
//! Input: the parsed script with its [`Items`], and each tapset's [`Items`] (lexed and
//! preprocessed whole, so every tapset macro is defined as before). Output: one
//! [`ast::Script`] per tapset holding the items needed, in file order, and the diagnostics of
//! parsing them.
//!
//! An item is needed when the script or a needed item names what it defines:
//! - a function or global, by an identifier with its name. Any identifier token counts, so a
//!   local sharing a tapset function's name selects that function too: more than needed,
//!   never less;
//! - an alias, by a probe point of the script, of a needed alias or of a needed tapset probe
//!   that matches one of its names as elaboration matches them (wildcards included);
//! - the functions elaboration calls itself ([`GENERATED_CALLS`]).
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
use crate::elaborate::{point_matches, Glob};
use crate::lexer::{SpannedToken, Token};
use crate::parse::Items;
use crate::preprocess::PreprocessEnv;

/// Tapset functions that elaboration calls in the bodies it generates (the `syscall.NAME`
/// family).
// IMPORTANT: keep in sync with the calls `elaborate.rs` builds.
pub const GENERATED_CALLS: &[&str] = &["syscall_name", "_syscall_retstr", "_syscall_raw_argstr", "_user_string_quoted"];

/// A tapset file to select from.
pub struct Tapset {
    pub items: Items,
    /// Parse every item, needed or not: files from `-I`, whose syntax errors must show even
    /// when the script uses nothing from them. The built-in tapsets parse cleanly (see
    /// `lang/tests/corpus.rs`). Only the needed items go on, as for any tapset: SystemTap
    /// elaborates just what a script uses, so an unused function of a `-I` file (embedded C,
    /// or one whose types nothing fixes) is no error.
    pub whole: bool,
}

/// The items of `tapsets` that `script` needs, parsed; see the module doc.
pub fn select(
    script: &ast::Script,
    script_items: &[&Items],
    tapsets: &[Tapset],
    env: &PreprocessEnv,
) -> (Vec<ast::Script>, Vec<Diagnostic>) {
    let mut cx = Ctx::new(tapsets, env);
    for items in script_items {
        for i in 0..items.len() {
            cx.name_all(items.tokens(i));
        }
    }
    cx.names.extend(GENERATED_CALLS.iter().map(|n| n.to_string()));
    for item in &script.items {
        let points = match item {
            Item::Probe(p) => &p.points,
            Item::Alias(a) => &a.points,
            _ => continue,
        };
        cx.points.extend(points.iter().map(|p| p.components.clone()));
    }
    for (f, t) in tapsets.iter().enumerate() {
        if t.whole {
            for i in 0..t.items.len() {
                cx.parsed(f, i);
            }
        }
    }
    cx.run();
    // A tapset file's own probes (`probe begin { ... }` initialising its globals) come with
    // the file, as in SystemTap: once anything it defines is used.
    loop {
        let probes: Vec<(usize, usize)> = (0..tapsets.len())
            .filter(|&f| cx.referenced[f])
            .flat_map(|f| (0..tapsets[f].items.len()).map(move |i| (f, i)))
            .filter(|&(f, i)| !cx.needed[f][i] && is_plain_probe(tapsets[f].items.tokens(i)))
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
pub fn all(tapsets: &[Tapset], env: &PreprocessEnv) -> (Vec<ast::Script>, Vec<Diagnostic>) {
    let mut cx = Ctx::new(tapsets, env);
    for (f, t) in tapsets.iter().enumerate() {
        cx.referenced[f] = true;
        for i in 0..t.items.len() {
            cx.need(f, i);
        }
    }
    cx.finish()
}

/// What a top-level item defines, read from its first tokens.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Function,
    Global,
    /// Keyed by the first component of each name.
    Alias,
}

struct Ctx<'a> {
    tapsets: &'a [Tapset],
    env: &'a PreprocessEnv<'a>,
    /// Definitions by name: (file, item, kind).
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

impl<'a> Ctx<'a> {
    fn new(tapsets: &'a [Tapset], env: &'a PreprocessEnv<'a>) -> Ctx<'a> {
        let mut defs: HashMap<String, Vec<(usize, usize, Kind)>> = HashMap::new();
        for (f, t) in tapsets.iter().enumerate() {
            for i in 0..t.items.len() {
                for (name, kind) in definitions(t.items.tokens(i)) {
                    defs.entry(name).or_default().push((f, i, kind));
                }
            }
        }
        Ctx {
            tapsets,
            env,
            defs,
            parsed: tapsets.iter().map(|t| vec![None; t.items.len()]).collect(),
            needed: tapsets.iter().map(|t| vec![false; t.items.len()]).collect(),
            referenced: vec![false; tapsets.len()],
            diags: Vec::new(),
            names: Vec::new(),
            seen: HashSet::new(),
            points: Vec::new(),
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
                        let tapsets = self.tapsets;
                        let items = &tapsets[f].items;
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
        let Some(first) = point.first() else { return };
        // Elaboration reports a pattern `Glob` refuses.
        let Ok(first_glob) = Glob::new(&first.name) else { return };
        let tapsets = self.tapsets;
        let candidates: Vec<(usize, usize)> = self
            .defs
            .iter()
            .filter(|(name, _)| first_glob.matches(name))
            .flat_map(|(_, defs)| defs.iter().filter(|d| d.2 == Kind::Alias).map(|d| (d.0, d.1)))
            // Names read from the tokens rule most candidates out without parsing them (the
            // syscall table alone has a hundred `syscall.*` aliases).
            .filter(|&(f, i)| match plain_alias_names(tapsets[f].items.tokens(i)) {
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
            let parsed = self.tapsets[f].items.parse(i, self.env, &mut self.diags);
            self.parsed[f][i] = Some(parsed);
        }
        self.parsed[f][i].as_deref().unwrap_or_default()
    }

    fn need(&mut self, f: usize, i: usize) {
        if self.needed[f][i] {
            return;
        }
        self.needed[f][i] = true;
        let tapsets = self.tapsets;
        self.name_all(tapsets[f].items.tokens(i));
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

    /// Every identifier in `tokens` may name a function or a global.
    fn name_all(&mut self, tokens: &[SpannedToken]) {
        for (t, _) in tokens {
            if let Token::Ident(n) = t {
                if !self.seen.contains(n) {
                    self.names.push(n.clone());
                }
            }
        }
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
        let (items, _) = prepare(&sources, t, &env, &mut macros);
        let (script_items, _) = prepare(&sources, s, &env, &mut macros);
        let (ast, _) = parse(&sources, s, &env, &mut macros);
        let (selected, diags) = select(&ast, &[&script_items], &[Tapset { items, whole: false }], &env);
        assert!(diags.is_empty());
        let names: Vec<String> = selected[0]
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
        expect.assert_eq(&names.join(" "));
    }

    #[test]
    fn selects_what_the_script_names() {
        check("probe begin { exit() }", expect![""]);
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
