//! The exemplar store: a bounded circular buffer in memory, as
//! Prometheus's `CircularExemplarStorage`.
//!
//! The buffer holds at most `max_exemplars` exemplars of all series
//! together; a new one overwrites the oldest (in order of arrival, whatever
//! its series). Each series' exemplars form a list through the buffer from
//! its oldest to its newest, and an index maps the series' labels to the
//! two ends. A series is in the index while at least one of its exemplars
//! is in the buffer. Per series, exemplars arrive in time order: one not
//! newer than the series' newest is refused as out of order, and one the
//! same as the newest ([`Exemplar::same_as`]) is dropped as a duplicate.
//!
//! Durability is the WAL's (record type 4, `docs/format/wal.md`); this
//! module is memory only and knows nothing of it.

use std::collections::HashMap;
use std::sync::Mutex;

use model::Labels;
use model::Matcher;
use model::exemplar::Exemplar;
use model::exemplar::{
    ExemplarCounters, ExemplarSeries, OUT_OF_ORDER_ERROR, check_label_length, matches_some,
};

/// Why an exemplar was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The store is sized 0.
    Disabled,
    /// The same as the series' newest; expected, and not an error.
    Duplicate,
    /// Not newer than the series' newest.
    OutOfOrder,
    /// Over the label-set length limit.
    LabelLength,
    /// A label with an empty name (remote write and OTLP can send one;
    /// the WAL's label rules, shared with series, forbid it).
    EmptyLabelName,
}

impl Refusal {
    /// Prometheus's message for it.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Disabled => {
                "exemplar storage is disabled or max exemplars is less than or equal to 0"
            }
            Refusal::Duplicate => "duplicate exemplar",
            Refusal::OutOfOrder => OUT_OF_ORDER_ERROR,
            Refusal::LabelLength => model::exemplar::LABEL_LENGTH_ERROR,
            Refusal::EmptyLabelName => "exemplar label with an empty name",
        }
    }
}

/// The circular exemplar store. Every method takes `&self`.
pub struct ExemplarStore {
    inner: Mutex<Ring>,
}

struct Ring {
    /// The buffer: it grows to `capacity` as exemplars arrive (a store of
    /// the default 100,000 that gets none keeps none resident, where
    /// filling it up front took 5.4 MiB of every server), then wraps.
    slots: Vec<Option<Slot>>,
    /// The most exemplars kept.
    capacity: usize,
    /// Where the next exemplar goes.
    next: usize,
    index: HashMap<Labels, Ends>,
    appended_total: u64,
    out_of_order_total: u64,
}

struct Slot {
    exemplar: Exemplar,
    series: Labels,
    /// The series' next newer exemplar.
    newer: Option<usize>,
}

#[derive(Clone, Copy)]
struct Ends {
    oldest: usize,
    newest: usize,
}

impl ExemplarStore {
    /// A store for at most `max_exemplars` (0: none are kept).
    pub fn new(max_exemplars: usize) -> ExemplarStore {
        ExemplarStore {
            inner: Mutex::new(Ring {
                slots: Vec::new(),
                capacity: max_exemplars,
                next: 0,
                index: HashMap::new(),
                appended_total: 0,
                out_of_order_total: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `exemplar` would be stored for `series` now, without
    /// storing it or counting anything (Prometheus's `ValidateExemplar`,
    /// which an appender calls when it stages).
    pub fn validate(&self, series: &Labels, exemplar: &Exemplar) -> Result<(), Refusal> {
        self.lock().validate(series, exemplar)
    }

    /// Stores `exemplar` for `series`, evicting the oldest exemplar when
    /// the buffer is full. An out-of-order refusal is counted.
    pub fn add(&self, series: &Labels, exemplar: Exemplar) -> Result<(), Refusal> {
        let mut ring = self.lock();
        match ring.validate(series, &exemplar) {
            Ok(()) => {}
            Err(Refusal::OutOfOrder) => {
                ring.out_of_order_total += 1;
                return Err(Refusal::OutOfOrder);
            }
            Err(refusal) => return Err(refusal),
        }
        ring.insert(series.clone(), exemplar);
        ring.appended_total += 1;
        Ok(())
    }

    /// Like [`ExemplarStore::add`], but a full buffer doubles instead of
    /// evicting (up to `limit` entries). WAL replay uses it, since the
    /// configured size is applied only after the database is open: a
    /// store configured larger than the one it opens with then still gets
    /// every replayed exemplar, and a smaller one keeps the newest when it
    /// is resized.
    pub fn add_growing(
        &self,
        series: &Labels,
        exemplar: Exemplar,
        limit: usize,
    ) -> Result<(), Refusal> {
        let full = {
            let ring = self.lock();
            ring.capacity > 0 && matches!(ring.slots.get(ring.next), Some(Some(_)))
        };
        if full {
            let size = self.max_exemplars();
            if size < limit {
                self.resize(size.saturating_mul(2).min(limit));
            }
        }
        self.add(series, exemplar)
    }

    /// The exemplars with `mint <= t <= maxt` of the series matching some
    /// selector, sorted by series labels (Prometheus's `Select`: a
    /// series' walk stops at its first exemplar past `maxt`).
    pub fn select(&self, mint: i64, maxt: i64, selectors: &[Vec<Matcher>]) -> Vec<ExemplarSeries> {
        let ring = self.lock();
        let mut out = Vec::new();
        for (series, ends) in &ring.index {
            let (Some(oldest), Some(newest)) = (ring.slot(ends.oldest), ring.slot(ends.newest))
            else {
                continue;
            };
            if oldest.exemplar.timestamp_ms > maxt || newest.exemplar.timestamp_ms < mint {
                continue;
            }
            if !matches_some(series, selectors) {
                continue;
            }
            let mut exemplars = Vec::new();
            let mut at = Some(oldest);
            while let Some(slot) = at {
                if slot.exemplar.timestamp_ms > maxt {
                    break;
                }
                if slot.exemplar.timestamp_ms >= mint {
                    exemplars.push(slot.exemplar.clone());
                }
                at = slot.newer.and_then(|i| ring.slot(i));
            }
            if !exemplars.is_empty() {
                out.push(ExemplarSeries {
                    series_labels: series.clone(),
                    exemplars,
                });
            }
        }
        out.sort_by(|a, b| a.series_labels.cmp(&b.series_labels));
        out
    }

    /// Resizes the buffer, keeping the newest exemplars (in order of
    /// arrival) that fit, as Prometheus's `Resize`. Returns how many were
    /// kept.
    pub fn resize(&self, max_exemplars: usize) -> usize {
        let mut ring = self.lock();
        if ring.capacity == max_exemplars {
            return ring.slots.iter().filter(|s| s.is_some()).count();
        }
        // Until the buffer has wrapped, `next` is its length, and the
        // oldest exemplar is first either way at `next % len`.
        let old_len = ring.slots.len();
        let old_next = ring.next;
        let mut old = std::mem::take(&mut ring.slots);
        ring.capacity = max_exemplars;
        ring.index.clear();
        ring.next = 0;
        let count = old_len.min(max_exemplars);
        let mut kept = 0;
        if count > 0 {
            let start = (old_next + old_len - count) % old_len;
            for i in 0..count {
                if let Some(slot) = old[(start + i) % old_len].take() {
                    ring.insert(slot.series, slot.exemplar);
                    kept += 1;
                }
            }
        }
        kept
    }

    pub fn counters(&self) -> ExemplarCounters {
        let ring = self.lock();
        let in_storage = match ring.slots.get(ring.next) {
            Some(Some(_)) => ring.slots.len(),
            _ => ring.next,
        };
        // The oldest exemplar is at `next` once the buffer is full, at 0
        // before.
        let oldest = match ring.slots.get(ring.next) {
            Some(Some(slot)) => Some(slot),
            _ => ring.slot(0),
        };
        ExemplarCounters {
            appended_total: ring.appended_total,
            out_of_order_total: ring.out_of_order_total,
            in_storage: in_storage as u64,
            series_in_storage: ring.index.len() as u64,
            max_exemplars: ring.capacity as u64,
            last_exemplars_timestamp_seconds: oldest
                .map_or(0.0, |slot| slot.exemplar.timestamp_ms as f64 / 1000.0),
        }
    }

    /// The buffer's size.
    pub fn max_exemplars(&self) -> usize {
        self.lock().capacity
    }
}

impl Ring {
    fn slot(&self, index: usize) -> Option<&Slot> {
        self.slots.get(index).and_then(Option::as_ref)
    }

    fn validate(&self, series: &Labels, exemplar: &Exemplar) -> Result<(), Refusal> {
        if self.capacity == 0 {
            return Err(Refusal::Disabled);
        }
        check_label_length(&exemplar.labels).map_err(|_| Refusal::LabelLength)?;
        if exemplar.labels.iter().any(|l| l.name.is_empty()) {
            return Err(Refusal::EmptyLabelName);
        }
        let Some(newest) = self
            .index
            .get(series)
            .and_then(|ends| self.slot(ends.newest))
        else {
            return Ok(());
        };
        if newest.exemplar.same_as(exemplar) {
            return Err(Refusal::Duplicate);
        }
        if exemplar.timestamp_ms <= newest.exemplar.timestamp_ms {
            return Err(Refusal::OutOfOrder);
        }
        Ok(())
    }

    /// Puts an exemplar at `next` (evicting what is there, or growing the
    /// buffer by a slot until it is full), after its series' newest. The
    /// capacity is not 0.
    fn insert(&mut self, series: Labels, exemplar: Exemplar) {
        let at = self.next;
        if at == self.slots.len() {
            if self.slots.len() == self.slots.capacity() {
                // Doubling, but never past the capacity.
                let grown = (self.slots.len() * 2).max(16).min(self.capacity);
                self.slots.reserve_exact(grown - self.slots.len());
            }
            self.slots.push(None);
        }
        if let Some(evicted) = self.slots.get_mut(at).and_then(Option::take) {
            match evicted.newer {
                None => {
                    self.index.remove(&evicted.series);
                }
                Some(newer) => {
                    if let Some(ends) = self.index.get_mut(&evicted.series) {
                        ends.oldest = newer;
                    }
                }
            }
        }
        match self.index.get_mut(&series) {
            Some(ends) => {
                let previous = ends.newest;
                ends.newest = at;
                if let Some(Some(slot)) = self.slots.get_mut(previous) {
                    slot.newer = Some(at);
                }
            }
            None => {
                self.index.insert(
                    series.clone(),
                    Ends {
                        oldest: at,
                        newest: at,
                    },
                );
            }
        }
        if let Some(slot) = self.slots.get_mut(at) {
            *slot = Some(Slot {
                exemplar,
                series,
                newer: None,
            });
        }
        self.next = (at + 1) % self.capacity.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn exemplar(trace: &str, value: f64, t: i64) -> Exemplar {
        Exemplar {
            labels: labels(&[("trace_id", trace)]),
            value,
            timestamp_ms: t,
            has_timestamp: true,
        }
    }

    /// The buffer takes memory as exemplars arrive, not up front, and
    /// still wraps at its capacity, keeping the newest.
    #[test]
    fn buffer_grows_to_its_capacity_then_wraps() {
        let store = ExemplarStore::new(100_000);
        assert_eq!(store.max_exemplars(), 100_000);
        assert!(store.lock().slots.capacity() == 0);
        let series = labels(&[("__name__", "a")]);
        for t in 1..=3 {
            store.add(&series, exemplar("x", 1.0, t)).unwrap();
        }
        assert_eq!(store.lock().slots.len(), 3);
        assert_eq!(store.counters().in_storage, 3);
        let small = ExemplarStore::new(20);
        for t in 1..=45 {
            small.add(&series, exemplar("x", 1.0, t)).unwrap();
        }
        assert_eq!(small.lock().slots.capacity(), 20);
        assert_eq!(small.counters().in_storage, 20);
        assert_eq!(
            times(&small),
            vec![("a".to_string(), (26..=45).collect::<Vec<_>>())]
        );
        // Resized before it wrapped: the oldest go first.
        let partial = ExemplarStore::new(50);
        for t in 1..=10 {
            partial.add(&series, exemplar("x", 1.0, t)).unwrap();
        }
        assert_eq!(partial.resize(4), 4);
        assert_eq!(times(&partial), vec![("a".to_string(), vec![7, 8, 9, 10])]);
    }

    fn all() -> Vec<Vec<Matcher>> {
        vec![vec![
            Matcher::new(model::MatchOp::RegexMatch, "__name__", ".+").unwrap(),
        ]]
    }

    fn times(store: &ExemplarStore) -> Vec<(String, Vec<i64>)> {
        store
            .select(i64::MIN, i64::MAX, &all())
            .into_iter()
            .map(|s| {
                (
                    s.series_labels.get("__name__").unwrap_or("").to_string(),
                    s.exemplars.iter().map(|e| e.timestamp_ms).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn full_buffer_overwrites_the_oldest_of_any_series() {
        let store = ExemplarStore::new(3);
        let a = labels(&[("__name__", "a")]);
        let b = labels(&[("__name__", "b")]);
        store.add(&a, exemplar("1", 1.0, 1)).unwrap();
        store.add(&b, exemplar("2", 1.0, 2)).unwrap();
        store.add(&a, exemplar("3", 1.0, 3)).unwrap();
        store.add(&a, exemplar("4", 1.0, 4)).unwrap();
        assert_eq!(
            times(&store),
            vec![("a".to_string(), vec![3, 4]), ("b".to_string(), vec![2])]
        );
        store.add(&a, exemplar("5", 1.0, 5)).unwrap();
        assert_eq!(times(&store), vec![("a".to_string(), vec![3, 4, 5])]);
        let c = store.counters();
        assert_eq!(
            (c.in_storage, c.series_in_storage, c.max_exemplars),
            (3, 1, 3)
        );
        assert_eq!(c.appended_total, 5);
        assert_eq!(c.last_exemplars_timestamp_seconds, 0.003);
    }

    #[test]
    fn duplicates_are_dropped_and_old_ones_refused() {
        let store = ExemplarStore::new(10);
        let a = labels(&[("__name__", "a")]);
        store.add(&a, exemplar("1", 1.0, 10)).unwrap();
        assert_eq!(
            store.add(&a, exemplar("1", 1.0, 10)),
            Err(Refusal::Duplicate)
        );
        assert_eq!(
            store.add(&a, exemplar("2", 1.0, 10)),
            Err(Refusal::OutOfOrder)
        );
        assert_eq!(
            store.add(&a, exemplar("2", 1.0, 9)),
            Err(Refusal::OutOfOrder)
        );
        let mut no_time = exemplar("1", 1.0, 20);
        no_time.has_timestamp = false;
        store.add(&a, no_time.clone()).unwrap();
        // The same again at a later scrape time: a duplicate.
        no_time.timestamp_ms = 30;
        assert_eq!(store.add(&a, no_time), Err(Refusal::Duplicate));
        let c = store.counters();
        assert_eq!((c.appended_total, c.out_of_order_total), (2, 2));
        let long = "x".repeat(121);
        assert_eq!(
            store.add(&a, exemplar(&long, 1.0, 40)),
            Err(Refusal::LabelLength)
        );
        let mut nameless = exemplar("t", 1.0, 50);
        nameless.labels = Labels::from_pairs([("", "x")]);
        assert_eq!(store.add(&a, nameless), Err(Refusal::EmptyLabelName));
    }

    #[test]
    fn select_filters_by_time_and_matchers() {
        let store = ExemplarStore::new(10);
        let a = labels(&[("__name__", "a"), ("job", "x")]);
        let b = labels(&[("__name__", "b"), ("job", "y")]);
        for t in 1..=4 {
            store.add(&a, exemplar("t", t as f64, t)).unwrap();
            store.add(&b, exemplar("t", t as f64, t)).unwrap();
        }
        let got = store.select(2, 3, &[vec![Matcher::equal("job", "y")]]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].series_labels, b);
        let t: Vec<i64> = got[0].exemplars.iter().map(|e| e.timestamp_ms).collect();
        assert_eq!(t, vec![2, 3]);
        assert!(store.select(5, 9, &all()).is_empty());
    }

    #[test]
    fn replay_grows_a_full_buffer_up_to_its_limit() {
        let store = ExemplarStore::new(2);
        let a = labels(&[("__name__", "a")]);
        for t in 1..=5 {
            store.add_growing(&a, exemplar("t", 1.0, t), 4).unwrap();
        }
        assert_eq!(store.max_exemplars(), 4);
        assert_eq!(times(&store), vec![("a".to_string(), vec![2, 3, 4, 5])]);
    }

    #[test]
    fn resizing_keeps_the_newest() {
        let store = ExemplarStore::new(4);
        let a = labels(&[("__name__", "a")]);
        for t in 1..=6 {
            store.add(&a, exemplar("t", 1.0, t)).unwrap();
        }
        assert_eq!(store.resize(2), 2);
        assert_eq!(times(&store), vec![("a".to_string(), vec![5, 6])]);
        assert_eq!(store.resize(5), 2);
        store.add(&a, exemplar("t", 1.0, 7)).unwrap();
        assert_eq!(times(&store), vec![("a".to_string(), vec![5, 6, 7])]);
        assert_eq!(store.resize(0), 0);
        assert_eq!(store.add(&a, exemplar("t", 1.0, 8)), Err(Refusal::Disabled));
        assert!(times(&store).is_empty());
    }
}
