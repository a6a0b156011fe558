//! Reading what users write: every configuration problem at once, each with its place.
//!
//! Flow files, alert rules, the knowledge graph, the Fluentd configuration and experiments all report
//! through one [`problems::Problems`] collector, so a file with five mistakes gives five lines of the form
//! `file:line:key: message` and nothing starts. [`locate`] finds the line of a key path in TOML and YAML
//! text (YAML through `marked-yaml`, TOML through `toml_edit`), so a check written against parsed values
//! can still point at the line.

pub mod locate;
pub mod problems;
pub mod yaml;

pub use problems::{KeyPath, Problem, Problems, ProblemsError, Severity};

/// A value echoed in an error message, cut to its first 80 characters (and `…`): a 100 MB field makes
/// a one-line error, not a 100 MB one.
pub fn cut(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// What kind of JSON value `value` is, for messages (`a number`, `an array`, …).
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
