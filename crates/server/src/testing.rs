//! An in-memory [`Storage`] for tests of the HTTP layer, so they need no
//! TSDB. It honours the trait's contract: series come out sorted by label
//! set, ranges are inclusive at both ends, the last write to a timestamp
//! wins, and a commit is all or nothing. It is not durable and not fast;
//! never use it outside tests.
//!
//! Tests get their store from [`test_storage`], so switching them to the
//! real TSDB is a change in that one function.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use model::matcher::matches_all;
use model::storage::{
    Appendable, Appender, CardinalityTally, HeadStats, Querier, Queryable, Result, Series,
    SeriesSet, StatsRequest, StatsSelection, Storage, StorageCounters, StorageError,
    StorageErrorKind, check_selectable, validate_labels,
};
use model::{Labels, Matcher};

/// The store every server test uses.
pub fn test_storage() -> Arc<MemoryStorage> {
    Arc::new(MemoryStorage::default())
}

type SeriesMap = BTreeMap<Labels, BTreeMap<i64, f64>>;

/// A map from label set to samples behind one lock.
#[derive(Default)]
pub struct MemoryStorage {
    series: Mutex<SeriesMap>,
    samples_appended_total: AtomicU64,
    series_created_total: AtomicU64,
    commits_total: AtomicU64,
    fail_next_commit: AtomicBool,
}

impl MemoryStorage {
    /// Makes the next commit fail with an I/O error (and store nothing).
    pub fn fail_next_commit(&self) {
        self.fail_next_commit.store(true, Ordering::SeqCst);
    }

    /// Number of successful commits so far.
    pub fn commits(&self) -> u64 {
        self.commits_total.load(Ordering::SeqCst)
    }

    /// Every stored sample, for assertions: `(labels, samples)` sorted.
    pub fn dump(&self) -> Vec<(Labels, Vec<(i64, f64)>)> {
        self.lock()
            .iter()
            .map(|(l, s)| (l.clone(), s.iter().map(|(&t, &v)| (t, v)).collect()))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, SeriesMap> {
        // A poisoned lock only means a test panicked elsewhere; the map is
        // still consistent because every mutation is a single insert.
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct MemoryAppender<'a> {
    storage: &'a MemoryStorage,
    staged: Vec<(Labels, i64, f64)>,
}

impl Appendable for MemoryStorage {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(MemoryAppender {
            storage: self,
            staged: Vec::new(),
        })
    }
}

impl Appender for MemoryAppender<'_> {
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<()> {
        validate_labels(labels)?;
        self.staged.push((labels.clone(), t, v));
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        let staged = std::mem::take(&mut self.staged);
        if self.storage.fail_next_commit.swap(false, Ordering::SeqCst) {
            return Err(StorageError::new(
                StorageErrorKind::Io,
                "injected commit failure",
            ));
        }
        let mut map = self.storage.lock();
        let n_samples = staged.len() as u64;
        for (labels, t, v) in staged {
            let samples = map.entry(labels).or_insert_with(|| {
                self.storage
                    .series_created_total
                    .fetch_add(1, Ordering::SeqCst);
                BTreeMap::new()
            });
            samples.insert(t, v);
        }
        self.storage
            .samples_appended_total
            .fetch_add(n_samples, Ordering::SeqCst);
        self.storage.commits_total.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn rollback(&mut self) {
        self.staged.clear();
    }
}

/// A snapshot of the series with samples inside the range.
struct MemoryQuerier {
    series: Vec<(Labels, Vec<(i64, f64)>)>,
}

impl Queryable for MemoryStorage {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>> {
        let map = self.lock();
        let series = map
            .iter()
            .filter_map(|(labels, samples)| {
                let in_range: Vec<(i64, f64)> =
                    samples.range(mint..=maxt).map(|(&t, &v)| (t, v)).collect();
                (!in_range.is_empty()).then(|| (labels.clone(), in_range))
            })
            .collect();
        Ok(Box::new(MemoryQuerier { series }))
    }
}

impl MemoryQuerier {
    fn matching<'a>(&'a self, matchers: &'a [Matcher]) -> impl Iterator<Item = &'a Labels> + 'a {
        self.series
            .iter()
            .map(|(l, _)| l)
            .filter(move |l| matches_all(l, matchers))
    }
}

impl Querier for MemoryQuerier {
    fn select(&self, matchers: &[Matcher]) -> Result<SeriesSet> {
        check_selectable(matchers)?;
        let selected: Vec<Result<Series>> = self
            .series
            .iter()
            .filter(|(l, _)| matches_all(l, matchers))
            .map(|(labels, samples)| {
                Ok(Series::floats(
                    labels.clone(),
                    model::storage::SampleIter::from_vec(samples.clone()),
                ))
            })
            .collect();
        Ok(Box::new(selected.into_iter()))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .matching(matchers)
            .flat_map(|l| l.iter().map(|l| l.name.to_string()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut values: Vec<String> = self
            .matching(matchers)
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}

impl Storage for MemoryStorage {
    fn head_stats(&self, request: &StatsRequest) -> HeadStats {
        let map = self.lock();
        let mut pairs = std::collections::BTreeSet::new();
        let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
        let mut tally = CardinalityTally::new();
        for (labels, samples) in map.iter() {
            for l in labels {
                pairs.insert((l.name.as_str(), l.value.as_str()));
            }
            if let (Some((&first, _)), Some((&last, _))) =
                (samples.first_key_value(), samples.last_key_value())
            {
                min_time = min_time.min(first);
                max_time = max_time.max(last);
            }
            let selected = match &request.selection {
                StatsSelection::All => true,
                StatsSelection::Matching(sets) => sets.iter().any(|set| matches_all(labels, set)),
            };
            if selected {
                tally.add(labels);
            }
        }
        HeadStats {
            num_series: map.len() as u64,
            num_chunks: map.len() as u64,
            num_label_pairs: pairs.len() as u64,
            min_time,
            max_time,
            cardinality: tally.finish(request.limit, request.focus_label.as_deref()),
        }
    }

    fn counters(&self) -> StorageCounters {
        let head_series = self.lock().len() as u64;
        StorageCounters {
            samples_appended_total: self.samples_appended_total.load(Ordering::SeqCst),
            series_created_total: self.series_created_total.load(Ordering::SeqCst),
            head_series,
            head_chunks: head_series,
            wal_writes_total: self.commits_total.load(Ordering::SeqCst),
            wal_fsyncs_total: self.commits_total.load(Ordering::SeqCst),
            ..StorageCounters::default()
        }
    }
}
