//! Fuzzes the WAL histogram samples record (type 3): any payload after
//! the type byte decodes or fails without panicking, and what decodes
//! re-encodes to a record that decodes to the same samples.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsdb::wal::{RECORD_TYPE_HISTOGRAMS, Record, decode, encode_histograms};

fuzz_target!(|data: &[u8]| {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(RECORD_TYPE_HISTOGRAMS);
    bytes.extend_from_slice(data);
    let Ok(Record::Histograms(samples)) = decode(&bytes) else {
        return;
    };
    let mut again = Vec::new();
    encode_histograms(&samples, &mut again);
    match decode(&again) {
        Ok(Record::Histograms(back)) => {
            assert_eq!(back.len(), samples.len());
            for (a, b) in samples.iter().zip(&back) {
                assert_eq!((a.id, a.t), (b.id, b.t));
                assert_eq!(a.h.sum.to_bits(), b.h.sum.to_bits());
                assert_eq!(a.h.positive_spans, b.h.positive_spans);
            }
        }
        other => panic!("re-encoded record decoded to {other:?}"),
    }
});
