//! Scraping over HTTPS: `tls_config` with `ca_file`, `server_name` and
//! `insecure_skip_verify`, against a real TLS server on 127.0.0.1 whose
//! certificate names `metrics.internal`, not the address scraped.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use scrape::TargetHealth;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

const BODY: &str = "secure_metric 42\n";

/// What the server saw of the last request: the TLS SNI name and the
/// `Host` header.
#[derive(Default)]
struct Seen {
    sni: Option<String>,
    host: Option<String>,
}

/// A self-signed certificate for `metrics.internal`, as (PEM, rustls
/// server configuration).
fn certificate() -> (String, Arc<rustls::ServerConfig>) {
    let params = rcgen::CertificateParams::new(vec!["metrics.internal".to_string()])
        .expect("certificate parameters");
    let key = rcgen::KeyPair::generate().expect("key pair");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key_der)
    .expect("server configuration");
    (cert.pem(), Arc::new(config))
}

/// An HTTPS server answering every request with [`BODY`].
async fn tls_server(config: Arc<rustls::ServerConfig>) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().map(str::to_string);
                let mut reader = BufReader::new(tls);
                let mut line = String::new();
                let mut host = None;
                while reader.read_line(&mut line).await.unwrap_or(0) > 0 {
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("host:") {
                        host = Some(value.trim().to_string());
                    }
                    if line == "\r\n" {
                        if let Ok(mut seen) = record.lock() {
                            seen.sni = sni.clone();
                            seen.host = host.clone();
                        }
                        let response = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
                            BODY.len()
                        );
                        let _ = reader.get_mut().write_all(response.as_bytes()).await;
                        let _ = reader.get_mut().shutdown().await;
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    (addr, seen)
}

/// Waits until the target of `job` is `Up`, and panics with its last
/// error if it is not within [`WAIT`]. One look could catch a target that
/// verifies fine `Down`, after a scrape that timed out (see `Scrapes`).
async fn wait_up(manager: &scrape::ScrapeManager, job: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let target = manager
            .targets()
            .active
            .into_iter()
            .find(|t| t.scrape_pool == job)
            .map(|t| (t.health, t.last_error));
        match target {
            Some((TargetHealth::Up, _)) => return,
            other if Instant::now() > deadline => panic!("{job} not up: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn https_job(job: &str, address: &str, tls: &str) -> String {
    fast_job(
        job,
        address,
        &format!("    scheme: https\n    tls_config:\n{tls}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_name_verifies_and_names_the_server() {
    let (pem, server) = certificate();
    let (addr, seen) = tls_server(server).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).expect("write CA");
    let ca = ca.display().to_string();
    let address = addr.to_string();

    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(&config(&[
            https_job(
                "named",
                &address,
                &format!("      ca_file: {ca}\n      server_name: metrics.internal\n"),
            ),
            https_job("unnamed", &address, &format!("      ca_file: {ca}\n")),
            https_job("insecure", &address, "      insecure_skip_verify: true\n"),
        ]))
        .await;
    let health = |job: &str| {
        manager
            .targets()
            .active
            .iter()
            .find(|t| t.scrape_pool == job)
            .map(|t| (t.health, t.last_error.clone()))
    };
    wait_until(WAIT, "all three scraped", || {
        ["named", "unnamed", "insecure"]
            .iter()
            .all(|job| health(job).is_some_and(|(h, _)| h != TargetHealth::Unknown))
    })
    .await;

    // Verified against the configured name, which also went out as SNI,
    // while the Host header still names the target. A scrape of the fast
    // job can time out on a loaded machine (see `Scrapes`): it leaves the
    // target down until the next and stores up 0 and staleness markers,
    // so the target must come up, and the samples are judged by the
    // successful scrapes.
    wait_up(&manager, "named").await;
    let named = [("job", "named")];
    wait_until(WAIT, "a successful scrape of the named job stored", || {
        store.scrapes(&named).ok().next().is_some()
    })
    .await;
    let scrapes = store.scrapes(&named);
    let value = store.samples("secure_metric", &named);
    assert!(scrapes.steady(&value, 42.0), "{value:?}");
    wait_until(WAIT, "SNI and Host of the named job", || {
        seen.lock().is_ok_and(|s| {
            s.sni.as_deref() == Some("metrics.internal") && s.host.as_deref() == Some(&address)
        })
    })
    .await;

    // Without server_name the certificate does not name 127.0.0.1.
    let (unnamed, error) = health("unnamed").expect("unnamed target");
    assert_eq!(unnamed, TargetHealth::Down);
    assert!(!error.is_empty());
    assert!(
        store
            .samples("secure_metric", &[("job", "unnamed")])
            .is_empty()
    );

    // insecure_skip_verify accepts it.
    wait_up(&manager, "insecure").await;
    let insecure = [("job", "insecure")];
    wait_until(
        WAIT,
        "a successful scrape of the insecure job stored",
        || store.scrapes(&insecure).ok().next().is_some(),
    )
    .await;
    let scrapes = store.scrapes(&insecure);
    let value = store.samples("secure_metric", &insecure);
    assert!(scrapes.steady(&value, 42.0), "{value:?}");
    manager.stop().await;
}
