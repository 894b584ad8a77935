//! The backtest against two references, over many generated cases (rules
//! and synthetic series from a seeded generator):
//!
//! - osprey's live engine: the same groups evaluated step by step with
//!   `Group::eval` over the same data; the active alerts (labels and
//!   state) after every evaluation and the alerts due for sending must
//!   equal the backtest's timeline and sends at that time;
//! - `promtool test rules` (Prometheus 2.42): every case becomes a test
//!   file whose `promql_expr_test`s expect, at every evaluation time,
//!   exactly the `ALERTS` series the backtest's timeline says. promtool
//!   passes only if it agrees at every time. Range windows are not
//!   multiples of the sample interval: promtool 2.42 has Prometheus 2's
//!   closed windows, osprey Prometheus 3's left-open ones, and a sample on
//!   the boundary would show that (known, intended) difference. Skipped with a printed reason
//!   when promtool is missing, failed when `OSPREY_REQUIRE_EXTERNAL=1`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use model::Labels;
use model::labels::LabelsBuilder;
use model::storage::{Appendable, Queryable};
use promql::{Engine, EngineOptions};
use rules::backtest::{Backtest, BacktestOptions, backtest};
use rules::{AlertState, EvalEnv, Group, GroupOptions, GroupSpec, parse_rule_file};
use tsdb::{Db, DbOptions};

/// How many generated cases each run checks.
const CASES: u64 = 120;
/// The evaluation interval of every case (promtool evaluates every group
/// at the test file's interval).
const INTERVAL_MS: i64 = 60_000;
/// Evaluations per case: 0 … 60m.
const STEPS: i64 = 61;

/// xorshift64*: small, seeded, the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One generated case: a rule file and the input series in promtool's
/// expanding notation (one value per minute).
struct Case {
    rules: String,
    series: Vec<(String, String)>,
}

fn generate(seed: u64) -> Case {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut series = Vec::new();
    let n_series = 1 + rng.below(3);
    for instance in ["a", "b", "c"].iter().take(n_series as usize) {
        let mut values = Vec::new();
        // Runs of similar values, so alerts both hold and break.
        let mut level = rng.below(10);
        for _ in 0..STEPS {
            if rng.below(6) == 0 {
                level = rng.below(10);
            }
            let roll = rng.below(40);
            values.push(match roll {
                0 => "_".to_string(),
                1 => "stale".to_string(),
                _ => (level + rng.below(2)).to_string(),
            });
        }
        series.push((
            format!("load{{instance=\"{instance}\", job=\"j\"}}"),
            values.join(" "),
        ));
    }
    let threshold = 2 + rng.below(6);
    let durations = ["0s", "1m", "2m", "3m", "5m"];
    let keeps = ["0s", "0s", "1m", "2m", "4m"];
    let mut rules = String::from("groups:\n  - name: generated\n    rules:\n");
    let recording = rng.below(3) == 0;
    if recording {
        rules.push_str("      - record: job:load:doubled\n        expr: load * 2\n");
    }
    let n_alerts = 1 + rng.below(3);
    for index in 0..n_alerts {
        let expr = match rng.below(6) {
            0 if recording => format!("job:load:doubled > {}", threshold * 2),
            1 => format!("max_over_time(load[150s]) > {threshold}"),
            2 => format!("sum by (job) (load) > {}", threshold * 2),
            3 => format!("avg_over_time(load[90s]) < {threshold}"),
            _ => format!("load > {threshold}"),
        };
        let _ = write!(
            rules,
            "      - alert: Generated{index}\n        expr: {expr}\n        for: {}\n        keep_firing_for: {}\n",
            rng.pick(&durations),
            rng.pick(&keeps),
        );
        match rng.below(3) {
            0 => rules.push_str("        labels:\n          severity: page\n"),
            1 => rules.push_str("        labels:\n          where: '{{ $labels.instance }}-x'\n"),
            _ => {}
        }
    }
    Case { rules, series }
}

fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(EngineOptions::prometheus_defaults()))
}

fn open_db(dir: &std::path::Path) -> Arc<Db> {
    let options = DbOptions {
        retention_time_ms: None,
        retention_size_bytes: None,
        block_range_ms: 7_200_000,
        wal_segment_size: 1 << 20,
        fsync: false,
    };
    Arc::new(Db::open(dir, options).expect("open db"))
}

/// Loads a case's series at 0, 1m, 2m, …, as promtool does.
fn load(db: &Db, case: &Case) {
    let mut appender = db.appender();
    for (metric, values) in &case.series {
        let labels = parse_metric(metric);
        for (index, value) in rules::unittest::expand_values(values)
            .expect("values")
            .into_iter()
            .enumerate()
        {
            if let Some(v) = value {
                appender
                    .append(&labels, index as i64 * INTERVAL_MS, v)
                    .expect("append");
            }
        }
    }
    appender.commit().expect("commit");
}

fn parse_metric(text: &str) -> Labels {
    let (name, rest) = text.split_once('{').expect("metric has labels");
    let mut builder = LabelsBuilder::new();
    builder.set("__name__".to_string(), name.to_string());
    for pair in rest.trim_end_matches('}').split(", ") {
        let (k, v) = pair.split_once('=').expect("pair");
        builder.set(k.to_string(), v.trim_matches('"').to_string());
    }
    builder.build()
}

fn specs(case: &Case) -> Vec<GroupSpec> {
    parse_rule_file("generated.yml", &case.rules).expect("generated rules parse")
}

fn group_options() -> GroupOptions {
    GroupOptions {
        default_interval_ms: INTERVAL_MS,
        default_query_offset_ms: 0,
        resend_delay_ms: 60_000,
        outage_tolerance_ms: 3_600_000,
        for_grace_period_ms: 0,
    }
}

fn run_backtest(case: &Case) -> Backtest {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path());
    load(&db, case);
    let options = BacktestOptions {
        from_ms: 0,
        to_ms: (STEPS - 1) * INTERVAL_MS,
        group: group_options(),
        external_labels: Vec::new(),
        external_url: "http://osprey".to_string(),
    };
    backtest(&engine(), db as Arc<dyn Queryable>, specs(case), &options).expect("backtest")
}

/// The active alerts (labels, state) the backtest says hold at `ts`.
fn active_at(result: &Backtest, ts: i64) -> BTreeSet<(Labels, AlertState)> {
    let mut out = BTreeSet::new();
    for rule in &result.rules {
        for alert in &rule.alerts {
            for interval in &alert.intervals {
                if interval.start_ms <= ts && interval.end_ms.is_none_or(|end| ts < end) {
                    out.insert((alert.labels.clone(), interval.state));
                }
            }
        }
    }
    out
}

#[test]
fn backtest_equals_live_evaluation_replayed() {
    let mut n_firing = 0;
    let mut n_pending = 0;
    for seed in 0..CASES {
        let case = generate(seed);
        let result = run_backtest(&case);
        for rule in &result.rules {
            assert!(rule.error.is_none(), "seed {seed}: {:?}", rule.error);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_db(dir.path());
        load(&db, &case);
        let env = EvalEnv {
            engine: engine(),
            queryable: db.clone() as Arc<dyn Queryable>,
            appendable: db.clone() as Arc<dyn Appendable>,
            external_labels: Vec::new(),
            external_url: "http://osprey".to_string(),
        };
        let mut groups: Vec<Group> = specs(&case)
            .into_iter()
            .map(|spec| {
                let mut group = Group::new(spec, &group_options());
                group.mark_restored();
                group
            })
            .collect();
        for step in 0..STEPS {
            let ts = step * INTERVAL_MS;
            let mut live = BTreeSet::new();
            let mut live_sent = BTreeSet::new();
            for group in &mut groups {
                for sent in group.eval(&env, ts) {
                    live_sent.insert((
                        format!("{:?}", sent.labels),
                        sent.starts_at_ms,
                        sent.ends_at_ms,
                    ));
                }
                for rule in &group.rules {
                    for alert in rule.alerts() {
                        if alert.state != AlertState::Inactive {
                            live.insert((alert.labels.clone(), alert.state));
                        }
                    }
                }
            }
            let backtested = active_at(&result, ts);
            assert_eq!(
                backtested, live,
                "seed {seed} at {ts} ms; rules:\n{}",
                case.rules
            );
            let backtest_sent: BTreeSet<(String, i64, i64)> = result
                .rules
                .iter()
                .flat_map(|r| &r.sent)
                .filter(|s| s.at_ms == ts)
                .map(|s| (format!("{:?}", s.labels), s.starts_at_ms, s.ends_at_ms))
                .collect();
            assert_eq!(backtest_sent, live_sent, "seed {seed} at {ts} ms");
            n_firing += live
                .iter()
                .filter(|(_, s)| *s == AlertState::Firing)
                .count();
            n_pending += live
                .iter()
                .filter(|(_, s)| *s == AlertState::Pending)
                .count();
        }
    }
    // The generator must produce cases where alerts both wait and fire.
    assert!(n_firing > 500 && n_pending > 100, "{n_firing} {n_pending}");
}

enum KeptDir {
    Temp(tempfile::TempDir),
    Kept(std::path::PathBuf),
}

impl KeptDir {
    fn path(&self) -> &std::path::Path {
        match self {
            KeptDir::Temp(dir) => dir.path(),
            KeptDir::Kept(path) => path,
        }
    }
}

/// promtool's expected-samples line for one `ALERTS` series.
fn alerts_series(labels: &Labels, state: AlertState) -> String {
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value.to_string()))
        .collect();
    pairs.push(format!("alertstate=\"{}\"", state.as_str()));
    pairs.sort();
    format!("ALERTS{{{}}}", pairs.join(", "))
}

#[test]
fn backtest_equals_promtool_at_every_evaluation() {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_string());
    let found = std::process::Command::new(&promtool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("OSPREY_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
            "promtool is required (OSPREY_REQUIRE_EXTERNAL=1) but `{promtool} --version` failed"
        );
        println!("skipped: `{promtool}` not found (install Debian's prometheus package)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Set to keep the generated files for a look with promtool.
    let dir = match std::env::var("OSPREY_BACKTEST_KEEP") {
        Ok(path) => {
            std::fs::create_dir_all(&path).expect("keep dir");
            KeptDir::Kept(std::path::PathBuf::from(path))
        }
        Err(_) => KeptDir::Temp(dir),
    };
    let mut test_files = Vec::new();
    let mut n_expected = 0;
    for seed in 0..CASES {
        let case = generate(seed);
        let result = run_backtest(&case);
        let rule_file = dir.path().join(format!("rules_{seed}.yml"));
        std::fs::write(&rule_file, &case.rules).expect("write rules");
        let mut test = format!(
            "rule_files:\n  - rules_{seed}.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n"
        );
        for (metric, values) in &case.series {
            let _ = write!(
                test,
                "      - series: '{metric}'\n        values: '{values}'\n"
            );
        }
        test.push_str("    promql_expr_test:\n");
        for step in 0..STEPS {
            let ts = step * INTERVAL_MS;
            let _ = write!(
                test,
                "      - expr: ALERTS\n        eval_time: {}m\n        exp_samples:\n",
                step
            );
            let active = active_at(&result, ts);
            if active.is_empty() {
                test.truncate(test.len() - "        exp_samples:\n".len());
                test.push_str("        exp_samples: []\n");
            }
            for (labels, state) in active {
                n_expected += 1;
                let _ = write!(
                    test,
                    "          - labels: '{}'\n            value: 1\n",
                    alerts_series(&labels, state)
                );
            }
        }
        let test_file = dir.path().join(format!("test_{seed}.yml"));
        std::fs::write(&test_file, test).expect("write test");
        test_files.push(test_file);
    }
    assert!(n_expected > 500, "too few expected alerts: {n_expected}");
    let output = std::process::Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .args(&test_files)
        .current_dir(dir.path())
        .output()
        .expect("run promtool");
    assert!(
        output.status.success(),
        "promtool disagrees with the backtest:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
