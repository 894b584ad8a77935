//! Overload protection (`docs/limits.md`): the cardinality-bomb test.
//!
//! A real `osprey server` scrapes three normal targets and one bomb whose
//! every scrape exposes 20,000 new series (a user-ID label), with
//! `limits:` set. The normal targets must keep every sample at their
//! interval, the bomb's new series must be refused and counted, its
//! scrape must report why, and the head must stay under
//! `max_head_series`. Remote write is checked too: a rate limit answers
//! 429 with `Retry-After` after storing the rest, a hard limit 400.
//!
//! The targets are tiny HTTP servers in this test, so nothing outside
//! is needed.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// Bomb series per scrape; all new every time.
const BOMB_SERIES: u64 = 20_000;
/// Series each normal target exposes.
const NORMAL_SERIES: u64 = 50;
const MAX_HEAD_SERIES: u64 = 16_000;
const BOMB_NEW_PER_MINUTE: u64 = 12_000;

/// Serves `body(n)` for the n-th request (from 0) until `stop` is set.
fn serve(stop: Arc<AtomicBool>, body: impl Fn(u64) -> String + Send + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => request.extend_from_slice(&buf[..k]),
                }
            }
            let text = body(n);
            n += 1;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                text.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(text.as_bytes());
        }
    });
    addr
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, &[], &[]).expect("GET");
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("json")
}

fn instant(addr: SocketAddr, query: &str) -> Vec<Value> {
    let v = get_json(addr, &format!("/api/v1/query?query={}", urlencode(query)));
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn cardinality_bomb_is_refused_and_nothing_else_is_harmed() {
    let stop = Arc::new(AtomicBool::new(false));
    let normal: Vec<SocketAddr> = (0..3)
        .map(|target| {
            serve(stop.clone(), move |n| {
                let mut out = String::from("# TYPE normal_requests_total counter\n");
                for i in 0..NORMAL_SERIES {
                    out.push_str(&format!(
                        "normal_requests_total{{path=\"/p{i}\"}} {}\n",
                        n * 10 + i + target
                    ));
                }
                out
            })
        })
        .collect();
    let bomb_scrapes = Arc::new(AtomicU64::new(0));
    let counted = bomb_scrapes.clone();
    let bomb = serve(stop.clone(), move |n| {
        counted.fetch_add(1, Ordering::Relaxed);
        let mut out = String::with_capacity(BOMB_SERIES as usize * 48);
        out.push_str("# TYPE bomb_requests_total counter\n");
        for i in 0..BOMB_SERIES {
            out.push_str(&format!("bomb_requests_total{{user_id=\"u{n}-{i}\"}} 1\n"));
        }
        out
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let targets: Vec<String> = normal.iter().map(|a| format!("'{a}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: normal\n    static_configs:\n      - targets: [{}]\n  - job_name: bomb\n    static_configs:\n      - targets: ['{bomb}']\nlimits:\n  max_head_series: {MAX_HEAD_SERIES}\n  jobs:\n    bomb:\n      max_new_series_per_minute: {BOMB_NEW_PER_MINUTE}\n  senders:\n    team-a:\n      max_new_series_per_minute: 5\n    team-b:\n      max_series_per_metric: 3\n",
        targets.join(", ")
    );
    let config_path = dir.path().join("osprey.yml");
    std::fs::write(&config_path, config).expect("config");
    let addr = free_addr();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
        &["--config", config_path.to_str().expect("path")],
    );

    // Let the bomb go off for a while.
    let started = Instant::now();
    let run = Duration::from_secs(14);
    std::thread::sleep(run);
    let elapsed_ms = started.elapsed().as_millis() as i64;
    assert!(
        bomb_scrapes.load(Ordering::Relaxed) >= 8,
        "the bomb was scraped {} times",
        bomb_scrapes.load(Ordering::Relaxed)
    );

    // The normal targets: every series has a sample at every interval.
    let exported = export(addr, "normal_requests_total");
    assert_eq!(exported.len() as u64, 3 * NORMAL_SERIES, "normal series");
    let expected = (elapsed_ms / 1000) as usize - 4;
    let mut worst_gap = 0i64;
    for (labels, timestamps, _) in &exported {
        assert!(
            timestamps.len() >= expected,
            "{labels:?}: {} samples in {elapsed_ms} ms, expected at least {expected}",
            timestamps.len()
        );
        for pair in timestamps.windows(2) {
            worst_gap = worst_gap.max(pair[1] - pair[0]);
        }
    }
    assert!(
        worst_gap <= 1_500,
        "a normal target's samples are {worst_gap} ms apart at worst (interval 1 s)"
    );
    for up in instant(addr, "up{job=\"normal\"}") {
        assert_eq!(value(&up), 1.0, "{up}");
    }
    let slowest = instant(
        addr,
        "max(max_over_time(scrape_duration_seconds{job=\"normal\"}[1m]))",
    );
    assert!(
        value(&slowest[0]) < 0.5,
        "a normal scrape took {} s",
        value(&slowest[0])
    );

    // The bomb: down, with the reason; its refusals counted.
    let up = instant(addr, "up{job=\"bomb\"}");
    assert_eq!(value(&up[0]), 0.0, "bomb up: {up:?}");
    let targets = get_json(addr, "/api/v1/targets");
    let bomb_target = targets["data"]["activeTargets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["labels"]["job"] == "bomb")
        .expect("bomb target")
        .clone();
    let last_error = bomb_target["lastError"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("new series refused by the series limits")
            && (last_error.contains("max_new_series_per_minute")
                || last_error.contains("max_head_series")),
        "bomb lastError: {last_error:?}"
    );
    let (_, metrics) = http(addr, "GET", "/metrics", &[], &[]).expect("metrics");
    let metrics = String::from_utf8_lossy(&metrics).to_string();
    let refused: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("osprey_series_limit_rejections_total{")
                && l.contains("kind=\"job\"")
                && l.contains("name=\"bomb\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        refused > BOMB_SERIES as f64,
        "bomb refusals counted: {refused}\n{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "osprey_series_limit{{limit=\"max_head_series\",kind=\"\",name=\"\"}} {MAX_HEAD_SERIES}"
        )),
        "{metrics}"
    );

    // The head stays under the global limit.
    let tsdb = get_json(addr, "/api/v1/status/tsdb");
    let head_series = tsdb["data"]["headStats"]["numSeries"]
        .as_u64()
        .expect("numSeries");
    assert!(
        head_series <= MAX_HEAD_SERIES,
        "{head_series} head series, limit {MAX_HEAD_SERIES}"
    );
    assert!(
        head_series >= BOMB_NEW_PER_MINUTE,
        "the bomb's first scrape fills its bucket: {head_series}"
    );
    let limits = &tsdb["data"]["seriesLimits"];
    // Read a moment after numSeries, while the bomb still adds series.
    let limit_head = limits["headSeries"].as_u64().expect("headSeries");
    assert!(
        (head_series..=MAX_HEAD_SERIES).contains(&limit_head),
        "{limit_head}"
    );
    assert!(
        limits["rejections"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["name"] == "bomb")),
        "{limits}"
    );
    stop.store(true, Ordering::Relaxed);

    // Remote write: team-a may add 5 series a minute. The five fit; the
    // rest answer 429 with Retry-After, after the five are stored.
    let now = chrono_ms();
    let batch = |sender_series: u64, t: i64| -> Vec<u8> {
        let series: Vec<WriteSeries<'_>> = (0..sender_series)
            .map(|i| {
                (
                    vec![("__name__", "rw_metric".to_string()), ("i", i.to_string())],
                    vec![(t, i as f64)],
                )
            })
            .collect();
        remote_write_body(&series)
    };
    let write = |org: &str, body: &[u8]| -> (u16, String, Vec<u8>) {
        let (status, head, body) = http_with_head(
            addr,
            "/api/v1/write",
            &[
                ("Content-Type", "application/x-protobuf"),
                ("Content-Encoding", "snappy"),
                ("X-Prometheus-Remote-Write-Version", "0.1.0"),
                ("X-Scope-OrgID", org),
            ],
            body,
        );
        (status, head, body)
    };
    let (status, head, body) = write("team-a", &batch(10, now));
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 10"),
        "{head}"
    );
    let error: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(error["status"], "error");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("max_new_series_per_minute")),
        "{error}"
    );
    assert_eq!(export(addr, "rw_metric").len(), 5, "the five that fit");
    // Their later samples are accepted: only creation is limited.
    let (status, _, body) = write("team-a", &batch(5, now + 1000));
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    // team-b may have 3 series of a metric name: a hard limit, 400.
    let series: Vec<WriteSeries<'_>> = (0..5)
        .map(|i| {
            (
                vec![("__name__", "rw_other".to_string()), ("i", i.to_string())],
                vec![(now, 1.0)],
            )
        })
        .collect();
    let (status, _, body) = write("team-b", &remote_write_body(&series));
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let error: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(error["errorType"], "bad_data");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("max_series_per_metric is 3")),
        "{error}"
    );
    assert_eq!(export(addr, "rw_other").len(), 3);
    drop(server);
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A POST that also returns the response head.
fn http_with_head(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read");
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end");
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head, resp[end + 4..].to_vec())
}

#[test]
fn limits_reload_with_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("osprey.yml");
    let write = |limit: u64| {
        std::fs::write(
            &config_path,
            format!("limits:\n  max_head_series: {limit}\n  jobs:\n    a: {{max_new_series_per_minute: 7}}\n"),
        )
        .expect("config");
    };
    write(1000);
    let addr = free_addr();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
        &["--config", config_path.to_str().expect("path")],
    );
    let limit_line = |limit: u64| {
        let (_, metrics) = http(addr, "GET", "/metrics", &[], &[]).expect("metrics");
        let metrics = String::from_utf8_lossy(&metrics).to_string();
        metrics.contains(&format!(
            "osprey_series_limit{{limit=\"max_head_series\",kind=\"\",name=\"\"}} {limit}"
        )) && metrics.contains(
            "osprey_series_limit{limit=\"max_new_series_per_minute\",kind=\"job\",name=\"a\"} 7",
        )
    };
    assert!(limit_line(1000));
    write(2000);
    let (status, body) = http(addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(limit_line(2000));
    // A bad limit fails the reload and keeps the running one.
    std::fs::write(&config_path, "limits:\n  max_head_series: lots\n").expect("config");
    let (status, _) = http(addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_ne!(status, 200);
    assert!(limit_line(2000));
    drop(server);
}
