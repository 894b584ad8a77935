//! Fuzz target `block_index`: arbitrary bytes as a block's index file,
//! opened and then walked whole the way `osprey tsdb verify` and the
//! check at block open walk it (every series entry, every postings list).
//! Neither may panic; bad bytes are corruption errors.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(index) = tsdb::index::IndexReader::from_bytes(data.to_vec(), std::path::Path::new("index"))
    else {
        return;
    };
    if let Ok(check) = tsdb::verify::verify_index(&index) {
        assert_eq!(check.series, u64::from(index.num_series()));
    }
});
