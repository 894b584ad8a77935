//! Fuzzes the PromQL path: parse arbitrary text (with the default options
//! and with every experimental feature on), print what parses and parse
//! the printed text again, which must give the same tree, and evaluate it
//! (instant and range) against a tiny in-memory store with small limits.
//! Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::storage::{Querier, Queryable, Result, SampleIter, Series, SeriesSet};
use model::{Labels, Matcher};
use promql::{Engine, EngineOptions};
use std::sync::OnceLock;
use std::time::Duration;

#[path = "shared/promql_round_trip.rs"]
mod promql_round_trip;
use promql_round_trip::round_trip;

/// A few series with a handful of samples, a stale marker included.
struct TinyStore {
    series: Vec<(Labels, Vec<(i64, f64)>)>,
}

struct TinyQuerier {
    series: Vec<(Labels, Vec<(i64, f64)>)>,
    mint: i64,
    maxt: i64,
}

impl Queryable for TinyStore {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>> {
        Ok(Box::new(TinyQuerier {
            series: self.series.clone(),
            mint,
            maxt,
        }))
    }
}

impl Querier for TinyQuerier {
    fn select(&self, matchers: &[Matcher]) -> Result<SeriesSet> {
        model::storage::check_selectable(matchers)?;
        let (mint, maxt) = (self.mint, self.maxt);
        let out: Vec<Result<Series>> = self
            .series
            .iter()
            .filter(|(l, _)| model::matcher::matches_all(l, matchers))
            .map(|(l, s)| {
                let samples: Vec<(i64, f64)> =
                    s.iter().copied().filter(|(t, _)| *t >= mint && *t <= maxt).collect();
                (l.clone(), samples)
            })
            .filter(|(_, s)| !s.is_empty())
            .map(|(labels, samples)| {
                Ok(Series::floats(labels, SampleIter::from_vec(samples)))
            })
            .collect();
        Ok(Box::new(out.into_iter()))
    }

    fn label_names(&self, _matchers: &[Matcher]) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn label_values(&self, _name: &str, _matchers: &[Matcher]) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

fn store() -> &'static TinyStore {
    static STORE: OnceLock<TinyStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut series = Vec::new();
        for (name, job, le) in [
            ("up", "a", ""),
            ("up", "b", ""),
            ("req_total", "a", ""),
            ("h_bucket", "a", "0.1"),
            ("h_bucket", "a", "+Inf"),
        ] {
            let labels = Labels::from_pairs([("__name__", name), ("job", job), ("le", le)]);
            let mut samples: Vec<(i64, f64)> =
                (0..20).map(|i| (i * 15_000, (i * 3 % 7) as f64)).collect();
            samples.push((20 * 15_000, model::STALE_NAN));
            series.push((labels, samples));
        }
        TinyStore { series }
    })
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::new(EngineOptions {
            lookback_delta_ms: 300_000,
            timeout: Duration::from_millis(200),
            max_samples: 20_000,
            max_concurrent: 1,
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if query.len() > 512 {
        return;
    }
    for options in [promql::ParseOptions::OSPREY, promql::ParseOptions::ALL] {
        if let Ok(expr) = promql::parse_with(query, options) {
            round_trip(&expr, options);
        }
    }
    if promql::parse(query).is_err() {
        return;
    }
    let _ = engine().instant_query(store(), query, 120_000);
    let _ = engine().range_query(store(), query, 0, 300_000, 30_000);
});
