//! The native histogram chunk (encoding id 4, `docs/format/chunks.md`):
//! samples of one layout stored as columns, each column coded with the
//! Dense chunk's sections.
//!
//! [`split_runs`] decides where chunks are cut (layout change, counter
//! reset, gauge/counter switch, size); [`encode`] writes one run;
//! [`decode`] reads a chunk back, never panicking on corrupt bytes.

use super::dense;
use super::{BitWriter, read_bits, read_xor_value, write_xor_value};
use super::{ChunkError, get_byte, get_u64_le, get_uvarint, get_varint, put_uvarint, put_varint};
use model::histogram::{CounterResetHint, FloatHistogram, Span, bucket_indexes, is_valid_schema};

/// The one-byte encoding id stored next to a histogram chunk.
pub const HISTOGRAM_ENCODING: u8 = 4;

/// The most samples one histogram chunk holds.
pub const MAX_HISTOGRAM_SAMPLES: usize = u16::MAX as usize;

/// The most spans, buckets per side or custom bounds a chunk (and a WAL
/// record) accepts: far above any real histogram (Prometheus's schema 8
/// spans at most about 2^16 buckets a side), and a bound on what a corrupt
/// count can make a reader allocate.
pub const MAX_BUCKETS: usize = 1 << 16;

const FLAG_HINT_MASK: u8 = 0b11;
const FLAG_INTEGER: u8 = 0b100;
/// Every sample's count is the sum of its zero count and buckets
/// ([`derived_count`]); the count column is left out.
const FLAG_DERIVED_COUNT: u8 = 0b1000;

/// The kind byte of a sum column coded as XOR against a linear prediction
/// (the Dense values kinds are 0..=3).
const SUM_PREDICTED_XOR: u8 = 4;

/// The prediction of value `i` (≥ 1) from the two before it: the previous
/// value plus the previous step (the previous value alone for `i == 1`, or
/// where the step is not finite). Writer and reader compute it from the
/// same exact values, so it is the same bits on both sides.
fn predicted_bits(values: &[f64], i: usize) -> u64 {
    if i < 2 {
        return values[i - 1].to_bits();
    }
    let (a, b) = (values[i - 1], values[i - 2]);
    let p = a + (a - b);
    if p.is_finite() {
        p.to_bits()
    } else {
        a.to_bits()
    }
}

/// A counter histogram's sum grows by about the same each scrape, so XOR
/// against the predicted value leaves more leading zero bits than XOR
/// against the previous value.
fn encode_sum_predicted(values: &[f64], out: &mut Vec<u8>) {
    out.push(SUM_PREDICTED_XOR);
    let mut writer = BitWriter::default();
    let mut window = None;
    writer.write(out, values[0].to_bits(), 64);
    for i in 1..values.len() {
        write_xor_value(
            &mut writer,
            out,
            values[i].to_bits(),
            predicted_bits(values, i),
            &mut window,
        );
    }
}

fn decode_sum_predicted(section: &[u8], n: usize) -> Result<Vec<f64>, ChunkError> {
    let mut position = 8;
    let mut values = Vec::with_capacity(n.min(MAX_HISTOGRAM_SAMPLES));
    values.push(f64::from_bits(read_bits(section, &mut position, 64)?));
    let mut window = None;
    for i in 1..n {
        let mut bits = predicted_bits(&values, i);
        read_xor_value(section, &mut position, &mut bits, &mut window)?;
        values.push(f64::from_bits(bits));
    }
    Ok(values)
}

/// `zero_count + positive buckets + negative buckets`, added left to right
/// in that order (the chunk's layout order), as the writer checked and the
/// reader recomputes it: bit for bit the same on both sides.
fn derived_count(zero_count: f64, positive: &[f64], negative: &[f64]) -> f64 {
    let mut total = zero_count;
    for c in positive.iter().chain(negative) {
        total += c;
    }
    total
}

fn hint_bits(hint: CounterResetHint) -> u8 {
    hint as u8
}

/// Where a stream of histogram samples (ascending timestamps) must be cut
/// into chunks of at most `max_samples`: returns the runs as index ranges.
/// A run ends before a sample whose layout differs from the run's, which
/// shows a counter reset (a hint of `CounterReset`, or counts that went
/// down for a counter histogram; a `NotCounterReset` hint is not trusted,
/// as samples may have been merged out of order), or which switches
/// between gauge and counter.
pub fn split_runs(
    samples: &[(i64, FloatHistogram)],
    max_samples: usize,
) -> Vec<std::ops::Range<usize>> {
    let max_samples = max_samples.clamp(1, MAX_HISTOGRAM_SAMPLES);
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..samples.len() {
        if i - start >= max_samples || must_cut(&samples[i - 1].1, &samples[i].1) {
            runs.push(start..i);
            start = i;
        }
    }
    if start < samples.len() {
        runs.push(start..samples.len());
    }
    runs
}

/// Whether two histograms can share a chunk's layout: same schema, zero
/// threshold and custom bounds. Their buckets may differ: a chunk stores
/// the union of its samples' buckets, a sample's missing ones as 0 (as
/// Prometheus recodes a chunk when a bucket appears).
fn compatible(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    a.schema == b.schema
        && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
        && a.custom_values.len() == b.custom_values.len()
        && a.custom_values
            .iter()
            .zip(&b.custom_values)
            .all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The spans naming exactly `indexes` (ascending, unique).
fn spans_of(indexes: &[i64]) -> Result<Vec<Span>, ChunkError> {
    let mut spans: Vec<Span> = Vec::new();
    let mut end: Option<i64> = None;
    for &i in indexes {
        match (end, spans.last_mut()) {
            (Some(e), Some(last)) if e == i => last.length += 1,
            _ => {
                let offset = i - end.unwrap_or(0);
                let offset = i32::try_from(offset)
                    .map_err(|_| ChunkError::new("histogram bucket index out of range"))?;
                spans.push(Span { offset, length: 1 });
            }
        }
        end = Some(i + 1);
    }
    Ok(spans)
}

/// The union of the samples' bucket indexes on one side, ascending.
fn union_indexes<'a>(spans: impl Iterator<Item = &'a [Span]>) -> Vec<i64> {
    let mut all = std::collections::BTreeSet::new();
    for s in spans {
        all.extend(bucket_indexes(s));
    }
    all.into_iter().collect()
}

/// `h`'s counts at `indexes` (0 where `h` has no bucket).
fn expand(spans: &[Span], buckets: &[f64], indexes: &[i64]) -> Vec<f64> {
    let own: std::collections::HashMap<i64, f64> =
        bucket_indexes(spans).zip(buckets.iter().copied()).collect();
    indexes
        .iter()
        .map(|i| own.get(i).copied().unwrap_or(0.0))
        .collect()
}

/// Whether `next` cannot share a chunk with `previous`.
pub fn must_cut(previous: &FloatHistogram, next: &FloatHistogram) -> bool {
    if !compatible(previous, next) {
        return true;
    }
    let gauge = |h: &FloatHistogram| h.counter_reset_hint == CounterResetHint::Gauge;
    if gauge(previous) != gauge(next) {
        return true;
    }
    if gauge(next) {
        return false;
    }
    is_reset(previous, next)
}

/// A counter reset between two counter histograms of one layout.
fn is_reset(previous: &FloatHistogram, next: &FloatHistogram) -> bool {
    if next.counter_reset_hint == CounterResetHint::CounterReset {
        return true;
    }
    let mut unknown = next.clone();
    unknown.counter_reset_hint = CounterResetHint::Unknown;
    unknown.detect_reset(previous)
}

/// The hint the first sample of a run gets: gauge for gauges, a counter
/// reset when `previous` (the sample before the run, if any) shows one,
/// else the sample's own hint unless that was "not a reset" (which only
/// held against a sample that may now be elsewhere).
pub fn first_hint(previous: Option<&FloatHistogram>, first: &FloatHistogram) -> CounterResetHint {
    match first.counter_reset_hint {
        CounterResetHint::Gauge => CounterResetHint::Gauge,
        CounterResetHint::CounterReset => CounterResetHint::CounterReset,
        _ => match previous {
            Some(p) if p.counter_reset_hint != CounterResetHint::Gauge && is_reset(p, first) => {
                CounterResetHint::CounterReset
            }
            _ => CounterResetHint::Unknown,
        },
    }
}

/// Encodes one run (1..=[`MAX_HISTOGRAM_SAMPLES`] samples of one layout,
/// ascending timestamps) with `hint` for the first sample, appending to
/// `out`. `integer` records that the samples were integer histograms.
pub fn encode(
    samples: &[(i64, FloatHistogram)],
    hint: CounterResetHint,
    integer: bool,
    out: &mut Vec<u8>,
) -> Result<(), ChunkError> {
    let Some((_, first)) = samples.first() else {
        return Err(ChunkError::new("a histogram chunk needs a sample"));
    };
    if samples.len() > MAX_HISTOGRAM_SAMPLES {
        return Err(ChunkError::new("too many samples for a histogram chunk"));
    }
    if samples.iter().any(|(_, h)| !compatible(h, first)) {
        return Err(ChunkError::new(
            "histogram chunk samples differ in schema or bounds",
        ));
    }
    if samples.iter().any(|(_, h)| {
        h.positive_buckets.len()
            != h.positive_spans
                .iter()
                .map(|s| s.length as usize)
                .sum::<usize>()
            || h.negative_buckets.len()
                != h.negative_spans
                    .iter()
                    .map(|s| s.length as usize)
                    .sum::<usize>()
    }) {
        return Err(ChunkError::new("histogram buckets disagree with the spans"));
    }
    // The chunk's layout: every bucket any sample has.
    let positive = union_indexes(samples.iter().map(|(_, h)| h.positive_spans.as_slice()));
    let negative = union_indexes(samples.iter().map(|(_, h)| h.negative_spans.as_slice()));
    if positive.len() > MAX_BUCKETS
        || negative.len() > MAX_BUCKETS
        || first.custom_values.len() > MAX_BUCKETS
    {
        return Err(ChunkError::new("histogram has too many buckets"));
    }
    let positive_spans = spans_of(&positive)?;
    let negative_spans = spans_of(&negative)?;
    let expanded: Vec<(Vec<f64>, Vec<f64>)> = samples
        .iter()
        .map(|(_, h)| {
            (
                expand(&h.positive_spans, &h.positive_buckets, &positive),
                expand(&h.negative_spans, &h.negative_buckets, &negative),
            )
        })
        .collect();
    // A counter's count is nearly always the sum of its buckets (integer
    // histograms without NaN observations): then it costs nothing.
    let count_derived = samples
        .iter()
        .zip(&expanded)
        .all(|((_, h), (p, n))| derived_count(h.zero_count, p, n).to_bits() == h.count.to_bits());
    put_uvarint(out, samples.len() as u64);
    out.push(
        hint_bits(hint)
            | if integer { FLAG_INTEGER } else { 0 }
            | if count_derived { FLAG_DERIVED_COUNT } else { 0 },
    );
    put_varint(out, i64::from(first.schema));
    out.extend_from_slice(&first.zero_threshold.to_bits().to_le_bytes());
    for spans in [&positive_spans, &negative_spans] {
        put_uvarint(out, spans.len() as u64);
        for span in spans {
            put_varint(out, i64::from(span.offset));
            put_uvarint(out, u64::from(span.length));
        }
    }
    put_uvarint(out, first.custom_values.len() as u64);
    for bound in &first.custom_values {
        out.extend_from_slice(&bound.to_bits().to_le_bytes());
    }
    let mut column: Vec<(i64, f64)> = samples.iter().map(|(t, _)| (*t, 0.0)).collect();
    let mut section = Vec::new();
    dense::encode_timestamps(&column, &mut section);
    put_uvarint(out, section.len() as u64);
    out.extend_from_slice(&section);
    // The sum: the Dense section or the predicted XOR, whichever is
    // smaller (written in its place below).
    let sums: Vec<f64> = samples.iter().map(|(_, h)| h.sum).collect();
    let mut predicted = Vec::new();
    encode_sum_predicted(&sums, &mut predicted);
    for (slot, &sum) in column.iter_mut().zip(&sums) {
        slot.1 = sum;
    }
    let mut dense_sum = Vec::new();
    dense::encode_values(&column, &mut dense_sum);
    let best = if predicted.len() < dense_sum.len() {
        predicted
    } else {
        dense_sum
    };
    let mut sum_bytes = Vec::new();
    put_uvarint(&mut sum_bytes, best.len() as u64);
    sum_bytes.extend_from_slice(&best);
    let mut put_column = |out: &mut Vec<u8>, value: &dyn Fn(usize, &FloatHistogram) -> f64| {
        for (i, (slot, (_, h))) in column.iter_mut().zip(samples).enumerate() {
            slot.1 = value(i, h);
        }
        section.clear();
        dense::encode_values(&column, &mut section);
        put_uvarint(out, section.len() as u64);
        out.extend_from_slice(&section);
    };
    if !count_derived {
        put_column(out, &|_, h| h.count);
    }
    put_column(out, &|_, h| h.zero_count);
    out.extend_from_slice(&sum_bytes);
    for b in 0..positive.len() {
        put_column(out, &|i, _| expanded[i].0[b]);
    }
    for b in 0..negative.len() {
        put_column(out, &|i, _| expanded[i].1[b]);
    }
    Ok(())
}

/// Reads a length-prefixed section.
fn section<'a>(bytes: &'a [u8], position: &mut usize) -> Result<&'a [u8], ChunkError> {
    let length = get_uvarint(bytes, position)?;
    let end = usize::try_from(length)
        .ok()
        .and_then(|length| position.checked_add(length))
        .filter(|&end| end <= bytes.len())
        .ok_or(ChunkError::new("histogram chunk section past the end"))?;
    let slice = &bytes[*position..end];
    *position = end;
    Ok(slice)
}

fn get_count(bytes: &[u8], position: &mut usize, what: &'static str) -> Result<usize, ChunkError> {
    let n = get_uvarint(bytes, position)?;
    if n > MAX_BUCKETS as u64 {
        return Err(ChunkError::new(what));
    }
    Ok(n as usize)
}

/// Reads spans (count, then offset and length each).
pub(crate) fn get_spans(
    bytes: &[u8],
    position: &mut usize,
) -> Result<(Vec<Span>, usize), ChunkError> {
    let n = get_count(bytes, position, "too many histogram spans")?;
    let mut spans = Vec::with_capacity(n.min(256));
    let mut n_buckets: u64 = 0;
    for _ in 0..n {
        let offset = i32::try_from(get_varint(bytes, position)?)
            .map_err(|_| ChunkError::new("histogram span offset out of range"))?;
        let length = u32::try_from(get_uvarint(bytes, position)?)
            .map_err(|_| ChunkError::new("histogram span length out of range"))?;
        n_buckets += u64::from(length);
        if n_buckets > MAX_BUCKETS as u64 {
            return Err(ChunkError::new("histogram spans name too many buckets"));
        }
        spans.push(Span { offset, length });
    }
    Ok((spans, n_buckets as usize))
}

/// The layout, flags and sample count of a chunk, without its columns.
struct Header {
    n: usize,
    flags: u8,
    template: FloatHistogram,
    n_positive: usize,
    n_negative: usize,
}

fn read_header(bytes: &[u8], position: &mut usize) -> Result<Header, ChunkError> {
    let n = get_uvarint(bytes, position)?;
    if n == 0 || n > MAX_HISTOGRAM_SAMPLES as u64 {
        return Err(ChunkError::new("histogram chunk sample count out of range"));
    }
    let flags = get_byte(bytes, position)?;
    if flags & !(FLAG_HINT_MASK | FLAG_INTEGER | FLAG_DERIVED_COUNT) != 0 {
        return Err(ChunkError::new("unknown histogram chunk flags"));
    }
    let schema = i32::try_from(get_varint(bytes, position)?)
        .ok()
        .filter(|s| is_valid_schema(*s))
        .ok_or(ChunkError::new("histogram chunk schema out of range"))?;
    let zero_threshold = f64::from_bits(get_u64_le(bytes, position)?);
    let (positive_spans, n_positive) = get_spans(bytes, position)?;
    let (negative_spans, n_negative) = get_spans(bytes, position)?;
    let n_custom = get_count(bytes, position, "too many custom bounds")?;
    let mut custom_values = Vec::with_capacity(n_custom.min(256));
    for _ in 0..n_custom {
        custom_values.push(f64::from_bits(get_u64_le(bytes, position)?));
    }
    Ok(Header {
        n: n as usize,
        flags,
        template: FloatHistogram {
            schema,
            zero_threshold,
            positive_spans,
            negative_spans,
            custom_values,
            ..FloatHistogram::default()
        },
        n_positive,
        n_negative,
    })
}

/// The number of samples a chunk holds, from its header.
pub fn num_samples(bytes: &[u8]) -> Result<usize, ChunkError> {
    let mut position = 0;
    let n = get_uvarint(bytes, &mut position)?;
    if n == 0 || n > MAX_HISTOGRAM_SAMPLES as u64 {
        return Err(ChunkError::new("histogram chunk sample count out of range"));
    }
    Ok(n as usize)
}

/// Whether the chunk's samples were integer histograms.
pub fn is_integer(bytes: &[u8]) -> Result<bool, ChunkError> {
    let mut position = 0;
    Ok(read_header(bytes, &mut position)?.flags & FLAG_INTEGER != 0)
}

/// Decodes a whole chunk. The first sample carries the chunk's hint; the
/// others `Gauge` in a gauge chunk, `NotCounterReset` otherwise.
pub fn decode(bytes: &[u8]) -> Result<Vec<(i64, FloatHistogram)>, ChunkError> {
    let mut position = 0;
    let header = read_header(bytes, &mut position)?;
    let n = header.n;
    let timestamps = dense::decode_timestamps(section(bytes, &mut position)?, n)?;
    let column = |position: &mut usize| -> Result<Vec<f64>, ChunkError> {
        dense::decode_values(section(bytes, position)?, n)
    };
    let count = if header.flags & FLAG_DERIVED_COUNT == 0 {
        Some(column(&mut position)?)
    } else {
        None
    };
    let zero_count = column(&mut position)?;
    let sum_section = section(bytes, &mut position)?;
    let sum = if sum_section.first() == Some(&SUM_PREDICTED_XOR) {
        decode_sum_predicted(sum_section, n)?
    } else {
        dense::decode_values(sum_section, n)?
    };
    let mut positive = Vec::with_capacity(header.n_positive);
    for _ in 0..header.n_positive {
        positive.push(column(&mut position)?);
    }
    let mut negative = Vec::with_capacity(header.n_negative);
    for _ in 0..header.n_negative {
        negative.push(column(&mut position)?);
    }
    if position != bytes.len() {
        return Err(ChunkError::new("bytes after the last histogram column"));
    }
    let first_hint = CounterResetHint::from_u8(header.flags & FLAG_HINT_MASK)
        .ok_or(ChunkError::new("bad histogram hint"))?;
    let later_hint = if first_hint == CounterResetHint::Gauge {
        CounterResetHint::Gauge
    } else {
        CounterResetHint::NotCounterReset
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut h = header.template.clone();
        h.counter_reset_hint = if i == 0 { first_hint } else { later_hint };
        h.zero_count = zero_count[i];
        h.sum = sum[i];
        h.positive_buckets = positive.iter().map(|c| c[i]).collect();
        h.negative_buckets = negative.iter().map(|c| c[i]).collect();
        h.count = match &count {
            Some(count) => count[i],
            None => derived_count(zero_count[i], &h.positive_buckets, &h.negative_buckets),
        };
        out.push((timestamps[i], h));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(step: f64, schema: i32) -> FloatHistogram {
        FloatHistogram {
            schema,
            zero_threshold: 0.001,
            zero_count: step,
            count: step * 10.0,
            sum: step * 3.25,
            positive_spans: vec![
                Span {
                    offset: -2,
                    length: 3,
                },
                Span {
                    offset: 2,
                    length: 2,
                },
            ],
            negative_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![step, 2.0 * step, step, 2.0 * step, step],
            negative_buckets: vec![step, 0.0],
            ..FloatHistogram::default()
        }
    }

    #[test]
    fn round_trip_keeps_every_bit() {
        let mut samples: Vec<(i64, FloatHistogram)> = (0..120)
            .map(|i| (1000 + i * 15_000, histogram(i as f64, 3)))
            .collect();
        samples[7].1.sum = model::STALE_NAN;
        samples[8].1.sum = -0.0;
        samples[9].1.sum = 0.1 + 0.2;
        let mut bytes = Vec::new();
        encode(&samples, CounterResetHint::Unknown, true, &mut bytes).unwrap();
        assert!(is_integer(&bytes).unwrap());
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), samples.len());
        for ((t, h), (t2, h2)) in samples.iter().zip(&back) {
            assert_eq!(t, t2);
            assert_eq!(h.sum.to_bits(), h2.sum.to_bits());
            assert_eq!(h.positive_buckets, h2.positive_buckets);
            assert_eq!(h.negative_buckets, h2.negative_buckets);
            assert!(h.same_layout(h2));
        }
        assert_eq!(
            back[1].1.counter_reset_hint,
            CounterResetHint::NotCounterReset
        );
        // A steady counter histogram of 7 buckets: a few bytes a sample.
        let per_sample = bytes.len() as f64 / samples.len() as f64;
        assert!(per_sample < 8.0, "{per_sample} bytes per sample");
    }

    #[test]
    fn runs_cut_at_reset_layout_and_gauge() {
        let mut samples: Vec<(i64, FloatHistogram)> =
            (0..10).map(|i| (i, histogram(i as f64 + 1.0, 0))).collect();
        samples[4].1 = histogram(1.0, 0); // counter reset
        for (i, sample) in samples.iter_mut().enumerate().skip(7) {
            sample.1 = histogram(i as f64, 1); // schema change
        }
        assert_eq!(split_runs(&samples, 120), vec![0..4, 4..7, 7..10]);
        assert_eq!(
            first_hint(Some(&samples[3].1), &samples[4].1),
            CounterResetHint::CounterReset
        );
        assert_eq!(split_runs(&samples, 3), vec![0..3, 3..4, 4..7, 7..10]);
        let mut gauges = samples[..4].to_vec();
        for (_, h) in &mut gauges {
            h.counter_reset_hint = CounterResetHint::Gauge;
        }
        gauges.reverse();
        for (i, (t, _)) in gauges.iter_mut().enumerate() {
            *t = i as i64;
        }
        assert_eq!(split_runs(&gauges, 120), vec![0..4]);
    }

    #[test]
    fn new_buckets_widen_the_chunk_layout_instead_of_cutting() {
        let a = histogram(1.0, 0);
        let mut b = histogram(2.0, 0);
        // A bucket appears at index 5, between the spans and beyond them.
        b.positive_spans = vec![
            Span {
                offset: -2,
                length: 3,
            },
            Span {
                offset: 2,
                length: 3,
            },
        ];
        b.positive_buckets = vec![2.0, 4.0, 2.0, 4.0, 2.0, 1.0];
        b.count += 1.0;
        let samples = vec![(0, a.clone()), (1, b.clone())];
        assert_eq!(split_runs(&samples, 120), vec![0..2]);
        let mut bytes = Vec::new();
        encode(&samples, CounterResetHint::Unknown, false, &mut bytes).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back[1].1.positive_spans, b.positive_spans);
        assert_eq!(back[1].1.positive_buckets, b.positive_buckets);
        // The first sample gets the new bucket as an explicit zero.
        assert_eq!(
            back[0].1.positive_buckets,
            vec![1.0, 2.0, 1.0, 2.0, 1.0, 0.0]
        );
        assert_eq!(back[0].1.buckets(), a.buckets());
    }

    #[test]
    fn a_count_that_sums_the_buckets_is_not_stored() {
        let mut samples: Vec<(i64, FloatHistogram)> = (0..50)
            .map(|i| (i * 1000, histogram(i as f64 + 1.0, 0)))
            .collect();
        let mut apart = Vec::new();
        encode(&samples, CounterResetHint::Unknown, false, &mut apart).unwrap();
        for (_, h) in &mut samples {
            h.count = h.zero_count
                + h.positive_buckets.iter().sum::<f64>()
                + h.negative_buckets.iter().sum::<f64>();
        }
        let mut derived = Vec::new();
        encode(&samples, CounterResetHint::Unknown, false, &mut derived).unwrap();
        assert!(derived.len() < apart.len());
        assert_ne!(derived[1] & FLAG_DERIVED_COUNT, 0);
        assert_eq!(apart[1] & FLAG_DERIVED_COUNT, 0);
        let back = decode(&derived).unwrap();
        for ((_, h), (_, b)) in samples.iter().zip(&back) {
            assert_eq!(h.count.to_bits(), b.count.to_bits());
        }
    }

    #[test]
    fn full_precision_sums_round_trip_through_the_predicted_xor() {
        let mut sum = 0.0f64;
        let mut samples: Vec<(i64, FloatHistogram)> = (0..200)
            .map(|i| {
                sum += 10.0 + f64::from((i * 7919) % 13) / 7.3;
                let mut h = histogram(1.0, 0);
                h.sum = sum;
                (i64::from(i) * 15_000, h)
            })
            .collect();
        samples[50].1.sum = f64::NAN;
        samples[51].1.sum = f64::INFINITY;
        samples[120].1.sum = model::STALE_NAN;
        let sums: Vec<f64> = samples.iter().map(|(_, h)| h.sum).collect();
        let mut predicted = Vec::new();
        encode_sum_predicted(&sums, &mut predicted);
        let back = decode_sum_predicted(&predicted, sums.len()).unwrap();
        assert!(
            sums.iter()
                .zip(&back)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        for cut in 1..predicted.len() - 1 {
            let _ = decode_sum_predicted(&predicted[..cut], sums.len());
        }
        let mut bytes = Vec::new();
        encode(&samples, CounterResetHint::Unknown, false, &mut bytes).unwrap();
        let back = decode(&bytes).unwrap();
        assert!(
            samples
                .iter()
                .zip(&back)
                .all(|((_, a), (_, b))| a.sum.to_bits() == b.sum.to_bits())
        );
    }

    #[test]
    fn corrupt_chunks_are_errors() {
        let samples: Vec<(i64, FloatHistogram)> = (0..5).map(|i| (i, histogram(1.0, 0))).collect();
        let mut bytes = Vec::new();
        encode(&samples, CounterResetHint::Unknown, false, &mut bytes).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "prefix of {cut} bytes");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        let mut flags = bytes.clone();
        flags[1] |= 0x80;
        assert!(decode(&flags).is_err());
    }
}
