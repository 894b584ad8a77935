//! osprey's anomaly functions (`docs/anomaly.md`): a robust z-score of a
//! series' newest sample against a baseline taken from its own past, and
//! the band that score measures against.
//!
//! - `anomaly_score(v[range])`: the baseline is the rest of the window.
//! - `anomaly_score_seasonal(v[range], width, period...)`: the baseline is
//!   the window's samples within `width / 2` of the newest sample's time
//!   one or more periods ago, several periods combined.
//! - `anomaly_band(v[range], k)`, `anomaly_band_seasonal(v[range], k,
//!   width, period...)`: `center ± k·scale` over the same baselines, as
//!   three series labelled `band="lower"|"center"|"upper"`.
//!
//! The centre is the median and the scale the MAD divided by Φ⁻¹(0.75)
//! (scipy's `median_abs_deviation(scale="normal")`), so one outlier in the
//! baseline moves neither. This is not a forecaster: nothing is fitted,
//! and a trend inside the window reads as an anomaly.

use crate::QueryError;
use crate::ast::Call;
use crate::eval::{Ctx, RangeArg, Steps};
use crate::value::{RangeSeries, StepSeries};
use model::LabelsBuilder;

/// Φ⁻¹(0.75), the MAD of a standard normal: MAD / this estimates σ. The
/// digits are scipy's (`scipy.stats.median_abs_deviation`, `scale="normal"`).
const MAD_NORMAL: f64 = 0.674_489_750_196_081_7;

/// Fewer baseline values than this give no output for the step.
const MIN_BASELINE: usize = 3;

/// The most seasonal slots one step may look at, over all periods: a
/// period far shorter than the window (`[8d]` with a period of `1s`) is a
/// mistake, and would cost a binary search per slot per step.
const MAX_SLOTS: i64 = 10_000;

/// Evaluates one of the anomaly functions, handing each output series to
/// `emit`.
pub(crate) fn eval(
    ctx: &Ctx<'_>,
    c: &Call,
    steps: &Steps,
    emit: &mut dyn FnMut(StepSeries) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let name = c.func.as_str();
    let band = name.starts_with("anomaly_band");
    let seasonal = name.ends_with("_seasonal");
    let mut scalars = Vec::with_capacity(c.args.len().saturating_sub(1));
    for a in &c.args[1..] {
        scalars.push(ctx.eval_scalar(a, steps)?);
    }
    let (k, rest) = if band {
        match scalars.split_first() {
            Some((k, rest)) => (Some(k.as_slice()), rest),
            None => return Err(QueryError::bad_data(format!("{name}: k is missing"))),
        }
    } else {
        (None, scalars.as_slice())
    };
    if let Some(k) = k
        && let Some(bad) = k.iter().find(|k| !(k.is_finite() && **k >= 0.0))
    {
        return Err(QueryError::bad_data(format!(
            "{name}: k must be a finite number >= 0, got {bad}"
        )));
    }
    // Per step: the slot width and the periods, in milliseconds.
    let mut seasons: Vec<(i64, Vec<i64>)> = Vec::new();
    if seasonal {
        let Some((width, periods)) = rest.split_first() else {
            return Err(QueryError::bad_data(format!("{name}: width is missing")));
        };
        if periods.is_empty() {
            return Err(QueryError::bad_data(format!(
                "{name}: at least one period is needed"
            )));
        }
        for i in 0..steps.n {
            let width_ms = seconds_to_ms(name, "width", width[i])?;
            let mut period_ms = Vec::with_capacity(periods.len());
            for p in periods {
                let p = seconds_to_ms(name, "period", p[i])?;
                if width_ms >= p {
                    return Err(QueryError::bad_data(format!(
                        "{name}: width ({}s) must be smaller than every period ({}s)",
                        width_ms as f64 / 1000.0,
                        p as f64 / 1000.0
                    )));
                }
                period_ms.push(p);
            }
            seasons.push((width_ms, period_ms));
        }
    }
    let mut baseline = Vec::new();
    let mut slot_indices = Vec::new();
    ctx.for_each_range_series(&c.args[0], steps, &mut |s: &mut RangeSeries, arg: &RangeArg| {
        if seasonal {
            let longest = seasons
                .iter()
                .map(|(_, periods)| periods.iter().map(|p| arg.range / p).sum::<i64>())
                .max()
                .unwrap_or(0);
            if longest > MAX_SLOTS {
                return Err(QueryError::bad_data(format!(
                    "{name}: the range holds more than {MAX_SLOTS} seasonal periods; use longer periods or a shorter range"
                )));
            }
        }
        let samples = &s.samples;
        let n_out = if band { 3 } else { 1 };
        let mut points: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(steps.n); n_out];
        let mut any = false;
        for (i, &r) in arg.refs.iter().enumerate() {
            ctx.check_deadline()?;
            let start = r.saturating_sub(arg.range);
            let lo = samples.partition_point(|(t, _)| *t <= start);
            let hi = samples.partition_point(|(t, _)| *t <= r);
            let stats = if hi <= lo {
                None
            } else {
                let (t_x, x) = samples[hi - 1];
                baseline.clear();
                if seasonal {
                    let (width, periods) = &seasons[i];
                    seasonal_baseline(
                        &samples[lo..hi],
                        t_x,
                        *width,
                        periods,
                        &mut slot_indices,
                        &mut baseline,
                    );
                } else {
                    baseline.extend(samples[lo..hi - 1].iter().map(|(_, v)| *v));
                }
                robust_center_scale(&mut baseline).map(|(center, scale)| (x, center, scale))
            };
            match stats {
                None => points.iter_mut().for_each(|p| p.push(None)),
                Some((x, center, scale)) => {
                    any = true;
                    match k {
                        None => points[0].push(Some(score(x, center, scale))),
                        Some(k) => {
                            let half = k[i] * scale;
                            // 0·Inf would be NaN: a zero-width band stays at the centre.
                            let half = if k[i] == 0.0 { 0.0 } else { half };
                            points[0].push(Some(center - half));
                            points[1].push(Some(center));
                            points[2].push(Some(center + half));
                        }
                    }
                }
            }
        }
        if !any {
            return Ok(());
        }
        if !band {
            return emit(StepSeries {
                hists: Vec::new(),
                labels: std::mem::take(&mut s.labels),
                drop_name: true,
                points: points.pop().unwrap_or_default(),
            });
        }
        for (label, p) in ["lower", "center", "upper"].into_iter().zip(points) {
            let mut b = LabelsBuilder::from_labels(&s.labels);
            b.set("band", label);
            emit(StepSeries {
                hists: Vec::new(),
                labels: b.build(),
                drop_name: true,
                points: p,
            })?;
        }
        Ok(())
    })
}

/// A duration argument in seconds as whole milliseconds; it must be
/// positive and finite.
fn seconds_to_ms(function: &str, what: &str, seconds: f64) -> Result<i64, QueryError> {
    let ms = (seconds * 1000.0).round();
    if !(1.0..1e15).contains(&ms) {
        return Err(QueryError::bad_data(format!(
            "{function}: {what} must be a positive number of seconds (at least 1ms, under 30,000 years), got {seconds}"
        )));
    }
    Ok(ms as i64)
}

/// Appends to `out` the values of `window` whose time lies within
/// `width / 2` of `t_x - k·p` for some period `p` and `k ≥ 1`, each sample
/// once. `window` is sorted by time and ends with the sample at `t_x`.
fn seasonal_baseline(
    window: &[(i64, f64)],
    t_x: i64,
    width: i64,
    periods: &[i64],
    indices: &mut Vec<usize>,
    out: &mut Vec<f64>,
) {
    indices.clear();
    let Some(&(first_t, _)) = window.first() else {
        return;
    };
    for &p in periods {
        let mut k = 1i64;
        while let Some(center) = t_x.checked_sub(k.saturating_mul(p)) {
            // In doubled units, so an odd width stays exact:
            // |t - center| ≤ width / 2  ⇔  2t ≥ 2·center - width and 2t ≤ 2·center + width.
            let (lo2, hi2) = (
                2 * (center as i128) - width as i128,
                2 * (center as i128) + width as i128,
            );
            if hi2 < 2 * first_t as i128 {
                break;
            }
            let a = window.partition_point(|(t, _)| 2 * (*t as i128) < lo2);
            let b = window.partition_point(|(t, _)| 2 * (*t as i128) <= hi2);
            indices.extend(a..b);
            k += 1;
        }
    }
    indices.sort_unstable();
    indices.dedup();
    out.extend(indices.iter().map(|&j| window[j].1));
}

/// The median and the normal-consistent MAD of `values` (reordered), or
/// `None` with fewer than `MIN_BASELINE` values. A NaN gives NaN for both.
fn robust_center_scale(values: &mut [f64]) -> Option<(f64, f64)> {
    if values.len() < MIN_BASELINE {
        return None;
    }
    if values.iter().any(|v| v.is_nan()) {
        return Some((f64::NAN, f64::NAN));
    }
    let center = median(values);
    for v in values.iter_mut() {
        *v = (*v - center).abs();
    }
    let mad = median(values);
    Some((center, mad / MAD_NORMAL))
}

/// The median of NaN-free values (the mean of the two middle ones for an
/// even count, as numpy's `median`).
fn median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// `(x - center) / scale`, with a zero scale giving 0 for `x = center`
/// and ±Inf otherwise.
fn score(x: f64, center: f64, scale: f64) -> f64 {
    if x.is_nan() || center.is_nan() || scale.is_nan() {
        return f64::NAN;
    }
    if scale == 0.0 {
        return if x == center {
            0.0
        } else if x > center {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        };
    }
    (x - center) / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn center_and_scale() {
        // median 3, deviations 2 1 0 1 97 → MAD 1.
        let mut v = [1.0, 2.0, 3.0, 4.0, 100.0];
        let (c, s) = robust_center_scale(&mut v).expect("enough values");
        assert_eq!(c, 3.0);
        assert_eq!(s, 1.0 / MAD_NORMAL);
        assert!(robust_center_scale(&mut [1.0, 2.0]).is_none());
        let (c, _) = robust_center_scale(&mut [1.0, f64::NAN, 2.0]).expect("three");
        assert!(c.is_nan());
    }

    #[test]
    fn zero_scale() {
        assert_eq!(score(5.0, 5.0, 0.0), 0.0);
        assert_eq!(score(6.0, 5.0, 0.0), f64::INFINITY);
        assert_eq!(score(4.0, 5.0, 0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn seasonal_slots_union() {
        // One sample a minute for three hours; period 1h and 2h, width 2m:
        // slots at 60±1 and 120±1 minutes back, the 2h slot shared.
        let window: Vec<(i64, f64)> = (0..=180).map(|m| (m * 60_000, m as f64)).collect();
        let (mut idx, mut out) = (Vec::new(), Vec::new());
        seasonal_baseline(
            &window,
            180 * 60_000,
            120_000,
            &[3_600_000, 7_200_000],
            &mut idx,
            &mut out,
        );
        assert_eq!(out, vec![0.0, 1.0, 59.0, 60.0, 61.0, 119.0, 120.0, 121.0]);
    }
}
