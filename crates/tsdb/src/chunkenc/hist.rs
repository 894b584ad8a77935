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
use super::{best_rice, bit_len, read_rice, write_rice, zigzag_decode, zigzag_encode};
use model::histogram::{CounterResetHint, FloatHistogram, Span, bucket_indexes, is_valid_schema};

/// The one-byte encoding id stored next to a histogram chunk.
pub const HISTOGRAM_ENCODING: u8 = 4;

/// The most samples one histogram chunk holds.
pub const MAX_HISTOGRAM_SAMPLES: usize = u16::MAX as usize;

/// Most values (samples × (spans + buckets + count, zero count, sum)) one
/// chunk may decode to: 16M, 128 MiB of floats.
pub(crate) const MAX_DECODED_CELLS: u64 = 1 << 24;

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

/// Every bucket count of the chunk is a whole number in `0..2^53`: the
/// bucket columns are one bit stream of integer steps
/// ([`encode_integer_buckets`]) instead of one Dense section each.
const FLAG_INTEGER_BUCKETS: u8 = 0b1_0000;

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

/// The largest bucket count the integer bucket stream holds, exclusive:
/// every integer below it is exact in f64.
const INTEGER_LIMIT: i64 = 1 << 53;

/// `v` as an integer bucket count, if it is one bit for bit (so neither
/// `-0.0` nor NaN nor a fraction).
fn as_integer_count(v: f64) -> Option<i64> {
    if !(0.0..INTEGER_LIMIT as f64).contains(&v) {
        return None;
    }
    let i = v as i64;
    ((i as f64).to_bits() == v.to_bits()).then_some(i)
}

/// Column modes of the integer bucket stream (2 bits each).
const STEP_CONSTANT: u64 = 0;
const STEP_RICE_FROM_MIN: u64 = 1;
const STEP_RICE_CENTERED: u64 = 2;
const STEP_FIXED_FROM_MIN: u64 = 3;

/// An unsigned integer in the bit stream: its bit length in 6 bits (0 for
/// zero), then that many bits. Only for values below 2^63.
fn write_bit_uvarint(w: &mut BitWriter, out: &mut Vec<u8>, v: u64) {
    let len = bit_len(v).min(63);
    w.write(out, u64::from(len), 6);
    w.write(out, v, len);
}

fn read_bit_uvarint(bytes: &[u8], position: &mut usize) -> Result<u64, ChunkError> {
    let len = read_bits(bytes, position, 6)? as u32;
    read_bits(bytes, position, len)
}

/// Writes one bucket column of the integer bucket stream: 2 bits of
/// mode, the first count, then the steps between neighbouring counts in
/// whichever mode costs the fewest bits (`docs/format/chunks.md`).
fn encode_integer_column(w: &mut BitWriter, out: &mut Vec<u8>, counts: &[i64]) {
    let steps: Vec<i64> = counts.windows(2).map(|p| p[1] - p[0]).collect();
    let first = counts.first().copied().unwrap_or(0) as u64;
    let signed_cost = |v: i64| 6 + u64::from(bit_len(zigzag_encode(v)));
    let Some(&min) = steps.iter().min() else {
        w.write(out, STEP_CONSTANT, 2);
        write_bit_uvarint(w, out, first);
        write_bit_uvarint(w, out, 0);
        return;
    };
    if steps.iter().all(|&d| d == min) {
        w.write(out, STEP_CONSTANT, 2);
        write_bit_uvarint(w, out, first);
        write_bit_uvarint(w, out, zigzag_encode(min));
        return;
    }
    let from_min: Vec<u64> = steps.iter().map(|&d| d.wrapping_sub(min) as u64).collect();
    let mut sorted = steps.clone();
    sorted.sort_unstable();
    let center = sorted[sorted.len() / 2];
    let centered: Vec<u64> = steps
        .iter()
        .map(|&d| zigzag_encode(d.wrapping_sub(center)))
        .collect();
    let (k_min, cost_min) = best_rice(&from_min);
    let (k_centered, cost_centered) = best_rice(&centered);
    let width = bit_len(from_min.iter().copied().max().unwrap_or(0));
    let cost_fixed = u64::from(width) * steps.len() as u64;
    let candidates = [
        (cost_min + signed_cost(min), STEP_RICE_FROM_MIN),
        (cost_centered + signed_cost(center), STEP_RICE_CENTERED),
        (cost_fixed + signed_cost(min), STEP_FIXED_FROM_MIN),
    ];
    let mode = candidates
        .iter()
        .min_by_key(|c| c.0)
        .map_or(STEP_FIXED_FROM_MIN, |c| c.1);
    w.write(out, mode, 2);
    write_bit_uvarint(w, out, first);
    match mode {
        STEP_RICE_FROM_MIN => {
            write_bit_uvarint(w, out, zigzag_encode(min));
            w.write(out, u64::from(k_min), 6);
            for &u in &from_min {
                write_rice(w, out, u, k_min);
            }
        }
        STEP_RICE_CENTERED => {
            write_bit_uvarint(w, out, zigzag_encode(center));
            w.write(out, u64::from(k_centered), 6);
            for &u in &centered {
                write_rice(w, out, u, k_centered);
            }
        }
        _ => {
            write_bit_uvarint(w, out, zigzag_encode(min));
            w.write(out, u64::from(width), 6);
            for &u in &from_min {
                w.write(out, u, width);
            }
        }
    }
}

/// Reads one column written by [`encode_integer_column`] into `column`.
fn decode_integer_column(
    bytes: &[u8],
    position: &mut usize,
    n: usize,
    column: &mut Vec<f64>,
) -> Result<(), ChunkError> {
    let mode = read_bits(bytes, position, 2)?;
    let mut value = read_bit_uvarint(bytes, position)? as i64;
    let base = zigzag_decode(read_bit_uvarint(bytes, position)?);
    let push = |column: &mut Vec<f64>, value: i64| {
        if (0..INTEGER_LIMIT).contains(&value) {
            column.push(value as f64);
            Ok(())
        } else {
            Err(ChunkError::new("histogram bucket count out of range"))
        }
    };
    push(column, value)?;
    let k = if mode == STEP_CONSTANT {
        0
    } else {
        read_bits(bytes, position, 6)? as u32
    };
    for _ in 1..n {
        let step = match mode {
            STEP_CONSTANT => base,
            STEP_RICE_FROM_MIN => base.wrapping_add(read_rice(bytes, position, k)? as i64),
            STEP_RICE_CENTERED => base.wrapping_add(zigzag_decode(read_rice(bytes, position, k)?)),
            _ => base.wrapping_add(read_bits(bytes, position, k)? as i64),
        };
        value = value.wrapping_add(step);
        push(column, value)?;
    }
    Ok(())
}

/// The integer bucket stream: every column, one after the other, in one
/// bit stream padded to a byte at the end.
fn encode_integer_buckets(columns: &[Vec<i64>], out: &mut Vec<u8>) {
    let mut section = Vec::new();
    let mut w = BitWriter::default();
    for column in columns {
        encode_integer_column(&mut w, &mut section, column);
    }
    put_uvarint(out, section.len() as u64);
    out.extend_from_slice(&section);
}

fn decode_integer_buckets(
    section: &[u8],
    n: usize,
    n_columns: usize,
) -> Result<Vec<Vec<f64>>, ChunkError> {
    let mut position = 0;
    let mut columns = Vec::with_capacity(n_columns);
    for _ in 0..n_columns {
        let mut column = Vec::with_capacity(n);
        decode_integer_column(section, &mut position, n, &mut column)?;
        columns.push(column);
    }
    if position.div_ceil(8) != section.len() {
        return Err(ChunkError::new("bytes after the histogram bucket stream"));
    }
    Ok(columns)
}

fn hint_bits(hint: CounterResetHint) -> u8 {
    hint as u8
}

/// Where a stream of histogram samples (ascending timestamps) must be cut
/// into chunks of at most `max_samples`: returns the runs as index ranges.
/// A run ends before a sample whose layout differs from the run's, which
/// shows a counter reset (a hint of `CounterReset`, or counts that went
/// down for a counter histogram; a `NotCounterReset` hint is not trusted,
/// as samples may have been merged out of order), which switches
/// between gauge and counter, or which follows one of the series' float
/// samples (`float_times`, ascending: as Prometheus's head starts a new
/// histogram chunk after a float chunk).
pub fn split_runs(
    samples: &[(i64, FloatHistogram)],
    max_samples: usize,
    float_times: &[i64],
) -> Vec<std::ops::Range<usize>> {
    let max_samples = max_samples.clamp(1, MAX_HISTOGRAM_SAMPLES);
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..samples.len() {
        if i - start >= max_samples
            || float_between(float_times, samples[i - 1].0, samples[i].0)
            || must_cut(&samples[i - 1].1, &samples[i].1)
        {
            runs.push(start..i);
            start = i;
        }
    }
    if start < samples.len() {
        runs.push(start..samples.len());
    }
    runs
}

/// Whether a float timestamp lies strictly between `a` and `b` (`a < b`).
pub fn float_between(float_times: &[i64], a: i64, b: i64) -> bool {
    let i = float_times.partition_point(|&t| t <= a);
    float_times.get(i).is_some_and(|&t| t < b)
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
pub(crate) fn is_reset(previous: &FloatHistogram, next: &FloatHistogram) -> bool {
    if next.counter_reset_hint == CounterResetHint::CounterReset {
        return true;
    }
    let mut unknown = next.clone();
    unknown.counter_reset_hint = CounterResetHint::Unknown;
    unknown.detect_reset(previous)
}

/// The hint the first sample of a run gets, which the chunk header keeps
/// (`docs/format/chunks.md`): gauge for gauges; a counter reset when the
/// sample says so or `previous` (the series' sample before the run, if
/// it is a histogram right before it) shows one; "not a reset" when the
/// sample continues `previous` (same schema, zero threshold and custom
/// bounds, no reset: the run was cut for size or at a block boundary, as
/// Prometheus's head writes a chunk header); otherwise unknown. Without a
/// `previous`, the sample's own hint stays unless it is "not a reset"
/// (which only held against a sample that may now be elsewhere) and
/// `carried` is false: `carried` is for samples read back from storage,
/// whose hint is a chunk header's or a chunk's later sample's.
pub fn first_hint(
    previous: Option<&FloatHistogram>,
    first: &FloatHistogram,
    carried: bool,
) -> CounterResetHint {
    match first.counter_reset_hint {
        CounterResetHint::Gauge => CounterResetHint::Gauge,
        CounterResetHint::CounterReset => CounterResetHint::CounterReset,
        hint => match previous {
            Some(p) if p.counter_reset_hint != CounterResetHint::Gauge => {
                if is_reset(p, first) {
                    CounterResetHint::CounterReset
                } else if compatible(p, first) {
                    CounterResetHint::NotCounterReset
                } else {
                    CounterResetHint::Unknown
                }
            }
            Some(_) => CounterResetHint::Unknown,
            None if carried => hint,
            None => CounterResetHint::Unknown,
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
    encode_as(samples, hint, integer, true, out)
}

/// [`encode`], with the integer bucket stream allowed or not (not: the
/// layout writers before it made, which tests keep readable).
fn encode_as(
    samples: &[(i64, FloatHistogram)],
    hint: CounterResetHint,
    integer: bool,
    integer_buckets: bool,
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
    // Whole-number counts (integer histograms, and most float ones) go
    // into one bit stream of steps.
    let integer_columns: Option<Vec<Vec<i64>>> = if !integer_buckets {
        None
    } else {
        (0..positive.len())
            .map(|b| (b, true))
            .chain((0..negative.len()).map(|b| (b, false)))
            .map(|(b, positive_side)| {
                expanded
                    .iter()
                    .map(|(p, n)| as_integer_count(if positive_side { p[b] } else { n[b] }))
                    .collect::<Option<Vec<i64>>>()
            })
            .collect()
    };
    put_uvarint(out, samples.len() as u64);
    out.push(
        hint_bits(hint)
            | if integer { FLAG_INTEGER } else { 0 }
            | if count_derived { FLAG_DERIVED_COUNT } else { 0 }
            | if integer_columns.is_some() {
                FLAG_INTEGER_BUCKETS
            } else {
                0
            },
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
    if let Some(columns) = &integer_columns {
        encode_integer_buckets(columns, out);
        return Ok(());
    }
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
    if flags & !(FLAG_HINT_MASK | FLAG_INTEGER | FLAG_DERIVED_COUNT | FLAG_INTEGER_BUCKETS) != 0 {
        return Err(ChunkError::new("unknown histogram chunk flags"));
    }
    let schema = i32::try_from(get_varint(bytes, position)?)
        .ok()
        .filter(|s| is_valid_schema(*s))
        .ok_or(ChunkError::new("histogram chunk schema out of range"))?;
    let zero_threshold = f64::from_bits(get_u64_le(bytes, position)?);
    let (positive_spans, n_positive) = get_spans(bytes, position)?;
    let (negative_spans, n_negative) = get_spans(bytes, position)?;
    // What decoding copies per sample (spans, buckets, count, zero count,
    // sum) times the samples stays under a budget far above any histogram
    // osprey writes (2,048 samples a block chunk, a few hundred buckets),
    // so a corrupt header cannot ask for gigabytes.
    let columns =
        (positive_spans.len() + negative_spans.len() + n_positive + n_negative + 3) as u64;
    if n.saturating_mul(columns) > MAX_DECODED_CELLS {
        return Err(ChunkError::new("histogram chunk too large to decode"));
    }
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

/// Decodes a whole chunk, with the hints Prometheus's chunk reader hands
/// out: `Gauge` throughout a gauge chunk; otherwise `Unknown` for the
/// first sample and `NotCounterReset` for the others.
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
    let (positive, negative) = if header.flags & FLAG_INTEGER_BUCKETS != 0 {
        let mut all = decode_integer_buckets(
            section(bytes, &mut position)?,
            n,
            header.n_positive + header.n_negative,
        )?;
        let negative = all.split_off(header.n_positive);
        (all, negative)
    } else {
        let mut positive = Vec::with_capacity(header.n_positive);
        for _ in 0..header.n_positive {
            positive.push(column(&mut position)?);
        }
        let mut negative = Vec::with_capacity(header.n_negative);
        for _ in 0..header.n_negative {
            negative.push(column(&mut position)?);
        }
        (positive, negative)
    };
    if position != bytes.len() {
        return Err(ChunkError::new("bytes after the last histogram column"));
    }
    let first_hint = CounterResetHint::from_u8(header.flags & FLAG_HINT_MASK)
        .ok_or(ChunkError::new("bad histogram hint"))?;
    // As Prometheus's chunk reader hands hints out: gauge throughout a
    // gauge chunk; otherwise "unknown" for the first sample whatever the
    // header says (the sample before it may be gone, or out-of-order
    // samples and backfilled blocks may now sit between), "not a reset"
    // for the rest. The header keeps what the writer knew.
    let (first_hint, later_hint) = if first_hint == CounterResetHint::Gauge {
        (CounterResetHint::Gauge, CounterResetHint::Gauge)
    } else {
        (CounterResetHint::Unknown, CounterResetHint::NotCounterReset)
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
        assert_eq!(split_runs(&samples, 120, &[]), vec![0..4, 4..7, 7..10]);
        assert_eq!(
            first_hint(Some(&samples[3].1), &samples[4].1, false),
            CounterResetHint::CounterReset
        );
        assert_eq!(split_runs(&samples, 3, &[]), vec![0..3, 3..4, 4..7, 7..10]);
        // Cut for size: the next run continues the last one.
        assert_eq!(
            first_hint(Some(&samples[2].1), &samples[3].1, false),
            CounterResetHint::NotCounterReset
        );
        // A schema change counts as a reset (as Prometheus 2.42 detects it).
        assert_eq!(
            first_hint(Some(&samples[6].1), &samples[7].1, false),
            CounterResetHint::CounterReset
        );
        // After a gauge histogram: unknown.
        let mut gauge = samples[2].1.clone();
        gauge.counter_reset_hint = CounterResetHint::Gauge;
        assert_eq!(
            first_hint(Some(&gauge), &samples[3].1, false),
            CounterResetHint::Unknown
        );
        // A float between two histograms ends the run.
        let spaced: Vec<(i64, FloatHistogram)> =
            samples.iter().map(|(t, h)| (t * 10, h.clone())).collect();
        assert_eq!(
            split_runs(&spaced, 120, &[15]),
            vec![0..2, 2..4, 4..7, 7..10]
        );
        assert_eq!(
            split_runs(&spaced, 120, &[-5, 200]),
            vec![0..4, 4..7, 7..10]
        );
        // Without a previous sample, only a carried "not a reset" stays.
        let mut lone = samples[5].1.clone();
        lone.counter_reset_hint = CounterResetHint::NotCounterReset;
        assert_eq!(
            first_hint(None, &lone, true),
            CounterResetHint::NotCounterReset
        );
        assert_eq!(first_hint(None, &lone, false), CounterResetHint::Unknown);
        let mut gauges = samples[..4].to_vec();
        for (_, h) in &mut gauges {
            h.counter_reset_hint = CounterResetHint::Gauge;
        }
        gauges.reverse();
        for (i, (t, _)) in gauges.iter_mut().enumerate() {
            *t = i as i64;
        }
        assert_eq!(split_runs(&gauges, 120, &[]), vec![0..4]);
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
        assert_eq!(split_runs(&samples, 120, &[]), vec![0..2]);
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

    /// A chunk as writers before the integer bucket stream made it (every
    /// bucket a Dense section): still read, sample for sample.
    #[test]
    fn chunks_without_the_integer_bucket_stream_still_decode() {
        const OLD: &[u8] = &[
            4, 5, 6, 252, 169, 241, 210, 77, 98, 80, 63, 2, 3, 3, 4, 2, 1, 0, 2, 0, 6, 0, 208, 15,
            176, 234, 1, 8, 1, 0, 1, 10, 0, 20, 2, 168, 8, 1, 0, 1, 1, 0, 2, 2, 168, 11, 1, 2, 1,
            25, 0, 138, 5, 6, 104, 139, 0, 8, 1, 0, 1, 1, 0, 2, 2, 168, 8, 1, 0, 1, 2, 0, 4, 2,
            168, 8, 1, 0, 1, 1, 0, 2, 2, 168, 8, 1, 0, 1, 2, 0, 4, 2, 168, 8, 1, 0, 1, 1, 0, 2, 2,
            168, 8, 1, 0, 1, 1, 0, 2, 2, 168, 3, 3, 0, 0,
        ];
        let mut samples: Vec<(i64, FloatHistogram)> = (0..4)
            .map(|i| (1000 + i * 15_000, histogram(i as f64 + 1.0, 3)))
            .collect();
        samples[2].1.sum = 7.5;
        assert_eq!(OLD[1] & FLAG_INTEGER_BUCKETS, 0);
        let mut old = Vec::new();
        encode_as(
            &samples,
            CounterResetHint::CounterReset,
            true,
            false,
            &mut old,
        )
        .unwrap();
        assert_eq!(old, OLD);
        let back = decode(OLD).unwrap();
        assert_eq!(back.len(), 4);
        // The header says "reset"; the reader hands out "unknown" for a
        // chunk's first sample, as Prometheus's does.
        assert_eq!(
            OLD[1] & FLAG_HINT_MASK,
            CounterResetHint::CounterReset as u8
        );
        assert_eq!(back[0].1.counter_reset_hint, CounterResetHint::Unknown);
        for ((t, h), (t2, h2)) in samples.iter().zip(&back) {
            assert_eq!(t, t2);
            assert_eq!(h.sum.to_bits(), h2.sum.to_bits());
            assert_eq!(h.count.to_bits(), h2.count.to_bits());
            assert_eq!(h.positive_buckets, h2.positive_buckets);
            assert_eq!(h.negative_buckets, h2.negative_buckets);
        }
        // Today's writer uses the stream for the same samples, smaller.
        let mut new = Vec::new();
        encode(&samples, CounterResetHint::CounterReset, true, &mut new).unwrap();
        assert_ne!(new[1] & FLAG_INTEGER_BUCKETS, 0);
        assert!(new.len() < OLD.len());
        let again = decode(&new).unwrap();
        for ((_, a), (_, b)) in back.iter().zip(&again) {
            assert_eq!(a.positive_buckets, b.positive_buckets);
            assert_eq!(a.negative_buckets, b.negative_buckets);
            assert_eq!(a.count.to_bits(), b.count.to_bits());
        }
    }

    /// Every mode of the integer bucket stream, escapes, gauge steps that
    /// go down, and counts up to the largest exact integer.
    #[test]
    fn integer_bucket_columns_round_trip_in_every_mode() {
        let columns: Vec<Vec<i64>> = vec![
            vec![5; 100],                                       // constant
            (0..100).map(|i| 3 * i).collect(),                  // constant step
            (0..100).map(|i| i * i % 7 + i * 10).collect(),     // small steps
            (0..100).map(|i| i64::from(i % 13 == 0)).collect(), // gauge: down and up
            (0..100)
                .map(|i| if i == 50 { 1 << 40 } else { i })
                .collect(), // escapes
            (0..100).map(|i| (INTEGER_LIMIT - 1) - (99 - i)).collect(),
            (0..100).map(|i| (i * 7919) % 1000).collect(), // wide, uniform
            vec![0; 100],
        ];
        for column in &columns {
            let mut bytes = Vec::new();
            encode_integer_buckets(std::slice::from_ref(column), &mut bytes);
            let mut position = 0;
            let section = super::section(&bytes, &mut position).unwrap();
            let back = decode_integer_buckets(section, column.len(), 1).unwrap();
            let expected: Vec<f64> = column.iter().map(|&v| v as f64).collect();
            assert_eq!(back[0], expected);
            for cut in 0..section.len() {
                assert!(decode_integer_buckets(&section[..cut], column.len(), 1).is_err());
            }
        }
        let mut bytes = Vec::new();
        encode_integer_buckets(&columns, &mut bytes);
        let mut position = 0;
        let section = super::section(&bytes, &mut position).unwrap();
        let back = decode_integer_buckets(section, 100, columns.len()).unwrap();
        for (a, b) in columns.iter().zip(&back) {
            assert!(a.iter().zip(b).all(|(x, y)| *x as f64 == *y));
        }
        // A constant column costs a few bytes whatever its length.
        let mut constant = Vec::new();
        encode_integer_buckets(&[vec![12_345; 2000]], &mut constant);
        assert!(constant.len() <= 6, "{} bytes", constant.len());
    }

    #[test]
    fn fractional_or_negative_zero_buckets_keep_the_dense_columns() {
        for odd in [0.5, -0.0, -1.0, f64::NAN, 2f64.powi(53)] {
            let mut samples: Vec<(i64, FloatHistogram)> =
                (0..5).map(|i| (i, histogram(i as f64 + 1.0, 0))).collect();
            samples[3].1.positive_buckets[1] = odd;
            let mut bytes = Vec::new();
            encode(&samples, CounterResetHint::Unknown, false, &mut bytes).unwrap();
            assert_eq!(bytes[1] & FLAG_INTEGER_BUCKETS, 0, "{odd}");
            let back = decode(&bytes).unwrap();
            assert_eq!(
                back[3].1.positive_buckets[1].to_bits(),
                odd.to_bits(),
                "{odd}"
            );
        }
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

/// Where the bytes of histogram chunks go: every chunk re-encoded with
/// this build's writer and as Dense bucket columns, both decoding to the
/// same samples, with a table of bytes per section. Over chunks written
/// here from a random walk, or over the blocks of a directory
/// (`HIST_PROFILE_DIR`, e.g. a snapshot), where decode and encode times
/// are printed too: `HIST_PROFILE_DIR=... cargo test -p tsdb --lib
/// profile_histogram_chunks -- --nocapture`.
#[cfg(test)]
mod profile {
    use super::*;

    /// 20 series of 120 integer histograms each, eight buckets growing by
    /// small pseudo-random steps (some not at all), as stored chunks.
    fn random_walk_chunks() -> Vec<Vec<u8>> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut chunks = Vec::new();
        for _ in 0..20 {
            let mut buckets = [0f64; 8];
            let mut samples = Vec::new();
            for i in 0..120i64 {
                for b in buckets.iter_mut() {
                    *b += next(4) as f64;
                }
                let count: f64 = buckets.iter().sum();
                let h = FloatHistogram {
                    schema: 3,
                    count,
                    sum: count * 0.25,
                    positive_spans: vec![Span {
                        offset: -3,
                        length: 8,
                    }],
                    positive_buckets: buckets.to_vec(),
                    ..FloatHistogram::default()
                };
                samples.push((i * 15_000, h));
            }
            let mut out = Vec::new();
            encode(&samples, CounterResetHint::Unknown, true, &mut out).unwrap();
            chunks.push(out);
        }
        chunks
    }

    fn chunks_in(dir: &str) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.join("meta.json").exists() {
                continue;
            }
            let block = crate::block::Block::open(&path).unwrap();
            let all = model::Matcher::new(
                model::MatchOp::RegexMatch,
                "__name__".to_string(),
                ".+".to_string(),
            )
            .unwrap();
            for series in block.select(&[all], i64::MIN, i64::MAX).unwrap() {
                for (_, _, r) in series.chunks {
                    let (encoding, stored) = block.chunk(r).unwrap();
                    assert_eq!(encoding, HISTOGRAM_ENCODING);
                    out.push(stored.to_vec());
                }
            }
        }
        out
    }

    #[test]
    fn profile_histogram_chunks() {
        let dir = std::env::var("HIST_PROFILE_DIR").ok();
        let chunks = match &dir {
            Some(dir) => chunks_in(dir),
            None => random_walk_chunks(),
        };
        assert!(!chunks.is_empty());
        let mut totals = std::collections::BTreeMap::<&str, usize>::new();
        let mut samples = 0usize;
        // Each chunk as Dense bucket columns and as the integer stream.
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for stored in &chunks {
            let stored = &stored[..];
            // Re-encoded with this build's writer.
            let decoded = decode(stored).unwrap();
            let hint = CounterResetHint::from_u8(stored[1] & FLAG_HINT_MASK).unwrap();
            let mut again = Vec::new();
            encode(&decoded, hint, stored[1] & FLAG_INTEGER != 0, &mut again).unwrap();
            assert_eq!(decode(&again).unwrap().len(), decoded.len());
            *totals.entry("stored").or_default() += stored.len();
            let mut dense = Vec::new();
            encode_as(&decoded, hint, false, false, &mut dense).unwrap();
            *totals.entry("as Dense columns").or_default() += dense.len();
            pairs.push((dense, again.clone()));
            let bytes = &again[..];
            *totals.entry("chunks").or_default() += 1;
            *totals.entry("all").or_default() += bytes.len();
            let mut p = 0;
            let header = read_header(bytes, &mut p).unwrap();
            samples += header.n;
            *totals.entry("header").or_default() += p;
            let mut part = |name: &'static str, p: &mut usize| {
                let start = *p;
                section(bytes, p).unwrap();
                *totals.entry(name).or_default() += *p - start;
            };
            part("timestamps", &mut p);
            if header.flags & FLAG_DERIVED_COUNT == 0 {
                part("count", &mut p);
            }
            part("zero", &mut p);
            part("sum", &mut p);
            if header.flags & FLAG_INTEGER_BUCKETS != 0 {
                part("buckets", &mut p);
            } else {
                for _ in 0..header.n_positive + header.n_negative {
                    part("buckets", &mut p);
                }
            }
            *totals.entry("bucket columns").or_default() += header.n_positive + header.n_negative;
        }
        // Both forms hold the same samples; on whole-number data the
        // integer stream is never larger than the Dense columns.
        for (dense, stream) in &pairs {
            let (a, b) = (decode(dense).unwrap(), decode(stream).unwrap());
            assert_eq!(a.len(), b.len());
            for ((t, h), (t2, h2)) in a.iter().zip(&b) {
                assert_eq!(
                    (t, &h.positive_buckets, h.sum.to_bits()),
                    (t2, &h2.positive_buckets, h2.sum.to_bits())
                );
            }
        }
        if dir.is_none() {
            assert!(totals["all"] < totals["as Dense columns"], "{totals:?}");
            return;
        }
        // Decode speed: the same chunks with Dense bucket columns and with
        // the integer bucket stream (best of 5 passes each).
        type Pair = (Vec<u8>, Vec<u8>);
        let time = |pick: &dyn Fn(&Pair) -> &[u8]| {
            (0..5)
                .map(|_| {
                    let start = std::time::Instant::now();
                    let mut n = 0;
                    for pair in &pairs {
                        n += decode(pick(pair)).unwrap().len();
                    }
                    assert!(n > 0);
                    start.elapsed()
                })
                .min()
                .unwrap()
        };
        let encode_time = |integer_buckets: bool| {
            (0..3)
                .map(|_| {
                    let start = std::time::Instant::now();
                    for pair in &pairs {
                        let samples = decode(&pair.1).unwrap();
                        let mut out = Vec::new();
                        encode_as(
                            &samples,
                            CounterResetHint::Unknown,
                            false,
                            integer_buckets,
                            &mut out,
                        )
                        .unwrap();
                    }
                    start.elapsed()
                })
                .min()
                .unwrap()
        };
        println!(
            "decode + encode: Dense bucket columns {:?}, integer stream {:?}",
            encode_time(false),
            encode_time(true)
        );
        let dense_time = time(&|p| &p.0);
        let stream_time = time(&|p| &p.1);
        println!(
            "decode: Dense bucket columns {dense_time:?}, integer stream {stream_time:?} ({:.1} ns/sample vs {:.1})",
            dense_time.as_nanos() as f64 / samples as f64,
            stream_time.as_nanos() as f64 / samples as f64
        );
        println!("{samples} samples");
        for (name, bytes) in totals {
            println!(
                "{name:>16} {bytes:>10} {:>8.3}/sample",
                bytes as f64 / samples as f64
            );
        }
    }
}
