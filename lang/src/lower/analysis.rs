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

/// Whether `body` may change array `array` or one of the locals `vars`: by an assignment,
/// `++`/`--`, `<<<` or `delete`, by a nested `foreach` or a `catch` binding one of them, or
/// by a call to a script function (which this does not look into).
pub(super) fn may_change(script: &Elaborated, body: &Stmt, array: &str, vars: &[&str]) -> bool {
    let named = |e: &Expr| match &e.kind {
        ExprKind::Ident(n) => n == array || vars.contains(&n.as_str()),
        ExprKind::Index { base, .. } => matches!(&base.kind, ExprKind::Ident(n) if n == array),
        _ => false,
    };
    let mut changes = false;
    crate::elaborate::walk_stmt(body, &mut |e| match &e.kind {
        ExprKind::Assign { target, .. } | ExprKind::Aggregate { target, .. } | ExprKind::IncDec { target, .. } => {
            changes |= named(target);
        }
        ExprKind::Call { name, args } => {
            changes |=
                script.function(name, args.len()).is_some_and(|f| matches!(f.body, ast::FunctionBody::Script(_)));
        }
        _ => {}
    });
    let binds = |name: &String| vars.contains(&name.as_str());
    let mut stmts = vec![body];
    while let Some(s) = stmts.pop() {
        match &s.kind {
            StmtKind::Delete(e) => changes |= named(e),
            StmtKind::Foreach(fe) => {
                changes |= fe.keys.iter().chain(&fe.value).any(|(k, _)| binds(k));
                stmts.push(&fe.body);
            }
            StmtKind::Try { body, catch_var, catch } => {
                changes |= catch_var.as_ref().is_some_and(|(v, _)| binds(v));
                stmts.extend(body.stmts.iter().chain(&catch.stmts));
            }
            StmtKind::Block(b) => stmts.extend(&b.stmts),
            StmtKind::If { then, els, .. } => stmts.extend(std::iter::once(&**then).chain(els.as_deref())),
            StmtKind::While { body, .. } | StmtKind::For { body, .. } => stmts.push(body),
            _ => {}
        }
    }
    changes
}

/// Whether `body` reads `array[keys]`, the element a `foreach` over `array` with the key
/// variables `keys` is at.
pub(super) fn reads_element(body: &Stmt, array: &str, keys: &[&str]) -> bool {
    let mut reads = false;
    crate::elaborate::walk_stmt(body, &mut |e| {
        if let ExprKind::Index { base, keys: index } = &e.kind {
            reads |= matches!(&base.kind, ExprKind::Ident(n) if n == array)
                && index.len() == keys.len()
                && index.iter().zip(keys).all(|(i, k)| matches!(&i.kind, ExprKind::Ident(n) if n == k));
        }
    });
    reads
}
