//! The one way osprey decodes YAML config: a [`Decoder`] walks the
//! line-numbered [`yaml::Node`] tree by hand, so that every error names the
//! file, the line and the field path (`scrape_configs[0].scrape_interval`).
//!
//! Every section reader (`prometheus`, `alertmanager`, `blackbox`, `http`,
//! ...) goes through these helpers, which also keeps the messages for the
//! same mistake the same everywhere. A section reader loops over
//! [`Decoder::fields`], matches the field name, and ends with
//! [`Decoder::unknown`] for anything it does not know: unknown fields are
//! errors, as `yaml.UnmarshalStrict` makes them in Prometheus and
//! Alertmanager. A field osprey knows of but does not implement is
//! [`Decoder::unsupported`], also an error: nothing is silently accepted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::duration::parse_duration_ms;
use yaml::{Node, NodeValue};

use crate::ConfigError;

/// Reads typed values out of a node tree, collecting warnings.
pub struct Decoder {
    file: String,
    /// Relative paths in the file are relative to this directory (the
    /// config file's own), as in Prometheus; `None` leaves them as written.
    base_dir: Option<PathBuf>,
    /// Prepended to every field path (`alertmanager.` for a section read
    /// inside an osprey config).
    field_prefix: String,
    warnings: Vec<String>,
}

/// One field of a mapping: its name, key and value nodes, and full path.
pub struct Field<'n> {
    pub name: String,
    pub key: &'n Node,
    pub value: &'n Node,
    /// The field's path, e.g. `scrape_configs[0].tls_config`.
    pub path: String,
}

impl Decoder {
    /// A decoder for `file` (used in messages) whose relative paths resolve
    /// against `base_dir`.
    pub fn new(file: &str, base_dir: Option<&Path>) -> Decoder {
        Decoder {
            file: file.to_string(),
            base_dir: base_dir
                .filter(|dir| !dir.as_os_str().is_empty())
                .map(Path::to_path_buf),
            field_prefix: String::new(),
            warnings: Vec::new(),
        }
    }

    /// Field paths get `prefix` in front (e.g. `alertmanager.`).
    pub fn with_field_prefix(mut self, prefix: &str) -> Decoder {
        self.field_prefix = prefix.to_string();
        self
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn base_dir(&self) -> Option<&Path> {
        self.base_dir.as_deref()
    }

    /// The warnings collected so far, leaving none behind.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// An error at `line` for `field`.
    pub fn error(&self, line: u64, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line,
            field: format!("{}{field}", self.field_prefix),
            message: message.into(),
        }
    }

    /// A warning in the same `file:line: field: message` shape.
    pub fn warn(&mut self, line: u64, field: &str, message: &str) {
        self.warnings.push(format!(
            "{}:{line}: {}{field}: {message}",
            self.file, self.field_prefix
        ));
    }

    /// The error for a field that is not part of the format.
    pub fn unknown(&self, field: &Field<'_>) -> ConfigError {
        self.error(field.key.line, &field.path, "unknown field")
    }

    /// The error for a field that is part of the format but that osprey
    /// does not implement; `what` says what is missing.
    pub fn unsupported(&self, field: &Field<'_>, what: &str) -> ConfigError {
        self.error(
            field.key.line,
            &field.path,
            format!("not supported by osprey: {what}"),
        )
    }

    /// The fields of a mapping (null counts as empty), with their paths
    /// under `field`. Duplicate keys are rejected by the YAML parser.
    pub fn fields<'n>(&self, node: &'n Node, field: &str) -> Result<Vec<Field<'n>>, ConfigError> {
        let entries = self.mapping(node, field)?;
        let mut fields = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let name = self.string(key, field)?;
            let path = if field.is_empty() {
                name.clone()
            } else {
                format!("{field}.{name}")
            };
            fields.push(Field {
                name,
                key,
                value,
                path,
            });
        }
        Ok(fields)
    }

    /// The entries of a mapping; null counts as an empty mapping.
    pub fn mapping<'n>(
        &self,
        node: &'n Node,
        field: &str,
    ) -> Result<&'n [(Node, Node)], ConfigError> {
        node.as_mapping()
            .map_err(|message| self.error(node.line, field, message))
    }

    /// The items of a list; null counts as an empty list.
    pub fn sequence<'n>(&self, node: &'n Node, field: &str) -> Result<&'n [Node], ConfigError> {
        node.as_sequence()
            .map_err(|message| self.error(node.line, field, message))
    }

    /// A scalar as a string, as Go's YAML decoder gives it to a string
    /// field.
    pub fn string(&self, node: &Node, field: &str) -> Result<String, ConfigError> {
        node.as_string()
            .map_err(|message| self.error(node.line, field, message))
    }

    pub fn bool(&self, node: &Node, field: &str) -> Result<bool, ConfigError> {
        match &node.value {
            NodeValue::Bool(value) => Ok(*value),
            other => Err(self.error(
                node.line,
                field,
                format!("expected true or false, got {}", describe(other)),
            )),
        }
    }

    pub fn unsigned(&self, node: &Node, field: &str) -> Result<u64, ConfigError> {
        match &node.value {
            NodeValue::Int(number) => u64::try_from(*number).map_err(|_| {
                self.error(
                    node.line,
                    field,
                    format!("expected a non-negative integer, got {number}"),
                )
            }),
            other => Err(self.error(
                node.line,
                field,
                format!("expected a non-negative integer, got {}", describe(other)),
            )),
        }
    }

    /// A number (an integer is taken as a float).
    pub fn float(&self, node: &Node, field: &str) -> Result<f64, ConfigError> {
        match &node.value {
            NodeValue::Float(number) => Ok(*number),
            NodeValue::Int(number) => Ok(*number as f64),
            other => Err(self.error(
                node.line,
                field,
                format!("expected a number, got {}", describe(other)),
            )),
        }
    }

    /// A Prometheus duration (`1h30m`, `500ms`), in milliseconds.
    pub fn duration(&self, node: &Node, field: &str) -> Result<i64, ConfigError> {
        let text = self.string(node, field)?;
        parse_duration_ms(&text).map_err(|_| {
            self.error(
                node.line,
                field,
                format!("not a valid duration string: {text:?}"),
            )
        })
    }

    /// A duration that must be greater than zero.
    pub fn positive_duration(&self, node: &Node, field: &str) -> Result<i64, ConfigError> {
        let value = self.duration(node, field)?;
        if value <= 0 {
            return Err(self.error(node.line, field, "must be greater than zero"));
        }
        Ok(value)
    }

    /// A Go `units.Base2Bytes` size: `0`, `512`, `10KB`, `10MiB`, `1GB`
    /// (all powers of 1024, as in Prometheus).
    pub fn byte_size(&self, node: &Node, field: &str) -> Result<u64, ConfigError> {
        let text = self.string(node, field)?;
        let bad = || self.error(node.line, field, format!("invalid size {text:?}"));
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        if digits_end == 0 {
            return Err(bad());
        }
        let number: u64 = text[..digits_end].parse().map_err(|_| bad())?;
        let multiplier: u64 = match &text[digits_end..] {
            "" | "B" => 1,
            "KB" | "KiB" | "K" => 1 << 10,
            "MB" | "MiB" | "M" => 1 << 20,
            "GB" | "GiB" | "G" => 1 << 30,
            "TB" | "TiB" | "T" => 1 << 40,
            "PB" | "PiB" | "P" => 1 << 50,
            _ => return Err(bad()),
        };
        number.checked_mul(multiplier).ok_or_else(bad)
    }

    /// A list of strings.
    pub fn string_list(&self, node: &Node, field: &str) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .string_list_with_lines(node, field)?
            .into_iter()
            .map(|(text, _)| text)
            .collect())
    }

    /// A list of strings, each with its line.
    pub fn string_list_with_lines(
        &self,
        node: &Node,
        field: &str,
    ) -> Result<Vec<(String, u64)>, ConfigError> {
        self.sequence(node, field)?
            .iter()
            .enumerate()
            .map(|(index, item)| Ok((self.string(item, &format!("{field}[{index}]"))?, item.line)))
            .collect()
    }

    /// A `name: value` mapping of strings.
    pub fn string_map(
        &self,
        node: &Node,
        field: &str,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut map = BTreeMap::new();
        for field in self.fields(node, field)? {
            let value = self.string(field.value, &field.path)?;
            map.insert(field.name, value);
        }
        Ok(map)
    }

    /// A `name: value` mapping of labels, names checked, sorted by name.
    pub fn label_map(
        &self,
        node: &Node,
        field: &str,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let mut labels = Vec::new();
        for field in self.fields(node, field)? {
            if !is_valid_label_name(&field.name) {
                return Err(self.error(
                    field.key.line,
                    &field.path,
                    format!("invalid label name {:?}", field.name),
                ));
            }
            labels.push((field.name, self.string(field.value, &field.path)?));
        }
        labels.sort();
        Ok(labels)
    }

    /// An `http` or `https` URL with a host.
    pub fn url(&self, node: &Node, field: &str) -> Result<String, ConfigError> {
        let text = self.string(node, field)?;
        check_url(&text).map_err(|message| self.error(node.line, field, message))?;
        Ok(text)
    }

    /// A path as written, made relative to the config file's directory.
    pub fn path(&self, node: &Node, field: &str) -> Result<String, ConfigError> {
        let text = self.string(node, field)?;
        Ok(self.resolve(&text))
    }

    /// `path` joined to the base directory when it is relative (and not
    /// empty).
    pub fn resolve(&self, path: &str) -> String {
        match &self.base_dir {
            Some(base) if !path.is_empty() && Path::new(path).is_relative() => {
                base.join(path).display().to_string()
            }
            _ => path.to_string(),
        }
    }

    /// The trimmed text of a `*_file` secret, read now.
    pub fn secret_file(&self, node: &Node, field: &str) -> Result<String, ConfigError> {
        let path = self.path(node, field)?;
        crate::secret::read_secret(&path).map_err(|message| self.error(node.line, field, message))
    }
}

/// Parses a YAML document into the line-numbered tree; a syntax error
/// names `file` and the line where the parser stopped.
pub fn parse_yaml(file: &str, text: &str) -> Result<Node, ConfigError> {
    yaml::parse_document(text).map_err(|(line, message)| ConfigError {
        file: file.to_string(),
        line,
        field: "(document)".to_string(),
        message,
    })
}

/// Whether `text` is an `http` or `https` URL with a host; the message
/// says what is wrong.
pub fn check_url(text: &str) -> Result<(), String> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(()),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            Err(format!("unsupported scheme {:?} for URL", url.scheme()))
        }
        Ok(_) => Err(format!("invalid URL {text:?}: no host")),
        Err(error) => Err(format!("invalid URL {text:?}: {error}")),
    }
}

/// Whether `name` is a classic label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    model::relabel::is_valid_label_name(name)
}

/// A value quoted back in an error message.
pub fn describe(value: &NodeValue) -> String {
    match value {
        NodeValue::String(text) => format!("{text:?}"),
        NodeValue::Int(number) => number.to_string(),
        NodeValue::Float(number) => number.to_string(),
        NodeValue::Bool(flag) => flag.to_string(),
        other => other.kind_name().to_string(),
    }
}

/// Whether a mapping key is the string `name`.
pub fn key_is(key: &Node, name: &str) -> bool {
    matches!(&key.value, NodeValue::String(text) if text == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(text: &str) -> Node {
        yaml::parse_document(text).unwrap()
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let decoder = Decoder::new("a.yml", None).with_field_prefix("alertmanager.");
        let root = node("x: 1\nw: nope\n");
        let fields = decoder.fields(&root, "").unwrap();
        let error = decoder.bool(fields[1].value, &fields[1].path).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a.yml:2: alertmanager.w: expected true or false, got \"nope\""
        );
        assert_eq!(
            decoder.unknown(&fields[0]).to_string(),
            "a.yml:1: alertmanager.x: unknown field"
        );
    }

    #[test]
    fn durations_sizes_and_paths() {
        let decoder = Decoder::new("a.yml", Some(Path::new("/etc/osprey")));
        assert_eq!(decoder.duration(&node("1h30m"), "d").unwrap(), 5_400_000);
        assert!(
            decoder
                .duration(&node("5x"), "d")
                .unwrap_err()
                .to_string()
                .ends_with("not a valid duration string: \"5x\"")
        );
        assert!(decoder.positive_duration(&node("0s"), "d").is_err());
        assert_eq!(decoder.byte_size(&node("10MiB"), "s").unwrap(), 10 << 20);
        assert_eq!(decoder.byte_size(&node("512"), "s").unwrap(), 512);
        assert!(decoder.byte_size(&node("10 MB"), "s").is_err());
        assert_eq!(decoder.resolve("ca.pem"), "/etc/osprey/ca.pem");
        assert_eq!(decoder.resolve("/abs/ca.pem"), "/abs/ca.pem");
        assert_eq!(Decoder::new("a.yml", None).resolve("ca.pem"), "ca.pem");
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(check_url("http://localhost:9093/api").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("not a url").is_err());
    }
}
