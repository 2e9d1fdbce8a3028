//! Elaboration: probe points resolved to concrete targets, alias bodies merged into the
//! probes that use them, and the script's globals and functions gathered with the tapsets'.
//!
//! Input: the user's [`ast::Script`], the parsed tapsets and a [`KernelInfo`].
//! Output: an [`Elaborated`] script in which every probe has one concrete [`Target`] and one
//! body (alias prologues, then the user's body guarded by its predicate, then alias
//! epilogues), plus the diagnostics found.
//!
//! No types are inferred here (that is [`crate::types`]); `@defined(...)` is folded to 0 or 1
//! against the probe's target variables and the kernel's types.
//!
//! Resolution order for a probe point: a `syscall.*`-style wildcard matching five or more
//! syscalls becomes one `raw_syscalls` probe; otherwise aliases (script first, then tapsets),
//! then the generated `syscall.NAME` family over `syscalls:sys_enter_NAME`/`sys_exit_NAME`
//! for names no alias defines, then the families' own points (`begin`, `timer.*`,
//! `kernel.trace`, `kernel.function`, ...: the table in [`crate::family`], whose modules
//! resolve them), and last an alias with a suffix (`a.return` from alias `a`). A
//! wildcard point expands to every match; matches that fail to resolve are skipped, as in
//! SystemTap.
//!
//! A tracepoint probe whose body reads the tracepoint's C arguments (`$prev`) rather than
//! only its record fields becomes a raw tracepoint probe, typed like a kernel function's.
//!
//! Invariant: every [`ElabProbe`] has one concrete target. Tracepoint, raw tracepoint and
//! kernel function targets exist in this kernel; tracepoint targets come with their record
//! format, and raw tracepoint and function targets with their arguments (as `format` and
//! `function`), so `$var` accesses can be checked against them. Netfilter hooks and perf
//! events are not asked about here: the runtime finds out when it attaches them.

use std::collections::{BTreeMap, BTreeSet};

use crate::arch::Arch;
use crate::ast::{self, AliasKind, Block, Component, Expr, ExprKind, Item, Literal, ProbePoint, Stmt, StmtKind};
use crate::diag::Diagnostic;
use crate::family::syscall::on_raw_syscalls;
use crate::family::tracepoint::record_fields_read;
pub use crate::glob::{components_match, glob_match, is_pattern, Glob};
use crate::ir::Target;
use crate::kernel::{CType, FunctionSig, KernelInfo, TracepointFormat, TypeId};
use crate::span::Span;

/// A script after elaboration.
#[derive(Clone, Debug, Default)]
pub struct Elaborated {
    /// Globals of the script and of the tapsets it uses.
    pub globals: Vec<ast::Global>,
    /// Functions by name; script functions shadow tapset functions. A function defined
    /// again with another number of parameters (SystemTap overloads by arity) is keyed by
    /// [`overload_key`], and its `name` is that key; [`Elaborated::function`] finds it.
    pub functions: BTreeMap<String, ast::Function>,
    pub probes: Vec<ElabProbe>,
    /// The machine the kernel probes are compiled for.
    pub arch: Arch,
}

#[derive(Clone, Debug)]
pub struct ElabProbe {
    /// The resolved probe point, e.g. `kernel.trace("syscalls:sys_enter_connect")`.
    pub point: String,
    /// The point as the user matched it, e.g. `syscall.connect` (for `pp()`).
    pub user_point: String,
    pub target: Target,
    /// The record layout of a tracepoint target.
    pub format: Option<TracepointFormat>,
    /// The signature of a kernel function target.
    pub function: Option<FunctionSig>,
    pub body: Block,
    /// The user's probe (the whole `probe ... { }`).
    pub span: Span,
    /// A `never` probe: its body is type-checked (scripts use one to give globals their
    /// types) but never compiled or run.
    pub never: bool,
    /// One of the matches of a wildcard point, or of a point marked `?` or `!`: where the
    /// kernel refuses to attach it, the script goes on without it, as in SystemTap.
    pub optional: bool,
}

/// A script and the tapsets, parsed.
pub struct Input<'a> {
    pub script: &'a ast::Script,
    pub tapsets: &'a [ast::Script],
}

pub fn elaborate(input: &Input<'_>, kernel: &dyn KernelInfo) -> (Elaborated, Vec<Diagnostic>) {
    let mut aliases = Vec::new();
    for script in std::iter::once(input.script).chain(input.tapsets.iter()) {
        for item in &script.items {
            if let Item::Alias(a) = item {
                aliases.push(a.clone());
            }
        }
    }
    let machine = kernel.arch();
    let arch = Arch::from_machine(&machine).ok_or(machine);
    let mut cx = Ctx { kernel, aliases: std::rc::Rc::new(aliases), diags: Vec::new(), tracepoints: None, arch };
    let mut out = Elaborated { arch: cx.arch(), ..Elaborated::default() };
    // Script items first, so that script functions and aliases shadow tapset ones.
    for (n, script) in std::iter::once(input.script).chain(input.tapsets.iter()).enumerate() {
        for item in &script.items {
            match item {
                Item::Alias(_) => {}
                Item::Function(f) => {
                    let mut f = ast::Function { tapset: n > 0, ..f.clone() };
                    // A function has no target variables, but `@defined(@cast(...)->m)` asks
                    // the kernel's types.
                    if let ast::FunctionBody::Script(body) = &mut f.body {
                        fold_defined_block(body, &ProbeContext { format: None, function: None, kernel, page: false });
                    }
                    add_function(&mut out.functions, &f)
                }
                Item::Global(g) => {
                    if !out.globals.iter().any(|x| x.name == g.name) {
                        out.globals.push(ast::Global { tapset: n > 0, ..g.clone() });
                    }
                }
                Item::Probe(_) | Item::EmbeddedC(_) => {}
            }
        }
    }
    // A tapset's own probes (selected with the file, see `select`), then the script's.
    for item in input.tapsets.iter().flat_map(|t| &t.items) {
        if let Item::Probe(p) = item {
            cx.probe(p, &mut out);
        }
    }
    for item in &input.script.items {
        match item {
            Item::Probe(p) => cx.probe(p, &mut out),
            Item::EmbeddedC(span) => cx.diags.push(embedded_c(*span)),
            Item::Function(f) => {
                if let ast::FunctionBody::EmbeddedC(span) = f.body {
                    cx.diags.push(embedded_c(span));
                }
            }
            Item::Alias(_) | Item::Global(_) => {}
        }
    }
    (out, cx.diags)
}

impl Elaborated {
    /// The function a call of `name` with `argc` arguments means: the overload with that many
    /// parameters, else the one keyed by `name` (whose arity the type checker then reports).
    pub fn function(&self, name: &str, argc: usize) -> Option<&ast::Function> {
        self.functions.get(&overload_key(name, argc)).or_else(|| self.functions.get(name))
    }
}

/// The key of an overload of `name` taking `argc` parameters, when another arity came first.
pub fn overload_key(name: &str, argc: usize) -> String {
    format!("{name}/{argc}")
}

/// Adds `f` unless a function with its name and arity is there already (an earlier file
/// shadows a later one).
fn add_function(functions: &mut BTreeMap<String, ast::Function>, f: &ast::Function) {
    let key = match functions.get(&f.name) {
        None => f.name.clone(),
        Some(first) if first.params.len() == f.params.len() => return,
        Some(_) => overload_key(&f.name, f.params.len()),
    };
    if let std::collections::btree_map::Entry::Vacant(slot) = functions.entry(key) {
        let name = slot.key().clone();
        slot.insert(ast::Function { name, ..f.clone() });
    }
}

pub fn embedded_c(span: Span) -> Diagnostic {
    Diagnostic::error("E0105", "embedded C is not supported: bpftap compiles scripts to BPF, with no C compiler", span)
        .with_label("embedded C here")
        .with_help("write this in the script language, or use a built-in function")
}

/// A kernel probe compiled against a kernel whose machine bpftap knows no `struct pt_regs`
/// and syscall numbers for.
fn unknown_machine(machine: &str, span: Span) -> Diagnostic {
    Diagnostic::error("E0115", format!("bpftap does not compile kernel probes for `{machine}` machines"), span)
        .with_label("a kernel probe")
        .with_help("bpftap compiles kernel probes for x86_64 and arm64")
}

pub(crate) struct Ctx<'k> {
    pub(crate) kernel: &'k dyn KernelInfo,
    /// Shared so that resolving a point (recursively) does not copy every alias.
    aliases: std::rc::Rc<Vec<ast::Alias>>,
    diags: Vec<Diagnostic>,
    tracepoints: Option<Vec<(String, String)>>,
    /// The machine compiled for, or the kernel's machine name where bpftap knows no
    /// `struct pt_regs` and syscall table for it (then only user-space probes compile).
    arch: Result<Arch, String>,
}

/// One resolution of a probe point: a target and the alias bodies around the user's body.
pub(crate) struct Resolved {
    pub(crate) point: String,
    pub(crate) user_point: String,
    pub(crate) target: Target,
    pub(crate) format: Option<TracepointFormat>,
    pub(crate) function: Option<FunctionSig>,
    pub(crate) prologue: Vec<Block>,
    pub(crate) epilogue: Vec<Block>,
}

impl Resolved {
    /// A point that is its own target, with no context and no alias bodies.
    pub(crate) fn plain(target: Target, text: String) -> Resolved {
        Resolved::with_context(target, text, None)
    }

    pub(crate) fn with_context(target: Target, text: String, format: Option<TracepointFormat>) -> Resolved {
        Resolved {
            user_point: text.clone(),
            point: text,
            target,
            format,
            function: None,
            prologue: vec![],
            epilogue: vec![],
        }
    }
}

/// The number a point component carries: `begin(-1)`, `timer.ms(100)`.
pub(crate) fn literal_number(c: &Component) -> Option<i64> {
    match c.arg {
        Some(Literal::Number(n)) => Some(n),
        _ => None,
    }
}

/// Why a point did not resolve.
pub(crate) enum Unresolved {
    /// Nothing by that name.
    Unknown,
    /// A family matched but the kernel lacks it; the diagnostic explains.
    Failed(Diagnostic),
}

const MAX_ALIAS_DEPTH: usize = 16;

impl Ctx<'_> {
    fn probe(&mut self, probe: &ast::Probe, out: &mut Elaborated) {
        for point in &probe.points {
            let never = matches!(point.components.as_slice(), [c] if c.name == "never" && c.arg.is_none());
            let optional = point.optional
                || point.sufficient
                || point
                    .components
                    .iter()
                    .any(|c| is_pattern(&c.name) || matches!(&c.arg, Some(Literal::String(text)) if is_pattern(text)));
            match self.resolve(point, 0) {
                Ok(list) => {
                    for mut r in list {
                        let mut body = merge_body(&r, probe);
                        let record = self.read_tracepoint_args(&mut r, &body);
                        let cx = ProbeContext {
                            format: r.format.as_ref(),
                            function: r.function.as_ref(),
                            kernel: self.kernel,
                            page: matches!(r.target, Target::Page { .. }),
                        };
                        fold_defined_block(&mut body, &cx);
                        if let Some(record) = record {
                            let mixed = record_fields_read(&record, &r, &body);
                            if !mixed.is_empty() {
                                self.diags.extend(mixed);
                                continue;
                            }
                        }
                        if let (Err(machine), false) = (&self.arch, r.target.is_user_space()) {
                            self.diags.push(unknown_machine(machine, point.span));
                            return;
                        }
                        self.entry_values(&r.target, &body, out);
                        on_raw_syscalls(self.arch(), &mut r.target);
                        out.probes.push(ElabProbe {
                            body,
                            point: r.point,
                            user_point: r.user_point,
                            target: r.target,
                            format: r.format,
                            function: r.function,
                            span: probe.span,
                            never,
                            optional,
                        });
                    }
                    if point.sufficient {
                        break;
                    }
                }
                Err(_) if point.optional || point.sufficient => {}
                Err(Unresolved::Failed(d)) => self.diags.push(d),
                Err(Unresolved::Unknown) => self.diags.push(self.unknown_point(point)),
            }
        }
    }

    /// The machine compiled for; x86-64 where it is unknown, as then no kernel probe
    /// compiles ([`unknown_machine`]).
    pub(crate) fn arch(&self) -> Arch {
        self.arch.as_ref().copied().unwrap_or_default()
    }

    fn unknown_point(&self, point: &ProbePoint) -> Diagnostic {
        let text = point_text(point);
        let mut candidates: Vec<String> = self.aliases.iter().flat_map(|a| a.names.iter().map(point_text)).collect();
        candidates.extend(
            ["begin", "end", "error", "timer.ms", "timer.s", "timer.us", "timer.hz", "kernel.trace", "syscall.*"]
                .map(String::from),
        );
        let d = Diagnostic::error("E0101", format!("unknown probe point `{text}`"), point.span)
            .with_label("no tapset alias or probe family matches this");
        match did_you_mean(&text, candidates.iter().map(String::as_str)) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => d.with_help("`bpftap -l 'PATTERN'` lists the probe points"),
        }
    }

    fn resolve(&mut self, point: &ProbePoint, depth: usize) -> Result<Vec<Resolved>, Unresolved> {
        if depth > MAX_ALIAS_DEPTH {
            return Err(Unresolved::Failed(Diagnostic::error(
                "E0102",
                format!("probe alias `{}` expands into itself", point_text(point)),
                point.span,
            )));
        }
        check_patterns(point)?;
        let wildcard = point.components.iter().any(|c| is_pattern(&c.name));
        if let Some(r) = self.syscall_wildcard(point) {
            return Ok(vec![r]);
        }
        let mut found = Vec::new();
        let mut failure = None;
        let mut alias_names = BTreeSet::new();
        let aliases = std::rc::Rc::clone(&self.aliases);
        for alias in aliases.iter() {
            for name in &alias.names {
                if !point_matches(&point.components, &name.components) {
                    continue;
                }
                let name_text = point_text(name);
                alias_names.insert(name_text.clone());
                let inner = alias.points.iter().cloned();
                self.expand_alias(alias, &name_text, inner, depth, wildcard, &mut found, &mut failure);
            }
        }
        if let Some(Unresolved::Failed(d)) = failure {
            // An error inside a tapset is shown at the script's point that needs it, which is
            // what the user wrote (the rendering shows one file).
            let d = match d.span.file != point.span.file && point.span != Span::default() {
                true => Diagnostic { span: point.span, label: format!("in tapset alias `{}`", point_text(point)), ..d },
                false => d,
            };
            return Err(Unresolved::Failed(d));
        }
        // Generated syscall aliases, for the names no tapset alias defines.
        match self.syscalls(point, &alias_names) {
            Ok(list) => found.extend(list),
            Err(Unresolved::Failed(d)) if found.is_empty() && !wildcard => return Err(Unresolved::Failed(d)),
            Err(_) => {}
        }
        if found.is_empty() {
            return match self.family_point(point) {
                Err(Unresolved::Unknown) => self.alias_with_suffix(point, depth),
                other => other,
            };
        }
        Ok(found)
    }

    /// The alias's points resolved, each with the alias's body around what they resolve to.
    #[allow(clippy::too_many_arguments)]
    fn expand_alias(
        &mut self,
        alias: &ast::Alias,
        name_text: &str,
        inner: impl Iterator<Item = ProbePoint>,
        depth: usize,
        wildcard: bool,
        found: &mut Vec<Resolved>,
        failure: &mut Option<Unresolved>,
    ) {
        let before = found.len();
        // Why the last point marked `!` or `?` was skipped: the alias's error when every
        // point was (nfsd's aliases on a kernel without the nfsd module).
        let mut skipped = None;
        for inner in inner {
            match self.resolve(&inner, depth + 1) {
                Ok(list) if inner.sufficient => {
                    self.push_expanded(alias, name_text, list, found);
                    break;
                }
                Ok(list) => self.push_expanded(alias, name_text, list, found),
                Err(e) if !wildcard && !inner.optional && !inner.sufficient => *failure = Some(e),
                Err(e) => skipped = Some(e),
            }
        }
        if found.len() == before && failure.is_none() && !wildcard {
            *failure = skipped.filter(|e| matches!(e, Unresolved::Failed(_)));
        }
    }

    /// Points an alias's point resolved to, each with the alias's body around it.
    fn push_expanded(&self, alias: &ast::Alias, name_text: &str, list: Vec<Resolved>, found: &mut Vec<Resolved>) {
        for mut r in list {
            r.user_point = name_text.to_string();
            // The inner alias's code runs first: it sets the variables the outer alias's code
            // reads.
            match alias.kind {
                AliasKind::Prologue => r.prologue.push(alias.body.clone()),
                AliasKind::Epilogue => r.epilogue.push(alias.body.clone()),
            }
            found.push(r);
        }
    }

    /// Alias suffixes: `miscellany.return`, where `miscellany` is an alias and nothing is named
    /// `miscellany.return`, is each of `miscellany`'s points with `.return` added, as in
    /// SystemTap.
    fn alias_with_suffix(&mut self, point: &ProbePoint, depth: usize) -> Result<Vec<Resolved>, Unresolved> {
        let comps = &point.components;
        let wildcard = comps.iter().any(|c| is_pattern(&c.name));
        let mut found = Vec::new();
        let mut failure = None;
        let aliases = std::rc::Rc::clone(&self.aliases);
        for alias in aliases.iter() {
            for name in &alias.names {
                let Some(k) = (1..comps.len()).rev().find(|&k| point_matches(&comps[..k], &name.components)) else {
                    continue;
                };
                let suffix = &comps[k..];
                let name_text = format!("{}.{}", point_text(name), components_text(suffix));
                let inner = alias.points.iter().map(|p| {
                    let mut p = p.clone();
                    p.components.extend(suffix.iter().cloned());
                    p
                });
                self.expand_alias(alias, &name_text, inner, depth, wildcard, &mut found, &mut failure);
            }
        }
        match failure {
            Some(Unresolved::Failed(d)) => Err(Unresolved::Failed(d)),
            _ if found.is_empty() => Err(Unresolved::Unknown),
            _ => Ok(found),
        }
    }

    pub(crate) fn tracepoints(&mut self) -> &[(String, String)] {
        if self.tracepoints.is_none() {
            self.tracepoints = Some(self.kernel.tracepoints());
        }
        self.tracepoints.as_deref().unwrap_or_default()
    }
}

/// Where a syscall's entry probe leaves the value of `@entry(inner)` for its return probe:
/// `__entry_FILE_OFFSET[tid()]`, named after the place (`span`) of `inner` in the source.
pub fn entry_value(span: Span) -> Expr {
    let name = entry_array(span);
    let tid = Expr::new(ExprKind::Call { name: "tid".into(), args: vec![] }, span);
    let base = Box::new(Expr::new(ExprKind::Ident(name), span));
    Expr::new(ExprKind::Index { base, keys: vec![tid] }, span)
}

/// The global array of [`entry_value`].
pub fn entry_array(span: Span) -> String {
    format!("__entry_{}_{}", span.file.0, span.start)
}

pub(crate) fn assign_stmt(name: &str, value: Expr, span: Span) -> Stmt {
    let target = Box::new(Expr::new(ExprKind::Ident(name.to_string()), span));
    let kind = ExprKind::Assign { op: ast::AssignOp::Assign, target, value: Box::new(value) };
    Stmt { kind: StmtKind::Expr(Expr::new(kind, span)), span }
}

/// The body of one resolved probe: `{ prologues; if (pred) { body }; epilogues }`.
fn merge_body(r: &Resolved, probe: &ast::Probe) -> Block {
    let mut stmts: Vec<Stmt> =
        r.prologue.iter().map(|b| Stmt { kind: StmtKind::Block(b.clone()), span: b.span }).collect();
    let user = Stmt { kind: StmtKind::Block(probe.body.clone()), span: probe.body.span };
    stmts.push(match &probe.predicate {
        Some(pred) => Stmt {
            kind: StmtKind::If { cond: pred.clone(), then: Box::new(user), els: None },
            span: pred.span.to(probe.body.span),
        },
        None => user,
    });
    stmts.extend(r.epilogue.iter().map(|b| Stmt { kind: StmtKind::Block(b.clone()), span: b.span }));
    Block { stmts, span: probe.span }
}

/// What `@defined` asks about: the probe's target variables and the kernel's types.
struct ProbeContext<'a> {
    format: Option<&'a TracepointFormat>,
    function: Option<&'a FunctionSig>,
    kernel: &'a dyn KernelInfo,
    /// A page probe (`prometheus`), whose text is what it prints.
    page: bool,
}

impl ProbeContext<'_> {
    /// Whether `e` exists in this probe and the kernel: `None` if not, else the struct type
    /// it leads to by `->` when known. `$a->b->c` exists when `$a` is a target variable and
    /// each member is in its struct (a bitfield ends the chain);
    /// `@cast(x, "T")->m` when `T` has `m`. Where a type is unknown, the chain is taken as
    /// existing, and lowering reports what it cannot read.
    fn resolve(&self, e: &Expr) -> Option<Option<TypeId>> {
        match &e.kind {
            ExprKind::TargetVar(name) => {
                if let Some((_, ty)) = self.function.and_then(|f| f.params.iter().find(|(n, _)| n == name)) {
                    return Some(self.struct_behind(*ty));
                }
                let field = self.format?.field(name)?;
                let pointee = field.c_type.trim().strip_suffix('*').map(|t| t.trim().trim_start_matches("const "));
                Some(pointee.and_then(|t| self.kernel.type_by_name(t).ok()))
            }
            ExprKind::Cast { type_name, module, .. } => {
                Some(Some(crate::kernel::cast_type(self.kernel, type_name, module.as_deref()).ok()?))
            }
            ExprKind::Member { base, name } => match self.resolve(base)? {
                Some(ty) => match self.kernel.member(ty, name) {
                    Ok((_, member)) => Some(self.struct_behind(member)),
                    Err(_) => self.kernel.bitfield(ty, name).ok().map(|_| None),
                },
                None => Some(None),
            },
            ExprKind::Index { base, .. } | ExprKind::AddressOf(base) | ExprKind::Deref(base) => {
                self.resolve(base).map(|_| None)
            }
            _ => Some(None),
        }
    }

    /// The struct a value of type `ty` leads to by `->`: its target for a pointer, itself
    /// for a struct (or array, whose element `[i]` would take).
    fn struct_behind(&self, ty: TypeId) -> Option<TypeId> {
        match self.kernel.type_of(ty).ok()? {
            CType::Pointer { to } => Some(to),
            CType::Struct { .. } => Some(ty),
            _ => None,
        }
    }
}

/// Replaces `@defined(e)` with 1 or 0 for this probe's context (see
/// [`ProbeContext::resolve`]), and drops the code that constant conditions rule out, so
/// `@defined($x) ? $x : 0` type-checks where `$x` does not exist (as SystemTap resolves it
/// at compile time).
fn fold_defined_block(block: &mut Block, cx: &ProbeContext<'_>) {
    for s in &mut block.stmts {
        fold_defined_stmt(s, cx);
    }
}

fn fold_defined_stmt(s: &mut Stmt, cx: &ProbeContext<'_>) {
    match &mut s.kind {
        StmtKind::Block(b) => fold_defined_block(b, cx),
        StmtKind::Expr(e) | StmtKind::Delete(e) | StmtKind::Return(Some(e)) => fold_defined_expr(e, cx),
        StmtKind::If { cond, then, els } => {
            fold_defined_expr(cond, cx);
            fold_defined_stmt(then, cx);
            if let Some(e) = els {
                fold_defined_stmt(e, cx);
            }
            if let ExprKind::Number(n) = cond.kind {
                let empty = Stmt { kind: StmtKind::Empty, span: s.span };
                let chosen = if n != 0 { Some((**then).clone()) } else { els.as_deref().cloned() };
                *s = chosen.unwrap_or(empty);
            }
        }
        StmtKind::While { cond, body } => {
            fold_defined_expr(cond, cx);
            fold_defined_stmt(body, cx);
        }
        StmtKind::For { init, cond, step, body } => {
            for e in [init, cond, step].into_iter().flatten() {
                fold_defined_expr(e, cx);
            }
            fold_defined_stmt(body, cx);
        }
        StmtKind::Foreach(f) => fold_defined_stmt(&mut f.body, cx),
        StmtKind::Try { body, catch, .. } => {
            fold_defined_block(body, cx);
            fold_defined_block(catch, cx);
        }
        _ => {}
    }
}

fn fold_defined_expr(e: &mut Expr, cx: &ProbeContext<'_>) {
    use ExprKind::*;
    match &mut e.kind {
        Defined(inner) => {
            e.kind = Number(cx.resolve(inner).is_some() as i64);
        }
        Ternary { cond, then, els } => {
            fold_defined_expr(cond, cx);
            fold_defined_expr(then, cx);
            fold_defined_expr(els, cx);
            if let Number(n) = cond.kind {
                *e = if n != 0 { (**then).clone() } else { (**els).clone() };
            }
        }
        Logical { op, lhs, rhs } => {
            fold_defined_expr(lhs, cx);
            fold_defined_expr(rhs, cx);
            match (op, &lhs.kind) {
                (ast::LogicalOp::And, Number(0)) => e.kind = Number(0),
                (ast::LogicalOp::Or, Number(n)) if *n != 0 => e.kind = Number(1),
                _ => {}
            }
        }
        Unary { op: ast::UnaryOp::Not, expr } => {
            fold_defined_expr(expr, cx);
            if let Number(n) = expr.kind {
                e.kind = Number((n == 0) as i64);
            }
        }
        // SystemTap's `returnval()` (embedded C there): the probed function's or syscall's
        // result, in a return probe.
        Call { name, args } if name == "returnval" && args.is_empty() => {
            let field = ["return", "ret"].into_iter().find(|f| cx.format.is_some_and(|fm| fm.field(f).is_some()));
            if let Some(field) = field {
                e.kind = TargetVar(field.to_string());
            }
        }
        Call { args, .. } => args.iter_mut().for_each(|a| fold_defined_expr(a, cx)),
        // SystemTap's procfs probes append their text to `$value`; a page probe prints it.
        Assign { op: ast::AssignOp::Op(ast::BinaryOp::Concat), target, value }
            if cx.page && matches!(&target.kind, TargetVar(v) if v == "value") =>
        {
            fold_defined_expr(value, cx);
            e.kind = Call { name: "print".into(), args: vec![(**value).clone()] };
        }
        Binary { lhs, rhs, .. } | Compare { lhs, rhs, .. } => {
            fold_defined_expr(lhs, cx);
            fold_defined_expr(rhs, cx);
        }
        Assign { target, value, .. } => {
            fold_defined_expr(target, cx);
            fold_defined_expr(value, cx);
        }
        Unary { expr, .. } => fold_defined_expr(expr, cx),
        _ => {}
    }
}

/// `syscall.connect`, `kernel.trace("sched:*")`, `timer.ms(100)`.
/// Refuses a point whose wildcard names or string arguments nest or multiply `{a,b}` groups
/// past what [`Glob`] expands, before any of them is matched against the kernel's names.
fn check_patterns(point: &ProbePoint) -> Result<(), Unresolved> {
    for c in &point.components {
        let arg = match &c.arg {
            Some(Literal::String(s)) => Some(s.as_str()),
            _ => None,
        };
        for pattern in std::iter::once(c.name.as_str()).chain(arg).filter(|p| p.contains('{')) {
            Glob::new(pattern).map_err(|e| Unresolved::Failed(pattern_error(e, c.span)))?;
        }
    }
    Ok(())
}

pub(crate) fn pattern_error(e: crate::glob::GlobError, span: Span) -> Diagnostic {
    Diagnostic::error("E0114", format!("probe-point pattern too complex: {e}"), span)
        .with_help("split it into several probe points")
}

pub fn point_text(p: &ProbePoint) -> String {
    components_text(&p.components)
}

fn components_text(components: &[Component]) -> String {
    components
        .iter()
        .map(|c| match &c.arg {
            None => c.name.clone(),
            Some(Literal::Number(n)) => format!("{}({n})", c.name),
            Some(Literal::String(s)) => format!("{}({s:?})", c.name),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether a point the user wrote (possibly with wildcards) names an alias.
pub fn point_matches(user: &[Component], alias: &[Component]) -> bool {
    crate::glob::components_match(user, alias, spans_components, |u, a| glob_match(&u.name, &a.name) && u.arg == a.arg)
}

/// A pattern's `**`, which stands for any number of components.
pub fn spans_components(c: &Component) -> bool {
    c.name == "**" && c.arg.is_none()
}

/// The closest candidate by edit distance, if close enough to be a likely typo.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.len() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Every expression in a block, for passes that only look.
pub fn walk_exprs<'a>(block: &'a Block, f: &mut dyn FnMut(&'a Expr)) {
    for s in &block.stmts {
        walk_stmt(s, f);
    }
}

/// Every expression in a statement and the statements in it.
pub fn walk_stmt<'a>(s: &'a Stmt, f: &mut dyn FnMut(&'a Expr)) {
    match &s.kind {
        StmtKind::Block(b) => walk_exprs(b, f),
        StmtKind::Expr(e) | StmtKind::Delete(e) | StmtKind::Return(Some(e)) => walk_expr(e, f),
        StmtKind::If { cond, then, els } => {
            walk_expr(cond, f);
            walk_stmt(then, f);
            if let Some(e) = els {
                walk_stmt(e, f);
            }
        }
        StmtKind::While { cond, body } => {
            walk_expr(cond, f);
            walk_stmt(body, f);
        }
        StmtKind::For { init, cond, step, body } => {
            for e in [init, cond, step].into_iter().flatten() {
                walk_expr(e, f);
            }
            walk_stmt(body, f);
        }
        StmtKind::Foreach(fe) => {
            walk_expr(&fe.array, f);
            if let Some(l) = &fe.limit {
                walk_expr(l, f);
            }
            walk_stmt(&fe.body, f);
        }
        StmtKind::Try { body, catch, .. } => {
            walk_exprs(body, f);
            walk_exprs(catch, f);
        }
        _ => {}
    }
}

pub fn walk_expr<'a>(e: &'a Expr, f: &mut dyn FnMut(&'a Expr)) {
    f(e);
    use ExprKind::*;
    match &e.kind {
        Index { base, keys } => {
            walk_expr(base, f);
            keys.iter().for_each(|k| walk_expr(k, f));
        }
        Member { base: x, .. }
        | AddressOf(x)
        | Deref(x)
        | Unary { expr: x, .. }
        | Stat { expr: x, .. }
        | Entry(x)
        | Defined(x)
        | Cast { expr: x, .. } => walk_expr(x, f),
        Hist { expr, kind } => {
            walk_expr(expr, f);
            if let ast::HistKind::Linear { lo, hi, step } = kind {
                [lo, hi, step].into_iter().for_each(|x| walk_expr(x, f));
            }
        }
        Call { args, .. } => args.iter().for_each(|a| walk_expr(a, f)),
        Binary { lhs, rhs, .. } | Logical { lhs, rhs, .. } | Compare { lhs, rhs, .. } => {
            walk_expr(lhs, f);
            walk_expr(rhs, f);
        }
        Regex { lhs, pattern, .. } => {
            walk_expr(lhs, f);
            walk_expr(pattern, f);
        }
        Ternary { cond, then, els } => {
            walk_expr(cond, f);
            walk_expr(then, f);
            walk_expr(els, f);
        }
        Assign { target, value, .. } | Aggregate { target, value } => {
            walk_expr(target, f);
            walk_expr(value, f);
        }
        IncDec { target, .. } => walk_expr(target, f),
        In { keys, array } => {
            keys.iter().for_each(|k| walk_expr(k, f));
            walk_expr(array, f);
        }
        Number(_)
        | String(_)
        | Ident(_)
        | TargetVar(_)
        | AtVar(_)
        | ScriptArg { .. }
        | ArgCount { .. }
        | Const(_)
        | EmbeddedC
        | Wildcard => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("exeсname", ["execname", "pid"]), Some("execname"));
        assert_eq!(did_you_mean("zzz", ["execname", "pid"]), None);
    }

    /// Kernel probes compile only for machines whose `struct pt_regs` bpftap knows; user-space
    /// probes for any.
    #[test]
    fn the_machine_compiled_for_is_the_kernels() {
        let codes = |machine: &str, text: &str| {
            let mut sources = crate::span::SourceMap::default();
            let file = sources.add("t.stp", text, crate::span::SourceKind::Script);
            let env = crate::preprocess::PreprocessEnv::default();
            let (script, diags) = crate::parse::parse(&sources, file, &env, &mut Default::default());
            assert!(diags.is_empty(), "{diags:?}");
            let kernel = crate::kernel::Fixture { machine: Some(machine.into()), ..Default::default() };
            let (out, diags) = elaborate(&Input { script: &script, tapsets: &[] }, &kernel);
            (out.arch, diags.iter().map(|d| d.code).collect::<Vec<_>>())
        };
        assert_eq!(codes("aarch64", "probe timer.profile { }"), (Arch::Arm64, vec![]));
        assert_eq!(codes("x86_64", "probe timer.profile { }"), (Arch::X86_64, vec![]));
        assert_eq!(codes("riscv64", "probe timer.profile { }").1, ["E0115"]);
        assert_eq!(codes("riscv64", "probe begin { }").1, Vec::<&str>::new());
    }
}
