//! Cases whose expected output came from real Prometheus: each line of
//! `promtool_cases.txt` is `TEMPLATE<TAB>=> "JSON STRING"`, the template
//! expanded as an alert annotation by `promtool test rules` (Prometheus
//! 2.42's template functions, `missingkey=zero`). `cases_match_osprey`
//! checks this crate against the table; `cases_match_promtool` re-checks
//! the table against promtool itself when it is installed.

use std::collections::BTreeMap;
use std::process::Command;
use template::{MissingKey, Options, Templates, Value, funcs};

/// Prometheus prepends these definitions to every alert template.
const PREFIX: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

fn cases() -> Vec<(String, String)> {
    let text = include_str!("promtool_cases.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (template, expected) = line
                .split_once("\t=> ")
                .expect("table line has a tab and =>");
            (template.to_string(), decode_json_string(expected))
        })
        .collect()
}

/// Decodes a JSON string literal (the table's expected values).
fn decode_json_string(s: &str) -> String {
    let inner = s
        .trim()
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .expect("quoted");
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().expect("escape") {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                let mut code = u32::from_str_radix(&hex, 16).expect("hex");
                if (0xd800..0xdc00).contains(&code) {
                    // A surrogate pair: `\uD83D\uDE00`.
                    let low: String = chars.by_ref().skip(2).take(4).collect();
                    let low = u32::from_str_radix(&low, 16).expect("hex");
                    code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                }
                out.push(char::from_u32(code).expect("char"));
            }
            other => out.push(other),
        }
    }
    out
}

/// Encodes a string as a JSON (and so YAML double-quoted) literal.
fn encode_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Expands `text` the way Prometheus expands an alert annotation for the
/// series `up{job="j",instance="host.example.com:9100"}` at value 1.5e6.
fn expand(text: &str) -> String {
    let labels: BTreeMap<String, String> = [
        ("__name__", "up"),
        ("instance", "host.example.com:9100"),
        ("job", "j"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut data = BTreeMap::new();
    data.insert("Labels".to_string(), Value::from(labels));
    data.insert(
        "ExternalLabels".to_string(),
        Value::from(BTreeMap::<String, String>::new()),
    );
    data.insert("ExternalURL".to_string(), Value::from(""));
    data.insert("Value".to_string(), Value::Float(1.5e6));
    let mut set = Templates::new(
        funcs::prometheus(),
        Options {
            missing_key: MissingKey::Zero,
        },
    );
    let name = "__alert_A";
    let full = format!("{PREFIX}{text}");
    let result = set
        .parse(name, &full)
        .and_then(|()| set.execute(name, &Value::from(data)));
    match result {
        Ok(out) => out,
        Err(e) => format!("<error expanding template: error executing template {name}: {e}>"),
    }
}

#[test]
fn cases_match_osprey() {
    let mut failures = Vec::new();
    for (template, expected) in cases() {
        let got = expand(&template);
        if got != expected {
            failures.push(format!("{template}\n   want {expected:?}\n    got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the promtool cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn cases_match_promtool() {
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    let available = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            !required,
            "promtool is required (OSPREY_REQUIRE_EXTERNAL=1) but was not found"
        );
        eprintln!("skipping: promtool not found");
        return;
    }
    let dir = std::env::temp_dir().join(format!("osprey-template-promtool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cases = cases();
    let mut rules = String::from(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n",
    );
    let mut expected = String::new();
    for (i, (template, want)) in cases.iter().enumerate() {
        rules.push_str(&format!(
            "      a{i:03}: {}\n",
            encode_json_string(template)
        ));
        expected.push_str(&format!(
            "          a{i:03}: {}\n",
            encode_json_string(want)
        ));
    }
    let test = format!(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n- interval: 1m\n  input_series:\n  - series: 'up{{job=\"j\",instance=\"host.example.com:9100\"}}'\n    values: '1500000'\n  alert_rule_test:\n  - eval_time: 0m\n    alertname: A\n    exp_alerts:\n    - exp_labels: {{job: j, instance: \"host.example.com:9100\"}}\n      exp_annotations:\n{expected}"
    );
    std::fs::write(dir.join("rules.yml"), rules).expect("write rules");
    std::fs::write(dir.join("test.yml"), test).expect("write test");
    let output = Command::new("promtool")
        .args(["test", "rules", "test.yml"])
        .current_dir(&dir)
        .output()
        .expect("run promtool");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "promtool disagrees with the table:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Parse errors: each line of `promtool_parse_errors.txt` is
/// `TEMPLATE<TAB>=> MESSAGE`, the message `promtool check rules` printed.
fn parse_error_cases() -> Vec<(String, String)> {
    include_str!("promtool_parse_errors.txt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (template, expected) = line
                .split_once("\t=> ")
                .expect("table line has a tab and =>");
            (template.to_string(), expected.to_string())
        })
        .collect()
}

#[test]
fn parse_errors_match_osprey() {
    let mut failures = Vec::new();
    for (template, expected) in parse_error_cases() {
        let mut set = Templates::new(
            funcs::prometheus(),
            Options {
                missing_key: MissingKey::Zero,
            },
        );
        let got = match set.parse("__alert_A", &format!("{PREFIX}{template}")) {
            Ok(()) => "parsed".to_string(),
            Err(e) => e.to_string(),
        };
        if got != expected {
            failures.push(format!("{template}\n   want {expected}\n    got {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} parse errors differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn parse_errors_match_promtool() {
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    let available = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            !required,
            "promtool is required (OSPREY_REQUIRE_EXTERNAL=1) but was not found"
        );
        eprintln!("skipping: promtool not found");
        return;
    }
    let dir = std::env::temp_dir().join(format!("osprey-template-parse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut failures = Vec::new();
    for (template, expected) in parse_error_cases() {
        let rules = format!(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      a: {}\n",
            encode_json_string(&template)
        );
        let path = dir.join("rules.yml");
        std::fs::write(&path, rules).expect("write rules");
        let output = Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(&path)
            .output()
            .expect("run promtool");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() || !text.contains(&format!("annotation \"a\": {expected}")) {
            failures.push(format!(
                "{template}\n   want {expected}\n promtool said {text}"
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} parse errors differ from promtool:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
