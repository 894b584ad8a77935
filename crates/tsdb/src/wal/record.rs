//! WAL record payloads: series, samples, exemplars and tombstones
//! (deletes), and their byte encodings.
//!
//! A record's bytes are one type byte followed by the payload; the framing
//! (length and CRC) is added by the segment writer. The layout is specified
//! in `docs/format/wal.md`. Decoding never panics: every malformed input is
//! a [`RecordError`].

use std::fmt;

use model::histogram::{CounterResetHint, FloatHistogram, Span, is_valid_schema};
use model::{Label, Labels};

/// The most spans, buckets per side or custom bounds one histogram of a
/// record may have (as in a histogram chunk).
const MAX_HISTOGRAM_ITEMS: u64 = 1 << 16;

/// Record type byte of a series record.
pub const RECORD_TYPE_SERIES: u8 = 1;
/// Record type byte of a samples record.
pub const RECORD_TYPE_SAMPLES: u8 = 2;
/// Record type byte of a native histogram samples record.
pub const RECORD_TYPE_HISTOGRAMS: u8 = 3;
/// Record type byte of an exemplars record.
pub const RECORD_TYPE_EXEMPLARS: u8 = 4;
/// Record type byte of a tombstones record (a delete of head samples).
pub const RECORD_TYPE_TOMBSTONES: u8 = 5;

/// Whether a record type byte is one this version writes and reads.
///
pub fn is_known_record_type(record_type: u8) -> bool {
    matches!(
        record_type,
        RECORD_TYPE_SERIES
            | RECORD_TYPE_SAMPLES
            | RECORD_TYPE_HISTOGRAMS
            | RECORD_TYPE_EXEMPLARS
            | RECORD_TYPE_TOMBSTONES
    )
}

/// The `flags` bit of an exemplar whose timestamp was its own.
const EXEMPLAR_HAS_TIMESTAMP: u8 = 1;

/// A series as the WAL knows it: the head's id for it and its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefSeries {
    pub id: u64,
    pub labels: Labels,
}

/// One float sample of the series with the head's id `id`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefSample {
    pub id: u64,
    pub t: i64,
    pub v: f64,
}

/// One native histogram sample of the series with the head's id `id`.
#[derive(Clone, Debug, PartialEq)]
pub struct RefHistogram {
    pub id: u64,
    pub t: i64,
    pub h: FloatHistogram,
}

/// A delete of the samples of the series with the head's id `id` whose
/// timestamps lie in `[mint, maxt]` (both inclusive; `mint <= maxt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefTombstone {
    pub id: u64,
    pub mint: i64,
    pub maxt: i64,
}

/// One exemplar of the series with the head's id `id`.
#[derive(Clone, Debug, PartialEq)]
pub struct RefExemplar {
    pub id: u64,
    pub exemplar: model::exemplar::Exemplar,
}

/// A decoded WAL record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Series(Vec<RefSeries>),
    Samples(Vec<RefSample>),
    Histograms(Vec<RefHistogram>),
    Exemplars(Vec<RefExemplar>),
    /// Deletes, each of the samples replayed before this record.
    Tombstones(Vec<RefTombstone>),
}

/// Why record bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    offset: usize,
    reason: &'static str,
}

impl RecordError {
    /// The byte offset in the record (type byte = 0) where decoding failed.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// A short description of what was wrong.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "corrupt WAL record at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for RecordError {}

/// Appends a series record (type byte and payload) to `out`.
pub fn encode_series(series: &[RefSeries], out: &mut Vec<u8>) {
    out.push(RECORD_TYPE_SERIES);
    for entry in series {
        put_uvarint(out, entry.id);
        put_labels(out, &entry.labels);
    }
}

/// Appends a samples record (type byte and payload) to `out`.
///
/// Ids are written as differences to the previous sample's id, timestamps as
/// differences to the first sample's timestamp, values as raw bits.
pub fn encode_samples(samples: &[RefSample], out: &mut Vec<u8>) {
    let mut record = SamplesRecord::new(out, samples.len());
    for sample in samples {
        record.push(sample.id, sample.t, sample.v);
    }
}

/// Writes a samples record as [`encode_samples`] does, sample by sample,
/// so that a writer holding them in another shape (an appender's staged
/// runs) need not collect them into a list first.
pub struct SamplesRecord<'a> {
    out: &'a mut Vec<u8>,
    /// The first sample's time, once written, and the previous id.
    first_t: Option<i64>,
    previous_id: u64,
}

impl<'a> SamplesRecord<'a> {
    /// Starts the record in `out`, with room for about `count` samples.
    pub fn new(out: &'a mut Vec<u8>, count: usize) -> SamplesRecord<'a> {
        out.push(RECORD_TYPE_SAMPLES);
        out.reserve(count.saturating_mul(11).saturating_add(20));
        SamplesRecord {
            out,
            first_t: None,
            previous_id: 0,
        }
    }

    #[inline]
    pub fn push(&mut self, id: u64, t: i64, v: f64) {
        let first_t = match self.first_t {
            Some(first_t) => first_t,
            None => {
                put_uvarint(self.out, id);
                put_varint(self.out, t);
                self.previous_id = id;
                *self.first_t.insert(t)
            }
        };
        put_varint(self.out, id.wrapping_sub(self.previous_id) as i64);
        put_varint(self.out, t.wrapping_sub(first_t));
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        self.previous_id = id;
    }
}

/// Appends a histogram samples record (type byte and payload) to `out`,
/// laid out as the samples record with a histogram in place of the value.
pub fn encode_histograms(samples: &[RefHistogram], out: &mut Vec<u8>) {
    out.push(RECORD_TYPE_HISTOGRAMS);
    let Some(first) = samples.first() else {
        return;
    };
    put_uvarint(out, first.id);
    put_varint(out, first.t);
    let mut previous_id = first.id;
    for sample in samples {
        put_varint(out, sample.id.wrapping_sub(previous_id) as i64);
        put_varint(out, sample.t.wrapping_sub(first.t));
        put_histogram(out, &sample.h);
        previous_id = sample.id;
    }
}

fn put_histogram(out: &mut Vec<u8>, h: &FloatHistogram) {
    out.push(h.counter_reset_hint as u8);
    put_varint(out, i64::from(h.schema));
    for value in [h.zero_threshold, h.zero_count, h.count, h.sum] {
        out.extend_from_slice(&value.to_bits().to_le_bytes());
    }
    for spans in [&h.positive_spans, &h.negative_spans] {
        put_uvarint(out, spans.len() as u64);
        for span in spans {
            put_varint(out, i64::from(span.offset));
            put_uvarint(out, u64::from(span.length));
        }
    }
    for values in [&h.positive_buckets, &h.negative_buckets, &h.custom_values] {
        put_uvarint(out, values.len() as u64);
        for value in values {
            out.extend_from_slice(&value.to_bits().to_le_bytes());
        }
    }
}

/// Appends an exemplars record (type byte and payload) to `out`, laid out
/// as the samples record with each exemplar's flags and labels after its
/// value.
pub fn encode_exemplars(exemplars: &[RefExemplar], out: &mut Vec<u8>) {
    out.push(RECORD_TYPE_EXEMPLARS);
    let Some(first) = exemplars.first() else {
        return;
    };
    put_uvarint(out, first.id);
    put_varint(out, first.exemplar.timestamp_ms);
    let mut previous_id = first.id;
    for entry in exemplars {
        let exemplar = &entry.exemplar;
        put_varint(out, entry.id.wrapping_sub(previous_id) as i64);
        put_varint(
            out,
            exemplar
                .timestamp_ms
                .wrapping_sub(first.exemplar.timestamp_ms),
        );
        out.extend_from_slice(&exemplar.value.to_bits().to_le_bytes());
        out.push(if exemplar.has_timestamp {
            EXEMPLAR_HAS_TIMESTAMP
        } else {
            0
        });
        put_labels(out, &exemplar.labels);
        previous_id = entry.id;
    }
}

fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    put_uvarint(out, labels.len() as u64);
    for label in labels.iter() {
        put_uvarint(out, label.name.len() as u64);
        out.extend_from_slice(label.name.as_bytes());
        put_uvarint(out, label.value.len() as u64);
        out.extend_from_slice(label.value.as_bytes());
    }
}

/// Appends a tombstones record (type byte and payload) to `out`. Entries
/// with `mint > maxt` delete nothing and are left out.
pub fn encode_tombstones(tombstones: &[RefTombstone], out: &mut Vec<u8>) {
    out.push(RECORD_TYPE_TOMBSTONES);
    for entry in tombstones.iter().filter(|e| e.mint <= e.maxt) {
        put_uvarint(out, entry.id);
        put_varint(out, entry.mint);
        put_uvarint(out, entry.maxt.wrapping_sub(entry.mint) as u64);
    }
}

/// Decodes one record from its type byte and payload.
pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    let Some((&record_type, _)) = bytes.split_first() else {
        return Err(RecordError {
            offset: 0,
            reason: "empty record",
        });
    };
    let mut reader = ByteReader { bytes, offset: 1 };
    match record_type {
        RECORD_TYPE_SERIES => decode_series(&mut reader).map(Record::Series),
        RECORD_TYPE_SAMPLES => decode_samples(&mut reader).map(Record::Samples),
        RECORD_TYPE_HISTOGRAMS => decode_histograms(&mut reader).map(Record::Histograms),
        RECORD_TYPE_EXEMPLARS => decode_exemplars(&mut reader).map(Record::Exemplars),
        RECORD_TYPE_TOMBSTONES => decode_tombstones(&mut reader).map(Record::Tombstones),
        _ => Err(RecordError {
            offset: 0,
            reason: "unknown record type",
        }),
    }
}

fn decode_series(reader: &mut ByteReader<'_>) -> Result<Vec<RefSeries>, RecordError> {
    let mut series = Vec::new();
    while !reader.is_at_end() {
        let id = reader.uvarint()?;
        let labels = decode_labels(reader)?;
        series.push(RefSeries { id, labels });
    }
    Ok(series)
}

/// A label count and that many labels, sorted, unique and non-empty.
fn decode_labels(reader: &mut ByteReader<'_>) -> Result<Labels, RecordError> {
    let label_count = reader.uvarint()?;
    // Each label takes at least two bytes (two lengths), so a larger
    // count cannot be honest; bounding it keeps a corrupt count from
    // reserving huge memory.
    if label_count > (reader.remaining() / 2) as u64 {
        return Err(reader.error("label count larger than the record"));
    }
    let mut labels: Vec<Label> = Vec::with_capacity(label_count as usize);
    for _ in 0..label_count {
        let name = reader.string()?;
        if name.is_empty() {
            return Err(reader.error("empty label name"));
        }
        if let Some(previous) = labels.last()
            && previous.name.as_str() >= name
        {
            return Err(reader.error("label names not sorted or duplicated"));
        }
        let value = reader.string()?;
        if value.is_empty() {
            return Err(reader.error("empty label value"));
        }
        labels.push(Label {
            name: name.into(),
            value: value.into(),
        });
    }
    // Sorted, unique and non-empty: checked just above.
    Ok(Labels::from_sorted_unchecked(labels))
}

fn decode_exemplars(reader: &mut ByteReader<'_>) -> Result<Vec<RefExemplar>, RecordError> {
    if reader.is_at_end() {
        return Ok(Vec::new());
    }
    let base_id = reader.uvarint()?;
    let base_t = reader.varint()?;
    // An exemplar takes at least 12 bytes.
    let mut exemplars = Vec::with_capacity(reader.remaining() / 12);
    let mut previous_id = base_id;
    while !reader.is_at_end() {
        let id = previous_id.wrapping_add(reader.varint()? as u64);
        let timestamp_ms = base_t.wrapping_add(reader.varint()?);
        let value = f64::from_bits(reader.u64_le()?);
        let flags = reader.byte()?;
        if flags & !EXEMPLAR_HAS_TIMESTAMP != 0 {
            return Err(reader.error("unknown exemplar flags"));
        }
        let labels = decode_labels(reader)?;
        exemplars.push(RefExemplar {
            id,
            exemplar: model::exemplar::Exemplar {
                labels,
                value,
                timestamp_ms,
                has_timestamp: flags & EXEMPLAR_HAS_TIMESTAMP != 0,
            },
        });
        previous_id = id;
    }
    if exemplars.is_empty() {
        return Err(reader.error("exemplars record with a base but no exemplars"));
    }
    if exemplars[0].id != base_id || exemplars[0].exemplar.timestamp_ms != base_t {
        return Err(reader.error("first exemplar differs from the record's base"));
    }
    Ok(exemplars)
}

fn decode_samples(reader: &mut ByteReader<'_>) -> Result<Vec<RefSample>, RecordError> {
    if reader.is_at_end() {
        return Ok(Vec::new());
    }
    let base_id = reader.uvarint()?;
    let base_t = reader.varint()?;
    // A sample takes at least 10 bytes.
    let mut samples = Vec::with_capacity(reader.remaining() / 10);
    let mut previous_id = base_id;
    while !reader.is_at_end() {
        let id = previous_id.wrapping_add(reader.varint()? as u64);
        let t = base_t.wrapping_add(reader.varint()?);
        let v = f64::from_bits(reader.u64_le()?);
        samples.push(RefSample { id, t, v });
        previous_id = id;
    }
    if samples.is_empty() {
        return Err(reader.error("samples record with a base but no samples"));
    }
    if samples[0].id != base_id || samples[0].t != base_t {
        return Err(reader.error("first sample differs from the record's base"));
    }
    Ok(samples)
}

fn decode_histograms(reader: &mut ByteReader<'_>) -> Result<Vec<RefHistogram>, RecordError> {
    if reader.is_at_end() {
        return Ok(Vec::new());
    }
    let base_id = reader.uvarint()?;
    let base_t = reader.varint()?;
    let mut samples = Vec::new();
    let mut previous_id = base_id;
    while !reader.is_at_end() {
        let id = previous_id.wrapping_add(reader.varint()? as u64);
        let t = base_t.wrapping_add(reader.varint()?);
        let h = decode_histogram(reader)?;
        samples.push(RefHistogram { id, t, h });
        previous_id = id;
    }
    if samples.is_empty() {
        return Err(reader.error("histograms record with a base but no samples"));
    }
    if samples[0].id != base_id || samples[0].t != base_t {
        return Err(reader.error("first histogram differs from the record's base"));
    }
    Ok(samples)
}

fn decode_histogram(reader: &mut ByteReader<'_>) -> Result<FloatHistogram, RecordError> {
    let counter_reset_hint = CounterResetHint::from_u8(reader.byte()?)
        .ok_or_else(|| reader.error("unknown histogram counter reset hint"))?;
    let schema = i32::try_from(reader.varint()?)
        .ok()
        .filter(|s| is_valid_schema(*s))
        .ok_or_else(|| reader.error("histogram schema out of range"))?;
    let zero_threshold = f64::from_bits(reader.u64_le()?);
    let zero_count = f64::from_bits(reader.u64_le()?);
    let count = f64::from_bits(reader.u64_le()?);
    let sum = f64::from_bits(reader.u64_le()?);
    let spans = |reader: &mut ByteReader<'_>| -> Result<Vec<Span>, RecordError> {
        let n = reader.uvarint()?;
        if n > MAX_HISTOGRAM_ITEMS {
            return Err(reader.error("too many histogram spans"));
        }
        let mut spans = Vec::with_capacity((n as usize).min(reader.remaining()));
        for _ in 0..n {
            let offset = i32::try_from(reader.varint()?)
                .map_err(|_| reader.error("histogram span offset out of range"))?;
            let length = u32::try_from(reader.uvarint()?)
                .map_err(|_| reader.error("histogram span length out of range"))?;
            spans.push(Span { offset, length });
        }
        Ok(spans)
    };
    let positive_spans = spans(reader)?;
    let negative_spans = spans(reader)?;
    let floats = |reader: &mut ByteReader<'_>| -> Result<Vec<f64>, RecordError> {
        let n = reader.uvarint()?;
        if n > MAX_HISTOGRAM_ITEMS || n.saturating_mul(8) > reader.remaining() as u64 {
            return Err(reader.error("histogram bucket list runs past the end of the record"));
        }
        (0..n)
            .map(|_| reader.u64_le().map(f64::from_bits))
            .collect()
    };
    let positive_buckets = floats(reader)?;
    let negative_buckets = floats(reader)?;
    let custom_values = floats(reader)?;
    Ok(FloatHistogram {
        counter_reset_hint,
        schema,
        zero_threshold,
        zero_count,
        count,
        sum,
        positive_spans,
        negative_spans,
        positive_buckets,
        negative_buckets,
        custom_values,
    })
}

fn decode_tombstones(reader: &mut ByteReader<'_>) -> Result<Vec<RefTombstone>, RecordError> {
    // An entry takes at least 3 bytes.
    let mut tombstones = Vec::with_capacity(reader.remaining() / 3);
    while !reader.is_at_end() {
        let id = reader.uvarint()?;
        let mint = reader.varint()?;
        let length = reader.uvarint()?;
        let Some(maxt) = mint.checked_add_unsigned(length) else {
            return Err(reader.error("tombstone interval end overflows 64 bits"));
        };
        tombstones.push(RefTombstone { id, mint, maxt });
    }
    Ok(tombstones)
}

/// Appends `value` as an unsigned LEB128 varint.
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends `value` zigzag-mapped as an unsigned varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, value: i64) {
    put_uvarint(out, ((value << 1) ^ (value >> 63)) as u64);
}

struct ByteReader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> ByteReader<'a> {
    fn is_at_end(&self) -> bool {
        self.offset >= self.bytes.len()
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.offset)
    }

    fn error(&self, reason: &'static str) -> RecordError {
        RecordError {
            offset: self.offset,
            reason,
        }
    }

    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut value: u64 = 0;
        for index in 0..10 {
            let Some(&byte) = self.bytes.get(self.offset) else {
                return Err(self.error("varint runs past the end of the record"));
            };
            self.offset += 1;
            let bits = u64::from(byte & 0x7f);
            // The tenth byte may only carry the one remaining bit.
            if index == 9 && byte > 1 {
                return Err(self.error("varint overflows 64 bits"));
            }
            value |= bits << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("varint overflows 64 bits"))
    }

    fn varint(&mut self) -> Result<i64, RecordError> {
        let raw = self.uvarint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn byte(&mut self) -> Result<u8, RecordError> {
        let Some(&byte) = self.bytes.get(self.offset) else {
            return Err(self.error("flags run past the end of the record"));
        };
        self.offset += 1;
        Ok(byte)
    }

    fn u64_le(&mut self) -> Result<u64, RecordError> {
        let end = self.offset.saturating_add(8);
        let Some(chunk) = self.bytes.get(self.offset..end) else {
            return Err(self.error("value runs past the end of the record"));
        };
        let mut array = [0u8; 8];
        array.copy_from_slice(chunk);
        self.offset = end;
        Ok(u64::from_le_bytes(array))
    }

    fn string(&mut self) -> Result<&'a str, RecordError> {
        let length = self.uvarint()?;
        if length > self.remaining() as u64 {
            return Err(self.error("string runs past the end of the record"));
        }
        let end = self.offset + length as usize;
        let bytes = &self.bytes[self.offset..end];
        let text =
            std::str::from_utf8(bytes).map_err(|_| self.error("label is not valid UTF-8"))?;
        self.offset = end;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assert_same_record(left: &Record, right: &Record) {
        match (left, right) {
            (Record::Series(a), Record::Series(b)) => assert_eq!(a, b),
            (Record::Samples(a), Record::Samples(b)) => {
                assert_eq!(a.len(), b.len());
                for (x, y) in a.iter().zip(b) {
                    assert_eq!((x.id, x.t, x.v.to_bits()), (y.id, y.t, y.v.to_bits()));
                }
            }
            (Record::Tombstones(a), Record::Tombstones(b)) => assert_eq!(a, b),
            (Record::Exemplars(a), Record::Exemplars(b)) => {
                assert_eq!(a.len(), b.len());
                for (x, y) in a.iter().zip(b) {
                    let (x, y, id) = (&x.exemplar, &y.exemplar, (x.id, y.id));
                    assert_eq!(id.0, id.1);
                    assert_eq!(x.labels, y.labels);
                    assert_eq!(
                        (x.timestamp_ms, x.has_timestamp, x.value.to_bits()),
                        (y.timestamp_ms, y.has_timestamp, y.value.to_bits())
                    );
                }
            }
            _ => panic!("record kinds differ: {left:?} vs {right:?}"),
        }
    }

    fn label_strategy() -> impl Strategy<Value = Labels> {
        proptest::collection::vec(("[a-z_]{1,8}", "\\PC{1,12}"), 0..6).prop_map(Labels::from_pairs)
    }

    proptest! {
        #[test]
        fn series_round_trip(entries in proptest::collection::vec((any::<u64>(), label_strategy()), 0..20)) {
            let series: Vec<RefSeries> = entries
                .into_iter()
                .map(|(id, labels)| RefSeries { id, labels })
                .collect();
            let mut bytes = Vec::new();
            encode_series(&series, &mut bytes);
            let decoded = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            assert_same_record(&decoded, &Record::Series(series));
        }

        #[test]
        fn samples_round_trip(entries in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<u64>()), 0..50)) {
            let samples: Vec<RefSample> = entries
                .into_iter()
                .map(|(id, t, bits)| RefSample { id, t, v: f64::from_bits(bits) })
                .collect();
            let mut bytes = Vec::new();
            encode_samples(&samples, &mut bytes);
            let decoded = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            assert_same_record(&decoded, &Record::Samples(samples));
        }

        #[test]
        fn tombstones_round_trip(entries in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<i64>()), 0..30)) {
            let tombstones: Vec<RefTombstone> = entries
                .into_iter()
                .map(|(id, a, b)| RefTombstone { id, mint: a.min(b), maxt: a.max(b) })
                .collect();
            let mut bytes = Vec::new();
            encode_tombstones(&tombstones, &mut bytes);
            let decoded = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            assert_same_record(&decoded, &Record::Tombstones(tombstones));
        }

        #[test]
        fn exemplars_round_trip(entries in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<u64>(), any::<bool>(), label_strategy()), 0..30)) {
            let exemplars: Vec<RefExemplar> = entries
                .into_iter()
                .map(|(id, t, bits, has_timestamp, labels)| RefExemplar {
                    id,
                    exemplar: model::exemplar::Exemplar {
                        labels,
                        value: f64::from_bits(bits),
                        timestamp_ms: t,
                        has_timestamp,
                    },
                })
                .collect();
            let mut bytes = Vec::new();
            encode_exemplars(&exemplars, &mut bytes);
            let decoded = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            assert_same_record(&decoded, &Record::Exemplars(exemplars));
        }

        #[test]
        fn exemplar_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..96)) {
            let mut bytes = vec![RECORD_TYPE_EXEMPLARS];
            bytes.extend_from_slice(&payload);
            let _ = decode(&bytes);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn exemplar_flags_beyond_bit_zero_are_corrupt() {
        let exemplars = [RefExemplar {
            id: 3,
            exemplar: model::exemplar::Exemplar {
                labels: Labels::from_pairs([("trace_id", "abc")]),
                value: 1.5,
                timestamp_ms: 1_700_000_000_000,
                has_timestamp: true,
            },
        }];
        let mut bytes = Vec::new();
        encode_exemplars(&exemplars, &mut bytes);
        // type, id, base t (6 bytes), id and t differences, value: the flags follow.
        let flags_at = bytes.len() - 1 - (1 + 1 + 8 + 1 + 3);
        assert_eq!(bytes[flags_at], 1);
        bytes[flags_at] = 3;
        let error = decode(&bytes).expect_err("unknown flags must not decode");
        assert_eq!(error.reason(), "unknown exemplar flags");
    }

    #[test]
    fn stale_nan_survives_bit_exact() {
        let samples = [RefSample {
            id: 7,
            t: 1_700_000_000_000,
            v: model::STALE_NAN,
        }];
        let mut bytes = Vec::new();
        encode_samples(&samples, &mut bytes);
        let Ok(Record::Samples(decoded)) = decode(&bytes) else {
            panic!("samples did not decode");
        };
        assert_eq!(decoded[0].v.to_bits(), 0x7ff0_0000_0000_0002);
    }

    #[test]
    fn samples_are_compact() {
        // 100 samples of consecutive series at the same time: id and time
        // differences take one byte each, the value eight.
        let samples: Vec<RefSample> = (0..100)
            .map(|i| RefSample {
                id: 1000 + i,
                t: 1_700_000_000_000,
                v: i as f64,
            })
            .collect();
        let mut bytes = Vec::new();
        encode_samples(&samples, &mut bytes);
        assert!(bytes.len() <= 1 + 2 + 7 + 100 * 10, "{} bytes", bytes.len());
    }

    #[test]
    fn rejects_bad_labels() {
        let check = |pairs: &[(&str, &str)], reason: &str| {
            let mut bytes = vec![RECORD_TYPE_SERIES];
            put_uvarint(&mut bytes, 1);
            put_uvarint(&mut bytes, pairs.len() as u64);
            for (name, value) in pairs {
                put_uvarint(&mut bytes, name.len() as u64);
                bytes.extend_from_slice(name.as_bytes());
                put_uvarint(&mut bytes, value.len() as u64);
                bytes.extend_from_slice(value.as_bytes());
            }
            let error = decode(&bytes).expect_err("bad labels must not decode");
            assert_eq!(error.reason(), reason);
        };
        check(
            &[("a", "1"), ("a", "2")],
            "label names not sorted or duplicated",
        );
        check(
            &[("b", "1"), ("a", "2")],
            "label names not sorted or duplicated",
        );
        check(&[("", "1")], "empty label name");
        check(&[("a", "")], "empty label value");
    }

    #[test]
    fn tombstones_cover_the_whole_time_range_and_reject_overflow() {
        let whole = RefTombstone {
            id: 9,
            mint: i64::MIN,
            maxt: i64::MAX,
        };
        let mut bytes = Vec::new();
        encode_tombstones(&[whole], &mut bytes);
        assert_eq!(decode(&bytes), Ok(Record::Tombstones(vec![whole])));
        // An empty range is not written.
        bytes.clear();
        encode_tombstones(
            &[RefTombstone {
                id: 1,
                mint: 5,
                maxt: 4,
            }],
            &mut bytes,
        );
        assert_eq!(bytes, vec![RECORD_TYPE_TOMBSTONES]);
        // mint = i64::MAX with a length of 1.
        let mut overflow = vec![RECORD_TYPE_TOMBSTONES, 1];
        put_varint(&mut overflow, i64::MAX);
        put_uvarint(&mut overflow, 1);
        let error = decode(&overflow).expect_err("maxt past i64::MAX");
        assert_eq!(error.reason(), "tombstone interval end overflows 64 bits");
        // Cut inside an entry.
        assert!(decode(&[RECORD_TYPE_TOMBSTONES, 1, 2]).is_err());
    }

    #[test]
    fn rejects_truncated_and_unknown() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0]).is_err());
        assert!(decode(&[6]).is_err());
        // Type 3 (histograms) with an empty payload holds none.
        assert_eq!(decode(&[3]), Ok(Record::Histograms(Vec::new())));
        let mut bytes = Vec::new();
        encode_samples(
            &[RefSample {
                id: 1,
                t: 2,
                v: 3.0,
            }],
            &mut bytes,
        );
        for cut in 2..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} decoded");
        }
        // An overlong varint.
        let mut overlong = vec![RECORD_TYPE_SERIES];
        overlong.extend_from_slice(&[0xff; 11]);
        assert!(decode(&overlong).is_err());
    }
}
