//! Performance metrics over joined (prediction, actual) pairs, as
//! scikit-learn defines them (`docs/drift.md`, "Performance").

use std::collections::BTreeMap;

/// Accuracy and the macro averages of precision, recall and F1 over the
/// classes seen in `actual` or `predicted` (scikit-learn's
/// `average="macro"`, `zero_division=0`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Classification {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Classification metrics of `(actual, predicted)` label pairs; `None`
/// when there are none.
pub fn classification<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Option<Classification> {
    // Per class: true positives, false positives, false negatives.
    let mut per_class: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    let (mut n, mut correct) = (0u64, 0u64);
    for (actual, predicted) in pairs {
        n += 1;
        if actual == predicted {
            correct += 1;
            per_class.entry(actual).or_default().0 += 1;
        } else {
            per_class.entry(predicted).or_default().1 += 1;
            per_class.entry(actual).or_default().2 += 1;
        }
    }
    if n == 0 {
        return None;
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let classes = per_class.len() as f64;
    let (mut precision, mut recall, mut f1) = (0.0, 0.0, 0.0);
    for &(tp, fp, fn_) in per_class.values() {
        let p = ratio(tp, tp + fp);
        let r = ratio(tp, tp + fn_);
        precision += p;
        recall += r;
        f1 += if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        };
    }
    Some(Classification {
        accuracy: correct as f64 / n as f64,
        precision: precision / classes,
        recall: recall / classes,
        f1: f1 / classes,
    })
}

/// [`classification`] from counts of (actual class, predicted class).
pub fn from_confusion<K: Ord + Copy>(
    confusion: &std::collections::HashMap<(K, K), u64>,
) -> Option<Classification> {
    let mut per_class: BTreeMap<K, (u64, u64, u64)> = BTreeMap::new();
    let (mut n, mut correct) = (0u64, 0u64);
    for (&(actual, predicted), &count) in confusion {
        n += count;
        if actual == predicted {
            correct += count;
            per_class.entry(actual).or_default().0 += count;
        } else {
            per_class.entry(predicted).or_default().1 += count;
            per_class.entry(actual).or_default().2 += count;
        }
    }
    macro_average(per_class.values().copied(), n, correct)
}

fn macro_average(
    per_class: impl Iterator<Item = (u64, u64, u64)>,
    n: u64,
    correct: u64,
) -> Option<Classification> {
    if n == 0 {
        return None;
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (mut precision, mut recall, mut f1, mut classes) = (0.0, 0.0, 0.0, 0.0);
    for (tp, fp, fn_) in per_class {
        let p = ratio(tp, tp + fp);
        let r = ratio(tp, tp + fn_);
        precision += p;
        recall += r;
        f1 += if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        };
        classes += 1.0;
    }
    Some(Classification {
        accuracy: correct as f64 / n as f64,
        precision: precision / classes,
        recall: recall / classes,
        f1: f1 / classes,
    })
}

/// The area under the ROC curve of `scores` for the positives: the
/// probability that a random positive scores above a random negative, ties
/// counting one half (the Mann–Whitney form of `roc_auc_score`). `None`
/// without both a positive and a negative.
pub fn roc_auc(scored: &mut [(f64, bool)]) -> Option<f64> {
    let positives = scored.iter().filter(|s| s.1).count() as f64;
    let negatives = scored.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the positives' average ranks (1-based).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        while j < scored.len() && scored[j].0 == scored[i].0 {
            j += 1;
        }
        let average_rank = (i + 1 + j) as f64 / 2.0;
        let tied_positives = scored[i..j].iter().filter(|s| s.1).count() as f64;
        rank_sum += average_rank * tied_positives;
        i = j;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Macro one-vs-rest AUC over `classes` (scikit-learn's
/// `multi_class="ovr", average="macro"`): `scores[k][i]` is record i's
/// score for class k, `actual[i]` the index of its true class. For two
/// classes, the AUC of the second class's scores.
pub fn roc_auc_ovr(scores: &[Vec<f64>], actual: &[usize]) -> Option<f64> {
    if scores.len() == 2 {
        let mut scored: Vec<(f64, bool)> = scores[1]
            .iter()
            .zip(actual)
            .map(|(s, a)| (*s, *a == 1))
            .collect();
        return roc_auc(&mut scored);
    }
    let mut total = 0.0;
    for (k, class_scores) in scores.iter().enumerate() {
        let mut scored: Vec<(f64, bool)> = class_scores
            .iter()
            .zip(actual)
            .map(|(s, a)| (*s, *a == k))
            .collect();
        total += roc_auc(&mut scored)?;
    }
    Some(total / scores.len() as f64)
}

/// Regression errors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Regression {
    pub rmse: f64,
    pub mae: f64,
    /// A fraction: mean of |y − ŷ| / max(|y|, f64::EPSILON).
    pub mape: f64,
}

/// Regression errors of `(actual, predicted)` pairs; `None` when empty.
pub fn regression(pairs: impl Iterator<Item = (f64, f64)>) -> Option<Regression> {
    let (mut n, mut se, mut ae, mut ape) = (0.0, 0.0, 0.0, 0.0);
    for (y, p) in pairs {
        let e = y - p;
        n += 1.0;
        se += e * e;
        ae += e.abs();
        ape += e.abs() / y.abs().max(f64::EPSILON);
    }
    if n == 0.0 {
        return None;
    }
    Some(Regression {
        rmse: (se / n).sqrt(),
        mae: ae / n,
        mape: ape / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_inverted_auc() {
        let mut s = vec![(0.1, false), (0.9, true)];
        assert_eq!(roc_auc(&mut s), Some(1.0));
        let mut s = vec![(0.9, false), (0.1, true)];
        assert_eq!(roc_auc(&mut s), Some(0.0));
        let mut s = vec![(0.5, false), (0.5, true)];
        assert_eq!(roc_auc(&mut s), Some(0.5));
    }

    #[test]
    fn macro_averages() {
        let pairs = [("a", "a"), ("a", "b"), ("b", "b"), ("c", "b")];
        let m = classification(pairs.iter().map(|(a, p)| (*a, *p))).expect("metrics");
        assert_eq!(m.accuracy, 0.5);
        // a: p=1 r=0.5; b: p=1/3 r=1; c: p=0 r=0.
        assert!((m.precision - (1.0 + 1.0 / 3.0) / 3.0).abs() < 1e-15);
        assert!((m.recall - 0.5).abs() < 1e-15);
    }
}
