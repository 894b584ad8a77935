//! A YAML document as a tree of nodes that remember their line, so that
//! config errors can name the file, line and field.
//!
//! serde-saphyr parses the text; [`Node`] is deserialized through its
//! `Spanned` wrapper, which records where each node starts. The typed
//! config is then read from the tree by hand (`scrape::config`, the rule
//! files in `rules`), which keeps
//! the field path of every value at hand for error messages.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One YAML node and the 1-based line it starts on (0 when unknown).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub line: u64,
    pub value: NodeValue,
}

/// The value of a node. Mappings keep their keys in document order.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    String(String),
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

impl Node {
    /// The entries of a mapping in document order; null counts as an
    /// empty mapping. The error is the message config readers report.
    pub fn as_mapping(&self) -> Result<&[(Node, Node)], String> {
        match &self.value {
            NodeValue::Mapping(entries) => Ok(entries),
            NodeValue::Null => Ok(&[]),
            other => Err(format!("expected a mapping, got {}", other.kind_name())),
        }
    }

    /// The items of a list; null counts as an empty list.
    pub fn as_sequence(&self) -> Result<&[Node], String> {
        match &self.value {
            NodeValue::Sequence(items) => Ok(items),
            NodeValue::Null => Ok(&[]),
            other => Err(format!("expected a list, got {}", other.kind_name())),
        }
    }

    /// A scalar as Go's YAML decoder gives it to a string field: numbers
    /// and booleans as written, null as the empty string.
    pub fn as_string(&self) -> Result<String, String> {
        match &self.value {
            NodeValue::String(text) => Ok(text.clone()),
            NodeValue::Int(number) => Ok(number.to_string()),
            NodeValue::Float(number) => Ok(number.to_string()),
            NodeValue::Bool(value) => Ok(value.to_string()),
            NodeValue::Null => Ok(String::new()),
            other => Err(format!("expected a string, got {}", other.kind_name())),
        }
    }
}

impl NodeValue {
    /// What kind of value this is, for "expected X, got Y" messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) => "an integer",
            NodeValue::Float(_) => "a number",
            NodeValue::String(_) => "a string",
            NodeValue::Sequence(_) => "a list",
            NodeValue::Mapping(_) => "a mapping",
        }
    }
}

/// Parses a YAML document into a node tree. Errors carry the line where
/// the parser stopped, when it knows it.
pub fn parse_document(text: &str) -> Result<Node, (u64, String)> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    match serde_saphyr::from_str_with_options::<Option<Node>>(text, options) {
        Ok(Some(node)) => Ok(node),
        Ok(None) => Ok(Node {
            line: 1,
            value: NodeValue::Null,
        }),
        Err(error) => {
            let line = error
                .location()
                .map(|location| location.line())
                .unwrap_or(0);
            let message = error.to_string();
            // The rendered message may repeat the position; keep the first
            // line only so that errors stay on one line.
            let first_line = message.lines().next().unwrap_or("invalid YAML").to_string();
            Err((line, first_line))
        }
    }
}

/// Parses every document of a stream (`---` separated), as files of SLO
/// specs hold them. Lines are the file's, not the document's. An empty
/// stream, or a document that is empty (`---` with nothing after it), is
/// no document.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, (u64, String)> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    match serde_saphyr::from_multiple_with_options::<Option<Node>>(text, options) {
        Ok(documents) => Ok(documents.into_iter().flatten().collect()),
        Err(error) => {
            let line = error
                .location()
                .map(|location| location.line())
                .unwrap_or(0);
            let message = error.to_string();
            let first_line = message.lines().next().unwrap_or("invalid YAML").to_string();
            Err((line, first_line))
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        let spanned = Spanned::<NodeValue>::deserialize(deserializer)?;
        Ok(Node {
            line: spanned.referenced.line(),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NodeValue, D::Error> {
        deserializer.deserialize_any(NodeValueVisitor)
    }
}

struct NodeValueVisitor;

impl<'de> Visitor<'de> for NodeValueVisitor {
    type Value = NodeValue;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeValue, E> {
        Ok(NodeValue::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<NodeValue, E> {
        Ok(NodeValue::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<NodeValue, E> {
        i128::try_from(v)
            .map(NodeValue::Int)
            .map_err(|_| E::custom("integer too large"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeValue, E> {
        Ok(NodeValue::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<NodeValue, E> {
        Ok(NodeValue::String(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = access.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeValue::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<NodeValue, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = access.next_entry::<Node, Node>()? {
            entries.push((key, value));
        }
        Ok(NodeValue::Mapping(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_remember_their_lines() {
        let node = parse_document("a: 1\nb:\n  - x\n  - 2.5\nc: true\n").unwrap();
        let NodeValue::Mapping(entries) = node.value else {
            panic!("expected a mapping");
        };
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].0.line, 1);
        assert_eq!(entries[0].1.value, NodeValue::Int(1));
        assert_eq!(entries[1].0.line, 2);
        let NodeValue::Sequence(items) = &entries[1].1.value else {
            panic!("expected a list");
        };
        assert_eq!(items[0].line, 3);
        assert_eq!(items[0].value, NodeValue::String("x".into()));
        assert_eq!(items[1].line, 4);
        assert_eq!(items[1].value, NodeValue::Float(2.5));
        assert_eq!(entries[2].0.line, 5);
        assert_eq!(entries[2].1.value, NodeValue::Bool(true));
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let (line, message) = parse_document("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(line >= 2, "line {line}: {message}");
        assert!(parse_document("a: 1\na: 2\n").is_err());
    }

    #[test]
    fn streams_keep_file_lines() {
        let documents = parse_documents("a: 1\n---\nb: 2\n\n---\n# only a comment\n").unwrap();
        assert_eq!(documents.len(), 2);
        let NodeValue::Mapping(entries) = &documents[1].value else {
            panic!("expected a mapping");
        };
        assert_eq!(entries[0].0.line, 3);
        assert!(parse_documents("").unwrap().is_empty());
        assert!(parse_documents("a: 1\n---\nb: [\n").is_err());
    }

    #[test]
    fn empty_documents_are_null() {
        assert_eq!(parse_document("").unwrap().value, NodeValue::Null);
    }
}
