//! Rule unit tests in `promtool test rules`'s file format.
//!
//! A test file names rule files (relative to the test file, globs
//! allowed), an `evaluation_interval` (default 1m), an optional
//! `group_eval_order`, and test groups. Each test group loads its
//! `input_series` (written in the expanding notation: `1+2x3` is
//! `1 3 5 7`, `_` is a missing sample, `stale` a staleness marker) into a
//! fresh store at `0, interval, 2*interval, ...`, evaluates every rule
//! group at `0, evaluation_interval, ...` up to the largest `eval_time`,
//! and compares:
//! - `alert_rule_test`: the firing alerts of `alertname` (labels without
//!   `alertname`, expanded annotations) after the evaluation at or just
//!   before `eval_time`;
//! - `promql_expr_test`: an instant query at `eval_time` against
//!   `exp_samples`, exactly.
//!
//! Output and verdicts follow promtool: `Unit Testing:  FILE` then
//! `  SUCCESS` on stdout, or `  FAILED:` and one block per failure on
//! stderr; the run fails if any file fails.

use crate::file::{GroupSpec, parse_rule_file_with};
use crate::group::{ALERT_NAME, AlertState, EvalEnv, Group, GroupOptions};
use model::duration::{format_duration_ms, parse_duration_ms};
use model::labels::METRIC_NAME;
use model::storage::Storage;
use model::{Labels, STALE_NAN};
use promql::{Engine, EngineOptions};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yaml::{Node, NodeValue, parse_document};

/// Makes an empty store for one test group.
pub type StorageFactory<'a> = &'a dyn Fn() -> Result<Arc<dyn Storage>, String>;

/// Expands rule file globs; the caller owns file system globbing.
pub type Glob<'a> = &'a dyn Fn(&str) -> Vec<PathBuf>;

/// What a run printed and whether it passed.
#[derive(Debug, Default)]
pub struct Report {
    pub stdout: String,
    pub stderr: String,
    pub passed: bool,
}

/// Runs the unit-test files in order, as `promtool test rules` does.
pub fn run_files(files: &[PathBuf], new_storage: StorageFactory<'_>, glob: Glob<'_>) -> Report {
    run_files_with(files, promql::ParseOptions::OSPREY, new_storage, glob)
}

/// [`run_files`] with the PromQL features (`--enable-feature`) that the
/// rule files and the tests' expressions are parsed with.
pub fn run_files_with(
    files: &[PathBuf],
    features: promql::ParseOptions,
    new_storage: StorageFactory<'_>,
    glob: Glob<'_>,
) -> Report {
    let mut report = Report {
        passed: true,
        ..Report::default()
    };
    for file in files {
        let _ = writeln!(report.stdout, "Unit Testing:  {}", file.display());
        let errors = run_file(file, features, new_storage, glob);
        if errors.is_empty() {
            report.stdout.push_str("  SUCCESS\n");
        } else {
            report.passed = false;
            report.stderr.push_str("  FAILED:\n");
            for error in errors {
                report.stderr.push_str(&error);
                report.stderr.push('\n');
                report.stdout.push('\n');
            }
        }
        report.stdout.push('\n');
    }
    report
}

struct TestFile {
    rule_files: Vec<String>,
    evaluation_interval_ms: i64,
    group_eval_order: Vec<String>,
    tests: Vec<TestGroup>,
}

#[derive(Default)]
struct TestGroup {
    interval_ms: Option<i64>,
    input_series: Vec<(String, String)>,
    alert_rule_tests: Vec<AlertTest>,
    promql_expr_tests: Vec<ExprTest>,
    external_labels: Vec<(String, String)>,
    external_url: String,
    name: String,
}

struct AlertTest {
    eval_time_ms: i64,
    eval_time_text: String,
    alertname: String,
    exp_alerts: Vec<LabelsAndAnnotations>,
}

struct ExprTest {
    expr: String,
    eval_time_ms: i64,
    eval_time_text: String,
    exp_samples: Vec<(String, f64)>,
}

fn run_file(
    path: &Path,
    features: promql::ParseOptions,
    new_storage: StorageFactory<'_>,
    glob: Glob<'_>,
) -> Vec<String> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    let test_file = match read_test_file(&name, &text) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rule_files = Vec::new();
    for pattern in &test_file.rule_files {
        let full = if Path::new(pattern).is_absolute() {
            pattern.clone()
        } else {
            base.join(pattern).display().to_string()
        };
        let matched = glob(&full);
        if matched.is_empty() {
            eprintln!("  WARNING: no file match pattern {full}");
        }
        rule_files.extend(matched);
    }
    let mut order = BTreeMap::new();
    for (index, group) in test_file.group_eval_order.iter().enumerate() {
        if order.insert(group.clone(), index).is_some() {
            return vec![format!("group name repeated in evaluation order: {group}")];
        }
    }
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for file in &rule_files {
        let file_name = file.display().to_string();
        match std::fs::read_to_string(file) {
            Ok(text) => match parse_rule_file_with(&file_name, &text, features) {
                Ok(groups) => specs.extend(groups),
                Err(file_errors) => errors.extend(file_errors.iter().map(|e| e.to_string())),
            },
            Err(e) => errors.push(format!("{file_name}: {e}")),
        }
    }
    if !errors.is_empty() {
        return errors;
    }
    specs.sort_by_key(|g| order.get(&g.name).copied().unwrap_or(0));
    let mut failures = Vec::new();
    for test in &test_file.tests {
        failures.extend(run_group(
            test,
            &specs,
            test_file.evaluation_interval_ms,
            features,
            new_storage,
        ));
    }
    failures
}

fn run_group(
    test: &TestGroup,
    specs: &[GroupSpec],
    eval_interval_ms: i64,
    features: promql::ParseOptions,
    new_storage: StorageFactory<'_>,
) -> Vec<String> {
    let storage = match new_storage() {
        Ok(s) => s,
        Err(e) => return vec![format!("creating a test store: {e}")],
    };
    let interval_ms = test.interval_ms.unwrap_or(eval_interval_ms);
    if let Err(e) = load_series(storage.as_ref(), &test.input_series, interval_ms) {
        return vec![e];
    }
    for test_case in &test.alert_rule_tests {
        if test_case.alertname.is_empty() {
            let in_group = if test.name.is_empty() {
                String::new()
            } else {
                format!(" (in TestGroup {})", test.name)
            };
            return vec![format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                test_case.eval_time_text
            )];
        }
    }
    let engine =
        Arc::new(Engine::new(EngineOptions::prometheus_defaults()).with_parse_options(features));
    let env = EvalEnv {
        engine: engine.clone(),
        queryable: storage.clone(),
        appendable: storage.clone(),
        external_labels: test.external_labels.clone(),
        external_url: test.external_url.clone(),
    };
    let options = GroupOptions {
        default_interval_ms: interval_ms,
        default_query_offset_ms: 0,
        resend_delay_ms: 60_000,
        outage_tolerance_ms: 3_600_000,
        for_grace_period_ms: 0,
    };
    let mut groups: Vec<Group> = specs
        .iter()
        .map(|spec| {
            let mut group = Group::new(spec.clone(), &options);
            group.mark_restored();
            group
        })
        .collect();
    let max_eval = test
        .alert_rule_tests
        .iter()
        .map(|t| t.eval_time_ms)
        .chain(test.promql_expr_tests.iter().map(|t| t.eval_time_ms))
        .max()
        .unwrap_or(0);
    let mut alert_times: Vec<i64> = test
        .alert_rule_tests
        .iter()
        .map(|t| t.eval_time_ms)
        .collect();
    alert_times.sort_unstable();
    alert_times.dedup();
    let mut next_alert_time = 0;
    let mut failures = Vec::new();
    let step = eval_interval_ms.max(1);
    let mut ts = 0;
    while ts <= max_eval {
        let mut eval_errors = Vec::new();
        for group in &mut groups {
            group.eval(&env, ts);
            for rule in &group.rules {
                if let Some(error) = &rule.last_error {
                    eval_errors.push(format!(
                        "    rule: {}, time: {}, err: {error}",
                        rule.spec.name(),
                        go_duration(ts)
                    ));
                }
            }
        }
        if !eval_errors.is_empty() {
            failures.extend(eval_errors);
            return failures;
        }
        while next_alert_time < alert_times.len()
            && ts <= alert_times[next_alert_time]
            && alert_times[next_alert_time] < ts + step
        {
            let t = alert_times[next_alert_time];
            for test_case in test.alert_rule_tests.iter().filter(|c| c.eval_time_ms == t) {
                if let Some(failure) = check_alerts(test, test_case, &groups) {
                    failures.push(failure);
                }
            }
            next_alert_time += 1;
        }
        ts += step;
    }
    for test_case in &test.promql_expr_tests {
        if let Some(failure) = check_expr(&env, test_case) {
            failures.push(failure);
        }
    }
    failures
}

type LabelsAndAnnotations = (Vec<(String, String)>, Vec<(String, String)>);

fn check_alerts(test: &TestGroup, case: &AlertTest, groups: &[Group]) -> Option<String> {
    let mut got: Vec<LabelsAndAnnotations> = Vec::new();
    for group in groups {
        for rule in &group.rules {
            if !rule.is_alerting() || rule.spec.name() != case.alertname {
                continue;
            }
            for alert in rule.alerts() {
                if alert.state == AlertState::Firing {
                    let labels = alert
                        .labels
                        .iter()
                        .map(|l| (l.name.to_string(), l.value.to_string()))
                        .collect();
                    got.push((labels, alert.annotations.clone()));
                }
            }
        }
    }
    let mut expected: Vec<LabelsAndAnnotations> = case
        .exp_alerts
        .iter()
        .map(|(labels, annotations)| {
            let mut labels = labels.clone();
            labels.retain(|(n, _)| n != ALERT_NAME);
            labels.push((ALERT_NAME.to_string(), case.alertname.clone()));
            labels.retain(|(_, v)| !v.is_empty());
            labels.sort();
            let mut annotations = annotations.clone();
            annotations.retain(|(_, v)| !v.is_empty());
            annotations.sort();
            (labels, annotations)
        })
        .collect();
    for (_, annotations) in &mut got {
        annotations.retain(|(_, v)| !v.is_empty());
    }
    got.sort();
    expected.sort();
    if got == expected {
        return None;
    }
    let name = if test.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", test.name)
    };
    Some(format!(
        "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
        case.alertname,
        case.eval_time_text,
        indent(&alerts_string(&expected), "            "),
        indent(&alerts_string(&got), "            ")
    ))
}

fn check_expr(env: &EvalEnv, case: &ExprTest) -> Option<String> {
    let got = match crate::group::instant_vector(env, &case.expr, case.eval_time_ms) {
        Ok(samples) => samples,
        Err(e) => {
            return Some(format!(
                "    expr: {:?}, time: {}, err: {e}",
                case.expr, case.eval_time_text
            ));
        }
    };
    let mut expected = Vec::new();
    for (text, value) in &case.exp_samples {
        match parse_metric(text) {
            Ok(labels) => expected.push((labels, *value)),
            Err(e) => {
                return Some(format!(
                    "    expr: {:?}, time: {}, err: labels {text:?}: {e}",
                    case.expr, case.eval_time_text
                ));
            }
        }
    }
    let mut got = got;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    // Exact comparison, NaN never equal, as promtool's reflect.DeepEqual.
    let equal = got.len() == expected.len()
        && got
            .iter()
            .zip(&expected)
            .all(|(g, e)| g.0 == e.0 && g.1 == e.1);
    if equal {
        return None;
    }
    Some(format!(
        "    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
        case.expr,
        case.eval_time_text,
        samples_string(&expected),
        samples_string(&got)
    ))
}

fn samples_string(samples: &[(Labels, f64)]) -> String {
    if samples.is_empty() {
        return "nil".to_string();
    }
    samples
        .iter()
        .map(|(labels, value)| format!("{labels} {}", go_float(*value)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn alerts_string(alerts: &[LabelsAndAnnotations]) -> String {
    if alerts.is_empty() {
        return "[]".to_string();
    }
    let mut out = String::from("[");
    for (index, (labels, annotations)) in alerts.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let body = format!(
            "\nLabels:{}\nAnnotations:{}",
            pairs_string(labels),
            pairs_string(annotations)
        );
        let _ = write!(out, "\n{index}:{}", indent(&body, "  "));
    }
    out.push_str("\n]");
    out
}

fn pairs_string(pairs: &[(String, String)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn indent(text: &str, prefix: &str) -> String {
    text.split('\n')
        .enumerate()
        .map(|(i, line)| {
            if i > 0 {
                format!("{prefix}{line}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A float as Go's `%v` prints it, close enough for failure messages.
fn go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// A duration in milliseconds as Go's `time.Duration.String` prints it
/// (`1m0s`, `1h30m0s`), as promtool shows times.
pub fn go_duration(ms: i64) -> String {
    template::time::duration_string(ms.saturating_mul(1_000_000))
}

/// Parses `name{a="b"}` into labels.
fn parse_metric(text: &str) -> Result<Labels, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact == "{}" {
        return Ok(Labels::empty());
    }
    let matchers = promql::parse_series_selector(text).map_err(|e| e.message().to_string())?;
    let mut pairs = Vec::new();
    for matcher in matchers {
        if matcher.op() != model::MatchOp::Equal {
            return Err(format!("unexpected matcher in series {text:?}"));
        }
        pairs.push((matcher.name().to_string(), matcher.value().to_string()));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Writes the input series into `storage` at `0, interval, ...`.
fn load_series(
    storage: &dyn Storage,
    series: &[(String, String)],
    interval_ms: i64,
) -> Result<(), String> {
    let mut appender = storage.appender();
    for (selector, values) in series {
        let labels = parse_metric(selector)?;
        if labels.get(METRIC_NAME).is_none() && labels.is_empty() {
            return Err(format!("series {selector:?} has no labels"));
        }
        let points = expand_values(values).map_err(|e| format!("series {selector:?}: {e}"))?;
        for (index, value) in points.into_iter().enumerate() {
            if let Some(value) = value {
                let t = index as i64 * interval_ms;
                appender
                    .append(&labels, t, value)
                    .map_err(|e| format!("loading {selector}: {e}"))?;
            }
        }
    }
    appender.commit().map_err(|e| e.to_string())
}

/// Expands `1+2x3 _ stale 5x2 _x3` into values (`None`: no sample).
pub fn expand_values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for item in text.split_whitespace() {
        if item == "_" {
            out.push(None);
            continue;
        }
        if item == "stale" {
            out.push(Some(STALE_NAN));
            continue;
        }
        if let Some(n) = item.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad item {item:?}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if let Some(v) = parse_value(item) {
            out.push(Some(v));
            continue;
        }
        let Some(x) = item.rfind('x') else {
            return Err(format!("bad item {item:?}"));
        };
        let times: usize = item[x + 1..]
            .parse()
            .map_err(|_| format!("bad item {item:?}"))?;
        if times > 1_000_000 {
            return Err(format!("item {item:?} expands to too many samples"));
        }
        let head = &item[..x];
        let bytes = head.as_bytes();
        let split = (1..bytes.len()).rev().find(|&i| {
            (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
        });
        let (start, step) = match split {
            None => (
                parse_value(head).ok_or_else(|| format!("bad item {item:?}"))?,
                0.0,
            ),
            Some(i) => {
                let start = parse_value(&head[..i]).ok_or_else(|| format!("bad item {item:?}"))?;
                let step =
                    parse_value(&head[i + 1..]).ok_or_else(|| format!("bad item {item:?}"))?;
                (start, if bytes[i] == b'-' { -step } else { step })
            }
        };
        let mut v = start;
        out.push(Some(v));
        for _ in 0..times {
            v += step;
            out.push(Some(v));
        }
    }
    Ok(out)
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => return Some(f64::INFINITY),
        "-Inf" | "-inf" => return Some(f64::NEG_INFINITY),
        "NaN" | "nan" => return Some(f64::NAN),
        _ => {}
    }
    if !s.bytes().any(|b| b.is_ascii_digit()) || s.contains('x') {
        return None;
    }
    s.parse().ok()
}

fn read_test_file(file: &str, text: &str) -> Result<TestFile, String> {
    let root =
        parse_document(text).map_err(|(line, message)| format!("{file}:{line}: {message}"))?;
    let r = Fields { file };
    let mut out = TestFile {
        rule_files: Vec::new(),
        evaluation_interval_ms: 60_000,
        group_eval_order: Vec::new(),
        tests: Vec::new(),
    };
    for (key, value) in r.mapping(&root, "(document)")? {
        match r.key(key)?.as_str() {
            "rule_files" => out.rule_files = r.strings(value, "rule_files")?,
            "evaluation_interval" => {
                let ms = r.duration(value, "evaluation_interval")?;
                if ms > 0 {
                    out.evaluation_interval_ms = ms;
                }
            }
            "group_eval_order" => out.group_eval_order = r.strings(value, "group_eval_order")?,
            "tests" => {
                for (index, item) in r.sequence(value, "tests")?.iter().enumerate() {
                    out.tests
                        .push(r.test_group(item, &format!("tests[{index}]"))?);
                }
            }
            other => {
                return Err(r.error(
                    key,
                    &format!("field {other} not found in type main.unitTestFile"),
                ));
            }
        }
    }
    Ok(out)
}

struct Fields<'a> {
    file: &'a str,
}

impl Fields<'_> {
    fn error(&self, node: &Node, message: &str) -> String {
        format!("{}:{}: {message}", self.file, node.line)
    }

    fn key(&self, node: &Node) -> Result<String, String> {
        match &node.value {
            NodeValue::String(s) => Ok(s.clone()),
            _ => Err(self.error(node, "expected a field name")),
        }
    }

    fn mapping<'n>(&self, node: &'n Node, field: &str) -> Result<&'n [(Node, Node)], String> {
        node.as_mapping()
            .map_err(|message| self.error(node, &format!("{field}: {message}")))
    }

    fn sequence<'n>(&self, node: &'n Node, field: &str) -> Result<&'n [Node], String> {
        node.as_sequence()
            .map_err(|message| self.error(node, &format!("{field}: {message}")))
    }

    fn string(&self, node: &Node, field: &str) -> Result<String, String> {
        node.as_string()
            .map_err(|message| self.error(node, &format!("{field}: {message}")))
    }

    fn strings(&self, node: &Node, field: &str) -> Result<Vec<String>, String> {
        self.sequence(node, field)?
            .iter()
            .map(|item| self.string(item, field))
            .collect()
    }

    fn duration(&self, node: &Node, field: &str) -> Result<i64, String> {
        let text = self.string(node, field)?;
        parse_duration_ms(&text).map_err(|_| {
            self.error(
                node,
                &format!("{field}: not a valid duration string: {text:?}"),
            )
        })
    }

    fn float(&self, node: &Node, field: &str) -> Result<f64, String> {
        match &node.value {
            NodeValue::Int(n) => Ok(*n as f64),
            NodeValue::Float(f) => Ok(*f),
            NodeValue::String(s) => parse_value(s.trim())
                .ok_or_else(|| self.error(node, &format!("{field}: not a number: {s:?}"))),
            other => Err(self.error(
                node,
                &format!("{field}: expected a number, got {}", other.kind_name()),
            )),
        }
    }

    fn pairs(&self, node: &Node, field: &str) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for (key, value) in self.mapping(node, field)? {
            out.push((self.key(key)?, self.string(value, field)?));
        }
        out.sort();
        Ok(out)
    }

    fn test_group(&self, node: &Node, field: &str) -> Result<TestGroup, String> {
        let mut group = TestGroup::default();
        for (key, value) in self.mapping(node, field)? {
            let name = self.key(key)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "interval" => {
                    let ms = self.duration(value, &path)?;
                    group.interval_ms = (ms > 0).then_some(ms);
                }
                "name" => group.name = self.string(value, &path)?,
                "external_labels" => group.external_labels = self.pairs(value, &path)?,
                "external_url" => group.external_url = self.string(value, &path)?,
                "input_series" => {
                    for item in self.sequence(value, &path)? {
                        let mut series = String::new();
                        let mut values = String::new();
                        for (k, v) in self.mapping(item, &path)? {
                            match self.key(k)?.as_str() {
                                "series" => series = self.string(v, &path)?,
                                "values" => values = self.string(v, &path)?,
                                other => {
                                    return Err(self.error(
                                        k,
                                        &format!("field {other} not found in type main.series"),
                                    ));
                                }
                            }
                        }
                        group.input_series.push((series, values));
                    }
                }
                "alert_rule_test" => {
                    for item in self.sequence(value, &path)? {
                        group.alert_rule_tests.push(self.alert_test(item, &path)?);
                    }
                }
                "promql_expr_test" => {
                    for item in self.sequence(value, &path)? {
                        group.promql_expr_tests.push(self.expr_test(item, &path)?);
                    }
                }
                other => {
                    return Err(self.error(
                        key,
                        &format!("field {other} not found in type main.testGroup"),
                    ));
                }
            }
        }
        Ok(group)
    }

    fn alert_test(&self, node: &Node, field: &str) -> Result<AlertTest, String> {
        let mut test = AlertTest {
            eval_time_ms: 0,
            eval_time_text: "0s".into(),
            alertname: String::new(),
            exp_alerts: Vec::new(),
        };
        for (key, value) in self.mapping(node, field)? {
            match self.key(key)?.as_str() {
                "eval_time" => {
                    test.eval_time_ms = self.duration(value, field)?;
                    test.eval_time_text = format_duration_ms(test.eval_time_ms);
                }
                "alertname" => test.alertname = self.string(value, field)?,
                "exp_alerts" => {
                    for item in self.sequence(value, field)? {
                        let mut labels = Vec::new();
                        let mut annotations = Vec::new();
                        for (k, v) in self.mapping(item, field)? {
                            match self.key(k)?.as_str() {
                                "exp_labels" => labels = self.pairs(v, field)?,
                                "exp_annotations" => annotations = self.pairs(v, field)?,
                                other => {
                                    return Err(self.error(
                                        k,
                                        &format!("field {other} not found in type main.alert"),
                                    ));
                                }
                            }
                        }
                        test.exp_alerts.push((labels, annotations));
                    }
                }
                other => {
                    return Err(self.error(
                        key,
                        &format!("field {other} not found in type main.alertTestCase"),
                    ));
                }
            }
        }
        Ok(test)
    }

    fn expr_test(&self, node: &Node, field: &str) -> Result<ExprTest, String> {
        let mut test = ExprTest {
            expr: String::new(),
            eval_time_ms: 0,
            eval_time_text: "0s".into(),
            exp_samples: Vec::new(),
        };
        for (key, value) in self.mapping(node, field)? {
            match self.key(key)?.as_str() {
                "expr" => test.expr = self.string(value, field)?,
                "eval_time" => {
                    test.eval_time_ms = self.duration(value, field)?;
                    test.eval_time_text = format_duration_ms(test.eval_time_ms);
                }
                "exp_samples" => {
                    for item in self.sequence(value, field)? {
                        let mut labels = String::new();
                        let mut sample_value = 0.0;
                        for (k, v) in self.mapping(item, field)? {
                            match self.key(k)?.as_str() {
                                "labels" => labels = self.string(v, field)?,
                                "value" => sample_value = self.float(v, field)?,
                                other => {
                                    return Err(self.error(
                                        k,
                                        &format!("field {other} not found in type main.sample"),
                                    ));
                                }
                            }
                        }
                        test.exp_samples.push((labels, sample_value));
                    }
                }
                other => {
                    return Err(self.error(
                        key,
                        &format!("field {other} not found in type main.promqlTestCase"),
                    ));
                }
            }
        }
        Ok(test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanding_notation() {
        let v = expand_values("1+2x3 _ stale -2+4x1 5x2 _x2 1-1x2").unwrap();
        let shown: Vec<String> = v
            .iter()
            .map(|x| match x {
                None => "_".into(),
                Some(f) if model::is_stale_nan(*f) => "stale".into(),
                Some(f) => f.to_string(),
            })
            .collect();
        assert_eq!(shown.join(" "), "1 3 5 7 _ stale -2 2 5 5 5 _ _ 1 0 -1");
        assert!(expand_values("1+x").is_err());
        assert!(expand_values("abc").is_err());
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(5_400_000), "1h30m0s");
        assert_eq!(go_duration(1_500), "1.5s");
        assert_eq!(go_duration(500), "500ms");
        assert_eq!(go_duration(-90_000), "-1m30s");
    }
}
