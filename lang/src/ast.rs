//! The abstract syntax tree of a SystemTap script, as the parser builds it.
//!
//! Invariant: every node carries the [`Span`] of the text it was parsed from. The tree is
//! purely syntactic: names are unresolved strings, nothing is typed, and probe points are
//! still the components the user wrote (aliases and wildcards are expanded by `elaborate`).
//! Preprocessor conditionals (`%( %? %: %)`) are already resolved when a tree is built.

use crate::span::Span;

/// A whole file: a script, or a tapset.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Script {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Probe(Probe),
    /// `probe a = b, c { prologue }` or `probe a += b { epilogue }`.
    Alias(Alias),
    Global(Global),
    Function(Function),
    /// `%{ ... %}` at top level: parsed, refused by `elaborate`.
    EmbeddedC(Span),
}

/// `probe p1, p2? /pred/ { body }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub points: Vec<ProbePoint>,
    /// The DTrace-style `/expr/` between the probe points and the body.
    pub predicate: Option<Expr>,
    pub body: Block,
    pub private: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Alias {
    /// The names being defined (`probe a, b = ...` defines both).
    pub names: Vec<ProbePoint>,
    /// `=` (body runs before the user's) or `+=` (after).
    pub kind: AliasKind,
    pub points: Vec<ProbePoint>,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AliasKind {
    Prologue,
    Epilogue,
}

/// One probe point: `kernel.function("f").return?`, `syscall.*`, `timer.ms(100)`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbePoint {
    pub components: Vec<Component>,
    /// `?`: the point may fail to resolve.
    pub optional: bool,
    /// `!`: optional, and when it resolves the later points are skipped.
    pub sufficient: bool,
    /// `if (cond)` after the point.
    pub condition: Option<Expr>,
    pub span: Span,
}

/// A dotted part of a probe point. `name` may hold `*`/`**` wildcards or `{a,b}` alternation.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    pub name: String,
    pub arg: Option<Literal>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Number(i64),
    String(String),
}

/// `global a = 1, b[100], c%`.
#[derive(Clone, Debug, PartialEq)]
pub struct Global {
    pub name: String,
    pub init: Option<Expr>,
    /// `b[100]`: the array's capacity hint.
    pub size: Option<i64>,
    /// Declared with `[...]` (an array even before any use).
    pub is_array: bool,
    /// `c%`: an array that wraps when full.
    pub wrap: bool,
    pub private: bool,
    /// Declared in a tapset (set by `elaborate`): never printed at exit, as in SystemTap.
    pub tapset: bool,
    pub span: Span,
}

/// A type written in a signature: `function f:long(s:string)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeName {
    Long,
    String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub ty: Option<TypeName>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub name: String,
    pub ret: Option<TypeName>,
    pub params: Vec<Param>,
    pub body: FunctionBody,
    pub private: bool,
    /// Defined in a tapset (set by `elaborate`): it does not see the tapsets' globals, only
    /// those of its own file.
    pub tapset: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FunctionBody {
    Script(Block),
    /// `%{ ... %}`: embedded C, parsed and refused.
    EmbeddedC(Span),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    Block(Block),
    Expr(Expr),
    /// A lone `;`.
    Empty,
    If {
        cond: Expr,
        then: Box<Stmt>,
        els: Option<Box<Stmt>>,
    },
    While {
        cond: Expr,
        body: Box<Stmt>,
    },
    For {
        init: Option<Expr>,
        cond: Option<Expr>,
        step: Option<Expr>,
        body: Box<Stmt>,
    },
    Foreach(Box<Foreach>),
    Break,
    Continue,
    Next,
    Return(Option<Expr>),
    /// `delete a[k]`, `delete a`, `delete x`.
    Delete(Expr),
    Try {
        body: Block,
        catch_var: Option<(String, Span)>,
        catch: Block,
    },
    /// `%{ ... %}` as a statement.
    EmbeddedC,
}

/// `foreach ([k1, k2] in arr- limit 10) body` and `foreach (v = [k] in arr) body`.
#[derive(Clone, Debug, PartialEq)]
pub struct Foreach {
    /// `v = [...]`: a variable bound to the element's value.
    pub value: Option<(String, Span)>,
    pub keys: Vec<(String, Span)>,
    pub array: Expr,
    /// Sort direction and which column: `k+` sorts by a key, `arr-` by the value.
    pub sort: Option<Sort>,
    /// `foreach (k in a @sum-)`: sort by a statistic of the value.
    pub sort_stat: Option<StatOp>,
    pub limit: Option<Expr>,
    pub body: Stmt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    /// 0 for the value, `i + 1` for the i-th key.
    pub column: usize,
    pub ascending: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Number(i64),
    String(String),
    /// A plain identifier: a local, a global, or an alias variable.
    Ident(String),
    /// `$name` (a target variable), possibly followed by member/index accesses in `Member`/`Index`.
    TargetVar(String),
    /// `@var("name")` or `@var("name@file")`.
    AtVar(String),
    /// `$1`..`$N` (a number or literal code) and `@1`..`@N` (a string).
    ScriptArg {
        index: u32,
        as_string: bool,
    },
    /// `$#` or `@#`.
    ArgCount {
        as_string: bool,
    },
    /// `a[k1, k2]`.
    Index {
        base: Box<Expr>,
        keys: Vec<Expr>,
    },
    /// `e->name`.
    Member {
        base: Box<Expr>,
        name: String,
    },
    /// `e[i]` on a target expression is `Index` too; `&e` and `*e`:
    AddressOf(Box<Expr>),
    Deref(Box<Expr>),
    Call {
        name: String,
        args: Vec<Expr>,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `&&`, `||`: short-circuiting.
    Logical {
        op: LogicalOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `<`, `==`, ...: on longs or strings.
    Compare {
        op: CompareOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `s =~ "re"`, `s !~ "re"`.
    Regex {
        negated: bool,
        lhs: Box<Expr>,
        pattern: Box<Expr>,
    },
    Ternary {
        cond: Box<Expr>,
        then: Box<Expr>,
        els: Box<Expr>,
    },
    /// `=`, `+=`, `.=`, ... The target is an lvalue expression.
    Assign {
        op: AssignOp,
        target: Box<Expr>,
        value: Box<Expr>,
    },
    /// `target <<< value`.
    Aggregate {
        target: Box<Expr>,
        value: Box<Expr>,
    },
    /// `++x`, `x--`, ...
    IncDec {
        target: Box<Expr>,
        increment: bool,
        prefix: bool,
    },
    /// `[k1, k2] in arr`.
    In {
        keys: Vec<Expr>,
        array: Box<Expr>,
    },
    /// `@count(s)`, `@avg(a[k])`, ...
    Stat {
        op: StatOp,
        expr: Box<Expr>,
    },
    /// `@hist_log(s)`, `@hist_linear(s, lo, hi, step)`.
    Hist {
        kind: HistKind,
        expr: Box<Expr>,
    },
    /// `@entry(e)` in a `.return` probe.
    Entry(Box<Expr>),
    /// `@defined(e)`.
    Defined(Box<Expr>),
    /// `@cast(ptr, "type"[, "module"])`, usually followed by `->member`.
    Cast {
        expr: Box<Expr>,
        type_name: String,
        module: Option<String>,
    },
    /// `@const("NAME")`.
    Const(String),
    /// `%{ ... %}` used as an expression (guru mode): parsed, refused by `elaborate`.
    EmbeddedC,
    /// `*` as an index key, `delete a[*, k]`: every value in that position.
    Wildcard,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Plus,
    /// `!`
    Not,
    /// `~`
    BitNot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Shl,
    Shr,
    BitAnd,
    BitOr,
    BitXor,
    /// `.`: string concatenation.
    Concat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogicalOp {
    And,
    Or,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// `=` is `Assign`; the rest name the operator they apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignOp {
    Assign,
    Op(BinaryOp),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatOp {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    Variance,
}

#[derive(Clone, Debug, PartialEq)]
pub enum HistKind {
    Log,
    Linear { lo: Box<Expr>, hi: Box<Expr>, step: Box<Expr> },
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }
}
