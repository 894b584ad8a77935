//! The equi-depth summary that stands for a feature's values once a
//! version's window holds more than [`crate::EXACT_RECORDS`] records
//! (`docs/drift.md`, "Exact up to 100,000 records, a sketch beyond").
//!
//! A block of n sorted values is kept as k points: the values at ranks
//! ⌈j·n/k⌉ (1-based), j = 1..k, each weighted by the number of values it
//! stands for (at most ⌈n/k⌉). Every summarised value lies at or below its
//! point and above the previous one, so the summary's cumulative share is
//! at most ⌈n/k⌉/N below the true one anywhere. Summaries of several
//! blocks merge by taking all their weighted points: the error adds up
//! to at most (N/k + blocks)/N, that is 1/k + blocks/N.

/// Points per summarised block. With 1,000 the cumulative shares of a
/// sketched window are off by at most 0.001 plus one record per block.
pub const POINTS: usize = 1_000;

/// A weighted sample: `(value, weight)` pairs sorted by value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weighted {
    pub points: Vec<(f64, f64)>,
}

impl Weighted {
    /// Every value with weight 1.
    pub fn exact(sorted: &[f64]) -> Weighted {
        Weighted {
            points: sorted.iter().map(|v| (*v, 1.0)).collect(),
        }
    }

    /// The k-point summary of sorted `values` (all of them when there are
    /// at most k).
    pub fn summarise(sorted: &[f64], k: usize) -> Weighted {
        let n = sorted.len();
        if n <= k {
            return Weighted::exact(sorted);
        }
        let mut points = Vec::with_capacity(k);
        let mut previous = 0usize;
        for j in 1..=k {
            let rank = (j * n).div_ceil(k);
            if rank > previous {
                points.push((sorted[rank - 1], (rank - previous) as f64));
                previous = rank;
            }
        }
        Weighted { points }
    }

    /// All points of several samples together.
    pub fn merge<'a>(parts: impl Iterator<Item = &'a Weighted>) -> Weighted {
        let mut points: Vec<(f64, f64)> = parts.flat_map(|w| w.points.iter().copied()).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        Weighted { points }
    }

    pub fn total(&self) -> f64 {
        self.points.iter().map(|p| p.1).sum()
    }

    /// Per-bin shares over `cuts` (see [`crate::stats::bin_of`]).
    pub fn bin_shares(&self, cuts: &[f64]) -> Vec<f64> {
        let mut counts = vec![0.0; cuts.len() + 1];
        for &(v, w) in &self.points {
            counts[crate::stats::bin_of(cuts, v)] += w;
        }
        let total = self.total().max(f64::MIN_POSITIVE);
        counts.iter().map(|c| c / total).collect()
    }
}

/// The KS statistic between two weighted samples.
pub fn ks(a: &Weighted, b: &Weighted) -> f64 {
    walk(a, b, |gap, _| gap, f64::max)
}

/// W1 between two weighted samples.
pub fn wasserstein(a: &Weighted, b: &Weighted) -> f64 {
    walk(a, b, |gap, width| gap * width, |acc, x| acc + x)
}

/// Walks both cumulative distributions over the union of their points,
/// folding `term(|F_a − F_b|, width to the next point)`.
fn walk(
    a: &Weighted,
    b: &Weighted,
    term: impl Fn(f64, f64) -> f64,
    fold: impl Fn(f64, f64) -> f64,
) -> f64 {
    let (ta, tb) = (a.total(), b.total());
    if ta <= 0.0 || tb <= 0.0 {
        return f64::NAN;
    }
    let (pa, pb) = (&a.points, &b.points);
    let (mut i, mut j) = (0usize, 0usize);
    let (mut ca, mut cb) = (0.0, 0.0);
    let mut acc = 0.0;
    while i < pa.len() || j < pb.len() {
        let x = match (pa.get(i), pb.get(j)) {
            (Some(p), Some(q)) => p.0.min(q.0),
            (Some(p), None) => p.0,
            (None, Some(q)) => q.0,
            (None, None) => break,
        };
        while i < pa.len() && pa[i].0 <= x {
            ca += pa[i].1;
            i += 1;
        }
        while j < pb.len() && pb[j].0 <= x {
            cb += pb[j].1;
            j += 1;
        }
        let next = match (pa.get(i), pb.get(j)) {
            (Some(p), Some(q)) => p.0.min(q.0),
            (Some(p), None) => p.0,
            (None, Some(q)) => q.0,
            (None, None) => x,
        };
        acc = fold(acc, term((ca / ta - cb / tb).abs(), next - x));
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_weighted_matches_plain_statistics() {
        let a: Vec<f64> = (0..50).map(|i| (i * 7 % 50) as f64).collect();
        let mut a = a;
        a.sort_by(f64::total_cmp);
        let b: Vec<f64> = (0..40).map(|i| i as f64 * 1.3 + 2.0).collect();
        let (wa, wb) = (Weighted::exact(&a), Weighted::exact(&b));
        assert!((ks(&wa, &wb) - crate::stats::ks_statistic(&a, &b)).abs() < 1e-15);
        assert!((wasserstein(&wa, &wb) - crate::stats::wasserstein(&a, &b)).abs() < 1e-9);
    }

    #[test]
    fn summary_weights_add_up() {
        let v: Vec<f64> = (0..10_007).map(f64::from).collect();
        let s = Weighted::summarise(&v, POINTS);
        assert_eq!(s.total(), 10_007.0);
        assert!(s.points.len() <= POINTS);
    }
}
