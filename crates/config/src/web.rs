//! The web configuration file (`--web.config.file`): how osprey's own
//! listeners speak TLS and whom they let in.
//!
//! The file is the Prometheus exporter-toolkit format that Prometheus,
//! Alertmanager and node_exporter read (`tls_server_config`,
//! `http_server_config`, `basic_auth_users` with bcrypt hashes,
//! `rate_limit`), so one file can serve all of them. osprey adds keys of
//! its own, which those programs would refuse: `user_roles`,
//! `bearer_tokens`, `trusted_proxy`, `rate_limits` and `audit`
//! (documented in `docs/web-configuration.md`).
//!
//! Files the config names (certificates, keys, client CAs, token files)
//! are read and checked when the file is loaded, so a file that loaded is
//! one a listener can use; the listener re-loads it when it or one of
//! those files changes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use yaml::Node;

use crate::ConfigError;
use crate::decode::Decoder;
use crate::http::TlsVersion;

/// What a principal may do. Ordered: a higher role may do what a lower
/// one may, except that [`Role::Writer`] may only write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Ingestion only (remote write, import, OTLP, pushes, predictions):
    /// for machines that send data and must read nothing.
    Writer,
    /// Read APIs and UI pages.
    Viewer,
    /// Viewer, plus silences, dashboards and ingestion.
    Editor,
    /// Editor, plus reload, TSDB admin, configuration and flags.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Some(match text {
            "writer" => Role::Writer,
            "viewer" => Role::Viewer,
            "editor" => Role::Editor,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// The whole web configuration file.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    /// Where the file was read from.
    pub path: Option<PathBuf>,
    /// `None`: plain HTTP.
    pub tls: Option<TlsServerConfig>,
    /// `http_server_config.http2` (default true; TLS only).
    pub http2: bool,
    /// `http_server_config.headers`, added to every answer.
    pub headers: Vec<(String, String)>,
    /// `basic_auth_users`: user name to bcrypt hash.
    pub users: BTreeMap<String, String>,
    /// `user_roles` (osprey): a user not listed is a viewer.
    pub user_roles: BTreeMap<String, Role>,
    /// `bearer_tokens` (osprey): machine credentials.
    pub tokens: Vec<BearerToken>,
    /// `trusted_proxy` (osprey): authentication by an SSO proxy's header.
    pub trusted_proxy: Option<TrustedProxy>,
    /// `rate_limit`: exporter-toolkit's token bucket over all requests.
    pub rate_limit: Option<Bucket>,
    /// `rate_limits` (osprey): token buckets per principal.
    pub rate_limits: PrincipalLimits,
    /// `audit` (osprey): where the audit log goes besides the data
    /// directory.
    pub audit_stdout: bool,
}

impl WebConfig {
    /// Whether any way of authenticating is configured; without one every
    /// request is let in as an admin, as osprey behaves without a file.
    pub fn authentication_enabled(&self) -> bool {
        !self.users.is_empty()
            || !self.tokens.is_empty()
            || self.trusted_proxy.is_some()
            || self
                .tls
                .as_ref()
                .is_some_and(|tls| tls.client_auth.requires_verified_cert())
    }

    /// The role of a user authenticated by password, certificate or proxy.
    pub fn role_of(&self, user: &str) -> Role {
        self.user_roles.get(user).copied().unwrap_or(Role::Viewer)
    }

    /// The files whose change means the configuration must be re-read.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.path.iter().cloned().collect();
        if let Some(tls) = &self.tls {
            for file in [&tls.cert_file, &tls.key_file, &tls.client_ca_file]
                .into_iter()
                .flatten()
            {
                files.push(PathBuf::from(file));
            }
        }
        for token in &self.tokens {
            if let Some(file) = &token.token_file {
                files.push(PathBuf::from(file));
            }
        }
        files
    }
}

/// `tls_server_config`, files read.
#[derive(Clone, Debug)]
pub struct TlsServerConfig {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_ca_pem: Option<Vec<u8>>,
    pub client_ca_file: Option<String>,
    pub client_auth: ClientAuth,
    /// Subject alternative names a client certificate must carry one of.
    pub client_allowed_sans: Vec<String>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// Cipher suites for TLS 1.2 by Go's names; empty: the defaults.
    pub cipher_suites: Vec<String>,
    /// Key-exchange groups by Go's names; empty: the defaults.
    pub curve_preferences: Vec<String>,
    pub prefer_server_cipher_suites: bool,
}

/// `client_auth_type`, as Go's `tls.ClientAuthType` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// Whether every connection carries a client certificate verified
    /// against the client CA (so the certificate is an identity).
    pub fn requires_verified_cert(self) -> bool {
        self == ClientAuth::RequireAndVerifyClientCert
    }

    fn parse(text: &str) -> Option<ClientAuth> {
        Some(match text {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            "RequireAnyClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
    }
}

/// One `bearer_tokens` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BearerToken {
    /// Who the token is, in the audit log and rate limits.
    pub name: String,
    /// The token itself (read from `token_file` when that is given).
    pub token: String,
    pub token_file: Option<String>,
    pub role: Role,
}

/// `trusted_proxy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedProxy {
    /// The header the proxy puts the authenticated user in.
    pub user_header: String,
    /// An optional header with the user's role; otherwise `user_roles`.
    pub role_header: Option<String>,
    /// Only requests from these networks may use the headers.
    pub trusted_networks: Vec<ipnet::IpNet>,
}

impl TrustedProxy {
    pub fn trusts(&self, address: IpAddr) -> bool {
        self.trusted_networks
            .iter()
            .any(|network| network.contains(&address))
    }
}

/// A token bucket: `burst` requests at once, refilled one per `interval`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub per_second: f64,
    pub burst: u32,
}

/// `rate_limits`: buckets per principal for queries and for ingestion.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrincipalLimits {
    pub queries: Option<Bucket>,
    pub ingestion: Option<Bucket>,
    /// Per principal name, overriding the defaults above.
    pub overrides: BTreeMap<String, (Option<Bucket>, Option<Bucket>)>,
}

/// Reads and checks a web configuration file.
pub fn load_web_config(path: &Path) -> Result<WebConfig, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::file(&name, format!("reading the file: {error}")))?;
    let mut config = parse_web_config(&name, &text, path.parent())?;
    config.path = Some(path.to_path_buf());
    Ok(config)
}

/// Parses web configuration text; relative paths join `base_dir`.
pub fn parse_web_config(
    name: &str,
    text: &str,
    base_dir: Option<&Path>,
) -> Result<WebConfig, ConfigError> {
    let root = crate::decode::parse_yaml(name, text)?;
    let decoder = Decoder::new(name, base_dir);
    let mut config = WebConfig {
        http2: true,
        ..WebConfig::default()
    };
    for field in decoder.fields(&root, "")? {
        let (value, path) = (field.value, field.path.as_str());
        match field.name.as_str() {
            "tls_server_config" => config.tls = tls_server_config(&decoder, value, path)?,
            "http_server_config" => {
                for f in decoder.fields(value, path)? {
                    match f.name.as_str() {
                        "http2" => config.http2 = decoder.bool(f.value, &f.path)?,
                        "headers" => config.headers = headers(&decoder, f.value, &f.path)?,
                        _ => return Err(decoder.unknown(&f)),
                    }
                }
            }
            "basic_auth_users" => {
                for f in decoder.fields(value, path)? {
                    let hash = decoder.string(f.value, &f.path)?;
                    if bcrypt::HashParts::from_str(&hash).is_err() {
                        return Err(decoder.error(
                            f.value.line,
                            &f.path,
                            "not a bcrypt hash (make one with `htpasswd -nBC 10 \"\"`)",
                        ));
                    }
                    config.users.insert(f.name, hash);
                }
            }
            "user_roles" => {
                for f in decoder.fields(value, path)? {
                    config
                        .user_roles
                        .insert(f.name.clone(), role(&decoder, f.value, &f.path)?);
                }
            }
            "bearer_tokens" => config.tokens = tokens(&decoder, value, path)?,
            "trusted_proxy" => config.trusted_proxy = Some(trusted_proxy(&decoder, value, path)?),
            "rate_limit" => config.rate_limit = toolkit_rate_limit(&decoder, value, path)?,
            "rate_limits" => config.rate_limits = rate_limits(&decoder, value, path)?,
            "audit" => {
                for f in decoder.fields(value, path)? {
                    match f.name.as_str() {
                        "stdout" => config.audit_stdout = decoder.bool(f.value, &f.path)?,
                        _ => return Err(decoder.unknown(&f)),
                    }
                }
            }
            _ => return Err(decoder.unknown(&field)),
        }
    }
    for user in config.user_roles.keys() {
        let known = config.users.contains_key(user)
            || config.trusted_proxy.is_some()
            || config
                .tls
                .as_ref()
                .is_some_and(|tls| tls.client_auth != ClientAuth::NoClientCert);
        if !known {
            let line = root
                .as_mapping()
                .ok()
                .and_then(|entries| {
                    entries
                        .iter()
                        .find(|(key, _)| crate::decode::key_is(key, "user_roles"))
                })
                .map_or(0, |(key, _)| key.line);
            return Err(decoder.error(
                line,
                &format!("user_roles.{user}"),
                "no such user in basic_auth_users (and no proxy or client certificates name users)",
            ));
        }
    }
    Ok(config)
}

fn role(decoder: &Decoder, node: &Node, path: &str) -> Result<Role, ConfigError> {
    let text = decoder.string(node, path)?;
    Role::parse(&text).ok_or_else(|| {
        decoder.error(
            node.line,
            path,
            format!("unknown role {text:?} (viewer, editor, admin or writer)"),
        )
    })
}

fn pem(
    decoder: &Decoder,
    inline: Option<(String, u64)>,
    file: Option<(String, u64)>,
    path: &str,
    what: &str,
) -> Result<Option<Vec<u8>>, ConfigError> {
    match (inline, file) {
        (Some(_), Some((_, line))) => Err(decoder.error(
            line,
            path,
            format!("at most one of {what} & {what}_file must be configured"),
        )),
        (Some((text, _)), None) => Ok(Some(text.into_bytes())),
        (None, Some((file, line))) => std::fs::read(&file).map(Some).map_err(|error| {
            decoder.error(
                line,
                &format!("{path}.{what}_file"),
                format!("reading {file}: {error}"),
            )
        }),
        (None, None) => Ok(None),
    }
}

fn tls_server_config(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<Option<TlsServerConfig>, ConfigError> {
    let mut cert = None;
    let mut cert_file = None;
    let mut key = None;
    let mut key_file = None;
    let mut client_ca = None;
    let mut client_ca_file = None;
    let mut client_auth = ClientAuth::NoClientCert;
    let mut client_allowed_sans = Vec::new();
    let mut min_version = TlsVersion::Tls12;
    let mut max_version = TlsVersion::Tls13;
    let mut cipher_suites = Vec::new();
    let mut curve_preferences = Vec::new();
    let mut prefer_server_cipher_suites = true;
    let fields = decoder.fields(node, field)?;
    if fields.is_empty() {
        return Ok(None);
    }
    for f in fields {
        let (value, path) = (f.value, f.path.as_str());
        let line = value.line;
        match f.name.as_str() {
            "cert" => cert = Some((decoder.string(value, path)?, line)),
            "cert_file" => cert_file = Some((decoder.path(value, path)?, line)),
            "key" => key = Some((decoder.string(value, path)?, line)),
            "key_file" => key_file = Some((decoder.path(value, path)?, line)),
            "client_ca" => client_ca = Some((decoder.string(value, path)?, line)),
            "client_ca_file" => client_ca_file = Some((decoder.path(value, path)?, line)),
            "client_auth_type" => {
                let text = decoder.string(value, path)?;
                client_auth = ClientAuth::parse(&text).ok_or_else(|| {
                    decoder.error(line, path, format!("invalid ClientAuth {text:?}"))
                })?;
            }
            "client_allowed_sans" => client_allowed_sans = decoder.string_list(value, path)?,
            "min_version" | "max_version" => {
                let text = decoder.string(value, path)?;
                let version = match text.as_str() {
                    "TLS10" => TlsVersion::Tls10,
                    "TLS11" => TlsVersion::Tls11,
                    "TLS12" => TlsVersion::Tls12,
                    "TLS13" => TlsVersion::Tls13,
                    _ => {
                        return Err(decoder.error(
                            line,
                            path,
                            format!("unknown TLS version: {text}"),
                        ));
                    }
                };
                if f.name == "min_version" {
                    min_version = version;
                } else {
                    max_version = version;
                }
            }
            "cipher_suites" => {
                cipher_suites = decoder.string_list(value, path)?;
                for suite in &cipher_suites {
                    if !SUPPORTED_CIPHER_SUITES.contains(&suite.as_str()) {
                        return Err(decoder.error(
                            line,
                            path,
                            format!(
                                "cipher suite {suite:?} is not supported by osprey's TLS stack (supported: {})",
                                SUPPORTED_CIPHER_SUITES.join(", ")
                            ),
                        ));
                    }
                }
            }
            "curve_preferences" => {
                curve_preferences = decoder.string_list(value, path)?;
                for curve in &curve_preferences {
                    if !SUPPORTED_CURVES.contains(&curve.as_str()) {
                        return Err(decoder.error(
                            line,
                            path,
                            format!(
                                "curve {curve:?} is not supported by osprey's TLS stack (supported: {})",
                                SUPPORTED_CURVES.join(", ")
                            ),
                        ));
                    }
                }
            }
            "prefer_server_cipher_suites" => {
                prefer_server_cipher_suites = decoder.bool(value, path)?
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    // rustls speaks TLS 1.2 and 1.3: a lower floor is 1.2, a lower
    // ceiling could never connect.
    if max_version < TlsVersion::Tls12 {
        return Err(decoder.error(
            node.line,
            &format!("{field}.max_version"),
            "not supported by osprey: a TLS ceiling below 1.2",
        ));
    }
    if min_version > max_version {
        return Err(decoder.error(
            node.line,
            field,
            "max_version must be greater than or equal to min_version",
        ));
    }
    let cert_file_name = cert_file.as_ref().map(|(file, _)| file.clone());
    let key_file_name = key_file.as_ref().map(|(file, _)| file.clone());
    let client_ca_file_name = client_ca_file.as_ref().map(|(file, _)| file.clone());
    let cert_pem = pem(decoder, cert, cert_file, field, "cert")?;
    let key_pem = pem(decoder, key, key_file, field, "key")?;
    let client_ca_pem = pem(decoder, client_ca, client_ca_file, field, "client_ca")?;
    let (Some(cert_pem), Some(key_pem)) = (cert_pem, key_pem) else {
        return Err(decoder.error(
            node.line,
            field,
            "missing cert_file or key_file (or cert and key)",
        ));
    };
    let verifies = matches!(
        client_auth,
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
    );
    if verifies && client_ca_pem.is_none() {
        return Err(decoder.error(
            node.line,
            field,
            "client_ca_file is required for client_auth_type VerifyClientCertIfGiven or RequireAndVerifyClientCert",
        ));
    }
    if !verifies && client_ca_pem.is_some() {
        return Err(decoder.error(
            node.line,
            field,
            "client_ca_file requires client_auth_type VerifyClientCertIfGiven or RequireAndVerifyClientCert",
        ));
    }
    if !client_allowed_sans.is_empty()
        && !matches!(
            client_auth,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    {
        return Err(decoder.error(
            node.line,
            field,
            "client_allowed_sans requires client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert",
        ));
    }
    Ok(Some(TlsServerConfig {
        cert_pem,
        key_pem,
        cert_file: cert_file_name,
        key_file: key_file_name,
        client_ca_pem,
        client_ca_file: client_ca_file_name,
        client_auth,
        client_allowed_sans,
        min_version,
        max_version,
        cipher_suites,
        curve_preferences,
        prefer_server_cipher_suites,
    }))
}

/// The TLS 1.2 cipher suites osprey's TLS stack offers, by Go's names
/// (TLS 1.3's suites are not configurable, as in Go).
pub const SUPPORTED_CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// The key-exchange groups offered, by Go's `tls.CurveID` names.
pub const SUPPORTED_CURVES: &[&str] = &["X25519", "CurveP256", "CurveP384"];

/// The security headers `http_server_config.headers` may set.
const ALLOWED_HEADERS: &[&str] = &[
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
];

fn headers(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut headers = Vec::new();
    for f in decoder.fields(node, field)? {
        if !ALLOWED_HEADERS.contains(&f.name.as_str()) {
            return Err(decoder.error(
                f.key.line,
                &f.path,
                format!(
                    "HTTP header {:?} can not be configured (allowed: {})",
                    f.name,
                    ALLOWED_HEADERS.join(", ")
                ),
            ));
        }
        let value = decoder.string(f.value, &f.path)?;
        if f.name == "X-Frame-Options"
            && !["deny", "sameorigin"].contains(&value.to_ascii_lowercase().as_str())
        {
            return Err(decoder.error(
                f.value.line,
                &f.path,
                "invalid value for X-Frame-Options (deny or sameorigin)",
            ));
        }
        if f.name == "X-Content-Type-Options" && !value.eq_ignore_ascii_case("nosniff") {
            return Err(decoder.error(
                f.value.line,
                &f.path,
                "invalid value for X-Content-Type-Options (nosniff)",
            ));
        }
        if !value.is_empty() {
            headers.push((f.name, value));
        }
    }
    Ok(headers)
}

fn tokens(decoder: &Decoder, node: &Node, field: &str) -> Result<Vec<BearerToken>, ConfigError> {
    let mut tokens: Vec<BearerToken> = Vec::new();
    for (index, item) in decoder.sequence(node, field)?.iter().enumerate() {
        let path = format!("{field}[{index}]");
        let mut name = None;
        let mut token = None;
        let mut token_file = None;
        let mut token_role = None;
        for f in decoder.fields(item, &path)? {
            match f.name.as_str() {
                "name" => name = Some(decoder.string(f.value, &f.path)?),
                "token" => token = Some(decoder.string(f.value, &f.path)?),
                "token_file" => {
                    let file = decoder.path(f.value, &f.path)?;
                    token = Some(
                        crate::secret::read_secret(&file)
                            .map_err(|message| decoder.error(f.value.line, &f.path, message))?,
                    );
                    token_file = Some(file);
                }
                "role" => token_role = Some(role(decoder, f.value, &f.path)?),
                _ => return Err(decoder.unknown(&f)),
            }
        }
        let (Some(name), Some(token), Some(role)) = (name, token, token_role) else {
            return Err(decoder.error(
                item.line,
                &path,
                "a bearer token needs name, token (or token_file) and role",
            ));
        };
        // Short tokens can be guessed; 16 characters of a random token are
        // about 95 bits.
        if token.len() < 16 {
            return Err(decoder.error(
                item.line,
                &path,
                "a bearer token must be at least 16 characters long",
            ));
        }
        if tokens.iter().any(|t| t.name == name || t.token == token) {
            return Err(decoder.error(
                item.line,
                &path,
                "bearer tokens must be unique by name and token",
            ));
        }
        tokens.push(BearerToken {
            name,
            token,
            token_file,
            role,
        });
    }
    Ok(tokens)
}

fn trusted_proxy(decoder: &Decoder, node: &Node, field: &str) -> Result<TrustedProxy, ConfigError> {
    let mut user_header = None;
    let mut role_header = None;
    let mut trusted_networks = Vec::new();
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "user_header" => user_header = Some(decoder.string(f.value, &f.path)?),
            "role_header" => role_header = Some(decoder.string(f.value, &f.path)?),
            "trusted_cidrs" => {
                for (text, line) in decoder.string_list_with_lines(f.value, &f.path)? {
                    let network = ipnet::IpNet::from_str(&text)
                        .or_else(|_| IpAddr::from_str(&text).map(ipnet::IpNet::from))
                        .map_err(|_| {
                            decoder.error(line, &f.path, format!("invalid network {text:?}"))
                        })?;
                    trusted_networks.push(network);
                }
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    let Some(user_header) = user_header.filter(|header| !header.is_empty()) else {
        return Err(decoder.error(node.line, field, "user_header must be set"));
    };
    if trusted_networks.is_empty() {
        return Err(decoder.error(
            node.line,
            field,
            "trusted_cidrs must name the proxy's addresses: anyone else could send the header",
        ));
    }
    Ok(TrustedProxy {
        user_header,
        role_header,
        trusted_networks,
    })
}

fn toolkit_rate_limit(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<Option<Bucket>, ConfigError> {
    let mut interval_ms = 0;
    let mut burst = 0;
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "interval" => interval_ms = decoder.duration(f.value, &f.path)?,
            "burst" => {
                burst = u32::try_from(decoder.unsigned(f.value, &f.path)?).unwrap_or(u32::MAX)
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    if interval_ms <= 0 {
        return Ok(None);
    }
    Ok(Some(Bucket {
        per_second: 1000.0 / interval_ms as f64,
        burst: burst.max(1),
    }))
}

fn bucket(decoder: &Decoder, node: &Node, field: &str) -> Result<Bucket, ConfigError> {
    let mut per_second = None;
    let mut burst = None;
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "requests_per_second" => {
                let value = decoder.float(f.value, &f.path)?;
                if !(value > 0.0 && value.is_finite()) {
                    return Err(decoder.error(f.value.line, &f.path, "must be greater than zero"));
                }
                per_second = Some(value);
            }
            "burst" => {
                burst = Some(u32::try_from(decoder.unsigned(f.value, &f.path)?).unwrap_or(u32::MAX))
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    let Some(per_second) = per_second else {
        return Err(decoder.error(node.line, field, "requests_per_second must be set"));
    };
    Ok(Bucket {
        per_second,
        burst: burst.unwrap_or_else(|| per_second.ceil() as u32).max(1),
    })
}

fn rate_limits(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<PrincipalLimits, ConfigError> {
    let mut limits = PrincipalLimits::default();
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "queries" => limits.queries = Some(bucket(decoder, f.value, &f.path)?),
            "ingestion" => limits.ingestion = Some(bucket(decoder, f.value, &f.path)?),
            "principals" => {
                for p in decoder.fields(f.value, &f.path)? {
                    let mut queries = None;
                    let mut ingestion = None;
                    for g in decoder.fields(p.value, &p.path)? {
                        match g.name.as_str() {
                            "queries" => queries = Some(bucket(decoder, g.value, &g.path)?),
                            "ingestion" => ingestion = Some(bucket(decoder, g.value, &g.path)?),
                            _ => return Err(decoder.unknown(&g)),
                        }
                    }
                    limits.overrides.insert(p.name, (queries, ingestion));
                }
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, ConfigError> {
        parse_web_config("web.yml", text, None)
    }

    /// A bcrypt hash of "secret" (cost 4: tests need no strength).
    fn secret_hash() -> String {
        bcrypt::hash("secret", 4).expect("bcrypt")
    }

    #[test]
    fn toolkit_fields_and_osprey_extensions() {
        let secret_hash = secret_hash();
        let config = parse(&format!(
            "basic_auth_users:\n  alice: '{secret_hash}'\n  bob: '{secret_hash}'\nuser_roles:\n  alice: admin\nbearer_tokens:\n  - name: rw\n    token: 0123456789abcdef0123\n    role: writer\ntrusted_proxy:\n  user_header: X-Forwarded-User\n  trusted_cidrs: [127.0.0.1/32, '::1']\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\nrate_limit: {{interval: 100ms, burst: 5}}\nrate_limits:\n  queries: {{requests_per_second: 10, burst: 20}}\n  principals:\n    rw: {{ingestion: {{requests_per_second: 100}}}}\naudit: {{stdout: true}}\n"
        ))
        .expect("valid");
        assert!(config.authentication_enabled());
        assert_eq!(config.role_of("alice"), Role::Admin);
        assert_eq!(config.role_of("bob"), Role::Viewer);
        assert_eq!(config.tokens[0].role, Role::Writer);
        assert!(!config.http2);
        assert_eq!(
            config.headers,
            [("X-Frame-Options".to_string(), "deny".to_string())]
        );
        let proxy = config.trusted_proxy.as_ref().expect("proxy");
        assert!(proxy.trusts("127.0.0.1".parse().expect("ip")));
        assert!(proxy.trusts("::1".parse().expect("ip")));
        assert!(!proxy.trusts("10.0.0.1".parse().expect("ip")));
        assert_eq!(
            config.rate_limit,
            Some(Bucket {
                per_second: 10.0,
                burst: 5
            })
        );
        assert_eq!(config.rate_limits.queries.map(|b| b.burst), Some(20));
        assert!(config.rate_limits.overrides["rw"].1.is_some());
        assert!(config.audit_stdout);
        assert!(!parse("").expect("empty").authentication_enabled());
    }

    #[test]
    fn bad_files_fail_with_the_field_named() {
        let secret_hash = secret_hash();
        let cases = [
            (
                "basic_auth_users:\n  alice: plain\n",
                "web.yml:2: basic_auth_users.alice: not a bcrypt hash",
            ),
            (
                "user_roles:\n  carol: admin\n",
                "web.yml:1: user_roles.carol: no such user",
            ),
            (
                &format!("basic_auth_users:\n  a: '{secret_hash}'\nuser_roles:\n  a: root\n"),
                "web.yml:4: user_roles.a: unknown role \"root\"",
            ),
            (
                "tls_server_config:\n  cert_file: /nonexistent/c.pem\n  key_file: /nonexistent/k.pem\n",
                "web.yml:2: tls_server_config.cert_file: reading /nonexistent/c.pem",
            ),
            (
                "tls_server_config:\n  cert: x\n",
                "web.yml:2: tls_server_config: missing cert_file or key_file",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n  client_auth_type: Sometimes\n",
                "web.yml:4: tls_server_config.client_auth_type: invalid ClientAuth",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n  client_auth_type: RequireAndVerifyClientCert\n",
                "client_ca_file is required",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
                "is not supported by osprey's TLS stack",
            ),
            (
                "http_server_config:\n  headers:\n    Server: osprey\n",
                "web.yml:3: http_server_config.headers.Server: HTTP header \"Server\" can not be configured",
            ),
            (
                "bearer_tokens:\n  - name: t\n    token: short\n    role: writer\n",
                "at least 16 characters",
            ),
            (
                "trusted_proxy:\n  user_header: X-User\n",
                "trusted_cidrs must name",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n  max_version: TLS11\n",
                "a TLS ceiling below 1.2",
            ),
            ("tls_config: {}\n", "web.yml:1: tls_config: unknown field"),
        ];
        for (text, want) in cases {
            let error = parse(text).expect_err(text).to_string();
            assert!(error.contains(want), "{text}\n got: {error}\nwant: {want}");
        }
    }
}
