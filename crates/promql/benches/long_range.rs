//! The engine's share of a long-range query over a downsampled tier,
//! without storage: an in-memory store hands out a year of hourly window
//! points per series as columns (twelve runs each, as a tier stitched
//! from monthly blocks does) and answers hinted selects at the 1h
//! resolution, so what is timed is what the engine does with them (the
//! per-step windows, the functions, the result). The shape is
//! `benches/downsample.py`'s: 200 series (half counters, half gauges),
//! a year at a 1-day step and 30 days at a 1-hour step.
//!
//! Run with `cargo bench -p promql --bench long_range`; prints the median
//! of several runs. `LONG_RANGE_LOOPS=n` repeats each query n more times
//! untimed, for a profiler; `LONG_RANGE_ONLY=text` runs only the queries
//! whose shape and text hold it.

use model::storage::{
    Aggregate, HintedSet, Querier, Queryable, Result, SampleIter, SelectHints, Series, SeriesSet,
};
use model::{Labels, Matcher};
use promql::{Engine, EngineOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SERIES: usize = 200;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// A year of hours, ending on a day boundary.
const POINTS: i64 = 365 * 24;
const END: i64 = 20_000 * DAY;
const RUNS: usize = 12;

struct Column {
    labels: Labels,
    /// (t, value) at the end of each window, the counter ones increasing
    /// across resets as a tier's counter aggregate is.
    points: Arc<Vec<(i64, f64)>>,
    /// (t, sum), (t, count) per window, for avg_over_time.
    sum_count: Arc<Vec<(i64, f64)>>,
}

struct Store {
    series: Vec<Column>,
}

impl Store {
    fn new() -> Store {
        let mut series = Vec::new();
        for k in 0..SERIES {
            let counter = k % 2 == 0;
            let name = if counter {
                "bench_requests_total"
            } else {
                "bench_temperature"
            };
            let labels = Labels::from_pairs([
                ("__name__".to_string(), name.to_string()),
                ("instance".to_string(), format!("host-{k:03}")),
                ("job".to_string(), format!("job-{}", k % 10)),
            ]);
            let mut points = Vec::with_capacity(POINTS as usize);
            let mut sum_count = Vec::with_capacity(2 * POINTS as usize);
            let mut total = 0.0;
            for i in 0..POINTS {
                let t = END - (POINTS - 1 - i) * HOUR - 1;
                let wave = ((i as f64) * std::f64::consts::TAU / 24.0).sin();
                let v = if counter {
                    total += 12.0 * (50.0 + 10.0 * wave + (k % 7) as f64);
                    total
                } else {
                    20.0 + 5.0 * wave + (k % 13) as f64 / 10.0
                };
                points.push((t, v));
                sum_count.push((t, 12.0 * v));
                sum_count.push((t, 12.0));
            }
            series.push(Column {
                labels,
                points: Arc::new(points),
                sum_count: Arc::new(sum_count),
            });
        }
        Store { series }
    }
}

impl Queryable for Store {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>> {
        Ok(Box::new(StoreQuerier {
            series: self
                .series
                .iter()
                .map(|c| {
                    (
                        c.labels.clone(),
                        Arc::clone(&c.points),
                        Arc::clone(&c.sum_count),
                    )
                })
                .collect(),
            mint,
            maxt,
        }))
    }
}

type Shared = Arc<Vec<(i64, f64)>>;

struct StoreQuerier {
    series: Vec<(Labels, Shared, Shared)>,
    mint: i64,
    maxt: i64,
}

impl StoreQuerier {
    /// The matching series, each one's runs made when it is read (as
    /// tsdb decodes a tier's columns).
    fn set(&self, matchers: &[Matcher], sum_count: bool, reach: i64) -> SeriesSet {
        let (mint, maxt) = (self.mint - reach, self.maxt);
        let selected: Vec<(Labels, Shared)> = self
            .series
            .iter()
            .filter(|(l, _, _)| {
                matchers
                    .iter()
                    .all(|m| m.matches(l.get(m.name()).unwrap_or("")))
            })
            .map(|(labels, points, both)| {
                let all = if sum_count { both } else { points };
                (labels.clone(), Arc::clone(all))
            })
            .collect();
        Box::new(selected.into_iter().filter_map(move |(labels, all)| {
            let lo = all.partition_point(|p| p.0 < mint);
            let hi = all.partition_point(|p| p.0 <= maxt);
            if lo >= hi {
                return None;
            }
            // Twelve runs, as monthly tier blocks hand them out.
            let size = (hi - lo).div_ceil(RUNS);
            let runs = all[lo..hi].chunks(size).map(<[_]>::to_vec).collect();
            Some(Ok(Series::floats(labels, SampleIter::from_runs(runs))))
        }))
    }
}

impl Querier for StoreQuerier {
    fn select(&self, matchers: &[Matcher]) -> Result<SeriesSet> {
        Ok(self.set(matchers, false, 0))
    }

    fn select_hinted(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<HintedSet> {
        let reach = if hints.aligned(HOUR) {
            hints.aligned_reach(HOUR)
        } else {
            0
        };
        Ok(HintedSet {
            resolution_ms: HOUR,
            series: self.set(matchers, hints.aggregate == Aggregate::SumCount, reach),
        })
    }

    fn label_names(&self, _: &[Matcher]) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn label_values(&self, _: &str, _: &[Matcher]) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

fn main() {
    let store = Store::new();
    let engine = Engine::new(EngineOptions {
        lookback_delta_ms: 300_000,
        timeout: Duration::from_secs(120),
        max_samples: 500_000_000,
        max_concurrent: 20,
    });
    let loops: usize = std::env::var("LONG_RANGE_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let only = std::env::var("LONG_RANGE_ONLY").unwrap_or_default();
    let functions = [
        "rate(bench_requests_total[{w}])",
        "sum by (job) (increase(bench_requests_total[{w}]))",
        "max_over_time(bench_temperature[{w}])",
        "avg_over_time(bench_temperature[{w}])",
        "bench_temperature",
    ];
    for (shape, days, step, w) in [("1y/1d", 364, DAY, "1d"), ("30d/1h", 30, HOUR, "1h")] {
        for f in functions {
            let q = f.replace("{w}", w);
            if !format!("{shape} {q}").contains(&only) {
                continue;
            }
            let start = END - days * DAY;
            let run = || {
                engine
                    .range_query(&store, &q, start, END, step)
                    .expect("range query")
            };
            let points: usize = match &run().value {
                promql::Value::Matrix(m) => m.iter().map(|s| s.points.len()).sum(),
                _ => 0,
            };
            let time = median(|| {
                run();
            });
            for _ in 0..loops {
                run();
            }
            println!("{shape:6} {q:55} {time:>10.3?}  {points} points");
        }
    }
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..7)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[3]
}
