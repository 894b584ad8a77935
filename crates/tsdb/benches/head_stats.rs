//! `/api/v1/status/tsdb` without filters: the head's cardinality figures
//! (`Storage::head_stats`) over 200,000 series of four labels each, the
//! last one unique per series (a user-ID label, the usual cardinality
//! bomb). `cargo bench -p tsdb --bench head_stats`.
//!
//! Reference: the pass before the single-tally rewrite took 514 ms here
//! against 304 ms after it (one run, 2-core machine; see the closing note
//! of the cardinality work); this benchmark keeps the figure watched.

use criterion::{Criterion, criterion_group, criterion_main};
use model::Labels;
use model::storage::{Appendable, StatsRequest, Storage};
use tsdb::{Db, DbOptions};

fn head_stats(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = DbOptions::with_retention(None, None);
    options.fsync = false;
    let db = Db::open(dir.path(), options).expect("open");
    let mut appender = db.appender();
    for i in 0..200_000u64 {
        let labels = Labels::from_pairs([
            ("__name__", format!("metric_{}", i % 500)),
            ("instance", format!("host-{}", i % 1000)),
            ("job", format!("job-{}", i % 20)),
            ("user", format!("user-{i}")),
        ]);
        appender.append(&labels, 1_000, 1.0).expect("append");
    }
    appender.commit().expect("commit");
    drop(appender);
    let request = StatsRequest::all(10);
    let mut group = c.benchmark_group("head_stats");
    group.sample_size(10);
    group.bench_function("unfiltered_200k_series", |b| {
        b.iter(|| std::hint::black_box(db.head_stats(&request)))
    });
    group.finish();
}

criterion_group!(benches, head_stats);
criterion_main!(benches);
