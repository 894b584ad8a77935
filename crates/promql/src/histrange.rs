//! Range functions over series that hold native histograms (alone or
//! mixed with floats), with Prometheus 3's rules: `rate`/`increase`/
//! `delta` and `irate`/`idelta` on histograms, the `*_over_time`
//! functions that accept them, `changes`/`resets` across both kinds, and
//! the float-only functions that ignore histograms with an info.

use crate::QueryError;
use crate::aggregate::for_metric;
use crate::eval::{Ctx, RangeArg};
use crate::functions::{Window, apply_range};
use crate::hist::{self, Hist};
use crate::value::RangeSeries;
use model::histogram::CounterResetHint;

/// Where annotations about the range argument go.
pub(crate) struct Place<'a> {
    pub func: &'a str,
    pub arg: usize,
}

impl Place<'_> {
    fn warn(&self, ctx: &Ctx<'_>, msg: String) {
        ctx.warn_at_arg(msg, self.func, self.arg);
    }
    fn info(&self, ctx: &Ctx<'_>, msg: String) {
        ctx.info_at_arg(msg, self.func, self.arg);
    }
}

fn mixed_floats(name: &str) -> String {
    format!("encountered a mix of histograms and floats for metric name \"{name}\"")
}

fn mixed_schemas(name: &str) -> String {
    format!(
        "vector contains a mix of histograms with exponential and custom buckets schemas for metric name \"{name}\""
    )
}

/// One step's result: a float or a histogram.
pub(crate) enum Out {
    Float(f64),
    Hist(Hist),
}

/// Per step, the function over a series with histogram samples.
#[allow(
    clippy::too_many_arguments,
    reason = "the window, its bounds and the annotation place, as Prometheus passes them"
)]
pub(crate) fn points(
    ctx: &Ctx<'_>,
    name: &str,
    s: &RangeSeries,
    arg: &RangeArg,
    params: &[Vec<f64>],
    eval_times: &[i64],
    place: &Place<'_>,
) -> Result<Vec<Option<Out>>, QueryError> {
    let metric = s.labels.metric_name().unwrap_or("").to_string();
    let mut out = Vec::with_capacity(arg.refs.len());
    for (i, &r) in arg.refs.iter().enumerate() {
        ctx.check_deadline()?;
        let start = r.saturating_sub(arg.range);
        let f_lo = s.samples.partition_point(|(t, _)| *t <= start);
        let f_hi = s.samples.partition_point(|(t, _)| *t <= r);
        let h_lo = s.hists.partition_point(|(t, _)| *t <= start);
        let h_hi = s.hists.partition_point(|(t, _)| *t <= r);
        let fw = &s.samples[f_lo..f_hi.max(f_lo)];
        let hw = &s.hists[h_lo..h_hi.max(h_lo)];
        let w = Window {
            samples: fw,
            start,
            end: r,
            range: arg.range,
            eval_time: eval_times[i],
        };
        let float = |ctx: &Ctx<'_>| -> Option<Out> {
            let _ = ctx;
            apply_range(name, &w, params, i).map(Out::Float)
        };
        if hw.is_empty() {
            out.push(float(ctx));
            continue;
        }
        let v = match name {
            "rate" | "increase" | "delta" => {
                if !fw.is_empty() {
                    place.warn(ctx, mixed_floats(&metric));
                    None
                } else {
                    hist_rate(
                        ctx,
                        hw,
                        start,
                        r,
                        arg.range,
                        name != "delta",
                        name == "rate",
                        &metric,
                        place,
                    )
                    .map(Out::Hist)
                }
            }
            "irate" | "idelta" => instant(ctx, fw, hw, name == "irate", &metric, place),
            "sum_over_time" | "avg_over_time" => {
                if !fw.is_empty() {
                    place.warn(ctx, mixed_floats(&metric));
                    None
                } else {
                    sum_hists(ctx, hw, name == "avg_over_time", &metric, place).map(Out::Hist)
                }
            }
            "count_over_time" => Some(Out::Float((fw.len() + hw.len()) as f64)),
            "present_over_time" => Some(Out::Float(1.0)),
            "last_over_time" | "ts_of_last_over_time" => {
                let (ht, h) = &hw[hw.len() - 1];
                let use_float = fw.last().is_some_and(|(ft, _)| ft > ht);
                match (name, use_float) {
                    ("last_over_time", true) => Some(Out::Float(fw[fw.len() - 1].1)),
                    ("last_over_time", false) => Some(Out::Hist(h.clone())),
                    (_, true) => Some(Out::Float(fw[fw.len() - 1].0 as f64 / 1000.0)),
                    (_, false) => Some(Out::Float(*ht as f64 / 1000.0)),
                }
            }
            "first_over_time" | "ts_of_first_over_time" => {
                let (ht, h) = &hw[0];
                let use_float = fw.first().is_some_and(|(ft, _)| ft < ht);
                match (name, use_float) {
                    ("first_over_time", true) => Some(Out::Float(fw[0].1)),
                    ("first_over_time", false) => Some(Out::Hist(h.clone())),
                    (_, true) => Some(Out::Float(fw[0].0 as f64 / 1000.0)),
                    (_, false) => Some(Out::Float(*ht as f64 / 1000.0)),
                }
            }
            "changes" | "resets" => Some(Out::Float(changes_resets(fw, hw, name == "resets"))),
            _ => {
                // Float-only functions: histograms are ignored.
                if fw.is_empty() {
                    None
                } else {
                    place.info(
                        ctx,
                        for_metric(
                            "ignored histograms in a range containing both floats and histograms",
                            &metric,
                        ),
                    );
                    float(ctx)
                }
            }
        };
        out.push(v);
    }
    Ok(out)
}

/// `changes` or `resets` over both kinds in time order.
fn changes_resets(fw: &[(i64, f64)], hw: &[(i64, Hist)], resets: bool) -> f64 {
    enum P<'a> {
        F(f64),
        H(&'a Hist),
    }
    let mut all: Vec<(i64, P<'_>)> = fw
        .iter()
        .map(|(t, v)| (*t, P::F(*v)))
        .chain(hw.iter().map(|(t, h)| (*t, P::H(h))))
        .collect();
    all.sort_by_key(|(t, _)| *t);
    let mut n = 0.0;
    for pair in all.windows(2) {
        let hit = match (&pair[0].1, &pair[1].1) {
            (P::F(a), P::F(b)) => {
                if resets {
                    b < a
                } else {
                    a != b && !(a.is_nan() && b.is_nan())
                }
            }
            (P::H(a), P::H(b)) => {
                if resets {
                    hist::detect_reset(b, a)
                } else {
                    !hist::equals(b, a)
                }
            }
            _ => true,
        };
        if hit {
            n += 1.0;
        }
    }
    n
}

/// `irate`/`idelta` over the last two samples.
fn instant(
    ctx: &Ctx<'_>,
    fw: &[(i64, f64)],
    hw: &[(i64, Hist)],
    is_rate: bool,
    metric: &str,
    place: &Place<'_>,
) -> Option<Out> {
    if fw.len() + hw.len() < 2 {
        return None;
    }
    // The last two samples of either kind.
    let mut last2: Vec<(i64, Option<f64>, Option<&Hist>)> = fw
        .iter()
        .rev()
        .take(2)
        .map(|(t, v)| (*t, Some(*v), None))
        .chain(hw.iter().rev().take(2).map(|(t, h)| (*t, None, Some(h))))
        .collect();
    last2.sort_by_key(|x| x.0);
    let n = last2.len();
    let ((t0, f0, h0), (t1, f1, h1)) = (last2[n - 2], last2[n - 1]);
    let (h0, h1) = match (f0, f1, h0, h1) {
        (Some(v0), Some(v1), _, _) => {
            if t1 == t0 {
                return None;
            }
            let mut r = if is_rate && v1 < v0 { v1 } else { v1 - v0 };
            if is_rate {
                r /= (t1 - t0) as f64 / 1000.0;
            }
            return Some(Out::Float(r));
        }
        (_, _, Some(h0), Some(h1)) => (h0, h1),
        _ => {
            place.warn(ctx, mixed_floats(metric));
            return None;
        }
    };
    let interval = t1 - t0;
    if interval == 0 {
        return None;
    }
    let gauge = CounterResetHint::Gauge;
    if is_rate && (h1.counter_reset_hint == gauge || h0.counter_reset_hint == gauge) {
        place.warn(
            ctx,
            format!("this native histogram metric is not a counter: \"{metric}\""),
        );
    }
    if !is_rate && (h1.counter_reset_hint != gauge || h0.counter_reset_hint != gauge) {
        place.warn(
            ctx,
            format!("this native histogram metric is not a gauge: \"{metric}\""),
        );
    }
    let mut r = h1.clone();
    if !is_rate || !hist::detect_reset(h1, h0) {
        match hist::add(&mut r, h0, true) {
            Err(_) => {
                place.warn(ctx, mixed_schemas(metric));
                return None;
            }
            Ok(notes) if notes.reconciled => place.info(
                ctx,
                "mismatched custom buckets were reconciled during subtraction".to_string(),
            ),
            Ok(_) => {}
        }
    }
    r.counter_reset_hint = gauge;
    hist::compact(&mut r);
    if is_rate {
        hist::div(&mut r, interval as f64 / 1000.0);
    }
    Some(Out::Hist(r))
}

/// The sum (or mean) of the histograms of a window.
fn sum_hists(
    ctx: &Ctx<'_>,
    hw: &[(i64, Hist)],
    mean: bool,
    metric: &str,
    place: &Place<'_>,
) -> Option<Hist> {
    let (mut reset, mut not_reset, mut reconciled) = (false, false, false);
    let mut track = |h: &Hist| match h.counter_reset_hint {
        CounterResetHint::CounterReset => reset = true,
        CounterResetHint::NotCounterReset => not_reset = true,
        _ => {}
    };
    let mut acc = hist::HistAcc::new(mean);
    for (_, h) in hw {
        track(h);
        match acc.add(h) {
            Ok(notes) => reconciled |= notes.reconciled,
            Err(_) => {
                place.warn(ctx, mixed_schemas(metric));
                return None;
            }
        }
    }
    if reset && not_reset {
        place.warn(
            ctx,
            "conflicting counter resets during histogram aggregation".to_string(),
        );
    }
    if reconciled {
        place.info(
            ctx,
            "mismatched custom buckets were reconciled during aggregation".to_string(),
        );
    }
    acc.finish()
}

/// Prometheus's `histogramRate` and the extrapolation around it.
#[allow(
    clippy::too_many_arguments,
    reason = "the window, its bounds and the annotation place, as Prometheus passes them"
)]
fn hist_rate(
    ctx: &Ctx<'_>,
    hw: &[(i64, Hist)],
    range_start: i64,
    range_end: i64,
    range: i64,
    is_counter: bool,
    is_rate: bool,
    metric: &str,
    place: &Place<'_>,
) -> Option<Hist> {
    if hw.len() < 2 {
        return None;
    }
    let gauge = CounterResetHint::Gauge;
    let not_counter = || format!("this native histogram metric is not a counter: \"{metric}\"");
    let first = &hw[0].1;
    let last = &hw[hw.len() - 1].1;
    if is_counter && (first.counter_reset_hint == gauge || last.counter_reset_hint == gauge) {
        place.warn(ctx, not_counter());
    }
    let mut prev: Hist = first.clone();
    if is_counter {
        let second = &hw[1].1;
        if hist::detect_reset(second, first) {
            prev = Hist {
                schema: second.schema,
                custom_values: second.custom_values.clone(),
                ..Hist::default()
            };
        }
    }
    let using_custom = hist::is_custom(&prev);
    if hist::is_custom(last) != using_custom {
        place.warn(ctx, mixed_schemas(metric));
        return None;
    }
    let mut min_schema = last.schema.min(prev.schema);
    if is_counter {
        for (_, h) in &hw[1..hw.len() - 1] {
            if h.counter_reset_hint == gauge {
                place.warn(ctx, not_counter());
            }
            min_schema = min_schema.min(h.schema);
            if hist::is_custom(h) != using_custom {
                place.warn(ctx, mixed_schemas(metric));
                return None;
            }
        }
    }
    let mut h = hist::to_schema(last, min_schema);
    match hist::add(&mut h, &prev, true) {
        Err(_) => {
            place.warn(ctx, mixed_schemas(metric));
            return None;
        }
        Ok(notes) if notes.reconciled => place.info(
            ctx,
            "mismatched custom buckets were reconciled during subtraction".to_string(),
        ),
        Ok(_) => {}
    }
    if is_counter {
        let mut p = &prev;
        for (_, cur) in &hw[1..] {
            if hist::detect_reset(cur, p) {
                match hist::add(&mut h, p, false) {
                    Err(_) => {
                        place.warn(ctx, mixed_schemas(metric));
                        return None;
                    }
                    Ok(notes) if notes.reconciled => place.info(
                        ctx,
                        "mismatched custom buckets were reconciled during addition".to_string(),
                    ),
                    Ok(_) => {}
                }
            }
            p = cur;
        }
    } else if first.counter_reset_hint != gauge || last.counter_reset_hint != gauge {
        place.warn(
            ctx,
            format!("this native histogram metric is not a gauge: \"{metric}\""),
        );
    }
    h.counter_reset_hint = gauge;
    hist::compact(&mut h);
    // Extrapolation, as for floats, with the observation count standing in
    // for the value.
    let first_t = hw[0].0;
    let last_t = hw[hw.len() - 1].0;
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_between = sampled / (hw.len() - 1) as f64;
    let threshold = avg_between * 1.1;
    if to_start >= threshold {
        to_start = avg_between / 2.0;
    }
    if is_counter && h.count > 0.0 && first.count >= 0.0 {
        let to_zero = sampled * (first.count / h.count);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_between / 2.0;
    }
    let mut factor = 1.0;
    if sampled != 0.0 {
        factor = (sampled + to_start + to_end) / sampled;
    }
    if is_rate {
        factor /= range as f64 / 1000.0;
    }
    hist::mul(&mut h, factor);
    Some(h)
}

/// Per step, `rate`/`increase`/`delta`/`changes`/`resets` over an
/// `anchored` or `smoothed` range of a series with histogram samples
/// (Prometheus's `extendedHistogramRate` and `pickFirstSampleIndices`).
pub(crate) fn extended_points(
    ctx: &Ctx<'_>,
    name: &str,
    s: &RangeSeries,
    arg: &RangeArg,
    ext: crate::eval::Extended,
    place: &Place<'_>,
) -> Result<Vec<Option<Out>>, QueryError> {
    let metric = s.labels.metric_name().unwrap_or("").to_string();
    let mut out = Vec::with_capacity(arg.refs.len());
    for &r in &arg.refs {
        ctx.check_deadline()?;
        let range_start = r.saturating_sub(arg.range);
        let range_end = r;
        let left_edge = range_start.saturating_sub(ext.lookback);
        let right_edge = if ext.smoothed {
            range_end.saturating_add(ext.lookback)
        } else {
            range_end
        };
        let f_lo = s.samples.partition_point(|(t, _)| *t <= left_edge);
        let f_hi = s.samples.partition_point(|(t, _)| *t <= right_edge);
        let h_lo = s.hists.partition_point(|(t, _)| *t <= left_edge);
        let h_hi = s.hists.partition_point(|(t, _)| *t <= right_edge);
        let fw = &s.samples[f_lo..f_hi.max(f_lo)];
        let hw = &s.hists[h_lo..h_hi.max(h_lo)];
        if fw.is_empty() && hw.is_empty() {
            out.push(None);
            continue;
        }
        let v = match name {
            "rate" | "increase" | "delta" => {
                if !fw.is_empty() && !hw.is_empty() {
                    place.warn(ctx, mixed_floats(&metric));
                    None
                } else if hw.is_empty() {
                    crate::functions::extended_rate_window(
                        fw,
                        range_start,
                        range_end,
                        arg.range,
                        ext.smoothed,
                        name != "delta",
                        name == "rate",
                    )
                    .map(Out::Float)
                } else {
                    extended_hist_rate(
                        ctx,
                        hw,
                        range_start,
                        range_end,
                        arg.range,
                        ext.smoothed,
                        name != "delta",
                        name == "rate",
                        &metric,
                        place,
                    )
                    .map(Out::Hist)
                }
            }
            "changes" | "resets" => {
                // The anchor: the newest sample of either kind at or before
                // the range start; older ones are left out.
                let lf = fw.partition_point(|(t, _)| *t <= range_start);
                let lh = hw.partition_point(|(t, _)| *t <= range_start);
                if lf >= fw.len() && lh >= hw.len() {
                    None
                } else {
                    let (ff, fh) = match (lf.checked_sub(1), lh.checked_sub(1)) {
                        (None, None) => (0, 0),
                        (Some(a), None) => (a, 0),
                        (None, Some(b)) => (0, b),
                        (Some(a), Some(b)) => {
                            if fw[a].0 >= hw[b].0 {
                                (a, b + 1)
                            } else {
                                (a + 1, b)
                            }
                        }
                    };
                    Some(Out::Float(changes_resets(
                        &fw[ff..],
                        &hw[fh..],
                        name == "resets",
                    )))
                }
            }
            _ => None,
        };
        out.push(v);
    }
    Ok(out)
}

/// Prometheus's interpolation between two histograms at `t`.
fn interpolate_hists(
    ctx: &Ctx<'_>,
    (t1, h1): (i64, &Hist),
    (t2, h2): (i64, &Hist),
    t: i64,
    is_counter: bool,
    metric: &str,
    place: &Place<'_>,
) -> Option<Hist> {
    if t == t1 {
        return Some(h1.clone());
    }
    if t == t2 {
        return Some(h2.clone());
    }
    let fraction = (t - t1) as f64 / (t2 - t1) as f64;
    if is_counter && hist::detect_reset(h2, h1) {
        let mut r = h2.clone();
        hist::mul(&mut r, fraction);
        return Some(r);
    }
    let mut r = h2.clone();
    if !sub_with_notes(ctx, &mut r, h1, true, metric, place) {
        return None;
    }
    hist::mul(&mut r, fraction);
    if !sub_with_notes(ctx, &mut r, h1, false, metric, place) {
        return None;
    }
    Some(r)
}

/// `h -= other` (or `+=` when `negate` is false), with Prometheus's
/// annotations; false when the schemas cannot mix.
fn sub_with_notes(
    ctx: &Ctx<'_>,
    h: &mut Hist,
    other: &Hist,
    negate: bool,
    metric: &str,
    place: &Place<'_>,
) -> bool {
    match hist::add(h, other, negate) {
        Err(_) => {
            place.warn(ctx, mixed_schemas(metric));
            false
        }
        Ok(notes) => {
            if notes.reconciled {
                let what = if negate { "subtraction" } else { "addition" };
                place.info(
                    ctx,
                    format!("mismatched custom buckets were reconciled during {what}"),
                );
            }
            true
        }
    }
}

/// Prometheus's `extendedHistogramRate`.
#[allow(
    clippy::too_many_arguments,
    reason = "the window, its bounds and the annotation place, as Prometheus passes them"
)]
fn extended_hist_rate(
    ctx: &Ctx<'_>,
    h: &[(i64, Hist)],
    range_start: i64,
    range_end: i64,
    range: i64,
    smoothed: bool,
    is_counter: bool,
    is_rate: bool,
    metric: &str,
    place: &Place<'_>,
) -> Option<Hist> {
    let mut last = h.len() - 1;
    let first = h[..last]
        .partition_point(|(t, _)| *t <= range_start)
        .saturating_sub(1);
    if smoothed {
        last = h[..last].partition_point(|(t, _)| *t < range_end);
    }
    if h[last].0 <= range_start {
        return None;
    }
    if smoothed && h[first].0 > range_end {
        return None;
    }
    let custom = hist::is_custom(&h[first].1);
    for (_, p) in &h[first..=last] {
        if hist::is_custom(p) != custom {
            place.warn(ctx, mixed_schemas(metric));
            return None;
        }
        if is_counter && p.counter_reset_hint == CounterResetHint::Gauge {
            place.warn(
                ctx,
                format!("this native histogram metric is not a counter: \"{metric}\""),
            );
        }
    }
    let at = |k: usize| (h[k].0, &h[k].1);
    let left = if smoothed && h[first].0 < range_start {
        interpolate_hists(
            ctx,
            at(first),
            at(first + 1),
            range_start,
            is_counter,
            metric,
            place,
        )?
    } else {
        h[first].1.clone()
    };
    let right = if smoothed && last > 0 && h[last].0 > range_end {
        interpolate_hists(
            ctx,
            at(last - 1),
            at(last),
            range_end,
            is_counter,
            metric,
            place,
        )?
    } else {
        h[last].1.clone()
    };
    let gauge = CounterResetHint::Gauge;
    if !is_counter && (left.counter_reset_hint != gauge || right.counter_reset_hint != gauge) {
        place.warn(
            ctx,
            format!("this native histogram metric is not a gauge: \"{metric}\""),
        );
    }
    let mut result = right.clone();
    if !sub_with_notes(ctx, &mut result, &left, true, metric, place) {
        return None;
    }
    if is_counter {
        // Prometheus's correctForCounterResetsHistogram.
        let mut start = first + 1;
        let mut prev: &Hist = &left;
        if smoothed && h[first].0 < range_start && hist::detect_reset(&h[first + 1].1, &h[first].1)
        {
            prev = &h[first + 1].1;
            start += 1;
        }
        let mut correction: Option<Hist> = None;
        if start <= last {
            for (_, p) in &h[start..last] {
                if hist::detect_reset(p, prev) {
                    match &mut correction {
                        None => correction = Some(prev.clone()),
                        Some(c) => {
                            if !sub_with_notes(ctx, c, prev, false, metric, place) {
                                return None;
                            }
                        }
                    }
                }
                prev = p;
            }
            if hist::detect_reset(&right, prev) {
                match &mut correction {
                    None => correction = Some(prev.clone()),
                    Some(c) => {
                        if !sub_with_notes(ctx, c, prev, false, metric, place) {
                            return None;
                        }
                    }
                }
            }
        }
        if let Some(c) = correction
            && !sub_with_notes(ctx, &mut result, &c, false, metric, place)
        {
            return None;
        }
    }
    if is_rate {
        hist::div(&mut result, range as f64 / 1000.0);
    }
    result.counter_reset_hint = gauge;
    hist::compact(&mut result);
    Some(result)
}
