//! Notification data and the receivers' wire formats.
//!
//! [`Data`] is what Alertmanager hands its templates and its webhook: the
//! receiver, the group's status, labels common to all alerts, and the
//! alerts. [`webhook_payload`] is Alertmanager's webhook JSON (version
//! "4"); [`send_with_retries`] posts a body until it succeeds, fails for
//! good (a 4xx), or the flush's deadline passes, backing off between tries.

use config::HttpClient;
use std::time::Duration;

use model::time::{Fraction, Rfc3339Grammar};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::alerts::Alert;

/// One alert as notifications show it.
#[derive(Clone, Debug)]
pub struct DataAlert {
    pub firing: bool,
    pub alert: Alert,
}

/// The data of one notification.
#[derive(Clone, Debug)]
pub struct Data {
    pub receiver: String,
    pub firing: bool,
    pub alerts: Vec<DataAlert>,
    pub group_labels: Vec<(String, String)>,
    pub common_labels: Vec<(String, String)>,
    pub common_annotations: Vec<(String, String)>,
    pub external_url: String,
    pub group_key: String,
}

impl Data {
    /// Builds the data for alerts that are already in notification order.
    pub fn new(
        receiver: &str,
        group_key: &str,
        group_labels: &model::Labels,
        alerts: Vec<DataAlert>,
        external_url: &str,
    ) -> Data {
        let firing = alerts.iter().any(|alert| alert.firing);
        let common_labels = common(alerts.iter().map(|a| {
            a.alert
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect::<Vec<_>>()
        }));
        let common_annotations = common(alerts.iter().map(|a| a.alert.annotations.clone()));
        Data {
            receiver: receiver.to_string(),
            firing,
            alerts,
            group_labels: group_labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect(),
            common_labels,
            common_annotations,
            external_url: external_url.to_string(),
            group_key: group_key.to_string(),
        }
    }

    pub fn status(&self) -> &'static str {
        if self.firing { "firing" } else { "resolved" }
    }
}

/// The pairs every list has (all lists sorted by name).
fn common(mut lists: impl Iterator<Item = Vec<(String, String)>>) -> Vec<(String, String)> {
    let Some(mut shared) = lists.next() else {
        return Vec::new();
    };
    for list in lists {
        shared.retain(|pair| list.binary_search(pair).is_ok());
    }
    shared
}

/// Go's `time.Time` JSON form (RFC 3339 with the fraction trimmed), UTC;
/// `None` is Go's zero time.
pub fn format_time(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => model::time::format_rfc3339_ms(ms, Fraction::Trimmed),
        None => "0001-01-01T00:00:00Z".to_string(),
    }
}

/// Go's zero time (`0001-01-01T00:00:00Z`) in Unix milliseconds, which
/// clients send to mean "not set".
pub const ZERO_TIME_MS: i64 = -62_135_596_800_000;

/// The API's time form (go-openapi's `strfmt.DateTime`): RFC 3339 with
/// exactly three fraction digits, UTC.
pub fn format_time_api(ms: i64) -> String {
    model::time::format_rfc3339_ms(ms, Fraction::Millis)
}

/// Parses an RFC 3339 time (`2026-11-22T06:04:00.123Z`, any fraction
/// length, `Z` or `±HH:MM`, RFC 3339's lower-case and space forms too)
/// into Unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    model::time::parse_rfc3339_ms(text, Rfc3339Grammar::Rfc)
}

fn pairs_object(pairs: &[(String, String)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlert {
    status: &'static str,
    labels: Map<String, Value>,
    annotations: Map<String, Value>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: String,
    fingerprint: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookMessage {
    receiver: String,
    status: &'static str,
    alerts: Vec<WebhookAlert>,
    group_labels: Map<String, Value>,
    common_labels: Map<String, Value>,
    common_annotations: Map<String, Value>,
    #[serde(rename = "externalURL")]
    external_url: String,
    version: &'static str,
    group_key: String,
    truncated_alerts: u64,
}

/// One alert in the JSON shape shared by the webhook and templates.
fn webhook_alert(alert: &DataAlert) -> WebhookAlert {
    let labels: Vec<(String, String)> = alert
        .alert
        .labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    WebhookAlert {
        status: if alert.firing { "firing" } else { "resolved" },
        labels: pairs_object(&labels),
        annotations: pairs_object(&alert.alert.annotations),
        starts_at: format_time(Some(alert.alert.starts_at_ms)),
        ends_at: format_time((!alert.firing).then_some(alert.alert.ends_at_ms)),
        generator_url: alert.alert.generator_url.clone(),
        fingerprint: format!("{:016x}", alert.alert.fingerprint),
    }
}

/// Alertmanager's webhook body; `max_alerts` 0 sends all alerts.
pub fn webhook_payload(data: &Data, max_alerts: u64) -> Vec<u8> {
    let limit = if max_alerts == 0 {
        data.alerts.len()
    } else {
        data.alerts
            .len()
            .min(usize::try_from(max_alerts).unwrap_or(usize::MAX))
    };
    let message = WebhookMessage {
        receiver: data.receiver.clone(),
        status: data.status(),
        alerts: data.alerts.iter().take(limit).map(webhook_alert).collect(),
        group_labels: pairs_object(&data.group_labels),
        common_labels: pairs_object(&data.common_labels),
        common_annotations: pairs_object(&data.common_annotations),
        external_url: data.external_url.clone(),
        version: "4",
        group_key: data.group_key.clone(),
        truncated_alerts: (data.alerts.len() - limit) as u64,
    };
    serde_json::to_vec(&message).unwrap_or_default()
}

/// One HTTP request of a notification.
pub struct Request<'a> {
    pub url: &'a str,
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

/// Why a notification failed.
#[derive(Debug)]
pub struct SendError {
    pub message: String,
    /// Whether trying again may help (network errors, 5xx, 429).
    pub retry: bool,
}

/// Sends one request.
pub async fn send_once(client: &HttpClient, request: &Request<'_>) -> Result<(), SendError> {
    let builder = client
        .request(reqwest::Method::POST, request.url)
        .await
        .map_err(|message| SendError {
            message,
            retry: true,
        })?
        .header("Content-Type", request.content_type)
        .body(request.body.clone());
    match builder.send().await {
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let body = response.text().await.unwrap_or_default();
            let snippet: String = body.chars().take(200).collect();
            Err(SendError {
                message: format!("unexpected status code {}: {snippet}", status.as_u16()),
                retry: status.is_server_error() || status.as_u16() == 429,
            })
        }
        Err(error) => Err(SendError {
            message: config::client::describe_error(&error),
            retry: true,
        }),
    }
}

/// First wait between tries; each later wait is 1.5 times longer, up to
/// [`MAX_BACKOFF`]. These are the defaults of the backoff library
/// Alertmanager uses (cenkalti/backoff), without its jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Sends until success, a non-retryable error, or `deadline`. Returns the
/// number of failed attempts along with the result.
pub async fn send_with_retries(
    client: &HttpClient,
    request: &Request<'_>,
    deadline: tokio::time::Instant,
) -> (Result<(), SendError>, u32) {
    retry_until(deadline, || send_once(client, request)).await
}

/// Runs `attempt` until it succeeds, fails for good, or `deadline`
/// passes, backing off between tries.
pub async fn retry_until<F, Fut>(
    deadline: tokio::time::Instant,
    mut attempt: F,
) -> (Result<(), SendError>, u32)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), SendError>>,
{
    let mut wait = FIRST_BACKOFF;
    let mut failures = 0;
    loop {
        let error = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(())) => return (Ok(()), failures),
            Ok(Err(error)) => error,
            Err(_) => SendError {
                message: "notification timed out".to_string(),
                retry: false,
            },
        };
        failures += 1;
        if !error.retry || tokio::time::Instant::now() + wait >= deadline {
            return (Err(error), failures);
        }
        tracing::debug!(error = %error.message, "notification failed; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait.mul_f64(1.5)).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_format() {
        assert_eq!(format_time(None), "0001-01-01T00:00:00Z");
        assert_eq!(format_time(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_time(Some(1_763_791_440_120)),
            "2025-11-22T06:04:00.12Z"
        );
    }

    #[test]
    fn api_times() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_time("1970-01-01T01:00:01.5+01:00"), Some(1500));
        assert_eq!(parse_time("0001-01-01T00:00:00.000Z"), Some(ZERO_TIME_MS));
        assert_eq!(
            parse_time("2025-11-22T06:04:00.123456789Z"),
            Some(1_763_791_440_123)
        );
        assert_eq!(parse_time("2025-11-22"), None);
        assert_eq!(parse_time("2025-11-22T06:04:00"), None);
        assert_eq!(
            format_time_api(1_763_791_440_120),
            "2025-11-22T06:04:00.120Z"
        );
        assert_eq!(format_time_api(ZERO_TIME_MS), "0001-01-01T00:00:00.000Z");
    }

    #[test]
    fn webhook_shape() {
        let alert = crate::alerts::receive(
            crate::alerts::PostableAlert {
                labels: vec![
                    ("alertname".into(), "Down".into()),
                    ("job".into(), "x".into()),
                ],
                annotations: vec![("summary".into(), "s".into())],
                starts_at_ms: Some(1000),
                ..Default::default()
            },
            1000,
            60_000,
        )
        .unwrap();
        let group_labels = model::Labels::from_pairs([("alertname", "Down")]);
        let data = Data::new(
            "r",
            "{}:{alertname=\"Down\"}",
            &group_labels,
            vec![DataAlert {
                firing: true,
                alert,
            }],
            "http://am",
        );
        let body: Value = serde_json::from_slice(&webhook_payload(&data, 0)).unwrap();
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["commonLabels"]["job"], "x");
        assert_eq!(body["commonAnnotations"]["summary"], "s");
        assert_eq!(
            body["groupLabels"],
            serde_json::json!({"alertname": "Down"})
        );
        assert_eq!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(body["alerts"][0]["startsAt"], "1970-01-01T00:00:01Z");
        assert_eq!(body["truncatedAlerts"], 0);
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 10);
    }
}

/// Expands one config field (a template) with the notification data.
pub(crate) fn expand(
    templates: &crate::template::NotificationTemplates,
    text: &str,
    data: &template::Value,
) -> Result<String, SendError> {
    templates.expand(text, data).map_err(|message| SendError {
        message: format!("template: {message}"),
        retry: false,
    })
}

/// `text` cut to `max` characters, the last one replaced by `…`, as
/// Alertmanager truncates titles and summaries.
fn truncate(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The Slack message for a notification (Slack's incoming-webhook JSON
/// with one attachment, as Alertmanager sends it).
pub fn slack_payload(
    config: &config::alertmanager::SlackConfig,
    data: &Data,
    templates: &crate::template::NotificationTemplates,
) -> Result<Vec<u8>, SendError> {
    let value = crate::template::data_value(data);
    let field = |name: &str, default: &str| -> Result<String, SendError> {
        let text = config
            .fields
            .get(name)
            .map(String::as_str)
            .unwrap_or(default);
        expand(templates, text, &value)
    };
    let title = truncate(
        field("title", r#"{{ template "slack.default.title" . }}"#)?,
        1024,
    );
    let mut attachment = Map::new();
    let put_nonempty = |map: &mut Map<String, Value>, key: &str, text: String| {
        if !text.is_empty() {
            map.insert(key.to_string(), Value::String(text));
        }
    };
    put_nonempty(&mut attachment, "title", title);
    put_nonempty(
        &mut attachment,
        "title_link",
        field(
            "title_link",
            r#"{{ template "slack.default.titlelink" . }}"#,
        )?,
    );
    put_nonempty(
        &mut attachment,
        "pretext",
        field("pretext", r#"{{ template "slack.default.pretext" . }}"#)?,
    );
    attachment.insert(
        "text".into(),
        Value::String(field("text", r#"{{ template "slack.default.text" . }}"#)?),
    );
    attachment.insert(
        "fallback".into(),
        Value::String(field(
            "fallback",
            r#"{{ template "slack.default.fallback" . }}"#,
        )?),
    );
    attachment.insert(
        "callback_id".into(),
        Value::String(field(
            "callback_id",
            r#"{{ template "slack.default.callbackid" . }}"#,
        )?),
    );
    put_nonempty(&mut attachment, "image_url", field("image_url", "")?);
    put_nonempty(&mut attachment, "thumb_url", field("thumb_url", "")?);
    attachment.insert(
        "footer".into(),
        Value::String(field(
            "footer",
            r#"{{ template "slack.default.footer" . }}"#,
        )?),
    );
    put_nonempty(
        &mut attachment,
        "color",
        field(
            "color",
            r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#,
        )?,
    );
    if !config.attachment_fields.is_empty() {
        let short_default = config
            .fields
            .get("short_fields")
            .is_some_and(|v| v == "true");
        let mut fields = Vec::with_capacity(config.attachment_fields.len());
        for slack_field in &config.attachment_fields {
            let mut object = Map::new();
            put_nonempty(
                &mut object,
                "title",
                expand(templates, &slack_field.title, &value)?,
            );
            put_nonempty(
                &mut object,
                "value",
                expand(templates, &slack_field.value, &value)?,
            );
            object.insert(
                "short".into(),
                Value::Bool(slack_field.short.unwrap_or(short_default)),
            );
            fields.push(Value::Object(object));
        }
        attachment.insert("fields".into(), Value::Array(fields));
    }
    if !config.actions.is_empty() {
        let mut actions = Vec::with_capacity(config.actions.len());
        for action in &config.actions {
            let mut object = Map::new();
            for (key, text) in [
                ("type", &action.kind),
                ("text", &action.text),
                ("url", &action.url),
                ("style", &action.style),
                ("name", &action.name),
                ("value", &action.value),
            ] {
                put_nonempty(&mut object, key, expand(templates, text, &value)?);
            }
            if let Some(confirm) = &action.confirm {
                let mut dialog = Map::new();
                for (key, text) in [
                    ("title", &confirm.title),
                    ("text", &confirm.text),
                    ("ok_text", &confirm.ok_text),
                    ("dismiss_text", &confirm.dismiss_text),
                ] {
                    put_nonempty(&mut dialog, key, expand(templates, text, &value)?);
                }
                object.insert("confirm".into(), Value::Object(dialog));
            }
            actions.push(Value::Object(object));
        }
        attachment.insert("actions".into(), Value::Array(actions));
    }
    let mrkdwn_in: Vec<Value> = match &config.mrkdwn_in {
        Some(list) if !list.is_empty() => list.iter().map(|s| Value::String(s.clone())).collect(),
        _ => ["fallback", "pretext", "text"]
            .iter()
            .map(|s| Value::String(s.to_string()))
            .collect(),
    };
    attachment.insert("mrkdwn_in".into(), Value::Array(mrkdwn_in));
    let mut message = Map::new();
    put_nonempty(&mut message, "channel", field("channel", "")?);
    put_nonempty(
        &mut message,
        "username",
        field("username", r#"{{ template "slack.default.username" . }}"#)?,
    );
    put_nonempty(
        &mut message,
        "icon_emoji",
        field(
            "icon_emoji",
            r#"{{ template "slack.default.iconemoji" . }}"#,
        )?,
    );
    put_nonempty(
        &mut message,
        "icon_url",
        field("icon_url", r#"{{ template "slack.default.iconurl" . }}"#)?,
    );
    if config.fields.get("link_names").is_some_and(|v| v == "true") {
        message.insert("link_names".into(), Value::Bool(true));
    }
    message.insert(
        "attachments".into(),
        Value::Array(vec![Value::Object(attachment)]),
    );
    Ok(serde_json::to_vec(&Value::Object(message)).unwrap_or_default())
}

/// Alertmanager's default PagerDuty `details`.
const PAGERDUTY_DEFAULT_DETAILS: [(&str, &str); 4] = [
    (
        "firing",
        r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#,
    ),
    (
        "resolved",
        r#"{{ template "pagerduty.default.instances" .Alerts.Resolved }}"#,
    ),
    ("num_firing", "{{ .Alerts.Firing | len }}"),
    ("num_resolved", "{{ .Alerts.Resolved | len }}"),
];

/// The PagerDuty Events API v2 event for a notification: `trigger` while
/// anything fires, `resolve` after; the dedup key is the SHA-256 of the
/// group key, so PagerDuty keeps one incident per group.
pub fn pagerduty_payload(
    config: &config::alertmanager::PagerdutyConfig,
    data: &Data,
    templates: &crate::template::NotificationTemplates,
) -> Result<Vec<u8>, SendError> {
    let value = crate::template::data_value(data);
    let field = |name: &str, default: &str| -> Result<String, SendError> {
        let text = config
            .fields
            .get(name)
            .map(String::as_str)
            .unwrap_or(default);
        expand(templates, text, &value)
    };
    let client = field("client", r#"{{ template "pagerduty.default.client" . }}"#)?;
    let mut details = Map::new();
    for (key, text) in PAGERDUTY_DEFAULT_DETAILS {
        if !config.details.contains_key(key) {
            details.insert(
                key.to_string(),
                Value::String(expand(templates, text, &value)?),
            );
        }
    }
    for (key, text) in &config.details {
        details.insert(key.clone(), Value::String(expand(templates, text, &value)?));
    }
    let trigger = data.firing;
    let mut message = Map::new();
    if config.routing_key.is_none()
        && let Some(service_key) = &config.service_key
    {
        // Events API v1 (a `service_key` alone), as Alertmanager sends it.
        message.insert(
            "service_key".into(),
            Value::String(expand(templates, service_key, &value)?),
        );
        message.insert(
            "event_type".into(),
            Value::String(if trigger { "trigger" } else { "resolve" }.into()),
        );
        message.insert(
            "incident_key".into(),
            Value::String(sha256_hex(data.group_key.as_bytes())),
        );
        message.insert(
            "description".into(),
            Value::String(truncate(
                field(
                    "description",
                    r#"{{ template "pagerduty.default.description" . }}"#,
                )?,
                1024,
            )),
        );
        if trigger {
            message.insert("client".into(), Value::String(client));
            message.insert(
                "client_url".into(),
                Value::String(field(
                    "client_url",
                    r#"{{ template "pagerduty.default.clientURL" . }}"#,
                )?),
            );
        }
        message.insert("details".into(), Value::Object(details));
        return Ok(serde_json::to_vec(&Value::Object(message)).unwrap_or_default());
    }
    if let Some(key) = &config.routing_key {
        message.insert(
            "routing_key".into(),
            Value::String(expand(templates, key, &value)?),
        );
    }
    message.insert(
        "dedup_key".into(),
        Value::String(sha256_hex(data.group_key.as_bytes())),
    );
    message.insert(
        "event_action".into(),
        Value::String(if trigger { "trigger" } else { "resolve" }.into()),
    );
    let payload = if trigger {
        let mut payload = Map::new();
        payload.insert(
            "summary".into(),
            Value::String(truncate(
                field(
                    "description",
                    r#"{{ template "pagerduty.default.description" . }}"#,
                )?,
                1024,
            )),
        );
        let source = match config.fields.get("source") {
            Some(text) => expand(templates, text, &value)?,
            None => client.clone(),
        };
        payload.insert("source".into(), Value::String(source));
        payload.insert(
            "severity".into(),
            Value::String(field("severity", "error")?),
        );
        for key in ["class", "component", "group"] {
            let text = field(key, "")?;
            if !text.is_empty() {
                payload.insert(key.into(), Value::String(text));
            }
        }
        payload.insert("custom_details".into(), Value::Object(details));
        Value::Object(payload)
    } else {
        Value::Null
    };
    message.insert("payload".into(), payload);
    let mut images = Vec::new();
    for image in &config.images {
        let src = expand(templates, &image.src, &value)?;
        if src.is_empty() {
            continue;
        }
        let mut object = Map::new();
        object.insert("src".into(), Value::String(src));
        for (key, text) in [("alt", &image.alt), ("href", &image.href)] {
            let text = expand(templates, text, &value)?;
            if !text.is_empty() {
                object.insert(key.into(), Value::String(text));
            }
        }
        images.push(Value::Object(object));
    }
    if !images.is_empty() {
        message.insert("images".into(), Value::Array(images));
    }
    let mut links = Vec::new();
    for link in &config.links {
        let href = expand(templates, &link.href, &value)?;
        if href.is_empty() {
            continue;
        }
        let mut object = Map::new();
        object.insert("href".into(), Value::String(href));
        let text = expand(templates, &link.text, &value)?;
        if !text.is_empty() {
            object.insert("text".into(), Value::String(text));
        }
        links.push(Value::Object(object));
    }
    if !links.is_empty() {
        message.insert("links".into(), Value::Array(links));
    }
    if !client.is_empty() {
        message.insert("client".into(), Value::String(client));
    }
    let client_url = field(
        "client_url",
        r#"{{ template "pagerduty.default.clientURL" . }}"#,
    )?;
    if !client_url.is_empty() {
        message.insert("client_url".into(), Value::String(client_url));
    }
    Ok(serde_json::to_vec(&Value::Object(message)).unwrap_or_default())
}

/// SHA-256 (FIPS 180-4) of `data` in lower-case hex, through aws-lc-rs
/// (the digest library the TLS stack links).
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod receiver_tests {
    use super::*;

    #[test]
    fn pagerduty_events_api_v1_with_a_service_key() {
        let config = config::alertmanager::parse(
            "am.yml",
            "route: {receiver: pd}\nreceivers:\n  - name: pd\n    pagerduty_configs: [{service_key: sk}]\n",
            None,
        )
        .unwrap();
        let pd = &config.receivers[0].pagerduty_configs[0];
        assert_eq!(pd.url, config::alertmanager::DEFAULT_PAGERDUTY_V1_URL);
        let alert = crate::alerts::receive(
            crate::alerts::PostableAlert {
                labels: vec![("alertname".into(), "Down".into())],
                ..Default::default()
            },
            1000,
            60_000,
        )
        .unwrap();
        let data = Data::new(
            "pd",
            "{}:{}",
            &model::Labels::empty(),
            vec![DataAlert {
                firing: true,
                alert,
            }],
            "http://am",
        );
        let templates = crate::template::NotificationTemplates::defaults();
        let body: Value =
            serde_json::from_slice(&pagerduty_payload(pd, &data, &templates).unwrap()).unwrap();
        assert_eq!(body["service_key"], "sk");
        assert_eq!(body["event_type"], "trigger");
        assert_eq!(body["incident_key"], sha256_hex(b"{}:{}"));
        assert_eq!(body["description"], "[FIRING:1]  (Down)");
        assert_eq!(body["details"]["num_firing"], "1");
        assert!(body.get("routing_key").is_none() && body.get("payload").is_none());
    }

    #[test]
    fn sha256_known_answers() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            sha256_hex(
                b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
            ),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
        );
        assert_eq!(
            sha256_hex(&[b'a'; 1_000_000]),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }
}
