//! The blackbox prober: blackbox_exporter's `http`, `tcp` and `dns`
//! probers with its metric names (`probe_success`,
//! `probe_duration_seconds`, `probe_http_status_code`,
//! `probe_ssl_earliest_cert_expiry`, ...).
//!
//! A [`Module`] is one entry of blackbox_exporter's `modules:` map as plain
//! values (the `server` crate reads the YAML). [`probe`] runs a module
//! against a target within a time limit and writes the probe's metrics
//! into a buffer; a failed or timed-out probe is `probe_success 0` with
//! whatever was measured before it failed, never an error.
//!
//! TLS goes through rustls with a verifier that records the peer's chain
//! and the protocol version, so the certificate metrics describe the
//! connection that was actually verified ([`tls`]).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::text::{Family, Kind};

mod dns;
mod http;
mod tcp;
mod tls;

pub use dns::{DnsTransport, dns_type_from_name, rcode_from_name};

/// One module: which prober, with which settings, and its own time limit.
#[derive(Clone, Debug)]
pub struct Module {
    /// The module's time limit, if it sets one; the probe also stops at
    /// the limit its caller passes to [`probe`].
    pub timeout: Option<Duration>,
    pub prober: Prober,
}

/// The prober of a module and its settings.
#[derive(Clone, Debug)]
pub enum Prober {
    Http(Box<HttpProbe>),
    Tcp(TcpProbe),
    Dns(DnsProbe),
}

/// Which address family to try first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpProtocol {
    Ip4,
    Ip6,
}

/// How a target's host name is resolved (blackbox_exporter's
/// `preferred_ip_protocol` and `ip_protocol_fallback`).
#[derive(Clone, Copy, Debug)]
pub struct IpOptions {
    pub preferred: IpProtocol,
    /// Use the other family when the preferred one has no address.
    pub fallback: bool,
}

impl IpOptions {
    /// blackbox_exporter's defaults: IPv6 first, falling back to IPv4.
    pub fn blackbox_defaults() -> IpOptions {
        IpOptions {
            preferred: IpProtocol::Ip6,
            fallback: true,
        }
    }
}

/// TLS settings of a probe (`tls_config`).
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Accept any certificate (the chain is still recorded).
    pub insecure_skip_verify: bool,
    /// PEM certificates to trust instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The name to verify the certificate against instead of the target's
    /// host (also sent as SNI by the TCP prober).
    pub server_name: Option<String>,
}

/// A header check: fail when `regexp` matches (or does not match) a
/// header's value.
#[derive(Clone, Debug)]
pub struct HeaderMatch {
    pub header: String,
    pub regexp: Regex,
    /// Whether a missing header passes the check.
    pub allow_missing: bool,
}

/// The `http` prober's settings.
#[derive(Clone, Debug)]
pub struct HttpProbe {
    /// Accepted status codes; empty means 2xx.
    pub valid_status_codes: Vec<u16>,
    /// Accepted versions (`HTTP/1.1`, `HTTP/2.0`); empty means any.
    pub valid_http_versions: Vec<String>,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub follow_redirects: bool,
    pub fail_if_ssl: bool,
    pub fail_if_not_ssl: bool,
    pub fail_if_body_matches_regexp: Vec<Regex>,
    pub fail_if_body_not_matches_regexp: Vec<Regex>,
    pub fail_if_header_matches: Vec<HeaderMatch>,
    pub fail_if_header_not_matches: Vec<HeaderMatch>,
    pub tls: TlsOptions,
    pub ip: IpOptions,
    /// Largest body read; a larger body fails the probe. `None`: no limit.
    pub body_size_limit: Option<u64>,
}

impl HttpProbe {
    /// blackbox_exporter's defaults: `GET`, 2xx, redirects followed.
    pub fn blackbox_defaults() -> HttpProbe {
        HttpProbe {
            valid_status_codes: Vec::new(),
            valid_http_versions: Vec::new(),
            method: "GET".to_string(),
            headers: Vec::new(),
            body: None,
            follow_redirects: true,
            fail_if_ssl: false,
            fail_if_not_ssl: false,
            fail_if_body_matches_regexp: Vec::new(),
            fail_if_body_not_matches_regexp: Vec::new(),
            fail_if_header_matches: Vec::new(),
            fail_if_header_not_matches: Vec::new(),
            tls: TlsOptions::default(),
            ip: IpOptions::blackbox_defaults(),
            body_size_limit: None,
        }
    }
}

/// One step of a TCP conversation.
#[derive(Clone, Debug)]
pub struct QueryResponse {
    /// Read lines until one matches; the probe fails at end of input.
    pub expect: Option<Regex>,
    /// Then send this text followed by a newline.
    pub send: Option<String>,
    /// Then switch the connection to TLS.
    pub starttls: bool,
}

/// The `tcp` prober's settings.
#[derive(Clone, Debug)]
pub struct TcpProbe {
    /// Start TLS right after connecting.
    pub tls: bool,
    pub tls_config: TlsOptions,
    pub query_response: Vec<QueryResponse>,
    pub ip: IpOptions,
}

/// The `dns` prober's settings.
#[derive(Clone, Debug)]
pub struct DnsProbe {
    pub query_name: String,
    /// The numeric RR type (1 for `A`, 28 for `AAAA`, ...).
    pub query_type: u16,
    pub transport: DnsTransport,
    /// Accepted response codes (numeric); empty means `NOERROR` only.
    pub valid_rcodes: Vec<u8>,
    pub recursion_desired: bool,
    pub ip: IpOptions,
}

/// The metrics of one probe, gathered as the probe goes so that a probe
/// cut short by its time limit still reports what it measured.
#[derive(Default)]
pub(crate) struct ProbeMetrics {
    families: Vec<MetricFamily>,
}

struct MetricFamily {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl ProbeMetrics {
    /// Sets a gauge without labels (replacing an earlier value).
    pub(crate) fn gauge(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.set(name, help, Vec::new(), value);
    }

    /// Sets a labelled gauge sample (replacing one with the same labels).
    pub(crate) fn set(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
        value: f64,
    ) {
        let family = match self.families.iter_mut().position(|f| f.name == name) {
            Some(i) => &mut self.families[i],
            None => {
                self.families.push(MetricFamily {
                    name,
                    help,
                    kind: Kind::Gauge,
                    samples: Vec::new(),
                });
                let last = self.families.len() - 1;
                &mut self.families[last]
            }
        };
        match family.samples.iter_mut().find(|(l, _)| *l == labels) {
            Some(sample) => sample.1 = value,
            None => family.samples.push((labels, value)),
        }
    }

    /// Adds to a labelled gauge sample (for phase durations).
    pub(crate) fn add(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
        value: f64,
    ) {
        let current = self
            .families
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.samples.iter().find(|(l, _)| *l == labels))
            .map_or(0.0, |s| s.1);
        self.set(name, help, labels, current + value);
    }

    fn write(&self, out: &mut String) {
        for family in &self.families {
            let mut f = Family::new(out, family.name, family.help, family.kind);
            for (labels, value) in &family.samples {
                let pairs: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                f.sample(&pairs, *value);
            }
        }
    }
}

/// Runs `module` against `target` for at most `limit` (or the module's own
/// shorter timeout) and writes blackbox_exporter's metrics into `out`.
/// Returns whether the probe succeeded.
pub async fn probe(module: &Module, target: &str, limit: Duration, out: &mut String) -> bool {
    let limit = match module.timeout {
        Some(t) if t < limit => t,
        _ => limit,
    };
    let started = Instant::now();
    let mut metrics = ProbeMetrics::default();
    let run = async {
        match &module.prober {
            Prober::Http(p) => http::probe(p, target, &mut metrics).await,
            Prober::Tcp(p) => tcp::probe(p, target, &mut metrics).await,
            Prober::Dns(p) => dns::probe(p, target, &mut metrics).await,
        }
    };
    let success = match tokio::time::timeout(limit, run).await {
        Ok(success) => success,
        Err(_) => {
            tracing::debug!(target, "probe timed out after {limit:?}");
            false
        }
    };
    metrics.write(out);
    crate::text::single(
        out,
        "probe_duration_seconds",
        "Seconds the probe took.",
        Kind::Gauge,
        started.elapsed().as_secs_f64(),
    );
    crate::text::single(
        out,
        "probe_success",
        "Whether the probe succeeded.",
        Kind::Gauge,
        if success { 1.0 } else { 0.0 },
    );
    success
}

/// Resolves `host` as blackbox_exporter does (preferred family first,
/// then the other if allowed) and records `probe_dns_lookup_time_seconds`,
/// `probe_ip_protocol` and `probe_ip_addr_hash`.
pub(crate) async fn resolve(
    host: &str,
    ip: IpOptions,
    metrics: &mut ProbeMetrics,
) -> Option<IpAddr> {
    let started = Instant::now();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let chosen = match host.parse::<IpAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => match tokio::net::lookup_host((host, 0)).await {
            Ok(addrs) => {
                let addrs: Vec<IpAddr> = addrs.map(|a: SocketAddr| a.ip()).collect();
                let wanted = |a: &&IpAddr| match ip.preferred {
                    IpProtocol::Ip4 => a.is_ipv4(),
                    IpProtocol::Ip6 => a.is_ipv6(),
                };
                addrs
                    .iter()
                    .find(wanted)
                    .or_else(|| if ip.fallback { addrs.first() } else { None })
                    .copied()
            }
            Err(e) => {
                tracing::debug!(host, error = %e, "resolving the probe target failed");
                None
            }
        },
    };
    metrics.gauge(
        "probe_dns_lookup_time_seconds",
        "Seconds the probe spent resolving the target's name.",
        started.elapsed().as_secs_f64(),
    );
    let addr = chosen?;
    metrics.gauge(
        "probe_ip_protocol",
        "The IP protocol of the probe (4 or 6).",
        if addr.is_ipv4() { 4.0 } else { 6.0 },
    );
    metrics.gauge(
        "probe_ip_addr_hash",
        "A hash of the probed IP address, to notice when it changes.",
        f64::from(model::hash::fnv1a_32(addr.to_string().as_bytes())),
    );
    Some(addr)
}

/// Splits `host:port` (`[v6]:port` too), with `default_port` when there is
/// no port.
pub(crate) fn split_host_port(target: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host.to_string(), port.parse().ok()?)),
            None if after.is_empty() => Some((host.to_string(), default_port?)),
            None => None,
        };
    }
    match target.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((host, _)) if host.contains(':') => Some((target.to_string(), default_port?)),
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((target.to_string(), default_port?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("a:80", None), Some(("a".into(), 80)));
        assert_eq!(split_host_port("[::1]:53", None), Some(("::1".into(), 53)));
        assert_eq!(split_host_port("::1", Some(53)), Some(("::1".into(), 53)));
        assert_eq!(split_host_port("a", Some(53)), Some(("a".into(), 53)));
        assert_eq!(split_host_port("a", None), None);
        assert_eq!(split_host_port("a:x", None), None);
    }
}
