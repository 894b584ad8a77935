//! Cases whose expected output came from real Alertmanager: each line of
//! `amtool_cases.txt` is `TEMPLATE<TAB>=> "JSON STRING"`, rendered by
//! `amtool template render` (Alertmanager 0.25's default functions).
//! `cases_match_osprey` checks this crate; `cases_match_amtool` re-checks
//! the table against amtool when it is installed.

use std::process::Command;
use template::{MissingKey, Options, Templates, Value, funcs};

fn cases() -> Vec<(String, String)> {
    include_str!("amtool_cases.txt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (template, expected) = line
                .split_once("\t=> ")
                .expect("table line has a tab and =>");
            let expected = expected
                .trim()
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .expect("quoted");
            // The expected strings hold no escapes but `\"` and `\\`.
            let expected = expected.replace("\\\"", "\"").replace("\\\\", "\\");
            (template.to_string(), expected)
        })
        .collect()
}

#[test]
fn cases_match_osprey() {
    let mut failures = Vec::new();
    for (template, expected) in cases() {
        let mut set = Templates::new(
            funcs::alertmanager(),
            Options {
                missing_key: MissingKey::Default,
            },
        );
        let got = set
            .parse("t", &template)
            .and_then(|()| set.execute("t", &Value::Nil))
            .unwrap_or_else(|e| e.to_string());
        if got != expected {
            failures.push(format!("{template}\n   want {expected:?}\n    got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} amtool cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn cases_match_amtool() {
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    let available = Command::new("amtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            !required,
            "amtool is required (OSPREY_REQUIRE_EXTERNAL=1) but was not found"
        );
        eprintln!("skipping: amtool not found");
        return;
    }
    let dir = std::env::temp_dir().join(format!("osprey-template-amtool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("one.tmpl");
    let mut failures = Vec::new();
    for (template, expected) in cases() {
        std::fs::write(
            &path,
            format!("{{{{ define \"t\" }}}}{template}{{{{ end }}}}\n"),
        )
        .expect("write template");
        let output = Command::new("amtool")
            .arg("template")
            .arg("render")
            .arg(format!("--template.glob={}", path.display()))
            .arg("--template.text={{ template \"t\" . }}")
            .output()
            .expect("run amtool");
        let got = String::from_utf8_lossy(&output.stdout);
        let got = got.trim_end_matches('\n');
        if got != expected {
            failures.push(format!(
                "{template}\n   want {expected:?}\n  amtool {got:?}"
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} cases differ from amtool:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
