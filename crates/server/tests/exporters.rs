//! The built-in exporters on the server: the host and GPU routes, `/probe`
//! with modules from the osprey configuration's `exporters` section, the
//! usual blackbox relabelling recipe scraping through `/probe` end to end,
//! and the `process_*` metrics on `/metrics`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use server::testing::test_storage;
use server::{AppState, ServerConfig, router};

mod common;
use common::*;

fn app() -> (AppState, Router) {
    let state = AppState::new(
        test_storage(),
        ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0))),
    );
    (state.clone(), router(state))
}

/// A target for probes: `/ok` answers 200.
async fn probe_target() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/ok", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn sample_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn host_and_gpu_routes() {
    let (_, app) = app();
    let reply = get(&app, "/exporters/host/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.content_type.starts_with("text/plain; version=0.0.4"));
    let text = reply.text();
    for name in [
        "node_cpu_seconds_total{",
        "node_memory_MemTotal_bytes ",
        "node_load1 ",
        "node_boot_time_seconds ",
        "node_uname_info{",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    // collect[] narrows the output, as on node_exporter.
    let text = get(&app, "/exporters/host/metrics?collect[]=loadavg")
        .await
        .text();
    assert!(text.contains("node_load1 ") && !text.contains("node_cpu_seconds_total"));
    let reply = get(&app, "/exporters/host/metrics?collect[]=nope").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("nope"));

    let text = get(&app, "/exporters/gpu/metrics").await.text();
    assert!(text.contains("# TYPE osprey_gpu_available gauge"), "{text}");
}

#[tokio::test]
async fn server_metrics_include_process_metrics() {
    let (_, app) = app();
    let text = get(&app, "/metrics").await.text();
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_virtual_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
        "process_threads ",
    ] {
        assert!(text.contains(name), "{name} missing in\n{text}");
    }
    assert!(sample_value(&text, "process_resident_memory_bytes ").unwrap() > 0.0);
}

#[tokio::test]
async fn probe_with_modules_from_the_config() {
    let target = probe_target().await;
    let (state, app) = app();
    let text = "scrape_configs: []\nexporters:\n  blackbox:\n    modules:\n      local:\n        prober: http\n        timeout: 3s\n        http:\n          preferred_ip_protocol: ip4\n          fail_if_body_not_matches_regexp: ['^ok$']\n";
    state
        .start(server::lifecycle::ConfigSource::Embedded {
            name: "osprey.yml".into(),
            text: text.into(),
            rules: Vec::new(),
        })
        .await
        .unwrap();
    let reply = get(
        &app,
        &format!("/probe?module=local&target=http://{target}/ok"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.text();
    assert_eq!(sample_value(&body, "probe_success "), Some(1.0), "{body}");
    assert_eq!(sample_value(&body, "probe_http_status_code "), Some(200.0));

    let reply = get(&app, "/probe?module=missing&target=x").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("missing"));
    let reply = get(&app, "/probe?module=local").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    state.stop().await;
}

#[tokio::test]
async fn a_bad_exporters_section_names_file_and_line() {
    let (state, _) = app();
    let text = "scrape_configs: []\nexporters:\n  blackbox:\n    modules:\n      m:\n        prober: http\n        http:\n          methd: GET\n";
    let err = state
        .start(server::lifecycle::ConfigSource::Embedded {
            name: "osprey.yml".into(),
            text: text.into(),
            rules: Vec::new(),
        })
        .await
        .unwrap_err();
    assert!(err.starts_with("osprey.yml:8:"), "{err}");
    assert!(err.contains("methd"), "{err}");
}

/// The relabelling recipe from blackbox_exporter's documentation, with
/// osprey's own `/probe` as the prober: the stored `probe_success` series
/// is labelled with the probed URL.
#[tokio::test]
async fn scrape_through_probe_with_the_relabelling_recipe() {
    let target = probe_target().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let state = AppState::new(test_storage(), ServerConfig::new(server_addr));
    let text = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [local]
    static_configs:
      - targets: ['http://{target}/ok']
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: '{server_addr}'
exporters:
  blackbox:
    modules:
      local:
        prober: http
        http:
          preferred_ip_protocol: ip4
"#
    );
    state
        .start(server::lifecycle::ConfigSource::Embedded {
            name: "osprey.yml".into(),
            text,
            rules: Vec::new(),
        })
        .await
        .unwrap();
    let serving = state.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        server::serve_listener(listener, serving, async {
            let _ = stopped.await;
        })
        .await
    });
    let app = router(state.clone());
    let mut result = serde_json::Value::Null;
    for _ in 0..100 {
        result = get(&app, "/api/v1/query?query=probe_success").await.data()["result"].clone();
        if result.as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let series = &result[0];
    assert_eq!(
        series["metric"]["instance"],
        format!("http://{target}/ok"),
        "{result}"
    );
    assert_eq!(series["metric"]["job"], "blackbox");
    assert_eq!(series["value"][1], "1", "{result}");
    state.stop().await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Typed Redis and PostgreSQL instances in the `exporters` section become
/// the `redis` and `postgres` scrape jobs and answer on their routes; the
/// GPU name switches and the container route follow the section too.
#[tokio::test]
async fn exporter_instances_become_jobs_and_routes() {
    let (redis_port, pg_port) = (closed_port(), closed_port());
    let dir = tempfile::tempdir().unwrap();
    let dsn_file = dir.path().join("meta.dsn");
    std::fs::write(
        &dsn_file,
        format!("postgresql://postgres:pw@127.0.0.1:{pg_port}/postgres?sslmode=disable\n"),
    )
    .unwrap();
    let (state, app) = app();
    let text = format!(
        "scrape_configs: []\nexporters:\n  gpu: {{nvidia_gpu_exporter_names: false}}\n  redis:\n    instances:\n      - address: 127.0.0.1:{redis_port}\n        password: secret\n  postgres:\n    instances:\n      - name: meta\n        data_source_name_file: {}\n",
        dsn_file.display()
    );
    state
        .start(server::lifecycle::ConfigSource::Embedded {
            name: "osprey.yml".into(),
            text,
            rules: Vec::new(),
        })
        .await
        .unwrap();

    let targets = get(&app, "/api/v1/targets").await.data();
    let active = targets["activeTargets"].as_array().unwrap();
    let target = |pool: &str| {
        active
            .iter()
            .find(|t| t["scrapePool"] == pool)
            .unwrap_or_else(|| panic!("no {pool} pool in {targets}"))
    };
    let redis_address = format!("redis://127.0.0.1:{redis_port}");
    assert_eq!(
        target("redis")["labels"]["instance"],
        redis_address.as_str()
    );
    assert!(
        target("redis")["scrapeUrl"]
            .as_str()
            .unwrap()
            .contains("/exporters/redis/scrape?target=redis%3A%2F%2F127.0.0.1"),
        "{targets}"
    );
    assert_eq!(target("postgres")["labels"]["instance"], "meta");

    let body = get(
        &app,
        &format!("/exporters/redis/scrape?target={redis_address}"),
    )
    .await
    .text();
    assert_eq!(sample_value(&body, "redis_up "), Some(0.0), "{body}");
    assert_eq!(
        get(&app, "/exporters/redis/scrape").await.status,
        StatusCode::BAD_REQUEST
    );
    let body = get(&app, "/exporters/postgres/metrics?target=meta")
        .await
        .text();
    assert_eq!(sample_value(&body, "pg_up "), Some(0.0), "{body}");
    assert!(!body.contains("pw@"), "{body}");
    let reply = get(&app, "/exporters/postgres/metrics?target=nope").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = get(&app, "/exporters/container/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().contains("# TYPE container_scrape_error gauge"));
    state.stop().await;
}

#[tokio::test]
async fn a_bad_data_source_name_fails_the_load_naming_the_instance() {
    let (state, _) = app();
    let text = "scrape_configs: []\nexporters:\n  postgres:\n    instances:\n      - name: meta\n        data_source_name: 'postgresql://u:hidden@db/x?sslmode=sometimes'\n";
    let err = state
        .start(server::lifecycle::ConfigSource::Embedded {
            name: "osprey.yml".into(),
            text: text.into(),
            rules: Vec::new(),
        })
        .await
        .unwrap_err();
    assert!(
        err.contains("exporters.postgres instance \"meta\""),
        "{err}"
    );
    assert!(err.contains("sslmode") && !err.contains("hidden"), "{err}");
}
