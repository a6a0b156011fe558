//! Checking YAML (and JSON) files with `marked-yaml`: parse once with positions, then read typed values
//! out of the nodes, turning every syntax, duplicate-key, unknown-key and `serde` error into a
//! [`Problem`](super::Problem) with its line.
//!
//! Scalars keep their YAML style: a quoted `"5"` is a string and a plain `5` may be read as a number, so
//! JSON's strings and numbers keep their types too. A plain `~`, `null` or empty value in a mapping reads
//! as an absent key (`None`, or the field's default).

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoadError, LoaderOptions, Marker, Node};
use serde::Deserialize;
use serde::de::IntoDeserializer;

use super::locate::YamlLines;
use super::problems::{FileProblems, KeyPath, Problems, Segment};

impl YamlLines {
    /// Parses `text` strictly, recording in `problems` (as `file`) a syntax error, an anchor, alias or tag
    /// (not supported), or a repeated key, each with its line. Returns the document unless its syntax is
    /// broken; after a repeated key the later value is used, so the other checks still run.
    pub fn load(file: &str, text: &str, problems: &mut Problems) -> Option<YamlLines> {
        let strict = LoaderOptions::default().error_on_duplicate_keys(true).prevent_coercion(true);
        let error = match marked_yaml::parse_yaml_with_options(0, text, strict) {
            Ok(root) => return Some(YamlLines::from_root(root)),
            Err(error) => error,
        };
        let LoadError::DuplicateKey(duplicate) = error else {
            let (line, message) = load_error(&error);
            problems.error(file, line, KeyPath::root(), message);
            return None;
        };
        let lenient = LoaderOptions::default().prevent_coercion(true);
        let root = marked_yaml::parse_yaml_with_options(0, text, lenient).ok()?;
        let first = duplicate.prev_key.span().start().copied();
        let second = duplicate.key.span().start().map(Marker::line);
        let key = first.and_then(|m| key_path_of(&root, &m)).unwrap_or_default();
        let first_line = first.map_or_else(|| "?".to_string(), |m| m.line().to_string());
        problems.error(
            file,
            second,
            key,
            format!("duplicate key `{}` (first at line {first_line})", duplicate.key.as_str()),
        );
        Some(YamlLines::from_root(root))
    }

    /// The node at `key`, if there is one.
    pub fn node(&self, key: &KeyPath) -> Option<&Node> {
        node_at(self.root()?, key)
    }
}

/// The line and message of a parse failure.
fn load_error(error: &LoadError) -> (Option<usize>, String) {
    let (mark, message) = match error {
        LoadError::TopLevelMustBeMapping(m) => (m, "the top level must be a mapping".to_string()),
        LoadError::TopLevelMustBeSequence(m) => (m, "the top level must be a sequence".to_string()),
        LoadError::UnexpectedAnchor(m) => (m, "YAML anchors and aliases are not supported".to_string()),
        LoadError::MappingKeyMustBeScalar(m) => (m, "mapping keys must be plain values".to_string()),
        LoadError::UnexpectedTag(m) => (m, "YAML tags (`!name`) are not supported".to_string()),
        LoadError::ScanError(m, e) => (m, format!("invalid YAML: {}", e.info())),
        LoadError::DuplicateKey(d) => {
            return (d.key.span().start().map(Marker::line), format!("duplicate key `{}`", d.key.as_str()));
        }
    };
    (Some(mark.line()), message)
}

/// The key path of the mapping key that starts at `mark`.
fn key_path_of(node: &Node, mark: &Marker) -> Option<KeyPath> {
    fn walk(node: &Node, mark: &Marker, path: &KeyPath) -> Option<KeyPath> {
        match node {
            Node::Mapping(m) => m.iter().find_map(|(k, v)| {
                let here = path.key(k.as_str());
                if k.span().start() == Some(mark) { Some(here) } else { walk(v, mark, &here) }
            }),
            Node::Sequence(s) => s.iter().enumerate().find_map(|(i, v)| walk(v, mark, &path.index(i))),
            Node::Scalar(_) => None,
        }
    }
    walk(node, mark, &KeyPath::root())
}

/// The node at `key` below `node`.
pub fn node_at<'a>(node: &'a Node, key: &KeyPath) -> Option<&'a Node> {
    key.segments().iter().try_fold(node, |node, segment| match (segment, node) {
        (Segment::Key(k), Node::Mapping(m)) => m.get_node(k),
        (Segment::Index(i), Node::Sequence(s)) => s.get(*i),
        _ => None,
    })
}

/// True for a plain `~`, `null` (any case YAML allows) or empty scalar.
pub fn is_null(node: &Node) -> bool {
    node.as_scalar().is_some_and(is_null_scalar)
}

fn is_null_scalar(scalar: &MarkedScalarNode) -> bool {
    scalar.may_coerce() && matches!(scalar.as_str(), "" | "~" | "null" | "Null" | "NULL")
}

/// `node` without the mapping entries whose value is null (at any depth), so that they read as absent.
fn without_nulls(node: &Node) -> Node {
    match node {
        Node::Mapping(m) => {
            let mut out = MarkedMappingNode::new_empty(*m.span());
            for (k, v) in m.iter() {
                if !is_null(v) {
                    out.insert(k.clone(), without_nulls(v));
                }
            }
            Node::Mapping(out)
        }
        Node::Sequence(s) => {
            let mut out = s.clone();
            out.iter_mut().for_each(|item| *item = without_nulls(item));
            Node::Sequence(out)
        }
        Node::Scalar(_) => node.clone(),
    }
}

/// Reads `node`, found at `at` in the file, as a `T`. A `serde` error (wrong type, missing field, bad
/// number, unknown variant, …) is recorded at the offending key's line and gives `None`.
pub fn from_node<T: for<'de> Deserialize<'de>>(
    node: &Node,
    at: &KeyPath,
    problems: &mut FileProblems<'_>,
) -> Option<T> {
    let node = without_nulls(node);
    let result: Result<T, serde_path_to_error::Error<marked_yaml::Error>> =
        serde_path_to_error::deserialize((&node).into_deserializer());
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            let mut key = at.clone();
            for segment in error.path().iter() {
                key = match segment {
                    serde_path_to_error::Segment::Seq { index } => key.index(*index),
                    serde_path_to_error::Segment::Map { key: k } => key.key(k.as_str()),
                    serde_path_to_error::Segment::Enum { variant } => key.key(variant.as_str()),
                    serde_path_to_error::Segment::Unknown => break,
                };
            }
            let relative = KeyPath::from(&key.segments()[at.segments().len()..]);
            let found = node_at(&node, &relative).and_then(Node::as_scalar).map(|s| s.as_str().to_string());
            let inner = error.into_inner();
            let line = inner.start_mark().map(|m| m.line());
            let message = serde_message(&inner, found.as_deref());
            match line {
                Some(line) => problems.error_at(Some(line), key, message),
                None => problems.error(key, message),
            }
            None
        }
    }
}

/// A `serde` error as a message, with the offending text when known.
fn serde_message(error: &marked_yaml::Error, found: Option<&str>) -> String {
    let found = found.map(|f| format!("`{f}` ")).unwrap_or_default();
    match error {
        marked_yaml::Error::NotBoolean(_) => format!("{found}is not a boolean (true or false)"),
        marked_yaml::Error::IntegerParseFailure(e, _) => format!("{found}is not a valid integer ({e})"),
        marked_yaml::Error::FloatParseFailure(e, _) => format!("{found}is not a valid number ({e})"),
        marked_yaml::Error::UnknownFieldError(field, expected, _) => unknown_key_message(field, expected),
        marked_yaml::Error::Other(message, _) => message.clone(),
    }
}

/// `unknown field `x`, expected one of `a`, `b``.
pub fn unknown_key_message(key: &str, known: &[&str]) -> String {
    let expected: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    match expected.as_slice() {
        [] => format!("unknown field `{key}`, there are no fields"),
        [one] => format!("unknown field `{key}`, expected {one}"),
        _ => format!("unknown field `{key}`, expected one of {}", expected.join(", ")),
    }
}

/// Records every key of the mapping `node` (at `at`) that is not in `known`. Not a mapping: nothing.
pub fn check_keys(node: &Node, at: &KeyPath, known: &[&str], problems: &mut FileProblems<'_>) {
    let Some(map) = node.as_mapping() else { return };
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            problems.error(at.key(key.as_str()), unknown_key_message(key.as_str(), known));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Item {
        name: String,
        count: Option<i32>,
    }

    fn problems_of(text: &str) -> Vec<String> {
        let mut problems = Problems::new();
        if let Some(doc) = YamlLines::load("f.yml", text, &mut problems) {
            let root = doc
                .root()
                .cloned()
                .unwrap_or_else(|| Node::from(MarkedMappingNode::new_empty(marked_yaml::Span::new_blank())));
            let mut file = problems.in_file("f.yml", &doc);
            check_keys(&root, &KeyPath::root(), &["items"], &mut file);
            if let Some(items) = root.as_mapping().and_then(|m| m.get_node("items")) {
                let _: Option<Vec<Item>> = from_node(items, &KeyPath::root().key("items"), &mut file);
            }
        }
        problems.all().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn typed_reads_report_the_offending_line() {
        assert!(problems_of("items:\n  - name: a\n    count: 3\n  - name: b\n    count: ~\n").is_empty());
        assert_eq!(
            problems_of("items:\n  - name: a\n  - name: b\n    count: lots\n"),
            ["f.yml:4:items[1].count: `lots` is not a valid integer (invalid digit found in string)"]
        );
        assert_eq!(problems_of("items:\n  - count: 1\n"), ["f.yml:2:items[0]: missing field `name`"]);
        assert_eq!(
            problems_of("items:\n  - name: [x]\n"),
            ["f.yml:2:items[0].name: invalid type: sequence, expected a string"]
        );
        // Quoted numbers are strings, in YAML and in JSON.
        assert_eq!(
            problems_of("{\"items\": [{\"name\": \"a\", \"count\": \"3\"}]}"),
            ["f.yml:1:items[0].count: invalid type: string \"3\", expected i32"]
        );
        assert_eq!(
            problems_of("items: []\nextra: 1\n"),
            ["f.yml:2:extra: unknown field `extra`, expected `items`"]
        );
    }

    #[test]
    fn syntax_errors_and_repeated_keys_have_lines() {
        assert_eq!(
            problems_of("items:\n  - name: [\n"),
            ["f.yml:3: invalid YAML: while parsing a node, did not find expected node content"]
        );
        assert_eq!(
            problems_of("items:\n  - name: a\n    name: b\n"),
            ["f.yml:3:items[0].name: duplicate key `name` (first at line 2)"]
        );
        assert_eq!(problems_of("a: &x 1\n"), ["f.yml:1: YAML anchors and aliases are not supported"]);
    }
}
