//! The built-in web UI and the dashboards API, as one [`axum::Router`]
//! ([`router`]) that the binary mounts into the server's.
//!
//! - The UI is plain ES modules from `ui/src` plus uPlot (fetched by
//!   `build.rs` with `npm ci`, the only build step in the workspace that
//!   needs npm), embedded in the binary and served under `/ui/`. Every page
//!   path (`/`, `/graph`, `/targets`, `/d/<uid>`, ...) answers the same
//!   `index.html`; the browser routes. Text assets are gzipped once, on first
//!   use, and sent compressed to clients that accept gzip. `index.html`
//!   names the other files under `/ui/v-<hash of all files>/`, which are
//!   cached for good; everything also has an `ETag`.
//! - `/api/osprey/dashboards` lists, reads, saves and deletes dashboards in
//!   the model of `docs/format/dashboard.md`, through a [`DashboardStore`]:
//!   built-in ones (embedded), provisioned ones (files named in the
//!   config's `dashboards:` section, re-read on every request so edits show
//!   without a reload) and saved ones (`<data-dir>/dashboards/<uid>.json`).
//!   Only the envelope is checked; the browser renders and converts
//!   Grafana JSON.
//!
//! This crate knows neither the server's state nor the configuration file:
//! the caller tells the store where saved dashboards live and how to get
//! the provisioning paths in effect. It serves no Prometheus API.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use model::hash::fnv1a_64;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

mod assets {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

/// Where dashboards come from besides the built-in ones.
pub struct DashboardStore {
    saved_dir: Option<PathBuf>,
    provisioned: Box<ProvisionedPaths>,
}

/// Gives the provisioning paths of the configuration in effect, or why
/// they cannot be known (shown as an entry with the error).
type ProvisionedPaths = dyn Fn() -> Result<Vec<PathBuf>, String> + Send + Sync;

impl DashboardStore {
    /// Saved dashboards live in `saved_dir` (`None`: saving answers 503).
    /// `provisioned` is asked on every request, so a configuration reload
    /// shows at once; each path is a file, a directory (its `*.json`) or a
    /// file name with `*`.
    pub fn new(
        saved_dir: Option<PathBuf>,
        provisioned: impl Fn() -> Result<Vec<PathBuf>, String> + Send + Sync + 'static,
    ) -> DashboardStore {
        DashboardStore {
            saved_dir,
            provisioned: Box::new(provisioned),
        }
    }
}

/// Every route [`router`] serves, for the access rules of the listener
/// that mounts it.
pub fn paths() -> Vec<&'static str> {
    let mut paths = PAGES.to_vec();
    paths.extend([
        "/ui/{*path}",
        "/api/osprey/dashboards",
        "/api/osprey/dashboards/{uid}",
    ]);
    paths
}

/// The UI's pages and assets and the dashboards API, for any outer state.
pub fn router<S: Clone + Send + Sync + 'static>(store: Arc<DashboardStore>) -> Router<S> {
    let mut router = Router::new();
    for page in PAGES {
        router = router.route(page, get(index));
    }
    router
        .route("/ui/{*path}", get(asset))
        .route("/api/osprey/dashboards", get(list_dashboards))
        .route(
            "/api/osprey/dashboards/{uid}",
            get(get_dashboard)
                .put(put_dashboard)
                .delete(delete_dashboard),
        )
        .with_state(store)
}

/// Paths the browser routes; each answers `index.html`. `/query`,
/// `/config`, `/flags` and `/tsdb-status` are Prometheus's own page paths,
/// so bookmarks keep working.
const PAGES: &[&str] = &[
    "/",
    "/graph",
    "/query",
    "/config",
    "/flags",
    "/tsdb-status",
    "/targets",
    "/rules",
    "/alerts",
    "/silences",
    "/slos",
    "/slos/{id}",
    "/models",
    "/models/{name}",
    "/models/{name}/compare",
    "/cardinality",
    "/traces",
    "/trace/{id}",
    "/service-graph",
    "/status",
    "/dashboards",
    "/d/{uid}",
    "/login",
    "/audit",
];

/// One embedded file, with its gzip form when that is smaller.
struct Asset {
    bytes: &'static [u8],
    gzip: Option<Vec<u8>>,
    etag: String,
    content_type: &'static str,
}

impl Asset {
    fn new(name: &str, bytes: &'static [u8]) -> Asset {
        let content_type = content_type(name);
        let gzip = if content_type.starts_with("image/png") {
            None
        } else {
            gzip(bytes).filter(|z| z.len() < bytes.len())
        };
        let etag = format!("\"{:016x}\"", fnv1a_64(bytes));
        Asset {
            bytes,
            gzip,
            etag,
            content_type,
        }
    }
}

/// A hash of every embedded file: the versioned asset prefix
/// `/ui/v-<hash>/`, which browsers may cache for good because its content
/// never changes under that name.
fn build_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let mut all = Vec::new();
        for (name, bytes) in assets::ASSETS {
            all.extend_from_slice(name.as_bytes());
            all.extend_from_slice(&fnv1a_64(bytes).to_le_bytes());
        }
        format!("{:012x}", fnv1a_64(&all) & 0xffff_ffff_ffff)
    })
}

/// The assets, prepared on first use. `index.html` refers to the others
/// under the versioned prefix; module imports are relative, so they
/// inherit it.
fn prepared() -> &'static [(&'static str, Asset)] {
    static PREPARED: OnceLock<Vec<(&'static str, Asset)>> = OnceLock::new();
    PREPARED.get_or_init(|| {
        assets::ASSETS
            .iter()
            .map(|&(name, bytes)| {
                if name == "index.html" {
                    let text = String::from_utf8_lossy(bytes)
                        .replace("\"/ui/", &format!("\"/ui/v-{}/", build_id()));
                    let leaked: &'static [u8] = Box::leak(text.into_bytes().into_boxed_slice());
                    (name, Asset::new(name, leaked))
                } else {
                    (name, Asset::new(name, bytes))
                }
            })
            .collect()
    })
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

async fn index(headers: HeaderMap) -> Response {
    serve_asset("index.html", &headers)
}

async fn asset(UrlPath(path): UrlPath<String>, headers: HeaderMap) -> Response {
    serve_asset(&path, &headers)
}

/// Serves one embedded file. Under this build's versioned prefix it may be
/// cached forever; under a plain or an older prefix it is revalidated (an
/// old page still gets today's file rather than a 404).
fn serve_asset(path: &str, headers: &HeaderMap) -> Response {
    let (name, cache) = match path.strip_prefix("v-").and_then(|p| p.split_once('/')) {
        Some((id, rest)) if id == build_id() => (rest, "public, max-age=31536000, immutable"),
        Some((_, rest)) => (rest, "no-cache"),
        None => (path, "no-cache"),
    };
    let Some((_, asset)) = prepared().iter().find(|(n, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let cache = if name == "index.html" {
        "no-cache"
    } else {
        cache
    };
    let mut response_headers = HeaderMap::new();
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&asset.etag) {
        response_headers.insert(header::ETAG, v);
    }
    response_headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, response_headers).into_response();
    }
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    match (&asset.gzip, accepts_gzip) {
        (Some(z), true) => {
            response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            (response_headers, z.clone()).into_response()
        }
        _ => (response_headers, asset.bytes).into_response(),
    }
}

// ---------------------------------------------------------------------------
// Dashboards.

/// Where a dashboard comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Builtin,
    Provisioned,
    Saved,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Builtin => "builtin",
            Source::Provisioned => "provisioned",
            Source::Saved => "saved",
        }
    }
}

/// One dashboard as read: its uid, its JSON (or why it could not be read).
struct Entry {
    uid: String,
    source: Source,
    /// The file it came from, for messages (none for built-ins).
    file: Option<PathBuf>,
    dashboard: Result<Value, String>,
}

/// The error answer, in the Prometheus shape.
fn error(status: StatusCode, error_type: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({
            "status": "error",
            "errorType": error_type,
            "error": message.into(),
        })),
    )
        .into_response()
}

fn success(data: Value) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// A uid is also a file name, so it is kept to a safe alphabet.
fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A uid made from a file name: unsafe characters become `-`.
fn uid_from_stem(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut uid: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if uid.is_empty() {
        uid.push_str("dashboard");
    }
    uid
}

/// Expands one provisioning path: a directory gives its `*.json` files, a
/// `*` in the file name matches within its directory, otherwise the file.
fn expand_path(path: &Path) -> Vec<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let (dir, pattern) = if path.is_dir() {
        (path.to_path_buf(), "*.json".to_string())
    } else if name.contains('*') {
        (
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
            name,
        )
    } else {
        return vec![path.to_path_buf()];
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| glob_match(&pattern, &n.to_string_lossy()))
        })
        .collect();
    out.sort();
    out
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some(x) => x,
        None => return name.is_empty(),
    };
    let Some(mut remaining) = name.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(i) => remaining = &remaining[i + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// Reads a dashboard file; the uid is the JSON's `uid` when valid, else the
/// file name's stem.
fn read_dashboard_file(path: &Path, source: Source) -> Entry {
    let parsed = std::fs::read(path)
        .map_err(|e| format!("reading {}: {e}", path.display()))
        .and_then(|bytes| {
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| format!("{}: invalid JSON: {e}", path.display()))
        })
        .and_then(|v| {
            if v.is_object() {
                Ok(v)
            } else {
                Err(format!(
                    "{}: a dashboard must be a JSON object",
                    path.display()
                ))
            }
        });
    let uid = parsed
        .as_ref()
        .ok()
        .and_then(|v| v.get("uid"))
        .and_then(Value::as_str)
        .filter(|u| valid_uid(u))
        .map(str::to_string)
        .unwrap_or_else(|| uid_from_stem(path));
    Entry {
        uid,
        source,
        file: Some(path.to_path_buf()),
        dashboard: parsed,
    }
}

/// The order built-in dashboards are listed in: the machine first.
const BUILTIN_ORDER: &[&str] = &[
    "system",
    "gpu",
    "containers",
    "serving",
    "training",
    "model-quality",
    "redis",
    "postgres",
    "alerts",
];

/// Every dashboard, built-ins first, then provisioned, then saved. A uid
/// seen earlier wins; a provisioning error becomes an entry with the error.
fn all_dashboards(store: &DashboardStore) -> Vec<Entry> {
    let mut builtins: Vec<&(&str, &str)> = assets::BUILTIN_DASHBOARDS.iter().collect();
    builtins.sort_by_key(|(uid, _)| {
        BUILTIN_ORDER
            .iter()
            .position(|u| u == uid)
            .unwrap_or(BUILTIN_ORDER.len())
    });
    let mut out: Vec<Entry> = builtins
        .into_iter()
        .map(|&(uid, text)| Entry {
            uid: uid.to_string(),
            source: Source::Builtin,
            file: None,
            dashboard: serde_json::from_str(text).map_err(|e| e.to_string()),
        })
        .collect();
    match (store.provisioned)() {
        Ok(paths) => {
            for path in paths {
                let files = expand_path(&path);
                // An empty directory or a glob matching nothing is fine (the
                // files may come later); a named file that is missing is not.
                let dir = if path.is_dir() {
                    Some(path.as_path())
                } else {
                    path.parent()
                };
                if files.is_empty() && !dir.is_some_and(Path::is_dir) {
                    out.push(Entry {
                        uid: uid_from_stem(&path),
                        source: Source::Provisioned,
                        file: Some(path.clone()),
                        dashboard: Err(format!("{}: no such file or directory", path.display())),
                    });
                }
                for file in files {
                    out.push(read_dashboard_file(&file, Source::Provisioned));
                }
            }
        }
        Err(e) => out.push(Entry {
            uid: "config-error".to_string(),
            source: Source::Provisioned,
            file: None,
            dashboard: Err(e),
        }),
    }
    if let Some(dir) = &store.saved_dir
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for file in files {
            out.push(read_dashboard_file(&file, Source::Saved));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|e| seen.insert(e.uid.clone()));
    out
}

async fn list_dashboards(State(store): State<Arc<DashboardStore>>) -> Response {
    let entries = match tokio::task::spawn_blocking(move || all_dashboards(&store)).await {
        Ok(e) => e,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut item = Map::new();
            item.insert("uid".into(), json!(e.uid));
            item.insert("source".into(), json!(e.source.as_str()));
            item.insert("readOnly".into(), json!(e.source != Source::Saved));
            if let Some(file) = &e.file {
                item.insert("file".into(), json!(file.display().to_string()));
            }
            match &e.dashboard {
                Ok(d) => {
                    let title = d
                        .get("title")
                        .and_then(Value::as_str)
                        .unwrap_or(e.uid.as_str());
                    item.insert("title".into(), json!(title));
                    item.insert(
                        "tags".into(),
                        d.get("tags").cloned().unwrap_or_else(|| json!([])),
                    );
                    if let Some(desc) = d.get("description").and_then(Value::as_str) {
                        item.insert("description".into(), json!(desc));
                    }
                }
                Err(err) => {
                    item.insert("title".into(), json!(e.uid));
                    item.insert("tags".into(), json!([]));
                    item.insert("error".into(), json!(err));
                }
            }
            Value::Object(item)
        })
        .collect();
    success(Value::Array(list))
}

async fn get_dashboard(
    State(store): State<Arc<DashboardStore>>,
    UrlPath(uid): UrlPath<String>,
) -> Response {
    let found = tokio::task::spawn_blocking(move || {
        all_dashboards(&store).into_iter().find(|e| e.uid == uid)
    })
    .await;
    match found {
        Ok(Some(Entry {
            dashboard: Ok(mut d),
            source,
            uid,
            ..
        })) => {
            if let Some(obj) = d.as_object_mut() {
                obj.insert("uid".into(), json!(uid));
            }
            success(json!({
                "dashboard": d,
                "meta": {"source": source.as_str(), "readOnly": source != Source::Saved},
            }))
        }
        Ok(Some(Entry {
            dashboard: Err(e), ..
        })) => error(StatusCode::UNPROCESSABLE_ENTITY, "execution", e),
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", "dashboard not found"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn put_dashboard(
    State(store): State<Arc<DashboardStore>>,
    UrlPath(uid): UrlPath<String>,
    body: Bytes,
) -> Response {
    if !valid_uid(&uid) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "uid must be 1-64 characters of A-Z, a-z, 0-9, _ and -",
        );
    }
    let mut dashboard: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!("invalid JSON: {e}"),
            );
        }
    };
    let Some(obj) = dashboard.as_object_mut() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "a dashboard must be a JSON object",
        );
    };
    if obj
        .get("title")
        .and_then(Value::as_str)
        .is_none_or(|t| t.trim().is_empty())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "a dashboard needs a non-empty \"title\"",
        );
    }
    obj.insert("uid".into(), json!(uid));
    let result =
        tokio::task::spawn_blocking(move || save_dashboard(&store, &uid, &dashboard)).await;
    result.unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// Writes a saved dashboard atomically and durably (`model::durable`).
fn save_dashboard(store: &DashboardStore, uid: &str, dashboard: &Value) -> Response {
    let Some(dir) = &store.saved_dir else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this server has no data directory to save dashboards in",
        );
    };
    if let Some(e) = all_dashboards(store)
        .iter()
        .find(|e| e.uid == uid && e.source != Source::Saved)
    {
        return error(
            StatusCode::CONFLICT,
            "bad_data",
            format!(
                "dashboard {uid:?} is {} and read-only; save it under another uid",
                e.source.as_str()
            ),
        );
    }
    let text = match serde_json::to_vec_pretty(dashboard) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    // Durable before the answer: an acknowledged save survives a crash.
    let first = !dir.exists();
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| match dir.parent() {
            // The first save creates the directory: its entry in the data
            // directory must be on disk too.
            Some(parent) if first => model::durable::sync_dir(parent),
            _ => Ok(()),
        })
        .and_then(|()| model::durable::write_atomic(&dir.join(format!("{uid}.json")), &text));
    match written {
        Ok(()) => success(Value::Null),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("saving the dashboard: {e}"),
        ),
    }
}

async fn delete_dashboard(
    State(store): State<Arc<DashboardStore>>,
    UrlPath(uid): UrlPath<String>,
) -> Response {
    if !valid_uid(&uid) {
        return error(StatusCode::NOT_FOUND, "not_found", "dashboard not found");
    }
    let result = tokio::task::spawn_blocking(move || {
        if let Some(e) = all_dashboards(&store)
            .iter()
            .find(|e| e.uid == uid && e.source != Source::Saved)
        {
            return error(
                StatusCode::CONFLICT,
                "bad_data",
                format!(
                    "dashboard {uid:?} is {} and cannot be deleted",
                    e.source.as_str()
                ),
            );
        }
        let Some(dir) = &store.saved_dir else {
            return error(StatusCode::NOT_FOUND, "not_found", "dashboard not found");
        };
        let removed = std::fs::remove_file(dir.join(format!("{uid}.json")))
            .and_then(|()| model::durable::sync_dir(dir));
        match removed {
            Ok(()) => success(Value::Null),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                error(StatusCode::NOT_FOUND, "not_found", "dashboard not found")
            }
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("deleting the dashboard: {e}"),
            ),
        }
    })
    .await;
    result.unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob_match("*.json", "a.json"));
        assert!(!glob_match("*.json", "a.yaml"));
        assert!(glob_match("team-*.json", "team-gpu.json"));
        assert!(!glob_match("team-*.json", "other.json"));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(!glob_match("a*b*c", "a-x-c"));
        assert!(glob_match("abc", "abc"));
        assert!(!glob_match("abc", "abcd"));
    }

    #[test]
    fn uids_are_safe_file_names() {
        assert!(valid_uid("system-overview_2"));
        assert!(!valid_uid("../etc"));
        assert!(!valid_uid(""));
        assert!(!valid_uid(&"x".repeat(65)));
        assert_eq!(uid_from_stem(Path::new("/x/My Board.json")), "My-Board");
    }

    #[test]
    fn builtin_dashboards_are_valid_json_with_titles() {
        assert!(!assets::BUILTIN_DASHBOARDS.is_empty());
        for (uid, text) in assets::BUILTIN_DASHBOARDS {
            let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{uid}: {e}"));
            assert!(valid_uid(uid), "{uid}");
            assert!(v["title"].as_str().is_some_and(|t| !t.is_empty()), "{uid}");
            assert!(v["rows"].is_array(), "{uid}");
        }
    }

    async fn call(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        use tower::ServiceExt;
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::from(body.to_string()))
            .expect("request");
        let response = app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn dashboards_come_from_three_places_and_only_saved_ones_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let provisioned = dir.path().join("provisioned");
        std::fs::create_dir(&provisioned).expect("mkdir");
        std::fs::write(
            provisioned.join("team.json"),
            r#"{"title": "Team", "rows": []}"#,
        )
        .expect("write");
        let paths = vec![provisioned, dir.path().join("missing.json")];
        let store = DashboardStore::new(Some(dir.path().join("saved")), move || Ok(paths.clone()));
        let app: Router = router(Arc::new(store));

        let (status, list) = call(&app, "GET", "/api/osprey/dashboards", "").await;
        assert_eq!(status, StatusCode::OK);
        let sources: Vec<(&str, &str)> = list["data"]
            .as_array()
            .expect("list")
            .iter()
            .map(|d| {
                (
                    d["uid"].as_str().unwrap_or(""),
                    d["source"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert!(sources.contains(&("system", "builtin")), "{sources:?}");
        assert!(sources.contains(&("team", "provisioned")), "{sources:?}");
        let missing = list["data"]
            .as_array()
            .and_then(|l| l.iter().find(|d| d["uid"] == "missing"))
            .expect("the missing file is listed");
        assert!(
            missing["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("reading "))
        );

        let board = r#"{"title": "Mine", "rows": []}"#;
        let (status, _) = call(&app, "PUT", "/api/osprey/dashboards/mine", board).await;
        assert_eq!(status, StatusCode::OK);
        let (status, got) = call(&app, "GET", "/api/osprey/dashboards/mine", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got["data"]["dashboard"]["title"], "Mine");
        assert_eq!(got["data"]["meta"]["source"], "saved");
        for uid in ["system", "team"] {
            let uri = format!("/api/osprey/dashboards/{uid}");
            assert_eq!(call(&app, "PUT", &uri, board).await.0, StatusCode::CONFLICT);
            assert_eq!(call(&app, "DELETE", &uri, "").await.0, StatusCode::CONFLICT);
        }
        let (status, _) = call(&app, "DELETE", "/api/osprey/dashboards/mine", "").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = call(&app, "GET", "/api/osprey/dashboards/mine", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_provisioning_error_is_listed_and_saving_needs_a_directory() {
        let store = DashboardStore::new(None, || Err("osprey.yml: dashboards: bad".to_string()));
        let app: Router = router(Arc::new(store));
        let (_, list) = call(&app, "GET", "/api/osprey/dashboards", "").await;
        let entry = list["data"]
            .as_array()
            .and_then(|l| l.iter().find(|d| d["uid"] == "config-error"))
            .expect("the error is an entry");
        assert_eq!(entry["error"], "osprey.yml: dashboards: bad");
        let (status, _) = call(&app, "PUT", "/api/osprey/dashboards/x", r#"{"title": "X"}"#).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn every_page_path_answers_the_index() {
        let app: Router = router(Arc::new(DashboardStore::new(None, || Ok(Vec::new()))));
        for path in ["/", "/graph", "/d/system"] {
            use tower::ServiceExt;
            let request = axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .expect("request");
            let response = app.clone().oneshot(request).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8",
                "{path}"
            );
        }
    }
}
