//! Native histograms, as Prometheus stores them.
//!
//! [`Histogram`] is the integer form a client exposes and remote write 1.0
//! carries (bucket counts as deltas to the previous bucket);
//! [`FloatHistogram`] the float form PromQL computes with (absolute bucket
//! counts). Both have an exponential schema (`-4..=8`: bucket `i` of the
//! positive side is `(base^(i-1), base^i]` with `base = 2^(2^-schema)`) or
//! the custom-buckets schema `-53`, whose bounds are `custom_values`.
//!
//! Buckets are sparse: `spans` say which bucket indexes are present (each
//! span skips `offset` indexes after the previous span's end and then holds
//! `length` consecutive buckets, the first span's offset being the first
//! index itself), and `buckets` holds one count per present index.
//!
//! [`Histogram::validate`] and [`FloatHistogram::validate`] apply
//! Prometheus's rules (`model/histogram`'s `Validate`) with its wording, so
//! an ingest path can answer as Prometheus does.

use crate::sample::STALE_NAN_BITS;

/// The custom-buckets schema (Prometheus's `CustomBucketsSchema`).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// The smallest exponential schema.
pub const EXPONENTIAL_SCHEMA_MIN: i32 = -4;
/// The largest exponential schema.
pub const EXPONENTIAL_SCHEMA_MAX: i32 = 8;

/// What the writer knows about a counter reset before this sample
/// (Prometheus's `CounterResetHint`; the numbers are remote write's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CounterResetHint {
    /// Nothing is known; a reader compares with the previous sample.
    #[default]
    Unknown = 0,
    /// A counter reset happened before this sample.
    CounterReset = 1,
    /// No counter reset happened before this sample.
    NotCounterReset = 2,
    /// The histogram is a gauge: its counts may go down.
    Gauge = 3,
}

impl CounterResetHint {
    /// The hint of a wire number; `None` for one Prometheus does not define.
    pub fn from_u8(value: u8) -> Option<CounterResetHint> {
        Some(match value {
            0 => CounterResetHint::Unknown,
            1 => CounterResetHint::CounterReset,
            2 => CounterResetHint::NotCounterReset,
            3 => CounterResetHint::Gauge,
            _ => return None,
        })
    }
}

/// A run of consecutive present buckets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// Indexes skipped since the previous span's end (the first span: its
    /// first index).
    pub offset: i32,
    /// Buckets in the run.
    pub length: u32,
}

/// A histogram with integer counts; buckets are deltas to the previous
/// bucket of the same side (the first is absolute).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: u64,
    pub count: u64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    pub positive_buckets: Vec<i64>,
    pub negative_buckets: Vec<i64>,
    /// The upper bounds of the custom buckets (schema -53 only), ascending;
    /// the last bucket's bound, +Inf, is implicit.
    pub custom_values: Vec<f64>,
}

/// A histogram with float counts; buckets are absolute counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    pub positive_buckets: Vec<f64>,
    pub negative_buckets: Vec<f64>,
    pub custom_values: Vec<f64>,
}

/// Why a histogram is invalid. The message is Prometheus's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HistogramError(String);

impl HistogramError {
    fn new(message: impl Into<String>) -> HistogramError {
        HistogramError(message.into())
    }
}

/// Whether `schema` is one osprey stores: exponential or custom buckets.
pub fn is_valid_schema(schema: i32) -> bool {
    schema == CUSTOM_BUCKETS_SCHEMA
        || (EXPONENTIAL_SCHEMA_MIN..=EXPONENTIAL_SCHEMA_MAX).contains(&schema)
}

fn check_schema(schema: i32) -> Result<(), HistogramError> {
    if is_valid_schema(schema) {
        Ok(())
    } else {
        Err(HistogramError::new(format!(
            "histogram has an invalid schema, which must be between {EXPONENTIAL_SCHEMA_MIN} and {EXPONENTIAL_SCHEMA_MAX} for exponential buckets, or {CUSTOM_BUCKETS_SCHEMA} for custom buckets"
        )))
    }
}

/// Prometheus's `checkHistogramSpans`: offsets after the first are not
/// negative and the spans need exactly `n_buckets` buckets.
fn check_spans(spans: &[Span], n_buckets: usize, side: &str) -> Result<(), HistogramError> {
    let mut needed: u64 = 0;
    for (i, span) in spans.iter().enumerate() {
        if i > 0 && span.offset < 0 {
            return Err(HistogramError::new(format!(
                "{side} side: span number {} with offset {}: histogram has a span whose offset is negative",
                i + 1,
                span.offset
            )));
        }
        needed += u64::from(span.length);
    }
    if needed != n_buckets as u64 {
        return Err(HistogramError::new(format!(
            "{side} side: spans need {needed} buckets, have {n_buckets} buckets: histogram spans specify different number of buckets than provided"
        )));
    }
    Ok(())
}

/// Custom bounds must be strictly increasing and finite, and every bucket
/// index must name a bound (or the implicit +Inf one).
fn check_custom(
    custom_values: &[f64],
    spans: &[Span],
    negative_spans: &[Span],
    n_negative: usize,
    zero_count_is_zero: bool,
) -> Result<(), HistogramError> {
    if !negative_spans.is_empty() || n_negative > 0 {
        return Err(HistogramError::new(
            "custom buckets: must have zero negative buckets: histogram with custom buckets must not have negative buckets",
        ));
    }
    if !zero_count_is_zero {
        return Err(HistogramError::new(
            "custom buckets: must have zero count of 0: histogram with custom buckets must not have a zero bucket",
        ));
    }
    let mut previous = f64::NEG_INFINITY;
    for (i, &bound) in custom_values.iter().enumerate() {
        // NaN compares as not greater, and is refused here too.
        if bound.partial_cmp(&previous) != Some(std::cmp::Ordering::Greater) {
            return Err(HistogramError::new(format!(
                "custom buckets: previous bound is {previous} and current is {bound}: histogram custom bounds must be in strictly increasing order"
            )));
        }
        if bound.is_infinite() || bound.is_nan() {
            return Err(HistogramError::new(format!(
                "custom buckets: bound number {} is {bound}: histogram custom bounds must be finite",
                i + 1
            )));
        }
        previous = bound;
    }
    for index in bucket_indexes(spans) {
        // The largest index is the +Inf bucket, `custom_values.len()`.
        if index < 0 || index > custom_values.len() as i64 {
            return Err(HistogramError::new(format!(
                "custom buckets: only {} bounds defined but index {index} requested: histogram custom bounds are too few",
                custom_values.len()
            )));
        }
    }
    Ok(())
}

impl Histogram {
    /// Applies Prometheus's rules: a known schema; spans that agree with the
    /// buckets; no negative bucket count; custom buckets only on the
    /// positive side with finite, increasing bounds; and the buckets adding
    /// up to `count` (to at most `count` when `sum` is NaN, as in a stale
    /// marker or a histogram that saw a NaN).
    pub fn validate(&self) -> Result<(), HistogramError> {
        check_schema(self.schema)?;
        check_spans(
            &self.negative_spans,
            self.negative_buckets.len(),
            "negative",
        )?;
        check_spans(
            &self.positive_spans,
            self.positive_buckets.len(),
            "positive",
        )?;
        if self.schema == CUSTOM_BUCKETS_SCHEMA {
            check_custom(
                &self.custom_values,
                &self.positive_spans,
                &self.negative_spans,
                self.negative_buckets.len(),
                self.zero_count == 0,
            )?;
        } else if !self.custom_values.is_empty() {
            return Err(HistogramError::new(
                "histogram with exponential schema must not have custom bounds",
            ));
        }
        let negative = absolute_counts(&self.negative_buckets, "negative")?;
        let positive = absolute_counts(&self.positive_buckets, "positive")?;
        let in_buckets = u128::from(negative) + u128::from(positive) + u128::from(self.zero_count);
        let count = u128::from(self.count);
        if self.sum.is_nan() {
            if in_buckets > count {
                return Err(HistogramError::new(format!(
                    "{in_buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should be at least the number of observations found in the buckets"
                )));
            }
        } else if in_buckets != count {
            return Err(HistogramError::new(format!(
                "{in_buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)"
            )));
        }
        Ok(())
    }

    /// The float form: absolute counts, converted exactly below 2^53.
    pub fn to_float(&self) -> FloatHistogram {
        FloatHistogram {
            counter_reset_hint: self.counter_reset_hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count as f64,
            count: self.count as f64,
            sum: self.sum,
            positive_spans: self.positive_spans.clone(),
            negative_spans: self.negative_spans.clone(),
            positive_buckets: cumulate(&self.positive_buckets),
            negative_buckets: cumulate(&self.negative_buckets),
            custom_values: self.custom_values.clone(),
        }
    }
}

/// The sum of the absolute counts the deltas give; an error when one of
/// them is negative.
fn absolute_counts(deltas: &[i64], side: &str) -> Result<u64, HistogramError> {
    let mut current: i64 = 0;
    let mut total: u64 = 0;
    for &delta in deltas {
        current = current.wrapping_add(delta);
        if current < 0 {
            return Err(HistogramError::new(format!(
                "{side} side: bucket number {current}: histogram has a bucket whose observation count is negative"
            )));
        }
        total = total.saturating_add(current as u64);
    }
    Ok(total)
}

fn cumulate(deltas: &[i64]) -> Vec<f64> {
    let mut current: i64 = 0;
    deltas
        .iter()
        .map(|&delta| {
            current = current.wrapping_add(delta);
            current as f64
        })
        .collect()
}

impl FloatHistogram {
    /// The integer form, when it holds this histogram exactly: every count
    /// a whole, non-negative number below 2^53 (-0.0 stays a float), and
    /// the whole passing [`Histogram::validate`] (the buckets add up to
    /// the count). `None` otherwise, and for a staleness marker.
    pub fn to_integer(&self) -> Option<Histogram> {
        const LIMIT: f64 = 9_007_199_254_740_992.0;
        let whole = |v: f64| v.is_sign_positive() && v.fract() == 0.0 && v < LIMIT;
        if self.is_stale()
            || !whole(self.count)
            || !whole(self.zero_count)
            || !self.positive_buckets.iter().all(|&v| whole(v))
            || !self.negative_buckets.iter().all(|&v| whole(v))
        {
            return None;
        }
        let deltas = |buckets: &[f64]| -> Vec<i64> {
            let mut previous = 0i64;
            buckets
                .iter()
                .map(|&v| {
                    let v = v as i64;
                    let d = v - previous;
                    previous = v;
                    d
                })
                .collect()
        };
        let h = Histogram {
            counter_reset_hint: self.counter_reset_hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count as u64,
            count: self.count as u64,
            sum: self.sum,
            positive_spans: self.positive_spans.clone(),
            negative_spans: self.negative_spans.clone(),
            positive_buckets: deltas(&self.positive_buckets),
            negative_buckets: deltas(&self.negative_buckets),
            custom_values: self.custom_values.clone(),
        };
        h.validate().is_ok().then_some(h)
    }
}

impl FloatHistogram {
    /// Prometheus's rules for float histograms: a known schema, spans that
    /// agree with the buckets, no negative count, custom buckets as for
    /// [`Histogram::validate`]. The count is not compared with the buckets
    /// (float rounding would give false alarms, as Prometheus notes).
    pub fn validate(&self) -> Result<(), HistogramError> {
        check_schema(self.schema)?;
        check_spans(
            &self.negative_spans,
            self.negative_buckets.len(),
            "negative",
        )?;
        check_spans(
            &self.positive_spans,
            self.positive_buckets.len(),
            "positive",
        )?;
        if self.schema == CUSTOM_BUCKETS_SCHEMA {
            check_custom(
                &self.custom_values,
                &self.positive_spans,
                &self.negative_spans,
                self.negative_buckets.len(),
                self.zero_count == 0.0,
            )?;
        } else if !self.custom_values.is_empty() {
            return Err(HistogramError::new(
                "histogram with exponential schema must not have custom bounds",
            ));
        }
        for (side, buckets) in [
            ("negative", &self.negative_buckets),
            ("positive", &self.positive_buckets),
        ] {
            if let Some(count) = buckets.iter().find(|c| **c < 0.0) {
                return Err(HistogramError::new(format!(
                    "{side} side: bucket number {count}: histogram has a bucket whose observation count is negative"
                )));
            }
        }
        if self.zero_count < 0.0 || self.count < 0.0 {
            return Err(HistogramError::new(
                "histogram has a negative count or zero count",
            ));
        }
        Ok(())
    }

    /// Whether this is a staleness marker: its sum is the stale NaN.
    pub fn is_stale(&self) -> bool {
        self.sum.to_bits() == STALE_NAN_BITS
    }

    /// A staleness marker: an empty histogram whose sum is the stale NaN,
    /// as Prometheus writes when a histogram series goes away.
    pub fn stale_marker() -> FloatHistogram {
        FloatHistogram {
            sum: f64::from_bits(STALE_NAN_BITS),
            ..FloatHistogram::default()
        }
    }

    /// The zero sample that stands for this histogram's created timestamp
    /// (`Appender::append_histogram_created_zero`): empty, with this
    /// schema, zero threshold and custom bounds (so no new chunk layout
    /// is needed), hinted as a counter reset, as Prometheus writes it.
    pub fn created_zero(&self) -> FloatHistogram {
        FloatHistogram {
            counter_reset_hint: CounterResetHint::CounterReset,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            custom_values: self.custom_values.clone(),
            ..FloatHistogram::default()
        }
    }

    /// Whether the two have the same bucket layout (schema, zero threshold,
    /// spans, custom bounds), so their buckets line up one to one.
    pub fn same_layout(&self, other: &FloatHistogram) -> bool {
        self.schema == other.schema
            && self.zero_threshold.to_bits() == other.zero_threshold.to_bits()
            && self.positive_spans == other.positive_spans
            && self.negative_spans == other.negative_spans
            && self.custom_values.len() == other.custom_values.len()
            && self
                .custom_values
                .iter()
                .zip(&other.custom_values)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }

    /// Whether `self`, following `previous` of the same series, shows a
    /// counter reset: a count, the zero count or a bucket went down, or a
    /// bucket present before is missing (Prometheus's `DetectReset`, for
    /// histograms of equal layout; a layout change is judged by the
    /// buckets both have, and a coarser or different-threshold one counts
    /// as a reset). Gauge histograms never reset.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset | CounterResetHint::Gauge => return false,
            CounterResetHint::Unknown => {}
        }
        if self.count < previous.count || self.zero_count < previous.zero_count {
            return true;
        }
        if self.schema != previous.schema
            || self.zero_threshold.to_bits() != previous.zero_threshold.to_bits()
        {
            return true;
        }
        if self.schema == CUSTOM_BUCKETS_SCHEMA && self.custom_values != previous.custom_values {
            return true;
        }
        for (spans, buckets, prev_spans, prev_buckets) in [
            (
                &self.positive_spans,
                &self.positive_buckets,
                &previous.positive_spans,
                &previous.positive_buckets,
            ),
            (
                &self.negative_spans,
                &self.negative_buckets,
                &previous.negative_spans,
                &previous.negative_buckets,
            ),
        ] {
            let now: std::collections::HashMap<i64, f64> =
                bucket_indexes(spans).zip(buckets.iter().copied()).collect();
            for (index, before) in bucket_indexes(prev_spans).zip(prev_buckets.iter().copied()) {
                match now.get(&index) {
                    Some(&count) if count >= before => {}
                    None if before == 0.0 => {}
                    _ => return true,
                }
            }
        }
        false
    }

    /// Every bucket with a count above zero in ascending order of its
    /// bounds: negative buckets (most negative first), the zero bucket,
    /// positive buckets; as Prometheus's `AllBucketIterator` hands them to
    /// the query API.
    pub fn buckets(&self) -> Vec<Bucket> {
        let mut out = Vec::new();
        if self.schema != CUSTOM_BUCKETS_SCHEMA {
            let negative: Vec<(i64, f64)> = bucket_indexes(&self.negative_spans)
                .zip(self.negative_buckets.iter().copied())
                .collect();
            for &(index, count) in negative.iter().rev() {
                out.push(Bucket {
                    lower: -exponential_bound(index, self.schema),
                    upper: -exponential_bound(index - 1, self.schema),
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count,
                });
            }
            if self.zero_count > 0.0 {
                out.push(Bucket {
                    lower: -self.zero_threshold,
                    upper: self.zero_threshold,
                    lower_inclusive: true,
                    upper_inclusive: true,
                    count: self.zero_count,
                });
            }
        }
        for (index, count) in
            bucket_indexes(&self.positive_spans).zip(self.positive_buckets.iter().copied())
        {
            let (lower, upper) = if self.schema == CUSTOM_BUCKETS_SCHEMA {
                let bound = |i: i64| -> f64 {
                    if i < 0 {
                        f64::NEG_INFINITY
                    } else {
                        self.custom_values
                            .get(i as usize)
                            .copied()
                            .unwrap_or(f64::INFINITY)
                    }
                };
                (bound(index - 1), bound(index))
            } else {
                (
                    exponential_bound(index - 1, self.schema),
                    exponential_bound(index, self.schema),
                )
            };
            out.push(Bucket {
                lower,
                upper,
                lower_inclusive: false,
                upper_inclusive: true,
                count,
            });
        }
        out.retain(|b| b.count != 0.0);
        out
    }
}

/// One bucket with its bounds, for rendering.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
}

impl Bucket {
    /// The query API's boundary rule: 0 open left, 1 open right, 2 open
    /// both, 3 closed both.
    pub fn boundary_rule(&self) -> u8 {
        match (self.lower_inclusive, self.upper_inclusive) {
            (false, true) => 0,
            (true, false) => 1,
            (false, false) => 2,
            (true, true) => 3,
        }
    }
}

/// The bucket indexes the spans name, in order.
pub fn bucket_indexes(spans: &[Span]) -> impl Iterator<Item = i64> + '_ {
    let mut next: i64 = 0;
    spans.iter().flat_map(move |span| {
        let start = next + i64::from(span.offset);
        next = start + i64::from(span.length);
        start..next
    })
}

/// The upper bound of exponential bucket `index` (Prometheus's
/// `getBound`): `2^(index·2^-schema)`, computed as a fraction from a table
/// (`histogram_bounds`) times a power of two, so that it has Prometheus's
/// bits; the
/// last finite bucket's bound is `f64::MAX`, so that ±Inf gets a bucket
/// of its own.
pub fn exponential_bound(index: i64, schema: i32) -> f64 {
    if schema < 0 {
        let exp = index.saturating_mul(1i64 << (-schema).min(62));
        if exp == 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    let schema = schema.min(EXPONENTIAL_SCHEMA_MAX);
    let frac_index = index & ((1i64 << schema) - 1);
    let frac = crate::histogram_bounds::FRACTIONS[schema as usize]
        .get(frac_index as usize)
        .copied()
        .unwrap_or(0.5);
    let exp = (index >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

/// `x · 2^exp` with gradual underflow and overflow to infinity.
fn ldexp(x: f64, exp: i64) -> f64 {
    let mut x = x;
    let mut exp = exp.clamp(-2200, 2200);
    while exp > 1000 {
        x *= f64::powi(2.0, 1000);
        exp -= 1000;
    }
    while exp < -1000 {
        x *= f64::powi(2.0, -1000);
        exp += 1000;
    }
    x * f64::powi(2.0, exp as i32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_integer_form_exists_only_when_exact() {
        let h = FloatHistogram {
            schema: 0,
            zero_count: 1.0,
            count: 6.0,
            sum: 2.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![2.0, 3.0],
            ..FloatHistogram::default()
        };
        let integer = h.to_integer().expect("exact");
        assert_eq!(integer.positive_buckets, vec![2, 1]);
        assert_eq!(integer.to_float(), h);
        let with = |f: &dyn Fn(&mut FloatHistogram)| {
            let mut h = h.clone();
            f(&mut h);
            h.to_integer()
        };
        assert!(with(&|h| h.positive_buckets[0] = 2.5).is_none());
        assert!(with(&|h| h.count = 7.0).is_none(), "buckets must add up");
        assert!(with(&|h| h.zero_count = -0.0).is_none());
        assert!(with(&|h| h.count = 9_007_199_254_740_992.0).is_none());
        assert!(FloatHistogram::stale_marker().to_integer().is_none());
    }

    use super::*;

    fn spans(list: &[(i32, u32)]) -> Vec<Span> {
        list.iter()
            .map(|&(offset, length)| Span { offset, length })
            .collect()
    }

    fn example() -> Histogram {
        // Prometheus's own test histogram (`tsdb.GenerateTestHistogram(0)`
        // without the index shift): 4 positive and 4 negative buckets.
        Histogram {
            counter_reset_hint: CounterResetHint::Unknown,
            schema: 1,
            zero_threshold: 0.001,
            zero_count: 2,
            count: 12,
            sum: 18.4,
            positive_spans: spans(&[(0, 2), (1, 2)]),
            negative_spans: spans(&[(0, 2), (1, 2)]),
            positive_buckets: vec![1, 1, -1, 0],
            negative_buckets: vec![1, 1, -1, 0],
            custom_values: vec![],
        }
    }

    #[test]
    fn valid_histogram_converts_to_absolute_counts() {
        let h = example();
        h.validate().unwrap();
        let f = h.to_float();
        assert_eq!(f.positive_buckets, vec![1.0, 2.0, 1.0, 1.0]);
        assert_eq!(f.count, 12.0);
        f.validate().unwrap();
        assert_eq!(
            bucket_indexes(&f.positive_spans).collect::<Vec<_>>(),
            vec![0, 1, 3, 4]
        );
    }

    #[test]
    fn validation_rules_and_messages() {
        let mut h = example();
        h.count = 11;
        assert!(
            h.validate()
                .unwrap_err()
                .to_string()
                .starts_with("12 observations found in buckets, but the Count field is 11")
        );
        h.sum = f64::NAN;
        assert!(
            h.validate().is_err(),
            "count below the buckets even with NaN sum"
        );
        h.count = 13;
        h.validate().unwrap();

        let mut h = example();
        h.positive_buckets = vec![1, -2, 1, 0];
        assert!(h.validate().unwrap_err().to_string().contains("negative"));

        let mut h = example();
        h.positive_spans = spans(&[(0, 2), (1, 3)]);
        assert!(
            h.validate()
                .unwrap_err()
                .to_string()
                .contains("spans need 5 buckets, have 4 buckets")
        );

        let mut h = example();
        h.positive_spans = spans(&[(0, 2), (-1, 2)]);
        assert!(
            h.validate()
                .unwrap_err()
                .to_string()
                .contains("offset is negative")
        );

        let mut h = example();
        h.schema = 9;
        assert!(
            h.validate()
                .unwrap_err()
                .to_string()
                .contains("invalid schema")
        );
        h.schema = -5;
        assert!(h.validate().is_err());
    }

    #[test]
    fn custom_buckets_rules() {
        let mut h = Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 6,
            sum: 3.0,
            positive_spans: spans(&[(0, 3)]),
            positive_buckets: vec![1, 1, 1],
            custom_values: vec![0.1, 1.0],
            ..Histogram::default()
        };
        h.validate().unwrap();
        let f = h.to_float();
        let buckets = f.buckets();
        assert_eq!(buckets.len(), 3);
        assert_eq!(
            (buckets[0].lower, buckets[0].upper),
            (f64::NEG_INFINITY, 0.1)
        );
        assert_eq!((buckets[2].lower, buckets[2].upper), (1.0, f64::INFINITY));
        // Index 3 would need a third bound.
        h.positive_spans = spans(&[(0, 4)]);
        h.positive_buckets = vec![1, 0, 0, -1];
        h.count = 5;
        assert!(h.validate().unwrap_err().to_string().contains("too few"));
        h.positive_spans = spans(&[(0, 3)]);
        h.positive_buckets = vec![1, 1, 1];
        h.count = 6;
        h.custom_values = vec![1.0, 0.5];
        assert!(h.validate().unwrap_err().to_string().contains("increasing"));
        h.custom_values = vec![0.5, f64::INFINITY];
        assert!(h.validate().unwrap_err().to_string().contains("finite"));
        h.custom_values = vec![0.5, 1.0];
        h.negative_spans = spans(&[(0, 1)]);
        h.negative_buckets = vec![1];
        assert!(h.validate().is_err());
    }

    #[test]
    fn exponential_bounds_known_answers() {
        // Schema 0: powers of two.
        assert_eq!(exponential_bound(0, 0), 1.0);
        assert_eq!(exponential_bound(1, 0), 2.0);
        assert_eq!(exponential_bound(-1, 0), 0.5);
        // Schema 1: the square root of two as Prometheus's table has it,
        // one bit below the correctly rounded 1.4142135623730951 (its
        // query API prints 1.414213562373095).
        let below_sqrt_2 = f64::from_bits(std::f64::consts::SQRT_2.to_bits() - 1);
        assert_eq!(exponential_bound(1, 1), below_sqrt_2);
        assert_eq!(below_sqrt_2.to_string(), "1.414213562373095");
        assert_eq!(exponential_bound(3, 1), 2.82842712474619);
        assert_eq!(exponential_bound(-1, 1), 0.7071067811865475);
        // Schema 3 fraction 1: 2^(1/8).
        assert_eq!(exponential_bound(1, 3), 1.0905077326652577);
        // Negative schema: 4^index.
        assert_eq!(exponential_bound(2, -1), 16.0);
        // The last finite bucket.
        assert_eq!(exponential_bound(1024, 0), f64::MAX);
        assert_eq!(exponential_bound(1025, 0), f64::INFINITY);
    }

    #[test]
    fn buckets_in_ascending_order_with_boundary_rules() {
        let f = example().to_float();
        let buckets = f.buckets();
        // 4 negative, zero, 4 positive.
        assert_eq!(buckets.len(), 9);
        assert_eq!(buckets[0].lower, -exponential_bound(4, 1));
        assert_eq!(buckets[0].boundary_rule(), 1);
        assert_eq!(buckets[4].boundary_rule(), 3);
        assert_eq!((buckets[4].lower, buckets[4].upper), (-0.001, 0.001));
        assert_eq!(buckets[5].boundary_rule(), 0);
        assert_eq!(
            (buckets[5].lower, buckets[5].upper),
            (exponential_bound(-1, 1), 1.0)
        );
        assert!(buckets.windows(2).all(|w| w[0].upper <= w[1].lower));
    }

    #[test]
    fn counter_reset_detection() {
        let a = example().to_float();
        let mut b = a.clone();
        b.count += 1.0;
        b.positive_buckets[0] += 1.0;
        assert!(!b.detect_reset(&a));
        assert!(a.detect_reset(&b));
        let mut c = b.clone();
        c.counter_reset_hint = CounterResetHint::Gauge;
        assert!(!a.clone().detect_reset(&c) || a.counter_reset_hint != CounterResetHint::Gauge);
        let mut g = a.clone();
        g.counter_reset_hint = CounterResetHint::Gauge;
        assert!(!g.detect_reset(&b));
        // A bucket that vanished is a reset, unless it was empty.
        let mut d = b.clone();
        d.positive_spans = spans(&[(0, 2), (1, 1)]);
        d.positive_buckets.pop();
        d.count -= 1.0;
        assert!(d.detect_reset(&b));
    }

    #[test]
    fn stale_marker_is_recognised() {
        let s = FloatHistogram::stale_marker();
        assert!(s.is_stale());
        assert!(!example().to_float().is_stale());
    }
}
