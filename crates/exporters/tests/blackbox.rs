//! The blackbox probers against real servers on loopback: an HTTP server
//! (axum), a TLS server with a self-signed certificate whose expiry is
//! known, a line-based TCP server, a DNS server answering over UDP and
//! TCP, a closed port and a server that never answers.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, get};
use exporters::blackbox::{
    DnsProbe, DnsTransport, HeaderMatch, HttpProbe, IpOptions, IpProtocol, Module, Prober,
    QueryResponse, TcpProbe, TlsOptions, probe,
};
use regex::Regex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

/// 2031-01-02T00:00:00Z, the test certificate's `notAfter`.
const CERT_EXPIRY: f64 = 1_925_078_400.0;

const LIMIT: Duration = Duration::from_secs(5);

fn ip4() -> IpOptions {
    IpOptions {
        preferred: IpProtocol::Ip4,
        fallback: false,
    }
}

/// Runs a probe and returns its samples keyed by `name{labels}`.
async fn run(module: &Module, target: &str) -> BTreeMap<String, f64> {
    let mut out = String::new();
    // The outer bound only keeps a broken test from hanging.
    tokio::time::timeout(
        Duration::from_secs(20),
        probe(module, target, LIMIT, &mut out),
    )
    .await
    .expect("probe returned");
    let mut samples = BTreeMap::new();
    for entry in model::exposition::Parser::new(out.as_bytes(), model::exposition::Format::Text) {
        if let model::exposition::Entry::Sample {
            name,
            labels,
            value,
            ..
        } = entry.unwrap_or_else(|e| panic!("{e} in\n{out}"))
        {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let key = if labels.is_empty() {
                name.to_string()
            } else {
                format!("{name}{{{}}}", labels.join(","))
            };
            samples.insert(key, value);
        }
    }
    samples
}

fn http_module(p: HttpProbe) -> Module {
    Module {
        timeout: None,
        prober: Prober::Http(Box::new(p)),
    }
}

fn http_defaults() -> HttpProbe {
    let mut p = HttpProbe::blackbox_defaults();
    p.ip = ip4();
    p
}

async fn echo(method: Method, headers: HeaderMap, body: String) -> impl IntoResponse {
    let key = headers.get("x-key").and_then(|v| v.to_str().ok());
    if method == Method::POST && key == Some("k") && body == "ping" {
        (StatusCode::OK, "pong")
    } else {
        (StatusCode::BAD_REQUEST, "no")
    }
}

async fn http_server() -> SocketAddr {
    let app = Router::new()
        .route(
            "/ok",
            get(|| async { ([("x-test", "yes")], "hello osprey") }),
        )
        .route("/redirect", get(|| async { Redirect::to("/ok") }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route("/echo", any(echo));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn http_success_and_its_metrics() {
    let addr = http_server().await;
    let m = run(&http_module(http_defaults()), &format!("http://{addr}/ok")).await;
    assert_eq!(m["probe_success"], 1.0);
    assert_eq!(m["probe_http_status_code"], 200.0);
    assert_eq!(m["probe_http_content_length"], 12.0);
    assert_eq!(m["probe_http_uncompressed_body_length"], 12.0);
    assert_eq!(m["probe_http_redirects"], 0.0);
    assert_eq!(m["probe_http_ssl"], 0.0);
    assert_eq!(m["probe_http_version"], 1.1);
    assert_eq!(m["probe_ip_protocol"], 4.0);
    assert_eq!(m["probe_failed_due_to_regex"], 0.0);
    assert!(m["probe_duration_seconds"] > 0.0);
    for phase in ["resolve", "processing", "transfer"] {
        assert!(m.contains_key(&format!("probe_http_duration_seconds{{phase={phase}}}")));
    }
    // A target without a scheme is plain HTTP.
    let m = run(&http_module(http_defaults()), &format!("{addr}/ok")).await;
    assert_eq!(m["probe_success"], 1.0);
}

#[tokio::test]
async fn http_status_codes_and_redirects() {
    let addr = http_server().await;
    let m = run(
        &http_module(http_defaults()),
        &format!("http://{addr}/missing"),
    )
    .await;
    assert_eq!(
        (m["probe_success"], m["probe_http_status_code"]),
        (0.0, 404.0)
    );

    let mut p = http_defaults();
    p.valid_status_codes = vec![404];
    let m = run(&http_module(p), &format!("http://{addr}/missing")).await;
    assert_eq!(m["probe_success"], 1.0);

    let m = run(
        &http_module(http_defaults()),
        &format!("http://{addr}/redirect"),
    )
    .await;
    assert_eq!(m["probe_success"], 1.0);
    assert_eq!(m["probe_http_redirects"], 1.0);
    assert_eq!(m["probe_http_status_code"], 200.0);

    let mut p = http_defaults();
    p.http.follow_redirects = false;
    let m = run(&http_module(p), &format!("http://{addr}/redirect")).await;
    assert_eq!(
        (m["probe_success"], m["probe_http_status_code"]),
        (0.0, 303.0)
    );

    let mut p = http_defaults();
    p.valid_http_versions = vec!["HTTP/2.0".into()];
    let m = run(&http_module(p), &format!("http://{addr}/ok")).await;
    assert_eq!(m["probe_success"], 0.0);

    let mut p = http_defaults();
    p.fail_if_not_ssl = true;
    let m = run(&http_module(p), &format!("http://{addr}/ok")).await;
    assert_eq!(m["probe_success"], 0.0);
}

#[tokio::test]
async fn http_method_headers_and_body() {
    let addr = http_server().await;
    let mut p = http_defaults();
    p.method = "POST".into();
    p.headers = vec![("X-Key".into(), "k".into())];
    p.body = Some("ping".into());
    let m = run(&http_module(p.clone()), &format!("http://{addr}/echo")).await;
    assert_eq!(
        (m["probe_success"], m["probe_http_status_code"]),
        (1.0, 200.0)
    );
    p.headers.clear();
    let m = run(&http_module(p), &format!("http://{addr}/echo")).await;
    assert_eq!(
        (m["probe_success"], m["probe_http_status_code"]),
        (0.0, 400.0)
    );
}

#[tokio::test]
async fn http_body_and_header_regexes() {
    let addr = http_server().await;
    let target = format!("http://{addr}/ok");
    let check = |p: HttpProbe| {
        let target = target.clone();
        async move {
            let m = run(&http_module(p), &target).await;
            (m["probe_success"], m["probe_failed_due_to_regex"])
        }
    };
    let mut p = http_defaults();
    p.fail_if_body_not_matches_regexp = vec![Regex::new("osprey").unwrap()];
    assert_eq!(check(p).await, (1.0, 0.0));
    let mut p = http_defaults();
    p.fail_if_body_matches_regexp = vec![Regex::new("hel+o").unwrap()];
    assert_eq!(check(p).await, (0.0, 1.0));
    let mut p = http_defaults();
    p.fail_if_header_not_matches = vec![HeaderMatch {
        header: "X-Test".into(),
        regexp: Regex::new("^yes$").unwrap(),
        allow_missing: false,
    }];
    assert_eq!(check(p).await, (1.0, 0.0));
    let mut p = http_defaults();
    p.fail_if_header_matches = vec![HeaderMatch {
        header: "X-Test".into(),
        regexp: Regex::new("y").unwrap(),
        allow_missing: false,
    }];
    assert_eq!(check(p).await, (0.0, 1.0));
    let mut p = http_defaults();
    p.fail_if_header_not_matches = vec![HeaderMatch {
        header: "X-Absent".into(),
        regexp: Regex::new(".").unwrap(),
        allow_missing: true,
    }];
    assert_eq!(check(p).await, (1.0, 0.0));
}

/// A self-signed certificate for `localhost` expiring at [`CERT_EXPIRY`],
/// as (PEM, rustls server configuration).
fn self_signed() -> (String, Arc<rustls::ServerConfig>) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2031, 1, 2);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key_der)
    .unwrap();
    (cert.pem(), Arc::new(config))
}

/// A TLS server answering a request with `200 secure`, or a `PING` line
/// with `PONG`, then closing the connection.
async fn tls_server(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut reader = BufReader::new(tls);
                let mut line = String::new();
                while reader.read_line(&mut line).await.unwrap_or(0) > 0 {
                    if line == "\r\n" {
                        let _ = reader
                            .get_mut()
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure")
                            .await;
                        let _ = reader.get_mut().shutdown().await;
                        return;
                    }
                    if line == "PING\n" {
                        let _ = reader.get_mut().write_all(b"PONG\n").await;
                        let _ = reader.get_mut().shutdown().await;
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_with_a_known_certificate_expiry() {
    let (pem, config) = self_signed();
    let addr = tls_server(config).await;
    let target = format!("https://localhost:{}/", addr.port());

    let mut p = http_defaults();
    p.tls = TlsOptions {
        ca_pem: Some(pem.clone().into_bytes()),
        ..TlsOptions::default()
    };
    let m = run(&http_module(p), &target).await;
    assert_eq!(m["probe_success"], 1.0, "{m:?}");
    assert_eq!(m["probe_http_ssl"], 1.0);
    assert_eq!(m["probe_ssl_earliest_cert_expiry"], CERT_EXPIRY);
    assert_eq!(
        m["probe_ssl_last_chain_expiry_timestamp_seconds"],
        CERT_EXPIRY
    );
    assert_eq!(m["probe_tls_version_info{version=TLS 1.3}"], 1.0);
    let info = m
        .keys()
        .find(|k| k.starts_with("probe_ssl_last_chain_info{"))
        .expect("chain info");
    assert!(info.contains("subjectalternative=localhost"), "{info}");
    let fingerprint = info
        .split("fingerprint_sha256=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap();
    assert_eq!(fingerprint.len(), 64);

    // The system roots do not trust a self-signed certificate.
    let m = run(&http_module(http_defaults()), &target).await;
    assert_eq!(m["probe_success"], 0.0);
    assert_eq!(m["probe_http_status_code"], 0.0);

    let mut p = http_defaults();
    p.tls.insecure_skip_verify = true;
    let m = run(&http_module(p), &target).await;
    assert_eq!(m["probe_success"], 1.0);
    assert_eq!(m["probe_ssl_earliest_cert_expiry"], CERT_EXPIRY);

    // The certificate names `localhost`, not the address.
    let mut p = http_defaults();
    p.tls.ca_pem = Some(pem.into_bytes());
    let m = run(
        &http_module(p),
        &format!("https://127.0.0.1:{}/", addr.port()),
    )
    .await;
    assert_eq!(m["probe_success"], 0.0);
}

fn tcp_module(p: TcpProbe) -> Module {
    Module {
        timeout: None,
        prober: Prober::Tcp(p),
    }
}

#[tokio::test]
async fn tcp_with_tls_and_a_conversation() {
    let (pem, config) = self_signed();
    let addr = tls_server(config).await;
    let p = TcpProbe {
        tls: true,
        tls_config: TlsOptions {
            ca_pem: Some(pem.into_bytes()),
            ..TlsOptions::default()
        },
        query_response: vec![
            QueryResponse {
                expect: None,
                send: Some("PING".into()),
                starttls: false,
            },
            QueryResponse {
                expect: Some(Regex::new("^PONG$").unwrap()),
                send: None,
                starttls: false,
            },
        ],
        ip: ip4(),
    };
    let target = format!("localhost:{}", addr.port());
    let m = run(&tcp_module(p.clone()), &target).await;
    assert_eq!(m["probe_success"], 1.0, "{m:?}");
    assert_eq!(m["probe_ssl_earliest_cert_expiry"], CERT_EXPIRY);
    assert_eq!(m["probe_tls_version_info{version=TLS 1.3}"], 1.0);

    let mut failing = p;
    failing.query_response[1].expect = Some(Regex::new("^NOPE$").unwrap());
    let m = run(&tcp_module(failing), &target).await;
    assert_eq!(
        (m["probe_success"], m["probe_failed_due_to_regex"]),
        (0.0, 1.0)
    );
}

/// A plain line server: greets with `220 ready`, then answers `STARTTLS`
/// by switching to TLS and `PING` with `PONG`.
async fn starttls_server(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = stream.write_all(b"220 ready\r\n").await;
                let mut buf = [0u8; 10];
                // "STARTTLS\n" is 9 bytes.
                if stream.read_exact(&mut buf[..9]).await.is_err() {
                    return;
                }
                let _ = stream.write_all(b"220 go ahead\r\n").await;
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut reader = BufReader::new(tls);
                let mut line = String::new();
                while reader.read_line(&mut line).await.unwrap_or(0) > 0 {
                    if line == "PING\n" {
                        let _ = reader.get_mut().write_all(b"PONG\n").await;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn tcp_starttls() {
    let (pem, config) = self_signed();
    let addr = starttls_server(config).await;
    let step = |expect: Option<&str>, send: Option<&str>, starttls: bool| QueryResponse {
        expect: expect.map(|e| Regex::new(e).unwrap()),
        send: send.map(str::to_string),
        starttls,
    };
    let p = TcpProbe {
        tls: false,
        tls_config: TlsOptions {
            ca_pem: Some(pem.into_bytes()),
            ..TlsOptions::default()
        },
        query_response: vec![
            step(Some("^220 ready"), Some("STARTTLS"), false),
            step(Some("^220 go ahead"), None, true),
            step(None, Some("PING"), false),
            step(Some("^PONG$"), None, false),
        ],
        ip: ip4(),
    };
    let m = run(&tcp_module(p), &format!("localhost:{}", addr.port())).await;
    assert_eq!(m["probe_success"], 1.0, "{m:?}");
    assert_eq!(m["probe_ssl_earliest_cert_expiry"], CERT_EXPIRY);
}

#[tokio::test]
async fn closed_port_fails_every_prober() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let m = run(
        &http_module(http_defaults()),
        &format!("http://127.0.0.1:{port}/"),
    )
    .await;
    assert_eq!(
        (m["probe_success"], m["probe_http_status_code"]),
        (0.0, 0.0)
    );
    let p = TcpProbe {
        tls: false,
        tls_config: TlsOptions::default(),
        query_response: Vec::new(),
        ip: ip4(),
    };
    let m = run(&tcp_module(p), &format!("127.0.0.1:{port}")).await;
    assert_eq!(m["probe_success"], 0.0);
    assert_eq!(m["probe_ip_protocol"], 4.0);
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds connections without answering.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut module = http_module(http_defaults());
    module.timeout = Some(Duration::from_millis(300));
    let m = run(&module, &format!("http://{addr}/")).await;
    assert_eq!(m["probe_success"], 0.0);
    // Measured before the limit cut the probe short.
    assert_eq!(m["probe_ip_protocol"], 4.0);
}

/// A DNS response to `query` with the given rcode and one answer record.
fn dns_response(query: &[u8], rcode: u8) -> Vec<u8> {
    let mut r = query.to_vec();
    r[2] = 0x81; // QR, RD
    r[3] = 0x80 | rcode; // RA, rcode
    r[6] = 0;
    r[7] = u8::from(rcode == 0); // one answer when NOERROR
    if rcode == 0 {
        // Name pointer to the question, type A, class IN, TTL 60, 4 bytes.
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
    }
    r
}

/// Answers `ok.test.` with NOERROR and anything else with NXDOMAIN, over
/// UDP and TCP on the same port.
async fn dns_server() -> SocketAddr {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let answer = |q: &[u8]| {
        let ok = q.windows(7).any(|w| w == b"\x02ok\x04tes");
        dns_response(q, if ok { 0 } else { 3 })
    };
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let _ = udp.send_to(&answer(&buf[..n]), from).await;
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).await.is_err() {
                continue;
            }
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if s.read_exact(&mut q).await.is_err() {
                continue;
            }
            let r = answer(&q);
            let mut framed = (r.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&r);
            let _ = s.write_all(&framed).await;
        }
    });
    addr
}

fn dns_module(name: &str, transport: DnsTransport, valid_rcodes: Vec<u8>) -> Module {
    Module {
        timeout: None,
        prober: Prober::Dns(DnsProbe {
            query_name: name.into(),
            query_type: 1,
            transport,
            valid_rcodes,
            recursion_desired: true,
            ip: ip4(),
        }),
    }
}

#[tokio::test]
async fn dns_over_udp_and_tcp() {
    let addr = dns_server().await;
    let target = addr.to_string();
    for transport in [DnsTransport::Udp, DnsTransport::Tcp] {
        let m = run(&dns_module("ok.test", transport, vec![]), &target).await;
        assert_eq!(m["probe_success"], 1.0, "{transport:?} {m:?}");
        assert_eq!(m["probe_dns_answer_rrs"], 1.0);
        assert_eq!(m["probe_dns_query_succeeded"], 1.0);
        let m = run(&dns_module("missing.test", transport, vec![]), &target).await;
        assert_eq!((m["probe_success"], m["probe_dns_answer_rrs"]), (0.0, 0.0));
        let m = run(&dns_module("missing.test", transport, vec![3]), &target).await;
        assert_eq!(m["probe_success"], 1.0);
    }
}
