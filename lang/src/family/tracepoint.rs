//! `kernel.trace("group:event")`: a tracepoint. A handler that reads only the record's
//! fields (`$fd`) is a tracepoint program on a perf event; one that reads the tracepoint's C
//! arguments (`$prev->pid` of sched_switch) is a BTF-typed raw tracepoint (tp_btf), or a
//! plain raw tracepoint where the kernel has no tp_btf. One that reads neither runs as a raw
//! tracepoint by name where the kernel has one (the runtime's choice, on
//! `KernelProbe::context_free`).

use std::collections::BTreeSet;

use super::kernel_function::function_context;
use super::{single, Attach, Context, KernelProgram};
use crate::ast::{Block, ExprKind, Literal, ProbePoint};
use crate::diag::Diagnostic;
use crate::elaborate::{is_pattern, pattern_error, walk_exprs, Ctx, Glob, Resolved, Unresolved};
use crate::ir::Target;
use crate::kernel::{KernelError, TracepointFormat};

pub(crate) fn record_program<'t>(group: &'t str, event: &'t str) -> KernelProgram<'t> {
    single(format!("tracepoint/{group}/{event}"), Context::Record, Attach::Tracepoint { group, event })
}

pub(crate) fn args_program(event: &str, nargs: u32) -> KernelProgram<'_> {
    single(format!("tp_btf/{event}"), Context::Args { nargs }, Attach::BtfRawTracepoint { event })
}

impl Ctx<'_> {
    /// `kernel.trace("group:event")`, globs allowed in both.
    pub(crate) fn trace_point(&mut self, point: &ProbePoint) -> Result<Vec<Resolved>, Unresolved> {
        let Some(Literal::String(spec)) = &point.components[1].arg else {
            return Err(Unresolved::Failed(Diagnostic::error(
                "E0104",
                "`kernel.trace` needs a tracepoint name such as \"sched:sched_switch\"",
                point.span,
            )));
        };
        self.kernel_trace(spec, point)
    }

    pub(crate) fn kernel_trace(&mut self, spec: &str, point: &ProbePoint) -> Result<Vec<Resolved>, Unresolved> {
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

    /// A tracepoint probe whose body reads a C argument of the tracepoint (`$prev` of
    /// sched_switch), not only fields of its record (`$prev_pid`), becomes a raw tracepoint
    /// probe: its `$vars` are then the arguments, typed from BTF as a kernel function's
    /// parameters are. A name that is both (`$irq` of irq_handler_entry) stays a record
    /// field while the body reads no argument-only name, nor follows a member of a field the
    /// record has as a `void *` (`$timer->function` of timer_expire_entry: SystemTap's `$timer`
    /// is the argument, a `struct timer_list *`). Returns the record's format when the probe
    /// switched, for [`record_fields_read`].
    pub(crate) fn read_tracepoint_args(&self, r: &mut Resolved, body: &Block) -> Option<TracepointFormat> {
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
}

/// For a probe switched to a tracepoint's arguments: the record fields its body still reads
/// (outside `@defined`), each an error. A raw tracepoint has no record, and reading the
/// record's values from the arguments needs the event's C code, which BTF does not hold.
pub(crate) fn record_fields_read(record: &TracepointFormat, r: &Resolved, body: &Block) -> Vec<Diagnostic> {
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
