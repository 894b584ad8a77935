//! One feature's reference and current distributions, for the Models
//! page (`GET /api/v1/models/{model}/distribution`, `docs/models.md`):
//! what the drift figures compare, as shares a chart can draw.
//!
//! - Numeric: a histogram of [`HISTOGRAM_BINS`] equal-width bins over the
//!   range of both samples together (numpy's `histogram` with
//!   `range=(min, max)`: every bin half-open but the last, which is
//!   closed), each side's counts over its own total; and the
//!   equal-frequency bins PSI, KL and JS use (`docs/drift.md`), with both
//!   sides' shares.
//! - Categorical: each category's share on both sides, the largest
//!   [`MAX_CATEGORIES_SHOWN`] by their larger share, the rest summed.
//!
//! Read under the model's lock; nothing is changed.

use crate::store::{ModelState, VersionState};
use crate::window::{Column, Kind, NumericSample, merge_counts};
use serde::Serialize;

/// Equal-width bins of the numeric histogram.
pub const HISTOGRAM_BINS: usize = 20;
/// Categories listed one by one; the others are summed into one entry.
pub const MAX_CATEGORIES_SHOWN: usize = 30;
/// The name of that entry.
pub const OTHER_CATEGORIES: &str = "(other categories)";

/// The answer's `data`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Distribution {
    pub model: String,
    pub feature: String,
    pub version: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// Values present in the reference and in the version's window.
    pub reference_count: f64,
    pub current_count: f64,
    /// Whether either side is partly summarised (shares then carry the
    /// error bound of `docs/drift.md`).
    pub sketched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi_bins: Option<PsiBins>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<CategoryShare>>,
}

/// Equal-width bins: `edges` has one more entry than each share list.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Histogram {
    pub edges: Vec<f64>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

/// The reference's equal-frequency cut points and both sides' shares
/// (one more share than cuts: the outer bins are open).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PsiBins {
    pub cuts: Vec<f64>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CategoryShare {
    pub value: String,
    pub reference: f64,
    pub current: f64,
}

/// Why there is no distribution to show.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DistributionError {
    /// The model, feature or version does not exist (the request is
    /// wrong: a 400).
    #[error("{0}")]
    Unknown(String),
    /// They exist, but there is nothing to compare yet (no reference in
    /// effect, no records in the window: a 422).
    #[error("{0}")]
    NotYet(String),
}

/// Counts of `sorted_points` (value, weight) in `bins` equal-width bins
/// from `lo` to `hi`, numpy's rule: bin `i` is `[e_i, e_(i+1))`, the
/// last one closed. `lo == hi` puts everything in the middle bin, as
/// numpy widens such a range by 0.5 each side.
pub fn equal_width_counts(points: &[(f64, f64)], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let mut counts = vec![0.0; bins];
    let (lo, hi) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let width = (hi - lo) / bins as f64;
    for &(v, w) in points {
        if !(v >= lo && v <= hi) {
            continue;
        }
        let mut i = ((v - lo) / width) as usize;
        if i >= bins {
            i = bins - 1;
        }
        // Rounding of (v - lo) / width may land a value next to an edge
        // in the wrong bin; the edges as computed decide, as numpy's do.
        let edge = |k: usize| lo + width * k as f64;
        if i > 0 && v < edge(i) {
            i -= 1;
        } else if i + 1 < bins && v >= edge(i + 1) {
            i += 1;
        }
        counts[i] += w;
    }
    counts
}

/// The edges of [`equal_width_counts`]'s bins.
pub fn equal_width_edges(lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let (lo, hi) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let width = (hi - lo) / bins as f64;
    (0..=bins)
        .map(|k| if k == bins { hi } else { lo + width * k as f64 })
        .collect()
}

fn shares(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    if total <= 0.0 {
        return vec![0.0; counts.len()];
    }
    counts.iter().map(|c| c / total).collect()
}

/// The distribution of `feature` in `version`'s current window (the
/// version with the most records in it when `version` is `None`) and in
/// the reference in effect at `now_ms`.
pub(crate) fn distribution(
    state: &ModelState,
    feature: &str,
    version: Option<&str>,
    now_ms: i64,
) -> Result<Distribution, DistributionError> {
    let model = state.config.name.clone();
    let Some(id) = state.features.get(feature) else {
        return Err(DistributionError::Unknown(format!(
            "model {model:?} has no feature {feature:?}"
        )));
    };
    let id = id as usize;
    let Some(kind) = state.kinds.get(id).copied().flatten() else {
        return Err(DistributionError::NotYet(format!(
            "feature {feature:?} of model {model:?} has had no value yet"
        )));
    };
    let start = state.window_start_pane;
    fn window(w: &VersionState, start: i64, id: usize) -> Vec<&Column> {
        w.panes
            .range(start..)
            .filter_map(|(_, p)| p.features.get(id))
            .collect()
    }
    let (version_id, current) = match version {
        Some(v) => {
            let Some(vid) = state.versions.get(v) else {
                return Err(DistributionError::Unknown(format!(
                    "model {model:?} has no version {v:?}"
                )));
            };
            let w = state.windows.get(vid as usize);
            (
                vid as usize,
                w.map(|w| window(w, start, id)).unwrap_or_default(),
            )
        }
        None => {
            let best = state
                .windows
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let n: u64 = w
                        .panes
                        .range(state.window_start_pane..)
                        .map(|(_, p)| p.records)
                        .sum();
                    (i, n)
                })
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
            let Some((vid, _)) = best else {
                return Err(DistributionError::NotYet(format!(
                    "model {model:?} has no records in its window"
                )));
            };
            (vid, window(&state.windows[vid], start, id))
        }
    };
    let version = state.versions.name(version_id as u32).to_string();
    let Some(reference) = crate::evaluate::reference_view(state, now_ms) else {
        return Err(DistributionError::NotYet(format!(
            "model {model:?} has no reference in effect yet"
        )));
    };
    let reference: Vec<&Column> = reference.features(id).collect();
    let mut out = Distribution {
        model,
        feature: feature.to_string(),
        version,
        kind: match kind {
            Kind::Numeric => "numeric",
            Kind::Categorical => "categorical",
        },
        reference_count: 0.0,
        current_count: 0.0,
        sketched: false,
        histogram: None,
        psi_bins: None,
        categories: None,
    };
    match kind {
        Kind::Numeric => {
            let r = NumericSample::from_columns(reference.iter().copied());
            let c = NumericSample::from_columns(current.iter().copied());
            out.reference_count = r.n;
            out.current_count = c.n;
            out.sketched = r.exact.is_none() || c.exact.is_none();
            let range = match (r.min_max(), c.min_max()) {
                (Some((a, b)), Some((x, y))) => Some((a.min(x), b.max(y))),
                (Some(m), None) | (None, Some(m)) => Some(m),
                (None, None) => None,
            };
            if let Some((lo, hi)) = range {
                out.histogram = Some(Histogram {
                    edges: equal_width_edges(lo, hi, HISTOGRAM_BINS),
                    reference: shares(&equal_width_counts(
                        &r.weighted.points,
                        lo,
                        hi,
                        HISTOGRAM_BINS,
                    )),
                    current: shares(&equal_width_counts(
                        &c.weighted.points,
                        lo,
                        hi,
                        HISTOGRAM_BINS,
                    )),
                });
            }
            if r.n > 0.0 {
                let cuts = r.cuts(crate::evaluate::BINS);
                let current = if c.n > 0.0 {
                    c.shares(&cuts)
                } else {
                    vec![0.0; cuts.len() + 1]
                };
                out.psi_bins = Some(PsiBins {
                    reference: r.shares(&cuts),
                    current,
                    cuts,
                });
            }
        }
        Kind::Categorical => {
            let r = merge_counts(reference.iter().copied());
            let c = merge_counts(current.iter().copied());
            let (nr, nc): (u64, u64) = (r.values().sum(), c.values().sum());
            out.reference_count = nr as f64;
            out.current_count = nc as f64;
            let share = |n: u64, total: u64| {
                if total == 0 {
                    0.0
                } else {
                    n as f64 / total as f64
                }
            };
            let mut keys: Vec<u32> = r.keys().chain(c.keys()).copied().collect();
            keys.sort_unstable();
            keys.dedup();
            let names = state.categories.get(id);
            let mut rows: Vec<CategoryShare> = keys
                .iter()
                .map(|k| CategoryShare {
                    value: names.map(|n| n.name(*k).to_string()).unwrap_or_default(),
                    reference: share(r.get(k).copied().unwrap_or(0), nr),
                    current: share(c.get(k).copied().unwrap_or(0), nc),
                })
                .collect();
            rows.sort_by(|a, b| {
                b.reference
                    .max(b.current)
                    .total_cmp(&a.reference.max(a.current))
                    .then_with(|| a.value.cmp(&b.value))
            });
            if rows.len() > MAX_CATEGORIES_SHOWN {
                let rest = rows.split_off(MAX_CATEGORIES_SHOWN);
                rows.push(CategoryShare {
                    value: OTHER_CATEGORIES.to_string(),
                    reference: rest.iter().map(|x| x.reference).sum(),
                    current: rest.iter().map(|x| x.current).sum(),
                });
            }
            out.categories = Some(rows);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_width_bins_follow_numpy_edges() {
        // numpy.histogram([0, 1, 2, 3, 4], bins=4, range=(0, 4)) == [1, 1, 1, 2]
        let points: Vec<(f64, f64)> = [0.0, 1.0, 2.0, 3.0, 4.0]
            .iter()
            .map(|v| (*v, 1.0))
            .collect();
        assert_eq!(
            equal_width_counts(&points, 0.0, 4.0, 4),
            vec![1.0, 1.0, 1.0, 2.0]
        );
        // One value: numpy widens the range by 0.5 each side.
        assert_eq!(
            equal_width_counts(&[(3.0, 1.0)], 3.0, 3.0, 4),
            vec![0.0, 0.0, 1.0, 0.0]
        );
        assert_eq!(equal_width_edges(3.0, 3.0, 2), vec![2.5, 3.0, 3.5]);
    }
}
