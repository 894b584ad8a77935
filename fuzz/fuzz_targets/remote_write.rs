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
    let _ = server::remote::decode_remote_write(data, MAX_DECOMPRESSED_BYTES);
    if let Ok(request) = server::remote::decode_write_request_protobuf(data) {
        let _ = server::remote::validate_write_request(request);
    }
});
