//! Alerts reach an Alertmanager on TLS that requires a client
//! certificate: `alerting.alertmanagers[].tls_config` with `ca_file`,
//! `cert_file`, `key_file` and `server_name` (all relative to the config
//! file), through the shared HTTP client layer. The stand-in is a real TLS
//! server on 127.0.0.1 whose certificate names `alertmanager.internal` and
//! which refuses handshakes without a client certificate from its CA.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Server, free_addr};

/// A CA, a server certificate for `alertmanager.internal` and a client
/// certificate, all PEM: (ca, server cert, server key, client cert,
/// client key).
struct Pki {
    ca: String,
    server_cert: rcgen::Certificate,
    server_key: rcgen::KeyPair,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "osprey test CA");
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let server_params = rcgen::CertificateParams::new(vec!["alertmanager.internal".to_string()])
        .expect("server params");
    let server_key = rcgen::KeyPair::generate().expect("server key");
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");

    let mut client_params =
        rcgen::CertificateParams::new(Vec::<String>::new()).expect("client params");
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "osprey");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = rcgen::KeyPair::generate().expect("client key");
    let client_cert = client_params
        .signed_by(&client_key, &issuer)
        .expect("client certificate");
    Pki {
        ca: ca_cert.pem(),
        server_cert,
        server_key,
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// One request as the stand-in saw it: path and body.
type Requests = Arc<Mutex<Vec<(String, String)>>>;

/// A TLS server that requires a client certificate signed by the CA and
/// answers every request with 200.
fn tls_alertmanager(pki: &Pki) -> (SocketAddr, Requests) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca_der =
        rustls::pki_types::CertificateDer::from_pem_slice(pki.ca.as_bytes()).expect("CA DER");
    roots.add(ca_der).expect("CA root");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pki.server_key.serialize_der().into());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![pki.server_cert.der().clone()], key)
            .expect("server config"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let requests: Requests = Arc::new(Mutex::new(Vec::new()));
    let record = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let config = config.clone();
            let record = record.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(connection) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(connection, stream);
                // Handshake failures (no client certificate) end here.
                let mut reader = BufReader::new(&mut tls);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    return;
                }
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                if let Ok(mut seen) = record.lock() {
                    seen.push((path, String::from_utf8_lossy(&body).into_owned()));
                }
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                let _ = tls.flush();
            });
        }
    });
    (addr, requests)
}

use rustls::pki_types::pem::PemObject;

#[test]
fn alerts_reach_an_alertmanager_that_requires_a_client_certificate() {
    let pki = pki();
    let (am_addr, requests) = tls_alertmanager(&pki);
    let dir = tempfile::tempdir().expect("tempdir");
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir_all(&tls_dir).expect("tls dir");
    std::fs::write(tls_dir.join("ca.pem"), &pki.ca).expect("ca");
    std::fs::write(tls_dir.join("client.pem"), &pki.client_cert).expect("client cert");
    std::fs::write(tls_dir.join("client-key.pem"), &pki.client_key).expect("client key");
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: always\n    interval: 1s\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n        labels: {severity: page}\n",
    )
    .expect("rules");
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - scheme: https\n      timeout: 5s\n      tls_config:\n        ca_file: tls/ca.pem\n        cert_file: tls/client.pem\n        key_file: tls/client-key.pem\n        server_name: alertmanager.internal\n      static_configs:\n        - targets: ['{am_addr}']\n"
        ),
    )
    .expect("config");
    let addr = free_addr();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("log"),
        &["--config", &config.display().to_string()],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let received = loop {
        let seen = requests.lock().map(|r| r.clone()).unwrap_or_default();
        if let Some(found) = seen
            .into_iter()
            .find(|(_, body)| body.contains("AlwaysFiring"))
        {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no alert reached the TLS Alertmanager; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(received.0, "/api/v2/alerts");
    let alerts: serde_json::Value = serde_json::from_str(&received.1).expect("alerts JSON");
    assert_eq!(alerts[0]["labels"]["alertname"], "AlwaysFiring");
    assert_eq!(alerts[0]["labels"]["severity"], "page");
    server.kill();
}

#[test]
fn without_the_client_certificate_the_alertmanager_refuses() {
    // The same client settings minus the certificate, through the shared
    // builder: the handshake fails, so the certificate is what lets the
    // alerts in above.
    let pki = pki();
    let (am_addr, requests) = tls_alertmanager(&pki);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), &pki.ca).expect("ca");
    std::fs::write(dir.path().join("client.pem"), &pki.client_cert).expect("client cert");
    std::fs::write(dir.path().join("client-key.pem"), &pki.client_key).expect("client key");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let send = |with_cert: bool| {
        let mut text =
            "tls_config:\n  ca_file: ca.pem\n  server_name: alertmanager.internal\n".to_string();
        if with_cert {
            text.push_str("  cert_file: client.pem\n  key_file: client-key.pem\n");
        }
        let root = yaml_root(&text);
        let decoder = config::Decoder::new("c.yml", Some(dir.path()));
        let mut http = config::HttpClientConfig::default();
        for field in decoder.fields(&root, "").expect("fields") {
            assert!(config::http::decode_field(&decoder, &mut http, &field).expect("field"));
        }
        let client =
            config::HttpClient::new(&http, config::ClientOptions::new("test")).expect("client");
        runtime.block_on(async {
            let request = client
                .request(
                    reqwest::Method::POST,
                    &format!("https://{am_addr}/api/v2/alerts"),
                )
                .await
                .expect("request");
            request.body("[]").send().await.map(|r| r.status().as_u16())
        })
    };
    assert!(
        send(false).is_err(),
        "a handshake without a certificate must fail"
    );
    assert_eq!(send(true).expect("with the certificate"), 200);
    assert_eq!(requests.lock().map(|r| r.len()).unwrap_or(0), 1);
}

fn yaml_root(text: &str) -> yaml::Node {
    yaml::parse_document(text).expect("yaml")
}
