//! Parsing: one source file to an [`ast::Script`], with every diagnostic found on the way.
//!
//! The steps: [`crate::lexer::lex`], [`crate::preprocess::preprocess`], then the lalrpop grammar
//! (`grammar.lalrpop`). Before the grammar runs, a `/` directly followed by `{` becomes
//! [`Token::PredicateEnd`], which closes a `probe p /pred/ { }` predicate.
//!
//! Error recovery is by top-level item: the token stream is cut before every `probe`,
//! `global`, `function` and `private` keyword at bracket depth zero (these keywords never occur
//! inside an item), and each piece is parsed alone. A syntax error thus loses one item, and
//! the errors of several items are all reported.
//!
//! Invariant: `parse` never panics on any input; it always returns a (possibly partial) script.

use crate::ast::{self, *};
use crate::diag::Diagnostic;
use crate::lexer::{self, SpannedToken, Token};
use crate::preprocess::{self, Macros, PreprocessEnv};
use crate::span::{FileId, SourceMap, Span};

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, unused_parens, unused_imports)]
    grammar
);

/// Parse file `file` of `sources`.
///
/// `env` answers preprocessor conditions and gives the script arguments used by `$1`/`@1` in
/// probe points. `macros` holds the `@define`s seen so far: pass the same table when parsing
/// tapsets and then the script, so tapset macros are usable in the script. Macros the file
/// defines are added to it.
pub fn parse(
    sources: &SourceMap,
    file: FileId,
    env: &PreprocessEnv,
    macros: &mut Macros,
) -> (ast::Script, Vec<Diagnostic>) {
    let (items, mut diags) = prepare(sources, file, env, macros);
    let mut script = Script::default();
    for i in 0..items.len() {
        script.items.extend(items.parse(i, env, &mut diags));
    }
    (script, diags)
}

/// A file lexed, preprocessed and cut into top-level items (see the module doc), none of them
/// parsed yet. Tapsets are prepared whole, so every macro they define is known, and only the
/// items a script needs go through the grammar (see [`crate::select`]).
pub struct Items {
    file: FileId,
    text_len: usize,
    tokens: Vec<SpannedToken>,
    /// Each item's range in `tokens`.
    bounds: Vec<std::ops::Range<usize>>,
}

/// Lex and preprocess file `file`, as [`parse`] does, and cut it into items.
pub fn prepare(
    sources: &SourceMap,
    file: FileId,
    env: &PreprocessEnv,
    macros: &mut Macros,
) -> (Items, Vec<Diagnostic>) {
    let text = &sources.file(file).text;
    let (tokens, mut diags) = lexer::lex(text, file);
    let mut tokens = preprocess::preprocess(tokens, env, macros, &mut diags);
    mark_predicate_ends(&mut tokens);
    let bounds = split_items(&tokens);
    (Items { file, text_len: text.len(), tokens, bounds }, diags)
}

/// Records the macros file `file` defines, without preparing it (see
/// [`preprocess::define_macros`]).
pub fn define_macros(sources: &SourceMap, file: FileId, env: &PreprocessEnv, macros: &mut Macros) -> Vec<Diagnostic> {
    let (tokens, mut diags) = lexer::lex(&sources.file(file).text, file);
    preprocess::define_macros(&tokens, env, macros, &mut diags);
    diags
}

impl Items {
    pub fn file(&self) -> FileId {
        self.file
    }

    /// How many top-level items the file has.
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// The tokens of item `i`, preprocessed.
    pub fn tokens(&self, i: usize) -> &[SpannedToken] {
        &self.tokens[self.bounds[i].clone()]
    }

    /// Parse item `i`: usually one AST item, several for `global a, b`, none after a syntax
    /// error (which goes to `diags`).
    pub fn parse(&self, i: usize, env: &PreprocessEnv, diags: &mut Vec<Diagnostic>) -> Vec<Item> {
        let chunk = self.tokens(i);
        if let Some(d) = too_deep(chunk) {
            diags.push(d);
            return Vec::new();
        }
        let mut errors = Vec::new();
        let res = grammar::ScriptParser::new().parse(self.file, &env.script_args, &mut errors, feed(chunk));
        diags.append(&mut errors);
        match res {
            Ok(items) => items,
            Err(err) => {
                // A chunk's end of input is where the next chunk starts, or the end of the file.
                let eof = chunk.last().map_or(self.text_len, |t| t.1.end as usize);
                diags.push(syntax_error(err, self.file, eof));
                Vec::new()
            }
        }
    }
}

/// The most operators and open brackets one statement may hold: a bound on how deeply its
/// expression nests, which every later pass walks recursively.
pub const MAX_NESTING: usize = 1000;

/// Refuses a statement whose expression could nest deeper than [`MAX_NESTING`], or statements
/// nested deeper than that in blocks and control statements, before a parse that would build
/// them: the recursive passes (and dropping the tree) would overflow the stack.
/// Counting operators and open brackets since the last statement boundary bounds an
/// expression's depth from above; two operands in a row (`x = 1 y = 2`) start a new statement.
/// A statement's depth is that of the block it is in plus the control keywords (`if`,
/// `while`, ...) read since the last `;` or `}` (not counting one an `else` follows).
fn too_deep(tokens: &[SpannedToken]) -> Option<Diagnostic> {
    let mut count = 0;
    let mut last_was_operand = false;
    // For each open `{`: the statement depth inside it, and the control keywords of the
    // statement it is in. Then those of the statement being read, and the open `(` (a `;` in
    // `for (...)` ends no statement).
    let mut blocks: Vec<(usize, usize)> = Vec::new();
    let mut controls = 0;
    let mut parens = 0usize;
    for (i, (tok, span)) in tokens.iter().enumerate() {
        let followed_by_else = matches!(tokens.get(i + 1), Some((Token::Else, _)));
        let depth = blocks.last().map_or(0, |b| b.0);
        match tok {
            Token::LBrace => {
                blocks.push((depth + controls + 1, controls));
                controls = 0;
            }
            Token::RBrace => {
                let outer = blocks.pop().map_or(0, |b| b.1);
                controls = if followed_by_else { outer } else { 0 };
            }
            Token::LParen => parens += 1,
            Token::RParen => parens = parens.saturating_sub(1),
            Token::Semi if parens == 0 && !followed_by_else => controls = 0,
            Token::If | Token::While | Token::For | Token::Foreach | Token::Try => controls += 1,
            _ => {}
        }
        if blocks.last().map_or(0, |b| b.0) + controls > MAX_NESTING {
            return Some(
                Diagnostic::error(
                    "E0010",
                    format!("blocks and control statements nest more than {MAX_NESTING} deep here"),
                    *span,
                )
                .with_label("too deep from here on")
                .with_help("move the inner statements into a function"),
            );
        }
        let operand = matches!(
            tok,
            Token::Ident(_)
                | Token::TargetVar(_)
                | Token::Number(_)
                | Token::Str(_)
                | Token::DollarArg(_)
                | Token::AtArg(_)
                | Token::RParen
                | Token::RBracket
        );
        let boundary = matches!(
            tok,
            Token::Semi
                | Token::LBrace
                | Token::RBrace
                | Token::If
                | Token::Else
                | Token::While
                | Token::For
                | Token::Foreach
                | Token::Return
                | Token::Delete
                | Token::Next
                | Token::Break
                | Token::Continue
                | Token::Probe
                | Token::Function
                | Token::Global
        );
        if boundary || (operand && last_was_operand && !matches!(tok, Token::RParen | Token::RBracket)) {
            count = 0;
        } else if !operand && !matches!(tok, Token::Comma) {
            count += 1;
            if count > MAX_NESTING {
                return Some(
                    Diagnostic::error(
                        "E0010",
                        format!("this statement nests more than {MAX_NESTING} operators or brackets deep"),
                        *span,
                    )
                    .with_label("too deep from here on")
                    .with_help("split the expression into several statements with temporary variables"),
                );
            }
        }
        last_was_operand = operand;
    }
    None
}

fn feed(tokens: &[SpannedToken]) -> impl Iterator<Item = Result<(usize, Token, usize), ()>> + '_ {
    tokens.iter().map(|(tok, span)| Ok((span.start as usize, tok.clone(), span.end as usize)))
}

/// A `/` right before `{` closes a predicate: nothing else can put a `/` there.
fn mark_predicate_ends(tokens: &mut [SpannedToken]) {
    for i in 1..tokens.len() {
        if tokens[i].0 == Token::LBrace && tokens[i - 1].0 == Token::Slash {
            tokens[i - 1].0 = Token::PredicateEnd;
        }
    }
}

/// Cuts the stream before each item-starting keyword at depth zero; see the module doc.
fn split_items(tokens: &[SpannedToken]) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let mut depth: i32 = 0;
    let mut start = 0;
    for (i, (tok, _)) in tokens.iter().enumerate() {
        match tok {
            Token::LBrace | Token::LParen | Token::LBracket => depth += 1,
            Token::RBrace | Token::RParen | Token::RBracket => depth = (depth - 1).max(0),
            Token::Probe | Token::Global | Token::Function | Token::Private => {
                let after_private = i > 0 && tokens[i - 1].0 == Token::Private;
                // A keyword used as a probe point component (`kernel.function`) follows a `.`.
                let after_dot = i > 0 && tokens[i - 1].0 == Token::Dot;
                if depth == 0 && i > start && !after_private && !after_dot {
                    chunks.push(start..i);
                    start = i;
                }
            }
            _ => {}
        }
    }
    if start < tokens.len() {
        chunks.push(start..tokens.len());
    }
    chunks
}

type LalrpopError = lalrpop_util::ParseError<usize, Token, ()>;

fn syntax_error(err: LalrpopError, file: FileId, eof: usize) -> Diagnostic {
    use lalrpop_util::ParseError as E;
    match err {
        E::UnrecognizedToken { token: (l, tok, r), expected } => {
            Diagnostic::error("E0020", format!("unexpected {}", tok.describe()), Span::new(file, l, r))
                .with_label(format!("expected {}", expected_list(&expected)))
        }
        E::UnrecognizedEof { location, expected } => {
            let at = location.max(eof.saturating_sub(1)).min(eof);
            Diagnostic::error("E0021", "unexpected end of input", Span::new(file, at, eof))
                .with_label(format!("expected {}", expected_list(&expected)))
        }
        E::ExtraToken { token: (l, tok, r) } => {
            Diagnostic::error("E0020", format!("unexpected {}", tok.describe()), Span::new(file, l, r))
        }
        // The token iterator never fails: lexing errors were reported before.
        E::InvalidToken { location } => {
            Diagnostic::error("E0020", "invalid token", Span::new(file, location, location))
        }
        E::User { .. } => Diagnostic::error("E0020", "syntax error", Span::new(file, eof, eof)),
    }
}

/// `"a", "b" or "c"`, from lalrpop's quoted terminal names. Long lists are cut short.
fn expected_list(expected: &[String]) -> String {
    let names: Vec<String> = expected
        .iter()
        .map(|e| {
            let inner = e.trim_matches('"');
            match inner {
                "identifier" | "number" | "string" | "$variable" | "@macro" | "%{ embedded C %}" | "/ before {" => {
                    inner.to_string()
                }
                _ => format!("`{inner}`"),
            }
        })
        .collect();
    match names.len() {
        0 => "nothing".into(),
        1 => names[0].clone(),
        n if n <= 8 => format!("{} or {}", names[..n - 1].join(", "), names[n - 1]),
        _ => format!("{}, ... ({} possibilities)", names[..6].join(", "), names.len()),
    }
}

// ---------------------------------------------------------------- helpers for grammar actions

/// A binary operator as the grammar reads it, before it is sorted into an [`ExprKind`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bin {
    Arith(BinaryOp),
    Logic(LogicalOp),
    Cmp(CompareOp),
    /// `=~` (false) and `!~` (true).
    Regex(bool),
}

pub(crate) fn sp(file: FileId, l: usize, r: usize) -> Span {
    Span::new(file, l, r)
}

/// `size` is `Some` for a declaration with brackets (`a[]`, `a[100]`).
pub(crate) fn global(name: String, init: Option<Expr>, size: Option<Option<i64>>, wrap: bool, span: Span) -> Global {
    Global { name, init, size: size.flatten(), is_array: size.is_some(), wrap, private: false, tapset: false, span }
}

pub(crate) fn stmt(kind: StmtKind, span: Span) -> Stmt {
    Stmt { kind, span }
}

pub(crate) fn bin(lhs: Expr, op: Bin, rhs: Expr) -> Expr {
    let span = lhs.span.to(rhs.span);
    let (lhs, rhs) = (Box::new(lhs), Box::new(rhs));
    let kind = match op {
        Bin::Arith(op) => ExprKind::Binary { op, lhs, rhs },
        Bin::Logic(op) => ExprKind::Logical { op, lhs, rhs },
        Bin::Cmp(op) => ExprKind::Compare { op, lhs, rhs },
        Bin::Regex(negated) => ExprKind::Regex { negated, lhs, pattern: rhs },
    };
    Expr::new(kind, span)
}

/// One alternative of a dotted part of a probe point: its components and its suffixes.
pub(crate) type PointPart = (Vec<Component>, Vec<(u8, Option<Expr>)>);

/// Builds the points one written point stands for. `parts` are the dotted parts, each a list
/// of alternatives; an alternation of plain names (`syscall.{open,close}`) stays one component
/// named `{open,close}` for `elaborate` to expand, any other alternation is expanded here.
/// Suffixes are `(0, None)` for `?`, `(1, None)` for `!`, `(2, Some(cond))` for `if (cond)`.
pub(crate) fn probe_points(
    first: Vec<PointPart>,
    rest: Vec<Vec<PointPart>>,
    suffixes: Vec<(u8, Option<Expr>)>,
    span: Span,
) -> Vec<ProbePoint> {
    let mut template = ProbePoint { components: Vec::new(), optional: false, sufficient: false, condition: None, span };
    apply_suffixes(&mut template, suffixes);
    let mut points = vec![template];
    for part in std::iter::once(first).chain(rest) {
        let plain = part.iter().all(|(alt, sfx)| alt.len() == 1 && alt[0].arg.is_none() && sfx.is_empty());
        let alternatives = if part.len() > 1 && plain {
            let names: Vec<&str> = part.iter().map(|(alt, _)| alt[0].name.as_str()).collect();
            let span = part[0].0[0].span.to(part[part.len() - 1].0[0].span);
            vec![(vec![Component { name: format!("{{{}}}", names.join(",")), arg: None, span }], Vec::new())]
        } else {
            part
        };
        points = points
            .into_iter()
            .flat_map(|p| {
                alternatives.iter().map(move |(alt, sfx)| {
                    let mut p = p.clone();
                    p.components.extend(alt.iter().cloned());
                    apply_suffixes(&mut p, sfx.clone());
                    p
                })
            })
            .collect();
    }
    points
}

fn apply_suffixes(point: &mut ProbePoint, suffixes: Vec<(u8, Option<Expr>)>) {
    for (kind, cond) in suffixes {
        match kind {
            0 => point.optional = true,
            1 => {
                point.optional = true;
                point.sufficient = true;
            }
            _ => point.condition = cond,
        }
    }
}

/// An expression statement; `%{ ... %}` alone is an embedded-C statement.
pub(crate) fn expr_stmt(e: Expr, span: Span) -> Stmt {
    match e.kind {
        ExprKind::EmbeddedC => stmt(StmtKind::EmbeddedC, e.span),
        _ => stmt(StmtKind::Expr(e), span),
    }
}

/// `$N` or `@N` as (part of) a probe point component name, or a `@cast` type: the argument's
/// text.
pub(crate) fn script_arg_text(
    n: u32,
    as_string: bool,
    args: &[String],
    span: Span,
    errors: &mut Vec<Diagnostic>,
) -> String {
    match script_arg_literal(n, as_string, args, span, errors) {
        Literal::Number(_) => args[n as usize - 1].clone(),
        Literal::String(s) => s,
    }
}

/// `$N` (`as_string == false`) or `@N` in a probe point or a `@cast`: replaced by the script
/// argument.
pub(crate) fn script_arg_literal(
    n: u32,
    as_string: bool,
    args: &[String],
    span: Span,
    errors: &mut Vec<Diagnostic>,
) -> Literal {
    let sigil = if as_string { '@' } else { '$' };
    let Some(arg) = (n as usize).checked_sub(1).and_then(|i| args.get(i)) else {
        errors.push(Diagnostic::error(
            "E0023",
            format!("`{sigil}{n}` names a script argument, but the script got {} argument(s)", args.len()),
            span,
        ));
        return Literal::String(String::new());
    };
    if !as_string {
        if let Ok(number) = arg.parse::<i64>() {
            return Literal::Number(number);
        }
    }
    Literal::String(arg.clone())
}

/// The most entries a declared array may have: a BPF map's `max_entries` is a `u32`, and a
/// map this large already takes gigabytes of kernel memory with string keys.
pub const MAX_ARRAY_SIZE: i64 = 1 << 24;

/// `global a[N]`: N from 1 to [`MAX_ARRAY_SIZE`].
pub(crate) fn array_size(n: i64, span: Span, errors: &mut Vec<Diagnostic>) -> Option<i64> {
    if (1..=MAX_ARRAY_SIZE).contains(&n) {
        return Some(n);
    }
    errors.push(
        Diagnostic::error("E0026", format!("array size {n} is out of range"), span)
            .with_help(format!("an array holds from 1 to {MAX_ARRAY_SIZE} entries")),
    );
    None
}

pub(crate) fn type_name(name: &str, span: Span, errors: &mut Vec<Diagnostic>) -> Option<TypeName> {
    match name {
        "long" => Some(TypeName::Long),
        "string" => Some(TypeName::String),
        _ => {
            errors.push(
                Diagnostic::error("E0024", format!("unknown type `{name}`"), span)
                    .with_help("types are `long` and `string`"),
            );
            None
        }
    }
}

/// The parenthesized part of a `foreach`, as the grammar reads it.
pub(crate) struct ForeachHead {
    pub value: Option<(String, Span)>,
    /// Each key with its sort mark (`+` is `Some(true)`).
    pub keys: Vec<((String, Span), Option<bool>)>,
    pub array: Expr,
    pub stat: Option<StatOp>,
    pub array_sort: Option<bool>,
    pub limit: Option<Expr>,
}

pub(crate) fn foreach(head: ForeachHead, body: Stmt, span: Span, errors: &mut Vec<Diagnostic>) -> Stmt {
    let mut sort = head.array_sort.map(|ascending| Sort { column: 0, ascending });
    for (i, (key, mark)) in head.keys.iter().enumerate() {
        if let Some(ascending) = *mark {
            if sort.is_some() {
                errors.push(Diagnostic::error("E0025", "`foreach` may sort by one column only", key.1));
            }
            sort = Some(Sort { column: i + 1, ascending });
        }
    }
    if head.stat.is_some() && head.array_sort.is_none() {
        errors.push(
            Diagnostic::error("E0025", "a statistic in `foreach` needs a sort direction", head.array.span)
                .with_help("write `@sum+` or `@sum-`"),
        );
    }
    let each = Foreach {
        value: head.value,
        keys: head.keys.into_iter().map(|(k, _)| k).collect(),
        array: head.array,
        sort,
        sort_stat: head.stat,
        limit: head.limit,
        body,
    };
    stmt(StmtKind::Foreach(Box::new(each)), span)
}
