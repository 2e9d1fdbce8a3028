//! A syscall tracepoint (`syscalls:sys_enter_NAME`, `raw_syscalls:sys_exit`, and so the
//! `syscall.NAME` aliases) run on raw_syscalls' raw tracepoint: it costs a fraction of a
//! perf-event tracepoint per event and detaches in a millisecond. The program serves the
//! handler's reads of the syscall's record from the raw tracepoint's arguments, and returns
//! at once for another syscall than its own.

use std::collections::BTreeSet;

use super::{single, Attach, Context, KernelProgram};
use crate::arch::Arch;
use crate::ast::{self, Block, Expr, ExprKind, ProbePoint, Stmt, StmtKind};
use crate::builtins;
use crate::elaborate::{
    assign_stmt, entry_array, entry_value, is_pattern, pattern_error, point_text, walk_exprs, Ctx, ElabProbe,
    Elaborated, Glob, Resolved, Unresolved,
};
use crate::ir::Target;
use crate::kernel::TracepointFormat;
use crate::span::Span;

pub(crate) fn program(exit: bool, nr: Option<u32>) -> KernelProgram<'static> {
    let event = if exit { "sys_exit" } else { "sys_enter" };
    single(format!("raw_tp/{event}"), Context::Syscall { exit, only: nr }, Attach::RawTracepoint { event })
}

impl Ctx<'_> {
    /// `syscall.*` and other wildcards matching many syscalls: one program on the
    /// `raw_syscalls` tracepoint with `name` and `syscall_nr`, filtered to the matching
    /// numbers, instead of one attachment per syscall. Attaching and detaching hundreds of
    /// tracepoints takes seconds (a perf-event link takes about 85 ms to close here); one
    /// raw tracepoint takes a millisecond, and its filter costs a few instructions.
    pub(crate) fn syscall_wildcard(&mut self, point: &ProbePoint) -> Option<Resolved> {
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
        let syscalls = self.arch().syscalls();
        let numbers: Vec<u32> = syscalls.iter().filter(|(_, name)| pattern.matches(name)).map(|(nr, _)| *nr).collect();
        if numbers.len() < MIN_MATCHES {
            return None;
        }
        let event = if want_return { "sys_exit" } else { "sys_enter" };
        let mut format = self.kernel.tracepoint("raw_syscalls", event).ok()?;
        let raw_args = if want_return { Vec::new() } else { name_raw_args(&mut format) };
        let span = point.span;
        let id = || Expr::new(ExprKind::TargetVar("id".into()), span);
        let mut stmts = Vec::new();
        if numbers.len() < syscalls.len() {
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
    pub(crate) fn syscalls(
        &mut self,
        point: &ProbePoint,
        defined: &BTreeSet<String>,
    ) -> Result<Vec<Resolved>, Unresolved> {
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

    /// `@entry(e)` in a syscall's return probe: a probe on the syscall's entry stores `e` in
    /// a global array by thread (see [`entry_value`]), which the return probe reads. An
    /// argument function (`int_arg(1)`) there is `@entry` of itself, since the return
    /// record holds only the result: SystemTap gives the entry's arguments too.
    pub(crate) fn entry_values(&mut self, target: &Target, body: &Block, out: &mut Elaborated) {
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
            on_raw_syscalls(self.arch(), &mut target);
            out.probes.push(ElabProbe {
                point: format!("kernel.trace(\"syscalls:{enter}\")"),
                user_point: format!("syscall.{name}"),
                target,
                format: Some(format.clone()),
                function: None,
                body: Block { stmts: vec![stmt], span },
                span,
                never: false,
                optional: false,
            });
        }
    }
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

/// A probe on a syscall tracepoint moves to raw_syscalls' raw tracepoint (see
/// [`Target::Syscall`]), filtered to the syscall's number for a `syscalls:` one. One whose
/// number bpftap does not know (a syscall newer than `syscall_table`, or any on an
/// architecture without a table) stays on its perf-event tracepoint. The filter takes the
/// number the task entered with, so a 32-bit task's syscalls, which the `syscalls:`
/// tracepoints leave out on x86-64, would match by their own numbers: bpftap assumes 64-bit
/// tasks, as its syscall table does.
pub(crate) fn on_raw_syscalls(arch: Arch, target: &mut Target) {
    let Target::Tracepoint { group, event, .. } = target else { return };
    let (exit, nr) = match (group.as_str(), event.as_str()) {
        ("raw_syscalls", "sys_enter" | "sys_exit") => (event == "sys_exit", None),
        ("syscalls", _) => {
            let (exit, name) = match (event.strip_prefix("sys_enter_"), event.strip_prefix("sys_exit_")) {
                (Some(name), _) => (false, name),
                (_, Some(name)) => (true, name),
                _ => return,
            };
            match crate::syscall_table::tracepoint_number(arch, name) {
                Some(nr) => (exit, Some(nr)),
                None => return,
            }
        }
        _ => return,
    };
    *target = Target::Syscall { event: std::mem::take(event), exit, nr };
}
