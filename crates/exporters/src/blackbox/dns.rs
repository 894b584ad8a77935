//! The `dns` prober: one query to the target server over UDP or TCP,
//! checked against the accepted response codes; the answer, authority and
//! additional record counts are reported. The DNS messages are built and
//! read here (RFC 1035 §4): a query is a header and one question, and the
//! checks need only the response header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{DnsProbe, DnsTransport, ProbeMetrics, resolve, split_host_port};

const PHASE_HELP: &str = "Seconds spent in each phase of the DNS query.";

/// A DNS query message for `name`/`qtype`, class IN.
pub(crate) fn build_query(
    id: u16,
    name: &str,
    qtype: u16,
    recursion_desired: bool,
) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&(if recursion_desired { 0x0100u16 } else { 0 }).to_be_bytes());
    // One question, no answer, authority or additional records.
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let len = u8::try_from(label.len()).ok().filter(|&l| l <= 63)?;
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    Some(q)
}

/// The parts of a response header the prober checks.
#[derive(Debug, PartialEq)]
pub(crate) struct ResponseHeader {
    pub id: u16,
    pub rcode: u8,
    pub answers: u16,
    pub authorities: u16,
    pub additionals: u16,
}

pub(crate) fn parse_header(message: &[u8]) -> Option<ResponseHeader> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*message.get(i)?, *message.get(i + 1)?]))
    };
    let flags = word(2)?;
    // The QR bit: this must be a response.
    if flags & 0x8000 == 0 {
        return None;
    }
    Some(ResponseHeader {
        id: word(0)?,
        rcode: (flags & 0x000f) as u8,
        answers: word(6)?,
        authorities: word(8)?,
        additionals: word(10)?,
    })
}

fn phase(m: &mut ProbeMetrics, name: &str, seconds: f64) {
    m.set(
        "probe_dns_duration_seconds",
        PHASE_HELP,
        vec![("phase", name.to_string())],
        seconds,
    );
}

pub(crate) async fn probe(p: &DnsProbe, target: &str, m: &mut ProbeMetrics) -> bool {
    for name in ["resolve", "connect", "request"] {
        phase(m, name, 0.0);
    }
    m.gauge(
        "probe_dns_answer_rrs",
        "Answer records in the response.",
        0.0,
    );
    m.gauge(
        "probe_dns_authority_rrs",
        "Authority records in the response.",
        0.0,
    );
    m.gauge(
        "probe_dns_additional_rrs",
        "Additional records in the response.",
        0.0,
    );
    m.gauge(
        "probe_dns_query_succeeded",
        "Whether a response to the query arrived.",
        0.0,
    );
    let Some((host, port)) = split_host_port(target, Some(53)) else {
        return false;
    };
    let started = Instant::now();
    let Some(ip) = resolve(&host, p.ip, m).await else {
        return false;
    };
    phase(m, "resolve", started.elapsed().as_secs_f64());
    let server = SocketAddr::new(ip, port);
    // The query id only needs to differ between probes; the clock's
    // nanoseconds are enough for that.
    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x5a5a, |d| (d.subsec_nanos() & 0xffff) as u16);
    let Some(query) = build_query(id, &p.query_name, p.query_type, p.recursion_desired) else {
        tracing::debug!(name = %p.query_name, "query name has a label over 63 bytes");
        return false;
    };
    let response = match p.transport {
        DnsTransport::Udp => udp_exchange(server, &query, m).await,
        DnsTransport::Tcp => tcp_exchange(server, &query, m).await,
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(target, error = %e, "DNS query failed");
            return false;
        }
    };
    let Some(header) = parse_header(&response).filter(|h| h.id == id) else {
        tracing::debug!(target, "DNS response malformed or for another query");
        return false;
    };
    m.gauge(
        "probe_dns_query_succeeded",
        "Whether a response to the query arrived.",
        1.0,
    );
    m.gauge(
        "probe_dns_answer_rrs",
        "Answer records in the response.",
        f64::from(header.answers),
    );
    m.gauge(
        "probe_dns_authority_rrs",
        "Authority records in the response.",
        f64::from(header.authorities),
    );
    m.gauge(
        "probe_dns_additional_rrs",
        "Additional records in the response.",
        f64::from(header.additionals),
    );
    if p.valid_rcodes.is_empty() {
        header.rcode == 0
    } else {
        p.valid_rcodes.contains(&header.rcode)
    }
}

async fn udp_exchange(
    server: SocketAddr,
    query: &[u8],
    m: &mut ProbeMetrics,
) -> std::io::Result<Vec<u8>> {
    let started = Instant::now();
    let local: SocketAddr = match server.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    phase(m, "connect", started.elapsed().as_secs_f64());
    let started = Instant::now();
    socket.send(query).await?;
    let mut buf = vec![0u8; 65_535];
    let n = socket.recv(&mut buf).await?;
    buf.truncate(n);
    phase(m, "request", started.elapsed().as_secs_f64());
    Ok(buf)
}

async fn tcp_exchange(
    server: SocketAddr,
    query: &[u8],
    m: &mut ProbeMetrics,
) -> std::io::Result<Vec<u8>> {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(server).await?;
    phase(m, "connect", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let len = u16::try_from(query.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too long"))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    phase(m, "request", started.elapsed().as_secs_f64());
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes() {
        let q = build_query(0x1234, "a.bc.", 1, true).unwrap();
        assert_eq!(
            q,
            [
                0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 2, b'b', b'c', 0, 0, 1, 0,
                1
            ]
        );
        assert!(build_query(1, &"x".repeat(64), 1, true).is_none());
    }

    #[test]
    fn header_parsing() {
        let h = parse_header(&[0, 7, 0x81, 0x83, 0, 1, 0, 2, 0, 3, 0, 4]).unwrap();
        assert_eq!(
            h,
            ResponseHeader {
                id: 7,
                rcode: 3,
                answers: 2,
                authorities: 3,
                additionals: 4
            }
        );
        assert!(parse_header(&[0, 7, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]).is_none());
        assert!(parse_header(&[0, 7]).is_none());
    }
}
