//! Go's `fmt` printing for template values: `Sprint`, `Sprintln`, `Sprintf`
//! with the verbs templates use, and Go's float layouts (`strconv`'s `%e`,
//! `%f` and `%g`, where `%v` is the shortest `%g` with exponent form when the
//! decimal exponent is below -4 or at least 6 — so 1e6 prints as `1e+06`).

use crate::value::Value;
use std::fmt::Write as _;

/// `fmt.Sprint`: operands joined with a space where neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 && !matches!(arg, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&format_v(arg));
    }
    out
}

/// `fmt.Sprintln`: operands joined with spaces, then a newline.
pub fn sprintln(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(format_v).collect();
    let mut out = parts.join(" ");
    out.push('\n');
    out
}

/// `%v` of one value.
pub fn format_v(value: &Value) -> String {
    let mut out = String::new();
    fmt_value(&mut out, value, 'v', &Spec::default());
    out
}

/// Formats `f` like Go's `fmt.Sprintf("%.<prec>g", f)`.
pub fn format_float_g(f: f64, prec: usize) -> String {
    let spec = Spec {
        precision: Some(prec),
        ..Spec::default()
    };
    let mut out = String::new();
    fmt_float(&mut out, f, 'g', &spec);
    out
}

/// Flags, width and precision of one verb.
#[derive(Default, Clone)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// Largest width or precision accepted, so a hostile format cannot ask for
/// gigabytes of padding (Go's own limit is 1e6).
const MAX_WIDTH: usize = 1_000_000;

/// `fmt.Sprintf` over template values.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut arg_index = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        // Flags.
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        // Width.
        let mut bad_width = false;
        if let Some(&(_, '*')) = chars.peek() {
            chars.next();
            match args.get(arg_index) {
                Some(Value::Int(w)) => {
                    let w = *w;
                    if w.unsigned_abs() as usize > MAX_WIDTH {
                        bad_width = true;
                    } else {
                        if w < 0 {
                            spec.minus = true;
                        }
                        spec.width = Some(w.unsigned_abs() as usize);
                    }
                }
                _ => bad_width = true,
            }
            arg_index += 1;
        } else {
            let mut width = None;
            while let Some(&(_, d)) = chars.peek() {
                let Some(digit) = d.to_digit(10) else { break };
                let w: usize = width.unwrap_or(0);
                let w = w.saturating_mul(10).saturating_add(digit as usize);
                if w > MAX_WIDTH {
                    bad_width = true;
                }
                width = Some(w.min(MAX_WIDTH));
                chars.next();
            }
            spec.width = width;
        }
        if bad_width {
            out.push_str("%!(BADWIDTH)");
            spec.width = None;
        }
        // Precision.
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            if let Some(&(_, '*')) = chars.peek() {
                chars.next();
                match args.get(arg_index) {
                    Some(Value::Int(p)) if *p >= 0 && (*p as usize) <= MAX_WIDTH => {
                        spec.precision = Some(*p as usize)
                    }
                    _ => out.push_str("%!(BADPREC)"),
                }
                arg_index += 1;
            } else {
                let mut p: usize = 0;
                while let Some(&(_, d)) = chars.peek() {
                    let Some(digit) = d.to_digit(10) else { break };
                    p = p
                        .saturating_mul(10)
                        .saturating_add(digit as usize)
                        .min(MAX_WIDTH);
                    chars.next();
                }
                spec.precision = Some(p);
            }
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        if verb == 'T' {
            match args.get(arg_index) {
                None => out.push_str("%!T(MISSING)"),
                Some(Value::Nil) => pad(&mut out, "<nil>", &spec),
                Some(arg) => pad(&mut out, arg.type_name(), &spec),
            }
            arg_index += 1;
            continue;
        }
        if verb == 'v' {
            // Go reads `%+v` and `%#v` as struct-field and Go-syntax forms:
            // numbers get no sign flag, and `%#v` quotes strings.
            spec.plus = false;
            if spec.sharp
                && let Some(Value::Str(s)) = args.get(arg_index)
            {
                pad(&mut out, &quote(s), &spec);
                arg_index += 1;
                continue;
            }
            spec.sharp = false;
        }
        match args.get(arg_index) {
            None => {
                let _ = write!(out, "%!{verb}(MISSING)");
            }
            Some(arg) => fmt_value(&mut out, arg, verb, &spec),
        }
        arg_index += 1;
    }
    if arg_index < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, arg) in args[arg_index..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match arg {
                Value::Nil => out.push_str("<nil>"),
                _ => {
                    let _ = write!(out, "{}={}", arg.type_name(), format_v(arg));
                }
            }
        }
        out.push(')');
    }
    out
}

/// Formats one value under `verb`, appending to `out`.
fn fmt_value(out: &mut String, value: &Value, verb: char, spec: &Spec) {
    match value {
        Value::Nil => match verb {
            'v' => pad(out, "<nil>", spec),
            _ => bad_verb(out, verb, value),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => pad(out, if *b { "true" } else { "false" }, spec),
            _ => bad_verb(out, verb, value),
        },
        Value::Int(i) => fmt_int(out, *i, verb, spec, value),
        Value::Float(f) => match verb {
            'v' | 'g' | 'G' | 'e' | 'E' | 'f' | 'F' => {
                let verb = if verb == 'v' { 'g' } else { verb };
                fmt_float(out, *f, verb, spec)
            }
            _ => bad_verb(out, verb, value),
        },
        Value::Str(s) => fmt_str(out, s, verb, spec, value),
        Value::List(items) => {
            if matches!(
                verb,
                'v' | 's' | 'q' | 'd' | 'x' | 'X' | 'f' | 'g' | 'e' | 't' | 'o'
            ) {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    fmt_value(out, item, verb, spec);
                }
                out.push(']');
            } else {
                bad_verb(out, verb, value)
            }
        }
        Value::Map(map) => {
            out.push_str("map[");
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_value(out, &Value::Str(k.clone()), verb, spec);
                out.push(':');
                fmt_value(out, v, verb, spec);
            }
            out.push(']');
        }
        Value::Object(o) => {
            if let Some(items) = o.items()
                && verb != 's'
                && verb != 'v'
                && verb != 'q'
            {
                fmt_value(out, &Value::from(items), verb, spec);
                return;
            }
            let text = o.display();
            fmt_str(out, &text, verb, spec, value)
        }
    }
}

/// Go's `%!verb(type=value)` for a verb that does not fit the operand.
fn bad_verb(out: &mut String, verb: char, value: &Value) {
    match value {
        Value::Nil => {
            let _ = write!(out, "%!{verb}(<nil>)");
        }
        _ => {
            let _ = write!(out, "%!{verb}({}={})", value.type_name(), format_v(value));
        }
    }
}

/// Pads `text` to the spec's width with spaces (or zeros when asked).
fn pad(out: &mut String, text: &str, spec: &Spec) {
    let len = text.chars().count();
    let width = spec.width.unwrap_or(0);
    if len >= width {
        out.push_str(text);
        return;
    }
    let fill = width - len;
    if spec.minus {
        out.push_str(text);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        let c = if spec.zero { '0' } else { ' ' };
        out.extend(std::iter::repeat_n(c, fill));
        out.push_str(text);
    }
}

/// Pads a number whose sign (if any) is in `sign`: zero padding goes between
/// the sign and the digits, as Go does.
fn pad_number(out: &mut String, sign: &str, digits: &str, spec: &Spec, allow_zero: bool) {
    if spec.zero && allow_zero && !spec.minus {
        let width = spec.width.unwrap_or(0);
        let len = sign.chars().count() + digits.chars().count();
        out.push_str(sign);
        if len < width {
            out.extend(std::iter::repeat_n('0', width - len));
        }
        out.push_str(digits);
    } else {
        let spec = Spec {
            zero: false,
            ..spec.clone()
        };
        pad(out, &format!("{sign}{digits}"), &spec);
    }
}

fn sign_of(negative: bool, spec: &Spec) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn fmt_int(out: &mut String, i: i64, verb: char, spec: &Spec, value: &Value) {
    let magnitude = i.unsigned_abs();
    let mut digits = match verb {
        'v' | 'd' => magnitude.to_string(),
        'b' => format!("{magnitude:b}"),
        'o' | 'O' => format!("{magnitude:o}"),
        'x' => format!("{magnitude:x}"),
        'X' => format!("{magnitude:X}"),
        'c' => {
            let c = char::from_u32(i as u32).filter(|_| (0..=0x10ffff).contains(&i));
            pad(out, &c.unwrap_or('\u{fffd}').to_string(), spec);
            return;
        }
        'q' => {
            let c = char::from_u32(i as u32)
                .filter(|_| (0..=0x10ffff).contains(&i))
                .unwrap_or('\u{fffd}');
            pad(out, &quote_rune(c), spec);
            return;
        }
        'U' => {
            pad(out, &format!("U+{magnitude:04X}"), spec);
            return;
        }
        _ => return bad_verb(out, verb, value),
    };
    if let Some(p) = spec.precision {
        if p == 0 && i == 0 {
            digits.clear();
        }
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    let prefix = match verb {
        'x' if spec.sharp => "0x",
        'X' if spec.sharp => "0X",
        'o' if spec.sharp && !digits.starts_with('0') => "0",
        'O' => "0o",
        'b' if spec.sharp => "0b",
        _ => "",
    };
    let sign = format!("{}{prefix}", sign_of(i < 0, spec));
    pad_number(out, &sign, &digits, spec, spec.precision.is_none());
}

fn fmt_str(out: &mut String, s: &str, verb: char, spec: &Spec, value: &Value) {
    match verb {
        'v' | 's' => {
            let text: String = match spec.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            pad(out, &text, spec)
        }
        'q' => {
            let text: String = match spec.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            if spec.sharp
                && !text.contains('`')
                && text.chars().all(|c| c == '\t' || !c.is_control())
            {
                pad(out, &format!("`{text}`"), spec)
            } else {
                pad(out, &quote(&text), spec)
            }
        }
        'x' | 'X' => {
            let mut hex = String::new();
            if spec.sharp && !spec.space {
                hex.push_str(if verb == 'x' { "0x" } else { "0X" });
            }
            for (i, b) in s.bytes().enumerate() {
                if i > 0 && spec.space {
                    hex.push(' ');
                }
                if spec.sharp && spec.space {
                    hex.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    let _ = write!(hex, "{b:02x}");
                } else {
                    let _ = write!(hex, "{b:02X}");
                }
            }
            pad(out, &hex, spec)
        }
        _ => bad_verb(out, verb, value),
    }
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_char(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `strconv.QuoteRune`.
fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    escape_char(&mut out, c, '\'');
    out.push('\'');
    out
}

fn escape_char(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if !is_go_printable(c) => {
            if (c as u32) < 0x10000 {
                let _ = write!(out, "\\u{:04x}", c as u32);
            } else {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
        c => out.push(c),
    }
}

/// An approximation of Go's `unicode.IsPrint`: no control, format or
/// separator characters other than the ASCII space.
pub fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
        || ('\u{e000}'..='\u{f8ff}').contains(&c))
}

/// A float's decimal digits (no leading zeros) and the position of the
/// decimal point relative to them, like Go's `strconv` `decimalSlice`.
struct Digits {
    digits: Vec<u8>,
    /// The value is 0.d1d2d3... × 10^dp.
    dp: i32,
}

/// Parses Rust's `{:e}` output (e.g. `1.2345e-7`) into digits and point.
fn parse_exp_form(text: &str) -> Digits {
    let (mantissa, exp) = text.split_once('e').unwrap_or((text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits.is_empty() {
        return Digits { digits, dp: 0 };
    }
    Digits {
        digits,
        dp: exp + 1,
    }
}

/// Shortest digits that round-trip `f` (non-negative, finite).
fn shortest_digits(f: f64) -> Digits {
    parse_exp_form(&format!("{f:e}"))
}

/// `f` rounded to `n` significant digits (at least 1), trailing zeros trimmed.
fn rounded_digits(f: f64, n: usize) -> Digits {
    let n = n.max(1);
    parse_exp_form(&format!("{:.*e}", n - 1, f))
}

/// Go's `fmtE`: d.ddddde±XX with `prec` digits after the point.
fn layout_e(d: &Digits, prec: usize, upper: bool) -> String {
    let mut out = String::new();
    out.push(d.digits.first().map_or('0', |&c| c as char));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(d.digits.get(i).map_or('0', |&c| c as char));
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if d.digits.is_empty() { 0 } else { d.dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.unsigned_abs());
    out
}

/// Go's `fmtF`: integer part, then `prec` digits after the point.
fn layout_f(d: &Digits, prec: usize) -> String {
    let mut out = String::new();
    if d.dp > 0 {
        let dp = d.dp as usize;
        for i in 0..dp {
            out.push(d.digits.get(i).map_or('0', |&c| c as char));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            let j = d.dp as i64 + i as i64 - 1;
            let c = if j >= 0 {
                d.digits.get(j as usize).map_or('0', |&c| c as char)
            } else {
                '0'
            };
            out.push(c);
        }
    }
    out
}

/// Go's `%g` layout: `prec` is `None` for the shortest representation.
fn layout_g(f: f64, prec: Option<usize>, upper: bool) -> String {
    let (d, mut p, eprec) = match prec {
        None => {
            let d = shortest_digits(f);
            let p = d.digits.len();
            (d, p, 6)
        }
        Some(p) => {
            let p = p.max(1);
            let d = rounded_digits(f, p);
            let mut eprec = p as i32;
            if eprec > d.digits.len() as i32 && d.digits.len() as i32 >= d.dp {
                eprec = d.digits.len() as i32;
            }
            (d, p, eprec)
        }
    };
    let exp = d.dp - 1;
    if exp < -4 || exp >= eprec {
        if p > d.digits.len() {
            p = d.digits.len();
        }
        return layout_e(&d, p.saturating_sub(1), upper);
    }
    if p as i32 > d.dp {
        p = d.digits.len();
    }
    layout_f(&d, (p as i32 - d.dp).max(0) as usize)
}

fn fmt_float(out: &mut String, f: f64, verb: char, spec: &Spec) {
    if f.is_nan() || f.is_infinite() {
        let text = if f.is_nan() {
            if spec.plus {
                "+NaN"
            } else if spec.space {
                " NaN"
            } else {
                "NaN"
            }
        } else if f < 0.0 {
            "-Inf"
        } else if spec.plus || !spec.space {
            "+Inf"
        } else {
            " Inf"
        };
        let spec = Spec {
            zero: false,
            ..spec.clone()
        };
        return pad(out, text, &spec);
    }
    let negative = f.is_sign_negative();
    let a = f.abs();
    let body = match verb {
        'e' | 'E' => {
            let p = spec.precision.unwrap_or(6);
            let d = parse_exp_form(&format!("{:.*e}", p, a));
            layout_e(&d, p, verb == 'E')
        }
        'f' | 'F' => format!("{:.*}", spec.precision.unwrap_or(6), a),
        _ => {
            let text = layout_g(a, spec.precision, verb == 'G');
            if spec.sharp {
                sharp_g(text, spec.precision.unwrap_or(6).max(1))
            } else {
                text
            }
        }
    };
    pad_number(out, sign_of(negative, spec), &body, spec, true);
}

/// Go's `#` flag for `%g`: keep a decimal point and pad the mantissa with
/// zeros to `digits` significant digits.
fn sharp_g(text: String, digits: usize) -> String {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(pos) => text.split_at(pos),
        None => (text.as_str(), ""),
    };
    let mut mantissa = mantissa.to_string();
    let significant = mantissa
        .trim_start_matches(['0', '.'])
        .chars()
        .filter(char::is_ascii_digit)
        .count();
    let significant = if significant == 0 { 1 } else { significant };
    if !mantissa.contains('.') {
        mantissa.push('.');
    }
    for _ in significant..digits {
        mantissa.push('0');
    }
    format!("{mantissa}{exponent}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_v_matches_go() {
        for (f, want) in [
            (1000000.0, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e21, "1e+21"),
            (1.5, "1.5"),
            (0.0, "0"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (100.0, "100"),
            (1e100, "1e+100"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(format_v(&Value::Float(f)), want, "{f}");
        }
    }

    #[test]
    fn printf_verbs_match_go() {
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            (
                "%5.2f|%-5d|%x|%q|%v|%e|%g",
                vec![
                    3.14158.into(),
                    Value::Int(42),
                    Value::Int(255),
                    "hi".into(),
                    1.5.into(),
                    1234.5678.into(),
                    0.000012345.into(),
                ],
                " 3.14|42   |ff|\"hi\"|1.5|1.234568e+03|1.2345e-05",
            ),
            ("%.4g", vec![1234567.0.into()], "1.235e+06"),
            ("%.4g", vec![1.0.into()], "1"),
            ("%.4g", vec![0.0.into()], "0"),
            ("%.4g", vec![123.456.into()], "123.5"),
            ("%d", vec!["x".into()], "%!d(string=x)"),
            ("%d %d", vec![Value::Int(1)], "1 %!d(MISSING)"),
            ("%d", vec![Value::Int(1), "a".into()], "1%!(EXTRA string=a)"),
            (
                "%05d|%+d|% d",
                vec![Value::Int(-42), Value::Int(3), Value::Int(3)],
                "-0042|+3| 3",
            ),
            (
                "%#x|%X|%o|%#o",
                vec![
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8),
                    Value::Int(8),
                ],
                "0xff|FF|10|010",
            ),
            (
                "%c|%q|%U",
                vec![Value::Int(65), Value::Int(65), Value::Int(65)],
                "A|'A'|U+0041",
            ),
            ("%t|%v", vec![true.into(), Value::Nil], "true|<nil>"),
            ("%s", vec![Value::Nil], "%!s(<nil>)"),
            (
                "%08.3f|%-8.2f|",
                vec![(-3.14158).into(), 2.5.into()],
                "-003.142|2.50    |",
            ),
            ("%x|% X", vec!["hi".into(), "hi".into()], "6869|68 69"),
            (
                "%10s|%-10s|",
                vec!["abc".into(), "abc".into()],
                "       abc|abc       |",
            ),
            ("%.2s", vec!["abcdef".into()], "ab"),
            ("%3c|%%|%", vec![Value::Int(120)], "  x|%|%!(NOVERB)"),
            (
                "%v",
                vec![Value::from(vec![Value::Int(1), "a".into()])],
                "[1 a]",
            ),
            ("%E", vec![123456.0.into()], "1.234560E+05"),
            ("%G", vec![1e-7.into()], "1E-07"),
            ("%q", vec!["a\nb\"c".into()], "\"a\\nb\\\"c\""),
        ];
        for (format, args, want) in cases {
            assert_eq!(sprintf(format, &args), want, "{format}");
        }
    }

    #[test]
    fn sprint_spaces_between_non_strings() {
        let args = vec![
            Value::Int(1),
            Value::Int(2),
            "a".into(),
            Value::Int(3),
            "b".into(),
            "c".into(),
        ];
        assert_eq!(sprint(&args), "1 2a3bc");
        assert_eq!(sprintln(&args), "1 2 a 3 b c\n");
    }
}
