//! A recording rule whose expression returns native histograms records
//! them as native histograms, as Prometheus's rule manager does (it used
//! to leave them out), and alerting rules still see floats only.

mod common;

use common::{now_ms, wait_until};
use model::histogram::{FloatHistogram, Span};
use model::labels::LabelsBuilder;
use model::storage::{Appendable, Queryable};
use model::{Labels, Matcher};
use promql::Value;
use rules::parse_rule_file;
use tsdb::Db;

const RULES: &str = "groups:
  - name: histograms
    interval: 100ms
    rules:
      - record: job:latency_seconds:sum
        expr: sum by (job) (latency_seconds)
      - record: job:latency_seconds:count
        expr: histogram_count(sum by (job) (latency_seconds))
";

fn histogram(scale: f64) -> FloatHistogram {
    FloatHistogram {
        schema: 1,
        zero_threshold: 0.001,
        zero_count: scale,
        count: 10.0 * scale,
        sum: 12.5 * scale,
        positive_spans: vec![Span {
            offset: 0,
            length: 3,
        }],
        positive_buckets: vec![2.0 * scale, 4.0 * scale, 3.0 * scale],
        ..FloatHistogram::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut builder = LabelsBuilder::new();
    for (name, value) in pairs {
        builder.set(name.to_string(), value.to_string());
    }
    builder.build()
}

type Stored = (Vec<(i64, f64)>, Vec<(i64, FloatHistogram)>);

/// The float and histogram samples of one metric, oldest first.
fn stored(db: &Db, name: &str) -> Stored {
    let Ok(q) = db.querier(i64::MIN, i64::MAX) else {
        return Stored::default();
    };
    let Ok(set) = q.select(&[Matcher::equal("__name__", name)]) else {
        return Stored::default();
    };
    let mut out = Stored::default();
    for series in set.flatten() {
        out.0.extend(series.samples);
        out.1.extend(series.histograms);
    }
    out
}

#[test]
fn recording_rules_record_native_histograms() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open_db(dir.path());
    // Two instances of one job, written a little in the past so every
    // evaluation within the lookback sees them.
    let t = now_ms() - 1_000;
    let mut app = db.appender();
    for (instance, scale) in [("a", 1.0), ("b", 2.0)] {
        let series = labels(&[
            ("__name__", "latency_seconds"),
            ("job", "api"),
            ("instance", instance),
        ]);
        app.append_histogram(&series, t, &histogram(scale))
            .expect("append");
    }
    app.commit().expect("commit");

    let (manager, engine) = common::manager(&db, &runtime);
    manager.apply(parse_rule_file("rules.yml", RULES).expect("rule file"));
    wait_until("both rules recorded", || {
        !stored(&db, "job:latency_seconds:sum").1.is_empty()
            && !stored(&db, "job:latency_seconds:count").0.is_empty()
    });
    manager.stop();

    // The histogram rule wrote histograms and no floats; each equals what
    // the engine answers for the rule's expression at that time.
    let (floats, histograms) = stored(&db, "job:latency_seconds:sum");
    assert!(floats.is_empty(), "floats recorded: {floats:?}");
    for (ts, recorded) in &histograms {
        let answer = engine
            .instant_query(
                db.as_ref() as &dyn Queryable,
                "sum by (job) (latency_seconds)",
                *ts,
            )
            .expect("query");
        let Value::Vector(samples) = answer.value else {
            panic!("not a vector");
        };
        assert_eq!(samples.len(), 1);
        let want = samples[0].h.as_ref().expect("a histogram");
        assert_eq!(
            (recorded.count, recorded.sum, recorded.zero_count),
            (want.count, want.sum, want.zero_count)
        );
        assert_eq!(recorded.positive_buckets, want.positive_buckets);
        // And the sum of the two inputs: 3 times the first.
        assert_eq!((recorded.count, recorded.sum), (30.0, 37.5));
    }
    // The float rule over the same data recorded the count as a float.
    let (counts, none) = stored(&db, "job:latency_seconds:count");
    assert!(none.is_empty());
    assert!(counts.iter().all(|(_, v)| *v == 30.0), "{counts:?}");
}
