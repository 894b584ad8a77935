//! Where the head's memory goes at about a million active series.
//!
//! Builds a head shaped like `bench.py --profile wide` (1000 hosts, about
//! 990 series each with 6 to 8 labels, 20 samples 15 s apart, written
//! through the same `append_pairs` path remote write takes, WAL included)
//! and prints the live heap bytes per series (a counting global
//! allocator), the resident set per series (`/proc/self/status`), and the
//! head's own estimate by structure (`Head::memory_breakdown`).
//!
//! `cargo run --release -p tsdb --example head_memory [HOSTS] [POINTS]`

use model::storage::{Appendable, Queryable};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use tsdb::{Db, DbOptions};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only
// counts the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now =
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed) + layout.size() as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let delta = new_size as isize - layout.size() as isize;
        let now = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Label names beside the target labels, as node-exporter, the inference
/// API and DCGM use them: (name, number of values).
const EXTRA: [(&str, usize); 6] = [
    ("cpu", 16),
    ("mode", 8),
    ("device", 6),
    ("handler", 12),
    ("le", 14),
    ("gpu", 8),
];

fn main() {
    let mut args = std::env::args().skip(1);
    let hosts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let points: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let per_host = 991;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = DbOptions::with_retention(None, None);
    options.fsync = false;
    let db = Db::open(dir.path(), options).expect("open");
    let (rss_idle, _) = rss();
    let live_idle = LIVE.load(Ordering::Relaxed);

    // Per host: its target labels; per series: a metric name out of 400
    // and one or two extra labels, so label sets are unique.
    let names: Vec<String> = (0..400)
        .map(|i| format!("node_metric_family_{i}_total"))
        .collect();
    let values: Vec<Vec<String>> = EXTRA
        .iter()
        .map(|(_, n)| (0..*n).map(|v| format!("v{v}")).collect())
        .collect();
    let t0 = 1_700_000_000_000i64;
    let start = std::time::Instant::now();
    for p in 0..points {
        for h in 0..hosts {
            let cluster = format!("cluster-{}", h % 8);
            let node = format!("gpu-node-{h:04}");
            let mut appender = db.appender();
            for k in 0..per_host {
                let (job, instance) = match k {
                    0..690 => ("node", format!("{node}:9100")),
                    690..905 => ("inference-api", format!("{node}:8000")),
                    _ => ("dcgm", format!("{node}:9400")),
                };
                let e1 = k % EXTRA.len();
                let e2 = (k / EXTRA.len()) % EXTRA.len();
                let mut pairs: Vec<(&str, &str)> = vec![
                    ("__name__", &names[k % names.len()]),
                    ("cluster", &cluster),
                    ("instance", &instance),
                    ("job", job),
                    ("node", &node),
                ];
                let v1 = k / names.len();
                pairs.push((EXTRA[e1].0, &values[e1][v1 % values[e1].len()]));
                if e2 != e1 && k % 3 == 0 {
                    pairs.push((EXTRA[e2].0, &values[e2][(k / 7) % values[e2].len()]));
                }
                pairs.sort_unstable();
                let t = t0 + p * 15_000 + (h as i64 % 15) * 1000;
                let v = (k as f64) * 1.5 + p as f64;
                appender.append_pairs(&pairs, t, v).expect("append");
            }
            appender.commit().expect("commit");
        }
    }
    let elapsed = start.elapsed();
    let n = db.head().num_series();
    let live = LIVE.load(Ordering::Relaxed) - live_idle;
    let (rss_after, hwm) = rss();
    let per = |b: f64| b / n as f64;
    println!(
        "{n} series x {points} points in {:.1} s ({:.0} samples/s)",
        elapsed.as_secs_f64(),
        (n as f64 * points as f64) / elapsed.as_secs_f64()
    );
    println!(
        "live heap: {:.0} B/series (peak {:.0})",
        per(live as f64),
        per((PEAK.load(Ordering::Relaxed) - live_idle) as f64)
    );
    println!(
        "RSS after: {:.0} B/series ({:.0} over idle), peak RSS {:.0} MiB",
        per(rss_after as f64),
        per(rss_after as f64 - rss_idle as f64),
        hwm as f64 / 1048576.0
    );
    let rows = db.head().memory_breakdown();
    let total: u64 = rows.iter().map(|(_, b)| b).sum();
    println!("{:<36} {:>12} {:>8}", "structure", "MiB", "B/series");
    for (name, bytes) in &rows {
        println!(
            "{name:<36} {:>12.1} {:>8.1}",
            *bytes as f64 / 1048576.0,
            per(*bytes as f64)
        );
    }
    println!(
        "{:<36} {:>12.1} {:>8.1}",
        "head total (estimate)",
        total as f64 / 1048576.0,
        per(total as f64)
    );
    println!(
        "{:<36} {:>12.1} {:>8.1}",
        "rest of live heap (WAL, caches)",
        (live as f64 - total as f64) / 1048576.0,
        per(live as f64 - total as f64)
    );
    println!(
        "{:<36} {:>12.1} {:>8.1}",
        "allocator overhead (RSS - idle - live)",
        (rss_after as f64 - rss_idle as f64 - live as f64) / 1048576.0,
        per(rss_after as f64 - rss_idle as f64 - live as f64)
    );
    // Selects through the storage traits, as PromQL reaches the head:
    // matched series and the best of five runs, so a change to the head's
    // tables can be checked for speed on the same data.
    let t_end = t0 + points * 15_000;
    let regex = |name: &str, pattern: &str| {
        model::Matcher::new(model::MatchOp::RegexMatch, name, pattern).expect("regex")
    };
    let selects: Vec<(&str, Vec<model::Matcher>)> = vec![
        (
            "one metric",
            vec![model::Matcher::equal(
                "__name__",
                "node_metric_family_7_total",
            )],
        ),
        (
            "one host",
            vec![model::Matcher::equal("node", "gpu-node-0042")],
        ),
        (
            "metric in cluster",
            vec![
                model::Matcher::equal("__name__", "node_metric_family_7_total"),
                model::Matcher::equal("cluster", "cluster-3"),
            ],
        ),
        (
            "regex on two labels",
            vec![
                regex("__name__", "node_metric_family_1.*"),
                model::Matcher::equal("job", "inference-api"),
            ],
        ),
        ("whole job", vec![model::Matcher::equal("job", "dcgm")]),
    ];
    println!("{:<24} {:>10} {:>12}", "select", "series", "best ms");
    for (name, matchers) in &selects {
        let mut best = f64::MAX;
        let mut matched = 0;
        for _ in 0..5 {
            let started = std::time::Instant::now();
            let querier = db.querier(t0, t_end).expect("querier");
            let mut n = 0usize;
            for series in querier.select(matchers).expect("select") {
                let series = series.expect("series");
                n += series.samples.count().min(1);
            }
            best = best.min(started.elapsed().as_secs_f64() * 1000.0);
            matched = n;
        }
        println!("{name:<24} {matched:>10} {best:>12.2}");
    }
    // Keep the database alive until here.
    drop(db);
}
