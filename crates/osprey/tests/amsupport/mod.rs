//! Helpers for the alert manager tests: running `osprey alertmanager` and
//! Debian's `prometheus-alertmanager` as child processes, a webhook sink on
//! loopback, and finding `amtool`.

#![allow(dead_code, reason = "each test binary uses a different part")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "../support/child.rs"]
mod child;
#[path = "../support/ports.rs"]
mod ports;

pub use child::ChildGuard;
pub use ports::free_addr;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether an external program runs here (`program --version`); prints
/// why not, or fails when `OSPREY_REQUIRE_EXTERNAL=1`.
pub fn available(program: &str, package: &str) -> bool {
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => true,
        other => {
            let reason = format!("{program} is not usable ({other:?}); apt-get install {package}");
            assert!(!required, "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
            eprintln!("skipping: {reason}");
            false
        }
    }
}

/// A child process that is killed when dropped.
pub struct Process {
    pub child: ChildGuard,
    pub addr: SocketAddr,
    pub log: std::path::PathBuf,
}

impl Process {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn spawn(command: &mut Command, addr: SocketAddr, log: &Path, ready_path: &str) -> Process {
    let child = ChildGuard::spawn_ready(command, log, Duration::from_secs(30), || {
        matches!(http(addr, "GET", ready_path, b""), Ok((200, _)))
    });
    Process {
        child,
        addr,
        log: log.to_path_buf(),
    }
}

/// Starts `osprey alertmanager --config config` on a free port.
pub fn start_osprey(config: &Path, data_dir: &Path, log: &Path) -> Process {
    start_osprey_at(config, data_dir, log, free_addr())
}

pub fn start_osprey_at(config: &Path, data_dir: &Path, log: &Path, addr: SocketAddr) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
    command
        .args(["alertmanager", "--config"])
        .arg(config)
        .args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(data_dir);
    spawn(&mut command, addr, log, "/-/ready")
}

/// Starts `osprey server --config config` on a free port.
pub fn start_osprey_server(config: &Path, data_dir: &Path, log: &Path) -> Process {
    let addr = free_addr();
    let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
    command
        .args(["server", "--config"])
        .arg(config)
        .args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(data_dir);
    spawn(&mut command, addr, log, "/-/ready")
}

/// Starts Debian's `prometheus-alertmanager` alone (no cluster).
pub fn start_alertmanager(config: &Path, data_dir: &Path, log: &Path) -> Process {
    let addr = free_addr();
    let mut command = Command::new("prometheus-alertmanager");
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", data_dir.display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--cluster.listen-address=");
    spawn(&mut command, addr, log, "/-/ready")
}

/// One HTTP/1.1 request with `Connection: close`: status and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&response[..head_end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let mut body = response[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                .map_err(|_| std::io::Error::other("bad chunk"))?;
            rest = &rest[line_end + 2..];
            if size == 0 || rest.len() < size {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[(size + 2).min(rest.len())..];
        }
        body = out;
    }
    Ok((status, body))
}

/// A webhook sink on loopback: records each POST body (as JSON) with the
/// path it was sent to, and answers 200.
pub struct Sink {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let store = store.clone();
                std::thread::spawn(move || {
                    let _ = serve_one(stream, &store);
                });
            }
        });
        Sink { addr, received }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn bodies(&self) -> Vec<(String, serde_json::Value)> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` bodies arrived (at most `timeout`).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<(String, serde_json::Value)> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.bodies();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve_one(
    stream: std::net::TcpStream,
    store: &Mutex<Vec<(String, serde_json::Value)>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if let Ok(value) = serde_json::from_slice(&body) {
            store.lock().unwrap().push((path, value));
        }
        let mut writer = &stream;
        writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?;
    }
}

/// Runs amtool against an Alertmanager URL; returns (success, stdout+stderr).
pub fn amtool(url: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("amtool")
        .arg(format!("--alertmanager.url={url}"))
        .args(args)
        .output()
        .expect("run amtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
