//! Floats as Go's `strconv.FormatFloat` writes them with precision -1,
//! which is how Prometheus puts numbers into its API answers and labels.
//!
//! The digits are the shortest that read back to the same float; where two
//! such strings are equally near the float (an exact tie, as
//! 2755870554.59765625 between `…5976562` and `…5976563`), Go keeps the
//! even last digit. Rust's `Display` for `f64` rounds such ties up, `ryu`
//! to even as Go does, so the digits come from `ryu` and only the layout
//! (plain decimal or exponent) is done here.

/// The shortest decimal of a finite float: `0.d₁d₂…dₙ × 10^point`, no
/// leading or trailing zero digit (zero itself is the one digit `0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    digits: [u8; 17],
    len: u8,
    point: i32,
}

impl Decimal {
    /// The shortest round-trip decimal of `v`, or `None` when it is NaN or
    /// infinite.
    pub fn shortest(v: f64) -> Option<Decimal> {
        if !v.is_finite() {
            return None;
        }
        let mut buffer = ryu::Buffer::new();
        Some(Decimal::parse(buffer.format_finite(v)))
    }

    /// Reads `ryu`'s text: `[-]d+.d+` or `[-]d(.d+)?e[-]d+`.
    fn parse(text: &str) -> Decimal {
        let bytes = text.as_bytes();
        let negative = bytes.first() == Some(&b'-');
        let body = &bytes[usize::from(negative)..];
        let (mantissa, exponent) = match body.iter().position(|&b| b == b'e') {
            Some(i) => (&body[..i], parse_exponent(&body[i + 1..])),
            None => (body, 0),
        };
        let mut decimal = Decimal {
            negative,
            digits: [0; 17],
            len: 0,
            point: exponent,
        };
        let mut seen_point = false;
        for &b in mantissa {
            match b {
                b'.' => seen_point = true,
                // A leading zero: before the point it is no digit at all,
                // after it it moves the first digit right.
                b'0' if decimal.len == 0 && seen_point => decimal.point -= 1,
                b'0' if decimal.len == 0 => {}
                b'0'..=b'9' => {
                    if usize::from(decimal.len) < decimal.digits.len() {
                        decimal.digits[usize::from(decimal.len)] = b;
                        decimal.len += 1;
                    }
                    if !seen_point {
                        decimal.point += 1;
                    }
                }
                _ => {}
            }
        }
        while decimal.len > 0 && decimal.digits[usize::from(decimal.len) - 1] == b'0' {
            decimal.len -= 1;
        }
        if decimal.len == 0 {
            decimal.digits[0] = b'0';
            decimal.len = 1;
            decimal.point = 1;
        }
        decimal
    }

    fn digits(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }

    /// The exponent of the `d.ddd × 10^e` form.
    pub fn exponent(&self) -> i32 {
        self.point - 1
    }

    /// Go's `'f'` form: `123.45`, `0.00012`, `1200`, `-0`.
    pub fn write_fixed(&self, out: &mut String) {
        let digits = self.digits();
        if self.negative {
            out.push('-');
        }
        if self.point <= 0 {
            out.push_str("0.");
            push_zeros(out, self.point.unsigned_abs());
            push_ascii(out, digits);
        } else if self.point as usize >= digits.len() {
            push_ascii(out, digits);
            push_zeros(out, self.point as u32 - digits.len() as u32);
        } else {
            let (whole, fraction) = digits.split_at(self.point as usize);
            push_ascii(out, whole);
            out.push('.');
            push_ascii(out, fraction);
        }
    }

    /// Go's `'e'` form: `2.5e-07`, `1e+21` (a signed exponent of at least
    /// two digits).
    pub fn write_exponent(&self, out: &mut String) {
        let digits = self.digits();
        if self.negative {
            out.push('-');
        }
        push_ascii(out, &digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            push_ascii(out, &digits[1..]);
        }
        let exponent = self.exponent();
        out.push_str(if exponent < 0 { "e-" } else { "e+" });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push('0');
        }
        out.push_str(itoa::Buffer::new().format(magnitude));
    }
}

fn parse_exponent(bytes: &[u8]) -> i32 {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let magnitude = digits
        .iter()
        .filter(|b| b.is_ascii_digit())
        .fold(0i32, |n, &b| {
            n.saturating_mul(10).saturating_add(i32::from(b - b'0'))
        });
    if negative { -magnitude } else { magnitude }
}

/// Pushes bytes known to be ASCII digits.
fn push_ascii(out: &mut String, ascii: &[u8]) {
    for &b in ascii {
        out.push(char::from(b));
    }
}

fn push_zeros(out: &mut String, n: u32) {
    for _ in 0..n {
        out.push('0');
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)` with Prometheus's spelling
/// of the special values: `NaN`, `+Inf`, `-Inf`.
pub fn write_fixed(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if let Some(whole) = whole_number(v) {
        // Counts and counter values: their integer digits.
        if whole < 0 {
            out.push('-');
        }
        out.push_str(itoa::Buffer::new().format(whole.unsigned_abs()));
    } else if let Some(thousandths) = few_decimals(v) {
        write_thousandths(out, thousandths);
    } else {
        write_general(out, v);
    }
}

/// [`write_fixed`] of a finite float without the short paths: ryu's
/// digits laid out.
fn write_general(out: &mut String, v: f64) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(v);
    if text.contains('e') {
        Decimal::parse(text).write_fixed(out);
    } else {
        // Between 1e-5 and 1e16 ryu writes a plain decimal, the same
        // digits Go's 'f' writes, with ".0" after a whole number.
        out.push_str(text.strip_suffix(".0").unwrap_or(text));
    }
}

/// `v` as an integer when it is a whole number below 2^53 in magnitude
/// (every such integer is a float exactly, and its shortest digits are
/// its integer digits); `-0` is left to the general path (its sign).
fn whole_number(v: f64) -> Option<i64> {
    /// Below this every integer is a float exactly.
    const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;
    (v.fract() == 0.0 && v.abs() < EXACT_INTEGERS && !(v == 0.0 && v.is_sign_negative()))
        .then_some(v as i64)
}

/// `v` in thousandths when it is exactly the float nearest to a decimal
/// of at most three decimals and fifteen digits (readings, percentages),
/// the most common values of an answer. That decimal is then the
/// shortest that reads back to `v`: two different decimals of at most
/// fifteen significant digits never round to the same float, so no
/// shorter one does. Zero is left to the general path (its sign).
fn few_decimals(v: f64) -> Option<i64> {
    let scaled = (v * 1000.0).round();
    (v != 0.0 && scaled.abs() < 1e15 && scaled / 1000.0 == v).then_some(scaled as i64)
}

/// A whole number of thousandths as a decimal without trailing zeros.
fn write_thousandths(out: &mut String, thousandths: i64) {
    if thousandths < 0 {
        out.push('-');
    }
    let magnitude = thousandths.unsigned_abs();
    let (whole, mut fraction) = (magnitude / 1000, magnitude % 1000);
    out.push_str(itoa::Buffer::new().format(whole));
    if fraction != 0 {
        out.push('.');
        let mut digits = 3;
        while fraction % 10 == 0 {
            fraction /= 10;
            digits -= 1;
        }
        // Leading zeros of the fraction: 1.005 is "1." then "005".
        let text = itoa::Buffer::new().format(fraction).len();
        push_zeros(out, digits - text as u32);
        out.push_str(itoa::Buffer::new().format(fraction));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(v: f64) -> String {
        let mut out = String::new();
        write_fixed(&mut out, v);
        out
    }

    fn general(v: f64) -> String {
        let mut out = String::new();
        write_general(&mut out, v);
        out
    }

    /// The short paths (whole numbers, few decimals) write what the
    /// general path writes, and the text reads back to the value.
    #[test]
    fn short_paths_write_what_the_general_path_writes() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut values = vec![
            0.0,
            1.0,
            -1.0,
            9.0,
            10.0,
            4503599627370496.0,
            9007199254740991.0,
            9007199254740992.0,
            -9007199254740993.0,
            1e300,
            0.5,
            -0.25,
            1e-5,
            9.99999e-6,
            1e15 - 0.5,
            1e15 + 0.5,
            0.1,
            1.0 / 3.0,
            2.5e-5,
        ];
        for _ in 0..20_000 {
            let r = next();
            values.push((r >> 11) as f64 * if r & 1 == 1 { -1.0 } else { 1.0 });
            values.push((r % 100_000) as f64);
            values.push(f64::from_bits(r));
            // Decimals from about 1e-22 to 1e22.
            let scale = 10f64.powi((r % 44) as i32 - 22);
            values.push((r >> 20) as f64 * scale / 4096.0);
            values.push(-((r >> 40) as f64) / 7.0 * scale);
            values.push(((r >> 8) as f64).sin() * scale);
        }
        for v in values.into_iter().filter(|v| v.is_finite()) {
            let s = fixed(v);
            assert_eq!(s, general(v), "{v:?}");
            assert_eq!(s.parse::<f64>().ok(), Some(v), "{s}");
        }
    }

    fn exponent(v: f64) -> String {
        let mut out = String::new();
        if let Some(d) = Decimal::shortest(v) {
            d.write_exponent(&mut out);
        }
        out
    }

    #[test]
    fn layouts() {
        assert_eq!(fixed(0.0), "0");
        assert_eq!(fixed(-0.0), "-0");
        assert_eq!(fixed(1.0), "1");
        assert_eq!(fixed(1e16), "10000000000000000");
        assert_eq!(fixed(1.5e300).len(), 301);
        assert_eq!(fixed(2.5e-7), "0.00000025");
        assert_eq!(fixed(-1.25e-5), "-0.0000125");
        assert_eq!(fixed(123.456), "123.456");
        assert_eq!(fixed(1.005), "1.005");
        assert_eq!(fixed(-0.05), "-0.05");
        assert_eq!(fixed(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(fixed(999_999_999_999.999), "999999999999.999");
        assert_eq!(fixed(f64::NAN), "NaN");
        assert_eq!(fixed(f64::NEG_INFINITY), "-Inf");
        assert_eq!(exponent(2.5e-7), "2.5e-07");
        assert_eq!(exponent(1e21), "1e+21");
        assert_eq!(exponent(-1.2345e-300), "-1.2345e-300");
        assert_eq!(exponent(0.0), "0e+00");
    }

    /// Every digit string written reads back to the float, and the plain
    /// and exponent forms carry the same digits.
    #[test]
    fn round_trips() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = match i % 3 {
                0 => f64::from_bits(x),
                1 => (x >> 20) as f64 * 10f64.powi((x % 44) as i32 - 22) / 4096.0,
                _ => (x % 10_000_000) as f64 / [10.0, 100.0, -1000.0][(x >> 60) as usize % 3],
            };
            if !v.is_finite() {
                continue;
            }
            let plain = fixed(v);
            assert_eq!(plain.parse::<f64>().ok(), Some(v), "{plain}");
            assert_eq!(plain, general(v), "{v:?}");
            let e = exponent(v);
            assert_eq!(e.parse::<f64>().ok(), Some(v), "{e}");
            // At most 17 significant digits, none of them a trailing zero
            // of the fraction.
            assert!(!plain.contains('.') || !plain.ends_with('0'), "{plain}");
        }
    }
}
