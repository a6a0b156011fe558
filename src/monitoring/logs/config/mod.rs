//! Fluentd configuration files: the v1 syntax and the subset of plugins chaoslab implements.
//!
//! The pipeline's log routing is described by a real Fluentd configuration (`flows/logging/fluent.conf`),
//! so the same file documents and drives it. This module owns two steps:
//!
//! 1. the syntax (the `syntax` submodule): directives `<name arg>…</name>`, `key value` parameters,
//!    comments, quoted strings, multi-line JSON values and `@include`;
//! 2. the meaning: `<source>`, `<filter>`, `<match>`, `<label @NAME>` built into typed values. Plugin
//!    types we do not implement are refused with the reason; parameters we do not use produce a note
//!    (and a `tracing` warning), as Fluentd warns about unused parameters.
//!
//! Every problem names the file and line (`file:line: message`, through [`crate::config::Problems`]);
//! a syntax error stops the reading, otherwise each directive is checked and every broken one reported.
//! Runtime behaviour (applying filters, choosing outputs) lives in the router module.
//!
//! Files: `syntax.rs` (the v1 syntax), `builder/` (directives into types), `placeholders.rs`
//! (`${…}` in `<record>`), `regex.rs` (Ruby regular expressions for the `regex` crate).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ::regex::Regex;
use serde_json::Value;

use crate::config::problems::KeyPath as ProblemKey;
use crate::config::{Problem, Problems, ProblemsError, Severity};
use crate::monitoring::logs::tag::TagPattern;

mod builder;
mod placeholders;
mod regex;
mod syntax;

pub use regex::ruby_regex;
use syntax::{Scanner, canonical};

/// Fluentd's default `in_forward` port.
pub const DEFAULT_FORWARD_PORT: u16 = 24224;
/// Fluentd's default `in_http` port.
pub const DEFAULT_HTTP_PORT: u16 = 9880;

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file, as reached through `@include` resolution.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The top-level file could not be read.
    #[error("{}: cannot read configuration: {source}", .file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid: a syntax or `@include` error, or every directive that is malformed
    /// or asks for what chaoslab does not implement; one `file:line: message` a line.
    #[error("{0}")]
    Invalid(ProblemsError),
}

/// One problem of a configuration, before it joins the others in [`Problems`].
#[derive(Debug, thiserror::Error)]
enum Fault {
    /// The text is not valid Fluentd v1 syntax.
    #[error("syntax error: {reason}")]
    Syntax {
        /// Where.
        origin: Origin,
        /// What is wrong.
        reason: String,
    },
    /// An `@include` could not be resolved or read.
    #[error("@include {target}: {reason}")]
    Include {
        /// The `@include` line.
        origin: Origin,
        /// The path as written.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// A directive asks for behaviour chaoslab does not implement.
    #[error("<{directive}>: {what} is not supported by chaoslab: {reason}")]
    Unsupported {
        /// Where.
        origin: Origin,
        /// The directive, e.g. `match **signal**`.
        directive: String,
        /// The unsupported thing, e.g. "@type loki".
        what: String,
        /// Why, or what to use instead.
        reason: String,
    },
    /// A directive is malformed: a missing or invalid parameter, a bad regex or tag pattern.
    #[error("<{directive}>: {reason}")]
    Invalid {
        /// Where.
        origin: Origin,
        /// The directive.
        directive: String,
        /// What is wrong.
        reason: String,
    },
}

impl From<Fault> for Problem {
    /// `file:line: message`.
    fn from(fault: Fault) -> Problem {
        let origin = match &fault {
            Fault::Syntax { origin, .. }
            | Fault::Include { origin, .. }
            | Fault::Unsupported { origin, .. }
            | Fault::Invalid { origin, .. } => origin.clone(),
        };
        Problem {
            severity: Severity::Error,
            file: origin.file.display().to_string(),
            line: Some(origin.line),
            key: ProblemKey::root(),
            message: fault.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Typed configuration
// ---------------------------------------------------------------------------------------------------------

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `<source>` directives, in file order.
    pub sources: Vec<Source>,
    /// Top-level `<filter>` and `<match>` directives, in file order.
    pub root: Vec<Directive>,
    /// `<label @NAME>` sections by name (including the `@`).
    pub labels: BTreeMap<String, Vec<Directive>>,
    /// Things accepted but not acted upon (no-op plugins, unused parameters), each naming its place.
    pub notes: Vec<String>,
}

/// A listener described by a `<source>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `@type forward`.
    Forward(ForwardSource),
    /// `@type http`.
    Http(HttpSource),
}

/// Settings of a Forward-protocol listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardSource {
    /// `bind` (default `0.0.0.0`).
    pub bind: String,
    /// `port` (default 24224).
    pub port: u16,
    /// `@label`: route this source's events into that label instead of the top level.
    pub label: Option<String>,
    /// `<security>`: the shared-key handshake every client must pass first.
    pub security: Option<ForwardSecurity>,
    /// Where the directive is.
    pub origin: Origin,
}

/// A Forward source's `<security>` (Fluentd's `in_forward`): before any event, a client answers the
/// server's HELO with a PING proving it knows `shared_key` (and, with `user_auth`, a user's password);
/// the server answers PONG proving it knows the key too.
#[derive(Clone, PartialEq)]
pub struct ForwardSecurity {
    /// `self_hostname`: the name the server gives in PONG.
    pub self_hostname: String,
    /// `shared_key`.
    pub shared_key: String,
    /// `<user>` entries (username, password) when `user_auth` is on; empty otherwise.
    pub users: Vec<(String, String)>,
}

impl std::fmt::Debug for ForwardSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("ForwardSecurity")
            .field("self_hostname", &self.self_hostname)
            .field("shared_key", &"***")
            .field("users", &users)
            .finish()
    }
}

/// Settings of an HTTP listener (`in_http`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSource {
    /// `bind` (default `0.0.0.0`).
    pub bind: String,
    /// `port` (default 9880).
    pub port: u16,
    /// `@label`, as for [`ForwardSource::label`].
    pub label: Option<String>,
    /// `<parse> time_key` (default `time`).
    pub time_key: String,
    /// `<parse> keep_time_key` (default false).
    pub keep_time_key: bool,
    /// `<parse> time_format` for string times; `None` means epoch seconds (numbers).
    pub time_format: Option<String>,
    /// Where the directive is.
    pub origin: Origin,
}

/// A `<filter>` or `<match>` directive.
#[derive(Debug, Clone)]
pub struct Directive {
    /// The tag pattern (`**` when the directive has no argument).
    pub pattern: TagPattern,
    /// What it does.
    pub kind: DirectiveKind,
    /// Where it is.
    pub origin: Origin,
}

/// Filter or match.
#[derive(Debug, Clone)]
pub enum DirectiveKind {
    /// A `<filter>`.
    Filter(Filter),
    /// A `<match>`.
    Match(Output),
}

/// The supported filter plugins.
#[derive(Debug, Clone)]
pub enum Filter {
    /// `record_modifier` (and `record_transformer`): set, remove and keep keys.
    Record(RecordEdit),
    /// `parser`: parse one field and merge the result.
    Parser(ParserFilter),
    /// `concat`: accepted, does nothing (multi-line joining is not implemented).
    Concat,
}

/// A `record_modifier` / `record_transformer` filter.
#[derive(Debug, Clone)]
pub struct RecordEdit {
    /// Which plugin wrote it; they differ in typing and in which record they read placeholders from.
    pub flavour: RecordFlavour,
    /// `<record>` entries, in order.
    pub set: Vec<(String, RecordValue)>,
    /// `remove_keys` (comma-separated; record-accessor paths for `record_transformer`).
    pub remove_keys: Vec<RecordPath>,
    /// `whitelist_keys`/`keep_keys` of `record_modifier`; `keep_keys` (with `renew_record`) of
    /// `record_transformer`.
    pub keep_keys: Option<Vec<String>>,
    /// `record_transformer`'s `renew_record`.
    pub renew_record: bool,
}

/// The two record-editing plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFlavour {
    /// `fluent-plugin-record-modifier`: values are always strings; placeholders see the record as it is
    /// being modified.
    Modifier,
    /// Fluentd's `record_transformer`: a value that is a single placeholder keeps its JSON type
    /// (`auto_typecast`); placeholders see the original record.
    Transformer {
        /// `auto_typecast` (default true).
        typecast: bool,
    },
}

/// The value of one `<record>` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordValue {
    /// A string with placeholders.
    Template(Template),
    /// A JSON array or hash literal (`record_transformer` parses values starting with `{` or `[`).
    Json(Value),
}

/// A string with `${…}` placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The pieces, in order.
    pub parts: Vec<TemplatePart>,
}

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    /// Literal text.
    Text(String),
    /// `${record['key']}` (or a nested `['a']['b']`).
    Record(RecordPath),
    /// `${tag}`.
    Tag,
    /// `${tag_parts[N]}`; negative N counts from the end.
    TagPart(i64),
    /// `${tag_prefix[N]}`: parts 0..=N joined.
    TagPrefix(i64),
    /// `${tag_suffix[N]}`: parts N.. joined.
    TagSuffix(i64),
    /// `${time}`: the event time as Ruby's `Time#to_s` (`2020-02-21 21:20:02 +0000`).
    Time,
}

/// A record-accessor path: a plain key, `$.a.b`, or `$['a']['b']`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPath {
    /// The keys from the top of the record down.
    pub keys: Vec<String>,
}

impl RecordPath {
    /// A path of one top-level key.
    pub fn top(key: &str) -> Self {
        Self { keys: vec![key.to_string()] }
    }

    /// Parses Fluentd's record-accessor syntax.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(rest) = text.strip_prefix("$.") {
            let keys: Vec<String> = rest.split('.').map(str::to_string).collect();
            if keys.iter().any(String::is_empty) {
                return Err(format!("empty key in record accessor {text:?}"));
            }
            return Ok(Self { keys });
        }
        if let Some(rest) = text.strip_prefix('$') {
            let keys = parse_bracket_keys(rest).ok_or_else(|| format!("invalid record accessor {text:?}"))?;
            return Ok(Self { keys });
        }
        if text.is_empty() {
            return Err("empty key".to_string());
        }
        Ok(Self::top(text))
    }

    /// The value at this path, if present.
    pub fn get<'a>(&self, record: &'a serde_json::Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.keys.split_first()?;
        let mut value = record.get(first)?;
        for key in rest {
            value = value.as_object()?.get(key)?;
        }
        Some(value)
    }

    /// Removes the value at this path; returns whether something was removed.
    pub fn remove(&self, record: &mut serde_json::Map<String, Value>) -> bool {
        let Some((last, parents)) = self.keys.split_last() else { return false };
        let mut map = record;
        for key in parents {
            match map.get_mut(key).and_then(Value::as_object_mut) {
                Some(inner) => map = inner,
                None => return false,
            }
        }
        map.remove(last).is_some()
    }
}

impl fmt::Display for RecordPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.keys.len() == 1 { f.write_str(&self.keys[0]) } else { write!(f, "$.{}", self.keys.join(".")) }
    }
}

/// `['a']["b"]` → `[a, b]`.
fn parse_bracket_keys(text: &str) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let quote = inner.chars().next()?;
        if quote != '\'' && quote != '"' {
            return None;
        }
        let body = &inner[1..];
        let end = body.find(quote)?;
        keys.push(body[..end].to_string());
        rest = body[end + 1..].strip_prefix(']')?;
    }
    if keys.is_empty() { None } else { Some(keys) }
}

/// A `parser` filter.
#[derive(Debug, Clone)]
pub struct ParserFilter {
    /// `key_name`: the field to parse.
    pub key_name: RecordPath,
    /// `reserve_data`: keep the original fields (and the record when parsing fails).
    pub reserve_data: bool,
    /// `reserve_time`: keep the event's time even if the parsed data has one.
    pub reserve_time: bool,
    /// `remove_key_name_field`: drop the parsed field after a successful parse.
    pub remove_key_name_field: bool,
    /// `inject_key_prefix`: prefix for the parsed keys.
    pub inject_key_prefix: Option<String>,
    /// `hash_value_field`: put the parsed fields under this key.
    pub hash_value_field: Option<String>,
    /// The `<parse>` section.
    pub format: ParseFormat,
}

/// The `<parse>` formats the parser filter supports.
#[derive(Debug, Clone)]
pub enum ParseFormat {
    /// `@type regexp` with named groups.
    Regexp {
        /// `expression`, translated from Ruby to the `regex` crate.
        regex: Regex,
        /// The time settings.
        time: ParseTime,
    },
    /// `@type json`.
    Json {
        /// The time settings.
        time: ParseTime,
    },
}

/// Where a parser finds the event time.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseTime {
    /// `time_key` (default `time`).
    pub key: String,
    /// `time_format`; `None` reads numbers (or numeric strings) as epoch seconds.
    pub format: Option<String>,
    /// `keep_time_key`.
    pub keep: bool,
}

/// The supported output plugins.
#[derive(Debug, Clone)]
pub enum Output {
    /// `rewrite_tag_filter`: re-emit under a new tag.
    RewriteTag(RewriteTagFilter),
    /// `copy`: every `<store>` gets the event.
    Copy(Vec<Output>),
    /// `kafka2`.
    Kafka(KafkaOutput),
    /// `elasticsearch`.
    Elasticsearch(ElasticsearchOutput),
    /// `stdout`.
    Stdout(Inject),
    /// `file` (`path`).
    File {
        /// `path` as configured (Fluentd time placeholders are left for the writer).
        path: String,
        /// `<inject>`.
        inject: Inject,
    },
    /// `null`: discard.
    Null,
    /// `relabel` (`@label`): continue in a label.
    Relabel(String),
}

/// A `rewrite_tag_filter` output.
#[derive(Debug, Clone)]
pub struct RewriteTagFilter {
    /// `<rule>`s; the first that applies wins.
    pub rules: Vec<RewriteRule>,
    /// `remove_tag_prefix`: stripped from the tag before `${tag}`/`${tag_parts}` placeholders.
    pub remove_tag_prefix: Option<String>,
    /// `capitalize_regex_backreference`.
    pub capitalize_backreferences: bool,
    /// `@label`: re-emit into this label instead of the directive's own pipeline.
    pub label: Option<String>,
}

/// One `<rule>` of `rewrite_tag_filter`.
#[derive(Debug, Clone)]
pub struct RewriteRule {
    /// `key`: the field tested.
    pub key: RecordPath,
    /// `pattern`.
    pub pattern: Regex,
    /// `tag`: the new tag, with `$N`, `${tag}`, `${tag_parts[N]}`, `__TAG__`, `__TAG_PARTS[N]__`.
    pub tag: String,
    /// `invert`: apply the rule when the pattern does not match.
    pub invert: bool,
    /// Where the rule is.
    pub origin: Origin,
}

/// A `kafka2` output.
#[derive(Debug, Clone)]
pub struct KafkaOutput {
    /// `default_topic`; without it (and without `topic_key` in the record) the tag is the topic.
    pub default_topic: Option<String>,
    /// `topic_key` (default `topic`): a record field naming the topic.
    pub topic_key: String,
    /// `<inject>`.
    pub inject: Inject,
}

/// An `elasticsearch` output.
#[derive(Debug, Clone)]
pub struct ElasticsearchOutput {
    /// `index_name` (default `fluentd`), used without `logstash_format`.
    pub index_name: String,
    /// `logstash_format`: daily indices `<prefix><separator><date>` and an `@timestamp` field.
    pub logstash_format: bool,
    /// `logstash_prefix` (default `logstash`).
    pub logstash_prefix: String,
    /// `logstash_prefix_separator` (default `-`).
    pub logstash_prefix_separator: String,
    /// `logstash_dateformat` (default `%Y.%m.%d`).
    pub logstash_dateformat: String,
    /// `include_tag_key`: add the tag under `tag_key`.
    pub include_tag_key: bool,
    /// `tag_key` (default `tag`).
    pub tag_key: String,
    /// `include_timestamp`: add `@timestamp` even without `logstash_format`.
    pub include_timestamp: bool,
    /// `time_precision` (default 9): fractional digits of `@timestamp`.
    pub time_precision: u8,
    /// `<inject>`.
    pub inject: Inject,
}

/// An `<inject>` section: fields an output adds to each record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inject {
    /// `time_key` and how to render the time there.
    pub time: Option<(String, InjectTime)>,
    /// `tag_key`.
    pub tag_key: Option<String>,
}

/// `time_type` of an `<inject>` section.
#[derive(Debug, Clone, PartialEq)]
pub enum InjectTime {
    /// `float` (Fluentd's default): fractional epoch seconds.
    Float,
    /// `unixtime`: whole epoch seconds.
    Unixtime,
    /// `string` with a Ruby `strftime` format, always in UTC.
    String(String),
}

impl Config {
    /// Loads a configuration file and everything it includes.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { file: path.to_path_buf(), source })?;
        Self::parse_str(&text, path)
    }

    /// Parses configuration text as if it were the file `file` (relative includes are resolved against
    /// its directory). Every problem found is reported in [`ConfigError::Invalid`].
    pub fn parse_str(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let mut body = syntax::Body::default();
        let mut stack = vec![canonical(file)];
        let mut problems = Problems::new();
        let config = match Scanner::new(text, file).parse_body(None, &mut body, &mut stack) {
            Ok(()) => Some(builder::build(body, &mut problems)),
            Err(fault) => {
                problems.push(fault.into());
                None
            }
        };
        problems.sort_by_line();
        problems.check().map_err(ConfigError::Invalid)?;
        config.ok_or_else(|| ConfigError::Invalid(ProblemsError(Vec::new())))
    }

    /// The first Forward source, if any.
    pub fn forward_source(&self) -> Option<&ForwardSource> {
        self.sources.iter().find_map(|s| match s {
            Source::Forward(f) => Some(f),
            Source::Http(_) => None,
        })
    }

    /// The first HTTP source, if any.
    pub fn http_source(&self) -> Option<&HttpSource> {
        self.sources.iter().find_map(|s| match s {
            Source::Http(h) => Some(h),
            Source::Forward(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths() {
        assert_eq!(RecordPath::parse("$.a.b").unwrap().keys, ["a", "b"]);
        assert_eq!(RecordPath::parse("$['a'][\"b c\"]").unwrap().keys, ["a", "b c"]);
        assert_eq!(RecordPath::parse("message").unwrap().keys, ["message"]);
        assert!(RecordPath::parse("$[a]").is_err());
        let mut record = serde_json::json!({"a": {"b": 1}, "c": 2}).as_object().unwrap().clone();
        assert_eq!(RecordPath::parse("$.a.b").unwrap().get(&record), Some(&serde_json::json!(1)));
        assert!(RecordPath::parse("$.a.b").unwrap().remove(&mut record));
        assert_eq!(Value::Object(record), serde_json::json!({"a": {}, "c": 2}));
    }
}
