//! Rule files: Prometheus's YAML format in, checked plain structs out.
//!
//! [`parse_rule_file`] reads one file and returns its groups, or every
//! problem found in it (as `promtool check rules` does, not just the
//! first), each naming the file, line and what is wrong. Validation
//! follows Prometheus's `rulefmt`: a rule is either `record` or `alert`;
//! `expr` must parse; recording rules have a valid metric name and no
//! `for`, `keep_firing_for` or `annotations`; label names are valid; the
//! label and annotation templates of alerting rules parse; group names are
//! unique in a file. Unknown fields are errors.

use model::duration::parse_duration_ms;
use yaml::{Node, NodeValue, parse_document};

/// One rule group as written in a file.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    /// The file the group came from, as given to [`parse_rule_file`].
    pub file: String,
    /// `None`: the global `evaluation_interval`.
    pub interval_ms: Option<i64>,
    /// Most series a recording rule or alerts an alerting rule may produce
    /// per evaluation; 0 means no limit.
    pub limit: u64,
    /// How far back of the evaluation time the rules query; `None`: the
    /// global `rule_query_offset` (0).
    pub query_offset_ms: Option<i64>,
    /// Labels added to every rule of the group (rule labels win).
    pub labels: Vec<(String, String)>,
    pub rules: Vec<RuleSpec>,
}

/// One rule as written in a file.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSpec {
    /// The line the rule starts on.
    pub line: u64,
    pub kind: RuleKind,
    pub expr: String,
    /// Sorted by name.
    pub labels: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RuleKind {
    Recording {
        record: String,
    },
    Alerting {
        alert: String,
        for_ms: i64,
        keep_firing_for_ms: i64,
        /// Sorted by name.
        annotations: Vec<(String, String)>,
    },
}

impl RuleSpec {
    /// The rule's name: the recorded metric or the alert name.
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Recording { record } => record,
            RuleKind::Alerting { alert, .. } => alert,
        }
    }
}

/// A problem in a rule file.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleFileError {
    pub file: String,
    /// 1-based; 0 when unknown.
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for RuleFileError {}

/// Parses and checks one rule file. `file` is only used in messages and
/// in [`GroupSpec::file`].
pub fn parse_rule_file(file: &str, text: &str) -> Result<Vec<GroupSpec>, Vec<RuleFileError>> {
    parse_rule_file_with(file, text, promql::ParseOptions::OSPREY)
}

/// [`parse_rule_file`] checking expressions with these PromQL features
/// (the server's `--enable-feature`).
pub fn parse_rule_file_with(
    file: &str,
    text: &str,
    features: promql::ParseOptions,
) -> Result<Vec<GroupSpec>, Vec<RuleFileError>> {
    let root = parse_document(text).map_err(|(line, message)| {
        vec![RuleFileError {
            file: file.to_string(),
            line,
            message,
        }]
    })?;
    let mut reader = Reader {
        file,
        errors: Vec::new(),
        features,
    };
    let groups = reader.file(&root);
    if reader.errors.is_empty() {
        Ok(groups)
    } else {
        Err(reader.errors)
    }
}

struct Reader<'a> {
    file: &'a str,
    errors: Vec<RuleFileError>,
    features: promql::ParseOptions,
}

impl Reader<'_> {
    fn error(&mut self, line: u64, message: impl Into<String>) {
        self.errors.push(RuleFileError {
            file: self.file.to_string(),
            line,
            message: message.into(),
        });
    }

    fn file(&mut self, root: &Node) -> Vec<GroupSpec> {
        let mut groups = Vec::new();
        let entries = match &root.value {
            NodeValue::Mapping(entries) => entries,
            NodeValue::Null => return groups,
            other => {
                self.error(
                    root.line,
                    format!(
                        "expected a mapping with `groups`, got {}",
                        other.kind_name()
                    ),
                );
                return groups;
            }
        };
        for (key, value) in entries {
            match scalar(key).as_deref() {
                Some("groups") => match &value.value {
                    NodeValue::Sequence(items) => {
                        let mut seen = std::collections::HashSet::new();
                        for (index, item) in items.iter().enumerate() {
                            if let Some(group) = self.group(item, index) {
                                if !seen.insert(group.name.clone()) {
                                    self.error(
                                        item.line,
                                        format!(
                                            "groupname: \"{}\" is repeated in the same file",
                                            group.name
                                        ),
                                    );
                                }
                                groups.push(group);
                            }
                        }
                    }
                    NodeValue::Null => {}
                    other => self.error(
                        value.line,
                        format!("groups: expected a list, got {}", other.kind_name()),
                    ),
                },
                Some(other) => self.error(key.line, format!("field {other} not found")),
                None => self.error(key.line, "expected a field name"),
            }
        }
        groups
    }

    fn group(&mut self, node: &Node, index: usize) -> Option<GroupSpec> {
        let NodeValue::Mapping(entries) = &node.value else {
            self.error(node.line, format!("groups[{index}]: expected a mapping"));
            return None;
        };
        let mut group = GroupSpec {
            name: String::new(),
            file: self.file.to_string(),
            interval_ms: None,
            limit: 0,
            query_offset_ms: None,
            labels: Vec::new(),
            rules: Vec::new(),
        };
        let mut rule_nodes: &[Node] = &[];
        let errors_before = self.errors.len();
        for (key, value) in entries {
            let field = scalar(key).unwrap_or_default();
            let path = format!("groups[{index}].{field}");
            match field.as_str() {
                "name" => group.name = self.string(value, &path).unwrap_or_default(),
                "interval" => group.interval_ms = self.duration(value, &path),
                "query_offset" => group.query_offset_ms = self.duration(value, &path),
                "limit" => match &value.value {
                    NodeValue::Int(n) if *n >= 0 => group.limit = (*n).min(u64::MAX as i128) as u64,
                    _ => self.error(
                        value.line,
                        format!("{path}: expected a non-negative integer"),
                    ),
                },
                "labels" => group.labels = self.labels(value, &path),
                "rules" => match &value.value {
                    NodeValue::Sequence(items) => rule_nodes = items,
                    NodeValue::Null => {}
                    _ => self.error(value.line, format!("{path}: expected a list")),
                },
                _ => self.error(
                    key.line,
                    format!("field {field} not found in type rulefmt.RuleGroup"),
                ),
            }
        }
        if group.name.is_empty() {
            self.error(node.line, "Groupname must not be empty");
        }
        if let Some(interval) = group.interval_ms
            && interval <= 0
        {
            self.error(
                node.line,
                format!("group {:?}: interval must be positive", group.name),
            );
        }
        for (rule_index, rule_node) in rule_nodes.iter().enumerate() {
            if let Some(rule) = self.rule(rule_node, &group.name, rule_index) {
                group.rules.push(rule);
            }
        }
        (self.errors.len() == errors_before).then_some(group)
    }

    fn rule(&mut self, node: &Node, group: &str, index: usize) -> Option<RuleSpec> {
        let NodeValue::Mapping(entries) = &node.value else {
            self.error(
                node.line,
                format!("group {group:?}, rule {}: expected a mapping", index + 1),
            );
            return None;
        };
        let mut record: Option<(String, u64)> = None;
        let mut alert: Option<(String, u64)> = None;
        let mut expr: Option<(String, u64)> = None;
        let mut for_ms: Option<i64> = None;
        let mut keep_firing_for_ms: Option<i64> = None;
        let mut labels = Vec::new();
        let mut annotations: Option<Vec<(String, String)>> = None;
        let errors_before = self.errors.len();
        let context = |name: &str| format!("group {group:?}, rule {}, {name:?}", index + 1);
        for (key, value) in entries {
            let field = scalar(key).unwrap_or_default();
            let path = format!("group {group:?}, rule {}: {field}", index + 1);
            match field.as_str() {
                "record" => record = self.string(value, &path).map(|s| (s, value.line)),
                "alert" => alert = self.string(value, &path).map(|s| (s, value.line)),
                "expr" => expr = self.string(value, &path).map(|s| (s, value.line)),
                "for" => for_ms = self.duration(value, &path),
                "keep_firing_for" => keep_firing_for_ms = self.duration(value, &path),
                "labels" => labels = self.labels(value, &path),
                "annotations" => annotations = Some(self.labels(value, &path)),
                _ => self.error(
                    key.line,
                    format!("field {field} not found in type rulefmt.Rule"),
                ),
            }
        }
        if self.errors.len() != errors_before {
            return None;
        }
        let name = record
            .as_ref()
            .or(alert.as_ref())
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        let here = context(&name);
        let kind = match (record, alert) {
            (Some(_), Some(_)) => {
                self.error(
                    node.line,
                    format!("{here}: only one of 'record' and 'alert' must be set"),
                );
                return None;
            }
            (None, None) => {
                self.error(
                    node.line,
                    format!("{here}: one of 'record' or 'alert' must be set"),
                );
                return None;
            }
            (Some((record, line)), None) => {
                if record.is_empty() {
                    self.error(
                        line,
                        format!("{here}: one of 'record' or 'alert' must be set"),
                    );
                } else if !is_valid_metric_name(&record) {
                    self.error(
                        line,
                        format!("{here}: invalid recording rule name: {record}"),
                    );
                }
                if annotations.is_some() {
                    self.error(
                        node.line,
                        format!("{here}: invalid field 'annotations' in recording rule"),
                    );
                }
                if for_ms.is_some() {
                    self.error(
                        node.line,
                        format!("{here}: invalid field 'for' in recording rule"),
                    );
                }
                if keep_firing_for_ms.is_some() {
                    self.error(
                        node.line,
                        format!("{here}: invalid field 'keep_firing_for' in recording rule"),
                    );
                }
                RuleKind::Recording { record }
            }
            (None, Some((alert, line))) => {
                if alert.is_empty() {
                    self.error(
                        line,
                        format!("{here}: one of 'record' or 'alert' must be set"),
                    );
                }
                let annotations = annotations.unwrap_or_default();
                for (name, text) in labels.iter().chain(&annotations) {
                    if let Err(e) = crate::template::check(&format!("__alert_{alert}"), text) {
                        self.error(
                            node.line,
                            format!(
                                "{here}: msg=\"template parsing error\" name={name:?} err=\"{e}\""
                            ),
                        );
                    }
                }
                RuleKind::Alerting {
                    alert,
                    for_ms: for_ms.unwrap_or(0),
                    keep_firing_for_ms: keep_firing_for_ms.unwrap_or(0),
                    annotations,
                }
            }
        };
        let expr_text = match expr {
            Some((text, line)) if !text.trim().is_empty() => {
                if let Err(e) = promql::parse_with(&text, self.features) {
                    self.error(
                        line,
                        format!("{here}: could not parse expression: {}", e.message()),
                    );
                }
                text
            }
            _ => {
                self.error(
                    node.line,
                    format!("{here}: field 'expr' must be set in rule"),
                );
                String::new()
            }
        };
        for (label, _) in &labels {
            if label == "__name__" && matches!(kind, RuleKind::Recording { .. }) {
                self.error(
                    node.line,
                    format!("{here}: invalid recording rule label name: {label}"),
                );
            }
        }
        (self.errors.len() == errors_before).then_some(RuleSpec {
            line: node.line,
            kind,
            expr: expr_text,
            labels,
        })
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            NodeValue::String(s) => Some(s.clone()),
            NodeValue::Int(n) => Some(n.to_string()),
            NodeValue::Float(n) => Some(n.to_string()),
            NodeValue::Bool(b) => Some(b.to_string()),
            NodeValue::Null => Some(String::new()),
            other => {
                self.error(
                    node.line,
                    format!("{path}: expected a string, got {}", other.kind_name()),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<i64> {
        let text = self.string(node, path)?;
        match parse_duration_ms(&text) {
            Ok(ms) => Some(ms),
            Err(_) => {
                self.error(
                    node.line,
                    format!("{path}: not a valid duration string: {text:?}"),
                );
                None
            }
        }
    }

    /// A `name: value` mapping with names checked, sorted by name.
    fn labels(&mut self, node: &Node, path: &str) -> Vec<(String, String)> {
        let entries = match &node.value {
            NodeValue::Mapping(entries) => entries,
            NodeValue::Null => return Vec::new(),
            other => {
                self.error(
                    node.line,
                    format!("{path}: expected a mapping, got {}", other.kind_name()),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (key, value) in entries {
            let Some(name) = self.string(key, path) else {
                continue;
            };
            if !is_valid_label_name(&name) {
                self.error(key.line, format!("{path}: invalid label name: {name}"));
                continue;
            }
            if let Some(value) = self.string(value, &format!("{path}.{name}")) {
                out.push((name, value));
            }
        }
        out.sort();
        out
    }
}

fn scalar(node: &Node) -> Option<String> {
    match &node.value {
        NodeValue::String(s) => Some(s.clone()),
        NodeValue::Int(n) => Some(n.to_string()),
        NodeValue::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, as Prometheus's legacy label name check.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphabetic() || first == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, as Prometheus's legacy metric name check.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphabetic() || first == b'_' || first == b':' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}
