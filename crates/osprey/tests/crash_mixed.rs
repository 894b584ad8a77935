//! SIGKILL under mixed load: remote write, scrapes, rule evaluation and
//! silence creation all run against one `osprey server` while the test
//! kills it with SIGKILL at random moments and restarts it. At the end
//! every acknowledged sample and every acknowledged silence must be there,
//! and scraping and the rule must still be producing samples.
//!
//! `cargo test` runs 5 kills; `OSPREY_CRASH_KILLS=100` (what
//! `scripts/crash-100.sh` sets, on a release build) runs the 100.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const SERIES_PER_BATCH: usize = 10;

fn kills() -> usize {
    std::env::var("OSPREY_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn batch(i: u64) -> Vec<u8> {
    numbered_batch("crash_mixed", SERIES_PER_BATCH, i)
}

/// A scrape target on its own thread: every request gets a counter of the
/// requests so far. Stops when `done` is set.
fn start_target(done: Arc<AtomicBool>) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        let mut served = 0u64;
        while !done.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut request = [0u8; 4096];
                    let _ = stream.read(&mut request);
                    served += 1;
                    let body = format!(
                        "# TYPE mixed_target_requests_total counter\nmixed_target_requests_total {served}\n"
                    );
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (addr, handle)
}

fn create_silence(addr: SocketAddr, i: u64) -> Option<String> {
    let body = serde_json::json!({
        "matchers": [{"name": "alertname", "value": format!("mixed-{i}"), "isRegex": false, "isEqual": true}],
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "crash_mixed",
        "comment": format!("mixed-{i}"),
    })
    .to_string();
    let (status, body) = http(
        addr,
        "POST",
        "/api/v2/silences",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .ok()?;
    if status != 200 {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
    value["silenceID"].as_str().map(str::to_string)
}

/// The newest sample time (ms) of `query`'s first series over the last
/// minute, if any.
fn newest_sample_ms(addr: SocketAddr, query: &str) -> Option<i64> {
    let path = format!("/api/v1/query?query={}", urlencode(&format!("{query}[1m]")));
    let (status, body) = http(addr, "GET", &path, &[], &[]).ok()?;
    if status != 200 {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let values = value["data"]["result"].as_array()?.first()?["values"].as_array()?;
    values
        .last()?
        .as_array()?
        .first()?
        .as_f64()
        .map(|s| (s * 1000.0) as i64)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[test]
fn nothing_acknowledged_is_lost_to_sigkill_under_mixed_load() {
    let kills = kills();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let addr = free_addr();
    let done = Arc::new(AtomicBool::new(false));
    let target_done = Arc::new(AtomicBool::new(false));
    let (target, target_thread) = start_target(target_done.clone());
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: mixed\n    interval: 100ms\n    rules:\n      - record: crash_mixed:scraped\n        expr: sum(mixed_target_requests_total)\n      - record: crash_mixed:target_rate\n        expr: rate(mixed_target_requests_total[5s])\n",
    )
    .expect("rules");
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 100ms\n  scrape_timeout: 90ms\n  evaluation_interval: 100ms\nrule_files: [rules.yml]\nscrape_configs:\n  - job_name: target\n    static_configs:\n      - targets: ['{target}']\nalertmanager:\n  route:\n    receiver: default\n  receivers:\n    - name: default\n"
        ),
    )
    .expect("config");
    let config_arg = config.to_string_lossy().into_owned();
    let start = || Server::start_with_args(&data, addr, &log, &["--config", &config_arg]);
    let server = Arc::new(Mutex::new(Some(start())));

    // Remote write: batches one after another, each retried until
    // acknowledged, so 0..acked are all acknowledged.
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let acked = acked.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                match remote_write(addr, &batch(i)) {
                    Ok(204) | Ok(200) => {
                        i += 1;
                        acked.store(i, Ordering::SeqCst);
                    }
                    Ok(code) => panic!("batch {i} rejected with {code}"),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    };
    // Silences: one after another; the ids of those acknowledged.
    let silences = Arc::new(Mutex::new(Vec::<String>::new()));
    let silencer = {
        let silences = silences.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                match create_silence(addr, i) {
                    Some(id) => {
                        silences.lock().expect("lock").push(id);
                        i += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    None => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    };

    let started = Instant::now();
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    for kill in 0..kills {
        // xorshift: 30 to 330 ms between kills, so they land at different
        // points of every write path.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        std::thread::sleep(Duration::from_millis(30 + rng_state % 300));
        if let Some(s) = server.lock().expect("lock").take() {
            s.kill();
        }
        let restarted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(start));
        match restarted {
            Ok(s) => *server.lock().expect("lock") = Some(s),
            Err(panic) => {
                done.store(true, Ordering::Relaxed);
                target_done.store(true, Ordering::Relaxed);
                std::panic::resume_unwind(panic);
            }
        }
        if kill % 10 == 9 {
            eprintln!(
                "crash_mixed: {} kills, {} batches and {} silences acknowledged, {:?}",
                kill + 1,
                acked.load(Ordering::SeqCst),
                silences.lock().expect("lock").len(),
                started.elapsed()
            );
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    silencer.join().expect("silencer");
    let n = acked.load(Ordering::SeqCst);
    let silence_ids = silences.lock().expect("lock").clone();
    assert!(n > kills as u64, "too few batches acknowledged ({n})");
    assert!(
        silence_ids.len() > kills,
        "too few silences acknowledged ({})",
        silence_ids.len()
    );

    // One more kill after the writers stopped, then read everything back
    // (the target keeps serving for the liveness checks below).
    if let Some(s) = server.lock().expect("lock").take() {
        s.kill();
    }
    let s = start();
    let got = export(addr, "crash_mixed");
    assert_eq!(got.len(), SERIES_PER_BATCH, "every series present");
    for (labels, ts, vals) in &got {
        assert!(
            ts.len() as u64 >= n,
            "{labels:?}: {} samples, {n} acknowledged",
            ts.len()
        );
        for i in 0..n {
            let idx = i as usize;
            assert_eq!(ts[idx], 1_000_000 + i as i64 * 1000, "{labels:?} batch {i}");
            assert_eq!(vals[idx].as_f64(), Some(i as f64), "{labels:?} batch {i}");
        }
    }
    let (status, body) = http(addr, "GET", "/api/v2/silences", &[], &[]).expect("silences");
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let listed: std::collections::HashSet<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    let lost: Vec<&String> = silence_ids
        .iter()
        .filter(|id| !listed.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged silences lost: {lost:?}",
        lost.len(),
        silence_ids.len()
    );
    // Scrapes and rules run after the last restart.
    let restarted_at = now_ms();
    let deadline = Instant::now() + Duration::from_secs(20);
    let fresh = |query: &str| newest_sample_ms(addr, query).is_some_and(|t| t > restarted_at);
    while !(fresh("up{job=\"target\"}") && fresh("crash_mixed:scraped")) {
        assert!(
            Instant::now() < deadline,
            "no scrape or rule sample after the last restart; log:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log_text = s.log_text();
    assert!(!log_text.contains("panicked"), "{log_text}");
    eprintln!(
        "crash_mixed: {kills} SIGKILLs in {:?}; {n} batches ({} samples) and {} silences acknowledged, all read back; scrapes and rules running after the last restart",
        started.elapsed(),
        n * SERIES_PER_BATCH as u64,
        silence_ids.len()
    );
    s.kill();
    target_done.store(true, Ordering::Relaxed);
    target_thread.join().expect("target");
}
