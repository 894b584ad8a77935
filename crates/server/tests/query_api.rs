//! The PromQL HTTP API through `router()` and `oneshot` (no socket):
//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`, the
//! `status/*` pages, and the scraping endpoints with no scraping started.
//!
//! Shapes and messages are checked against Prometheus's `web/api/v1`:
//! timestamps are seconds with millisecond decimals, values are strings,
//! and errors are `{"status":"error","errorType":...,"error":...}` with
//! Prometheus's wording where it is documented.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use remote::{WriteRequest, encode_remote_write};
use serde_json::{Value, json};
use server::testing::test_storage;
use server::{AppState, ServerConfig, router};

/// "Now" for every test: 2023-11-14T22:13:20Z.
const NOW_MS: i64 = 1_700_000_000_000;
/// `NOW_MS` in seconds, as the API writes it.
const NOW_S: i64 = NOW_MS / 1000;

mod common;
use common::*;

fn config() -> ServerConfig {
    ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn app_with(config: ServerConfig) -> Router {
    let state = AppState::with_clock(test_storage(), config, Arc::new(|| NOW_MS));
    router(state)
}

fn app() -> Router {
    app_with(config())
}

/// Percent-encodes a query parameter value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /api/v1/query?query=<expr>&time=<time>`.
async fn instant(app: &Router, expr: &str, time: &str) -> Reply {
    get(
        app,
        &format!("/api/v1/query?query={}&time={}", enc(expr), enc(time)),
    )
    .await
}

/// `GET /api/v1/query_range` with the given parameters.
async fn range(app: &Router, expr: &str, start: &str, end: &str, step: &str) -> Reply {
    get(
        app,
        &format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={}",
            enc(expr),
            enc(start),
            enc(end),
            enc(step)
        ),
    )
    .await
}

/// Two `up` series sampled every 15 s over the minute before `NOW_MS`, and
/// a counter.
async fn load_fixture(app: &Router) {
    let at = |back_s: i64| NOW_MS - back_s * 1000;
    let body = encode_remote_write(&WriteRequest {
        timeseries: vec![
            series(
                &[("__name__", "up"), ("job", "api"), ("instance", "a:1")],
                &[(at(60), 1.0), (at(45), 1.0), (at(30), 0.0), (at(15), 1.0)],
            ),
            series(
                &[("__name__", "up"), ("job", "db"), ("instance", "b:1")],
                &[(at(60), 0.0), (at(30), 1.0)],
            ),
            series(
                &[("__name__", "requests_total"), ("job", "api")],
                &[(at(60), 10.0), (at(30), 40.0), (at(0), 70.0)],
            ),
        ],
        metadata: vec![],
    });
    let request = Request::post("/api/v1/write")
        .body(Body::from(body))
        .unwrap();
    let reply = send(app, request).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
}

/// Checks Prometheus's error JSON: status, `errorType` and the exact
/// message.
fn assert_error(reply: &Reply, status: StatusCode, error_type: &str, message: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    assert!(
        reply.content_type.starts_with("application/json"),
        "{}",
        reply.content_type
    );
    let body = reply.json();
    assert_eq!(body["status"], "error", "body: {}", reply.text());
    assert_eq!(body["errorType"], error_type, "body: {}", reply.text());
    assert_eq!(body["error"], message, "body: {}", reply.text());
    assert!(body.get("data").is_none(), "body: {}", reply.text());
}

/// Like [`assert_error`] for messages whose tail is the parser's own
/// wording: checks the start and a fragment.
fn assert_error_starts(reply: &Reply, status: StatusCode, prefix: &str, fragment: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    let body = reply.json();
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with(prefix) && message.contains(fragment),
        "error {message:?} should start with {prefix:?} and contain {fragment:?}"
    );
}

#[tokio::test]
async fn instant_vector_has_prometheus_shape_byte_for_byte() {
    let app = app();
    load_fixture(&app).await;
    let reply = instant(&app, "up", &NOW_S.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/json");
    // The newest sample of each series within the 5 m lookback, labels
    // sorted by name, series in label order.
    assert_eq!(
        reply.text(),
        format!(
            concat!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":["#,
                r#"{{"metric":{{"__name__":"up","instance":"a:1","job":"api"}},"value":[{t},"1"]}},"#,
                r#"{{"metric":{{"__name__":"up","instance":"b:1","job":"db"}},"value":[{t},"1"]}}"#,
                r#"]}}}}"#
            ),
            t = NOW_S
        )
    );
}

#[tokio::test]
async fn instant_time_keeps_millisecond_decimals() {
    let app = app();
    load_fixture(&app).await;
    let data = instant(&app, "up{job=\"api\"}", "1700000000.123")
        .await
        .data();
    assert_eq!(
        data,
        json!({"resultType": "vector", "result": [{
            "metric": {"__name__": "up", "instance": "a:1", "job": "api"},
            "value": [1_700_000_000.123, "1"],
        }]})
    );
    // An RFC 3339 time reads the same as Unix seconds.
    let rfc = instant(&app, "up{job=\"api\"}", "2023-11-14T22:13:20.123Z").await;
    assert_eq!(rfc.data(), data);
    // Without `time` the query runs at "now".
    let now = get(&app, "/api/v1/query?query=time()").await.data();
    assert_eq!(
        now,
        json!({"resultType": "scalar", "result": [NOW_S, NOW_S.to_string()]})
    );
    // A time before the epoch is written with its sign.
    let text = instant(&app, "1", "-1.5").await.text();
    assert!(text.contains(r#""result":[-1.5,"1"]"#), "{text}");
}

#[tokio::test]
async fn operators_drop_the_metric_name_and_values_are_strings() {
    let app = app();
    load_fixture(&app).await;
    let data = instant(&app, "up * 2.5", &NOW_S.to_string()).await.data();
    assert_eq!(
        data["result"],
        json!([
            {"metric": {"instance": "a:1", "job": "api"}, "value": [NOW_S, "2.5"]},
            {"metric": {"instance": "b:1", "job": "db"}, "value": [NOW_S, "2.5"]},
        ])
    );
    // The shortest form that reads back exactly, as Prometheus's
    // jsonutil.MarshalValue writes a point: an exponent below 1e-6 and
    // from 1e21 in magnitude, none between.
    let data = instant(&app, "vector(1.5e-7)", "0").await.data();
    assert_eq!(data["result"][0]["value"], json!([0, "1.5e-07"]));
    let data = instant(&app, "vector(0.0000015)", "0").await.data();
    assert_eq!(data["result"][0]["value"], json!([0, "0.0000015"]));
    let data = instant(&app, "vector(0.1 + 0.2)", "0").await.data();
    assert_eq!(
        data["result"][0]["value"],
        json!([0, "0.30000000000000004"])
    );
    let data = instant(&app, "vector(1e21)", "0").await.data();
    assert_eq!(data["result"][0]["value"], json!([0, "1e+21"]));
    let data = instant(&app, "vector(1e20)", "0").await.data();
    assert_eq!(
        data["result"][0]["value"],
        json!([0, "100000000000000000000"])
    );
    // A scalar result is Scalar.MarshalJSON's: 'f' at every magnitude.
    let data = instant(&app, "1.5e-7", "0").await.data();
    assert_eq!(data["result"], json!([0, "0.00000015"]));
}

#[tokio::test]
async fn scalar_and_string_results() {
    let app = app();
    let reply = instant(&app, "1 + 1", "100").await;
    assert_eq!(
        reply.text(),
        r#"{"status":"success","data":{"resultType":"scalar","result":[100,"2"]}}"#
    );
    let reply = instant(&app, "\"hello \\\"world\\\"\"", "100.5").await;
    assert_eq!(
        reply.text(),
        r#"{"status":"success","data":{"resultType":"string","result":[100.5,"hello \"world\""]}}"#
    );
}

#[tokio::test]
async fn special_float_values_are_nan_and_signed_inf() {
    let app = app();
    load_fixture(&app).await;
    for (expr, want) in [
        ("NaN", "NaN"),
        ("+Inf", "+Inf"),
        ("-Inf", "-Inf"),
        ("0 / 0", "NaN"),
        ("1 / 0", "+Inf"),
        ("-1 / 0", "-Inf"),
        ("-0", "-0"),
    ] {
        let data = instant(&app, expr, "10").await.data();
        assert_eq!(
            data,
            json!({"resultType": "scalar", "result": [10, want]}),
            "{expr}"
        );
    }
    let data = instant(&app, "up{job=\"db\"} / 0", &NOW_S.to_string())
        .await
        .data();
    assert_eq!(data["result"][0]["value"], json!([NOW_S, "+Inf"]));
    let data = instant(&app, "up{job=\"db\"} - +Inf", &NOW_S.to_string())
        .await
        .data();
    assert_eq!(data["result"][0]["value"], json!([NOW_S, "-Inf"]));
}

#[tokio::test]
async fn instant_range_selector_is_a_matrix_of_raw_samples() {
    let app = app();
    load_fixture(&app).await;
    let data = instant(&app, "up{job=\"api\"}[1m]", &NOW_S.to_string())
        .await
        .data();
    // The window is left-open: the sample exactly 60 s back is out.
    assert_eq!(
        data,
        json!({"resultType": "matrix", "result": [{
            "metric": {"__name__": "up", "instance": "a:1", "job": "api"},
            "values": [
                [NOW_S - 45, "1"],
                [NOW_S - 30, "0"],
                [NOW_S - 15, "1"],
            ],
        }]})
    );
    // No match is an empty list, not null.
    let data = instant(&app, "nothing_here[1m]", &NOW_S.to_string())
        .await
        .data();
    assert_eq!(data, json!({"resultType": "matrix", "result": []}));
    let data = instant(&app, "nothing_here", &NOW_S.to_string())
        .await
        .data();
    assert_eq!(data, json!({"resultType": "vector", "result": []}));
}

#[tokio::test]
async fn query_range_is_a_matrix_with_one_point_per_step() {
    let app = app();
    load_fixture(&app).await;
    let start = NOW_S - 60;
    let reply = range(&app, "up", &start.to_string(), &NOW_S.to_string(), "30s").await;
    assert_eq!(reply.content_type, "application/json");
    assert_eq!(
        reply.data(),
        json!({"resultType": "matrix", "result": [
            {
                "metric": {"__name__": "up", "instance": "a:1", "job": "api"},
                "values": [[start, "1"], [start + 30, "0"], [NOW_S, "1"]],
            },
            {
                "metric": {"__name__": "up", "instance": "b:1", "job": "db"},
                "values": [[start, "0"], [start + 30, "1"], [NOW_S, "1"]],
            },
        ]})
    );
    // A scalar expression over a range is one series without labels.
    let data = range(&app, "time() * 2", "0", "1", "0.5").await.data();
    assert_eq!(
        data,
        json!({"resultType": "matrix", "result": [{
            "metric": {},
            "values": [[0, "0"], [0.5, "1"], [1, "2"]],
        }]})
    );
    // Steps are durations or float seconds; both give the same answer.
    let a = range(&app, "up", "1699999940", "1700000000", "15").await;
    let b = range(&app, "up", "1699999940", "1700000000", "15s").await;
    assert_eq!(a.data(), b.data());
    // A range query returning nothing answers an empty matrix.
    let data = range(&app, "nothing_here", "0", "60", "15").await.data();
    assert_eq!(data, json!({"resultType": "matrix", "result": []}));
}

#[tokio::test]
async fn get_and_form_post_answer_the_same() {
    let app = app();
    load_fixture(&app).await;
    let form = format!("query={}&time={NOW_S}", enc("sum by (job) (up)"));
    let by_get = get(&app, &format!("/api/v1/query?{form}")).await;
    let by_post = post_form(&app, "/api/v1/query", &form).await;
    assert_eq!(by_get.status, StatusCode::OK);
    assert_eq!(by_get.body, by_post.body);
    assert_eq!(by_get.data()["result"].as_array().unwrap().len(), 2);

    let form = format!(
        "query={}&start={}&end={NOW_S}&step=15s",
        enc("up"),
        NOW_S - 60
    );
    let by_get = get(&app, &format!("/api/v1/query_range?{form}")).await;
    let by_post = post_form(&app, "/api/v1/query_range", &form).await;
    assert_eq!(by_get.status, StatusCode::OK);
    assert_eq!(by_get.body, by_post.body);

    // Body values come before URL values, as in Go's `r.FormValue`.
    let mixed = post_form(&app, "/api/v1/query?query=2", "query=1&time=5").await;
    assert_eq!(
        mixed.data(),
        json!({"resultType": "scalar", "result": [5, "1"]})
    );

    let by_post = post_form(&app, "/api/v1/format_query", "query=up%7Bjob%3D%22a%22%7D").await;
    assert_eq!(by_post.data(), json!("up{job=\"a\"}"));
}

#[tokio::test]
async fn stats_are_present_only_when_asked_for() {
    let app = app();
    load_fixture(&app).await;
    let plain = instant(&app, "up", &NOW_S.to_string()).await.json();
    assert!(plain["data"].get("stats").is_none());

    for uri in [
        format!("/api/v1/query?query=up&time={NOW_S}&stats=all"),
        format!(
            "/api/v1/query_range?query=up&start={}&end={NOW_S}&step=15&stats=all",
            NOW_S - 60
        ),
    ] {
        let body = get(&app, &uri).await.json();
        assert_eq!(body["status"], "success");
        let stats = &body["data"]["stats"];
        let timings = stats["timings"].as_object().expect("timings");
        for key in [
            "evalTotalTime",
            "resultSortTime",
            "queryPreparationTime",
            "innerEvalTime",
            "execQueueTime",
            "execTotalTime",
        ] {
            let seconds = timings[key].as_f64().unwrap_or(-1.0);
            assert!(seconds >= 0.0, "{key} in {stats}");
        }
        let samples = stats["samples"].as_object().expect("samples");
        let total = samples["totalQueryableSamples"].as_u64().expect("total");
        let peak = samples["peakSamples"].as_u64().expect("peak");
        assert!(total > 0, "{stats}");
        assert!(peak > 0, "{stats}");
        // The result is unchanged by asking for stats.
        assert!(body["data"]["result"].as_array().unwrap().len() == 2);
    }
    // Prometheus renders stats for any non-empty `stats` value.
    let body = get(&app, "/api/v1/query?query=1&stats=true").await.json();
    assert!(body["data"]["stats"]["timings"].is_object());
}

#[tokio::test]
async fn warnings_and_infos_are_top_level_lists() {
    let app = app();
    load_fixture(&app).await;
    // `up` is not named like a counter: an info, not a warning.
    let body = instant(&app, "rate(up[5m])", &NOW_S.to_string())
        .await
        .json();
    assert_eq!(body["status"], "success");
    let infos = body["infos"].as_array().expect("infos");
    assert_eq!(
        infos,
        &[json!(
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"up\" (1:6)"
        )],
        "{body}"
    );
    assert!(body.get("warnings").is_none(), "{body}");

    let body = instant(&app, "quantile(2, up)", &NOW_S.to_string())
        .await
        .json();
    assert_eq!(body["status"], "success");
    let warnings = body["warnings"].as_array().expect("warnings");
    assert_eq!(
        warnings,
        &[json!(
            "PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)"
        )],
        "{body}"
    );
    assert!(body.get("infos").is_none(), "{body}");
    // Outside `data`, as Prometheus puts them.
    assert!(body["data"].get("warnings").is_none());

    // A counter named like one gives neither.
    let body = instant(&app, "rate(requests_total[5m])", &NOW_S.to_string())
        .await
        .json();
    assert!(body.get("infos").is_none() && body.get("warnings").is_none());
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn format_query_pretty_prints() {
    let app = app();
    let reply = get(
        &app,
        &format!(
            "/api/v1/format_query?query={}",
            enc("sum(rate(foo{bar=\"baz\"}[5m]))by(job)")
        ),
    )
    .await;
    assert_eq!(
        reply.data(),
        json!("sum by (job) (rate(foo{bar=\"baz\"}[5m]))")
    );
    let reply = get(&app, "/api/v1/format_query?query=foo%7B").await;
    assert_error_starts(
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid parameter \"query\": ",
        "parse error",
    );
    let reply = get(&app, "/api/v1/format_query").await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "invalid parameter \"query\": 1:1: parse error: no expression found in input",
    );
}

#[tokio::test]
async fn buildinfo_config_and_flags_shapes() {
    let mut config = config();
    config.config_yaml = "global:\n  scrape_interval: 15s\n".to_string();
    config.flags = vec![
        ("storage.tsdb.path".to_string(), "data/".to_string()),
        ("web.listen-address".to_string(), "0.0.0.0:9090".to_string()),
    ];
    let app = app_with(config);

    let data = get(&app, "/api/v1/status/buildinfo").await.data();
    let object = data.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "branch",
            "buildDate",
            "buildUser",
            "goVersion",
            "revision",
            "version"
        ]
    );
    assert!(object.values().all(Value::is_string), "{data}");
    assert!(!data["version"].as_str().unwrap().is_empty());

    let data = get(&app, "/api/v1/status/config").await.data();
    assert_eq!(data, json!({"yaml": "global:\n  scrape_interval: 15s\n"}));

    let data = get(&app, "/api/v1/status/flags").await.data();
    assert_eq!(
        data,
        json!({"storage.tsdb.path": "data/", "web.listen-address": "0.0.0.0:9090"})
    );

    // With nothing configured the pages are still well-formed.
    let bare = self::app();
    assert_eq!(
        get(&bare, "/api/v1/status/config").await.data(),
        json!({"yaml": ""})
    );
    assert_eq!(get(&bare, "/api/v1/status/flags").await.data(), json!({}));
}

#[tokio::test]
async fn scraping_endpoints_without_scraping_are_empty_but_well_formed() {
    let app = app();
    assert_eq!(
        get(&app, "/api/v1/targets").await.data(),
        json!({"activeTargets": [], "droppedTargets": [], "droppedTargetCounts": {}})
    );
    // Lists not asked for are present and empty, as in Prometheus, and
    // the dropped counts are null unless dropped targets were asked for.
    assert_eq!(
        get(&app, "/api/v1/targets?state=active").await.data(),
        json!({"activeTargets": [], "droppedTargets": [], "droppedTargetCounts": null})
    );
    assert_eq!(
        get(&app, "/api/v1/targets?state=Dropped").await.data(),
        json!({"activeTargets": [], "droppedTargets": [], "droppedTargetCounts": {}})
    );
    assert_eq!(
        get(&app, "/api/v1/targets?state=nonsense").await.data(),
        json!({"activeTargets": [], "droppedTargets": [], "droppedTargetCounts": null})
    );
    assert_eq!(get(&app, "/api/v1/metadata").await.data(), json!({}));
    assert_eq!(
        get(&app, "/api/v1/metadata?metric=up&limit=1").await.data(),
        json!({})
    );
    assert_eq!(
        get(&app, "/api/v1/targets/metadata").await.data(),
        json!([])
    );
    assert_eq!(
        get(
            &app,
            "/api/v1/targets/metadata?match_target=%7Bjob%3D%22x%22%7D"
        )
        .await
        .data(),
        json!([])
    );
    // Reloading with no configuration is a no-op that succeeds.
    let reply = send(
        &app,
        Request::post("/-/reload").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Parameter errors are still reported, in Prometheus's words for these
    // endpoints; a negative limit there means no limit.
    for (uri, message) in [
        ("/api/v1/metadata?limit=abc", "limit must be a number"),
        (
            "/api/v1/metadata?limit_per_metric=1.5",
            "limit_per_metric must be a number",
        ),
        ("/api/v1/targets/metadata?limit=x", "limit must be a number"),
    ] {
        assert_error(
            &get(&app, uri).await,
            StatusCode::BAD_REQUEST,
            "bad_data",
            message,
        );
    }
    assert_eq!(
        get(&app, "/api/v1/metadata?limit=-1&limit_per_metric=-1")
            .await
            .data(),
        json!({})
    );
    assert_eq!(
        get(&app, "/api/v1/targets/metadata?limit=-1").await.data(),
        json!([])
    );
    let reply = get(&app, "/api/v1/targets/metadata?match_target=%7B").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["errorType"], "bad_data");
}

#[tokio::test]
async fn malformed_queries_are_400_naming_the_query_parameter() {
    let app = app();
    for (expr, fragment) in [
        ("up{", "parse error"),
        ("sum(up", "parse error"),
        ("up +", "parse error"),
        ("rate(up)", "parse error"),
        ("up[5m] + 1", "parse error"),
        ("foo(up)", "unknown function with name"),
    ] {
        for reply in [
            instant(&app, expr, "0").await,
            range(&app, expr, "0", "60", "15").await,
        ] {
            assert_error_starts(
                &reply,
                StatusCode::BAD_REQUEST,
                "invalid parameter \"query\": ",
                fragment,
            );
        }
    }
}

#[tokio::test]
async fn missing_query_is_the_parsers_empty_input_error() {
    let app = app();
    let want = "invalid parameter \"query\": 1:1: parse error: no expression found in input";
    for reply in [
        get(&app, "/api/v1/query").await,
        get(&app, "/api/v1/query?query=").await,
        post_form(&app, "/api/v1/query", "time=1").await,
        get(&app, "/api/v1/query_range?start=0&end=1&step=1").await,
    ] {
        assert_error(&reply, StatusCode::BAD_REQUEST, "bad_data", want);
    }
}

#[tokio::test]
async fn bad_time_and_timeout_parameters() {
    let app = app();
    assert_error(
        &instant(&app, "1", "abc").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "invalid parameter \"time\": invalid time value for 'time': cannot parse \"abc\" to a valid timestamp",
    );
    assert_error(
        &get(&app, "/api/v1/query?query=1&timeout=soon").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "invalid parameter \"timeout\": cannot parse \"soon\" to a valid duration",
    );
    assert_error(
        &get(
            &app,
            "/api/v1/query_range?query=1&start=0&end=1&step=1&timeout=soon",
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "invalid parameter \"timeout\": cannot parse \"soon\" to a valid duration",
    );
    // A well-formed timeout is accepted.
    let reply = get(&app, "/api/v1/query?query=1&timeout=30s").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test]
async fn lookback_delta_parameter_replaces_the_default_lookback() {
    let app = app();
    load_fixture(&app).await;
    // up{job="db"} was last written 30 s before now: inside the default
    // 5 m lookback, outside a 20 s one.
    let count = |reply: &Reply| reply.text().matches("\"job\":\"db\"").count();
    let default = instant(&app, "up", &NOW_S.to_string()).await;
    assert_eq!(count(&default), 1, "{}", default.text());
    let short = get(
        &app,
        &format!("/api/v1/query?query=up&time={NOW_S}&lookback_delta=20s"),
    )
    .await;
    assert_eq!(short.status, StatusCode::OK, "{}", short.text());
    assert_eq!(count(&short), 0, "{}", short.text());
    let bad = get(&app, "/api/v1/query?query=up&lookback_delta=soon").await;
    assert_error(
        &bad,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "invalid parameter \"lookback_delta\": cannot parse \"soon\" to a valid duration",
    );
}

#[tokio::test]
async fn query_range_parameter_errors_use_prometheus_wording() {
    let app = app();
    let cases: &[(&str, &str)] = &[
        (
            "query=1&end=1&step=1",
            "invalid parameter \"start\": cannot parse \"\" to a valid timestamp",
        ),
        (
            "query=1&start=x&end=1&step=1",
            "invalid parameter \"start\": cannot parse \"x\" to a valid timestamp",
        ),
        (
            "query=1&start=0&step=1",
            "invalid parameter \"end\": cannot parse \"\" to a valid timestamp",
        ),
        (
            "query=1&start=0&end=1",
            "invalid parameter \"step\": cannot parse \"\" to a valid duration",
        ),
        (
            "query=1&start=0&end=1&step=fast",
            "invalid parameter \"step\": cannot parse \"fast\" to a valid duration",
        ),
        (
            "query=1&start=10&end=5&step=1",
            "invalid parameter \"end\": end timestamp must not be before start time",
        ),
        (
            "query=1&start=0&end=1&step=0",
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ),
        (
            "query=1&start=0&end=1&step=-15",
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ),
        (
            "query=1&start=0&end=1&step=0.0001",
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ),
        (
            "query=1&start=0&end=11001&step=1",
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ),
        (
            "query=1&start=0&end=1&step=1e300",
            "invalid parameter \"step\": cannot parse \"1e300\" to a valid duration. It overflows int64",
        ),
        // Parameters are checked before the query is parsed, as in
        // Prometheus.
        (
            "query=up{&start=10&end=5&step=1",
            "invalid parameter \"end\": end timestamp must not be before start time",
        ),
    ];
    for (form, want) in cases {
        let reply = get(&app, &format!("/api/v1/query_range?{form}")).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "bad_data", want);
        let reply = post_form(&app, "/api/v1/query_range", form).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "bad_data", want);
    }
}

#[tokio::test]
async fn eleven_thousand_points_is_the_largest_range_allowed() {
    let app = app();
    // 11,000 steps (11,001 points) is allowed; one more step is not.
    let data = range(&app, "1", "0", "11000", "1").await.data();
    assert_eq!(
        data["result"][0]["values"].as_array().unwrap().len(),
        11_001
    );
    let reply = range(&app, "1", "0", "11000.001", "1").await;
    // Prometheus divides whole durations: 11000.001 s / 1 s is 11000.
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = range(&app, "1", "0", "11001", "1").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // A range spanning the whole representable time is refused, not
    // overflowed.
    let reply = range(&app, "1", "-9223372036854775", "9223372036854775", "1").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert_eq!(reply.json()["errorType"], "bad_data");
}

#[tokio::test]
async fn range_query_of_a_range_vector_or_string_is_refused() {
    let app = app();
    assert_error(
        &range(&app, "up[5m]", "0", "60", "15").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "invalid parameter \"query\": invalid expression type \"range vector\" for range query, must be Scalar or instant Vector",
    );
    assert_error(
        &range(&app, "\"x\"", "0", "60", "15").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "invalid parameter \"query\": invalid expression type \"string\" for range query, must be Scalar or instant Vector",
    );
}

#[tokio::test]
async fn huge_ranges_offsets_and_times_are_answered_not_panicked() {
    let app = app();
    load_fixture(&app).await;
    for expr in [
        "up[1000000000y]",
        "rate(up[1000000000y])",
        "up offset 1000000000y",
        "up offset -1000000000y",
        "up[5m:1000000000y]",
        "up @ 1e300",
        "up @ -1e300",
        "max_over_time(up[9223372036854775807s])",
        "up[99999999999999999999999999s]",
    ] {
        for reply in [
            instant(&app, expr, &NOW_S.to_string()).await,
            range(&app, &format!("sum({expr})"), "0", "60", "15").await,
        ] {
            // Either an answer or a client error; never a server fault.
            assert!(
                reply.status == StatusCode::OK || reply.status == StatusCode::BAD_REQUEST,
                "{expr}: {} {}",
                reply.status,
                reply.text()
            );
            let body = reply.json();
            if reply.status == StatusCode::BAD_REQUEST {
                assert_eq!(body["errorType"], "bad_data", "{expr}");
            }
        }
    }
    // Huge but valid times in the parameters are fine or refused cleanly.
    for time in [
        "1e18",
        "-1e18",
        "9223372036854775807",
        "1e300",
        "NaN",
        "Inf",
    ] {
        let reply = instant(&app, "up", time).await;
        assert!(
            reply.status == StatusCode::OK || reply.status == StatusCode::BAD_REQUEST,
            "{time}: {} {}",
            reply.status,
            reply.text()
        );
    }
}

#[tokio::test]
async fn evaluation_errors_are_422_execution() {
    let app = app();
    load_fixture(&app).await;
    // Both `up` series get the same labels after relabelling.
    let expr = "label_replace(label_replace(up, \"job\", \"x\", \"\", \"\"), \"instance\", \"y\", \"\", \"\")";
    assert_error(
        &instant(&app, expr, &NOW_S.to_string()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "execution",
        "vector cannot contain metrics with the same labelset",
    );
    // Errors raised while evaluating, not parsing, are execution errors in
    // Prometheus, without the parameter prefix.
    assert_error(
        &instant(&app, "topk(NaN, up)", &NOW_S.to_string()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "execution",
        "Parameter value is NaN",
    );
    assert_error(
        &instant(&app, "count_values(\"\", up)", &NOW_S.to_string()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "execution",
        "invalid label name \"\"",
    );
    assert_error(
        &range(&app, "topk(NaN, up)", "0", "60", "15").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "execution",
        "Parameter value is NaN",
    );
}

#[tokio::test]
async fn query_over_the_sample_limit_is_422() {
    let mut config = config();
    config.engine.max_samples = 3;
    let app = app_with(config);
    load_fixture(&app).await;
    let too_many = "query processing would load too many samples into memory in query execution";
    assert_error(
        &instant(&app, "up[5m]", &NOW_S.to_string()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "execution",
        too_many,
    );
    assert_error(
        &range(&app, "up", "1699999000", "1700000000", "1").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "execution",
        too_many,
    );
    // Under the limit the same server answers.
    let reply = instant(&app, "up{job=\"db\"}", &NOW_S.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test]
async fn query_past_the_engine_timeout_is_503_timeout() {
    let mut config = config();
    config.engine.timeout = Duration::ZERO;
    let app = app_with(config);
    load_fixture(&app).await;
    assert_error(
        &instant(&app, "sum(rate(up[5m]))", &NOW_S.to_string()).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        "query timed out in expression evaluation",
    );
    assert_error(
        &range(&app, "sum(up)", "1699999000", "1700000000", "1").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        "query timed out in expression evaluation",
    );
}

#[tokio::test]
async fn targets_with_scraping_started_name_the_pool_of_dropped_targets() {
    let text = concat!(
        "global:\n  scrape_interval: 1h\n  scrape_timeout: 10s\n",
        "scrape_configs:\n",
        "  - job_name: kept\n",
        "    static_configs:\n      - targets: ['127.0.0.1:1']\n",
        "  - job_name: dropme\n",
        "    static_configs:\n      - targets: ['127.0.0.1:2']\n",
        "    relabel_configs:\n",
        "      - source_labels: [__address__]\n        regex: '127.*'\n        action: drop\n",
    );
    let state = AppState::with_clock(test_storage(), config(), Arc::new(|| NOW_MS));
    state
        .start(server::lifecycle::ConfigSource::Embedded {
            name: "test".to_string(),
            text: text.to_string(),
            rules: Vec::new(),
        })
        .await
        .expect("start scraping");
    let app = router(state.clone());
    let mut data = Value::Null;
    for _ in 0..250 {
        data = get(&app, "/api/v1/targets").await.data();
        if data["activeTargets"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
            && data["droppedTargets"]
                .as_array()
                .is_some_and(|l| !l.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let active = data["activeTargets"].as_array().expect("active");
    assert_eq!(active.len(), 1, "{data}");
    let target = &active[0];
    assert_eq!(target["scrapePool"], "kept", "{data}");
    assert_eq!(target["scrapeUrl"], "http://127.0.0.1:1/metrics", "{data}");
    assert_eq!(
        target["labels"],
        json!({"instance": "127.0.0.1:1", "job": "kept"}),
        "{data}"
    );
    assert_eq!(target["scrapeInterval"], "1h", "{data}");
    assert_eq!(target["scrapeTimeout"], "10s", "{data}");
    for key in ["globalUrl", "lastError", "lastScrape", "health"] {
        assert!(target[key].is_string(), "{key}: {data}");
    }
    assert!(target["lastScrapeDuration"].is_number(), "{data}");
    assert!(target["discoveredLabels"].is_object(), "{data}");

    let dropped = data["droppedTargets"].as_array().expect("dropped");
    assert_eq!(dropped.len(), 1, "{data}");
    assert_eq!(dropped[0]["scrapePool"], "dropme", "{data}");
    assert_eq!(
        dropped[0]["discoveredLabels"]["__address__"], "127.0.0.1:2",
        "{data}"
    );
    assert_eq!(data["droppedTargetCounts"], json!({"dropme": 1}), "{data}");

    // `scrapePool` filters both lists but not the counts.
    let data = get(&app, "/api/v1/targets?scrapePool=kept").await.data();
    assert_eq!(data["activeTargets"].as_array().unwrap().len(), 1);
    assert_eq!(data["droppedTargets"], json!([]));
    assert_eq!(data["droppedTargetCounts"], json!({"dropme": 1}));

    // The configuration page shows the configuration in effect, written
    // back out as Prometheus does (same values, comments and layout gone).
    let data = get(&app, "/api/v1/status/config").await.data();
    let shown = data["yaml"].as_str().expect("yaml text");
    assert_eq!(yaml_value(shown), yaml_value(text), "{shown}");
    state.stop().await;
}

#[tokio::test]
async fn metadata_endpoints_with_a_scraped_target() {
    // A target exposing two metric families.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let exposition = concat!(
        "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 3\n",
        "# HELP temp_celsius Temperature.\n# TYPE temp_celsius gauge\n# UNIT temp_celsius celsius\ntemp_celsius 21.5\n",
    );
    let exporter = Router::new().route(
        "/metrics",
        axum::routing::get(move || async move { exposition }),
    );
    let exporter_task = tokio::spawn(async move {
        let _ = axum::serve(listener, exporter).await;
    });
    let text = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: exp\n    static_configs:\n      - targets: ['{target}']\n"
    );
    let state = AppState::with_clock(test_storage(), config(), Arc::new(|| NOW_MS));
    state
        .start(server::lifecycle::ConfigSource::Embedded {
            name: "test".to_string(),
            text,
            rules: Vec::new(),
        })
        .await
        .expect("start scraping");
    let app = router(state.clone());
    let mut all = Value::Null;
    for _ in 0..500 {
        all = get(&app, "/api/v1/targets/metadata").await.data();
        if all.as_array().is_some_and(|l| l.len() >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let target_labels = json!({"instance": target.to_string(), "job": "exp"});
    let list = all.as_array().expect("list");
    assert!(
        list.contains(&json!({
            "target": target_labels,
            "metric": "jobs_total",
            "type": "counter",
            "help": "Jobs done.",
            "unit": "",
        })),
        "{all}"
    );
    // Asked for by name, the metric name is left out, as in Prometheus.
    let one = get(&app, "/api/v1/targets/metadata?metric=jobs_total")
        .await
        .data();
    assert_eq!(
        one,
        json!([{"target": target_labels, "type": "counter", "help": "Jobs done.", "unit": ""}])
    );
    // limit=0 is an empty answer on these endpoints; a negative one is
    // no limit.
    assert_eq!(
        get(&app, "/api/v1/targets/metadata?limit=0").await.data(),
        json!([])
    );
    assert_eq!(
        get(&app, "/api/v1/metadata?limit=0").await.data(),
        json!({})
    );
    let data = get(&app, "/api/v1/metadata?limit=-1").await.data();
    assert_eq!(
        data["jobs_total"],
        json!([{"type": "counter", "help": "Jobs done.", "unit": ""}]),
        "{data}"
    );
    let data = get(&app, "/api/v1/metadata?limit=1").await.data();
    assert_eq!(data.as_object().unwrap().len(), 1, "{data}");
    state.stop().await;
    exporter_task.abort();
}

/// A YAML text as plain values, positions dropped, for comparing texts
/// that differ only in layout.
fn yaml_value(text: &str) -> Value {
    fn convert(node: &yaml::Node) -> Value {
        match &node.value {
            yaml::NodeValue::Null => Value::Null,
            yaml::NodeValue::Bool(b) => json!(b),
            yaml::NodeValue::Int(i) => json!(i.to_string()),
            yaml::NodeValue::Float(f) => json!(f),
            yaml::NodeValue::String(s) => json!(s),
            yaml::NodeValue::Sequence(items) => Value::Array(items.iter().map(convert).collect()),
            yaml::NodeValue::Mapping(entries) => Value::Array(
                entries
                    .iter()
                    .map(|(k, v)| json!([convert(k), convert(v)]))
                    .collect(),
            ),
        }
    }
    convert(&yaml::parse_document(text).expect("YAML"))
}

#[tokio::test]
async fn the_configuration_page_never_shows_a_secret() {
    let mut config = config();
    config.config_yaml = "scrape_configs:\n  - job_name: a\n    basic_auth:\n      username: admin\n      password: hunter2\n    authorization:\n      credentials: s3cr3t-token\n".to_string();
    let app = app_with(config);
    let data = get(&app, "/api/v1/status/config").await.data();
    let shown = data["yaml"].as_str().expect("yaml text");
    assert!(
        !shown.contains("hunter2") && !shown.contains("s3cr3t-token"),
        "{shown}"
    );
    assert!(shown.contains("password: <secret>"), "{shown}");
    assert!(shown.contains("username: admin"), "{shown}");
}
