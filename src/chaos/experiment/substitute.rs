//! `${name}` substitution, as chaostoolkit-lib's `substitute` does it, plus `${output:NAME}`.
//!
//! The lib feeds strings to Python's `string.Template` with `safe_substitute`: `$$` is a literal `$`,
//! `$name` and `${name}` are looked up (configuration first, then every secret scope in declaration
//! order), unknown names stay as written. A string that is exactly one placeholder yields the bound
//! value with its own type (`"${port}"` → `8080`); any other string gets `str()` of each value.
//!
//! chaoslab adds `${output:NAME}`: the output of the latest successful run of the activity named
//! `NAME` (chaostoolkit-lib#44 / chaostoolkit#74), so a probe's result can feed a later action or a
//! rollback. `:` cannot appear in a Template identifier, so the form never collides with the lib's.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::model::{Configuration, Secrets};
use super::pyvalue::py_str;

/// Activity outputs by activity name (latest successful run wins).
pub type Outputs = BTreeMap<String, Value>;

/// The prefix of output placeholders: `${output:NAME}`.
pub const OUTPUT_PREFIX: &str = "output:";

/// What `${…}` can refer to.
#[derive(Clone, Copy, Debug)]
pub struct Bindings<'a> {
    /// Configuration, searched first.
    pub configuration: &'a Configuration,
    /// Secret scopes, searched in order after the configuration.
    pub secrets: &'a Secrets,
    /// Activity outputs, for `${output:NAME}`.
    pub outputs: &'a Outputs,
}

impl<'a> Bindings<'a> {
    /// The value bound to `name`: `output:X` reads outputs; any other name the configuration, then
    /// each secret scope.
    pub fn lookup(&self, name: &str) -> Option<&'a Value> {
        if let Some(activity) = name.strip_prefix(OUTPUT_PREFIX) {
            return self.outputs.get(activity);
        }
        self.configuration
            .get(name)
            .or_else(|| self.secrets.values().filter_map(Value::as_object).find_map(|scope| scope.get(name)))
    }
}

/// Substitutes every string inside `data`, recursively, the way the lib does.
///
/// Faithful quirks: an empty/false top-level value is returned unchanged, and a list nested in a list
/// is flattened into its parent (the lib's `substitute_in_sequence` uses `extend` for inner lists).
pub fn substitute(data: &Value, bindings: &Bindings<'_>) -> Value {
    match data {
        Value::String(s) if !s.is_empty() => substitute_str(s, bindings),
        Value::Object(map) if !map.is_empty() => Value::Object(substitute_map(map, bindings)),
        Value::Array(items) if !items.is_empty() => Value::Array(substitute_seq(items, bindings)),
        other => other.clone(),
    }
}

/// Substitutes the values (not the keys) of a mapping.
pub fn substitute_map(map: &Map<String, Value>, bindings: &Bindings<'_>) -> Map<String, Value> {
    map.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => substitute_str(s, bindings),
                Value::Array(items) => Value::Array(substitute_seq(items, bindings)),
                Value::Object(inner) => Value::Object(substitute_map(inner, bindings)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn substitute_seq(items: &[Value], bindings: &Bindings<'_>) -> Vec<Value> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) => out.push(substitute_str(s, bindings)),
            Value::Array(inner) => out.extend(substitute_seq(inner, bindings)),
            Value::Object(inner) => out.push(Value::Object(substitute_map(inner, bindings))),
            other => out.push(other.clone()),
        }
    }
    out
}

/// Substitutes one string. A string that is exactly one bound placeholder keeps the value's type.
pub fn substitute_str(template: &str, bindings: &Bindings<'_>) -> Value {
    if let Some((Token::Name(name), end)) = token_at(template, 0)
        && end == template.len()
        && let Some(value) = bindings.lookup(name)
    {
        return value.clone();
    }
    Value::String(render(template, bindings))
}

/// `safe_substitute`: every placeholder replaced by `str()` of its value, unknown ones left as written.
fn render(template: &str, bindings: &Bindings<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    while let Some(offset) = template[i..].find('$') {
        let at = i + offset;
        out.push_str(&template[i..at]);
        match token_at(template, at) {
            Some((Token::Dollar, end)) => {
                out.push('$');
                i = end;
            }
            Some((Token::Name(name), end)) => {
                match bindings.lookup(name) {
                    Some(value) => out.push_str(&py_str(value)),
                    None => out.push_str(&template[at..end]),
                }
                i = end;
            }
            None => {
                out.push('$');
                i = at + 1;
            }
        }
    }
    out.push_str(&template[i..]);
    out
}

/// What a `$` at some position starts.
enum Token<'t> {
    /// `$$`.
    Dollar,
    /// `$name`, `${name}` or `${output:NAME}`; holds the name.
    Name(&'t str),
}

/// Reads the token starting with the `$` at byte `at`, returning it and the byte just after it.
fn token_at(s: &str, at: usize) -> Option<(Token<'_>, usize)> {
    let rest = s.get(at..)?.strip_prefix('$')?;
    if rest.starts_with('$') {
        return Some((Token::Dollar, at + 2));
    }
    if let Some(braced) = rest.strip_prefix('{') {
        let close = braced.find('}')?;
        let name = &braced[..close];
        let valid = is_identifier(name)
            || name.strip_prefix(OUTPUT_PREFIX).is_some_and(|activity| !activity.is_empty());
        return valid.then_some((Token::Name(name), at + 2 + close + 1));
    }
    let len = identifier_len(rest);
    (len > 0).then(|| (Token::Name(&rest[..len]), at + 1 + len))
}

/// Length of the Python identifier (`[_a-zA-Z][_a-zA-Z0-9]*`, ASCII) at the start of `s`.
fn identifier_len(s: &str) -> usize {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b == b'_' || b.is_ascii_alphabetic() => {
            1 + bytes.take_while(|b| *b == b'_' || b.is_ascii_alphanumeric()).count()
        }
        _ => 0,
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && identifier_len(s) == s.len()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with<R>(config: Value, secrets: Value, f: impl FnOnce(&Bindings<'_>) -> R) -> R {
        let configuration = config.as_object().cloned().unwrap();
        let secrets = secrets.as_object().cloned().unwrap();
        let mut outputs = Outputs::new();
        outputs.insert("Produce corrupt Kafka message".into(), json!([{"partition": 1, "offset": 41}]));
        f(&Bindings { configuration: &configuration, secrets: &secrets, outputs: &outputs })
    }

    #[test]
    fn single_placeholder_keeps_type_mixed_becomes_text() {
        with(json!({"port": 8080, "on": true, "host": "h"}), json!({}), |b| {
            assert_eq!(substitute_str("${port}", b), json!(8080));
            assert_eq!(substitute_str("$port", b), json!(8080));
            assert_eq!(substitute_str("http://${host}:${port}/", b), json!("http://h:8080/"));
            assert_eq!(substitute_str("on=$on", b), json!("on=True"));
        });
    }

    #[test]
    fn unknown_escaped_and_invalid_stay_as_written() {
        with(json!({"a": 1}), json!({}), |b| {
            assert_eq!(substitute_str("${missing}", b), json!("${missing}"));
            assert_eq!(substitute_str("x ${missing} $a", b), json!("x ${missing} 1"));
            assert_eq!(
                substitute_str("cost: $$5 ${data.arg1} $ {a}", b),
                json!("cost: $5 ${data.arg1} $ {a}")
            );
            assert_eq!(substitute_str("trailing $", b), json!("trailing $"));
        });
    }

    #[test]
    fn configuration_first_then_secret_scopes_in_order() {
        let secrets = json!({"first": {"token": "s1", "only": "o"}, "second": {"token": "s2"}});
        with(json!({"token": "c"}), secrets.clone(), |b| {
            assert_eq!(substitute_str("${token}", b), json!("c"))
        });
        with(json!({}), secrets, |b| {
            assert_eq!(substitute_str("${token}", b), json!("s1"));
            assert_eq!(substitute_str("${only}", b), json!("o"));
        });
    }

    #[test]
    fn outputs_are_addressed_by_activity_name() {
        with(json!({}), json!({}), |b| {
            let v = substitute_str("${output:Produce corrupt Kafka message}", b);
            assert_eq!(v, json!([{"partition": 1, "offset": 41}]));
            assert_eq!(substitute_str("${output:unknown}", b), json!("${output:unknown}"));
            assert_eq!(substitute_str("${output:}", b), json!("${output:}"));
        });
    }

    #[test]
    fn recursion_matches_the_lib_including_flattening() {
        with(json!({"n": 3, "t": "kafka"}), json!({}), |b| {
            let data = json!({"args": ["${t}", ["${n}", 4]], "nested": {"x": "${n}"}, "keep": 1, "${t}": 0});
            let out = substitute(&data, b);
            assert_eq!(out, json!({"args": ["kafka", 3, 4], "nested": {"x": 3}, "keep": 1, "${t}": 0}));
            assert_eq!(substitute(&json!(""), b), json!(""));
        });
    }
}
