//! SystemTap format strings (`printf`, `sprintf`), parsed into a [`Format`]. `lower` parses
//! each literal format to check a call's arguments ([`Format::arg_types`]); the IR keeps only
//! the text and the argument types (`ir::FormatDecl`). The runtime parses the text again to
//! format (`runtime::format`): once per format for kernel records (`runtime::output::Decoder`),
//! and at each `printf` a user-space handler runs. The code generator does not use [`Format`]:
//! it packs a record's arguments by their IR types, and translates a kernel `sprintf` format
//! for `bpf_snprintf` with its own scan (`codegen_bpf::emit::kernel_format`).
//!
//! Input: the format string after escape processing, as the lexer cooked it. Output: a list of
//! [`Piece`]s, literal text or a [`Conversion`]
//! `%[flags][width][.precision][length]conversion` as the SystemTap language reference
//! (section 9.2) defines it:
//!
//! - flags `-` (left-justify), `0` (zero-pad), `+` and ` ` (sign), `#` (`0`/`0x`/`0X` prefix);
//! - width and precision are a number or `*`, which takes the value from an extra long
//!   argument placed before the converted one (width first, then precision);
//! - length modifiers `l`, `ll` and `L` are accepted and ignored (every long is 64 bits);
//! - conversions `d i u o x X` (numbers), `s` (string), `c` (a byte), `p` (pointer, printed as
//!   `0x` and 16 hex digits), `b` (the long written as 1, 2, 4 or 8 raw native-endian bytes,
//!   the width being the byte count), `m` and `M` (memory at an address: precision bytes,
//!   raw or as hex; one byte if no precision) and `%%`.
//!
//! Invariants of a parsed [`Format`]: no two [`Piece::Literal`]s are adjacent, no literal is
//! empty, and `%%` appears as a literal `%`.

use std::fmt;

/// A parsed format string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Format {
    pub pieces: Vec<Piece>,
}

/// Literal text or one conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Piece {
    Literal(String),
    Conversion(Conversion),
}

/// One `%...` conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Conversion {
    pub flags: Flags,
    pub width: Count,
    /// `None` when no `.` was written; `.` alone means `Some(Count::Fixed(0))`.
    pub precision: Option<Count>,
    pub kind: ConvKind,
    /// Byte offset of the `%` in the format string.
    pub offset: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Flags {
    /// `-`
    pub left: bool,
    /// `0`
    pub zero: bool,
    /// `+`
    pub plus: bool,
    /// ` `
    pub space: bool,
    /// `#`
    pub alternate: bool,
}

/// A width or a precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Count {
    /// Not given (widths only; an absent precision is `None`).
    Unset,
    Fixed(u32),
    /// `*`: taken from a long argument.
    Arg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ConvKind {
    /// `d`, `i`
    Signed,
    /// `u`
    Unsigned,
    /// `o`
    Octal,
    /// `x`
    HexLower,
    /// `X`
    HexUpper,
    /// `s`
    Str,
    /// `c`
    Char,
    /// `p`
    Pointer,
    /// `b`: raw bytes of the long; the width (1, 2, 4 or 8, default 8) is the byte count.
    Binary,
    /// `m`: raw bytes of memory at the address argument; the precision is the byte count.
    Memory,
    /// `M`: like `m`, each byte printed as two lowercase hex digits.
    MemoryHex,
}

/// What a value argument of a printf call must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    Long,
    String,
}

/// Why a format string was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FormatError {
    /// Byte offset in the format string of the offending `%` or character.
    pub offset: usize,
    /// Lowercase, no trailing period.
    pub message: String,
}

/// Parses `s`, rejecting unknown conversions and unsupported modifiers.
pub fn parse_format(s: &str) -> Result<Format, FormatError> {
    let bytes = s.as_bytes();
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let Some(rel) = s[i..].find('%') else {
            literal.push_str(&s[i..]);
            break;
        };
        literal.push_str(&s[i..i + rel]);
        let start = i + rel;
        i = start + 1;

        let mut flags = Flags::default();
        while let Some(&b) = bytes.get(i) {
            match b {
                b'-' => flags.left = true,
                b'0' => flags.zero = true,
                b'+' => flags.plus = true,
                b' ' => flags.space = true,
                b'#' => flags.alternate = true,
                _ => break,
            }
            i += 1;
        }
        let width = parse_count(s, &mut i, start)?;
        let precision = if bytes.get(i) == Some(&b'.') {
            i += 1;
            match parse_count(s, &mut i, start)? {
                Count::Unset => Some(Count::Fixed(0)),
                count => Some(count),
            }
        } else {
            None
        };
        // Length modifiers: every SystemTap long is 64 bits, so `l`, `ll` and `L` mean nothing.
        match bytes.get(i) {
            Some(b'l') => {
                i += 1;
                if bytes.get(i) == Some(&b'l') {
                    i += 1;
                }
            }
            Some(b'L') => i += 1,
            Some(&b @ (b'h' | b'j' | b'z' | b't')) => {
                return Err(FormatError {
                    offset: i,
                    message: format!("length modifier `{}` is not supported", b as char),
                });
            }
            _ => {}
        }
        let Some(c) = s[i..].chars().next() else {
            return Err(FormatError { offset: start, message: "format string ends inside a conversion".to_string() });
        };
        i += c.len_utf8();
        let kind = match c {
            'd' | 'i' => ConvKind::Signed,
            'u' => ConvKind::Unsigned,
            'o' => ConvKind::Octal,
            'x' => ConvKind::HexLower,
            'X' => ConvKind::HexUpper,
            's' => ConvKind::Str,
            'c' => ConvKind::Char,
            'p' => ConvKind::Pointer,
            'b' => ConvKind::Binary,
            'm' => ConvKind::Memory,
            'M' => ConvKind::MemoryHex,
            '%' => {
                // `%%`, and like C and the kernel, `%5%` too: a literal percent sign.
                literal.push('%');
                continue;
            }
            _ => {
                return Err(FormatError { offset: start, message: format!("unknown conversion `%{c}`") });
            }
        };
        if kind == ConvKind::Binary {
            match width {
                Count::Unset | Count::Fixed(1 | 2 | 4 | 8) => {}
                _ => {
                    return Err(FormatError {
                        offset: start,
                        message: "`%b` takes a width of 1, 2, 4 or 8 bytes".to_string(),
                    });
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Conversion(Conversion { flags, width, precision, kind, offset: start }));
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(Format { pieces })
}

/// Widths and precisions above this are refused: they would only make huge output.
pub const MAX_COUNT: u32 = 4096;

fn parse_count(s: &str, i: &mut usize, start: usize) -> Result<Count, FormatError> {
    let bytes = s.as_bytes();
    if bytes.get(*i) == Some(&b'*') {
        *i += 1;
        return Ok(Count::Arg);
    }
    let digits_start = *i;
    while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
        *i += 1;
    }
    if *i == digits_start {
        return Ok(Count::Unset);
    }
    match s[digits_start..*i].parse::<u32>() {
        Ok(n) if n <= MAX_COUNT => Ok(Count::Fixed(n)),
        _ => Err(FormatError {
            offset: start,
            message: format!("width or precision `{}` is larger than {MAX_COUNT}", &s[digits_start..*i]),
        }),
    }
}

impl Format {
    /// The types of the arguments a call must pass after the format, in order: for each
    /// conversion, a long for a `*` width, a long for a `*` precision, then its value.
    pub fn arg_types(&self) -> Vec<ArgType> {
        let mut types = Vec::new();
        for conv in self.conversions() {
            if conv.width == Count::Arg {
                types.push(ArgType::Long);
            }
            if conv.precision == Some(Count::Arg) {
                types.push(ArgType::Long);
            }
            types.push(conv.kind.arg_type());
        }
        types
    }

    pub fn conversions(&self) -> impl Iterator<Item = &Conversion> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Conversion(conv) => Some(conv),
            Piece::Literal(_) => None,
        })
    }
}

impl ConvKind {
    /// The type of the value argument. `%m`/`%M` take an address (a long); the code generator
    /// reads the memory and the formatter receives its bytes.
    pub fn arg_type(self) -> ArgType {
        match self {
            ConvKind::Str => ArgType::String,
            _ => ArgType::Long,
        }
    }

    pub fn letter(self) -> char {
        match self {
            ConvKind::Signed => 'd',
            ConvKind::Unsigned => 'u',
            ConvKind::Octal => 'o',
            ConvKind::HexLower => 'x',
            ConvKind::HexUpper => 'X',
            ConvKind::Str => 's',
            ConvKind::Char => 'c',
            ConvKind::Pointer => 'p',
            ConvKind::Binary => 'b',
            ConvKind::Memory => 'm',
            ConvKind::MemoryHex => 'M',
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Unset => Ok(()),
            Count::Fixed(n) => write!(f, "{n}"),
            Count::Arg => f.write_str("*"),
        }
    }
}

/// Prints the conversion in a canonical form (flags in the order `-+ #0`, no length
/// modifier), e.g. `%-*.3s`.
impl fmt::Display for Conversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("%")?;
        for (set, c) in [
            (self.flags.left, '-'),
            (self.flags.plus, '+'),
            (self.flags.space, ' '),
            (self.flags.alternate, '#'),
            (self.flags.zero, '0'),
        ] {
            if set {
                write!(f, "{c}")?;
            }
        }
        write!(f, "{}", self.width)?;
        if let Some(precision) = self.precision {
            write!(f, ".{precision}")?;
        }
        write!(f, "{}", self.kind.letter())
    }
}

/// Prints the format back as a format string (`%` in literals doubled).
impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => f.write_str(&text.replace('%', "%%"))?,
                Piece::Conversion(conv) => write!(f, "{conv}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses and prints pieces as `[literal]` and `{conversion}`, or `error at N: message`.
    fn check(src: &str, expected: &str) {
        let actual = match parse_format(src) {
            Ok(format) => {
                let mut out = String::new();
                for piece in &format.pieces {
                    match piece {
                        Piece::Literal(text) => out.push_str(&format!("[{text}]")),
                        Piece::Conversion(conv) => out.push_str(&format!("{{{conv}@{}}}", conv.offset)),
                    }
                }
                let types: Vec<&str> = format
                    .arg_types()
                    .iter()
                    .map(|t| match t {
                        ArgType::Long => "long",
                        ArgType::String => "string",
                    })
                    .collect();
                format!("{out} ({})", types.join(", "))
            }
            Err(err) => format!("error at {}: {}", err.offset, err.message),
        };
        assert_eq!(actual, expected, "format {src:?}");
    }

    #[test]
    fn parses() {
        let rows = [
            ("", " ()"),
            ("hello\n", "[hello\n] ()"),
            ("%d", "{%d@0} (long)"),
            ("%s[%d] -> %s:%d\n", "{%s@0}[[]{%d@3}[] -> ]{%s@10}[:]{%d@13}[\n] (string, long, string, long)"),
            ("100%%", "[100%] ()"),
            ("%%d %d", "[%d ]{%d@4} (long)"),
            ("%5%x", "[%x] ()"),
            ("%-16s|", "{%-16s@0}[|] (string)"),
            ("%-*s", "{%-*s@0} (long, string)"),
            ("%*.*s", "{%*.*s@0} (long, long, string)"),
            ("%.s", "{%.0s@0} (string)"),
            ("%5.2s", "{%5.2s@0} (string)"),
            ("%08.3d", "{%08.3d@0} (long)"),
            ("%+ #0-x", "{%-+ #0x@0} (long)"),
            ("%ld %lld %Lx %lu", "{%d@0}[ ]{%d@4}[ ]{%x@9}[ ]{%u@13} (long, long, long, long)"),
            ("%i %u %o %x %X %c %p", "{%d@0}[ ]{%u@3}[ ]{%o@6}[ ]{%x@9}[ ]{%X@12}[ ]{%c@15}[ ]{%p@18} (long, long, long, long, long, long, long)"),
            ("%b%1b%2b%4b%8b", "{%b@0}{%1b@2}{%2b@5}{%4b@8}{%8b@11} (long, long, long, long, long)"),
            ("%.4m %.*M %M", "{%.4m@0}[ ]{%.*M@5}[ ]{%M@10} (long, long, long, long)"),
            ("é%dé", "[é]{%d@2}[é] (long)"),
        ];
        for (src, expected) in rows {
            check(src, expected);
        }
    }

    #[test]
    fn rejects() {
        let rows = [
            ("%q", "error at 0: unknown conversion `%q`"),
            ("ab %-5é", "error at 3: unknown conversion `%é`"),
            ("%", "error at 0: format string ends inside a conversion"),
            ("x %-08.", "error at 2: format string ends inside a conversion"),
            ("%hd", "error at 1: length modifier `h` is not supported"),
            ("%zu", "error at 1: length modifier `z` is not supported"),
            ("%3b", "error at 0: `%b` takes a width of 1, 2, 4 or 8 bytes"),
            ("%*b", "error at 0: `%b` takes a width of 1, 2, 4 or 8 bytes"),
            ("%99999d", "error at 0: width or precision `99999` is larger than 4096"),
            ("%.99999999999s", "error at 0: width or precision `99999999999` is larger than 4096"),
            ("%f", "error at 0: unknown conversion `%f`"),
            ("%n", "error at 0: unknown conversion `%n`"),
        ];
        for (src, expected) in rows {
            check(src, expected);
        }
    }

    #[test]
    fn display_round_trips() {
        for src in ["a%%b %-*.*s %08.3d %#x %p %4b %.8M\n", "%d%%%s"] {
            let format = parse_format(src).unwrap();
            assert_eq!(parse_format(&format.to_string()).unwrap(), format);
        }
    }
}
