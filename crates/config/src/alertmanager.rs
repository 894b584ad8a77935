//! `alertmanager.yml`: YAML in, plain structs out, with Alertmanager 0.25's
//! field names, defaults and validation.
//!
//! [`load_file`] and [`parse`] read a whole alertmanager.yml (for `osprey
//! alertmanager`); [`decode_section`] reads the `alertmanager:` section of
//! an osprey config, which is either a path to such a file or its content
//! inline. Unknown fields and bad values are errors of the form
//! `alertmanager.yml:12: route.routes[0].group_wait: not a valid duration
//! string: "5x"`. Child routes inherit their parent's receiver, grouping
//! and timers here, so [`Route`] values are final. Receiver kinds osprey
//! does not deliver to (OpsGenie, WeChat, Pushover, VictorOps, SNS,
//! Telegram, Webex, Discord, MS Teams) are errors: a page that silently
//! goes nowhere is the worst thing an alert manager can do. Receivers'
//! `http_config` is Prometheus's [`HttpClientConfig`].
//!
//! [`matchers`] is Alertmanager's matcher syntax and [`timeinterval`] its
//! time intervals, both part of the file's language.

pub mod matchers;
pub mod timeinterval;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::matcher::{MatchOp, Matcher};
use yaml::{Node, NodeValue};

use crate::ConfigError;
use crate::decode::{Decoder, is_valid_label_name};
use crate::http::{self, HttpClientConfig, TlsConfig};
use matchers::{compare_matchers, parse_matchers};
use timeinterval::TimeInterval;

/// Alertmanager's default `resolve_timeout` (5m).
pub const DEFAULT_RESOLVE_TIMEOUT_MS: i64 = 5 * 60_000;
/// Alertmanager's default `group_wait` (30s).
pub const DEFAULT_GROUP_WAIT_MS: i64 = 30_000;
/// Alertmanager's default `group_interval` (5m).
pub const DEFAULT_GROUP_INTERVAL_MS: i64 = 5 * 60_000;
/// Alertmanager's default `repeat_interval` (4h).
pub const DEFAULT_REPEAT_INTERVAL_MS: i64 = 4 * 3_600_000;
/// Alertmanager's default PagerDuty Events API v2 endpoint.
pub const DEFAULT_PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// PagerDuty's Events API v1 endpoint, for configs with a `service_key`.
pub const DEFAULT_PAGERDUTY_V1_URL: &str =
    "https://events.pagerduty.com/generic/2010-04-15/create_event.json";

/// A parsed `alertmanager.yml`.
#[derive(Clone, Debug)]
pub struct Config {
    pub global: GlobalConfig,
    pub route: Route,
    pub inhibit_rules: Vec<InhibitRule>,
    pub receivers: Vec<Receiver>,
    /// Template file globs, as written.
    pub templates: Vec<String>,
    /// Named time intervals from `time_intervals` and the deprecated
    /// top-level `mute_time_intervals`.
    pub time_intervals: BTreeMap<String, Vec<TimeInterval>>,
    /// Things accepted but not acted on, one line each, with file and line.
    pub warnings: Vec<String>,
}

impl Config {
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|receiver| receiver.name == name)
    }
}

/// The `global` section.
#[derive(Clone, Debug)]
pub struct GlobalConfig {
    pub resolve_timeout_ms: i64,
    pub http_config: HttpClientConfig,
    pub smtp_from: Option<String>,
    pub smtp_hello: String,
    pub smtp_smarthost: Option<String>,
    pub smtp_auth_username: Option<String>,
    pub smtp_auth_password: Option<String>,
    pub smtp_auth_identity: Option<String>,
    pub smtp_auth_secret: Option<String>,
    pub smtp_require_tls: bool,
    pub slack_api_url: Option<String>,
    pub pagerduty_url: String,
}

impl Default for GlobalConfig {
    fn default() -> GlobalConfig {
        GlobalConfig {
            resolve_timeout_ms: DEFAULT_RESOLVE_TIMEOUT_MS,
            http_config: HttpClientConfig::default(),
            smtp_from: None,
            smtp_hello: "localhost".to_string(),
            smtp_smarthost: None,
            smtp_auth_username: None,
            smtp_auth_password: None,
            smtp_auth_identity: None,
            smtp_auth_secret: None,
            smtp_require_tls: true,
            slack_api_url: None,
            pagerduty_url: DEFAULT_PAGERDUTY_URL.to_string(),
        }
    }
}

/// How a route groups alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// `group_by: ['...']`: every label; each alert is its own group.
    All,
    /// These labels, sorted (empty: one group for the route).
    Labels(Vec<String>),
}

/// One node of the routing tree, with inherited settings applied.
#[derive(Clone, Debug)]
pub struct Route {
    pub receiver: String,
    pub group_by: GroupBy,
    /// `match`, `match_re` and `matchers` together, sorted.
    pub matchers: Vec<Matcher>,
    pub continue_matching: bool,
    pub group_wait_ms: i64,
    pub group_interval_ms: i64,
    pub repeat_interval_ms: i64,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    pub routes: Vec<Route>,
    /// Alertmanager's route key: the parent's key, `/`, and the sorted
    /// matchers, e.g. `{}/{team="ml"}`. Group keys start with it.
    pub key: String,
    /// The route's position in a preorder walk of the tree (root 0), which
    /// tells apart sibling routes with the same matchers.
    pub id: usize,
}

/// An `inhibit_rules` entry.
#[derive(Clone, Debug)]
pub struct InhibitRule {
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    /// Labels whose values must be equal in source and target.
    pub equal: Vec<String>,
}

/// A named receiver and its integrations.
#[derive(Clone, Debug)]
pub struct Receiver {
    pub name: String,
    pub webhook_configs: Vec<WebhookConfig>,
    pub slack_configs: Vec<SlackConfig>,
    pub email_configs: Vec<EmailConfig>,
    pub pagerduty_configs: Vec<PagerdutyConfig>,
}

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub send_resolved: bool,
    pub url: String,
    /// 0 means all alerts.
    pub max_alerts: u64,
    pub http_config: HttpClientConfig,
}

/// A `slack_configs` entry. Text fields are templates (empty: the default).
#[derive(Clone, Debug)]
pub struct SlackConfig {
    pub send_resolved: bool,
    pub api_url: String,
    pub http_config: HttpClientConfig,
    /// Template fields by name (`channel`, `username`, `title`, `text`, ...),
    /// and `short_fields`/`link_names` as `true`/`false`.
    pub fields: BTreeMap<String, String>,
    /// The attachment's `fields` (title and value are templates).
    pub attachment_fields: Vec<SlackField>,
    /// The attachment's `actions` (buttons).
    pub actions: Vec<SlackAction>,
    /// Which attachment fields Slack formats as markdown; `None`: the
    /// default (`fallback`, `pretext`, `text`).
    pub mrkdwn_in: Option<Vec<String>>,
}

/// One entry of a Slack attachment's `fields`.
#[derive(Clone, Debug)]
pub struct SlackField {
    pub title: String,
    pub value: String,
    /// `None`: the config's `short_fields`.
    pub short: Option<bool>,
}

/// A Slack message button (`actions`). Text fields are templates.
#[derive(Clone, Debug)]
pub struct SlackAction {
    pub kind: String,
    pub text: String,
    pub url: String,
    pub style: String,
    pub name: String,
    pub value: String,
    pub confirm: Option<SlackConfirm>,
}

/// A Slack action's confirmation dialog.
#[derive(Clone, Debug)]
pub struct SlackConfirm {
    pub title: String,
    pub text: String,
    pub ok_text: String,
    pub dismiss_text: String,
}

/// An `email_configs` entry, with the global SMTP settings applied.
#[derive(Clone, Debug)]
pub struct EmailConfig {
    pub send_resolved: bool,
    pub to: String,
    pub from: String,
    pub hello: String,
    pub smarthost: String,
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    pub auth_identity: Option<String>,
    pub auth_secret: Option<String>,
    pub require_tls: bool,
    /// How the SMTP server's certificate is checked, and the client
    /// certificate offered.
    pub tls_config: TlsConfig,
    /// Extra headers (templates), by name.
    pub headers: BTreeMap<String, String>,
    /// Body templates; `None` means absent (text) or the default (html).
    pub html: Option<String>,
    pub text: Option<String>,
}

/// A `pagerduty_configs` entry (Events API v2 when `routing_key` is set).
#[derive(Clone, Debug)]
pub struct PagerdutyConfig {
    pub send_resolved: bool,
    pub routing_key: Option<String>,
    pub service_key: Option<String>,
    pub url: String,
    pub http_config: HttpClientConfig,
    /// Template fields by name (`description`, `severity`, `client`, ...).
    pub fields: BTreeMap<String, String>,
    /// `details`, templates by key.
    pub details: BTreeMap<String, String>,
    /// Images shown in the incident (templates).
    pub images: Vec<PagerdutyImage>,
    /// Links shown in the incident (templates).
    pub links: Vec<PagerdutyLink>,
}

/// A PagerDuty `images` entry.
#[derive(Clone, Debug)]
pub struct PagerdutyImage {
    pub src: String,
    pub alt: String,
    pub href: String,
}

/// A PagerDuty `links` entry.
#[derive(Clone, Debug)]
pub struct PagerdutyLink {
    pub href: String,
    pub text: String,
}

/// The `alertmanager:` section of an osprey config: the alert manager to
/// run inside the server.
#[derive(Clone, Debug)]
pub struct Section {
    pub config: Config,
    /// The alertmanager.yml text (or, inline, the osprey config's text),
    /// for `/api/v2/status`.
    pub text: String,
    /// The alertmanager.yml the section names; `None` when inline.
    pub path: Option<PathBuf>,
}

/// Reads and parses the alertmanager.yml at `path`; relative paths in it
/// (templates, secret files) are relative to its directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::file(&name, format!("reading the file: {error}")))?;
    parse(&name, &text, path.parent())
}

/// Parses an alertmanager.yml. `file_name` is used in messages; relative
/// paths are joined to `base_dir` when given.
pub fn parse(file_name: &str, text: &str, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
    let root = crate::decode::parse_yaml(file_name, text)?;
    let mut decoder = Decoder::new(file_name, base_dir);
    let mut config = Reader { d: &mut decoder }.config(&root)?;
    config.warnings = decoder.take_warnings();
    Ok(config)
}

/// Reads the `alertmanager:` section of an osprey config: a path to an
/// alertmanager.yml (relative to the config's directory), or its content.
pub fn decode_section(
    decoder: &mut Decoder,
    node: &Node,
    text: &str,
) -> Result<Section, ConfigError> {
    match &node.value {
        NodeValue::String(path) => {
            let path = PathBuf::from(decoder.resolve(path));
            let file_text = std::fs::read_to_string(&path).map_err(|error| {
                decoder.error(
                    node.line,
                    "alertmanager",
                    format!("reading {}: {error}", path.display()),
                )
            })?;
            let config = parse(&path.display().to_string(), &file_text, path.parent())?;
            for warning in &config.warnings {
                decoder.warn(node.line, "alertmanager", warning);
            }
            Ok(Section {
                config,
                text: file_text,
                path: Some(path),
            })
        }
        NodeValue::Mapping(_) => {
            let mut inner =
                Decoder::new(decoder.file(), decoder.base_dir()).with_field_prefix("alertmanager.");
            let mut config = Reader { d: &mut inner }.config(node)?;
            config.warnings = inner.take_warnings();
            Ok(Section {
                config,
                text: text.to_string(),
                path: None,
            })
        }
        other => Err(decoder.error(
            node.line,
            "alertmanager",
            format!(
                "expected a file path or an alertmanager.yml mapping, got {}",
                other.kind_name()
            ),
        )),
    }
}

/// Receiver kinds Alertmanager has that osprey does not send to.
const UNSUPPORTED_RECEIVERS: &[&str] = &[
    "opsgenie_configs",
    "wechat_configs",
    "pushover_configs",
    "victorops_configs",
    "sns_configs",
    "telegram_configs",
    "webex_configs",
    "discord_configs",
    "msteams_configs",
];

/// Global fields for those receivers.
const UNSUPPORTED_GLOBALS: &[&str] = &[
    "opsgenie_api_key",
    "opsgenie_api_key_file",
    "opsgenie_api_url",
    "wechat_api_url",
    "wechat_api_secret",
    "wechat_api_corp_id",
    "victorops_api_key",
    "victorops_api_key_file",
    "victorops_api_url",
    "telegram_api_url",
    "webex_api_url",
];

const SLACK_TEXT_FIELDS: &[&str] = &[
    "channel",
    "username",
    "color",
    "title",
    "title_link",
    "pretext",
    "text",
    "footer",
    "fallback",
    "callback_id",
    "icon_emoji",
    "icon_url",
    "image_url",
    "thumb_url",
];

const PAGERDUTY_TEXT_FIELDS: &[&str] = &[
    "client",
    "client_url",
    "description",
    "severity",
    "class",
    "component",
    "group",
    "source",
];

/// The alertmanager.yml reader: the shared [`Decoder`] plus the
/// format's own rules.
struct Reader<'a> {
    d: &'a mut Decoder,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Decoder;
    fn deref(&self) -> &Decoder {
        self.d
    }
}

impl std::ops::DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut Decoder {
        self.d
    }
}

/// A route as written, before inheritance: `None` means "inherit".
struct RawRoute {
    line: u64,
    field: String,
    receiver: Option<(String, u64)>,
    group_by: Option<GroupBy>,
    matchers: Vec<Matcher>,
    continue_matching: bool,
    group_wait_ms: Option<i64>,
    group_interval_ms: Option<i64>,
    repeat_interval_ms: Option<i64>,
    mute_time_intervals: Vec<(String, u64)>,
    active_time_intervals: Vec<(String, u64)>,
    routes: Vec<RawRoute>,
}

impl Reader<'_> {
    fn config(&mut self, root: &Node) -> Result<Config, ConfigError> {
        let entries = self.mapping(root, "(document)")?;
        let mut global = GlobalConfig::default();
        let mut route_node = None;
        let mut inhibit_node = None;
        let mut receivers_node = None;
        let mut templates = Vec::new();
        let mut time_intervals = BTreeMap::new();
        for (key, value) in entries {
            let name = self.string(key, "(document)")?;
            match name.as_str() {
                "global" => global = self.global(value)?,
                "route" => route_node = Some(value),
                "inhibit_rules" => inhibit_node = Some(value),
                "receivers" => receivers_node = Some(value),
                "templates" => {
                    // Relative to the file that names them, as in Alertmanager.
                    templates = self
                        .string_list(value, "templates")?
                        .iter()
                        .map(|pattern| self.resolve(pattern))
                        .collect()
                }
                "time_intervals" | "mute_time_intervals" => {
                    for (index, item) in self.sequence(value, &name)?.iter().enumerate() {
                        let field = format!("{name}[{index}]");
                        let (interval_name, intervals) = self.named_interval(item, &field)?;
                        if time_intervals.contains_key(&interval_name) {
                            return Err(self.error(
                                item.line,
                                &format!("{field}.name"),
                                format!("time interval {interval_name:?} is not unique"),
                            ));
                        }
                        time_intervals.insert(interval_name, intervals);
                    }
                }
                _ => return Err(self.error(key.line, &name, "unknown field")),
            }
        }

        let mut receivers: Vec<Receiver> = Vec::new();
        if let Some(node) = receivers_node {
            for (index, item) in self.sequence(node, "receivers")?.iter().enumerate() {
                let field = format!("receivers[{index}]");
                let receiver = self.receiver(item, &field, &global)?;
                if receivers
                    .iter()
                    .any(|existing| existing.name == receiver.name)
                {
                    return Err(self.error(
                        item.line,
                        &format!("{field}.name"),
                        format!("receiver name {:?} is not unique", receiver.name),
                    ));
                }
                receivers.push(receiver);
            }
        }

        let Some(route_node) = route_node else {
            return Err(self.error(root.line, "route", "no route provided in config"));
        };
        let raw = self.raw_route(route_node, "route")?;
        if raw.receiver.is_none() {
            return Err(self.error(
                raw.line,
                "route.receiver",
                "root route must specify a default receiver",
            ));
        }
        if !raw.matchers.is_empty() {
            return Err(self.error(raw.line, "route", "root route must not have any matchers"));
        }
        if !raw.mute_time_intervals.is_empty() {
            return Err(self.error(
                raw.line,
                "route.mute_time_intervals",
                "root route must not have any mute time intervals",
            ));
        }
        if !raw.active_time_intervals.is_empty() {
            return Err(self.error(
                raw.line,
                "route.active_time_intervals",
                "root route must not have any active time intervals",
            ));
        }
        self.check_route_references(&raw, &receivers, &time_intervals)?;
        let defaults = Route {
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            matchers: Vec::new(),
            continue_matching: false,
            group_wait_ms: DEFAULT_GROUP_WAIT_MS,
            group_interval_ms: DEFAULT_GROUP_INTERVAL_MS,
            repeat_interval_ms: DEFAULT_REPEAT_INTERVAL_MS,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            routes: Vec::new(),
            key: String::new(),
            id: 0,
        };
        let route = resolve_route(raw, &defaults, None, &mut 0);

        let mut inhibit_rules = Vec::new();
        if let Some(node) = inhibit_node {
            for (index, item) in self.sequence(node, "inhibit_rules")?.iter().enumerate() {
                inhibit_rules.push(self.inhibit_rule(item, &format!("inhibit_rules[{index}]"))?);
            }
        }

        Ok(Config {
            global,
            route,
            inhibit_rules,
            receivers,
            templates,
            time_intervals,
            warnings: self.take_warnings(),
        })
    }

    fn check_route_references(
        &self,
        route: &RawRoute,
        receivers: &[Receiver],
        time_intervals: &BTreeMap<String, Vec<TimeInterval>>,
    ) -> Result<(), ConfigError> {
        if let Some((name, line)) = &route.receiver
            && !receivers.iter().any(|receiver| &receiver.name == name)
        {
            return Err(self.error(
                *line,
                &format!("{}.receiver", route.field),
                format!("undefined receiver {name:?} used in route"),
            ));
        }
        for (list, field) in [
            (&route.mute_time_intervals, "mute_time_intervals"),
            (&route.active_time_intervals, "active_time_intervals"),
        ] {
            for (name, line) in list {
                if !time_intervals.contains_key(name) {
                    return Err(self.error(
                        *line,
                        &format!("{}.{field}", route.field),
                        format!("undefined time interval {name:?} used in route"),
                    ));
                }
            }
        }
        for child in &route.routes {
            self.check_route_references(child, receivers, time_intervals)?;
        }
        Ok(())
    }

    fn global(&mut self, node: &Node) -> Result<GlobalConfig, ConfigError> {
        let mut global = GlobalConfig::default();
        for (key, value) in self.mapping(node, "global")? {
            let name = self.string(key, "global")?;
            let field = format!("global.{name}");
            match name.as_str() {
                "resolve_timeout" => global.resolve_timeout_ms = self.duration(value, &field)?,
                "http_config" => global.http_config = self.http_config(value, &field)?,
                "smtp_from" => global.smtp_from = Some(self.string(value, &field)?),
                "smtp_hello" => global.smtp_hello = self.string(value, &field)?,
                "smtp_smarthost" => global.smtp_smarthost = Some(self.host_port(value, &field)?),
                "smtp_auth_username" => {
                    global.smtp_auth_username = Some(self.string(value, &field)?)
                }
                "smtp_auth_password" => {
                    global.smtp_auth_password = Some(self.string(value, &field)?)
                }
                "smtp_auth_password_file" => {
                    global.smtp_auth_password = Some(self.secret_file(value, &field)?)
                }
                "smtp_auth_identity" => {
                    global.smtp_auth_identity = Some(self.string(value, &field)?)
                }
                "smtp_auth_secret" => global.smtp_auth_secret = Some(self.string(value, &field)?),
                "smtp_auth_secret_file" => {
                    global.smtp_auth_secret = Some(self.secret_file(value, &field)?)
                }
                "smtp_require_tls" => global.smtp_require_tls = self.bool(value, &field)?,
                "slack_api_url" => global.slack_api_url = Some(self.url(value, &field)?),
                "slack_api_url_file" => {
                    global.slack_api_url = Some(self.secret_file(value, &field)?)
                }
                "pagerduty_url" => global.pagerduty_url = self.url(value, &field)?,
                _ if UNSUPPORTED_GLOBALS.contains(&name.as_str()) => {
                    return Err(self.error(
                        key.line,
                        &field,
                        "not supported by osprey: the receiver kind this setting is for",
                    ));
                }
                _ => return Err(self.error(key.line, &field, "unknown field")),
            }
        }
        Ok(global)
    }

    /// `host:port`, as Alertmanager's `HostPort` requires.
    fn host_port(&self, node: &Node, field: &str) -> Result<String, ConfigError> {
        let text = self.string(node, field)?;
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !port.is_empty() => Ok(text),
            Some((_, "")) => Err(self.error(
                node.line,
                field,
                format!("port cannot be empty in {text:?}"),
            )),
            Some(_) => Err(self.error(
                node.line,
                field,
                format!("host cannot be empty in {text:?}"),
            )),
            None => Err(self.error(
                node.line,
                field,
                format!("address {text:?}: missing port in address"),
            )),
        }
    }

    /// A receiver's `http_config`: Prometheus's HTTP client settings.
    fn http_config(&mut self, node: &Node, field: &str) -> Result<HttpClientConfig, ConfigError> {
        let mut config = HttpClientConfig::default();
        for f in self.fields(node, field)? {
            if !http::decode_field(self, &mut config, &f)? {
                return Err(self.unknown(&f));
            }
        }
        http::validate(self, &config, node.line, field)?;
        Ok(config)
    }

    fn label_name(&self, name: &str, line: u64, field: &str) -> Result<(), ConfigError> {
        if is_valid_label_name(name) {
            Ok(())
        } else {
            Err(self.error(line, field, format!("invalid label name {name:?}")))
        }
    }

    /// A list of matcher strings (`matchers`, `source_matchers`, ...).
    fn matcher_list(&self, node: &Node, field: &str) -> Result<Vec<Matcher>, ConfigError> {
        let mut matchers = Vec::new();
        for (text, line) in self.string_list_with_lines(node, field)? {
            matchers.extend(parse_matchers(&text).map_err(|error| self.error(line, field, error))?);
        }
        Ok(matchers)
    }

    /// The deprecated `match` (equality) or `match_re` (regex) mapping.
    fn match_map(
        &self,
        node: &Node,
        field: &str,
        op: MatchOp,
    ) -> Result<Vec<Matcher>, ConfigError> {
        let mut matchers = Vec::new();
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            self.label_name(&name, key.line, &path)?;
            let value = self.string(value, &path)?;
            let matcher = Matcher::new(op, name, value)
                .map_err(|error| self.error(key.line, &path, error.to_string()))?;
            matchers.push(matcher);
        }
        Ok(matchers)
    }

    fn raw_route(&mut self, node: &Node, field: &str) -> Result<RawRoute, ConfigError> {
        let mut route = RawRoute {
            line: node.line,
            field: field.to_string(),
            receiver: None,
            group_by: None,
            matchers: Vec::new(),
            continue_matching: false,
            group_wait_ms: None,
            group_interval_ms: None,
            repeat_interval_ms: None,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            routes: Vec::new(),
        };
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "receiver" => {
                    let receiver = self.string(value, &path)?;
                    if !receiver.is_empty() {
                        route.receiver = Some((receiver, value.line));
                    }
                }
                "group_by" => {
                    let labels = self.string_list_with_lines(value, &path)?;
                    if labels.iter().any(|(label, _)| label == "...") {
                        if labels.len() > 1 {
                            return Err(self.error(value.line, &path, "cannot have wildcard group_by (`...`) and other other labels at the same time"));
                        }
                        route.group_by = Some(GroupBy::All);
                    } else {
                        let mut names: Vec<String> = Vec::new();
                        for (label, line) in labels {
                            self.label_name(&label, line, &path)?;
                            if names.contains(&label) {
                                return Err(self.error(
                                    line,
                                    &path,
                                    format!("duplicated label {label:?} in group_by"),
                                ));
                            }
                            names.push(label);
                        }
                        names.sort();
                        route.group_by = Some(GroupBy::Labels(names));
                    }
                }
                "match" => route
                    .matchers
                    .extend(self.match_map(value, &path, MatchOp::Equal)?),
                "match_re" => {
                    route
                        .matchers
                        .extend(self.match_map(value, &path, MatchOp::RegexMatch)?)
                }
                "matchers" => route.matchers.extend(self.matcher_list(value, &path)?),
                "continue" => route.continue_matching = self.bool(value, &path)?,
                "group_wait" => route.group_wait_ms = Some(self.duration(value, &path)?),
                "group_interval" => {
                    let ms = self.duration(value, &path)?;
                    if ms == 0 {
                        return Err(self.error(value.line, &path, "group_interval cannot be zero"));
                    }
                    route.group_interval_ms = Some(ms);
                }
                "repeat_interval" => {
                    let ms = self.duration(value, &path)?;
                    if ms == 0 {
                        return Err(self.error(
                            value.line,
                            &path,
                            "repeat_interval cannot be zero",
                        ));
                    }
                    route.repeat_interval_ms = Some(ms);
                }
                "mute_time_intervals" => {
                    route.mute_time_intervals = self.string_list_with_lines(value, &path)?
                }
                "active_time_intervals" => {
                    route.active_time_intervals = self.string_list_with_lines(value, &path)?
                }
                "routes" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        route
                            .routes
                            .push(self.raw_route(item, &format!("{path}[{index}]"))?);
                    }
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        route.matchers.sort_by(compare_matchers);
        Ok(route)
    }

    fn inhibit_rule(&self, node: &Node, field: &str) -> Result<InhibitRule, ConfigError> {
        let mut rule = InhibitRule {
            source_matchers: Vec::new(),
            target_matchers: Vec::new(),
            equal: Vec::new(),
        };
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "source_match" => {
                    rule.source_matchers
                        .extend(self.match_map(value, &path, MatchOp::Equal)?)
                }
                "source_match_re" => rule.source_matchers.extend(self.match_map(
                    value,
                    &path,
                    MatchOp::RegexMatch,
                )?),
                "source_matchers" => rule
                    .source_matchers
                    .extend(self.matcher_list(value, &path)?),
                "target_match" => {
                    rule.target_matchers
                        .extend(self.match_map(value, &path, MatchOp::Equal)?)
                }
                "target_match_re" => rule.target_matchers.extend(self.match_map(
                    value,
                    &path,
                    MatchOp::RegexMatch,
                )?),
                "target_matchers" => rule
                    .target_matchers
                    .extend(self.matcher_list(value, &path)?),
                "equal" => {
                    for (label, line) in self.string_list_with_lines(value, &path)? {
                        self.label_name(&label, line, &path)?;
                        rule.equal.push(label);
                    }
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        Ok(rule)
    }

    fn named_interval(
        &self,
        node: &Node,
        field: &str,
    ) -> Result<(String, Vec<TimeInterval>), ConfigError> {
        let mut name = None;
        let mut intervals = Vec::new();
        for (key, value) in self.mapping(node, field)? {
            let key_name = self.string(key, field)?;
            let path = format!("{field}.{key_name}");
            match key_name.as_str() {
                "name" => name = Some(self.string(value, &path)?),
                "time_intervals" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        intervals.push(self.time_interval(item, &format!("{path}[{index}]"))?);
                    }
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        match name {
            Some(name) if !name.is_empty() => Ok((name, intervals)),
            _ => Err(self.error(
                node.line,
                &format!("{field}.name"),
                "missing name in time interval",
            )),
        }
    }

    fn time_interval(&self, node: &Node, field: &str) -> Result<TimeInterval, ConfigError> {
        let mut interval = TimeInterval::default();
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            let wrap = |error: String| self.error(value.line, &path, error);
            match name.as_str() {
                "times" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        let item_path = format!("{path}[{index}]");
                        let mut start = None;
                        let mut end = None;
                        for (time_key, time_value) in self.mapping(item, &item_path)? {
                            let time_name = self.string(time_key, &item_path)?;
                            let time_path = format!("{item_path}.{time_name}");
                            let text = self.string(time_value, &time_path)?;
                            let minutes = timeinterval::parse_clock(&text)
                                .map_err(|error| self.error(time_value.line, &time_path, error))?;
                            match time_name.as_str() {
                                "start_time" => start = Some(minutes),
                                "end_time" => end = Some(minutes),
                                _ => {
                                    return Err(self.error(
                                        time_key.line,
                                        &time_path,
                                        "unknown field",
                                    ));
                                }
                            }
                        }
                        let (Some(start), Some(end)) = (start, end) else {
                            return Err(self.error(
                                item.line,
                                &item_path,
                                "both start and end times must be provided",
                            ));
                        };
                        if start >= end {
                            return Err(self.error(
                                item.line,
                                &item_path,
                                "start time cannot be equal or greater than end time",
                            ));
                        }
                        interval.times.push((start, end));
                    }
                }
                "weekdays" => {
                    for (text, _) in self.string_list_with_lines(value, &path)? {
                        interval
                            .weekdays
                            .push(timeinterval::parse_weekday_range(&text).map_err(wrap)?);
                    }
                }
                "days_of_month" => {
                    for (text, _) in self.string_list_with_lines(value, &path)? {
                        interval
                            .days_of_month
                            .push(timeinterval::parse_day_of_month_range(&text).map_err(wrap)?);
                    }
                }
                "months" => {
                    for (text, _) in self.string_list_with_lines(value, &path)? {
                        interval
                            .months
                            .push(timeinterval::parse_month_range(&text).map_err(wrap)?);
                    }
                }
                "years" => {
                    for (text, _) in self.string_list_with_lines(value, &path)? {
                        interval
                            .years
                            .push(timeinterval::parse_year_range(&text).map_err(wrap)?);
                    }
                }
                "location" => {
                    let text = self.string(value, &path)?;
                    interval.location = timeinterval::Location::load(&text).map_err(wrap)?;
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        Ok(interval)
    }

    fn receiver(
        &mut self,
        node: &Node,
        field: &str,
        global: &GlobalConfig,
    ) -> Result<Receiver, ConfigError> {
        let entries = self.mapping(node, field)?;
        let name = match entries
            .iter()
            .find(|(key, _)| matches!(&key.value, NodeValue::String(k) if k == "name"))
        {
            Some((_, value)) => self.string(value, &format!("{field}.name"))?,
            None => String::new(),
        };
        if name.is_empty() {
            return Err(self.error(
                node.line,
                &format!("{field}.name"),
                "missing name in receiver",
            ));
        }
        let mut receiver = Receiver {
            name,
            webhook_configs: Vec::new(),
            slack_configs: Vec::new(),
            email_configs: Vec::new(),
            pagerduty_configs: Vec::new(),
        };
        for (key, value) in entries {
            let kind = self.string(key, field)?;
            let path = format!("{field}.{kind}");
            match kind.as_str() {
                "name" => {}
                "webhook_configs" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        let config = self.webhook(item, &format!("{path}[{index}]"), global)?;
                        receiver.webhook_configs.push(config);
                    }
                }
                "slack_configs" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        let config = self.slack(item, &format!("{path}[{index}]"), global)?;
                        receiver.slack_configs.push(config);
                    }
                }
                "email_configs" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        let config = self.email(item, &format!("{path}[{index}]"), global)?;
                        receiver.email_configs.push(config);
                    }
                }
                "pagerduty_configs" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        let config = self.pagerduty(item, &format!("{path}[{index}]"), global)?;
                        receiver.pagerduty_configs.push(config);
                    }
                }
                _ if UNSUPPORTED_RECEIVERS.contains(&kind.as_str()) => {
                    return Err(self.error(
                        key.line,
                        &path,
                        "not supported by osprey: this receiver kind (osprey sends to webhook, Slack, email and PagerDuty receivers)",
                    ));
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        Ok(receiver)
    }

    fn webhook(
        &mut self,
        node: &Node,
        field: &str,
        global: &GlobalConfig,
    ) -> Result<WebhookConfig, ConfigError> {
        let mut config = WebhookConfig {
            send_resolved: true,
            url: String::new(),
            max_alerts: 0,
            http_config: global.http_config.clone(),
        };
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "send_resolved" => config.send_resolved = self.bool(value, &path)?,
                "url" => config.url = self.url(value, &path)?,
                "url_file" => config.url = self.secret_file(value, &path)?,
                "max_alerts" => config.max_alerts = self.unsigned(value, &path)?,
                "http_config" => config.http_config = self.http_config(value, &path)?,
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        if config.url.is_empty() {
            return Err(self.error(
                node.line,
                field,
                "one of url or url_file must be configured",
            ));
        }
        Ok(config)
    }

    fn slack(
        &mut self,
        node: &Node,
        field: &str,
        global: &GlobalConfig,
    ) -> Result<SlackConfig, ConfigError> {
        let mut config = SlackConfig {
            send_resolved: false,
            api_url: global.slack_api_url.clone().unwrap_or_default(),
            http_config: global.http_config.clone(),
            fields: BTreeMap::new(),
            attachment_fields: Vec::new(),
            actions: Vec::new(),
            mrkdwn_in: None,
        };
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "send_resolved" => config.send_resolved = self.bool(value, &path)?,
                "api_url" => config.api_url = self.url(value, &path)?,
                "api_url_file" => config.api_url = self.secret_file(value, &path)?,
                "http_config" => config.http_config = self.http_config(value, &path)?,
                "short_fields" | "link_names" => {
                    let flag = self.bool(value, &path)?;
                    config.fields.insert(name, flag.to_string());
                }
                "mrkdwn_in" => config.mrkdwn_in = Some(self.string_list(value, &path)?),
                "fields" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        let item_path = format!("{path}[{index}]");
                        config
                            .attachment_fields
                            .push(self.slack_field(item, &item_path)?);
                    }
                }
                "actions" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        let item_path = format!("{path}[{index}]");
                        config.actions.push(self.slack_action(item, &item_path)?);
                    }
                }
                _ if SLACK_TEXT_FIELDS.contains(&name.as_str()) => {
                    let text = self.string(value, &path)?;
                    config.fields.insert(name, text);
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        if config.api_url.is_empty() {
            return Err(self.error(node.line, field, "no global Slack API URL set"));
        }
        Ok(config)
    }

    fn slack_field(&self, node: &Node, field: &str) -> Result<SlackField, ConfigError> {
        let mut slack_field = SlackField {
            title: String::new(),
            value: String::new(),
            short: None,
        };
        for f in self.fields(node, field)? {
            match f.name.as_str() {
                "title" => slack_field.title = self.string(f.value, &f.path)?,
                "value" => slack_field.value = self.string(f.value, &f.path)?,
                "short" => slack_field.short = Some(self.bool(f.value, &f.path)?),
                _ => return Err(self.unknown(&f)),
            }
        }
        if slack_field.title.is_empty() {
            return Err(self.error(
                node.line,
                field,
                "missing title in Slack field configuration",
            ));
        }
        if slack_field.value.is_empty() {
            return Err(self.error(
                node.line,
                field,
                "missing value in Slack field configuration",
            ));
        }
        Ok(slack_field)
    }

    fn slack_action(&self, node: &Node, field: &str) -> Result<SlackAction, ConfigError> {
        let mut action = SlackAction {
            kind: String::new(),
            text: String::new(),
            url: String::new(),
            style: String::new(),
            name: String::new(),
            value: String::new(),
            confirm: None,
        };
        for f in self.fields(node, field)? {
            let text = |reader: &Self| reader.string(f.value, &f.path);
            match f.name.as_str() {
                "type" => action.kind = text(self)?,
                "text" => action.text = text(self)?,
                "url" => action.url = text(self)?,
                "style" => action.style = text(self)?,
                "name" => action.name = text(self)?,
                "value" => action.value = text(self)?,
                "confirm" => {
                    let mut confirm = SlackConfirm {
                        title: String::new(),
                        text: String::new(),
                        ok_text: String::new(),
                        dismiss_text: String::new(),
                    };
                    for g in self.fields(f.value, &f.path)? {
                        let value = self.string(g.value, &g.path)?;
                        match g.name.as_str() {
                            "title" => confirm.title = value,
                            "text" => confirm.text = value,
                            "ok_text" => confirm.ok_text = value,
                            "dismiss_text" => confirm.dismiss_text = value,
                            _ => return Err(self.unknown(&g)),
                        }
                    }
                    if confirm.text.is_empty() {
                        return Err(self.error(
                            f.value.line,
                            &f.path,
                            "missing text in Slack confirmation configuration",
                        ));
                    }
                    action.confirm = Some(confirm);
                }
                _ => return Err(self.unknown(&f)),
            }
        }
        if action.kind.is_empty() {
            return Err(self.error(
                node.line,
                field,
                "missing type in Slack action configuration",
            ));
        }
        if action.text.is_empty() {
            return Err(self.error(
                node.line,
                field,
                "missing text in Slack action configuration",
            ));
        }
        if action.url.is_empty() && action.name.is_empty() {
            return Err(self.error(
                node.line,
                field,
                "missing name or url in Slack action configuration",
            ));
        }
        Ok(action)
    }

    fn email(
        &mut self,
        node: &Node,
        field: &str,
        global: &GlobalConfig,
    ) -> Result<EmailConfig, ConfigError> {
        let mut config = EmailConfig {
            send_resolved: false,
            to: String::new(),
            from: global.smtp_from.clone().unwrap_or_default(),
            hello: global.smtp_hello.clone(),
            smarthost: global.smtp_smarthost.clone().unwrap_or_default(),
            auth_username: global.smtp_auth_username.clone(),
            auth_password: global.smtp_auth_password.clone(),
            auth_identity: global.smtp_auth_identity.clone(),
            auth_secret: global.smtp_auth_secret.clone(),
            require_tls: global.smtp_require_tls,
            tls_config: TlsConfig::default(),
            headers: BTreeMap::new(),
            html: None,
            text: None,
        };
        let mut html_set = false;
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "send_resolved" => config.send_resolved = self.bool(value, &path)?,
                "to" => config.to = self.string(value, &path)?,
                "from" => config.from = self.string(value, &path)?,
                "hello" => config.hello = self.string(value, &path)?,
                "smarthost" => config.smarthost = self.host_port(value, &path)?,
                "auth_username" => config.auth_username = Some(self.string(value, &path)?),
                "auth_password" => config.auth_password = Some(self.string(value, &path)?),
                "auth_password_file" => {
                    config.auth_password = Some(self.secret_file(value, &path)?)
                }
                "auth_identity" => config.auth_identity = Some(self.string(value, &path)?),
                "auth_secret" => config.auth_secret = Some(self.string(value, &path)?),
                "auth_secret_file" => config.auth_secret = Some(self.secret_file(value, &path)?),
                "require_tls" => config.require_tls = self.bool(value, &path)?,
                "tls_config" => {
                    config.tls_config = http::tls_config(self, value, &path)?;
                    // The SMTP client can set a floor but no ceiling.
                    if config
                        .tls_config
                        .max_version
                        .is_some_and(|version| version < crate::http::TlsVersion::Tls13)
                    {
                        return Err(self.error(
                            value.line,
                            &format!("{path}.max_version"),
                            "not supported by osprey: a TLS ceiling below 1.3 for email",
                        ));
                    }
                }
                "headers" => {
                    // Header names are case-insensitive; Alertmanager
                    // rejects the same name twice in different cases.
                    for (header, text) in self.string_map(value, &path)? {
                        let canonical = canonical_header(&header);
                        if config.headers.contains_key(&canonical) {
                            return Err(self.error(
                                value.line,
                                &path,
                                format!("duplicate header {canonical:?} in email config"),
                            ));
                        }
                        config.headers.insert(canonical, text);
                    }
                }
                "html" => {
                    config.html = Some(self.string(value, &path)?);
                    html_set = true;
                }
                "text" => config.text = Some(self.string(value, &path)?),
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        if config.to.is_empty() {
            return Err(self.error(node.line, field, "missing to address in email config"));
        }
        if config.smarthost.is_empty() {
            return Err(self.error(node.line, field, "no global SMTP smarthost set"));
        }
        if config.from.is_empty() {
            return Err(self.error(node.line, field, "no global SMTP from set"));
        }
        if !html_set {
            config.html = Some(r#"{{ template "email.default.html" . }}"#.to_string());
        }
        Ok(config)
    }

    fn pagerduty(
        &mut self,
        node: &Node,
        field: &str,
        global: &GlobalConfig,
    ) -> Result<PagerdutyConfig, ConfigError> {
        let mut config = PagerdutyConfig {
            send_resolved: true,
            routing_key: None,
            service_key: None,
            url: global.pagerduty_url.clone(),
            http_config: global.http_config.clone(),
            fields: BTreeMap::new(),
            details: BTreeMap::new(),
            images: Vec::new(),
            links: Vec::new(),
        };
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "send_resolved" => config.send_resolved = self.bool(value, &path)?,
                "routing_key" => config.routing_key = Some(self.string(value, &path)?),
                "routing_key_file" => config.routing_key = Some(self.secret_file(value, &path)?),
                "service_key" => config.service_key = Some(self.string(value, &path)?),
                "service_key_file" => config.service_key = Some(self.secret_file(value, &path)?),
                "url" => config.url = self.url(value, &path)?,
                "http_config" => config.http_config = self.http_config(value, &path)?,
                "details" => config.details = self.string_map(value, &path)?,
                "images" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        let map = self.string_map(item, &format!("{path}[{index}]"))?;
                        for name in map.keys() {
                            if !["src", "alt", "href"].contains(&name.as_str()) {
                                return Err(self.error(
                                    item.line,
                                    &format!("{path}[{index}].{name}"),
                                    "unknown field",
                                ));
                            }
                        }
                        let get = |name: &str| map.get(name).cloned().unwrap_or_default();
                        config.images.push(PagerdutyImage {
                            src: get("src"),
                            alt: get("alt"),
                            href: get("href"),
                        });
                    }
                }
                "links" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        let map = self.string_map(item, &format!("{path}[{index}]"))?;
                        for name in map.keys() {
                            if !["href", "text"].contains(&name.as_str()) {
                                return Err(self.error(
                                    item.line,
                                    &format!("{path}[{index}].{name}"),
                                    "unknown field",
                                ));
                            }
                        }
                        let get = |name: &str| map.get(name).cloned().unwrap_or_default();
                        config.links.push(PagerdutyLink {
                            href: get("href"),
                            text: get("text"),
                        });
                    }
                }
                _ if PAGERDUTY_TEXT_FIELDS.contains(&name.as_str()) => {
                    let text = self.string(value, &path)?;
                    config.fields.insert(name, text);
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        if config.routing_key.is_none()
            && config.service_key.is_some()
            && config.url == global.pagerduty_url
            && global.pagerduty_url == DEFAULT_PAGERDUTY_URL
        {
            // A service key alone means the Events API v1 endpoint.
            config.url = DEFAULT_PAGERDUTY_V1_URL.to_string();
        }
        if config.routing_key.is_none() && config.service_key.is_none() {
            return Err(self.error(
                node.line,
                field,
                "missing service or routing key in PagerDuty config",
            ));
        }
        Ok(config)
    }
}

/// Applies inheritance: unset settings come from the parent.
fn resolve_route(
    raw: RawRoute,
    parent: &Route,
    parent_key: Option<&str>,
    next_id: &mut usize,
) -> Route {
    let id = *next_id;
    *next_id += 1;
    let key = match parent_key {
        None => matchers::format_matchers(&raw.matchers),
        Some(parent_key) => format!("{parent_key}/{}", matchers::format_matchers(&raw.matchers)),
    };
    let mut route = Route {
        receiver: raw
            .receiver
            .map(|(name, _)| name)
            .unwrap_or_else(|| parent.receiver.clone()),
        group_by: raw.group_by.unwrap_or_else(|| parent.group_by.clone()),
        matchers: raw.matchers,
        continue_matching: raw.continue_matching,
        group_wait_ms: raw.group_wait_ms.unwrap_or(parent.group_wait_ms),
        group_interval_ms: raw.group_interval_ms.unwrap_or(parent.group_interval_ms),
        repeat_interval_ms: raw.repeat_interval_ms.unwrap_or(parent.repeat_interval_ms),
        mute_time_intervals: raw
            .mute_time_intervals
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
        active_time_intervals: raw
            .active_time_intervals
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
        routes: Vec::new(),
        key,
        id,
    };
    let mut children = Vec::with_capacity(raw.routes.len());
    for child in raw.routes {
        let resolved = resolve_route(child, &route, Some(&route.key), next_id);
        children.push(resolved);
    }
    route.routes = children;
    route
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `content-type` → `Content-Type`.
fn canonical_header(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests;
