//! Number parsing for the exposition formats: sample values (Go
//! `strconv.ParseFloat` syntax), integer millisecond timestamps (text format)
//! and decimal second timestamps converted exactly to milliseconds
//! (OpenMetrics).
//!
//! Every function takes the token's bytes (already cut at whitespace) and
//! returns a static message on failure; the caller adds line and column.

/// Why a number token was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumberError {
    /// The token is not a number in the accepted syntax.
    Syntax,
    /// The token is syntactically a number but does not fit (a float that
    /// overflows to infinity, an integer beyond `i64`).
    OutOfRange,
    /// A timestamp was NaN or infinite.
    NotFinite,
    /// Hexadecimal floats are valid Go but deliberately not supported.
    Hexadecimal,
}

/// Parses a sample value the way Go's `strconv.ParseFloat(s, 64)` does, minus
/// hexadecimal floats: an optional sign, decimal digits with an optional
/// fraction and exponent, or (ignoring case) `NaN`, `Inf`, `Infinity` (the
/// last two optionally signed). Underscores are rejected. A finite literal
/// that overflows `f64` is an error, as in Prometheus.
pub(crate) fn parse_value(token: &[u8]) -> Result<f64, NumberError> {
    // Fast path: a short run of plain digits, the common case for counters
    // and gauges. Up to 15 digits are exactly representable in an f64.
    if !token.is_empty() && token.len() <= 15 && token.iter().all(u8::is_ascii_digit) {
        let mut integer: u64 = 0;
        for &digit in token {
            integer = integer * 10 + u64::from(digit - b'0');
        }
        return Ok(integer as f64);
    }
    let unsigned = match token.first() {
        Some(b'+' | b'-') => &token[1..],
        _ => token,
    };
    match unsigned.first() {
        Some(b'0'..=b'9' | b'.') => {}
        Some(byte) if byte.is_ascii_alphabetic() => return parse_special(token),
        _ => return Err(NumberError::Syntax),
    }
    if unsigned.len() >= 2 && unsigned[0] == b'0' && (unsigned[1] | 0x20) == b'x' {
        return Err(NumberError::Hexadecimal);
    }
    // Rust's float grammar for the remaining (digit- or dot-led) tokens is
    // exactly Go's decimal grammar: digits, optional '.', optional exponent,
    // at least one mantissa digit. Both round correctly.
    if !unsigned
        .iter()
        .all(|&b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return Err(NumberError::Syntax);
    }
    // The check above guarantees ASCII, so this conversion cannot fail.
    let text = std::str::from_utf8(token).map_err(|_| NumberError::Syntax)?;
    let value: f64 = text.parse().map_err(|_| NumberError::Syntax)?;
    if value.is_infinite() {
        return Err(NumberError::OutOfRange);
    }
    Ok(value)
}

/// `NaN`, `Inf`, `+Inf`, `-Inf`, `Infinity` in any case; a signed NaN is
/// rejected as Go rejects it.
fn parse_special(token: &[u8]) -> Result<f64, NumberError> {
    let (negative, signed, rest) = match token.first() {
        Some(b'-') => (true, true, &token[1..]),
        Some(b'+') => (false, true, &token[1..]),
        _ => (false, false, token),
    };
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return Ok(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if !signed && rest.eq_ignore_ascii_case(b"nan") {
        return Ok(f64::NAN);
    }
    Err(NumberError::Syntax)
}

/// Parses a text-format timestamp: a base-10 `i64` with an optional sign, as
/// Go's `strconv.ParseInt(s, 10, 64)`.
pub(crate) fn parse_integer_milliseconds(token: &[u8]) -> Result<i64, NumberError> {
    let (negative, digits) = match token.first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    };
    if digits.is_empty() {
        return Err(NumberError::Syntax);
    }
    let mut magnitude: u64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return Err(NumberError::Syntax);
        }
        magnitude = magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(byte - b'0')))
            .ok_or(NumberError::OutOfRange)?;
    }
    apply_sign(magnitude, negative)
}

fn apply_sign(magnitude: u64, negative: bool) -> Result<i64, NumberError> {
    if negative {
        if magnitude == i64::MIN.unsigned_abs() {
            return Ok(i64::MIN);
        }
        i64::try_from(magnitude)
            .map(|m| -m)
            .map_err(|_| NumberError::OutOfRange)
    } else {
        i64::try_from(magnitude).map_err(|_| NumberError::OutOfRange)
    }
}

/// Converts an OpenMetrics timestamp in seconds (a decimal float such as
/// `1700000000.125`, `1.7e9` or `-0.5`) to milliseconds, exactly: the
/// decimal digits are shifted by three places as integers, never through an
/// `f64`, and the result is rounded to the nearest millisecond with ties
/// away from zero. `NaN` and infinities are rejected, as are hexadecimal
/// floats and results outside `i64`.
pub(crate) fn parse_seconds_as_milliseconds(token: &[u8]) -> Result<i64, NumberError> {
    let (negative, unsigned) = match token.first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    };
    match unsigned.first() {
        Some(b'0'..=b'9' | b'.') => {}
        Some(byte) if byte.is_ascii_alphabetic() => {
            // A valid special value is a well-formed float but not a time.
            return Err(match parse_special(token) {
                Ok(_) => NumberError::NotFinite,
                Err(error) => error,
            });
        }
        _ => return Err(NumberError::Syntax),
    }
    if unsigned.len() >= 2 && unsigned[0] == b'0' && (unsigned[1] | 0x20) == b'x' {
        return Err(NumberError::Hexadecimal);
    }

    // Split into integer digits, fraction digits and the exponent.
    let mut index = 0;
    while index < unsigned.len() && unsigned[index].is_ascii_digit() {
        index += 1;
    }
    let integer_digits = &unsigned[..index];
    let mut fraction_digits: &[u8] = &[];
    if index < unsigned.len() && unsigned[index] == b'.' {
        let start = index + 1;
        index = start;
        while index < unsigned.len() && unsigned[index].is_ascii_digit() {
            index += 1;
        }
        fraction_digits = &unsigned[start..index];
    }
    if integer_digits.is_empty() && fraction_digits.is_empty() {
        return Err(NumberError::Syntax);
    }
    // The exponent saturates far beyond any value that could matter: a
    // mantissa needs at most 19 significant digits to fill an i64.
    const EXPONENT_LIMIT: i64 = 1 << 40;
    let mut exponent: i64 = 0;
    if index < unsigned.len() && (unsigned[index] | 0x20) == b'e' {
        index += 1;
        let mut exponent_negative = false;
        if index < unsigned.len() && matches!(unsigned[index], b'+' | b'-') {
            exponent_negative = unsigned[index] == b'-';
            index += 1;
        }
        let start = index;
        while index < unsigned.len() && unsigned[index].is_ascii_digit() {
            exponent = (exponent * 10 + i64::from(unsigned[index] - b'0')).min(EXPONENT_LIMIT);
            index += 1;
        }
        if index == start {
            return Err(NumberError::Syntax);
        }
        if exponent_negative {
            exponent = -exponent;
        }
    }
    if index != unsigned.len() {
        return Err(NumberError::Syntax);
    }

    // The value in milliseconds is D * 10^shift where D is the concatenated
    // digit string. The first `keep` digits of D (padded with zeros when
    // keep exceeds its length) form the integer part; digit number `keep`
    // decides the rounding.
    let digit_at = |position: usize| -> u8 {
        if position < integer_digits.len() {
            integer_digits[position] - b'0'
        } else {
            fraction_digits[position - integer_digits.len()] - b'0'
        }
    };
    let digit_count = integer_digits.len() + fraction_digits.len();
    let fraction_length =
        i64::try_from(fraction_digits.len()).map_err(|_| NumberError::OutOfRange)?;
    let digit_count_signed = i64::try_from(digit_count).map_err(|_| NumberError::OutOfRange)?;
    let shift = exponent - fraction_length + 3;
    let keep = digit_count_signed.saturating_add(shift);

    let mut magnitude: u64 = 0;
    let taken = keep.clamp(0, digit_count_signed) as usize;
    for position in 0..taken {
        magnitude = magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(digit_at(position))))
            .ok_or(NumberError::OutOfRange)?;
    }
    if keep > digit_count_signed && magnitude != 0 {
        // Appending zeros; more than 20 of them overflows any nonzero u64.
        let zeros = keep - digit_count_signed;
        if zeros > 20 {
            return Err(NumberError::OutOfRange);
        }
        for _ in 0..zeros {
            magnitude = magnitude.checked_mul(10).ok_or(NumberError::OutOfRange)?;
        }
    }
    if keep >= 0 && keep < digit_count_signed && digit_at(keep as usize) >= 5 {
        magnitude = magnitude.checked_add(1).ok_or(NumberError::OutOfRange)?;
    }
    apply_sign(magnitude, negative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_go_parse_float() {
        let accepted: &[(&str, f64)] = &[
            ("0", 0.0),
            ("928336", 928336.0),
            ("1.446769e+06", 1.446769e6),
            ("-1.5", -1.5),
            ("+1.5", 1.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("1E3", 1000.0),
            ("1e-400", 0.0),
            ("123456789012345678901234567890", 1.2345678901234568e29),
            ("Inf", f64::INFINITY),
            ("+Inf", f64::INFINITY),
            ("-Inf", f64::NEG_INFINITY),
            ("inf", f64::INFINITY),
            ("-infinity", f64::NEG_INFINITY),
            ("INFINITY", f64::INFINITY),
        ];
        for (token, expected) in accepted {
            assert_eq!(parse_value(token.as_bytes()), Ok(*expected), "{token}");
        }
        for token in ["NaN", "nan", "NAN"] {
            assert!(
                parse_value(token.as_bytes()).is_ok_and(f64::is_nan),
                "{token}"
            );
        }
        let rejected: &[(&str, NumberError)] = &[
            ("", NumberError::Syntax),
            ("+", NumberError::Syntax),
            (".", NumberError::Syntax),
            ("1e", NumberError::Syntax),
            ("1e+", NumberError::Syntax),
            ("e5", NumberError::Syntax),
            ("1_000", NumberError::Syntax),
            ("1.2.3", NumberError::Syntax),
            ("-NaN", NumberError::Syntax),
            ("+nan", NumberError::Syntax),
            ("infinit", NumberError::Syntax),
            ("in", NumberError::Syntax),
            ("0x1p3", NumberError::Hexadecimal),
            ("1e400", NumberError::OutOfRange),
            ("-1e400", NumberError::OutOfRange),
            ("1,5", NumberError::Syntax),
            ("١", NumberError::Syntax),
        ];
        for (token, expected) in rejected {
            assert_eq!(parse_value(token.as_bytes()), Err(*expected), "{token}");
        }
    }

    #[test]
    fn integer_milliseconds_follow_go_parse_int() {
        assert_eq!(
            parse_integer_milliseconds(b"1700000000000"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(parse_integer_milliseconds(b"-5"), Ok(-5));
        assert_eq!(parse_integer_milliseconds(b"+5"), Ok(5));
        assert_eq!(
            parse_integer_milliseconds(b"9223372036854775807"),
            Ok(i64::MAX)
        );
        assert_eq!(
            parse_integer_milliseconds(b"-9223372036854775808"),
            Ok(i64::MIN)
        );
        assert_eq!(
            parse_integer_milliseconds(b"9223372036854775808"),
            Err(NumberError::OutOfRange)
        );
        for token in ["", "-", "1.5", "1e3", "1_0", "0x10", " 1"] {
            assert_eq!(
                parse_integer_milliseconds(token.as_bytes()),
                Err(NumberError::Syntax),
                "{token}"
            );
        }
    }

    #[test]
    fn seconds_convert_to_milliseconds_exactly() {
        let cases: &[(&str, i64)] = &[
            ("1700000000.125", 1_700_000_000_125),
            ("1700000000", 1_700_000_000_000),
            ("1700000000.1", 1_700_000_000_100),
            ("1700000000.12", 1_700_000_000_120),
            // 0.1 + 0.2 style float traps: exact decimal arithmetic.
            ("1700000000.3", 1_700_000_000_300),
            ("0.001", 1),
            ("0.0005", 1),
            ("0.00049999", 0),
            ("0.0004", 0),
            ("-0.0005", -1),
            ("-0.0004", 0),
            ("-1.5", -1_500),
            ("1.0005", 1_001),
            ("1.00049", 1_000),
            ("1234.5", 1_234_500),
            ("1.7e9", 1_700_000_000_000),
            ("1.7E+9", 1_700_000_000_000),
            ("17e8", 1_700_000_000_000),
            ("1700000000125e-3", 1_700_000_000_125),
            ("1700000000125.4e-3", 1_700_000_000_125),
            ("1700000000125.5e-3", 1_700_000_000_126),
            (".5", 500),
            ("5.", 5_000),
            ("+2", 2_000),
            ("0", 0),
            ("-0", 0),
            ("0e999999999999999999999", 0),
            ("1e-999999999999999999999", 0),
            ("00000000000000000000001", 1_000),
            ("1.99999999999999999999999999", 2_000),
            ("9223372036854775.807", i64::MAX),
            ("-9223372036854775.808", i64::MIN),
        ];
        for (token, expected) in cases {
            assert_eq!(
                parse_seconds_as_milliseconds(token.as_bytes()),
                Ok(*expected),
                "{token}"
            );
        }
        let rejected: &[(&str, NumberError)] = &[
            ("NaN", NumberError::NotFinite),
            ("+Inf", NumberError::NotFinite),
            ("-inf", NumberError::NotFinite),
            ("nope", NumberError::Syntax),
            ("", NumberError::Syntax),
            ("-", NumberError::Syntax),
            (".", NumberError::Syntax),
            ("1e", NumberError::Syntax),
            ("1.2.3", NumberError::Syntax),
            ("1_000", NumberError::Syntax),
            ("0x10", NumberError::Hexadecimal),
            ("9223372036854775.808", NumberError::OutOfRange),
            ("9223372036854775.8075", NumberError::OutOfRange),
            ("1e17", NumberError::OutOfRange),
            ("1e99999999999999", NumberError::OutOfRange),
        ];
        for (token, expected) in rejected {
            assert_eq!(
                parse_seconds_as_milliseconds(token.as_bytes()),
                Err(*expected),
                "{token}"
            );
        }
    }
}
