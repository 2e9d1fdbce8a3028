//! The one number parser: literals in scripts (the lexer), script arguments (`$1`) and the
//! values given on the command line (`-G NAME=VALUE`, `bpftap run OBJECT NAME=VALUE`), read
//! as C's `strtol` with base 0 reads them (SystemTap's module parameters): `0x` hexadecimal,
//! a leading `0` octal, else decimal. Up to 64 bits of magnitude are taken, wrapping as C's
//! unsigned to signed conversion does (`0xffffffffffffffff` is -1).

/// Why a text is not a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberError {
    /// A digit the base does not have, or none at all.
    BadDigits { radix: u32 },
    /// More than 64 bits.
    Overflow,
}

impl NumberError {
    /// What was wrong, in the words of a diagnostic: "not a hexadecimal number".
    pub fn reason(self) -> &'static str {
        match self {
            NumberError::BadDigits { radix: 16 } => "not a hexadecimal number",
            NumberError::BadDigits { radix: 8 } => "not an octal number",
            NumberError::BadDigits { .. } => "not a decimal number",
            NumberError::Overflow => "more than 64 bits",
        }
    }
}

/// A number without a sign, as a literal is written.
pub fn parse_unsigned(text: &str) -> Result<i64, NumberError> {
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        (hex, 16)
    } else if text.len() > 1 && text.starts_with('0') {
        (&text[1..], 8)
    } else {
        (text, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(NumberError::BadDigits { radix });
    }
    // Every digit was checked above, so the only possible error is overflow.
    u64::from_str_radix(digits, radix).map(|n| n as i64).map_err(|_| NumberError::Overflow)
}

/// A number as a user gives one on the command line or as a script argument: spaces around
/// it, then an optional sign.
pub fn parse(text: &str) -> Result<i64, NumberError> {
    let text = text.trim();
    match text.strip_prefix('-') {
        Some(rest) => parse_unsigned(rest).map(i64::wrapping_neg),
        None => parse_unsigned(text.strip_prefix('+').unwrap_or(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_signs_and_limits() {
        assert_eq!(parse("42"), Ok(42));
        assert_eq!(parse(" -42 "), Ok(-42));
        assert_eq!(parse("+0x1F"), Ok(31));
        assert_eq!(parse("010"), Ok(8));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("0xffffffffffffffff"), Ok(-1));
        assert_eq!(parse("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse("18446744073709551616"), Err(NumberError::Overflow));
        assert_eq!(parse("09"), Err(NumberError::BadDigits { radix: 8 }));
        assert_eq!(parse("0x"), Err(NumberError::BadDigits { radix: 16 }));
        assert_eq!(parse("12abc"), Err(NumberError::BadDigits { radix: 10 }));
        assert_eq!(parse(""), Err(NumberError::BadDigits { radix: 10 }));
        assert_eq!(parse("-"), Err(NumberError::BadDigits { radix: 10 }));
    }
}
