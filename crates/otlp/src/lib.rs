//! OpenTelemetry (OTLP) ingestion: the OTLP metrics messages and their
//! translation into Prometheus series as Prometheus 3's OTLP receiver does
//! it (`docs/otlp.md`).
//!
//! - [`proto`] holds the OTLP metrics messages, hand-written prost types
//!   that also read OTLP/JSON.
//! - [`decode_protobuf`] and [`decode_json`] read an
//!   `ExportMetricsServiceRequest` body (already un-gzipped); both are
//!   fuzzed.
//! - [`Translator`] turns a request into samples (names, `job`/`instance`,
//!   `target_info`, promoted attributes, histograms and summaries, delta
//!   temporality made cumulative), counting the points it refuses for
//!   OTLP's `partial_success`.
//! - [`encode_response`] and [`encode_status`] write the answers;
//!   [`decode_grpc_frame`] and [`encode_grpc_frame`] the gRPC unary framing.
//!
//! The crate does no I/O and serves no HTTP (that is `server`); it knows
//! the OTLP wire formats. The trace messages are in [`proto_trace`]
//! (sharing `common`/`resource` types from `proto`), read by
//! [`decode_traces_protobuf`] and [`decode_traces_json`].

mod json;
pub mod proto;
pub mod proto_trace;
pub mod translate;

pub use translate::{
    Kind, LabelNaming, Translated, TranslationOptions, TranslationStrategy, Translator, label_name,
    label_name_with, metric_name,
};

use prost::Message as _;

/// A gRPC unary message as it travels in an HTTP/2 body: whether it is
/// compressed, and its bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct GrpcFrame<'a> {
    pub compressed: bool,
    pub message: &'a [u8],
}

/// Reads the one length-prefixed message of a unary gRPC request body: a
/// compressed flag byte (0 or 1), a 4-byte big-endian length, then exactly
/// that many bytes. Fuzzed.
pub fn decode_grpc_frame(body: &[u8]) -> Result<GrpcFrame<'_>, DecodeError> {
    let bad = |m: &str| DecodeError(m.to_string());
    let (&flag, rest) = body.split_first().ok_or_else(|| bad("empty gRPC body"))?;
    let length: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("truncated gRPC message header"))?;
    let length = usize::try_from(u32::from_be_bytes(length)).unwrap_or(usize::MAX);
    let message = rest
        .get(4..)
        .filter(|m| m.len() == length)
        .ok_or_else(|| bad("the gRPC body is not one message of its stated length"))?;
    let compressed = match flag {
        0 => false,
        1 => true,
        _ => return Err(bad("bad gRPC compressed flag")),
    };
    Ok(GrpcFrame {
        compressed,
        message,
    })
}

/// A unary gRPC message framed for an HTTP/2 body (uncompressed).
pub fn encode_grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(message.len() + 5);
    frame.push(0);
    frame.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    frame.extend_from_slice(message);
    frame
}

/// A body that is not an `ExportMetricsServiceRequest`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

/// Reads a binary protobuf `ExportMetricsServiceRequest`.
pub fn decode_protobuf(body: &[u8]) -> Result<proto::ExportMetricsServiceRequest, DecodeError> {
    proto::ExportMetricsServiceRequest::decode(body)
        .map_err(|e| DecodeError(format!("cannot decode the protobuf body: {e}")))
}

/// Reads an OTLP/JSON `ExportMetricsServiceRequest`.
pub fn decode_json(body: &[u8]) -> Result<proto::ExportMetricsServiceRequest, DecodeError> {
    serde_json::from_slice(body)
        .map_err(|e| DecodeError(format!("cannot decode the JSON body: {e}")))
}

/// The body of a successful answer: an `ExportMetricsServiceResponse`,
/// with `partial_success` when points were refused; protobuf, or OTLP/JSON
/// when `json`.
pub fn encode_response(rejected_points: i64, error_message: &str, json: bool) -> Vec<u8> {
    if json {
        let body = if rejected_points > 0 || !error_message.is_empty() {
            serde_json::json!({"partialSuccess": {
                "rejectedDataPoints": rejected_points.to_string(),
                "errorMessage": error_message,
            }})
        } else {
            serde_json::json!({})
        };
        return body.to_string().into_bytes();
    }
    let partial_success = (rejected_points > 0 || !error_message.is_empty()).then(|| {
        proto::ExportMetricsPartialSuccess {
            rejected_data_points: rejected_points,
            error_message: error_message.to_string(),
        }
    });
    proto::ExportMetricsServiceResponse { partial_success }.encode_to_vec()
}

/// Reads a binary protobuf `ExportTraceServiceRequest`. Fuzzed.
pub fn decode_traces_protobuf(
    body: &[u8],
) -> Result<proto_trace::ExportTraceServiceRequest, DecodeError> {
    proto_trace::ExportTraceServiceRequest::decode(body)
        .map_err(|e| DecodeError(format!("cannot decode the protobuf body: {e}")))
}

/// Reads an OTLP/JSON `ExportTraceServiceRequest`. Fuzzed.
pub fn decode_traces_json(
    body: &[u8],
) -> Result<proto_trace::ExportTraceServiceRequest, DecodeError> {
    serde_json::from_slice(body)
        .map_err(|e| DecodeError(format!("cannot decode the JSON body: {e}")))
}

/// The body of a successful traces answer: an
/// `ExportTraceServiceResponse`, with `partial_success` when spans were
/// refused; protobuf, or OTLP/JSON when `json`.
pub fn encode_traces_response(rejected_spans: i64, error_message: &str, json: bool) -> Vec<u8> {
    let partial = rejected_spans > 0 || !error_message.is_empty();
    if json {
        let body = if partial {
            serde_json::json!({"partialSuccess": {
                "rejectedSpans": rejected_spans.to_string(),
                "errorMessage": error_message,
            }})
        } else {
            serde_json::json!({})
        };
        return body.to_string().into_bytes();
    }
    let partial_success = partial.then(|| proto_trace::ExportTracePartialSuccess {
        rejected_spans,
        error_message: error_message.to_string(),
    });
    proto_trace::ExportTraceServiceResponse { partial_success }.encode_to_vec()
}

/// The body of an error answer: a `google.rpc.Status` with `code` (gRPC
/// codes: 3 invalid argument, 8 resource exhausted, 14 unavailable),
/// protobuf or JSON.
pub fn encode_status(code: i32, message: &str, json: bool) -> Vec<u8> {
    if json {
        return serde_json::json!({"code": code, "message": message})
            .to_string()
            .into_bytes();
    }
    proto::Status {
        code,
        message: message.to_string(),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod grpc_tests {
    use super::*;

    #[test]
    fn grpc_frames_round_trip_and_bad_ones_are_refused() {
        let framed = encode_grpc_frame(b"abc");
        assert_eq!(framed, b"\0\0\0\0\x03abc");
        assert_eq!(
            decode_grpc_frame(&framed).expect("frame"),
            GrpcFrame {
                compressed: false,
                message: b"abc"
            }
        );
        assert!(
            decode_grpc_frame(b"\x01\0\0\0\0")
                .expect("frame")
                .compressed
        );
        for bad in [
            &b""[..],
            b"\0\0\0",
            b"\0\0\0\0\x04abc",
            b"\0\0\0\0\x02abc",
            b"\x02\0\0\0\0",
        ] {
            assert!(decode_grpc_frame(bad).is_err(), "{bad:?}");
        }
    }
}
