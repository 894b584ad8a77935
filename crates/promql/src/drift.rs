//! Distribution drift: the statistics of `docs/drift.md` over bin shares,
//! and the PromQL functions `drift_psi`, `drift_kl`, `drift_js`,
//! `drift_hellinger`, `drift_ks` and `drift_wasserstein` over classic
//! histograms.
//!
//! The share-level functions are public so that `crates/models` computes
//! the model-quality series with the same arithmetic the queries use.
//! Every function takes the current distribution first and the reference
//! second, as the PromQL functions do.

use crate::QueryError;
use crate::aggregate::GroupIndex;
use crate::ast::Call;
use crate::eval::{Ctx, Steps};
use crate::value::{StepSeries, Val};
use model::Labels;

/// The stand-in for an empty bin's share, chosen per distribution as
/// Evidently's `get_binned_data` does: 0.0001, unless the smallest
/// non-zero share is at most that, then a millionth of that share.
pub fn epsilon(shares: &[f64]) -> f64 {
    let smallest = shares
        .iter()
        .copied()
        .filter(|s| *s != 0.0)
        .fold(f64::INFINITY, f64::min);
    if smallest <= 0.0001 {
        smallest / 1e6
    } else {
        0.0001
    }
}

/// The shares with every zero replaced by [`epsilon`].
pub fn fill_zeros(shares: &[f64]) -> Vec<f64> {
    let eps = epsilon(shares);
    shares
        .iter()
        .map(|&s| if s == 0.0 { eps } else { s })
        .collect()
}

/// The shares of the bins that are not empty on both sides: a bin nobody
/// fell in says nothing about drift (and Evidently, which builds its bins
/// from the values it sees, never has one).
fn occupied(p: &[f64], q: &[f64]) -> (Vec<f64>, Vec<f64>) {
    p.iter()
        .zip(q)
        .filter(|(a, b)| **a != 0.0 || **b != 0.0)
        .map(|(a, b)| (*a, *b))
        .unzip()
}

/// Population stability index: Σ (p − q)·ln(p/q) over epsilon-filled
/// shares (not renormalised), bins empty on both sides left out.
pub fn psi(p: &[f64], q: &[f64]) -> f64 {
    let (p, q) = occupied(p, q);
    let (p, q) = (fill_zeros(&p), fill_zeros(&q));
    p.iter()
        .zip(&q)
        .map(|(&a, &b)| (a - b) * (a / b).ln())
        .sum()
}

/// Kullback–Leibler divergence of `p` from `q` over epsilon-filled shares
/// renormalised to sum to 1 (`scipy.stats.entropy(p, q)`), bins empty on
/// both sides left out.
pub fn kl(p: &[f64], q: &[f64]) -> f64 {
    let (p, q) = occupied(p, q);
    let (p, q) = (fill_zeros(&p), fill_zeros(&q));
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    p.iter()
        .zip(&q)
        .map(|(&a, &b)| {
            let (a, b) = (a / sp, b / sq);
            a * (a / b).ln()
        })
        .sum()
}

/// Jensen–Shannon distance with natural logs
/// (`scipy.spatial.distance.jensenshannon(p, q)`), no epsilon.
pub fn js(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if sp <= 0.0 || sq <= 0.0 {
        return f64::NAN;
    }
    let rel = |x: f64, m: f64| if x > 0.0 { x * (x / m).ln() } else { 0.0 };
    let mut total = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        total += rel(a, m) + rel(b, m);
    }
    (total / 2.0).max(0.0).sqrt()
}

/// Hellinger distance: sqrt(1 − Σ sqrt(p·q)), the sum clipped to [0, 1].
pub fn hellinger(p: &[f64], q: &[f64]) -> f64 {
    let bc: f64 = p.iter().zip(q).map(|(&a, &b)| (a * b).sqrt()).sum();
    (1.0 - bc.clamp(0.0, 1.0)).sqrt()
}

/// The KS statistic over cumulative shares taken at the same points.
pub fn ks_cumulative(fp: &[f64], fq: &[f64]) -> f64 {
    fp.iter()
        .zip(fq)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

/// W1 over cumulative shares at ascending `bounds`: Σ over consecutive
/// finite bounds of |F_p(b_i) − F_q(b_i)|·(b_(i+1) − b_i).
pub fn wasserstein_cumulative(bounds: &[f64], fp: &[f64], fq: &[f64]) -> f64 {
    let mut total = 0.0;
    for i in 0..bounds.len().saturating_sub(1) {
        let (lo, hi) = (bounds[i], bounds[i + 1]);
        if lo.is_finite() && hi.is_finite() && hi > lo {
            total += (fp[i] - fq[i]).abs() * (hi - lo);
        }
    }
    total
}

/// The six PromQL drift functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Psi,
    Kl,
    Js,
    Hellinger,
    Ks,
    Wasserstein,
}

impl Method {
    /// The method of a PromQL function name (`drift_psi`, ...).
    pub fn from_function(name: &str) -> Option<Method> {
        Some(match name {
            "drift_psi" => Method::Psi,
            "drift_kl" => Method::Kl,
            "drift_js" => Method::Js,
            "drift_hellinger" => Method::Hellinger,
            "drift_ks" => Method::Ks,
            "drift_wasserstein" => Method::Wasserstein,
            _ => return None,
        })
    }

    /// The statistic of two histograms with the same `bounds`, given as
    /// per-bucket shares.
    pub fn over_buckets(self, bounds: &[f64], p: &[f64], q: &[f64]) -> f64 {
        let cumulative = |s: &[f64]| {
            let mut acc = 0.0;
            s.iter()
                .map(|x| {
                    acc += x;
                    acc
                })
                .collect::<Vec<f64>>()
        };
        match self {
            Method::Psi => psi(p, q),
            Method::Kl => kl(p, q),
            Method::Js => js(p, q),
            Method::Hellinger => hellinger(p, q),
            Method::Ks => ks_cumulative(&cumulative(p), &cumulative(q)),
            Method::Wasserstein => wasserstein_cumulative(bounds, &cumulative(p), &cumulative(q)),
        }
    }
}

/// Shares of one histogram at one step: cumulative `(le, count)` pairs in
/// any order in, per-bucket shares out, with the sorted bounds.
enum Shares {
    Ok {
        bounds: Vec<f64>,
        shares: Vec<f64>,
    },
    /// No observations (the `+Inf` count is 0) or a NaN count.
    Empty,
    NoInf,
}

fn shares(buckets: &mut [(f64, f64)]) -> Shares {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some(&(last_le, _)) = buckets.last() else {
        return Shares::Empty;
    };
    if last_le != f64::INFINITY {
        return Shares::NoInf;
    }
    if buckets.iter().any(|(_, c)| c.is_nan()) {
        return Shares::Empty;
    }
    // Decreasing cumulative counts are raised to the running maximum.
    let mut running = f64::NEG_INFINITY;
    let mut cumulative = Vec::with_capacity(buckets.len());
    for &(_, c) in buckets.iter() {
        running = running.max(c);
        cumulative.push(running);
    }
    let total = running;
    if total.is_infinite() || total <= 0.0 {
        return Shares::Empty;
    }
    let mut previous = 0.0;
    let shares = cumulative
        .iter()
        .map(|&c| {
            let share = (c - previous).max(0.0) / total;
            previous = c;
            share
        })
        .collect();
    Shares::Ok {
        bounds: buckets.iter().map(|(le, _)| *le).collect(),
        shares,
    }
}

/// One histogram of one side: its bucket series' `(le, per-step values)`.
type Histogram = Vec<(f64, Vec<Option<f64>>)>;

fn histograms(
    ctx: &Ctx<'_>,
    arg: &crate::ast::Expr,
    steps: &Steps,
    func: &str,
    arg_index: usize,
    index: &mut GroupIndex,
) -> Result<Vec<(usize, Histogram)>, QueryError> {
    let mut out: Vec<(usize, Histogram)> = Vec::new();
    let mut slot: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    ctx.eval_vector_each(arg, steps, &mut |s| {
        let Some(le) = s.labels.get("le").and_then(crate::aggregate::parse_go_float) else {
            let raw = s.labels.get("le").unwrap_or("");
            let name = s.labels.metric_name().unwrap_or("");
            ctx.warn_at_arg(
                format!(
                    "bucket label \"le\" is missing or has a malformed value of \"{raw}\" for metric name \"{name}\""
                ),
                func,
                arg_index,
            );
            return Ok(());
        };
        let (gi, _) = index.group(&s.labels, |l| {
            l.name != "le" && l.name != model::METRIC_NAME
        });
        let at = *slot.entry(gi).or_insert_with(|| {
            out.push((gi, Vec::new()));
            out.len() - 1
        });
        out[at].1.push((le, s.points));
        Ok(())
    })?;
    Ok(out)
}

fn bounds_text(bounds: &[f64]) -> String {
    let list: Vec<String> = bounds
        .iter()
        .map(|b| crate::functions::go_float(*b))
        .collect();
    format!("[{}]", list.join(" "))
}

/// Evaluates one of the six drift functions.
pub(crate) fn eval(ctx: &Ctx<'_>, c: &Call, steps: &Steps) -> Result<Val, QueryError> {
    let func = c.func.as_str();
    let Some(method) = Method::from_function(func) else {
        return Err(QueryError::bad_data(format!(
            "parse error: unknown function with name \"{func}\""
        )));
    };
    let mut index = GroupIndex::default();
    let current = histograms(ctx, &c.args[0], steps, func, 0, &mut index)?;
    let reference = histograms(ctx, &c.args[1], steps, func, 1, &mut index)?;
    let reference_of: std::collections::HashMap<usize, &Histogram> =
        reference.iter().map(|(gi, h)| (*gi, h)).collect();
    let mut out = Vec::new();
    for (gi, cur) in &current {
        let Some(refh) = reference_of.get(gi) else {
            continue;
        };
        let labels: &Labels = index.key(*gi);
        let mut points = Vec::with_capacity(steps.n);
        let mut any = false;
        let mut a: Vec<(f64, f64)> = Vec::new();
        let mut b: Vec<(f64, f64)> = Vec::new();
        for step in 0..steps.n {
            ctx.check_deadline()?;
            a.clear();
            b.clear();
            a.extend(cur.iter().filter_map(|(le, p)| p[step].map(|v| (*le, v))));
            b.extend(refh.iter().filter_map(|(le, p)| p[step].map(|v| (*le, v))));
            if a.is_empty() || b.is_empty() {
                points.push(None);
                continue;
            }
            let value = match (shares(&mut a), shares(&mut b)) {
                (
                    Shares::Ok {
                        bounds: bp,
                        shares: p,
                    },
                    Shares::Ok {
                        bounds: bq,
                        shares: q,
                    },
                ) => {
                    if bp.len() != bq.len() || bp.iter().zip(&bq).any(|(x, y)| x != y) {
                        ctx.warn(format!(
                            "{func}: bucket layouts differ between current and reference for {labels}: current le={}, reference le={}",
                            bounds_text(&bp),
                            bounds_text(&bq)
                        ));
                        None
                    } else {
                        Some(method.over_buckets(&bp, &p, &q))
                    }
                }
                (Shares::NoInf, _) | (_, Shares::NoInf) => {
                    ctx.warn(format!(
                        "{func}: histogram without a +Inf bucket for {labels}"
                    ));
                    None
                }
                _ => None,
            };
            any |= value.is_some();
            points.push(value);
        }
        if any {
            out.push(StepSeries {
                hists: Vec::new(),
                labels: labels.clone(),
                drop_name: true,
                points,
            });
        }
    }
    Ok(Val::Vector(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_follows_evidently() {
        assert_eq!(epsilon(&[0.5, 0.5, 0.0]), 0.0001);
        assert_eq!(epsilon(&[0.99995, 0.00005, 0.0]), 0.00005 / 1e6);
    }

    #[test]
    fn identical_distributions_have_no_drift() {
        let p = [0.2, 0.3, 0.5];
        for m in [
            Method::Psi,
            Method::Kl,
            Method::Js,
            Method::Hellinger,
            Method::Ks,
            Method::Wasserstein,
        ] {
            let v = m.over_buckets(&[1.0, 2.0, f64::INFINITY], &p, &p);
            assert!(v.abs() < 1e-12, "{m:?}: {v}");
        }
    }

    #[test]
    fn shares_fix_monotonicity_and_need_inf() {
        let mut b = vec![(f64::INFINITY, 10.0), (1.0, 4.0), (2.0, 3.0)];
        match shares(&mut b) {
            Shares::Ok { bounds, shares } => {
                assert_eq!(bounds, vec![1.0, 2.0, f64::INFINITY]);
                assert_eq!(shares, vec![0.4, 0.0, 0.6]);
            }
            _ => panic!("expected shares"),
        }
        let mut b = vec![(1.0, 4.0)];
        assert!(matches!(shares(&mut b), Shares::NoInf));
        let mut b = vec![(1.0, 0.0), (f64::INFINITY, 0.0)];
        assert!(matches!(shares(&mut b), Shares::Empty));
    }
}
