//! `osprey check rules` and `osprey test rules` against Debian's
//! `promtool` on the same files: every file must get the same verdict
//! from both. The files in `testdata/rules/` are written so that each
//! verdict is known (`good_*`/`pass_*` pass, `bad_*`/`fail_*` fail), and
//! the test checks promtool agrees with that too, so a change that makes
//! both tools accept everything cannot pass.
//!
//! When `promtool` is missing the comparison is skipped with a reason
//! (osprey's own verdicts are still checked), unless
//! `OSPREY_REQUIRE_EXTERNAL=1`, where a missing `promtool` fails.

use std::path::{Path, PathBuf};
use std::process::Command;

fn osprey() -> Command {
    Command::new(env!("CARGO_BIN_EXE_osprey"))
}

fn promtool_present() -> bool {
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    match Command::new("promtool").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        other => {
            let reason = format!("promtool is not usable ({other:?}); apt-get install prometheus");
            assert!(!required, "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
            eprintln!("comparing with promtool skipped: {reason}");
            false
        }
    }
}

fn files(dir: &str, prefixes: &[&str]) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/rules")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read testdata")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            prefixes.iter().any(|prefix| name.starts_with(prefix))
        })
        .collect();
    files.sort();
    files
}

/// Runs `tool args file` and returns whether it exited 0, and its output.
fn verdict(mut command: Command, file: &Path) -> (bool, String) {
    let out = command.arg(file).output().expect("run the tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn compare(dir: &str, subcommand: [&str; 2], good: &str, bad: &str) {
    let with_promtool = promtool_present();
    let all = files(dir, &[good, bad]);
    assert!(all.len() >= 6, "expected test files in {dir}");
    let mut disagreements = Vec::new();
    for file in &all {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let expected = name.starts_with(good);
        let mut ours = osprey();
        ours.args(subcommand);
        let (osprey_ok, osprey_out) = verdict(ours, file);
        if osprey_ok != expected {
            disagreements.push(format!(
                "osprey {}: {name}: got {osprey_ok}\n{osprey_out}",
                subcommand.join(" ")
            ));
        }
        if with_promtool {
            let mut theirs = Command::new("promtool");
            theirs.args(subcommand);
            let (promtool_ok, promtool_out) = verdict(theirs, file);
            if promtool_ok != expected {
                disagreements.push(format!(
                    "promtool {}: {name}: got {promtool_ok}\n{promtool_out}",
                    subcommand.join(" ")
                ));
            }
        }
        if !osprey_ok && osprey_out.trim().is_empty() {
            disagreements.push(format!("osprey said nothing about failing {name}"));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{}",
        disagreements.join("\n---\n")
    );
    println!(
        "{} {}: {} files, same verdict as expected{}",
        subcommand[0],
        subcommand[1],
        all.len(),
        if with_promtool {
            " from both osprey and promtool"
        } else {
            ""
        }
    );
}

#[test]
fn check_rules_agrees_with_promtool() {
    compare("check", ["check", "rules"], "good_", "bad_");
}

#[test]
fn test_rules_agrees_with_promtool() {
    compare("unit", ["test", "rules"], "pass_", "fail_");
}

#[test]
fn check_errors_name_file_and_line() {
    let file = files("check", &["bad_expr"]).remove(0);
    let out = osprey()
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run osprey");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("bad_expr.yml:5:") && stderr.contains("could not parse expression"),
        "{stderr}"
    );
}

#[test]
fn failing_unit_tests_say_what_differs() {
    let file = files("unit", &["fail_for_too_early"]).remove(0);
    let out = osprey()
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .expect("run osprey");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FAILED"), "{stderr}");
    assert!(
        stderr.contains("alertname: InstanceDown, time: 6m"),
        "{stderr}"
    );
    assert!(stderr.contains("got:[]"), "{stderr}");
}

#[test]
fn check_config_checks_the_rule_files_it_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = files("check", &["good_basic", "bad_expr"]);
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  evaluation_interval: 30s\nrule_files:\n  - {}\nscrape_configs: []\n",
            rules[1].display()
        ),
    )
    .expect("write");
    let out = osprey()
        .args(["check", "config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 1 rule files found"));

    std::fs::write(
        &config,
        format!("rule_files:\n  - {}\n", rules[0].display()),
    )
    .expect("write");
    let out = osprey()
        .args(["check", "config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad_expr.yml:5:"));

    std::fs::write(
        &config,
        "scrape_configs:\n  - job_name: a\n    scrape_interval: 5x\n",
    )
    .expect("write");
    let out = osprey()
        .args(["check", "config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("prometheus.yml:3") && stderr.contains("scrape_interval"),
        "{stderr}"
    );
}

/// `--enable-feature` reaches `check rules` and `test rules` as it does
/// the server: a rule with a duration expression is refused without
/// `promql-duration-expr`, with the parser's error, and accepted (and
/// evaluated in a unit test) with it. (Prometheus 2.42's promtool has no
/// such feature to compare with.)
#[test]
fn enable_feature_reaches_check_and_test_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    rules:\n      - record: job:x:increase\n        expr: sum by (job) (increase(x[1m * 2]))\n",
    )
    .expect("write rules");
    let tests = dir.path().join("tests.yml");
    std::fs::write(
        &tests,
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'x{job=\"a\"}'\n        values: '0+10x10'\n    promql_expr_test:\n      - expr: job:x:increase\n        eval_time: 5m\n        exp_samples:\n          - labels: 'job:x:increase{job=\"a\"}'\n            value: 20\n",
    )
    .expect("write tests");
    for subcommand in [["check", "rules"], ["test", "rules"]] {
        let file = if subcommand[0] == "check" {
            &rules
        } else {
            &tests
        };
        let mut without = osprey();
        without.args(subcommand);
        let (ok, text) = verdict(without, file);
        assert!(!ok, "{subcommand:?} without the feature passed:\n{text}");
        assert!(
            text.contains("experimental duration expression is not enabled"),
            "{subcommand:?}: {text}"
        );
        let mut with = osprey();
        with.args(subcommand)
            .arg("--enable-feature=promql-duration-expr");
        let (ok, text) = verdict(with, file);
        assert!(ok, "{subcommand:?} with the feature failed:\n{text}");
    }
}
