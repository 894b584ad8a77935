//! PromQL functions: the signature table and the implementations.
//!
//! Range-vector functions get each series' samples and, per step, the
//! left-open window `(ref - range, ref]`; instant-vector functions map each
//! point. The numeric details (Kahan sums, extrapolation, quantiles)
//! follow Prometheus so results agree to the last bits that its tests see.

use crate::QueryError;
use crate::ast::{Call, Expr, ValueType};
use crate::eval::{Ctx, RangeArg, Steps, unwrap_parens};
use crate::value::{RangeSeries, StepSeries, Val};
use model::MatchOp;
use model::storage::Aggregate;
use model::time;
use model::{Labels, LabelsBuilder};

/// One function's signature.
pub(crate) struct Signature {
    pub name: &'static str,
    pub args: &'static [ValueType],
    /// How many trailing arguments are optional; `-1`: the last repeats.
    pub variadic: i32,
    pub returns: ValueType,
}

use ValueType::{Matrix as M, Scalar as S, String as Str, Vector as V};

macro_rules! sig {
    ($name:expr, [$($a:expr),*], $var:expr, $ret:expr) => {
        Signature { name: $name, args: &[$($a),*], variadic: $var, returns: $ret }
    };
}

pub(crate) static FUNCTIONS: &[Signature] = &[
    sig!("abs", [V], 0, V),
    sig!("absent", [V], 0, V),
    sig!("absent_over_time", [M], 0, V),
    sig!("acos", [V], 0, V),
    sig!("acosh", [V], 0, V),
    sig!("asin", [V], 0, V),
    sig!("asinh", [V], 0, V),
    sig!("atan", [V], 0, V),
    sig!("atanh", [V], 0, V),
    sig!("anomaly_band", [M, S], 0, V),
    sig!("anomaly_band_seasonal", [M, S, S, S, S], -1, V),
    sig!("anomaly_score", [M], 0, V),
    sig!("anomaly_score_seasonal", [M, S, S, S], -1, V),
    sig!("avg_over_time", [M], 0, V),
    sig!("ceil", [V], 0, V),
    sig!("changes", [M], 0, V),
    sig!("clamp", [V, S, S], 0, V),
    sig!("clamp_max", [V, S], 0, V),
    sig!("clamp_min", [V, S], 0, V),
    sig!("cos", [V], 0, V),
    sig!("cosh", [V], 0, V),
    sig!("count_over_time", [M], 0, V),
    sig!("days_in_month", [V], 1, V),
    sig!("day_of_month", [V], 1, V),
    sig!("day_of_week", [V], 1, V),
    sig!("day_of_year", [V], 1, V),
    sig!("deg", [V], 0, V),
    sig!("delta", [M], 0, V),
    sig!("deriv", [M], 0, V),
    sig!("double_exponential_smoothing", [M, S, S], 0, V),
    sig!("drift_hellinger", [V, V], 0, V),
    sig!("drift_js", [V, V], 0, V),
    sig!("drift_kl", [V, V], 0, V),
    sig!("drift_ks", [V, V], 0, V),
    sig!("drift_psi", [V, V], 0, V),
    sig!("drift_wasserstein", [V, V], 0, V),
    sig!("end", [], 0, S),
    sig!("exp", [V], 0, V),
    sig!("first_over_time", [M], 0, V),
    sig!("floor", [V], 0, V),
    sig!("histogram_avg", [V], 0, V),
    sig!("histogram_count", [V], 0, V),
    sig!("histogram_fraction", [S, S, V], 0, V),
    sig!("histogram_quantile", [S, V], 0, V),
    sig!("histogram_quantiles", [V, Str, S, S], 9, V),
    sig!("histogram_stddev", [V], 0, V),
    sig!("histogram_stdvar", [V], 0, V),
    sig!("histogram_sum", [V], 0, V),
    sig!("hour", [V], 1, V),
    sig!("idelta", [M], 0, V),
    sig!("increase", [M], 0, V),
    sig!("info", [V, V], 1, V),
    sig!("irate", [M], 0, V),
    sig!("label_join", [V, Str, Str, Str], -1, V),
    sig!("label_replace", [V, Str, Str, Str, Str], 0, V),
    sig!("last_over_time", [M], 0, V),
    sig!("ln", [V], 0, V),
    sig!("log10", [V], 0, V),
    sig!("log2", [V], 0, V),
    sig!("mad_over_time", [M], 0, V),
    sig!("max_of", [S, S], 0, S),
    sig!("max_over_time", [M], 0, V),
    sig!("min_of", [S, S], 0, S),
    sig!("min_over_time", [M], 0, V),
    sig!("minute", [V], 1, V),
    sig!("month", [V], 1, V),
    sig!("pi", [], 0, S),
    sig!("range", [], 0, S),
    sig!("predict_linear", [M, S], 0, V),
    sig!("present_over_time", [M], 0, V),
    sig!("quantile_over_time", [S, M], 0, V),
    sig!("rad", [V], 0, V),
    sig!("rate", [M], 0, V),
    sig!("resets", [M], 0, V),
    sig!("round", [V, S], 1, V),
    sig!("scalar", [V], 0, S),
    sig!("sgn", [V], 0, V),
    sig!("sin", [V], 0, V),
    sig!("sinh", [V], 0, V),
    sig!("sort", [V], 0, V),
    sig!("sort_by_label", [V, Str], -1, V),
    sig!("sort_by_label_desc", [V, Str], -1, V),
    sig!("sort_desc", [V], 0, V),
    sig!("sqrt", [V], 0, V),
    sig!("stddev_over_time", [M], 0, V),
    sig!("stdvar_over_time", [M], 0, V),
    sig!("sum_over_time", [M], 0, V),
    sig!("tan", [V], 0, V),
    sig!("tanh", [V], 0, V),
    sig!("start", [], 0, S),
    sig!("step", [], 0, S),
    sig!("time", [], 0, S),
    sig!("timestamp", [V], 0, V),
    sig!("ts_of_first_over_time", [M], 0, V),
    sig!("ts_of_last_over_time", [M], 0, V),
    sig!("ts_of_max_over_time", [M], 0, V),
    sig!("ts_of_min_over_time", [M], 0, V),
    sig!("vector", [S], 0, V),
    sig!("year", [V], 1, V),
];

pub(crate) fn signature(name: &str) -> Option<&'static Signature> {
    FUNCTIONS.iter().find(|s| s.name == name)
}

pub(crate) fn return_type(name: &str) -> ValueType {
    signature(name)
        .map(|s| s.returns)
        .unwrap_or(ValueType::Vector)
}

/// Whether a call maps input series one to one, so it can stream into an
/// aggregation.
pub(crate) fn streams(c: &Call) -> bool {
    if is_range_function(&c.func) && c.func != "absent_over_time" {
        return true;
    }
    elementwise(&c.func).is_some()
}

fn is_range_function(name: &str) -> bool {
    signature(name).is_some_and(|s| s.args.contains(&ValueType::Matrix))
}

type Sink<'s> = Option<&'s mut dyn FnMut(StepSeries) -> Result<(), QueryError>>;

/// Evaluates a call. With a sink, series-mapping functions hand their
/// output to it and return an empty vector.
pub(crate) fn eval_call(
    ctx: &Ctx<'_>,
    c: &Call,
    steps: &Steps,
    sink: &mut Sink<'_>,
) -> Result<Val, QueryError> {
    let name = c.func.as_str();
    let mut collected = Vec::new();
    let mut emit = |s: StepSeries| -> Result<(), QueryError> {
        match sink {
            Some(f) => f(s),
            None => {
                collected.push(s);
                Ok(())
            }
        }
    };
    match name {
        "time" => {
            return Ok(Val::Scalar(
                (0..steps.n)
                    .map(|i| steps.time(i) as f64 / 1000.0)
                    .collect(),
            ));
        }
        "pi" => return Ok(Val::Scalar(vec![std::f64::consts::PI; steps.n])),
        "min_of" | "max_of" => {
            let a = ctx.eval_scalar(&c.args[0], steps)?;
            let b = ctx.eval_scalar(&c.args[1], steps)?;
            let max = name == "max_of";
            // Go's math.Min/Max: NaN wins.
            return Ok(Val::Scalar(
                a.iter()
                    .zip(&b)
                    .map(|(a, b)| match (a.is_nan() || b.is_nan(), max) {
                        (true, _) => f64::NAN,
                        (false, true) => a.max(*b),
                        (false, false) => a.min(*b),
                    })
                    .collect(),
            ));
        }
        "start" | "end" | "range" | "step" => {
            // Folded into numbers before evaluation (see
            // `engine::fold_query_context_functions`).
            return Err(QueryError::execution(format!(
                "{name}() was not folded before evaluation"
            )));
        }
        "vector" => {
            let v = ctx.eval_scalar(&c.args[0], steps)?;
            return Ok(Val::Vector(vec![StepSeries {
                hists: Vec::new(),
                labels: Labels::empty(),
                drop_name: false,
                points: v.into_iter().map(Some).collect(),
            }]));
        }
        "scalar" => {
            let mut out = vec![f64::NAN; steps.n];
            let mut count = vec![0u32; steps.n];
            ctx.eval_vector_each(&c.args[0], steps, &mut |s| {
                for (i, p) in s.points.iter().enumerate() {
                    if let Some(v) = p {
                        count[i] += 1;
                        out[i] = *v;
                    }
                }
                Ok(())
            })?;
            for (o, c) in out.iter_mut().zip(count) {
                if c != 1 {
                    *o = f64::NAN;
                }
            }
            return Ok(Val::Scalar(out));
        }
        "absent" => return absent(ctx, c, steps),
        "info" => return crate::info::eval(ctx, c, steps),
        "absent_over_time" => return absent_over_time(ctx, c, steps),
        "label_replace" => return label_replace(ctx, c, steps),
        "label_join" => return label_join(ctx, c, steps),
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
            return sort(ctx, c, steps);
        }
        "histogram_quantile" => {
            return ctx.with_hist_stats(false, || {
                crate::aggregate::histogram_quantile(ctx, c, steps)
            });
        }
        "histogram_quantiles" => {
            return ctx.with_hist_stats(false, || histogram_quantiles(ctx, c, steps));
        }
        "anomaly_score" | "anomaly_score_seasonal" | "anomaly_band" | "anomaly_band_seasonal" => {
            crate::anomaly::eval(ctx, c, steps, &mut emit)?;
            return Ok(Val::Vector(collected));
        }
        "drift_psi" | "drift_kl" | "drift_js" | "drift_hellinger" | "drift_ks"
        | "drift_wasserstein" => return crate::drift::eval(ctx, c, steps),
        "histogram_fraction" => {
            return ctx.with_hist_stats(false, || {
                crate::aggregate::histogram_fraction(ctx, c, steps)
            });
        }
        "histogram_avg" | "histogram_count" | "histogram_sum" | "histogram_stddev"
        | "histogram_stdvar" => {
            // Defined on native histograms only; float samples are ignored.
            let f: fn(&crate::hist::Hist) -> f64 = match name {
                "histogram_avg" => |h| h.sum / h.count,
                "histogram_count" => |h| h.count,
                "histogram_sum" => |h| h.sum,
                "histogram_stddev" => |h| crate::hist::variance(h).sqrt(),
                _ => crate::hist::variance,
            };
            ctx.with_hist_stats(true, || {
                ctx.eval_vector_each(&c.args[0], steps, &mut |mut s| {
                    if !s.has_hists() {
                        return Ok(());
                    }
                    let hists = std::mem::take(&mut s.hists);
                    s.points = hists.iter().map(|h| h.as_ref().map(f)).collect();
                    s.drop_name = true;
                    emit(s)
                })
            })?;
            return Ok(Val::Vector(collected));
        }
        "timestamp" => {
            if let Expr::VectorSelector(vs) = unwrap_parens(&c.args[0]) {
                ctx.eval_vector_selector(vs, steps, true, &mut |mut s| {
                    s.hists = Vec::new();
                    s.drop_name = true;
                    emit(s)
                })?;
            } else {
                ctx.eval_vector_each(&c.args[0], steps, &mut |mut s| {
                    let hists = std::mem::take(&mut s.hists);
                    for (i, p) in s.points.iter_mut().enumerate() {
                        if p.is_some() || hists.get(i).is_some_and(Option::is_some) {
                            *p = Some(steps.time(i) as f64 / 1000.0);
                        }
                    }
                    s.drop_name = true;
                    emit(s)
                })?;
            }
            return Ok(Val::Vector(collected));
        }
        "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
        | "month" | "year" => {
            let f = date_function(name);
            if c.args.is_empty() {
                return Ok(Val::Vector(vec![StepSeries {
                    hists: Vec::new(),
                    labels: Labels::empty(),
                    drop_name: false,
                    points: (0..steps.n)
                        .map(|i| Some(f(steps.time(i) as f64 / 1000.0)))
                        .collect(),
                }]));
            }
            ctx.eval_vector_each(&c.args[0], steps, &mut |mut s| {
                // Histogram samples are ignored.
                s.hists = Vec::new();
                for p in s.points.iter_mut().flatten() {
                    *p = f(*p);
                }
                s.drop_name = true;
                if s.is_empty() {
                    return Ok(());
                }
                emit(s)
            })?;
            return Ok(Val::Vector(collected));
        }
        _ => {}
    }
    if let Some(f) = elementwise(name) {
        let params = scalar_params(ctx, c, steps)?;
        if name == "clamp" {
            // An empty result wherever min > max.
        }
        ctx.eval_vector_each(&c.args[0], steps, &mut |mut s| {
            // Histogram samples are ignored.
            s.hists = Vec::new();
            for (i, p) in s.points.iter_mut().enumerate() {
                if let Some(v) = *p {
                    *p = f(v, &params, i);
                }
            }
            s.drop_name = true;
            if s.points.iter().any(|p| p.is_some()) {
                emit(s)
            } else {
                Ok(())
            }
        })?;
        return Ok(Val::Vector(collected));
    }
    if is_range_function(name) {
        range_function(ctx, c, steps, &mut emit)?;
        return Ok(Val::Vector(collected));
    }
    Err(QueryError::bad_data(format!(
        "parse error: unknown function with name \"{name}\""
    )))
}

/// The scalar arguments after the first, one value per step each.
fn scalar_params(ctx: &Ctx<'_>, c: &Call, steps: &Steps) -> Result<Vec<Vec<f64>>, QueryError> {
    let mut out = Vec::new();
    for a in c.args.iter().skip(1) {
        out.push(ctx.eval_scalar(a, steps)?);
    }
    Ok(out)
}

type Elementwise = fn(f64, &[Vec<f64>], usize) -> Option<f64>;

fn elementwise(name: &str) -> Option<Elementwise> {
    Some(match name {
        "abs" => |v, _, _| Some(v.abs()),
        "ceil" => |v, _, _| Some(v.ceil()),
        "floor" => |v, _, _| Some(v.floor()),
        "exp" => |v, _, _| Some(v.exp()),
        "sqrt" => |v, _, _| Some(v.sqrt()),
        "ln" => |v, _, _| Some(v.ln()),
        "log2" => |v, _, _| Some(v.log2()),
        "log10" => |v, _, _| Some(v.log10()),
        "sin" => |v, _, _| Some(v.sin()),
        "cos" => |v, _, _| Some(v.cos()),
        "tan" => |v, _, _| Some(v.tan()),
        "asin" => |v, _, _| Some(v.asin()),
        "acos" => |v, _, _| Some(v.acos()),
        "atan" => |v, _, _| Some(v.atan()),
        "sinh" => |v, _, _| Some(v.sinh()),
        "cosh" => |v, _, _| Some(v.cosh()),
        "tanh" => |v, _, _| Some(v.tanh()),
        "asinh" => |v, _, _| Some(v.asinh()),
        "acosh" => |v, _, _| Some(v.acosh()),
        "atanh" => |v, _, _| Some(v.atanh()),
        "deg" => |v, _, _| Some(v * 180.0 / std::f64::consts::PI),
        "rad" => |v, _, _| Some(v * std::f64::consts::PI / 180.0),
        "sgn" => |v, _, _| {
            Some(if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            })
        },
        "round" => |v, p, i| {
            let to_nearest = p.first().map(|s| s[i]).unwrap_or(1.0);
            let inverse = 1.0 / to_nearest;
            Some((v * inverse + 0.5).floor() / inverse)
        },
        "clamp" => |v, p, i| {
            let (min, max) = (p[0][i], p[1][i]);
            if max < min {
                return None;
            }
            Some(go_max(min, go_min(max, v)))
        },
        "clamp_min" => |v, p, i| Some(go_max(p[0][i], v)),
        "clamp_max" => |v, p, i| Some(go_min(p[0][i], v)),
        _ => return None,
    })
}

/// Go's `math.Max`: NaN wins, and +0 beats -0.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == 0.0 && b == 0.0 {
        return if a.is_sign_negative() { b } else { a };
    }
    if a > b { a } else { b }
}

/// Go's `math.Min`: NaN wins, and -0 beats +0.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == 0.0 && b == 0.0 {
        return if a.is_sign_negative() { a } else { b };
    }
    if a < b { a } else { b }
}

/// Kahan-Babuška-Neumaier summation step, as Prometheus does it.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

fn range_function(
    ctx: &Ctx<'_>,
    c: &Call,
    steps: &Steps,
    emit: &mut dyn FnMut(StepSeries) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let name = c.func.as_str();
    let matrix_index = if name == "quantile_over_time" { 1 } else { 0 };
    let matrix_arg = &c.args[matrix_index];
    if let Expr::MatrixSelector(ms) = unwrap_parens(matrix_arg) {
        if ms.selector.anchored && !ANCHORED_SAFE.contains(&name) {
            return Err(QueryError::execution(format!(
                "anchored modifier can only be used with: {} - not with {name}",
                ANCHORED_SAFE.join(", ")
            )));
        }
        if ms.selector.smoothed && !SMOOTHED_SAFE.contains(&name) {
            return Err(QueryError::execution(format!(
                "smoothed modifier can only be used with: {} - not with {name}",
                SMOOTHED_SAFE.join(", ")
            )));
        }
    }
    let mut params = Vec::new();
    for (i, a) in c.args.iter().enumerate() {
        if i != matrix_index {
            params.push(ctx.eval_scalar(a, steps)?);
        }
    }
    let (at, offset) = match unwrap_parens(matrix_arg) {
        Expr::MatrixSelector(ms) => (ms.selector.at, ms.selector.offset_ms),
        Expr::Subquery(sq) => (sq.at, sq.offset_ms),
        _ => (None, 0),
    };
    let _ = offset;
    // predict_linear's intercept is at the step time, even under `@`.
    let _ = at;
    let eval_times = ctx.eval_times(steps, None);
    if name == "quantile_over_time" {
        for &q in params[0].iter() {
            if !(0.0..=1.0).contains(&q) {
                ctx.warn_at_arg(
                    format!(
                        "quantile value should be between 0 and 1, got {}",
                        go_float(q)
                    ),
                    "quantile_over_time",
                    0,
                );
                break;
            }
        }
    }
    if name == "double_exponential_smoothing" {
        for (&sf, &tf) in params[0].iter().zip(params[1].iter()) {
            if sf <= 0.0 || sf >= 1.0 || sf.is_nan() {
                return Err(QueryError::bad_data(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                )));
            }
            if tf <= 0.0 || tf >= 1.0 || tf.is_nan() {
                return Err(QueryError::bad_data(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                )));
            }
        }
    }
    let keeps_name = matches!(name, "last_over_time" | "first_over_time");
    let counter_check = matches!(name, "rate" | "increase" | "irate");
    let mut warned_counter = false;
    let aggregate = hinted_aggregate(name);
    // avg_over_time over a tier reads each window's sum and count in one
    // select (two samples per window, the sum first).
    let result = ctx.for_each_range_series_hinted(matrix_arg, steps, aggregate, &mut |s: &mut RangeSeries, arg: &RangeArg| {
        if counter_check && !warned_counter && !s.samples.is_empty()
            && let Some(metric) = s.labels.metric_name()
                && !(metric.ends_with("_total")
                    || metric.ends_with("_sum")
                    || metric.ends_with("_count")
                    || metric.ends_with("_bucket"))
                {
                    warned_counter = true;
                    ctx.info_at_arg(format!(
                        "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"{metric}\""
                    ), name, 0);
                }
        if !s.hists.is_empty() {
            let place = crate::histrange::Place { func: name, arg: matrix_index };
            let outs = match arg.extended {
                Some(ext) => crate::histrange::extended_points(ctx, name, s, arg, ext, &place)?,
                None => crate::histrange::points(ctx, name, s, arg, &params, &eval_times, &place)?,
            };
            if outs.iter().all(Option::is_none) {
                return Ok(());
            }
            let mut out = StepSeries {
                hists: Vec::new(),
                labels: std::mem::take(&mut s.labels),
                drop_name: s.drop_name || !keeps_name,
                points: vec![None; outs.len()],
            };
            for (i, o) in outs.into_iter().enumerate() {
                match o {
                    Some(crate::histrange::Out::Float(v)) => out.points[i] = Some(v),
                    Some(crate::histrange::Out::Hist(h)) => out.set_hist(i, Some(h)),
                    None => {}
                }
            }
            return emit(out);
        }
        let points = if arg.aligned {
            aligned_points(ctx, name, &s.samples, arg, &params, &eval_times)?
        } else if name == "avg_over_time" && arg.resolution_ms > 0 {
            sum_count_points(ctx, &s.samples, arg, &params, &eval_times)?
        } else {
            let applied = if arg.resolution_ms > 0 {
                downsampled_name(name)
            } else {
                name
            };
            window_points(ctx, applied, &s.samples, arg, &params, &eval_times)?
        };
        if points.iter().all(Option::is_none) {
            return Ok(());
        }
        emit(StepSeries {
            hists: Vec::new(),
            labels: std::mem::take(&mut s.labels),
            drop_name: s.drop_name || !keeps_name,
            points,
        })
    });
    result?;
    Ok(())
}

/// A range function over a tier whose windows tile each range
/// (`RangeArg::aligned`): each step `T` reads the window points of
/// `[T - range, T)`, the windows inside the range (their last samples lie
/// there, so `(T - 1 - range, T - 1]` holds them). `rate` and `increase`
/// take the exact increase from the last point before that (the last
/// sample before `T - range`) to the last point of the range, over the
/// time between them, scaled to the range; without a point in the window
/// before (a series that starts inside the range) they extrapolate as on
/// raw samples. `irate` takes the last two of those points.
fn aligned_points(
    ctx: &Ctx<'_>,
    name: &str,
    samples: &[(i64, f64)],
    arg: &RangeArg,
    params: &[Vec<f64>],
    eval_times: &[i64],
) -> Result<Vec<Option<f64>>, QueryError> {
    let shifted = RangeArg {
        refs: arg.refs.iter().map(|r| r.saturating_sub(1)).collect(),
        range: arg.range,
        resolution_ms: arg.resolution_ms,
        extended: None,
        aligned: true,
    };
    match name {
        "avg_over_time" => sum_count_points(ctx, samples, &shifted, params, eval_times),
        "rate" | "increase" | "irate" => {
            let (irate, is_rate) = (name == "irate", name == "rate");
            let mut points = Vec::with_capacity(shifted.refs.len());
            // The windows move forward with the steps: one pass over the
            // points, not two binary searches a step (which cost more
            // than the 24 points of a 1h tier's day).
            for_each_window(ctx, samples, &shifted, |i, start, r, lo, window| {
                if window.is_empty() {
                    points.push(None);
                    return;
                }
                let hi = lo + window.len();
                let base = lo
                    .checked_sub(1)
                    .filter(|&b| samples[b].0 > start.saturating_sub(shifted.resolution_ms));
                points.push(match (irate, base) {
                    (true, _) => instant_rate(&samples[base.unwrap_or(lo)..hi], true),
                    (false, Some(b)) => anchored_increase(&samples[b..hi], shifted.range, is_rate),
                    (false, None) => extrapolated_rate(
                        &Window {
                            samples: window,
                            start,
                            end: r,
                            range: shifted.range,
                            eval_time: eval_times[i],
                        },
                        true,
                        is_rate,
                    ),
                });
            })?;
            Ok(points)
        }
        _ => window_points(
            ctx,
            downsampled_name(name),
            samples,
            &shifted,
            params,
            eval_times,
        ),
    }
}

/// The increase of a counter from its first sample to its last (resets
/// counted as by `rate`), scaled from the time between them to `range`;
/// per second over `range` for `rate`. `None` for fewer than two samples.
fn anchored_increase(s: &[(i64, f64)], range: i64, is_rate: bool) -> Option<f64> {
    let (&(first_t, first_v), &(last_t, last_v)) = (s.first()?, s.last()?);
    if last_t <= first_t || range <= 0 {
        return None;
    }
    let mut result = last_v - first_v;
    // Most windows have no reset: finding that out is a compare a point,
    // where the adding loop would wait on each add.
    if s.windows(2).any(|pair| pair[1].1 < pair[0].1) {
        let mut before = first_v;
        for &(_, v) in &s[1..] {
            if v < before {
                result += before;
            }
            before = v;
        }
    }
    let per_second = result / ((last_t - first_t) as f64 / 1000.0);
    Some(if is_rate {
        per_second
    } else {
        per_second * (range as f64 / 1000.0)
    })
}

/// `avg_over_time` over a tier's `(t, sum), (t, count)` sample pairs: per
/// step, the window's summed sums over its summed counts.
fn sum_count_points(
    ctx: &Ctx<'_>,
    samples: &[(i64, f64)],
    arg: &RangeArg,
    params: &[Vec<f64>],
    eval_times: &[i64],
) -> Result<Vec<Option<f64>>, QueryError> {
    if arg.extended.is_some() {
        // Not read from a tier (extended ranges read raw samples); kept
        // for completeness: the sums and the counts as two series.
        let (sums, counts): (Vec<_>, Vec<_>) = samples
            .chunks_exact(2)
            .map(|pair| (pair[0], pair[1]))
            .unzip();
        let sums = window_points(ctx, "sum_over_time", &sums, arg, params, eval_times)?;
        let counts = window_points(ctx, "sum_over_time", &counts, arg, params, eval_times)?;
        return Ok(sums
            .iter()
            .zip(&counts)
            .map(|(sum, count)| match (sum, count) {
                (Some(sum), Some(count)) if *count > 0.0 => Some(sum / count),
                _ => None,
            })
            .collect());
    }
    // Both samples of a window share its timestamp, so each step's window
    // holds whole pairs: the sums and the counts are summed side by side
    // in one pass, each as `sum_over_time` sums (Kahan).
    let mut points = Vec::with_capacity(arg.refs.len());
    for_each_window(ctx, samples, arg, |_, _, _, _, window| {
        if window.is_empty() {
            points.push(None);
            return;
        }
        let (mut sum, mut sum_c, mut count, mut count_c) = (0.0, 0.0, 0.0, 0.0);
        for pair in window.chunks_exact(2) {
            (sum, sum_c) = kahan_inc(pair[0].1, sum, sum_c);
            (count, count_c) = kahan_inc(pair[1].1, count, count_c);
        }
        let (sum, count) = (sum + sum_c, count + count_c);
        points.push((count > 0.0).then(|| sum / count));
    })?;
    Ok(points)
}

/// The aggregate a range function reads from a downsampled tier; `None`
/// for functions that need every raw sample.
fn hinted_aggregate(name: &str) -> Option<Aggregate> {
    Some(match name {
        "rate" | "increase" | "irate" => Aggregate::Counter,
        "resets" => Aggregate::Resets,
        "max_over_time" => Aggregate::Max,
        "min_over_time" => Aggregate::Min,
        "sum_over_time" => Aggregate::Sum,
        "avg_over_time" => Aggregate::SumCount,
        "count_over_time" => Aggregate::Count,
        "last_over_time" => Aggregate::Last,
        _ => return None,
    })
}

/// The function applied to a downsampled aggregate: counts and reset
/// flags are summed (`avg_over_time` divides summed sums by summed counts,
/// `sum_count_points`); the others apply as they are.
fn downsampled_name(name: &str) -> &str {
    match name {
        "count_over_time" | "resets" => "sum_over_time",
        other => other,
    }
}

/// One series' value at each step of a range function.
/// The functions an `anchored` range may feed (Prometheus's
/// `AnchoredSafeFunctions`), sorted as its message lists them.
const ANCHORED_SAFE: &[&str] = &["changes", "delta", "increase", "rate", "resets"];

/// The functions a `smoothed` range may feed.
const SMOOTHED_SAFE: &[&str] = &["delta", "increase", "rate"];

/// Per step, a function over an `anchored` or `smoothed` range: the
/// samples reach one lookback delta before the window (and after it,
/// smoothed), as Prometheus's `extendedRate` and `pickFirstSampleIndices`
/// read them.
fn extended_points(
    ctx: &Ctx<'_>,
    name: &str,
    samples: &[(i64, f64)],
    arg: &RangeArg,
    ext: crate::eval::Extended,
) -> Result<Vec<Option<f64>>, QueryError> {
    let mut points = Vec::with_capacity(arg.refs.len());
    for &r in &arg.refs {
        ctx.check_deadline()?;
        let range_start = r.saturating_sub(arg.range);
        let range_end = r;
        let lo = samples.partition_point(|(t, _)| *t <= range_start.saturating_sub(ext.lookback));
        let right_edge = if ext.smoothed {
            range_end.saturating_add(ext.lookback)
        } else {
            range_end
        };
        let hi = samples.partition_point(|(t, _)| *t <= right_edge);
        let f = &samples[lo..hi.max(lo)];
        if f.is_empty() {
            points.push(None);
            continue;
        }
        points.push(match name {
            "rate" | "increase" | "delta" => extended_rate(
                f,
                range_start,
                range_end,
                arg.range,
                ext.smoothed,
                name != "delta",
                name == "rate",
            ),
            "changes" | "resets" => {
                // The anchor: the last sample at or before the window's
                // start, kept with every sample after it.
                let after = f.partition_point(|(t, _)| *t <= range_start);
                if after >= f.len() {
                    None
                } else {
                    let s = &f[after.saturating_sub(1)..];
                    let w = Window {
                        samples: s,
                        start: range_start,
                        end: range_end,
                        range: arg.range,
                        eval_time: r,
                    };
                    apply_range(name, &w, &[], 0)
                }
            }
            _ => None,
        });
    }
    Ok(points)
}

/// [`extended_rate`] over the samples one lookback delta around a window
/// (the float side of a series that also has histograms).
pub(crate) fn extended_rate_window(
    f: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range: i64,
    smoothed: bool,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if f.is_empty() {
        return None;
    }
    extended_rate(
        f,
        range_start,
        range_end,
        range,
        smoothed,
        is_counter,
        is_rate,
    )
}

/// Prometheus's `extendedRate`: the difference between the values at the
/// window's two ends (picked, or interpolated when smoothed), corrected
/// for counter resets in between, per second for `rate`.
fn extended_rate(
    f: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range: i64,
    smoothed: bool,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let mut last = f.len() - 1;
    // The last sample at or before the start, else the first.
    let mut first = f[..last]
        .partition_point(|(t, _)| *t <= range_start)
        .saturating_sub(1);
    if smoothed {
        last = f[..last].partition_point(|(t, _)| *t < range_end);
    }
    if f[last].0 <= range_start {
        return None;
    }
    if smoothed && f[first].0 > range_end {
        return None;
    }
    let interpolate = |a: (i64, f64), b: (i64, f64), t: i64| {
        let y1 = if is_counter && b.1 < a.1 { 0.0 } else { a.1 };
        y1 + (b.1 - y1) * (t - a.0) as f64 / (b.0 - a.0) as f64
    };
    let left = if smoothed && f[first].0 < range_start {
        interpolate(f[first], f[first + 1], range_start)
    } else {
        f[first].1
    };
    let right = if smoothed && last > 0 && f[last].0 > range_end {
        interpolate(f[last - 1], f[last], range_end)
    } else {
        f[last].1
    };
    let mut result = right - left;
    if is_counter {
        if f[first].0 <= range_start {
            first += 1;
        }
        if f[last].0 >= range_end {
            last = last.wrapping_sub(1);
        }
        let inner: &[(i64, f64)] = if last == usize::MAX || first > last {
            &[]
        } else {
            &f[first..=last]
        };
        let mut correction = 0.0;
        let mut prev = left;
        for &(_, v) in inner {
            if v < prev {
                correction += prev;
            }
            prev = v;
        }
        if right < prev {
            correction += prev;
        }
        result += correction;
    }
    if is_rate {
        result /= range as f64 / 1000.0;
    }
    Some(result)
}

fn window_points(
    ctx: &Ctx<'_>,
    name: &str,
    samples: &[(i64, f64)],
    arg: &RangeArg,
    params: &[Vec<f64>],
    eval_times: &[i64],
) -> Result<Vec<Option<f64>>, QueryError> {
    if let Some(ext) = arg.extended {
        return extended_points(ctx, name, samples, arg, ext);
    }
    let f = RangeFn::of(name);
    let mut points = Vec::with_capacity(arg.refs.len());
    // Counter rates over several steps learn whether a window has a reset
    // from one pass over the series instead of a pass over each window (a
    // single step scans its one window, with no index to build).
    let resets = (matches!(f, RangeFn::Rate | RangeFn::Increase) && arg.refs.len() > 1)
        .then(|| ResetIndex::of(samples));
    for_each_window(ctx, samples, arg, |i, start, r, lo, window| {
        let w = Window {
            samples: window,
            start,
            end: r,
            range: arg.range,
            eval_time: eval_times[i],
        };
        points.push(match &resets {
            Some(resets) if !window.is_empty() => rate_over(
                &w,
                true,
                f == RangeFn::Rate,
                ResetCheck::Known(resets.any_in(samples, lo, lo + window.len())),
            ),
            _ => apply_range_fn(f, &w, params, i),
        });
    })?;
    Ok(points)
}

/// Where a series' values fall below the ones before them, counted from
/// its start: `counts[i]` is the number of `j` in `1..=i` with
/// `v[j] < v[j - 1]`. One pass over the series answers, for every window
/// of it, whether [`rate_over`]'s reset loop would add anything.
struct ResetIndex {
    counts: Vec<u32>,
}

impl ResetIndex {
    fn of(samples: &[(i64, f64)]) -> ResetIndex {
        let mut counts = Vec::with_capacity(samples.len());
        let mut n = 0u32;
        let mut last = f64::NAN;
        for &(_, v) in samples {
            n += u32::from(v < last);
            counts.push(n);
            last = v;
        }
        ResetIndex { counts }
    }

    /// [`has_reset`] of `samples[lo..hi]` (not empty): its first value
    /// below zero, or a value below the one before it inside the window.
    fn any_in(&self, samples: &[(i64, f64)], lo: usize, hi: usize) -> bool {
        samples[lo].1 < 0.0 || self.counts[hi - 1] > self.counts[lo]
    }
}

/// Calls `f(step, start, end, lo, window)` for each step's window of
/// `samples` (ascending): those in `(start, end]`, `end` the step's
/// reference time and `start` one range before it; the window is
/// `samples[lo..]`'s first stretch.
fn for_each_window(
    ctx: &Ctx<'_>,
    samples: &[(i64, f64)],
    arg: &RangeArg,
    mut f: impl FnMut(usize, i64, i64, usize, &[(i64, f64)]),
) -> Result<(), QueryError> {
    let (mut lo, mut hi) = (0usize, 0usize);
    for (i, &r) in arg.refs.iter().enumerate() {
        ctx.check_deadline()?;
        let start = r.saturating_sub(arg.range);
        // Windows move forward with the steps unless `@` pins them.
        if lo > 0 && samples.get(lo - 1).is_some_and(|(t, _)| *t > start) {
            lo = 0;
            hi = 0;
        }
        while lo < samples.len() && samples[lo].0 <= start {
            lo += 1;
        }
        if hi < lo {
            hi = lo;
        }
        while hi < samples.len() && samples[hi].0 <= r {
            hi += 1;
        }
        f(i, start, r, lo, &samples[lo..hi]);
    }
    Ok(())
}

/// One step's window over a series.
pub(crate) struct Window<'a> {
    pub samples: &'a [(i64, f64)],
    pub start: i64,
    pub end: i64,
    pub range: i64,
    pub eval_time: i64,
}

pub(crate) fn apply_range(
    name: &str,
    w: &Window<'_>,
    params: &[Vec<f64>],
    i: usize,
) -> Option<f64> {
    apply_range_fn(RangeFn::of(name), w, params, i)
}

/// A range function, named once per query rather than matched by name at
/// every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Avg,
    Sum,
    Count,
    Min,
    Max,
    Last,
    First,
    TsOfLast,
    TsOfFirst,
    TsOfMin,
    TsOfMax,
    Present,
    Stddev,
    Stdvar,
    Quantile,
    Mad,
    Changes,
    Resets,
    Deriv,
    PredictLinear,
    DoubleExponentialSmoothing,
    /// A name that is not a float range function: no value.
    Other,
}

impl RangeFn {
    pub(crate) fn of(name: &str) -> RangeFn {
        match name {
            "rate" => RangeFn::Rate,
            "increase" => RangeFn::Increase,
            "delta" => RangeFn::Delta,
            "irate" => RangeFn::Irate,
            "idelta" => RangeFn::Idelta,
            "avg_over_time" => RangeFn::Avg,
            "sum_over_time" => RangeFn::Sum,
            "count_over_time" => RangeFn::Count,
            "min_over_time" => RangeFn::Min,
            "max_over_time" => RangeFn::Max,
            "last_over_time" => RangeFn::Last,
            "first_over_time" => RangeFn::First,
            "ts_of_last_over_time" => RangeFn::TsOfLast,
            "ts_of_first_over_time" => RangeFn::TsOfFirst,
            "ts_of_min_over_time" => RangeFn::TsOfMin,
            "ts_of_max_over_time" => RangeFn::TsOfMax,
            "present_over_time" => RangeFn::Present,
            "stddev_over_time" => RangeFn::Stddev,
            "stdvar_over_time" => RangeFn::Stdvar,
            "quantile_over_time" => RangeFn::Quantile,
            "mad_over_time" => RangeFn::Mad,
            "changes" => RangeFn::Changes,
            "resets" => RangeFn::Resets,
            "deriv" => RangeFn::Deriv,
            "predict_linear" => RangeFn::PredictLinear,
            "double_exponential_smoothing" => RangeFn::DoubleExponentialSmoothing,
            _ => RangeFn::Other,
        }
    }
}

/// [`apply_range`] for a function already looked up.
pub(crate) fn apply_range_fn(
    f: RangeFn,
    w: &Window<'_>,
    params: &[Vec<f64>],
    i: usize,
) -> Option<f64> {
    let s = w.samples;
    if s.is_empty() {
        return None;
    }
    let values = || s.iter().map(|(_, v)| *v);
    Some(match f {
        RangeFn::Rate => extrapolated_rate(w, true, true)?,
        RangeFn::Increase => extrapolated_rate(w, true, false)?,
        RangeFn::Delta => extrapolated_rate(w, false, false)?,
        RangeFn::Irate => instant_rate(s, true)?,
        RangeFn::Idelta => instant_rate(s, false)?,
        RangeFn::Avg => avg(values()),
        RangeFn::Sum => {
            let (sum, c) = values().fold((0.0, 0.0), |(s, c), v| kahan_inc(v, s, c));
            sum + c
        }
        RangeFn::Count => s.len() as f64,
        RangeFn::Min => values().fold(f64::NAN, |m, v| if v < m || m.is_nan() { v } else { m }),
        RangeFn::Max => values().fold(f64::NAN, |m, v| if v > m || m.is_nan() { v } else { m }),
        RangeFn::Last => s[s.len() - 1].1,
        RangeFn::First => s[0].1,
        RangeFn::TsOfLast => s[s.len() - 1].0 as f64 / 1000.0,
        RangeFn::TsOfFirst => s[0].0 as f64 / 1000.0,
        RangeFn::TsOfMin | RangeFn::TsOfMax => {
            let want_max = f == RangeFn::TsOfMax;
            let mut best = s[0];
            for &(t, v) in &s[1..] {
                let better = if want_max {
                    v >= best.1 || best.1.is_nan()
                } else {
                    v <= best.1 || best.1.is_nan()
                };
                if better && !v.is_nan() {
                    best = (t, v);
                }
            }
            best.0 as f64 / 1000.0
        }
        RangeFn::Present => 1.0,
        RangeFn::Stddev => stdvar(values()).sqrt(),
        RangeFn::Stdvar => stdvar(values()),
        RangeFn::Quantile => {
            let mut v: Vec<f64> = values().collect();
            quantile(params[0][i], &mut v)
        }
        RangeFn::Mad => {
            let mut v: Vec<f64> = values().collect();
            if v.iter().any(|x| x.is_nan()) {
                return Some(f64::NAN);
            }
            let median = quantile(0.5, &mut v);
            let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
            quantile(0.5, &mut dev)
        }
        RangeFn::Changes => {
            let mut n = 0.0;
            for pair in s.windows(2) {
                let (a, b) = (pair[0].1, pair[1].1);
                if a != b && !(a.is_nan() && b.is_nan()) {
                    n += 1.0;
                }
            }
            n
        }
        RangeFn::Resets => s.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64,
        RangeFn::Deriv => {
            if s.len() < 2 {
                return None;
            }
            linear_regression(s, s[0].0).0
        }
        RangeFn::PredictLinear => {
            if s.len() < 2 {
                return None;
            }
            let (slope, intercept) = linear_regression(s, w.eval_time);
            intercept + slope * params[0][i]
        }
        RangeFn::DoubleExponentialSmoothing => {
            if s.len() < 2 {
                return None;
            }
            let (sf, tf) = (params[0][i], params[1][i]);
            let (mut s0, mut s1) = (0.0, s[0].1);
            let mut b = s[1].1 - s[0].1;
            for (j, &(_, v)) in s.iter().enumerate().skip(1) {
                let x = sf * v;
                if j > 1 {
                    b = tf * (s1 - s0) + (1.0 - tf) * b;
                }
                let y = (1.0 - sf) * (s1 + b);
                s0 = s1;
                s1 = x + y;
            }
            s1
        }
        RangeFn::Other => return None,
    })
}

fn extrapolated_rate(w: &Window<'_>, is_counter: bool, is_rate: bool) -> Option<f64> {
    rate_over(w, is_counter, is_rate, ResetCheck::Scan)
}

/// How [`rate_over`] learns whether a counter window has a reset.
#[derive(Clone, Copy)]
enum ResetCheck {
    /// Looks through the window ([`has_reset`]).
    Scan,
    /// Already known ([`ResetIndex`]).
    Known(bool),
    /// Walks every window with the reset loop (the tests' reference).
    #[cfg(test)]
    Off,
}

/// [`extrapolated_rate`], told how to find a window's resets.
#[inline(always)]
fn rate_over(w: &Window<'_>, is_counter: bool, is_rate: bool, check: ResetCheck) -> Option<f64> {
    let s = w.samples;
    if s.len() < 2 {
        return None;
    }
    let (first_t, first_v) = s[0];
    let (last_t, last_v) = s[s.len() - 1];
    let mut result = last_v - first_v;
    // The loop below adds each value before a reset in order, one add
    // waiting on the last; most windows have no reset, and finding that
    // out takes compares that do not wait on each other.
    let reset = match check {
        ResetCheck::Scan => has_reset(s),
        ResetCheck::Known(reset) => reset,
        #[cfg(test)]
        ResetCheck::Off => true,
    };
    if is_counter && reset {
        let mut last = 0.0;
        for &(_, v) in s {
            if v < last {
                result += last;
            }
            last = v;
        }
    }
    let mut duration_to_start = (first_t - w.start) as f64 / 1000.0;
    let mut duration_to_end = (w.end - last_t) as f64 / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let average_between = sampled_interval / (s.len() - 1) as f64;
    let threshold = average_between * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = average_between / 2.0;
    }
    if is_counter && result > 0.0 && first_v >= 0.0 {
        let duration_to_zero = sampled_interval * (first_v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = average_between / 2.0;
    }
    let mut factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    if is_rate {
        factor /= w.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// Whether [`extrapolated_rate`]'s reset loop would add anything: some
/// value below the one before it (the first below zero).
fn has_reset(s: &[(i64, f64)]) -> bool {
    let mut last = 0.0;
    let mut any = false;
    for &(_, v) in s {
        any |= v < last;
        last = v;
    }
    any
}

fn instant_rate(s: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (prev_t, prev_v) = s[s.len() - 2];
    let (last_t, last_v) = s[s.len() - 1];
    let mut result = if is_rate && last_v < prev_v {
        last_v
    } else {
        last_v - prev_v
    };
    let interval = last_t - prev_t;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Mean with Kahan summation, falling back to an incremental mean when the
/// sum overflows (Prometheus's `avg_over_time` and `avg`).
pub(crate) fn avg(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut incremental = false;
    for v in values {
        count += 1.0;
        if !incremental {
            let (new_sum, new_c) = kahan_inc(v, sum, c);
            if count == 1.0 || !new_sum.is_infinite() {
                sum = new_sum;
                c = new_c;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        let corrected = mean + c;
        let (m, nc) = kahan_inc(v / count - corrected / count, mean, c);
        mean = m;
        c = nc;
    }
    if incremental {
        mean + c
    } else {
        (sum + c) / count
    }
}

/// Population variance (Welford with Kahan-compensated terms).
pub(crate) fn stdvar(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for v in values {
        count += 1.0;
        let delta = v - (mean + c_mean);
        let (m, cm) = kahan_inc(delta / count, mean, c_mean);
        mean = m;
        c_mean = cm;
        let (a, ca) = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux);
        aux = a;
        c_aux = ca;
    }
    (aux + c_aux) / count
}

/// Prometheus's `quantile`: NaN sorts first, linear interpolation.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn linear_regression(s: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut cx, mut sum_y, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut cxy, mut sum_x2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = s[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in s.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_time) as f64 / 1e3;
        (sum_x, cx) = kahan_inc(x, sum_x, cx);
        (sum_y, cy) = kahan_inc(v, sum_y, cy);
        (sum_xy, cxy) = kahan_inc(x * v, sum_xy, cxy);
        (sum_x2, cx2) = kahan_inc(x * x, sum_x2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + cx, sum_y + cy, sum_xy + cxy, sum_x2 + cx2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// Go's `%g`-like formatting for numbers in messages.
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v != 0.0 && (v.abs() >= 1e21 || v.abs() < 1e-4) {
        let mut out = String::new();
        if let Some(decimal) = model::float::Decimal::shortest(v) {
            decimal.write_exponent(&mut out);
        }
        out
    } else {
        let mut out = String::new();
        model::float::write_fixed(&mut out, v);
        out
    }
}

/// `histogram_quantiles(v, "label", q1, q2, …)` (experimental): one
/// `histogram_quantile` per quantile, each result labelled with its
/// quantile (as OpenMetrics writes it: `0.0`, `0.25`, `1.0`).
fn histogram_quantiles(ctx: &Ctx<'_>, c: &Call, steps: &Steps) -> Result<Val, QueryError> {
    let Expr::String(label) = unwrap_parens(&c.args[1]) else {
        return Err(QueryError::bad_data(
            "histogram_quantiles() needs a label name as its second argument",
        ));
    };
    let mut out = crate::value::StepCollector::new(steps.n);
    for (k, q_arg) in c.args.iter().enumerate().skip(2) {
        let places = crate::aggregate::ArgPlaces {
            func: "histogram_quantiles",
            quantile: k,
            buckets: 0,
        };
        let Val::Vector(series) =
            crate::aggregate::histogram_quantile_of(ctx, q_arg, &c.args[0], steps, places)?
        else {
            continue;
        };
        let qs = ctx.eval_scalar(q_arg, steps)?;
        for s in series {
            for (step, p) in s.points.iter().enumerate() {
                let Some(v) = *p else { continue };
                let q = qs.get(step).copied().unwrap_or(f64::NAN);
                let mut b = LabelsBuilder::from_labels(&s.labels);
                b.set(label.as_str(), openmetrics_float(q).as_str());
                out.put(b.build(), s.drop_name, step, v)?;
            }
        }
    }
    Ok(Val::Vector(out.finish()))
}

/// Prometheus's `labels.FormatOpenMetricsFloat`: Go's shortest form, with
/// `.0` after a whole number.
fn openmetrics_float(v: f64) -> String {
    let s = go_float(v);
    if s.contains(['.', 'e', 'N', 'I']) {
        s
    } else {
        format!("{s}.0")
    }
}

fn absent(ctx: &Ctx<'_>, c: &Call, steps: &Steps) -> Result<Val, QueryError> {
    let mut present = vec![false; steps.n];
    ctx.eval_vector_each(&c.args[0], steps, &mut |s| {
        for (i, p) in present.iter_mut().enumerate() {
            if s.present(i) {
                *p = true;
            }
        }
        Ok(())
    })?;
    let labels = absent_labels(&c.args[0]);
    let points: Vec<Option<f64>> = present.iter().map(|p| (!p).then_some(1.0)).collect();
    Ok(Val::Vector(vec![StepSeries {
        hists: Vec::new(),
        labels,
        drop_name: false,
        points,
    }]))
}

fn absent_over_time(ctx: &Ctx<'_>, c: &Call, steps: &Steps) -> Result<Val, QueryError> {
    let mut present = vec![false; steps.n];
    ctx.for_each_range_series(&c.args[0], steps, &mut |s, arg| {
        for (i, &r) in arg.refs.iter().enumerate() {
            let start = r.saturating_sub(arg.range);
            let from = s.samples.partition_point(|(t, _)| *t <= start);
            let hfrom = s.hists.partition_point(|(t, _)| *t <= start);
            if s.samples.get(from).is_some_and(|(t, _)| *t <= r)
                || s.hists.get(hfrom).is_some_and(|(t, _)| *t <= r)
            {
                present[i] = true;
            }
        }
        Ok(())
    })?;
    let labels = absent_labels(&c.args[0]);
    let points: Vec<Option<f64>> = present.iter().map(|p| (!p).then_some(1.0)).collect();
    Ok(Val::Vector(vec![StepSeries {
        hists: Vec::new(),
        labels,
        drop_name: false,
        points,
    }]))
}

/// The labels `absent` reports: the equality matchers of a plain selector,
/// except names matched twice.
fn absent_labels(arg: &Expr) -> Labels {
    let matchers = match unwrap_parens(arg) {
        Expr::VectorSelector(vs) => &vs.matchers,
        Expr::MatrixSelector(ms) => &ms.selector.matchers,
        _ => return Labels::empty(),
    };
    let mut b = LabelsBuilder::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut dropped: Vec<&str> = Vec::new();
    for m in matchers {
        if m.name() == model::METRIC_NAME {
            continue;
        }
        if matchers.iter().filter(|o| o.name() == m.name()).count() > 1 {
            dropped.push(m.name());
            continue;
        }
        if m.op() == MatchOp::Equal && !seen.contains(&m.name()) {
            seen.push(m.name());
            b.set(m.name().to_string(), m.value().to_string());
        }
    }
    for d in dropped {
        b.delete(d);
    }
    b.build()
}

fn string_arg(c: &Call, i: usize) -> Result<&str, QueryError> {
    match c.args.get(i).map(unwrap_parens) {
        Some(Expr::String(s)) => Ok(s),
        _ => Err(QueryError::bad_data(format!(
            "expected a string literal as argument {} of {}",
            i + 1,
            c.func
        ))),
    }
}

/// A label name must be non-empty valid UTF-8; a string literal with a
/// byte escape that is not UTF-8 arrives here marked by the parser.
fn valid_label_name(name: &str) -> bool {
    !name.is_empty() && !crate::parser::has_invalid_bytes(name)
}

/// Merges series whose label sets became equal; two of them with a
/// point at the same step is Prometheus's duplicate-labelset error.
fn merge_equal_labels(series: Vec<StepSeries>) -> Result<Vec<StepSeries>, QueryError> {
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    let mut index: std::collections::HashMap<
        (Labels, bool),
        usize,
        model::labels::FastBuildHasher,
    > = std::collections::HashMap::with_capacity_and_hasher(series.len(), Default::default());
    for s in series {
        let key = (s.labels.clone(), s.drop_name);
        match index.get(&key) {
            Some(&i) => {
                for (slot, p) in out[i].points.iter_mut().zip(s.points) {
                    if p.is_some() {
                        if slot.is_some() {
                            return Err(QueryError::execution(
                                "vector cannot contain metrics with the same labelset",
                            ));
                        }
                        *slot = p;
                    }
                }
            }
            None => {
                index.insert(key, out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn label_replace(ctx: &Ctx<'_>, c: &Call, steps: &Steps) -> Result<Val, QueryError> {
    let dst = string_arg(c, 1)?;
    let replacement = string_arg(c, 2)?;
    let src = string_arg(c, 3)?;
    let pattern = string_arg(c, 4)?;
    let regex = regex::Regex::new(&format!("^(?s:{pattern})$")).map_err(|_| {
        QueryError::bad_data(format!(
            "invalid regular expression in label_replace(): {pattern}"
        ))
    })?;
    if !valid_label_name(dst) {
        return Err(QueryError::bad_data(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut out = Vec::new();
    ctx.eval_vector_each(&c.args[0], steps, &mut |mut s| {
        let value = s.labels.get(src).unwrap_or("");
        if let Some(caps) = regex.captures(value) {
            let mut result = String::new();
            caps.expand(replacement, &mut result);
            set_label(&mut s, dst, result);
        }
        out.push(s);
        Ok(())
    })?;
    Ok(Val::Vector(merge_equal_labels(out)?))
}

/// Sets (or, with an empty value, removes) label `dst` as `label_replace`
/// and `label_join` do. A metric name written this way is kept, not dropped
/// at the end of the query as a function's result name otherwise is.
fn set_label(s: &mut StepSeries, dst: &str, value: String) {
    let mut b = LabelsBuilder::from_labels(&s.labels);
    b.set(dst.to_string(), value);
    s.labels = b.build();
    if dst == model::METRIC_NAME {
        s.drop_name = false;
    }
}

fn label_join(ctx: &Ctx<'_>, c: &Call, steps: &Steps) -> Result<Val, QueryError> {
    let dst = string_arg(c, 1)?;
    let separator = string_arg(c, 2)?;
    let mut sources = Vec::new();
    for i in 3..c.args.len() {
        sources.push(string_arg(c, i)?);
    }
    if !valid_label_name(dst) {
        return Err(QueryError::bad_data(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut out = Vec::new();
    ctx.eval_vector_each(&c.args[0], steps, &mut |mut s| {
        let joined: Vec<&str> = sources
            .iter()
            .map(|src| s.labels.get(src).unwrap_or(""))
            .collect();
        let joined = joined.join(separator);
        set_label(&mut s, dst, joined);
        out.push(s);
        Ok(())
    })?;
    Ok(Val::Vector(merge_equal_labels(out)?))
}

fn sort(ctx: &Ctx<'_>, c: &Call, steps: &Steps) -> Result<Val, QueryError> {
    let mut series = match ctx.eval(&c.args[0], steps)? {
        Val::Vector(v) => v,
        _ => return Err(QueryError::bad_data("expected an instant vector")),
    };
    if steps.n != 1 {
        {
            ctx.warn_at(
                "sort is ineffective for range queries since results are always ordered by labels"
                    .to_string(),
                &c.func,
            );
        }
        // Histogram samples are left out, as at one step.
        for s in &mut series {
            s.hists = Vec::new();
        }
        series.retain(|s| !s.is_empty());
        return Ok(Val::Vector(series));
    }
    series.retain(|s| s.points.first().is_some_and(|p| p.is_some()));
    for s in &mut series {
        s.hists = Vec::new();
    }
    let value = |s: &StepSeries| s.points[0].unwrap_or(f64::NAN);
    match c.func.as_str() {
        "sort" | "sort_desc" => {
            let desc = c.func == "sort_desc";
            series.sort_by(|a, b| {
                let (x, y) = (value(a), value(b));
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ => {
                        let o = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
                        if desc { o.reverse() } else { o }
                    }
                }
            });
        }
        _ => {
            let desc = c.func == "sort_by_label_desc";
            let mut names = Vec::new();
            for i in 1..c.args.len() {
                names.push(string_arg(c, i)?.to_string());
            }
            series.sort_by(|a, b| {
                for n in &names {
                    let o =
                        natural_cmp(a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                    if o != std::cmp::Ordering::Equal {
                        return if desc { o.reverse() } else { o };
                    }
                }
                let o = a.labels.cmp(&b.labels);
                if desc { o.reverse() } else { o }
            });
        }
    }
    Ok(Val::Vector(series))
}

/// Natural order: runs of digits compare as numbers.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let na = std::str::from_utf8(&a[si..i])
                .unwrap_or("")
                .trim_start_matches('0');
            let nb = std::str::from_utf8(&b[sj..j])
                .unwrap_or("")
                .trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

fn date_function(name: &str) -> fn(f64) -> f64 {
    match name {
        "days_in_month" => {
            |t| date_of(t).map_or(f64::NAN, |d| f64::from(time::days_in_month(d.0, d.1)))
        }
        "day_of_month" => |t| date_of(t).map_or(f64::NAN, |d| f64::from(d.2)),
        "day_of_week" => {
            |t| date_parts(t).map_or(f64::NAN, |(days, _)| f64::from(time::weekday(days)))
        }
        "day_of_year" => {
            |t| date_parts(t).map_or(f64::NAN, |(days, _)| f64::from(time::day_of_year(days)))
        }
        "hour" => |t| date_parts(t).map_or(f64::NAN, |(_, s)| (s / 3600) as f64),
        "minute" => |t| date_parts(t).map_or(f64::NAN, |(_, s)| (s % 3600 / 60) as f64),
        "month" => |t| date_of(t).map_or(f64::NAN, |d| f64::from(d.1)),
        _ => |t| date_of(t).map_or(f64::NAN, |d| d.0 as f64),
    }
}

/// Days since the epoch and seconds into the day, for a time in seconds.
fn date_parts(t: f64) -> Option<(i64, i64)> {
    if !t.is_finite() || t.abs() > 1e15 {
        return None;
    }
    let secs = t as i64;
    Some((secs.div_euclid(86_400), secs.rem_euclid(86_400)))
}

/// Civil date (year, month, day) of a time in seconds.
fn date_of(t: f64) -> Option<(i64, u32, u32)> {
    let (days, _) = date_parts(t)?;
    Some(time::civil_from_days(days))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::RangeArg;

    /// A small deterministic generator (xorshift64) for the random tests.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    struct NoStorage;

    impl model::storage::Queryable for NoStorage {
        fn querier(
            &self,
            _: i64,
            _: i64,
        ) -> model::storage::Result<Box<dyn model::storage::Querier>> {
            Err(model::storage::StorageError::new(
                model::storage::StorageErrorKind::Closed,
                "no storage",
            ))
        }
    }

    /// `rate`, `increase` and `delta` with the reset check first answer as
    /// Prometheus's loop over every sample does, bit for bit: windows of
    /// counters with and without resets, negative and zero values, NaN.
    #[test]
    fn reset_check_first_equals_the_plain_loop() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let specials = [0.0, -0.0, -1.5, f64::NAN, 1e300, 3.0];
        let mut with_reset = 0;
        for _ in 0..20_000 {
            let n = (next() % 24) as usize;
            let mut t = 1_000i64;
            let mut v = (next() % 100) as f64;
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                t += 1 + (next() % 30_000) as i64;
                v = match next() % 16 {
                    0 => (next() % 10) as f64,
                    1 => specials[(next() % specials.len() as u64) as usize],
                    _ => v + (next() % 1000) as f64 / 7.0,
                };
                samples.push((t, v));
            }
            with_reset += usize::from(has_reset(&samples));
            let w = Window {
                samples: &samples,
                start: 0,
                end: t + (next() % 60_000) as i64,
                range: 300_000,
                eval_time: t,
            };
            for (counter, rate) in [(true, true), (true, false), (false, false)] {
                let (a, b) = (
                    extrapolated_rate(&w, counter, rate),
                    rate_over(&w, counter, rate, ResetCheck::Off),
                );
                assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits), "{samples:?}");
            }
        }
        assert!(
            with_reset > 1_000,
            "too few windows with a reset: {with_reset}"
        );
    }

    /// The reset index answers what scanning each window answers, for
    /// every window of series with resets, negative values, -0 and NaN.
    #[test]
    fn reset_index_agrees_with_scanning_each_window() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let specials = [0.0, -0.0, -1.5, f64::NAN, 3.0];
        let mut with_reset = 0;
        for _ in 0..500 {
            let n = 1 + (next() % 40) as usize;
            let mut v = 0.0;
            let samples: Vec<(i64, f64)> = (0..n)
                .map(|i| {
                    v = match next() % 8 {
                        0 => (next() % 10) as f64,
                        1 => specials[(next() % specials.len() as u64) as usize],
                        _ => v + (next() % 100) as f64,
                    };
                    (i as i64 * 15_000, v)
                })
                .collect();
            let index = ResetIndex::of(&samples);
            for lo in 0..n {
                for hi in lo + 1..=n {
                    let want = has_reset(&samples[lo..hi]);
                    with_reset += usize::from(want);
                    assert_eq!(
                        index.any_in(&samples, lo, hi),
                        want,
                        "{lo}..{hi} of {samples:?}"
                    );
                }
            }
        }
        assert!(
            with_reset > 10_000,
            "too few windows with a reset: {with_reset}"
        );
    }

    /// `avg_over_time` over a tier's (sum, count) pairs in one pass gives
    /// what summing the sums and the counts as two `sum_over_time` series
    /// gives, bit for bit, for steps that move and steps pinned by `@`.
    #[test]
    fn sum_count_pairs_in_one_pass_equal_two_sum_passes() {
        let ctx = Ctx::new(
            &NoStorage,
            "",
            300_000,
            0,
            0,
            std::time::Instant::now() + std::time::Duration::from_secs(60),
            usize::MAX,
        );
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        for round in 0..50 {
            let mut samples = Vec::new();
            let mut t = 0;
            for _ in 0..(next() % 300) {
                t += 1 + (next() % 5) as i64 * 1000;
                let sum = (next() % 1_000_000) as f64 / 7.0 - 1000.0;
                let count = (next() % 13) as f64;
                samples.push((
                    t,
                    if next().is_multiple_of(50) {
                        f64::NAN
                    } else {
                        sum
                    },
                ));
                samples.push((t, count));
            }
            let range = 1000 * (1 + (next() % 20) as i64);
            let refs: Vec<i64> = if round % 5 == 0 {
                vec![t / 2; 10]
            } else {
                (0..40).map(|i| i * 2500).collect()
            };
            let arg = RangeArg {
                refs: refs.clone(),
                range,
                resolution_ms: 1000,
                extended: None,
                aligned: false,
            };
            let got = sum_count_points(&ctx, &samples, &arg, &[], &refs).unwrap();
            let (sums, counts): (Vec<_>, Vec<_>) = samples
                .chunks_exact(2)
                .map(|pair| (pair[0], pair[1]))
                .unzip();
            let sums = window_points(&ctx, "sum_over_time", &sums, &arg, &[], &refs).unwrap();
            let counts = window_points(&ctx, "sum_over_time", &counts, &arg, &[], &refs).unwrap();
            let want: Vec<Option<f64>> = sums
                .iter()
                .zip(&counts)
                .map(|(sum, count)| match (sum, count) {
                    (Some(sum), Some(count)) if *count > 0.0 => Some(sum / count),
                    _ => None,
                })
                .collect();
            let bits =
                |v: &[Option<f64>]| v.iter().map(|p| p.map(f64::to_bits)).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "round {round}");
        }
    }
}
