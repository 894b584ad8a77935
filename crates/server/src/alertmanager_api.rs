//! The Alertmanager API v2 over an [`alert::Alertmanager`]: `alerts`,
//! `alerts/groups`, `silences`, `silence/{id}`, `receivers` and `status`,
//! with the JSON shapes of Alertmanager 0.25's OpenAPI spec, so `amtool`,
//! Grafana and Prometheus can use osprey as their Alertmanager.
//!
//! The routes are generic over where the alert manager comes from
//! ([`AlertmanagerSource`]): `osprey server` finds it in its [`AppState`]
//! (and answers 503 when none is configured), `osprey alertmanager`
//! serves it alone through [`standalone_router`].
//!
//! Errors are Alertmanager's: a JSON string body with status 400 (bad
//! input), 404 (unknown silence) or 500.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use alert::notify::{ZERO_TIME_MS, format_time_api, parse_time};
use alert::silence::{Silence, SilenceError, SilenceState};
use alert::{AlertView, Alertmanager, PostableAlert};

use crate::AppState;

/// Where the handlers find the alert manager.
pub trait AlertmanagerSource: Clone + Send + Sync + 'static {
    fn alertmanager(&self) -> Option<Alertmanager>;
}

impl AlertmanagerSource for AppState {
    fn alertmanager(&self) -> Option<Alertmanager> {
        AppState::alertmanager(self)
    }
}

/// The state of `osprey alertmanager`: the alert manager alone.
#[derive(Clone)]
pub struct Standalone(pub Alertmanager);

impl AlertmanagerSource for Standalone {
    fn alertmanager(&self) -> Option<Alertmanager> {
        Some(self.0.clone())
    }
}

/// Largest `POST /api/v2/alerts` body: 10,000 alerts with generous labels
/// and annotations fit in well under this.
const MAX_ALERTS_BODY_BYTES: usize = 32 << 20;

/// The paths [`routes`] serves.
pub const PATHS: &[&str] = &[
    "/api/v2/status",
    "/api/v2/receivers",
    "/api/v2/alerts",
    "/api/v2/alerts/groups",
    "/api/v2/silences",
    "/api/v2/silence/{silenceID}",
];

/// The API v2 routes.
pub fn routes<S: AlertmanagerSource>() -> Router<S> {
    Router::new()
        .route("/api/v2/status", get(status::<S>))
        .route("/api/v2/receivers", get(receivers::<S>))
        .route(
            "/api/v2/alerts",
            get(get_alerts::<S>)
                .post(post_alerts::<S>)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_ALERTS_BODY_BYTES)),
        )
        .route("/api/v2/alerts/groups", get(get_groups::<S>))
        .route(
            "/api/v2/silences",
            get(get_silences::<S>).post(post_silences::<S>),
        )
        .route(
            "/api/v2/silence/{silenceID}",
            get(get_silence::<S>).delete(delete_silence::<S>),
        )
}

/// The read routes of Alertmanager's API v1 that 0.25 still served, for
/// scripts that curl them. Only `osprey alertmanager` serves them: on
/// `osprey server`, `/api/v1/alerts` is Prometheus's rule alerts.
pub const V1_PATHS: &[&str] = &["/api/v1/status", "/api/v1/alerts", "/api/v1/silences"];

/// The API v1 reads ([`V1_PATHS`]).
pub fn v1_routes<S: AlertmanagerSource>() -> Router<S> {
    Router::new()
        .route("/api/v1/status", get(v1_status::<S>))
        .route("/api/v1/alerts", get(v1_alerts::<S>))
        .route("/api/v1/silences", get(v1_silences::<S>))
}

/// The whole HTTP surface of `osprey alertmanager`: the API v2 and the v1
/// reads, its own metrics, and the health endpoints.
pub fn standalone_router(alertmanager: Alertmanager) -> Router {
    routes::<Standalone>()
        .merge(v1_routes::<Standalone>())
        .route("/metrics", get(standalone_metrics))
        .route("/-/healthy", get(|| async { "OK" }))
        .route("/-/ready", get(|| async { "OK" }))
        .fallback(crate::api::not_found)
        .with_state(Standalone(alertmanager))
}

async fn standalone_metrics(State(state): State<Standalone>) -> Response {
    let mut body = state.0.render_metrics();
    body.push_str("# EOF\n");
    (
        [(
            header::CONTENT_TYPE,
            crate::metrics::OPENMETRICS_CONTENT_TYPE,
        )],
        body,
    )
        .into_response()
}

/// Alertmanager's error body: a JSON string.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(Value::String(message.into()))).into_response()
}

fn ok_json(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

/// The answer when `osprey server` runs without an alert manager.
fn not_enabled() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the alert manager is not enabled: add an `alertmanager:` section to the configuration",
    )
}

async fn status<S: AlertmanagerSource>(State(state): State<S>) -> Response {
    let Some(am) = state.alertmanager() else {
        return not_enabled();
    };
    ok_json(json!({
        "cluster": cluster_json(&am),
        "config": {"original": config::mask::masked_yaml(&am.config_text())},
        "uptime": format_time_api(am.started_at_ms()),
        "versionInfo": {
            "branch": "osprey",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": concat!("osprey-", env!("CARGO_PKG_VERSION")),
            "version": "0.25.0",
        },
    }))
}

/// The status's `cluster`: this peer's name, `ready` or `settling`, and
/// every live member (itself included); `disabled` when running alone.
fn cluster_json(am: &Alertmanager) -> Value {
    match am.cluster_status() {
        None => json!({"name": "", "status": "disabled", "peers": []}),
        Some(status) => json!({
            "name": status.name,
            "status": status.status,
            "peers": status
                .peers
                .iter()
                .map(|peer| json!({"name": peer.name, "address": peer.address}))
                .collect::<Vec<_>>(),
        }),
    }
}

async fn receivers<S: AlertmanagerSource>(State(state): State<S>) -> Response {
    let Some(am) = state.alertmanager() else {
        return not_enabled();
    };
    let names: Vec<Value> = am
        .config()
        .receivers
        .iter()
        .map(|receiver| json!({"name": receiver.name}))
        .collect();
    ok_json(Value::Array(names))
}

/// The query parameters of `GET /api/v2/alerts` and `alerts/groups`.
struct AlertFilter {
    matchers: Vec<model::matcher::Matcher>,
    receiver: Option<regex::Regex>,
    active: bool,
    silenced: bool,
    inhibited: bool,
}

impl AlertFilter {
    fn parse(query: Option<&str>) -> Result<AlertFilter, String> {
        let mut filter = AlertFilter {
            matchers: Vec::new(),
            receiver: None,
            active: true,
            silenced: true,
            inhibited: true,
        };
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let flag = || match value.as_ref() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(format!("{key}: invalid boolean {other:?}")),
            };
            match key.as_ref() {
                "filter" => filter
                    .matchers
                    .push(config::alertmanager::matchers::parse_matcher(&value)?),
                "receiver" => {
                    let regex = regex::Regex::new(&format!("^(?:{value})$"))
                        .map_err(|e| format!("receiver: {e}"))?;
                    filter.receiver = Some(regex);
                }
                "active" => filter.active = flag()?,
                "silenced" => filter.silenced = flag()?,
                "inhibited" => filter.inhibited = flag()?,
                "unprocessed" => {
                    flag()?;
                }
                _ => {}
            }
        }
        Ok(filter)
    }

    fn keeps(&self, view: &AlertView) -> bool {
        if !self.active && view.state() == "active" {
            return false;
        }
        if !self.silenced && !view.silenced_by.is_empty() {
            return false;
        }
        if !self.inhibited && !view.inhibited_by.is_empty() {
            return false;
        }
        if let Some(regex) = &self.receiver
            && !view.receivers.iter().any(|name| regex.is_match(name))
        {
            return false;
        }
        model::matcher::matches_all(&view.alert.labels, &self.matchers)
    }
}

fn labels_object(labels: &model::Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|label| {
                (
                    label.name.to_string(),
                    Value::String(label.value.to_string()),
                )
            })
            .collect(),
    )
}

fn gettable_alert(view: &AlertView) -> Value {
    let alert = &view.alert;
    let annotations: Map<String, Value> = alert
        .annotations
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    let receivers: Vec<Value> = view
        .receivers
        .iter()
        .map(|name| json!({"name": name}))
        .collect();
    json!({
        "annotations": annotations,
        "endsAt": format_time_api(alert.ends_at_ms),
        "fingerprint": format!("{:016x}", alert.fingerprint),
        "receivers": receivers,
        "startsAt": format_time_api(alert.starts_at_ms),
        "status": {
            "inhibitedBy": view.inhibited_by,
            "silencedBy": view.silenced_by,
            "state": view.state(),
        },
        "updatedAt": format_time_api(alert.updated_at_ms),
        "generatorURL": alert.generator_url,
        "labels": labels_object(&alert.labels),
    })
}

async fn get_alerts<S: AlertmanagerSource>(
    State(state): State<S>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(am) = state.alertmanager() else {
        return not_enabled();
    };
    let filter = match AlertFilter::parse(query.as_deref()) {
        Ok(filter) => filter,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let alerts: Vec<Value> = am
        .alerts()
        .iter()
        .filter(|view| filter.keeps(view))
        .map(gettable_alert)
        .collect();
    ok_json(Value::Array(alerts))
}

async fn get_groups<S: AlertmanagerSource>(
    State(state): State<S>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(am) = state.alertmanager() else {
        return not_enabled();
    };
    let filter = match AlertFilter::parse(query.as_deref()) {
        Ok(filter) => filter,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let mut groups = Vec::new();
    for group in am.groups() {
        if let Some(regex) = &filter.receiver
            && !regex.is_match(&group.receiver)
        {
            continue;
        }
        let alerts: Vec<Value> = group
            .alerts
            .iter()
            .filter(|view| {
                // The receiver filter applies to the group, not the alert.
                let mut view = (*view).clone();
                view.receivers = vec![group.receiver.clone()];
                filter.keeps(&view)
            })
            .map(gettable_alert)
            .collect();
        if alerts.is_empty() {
            continue;
        }
        groups.push(json!({
            "alerts": alerts,
            "labels": labels_object(&group.labels),
            "receiver": {"name": group.receiver},
        }));
    }
    ok_json(Value::Array(groups))
}

/// A string-to-string JSON object, or an error naming the field.
fn string_pairs(value: Option<&Value>, field: &str) -> Result<Vec<(String, String)>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, value)| match value {
                Value::String(text) => Ok((name.clone(), text.clone())),
                _ => Err(format!("{field}.{name}: expected a string")),
            })
            .collect(),
        Some(_) => Err(format!("{field}: expected an object")),
    }
}

/// An optional time field; Go's zero time means absent.
fn optional_time(value: Option<&Value>, field: &str) -> Result<Option<i64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => match parse_time(text) {
            Some(ZERO_TIME_MS) => Ok(None),
            Some(ms) => Ok(Some(ms)),
            None => Err(format!("{field}: invalid time {text:?}")),
        },
        Some(_) => Err(format!("{field}: expected a time string")),
    }
}

fn postable_alerts(body: &[u8]) -> Result<Vec<PostableAlert>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Array(items) = value else {
        return Err("expected a JSON array of alerts".to_string());
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let field = format!("[{index}]");
            let Value::Object(object) = item else {
                return Err(format!("{field}: expected an object"));
            };
            if !object.contains_key("labels") {
                return Err(format!("{field}.labels in body is required"));
            }
            let generator_url = match object.get("generatorURL") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(_) => return Err(format!("{field}.generatorURL: expected a string")),
            };
            Ok(PostableAlert {
                labels: string_pairs(object.get("labels"), &format!("{field}.labels"))?,
                annotations: string_pairs(
                    object.get("annotations"),
                    &format!("{field}.annotations"),
                )?,
                starts_at_ms: optional_time(object.get("startsAt"), &format!("{field}.startsAt"))?,
                ends_at_ms: optional_time(object.get("endsAt"), &format!("{field}.endsAt"))?,
                generator_url,
            })
        })
        .collect()
}

async fn post_alerts<S: AlertmanagerSource>(State(state): State<S>, body: Bytes) -> Response {
    let Some(am) = state.alertmanager() else {
        return not_enabled();
    };
    let alerts = match postable_alerts(&body) {
        Ok(alerts) => alerts,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match am.put_alerts(alerts) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(errors) => error(StatusCode::BAD_REQUEST, errors.to_string()),
    }
}

fn gettable_silence(silence: &Silence, now: i64) -> Value {
    let matchers: Vec<Value> = silence
        .matchers
        .iter()
        .map(|m| {
            use model::matcher::MatchOp;
            json!({
                "isEqual": matches!(m.op(), MatchOp::Equal | MatchOp::RegexMatch),
                "isRegex": matches!(m.op(), MatchOp::RegexMatch | MatchOp::RegexNoMatch),
                "name": m.name(),
                "value": m.value(),
            })
        })
        .collect();
    json!({
        "id": silence.id,
        "status": {"state": silence.state(now).as_str()},
        "updatedAt": format_time_api(silence.updated_at_ms),
        "comment": silence.comment,
        "createdBy": silence.created_by,
        "endsAt": format_time_api(silence.ends_at_ms),
        "matchers": matchers,
        "startsAt": format_time_api(silence.starts_at_ms),
    })
}

fn now_ms() -> i64 {
    crate::system_clock_ms()
}

async fn get_silences<S: AlertmanagerSource>(
    State(state): State<S>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(am) = state.alertmanager() else {
        return not_enabled();
    };
    let mut filters = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        if key == "filter" {
            match config::alertmanager::matchers::parse_matcher(&value) {
                Ok(matcher) => filters.push(matcher),
                Err(message) => return error(StatusCode::BAD_REQUEST, message),
            }
        }
    }
    let now = now_ms();
    let mut silences: Vec<Silence> = am
        .silences()
        .list()
        .into_iter()
        .filter(|silence| {
            // A silence matches a filter when its matchers, read as a
            // label set, satisfy it (Alertmanager's rule).
            let labels = model::Labels::from_pairs(
                silence
                    .matchers
                    .iter()
                    .map(|m| (m.name().to_string(), m.value().to_string())),
            );
            model::matcher::matches_all(&labels, &filters)
        })
        .collect();
    sort_silences(&mut silences, now);
    ok_json(Value::Array(
        silences
            .iter()
            .map(|silence| gettable_silence(silence, now))
            .collect(),
    ))
}

/// Active first (ending soonest first), then pending (starting soonest
/// first), then expired (most recently ended first).
fn sort_silences(silences: &mut [Silence], now: i64) {
    silences.sort_by(|a, b| {
        let rank = |s: &Silence| match s.state(now) {
            SilenceState::Active => 0,
            SilenceState::Pending => 1,
            SilenceState::Expired => 2,
        };
        rank(a).cmp(&rank(b)).then_with(|| match a.state(now) {
            SilenceState::Active => a.ends_at_ms.cmp(&b.ends_at_ms),
            SilenceState::Pending => a.starts_at_ms.cmp(&b.starts_at_ms),
            SilenceState::Expired => b.ends_at_ms.cmp(&a.ends_at_ms),
        })
    });
}

fn postable_silence(body: &[u8]) -> Result<Silence, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err("expected a JSON object".to_string());
    };
    let text = |field: &str| -> Result<String, String> {
        match object.get(field) {
            Some(Value::String(text)) => Ok(text.clone()),
            None | Some(Value::Null) => Err(format!("{field} in body is required")),
            Some(_) => Err(format!("{field}: expected a string")),
        }
    };
    let id = match object.get("id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err("id: expected a string".to_string()),
    };
    let Some(Value::Array(items)) = object.get("matchers") else {
        return Err("matchers in body is required".to_string());
    };
    let mut matchers = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let field = format!("matchers[{index}]");
        let Value::Object(m) = item else {
            return Err(format!("{field}: expected an object"));
        };
        let string = |key: &str| match m.get(key) {
            Some(Value::String(text)) => Ok(text.clone()),
            _ => Err(format!("{field}.{key} in body is required")),
        };
        let flag = |key: &str, default: Option<bool>| match (m.get(key), default) {
            (Some(Value::Bool(value)), _) => Ok(*value),
            (None | Some(Value::Null), Some(default)) => Ok(default),
            _ => Err(format!("{field}.{key} in body is required")),
        };
        let op = alert::silence::match_op(flag("isRegex", None)?, flag("isEqual", Some(true))?);
        let matcher = model::matcher::Matcher::new(op, string("name")?, string("value")?)
            .map_err(|e| e.to_string())?;
        matchers.push(matcher);
    }
    let time = |field: &str| -> Result<i64, String> {
        let value = text(field)?;
        parse_time(&value).ok_or_else(|| format!("{field}: invalid time {value:?}"))
    };
    let starts_at_ms = time("startsAt")?;
    let ends_at_ms = time("endsAt")?;
    if starts_at_ms >= ends_at_ms {
        return Err("Failed to create silence: start time must be before end time".to_string());
    }
    Ok(Silence {
        id,
        matchers,
        starts_at_ms,
        ends_at_ms,
        updated_at_ms: 0,
        created_by: text("createdBy")?,
        comment: text("comment")?,
    })
}

async fn post_silences<S: AlertmanagerSource>(State(state): State<S>, body: Bytes) -> Response {
    let Some(am) = state.alertmanager() else {
        return not_enabled();
    };
    let silence = match postable_silence(&body) {
        Ok(silence) => silence,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let now = now_ms();
    if silence.ends_at_ms < now {
        return error(
            StatusCode::BAD_REQUEST,
            "Failed to create silence: end time can't be in the past",
        );
    }
    // Setting a silence fsyncs its file: off the async workers.
    let result = tokio::task::spawn_blocking(move || am.silences().set(silence, now)).await;
    match result {
        Ok(Ok(id)) => ok_json(json!({"silenceID": id})),
        Ok(Err(SilenceError::NotFound)) => error(StatusCode::NOT_FOUND, "silence not found"),
        Ok(Err(SilenceError::Invalid(message))) => error(StatusCode::BAD_REQUEST, message),
        Ok(Err(other)) => error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn get_silence<S: AlertmanagerSource>(
    State(state): State<S>,
    Path(id): Path<String>,
) -> Response {
    let Some(am) = state.alertmanager() else {
        return not_enabled();
    };
    match am.silences().get(&id) {
        Some(silence) => ok_json(gettable_silence(&silence, now_ms())),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete_silence<S: AlertmanagerSource>(
    State(state): State<S>,
    Path(id): Path<String>,
) -> Response {
    let Some(am) = state.alertmanager() else {
        return not_enabled();
    };
    let now = now_ms();
    let result = tokio::task::spawn_blocking(move || am.silences().expire(&id, now)).await;
    match result {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(SilenceError::NotFound)) => StatusCode::NOT_FOUND.into_response(),
        Ok(Err(other)) => error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

// ---------------------------------------------------------------------------
// API v1 (reads only), as Alertmanager 0.25 answered them: an envelope
// `{"status": "success", "data": ...}`, errors as
// `{"status": "error", "errorType": "bad_data", "error": ...}` with 400.

fn v1_success(data: Value) -> Response {
    ok_json(json!({"status": "success", "data": data}))
}

fn v1_error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "errorType": kind, "error": message.into()})),
    )
        .into_response()
}

fn v1_not_enabled() -> Response {
    v1_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the alert manager is not enabled",
    )
}

/// The `filter` parameter: one matcher list, `{a="b",c=~"d"}` (braces
/// optional); absent or empty matches everything.
fn v1_filter(query: Option<&str>) -> Result<Vec<model::matcher::Matcher>, String> {
    let mut matchers = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "filter" && !value.is_empty() {
            matchers = config::alertmanager::matchers::parse_matchers(&value)?;
        }
    }
    Ok(matchers)
}

/// A YAML node as JSON: mappings keep their order, keys become strings.
fn yaml_to_json(node: &yaml::Node) -> Value {
    use yaml::NodeValue;
    match &node.value {
        NodeValue::Null => Value::Null,
        NodeValue::Bool(b) => Value::Bool(*b),
        NodeValue::Int(i) => i64::try_from(*i).map_or_else(|_| json!(i.to_string()), |i| json!(i)),
        NodeValue::Float(f) => json!(f),
        NodeValue::String(s) => Value::String(s.clone()),
        NodeValue::Sequence(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        NodeValue::Mapping(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match &k.value {
                        NodeValue::String(s) => s.clone(),
                        _ => yaml_to_json(k).to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
    }
}

async fn v1_status<S: AlertmanagerSource>(State(state): State<S>) -> Response {
    let Some(am) = state.alertmanager() else {
        return v1_not_enabled();
    };
    let masked = config::mask::masked_yaml(&am.config_text());
    // The configuration as written (secrets masked), not with every
    // default filled in as Alertmanager's own structure has it.
    let config_json = yaml::parse_document(&masked)
        .map(|node| yaml_to_json(&node))
        .unwrap_or(Value::Null);
    v1_success(json!({
        "configYAML": masked,
        "configJSON": config_json,
        "versionInfo": {
            "branch": "osprey",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": concat!("osprey-", env!("CARGO_PKG_VERSION")),
            "version": "0.25.0",
        },
        "uptime": format_time_api(am.started_at_ms()),
        // Alertmanager answers null when it runs without a cluster.
        "clusterStatus": am.cluster_status().map_or(Value::Null, |_| cluster_json(&am)),
    }))
}

/// `GET /api/v1/alerts`: the alerts not yet resolved, by fingerprint, with
/// the v1 filters (`filter`, `receiver`, `active`, `silenced`,
/// `inhibited`, `unprocessed`).
async fn v1_alerts<S: AlertmanagerSource>(
    State(state): State<S>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(am) = state.alertmanager() else {
        return v1_not_enabled();
    };
    // v1 takes one matcher list in `filter`, not one matcher per value:
    // the other parameters are read as v2 reads them.
    let rest: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
                .filter(|(key, _)| key != "filter"),
        )
        .finish();
    let filter = match AlertFilter::parse(Some(&rest)).and_then(|mut f| {
        f.matchers = v1_filter(query.as_deref())?;
        Ok(f)
    }) {
        Ok(filter) => filter,
        Err(message) => return v1_error(StatusCode::BAD_REQUEST, "bad_data", message),
    };
    let now = now_ms();
    let mut alerts: Vec<(String, Value)> = am
        .alerts()
        .iter()
        .filter(|view| view.alert.ends_at_ms == ZERO_TIME_MS || view.alert.ends_at_ms > now)
        .filter(|view| filter.keeps(view))
        .map(|view| {
            let alert = &view.alert;
            let fingerprint = format!("{:016x}", alert.fingerprint);
            let annotations: Map<String, Value> = alert
                .annotations
                .iter()
                .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                .collect();
            let value = json!({
                "labels": labels_object(&alert.labels),
                "annotations": annotations,
                "startsAt": format_time_api(alert.starts_at_ms),
                "endsAt": format_time_api(alert.ends_at_ms),
                "generatorURL": alert.generator_url,
                "status": {
                    "state": view.state(),
                    "silencedBy": null_if_empty(&view.silenced_by),
                    "inhibitedBy": null_if_empty(&view.inhibited_by),
                },
                "receivers": view.receivers,
                "fingerprint": fingerprint,
            });
            (fingerprint, value)
        })
        .collect();
    alerts.sort_by(|a, b| a.0.cmp(&b.0));
    v1_success(Value::Array(alerts.into_iter().map(|(_, v)| v).collect()))
}

/// A list, or null when empty (as Go writes a nil slice in v1).
fn null_if_empty(list: &[String]) -> Value {
    if list.is_empty() {
        Value::Null
    } else {
        json!(list)
    }
}

/// `GET /api/v1/silences`: active (ending soonest first), then pending,
/// then expired (most recently ended first), as v2 orders them.
async fn v1_silences<S: AlertmanagerSource>(
    State(state): State<S>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(am) = state.alertmanager() else {
        return v1_not_enabled();
    };
    let filters = match v1_filter(query.as_deref()) {
        Ok(filters) => filters,
        Err(message) => return v1_error(StatusCode::BAD_REQUEST, "bad_data", message),
    };
    let now = now_ms();
    let mut silences: Vec<Silence> = am
        .silences()
        .list()
        .into_iter()
        .filter(|silence| {
            let labels = model::Labels::from_pairs(
                silence
                    .matchers
                    .iter()
                    .map(|m| (m.name().to_string(), m.value().to_string())),
            );
            model::matcher::matches_all(&labels, &filters)
        })
        .collect();
    sort_silences(&mut silences, now);
    v1_success(Value::Array(
        silences
            .iter()
            .map(|silence| gettable_silence(silence, now))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postable_alert_shapes() {
        let alerts = postable_alerts(
            br#"[{"labels":{"alertname":"x"},"annotations":{"s":"y"},"startsAt":"0001-01-01T00:00:00.000Z","endsAt":"1970-01-01T00:00:01Z","generatorURL":"http://p"}]"#,
        )
        .unwrap();
        assert_eq!(
            alerts[0].labels,
            vec![("alertname".to_string(), "x".to_string())]
        );
        assert_eq!(alerts[0].starts_at_ms, None);
        assert_eq!(alerts[0].ends_at_ms, Some(1000));
        assert!(postable_alerts(br#"[{"annotations":{}}]"#).is_err());
        assert!(postable_alerts(br#"{"labels":{}}"#).is_err());
        assert!(postable_alerts(br#"[{"labels":{"a":1}}]"#).is_err());
    }

    #[test]
    fn postable_silence_shapes() {
        let silence = postable_silence(
            br#"{"matchers":[{"name":"a","value":"b.*","isRegex":true}],"startsAt":"2030-01-01T00:00:00Z","endsAt":"2030-01-01T01:00:00Z","createdBy":"me","comment":"c"}"#,
        )
        .unwrap();
        assert_eq!(
            silence.matchers[0].op(),
            model::matcher::MatchOp::RegexMatch
        );
        assert!(postable_silence(br#"{"matchers":[]}"#).is_err());
    }
}
