//! The preprocessor: runs on the token stream between the lexer and the grammar.
//!
//! In: the tokens of one file, a [`PreprocessEnv`] describing the target, and the [`Macros`]
//! defined so far (by tapsets parsed earlier). Out: tokens with every `%( cond %? a %: b %)`
//! replaced by the chosen branch, every `@define` removed (and recorded in [`Macros`]), and
//! every `@NAME` / `@NAME(args)` of a known macro replaced by its expansion.
//!
//! Conditions compare `kernel_v`, `kernel_vr`, `arch`, `runtime`, `systemtap_v`,
//! `systemtap_privilege`, `guru_mode`, `CONFIG_*` and `$#`/`@#` with literals, joined by `&&`,
//! `||`, `!` and parentheses. Versions compare component-wise; `==` and `!=` on strings accept
//! `*` and `?` globs on the right (`kernel_vr == "6.1*"`).
//!
//! Expanded macro tokens carry the span of the invocation (`@NAME(...)`), except the argument
//! tokens, which keep their own: every span stays in the file being parsed, even when the macro
//! came from a tapset.
//!
//! Invariant afterwards: no `%(`, `%?`, `%:`, `%)` or `@define` token remains. An `@NAME` that
//! is no macro stays as it is (the grammar reads it as a call of `@NAME`).

use std::collections::BTreeMap;

use crate::diag::Diagnostic;
use crate::glob::glob_match;
use crate::kernel::KernelInfo;
use crate::lexer::{SpannedToken, Token};
use crate::span::Span;

/// What preprocessor conditions may ask about the target.
#[derive(Clone)]
pub struct PreprocessEnv<'k> {
    /// `uname -r`, e.g. `6.1.0-18-amd64`: `kernel_vr`, and `kernel_v` without the suffix.
    pub kernel_release: String,
    /// SystemTap's architecture name: `x86_64`, `arm64`, ...
    pub arch: String,
    /// Where `CONFIG_64BIT` finds `y` ([`KernelInfo::config`]), asked only when a condition
    /// names an option: reading a kernel's configuration costs milliseconds, and most
    /// scripts never ask. Absent options (and all, without a kernel) compare as `""`.
    pub kernel: Option<&'k dyn KernelInfo>,
    /// The script's arguments: `$#` is their count, and `$1`/`@1` in probe points read them.
    pub script_args: Vec<String>,
}

impl Default for PreprocessEnv<'_> {
    fn default() -> Self {
        PreprocessEnv { kernel_release: "6.1.0".into(), arch: "x86_64".into(), kernel: None, script_args: Vec::new() }
    }
}

impl<'k> PreprocessEnv<'k> {
    /// The conditions' answers for `kernel`, with the script's arguments.
    pub fn for_kernel(kernel: &'k dyn KernelInfo, script_args: Vec<String>) -> Self {
        PreprocessEnv {
            kernel_release: kernel.release(),
            arch: crate::arch::stap_machine_name(&kernel.arch()).to_string(),
            kernel: Some(kernel),
            script_args,
        }
    }

    fn config(&self, name: &str) -> String {
        self.kernel.and_then(|k| k.config(name)).unwrap_or_default()
    }
}

/// The answers bpftap gives for its own identity in conditions.
pub const RUNTIME: &str = "bpf";
pub const SYSTEMTAP_VERSION: &str = "5.0";
pub const SYSTEMTAP_PRIVILEGE: &str = "stapdev";

/// Macros defined with `@define`, by name. Pass the same table to every `parse` call so macros
/// from tapsets are usable in scripts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Macros {
    pub defs: BTreeMap<String, MacroDef>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MacroDef {
    pub params: Vec<String>,
    pub body: Vec<SpannedToken>,
    /// The name in the `@define` line.
    pub span: Span,
}

/// Resolve conditionals and expand macros; see the module doc.
pub fn preprocess(
    tokens: Vec<SpannedToken>,
    env: &PreprocessEnv,
    macros: &mut Macros,
    diags: &mut Vec<Diagnostic>,
) -> Vec<SpannedToken> {
    // Most files use none of it: they are kept as they are, not copied token by token.
    let untouched = |t: &SpannedToken| {
        !matches!(
            t.0,
            Token::PpIf
                | Token::PpThen
                | Token::PpElse
                | Token::PpEnd
                | Token::AtDefine
                | Token::AtName(_)
                | Token::DollarArg(_)
        )
    };
    if tokens.iter().all(untouched) {
        return tokens;
    }
    let mut ctx = Ctx { env, macros, diags, expanded: 0, defining_only: false };
    let mut out = Vec::with_capacity(tokens.len());
    ctx.run(&tokens, &mut out, 0);
    out
}

/// Only the `@define`s of `tokens`, in the branches of conditionals `env` chooses, recorded in
/// `macros`: what a file offers the files after it, without the cost of expanding its own
/// macro uses (see `lang::select`).
pub fn define_macros(tokens: &[SpannedToken], env: &PreprocessEnv, macros: &mut Macros, diags: &mut Vec<Diagnostic>) {
    let mut ctx = Ctx { env, macros, diags, expanded: 0, defining_only: true };
    ctx.run(tokens, &mut Vec::new(), 0);
}

/// How deep macros may expand inside each other before we call it recursion.
const MAX_EXPANSION_DEPTH: usize = 64;
/// How many tokens the macro expansions of one file may produce in all: a macro that passes
/// its argument twice to itself doubles it at each level, 2^64 tokens within the depth bound.
const MAX_EXPANDED_TOKENS: usize = 1 << 20;

struct Ctx<'a> {
    env: &'a PreprocessEnv<'a>,
    macros: &'a mut Macros,
    diags: &'a mut Vec<Diagnostic>,
    /// Tokens produced by macro expansion so far, up to [`MAX_EXPANDED_TOKENS`].
    expanded: usize,
    /// Only record macros ([`define_macros`]): nothing is expanded or output.
    defining_only: bool,
}

/// A value in a condition.
#[derive(Clone, Debug)]
enum Value {
    Num(i64),
    Str(String),
    /// A version string: compared component-wise.
    Version(String),
}

impl Ctx<'_> {
    fn run(&mut self, toks: &[SpannedToken], out: &mut Vec<SpannedToken>, depth: usize) {
        let mut i = 0;
        while i < toks.len() {
            let (tok, span) = &toks[i];
            match tok {
                Token::PpIf => i = self.conditional(toks, i, out, depth),
                Token::PpThen | Token::PpElse | Token::PpEnd => {
                    self.diags.push(Diagnostic::error(
                        "E0010",
                        format!("{} outside a `%( %)` conditional", tok.describe()),
                        *span,
                    ));
                    i += 1;
                }
                Token::AtDefine => i = self.define(toks, i),
                _ if self.defining_only => i += 1,
                Token::AtName(name) if self.macros.defs.contains_key(name) => {
                    i = self.expand(toks, i, out, depth);
                }
                // `probe $1.call`: in a probe point name, `$N` stands for the tokens of the
                // argument's text, as in SystemTap; so does a `$N` called (`$3(acc[i])` with
                // `@sum`) and one whose text is more than one token (`tid()`). Elsewhere it
                // stays an expression, a number.
                Token::DollarArg(n)
                    if matches!(out.last(), Some((Token::Probe | Token::Dot, _)))
                        || matches!(toks.get(i + 1), Some((Token::Dot | Token::LParen, _)))
                        || self
                            .env
                            .script_args
                            .get((*n as usize).wrapping_sub(1))
                            .is_some_and(|arg| crate::lexer::lex(arg, span.file).0.len() > 1) =>
                {
                    match self.env.script_args.get((*n as usize).wrapping_sub(1)) {
                        Some(arg) => {
                            let (arg_toks, arg_diags) = crate::lexer::lex(arg, span.file);
                            for d in arg_diags {
                                self.diags.push(Diagnostic::error(
                                    d.code,
                                    format!("in script argument ${n}: {}", d.message),
                                    *span,
                                ));
                            }
                            out.extend(arg_toks.into_iter().map(|(t, _)| (t, *span)));
                        }
                        None => out.push(toks[i].clone()),
                    }
                    i += 1;
                }
                _ => {
                    out.push(toks[i].clone());
                    i += 1;
                }
            }
        }
    }

    /// `%( cond %? a %: b %)` starting at `start`; returns the index after `%)`.
    fn conditional(&mut self, toks: &[SpannedToken], start: usize, out: &mut Vec<SpannedToken>, depth: usize) -> usize {
        let open_span = toks[start].1;
        let (mut then_at, mut else_at, mut end_at) = (None, None, None);
        let mut nesting = 0;
        for (j, (tok, _)) in toks.iter().enumerate().skip(start + 1) {
            match tok {
                Token::PpIf => nesting += 1,
                Token::PpEnd if nesting > 0 => nesting -= 1,
                Token::PpEnd => {
                    end_at = Some(j);
                    break;
                }
                Token::PpThen if nesting == 0 && then_at.is_none() => then_at = Some(j),
                Token::PpElse if nesting == 0 && then_at.is_some() && else_at.is_none() => else_at = Some(j),
                _ => {}
            }
        }
        let Some(end_at) = end_at else {
            self.diags.push(Diagnostic::error("E0010", "`%(` without a matching `%)`", open_span));
            return toks.len();
        };
        let Some(then_at) = then_at else {
            self.diags.push(Diagnostic::error("E0010", "`%(` conditional without `%?`", open_span));
            return end_at + 1;
        };
        let cond = &toks[start + 1..then_at];
        let value = match self.condition(cond, open_span) {
            Ok(v) => v,
            Err(d) => {
                self.diags.push(d);
                false
            }
        };
        let branch = match (value, else_at) {
            (true, Some(e)) => &toks[then_at + 1..e],
            (true, None) => &toks[then_at + 1..end_at],
            (false, Some(e)) => &toks[e + 1..end_at],
            (false, None) => &[],
        };
        self.run(branch, out, depth);
        end_at + 1
    }

    /// `@define NAME %( body %)` or `@define NAME(a, b) %( body %)`; returns the index after it.
    fn define(&mut self, toks: &[SpannedToken], start: usize) -> usize {
        let define_span = toks[start].1;
        let bad = |at: usize, what: &str| {
            let span = toks.get(at).map_or(define_span, |t| t.1);
            Diagnostic::error("E0012", format!("bad `@define`: expected {what}"), span)
        };
        let mut i = start + 1;
        let (name, name_span) = match toks.get(i) {
            Some((Token::Ident(n), s)) | Some((Token::AtName(n), s)) => (n.clone(), *s),
            _ => {
                self.diags.push(bad(i, "a macro name"));
                return i;
            }
        };
        i += 1;
        let mut params = Vec::new();
        if let Some((Token::LParen, _)) = toks.get(i) {
            i += 1;
            loop {
                match toks.get(i) {
                    Some((Token::Ident(p), _)) => {
                        params.push(p.clone());
                        i += 1;
                    }
                    Some((Token::RParen, _)) if params.is_empty() => {}
                    _ => {
                        self.diags.push(bad(i, "a parameter name"));
                        return i;
                    }
                }
                match toks.get(i) {
                    Some((Token::Comma, _)) => i += 1,
                    Some((Token::RParen, _)) => {
                        i += 1;
                        break;
                    }
                    _ => {
                        self.diags.push(bad(i, "`,` or `)`"));
                        return i;
                    }
                }
            }
        }
        if !matches!(toks.get(i), Some((Token::PpIf, _))) {
            self.diags.push(bad(i, "`%(` starting the macro body"));
            return i;
        }
        let body_start = i + 1;
        let mut nesting = 0;
        let mut j = body_start;
        while j < toks.len() {
            match toks[j].0 {
                Token::PpIf => nesting += 1,
                Token::PpEnd if nesting == 0 => break,
                Token::PpEnd => nesting -= 1,
                _ => {}
            }
            j += 1;
        }
        if j == toks.len() {
            self.diags.push(Diagnostic::error("E0012", "macro body `%(` without a matching `%)`", toks[i].1));
            return j;
        }
        let body = toks[body_start..j].to_vec();
        self.macros.defs.insert(name, MacroDef { params, body, span: name_span });
        j + 1
    }

    /// `@NAME` or `@NAME(args)` at `start`, a known macro; returns the index after it.
    fn expand(&mut self, toks: &[SpannedToken], start: usize, out: &mut Vec<SpannedToken>, depth: usize) -> usize {
        let (Token::AtName(name), name_span) = &toks[start] else { unreachable!("caller checked") };
        let def = self.macros.defs[name].clone();
        if depth >= MAX_EXPANSION_DEPTH {
            self.diags.push(Diagnostic::error(
                "E0014",
                format!("macro `@{name}` expands too deep (recursive definition?)"),
                *name_span,
            ));
            return start + 1;
        }
        let mut i = start + 1;
        let mut args: Vec<Vec<SpannedToken>> = Vec::new();
        let mut span = *name_span;
        if !def.params.is_empty() {
            if !matches!(toks.get(i), Some((Token::LParen, _))) {
                self.diags.push(Diagnostic::error(
                    "E0013",
                    format!("macro `@{name}` takes {} argument(s) in parentheses", def.params.len()),
                    *name_span,
                ));
                return i;
            }
            i += 1;
            let mut current = Vec::new();
            let mut nesting = 0;
            loop {
                let Some((tok, tok_span)) = toks.get(i) else {
                    self.diags.push(Diagnostic::error(
                        "E0013",
                        format!("unclosed argument list of macro `@{name}`"),
                        *name_span,
                    ));
                    return i;
                };
                i += 1;
                match tok {
                    Token::LParen | Token::LBracket | Token::LBrace => nesting += 1,
                    Token::RParen if nesting == 0 => {
                        span = span.to(*tok_span);
                        args.push(std::mem::take(&mut current));
                        break;
                    }
                    Token::RParen | Token::RBracket | Token::RBrace => nesting -= 1,
                    Token::Comma if nesting == 0 => {
                        args.push(std::mem::take(&mut current));
                        continue;
                    }
                    _ => {}
                }
                current.push((tok.clone(), *tok_span));
            }
            if args.len() != def.params.len() {
                self.diags.push(Diagnostic::error(
                    "E0013",
                    format!("macro `@{name}` takes {} argument(s), got {}", def.params.len(), args.len()),
                    span,
                ));
                return i;
            }
        }
        let size = def.body.iter().map(|(tok, _)| param_index(tok, &def.params).map_or(1, |k| args[k].len())).sum();
        if self.expanded > MAX_EXPANDED_TOKENS {
            return i;
        }
        self.expanded += size;
        if self.expanded > MAX_EXPANDED_TOKENS {
            self.diags.push(
                Diagnostic::error(
                    "E0014",
                    format!("macros expand to more than {MAX_EXPANDED_TOKENS} tokens in all"),
                    span,
                )
                .with_label("this expansion goes over"),
            );
            return i;
        }
        let mut expanded = Vec::with_capacity(size);
        for (tok, _) in &def.body {
            match tok {
                tok if param_index(tok, &def.params).is_some() => {
                    let k = param_index(tok, &def.params).unwrap();
                    expanded.extend(args[k].iter().cloned());
                }
                _ => expanded.push((tok.clone(), span)),
            }
        }
        self.run(&expanded, out, depth + 1);
        i
    }

    fn condition(&self, toks: &[SpannedToken], open_span: Span) -> Result<bool, Diagnostic> {
        let mut pos = 0;
        let value = self.cond_or(toks, &mut pos, open_span)?;
        if pos != toks.len() {
            return Err(cond_error(toks, pos, open_span, "`&&`, `||` or `%?`"));
        }
        Ok(value)
    }

    fn cond_or(&self, toks: &[SpannedToken], pos: &mut usize, open: Span) -> Result<bool, Diagnostic> {
        let mut value = self.cond_and(toks, pos, open)?;
        while matches!(toks.get(*pos), Some((Token::OrOr, _))) {
            *pos += 1;
            let rhs = self.cond_and(toks, pos, open)?;
            value = value || rhs;
        }
        Ok(value)
    }

    fn cond_and(&self, toks: &[SpannedToken], pos: &mut usize, open: Span) -> Result<bool, Diagnostic> {
        let mut value = self.cond_atom(toks, pos, open)?;
        while matches!(toks.get(*pos), Some((Token::AndAnd, _))) {
            *pos += 1;
            let rhs = self.cond_atom(toks, pos, open)?;
            value = value && rhs;
        }
        Ok(value)
    }

    fn cond_atom(&self, toks: &[SpannedToken], pos: &mut usize, open: Span) -> Result<bool, Diagnostic> {
        match toks.get(*pos) {
            Some((Token::LParen, _)) => {
                *pos += 1;
                let value = self.cond_or(toks, pos, open)?;
                if !matches!(toks.get(*pos), Some((Token::RParen, _))) {
                    return Err(cond_error(toks, *pos, open, "`)`"));
                }
                *pos += 1;
                Ok(value)
            }
            Some((Token::Bang, _)) => {
                *pos += 1;
                Ok(!self.cond_atom(toks, pos, open)?)
            }
            _ => {
                let lhs = self.operand(toks, pos, open)?;
                let op = match toks.get(*pos) {
                    Some((tok @ (Token::EqEq | Token::NotEq | Token::Lt | Token::Le | Token::Gt | Token::Ge), _)) => {
                        tok.clone()
                    }
                    _ => return Err(cond_error(toks, *pos, open, "a comparison operator")),
                };
                *pos += 1;
                let rhs = self.operand(toks, pos, open)?;
                compare(&lhs, &op, &rhs).ok_or_else(|| {
                    let span = toks[*pos - 1].1;
                    Diagnostic::error("E0010", "preprocessor condition compares a number with a string", span)
                })
            }
        }
    }

    fn operand(&self, toks: &[SpannedToken], pos: &mut usize, open: Span) -> Result<Value, Diagnostic> {
        let Some((tok, span)) = toks.get(*pos) else {
            return Err(cond_error(toks, *pos, open, "a value"));
        };
        *pos += 1;
        Ok(match tok {
            Token::Number(n) => Value::Num(*n),
            Token::Minus => match toks.get(*pos) {
                Some((Token::Number(n), _)) => {
                    *pos += 1;
                    Value::Num(n.wrapping_neg())
                }
                _ => return Err(cond_error(toks, *pos, open, "a number")),
            },
            Token::Str(s) => Value::Str(s.clone()),
            Token::DollarCount | Token::AtCount => Value::Num(self.env.script_args.len() as i64),
            Token::Ident(name) => match name.as_str() {
                "kernel_v" => Value::Version(kernel_version(&self.env.kernel_release).to_string()),
                "kernel_vr" => Value::Version(self.env.kernel_release.clone()),
                "systemtap_v" => Value::Version(SYSTEMTAP_VERSION.into()),
                "arch" => Value::Str(self.env.arch.clone()),
                "runtime" => Value::Str(RUNTIME.into()),
                "systemtap_privilege" => Value::Str(SYSTEMTAP_PRIVILEGE.into()),
                "guru_mode" => Value::Num(0),
                n if n.starts_with("CONFIG_") => Value::Str(self.env.config(n)),
                _ => {
                    return Err(Diagnostic::error(
                        "E0011",
                        format!("unknown preprocessor variable `{name}`"),
                        *span,
                    )
                    .with_help("conditions may use kernel_v, kernel_vr, arch, runtime, systemtap_v, systemtap_privilege, guru_mode, CONFIG_* and $#"))
                }
            },
            _ => return Err(cond_error(toks, *pos - 1, open, "a value")),
        })
    }
}

/// Which parameter `@p` names, if any. A parameter may be called like a built-in (`@var`).
fn param_index(tok: &Token, params: &[String]) -> Option<usize> {
    let name = match tok {
        Token::AtName(name) => name.as_str(),
        other => other.fixed_text()?.strip_prefix('@')?,
    };
    params.iter().position(|p| p == name)
}

fn cond_error(toks: &[SpannedToken], pos: usize, open: Span, expected: &str) -> Diagnostic {
    let (found, span) = match toks.get(pos) {
        Some((tok, span)) => (tok.describe(), *span),
        None => ("`%?`".to_string(), toks.last().map_or(open, |t| t.1)),
    };
    Diagnostic::error("E0010", format!("bad preprocessor condition: expected {expected}, found {found}"), span)
}

/// `6.1.0-18-amd64` → `6.1.0`.
fn kernel_version(release: &str) -> &str {
    release.split(['-', '+']).next().unwrap_or(release)
}

/// `None` when the operands cannot be compared (a number with a string).
fn compare(lhs: &Value, op: &Token, rhs: &Value) -> Option<bool> {
    use std::cmp::Ordering;
    let ordering: Ordering = match (lhs, rhs) {
        (Value::Num(a), Value::Num(b)) => a.cmp(b),
        (Value::Version(a), Value::Str(b) | Value::Version(b)) | (Value::Str(a), Value::Version(b)) => {
            if matches!(op, Token::EqEq | Token::NotEq) && b.contains(['*', '?']) {
                let matched = glob_match(b, a);
                return Some(matched == matches!(op, Token::EqEq));
            }
            version_cmp(a, b)
        }
        (Value::Str(a), Value::Str(b)) => {
            if matches!(op, Token::EqEq | Token::NotEq) && b.contains(['*', '?']) {
                let matched = glob_match(b, a);
                return Some(matched == matches!(op, Token::EqEq));
            }
            a.cmp(b)
        }
        _ => return None,
    };
    Some(match op {
        Token::EqEq => ordering == Ordering::Equal,
        Token::NotEq => ordering != Ordering::Equal,
        Token::Lt => ordering == Ordering::Less,
        Token::Le => ordering != Ordering::Greater,
        Token::Gt => ordering == Ordering::Greater,
        _ => ordering != Ordering::Less,
    })
}

/// Compares dotted versions: numeric parts as numbers, others as text; a missing part is less.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| s.split(['.', '-']).map(str::to_string).collect::<Vec<_>>();
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            _ => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    pa.len().cmp(&pb.len())
}
