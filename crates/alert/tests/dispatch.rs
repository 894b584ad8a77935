//! The dispatcher end to end over loopback: alerts in through
//! `put_alerts`, webhook notifications out to a sink, with short timers.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alert::{Alertmanager, Options, PostableAlert};
use config::alertmanager::parse as parse_am;
use serde_json::Value;

/// A webhook sink on loopback that records every body it gets.
struct Sink {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    /// Status codes to answer with before answering 200, in order.
    failures: Arc<Mutex<Vec<u16>>>,
}

async fn sink() -> Sink {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let (b, f) = (bodies.clone(), failures.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (b, f) = (b.clone(), f.clone());
            async move {
                let fail = {
                    let mut f = f.lock().unwrap();
                    if f.is_empty() {
                        None
                    } else {
                        Some(f.remove(0))
                    }
                };
                if let Some(code) = fail {
                    return axum::http::StatusCode::from_u16(code).unwrap();
                }
                b.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Sink {
        url: format!("http://{addr}/hook"),
        bodies,
        failures,
    }
}

impl Sink {
    /// Waits (at most 10 s) until `n` notifications arrived; returns them.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.bodies.lock().unwrap().clone();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn posted(labels: &[(&str, &str)], ends_at_ms: Option<i64>) -> PostableAlert {
    PostableAlert {
        labels: labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        ends_at_ms,
        ..PostableAlert::default()
    }
}

fn config_yaml(url: &str, extra: &str) -> String {
    format!(
        r#"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 300ms
  group_interval: 600ms
  repeat_interval: 1h
{extra}
receivers:
  - name: hook
    webhook_configs: [{{url: "{url}"}}]
"#
    )
}

fn start(yaml: &str, dir: Option<&std::path::Path>) -> Alertmanager {
    let config = parse_am("am.yml", yaml, None).unwrap();
    Alertmanager::start(
        config,
        yaml.to_string(),
        Options {
            state_dir: dir.map(|d| d.to_path_buf()),
            external_url: "http://osprey.test".to_string(),
            retention_ms: alert::DEFAULT_RETENTION_MS,
            cluster: None,
        },
    )
    .unwrap()
}

fn summary(body: &Value) -> String {
    let alerts: Vec<String> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["labels"]["instance"].as_str().unwrap_or("-"),
                a["status"].as_str().unwrap()
            )
        })
        .collect();
    format!(
        "{} {} [{}]",
        body["status"].as_str().unwrap(),
        body["groupKey"].as_str().unwrap(),
        alerts.join(" ")
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_then_add_then_resolve() {
    let sink = sink().await;
    let am = start(&config_yaml(&sink.url, ""), None);
    am.put_alerts(vec![posted(
        &[("alertname", "Down"), ("instance", "a")],
        None,
    )])
    .unwrap();
    let got = sink.wait_for(1).await;
    assert_eq!(
        summary(&got[0]),
        r#"firing {}:{alertname="Down"} [a:firing]"#
    );
    assert_eq!(got[0]["receiver"], "hook");
    assert_eq!(got[0]["externalURL"], "http://osprey.test");
    assert_eq!(
        got[0]["groupLabels"],
        serde_json::json!({"alertname": "Down"})
    );

    am.put_alerts(vec![posted(
        &[("alertname", "Down"), ("instance", "b")],
        None,
    )])
    .unwrap();
    let got = sink.wait_for(2).await;
    assert_eq!(
        summary(&got[1]),
        r#"firing {}:{alertname="Down"} [a:firing b:firing]"#
    );

    am.put_alerts(vec![posted(
        &[("alertname", "Down"), ("instance", "a")],
        Some(now_ms()),
    )])
    .unwrap();
    let got = sink.wait_for(3).await;
    assert_eq!(
        summary(&got[2]),
        r#"firing {}:{alertname="Down"} [a:resolved b:firing]"#
    );
    assert_eq!(got[2]["alerts"][0]["status"], "resolved");
    assert_ne!(got[2]["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");

    am.put_alerts(vec![posted(
        &[("alertname", "Down"), ("instance", "b")],
        Some(now_ms()),
    )])
    .unwrap();
    let got = sink.wait_for(4).await;
    assert_eq!(
        summary(&got[3]),
        r#"resolved {}:{alertname="Down"} [b:resolved]"#
    );

    // Nothing more: no repeat within the hour, nothing changed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.bodies.lock().unwrap().len(), 4);
    am.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_and_inhibition_suppress() {
    let sink = sink().await;
    let extra = r#"inhibit_rules:
  - source_matchers: [severity=critical]
    target_matchers: [severity=warning]
    equal: [cluster]"#;
    let am = start(&config_yaml(&sink.url, extra), None);
    let silence = alert::silence::Silence {
        id: String::new(),
        matchers: config::alertmanager::matchers::parse_matchers("alertname=Silenced").unwrap(),
        starts_at_ms: now_ms(),
        ends_at_ms: now_ms() + 3_600_000,
        updated_at_ms: 0,
        created_by: "test".into(),
        comment: "quiet".into(),
    };
    am.silences().set(silence, now_ms()).unwrap();
    am.put_alerts(vec![
        posted(&[("alertname", "Silenced"), ("instance", "s")], None),
        posted(
            &[
                ("alertname", "Crit"),
                ("severity", "critical"),
                ("cluster", "c1"),
            ],
            None,
        ),
        posted(
            &[
                ("alertname", "Warn"),
                ("severity", "warning"),
                ("cluster", "c1"),
                ("instance", "inhibited"),
            ],
            None,
        ),
        posted(
            &[
                ("alertname", "Warn"),
                ("severity", "warning"),
                ("cluster", "c2"),
                ("instance", "shown"),
            ],
            None,
        ),
    ])
    .unwrap();
    let got = sink.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut summaries: Vec<String> = sink.bodies.lock().unwrap().iter().map(summary).collect();
    summaries.sort();
    assert_eq!(
        summaries,
        vec![
            r#"firing {}:{alertname="Crit"} [-:firing]"#.to_string(),
            r#"firing {}:{alertname="Warn"} [shown:firing]"#.to_string(),
        ],
        "{got:?}"
    );
    let views = am.alerts();
    let suppressed: Vec<&str> = views
        .iter()
        .filter(|v| v.state() == "suppressed")
        .map(|v| v.alert.labels.get("instance").unwrap_or("-"))
        .collect();
    assert_eq!(suppressed.len(), 2, "{suppressed:?}");
    am.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_the_sink_accepts() {
    let sink = sink().await;
    sink.failures.lock().unwrap().extend([500, 503]);
    let am = start(&config_yaml(&sink.url, ""), None);
    am.put_alerts(vec![posted(&[("alertname", "Down")], None)])
        .unwrap();
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert!(sink.failures.lock().unwrap().is_empty());
    let metrics = am.render_metrics();
    assert!(
        metrics
            .contains("alertmanager_notification_requests_failed_total{integration=\"webhook\"} 2"),
        "{metrics}"
    );
    am.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_survives_a_restart() {
    let sink = sink().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_yaml(&sink.url, "");
    let am = start(&yaml, Some(dir.path()));
    am.put_alerts(vec![posted(&[("alertname", "Down")], None)])
        .unwrap();
    assert_eq!(sink.wait_for(1).await.len(), 1);
    // The sink has the body before the log entry is written; wait for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !am
        .render_metrics()
        .contains("alertmanager_nflog_entries 1\n")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log entry was never written"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    am.stop();
    // A new instance with the same state dir gets the same alert again
    // (as Prometheus resends it) and does not notify again.
    let am = start(&yaml, Some(dir.path()));
    am.put_alerts(vec![posted(&[("alertname", "Down")], None)])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.bodies.lock().unwrap().len(), 1);
    // A new alert in the group does notify.
    am.put_alerts(vec![posted(
        &[("alertname", "Down"), ("instance", "x")],
        None,
    )])
    .unwrap();
    assert_eq!(sink.wait_for(2).await.len(), 2);
    am.stop();
}
