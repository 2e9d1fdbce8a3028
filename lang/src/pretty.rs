//! The AST printer: [`ast::Script`] back to SystemTap source, for `bpftap -p1` and tests.
//!
//! The output is stable and boring: one statement per line, two-space indentation, every
//! binary, logical, comparison, ternary, assignment and `in` expression in parentheses (except
//! the outermost one of a statement or argument), and every expression statement ended by `;`.
//!
//! Invariant: parsing the output gives the same AST as the input, spans aside (tested in
//! `tests/lex_parse.rs`). Embedded C is printed from the source text its span points at, hence
//! the [`SourceMap`] argument.

use std::fmt::Write;

use crate::ast::*;
use crate::span::SourceMap;

/// Print a whole script.
pub fn script(script: &Script, sources: &SourceMap) -> String {
    let mut p = Printer { out: String::new(), indent: 0, sources };
    for (i, item) in script.items.iter().enumerate() {
        if i > 0 && !matches!((&script.items[i - 1], item), (Item::Global(_), Item::Global(_))) {
            p.out.push('\n');
        }
        p.item(item);
    }
    p.out
}

struct Printer<'a> {
    out: String,
    indent: usize,
    sources: &'a SourceMap,
}

impl Printer<'_> {
    fn line_start(&mut self) {
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Probe(probe) => {
                if probe.private {
                    self.out.push_str("private ");
                }
                self.out.push_str("probe ");
                self.points(&probe.points);
                if let Some(pred) = &probe.predicate {
                    self.out.push_str(" /");
                    self.expr(pred, true);
                    self.out.push('/');
                }
                self.out.push(' ');
                self.block(&probe.body);
                self.out.push('\n');
            }
            Item::Alias(alias) => {
                self.out.push_str("probe ");
                self.points(&alias.names);
                self.out.push_str(match alias.kind {
                    AliasKind::Prologue => " = ",
                    AliasKind::Epilogue => " += ",
                });
                self.points(&alias.points);
                self.out.push(' ');
                self.block(&alias.body);
                self.out.push('\n');
            }
            Item::Global(g) => {
                if g.private {
                    self.out.push_str("private ");
                }
                write!(self.out, "global {}", g.name).unwrap();
                if g.wrap {
                    self.out.push('%');
                }
                if g.is_array {
                    match g.size {
                        Some(n) => write!(self.out, "[{n}]").unwrap(),
                        None => self.out.push_str("[]"),
                    }
                }
                if let Some(init) = &g.init {
                    self.out.push_str(" = ");
                    self.operand(init);
                }
                self.out.push('\n');
            }
            Item::Function(f) => {
                if f.private {
                    self.out.push_str("private ");
                }
                write!(self.out, "function {}", f.name).unwrap();
                if let Some(ty) = f.ret {
                    write!(self.out, ":{}", type_name(ty)).unwrap();
                }
                self.out.push('(');
                for (i, param) in f.params.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.out.push_str(&param.name);
                    if let Some(ty) = param.ty {
                        write!(self.out, ":{}", type_name(ty)).unwrap();
                    }
                }
                self.out.push_str(") ");
                match &f.body {
                    FunctionBody::Script(block) => self.block(block),
                    FunctionBody::EmbeddedC(span) => self.out.push_str(snippet(self.sources, *span)),
                }
                self.out.push('\n');
            }
            Item::EmbeddedC(span) => {
                self.out.push_str(snippet(self.sources, *span));
                self.out.push('\n');
            }
        }
    }

    fn points(&mut self, points: &[ProbePoint]) {
        for (i, point) in points.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            for (j, c) in point.components.iter().enumerate() {
                if j > 0 {
                    self.out.push('.');
                }
                self.out.push_str(&c.name);
                match &c.arg {
                    Some(Literal::Number(n)) => write!(self.out, "({n})").unwrap(),
                    Some(Literal::String(s)) => {
                        self.out.push('(');
                        string_literal(&mut self.out, s);
                        self.out.push(')');
                    }
                    None => {}
                }
            }
            if point.sufficient {
                self.out.push('!');
            } else if point.optional {
                self.out.push('?');
            }
            if let Some(cond) = &point.condition {
                self.out.push_str(" if (");
                self.expr(cond, true);
                self.out.push(')');
            }
        }
    }

    /// Prints `{ ... }` starting at the current position; the caller ends the line.
    fn block(&mut self, block: &Block) {
        self.out.push_str("{\n");
        self.indent += 1;
        for s in &block.stmts {
            self.line_start();
            self.stmt(s);
            self.out.push('\n');
        }
        self.indent -= 1;
        self.line_start();
        self.out.push('}');
    }

    /// A statement body after `if (...)`, `else`, a loop header: a block stays on the line,
    /// anything else goes on its own indented line.
    fn body(&mut self, s: &Stmt) {
        if let StmtKind::Block(b) = &s.kind {
            self.out.push(' ');
            self.block(b);
        } else {
            self.out.push('\n');
            self.indent += 1;
            self.line_start();
            self.stmt(s);
            self.indent -= 1;
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Block(b) => self.block(b),
            StmtKind::Expr(e) => {
                self.expr(e, true);
                self.out.push(';');
            }
            StmtKind::Empty => self.out.push(';'),
            StmtKind::If { cond, then, els } => {
                self.out.push_str("if (");
                self.expr(cond, true);
                self.out.push(')');
                self.body(then);
                if let Some(els) = els {
                    if matches!(then.kind, StmtKind::Block(_)) {
                        self.out.push(' ');
                    } else {
                        self.out.push('\n');
                        self.line_start();
                    }
                    self.out.push_str("else");
                    if matches!(els.kind, StmtKind::If { .. }) {
                        self.out.push(' ');
                        self.stmt(els);
                    } else {
                        self.body(els);
                    }
                }
            }
            StmtKind::While { cond, body } => {
                self.out.push_str("while (");
                self.expr(cond, true);
                self.out.push(')');
                self.body(body);
            }
            StmtKind::For { init, cond, step, body } => {
                self.out.push_str("for (");
                if let Some(e) = init {
                    self.expr(e, true);
                }
                self.out.push_str("; ");
                if let Some(e) = cond {
                    self.expr(e, true);
                }
                self.out.push_str("; ");
                if let Some(e) = step {
                    self.expr(e, true);
                }
                self.out.push(')');
                self.body(body);
            }
            StmtKind::Foreach(f) => self.foreach(f),
            StmtKind::Break => self.out.push_str("break;"),
            StmtKind::Continue => self.out.push_str("continue;"),
            StmtKind::Next => self.out.push_str("next;"),
            StmtKind::Return(None) => self.out.push_str("return;"),
            StmtKind::Return(Some(e)) => {
                self.out.push_str("return ");
                self.expr(e, true);
                self.out.push(';');
            }
            StmtKind::Delete(e) => {
                self.out.push_str("delete ");
                self.expr(e, true);
                self.out.push(';');
            }
            StmtKind::Try { body, catch_var, catch } => {
                self.out.push_str("try ");
                self.block(body);
                self.out.push_str(" catch ");
                if let Some((name, _)) = catch_var {
                    write!(self.out, "({name}) ").unwrap();
                }
                self.block(catch);
            }
            StmtKind::EmbeddedC => self.out.push_str(snippet(self.sources, s.span)),
        }
    }

    fn foreach(&mut self, f: &Foreach) {
        self.out.push_str("foreach (");
        if let Some((v, _)) = &f.value {
            write!(self.out, "{v} = ").unwrap();
        }
        let mark = |column: usize| match f.sort {
            Some(Sort { column: c, ascending }) if c == column => {
                if ascending {
                    "+"
                } else {
                    "-"
                }
            }
            _ => "",
        };
        let keys: Vec<String> = f.keys.iter().enumerate().map(|(i, (k, _))| format!("{k}{}", mark(i + 1))).collect();
        if f.keys.len() == 1 && f.value.is_none() {
            self.out.push_str(&keys[0]);
        } else {
            write!(self.out, "[{}]", keys.join(", ")).unwrap();
        }
        self.out.push_str(" in ");
        self.operand(&f.array);
        if let Some(stat) = f.sort_stat {
            write!(self.out, " {}", stat_name(stat)).unwrap();
        }
        self.out.push_str(mark(0));
        if let Some(limit) = &f.limit {
            self.out.push_str(" limit ");
            self.expr(limit, true);
        }
        self.out.push(')');
        self.body(&f.body);
    }

    /// An operand: anything but a primary or postfix expression gets parentheses.
    fn operand(&mut self, e: &Expr) {
        self.expr(e, false);
    }

    /// The base of `[]`, `->` or postfix `++`, or the operand of a prefix operator.
    fn tight(&mut self, e: &Expr) {
        let simple = matches!(
            e.kind,
            ExprKind::Ident(_)
                | ExprKind::String(_)
                | ExprKind::TargetVar(_)
                | ExprKind::AtVar(_)
                | ExprKind::ScriptArg { .. }
                | ExprKind::ArgCount { .. }
                | ExprKind::Index { .. }
                | ExprKind::Member { .. }
                | ExprKind::Call { .. }
                | ExprKind::Stat { .. }
                | ExprKind::Hist { .. }
                | ExprKind::Entry(_)
                | ExprKind::Defined(_)
                | ExprKind::Cast { .. }
                | ExprKind::Const(_)
                | ExprKind::EmbeddedC
        ) || matches!(e.kind, ExprKind::Number(n) if n >= 0);
        if simple {
            self.expr(e, true);
        } else {
            self.out.push('(');
            self.expr(e, true);
            self.out.push(')');
        }
    }

    fn args(&mut self, args: &[Expr]) {
        self.out.push('(');
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.expr(a, true);
        }
        self.out.push(')');
    }

    /// `top`: no parentheses around this expression itself.
    fn expr(&mut self, e: &Expr, top: bool) {
        let open = |p: &mut Self| {
            if !top {
                p.out.push('(');
            }
        };
        let close = |p: &mut Self| {
            if !top {
                p.out.push(')');
            }
        };
        match &e.kind {
            ExprKind::Number(n) => write!(self.out, "{n}").unwrap(),
            ExprKind::String(s) => string_literal(&mut self.out, s),
            ExprKind::Ident(name) => self.out.push_str(name),
            ExprKind::TargetVar(name) => write!(self.out, "${name}").unwrap(),
            ExprKind::AtVar(name) => {
                self.out.push_str("@var(");
                string_literal(&mut self.out, name);
                self.out.push(')');
            }
            ExprKind::ScriptArg { index, as_string } => {
                write!(self.out, "{}{index}", if *as_string { '@' } else { '$' }).unwrap()
            }
            ExprKind::ArgCount { as_string } => self.out.push_str(if *as_string { "@#" } else { "$#" }),
            ExprKind::Index { base, keys } => {
                self.tight(base);
                self.keys(keys);
            }
            ExprKind::Member { base, name } => {
                self.tight(base);
                write!(self.out, "->{name}").unwrap();
            }
            ExprKind::AddressOf(inner) => {
                self.out.push('&');
                self.tight(inner);
            }
            ExprKind::Deref(inner) => {
                self.out.push('*');
                self.tight(inner);
            }
            ExprKind::Call { name, args } => self.call(name, args),
            ExprKind::Unary { op, expr } => {
                self.out.push(unary_op(*op));
                self.tight(expr);
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(binary_op(*op), lhs, rhs, top),
            ExprKind::Logical { op, lhs, rhs } => self.binary(logical_op(*op), lhs, rhs, top),
            ExprKind::Compare { op, lhs, rhs } => self.binary(compare_op(*op), lhs, rhs, top),
            ExprKind::Regex { negated, lhs, pattern } => {
                self.binary(if *negated { "!~" } else { "=~" }, lhs, pattern, top)
            }
            ExprKind::Ternary { cond, then, els } => {
                open(self);
                self.operand(cond);
                self.out.push_str(" ? ");
                self.operand(then);
                self.out.push_str(" : ");
                self.operand(els);
                close(self);
            }
            ExprKind::Assign { op, target, value } => {
                let text = match op {
                    AssignOp::Assign => "=".to_string(),
                    AssignOp::Op(op) => format!("{}=", binary_op(*op)),
                };
                self.binary(&text, target, value, top)
            }
            ExprKind::Aggregate { target, value } => self.binary("<<<", target, value, top),
            ExprKind::IncDec { target, increment, prefix } => {
                let op = if *increment { "++" } else { "--" };
                if *prefix {
                    self.out.push_str(op);
                    self.tight(target);
                } else {
                    self.tight(target);
                    self.out.push_str(op);
                }
            }
            ExprKind::In { keys, array } => {
                open(self);
                if keys.len() == 1 {
                    self.operand(&keys[0]);
                } else {
                    self.keys(keys);
                }
                self.out.push_str(" in ");
                self.operand(array);
                close(self);
            }
            ExprKind::Stat { op, expr } => self.call(stat_name(*op), std::slice::from_ref(expr)),
            ExprKind::Hist { kind: HistKind::Log, expr } => self.call("@hist_log", std::slice::from_ref(expr)),
            ExprKind::Hist { kind: HistKind::Linear { lo, hi, step }, expr } => {
                self.out.push_str("@hist_linear(");
                self.expr(expr, true);
                for e in [lo, hi, step] {
                    self.out.push_str(", ");
                    self.expr(e, true);
                }
                self.out.push(')');
            }
            ExprKind::Entry(inner) => self.call("@entry", std::slice::from_ref(inner)),
            ExprKind::Defined(inner) => self.call("@defined", std::slice::from_ref(inner)),
            ExprKind::Cast { expr, type_name, module } => self.cast(expr, type_name, module.as_deref()),
            ExprKind::Const(name) => {
                self.out.push_str("@const(");
                string_literal(&mut self.out, name);
                self.out.push(')');
            }
            ExprKind::EmbeddedC => self.out.push_str(snippet(self.sources, e.span)),
            ExprKind::Wildcard => self.out.push('*'),
        }
    }

    /// `name(args)`: a call, or an `@` operator written as one.
    fn call(&mut self, name: &str, args: &[Expr]) {
        self.out.push_str(name);
        self.args(args);
    }

    /// `[k1, k2]`: the keys of an index or of a multi-key `in`.
    fn keys(&mut self, keys: &[Expr]) {
        self.out.push('[');
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.expr(k, true);
        }
        self.out.push(']');
    }

    fn cast(&mut self, expr: &Expr, type_name: &str, module: Option<&str>) {
        self.out.push_str("@cast(");
        self.expr(expr, true);
        self.out.push_str(", ");
        string_literal(&mut self.out, type_name);
        if let Some(m) = module {
            self.out.push_str(", ");
            string_literal(&mut self.out, m);
        }
        self.out.push(')');
    }

    fn binary(&mut self, op: &str, lhs: &Expr, rhs: &Expr, top: bool) {
        if !top {
            self.out.push('(');
        }
        self.operand(lhs);
        write!(self.out, " {op} ").unwrap();
        self.operand(rhs);
        if !top {
            self.out.push(')');
        }
    }
}

/// The source text of embedded C; the printer never panics, even without the source.
fn snippet(sources: &SourceMap, span: crate::span::Span) -> &str {
    sources
        .files()
        .find(|(id, _)| *id == span.file)
        .and_then(|(_, f)| f.text.get(span.start as usize..span.end as usize))
        .unwrap_or("%{ /* source not available */ %}")
}

fn unary_op(op: UnaryOp) -> char {
    match op {
        UnaryOp::Neg => '-',
        UnaryOp::Plus => '+',
        UnaryOp::Not => '!',
        UnaryOp::BitNot => '~',
    }
}

fn logical_op(op: LogicalOp) -> &'static str {
    match op {
        LogicalOp::And => "&&",
        LogicalOp::Or => "||",
    }
}

fn compare_op(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Eq => "==",
        CompareOp::Ne => "!=",
    }
}

fn binary_op(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
        BinaryOp::Mod => "%",
        BinaryOp::Shl => "<<",
        BinaryOp::Shr => ">>",
        BinaryOp::BitAnd => "&",
        BinaryOp::BitOr => "|",
        BinaryOp::BitXor => "^",
        BinaryOp::Concat => ".",
    }
}

fn stat_name(op: StatOp) -> &'static str {
    match op {
        StatOp::Count => "@count",
        StatOp::Sum => "@sum",
        StatOp::Min => "@min",
        StatOp::Max => "@max",
        StatOp::Avg => "@avg",
        StatOp::Variance => "@variance",
    }
}

fn type_name(ty: TypeName) -> &'static str {
    match ty {
        TypeName::Long => "long",
        TypeName::String => "string",
    }
}

/// A string literal with the escapes the lexer understands.
fn string_literal(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(out, "\\{:03o}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}
