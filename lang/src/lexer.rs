//! The lexer: source text to [`Token`]s with byte spans, built with logos.
//!
//! SystemTap quirks handled here:
//! - Three comment styles (`#`, `//`, `/* */`); an unterminated `/*` is an error.
//! - `%{ ... %}` (embedded C) is one opaque token: its text is never looked at.
//! - `%(`, `%?`, `%:`, `%)` are preprocessor tokens, consumed by [`crate::preprocess`] before the
//!   grammar sees the stream.
//! - `$name` is a target variable, `$1`/`@1` script arguments, `$#`/`@#` their count, and `@name`
//!   either a built-in (`@count`, `@cast`, ...; one token each) or a macro name ([`Token::AtName`]).
//! - Integers are decimal, octal (`017`) or hex (`0x1f`), at most 64 bits; values above
//!   `i64::MAX` wrap, as in SystemTap (`0xffffffffffffffff` is -1).
//! - Adjacent string literals are joined into one (`"a" "b"` is `"ab"`), as SystemTap does.
//!
//! Invariant: lexing never fails as a whole; each bad piece of text becomes a [`Diagnostic`] and
//! is skipped, and the tokens around it are kept.

use std::fmt;

use logos::Logos;

use crate::diag::Diagnostic;
use crate::number::NumberError;
use crate::span::{FileId, Span};

/// A token with the span it was lexed from (or, after macro expansion, the invocation's span).
pub type SpannedToken = (Token, Span);

/// Lex a whole file. Comments are dropped; adjacent string literals are joined.
pub fn lex(text: &str, file: FileId) -> (Vec<SpannedToken>, Vec<Diagnostic>) {
    // The tapsets have a token per seven bytes or so: one allocation instead of a dozen.
    let mut tokens: Vec<SpannedToken> = Vec::with_capacity(text.len() / 6);
    let mut diags = Vec::new();
    let mut lexer = Token::lexer(text);
    while let Some(res) = lexer.next() {
        let range = lexer.span();
        let span = Span::new(file, range.start, range.end);
        match res {
            Ok(Token::BlockComment) => {}
            Ok(Token::Str(s)) => {
                if let Some((Token::Str(prev), prev_span)) = tokens.last_mut() {
                    prev.push_str(&s);
                    *prev_span = prev_span.to(span);
                } else {
                    tokens.push((Token::Str(s), span));
                }
            }
            Ok(tok) => tokens.push((tok, span)),
            Err(err) => diags.push(err.into_diagnostic(span, &text[range])),
        }
    }
    (tokens, diags)
}

/// What went wrong while lexing one piece of text.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum LexError {
    #[default]
    UnexpectedChar,
    BadNumber(String),
    NumberOverflow,
    UnterminatedString,
    UnterminatedComment,
    UnterminatedEmbeddedC,
}

impl LexError {
    fn into_diagnostic(self, span: Span, text: &str) -> Diagnostic {
        match self {
            LexError::UnexpectedChar => {
                Diagnostic::error("E0001", format!("unexpected character `{}`", text.escape_default()), span)
            }
            LexError::BadNumber(why) => Diagnostic::error("E0002", format!("bad number `{text}`: {why}"), span),
            LexError::NumberOverflow => {
                Diagnostic::error("E0003", format!("integer `{text}` does not fit in 64 bits"), span)
            }
            LexError::UnterminatedString => Diagnostic::error("E0004", "unterminated string", span),
            LexError::UnterminatedComment => Diagnostic::error("E0005", "unterminated `/*` comment", span),
            LexError::UnterminatedEmbeddedC => {
                Diagnostic::error("E0006", "unterminated embedded C: `%{` without `%}`", span)
            }
        }
    }
}

// IMPORTANT: every variant needs a user-facing name in `Token::describe` and in the `extern`
// block of `grammar.lalrpop`; keep the three lists in sync.
#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(error = LexError)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip r"#[^\n]*")]
#[logos(skip r"//[^\n]*")]
pub enum Token {
    #[token("/*", block_comment)]
    BlockComment,

    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice().to_string())]
    Ident(String),
    /// `$name`, `$$vars`, `$name$` (pretty-printed); the text without the first `$`.
    #[regex(r"\$\$?[A-Za-z_][A-Za-z0-9_]*(\$\$?)?", |lex| lex.slice()[1..].to_string())]
    TargetVar(String),
    /// `@name` that is not a built-in: a macro invocation (or a tapset macro not loaded).
    #[regex(r"@[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice()[1..].to_string())]
    AtName(String),
    #[regex(r"\$[0-9]+", |lex| lex.slice()[1..].parse::<u32>().map_err(|_| LexError::NumberOverflow))]
    DollarArg(u32),
    #[regex(r"@[0-9]+", |lex| lex.slice()[1..].parse::<u32>().map_err(|_| LexError::NumberOverflow))]
    AtArg(u32),
    #[token("$#")]
    DollarCount,
    /// `$` and `$$` after a member name (`$p->f$$`): print the value.
    #[token("$")]
    Dollar,
    #[token("$$")]
    DollarDollar,
    #[token("@#")]
    AtCount,
    #[regex(r"[0-9][A-Za-z0-9_]*", number)]
    Number(i64),
    #[token("\"", string)]
    Str(String),
    #[token("%{", embedded_c)]
    EmbeddedC,

    #[token("%(")]
    PpIf,
    #[token("%?")]
    PpThen,
    #[token("%:")]
    PpElse,
    #[token("%)")]
    PpEnd,

    #[token("probe")]
    Probe,
    #[token("global")]
    Global,
    #[token("function")]
    Function,
    #[token("private")]
    Private,
    #[token("if")]
    If,
    #[token("else")]
    Else,
    #[token("while")]
    While,
    #[token("for")]
    For,
    #[token("foreach")]
    Foreach,
    #[token("in")]
    In,
    #[token("limit")]
    Limit,
    #[token("break")]
    Break,
    #[token("continue")]
    Continue,
    #[token("next")]
    Next,
    #[token("return")]
    Return,
    #[token("delete")]
    Delete,
    #[token("try")]
    Try,
    #[token("catch")]
    Catch,

    #[token("@count")]
    AtCountOp,
    #[token("@sum")]
    AtSum,
    #[token("@min")]
    AtMin,
    #[token("@max")]
    AtMax,
    #[token("@avg")]
    AtAvg,
    #[token("@variance")]
    AtVariance,
    #[token("@hist_log")]
    AtHistLog,
    #[token("@hist_linear")]
    AtHistLinear,
    #[token("@entry")]
    AtEntry,
    #[token("@defined")]
    AtDefined,
    #[token("@cast")]
    AtCast,
    #[token("@var")]
    AtVar,
    #[token("@const")]
    AtConst,
    #[token("@define")]
    AtDefine,

    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    #[token("?")]
    Question,
    #[token(".")]
    Dot,
    #[token("->")]
    Arrow,
    #[token("=")]
    Assign,
    #[token("+=")]
    AddAssign,
    #[token("-=")]
    SubAssign,
    #[token("*=")]
    MulAssign,
    #[token("/=")]
    DivAssign,
    #[token("%=")]
    ModAssign,
    #[token(".=")]
    ConcatAssign,
    #[token("<<=")]
    ShlAssign,
    #[token(">>=")]
    ShrAssign,
    #[token("&=")]
    AndAssign,
    #[token("^=")]
    XorAssign,
    #[token("|=")]
    OrAssign,
    #[token("<<<")]
    Aggregate,
    #[token("++")]
    PlusPlus,
    #[token("--")]
    MinusMinus,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token("!")]
    Bang,
    #[token("~")]
    Tilde,
    #[token("&")]
    Amp,
    #[token("|")]
    Pipe,
    #[token("^")]
    Caret,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token("<=")]
    Le,
    #[token(">=")]
    Ge,
    #[token("<<")]
    Shl,
    #[token(">>")]
    Shr,
    #[token("=~")]
    Match,
    #[token("!~")]
    NotMatch,
    /// The `/` that closes a probe predicate: a `/` directly followed by `{`. Never produced by
    /// logos; [`crate::parse`] rewrites such slashes before running the grammar.
    PredicateEnd,
}

impl Token {
    /// The name of the token in messages: the text for fixed tokens, a description otherwise.
    pub fn describe(&self) -> String {
        match self {
            Token::BlockComment => "comment".into(),
            Token::Ident(s) => format!("identifier `{s}`"),
            Token::TargetVar(s) => format!("`${s}`"),
            Token::AtName(s) => format!("`@{s}`"),
            Token::DollarArg(n) => format!("`${n}`"),
            Token::AtArg(n) => format!("`@{n}`"),
            Token::Number(n) => format!("number `{n}`"),
            Token::Str(_) => "string".into(),
            Token::EmbeddedC => "embedded C `%{ %}`".into(),
            Token::PredicateEnd => "`/` closing the predicate".into(),
            other => format!("`{}`", other.fixed_text().unwrap_or("?")),
        }
    }

    /// The source text of a token that always has the same text.
    pub fn fixed_text(&self) -> Option<&'static str> {
        Some(match self {
            Token::DollarCount => "$#",
            Token::Dollar => "$",
            Token::DollarDollar => "$$",
            Token::AtCount => "@#",
            Token::PpIf => "%(",
            Token::PpThen => "%?",
            Token::PpElse => "%:",
            Token::PpEnd => "%)",
            Token::Probe => "probe",
            Token::Global => "global",
            Token::Function => "function",
            Token::Private => "private",
            Token::If => "if",
            Token::Else => "else",
            Token::While => "while",
            Token::For => "for",
            Token::Foreach => "foreach",
            Token::In => "in",
            Token::Limit => "limit",
            Token::Break => "break",
            Token::Continue => "continue",
            Token::Next => "next",
            Token::Return => "return",
            Token::Delete => "delete",
            Token::Try => "try",
            Token::Catch => "catch",
            Token::AtCountOp => "@count",
            Token::AtSum => "@sum",
            Token::AtMin => "@min",
            Token::AtMax => "@max",
            Token::AtAvg => "@avg",
            Token::AtVariance => "@variance",
            Token::AtHistLog => "@hist_log",
            Token::AtHistLinear => "@hist_linear",
            Token::AtEntry => "@entry",
            Token::AtDefined => "@defined",
            Token::AtCast => "@cast",
            Token::AtVar => "@var",
            Token::AtConst => "@const",
            Token::AtDefine => "@define",
            Token::LBrace => "{",
            Token::RBrace => "}",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::LBracket => "[",
            Token::RBracket => "]",
            Token::Comma => ",",
            Token::Semi => ";",
            Token::Colon => ":",
            Token::Question => "?",
            Token::Dot => ".",
            Token::Arrow => "->",
            Token::Assign => "=",
            Token::AddAssign => "+=",
            Token::SubAssign => "-=",
            Token::MulAssign => "*=",
            Token::DivAssign => "/=",
            Token::ModAssign => "%=",
            Token::ConcatAssign => ".=",
            Token::ShlAssign => "<<=",
            Token::ShrAssign => ">>=",
            Token::AndAssign => "&=",
            Token::XorAssign => "^=",
            Token::OrAssign => "|=",
            Token::Aggregate => "<<<",
            Token::PlusPlus => "++",
            Token::MinusMinus => "--",
            Token::Plus => "+",
            Token::Minus => "-",
            Token::Star => "*",
            Token::Slash | Token::PredicateEnd => "/",
            Token::Percent => "%",
            Token::Bang => "!",
            Token::Tilde => "~",
            Token::Amp => "&",
            Token::Pipe => "|",
            Token::Caret => "^",
            Token::AndAnd => "&&",
            Token::OrOr => "||",
            Token::EqEq => "==",
            Token::NotEq => "!=",
            Token::Lt => "<",
            Token::Gt => ">",
            Token::Le => "<=",
            Token::Ge => ">=",
            Token::Shl => "<<",
            Token::Shr => ">>",
            Token::Match => "=~",
            Token::NotMatch => "!~",
            _ => return None,
        })
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

fn block_comment(lex: &mut logos::Lexer<Token>) -> Result<(), LexError> {
    match lex.remainder().find("*/") {
        Some(end) => {
            lex.bump(end + 2);
            Ok(())
        }
        None => {
            lex.bump(lex.remainder().len());
            Err(LexError::UnterminatedComment)
        }
    }
}

fn embedded_c(lex: &mut logos::Lexer<Token>) -> Result<(), LexError> {
    match lex.remainder().find("%}") {
        Some(end) => {
            lex.bump(end + 2);
            Ok(())
        }
        None => {
            lex.bump(lex.remainder().len());
            Err(LexError::UnterminatedEmbeddedC)
        }
    }
}

fn number(lex: &mut logos::Lexer<Token>) -> Result<i64, LexError> {
    crate::number::parse_unsigned(lex.slice()).map_err(|e| match e {
        NumberError::Overflow => LexError::NumberOverflow,
        bad => LexError::BadNumber(bad.reason().into()),
    })
}

/// Scans a string literal after its opening quote and decodes its escapes. Unknown escapes
/// (`\d` in a regular expression) are kept as written, backslash included.
fn string(lex: &mut logos::Lexer<Token>) -> Result<String, LexError> {
    let rest = lex.remainder();
    let mut out = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                lex.bump(i + 1);
                return Ok(out);
            }
            '\n' => break,
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    '\n' => {}
                    '0'..='7' => {
                        let mut value = e.to_digit(8).unwrap();
                        for _ in 0..2 {
                            match chars.peek() {
                                Some(&(_, d)) if d.is_digit(8) => {
                                    value = value * 8 + d.to_digit(8).unwrap();
                                    chars.next();
                                }
                                _ => break,
                            }
                        }
                        out.push(char::from_u32(value & 0xff).unwrap_or('?'));
                    }
                    'x' => {
                        let mut value = 0;
                        let mut n_digits = 0;
                        while n_digits < 2 {
                            match chars.peek() {
                                Some(&(_, d)) if d.is_ascii_hexdigit() => {
                                    value = value * 16 + d.to_digit(16).unwrap();
                                    n_digits += 1;
                                    chars.next();
                                }
                                _ => break,
                            }
                        }
                        if n_digits == 0 {
                            out.push_str("\\x");
                        } else {
                            out.push(char::from_u32(value).unwrap_or('?'));
                        }
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            c => out.push(c),
        }
    }
    // Unterminated: the token ends at the end of the line so lexing can go on after it.
    let end = rest.find('\n').unwrap_or(rest.len());
    lex.bump(end);
    Err(LexError::UnterminatedString)
}
