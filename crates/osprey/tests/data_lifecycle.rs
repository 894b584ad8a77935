//! What happens to stored data over its life, against the real binary:
//! `osprey tsdb backup` and `restore` (a backup of a running server's
//! snapshot and one of a stopped server's data directory, each restored
//! into an empty directory, where a server then answers every query
//! exactly as the original did), and per-series retention
//! (`storage.retention_rules`) removing expired series from disk.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{ChildGuard, Server, free_addr, http, urlencode};

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Runs `osprey <args>`; returns success, stdout and stderr.
fn osprey(args: &[&str]) -> (bool, String, String) {
    let output = ChildGuard::output(
        Command::new(env!("CARGO_BIN_EXE_osprey")).args(args),
        Duration::from_secs(120),
    )
    .expect("run osprey");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The answers compared between the original and a restored copy:
/// range queries over the imported days and the last hour, and the
/// series list.
fn answers(addr: SocketAddr, now: i64) -> Vec<serde_json::Value> {
    let old_start = now - 3 * 86_400;
    let mut paths = Vec::new();
    for query in ["bk_total", "rate(bk_total[10m])", "sum by (job) (bk_gauge)"] {
        paths.push(format!(
            "/api/v1/query_range?query={}&start={old_start}&end={}&step=600",
            urlencode(query),
            now - 86_400
        ));
        paths.push(format!(
            "/api/v1/query_range?query={}&start={}&end={now}&step=60",
            urlencode(query),
            now - 3600
        ));
    }
    paths.push(format!(
        "/api/v1/series?match[]={}&start={old_start}&end={now}",
        urlencode("{__name__=~\"bk_.*\"}")
    ));
    paths
        .iter()
        .map(|path| {
            let (status, body) = http(addr, "GET", path, &[], &[]).expect("query");
            assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
            let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert!(
                json["data"].as_array().is_some_and(|a| !a.is_empty())
                    || json["data"]["result"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty()),
                "{path}: empty answer"
            );
            json["data"].clone()
        })
        .collect()
}

fn start(dir: &Path, name: &str, data: &Path) -> Server {
    Server::start(data, free_addr(), &dir.join(format!("{name}.log")))
}

#[test]
fn backups_restore_to_identical_answers() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let data = dir.join("data");
    let now = now_s();

    // Three days ago to one day ago, backfilled offline into blocks.
    let mut history = String::new();
    for i in 0..(2 * 86_400 / 300) {
        let t = now - 3 * 86_400 + i * 300;
        for job in ["a", "b"] {
            history.push_str(&format!(
                "bk_total{{job=\"{job}\"}} {} {t}\nbk_gauge{{job=\"{job}\",pod=\"p{}\"}} {} {t}\n",
                i * 7,
                i % 3,
                (i as f64 * 0.1).sin()
            ));
        }
    }
    history.push_str("# EOF\n");
    let file = dir.join("history.om");
    std::fs::write(&file, history).expect("write history");
    let (ok, _, stderr) = osprey(&[
        "import",
        "--data-dir",
        &data.display().to_string(),
        &file.display().to_string(),
    ]);
    assert!(ok, "import: {stderr}");

    // The last hour, into the running server's head.
    let server = start(dir, "original", &data);
    let mut recent = String::new();
    for i in 0..120 {
        let t = (now - 3600 + i * 30) * 1000;
        for job in ["a", "b"] {
            recent.push_str(&format!(
                "bk_total{{job=\"{job}\"}} {} {t}\nbk_gauge{{job=\"{job}\",pod=\"p0\"}} {} {t}\n",
                100_000 + i * 3,
                (i as f64 * 0.2).cos()
            ));
        }
    }
    let (status, body) = http(
        server.addr,
        "POST",
        "/api/v1/import/prometheus",
        &[],
        recent.as_bytes(),
    )
    .expect("import");
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    let expected = answers(server.addr, now);

    // Online: the admin API's snapshot, then a backup of it.
    let (status, body) =
        http(server.addr, "POST", "/api/v1/admin/tsdb/snapshot", &[], &[]).expect("snapshot");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let name = json["data"]["name"].as_str().expect("name").to_string();
    let online = dir.join("backup-online");
    let (ok, stdout, stderr) = osprey(&[
        "tsdb",
        "backup",
        "--data-dir",
        &data.display().to_string(),
        "--snapshot",
        &name,
        &online.display().to_string(),
    ]);
    assert!(ok, "online backup: {stderr}");
    assert!(stdout.starts_with("backed up "), "{stdout}");

    // Without --snapshot the running server's directory is refused, in
    // one line that says why.
    let (ok, _, stderr) = osprey(&[
        "tsdb",
        "backup",
        "--data-dir",
        &data.display().to_string(),
        &dir.join("refused").display().to_string(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("in use by another osprey process"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // A snapshot name that would leave the snapshots directory, too.
    let (ok, _, stderr) = osprey(&[
        "tsdb",
        "backup",
        "--data-dir",
        &data.display().to_string(),
        "--snapshot",
        "../wal",
        &dir.join("refused").display().to_string(),
    ]);
    assert!(!ok && stderr.contains("is not a snapshot name"), "{stderr}");

    // Offline: the stopped server's directory.
    server.terminate();
    let offline = dir.join("backup-offline");
    let (ok, _, stderr) = osprey(&[
        "tsdb",
        "backup",
        "--data-dir",
        &data.display().to_string(),
        &offline.display().to_string(),
    ]);
    assert!(ok, "offline backup: {stderr}");

    for (label, backup) in [("online", &online), ("offline", &offline)] {
        let restored = dir.join(format!("restored-{label}"));
        let (ok, stdout, stderr) = osprey(&[
            "tsdb",
            "restore",
            "--data-dir",
            &restored.display().to_string(),
            &backup.display().to_string(),
        ]);
        assert!(ok, "{label} restore: {stderr}");
        assert!(stdout.starts_with("restored "), "{stdout}");
        let copy = start(dir, label, &restored);
        assert_eq!(
            answers(copy.addr, now),
            expected,
            "the {label} backup answers differently"
        );
        copy.terminate();
        // Restoring over data is refused.
        let (ok, _, stderr) = osprey(&[
            "tsdb",
            "restore",
            "--data-dir",
            &restored.display().to_string(),
            &backup.display().to_string(),
        ]);
        assert!(!ok && stderr.contains("already holds"), "{stderr}");
    }
}

/// The `[minTime, maxTime)` of every block under `data`, with the block's
/// index bytes.
fn blocks_on_disk(data: &Path) -> Vec<(i64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(data).expect("data dir").flatten() {
        // A block being written (`<ulid>.tmp`) is not a block yet.
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            continue;
        }
        let meta = entry.path().join("meta.json");
        let Ok(text) = std::fs::read_to_string(&meta) else {
            continue;
        };
        let json: serde_json::Value = serde_json::from_str(&text).expect("meta.json");
        // A block that maintenance replaced may vanish between the reads.
        let index = match std::fs::read(entry.path().join("index")) {
            Ok(index) => index,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", entry.path().display()),
        };
        out.push((
            json["minTime"].as_i64().expect("minTime"),
            json["maxTime"].as_i64().expect("maxTime"),
            index,
        ));
    }
    out
}

/// Timestamps (seconds) of every sample of `selector` in `[start, end]`.
fn sample_times(addr: SocketAddr, selector: &str, start: i64, end: i64) -> Vec<i64> {
    let path = format!(
        "/api/v1/query?query={}&time={end}",
        urlencode(&format!("{selector}[{}s]", end - start))
    );
    let (status, body) = http(addr, "GET", &path, &[], &[]).expect("query");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let mut times: Vec<i64> = json["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v[0].as_f64().map(|t| t as i64))
        .collect();
    times.sort_unstable();
    times
}

/// `storage.retention_rules`: debug series expire after a day while the
/// rest keeps the global retention; the expired samples are gone from
/// queries and from every block on disk after the maintenance round that
/// runs once the configuration is loaded.
#[test]
fn retention_rules_remove_expired_series_from_disk() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let data = dir.join("data");
    let now = now_s();
    let mut history = String::new();
    let first = now - 3 * 86_400;
    // The history ends over two hours before the one-day cutoff (which is
    // rounded down to two hours), so whichever blocks the server's
    // compaction merges it into (its windows are aligned to the clock, so
    // that differs through the day) lie wholly before the cutoff.
    let last = now - 86_400 - 3 * 3600;
    let mut t = first;
    while t <= last {
        history.push_str(&format!(
            "debug_calls_total{{job=\"a\"}} 1 {t}\nrevenue_total{{job=\"a\"}} 2 {t}\n"
        ));
        t += 300;
    }
    // One sample at now for both, so retention counts back from now.
    history.push_str(&format!(
        "debug_calls_total{{job=\"a\"}} 1 {now}\nrevenue_total{{job=\"a\"}} 2 {now}\n# EOF\n"
    ));
    let file = dir.join("history.om");
    std::fs::write(&file, history).expect("write history");
    // Blocks of at most two hours, so most lie wholly before the cutoff.
    let (ok, _, stderr) = osprey(&[
        "import",
        "--max-block-duration",
        "2h",
        "--data-dir",
        &data.display().to_string(),
        &file.display().to_string(),
    ]);
    assert!(ok, "import: {stderr}");
    let imported = sample_count(first, last);
    let config = dir.join("osprey.yml");
    std::fs::write(
        &config,
        "storage:\n  retention_rules:\n    - selector: '{__name__=~\"debug_.*\"}'\n      retention: 1d\n",
    )
    .expect("write config");
    let server = Server::start_with_args(
        &data,
        free_addr(),
        &dir.join("retention.log"),
        &["--config", &config.display().to_string()],
    );
    // The first maintenance round runs once the configuration is loaded.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let cutoff = ((now - 86_400) * 1000).div_euclid(7_200_000) * 7_200_000 / 1000;
    loop {
        let debug = sample_times(server.addr, "debug_calls_total", first - 1, now);
        if debug.first().is_some_and(|&t| t >= cutoff) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "debug samples before {cutoff} still there: first {:?}; log:\n{}",
            debug.first(),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Everything else is untouched.
    let revenue = sample_times(server.addr, "revenue_total", first - 1, now);
    assert_eq!(revenue.len(), imported + 1, "revenue lost samples");
    // No block wholly before the cutoff names the debug series any more.
    // Queries stop returning the samples as soon as the round tombstones
    // them; the same round then rewrites the blocks one by one, so the
    // files lag the answers by a moment: wait for the round to finish.
    let expired_still_named = |blocks: &[(i64, i64, Vec<u8>)]| {
        blocks.iter().any(|(_, max, index)| {
            *max <= cutoff * 1000 && index.windows(17).any(|w| w == b"debug_calls_total")
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut blocks = blocks_on_disk(&data);
    while expired_still_named(&blocks) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        blocks = blocks_on_disk(&data);
    }
    assert!(blocks.iter().any(|(_, max, _)| *max <= cutoff * 1000));
    for (min, max, index) in &blocks {
        if *max <= cutoff * 1000 {
            assert!(
                !index.windows(17).any(|w| w == b"debug_calls_total"),
                "block [{min}, {max}) still holds debug_calls_total"
            );
            assert!(index.windows(13).any(|w| w == b"revenue_total"));
        }
    }
    server.terminate();
}

/// Samples every 300 s from `first` to `last`, both included.
fn sample_count(first: i64, last: i64) -> usize {
    ((last - first) / 300 + 1) as usize
}
