//! Accumulators of records: a pane of a version's window, or a reference
//! set. A pane keeps numeric feature values raw until its version's
//! window holds more than [`crate::EXACT_RECORDS`] records, then as an
//! equi-depth summary ([`crate::sketch`]); categories are always counted
//! exactly, and joined actuals are kept as mergeable sums.

use crate::sketch::{self, Weighted};
use std::collections::HashMap;

/// Whether a feature (or the prediction) holds numbers or categories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Numeric,
    Categorical,
}

/// One feature's values in one pane.
#[derive(Clone, Debug, Default)]
pub struct Column {
    /// Records that had a value.
    pub present: u64,
    /// Numeric values not yet summarised.
    pub raw: Vec<f64>,
    /// Summarised numeric values.
    pub summary: Weighted,
    /// Σ over this column's summarisations of the largest weight one point
    /// took on (the count by which its cumulative shares may be off).
    pub error_weight: f64,
    /// Category id to count.
    pub counts: HashMap<u32, u64>,
    /// Mean |SHAP| parts: sum and count.
    pub shap_sum: f64,
    pub shap_n: u64,
}

impl Column {
    /// Folds the raw values into the summary: with `k` points the shares
    /// move by at most the heaviest point's weight.
    pub fn summarise(&mut self, k: usize) {
        if self.raw.is_empty() {
            return;
        }
        let mut raw = std::mem::take(&mut self.raw);
        raw.sort_by(f64::total_cmp);
        let mut points = Weighted::exact(&raw).points;
        points.extend(self.summary.points.iter().copied());
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let compressed = compress(&points, k);
        self.error_weight += compressed.points.iter().map(|p| p.1).fold(0.0, f64::max);
        self.summary = compressed;
    }
}

/// Re-summarises weighted points into at most `k` points: the point where
/// the cumulative weight first reaches j·W/k, j = 1..k, carrying the
/// weight since the previous one.
pub fn compress(points: &[(f64, f64)], k: usize) -> Weighted {
    if points.len() <= k {
        return Weighted {
            points: points.to_vec(),
        };
    }
    let total: f64 = points.iter().map(|p| p.1).sum();
    let mut out = Vec::with_capacity(k);
    let mut cumulative = 0.0;
    let mut carried = 0.0;
    let mut j = 1usize;
    for &(v, w) in points {
        cumulative += w;
        carried += w;
        if cumulative >= j as f64 * total / k as f64 {
            out.push((v, carried));
            carried = 0.0;
            while j <= k && cumulative >= j as f64 * total / k as f64 {
                j += 1;
            }
        }
    }
    if carried > 0.0
        && let Some(last) = points.last()
    {
        out.push((last.0, carried));
    }
    Weighted { points: out }
}

/// Mergeable moments (count, mean, M2) by Welford's and Chan's formulas.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    pub n: f64,
    pub mean: f64,
    pub m2: f64,
}

impl Moments {
    pub fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    pub fn merge(&mut self, o: &Moments) {
        if o.n == 0.0 {
            return;
        }
        if self.n == 0.0 {
            *self = *o;
            return;
        }
        let n = self.n + o.n;
        let d = o.mean - self.mean;
        self.mean += d * o.n / n;
        self.m2 += o.m2 + d * d * self.n * o.n / n;
        self.n = n;
    }

    /// Sample variance (ddof 1).
    pub fn var(&self) -> f64 {
        if self.n > 1.0 {
            self.m2 / (self.n - 1.0)
        } else {
            f64::NAN
        }
    }
}

/// One joined record's class scores, as (class id, score) pairs.
pub type Scores = Box<[(u32, f64)]>;

/// Joined actuals: sums that merge across panes.
#[derive(Clone, Debug, Default)]
pub struct Perf {
    pub n: u64,
    pub correct: u64,
    /// (actual class, predicted class) to count.
    pub confusion: HashMap<(u32, u32), u64>,
    /// Squared and absolute errors, and absolute percentage errors.
    pub squared: Moments,
    pub absolute: Moments,
    pub ape_sum: f64,
    /// Seconds from prediction to actual, summed.
    pub delay_sum: f64,
    /// Per joined record with scores: (class id, score) pairs and the
    /// actual class; kept while the pane is raw (for ROC AUC).
    pub scored: Vec<(Scores, u32)>,
    /// Whether scored records were dropped by summarising.
    pub scored_dropped: bool,
}

impl Perf {
    pub fn merge(&mut self, o: &Perf) {
        self.n += o.n;
        self.correct += o.correct;
        for (k, v) in &o.confusion {
            *self.confusion.entry(*k).or_default() += v;
        }
        self.squared.merge(&o.squared);
        self.absolute.merge(&o.absolute);
        self.ape_sum += o.ape_sum;
        self.delay_sum += o.delay_sum;
        self.scored.extend(o.scored.iter().cloned());
        self.scored_dropped |= o.scored_dropped;
    }
}

/// Records accumulated over a span of time.
#[derive(Clone, Debug, Default)]
pub struct Pane {
    pub records: u64,
    /// By feature id.
    pub features: Vec<Column>,
    pub prediction: Column,
    pub perf: Perf,
    /// Whether numeric values were summarised (at least once).
    pub summarised: bool,
    /// Records added since the last summarising: their numeric values are
    /// raw.
    pub raw_count: u64,
    /// Records with SHAP values.
    pub shap_records: u64,
}

impl Pane {
    pub fn column(&mut self, feature: usize) -> &mut Column {
        if self.features.len() <= feature {
            self.features.resize_with(feature + 1, Column::default);
        }
        &mut self.features[feature]
    }

    /// Records whose numeric values are held raw.
    pub fn raw_records(&self) -> u64 {
        self.raw_count
    }

    /// Summarises every numeric column (and the prediction's).
    pub fn summarise(&mut self) {
        for c in &mut self.features {
            c.summarise(sketch::POINTS);
        }
        self.prediction.summarise(sketch::POINTS);
        if !self.perf.scored.is_empty() {
            self.perf.scored = Vec::new();
            self.perf.scored_dropped = true;
        }
        self.summarised = true;
        self.raw_count = 0;
    }
}

/// A numeric feature over merged panes.
#[derive(Clone, Debug, Default)]
pub struct NumericSample {
    /// Every value, sorted, when no pane was summarised.
    pub exact: Option<Vec<f64>>,
    /// All values as weighted points (exact points have weight 1).
    pub weighted: Weighted,
    /// Values present.
    pub n: f64,
    /// Σ error weights of the summaries (see [`Column::error_weight`]).
    pub error_weight: f64,
}

impl NumericSample {
    pub fn from_columns<'a>(columns: impl Iterator<Item = &'a Column>) -> NumericSample {
        let mut raw: Vec<f64> = Vec::new();
        let mut parts: Vec<&Weighted> = Vec::new();
        let mut error_weight = 0.0;
        let mut summarised = false;
        for c in columns {
            raw.extend_from_slice(&c.raw);
            if !c.summary.points.is_empty() {
                parts.push(&c.summary);
                summarised = true;
            }
            error_weight += c.error_weight;
        }
        raw.sort_by(f64::total_cmp);
        let exact_part = Weighted::exact(&raw);
        let weighted = if summarised {
            Weighted::merge(parts.into_iter().chain(std::iter::once(&exact_part)))
        } else {
            exact_part
        };
        let n = weighted.total();
        NumericSample {
            exact: if summarised { None } else { Some(raw) },
            weighted,
            n,
            error_weight,
        }
    }

    /// The bound on how far the sketch's cumulative shares are from the
    /// true ones (0 when exact).
    pub fn share_error(&self) -> f64 {
        if self.n > 0.0 {
            self.error_weight / self.n
        } else {
            0.0
        }
    }

    pub fn min_max(&self) -> Option<(f64, f64)> {
        let first = self.weighted.points.first()?.0;
        let last = self.weighted.points.last()?.0;
        Some((first, last))
    }

    /// Population standard deviation (weighted when sketched).
    pub fn std(&self) -> f64 {
        match &self.exact {
            Some(v) => crate::stats::std_population(v),
            None => {
                let w = self.n;
                let mean = self.weighted.points.iter().map(|(v, c)| v * c).sum::<f64>() / w;
                (self
                    .weighted
                    .points
                    .iter()
                    .map(|(v, c)| c * (v - mean) * (v - mean))
                    .sum::<f64>()
                    / w)
                    .sqrt()
            }
        }
    }

    /// Equal-frequency cut points (exact values: numpy's quantiles; a
    /// sketch: the weighted points' quantiles).
    pub fn cuts(&self, bins: usize) -> Vec<f64> {
        match &self.exact {
            Some(v) => crate::stats::equal_frequency_cuts(v, bins),
            None => {
                let mut cuts = Vec::new();
                let total = self.n;
                let mut cumulative = 0.0;
                let mut j = 1;
                for &(v, w) in &self.weighted.points {
                    cumulative += w;
                    while j < bins && cumulative >= j as f64 * total / bins as f64 {
                        cuts.push(v);
                        j += 1;
                    }
                }
                cuts.dedup();
                cuts
            }
        }
    }

    pub fn shares(&self, cuts: &[f64]) -> Vec<f64> {
        match &self.exact {
            Some(v) => crate::stats::bin_shares(cuts, v),
            None => self.weighted.bin_shares(cuts),
        }
    }

    /// Distinct values (of the points, when sketched).
    pub fn distinct(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.weighted.points.iter().map(|p| p.0).collect();
        v.dedup();
        v
    }

    /// Counts per distinct value.
    pub fn value_counts(&self) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = Vec::new();
        for &(v, w) in &self.weighted.points {
            match out.last_mut() {
                Some(last) if last.0 == v => last.1 += w,
                _ => out.push((v, w)),
            }
        }
        out
    }
}

/// Category counts over merged panes.
pub fn merge_counts<'a>(columns: impl Iterator<Item = &'a Column>) -> HashMap<u32, u64> {
    let mut out: HashMap<u32, u64> = HashMap::new();
    for c in columns {
        for (k, v) in &c.counts {
            *out.entry(*k).or_default() += v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_merge_like_one_pass() {
        let xs = [1.0, 2.0, 4.0, 8.0, 16.0, 3.0];
        let mut all = Moments::default();
        xs.iter().for_each(|x| all.push(*x));
        let (mut a, mut b) = (Moments::default(), Moments::default());
        xs[..2].iter().for_each(|x| a.push(*x));
        xs[2..].iter().for_each(|x| b.push(*x));
        a.merge(&b);
        assert!((a.mean - all.mean).abs() < 1e-12);
        assert!((a.var() - all.var()).abs() < 1e-12);
    }

    #[test]
    fn compression_keeps_the_total_weight() {
        let points: Vec<(f64, f64)> = (0..5000)
            .map(|i| (i as f64, 1.0 + (i % 3) as f64))
            .collect();
        let total: f64 = points.iter().map(|p| p.1).sum();
        let c = compress(&points, 100);
        assert!(c.points.len() <= 101);
        assert!((c.total() - total).abs() < 1e-9);
    }
}
