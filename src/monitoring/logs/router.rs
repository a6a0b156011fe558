//! The event router: what Fluentd's engine does with one event, given a loaded configuration.
//!
//! For an event, the directives of its pipeline (the top level, or a `<label>`) are walked in file order:
//! each `<filter>` whose pattern matches the tag edits (or drops) the record, and the first `<match>`
//! whose pattern matches decides where it goes; filters after that match are not applied, as in Fluentd.
//! `copy` hands a copy to every store; `rewrite_tag_filter` and `relabel` send the event through a
//! pipeline again from its top (bounded by a re-emit limit that stops rewrite loops). Terminal outputs
//! become [`Routed`] values naming a topic, an index, stdout, a file or the null sink; the caller
//! delivers them. Routing is a pure function of the event and the configuration: it never reads the
//! clock, so it runs unchanged in simulation.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use regex::{Captures, Regex};
use serde_json::{Map, Value};

use crate::monitoring::logs::config::{
    Config, Directive, DirectiveKind, ElasticsearchOutput, Filter, Inject, InjectTime, KafkaOutput, Output,
    ParseFormat, ParseTime, ParserFilter, RecordEdit, RecordFlavour, RecordValue, RewriteTagFilter, Template,
    TemplatePart,
};
use crate::monitoring::logs::event::{EventTime, LogEvent};

/// How many times one event may be re-emitted (`rewrite_tag_filter`, `relabel`) before it is dropped as
/// a loop.
pub const DEFAULT_MAX_REEMITS: usize = 8;

/// Where a routed event goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutputRef {
    /// A Kafka topic (`kafka2`).
    Topic(String),
    /// An Elasticsearch index (`elasticsearch`), already resolved (e.g. `fluentd-20200221` with
    /// `logstash_format`).
    Index(String),
    /// Standard output (`stdout`).
    Stdout,
    /// A file output, with its configured `path` (Fluentd time placeholders left unexpanded).
    File(String),
    /// The `null` output: the event is discarded on purpose.
    Null,
}

/// One delivery decided by the router.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// The destination.
    pub output: OutputRef,
    /// The event as the destination receives it (with any injected fields).
    pub event: LogEvent,
}

/// Counters of events the router did not deliver, and of all events it saw.
#[derive(Debug, Default)]
struct RouterStats {
    routed: AtomicU64,
    unmatched: AtomicU64,
    filtered_out: AtomicU64,
    not_rewritten: AtomicU64,
    loop_dropped: AtomicU64,
    unknown_label: AtomicU64,
}

/// A copy of the router's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStatsSnapshot {
    /// Events given to `route`/`route_label`.
    pub routed: u64,
    /// Events (including re-emitted ones) that no `<match>` matched.
    pub unmatched: u64,
    /// Events a filter dropped (a `parser` that did not match without `reserve_data`).
    pub filtered_out: u64,
    /// Events a `rewrite_tag_filter` discarded because no rule applied or the tag stayed the same.
    pub not_rewritten: u64,
    /// Events dropped after too many re-emits.
    pub loop_dropped: u64,
    /// Events sent to a label that does not exist.
    pub unknown_label: u64,
}

/// Routes events according to a [`Config`].
#[derive(Debug)]
pub struct Router {
    config: Config,
    max_reemits: usize,
    stats: RouterStats,
}

impl Router {
    /// A router for `config`, with the default re-emit limit.
    pub fn new(config: Config) -> Self {
        Self { config, max_reemits: DEFAULT_MAX_REEMITS, stats: RouterStats::default() }
    }

    /// Changes the re-emit limit.
    pub fn with_max_reemits(mut self, max_reemits: usize) -> Self {
        self.max_reemits = max_reemits;
        self
    }

    /// The configuration this router follows.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Routes an event through the top-level directives.
    pub fn route(&self, event: LogEvent) -> Vec<Routed> {
        self.stats.routed.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        self.emit(&self.config.root, event, 0, &mut out);
        out
    }

    /// Routes an event through the directives of `<label NAME>` (e.g. for a source with `@label`).
    pub fn route_label(&self, label: &str, event: LogEvent) -> Vec<Routed> {
        self.stats.routed.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        match self.config.labels.get(label) {
            Some(pipeline) => self.emit(pipeline, event, 0, &mut out),
            None => {
                self.stats.unknown_label.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(label, tag = %event.tag, "event sent to an undefined label was dropped");
            }
        }
        out
    }

    /// The counters so far.
    pub fn stats(&self) -> RouterStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RouterStatsSnapshot {
            routed: get(&self.stats.routed),
            unmatched: get(&self.stats.unmatched),
            filtered_out: get(&self.stats.filtered_out),
            not_rewritten: get(&self.stats.not_rewritten),
            loop_dropped: get(&self.stats.loop_dropped),
            unknown_label: get(&self.stats.unknown_label),
        }
    }

    fn emit(&self, pipeline: &[Directive], mut event: LogEvent, depth: usize, out: &mut Vec<Routed>) {
        for directive in pipeline {
            if !directive.pattern.matches(&event.tag) {
                continue;
            }
            match &directive.kind {
                DirectiveKind::Filter(filter) => match apply_filter(filter, event) {
                    Some(kept) => event = kept,
                    None => {
                        self.stats.filtered_out.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                },
                DirectiveKind::Match(output) => {
                    self.output(output, pipeline, event, depth, out);
                    return;
                }
            }
        }
        self.stats.unmatched.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(tag = %event.tag, "no patterns matched");
    }

    fn reemit(&self, pipeline: &[Directive], event: LogEvent, depth: usize, out: &mut Vec<Routed>) {
        if depth >= self.max_reemits {
            self.stats.loop_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tag = %event.tag, limit = self.max_reemits, "event re-emitted too often (a tag rewrite loop?); dropped");
            return;
        }
        self.emit(pipeline, event, depth + 1, out);
    }

    fn label_pipeline(&self, label: &str, tag: &str) -> Option<&[Directive]> {
        let pipeline = self.config.labels.get(label).map(Vec::as_slice);
        if pipeline.is_none() {
            self.stats.unknown_label.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(label, tag, "event sent to an undefined label was dropped");
        }
        pipeline
    }

    fn output(
        &self,
        output: &Output,
        pipeline: &[Directive],
        mut event: LogEvent,
        depth: usize,
        out: &mut Vec<Routed>,
    ) {
        match output {
            Output::Copy(stores) => {
                for store in stores {
                    self.output(store, pipeline, event.clone(), depth, out);
                }
            }
            Output::RewriteTag(filter) => match rewrite_tag(filter, &event) {
                Some(tag) if tag != event.tag => {
                    event.tag = tag;
                    let target = match &filter.label {
                        Some(label) => self.label_pipeline(label, &event.tag),
                        None => Some(pipeline),
                    };
                    if let Some(target) = target {
                        self.reemit(target, event, depth, out);
                    }
                }
                _ => {
                    self.stats.not_rewritten.fetch_add(1, Ordering::Relaxed);
                    tracing::trace!(tag = %event.tag, "rewrite_tag_filter: tag has not been rewritten");
                }
            },
            Output::Relabel(label) => {
                if let Some(target) = self.label_pipeline(label, &event.tag) {
                    self.reemit(target, event, depth, out);
                }
            }
            Output::Kafka(kafka) => {
                let topic = kafka_topic(kafka, &mut event);
                out.push(Routed { output: OutputRef::Topic(topic), event });
            }
            Output::Elasticsearch(es) => {
                let index = elasticsearch_index(es, &mut event);
                out.push(Routed { output: OutputRef::Index(index), event });
            }
            Output::Stdout(inject) => {
                apply_inject(inject, &mut event);
                out.push(Routed { output: OutputRef::Stdout, event });
            }
            Output::File { path, inject } => {
                apply_inject(inject, &mut event);
                out.push(Routed { output: OutputRef::File(path.clone()), event });
            }
            Output::Null => out.push(Routed { output: OutputRef::Null, event }),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------------------

/// Adds the `<inject>` fields.
fn apply_inject(inject: &Inject, event: &mut LogEvent) {
    if let Some((key, kind)) = &inject.time {
        let value = match kind {
            InjectTime::Float => serde_json::Number::from_f64(event.time.as_float_secs())
                .map(Value::Number)
                .unwrap_or(Value::Null),
            InjectTime::Unixtime => Value::from(event.time.secs),
            InjectTime::String(format) => Value::String(event.time.format(format)),
        };
        event.record.insert(key.clone(), value);
    }
    if let Some(key) = &inject.tag_key {
        event.record.insert(key.clone(), Value::String(event.tag.clone()));
    }
}

/// `kafka2`: inject, then the topic is the record's `topic_key` field, else `default_topic`, else the tag.
fn kafka_topic(kafka: &KafkaOutput, event: &mut LogEvent) -> String {
    apply_inject(&kafka.inject, event);
    event
        .record
        .get(&kafka.topic_key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| kafka.default_topic.clone())
        .unwrap_or_else(|| event.tag.clone())
}

/// `elasticsearch`: inject, add `@timestamp` (with `logstash_format` or `include_timestamp`) and the tag
/// (with `include_tag_key`), and resolve the index name.
fn elasticsearch_index(es: &ElasticsearchOutput, event: &mut LogEvent) -> String {
    apply_inject(&es.inject, event);
    let mut index_time = event.time;
    if es.logstash_format || es.include_timestamp {
        let existing = event
            .record
            .get("@timestamp")
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        match existing {
            Some(dt) => index_time = EventTime::new(dt.timestamp(), dt.timestamp_subsec_nanos()),
            None => {
                let stamp = event.time.format(&timestamp_format(es.time_precision));
                event.record.insert("@timestamp".to_string(), Value::String(stamp));
            }
        }
    }
    if es.include_tag_key {
        event.record.insert(es.tag_key.clone(), Value::String(event.tag.clone()));
    }
    if es.logstash_format {
        format!(
            "{}{}{}",
            es.logstash_prefix,
            es.logstash_prefix_separator,
            index_time.format(&es.logstash_dateformat)
        )
    } else {
        es.index_name.clone()
    }
}

/// Ruby's `DateTime#iso8601(precision)` in UTC.
fn timestamp_format(precision: u8) -> String {
    match precision {
        0 => "%Y-%m-%dT%H:%M:%S+00:00".to_string(),
        p => format!("%Y-%m-%dT%H:%M:%S.%{p}N+00:00"),
    }
}

/// `rewrite_tag_filter`: the new tag from the first rule that applies.
fn rewrite_tag(filter: &RewriteTagFilter, event: &LogEvent) -> Option<String> {
    let placeholder_tag = match &filter.remove_tag_prefix {
        Some(prefix) => match event.tag.strip_prefix(prefix.as_str()) {
            Some(rest) => rest.strip_prefix('.').unwrap_or(rest),
            None => event.tag.as_str(),
        },
        None => event.tag.as_str(),
    };
    for rule in &filter.rules {
        let value = rule.key.get(&event.record).map(ruby_to_s).unwrap_or_default();
        if value.is_empty() && !rule.invert {
            continue;
        }
        let captures = rule.pattern.captures(&value);
        let tag = if rule.invert {
            if captures.is_some() {
                continue;
            }
            rule.tag.clone()
        } else {
            let Some(captures) = captures else { continue };
            replace_backreferences(&rule.tag, &captures, filter.capitalize_backreferences)
        };
        return Some(replace_tag_placeholders(&tag, placeholder_tag));
    }
    None
}

static BACKREFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\d+").expect("constant regex is valid"));
static TAG_PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\{[a-z_]+(\[[0-9]+\])?\}|__[A-Z_]+__").expect("constant regex is valid"));

/// `$1`, `$2`, … from the rule's captures (an absent group gives an empty string).
fn replace_backreferences(tag: &str, captures: &Captures<'_>, capitalize: bool) -> String {
    BACKREFERENCE
        .replace_all(tag, |m: &Captures<'_>| {
            let index: usize = m[0][1..].parse().unwrap_or(0);
            let value = if index >= 1 && index < captures.len() {
                captures.get(index).map(|c| c.as_str()).unwrap_or_default()
            } else {
                ""
            };
            if capitalize { ruby_capitalize(value) } else { value.to_string() }
        })
        .into_owned()
}

fn replace_tag_placeholders(tag: &str, placeholder_tag: &str) -> String {
    TAG_PLACEHOLDER
        .replace_all(tag, |m: &Captures<'_>| {
            let placeholder = &m[0];
            if placeholder == "${tag}" || placeholder == "__TAG__" {
                return placeholder_tag.to_string();
            }
            if let Some(index) = placeholder.strip_prefix("${tag_parts[").and_then(|r| r.strip_suffix("]}"))
                && let Ok(index) = index.parse::<usize>()
                && let Some(part) = placeholder_tag.split('.').nth(index)
            {
                return part.to_string();
            }
            tracing::warn!(
                placeholder,
                tag = placeholder_tag,
                "rewrite_tag_filter: unknown placeholder found"
            );
            String::new()
        })
        .into_owned()
}

fn ruby_capitalize(value: &str) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
}

/// Ruby's `to_s` of a record value, as Fluentd plugins apply it (`nil` → empty string; containers are
/// rendered as JSON, where Ruby would print its inspect form).
fn ruby_to_s(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------------------------

fn apply_filter(filter: &Filter, mut event: LogEvent) -> Option<LogEvent> {
    match filter {
        Filter::Record(edit) => {
            apply_record_edit(edit, &mut event);
            Some(event)
        }
        Filter::Parser(parser) => apply_parser(parser, event),
        Filter::Concat => Some(event),
    }
}

fn apply_record_edit(edit: &RecordEdit, event: &mut LogEvent) {
    let tag_parts: Vec<&str> = event.tag.split('.').collect();
    let ctx = TemplateContext { tag: &event.tag, tag_parts: &tag_parts, time: event.time };
    match edit.flavour {
        RecordFlavour::Modifier => {
            // Placeholders see the record as it is being modified, entry by entry.
            for (key, value) in &edit.set {
                let value = match value {
                    RecordValue::Template(template) => {
                        Value::String(expand_string(template, &event.record, &ctx))
                    }
                    RecordValue::Json(json) => json.clone(),
                };
                event.record.insert(key.clone(), value);
            }
            for key in &edit.remove_keys {
                key.remove(&mut event.record);
            }
            if let Some(keep) = &edit.keep_keys {
                event.record.retain(|key, _| keep.contains(key));
            }
        }
        RecordFlavour::Transformer { typecast } => {
            let original = &event.record;
            let mut record = if edit.renew_record {
                let mut fresh = Map::new();
                for key in edit.keep_keys.iter().flatten() {
                    if let Some(value) = original.get(key) {
                        fresh.insert(key.clone(), value.clone());
                    }
                }
                fresh
            } else {
                original.clone()
            };
            for (key, value) in &edit.set {
                let value = match value {
                    RecordValue::Template(template) => expand_typed(template, original, &ctx, typecast),
                    RecordValue::Json(json) => json.clone(),
                };
                record.insert(key.clone(), value);
            }
            for key in &edit.remove_keys {
                key.remove(&mut record);
            }
            event.record = record;
        }
    }
}

struct TemplateContext<'a> {
    tag: &'a str,
    tag_parts: &'a [&'a str],
    time: EventTime,
}

impl TemplateContext<'_> {
    fn part(&self, index: i64) -> Option<usize> {
        let len = self.tag_parts.len() as i64;
        let index = if index < 0 { len + index } else { index };
        (0..len).contains(&index).then_some(index as usize)
    }

    /// The value of one placeholder, or `None` where Ruby would give `nil`.
    fn value(&self, part: &TemplatePart, record: &Map<String, Value>) -> Option<Value> {
        match part {
            TemplatePart::Text(text) => Some(Value::String(text.clone())),
            TemplatePart::Record(path) => path.get(record).cloned(),
            TemplatePart::Tag => Some(Value::String(self.tag.to_string())),
            TemplatePart::TagPart(index) => {
                self.part(*index).map(|i| Value::String(self.tag_parts[i].to_string()))
            }
            TemplatePart::TagPrefix(index) => {
                self.part(*index).map(|i| Value::String(self.tag_parts[..=i].join(".")))
            }
            TemplatePart::TagSuffix(index) => {
                self.part(*index).map(|i| Value::String(self.tag_parts[i..].join(".")))
            }
            TemplatePart::Time => Some(Value::String(self.time.format("%Y-%m-%d %H:%M:%S +0000"))),
        }
    }
}

fn expand_string(template: &Template, record: &Map<String, Value>, ctx: &TemplateContext<'_>) -> String {
    let mut out = String::new();
    for part in &template.parts {
        if let Some(value) = ctx.value(part, record) {
            out.push_str(&ruby_to_s(&value));
        }
    }
    out
}

/// record_transformer's `auto_typecast`: a value that is exactly one placeholder keeps its type (and a
/// missing one becomes `null`).
fn expand_typed(
    template: &Template,
    record: &Map<String, Value>,
    ctx: &TemplateContext<'_>,
    typecast: bool,
) -> Value {
    match template.parts.as_slice() {
        [single] if typecast && !matches!(single, TemplatePart::Text(_)) => {
            ctx.value(single, record).unwrap_or(Value::Null)
        }
        _ => Value::String(expand_string(template, record, ctx)),
    }
}

fn apply_parser(parser: &ParserFilter, mut event: LogEvent) -> Option<LogEvent> {
    let Some(raw) = parser.key_name.get(&event.record).map(ruby_to_s) else {
        tracing::debug!(tag = %event.tag, key = %parser.key_name, "parser: key does not exist");
        return parser.reserve_data.then_some(event);
    };
    let Some((values, parsed_time)) = parse_value(&parser.format, &raw) else {
        tracing::debug!(tag = %event.tag, key = %parser.key_name, "parser: pattern not matched");
        return parser.reserve_data.then_some(event);
    };
    if !parser.reserve_time
        && let Some(time) = parsed_time
    {
        event.time = time;
    }
    if parser.remove_key_name_field {
        parser.key_name.remove(&mut event.record);
    }
    let values: Map<String, Value> = match &parser.inject_key_prefix {
        Some(prefix) => values.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)).collect(),
        None => values,
    };
    let parsed = match &parser.hash_value_field {
        Some(field) => Map::from_iter([(field.clone(), Value::Object(values))]),
        None => values,
    };
    if parser.reserve_data {
        event.record.extend(parsed);
    } else {
        event.record = parsed;
    }
    Some(event)
}

/// Parses one field; `None` if it does not fit the format (or its time does not).
fn parse_value(format: &ParseFormat, raw: &str) -> Option<(Map<String, Value>, Option<EventTime>)> {
    let (mut values, time) = match format {
        ParseFormat::Regexp { regex, time } => {
            let captures = regex.captures(raw)?;
            let mut values = Map::new();
            for name in regex.capture_names().flatten() {
                if let Some(m) = captures.name(name) {
                    values.insert(name.to_string(), Value::String(m.as_str().to_string()));
                }
            }
            (values, time)
        }
        ParseFormat::Json { time } => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(values)) => (values, time),
            _ => return None,
        },
    };
    let parsed_time = take_time(&mut values, time).ok()?;
    Some((values, parsed_time))
}

/// Reads (and, unless `keep`, removes) the time field of parsed values.
pub(crate) fn take_time(
    values: &mut Map<String, Value>,
    time: &ParseTime,
) -> Result<Option<EventTime>, String> {
    let Some(value) = values.get(&time.key) else { return Ok(None) };
    let parsed = parse_time_value(value, time.format.as_deref())?;
    if !time.keep {
        values.remove(&time.key);
    }
    Ok(Some(parsed))
}

/// A time value with an optional Ruby `strptime` format; without one, numbers (or numeric strings) are
/// epoch seconds and other strings must be RFC 3339.
pub(crate) fn parse_time_value(value: &Value, format: Option<&str>) -> Result<EventTime, String> {
    match (value, format) {
        (Value::String(s), Some(format)) => EventTime::parse(format, s).map_err(|e| e.to_string()),
        (Value::Number(n), _) => n
            .as_f64()
            .and_then(EventTime::from_float_secs)
            .ok_or_else(|| format!("time value {n} is out of range")),
        (Value::String(s), None) => {
            if let Ok(secs) = s.parse::<f64>() {
                return EventTime::from_float_secs(secs)
                    .ok_or_else(|| format!("time value {s:?} is out of range"));
            }
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|dt| EventTime::new(dt.timestamp(), dt.timestamp_subsec_nanos()))
                .map_err(|e| format!("time value {s:?} is not a number or an RFC 3339 time: {e}"))
        }
        (other, _) => Err(format!("time value {other} is neither a string nor a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    const T0: i64 = 1_582_320_002_991; // 2020-02-21T21:20:02.991Z

    fn reference_router() -> Router {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/logging/fluent.conf");
        Router::new(Config::load(&path).unwrap())
    }

    fn router(text: &str) -> Router {
        Router::new(Config::parse_str(text, Path::new("/virtual/test.conf")).unwrap())
    }

    fn event(tag: &str, record: Value) -> LogEvent {
        LogEvent::new(tag, EventTime::from_millis(T0), record.as_object().unwrap().clone())
    }

    fn outputs(routed: &[Routed]) -> Vec<OutputRef> {
        routed.iter().map(|r| r.output.clone()).collect()
    }

    const NIFI_LOST: &str = "ConsumeMQTT[id=3c443bde-016e-1000-5c22-a4b0e6b3e2c4] Connection to tcp://mqtt:1883 \
        lost (or was never connected) and connection failed. Yielding processor: Client is currently \
        disconnecting (32102)";
    const NIFI_LOST_EOF: &str = "ConsumeMQTT[id=3c443bde-016e-1000-5c22-a4b0e6b3e2c4] Connection to \
        tcp://mqtt:1883 lost due to: Connection lost: Connection lost (32109) - java.io.EOFException";
    const NODERED_DISCONNECTED: &str = "Disconnected from broker: nodered@mqtt://mqtt:1883";

    #[test]
    fn reference_config_loads_without_notes_except_the_concat_no_op() {
        let router = reference_router();
        let config = router.config();
        assert_eq!(config.notes.len(), 1, "{:#?}", config.notes);
        assert!(config.notes[0].contains("filter concat"));
        assert_eq!(config.forward_source().unwrap().port, 24224);
        let http = config.http_source().unwrap();
        assert_eq!((http.port, http.time_key.as_str(), http.keep_time_key), (9880, "time", true));
        assert!(config.labels.contains_key("@FLUENT_LOG"));
        // 23 filters + the two rule matches + the two outputs, in file order.
        let matches: Vec<&str> = config
            .root
            .iter()
            .filter(|d| matches!(d.kind, DirectiveKind::Match(_)))
            .map(|d| d.pattern.as_str())
            .collect();
        assert_eq!(matches, ["**.nodered.platform**", "**.nifi.platform**", "**signal**", "*.**"]);
        assert!(config.root[config.root.len() - 4].origin.file.ends_with("nodered_signal_rules.conf"));
    }

    #[test]
    fn nifi_connection_lost_becomes_mqtt_connection_error_signal() {
        let routed = reference_router().route(event(
            "com.chaoslab.nifi.platform",
            json!({"message": NIFI_LOST, "msg": "2020-02-21 21:20:33,224 ERROR [Timer-Driven Process Thread-7] ...",
                   "level": "ERROR", "logger": "o.a.n.p.mqtt.ConsumeMQTT"}),
        ));
        assert_eq!(
            outputs(&routed),
            [OutputRef::Index("fluentd-20200221".into()), OutputRef::Topic("signals".into())]
        );
        let kafka = &routed[1].event;
        assert_eq!(kafka.tag, "signal.MqttConnectionError");
        assert_eq!(kafka.time, EventTime::from_millis(T0));
        assert_eq!(
            Value::Object(kafka.record.clone()),
            json!({
                "message": NIFI_LOST,
                "log": "2020-02-21 21:20:33,224 ERROR [Timer-Driven Process Thread-7] ...",
                "level": "ERROR",
                "logger": "o.a.n.p.mqtt.ConsumeMQTT",
                "software": "PLATFORM",
                "pipeline_component": "NIFI",
                "signal_type": "LOG",
                "tag": "signal.MqttConnectionError",
                "event_time": "2020-02-21T21:20:02.991Z",
            })
        );
        let es = &routed[0].event;
        assert_eq!(es.record["@log_name"], "signal.MqttConnectionError");
        assert_eq!(es.record["@timestamp"], "2020-02-21T21:20:02.991000000+00:00");
        assert_eq!(es.record["signal_type"], "LOG");
        assert!(!es.record.contains_key("event_time"), "the Kafka inject belongs to the Kafka store only");
    }

    #[test]
    fn nifi_connection_lost_with_eof_also_matches_the_rule() {
        let routed =
            reference_router().route(event("com.chaoslab.nifi.platform", json!({"message": NIFI_LOST_EOF})));
        assert_eq!(routed[1].event.tag, "signal.MqttConnectionError");
        assert_eq!(routed[1].output, OutputRef::Topic("signals".into()));
    }

    #[test]
    fn nodered_disconnect_becomes_mqtt_connection_failure_log() {
        let routed = reference_router().route(event(
            "com.chaoslab.nodered.platform",
            json!({"message": NODERED_DISCONNECTED, "level": "INFO"}),
        ));
        assert_eq!(
            outputs(&routed),
            [OutputRef::Index("fluentd-20200221".into()), OutputRef::Topic("signals".into())]
        );
        let kafka = &routed[1].event;
        assert_eq!(kafka.tag, "signal.MqttConnectionFailureLog");
        assert_eq!(
            Value::Object(kafka.record.clone()),
            json!({
                "message": NODERED_DISCONNECTED,
                "level": "INFO",
                "software": "PLATFORM",
                "pipeline_component": "NODE-RED",
                "signal_type": "LOG",
                "tag": "signal.MqttConnectionFailureLog",
                "event_time": "2020-02-21T21:20:02.991Z",
            })
        );
    }

    #[test]
    fn ordinary_nodered_line_is_noise_in_the_index_only() {
        let router = reference_router();
        let routed = router.route(event(
            "com.chaoslab.nodered.platform",
            json!({"message": "Connected to broker: nodered@mqtt://mqtt:1883", "level": "INFO"}),
        ));
        assert_eq!(outputs(&routed), [OutputRef::Index("fluentd-20200221".into())]);
        let doc = &routed[0].event;
        assert_eq!(doc.tag, "noise");
        assert_eq!(doc.record["@log_name"], "noise");
        assert_eq!(doc.record["pipeline_component"], "NODE-RED");
        assert_eq!(doc.record["software"], "PLATFORM");
        assert!(!doc.record.contains_key("signal_type"));
    }

    #[test]
    fn nifi_line_that_is_not_an_error_is_noise() {
        let routed = reference_router().route(event(
            "com.chaoslab.nifi.platform",
            json!({"message": "Successfully scheduled ConsumeMQTT[id=74042ed4] to run with 1 threads"}),
        ));
        assert_eq!(outputs(&routed), [OutputRef::Index("fluentd-20200221".into())]);
        assert_eq!(routed[0].event.tag, "noise");
        assert_eq!(routed[0].event.record["pipeline_component"], "NIFI");
        assert_eq!(
            routed[0].event.record["log"], "",
            "record_modifier renders a missing msg as an empty string"
        );
    }

    #[test]
    fn platform_event_without_message_is_dropped_by_the_rules() {
        let router = reference_router();
        let routed = router.route(event("com.chaoslab.nodered.platform", json!({"level": "INFO"})));
        assert!(routed.is_empty());
        assert_eq!(router.stats().not_rewritten, 1);
    }

    #[test]
    fn application_signals_go_straight_to_the_signal_outputs() {
        let routed = reference_router().route(event(
            "com.chaoslab.nodered.mqtt.app.signal.MissingTimeInformation",
            json!({"message": "payload has no time"}),
        ));
        assert_eq!(
            outputs(&routed),
            [OutputRef::Index("fluentd-20200221".into()), OutputRef::Topic("signals".into())]
        );
        let record = &routed[1].event.record;
        assert_eq!(record["software"], "APPLICATION");
        assert_eq!(record["pipeline_component"], "NODE-RED");
        assert_eq!(record["signal_type"], "LOG");
        assert_eq!(record["tag"], "com.chaoslab.nodered.mqtt.app.signal.MissingTimeInformation");
    }

    #[test]
    fn data_assets_and_hadoop_lines_get_their_fields() {
        let router = reference_router();
        let routed = router.route(event("com.chaoslab.nifi.mqtt.app.dataAsset", json!({"n": 1})));
        let record = &routed[0].event.record;
        assert_eq!(record["asset_state"], "IN_PROCESSING");
        assert_eq!(record["function"], "DATA_LOADING_PREPROCESSING");
        assert_eq!(record["pipeline_component"], "NIFI");

        let routed =
            router.route(event("com.chaoslab.nifi.mqtt.app.error", json!({"message": "PutHDFS failed"})));
        assert_eq!(outputs(&routed), [OutputRef::Index("fluentd-20200221".into())]);
        let record = &routed[0].event.record;
        assert_eq!(record["incident"], "unavailable service");
        assert_eq!(record["effect"], "REDUCTION_OF_QUALITY");
        assert_eq!(record["software"], "APPLICATION");

        let routed = router.route(event(
            "docker.namenode",
            json!({"log": "20/02/21 21:20:02 INFO namenode.FSNamesystem: Roll Edit Log from 172.18.0.5"}),
        ));
        let record = &routed[0].event.record;
        assert_eq!(record["level"], "INFO");
        assert_eq!(record["logger"], "namenode.FSNamesystem");
        assert_eq!(record["message"], "Roll Edit Log from 172.18.0.5");
        assert_eq!(record["pipeline_component"], "HADOOP");
        assert_eq!(record["software"], "PLATFORM");
        assert!(record.contains_key("log"), "reserve_data keeps the original line");

        let routed = router.route(event(
            "com.chaoslab.mqtt.platform",
            json!({"log": "mosquitto version 1.6.5 terminating"}),
        ));
        assert_eq!(routed[0].event.record["message"], "mosquitto version 1.6.5 terminating");
        assert_eq!(routed[0].event.record["pipeline_component"], "MQTT_BROKER");
        assert_eq!(routed[0].event.tag, "com.chaoslab.mqtt.platform", "the MQTT rules are not included");
    }

    #[test]
    fn same_tag_from_the_reference_and_chaoslab_route_alike() {
        let router = reference_router();
        let a = router.route(event("com.rdsea.nifi.platform", json!({"message": NIFI_LOST})));
        let b = router.route(event("com.chaoslab.nifi.platform", json!({"message": NIFI_LOST})));
        assert_eq!(a, b);
        // Alike, and somewhere: the NiFi platform rules tag the line with its component.
        assert!(!a.is_empty(), "the NiFi line is routed to an output");
        assert!(a.iter().all(|r| r.event.record["pipeline_component"] == "NIFI"), "{a:?}");
    }

    #[test]
    fn first_matching_match_wins_and_later_filters_are_skipped() {
        let router = router(
            "<filter a.**>\n @type record_modifier\n <record>\n  one 1\n </record>\n</filter>\n\
             <match a.b>\n @type stdout\n</match>\n\
             <filter a.**>\n @type record_modifier\n <record>\n  two 2\n </record>\n</filter>\n\
             <match a.**>\n @type null\n</match>\n",
        );
        let routed = router.route(event("a.b", json!({})));
        assert_eq!(outputs(&routed), [OutputRef::Stdout]);
        assert_eq!(Value::Object(routed[0].event.record.clone()), json!({"one": "1"}));
        let routed = router.route(event("a.c", json!({})));
        assert_eq!(outputs(&routed), [OutputRef::Null]);
        assert_eq!(Value::Object(routed[0].event.record.clone()), json!({"one": "1", "two": "2"}));
        assert!(router.route(event("z", json!({}))).is_empty());
        assert_eq!(router.stats().unmatched, 1);
        assert_eq!(router.stats().routed, 3);
    }

    #[test]
    fn rewrite_loops_are_stopped() {
        let router = router(
            "<match a>\n @type rewrite_tag_filter\n <rule>\n  key k\n  pattern /./\n  tag b\n </rule>\n</match>\n\
             <match b>\n @type rewrite_tag_filter\n <rule>\n  key k\n  pattern /./\n  tag a\n </rule>\n</match>\n",
        )
        .with_max_reemits(5);
        assert!(router.route(event("a", json!({"k": "x"}))).is_empty());
        assert_eq!(router.stats().loop_dropped, 1);
    }

    #[test]
    fn rewrite_rule_features() {
        let router = router(
            "<match app.**>\n @type rewrite_tag_filter\n remove_tag_prefix app\n capitalize_regex_backreference yes\n\
             \x20<rule>\n  key $.log.level\n  pattern /^(warn|error)$/\n  tag $1.${tag}.${tag_parts[1]}\n </rule>\n\
             \x20<rule>\n  key code\n  pattern /^2\\d\\d$/\n  invert true\n  tag bad.__TAG__\n </rule>\n</match>\n\
             <match **>\n @type stdout\n</match>\n",
        );
        let routed = router.route(event("app.web.x", json!({"log": {"level": "error"}})));
        assert_eq!(routed[0].event.tag, "Error.web.x.x");
        let routed = router.route(event("app.web", json!({"code": 500})));
        assert_eq!(routed[0].event.tag, "bad.web");
        let routed = router.route(event("app.web", json!({})));
        assert_eq!(routed[0].event.tag, "bad.web", "invert applies to a missing key too");
        assert!(router.route(event("app.web", json!({"code": 200}))).is_empty());
    }

    #[test]
    fn rewrite_into_a_label_and_relabel() {
        let router = router(
            "<match a>\n @type rewrite_tag_filter\n @label @L\n <rule>\n  key k\n  pattern /x/\n  tag b\n </rule>\n</match>\n\
             <match c>\n @type relabel\n @label @L\n</match>\n\
             <label @L>\n <match **>\n  @type file\n  path /tmp/l\n </match>\n</label>\n",
        );
        let routed = router.route(event("a", json!({"k": "x"})));
        assert_eq!(outputs(&routed), [OutputRef::File("/tmp/l".into())]);
        assert_eq!(routed[0].event.tag, "b");
        assert_eq!(outputs(&router.route(event("c", json!({})))), [OutputRef::File("/tmp/l".into())]);
        assert_eq!(
            outputs(&router.route_label("@L", event("z", json!({})))),
            [OutputRef::File("/tmp/l".into())]
        );
        assert!(router.route_label("@NOPE", event("z", json!({}))).is_empty());
        assert_eq!(router.stats().unknown_label, 1);
    }

    #[test]
    fn record_transformer_types_and_placeholders() {
        let router = router(
            "<filter a.**>\n @type record_transformer\n <record>\n  n ${record[\"n\"]}\n  s n=${record[\"n\"]}\n\
             \x20 missing ${record[\"nope\"]}\n  last ${tag_parts[-1]}\n  prefix ${tag_prefix[1]}\n  suffix ${tag_suffix[1]}\n\
             \x20 when ${time}\n  list [1, 2]\n </record>\n remove_keys $.drop.me\n</filter>\n\
             <match **>\n @type null\n</match>\n",
        );
        let routed = router.route(event("a.b.c", json!({"n": 5, "drop": {"me": 1, "keep": 2}})));
        assert_eq!(
            Value::Object(routed[0].event.record.clone()),
            json!({"n": 5, "s": "n=5", "missing": null, "last": "c", "prefix": "a.b", "suffix": "b.c",
                   "when": "2020-02-21 21:20:02 +0000", "list": [1, 2], "drop": {"keep": 2}})
        );
    }

    #[test]
    fn record_transformer_renew_record_keeps_listed_keys() {
        let router = router(
            "<filter **>\n @type record_transformer\n renew_record true\n keep_keys a\n <record>\n  t ${tag}\n </record>\n</filter>\n\
             <match **>\n @type null\n</match>\n",
        );
        let routed = router.route(event("x", json!({"a": 1, "b": 2})));
        assert_eq!(Value::Object(routed[0].event.record.clone()), json!({"a": 1, "t": "x"}));
    }

    #[test]
    fn record_modifier_stringifies_and_sees_its_own_changes() {
        let router = router(
            "<filter **>\n @type record_modifier\n <record>\n  a ${record['n']}\n  b <${record['a']}>\n </record>\n\
             \x20whitelist_keys a,b\n</filter>\n<match **>\n @type null\n</match>\n",
        );
        let routed = router.route(event("x", json!({"n": 5, "z": 1})));
        assert_eq!(Value::Object(routed[0].event.record.clone()), json!({"a": "5", "b": "<5>"}));
    }

    #[test]
    fn parser_filter_variants() {
        let config = "<filter r>\n @type parser\n key_name log\n <parse>\n  @type regexp\n  expression /^(?<time>\\d+) (?<msg>.*)$/\n\
                      \x20 time_format %s\n </parse>\n</filter>\n\
                      <filter j>\n @type parser\n key_name log\n reserve_data true\n remove_key_name_field true\n\
                      \x20hash_value_field p\n <parse>\n  @type json\n </parse>\n</filter>\n\
                      <match **>\n @type null\n</match>\n";
        let router = router(config);
        let routed = router.route(event("r", json!({"log": "1582320000 hello", "other": 1})));
        assert_eq!(Value::Object(routed[0].event.record.clone()), json!({"msg": "hello"}));
        assert_eq!(routed[0].event.time, EventTime::new(1_582_320_000, 0));
        assert!(router.route(event("r", json!({"log": "no number"}))).is_empty());
        assert_eq!(router.stats().filtered_out, 1);

        let routed = router.route(event("j", json!({"log": "{\"a\": 1}", "other": 1})));
        assert_eq!(Value::Object(routed[0].event.record.clone()), json!({"other": 1, "p": {"a": 1}}));
        let routed = router.route(event("j", json!({"log": "not json"})));
        assert_eq!(Value::Object(routed[0].event.record.clone()), json!({"log": "not json"}));
    }

    #[test]
    fn outputs_and_injection() {
        let router = router(
            "<match k>\n @type kafka2\n topic_key t\n <inject>\n  time_key ts\n  tag_key tg\n </inject>\n</match>\n\
             <match e>\n @type elasticsearch\n index_name logs\n include_tag_key true\n include_timestamp true\n time_precision 3\n</match>\n\
             <match u>\n @type stdout\n <inject>\n  time_key ts\n  time_type unixtime\n </inject>\n</match>\n",
        );
        let routed = router.route(event("k", json!({})));
        assert_eq!(
            outputs(&routed),
            [OutputRef::Topic("k".into())],
            "without default_topic the tag is the topic"
        );
        assert_eq!(routed[0].event.record["ts"], json!(1_582_320_002.991));
        assert_eq!(routed[0].event.record["tg"], "k");
        let routed = router.route(event("k", json!({"t": "other"})));
        assert_eq!(outputs(&routed), [OutputRef::Topic("other".into())]);
        let routed = router.route(event("e", json!({})));
        assert_eq!(outputs(&routed), [OutputRef::Index("logs".into())]);
        assert_eq!(routed[0].event.record["@timestamp"], "2020-02-21T21:20:02.991+00:00");
        assert_eq!(routed[0].event.record["tag"], "e");
        let routed = router.route(event("u", json!({})));
        assert_eq!(routed[0].event.record["ts"], json!(1_582_320_002));
    }
}
