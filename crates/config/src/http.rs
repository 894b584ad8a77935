//! Prometheus's `http_config`: how osprey talks HTTP to anything the
//! config names (scrape targets, Alertmanagers, remote-write receivers,
//! blackbox probe targets, alert-manager receivers).
//!
//! [`HttpClientConfig`] is the shape of Prometheus's
//! `common/config.HTTPClientConfig`, field for field: `basic_auth`,
//! `authorization`, `bearer_token[_file]`, `oauth2`, `tls_config`,
//! `proxy_url`, `no_proxy`, `proxy_from_environment`,
//! `proxy_connect_header`, `follow_redirects`, `enable_http2` and
//! `http_headers`. In `prometheus.yml` its fields sit inline in a scrape
//! config, an Alertmanager entry or a remote-write entry; in
//! `alertmanager.yml` under a receiver's `http_config`. Either way they are
//! read by [`decode_field`], so the rules and messages are the same
//! everywhere. Relative file paths are resolved against the config file's
//! directory when read, as Prometheus does.
//!
//! [`crate::client`] turns a config into a client; this module only reads
//! and checks.

use std::collections::BTreeMap;

use crate::ConfigError;
use crate::decode::{Decoder, Field};

/// The HTTP client settings of one config entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpClientConfig {
    pub basic_auth: Option<BasicAuth>,
    /// The `Authorization` header; `bearer_token[_file]` land here too.
    pub authorization: Option<Authorization>,
    pub oauth2: Option<Box<OAuth2>>,
    pub tls_config: TlsConfig,
    pub proxy: ProxyConfig,
    /// Follow HTTP 3xx redirects (default true).
    pub follow_redirects: bool,
    /// Offer HTTP/2 (default true); `false` speaks HTTP/1.1 only.
    pub enable_http2: bool,
    /// Extra headers, by canonical name.
    pub http_headers: BTreeMap<String, HeaderValues>,
}

impl Default for HttpClientConfig {
    fn default() -> HttpClientConfig {
        HttpClientConfig {
            basic_auth: None,
            authorization: None,
            oauth2: None,
            tls_config: TlsConfig::default(),
            proxy: ProxyConfig::default(),
            follow_redirects: true,
            enable_http2: true,
            http_headers: BTreeMap::new(),
        }
    }
}

/// `basic_auth`. Files are read on every request, so rotated secrets are
/// picked up without a reload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub username_file: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

/// The `Authorization` header: `type` (default `Bearer`) and credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub kind: String,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
}

/// `oauth2`: the client-credentials grant, as Prometheus does it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuth2 {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub scopes: Vec<String>,
    pub token_url: String,
    pub endpoint_params: BTreeMap<String, String>,
    /// How the token endpoint is reached.
    pub tls_config: TlsConfig,
    pub proxy: ProxyConfig,
}

/// `tls_config`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM text of the CA certificates (`ca`); only these are trusted when
    /// set, as in Prometheus.
    pub ca: Option<String>,
    pub ca_file: Option<String>,
    pub cert: Option<String>,
    pub cert_file: Option<String>,
    pub key: Option<String>,
    pub key_file: Option<String>,
    /// The name the server's certificate is checked against and sent as
    /// SNI, instead of the host connected to.
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

impl TlsConfig {
    /// Whether a client certificate is configured.
    pub fn has_client_cert(&self) -> bool {
        self.cert.is_some() || self.cert_file.is_some()
    }
}

/// A TLS protocol version as Prometheus names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn parse(text: &str) -> Option<TlsVersion> {
        Some(match text {
            "TLS10" => TlsVersion::Tls10,
            "TLS11" => TlsVersion::Tls11,
            "TLS12" => TlsVersion::Tls12,
            "TLS13" => TlsVersion::Tls13,
            _ => return None,
        })
    }
}

/// `proxy_url`, `no_proxy`, `proxy_from_environment` and
/// `proxy_connect_header`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    pub proxy_url: Option<String>,
    /// Comma-separated hosts, domains and CIDRs that bypass the proxy.
    pub no_proxy: Option<String>,
    /// Use `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` (default false: no proxy
    /// unless `proxy_url` says so).
    pub from_environment: bool,
    /// Headers sent to the proxy on CONNECT.
    pub connect_headers: BTreeMap<String, HeaderValues>,
}

/// The values of one `http_headers` (or `proxy_connect_header`) entry:
/// plain values, secrets, and files read on every request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderValues {
    pub values: Vec<String>,
    pub secrets: Vec<String>,
    pub files: Vec<String>,
}

/// Headers `http_headers` and `remote_write.headers` may not set: the
/// client and the sender own them (Prometheus's lists).
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-prometheus-scrape-timeout-seconds",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "retry-after",
];

/// Whether a header is one the client or sender owns.
pub fn is_reserved_header(name: &str) -> bool {
    RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

/// Reads `field` into `config` when it is one of the `http_config` fields
/// and says whether it was. Section readers call this for every field they
/// do not know themselves, then [`validate`] at the end.
pub fn decode_field(
    decoder: &Decoder,
    config: &mut HttpClientConfig,
    field: &Field<'_>,
) -> Result<bool, ConfigError> {
    let (value, path) = (field.value, field.path.as_str());
    match field.name.as_str() {
        "basic_auth" => config.basic_auth = Some(basic_auth(decoder, value, path)?),
        "authorization" => {
            if config.authorization.is_some() {
                return Err(decoder.error(
                    field.key.line,
                    path,
                    "at most one of bearer_token, bearer_token_file & authorization must be configured",
                ));
            }
            config.authorization = Some(authorization(decoder, value, path)?)
        }
        "bearer_token" | "bearer_token_file" => {
            if config.authorization.is_some() {
                return Err(decoder.error(
                    field.key.line,
                    path,
                    "at most one of bearer_token, bearer_token_file & authorization must be configured",
                ));
            }
            let text = decoder.string(value, path)?;
            config.authorization = Some(if field.name == "bearer_token" {
                Authorization {
                    kind: "Bearer".to_string(),
                    credentials: Some(text),
                    credentials_file: None,
                }
            } else {
                Authorization {
                    kind: "Bearer".to_string(),
                    credentials: None,
                    credentials_file: Some(decoder.resolve(&text)),
                }
            });
        }
        "oauth2" => config.oauth2 = Some(Box::new(oauth2(decoder, value, path)?)),
        "tls_config" => config.tls_config = tls_config(decoder, value, path)?,
        "follow_redirects" => config.follow_redirects = decoder.bool(value, path)?,
        "enable_http2" => config.enable_http2 = decoder.bool(value, path)?,
        "http_headers" => config.http_headers = headers(decoder, value, path, true)?,
        "proxy_url" | "no_proxy" | "proxy_from_environment" | "proxy_connect_header" => {
            proxy_field(decoder, &mut config.proxy, field)?
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Checks the combinations Prometheus rejects; `line` and `field` name the
/// entry that holds the settings.
pub fn validate(
    decoder: &Decoder,
    config: &HttpClientConfig,
    line: u64,
    field: &str,
) -> Result<(), ConfigError> {
    let auths = [
        config.basic_auth.is_some(),
        config.authorization.is_some(),
        config.oauth2.is_some(),
    ];
    if auths.iter().filter(|set| **set).count() > 1 {
        return Err(decoder.error(
            line,
            field,
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file & authorization must be configured",
        ));
    }
    validate_proxy(decoder, &config.proxy, line, field)
}

fn validate_proxy(
    decoder: &Decoder,
    proxy: &ProxyConfig,
    line: u64,
    field: &str,
) -> Result<(), ConfigError> {
    if proxy.from_environment && proxy.proxy_url.is_some() {
        return Err(decoder.error(
            line,
            field,
            "if proxy_from_environment is configured, proxy_url must not be configured",
        ));
    }
    if proxy.from_environment && proxy.no_proxy.is_some() {
        return Err(decoder.error(
            line,
            field,
            "if proxy_from_environment is configured, no_proxy must not be configured",
        ));
    }
    if proxy.proxy_url.is_none() && proxy.no_proxy.is_some() {
        return Err(decoder.error(
            line,
            field,
            "if no_proxy is configured, proxy_url must also be configured",
        ));
    }
    if !proxy.connect_headers.is_empty() && proxy.proxy_url.is_none() && !proxy.from_environment {
        return Err(decoder.error(
            line,
            field,
            "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured",
        ));
    }
    Ok(())
}

fn proxy_field(
    decoder: &Decoder,
    proxy: &mut ProxyConfig,
    field: &Field<'_>,
) -> Result<(), ConfigError> {
    let (value, path) = (field.value, field.path.as_str());
    match field.name.as_str() {
        "proxy_url" => {
            let url = decoder.string(value, path)?;
            if !url.is_empty() {
                match reqwest::Url::parse(&url) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https" | "socks5") => {}
                    Ok(parsed) => {
                        return Err(decoder.error(
                            value.line,
                            path,
                            format!(
                                "unsupported proxy scheme {:?} (http, https or socks5)",
                                parsed.scheme()
                            ),
                        ));
                    }
                    Err(error) => {
                        return Err(decoder.error(
                            value.line,
                            path,
                            format!("invalid proxy URL {url:?}: {error}"),
                        ));
                    }
                }
                proxy.proxy_url = Some(url);
            }
        }
        "no_proxy" => {
            let text = decoder.string(value, path)?;
            if !text.is_empty() {
                proxy.no_proxy = Some(text);
            }
        }
        "proxy_from_environment" => proxy.from_environment = decoder.bool(value, path)?,
        _ => proxy.connect_headers = headers(decoder, value, path, false)?,
    }
    Ok(())
}

fn basic_auth(decoder: &Decoder, node: &yaml::Node, field: &str) -> Result<BasicAuth, ConfigError> {
    let mut auth = BasicAuth::default();
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "username" => auth.username = decoder.string(f.value, &f.path)?,
            "username_file" => auth.username_file = Some(decoder.path(f.value, &f.path)?),
            "password" => auth.password = Some(decoder.string(f.value, &f.path)?),
            "password_file" => auth.password_file = Some(decoder.path(f.value, &f.path)?),
            "username_ref" | "password_ref" => {
                return Err(decoder.unsupported(&f, "secret references (use the _file form)"));
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    if !auth.username.is_empty() && auth.username_file.is_some() {
        return Err(decoder.error(
            node.line,
            field,
            "at most one of basic_auth username & username_file must be configured",
        ));
    }
    if auth.password.is_some() && auth.password_file.is_some() {
        return Err(decoder.error(
            node.line,
            field,
            "at most one of basic_auth password & password_file must be configured",
        ));
    }
    Ok(auth)
}

fn authorization(
    decoder: &Decoder,
    node: &yaml::Node,
    field: &str,
) -> Result<Authorization, ConfigError> {
    let mut auth = Authorization {
        kind: "Bearer".to_string(),
        credentials: None,
        credentials_file: None,
    };
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "type" => {
                let kind = decoder.string(f.value, &f.path)?;
                if kind.eq_ignore_ascii_case("basic") {
                    return Err(decoder.error(
                        f.value.line,
                        &f.path,
                        "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
                    ));
                }
                if !kind.is_empty() {
                    auth.kind = kind;
                }
            }
            "credentials" => auth.credentials = Some(decoder.string(f.value, &f.path)?),
            "credentials_file" => auth.credentials_file = Some(decoder.path(f.value, &f.path)?),
            "credentials_ref" => {
                return Err(decoder.unsupported(&f, "secret references (use credentials_file)"));
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    if auth.credentials.is_some() && auth.credentials_file.is_some() {
        return Err(decoder.error(
            node.line,
            field,
            "at most one of authorization credentials & credentials_file must be configured",
        ));
    }
    Ok(auth)
}

fn oauth2(decoder: &Decoder, node: &yaml::Node, field: &str) -> Result<OAuth2, ConfigError> {
    let mut config = OAuth2 {
        client_id: String::new(),
        client_secret: None,
        client_secret_file: None,
        scopes: Vec::new(),
        token_url: String::new(),
        endpoint_params: BTreeMap::new(),
        tls_config: TlsConfig::default(),
        proxy: ProxyConfig::default(),
    };
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "client_id" => config.client_id = decoder.string(f.value, &f.path)?,
            "client_secret" => config.client_secret = Some(decoder.string(f.value, &f.path)?),
            "client_secret_file" => {
                config.client_secret_file = Some(decoder.path(f.value, &f.path)?)
            }
            "scopes" => config.scopes = decoder.string_list(f.value, &f.path)?,
            "token_url" => config.token_url = decoder.url(f.value, &f.path)?,
            "endpoint_params" => config.endpoint_params = decoder.string_map(f.value, &f.path)?,
            "tls_config" => config.tls_config = tls_config(decoder, f.value, &f.path)?,
            "proxy_url" | "no_proxy" | "proxy_from_environment" | "proxy_connect_header" => {
                proxy_field(decoder, &mut config.proxy, &f)?
            }
            "client_secret_ref" => {
                return Err(decoder.unsupported(&f, "secret references (use client_secret_file)"));
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    if config.token_url.is_empty() {
        return Err(decoder.error(node.line, field, "oauth2 token_url must be configured"));
    }
    if config.client_secret.is_some() && config.client_secret_file.is_some() {
        return Err(decoder.error(
            node.line,
            field,
            "at most one of oauth2 client_secret & client_secret_file must be configured",
        ));
    }
    validate_proxy(decoder, &config.proxy, node.line, field)?;
    Ok(config)
}

/// Reads a `tls_config` mapping.
pub fn tls_config(
    decoder: &Decoder,
    node: &yaml::Node,
    field: &str,
) -> Result<TlsConfig, ConfigError> {
    let mut tls = TlsConfig::default();
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "ca" => tls.ca = Some(decoder.string(value, path)?),
            "ca_file" => tls.ca_file = Some(decoder.path(value, path)?),
            "cert" => tls.cert = Some(decoder.string(value, path)?),
            "cert_file" => tls.cert_file = Some(decoder.path(value, path)?),
            "key" => tls.key = Some(decoder.string(value, path)?),
            "key_file" => tls.key_file = Some(decoder.path(value, path)?),
            "server_name" => {
                let name = decoder.string(value, path)?;
                if !name.is_empty() {
                    tls.server_name = Some(name);
                }
            }
            "insecure_skip_verify" => tls.insecure_skip_verify = decoder.bool(value, path)?,
            "min_version" | "max_version" => {
                let text = decoder.string(value, path)?;
                let version = TlsVersion::parse(&text).ok_or_else(|| {
                    decoder.error(
                        value.line,
                        path,
                        format!("unknown TLS version {text:?} (TLS10, TLS11, TLS12 or TLS13)"),
                    )
                })?;
                if f.name == "min_version" {
                    tls.min_version = Some(version);
                } else {
                    // rustls speaks TLS 1.2 and 1.3 only; a ceiling below
                    // that could never connect.
                    if version < TlsVersion::Tls12 {
                        return Err(decoder.unsupported(
                            &f,
                            "TLS versions below 1.2 (osprey's TLS stack speaks TLS 1.2 and 1.3)",
                        ));
                    }
                    tls.max_version = Some(version);
                }
            }
            "ca_ref" | "cert_ref" | "key_ref" => {
                return Err(decoder.unsupported(&f, "secret references (use the _file form)"));
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    let both = |a: &Option<String>, b: &Option<String>, what: &str| {
        if a.is_some() && b.is_some() {
            Err(decoder.error(
                node.line,
                field,
                format!("at most one of {what} & {what}_file must be configured"),
            ))
        } else {
            Ok(())
        }
    };
    both(&tls.ca, &tls.ca_file, "ca")?;
    both(&tls.cert, &tls.cert_file, "cert")?;
    both(&tls.key, &tls.key_file, "key")?;
    let has_key = tls.key.is_some() || tls.key_file.is_some();
    if tls.has_client_cert() != has_key {
        return Err(decoder.error(
            node.line,
            field,
            "client certificate and key must both be set (cert or cert_file with key or key_file)",
        ));
    }
    if let (Some(min), Some(max)) = (tls.min_version, tls.max_version)
        && min > max
    {
        return Err(decoder.error(node.line, field, "min_version is greater than max_version"));
    }
    Ok(tls)
}

/// `http_headers` or `proxy_connect_header`: a header name to either a
/// `{values, secrets, files}` mapping (http_headers) or a list of secrets
/// (proxy_connect_header).
fn headers(
    decoder: &Decoder,
    node: &yaml::Node,
    field: &str,
    structured: bool,
) -> Result<BTreeMap<String, HeaderValues>, ConfigError> {
    let mut headers = BTreeMap::new();
    for f in decoder.fields(node, field)? {
        if reqwest::header::HeaderName::from_bytes(f.name.as_bytes()).is_err() {
            return Err(decoder.error(
                f.key.line,
                &f.path,
                format!("invalid header name {:?}", f.name),
            ));
        }
        if structured && is_reserved_header(&f.name) {
            return Err(decoder.error(
                f.key.line,
                &f.path,
                format!("setting header {:?} is not allowed", f.name),
            ));
        }
        let mut values = HeaderValues::default();
        if structured {
            for g in decoder.fields(f.value, &f.path)? {
                match g.name.as_str() {
                    "values" => values.values = decoder.string_list(g.value, &g.path)?,
                    "secrets" => values.secrets = decoder.string_list(g.value, &g.path)?,
                    "files" => {
                        values.files = decoder
                            .string_list(g.value, &g.path)?
                            .iter()
                            .map(|file| decoder.resolve(file))
                            .collect()
                    }
                    _ => return Err(decoder.unknown(&g)),
                }
            }
        } else {
            values.secrets = decoder.string_list(f.value, &f.path)?;
        }
        headers.insert(f.name, values);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn decode(text: &str) -> Result<HttpClientConfig, ConfigError> {
        let root = yaml::parse_document(text).unwrap();
        let decoder = Decoder::new("c.yml", Some(Path::new("/etc/osprey")));
        let mut config = HttpClientConfig::default();
        for field in decoder.fields(&root, "job")? {
            if !decode_field(&decoder, &mut config, &field)? {
                return Err(decoder.unknown(&field));
            }
        }
        validate(&decoder, &config, root.line, "job")?;
        Ok(config)
    }

    #[test]
    fn every_field_of_prometheus_http_config() {
        let config = decode(
            r#"
basic_auth: {username: u, password_file: pw}
tls_config:
  ca_file: ca.pem
  cert: "-----BEGIN CERTIFICATE-----"
  key_file: /keys/k.pem
  server_name: metrics.internal
  min_version: TLS12
  max_version: TLS13
proxy_url: http://proxy:3128
no_proxy: localhost,10.0.0.0/8
proxy_connect_header: {X-Token: [secret]}
follow_redirects: false
enable_http2: false
http_headers:
  X-Scope-OrgID: {values: [team-a]}
  X-Api-Key: {secrets: [s1], files: [key.txt]}
"#,
        )
        .unwrap();
        let auth = config.basic_auth.unwrap();
        assert_eq!(auth.password_file.as_deref(), Some("/etc/osprey/pw"));
        assert_eq!(
            config.tls_config.ca_file.as_deref(),
            Some("/etc/osprey/ca.pem")
        );
        assert_eq!(config.tls_config.key_file.as_deref(), Some("/keys/k.pem"));
        assert_eq!(config.tls_config.min_version, Some(TlsVersion::Tls12));
        assert_eq!(config.proxy.proxy_url.as_deref(), Some("http://proxy:3128"));
        assert_eq!(config.proxy.connect_headers["X-Token"].secrets, ["secret"]);
        assert!(!config.follow_redirects && !config.enable_http2);
        assert_eq!(config.http_headers["X-Scope-OrgID"].values, ["team-a"]);
        assert_eq!(
            config.http_headers["X-Api-Key"].files,
            ["/etc/osprey/key.txt"]
        );
    }

    #[test]
    fn bearer_token_is_an_authorization() {
        let config = decode("bearer_token_file: token\n").unwrap();
        let auth = config.authorization.unwrap();
        assert_eq!(auth.kind, "Bearer");
        assert_eq!(auth.credentials_file.as_deref(), Some("/etc/osprey/token"));
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        let cases = [
            (
                "basic_auth: {username: u}\nbearer_token: t\n",
                "at most one of basic_auth",
            ),
            (
                "bearer_token: t\nauthorization: {credentials: c}\n",
                "at most one of bearer_token",
            ),
            (
                "authorization: {type: Basic}\n",
                "cannot be set to \"basic\"",
            ),
            ("tls_config: {cert_file: c.pem}\n", "must both be set"),
            (
                "tls_config: {ca: x, ca_file: y}\n",
                "at most one of ca & ca_file",
            ),
            ("tls_config: {min_version: TLS9}\n", "unknown TLS version"),
            (
                "tls_config: {max_version: TLS11}\n",
                "not supported by osprey",
            ),
            ("no_proxy: localhost\n", "proxy_url must also be configured"),
            (
                "proxy_url: http://p\nproxy_from_environment: true\n",
                "proxy_url must not be configured",
            ),
            ("proxy_url: ftp://p\n", "unsupported proxy scheme"),
            (
                "http_headers: {Authorization: {values: [x]}}\n",
                "is not allowed",
            ),
            ("oauth2: {client_id: a}\n", "token_url must be configured"),
            ("tls_config: {ca_ref: x}\n", "not supported by osprey"),
            ("tls_config: {cafile: x}\n", "unknown field"),
        ];
        for (text, want) in cases {
            let error = decode(text).expect_err(text).to_string();
            assert!(error.contains(want), "{text}: {error}");
            assert!(error.starts_with("c.yml:"), "{error}");
        }
    }
}
