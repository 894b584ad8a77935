//! Alertmanager's matcher syntax: `foo="bar", baz=~"x.*"`, optionally in
//! braces, values quoted or bare.
//!
//! This is the syntax of the route `matchers` field, of inhibit rules'
//! `source_matchers`/`target_matchers`, of `amtool` arguments and of the
//! API's `filter` parameter. The rules follow Alertmanager 0.25's parser:
//! the text is split at commas outside double quotes; each piece is
//! `name op value` with `op` one of `=`, `!=`, `=~`, `!~`; a quoted value
//! may escape `\"`, `\\` and `\n` (any other backslash is kept literally);
//! a bare value runs to the end of the piece with surrounding spaces
//! trimmed.

use model::matcher::{MatchOp, Matcher};

/// Parses a list of matchers, e.g. `{team="ml", severity=~"crit.*"}`.
pub fn parse_matchers(text: &str) -> Result<Vec<Matcher>, String> {
    let inner = text.strip_prefix('{').unwrap_or(text);
    let inner = inner.strip_suffix('}').unwrap_or(inner);
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut inside_quotes = false;
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            ',' if !inside_quotes => {
                pieces.push(std::mem::take(&mut piece));
                continue;
            }
            '"' => {
                if escaped {
                    escaped = false;
                } else {
                    inside_quotes = !inside_quotes;
                }
            }
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        piece.push(c);
    }
    let last = piece.trim();
    if !last.is_empty() {
        pieces.push(last.to_string());
    }
    pieces.iter().map(|piece| parse_matcher(piece)).collect()
}

/// Parses one matcher, e.g. `severity=~"crit.*"` or `team=ml`.
pub fn parse_matcher(text: &str) -> Result<Matcher, String> {
    let bad = || format!("bad matcher format: {text}");
    let trimmed = text.trim_start();
    let name_end = trimmed
        .char_indices()
        .find(|&(index, c)| {
            !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (index > 0 && c.is_ascii_digit()))
        })
        .map(|(index, _)| index)
        .unwrap_or(trimmed.len());
    if name_end == 0 {
        return Err(bad());
    }
    let name = &trimmed[..name_end];
    let rest = trimmed[name_end..].trim_start();
    let (op, raw) = if let Some(raw) = rest.strip_prefix("=~") {
        (MatchOp::RegexMatch, raw)
    } else if let Some(raw) = rest.strip_prefix("!~") {
        (MatchOp::RegexNoMatch, raw)
    } else if let Some(raw) = rest.strip_prefix("!=") {
        (MatchOp::NotEqual, raw)
    } else if let Some(raw) = rest.strip_prefix('=') {
        (MatchOp::Equal, raw)
    } else {
        return Err(bad());
    };
    let raw = raw.trim();
    let value = unescape_value(raw)?;
    Matcher::new(op, name, value).map_err(|error| error.to_string())
}

/// The value of a matcher as written after its operator.
fn unescape_value(raw: &str) -> Result<String, String> {
    let unescaped_quote = || format!("matcher value contains unescaped double quote: {raw}");
    let (body, mut expect_closing_quote) = match raw.strip_prefix('"') {
        Some(body) => (body, true),
        None => (raw, false),
    };
    let mut value = String::with_capacity(body.len());
    let mut escaped = false;
    let mut chars = body.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        let is_last = chars.peek().is_none();
        if escaped {
            escaped = false;
            match c {
                'n' => value.push('\n'),
                '"' | '\\' => value.push(c),
                _ => {
                    value.push('\\');
                    value.push(c);
                }
            }
            continue;
        }
        match c {
            '\\' if !is_last => escaped = true,
            '"' => {
                if !expect_closing_quote || !is_last {
                    return Err(unescaped_quote());
                }
                expect_closing_quote = false;
            }
            _ => value.push(c),
        }
    }
    if expect_closing_quote {
        return Err(unescaped_quote());
    }
    Ok(value)
}

/// Writes matchers as Alertmanager does, sorted, e.g. `{a="1",b=~"x"}`.
pub fn format_matchers(matchers: &[Matcher]) -> String {
    let mut sorted: Vec<&Matcher> = matchers.iter().collect();
    sorted.sort_by(|a, b| compare_matchers(a, b));
    let parts: Vec<String> = sorted.iter().map(|m| m.to_string()).collect();
    format!("{{{}}}", parts.join(","))
}

/// Alertmanager's matcher order: by name, then value, then operator.
pub fn compare_matchers(a: &Matcher, b: &Matcher) -> std::cmp::Ordering {
    a.name()
        .cmp(b.name())
        .then_with(|| a.value().cmp(b.value()))
        .then_with(|| op_rank(a.op()).cmp(&op_rank(b.op())))
}

fn op_rank(op: MatchOp) -> u8 {
    match op {
        MatchOp::Equal => 0,
        MatchOp::NotEqual => 1,
        MatchOp::RegexMatch => 2,
        MatchOp::RegexNoMatch => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(text: &str) -> String {
        match parse_matchers(text) {
            Ok(matchers) => format_matchers(&matchers),
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn the_syntaxes_amtool_accepts() {
        assert_eq!(show(r#"foo="bar""#), r#"{foo="bar"}"#);
        assert_eq!(
            show(r#"{team="ml", severity=~"crit.*"}"#),
            r#"{severity=~"crit.*",team="ml"}"#
        );
        assert_eq!(show("team=ml"), r#"{team="ml"}"#);
        assert_eq!(show(" team != ml "), r#"{team!="ml"}"#);
        assert_eq!(show(r#"a="x,y",b!~"z""#), r#"{a="x,y",b!~"z"}"#);
        assert_eq!(show(r#"a="q\"uote""#), r#"{a="q\"uote"}"#);
        assert_eq!(show(r#"a="new\nline""#), r#"{a="new\nline"}"#);
        assert_eq!(show(r#"a="back\d""#), r#"{a="back\\d"}"#);
        assert_eq!(show("a="), r#"{a=""}"#);
        assert_eq!(show(""), "{}");
    }

    #[test]
    fn bad_matchers_are_errors() {
        assert_eq!(show("bad"), "error: bad matcher format: bad");
        assert_eq!(show("1a=b"), "error: bad matcher format: 1a=b");
        assert!(show(r#"a="unterminated"#).starts_with("error: matcher value contains"));
        assert!(show(r#"a="x"y""#).starts_with("error: matcher value contains"));
        assert!(show("a=~\"(\"").starts_with("error: invalid regular expression"));
        assert_eq!(show("a=b,"), r#"{a="b"}"#);
        assert!(show("a=b,,c=d").starts_with("error: bad matcher format"));
    }
}
