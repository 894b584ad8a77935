//! The two-sided one-sample Kolmogorov–Smirnov distribution for a finite
//! sample size: P(D_n ≥ x), where D_n = sup |F_n − F| for n values drawn
//! from a continuous F. [`crate::stats::ks_pvalue`] uses it past the
//! two-sample lattice-path limit, with n the effective size
//! round(n1·n2/(n1 + n2)), which is what `scipy.stats.ks_2samp` does there
//! (`scipy.stats.kstwo.sf`).
//!
//! No single formula is both exact and fast over all (n, x). Simard and
//! L'Ecuyer (2011, J. Stat. Software 39(11)) chose a method per region of
//! (n, n·x²), and scipy's `_kolmogn` follows their choice; osprey makes
//! the same choice so that its p-values agree with scipy's to rounding,
//! including where scipy's value is itself an approximation (Pelz–Good):
//!
//! - x ≤ 1/n and x ≥ 1 − 1/n: closed forms (Ruben and Gambino).
//! - x ≥ 1/2, and small p-values (n·x² ≥ 2.2 for n > 140, n·x² > 4 for
//!   n ≤ 140): twice the one-sided Smirnov tail, which is exact for
//!   x ≥ 1/2 (both sides cannot be crossed) and otherwise leaves out only
//!   the probability of crossing both sides, far below rounding there.
//!   The one-sided tail is Birnbaum and Tingey's finite sum.
//! - n ≤ 140 otherwise: Durbin's matrix (n·x² ≤ 0.754693) or Pomeranz's
//!   recursion, both exact.
//! - n > 140 otherwise: Durbin's matrix when n ≤ 100,000 and
//!   n·x^1.5 ≤ 1.4, else the Pelz–Good asymptotic expansion to n^(−3/2).
//!
//! Every branch returns the survival function directly or as 1 − CDF
//! where the CDF is small, so no branch loses a small p-value to
//! cancellation.

use std::f64::consts::{LN_2, PI};

/// P(D_n ≥ x) for the two-sided one-sample statistic D_n (scipy's
/// `kstwo.sf(x, n)`). NaN for n = 0 or a NaN x.
pub fn survival(n: u64, x: f64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        // Ruben and Gambino: for 1/(2n) ≤ x ≤ 1/n, P(D_n ≤ x) =
        // n!/n^n · (2t − 1)^n. Past n = 140 the product would underflow
        // term by term; Stirling's series gives its logarithm.
        let base = 2.0 * t - 1.0;
        let cdf = if n <= 140 {
            (1..=n).map(|i| i as f64 * (1.0 / nf) * base).product()
        } else {
            (ln_factorial_over_power(nf) + nf * base.ln()).exp()
        };
        return clip(1.0 - cdf);
    }
    if t >= nf - 1.0 {
        // Ruben and Gambino: within 1/n of 1, only the all-below or
        // all-above samples reach x.
        return clip(2.0 * (1.0 - x).powf(nf));
    }
    if x >= 0.5 {
        return clip(2.0 * smirnov_survival(n, x));
    }
    let nxx = t * x;
    if n <= 140 {
        if nxx <= 0.754_693 {
            return clip(1.0 - durbin_cdf(n, x));
        }
        if nxx <= 4.0 {
            return clip(1.0 - pomeranz_cdf(n, x));
        }
        return clip(2.0 * smirnov_survival(n, x));
    }
    if nxx >= 370.0 {
        // 2·exp(−2·370) is below the smallest double.
        return 0.0;
    }
    if nxx >= 2.2 {
        return clip(2.0 * smirnov_survival(n, x));
    }
    let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        durbin_cdf(n, x)
    } else {
        pelz_good_cdf(n, x)
    };
    clip(1.0 - cdf)
}

fn clip(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

/// ln(n!/n^n) by Stirling's series, with n·ln(n) taken out before
/// anything is added so nothing cancels: ln(2πn)/2 − n + Σ_j
/// B_2j/(2j(2j − 1)·n^(2j−1)) for j = 1..8.
fn ln_factorial_over_power(n: f64) -> f64 {
    // B_2j/(2j(2j − 1)) for j = 8 down to 1, the Horner order.
    const STIRLING: [f64; 8] = [
        -3617.0 / 122_400.0,
        1.0 / 156.0,
        -691.0 / 360_360.0,
        1.0 / 1188.0,
        -1.0 / 1680.0,
        1.0 / 1260.0,
        -1.0 / 360.0,
        1.0 / 12.0,
    ];
    let inv = 1.0 / n;
    let inv_squared = inv / n;
    let series = STIRLING.iter().fold(0.0, |acc, c| acc * inv_squared + c);
    n.ln() / 2.0 - n + (2.0 * PI).ln() / 2.0 + inv * series
}

/// Below this, `exp` returns 0: ln of the smallest subnormal double
/// (scipy's cephes `MINLOG`; between it and ln 2^−1022 the tail is
/// subnormal and kept).
const MIN_LOG: f64 = -745.133_219_101_941_2;

/// The one-sided tail P(D⁺_n ≥ x) for 0 < x < 1, by Birnbaum and
/// Tingey's sum
///
///   x · Σ_(v=0)^(⌊n(1−x)⌋) C(n, v) · (x + v/n)^(v−1) · (1 − x − v/n)^(n−v),
///
/// whose terms are all positive, so the sum loses nothing to
/// cancellation. Each term is formed as a logarithm: its three factors
/// reach 2^(±n) long before their product leaves the double range.
/// Term v is the probability that the empirical distribution first
/// reaches x + v/n at its v-th order statistic; the terms rise to one peak
/// and fall, so once the rest of them cannot reach the sum's last bit the
/// sum stops (scipy's cephes `smirnov` stops by the same rule).
fn smirnov_survival(n: u64, x: f64) -> f64 {
    if n == 1 {
        return 1.0 - x;
    }
    let nf = n as f64;
    // n·x exactly, as hi + lo: the factors' bases are (v + n·x)/n and
    // (n − v − n·x)/n, and the second is small for the last terms.
    let nx_hi = nf * x;
    let nx_lo = nf.mul_add(x, -nx_hi);
    let mut whole = nx_hi.floor();
    let mut fraction = (nx_hi - whole) + nx_lo;
    if fraction < 0.0 {
        whole -= 1.0;
        fraction += 1.0;
    }
    if fraction >= 1.0 {
        whole += 1.0;
        fraction -= 1.0;
    }
    let floor_nx = whole as u64;
    if floor_nx == 0 || (floor_nx == 1 && fraction == 0.0) {
        // x ≤ 1/n: the CDF is x·(1 + x)^(n−1).
        return clip(1.0 - x * ((nf - 1.0) * x.ln_1p()).exp());
    }
    if -2.0 * nf * x * x < MIN_LOG {
        return 0.0;
    }
    if floor_nx >= n - 1 {
        return ((1.0 - x).ln() * nf).exp();
    }
    if n > 1_000_000 {
        // Past a million terms cephes switches to the asymptotic
        // exp(−(6nx + 1)²/(18n)); so does osprey, to agree with scipy.
        let log_p = -(6.0 * nf * x + 1.0).powi(2) / 18.0 / nf;
        return if log_p < -LN_2 {
            log_p.exp()
        } else {
            1.0 - (-log_p.exp_m1())
        };
    }
    // ln of (part/n) where part + rest = n, from whichever of the two is
    // smaller, so that a share near 1 keeps its precision (ln_1p).
    let ln_share = |part: f64, rest: f64| -> f64 {
        if part <= rest {
            (part / nf).ln()
        } else {
            (-rest / nf).ln_1p()
        }
    };
    let terms = n - floor_nx; // v = 0 ..= n − ⌊nx⌋ − 1
    // C(n, v) as binomial · 2^binomial_exponent, rescaled by powers of
    // two (exactly) so it neither overflows nor, as it falls past n/2,
    // underflows; one rounding per step.
    let mut binomial = 1.0f64;
    let mut binomial_exponent: i64 = 0;
    const SCALE_EXPONENT: i32 = 512;
    let scale_down = 2f64.powi(-SCALE_EXPONENT);
    // Σ exp(ln_term) held as exp(top) · sum, top the largest so far.
    let mut top = f64::NEG_INFINITY;
    let mut sum = 0.0f64;
    for v in 0..terms {
        let vf = v as f64;
        let part = (vf + nx_hi) + nx_lo;
        let rest = ((nf - vf) - nx_hi) - nx_lo;
        if rest > 0.0 {
            let ln_binomial = binomial.ln() + binomial_exponent as f64 * LN_2;
            let ln_term =
                ln_binomial + (vf - 1.0) * ln_share(part, rest) + (nf - vf) * ln_share(rest, part);
            if ln_term > top {
                sum = sum * (top - ln_term).exp() + 1.0;
                top = ln_term;
            } else {
                let relative = (ln_term - top).exp();
                sum += relative;
                let left = (terms - v) as f64;
                if 4.0 * left * relative < f64::EPSILON * sum && v + 1 != terms {
                    break;
                }
            }
        }
        binomial *= (nf - vf) / (vf + 1.0);
        if binomial > 1.0 / scale_down {
            binomial *= scale_down;
            binomial_exponent += i64::from(SCALE_EXPONENT);
        } else if binomial < scale_down {
            // Past v = n/2 the coefficients fall again.
            binomial /= scale_down;
            binomial_exponent -= i64::from(SCALE_EXPONENT);
        }
    }
    clip((x.ln() + top + sum.ln()).exp())
}

/// 2^128 and its inverse: the scale Durbin's and Pomeranz's recursions
/// apply (exactly) to keep their entries within the double range.
const SCALE: f64 = 340_282_366_920_938_463_463_374_607_431_768_211_456.0;
const SCALE_LOG2: i64 = 128;

/// `value` · 2^`exponent` without overflowing on the way.
fn times_power_of_two(mut value: f64, mut exponent: i64) -> f64 {
    while exponent > 1000 {
        value *= 2f64.powi(1000);
        exponent -= 1000;
    }
    while exponent < -1000 {
        value *= 2f64.powi(-1000);
        exponent += 1000;
    }
    value * 2f64.powi(exponent as i32)
}

/// P(D_n ≤ d) by Durbin's matrix method as Marsaglia, Tsang and Wang
/// (2003, J. Stat. Software 8(18)) evaluate it: with n·d = k − h
/// (k an integer, 0 ≤ h < 1), the probability is n!/n^n times the
/// central entry of H^n for an m × m matrix H, m = 2k − 1, raised by
/// squaring with a tracked power-of-two scale. Work is O(m³·log n), so it
/// serves only where n·d is small.
fn durbin_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    // first[j] = (1 − h^(j+1))/(j+1)! is H's first column (and, reversed,
    // its last row); the corner entry has its own form.
    // inverse_factorial[j] = 1/j!.
    let mut first = vec![0.0; m];
    let mut inverse_factorial = vec![0.0; m];
    let mut factor = 1.0;
    for j in 1..=m {
        inverse_factorial[j - 1] = factor;
        factor /= j as f64;
        first[j - 1] = (1.0 - h.powi(j as i32)) * factor;
    }
    let corner = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    first[m - 1] = (1.0 + corner) * factor;
    // H[r][c] = 1/(r − c + 1)! on and below the superdiagonal.
    let mut matrix = vec![0.0; m * m];
    for c in 1..m {
        for r in (c - 1)..m {
            matrix[r * m + c] = inverse_factorial[r + 1 - c];
        }
    }
    for r in 0..m {
        matrix[r * m] = first[r];
    }
    for c in 0..m {
        matrix[(m - 1) * m + c] = first[m - 1 - c];
    }

    let mut power = vec![0.0; m * m];
    for i in 0..m {
        power[i * m + i] = 1.0;
    }
    let (mut power_exponent, mut matrix_exponent) = (0i64, 0i64);
    let mut scratch = vec![0.0; m * m];
    let mut remaining = n;
    while remaining > 0 {
        if remaining % 2 == 1 {
            multiply(&power, &matrix, &mut scratch, m);
            std::mem::swap(&mut power, &mut scratch);
            power_exponent += matrix_exponent;
        }
        multiply(&matrix, &matrix, &mut scratch, m);
        std::mem::swap(&mut matrix, &mut scratch);
        matrix_exponent *= 2;
        if matrix[(k - 1) * m + (k - 1)].abs() > SCALE {
            matrix.iter_mut().for_each(|v| *v /= SCALE);
            matrix_exponent += SCALE_LOG2;
        }
        remaining /= 2;
    }
    // Times n!/n^n, one factor i/n at a time, rescaling before underflow.
    let mut p = power[(k - 1) * m + (k - 1)];
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < 1.0 / SCALE {
            p *= SCALE;
            power_exponent -= SCALE_LOG2;
        }
    }
    clip(times_power_of_two(p, power_exponent))
}

/// `out` = `a` · `b` for m × m row-major matrices.
fn multiply(a: &[f64], b: &[f64], out: &mut [f64], m: usize) {
    out.iter_mut().for_each(|v| *v = 0.0);
    for i in 0..m {
        for l in 0..m {
            let a_il = a[i * m + l];
            if a_il == 0.0 {
                continue;
            }
            let row = &b[l * m..(l + 1) * m];
            for (o, b_lj) in out[i * m..(i + 1) * m].iter_mut().zip(row) {
                *o += a_il * b_lj;
            }
        }
    }
}

/// P(D_n ≤ x) by Pomeranz's recursion (1974, CACM 17(12), Algorithm
/// 487): the sample's order statistics are walked through the 2n + 2
/// points where the band [i/n − x, i/n + x] changes, and each step
/// convolves the current row of path weights with Poisson-like weights
/// (g/n)^j/j!, (2g/n)^j/j! or ((1 − 2g)/n)^j/j!, g the distance of n·x
/// from the nearest integer. Only the entries inside the band are kept;
/// the answer is n! times the last entry.
fn pomeranz_cdf(n: u64, x: f64) -> f64 {
    let n_i = n as i64;
    let nf = n as f64;
    let t = nf * x;
    let whole = t.floor() as i64;
    let f = t - whole as f64;
    let g = f.min(1.0 - f);
    let ceil_f = i64::from(f > 0.0);
    let round_f = i64::from(f > 0.5);
    let width = 2 * (whole as usize + 1);
    let weights = |rate: f64| -> Vec<f64> {
        let mut w = vec![1.0; width];
        for j in 1..width {
            w[j] = w[j - 1] * rate / j as f64;
        }
        w
    };
    let single = weights(g / nf);
    let double = weights(2.0 * g / nf);
    let rest = weights((1.0 - 2.0 * g) / nf);
    // The band's first and last index at step i, clipped to 0..=n.
    let band = |i: i64| -> (i64, i64) {
        let (j1, j2) = if i == 0 {
            (-whole - ceil_f - 1, whole + ceil_f - 1)
        } else {
            let (half, odd_step) = ((i + 1) / 2, (i + 1) % 2 == 0);
            if odd_step {
                if half == n_i + 1 {
                    (n_i - whole - ceil_f - 1, n_i + whole + ceil_f - 1)
                } else {
                    (
                        half - 1 - whole - round_f - 1,
                        half + whole - 1 + ceil_f - 1,
                    )
                }
            } else {
                (half - 1 - whole - 1, half + whole + round_f - 1)
            }
        };
        ((j1 + 2).max(0), j2.min(n_i))
    };
    let mut previous = vec![0.0; width];
    let mut current = vec![0.0; width];
    current[0] = 1.0;
    // The index of each row's first kept entry.
    let (mut previous_start, mut current_start) = (0i64, 0i64);
    let mut exponent = 0i64;
    let (mut j1, _) = band(0);
    for i in 1..(2 * n_i + 2) {
        let k1 = j1;
        std::mem::swap(&mut previous, &mut current);
        std::mem::swap(&mut previous_start, &mut current_start);
        current.iter_mut().for_each(|v| *v = 0.0);
        let (next_j1, j2) = band(i);
        j1 = next_j1;
        let rate = if i == 1 || i == 2 * n_i + 1 {
            &single
        } else if i % 2 == 1 {
            &double
        } else {
            &rest
        };
        let span = j2 - k1 + 1;
        if span > 0 {
            // The entries k1..=j2 of the previous row, convolved with the
            // first `span` weights; entries j1..=j2 of the result are kept.
            let from = (k1 - previous_start) as usize;
            let to = (from + span as usize).min(width);
            let source = &previous[from..to];
            let weight = &rate[..span as usize];
            let offset = (j1 - k1) as usize;
            for (slot, out) in current.iter_mut().take((j2 - j1 + 1) as usize).enumerate() {
                let c = offset + slot;
                let mut total = 0.0;
                for (a, value) in source.iter().enumerate().take(c + 1) {
                    if let Some(w) = weight.get(c - a) {
                        total += value * w;
                    }
                }
                *out = total;
            }
            let largest = current.iter().copied().fold(0.0, f64::max);
            if largest > 0.0 && largest < 1.0 / SCALE {
                current.iter_mut().for_each(|v| *v *= SCALE);
                exponent -= SCALE_LOG2;
            }
            current_start = previous_start + j1 - k1;
        }
    }
    let mut answer = current[(n_i - current_start) as usize];
    for factor in 1..=n {
        if answer.abs() > SCALE {
            answer /= SCALE;
            exponent += SCALE_LOG2;
        }
        answer *= factor as f64;
    }
    clip(times_power_of_two(answer, exponent))
}

/// P(D_n ≤ x) by Pelz and Good's expansion (1976, JRSS B 38(2)):
/// Li-Chien and Korolyuk's K0(z) + K1(z)/√n + K2(z)/n + K3(z)/n^(3/2),
/// z = √n·x, with each K rewritten through Jacobi's theta identity into
/// sums that converge fast for small z. Used only where n·x² < 2.2 and
/// the matrix is too large, so the CDF it gives is not small.
fn pelz_good_cdf(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let log_q = -PI * PI / 8.0 / z2;
    if log_q < -708.0 {
        return 0.0;
    }
    let q = log_q.exp();
    let (pi2, pi4, pi6) = (PI * PI, PI.powi(4), PI.powi(6));
    // The coefficients of each K's sum over odd m, as polynomials in m².
    let k1 = [-z2, pi2 / 4.0];
    let k2 = [
        6.0 * z6 + 2.0 * z4,
        (2.0 * z4 - 5.0 * z2) * pi2 / 4.0,
        pi4 * (1.0 - 2.0 * z2) / 16.0,
    ];
    let k3 = [
        -30.0 * z6 - 90.0 * z.powi(8),
        pi2 * (135.0 * z4 - 96.0 * z6) / 4.0,
        pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0,
        pi6 * (5.0 - 30.0 * z2) / 64.0,
    ];
    // Σ_(k≥1) c(m) q^(m²), m = 2k − 1, by Horner's rule in q^(8k) (the
    // step between consecutive odd squares), then times q.
    let terms = (16.0 * z / PI).ceil() as i32;
    let mut sums = [0.0f64; 4];
    for k in (1..=terms).rev() {
        let m = f64::from(2 * k - 1);
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let step = q.powi(8 * k);
        let coefficients = [
            1.0,
            k1[0] + k1[1] * m2,
            k2[0] + k2[1] * m2 + k2[2] * m4,
            k3[0] + k3[1] * m2 + k3[2] * m4 + k3[3] * m6,
        ];
        for (s, c) in sums.iter_mut().zip(coefficients) {
            *s = *s * step + c;
        }
    }
    let root_two_pi = (2.0 * PI).sqrt();
    let divisors = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (s, divisor) in sums.iter_mut().zip(divisors) {
        *s = *s * q * root_two_pi / divisor;
    }
    // K2 and K3 also carry sums over all integers k of k²·r^(k²),
    // r = exp(−π²/(2z²)).
    let r = (-pi2 / 2.0 / z2).exp();
    let (mut k2_extra, mut k3_extra) = (0.0, 0.0);
    let root_three_z = 3f64.sqrt() * z;
    for k in (1..=terms).rev() {
        let kf = f64::from(k);
        let weight = kf * kf * r.powi(k * k);
        k2_extra += weight;
        k3_extra += (root_three_z + PI * kf) * (root_three_z - PI * kf) * weight;
    }
    sums[2] += k2_extra * pi2 * root_two_pi / (-36.0 * z3);
    sums[3] += k3_extra * pi2 * root_two_pi / (216.0 * z6);
    let root_n = nf.sqrt();
    sums[0] + sums[1] / root_n + sums[2] / nf + sums[3] / (nf * root_n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms_at_the_ends() {
        assert_eq!(survival(50, 0.0), 1.0);
        assert_eq!(survival(50, 1.0), 0.0);
        assert_eq!(survival(50, 0.005), 1.0);
        // n = 1: D = max(U, 1 − U), so P(D ≥ x) = 2(1 − x) for x ≥ 1/2.
        assert!((survival(1, 0.75) - 0.5).abs() < 1e-15);
        // Within 1/n of 1: 2(1 − x)^n.
        assert!((survival(10, 0.95) - 2.0 * 0.05f64.powi(10)).abs() < 1e-25);
    }

    #[test]
    fn methods_meet_where_they_hand_over() {
        // Each pair straddles a switch of method; the distribution is
        // continuous in x, so the two sides nearly agree: to rounding
        // between exact methods, and to Pelz–Good's own error (1.7e-6
        // relative at n = 5,000, as in scipy) where it hands over.
        for (n, x) in [
            (100usize, (0.754_693f64 / 100.0).sqrt()),
            (100, (4.0f64 / 100.0).sqrt()),
            (5000, (2.2f64 / 5000.0).sqrt()),
            (20_000, (1.4f64 / 20_000.0).powf(2.0 / 3.0)),
        ] {
            let (below, above) = (
                survival(n as u64, x * (1.0 - 1e-9)),
                survival(n as u64, x * (1.0 + 1e-9)),
            );
            assert!(
                (below - above).abs() < 1e-5 * below.max(above),
                "n {n} x {x}: {below} vs {above}"
            );
        }
    }

    #[test]
    fn a_probability_that_falls_as_x_grows() {
        // Over every method: a value in [0, 1], falling in x except for
        // Pelz–Good's own error where it hands over (about 2e-6).
        for n in (1..=20).chain([50, 100, 139, 140, 141, 500, 5000, 20_000, 2_000_000]) {
            let mut last = 1.0;
            for i in 1..=300 {
                let x = f64::from(i) / 300.0;
                let p = survival(n, x);
                assert!((0.0..=1.0).contains(&p), "n {n} x {x}: {p}");
                assert!(p <= last * (1.0 + 1e-5), "n {n} x {x}: {p} after {last}");
                last = p;
            }
        }
    }
}
