//! A select large enough to decode on several threads (two batches and
//! more) returns every series with samples in range, in label order, each
//! with exactly its own samples.

use model::storage::{Appendable, Queryable};
use model::{Labels, Matcher};
use tsdb::{Db, DbOptions};

#[test]
fn large_selects_keep_order_and_every_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = DbOptions {
        retention_time_ms: None,
        retention_size_bytes: None,
        block_range_ms: 7_200_000,
        wal_segment_size: 1 << 20,
        fsync: false,
    };
    let db = Db::open(dir.path(), opts).expect("open");
    let series = 2_600;
    let mut app = db.appender();
    for i in 0..series {
        let id = format!("{i:05}");
        let labels = Labels::from_pairs([("__name__", "m"), ("id", id.as_str())]);
        // Every seventh series has its samples outside the queried range.
        let base = if i % 7 == 0 { 1_000_000 } else { 0 };
        for k in 0..(i % 5 + 1) {
            let t = base + k as i64 * 1000;
            app.append(&labels, t, (i * 10 + k) as f64).expect("append");
        }
    }
    app.commit().expect("commit");

    let q = db.querier(0, 500_000).expect("querier");
    let got: Vec<(String, Vec<(i64, f64)>)> = q
        .select(&[Matcher::equal("__name__", "m")])
        .expect("select")
        .map(|s| {
            let s = s.expect("series");
            let id = s.labels.get("id").unwrap_or_default().to_string();
            (id, s.samples.collect())
        })
        .collect();
    let want: Vec<(String, Vec<(i64, f64)>)> = (0..series)
        .filter(|i| i % 7 != 0)
        .map(|i| {
            let samples = (0..(i % 5 + 1))
                .map(|k| (k as i64 * 1000, (i * 10 + k) as f64))
                .collect();
            (format!("{i:05}"), samples)
        })
        .collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
}
