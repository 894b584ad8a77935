//! Generated rules against Prometheus's own tooling.
//!
//! - Every rule file osprey generates (Sloth's example specs, osprey's
//!   `examples/slos/`, and specs using each osprey extension) passes
//!   `promtool check rules`.
//! - `testdata/promtool/*.test.yml` are unit tests in promtool's format
//!   over synthetic error series. Each runs over Sloth's own generated
//!   file and over osprey's, with promtool and with osprey's rule engine
//!   (`rules::unittest`): all four runs must pass, so the two rule files
//!   give the same alerts and budget values in both engines. Others run
//!   over osprey's rules alone, against values computed by hand: osprey's
//!   extensions, a calendar month across its first midnight, OpenSLO's
//!   Timeslices; and the calendar arithmetic against the calendar.
//!
//! Without `promtool` the promtool halves print why and are skipped,
//! unless `OSPREY_REQUIRE_EXTERNAL=1`, where that fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slo::{GenerateOptions, ParseOptions, Period};

const DAY_MS: i64 = 86_400_000;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A child process killed and reaped when dropped, so a failed assertion
/// leaves no `promtool` behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs promtool with `args` (at most a minute); its exit status and
/// output, or `None` when promtool is not installed (after printing why,
/// or failing under `OSPREY_REQUIRE_EXTERNAL=1`).
fn promtool(args: &[&str]) -> Option<(bool, String)> {
    let child = Command::new("promtool")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => {
            let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "OSPREY_REQUIRE_EXTERNAL=1 but promtool cannot run: {e}"
            );
            eprintln!(
                "skipping the promtool half: promtool cannot run ({e}); apt-get install prometheus"
            );
            return None;
        }
    };
    let mut guard = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match guard.0.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => panic!("promtool {args:?} did not finish in a minute"),
        }
    }
    let mut output = String::new();
    for pipe in [
        guard
            .0
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
        guard
            .0
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut pipe = pipe;
        let _ = pipe.read_to_string(&mut output);
    }
    let success = guard.0.wait().map(|s| s.success()).unwrap_or(false);
    Some((success, output))
}

use std::io::Read as _;

fn generate_options(extra_labels: &[(&str, &str)]) -> GenerateOptions {
    GenerateOptions {
        mode: "cli-gen-prom".to_string(),
        version: "dev".to_string(),
        extra_labels: extra_labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn options(period_days: i64) -> ParseOptions {
    ParseOptions {
        default_period: Period::Rolling {
            ms: period_days * DAY_MS,
        },
        budget_method: slo::BudgetMethod::Time,
    }
}

/// osprey's rule file for a spec file.
fn osprey_rule_file(
    spec: &Path,
    period_days: i64,
    extra_labels: &[(&str, &str)],
) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(spec).unwrap_or_else(|e| panic!("{}: {e}", spec.display()));
    let slos = slo::parse_file(&spec.display().to_string(), &text, &options(period_days))
        .unwrap_or_else(|e| panic!("{e}"));
    let groups = slo::generate_all(&slos, &generate_options(extra_labels)).expect("generate");
    let names = groups.iter().map(|g| g.name.clone()).collect();
    (slo::print::rule_file("test", &groups), names)
}

/// Every spec whose generated rules must pass `promtool check rules`.
fn specs_to_check() -> Vec<(PathBuf, i64)> {
    let mut specs = Vec::new();
    for entry in std::fs::read_dir(crate_dir().join("tests/testdata/sloth")).expect("testdata") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.ends_with(".spec.yml") {
            let days = if name.starts_with("base-28d") {
                28
            } else if name.starts_with("base-7d") {
                7
            } else {
                30
            };
            specs.push((path, days));
        }
    }
    for dir in ["tests/testdata/specs", "../../examples/slos"] {
        if let Ok(entries) = std::fs::read_dir(crate_dir().join(dir)) {
            for entry in entries {
                let path = entry.expect("entry").path();
                if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                    specs.push((path, 30));
                }
            }
        }
    }
    specs.sort();
    specs
}

#[test]
fn generated_rule_files_pass_promtool_check_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = specs_to_check();
    assert!(specs.len() >= 10, "{specs:?}");
    let mut files = Vec::new();
    let mut unlinted = Vec::new();
    for (index, (spec, days)) in specs.iter().enumerate() {
        let (text, _) = osprey_rule_file(spec, *days, &[]);
        // osprey's own parser accepts what it writes.
        rules::parse_rule_file(&spec.display().to_string(), &text)
            .unwrap_or_else(|e| panic!("{}: {e:?}\n{text}", spec.display()));
        let path = dir.path().join(format!("{index}.yml"));
        std::fs::write(&path, text).expect("write");
        // Sloth's multifile example gives two services' SLOs the same
        // alert name and labels (their series tell them apart), which
        // promtool's duplicate-rule lint reports for Sloth's own output
        // too.
        if spec.ends_with("multifile.spec.yml") {
            unlinted.push(path.display().to_string());
        } else {
            files.push(path.display().to_string());
        }
    }
    for (lint, files) in [("duplicate-rules", &files), ("none", &unlinted)] {
        let lint_flag = format!("--lint={lint}");
        let mut args = vec!["check", "rules", lint_flag.as_str()];
        args.extend(files.iter().map(String::as_str));
        let Some((ok, output)) = promtool(&args) else {
            return;
        };
        assert!(ok, "promtool check rules failed for {specs:?}:\n{output}");
        assert_eq!(
            output.matches("rules found").count(),
            files.len(),
            "{output}"
        );
        assert!(!output.contains("FAILED"), "{output}");
    }
}

/// Values a test file leaves to the engine (`BUDGET_240M`): where
/// Prometheus 2.42's closed range windows and osprey's left-open ones
/// (Prometheus 3's) read different samples. Each test file says why.
struct EngineValues {
    promtool: &'static [(&'static str, &'static str)],
    osprey: &'static [(&'static str, &'static str)],
}

/// Runs one promtool-format test file over a rule file: with promtool
/// (when installed) and with osprey's engine.
fn run_unit_test(
    dir: &Path,
    label: &str,
    test_template: &str,
    rule_file: &str,
    groups: &[String],
    values: &EngineValues,
) {
    let rules_path = dir.join(format!("{label}.rules.yml"));
    std::fs::write(&rules_path, rule_file).expect("write rules");
    let test = test_template
        .replace("RULE_FILE", &format!("{label}.rules.yml"))
        .replace("GROUP_ORDER", &format!("[{}]", groups.join(", ")));
    let for_engine = |values: &[(&str, &str)]| {
        let mut text = test.clone();
        for (placeholder, value) in values {
            text = text.replace(placeholder, value);
        }
        text
    };
    let test_path = dir.join(format!("{label}.test.yml"));
    std::fs::write(&test_path, for_engine(values.osprey)).expect("write test");

    let scratch = dir.join(format!("{label}-stores"));
    let next = std::sync::atomic::AtomicU64::new(0);
    let new_storage = || -> Result<Arc<dyn model::storage::Storage>, String> {
        let store = scratch.join(
            next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_string(),
        );
        std::fs::create_dir_all(&store).map_err(|e| e.to_string())?;
        let mut options = tsdb::DbOptions::with_retention(None, None);
        options.fsync = false;
        Ok(Arc::new(
            tsdb::Db::open(&store, options).map_err(|e| e.to_string())?,
        ))
    };
    let glob = |pattern: &str| vec![PathBuf::from(pattern)];
    let report = rules::unittest::run_files(std::slice::from_ref(&test_path), &new_storage, &glob);
    assert!(
        report.passed,
        "{label}: osprey's rule engine fails the test:\n{}{}",
        report.stdout, report.stderr
    );

    let test_path = dir.join(format!("{label}.promtool.test.yml"));
    std::fs::write(&test_path, for_engine(values.promtool)).expect("write test");
    let test_arg = test_path.display().to_string();
    if let Some((ok, output)) = promtool(&["test", "rules", &test_arg]) {
        assert!(ok, "{label}: promtool fails the test:\n{output}");
    }
}

/// Sloth's generated file, as a rule file (its first document), and its
/// group names.
fn sloth_rule_file(name: &str) -> (String, Vec<String>) {
    let text =
        std::fs::read_to_string(crate_dir().join("tests/testdata/sloth").join(name)).expect("read");
    let groups = rules::parse_rule_file(name, &text).expect("Sloth's file parses");
    (text, groups.iter().map(|g| g.name.clone()).collect())
}

fn check_both(
    test: &str,
    spec: &str,
    sloth_gen: &str,
    period_days: i64,
    extra_labels: &[(&str, &str)],
    values: &EngineValues,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = std::fs::read_to_string(crate_dir().join("tests/testdata/promtool").join(test))
        .expect("read test");
    let (sloth_text, sloth_groups) = sloth_rule_file(sloth_gen);
    run_unit_test(
        dir.path(),
        "sloth",
        &template,
        &sloth_text,
        &sloth_groups,
        values,
    );
    let (osprey_text, osprey_groups) = osprey_rule_file(
        &crate_dir().join("tests/testdata/sloth").join(spec),
        period_days,
        extra_labels,
    );
    run_unit_test(
        dir.path(),
        "osprey",
        &template,
        &osprey_text,
        &osprey_groups,
        values,
    );
}

#[test]
fn getting_started_alerts_and_budget_match_sloths_output() {
    check_both(
        "getting-started.test.yml",
        "getting-started.spec.yml",
        "getting-started.sloth-gen.yml",
        30,
        &[("cmd", "examplesgen.sh")],
        &EngineValues {
            promtool: &[("BUDGET_240M", "-238375")],
            osprey: &[("BUDGET_240M", "-239406")],
        },
    );
}

#[test]
fn twenty_eight_days_alerts_and_budget_match_sloths_output() {
    check_both(
        "base-28d.test.yml",
        "base-28d.spec.yml",
        "base-28d.sloth-gen.yml",
        28,
        &[],
        &EngineValues {
            promtool: &[],
            osprey: &[],
        },
    );
}

#[test]
fn extensions_alert_and_budget_as_computed_by_hand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template =
        std::fs::read_to_string(crate_dir().join("tests/testdata/promtool/extensions.test.yml"))
            .expect("read test");
    let (text, groups) = osprey_rule_file(
        &crate_dir().join("tests/testdata/promtool/extensions.spec.yml"),
        30,
        &[],
    );
    let values = EngineValues {
        promtool: &[],
        osprey: &[],
    };
    run_unit_test(dir.path(), "extensions", &template, &text, &groups, &values);
}

/// A calendar month across its first midnight: the period's SLI counts
/// the new month alone and both budgets are the share of the whole
/// month's budget left (`testdata/promtool/calendar.test.yml`).
#[test]
fn calendar_month_starts_afresh_at_its_first_midnight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template =
        std::fs::read_to_string(crate_dir().join("tests/testdata/promtool/calendar.test.yml"))
            .expect("read test");
    let (text, groups) = osprey_rule_file(
        &crate_dir().join("tests/testdata/promtool/calendar.spec.yml"),
        30,
        &[],
    );
    let values = EngineValues {
        promtool: &[],
        osprey: &[],
    };
    run_unit_test(dir.path(), "calendar", &template, &text, &groups, &values);
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`): the reference the generated PromQL is held to.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The first day (days since 1970) of the month `month` months after
/// January of `year` (months may exceed 12).
fn month_start_days(year: i64, month: i64) -> i64 {
    days_from_civil(year + (month - 1) / 12, (month - 1) % 12 + 1, 1)
}

/// The start and length of calendar months and quarters, as the
/// generated rules compute them in PromQL (`day_of_month()`,
/// `day_of_year()`, `month()`, `year()`), against the calendar: at the
/// first second, in the middle and at the last second of every month of
/// 1970 to 2030 and 2096 to 2104 (2000 is a leap year, 2100 is not), in
/// promtool and in osprey's engine.
#[test]
fn calendar_periods_start_and_last_as_the_calendar_says() {
    let spec = "version: prometheus/v1\nservice: svc\nslos:\n  - name: monthly\n    objective: 99.9\n    sli:\n      raw:\n        error_ratio_query: avg_over_time(errors[{{.window}}])\n    alerting:\n      page_alert: {disable: true}\n      ticket_alert: {disable: true}\n    osprey:\n      period: month\n  - name: quarterly\n    objective: 99.9\n    sli:\n      raw:\n        error_ratio_query: avg_over_time(errors[{{.window}}])\n    alerting:\n      page_alert: {disable: true}\n      ticket_alert: {disable: true}\n    osprey:\n      period: quarter\n";
    let slos = slo::parse_file("calendar.yml", spec, &options(30)).expect("parse");
    let groups = slo::generate_all(&slos, &generate_options(&[])).expect("generate");
    // The expression of `record` in the SLO `slo`'s groups.
    let expr = |slo: &str, record: &str| -> String {
        groups
            .iter()
            .filter(|g| g.name.ends_with(&format!("svc-{slo}")))
            .flat_map(|g| &g.rules)
            .find(|r| r.name() == record)
            .map(|r| r.expr.clone())
            .unwrap_or_else(|| panic!("no {record} for {slo}"))
    };
    let month_start = expr("monthly", slo::generate::PERIOD_START);
    let month_days = expr("monthly", "slo:time_period:days");
    let quarter_start = expr("quarterly", slo::generate::PERIOD_START);
    let quarter_days = expr("quarterly", "slo:time_period:days");

    let quote = |s: &str| format!("{:?}", s.trim());
    let mut test = String::from(
        "# Generated by calendar_periods_start_and_last_as_the_calendar_says.\nrule_files: [empty.yml]\nevaluation_interval: 1d\ntests:\n  - interval: 1d\n    input_series: []\n    promql_expr_test:\n",
    );
    let mut cases = 0;
    let years = (1970..=2030).chain(2096..=2104);
    for year in years {
        for month in 1..=12 {
            let start = month_start_days(year, month);
            let next = month_start_days(year, month + 1);
            let first_month = (month - 1) / 3 * 3 + 1;
            let q_start = month_start_days(year, first_month);
            let q_next = month_start_days(year, first_month + 3);
            let times = [
                start * 86_400,
                start * 86_400 + 14 * 86_400 + 45_678,
                next * 86_400 - 1,
            ];
            for t in times {
                for (expression, want) in [
                    (&month_start, start * 86_400),
                    (&month_days, next - start),
                    (&quarter_start, q_start * 86_400),
                    (&quarter_days, q_next - q_start),
                ] {
                    test.push_str(&format!(
                        "      - expr: {}\n        eval_time: {t}s\n        exp_samples:\n          - labels: '{{}}'\n            value: {want}\n",
                        quote(expression)
                    ));
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 70 * 12 * 3 * 4);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("empty.yml"), "groups: []\n").expect("write rules");
    let test_path = dir.path().join("calendar.test.yml");
    std::fs::write(&test_path, &test).expect("write test");

    let store = dir.path().join("store");
    let new_storage = || -> Result<Arc<dyn model::storage::Storage>, String> {
        std::fs::create_dir_all(&store).map_err(|e| e.to_string())?;
        let mut options = tsdb::DbOptions::with_retention(None, None);
        options.fsync = false;
        Ok(Arc::new(
            tsdb::Db::open(&store, options).map_err(|e| e.to_string())?,
        ))
    };
    let glob = |pattern: &str| vec![PathBuf::from(pattern)];
    let report = rules::unittest::run_files(std::slice::from_ref(&test_path), &new_storage, &glob);
    assert!(
        report.passed,
        "osprey's engine disagrees with the calendar:\n{}{}",
        report.stdout,
        report.stderr.chars().take(4000).collect::<String>()
    );
    let test_arg = test_path.display().to_string();
    if let Some((ok, output)) = promtool(&["test", "rules", &test_arg]) {
        assert!(
            ok,
            "promtool disagrees with the calendar:\n{}",
            output.chars().take(4000).collect::<String>()
        );
    }
}

/// OpenSLO's Timeslices over a threshold metric and over a good/total
/// ratio give the share of bad slices counted by hand
/// (`testdata/promtool/openslo.test.yml`).
#[test]
fn openslo_time_slices_count_bad_slices_as_by_hand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template =
        std::fs::read_to_string(crate_dir().join("tests/testdata/promtool/openslo.test.yml"))
            .expect("read test");
    let (text, groups) = osprey_rule_file(
        &crate_dir().join("tests/testdata/promtool/openslo.spec.yml"),
        30,
        &[],
    );
    let values = EngineValues {
        promtool: &[],
        osprey: &[],
    };
    run_unit_test(dir.path(), "openslo", &template, &text, &groups, &values);
}
