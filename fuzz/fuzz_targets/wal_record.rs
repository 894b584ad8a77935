//! Fuzz target `wal_record`: arbitrary bytes as a WAL record and as a whole
//! WAL segment. Neither may panic, and every record that decodes must
//! re-encode to bytes that decode to the same record (values compared bit
//! for bit).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsdb::wal::{
    Record, decode, encode_exemplars, encode_histograms, encode_samples, encode_series,
    encode_tombstones, scan_segment_bytes,
};

fn check_round_trip(bytes: &[u8]) {
    let Ok(record) = decode(bytes) else {
        return;
    };
    let mut encoded = Vec::new();
    match &record {
        Record::Series(series) => encode_series(series, &mut encoded),
        Record::Samples(samples) => encode_samples(samples, &mut encoded),
        Record::Tombstones(tombstones) => encode_tombstones(tombstones, &mut encoded),
        Record::Exemplars(exemplars) => encode_exemplars(exemplars, &mut encoded),
        Record::Histograms(histograms) => encode_histograms(histograms, &mut encoded),
    }
    let again = decode(&encoded).expect("a re-encoded record must decode");
    match (&record, &again) {
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
                let (e, f) = (&x.exemplar, &y.exemplar);
                assert_eq!(
                    (x.id, e.timestamp_ms, e.has_timestamp, e.value.to_bits(), &e.labels),
                    (y.id, f.timestamp_ms, f.has_timestamp, f.value.to_bits(), &f.labels)
                );
            }
        }
        // Compared in full by the `wal_histograms` target; here the kind,
        // ids and times.
        (Record::Histograms(a), Record::Histograms(b)) => {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                assert_eq!((x.id, x.t), (y.id, y.t));
            }
        }
        _ => panic!("record kind changed on re-encoding"),
    }
}

fuzz_target!(|data: &[u8]| {
    check_round_trip(data);
    let scan = scan_segment_bytes(data, &mut |record| check_round_trip(record));
    assert!(scan.valid_len <= data.len() as u64);
    if let Some(corruption) = scan.corruption {
        assert_eq!(corruption.offset, scan.valid_len);
    }
});
