//! Every route of `osprey server` (the web UI's included) against every
//! kind of caller: nobody, a viewer, an editor, an admin, and a token that
//! may only write. The routes are the ones the router records as it is
//! built, so a route added without a rule in `server::auth::server_policy`
//! fails here. The test prints the whole table.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use server::auth::{Access, server_policy};
use tower::ServiceExt;

const USERS: [(&str, &str); 3] = [("vera", "viewer"), ("ed", "editor"), ("ada", "admin")];
const TOKEN: &str = "rw-token-0123456789abcdef";

/// Who calls: a name for the table, and the Authorization header.
fn callers() -> Vec<(&'static str, Option<String>)> {
    use base64::Engine;
    let basic = |user: &str| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw-{user}"));
        Some(format!("Basic {encoded}"))
    };
    vec![
        ("nobody", None),
        ("viewer", basic("vera")),
        ("editor", basic("ed")),
        ("admin", basic("ada")),
        ("writer token", Some(format!("Bearer {TOKEN}"))),
    ]
}

fn role_of(caller: &str) -> Option<config::web::Role> {
    use config::web::Role;
    match caller {
        "viewer" => Some(Role::Viewer),
        "editor" => Some(Role::Editor),
        "admin" => Some(Role::Admin),
        "writer token" => Some(Role::Writer),
        _ => None,
    }
}

/// A concrete path for a route pattern.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("{uid}", "system")
        .replace("{name}", "job")
        .replace("{silenceID}", "00000000-0000-0000-0000-000000000000")
        .replace("{*path}", "app.js")
}

/// The server's state over a real database (so the TSDB admin routes
/// answer as in production), with the web configuration of these tests,
/// in a temporary directory.
fn state() -> (server::AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut web = String::from("basic_auth_users:\n");
    for (user, _) in USERS {
        let hash = bcrypt::hash(format!("pw-{user}"), 4).expect("bcrypt");
        web.push_str(&format!("  {user}: '{hash}'\n"));
    }
    web.push_str("user_roles:\n");
    for (user, role) in USERS {
        web.push_str(&format!("  {user}: {role}\n"));
    }
    web.push_str(&format!(
        "bearer_tokens:\n  - name: remote-writer\n    token: {TOKEN}\n    role: writer\n"
    ));
    let path = dir.path().join("web.yml");
    std::fs::write(&path, web).expect("web config");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let mut config = server::ServerConfig::new("127.0.0.1:9090".parse().expect("addr"));
    config.web = server::listen::WebConfigHandle::load(&path).expect("web config loads");
    config.data_dir = Some(data.clone());
    let opts = tsdb::DbOptions {
        fsync: false,
        ..tsdb::DbOptions::with_retention(None, None)
    };
    // The database lives in the data directory itself, as `osprey server`
    // opens it.
    let storage = Arc::new(tsdb::Db::open(&data, opts).expect("database"));
    let state = server::AppState::new(storage, config);
    let store = ui::DashboardStore::new(Some(data.join("dashboards")), || Ok(Vec::new()));
    state.mount(ui::router(Arc::new(store)), ui::paths());
    (state, dir)
}

#[tokio::test]
async fn every_route_has_a_rule_and_every_caller_gets_it() {
    let (state, _dir) = state();
    let app = server::router(state.clone());
    let methods = [Method::GET, Method::POST, Method::PUT, Method::DELETE];
    let mut table = vec![format!(
        "| route | method | access | {} |",
        callers()
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(" | ")
    )];
    let mut paths = server::route_paths(&state);
    paths.sort();
    paths.dedup();
    let mut checked = 0;
    for pattern in paths {
        for method in &methods {
            let send = |authorization: Option<String>| {
                let app = app.clone();
                let method = method.clone();
                let uri = concrete(pattern);
                async move {
                    let mut request = Request::builder().method(method).uri(uri);
                    if let Some(value) = authorization {
                        request = request.header("authorization", value);
                    }
                    let request = request.body(Body::empty()).expect("request");
                    app.oneshot(request).await.expect("response").status()
                }
            };
            // Whether the route takes this method at all: an admin gets
            // 405 where it does not.
            let as_admin = send(callers()[3].1.clone()).await;
            if as_admin == StatusCode::METHOD_NOT_ALLOWED {
                continue;
            }
            let access = server_policy(method, pattern);
            let Some(access) = access else {
                panic!("route {method} {pattern} has no access rule in server_policy");
            };
            let mut row = format!("| `{pattern}` | {method} | {} |", access.as_str());
            for (caller, authorization) in callers() {
                let status = send(authorization).await;
                let allowed = match role_of(caller) {
                    Some(role) => access.allows(role),
                    None => access == Access::Public,
                };
                let expected_denial = if caller == "nobody" {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                };
                if allowed {
                    assert!(
                        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                        "{caller} {method} {pattern}: {status}, but {} allows it",
                        access.as_str()
                    );
                } else {
                    assert_eq!(status, expected_denial, "{caller} {method} {pattern}");
                }
                row.push_str(&format!(" {} |", status.as_u16()));
            }
            table.push(row);
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} route-methods found");
    println!("{}", table.join("\n"));
}

#[tokio::test]
async fn wrong_credentials_are_refused_and_audited() {
    let (state, dir) = state();
    let app = server::router(state);
    for authorization in [
        "Basic dmVyYTp3cm9uZw==", // vera:wrong
        "Bearer not-a-token-at-all-00000",
        "Digest whatever",
    ] {
        let request = Request::builder()
            .uri("/api/v1/labels")
            .header("authorization", authorization)
            .body(Body::empty())
            .expect("request");
        let status = app
            .clone()
            .oneshot(request)
            .await
            .expect("response")
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization}");
    }
    let log =
        std::fs::read_to_string(dir.path().join("data").join("audit.log")).expect("audit log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0]["outcome"]
            .as_str()
            .unwrap_or("")
            .starts_with("denied")
    );
    // No secret reaches the log.
    assert!(!log.contains("dmVyYTp3cm9uZw"), "{log}");
    assert!(!log.contains("not-a-token-at-all"), "{log}");
}

/// The TSDB admin routes over a real database, with parameters they
/// accept: each caller gets exactly the status in this table, and every
/// call of a known caller is in the audit log, allowed or not (a request
/// without credentials names nobody to record).
#[tokio::test]
async fn tsdb_admin_routes_answer_admins_only() {
    let (state, dir) = state();
    let app = server::router(state);
    // Route, then the status for nobody, viewer, editor, admin and the
    // writer token.
    let table: [(&str, [u16; 5]); 3] = [
        (
            "/api/v1/admin/tsdb/delete_series?match[]=up",
            [401, 403, 403, 204, 403],
        ),
        (
            "/api/v1/admin/tsdb/clean_tombstones",
            [401, 403, 403, 204, 403],
        ),
        ("/api/v1/admin/tsdb/snapshot", [401, 403, 403, 200, 403]),
    ];
    let mut calls = 0;
    for (uri, expected) in table {
        for method in [Method::POST, Method::PUT] {
            for ((caller, authorization), want) in callers().into_iter().zip(expected) {
                let mut request = Request::builder().method(method.clone()).uri(uri);
                if let Some(value) = authorization {
                    request = request.header("authorization", value);
                }
                let request = request.body(Body::empty()).expect("request");
                let status = app
                    .clone()
                    .oneshot(request)
                    .await
                    .expect("response")
                    .status();
                assert_eq!(status.as_u16(), want, "{caller} {method} {uri}");
                if caller != "nobody" {
                    calls += 1;
                }
            }
        }
    }
    let snapshots = std::fs::read_dir(dir.path().join("data/snapshots"))
        .expect("snapshots directory")
        .count();
    assert_eq!(snapshots, 2, "one snapshot per admin call");
    let log = std::fs::read_to_string(dir.path().join("data/audit.log")).expect("audit log");
    let admin_lines = log
        .lines()
        .filter(|line| line.contains("/api/v1/admin/tsdb/"))
        .count();
    assert_eq!(admin_lines, calls, "{log}");
    assert_eq!(log.matches("\"outcome\":\"204\"").count(), 4, "{log}");
}

/// Every path parameter of every route, filled with ways out of the data
/// directory, for every method, as an admin: no answer holds a file from
/// outside it, and nothing outside it is created or changed.
#[tokio::test]
async fn no_path_parameter_reaches_outside_the_data_directory() {
    let (state, dir) = state();
    let app = server::router(state.clone());
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside dir");
    const MARKER: &str = "TOP-SECRET-OUTSIDE-THE-DATA-DIR";
    let secret = outside.join("secret.json");
    std::fs::write(
        &secret,
        format!("{{\"uid\":\"secret\",\"title\":\"{MARKER}\"}}"),
    )
    .expect("secret file");
    let absolute = secret.display().to_string().replace('/', "%2F");
    let payloads = [
        "..".to_string(),
        "../outside/secret".to_string(),
        "..%2Foutside%2Fsecret".to_string(),
        "..%2F..%2Foutside%2Fsecret".to_string(),
        "../../outside/secret".to_string(),
        "..%2F..%2Foutside%2Fsecret.json".to_string(),
        "%2e%2e%2f%2e%2e%2foutside%2fsecret.json".to_string(),
        "....%2F%2Foutside%2Fsecret".to_string(),
        "..%5Coutside%5Csecret.json".to_string(),
        "%2Fetc%2Fpasswd".to_string(),
        "..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd".to_string(),
        absolute,
        "secret%00.json".to_string(),
    ];
    let admin = callers()[3].1.clone().expect("admin credentials");
    let before = listing(dir.path());
    let mut paths = server::route_paths(&state);
    paths.sort();
    paths.dedup();
    let mut tried = 0;
    for pattern in paths.iter().filter(|p| p.contains('{')) {
        for payload in &payloads {
            let mut uri = String::new();
            let mut rest = *pattern;
            while let Some(start) = rest.find('{') {
                uri.push_str(&rest[..start]);
                let end = rest[start..]
                    .find('}')
                    .map_or(rest.len(), |e| start + e + 1);
                uri.push_str(payload);
                rest = &rest[end..];
            }
            uri.push_str(rest);
            for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
                let Ok(request) = Request::builder()
                    .method(method.clone())
                    .uri(&uri)
                    .header("authorization", &admin)
                    .header("content-type", "application/json")
                    .body(Body::from(format!(
                        "{{\"uid\":\"{payload}\",\"title\":\"t\",\"panels\":[]}}"
                    )))
                else {
                    continue;
                };
                let response = app.clone().oneshot(request).await.expect("response");
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 16 << 20)
                    .await
                    .expect("body");
                let text = String::from_utf8_lossy(&body);
                assert!(
                    !text.contains(MARKER) && !text.contains("root:x:0:0"),
                    "{method} {uri} ({status}) read a file outside the data dir: {text}"
                );
                tried += 1;
            }
        }
    }
    assert!(tried > 50, "only {tried} requests tried");
    assert_eq!(
        std::fs::read_to_string(&secret).expect("secret still there"),
        format!("{{\"uid\":\"secret\",\"title\":\"{MARKER}\"}}")
    );
    let after = listing(dir.path());
    let created: Vec<_> = after
        .iter()
        .filter(|p| !before.contains(p) && !p.starts_with(dir.path().join("data")))
        .collect();
    assert!(
        created.is_empty(),
        "created outside the data dir: {created:?}"
    );
}

/// Every file and directory under `root`.
fn listing(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}
