//! The `tcp` prober: connect, optionally start TLS, then run the module's
//! `query_response` conversation (expect a line, send a line, STARTTLS).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::tls::{self, TlsRecord};
use super::{ProbeMetrics, TcpProbe, TlsOptions, resolve, split_host_port};

const REGEX_HELP: &str = "Whether the probe failed because of a regular expression check.";

/// The connection, before or after TLS.
enum Conn {
    Plain(BufReader<TcpStream>),
    Tls(Box<BufReader<TlsStream<TcpStream>>>),
}

impl Conn {
    async fn read_line(&mut self, line: &mut String) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read_line(line).await,
            Conn::Tls(s) => s.read_line(line).await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.get_mut().write_all(bytes).await,
            Conn::Tls(s) => {
                s.get_mut().write_all(bytes).await?;
                s.get_mut().flush().await
            }
        }
    }
}

async fn start_tls(
    stream: TcpStream,
    host: &str,
    options: &TlsOptions,
    record: &Arc<Mutex<TlsRecord>>,
    m: &mut ProbeMetrics,
) -> Option<TlsStream<TcpStream>> {
    let config = match tls::client_config(options, record.clone(), &[]) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("{e}");
            return None;
        }
    };
    let name = options
        .server_name
        .clone()
        .unwrap_or_else(|| host.to_string());
    let Ok(server_name) = rustls::pki_types::ServerName::try_from(name) else {
        return None;
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let result = connector.connect(server_name, stream).await;
    tls::record_metrics(&record.lock().unwrap_or_else(|e| e.into_inner()), m);
    match result {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(host, error = %e, "TLS handshake failed");
            None
        }
    }
}

pub(crate) async fn probe(p: &TcpProbe, target: &str, m: &mut ProbeMetrics) -> bool {
    m.gauge("probe_failed_due_to_regex", REGEX_HELP, 0.0);
    let Some((host, port)) = split_host_port(target, None) else {
        tracing::debug!(target, "a tcp probe target needs host:port");
        return false;
    };
    let Some(ip) = resolve(&host, p.ip, m).await else {
        return false;
    };
    let stream = match TcpStream::connect((ip, port)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(target, error = %e, "connecting failed");
            return false;
        }
    };
    let record = Arc::new(Mutex::new(TlsRecord::default()));
    let mut conn = if p.tls {
        match start_tls(stream, &host, &p.tls_config, &record, m).await {
            Some(s) => Conn::Tls(Box::new(BufReader::new(s))),
            None => return false,
        }
    } else {
        Conn::Plain(BufReader::new(stream))
    };
    for step in &p.query_response {
        if let Some(expect) = &step.expect {
            let mut matched = false;
            let mut line = String::new();
            loop {
                line.clear();
                match conn.read_line(&mut line).await {
                    Ok(0) => break,
                    Ok(_) => {
                        if expect.is_match(line.trim_end_matches(['\r', '\n'])) {
                            matched = true;
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(target, error = %e, "reading failed");
                        break;
                    }
                }
            }
            if !matched {
                m.gauge("probe_failed_due_to_regex", REGEX_HELP, 1.0);
                return false;
            }
        }
        if let Some(send) = &step.send {
            let mut bytes = send.clone().into_bytes();
            bytes.push(b'\n');
            if let Err(e) = conn.write_all(&bytes).await {
                tracing::debug!(target, error = %e, "sending failed");
                return false;
            }
        }
        if step.starttls {
            let Conn::Plain(reader) = conn else {
                tracing::debug!(target, "starttls on a connection that is TLS already");
                return false;
            };
            // Bytes the server sent after its STARTTLS answer would be lost;
            // a server must not send any before the handshake.
            let stream = reader.into_inner();
            match start_tls(stream, &host, &p.tls_config, &record, m).await {
                Some(s) => conn = Conn::Tls(Box::new(BufReader::new(s))),
                None => return false,
            }
        }
    }
    true
}
