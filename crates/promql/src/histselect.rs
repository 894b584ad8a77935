//! Native histograms at the top of a query: a plain instant selector
//! (`latency_seconds`, at one or many steps) or a plain range selector
//! (`latency_seconds[5m]`, in an instant query) returns float and
//! histogram samples alike, as Prometheus does.
//!
//! The column-wise evaluator works on floats only. When a selector meets
//! histogram samples it says so (`Ctx::saw_histograms`), and the engine
//! evaluates a plain selector again here, with both kinds; any other
//! expression leaves histograms out until PromQL's histogram functions
//! and operators exist.

use crate::QueryError;
use crate::ast::Expr;
use crate::engine::{MatrixSeries, Value, VectorSample};
use crate::eval::{Ctx, Steps, unwrap_parens};
use model::histogram::FloatHistogram;
use model::storage::Series;

/// One sample of either kind.
enum Point {
    Float(f64),
    Histogram(FloatHistogram),
}

impl Point {
    fn is_stale(&self) -> bool {
        match self {
            Point::Float(v) => model::is_stale_nan(*v),
            Point::Histogram(h) => h.is_stale(),
        }
    }
}

/// The series' samples of both kinds in one ascending list.
fn merged(series: Series) -> Vec<(i64, Point)> {
    let mut out: Vec<(i64, Point)> = series
        .samples
        .map(|(t, v)| (t, Point::Float(v)))
        .chain(series.histograms.map(|(t, h)| (t, Point::Histogram(h))))
        .collect();
    // Stable: at a timestamp in both (storage never gives one), the float
    // comes first and the histogram wins below.
    out.sort_by_key(|(t, _)| *t);
    out
}

/// The value of a plain selector with histograms, or `None` when `expr`
/// is not a plain selector.
pub(crate) fn plain_selector(
    ctx: &Ctx<'_>,
    expr: &Expr,
    steps: &Steps,
    is_range: bool,
) -> Result<Option<Value>, QueryError> {
    let execution = |e: model::storage::StorageError| QueryError::execution(e.to_string());
    match unwrap_parens(expr) {
        Expr::VectorSelector(vs) => {
            let refs = ctx.ref_times(steps, vs.at, vs.offset_ms);
            let (Some(&min_ref), Some(&max_ref)) = (refs.iter().min(), refs.iter().max()) else {
                return Ok(Some(empty(is_range)));
            };
            let mint = min_ref.saturating_sub(ctx.lookback).saturating_add(1);
            let querier = ctx.storage.querier(mint, max_ref).map_err(execution)?;
            let set = if refs.len() == 1 {
                querier.select_latest(&vs.matchers)
            } else {
                querier.select(&vs.matchers)
            }
            .map_err(execution)?;
            let mut vector = Vec::new();
            let mut matrix = Vec::new();
            for series in set {
                ctx.check_deadline()?;
                let series = series.map_err(execution)?;
                let labels = series.labels.clone();
                let points = merged(series);
                let mut next = 0;
                let mut out = MatrixSeries {
                    labels,
                    points: Vec::new(),
                    histograms: Vec::new(),
                };
                for (i, &r) in refs.iter().enumerate() {
                    while next < points.len() && points[next].0 <= r {
                        next += 1;
                    }
                    let Some((t, point)) = next.checked_sub(1).map(|last| &points[last]) else {
                        continue;
                    };
                    if *t <= r - ctx.lookback || point.is_stale() {
                        continue;
                    }
                    let at = steps.time(i);
                    match point {
                        Point::Float(v) => out.points.push((at, *v)),
                        Point::Histogram(h) => out.histograms.push((at, h.clone())),
                    }
                }
                let n = out.points.len() + out.histograms.len();
                if n == 0 {
                    continue;
                }
                ctx.take_samples(n)?;
                if is_range {
                    matrix.push(out);
                } else {
                    let t = steps.time(0);
                    vector.push(match (out.points.pop(), out.histograms.pop()) {
                        (_, Some((_, h))) => VectorSample {
                            labels: out.labels,
                            t,
                            v: 0.0,
                            h: Some(h),
                        },
                        (Some((_, v)), None) => VectorSample {
                            labels: out.labels,
                            t,
                            v,
                            h: None,
                        },
                        (None, None) => continue,
                    });
                }
            }
            Ok(Some(if is_range {
                matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(matrix)
            } else {
                Value::Vector(vector)
            }))
        }
        Expr::MatrixSelector(ms) if !is_range => {
            let refs = ctx.ref_times(steps, ms.selector.at, ms.selector.offset_ms);
            let Some(&r) = refs.first() else {
                return Ok(Some(Value::Matrix(Vec::new())));
            };
            let mint = r.saturating_sub(ms.range_ms).saturating_add(1);
            let querier = ctx.storage.querier(mint, r).map_err(execution)?;
            let set = querier.select(&ms.selector.matchers).map_err(execution)?;
            let mut matrix = Vec::new();
            for series in set {
                ctx.check_deadline()?;
                let series = series.map_err(execution)?;
                let labels = series.labels.clone();
                let mut out = MatrixSeries {
                    labels,
                    points: Vec::new(),
                    histograms: Vec::new(),
                };
                for (t, point) in merged(series) {
                    if t < mint || t > r || point.is_stale() {
                        continue;
                    }
                    match point {
                        Point::Float(v) => out.points.push((t, v)),
                        Point::Histogram(h) => out.histograms.push((t, h)),
                    }
                }
                let n = out.points.len() + out.histograms.len();
                if n == 0 {
                    continue;
                }
                ctx.take_samples(n)?;
                matrix.push(out);
            }
            matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
            Ok(Some(Value::Matrix(matrix)))
        }
        _ => Ok(None),
    }
}

fn empty(is_range: bool) -> Value {
    if is_range {
        Value::Matrix(Vec::new())
    } else {
        Value::Vector(Vec::new())
    }
}
