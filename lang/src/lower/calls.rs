//! Calls: built-in functions (the table in [`crate::builtins`]), argument functions
//! (`int_arg`) and script functions, which are inlined at each call.

use super::*;

impl Ctx<'_> {
    /// `int_arg(n)`, `ulong_arg(n)` and the like: argument `n` of the probed function or syscall.
    pub(super) fn int_arg(&mut self, n: &str, args: &[Expr], span: Span) -> Option<Var> {
        let (size, signed) = builtins::arg_function(n)?;
        let index = match args {
            [Expr { kind: ExprKind::Number(i), .. }] if (1..=6).contains(i) => (*i - 1) as u32,
            _ => {
                self.error(Diagnostic::error("E0316", format!("`{n}` takes an argument number from 1 to 6"), span));
                return None;
            }
        };
        if !self.kernel {
            self.error(Diagnostic::error("E0309", format!("`{n}` is only available in a function probe"), span));
            return None;
        }
        if self.format.is_some_and(|f| f.event.starts_with("sys_exit")) {
            // A syscall's return probe: the entry probe elaboration added stored it.
            if self.arrays.contains_key(&crate::elaborate::entry_array(span)) {
                return self.expr(&crate::elaborate::entry_value(span));
            }
            self.error(
                Diagnostic::error(
                    "E0316",
                    format!("`{n}` in a system call's return probe: its record holds the result only"),
                    span,
                )
                .with_help("save the argument in a global at the entry probe, keyed by tid()"),
            );
            return None;
        }
        let raw = self.temp(Ty::Long);
        match self.syscall_arg_offset(index) {
            Some(offset) => self.emit(InstKind::LoadContext { dst: raw, offset, size: 8, signed: false }, span),
            None => self.emit(InstKind::LoadArg { dst: raw, index }, span),
        }
        if size == 8 {
            return Some(raw);
        }
        // The low 32 bits, zero- or sign-extended.
        let shifted = self.temp(Ty::Long);
        self.emit(InstKind::Binary { op: BinOp::Shl, dst: shifted, lhs: raw, rhs: Operand::Imm(32) }, span);
        let dst = self.temp(Ty::Long);
        if signed {
            self.emit(InstKind::Binary { op: BinOp::Shr, dst, lhs: shifted, rhs: Operand::Imm(32) }, span);
        } else {
            self.emit(InstKind::Binary { op: BinOp::And, dst, lhs: raw, rhs: Operand::Imm(0xffff_ffff) }, span);
        }
        Some(dst)
    }

    pub(super) fn call(&mut self, name: &str, args: &[Expr], span: Span) -> Option<Var> {
        match name {
            "printf" => {
                let (fmt, args) = self.format_call(name, args, span)?;
                self.emit(InstKind::Printf { fmt, args }, span);
                return None;
            }
            "sprintf" => {
                let (fmt, args) = self.format_call(name, args, span)?;
                let dst = self.temp(Ty::Str);
                self.emit(InstKind::Sprintf { dst, fmt, args }, span);
                return Some(dst);
            }
            "print" | "println" | "printd" | "printdln" | "sprint" | "sprintln" => {
                return self.print_call(name, args, span)
            }
            "exit" => {
                self.emit(InstKind::Exit, span);
                return None;
            }
            n if builtins::arg_function(n).is_some() => return self.int_arg(n, args, span),
            // The probe point, resolved (`pp`) or as the script named it (`pn`), known when
            // compiling.
            "pp" | "pn" => {
                let v = self.temp(Ty::Str);
                let value = if name == "pp" { self.point } else { self.user_point }.to_string();
                self.emit(InstKind::StrConst { dst: v, value }, span);
                return Some(v);
            }
            // The probed function: a tapset alias names it in `__ppfunc` (vfs.write is
            // vfs_write whatever syscall tracepoint it sits on); else the kernel function
            // or tracepoint.
            "ppfunc" | "probefunc" => {
                // Resolved in the probe's own frame, even from inside a function.
                let inner = self.frames.split_off(1);
                let place = self.types.is_local(&self.frames[0].scope, "__ppfunc").then(|| self.resolve("__ppfunc"));
                self.frames.extend(inner);
                if let Some(Some(Place::Local(v))) = place {
                    return Some(v);
                }
                let v = self.temp(Ty::Str);
                let value = self.function_name.to_string();
                self.emit(InstKind::StrConst { dst: v, value }, span);
                return Some(v);
            }
            _ => {}
        }
        if let Some(f) = self.script.function(name, args.len()) {
            return self.inline(f, args, span);
        }
        if let ("error", [arg], Some(_)) = (name, args, self.catches.last()) {
            // Inside `try`, SystemTap's `error(msg)` goes to the `catch`.
            let text = self.expr(arg)?;
            if self.func.ty(text) == Ty::Str {
                self.throw_text(text, span);
                let zero = self.temp(Ty::Long);
                self.emit(InstKind::Const { dst: zero, value: 0 }, span);
                return Some(zero);
            }
        }
        if self.kernel && matches!(name, "warn" | "error" | "system") {
            return self.kernel_message(name, args, span);
        }
        let sig = builtins::lookup(name, args.len())?;
        if sig.runs == builtins::Runs::User && self.kernel {
            self.error(
                Diagnostic::error("E0309", format!("`{name}` is not supported in a kernel probe yet"), span)
                    .with_help("call it in an `end` or `timer` probe, which run in user space"),
            );
        }
        if sig.runs == builtins::Runs::Kernel && !self.kernel {
            self.error(
                Diagnostic::error("E0309", format!("`{name}` is not available in a user-space probe"), span)
                    .with_help("begin, end and timer probes run in bpftap itself, not in a kernel context"),
            );
        }
        let vars: Vec<Var> = args.iter().filter_map(|a| self.expr(a)).collect();
        // The second argument of a string read: what a fault gives, or how many bytes to read.
        let (fallback, limit) = match (sig.params.get(1), vars.get(1)) {
            (Some(Ty::Str), Some(&v)) => (Some(v), None),
            (Some(Ty::Long), Some(&v)) => (None, Some(v)),
            _ => (None, None),
        };
        if let (Lowering::ReadStr(_), Some(&v)) = (sig.lowering, vars.first()) {
            if self.func.ty(v) == Ty::Str {
                // `kernel_string_n($comm, 16)`: the field is already a string, to be cut.
                let Some(n) = limit else { return Some(v) };
                let (zero, dst) = (self.temp(Ty::Long), self.temp(Ty::Str));
                self.emit(InstKind::Const { dst: zero, value: 0 }, span);
                self.emit(InstKind::Call { dst: Some(dst), builtin: Builtin::Substr, args: vec![v, zero, n] }, span);
                return Some(dst);
            }
        }
        let dst = self.temp(sig.ret);
        let kind = match sig.lowering {
            Lowering::Builtin(builtin) => InstKind::Call { dst: Some(dst), builtin, args: vars },
            Lowering::Read { size, signed, space } => {
                InstKind::Read { dst, addr: *vars.first()?, size, signed, space, fault: None }
            }
            Lowering::ReadStr(space) => InstKind::ReadStr { dst, addr: *vars.first()?, space, fallback, limit },
        };
        self.emit(kind, span);
        Some(dst)
    }

    /// Where argument `index` (from 0) of the system call is in a syscall-entry record
    /// (`syscalls:sys_enter_*`): the arguments follow
    /// `__syscall_nr` as 8-byte slots, so `int_arg(n)` reads the call's argument n as in an
    /// `nd_syscall` probe of SystemTap.
    pub(super) fn syscall_arg_offset(&self, index: u32) -> Option<u32> {
        let format = self.format?;
        if !format.event.starts_with("sys_enter") {
            return None;
        }
        let offset = format.field("__syscall_nr")?.offset + 8 + 8 * index;
        (offset + 8 <= format.record_size()).then_some(offset)
    }

    pub(super) fn inline(&mut self, f: &ast::Function, args: &[Expr], span: Span) -> Option<Var> {
        if self.frames.iter().any(|fr| fr.name.as_deref() == Some(f.name.as_str())) {
            self.error(
                Diagnostic::error("E0310", format!("recursive call of `{}`", f.name), span)
                    .with_help("bpftap inlines functions and cannot compile recursion yet"),
            );
            // A value of the right type, so no second error follows from this one.
            let ty = self.types.returns.get(&f.name).cloned().flatten()?.0;
            let v = self.temp(ty);
            let zero = zero_of(v, ty);
            self.emit(zero, span);
            return Some(v);
        }
        let ast::FunctionBody::Script(body) = &f.body else {
            self.error(crate::elaborate::embedded_c(f.span));
            return None;
        };
        let scope = Scope::Function(f.name.clone());
        let mut locals = HashMap::new();
        for (p, a) in f.params.iter().zip(args) {
            let v = self.expr(a)?;
            // A parameter is a fresh variable: the function may assign to it.
            let param = self.func.new_var(self.func.ty(v), Some(p.name.clone()));
            self.emit(InstKind::Copy { dst: param, src: v }, a.span);
            locals.insert(p.name.clone(), param);
        }
        let result = self.types.returns.get(&f.name).cloned().flatten().map(|(ty, _)| self.temp(ty));
        if let Some(r) = result {
            let zero = zero_of(r, self.func.ty(r));
            self.emit(zero, span);
        }
        let done = self.func.new_block();
        self.frames.push(Frame { scope, locals, ret: Some((done, result)), name: Some(f.name.clone()) });
        let saved_loops = std::mem::take(&mut self.loops);
        self.block(body);
        self.loops = saved_loops;
        self.frames.pop();
        self.terminate(Terminator::Jump(done));
        self.switch_to(done);
        result
    }
}
