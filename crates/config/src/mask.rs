//! Configuration text with its secrets replaced by `<secret>`, as
//! Prometheus and Alertmanager show a loaded configuration: for
//! `/api/v1/status/config`, the alert manager's `/api/v2/status`, logs
//! and errors.
//!
//! The text is parsed and written back out (block style, two-space
//! indents, comments dropped), with the value of every field whose name is
//! a credential replaced, wherever it sits: `password`, `credentials`,
//! `bearer_token`, `client_secret`, `key` (an inline TLS key), `token`,
//! `secrets` (of `http_headers`), the SMTP and receiver secrets, and
//! Slack's `api_url` (a webhook URL is its own credential). Fields that
//! only name a file (`password_file`, ...) are kept: the path is not the
//! secret.

use yaml::{Node, NodeValue};

/// What a secret is shown as.
pub const SECRET: &str = "<secret>";

/// Field names whose values are secrets, wherever they appear.
const SECRET_FIELDS: &[&str] = &[
    "password",
    "credentials",
    "bearer_token",
    "client_secret",
    "key",
    "token",
    "secrets",
    "smtp_auth_password",
    "smtp_auth_secret",
    "auth_password",
    "auth_secret",
    "routing_key",
    "service_key",
    "api_key",
    "slack_api_url",
    "api_url",
    "opsgenie_api_key",
    "victorops_api_key",
    // remote_write.sigv4
    "secret_key",
];

/// `text` with every secret replaced; text that does not parse is not
/// shown at all (it may hold secrets in a shape this cannot find).
pub fn masked_yaml(text: &str) -> String {
    match yaml::parse_document(text) {
        Ok(root) => {
            let mut out = String::with_capacity(text.len());
            write_node(&root, 0, false, "", &mut out);
            if !out.ends_with('\n') && !out.is_empty() {
                out.push('\n');
            }
            out
        }
        Err(_) => "# the configuration text does not parse; not shown\n".to_string(),
    }
}

/// A webhook receiver's URL is its own credential (Alertmanager's
/// `SecretURL`); other URLs, such as remote write's, are shown.
fn is_secret(name: &str, parent: &str) -> bool {
    SECRET_FIELDS.contains(&name) || (name == "url" && parent == "webhook_configs")
}

/// Writes `node` at `indent`. `inline` is true when the node follows a
/// `key:` or `- ` on the same line.
/// `parent` is the key of the nearest mapping entry holding `node`.
fn write_node(node: &Node, indent: usize, inline: bool, parent: &str, out: &mut String) {
    match &node.value {
        NodeValue::Mapping(entries) if entries.is_empty() => {
            out.push_str(if inline { " {}\n" } else { "{}\n" })
        }
        NodeValue::Sequence(items) if items.is_empty() => {
            out.push_str(if inline { " []\n" } else { "[]\n" })
        }
        NodeValue::Mapping(entries) => {
            if inline {
                out.push('\n');
            }
            for (key, value) in entries {
                push_indent(indent, out);
                let name = scalar_text(key);
                out.push_str(&name);
                out.push(':');
                if is_secret(&name, parent) && !matches!(value.value, NodeValue::Null) {
                    out.push(' ');
                    out.push_str(SECRET);
                    out.push('\n');
                } else {
                    write_node(value, indent + 2, true, &name, out);
                }
            }
        }
        NodeValue::Sequence(items) => {
            if inline {
                out.push('\n');
            }
            for item in items {
                push_indent(indent, out);
                out.push('-');
                match &item.value {
                    NodeValue::Mapping(entries) if !entries.is_empty() => {
                        // The first entry shares the dash's line.
                        let mut first = String::new();
                        write_node(item, indent + 2, false, parent, &mut first);
                        out.push(' ');
                        out.push_str(first.trim_start());
                    }
                    _ => write_node(item, indent + 2, true, parent, out),
                }
            }
        }
        _ => {
            if inline {
                out.push(' ');
            }
            out.push_str(&scalar_text(node));
            out.push('\n');
        }
    }
}

fn push_indent(indent: usize, out: &mut String) {
    for _ in 0..indent {
        out.push(' ');
    }
}

/// A scalar as YAML text that reads back as the same value.
fn scalar_text(node: &Node) -> String {
    match &node.value {
        NodeValue::Null => "null".to_string(),
        NodeValue::Bool(value) => value.to_string(),
        NodeValue::Int(value) => value.to_string(),
        NodeValue::Float(value) => {
            if value.is_nan() {
                ".nan".to_string()
            } else if value.is_infinite() {
                if *value > 0.0 { ".inf" } else { "-.inf" }.to_string()
            } else {
                format!("{value:?}")
            }
        }
        NodeValue::String(text) => quote(text),
        NodeValue::Sequence(_) | NodeValue::Mapping(_) => String::new(),
    }
}

/// A string, single-quoted unless it is plainly a word YAML would read back
/// as the same string.
fn quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !text.starts_with(['-', '.'])
        && yaml::parse_document(text)
            .map(|node| matches!(node.value, NodeValue::String(ref s) if s == text))
            .unwrap_or(false);
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_wherever_they_are() {
        let text = r#"
global:
  scrape_interval: 15s   # a comment
scrape_configs:
  - job_name: node
    basic_auth: {username: admin, password: hunter2}
    authorization:
      credentials: "tok en"
    tls_config:
      key: |
        -----BEGIN PRIVATE KEY-----
        abc
    http_headers:
      X-Key: {secrets: [s1, s2], values: [visible]}
    oauth2:
      client_id: osprey
      client_secret: shh
      client_secret_file: /etc/secret
alertmanager:
  global:
    slack_api_url: https://hooks.slack.com/services/T0/B0/XYZ
    smtp_auth_password: p
  route: {receiver: x}
  receivers:
    - name: x
      pagerduty_configs: [{routing_key: rk}]
      webhook_configs: [{url: 'http://hook.example/abc?key=sekrit'}]
remote_write:
  - url: http://remote.example/api/v1/write
"#;
        let masked = masked_yaml(text);
        for secret in [
            "hunter2",
            "tok en",
            "BEGIN PRIVATE",
            "s1",
            "shh",
            "XYZ",
            "rk",
            "smtp_auth_password: p",
            "sekrit",
        ] {
            assert!(!masked.contains(secret), "{secret} leaked:\n{masked}");
        }
        for kept in [
            "username: admin",
            "client_id: osprey",
            "client_secret_file: /etc/secret",
            "visible",
            "scrape_interval: 15s",
            "job_name: node",
            "http://remote.example/api/v1/write",
        ] {
            assert!(masked.contains(kept), "{kept} missing:\n{masked}");
        }
        // What is written reads back as the same configuration, secrets
        // aside: the one list of secrets became one placeholder.
        let reparsed = yaml::parse_document(&masked).expect("masked text parses");
        let original = yaml::parse_document(text).expect("original parses");
        assert_eq!(count_scalars(&reparsed), count_scalars(&original) - 1);
    }

    fn count_scalars(node: &Node) -> usize {
        match &node.value {
            NodeValue::Mapping(entries) => entries.iter().map(|(_, v)| 1 + count_scalars(v)).sum(),
            NodeValue::Sequence(items) => items.iter().map(count_scalars).sum(),
            _ => 1,
        }
    }

    #[test]
    fn strings_that_look_like_other_things_stay_strings() {
        let masked = masked_yaml("a: 'true'\nb: '10'\nc: 'x: y'\nd: ''\ne: \"it's\"\n");
        let root = yaml::parse_document(&masked).expect("parses");
        let NodeValue::Mapping(entries) = root.value else {
            panic!("mapping");
        };
        let values: Vec<&NodeValue> = entries.iter().map(|(_, v)| &v.value).collect();
        assert_eq!(
            values,
            [
                &NodeValue::String("true".into()),
                &NodeValue::String("10".into()),
                &NodeValue::String("x: y".into()),
                &NodeValue::String(String::new()),
                &NodeValue::String("it's".into()),
            ]
        );
    }
}
