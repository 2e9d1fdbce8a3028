//! Lowering: the elaborated, typed script to the IR, one [`ir::Function`] per probe handler.
//!
//! Input: an [`Elaborated`] script and its [`TypeTable`] (no type errors). Output: an
//! [`ir::Program`] that passes [`ir::verify`], plus diagnostics for what cannot be lowered
//! (a printf whose arguments do not fit its format, recursion, a `$1` that is not a number).
//!
//! Script functions are inlined at each call: BPF has no cheap calls with our calling
//! convention, and inlining lets dead-code elimination drop what a call site does not use.
//! `print`, `println`, `printf` and `sprintf` are lowered here, with formats interned once.

use std::collections::{HashMap, HashSet};

use crate::ast::{self, AssignOp, BinaryOp, Block, CompareOp, Expr, ExprKind, LogicalOp, Stmt, StmtKind, UnaryOp};
use crate::builtins::{self, Builtin, Lowering};
use crate::diag::Diagnostic;
use crate::elaborate::Elaborated;
use crate::ir::{self, BinOp, CmpOp, FmtId, GlobalId, InstKind, Operand, Terminator, Ty, UnOp, Var};
use crate::kernel::{Bitfield, CType, FunctionSig, KernelInfo, TracepointFormat, TypeId};
use crate::printf::{self, ArgType};
use crate::span::Span;
use crate::types::{field_ty, Scope, TypeTable};

/// Settings that change the generated code.
#[derive(Clone, Debug)]
pub struct Options {
    /// SystemTap's MAXSTRINGLEN.
    pub string_capacity: u32,
    /// `$1..$N` / `@1..@N`.
    pub script_args: Vec<String>,
    /// SystemTap's MAXMAPENTRIES: the capacity of arrays declared without a size.
    pub max_map_entries: u32,
    /// Give every array the layout any later compile would give it, whatever this one's
    /// uses: string keys take the whole string capacity and statistics keep `@hist_log`
    /// buckets; every global is `GlobalStorage::Shared`. For an interactive session, whose inputs are compiled one at a time against
    /// maps that outlive them.
    pub stable_layouts: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { string_capacity: 128, script_args: Vec::new(), max_map_entries: 2048, stable_layouts: false }
    }
}

pub fn lower(
    script: &Elaborated,
    types: &TypeTable,
    kernel: &dyn KernelInfo,
    options: &Options,
) -> (ir::Program, Vec<Diagnostic>) {
    let mut program = ir::Program { string_capacity: options.string_capacity, ..Default::default() };
    let mut diags = Vec::new();
    let globals = declare_globals(script, types, options, &mut program, &mut diags);
    let arrays = declare_arrays(script, types, options, &mut program);
    let mut formats = HashMap::new();
    let pure = pure_functions(script);
    for (i, probe) in script.probes.iter().enumerate().filter(|(_, p)| !p.never) {
        let mut cx = Ctx {
            script,
            types,
            kernel_info: kernel,
            options,
            program: &mut program,
            globals: &globals,
            arrays: &arrays,
            formats: &mut formats,
            diags: &mut diags,
            func: ir::Function::default(),
            current: None,
            frames: vec![Frame { scope: Scope::Probe(i), locals: HashMap::new(), ret: None, name: None }],
            loops: Vec::new(),
            catches: Vec::new(),
            format: probe.format.as_ref(),
            function: probe.function.as_ref(),
            point: &probe.point,
            user_point: &probe.user_point,
            function_name: match &probe.target {
                ir::Target::KernelFunction { name, .. } => name,
                ir::Target::Tracepoint { event, .. }
                | ir::Target::RawTracepoint { event, .. }
                | ir::Target::Syscall { event, .. } => event,
                _ => "",
            },
            kernel: !probe.target.is_user_space(),
            exit_block: None,
            skip: dead_assignments(&probe.body, &pure, script, types, &Scope::Probe(i)),
            next_iter: 0,
            loop_budget: None,
            local_types: HashMap::new(),
        };
        let entry = cx.func.new_block();
        let exit = cx.func.new_block();
        cx.func.entry = Some(entry);
        cx.exit_block = Some(exit);
        cx.current = Some(entry);
        cx.block(&probe.body);
        cx.terminate(Terminator::Jump(exit));
        let mut func = cx.func;
        crate::optimize::run(&mut func);
        program.handlers.push(ir::Handler {
            point: probe.point.clone(),
            user_point: probe.user_point.clone(),
            target: probe.target.clone(),
            func,
            span: probe.span,
        });
    }
    mark_reads(script, &mut program);
    if !options.stable_layouts {
        keep_user_space_globals(&mut program);
    }
    (program, diags)
}

/// The script's globals, typed, with their constant initial values.
fn declare_globals(
    script: &Elaborated,
    types: &TypeTable,
    options: &Options,
    program: &mut ir::Program,
    diags: &mut Vec<Diagnostic>,
) -> HashMap<String, ir::GlobalId> {
    let mut globals = HashMap::new();
    for g in &script.globals {
        let Some((ty, _)) = types.globals.get(&g.name) else { continue };
        let init = g.init.as_ref().and_then(|e| match &e.kind {
            ExprKind::Number(n) => Some(ir::Const::Long(*n)),
            ExprKind::String(s) => Some(ir::Const::Str(s.clone())),
            ExprKind::Unary { op: UnaryOp::Neg, expr } => match expr.kind {
                ExprKind::Number(n) => Some(ir::Const::Long(n.wrapping_neg())),
                _ => None,
            },
            // `global argv_1 = @1`: the arguments are known now, so the value is a constant.
            ExprKind::ScriptArg { index, as_string } => {
                script_arg(&options.script_args, *index, *as_string, e.span).map_err(|d| diags.push(d)).ok()
            }
            ExprKind::ArgCount { as_string: false } => Some(ir::Const::Long(options.script_args.len() as i64)),
            ExprKind::ArgCount { as_string: true } => Some(ir::Const::Str(options.script_args.len().to_string())),
            _ => None,
        });
        let id = program.globals.push(ir::GlobalDecl {
            name: g.name.clone(),
            ty: *ty,
            init,
            read: false,
            storage: ir::GlobalStorage::Shared,
        });
        globals.insert(g.name.clone(), id);
    }
    globals
}

/// The arrays reachable code uses, with their key layouts and capacities.
fn declare_arrays(
    script: &Elaborated,
    types: &TypeTable,
    options: &Options,
    program: &mut ir::Program,
) -> HashMap<String, ir::ArrayId> {
    let mut arrays = HashMap::new();
    let key_widths = string_key_widths(script, options.string_capacity);
    let mentioned = names_in_reachable_code(script);
    for (name, t) in &types.arrays {
        // Arrays only unused functions touch (a tapset's) get no map.
        if !mentioned.contains(name.as_str()) {
            continue;
        }
        let decl = script.globals.iter().find(|g| &g.name == name);
        let (Some(value), Some(keys)) = (t.value, t.keys.iter().copied().collect::<Option<Vec<Ty>>>()) else {
            continue;
        };
        let widths = keys
            .iter()
            .enumerate()
            .map(|(i, ty)| match ty {
                Ty::Long => 8,
                Ty::Str if options.stable_layouts => options.string_capacity,
                Ty::Str => key_widths.get(&(name.clone(), i)).copied().unwrap_or(options.string_capacity),
            })
            .collect();
        let id = program.arrays.push(ir::ArrayDecl {
            name: name.clone(),
            key_widths: widths,
            keys,
            value,
            max_entries: decl.and_then(|g| g.size).map_or(options.max_map_entries, |n| n.clamp(1, 1 << 24) as u32),
            wrap: decl.is_some_and(|g| g.wrap),
            hist: ir::HistSpec {
                log: t.hist_log || (options.stable_layouts && value == ir::ValueKind::Stat),
                linear: t.hist_linear,
            },
            read: false,
        });
        arrays.insert(name.clone(), id);
    }
    arrays
}

/// Marks the globals and arrays some handler reads, or a tapset declares: those are not
/// printed at exit.
fn mark_reads(script: &Elaborated, program: &mut ir::Program) {
    let from_tapset: HashSet<&str> = script.globals.iter().filter(|g| g.tapset).map(|g| g.name.as_str()).collect();
    let mut read = vec![false; program.globals.len()];
    for h in &program.handlers {
        for b in h.func.blocks.values() {
            for inst in &b.insts {
                if let InstKind::LoadGlobal { global, .. } = inst.kind {
                    read[global.index()] = true;
                }
            }
        }
    }
    for (g, decl) in program.globals.iter_mut() {
        decl.read = read[g.index()] || from_tapset.contains(decl.name.as_str());
    }
    let mut array_read = vec![false; program.arrays.len()];
    for h in &program.handlers {
        for b in h.func.blocks.values() {
            for inst in &b.insts {
                match inst.kind {
                    InstKind::ArrayGet { array, .. }
                    | InstKind::ArrayContains { array, .. }
                    | InstKind::ArrayContainsMatching { array, .. }
                    | InstKind::StatGet { array, .. }
                    | InstKind::PrintHist { array, .. }
                    | InstKind::IterStart { array, .. } => array_read[array.index()] = true,
                    _ => {}
                }
            }
        }
    }
    for (a, decl) in program.arrays.iter_mut() {
        decl.read = array_read[a.index()] || from_tapset.contains(decl.name.as_str());
    }
}

/// Globals no kernel handler touches (functions are inlined, so the handlers' code is all
/// of it) are kept at user space's string width. Not in a session: a later input may
/// touch any global from a kernel probe, at the offset and width placed now.
fn keep_user_space_globals(program: &mut ir::Program) {
    let mut in_kernel = vec![false; program.globals.len()];
    for h in program.handlers.iter().filter(|h| !h.target.is_user_space()) {
        for inst in h.func.blocks.values().flat_map(|b| &b.insts) {
            if let InstKind::LoadGlobal { global, .. }
            | InstKind::StoreGlobal { global, .. }
            | InstKind::AddGlobal { global, .. } = inst.kind
            {
                in_kernel[global.index()] = true;
            }
        }
    }
    for (_, decl) in program.globals.iter_mut().filter(|(g, _)| !in_kernel[g.index()]) {
        decl.storage = ir::GlobalStorage::UserSpace;
    }
}

use cranelift_entity::EntityRef;

struct Frame {
    scope: Scope,
    locals: HashMap<String, Var>,
    /// For an inlined function: where `return` goes and the variable holding the result.
    ret: Option<(ir::Block, Option<Var>)>,
    name: Option<String>,
}

struct Ctx<'a> {
    script: &'a Elaborated,
    types: &'a TypeTable,
    kernel_info: &'a dyn KernelInfo,
    options: &'a Options,
    program: &'a mut ir::Program,
    globals: &'a HashMap<String, GlobalId>,
    arrays: &'a HashMap<String, ir::ArrayId>,
    formats: &'a mut HashMap<String, FmtId>,
    diags: &'a mut Vec<Diagnostic>,
    func: ir::Function,
    /// The block being filled; `None` after a terminator until a new block starts.
    current: Option<ir::Block>,
    frames: Vec<Frame>,
    /// `(continue target, break target)` of the enclosing loops.
    loops: Vec<(ir::Block, ir::Block)>,
    /// The enclosing `try`s, innermost last.
    catches: Vec<Catch>,
    format: Option<&'a TracepointFormat>,
    /// The probed kernel function's signature, for `kernel.function` probes; the
    /// tracepoint's arguments, for raw tracepoint probes.
    function: Option<&'a FunctionSig>,
    /// `pp()` and the default `ppfunc()`.
    point: &'a str,
    /// The point as the script named it, wildcards expanded (`pn()`).
    user_point: &'a str,
    function_name: &'a str,
    /// The handler runs in the kernel.
    kernel: bool,
    exit_block: Option<ir::Block>,
    /// Assignments to probe locals nobody reads, with pure values: not lowered. Keyed by
    /// node address, since generated statements share one span.
    skip: HashSet<*const Expr>,
    next_iter: usize,
    /// The kernel handler's loop budget variable, made on the first loop.
    loop_budget: Option<Var>,
    /// The kernel type a local's value points to, where every typed value assigned to it
    /// points to the same one (SystemTap's autocast: `fh = &$args->fh; fh->fh_dentry`);
    /// `None` after two disagree.
    local_types: HashMap<Var, Option<TypeId>>,
}

/// Whether [`Ctx::typed`] knows the kernel type of `e`'s value: a `@cast`, `->member`, `&`,
/// `*`, an element of a kernel array, or a `$` variable of a function.
fn is_typed(e: &Expr, in_function: bool) -> bool {
    match &e.kind {
        ExprKind::Member { .. } | ExprKind::Cast { .. } | ExprKind::AddressOf(_) | ExprKind::Deref(_) => true,
        ExprKind::Index { base, .. } => !matches!(base.kind, ExprKind::Ident(_)),
        ExprKind::TargetVar(_) => in_function,
        _ => false,
    }
}

/// An enclosing `try`: where its `catch` starts, and its catch variable (a string).
#[derive(Clone, Copy)]
struct Catch {
    block: ir::Block,
    message: Option<Var>,
}

/// Loop iterations a kernel handler may run (SystemTap's MAXACTION counts statements; a
/// loop iteration is the unit that can run away).
pub const MAX_LOOP_ITERATIONS: i64 = 1000;

impl Ctx<'_> {
    fn frame(&self) -> &Frame {
        self.frames.last().expect("a frame is always pushed")
    }

    fn emit(&mut self, mut kind: InstKind, span: Span) {
        // Inside `try`, a faulting read goes to the `catch`.
        let fault = match &mut kind {
            InstKind::Read { fault, .. } if !self.catches.is_empty() => {
                let flag = self.func.new_var(Ty::Long, None);
                *fault = Some(flag);
                Some(flag)
            }
            _ => None,
        };
        self.emit_inst(kind, span);
        if let Some(flag) = fault {
            let (faulted, go_on) = (self.func.new_block(), self.func.new_block());
            self.terminate(Terminator::Branch { cond: flag, then: faulted, els: go_on });
            self.switch_to(faulted);
            self.throw("kernel read fault", span);
            self.switch_to(go_on);
        }
    }

    /// An error the script may catch: to the innermost `catch`, with its message in the
    /// catch variable; outside `try` the script ends with it, as `error(msg)` ends it.
    fn throw(&mut self, message: &str, span: Span) {
        let text = self.temp(Ty::Str);
        self.emit(InstKind::StrConst { dst: text, value: message.into() }, span);
        self.throw_text(text, span);
    }

    /// [`Self::throw`] with the message in a string variable: also `error(msg)` inside `try`.
    fn throw_text(&mut self, text: Var, span: Span) {
        let Some(catch) = self.catches.last().copied() else {
            let fmt = self.intern_format_decl(ir::FormatDecl {
                text: "%s".into(),
                args: vec![Ty::Str],
                deferred: Vec::new(),
                sink: ir::Sink::Error,
            });
            self.emit(InstKind::Printf { fmt, args: vec![text] }, span);
            self.emit(InstKind::Exit, span);
            self.terminate(Terminator::Return);
            return;
        };
        if let Some(v) = catch.message {
            self.emit(InstKind::Copy { dst: v, src: text }, span);
        }
        self.terminate(Terminator::Jump(catch.block));
    }

    fn emit_inst(&mut self, kind: InstKind, span: Span) {
        let block = match self.current {
            Some(b) => b,
            // Code after `return`/`next`/`break` is unreachable; give it a block anyway.
            None => {
                let b = self.func.new_block();
                self.current = Some(b);
                b
            }
        };
        self.func.blocks[block].insts.push(ir::Inst { kind, span });
    }

    fn terminate(&mut self, term: Terminator) {
        if let Some(b) = self.current.take() {
            self.func.blocks[b].term = term;
        }
    }

    fn switch_to(&mut self, b: ir::Block) {
        self.current = Some(b);
    }

    fn temp(&mut self, ty: Ty) -> Var {
        self.func.new_var(ty, None)
    }

    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn expr_ty(&self, e: &Expr) -> Option<Ty> {
        self.types.expr_ty(&self.frame().scope, self.format, e)
    }

    fn block(&mut self, b: &Block) {
        for s in &b.stmts {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Block(b) => self.block(b),
            StmtKind::Expr(e) => {
                if self.frames.len() == 1 && self.skip.contains(&(e as *const Expr)) {
                    return;
                }
                self.expr(e);
            }
            StmtKind::Empty => {}
            StmtKind::If { cond, then, els } => {
                let (t, e, join) = (self.func.new_block(), self.func.new_block(), self.func.new_block());
                self.cond(cond, t, if els.is_some() { e } else { join });
                self.switch_to(t);
                self.stmt(then);
                self.terminate(Terminator::Jump(join));
                if let Some(els) = els {
                    self.switch_to(e);
                    self.stmt(els);
                    self.terminate(Terminator::Jump(join));
                }
                self.switch_to(join);
            }
            StmtKind::While { cond, body } => self.lower_loop(None, Some(cond), None, body),
            StmtKind::For { init, cond, step, body } => {
                self.lower_loop(init.as_ref(), cond.as_ref(), step.as_ref(), body)
            }
            StmtKind::Break | StmtKind::Continue => match self.loops.last() {
                Some(&(cont, brk)) => {
                    let target = if s.kind == StmtKind::Break { brk } else { cont };
                    self.terminate(Terminator::Jump(target));
                }
                None => self.error(Diagnostic::error("E0301", "`break` or `continue` outside a loop", s.span)),
            },
            StmtKind::Next => {
                let exit = self.exit_block.expect("set before lowering a body");
                self.terminate(Terminator::Jump(exit));
            }
            StmtKind::Return(value) => {
                let Some((target, result)) = self.frame().ret else {
                    // `return` in a probe body ends the handler, like `next`.
                    let exit = self.exit_block.expect("set before lowering a body");
                    self.terminate(Terminator::Jump(exit));
                    return;
                };
                if let (Some(e), Some(r)) = (value, result) {
                    if let Some(v) = self.expr(e) {
                        self.emit(InstKind::Copy { dst: r, src: v }, s.span);
                    }
                }
                self.terminate(Terminator::Jump(target));
            }
            StmtKind::Foreach(fe) => self.foreach(fe, s.span),
            StmtKind::Delete(e) => self.delete(e),
            StmtKind::Try { body, catch_var, catch } => self.try_catch(body, catch_var.as_ref(), catch),
            StmtKind::EmbeddedC => self.error(crate::elaborate::embedded_c(s.span)),
        }
    }

    fn lower_loop(&mut self, init: Option<&Expr>, cond: Option<&Expr>, step: Option<&Expr>, body: &Stmt) {
        if let Some(i) = init {
            self.expr(i);
        }
        let (head, body_b, step_b, done) =
            (self.func.new_block(), self.func.new_block(), self.func.new_block(), self.func.new_block());
        self.terminate(Terminator::Jump(head));
        self.switch_to(head);
        self.spend_loop_budget(body.span);
        match cond {
            Some(c) => self.cond(c, body_b, done),
            None => self.terminate(Terminator::Jump(body_b)),
        }
        self.switch_to(body_b);
        self.loops.push((step_b, done));
        self.stmt(body);
        self.loops.pop();
        self.terminate(Terminator::Jump(step_b));
        self.switch_to(step_b);
        if let Some(s) = step {
            self.expr(s);
        }
        self.terminate(Terminator::Jump(head));
        self.switch_to(done);
    }

    /// In a kernel handler, every loop iteration spends one unit of a budget of
    /// [`MAX_LOOP_ITERATIONS`]; when it runs out the handler reports MAXACTION and ends.
    /// This bounds every loop, which the verifier requires, whatever the loop's condition.
    fn spend_loop_budget(&mut self, span: Span) {
        if !self.kernel {
            return;
        }
        let budget = match self.loop_budget {
            Some(v) => v,
            None => {
                let v = self.func.new_var(Ty::Long, Some("__loop_budget".into()));
                let entry = self.func.entry.expect("set before lowering a body");
                let init = InstKind::Const { dst: v, value: MAX_LOOP_ITERATIONS };
                self.func.blocks[entry].insts.insert(0, ir::Inst { kind: init, span });
                self.loop_budget = Some(v);
                v
            }
        };
        self.emit(InstKind::Binary { op: BinOp::Sub, dst: budget, lhs: budget, rhs: Operand::Imm(1) }, span);
        let spent = self.temp(Ty::Long);
        self.emit(InstKind::Compare { op: CmpOp::Lt, dst: spent, lhs: budget, rhs: Operand::Imm(0) }, span);
        let (stop, go) = (self.func.new_block(), self.func.new_block());
        self.terminate(Terminator::Branch { cond: spent, then: stop, els: go });
        self.switch_to(stop);
        self.emit(InstKind::MaxActionExceeded, span);
        let exit = self.exit_block.expect("set before lowering a body");
        self.terminate(Terminator::Jump(exit));
        self.switch_to(go);
    }

    /// Branches on a condition without materializing 0/1 where it can.
    fn cond(&mut self, e: &Expr, then: ir::Block, els: ir::Block) {
        match &e.kind {
            ExprKind::Logical { op: LogicalOp::And, lhs, rhs } => {
                let mid = self.func.new_block();
                self.cond(lhs, mid, els);
                self.switch_to(mid);
                self.cond(rhs, then, els);
            }
            ExprKind::Logical { op: LogicalOp::Or, lhs, rhs } => {
                let mid = self.func.new_block();
                self.cond(lhs, then, mid);
                self.switch_to(mid);
                self.cond(rhs, then, els);
            }
            ExprKind::Unary { op: UnaryOp::Not, expr } => self.cond(expr, els, then),
            _ => {
                let v = self.long_expr(e);
                self.terminate(Terminator::Branch { cond: v, then, els });
            }
        }
    }

    /// An expression that must give a long (the type checker made sure of it).
    fn long_expr(&mut self, e: &Expr) -> Var {
        let errors = self.diags.len();
        match self.expr(e) {
            Some(v) if self.func.ty(v) == Ty::Long => v,
            // A call of a function that returns nothing, used as a long (`n && exit()`):
            // SystemTap infers from that use that it returns a long, which is then 0.
            None if matches!(e.kind, ExprKind::Call { .. }) && self.diags.len() == errors => {
                let v = self.temp(Ty::Long);
                self.emit(InstKind::Const { dst: v, value: 0 }, e.span);
                v
            }
            _ => {
                self.error(Diagnostic::error("E0302", "expected a long value here", e.span));
                let v = self.temp(Ty::Long);
                self.emit(InstKind::Const { dst: v, value: 0 }, e.span);
                v
            }
        }
    }

    fn str_expr(&mut self, e: &Expr) -> Var {
        match self.expr(e) {
            Some(v) if self.func.ty(v) == Ty::Str => v,
            _ => {
                self.error(Diagnostic::error("E0302", "expected a string value here", e.span));
                let v = self.temp(Ty::Str);
                self.emit(InstKind::StrConst { dst: v, value: String::new() }, e.span);
                v
            }
        }
    }

    /// `subject =~ pattern` (`!~` when `negated`); the pattern is compiled here, once per
    /// distinct text.
    fn regex_match(&mut self, negated: bool, subject: &Expr, pattern: &Expr, span: Span) -> Var {
        let text = match &pattern.kind {
            ExprKind::String(s) => Some(s.clone()),
            ExprKind::ScriptArg { index, as_string: true } => {
                self.options.script_args.get(*index as usize - 1).cloned()
            }
            _ => None,
        };
        let subject = self.str_expr(subject);
        let Some(text) = text else {
            // A missing `@N` (the type checker refused anything else): lowering it reports it.
            self.expr(pattern);
            return self.constant(0, span);
        };
        let known = self.program.regexes.iter().find(|(_, r)| r.source == text).map(|(id, _)| id);
        let regex = match known {
            Some(id) => id,
            None => match crate::regex::compile(&text) {
                Ok(r) => self.program.regexes.push(r),
                Err(e) => {
                    self.error(Diagnostic::error("E0320", e.to_string(), pattern.span).with_label("this pattern"));
                    return self.constant(0, span);
                }
            },
        };
        if let (true, Err(e)) = (self.kernel, &self.program.regexes[regex].table) {
            let d = Diagnostic::error("E0320", e.to_string(), pattern.span)
                .with_label("this pattern")
                .with_help("a user-space probe (begin, end, timer) can still match it");
            self.error(d);
            return self.constant(0, span);
        }
        let dst = self.temp(Ty::Long);
        self.emit(InstKind::RegexMatch { dst, regex, subject }, span);
        if !negated {
            return dst;
        }
        let not = self.temp(Ty::Long);
        self.emit(InstKind::Unary { op: UnOp::Not, dst: not, src: dst }, span);
        not
    }

    fn constant(&mut self, value: i64, span: Span) -> Var {
        let v = self.temp(Ty::Long);
        self.emit(InstKind::Const { dst: v, value }, span);
        v
    }

    /// Where a name lives: a local of the current frame or a global.
    fn resolve(&mut self, name: &str) -> Option<Place> {
        if let Some(v) = self.frame().locals.get(name) {
            return Some(Place::Local(*v));
        }
        let scope = &self.frame().scope;
        if self.types.is_local(scope, name) {
            let ty = self.types.var_ty(scope, name)?;
            let v = self.func.new_var(ty, Some(name.to_string()));
            // Locals start as 0 or "" in SystemTap.
            let zero = zero_of(v, ty);
            let entry = self.func.entry.expect("set before lowering a body");
            self.func.blocks[entry].insts.insert(0, ir::Inst { kind: zero, span: Span::default() });
            self.frames.last_mut().expect("a frame").locals.insert(name.to_string(), v);
            return Some(Place::Local(v));
        }
        if !self.types.sees_global(scope, name) {
            return None;
        }
        self.globals.get(name).map(|g| Place::Global(*g, self.program.globals[*g].ty))
    }

    /// `$1`, `@1`: the argument, known at compile time, as a constant.
    fn script_arg_value(&mut self, index: u32, as_string: bool, span: Span) -> Option<Var> {
        let value = script_arg(&self.options.script_args, index, as_string, span).unwrap_or_else(|d| {
            self.error(d);
            // A value of the right type, so no second error follows from this one.
            if as_string {
                ir::Const::Str(String::new())
            } else {
                ir::Const::Long(0)
            }
        });
        match value {
            ir::Const::Str(value) => {
                let v = self.temp(Ty::Str);
                self.emit(InstKind::StrConst { dst: v, value }, span);
                Some(v)
            }
            ir::Const::Long(n) => Some(self.constant(n, span)),
        }
    }

    /// `$#`, `@#`: how many arguments the script was given.
    fn arg_count(&mut self, as_string: bool, span: Span) -> Option<Var> {
        let n = self.options.script_args.len() as i64;
        if as_string {
            let v = self.temp(Ty::Str);
            self.emit(InstKind::StrConst { dst: v, value: n.to_string() }, span);
            Some(v)
        } else {
            Some(self.constant(n, span))
        }
    }

    /// `++x`, `x--`, `a[k]++`: the new value (prefix) or the old one.
    fn inc_dec(&mut self, target: &Expr, increment: bool, prefix: bool, span: Span) -> Option<Var> {
        let delta = if increment { 1 } else { -1 };
        if let ExprKind::Index { base, keys } = &target.kind {
            let one = Expr::new(ExprKind::Number(delta), span);
            let now = self.assign_element(AssignOp::Op(BinaryOp::Add), base, keys, &one, span)?;
            if prefix {
                return Some(now);
            }
            let old = self.temp(Ty::Long);
            self.emit(InstKind::Binary { op: BinOp::Sub, dst: old, lhs: now, rhs: Operand::Imm(delta) }, span);
            return Some(old);
        }
        let ExprKind::Ident(name) = &target.kind else {
            self.error(Diagnostic::error("E0208", "cannot increment this expression", target.span));
            return None;
        };
        match self.resolve(name)? {
            Place::Local(v) => {
                let old = self.temp(Ty::Long);
                if !prefix {
                    self.emit(InstKind::Copy { dst: old, src: v }, span);
                }
                self.emit(InstKind::Binary { op: BinOp::Add, dst: v, lhs: v, rhs: Operand::Imm(delta) }, span);
                Some(if prefix { v } else { old })
            }
            Place::Global(g, _) => {
                let d = self.constant(delta, span);
                self.emit(InstKind::AddGlobal { global: g, src: d }, span);
                let now = self.temp(Ty::Long);
                self.emit(InstKind::LoadGlobal { dst: now, global: g }, span);
                if prefix {
                    return Some(now);
                }
                let old = self.temp(Ty::Long);
                self.emit(InstKind::Binary { op: BinOp::Sub, dst: old, lhs: now, rhs: Operand::Imm(delta) }, span);
                Some(old)
            }
        }
    }

    /// `lhs op rhs`: of strings or of longs, as the left side's type says.
    fn compare(&mut self, op: CompareOp, lhs: &Expr, rhs: &Expr, span: Span) -> Option<Var> {
        let dst = self.temp(Ty::Long);
        let op = cmp_op(op);
        if self.expr_ty(lhs) == Some(Ty::Str) {
            let (l, r) = (self.str_expr(lhs), self.str_expr(rhs));
            self.emit(InstKind::StrCompare { op, dst, lhs: l, rhs: r }, span);
        } else {
            let l = self.long_expr(lhs);
            let r = self.operand(rhs);
            self.emit(InstKind::Compare { op, dst, lhs: l, rhs: r }, span);
        }
        Some(dst)
    }

    /// `a && b`, `a || b` as a value: 1 or 0, through the branches `cond` makes.
    fn logical(&mut self, e: &Expr, span: Span) -> Option<Var> {
        let dst = self.temp(Ty::Long);
        let (t, f, join) = (self.func.new_block(), self.func.new_block(), self.func.new_block());
        self.cond(e, t, f);
        for (b, value) in [(t, 1), (f, 0)] {
            self.switch_to(b);
            self.emit(InstKind::Const { dst, value }, span);
            self.terminate(Terminator::Jump(join));
        }
        self.switch_to(join);
        Some(dst)
    }

    /// `cond ? then : els`.
    fn ternary(&mut self, cond: &Expr, then: &Expr, els: &Expr, span: Span) -> Option<Var> {
        let ty = self.expr_ty(then).or_else(|| self.expr_ty(els)).unwrap_or(Ty::Long);
        let dst = self.temp(ty);
        let (t, f, join) = (self.func.new_block(), self.func.new_block(), self.func.new_block());
        self.cond(cond, t, f);
        for (b, arm) in [(t, then), (f, els)] {
            self.switch_to(b);
            if let Some(v) = self.expr(arm) {
                self.emit(InstKind::Copy { dst, src: v }, span);
            }
            self.terminate(Terminator::Jump(join));
        }
        self.switch_to(join);
        Some(dst)
    }

    fn expr(&mut self, e: &Expr) -> Option<Var> {
        let span = e.span;
        match &e.kind {
            ExprKind::Number(n) => Some(self.constant(*n, span)),
            ExprKind::String(s) => {
                let v = self.temp(Ty::Str);
                self.emit(InstKind::StrConst { dst: v, value: s.clone() }, span);
                Some(v)
            }
            ExprKind::Ident(name) => match self.resolve(name)? {
                Place::Local(v) => Some(v),
                Place::Global(g, ty) => {
                    let v = self.temp(ty);
                    self.emit(InstKind::LoadGlobal { dst: v, global: g }, span);
                    Some(v)
                }
            },
            ExprKind::TargetVar(name) => self.target_var(name, span),
            ExprKind::ScriptArg { index, as_string } => self.script_arg_value(*index, *as_string, span),
            ExprKind::ArgCount { as_string } => self.arg_count(*as_string, span),
            ExprKind::Unary { op, expr } => {
                let src = self.long_expr(expr);
                let op = match op {
                    UnaryOp::Plus => return Some(src),
                    UnaryOp::Neg => UnOp::Neg,
                    UnaryOp::Not => UnOp::Not,
                    UnaryOp::BitNot => UnOp::BitNot,
                };
                let dst = self.temp(Ty::Long);
                self.emit(InstKind::Unary { op, dst, src }, span);
                Some(dst)
            }
            ExprKind::Binary { op: BinaryOp::Concat, lhs, rhs } => {
                let (l, r) = (self.str_expr(lhs), self.str_expr(rhs));
                let dst = self.temp(Ty::Str);
                self.emit(InstKind::Concat { dst, lhs: l, rhs: r }, span);
                Some(dst)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.long_expr(lhs);
                let r = self.operand(rhs);
                let dst = self.temp(Ty::Long);
                self.emit(InstKind::Binary { op: bin_op(*op), dst, lhs: l, rhs: r }, span);
                Some(dst)
            }
            ExprKind::Compare { op, lhs, rhs } => self.compare(*op, lhs, rhs, span),
            ExprKind::Regex { negated, lhs, pattern } => Some(self.regex_match(*negated, lhs, pattern, span)),
            ExprKind::Logical { .. } => self.logical(e, span),
            ExprKind::Ternary { cond, then, els } => self.ternary(cond, then, els, span),
            ExprKind::Assign { op, target, value } => self.assign(*op, target, value, span),
            ExprKind::IncDec { target, increment, prefix } => self.inc_dec(target, *increment, *prefix, span),
            ExprKind::Call { name, args } => self.call(name, args, span),
            // At a function's return fexit still has the arguments, so `@entry(e)` is `e`
            // evaluated there (exact for arguments; kretprobes cannot do it, see ArgAccess).
            ExprKind::Entry(inner) if self.function.is_some() => self.expr(inner),
            // A syscall return probe: the entry probe elaboration added stored the value.
            ExprKind::Entry(inner) if self.arrays.contains_key(&crate::elaborate::entry_array(inner.span)) => {
                self.expr(&crate::elaborate::entry_value(inner.span))
            }
            ExprKind::Member { .. } | ExprKind::Cast { .. } | ExprKind::AddressOf(_) | ExprKind::Deref(_) => {
                self.typed(e).map(|(v, _)| v)
            }
            ExprKind::Index { base, .. } if !matches!(base.kind, ExprKind::Ident(_)) => self.typed(e).map(|(v, _)| v),
            ExprKind::Index { base, keys } => {
                let (array, keys) = self.array_ref(base, keys)?;
                let ty = self.array_value_ty(array, span)?;
                let dst = self.temp(ty);
                self.emit(InstKind::ArrayGet { dst, array, keys }, span);
                Some(dst)
            }
            ExprKind::In { keys, array } if has_wildcard(keys) => {
                let (array, keys) = self.array_pattern(array, keys)?;
                let dst = self.temp(Ty::Long);
                self.emit(InstKind::ArrayContainsMatching { dst, array, keys }, span);
                Some(dst)
            }
            ExprKind::In { keys, array } => {
                let (array, keys) = self.array_ref(array, keys)?;
                let dst = self.temp(Ty::Long);
                self.emit(InstKind::ArrayContains { dst, array, keys }, span);
                Some(dst)
            }
            ExprKind::Aggregate { target, value } => {
                let (array, keys) = self.stat_ref(target)?;
                let v = self.long_expr(value);
                self.emit(InstKind::StatAdd { array, keys, value: v }, span);
                Some(v)
            }
            ExprKind::Stat { op, expr } => {
                let (array, keys) = self.stat_ref(expr)?;
                let dst = self.temp(Ty::Long);
                match stat_op(*op) {
                    op @ (ir::StatOp::Min | ir::StatOp::Max | ir::StatOp::Avg | ir::StatOp::Variance)
                        if self.kernel =>
                    {
                        self.kernel_stat(dst, array, keys, op, span)
                    }
                    op => self.emit(InstKind::StatGet { dst, array, keys, op }, span),
                }
                Some(dst)
            }
            ExprKind::Hist { .. } => {
                self.error(Diagnostic::error("E0311", "a histogram can only be printed: `print(@hist_log(s))`", span));
                None
            }
            _ => {
                self.error(
                    Diagnostic::error("E0299", "this expression is not supported yet", span)
                        .with_help("bpftap does not compile this construct yet"),
                );
                None
            }
        }
    }

    fn operand(&mut self, e: &Expr) -> Operand {
        match e.kind {
            ExprKind::Number(n) => Operand::Imm(n),
            _ => Operand::Var(self.long_expr(e)),
        }
    }

    fn target_var(&mut self, name: &str, span: Span) -> Option<Var> {
        if let Some(sig) = self.function {
            let dst = self.temp(Ty::Long);
            let (kind, ty) = match sig.params.iter().position(|(n, _)| n == name) {
                Some(index) => (InstKind::LoadArg { dst, index: index as u32 }, sig.params[index].1),
                None if name == "return" => (InstKind::LoadReturn { dst }, sig.ret),
                None => return None,
            };
            self.emit(kind, span);
            // The context holds each value in 64 bits, and those above a narrower integer's
            // are not its sign (raw tracepoints zero them, fentry leaves what the register held).
            return match self.kernel_info.type_of(ty) {
                Ok(CType::Int { size, signed }) if size < 8 => Some(self.extract_bits(dst, 0, size * 8, signed, span)),
                _ => Some(dst),
            };
        }
        if name == "return" && self.format.is_some_and(|f| f.group == "process") {
            let dst = self.temp(Ty::Long);
            self.emit(InstKind::LoadReturn { dst }, span);
            return Some(dst);
        }
        let field = self.format.and_then(|f| f.field(name)).cloned()?;
        let ty = field_ty(&field.c_type);
        let dst = self.temp(ty);
        let kind = if field.c_type.starts_with("__data_loc") {
            InstKind::LoadContextDataLoc { dst, offset: field.offset }
        } else if ty == Ty::Str {
            InstKind::LoadContextStr { dst, offset: field.offset, len: field.size }
        } else if matches!(field.size, 1 | 2 | 4 | 8) {
            InstKind::LoadContext { dst, offset: field.offset, size: field.size as u8, signed: field.signed }
        } else {
            self.error(Diagnostic::error(
                "E0305",
                format!("`${name}` is a {}-byte `{}`, which bpftap cannot read as a value", field.size, field.c_type),
                span,
            ));
            return None;
        };
        self.emit(kind, span);
        Some(dst)
    }

    fn assign(&mut self, op: AssignOp, target: &Expr, value: &Expr, span: Span) -> Option<Var> {
        if let ExprKind::Index { base, keys } = &target.kind {
            return self.assign_element(op, base, keys, value, span);
        }
        let ExprKind::Ident(name) = &target.kind else {
            self.error(
                Diagnostic::error("E0299", "assignment to this target is not supported yet", target.span)
                    .with_help("bpftap does not compile this construct yet"),
            );
            return None;
        };
        let place = self.resolve(name)?;
        match (op, place) {
            (AssignOp::Assign, Place::Local(v)) => {
                let val = if is_typed(value, self.function.is_some()) {
                    let (val, ty) = self.typed(value)?;
                    if let Some(ty) = ty {
                        let known = self.local_types.entry(v).or_insert(Some(ty));
                        if *known != Some(ty) {
                            *known = None;
                        }
                    }
                    val
                } else {
                    self.expr(value)?
                };
                self.emit(InstKind::Copy { dst: v, src: val }, span);
                Some(v)
            }
            (AssignOp::Assign, Place::Global(g, _)) => {
                let val = self.expr(value)?;
                self.emit(InstKind::StoreGlobal { global: g, src: val }, span);
                Some(val)
            }
            (AssignOp::Op(BinaryOp::Add), Place::Global(g, Ty::Long)) => {
                let val = self.long_expr(value);
                self.emit(InstKind::AddGlobal { global: g, src: val }, span);
                let now = self.temp(Ty::Long);
                self.emit(InstKind::LoadGlobal { dst: now, global: g }, span);
                Some(now)
            }
            (AssignOp::Op(BinaryOp::Sub), Place::Global(g, Ty::Long)) => {
                let val = self.long_expr(value);
                let neg = self.temp(Ty::Long);
                self.emit(InstKind::Unary { op: UnOp::Neg, dst: neg, src: val }, span);
                self.emit(InstKind::AddGlobal { global: g, src: neg }, span);
                let now = self.temp(Ty::Long);
                self.emit(InstKind::LoadGlobal { dst: now, global: g }, span);
                Some(now)
            }
            (AssignOp::Op(op), place) => {
                let (cur, ty) = match place {
                    Place::Local(v) => (v, self.func.ty(v)),
                    Place::Global(g, ty) => {
                        let v = self.temp(ty);
                        self.emit(InstKind::LoadGlobal { dst: v, global: g }, span);
                        (v, ty)
                    }
                };
                let result = self.compound(op, cur, ty, value, span);
                match place {
                    Place::Local(v) => self.emit(InstKind::Copy { dst: v, src: result }, span),
                    Place::Global(g, _) => self.emit(InstKind::StoreGlobal { global: g, src: result }, span),
                }
                Some(result)
            }
        }
    }

    /// An expression whose kernel C type is known: `$field` of a tracepoint, `@cast`,
    /// `->member`, `&`, `*`. Returns its value and, for pointers (and arrays, which decay
    /// to their address), the type pointed to.
    fn typed(&mut self, e: &Expr) -> Option<(Var, Option<TypeId>)> {
        let span = e.span;
        match &e.kind {
            ExprKind::Cast { expr, type_name, module } => {
                let v = self.long_expr(expr);
                let id = self.cast_type(type_name, module.as_deref(), span)?;
                Some((v, Some(id)))
            }
            ExprKind::TargetVar(name) if self.function.is_some() => {
                let sig = self.function?;
                let ty = match sig.params.iter().find(|(n, _)| n == name) {
                    Some((_, t)) => *t,
                    None => sig.ret,
                };
                let v = self.target_var(name, span)?;
                let pointee = match self.kernel_info.type_of(ty) {
                    Ok(CType::Pointer { to }) => Some(to),
                    _ => None,
                };
                Some((v, pointee))
            }
            ExprKind::TargetVar(name) => {
                let field = self.format.and_then(|f| f.field(name)).cloned();
                let v = self.target_var(name, span)?;
                let pointee = field.and_then(|f| {
                    let t = f.c_type.trim().strip_suffix('*')?.trim().trim_start_matches("const ").to_string();
                    self.kernel_info.type_by_name(&t).ok()
                });
                Some((v, pointee))
            }
            ExprKind::Member { base, name } => {
                let (addr, ty) = self.typed(base)?;
                let Some(ty) = ty else {
                    self.error(
                        Diagnostic::error(
                            "E0313",
                            format!("cannot find `->{name}`: the type of this value is unknown"),
                            base.span,
                        )
                        .with_help("tell bpftap the type with @cast(ptr, \"struct_name\")"),
                    );
                    return None;
                };
                let (off, mty) = match self.kernel_info.member(ty, name) {
                    Ok(m) => m,
                    Err(err) => {
                        if let Ok(field) = self.kernel_info.bitfield(ty, name) {
                            let space = self.space_of(ty);
                            return self.read_bitfield(addr, field, space, span).map(|v| (v, None));
                        }
                        self.error(Diagnostic::error("E0314", err.to_string(), span));
                        return None;
                    }
                };
                let at = self.member_addr(addr, ty, name, off, span);
                self.load_typed(at, mty, span)
            }
            ExprKind::Index { base, keys } if !matches!(base.kind, ExprKind::Ident(_)) => {
                let (addr, elem) = self.element_addr(base, keys, span)?;
                self.load_typed(addr, elem, span)
            }
            ExprKind::AddressOf(inner) => match &inner.kind {
                ExprKind::Member { base, name } => {
                    let (addr, ty) = self.typed(base)?;
                    let ty = ty?;
                    let (off, mty) = self.kernel_info.member(ty, name).ok()?;
                    Some((self.member_addr(addr, ty, name, off, span), Some(mty)))
                }
                // `&@cast(p, "T")`: the object's address, `p` (what `&@container_of(..)` is).
                ExprKind::Cast { .. } => self.typed(inner),
                // `&@cast(0, "T")[1]` is sizeof(T): SystemTap's @cast_sizeof.
                ExprKind::Index { base, keys } if !matches!(base.kind, ExprKind::Ident(_)) => {
                    let (addr, elem) = self.element_addr(base, keys, span)?;
                    Some((addr, Some(elem)))
                }
                _ => {
                    self.error(Diagnostic::error(
                        "E0313",
                        "`&` takes a `->member` or an element `[i]` of a kernel value",
                        span,
                    ));
                    None
                }
            },
            ExprKind::Deref(inner) => {
                let (addr, ty) = self.typed(inner)?;
                match ty {
                    Some(t) => self.load_typed(addr, t, span),
                    None => {
                        let dst = self.temp(Ty::Long);
                        let space = ir::AddrSpace::Kernel;
                        self.emit(InstKind::Read { dst, addr, size: 8, signed: true, space, fault: None }, span);
                        Some((dst, None))
                    }
                }
            }
            ExprKind::Ident(name) => match self.resolve(name) {
                Some(Place::Local(v)) => Some((v, self.local_types.get(&v).copied().flatten())),
                _ => self.expr(e).map(|v| (v, None)),
            },
            _ => self.expr(e).map(|v| (v, None)),
        }
    }

    /// `addr + off`, the address of member `name` of the struct of type `ty` at `addr`. A
    /// kernel struct's member offset is noted as such, for objects that run on other kernels.
    fn member_addr(&mut self, addr: Var, ty: TypeId, name: &str, off: u32, span: Span) -> Var {
        let at = self.temp(Ty::Long);
        self.emit(InstKind::Binary { op: BinOp::Add, dst: at, lhs: addr, rhs: Operand::Imm(off as i64) }, span);
        if self.space_of(ty) == ir::AddrSpace::Kernel {
            self.func.member_offsets.push((at, ir::MemberOffset { ty, member: name.to_string() }));
        }
        at
    }

    /// `$ptr[i]` / `$s->arr[i]` / `@cast(p, "T")[i]`: the address and type of element i of a
    /// kernel array or pointer.
    fn element_addr(&mut self, base: &Expr, keys: &[Expr], span: Span) -> Option<(Var, TypeId)> {
        let [index] = keys else {
            self.error(Diagnostic::error("E0313", "a kernel array takes one index", span));
            return None;
        };
        let (base_v, ty) = self.typed(base)?;
        let Some(elem) = ty.and_then(|t| self.pointee(t, base.span)) else {
            self.error(Diagnostic::error("E0313", "only a typed kernel pointer or array can be indexed", base.span));
            return None;
        };
        let size = self.type_size(elem).unwrap_or(8);
        let i = self.long_expr(index);
        let scaled = self.temp(Ty::Long);
        self.emit(InstKind::Binary { op: BinOp::Mul, dst: scaled, lhs: i, rhs: Operand::Imm(size as i64) }, span);
        let addr = self.temp(Ty::Long);
        self.emit(InstKind::Binary { op: BinOp::Add, dst: addr, lhs: base_v, rhs: Operand::Var(scaled) }, span);
        Some((addr, elem))
    }

    /// The value of type `ty` at `addr`: integers and pointers are read; structs and arrays
    /// stay addresses (so `->` can go on, and arrays decay as in C).
    fn load_typed(&mut self, addr: Var, ty: TypeId, span: Span) -> Option<(Var, Option<TypeId>)> {
        let space = self.space_of(ty);
        match self.kernel_info.type_of(ty) {
            Ok(CType::Int { size, signed }) if matches!(size, 1 | 2 | 4 | 8) => {
                let dst = self.temp(Ty::Long);
                self.emit(InstKind::Read { dst, addr, size: size as u8, signed, space, fault: None }, span);
                Some((dst, None))
            }
            Ok(CType::Pointer { to }) => {
                let dst = self.temp(Ty::Long);
                self.emit(InstKind::Read { dst, addr, size: 8, signed: false, space, fault: None }, span);
                Some((dst, Some(to)))
            }
            Ok(CType::Struct { .. }) => Some((addr, Some(ty))),
            Ok(CType::Array { elem, .. }) => Some((addr, Some(elem))),
            Ok(other) => {
                self.error(Diagnostic::error(
                    "E0315",
                    format!("bpftap cannot read a kernel value of type {other:?}"),
                    span,
                ));
                None
            }
            Err(err) => {
                self.error(Diagnostic::error("E0314", err.to_string(), span));
                None
            }
        }
    }

    /// Where a value of type `ty` lives: a C header's type (`@cast(p, "FILE", "<stdio.h>")`)
    /// describes user memory, every other type kernel memory.
    fn space_of(&self, ty: TypeId) -> ir::AddrSpace {
        if self.kernel_info.is_header_type(ty) {
            ir::AddrSpace::User
        } else {
            ir::AddrSpace::Kernel
        }
    }

    /// The value of bitfield `field` of the struct at `addr`: the smallest read that holds
    /// its bits, shifted down and masked (or sign-extended).
    fn read_bitfield(&mut self, addr: Var, field: Bitfield, space: ir::AddrSpace, span: Span) -> Option<Var> {
        let shift = field.bit_offset % 8;
        let Some(size) = [1u32, 2, 4, 8].into_iter().find(|size| shift + field.bits <= size * 8) else {
            self.error(Diagnostic::error("E0315", "bpftap cannot read a bitfield this wide", span));
            return None;
        };
        let at = self.temp(Ty::Long);
        let byte = Operand::Imm((field.bit_offset / 8) as i64);
        self.emit(InstKind::Binary { op: BinOp::Add, dst: at, lhs: addr, rhs: byte }, span);
        let raw = self.temp(Ty::Long);
        self.emit(InstKind::Read { dst: raw, addr: at, size: size as u8, signed: false, space, fault: None }, span);
        Some(self.extract_bits(raw, shift, field.bits, field.signed, span))
    }

    /// Bits `low..low + bits` of `v` as a value, sign-extended when `signed`.
    fn extract_bits(&mut self, v: Var, low: u32, bits: u32, signed: bool, span: Span) -> Var {
        // The top bit to bit 63, then down to bit 0: `Shr` is arithmetic, so a signed value
        // comes out sign-extended, and an unsigned one is masked after.
        let up = self.temp(Ty::Long);
        let left = Operand::Imm((64 - low - bits) as i64);
        self.emit(InstKind::Binary { op: BinOp::Shl, dst: up, lhs: v, rhs: left }, span);
        let down = self.temp(Ty::Long);
        let right = Operand::Imm((64 - bits) as i64);
        self.emit(InstKind::Binary { op: BinOp::Shr, dst: down, lhs: up, rhs: right }, span);
        if signed || bits == 64 {
            return down;
        }
        let value = self.temp(Ty::Long);
        let mask = Operand::Imm((1i64 << bits) - 1);
        self.emit(InstKind::Binary { op: BinOp::And, dst: value, lhs: down, rhs: mask }, span);
        value
    }

    /// For indexing: the element type of a pointer's target or an array.
    fn pointee(&mut self, ty: TypeId, _span: Span) -> Option<TypeId> {
        match self.kernel_info.type_of(ty).ok()? {
            CType::Array { elem, .. } => Some(elem),
            _ => Some(ty),
        }
    }

    fn type_size(&self, ty: TypeId) -> Option<u32> {
        match self.kernel_info.type_of(ty).ok()? {
            CType::Int { size, .. } => Some(size),
            CType::Pointer { .. } => Some(8),
            CType::Struct { size, .. } => Some(size),
            CType::Array { elem, len } => self.type_size(elem).map(|s| s * len),
            _ => None,
        }
    }

    fn cast_type(&mut self, name: &str, module: Option<&str>, span: Span) -> Option<TypeId> {
        match crate::kernel::cast_type(self.kernel_info, name, module) {
            Ok(id) => Some(id),
            Err(err) => {
                self.error(Diagnostic::error("E0314", err.to_string(), span));
                None
            }
        }
    }

    /// The array a name refers to, and its keys lowered.
    fn array_ref(&mut self, base: &Expr, keys: &[Expr]) -> Option<(ir::ArrayId, Vec<Var>)> {
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
    fn array_pattern(&mut self, base: &Expr, keys: &[Expr]) -> Option<(ir::ArrayId, Vec<Option<Var>>)> {
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
    fn stat_ref(&mut self, e: &Expr) -> Option<(ir::ArrayId, Vec<Var>)> {
        match &e.kind {
            ExprKind::Index { base, keys } => self.array_ref(base, keys),
            ExprKind::Ident(_) => self.array_ref(e, &[]),
            _ => {
                self.error(Diagnostic::error("E0212", "not a statistic", e.span));
                None
            }
        }
    }

    fn array_value_ty(&mut self, array: ir::ArrayId, span: Span) -> Option<Ty> {
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

    fn assign_element(&mut self, op: AssignOp, base: &Expr, keys: &[Expr], value: &Expr, span: Span) -> Option<Var> {
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

    /// `try { body } catch (msg) { catch }`. The errors caught are kernel read faults (see
    /// `emit`), empty aggregates and `error(msg)` (see `call`), what SystemTap lets a
    /// script catch; other errors (a full array) still end the script. `msg` is
    /// SystemTap's message for a fault, without the address, or `error`'s.
    fn try_catch(&mut self, body: &Block, catch_var: Option<&(String, Span)>, catch: &Block) {
        let (on_error, after) = (self.func.new_block(), self.func.new_block());
        let message = match catch_var.map(|(name, _)| self.resolve(name)) {
            Some(Some(Place::Local(v))) if self.func.ty(v) == Ty::Str => Some(v),
            _ => None,
        };
        self.catches.push(Catch { block: on_error, message });
        self.block(body);
        self.catches.pop();
        self.terminate(Terminator::Jump(after));
        self.switch_to(on_error);
        self.block(catch);
        self.terminate(Terminator::Jump(after));
        self.switch_to(after);
    }

    /// `@min`, `@max`, `@avg` or `@variance` in a kernel probe, where code generation folds
    /// the CPUs' shares but knows nothing of empty statistics: those are an error here, as
    /// in SystemTap ("empty aggregate"), and `@avg` is `@sum / @count`.
    fn kernel_stat(&mut self, dst: Var, array: ir::ArrayId, keys: Vec<Var>, op: ir::StatOp, span: Span) {
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

    fn delete(&mut self, e: &Expr) {
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

    fn print_hist(&mut self, kind: &ast::HistKind, expr: &Expr, span: Span) -> Option<Var> {
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

    fn foreach(&mut self, fe: &ast::Foreach, span: Span) {
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
        let limit = fe.limit.as_ref().map(|l| self.long_expr(l));
        let iter = ir::IterId::new(self.next_iter);
        self.next_iter += 1;
        self.emit(InstKind::IterStart { iter, array, sort, limit }, span);
        let (head, body, done) = (self.func.new_block(), self.func.new_block(), self.func.new_block());
        self.terminate(Terminator::Jump(head));
        self.switch_to(head);
        self.spend_loop_budget(fe.body.span);
        let has = self.temp(Ty::Long);
        self.emit(InstKind::IterNext { has, iter, keys, value }, span);
        self.terminate(Terminator::Branch { cond: has, then: body, els: done });
        self.switch_to(body);
        self.loops.push((head, done));
        self.stmt(&fe.body);
        self.loops.pop();
        self.terminate(Terminator::Jump(head));
        self.switch_to(done);
    }

    /// `cur op value` for a compound assignment (`+=`, `.=`, ...), into a new variable.
    fn compound(&mut self, op: BinaryOp, cur: Var, ty: Ty, value: &Expr, span: Span) -> Var {
        let result = self.temp(ty);
        if op == BinaryOp::Concat {
            let r = self.str_expr(value);
            self.emit(InstKind::Concat { dst: result, lhs: cur, rhs: r }, span);
        } else {
            let r = self.operand(value);
            self.emit(InstKind::Binary { op: bin_op(op), dst: result, lhs: cur, rhs: r }, span);
        }
        result
    }

    fn intern_format(&mut self, text: String, args: Vec<Ty>) -> FmtId {
        self.intern_format_decl(ir::FormatDecl { text, args, ..Default::default() })
    }

    fn intern_format_decl(&mut self, decl: ir::FormatDecl) -> FmtId {
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
    fn kernel_message(&mut self, name: &str, args: &[Expr], span: Span) -> Option<Var> {
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
        let fmt = self.intern_format_decl(ir::FormatDecl {
            text: text.into(),
            args: vec![Ty::Str],
            deferred: Vec::new(),
            sink,
        });
        self.emit(InstKind::Printf { fmt, args: vec![v] }, span);
        if name == "error" {
            self.emit(InstKind::Exit, span);
        }
        let zero = self.temp(Ty::Long);
        self.emit(InstKind::Const { dst: zero, value: 0 }, span);
        Some(zero)
    }

    /// In a kernel probe's `printf`, an argument `f(x)` where `f` is a [`Builtin::deferrable`]
    /// user-space function: `f` and `x`, for the record to carry `x`.
    fn deferred_arg<'e>(&self, name: &str, arg: &'e Expr) -> Option<(Builtin, &'e Expr)> {
        let ExprKind::Call { name: f, args } = &arg.kind else { return None };
        let [x] = args.as_slice() else { return None };
        if name != "printf" || !self.kernel || self.script.function(f, 1).is_some() {
            return None;
        }
        match builtins::lookup(f, 1)?.lowering {
            Lowering::Builtin(b) if b.deferrable() => Some((b, x)),
            _ => None,
        }
    }

    /// A printf-style call: a literal format checked against its arguments.
    fn format_call(&mut self, name: &str, args: &[Expr], span: Span) -> Option<(FmtId, Vec<Var>)> {
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
            let (v, ty) = match self.deferred_arg(name, arg) {
                Some((b, x)) if *ty == Ty::Str => {
                    deferred.push((i, b));
                    carried[i] = Ty::Long;
                    (self.expr(x)?, &Ty::Long)
                }
                _ => (self.expr(arg)?, ty),
            };
            if self.func.ty(v) != *ty {
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
        let decl = ir::FormatDecl { text: text.clone(), args: carried, deferred, sink: ir::Sink::Output };
        Some((self.intern_format_decl(decl), vars))
    }

    /// `print`, `println`, `printd`, `printdln` and their `sprint` forms (into a string): a
    /// format of `%s`/`%d` per value.
    fn print_call(&mut self, name: &str, args: &[Expr], span: Span) -> Option<Var> {
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
        for (i, a) in values.iter().enumerate() {
            let v = self.expr(a)?;
            if i > 0 {
                text.push_str(&sep);
            }
            text.push_str(if self.func.ty(v) == Ty::Str { "%s" } else { "%d" });
            tys.push(self.func.ty(v));
            vars.push(v);
        }
        text.push_str(newline);
        let fmt = self.intern_format(text, tys);
        if name.starts_with('s') {
            let dst = self.temp(Ty::Str);
            self.emit(InstKind::Sprintf { dst, fmt, args: vars }, span);
            return Some(dst);
        }
        self.emit(InstKind::Printf { fmt, args: vars }, span);
        None
    }

    /// `int_arg(n)`, `ulong_arg(n)` and the like: argument `n` of the probed function or syscall.
    fn int_arg(&mut self, n: &str, args: &[Expr], span: Span) -> Option<Var> {
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

    fn call(&mut self, name: &str, args: &[Expr], span: Span) -> Option<Var> {
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
    fn syscall_arg_offset(&self, index: u32) -> Option<u32> {
        let format = self.format?;
        if !format.event.starts_with("sys_enter") {
            return None;
        }
        let offset = format.field("__syscall_nr")?.offset + 8 + 8 * index;
        (offset + 8 <= format.record_size()).then_some(offset)
    }

    fn inline(&mut self, f: &ast::Function, args: &[Expr], span: Span) -> Option<Var> {
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

/// Every identifier in the probes and in the functions they call, transitively.
fn names_in_reachable_code(script: &Elaborated) -> HashSet<&str> {
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
fn string_key_widths(script: &Elaborated, cap: u32) -> HashMap<(String, usize), u32> {
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
fn pure_functions(script: &Elaborated) -> HashSet<String> {
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
fn expr_is_pure_here(e: &Expr, pure: &HashSet<String>, script: &Elaborated, is_global: impl Fn(&str) -> bool) -> bool {
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
fn dead_assignments(
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
fn collect_reads<'a>(
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
fn reads_of<'a>(e: &'a Expr, read: &mut HashSet<&'a str>) {
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

enum Place {
    Local(Var),
    Global(GlobalId, Ty),
}

fn bin_op(op: BinaryOp) -> BinOp {
    match op {
        BinaryOp::Add => BinOp::Add,
        BinaryOp::Sub => BinOp::Sub,
        BinaryOp::Mul => BinOp::Mul,
        BinaryOp::Div => BinOp::Div,
        BinaryOp::Mod => BinOp::Mod,
        BinaryOp::Shl => BinOp::Shl,
        BinaryOp::Shr => BinOp::Shr,
        BinaryOp::BitAnd => BinOp::And,
        BinaryOp::BitOr => BinOp::Or,
        BinaryOp::BitXor => BinOp::Xor,
        BinaryOp::Concat => unreachable!("concatenation is lowered separately"),
    }
}

/// The instruction that sets `v` (of type `ty`) to 0 or "", a variable's initial value.
fn zero_of(v: Var, ty: Ty) -> InstKind {
    match ty {
        Ty::Long => InstKind::Const { dst: v, value: 0 },
        Ty::Str => InstKind::StrConst { dst: v, value: String::new() },
    }
}

fn stat_op(op: ast::StatOp) -> ir::StatOp {
    match op {
        ast::StatOp::Count => ir::StatOp::Count,
        ast::StatOp::Sum => ir::StatOp::Sum,
        ast::StatOp::Min => ir::StatOp::Min,
        ast::StatOp::Max => ir::StatOp::Max,
        ast::StatOp::Avg => ir::StatOp::Avg,
        ast::StatOp::Variance => ir::StatOp::Variance,
    }
}

fn has_wildcard(keys: &[Expr]) -> bool {
    keys.iter().any(|k| matches!(k.kind, ExprKind::Wildcard))
}

fn kernel_only(what: &str, span: Span) -> Diagnostic {
    Diagnostic::error("E0312", format!("{what} is not supported in a kernel probe yet"), span)
        .with_help("do it in an `end` or `timer` probe, which run in user space")
}

fn cmp_op(op: CompareOp) -> CmpOp {
    match op {
        CompareOp::Eq => CmpOp::Eq,
        CompareOp::Ne => CmpOp::Ne,
        CompareOp::Lt => CmpOp::Lt,
        CompareOp::Le => CmpOp::Le,
        CompareOp::Gt => CmpOp::Gt,
        CompareOp::Ge => CmpOp::Ge,
    }
}

/// The value of script argument `$index` (`@index` when `as_string`), or why there is none.
fn script_arg(args: &[String], index: u32, as_string: bool, span: Span) -> Result<ir::Const, Diagnostic> {
    let sigil = if as_string { "@" } else { "$" };
    let Some(arg) = (index as usize).checked_sub(1).and_then(|i| args.get(i)).cloned() else {
        let message = match index {
            0 => format!("there is no script argument {sigil}0: they count from {sigil}1"),
            _ => format!("script argument {sigil}{index} was not given"),
        };
        return Err(Diagnostic::error("E0303", message, span));
    };
    if as_string {
        return Ok(ir::Const::Str(arg));
    }
    parse_number(&arg).map(ir::Const::Long).ok_or_else(|| {
        Diagnostic::error("E0304", format!("script argument ${index} is `{arg}`, not a number"), span)
            .with_help(format!("use @{index} for a string argument"))
    })
}

fn parse_number(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let n = if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if neg { -n } else { n })
}
