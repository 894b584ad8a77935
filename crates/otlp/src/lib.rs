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
//! - [`encode_response`] and [`encode_status`] write the answers.
//!
//! The crate does no I/O and serves no HTTP (that is `server`); it knows
//! the OTLP wire formats. A traces receiver goes beside `proto` as its own
//! module (`proto_trace`), sharing `common`/`resource` types from `proto`.

mod json;
pub mod proto;
pub mod translate;

pub use translate::{
    Kind, Translated, TranslationOptions, TranslationStrategy, Translator, label_name, metric_name,
};

use prost::Message as _;

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
