//! The integration checked by hand on a real (temporary) tsdb.

use std::sync::Arc;

use config::costs::{Budget, CostsConfig, InstancePrice, Period, StepCounter};
use model::storage::{Appendable, Queryable};
use model::{Labels, Matcher};
use tsdb::{Db, DbOptions};

use super::*;

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

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

fn config() -> CostsConfig {
    let mut c = CostsConfig::defaults();
    c.interval_ms = MINUTE;
    c.delay_ms = 0;
    c.gpu.hour = vec![
        ("NVIDIA H100 80GB HBM3".to_string(), 3.0),
        ("NVIDIA A100-SXM4-40GB".to_string(), 2.0),
    ];
    c.cpu.core_hour = 0.05;
    c.memory.gib_hour = 0.01;
    c.instances = vec![InstancePrice {
        matchers: vec![("job".to_string(), "gpu".to_string())],
        hour: 0.5,
    }];
    c.steps = vec![StepCounter {
        job: "trainer".to_string(),
        metric: "training_steps_total".to_string(),
        window_ms: HOUR,
    }];
    c.budgets = vec![Budget {
        name: "all".to_string(),
        matchers: Vec::new(),
        amount: 10.0,
        period: Period::Day,
        forecast_window_ms: HOUR,
        alert_at: vec![0.8, 1.0],
        for_ms: 0,
    }];
    c
}

/// Two GPUs and an `up` on gpu-node, a CPU job at three cores with 2 GiB
/// resident, and a trainer at 10 steps a second, sampled every 15 s over
/// `[from, to]`.
fn write_data(db: &Db, from: i64, to: i64) {
    let mut app = db.appender();
    let gpu = |model: &str, index: &str| {
        Labels::from_pairs([
            ("__name__", "DCGM_FI_DEV_GPU_UTIL"),
            ("job", "gpu"),
            ("instance", "gpu-node:9400"),
            ("gpu", index),
            ("modelName", model),
        ])
    };
    let h100 = gpu("NVIDIA H100 80GB HBM3", "0");
    let a100 = gpu("NVIDIA A100-SXM4-40GB", "1");
    let up = Labels::from_pairs([
        ("__name__", "up"),
        ("job", "gpu"),
        ("instance", "gpu-node:9400"),
    ]);
    let cpu = Labels::from_pairs([
        ("__name__", "process_cpu_seconds_total"),
        ("job", "etl"),
        ("instance", "etl-1:8000"),
    ]);
    let rss = Labels::from_pairs([
        ("__name__", "process_resident_memory_bytes"),
        ("job", "etl"),
        ("instance", "etl-1:8000"),
    ]);
    let steps = Labels::from_pairs([
        ("__name__", "training_steps_total"),
        ("job", "trainer"),
        ("instance", "trainer-0:8000"),
    ]);
    let mut t = from;
    while t <= to {
        let seconds = (t - T0) as f64 / 1000.0;
        app.append(&h100, t, 87.0).unwrap();
        app.append(&a100, t, 12.0).unwrap();
        app.append(&up, t, 1.0).unwrap();
        app.append(&cpu, t, 3.0 * seconds).unwrap();
        app.append(&rss, t, 2.0 * (1u64 << 30) as f64).unwrap();
        app.append(&steps, t, 10.0 * seconds).unwrap();
        t += 15_000;
    }
    app.commit().unwrap();
}

fn latest(db: &Db, name: &str, at: i64) -> Vec<(Labels, f64)> {
    let q = db.querier(at - 1, at).unwrap();
    q.select_latest(&[Matcher::equal("__name__", name)])
        .unwrap()
        .map(|s| {
            let mut s = s.unwrap();
            (s.labels, s.samples.next().unwrap().1)
        })
        .collect()
}

fn value(db: &Db, name: &str, at: i64, pairs: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = latest(db, name, at)
        .into_iter()
        .filter(|(l, _)| pairs.iter().all(|(n, v)| l.get(n) == Some(*v)))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {pairs:?}: {found:?}");
    found[0]
}

fn check_two_hours(db: &Db) {
    let at = T0 + 2 * HOUR;
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-9, "{a} != {b}");
    // 2 h of an H100 at $3 and an A100 at $2.
    close(
        value(
            db,
            COST_METRIC,
            at,
            &[("resource", "gpu"), ("gpu_model", "NVIDIA H100 80GB HBM3")],
        ),
        6.0,
    );
    close(
        value(
            db,
            COST_METRIC,
            at,
            &[("resource", "gpu"), ("gpu_model", "NVIDIA A100-SXM4-40GB")],
        ),
        4.0,
    );
    // 3 cores × 2 h × $0.05, 2 GiB × 2 h × $0.01, the node at $0.50.
    close(
        value(db, COST_METRIC, at, &[("resource", "cpu"), ("job", "etl")]),
        0.30,
    );
    close(
        value(
            db,
            COST_METRIC,
            at,
            &[("resource", "memory"), ("job", "etl")],
        ),
        0.04,
    );
    close(
        value(
            db,
            COST_METRIC,
            at,
            &[("resource", "instance"), ("job", "gpu")],
        ),
        1.0,
    );
    close(value(db, STEPS_METRIC, at, &[("job", "trainer")]), 72_000.0);
    // The budget: $11.34 of $10 today.
    close(
        value(db, BUDGET_SPENT_METRIC, at, &[("budget", "all")]),
        11.34,
    );
    close(
        value(db, BUDGET_REMAINING_METRIC, at, &[("budget", "all")]),
        -1.34,
    );
    close(
        value(db, BUDGET_SPENT_TOTAL_METRIC, at, &[("budget", "all")]),
        11.34,
    );
    close(
        value(db, BUDGET_PERIOD_END_METRIC, at, &[("budget", "all")]),
        ((T0 + 24 * HOUR) / 1000) as f64,
    );
}

#[test]
fn two_gpus_a_cpu_job_memory_and_an_instance_over_two_hours() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    write_data(&db, T0 - 10 * MINUTE, T0 + 2 * HOUR);
    let mut engine = CostEngine::new(config());
    engine.restore(db.as_ref(), T0).unwrap();
    assert_eq!(engine.run_due(db.as_ref(), db.as_ref(), T0).unwrap(), 0);
    assert_eq!(
        engine
            .run_due(db.as_ref(), db.as_ref(), T0 + 2 * HOUR)
            .unwrap(),
        120
    );
    check_two_hours(&db);
    // Every step wrote every series, and the counters never went down.
    let q = db.querier(T0, T0 + 2 * HOUR).unwrap();
    for s in q
        .select(&[Matcher::equal("__name__", COST_METRIC)])
        .unwrap()
    {
        let s = s.unwrap();
        let values: Vec<(i64, f64)> = s.samples.collect();
        assert_eq!(values.len(), 120, "{:?}", s.labels);
        assert!(values.windows(2).all(|w| w[1].1 >= w[0].1));
        assert!(values.iter().all(|(t, _)| t % MINUTE == 0));
    }
}

#[test]
fn a_restart_catches_up_to_the_same_counters() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    write_data(&db, T0 - 10 * MINUTE, T0 + 2 * HOUR);
    let mut engine = CostEngine::new(config());
    engine.restore(db.as_ref(), T0).unwrap();
    engine.run_due(db.as_ref(), db.as_ref(), T0).unwrap();
    engine
        .run_due(db.as_ref(), db.as_ref(), T0 + 50 * MINUTE + 30_000)
        .unwrap();
    drop(engine);
    // A new process, 70 minutes later: it reads the counters back and
    // evaluates the steps it missed.
    let mut engine = CostEngine::new(config());
    engine.restore(db.as_ref(), T0 + 2 * HOUR).unwrap();
    assert_eq!(
        engine
            .run_due(db.as_ref(), db.as_ref(), T0 + 2 * HOUR)
            .unwrap(),
        70
    );
    check_two_hours(&db);
}

#[test]
fn a_counter_reset_charges_what_came_after() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let cpu = Labels::from_pairs([
        ("__name__", "process_cpu_seconds_total"),
        ("job", "etl"),
        ("instance", "etl-1:8000"),
    ]);
    let mut app = db.appender();
    app.append(&cpu, T0, 7200.0).unwrap();
    app.append(&cpu, T0 + 30_000, 9000.0).unwrap();
    // The process restarted: 360 s since.
    app.append(&cpu, T0 + 60_000, 360.0).unwrap();
    app.commit().unwrap();
    let mut c = config();
    c.budgets.clear();
    let mut engine = CostEngine::new(c);
    engine.run_due(db.as_ref(), db.as_ref(), T0).unwrap();
    engine
        .run_due(db.as_ref(), db.as_ref(), T0 + MINUTE)
        .unwrap();
    // (9000 − 7200) + 360 CPU-seconds = 0.6 core-hours at $0.05.
    let v = value(&db, COST_METRIC, T0 + MINUTE, &[("resource", "cpu")]);
    assert!((v - 0.03).abs() < 1e-12, "{v}");
}

#[test]
fn periods() {
    // 2026-01-01 is a Thursday.
    let t = T0 + 5 * 86_400_000 + 3 * HOUR; // Tuesday 6 January, 03:00
    assert_eq!(period_start_ms(Period::Day, t), T0 + 5 * 86_400_000);
    assert_eq!(period_start_ms(Period::Week, t), T0 + 4 * 86_400_000);
    assert_eq!(period_start_ms(Period::Month, t), T0);
    assert_eq!(
        next_period_start_ms(Period::Month, T0),
        T0 + 31 * 86_400_000
    );
    let december = 1_764_547_200_000; // 2025-12-01
    assert_eq!(next_period_start_ms(Period::Month, december), T0);
}

#[test]
fn the_rule_file_parses() {
    let text = rule_file(&config());
    let groups = rules::parse_rule_file("costs", &text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert!(!groups.is_empty());
    assert!(text.contains("CostBudgetForecastExhausted"), "{text}");
    assert!(rule_file(&CostsConfig::defaults()).is_empty());
}

#[test]
fn a_reload_changes_prices_from_the_next_step_and_the_counters_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    write_data(&db, T0 - 10 * MINUTE, T0 + 2 * HOUR);
    let mut engine = CostEngine::new(config());
    engine.run_due(db.as_ref(), db.as_ref(), T0).unwrap();
    engine.run_due(db.as_ref(), db.as_ref(), T0 + HOUR).unwrap();
    let mut dearer = config();
    dearer.gpu.hour[0].1 = 6.0;
    engine.reconfigure(dearer);
    engine
        .run_due(db.as_ref(), db.as_ref(), T0 + 2 * HOUR)
        .unwrap();
    let h100 = [("resource", "gpu"), ("gpu_model", "NVIDIA H100 80GB HBM3")];
    let v = value(&db, COST_METRIC, T0 + 2 * HOUR, &h100);
    assert!((v - 9.0).abs() < 1e-9, "{v}");
    // The section removed and added again: a new engine reads the
    // counters back.
    let mut engine = CostEngine::new(config());
    engine.restore(db.as_ref(), T0 + 2 * HOUR).unwrap();
    assert_eq!(
        engine
            .run_due(db.as_ref(), db.as_ref(), T0 + 2 * HOUR)
            .unwrap(),
        0
    );
    write_data(&db, T0 + 2 * HOUR + 15_000, T0 + 3 * HOUR);
    engine
        .run_due(db.as_ref(), db.as_ref(), T0 + 3 * HOUR)
        .unwrap();
    let v = value(&db, COST_METRIC, T0 + 3 * HOUR, &h100);
    assert!((v - 12.0).abs() < 1e-9, "{v}");
}
