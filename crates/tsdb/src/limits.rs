//! The series limiter: what the head consults before it creates a series
//! (`docs/limits.md`, the types in [`model::limits`]).
//!
//! Each writer ([`WriteOrigin`]) gets a [`Scope`]: its resolved limits,
//! how many head series it created that are still there, its token
//! bucket for new series per minute, and its refusal counters. An
//! appender holds its writer's scope; the head calls [`Limiter::admit`]
//! under its index lock, so the head and per-metric counts it checks are
//! exact, and records the scope in the series so that removing the series
//! gives its place back.
//!
//! Nothing here touches samples of series that exist: only creation is
//! refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use model::limits::{LimitKind, LimitStats, LimitsSpec, Rejections, SeriesLimits, WriteOrigin};
use model::storage::{StorageError, StorageErrorKind};

use crate::sync::{lock, read, write};

/// The most distinct writers tracked one by one. Job names come from the
/// config and sender names from authentication or a header, but
/// pushgateway job names come from URLs: past this many, new writers
/// share the scope of writers without an origin, so a client inventing
/// names cannot grow this table without bound.
const MAX_SCOPES: usize = 10_000;

/// What the head needs to admit a new series: the limiter (`None`
/// admits everything, uncounted) and the writer's scope.
pub(crate) struct Admission<'a> {
    pub(crate) limiter: Option<&'a Limiter>,
    pub(crate) scope: &'a Arc<Scope>,
}

/// One writer's state.
pub(crate) struct Scope {
    origin: Option<WriteOrigin>,
    limits: std::sync::Mutex<SeriesLimits>,
    /// Head series this writer created that are still in the head.
    head_series: AtomicU64,
    bucket: std::sync::Mutex<Bucket>,
    /// Refusals, indexed like [`LimitKind::ALL`].
    rejected: [AtomicU64; 3],
}

impl Scope {
    fn new(origin: Option<WriteOrigin>, limits: SeriesLimits) -> Scope {
        Scope {
            origin,
            limits: std::sync::Mutex::new(limits),
            head_series: AtomicU64::new(0),
            bucket: std::sync::Mutex::new(Bucket::full(limits.get(LimitKind::NewSeriesPerMinute))),
            rejected: Default::default(),
        }
    }

    /// A series this writer created left the head.
    pub(crate) fn released(&self) {
        let _ = self
            .head_series
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }
}

/// A token bucket of `capacity` tokens that refills `capacity` per minute.
struct Bucket {
    capacity: u64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(capacity: u64) -> Bucket {
        Bucket {
            capacity,
            tokens: capacity as f64,
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let capacity = self.capacity as f64;
        self.tokens = (self.tokens + elapsed * capacity / 60.0).min(capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Seconds until the next token.
    fn wait_seconds(&self) -> u64 {
        if self.capacity == 0 {
            return 0;
        }
        let missing = (1.0 - self.tokens).max(0.0);
        (missing * 60.0 / self.capacity as f64).ceil().max(1.0) as u64
    }
}

/// The limits of one store and every writer's scope.
pub(crate) struct Limiter {
    spec: std::sync::RwLock<LimitsSpec>,
    scopes: std::sync::Mutex<HashMap<WriteOrigin, Arc<Scope>>>,
    /// Writers without an origin (rules, internal series), and writers
    /// past [`MAX_SCOPES`].
    other: Arc<Scope>,
}

impl Limiter {
    pub(crate) fn new() -> Limiter {
        Limiter {
            spec: std::sync::RwLock::new(LimitsSpec::default()),
            scopes: std::sync::Mutex::new(HashMap::new()),
            other: Arc::new(Scope::new(None, SeriesLimits::default())),
        }
    }

    /// Replaces the limits; every writer's counts and refusals carry on.
    /// A bucket whose size changes starts full at the new size.
    pub(crate) fn set_spec(&self, spec: &LimitsSpec) {
        *write(&self.spec) = spec.clone();
        let scopes: Vec<Arc<Scope>> = lock(&self.scopes).values().cloned().collect();
        for scope in scopes.iter().chain(std::iter::once(&self.other)) {
            let limits = spec.for_origin(scope.origin.as_ref());
            let mut current = lock(&scope.limits);
            let rate = limits.get(LimitKind::NewSeriesPerMinute);
            if current.get(LimitKind::NewSeriesPerMinute) != rate {
                *lock(&scope.bucket) = Bucket::full(rate);
            }
            *current = limits;
        }
    }

    /// The scope for writes without an origin.
    pub(crate) fn default_scope(&self) -> Arc<Scope> {
        self.other.clone()
    }

    /// The scope of `origin`, made on first use.
    pub(crate) fn scope(&self, origin: &WriteOrigin) -> Arc<Scope> {
        let mut scopes = lock(&self.scopes);
        if let Some(scope) = scopes.get(origin) {
            return scope.clone();
        }
        if scopes.len() >= MAX_SCOPES {
            return self.other.clone();
        }
        let limits = read(&self.spec).for_origin(Some(origin));
        let scope = Arc::new(Scope::new(Some(origin.clone()), limits));
        scopes.insert(origin.clone(), scope.clone());
        scope
    }

    /// Decides whether `scope` may create a series named `metric` while
    /// the head holds `head_series` series, `metric_series` of them named
    /// `metric`. On `Ok` the series counts against the scope (the caller
    /// creates it, and calls [`Scope::released`] when it goes).
    pub(crate) fn admit(
        &self,
        scope: &Scope,
        metric: &str,
        head_series: u64,
        metric_series: u64,
    ) -> Result<(), StorageError> {
        let limits = *lock(&scope.limits);
        let global_head = read(&self.spec).global.get(LimitKind::HeadSeries);
        let refuse = |kind: LimitKind, message: String| {
            scope.rejected[kind as usize].fetch_add(1, Ordering::Relaxed);
            let error_kind = if kind == LimitKind::NewSeriesPerMinute {
                StorageErrorKind::RateLimit
            } else {
                StorageErrorKind::Limit
            };
            Err(StorageError::new(error_kind, message))
        };
        let writer = match &scope.origin {
            Some(origin) => format!(" of {origin}"),
            None => String::new(),
        };
        if global_head > 0 && head_series >= global_head {
            return refuse(
                LimitKind::HeadSeries,
                format!(
                    "new series refused: the head holds {head_series} series, max_head_series is {global_head}"
                ),
            );
        }
        // A writer's own head-series limit is only the one its override
        // sets: the global value bounds the whole head, above.
        let own_head = match &scope.origin {
            Some(WriteOrigin::Job(name)) => read(&self.spec).jobs.get(name).copied(),
            Some(WriteOrigin::Sender(name)) => read(&self.spec).senders.get(name).copied(),
            None => None,
        }
        .map_or(0, |l| l.get(LimitKind::HeadSeries));
        let own = scope.head_series.load(Ordering::Relaxed);
        if own_head > 0 && own >= own_head {
            return refuse(
                LimitKind::HeadSeries,
                format!(
                    "new series refused: the head holds {own} series{writer}, its max_head_series is {own_head}"
                ),
            );
        }
        let per_metric = limits.get(LimitKind::SeriesPerMetric);
        if per_metric > 0 && metric_series >= per_metric {
            return refuse(
                LimitKind::SeriesPerMetric,
                format!(
                    "new series refused: the head holds {metric_series} series of metric {metric:?}, max_series_per_metric is {per_metric}"
                ),
            );
        }
        // The rate is per job and per sender: writers without a name
        // (rules, the pushgateway) are bounded by the hard limits only.
        let rate = limits.get(LimitKind::NewSeriesPerMinute);
        if rate > 0 && scope.origin.is_some() {
            let mut bucket = lock(&scope.bucket);
            if !bucket.take(Instant::now()) {
                let wait = bucket.wait_seconds();
                drop(bucket);
                return refuse(
                    LimitKind::NewSeriesPerMinute,
                    format!(
                        "new series refused: more than {rate} new series in a minute{writer} (max_new_series_per_minute); retry in {wait}s"
                    ),
                );
            }
        }
        scope.head_series.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn stats(&self, head_series: u64) -> LimitStats {
        let spec = read(&self.spec).clone();
        let mut scopes: Vec<Arc<Scope>> = lock(&self.scopes).values().cloned().collect();
        scopes.push(self.other.clone());
        scopes.sort_by(|a, b| a.origin.cmp(&b.origin));
        let mut rejections = Vec::new();
        let mut origin_head_series = Vec::new();
        for scope in &scopes {
            for kind in LimitKind::ALL {
                let count = scope.rejected[kind as usize].load(Ordering::Relaxed);
                if count > 0 {
                    rejections.push(Rejections {
                        limit: kind,
                        origin: scope.origin.clone(),
                        count,
                    });
                }
            }
            if let Some(origin) = &scope.origin {
                let own = match origin {
                    WriteOrigin::Job(name) => spec.jobs.get(name),
                    WriteOrigin::Sender(name) => spec.senders.get(name),
                };
                if own.is_some_and(|l| l.get(LimitKind::HeadSeries) > 0) {
                    origin_head_series
                        .push((origin.clone(), scope.head_series.load(Ordering::Relaxed)));
                }
            }
        }
        LimitStats {
            spec,
            head_series,
            rejections,
            origin_head_series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(global: SeriesLimits) -> LimitsSpec {
        LimitsSpec {
            global,
            ..LimitsSpec::default()
        }
    }

    #[test]
    fn hard_limits_refuse_and_count() {
        let limiter = Limiter::new();
        limiter.set_spec(&spec(SeriesLimits {
            max_head_series: Some(10),
            max_series_per_metric: Some(3),
            max_new_series_per_minute: None,
        }));
        let scope = limiter.scope(&WriteOrigin::Job("a".into()));
        assert!(limiter.admit(&scope, "m", 9, 2).is_ok());
        let unnamed = limiter.default_scope();
        assert!(limiter.admit(&unnamed, "m", 10, 0).is_err());
        let error = limiter.admit(&scope, "m", 10, 0).unwrap_err();
        assert_eq!(error.kind(), StorageErrorKind::Limit);
        assert!(
            error.to_string().contains("max_head_series is 10"),
            "{error}"
        );
        let error = limiter.admit(&scope, "m", 5, 3).unwrap_err();
        assert!(
            error.to_string().contains("max_series_per_metric is 3"),
            "{error}"
        );
        let stats = limiter.stats(5);
        assert_eq!(stats.rejections.len(), 3);
        assert!(stats.rejections.iter().all(|r| r.count == 1));
    }

    #[test]
    fn rate_limit_is_per_writer_and_refills() {
        let limiter = Limiter::new();
        let mut limits = spec(SeriesLimits {
            max_new_series_per_minute: Some(2),
            ..SeriesLimits::default()
        });
        limits.jobs.insert(
            "free".into(),
            SeriesLimits {
                max_new_series_per_minute: Some(0),
                ..SeriesLimits::default()
            },
        );
        limiter.set_spec(&limits);
        let a = limiter.scope(&WriteOrigin::Job("a".into()));
        let b = limiter.scope(&WriteOrigin::Sender("b".into()));
        let free = limiter.scope(&WriteOrigin::Job("free".into()));
        assert!(limiter.admit(&a, "m", 0, 0).is_ok());
        assert!(limiter.admit(&a, "m", 0, 0).is_ok());
        let error = limiter.admit(&a, "m", 0, 0).unwrap_err();
        assert_eq!(error.kind(), StorageErrorKind::RateLimit);
        assert!(error.to_string().contains("retry in 30s"), "{error}");
        assert!(limiter.admit(&b, "m", 0, 0).is_ok());
        let unnamed = limiter.default_scope();
        for _ in 0..100 {
            assert!(limiter.admit(&free, "m", 0, 0).is_ok());
            assert!(limiter.admit(&unnamed, "m", 0, 0).is_ok());
        }
        let mut bucket = Bucket::full(60);
        let start = Instant::now();
        for _ in 0..60 {
            assert!(bucket.take(start));
        }
        assert!(!bucket.take(start));
        assert!(bucket.take(start + std::time::Duration::from_secs(1)));
    }

    #[test]
    fn own_head_limit_counts_created_series_and_releases() {
        let limiter = Limiter::new();
        let mut limits = LimitsSpec::default();
        limits.jobs.insert(
            "bomb".into(),
            SeriesLimits {
                max_head_series: Some(2),
                ..SeriesLimits::default()
            },
        );
        limiter.set_spec(&limits);
        let bomb = limiter.scope(&WriteOrigin::Job("bomb".into()));
        assert!(limiter.admit(&bomb, "m", 100, 0).is_ok());
        assert!(limiter.admit(&bomb, "m", 100, 0).is_ok());
        assert!(limiter.admit(&bomb, "m", 100, 0).is_err());
        bomb.released();
        assert!(limiter.admit(&bomb, "m", 100, 0).is_ok());
        let other = limiter.scope(&WriteOrigin::Job("other".into()));
        assert!(limiter.admit(&other, "m", 100, 0).is_ok());
        let stats = limiter.stats(100);
        assert_eq!(
            stats.origin_head_series,
            vec![(WriteOrigin::Job("bomb".into()), 2)]
        );
    }
}
