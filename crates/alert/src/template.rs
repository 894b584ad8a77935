//! Notification templates: Alertmanager's template data exposed to
//! `crates/template` (`.Receiver`, `.Status`, `.Alerts` with `Firing` and
//! `Resolved`, `.GroupLabels`/`.CommonLabels`/`.CommonAnnotations` as `KV`
//! maps with `SortedPairs`, `Names`, `Values` and `Remove`,
//! `.ExternalURL`), osprey's default templates (the names Alertmanager's
//! configs refer to, such as `slack.default.title` and `__subject`,
//! written here), and loading the `templates:` files of a config.

use std::collections::BTreeMap;
use std::sync::Arc;

use template::{FuncMap, MissingKey, Object, Options, Templates, Value};

use crate::notify::{Data, DataAlert};

/// osprey's default notification templates. They produce the same kind of
/// text as Alertmanager's defaults (subject `[FIRING:2] name (common
/// labels)`, one block of labels and annotations per alert), so receivers
/// configured without templates read the same.
pub const DEFAULT_TEMPLATES: &str = r#"
{{ define "__alertmanager" }}Alertmanager{{ end }}
{{ define "__alertmanagerURL" }}{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | urlquery }}{{ end }}

{{/* [FIRING:n] group label values, then (the other common label values);
     spacing as Alertmanager's, so subjects and titles read the same. */}}
{{ define "__subject" -}}
[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ len .Alerts.Firing }}{{ end }}]
{{- " " }}{{ join " " .GroupLabels.SortedPairs.Values }}{{ " " }}
{{- $rest := .CommonLabels.Remove .GroupLabels.Names }}
{{- if gt (len $rest) 0 }}({{ join " " $rest.Values }}){{ end }}
{{- end }}
{{ define "__description" }}{{ end }}

{{ define "__text_alert_list" }}{{ range . }}Labels:
{{ range .Labels.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Annotations:
{{ range .Annotations.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Source: {{ .GeneratorURL }}
{{ end }}{{ end }}

{{ define "__text_alerts_by_status" -}}
{{ if gt (len .Alerts.Firing) 0 }}*Firing*
{{ template "__text_alert_list" .Alerts.Firing }}{{ end -}}
{{ if gt (len .Alerts.Resolved) 0 }}*Resolved*
{{ template "__text_alert_list" .Alerts.Resolved }}{{ end -}}
{{ end }}

{{ define "slack.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "slack.default.username" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "slack.default.fallback" }}{{ template "slack.default.title" . }} | {{ template "slack.default.titlelink" . }}{{ end }}
{{ define "slack.default.callbackid" }}{{ end }}
{{ define "slack.default.pretext" }}{{ end }}
{{ define "slack.default.titlelink" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "slack.default.iconemoji" }}{{ end }}
{{ define "slack.default.iconurl" }}{{ end }}
{{ define "slack.default.text" }}{{ template "__text_alerts_by_status" . }}{{ end }}
{{ define "slack.default.footer" }}{{ end }}

{{ define "pagerduty.default.description" }}{{ template "__subject" . }}{{ end }}
{{ define "pagerduty.default.client" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "pagerduty.default.clientURL" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "pagerduty.default.instances" }}{{ template "__text_alert_list" . }}{{ end }}

{{ define "email.default.subject" }}{{ template "__subject" . }}{{ end }}
{{ define "email.default.html" -}}
<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>{{ template "__subject" . }}</title></head>
<body style="font-family: sans-serif">
<p><a href="{{ template "__alertmanagerURL" . }}">{{ template "__subject" . }}</a></p>
{{ if gt (len .Alerts.Firing) 0 }}<h3>{{ len .Alerts.Firing }} firing</h3>
{{ range .Alerts.Firing }}<p>{{ range .Labels.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end }}
{{ range .Annotations.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end }}
<a href="{{ .GeneratorURL }}">Source</a></p>
{{ end }}{{ end -}}
{{ if gt (len .Alerts.Resolved) 0 }}<h3>{{ len .Alerts.Resolved }} resolved</h3>
{{ range .Alerts.Resolved }}<p>{{ range .Labels.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end }}
{{ range .Annotations.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end }}
<a href="{{ .GeneratorURL }}">Source</a></p>
{{ end }}{{ end -}}
</body></html>
{{- end }}
"#;

/// A config's templates: the defaults plus its `templates:` files.
#[derive(Clone)]
pub struct NotificationTemplates {
    set: Arc<Templates>,
}

impl std::fmt::Debug for NotificationTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationTemplates")
            .finish_non_exhaustive()
    }
}

impl NotificationTemplates {
    /// The defaults plus every file matching the globs (a `*` or `?` in
    /// the last path element; relative paths against `base_dir`).
    pub fn load(
        globs: &[String],
        base_dir: &std::path::Path,
    ) -> Result<NotificationTemplates, String> {
        let mut set = new_set();
        for pattern in globs {
            for path in expand_glob(pattern, base_dir)? {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("reading template {}: {e}", path.display()))?;
                set.parse(&path.display().to_string(), &text)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(NotificationTemplates { set: Arc::new(set) })
    }

    /// Only the defaults.
    pub fn defaults() -> NotificationTemplates {
        NotificationTemplates {
            set: Arc::new(new_set()),
        }
    }

    /// Expands one template text (a config field) with notification data.
    /// Each text is parsed on its own, so its `define`s do not leak.
    pub fn expand(&self, text: &str, data: &Value) -> Result<String, String> {
        if !text.contains("{{") {
            return Ok(text.to_string());
        }
        let mut set = (*self.set).clone();
        set.parse("__text__", text).map_err(|e| e.to_string())?;
        set.execute("__text__", data).map_err(|e| e.to_string())
    }
}

fn new_set() -> Templates {
    let mut set = Templates::new(
        template_funcs(),
        Options {
            missing_key: MissingKey::Zero,
        },
    );
    // The defaults are ours and tested; a failure here is a bug caught by
    // the tests, and leaves the set without defaults rather than panicking.
    if let Err(error) = set.parse("default.tmpl", DEFAULT_TEMPLATES) {
        tracing::error!(%error, "osprey's default templates do not parse");
    }
    set
}

fn template_funcs() -> FuncMap {
    template::funcs::alertmanager()
}

/// Files matching a glob whose wildcards are in the last path element.
fn expand_glob(
    pattern: &str,
    base_dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>, String> {
    let path = base_dir.join(pattern);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains(['*', '?', '[']) {
        return Ok(if path.exists() {
            vec![path]
        } else {
            Vec::new()
        });
    }
    let directory = path.parent().unwrap_or(base_dir);
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(_) => return Ok(Vec::new()),
    };
    let mut found: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| wildcard_match(&name, &entry.file_name().to_string_lossy()))
        .map(|entry| entry.path())
        .collect();
    found.sort();
    Ok(found)
}

/// `*` and `?` matching (no character classes).
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some('?') => {
                p += 1;
                n += 1;
            }
            Some(c) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Alertmanager's `KV`: a string map with methods.
#[derive(Debug, Clone)]
struct Kv(BTreeMap<String, String>);

impl Kv {
    fn of(pairs: &[(String, String)]) -> Kv {
        Kv(pairs.iter().cloned().collect())
    }
}

impl Object for Kv {
    fn field(&self, name: &str) -> Option<Value> {
        self.0.get(name).map(|v| Value::from(v.as_str()))
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        Some(Ok(match (name, args) {
            ("SortedPairs", []) => Value::object(Pairs(self.0.clone().into_iter().collect())),
            ("Names", []) => Value::from(self.0.keys().cloned().collect::<Vec<_>>()),
            ("Values", []) => Value::from(self.0.values().cloned().collect::<Vec<_>>()),
            ("Remove", [Value::List(keys)]) => {
                let mut rest = self.0.clone();
                for key in keys.iter() {
                    if let Value::Str(key) = key {
                        rest.remove(key);
                    }
                }
                Value::object(Kv(rest))
            }
            _ => return None,
        }))
    }

    fn entries(&self) -> Option<Vec<(String, Value)>> {
        Some(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect(),
        )
    }

    fn display(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!("map[{}]", parts.join(" "))
    }
}

/// Alertmanager's `Pairs`: sorted name/value pairs.
#[derive(Debug)]
struct Pairs(Vec<(String, String)>);

impl Object for Pairs {
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        if !args.is_empty() {
            return None;
        }
        match name {
            "Names" => Some(Ok(Value::from(
                self.0.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
            ))),
            "Values" => Some(Ok(Value::from(
                self.0.iter().map(|p| p.1.clone()).collect::<Vec<_>>(),
            ))),
            _ => None,
        }
    }

    fn items(&self) -> Option<Vec<Value>> {
        Some(
            self.0
                .iter()
                .map(|(n, v)| Value::object(Pair(n.clone(), v.clone())))
                .collect(),
        )
    }

    fn display(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(n, v)| format!("{{{n} {v}}}")).collect();
        format!("[{}]", parts.join(" "))
    }
}

#[derive(Debug)]
struct Pair(String, String);

impl Object for Pair {
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Name" => Some(Value::from(self.0.as_str())),
            "Value" => Some(Value::from(self.1.as_str())),
            _ => None,
        }
    }

    fn display(&self) -> String {
        format!("{{{} {}}}", self.0, self.1)
    }
}

/// One alert as templates see it.
#[derive(Debug, Clone)]
struct TemplateAlert {
    firing: bool,
    labels: Kv,
    annotations: Kv,
    starts_at_ms: i64,
    ends_at_ms: Option<i64>,
    generator_url: String,
    fingerprint: String,
}

fn time_value(ms: Option<i64>) -> Value {
    match ms {
        Some(ms) => template::time::Time::new(
            ms.div_euclid(1000),
            (ms.rem_euclid(1000) as u32) * 1_000_000,
        )
        .value(),
        // Go's zero time.
        None => template::time::Time::new(-62_135_596_800, 0).value(),
    }
}

impl Object for TemplateAlert {
    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Status" => Value::from(if self.firing { "firing" } else { "resolved" }),
            "Labels" => Value::object(self.labels.clone()),
            "Annotations" => Value::object(self.annotations.clone()),
            "StartsAt" => time_value(Some(self.starts_at_ms)),
            "EndsAt" => time_value(self.ends_at_ms),
            "GeneratorURL" => Value::from(self.generator_url.as_str()),
            "Fingerprint" => Value::from(self.fingerprint.as_str()),
            _ => return None,
        })
    }

    fn display(&self) -> String {
        format!(
            "{{{} {} {}}}",
            if self.firing { "firing" } else { "resolved" },
            self.labels.display(),
            self.fingerprint
        )
    }
}

/// Alertmanager's `Alerts`, with `Firing` and `Resolved`.
#[derive(Debug)]
struct Alerts(Vec<TemplateAlert>);

impl Object for Alerts {
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let firing = match (name, args) {
            ("Firing", []) => true,
            ("Resolved", []) => false,
            _ => return None,
        };
        let chosen = self
            .0
            .iter()
            .filter(|a| a.firing == firing)
            .cloned()
            .collect();
        Some(Ok(Value::object(Alerts(chosen))))
    }

    fn items(&self) -> Option<Vec<Value>> {
        Some(self.0.iter().map(|a| Value::object(a.clone())).collect())
    }

    fn display(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|a| a.display()).collect();
        format!("[{}]", parts.join(" "))
    }
}

/// Alertmanager's template `Data`.
#[derive(Debug)]
struct TemplateData {
    receiver: String,
    status: &'static str,
    alerts: Arc<Alerts>,
    group_labels: Kv,
    common_labels: Kv,
    common_annotations: Kv,
    external_url: String,
}

impl Object for TemplateData {
    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Receiver" => Value::from(self.receiver.as_str()),
            "Status" => Value::from(self.status),
            "Alerts" => Value::Object(self.alerts.clone()),
            "GroupLabels" => Value::object(self.group_labels.clone()),
            "CommonLabels" => Value::object(self.common_labels.clone()),
            "CommonAnnotations" => Value::object(self.common_annotations.clone()),
            "ExternalURL" => Value::from(self.external_url.as_str()),
            _ => return None,
        })
    }

    fn display(&self) -> String {
        format!("{{{} {}}}", self.receiver, self.status)
    }
}

fn template_alert(alert: &DataAlert) -> TemplateAlert {
    let labels: Vec<(String, String)> = alert
        .alert
        .labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    TemplateAlert {
        firing: alert.firing,
        labels: Kv::of(&labels),
        annotations: Kv::of(&alert.alert.annotations),
        starts_at_ms: alert.alert.starts_at_ms,
        ends_at_ms: (!alert.firing).then_some(alert.alert.ends_at_ms),
        generator_url: alert.alert.generator_url.clone(),
        fingerprint: format!("{:016x}", alert.alert.fingerprint),
    }
}

/// The template value of a notification's data.
pub fn data_value(data: &Data) -> Value {
    Value::object(TemplateData {
        receiver: data.receiver.clone(),
        status: data.status(),
        alerts: Arc::new(Alerts(data.alerts.iter().map(template_alert).collect())),
        group_labels: Kv::of(&data.group_labels),
        common_labels: Kv::of(&data.common_labels),
        common_annotations: Kv::of(&data.common_annotations),
        external_url: data.external_url.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{PostableAlert, receive};

    fn data(firing: &[&[(&str, &str)]], resolved: &[&[(&str, &str)]]) -> Data {
        let mut alerts = Vec::new();
        for (labels, is_firing) in firing
            .iter()
            .map(|l| (l, true))
            .chain(resolved.iter().map(|l| (l, false)))
        {
            let alert = receive(
                PostableAlert {
                    labels: labels
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect(),
                    annotations: vec![("summary".into(), "disk full".into())],
                    starts_at_ms: Some(1_000),
                    ends_at_ms: Some(if is_firing { 10_000_000 } else { 2_000 }),
                    generator_url: "http://prom/graph".into(),
                },
                3_000,
                60_000,
            )
            .unwrap();
            alerts.push(DataAlert {
                firing: is_firing,
                alert,
            });
        }
        Data::new(
            "team-ml",
            "{}:{alertname=\"Disk\"}",
            &model::Labels::from_pairs([("alertname", "Disk")]),
            alerts,
            "http://osprey:9093",
        )
    }

    #[test]
    fn default_subject_and_text() {
        let templates = NotificationTemplates::defaults();
        let d = data(
            &[
                &[("alertname", "Disk"), ("job", "node"), ("instance", "a")],
                &[("alertname", "Disk"), ("job", "node"), ("instance", "b")],
            ],
            &[&[("alertname", "Disk"), ("job", "node"), ("instance", "c")]],
        );
        let value = data_value(&d);
        assert_eq!(
            templates
                .expand(r#"{{ template "__subject" . }}"#, &value)
                .unwrap(),
            "[FIRING:2] Disk (node)"
        );
        let text = templates
            .expand(r#"{{ template "slack.default.text" . }}"#, &value)
            .unwrap();
        assert!(
            text.starts_with("*Firing*\nLabels:\n - alertname = Disk\n - instance = a\n"),
            "{text}"
        );
        assert!(
            text.contains("*Resolved*\nLabels:\n - alertname = Disk\n - instance = c\n"),
            "{text}"
        );
        assert_eq!(
            templates
                .expand(r#"{{ template "slack.default.titlelink" . }}"#, &value)
                .unwrap(),
            "http://osprey:9093/#/alerts?receiver=team-ml"
        );
    }

    #[test]
    fn what_custom_templates_use() {
        let templates = NotificationTemplates::defaults();
        let d = data(&[&[("alertname", "Disk"), ("severity", "page")]], &[]);
        let value = data_value(&d);
        let expand = |text: &str| templates.expand(text, &value).unwrap();
        assert_eq!(expand("{{ .CommonLabels.severity | toUpper }}"), "PAGE");
        assert_eq!(
            expand("{{ range .Alerts.Firing }}{{ .Labels.alertname }}{{ end }}"),
            "Disk"
        );
        assert_eq!(expand("{{ .GroupLabels.alertname | title }}"), "Disk");
        assert_eq!(
            expand("{{ join \",\" .CommonLabels.SortedPairs.Names }}"),
            "alertname,severity"
        );
        assert_eq!(
            expand("{{ range $k, $v := .CommonLabels }}{{ $k }}={{ $v }};{{ end }}"),
            "alertname=Disk;severity=page;"
        );
        assert_eq!(
            expand("{{ reReplaceAll \"(D)isk\" \"${1}ISK\" .CommonLabels.alertname }}"),
            "DISK"
        );
        assert_eq!(
            expand("{{ .ExternalURL }} {{ .Receiver }} {{ .Status }}"),
            "http://osprey:9093 team-ml firing"
        );
        assert_eq!(
            expand(
                "{{ define \"x\" }}[{{ . }}]{{ end }}{{ template \"x\" .CommonAnnotations.summary }}"
            ),
            "[disk full]"
        );
        assert_eq!(expand("{{ (index .Alerts 0).StartsAt.Unix }}"), "1");
        assert_eq!(expand("{{ .CommonLabels.missing }}"), "");
        assert_eq!(expand("{{ \"<b>\" | safeHtml }}"), "<b>");
        assert!(templates.expand("{{ .Nope.x", &value).is_err());
    }

    #[test]
    fn template_files_from_globs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.tmpl"),
            "{{ define \"mine\" }}custom {{ .Receiver }}{{ end }}",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.txt"), "{{ define \"other\" }}x{{ end }}").unwrap();
        let templates = NotificationTemplates::load(&["*.tmpl".to_string()], dir.path()).unwrap();
        let value = data_value(&data(&[&[("alertname", "Disk")]], &[]));
        assert_eq!(
            templates
                .expand("{{ template \"mine\" . }}", &value)
                .unwrap(),
            "custom team-ml"
        );
        assert!(
            templates
                .expand("{{ template \"other\" . }}", &value)
                .is_err()
        );
        assert!(wildcard_match("*.tmpl", "a.tmpl") && !wildcard_match("*.tmpl", "a.tmplx"));
    }
}
