//! The model-quality API through the router: JSON and gzip bodies, a 400
//! that names the record and field with nothing stored, late actuals, and
//! the series an evaluation writes through the server's appendable.

mod common;

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::send;
use server::testing::test_storage;
use server::{AppState, ServerConfig, router};

fn post(uri: &str, body: Vec<u8>, gzip: bool) -> Request<Body> {
    let mut r = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if gzip {
        r = r.header(header::CONTENT_ENCODING, "gzip");
    }
    r.body(Body::from(body)).expect("request")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn predictions(from: usize, n: usize, version: &str, t: f64) -> Vec<u8> {
    let records: Vec<serde_json::Value> = (from..from + n)
        .map(|i| {
            serde_json::json!({
                "id": format!("r{i}"), "version": version, "timestamp": t + i as f64,
                "features": {"x": (i % 17) as f64, "colour": if i % 3 == 0 { "red" } else { "blue" }},
                "prediction": (i % 5) as f64,
            })
        })
        .collect();
    serde_json::json!({"records": records})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn predictions_actuals_and_series() {
    let storage = test_storage();
    let state = AppState::with_clock(
        storage.clone(),
        ServerConfig::new("127.0.0.1:0".parse().expect("addr")),
        Arc::new(|| 1_000_000_000),
    );
    let app = router(state.clone());
    let t = 999_000.0;

    let reply = send(
        &app,
        post(
            "/api/v1/models/price/predictions",
            predictions(0, 50, "v1", t),
            false,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.data()["records"], 50);
    let reply = send(
        &app,
        post(
            "/api/v1/models/price/predictions",
            gzip(&predictions(50, 50, "v2", t)),
            true,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    // A bad record: 400 naming it, and nothing of the request is kept.
    let mut bad: serde_json::Value =
        serde_json::from_slice(&predictions(100, 5, "v1", t)).expect("json");
    bad["records"][3]["prediction"] = serde_json::json!("high");
    let reply = send(
        &app,
        post(
            "/api/v1/models/price/predictions",
            bad.to_string().into_bytes(),
            false,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let body = reply.json();
    assert_eq!(body["errorType"], "bad_data");
    assert_eq!(
        body["error"],
        "records[3].prediction: the model is a regression; expected a number"
    );
    let reply = send(
        &app,
        post(
            "/api/v1/models/price/predictions",
            b"{\"records\": [{\"id\": 1}".to_vec(),
            false,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let reply = send(
        &app,
        post(
            "/api/v1/models/price/predictions",
            b"not gzip".to_vec(),
            true,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let reply = send(
        &app,
        post(
            "/api/v1/models/bad%20name/predictions",
            predictions(0, 1, "v1", t),
            false,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());

    // Late actuals for v1 (off by 1) and v2 (off by 3).
    let actuals: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            let off = if i < 50 { 1.0 } else { 3.0 };
            serde_json::json!({"id": format!("r{i}"), "actual": (i % 5) as f64 + off, "timestamp": t + 500.0})
        })
        .collect();
    let reply = send(
        &app,
        post(
            "/api/v1/models/price/actuals",
            serde_json::json!({"records": actuals})
                .to_string()
                .into_bytes(),
            false,
        ),
    )
    .await;
    assert_eq!(reply.data()["joined"], 100);

    let written =
        server::models_api::evaluate_and_write(state.models(), storage.as_ref(), 1_000_000_000)
            .expect("evaluate");
    assert!(written > 0);
    let dump = storage.dump();
    let value = |name: &str, version: &str| {
        dump.iter()
            .find(|(l, _)| l.metric_name() == Some(name) && l.get("version") == Some(version))
            .and_then(|(_, s)| s.last().map(|p| p.1))
    };
    assert_eq!(value("osprey_model_records", "v1"), Some(50.0));
    assert_eq!(
        value("osprey_model_records", "v2"),
        Some(50.0),
        "the refused request added nothing"
    );
    assert_eq!(value("osprey_model_mae", "v1"), Some(1.0));
    assert_eq!(value("osprey_model_mae", "v2"), Some(3.0));
    assert_eq!(value("osprey_model_rmse", "v2"), Some(3.0));
    let comparison = dump
        .iter()
        .find(|(l, _)| {
            l.metric_name() == Some("osprey_model_version_comparison")
                && l.get("metric") == Some("mae")
        })
        .expect("comparison");
    assert_eq!(comparison.1.last().map(|p| p.1.abs()), Some(2.0));

    let reply = send(
        &app,
        Request::get("/api/v1/models")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(reply.data(), serde_json::json!(["price"]));
}
