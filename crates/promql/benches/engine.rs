//! Engine benchmark without a harness: a few thousand series in a real
//! tsdb head, timed over typical dashboard queries (instant and range).
//! Run with `cargo bench -p promql`; prints the median of several runs.

use model::Labels;
use model::storage::Appendable;
use promql::{Engine, EngineOptions};
use std::time::{Duration, Instant};

/// 4,000 series (40 jobs x 100 instances), one sample every 15 s for 2 h.
const JOBS: usize = 40;
const INSTANCES: usize = 100;
const SAMPLES: i64 = 480;
const STEP_MS: i64 = 15_000;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = tsdb::Db::open(
        dir.path(),
        tsdb::DbOptions {
            retention_time_ms: None,
            retention_size_bytes: None,
            block_range_ms: tsdb::db::DEFAULT_BLOCK_RANGE_MS,
            wal_segment_size: 64 << 20,
            fsync: false,
        },
    )
    .expect("open");
    let loaded = Instant::now();
    let mut labels = Vec::new();
    for j in 0..JOBS {
        for i in 0..INSTANCES {
            labels.push(Labels::from_pairs([
                ("__name__".to_string(), "http_requests_total".to_string()),
                ("job".to_string(), format!("job-{j}")),
                ("instance".to_string(), format!("host-{i}:9100")),
            ]));
        }
    }
    for t in 0..SAMPLES {
        let mut app = db.appender();
        for (k, l) in labels.iter().enumerate() {
            app.append(l, t * STEP_MS, (t * (k as i64 % 7 + 1)) as f64)
                .expect("append");
        }
        app.commit().expect("commit");
    }
    eprintln!(
        "loaded {} series x {SAMPLES} samples in {:?}",
        labels.len(),
        loaded.elapsed()
    );
    let engine = Engine::new(EngineOptions {
        lookback_delta_ms: 300_000,
        timeout: Duration::from_secs(120),
        max_samples: 50_000_000,
        max_concurrent: 20,
    });
    let end = (SAMPLES - 1) * STEP_MS;
    let queries = [
        "sum(rate(http_requests_total[5m]))",
        "sum by (job) (rate(http_requests_total[5m]))",
        "topk(5, rate(http_requests_total[5m]))",
        "histogram_quantile(0.9, sum by (le) (rate(http_requests_total[5m])))",
        "rate(http_requests_total{job=\"job-3\"}[5m]) / on (instance) group_left rate(http_requests_total{job=\"job-4\"}[5m])",
        "max_over_time(http_requests_total[10m:1m])",
    ];
    for q in queries {
        let instant = median(|| {
            engine.instant_query(&db, q, end).expect("instant");
        });
        let range = median(|| {
            engine
                .range_query(&db, q, end - 3_600_000, end, 60_000)
                .expect("range");
        });
        println!("{q}\n    instant {instant:?}   range 1h/1m {range:?}");
    }
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[2]
}
