//! What `lower` asks of the elaborated script before it lowers it: the names reachable
//! code mentions and the widths string keys need. (Assignments nothing reads are lowered,
//! and `optimize` removes them, on the IR.)

use super::*;

/// Every identifier in the probes and in the functions they call, transitively.
pub(super) fn names_in_reachable_code(script: &Elaborated) -> HashSet<&str> {
    let mut names: HashSet<&str> = HashSet::new();
    let mut calls: Vec<(&str, usize)> = Vec::new();
    fn visit<'a>(body: &'a Block, names: &mut HashSet<&'a str>, calls: &mut Vec<(&'a str, usize)>) {
        crate::elaborate::walk_exprs(body, &mut |e| match &e.kind {
            ExprKind::Ident(n) => {
                names.insert(n);
            }
            ExprKind::Call { name, args } => calls.push((name, args.len())),
            _ => {}
        });
    }
    for p in &script.probes {
        visit(&p.body, &mut names, &mut calls);
    }
    let mut seen: HashSet<&str> = HashSet::new();
    while let Some((name, argc)) = calls.pop() {
        let Some(f) = script.function(name, argc) else { continue };
        if !seen.insert(&f.name) {
            continue;
        }
        if let ast::FunctionBody::Script(body) = &f.body {
            visit(body, &mut names, &mut calls);
        }
    }
    names
}

/// For each string key of each array (`(array, position)`), the bytes its values can need:
/// the widest of the expressions ever used there. `execname()` needs 16 (the kernel's comm),
/// a literal its length; anything else the whole string capacity. Narrow keys make the
/// kernel's hashing and zeroing cheaper (`c[execname()]++` is the common case).
pub(super) fn string_key_widths(script: &Elaborated, cap: u32) -> HashMap<(String, usize), u32> {
    let mut widths: HashMap<(String, usize), u32> = HashMap::new();
    let mut note = |array: &str, keys: &[Expr]| {
        for (i, k) in keys.iter().enumerate() {
            let need = match &k.kind {
                ExprKind::Call { name, args } if args.is_empty() && (name == "execname" || name == "pexecname") => 16,
                ExprKind::String(s) => (s.len() as u32 + 1).min(cap),
                _ => cap,
            };
            let w = widths.entry((array.to_string(), i)).or_insert(0);
            *w = (*w).max(need);
        }
    };
    let mut visit = |e: &Expr| match &e.kind {
        ExprKind::Index { base, keys } => {
            if let ExprKind::Ident(a) = &base.kind {
                note(a, keys);
            }
        }
        ExprKind::In { keys, array } => {
            if let ExprKind::Ident(a) = &array.kind {
                note(a, keys);
            }
        }
        _ => {}
    };
    for p in &script.probes {
        crate::elaborate::walk_exprs(&p.body, &mut visit);
    }
    for f in script.functions.values() {
        if let ast::FunctionBody::Script(body) = &f.body {
            crate::elaborate::walk_exprs(body, &mut visit);
        }
    }
    widths
}
