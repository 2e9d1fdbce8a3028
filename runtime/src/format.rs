//! SystemTap's printf, applied in user space to the arguments decoded from a ring-buffer
//! record (or computed by a user-space handler).
//!
//! Input: a [`lang::printf::Format`] and its arguments as [`Value`]s, in the order of
//! [`lang::printf::Format::arg_types`] (a `*` width or precision first, then the value).
//! Output: the bytes SystemTap prints. Bytes, not text: `%b`, `%c`, `%m` and strings read from
//! the kernel need not be UTF-8. [`format`] is the lossy text form for tests and messages.
//!
//! Numbers follow SystemTap's runtime (`runtime/vsprintf.c`), which copies Linux 2.6's
//! `number()`. It differs from C's printf in four places, all covered by the tests:
//! - a zero is printed as `0` even with precision 0 (C prints nothing for `%.0d`);
//! - `#` prefixes zero too: `%#x` of 0 is `0x0`, `%#o` of 0 is `00` (C: `0`, `0`);
//! - the `0` flag still pads when a precision is given (`%08.3d` of 5 is `00000005`);
//! - a negative `*` precision means 0 (C: as if none was given).
//!
//! `%p` is `%#018x` unless a width is given (then zero-padded to that width, `0x` included);
//! `%d` is the signed 64-bit value, `%u %o %x %X` the same bits unsigned.
//!
//! Invariant: formatting never panics, whatever the arguments: a missing argument counts as
//! 0 or the empty string, a string where a long is expected as 0, and widths from `*` are
//! clamped to [`lang::printf::MAX_COUNT`].

use lang::printf::{ConvKind, Conversion, Count, Format, Piece, MAX_COUNT};

/// One decoded printf argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Long(i64),
    Str(String),
    /// Memory read for `%m`/`%M`, or a string that is not UTF-8.
    Bytes(Vec<u8>),
}

/// Formats `args` by `fmt`, as text (bytes that are not UTF-8 become U+FFFD).
pub fn format(fmt: &Format, args: &[Value]) -> String {
    String::from_utf8_lossy(&format_bytes(fmt, args)).into_owned()
}

/// Formats `args` by `fmt`, as the exact bytes SystemTap writes.
pub fn format_bytes(fmt: &Format, args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut args = args.iter();
    for piece in &fmt.pieces {
        match piece {
            Piece::Literal(text) => out.extend_from_slice(text.as_bytes()),
            Piece::Conversion(conv) => convert(&mut out, conv, &mut args),
        }
    }
    out
}

#[derive(Clone, Copy, Default)]
struct NumFlags {
    left: bool,
    zero: bool,
    /// Signed conversion: `+` and ` ` apply, negative values get `-`.
    signed: bool,
    plus: bool,
    space: bool,
    /// `#`: `0` before octal, `0x`/`0X` before hex.
    special: bool,
    upper: bool,
}

fn convert<'a>(out: &mut Vec<u8>, conv: &Conversion, args: &mut impl Iterator<Item = &'a Value>) {
    let mut left = conv.flags.left;
    // Widths and precisions are -1 when unset, as in the kernel's vsprintf.
    let width: i64 = match conv.width {
        Count::Unset => -1,
        Count::Fixed(n) => i64::from(n),
        Count::Arg => {
            let n = long(args.next());
            if n < 0 {
                left = true;
            }
            n.unsigned_abs().min(u64::from(MAX_COUNT)) as i64
        }
    };
    let precision: i64 = match conv.precision {
        None => -1,
        Some(Count::Unset) => 0,
        Some(Count::Fixed(n)) => i64::from(n),
        Some(Count::Arg) => long(args.next()).clamp(0, i64::from(MAX_COUNT)),
    };
    let value = args.next();
    let flags = NumFlags {
        left,
        zero: conv.flags.zero,
        signed: false,
        plus: conv.flags.plus,
        space: conv.flags.space,
        special: conv.flags.alternate,
        upper: false,
    };
    match conv.kind {
        ConvKind::Signed => number(out, long(value) as u64, 10, width, precision, NumFlags { signed: true, ..flags }),
        ConvKind::Unsigned => number(out, long(value) as u64, 10, width, precision, flags),
        ConvKind::Octal => number(out, long(value) as u64, 8, width, precision, flags),
        ConvKind::HexLower => number(out, long(value) as u64, 16, width, precision, flags),
        ConvKind::HexUpper => number(out, long(value) as u64, 16, width, precision, NumFlags { upper: true, ..flags }),
        ConvKind::Pointer => {
            let width = if width < 0 { 18 } else { width };
            number(out, long(value) as u64, 16, width, precision, NumFlags { zero: true, special: true, ..flags })
        }
        ConvKind::Str => {
            let bytes = bytes(value);
            let len = if precision >= 0 { bytes.len().min(precision as usize) } else { bytes.len() };
            pad(out, &bytes[..len], width, left);
        }
        ConvKind::Char => pad(out, &[long(value) as u8], width, left),
        ConvKind::Binary => {
            let n = long(value);
            match width {
                1 => out.extend_from_slice(&(n as u8).to_ne_bytes()),
                2 => out.extend_from_slice(&(n as u16).to_ne_bytes()),
                4 => out.extend_from_slice(&(n as u32).to_ne_bytes()),
                _ => out.extend_from_slice(&n.to_ne_bytes()),
            }
        }
        ConvKind::Memory | ConvKind::MemoryHex => {
            let bytes = bytes(value);
            let count = if precision < 0 { 1 } else { precision as usize };
            let bytes = &bytes[..count.min(bytes.len())];
            if conv.kind == ConvKind::Memory {
                pad(out, bytes, width, left);
            } else {
                let hex: Vec<u8> = bytes.iter().flat_map(|b| format!("{b:02x}").into_bytes()).collect();
                pad(out, &hex, width, left);
            }
        }
    }
}

fn long(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Long(n)) => *n,
        _ => 0,
    }
}

fn bytes(value: Option<&Value>) -> &[u8] {
    match value {
        Some(Value::Str(s)) => s.as_bytes(),
        Some(Value::Bytes(b)) => b,
        _ => &[],
    }
}

/// Writes `text` padded with spaces to `width`, on the left unless `left`.
fn pad(out: &mut Vec<u8>, text: &[u8], width: i64, left: bool) {
    let fill = (width.max(0) as usize).saturating_sub(text.len());
    if !left {
        out.resize(out.len() + fill, b' ');
    }
    out.extend_from_slice(text);
    if left {
        out.resize(out.len() + fill, b' ');
    }
}

/// Linux 2.6's `number()`, as SystemTap's runtime has it (see the module doc).
fn number(out: &mut Vec<u8>, mut num: u64, base: u64, width: i64, precision: i64, mut flags: NumFlags) {
    let digits: &[u8; 16] = if flags.upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    if flags.left {
        flags.zero = false;
    }
    let mut size = width;
    let mut sign = None;
    if flags.signed {
        if (num as i64) < 0 {
            sign = Some(b'-');
            num = (num as i64).unsigned_abs();
            size -= 1;
        } else if flags.plus {
            sign = Some(b'+');
            size -= 1;
        } else if flags.space {
            sign = Some(b' ');
            size -= 1;
        }
    }
    if flags.special {
        match base {
            16 => size -= 2,
            8 => size -= 1,
            _ => {}
        }
    }
    let mut tmp = Vec::with_capacity(22);
    if num == 0 {
        tmp.push(b'0');
    }
    while num != 0 {
        tmp.push(digits[(num % base) as usize]);
        num /= base;
    }
    let precision = precision.max(tmp.len() as i64);
    size -= precision;
    let fill = size.max(0) as usize;
    if !flags.zero && !flags.left {
        out.resize(out.len() + fill, b' ');
    }
    if let Some(sign) = sign {
        out.push(sign);
    }
    if flags.special {
        match base {
            16 => out.extend_from_slice(if flags.upper { b"0X" } else { b"0x" }),
            8 => out.push(b'0'),
            _ => {}
        }
    }
    if flags.zero && !flags.left {
        out.resize(out.len() + fill, b'0');
    }
    out.resize(out.len() + (precision as usize - tmp.len()), b'0');
    out.extend(tmp.iter().rev());
    if flags.left {
        out.resize(out.len() + fill, b' ');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lang::printf::parse_format;
    use Value::{Long, Str};

    fn s(text: &str) -> Value {
        Str(text.to_string())
    }

    /// (format, arguments, expected output). Rows marked "C" print the same with glibc.
    #[test]
    fn formats() {
        let clamped = format!("{}1", " ".repeat(4095));
        let rows: Vec<(&str, Vec<Value>, &str)> = vec![
            // Plain and signed numbers (C).
            ("%d|%i", vec![Long(42), Long(-42)], "42|-42"),
            ("%d", vec![Long(i64::MIN)], "-9223372036854775808"),
            ("%d", vec![Long(i64::MAX)], "9223372036854775807"),
            ("%5d|%-5d|%05d", vec![Long(42), Long(42), Long(-42)], "   42|42   |-0042"),
            ("%+d|% d|%+d|% d", vec![Long(5), Long(5), Long(-5), Long(-5)], "+5| 5|-5|-5"),
            ("%+ d", vec![Long(5)], "+5"),
            ("%.3d|%6.3d|%-6.3d|", vec![Long(7), Long(-7), Long(7)], "007|  -007|007   |"),
            // Unsigned views of the 64-bit value (C with %lu/%lx/%lo).
            ("%u", vec![Long(-1)], "18446744073709551615"),
            ("%x|%X|%o", vec![Long(255), Long(255), Long(8)], "ff|FF|10"),
            ("%x", vec![Long(-1)], "ffffffffffffffff"),
            ("%o", vec![Long(-1)], "1777777777777777777777"),
            ("%#x|%#X|%#o", vec![Long(255), Long(255), Long(8)], "0xff|0XFF|010"),
            ("%#10x|%-#10x|%#010x", vec![Long(255), Long(255), Long(255)], "      0xff|0xff      |0x000000ff"),
            ("%04x|%.4x", vec![Long(10), Long(10)], "000a|000a"),
            ("%+u|% x", vec![Long(5), Long(5)], "5|5"),
            ("%ld %lld %lu", vec![Long(-1), Long(2), Long(3)], "-1 2 3"),
            // Where SystemTap (Linux's number()) differs from C.
            ("%.0d|", vec![Long(0)], "0|"),
            ("%#x|%#o", vec![Long(0), Long(0)], "0x0|00"),
            ("%08.3d", vec![Long(5)], "00000005"),
            ("%.*s|", vec![Long(-1), s("abc")], "|"),
            // Pointers.
            ("%p", vec![Long(0xbc614e)], "0x0000000000bc614e"),
            ("%p", vec![Long(-1)], "0xffffffffffffffff"),
            ("%p", vec![Long(0)], "0x0000000000000000"),
            ("%10p|", vec![Long(0xff)], "0x000000ff|"),
            ("%-10p|", vec![Long(0xff)], "0xff      |"),
            // Strings (C).
            ("%s|%5s|%-5s|", vec![s("ab"), s("ab"), s("ab")], "ab|   ab|ab   |"),
            ("%5.2s|%.0s|%.s|%.9s|", vec![s("abc"), s("abc"), s("abc"), s("abc")], "   ab|||abc|"),
            ("%-*s|%*s|", vec![Long(4), s("a"), Long(-4), s("b")], "a   |b   |"),
            ("%*.*s|", vec![Long(5), Long(2), s("xyz")], "   xy|"),
            ("%05s", vec![s("ab")], "   ab"),
            ("%s", vec![s("")], ""),
            // Characters (C).
            ("%c%c|%3c|%-3c|", vec![Long(104), Long(105), Long(120), Long(121)], "hi|  x|y  |"),
            ("%c", vec![Long(0x141)], "A"),
            // Literal percent signs.
            ("100%% %d%%", vec![Long(5)], "100% 5%"),
            // Widths from arguments.
            ("%*d|%-*d|", vec![Long(4), Long(1), Long(4), Long(2)], "   1|2   |"),
            ("%*d|", vec![Long(-4), Long(1)], "1   |"),
            // Binary writes, from the language reference.
            ("%1b%1b%1blo %1b%1brld\n", vec![Long(72), Long(101), Long(108), Long(87), Long(111)], "Hello World\n"),
            ("%3d: %1b%1b%1b", vec![Long(97), Long(97), Long(97 - 32), Long(97 - 64)], " 97: aA!"),
            // Memory.
            (
                "%.3m|%.3M|%M|%6.2M|",
                vec![s("abcd"), Value::Bytes(vec![0xde, 0xad, 0x01]), s("z"), s("\u{1}\u{2}")],
                "abc|dead01|7a|  0102|",
            ),
            // Missing or mistyped arguments do not panic.
            ("%d %s %p", vec![s("x")], "0  0x0000000000000000"),
            ("%*d", vec![Long(1 << 40), Long(1)], &clamped),
        ];
        let mut failures = Vec::new();
        for (fmt, args, expected) in &rows {
            let parsed = parse_format(fmt).unwrap();
            let actual = format(&parsed, args);
            if actual != *expected {
                failures.push(format!("{fmt:?} {args:?}: got {actual:?}, want {expected:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn binary_is_native_endian() {
        let parsed = parse_format("%b%b").unwrap();
        let out = format_bytes(&parsed, &[Long(0xc0dedbad), Long(0x12345678)]);
        let mut expected = 0xc0dedbad_i64.to_ne_bytes().to_vec();
        expected.extend_from_slice(&0x12345678_i64.to_ne_bytes());
        assert_eq!(out, expected);
        let parsed = parse_format("%2b%4b").unwrap();
        assert_eq!(
            format_bytes(&parsed, &[Long(0x1234), Long(-2)]),
            [&0x1234_u16.to_ne_bytes()[..], &(-2_i32).to_ne_bytes()].concat()
        );
    }

    #[test]
    fn bytes_pass_through() {
        let parsed = parse_format("<%s>%c").unwrap();
        assert_eq!(format_bytes(&parsed, &[Value::Bytes(vec![0xff, 0]), Long(0x80)]), b"<\xff\x00>\x80");
    }
}
