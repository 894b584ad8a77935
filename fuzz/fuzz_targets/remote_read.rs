//! Fuzzes what `POST /api/v1/read` runs on a request before touching the
//! store: the snappy + protobuf decoding, the response-type negotiation and
//! the conversion of every query's matchers (regular expressions compiled).
//! The data is also tried as an uncompressed body (wrapped in a valid
//! snappy block) so the fuzzer reaches the protobuf directly, and as a
//! streamed answer, whose frame reader must refuse damage without panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

/// A small decompressed-size limit so the fuzzer explores the size check
/// without spending its time allocating large buffers.
const MAX_DECOMPRESSED_BYTES: usize = 1 << 20;

fn check(body: &[u8]) {
    if let Ok(request) = remote::read::decode_read_request(body, MAX_DECOMPRESSED_BYTES) {
        let _ = remote::read::negotiate(&request);
        for (i, query) in request.queries.iter().enumerate() {
            if let Ok(matchers) = remote::read::query_matchers(query, i) {
                assert_eq!(matchers.len(), query.matchers.len());
                assert!(query.start_timestamp_ms <= query.end_timestamp_ms);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Ok(wrapped) = snap::raw::Encoder::new().compress_vec(data) {
        check(&wrapped);
    }
    if let Ok(frames) = remote::read::read_frames(data) {
        let mut again = Vec::new();
        for frame in &frames {
            remote::read::write_frame(frame, &mut again);
        }
        assert_eq!(remote::read::read_frames(&again).ok(), Some(frames));
    }
});
