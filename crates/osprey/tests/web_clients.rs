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
    let text = std::fs::read_to_string(&body).unwrap_or_default();
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        text,
    )
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
