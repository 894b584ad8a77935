//! A rolling earlier window as the reference (`reference: {rolling: D}`):
//! the current window moved back by the offset, over every version. The
//! series are checked against scipy, scikit-learn and Evidently computed
//! on exactly the records that fall in each span, so a record counted in
//! the wrong window (or a pane too many or too few) shows; the reference
//! slides with time, waits until the model has records from its start on,
//! and comes back from the log after a restart.
//!
//! Also here, as it needs the same records: settings that shape a model's
//! panes and reference (a window other than the default, a time range)
//! hold when the log is replayed at start and when a reload changes them.

#[path = "../../promql/tests/python/mod.rs"]
mod python;

use config::models::{ModelConfig, Reference};
use models::Models;
use python::{Rng, close};
use serde_json::{Value, json};
use std::path::PathBuf;

/// A multiple of the one-minute pane, so window edges are pane edges.
const NOW_MS: i64 = 1_800_000_000_000;
const HOUR_MS: i64 = 3_600_000;

fn normal(rng: &mut Rng, mean: f64, sd: f64) -> f64 {
    let u = rng.uniform().max(1e-300);
    let v = rng.uniform();
    mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// One prediction and its actual, with whole-millisecond timestamps.
struct Record {
    version: &'static str,
    ts_ms: i64,
    x: f64,
    prediction: f64,
    actual: f64,
    actual_ms: i64,
}

impl Record {
    fn prediction_json(&self, id: usize) -> Value {
        json!({
            "id": format!("r{id}"), "version": self.version,
            "timestamp": self.ts_ms as f64 / 1000.0,
            "features": {"x": self.x},
            "prediction": self.prediction,
        })
    }
}

/// Records from three hours before `NOW_MS` on: x ~ N(0, 1) until an
/// hour before now, N(0.6, 1.2) since; the model's error grows in the
/// last hour too. Each actual follows its prediction by up to a minute.
fn generate() -> Vec<Record> {
    let mut rng = Rng(31);
    let mut out = Vec::new();
    let start = NOW_MS - 3 * HOUR_MS;
    let n = 5400;
    for i in 0..n {
        let ts_ms = start + (3 * HOUR_MS) * i / n;
        let late = ts_ms >= NOW_MS - HOUR_MS;
        let x = if late {
            normal(&mut rng, 0.6, 1.2)
        } else {
            normal(&mut rng, 0.0, 1.0)
        };
        let actual = 3.0 * x + 1.0;
        let noise = if late { 1.5 } else { 1.0 };
        out.push(Record {
            version: if i % 3 == 0 { "v2" } else { "v1" },
            ts_ms,
            x,
            prediction: actual + normal(&mut rng, 0.0, noise),
            actual,
            actual_ms: ts_ms + (rng.below(60_000) as i64),
        });
    }
    // One record exactly on the current window's first instant.
    out.push(Record {
        version: "v1",
        ts_ms: NOW_MS - HOUR_MS,
        x: 0.25,
        prediction: 1.5,
        actual: 1.75,
        actual_ms: NOW_MS - HOUR_MS,
    });
    out
}

fn config(offset_ms: i64) -> ModelConfig {
    let mut c = ModelConfig::defaults("price");
    c.window_ms = HOUR_MS;
    c.reference = Reference::Rolling { offset_ms };
    c.configured = true;
    c
}

fn ingest(models: &Models, records: &[Record]) {
    let predictions: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, r)| r.prediction_json(i))
        .collect();
    for chunk in predictions.chunks(1000) {
        models
            .ingest_predictions("price", json!({"records": chunk}).to_string().as_bytes())
            .expect("predictions");
    }
    let actuals: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, r)| json!({"id": format!("r{i}"), "actual": r.actual, "timestamp": r.actual_ms as f64 / 1000.0}))
        .collect();
    for chunk in actuals.chunks(1000) {
        models
            .ingest_actuals("price", json!({"records": chunk}).to_string().as_bytes())
            .expect("actuals");
    }
}

fn find(series: &[(model::Labels, f64)], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    series
        .iter()
        .find(|(l, _)| {
            l.metric_name() == Some(name) && labels.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .map(|(_, v)| *v)
}

/// Checks one evaluation at `now_ms` against the reference libraries
/// over the spans the docs define: the current window is
/// [now − window, now] by pane, the reference the same moved back by the
/// offset, and performance counts the actuals whose timestamp is in a span.
fn check(series: &[(model::Labels, f64)], records: &[Record], now_ms: i64, offset_ms: i64) {
    let pane = HOUR_MS / 60;
    let first_pane = (now_ms - HOUR_MS).div_euclid(pane);
    let current_span = (first_pane * pane, i64::MAX);
    let reference_start = (first_pane - offset_ms / pane) * pane;
    let reference_span = (reference_start, reference_start + HOUR_MS);
    let within = |t: i64, (a, b): (i64, i64)| t >= a && t < b;
    let xs = |span, version: Option<&str>| -> Vec<f64> {
        records
            .iter()
            .filter(|r| within(r.ts_ms, span) && version.is_none_or(|v| r.version == v))
            .map(|r| r.x)
            .collect()
    };
    let joined = |span, version: Option<&str>| -> (Vec<f64>, Vec<f64>) {
        records
            .iter()
            .filter(|r| within(r.actual_ms, span) && version.is_none_or(|v| r.version == v))
            .map(|r| (r.actual, r.prediction))
            .unzip()
    };
    let squared = |(y, p): &(Vec<f64>, Vec<f64>)| -> Vec<f64> {
        y.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).collect()
    };
    let reference_x = xs(reference_span, None);
    let reference_perf = joined(reference_span, None);
    let current_v1 = joined(current_span, Some("v1"));
    assert_eq!(
        find(series, "osprey_model_reference_records", &[]),
        Some(reference_x.len() as f64),
        "the reference holds the records of its span, every version"
    );
    assert_eq!(
        find(series, "osprey_model_records", &[("version", "v1")]),
        Some(xs(current_span, Some("v1")).len() as f64)
    );
    let input = json!({
        "numeric": [{"reference": reference_x, "current": xs(current_span, Some("v1"))}],
        "regression": [
            {"actual": reference_perf.0, "predicted": reference_perf.1},
            {"actual": current_v1.0, "predicted": current_v1.1},
        ],
        "welch": [{"a": squared(&current_v1), "b": squared(&reference_perf)}],
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/statistics.py");
    let Some(output) = python::run(&script, &input.to_string()) else {
        return;
    };
    let want: Value = serde_json::from_str(&output).expect("reference JSON");
    let expect = |name: &str, labels: &[(&str, &str)], want: &Value| {
        let got = find(series, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}"));
        let want = want.as_f64().expect("number");
        assert!(
            close(got, want, 1e-9),
            "at {now_ms}: {name} {labels:?}: osprey {got} reference {want}"
        );
    };
    for method in ["psi", "kl", "js", "ks", "ks_pvalue", "wasserstein"] {
        expect(
            "osprey_model_feature_drift",
            &[("version", "v1"), ("feature", "x"), ("method", method)],
            &want["numeric"][0][method],
        );
    }
    expect(
        "osprey_model_reference_performance",
        &[("version", "v1"), ("metric", "rmse")],
        &want["regression"][0]["rmse"],
    );
    expect(
        "osprey_model_rmse",
        &[("version", "v1")],
        &want["regression"][1]["rmse"],
    );
    expect(
        "osprey_model_performance_change_pvalue",
        &[("version", "v1"), ("metric", "rmse")],
        &want["welch"][0]["pvalue"],
    );
}

#[test]
fn the_reference_is_the_current_window_moved_back_by_the_offset() {
    let records = generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let models = Models::open(Some(dir.path().to_path_buf()), &[config(HOUR_MS)]).expect("open");
    models.configure(&[config(HOUR_MS)]);
    ingest(&models, &records);

    // The hour before: the shifted hour drifts against it.
    let series = models.evaluate_model("price", NOW_MS);
    check(&series, &records, NOW_MS, HOUR_MS);
    let psi = find(
        &series,
        "osprey_model_feature_drift",
        &[("version", "v1"), ("feature", "x"), ("method", "psi")],
    )
    .expect("psi");
    assert!(psi > 0.1, "psi {psi}");
    assert_eq!(
        find(&series, "osprey_model_drift_share", &[("version", "v1")]),
        Some(1.0)
    );

    // Half an hour later both spans have slid by half an hour: the
    // reference now holds half unshifted and half shifted records.
    let later = NOW_MS + HOUR_MS / 2;
    let series = models.evaluate_model("price", later);
    check(&series, &records, later, HOUR_MS);

    // The log brings the spans back after a restart.
    drop(models);
    let reopened =
        Models::open(Some(dir.path().to_path_buf()), &[config(HOUR_MS)]).expect("reopen");
    reopened.configure(&[config(HOUR_MS)]);
    let again = reopened.evaluate_model("price", later);
    let mut a: Vec<String> = series.iter().map(|(l, v)| format!("{l} {v}")).collect();
    let mut b: Vec<String> = again.iter().map(|(l, v)| format!("{l} {v}")).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn a_longer_offset_skips_the_hours_between() {
    let records = generate();
    let models = Models::in_memory();
    models.configure(&[config(2 * HOUR_MS)]);
    ingest(&models, &records);
    let series = models.evaluate_model("price", NOW_MS);
    check(&series, &records, NOW_MS, 2 * HOUR_MS);
}

#[test]
fn no_reference_until_the_model_has_records_from_its_start() {
    // Only the last 90 minutes: the reference an hour back would start
    // 30 minutes before the first record.
    let records: Vec<Record> = generate()
        .into_iter()
        .filter(|r| r.ts_ms >= NOW_MS - 90 * 60_000)
        .collect();
    let models = Models::in_memory();
    models.configure(&[config(HOUR_MS)]);
    ingest(&models, &records);
    let series = models.evaluate_model("price", NOW_MS);
    assert!(find(&series, "osprey_model_records", &[("version", "v1")]).is_some());
    assert_eq!(find(&series, "osprey_model_reference_records", &[]), None);
    assert_eq!(find(&series, "osprey_model_feature_drift", &[]), None);
    // Half an hour later the reference span starts at the first record.
    let later = NOW_MS + HOUR_MS / 2;
    let series = models.evaluate_model("price", later);
    check(&series, &records, later, HOUR_MS);
}

fn sorted_text(series: &[(model::Labels, f64)]) -> Vec<String> {
    let mut out: Vec<String> = series.iter().map(|(l, v)| format!("{l} {v}")).collect();
    out.sort();
    out
}

/// A 30-minute window (30-second panes) and a time-range reference: the
/// same series after a restart (the log replayed under the configured
/// window, as the server opens the models), and after a reload that
/// brings these settings to a model running on defaults.
#[test]
fn a_configured_window_and_time_range_hold_across_restart_and_reload() {
    let records = generate();
    let range = (NOW_MS - 3 * HOUR_MS, NOW_MS - 2 * HOUR_MS);
    let mut configured = ModelConfig::defaults("price");
    configured.window_ms = HOUR_MS / 2;
    configured.reference = Reference::TimeRange {
        start_ms: range.0,
        end_ms: range.1,
    };
    configured.configured = true;
    let configs = [configured];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = Some(dir.path().to_path_buf());

    let models = Models::open(path.clone(), &configs).expect("open");
    models.configure(&configs);
    ingest(&models, &records);
    let series = models.evaluate_model("price", NOW_MS);
    let count = |from: i64, to: i64, version: Option<&str>| {
        records
            .iter()
            .filter(|r| r.ts_ms >= from && r.ts_ms < to && version.is_none_or(|v| r.version == v))
            .count() as f64
    };
    assert_eq!(
        find(&series, "osprey_model_reference_records", &[]),
        Some(count(range.0, range.1, None))
    );
    let pane = HOUR_MS / 2 / 60;
    let first = (NOW_MS - HOUR_MS / 2).div_euclid(pane) * pane;
    assert_eq!(
        find(&series, "osprey_model_records", &[("version", "v1")]),
        Some(count(first, i64::MAX, Some("v1")))
    );
    drop(models);

    let restarted = Models::open(path.clone(), &configs).expect("reopen");
    restarted.configure(&configs);
    assert_eq!(
        sorted_text(&restarted.evaluate_model("price", NOW_MS)),
        sorted_text(&series),
        "after a restart"
    );
    drop(restarted);

    let on_defaults = Models::open(path, &[]).expect("reopen on defaults");
    on_defaults.configure(&[]);
    let before = on_defaults.evaluate_model("price", NOW_MS);
    assert_eq!(
        find(&before, "osprey_model_records", &[("version", "v1")]),
        Some(count(
            (NOW_MS - HOUR_MS).div_euclid(60_000) * 60_000,
            i64::MAX,
            Some("v1")
        )),
        "the default one-hour window"
    );
    on_defaults.configure(&configs);
    assert_eq!(
        sorted_text(&on_defaults.evaluate_model("price", NOW_MS)),
        sorted_text(&series),
        "after a reload"
    );
}
