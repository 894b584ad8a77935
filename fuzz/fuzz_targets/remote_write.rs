//! Fuzzes the remote write decoding the `/api/v1/write` handler runs: the
//! whole snappy + protobuf + validation path, and the protobuf decoding
//! and validation alone (most inputs fail snappy first, so the second path
//! lets the fuzzer reach protobuf structure directly).
#![no_main]
use libfuzzer_sys::fuzz_target;

/// A small decompressed-size limit so the fuzzer explores the size check
/// without spending its time allocating large buffers.
const MAX_DECOMPRESSED_BYTES: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = remote::decode_remote_write(data, MAX_DECOMPRESSED_BYTES);
    let _ = remote::visit_write_request::<remote::RemoteWriteError>(data, |labels, samples| {
        assert!(labels.iter().any(|(n, _)| *n == "__name__"));
        assert!(!samples.is_empty());
        Ok(())
    });
    // The histograms path the handler takes: each histogram decodes to
    // values the model can validate (an error, never a panic).
    let _ = remote::visit_write_request_full::<remote::RemoteWriteError>(
        data,
        |_, _, _, histograms| {
            for h in histograms {
                let _ = match h {
                    remote::RawHistogram::Integer { histogram, .. } => histogram.validate(),
                    remote::RawHistogram::Float { histogram, .. } => histogram.validate(),
                };
            }
            Ok(())
        },
    );
});
