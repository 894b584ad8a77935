//! Fuzzes the trace WAL readers: arbitrary bytes as a WAL segment (records
//! framed with length and CRC-32C, Snappy payloads, each decompressed
//! within a bound and decoded) and as one decompressed batch. No panic;
//! whatever decodes encodes back to bytes that decode the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = traces::decode_wal_segment(data);
    if let Ok(spans) = traces::decode_batch(data) {
        let once = traces::encode_batch(&spans);
        let again = traces::decode_batch(&once).expect("own encoding decodes");
        assert_eq!(traces::encode_batch(&again), once);
    }
});
