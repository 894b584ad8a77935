//! Fuzzes the gRPC unary framing that OTLP/gRPC requests arrive in, and
//! the protobuf decoder behind it: no panic; an accepted frame's message
//! has exactly its stated length and re-frames to the same bytes when
//! uncompressed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = otlp::decode_grpc_frame(data) else {
        return;
    };
    assert_eq!(frame.message.len() + 5, data.len());
    if !frame.compressed {
        assert_eq!(otlp::encode_grpc_frame(frame.message), data);
        let _ = otlp::decode_protobuf(frame.message);
    }
});
