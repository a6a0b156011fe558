//! Lines of key paths in TOML and YAML text.
//!
//! Checks run on parsed values; these locators map a failing value's key path back to a line. YAML (and
//! JSON, which YAML reads too) goes through `marked-yaml`, whose nodes carry their spans; TOML through
//! `toml_edit`, which keeps the span of every key.

use super::problems::{KeyPath, Locate, Segment};

/// A YAML (or JSON) document with the position of every node.
pub struct YamlLines {
    root: Option<marked_yaml::Node>,
}

impl YamlLines {
    /// Reads `text`; text that does not parse (or whose top level is not a mapping) locates nothing.
    pub fn new(text: &str) -> YamlLines {
        YamlLines { root: marked_yaml::parse_yaml(0, text).ok() }
    }

    /// A document already parsed.
    pub(super) fn from_root(root: marked_yaml::Node) -> YamlLines {
        YamlLines { root: Some(root) }
    }

    /// The parsed document, when it parsed.
    pub fn root(&self) -> Option<&marked_yaml::Node> {
        self.root.as_ref()
    }
}

fn node_line(node: &marked_yaml::Node) -> Option<usize> {
    node.span().start().map(|m| m.line())
}

impl YamlLines {
    /// The line of `key` (or of its deepest ancestor present) and how many segments matched.
    pub fn find(&self, key: &KeyPath) -> Option<(usize, usize)> {
        let mut node = self.root.as_ref()?;
        let mut line = node_line(node);
        let mut depth = 0;
        for segment in key.segments() {
            let next = match (segment, node) {
                (Segment::Key(k), marked_yaml::Node::Mapping(m)) => {
                    // The key's own line: a value on the next lines (a nested mapping) starts later.
                    match m.iter().find(|(name, _)| name.as_str() == k) {
                        Some((name, value)) => {
                            line = name.span().start().map(|m| m.line()).or(line);
                            Some(value)
                        }
                        None => None,
                    }
                }
                (Segment::Index(i), marked_yaml::Node::Sequence(s)) => {
                    let item = s.get(*i);
                    if let Some(item) = item {
                        line = node_line(item).or(line);
                    }
                    item
                }
                _ => None,
            };
            match next {
                Some(n) => {
                    node = n;
                    depth += 1;
                }
                None => break,
            }
        }
        line.map(|l| (l, depth))
    }
}

impl Locate for YamlLines {
    fn line_of(&self, key: &KeyPath) -> Option<usize> {
        self.find(key).map(|(line, _)| line)
    }
}

/// A TOML document with the position of every key.
pub struct TomlLines {
    text: String,
    doc: Option<toml_edit::ImDocument<String>>,
}

impl TomlLines {
    /// Reads `text`; text that does not parse locates nothing.
    pub fn new(text: &str) -> TomlLines {
        TomlLines { text: text.to_string(), doc: toml_edit::ImDocument::parse(text.to_string()).ok() }
    }

    fn line_at(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }
}

/// Where the TOML walk is: an item, or a table inside an array of tables.
enum At<'a> {
    Item(&'a toml_edit::Item),
    Table(&'a toml_edit::Table),
    Value(&'a toml_edit::Value),
}

impl TomlLines {
    /// The line of `key` (or of its deepest ancestor present) and how many segments matched.
    pub fn find(&self, key: &KeyPath) -> Option<(usize, usize)> {
        let doc = self.doc.as_ref()?;
        let mut at = At::Table(doc.as_table());
        let mut line = None;
        let mut depth = 0;
        let line_of_span = |span: Option<std::ops::Range<usize>>| span.map(|s| self.line_at(s.start));
        for segment in key.segments() {
            let next = match (segment, &at) {
                (Segment::Key(k), At::Table(t)) => t.get_key_value(k).map(|(key, v)| {
                    line = line_of_span(key.span().or_else(|| v.span())).or(line);
                    At::Item(v)
                }),
                (Segment::Key(k), At::Item(i)) => {
                    i.as_table_like().and_then(|t| t.get_key_value(k)).map(|(key, v)| {
                        line = line_of_span(key.span().or_else(|| v.span())).or(line);
                        At::Item(v)
                    })
                }
                (Segment::Key(k), At::Value(toml_edit::Value::InlineTable(t))) => {
                    t.get_key_value(k).map(|(key, v)| {
                        line = line_of_span(key.span().or_else(|| v.span())).or(line);
                        At::Item(v)
                    })
                }
                (Segment::Index(n), At::Item(toml_edit::Item::ArrayOfTables(a))) => a.get(*n).map(|t| {
                    line = line_of_span(t.span()).or(line);
                    At::Table(t)
                }),
                (Segment::Index(n), At::Item(toml_edit::Item::Value(toml_edit::Value::Array(a))))
                | (Segment::Index(n), At::Value(toml_edit::Value::Array(a))) => a.get(*n).map(|v| {
                    line = line_of_span(v.span()).or(line);
                    At::Value(v)
                }),
                _ => None,
            };
            match next {
                Some(n) => {
                    at = n;
                    depth += 1;
                }
                None => break,
            }
        }
        line.map(|l| (l, depth))
    }
}

impl Locate for TomlLines {
    fn line_of(&self, key: &KeyPath) -> Option<usize> {
        self.find(key).map(|(line, _)| line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_keys_have_lines() {
        let text = "[pipeline]\nname = \"x\"\n\n[components.FLINK]\nkind = \"k\"\nwindow = 0\n\n[[schedule]]\nat = \"1m\"\n\n[[schedule]]\nat = \"2m\"\nfaults = { loss = 2.0 }\n";
        let l = TomlLines::new(text);
        assert_eq!(l.line_of(&"components.FLINK.window".into()), Some(6));
        assert_eq!(l.line_of(&"components.FLINK.missing".into()), Some(4));
        assert_eq!(l.line_of(&"schedule[1].at".into()), Some(12));
        assert_eq!(l.line_of(&"schedule[1].faults.loss".into()), Some(13));
        assert_eq!(l.line_of(&"nothing.here".into()), None);
    }

    #[test]
    fn yaml_keys_have_lines() {
        let text = "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up == 0\n";
        let l = YamlLines::new(text);
        assert_eq!(l.line_of(&"groups[0].rules[0].expr".into()), Some(5));
        assert_eq!(l.line_of(&"groups[0].name".into()), Some(2));
        assert_eq!(l.line_of(&"groups[0].rules[3]".into()), Some(3));
        let json =
            YamlLines::new("{\n  \"title\": \"t\",\n  \"method\": [\n    {\"type\": \"action\"}\n  ]\n}\n");
        assert_eq!(json.line_of(&"method[0].type".into()), Some(4));
    }
}
