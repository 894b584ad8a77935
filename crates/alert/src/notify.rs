//! Notification data and the receivers' wire formats.
//!
//! [`Data`] is what Alertmanager hands its templates and its webhook: the
//! receiver, the group's status, labels common to all alerts, and the
//! alerts. [`webhook_payload`] is Alertmanager's webhook JSON (version
//! "4"); [`send_with_retries`] posts a body until it succeeds, fails for
//! good (a 4xx), or the flush's deadline passes, backing off between tries.

use std::time::Duration;

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
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect::<Vec<_>>()
        }));
        let common_annotations = common(alerts.iter().map(|a| a.alert.annotations.clone()));
        Data {
            receiver: receiver.to_string(),
            firing,
            alerts,
            group_labels: group_labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
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
    let Some(ms) = ms else {
        return "0001-01-01T00:00:00Z".to_string();
    };
    let seconds = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    let (year, month, day) = crate::timeinterval::civil_from_days(days);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    if millis != 0 {
        let fraction = format!("{millis:03}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// Go's zero time (`0001-01-01T00:00:00Z`) in Unix milliseconds, which
/// clients send to mean "not set".
pub const ZERO_TIME_MS: i64 = -62_135_596_800_000;

/// The API's time form (go-openapi's `strfmt.DateTime`): RFC 3339 with
/// exactly three fraction digits, UTC.
pub fn format_time_api(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    let (year, month, day) = crate::timeinterval::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        ms.rem_euclid(1000)
    )
}

/// Parses an RFC 3339 time (`2026-11-22T06:04:00.123Z`, any fraction
/// length, `Z` or `±HH:MM`) into Unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if bytes.len() < 20 || bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(bytes.get(10), Some(b'T' | b't' | b' '))
        || bytes.get(13) != Some(&b':')
        || bytes.get(16) != Some(&b':')
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut position = 19;
    let mut millis = 0;
    if bytes.get(position) == Some(&b'.') {
        let start = position + 1;
        let mut end = start;
        while bytes.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start {
            return None;
        }
        let digits = text.get(start..end.min(start + 3))?;
        millis = digits.parse::<i64>().ok()? * 10_i64.pow(3 - digits.len() as u32);
        position = end;
    }
    let offset_seconds = match bytes.get(position) {
        Some(b'Z' | b'z') if position + 1 == bytes.len() => 0,
        Some(sign @ (b'+' | b'-'))
            if position + 6 == bytes.len() && bytes.get(position + 3) == Some(&b':') =>
        {
            let hours = number(position + 1..position + 3)?;
            let minutes = number(position + 4..position + 6)?;
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'+' { offset } else { -offset }
        }
        _ => return None,
    };
    let days = crate::timeinterval::days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1000 + millis)
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
        .map(|l| (l.name.clone(), l.value.clone()))
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
    pub http_config: &'a crate::config::HttpConfig,
}

/// Why a notification failed.
#[derive(Debug)]
pub struct SendError {
    pub message: String,
    /// Whether trying again may help (network errors, 5xx, 429).
    pub retry: bool,
}

/// Sends one request.
pub async fn send_once(client: &reqwest::Client, request: &Request<'_>) -> Result<(), SendError> {
    let mut builder = client
        .post(request.url)
        .header("Content-Type", request.content_type)
        .header(
            "User-Agent",
            concat!("osprey-alertmanager/", env!("CARGO_PKG_VERSION")),
        )
        .body(request.body.clone());
    if let Some((user, password)) = &request.http_config.basic_auth {
        builder = builder.basic_auth(user, Some(password));
    }
    if let Some((kind, credentials)) = &request.http_config.authorization {
        builder = builder.header("Authorization", format!("{kind} {credentials}"));
    }
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
            message: error.to_string(),
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
    client: &reqwest::Client,
    request: &Request<'_>,
    deadline: tokio::time::Instant,
) -> (Result<(), SendError>, u32) {
    let mut wait = FIRST_BACKOFF;
    let mut failures = 0;
    loop {
        let attempt = tokio::time::timeout_at(deadline, send_once(client, request)).await;
        let error = match attempt {
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
