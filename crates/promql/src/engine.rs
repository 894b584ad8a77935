//! The public engine: options, limits, results and errors.

use crate::ast::{Expr, ValueType};
use crate::eval::{Ctx, Steps};
use crate::value::{StepSeries, Val};
use model::Labels;
use model::histogram::FloatHistogram;
use model::storage::Queryable;
/// Maps keyed by label sets from storage: the unkeyed fast hasher.
type HashMap<K, V> = std::collections::HashMap<K, V, model::labels::FastBuildHasher>;
use std::fmt;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Prometheus's limit on points per series in a range query.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Engine limits. Prometheus's defaults are in the field comments.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample; 300,000.
    pub lookback_delta_ms: i64,
    /// A query running longer fails with a timeout; 2 minutes.
    pub timeout: Duration,
    /// Most samples a query may hold in memory at once; 50,000,000.
    pub max_samples: usize,
    /// Queries evaluated at once; more wait for a slot; 20.
    pub max_concurrent: usize,
}

impl EngineOptions {
    /// Prometheus's defaults: 5 m lookback, 2 m timeout, 50 million
    /// samples, 20 concurrent queries.
    pub fn prometheus_defaults() -> EngineOptions {
        EngineOptions {
            lookback_delta_ms: 300_000,
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            max_concurrent: 20,
        }
    }
}

/// Per-query settings from the API (`timeout`, `lookback_delta`); unset
/// fields use the engine's options.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueryOptions {
    /// Shortens the engine's timeout for this query (never lengthens it).
    pub timeout: Option<Duration>,
    /// Replaces the lookback delta for this query when positive.
    pub lookback_delta_ms: Option<i64>,
    /// The coarsest downsampled resolution (ms) selectors may read
    /// (Thanos's `max_source_resolution`): `Some(0)` for raw only, `None`
    /// to let storage choose from the step and each selector's range.
    pub max_source_resolution_ms: Option<i64>,
}

/// The evaluation times of a query.
#[derive(Clone, Copy)]
struct Span {
    start: i64,
    end: i64,
    step: i64,
    is_range: bool,
}

impl Span {
    fn instant(t: i64) -> Span {
        Span {
            start: t,
            end: t,
            step: 0,
            is_range: false,
        }
    }
}

/// Evaluates PromQL queries. Shareable between threads.
pub struct Engine {
    opts: EngineOptions,
    parse_options: crate::ParseOptions,
    running: Mutex<usize>,
    slot_freed: Condvar,
}

/// The result of a query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryOutput {
    pub value: Value,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    pub stats: QueryStats,
}

/// What a query cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryStats {
    /// Samples read from storage and produced by evaluation steps.
    pub total_samples: u64,
    /// The most samples held at one time (approximate).
    pub peak_samples: usize,
    pub queue_time: Duration,
    pub parse_time: Duration,
    pub eval_time: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<VectorSample>),
    Matrix(Vec<MatrixSeries>),
}

/// One sample of an instant vector: a float `v`, or a native histogram
/// `h` (then `v` is 0 and means nothing).
#[derive(Clone, Debug, PartialEq)]
pub struct VectorSample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
    pub h: Option<FloatHistogram>,
}

/// One series of a range result: float points and native histogram
/// points, each ascending, no timestamp in both.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
    pub histograms: Vec<(i64, FloatHistogram)>,
}

/// How a query failed; the HTTP layer maps this to `errorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryErrorKind {
    /// The query or its parameters are wrong (parse and type errors).
    BadData,
    Timeout,
    Canceled,
    /// Evaluation failed (duplicate label sets, storage errors).
    Execution,
    /// The query would hold more samples than allowed.
    TooManySamples,
}

/// A failed query. `Display` is Prometheus's message.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryError {
    kind: QueryErrorKind,
    message: String,
}

impl QueryError {
    pub fn new(kind: QueryErrorKind, message: impl Into<String>) -> QueryError {
        QueryError {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn bad_data(message: impl Into<String>) -> QueryError {
        QueryError::new(QueryErrorKind::BadData, message)
    }

    pub(crate) fn execution(message: impl Into<String>) -> QueryError {
        QueryError::new(QueryErrorKind::Execution, message)
    }

    pub(crate) fn too_many_samples() -> QueryError {
        QueryError::new(
            QueryErrorKind::TooManySamples,
            "query processing would load too many samples into memory in query execution",
        )
    }

    pub fn kind(&self) -> QueryErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QueryError {}

/// Returns the concurrency slot when a query ends, however it ends.
struct SlotGuard<'a>(&'a Engine);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.0.running.lock() {
            *running = running.saturating_sub(1);
        }
        self.0.slot_freed.notify_one();
    }
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Engine {
        Engine {
            opts,
            parse_options: crate::ParseOptions::OSPREY,
            running: Mutex::new(0),
            slot_freed: Condvar::new(),
        }
    }

    /// The same engine parsing queries with these experimental features
    /// (Prometheus's `--enable-feature` values; see
    /// [`crate::ParseOptions::enable_feature`]).
    pub fn with_parse_options(mut self, parse_options: crate::ParseOptions) -> Engine {
        self.parse_options = parse_options;
        self
    }

    pub fn parse_options(&self) -> crate::ParseOptions {
        self.parse_options
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `time_ms`.
    pub fn instant_query(
        &self,
        storage: &dyn Queryable,
        query: &str,
        time_ms: i64,
    ) -> Result<QueryOutput, QueryError> {
        self.run(
            storage,
            query,
            Span::instant(time_ms),
            QueryOptions::default(),
        )
    }

    /// [`Engine::instant_query`] with per-query options.
    pub fn instant_query_with(
        &self,
        storage: &dyn Queryable,
        query: &str,
        time_ms: i64,
        options: QueryOptions,
    ) -> Result<QueryOutput, QueryError> {
        self.run(storage, query, Span::instant(time_ms), options)
    }

    /// Evaluates `query` at `start_ms, start_ms + step_ms, …, end_ms`.
    pub fn range_query(
        &self,
        storage: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryOutput, QueryError> {
        self.range_query_with(
            storage,
            query,
            start_ms,
            end_ms,
            step_ms,
            QueryOptions::default(),
        )
    }

    /// [`Engine::range_query`] with per-query options.
    pub fn range_query_with(
        &self,
        storage: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        options: QueryOptions,
    ) -> Result<QueryOutput, QueryError> {
        if step_ms <= 0 {
            return Err(QueryError::bad_data(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if end_ms < start_ms {
            return Err(QueryError::bad_data(
                "end timestamp must not be before start time",
            ));
        }
        let n_points = (end_ms as i128 - start_ms as i128) / step_ms as i128;
        if n_points > MAX_POINTS_PER_SERIES as i128 {
            return Err(QueryError::bad_data(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        self.run(
            storage,
            query,
            Span {
                start: start_ms,
                end: end_ms,
                step: step_ms,
                is_range: true,
            },
            options,
        )
    }

    fn acquire(&self, deadline: Instant) -> Result<SlotGuard<'_>, QueryError> {
        let timeout = || QueryError::new(QueryErrorKind::Timeout, "query timed out in query queue");
        let mut running = self.running.lock().map_err(|_| timeout())?;
        let max = self.opts.max_concurrent.max(1);
        while *running >= max {
            let now = Instant::now();
            if now >= deadline {
                return Err(timeout());
            }
            let (guard, _) = self
                .slot_freed
                .wait_timeout(running, deadline - now)
                .map_err(|_| timeout())?;
            running = guard;
        }
        *running += 1;
        Ok(SlotGuard(self))
    }

    fn run(
        &self,
        storage: &dyn Queryable,
        query: &str,
        span: Span,
        options: QueryOptions,
    ) -> Result<QueryOutput, QueryError> {
        let Span {
            start,
            end,
            step,
            is_range,
        } = span;
        let began = Instant::now();
        let timeout = options
            .timeout
            .map_or(self.opts.timeout, |t| t.min(self.opts.timeout));
        let deadline = began + timeout;
        let lookback_delta_ms = options
            .lookback_delta_ms
            .filter(|ms| *ms > 0)
            .unwrap_or(self.opts.lookback_delta_ms);
        let _slot = self.acquire(deadline)?;
        let queued = began.elapsed();
        let parse_began = Instant::now();
        let mut expr = crate::parse_with(query, self.parse_options)?;
        if expr.has_duration_exprs() {
            // Prometheus computes `step()` and `range()` from the query:
            // both are 0 for an instant query.
            let (step_s, range_s) = if is_range {
                (step as f64 / 1000.0, (end - start) as f64 / 1000.0)
            } else {
                (0.0, 0.0)
            };
            expr.resolve_durations(step_s, range_s)
                .map_err(QueryError::bad_data)?;
        }
        fold_query_context_functions(&mut expr, start, end, if is_range { step } else { 0 });
        let parse_time = parse_began.elapsed();
        let eval_began = Instant::now();
        let output_type = expr.value_type();
        if is_range && !matches!(output_type, ValueType::Scalar | ValueType::Vector) {
            return Err(QueryError::bad_data(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                crate::parser::type_name(output_type)
            )));
        }
        let steps = Steps::new(start, end, step.max(1));
        let ctx = Ctx::new(
            storage,
            query,
            lookback_delta_ms,
            start,
            end,
            deadline,
            self.opts.max_samples,
        );
        ctx.set_max_source_resolution(options.max_source_resolution_ms);
        let val = ctx.eval_top(&expr, &steps)?;
        let value = if is_range {
            range_value(val, &steps)?
        } else {
            instant_value(val, start)?
        };
        let (warnings, infos, total_samples, peak_samples) = ctx.finish();
        Ok(QueryOutput {
            value,
            warnings,
            infos,
            stats: QueryStats {
                total_samples,
                peak_samples,
                queue_time: queued,
                parse_time,
                eval_time: eval_began.elapsed(),
            },
        })
    }
}

/// Replaces `start()`, `end()`, `range()` and `step()` with the query's
/// values in seconds, as Prometheus does before evaluating (`step()` is 0
/// when start and end are the same).
fn fold_query_context_functions(e: &mut Expr, start: i64, end: i64, step: i64) {
    if let Expr::Call(c) = e
        && c.args.is_empty()
    {
        let value = match c.func.as_str() {
            "start" => Some(start as f64 / 1000.0),
            "end" => Some(end as f64 / 1000.0),
            "range" => Some((end - start) as f64 / 1000.0),
            "step" => Some(if start == end {
                0.0
            } else {
                step as f64 / 1000.0
            }),
            _ => None,
        };
        if let Some(v) = value {
            *e = Expr::Number(v);
            return;
        }
    }
    match e {
        Expr::Binary(b) => {
            fold_query_context_functions(&mut b.lhs, start, end, step);
            fold_query_context_functions(&mut b.rhs, start, end, step);
        }
        Expr::Call(c) => {
            for a in &mut c.args {
                fold_query_context_functions(a, start, end, step);
            }
        }
        Expr::Aggregate(a) => {
            fold_query_context_functions(&mut a.expr, start, end, step);
            if let Some(p) = &mut a.param {
                fold_query_context_functions(p, start, end, step);
            }
        }
        Expr::Unary { expr, .. } | Expr::Paren(expr) => {
            fold_query_context_functions(expr, start, end, step)
        }
        Expr::Subquery(s) => fold_query_context_functions(&mut s.expr, start, end, step),
        Expr::Number(_) | Expr::String(_) | Expr::VectorSelector(_) | Expr::MatrixSelector(_) => {}
    }
}

/// Drops `__name__` (and the type and unit labels) from a series marked
/// for it.
pub(crate) fn final_labels(labels: Labels, drop_name: bool) -> Labels {
    if !drop_name {
        return labels;
    }
    let keep: Vec<model::Label> = labels
        .into_vec()
        .into_iter()
        .filter(|l| l.name != "__name__" && l.name != "__type__" && l.name != "__unit__")
        .collect();
    Labels::from_sorted_unchecked(keep)
}

const SAME_LABELSET: &str = "vector cannot contain metrics with the same labelset";

fn instant_value(val: Val, t: i64) -> Result<Value, QueryError> {
    Ok(match val {
        Val::Scalar(v) => Value::Scalar {
            t,
            v: v.first().copied().unwrap_or(f64::NAN),
        },
        Val::String(s) => Value::String { t, v: s },
        Val::Vector(series) => {
            let mut out = Vec::with_capacity(series.len());
            for mut s in series {
                if let Some(Some(v)) = s.points.first() {
                    out.push(VectorSample {
                        labels: final_labels(s.labels, s.drop_name),
                        t,
                        v: *v,
                        h: None,
                    });
                } else if let Some(Some(h)) = s.hists.first_mut().map(Option::take) {
                    out.push(VectorSample {
                        labels: final_labels(s.labels, s.drop_name),
                        t,
                        v: 0.0,
                        h: Some(h),
                    });
                }
            }
            let mut seen = std::collections::HashSet::with_capacity_and_hasher(
                out.len(),
                model::labels::FastBuildHasher::default(),
            );
            for s in &out {
                if !seen.insert(&s.labels) {
                    return Err(QueryError::execution(SAME_LABELSET));
                }
            }
            Value::Vector(out)
        }
        Val::Matrix(series) => {
            let mut out: Vec<MatrixSeries> = Vec::with_capacity(series.len());
            for s in series {
                if s.samples.is_empty() && s.hists.is_empty() {
                    continue;
                }
                out.push(MatrixSeries {
                    labels: final_labels(s.labels, s.drop_name),
                    points: s.samples,
                    histograms: s.hists,
                });
            }
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            if out.windows(2).any(|w| w[0].labels == w[1].labels) {
                return Err(QueryError::execution(SAME_LABELSET));
            }
            Value::Matrix(out)
        }
    })
}

fn range_value(val: Val, steps: &Steps) -> Result<Value, QueryError> {
    Ok(match val {
        Val::Scalar(v) => Value::Matrix(vec![MatrixSeries {
            labels: Labels::empty(),
            points: v
                .iter()
                .enumerate()
                .map(|(i, v)| (steps.time(i), *v))
                .collect(),
            histograms: Vec::new(),
        }]),
        Val::Vector(series) => Value::Matrix(merge_series(series, steps)?),
        Val::String(_) | Val::Matrix(_) => {
            return Err(QueryError::bad_data(
                "invalid expression type for range query, must be Scalar or instant Vector",
            ));
        }
    })
}

/// A result series being merged: labels, floats and histograms per step.
type MergedSeries = (Labels, Vec<Option<f64>>, Vec<Option<FloatHistogram>>);

/// Drops names where marked, merges series whose label sets became equal
/// (an error if both have a point at one step), and sorts by labels.
pub(crate) fn merge_series(
    series: Vec<StepSeries>,
    steps: &Steps,
) -> Result<Vec<MatrixSeries>, QueryError> {
    let mut merged: Vec<MergedSeries> = Vec::with_capacity(series.len());
    let mut index: HashMap<Labels, usize> =
        HashMap::with_capacity_and_hasher(series.len(), Default::default());
    for s in series {
        if s.is_empty() {
            continue;
        }
        let labels = final_labels(s.labels, s.drop_name);
        match index.get(&labels) {
            Some(&i) => {
                let (_, points, hists) = &mut merged[i];
                for (k, p) in s.points.into_iter().enumerate() {
                    if let Some(v) = p {
                        if points[k].is_some() || hists.get(k).is_some_and(Option::is_some) {
                            return Err(QueryError::execution(SAME_LABELSET));
                        }
                        points[k] = Some(v);
                    }
                }
                for (k, h) in s.hists.into_iter().enumerate() {
                    if let Some(h) = h {
                        if points[k].is_some() || hists.get(k).is_some_and(Option::is_some) {
                            return Err(QueryError::execution(SAME_LABELSET));
                        }
                        if hists.is_empty() {
                            *hists = vec![None; points.len()];
                        }
                        hists[k] = Some(h);
                    }
                }
            }
            None => {
                index.insert(labels.clone(), merged.len());
                merged.push((labels, s.points, s.hists));
            }
        }
    }
    let mut out: Vec<MatrixSeries> = merged
        .into_iter()
        .map(|(labels, points, hists)| MatrixSeries {
            labels,
            points: points
                .into_iter()
                .enumerate()
                .filter_map(|(i, p)| p.map(|v| (steps.time(i), v)))
                .collect(),
            histograms: hists
                .into_iter()
                .enumerate()
                .filter_map(|(i, h)| h.map(|h| (steps.time(i), h)))
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}
