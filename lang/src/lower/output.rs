//! Output: `printf` and the `print` family to interned formats, `warn`/`error`/`system`
//! in kernel probes as records of their own.

use super::*;
use crate::builtins::{Runs, Signature};

impl Ctx<'_> {
    pub(super) fn intern_format_decl(&mut self, decl: ir::FormatDecl) -> FmtId {
        // The same text with other deferred arguments or sink is another record kind.
        let key = if decl.deferred.is_empty() && decl.sink == ir::Sink::Output {
            decl.text.clone()
        } else {
            format!("{}\0{:?}{:?}", decl.text, decl.deferred, decl.sink)
        };
        if let Some(id) = self.formats.get(&key) {
            return *id;
        }
        let id = self.program.formats.push(decl);
        self.formats.insert(key, id);
        id
    }

    /// `warn(msg)`, `error(msg)` and `system(cmd)` in a kernel probe: a record whose text the
    /// runtime writes to stderr, runs, or stops the script with (`error`, whose probe ends
    /// here as `exit()` ends it).
    pub(super) fn kernel_message(&mut self, name: &str, args: &[Expr], span: Span) -> Option<Var> {
        let [arg] = args else {
            self.error(Diagnostic::error("E0204", format!("`{name}` takes 1 argument(s), {} given", args.len()), span));
            return None;
        };
        let v = self.expr(arg)?;
        if self.func.ty(v) != Ty::Str {
            self.error(Diagnostic::error("E0203", format!("`{name}` takes a string"), arg.span));
            return None;
        }
        let (text, sink) = match name {
            "warn" => ("WARNING: %s\n", ir::Sink::Stderr),
            "error" => ("%s", ir::Sink::Error),
            _ => ("%s", ir::Sink::Command),
        };
        let fmt = self.intern_format_decl(own_format(text, vec![Ty::Str], sink));
        self.emit(InstKind::Printf { fmt, args: vec![v] }, span);
        if name == "error" {
            self.emit(InstKind::Exit, span);
        }
        let zero = self.temp(Ty::Long);
        self.emit(InstKind::Const { dst: zero, value: 0 }, span);
        Some(zero)
    }

    /// In a kernel probe's output (`printf`, `print`), an argument `f(x)` where `f` is a
    /// [`Builtin::deferrable`] user-space function: `f`, `x` and `f`'s signature, for the
    /// record to carry `x`.
    pub(super) fn deferred_arg<'e>(&self, arg: &'e Expr) -> Option<(Builtin, &'e Expr, &'static Signature)> {
        let ExprKind::Call { name: f, args } = &arg.kind else { return None };
        let [x] = args.as_slice() else { return None };
        if !self.kernel || self.script.function(f, 1).is_some() {
            return None;
        }
        let signature = builtins::lookup(f, 1)?;
        match signature.lowering {
            Lowering::Builtin(b) if b.deferrable() => Some((b, x, signature)),
            _ => None,
        }
    }

    /// A printf-style call: a literal format checked against its arguments.
    pub(super) fn format_call(&mut self, name: &str, args: &[Expr], span: Span) -> Option<(FmtId, Vec<Var>)> {
        let Some((first, rest)) = args.split_first() else {
            self.error(Diagnostic::error("E0306", format!("`{name}` needs a format string"), span));
            return None;
        };
        let ExprKind::String(text) = &first.kind else {
            self.error(Diagnostic::error(
                "E0306",
                format!("the format of `{name}` must be a string literal"),
                first.span,
            ));
            return None;
        };
        let format = match printf::parse_format(text) {
            Ok(f) => f,
            Err(err) => {
                self.error(Diagnostic::error("E0307", format!("bad format string: {}", err.message), first.span));
                return None;
            }
        };
        let want: Vec<Ty> = format
            .arg_types()
            .into_iter()
            .map(|t| match t {
                ArgType::Long => Ty::Long,
                ArgType::String => Ty::Str,
            })
            .collect();
        if want.len() != rest.len() {
            self.error(
                Diagnostic::error(
                    "E0308",
                    format!("the format wants {} argument(s), {} given", want.len(), rest.len()),
                    span,
                )
                .with_related(first.span, "format here"),
            );
            return None;
        }
        let mut vars = Vec::new();
        let mut carried = want.clone();
        let mut deferred = Vec::new();
        for (i, (arg, ty)) in rest.iter().zip(&want).enumerate() {
            let deferrable = if name == "printf" { self.deferred_arg(arg) } else { None };
            let (v, ty) = match deferrable {
                Some((b, x, signature)) if *ty == Ty::Str => {
                    deferred.push((i, b));
                    carried[i] = signature.params[0];
                    (self.expr(x)?, signature.params[0])
                }
                _ => (self.expr(arg)?, *ty),
            };
            if self.func.ty(v) != ty {
                self.error(
                    Diagnostic::error(
                        "E0308",
                        format!("the format wants a {ty} here, this is a {}", self.func.ty(v)),
                        arg.span,
                    )
                    .with_related(first.span, "format here"),
                );
                return None;
            }
            vars.push(v);
        }
        let decl = ir::FormatDecl { text: text.clone(), format, args: carried, deferred, sink: ir::Sink::Output };
        Some((self.intern_format_decl(decl), vars))
    }

    /// `print`, `println`, `printd`, `printdln` and their `sprint` forms (into a string): a
    /// format of `%s`/`%d` per value.
    pub(super) fn print_call(&mut self, name: &str, args: &[Expr], span: Span) -> Option<Var> {
        let newline = if name.ends_with("ln") { "\n" } else { "" };
        let (sep, values) = if name.starts_with("printd") {
            let Some((sep, values)) = args.split_first() else {
                self.error(Diagnostic::error("E0306", format!("`{name}` needs a delimiter"), span));
                return None;
            };
            let ExprKind::String(sep) = &sep.kind else {
                self.error(Diagnostic::error("E0306", "the delimiter must be a string literal", sep.span));
                return None;
            };
            (sep.replace('%', "%%"), values)
        } else {
            (String::new(), args)
        };
        let mut text = String::new();
        let mut vars = Vec::new();
        let mut tys = Vec::new();
        if let [Expr { kind: ExprKind::Hist { kind, expr }, span: hspan }] = values {
            return self.print_hist(kind, expr, *hspan);
        }
        let mut deferred = Vec::new();
        for (i, a) in values.iter().enumerate() {
            // Only what the kernel cannot compute: the others print as they always have.
            let deferrable = self.deferred_arg(a).filter(|(_, _, sig)| sig.runs == Runs::User);
            let v = match deferrable.filter(|_| !name.starts_with('s')) {
                Some((b, x, _)) => {
                    deferred.push((i, b));
                    self.expr(x)?
                }
                None => self.expr(a)?,
            };
            if i > 0 {
                text.push_str(&sep);
            }
            let shown_as_text = self.func.ty(v) == Ty::Str || deferred.last().is_some_and(|(d, _)| *d == i);
            text.push_str(if shown_as_text { "%s" } else { "%d" });
            tys.push(self.func.ty(v));
            vars.push(v);
        }
        text.push_str(newline);
        let fmt = self.intern_format_decl(ir::FormatDecl { deferred, ..own_format(&text, tys, ir::Sink::Output) });
        if name.starts_with('s') {
            let dst = self.temp(Ty::Str);
            self.emit(InstKind::Sprintf { dst, fmt, args: vars }, span);
            return Some(dst);
        }
        self.emit(InstKind::Printf { fmt, args: vars }, span);
        None
    }
}

/// A format bpftap writes itself (`print`'s `%s %d`, `warn`'s): valid by construction.
pub(super) fn own_format(text: &str, args: Vec<Ty>, sink: ir::Sink) -> ir::FormatDecl {
    let format = printf::parse_format(text).expect("bpftap's own formats parse");
    ir::FormatDecl { text: text.into(), format, args, deferred: Vec::new(), sink }
}
