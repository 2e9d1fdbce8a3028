//! Warnings about the user's own script, as SystemTap gives them at pass 2: a local variable
//! assigned and never read, a global nothing uses. Both are usually typos (`cout` for
//! `count`). Runs on the elaborated script; only names the user wrote are reported, never a
//! tapset's nor those elaboration writes for an alias (`name` of `syscall.*`). The driver
//! shows them unless `-w`, and `-W` makes them errors.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::ast::{AssignOp, Block, Expr, ExprKind, FunctionBody};
use crate::diag::Diagnostic;
use crate::elaborate::{walk_exprs, Elaborated};
use crate::span::Span;

/// The warnings of `script`; `written` tells whether the user wrote a name at a place (its
/// file is theirs and the text there is the name).
pub fn unused_variables(script: &Elaborated, written: impl Fn(&str, Span) -> bool) -> Vec<Diagnostic> {
    let globals: BTreeSet<&str> = script.globals.iter().map(|g| g.name.as_str()).collect();
    let mut used_globals = BTreeSet::new();
    // By place: a probe on several points is elaborated once each, with one body.
    let mut warnings = BTreeMap::new();
    let bodies = script.probes.iter().map(|p| &p.body).chain(script.functions.values().filter_map(|f| match &f.body {
        FunctionBody::Script(b) => Some(b),
        FunctionBody::EmbeddedC(_) => None,
    }));
    for body in bodies {
        let uses = Uses::of(body);
        used_globals.extend(uses.read.iter().chain(uses.assigned.keys()).copied().filter(|n| globals.contains(n)));
        for (name, span) in &uses.assigned {
            if !globals.contains(name) && !uses.read.contains(name) && written(name, *span) {
                let d = Diagnostic::warning("W0301", format!("variable `{name}` is assigned but never read"), *span)
                    .with_label("its value goes nowhere")
                    .with_help("use it, remove it, or check its spelling against the variables read");
                warnings.insert((span.file, span.start, span.end), d);
            }
        }
    }
    for g in &script.globals {
        if !g.tapset && !used_globals.contains(g.name.as_str()) && written(&g.name, g.span) {
            let d = Diagnostic::warning("W0302", format!("global `{}` is never used", g.name), g.span)
                .with_label("declared here only");
            warnings.insert((g.span.file, g.span.start, g.span.end), d);
        }
    }
    warnings.into_values().collect()
}

/// The names a body assigns with `=` (where first, in the order of the walk) and those it
/// reads or changes in any other way.
struct Uses<'a> {
    assigned: BTreeMap<&'a str, Span>,
    read: HashSet<&'a str>,
}

impl<'a> Uses<'a> {
    fn of(body: &'a Block) -> Uses<'a> {
        let mut targets: HashSet<*const Expr> = HashSet::new();
        let mut assigned = BTreeMap::new();
        walk_exprs(body, &mut |e| {
            if let ExprKind::Assign { op: AssignOp::Assign, target, .. } = &e.kind {
                if let ExprKind::Ident(name) = &target.kind {
                    targets.insert(&**target as *const Expr);
                    assigned.entry(name.as_str()).or_insert(target.span);
                }
            }
        });
        let mut read = HashSet::new();
        walk_exprs(body, &mut |e| {
            if let ExprKind::Ident(name) = &e.kind {
                if !targets.contains(&(e as *const Expr)) {
                    read.insert(name.as_str());
                }
            }
        });
        Uses { assigned, read }
    }
}
