//! `remote_read`: queries (the query API and rule evaluation) read the
//! local store and the configured remote stores together, as Prometheus's
//! fanout storage does.
//!
//! - A remote store is asked only when the selector holds every one of its
//!   `required_matchers` (as equality matchers), and, without
//!   `read_recent`, only for the part of the range older than the local
//!   store's oldest sample (nothing when the range starts later).
//! - With `filter_external_labels` (the default), the server's external
//!   labels are added to the request as equality matchers (unless the
//!   selector names that label already) and removed from the series
//!   returned, so remote series carry the same labels as local ones.
//! - Series with the same labels from several stores become one, their
//!   samples merged by time; on equal timestamps the local sample wins.
//! - A remote store that fails (or answers after its `remote_timeout`) is
//!   left out with a warning in the log, and the query answers from the
//!   other stores. (Prometheus does the same and also puts the warning in
//!   the API answer, which osprey does not do yet.)
//! - Metadata reads (`/api/v1/series`, `labels`, `label/../values`),
//!   `/federate`, `/api/v1/export` and osprey's own `/api/v1/read` stay
//!   local, as in Prometheus (its remote queriers answer no label
//!   lookups, and its read and federation handlers read local storage).
//!
//! The remote requests run on the server's async runtime; the querier,
//! called from a blocking thread, waits for them.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use model::histogram::{CounterResetHint, FloatHistogram};
use model::storage::{Querier, Queryable, Result, SampleIter, Series, SeriesSet, Storage};
use model::{Labels, LabelsBuilder, MatchOp, Matcher};
use remote::read_client::{ReadClient, ReadSeriesData};

/// The configured remote stores, replaced on every (re)load.
#[derive(Default)]
pub struct RemoteReads {
    inner: RwLock<Option<Arc<Remotes>>>,
}

struct Remotes {
    clients: Vec<Arc<ReadClient>>,
    /// Sorted by name.
    external_labels: Vec<(String, String)>,
    runtime: tokio::runtime::Handle,
}

/// Clients for a configuration's `remote_read` entries, built but not yet
/// in use.
pub struct PreparedRemotes(Option<Arc<Remotes>>);

impl RemoteReads {
    /// Builds the clients of a configuration's `remote_read` entries; an
    /// entry whose client cannot be built (a missing CA file) is an error
    /// and nothing changes.
    pub fn prepare(
        configs: &[config::RemoteReadConfig],
        external_labels: &[(String, String)],
    ) -> std::result::Result<PreparedRemotes, String> {
        if configs.is_empty() {
            return Ok(PreparedRemotes(None));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| format!("remote_read needs the server's runtime: {e}"))?;
        let clients = configs
            .iter()
            .map(|c| ReadClient::new(c).map(Arc::new))
            .collect::<std::result::Result<Vec<_>, String>>()?;
        let mut external_labels = external_labels.to_vec();
        external_labels.sort();
        Ok(PreparedRemotes(Some(Arc::new(Remotes {
            clients,
            external_labels,
            runtime,
        }))))
    }

    /// Puts prepared clients in use; queries started before keep theirs.
    pub fn install(&self, prepared: PreparedRemotes) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = prepared.0;
    }

    fn current(&self) -> Option<Arc<Remotes>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The local store plus the remote ones, as one [`Queryable`].
pub struct Fanout {
    local: Arc<dyn Storage>,
    remotes: Arc<RemoteReads>,
}

impl Fanout {
    pub fn new(local: Arc<dyn Storage>, remotes: Arc<RemoteReads>) -> Fanout {
        Fanout { local, remotes }
    }
}

impl Queryable for Fanout {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>> {
        let local = self.local.querier(mint, maxt)?;
        let Some(remotes) = self.remotes.current() else {
            return Ok(local);
        };
        Ok(Box::new(FanoutQuerier {
            local,
            remotes,
            local_start: self.local.start_time(),
            mint,
            maxt,
        }))
    }
}

struct FanoutQuerier {
    local: Box<dyn Querier>,
    remotes: Arc<Remotes>,
    local_start: i64,
    mint: i64,
    maxt: i64,
}

impl FanoutQuerier {
    /// The series every applicable remote store returns for `matchers`,
    /// external labels removed, sorted by labels, one entry per label set.
    fn remote_series(&self, matchers: &[Matcher]) -> Vec<ReadSeriesData> {
        let mut pending = Vec::new();
        for client in &self.remotes.clients {
            let config = client.config();
            let required = config.required_matchers.iter().all(|(name, value)| {
                matchers
                    .iter()
                    .any(|m| m.op() == MatchOp::Equal && m.name() == name && m.value() == value)
            });
            if !required {
                continue;
            }
            let (mint, mut maxt) = (self.mint, self.maxt);
            if !config.read_recent {
                if mint > self.local_start {
                    continue;
                }
                maxt = maxt.min(self.local_start);
            }
            let mut query: Vec<Matcher> = matchers.to_vec();
            let external: &[(String, String)] = if config.filter_external_labels {
                &self.remotes.external_labels
            } else {
                &[]
            };
            for (name, value) in external {
                if !matchers.iter().any(|m| m.name() == name) {
                    query.push(Matcher::equal(name.clone(), value.clone()));
                }
            }
            let (sender, receiver) = std::sync::mpsc::channel();
            let task_client = client.clone();
            let timeout = Duration::from_millis(config.remote_timeout_ms.max(1) as u64);
            self.remotes.runtime.spawn(async move {
                let answer = task_client.read(mint, maxt, &query).await;
                let _ = sender.send(answer);
            });
            pending.push((client.clone(), receiver, timeout, external.to_vec()));
        }
        let mut out: Vec<ReadSeriesData> = Vec::new();
        for (client, receiver, timeout, external) in pending {
            // The client's own timeout ends the request; a second more
            // covers the hand-over.
            let answer = receiver
                .recv_timeout(timeout + Duration::from_secs(1))
                .map_err(|e| e.to_string())
                .and_then(|a| a);
            match answer {
                Ok(series) => {
                    for mut series in series {
                        series.labels = strip(&series.labels, &external);
                        let (mint, maxt) = (self.mint, self.maxt);
                        series.samples.retain(|&(t, _)| t >= mint && t <= maxt);
                        series.histograms.retain(|(t, _)| *t >= mint && *t <= maxt);
                        if !series.samples.is_empty() || !series.histograms.is_empty() {
                            out.push(series);
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(url = %client.config().url, %error, "remote read failed; answering without that store");
                }
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        // Several stores may return one label set: merge them.
        let mut merged: Vec<ReadSeriesData> = Vec::with_capacity(out.len());
        for series in out {
            match merged.last_mut() {
                Some(last) if last.labels == series.labels => {
                    last.samples = merge_samples(std::mem::take(&mut last.samples), series.samples);
                    last.histograms =
                        merge_histograms(std::mem::take(&mut last.histograms), series.histograms);
                }
                _ => merged.push(series),
            }
        }
        merged
    }
}

/// `labels` without the external labels it carries with their values.
fn strip(labels: &Labels, external: &[(String, String)]) -> Labels {
    if external.is_empty() {
        return labels.clone();
    }
    let mut builder = LabelsBuilder::from_labels(labels);
    for (name, value) in external {
        if labels.get(name) == Some(value.as_str()) {
            builder.delete(name);
        }
    }
    builder.build()
}

/// Two float sample lists in time order merged into one;
/// on equal timestamps the first list's sample is kept.
fn merge_samples<T>(first: Vec<(i64, T)>, second: Vec<(i64, T)>) -> Vec<(i64, T)> {
    merge_by_time(first, second, |_| {})
}

/// Two histogram lists merged as [`merge_samples`] does; where the merged
/// list switches from one source to the other, a "not a counter reset"
/// hint becomes "unknown": it spoke of the sample before it in its own
/// store, not of the other store's sample now before it (Prometheus's
/// merging iterator does the same).
fn merge_histograms(
    first: Vec<(i64, FloatHistogram)>,
    second: Vec<(i64, FloatHistogram)>,
) -> Vec<(i64, FloatHistogram)> {
    merge_by_time(first, second, |h: &mut FloatHistogram| {
        if h.counter_reset_hint == CounterResetHint::NotCounterReset {
            h.counter_reset_hint = CounterResetHint::Unknown;
        }
    })
}

/// The merge behind both: by time, the first list winning a shared
/// timestamp; `on_switch` sees each sample taken from the other list than
/// the sample before it.
fn merge_by_time<T>(
    first: Vec<(i64, T)>,
    second: Vec<(i64, T)>,
    mut on_switch: impl FnMut(&mut T),
) -> Vec<(i64, T)> {
    let mut out = Vec::with_capacity(first.len() + second.len());
    let mut last_source: Option<bool> = None;
    let (mut a, mut b) = (first.into_iter().peekable(), second.into_iter().peekable());
    loop {
        let from_first = match (a.peek().map(|x| x.0), b.peek().map(|x| x.0)) {
            (Some(ta), Some(tb)) => {
                if ta == tb {
                    b.next();
                }
                ta <= tb
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return out,
        };
        let next = if from_first { a.next() } else { b.next() };
        let Some((t, mut v)) = next else {
            return out;
        };
        if last_source.is_some_and(|s| s != from_first) {
            on_switch(&mut v);
        }
        last_source = Some(from_first);
        out.push((t, v));
    }
}

impl Querier for FanoutQuerier {
    fn select(&self, matchers: &[Matcher]) -> Result<SeriesSet> {
        let local = self.local.select(matchers)?;
        let remote = self.remote_series(matchers);
        if remote.is_empty() {
            return Ok(local);
        }
        Ok(Box::new(MergeSet {
            local: local.peekable(),
            remote: remote.into_iter().peekable(),
        }))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        self.local.label_names(matchers)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        self.local.label_values(name, matchers)
    }
}

/// The local series set and the remote series, both sorted by labels,
/// merged into one sorted set.
struct MergeSet {
    local: std::iter::Peekable<SeriesSet>,
    remote: std::iter::Peekable<std::vec::IntoIter<ReadSeriesData>>,
}

impl Iterator for MergeSet {
    type Item = Result<Series>;

    fn next(&mut self) -> Option<Result<Series>> {
        let order = match (self.local.peek(), self.remote.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) | (Some(Ok(_)), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(Ok(local)), Some(remote)) => local.labels.cmp(&remote.labels),
        };
        match order {
            std::cmp::Ordering::Less => self.local.next(),
            std::cmp::Ordering::Greater => {
                let remote = self.remote.next()?;
                Some(Ok(Series {
                    labels: remote.labels,
                    samples: SampleIter::from_vec(remote.samples),
                    histograms: Box::new(remote.histograms.into_iter()),
                }))
            }
            std::cmp::Ordering::Equal => {
                let local = match self.local.next()? {
                    Ok(series) => series,
                    Err(e) => return Some(Err(e)),
                };
                let remote = self.remote.next()?;
                let samples = merge_samples(local.samples.into_vec(), remote.samples);
                let histograms = merge_histograms(local.histograms.collect(), remote.histograms);
                Some(Ok(Series {
                    labels: local.labels,
                    samples: SampleIter::from_vec(samples),
                    histograms: Box::new(histograms.into_iter()),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_order_and_prefers_the_first() {
        assert_eq!(
            merge_samples(
                vec![(1, 1.0), (3, 3.0), (5, 5.0)],
                vec![(2, 20.0), (3, 30.0), (6, 60.0)]
            ),
            vec![(1, 1.0), (2, 20.0), (3, 3.0), (5, 5.0), (6, 60.0)]
        );
        assert_eq!(merge_samples(vec![], vec![(1, 1.0)]), vec![(1, 1.0)]);
    }

    #[test]
    fn external_labels_are_stripped_only_with_their_value() {
        let labels = Labels::from_pairs([("__name__", "up"), ("site", "lab"), ("zone", "b")]);
        let external = vec![
            ("site".to_string(), "lab".to_string()),
            ("zone".to_string(), "a".to_string()),
        ];
        assert_eq!(
            strip(&labels, &external),
            Labels::from_pairs([("__name__", "up"), ("zone", "b")])
        );
    }

    /// Local and remote series merge by label set; a series both have
    /// gets both sample lists merged, histograms included, the local
    /// sample winning a shared timestamp.
    #[test]
    fn merge_set_joins_floats_and_histograms() {
        let h = |count: f64| FloatHistogram {
            count,
            counter_reset_hint: CounterResetHint::NotCounterReset,
            ..FloatHistogram::default()
        };
        let a = Labels::from_pairs([("__name__", "a")]);
        let b = Labels::from_pairs([("__name__", "b")]);
        let local: SeriesSet = Box::new(
            vec![Ok(Series::histograms(
                a.clone(),
                Box::new(vec![(1, h(1.0)), (3, h(3.0))].into_iter()),
            ))]
            .into_iter(),
        );
        let remote = vec![
            ReadSeriesData {
                labels: a.clone(),
                samples: Vec::new(),
                histograms: vec![(2, h(20.0)), (3, h(30.0))],
            },
            ReadSeriesData {
                labels: b.clone(),
                samples: vec![(5, 5.0)],
                histograms: vec![(6, h(6.0))],
            },
        ];
        let merged: Vec<Series> = MergeSet {
            local: local.peekable(),
            remote: remote.into_iter().peekable(),
        }
        .map(|s| s.unwrap())
        .collect();
        assert_eq!(merged.len(), 2);
        let mut it = merged.into_iter();
        let first = it.next().unwrap();
        assert_eq!(first.labels, a);
        let got: Vec<(i64, f64, CounterResetHint)> = first
            .histograms
            .map(|(t, h)| (t, h.count, h.counter_reset_hint))
            .collect();
        // Each switch of source drops a "not a reset" hint to unknown.
        assert_eq!(
            got,
            vec![
                (1, 1.0, CounterResetHint::NotCounterReset),
                (2, 20.0, CounterResetHint::Unknown),
                (3, 3.0, CounterResetHint::Unknown),
            ]
        );
        let second = it.next().unwrap();
        assert_eq!(second.labels, b);
        assert_eq!(second.samples.collect::<Vec<_>>(), vec![(5, 5.0)]);
        assert_eq!(second.histograms.count(), 1);
    }
}
