//! Fuzzes the trace block reader: arbitrary bytes as a block's `spans`
//! file (magic, snappy columns with CRCs, directory, dictionaries). No
//! panic and no allocation past what the bytes can hold; a block that
//! reads is written again to the same spans.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = traces::BlockIndex::read(data);
    if let Ok(spans) = traces::block::decode(data) {
        let again = traces::block::decode(&traces::block::encode(&spans)).expect("own block reads");
        assert_eq!(again.len(), spans.len());
    }
});
