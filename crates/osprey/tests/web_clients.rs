//! `--web.config.file` against the real clients people point at a
//! protected Prometheus: `curl` over TLS with and without a client
//! certificate, `promtool query` and `amtool --http.config.file`,
//! and Debian's Prometheus remote-writing with a bearer token. Every
//! server is a real `osprey server` on 127.0.0.1 with certificates made
//! for the test.
//!
//! A missing program skips its test with the reason printed, unless
//! `OSPREY_REQUIRE_EXTERNAL=1`, where it fails.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{ChildGuard, free_addr};

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

/// A CA and certificates it signed, written as PEM files into `dir`:
/// `ca.crt`, `server.crt`/`server.key` (for `localhost` and 127.0.0.1),
/// and `<name>.crt`/`<name>.key` for each client, whose common name is
/// the user name. `stranger.crt` is signed by another CA.
fn pki(dir: &Path, clients: &[&str]) {
    fn ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        (cert, rcgen::Issuer::new(params, key))
    }
    fn client(dir: &Path, name: &str, issuer: &rcgen::Issuer<'static, rcgen::KeyPair>) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().expect("client key");
        let cert = params.signed_by(&key, issuer).expect("client certificate");
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).expect("write");
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write");
    }
    let (ca_cert, issuer) = ca("osprey test CA");
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).expect("write CA");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params");
    let key = rcgen::KeyPair::generate().expect("server key");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    std::fs::write(dir.join("server.crt"), cert.pem()).expect("write");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("write");
    for name in clients {
        client(dir, name, &issuer);
    }
    let (_, other) = ca("some other CA");
    client(dir, "stranger", &other);
}

/// `basic_auth_users` lines for users whose password is `pw-<user>`.
fn users(names: &[&str]) -> String {
    let mut text = String::from("basic_auth_users:\n");
    for name in names {
        let hash = bcrypt::hash(format!("pw-{name}"), 4).expect("bcrypt");
        text.push_str(&format!("  {name}: '{hash}'\n"));
    }
    text
}

/// A running `osprey server` on TLS.
struct TlsServer {
    _child: ChildGuard,
    addr: SocketAddr,
    log: PathBuf,
}

impl TlsServer {
    fn start(dir: &Path, config: Option<&Path>) -> TlsServer {
        let addr = free_addr();
        let log = dir.join("server.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
        command
            .args(["server", "--listen", &addr.to_string(), "--data-dir"])
            .arg(dir.join("data"))
            .arg("--web.config.file")
            .arg(dir.join("web.yml"));
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        // The port opens once the server serves; the TLS handshake is the
        // clients' business.
        let child = ChildGuard::spawn_ready(&mut command, &log, Duration::from_secs(30), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        TlsServer {
            _child: child,
            addr,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Runs curl (10 s at most) and returns the HTTP status it printed (`000`
/// when no response came) and the body.
fn curl(dir: &Path, args: &[&str]) -> (String, String) {
    let body = dir.join(format!(
        "curl-body-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let out = ChildGuard::run(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "-o"])
            .arg(&body)
            .args(["-w", "%{http_code}"])
            .args(args),
        Duration::from_secs(15),
    )
    .expect("run curl");
    let mut text = std::fs::read_to_string(&body).unwrap_or_default();
    let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if status == "000" {
        // No answer: curl's own words say why.
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    (status, text)
}

#[test]
fn curl_over_tls_with_and_without_a_client_certificate() {
    if !available("curl", "curl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d, &["vera", "ed"]);
    std::fs::write(
        d.join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n\
http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n\
user_roles:\n  ed: editor\n",
    )
    .expect("web config");
    let server = TlsServer::start(d, None);
    let ca = d.join("ca.crt").display().to_string();
    let cert = |name: &str| {
        vec![
            "--cert".to_string(),
            d.join(format!("{name}.crt")).display().to_string(),
            "--key".to_string(),
            d.join(format!("{name}.key")).display().to_string(),
        ]
    };
    let query = server.url("/api/v1/query?query=vector(42)");
    let run = |extra: Vec<String>, tail: &[&str]| {
        let mut args: Vec<String> = vec!["--cacert".to_string(), ca.clone()];
        args.extend(extra);
        args.extend(tail.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(d, &args)
    };

    // No client certificate: the handshake is refused, no HTTP answer.
    let (status, _) = run(vec![], &[&query]);
    assert_eq!(status, "000", "no certificate must not get an answer");
    // A certificate from another CA: refused the same way.
    let (status, _) = run(cert("stranger"), &[&query]);
    assert_eq!(status, "000", "a stranger's certificate must not get in");
    // Plain HTTP on the TLS port gets no Prometheus answer either.
    let (status, _) = curl(
        d,
        &[&format!(
            "http://127.0.0.1:{}/api/v1/query?query=1",
            server.addr.port()
        )],
    );
    assert_ne!(status, "200");

    // vera's certificate: a viewer, who may query but not reload.
    let (status, body) = run(cert("vera"), &[&query]);
    assert_eq!(status, "200", "{body}\n{}", server.log_text());
    assert!(body.contains("\"42\""), "{body}");
    let (status, body) = run(cert("vera"), &["-X", "POST", &server.url("/-/reload")]);
    assert_eq!(status, "403", "{body}");
    assert!(body.contains("\"errorType\":\"forbidden\""), "{body}");
    // The configured security header is on every answer.
    let headers = d.join("headers.txt").display().to_string();
    let (status, _) = run(cert("vera"), &["-D", &headers, &server.url("/-/healthy")]);
    assert_eq!(status, "200");
    let headers = std::fs::read_to_string(&headers).unwrap_or_default();
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{headers}"
    );

    // ed's certificate: an editor, who may set a silence.
    let silence = r#"{"matchers":[{"name":"alertname","value":"X","isRegex":false}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"ed","comment":"tls"}"#;
    let (status, body) = run(
        cert("ed"),
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            silence,
            &server.url("/api/v2/silences"),
        ],
    );
    // The embedded default configuration runs the alert manager.
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("silenceID"), "{body}");
    let audit = std::fs::read_to_string(d.join("data").join("audit.log")).unwrap_or_default();
    assert!(
        audit.contains("\"user\":\"vera\"") && audit.contains("\"outcome\":\"forbidden\""),
        "{audit}"
    );
    assert!(
        audit.contains("\"user\":\"ed\"") && audit.contains("\"role\":\"editor\""),
        "{audit}"
    );
}

/// A Prometheus `http_config` file for promtool and amtool.
fn client_config(dir: &Path, name: &str, user: Option<&str>) -> String {
    let path = dir.join(format!("{name}.http.yml"));
    let mut text = format!("tls_config:\n  ca_file: {}\n", dir.join("ca.crt").display());
    if let Some(user) = user {
        text.push_str(&format!(
            "basic_auth:\n  username: {user}\n  password: pw-{user}\n"
        ));
    }
    std::fs::write(&path, text).expect("write http config");
    path.display().to_string()
}

fn run_tool(program: &str, args: &[String]) -> (bool, String) {
    let out = ChildGuard::run(Command::new(program).args(args), Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let ok = out.status.is_some_and(|s| s.success());
    (
        ok,
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn promtool_and_amtool_with_an_http_config_file() {
    if !available("promtool", "prometheus") || !available("amtool", "prometheus-alertmanager") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d, &[]);
    std::fs::write(
        d.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{}user_roles:\n  ed: editor\n",
            users(&["vera", "ed"])
        ),
    )
    .expect("web config");
    let config = d.join("osprey.yml");
    std::fs::write(
        &config,
        "scrape_configs: []\nalertmanager:\n  route:\n    receiver: nobody\n  receivers:\n    - name: nobody\n",
    )
    .expect("config");
    let server = TlsServer::start(d, Some(&config));
    let base = server.url("");
    let anonymous = client_config(d, "anonymous", None);
    let vera = client_config(d, "vera", Some("vera"));
    let ed = client_config(d, "ed", Some("ed"));

    // promtool: a viewer's query is answered; without credentials, 401.
    // Debian's promtool 2.42 has no `--http.config.file` for queries (it
    // came in 2.43), so it gets what every Go client takes: credentials
    // in the URL and the CA in SSL_CERT_FILE.
    let promtool = |userinfo: &str| {
        let url = base.replacen("https://", &format!("https://{userinfo}"), 1);
        let out = ChildGuard::run(
            Command::new("promtool")
                .env("SSL_CERT_FILE", d.join("ca.crt"))
                .args(["query", "instant", &url, "vector(42)"]),
            Duration::from_secs(30),
        )
        .expect("run promtool");
        let ok = out.status.is_some_and(|s| s.success());
        (
            ok,
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = promtool("vera:pw-vera@");
    assert!(ok, "{out}\n{}", server.log_text());
    assert!(out.contains("=> 42"), "{out}");
    let (ok, out) = promtool("");
    assert!(!ok, "{out}");
    assert!(out.contains("401") || out.contains("nauthorized"), "{out}");
    let (ok, out) = promtool("vera:wrong@");
    assert!(!ok, "{out}");

    // amtool: the editor sets a silence, the viewer reads it and may not
    // set one.
    let amtool = |config: &str, args: &[&str]| {
        let mut all = vec![
            format!("--alertmanager.url={base}"),
            format!("--http.config.file={config}"),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        run_tool("amtool", &all)
    };
    let (ok, id) = amtool(
        &ed,
        &[
            "silence",
            "add",
            "alertname=Drift",
            "--comment=under investigation",
            "--author=ed",
        ],
    );
    assert!(ok, "{id}\n{}", server.log_text());
    let id = id.trim().to_string();
    let (ok, out) = amtool(&vera, &["silence", "query", "-q"]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), id);
    let (ok, out) = amtool(
        &vera,
        &[
            "silence",
            "add",
            "alertname=Other",
            "--comment=no",
            "--author=vera",
        ],
    );
    assert!(!ok, "a viewer set a silence: {out}");
    assert!(
        out.contains("403") || out.to_lowercase().contains("forbidden"),
        "{out}"
    );
    let (ok, out) = amtool(&anonymous, &["silence", "query", "-q"]);
    assert!(!ok, "nobody read the silences: {out}");
    let (ok, out) = amtool(&ed, &["silence", "expire", &id]);
    assert!(ok, "{out}");
    let (ok, out) = amtool(&vera, &["silence", "query", "-q"]);
    assert!(ok && out.trim().is_empty(), "{out}");
}

#[test]
fn prometheus_remote_writes_with_a_bearer_token() {
    if !available("prometheus", "prometheus") || !available("curl", "curl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d, &[]);
    let token = "remote-write-token-0123456789";
    std::fs::write(d.join("token"), format!("{token}\n")).expect("token file");
    std::fs::write(
        d.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{}\
bearer_tokens:\n  - name: prometheus-a\n    token_file: token\n    role: writer\n",
            users(&["vera"])
        ),
    )
    .expect("web config");
    let server = TlsServer::start(d, None);

    // Prometheus scrapes itself and writes to osprey twice: with the
    // right token, and with a wrong one.
    let prom_addr = free_addr();
    let prom_config = d.join("prometheus.yml");
    let write = |name: &str, credentials: &str| {
        format!(
            "  - name: {name}\n    url: {}\n    authorization:\n      credentials: {credentials}\n    tls_config:\n      ca_file: {}\n    queue_config:\n      batch_send_deadline: 200ms\n      min_backoff: 50ms\n      max_backoff: 500ms\n",
            server.url("/api/v1/write"),
            d.join("ca.crt").display()
        )
    };
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prom\n    static_configs:\n      - targets: ['{prom_addr}']\nremote_write:\n{}{}",
            write("good", token),
            write("bad", "not-the-token-0123456789")
        ),
    )
    .expect("prometheus config");
    let prom_log = d.join("prometheus.log");
    let _prometheus = ChildGuard::spawn_ready(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                d.join("prom-data").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}")),
        &prom_log,
        Duration::from_secs(60),
        || {
            matches!(
                support::http(prom_addr, "GET", "/-/ready", &[], &[]),
                Ok((200, _))
            )
        },
    );

    // The samples arrive and a viewer reads them back.
    let ca = d.join("ca.crt").display().to_string();
    let query = server.url("/api/v1/query?query=up%7Bjob%3D%22prom%22%7D");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = curl(d, &["--cacert", &ca, "-u", "vera:pw-vera", &query]);
        if status == "200" && body.contains("\"job\":\"prom\"") {
            assert!(body.contains("\"1\""), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no samples from Prometheus: {status} {body}\nosprey:\n{}\nprometheus:\n{}",
            server.log_text(),
            std::fs::read_to_string(&prom_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The wrong token was refused, and the refusal is in the audit log
    // without the token itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let audit = std::fs::read_to_string(d.join("data").join("audit.log")).unwrap_or_default();
        if audit.contains("unknown bearer token") {
            assert!(!audit.contains("not-the-token"), "{audit}");
            assert!(!audit.contains(token), "{audit}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the wrong token was not refused; audit:\n{audit}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The writer token may write but not read.
    let (status, _) = curl(
        d,
        &[
            "--cacert",
            &ca,
            "-H",
            &format!("Authorization: Bearer {token}"),
            &query,
        ],
    );
    assert_eq!(status, "403");
}

/// The TLS and user part of a web config: the server certificate and
/// `basic_auth_users` for `names` (password `pw-<name>`).
fn tls_users(names: &[&str]) -> String {
    format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{}",
        users(names)
    )
}

/// curl with the test CA trusted, then `args`.
fn curl_ca(dir: &Path, args: &[&str]) -> (String, String) {
    let ca = dir.join("ca.crt").display().to_string();
    let mut all = vec!["--cacert", ca.as_str()];
    all.extend_from_slice(args);
    curl(dir, &all)
}

const SILENCE: &str = r#"{"matchers":[{"name":"alertname","value":"X","isRegex":false}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"ed","comment":"session"}"#;

/// The UI's way in, as a browser does it (curl with a cookie jar): a
/// login sets an `HttpOnly`, `SameSite=Strict`, `Secure` cookie; a state
/// change the cookie authenticates needs the session's CSRF token; a
/// wrong password is refused and audited; logout ends the session.
#[test]
fn a_login_session_is_http_only_strict_and_needs_its_csrf_token() {
    if !available("curl", "curl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d, &[]);
    std::fs::write(
        d.join("web.yml"),
        format!("{}user_roles:\n  ed: editor\n", tls_users(&["vera", "ed"])),
    )
    .expect("web config");
    let server = TlsServer::start(d, None);
    let jar = d.join("cookies.txt").display().to_string();
    let headers = d.join("login-headers.txt").display().to_string();
    let login = server.url("/api/osprey/login");
    let silences = server.url("/api/v2/silences");
    let whoami = server.url("/api/osprey/whoami");

    let (status, body) = curl_ca(d, &["--data", "username=ed&password=wrong", &login]);
    assert_eq!(status, "401", "{body}");
    let (status, body) = curl_ca(
        d,
        &[
            "-c",
            &jar,
            "-D",
            &headers,
            "--data",
            "username=ed&password=pw-ed",
            &login,
        ],
    );
    assert_eq!(status, "200", "{body}\n{}", server.log_text());
    let reply: serde_json::Value = serde_json::from_str(&body).expect("login JSON");
    assert_eq!(reply["data"]["role"], "editor", "{body}");
    let csrf = reply["data"]["csrfToken"]
        .as_str()
        .expect("a CSRF token")
        .to_string();
    assert!(csrf.len() >= 16, "{csrf}");
    let set_cookie = std::fs::read_to_string(&headers)
        .unwrap_or_default()
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_default()
        .to_string();
    for flag in ["osprey_session=", "HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(set_cookie.contains(flag), "{flag} missing: {set_cookie}");
    }

    // The cookie alone reads.
    let (status, body) = curl_ca(d, &["-b", &jar, &whoami]);
    assert_eq!(status, "200");
    assert!(body.contains("\"user\":\"ed\""), "{body}");
    // The cookie without the token changes nothing; a wrong token neither.
    let post = |extra: &[&str]| {
        let mut args = vec![
            "-b",
            jar.as_str(),
            "-H",
            "Content-Type: application/json",
            "--data",
            SILENCE,
        ];
        args.extend_from_slice(extra);
        args.push(silences.as_str());
        curl_ca(d, &args)
    };
    let (status, body) = post(&[]);
    assert_eq!(status, "403", "{body}\n{}", server.log_text());
    let (status, body) = post(&["-H", "X-CSRF-Token: not-the-token"]);
    assert_eq!(status, "403", "{body}");
    let token_header = format!("X-CSRF-Token: {csrf}");
    let (status, body) = post(&["-H", &token_header]);
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("silenceID"), "{body}");

    // Logout; the old cookie is then nobody's.
    let (status, body) = curl_ca(
        d,
        &[
            "-b",
            &jar,
            "-H",
            &token_header,
            "-X",
            "POST",
            &server.url("/api/osprey/logout"),
        ],
    );
    assert_eq!(status, "200", "{body}");
    let (status, body) = curl_ca(d, &["-b", &jar, &whoami]);
    assert_eq!(status, "200");
    assert!(body.contains("\"authenticated\":false"), "{body}");
    let (status, body) = post(&["-H", &token_header]);
    assert_eq!(status, "401", "{body}");

    let audit = std::fs::read_to_string(d.join("data").join("audit.log")).unwrap_or_default();
    assert!(
        audit.contains("\"action\":\"login\"") && audit.contains("denied: wrong user name"),
        "{audit}"
    );
    assert!(
        !audit.contains("pw-ed") && !audit.contains(&csrf),
        "{audit}"
    );
}

/// `rate_limits`: within the burst a caller gets through, past it 429
/// with the error JSON and `Retry-After`; another caller's bucket is its
/// own, and the bucket refills.
#[test]
fn rate_limits_answer_429_with_retry_after_per_caller() {
    if !available("curl", "curl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d, &[]);
    std::fs::write(
        d.join("web.yml"),
        format!(
            "{}rate_limits:\n  queries: {{requests_per_second: 0.5, burst: 3}}\n",
            tls_users(&["vera", "ed"])
        ),
    )
    .expect("web config");
    let server = TlsServer::start(d, None);
    let query = server.url("/api/v1/query?query=1");
    // Six requests from one curl, one after another on one connection, so
    // milliseconds apart: the bucket (3, one more every 2 s, so a
    // Retry-After of 1 or 2) refuses the fourth unless 2 s have passed
    // since the first, and one of the last three unless 6 s have. (A curl
    // each can take most of a second on a loaded machine, which let a
    // bucket refilling at 1/s pass all six.)
    let ca = d.join("ca.crt").display().to_string();
    let bodies: Vec<PathBuf> = (0..6).map(|i| d.join(format!("limit-{i}.json"))).collect();
    let mut command = Command::new("curl");
    command.args([
        "-sS",
        "--max-time",
        "20",
        "--cacert",
        &ca,
        "-u",
        "vera:pw-vera",
    ]);
    command.args(["-w", "%{http_code} %header{retry-after}\n"]);
    for body in &bodies {
        command.arg("-o").arg(body).arg(&query);
    }
    let out = ChildGuard::run(&mut command, Duration::from_secs(30)).expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // (status, Retry-After) of each request.
    let answers: Vec<(&str, &str)> = stdout
        .lines()
        .map(|l| l.split_once(' ').unwrap_or((l, "")))
        .collect();
    assert_eq!(
        answers.len(),
        6,
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = |i: usize| std::fs::read_to_string(&bodies[i]).unwrap_or_default();
    for (i, (status, _)) in answers.iter().enumerate().take(3) {
        assert_eq!(*status, "200", "three pass: {answers:?}: {}", body(i));
        assert!(body(i).contains("\"status\":\"success\""), "{}", body(i));
    }
    let refused: Vec<usize> = (3..6).filter(|&i| answers[i].0 == "429").collect();
    assert!(!refused.is_empty(), "then 429: {answers:?}");
    let mut retry = 0;
    for &i in &refused {
        let reply: serde_json::Value = serde_json::from_str(&body(i)).expect("429 JSON");
        assert_eq!(reply["status"], "error", "{reply}");
        assert_eq!(reply["errorType"], "too_many_requests", "{reply}");
        retry = answers[i]
            .1
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("Retry-After in seconds on a 429: {answers:?}"));
        assert!((1..=2).contains(&retry), "{answers:?}");
    }
    // Another user is not limited by vera's bucket.
    let (status, _) = curl_ca(d, &["-u", "ed:pw-ed", &query]);
    assert_eq!(status, "200");
    // After Retry-After (of the last 429), vera gets in again.
    std::thread::sleep(Duration::from_secs(retry + 1));
    let (status, _) = curl_ca(d, &["-u", "vera:pw-vera", &query]);
    assert_eq!(status, "200");
}

/// `trusted_proxy`: the SSO proxy's headers name the user and role, but
/// only from the proxy's addresses; from anyone else they are ignored.
#[test]
fn trusted_proxy_headers_count_only_from_the_proxy() {
    if !available("curl", "curl") {
        return;
    }
    for (cidr, trusted) in [("127.0.0.1/32", true), ("10.0.0.5/32", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        pki(d, &[]);
        std::fs::write(
            d.join("web.yml"),
            format!(
                "{}user_roles:\n  pat: editor\ntrusted_proxy:\n  user_header: X-Forwarded-User\n  role_header: X-Forwarded-Role\n  trusted_cidrs: [{cidr}]\n",
                tls_users(&["vera"])
            ),
        )
        .expect("web config");
        let server = TlsServer::start(d, None);
        let whoami = server.url("/api/osprey/whoami");
        let reload = server.url("/-/reload");
        let (status, body) = curl_ca(d, &["-H", "X-Forwarded-User: pat", &whoami]);
        assert_eq!(status, "200");
        if trusted {
            // user_roles decides without a role header.
            assert!(
                body.contains("\"user\":\"pat\"") && body.contains("\"role\":\"editor\""),
                "{body}"
            );
            let (status, body) =
                curl_ca(d, &["-H", "X-Forwarded-User: pat", "-X", "POST", &reload]);
            assert_eq!(status, "403", "an editor may not reload: {body}");
            let (status, body) = curl_ca(
                d,
                &[
                    "-H",
                    "X-Forwarded-User: pat",
                    "-H",
                    "X-Forwarded-Role: admin",
                    "-X",
                    "POST",
                    &reload,
                ],
            );
            assert_eq!(status, "200", "the proxy's role header: {body}");
        } else {
            assert!(body.contains("\"authenticated\":false"), "{body}");
            let (status, body) = curl_ca(
                d,
                &[
                    "-H",
                    "X-Forwarded-User: pat",
                    "-H",
                    "X-Forwarded-Role: admin",
                    "-X",
                    "POST",
                    &reload,
                ],
            );
            assert_eq!(
                status, "401",
                "headers from a stranger count for nothing: {body}"
            );
        }
    }
}

/// The web config and the certificate are read again when they change,
/// without a restart: a user added to the file gets in, a bad edit keeps
/// the configuration in force, and a new certificate serves the next
/// connection.
#[test]
fn the_web_config_and_certificates_are_re_read_without_a_restart() {
    if !available("curl", "curl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d, &[]);
    std::fs::write(d.join("web.yml"), tls_users(&["vera"])).expect("web config");
    let server = TlsServer::start(d, None);
    let query = server.url("/api/v1/query?query=1");
    let until = |what: &str, mut check: Box<dyn FnMut() -> bool + '_>| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !check() {
            assert!(Instant::now() < deadline, "{what}\n{}", server.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert_eq!(curl_ca(d, &["-u", "vera:pw-vera", &query]).0, "200");
    assert_eq!(curl_ca(d, &["-u", "dana:pw-dana", &query]).0, "401");

    // A user added to the file.
    std::fs::write(d.join("web.yml"), tls_users(&["vera", "dana"])).expect("web config");
    until(
        "dana is let in after the edit",
        Box::new(|| curl_ca(d, &["-u", "dana:pw-dana", &query]).0 == "200"),
    );

    // A broken edit: logged, and the file in force stays.
    std::fs::write(d.join("web.yml"), "basic_auth_users:\n  dana: plain-text\n").expect("write");
    until(
        "the bad edit is logged",
        Box::new(|| server.log_text().contains("keeping the previous one")),
    );
    assert_eq!(curl_ca(d, &["-u", "dana:pw-dana", &query]).0, "200");
    assert_eq!(curl_ca(d, &["-u", "vera:pw-vera", &query]).0, "200");

    // A new CA and certificate: the old CA no longer verifies the server,
    // the new one does.
    std::fs::write(d.join("web.yml"), tls_users(&["vera", "dana"])).expect("web config");
    let old_ca = d.join("old-ca.crt");
    std::fs::rename(d.join("ca.crt"), &old_ca).expect("keep the old CA");
    pki(d, &[]);
    // Touch the config too, so the change is seen whichever file is
    // looked at first.
    std::fs::write(
        d.join("web.yml"),
        format!("{}\n", tls_users(&["vera", "dana"])),
    )
    .expect("web config");
    let old_ca = old_ca.display().to_string();
    until(
        "the new certificate is served",
        Box::new(|| {
            curl_ca(d, &["-u", "vera:pw-vera", &query]).0 == "200"
                && curl(d, &["--cacert", &old_ca, "-u", "vera:pw-vera", &query]).0 == "000"
        }),
    );
}

/// The same web config file protects every listener: the exporter, the
/// stand-alone alert manager and the agent answer 401 without
/// credentials and 200 with them, over TLS.
#[test]
fn every_listener_takes_the_same_web_config() {
    if !available("curl", "curl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d, &[]);
    std::fs::write(d.join("web.yml"), tls_users(&["vera"])).expect("web config");
    std::fs::write(d.join("agent.yml"), "global:\n  scrape_interval: 15s\n").expect("agent");
    let web = d.join("web.yml").display().to_string();
    std::fs::write(
        d.join("am.yml"),
        "route:\n  receiver: none\nreceivers:\n  - name: none\n",
    )
    .expect("alertmanager config");
    let agent_config = d.join("agent.yml").display().to_string();
    let am_config = d.join("am.yml").display().to_string();
    let am_data = d.join("am").display().to_string();
    let agent_data = d.join("agent-data").display().to_string();
    let listeners: [(&str, Vec<&str>, &str); 3] = [
        ("exporter host", vec!["exporter", "host"], "/metrics"),
        (
            "alertmanager",
            vec![
                "alertmanager",
                "--config",
                &am_config,
                "--data-dir",
                &am_data,
            ],
            "/api/v2/status",
        ),
        (
            "agent",
            vec![
                "agent",
                "--config",
                &agent_config,
                "--data-dir",
                &agent_data,
            ],
            "/metrics",
        ),
    ];
    for (name, args, path) in listeners {
        let addr = free_addr();
        let log = d.join(format!("{}.log", name.replace(' ', "-")));
        let listen = addr.to_string();
        let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
        command
            .args(&args)
            .args(["--listen", &listen, "--web.config.file", &web]);
        let _child = ChildGuard::spawn_ready(&mut command, &log, Duration::from_secs(30), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        let url = format!("https://127.0.0.1:{}{path}", addr.port());
        let (status, body) = curl_ca(d, &[&url]);
        assert_eq!(status, "401", "{name} without credentials: {body}");
        let (status, body) = curl_ca(d, &["-u", "vera:pw-vera", &url]);
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(status, "200", "{name} with credentials: {body}\n{log_text}");
    }
}

/// A web config that does not load stops the program at start with one
/// line naming the file, the line and the field.
#[test]
fn a_bad_web_config_stops_the_start_with_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let web = d.join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  dana: plain-text-password\n").expect("write");
    let listen = free_addr().to_string();
    let out = ChildGuard::run(
        Command::new(env!("CARGO_BIN_EXE_osprey"))
            .args(["server", "--listen", &listen, "--data-dir"])
            .arg(d.join("data"))
            .arg("--web.config.file")
            .arg(&web),
        Duration::from_secs(30),
    )
    .expect("run osprey");
    assert!(out.status.is_some_and(|s| !s.success()), "must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:2: basic_auth_users.dana", web.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains("plain-text-password"), "{stderr}");
}
