//! Global arrays and statistics: elements read and assigned, `delete`, `<<<` and the
//! statistics read back, `print(@hist_*)`, and `foreach`.

use super::*;

impl Ctx<'_> {
    /// The array a name refers to, and its keys lowered.
    pub(super) fn array_ref(&mut self, base: &Expr, keys: &[Expr]) -> Option<(ir::ArrayId, Vec<Var>)> {
        if let Some(star) = keys.iter().find(|k| matches!(k.kind, ExprKind::Wildcard)) {
            self.error(
                Diagnostic::error("E0216", "`*` as a key selects elements only in `delete` and `in`", star.span)
                    .with_help("write `delete a[k, *]` or `if ([k, *] in a)`"),
            );
            return None;
        }
        let (array, keys) = self.array_pattern(base, keys)?;
        Some((array, keys.into_iter().flatten().collect()))
    }

    /// `a[keys]` where a key may be `*` (`None`): the pattern of `delete` and `in`.
    pub(super) fn array_pattern(&mut self, base: &Expr, keys: &[Expr]) -> Option<(ir::ArrayId, Vec<Option<Var>>)> {
        let ExprKind::Ident(name) = &base.kind else {
            self.error(Diagnostic::error("E0211", "only a global can be indexed", base.span));
            return None;
        };
        let Some(&array) = self.arrays.get(name) else {
            self.error(Diagnostic::error("E0212", format!("`{name}` is not a global array"), base.span));
            return None;
        };
        let want = self.program.arrays[array].keys.clone();
        let mut vars = Vec::new();
        for (k, ty) in keys.iter().zip(want) {
            if matches!(k.kind, ExprKind::Wildcard) {
                vars.push(None);
                continue;
            }
            let v = self.expr(k)?;
            if self.func.ty(v) != ty {
                self.error(Diagnostic::error("E0203", format!("this key of `{name}` should be a {ty}"), k.span));
                return None;
            }
            vars.push(Some(v));
        }
        Some((array, vars))
    }

    /// `s` or `a[k]` used as a statistic.
    pub(super) fn stat_ref(&mut self, e: &Expr) -> Option<(ir::ArrayId, Vec<Var>)> {
        match &e.kind {
            ExprKind::Index { base, keys } => self.array_ref(base, keys),
            ExprKind::Ident(_) => self.array_ref(e, &[]),
            _ => {
                self.error(Diagnostic::error("E0212", "not a statistic", e.span));
                None
            }
        }
    }

    pub(super) fn array_value_ty(&mut self, array: ir::ArrayId, span: Span) -> Option<Ty> {
        match self.program.arrays[array].value {
            ir::ValueKind::Long => Some(Ty::Long),
            ir::ValueKind::Str => Some(Ty::Str),
            ir::ValueKind::Stat => {
                let name = self.program.arrays[array].name.clone();
                self.error(
                    Diagnostic::error("E0210", format!("`{name}` holds statistics, not values"), span)
                        .with_help("read it with @count, @sum, @min, @max, @avg or print a @hist_log"),
                );
                None
            }
        }
    }

    pub(super) fn assign_element(
        &mut self,
        op: AssignOp,
        base: &Expr,
        keys: &[Expr],
        value: &Expr,
        span: Span,
    ) -> Option<Var> {
        let (array, keys) = self.array_ref(base, keys)?;
        let ty = self.array_value_ty(array, span)?;
        match op {
            AssignOp::Assign => {
                let v = self.expr(value)?;
                self.emit(InstKind::ArraySet { array, keys, src: v }, span);
                Some(v)
            }
            AssignOp::Op(op @ (BinaryOp::Add | BinaryOp::Sub)) if ty == Ty::Long => {
                let mut v = self.long_expr(value);
                if op == BinaryOp::Sub {
                    let neg = self.temp(Ty::Long);
                    self.emit(InstKind::Unary { op: UnOp::Neg, dst: neg, src: v }, span);
                    v = neg;
                }
                self.emit(InstKind::ArrayAdd { array, keys: keys.clone(), src: v }, span);
                let now = self.temp(Ty::Long);
                self.emit(InstKind::ArrayGet { dst: now, array, keys }, span);
                Some(now)
            }
            AssignOp::Op(op) => {
                let cur = self.temp(ty);
                self.emit(InstKind::ArrayGet { dst: cur, array, keys: keys.clone() }, span);
                let result = self.compound(op, cur, ty, value, span);
                self.emit(InstKind::ArraySet { array, keys, src: result }, span);
                Some(result)
            }
        }
    }

    /// `@min`, `@max`, `@avg` or `@variance` in a kernel probe, where code generation folds
    /// the CPUs' shares but knows nothing of empty statistics: those are an error here, as
    /// in SystemTap ("empty aggregate"), and `@avg` is `@sum / @count`.
    pub(super) fn kernel_stat(&mut self, dst: Var, array: ir::ArrayId, keys: Vec<Var>, op: ir::StatOp, span: Span) {
        let count = self.temp(Ty::Long);
        self.emit(InstKind::StatGet { dst: count, array, keys: keys.clone(), op: ir::StatOp::Count }, span);
        let (empty, full) = (self.func.new_block(), self.func.new_block());
        self.terminate(Terminator::Branch { cond: count, then: full, els: empty });
        self.switch_to(empty);
        self.throw("empty aggregate", span);
        self.switch_to(full);
        if op == ir::StatOp::Avg {
            let sum = self.temp(Ty::Long);
            self.emit(InstKind::StatGet { dst: sum, array, keys, op: ir::StatOp::Sum }, span);
            self.emit(InstKind::Binary { op: BinOp::Div, dst, lhs: sum, rhs: Operand::Var(count) }, span);
        } else {
            self.emit(InstKind::StatGet { dst, array, keys, op }, span);
        }
    }

    pub(super) fn delete(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Index { base, keys } if has_wildcard(keys) => {
                if let Some((array, keys)) = self.array_pattern(base, keys) {
                    self.emit(InstKind::ArrayDeleteMatching { array, keys }, e.span);
                }
            }
            ExprKind::Index { base, keys } => {
                if let Some((array, keys)) = self.array_ref(base, keys) {
                    self.emit(InstKind::ArrayDelete { array, keys }, e.span);
                }
            }
            ExprKind::Ident(name) if self.arrays.contains_key(name) => {
                let array = self.arrays[name];
                self.emit(InstKind::ArrayClear { array }, e.span);
            }
            ExprKind::Ident(name) => match self.resolve(name) {
                Some(Place::Local(v)) => {
                    let zero = zero_of(v, self.func.ty(v));
                    self.emit(zero, e.span);
                }
                Some(Place::Global(g, ty)) => {
                    let v = self.temp(ty);
                    let zero = zero_of(v, ty);
                    self.emit(zero, e.span);
                    self.emit(InstKind::StoreGlobal { global: g, src: v }, e.span);
                }
                None => {}
            },
            _ => self.error(Diagnostic::error("E0208", "cannot delete this expression", e.span)),
        }
    }

    pub(super) fn print_hist(&mut self, kind: &ast::HistKind, expr: &Expr, span: Span) -> Option<Var> {
        if self.kernel {
            self.error(kernel_only("printing a histogram", span));
            return None;
        }
        let (array, keys) = self.stat_ref(expr)?;
        let kind = match (kind, self.program.arrays[array].hist.linear) {
            (ast::HistKind::Log, _) => ir::HistKind::Log,
            (ast::HistKind::Linear { .. }, Some((lo, hi, step))) => ir::HistKind::Linear { lo, hi, step },
            (ast::HistKind::Linear { .. }, None) => return None,
        };
        self.emit(InstKind::PrintHist { array, keys, kind }, span);
        None
    }

    pub(super) fn foreach(&mut self, fe: &ast::Foreach, span: Span) {
        let ExprKind::Ident(name) = &fe.array.kind else {
            self.error(Diagnostic::error("E0211", "`foreach` iterates over a global array", fe.array.span));
            return;
        };
        let Some(&array) = self.arrays.get(name) else {
            self.error(Diagnostic::error("E0212", format!("`{name}` is not a global array"), fe.array.span));
            return;
        };
        let mut keys = Vec::new();
        for (k, _) in &fe.keys {
            match self.resolve(k) {
                Some(Place::Local(v)) => keys.push(v),
                _ => {
                    self.error(Diagnostic::error("E0215", format!("`{k}` cannot be a foreach key"), fe.array.span));
                    return;
                }
            }
        }
        let value = match &fe.value {
            Some((v, sp)) => match self.resolve(v) {
                Some(Place::Local(var)) => Some(var),
                _ => {
                    self.error(Diagnostic::error("E0215", format!("`{v}` cannot hold the foreach value"), *sp));
                    return;
                }
            },
            None => None,
        };
        if self.kernel {
            // What a kernel probe's `foreach` snapshots: keys of up to two numbers, in order
            // of a key at most (`codegen_bpf`'s key lists).
            let decl = &self.program.arrays[array];
            let refused = if decl.keys.len() > 2 || decl.keys.contains(&Ty::Str) {
                Some("`foreach` over an array with string keys or more than two keys")
            } else if fe.sort.is_some_and(|s| s.column == 0) {
                Some("`foreach` sorted by value")
            } else if fe.value.is_some() && decl.value == ir::ValueKind::Stat {
                Some("`foreach` with the value of a statistic")
            } else {
                None
            };
            if let Some(what) = refused {
                self.error(kernel_only(what, span));
                return;
            }
        }
        let sort = fe.sort.map(|s| ir::SortSpec {
            column: s.column,
            ascending: s.ascending,
            stat: fe.sort_stat.map_or(ir::StatOp::Count, stat_op),
        });
        // `a[k]` in the body reads the element the iteration is at, where nothing in the body
        // can change `a` or the keys: the value the iteration read with its key, instead of a
        // lookup per element.
        let key_names: Vec<&str> = fe.keys.iter().map(|(k, _)| k.as_str()).collect();
        let decl = &self.program.arrays[array];
        let element = (decl.value != ir::ValueKind::Stat
            && analysis::reads_element(&fe.body, name, &key_names)
            && !analysis::may_change(self.script, &fe.body, name, &key_names))
        .then(|| self.func.new_var(if decl.value == ir::ValueKind::Str { Ty::Str } else { Ty::Long }, None));
        let limit = fe.limit.as_ref().map(|l| self.long_expr(l));
        let iter = ir::IterId::new(self.next_iter);
        self.next_iter += 1;
        self.emit(InstKind::IterStart { iter, array, sort, limit }, span);
        let (head, body, done) = (self.func.new_block(), self.func.new_block(), self.func.new_block());
        // A foreach walks its snapshot of keys with its own index, laid out for the verifier
        // (`leave_first`), and is known to fit the counter.
        let budget = self.loop_budget(fe.body.span, false);
        self.terminate(Terminator::Jump(head));
        self.switch_to(head);
        self.spend_loop_budget(budget, fe.body.span);
        let has = self.temp(Ty::Long);
        let element_keys = keys.clone();
        self.emit(InstKind::IterNext { has, iter, keys, value: element.or(value) }, span);
        self.terminate(Terminator::Branch { cond: has, then: body, els: done });
        self.switch_to(body);
        if let (Some(element), Some(value)) = (element, value) {
            self.emit(InstKind::Copy { dst: value, src: element }, span);
        }
        self.loops.push((head, done));
        if let Some(element) = element {
            self.elements.push((array, element_keys, element));
        }
        self.stmt(&fe.body);
        if element.is_some() {
            self.elements.pop();
        }
        self.loops.pop();
        self.terminate(Terminator::Jump(head));
        self.switch_to(done);
        self.end_loop_budget(budget);
    }
}

pub(super) fn has_wildcard(keys: &[Expr]) -> bool {
    keys.iter().any(|k| matches!(k.kind, ExprKind::Wildcard))
}

pub(super) fn stat_op(op: ast::StatOp) -> ir::StatOp {
    match op {
        ast::StatOp::Count => ir::StatOp::Count,
        ast::StatOp::Sum => ir::StatOp::Sum,
        ast::StatOp::Min => ir::StatOp::Min,
        ast::StatOp::Max => ir::StatOp::Max,
        ast::StatOp::Avg => ir::StatOp::Avg,
        ast::StatOp::Variance => ir::StatOp::Variance,
    }
}
