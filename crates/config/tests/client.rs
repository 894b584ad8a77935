//! The shared HTTP client against real servers on 127.0.0.1: credentials
//! read per request (so rotated files apply without a reload), the OAuth2
//! client-credentials grant with its token cached, `http_headers`,
//! `proxy_url` with `no_proxy`, and `follow_redirects`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, post};

use config::{ClientOptions, Decoder, HttpClient, HttpClientConfig};

/// Every request a stand-in saw: (method, URI as sent, headers by name).
type Seen = Arc<Mutex<Vec<(String, String, HashMap<String, Vec<String>>)>>>;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// A server that records every request and answers 200 (or 302 to
/// `/elsewhere` for `/redirect`).
async fn recorder() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let router = Router::new().fallback(any(move |request: Request| {
        let record = record.clone();
        async move {
            let mut headers: HashMap<String, Vec<String>> = HashMap::new();
            for (name, value) in request.headers() {
                headers
                    .entry(name.as_str().to_string())
                    .or_default()
                    .push(value.to_str().unwrap_or_default().to_string());
            }
            let uri = request.uri().to_string();
            record
                .lock()
                .expect("lock")
                .push((request.method().to_string(), uri.clone(), headers));
            if uri.ends_with("/redirect") {
                (StatusCode::FOUND, [("location", "/elsewhere")], "").into_response()
            } else {
                (StatusCode::OK, "ok").into_response()
            }
        }
    }));
    (serve(router).await, seen)
}

fn client(yaml: &str, dir: &Path) -> HttpClient {
    let root = yaml::parse_document(yaml).expect("yaml");
    let decoder = Decoder::new("c.yml", Some(dir));
    let mut http = HttpClientConfig::default();
    for field in decoder.fields(&root, "").expect("fields") {
        assert!(
            config::http::decode_field(&decoder, &mut http, &field).expect("field"),
            "{} is not an http_config field",
            field.name
        );
    }
    config::http::validate(&decoder, &http, root.line, "").expect("valid");
    HttpClient::new(&http, ClientOptions::new("osprey-test")).expect("client")
}

async fn get(client: &HttpClient, url: &str) -> Result<u16, String> {
    let request = client.request(reqwest::Method::GET, url).await?;
    request
        .send()
        .await
        .map(|response| response.status().as_u16())
        .map_err(|e| config::client::describe_error(&e))
}

fn last_header(seen: &Seen, name: &str) -> Option<Vec<String>> {
    seen.lock()
        .expect("lock")
        .last()
        .and_then(|(_, _, headers)| headers.get(name).cloned())
}

#[tokio::test]
async fn secrets_are_read_on_every_request() {
    let (addr, seen) = recorder().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("password"), "first\n").expect("password");
    let basic = client(
        "basic_auth: {username: osprey, password_file: password}\n",
        dir.path(),
    );
    let url = format!("http://{addr}/metrics");
    assert_eq!(get(&basic, &url).await, Ok(200));
    // base64("osprey:first")
    assert_eq!(
        last_header(&seen, "authorization"),
        Some(vec!["Basic b3NwcmV5OmZpcnN0".to_string()])
    );
    std::fs::write(dir.path().join("password"), "second\n").expect("password");
    assert_eq!(get(&basic, &url).await, Ok(200));
    // base64("osprey:second")
    assert_eq!(
        last_header(&seen, "authorization"),
        Some(vec!["Basic b3NwcmV5OnNlY29uZA==".to_string()])
    );

    std::fs::write(dir.path().join("token"), "t0k3n\n").expect("token");
    let bearer = client("bearer_token_file: token\n", dir.path());
    assert_eq!(get(&bearer, &url).await, Ok(200));
    assert_eq!(
        last_header(&seen, "authorization"),
        Some(vec!["Bearer t0k3n".to_string()])
    );
    let custom = client(
        "authorization: {type: Token, credentials: abc}\n",
        dir.path(),
    );
    assert_eq!(get(&custom, &url).await, Ok(200));
    assert_eq!(
        last_header(&seen, "authorization"),
        Some(vec!["Token abc".to_string()])
    );

    // A missing secret file fails the request with the path in the error.
    std::fs::remove_file(dir.path().join("token")).expect("remove");
    let error = get(&bearer, &url).await.expect_err("no token file");
    assert!(error.contains("token"), "{error}");
}

#[tokio::test]
async fn http_headers_values_secrets_and_files() {
    let (addr, seen) = recorder().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("key"), "from-file\n").expect("key");
    let with_headers = client(
        "http_headers:\n  X-Scope-OrgID: {values: [team-a]}\n  X-Api-Key: {secrets: [s1], files: [key]}\n",
        dir.path(),
    );
    assert_eq!(
        get(&with_headers, &format!("http://{addr}/")).await,
        Ok(200)
    );
    assert_eq!(
        last_header(&seen, "x-scope-orgid"),
        Some(vec!["team-a".to_string()])
    );
    assert_eq!(
        last_header(&seen, "x-api-key"),
        Some(vec!["s1".to_string(), "from-file".to_string()])
    );
}

#[tokio::test]
async fn oauth2_client_credentials_with_a_cached_token() {
    let token_requests: Seen = Arc::new(Mutex::new(Vec::new()));
    let record = token_requests.clone();
    let token_server = serve(Router::new().route(
        "/token",
        post(move |request: Request| {
            let record = record.clone();
            async move {
                let mut headers: HashMap<String, Vec<String>> = HashMap::new();
                for (name, value) in request.headers() {
                    headers
                        .entry(name.as_str().to_string())
                        .or_default()
                        .push(value.to_str().unwrap_or_default().to_string());
                }
                let body = axum::body::to_bytes(request.into_body(), 1 << 16)
                    .await
                    .unwrap_or_default();
                let n = {
                    let mut seen = record.lock().expect("lock");
                    seen.push((
                        "POST".to_string(),
                        String::from_utf8_lossy(&body).into_owned(),
                        headers,
                    ));
                    seen.len()
                };
                (
                    [("content-type", "application/json")],
                    format!(
                        "{{\"access_token\":\"token-{n}\",\"token_type\":\"Bearer\",\"expires_in\":3600}}"
                    ),
                )
            }
        }),
    ))
    .await;
    let (addr, seen) = recorder().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), "s3cret\n").expect("secret");
    let oauth = client(
        &format!(
            "oauth2:\n  client_id: osprey\n  client_secret_file: secret\n  scopes: [read, write]\n  token_url: http://{token_server}/token\n  endpoint_params: {{audience: metrics}}\n"
        ),
        dir.path(),
    );
    let url = format!("http://{addr}/metrics");
    assert_eq!(get(&oauth, &url).await, Ok(200));
    assert_eq!(get(&oauth, &url).await, Ok(200));
    assert_eq!(
        last_header(&seen, "authorization"),
        Some(vec!["Bearer token-1".to_string()])
    );
    // One token request for both: the token is cached until it expires.
    let tokens = token_requests.lock().expect("lock").clone();
    assert_eq!(tokens.len(), 1);
    let (_, body, headers) = &tokens[0];
    for part in [
        "grant_type=client_credentials",
        "scope=read+write",
        "audience=metrics",
    ] {
        assert!(body.contains(part), "{body} lacks {part}");
    }
    // base64("osprey:s3cret")
    assert_eq!(
        headers.get("authorization"),
        Some(&vec!["Basic b3NwcmV5OnMzY3JldA==".to_string()])
    );
}

#[tokio::test]
async fn proxy_url_and_no_proxy() {
    let (target, target_seen) = recorder().await;
    let (proxy, proxy_seen) = recorder().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let proxied = client(
        &format!(
            "proxy_url: http://{proxy}\nno_proxy: bypass.invalid\nproxy_connect_header: {{Proxy-Token: [p1]}}\n"
        ),
        dir.path(),
    );
    // A plain-HTTP request goes to the proxy in absolute form.
    assert_eq!(
        get(&proxied, &format!("http://{target}/via")).await,
        Ok(200)
    );
    let proxied_requests = proxy_seen.lock().expect("lock").clone();
    assert_eq!(proxied_requests.len(), 1);
    assert_eq!(proxied_requests[0].1, format!("http://{target}/via"));
    assert!(target_seen.lock().expect("lock").is_empty());

    // Hosts under no_proxy bypass it.
    let bypassing = client(
        &format!("proxy_url: http://{proxy}\nno_proxy: 127.0.0.1\n"),
        dir.path(),
    );
    assert_eq!(
        get(&bypassing, &format!("http://{target}/bypass")).await,
        Ok(200)
    );
    assert_eq!(target_seen.lock().expect("lock").len(), 1);
    assert_eq!(proxy_seen.lock().expect("lock").len(), 1);

    // Without proxy settings nothing goes through a proxy, even when the
    // environment names one (proxy_from_environment defaults to false).
    let direct = client("follow_redirects: true\n", dir.path());
    assert_eq!(
        get(&direct, &format!("http://{target}/direct")).await,
        Ok(200)
    );
    assert_eq!(target_seen.lock().expect("lock").len(), 2);
    assert_eq!(proxy_seen.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn follow_redirects_false_returns_the_redirect() {
    let (addr, seen) = recorder().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let following = client("follow_redirects: true\n", dir.path());
    assert_eq!(
        get(&following, &format!("http://{addr}/redirect")).await,
        Ok(200)
    );
    assert_eq!(seen.lock().expect("lock").len(), 2);
    let not_following = client("follow_redirects: false\n", dir.path());
    assert_eq!(
        get(&not_following, &format!("http://{addr}/redirect")).await,
        Ok(302)
    );
    assert_eq!(seen.lock().expect("lock").len(), 3);
}

#[test]
fn bad_tls_files_fail_the_build_with_the_file_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = yaml::parse_document("tls_config: {ca_file: missing.pem}\n").expect("yaml");
    let decoder = Decoder::new("c.yml", Some(dir.path()));
    let mut http = HttpClientConfig::default();
    for field in decoder.fields(&root, "").expect("fields") {
        config::http::decode_field(&decoder, &mut http, &field).expect("field");
    }
    let error = HttpClient::new(&http, ClientOptions::new("t")).expect_err("missing CA");
    assert!(error.contains("missing.pem"), "{error}");
    std::fs::write(dir.path().join("missing.pem"), "not a certificate").expect("write");
    let error = HttpClient::new(&http, ClientOptions::new("t")).expect_err("bad CA");
    assert!(error.contains("CA"), "{error}");
}
