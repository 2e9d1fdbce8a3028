//! Lowering: the elaborated, typed script to the IR, one [`ir::Function`] per probe handler.
//!
//! Input: an [`Elaborated`] script and its [`TypeTable`] (no type errors). Output: an
//! [`ir::Program`] that passes [`ir::verify`], plus diagnostics for what cannot be lowered
//! (a printf whose arguments do not fit its format, recursion, a `$1` that is not a number).
//!
//! Script functions are inlined at each call: BPF has no cheap calls with our calling
//! convention, and inlining lets dead-code elimination drop what a call site does not use.
//! `print`, `println`, `printf` and `sprintf` are lowered here, with formats interned once.
//!
//! This file holds the entry, the handler context and statements and expressions; the
//! submodules one job each: `declare` (globals and arrays), `analysis` (what is asked of the
//! script first: reachable names, key widths), `typed` (kernel memory through BTF),
//! `arrays` (arrays, statistics, `foreach`), `output` (printf and print), `calls`.

mod analysis;
mod arrays;
mod calls;
mod declare;
mod output;
mod typed;

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

use analysis::{names_in_reachable_code, string_key_widths};
use arrays::{has_wildcard, stat_op};
use declare::{count_per_cpu, declare_arrays, declare_globals, keep_user_space_globals, mark_reads};
use output::own_format;

/// Settings that change the generated code.
#[derive(Clone, Debug)]
pub struct Options {
    /// SystemTap's MAXSTRINGLEN.
    pub string_capacity: u32,
    /// `$1..$N` / `@1..@N`.
    pub script_args: Vec<String>,
    /// SystemTap's MAXMAPENTRIES: the capacity of arrays declared without a size.
    pub max_map_entries: u32,
    /// SystemTap's MAXACTION_INTERRUPTIBLE: the statements a handler that runs in user space
    /// (`begin`, `end`, timers) may run ([`ir::Program::user_max_steps`]).
    pub max_action_interruptible: u32,
    /// Give every array the layout any later compile would give it, whatever this one's
    /// uses: string keys take the whole string capacity and statistics keep `@hist_log`
    /// buckets; every global is `GlobalStorage::Shared`. For an interactive session, whose inputs are compiled one at a time against
    /// maps that outlive them.
    pub stable_layouts: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            string_capacity: 128,
            script_args: Vec::new(),
            max_map_entries: 2048,
            max_action_interruptible: MAX_ACTION_INTERRUPTIBLE,
            stable_layouts: false,
        }
    }
}

pub fn lower(
    script: &Elaborated,
    types: &TypeTable,
    kernel: &dyn KernelInfo,
    options: &Options,
) -> (ir::Program, Vec<Diagnostic>) {
    let mut program = ir::Program {
        string_capacity: options.string_capacity,
        loop_budget: MAX_LOOP_ITERATIONS as u32,
        user_max_steps: u64::from(options.max_action_interruptible) * STEPS_PER_STATEMENT,
        arch: script.arch,
        ..Default::default()
    };
    let mut diags = Vec::new();
    let globals = declare_globals(script, types, options, &mut program, &mut diags);
    let arrays = declare_arrays(script, types, options, &mut program);
    program.syscall_names = arrays.get(SYSCALL_NAMES).copied();
    let mut formats = HashMap::new();
    let loop_iterator = std::cell::OnceCell::new();
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
            function_name: probe.target.function_name(),
            kernel: !probe.target.is_user_space(),
            exit_block: None,
            next_iter: 0,
            nest_budget: None,
            elements: Vec::new(),
            loop_iterator: &loop_iterator,
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
            optional: probe.optional,
        });
    }
    crate::optimize::drop_unused_formats(&mut program);
    mark_reads(script, &mut program);
    if !options.stable_layouts {
        keep_user_space_globals(&mut program);
        count_per_cpu(&mut program);
    }
    (program, diags)
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
    next_iter: usize,
    /// The budget of the kernel loop being lowered, which the loops inside it share.
    nest_budget: Option<Budget>,
    /// For each `foreach` being lowered whose body reads the element it is at and cannot
    /// change it: the array, the key variables and the variable holding the element's value.
    elements: Vec<(ir::ArrayId, Vec<Var>, Var)>,
    /// The kernel's numeric iterator, asked for once, where a kernel loop first needs it.
    loop_iterator: &'a std::cell::OnceCell<Option<ir::LoopIterator>>,
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

/// Where a name resolves: a local of the handler or a global.
enum Place {
    Local(Var),
    Global(GlobalId, Ty),
}

/// An enclosing `try`: where its `catch` starts, and its catch variable (a string).
#[derive(Clone, Copy)]
struct Catch {
    block: ir::Block,
    message: Option<Var>,
}

/// The tapsets' table of syscall names by number (`tapsets/syscalls.stp`), which the runtime
/// fills ([`ir::Program::syscall_names`]).
const SYSCALL_NAMES: &str = "__syscall_names";

/// Whether a loop's condition is bounded by constants only: none (`for (;;)`), a constant,
/// or a comparison with a constant or a script argument on one side (`i < 4`).
fn bound_is_constant(cond: Option<&Expr>) -> bool {
    let constant =
        |e: &Expr| matches!(e.kind, ExprKind::Number(_) | ExprKind::ScriptArg { .. } | ExprKind::ArgCount { .. });
    match cond.map(|c| &c.kind) {
        None => true,
        Some(ExprKind::Compare { lhs, rhs, .. }) => constant(lhs) || constant(rhs),
        Some(_) => cond.is_some_and(constant),
    }
}

/// The kernel's numeric iterator, where it has all three of its functions.
fn loop_iterator(kernel: &dyn KernelInfo) -> Option<ir::LoopIterator> {
    Some(ir::LoopIterator {
        new: kernel.kfunc("bpf_iter_num_new")?,
        next: kernel.kfunc("bpf_iter_num_next")?,
        destroy: kernel.kfunc("bpf_iter_num_destroy")?,
    })
}

/// SystemTap's MAXACTION_INTERRUPTIBLE by default: ten times its MAXACTION.
pub const MAX_ACTION_INTERRUPTIBLE: u32 = 10_000;

/// What a statement counts for in [`ir::Program::user_max_steps`]: the interpreter counts
/// IR instructions and block ends, a few to a statement, so a statement is taken as 100 and
/// the default allows a million steps.
const STEPS_PER_STATEMENT: u64 = 100;

/// Loop iterations each loop nest of a kernel handler may run (SystemTap's MAXACTION counts
/// statements, for the whole probe; a loop iteration is the unit that can run away, and each
/// outermost loop has its own budget, see [`Ctx::loop_budget`]).
const MAX_LOOP_ITERATIONS: i64 = 1000;

/// How a kernel loop nest counts its iterations ([`Ctx::loop_budget`]).
#[derive(Clone, Copy)]
enum Budget {
    /// The kernel's numeric iterator, one per handler, started afresh by each nest
    /// ([`InstKind::LoopStart`]).
    Iterator,
    /// A variable counting down, where the kernel has no iterator.
    Counter(Var),
}

/// A kernel loop's budget ([`Ctx::loop_budget`]), and whether this loop set it.
#[derive(Clone, Copy)]
struct LoopBudget {
    budget: Budget,
    outermost: bool,
}

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
            let fmt = self.intern_format_decl(own_format("%s", vec![Ty::Str], ir::Sink::Error));
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
        let budget = self.loop_budget(body.span, !bound_is_constant(cond));
        self.terminate(Terminator::Jump(head));
        self.switch_to(head);
        self.spend_loop_budget(budget, body.span);
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
        self.end_loop_budget(budget);
    }

    /// In a kernel handler, the budget of [`MAX_LOOP_ITERATIONS`] the iterations of a loop
    /// spend. `None` in user space.
    ///
    /// An outermost loop sets a budget where it starts, which the loops inside it share.
    /// Shared within a nest, it bounds what the verifier walks of the nest (an inner loop's
    /// own budget would be walked again for each outer iteration).
    ///
    /// With the kernel's numeric iterator (`bpf_iter_num`, Linux 6.4+), the verifier checks
    /// a loop body until its states repeat, whatever the number of iterations: a loop whose
    /// body branches many times (tcpipstat's `filter_key`) is checked in a few walks, where
    /// a counter makes it walk every iteration and keep each branch's other way pending, past
    /// its limit of 8192. Without it, a counter on the stack: it is dead once the loop ends
    /// ([`Ctx::end_loop_budget`]), so the verifier sees the same state after the loop
    /// whichever iteration left it, and prunes.
    ///
    /// The iterator is for nests whose loop runs for as long as run-time data says
    /// (`data_bound`). One bound by a constant (`i < 4`, `while (1)` left by a `break`) makes
    /// its variable exact to the verifier, which then walks each iteration with either
    /// budget; the counter's order of walking is the one known to fit its limits there.
    fn loop_budget(&mut self, span: Span, data_bound: bool) -> Option<LoopBudget> {
        if !self.kernel {
            return None;
        }
        if let Some(budget) = self.nest_budget {
            return Some(LoopBudget { budget, outermost: false });
        }
        let kernel = self.kernel_info;
        let iterator = if data_bound { *self.loop_iterator.get_or_init(|| loop_iterator(kernel)) } else { None };
        let budget = match iterator {
            Some(iterator) => {
                self.program.loop_iterator = Some(iterator);
                self.emit(InstKind::LoopStart, span);
                Budget::Iterator
            }
            None => {
                let var = self.func.new_var(Ty::Long, Some("__loop_budget".into()));
                self.emit(InstKind::Const { dst: var, value: MAX_LOOP_ITERATIONS }, span);
                Budget::Counter(var)
            }
        };
        self.nest_budget = Some(budget);
        Some(LoopBudget { budget, outermost: true })
    }

    /// After a loop: an outermost loop's budget is no more.
    fn end_loop_budget(&mut self, budget: Option<LoopBudget>) {
        if budget.is_some_and(|b| b.outermost) {
            self.nest_budget = None;
        }
    }

    /// Every loop iteration spends one unit of its loop's budget ([`Ctx::loop_budget`]); when
    /// it runs out the handler reports MAXACTION and ends. This bounds every loop, which the
    /// verifier requires, whatever the loop's condition.
    fn spend_loop_budget(&mut self, budget: Option<LoopBudget>, span: Span) {
        let Some(LoopBudget { budget, .. }) = budget else { return };
        let (stop, go) = (self.func.new_block(), self.func.new_block());
        match budget {
            Budget::Iterator => {
                let more = self.temp(Ty::Long);
                self.emit(InstKind::LoopStep { dst: more }, span);
                self.terminate(Terminator::Branch { cond: more, then: go, els: stop });
            }
            Budget::Counter(budget) => {
                let sub = InstKind::Binary { op: BinOp::Sub, dst: budget, lhs: budget, rhs: Operand::Imm(1) };
                self.emit(sub, span);
                let spent = self.temp(Ty::Long);
                self.emit(InstKind::Compare { op: CmpOp::Lt, dst: spent, lhs: budget, rhs: Operand::Imm(0) }, span);
                self.terminate(Terminator::Branch { cond: spent, then: stop, els: go });
            }
        }
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
                if let Some(&(_, _, element)) = self.elements.iter().rev().find(|(a, k, _)| *a == array && *k == keys) {
                    return Some(element);
                }
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
    crate::number::parse(&arg).map(ir::Const::Long).map_err(|_| {
        Diagnostic::error("E0304", format!("script argument ${index} is `{arg}`, not a number"), span)
            .with_help(format!("use @{index} for a string argument"))
    })
}
