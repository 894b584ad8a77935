//! Fuzz target `tombstones`: arbitrary bytes as a block's tombstones file,
//! both as they are and wrapped in a valid header and CRC (so the fuzzer
//! reaches the entries instead of stopping at the checksum). Decoding must
//! not panic, and whatever decodes must re-encode to exactly the same
//! bytes (the format has one encoding per value), with every interval
//! sorted, disjoint and non-adjacent.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsdb::tombstones::{TOMBSTONES_MAGIC, TOMBSTONES_VERSION, Tombstones};

fn check(bytes: &[u8]) {
    let Ok(tombstones) = Tombstones::decode(bytes) else {
        return;
    };
    let mut again = Vec::new();
    tombstones.encode(&mut again);
    assert_eq!(again, bytes, "a decoded file must re-encode to its bytes");
    for (_, intervals) in tombstones.iter() {
        let list = intervals.as_slice();
        assert!(!list.is_empty());
        for window in list.windows(2) {
            assert!(window[0].1 < window[1].0 && window[1].0 - window[0].1 > 1);
        }
        for &(mint, maxt) in list {
            assert!(mint <= maxt);
            assert!(intervals.contains(mint) && intervals.contains(maxt));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut file = TOMBSTONES_MAGIC.to_vec();
    file.push(TOMBSTONES_VERSION);
    file.extend_from_slice(data);
    let crc = crc32c::crc32c(&file);
    file.extend_from_slice(&crc.to_le_bytes());
    check(&file);
});
