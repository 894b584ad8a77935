//! The latency SLI's interpolation is the one Prometheus 3's
//! `histogram_fraction` applies to classic buckets: linear inside the
//! bucket holding the threshold, the first bucket starting at 0. The
//! generated error ratio (written in plain PromQL, so Prometheus 2 runs it
//! too) must equal `1 - histogram_fraction(0, threshold, ...)` evaluated by
//! osprey's engine over the same buckets.

use std::sync::Arc;

use model::Labels;
use model::storage::{Appendable, Queryable};
use slo::{BudgetMethod, ParseOptions, Period, Sli};

const MINUTE_MS: i64 = 60_000;

/// Buckets with Python's `le` texts (`1.0`), as prometheus_client writes
/// them, so the generated `le` regex is exercised too.
const BUCKETS: &[(&str, f64)] = &[
    ("0.1", 120.0),
    ("0.5", 300.0),
    ("1.0", 520.0),
    ("2.5", 830.0),
    ("5.0", 960.0),
    ("+Inf", 1000.0),
];

fn store() -> (tempfile::TempDir, Arc<tsdb::Db>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = tsdb::DbOptions::with_retention(None, None);
    options.fsync = false;
    let db = Arc::new(tsdb::Db::open(dir.path(), options).expect("open"));
    {
        let mut appender = db.appender();
        for minute in 0..=20 {
            let t = minute * MINUTE_MS;
            // The rates drift so that the windows see a changing mix.
            let scale = minute as f64 * (1.0 + 0.01 * minute as f64);
            for (le, per_minute) in BUCKETS {
                let labels = Labels::from_pairs([
                    ("__name__", "request_seconds_bucket"),
                    ("job", "api"),
                    ("le", le),
                ]);
                appender
                    .append(&labels, t, per_minute * scale)
                    .expect("append");
            }
            let labels =
                Labels::from_pairs([("__name__", "request_seconds_count"), ("job", "api")]);
            appender.append(&labels, t, 1000.0 * scale).expect("append");
        }
        appender.commit().expect("commit");
    }
    (dir, db)
}

fn value(db: &Arc<tsdb::Db>, query: &str) -> f64 {
    let engine = promql::Engine::new(promql::EngineOptions::prometheus_defaults());
    let queryable: &dyn Queryable = db.as_ref();
    let output = engine
        .instant_query(queryable, query, 20 * MINUTE_MS)
        .unwrap_or_else(|e| panic!("{query}: {}", e.message()));
    match output.value {
        promql::Value::Vector(samples) => {
            let [sample] = samples.as_slice() else {
                panic!("{query}: {samples:?}")
            };
            sample.v
        }
        other => panic!("{query}: {other:?}"),
    }
}

fn error_query(threshold: f64) -> String {
    let spec = format!(
        "version: prometheus/v1\nservice: api\nslos:\n  - name: latency\n    objective: 95\n    sli:\n      latency:\n        histogram: request_seconds\n        selector: '{{job=\"api\"}}'\n        threshold: {threshold}\n        buckets: [0.1, 0.5, 1, 2.5, 5]\n    alerting:\n      page_alert: {{disable: true}}\n      ticket_alert: {{disable: true}}\n"
    );
    let options = ParseOptions {
        default_period: Period::Rolling {
            ms: 30 * 86_400_000,
        },
        budget_method: BudgetMethod::Time,
    };
    let slos = slo::parse_file("latency.yml", &spec, &options).expect("parse");
    let Sli::Events {
        error_query,
        total_query,
    } = &slos[0].sli
    else {
        panic!("{:?}", slos[0].sli)
    };
    let ratio = format!("({error_query}) / ({total_query})");
    ratio.replace("{{.window}}", "5m")
}

#[test]
fn interpolation_is_histogram_fractions() {
    let (_dir, db) = store();
    // Between bounds, below the first bound, on a bound.
    for threshold in [2.0, 0.7, 0.05, 1.0, 4.2] {
        let ours = value(&db, &error_query(threshold));
        let reference = value(
            &db,
            &format!(
                "1 - histogram_fraction(0, {threshold}, sum by (le) (rate(request_seconds_bucket{{job=\"api\"}}[5m])))"
            ),
        );
        assert!(
            (ours - reference).abs() < 1e-12,
            "threshold {threshold}: generated {ours}, histogram_fraction {reference}"
        );
        // And by hand for 2 s: 520 + (830 - 520) × (2 - 1) / (2.5 - 1)
        // of every 1000 within it, in steady proportion.
        if threshold == 2.0 {
            let by_hand = 1.0 - (520.0 + 310.0 * (1.0 / 1.5)) / 1000.0;
            assert!((ours - by_hand).abs() < 1e-12, "{ours} vs {by_hand}");
        }
    }
}
