//! Remote write forwarding end to end, from `osprey agent` and from
//! `osprey server`: a fake target served by this test is scraped by the
//! real binary and forwarded with remote write to a real Prometheus
//! (`--web.enable-remote-write-receiver`) and a real VictoriaMetrics; the
//! data is read back through each one's `/api/v1/query` and compared with
//! what the target served. A durability test kills the agent with SIGKILL
//! while the receiver is down and checks that every scraped sample arrives
//! after a restart. The server tests also check that recording rules are
//! forwarded, that the server still stores what it forwards, and that a
//! reload starts forwarding.
//!
//! A missing `prometheus` or `victoria-metrics` skips its test with a
//! reason, unless `OSPREY_REQUIRE_EXTERNAL=1`, where it fails.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

/// Series the fake target serves per scrape.
const SERIES: u64 = 5;

/// A scrape target: each scrape serves `osprey_agent_probe{series="i"}`
/// with value `scrape * 10 + i` and records what it served. Frozen, it
/// answers 503 and records nothing.
struct Target {
    addr: SocketAddr,
    served: Arc<Mutex<BTreeMap<String, BTreeSet<u64>>>>,
    scrapes: Arc<AtomicU64>,
    frozen: Arc<AtomicBool>,
}

impl Target {
    fn start() -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
        let addr = listener.local_addr().expect("target addr");
        let served = Arc::new(Mutex::new(BTreeMap::new()));
        let scrapes = Arc::new(AtomicU64::new(0));
        let frozen = Arc::new(AtomicBool::new(false));
        let (s, n, f) = (served.clone(), scrapes.clone(), frozen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => request.extend_from_slice(&buffer[..k]),
                    }
                }
                if f.load(Ordering::SeqCst) {
                    let _ = stream.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                }
                let scrape = n.fetch_add(1, Ordering::SeqCst) + 1;
                let mut body = String::from("# TYPE osprey_agent_probe gauge\n");
                {
                    let mut served = s.lock().expect("served lock");
                    for i in 0..SERIES {
                        let value = scrape * 10 + i;
                        body.push_str(&format!("osprey_agent_probe{{series=\"{i}\"}} {value}\n"));
                        served
                            .entry(i.to_string())
                            .or_insert_with(BTreeSet::new)
                            .insert(value);
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Target {
            addr,
            served,
            scrapes,
            frozen,
        }
    }

    fn served(&self) -> BTreeMap<String, BTreeSet<u64>> {
        self.served.lock().expect("served lock").clone()
    }

    /// Waits until the target was scraped `n` times; returns the count.
    fn wait_scrapes(&self, n: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let scrapes = self.scrapes.load(Ordering::SeqCst);
            if scrapes >= n {
                return scrapes;
            }
            assert!(Instant::now() < deadline, "the target was not scraped");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for `n` scrapes, then freezes and lets in-flight commits land.
    fn serve_then_freeze(&self, n: u64) {
        self.wait_scrapes(n);
        self.frozen.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1500));
    }
}

/// A running `osprey agent`, killed when dropped.
struct Agent {
    child: ChildGuard,
    addr: SocketAddr,
}

impl Agent {
    fn start(config: &Path, data_dir: &Path, log: &Path) -> Agent {
        let addr = free_addr();
        let child = ChildGuard::spawn_ready(
            Command::new(env!("CARGO_BIN_EXE_osprey"))
                .args(["agent", "--config"])
                .arg(config)
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--listen", &addr.to_string()])
                .env("OSPREY_LOG", "info"),
            log,
            Duration::from_secs(30),
            || is_ready(addr),
        );
        Agent { child, addr }
    }

    fn kill(mut self) {
        self.child.kill();
    }
}

/// An external receiver process, killed when dropped.
struct Receiver {
    _child: ChildGuard,
    addr: SocketAddr,
}

fn required() -> bool {
    std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// Whether `program` runs; prints why not (or fails when required).
fn available(program: &str, package: &str) -> bool {
    match Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(e) => {
            let reason = format!("{program} is not installed ({e}); apt-get install {package}");
            assert!(!required(), "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
            eprintln!("skipping: {reason}");
            false
        }
    }
}

/// Starts a receiver with its log in `log` and waits (a minute at most)
/// until `ready_path` answers 200.
fn start_receiver(
    command: &mut Command,
    log: &Path,
    addr: SocketAddr,
    ready_path: &str,
) -> Receiver {
    let child = ChildGuard::spawn_ready(command, log, Duration::from_secs(60), || {
        matches!(http(addr, "GET", ready_path, &[], &[]), Ok((200, _)))
    });
    Receiver {
        _child: child,
        addr,
    }
}

fn start_prometheus(dir: &Path, addr: SocketAddr) -> Receiver {
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").expect("write config");
    start_receiver(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver"),
        &dir.join("prometheus.log"),
        addr,
        "/-/ready",
    )
}

fn start_victoria_metrics(dir: &Path, addr: SocketAddr) -> Receiver {
    start_receiver(
        Command::new("victoria-metrics")
            .arg(format!(
                "-storageDataPath={}",
                dir.join("vm-data").display()
            ))
            .arg(format!("-httpListenAddr={addr}"))
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache"),
        &dir.join("vm.log"),
        addr,
        "/health",
    )
}

fn agent_config(dir: &Path, target: SocketAddr, remote_url: &str) -> std::path::PathBuf {
    let path = dir.join("agent.yml");
    let text = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  external_labels:\n    sender: a1\n\
scrape_configs:\n  - job_name: fake\n    static_configs:\n      - targets: ['{target}']\n\
remote_write:\n  - url: {remote_url}\n    queue_config:\n      batch_send_deadline: 200ms\n      min_backoff: 50ms\n      max_backoff: 500ms\n"
    );
    std::fs::write(&path, text).expect("write agent config");
    path
}

/// `osprey_agent_probe` as the receiver returns it: series label → values
/// (staleness markers left out), and whether every series carried the
/// external label.
fn read_back(addr: SocketAddr) -> (BTreeMap<String, BTreeSet<u64>>, bool) {
    let query = urlencode("osprey_agent_probe{job=\"fake\"}[10m]");
    let Ok((200, body)) = http(
        addr,
        "GET",
        &format!("/api/v1/query?query={query}"),
        &[],
        &[],
    ) else {
        return (BTreeMap::new(), false);
    };
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut external = true;
    for series in json["data"]["result"].as_array().into_iter().flatten() {
        let name = series["metric"]["series"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        external &= series["metric"]["sender"] == "a1";
        let values: &mut BTreeSet<u64> = out.entry(name).or_default();
        for pair in series["values"].as_array().into_iter().flatten() {
            if let Some(Ok(v)) = pair[1].as_str().map(str::parse::<f64>)
                && v.is_finite()
            {
                values.insert(v as u64);
            }
        }
    }
    (out, external)
}

/// Polls the receiver until it holds exactly what the target served.
fn assert_all_arrived(receiver: &Receiver, target: &Target, what: &str, agent_log: &Path) {
    let served = target.served();
    assert_eq!(served.len() as u64, SERIES);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (got, external) = read_back(receiver.addr);
        if got == served {
            assert!(external, "{what}: external label sender=\"a1\" missing");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: receiver has {got:?}, target served {served:?}; agent log:\n{}",
            std::fs::read_to_string(agent_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn agent_forwards_to_prometheus() {
    if !available("prometheus", "prometheus") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = start_prometheus(dir.path(), free_addr());
    let target = Target::start();
    let url = format!("http://{}/api/v1/write", receiver.addr);
    let config = agent_config(dir.path(), target.addr, &url);
    let log = dir.path().join("agent.log");
    let agent = Agent::start(&config, &dir.path().join("agent-data"), &log);
    target.serve_then_freeze(4);
    assert_all_arrived(&receiver, &target, "prometheus", &log);

    // The agent's own metrics count what it sent.
    let (status, body) = http(agent.addr, "GET", "/metrics", &[], &[]).expect("agent /metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    let sent: f64 = text
        .lines()
        .find(|l| l.starts_with("prometheus_remote_storage_samples_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        sent >= (4 * SERIES) as f64,
        "samples sent {sent}; metrics:\n{text}"
    );

    // A second agent on the same data directory refuses to start.
    let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
    command
        .args(["agent", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("agent-data"))
        .args(["--listen", &free_addr().to_string()]);
    let second =
        ChildGuard::output(&mut command, Duration::from_secs(30)).expect("run second agent");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another osprey agent"),
        "{stderr}"
    );
}

#[test]
fn agent_forwards_to_victoria_metrics() {
    if !available("victoria-metrics", "victoria-metrics") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = start_victoria_metrics(dir.path(), free_addr());
    let target = Target::start();
    let url = format!("http://{}/api/v1/write", receiver.addr);
    let config = agent_config(dir.path(), target.addr, &url);
    let log = dir.path().join("agent.log");
    let _agent = Agent::start(&config, &dir.path().join("agent-data"), &log);
    target.serve_then_freeze(4);
    assert_all_arrived(&receiver, &target, "victoria-metrics", &log);
}

/// Receiver down while the agent scrapes; SIGKILL; restart; receiver up:
/// every scraped sample arrives.
#[test]
fn unsent_samples_survive_sigkill() {
    if !available("prometheus", "prometheus") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver_addr = free_addr();
    let target = Target::start();
    let url = format!("http://{receiver_addr}/api/v1/write");
    let config = agent_config(dir.path(), target.addr, &url);
    let data = dir.path().join("agent-data");
    let log = dir.path().join("agent.log");
    let agent = Agent::start(&config, &data, &log);
    target.serve_then_freeze(4);
    agent.kill();
    assert!(
        std::fs::read_dir(data.join("wal"))
            .map(|d| d.count() > 0)
            .unwrap_or(false),
        "no WAL segments on disk"
    );
    let _agent = Agent::start(&config, &data, &log);
    let receiver = start_prometheus(dir.path(), receiver_addr);
    assert_all_arrived(&receiver, &target, "after SIGKILL and restart", &log);
}

/// An agent started without `remote_write` keeps what it scrapes; a
/// reload that adds one sends all of it.
#[test]
fn reload_adding_remote_write_sends_what_was_kept() {
    if !available("prometheus", "prometheus") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target::start();
    let config = dir.path().join("agent.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  external_labels:\n    sender: a1\n\
scrape_configs:\n  - job_name: fake\n    static_configs:\n      - targets: ['{}']\n",
            target.addr
        ),
    )
    .expect("write config");
    let log = dir.path().join("agent.log");
    let agent = Agent::start(&config, &dir.path().join("agent-data"), &log);
    target.serve_then_freeze(3);

    let receiver = start_prometheus(dir.path(), free_addr());
    let url = format!("http://{}/api/v1/write", receiver.addr);
    agent_config(dir.path(), target.addr, &url);
    let (status, body) = http(agent.addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_all_arrived(&receiver, &target, "after a reload", &log);

    // A bad configuration fails the reload and names the file and line.
    std::fs::write(&config, "remote_write:\n  - url: ftp://x\n").expect("write config");
    let (status, body) = http(agent.addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 500);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("agent.yml:2: remote_write[0].url"), "{text}");
}

/// A server configuration that scrapes the fake target every second,
/// records the probes' sum, and forwards to `remote_url` when given.
fn server_config(dir: &Path, target: SocketAddr, remote_url: Option<&str>) -> std::path::PathBuf {
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: forwarded\n    interval: 1s\n    rules:\n      - record: osprey_probe_sum\n        expr: sum(osprey_agent_probe)\n",
    )
    .expect("write rules");
    let mut text = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n  external_labels:\n    sender: a1\n\
rule_files: [rules.yml]\n\
scrape_configs:\n  - job_name: fake\n    static_configs:\n      - targets: ['{target}']\n"
    );
    if let Some(url) = remote_url {
        text.push_str(&format!(
            "remote_write:\n  - url: {url}\n    queue_config:\n      batch_send_deadline: 200ms\n      min_backoff: 50ms\n      max_backoff: 500ms\n"
        ));
    }
    let path = dir.join("osprey.yml");
    std::fs::write(&path, text).expect("write server config");
    path
}

/// How many series `query` (a range selector) returns at `addr`.
fn count_series(addr: SocketAddr, query: &str) -> usize {
    let path = format!("/api/v1/query?query={}", urlencode(query));
    let Ok((200, body)) = http(addr, "GET", &path, &[], &[]) else {
        return 0;
    };
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    json["data"]["result"].as_array().map_or(0, Vec::len)
}

#[test]
fn server_forwards_scrapes_and_rules_to_victoria_metrics() {
    if !available("victoria-metrics", "victoria-metrics") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = start_victoria_metrics(dir.path(), free_addr());
    server_forwards_scrapes_and_rules(dir.path(), &receiver);
}

#[test]
fn server_forwards_scrapes_and_rules_to_prometheus() {
    if !available("prometheus", "prometheus") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = start_prometheus(dir.path(), free_addr());
    server_forwards_scrapes_and_rules(dir.path(), &receiver);
}

/// `osprey server` scraping a target and evaluating a recording rule
/// forwards both to `receiver`, keeps them itself, counts what it sent
/// and keeps one queue position.
fn server_forwards_scrapes_and_rules(dir: &Path, receiver: &Receiver) {
    let target = Target::start();
    let url = format!("http://{}/api/v1/write", receiver.addr);
    let config = server_config(dir, target.addr, Some(&url));
    let data = dir.join("data");
    let log = dir.join("server.log");
    let server = Server::start_with_args(
        &data,
        free_addr(),
        &log,
        &["--config", &config.display().to_string()],
    );
    target.serve_then_freeze(4);
    assert_all_arrived(receiver, &target, "from the server", &log);

    // The server keeps what it forwards.
    let (stored, _) = read_back(server.addr);
    assert_eq!(stored, target.served(), "the server's own store");

    // Recording rules are forwarded too, with the external labels.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_series(receiver.addr, "osprey_probe_sum{sender=\"a1\"}[10m]") == 0 {
        assert!(
            Instant::now() < deadline,
            "the recording rule did not arrive; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let (status, body) = http(server.addr, "GET", "/metrics", &[], &[]).expect("/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    let sent: f64 = text
        .lines()
        .find(|l| l.starts_with("prometheus_remote_storage_samples_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        sent >= (4 * SERIES) as f64,
        "samples sent {sent}; metrics:\n{text}"
    );

    assert!(server.terminate().success(), "clean exit");
    let positions = std::fs::read_dir(data.join("remote-write/queues"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        positions, 1,
        "one queue position under <data-dir>/remote-write"
    );
}

/// A server started without `remote_write` forwards nothing; a reload
/// that adds one forwards from then on (what was stored before stays
/// local, unlike the agent, whose WAL holds everything it scraped).
#[test]
fn server_reload_starts_forwarding() {
    if !available("victoria-metrics", "victoria-metrics") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = start_victoria_metrics(dir.path(), free_addr());
    let target = Target::start();
    let config = server_config(dir.path(), target.addr, None);
    let log = dir.path().join("server.log");
    let server = Server::start_with_args(
        &dir.path().join("data"),
        free_addr(),
        &log,
        &["--config", &config.display().to_string()],
    );
    let before = target.wait_scrapes(2);

    let url = format!("http://{}/api/v1/write", receiver.addr);
    server_config(dir.path(), target.addr, Some(&url));
    let (status, body) = http(server.addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    target.serve_then_freeze(before + 4);

    // The last scrape arrives; the first, long before the reload, does not.
    let last = target.scrapes.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (got, external) = read_back(receiver.addr);
        let complete = (0..SERIES).all(|i| {
            got.get(&i.to_string())
                .is_some_and(|values| values.contains(&(last * 10 + i)))
        });
        if complete {
            assert!(external, "external label sender=\"a1\" missing");
            for (series, values) in &got {
                assert!(
                    !values.iter().any(|v| v / 10 == 1),
                    "series {series}: the first scrape was forwarded: {values:?}"
                );
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "receiver has {got:?} after the reload; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A loopback receiver that keeps every remote write request it gets,
/// decoded, and answers 204. Its thread ends with the test process.
fn capture_receiver() -> (SocketAddr, Arc<std::sync::Mutex<Vec<remote::WriteRequest>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 8192];
            // Headers, then Content-Length bytes of body.
            let (head_end, length) = loop {
                let Ok(n) = stream.read(&mut chunk) else {
                    break (0, 0);
                };
                if n == 0 {
                    break (0, 0);
                }
                buffer.extend_from_slice(&chunk[..n]);
                if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    break (end + 4, length);
                }
            };
            if head_end == 0 {
                continue;
            }
            while buffer.len() < head_end + length {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
            let body = &buffer[head_end..(head_end + length).min(buffer.len())];
            if let Ok(raw) = snap::raw::Decoder::new().decompress_vec(body)
                && let Ok(request) =
                    <remote::WriteRequest as prost::Message>::decode(raw.as_slice())
            {
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(request);
            }
            let _ = stream.write_all(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (addr, seen)
}

/// `metadata_config`: the agent sends the scraped families' type, help and
/// unit every `send_interval`, in requests that hold only metadata, beside
/// the samples; `send: false` sends none.
#[test]
fn agent_sends_scrape_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target::start();
    let (addr, seen) = capture_receiver();
    let (quiet_addr, quiet_seen) = capture_receiver();
    let config = dir.path().join("agent.yml");
    std::fs::write(
        &config,
        [
            "global:",
            "  scrape_interval: 1s",
            "  scrape_timeout: 900ms",
            "scrape_configs:",
            "  - job_name: fake",
            "    static_configs:",
            &format!("      - targets: ['{}']", target.addr),
            "remote_write:",
            &format!("  - url: http://{addr}/api/v1/write"),
            "    queue_config: {batch_send_deadline: 200ms}",
            "    metadata_config: {send_interval: 300ms, max_samples_per_send: 1}",
            &format!("  - url: http://{quiet_addr}/api/v1/write"),
            "    queue_config: {batch_send_deadline: 200ms}",
            "    metadata_config: {send: false, send_interval: 300ms}",
            "",
        ]
        .join("\n"),
    )
    .expect("write config");
    let agent = Agent::start(
        &config,
        &dir.path().join("data"),
        &dir.path().join("agent.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let requests = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let found: Vec<remote::MetricMetadata> = requests
            .iter()
            .flat_map(|r| r.metadata.clone())
            .filter(|m| m.metric_family_name == "osprey_agent_probe")
            .collect();
        let samples = requests.iter().any(|r| !r.timeseries.is_empty());
        let quiet_samples = quiet_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|r| !r.timeseries.is_empty());
        if !found.is_empty() && samples && quiet_samples {
            // Metadata requests carry no samples, and at most one entry
            // each here (max_samples_per_send: 1).
            for r in requests.iter().filter(|r| !r.metadata.is_empty()) {
                assert!(r.timeseries.is_empty() && r.metadata.len() == 1, "{r:?}");
            }
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no metadata arrived; log:\n{}",
            std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // prometheus.MetricMetadata: GAUGE is 2.
    assert_eq!(found[0].r#type, 2);
    // Metadata went out at least once meanwhile; the second queue, with
    // send: false, got samples and never metadata.
    let quiet = quiet_seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        quiet.iter().all(|r| r.metadata.is_empty()),
        "send: false sent metadata"
    );
    agent.kill();
}

/// The server sends its scrape targets' metadata too.
#[test]
fn server_sends_scrape_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target::start();
    let (addr, seen) = capture_receiver();
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        [
            "global:",
            "  scrape_interval: 1s",
            "  scrape_timeout: 900ms",
            "scrape_configs:",
            "  - job_name: fake",
            "    static_configs:",
            &format!("      - targets: ['{}']", target.addr),
            "remote_write:",
            &format!("  - url: http://{addr}/api/v1/write"),
            "    queue_config: {batch_send_deadline: 200ms}",
            "    metadata_config: {send_interval: 300ms}",
            "",
        ]
        .join("\n"),
    )
    .expect("write config");
    let server = Server::start_with_args(
        &dir.path().join("data"),
        free_addr(),
        &dir.path().join("server.log"),
        &["--config", &config.display().to_string()],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let gauge = seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|r| r.metadata.clone())
            .any(|m| m.metric_family_name == "osprey_agent_probe" && m.r#type == 2);
        if gauge {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no metadata arrived; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
