//! Fuzzes the native histogram chunk decoder (encoding 4): no input may
//! panic, and a chunk that decodes re-encodes (as one run, with its own
//! hint) to bytes that decode to the same samples.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsdb::chunkenc::hist;

fuzz_target!(|data: &[u8]| {
    let _ = hist::num_samples(data);
    let _ = hist::is_integer(data);
    let Ok(samples) = hist::decode(data) else {
        return;
    };
    let Some((_, first)) = samples.first() else {
        return;
    };
    let mut again = Vec::new();
    if hist::encode(&samples, first.counter_reset_hint, false, &mut again).is_ok() {
        let back = hist::decode(&again).expect("a re-encoded chunk decodes");
        assert_eq!(back.len(), samples.len());
        for ((t, h), (t2, h2)) in samples.iter().zip(&back) {
            assert_eq!(t, t2);
            assert_eq!(h.sum.to_bits(), h2.sum.to_bits());
            assert_eq!(h.count.to_bits(), h2.count.to_bits());
        }
    }
});
