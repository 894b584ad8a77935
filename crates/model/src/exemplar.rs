//! Exemplars: a sample of a series that carries labels of its own (a trace
//! id, usually), as OpenMetrics, remote write and OTLP attach them to
//! counters and histogram buckets. What a store does with them is
//! [`crate::storage::Appender::append_exemplar`] and
//! [`crate::storage::Storage::select_exemplars`]; the rules here are
//! Prometheus's (`model/exemplar`, `storage` errors), written once for
//! every writer and store.

use crate::{Labels, Matcher};

/// The most runes the names and values of one exemplar's labels may hold
/// together (OpenMetrics' limit; Prometheus's `ExemplarMaxLabelSetLength`).
pub const MAX_LABEL_SET_RUNES: usize = 128;

/// Prometheus's message for an exemplar over [`MAX_LABEL_SET_RUNES`].
pub const LABEL_LENGTH_ERROR: &str =
    "label length for exemplar exceeds maximum of 128 UTF-8 characters";

/// Prometheus's message for an exemplar not newer than its series' newest.
pub const OUT_OF_ORDER_ERROR: &str = "out of order exemplar";

/// One exemplar.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// Empty values are never present (a [`Labels`] drops them).
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds: the exemplar's own time, or the scrape's when it has
    /// none (`has_timestamp` false).
    pub timestamp_ms: i64,
    /// Whether `timestamp_ms` was the exemplar's own.
    pub has_timestamp: bool,
}

impl Exemplar {
    /// Prometheus's `Exemplar.Equals`: the same labels and value, and the
    /// same time when either has a time of its own. An exemplar scraped
    /// again and again without a timestamp is thus the same exemplar every
    /// scrape, not a new one.
    pub fn same_as(&self, other: &Exemplar) -> bool {
        if self.labels != other.labels {
            return false;
        }
        if (self.has_timestamp || other.has_timestamp) && self.timestamp_ms != other.timestamp_ms {
            return false;
        }
        // Float equality, as Go's `==`: a NaN value is never the same, so
        // Prometheus stores a NaN exemplar again at every scrape.
        self.value == other.value
    }
}

/// Checks the label-set length limit: the runes of every name and value
/// together at most [`MAX_LABEL_SET_RUNES`]. The error is Prometheus's
/// message.
pub fn check_label_length(labels: &Labels) -> Result<(), &'static str> {
    let mut runes = 0usize;
    for label in labels.iter() {
        runes += label.name.chars().count() + label.value.chars().count();
        if runes > MAX_LABEL_SET_RUNES {
            return Err(LABEL_LENGTH_ERROR);
        }
    }
    Ok(())
}

/// The exemplars of one series, oldest first, as
/// `/api/v1/query_exemplars` answers them.
#[derive(Clone, Debug, PartialEq)]
pub struct ExemplarSeries {
    pub series_labels: Labels,
    pub exemplars: Vec<Exemplar>,
}

/// Whether `labels` match every matcher of at least one of `selectors`
/// (Prometheus's `matchesSomeMatcherSet`).
pub fn matches_some(labels: &Labels, selectors: &[Vec<Matcher>]) -> bool {
    selectors
        .iter()
        .any(|matchers| crate::matcher::matches_all(labels, matchers))
}

/// The exemplar store's figures for the `prometheus_tsdb_exemplar_*`
/// metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExemplarCounters {
    pub appended_total: u64,
    pub out_of_order_total: u64,
    pub in_storage: u64,
    pub series_in_storage: u64,
    pub max_exemplars: u64,
    /// Seconds: the oldest stored exemplar's time, 0 when none.
    pub last_exemplars_timestamp_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exemplar(labels: &[(&str, &str)], value: f64, t: i64, has: bool) -> Exemplar {
        Exemplar {
            labels: Labels::from_pairs(labels.iter().copied()),
            value,
            timestamp_ms: t,
            has_timestamp: has,
        }
    }

    #[test]
    fn sameness_ignores_scrape_times() {
        let a = exemplar(&[("trace_id", "a")], 1.0, 1000, false);
        let b = exemplar(&[("trace_id", "a")], 1.0, 2000, false);
        assert!(a.same_as(&b));
        let c = exemplar(&[("trace_id", "a")], 1.0, 2000, true);
        assert!(!a.same_as(&c));
        assert!(!a.same_as(&exemplar(&[("trace_id", "b")], 1.0, 1000, false)));
        assert!(!a.same_as(&exemplar(&[("trace_id", "a")], 2.0, 1000, false)));
        let nan = exemplar(&[("trace_id", "a")], f64::NAN, 1000, false);
        assert!(!nan.same_as(&nan.clone()));
    }

    #[test]
    fn label_length_counts_runes_of_names_and_values() {
        let value = "é".repeat(128 - "trace_id".len());
        let fits = Labels::from_pairs([("trace_id", value.as_str())]);
        assert_eq!(check_label_length(&fits), Ok(()));
        let value = "é".repeat(129 - "trace_id".len());
        let over = Labels::from_pairs([("trace_id", value.as_str())]);
        assert_eq!(check_label_length(&over), Err(LABEL_LENGTH_ERROR));
    }
}
