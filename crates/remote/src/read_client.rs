//! The client side of remote read: asks one `remote_read` store for the
//! series of one selector over one time range.
//!
//! It asks for `STREAMED_XOR_CHUNKS` first and `SAMPLES` second, and reads
//! whichever the store answers (Prometheus 2.x answers streamed chunks,
//! older stores and many others samples), float and native histogram
//! samples alike: streamed histograms come in Prometheus's own histogram
//! chunk encodings (`tsdb::chunkenc::prom_hist`). The answer is read
//! whole, up to [`MAX_RESPONSE_BYTES`].

use std::time::Duration;

use config::RemoteReadConfig;
use config::client::{ClientOptions, HttpClient};
use model::histogram::FloatHistogram;
use model::{Labels, MatchOp, Matcher};
use prost::Message;

use crate::read::{
    ChunkEncoding, LabelMatcher, MatcherType, Query, ReadRequest, ReadResponse, ResponseType,
    read_frames,
};

/// Largest answer read from a store (decompressed, for `SAMPLES`).
pub const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// The user agent of remote read requests.
const USER_AGENT: &str = concat!("osprey/", env!("CARGO_PKG_VERSION"));

/// One series as a store returned it: labels, float samples and native
/// histogram samples, each in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadSeriesData {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
    pub histograms: Vec<(i64, FloatHistogram)>,
}

/// A client for one `remote_read` entry.
pub struct ReadClient {
    client: HttpClient,
    config: RemoteReadConfig,
}

impl ReadClient {
    pub fn new(config: &RemoteReadConfig) -> Result<ReadClient, String> {
        let client = HttpClient::new(&config.http, ClientOptions::new(USER_AGENT))
            .map_err(|e| format!("remote_read {}: {e}", config.url))?;
        Ok(ReadClient {
            client,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &RemoteReadConfig {
        &self.config
    }

    /// The series matching `matchers` with their samples in `[mint, maxt]`.
    pub async fn read(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<ReadSeriesData>, String> {
        let request = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: mint,
                end_timestamp_ms: maxt,
                matchers: matchers.iter().map(to_proto).collect(),
                hints: None,
            }],
            accepted_response_types: vec![
                ResponseType::StreamedXorChunks as i32,
                ResponseType::Samples as i32,
            ],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .map_err(|e| format!("compressing the request: {e}"))?;
        let mut builder = self
            .client
            .request(reqwest::Method::POST, &self.config.url)
            .await?
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .timeout(Duration::from_millis(
                self.config.remote_timeout_ms.max(1) as u64
            ))
            .body(body);
        for (name, value) in &self.config.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut response = builder
            .send()
            .await
            .map_err(|e| config::client::describe_error(&e))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| config::client::describe_error(&e))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(format!(
                    "the answer exceeds {MAX_RESPONSE_BYTES} bytes; narrow the query"
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let text: String = String::from_utf8_lossy(&bytes).chars().take(256).collect();
            return Err(format!("HTTP {status}: {}", text.trim()));
        }
        tracing::debug!(url = %self.config.url, %content_type, bytes = bytes.len(), "remote read answered");
        if content_type.starts_with("application/x-streamed-protobuf") {
            decode_streamed(&bytes)
        } else {
            decode_samples(&bytes)
        }
    }
}

fn to_proto(m: &Matcher) -> LabelMatcher {
    let kind = match m.op() {
        MatchOp::Equal => MatcherType::Eq,
        MatchOp::NotEqual => MatcherType::Neq,
        MatchOp::RegexMatch => MatcherType::Re,
        MatchOp::RegexNoMatch => MatcherType::Nre,
    };
    LabelMatcher {
        r#type: kind as i32,
        name: m.name().to_string(),
        value: m.value().to_string(),
    }
}

fn labels_of(labels: &[crate::Label]) -> Labels {
    Labels::from_pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

/// Reads a `SAMPLES` answer.
pub fn decode_samples(body: &[u8]) -> Result<Vec<ReadSeriesData>, String> {
    let raw = crate::decompress_snappy(body, MAX_RESPONSE_BYTES).map_err(|e| e.to_string())?;
    let response = ReadResponse::decode(raw.as_slice()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for result in response.results {
        for series in result.timeseries {
            let samples = series
                .samples
                .iter()
                .map(|s| (s.timestamp, s.value))
                .collect();
            let mut histograms = Vec::with_capacity(series.histograms.len());
            for h in &series.histograms {
                let histogram = h
                    .to_model()
                    .map_err(|e| format!("histogram at {}: {e}", h.timestamp))?;
                histograms.push((h.timestamp, histogram));
            }
            out.push(ReadSeriesData {
                labels: labels_of(&series.labels),
                samples,
                histograms,
            });
        }
    }
    Ok(out)
}

/// Reads a `STREAMED_XOR_CHUNKS` answer; a series spread over several
/// frames is joined.
pub fn decode_streamed(body: &[u8]) -> Result<Vec<ReadSeriesData>, String> {
    let mut out: Vec<ReadSeriesData> = Vec::new();
    for frame in read_frames(body).map_err(|e| e.to_string())? {
        for series in frame.chunked_series {
            let labels = labels_of(&series.labels);
            let mut samples = Vec::new();
            let mut histograms = Vec::new();
            for chunk in series.chunks {
                use tsdb::chunkenc::prom_hist::{self, PromHistEncoding};
                let histogram_encoding = match chunk.r#type {
                    t if t == ChunkEncoding::Xor as i32 => None,
                    t if t == ChunkEncoding::Histogram as i32 => Some(PromHistEncoding::Histogram),
                    t if t == ChunkEncoding::FloatHistogram as i32 => {
                        Some(PromHistEncoding::FloatHistogram)
                    }
                    t => return Err(format!("chunk encoding {t} is not supported")),
                };
                match histogram_encoding {
                    None => samples.extend(
                        tsdb::chunkenc::decode_all(tsdb::chunkenc::Encoding::Xor, &chunk.data)
                            .map_err(|e| format!("chunk: {}", e.reason()))?,
                    ),
                    Some(encoding) => histograms.extend(
                        prom_hist::decode(encoding, &chunk.data)
                            .map_err(|e| format!("histogram chunk: {}", e.reason()))?,
                    ),
                }
            }
            // Chunks of one kind arrive in time order; a series that
            // changed kind may interleave them.
            samples.sort_by_key(|s| s.0);
            histograms.sort_by_key(|s| s.0);
            match out.last_mut() {
                Some(last) if last.labels == labels => {
                    last.samples.extend(samples);
                    last.histograms.extend(histograms);
                }
                _ => out.push(ReadSeriesData {
                    labels,
                    samples,
                    histograms,
                }),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{QueryResult, ReadSeries, encode_read_response};
    use crate::{Label, Sample};

    #[test]
    fn sample_answers_read_back() {
        use model::histogram::{CounterResetHint, Histogram, Span};
        let integer = Histogram {
            counter_reset_hint: CounterResetHint::NotCounterReset,
            schema: 1,
            zero_threshold: 0.001,
            zero_count: 2,
            count: 8,
            sum: 12.5,
            positive_spans: vec![Span {
                offset: -1,
                length: 3,
            }],
            positive_buckets: vec![1, 2, -1],
            ..Histogram::default()
        };
        let mut float = integer.to_float();
        float.count = 8.5;
        float.positive_buckets[0] = 1.5;
        float.counter_reset_hint = CounterResetHint::Gauge;
        let response = ReadResponse {
            results: vec![QueryResult {
                timeseries: vec![ReadSeries {
                    labels: vec![
                        Label {
                            name: "job".into(),
                            value: "a".into(),
                        },
                        Label {
                            name: "__name__".into(),
                            value: "up".into(),
                        },
                    ],
                    samples: vec![
                        Sample {
                            value: 1.0,
                            timestamp: 10,
                        },
                        Sample {
                            value: f64::NAN,
                            timestamp: 20,
                        },
                    ],
                    histograms: vec![
                        crate::Histogram::from_integer(30, &integer),
                        crate::Histogram::from_float(40, &float),
                    ],
                }],
            }],
        };
        let decoded = decode_samples(&encode_read_response(&response)).unwrap();
        assert_eq!(decoded.len(), 1);
        assert_eq!(
            decoded[0].labels,
            Labels::from_pairs([("__name__", "up"), ("job", "a")])
        );
        assert_eq!(decoded[0].samples[0], (10, 1.0));
        assert!(decoded[0].samples[1].1.is_nan());
        assert_eq!(
            decoded[0].histograms,
            vec![(30, integer.to_float()), (40, float)]
        );

        // A histogram that breaks Prometheus's rules is an error, not data.
        let mut bad = crate::Histogram::from_integer(50, &integer);
        bad.count_int = Some(1);
        let response = ReadResponse {
            results: vec![QueryResult {
                timeseries: vec![ReadSeries {
                    labels: Vec::new(),
                    samples: Vec::new(),
                    histograms: vec![bad],
                }],
            }],
        };
        let error = decode_samples(&encode_read_response(&response)).unwrap_err();
        assert!(error.starts_with("histogram at 50: "), "{error}");
        assert!(decode_samples(b"not snappy").is_err());
        assert!(decode_streamed(b"\x05abc").is_err());
    }
}
