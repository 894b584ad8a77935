//! Helpers for tests that run the real `osprey` binary over loopback HTTP.

#![allow(dead_code, reason = "each test binary uses a different part")]

mod child;
mod ports;
pub mod prometheus;

pub use child::ChildGuard;
pub use ports::free_addr;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A running `osprey server` child process, killed when dropped.
pub struct Server {
    pub child: ChildGuard,
    pub addr: SocketAddr,
    pub log: std::path::PathBuf,
}

impl Server {
    /// Starts `osprey server` on `addr` with `data_dir` and waits until it
    /// answers `/-/ready` (at most 30 s).
    pub fn start(data_dir: &Path, addr: SocketAddr, log: &Path) -> Server {
        Server::start_with_args(data_dir, addr, log, &[])
    }

    /// Like [`Server::start`] with extra `osprey server` arguments.
    pub fn start_with_args(
        data_dir: &Path,
        addr: SocketAddr,
        log: &Path,
        extra: &[&str],
    ) -> Server {
        let child = ChildGuard::spawn_ready(
            Command::new(env!("CARGO_BIN_EXE_osprey"))
                .args(["server", "--data-dir"])
                .arg(data_dir)
                .args(["--listen", &addr.to_string()])
                .args(extra),
            log,
            Duration::from_secs(30),
            || is_ready(addr),
        );
        assert_serves(addr, data_dir);
        Server {
            child,
            addr,
            log: log.to_path_buf(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill();
    }

    /// SIGTERM and wait (at most a minute) for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.child.terminate(Duration::from_secs(60))
    }
}

/// Fails the test when the osprey answering at `addr` is not the one on
/// `data_dir`: a server that could not bind its port exits, but only after
/// the readiness probe may have been answered by another test's server.
/// Servers that keep their flags from anonymous callers are not checked.
fn assert_serves(addr: SocketAddr, data_dir: &Path) {
    let Ok((200, body)) = http(addr, "GET", "/api/v1/status/flags", &[], &[]) else {
        return;
    };
    let flags: serde_json::Value = serde_json::from_slice(&body).expect("flags JSON");
    assert_eq!(
        flags["data"]["storage.tsdb.path"].as_str(),
        Some(data_dir.display().to_string().as_str()),
        "the server answering on {addr} is not the one just started"
    );
}

/// Whether the osprey at `addr` answers `GET /-/ready` with 200.
pub fn is_ready(addr: SocketAddr) -> bool {
    matches!(http(addr, "GET", "/-/ready", &[], &[]), Ok((200, _)))
}

/// One HTTP/1.1 request with `Connection: close`. Returns status and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    http_with_headers(addr, method, path, headers, body).map(|(status, _, body)| (status, body))
}

/// A response: status, headers (names lower-cased), body.
pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Like [`http`], with the response headers.
pub fn http_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let head_end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&resp[..head_end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let mut body = resp[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    let response_headers = head
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect();
    Ok((status, response_headers, body))
}

fn dechunk(mut b: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| std::io::Error::other("bad chunk"))?;
        let size_str = String::from_utf8_lossy(&b[..line_end]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err(std::io::Error::other("short chunk"));
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Encodes a remote-write 1.0 body (snappy-compressed protobuf).
/// One series to remote-write: label pairs and samples.
pub type WriteSeries<'a> = (Vec<(&'a str, String)>, Vec<(i64, f64)>);

/// One series read back: sorted label pairs, timestamps, raw JSON values.
pub type ExportedSeries = (Vec<(String, String)>, Vec<i64>, Vec<serde_json::Value>);

pub fn remote_write_body(series: &[WriteSeries<'_>]) -> Vec<u8> {
    use prost::Message;
    use remote::{Label, Sample, TimeSeries, WriteRequest};
    let req = WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| Label {
                        name: n.to_string(),
                        value: v.clone(),
                    })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|&(t, v)| Sample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let raw = req.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy")
}

/// Batch `i` of a numbered remote-write stream: `n_series` series
/// `name{series="0".."n-1"}`, each with one sample at timestamp
/// `1_000_000 + i * 1000` and value `i`. The crash tests send batches in
/// order and check, after kills, that batches `0..acknowledged` are all
/// there.
pub fn numbered_batch(name: &str, n_series: usize, i: u64) -> Vec<u8> {
    let series: Vec<WriteSeries<'_>> = (0..n_series)
        .map(|s| {
            (
                vec![("__name__", name.to_string()), ("series", s.to_string())],
                vec![(1_000_000 + i as i64 * 1000, i as f64)],
            )
        })
        .collect();
    remote_write_body(&series)
}

/// Sends a remote-write body; returns the status.
pub fn remote_write(addr: SocketAddr, body: &[u8]) -> std::io::Result<u16> {
    http(
        addr,
        "POST",
        "/api/v1/write",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        body,
    )
    .map(|(s, _)| s)
}

/// Reads every series matching `selector` through `/api/v1/export`:
/// (labels as sorted pairs, timestamps, raw JSON values).
pub fn export(addr: SocketAddr, selector: &str) -> Vec<ExportedSeries> {
    let path = format!("/api/v1/export?match[]={}", urlencode(selector));
    let (status, body) = http(addr, "GET", &path, &[], &[]).expect("export");
    assert_eq!(
        status,
        200,
        "export failed: {}",
        String::from_utf8_lossy(&body)
    );
    let mut out = Vec::new();
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).expect("json line");
        let mut labels: Vec<(String, String)> = v["metric"]
            .as_object()
            .expect("metric")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        labels.sort();
        let ts = v["timestamps"]
            .as_array()
            .expect("timestamps")
            .iter()
            .map(|t| t.as_i64().expect("ts"))
            .collect();
        let vals = v["values"].as_array().expect("values").clone();
        out.push((labels, ts, vals));
    }
    out
}

pub fn urlencode(s: &str) -> String {
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

/// Whether an outside program or library a test needs is present. When it
/// is not, the test skips with the reason printed, unless
/// `OSPREY_REQUIRE_EXTERNAL=1`, where the missing part fails the test.
pub fn external_present(present: bool, what: &str) -> bool {
    if !present {
        assert!(
            std::env::var("OSPREY_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
            "OSPREY_REQUIRE_EXTERNAL=1 but {what} is missing"
        );
        eprintln!("skipping: {what} is missing");
    }
    present
}

/// Whether `python3` imports every module in `modules` (comma-separated,
/// as an `import` statement lists them); `what` names them for the skip
/// reason (see `external_present`).
pub fn python_imports(modules: &str, what: &str) -> bool {
    let present = ChildGuard::run(
        Command::new("python3").args(["-c", &format!("import {modules}")]),
        Duration::from_secs(120),
    )
    .is_ok_and(|f| f.status.is_some_and(|s| s.success()));
    external_present(present, what)
}

/// An instant query at the server's now: each series as (its labels as
/// sorted `name=value` pairs joined by `,`, its value), sorted by labels.
pub fn instant_values(addr: SocketAddr, q: &str) -> Vec<(String, f64)> {
    let path = format!("/api/v1/query?query={}", urlencode(q));
    let (status, body) = http(addr, "GET", &path, &[], &[]).expect("query");
    assert_eq!(status, 200, "{q}: {}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let mut out: Vec<(String, f64)> = v["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|s| {
            let mut labels: Vec<String> = s["metric"]
                .as_object()
                .expect("metric")
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            labels.sort();
            let value = s["value"][1]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or(f64::NAN);
            (labels.join(","), value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
