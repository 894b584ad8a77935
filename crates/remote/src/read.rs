//! Remote read: the protobuf messages of `prometheus.ReadRequest` and its
//! two answers (written out by hand with prost's derive, from the
//! published `remote.proto` and `types.proto`), and the framing of the
//! streamed answer.
//!
//! - A request is a snappy block holding a `ReadRequest`: queries (a time
//!   range and label matchers each) and the response types the client
//!   accepts, in order of preference. No list means `SAMPLES`.
//! - `SAMPLES`: one snappy block holding a `ReadResponse`, one
//!   `QueryResult` per query, each series with its float samples and its
//!   native histogram samples (`prometheus.Histogram`, as remote write
//!   1.0 carries them).
//! - `STREAMED_XOR_CHUNKS`: a sequence of frames, each
//!   `uvarint(len) ‖ crc32c(message) as u32 big endian ‖ message`, the
//!   message a `ChunkedReadResponse` holding part of one series of one
//!   query as Gorilla XOR chunks (the layout of `docs/format/chunks.md`'s
//!   encoding 1). Frames are not compressed.
//!
//! Decoding is bounded like remote write's: the snappy header's length
//! is checked against a limit before anything is allocated.

use model::{MatchOp, Matcher};

use crate::codec::{Histogram, Label, RemoteWriteError, Sample, decompress_snappy};

/// `prometheus.ReadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRequest {
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// [`ResponseType`] values, most preferred first.
    #[prost(enumeration = "ResponseType", repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// `prometheus.ReadRequest.ResponseType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResponseType {
    Samples = 0,
    StreamedXorChunks = 1,
}

/// `prometheus.Query`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Query {
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelMatcher {
    #[prost(enumeration = "MatcherType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `prometheus.LabelMatcher.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MatcherType {
    Eq = 0,
    Neq = 1,
    Re = 2,
    Nre = 3,
}

/// `prometheus.ReadHints`: what the client will do with the data. osprey
/// reads the whole range whatever the hints say.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadHints {
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    #[prost(string, tag = "2")]
    pub func: String,
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
    #[prost(string, repeated, tag = "5")]
    pub grouping: Vec<String>,
    #[prost(bool, tag = "6")]
    pub by: bool,
    #[prost(int64, tag = "7")]
    pub range_ms: i64,
}

/// `prometheus.ReadResponse`: one result per query, in query order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

/// `prometheus.QueryResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryResult {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<ReadSeries>,
}

/// `prometheus.TimeSeries` as remote read uses it: labels, float samples
/// and native histogram samples (the exemplar field stays empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.ChunkedReadResponse`: chunks of one series of query
/// `query_index`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub chunked_series: Vec<ChunkedSeries>,
    #[prost(int64, tag = "2")]
    pub query_index: i64,
}

/// `prometheus.ChunkedSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub chunks: Vec<Chunk>,
}

/// `prometheus.Chunk`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Chunk {
    #[prost(int64, tag = "1")]
    pub min_time_ms: i64,
    #[prost(int64, tag = "2")]
    pub max_time_ms: i64,
    #[prost(enumeration = "ChunkEncoding", tag = "3")]
    pub r#type: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

/// `prometheus.Chunk.Encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ChunkEncoding {
    Unknown = 0,
    Xor = 1,
    Histogram = 2,
    FloatHistogram = 3,
}

/// Content type of a `SAMPLES` answer (with `Content-Encoding: snappy`).
pub const SAMPLES_CONTENT_TYPE: &str = "application/x-protobuf";

/// Content type of a `STREAMED_XOR_CHUNKS` answer.
pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

/// Why a remote read request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteReadError {
    #[error(transparent)]
    Body(#[from] RemoteWriteError),
    #[error("query {query}: {message}")]
    Matcher { query: usize, message: String },
    #[error("query {query}: start {start} is after end {end}")]
    Range { query: usize, start: i64, end: i64 },
    #[error("none of the accepted response types {0:?} is supported")]
    ResponseType(Vec<i32>),
}

/// Decodes a snappy-compressed `ReadRequest`.
pub fn decode_read_request(
    body: &[u8],
    max_decompressed_bytes: usize,
) -> Result<ReadRequest, RemoteReadError> {
    let raw = decompress_snappy(body, max_decompressed_bytes)?;
    <ReadRequest as prost::Message>::decode(raw.as_slice())
        .map_err(|e| RemoteReadError::Body(RemoteWriteError::Protobuf(e.to_string())))
}

/// The response type to answer with: the client's first choice among
/// those osprey implements (both), `SAMPLES` when it names none.
pub fn negotiate(request: &ReadRequest) -> Result<ResponseType, RemoteReadError> {
    if request.accepted_response_types.is_empty() {
        return Ok(ResponseType::Samples);
    }
    request
        .accepted_response_types
        .iter()
        .find_map(|&t| ResponseType::try_from(t).ok())
        .ok_or_else(|| RemoteReadError::ResponseType(request.accepted_response_types.clone()))
}

/// A query's matchers as osprey's, checked (an invalid regular expression
/// or an unknown matcher type is an error naming the query).
pub fn query_matchers(query: &Query, index: usize) -> Result<Vec<Matcher>, RemoteReadError> {
    if query.start_timestamp_ms > query.end_timestamp_ms {
        return Err(RemoteReadError::Range {
            query: index,
            start: query.start_timestamp_ms,
            end: query.end_timestamp_ms,
        });
    }
    query
        .matchers
        .iter()
        .map(|m| {
            let op = match MatcherType::try_from(m.r#type) {
                Ok(MatcherType::Eq) => MatchOp::Equal,
                Ok(MatcherType::Neq) => MatchOp::NotEqual,
                Ok(MatcherType::Re) => MatchOp::RegexMatch,
                Ok(MatcherType::Nre) => MatchOp::RegexNoMatch,
                Err(_) => {
                    return Err(RemoteReadError::Matcher {
                        query: index,
                        message: format!("unknown matcher type {}", m.r#type),
                    });
                }
            };
            Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| {
                RemoteReadError::Matcher {
                    query: index,
                    message: e.to_string(),
                }
            })
        })
        .collect()
}

/// Encodes a `SAMPLES` answer: the protobuf, snappy-compressed.
pub fn encode_read_response(response: &ReadResponse) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(response);
    // Compressing into a Vec cannot fail for a body this process holds.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// Appends one frame of a streamed answer holding `message` to `out`.
pub fn write_frame(message: &ChunkedReadResponse, out: &mut Vec<u8>) {
    let raw = prost::Message::encode_to_vec(message);
    prost::encoding::encode_varint(raw.len() as u64, out);
    out.extend_from_slice(&crc32c::crc32c(&raw).to_be_bytes());
    out.extend_from_slice(&raw);
}

/// Why a streamed answer could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("streamed remote read frame: {0}")]
pub struct FrameError(String);

/// Reads the frames of a streamed answer, checking each checksum (the
/// inverse of [`write_frame`]; osprey's own tests and clients use it).
pub fn read_frames(mut body: &[u8]) -> Result<Vec<ChunkedReadResponse>, FrameError> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        let length = prost::encoding::decode_varint(&mut body)
            .map_err(|e| FrameError(format!("length: {e}")))?;
        let length = usize::try_from(length).map_err(|e| FrameError(e.to_string()))?;
        if body.len() < 4 || body.len() - 4 < length {
            return Err(FrameError(format!(
                "{length} bytes announced, {} left",
                body.len().saturating_sub(4)
            )));
        }
        let (crc, rest) = body.split_at(4);
        let (raw, rest) = rest.split_at(length);
        let expected = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c(raw) != expected {
            return Err(FrameError("checksum mismatch".to_string()));
        }
        frames.push(
            <ChunkedReadResponse as prost::Message>::decode(raw)
                .map_err(|e| FrameError(e.to_string()))?,
        );
        body = rest;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let message = ChunkedReadResponse {
            chunked_series: vec![ChunkedSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                chunks: vec![Chunk {
                    min_time_ms: 1,
                    max_time_ms: 2,
                    r#type: ChunkEncoding::Xor as i32,
                    data: vec![0, 1, 2, 3],
                }],
            }],
            query_index: 3,
        };
        let mut body = Vec::new();
        write_frame(&message, &mut body);
        write_frame(&message, &mut body);
        assert_eq!(read_frames(&body).unwrap(), vec![message.clone(), message]);
        let last = body.len() - 1;
        body[last] ^= 1;
        assert!(read_frames(&body).is_err());
        assert!(read_frames(&body[..body.len() - 2]).is_err());
    }

    #[test]
    fn negotiation_takes_the_first_known_type() {
        let mut request = ReadRequest::default();
        assert_eq!(negotiate(&request), Ok(ResponseType::Samples));
        request.accepted_response_types = vec![7, 1, 0];
        assert_eq!(negotiate(&request), Ok(ResponseType::StreamedXorChunks));
        request.accepted_response_types = vec![7];
        assert!(negotiate(&request).is_err());
    }

    #[test]
    fn matchers_are_checked() {
        let query = Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: 10,
            matchers: vec![LabelMatcher {
                r#type: MatcherType::Re as i32,
                name: "job".into(),
                value: "(".into(),
            }],
            hints: None,
        };
        assert!(matches!(
            query_matchers(&query, 2),
            Err(RemoteReadError::Matcher { query: 2, .. })
        ));
        let mut unknown = query.clone();
        unknown.matchers[0].r#type = 9;
        assert!(query_matchers(&unknown, 0).is_err());
        let mut backwards = query;
        backwards.start_timestamp_ms = 11;
        assert!(matches!(
            query_matchers(&backwards, 0),
            Err(RemoteReadError::Range { .. })
        ));
    }
}
