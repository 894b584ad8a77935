//! Relabelling: the `relabel_configs` and `metric_relabel_configs` rules of
//! `prometheus.yml`, with every action Prometheus has.
//!
//! A rule joins the values of its `source_labels` with `separator`, then
//! acts on that string or on the label set according to `action`. Regexes
//! are fully anchored (`^(?:regex)$`), and replacements expand `$1`,
//! `${1}`, `$name` and `${name}` the way Go's `regexp.Expand` does, so that
//! a `prometheus.yml` gives the same labels here as in Prometheus.
//!
//! The working label set is a `BTreeMap` in which an empty value never
//! appears: setting a label to `""` deletes it, as in Prometheus.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What a relabel rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelabelAction {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl RelabelAction {
    /// Parses an action name, case-insensitively as Prometheus does.
    pub fn parse(name: &str) -> Option<RelabelAction> {
        Some(match name.to_ascii_lowercase().as_str() {
            "replace" => RelabelAction::Replace,
            "keep" => RelabelAction::Keep,
            "drop" => RelabelAction::Drop,
            "keepequal" => RelabelAction::KeepEqual,
            "dropequal" => RelabelAction::DropEqual,
            "hashmod" => RelabelAction::HashMod,
            "labelmap" => RelabelAction::LabelMap,
            "labeldrop" => RelabelAction::LabelDrop,
            "labelkeep" => RelabelAction::LabelKeep,
            "lowercase" => RelabelAction::Lowercase,
            "uppercase" => RelabelAction::Uppercase,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RelabelAction::Replace => "replace",
            RelabelAction::Keep => "keep",
            RelabelAction::Drop => "drop",
            RelabelAction::KeepEqual => "keepequal",
            RelabelAction::DropEqual => "dropequal",
            RelabelAction::HashMod => "hashmod",
            RelabelAction::LabelMap => "labelmap",
            RelabelAction::LabelDrop => "labeldrop",
            RelabelAction::LabelKeep => "labelkeep",
            RelabelAction::Lowercase => "lowercase",
            RelabelAction::Uppercase => "uppercase",
        }
    }
}

/// A relabel regex: the text as written plus its anchored compilation.
/// Two regexes are equal when their text is.
#[derive(Clone, Debug)]
pub struct RelabelRegex {
    source: String,
    anchored: Regex,
}

/// The regex a rule gets when it names none.
pub const DEFAULT_RELABEL_REGEX: &str = "(.*)";

impl RelabelRegex {
    pub fn new(source: &str) -> Result<RelabelRegex, String> {
        let anchored = Regex::new(&format!("^(?:{source})$"))
            .map_err(|error| format!("invalid regex {source:?}: {error}"))?;
        Ok(RelabelRegex {
            source: source.to_string(),
            anchored,
        })
    }

    /// The regex as written in the config, without the anchors.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.anchored.is_match(text)
    }
}

impl PartialEq for RelabelRegex {
    fn eq(&self, other: &RelabelRegex) -> bool {
        self.source == other.source
    }
}

impl Eq for RelabelRegex {}

/// One relabel rule. Build it with [`RelabelConfig::new`] (Prometheus's
/// defaults) and check it with [`RelabelConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    pub regex: RelabelRegex,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
    pub action: RelabelAction,
}

impl RelabelConfig {
    /// A rule with Prometheus's defaults: `replace`, separator `;`, regex
    /// `(.*)`, replacement `$1`, no source or target labels.
    pub fn new() -> RelabelConfig {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: ";".to_string(),
            regex: default_regex().clone(),
            modulus: 0,
            target_label: String::new(),
            replacement: "$1".to_string(),
            action: RelabelAction::Replace,
        }
    }

    /// Checks the combinations Prometheus rejects when it loads a config.
    pub fn validate(&self) -> Result<(), String> {
        use RelabelAction::*;
        let action = self.action;
        let name = action.as_str();
        if action == HashMod && self.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && self.target_label.is_empty()
        {
            return Err(format!(
                "relabel configuration for {name} action requires 'target_label' value"
            ));
        }
        let invalid_target = || {
            Err(format!(
                "{:?} is invalid 'target_label' for {name} action",
                self.target_label
            ))
        };
        if action == Replace {
            let valid = if self.target_label.contains('$') {
                is_valid_target_template(&self.target_label)
            } else {
                is_valid_label_name(&self.target_label)
            };
            if !valid {
                return invalid_target();
            }
        }
        if matches!(
            action,
            Lowercase | Uppercase | KeepEqual | DropEqual | HashMod
        ) && !is_valid_label_name(&self.target_label)
        {
            return invalid_target();
        }
        if matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual)
            && self.replacement != "$1"
        {
            return Err(format!("'replacement' can not be set for {name} action"));
        }
        if action == LabelMap && !is_valid_target_template(&self.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {name} action",
                self.replacement
            ));
        }
        if matches!(action, KeepEqual | DropEqual)
            && (self.regex.as_str() != DEFAULT_RELABEL_REGEX
                || self.modulus != 0
                || self.separator != ";")
        {
            return Err(format!(
                "{name} action requires only 'source_labels' and 'target_label', and no other fields"
            ));
        }
        if matches!(action, LabelDrop | LabelKeep)
            && (!self.source_labels.is_empty()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != ";"
                || self.replacement != "$1")
        {
            return Err(format!(
                "{name} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }
}

impl Default for RelabelConfig {
    fn default() -> RelabelConfig {
        RelabelConfig::new()
    }
}

fn default_regex() -> &'static RelabelRegex {
    static DEFAULT: LazyLock<RelabelRegex> = LazyLock::new(|| {
        RelabelRegex::new(DEFAULT_RELABEL_REGEX).unwrap_or_else(|_| unreachable!())
    });
    &DEFAULT
}

/// Whether `name` is a classic label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphabetic() || first == b'_' => {}
        _ => return false,
    }
    bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// Whether a `target_label` (or `labelmap` replacement) with `$` references
/// is well formed: letters, digits and underscores, not starting with a
/// digit, with `$name`/`${name}` references anywhere.
fn is_valid_target_template(template: &str) -> bool {
    static TEMPLATE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").unwrap_or_else(|_| unreachable!())
    });
    TEMPLATE.is_match(template)
}

/// Applies `rules` in order to `labels`. Returns `false` when a rule drops
/// the label set (its contents are then unspecified).
pub fn process(labels: &mut BTreeMap<String, String>, rules: &[RelabelConfig]) -> bool {
    rules.iter().all(|rule| apply_rule(rule, labels))
}

/// Prometheus's `hashmod`: the low 8 bytes of the MD5 digest of `text`,
/// big-endian, modulo `modulus` (so shards agree with Prometheus's).
fn hashmod(text: &str, modulus: u64) -> u64 {
    use md5::Digest;
    let digest = md5::Md5::digest(text.as_bytes());
    let mut low_bytes = [0u8; 8];
    low_bytes.copy_from_slice(&digest[8..]);
    u64::from_be_bytes(low_bytes) % modulus.max(1)
}

fn set_label(labels: &mut BTreeMap<String, String>, name: String, value: String) {
    if value.is_empty() {
        labels.remove(&name);
    } else {
        labels.insert(name, value);
    }
}

fn apply_rule(rule: &RelabelConfig, labels: &mut BTreeMap<String, String>) -> bool {
    let mut joined = String::new();
    for (index, name) in rule.source_labels.iter().enumerate() {
        if index > 0 {
            joined.push_str(&rule.separator);
        }
        if let Some(value) = labels.get(name) {
            joined.push_str(value);
        }
    }
    let current = |labels: &BTreeMap<String, String>, name: &str| -> String {
        labels.get(name).cloned().unwrap_or_default()
    };
    match rule.action {
        RelabelAction::Drop => !rule.regex.is_match(&joined),
        RelabelAction::Keep => rule.regex.is_match(&joined),
        RelabelAction::DropEqual => current(labels, &rule.target_label) != joined,
        RelabelAction::KeepEqual => current(labels, &rule.target_label) == joined,
        RelabelAction::Replace => {
            // Without references, an empty input with the default regex
            // sets (or with an empty replacement, deletes) the target.
            if joined.is_empty()
                && rule.regex.as_str() == DEFAULT_RELABEL_REGEX
                && !rule.target_label.contains('$')
                && !rule.replacement.contains('$')
            {
                set_label(labels, rule.target_label.clone(), rule.replacement.clone());
                return true;
            }
            let Some(captures) = rule.regex.anchored.captures(&joined) else {
                return true;
            };
            let mut target = String::new();
            expand(&rule.target_label, &captures, &mut target);
            if !is_valid_label_name(&target) {
                return true;
            }
            let mut value = String::new();
            expand(&rule.replacement, &captures, &mut value);
            set_label(labels, target, value);
            true
        }
        RelabelAction::Lowercase => {
            set_label(labels, rule.target_label.clone(), joined.to_lowercase());
            true
        }
        RelabelAction::Uppercase => {
            set_label(labels, rule.target_label.clone(), joined.to_uppercase());
            true
        }
        RelabelAction::HashMod => {
            let shard = hashmod(&joined, rule.modulus);
            set_label(labels, rule.target_label.clone(), shard.to_string());
            true
        }
        RelabelAction::LabelMap => {
            let snapshot: Vec<(String, String)> = labels
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            for (name, value) in snapshot {
                if let Some(captures) = rule.regex.anchored.captures(&name) {
                    let mut new_name = String::new();
                    expand(&rule.replacement, &captures, &mut new_name);
                    set_label(labels, new_name, value);
                }
            }
            true
        }
        RelabelAction::LabelDrop => {
            labels.retain(|name, _| !rule.regex.is_match(name));
            true
        }
        RelabelAction::LabelKeep => {
            labels.retain(|name, _| rule.regex.is_match(name));
            true
        }
    }
}

/// Appends `template` to `out` with `$n`, `${n}`, `$name` and `${name}`
/// replaced by the captured groups, following Go's `regexp.Expand`: a name
/// is the longest run of letters, digits and underscores; all digits means
/// a group number (no leading zeros); unknown groups expand to nothing;
/// `$$` is a literal `$`; a malformed reference keeps its `$` verbatim.
pub fn expand(template: &str, captures: &Captures<'_>, out: &mut String) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (name, consumed) = match reference_name(rest) {
            Some(found) => found,
            None => {
                out.push('$');
                continue;
            }
        };
        rest = &rest[consumed..];
        let group = match group_number(name) {
            Some(number) => captures.get(number),
            None => captures.name(name),
        };
        if let Some(group) = group {
            out.push_str(group.as_str());
        }
    }
    out.push_str(rest);
}

/// The reference name at the start of `text` (just after a `$`) and how
/// many bytes it takes, braces included.
fn reference_name(text: &str) -> Option<(&str, usize)> {
    let is_name_byte = |byte: &u8| byte.is_ascii_alphanumeric() || *byte == b'_';
    if let Some(inner) = text.strip_prefix('{') {
        let length = inner.bytes().take_while(is_name_byte).count();
        if length == 0 || inner.as_bytes().get(length) != Some(&b'}') {
            return None;
        }
        return Some((&inner[..length], length + 2));
    }
    let length = text.bytes().take_while(is_name_byte).count();
    if length == 0 {
        return None;
    }
    Some((&text[..length], length))
}

/// A group number if `name` is all digits without a leading zero (and not
/// absurdly long); otherwise the name is looked up as a named group.
fn group_number(name: &str) -> Option<usize> {
    if !name.bytes().all(|byte| byte.is_ascii_digit()) || name.len() > 8 {
        return None;
    }
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests;
