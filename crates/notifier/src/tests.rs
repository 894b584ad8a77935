//! The sender against a loopback stand-in Alertmanager, and its JSON.

use std::time::Duration;

use axum::body::Bytes;
use model::Labels;
use rules::Notifier;

use super::*;

fn alert(name: &str, extra: &[(&str, &str)]) -> NotifyAlert {
    let mut pairs = vec![("alertname", name)];
    pairs.extend_from_slice(extra);
    NotifyAlert {
        labels: Labels::from_pairs(pairs),
        annotations: vec![("summary".to_string(), "it broke".to_string())],
        starts_at_ms: 1_700_000_000_000,
        ends_at_ms: 1_700_000_000_500,
        generator_url: "http://osprey/graph".to_string(),
    }
}

fn alerting(text: &str) -> (AlertingConfig, Vec<(String, String)>) {
    let config = config::parse("test.yml", text, None).expect("config");
    (config.alerting, config.global.external_labels)
}

#[test]
fn alert_times_print_like_go_json() {
    for (ms, want) in [
        (0, "1970-01-01T00:00:00Z"),
        (1_500, "1970-01-01T00:00:01.5Z"),
        (1_700_000_000_120, "2023-11-14T22:13:20.12Z"),
        (951_782_400_007, "2000-02-29T00:00:00.007Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
    ] {
        assert_eq!(rfc3339_ms(ms), want, "{ms}");
    }
}

#[test]
fn external_labels_fill_in_and_relabelling_drops() {
    let (alerting, external) = alerting(
        "global:\n  external_labels:\n    dc: x\n    severity: none\nalerting:\n  alert_relabel_configs:\n    - source_labels: [alertname]\n      regex: Ignored\n      action: drop\n",
    );
    let config = SenderConfig {
        external_labels: external,
        alert_relabel_configs: alerting.alert_relabel_configs,
        targets: Vec::new(),
    };
    let sent = prepare(alert("Down", &[("severity", "page")]), &config).expect("kept");
    assert_eq!(sent.labels.get("dc").map(String::as_str), Some("x"));
    assert_eq!(
        sent.labels.get("severity").map(String::as_str),
        Some("page")
    );
    assert_eq!(
        sent.to_json(),
        json!({
            "labels": {"alertname": "Down", "dc": "x", "severity": "page"},
            "annotations": {"summary": "it broke"},
            "startsAt": "2023-11-14T22:13:20Z",
            "endsAt": "2023-11-14T22:13:20.5Z",
            "generatorURL": "http://osprey/graph",
        })
    );
    assert_eq!(prepare(alert("Ignored", &[]), &config), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_batches_to_static_alertmanagers_and_the_local_sink() {
    let (posted_tx, mut posted) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let app = axum::Router::new().route(
        "/prefix/api/v2/alerts",
        axum::routing::post(move |body: Bytes| {
            let posted_tx = posted_tx.clone();
            async move {
                let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = posted_tx.send(value);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (alerting, external) = alerting(&format!(
        "global:\n  external_labels:\n    dc: x\nalerting:\n  alertmanagers:\n    - path_prefix: /prefix\n      static_configs:\n        - targets: ['{addr}']\n"
    ));
    let sender = Arc::new(AlertSender::new());
    let local = Arc::new(Mutex::new(Vec::new()));
    let seen = local.clone();
    sender.set_local(Some(Arc::new(move |alerts: Vec<SentAlert>| {
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(alerts);
    })));
    sender.configure(PreparedAlerting::new(&alerting, &external).expect("clients"));
    sender.notify(vec![alert("Down", &[]), alert("Hot", &[])]);

    let body = tokio::time::timeout(Duration::from_secs(10), posted.recv())
        .await
        .expect("the Alertmanager was not called in time")
        .expect("a body");
    let names: Vec<&str> = body
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    assert_eq!(names, ["Down", "Hot"]);
    assert_eq!(body[0]["labels"]["dc"], "x");
    let local = local.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(local.len(), 2);
}

/// Every Alertmanager of every `alertmanagers` entry gets each alert, and
/// one that never answers does not hold back the others (HA pairs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alertmanager_gets_the_alerts_and_a_hung_one_delays_none() {
    let (posted_tx, mut posted) = tokio::sync::mpsc::unbounded_channel::<(usize, Value)>();
    let mut addrs = Vec::new();
    for index in 0..3 {
        let posted_tx = posted_tx.clone();
        let app = axum::Router::new().route(
            "/api/v2/alerts",
            axum::routing::post(move |body: Bytes| {
                let posted_tx = posted_tx.clone();
                async move {
                    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let _ = posted_tx.send((index, value));
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        addrs.push(listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    // Accepts connections and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung_addr = hung.local_addr().expect("addr");

    let (alerting, external) = alerting(&format!(
        "alerting:\n  alertmanagers:\n    - timeout: 30s\n      static_configs:\n        - targets: ['{hung_addr}', '{}', '{}']\n    - static_configs:\n        - targets: ['{}']\n",
        addrs[0], addrs[1], addrs[2]
    ));
    let sender = Arc::new(AlertSender::new());
    sender.configure(PreparedAlerting::new(&alerting, &external).expect("clients"));
    sender.notify(vec![alert("Down", &[])]);

    let mut got = Vec::new();
    for _ in 0..3 {
        let (index, body) = tokio::time::timeout(Duration::from_secs(5), posted.recv())
            .await
            .expect("an Alertmanager waited on the hung one")
            .expect("a body");
        assert_eq!(body[0]["labels"]["alertname"], "Down");
        got.push(index);
    }
    got.sort();
    assert_eq!(got, [0, 1, 2]);
    drop(hung);
}
