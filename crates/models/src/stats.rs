//! The sample statistics of `docs/drift.md`: equal-frequency bins, the
//! two-sample Kolmogorov–Smirnov test, Wasserstein distance, the chi-square
//! and z tests on categories, Welch's t-test. Inputs are plain slices;
//! nothing here knows of records or models.
//!
//! Each function states the reference it agrees with; `tests/reference.rs`
//! checks them against scipy and Evidently.

use crate::kolmogorov;
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

/// numpy's default (`linear`) quantile of sorted `values` at `q` in
/// [0, 1], with numpy's two-sided interpolation (from below when the
/// fraction is under one half, from above otherwise), so cut points equal
/// `np.quantile`'s bit for bit.
pub fn quantile_sorted(values: &[f64], q: f64) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let position = (n - 1) as f64 * q;
    let below = (position.floor() as usize).min(n - 1);
    let above = (below + 1).min(n - 1);
    let t = position - below as f64;
    let (a, b) = (values[below], values[above]);
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// The cut points of `bins` equal-frequency bins of sorted `reference`:
/// its 1/bins, 2/bins, ... quantiles, duplicates removed.
pub fn equal_frequency_cuts(reference_sorted: &[f64], bins: usize) -> Vec<f64> {
    let mut cuts: Vec<f64> = (1..bins)
        .map(|j| quantile_sorted(reference_sorted, j as f64 / bins as f64))
        .collect();
    cuts.dedup();
    cuts
}

/// The bin of `value`: how many cuts are at or below it (a value equal to
/// a cut falls in the bin above it; the outer bins are open).
pub fn bin_of(cuts: &[f64], value: f64) -> usize {
    cuts.partition_point(|c| *c <= value)
}

/// Per-bin shares of `values` over the bins `cuts` make.
pub fn bin_shares(cuts: &[f64], values: &[f64]) -> Vec<f64> {
    let mut counts = vec![0u64; cuts.len() + 1];
    for &v in values {
        counts[bin_of(cuts, v)] += 1;
    }
    let n = values.len().max(1) as f64;
    counts.iter().map(|c| *c as f64 / n).collect()
}

/// The two-sample KS statistic of sorted samples: the largest gap between
/// their empirical distribution functions (`ks_2samp(...).statistic`).
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let (mut i, mut j) = (0usize, 0usize);
    let mut d: f64 = 0.0;
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// The largest sample size for which [`ks_pvalue`] counts lattice paths,
/// as `ks_2samp`'s default method does (above it scipy and osprey switch
/// to the one-sample distribution at the effective size).
pub const KS_EXACT_MAX: usize = 10_000;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The two-sided p-value of the two-sample KS test with statistic `d` for
/// samples of sizes `n1` and `n2`, as `scipy.stats.ks_2samp` computes it
/// with its default method: exact (lattice paths) when both sizes are at
/// most [`KS_EXACT_MAX`], else the one-sample two-sided Kolmogorov
/// distribution at the effective size round(n1·n2/(n1 + n2))
/// (`scipy.stats.kstwo.sf`), computed as `crate::kolmogorov` describes.
pub fn ks_pvalue(d: f64, n1: usize, n2: usize) -> f64 {
    if n1 == 0 || n2 == 0 || d.is_nan() {
        return f64::NAN;
    }
    if n1.max(n2) <= KS_EXACT_MAX {
        let (a, b) = (n1 as u64, n2 as u64);
        let g = gcd(a, b);
        let lcm = (a / g) * b;
        // The statistic is a multiple of 1/lcm; h is that multiple.
        let h = (d * lcm as f64).round() as u64;
        if h == 0 {
            return 1.0;
        }
        let p = if a == b {
            equal_sizes_outside(a, h)
        } else {
            outside_probability(a, b, g, h)
        };
        if (0.0..=1.0).contains(&p) {
            return p;
        }
    }
    // Past the lattice paths scipy takes the one-sample distribution at
    // the effective size, rounded half to even as numpy rounds.
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let effective = (m * n / (m + n)).round_ties_even();
    kolmogorov::survival(effective as u64, d)
}

/// For equal sizes n: the share of the C(2n, n) monotone lattice paths
/// that touch |x − y| ≥ h, by the alternating reflection series
/// 2·Σ_k (−1)^(k+1) C(2n, n − k·h) / C(2n, n), evaluated from the
/// innermost term outwards so that no large binomial is formed.
fn equal_sizes_outside(n: u64, h: u64) -> f64 {
    let mut total = 0.0;
    let mut k = n / h;
    loop {
        // C(2n, n − k·h) / C(2n, n) as a product of h·k ... ratios: here
        // the ratio of consecutive reflection terms, h factors each.
        let mut ratio = 1.0;
        for j in 0..h {
            let num = n as f64 - (k * h) as f64 - j as f64;
            let den = n as f64 + (k * h) as f64 + j as f64 + 1.0;
            ratio = num * ratio / den;
        }
        total = ratio * (1.0 - total);
        if k == 0 {
            break;
        }
        k -= 1;
    }
    2.0 * total
}

/// For sizes m ≥ n (swapped if needed) with gcd g: the probability that a
/// random monotone path from (0, 0) to (m, n) leaves the band
/// |x/m − y/n| < h/lcm(m, n). The band is swept column by column keeping,
/// for each cell inside it, the probability of having left it on the way
/// there (Viehmann's recursion for 1 − p, which stays well scaled), so
/// only one column of the band is held.
fn outside_probability(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = (m / g, n / g);
    let (m_i, n_i, mg_i, ng_i, h_i) = (m as i64, n as i64, mg as i64, ng as i64, h as i64);
    let ceil_div = |a: i64, b: i64| -> i64 { (a + b - 1).div_euclid(b) };
    let mut lo: i64 = 0;
    let mut hi: i64 = ceil_div(h_i, mg_i).min(n_i + 1);
    let mut len = (hi - lo) as usize;
    let capacity = ((2 * hi + 2).min(n_i + 1)).max(1) as usize;
    let mut column = vec![1.0f64; capacity.max(len + 1)];
    for v in column.iter_mut().take(len) {
        *v = 0.0;
    }
    for i in 1..=m_i {
        let (last_lo, last_len) = (lo, len);
        lo = ((ng_i * i - h_i).div_euclid(mg_i) + 1).max(0).min(n_i);
        hi = ceil_div(ng_i * i + h_i, mg_i).min(n_i + 1);
        if hi <= lo {
            return 1.0;
        }
        let width = (hi - lo) as usize;
        if column.len() < width + last_len + 1 {
            column.resize(width + last_len + 1, 1.0);
        }
        let mut value = if lo == 0 { 0.0 } else { 1.0 };
        let fi = i as f64;
        for k in 0..width {
            let j = k as i64 + lo;
            let from_left = column[(k as i64 + lo - last_lo) as usize];
            value = (from_left * fi + value * j as f64) / (fi + j as f64);
            column[k] = value;
        }
        len = width;
        if last_len > len {
            for v in column.iter_mut().skip(len).take(last_len - len) {
                *v = 1.0;
            }
        }
    }
    column[len - 1]
}

/// W1 between the empirical distributions of two sorted samples
/// (`scipy.stats.wasserstein_distance(a, b)`).
pub fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    let mut x = a[0].min(b[0]);
    while i < a.len() || j < b.len() {
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        let next = match (a.get(i), b.get(j)) {
            (Some(p), Some(q)) => p.min(*q),
            (Some(p), None) => *p,
            (None, Some(q)) => *q,
            (None, None) => break,
        };
        total += (i as f64 / n - j as f64 / m).abs() * (next - x);
        x = next;
    }
    total
}

/// Population standard deviation (numpy's `std`, ddof 0), two-pass.
pub fn std_population(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
}

/// Evidently's normed Wasserstein: W1 over the reference's population
/// standard deviation, at least 0.001.
pub fn wasserstein_normed(current_sorted: &[f64], reference_sorted: &[f64]) -> f64 {
    let norm = std_population(reference_sorted).max(0.001);
    wasserstein(current_sorted, reference_sorted) / norm
}

/// The chi-square p-value of current category counts against reference
/// counts scaled to the current total (Evidently's `chisquare` test,
/// `scipy.stats.chisquare(f_obs, f_exp)`). Pairs are (current, reference)
/// counts per category.
pub fn chi2_pvalue(counts: &[(u64, u64)]) -> f64 {
    let current: u64 = counts.iter().map(|c| c.0).sum();
    let reference: u64 = counts.iter().map(|c| c.1).sum();
    if counts.len() < 2 || current == 0 || reference == 0 {
        return f64::NAN;
    }
    let scale = current as f64 / reference as f64;
    let mut statistic = 0.0;
    for &(obs, refc) in counts {
        let expected = refc as f64 * scale;
        let diff = obs as f64 - expected;
        statistic += diff * diff / expected;
    }
    if statistic.is_infinite() {
        return 0.0;
    }
    match ChiSquared::new((counts.len() - 1) as f64) {
        Ok(dist) => dist.sf(statistic),
        Err(_) => f64::NAN,
    }
}

/// Two-sided p-value of a standard normal statistic: 2·P(Z > |z|).
pub fn normal_two_sided(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    2.0 * Normal::standard().sf(z.abs())
}

/// The pooled two-proportion z statistic for `x1` successes in `n1`
/// against `x2` in `n2` (statsmodels' `proportions_ztest`, Evidently's
/// `z` test): (p1 − p2)/sqrt(P(1 − P)(1/n1 + 1/n2)).
pub fn two_proportion_z(x1: f64, n1: f64, x2: f64, n2: f64) -> f64 {
    let (p1, p2) = (x1 / n1, x2 / n2);
    let pooled = (x1 + x2) / (n1 + n2);
    (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt()
}

/// Evidently's `z` test for a feature with two categories: the share of
/// values that are not the first category (in sorted order), reference
/// against current; 1 when both hold the same single value. `first` says
/// per value whether it is the first category.
pub fn z_pvalue(reference_first: u64, reference_n: u64, current_first: u64, current_n: u64) -> f64 {
    if reference_n == 0 || current_n == 0 {
        return f64::NAN;
    }
    let (x1, x2) = (
        (reference_n - reference_first) as f64,
        (current_n - current_first) as f64,
    );
    let z = two_proportion_z(x1, reference_n as f64, x2, current_n as f64);
    if z.is_nan() {
        // Both samples hold one and the same value.
        return 1.0;
    }
    normal_two_sided(z)
}

/// Mean, sample variance (ddof 1) and count.
pub fn mean_var(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, f64::NAN, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
    } else {
        f64::NAN
    };
    (mean, var, n)
}

/// Welch's t-test, two-sided (`scipy.stats.ttest_ind(a, b,
/// equal_var=False)`): the statistic and the p-value.
pub fn welch_t(a: &[f64], b: &[f64]) -> (f64, f64) {
    welch_from_moments(mean_var(a), mean_var(b))
}

/// [`welch_t`] from each sample's (mean, sample variance, count).
pub fn welch_from_moments(a: (f64, f64, f64), b: (f64, f64, f64)) -> (f64, f64) {
    let (ma, va, na) = a;
    let (mb, vb, nb) = b;
    let (sa, sb) = (va / na, vb / nb);
    let t = (ma - mb) / (sa + sb).sqrt();
    let df = (sa + sb) * (sa + sb) / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0));
    if t.is_nan() || df.is_nan() {
        return (t, f64::NAN);
    }
    let p = match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) => 2.0 * dist.sf(t.abs()),
        Err(_) => f64::NAN,
    };
    (t, p)
}

/// The drift method Evidently picks by default (its
/// `_get_default_stattest`), in osprey's method names: `reference_len` is
/// the number of reference values, `unique` the number of distinct values
/// in reference and current together.
pub fn default_method(numeric: bool, reference_len: usize, unique: usize) -> &'static str {
    let by_categories = if unique > 2 {
        "chi2_pvalue"
    } else {
        "z_pvalue"
    };
    match (numeric, reference_len <= 1000, unique > 5) {
        (true, true, true) => "ks_pvalue",
        (true, false, true) => "wasserstein",
        (_, true, _) => by_categories,
        (_, false, _) => "js",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.5), 2.5);
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 1.0), 4.0);
        assert_eq!(equal_frequency_cuts(&[1.0, 1.0, 1.0], 10), vec![1.0]);
    }

    #[test]
    fn values_on_a_cut_go_above() {
        let cuts = [1.0, 2.0];
        assert_eq!(bin_of(&cuts, 0.5), 0);
        assert_eq!(bin_of(&cuts, 1.0), 1);
        assert_eq!(bin_of(&cuts, 2.5), 2);
    }

    #[test]
    fn ks_and_wasserstein_of_shifted_samples() {
        let a = [0.0, 1.0, 2.0, 3.0];
        let b = [10.0, 11.0, 12.0, 13.0];
        assert_eq!(ks_statistic(&a, &b), 1.0);
        assert!((wasserstein(&a, &b) - 10.0).abs() < 1e-12);
        assert_eq!(ks_statistic(&a, &a), 0.0);
        assert_eq!(ks_pvalue(0.0, 4, 4), 1.0);
    }
}
