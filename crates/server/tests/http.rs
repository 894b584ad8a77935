//! End-to-end tests of the HTTP API through `router()` and `oneshot` (no
//! socket), plus one real round trip through `serve` on a loopback port.
//!
//! The store is `server::testing::test_storage()`; switching these tests
//! to the real TSDB is a change in that one function.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use model::{Labels, STALE_NAN};
use remote::{TimeSeries, WriteRequest, encode_remote_write};
use serde_json::{Value, json};
use server::testing::{MemoryStorage, test_storage};
use server::{AppState, ServerConfig, router};

const NOW_MS: i64 = 1_700_000_000_000;

mod common;
use common::*;

fn config() -> ServerConfig {
    ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn app_with(config: ServerConfig) -> (Arc<MemoryStorage>, Router) {
    let storage = test_storage();
    let state = AppState::with_clock(storage.clone(), config, Arc::new(|| NOW_MS));
    (storage, router(state))
}

fn app() -> (Arc<MemoryStorage>, Router) {
    app_with(config())
}

async fn post_bytes(app: &Router, uri: &str, body: Vec<u8>) -> Reply {
    send(app, Request::post(uri).body(Body::from(body)).unwrap()).await
}

fn write_request(timeseries: Vec<TimeSeries>) -> Vec<u8> {
    encode_remote_write(&WriteRequest {
        timeseries,
        metadata: vec![],
    })
}

/// Writes a small fixed data set through remote write.
async fn load_fixture(app: &Router) {
    let body = write_request(vec![
        series(
            &[("__name__", "up"), ("job", "api"), ("instance", "a:1")],
            &[(1000, 1.0), (2000, 0.0)],
        ),
        series(
            &[("__name__", "up"), ("job", "db"), ("instance", "b:1")],
            &[(1000, 1.0)],
        ),
        series(
            &[
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("path", "/x"),
            ],
            &[(3000, 10.0)],
        ),
        series(
            &[("__name__", "my.dotted"), ("http.status", "200")],
            &[(1500, 2.5)],
        ),
    ]);
    let reply = post_bytes(app, "/api/v1/write", body).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
}

fn assert_error(reply: &Reply, status: StatusCode, error_type: &str, needle: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    let body = reply.json();
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], error_type);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains(needle),
        "error {message:?} lacks {needle:?}"
    );
}

#[tokio::test]
async fn health_endpoints_answer_plain_text() {
    let (_, app) = app();
    let healthy = get(&app, "/-/healthy").await;
    assert_eq!(healthy.status, StatusCode::OK);
    assert!(healthy.text().contains("Healthy."));
    let ready = get(&app, "/-/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert!(ready.text().contains("Ready."));
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let (_, app) = app();
    assert_eq!(get(&app, "/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, "/api/v1/write").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let delete = send(
        &app,
        Request::delete("/api/v1/series")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(delete.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn remote_write_stores_everything_in_one_commit() {
    let (storage, app) = app();
    load_fixture(&app).await;
    assert_eq!(storage.commits(), 1);
    let dump = storage.dump();
    assert_eq!(dump.len(), 4);
    let up_api = Labels::from_pairs([("__name__", "up"), ("job", "api"), ("instance", "a:1")]);
    assert!(dump.contains(&(up_api, vec![(1000, 1.0), (2000, 0.0)])));
}

#[tokio::test]
async fn remote_write_refuses_bad_bodies_and_stores_nothing() {
    let (storage, app) = app();
    let good = series(&[("__name__", "ok")], &[(1, 1.0)]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"definitely not snappy \xff\xff".to_vec(), "snappy"),
        (
            snap::raw::Encoder::new()
                .compress_vec(b"\x0a\x05\x0a\x03")
                .unwrap(),
            "protobuf",
        ),
        (
            write_request(vec![
                good.clone(),
                series(&[("__name__", "x"), ("a", "1"), ("a", "2")], &[(1, 1.0)]),
            ]),
            "duplicate label name \"a\"",
        ),
        (
            write_request(vec![
                good.clone(),
                series(&[("__name__", "x"), ("", "1")], &[(1, 1.0)]),
            ]),
            "empty label name",
        ),
        (
            write_request(vec![good.clone(), series(&[("job", "x")], &[(1, 1.0)])]),
            "missing metric name",
        ),
    ];
    for (body, needle) in cases {
        let reply = post_bytes(&app, "/api/v1/write", body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "bad_data", needle);
    }
    assert!(storage.dump().is_empty());
    assert_eq!(storage.commits(), 0);
}

#[tokio::test]
async fn remote_write_failed_commit_is_500_and_invisible() {
    let (storage, app) = app();
    storage.fail_next_commit();
    let reply = post_bytes(
        &app,
        "/api/v1/write",
        write_request(vec![series(&[("__name__", "x")], &[(1, 1.0)])]),
    )
    .await;
    assert_error(
        &reply,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "injected",
    );
    assert!(storage.dump().is_empty());
}

#[tokio::test]
async fn remote_write_enforces_size_limits_with_413() {
    let mut small = config();
    small.max_remote_write_body_bytes = 64;
    small.max_remote_write_decompressed_bytes = 1 << 20;
    let (storage, app) = app_with(small);
    let big_labels = series(
        &[("__name__", "x"), ("pad", &"p".repeat(1000))],
        &[(1, 1.0)],
    );
    // The compressed body alone is over the 64-byte wire limit.
    let reply = post_bytes(
        &app,
        "/api/v1/write",
        write_request(vec![big_labels.clone(); 50]),
    )
    .await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "bad_data", "limit");

    let mut tight = config();
    tight.max_remote_write_decompressed_bytes = 1000;
    let (_, app) = app_with(tight);
    let reply = post_bytes(&app, "/api/v1/write", write_request(vec![big_labels; 50])).await;
    assert_error(
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "bad_data",
        "decompressed body",
    );
    assert!(storage.dump().is_empty());
}

#[tokio::test]
async fn series_by_get_and_post_with_several_matchers() {
    let (_, app) = app();
    load_fixture(&app).await;
    let want = json!([
        {"__name__": "http_requests_total", "job": "api", "path": "/x"},
        {"__name__": "up", "instance": "a:1", "job": "api"},
    ]);
    let by_get = get(
        &app,
        "/api/v1/series?match[]=http_requests_total&match[]=up%7Bjob%3D%22api%22%7D",
    )
    .await;
    assert_eq!(by_get.status, StatusCode::OK);
    assert_eq!(by_get.json(), json!({"status": "success", "data": want}));
    let by_post = post_form(
        &app,
        "/api/v1/series",
        "match[]=http_requests_total&match[]=up{job=\"api\"}",
    )
    .await;
    assert_eq!(by_post.json()["data"], want);

    // Overlapping sets give each series once, in label order.
    let overlap = get(
        &app,
        "/api/v1/series?match[]=up&match[]=%7Bjob%3D%22api%22%7D",
    )
    .await;
    let overlap = overlap.json();
    let names: Vec<&str> = overlap["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["__name__"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["http_requests_total", "up", "up"]);

    // Time range: only series with samples inside [start, end].
    let ranged = get(&app, "/api/v1/series?match[]=up&start=1.5&end=2").await;
    assert_eq!(
        ranged.json()["data"],
        json!([{"__name__": "up", "instance": "a:1", "job": "api"}])
    );

    // UTF-8 metric name in quotes.
    let dotted = get(&app, "/api/v1/series?match[]=%7B%22my.dotted%22%7D").await;
    assert_eq!(
        dotted.json()["data"],
        json!([{"__name__": "my.dotted", "http.status": "200"}])
    );

    let limited = get(&app, "/api/v1/series?match[]=up&limit=1").await;
    let body = limited.json();
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["warnings"], json!(["results truncated due to limit"]));
}

#[tokio::test]
async fn series_parameter_errors_are_bad_data() {
    let (_, app) = app();
    let cases = [
        ("/api/v1/series", "no match[] parameter provided"),
        (
            "/api/v1/series?match[]=up%7B",
            "invalid parameter \"match[]\": 1:4: parse error",
        ),
        (
            "/api/v1/series?match[]=%7Bjob%3D%22%22%7D",
            "match[] must contain at least one non-empty matcher",
        ),
        (
            "/api/v1/series?match[]=up&start=x",
            "invalid time value for 'start': cannot parse \"x\" to a valid timestamp",
        ),
        (
            "/api/v1/series?match[]=up&end=yesterday",
            "cannot parse \"yesterday\" to a valid timestamp",
        ),
        (
            "/api/v1/series?match[]=up&start=10&end=5",
            "end timestamp must not be before start time",
        ),
        (
            "/api/v1/series?match[]=up&limit=-3",
            "invalid parameter \"limit\"",
        ),
        (
            "/api/v1/labels?match[]=%7Ba%3D~%22(%22%7D",
            "1:2: parse error: error parsing regexp: missing closing ): `^(?:()$`",
        ),
        (
            "/api/v1/status/tsdb?limit=0",
            "limit must be a positive number",
        ),
        ("/api/v1/export", "no match[] parameter provided"),
    ];
    for (uri, needle) in cases {
        assert_error(
            &get(&app, uri).await,
            StatusCode::BAD_REQUEST,
            "bad_data",
            needle,
        );
    }
}

#[tokio::test]
async fn labels_and_label_values() {
    let (_, app) = app();
    let empty = get(&app, "/api/v1/labels").await;
    assert_eq!(empty.json(), json!({"status": "success", "data": []}));
    load_fixture(&app).await;
    assert_eq!(
        get(&app, "/api/v1/labels").await.json()["data"],
        json!(["__name__", "http.status", "instance", "job", "path"])
    );
    assert_eq!(
        get(&app, "/api/v1/labels?match[]=up").await.json()["data"],
        json!(["__name__", "instance", "job"])
    );
    assert_eq!(
        post_form(
            &app,
            "/api/v1/labels",
            "match[]=up&match[]=http_requests_total"
        )
        .await
        .json()["data"],
        json!(["__name__", "instance", "job", "path"])
    );
    assert_eq!(
        get(&app, "/api/v1/label/job/values").await.json()["data"],
        json!(["api", "db"])
    );
    assert_eq!(
        get(&app, "/api/v1/label/job/values?match[]=http_requests_total")
            .await
            .json()["data"],
        json!(["api"])
    );
    assert_eq!(
        get(&app, "/api/v1/label/__name__/values?limit=2")
            .await
            .json(),
        json!({"status": "success", "data": ["http_requests_total", "my.dotted"], "warnings": ["results truncated due to limit"]})
    );
    // Prometheus's U__ escaping of names that are not identifiers.
    assert_eq!(
        get(&app, "/api/v1/label/U__http_2e_status/values")
            .await
            .json()["data"],
        json!(["200"])
    );
    assert_eq!(
        get(&app, "/api/v1/label/nothing/values").await.json()["data"],
        json!([])
    );
    assert_eq!(
        get(&app, "/api/v1/label/job/values?start=2.5").await.json()["data"],
        json!(["api"])
    );
}

#[tokio::test]
async fn status_tsdb_has_prometheus_shape() {
    let (_, app) = app();
    load_fixture(&app).await;
    let reply = get(&app, "/api/v1/status/tsdb?limit=1").await;
    assert_eq!(reply.status, StatusCode::OK);
    let data = &reply.json()["data"];
    assert_eq!(data["headStats"]["numSeries"], 4);
    assert_eq!(data["headStats"]["minTime"], 1000);
    assert_eq!(data["headStats"]["maxTime"], 3000);
    assert!(data["headStats"]["numLabelPairs"].as_u64().unwrap() > 0);
    assert!(data["headStats"]["chunkCount"].is_u64());
    assert_eq!(
        data["seriesCountByMetricName"],
        json!([{"name": "up", "value": 2}])
    );
    for key in [
        "labelValueCountByLabelName",
        "memoryInBytesByLabelName",
        "seriesCountByLabelValuePair",
    ] {
        let list = data[key].as_array().unwrap();
        assert_eq!(list.len(), 1, "{key}");
        assert!(
            list[0]["name"].is_string() && list[0]["value"].is_u64(),
            "{key}"
        );
    }
    let default_limit = get(&app, "/api/v1/status/tsdb").await.json();
    assert_eq!(
        default_limit["data"]["seriesCountByMetricName"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(default_limit["data"]["totalSeries"], 4);
    // VictoriaMetrics's parameters: match[] (a union), focusLabel, topN.
    let filtered = get(
        &app,
        "/api/v1/status/tsdb?topN=5&focusLabel=job&match[]=up&match[]=up%7Bjob%3D%22api%22%7D",
    )
    .await
    .json();
    let data = &filtered["data"];
    assert_eq!(data["totalSeries"], 2, "{data}");
    assert_eq!(data["headStats"]["numSeries"], 4, "the head, unfiltered");
    assert_eq!(
        data["seriesCountByMetricName"],
        json!([{"name": "up", "value": 2}])
    );
    assert_eq!(
        data["seriesCountByFocusLabelValue"],
        json!([{"name": "api", "value": 1}, {"name": "db", "value": 1}])
    );
    // date: the series with samples that UTC day (all at 1-3 s here).
    let day = get(&app, "/api/v1/status/tsdb?date=1970-01-01&match[]=up")
        .await
        .json();
    assert_eq!(day["data"]["totalSeries"], 2, "{day}");
    let other = get(&app, "/api/v1/status/tsdb?date=1970-01-02")
        .await
        .json();
    assert_eq!(other["data"]["totalSeries"], 0, "{other}");
    let reply = get(&app, "/api/v1/status/tsdb?date=2024-02-30").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

/// Parses an export body into (labels JSON, values bits, timestamps).
fn parse_export(body: &str) -> Vec<(Value, Vec<u64>, Vec<i64>)> {
    body.lines()
        .map(|line| {
            let object: Value = serde_json::from_str(line).unwrap();
            let values = object["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| server::export::parse_export_value(v).unwrap().to_bits())
                .collect();
            let timestamps = object["timestamps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_i64().unwrap())
                .collect();
            (object["metric"].clone(), values, timestamps)
        })
        .collect()
}

#[tokio::test]
async fn export_reads_values_back_exactly() {
    let (storage, app) = app();
    let values = [
        1.0,
        0.1 + 0.2,
        1e-300,
        0.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        STALE_NAN,
        f64::MAX,
        5e-324,
        -123456.789,
    ];
    let samples: Vec<(i64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (NOW_MS + i as i64 * 15_000, v))
        .collect();
    let body = write_request(vec![
        series(&[("__name__", "exact"), ("job", "x")], &samples),
        series(&[("__name__", "other")], &[(-5, 7.0)]),
    ]);
    assert_eq!(
        post_bytes(&app, "/api/v1/write", body).await.status,
        StatusCode::NO_CONTENT
    );

    // Proto3 encoders (prost here, gogo-protobuf in Prometheus) leave out a
    // double equal to 0.0, which -0.0 is, so -0.0 cannot cross the remote
    // write wire; it is stored directly to check the export side.
    {
        use model::storage::Appendable;
        let mut appender = storage.appender();
        let labels = Labels::from_pairs([("__name__", "negative_zero")]);
        appender.append(&labels, 1, -0.0).unwrap();
        appender.commit().unwrap();
    }
    let negative_zero = parse_export(
        &get(&app, "/api/v1/export?match[]=negative_zero")
            .await
            .text(),
    );
    assert_eq!(negative_zero[0].1, vec![(-0.0f64).to_bits()]);

    let reply = get(&app, "/api/v1/export?match[]=exact").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/stream+json");
    let text = reply.text();
    assert!(
        text.contains("\"StaleNaN\"")
            && text.contains("\"NaN\"")
            && text.contains("0.30000000000000004")
    );
    let exported = parse_export(&text);
    assert_eq!(exported.len(), 1);
    let (metric, got_values, got_timestamps) = &exported[0];
    assert_eq!(metric, &json!({"__name__": "exact", "job": "x"}));
    let want_bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
    assert_eq!(got_values, &want_bits);
    assert_eq!(
        got_timestamps,
        &samples.iter().map(|s| s.0).collect::<Vec<_>>()
    );

    // Several matchers merge; a range cuts samples; negative timestamps survive.
    let both = parse_export(
        &get(
            &app,
            "/api/v1/export?match[]=other&match[]=%7B__name__%3D~%22.%2B%22%7D&end=1700000000",
        )
        .await
        .text(),
    );
    let names: Vec<&str> = both
        .iter()
        .map(|s| s.0["__name__"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["exact", "negative_zero", "other"]);
    assert_eq!(both[0].2, vec![NOW_MS]);
    assert_eq!(
        both[2],
        (
            json!({"__name__": "other"}),
            vec![7.0f64.to_bits()],
            vec![-5]
        )
    );
}

#[tokio::test]
async fn export_streams_large_series_in_order() {
    let (_, app) = app();
    let samples: Vec<(i64, f64)> = (0..50_000).map(|i| (i, i as f64 / 7.0)).collect();
    let body = write_request(vec![series(&[("__name__", "big")], &samples)]);
    assert_eq!(
        post_bytes(&app, "/api/v1/write", body).await.status,
        StatusCode::NO_CONTENT
    );
    let exported = parse_export(
        &post_form(&app, "/api/v1/export", "match[]=big")
            .await
            .text(),
    );
    assert_eq!(exported.len(), 1);
    let want_values: Vec<u64> = samples.iter().map(|s| s.1.to_bits()).collect();
    let want_timestamps: Vec<i64> = samples.iter().map(|s| s.0).collect();
    assert_eq!(exported[0].1.len(), want_values.len());
    let first_value_mismatch = (0..want_values.len()).find(|&i| exported[0].1[i] != want_values[i]);
    assert_eq!(first_value_mismatch, None);
    assert!(exported[0].2 == want_timestamps, "timestamps differ");
}

#[tokio::test]
async fn metrics_expose_storage_counters_and_http_durations() {
    let (_, app) = app();
    load_fixture(&app).await;
    let _ = get(&app, "/api/v1/label/job/values").await;
    let reply = get(&app, "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .content_type
            .starts_with("application/openmetrics-text"),
        "{}",
        reply.content_type
    );
    let text = reply.text();
    for needle in [
        "osprey_tsdb_samples_appended_total 5\n",
        "osprey_tsdb_series_created_total 4\n",
        "osprey_tsdb_head_series 4\n",
        "# TYPE osprey_tsdb_wal_writes counter",
        "# TYPE osprey_tsdb_wal_fsyncs counter",
        "# TYPE osprey_tsdb_compactions counter",
        "# TYPE osprey_http_request_duration_seconds histogram",
        "osprey_http_request_duration_seconds_count{handler=\"/api/v1/write\",code=\"204\"} 1\n",
        "osprey_http_request_duration_seconds_count{handler=\"/api/v1/label/{name}/values\",code=\"200\"} 1\n",
        "# EOF\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[tokio::test]
async fn import_prometheus_text_with_millisecond_timestamps() {
    let (storage, app) = app();
    let body = "# HELP up Whether up.\n# TYPE up gauge\nup{job=\"a\"} 1 1700000000123\nup{job=\"b\"} 0\nnot_up 2.5e-3 -7\n";
    let reply = post_bytes(
        &app,
        "/api/v1/import/prometheus?extra_label=env=prod&extra_label=job=forced",
        body.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert_eq!(storage.commits(), 1);
    // extra_label overrides job, so the two `up` samples land in one series.
    assert_eq!(
        storage.dump(),
        vec![
            (
                Labels::from_pairs([("__name__", "not_up"), ("env", "prod"), ("job", "forced")]),
                vec![(-7, 2.5e-3)]
            ),
            (
                Labels::from_pairs([("__name__", "up"), ("env", "prod"), ("job", "forced")]),
                vec![(NOW_MS, 0.0), (1_700_000_000_123, 1.0)]
            ),
        ]
    );
}

#[tokio::test]
async fn import_prometheus_refuses_bad_bodies_and_stores_nothing() {
    let (storage, app) = app();
    let reply = post_bytes(
        &app,
        "/api/v1/import/prometheus",
        b"ok 1\nbad{ 1\n".to_vec(),
    )
    .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "line 2, column",
    );
    let reply = post_bytes(
        &app,
        "/api/v1/import/prometheus",
        b"ok 1\nx{a=\"1\",a=\"2\"} 1\n".to_vec(),
    )
    .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "duplicate label name \"a\"",
    );
    let reply = post_bytes(
        &app,
        "/api/v1/import/prometheus?extra_label=novalue",
        b"ok 1\n".to_vec(),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "bad_data", "extra_label");
    assert!(storage.dump().is_empty());
    assert_eq!(storage.commits(), 0);
}

#[tokio::test]
async fn import_prometheus_round_trips_through_export() {
    let (_, app) = app();
    let body = "m{k=\"v\"} 0.30000000000000004 1000\nm{k=\"v\"} 1e-300 2000\nm{k=\"v\"} NaN 3000\nm{k=\"v\"} +Inf 4000\nm{k=\"v\"} -Inf 5000\nm{k=\"v\"} -0 6000\n";
    let reply = post_bytes(&app, "/api/v1/import/prometheus", body.as_bytes().to_vec()).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    let exported = parse_export(&get(&app, "/api/v1/export?match[]=m").await.text());
    let want: Vec<u64> = [
        0.1 + 0.2,
        1e-300,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
    ]
    .iter()
    .map(|v| v.to_bits())
    .collect();
    // Any NaN exports as "NaN" and reads back as the canonical NaN.
    assert!(f64::from_bits(exported[0].1[2]).is_nan());
    let mut got = exported[0].1.clone();
    got[2] = f64::NAN.to_bits();
    assert_eq!(got, want);
    assert_eq!(exported[0].2, vec![1000, 2000, 3000, 4000, 5000, 6000]);
}

/// The one test with a socket: `serve` on a loopback port, a raw HTTP/1.1
/// request, then a graceful shutdown.
#[tokio::test]
async fn serve_answers_over_tcp_and_shuts_down_gracefully() {
    // Find a free port; `serve` binds it itself.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let storage: Arc<dyn model::storage::Storage> = test_storage();
    let server = tokio::spawn(server::serve(ServerConfig::new(address), storage, async {
        let _ = stopped.await;
    }));
    // A blocking client on the blocking pool: tokio's io-util feature is
    // not needed for one request.
    let response = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        for _ in 0..250 {
            if let Ok(mut stream) = std::net::TcpStream::connect(address) {
                stream
                    .write_all(
                        b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                    )
                    .unwrap();
                let mut response = String::new();
                stream.read_to_string(&mut response).unwrap();
                return response;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("server did not start listening");
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("Healthy.\n"), "{response}");
    stop.send(()).unwrap();
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "serve did not stop cleanly"
    );
}
