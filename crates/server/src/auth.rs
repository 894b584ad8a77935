//! Who may see and change what: authentication, roles, sessions, CSRF,
//! rate limits and the audit log, as one middleware for every listener.
//!
//! A request is made by a [`Principal`], found in this order: a session
//! cookie (set by the login page), an `Authorization` header (basic auth
//! against `basic_auth_users`, or a bearer token from `bearer_tokens`),
//! the user a verified client certificate names, the trusted proxy's
//! header (only from `trusted_cidrs`), or nobody. Without a web
//! configuration that authenticates anyone, everybody is an admin, which is
//! how osprey behaved before this existed; the UI says so.
//!
//! Every route has an [`Access`] level in a policy (the server's is
//! [`server_policy`]); the middleware answers 401 (with
//! `WWW-Authenticate`) when nobody is authenticated and more is needed,
//! 403 when the role is too low, 429 with `Retry-After` over a rate limit,
//! and 500 for a route without a rule (fail closed; a test walks every
//! route so that never ships). State-changing requests authenticated by
//! the session cookie must carry the session's CSRF token in
//! `X-CSRF-Token`; requests with credentials of their own need none.
//!
//! Verified passwords are cached (by user, hash and a SHA-256 of the
//! password), so bcrypt's cost is paid once per password, not per scrape.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use config::web::{Bucket, Role, WebConfig};
use serde_json::json;

use crate::listen::{PeerInfo, WebConfigHandle};

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, readiness, the login page and the UI's files).
    Public,
    /// Reading: viewers and up.
    Read,
    /// Ingesting samples or alerts: writers, editors, admins.
    Write,
    /// Changing silences and dashboards: editors and admins.
    Edit,
    /// Reload, TSDB administration, configuration, flags, the audit log.
    Admin,
}

impl Access {
    /// Whether `role` may do this.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Read => role >= Role::Viewer,
            Access::Write => role == Role::Writer || role >= Role::Editor,
            Access::Edit => role >= Role::Editor,
            Access::Admin => role == Role::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Read => "read",
            Access::Write => "write",
            Access::Edit => "edit",
            Access::Admin => "admin",
        }
    }
}

/// A route's access level by method and route pattern; `None` for a
/// route without a rule.
pub type Policy = fn(&Method, &str) -> Option<Access>;

/// The access rules of `osprey server`'s routes.
pub fn server_policy(method: &Method, path: &str) -> Option<Access> {
    use Access::*;
    let reads = *method == Method::GET || *method == Method::HEAD;
    Some(match path {
        // Liveness checks; `/health` is the stand-alone Redis exporter's.
        "/-/healthy" | "/-/ready" | "/health" => Public,
        // Grafana's health check, open as Grafana's is.
        "/api/health" => Public,
        "/api/osprey/login" | "/api/osprey/logout" | "/api/osprey/whoami" => Public,
        // The app must load to show the login page; what it shows comes
        // from the APIs below. These routes take GET only.
        "/" | "/graph" | "/query" | "/config" | "/flags" | "/tsdb-status" | "/targets"
        | "/rules" | "/alerts" | "/silences" | "/status" | "/dashboards" | "/d/{uid}"
        | "/login" | "/audit" | "/slos" | "/slos/{id}" | "/models" | "/models/{name}"
        | "/models/{name}/compare" | "/cardinality" | "/traces" | "/trace/{id}"
        | "/service-graph" | "/ui/{*path}" => Public,
        "/-/reload" => Admin,
        "/api/v1/status/config" | "/api/v1/status/flags" => Admin,
        "/api/v1/admin/tsdb/delete_series"
        | "/api/v1/admin/tsdb/clean_tombstones"
        | "/api/v1/admin/tsdb/snapshot" => Admin,
        "/api/osprey/audit" => Admin,
        "/api/v1/write" | "/api/v1/import/prometheus" => Write,
        // Pushes from batch jobs (the Pushgateway API): ingestion, and a
        // DELETE removes only what a job pushed. The route takes no GET.
        "/metrics/{*grouping}" => Write,
        // OTLP metrics from SDKs and collectors.
        "/v1/metrics" | "/api/v1/otlp/v1/metrics" => Write,
        // OTLP/gRPC's method, on the dedicated gRPC listener.
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export" => Write,
        // OTLP traces, over HTTP and gRPC.
        "/v1/traces" | "/opentelemetry.proto.collector.trace.v1.TraceService/Export" => Write,
        // The Jaeger and Tempo query APIs read stored traces.
        "/api/services"
        | "/api/services/{service}/operations"
        | "/api/operations"
        | "/api/traces"
        | "/api/traces/{trace_id}"
        | "/api/v2/traces/{trace_id}"
        | "/api/dependencies"
        | "/api/search"
        | "/api/search/tags"
        | "/api/v2/search/tags"
        | "/api/search/tag/{tag}/values"
        | "/api/v2/search/tag/{tag}/values"
        | "/api/echo" => Read,
        // Model records and reference uploads come from serving and
        // training pipelines: ingestion, as a writer token may send.
        "/api/v1/models/{model}/predictions"
        | "/api/v1/models/{model}/actuals"
        | "/api/v1/models/{model}/reference" => Write,
        // Alerts posted by rule engines are ingestion; reading them is not.
        "/api/v2/alerts" => {
            if reads {
                Read
            } else {
                Write
            }
        }
        "/api/v2/silences" | "/api/v2/silence/{silenceID}" => {
            if reads {
                Read
            } else {
                Edit
            }
        }
        "/api/osprey/dashboards" | "/api/osprey/dashboards/{uid}" => {
            if reads {
                Read
            } else {
                Edit
            }
        }
        // Queries and metadata: POST carries form parameters, not changes.
        "/api/v1/query"
        | "/api/v1/query_range"
        | "/api/v1/format_query"
        // Exemplars are read like samples (viewer).
        | "/api/v1/query_exemplars"
        | "/api/v1/series"
        | "/api/v1/labels"
        | "/api/v1/label/{name}/values"
        | "/api/v1/status/tsdb"
        | "/api/v1/status/buildinfo"
        | "/api/v1/export"
        // Federation reads the newest samples, like an instant query.
        | "/federate"
        // Remote read is a query sent as a protobuf POST.
        | "/api/v1/read"
        | "/api/v1/targets"
        | "/api/v1/targets/metadata"
        | "/api/v1/metadata"
        | "/api/osprey/slos"
        | "/api/v1/models"
        | "/api/v1/models/{model}/distribution"
        | "/api/v1/models/{model}/compare"
        | "/api/v1/rules"
        // A backtest computes over stored data and changes nothing.
        | "/api/v1/rules/backtest"
        | "/api/v1/alerts"
        | "/api/v2/status"
        // `osprey alertmanager`'s API v1 reads (`/api/v1/alerts` is above).
        | "/api/v1/status"
        | "/api/v1/silences"
        | "/api/v2/receivers"
        | "/api/v2/alerts/groups"
        | "/metrics"
        | "/exporters/host/metrics"
        | "/exporters/gpu/metrics"
        | "/exporters/container/metrics"
        | "/exporters/redis/scrape"
        | "/exporters/postgres/metrics"
        // The stand-alone Redis exporter's multi-target endpoint.
        | "/scrape"
        | "/probe" => Read,
        _ => return None,
    })
}

/// A password that verified: user, bcrypt hash, SHA-256 of the password.
type VerifiedKey = (String, String, [u8; 32]);

/// How a principal proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    Nobody,
    Session,
    Password,
    Token,
    Certificate,
    Proxy,
    /// No authentication is configured.
    Open,
}

/// Who is making a request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub how: Credential,
}

impl Principal {
    fn nobody() -> Principal {
        Principal {
            name: String::new(),
            role: Role::Viewer,
            how: Credential::Nobody,
        }
    }
}

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "osprey_session";
/// The header state-changing, cookie-authenticated requests carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a session lasts without use.
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Verified passwords kept in the cache.
const PASSWORD_CACHE_SIZE: usize = 1024;

struct Session {
    user: String,
    role: Role,
    csrf: String,
    last_used: Instant,
}

/// The authentication state of one listener: its web configuration,
/// sessions, the verified-password cache, rate limits and the audit log.
pub struct Auth {
    web: WebConfigHandle,
    policy: Policy,
    sessions: Mutex<HashMap<String, Session>>,
    /// (user, bcrypt hash, SHA-256 of the password) that verified.
    verified: Mutex<std::collections::HashSet<VerifiedKey>>,
    limits: Mutex<HashMap<(String, LimitKind), TokenBucket>>,
    global: Mutex<Option<TokenBucket>>,
    audit: AuditLog,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum LimitKind {
    Queries,
    Ingestion,
}

impl Auth {
    /// Authentication for a listener under `web`, with `policy` for its
    /// routes; the audit log goes to `audit_dir/audit.log` when given.
    pub fn new(web: WebConfigHandle, policy: Policy, audit_dir: Option<&Path>) -> Arc<Auth> {
        Arc::new(Auth {
            web,
            policy,
            sessions: Mutex::new(HashMap::new()),
            verified: Mutex::new(std::collections::HashSet::new()),
            limits: Mutex::new(HashMap::new()),
            global: Mutex::new(None),
            audit: AuditLog::new(audit_dir.map(|dir| dir.join("audit.log"))),
        })
    }

    pub fn web(&self) -> &WebConfigHandle {
        &self.web
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Who sent a request with these headers from `peer`.
    fn principal(
        &self,
        config: &WebConfig,
        headers: &HeaderMap,
        peer: Option<&PeerInfo>,
    ) -> Result<Principal, String> {
        if !config.authentication_enabled() {
            return Ok(Principal {
                name: "anonymous".to_string(),
                role: Role::Admin,
                how: Credential::Open,
            });
        }
        if let Some(token) = cookie(headers, SESSION_COOKIE) {
            let mut sessions = lock(&self.sessions);
            sessions.retain(|_, session| session.last_used.elapsed() < SESSION_IDLE);
            if let Some(session) = sessions.get_mut(&token) {
                session.last_used = Instant::now();
                return Ok(Principal {
                    name: session.user.clone(),
                    role: session.role,
                    how: Credential::Session,
                });
            }
        }
        if let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            return match parse_authorization(value)? {
                Presented::Basic { user, password } => {
                    if self.check_password(config, &user, &password) {
                        Ok(Principal {
                            role: config.role_of(&user),
                            name: user,
                            how: Credential::Password,
                        })
                    } else {
                        Err(format!("wrong user name or password for {user:?}"))
                    }
                }
                Presented::Bearer(presented) => {
                    match config.tokens.iter().find(|token| {
                        constant_time_eq(token.token.as_bytes(), presented.as_bytes())
                    }) {
                        Some(token) => Ok(Principal {
                            name: token.name.clone(),
                            role: token.role,
                            how: Credential::Token,
                        }),
                        None => Err("unknown bearer token".to_string()),
                    }
                }
            };
        }
        if let Some(user) = peer.and_then(|peer| peer.certificate_user.clone()) {
            return Ok(Principal {
                role: config.role_of(&user),
                name: user,
                how: Credential::Certificate,
            });
        }
        if let (Some(proxy), Some(peer)) = (&config.trusted_proxy, peer)
            && proxy.trusts(peer.addr.ip())
            && let Some(user) = headers
                .get(proxy.user_header.as_str())
                .and_then(|v| v.to_str().ok())
                .filter(|user| !user.is_empty())
        {
            let role = proxy
                .role_header
                .as_deref()
                .and_then(|name| headers.get(name))
                .and_then(|v| v.to_str().ok())
                .and_then(Role::parse)
                .unwrap_or_else(|| config.role_of(user));
            return Ok(Principal {
                name: user.to_string(),
                role,
                how: Credential::Proxy,
            });
        }
        Ok(Principal::nobody())
    }

    /// bcrypt, through the cache of passwords that verified.
    pub fn check_password(&self, config: &WebConfig, user: &str, password: &str) -> bool {
        let Some(hash) = config.users.get(user) else {
            // Spend about as long as a real check, so a missing user
            // cannot be told from a wrong password by timing.
            let _ = bcrypt::verify(password, DUMMY_HASH);
            return false;
        };
        let digest = sha256(password.as_bytes());
        let key = (user.to_string(), hash.clone(), digest);
        if lock(&self.verified).contains(&key) {
            return true;
        }
        if !bcrypt::verify(password, hash).unwrap_or(false) {
            return false;
        }
        let mut verified = lock(&self.verified);
        if verified.len() >= PASSWORD_CACHE_SIZE {
            verified.clear();
        }
        verified.insert(key);
        true
    }

    /// Starts a session for a user who logged in; returns the cookie
    /// token and the CSRF token.
    pub fn start_session(&self, user: &str, role: Role) -> (String, String) {
        let token = random_token();
        let csrf = random_token();
        lock(&self.sessions).insert(
            token.clone(),
            Session {
                user: user.to_string(),
                role,
                csrf: csrf.clone(),
                last_used: Instant::now(),
            },
        );
        (token, csrf)
    }

    fn end_session(&self, token: &str) {
        lock(&self.sessions).remove(token);
    }

    fn session_csrf(&self, token: &str) -> Option<String> {
        lock(&self.sessions).get(token).map(|s| s.csrf.clone())
    }

    /// Takes one token from `principal`'s bucket of `kind`; the seconds to
    /// wait when it is empty.
    fn take(&self, config: &WebConfig, principal: &str, kind: LimitKind) -> Result<(), u64> {
        let limits = &config.rate_limits;
        let bucket = match limits.overrides.get(principal) {
            Some((queries, ingestion)) => match kind {
                LimitKind::Queries => queries.or(limits.queries),
                LimitKind::Ingestion => ingestion.or(limits.ingestion),
            },
            None => match kind {
                LimitKind::Queries => limits.queries,
                LimitKind::Ingestion => limits.ingestion,
            },
        };
        let Some(bucket) = bucket else {
            return Ok(());
        };
        lock(&self.limits)
            .entry((principal.to_string(), kind))
            .or_insert_with(|| TokenBucket::new(bucket))
            .take(bucket)
    }

    fn take_global(&self, config: &WebConfig) -> Result<(), u64> {
        let Some(bucket) = config.rate_limit else {
            return Ok(());
        };
        lock(&self.global)
            .get_or_insert_with(|| TokenBucket::new(bucket))
            .take(bucket)
    }
}

/// A bcrypt hash of a random string, for timing-equal failures.
const DUMMY_HASH: &str = "$2y$10$7EqJtq98hPqEX7fNZaFWoO5r0NmbbMVgg2ZyJ3bnQqE3wzWuGyuwq";

/// A token bucket: refilled continuously, `burst` deep.
struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(bucket: Bucket) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(bucket.burst),
            at: Instant::now(),
        }
    }

    fn take(&mut self, bucket: Bucket) -> Result<(), u64> {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * bucket.per_second;
        self.tokens = (self.tokens + refill).min(f64::from(bucket.burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / bucket.per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// 32 random bytes as hex, from the operating system's generator.
fn random_token() -> String {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    // The system generator does not fail on Linux once booted; should it,
    // a token from the clock and a counter is still unique, and the
    // failure is logged.
    if aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .is_err()
    {
        tracing::error!("the system random number generator failed");
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes[..16].copy_from_slice(&nanos.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Credentials an `Authorization` header presents.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    Basic { user: String, password: String },
    Bearer(String),
}

/// Reads an `Authorization` header value; the error says what is wrong
/// without repeating the credentials.
pub fn parse_authorization(value: &str) -> Result<Presented, String> {
    let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        let (user, password) = decode_basic(credentials.trim())
            .ok_or_else(|| "malformed basic authentication".to_string())?;
        return Ok(Presented::Basic { user, password });
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Presented::Bearer(credentials.trim().to_string()));
    }
    let mut shown: String = scheme.chars().take(32).collect();
    if shown.len() < scheme.len() {
        shown.push('…');
    }
    Err(format!("unsupported authorization scheme {shown:?}"))
}

/// The user name and password of a login request's body: a form
/// (`application/x-www-form-urlencoded`) or a JSON object, each with
/// `username` and `password`.
pub fn login_credentials(form: bool, body: &[u8]) -> Result<(String, String), &'static str> {
    if form {
        let mut user = String::new();
        let mut password = String::new();
        for (key, value) in form_urlencoded::parse(body) {
            match key.as_ref() {
                "username" => user = value.into_owned(),
                "password" => password = value.into_owned(),
                _ => {}
            }
        }
        return Ok((user, password));
    }
    let value = serde_json::from_slice::<serde_json::Value>(body)
        .map_err(|_| "the login body is not JSON")?;
    Ok((
        value["username"].as_str().unwrap_or_default().to_string(),
        value["password"].as_str().unwrap_or_default().to_string(),
    ))
}

fn decode_basic(encoded: &str) -> Option<(String, String)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The value of a cookie.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_string())
        })
}

/// Whether a request changes state (for CSRF and the audit log).
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Which rate limit a route counts against.
fn limit_kind(access: Access, path: &str) -> Option<LimitKind> {
    match access {
        Access::Write => Some(LimitKind::Ingestion),
        Access::Read
            if path.starts_with("/api/v1/query")
                || path == "/api/v1/export"
                || path == "/federate"
                || path == "/api/v1/read" =>
        {
            Some(LimitKind::Queries)
        }
        _ => None,
    }
}

fn error_json(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "errorType": error_type, "error": message})),
    )
        .into_response()
}

/// The middleware: authenticate, authorise, limit, audit.
pub async fn middleware(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    match admit(&auth, &request) {
        Err(refusal) => {
            drain(request).await;
            *refusal
        }
        Ok(admitted) => {
            let mut request = request;
            request.extensions_mut().insert(admitted.principal.clone());
            let response = next.run(request).await;
            if let Some(audit) = admitted.audit {
                auth.audit.record(
                    &AuditEntry {
                        user: &admitted.principal.name,
                        role: Some(admitted.principal.role),
                        source: &audit.source,
                        action: &audit.action,
                        target: &audit.target,
                        outcome: response.status().as_str(),
                    },
                    audit.stdout,
                );
            }
            response
        }
    }
}

/// What [`admit`] lets through: who the caller is, and what to write to
/// the audit log once the handler has answered (for state changes).
struct Admitted {
    principal: Principal,
    audit: Option<PendingAudit>,
}

struct PendingAudit {
    source: String,
    action: String,
    target: String,
    stdout: bool,
}

/// Reads what is left of a refused request's body, bounded in size and
/// time, before the refusal goes out: a server that answers without
/// reading the body makes HTTP/2 reset the stream and HTTP/1 close on
/// unread bytes, and some clients (curl among them) then lose the answer.
async fn drain(request: Request) {
    let body = request.into_body();
    let _ = tokio::time::timeout(Duration::from_secs(2), axum::body::to_bytes(body, 1 << 20)).await;
}

/// The admission decision for one request: the principal and the audit
/// record to come, or the refusal to send (401, 403, 429, or 500 for a
/// route without an access rule).
fn admit(auth: &Auth, request: &Request) -> Result<Admitted, Box<Response>> {
    let method = request.method().clone();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    let target = request.uri().path().to_string();
    let from_ui = request.headers().contains_key(UI_HEADER);
    let peer = request
        .extensions()
        .get::<ConnectInfo<PeerInfo>>()
        .map(|c| c.0.clone());
    let source = peer
        .as_ref()
        .map(|p| p.addr.to_string())
        .unwrap_or_default();
    let state = auth.web.current();
    let config = &state.config;
    if let Err(wait) = auth.take_global(config) {
        return Err(Box::new(too_many(wait)));
    }
    let Some(access) = (auth.policy)(&method, &path) else {
        tracing::error!(%method, %path, "route without an access rule; refused");
        return Err(Box::new(error_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "this route has no access rule",
        )));
    };
    let principal = match auth.principal(config, request.headers(), peer.as_ref()) {
        Ok(principal) => principal,
        Err(reason) => {
            auth.audit.record(
                &AuditEntry {
                    user: "",
                    role: None,
                    source: &source,
                    action: "authenticate",
                    target: &target,
                    outcome: &format!("denied: {reason}"),
                },
                config.audit_stdout,
            );
            return Err(Box::new(unauthorized(
                "the credentials given are not valid",
                from_ui,
            )));
        }
    };
    if !access.allows(principal.role)
        || (principal.how == Credential::Nobody && access != Access::Public)
    {
        if principal.how == Credential::Nobody {
            return Err(Box::new(unauthorized("authentication required", from_ui)));
        }
        auth.audit.record(
            &AuditEntry {
                user: &principal.name,
                role: Some(principal.role),
                source: &source,
                action: &format!("{method} {path}"),
                target: &target,
                outcome: "forbidden",
            },
            config.audit_stdout,
        );
        return Err(Box::new(error_json(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "{} may not {} here (role {})",
                principal.name,
                access.as_str(),
                principal.role.as_str()
            ),
        )));
    }
    // A browser session's state changes need the session's CSRF token,
    // which a page from another origin cannot read.
    if principal.how == Credential::Session
        && changes_state(&method)
        && !path.starts_with("/api/osprey/log")
    {
        let token = cookie(request.headers(), SESSION_COOKIE).unwrap_or_default();
        let sent = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let expected = auth.session_csrf(&token).unwrap_or_default();
        if expected.is_empty() || !constant_time_eq(expected.as_bytes(), sent.as_bytes()) {
            return Err(Box::new(error_json(
                StatusCode::FORBIDDEN,
                "forbidden",
                "missing or wrong CSRF token",
            )));
        }
    }
    if let Some(kind) = limit_kind(access, &path)
        && let Err(wait) = auth.take(config, &principal.name, kind)
    {
        return Err(Box::new(too_many(wait)));
    }
    let audited =
        changes_state(&method) && !matches!(access, Access::Write | Access::Read | Access::Public);
    Ok(Admitted {
        principal,
        audit: audited.then(|| PendingAudit {
            source,
            action: format!("{method} {path}"),
            target,
            stdout: config.audit_stdout,
        }),
    })
}

/// The header osprey's own UI sends, so a 401 does not make the browser
/// pop up its own basic-auth prompt over the login page.
pub const UI_HEADER: &str = "x-osprey-ui";

fn unauthorized(message: &str, from_ui: bool) -> Response {
    let mut response = error_json(StatusCode::UNAUTHORIZED, "unauthorized", message);
    if !from_ui {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"osprey\""),
        );
    }
    response
}

fn too_many(wait: u64) -> Response {
    let mut response = error_json(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "rate limit exceeded",
    );
    if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// One audit record. Never holds a secret: no bodies, no query strings,
/// no credentials.
pub struct AuditEntry<'a> {
    pub user: &'a str,
    pub role: Option<Role>,
    pub source: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
}

/// The append-only audit log: JSON lines in `<data-dir>/audit.log`, and
/// standard output when the web configuration asks.
pub struct AuditLog {
    file: Option<PathBuf>,
    writer: Mutex<Option<std::fs::File>>,
}

impl AuditLog {
    fn new(file: Option<PathBuf>) -> AuditLog {
        AuditLog {
            file,
            writer: Mutex::new(None),
        }
    }

    /// Appends one record (synced to the file before this returns), and
    /// prints it when `stdout` says so.
    pub fn record(&self, entry: &AuditEntry<'_>, stdout: bool) {
        let line = json!({
            "time": model::time::format_rfc3339_ms(crate::system_clock_ms(), model::time::Fraction::Millis),
            "user": entry.user,
            "role": entry.role.map(Role::as_str),
            "source": entry.source,
            "action": entry.action,
            "target": entry.target,
            "outcome": entry.outcome,
        })
        .to_string();
        if stdout {
            println!("{line}");
        }
        let Some(path) = &self.file else {
            return;
        };
        let mut writer = lock(&self.writer);
        if writer.is_none() {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(file) => *writer = Some(file),
                Err(error) => {
                    tracing::error!(file = %path.display(), %error, "cannot open the audit log");
                    return;
                }
            }
        }
        if let Some(file) = writer.as_mut() {
            use std::io::Write;
            if let Err(error) = writeln!(file, "{line}").and_then(|()| file.sync_data()) {
                tracing::error!(file = %path.display(), %error, "writing the audit log failed");
            }
        }
    }

    /// The last `limit` records, newest last.
    pub fn tail(&self, limit: usize) -> Vec<serde_json::Value> {
        let Some(path) = &self.file else {
            return Vec::new();
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return Vec::new();
        };
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(limit)..]
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

/// `POST /api/osprey/login` with a JSON or form body `{username,
/// password}`: a session cookie and the CSRF token.
pub async fn login(State(auth): State<Arc<Auth>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<PeerInfo>>()
        .map(|c| c.0.clone());
    let source = peer
        .as_ref()
        .map(|p| p.addr.to_string())
        .unwrap_or_default();
    let secure = peer.as_ref().is_some_and(|p| p.tls);
    let form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = match axum::body::to_bytes(request.into_body(), 64 * 1024).await {
        Ok(body) => body,
        Err(_) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                "bad_data",
                "the login body is too large",
            );
        }
    };
    let (user, password) = match login_credentials(form, &body) {
        Ok(credentials) => credentials,
        Err(message) => return error_json(StatusCode::BAD_REQUEST, "bad_data", message),
    };
    let state = auth.web.current();
    let config = &state.config;
    if !config.authentication_enabled() {
        return error_json(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "authentication is not configured",
        );
    }
    if user.is_empty() || !auth.check_password(config, &user, &password) {
        auth.audit.record(
            &AuditEntry {
                user: &user,
                role: None,
                source: &source,
                action: "login",
                target: "/api/osprey/login",
                outcome: "denied: wrong user name or password",
            },
            config.audit_stdout,
        );
        return error_json(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong user name or password",
        );
    }
    let role = config.role_of(&user);
    let (token, csrf) = auth.start_session(&user, role);
    auth.audit.record(
        &AuditEntry {
            user: &user,
            role: Some(role),
            source: &source,
            action: "login",
            target: "/api/osprey/login",
            outcome: "ok",
        },
        config.audit_stdout,
    );
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_IDLE.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let mut response = axum::Json(json!({
        "status": "success",
        "data": {"user": user, "role": role.as_str(), "csrfToken": csrf},
    }))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /api/osprey/logout`: ends the session.
pub async fn logout(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        let user = lock(&auth.sessions)
            .get(&token)
            .map(|s| s.user.clone())
            .unwrap_or_default();
        auth.end_session(&token);
        auth.audit.record(
            &AuditEntry {
                user: &user,
                role: None,
                source: "",
                action: "logout",
                target: "/api/osprey/logout",
                outcome: "ok",
            },
            auth.web.current().config.audit_stdout,
        );
    }
    let mut response = axum::Json(json!({"status": "success", "data": null})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("osprey_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// `GET /api/osprey/whoami`: who the request is, its role, what the
/// configuration protects, and the session's CSRF token.
pub async fn whoami(State(auth): State<Arc<Auth>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<PeerInfo>>()
        .map(|c| c.0.clone());
    let state = auth.web.current();
    let config = &state.config;
    let principal = auth
        .principal(config, request.headers(), peer.as_ref())
        .unwrap_or_else(|_| Principal::nobody());
    let csrf =
        cookie(request.headers(), SESSION_COOKIE).and_then(|token| auth.session_csrf(&token));
    let authenticated = principal.how != Credential::Nobody;
    axum::Json(json!({
        "status": "success",
        "data": {
            "authenticationEnabled": config.authentication_enabled(),
            "tls": state.tls.is_some(),
            "authenticated": authenticated,
            "user": if authenticated { Some(principal.name.clone()) } else { None },
            "role": if authenticated { Some(principal.role.as_str()) } else { None },
            "csrfToken": csrf,
        },
    }))
    .into_response()
}

/// `GET /api/osprey/audit?limit=N`: the newest audit records.
pub async fn audit_tail(State(auth): State<Arc<Auth>>, request: Request) -> Response {
    let limit = request
        .uri()
        .query()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "limit")
                .and_then(|(_, v)| v.parse::<usize>().ok())
        })
        .unwrap_or(500)
        .min(10_000);
    let records = auth.audit.tail(limit);
    axum::Json(json!({"status": "success", "data": records})).into_response()
}

/// The address a request came from, for logs.
pub fn source_ip(peer: Option<&SocketAddr>) -> Option<IpAddr> {
    peer.map(SocketAddr::ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers() {
        // "ada:pa:ss" in base64: the password may hold colons.
        assert_eq!(
            parse_authorization("Basic YWRhOnBhOnNz"),
            Ok(Presented::Basic {
                user: "ada".into(),
                password: "pa:ss".into()
            })
        );
        assert_eq!(
            parse_authorization("bearer  tok "),
            Ok(Presented::Bearer("tok".into()))
        );
        for bad in ["Basic", "Basic !!!", "Basic YWRh", "Basic //79"] {
            assert_eq!(
                parse_authorization(bad),
                Err("malformed basic authentication".into()),
                "{bad}"
            );
        }
        let long = format!("{} secret", "x".repeat(100));
        let error = parse_authorization(&long).unwrap_err();
        assert!(error.len() < 80 && !error.contains("secret"), "{error}");
    }

    #[test]
    fn login_bodies() {
        assert_eq!(
            login_credentials(true, b"username=ada&password=a%26b%3D&x=1"),
            Ok(("ada".into(), "a&b=".into()))
        );
        assert_eq!(
            login_credentials(false, br#"{"username":"ada","password":"pw"}"#),
            Ok(("ada".into(), "pw".into()))
        );
        assert_eq!(
            login_credentials(false, br#"{"username":1}"#),
            Ok((String::new(), String::new()))
        );
        assert!(login_credentials(false, b"username=ada").is_err());
    }

    #[test]
    fn roles_and_access() {
        assert!(Access::Read.allows(Role::Viewer));
        assert!(!Access::Read.allows(Role::Writer));
        assert!(Access::Write.allows(Role::Writer));
        assert!(!Access::Write.allows(Role::Viewer));
        assert!(Access::Write.allows(Role::Editor));
        assert!(Access::Edit.allows(Role::Editor));
        assert!(!Access::Edit.allows(Role::Viewer));
        assert!(!Access::Admin.allows(Role::Editor));
        assert!(Access::Admin.allows(Role::Admin));
        assert!(Access::Public.allows(Role::Writer));
    }

    #[test]
    fn token_buckets_refill() {
        let bucket = Bucket {
            per_second: 1000.0,
            burst: 2,
        };
        let mut tokens = TokenBucket::new(bucket);
        assert!(tokens.take(bucket).is_ok());
        assert!(tokens.take(bucket).is_ok());
        assert!(tokens.take(bucket).is_err());
        std::thread::sleep(Duration::from_millis(5));
        assert!(tokens.take(bucket).is_ok());
    }

    #[test]
    fn basic_credentials_and_cookies() {
        assert_eq!(
            decode_basic("YWxpY2U6czNjcjN0"),
            Some(("alice".to_string(), "s3cr3t".to_string()))
        );
        assert_eq!(decode_basic("not base64!"), None);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; osprey_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"diff"));
        assert!(!constant_time_eq(b"short", b"longer"));
    }

    #[test]
    fn the_dummy_hash_is_a_bcrypt_hash() {
        assert!(bcrypt::verify("anything", DUMMY_HASH).is_ok());
    }
}
