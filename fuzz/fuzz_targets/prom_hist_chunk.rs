//! Fuzzes the reader of Prometheus's histogram chunk encodings (what
//! streamed remote read answers carry): no input may panic, and what
//! decodes re-encodes to chunks that decode to the same timestamps,
//! counts and sums.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsdb::chunkenc::prom_hist::{self, PromHistEncoding};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let encoding = if first & 1 == 0 {
        PromHistEncoding::Histogram
    } else {
        PromHistEncoding::FloatHistogram
    };
    let Ok(samples) = prom_hist::decode(encoding, rest) else {
        return;
    };
    let mut back = Vec::new();
    for chunk in prom_hist::encode(&samples) {
        back.extend(
            prom_hist::decode(chunk.encoding, &chunk.bytes).expect("a written chunk decodes"),
        );
    }
    assert_eq!(back.len(), samples.len());
    for ((t, h), (t2, h2)) in samples.iter().zip(&back) {
        assert_eq!(t, t2);
        assert_eq!(h.sum.to_bits(), h2.sum.to_bits());
        assert_eq!(h.count.to_bits(), h2.count.to_bits());
    }
});
