//! Rule groups as a Prometheus rule file (YAML), for `osprey slo
//! generate`: the file a plain Prometheus (or `promtool check rules`)
//! loads.
//!
//! The layout follows Sloth's: `record`/`alert`, `expr`, `labels`,
//! `annotations`, multi-line expressions as literal blocks. Scalars are
//! written plain when YAML reads them back as the same string, and
//! double-quoted otherwise.

use rules::{GroupSpec, RuleKind};

/// The rule file holding `groups`, with `header` as `#` comment lines.
pub fn rule_file(header: &str, groups: &[GroupSpec]) -> String {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    if !header.is_empty() {
        out.push('\n');
    }
    out.push_str("groups:\n");
    for group in groups {
        out.push_str(&format!("- name: {}\n", scalar(&group.name)));
        if let Some(interval) = group.interval_ms {
            out.push_str(&format!(
                "  interval: {}\n",
                model::duration::format_duration_ms(interval)
            ));
        }
        out.push_str("  rules:\n");
        for rule in &group.rules {
            match &rule.kind {
                RuleKind::Recording { record } => {
                    out.push_str(&format!("  - record: {}\n", scalar(record)))
                }
                RuleKind::Alerting { alert, .. } => {
                    out.push_str(&format!("  - alert: {}\n", scalar(alert)))
                }
            }
            out.push_str(&format!("    expr: {}", block(&rule.expr, 6)));
            if let RuleKind::Alerting {
                for_ms,
                keep_firing_for_ms,
                ..
            } = &rule.kind
            {
                if *for_ms > 0 {
                    out.push_str(&format!(
                        "    for: {}\n",
                        model::duration::format_duration_ms(*for_ms)
                    ));
                }
                if *keep_firing_for_ms > 0 {
                    out.push_str(&format!(
                        "    keep_firing_for: {}\n",
                        model::duration::format_duration_ms(*keep_firing_for_ms)
                    ));
                }
            }
            mapping(&mut out, "labels", &rule.labels);
            if let RuleKind::Alerting { annotations, .. } = &rule.kind {
                mapping(&mut out, "annotations", annotations);
            }
        }
    }
    out
}

fn mapping(out: &mut String, name: &str, entries: &[(String, String)]) {
    if entries.is_empty() {
        return;
    }
    out.push_str(&format!("    {name}:\n"));
    for (key, value) in entries {
        out.push_str(&format!("      {}: {}", scalar(key), block(value, 8)));
    }
}

/// A value ending its line: a literal block for multi-line text that a
/// block keeps intact, a scalar otherwise.
fn block(text: &str, indent: usize) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let literal_ok = text.contains('\n')
        && !text.starts_with([' ', '\t', '\n'])
        && !text.contains("\n\n")
        && lines
            .iter()
            .all(|l| !l.ends_with([' ', '\t']) && !l.contains('\t'))
        && !text.contains('\r');
    if !literal_ok {
        return format!("{}\n", scalar(text));
    }
    let (chomp, body) = match text.strip_suffix('\n') {
        Some(body) => ("|", body),
        None => ("|-", text),
    };
    let pad = " ".repeat(indent);
    let mut out = format!("{chomp}\n");
    for line in body.split('\n') {
        out.push_str(&pad);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A single-line scalar: plain when YAML reads it back as this string,
/// double-quoted (JSON escapes, which YAML's double-quoted style reads)
/// otherwise.
pub fn scalar(text: &str) -> String {
    if is_plain_safe(text) {
        return text.to_string();
    }
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_plain_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    if first.is_ascii_digit() {
        return is_duration_like(text);
    }
    if !(first.is_ascii_alphabetic() || first == '_' || first == '/') {
        return false;
    }
    let lower = text.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    ) {
        return false;
    }
    text.chars().all(|c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | ' ' | '(' | ')')
    }) && !text.contains(": ")
        && !text.ends_with([' ', ':'])
        && !text.contains(" #")
}

/// `5m`, `30d`, `1h30m`: digits and letters in turns, ending in a
/// letter, which no YAML version reads as anything but a string (`1e3`
/// aside, which is refused).
fn is_duration_like(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut expect_digit = true;
    let mut index = 0;
    while index < bytes.len() {
        let start = index;
        if expect_digit {
            while index < bytes.len() && bytes[index].is_ascii_digit() {
                index += 1;
            }
        } else {
            while index < bytes.len() && bytes[index].is_ascii_lowercase() {
                index += 1;
            }
        }
        if index == start {
            return false;
        }
        expect_digit = !expect_digit;
    }
    expect_digit && !text.contains('e')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_back_as_written() {
        for text in [
            "sloth-slo-sli-recordings-a-b",
            "slo:sli_error:ratio_rate5m",
            "2",
            "#alerts",
            "true",
            "a: b",
            "",
            "with \"quotes\" and \\",
            "(page) {{$labels.sloth_service}}",
            "x #y",
            "tab\there",
            "5m",
            "1h30m",
            "1e3",
            "12",
            "2024-01-01",
        ] {
            let yaml = format!("v: {}", block(text, 2));
            let node = yaml::parse_document(&yaml).unwrap();
            let yaml::NodeValue::Mapping(entries) = node.value else {
                panic!("not a mapping: {yaml}");
            };
            assert_eq!(entries[0].1.as_string().unwrap(), text, "{yaml}");
        }
        assert_eq!(scalar("sloth-slo"), "sloth-slo");
        assert_eq!(scalar("2"), "\"2\"");
        assert_eq!(scalar("30d"), "30d");
        assert_eq!(scalar("1e3"), "\"1e3\"");
    }

    #[test]
    fn multi_line_expressions_are_literal_blocks() {
        for text in ["a\n/\nb\n", "a\nb", "  lead\nx\n", "a \nb\n", "a\n\nb\n"] {
            let yaml = format!("v: {}", block(text, 2));
            let node = yaml::parse_document(&yaml).unwrap();
            let yaml::NodeValue::Mapping(entries) = node.value else {
                panic!("not a mapping: {yaml}");
            };
            assert_eq!(entries[0].1.as_string().unwrap(), text, "{yaml}");
        }
        assert_eq!(block("a\nb\n", 2), "|\n  a\n  b\n");
    }
}
