//! What `lower` asks of the elaborated script before it lowers it: the names reachable
//! code mentions, the widths string keys need, which functions are pure, and which
//! assignments nothing reads (left out).

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

/// Functions whose calls have no effect but their result: no output, no global writes,
/// no `exit`, and only calls of pure functions. Recursion counts as impure.
pub(super) fn pure_functions(script: &Elaborated) -> HashSet<String> {
    let mut pure: HashSet<String> = script.functions.keys().cloned().collect();
    loop {
        let before = pure.len();
        let names: Vec<String> = pure.iter().cloned().collect();
        for name in names {
            let f = &script.functions[&name];
            let ok = match &f.body {
                ast::FunctionBody::Script(body) => {
                    let mut ok = true;
                    crate::elaborate::walk_exprs(body, &mut |e| {
                        ok &= expr_is_pure_here(e, &pure, script, |n| f.params.iter().all(|p| p.name != n));
                    });
                    ok
                }
                ast::FunctionBody::EmbeddedC(_) => false,
            };
            if !ok {
                pure.remove(&name);
            }
        }
        if pure.len() == before {
            return pure;
        }
    }
}

/// Whether this one node (not its children) is free of effects. `is_global` tells whether
/// an assigned name may be a global in the current scope.
pub(super) fn expr_is_pure_here(
    e: &Expr,
    pure: &HashSet<String>,
    script: &Elaborated,
    is_global: impl Fn(&str) -> bool,
) -> bool {
    match &e.kind {
        ExprKind::Call { name, args } => {
            script.function(name, args.len()).is_some_and(|f| pure.contains(&f.name))
                || (builtins::lookup(name, args.len()).is_some_and(|s| match s.lowering {
                    Lowering::Builtin(b) => !b.has_side_effects(),
                    _ => true,
                }) && !script.functions.contains_key(name))
                || matches!(name.as_str(), "sprintf" | "sprint" | "sprintln")
        }
        ExprKind::Assign { target, .. } | ExprKind::IncDec { target, .. } | ExprKind::Aggregate { target, .. } => {
            match &target.kind {
                ExprKind::Ident(n) => !(script.globals.iter().any(|g| &g.name == n) && is_global(n)),
                _ => false,
            }
        }
        _ => true,
    }
}

/// Assignments `x = e` in a probe body where `x` is a probe local that nothing reads and
/// `e` is pure: SystemTap elides them, and so do we (an alias's `argstr` costs nothing
/// when the probe does not print it). Found to a fixpoint, since dropping one may leave
/// another variable unread.
pub(super) fn dead_assignments(
    body: &Block,
    pure: &HashSet<String>,
    script: &Elaborated,
    types: &TypeTable,
    scope: &Scope,
) -> HashSet<*const Expr> {
    let mut skip: HashSet<*const Expr> = HashSet::new();
    loop {
        let mut read: HashSet<&str> = HashSet::new();
        let mut candidates: Vec<(&Expr, &str)> = Vec::new();
        collect_reads(body, &skip, &mut read, &mut candidates);
        let before = skip.len();
        for (e, name) in candidates {
            let ExprKind::Assign { value, .. } = &e.kind else { continue };
            if read.contains(name) || !types.is_local(scope, name) {
                continue;
            }
            let mut ok = true;
            crate::elaborate::walk_expr(value, &mut |x| ok &= expr_is_pure_here(x, pure, script, |_| true));
            if ok {
                skip.insert(e as *const Expr);
            }
        }
        if skip.len() == before {
            return skip;
        }
    }
}

/// Names read by the statements of `body` that are kept, and the plain `x = e` statements
/// that could be dropped.
pub(super) fn collect_reads<'a>(
    body: &'a Block,
    skip: &HashSet<*const Expr>,
    read: &mut HashSet<&'a str>,
    candidates: &mut Vec<(&'a Expr, &'a str)>,
) {
    let mut stmts: Vec<&'a Stmt> = body.stmts.iter().collect();
    while let Some(s) = stmts.pop() {
        match &s.kind {
            StmtKind::Expr(e) => {
                if let ExprKind::Assign { op: AssignOp::Assign, target, value } = &e.kind {
                    if let ExprKind::Ident(name) = &target.kind {
                        candidates.push((e, name));
                        if !skip.contains(&(e as *const Expr)) {
                            reads_of(value, read);
                        }
                        continue;
                    }
                }
                reads_of(e, read);
            }
            StmtKind::Block(b) => stmts.extend(&b.stmts),
            StmtKind::If { cond, then, els } => {
                reads_of(cond, read);
                stmts.push(then);
                if let Some(e) = els {
                    stmts.push(e);
                }
            }
            StmtKind::While { cond, body } => {
                reads_of(cond, read);
                stmts.push(body);
            }
            StmtKind::For { init, cond, step, body } => {
                for e in [init, cond, step].into_iter().flatten() {
                    reads_of(e, read);
                }
                stmts.push(body);
            }
            StmtKind::Foreach(f) => {
                reads_of(&f.array, read);
                if let Some(l) = &f.limit {
                    reads_of(l, read);
                }
                stmts.push(&f.body);
            }
            StmtKind::Return(Some(e)) | StmtKind::Delete(e) => reads_of(e, read),
            StmtKind::Try { body, catch, .. } => {
                stmts.extend(&body.stmts);
                stmts.extend(&catch.stmts);
            }
            _ => {}
        }
    }
}

/// Every identifier an expression mentions (an assignment target counts: `x += 1` reads x);
/// `ppfunc()` reads the alias variable `__ppfunc`.
pub(super) fn reads_of<'a>(e: &'a Expr, read: &mut HashSet<&'a str>) {
    crate::elaborate::walk_expr(e, &mut |x| match &x.kind {
        ExprKind::Ident(n) => {
            read.insert(n);
        }
        ExprKind::Call { name, .. } if name == "ppfunc" || name == "probefunc" => {
            read.insert("__ppfunc");
        }
        _ => {}
    });
}
