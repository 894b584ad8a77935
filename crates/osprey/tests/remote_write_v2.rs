//! Remote write 2.0 into the real `osprey` binary: an
//! `io.prometheus.write.v2.Request` (symbols table, label references,
//! samples, integer and float native histograms, exemplars, metadata,
//! created timestamp), negotiated by `Content-Type`, answered with the
//! spec's `X-Prometheus-Remote-Write-*-Written` headers, read back through
//! `/api/v1/query`; malformed requests get 400 with Prometheus's error
//! JSON and unknown messages or encodings 415.

mod support;

use std::net::SocketAddr;

use model::histogram::{CounterResetHint, FloatHistogram, Histogram, Span};
use prost::Message as _;
use remote::codec::v2;
use support::{Server, free_addr, http, http_with_headers, urlencode};

const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).expect("snappy")
}

fn write(
    addr: SocketAddr,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let (status, headers, body) = http_with_headers(
        addr,
        "POST",
        "/api/v1/write",
        &[
            ("Content-Type", content_type),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "2.0.0"),
        ],
        body,
    )
    .expect("write");
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn written(headers: &[(String, String)]) -> [Option<&str>; 3] {
    [
        header(headers, "x-prometheus-remote-write-samples-written"),
        header(headers, "x-prometheus-remote-write-histograms-written"),
        header(headers, "x-prometheus-remote-write-exemplars-written"),
    ]
}

fn query(addr: SocketAddr, q: &str, time_ms: i64) -> serde_json::Value {
    let path = format!(
        "/api/v1/query?query={}&time={:.3}",
        urlencode(q),
        time_ms as f64 / 1000.0
    );
    let (status, body) = http(addr, "GET", &path, &[], &[]).expect("query");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    json["data"]["result"].clone()
}

/// A request: `requests_total` (3 samples, one exemplar, counter
/// metadata), `latency_seconds` (an integer histogram), `load` (a float
/// gauge histogram), all with `job="v2"`.
fn request(t: i64) -> v2::Request {
    let mut symbols = v2::Symbols::new();
    let counter = v2::TimeSeries {
        labels_refs: symbols.label_refs([
            ("__name__", "requests_total"),
            ("job", "v2"),
            ("path", "/a"),
        ]),
        samples: (0..3)
            .map(|i| v2::Sample {
                value: 10.0 + i as f64,
                timestamp: t - (2 - i) * 1000,
                start_timestamp: 0,
            })
            .collect(),
        exemplars: vec![v2::Exemplar {
            labels_refs: symbols.label_refs([("trace_id", "abc")]),
            value: 0.5,
            timestamp: t,
        }],
        metadata: Some(v2::Metadata {
            r#type: 1,
            help_ref: symbols.reference("Requests."),
            unit_ref: 0,
        }),
        created_timestamp: t - 60_000,
        ..Default::default()
    };
    let integer = Histogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema: 1,
        zero_threshold: 0.001,
        zero_count: 1,
        count: 8,
        sum: 4.5,
        positive_spans: vec![Span {
            offset: 0,
            length: 2,
        }],
        positive_buckets: vec![2, 1],
        negative_spans: vec![Span {
            offset: 1,
            length: 1,
        }],
        negative_buckets: vec![2],
        custom_values: vec![],
    };
    let float = FloatHistogram {
        counter_reset_hint: CounterResetHint::Gauge,
        schema: 0,
        count: 3.5,
        sum: 2.0,
        positive_spans: vec![Span {
            offset: 1,
            length: 2,
        }],
        positive_buckets: vec![1.5, 2.0],
        ..FloatHistogram::default()
    };
    let histogram = v2::TimeSeries {
        labels_refs: symbols.label_refs([("__name__", "latency_seconds"), ("job", "v2")]),
        histograms: vec![remote::Histogram::from_integer(t, &integer)],
        ..Default::default()
    };
    let gauge = v2::TimeSeries {
        labels_refs: symbols.label_refs([("__name__", "load"), ("job", "v2")]),
        histograms: vec![remote::Histogram::from_float(t, &float)],
        ..Default::default()
    };
    v2::Request {
        symbols: symbols.into_table(),
        timeseries: vec![counter, histogram, gauge],
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[test]
fn remote_write_2_0_is_received_with_the_spec_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        &dir.path().join("data"),
        free_addr(),
        &dir.path().join("osprey.log"),
    );
    let t = now_ms() / 1000 * 1000 - 10_000;
    let (status, headers, body) = write(server.addr, V2, &snappy(&request(t).encode_to_vec()));
    assert_eq!(status, 204, "{body}\n{}", server.log_text());
    assert_eq!(written(&headers), [Some("3"), Some("2"), Some("1")]);

    let counter = query(server.addr, "requests_total{job=\"v2\"}", t);
    assert_eq!(counter[0]["value"][1], "12", "{counter}");
    assert_eq!(counter[0]["metric"]["path"], "/a");
    let latency = query(server.addr, "latency_seconds", t);
    assert_eq!(latency[0]["histogram"][1]["count"], "8", "{latency}");
    let load = query(server.addr, "load", t);
    assert_eq!(load[0]["histogram"][1]["count"], "3.5", "{load}");
    // The exemplar is stored with its series.
    let (status, body) = http(
        server.addr,
        "GET",
        &format!(
            "/api/v1/query_exemplars?query=requests_total&start={}&end={}",
            (t - 60_000) / 1000,
            t / 1000 + 1
        ),
        &[],
        &[],
    )
    .expect("exemplars");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"trace_id\":\"abc\""), "{body}");

    // Malformed 2.0 requests: 400 with Prometheus's error JSON, nothing
    // written.
    let mut odd = request(t + 1000);
    odd.timeseries[0].labels_refs.pop();
    let mut out_of_table = request(t + 1000);
    out_of_table.timeseries[1].labels_refs[1] = 999;
    let mut first_symbol = request(t + 1000);
    first_symbol.symbols[0] = "x".to_string();
    let mut no_name = request(t + 1000);
    no_name.timeseries[2].labels_refs.drain(0..2);
    for (what, bad, message) in [
        ("odd refs", odd, "odd number of references"),
        ("ref out of table", out_of_table, "out of the symbols table"),
        (
            "first symbol",
            first_symbol,
            "first symbol must be the empty string",
        ),
        ("no name", no_name, "missing metric name"),
    ] {
        let (status, headers, body) = write(server.addr, V2, &snappy(&bad.encode_to_vec()));
        assert_eq!(status, 400, "{what}: {body}");
        assert!(
            body.contains("\"errorType\":\"bad_data\""),
            "{what}: {body}"
        );
        assert!(body.contains(message), "{what}: {body}");
        assert_eq!(
            written(&headers),
            [Some("0"), Some("0"), Some("0")],
            "{what}"
        );
    }
    assert_eq!(
        query(server.addr, "requests_total{job=\"v2\"}", t + 1000)[0]["value"][1],
        "12",
        "nothing of a refused request is stored"
    );

    // An unknown message or encoding: 415.
    for (content_type, encoding) in [
        (
            "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            "snappy",
        ),
        ("application/json", "snappy"),
        (V2, "zstd"),
    ] {
        let (status, _, body) = http_with_headers(
            server.addr,
            "POST",
            "/api/v1/write",
            &[
                ("Content-Type", content_type),
                ("Content-Encoding", encoding),
            ],
            &snappy(&request(t).encode_to_vec()),
        )
        .expect("write");
        assert_eq!(
            status,
            415,
            "{content_type} {encoding}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    // 1.0 named explicitly still works, and has no 2.0 headers.
    let v1 = remote::WriteRequest {
        timeseries: vec![remote::TimeSeries {
            labels: vec![remote::Label {
                name: "__name__".into(),
                value: "v1_metric".into(),
            }],
            samples: vec![remote::Sample {
                value: 1.0,
                timestamp: t,
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let (status, headers, body) = write(
        server.addr,
        "application/x-protobuf;proto=prometheus.WriteRequest",
        &snappy(&v1.encode_to_vec()),
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(written(&headers), [None, None, None]);
}
