//! The TSDB admin API (`/api/v1/admin/tsdb/{delete_series,clean_tombstones,
//! snapshot}`) over real HTTP on 127.0.0.1, against a real `tsdb::Db` with
//! data in blocks and in the head: deleted samples leave every read API,
//! cleaning removes them from the block files, snapshots open as
//! databases, errors have Prometheus's shape, and no parameter reaches the
//! file system.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;
use model::storage::{Appendable, Queryable};
use model::{Labels, Matcher};
use serde_json::Value;
use server::{AppState, ServerConfig};
use tsdb::{Db, DbOptions};

mod common;
use common::Reply;

/// Block range of the test databases: small, so a few seconds of samples
/// make several blocks.
const RANGE: i64 = 10_000;
/// The user every test deletes: a value distinctive enough to look for in
/// the bytes of block files.
const USER_X: &str = "x-7c1e94d2a0";

fn open(dir: &Path) -> Db {
    let opts = DbOptions {
        retention_time_ms: None,
        retention_size_bytes: None,
        block_range_ms: RANGE,
        wal_segment_size: 1 << 16,
        fsync: false,
    };
    Db::open(dir, opts).unwrap()
}

/// A server on a loopback port over a database in `<root>/data`.
struct Server {
    root: tempfile::TempDir,
    db: Arc<Db>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), server::ServerError>>,
}

impl Server {
    async fn start() -> Server {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let db = Arc::new(open(&data));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = ServerConfig::new(addr);
        config.data_dir = Some(data);
        let state = AppState::new(db.clone(), config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve_listener(listener, state, async {
            let _ = stopped.await;
        }));
        Server {
            root,
            db,
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// One HTTP/1.1 request on its own connection; `form` is sent as a
    /// form-encoded body.
    async fn request(&self, method: &str, target: &str, form: Option<&str>) -> Reply {
        let addr = self.addr;
        let mut head =
            format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        let body = form.unwrap_or("").to_string();
        if form.is_some() {
            head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(body.as_bytes()).unwrap();
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).unwrap();
            parse_response(&raw)
        })
        .await
        .unwrap()
    }

    async fn get(&self, target: &str) -> Reply {
        self.request("GET", target, None).await
    }

    async fn post(&self, target: &str) -> Reply {
        self.request("POST", target, None).await
    }

    /// Stops serving; returns the root directory, which lives on as long
    /// as the caller keeps it.
    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), &mut self.task).await;
        self.root
    }
}

/// Status line, headers and body (de-chunked) of a raw HTTP/1.1 response.
fn parse_response(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let mut content_type = String::new();
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-type" => content_type = value.trim().to_string(),
            "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                .unwrap();
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        content_type,
        body,
    }
}

/// Percent-encodes a query parameter value.
fn enc(s: &str) -> String {
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

fn series_labels(user: &str, path: &str) -> Labels {
    Labels::from_pairs([
        ("__name__", "http_requests_total"),
        ("user", user),
        ("path", path),
    ])
}

/// Samples every second from `from_s` to `to_s` (exclusive) for users
/// `USER_X` and `"y"` on two paths each.
fn write(db: &Db, from_s: i64, to_s: i64) {
    let mut app = db.appender();
    for s in from_s..to_s {
        for user in [USER_X, "y"] {
            for path in ["/a", "/b"] {
                app.append(&series_labels(user, path), s * 1000, s as f64)
                    .unwrap();
            }
        }
    }
    app.commit().unwrap();
}

/// Data in two blocks and in the head, seconds 0 to 35.
fn fixture(db: &Db) {
    write(db, 0, 10);
    db.cut_head(RANGE).unwrap();
    write(db, 10, 20);
    db.cut_head(2 * RANGE).unwrap();
    write(db, 20, 35);
    assert_eq!(db.blocks().len(), 2);
}

/// The users each read API reports, over all of the fixture's time.
async fn users_seen(server: &Server) -> Vec<(&'static str, BTreeSet<String>)> {
    let mut out = Vec::new();
    let users = |series: &Value| -> BTreeSet<String> {
        series
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["metric"]["user"].as_str().or(s["user"].as_str()))
            .map(str::to_string)
            .collect()
    };
    let instant = server
        .get(&format!(
            "/api/v1/query?query={}&time=34",
            enc("last_over_time(http_requests_total[1h])")
        ))
        .await
        .data();
    out.push(("query", users(&instant["result"])));
    let range = server
        .get("/api/v1/query_range?query=http_requests_total&start=0&end=34&step=1")
        .await
        .data();
    out.push(("query_range", users(&range["result"])));
    let series = server
        .get(&format!("/api/v1/series?match[]={}", enc("{user=~\".+\"}")))
        .await
        .data();
    out.push(("series", users(&series)));
    let values = server.get("/api/v1/label/user/values").await.data();
    out.push((
        "label values",
        values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
    ));
    let matched = server
        .get(&format!(
            "/api/v1/label/user/values?match[]={}",
            enc("http_requests_total")
        ))
        .await
        .data();
    out.push((
        "label values with match[]",
        matched
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
    ));
    let export = server
        .get(&format!("/api/v1/export?match[]={}", enc("{user=~\".+\"}")))
        .await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.text());
    let exported: BTreeSet<String> = export
        .text()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            v["metric"]["user"].as_str().unwrap().to_string()
        })
        .collect();
    out.push(("export", exported));
    out
}

fn set(users: &[&str]) -> BTreeSet<String> {
    users.iter().map(|u| u.to_string()).collect()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hits.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            hits.push(path);
        }
    }
    hits
}

#[tokio::test]
async fn delete_everything_about_one_user() {
    let server = Server::start().await;
    fixture(&server.db);
    for (api, users) in users_seen(&server).await {
        assert_eq!(users, set(&[USER_X, "y"]), "{api} before the delete");
    }
    let block_files: Vec<PathBuf> = server
        .db
        .blocks()
        .iter()
        .flat_map(|b| files_containing(b.dir(), USER_X.as_bytes()))
        .collect();
    assert!(!block_files.is_empty(), "the user is in the block files");

    let reply = server
        .post(&format!(
            "/api/v1/admin/tsdb/delete_series?match[]={}",
            enc(&format!("{{user=\"{USER_X}\"}}"))
        ))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert!(reply.body.is_empty());
    for (api, users) in users_seen(&server).await {
        assert_eq!(users, set(&["y"]), "{api} after the delete");
    }

    let reply = server.post("/api/v1/admin/tsdb/clean_tombstones").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    for (api, users) in users_seen(&server).await {
        assert_eq!(users, set(&["y"]), "{api} after cleaning");
    }
    let blocks = server.db.blocks();
    assert_eq!(blocks.len(), 2, "the other user's data stays in blocks");
    for block in &blocks {
        assert!(block.tombstones().is_empty());
        let hits = files_containing(block.dir(), USER_X.as_bytes());
        assert!(hits.is_empty(), "the user is still in {hits:?}");
        // The other user is still there, so the check can see a value.
        assert!(!files_containing(block.dir(), b"/a").is_empty());
    }
    for file in block_files {
        assert!(!file.exists(), "{} outlived cleaning", file.display());
    }
    server.stop().await;
}

#[tokio::test]
async fn delete_by_put_with_a_form_body_and_a_time_range() {
    let server = Server::start().await;
    fixture(&server.db);
    // Seconds 5 to 24 of user y's /a: across the first block, the second
    // and the head.
    let form = format!(
        "match[]={}&start=5&end={}",
        enc("http_requests_total{user=\"y\",path=\"/a\"}"),
        enc("1970-01-01T00:00:24Z")
    );
    let reply = server
        .request("PUT", "/api/v1/admin/tsdb/delete_series", Some(&form))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    let data = server
        .get(&format!(
            "/api/v1/query_range?query={}&start=0&end=34&step=1",
            enc("http_requests_total{user=\"y\"}")
        ))
        .await
        .data();
    for series in data["result"].as_array().unwrap() {
        let times: Vec<i64> = series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_i64().unwrap())
            .collect();
        // Raw samples: a range query's lookback fills the gap, so look at
        // the values, which are the seconds they were written at.
        let values: Vec<i64> = series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap() as i64)
            .collect();
        if series["metric"]["path"] == "/a" {
            assert!(values.iter().all(|v| !(5..=24).contains(v)), "{values:?}");
            assert!(values.contains(&4) && values.contains(&25), "{values:?}");
        } else {
            assert_eq!(times, (0..=34).collect::<Vec<_>>());
        }
    }
    // Restarting the database replays the head part of the delete.
    let data = server.data();
    let db = server.db.clone();
    let _root = server.stop().await;
    drop(db);
    let db = open(&data);
    let q = db.querier(0, 40_000).unwrap();
    let a: Vec<i64> = q
        .select(&[Matcher::equal("user", "y"), Matcher::equal("path", "/a")])
        .unwrap()
        .flat_map(|s| s.unwrap().samples.map(|(t, _)| t / 1000))
        .collect();
    let want: Vec<i64> = (0..5).chain(25..35).collect();
    assert_eq!(a, want);
}

fn assert_bad_data(reply: &Reply, message: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert!(reply.content_type.starts_with("application/json"));
    let body = reply.json();
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with(message),
        "{error:?} should start with {message:?}"
    );
}

#[tokio::test]
async fn parameter_errors_are_prometheus_bad_data() {
    let server = Server::start().await;
    fixture(&server.db);
    let delete = "/api/v1/admin/tsdb/delete_series";
    assert_bad_data(&server.post(delete).await, "no match[] parameter provided");
    assert_bad_data(
        &server.request("PUT", delete, Some("start=1&end=2")).await,
        "no match[] parameter provided",
    );
    assert_bad_data(
        &server
            .post(&format!("{delete}?match[]={}", enc("up{")))
            .await,
        "invalid parameter \"match[]\": ",
    );
    assert_bad_data(
        &server
            .post(&format!("{delete}?match[]={}", enc("{a=~\".*\"}")))
            .await,
        "invalid parameter \"match[]\": match[] must contain at least one non-empty matcher",
    );
    assert_bad_data(
        &server
            .post(&format!("{delete}?match[]=up&start=yesterday"))
            .await,
        "invalid parameter \"start\": invalid time value for 'start': cannot parse \"yesterday\" to a valid timestamp",
    );
    assert_bad_data(
        &server.post(&format!("{delete}?match[]=up&end=NaN")).await,
        "invalid parameter \"end\": invalid time value for 'end': cannot parse \"NaN\" to a valid timestamp",
    );
    assert_bad_data(
        &server
            .post("/api/v1/admin/tsdb/snapshot?skip_head=maybe")
            .await,
        "invalid parameter \"skip_head\": unable to parse boolean: strconv.ParseBool: parsing \"maybe\": invalid syntax",
    );
    // Nothing was deleted by the refused requests, and no snapshot made.
    assert_eq!(users_seen(&server).await[0].1, set(&[USER_X, "y"]));
    assert!(!server.data().join("snapshots").exists());
    // Reading them is not a thing.
    for path in [
        delete,
        "/api/v1/admin/tsdb/clean_tombstones",
        "/api/v1/admin/tsdb/snapshot",
    ] {
        assert_eq!(
            server.get(path).await.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{path}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn snapshots_open_as_databases_with_and_without_the_head() {
    let server = Server::start().await;
    fixture(&server.db);
    let mut names = Vec::new();
    for (target, method) in [
        ("/api/v1/admin/tsdb/snapshot", "POST"),
        ("/api/v1/admin/tsdb/snapshot?skip_head=true", "PUT"),
    ] {
        let reply = server.request(method, target, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let body = reply.json();
        assert_eq!(body["status"], "success");
        let name = body["data"]["name"].as_str().unwrap().to_string();
        let (stamp, random) = name.split_once('-').unwrap();
        assert!(
            stamp.len() == 16
                && stamp.as_bytes()[8] == b'T'
                && stamp.ends_with('Z')
                && stamp[..8].bytes().all(|b| b.is_ascii_digit()),
            "{name}"
        );
        assert!(random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()));
        names.push(name);
    }
    assert_ne!(names[0], names[1]);
    let count = |db: &Db| -> usize {
        let q = db.querier(i64::MIN, i64::MAX).unwrap();
        q.select(&[Matcher::equal("__name__", "http_requests_total")])
            .unwrap()
            .map(|s| s.unwrap().samples.count())
            .sum()
    };
    let live = count(&server.db);
    assert_eq!(live, 35 * 4);
    let with_head = open(&server.data().join("snapshots").join(&names[0]));
    assert_eq!(count(&with_head), live);
    let without_head = open(&server.data().join("snapshots").join(&names[1]));
    assert_eq!(count(&without_head), 20 * 4, "blocks only");
    server.stop().await;
}

/// Every path under `dir` (relative), for comparing trees.
fn tree(dir: &Path, base: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        out.insert(path.strip_prefix(base).unwrap().to_path_buf());
        if path.is_dir() {
            tree(&path, base, out);
        }
    }
}

#[tokio::test]
async fn no_parameter_names_a_file() {
    let server = Server::start().await;
    fixture(&server.db);
    let root = server.root.path().to_path_buf();
    let outside = root.parent().unwrap().to_path_buf();
    let escape_names = ["escape", "evil", "passwd"];
    for name in escape_names {
        assert!(
            !outside.join(name).exists(),
            "{name} exists before the test"
        );
    }
    let mut before = BTreeSet::new();
    tree(&root, &root, &mut before);
    let dotted = [
        "..",
        "../..",
        "../../escape",
        "/tmp/../escape",
        "..%2F..%2Fevil",
        "....//....//evil",
        "%2e%2e/escape",
        "../../../../../../etc/passwd",
        "\\..\\..\\escape",
    ];
    // Parameters none of these APIs takes, as a client might guess them.
    let extra = ["name", "dir", "path", "snapshot", "file", "data_dir", "tmp"];
    let mut snapshots = Vec::new();
    for value in dotted {
        let v = enc(value);
        let extras: String = extra.iter().map(|p| format!("&{p}={v}")).collect();
        let targets = [
            format!("/api/v1/admin/tsdb/delete_series?match[]={v}{extras}"),
            format!(
                "/api/v1/admin/tsdb/delete_series?match[]={}{extras}",
                enc(&format!("{{user=\"{value}\"}}"))
            ),
            format!("/api/v1/admin/tsdb/delete_series?match[]=up&start={v}&end={v}{extras}"),
            format!("/api/v1/admin/tsdb/clean_tombstones?{}", &extras[1..]),
            format!("/api/v1/admin/tsdb/snapshot?{}", &extras[1..]),
            format!("/api/v1/admin/tsdb/snapshot?skip_head=false{extras}"),
            format!("/api/v1/admin/tsdb/snapshot?skip_head={v}"),
            format!("/api/v1/admin/tsdb/snapshot/{v}"),
            format!("/api/v1/admin/tsdb/{v}/snapshot"),
        ];
        for target in targets {
            for method in ["POST", "PUT"] {
                let query = target.split_once('?').map(|(_, q)| q.to_string());
                // The same parameters in the URL and in a form body.
                for form in [None, query.as_deref()] {
                    let reply = server.request(method, &target, form).await;
                    assert!(
                        reply.status.is_success()
                            || reply.status == StatusCode::BAD_REQUEST
                            || reply.status == StatusCode::NOT_FOUND,
                        "{method} {target}: {} {}",
                        reply.status,
                        reply.text()
                    );
                    if reply.status == StatusCode::OK {
                        snapshots.push(reply.json()["data"]["name"].as_str().unwrap().to_string());
                    }
                }
            }
        }
    }
    // Snapshots were made, each under the server's own name.
    assert!(!snapshots.is_empty());
    for name in &snapshots {
        assert!(
            name.len() == 33 && !name.contains('.') && !name.contains('/'),
            "{name}"
        );
        assert!(root.join("data/snapshots").join(name).is_dir());
    }
    // Nothing appeared outside the data directory, inside the test's root
    // or beside it.
    let mut after = BTreeSet::new();
    tree(&root, &root, &mut after);
    let new: Vec<&PathBuf> = after.difference(&before).collect();
    for path in &new {
        assert!(
            path.starts_with("data"),
            "created outside the data dir: {}",
            path.display()
        );
    }
    for path in &new {
        let text = path.to_string_lossy();
        assert!(
            escape_names.iter().all(|n| !text.contains(n)),
            "a parameter named a file: {text}"
        );
    }
    for name in escape_names {
        assert!(
            !outside.join(name).exists(),
            "{name} created beside the root"
        );
    }
    // The data is intact: the dotted values matched no series.
    assert_eq!(users_seen(&server).await[0].1, set(&[USER_X, "y"]));
    server.stop().await;
}
