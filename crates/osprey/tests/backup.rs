//! `osprey tsdb backup` and `restore` against the real binary: a backup of
//! a running server's snapshot and one of a stopped server's data
//! directory, each restored into an empty directory, where a server then
//! answers every query exactly as the original did.

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
