//! Fuzz target `wal_exemplars`: arbitrary bytes as the payload of a WAL
//! exemplars record (type 4, `docs/format/wal.md`), so every input reaches
//! the exemplar decoder. Decoding must not panic; an exemplars record that
//! decodes must re-encode to a record that decodes to the same exemplars
//! (values bit for bit), with label names strictly increasing and no empty
//! name or value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsdb::wal::{RECORD_TYPE_EXEMPLARS, Record, decode, encode_exemplars};

fuzz_target!(|data: &[u8]| {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(RECORD_TYPE_EXEMPLARS);
    bytes.extend_from_slice(data);
    let Ok(record) = decode(&bytes) else {
        return;
    };
    let Record::Exemplars(exemplars) = record else {
        panic!("a type-4 record decoded as another kind");
    };
    for entry in &exemplars {
        let labels: Vec<_> = entry.exemplar.labels.iter().collect();
        for pair in labels.windows(2) {
            assert!(pair[0].name < pair[1].name);
        }
        assert!(labels.iter().all(|l| !l.name.is_empty() && !l.value.is_empty()));
    }
    let mut encoded = Vec::new();
    encode_exemplars(&exemplars, &mut encoded);
    let Ok(Record::Exemplars(again)) = decode(&encoded) else {
        panic!("re-encoded exemplars must decode");
    };
    assert_eq!(exemplars.len(), again.len());
    for (x, y) in exemplars.iter().zip(&again) {
        let (e, f) = (&x.exemplar, &y.exemplar);
        assert_eq!(
            (x.id, e.timestamp_ms, e.has_timestamp, e.value.to_bits(), &e.labels),
            (y.id, f.timestamp_ms, f.has_timestamp, f.value.to_bits(), &f.labels)
        );
    }
});
