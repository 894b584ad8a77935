//! The built-in exporters' settings: the osprey config's `exporters:`
//! section and blackbox_exporter's module format (a `blackbox.yml`, or
//! `exporters: {blackbox: {modules: ...}}`).
//!
//! A [`Module`] is one entry of blackbox_exporter's `modules:` map as plain
//! values, regexes compiled and CA files read, so a module that loaded is
//! one the prober can run. The `http` prober's client settings are
//! blackbox_exporter's inline `http_client_config`: Prometheus's
//! [`HttpClientConfig`] (authentication, proxies, redirects, HTTP/2,
//! `tls_config`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use regex::Regex;
use yaml::Node;

use crate::ConfigError;
use crate::decode::{Decoder, Field};
use crate::http::{self, HttpClientConfig, TlsConfig, TlsVersion};

/// The `exporters:` section.
#[derive(Clone, Debug, Default)]
pub struct ExportersConfig {
    /// `blackbox.modules`; `None` when the section names none, which means
    /// the default modules ([`default_modules`]).
    pub blackbox_modules: Option<Modules>,
}

impl ExportersConfig {
    /// The blackbox modules in effect.
    pub fn modules(&self) -> Modules {
        self.blackbox_modules
            .clone()
            .unwrap_or_else(default_modules)
    }
}

/// Blackbox modules by name.
pub type Modules = BTreeMap<String, Module>;

/// One module: which prober, with which settings, and its own time limit.
#[derive(Clone, Debug)]
pub struct Module {
    /// The module's time limit, if it sets one; the probe also stops at
    /// the limit its caller passes.
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

/// TLS settings of a probe, files read.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Accept any certificate (the chain is still recorded).
    pub insecure_skip_verify: bool,
    /// PEM certificates to trust instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The name to verify the certificate against instead of the target's
    /// host (also sent as SNI by the TCP prober).
    pub server_name: Option<String>,
    /// A client certificate followed by its key, as PEM.
    pub identity_pem: Option<Vec<u8>>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

impl TlsOptions {
    /// Reads the files a `tls_config` names.
    pub fn from_config(tls: &TlsConfig) -> Result<TlsOptions, String> {
        Ok(TlsOptions {
            insecure_skip_verify: tls.insecure_skip_verify,
            ca_pem: crate::client::ca_pem(tls)?,
            server_name: tls.server_name.clone(),
            identity_pem: crate::client::identity_pem(tls)?,
            min_version: tls.min_version,
            max_version: tls.max_version,
        })
    }
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
    pub fail_if_ssl: bool,
    pub fail_if_not_ssl: bool,
    pub fail_if_body_matches_regexp: Vec<Regex>,
    pub fail_if_body_not_matches_regexp: Vec<Regex>,
    pub fail_if_header_matches: Vec<HeaderMatch>,
    pub fail_if_header_not_matches: Vec<HeaderMatch>,
    /// The client settings (`follow_redirects` among them); its
    /// `tls_config` is also in [`HttpProbe::tls`] with the files read.
    pub http: HttpClientConfig,
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
            fail_if_ssl: false,
            fail_if_not_ssl: false,
            fail_if_body_matches_regexp: Vec::new(),
            fail_if_body_not_matches_regexp: Vec::new(),
            fail_if_header_matches: Vec::new(),
            fail_if_header_not_matches: Vec::new(),
            http: HttpClientConfig::default(),
            tls: TlsOptions::default(),
            ip: IpOptions::blackbox_defaults(),
            body_size_limit: None,
        }
    }

    /// Whether redirects are followed.
    pub fn follow_redirects(&self) -> bool {
        self.http.follow_redirects
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

/// DNS over UDP or TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsTransport {
    Udp,
    Tcp,
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

/// The numeric RR type for a name blackbox_exporter accepts (`A`, `AAAA`,
/// `MX`, ...), or `None` for names the prober does not know.
pub fn dns_type_from_name(name: &str) -> Option<u16> {
    Some(match name.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        "CAA" => 257,
        "ANY" => 255,
        _ => return None,
    })
}

/// The numeric response code for its name (`NOERROR`, `NXDOMAIN`, ...).
pub fn rcode_from_name(name: &str) -> Option<u8> {
    Some(match name.to_ascii_uppercase().as_str() {
        "NOERROR" => 0,
        "FORMERR" => 1,
        "SERVFAIL" => 2,
        "NXDOMAIN" => 3,
        "NOTIMP" => 4,
        "REFUSED" => 5,
        "YXDOMAIN" => 6,
        "YXRRSET" => 7,
        "NXRRSET" => 8,
        "NOTAUTH" => 9,
        "NOTZONE" => 10,
        _ => return None,
    })
}

/// blackbox_exporter's two basic example modules.
pub fn default_modules() -> Modules {
    let mut modules = Modules::new();
    modules.insert(
        "http_2xx".to_string(),
        Module {
            timeout: None,
            prober: Prober::Http(Box::new(HttpProbe::blackbox_defaults())),
        },
    );
    modules.insert(
        "tcp_connect".to_string(),
        Module {
            timeout: None,
            prober: Prober::Tcp(TcpProbe {
                tls: false,
                tls_config: TlsOptions::default(),
                query_response: Vec::new(),
                ip: IpOptions::blackbox_defaults(),
            }),
        },
    );
    modules
}

/// Reads a blackbox.yml (blackbox_exporter's format); relative paths are
/// relative to its directory.
pub fn load_blackbox_file(path: &Path) -> Result<Modules, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::file(&name, format!("reading the file: {error}")))?;
    parse_blackbox(&name, &text, path.parent())
}

/// Parses a blackbox.yml's text.
pub fn parse_blackbox(
    name: &str,
    text: &str,
    base_dir: Option<&Path>,
) -> Result<Modules, ConfigError> {
    let root = crate::decode::parse_yaml(name, text)?;
    let decoder = Decoder::new(name, base_dir);
    let mut modules = None;
    for field in decoder.fields(&root, "")? {
        match field.name.as_str() {
            "modules" => modules = Some(decode_modules(&decoder, field.value, &field.path)?),
            _ => return Err(decoder.unknown(&field)),
        }
    }
    Ok(modules.unwrap_or_default())
}

/// The `exporters:` section of an osprey config.
pub fn decode_exporters(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<ExportersConfig, ConfigError> {
    let mut config = ExportersConfig::default();
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "blackbox" => {
                let mut modules = Modules::new();
                for g in decoder.fields(f.value, &f.path)? {
                    match g.name.as_str() {
                        "modules" => modules = decode_modules(decoder, g.value, &g.path)?,
                        _ => return Err(decoder.unknown(&g)),
                    }
                }
                config.blackbox_modules = Some(modules);
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    Ok(config)
}

fn decode_modules(decoder: &Decoder, node: &Node, field: &str) -> Result<Modules, ConfigError> {
    let mut modules = Modules::new();
    for f in decoder.fields(node, field)? {
        let module = decode_module(decoder, f.value, &f.path)?;
        modules.insert(f.name, module);
    }
    Ok(modules)
}

fn decode_module(decoder: &Decoder, node: &Node, field: &str) -> Result<Module, ConfigError> {
    let mut prober_name = None;
    let mut timeout = None;
    let mut sections: BTreeMap<String, Field<'_>> = BTreeMap::new();
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "prober" => prober_name = Some((decoder.string(f.value, &f.path)?, f.value.line)),
            "timeout" => {
                let ms = decoder.duration(f.value, &f.path)?;
                timeout = Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
            }
            "http" | "tcp" | "dns" => {
                sections.insert(f.name.clone(), f);
            }
            "icmp" | "grpc" | "unix" => {
                return Err(decoder.unsupported(&f, "this prober (osprey has http, tcp and dns)"));
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    let Some((prober_name, line)) = prober_name else {
        return Err(decoder.error(node.line, field, "missing prober"));
    };
    let section = |name: &str| sections.get(name).map(|f| (f.value, f.path.clone()));
    let default_path = |name: &str| format!("{field}.{name}");
    let prober = match prober_name.as_str() {
        "http" => {
            let (node, path) = section("http").unwrap_or((&EMPTY, default_path("http")));
            Prober::Http(Box::new(http_probe(decoder, node, &path)?))
        }
        "tcp" => {
            let (node, path) = section("tcp").unwrap_or((&EMPTY, default_path("tcp")));
            Prober::Tcp(tcp_probe(decoder, node, &path)?)
        }
        "dns" => {
            let Some((node, path)) = section("dns") else {
                return Err(decoder.error(
                    node.line,
                    field,
                    "the dns prober needs a dns section with query_name",
                ));
            };
            Prober::Dns(dns_probe(decoder, node, &path)?)
        }
        other => {
            return Err(decoder.error(
                line,
                &format!("{field}.prober"),
                format!("prober {other:?} is not supported (osprey has http, tcp and dns)"),
            ));
        }
    };
    Ok(Module { timeout, prober })
}

/// An empty mapping, for a prober section that is absent.
static EMPTY: Node = Node {
    line: 0,
    value: yaml::NodeValue::Null,
};

fn regex(decoder: &Decoder, node: &Node, field: &str) -> Result<Regex, ConfigError> {
    let pattern = decoder.string(node, field)?;
    Regex::new(&pattern).map_err(|error| {
        decoder.error(node.line, field, format!("bad regexp {pattern:?}: {error}"))
    })
}

fn regex_list(decoder: &Decoder, node: &Node, field: &str) -> Result<Vec<Regex>, ConfigError> {
    decoder
        .sequence(node, field)?
        .iter()
        .enumerate()
        .map(|(index, item)| regex(decoder, item, &format!("{field}[{index}]")))
        .collect()
}

fn header_matches(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<Vec<HeaderMatch>, ConfigError> {
    let mut matches = Vec::new();
    for (index, item) in decoder.sequence(node, field)?.iter().enumerate() {
        let path = format!("{field}[{index}]");
        let mut header = None;
        let mut regexp = None;
        let mut allow_missing = false;
        for f in decoder.fields(item, &path)? {
            match f.name.as_str() {
                "header" => header = Some(decoder.string(f.value, &f.path)?),
                "regexp" => regexp = Some(regex(decoder, f.value, &f.path)?),
                "allow_missing" => allow_missing = decoder.bool(f.value, &f.path)?,
                _ => return Err(decoder.unknown(&f)),
            }
        }
        let (Some(header), Some(regexp)) = (header, regexp) else {
            return Err(decoder.error(item.line, &path, "header and regexp must both be set"));
        };
        matches.push(HeaderMatch {
            header,
            regexp,
            allow_missing,
        });
    }
    Ok(matches)
}

fn ip_field(decoder: &Decoder, ip: &mut IpOptions, f: &Field<'_>) -> Result<bool, ConfigError> {
    match f.name.as_str() {
        "preferred_ip_protocol" => match decoder.string(f.value, &f.path)?.as_str() {
            "" | "ip6" => ip.preferred = IpProtocol::Ip6,
            "ip4" => ip.preferred = IpProtocol::Ip4,
            other => {
                return Err(decoder.error(
                    f.value.line,
                    &f.path,
                    format!("preferred_ip_protocol {other:?}: want ip4 or ip6"),
                ));
            }
        },
        "ip_protocol_fallback" => ip.fallback = decoder.bool(f.value, &f.path)?,
        "source_ip_address" => {
            return Err(decoder.unsupported(f, "choosing the source address"));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn tls_options(decoder: &Decoder, node: &Node, field: &str) -> Result<TlsOptions, ConfigError> {
    let tls = http::tls_config(decoder, node, field)?;
    TlsOptions::from_config(&tls).map_err(|message| decoder.error(node.line, field, message))
}

fn http_probe(decoder: &Decoder, node: &Node, field: &str) -> Result<HttpProbe, ConfigError> {
    let mut p = HttpProbe::blackbox_defaults();
    let mut no_follow = None;
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "valid_status_codes" => {
                for (index, item) in decoder.sequence(value, path)?.iter().enumerate() {
                    let item_path = format!("{path}[{index}]");
                    let code = decoder.unsigned(item, &item_path)?;
                    let code = u16::try_from(code)
                        .ok()
                        .filter(|c| (100..600).contains(c))
                        .ok_or_else(|| {
                            decoder.error(
                                item.line,
                                &item_path,
                                format!("invalid status code {code}"),
                            )
                        })?;
                    p.valid_status_codes.push(code);
                }
            }
            "valid_http_versions" => p.valid_http_versions = decoder.string_list(value, path)?,
            "method" => p.method = decoder.string(value, path)?.to_ascii_uppercase(),
            "headers" => p.headers = decoder.string_map(value, path)?.into_iter().collect(),
            "body" => p.body = Some(decoder.string(value, path)?),
            "no_follow_redirects" => no_follow = Some(decoder.bool(value, path)?),
            "fail_if_ssl" => p.fail_if_ssl = decoder.bool(value, path)?,
            "fail_if_not_ssl" => p.fail_if_not_ssl = decoder.bool(value, path)?,
            "fail_if_body_matches_regexp" => {
                p.fail_if_body_matches_regexp = regex_list(decoder, value, path)?
            }
            "fail_if_body_not_matches_regexp" => {
                p.fail_if_body_not_matches_regexp = regex_list(decoder, value, path)?
            }
            "fail_if_header_matches" => {
                p.fail_if_header_matches = header_matches(decoder, value, path)?
            }
            "fail_if_header_not_matches" => {
                p.fail_if_header_not_matches = header_matches(decoder, value, path)?
            }
            "body_size_limit" => {
                p.body_size_limit = Some(decoder.byte_size(value, path)?).filter(|&l| l > 0)
            }
            "compression"
            | "body_file"
            | "skip_resolve_phase_with_proxy"
            | "http_client_config" => {
                return Err(decoder.unsupported(&f, "this http prober setting"));
            }
            _ => {
                if !ip_field(decoder, &mut p.ip, &f)?
                    && !http::decode_field(decoder, &mut p.http, &f)?
                {
                    return Err(decoder.unknown(&f));
                }
            }
        }
    }
    http::validate(decoder, &p.http, node.line, field)?;
    // The deprecated negative form, when the positive one is not set.
    if let Some(no_follow) = no_follow
        && decoder
            .fields(node, field)?
            .iter()
            .all(|f| f.name != "follow_redirects")
    {
        p.http.follow_redirects = !no_follow;
    }
    p.tls = TlsOptions::from_config(&p.http.tls_config)
        .map_err(|message| decoder.error(node.line, &format!("{field}.tls_config"), message))?;
    Ok(p)
}

fn tcp_probe(decoder: &Decoder, node: &Node, field: &str) -> Result<TcpProbe, ConfigError> {
    let mut p = TcpProbe {
        tls: false,
        tls_config: TlsOptions::default(),
        query_response: Vec::new(),
        ip: IpOptions::blackbox_defaults(),
    };
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "tls" => p.tls = decoder.bool(value, path)?,
            "tls_config" => p.tls_config = tls_options(decoder, value, path)?,
            "query_response" => {
                for (index, item) in decoder.sequence(value, path)?.iter().enumerate() {
                    let item_path = format!("{path}[{index}]");
                    let mut step = QueryResponse {
                        expect: None,
                        send: None,
                        starttls: false,
                    };
                    for g in decoder.fields(item, &item_path)? {
                        match g.name.as_str() {
                            "expect" => step.expect = Some(regex(decoder, g.value, &g.path)?),
                            "send" => step.send = Some(decoder.string(g.value, &g.path)?),
                            "starttls" => step.starttls = decoder.bool(g.value, &g.path)?,
                            "expect_bytes" => {
                                return Err(decoder.unsupported(&g, "matching raw bytes"));
                            }
                            _ => return Err(decoder.unknown(&g)),
                        }
                    }
                    p.query_response.push(step);
                }
            }
            _ => {
                if !ip_field(decoder, &mut p.ip, &f)? {
                    return Err(decoder.unknown(&f));
                }
            }
        }
    }
    Ok(p)
}

fn dns_probe(decoder: &Decoder, node: &Node, field: &str) -> Result<DnsProbe, ConfigError> {
    let mut query_name = None;
    let mut query_type = 255;
    let mut transport = DnsTransport::Udp;
    let mut valid_rcodes = Vec::new();
    let mut recursion_desired = true;
    let mut ip = IpOptions::blackbox_defaults();
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "query_name" => query_name = Some(decoder.string(value, path)?),
            "query_type" => {
                let name = decoder.string(value, path)?;
                query_type = dns_type_from_name(&name).ok_or_else(|| {
                    decoder.error(
                        value.line,
                        path,
                        format!("query_type {name:?} is not supported"),
                    )
                })?;
            }
            "transport_protocol" => {
                transport = match decoder.string(value, path)?.as_str() {
                    "" | "udp" => DnsTransport::Udp,
                    "tcp" => DnsTransport::Tcp,
                    other => {
                        return Err(decoder.error(
                            value.line,
                            path,
                            format!("transport_protocol {other:?}: want udp or tcp"),
                        ));
                    }
                }
            }
            "valid_rcodes" => {
                for (name, line) in decoder.string_list_with_lines(value, path)? {
                    let code = rcode_from_name(&name).ok_or_else(|| {
                        decoder.error(line, path, format!("unknown rcode {name:?}"))
                    })?;
                    valid_rcodes.push(code);
                }
            }
            "recursion_desired" => recursion_desired = decoder.bool(value, path)?,
            "query_class" => {
                if !decoder.string(value, path)?.eq_ignore_ascii_case("IN") {
                    return Err(decoder.unsupported(&f, "query classes other than IN"));
                }
            }
            "dns_over_tls"
            | "tls_config"
            | "validate_answer_rrs"
            | "validate_authority_rrs"
            | "validate_additional_rrs" => {
                return Err(decoder.unsupported(&f, "this dns prober setting"));
            }
            _ => {
                if !ip_field(decoder, &mut ip, &f)? {
                    return Err(decoder.unknown(&f));
                }
            }
        }
    }
    let Some(query_name) = query_name.filter(|name| !name.is_empty()) else {
        return Err(decoder.error(node.line, field, "query name must be set for DNS module"));
    };
    Ok(DnsProbe {
        query_name,
        query_type,
        transport,
        valid_rcodes,
        recursion_desired,
        ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blackbox_file_with_every_prober() {
        let text = r#"
modules:
  http_post:
    prober: http
    timeout: 5s
    http:
      method: post
      valid_status_codes: [200, 201]
      headers: {X-Key: k}
      body: ping
      no_follow_redirects: true
      fail_if_body_not_matches_regexp: ["pong"]
      fail_if_header_matches:
        - header: Server
          regexp: "nginx"
          allow_missing: true
      tls_config: {insecure_skip_verify: true, server_name: example.org}
      basic_auth: {username: probe, password: pw}
      preferred_ip_protocol: ip4
  smtp:
    prober: tcp
    tcp:
      query_response:
        - expect: "^220"
        - send: "EHLO osprey"
        - starttls: true
  dns_ok:
    prober: dns
    dns:
      query_name: example.org
      query_type: AAAA
      transport_protocol: tcp
      valid_rcodes: [NOERROR, NXDOMAIN]
"#;
        let modules = parse_blackbox("blackbox.yml", text, None).unwrap();
        assert_eq!(modules.len(), 3);
        let Module {
            timeout,
            prober: Prober::Http(h),
        } = &modules["http_post"]
        else {
            panic!("http_post");
        };
        assert_eq!(*timeout, Some(Duration::from_secs(5)));
        assert_eq!(h.method, "POST");
        assert_eq!(h.valid_status_codes, [200, 201]);
        assert!(!h.follow_redirects());
        assert!(h.tls.insecure_skip_verify);
        assert_eq!(h.tls.server_name.as_deref(), Some("example.org"));
        assert_eq!(h.http.basic_auth.as_ref().unwrap().username, "probe");
        assert_eq!(h.ip.preferred, IpProtocol::Ip4);
        let Prober::Tcp(t) = &modules["smtp"].prober else {
            panic!("smtp");
        };
        assert_eq!(t.query_response.len(), 3);
        assert!(t.query_response[2].starttls);
        let Prober::Dns(d) = &modules["dns_ok"].prober else {
            panic!("dns");
        };
        assert_eq!((d.query_type, d.valid_rcodes.clone()), (28, vec![0, 3]));
        assert_eq!(d.transport, DnsTransport::Tcp);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let cases = [
            (
                "modules:\n  a:\n    prober: http\n    http:\n      methd: GET\n",
                "bb.yml:5: modules.a.http.methd: unknown field",
            ),
            (
                "modules:\n  a:\n    prober: icmp\n",
                "bb.yml:3: modules.a.prober: prober \"icmp\" is not supported",
            ),
            (
                "modules:\n  a:\n    prober: http\n    http:\n      fail_if_body_matches_regexp: ['(']\n",
                "bb.yml:5: modules.a.http.fail_if_body_matches_regexp[0]: bad regexp",
            ),
            (
                "modules:\n  a:\n    prober: http\n    http:\n      tls_config: {ca_file: /nonexistent/ca.pem}\n",
                "bb.yml:5: modules.a.http.tls_config: tls_config.ca_file: reading /nonexistent/ca.pem",
            ),
            (
                "modules:\n  a:\n    prober: dns\n",
                "bb.yml:3: modules.a: the dns prober needs a dns section",
            ),
            (
                "modules:\n  a:\n    prober: http\n    icmp: {}\n",
                "bb.yml:4: modules.a.icmp: not supported by osprey",
            ),
        ];
        for (text, want) in cases {
            let error = parse_blackbox("bb.yml", text, None)
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(want),
                "{text}\n got: {error}\nwant: {want}"
            );
        }
    }

    #[test]
    fn exporters_section_without_modules_means_defaults() {
        let config = ExportersConfig::default();
        let modules = config.modules();
        assert!(modules.contains_key("http_2xx") && modules.contains_key("tcp_connect"));
    }
}
