//! The blackbox prober: blackbox_exporter's `http`, `tcp` and `dns`
//! probers with its metric names (`probe_success`,
//! `probe_duration_seconds`, `probe_http_status_code`,
//! `probe_ssl_earliest_cert_expiry`, ...).
//!
//! A [`Module`] is one entry of blackbox_exporter's `modules:` map as plain
//! values (`config::blackbox` reads the YAML). [`probe`] runs a module
//! against a target within a time limit and writes the probe's metrics
//! into a buffer; a failed or timed-out probe is `probe_success 0` with
//! whatever was measured before it failed, never an error.
//!
//! TLS goes through rustls with a verifier that records the peer's chain
//! and the protocol version, so the certificate metrics describe the
//! connection that was actually verified ([`tls`]).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::text::{Family, Kind};

mod dns;
mod http;
mod tcp;
pub(crate) mod tls;

pub use config::blackbox::{
    DnsProbe, DnsTransport, HeaderMatch, HttpProbe, IpOptions, IpProtocol, Module, Prober,
    QueryResponse, TcpProbe, TlsOptions, dns_type_from_name, rcode_from_name,
};

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
