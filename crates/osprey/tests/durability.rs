//! Crash and disk safety of the state osprey keeps outside the TSDB's
//! samples (`docs/durability.md`):
//!
//! - a silence, a saved dashboard and a push are each there after a
//!   SIGKILL sent right after the API answered;
//! - a full disk (a real, small tmpfs; needs root to mount, skipped with a
//!   reason otherwise) makes remote write answer 5xx and the silence,
//!   dashboard and push APIs answer errors, and once space is back every
//!   one of them works again without a restart, with nothing acknowledged
//!   lost across a following SIGKILL;
//! - a block with a flipped chunk byte and one with a truncated index are
//!   found by `osprey tsdb verify` (one line each, exit 1), moved to
//!   `<data>/corrupted/` with a log line when the server starts, and the
//!   intact block is still served;
//! - the agent, killed 8 times while it scrapes and sends, loses no sample
//!   it had written (only a scrape in flight at a kill) and sends again at
//!   most one round per kill (its position is saved after every round).
//!
//! The alert `for` state (`rules_restart.rs`), the notification log
//! (`alertmanager_diff.rs`), pushes under `prometheus_client`
//! (`pushgateway.rs`), model logs (`models.rs`) and the agent against a
//! real Prometheus (`remote_write.rs`) have SIGKILL tests of their own.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

fn get_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http(addr, "GET", path, &[], &[]).expect("http");
    let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, value)
}

fn silence_body(comment: &str) -> Vec<u8> {
    serde_json::json!({
        "matchers": [{"name": "alertname", "value": comment, "isRegex": false, "isEqual": true}],
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "durability-test",
        "comment": comment,
    })
    .to_string()
    .into_bytes()
}

/// Creates a silence; its id on 200, else the status and body.
fn create_silence(addr: SocketAddr, comment: &str) -> Result<String, (u16, String)> {
    let (status, body) = http(
        addr,
        "POST",
        "/api/v2/silences",
        &[("Content-Type", "application/json")],
        &silence_body(comment),
    )
    .map_err(|e| (0, e.to_string()))?;
    let text = String::from_utf8_lossy(&body).into_owned();
    if status != 200 {
        return Err((status, text));
    }
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| (status, e.to_string()))?;
    value["silenceID"]
        .as_str()
        .map(str::to_string)
        .ok_or((status, text))
}

fn silence_exists(addr: SocketAddr, id: &str) -> bool {
    let (status, value) = get_json(addr, &format!("/api/v2/silence/{id}"));
    status == 200 && value["id"] == id
}

fn save_dashboard(addr: SocketAddr, uid: &str, title: &str) -> (u16, String) {
    let body = serde_json::json!({"title": title, "panels": []}).to_string();
    let (status, body) = http(
        addr,
        "PUT",
        &format!("/api/osprey/dashboards/{uid}"),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .expect("http");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn dashboard_title(addr: SocketAddr, uid: &str) -> Option<String> {
    let (status, value) = get_json(addr, &format!("/api/osprey/dashboards/{uid}"));
    if status != 200 {
        return None;
    }
    let data = &value["data"];
    data["title"]
        .as_str()
        .or_else(|| data["dashboard"]["title"].as_str())
        .map(str::to_string)
}

fn push(addr: SocketAddr, job: &str, value: f64) -> (u16, String) {
    let body = format!("# TYPE durability_pushed gauge\ndurability_pushed {value}\n");
    let (status, body) = http(
        addr,
        "PUT",
        &format!("/metrics/job/{job}"),
        &[("Content-Type", "text/plain; version=0.0.4")],
        body.as_bytes(),
    )
    .expect("http");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The pushed value of group `job`, by a query, when the group is held
/// (the push store's file, not only the TSDB, has it).
fn pushed_value(addr: SocketAddr, job: &str) -> Option<f64> {
    let (status, body) = http(addr, "GET", "/metrics", &[], &[]).expect("http");
    let text = String::from_utf8_lossy(&body);
    let groups: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("osprey_pushgateway_groups "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    if status != 200 || groups < 1.0 {
        return None;
    }
    let query = urlencode(&format!("durability_pushed{{job=\"{job}\"}}"));
    let (status, value) = get_json(addr, &format!("/api/v1/query?query={query}"));
    if status != 200 {
        return None;
    }
    value["data"]["result"].as_array()?.first()?["value"][1]
        .as_str()?
        .parse()
        .ok()
}

#[test]
fn each_acknowledged_state_change_survives_sigkill_right_after_the_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let addr = free_addr();

    let server = Server::start(&data, addr, &log);
    let silence = create_silence(addr, "kept").expect("silence");
    server.kill();
    let server = Server::start(&data, addr, &log);
    assert!(silence_exists(addr, &silence), "silence {silence} lost");

    assert_eq!(save_dashboard(addr, "kept", "Kept").0, 200);
    server.kill();
    let server = Server::start(&data, addr, &log);
    assert_eq!(dashboard_title(addr, "kept").as_deref(), Some("Kept"));

    let (status, body) = push(addr, "kept", 42.0);
    assert!(status == 200 || status == 202, "{status} {body}");
    server.kill();
    let server = Server::start(&data, addr, &log);
    assert_eq!(pushed_value(addr, "kept"), Some(42.0));
    // Everything from before is still there too.
    assert!(silence_exists(addr, &silence));
    assert_eq!(dashboard_title(addr, "kept").as_deref(), Some("Kept"));
    server.kill();
}

// ---------------------------------------------------------------------------
// Full disk.

fn required() -> bool {
    std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// A tmpfs mounted for the test, unmounted when dropped (after everything
/// declared later, such as the server, has been dropped).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount(8) syntax) at `dir`; `None`, with
    /// the reason printed, when this user cannot mount.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mountpoint");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(out) => {
                let reason = format!(
                    "cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                assert!(!required(), "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
                eprintln!("skipping: {reason}");
                None
            }
            Err(e) => {
                let reason = format!("mount(8) is not available: {e}");
                assert!(!required(), "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
                eprintln!("skipping: {reason}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `filler`'s directory until a write fails.
fn fill(filler: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(filler).expect("filler");
    let block = vec![0xa5u8; 64 * 1024];
    loop {
        if file.write_all(&block).is_err() {
            break;
        }
    }
    // The last partial block may have left a few bytes: take them too.
    for _ in 0..64 {
        if file.write_all(&block[..1024]).is_err() {
            let _ = file.write_all(&block[..1]);
        }
    }
    let _ = file.sync_all();
}

fn batch(name: &str, i: u64) -> Vec<u8> {
    numbered_batch(name, 20, i)
}

#[test]
fn a_full_disk_fails_writes_cleanly_and_recovers_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mountpoint = dir.path().join("disk");
    let Some(_tmpfs) = Tmpfs::mount(&mountpoint, "48m") else {
        return;
    };
    let data = mountpoint.join("data");
    let log = dir.path().join("server.log");
    let addr = free_addr();
    // The server scrapes itself and evaluates a recording rule every
    // second, so both meet the full disk too.
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: disk\n    interval: 1s\n    rules:\n      - record: disk_test:count\n        expr: count(up)\n",
    )
    .expect("rules");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['{addr}']\nalertmanager:\n  route:\n    receiver: default\n  receivers:\n    - name: default\n"
        ),
    )
    .expect("config");
    let config_arg = config.to_string_lossy().into_owned();
    let server = Server::start_with_args(&data, addr, &log, &["--config", &config_arg]);
    assert!(
        wait_for(Duration::from_secs(20), || scrape_error(addr)
            == Some(String::new())
            && rule_health(addr).as_deref() == Some("ok")),
        "scrape and rule never ran ok: {:?} {:?}",
        scrape_error(addr),
        rule_health(addr)
    );

    // Before: everything works.
    let mut acked = 0u64;
    for i in 0..5 {
        assert_eq!(
            remote_write(addr, &batch("disk_test", i)).expect("write"),
            204
        );
        acked += 1;
    }
    let before = create_silence(addr, "before").expect("silence before");

    // The disk fills up.
    let filler = mountpoint.join("filler");
    fill(&filler);

    // Remote write: a 5xx (senders retry), never a 2xx for samples that
    // were not stored, never a 4xx (senders would drop the data).
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let status = remote_write(addr, &batch("disk_test", acked)).expect("write");
        statuses.push(status);
        if status == 204 {
            // The WAL may still hold a few bytes of a partly used page:
            // what it acknowledges must survive too.
            acked += 1;
        } else {
            break;
        }
    }
    let last = *statuses.last().expect("a status");
    assert!(
        (500..600).contains(&last),
        "remote write on a full disk answered {statuses:?}; log:\n{}",
        server.log_text()
    );
    // The state APIs answer errors, not success.
    match create_silence(addr, "full") {
        Ok(id) => panic!("a silence {id} was acknowledged on a full disk"),
        Err((status, body)) => assert!((500..600).contains(&status), "{status} {body}"),
    }
    let (status, body) = save_dashboard(addr, "full", "Full");
    assert!((500..600).contains(&status), "{status} {body}");
    let (status, body) = push(addr, "full", 1.0);
    assert!((500..600).contains(&status), "{status} {body}");
    // Reads still work.
    let (status, _) = get_json(addr, "/api/v1/query?query=up");
    assert_eq!(status, 200);
    // Scrapes count the failure on their target, rules on their rule.
    assert!(
        wait_for(Duration::from_secs(20), || scrape_error(addr)
            .is_some_and(|e| e.contains("storing the scrape failed"))),
        "the scrape did not report the full disk: {:?}",
        scrape_error(addr)
    );
    assert!(
        wait_for(Duration::from_secs(20), || rule_health(addr).as_deref()
            == Some("err")),
        "the rule did not report the full disk: {:?}",
        rule_health(addr)
    );

    // Space comes back: everything works again, no restart.
    std::fs::remove_file(&filler).expect("remove filler");
    let mut recovered = false;
    for _ in 0..100 {
        if remote_write(addr, &batch("disk_test", acked)).expect("write") == 204 {
            recovered = true;
            acked += 1;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        recovered,
        "remote write did not recover once space was back; log:\n{}",
        server.log_text()
    );
    for _ in 0..5 {
        assert_eq!(
            remote_write(addr, &batch("disk_test", acked)).expect("write"),
            204
        );
        acked += 1;
    }
    assert!(
        wait_for(Duration::from_secs(20), || scrape_error(addr)
            == Some(String::new())
            && rule_health(addr).as_deref() == Some("ok")),
        "scrape and rule did not recover: {:?} {:?}",
        scrape_error(addr),
        rule_health(addr)
    );
    let after = create_silence(addr, "after").expect("silence after the disk recovered");
    assert_eq!(save_dashboard(addr, "after", "After").0, 200);
    let (status, body) = push(addr, "after", 7.0);
    assert!(status == 200 || status == 202, "{status} {body}");

    let log_text = server.log_text();
    assert!(!log_text.contains("panicked"), "{log_text}");

    // And all of it is durable.
    server.kill();
    let server = Server::start_with_args(&data, addr, &log, &["--config", &config_arg]);
    assert!(silence_exists(addr, &before));
    assert!(silence_exists(addr, &after));
    assert!(!silence_exists_with_comment(addr, "full"));
    assert_eq!(dashboard_title(addr, "after").as_deref(), Some("After"));
    assert_eq!(dashboard_title(addr, "full"), None);
    assert_eq!(pushed_value(addr, "after"), Some(7.0));
    let got = export(addr, "disk_test");
    assert_eq!(got.len(), 20, "every series present");
    for (labels, ts, _) in &got {
        for i in 0..acked {
            assert!(
                ts.contains(&(1_000_000 + i as i64 * 1000)),
                "{labels:?}: acknowledged batch {i} of {acked} lost"
            );
        }
    }
    eprintln!(
        "full disk: remote write answered {statuses:?} while full; {acked} batches acknowledged, all read back after SIGKILL"
    );
    server.kill();
}

fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The self-scrape target's `lastError` (empty when the last scrape was
/// stored), once it has been scraped.
fn scrape_error(addr: SocketAddr) -> Option<String> {
    let (_, value) = get_json(addr, "/api/v1/targets");
    let target = value["data"]["activeTargets"].as_array()?.first()?.clone();
    if target["lastScrape"]
        .as_str()
        .is_none_or(|t| t.starts_with("0001"))
    {
        return None;
    }
    target["lastError"].as_str().map(str::to_string)
}

/// The recording rule's health (`ok`, `err`, `unknown`).
fn rule_health(addr: SocketAddr) -> Option<String> {
    let (_, value) = get_json(addr, "/api/v1/rules");
    value["data"]["groups"].as_array()?.first()?["rules"]
        .as_array()?
        .first()?["health"]
        .as_str()
        .map(str::to_string)
}

fn silence_exists_with_comment(addr: SocketAddr, comment: &str) -> bool {
    let (_, value) = get_json(addr, "/api/v2/silences");
    value
        .as_array()
        .is_some_and(|all| all.iter().any(|s| s["comment"] == comment))
}

// ---------------------------------------------------------------------------
// Corruption.

/// Writes an OpenMetrics file with `series` series named `name`, one sample
/// a minute over two hours starting at `start_s`, and imports it.
fn import_block(data: &Path, dir: &Path, name: &str, start_s: i64) {
    let mut text = format!("# TYPE {name} gauge\n");
    for s in 0..5 {
        for m in 0..120 {
            let t = start_s + m * 60;
            text.push_str(&format!("{name}{{series=\"{s}\"}} {m} {t}\n"));
        }
    }
    text.push_str("# EOF\n");
    let file = dir.join(format!("{name}.om"));
    std::fs::write(&file, text).expect("write import file");
    let out = ChildGuard::output(
        Command::new(env!("CARGO_BIN_EXE_osprey"))
            .args(["import", "--data-dir"])
            .arg(data)
            .arg(&file),
        Duration::from_secs(120),
    )
    .expect("import");
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn blocks(data: &Path) -> Vec<PathBuf> {
    let mut blocks: Vec<PathBuf> = std::fs::read_dir(data)
        .expect("data dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    blocks.sort();
    blocks
}

/// The block holding series `name` (by its index's symbols).
fn block_of(data: &Path, name: &str) -> PathBuf {
    blocks(data)
        .into_iter()
        .find(|b| {
            let index = std::fs::read(b.join("index")).unwrap_or_default();
            index.windows(name.len()).any(|w| w == name.as_bytes())
        })
        .unwrap_or_else(|| panic!("no block holds {name}"))
}

/// The offset of a byte inside the first series entry's labels: the TOC
/// (the last 128 + 4 bytes, `docs/format/index.md`) gives the series
/// section's start as the offset of its third pair.
fn series_entry_offset(index: &[u8]) -> usize {
    let toc = &index[index.len() - 132..];
    let series_start = u64::from_le_bytes(toc[32..40].try_into().expect("8 bytes")) as usize;
    // Past the entry's length varint, into its body.
    series_start + 2
}

fn verify(data: &Path) -> (bool, String) {
    let out = ChildGuard::output(
        Command::new(env!("CARGO_BIN_EXE_osprey"))
            .args(["tsdb", "verify", "--data-dir"])
            .arg(data),
        Duration::from_secs(120),
    )
    .expect("verify");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn corrupted_blocks_are_found_moved_aside_and_the_rest_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // Three blocks, days apart: each import writes its own.
    let day = 86_400;
    let start = 1_700_000_000 / day * day;
    import_block(&data, dir.path(), "intact_series", start);
    import_block(&data, dir.path(), "flipped_series", start + 2 * day);
    import_block(&data, dir.path(), "truncated_series", start + 4 * day);
    import_block(&data, dir.path(), "index_flipped_series", start + 6 * day);
    assert_eq!(blocks(&data).len(), 4, "{:?}", blocks(&data));
    let (ok, text) = verify(&data);
    assert!(ok, "a fresh directory verifies: {text}");
    assert!(text.contains("checked 4 blocks"), "{text}");

    // Flip one byte in the middle of the chunk data of one block...
    let flipped = block_of(&data, "flipped_series");
    let segment = flipped.join("chunks").join("000001");
    let mut bytes = std::fs::read(&segment).expect("chunks");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&segment, &bytes).expect("write chunks");
    // ...and cut the index of another in half.
    let truncated = block_of(&data, "truncated_series");
    let index = truncated.join("index");
    let len = std::fs::metadata(&index).expect("index").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate index");
    // ...and flip a byte of a series entry in the index of a third (the
    // series section starts right after the symbols; a flip there is found
    // only by reading every entry, not by the checks of `Block::open`).
    let index_flipped = block_of(&data, "index_flipped_series");
    let index = index_flipped.join("index");
    let mut bytes = std::fs::read(&index).expect("index");
    let at = series_entry_offset(&bytes);
    bytes[at] ^= 0x01;
    std::fs::write(&index, &bytes).expect("write index");

    let (ok, text) = verify(&data);
    assert!(!ok, "verify exits non-zero on damage: {text}");
    let problem_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&*data.to_string_lossy()))
        .collect();
    assert_eq!(
        problem_lines.len(),
        3,
        "one line per damaged block:\n{text}"
    );
    assert!(
        problem_lines
            .iter()
            .any(|l| l.contains(&*flipped.to_string_lossy()) && l.contains("CRC")),
        "{text}"
    );
    assert!(
        problem_lines
            .iter()
            .any(|l| l.contains(&*truncated.to_string_lossy())),
        "{text}"
    );
    assert!(
        problem_lines
            .iter()
            .any(|l| l.contains(&*index_flipped.to_string_lossy()) && l.contains("CRC")),
        "{text}"
    );
    assert!(text.contains("3 problems"), "{text}");

    // The server starts, moves both aside with a log line each, and
    // serves the intact block.
    let log = dir.path().join("server.log");
    let addr = free_addr();
    let server = Server::start(&data, addr, &log);
    let got = export(addr, "intact_series");
    assert_eq!(got.len(), 5, "the intact block is served");
    assert!(got.iter().all(|(_, ts, _)| ts.len() == 120));
    assert!(export(addr, "flipped_series").is_empty());
    let corrupted = data.join("corrupted");
    for block in [&flipped, &truncated, &index_flipped] {
        let name = block.file_name().expect("name");
        assert!(!block.exists(), "{} still in place", block.display());
        assert!(
            corrupted.join(name).join("meta.json").exists(),
            "{} not in corrupted/",
            name.to_string_lossy()
        );
    }
    let log_text = server.log_text();
    assert_eq!(
        log_text.matches("corrupted block moved aside").count(),
        3,
        "{log_text}"
    );
    server.kill();

    // Verify is clean now, and says what was moved aside.
    let (ok, text) = verify(&data);
    assert!(ok, "{text}");
    assert!(text.contains("moved aside"), "{text}");
}

// ---------------------------------------------------------------------------
// The agent's queue position.

/// A remote-write receiver on its own threads that records, for each value
/// of `mixed_target_requests_total`, how many times it arrived.
struct CountingReceiver {
    addr: SocketAddr,
    received: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<u64, u64>>>,
    samples: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CountingReceiver {
    fn start() -> CountingReceiver {
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
        let samples = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (r, n) = (received.clone(), samples.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, n) = (r.clone(), n.clone());
                std::thread::spawn(move || serve_remote_write(stream, &r, &n));
            }
        });
        CountingReceiver {
            addr,
            received,
            samples,
        }
    }

    fn counts(&self) -> std::collections::BTreeMap<u64, u64> {
        self.received.lock().expect("lock").clone()
    }
}

/// Serves remote-write requests on one connection (keep-alive) until it
/// closes, answering 204 after recording each request's samples.
fn serve_remote_write(
    mut stream: std::net::TcpStream,
    received: &std::sync::Mutex<std::collections::BTreeMap<u64, u64>>,
    samples: &std::sync::atomic::AtomicU64,
) {
    use prost::Message;
    use std::io::{Read, Write};
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buffer.extend_from_slice(&chunk[..k]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + 4 + length {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buffer.extend_from_slice(&chunk[..k]),
            }
        }
        let body: Vec<u8> = buffer[head_end + 4..head_end + 4 + length].to_vec();
        buffer.drain(..head_end + 4 + length);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body)
            .expect("snappy body");
        let request = remote::WriteRequest::decode(raw.as_slice()).expect("protobuf body");
        {
            let mut received = received.lock().expect("lock");
            for series in &request.timeseries {
                samples.fetch_add(
                    series.samples.len() as u64,
                    std::sync::atomic::Ordering::SeqCst,
                );
                let counter = series
                    .labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == "mixed_target_requests_total");
                if !counter {
                    continue;
                }
                for sample in &series.samples {
                    if sample.value.is_finite() {
                        *received.entry(sample.value as u64).or_insert(0) += 1;
                    }
                }
            }
        }
        if stream
            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// A scrape target whose counter is the number of requests served so far.
fn counting_target() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind target");
    let addr = listener.local_addr().expect("addr");
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let value = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let body = format!(
                "# TYPE mixed_target_requests_total counter\nmixed_target_requests_total {value}\n"
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, served)
}

fn start_agent(config: &Path, data: &Path, log: &Path) -> ChildGuard {
    let addr = free_addr();
    ChildGuard::spawn_ready(
        Command::new(env!("CARGO_BIN_EXE_osprey"))
            .args(["agent", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &addr.to_string()]),
        log,
        Duration::from_secs(30),
        || is_ready(addr),
    )
}

#[test]
fn the_agent_neither_loses_nor_resends_more_than_a_round_across_sigkills() {
    const KILLS: u64 = 8;
    // A round is at most max_shards x max_samples_per_send = 5 samples;
    // the position is saved after each, so a kill resends at most that.
    const ROUND: u64 = 5;
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = CountingReceiver::start();
    let (target, served) = counting_target();
    let config = dir.path().join("agent.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 100ms\n  scrape_timeout: 90ms\n\
scrape_configs:\n  - job_name: fake\n    static_configs:\n      - targets: ['{target}']\n\
remote_write:\n  - url: http://{}/api/v1/write\n    queue_config:\n      max_shards: 1\n      max_samples_per_send: {ROUND}\n      batch_send_deadline: 100ms\n      min_backoff: 20ms\n      max_backoff: 200ms\n",
            receiver.addr
        ),
    )
    .expect("config");
    let data = dir.path().join("agent-data");
    let log = dir.path().join("agent.log");
    let mut agent = start_agent(&config, &data, &log);
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let mut served_at_kills = Vec::new();
    for _ in 0..KILLS {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        std::thread::sleep(Duration::from_millis(200 + rng_state % 400));
        agent.kill();
        served_at_kills.push(served.load(std::sync::atomic::Ordering::SeqCst));
        agent = start_agent(&config, &data, &log);
    }
    // Everything scraped before the last restart arrives once the agent
    // has caught up (the WAL is sent in order, so a newer value arriving
    // means every older one was sent).
    let served_before = served.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        wait_for(Duration::from_secs(30), || receiver
            .counts()
            .keys()
            .next_back()
            .is_some_and(|&newest| newest > served_before + 3)),
        "the agent did not catch up; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    agent.kill();
    let counts = receiver.counts();
    // A scrape served but not yet written when the kill came is lost with
    // the process (nobody was told it was stored): one per kill at most.
    let missing: Vec<u64> = (1..=served_before)
        .filter(|v| !counts.contains_key(v))
        .collect();
    assert!(
        missing.len() as u64 <= KILLS,
        "{} scraped values never arrived: {missing:?}",
        missing.len()
    );
    // And each of them was the last value served before a kill.
    for value in &missing {
        assert!(
            served_at_kills.contains(value),
            "value {value} was lost, though it was not in flight at a kill ({served_at_kills:?})"
        );
    }
    // Resent after a kill: at most one round per kill, over all series.
    let resent: u64 = counts.values().map(|&c| c - 1).sum();
    let total = receiver.samples.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        resent <= KILLS * ROUND,
        "{resent} counter samples arrived twice or more across {KILLS} kills: {counts:?}"
    );
    eprintln!(
        "agent: {KILLS} SIGKILLs, {served_before} scrapes served before the last restart, {} missing (in flight at a kill), {resent} counter samples resent, {total} samples received in all",
        missing.len()
    );
}
