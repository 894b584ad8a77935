//! Series limits: the overload protection a store applies when a write
//! would create a new head series (`docs/limits.md`).
//!
//! A [`LimitsSpec`] holds the configured limits: global values and
//! overrides per scrape job and per remote-write sender. A writer names
//! itself to its appender with a [`WriteOrigin`]
//! ([`crate::storage::Appender::set_origin`]); the store then refuses a
//! new series that would pass a limit with a [`crate::storage::StorageError`]
//! of kind `Limit` (hard limits) or `RateLimit` (new series per minute).
//! Samples of series that already exist are never refused: a target that
//! suddenly grows a user-ID label loses its new series, not its history,
//! and the other writers are untouched.
//!
//! This module only describes; the TSDB enforces.

use std::collections::BTreeMap;

/// One set of limits. `None` is "not set here" (an override inherits the
/// global value); `Some(0)` is "no limit".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Globally: series in the head. For a job or sender: series in the
    /// head that this writer created (since the server started).
    pub max_head_series: Option<u64>,
    /// Series in the head with one metric name (all writers together).
    pub max_series_per_metric: Option<u64>,
    /// New series one writer may create per minute (a token bucket of
    /// this size that refills evenly over a minute). Each job and each
    /// sender has a bucket of its own; the global value is their default.
    pub max_new_series_per_minute: Option<u64>,
}

impl SeriesLimits {
    /// `self` where set, `fallback` elsewhere.
    pub fn or(self, fallback: SeriesLimits) -> SeriesLimits {
        SeriesLimits {
            max_head_series: self.max_head_series.or(fallback.max_head_series),
            max_series_per_metric: self
                .max_series_per_metric
                .or(fallback.max_series_per_metric),
            max_new_series_per_minute: self
                .max_new_series_per_minute
                .or(fallback.max_new_series_per_minute),
        }
    }

    /// The value of `kind`, 0 when unset or unlimited.
    pub fn get(&self, kind: LimitKind) -> u64 {
        match kind {
            LimitKind::HeadSeries => self.max_head_series,
            LimitKind::SeriesPerMetric => self.max_series_per_metric,
            LimitKind::NewSeriesPerMinute => self.max_new_series_per_minute,
        }
        .unwrap_or(0)
    }
}

/// The `limits:` section as the store takes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitsSpec {
    pub global: SeriesLimits,
    /// Overrides by scrape job name (and pushgateway `job`).
    pub jobs: BTreeMap<String, SeriesLimits>,
    /// Overrides by remote-write sender (see [`WriteOrigin::Sender`]).
    pub senders: BTreeMap<String, SeriesLimits>,
}

impl LimitsSpec {
    /// The limits that apply to writes from `origin`: its override where
    /// set, the global values elsewhere; for writes without an origin
    /// (rules, internal series) the global values. (The global
    /// `max_head_series` bounds the whole head; a writer's own count is
    /// bounded only by an override that sets it.)
    pub fn for_origin(&self, origin: Option<&WriteOrigin>) -> SeriesLimits {
        let over = match origin {
            Some(WriteOrigin::Job(name)) => self.jobs.get(name).copied(),
            Some(WriteOrigin::Sender(name)) => self.senders.get(name).copied(),
            None => None,
        };
        over.unwrap_or_default().or(self.global)
    }

    /// Every limit set explicitly (0, "no limit", included): globally
    /// (kind and name empty), then per job and per sender, as
    /// `(kind, name, limit, value)`. What the metrics and the status API
    /// list.
    pub fn configured(&self) -> Vec<(&'static str, &str, LimitKind, u64)> {
        let overrides = self
            .jobs
            .iter()
            .map(|(name, l)| ("job", name.as_str(), l))
            .chain(
                self.senders
                    .iter()
                    .map(|(name, l)| ("sender", name.as_str(), l)),
            );
        let mut out = Vec::new();
        for (kind, name, l) in std::iter::once(("", "", &self.global)).chain(overrides) {
            for limit in LimitKind::ALL {
                let value = match limit {
                    LimitKind::HeadSeries => l.max_head_series,
                    LimitKind::SeriesPerMetric => l.max_series_per_metric,
                    LimitKind::NewSeriesPerMinute => l.max_new_series_per_minute,
                };
                if let Some(value) = value {
                    out.push((kind, name, limit, value));
                }
            }
        }
        out
    }

    /// Whether any limit is set at all.
    pub fn is_empty(&self) -> bool {
        let unset = |l: &SeriesLimits| {
            l.get(LimitKind::HeadSeries) == 0
                && l.get(LimitKind::SeriesPerMetric) == 0
                && l.get(LimitKind::NewSeriesPerMinute) == 0
        };
        unset(&self.global) && self.jobs.values().all(unset) && self.senders.values().all(unset)
    }
}

/// Who writes through an appender.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteOrigin {
    /// A scrape job (its `job_name`), or a pushgateway group's `job`.
    Job(String),
    /// A remote-write, OTLP or import client: the authenticated user when
    /// the listener has authentication, else the `X-Scope-OrgID` header
    /// (the tenant header Mimir, Cortex and Thanos senders already set),
    /// else the empty name.
    Sender(String),
}

impl WriteOrigin {
    /// `"job"` or `"sender"`, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            WriteOrigin::Job(_) => "job",
            WriteOrigin::Sender(_) => "sender",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            WriteOrigin::Job(name) | WriteOrigin::Sender(name) => name,
        }
    }
}

impl std::fmt::Display for WriteOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.kind(), self.name())
    }
}

/// Which limit refused a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitKind {
    HeadSeries,
    SeriesPerMetric,
    NewSeriesPerMinute,
}

impl LimitKind {
    pub const ALL: [LimitKind; 3] = [
        LimitKind::HeadSeries,
        LimitKind::SeriesPerMetric,
        LimitKind::NewSeriesPerMinute,
    ];

    /// The config field's name, also the `limit` label of the metrics.
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::HeadSeries => "max_head_series",
            LimitKind::SeriesPerMetric => "max_series_per_metric",
            LimitKind::NewSeriesPerMinute => "max_new_series_per_minute",
        }
    }
}

/// Refusals counted for one writer and one limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejections {
    pub limit: LimitKind,
    /// `None` for writers without an origin.
    pub origin: Option<WriteOrigin>,
    /// Series refused since the server started.
    pub count: u64,
}

/// The store's limits and what they did, for `/metrics` and the UI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitStats {
    pub spec: LimitsSpec,
    pub head_series: u64,
    /// Nonzero counts only, sorted by origin then limit.
    pub rejections: Vec<Rejections>,
    /// Head series each writer created, for writers with a
    /// `max_head_series` of their own.
    pub origin_head_series: Vec<(WriteOrigin, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_fall_back_to_global_values() {
        let mut spec = LimitsSpec {
            global: SeriesLimits {
                max_head_series: Some(100),
                max_series_per_metric: Some(10),
                max_new_series_per_minute: Some(5),
            },
            ..LimitsSpec::default()
        };
        spec.jobs.insert(
            "bomb".into(),
            SeriesLimits {
                max_new_series_per_minute: Some(0),
                ..SeriesLimits::default()
            },
        );
        let bomb = spec.for_origin(Some(&WriteOrigin::Job("bomb".into())));
        assert_eq!(bomb.get(LimitKind::NewSeriesPerMinute), 0);
        assert_eq!(bomb.get(LimitKind::SeriesPerMetric), 10);
        let other = spec.for_origin(Some(&WriteOrigin::Sender("bomb".into())));
        assert_eq!(other.get(LimitKind::NewSeriesPerMinute), 5);
        assert!(!spec.is_empty());
        assert!(LimitsSpec::default().is_empty());
    }
}
