//! Type inference, as stap does it: every variable (global, probe local, function parameter
//! or local) and every function result is a long or a string, inferred from initializers,
//! assignments, signatures and uses, across the whole script, to a fixpoint.
//!
//! Input: an [`Elaborated`] script. Output: a [`TypeTable`] with the type of every name in
//! every scope, plus diagnostics: a conflict names both uses; a variable that is read but
//! never gets a type is reported as unknown.
//!
//! Invariant: when no error is returned, [`TypeTable::expr_ty`] gives a type for every
//! expression `lower` will see, except calls of functions that return nothing.

use std::collections::{BTreeMap, HashMap};

use crate::ast::{AssignOp, BinaryOp, Block, Expr, ExprKind, FunctionBody, Stmt, StmtKind, TypeName};
use crate::builtins;
use crate::diag::Diagnostic;
use crate::elaborate::{did_you_mean, walk_exprs, Elaborated};
use crate::ir::Ty;
use crate::kernel::TracepointFormat;
use crate::span::Span;

/// Which set of locals a name is looked up in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The i-th probe of [`Elaborated::probes`].
    Probe(usize),
    /// A function, by name.
    Function(String),
}

/// What an array (or a statistic) holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ValueKind {
    Long,
    Str,
    /// `<<<` statistics: count, sum, min, max, variance and histograms.
    Stat,
}

/// A global array; a scalar statistic (`s <<< v`) is an array with no keys.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ArrayType {
    /// Key types, `None` until inferred.
    pub keys: Vec<Option<Ty>>,
    pub value: Option<ValueKind>,
    /// Where the array was first used, for messages.
    pub span: Span,
    /// `@hist_log` is printed somewhere.
    pub hist_log: bool,
    /// `@hist_linear(s, lo, hi, step)` with these constants.
    pub hist_linear: Option<(i64, i64, i64)>,
}

/// The inferred types. Each entry keeps the span that first fixed it, for conflict messages.
#[derive(Clone, Debug, Default)]
pub struct TypeTable {
    /// Scalar globals.
    pub globals: BTreeMap<String, (Ty, Span)>,
    /// Array and statistic globals.
    pub arrays: BTreeMap<String, ArrayType>,
    pub locals: HashMap<Scope, BTreeMap<String, (Ty, Span)>>,
    /// Function results; `None` for functions that return no value.
    pub returns: BTreeMap<String, Option<(Ty, Span)>>,
    /// Where each global and each function is declared (see [`TypeTable::sees_global`]).
    pub global_file: BTreeMap<String, Declared>,
    pub function_file: BTreeMap<String, Declared>,
}

/// The file a global or a function is declared in, and whether it is a tapset's: for a
/// global, a tapset's and not `private` (part of the tapset's interface).
#[derive(Clone, Copy, Debug)]
pub struct Declared {
    pub file: crate::span::FileId,
    pub tapset: bool,
}

/// Types known from outside the script, which inference starts from.
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// Scalar globals: those set with `-G NAME=VALUE` (a long when VALUE is a number, else
    /// a string, as SystemTap infers them), and those an interactive session already has.
    pub globals: Vec<(String, Ty)>,
    /// Arrays an interactive session already has, so that input which only reads them
    /// (`foreach (k in a) print(k)`) still knows their types.
    pub arrays: Vec<(String, ArrayType)>,
}

pub fn check(script: &Elaborated, known: &Known) -> (TypeTable, Vec<Diagnostic>) {
    let mut cx = Ctx { script, table: TypeTable::default(), diags: Vec::new(), changed: false, report: false };
    for (name, ty) in &known.globals {
        if let Some(g) = script.globals.iter().find(|g| &g.name == name && !g.is_array) {
            cx.table.globals.insert(name.clone(), (*ty, g.span));
        }
    }
    for g in &script.globals {
        cx.table.global_file.insert(g.name.clone(), Declared { file: g.span.file, tapset: g.tapset && !g.private });
    }
    for (name, f) in &script.functions {
        cx.table.function_file.insert(name.clone(), Declared { file: f.span.file, tapset: f.tapset });
    }
    for g in &script.globals {
        if g.is_array {
            let ty = known.arrays.iter().find(|(name, _)| name == &g.name).map(|(_, ty)| ty.clone());
            cx.table.arrays.insert(g.name.clone(), ArrayType { span: g.span, ..ty.unwrap_or_default() });
        }
        if let Some(init) = &g.init {
            let ty = literal_ty(init);
            if let Some(ty) = ty {
                cx.table.globals.insert(g.name.clone(), (ty, init.span));
            }
        }
    }
    for (name, f) in &script.functions {
        let scope = Scope::Function(name.clone());
        let locals = cx.table.locals.entry(scope).or_default();
        for p in &f.params {
            if let Some(t) = p.ty {
                locals.insert(p.name.clone(), (to_ty(t), p.span));
            }
        }
        cx.table.returns.insert(name.clone(), f.ret.map(|t| (to_ty(t), f.span)));
    }
    // Inference to a fixpoint; the last round (`report`) reports what is still unresolved.
    for round in 0..32 {
        cx.changed = false;
        cx.report = false;
        cx.round();
        if !cx.changed || round == 31 {
            break;
        }
    }
    cx.report = true;
    cx.round();
    let mut diags = cx.diags;
    diags.dedup();
    // An unknown variable leaves the arrays it is stored into untyped too: report the cause,
    // not each consequence.
    if diags.iter().any(|d| d.code == UNKNOWN_VARIABLE) {
        diags.retain(|d| d.code != UNTYPED_VALUES);
    }
    (cx.table, diags)
}

const UNKNOWN_VARIABLE: &str = "E0201";
const UNTYPED_VALUES: &str = "E0214";

fn to_ty(t: TypeName) -> Ty {
    match t {
        TypeName::Long => Ty::Long,
        TypeName::String => Ty::Str,
    }
}

fn literal_ty(e: &Expr) -> Option<Ty> {
    match &e.kind {
        ExprKind::Number(_) => Some(Ty::Long),
        ExprKind::String(_) => Some(Ty::Str),
        ExprKind::Unary { expr, .. } => literal_ty(expr),
        ExprKind::ScriptArg { as_string: true, .. } | ExprKind::ArgCount { as_string: true } => Some(Ty::Str),
        ExprKind::ScriptArg { as_string: false, .. } | ExprKind::ArgCount { as_string: false } => Some(Ty::Long),
        _ => None,
    }
}

/// The type a tracepoint field reads as: strings for character arrays, longs otherwise.
pub fn field_ty(c_type: &str) -> Ty {
    if c_type.contains("char[") || c_type.contains("char [") {
        Ty::Str
    } else {
        Ty::Long
    }
}

impl TypeTable {
    /// Resolves a plain identifier in a scope: a local first, then a global.
    pub fn var_ty(&self, scope: &Scope, name: &str) -> Option<Ty> {
        self.locals
            .get(scope)
            .and_then(|l| l.get(name))
            .or_else(|| self.globals.get(name).filter(|_| self.sees_global(scope, name)))
            .map(|(t, _)| *t)
    }

    /// Whether code in `scope` may name global `name`: probes see every global; a function
    /// those declared in its own file, and a script function also the tapsets' public
    /// globals (`argv`, tcpmib's counters), as in SystemTap. A tapset function sees no other
    /// file's globals, so its locals never turn into the user's globals of the same name.
    pub fn sees_global(&self, scope: &Scope, name: &str) -> bool {
        match scope {
            Scope::Probe(_) => true,
            Scope::Function(f) => match (self.function_file.get(f), self.global_file.get(name)) {
                (Some(function), Some(global)) => function.file == global.file || (!function.tapset && global.tapset),
                _ => true,
            },
        }
    }

    pub fn is_local(&self, scope: &Scope, name: &str) -> bool {
        self.locals.get(scope).is_some_and(|l| l.contains_key(name))
    }

    /// The type of an expression, given the types inferred so far.
    pub fn expr_ty(&self, scope: &Scope, format: Option<&TracepointFormat>, e: &Expr) -> Option<Ty> {
        use ExprKind::*;
        match &e.kind {
            Number(_) | ArgCount { as_string: false } => Some(Ty::Long),
            String(_) | ArgCount { as_string: true } => Some(Ty::Str),
            ScriptArg { as_string, .. } => Some(if *as_string { Ty::Str } else { Ty::Long }),
            Ident(n) => self.var_ty(scope, n),
            Index { base, .. } => match &base.kind {
                Ident(a) => match self.arrays.get(a).and_then(|t| t.value) {
                    Some(ValueKind::Long) => Some(Ty::Long),
                    Some(ValueKind::Str) => Some(Ty::Str),
                    _ => None,
                },
                // An element of a kernel array or pointer (`$p->fd[i]`).
                _ => Some(Ty::Long),
            },
            TargetVar(n) => format.and_then(|f| f.field(n)).map(|f| field_ty(&f.c_type)),
            Call { name, args } => match name.as_str() {
                "sprintf" | "sprint" | "sprintln" | "pp" | "pn" | "ppfunc" | "probefunc" => Some(Ty::Str),
                n if builtins::arg_function(n).is_some() => Some(Ty::Long),
                _ => {
                    let overload = crate::elaborate::overload_key(name, args.len());
                    let key = if self.returns.contains_key(&overload) { &overload } else { name };
                    match builtins::lookup(name, args.len()) {
                        Some(sig) if !self.returns.contains_key(key) => Some(sig.ret),
                        _ => self.returns.get(key).cloned().flatten().map(|(t, _)| t),
                    }
                }
            },
            Binary { op: BinaryOp::Concat, .. } => Some(Ty::Str),
            Binary { .. }
            | Unary { .. }
            | Logical { .. }
            | Compare { .. }
            | Regex { .. }
            | IncDec { .. }
            | In { .. } => Some(Ty::Long),
            Stat { .. } => Some(Ty::Long),
            // Kernel values reached through BTF types are longs; arrays decay to addresses.
            Member { .. } | Cast { .. } | AddressOf(_) | Deref(_) => Some(Ty::Long),
            Ternary { then, els, .. } => self.expr_ty(scope, format, then).or_else(|| self.expr_ty(scope, format, els)),
            Assign { op: AssignOp::Op(BinaryOp::Concat), .. } => Some(Ty::Str),
            Assign { op: AssignOp::Op(_), .. } => Some(Ty::Long),
            Assign { value, .. } => self.expr_ty(scope, format, value),
            Entry(x) => self.expr_ty(scope, format, x),
            Defined(_) => Some(Ty::Long),
            _ => None,
        }
    }
}

struct Ctx<'a> {
    script: &'a Elaborated,
    table: TypeTable,
    diags: Vec<Diagnostic>,
    changed: bool,
    /// Set on the final round: report what is still unknown.
    report: bool,
}

impl<'a> Ctx<'a> {
    fn round(&mut self) {
        for (i, p) in self.script.probes.iter().enumerate() {
            self.block(&Scope::Probe(i), p.format.as_ref(), &p.body);
        }
        for (name, f) in &self.script.functions {
            if let FunctionBody::Script(body) = &f.body {
                self.block(&Scope::Function(name.clone()), None, body);
            }
        }
    }

    fn block(&mut self, scope: &Scope, format: Option<&TracepointFormat>, b: &Block) {
        for s in &b.stmts {
            self.stmt(scope, format, s);
        }
        // Every expression, nested ones included, for calls and reads.
        let mut exprs = Vec::new();
        walk_exprs(b, &mut |e| exprs.push(e));
        for e in exprs {
            self.expr(scope, format, e);
        }
    }

    fn stmt(&mut self, scope: &Scope, format: Option<&TracepointFormat>, s: &Stmt) {
        match &s.kind {
            StmtKind::Return(Some(e)) => {
                if let Scope::Function(name) = scope {
                    if let Some(t) = self.table.expr_ty(scope, format, e) {
                        self.unify_return(name, t, e.span);
                    }
                } else if self.report {
                    self.diags.push(Diagnostic::error("E0205", "`return` with a value outside a function", s.span));
                }
            }
            StmtKind::Foreach(fe) => {
                if let ExprKind::Ident(name) = &fe.array.kind {
                    let keys: Vec<Expr> =
                        fe.keys.iter().map(|(k, sp)| Expr::new(ExprKind::Ident(k.clone()), *sp)).collect();
                    self.array_use(scope, format, &fe.array, Some(&keys), None, fe.array.span);
                    let info = self.table.arrays.get(name).cloned().unwrap_or_default();
                    if info.keys.len() == fe.keys.len() {
                        for ((k, sp), t) in fe.keys.iter().zip(&info.keys) {
                            if let Some(t) = t {
                                self.set_var(scope, k, *t, *sp);
                            }
                        }
                    }
                    if let (Some((v, sp)), Some(kind)) = (&fe.value, info.value) {
                        match kind {
                            ValueKind::Long => self.set_var(scope, v, Ty::Long, *sp),
                            ValueKind::Str => self.set_var(scope, v, Ty::Str, *sp),
                            ValueKind::Stat => {
                                if self.report {
                                    self.diags.push(Diagnostic::error(
                                        "E0210",
                                        "a statistic cannot be bound to a variable; use @count(a[k]) and friends",
                                        *sp,
                                    ));
                                }
                            }
                        }
                    }
                } else if self.report {
                    self.diags.push(Diagnostic::error(
                        "E0211",
                        "`foreach` iterates over a global array",
                        fe.array.span,
                    ));
                }
                self.stmt(scope, format, &fe.body);
            }
            StmtKind::Block(b) => self.block_stmts(scope, format, b),
            StmtKind::If { then, els, .. } => {
                self.stmt(scope, format, then);
                if let Some(e) = els {
                    self.stmt(scope, format, e);
                }
            }
            StmtKind::While { body, .. } | StmtKind::For { body, .. } => self.stmt(scope, format, body),
            StmtKind::Try { body, catch_var, catch } => {
                // `catch (msg)`: the error's message, a local string.
                if let Some((name, span)) = catch_var {
                    self.set_var(scope, name, Ty::Str, *span);
                }
                self.block_stmts(scope, format, body);
                self.block_stmts(scope, format, catch);
            }
            _ => {}
        }
    }

    fn block_stmts(&mut self, scope: &Scope, format: Option<&TracepointFormat>, b: &Block) {
        for s in &b.stmts {
            self.stmt(scope, format, s);
        }
    }

    fn expr(&mut self, scope: &Scope, format: Option<&TracepointFormat>, e: &Expr) {
        use ExprKind::*;
        match &e.kind {
            Assign { op, target, value } => {
                let t = match op {
                    AssignOp::Assign => self.table.expr_ty(scope, format, value),
                    AssignOp::Op(BinaryOp::Concat) => Some(Ty::Str),
                    AssignOp::Op(_) => Some(Ty::Long),
                };
                self.assign_target(scope, target, t, value.span);
            }
            IncDec { target, .. } => self.assign_target(scope, target, Some(Ty::Long), e.span),
            Ident(name) => {
                if self.report && self.table.var_ty(scope, name).is_none() && !self.table.arrays.contains_key(name) {
                    self.unknown_variable(scope, name, e.span);
                }
            }
            TargetVar(name) => {
                if self.report && format.and_then(|f| f.field(name)).is_none() {
                    self.diags.push(unknown_target_variable(format, name, e.span));
                }
            }
            Call { name, args } => self.call(scope, format, e, name, args),
            Binary { op: BinaryOp::Concat, lhs, rhs } => {
                self.want(scope, format, lhs, Ty::Str, "`.` concatenates strings");
                self.want(scope, format, rhs, Ty::Str, "`.` concatenates strings");
            }
            Binary { lhs, rhs, op } => {
                let what = format!("`{op:?}` works on longs");
                self.want(scope, format, lhs, Ty::Long, &what);
                self.want(scope, format, rhs, Ty::Long, &what);
            }
            Compare { lhs, rhs, .. } => {
                if let (Some(a), Some(b)) =
                    (self.table.expr_ty(scope, format, lhs), self.table.expr_ty(scope, format, rhs))
                {
                    if a != b && self.report {
                        self.diags.push(
                            Diagnostic::error("E0203", format!("cannot compare a {a} with a {b}"), e.span)
                                .with_related(lhs.span, format!("this is a {a}"))
                                .with_related(rhs.span, format!("this is a {b}")),
                        );
                    }
                }
            }
            Index { base, keys } if matches!(base.kind, Ident(_)) => {
                self.array_use(scope, format, base, Some(keys), None, e.span);
            }
            Index { keys, .. } => {
                for k in keys {
                    self.want(scope, format, k, Ty::Long, "a kernel array index is a number");
                }
            }
            In { keys, array } => self.array_use(scope, format, array, Some(keys), None, e.span),
            Aggregate { target, value } => {
                let (base, keys) = match &target.kind {
                    Index { base, keys } => (&**base, Some(keys)),
                    _ => (&**target, None),
                };
                self.array_use(scope, format, base, keys.map(|k| k.as_slice()), Some(ValueKind::Stat), e.span);
                self.want(scope, format, value, Ty::Long, "`<<<` adds a number to a statistic");
            }
            Stat { expr, .. } | Hist { expr, .. } => self.stat_use(scope, format, e, expr),
            EmbeddedC => {
                if self.report {
                    self.diags.push(crate::elaborate::embedded_c(e.span));
                }
            }
            Regex { lhs, pattern, .. } => {
                self.want(scope, format, lhs, Ty::Str, "`=~` matches a string");
                let literal = matches!(pattern.kind, String(_) | ScriptArg { as_string: true, .. });
                if !literal && self.report {
                    self.diags.push(
                        Diagnostic::error("E0220", "the pattern of `=~` must be a literal string", pattern.span)
                            .with_label("not a literal")
                            .with_help("regular expressions are compiled with the script, as in SystemTap"),
                    );
                }
            }
            AtVar(_) | Const(_) => {
                if self.report {
                    let what = match &e.kind {
                        AtVar(_) => "`@var`",
                        _ => "`@const`",
                    };
                    self.diags.push(unsupported(what, e.span));
                }
            }
            _ => {}
        }
    }

    fn unknown_variable(&mut self, scope: &Scope, name: &str, span: Span) {
        let mut names: Vec<&str> = self.table.globals.keys().map(|s| s.as_str()).collect();
        if let Some(l) = self.table.locals.get(scope) {
            names.extend(l.keys().map(|s| s.as_str()));
        }
        let alias = match scope {
            Scope::Probe(i) => self.script.probes.get(*i).filter(|p| p.user_point != p.point),
            Scope::Function(_) => None,
        };
        let mut d = match alias {
            // Most likely a variable SystemTap's alias sets and bpftap's does not.
            Some(p) => Diagnostic::error(
                UNKNOWN_VARIABLE,
                format!("`{}` has no variable `{name}` in bpftap", p.user_point),
                span,
            )
            .with_label("neither the probe alias nor this probe sets it")
            .with_help(format!("`bpftap -L '{}'` lists the variables it has", p.user_point)),
            None => Diagnostic::error(UNKNOWN_VARIABLE, format!("unknown variable `{name}`"), span)
                .with_label("never assigned, so its type is unknown"),
        };
        if let Some(s) = did_you_mean(name, names) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        self.diags.push(d);
    }

    /// `@count(a[k])`, `@hist_log(s)`, ...: `expr` is a statistic; a histogram's shape is
    /// kept with its array.
    fn stat_use(&mut self, scope: &Scope, format: Option<&TracepointFormat>, e: &Expr, expr: &Expr) {
        use ExprKind::*;
        let (base, keys) = match &expr.kind {
            Index { base, keys } => (&**base, Some(keys.as_slice())),
            _ => (expr, None),
        };
        self.array_use(scope, format, base, keys, Some(ValueKind::Stat), e.span);
        let (Hist { kind, .. }, Ident(name)) = (&e.kind, &base.kind) else { return };
        let linear = match kind {
            crate::ast::HistKind::Log => None,
            crate::ast::HistKind::Linear { lo, hi, step } => match (&lo.kind, &hi.kind, &step.kind) {
                (Number(lo), Number(hi), Number(step))
                    if hi > lo && crate::ir::linear_buckets(*lo, *hi, *step).is_some() =>
                {
                    Some((*lo, *hi, *step))
                }
                _ => {
                    if self.report {
                        self.diags.push(Diagnostic::error(
                            "E0209",
                            format!(
                                "`@hist_linear` needs constant bounds and a positive step, with hi > lo and at \
                                 most {} buckets",
                                crate::ir::MAX_LINEAR_BUCKETS - 2
                            ),
                            e.span,
                        ));
                    }
                    None
                }
            },
        };
        let Some(t) = self.table.arrays.get_mut(name) else { return };
        match linear {
            None if matches!(kind, crate::ast::HistKind::Log) => t.hist_log = true,
            Some(l) => {
                if t.hist_linear.is_some_and(|old| old != l) && self.report {
                    self.diags.push(Diagnostic::error(
                        "E0209",
                        format!("`{name}` is printed with two different `@hist_linear` shapes"),
                        e.span,
                    ));
                }
                t.hist_linear = Some(l);
            }
            None => {}
        }
    }

    fn want(&mut self, scope: &Scope, format: Option<&TracepointFormat>, e: &Expr, want: Ty, why: &str) {
        if let ExprKind::Ident(name) = &e.kind {
            // An untyped local used as an operand takes the operand's type.
            if self.table.var_ty(scope, name).is_none() && !self.table.globals.contains_key(name) {
                self.set_var(scope, name, want, e.span);
                return;
            }
        }
        if let Some(t) = self.table.expr_ty(scope, format, e) {
            if t != want && self.report {
                self.diags.push(
                    Diagnostic::error("E0203", format!("type mismatch: expected a {want}, found a {t}"), e.span)
                        .with_label(format!("this is a {t}"))
                        .with_help(why.to_string()),
                );
            }
        }
    }

    fn call(&mut self, scope: &Scope, format: Option<&TracepointFormat>, e: &Expr, name: &str, args: &[Expr]) {
        if builtins::SPECIAL.contains(&name) {
            return;
        }
        if let Some(f) = self.script.function(name, args.len()) {
            let fscope = Scope::Function(f.name.clone());
            if args.len() != f.params.len() {
                if self.report {
                    self.diags.push(Diagnostic::error(
                        "E0204",
                        format!("`{name}` takes {} argument(s), {} given", f.params.len(), args.len()),
                        e.span,
                    ));
                }
                return;
            }
            for (p, a) in f.params.iter().zip(args) {
                let pt = self.table.var_ty(&fscope, &p.name).filter(|_| self.table.is_local(&fscope, &p.name));
                match (pt, self.table.expr_ty(scope, format, a)) {
                    (None, Some(t)) => self.set_var(&fscope, &p.name, t, p.span),
                    (Some(pt), None) => self.want(scope, format, a, pt, "the function's parameter has this type"),
                    (Some(pt), Some(at)) if pt != at && self.report => self.diags.push(
                        Diagnostic::error(
                            "E0203",
                            format!("type mismatch: `{}` of `{name}` is a {pt}, given a {at}", p.name),
                            a.span,
                        )
                        .with_related(p.span, "parameter declared here"),
                    ),
                    _ => {}
                }
            }
            return;
        }
        if let Some(sig) = builtins::lookup(name, args.len()) {
            if args.len() != sig.params.len() {
                if self.report {
                    self.diags.push(Diagnostic::error(
                        "E0204",
                        format!("`{name}` takes {} argument(s), {} given", sig.params.len(), args.len()),
                        e.span,
                    ));
                }
                return;
            }
            for (i, (p, a)) in sig.params.iter().zip(args).enumerate() {
                // kernel_string($char_array_field): the field is already a string.
                let string_read = matches!(sig.lowering, builtins::Lowering::ReadStr(_)) && i == 0;
                if string_read && self.table.expr_ty(scope, format, a) == Some(Ty::Str) {
                    continue;
                }
                self.want(scope, format, a, *p, "the function's parameter has this type");
            }
            return;
        }
        if self.report {
            let names = builtins::BUILTINS
                .iter()
                .map(|s| s.name)
                .chain(builtins::SPECIAL.iter().copied())
                .chain(self.script.functions.keys().map(|s| s.as_str()));
            let mut d = Diagnostic::error("E0206", format!("unknown function `{name}`"), e.span);
            if let Some(s) = did_you_mean(name, names) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            self.diags.push(d);
        }
    }

    fn assign_target(&mut self, scope: &Scope, target: &Expr, t: Option<Ty>, span: Span) {
        match &target.kind {
            ExprKind::Ident(name) => {
                if let Some(t) = t {
                    self.set_var(scope, name, t, span);
                }
            }
            ExprKind::TargetVar(name) => {
                if self.report {
                    let mut d = Diagnostic::error("E0207", "target variables are read-only", target.span);
                    if name == "value" {
                        d = d.with_help(
                            "bpftap has no procfs probes and so no `$value`: a `probe prometheus` prints its \
                             text instead, e.g. `print(\"m 1\\n\")` (`$value .= text` there prints too)",
                        );
                    }
                    self.diags.push(d);
                }
            }
            ExprKind::Index { base, keys } => {
                let kind = t.map(|t| match t {
                    Ty::Long => ValueKind::Long,
                    Ty::Str => ValueKind::Str,
                });
                self.array_use(scope, None, base, Some(keys), kind, span);
            }
            _ => {
                if self.report {
                    self.diags.push(Diagnostic::error("E0208", "cannot assign to this expression", target.span));
                }
            }
        }
    }

    /// A use of `base` as an array (`keys` given) or a statistic, holding `value`.
    fn array_use(
        &mut self,
        scope: &Scope,
        format: Option<&TracepointFormat>,
        base: &Expr,
        keys: Option<&[Expr]>,
        value: Option<ValueKind>,
        span: Span,
    ) {
        let Some(name) = self.array_name(scope, base, span) else { return };
        let key_tys: Vec<Option<Ty>> = keys
            .unwrap_or_default()
            .iter()
            .map(|k| match &k.kind {
                ExprKind::Ident(n) if self.table.var_ty(scope, n).is_none() => None,
                _ => self.table.expr_ty(scope, format, k),
            })
            .collect();
        let report = self.report;
        let entry = self.table.arrays.entry(name.clone()).or_insert_with(|| ArrayType {
            keys: vec![None; key_tys.len()],
            span,
            ..Default::default()
        });
        if entry.keys.is_empty() && !key_tys.is_empty() && entry.value.is_none() {
            entry.keys = vec![None; key_tys.len()];
        }
        let mut changed = false;
        let mut errors = Vec::new();
        if entry.keys.len() != key_tys.len() {
            errors.push(
                Diagnostic::error(
                    "E0213",
                    format!(
                        "`{name}` is indexed with {} key(s) here and {} elsewhere",
                        key_tys.len(),
                        entry.keys.len()
                    ),
                    span,
                )
                .with_related(entry.span, "first use"),
            );
        } else {
            for (slot, t) in entry.keys.iter_mut().zip(&key_tys) {
                match (*slot, t) {
                    (None, Some(t)) => {
                        *slot = Some(*t);
                        changed = true;
                    }
                    (Some(a), Some(b)) if a != *b => errors.push(
                        Diagnostic::error(
                            "E0203",
                            format!("type mismatch: a key of `{name}` is a {a} and a {b}"),
                            span,
                        )
                        .with_related(entry.span, "first use"),
                    ),
                    _ => {}
                }
            }
        }
        match (entry.value, value) {
            (None, Some(v)) => {
                entry.value = Some(v);
                changed = true;
            }
            (Some(a), Some(b)) if a != b => errors.push(
                Diagnostic::error("E0203", format!("type mismatch: `{name}` holds {a:?} and {b:?} values"), span)
                    .with_related(entry.span, "first use"),
            ),
            _ => {}
        }
        if report {
            if entry.value.is_none() {
                errors.push(Diagnostic::error(
                    UNTYPED_VALUES,
                    format!("the values of `{name}` are never set, so their type is unknown"),
                    span,
                ));
            }
            if entry.keys.iter().any(Option::is_none) {
                errors.push(Diagnostic::error(UNTYPED_VALUES, format!("the key types of `{name}` are unknown"), span));
            }
            self.diags.extend(errors);
        }
        self.changed |= changed;
        // Keys that are untyped locals take the array's key types.
        if let Some(keys) = keys {
            let known = self.table.arrays[name].keys.clone();
            for (k, t) in keys.iter().zip(known) {
                if let (ExprKind::Ident(n), Some(t)) = (&k.kind, t) {
                    if self.table.var_ty(scope, n).is_none() && !self.table.globals.contains_key(n) {
                        self.set_var(scope, n, t, k.span);
                    }
                }
            }
        }
    }

    /// The global array `base` names, or why it names none (reported).
    fn array_name<'e>(&mut self, scope: &Scope, base: &'e Expr, span: Span) -> Option<&'e String> {
        let ExprKind::Ident(name) = &base.kind else {
            if self.report {
                self.diags.push(Diagnostic::error("E0211", "only a global can be indexed", base.span));
            }
            return None;
        };
        if !self.script.globals.iter().any(|g| &g.name == name)
            || !self.table.sees_global(scope, name)
            || self.table.is_local(scope, name)
        {
            if self.report {
                self.diags.push(
                    Diagnostic::error("E0212", format!("`{name}` is not a global array"), base.span)
                        .with_help(format!("declare it with `global {name}` (arrays are always global)")),
                );
            }
            return None;
        }
        if self.table.globals.contains_key(name) {
            if self.report {
                self.diags.push(Diagnostic::error(
                    "E0203",
                    format!("`{name}` is used both as a scalar and as an array"),
                    span,
                ));
            }
            return None;
        }
        Some(name)
    }

    fn set_var(&mut self, scope: &Scope, name: &str, t: Ty, span: Span) {
        let is_global = self.script.globals.iter().any(|g| g.name == name)
            && self.table.sees_global(scope, name)
            && !self.table.is_local(scope, name)
            && !self.is_param(scope, name);
        let entry =
            if is_global { &mut self.table.globals } else { self.table.locals.entry(scope.clone()).or_default() };
        match entry.get(name) {
            None => {
                entry.insert(name.to_string(), (t, span));
                self.changed = true;
            }
            Some((old, first)) if *old != t => {
                if self.report {
                    let first = *first;
                    let old = *old;
                    self.diags.push(
                        Diagnostic::error("E0203", format!("type mismatch: `{name}` is a {old} and a {t}"), span)
                            .with_label(format!("a {t} here"))
                            .with_related(first, format!("a {old} here")),
                    );
                }
            }
            Some(_) => {}
        }
    }

    fn is_param(&self, scope: &Scope, name: &str) -> bool {
        match scope {
            Scope::Function(f) => self.script.functions.get(f).is_some_and(|f| f.params.iter().any(|p| p.name == name)),
            Scope::Probe(_) => false,
        }
    }

    fn unify_return(&mut self, name: &str, t: Ty, span: Span) {
        match self.table.returns.get(name).cloned().flatten() {
            None => {
                self.table.returns.insert(name.to_string(), Some((t, span)));
                self.changed = true;
            }
            Some((old, first)) if old != t && self.report => self.diags.push(
                Diagnostic::error("E0203", format!("type mismatch: `{name}` returns a {old} and a {t}"), span)
                    .with_related(first, format!("a {old} here")),
            ),
            Some(_) => {}
        }
    }
}

fn unsupported(what: &str, span: Span) -> Diagnostic {
    Diagnostic::error("E0299", format!("{what} is not supported yet"), span)
        .with_help("bpftap does not compile this construct yet")
}

fn unknown_target_variable(format: Option<&TracepointFormat>, name: &str, span: Span) -> Diagnostic {
    let fields: Vec<&str> = format.map(|f| f.fields.iter().map(|x| x.name.as_str()).collect()).unwrap_or_default();
    let mut d = Diagnostic::error("E0202", format!("unknown target variable `${name}`"), span)
        .with_label("not a field of this probe's context");
    if !fields.is_empty() {
        d = d.with_help(format!("this probe has ${}", fields.join(", $")));
    }
    d
}
