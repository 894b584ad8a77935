//! A zero-copy decoder for remote-write 2.0 `io.prometheus.write.v2.Request`
//! protobufs: the symbols table (field 4) is read first, wherever it sits
//! in the message, then each `TimeSeries` (field 5) is handed over with its
//! labels resolved from `labels_refs` (1), its samples (2), native
//! histograms (3, the same message as 1.0's), exemplars (4, labels by
//! reference), and its metadata (5) and created timestamp (6), which are
//! checked and passed on, as are the per-sample start timestamps of the
//! spec's later schema (`Sample` field 3, `Histogram` field 17, where
//! field 6 is reserved). Unknown fields are skipped by wire type.

use super::{
    DecodeError, RawExemplar, RawHistogram, Reader, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT,
    decode_histogram, repeated, utf8,
};

/// A series' `Metadata`: the metric type number (0 unspecified, 1
/// counter, 2 gauge, 3 histogram, 4 gauge histogram, 5 summary, 6 info, 7
/// state set) and the help and unit texts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawMetadata<'a> {
    pub metric_type: u64,
    pub help: &'a str,
    pub unit: &'a str,
}

/// What a 2.0 series carries besides labels, samples, exemplars and
/// histograms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeriesExtras<'a, 's> {
    pub metadata: RawMetadata<'a>,
    /// Milliseconds; 0 when not sent.
    pub created_timestamp: i64,
    /// Each sample's `start_timestamp` (milliseconds, 0 when not sent),
    /// one per sample, in order.
    pub sample_start_timestamps: &'s [i64],
    /// Each histogram's `start_timestamp`, one per histogram, in order.
    pub histogram_start_timestamps: &'s [i64],
}

/// The most labels (twice the references) one series or exemplar may
/// name.
const MAX_LABEL_REFS: usize = 1 << 16;

/// Decodes a 2.0 request and calls `on_series` once per time series, in
/// message order, with its labels resolved from the symbols table.
/// References out of the table, an odd number of label references, or a
/// table whose first symbol is not empty are errors.
pub fn decode_write_request_v2<'a, E: From<DecodeError>>(
    buf: &'a [u8],
    mut on_series: impl FnMut(
        &[(&'a str, &'a str)],
        &[(i64, f64)],
        &[RawExemplar<'a>],
        &[RawHistogram],
        SeriesExtras<'a, '_>,
    ) -> Result<(), E>,
) -> Result<(), E> {
    let mut symbols: Vec<&'a str> = Vec::new();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        if field == 4 && wire == WIRE_LEN {
            symbols.push(utf8(r.bytes()?, "symbol")?);
        } else {
            r.skip(wire)?;
        }
    }
    if symbols.first().is_some_and(|first| !first.is_empty()) {
        return Err(DecodeError::new("the first symbol must be the empty string").into());
    }
    let mut labels: Vec<(&'a str, &'a str)> = Vec::new();
    let mut refs: Vec<u64> = Vec::new();
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let mut exemplars: Vec<RawExemplar<'a>> = Vec::new();
    let mut histograms: Vec<RawHistogram> = Vec::new();
    let mut sample_starts: Vec<i64> = Vec::new();
    let mut histogram_starts: Vec<i64> = Vec::new();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        if field != 5 || wire != WIRE_LEN {
            r.skip(wire)?;
            continue;
        }
        let series = r.bytes()?;
        labels.clear();
        refs.clear();
        samples.clear();
        exemplars.clear();
        histograms.clear();
        sample_starts.clear();
        histogram_starts.clear();
        let mut metadata = RawMetadata::default();
        let mut created_timestamp = 0;
        let mut s = Reader::new(series);
        while !s.done() {
            let (f, w) = s.key()?;
            match (f, w) {
                (1, _) => label_refs(&mut s, w, &mut refs)?,
                (2, WIRE_LEN) => {
                    let (t, v, start) = decode_sample(s.bytes()?)?;
                    samples.push((t, v));
                    sample_starts.push(start);
                }
                (3, WIRE_LEN) => {
                    let bytes = s.bytes()?;
                    histograms.push(decode_histogram(bytes)?);
                    histogram_starts.push(histogram_start_timestamp(bytes)?);
                }
                (4, WIRE_LEN) => exemplars.push(decode_exemplar(s.bytes()?, &symbols)?),
                (5, WIRE_LEN) => metadata = decode_metadata(s.bytes()?, &symbols)?,
                (6, WIRE_VARINT) => created_timestamp = s.varint()? as i64,
                _ => s.skip(w)?,
            }
        }
        resolve(&refs, &symbols, &mut labels)?;
        let extras = SeriesExtras {
            metadata,
            created_timestamp,
            sample_start_timestamps: &sample_starts,
            histogram_start_timestamps: &histogram_starts,
        };
        on_series(&labels, &samples, &exemplars, &histograms, extras)?;
    }
    Ok(())
}

/// Reads `labels_refs` (packed or not) into `refs`.
fn label_refs(r: &mut Reader<'_>, wire: u64, refs: &mut Vec<u64>) -> Result<(), DecodeError> {
    repeated(r, wire, WIRE_VARINT, 0, |v| refs.push(v))
        .map_err(|e| DecodeError::new(format!("labels_refs: {}", e.message)))?;
    if refs.len() > MAX_LABEL_REFS {
        return Err(DecodeError::new("too many label references"));
    }
    Ok(())
}

fn symbol<'a>(symbols: &[&'a str], reference: u64) -> Result<&'a str, DecodeError> {
    usize::try_from(reference)
        .ok()
        .and_then(|i| symbols.get(i).copied())
        .ok_or_else(|| {
            DecodeError::new(format!(
                "symbol reference {reference} is out of the symbols table (of {} symbols)",
                symbols.len()
            ))
        })
}

/// Name and value pairs from `labels_refs`.
fn resolve<'a>(
    refs: &[u64],
    symbols: &[&'a str],
    out: &mut Vec<(&'a str, &'a str)>,
) -> Result<(), DecodeError> {
    if !refs.len().is_multiple_of(2) {
        return Err(DecodeError::new(format!(
            "labels_refs has an odd number of references ({})",
            refs.len()
        )));
    }
    for pair in refs.chunks_exact(2) {
        out.push((symbol(symbols, pair[0])?, symbol(symbols, pair[1])?));
    }
    Ok(())
}

/// A sample's timestamp, value and start timestamp (0 when not sent).
fn decode_sample(buf: &[u8]) -> Result<(i64, f64, i64), DecodeError> {
    let mut r = Reader::new(buf);
    let (mut t, mut v, mut start) = (0i64, 0f64, 0i64);
    while !r.done() {
        let (f, w) = r.key()?;
        match (f, w) {
            (1, WIRE_FIXED64) => v = f64::from_bits(r.fixed64()?),
            (2, WIRE_VARINT) => t = r.varint()? as i64,
            (3, WIRE_VARINT) => start = r.varint()? as i64,
            _ => r.skip(w)?,
        }
    }
    Ok((t, v, start))
}

/// A 2.0 histogram's `start_timestamp` (field 17; 0 when not sent). The
/// rest of the message is read by the 1.0 histogram decoder, which skips
/// this field.
fn histogram_start_timestamp(buf: &[u8]) -> Result<i64, DecodeError> {
    let mut r = Reader::new(buf);
    let mut start = 0i64;
    while !r.done() {
        let (f, w) = r.key()?;
        match (f, w) {
            (17, WIRE_VARINT) => start = r.varint()? as i64,
            _ => r.skip(w)?,
        }
    }
    Ok(start)
}

fn decode_exemplar<'a>(buf: &'a [u8], symbols: &[&'a str]) -> Result<RawExemplar<'a>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut refs = Vec::new();
    let mut exemplar = RawExemplar {
        labels: Vec::new(),
        value: 0.0,
        timestamp: 0,
    };
    while !r.done() {
        let (f, w) = r.key()?;
        match (f, w) {
            (1, _) => label_refs(&mut r, w, &mut refs)?,
            (2, WIRE_FIXED64) => exemplar.value = f64::from_bits(r.fixed64()?),
            (3, WIRE_VARINT) => exemplar.timestamp = r.varint()? as i64,
            _ => r.skip(w)?,
        }
    }
    resolve(&refs, symbols, &mut exemplar.labels)?;
    Ok(exemplar)
}

fn decode_metadata<'a>(buf: &'a [u8], symbols: &[&'a str]) -> Result<RawMetadata<'a>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut metadata = RawMetadata::default();
    while !r.done() {
        let (f, w) = r.key()?;
        match (f, w) {
            (1, WIRE_VARINT) => metadata.metric_type = r.varint()?,
            (3, WIRE_VARINT) => metadata.help = symbol(symbols, r.varint()?)?,
            (4, WIRE_VARINT) => metadata.unit = symbol(symbols, r.varint()?)?,
            _ => r.skip(w)?,
        }
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{len_field, varint};
    use super::*;

    fn varint_field(field: u64, value: u64, out: &mut Vec<u8>) {
        varint((field << 3) | WIRE_VARINT, out);
        varint(value, out);
    }

    type Seen = Vec<(
        Vec<(String, String)>,
        Vec<(i64, f64)>,
        usize,
        u64,
        String,
        i64,
    )>;

    fn decode(buf: &[u8]) -> Result<Seen, DecodeError> {
        let mut seen = Vec::new();
        decode_write_request_v2::<DecodeError>(buf, |labels, samples, exemplars, _, extras| {
            seen.push((
                labels
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                samples.to_vec(),
                exemplars.len(),
                extras.metadata.metric_type,
                extras.metadata.help.to_string(),
                extras.created_timestamp,
            ));
            Ok(())
        })?;
        Ok(seen)
    }

    /// The later schema's start timestamps: per sample (field 3) and per
    /// histogram (field 17), one entry per sample or histogram, 0 where
    /// not sent.
    #[test]
    fn start_timestamps_per_sample_and_histogram() {
        let mut series = Vec::new();
        for reference in [1, 2] {
            varint_field(1, reference, &mut series);
        }
        for (t, start) in [(1000, 400), (2000, 0)] {
            let mut sample = Vec::new();
            varint((1 << 3) | WIRE_FIXED64, &mut sample);
            sample.extend_from_slice(&1.0f64.to_bits().to_le_bytes());
            varint_field(2, t, &mut sample);
            if start != 0 {
                varint_field(3, start, &mut sample);
            }
            len_field(2, &sample, &mut series);
        }
        let mut histogram = Vec::new();
        varint_field(1, 0, &mut histogram);
        varint_field(15, 3000, &mut histogram);
        varint_field(17, 2500, &mut histogram);
        len_field(3, &histogram, &mut series);
        let mut request = Vec::new();
        len_field(5, &series, &mut request);
        for symbol in ["", "__name__", "up"] {
            len_field(4, symbol.as_bytes(), &mut request);
        }
        let mut seen = Vec::new();
        decode_write_request_v2::<DecodeError>(&request, |_, samples, _, histograms, extras| {
            seen.push((
                samples.to_vec(),
                histograms.len(),
                extras.sample_start_timestamps.to_vec(),
                extras.histogram_start_timestamps.to_vec(),
                extras.created_timestamp,
            ));
            Ok(())
        })
        .expect("decode");
        assert_eq!(
            seen,
            vec![(
                vec![(1000, 1.0), (2000, 1.0)],
                1,
                vec![400, 0],
                vec![2500],
                0
            )]
        );
    }

    /// A series written by hand: unpacked label references, the symbols
    /// after the series (a decoder must not assume their order), an
    /// exemplar and metadata by reference, a created timestamp.
    #[test]
    fn unpacked_references_and_symbols_after_the_series() {
        let mut series = Vec::new();
        for reference in [1, 2, 3, 4] {
            varint_field(1, reference, &mut series);
        }
        let mut sample = Vec::new();
        varint((1 << 3) | WIRE_FIXED64, &mut sample);
        sample.extend_from_slice(&2.5f64.to_bits().to_le_bytes());
        varint_field(2, 1000, &mut sample);
        len_field(2, &sample, &mut series);
        let mut exemplar = Vec::new();
        let mut packed = Vec::new();
        varint(5, &mut packed);
        varint(6, &mut packed);
        len_field(1, &packed, &mut exemplar);
        len_field(4, &exemplar, &mut series);
        let mut metadata = Vec::new();
        varint_field(1, 1, &mut metadata);
        varint_field(3, 7, &mut metadata);
        len_field(5, &metadata, &mut series);
        varint_field(6, 500, &mut series);
        let mut request = Vec::new();
        len_field(5, &series, &mut request);
        for symbol in ["", "__name__", "up", "job", "j", "trace_id", "t1", "Help."] {
            len_field(4, symbol.as_bytes(), &mut request);
        }
        let seen = decode(&request).expect("decode");
        assert_eq!(
            seen,
            vec![(
                vec![
                    ("__name__".to_string(), "up".to_string()),
                    ("job".to_string(), "j".to_string())
                ],
                vec![(1000, 2.5)],
                1,
                1,
                "Help.".to_string(),
                500
            )]
        );

        // A help reference outside the table is an error.
        let mut bad = Vec::new();
        let mut series = Vec::new();
        let mut metadata = Vec::new();
        varint_field(3, 99, &mut metadata);
        len_field(5, &metadata, &mut series);
        len_field(5, &series, &mut bad);
        len_field(4, b"", &mut bad);
        assert!(decode(&bad).is_err());
        // Truncated input is an error, not a panic.
        assert!(decode(&request[..request.len() - 3]).is_err());
    }
}
