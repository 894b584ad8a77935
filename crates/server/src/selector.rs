//! A parser for series selectors, the `match[]` parameter of the metadata
//! and export endpoints: `metric`, `metric{...}`, `{...}` and
//! `{"utf8.metric", ...}`, with the four match operators and Go-quoted
//! strings (`"..."`, `'...'` with escapes, raw backtick strings).
//!
//! This is a stopgap until the PromQL crate's parser lands; its errors
//! imitate Prometheus's: `1:COLUMN: parse error: MESSAGE`, the column
//! counted in bytes from 1.

use model::{METRIC_NAME, MatchOp, Matcher};

/// Parses one series selector into matchers. The metric name, when given,
/// becomes the first matcher (`__name__="metric"`).
pub fn parse_series_selector(input: &str) -> Result<Vec<Matcher>, String> {
    let mut parser = SelectorParser {
        input,
        bytes: input.as_bytes(),
        pos: 0,
    };
    parser.selector()
}

struct SelectorParser<'a> {
    input: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl SelectorParser<'_> {
    fn error_at(&self, pos: usize, message: impl std::fmt::Display) -> String {
        format!("1:{}: parse error: {message}", pos + 1)
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// A short description of what sits at the cursor, for messages.
    fn describe_here(&self) -> String {
        match self
            .input
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
        {
            None => "end of input".to_string(),
            Some(c) => format!("character {c:?}"),
        }
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, String> {
        self.skip_whitespace();
        let mut matchers = Vec::new();
        let mut name_from_identifier = None;
        match self.peek() {
            Some(b) if is_metric_name_start(b) => {
                let name = self.identifier(true);
                name_from_identifier = Some(name.to_string());
                matchers.push(Matcher::equal(METRIC_NAME, name));
                self.skip_whitespace();
            }
            Some(b'{') => {}
            None => return Err(self.error_at(self.pos, "unexpected end of input")),
            Some(_) => {
                return Err(self.error_at(
                    self.pos,
                    format!("unexpected {} in series selector", self.describe_here()),
                ));
            }
        }
        if self.peek() == Some(b'{') {
            self.pos += 1;
            self.braces(&mut matchers, name_from_identifier.as_deref())?;
            self.skip_whitespace();
        }
        if self.pos < self.bytes.len() {
            return Err(self.error_at(
                self.pos,
                format!("unexpected {} after series selector", self.describe_here()),
            ));
        }
        Ok(matchers)
    }

    /// The inside of `{...}`, the opening brace consumed.
    fn braces(
        &mut self,
        matchers: &mut Vec<Matcher>,
        name_outside: Option<&str>,
    ) -> Result<(), String> {
        let mut metric_name_set = name_outside.map(str::to_string);
        loop {
            self.skip_whitespace();
            let item_start = self.pos;
            let label_name = match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b) if is_label_name_start(b) => self.identifier(false).to_string(),
                Some(b'"' | b'\'' | b'`') => self.quoted()?,
                None => {
                    return Err(self.error_at(self.pos, "unexpected end of input inside braces"));
                }
                Some(_) => {
                    return Err(self.error_at(
                        self.pos,
                        format!("unexpected {} inside braces", self.describe_here()),
                    ));
                }
            };
            self.skip_whitespace();
            let op = match (self.peek(), self.bytes.get(self.pos + 1).copied()) {
                (Some(b'='), Some(b'~')) => Some(MatchOp::RegexMatch),
                (Some(b'!'), Some(b'~')) => Some(MatchOp::RegexNoMatch),
                (Some(b'!'), Some(b'=')) => Some(MatchOp::NotEqual),
                (Some(b'='), _) => Some(MatchOp::Equal),
                _ => None,
            };
            match op {
                Some(op) => {
                    self.pos += if op == MatchOp::Equal { 1 } else { 2 };
                    self.skip_whitespace();
                    let value_start = self.pos;
                    let value = match self.peek() {
                        Some(b'"' | b'\'' | b'`') => self.quoted()?,
                        _ => {
                            return Err(self.error_at(
                                value_start,
                                format!(
                                    "unexpected {} in label matching, expected string",
                                    self.describe_here()
                                ),
                            ));
                        }
                    };
                    let matcher = Matcher::new(op, label_name, value)
                        .map_err(|e| self.error_at(value_start, e))?;
                    matchers.push(matcher);
                }
                None => {
                    // A lone quoted string is the metric name.
                    let was_quoted =
                        matches!(self.bytes.get(item_start), Some(b'"' | b'\'' | b'`'));
                    if !was_quoted {
                        return Err(self.error_at(
                            self.pos,
                            format!(
                                "unexpected {} in label matching, expected label matching operator",
                                self.describe_here()
                            ),
                        ));
                    }
                    if let Some(previous) = &metric_name_set {
                        return Err(self.error_at(
                            item_start,
                            format!(
                                "metric name must not be set twice: {previous:?} or {label_name:?}"
                            ),
                        ));
                    }
                    metric_name_set = Some(label_name.clone());
                    matchers.insert(0, Matcher::equal(METRIC_NAME, label_name));
                }
            }
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => {
                    return Err(self.error_at(self.pos, "unexpected end of input inside braces"));
                }
                Some(_) => {
                    return Err(self.error_at(
                        self.pos,
                        format!(
                            "unexpected {} in label matching, expected \",\" or \"}}\"",
                            self.describe_here()
                        ),
                    ));
                }
            }
        }
    }

    /// An identifier at the cursor; metric names may contain colons.
    fn identifier(&mut self, metric_name: bool) -> &str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || b == b'_' || (metric_name && b == b':') {
                self.pos += 1;
            } else {
                break;
            }
        }
        // Only ASCII bytes were consumed, so the slice is on char boundaries.
        self.input.get(start..self.pos).unwrap_or("")
    }

    /// A quoted string at the cursor, with Go's escapes for `"` and `'`.
    fn quoted(&mut self) -> Result<String, String> {
        let start = self.pos;
        let Some(quote) = self.peek() else {
            return Err(self.error_at(start, "unexpected end of input"));
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self.input.get(self.pos..).unwrap_or("");
            let Some(c) = rest.chars().next() else {
                return Err(self.error_at(start, "unterminated quoted string"));
            };
            self.pos += c.len_utf8();
            if c as u32 == u32::from(quote) {
                return Ok(out);
            }
            if quote == b'`' {
                out.push(c);
                continue;
            }
            match c {
                '\n' => return Err(self.error_at(start, "unterminated quoted string")),
                '\\' => {
                    let escaped = self.escape(quote, start)?;
                    out.push(escaped);
                }
                c => out.push(c),
            }
        }
    }

    /// One escape sequence after a backslash, as Go's `strconv.Unquote`.
    fn escape(&mut self, quote: u8, string_start: usize) -> Result<char, String> {
        let escape_start = self.pos - 1;
        let Some(c) = self.peek() else {
            return Err(self.error_at(string_start, "unterminated quoted string"));
        };
        self.pos += 1;
        let simple = match c {
            b'a' => Some('\u{7}'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            b'v' => Some('\u{b}'),
            b'\\' => Some('\\'),
            c if c == quote => Some(char::from(c)),
            _ => None,
        };
        if let Some(ch) = simple {
            return Ok(ch);
        }
        let (digits, radix) = match c {
            b'x' => (2, 16),
            b'u' => (4, 16),
            b'U' => (8, 16),
            b'0'..=b'7' => {
                self.pos -= 1;
                (3, 8)
            }
            _ => {
                return Err(self.error_at(escape_start, "unknown escape sequence"));
            }
        };
        let text = self
            .input
            .get(self.pos..self.pos + digits)
            .filter(|t| t.chars().all(|c| c.is_digit(radix)))
            .ok_or_else(|| self.error_at(escape_start, "invalid escape sequence"))?;
        self.pos += digits;
        let code = u32::from_str_radix(text, radix)
            .map_err(|_| self.error_at(escape_start, "invalid escape sequence"))?;
        if (c == b'x' || radix == 8) && code > 0xff {
            return Err(self.error_at(escape_start, "octal escape value > 255"));
        }
        // Go turns \x and octal escapes into bytes; bytes above 0x7f would
        // make invalid UTF-8 on their own, which label values may not hold.
        if (c == b'x' || radix == 8) && code > 0x7f {
            return Err(self.error_at(
                escape_start,
                "invalid UTF-8 in escape sequence (byte escapes above \\x7f are not supported)",
            ));
        }
        char::from_u32(code).ok_or_else(|| {
            self.error_at(
                escape_start,
                "escape sequence is an invalid Unicode code point",
            )
        })
    }
}

fn is_metric_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_label_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(matchers: &[Matcher]) -> Vec<String> {
        matchers.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn accepts_selector_forms() {
        let cases: &[(&str, &[&str])] = &[
            ("up", &[r#"__name__="up""#]),
            ("  up  ", &[r#"__name__="up""#]),
            ("ns:rate5m", &[r#"__name__="ns:rate5m""#]),
            ("up{}", &[r#"__name__="up""#]),
            (
                r#"up{job="a",instance!="b",}"#,
                &[r#"__name__="up""#, r#"job="a""#, r#"instance!="b""#],
            ),
            (
                r#"{job=~"a.*", env!~'prod'}"#,
                &[r#"job=~"a.*""#, r#"env!~"prod""#],
            ),
            (
                r#"{"utf8.metric", job="x"}"#,
                &[r#"__name__="utf8.metric""#, r#"job="x""#],
            ),
            (
                r#"{job="x", "utf8.metric"}"#,
                &[r#"__name__="utf8.metric""#, r#"job="x""#],
            ),
            (r#"{"my.label"="v"}"#, &[r#"my.label="v""#]),
            (
                r#"{a="\"\n\t\\\x41\u00e9\101"}"#,
                &["a=\"\\\"\\n\\t\\\\Aé\x41\""],
            ),
            (r#"{a='it\'s'}"#, &[r#"a="it's""#]),
            (r"{a=`raw\d+`}", &[r#"a="raw\\d+""#]),
            (" { a = \"1\" } ", &[r#"a="1""#]),
        ];
        for (input, want) in cases {
            let got =
                parse_series_selector(input).unwrap_or_else(|e| panic!("{input:?} failed: {e}"));
            assert_eq!(render(&got), *want, "input {input:?}");
        }
    }

    #[test]
    fn rejects_bad_selectors_with_positions() {
        let cases: &[(&str, &str)] = &[
            ("", "1:1: parse error: unexpected end of input"),
            (
                "{",
                "1:2: parse error: unexpected end of input inside braces",
            ),
            (
                "up{job=\"a\"",
                "1:11: parse error: unexpected end of input inside braces",
            ),
            (
                "up{job}",
                "1:7: parse error: unexpected character '}' in label matching, expected label matching operator",
            ),
            (
                "up{job=a}",
                "1:8: parse error: unexpected character 'a' in label matching, expected string",
            ),
            (
                "up{job=\"a}",
                "1:8: parse error: unterminated quoted string",
            ),
            (
                "up{job=\"a\" x=\"b\"}",
                "1:12: parse error: unexpected character 'x' in label matching, expected \",\" or \"}\"",
            ),
            (
                "up x",
                "1:4: parse error: unexpected character 'x' after series selector",
            ),
            (
                "1up",
                "1:1: parse error: unexpected character '1' in series selector",
            ),
            (
                "up{\"other\"}",
                "1:4: parse error: metric name must not be set twice: \"up\" or \"other\"",
            ),
            ("{a=\"\\q\"}", "1:5: parse error: unknown escape sequence"),
            (
                "{a=\"\\xff\"}",
                "1:5: parse error: invalid UTF-8 in escape sequence (byte escapes above \\x7f are not supported)",
            ),
            (
                "{a=\"\\uD800\"}",
                "1:5: parse error: escape sequence is an invalid Unicode code point",
            ),
        ];
        for (input, want) in cases {
            let got = parse_series_selector(input).map(|m| render(&m));
            assert_eq!(got, Err(want.to_string()), "input {input:?}");
        }
        let regex_error = parse_series_selector("{a=~\"(\"}").unwrap_err();
        assert!(
            regex_error.starts_with("1:5: parse error: invalid regular expression"),
            "{regex_error}"
        );
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for input in [
            "{\"é",
            "{a=\"\\",
            "{a=\"\\u12",
            "é",
            "{é=\"1\"}",
            "{a=`",
            "{a!",
            "{a=~",
        ] {
            assert!(parse_series_selector(input).is_err(), "{input:?}");
        }
    }
}
