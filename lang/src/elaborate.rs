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
//! for names no alias defines, then built-in families (`begin`, `end`, `error`, `never`,
//! `prometheus`, `timer.*`, `perf.sw.*`, `kernel.trace`, `kernel.function`, `process(...)`,
//! `netfilter.*`, ...), and last an alias with a suffix (`a.return` from alias `a`). A
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

use crate::ast::{self, AliasKind, Block, Component, Expr, ExprKind, Item, Literal, ProbePoint, Stmt, StmtKind};
use crate::builtins;
use crate::diag::Diagnostic;
pub use crate::glob::{glob_match, is_pattern, Glob};
use crate::ir::{self, PerfEvent, PerfSample, Target};
use crate::kernel::{CType, FunctionSig, KernelError, KernelInfo, TracepointFormat, TypeId};
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
    let mut cx = Ctx { kernel, aliases: std::rc::Rc::new(aliases), diags: Vec::new(), tracepoints: None };
    let mut out = Elaborated::default();
    // Script items first, so that script functions and aliases shadow tapset ones.
    for (n, script) in std::iter::once(input.script).chain(input.tapsets.iter()).enumerate() {
        for item in &script.items {
            match item {
                Item::Alias(_) => {}
                Item::Function(f) => {
                    let mut f = f.clone();
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
    if !functions.contains_key(&key) {
        let mut f = f.clone();
        f.name = key.clone();
        functions.insert(key, f);
    }
}

pub fn embedded_c(span: Span) -> Diagnostic {
    Diagnostic::error("E0105", "embedded C is not supported: bpftap compiles scripts to BPF, with no C compiler", span)
        .with_label("embedded C here")
        .with_help("write this in the script language, or use a built-in function")
}

struct Ctx<'k> {
    kernel: &'k dyn KernelInfo,
    /// Shared so that resolving a point (recursively) does not copy every alias.
    aliases: std::rc::Rc<Vec<ast::Alias>>,
    diags: Vec<Diagnostic>,
    tracepoints: Option<Vec<(String, String)>>,
}

/// One resolution of a probe point: a target and the alias bodies around the user's body.
struct Resolved {
    point: String,
    user_point: String,
    target: Target,
    format: Option<TracepointFormat>,
    function: Option<FunctionSig>,
    prologue: Vec<Block>,
    epilogue: Vec<Block>,
}

impl Resolved {
    /// A point that is its own target, with no context and no alias bodies.
    fn plain(target: Target, text: String) -> Resolved {
        Resolved::with_context(target, text, None)
    }

    fn with_context(target: Target, text: String, format: Option<TracepointFormat>) -> Resolved {
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
fn literal_number(c: &Component) -> Option<i64> {
    match c.arg {
        Some(Literal::Number(n)) => Some(n),
        _ => None,
    }
}

/// Why a point did not resolve.
enum Unresolved {
    /// Nothing by that name.
    Unknown,
    /// A family matched but the kernel lacks it; the diagnostic explains.
    Failed(Diagnostic),
}

const MAX_ALIAS_DEPTH: usize = 16;

/// The most kernel functions one wildcard may attach to: each is a program and an attachment
/// of its own (bpftrace 0.17 stops at 512 probes by default).
const MAX_FUNCTION_PROBES: usize = 1000;

impl Ctx<'_> {
    fn probe(&mut self, probe: &ast::Probe, out: &mut Elaborated) {
        for point in &probe.points {
            let never = matches!(point.components.as_slice(), [c] if c.name == "never" && c.arg.is_none());
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
                        self.entry_values(&r.target, &body, out);
                        on_raw_syscalls(&mut r.target);
                        out.probes.push(ElabProbe {
                            body,
                            point: r.point,
                            user_point: r.user_point,
                            target: r.target,
                            format: r.format,
                            function: r.function,
                            span: probe.span,
                            never,
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

    /// `@entry(e)` in a syscall's return probe: a probe on the syscall's entry stores `e` in
    /// a global array by thread (see [`entry_value`]), which the return probe reads. An
    /// argument function (`int_arg(1)`) there is `@entry` of itself, since the return
    /// record holds only the result: SystemTap gives the entry's arguments too.
    fn entry_values(&mut self, target: &Target, body: &Block, out: &mut Elaborated) {
        let Target::Tracepoint { group, event, .. } = target else { return };
        let Some(name) = event.strip_prefix("sys_exit_").filter(|_| group == "syscalls") else { return };
        let mut entries = Vec::new();
        walk_exprs(body, &mut |e| match &e.kind {
            ExprKind::Entry(inner) => entries.push((**inner).clone()),
            ExprKind::Call { name, .. } if builtins::arg_function(name).is_some() => entries.push(e.clone()),
            _ => {}
        });
        if entries.is_empty() {
            return;
        }
        let enter = format!("sys_enter_{name}");
        let Ok(format) = self.kernel.tracepoint("syscalls", &enter) else { return };
        for inner in entries {
            let span = inner.span;
            let global = entry_array(span);
            if out.globals.iter().any(|g| g.name == global) {
                continue;
            }
            let slot = entry_value(span);
            out.globals.push(ast::Global {
                name: global,
                init: None,
                size: None,
                is_array: true,
                wrap: false,
                private: true,
                tapset: false,
                span,
            });
            let store = ExprKind::Assign { op: ast::AssignOp::Assign, target: Box::new(slot), value: Box::new(inner) };
            let stmt = Stmt { kind: StmtKind::Expr(Expr::new(store, span)), span };
            let mut target = Target::Tracepoint {
                group: "syscalls".into(),
                event: enter.clone(),
                record_size: format.record_size(),
            };
            on_raw_syscalls(&mut target);
            out.probes.push(ElabProbe {
                point: format!("kernel.trace(\"syscalls:{enter}\")"),
                user_point: format!("syscall.{name}"),
                target,
                format: Some(format.clone()),
                function: None,
                body: Block { stmts: vec![stmt], span },
                span,
                never: false,
            });
        }
    }

    /// A tracepoint probe whose body reads a C argument of the tracepoint (`$prev` of
    /// sched_switch), not only fields of its record (`$prev_pid`), becomes a raw tracepoint
    /// probe: its `$vars` are then the arguments, typed from BTF as a kernel function's
    /// parameters are. A name that is both (`$irq` of irq_handler_entry) stays a record
    /// field while the body reads no argument-only name, nor follows a member of a field the
    /// record has as a `void *` (`$timer->function` of timer_expire_entry: SystemTap's `$timer`
    /// is the argument, a `struct timer_list *`). Returns the record's format when the probe
    /// switched, for [`record_fields_read`].
    fn read_tracepoint_args(&self, r: &mut Resolved, body: &Block) -> Option<TracepointFormat> {
        let (Target::Tracepoint { event, .. }, Some(format)) = (&r.target, &r.format) else { return None };
        let untyped = |name: &str| format.field(name).is_some_and(|f| f.c_type.replace(' ', "") == "void*");
        let mut unknown = BTreeSet::new();
        walk_exprs(body, &mut |e| match &e.kind {
            ExprKind::TargetVar(name) if format.field(name).is_none() => {
                unknown.insert(name.clone());
            }
            ExprKind::Member { base, .. } => {
                if let ExprKind::TargetVar(name) = &base.kind {
                    if untyped(name) {
                        unknown.insert(name.clone());
                    }
                }
            }
            _ => {}
        });
        if unknown.is_empty() {
            return None;
        }
        let args = self.kernel.tracepoint_args(event).ok()?;
        if !args.params.iter().any(|(name, _)| unknown.contains(name)) {
            return None;
        }
        r.target = Target::RawTracepoint { event: event.clone(), nargs: args.params.len() as u32 };
        let record = r.format.replace(function_context(&args, false));
        r.function = Some(args);
        record
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
            return match self.builtin(point) {
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

    fn tracepoints(&mut self) -> &[(String, String)] {
        if self.tracepoints.is_none() {
            self.tracepoints = Some(self.kernel.tracepoints());
        }
        self.tracepoints.as_deref().unwrap_or_default()
    }

    /// `syscall.*` and other wildcards matching many syscalls: one program on the
    /// `raw_syscalls` tracepoint with `name` and `syscall_nr`, filtered to the matching
    /// numbers, instead of one attachment per syscall. Attaching and detaching hundreds of
    /// tracepoints takes seconds (a perf-event link takes about 85 ms to close here); one
    /// raw tracepoint takes a millisecond, and its filter costs a few instructions.
    fn syscall_wildcard(&mut self, point: &ProbePoint) -> Option<Resolved> {
        const MIN_MATCHES: usize = 5;
        let comps = &point.components;
        let family = comps.first().map(|c| c.name.as_str());
        if !matches!(family, Some("syscall" | "nd_syscall")) || !(2..=3).contains(&comps.len()) {
            return None;
        }
        if comps.iter().any(|c| c.arg.is_some()) || !is_pattern(&comps[1].name) {
            return None;
        }
        let want_return = match comps.get(2) {
            None => false,
            Some(c) if c.name == "return" => true,
            Some(_) => return None,
        };
        let pattern = Glob::new(&comps[1].name).ok()?;
        let numbers: Vec<u32> = crate::syscall_table::SYSCALLS
            .iter()
            .filter(|(_, name)| pattern.matches(name))
            .map(|(nr, _)| *nr)
            .collect();
        if numbers.len() < MIN_MATCHES {
            return None;
        }
        let event = if want_return { "sys_exit" } else { "sys_enter" };
        let mut format = self.kernel.tracepoint("raw_syscalls", event).ok()?;
        let raw_args = if want_return { Vec::new() } else { name_raw_args(&mut format) };
        let span = point.span;
        let id = || Expr::new(ExprKind::TargetVar("id".into()), span);
        let mut stmts = Vec::new();
        if numbers.len() < crate::syscall_table::SYSCALLS.len() {
            // if (!(id == a || id == b ...)) next
            let test = numbers
                .iter()
                .map(|nr| {
                    let lhs = Box::new(id());
                    let rhs = Box::new(Expr::new(ExprKind::Number(*nr as i64), span));
                    Expr::new(ExprKind::Compare { op: ast::CompareOp::Eq, lhs, rhs }, span)
                })
                .reduce(|a, b| {
                    Expr::new(ExprKind::Logical { op: ast::LogicalOp::Or, lhs: Box::new(a), rhs: Box::new(b) }, span)
                })?;
            let not = Expr::new(ExprKind::Unary { op: ast::UnaryOp::Not, expr: Box::new(test) }, span);
            let next = Stmt { kind: StmtKind::Next, span };
            stmts.push(Stmt { kind: StmtKind::If { cond: not, then: Box::new(next), els: None }, span });
        }
        stmts.push(assign_stmt("syscall_nr", id(), span));
        // IMPORTANT: tapset functions called here are listed in `select::GENERATED_CALLS`.
        let name_call = Expr::new(ExprKind::Call { name: "syscall_name".into(), args: vec![id()] }, span);
        stmts.push(assign_stmt("name", name_call, span));
        if want_return {
            let ret = Expr::new(ExprKind::TargetVar("ret".into()), span);
            stmts.push(assign_stmt("retval", ret.clone(), span));
            let call = Expr::new(ExprKind::Call { name: "_syscall_retstr".into(), args: vec![ret] }, span);
            stmts.push(assign_stmt("retstr", call, span));
        } else if !raw_args.is_empty() {
            // Which argument is a string or a pointer depends on the syscall; one program for
            // all of them prints the raw values (see `_syscall_raw_argstr`).
            let args = raw_args.iter().map(|a| Expr::new(ExprKind::TargetVar(a.clone()), span)).collect();
            let call = Expr::new(ExprKind::Call { name: "_syscall_raw_argstr".into(), args }, span);
            stmts.push(assign_stmt("argstr", call, span));
        }
        Some(Resolved {
            point: format!("kernel.trace(\"raw_syscalls:{event}\")"),
            user_point: point_text(point),
            target: Target::Tracepoint {
                group: "raw_syscalls".into(),
                event: event.into(),
                record_size: format.record_size(),
            },
            format: Some(format),
            function: None,
            prologue: vec![Block { stmts, span }],
            epilogue: vec![],
        })
    }

    /// `syscall.NAME` and `syscall.NAME.return` for every syscall tracepoint, with `name`
    /// (and `retval` on return) set, and each tracepoint field as `$field`.
    fn syscalls(&mut self, point: &ProbePoint, defined: &BTreeSet<String>) -> Result<Vec<Resolved>, Unresolved> {
        let comps = &point.components;
        let family = comps.first().map(|c| c.name.as_str());
        if !matches!(family, Some("syscall" | "nd_syscall")) || comps.len() < 2 || comps.len() > 3 {
            return Err(Unresolved::Unknown);
        }
        if comps.iter().any(|c| c.arg.is_some()) {
            return Err(Unresolved::Unknown);
        }
        let want_return = match comps.get(2) {
            None => false,
            Some(c) if c.name == "return" => true,
            Some(_) => return Err(Unresolved::Unknown),
        };
        let pattern = comps[1].name.clone();
        // A plain name needs no list of every tracepoint: its format file answers.
        let names: Vec<String> = if is_pattern(&pattern) {
            let glob = Glob::new(&pattern).map_err(|e| Unresolved::Failed(pattern_error(e, point.span)))?;
            self.tracepoints()
                .iter()
                .filter(|(g, _)| g == "syscalls")
                .filter_map(|(_, e)| e.strip_prefix("sys_enter_"))
                .filter(|n| glob.matches(n))
                .map(String::from)
                .collect()
        } else {
            vec![pattern.clone()]
        };
        let mut out = Vec::new();
        for name in names {
            let user_point =
                format!("{}.{}{}", family.unwrap_or("syscall"), name, if want_return { ".return" } else { "" });
            if defined.contains(&user_point) {
                continue;
            }
            let event = format!("sys_{}_{}", if want_return { "exit" } else { "enter" }, name);
            let Ok(format) = self.kernel.tracepoint("syscalls", &event) else { continue };
            let span = point.span;
            let mut stmts = vec![assign_stmt("name", Expr::new(ExprKind::String(name.clone()), span), span)];
            if !want_return {
                stmts.extend(generic_syscall_vars(&format, span));
            }
            if want_return {
                let ret = Expr::new(ExprKind::TargetVar("ret".into()), span);
                stmts.push(assign_stmt("retval", ret.clone(), span));
                // IMPORTANT: listed in `select::GENERATED_CALLS`.
                let call = Expr::new(ExprKind::Call { name: "_syscall_retstr".into(), args: vec![ret] }, span);
                stmts.push(assign_stmt("retstr", call, span));
            }
            out.push(Resolved {
                point: format!("kernel.trace(\"syscalls:{event}\")"),
                user_point,
                target: Target::Tracepoint { group: "syscalls".into(), event, record_size: format.record_size() },
                format: Some(format),
                function: None,
                prologue: vec![Block { stmts, span }],
                epilogue: vec![],
            });
        }
        if out.is_empty() {
            Err(Unresolved::Unknown)
        } else {
            Ok(out)
        }
    }

    fn builtin(&mut self, point: &ProbePoint) -> Result<Vec<Resolved>, Unresolved> {
        let comps = &point.components;
        let names: Vec<&str> = comps.iter().map(|c| c.name.as_str()).collect();
        let number = literal_number;
        let simple = |target: Target, text: String| Ok(vec![Resolved::plain(target, text)]);
        match names.as_slice() {
            ["begin"] => simple(Target::Begin { priority: number(&comps[0]).unwrap_or(0) }, "begin".into()),
            ["end"] => simple(Target::End { priority: number(&comps[0]).unwrap_or(0) }, "end".into()),
            ["error"] => simple(Target::Error { priority: number(&comps[0]).unwrap_or(0) }, "error".into()),
            // Type-checked as a user-space probe, then left out (see `ElabProbe::never`).
            ["never"] => simple(Target::Begin { priority: 0 }, "never".into()),
            ["prometheus"] => simple(Target::Page { path: ir::METRICS_PATH }, "prometheus".into()),
            ["json_data"] => simple(Target::Page { path: ir::JSON_DATA_PATH }, "json_data".into()),
            ["__json_metadata"] => simple(Target::Page { path: ir::JSON_METADATA_PATH }, "__json_metadata".into()),
            ["__stdin"] => simple(Target::Stdin, "__stdin".into()),
            ["timer", "profile"] => {
                let hz = self.kernel.config("CONFIG_HZ").and_then(|v| v.parse().ok()).unwrap_or(250);
                let target = Target::Perf { event: PerfEvent::CpuClock, sample: PerfSample::Frequency(hz) };
                simple(target, "timer.profile".into())
            }
            ["timer", unit] | ["timer", unit, "randomize"] => timer(unit, &comps[1]),
            ["netfilter", "hook", "pf"] | ["netfilter", "pf", "hook"] => netfilter(point),
            ["perf", "sw", clock] | ["perf", "sw", clock, "sample"] if matches!(*clock, "cpu_clock" | "task_clock") => {
                let event = if *clock == "cpu_clock" { PerfEvent::CpuClock } else { PerfEvent::TaskClock };
                let period = comps.get(3).and_then(number).unwrap_or(1_000_000);
                if period <= 0 {
                    return Err(Unresolved::Failed(Diagnostic::error(
                        "E0103",
                        format!("sample period must be positive, not {period}"),
                        comps[3].span,
                    )));
                }
                let period = period as u64;
                let target = Target::Perf { event, sample: PerfSample::Period(period) };
                simple(target, point_text(point))
            }
            ["process", "function"] | ["process", "function", "call"] | ["process", "function", "return"] => {
                process_function(point)
            }
            // `kprobe.function` is untyped in SystemTap; bpftap types it from BTF all the same.
            [family @ ("kernel" | "kprobe"), "function"]
            | [family @ ("kernel" | "kprobe"), "function", "call" | "return"] => {
                let Some(Literal::String(pattern)) = &comps[1].arg else {
                    return Err(Unresolved::Failed(Diagnostic::error(
                        "E0108",
                        format!("`{family}.function` needs a function name such as \"vfs_read\""),
                        point.span,
                    )));
                };
                self.unprobeable_functions(point)?;
                self.kernel_function(None, pattern, names.last() == Some(&"return"), point)
            }
            ["module", "function"] | ["module", "function", "call" | "return"] => {
                let (Some(Literal::String(module)), Some(Literal::String(pattern))) = (&comps[0].arg, &comps[1].arg)
                else {
                    return Err(Unresolved::Failed(Diagnostic::error(
                        "E0108",
                        "write a module function probe as module(\"nfsd\").function(\"nfsd_open\")",
                        point.span,
                    )));
                };
                self.unprobeable_functions(point)?;
                self.kernel_function(Some(module), pattern, names.last() == Some(&"return"), point)
            }
            ["kernel", "trace"] => {
                let Some(Literal::String(spec)) = &comps[1].arg else {
                    return Err(Unresolved::Failed(Diagnostic::error(
                        "E0104",
                        "`kernel.trace` needs a tracepoint name such as \"sched:sched_switch\"",
                        point.span,
                    )));
                };
                self.kernel_trace(spec, point)
            }
            _ => Err(Unresolved::Unknown),
        }
    }

    /// A `kernel.function` point marked `?` or `!` on a kernel that cannot probe functions
    /// (no kprobes, no BPF trampolines): not resolved, so that the next point (a tracepoint,
    /// in tapsets) is taken instead of failing at attach time.
    fn unprobeable_functions(&self, point: &ProbePoint) -> Result<(), Unresolved> {
        if (point.optional || point.sufficient) && !self.kernel.probes_functions() {
            return Err(Unresolved::Failed(Diagnostic::error(
                "E0109",
                "this kernel cannot probe its functions (no kprobes, no fentry)",
                point.span,
            )));
        }
        Ok(())
    }

    /// `kernel.function("pattern")`, or with `module` `module("m").function("pattern")`:
    /// one probe per matching function in the kernel's BTF (the module's). (`name@file:line`
    /// forms need debuginfo, which bpftap does without: refused.)
    fn kernel_function(
        &mut self,
        module: Option<&str>,
        pattern: &str,
        ret: bool,
        point: &ProbePoint,
    ) -> Result<Vec<Resolved>, Unresolved> {
        if let Some(at) = pattern.find(['@', ':']) {
            return Err(Unresolved::Failed(
                Diagnostic::error(
                    "E0113",
                    format!("`{}` needs the kernel's debuginfo (DWARF), which bpftap does without", &pattern[at..]),
                    point.span,
                )
                .with_help(format!("probe the function by its name alone: kernel.function(\"{}\")", &pattern[..at])),
            ));
        }
        let family = match module {
            Some(m) => format!("module({m:?})"),
            None => "kernel".to_string(),
        };
        let failed = |e: KernelError| {
            // Functions get renamed, inlined or dropped between releases: say which kernel
            // this one is missing from.
            let (message, help) = match e {
                KernelError::NoFunction(f) => (
                    format!("Linux {} has no function `{f}` (none in its BTF)", self.kernel.release()),
                    format!("`bpftap -l '{family}.function(\"PATTERN\")'` lists the functions"),
                ),
                KernelError::NoModule(m) => (
                    format!("module `{m}` is not loaded in kernel {}", self.kernel.release()),
                    format!("load it first (`modprobe {m}`)"),
                ),
                e => (e.to_string(), format!("`bpftap -l '{family}.function(\"PATTERN\")'` lists the functions")),
            };
            Unresolved::Failed(Diagnostic::error("E0109", message, point.span).with_help(help))
        };
        let names: Vec<String> = if is_pattern(pattern) {
            let glob = Glob::new(pattern).map_err(|e| Unresolved::Failed(pattern_error(e, point.span)))?;
            let all = match module {
                Some(m) => self.kernel.module_functions(m).map_err(failed)?,
                None => self.kernel.functions(),
            };
            all.into_iter().filter(|n| glob.matches(n)).collect()
        } else {
            vec![pattern.to_string()]
        };
        if names.len() > MAX_FUNCTION_PROBES {
            return Err(Unresolved::Failed(
                Diagnostic::error(
                    "E0112",
                    format!(
                        "\"{pattern}\" matches {} {}; bpftap attaches at most {MAX_FUNCTION_PROBES}",
                        names.len(),
                        match module {
                            Some(m) => format!("functions of module `{m}`"),
                            None => "kernel functions".to_string(),
                        }
                    ),
                    point.span,
                )
                .with_help(format!(
                    "narrow the pattern; `bpftap -l '{family}.function(\"PATTERN\")'` lists the matches"
                )),
            ));
        }
        let mut out = Vec::new();
        for name in names {
            let sig = match module {
                Some(m) => self.kernel.module_function(m, &name),
                None => self.kernel.function(&name),
            };
            match sig {
                Ok(sig) => {
                    let text = format!("{family}.function(\"{name}\"){}", if ret { ".return" } else { ".call" });
                    out.push(Resolved {
                        point: text.clone(),
                        user_point: text,
                        target: Target::KernelFunction {
                            name,
                            module: module.map(String::from),
                            ret,
                            nargs: sig.params.len() as u32,
                        },
                        format: Some(function_context(&sig, ret)),
                        function: Some(sig),
                        prologue: vec![],
                        epilogue: vec![],
                    });
                }
                Err(e) if !is_pattern(pattern) => return Err(failed(e)),
                Err(_) => {}
            }
        }
        if out.is_empty() {
            return Err(Unresolved::Failed(Diagnostic::error(
                "E0109",
                format!("no {family} function matches \"{pattern}\""),
                point.span,
            )));
        }
        Ok(out)
    }

    fn kernel_trace(&mut self, spec: &str, point: &ProbePoint) -> Result<Vec<Resolved>, Unresolved> {
        let (gpat, epat) = match spec.split_once(':') {
            Some((g, e)) => (g.to_string(), e.to_string()),
            None => ("*".to_string(), spec.to_string()),
        };
        let no_match = || {
            Unresolved::Failed(
                Diagnostic::error("E0106", format!("no tracepoint matches \"{spec}\" in this kernel"), point.span)
                    .with_help("`bpftap -l 'kernel.trace(\"*\")'` lists the tracepoints"),
            )
        };
        // A plain name needs no list of every tracepoint (2000 and more, over a millisecond to
        // read): its format file answers.
        let matches: Vec<(String, String)> = if is_pattern(&gpat) || is_pattern(&epat) {
            let glob = |p: &str| Glob::new(p).map_err(|e| Unresolved::Failed(pattern_error(e, point.span)));
            let (gglob, eglob) = (glob(&gpat)?, glob(&epat)?);
            self.tracepoints().iter().filter(|(g, e)| gglob.matches(g) && eglob.matches(e)).cloned().collect()
        } else {
            vec![(gpat, epat)]
        };
        if matches.is_empty() {
            return Err(no_match());
        }
        let mut out = Vec::new();
        for (group, event) in matches {
            match self.kernel.tracepoint(&group, &event) {
                Ok(format) => out.push(Resolved {
                    point: format!("kernel.trace(\"{group}:{event}\")"),
                    user_point: format!("kernel.trace(\"{group}:{event}\")"),
                    target: Target::Tracepoint { group, event, record_size: format.record_size() },
                    format: Some(format),
                    function: None,
                    prologue: vec![],
                    epilogue: vec![],
                }),
                Err(KernelError::NoTracepoint(..)) if !is_pattern(spec) => return Err(no_match()),
                Err(e) if !is_pattern(spec) => {
                    return Err(Unresolved::Failed(Diagnostic::error("E0106", e.to_string(), point.span)))
                }
                Err(_) => {}
            }
        }
        Ok(out)
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

/// Netfilter protocol families (`NFPROTO_*`) by name.
const NF_PROTOCOLS: &[(&str, u32)] =
    &[("NFPROTO_IPV4", 2), ("NFPROTO_IPV6", 10), ("NFPROTO_INET", 1), ("NFPROTO_ARP", 3), ("NFPROTO_BRIDGE", 7)];
/// Netfilter hooks by name; the IPv6 names are the same numbers.
const NF_HOOKS: &[(&str, u32)] = &[
    ("NF_INET_PRE_ROUTING", 0),
    ("NF_INET_LOCAL_IN", 1),
    ("NF_INET_FORWARD", 2),
    ("NF_INET_LOCAL_OUT", 3),
    ("NF_INET_POST_ROUTING", 4),
    ("NF_IP_PRE_ROUTING", 0),
    ("NF_IP_LOCAL_IN", 1),
    ("NF_IP_FORWARD", 2),
    ("NF_IP_LOCAL_OUT", 3),
    ("NF_IP_POST_ROUTING", 4),
    ("NF_IP6_PRE_ROUTING", 0),
    ("NF_IP6_LOCAL_IN", 1),
    ("NF_IP6_FORWARD", 2),
    ("NF_IP6_LOCAL_OUT", 3),
    ("NF_IP6_POST_ROUTING", 4),
    ("NF_BR_PRE_ROUTING", 0),
    ("NF_BR_LOCAL_IN", 1),
    ("NF_BR_FORWARD", 2),
    ("NF_BR_LOCAL_OUT", 3),
    ("NF_BR_POST_ROUTING", 4),
    ("NF_BR_BROUTING", 5),
];
/// Where our programs sit among the hook's functions: before conntrack (-200) and the
/// filter table (0), so they see every packet, as SystemTap's hooks do.
const NF_BPF_PRIORITY: i32 = -1_000_000;

/// `timer.ms(N)` and its siblings (`unit` is `ms`, `s`, `hz`, ...).
fn timer(unit: &str, count: &Component) -> Result<Vec<Resolved>, Unresolved> {
    let per_unit: Option<fn(i64) -> Option<i64>> = match unit {
        "s" | "sec" => Some(|n| n.checked_mul(1_000_000_000)),
        "ms" | "msec" => Some(|n| n.checked_mul(1_000_000)),
        "us" | "usec" => Some(|n| n.checked_mul(1_000)),
        "ns" | "nsec" => Some(Some),
        "hz" => Some(|n| (n > 0).then(|| 1_000_000_000 / n)),
        "jiffies" => Some(|n| n.checked_mul(4_000_000)),
        _ => None,
    };
    let (Some(f), Some(n)) = (per_unit, literal_number(count)) else {
        return Err(Unresolved::Unknown);
    };
    if n <= 0 {
        return Err(Unresolved::Failed(Diagnostic::error(
            "E0103",
            format!("timer interval must be positive, not {n}"),
            count.span,
        )));
    }
    // A year at most: longer is a typo, and it must not overflow nanoseconds.
    const MAX_INTERVAL_NS: i64 = 365 * 24 * 3600 * 1_000_000_000;
    let Some(ns) = f(n).filter(|ns| (1..=MAX_INTERVAL_NS).contains(ns)) else {
        return Err(Unresolved::Failed(Diagnostic::error(
            "E0103",
            format!("timer interval {n} is out of range: at most a year, at least a nanosecond"),
            count.span,
        )));
    };
    Ok(vec![Resolved::plain(Target::Timer { interval_ns: ns as u64 }, format!("timer.{unit}({n})"))])
}

/// `netfilter.hook("NF_INET_LOCAL_OUT").pf("NFPROTO_IPV4")`, in either order.
fn netfilter(point: &ProbePoint) -> Result<Vec<Resolved>, Unresolved> {
    let comps = &point.components;
    let (hook_c, pf_c) = if comps[1].name == "hook" { (&comps[1], &comps[2]) } else { (&comps[2], &comps[1]) };
    let pf = match &pf_c.arg {
        Some(Literal::String(s)) => netfilter_constant(s, NF_PROTOCOLS),
        Some(Literal::Number(n)) => u32::try_from(*n).ok(),
        None => None,
    };
    let hook = match &hook_c.arg {
        Some(Literal::String(s)) => netfilter_constant(s, NF_HOOKS),
        Some(Literal::Number(n)) => u32::try_from(*n).ok(),
        None => None,
    };
    let (Some(pf), Some(hook)) = (pf, hook) else {
        return Err(Unresolved::Failed(
            Diagnostic::error("E0107", "unknown netfilter protocol family or hook", point.span)
                .with_help("use e.g. netfilter.hook(\"NF_INET_LOCAL_OUT\").pf(\"NFPROTO_IPV4\")"),
        ));
    };
    let target = Target::Netfilter { pf, hook, priority: NF_BPF_PRIORITY };
    Ok(vec![Resolved::with_context(target, point_text(point), Some(netfilter_context()))])
}

/// `process("path").function("symbol")`, `.call` or `.return`: a uprobe.
fn process_function(point: &ProbePoint) -> Result<Vec<Resolved>, Unresolved> {
    let comps = &point.components;
    let (Some(Literal::String(path)), Some(Literal::String(symbol))) = (&comps[0].arg, &comps[1].arg) else {
        return Err(Unresolved::Failed(Diagnostic::error(
            "E0110",
            "write a uprobe as process(\"/path/to/program\").function(\"symbol\")",
            point.span,
        )));
    };
    let Some(path) = find_executable(path) else {
        return Err(Unresolved::Failed(Diagnostic::error(
            "E0110",
            format!("no executable `{path}` (give its path, or a name found on PATH)"),
            comps[0].span,
        )));
    };
    let ret = comps.last().is_some_and(|c| c.name == "return");
    let symbol = symbol.split('@').next().unwrap_or(symbol).to_string();
    let text = format!("process(\"{path}\").function(\"{symbol}\"){}", if ret { ".return" } else { ".call" });
    let mut format = TracepointFormat { group: "process".into(), event: symbol.clone(), ..Default::default() };
    if ret {
        format.fields.push(crate::kernel::TracepointField {
            name: "return".into(),
            c_type: "long".into(),
            offset: 0,
            size: 8,
            signed: true,
        });
    }
    Ok(vec![Resolved::with_context(Target::Uprobe { path, symbol, ret }, text, Some(format))])
}

fn netfilter_constant(name: &str, table: &[(&str, u32)]) -> Option<u32> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).or_else(|| name.parse().ok())
}

/// The context of a netfilter program, `struct bpf_nf_ctx`, as `$state` and `$skb`.
fn netfilter_context() -> TracepointFormat {
    let field = |name: &str, c_type: &str, offset| crate::kernel::TracepointField {
        name: name.into(),
        c_type: c_type.into(),
        offset,
        size: 8,
        signed: false,
    };
    TracepointFormat {
        group: "netfilter".into(),
        event: "bpf_nf_ctx".into(),
        common_fields: vec![],
        fields: vec![field("state", "struct nf_hook_state *", 0), field("skb", "struct sk_buff *", 8)],
    }
}

/// The target variables of a kernel function probe, as record fields so type checking sees
/// them like a tracepoint's: each parameter (`offset` is its index), and `return` on `.return`.
/// They are all longs; lowering reads them as arguments and takes their C types from BTF.
fn function_context(sig: &FunctionSig, ret: bool) -> TracepointFormat {
    let field = |name: &str, offset| crate::kernel::TracepointField {
        name: name.into(),
        c_type: "long".into(),
        offset,
        size: 8,
        signed: true,
    };
    let mut fields: Vec<_> = sig.params.iter().enumerate().map(|(i, (n, _))| field(n, i as u32)).collect();
    if ret {
        fields.push(field("return", sig.params.len() as u32));
    }
    TracepointFormat { group: "kernel".into(), event: sig.name.clone(), common_fields: vec![], fields }
}

/// `raw_syscalls:sys_enter`'s `unsigned long args[6]` as six fields `__arg1`..`__arg6` of
/// the record, which lowering reads like any field; returns their names.
fn name_raw_args(format: &mut TracepointFormat) -> Vec<String> {
    let Some(args) = format.field("args").filter(|f| f.size == 48).cloned() else { return Vec::new() };
    let names: Vec<String> = (1..=6).map(|i| format!("__arg{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        format.fields.push(crate::kernel::TracepointField {
            name: name.clone(),
            c_type: "unsigned long".into(),
            offset: args.offset + 8 * i as u32,
            size: 8,
            signed: false,
        });
    }
    names
}

/// The variables of a syscall the table (`tapsets/syscalls.table`) does not describe: each
/// argument by its field's name, and `argstr` with user strings quoted, pointers as `%p` and
/// numbers as `%d`.
fn generic_syscall_vars(format: &TracepointFormat, span: Span) -> Vec<Stmt> {
    const SET_BY_THE_ALIAS: &[&str] = &["name", "argstr", "retval", "retstr"];
    let args: Vec<_> = format.fields.iter().filter(|f| f.name != "__syscall_nr").collect();
    let mut stmts = Vec::new();
    let mut conversions = Vec::new();
    let mut values = Vec::new();
    for field in &args {
        let mut value = Expr::new(ExprKind::TargetVar(field.name.clone()), span);
        let c = field.c_type.replace(' ', "");
        // A path is a quoted string in SystemTap's variables too (`pathname`, `filename`).
        if c == "constchar*" {
            conversions.push("%s");
            // IMPORTANT: listed in `select::GENERATED_CALLS`.
            value = Expr::new(ExprKind::Call { name: "_user_string_quoted".into(), args: vec![value] }, span);
        } else {
            conversions.push(if c.contains('*') { "%p" } else { "%d" });
        }
        if !SET_BY_THE_ALIAS.contains(&field.name.as_str()) {
            stmts.push(assign_stmt(&field.name, value.clone(), span));
        }
        values.push(value);
    }
    let argstr = if values.is_empty() {
        Expr::new(ExprKind::String(String::new()), span)
    } else {
        let mut call_args = vec![Expr::new(ExprKind::String(conversions.join(", ")), span)];
        call_args.extend(values);
        Expr::new(ExprKind::Call { name: "sprintf".into(), args: call_args }, span)
    };
    stmts.push(assign_stmt("argstr", argstr, span));
    stmts
}

/// For a probe switched to a tracepoint's arguments: the record fields its body still reads
/// (outside `@defined`), each an error. A raw tracepoint has no record, and reading the
/// record's values from the arguments needs the event's C code, which BTF does not hold.
fn record_fields_read(record: &TracepointFormat, r: &Resolved, body: &Block) -> Vec<Diagnostic> {
    let Some(args) = &r.function else { return Vec::new() };
    let is_arg = |name: &str| args.params.iter().any(|(p, _)| p == name);
    let arg_names = args.params.iter().map(|(p, _)| format!("${p}")).collect::<Vec<_>>().join(", ");
    let mut out = Vec::new();
    walk_exprs(body, &mut |e| {
        let ExprKind::TargetVar(name) = &e.kind else { return };
        if is_arg(name) || record.field(name).is_none() {
            return;
        }
        out.push(
            Diagnostic::error(
                "E0111",
                format!("`${name}` is a field of the tracepoint's record, but this probe also reads its C arguments"),
                e.span,
            )
            .with_label("a record field")
            .with_help(format!(
                "a probe reads either the record or the arguments of `{}`; its arguments are {arg_names}: \
                 read the value through them (e.g. `$arg->member`)",
                args.name
            )),
        );
    });
    out
}

/// A probe on a syscall tracepoint moves to raw_syscalls' raw tracepoint (see
/// [`Target::Syscall`]), filtered to the syscall's number for a `syscalls:` one. One whose
/// number bpftap does not know (a syscall newer than `syscall_table`, or any on an
/// architecture without a table) stays on its perf-event tracepoint. The filter takes the
/// number the task entered with, so a 32-bit task's syscalls, which the `syscalls:`
/// tracepoints leave out on x86-64, would match by their own numbers: bpftap assumes 64-bit
/// tasks, as its syscall table does.
fn on_raw_syscalls(target: &mut Target) {
    let Target::Tracepoint { group, event, .. } = target else { return };
    let (exit, nr) = match (group.as_str(), event.as_str()) {
        ("raw_syscalls", "sys_enter" | "sys_exit") => (event == "sys_exit", None),
        ("syscalls", _) => {
            let (exit, name) = match (event.strip_prefix("sys_enter_"), event.strip_prefix("sys_exit_")) {
                (Some(name), _) => (false, name),
                (_, Some(name)) => (true, name),
                _ => return,
            };
            match crate::syscall_table::tracepoint_number(name) {
                Some(nr) => (exit, Some(nr)),
                None => return,
            }
        }
        _ => return,
    };
    *target = Target::Syscall { event: std::mem::take(event), exit, nr };
}

fn assign_stmt(name: &str, value: Expr, span: Span) -> Stmt {
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

/// An executable named by a uprobe: a path, or a name looked up on PATH, as the shell
/// would. (A fact about the system rather than the kernel; cheap enough to ask directly.)
fn find_executable(name: &str) -> Option<String> {
    if name.contains('/') {
        return std::path::Path::new(name).is_file().then(|| name.to_string());
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| format!("{dir}/{name}"))
        .find(|p| std::path::Path::new(p).is_file())
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

fn pattern_error(e: crate::glob::GlobError, span: Span) -> Diagnostic {
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
    match (user.first(), alias.first()) {
        (None, None) => true,
        (Some(u), _) if u.name == "**" => (0..=alias.len()).any(|k| point_matches(&user[1..], &alias[k..])),
        (Some(u), Some(a)) => glob_match(&u.name, &a.name) && u.arg == a.arg && point_matches(&user[1..], &alias[1..]),
        _ => false,
    }
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

fn walk_stmt<'a>(s: &'a Stmt, f: &mut dyn FnMut(&'a Expr)) {
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
}
