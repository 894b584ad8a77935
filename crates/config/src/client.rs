//! The one HTTP client builder: an [`HttpClientConfig`] in, an
//! [`HttpClient`] out, for every outgoing request osprey makes on a
//! config's behalf (scrapes, alerts to Alertmanagers, remote write,
//! blackbox probes, alert-manager receivers).
//!
//! The connection settings (TLS, proxy, redirects, HTTP/2) go into the
//! underlying reqwest client. The credentials are added per request by
//! [`HttpClient::request`]: `basic_auth`, `authorization` and
//! `http_headers` files are read on every request, as Prometheus does, so a
//! rotated secret is used without a reload; an `oauth2` token is fetched
//! with the client-credentials grant and reused until shortly before it
//! expires.
//!
//! `tls_config.server_name` needs the request to name the server while
//! connecting to the target: for an HTTPS URL whose host differs, the
//! request goes to `https://<server_name>:<port>/...` through a client
//! whose resolver maps that name to the URL's host, with the `Host` header
//! still naming the target. So TLS sends the name as SNI and checks the
//! certificate against it, as Go's `tls.Config.ServerName` does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HOST, HeaderMap, HeaderName, HeaderValue};

use crate::http::{HeaderValues, HttpClientConfig, OAuth2, ProxyConfig, TlsConfig, TlsVersion};
use crate::secret::read_secret;

/// What the caller decides about a client, besides the config.
pub struct ClientOptions {
    pub user_agent: String,
    /// Limit for a whole request (connect to end of body); `None`: none.
    pub timeout: Option<Duration>,
    /// Ask for gzip and decode it.
    pub gzip: bool,
    /// Applied to every reqwest builder after the config's settings: the
    /// blackbox prober sets its own TLS verifier, redirect counter and
    /// resolved address here. With a `customize` that replaces TLS,
    /// `tls_config` (including `server_name`) is the caller's to apply.
    pub customize: Option<Arc<Customize>>,
}

/// A last adjustment to a reqwest builder.
pub type Customize = dyn Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync;

impl ClientOptions {
    /// osprey's user agent, no timeout, gzip on.
    pub fn new(user_agent: &str) -> ClientOptions {
        ClientOptions {
            user_agent: user_agent.to_string(),
            timeout: None,
            gzip: true,
            customize: None,
        }
    }
}

/// osprey's `User-Agent` for the given component, e.g. `osprey/0.1.0`.
pub fn user_agent() -> String {
    concat!("osprey/", env!("CARGO_PKG_VERSION")).to_string()
}

/// A client built from an [`HttpClientConfig`]. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: HttpClientConfig,
    options: ClientOptions,
    client: reqwest::Client,
    oauth2: Option<OAuth2Source>,
    /// Clients that resolve `tls_config.server_name` to one host, by host.
    by_host: Mutex<HashMap<String, reqwest::Client>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds the client. Fails when a TLS file cannot be read or parsed,
    /// or the proxy settings are unusable; the message names the file.
    pub fn new(config: &HttpClientConfig, options: ClientOptions) -> Result<HttpClient, String> {
        let client = builder(config, &options, None)?
            .build()
            .map_err(|error| describe_error(&error))?;
        let oauth2 = match &config.oauth2 {
            Some(oauth2) => Some(OAuth2Source::new(oauth2, &options.user_agent)?),
            None => None,
        };
        Ok(HttpClient {
            inner: Arc::new(Inner {
                config: config.clone(),
                options,
                client,
                oauth2,
                by_host: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The config the client was built from.
    pub fn config(&self) -> &HttpClientConfig {
        &self.inner.config
    }

    /// A request to `url` with the config's credentials and headers. Fails
    /// when a secret file cannot be read or no OAuth2 token can be had.
    pub async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, String> {
        let (client, url, host) = self.route(url)?;
        let mut request = client.request(method, url);
        if let Some(host) = host {
            request = request.header(HOST, host);
        }
        self.authorize(request).await
    }

    /// Like [`HttpClient::request`], for a URL parsed already: a caller
    /// that requests the same URL again and again (a scrape loop) parses
    /// it once rather than on every request.
    pub async fn request_url(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
    ) -> Result<reqwest::RequestBuilder, String> {
        if self.inner.config.tls_config.server_name.is_some() {
            // `route` may send it through a per-host client.
            return self.request(method, url.as_str()).await;
        }
        let request = self.inner.client.request(method, url.clone());
        self.authorize(request).await
    }

    /// The client, URL and `Host` header a request to `url` goes through.
    fn route(&self, url: &str) -> Result<(reqwest::Client, String, Option<String>), String> {
        let inner = &self.inner;
        let plain = || Ok((inner.client.clone(), url.to_string(), None));
        let Some(server_name) = &inner.config.tls_config.server_name else {
            return plain();
        };
        if inner.options.customize.is_some() {
            return plain();
        }
        let Ok(mut parsed) = reqwest::Url::parse(url) else {
            return plain();
        };
        let Some(host) = parsed.host_str().map(str::to_string) else {
            return plain();
        };
        // An IP address cannot stand in for the host without also being
        // dialled; plain HTTP has no TLS to name.
        if parsed.scheme() != "https"
            || server_name.parse::<std::net::IpAddr>().is_ok()
            || host.eq_ignore_ascii_case(server_name)
        {
            return plain();
        }
        let authority = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        parsed
            .set_host(Some(server_name))
            .map_err(|error| format!("tls_config.server_name {server_name:?}: {error}"))?;
        let target_host = host.trim_matches(['[', ']']).to_string();
        let client = {
            let mut clients = inner.by_host.lock().unwrap_or_else(|e| e.into_inner());
            match clients.get(&target_host) {
                Some(client) => client.clone(),
                None => {
                    let resolver = ServerNameResolver {
                        server_name: server_name.to_ascii_lowercase(),
                        target_host: target_host.clone(),
                    };
                    let client = builder(&inner.config, &inner.options, Some(resolver))?
                        .build()
                        .map_err(|error| describe_error(&error))?;
                    // Targets come and go; a bounded map is enough.
                    if clients.len() >= 1024 {
                        clients.clear();
                    }
                    clients.insert(target_host, client.clone());
                    client
                }
            }
        };
        Ok((client, parsed.to_string(), Some(authority)))
    }

    async fn authorize(
        &self,
        mut request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, String> {
        let config = &self.inner.config;
        if let Some(auth) = &config.basic_auth {
            let username = match &auth.username_file {
                Some(file) => read_secret(file)?,
                None => auth.username.clone(),
            };
            let password = match (&auth.password, &auth.password_file) {
                (Some(password), _) => Some(password.clone()),
                (None, Some(file)) => Some(read_secret(file)?),
                (None, None) => None,
            };
            request = request.basic_auth(username, password);
        }
        if let Some(auth) = &config.authorization {
            let credentials = match (&auth.credentials, &auth.credentials_file) {
                (Some(credentials), _) => credentials.clone(),
                (None, Some(file)) => read_secret(file)?,
                (None, None) => String::new(),
            };
            request = request.header(
                AUTHORIZATION,
                header_value(&format!("{} {credentials}", auth.kind))?,
            );
        }
        if let Some(oauth2) = &self.inner.oauth2 {
            let token = oauth2.token().await?;
            request = request.header(AUTHORIZATION, header_value(&format!("Bearer {token}"))?);
        }
        if !config.http_headers.is_empty() {
            request = request.headers(header_map(&config.http_headers)?);
        }
        Ok(request)
    }
}

/// A reqwest builder with the config's connection settings.
fn builder(
    config: &HttpClientConfig,
    options: &ClientOptions,
    resolver: Option<ServerNameResolver>,
) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(options.user_agent.as_str())
        .gzip(options.gzip)
        .pool_idle_timeout(Duration::from_secs(90));
    if let Some(timeout) = options.timeout {
        builder = builder.timeout(timeout);
    }
    if !config.follow_redirects {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    if !config.enable_http2 {
        builder = builder.http1_only();
    }
    builder = with_proxy(builder, &config.proxy)?;
    builder = with_tls(builder, &config.tls_config)?;
    if let Some(resolver) = resolver {
        builder = builder.dns_resolver(Arc::new(resolver));
    }
    if let Some(customize) = &options.customize {
        builder = customize(builder);
    }
    Ok(builder)
}

fn with_proxy(
    builder: reqwest::ClientBuilder,
    proxy: &ProxyConfig,
) -> Result<reqwest::ClientBuilder, String> {
    let connect_headers = || header_map(&proxy.connect_headers);
    match &proxy.proxy_url {
        Some(url) => {
            let mut p = reqwest::Proxy::all(url.as_str())
                .map_err(|error| format!("proxy_url {url:?}: {error}"))?;
            if let Some(no_proxy) = &proxy.no_proxy {
                p = p.no_proxy(reqwest::NoProxy::from_string(no_proxy));
            }
            if !proxy.connect_headers.is_empty() {
                p = p.headers(connect_headers()?);
            }
            Ok(builder.proxy(p))
        }
        None if proxy.from_environment => {
            if proxy.connect_headers.is_empty() {
                return Ok(builder);
            }
            // The environment's proxies, with the CONNECT headers added.
            let headers = connect_headers()?;
            let mut builder = builder;
            for (scheme, names) in [
                ("http", ["HTTP_PROXY", "http_proxy"]),
                ("https", ["HTTPS_PROXY", "https_proxy"]),
            ] {
                let Some(url) = names.iter().find_map(|name| std::env::var(name).ok()) else {
                    continue;
                };
                let p = if scheme == "http" {
                    reqwest::Proxy::http(url.as_str())
                } else {
                    reqwest::Proxy::https(url.as_str())
                }
                .map_err(|error| format!("proxy from the environment {url:?}: {error}"))?
                .no_proxy(reqwest::NoProxy::from_env())
                .headers(headers.clone());
                builder = builder.proxy(p);
            }
            Ok(builder)
        }
        // As in Prometheus, the environment's proxy settings apply only
        // when asked for.
        None => Ok(builder.no_proxy()),
    }
}

fn with_tls(
    mut builder: reqwest::ClientBuilder,
    tls: &TlsConfig,
) -> Result<reqwest::ClientBuilder, String> {
    if tls.insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    let ca = ca_pem(tls)?;
    if let Some(pem) = ca {
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|error| format!("tls_config: parsing the CA certificates: {error}"))?;
        if certificates.is_empty() {
            return Err("tls_config: the CA holds no PEM certificate".to_string());
        }
        // Only these CAs are trusted, as in Prometheus.
        builder = builder.tls_certs_only(certificates);
    }
    if let Some(pem) = identity_pem(tls)? {
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|error| format!("tls_config: the client certificate and key: {error}"))?;
        builder = builder.identity(identity);
    }
    let version = |v: TlsVersion| match v {
        TlsVersion::Tls10 => reqwest::tls::Version::TLS_1_0,
        TlsVersion::Tls11 => reqwest::tls::Version::TLS_1_1,
        TlsVersion::Tls12 => reqwest::tls::Version::TLS_1_2,
        TlsVersion::Tls13 => reqwest::tls::Version::TLS_1_3,
    };
    if let Some(min) = tls.min_version {
        builder = builder.tls_version_min(version(min));
    }
    if let Some(max) = tls.max_version {
        builder = builder.tls_version_max(version(max));
    }
    Ok(builder)
}

/// The PEM text of the configured CA certificates (`ca` or `ca_file`).
pub fn ca_pem(tls: &TlsConfig) -> Result<Option<Vec<u8>>, String> {
    match (&tls.ca, &tls.ca_file) {
        (Some(text), _) => Ok(Some(text.clone().into_bytes())),
        (None, Some(file)) => std::fs::read(file)
            .map(Some)
            .map_err(|error| format!("tls_config.ca_file: reading {file}: {error}")),
        (None, None) => Ok(None),
    }
}

/// A client certificate and its key, each as PEM.
pub struct CertAndKey {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

/// The client certificate and its key, when configured.
pub fn cert_and_key_pem(tls: &TlsConfig) -> Result<Option<CertAndKey>, String> {
    let read = |inline: &Option<String>, file: &Option<String>, what: &str| match (inline, file) {
        (Some(text), _) => Ok(Some(text.clone().into_bytes())),
        (None, Some(path)) => std::fs::read(path)
            .map(Some)
            .map_err(|error| format!("tls_config.{what}_file: reading {path}: {error}")),
        (None, None) => Ok(None),
    };
    let cert = read(&tls.cert, &tls.cert_file, "cert")?;
    let key = read(&tls.key, &tls.key_file, "key")?;
    Ok(cert.zip(key).map(|(cert, key)| CertAndKey { cert, key }))
}

/// The client certificate followed by its key, as one PEM text.
pub fn identity_pem(tls: &TlsConfig) -> Result<Option<Vec<u8>>, String> {
    Ok(cert_and_key_pem(tls)?.map(|CertAndKey { mut cert, key }| {
        cert.push(b'\n');
        cert.extend(key);
        cert
    }))
}

fn header_value(text: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(text).map_err(|_| "a header value holds invalid characters".to_string())
}

/// The headers of an `http_headers`-shaped map, files read now.
fn header_map(
    headers: &std::collections::BTreeMap<String, HeaderValues>,
) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, values) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        for value in values.values.iter().chain(&values.secrets) {
            map.append(header.clone(), header_value(value)?);
        }
        for file in &values.files {
            map.append(header.clone(), header_value(&read_secret(file)?)?);
        }
    }
    Ok(map)
}

/// A reqwest error with its causes, on one line.
pub fn describe_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "context deadline exceeded".to_string();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves `server_name` to one target's host, and every other name (a
/// redirect's) as usual.
struct ServerNameResolver {
    server_name: String,
    target_host: String,
}

impl reqwest::dns::Resolve for ServerNameResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = if name.as_str().eq_ignore_ascii_case(&self.server_name) {
            self.target_host.clone()
        } else {
            name.as_str().to_string()
        };
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, 0)],
                Err(_) => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// How long before its expiry a token is renewed.
const TOKEN_RENEW_BEFORE: Duration = Duration::from_secs(10);

/// The OAuth 2.0 client-credentials grant (RFC 6749 §4.4), with the token
/// cached until shortly before it expires.
struct OAuth2Source {
    config: OAuth2,
    client: reqwest::Client,
    token: tokio::sync::Mutex<Option<Token>>,
}

struct Token {
    access_token: String,
    expires_at: Option<Instant>,
}

impl OAuth2Source {
    fn new(config: &OAuth2, user_agent: &str) -> Result<OAuth2Source, String> {
        let builder = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(Duration::from_secs(30));
        let builder = with_proxy(builder, &config.proxy)?;
        let client = with_tls(builder, &config.tls_config)?
            .build()
            .map_err(|error| describe_error(&error))?;
        Ok(OAuth2Source {
            config: config.clone(),
            client,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// A valid access token; one fetch at a time.
    async fn token(&self) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && token
                .expires_at
                .is_none_or(|at| Instant::now() + TOKEN_RENEW_BEFORE < at)
        {
            return Ok(token.access_token.clone());
        }
        let token = self.fetch().await?;
        let access_token = token.access_token.clone();
        *cached = Some(token);
        Ok(access_token)
    }

    async fn fetch(&self) -> Result<Token, String> {
        let config = &self.config;
        let secret = match (&config.client_secret, &config.client_secret_file) {
            (Some(secret), _) => secret.clone(),
            (None, Some(file)) => read_secret(file)?,
            (None, None) => String::new(),
        };
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if !config.scopes.is_empty() {
                form.append_pair("scope", &config.scopes.join(" "));
            }
            for (name, value) in &config.endpoint_params {
                form.append_pair(name, value);
            }
            form.finish()
        };
        // The client authenticates with HTTP Basic, its id and secret
        // form-encoded first (RFC 6749 §2.3.1), as Go's oauth2 does.
        let encode =
            |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        let response = self
            .client
            .post(&config.token_url)
            .basic_auth(encode(&config.client_id), Some(encode(&secret)))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|error| format!("oauth2: {}", describe_error(&error)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| format!("oauth2: {}", describe_error(&error)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(format!(
                "oauth2: token endpoint answered {status}: {}",
                text.chars().take(200).collect::<String>()
            ));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|error| format!("oauth2: reading the token response: {error}"))?;
        if parsed.access_token.is_empty() {
            return Err("oauth2: the token response has no access_token".to_string());
        }
        if let Some(kind) = &parsed.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(format!("oauth2: unsupported token type {kind:?}"));
        }
        Ok(Token {
            access_token: parsed.access_token,
            expires_at: parsed
                .expires_in
                .filter(|seconds| *seconds > 0)
                .map(|seconds| Instant::now() + Duration::from_secs(seconds)),
        })
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    access_token: String,
    token_type: Option<String>,
    expires_in: Option<u64>,
}
