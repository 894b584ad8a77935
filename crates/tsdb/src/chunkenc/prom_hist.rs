//! Prometheus's own native histogram chunk encodings, the ones remote
//! read's streamed answers carry as `HISTOGRAM` (2) and `FLOAT_HISTOGRAM`
//! (3); osprey's stored chunks use encoding 4 of `docs/format/chunks.md`
//! instead. The layout is described in `docs/format/chunks.md`
//! ("Prometheus's histogram chunks (remote read only)"); this module reads both and writes
//! both, cutting a new chunk wherever Prometheus's appender would have
//! to: a new bucket layout, a counter reset, a change between integer and
//! float counts or between counter and gauge, after a staleness marker,
//! and at [`MAX_SAMPLES`].

use model::histogram::{CounterResetHint, FloatHistogram, Histogram, Span};

use super::{BitWriter, ChunkError, XorWindow, read_bits, read_xor_value, write_xor_value};

/// Which of Prometheus's two histogram chunk encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromHistEncoding {
    /// Integer counts, bucket deltas coded as delta of deltas.
    Histogram,
    /// Float counts, each coded as Gorilla XOR.
    FloatHistogram,
}

/// One encoded chunk with its time range.
#[derive(Clone, Debug, PartialEq)]
pub struct PromHistChunk {
    pub encoding: PromHistEncoding,
    pub min_time: i64,
    pub max_time: i64,
    pub bytes: Vec<u8>,
}

/// Most samples in one written chunk, as for float chunks.
pub const MAX_SAMPLES: usize = 120;

/// Bytes before the bit stream: the sample count (u16 big endian) and
/// the flags byte, whose top two bits are the counter-reset header.
const HEADER_BYTES: usize = 3;

const HEADER_UNKNOWN: u8 = 0b0000_0000;
const HEADER_NOT_RESET: u8 = 0b0100_0000;
const HEADER_RESET: u8 = 0b1000_0000;
const HEADER_GAUGE: u8 = 0b1100_0000;
const HEADER_MASK: u8 = 0b1100_0000;

// ---------------------------------------------------------------------------
// Variable bit-width integers: a unary prefix of up to eight bits chooses
// the payload width (0, 3, 6, 9, 12, 18, 25, 56 or 64 bits).

/// Payload widths by prefix length (the number of leading one bits).
const VARBIT_WIDTHS: [u32; 8] = [3, 6, 9, 12, 18, 25, 56, 64];

fn signed_fits(value: i64, n_bits: u32) -> bool {
    let half = 1i64 << (n_bits - 1);
    -(half - 1) <= value && value <= half
}

fn write_prefix(writer: &mut BitWriter, out: &mut Vec<u8>, ones: u32) {
    // `ones` one bits, then a zero unless the prefix is the full eight.
    if ones == 8 {
        writer.write(out, 0xff, 8);
    } else {
        writer.write(out, ((1u64 << ones) - 1) << 1, ones + 1);
    }
}

fn put_varbit_int(writer: &mut BitWriter, out: &mut Vec<u8>, value: i64) {
    if value == 0 {
        writer.write(out, 0, 1);
        return;
    }
    for (i, &width) in VARBIT_WIDTHS.iter().enumerate() {
        if width == 64 || signed_fits(value, width) {
            write_prefix(writer, out, i as u32 + 1);
            writer.write(out, value as u64, width);
            return;
        }
    }
}

fn put_varbit_uint(writer: &mut BitWriter, out: &mut Vec<u8>, value: u64) {
    if value == 0 {
        writer.write(out, 0, 1);
        return;
    }
    for (i, &width) in VARBIT_WIDTHS.iter().enumerate() {
        if width == 64 || value < (1u64 << width) {
            write_prefix(writer, out, i as u32 + 1);
            writer.write(out, value, width);
            return;
        }
    }
}

/// The payload width a prefix announces; 0 for the single zero bit.
fn read_varbit_width(bytes: &[u8], position: &mut usize) -> Result<u32, ChunkError> {
    let mut ones = 0usize;
    while ones < 8 {
        if read_bits(bytes, position, 1)? == 0 {
            break;
        }
        ones += 1;
    }
    Ok(match ones {
        0 => 0,
        n => VARBIT_WIDTHS[n - 1],
    })
}

fn read_varbit_int(bytes: &[u8], position: &mut usize) -> Result<i64, ChunkError> {
    let width = read_varbit_width(bytes, position)?;
    let bits = read_bits(bytes, position, width)?;
    if width == 0 || width == 64 {
        return Ok(bits as i64);
    }
    // The payload is two's complement in `width` bits, with the range
    // shifted by one: 2^(width-1) itself is positive.
    if bits > (1u64 << (width - 1)) {
        Ok(bits as i64 - (1i64 << width))
    } else {
        Ok(bits as i64)
    }
}

fn read_varbit_uint(bytes: &[u8], position: &mut usize) -> Result<u64, ChunkError> {
    let width = read_varbit_width(bytes, position)?;
    read_bits(bytes, position, width)
}

// ---------------------------------------------------------------------------
// The layout: zero threshold, schema, spans, custom bounds.

#[derive(Clone, Debug, PartialEq)]
struct Layout {
    schema: i32,
    zero_threshold: f64,
    positive_spans: Vec<Span>,
    negative_spans: Vec<Span>,
    custom_values: Vec<f64>,
}

impl Layout {
    fn of(h: &FloatHistogram) -> Layout {
        Layout {
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            positive_spans: h.positive_spans.clone(),
            negative_spans: h.negative_spans.clone(),
            custom_values: h.custom_values.clone(),
        }
    }

    fn same(&self, h: &FloatHistogram) -> bool {
        self.schema == h.schema
            && self.zero_threshold.to_bits() == h.zero_threshold.to_bits()
            && self.positive_spans == h.positive_spans
            && self.negative_spans == h.negative_spans
            && self.custom_values.len() == h.custom_values.len()
            && self
                .custom_values
                .iter()
                .zip(&h.custom_values)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }

    fn buckets(spans: &[Span]) -> usize {
        spans.iter().map(|s| s.length as usize).sum()
    }
}

/// The power-of-two exponent `e` of `x = 2^e`, when `x` is a normal power
/// of two.
fn power_of_two(x: f64) -> Option<i32> {
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    (x > 0.0 && bits & ((1u64 << 52) - 1) == 0 && exponent != 0 && exponent != 0x7ff)
        .then_some(exponent - 1023)
}

fn put_zero_threshold(writer: &mut BitWriter, out: &mut Vec<u8>, threshold: f64) {
    if threshold == 0.0 {
        writer.write(out, 0, 8);
        return;
    }
    // One byte for 2^-243 ..= 2^10: byte = e + 244, in 1..=254.
    match power_of_two(threshold) {
        Some(e) if (-243..=10).contains(&e) => writer.write(out, (e + 244) as u64, 8),
        _ => {
            writer.write(out, 0xff, 8);
            writer.write(out, threshold.to_bits(), 64);
        }
    }
}

fn read_zero_threshold(bytes: &[u8], position: &mut usize) -> Result<f64, ChunkError> {
    match read_bits(bytes, position, 8)? {
        0 => Ok(0.0),
        0xff => Ok(f64::from_bits(read_bits(bytes, position, 64)?)),
        b => Ok(f64::from_bits(((b as i64 - 244 + 1023) as u64) << 52)),
    }
}

fn put_spans(writer: &mut BitWriter, out: &mut Vec<u8>, spans: &[Span]) {
    put_varbit_uint(writer, out, spans.len() as u64);
    for span in spans {
        put_varbit_uint(writer, out, u64::from(span.length));
        put_varbit_int(writer, out, i64::from(span.offset));
    }
}

/// Most spans or custom bounds one layout may claim: far more than any
/// real histogram has, small enough that a corrupt count cannot make the
/// reader allocate much.
const MAX_LAYOUT_ITEMS: u64 = 1 << 16;

fn read_spans(bytes: &[u8], position: &mut usize) -> Result<Vec<Span>, ChunkError> {
    let n = read_varbit_uint(bytes, position)?;
    if n > MAX_LAYOUT_ITEMS {
        return Err(ChunkError::new("histogram chunk claims too many spans"));
    }
    let mut spans = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let length = read_varbit_uint(bytes, position)?;
        let offset = read_varbit_int(bytes, position)?;
        let (Ok(length), Ok(offset)) = (u32::try_from(length), i32::try_from(offset)) else {
            return Err(ChunkError::new("histogram span out of range"));
        };
        spans.push(Span { offset, length });
    }
    Ok(spans)
}

/// Largest `bound * 1000` written as a short integer.
const CUSTOM_BOUND_MAX: f64 = 33_554_430.0;

fn put_custom_bound(writer: &mut BitWriter, out: &mut Vec<u8>, bound: f64) {
    let scaled = bound * 1000.0;
    let whole = (scaled.round() / 1000.0) == bound;
    if (0.0..=CUSTOM_BOUND_MAX).contains(&scaled) && whole {
        put_varbit_uint(writer, out, scaled.round() as u64 + 1);
    } else {
        writer.write(out, 0, 1);
        writer.write(out, bound.to_bits(), 64);
    }
}

fn read_custom_bound(bytes: &[u8], position: &mut usize) -> Result<f64, ChunkError> {
    match read_varbit_uint(bytes, position)? {
        0 => Ok(f64::from_bits(read_bits(bytes, position, 64)?)),
        n => Ok((n - 1) as f64 / 1000.0),
    }
}

fn put_layout(writer: &mut BitWriter, out: &mut Vec<u8>, layout: &Layout) {
    put_zero_threshold(writer, out, layout.zero_threshold);
    put_varbit_int(writer, out, i64::from(layout.schema));
    put_spans(writer, out, &layout.positive_spans);
    put_spans(writer, out, &layout.negative_spans);
    if layout.schema == model::histogram::CUSTOM_BUCKETS_SCHEMA {
        put_varbit_uint(writer, out, layout.custom_values.len() as u64);
        for &bound in &layout.custom_values {
            put_custom_bound(writer, out, bound);
        }
    }
}

fn read_layout(bytes: &[u8], position: &mut usize) -> Result<Layout, ChunkError> {
    let zero_threshold = read_zero_threshold(bytes, position)?;
    let schema = i32::try_from(read_varbit_int(bytes, position)?)
        .map_err(|_| ChunkError::new("histogram schema out of range"))?;
    let positive_spans = read_spans(bytes, position)?;
    let negative_spans = read_spans(bytes, position)?;
    let mut custom_values = Vec::new();
    if schema == model::histogram::CUSTOM_BUCKETS_SCHEMA {
        let n = read_varbit_uint(bytes, position)?;
        if n > MAX_LAYOUT_ITEMS {
            return Err(ChunkError::new("histogram chunk claims too many bounds"));
        }
        for _ in 0..n {
            custom_values.push(read_custom_bound(bytes, position)?);
        }
    }
    if !model::histogram::is_valid_schema(schema) {
        return Err(ChunkError::new("histogram chunk has an unknown schema"));
    }
    Ok(Layout {
        schema,
        zero_threshold,
        positive_spans,
        negative_spans,
        custom_values,
    })
}

// ---------------------------------------------------------------------------
// Reading.

fn hint_at(header: u8, index: usize) -> CounterResetHint {
    // Prometheus hands out "unknown" for a chunk's first sample whatever
    // the header says (the previous chunk may be gone), "not a reset"
    // for the rest, and "gauge" throughout a gauge chunk.
    match (header, index) {
        (HEADER_GAUGE, _) => CounterResetHint::Gauge,
        (_, 0) => CounterResetHint::Unknown,
        _ => CounterResetHint::NotCounterReset,
    }
}

/// Decodes a whole chunk of either encoding. Every histogram is checked
/// with Prometheus's rules, so a corrupt or hostile chunk is an error,
/// never a histogram that breaks the query engine's assumptions.
pub fn decode(
    encoding: PromHistEncoding,
    bytes: &[u8],
) -> Result<Vec<(i64, FloatHistogram)>, ChunkError> {
    let (Some(count), Some(&flags)) = (bytes.get(..2), bytes.get(2)) else {
        return Err(ChunkError::new("histogram chunk shorter than its header"));
    };
    let total = u16::from_be_bytes([count[0], count[1]]) as usize;
    let header = flags & HEADER_MASK;
    let stream = &bytes[HEADER_BYTES..];
    let mut position = 0usize;
    let mut out = Vec::with_capacity(total.min(MAX_SAMPLES * 4));
    if total == 0 {
        return Ok(out);
    }
    let layout = read_layout(stream, &mut position)?;
    let n_positive = Layout::buckets(&layout.positive_spans);
    let n_negative = Layout::buckets(&layout.negative_spans);
    // Every decoded sample copies the layout: the first sample reads every
    // bucket (a bit each at least), so the buckets are bounded by the
    // chunk's size; spans, which need no bits per sample, and the samples
    // stay under the budget osprey's own chunks have.
    if (n_positive + n_negative) > stream.len().saturating_mul(8) {
        return Err(ChunkError::new(
            "histogram chunk claims more buckets than it holds",
        ));
    }
    let copied =
        layout.positive_spans.len() + layout.negative_spans.len() + n_positive + n_negative + 3;
    if (total as u64).saturating_mul(copied as u64) > super::hist::MAX_DECODED_CELLS {
        return Err(ChunkError::new("histogram chunk too large to decode"));
    }
    match encoding {
        PromHistEncoding::Histogram => {
            decode_integer(stream, &mut position, &layout, header, total, &mut out)?
        }
        PromHistEncoding::FloatHistogram => {
            decode_float(stream, &mut position, &layout, header, total, &mut out)?
        }
    }
    Ok(out)
}

fn finish(
    layout: &Layout,
    mut h: FloatHistogram,
    header: u8,
    index: usize,
) -> Result<FloatHistogram, ChunkError> {
    h.counter_reset_hint = hint_at(header, index);
    h.schema = layout.schema;
    h.zero_threshold = layout.zero_threshold;
    h.positive_spans = layout.positive_spans.clone();
    h.negative_spans = layout.negative_spans.clone();
    h.custom_values = layout.custom_values.clone();
    h.validate()
        .map_err(|_| ChunkError::new("histogram in chunk breaks the histogram rules"))?;
    Ok(h)
}

fn decode_integer(
    stream: &[u8],
    position: &mut usize,
    layout: &Layout,
    header: u8,
    total: usize,
    out: &mut Vec<(i64, FloatHistogram)>,
) -> Result<(), ChunkError> {
    let n_positive = Layout::buckets(&layout.positive_spans);
    let n_negative = Layout::buckets(&layout.negative_spans);
    let (mut t, mut t_delta) = (0i64, 0i64);
    let (mut count, mut count_delta) = (0u64, 0i64);
    let (mut zero, mut zero_delta) = (0u64, 0i64);
    let mut sum_bits = 0u64;
    let mut window: Option<XorWindow> = None;
    // Per side: the bucket values (deltas between neighbours) and their
    // change since the previous sample.
    let mut buckets = vec![0i64; n_positive + n_negative];
    let mut bucket_deltas = vec![0i64; n_positive + n_negative];
    for index in 0..total {
        let stale;
        if index == 0 {
            t = read_varbit_int(stream, position)?;
            count = read_varbit_uint(stream, position)?;
            zero = read_varbit_uint(stream, position)?;
            sum_bits = read_bits(stream, position, 64)?;
            stale = model::is_stale_nan(f64::from_bits(sum_bits));
            for b in buckets.iter_mut() {
                *b = read_varbit_int(stream, position)?;
            }
        } else {
            t_delta = t_delta.wrapping_add(read_varbit_int(stream, position)?);
            t = t.wrapping_add(t_delta);
            count_delta = count_delta.wrapping_add(read_varbit_int(stream, position)?);
            count = (count as i64).wrapping_add(count_delta) as u64;
            zero_delta = zero_delta.wrapping_add(read_varbit_int(stream, position)?);
            zero = (zero as i64).wrapping_add(zero_delta) as u64;
            read_xor_value(stream, position, &mut sum_bits, &mut window)?;
            stale = model::is_stale_nan(f64::from_bits(sum_bits));
            if !stale {
                for (b, d) in buckets.iter_mut().zip(bucket_deltas.iter_mut()) {
                    *d = d.wrapping_add(read_varbit_int(stream, position)?);
                    *b = b.wrapping_add(*d);
                }
            }
        }
        if stale {
            out.push((t, FloatHistogram::stale_marker()));
            continue;
        }
        let integer = Histogram {
            counter_reset_hint: CounterResetHint::Unknown,
            schema: layout.schema,
            zero_threshold: layout.zero_threshold,
            zero_count: zero,
            count,
            sum: f64::from_bits(sum_bits),
            positive_spans: layout.positive_spans.clone(),
            negative_spans: layout.negative_spans.clone(),
            positive_buckets: buckets[..n_positive].to_vec(),
            negative_buckets: buckets[n_positive..].to_vec(),
            custom_values: layout.custom_values.clone(),
        };
        integer
            .validate()
            .map_err(|_| ChunkError::new("histogram in chunk breaks the histogram rules"))?;
        out.push((t, finish(layout, integer.to_float(), header, index)?));
    }
    Ok(())
}

fn decode_float(
    stream: &[u8],
    position: &mut usize,
    layout: &Layout,
    header: u8,
    total: usize,
    out: &mut Vec<(i64, FloatHistogram)>,
) -> Result<(), ChunkError> {
    let n_positive = Layout::buckets(&layout.positive_spans);
    let n_negative = Layout::buckets(&layout.negative_spans);
    let (mut t, mut t_delta) = (0i64, 0i64);
    // Count, zero count, sum, then the buckets: bits and XOR windows.
    let n = 3 + n_positive + n_negative;
    let mut values = vec![0u64; n];
    let mut windows: Vec<Option<XorWindow>> = vec![None; n];
    for index in 0..total {
        let stale;
        if index == 0 {
            t = read_varbit_int(stream, position)?;
            for v in values.iter_mut().take(3) {
                *v = read_bits(stream, position, 64)?;
            }
            stale = model::is_stale_nan(f64::from_bits(values[2]));
            for v in values.iter_mut().skip(3) {
                *v = read_bits(stream, position, 64)?;
            }
        } else {
            t_delta = t_delta.wrapping_add(read_varbit_int(stream, position)?);
            t = t.wrapping_add(t_delta);
            for (v, w) in values.iter_mut().zip(windows.iter_mut()).take(3) {
                read_xor_value(stream, position, v, w)?;
            }
            stale = model::is_stale_nan(f64::from_bits(values[2]));
            if !stale {
                for (v, w) in values.iter_mut().zip(windows.iter_mut()).skip(3) {
                    read_xor_value(stream, position, v, w)?;
                }
            }
        }
        if stale {
            out.push((t, FloatHistogram::stale_marker()));
            continue;
        }
        let bucket = |i: usize| f64::from_bits(values[i]);
        let h = FloatHistogram {
            count: bucket(0),
            zero_count: bucket(1),
            sum: bucket(2),
            positive_buckets: (3..3 + n_positive).map(bucket).collect(),
            negative_buckets: (3 + n_positive..n).map(bucket).collect(),
            ..FloatHistogram::default()
        };
        out.push((t, finish(layout, h, header, index)?));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Writing.

/// Whether `h` goes in an integer chunk: its integer form holds it
/// exactly and passes the integer rules.
fn is_integer(h: &FloatHistogram) -> bool {
    h.to_integer().is_some()
}

/// A chunk being written.
struct Writer {
    encoding: PromHistEncoding,
    allow_integer: bool,
    layout: Layout,
    gauge: bool,
    bytes: Vec<u8>,
    bits: BitWriter,
    samples: usize,
    min_time: i64,
    max_time: i64,
    ended_stale: bool,
    // Integer state.
    t: i64,
    t_delta: i64,
    count: i64,
    count_delta: i64,
    zero: i64,
    zero_delta: i64,
    buckets: Vec<i64>,
    bucket_deltas: Vec<i64>,
    // Float state: count, zero count, sum, buckets (bits and windows); the
    // integer encoding uses index 2 for its sum.
    values: Vec<u64>,
    windows: Vec<Option<XorWindow>>,
}

impl Writer {
    fn new(first: &FloatHistogram, header: u8, t: i64, allow_integer: bool) -> Writer {
        let encoding = if allow_integer && is_integer(first) {
            PromHistEncoding::Histogram
        } else {
            PromHistEncoding::FloatHistogram
        };
        let layout = Layout::of(first);
        let n_buckets = first.positive_buckets.len() + first.negative_buckets.len();
        let mut bytes = vec![0, 0, header];
        let mut bits = BitWriter::default();
        put_layout(&mut bits, &mut bytes, &layout);
        Writer {
            encoding,
            allow_integer,
            layout,
            gauge: header == HEADER_GAUGE,
            bytes,
            bits,
            samples: 0,
            min_time: t,
            max_time: t,
            ended_stale: false,
            t: 0,
            t_delta: 0,
            count: 0,
            count_delta: 0,
            zero: 0,
            zero_delta: 0,
            buckets: vec![0; n_buckets],
            bucket_deltas: vec![0; n_buckets],
            values: vec![0; 3 + n_buckets],
            windows: vec![None; 3 + n_buckets],
        }
    }

    /// Whether `h` can follow in this chunk (the caller handles resets).
    fn takes(&self, h: &FloatHistogram) -> bool {
        if self.ended_stale || self.samples >= MAX_SAMPLES {
            return false;
        }
        if h.is_stale() {
            return true;
        }
        // An integer chunk takes whole counts only; a float chunk written
        // because integers were not allowed takes anything, one written
        // for fractional counts takes fractional ones only.
        let fits_kind = match self.encoding {
            PromHistEncoding::Histogram => is_integer(h),
            PromHistEncoding::FloatHistogram => !self.allow_integer || !is_integer(h),
        };
        fits_kind
            && self.gauge == (h.counter_reset_hint == CounterResetHint::Gauge)
            && self.layout.same(h)
    }

    fn append(&mut self, t: i64, h: &FloatHistogram) {
        let stale = h.is_stale();
        let (w, out) = (&mut self.bits, &mut self.bytes);
        let first = self.samples == 0;
        let t_delta = t.wrapping_sub(self.t);
        if first {
            put_varbit_int(w, out, t);
        } else {
            put_varbit_int(w, out, t_delta.wrapping_sub(self.t_delta));
        }
        // A staleness marker is written as an empty histogram with the
        // marker's sum and no buckets.
        let (count, zero, sum) = if stale {
            (0.0, 0.0, h.sum)
        } else {
            (h.count, h.zero_count, h.sum)
        };
        match self.encoding {
            PromHistEncoding::Histogram => {
                let (count, zero) = (count as i64, zero as i64);
                if first {
                    put_varbit_uint(w, out, count as u64);
                    put_varbit_uint(w, out, zero as u64);
                    w.write(out, sum.to_bits(), 64);
                    self.values[2] = sum.to_bits();
                } else {
                    let count_delta = count.wrapping_sub(self.count);
                    let zero_delta = zero.wrapping_sub(self.zero);
                    let (count_dod, zero_dod) = if stale {
                        (0, 0)
                    } else {
                        (
                            count_delta.wrapping_sub(self.count_delta),
                            zero_delta.wrapping_sub(self.zero_delta),
                        )
                    };
                    put_varbit_int(w, out, count_dod);
                    put_varbit_int(w, out, zero_dod);
                    write_xor_value(w, out, sum.to_bits(), self.values[2], &mut self.windows[2]);
                    self.values[2] = sum.to_bits();
                    self.count_delta = count_delta;
                    self.zero_delta = zero_delta;
                }
                // An integer chunk only takes histograms whose integer
                // form exists (`takes`); a marker writes no buckets.
                let integer = if stale { None } else { h.to_integer() };
                if let Some(integer) = integer {
                    let values = integer
                        .positive_buckets
                        .iter()
                        .chain(&integer.negative_buckets);
                    for (i, &v) in values.enumerate() {
                        if first {
                            put_varbit_int(w, out, v);
                        } else {
                            let delta = v.wrapping_sub(self.buckets[i]);
                            put_varbit_int(w, out, delta.wrapping_sub(self.bucket_deltas[i]));
                            self.bucket_deltas[i] = delta;
                        }
                        self.buckets[i] = v;
                    }
                }
                self.count = count;
                self.zero = zero;
            }
            PromHistEncoding::FloatHistogram => {
                let heads = [count, zero, sum];
                let values: Vec<f64> = if stale {
                    heads.to_vec()
                } else {
                    heads
                        .iter()
                        .chain(&h.positive_buckets)
                        .chain(&h.negative_buckets)
                        .copied()
                        .collect()
                };
                for (i, v) in values.into_iter().enumerate() {
                    if first {
                        w.write(out, v.to_bits(), 64);
                    } else {
                        write_xor_value(w, out, v.to_bits(), self.values[i], &mut self.windows[i]);
                    }
                    self.values[i] = v.to_bits();
                }
            }
        }
        if !first {
            self.t_delta = t_delta;
        }
        self.t = t;
        self.samples += 1;
        self.max_time = t;
        self.ended_stale = stale;
    }

    fn finish(mut self) -> PromHistChunk {
        let n = self.samples as u16;
        self.bytes[..2].copy_from_slice(&n.to_be_bytes());
        PromHistChunk {
            encoding: self.encoding,
            min_time: self.min_time,
            max_time: self.max_time,
            bytes: self.bytes,
        }
    }
}

/// Encodes a series's histograms (in time order) as Prometheus's chunks.
/// Integer chunks hold histograms whose counts are all whole, float
/// chunks the rest. The counter-reset header says "reset" for a chunk cut
/// by a detected reset or starting with a sample hinted so, "not a reset"
/// for other cuts, and "gauge" for gauge histograms.
pub fn encode(samples: &[(i64, FloatHistogram)]) -> Vec<PromHistChunk> {
    encode_with(samples, true)
}

/// As [`encode`]; without `allow_integer` every chunk is a float chunk
/// (what Prometheus writes for histograms that arrived as floats).
pub fn encode_with(samples: &[(i64, FloatHistogram)], allow_integer: bool) -> Vec<PromHistChunk> {
    let mut chunks = Vec::new();
    let mut current: Option<Writer> = None;
    let mut previous: Option<&FloatHistogram> = None;
    for (t, h) in samples {
        let reset = !h.is_stale()
            && h.counter_reset_hint != CounterResetHint::Gauge
            && (h.counter_reset_hint == CounterResetHint::CounterReset
                || previous.is_some_and(|p| !p.is_stale() && super::hist::is_reset(p, h)));
        let fits = current.as_ref().is_some_and(|w| w.takes(h)) && !reset;
        if !fits {
            chunks.extend(current.take().map(Writer::finish));
            let header = if h.counter_reset_hint == CounterResetHint::Gauge {
                HEADER_GAUGE
            } else if reset {
                HEADER_RESET
            } else if previous.is_some_and(|p| !p.is_stale())
                || h.counter_reset_hint == CounterResetHint::NotCounterReset
            {
                HEADER_NOT_RESET
            } else {
                HEADER_UNKNOWN
            };
            current = Some(Writer::new(h, header, *t, allow_integer));
        }
        if let Some(w) = current.as_mut() {
            w.append(*t, h);
        }
        previous = Some(h);
    }
    chunks.extend(current.map(Writer::finish));
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(count: f64, buckets: &[f64], hint: CounterResetHint) -> FloatHistogram {
        FloatHistogram {
            counter_reset_hint: hint,
            schema: 1,
            zero_threshold: 0.001,
            zero_count: count - buckets.iter().sum::<f64>(),
            count,
            sum: count * 1.5,
            positive_spans: vec![Span {
                offset: -2,
                length: buckets.len() as u32,
            }],
            positive_buckets: buckets.to_vec(),
            ..FloatHistogram::default()
        }
    }

    #[test]
    fn varbit_integers_round_trip_at_every_width_edge() {
        let mut values = vec![0i64, 1, -1, i64::MIN, i64::MAX];
        for &w in &VARBIT_WIDTHS[..7] {
            let half = 1i64 << (w - 1);
            values.extend([half, half + 1, -(half - 1), -half]);
        }
        let mut out = Vec::new();
        let mut w = BitWriter::default();
        for &v in &values {
            put_varbit_int(&mut w, &mut out, v);
            put_varbit_uint(&mut w, &mut out, v as u64);
        }
        let mut p = 0;
        for &v in &values {
            assert_eq!(read_varbit_int(&out, &mut p).unwrap(), v);
            assert_eq!(read_varbit_uint(&out, &mut p).unwrap(), v as u64);
        }
    }

    #[test]
    fn zero_thresholds_and_custom_bounds_round_trip() {
        for x in [
            0.0,
            0.001,
            2f64.powi(-243),
            1024.0,
            2048.0,
            2f64.powi(-128),
            0.3,
        ] {
            let mut out = Vec::new();
            let mut w = BitWriter::default();
            put_zero_threshold(&mut w, &mut out, x);
            let short = out.len() == 1;
            let mut p = 0;
            assert_eq!(
                read_zero_threshold(&out, &mut p).unwrap().to_bits(),
                x.to_bits()
            );
            assert_eq!(
                short,
                x == 0.0 || (power_of_two(x).is_some_and(|e| (-243..=10).contains(&e))),
                "{x}"
            );
        }
        for x in [
            0.0, 0.005, 0.25, 1.0, 33554.43, 33554.431, -1.0, 1e-9, 7.1234,
        ] {
            let mut out = Vec::new();
            let mut w = BitWriter::default();
            put_custom_bound(&mut w, &mut out, x);
            let mut p = 0;
            assert_eq!(
                read_custom_bound(&out, &mut p).unwrap().to_bits(),
                x.to_bits(),
                "{x}"
            );
        }
    }

    #[test]
    fn chunks_hold_every_histogram_and_cut_where_prometheus_must() {
        use CounterResetHint::*;
        let mut samples = Vec::new();
        // Integer counter histograms, one layout.
        for i in 0..130 {
            let n = i as f64;
            samples.push((
                i * 15_000,
                exp(10.0 + 4.0 * n, &[1.0 + n, 2.0 + n, 3.0 + 2.0 * n], Unknown),
            ));
        }
        // A reset.
        samples.push((130 * 15_000, exp(4.0, &[1.0, 1.0, 1.0], Unknown)));
        // A new layout, float counts.
        let mut f = exp(6.5, &[1.5, 2.0, 1.0, 0.5], Unknown);
        f.negative_spans = vec![Span {
            offset: 0,
            length: 1,
        }];
        f.negative_buckets = vec![0.25];
        samples.push((131 * 15_000, f.clone()));
        f.count += 1.0;
        f.positive_buckets[1] += 1.0;
        samples.push((132 * 15_000, f.clone()));
        // A staleness marker, then a gauge with custom buckets.
        samples.push((133 * 15_000, FloatHistogram::stale_marker()));
        let gauge = FloatHistogram {
            counter_reset_hint: Gauge,
            schema: model::histogram::CUSTOM_BUCKETS_SCHEMA,
            count: 3.0,
            sum: 2.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            positive_buckets: vec![1.0, 0.0, 2.0],
            custom_values: vec![0.5, 7.1234],
            ..FloatHistogram::default()
        };
        samples.push((134 * 15_000, gauge.clone()));
        let mut g2 = gauge.clone();
        g2.count = 1.0;
        g2.positive_buckets = vec![0.0, 0.0, 1.0];
        samples.push((135 * 15_000, g2));

        let chunks = encode(&samples);
        let kinds: Vec<(PromHistEncoding, usize)> = chunks
            .iter()
            .map(|c| {
                (
                    c.encoding,
                    u16::from_be_bytes([c.bytes[0], c.bytes[1]]) as usize,
                )
            })
            .collect();
        use PromHistEncoding::{FloatHistogram as F, Histogram as I};
        assert_eq!(kinds, vec![(I, 120), (I, 10), (I, 1), (F, 3), (I, 2)]);
        let headers: Vec<u8> = chunks.iter().map(|c| c.bytes[2]).collect();
        assert_eq!(
            headers,
            vec![
                HEADER_UNKNOWN,
                HEADER_NOT_RESET,
                HEADER_RESET,
                HEADER_NOT_RESET,
                HEADER_GAUGE
            ]
        );
        let mut decoded = Vec::new();
        for c in &chunks {
            let part = decode(c.encoding, &c.bytes).unwrap();
            assert_eq!(part.first().map(|s| s.0), Some(c.min_time));
            assert_eq!(part.last().map(|s| s.0), Some(c.max_time));
            decoded.extend(part);
        }
        assert_eq!(decoded.len(), samples.len());
        for ((t, want), (got_t, got)) in samples.iter().zip(&decoded) {
            assert_eq!(t, got_t);
            if want.is_stale() {
                assert!(got.is_stale());
                continue;
            }
            let mut want = want.clone();
            let mut got = got.clone();
            want.counter_reset_hint = Unknown;
            got.counter_reset_hint = Unknown;
            assert_eq!(got, want, "at {t}");
        }
        // Hints as Prometheus hands them out.
        assert_eq!(decoded[0].1.counter_reset_hint, Unknown);
        assert_eq!(decoded[1].1.counter_reset_hint, NotCounterReset);
        assert_eq!(decoded[134].1.counter_reset_hint, Gauge);
    }

    #[test]
    fn bad_chunks_are_errors() {
        let samples = vec![(1000, exp(10.0, &[1.0, 2.0, 3.0], CounterResetHint::Unknown))];
        let chunk = &encode(&samples)[0];
        for cut in 0..chunk.bytes.len() {
            assert!(
                decode(chunk.encoding, &chunk.bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // A sample count larger than the chunk can hold.
        let mut bad = chunk.bytes.clone();
        bad[0] = 0xff;
        assert!(decode(chunk.encoding, &bad).is_err());
    }

    /// A marker after a histogram with many buckets costs no bucket bits;
    /// the chunk still decodes (a bound that charged every sample a bit
    /// per bucket refused it).
    #[test]
    fn a_marker_after_many_buckets_decodes() {
        let buckets = vec![1.0; 300];
        let samples = vec![
            (1000, exp(300.0, &buckets, CounterResetHint::Unknown)),
            (2000, FloatHistogram::stale_marker()),
        ];
        let chunks = encode(&samples);
        assert_eq!(chunks.len(), 1);
        let back = decode(chunks[0].encoding, &chunks[0].bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert!(back[1].1.is_stale());
    }

    /// Spans that cover no bucket cost two bits each in the layout but
    /// are copied into every sample: a chunk whose copies would pass the
    /// budget is refused.
    #[test]
    fn empty_spans_times_samples_are_bounded() {
        let write = |n_spans: usize, n: u16| {
            let mut bytes = n.to_be_bytes().to_vec();
            bytes.push(0);
            let mut w = BitWriter::default();
            put_zero_threshold(&mut w, &mut bytes, 0.0);
            put_varbit_int(&mut w, &mut bytes, 0);
            put_varbit_uint(&mut w, &mut bytes, n_spans as u64);
            for _ in 0..n_spans {
                put_varbit_uint(&mut w, &mut bytes, 0);
                put_varbit_int(&mut w, &mut bytes, 0);
            }
            put_varbit_uint(&mut w, &mut bytes, 0);
            // The first sample, then all-zero deltas.
            put_varbit_int(&mut w, &mut bytes, 1000);
            put_varbit_uint(&mut w, &mut bytes, 0);
            put_varbit_uint(&mut w, &mut bytes, 0);
            w.write(&mut bytes, 0, 64);
            for _ in 1..n {
                w.write(&mut bytes, 0, 4);
            }
            bytes
        };
        let decoded = decode(PromHistEncoding::Histogram, &write(1000, 200)).unwrap();
        assert_eq!(decoded.len(), 200);
        assert!(decode(PromHistEncoding::Histogram, &write(1000, 65_535)).is_err());
    }

    /// A decreasing sample that claims "not a reset" still cuts the chunk,
    /// as Prometheus's appender distrusts that hint.
    #[test]
    fn a_reset_hinted_away_still_cuts() {
        let samples = vec![
            (1000, exp(10.0, &[1.0, 2.0, 3.0], CounterResetHint::Unknown)),
            (
                2000,
                exp(4.0, &[1.0, 1.0, 1.0], CounterResetHint::NotCounterReset),
            ),
        ];
        let chunks = encode(&samples);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].bytes[2], HEADER_RESET);
    }
}
