//! The meaning of a Fluentd configuration: `<source>`, `<filter>`, `<match>` and `<label>` built into
//! the typed values of the parent module, refusing plugins and parameters chaoslab does not implement and
//! noting parameters nothing reads.

use std::collections::BTreeMap;

use serde_json::Value;

use super::placeholders::{PlaceholderMode, parse_template};
use super::regex::ruby_regex;
use super::syntax::{Body, Element, Param};
use super::{
    Config, DEFAULT_FORWARD_PORT, DEFAULT_HTTP_PORT, Directive, DirectiveKind, ElasticsearchOutput, Fault,
    Filter, ForwardSource, HttpSource, Inject, InjectTime, KafkaOutput, KeyPath, Origin, Output, ParseFormat,
    ParseTime, ParserFilter, Problems, RecordEdit, RecordFlavour, RecordValue, RewriteRule, RewriteTagFilter,
    Source, TagPattern,
};

/// Reads one element's parameters and children, remembering which were used.
struct Section<'a> {
    element: &'a Element,
    used_params: Vec<bool>,
    used_children: Vec<bool>,
}

impl<'a> Section<'a> {
    fn new(element: &'a Element) -> Self {
        let mut section = Self {
            element,
            used_params: vec![false; element.body.params.len()],
            used_children: vec![false; element.body.elements.len()],
        };
        section.ignore(&["@type", "type", "@id", "@log_level"]);
        section
    }

    fn directive(&self) -> String {
        self.element.title()
    }

    fn invalid(&self, origin: &Origin, reason: impl Into<String>) -> Fault {
        Fault::Invalid { origin: origin.clone(), directive: self.directive(), reason: reason.into() }
    }

    fn unsupported(&self, origin: &Origin, what: impl Into<String>, reason: impl Into<String>) -> Fault {
        Fault::Unsupported {
            origin: origin.clone(),
            directive: self.directive(),
            what: what.into(),
            reason: reason.into(),
        }
    }

    fn param(&mut self, key: &str) -> Option<&'a Param> {
        let mut found = None;
        for (index, param) in self.element.body.params.iter().enumerate() {
            if param.key == key {
                self.used_params[index] = true;
                found = Some(param);
            }
        }
        found
    }

    fn string(&mut self, key: &str) -> Option<String> {
        self.param(key).map(|p| p.value.clone())
    }

    fn required(&mut self, key: &str) -> Result<&'a Param, Fault> {
        match self.param(key) {
            Some(param) => Ok(param),
            None => Err(self.invalid(&self.element.origin, format!("parameter `{key}` is required"))),
        }
    }

    fn bool(&mut self, key: &str, default: bool) -> Result<bool, Fault> {
        let Some(param) = self.param(key) else { return Ok(default) };
        match param.value.as_str() {
            "true" | "yes" | "" => Ok(true),
            "false" | "no" => Ok(false),
            other => {
                Err(self.invalid(&param.origin, format!("`{key}` must be true or false, not {other:?}")))
            }
        }
    }

    fn port(&mut self, key: &str, default: u16) -> Result<u16, Fault> {
        let Some(param) = self.param(key) else { return Ok(default) };
        param.value.parse::<u16>().map_err(|_| {
            self.invalid(&param.origin, format!("`{key}` must be a port number, not {:?}", param.value))
        })
    }

    fn list(&mut self, key: &str) -> Option<Vec<String>> {
        self.param(key).map(|p| split_list(&p.value))
    }

    fn plugin_type(&mut self) -> Result<String, Fault> {
        let found = match self.param("@type") {
            Some(param) => Some(param),
            None => self.param("type"),
        };
        match found {
            Some(param) => Ok(param.value.clone()),
            None => Err(self.invalid(&self.element.origin, "parameter `@type` is required")),
        }
    }

    fn ignore(&mut self, keys: &[&str]) {
        for key in keys {
            self.param(key);
        }
    }

    fn children(&mut self, name: &str) -> Vec<&'a Element> {
        let mut found = Vec::new();
        for (index, element) in self.element.body.elements.iter().enumerate() {
            if element.name == name {
                self.used_children[index] = true;
                found.push(element);
            }
        }
        found
    }

    fn child(&mut self, name: &str) -> Result<Option<&'a Element>, Fault> {
        let mut found = self.children(name);
        if found.len() > 1 {
            let second = found.remove(1);
            return Err(self.invalid(&second.origin, format!("only one <{name}> section is allowed")));
        }
        Ok(found.pop())
    }

    fn ignore_children(&mut self, names: &[&str]) {
        for name in names {
            self.children(name);
        }
    }

    /// Notes every parameter and section that nothing read.
    fn finish(self, notes: &mut Vec<String>) {
        for (param, used) in self.element.body.params.iter().zip(&self.used_params) {
            if !*used {
                note(
                    notes,
                    format!(
                        "{}: parameter `{}` in <{}> is not used",
                        param.origin,
                        param.key,
                        self.directive()
                    ),
                );
            }
        }
        for (child, used) in self.element.body.elements.iter().zip(&self.used_children) {
            if !*used {
                note(
                    notes,
                    format!(
                        "{}: section <{}> in <{}> is not used",
                        child.origin,
                        child.title(),
                        self.directive()
                    ),
                );
            }
        }
    }
}

fn note(notes: &mut Vec<String>, text: String) {
    tracing::warn!(target: "chaoslab::logs::config", "{text}");
    notes.push(text);
}

fn split_list(value: &str) -> Vec<String> {
    if value.starts_with('[')
        && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(value)
    {
        return items
            .into_iter()
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            .collect();
    }
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// Builds directives, noting what is ignored.
#[derive(Default)]
struct Builder {
    notes: Vec<String>,
}

/// Where a directive lives, for the label references it may hold.
struct LabelRef {
    label: String,
    origin: Origin,
    directive: String,
}

/// Gives the syntax tree its meaning. Each directive is built on its own: a broken one is recorded in
/// `problems` and the others are still checked.
pub(super) fn build(body: Body, problems: &mut Problems) -> Config {
    let mut builder = Builder::default();
    for param in &body.params {
        note(
            &mut builder.notes,
            format!("{}: top-level parameter `{}` is not used", param.origin, param.key),
        );
    }
    let mut sources = Vec::new();
    let mut root = Vec::new();
    let mut labels = BTreeMap::new();
    let mut refs = Vec::new();
    for element in &body.elements {
        let result = match element.name.as_str() {
            "source" => builder.source(element, &mut refs).map(|s| sources.push(s)).map_err(|f| vec![f]),
            "filter" => builder.filter(element).map(|d| root.push(d)).map_err(|f| vec![f]),
            "match" => builder.match_directive(element, &mut refs).map(|d| root.push(d)).map_err(|f| vec![f]),
            "label" => {
                let name = element.arg.trim();
                if !name.starts_with('@') || name.len() < 2 || name.contains(char::is_whitespace) {
                    Err(vec![Fault::Invalid {
                        origin: element.origin.clone(),
                        directive: element.title(),
                        reason: "a label name must be one word starting with '@'".to_string(),
                    }])
                } else if labels.contains_key(name) {
                    Err(vec![Fault::Invalid {
                        origin: element.origin.clone(),
                        directive: element.title(),
                        reason: format!("label {name} is defined twice"),
                    }])
                } else {
                    let (directives, broken) = builder.label(element, &mut refs);
                    labels.insert(name.to_string(), directives);
                    if broken.is_empty() { Ok(()) } else { Err(broken) }
                }
            }
            "system" => {
                note(&mut builder.notes, format!("{}: <system> is ignored", element.origin));
                Ok(())
            }
            "worker" => Err(vec![Fault::Unsupported {
                origin: element.origin.clone(),
                directive: element.title(),
                what: "<worker>".to_string(),
                reason: "chaoslab runs a single routing worker".to_string(),
            }]),
            other => Err(vec![Fault::Syntax {
                origin: element.origin.clone(),
                reason: format!("unknown top-level directive <{other}>"),
            }]),
        };
        if let Err(broken) = result {
            broken.into_iter().for_each(|f| problems.push(f.into()));
        }
    }
    for reference in refs {
        // `@FLUENT_LOG` and `@ERROR` are built-in destinations in Fluentd; only they may be absent.
        if !labels.contains_key(&reference.label) && reference.label != "@ERROR" {
            problems.push(
                Fault::Invalid {
                    origin: reference.origin,
                    directive: reference.directive,
                    reason: format!("label {} is not defined", reference.label),
                }
                .into(),
            );
        }
    }
    Config { sources, root, labels, notes: builder.notes }
}

impl Builder {
    /// The directives of a `<label>`, and the problems of those that are broken.
    fn label(&mut self, element: &Element, refs: &mut Vec<LabelRef>) -> (Vec<Directive>, Vec<Fault>) {
        let mut directives = Vec::new();
        let mut problems = Vec::new();
        for param in &element.body.params {
            note(
                &mut self.notes,
                format!("{}: parameter `{}` in <{}> is not used", param.origin, param.key, element.title()),
            );
        }
        for child in &element.body.elements {
            let result = match child.name.as_str() {
                "filter" => self.filter(child),
                "match" => self.match_directive(child, refs),
                other => Err(Fault::Syntax {
                    origin: child.origin.clone(),
                    reason: format!("<{other}> is not allowed inside <{}>", element.title()),
                }),
            };
            match result {
                Ok(directive) => directives.push(directive),
                Err(fault) => problems.push(fault),
            }
        }
        (directives, problems)
    }

    fn source(&mut self, element: &Element, refs: &mut Vec<LabelRef>) -> Result<Source, Fault> {
        let mut section = Section::new(element);
        let plugin = section.plugin_type()?;
        let label = section.string("@label");
        if let Some(label) = &label {
            refs.push(LabelRef {
                label: label.clone(),
                origin: element.origin.clone(),
                directive: element.title(),
            });
        }
        let bind = section.string("bind").unwrap_or_else(|| "0.0.0.0".to_string());
        let source = match plugin.as_str() {
            "forward" => {
                let port = section.port("port", DEFAULT_FORWARD_PORT)?;
                section.ignore(&[
                    "linger_timeout",
                    "chunk_size_warn_limit",
                    "chunk_size_limit",
                    "skip_invalid_event",
                ]);
                Source::Forward(ForwardSource { bind, port, label, origin: element.origin.clone() })
            }
            "http" => {
                let port = section.port("port", DEFAULT_HTTP_PORT)?;
                section.ignore(&[
                    "cors_allow_origins",
                    "body_size_limit",
                    "keepalive_timeout",
                    "add_http_headers",
                ]);
                let mut time_key = "time".to_string();
                let mut keep_time_key = false;
                let mut time_format = None;
                if let Some(parse) = section.child("parse")? {
                    let mut parse_section = Section::new(parse);
                    let parser = parse_section.plugin_type()?;
                    if parser != "json" && parser != "in_http" {
                        return Err(parse_section.unsupported(
                            &parse.origin,
                            format!("<parse> @type {parser}"),
                            "the HTTP source accepts JSON (and msgpack) bodies only",
                        ));
                    }
                    if let Some(key) = parse_section.string("time_key") {
                        time_key = key;
                    }
                    keep_time_key = parse_section.bool("keep_time_key", false)?;
                    time_format = parse_section.string("time_format");
                    if let Some(time_type) = parse_section.param("time_type")
                        && !matches!(time_type.value.as_str(), "string" | "float" | "unixtime")
                    {
                        return Err(parse_section
                            .invalid(&time_type.origin, "time_type must be string, float or unixtime"));
                    }
                    parse_section.finish(&mut self.notes);
                }
                Source::Http(HttpSource {
                    bind,
                    port,
                    label,
                    time_key,
                    keep_time_key,
                    time_format,
                    origin: element.origin.clone(),
                })
            }
            other => {
                return Err(section.unsupported(
                    &element.origin,
                    format!("@type {other}"),
                    "only the forward and http sources are implemented",
                ));
            }
        };
        section.ignore_children(&["transport", "security"]);
        section.finish(&mut self.notes);
        Ok(source)
    }

    fn pattern(&self, element: &Element) -> Result<TagPattern, Fault> {
        let text = if element.arg.trim().is_empty() { "**" } else { element.arg.as_str() };
        TagPattern::parse(text).map_err(|e| Fault::Invalid {
            origin: element.origin.clone(),
            directive: element.title(),
            reason: e.to_string(),
        })
    }

    fn filter(&mut self, element: &Element) -> Result<Directive, Fault> {
        let pattern = self.pattern(element)?;
        let mut section = Section::new(element);
        let plugin = section.plugin_type()?;
        let filter = match plugin.as_str() {
            "record_modifier" => Filter::Record(self.record_modifier(&mut section)?),
            "record_transformer" => Filter::Record(self.record_transformer(&mut section)?),
            "parser" => Filter::Parser(self.parser_filter(&mut section)?),
            "concat" => {
                note(
                    &mut self.notes,
                    format!(
                        "{}: filter concat on <{}> accepted as a no-op (multi-line joining is not implemented)",
                        element.origin,
                        element.title()
                    ),
                );
                for index in 0..section.used_params.len() {
                    section.used_params[index] = true;
                }
                section.ignore_children(&["buffer"]);
                Filter::Concat
            }
            other => {
                return Err(section.unsupported(
                    &element.origin,
                    format!("filter @type {other}"),
                    "implemented filters are record_modifier, record_transformer, parser and concat (no-op)",
                ));
            }
        };
        section.finish(&mut self.notes);
        Ok(Directive { pattern, kind: DirectiveKind::Filter(filter), origin: element.origin.clone() })
    }

    fn record_entries(
        &mut self,
        section: &mut Section<'_>,
        mode: PlaceholderMode,
        json_values: bool,
    ) -> Result<Vec<(String, RecordValue)>, Fault> {
        let mut set: Vec<(String, RecordValue)> = Vec::new();
        for record in section.children("record") {
            if let Some(element) = record.body.elements.first() {
                return Err(Fault::Syntax {
                    origin: element.origin.clone(),
                    reason: format!("<{}> is not allowed inside <record>", element.name),
                });
            }
            for param in &record.body.params {
                let value = if json_values
                    && param.value.starts_with(['{', '['])
                    && let Ok(json) = serde_json::from_str::<Value>(&param.value)
                {
                    if param.value.contains("${") {
                        return Err(section.unsupported(
                            &param.origin,
                            format!("placeholders inside the JSON value of `{}`", param.key),
                            "write the placeholder as a plain string value",
                        ));
                    }
                    RecordValue::Json(json)
                } else {
                    RecordValue::Template(parse_template(&param.value, mode).map_err(|reason| {
                        section.unsupported(&param.origin, format!("`{}`", param.value), reason)
                    })?)
                };
                match set.iter_mut().find(|(key, _)| *key == param.key) {
                    Some(entry) => entry.1 = value,
                    None => set.push((param.key.clone(), value)),
                }
            }
        }
        Ok(set)
    }

    fn record_modifier(&mut self, section: &mut Section<'_>) -> Result<RecordEdit, Fault> {
        let set = self.record_entries(section, PlaceholderMode::Ruby, false)?;
        let remove_keys =
            section.list("remove_keys").unwrap_or_default().iter().map(|k| KeyPath::top(k)).collect();
        let keep_keys = section.list("whitelist_keys").or_else(|| section.list("keep_keys"));
        for unsupported in ["prepare_value", "char_encoding"] {
            if let Some(param) = section.param(unsupported) {
                return Err(section.unsupported(
                    &param.origin,
                    format!("`{unsupported}`"),
                    "it needs Ruby evaluation or re-encoding",
                ));
            }
        }
        if let Some(replace) = section.children("replace").first() {
            return Err(section.unsupported(
                &replace.origin,
                "<replace>",
                "only <record> and remove_keys are implemented",
            ));
        }
        Ok(RecordEdit { flavour: RecordFlavour::Modifier, set, remove_keys, keep_keys, renew_record: false })
    }

    fn record_transformer(&mut self, section: &mut Section<'_>) -> Result<RecordEdit, Fault> {
        let enable_ruby = section.bool("enable_ruby", false)?;
        let typecast = section.bool("auto_typecast", true)?;
        let renew_record = section.bool("renew_record", false)?;
        let mode = if enable_ruby { PlaceholderMode::Ruby } else { PlaceholderMode::Plain };
        let set = self.record_entries(section, mode, true)?;
        let mut remove_keys = Vec::new();
        if let Some(param) = section.param("remove_keys") {
            for key in split_list(&param.value) {
                remove_keys
                    .push(KeyPath::parse(&key).map_err(|reason| section.invalid(&param.origin, reason))?);
            }
        }
        let keep_keys = section.list("keep_keys");
        if keep_keys.is_some() && !renew_record {
            return Err(
                section.invalid(&section.element.origin, "`renew_record` must be true to use `keep_keys`")
            );
        }
        if let Some(param) = section.param("renew_time_key") {
            return Err(section.unsupported(
                &param.origin,
                "`renew_time_key`",
                "event times are owned by the producer",
            ));
        }
        Ok(RecordEdit {
            flavour: RecordFlavour::Transformer { typecast },
            set,
            remove_keys,
            keep_keys,
            renew_record,
        })
    }

    fn parser_filter(&mut self, section: &mut Section<'_>) -> Result<ParserFilter, Fault> {
        let key_param = section.required("key_name")?;
        let key_name =
            KeyPath::parse(&key_param.value).map_err(|reason| section.invalid(&key_param.origin, reason))?;
        let reserve_data = section.bool("reserve_data", false)?;
        let reserve_time = section.bool("reserve_time", false)?;
        let remove_key_name_field = section.bool("remove_key_name_field", false)?;
        let inject_key_prefix = section.string("inject_key_prefix");
        let hash_value_field = section.string("hash_value_field");
        section.ignore(&["emit_invalid_record_to_error", "replace_invalid_sequence"]);
        let format = match section.child("parse")? {
            Some(parse) => {
                let mut parse_section = Section::new(parse);
                let parser = parse_section.plugin_type()?;
                let format = self.parse_format(&mut parse_section, &parser, "expression")?;
                parse_section.finish(&mut self.notes);
                format
            }
            None => match section.string("format") {
                // The pre-v1 style `format /regex/` directly in the filter.
                Some(_) => self.parse_format(section, "regexp", "format")?,
                None => return Err(section.invalid(&section.element.origin, "a <parse> section is required")),
            },
        };
        Ok(ParserFilter {
            key_name,
            reserve_data,
            reserve_time,
            remove_key_name_field,
            inject_key_prefix,
            hash_value_field,
            format,
        })
    }

    fn parse_format(
        &mut self,
        section: &mut Section<'_>,
        parser: &str,
        expression_key: &str,
    ) -> Result<ParseFormat, Fault> {
        let time = ParseTime {
            key: section.string("time_key").unwrap_or_else(|| "time".to_string()),
            format: section.string("time_format"),
            keep: section.bool("keep_time_key", false)?,
        };
        section.ignore(&["time_type", "localtime", "utc", "null_empty_string", "estimate_current_event"]);
        if let Some(types) = section.param("types") {
            return Err(section.unsupported(&types.origin, "`types`", "parsed values are kept as strings"));
        }
        match parser {
            "regexp" => {
                let param = section.required(expression_key)?;
                let regex =
                    ruby_regex(&param.value).map_err(|reason| section.invalid(&param.origin, reason))?;
                Ok(ParseFormat::Regexp { regex, time })
            }
            "json" => Ok(ParseFormat::Json { time }),
            other => Err(section.unsupported(
                &section.element.origin,
                format!("<parse> @type {other}"),
                "the parser filter implements regexp and json",
            )),
        }
    }

    fn match_directive(&mut self, element: &Element, refs: &mut Vec<LabelRef>) -> Result<Directive, Fault> {
        let pattern = self.pattern(element)?;
        let output = self.output(element, refs)?;
        Ok(Directive { pattern, kind: DirectiveKind::Match(output), origin: element.origin.clone() })
    }

    fn output(&mut self, element: &Element, refs: &mut Vec<LabelRef>) -> Result<Output, Fault> {
        let mut section = Section::new(element);
        let plugin = section.plugin_type()?;
        let label = section.string("@label");
        if let Some(label) = &label {
            refs.push(LabelRef {
                label: label.clone(),
                origin: element.origin.clone(),
                directive: element.title(),
            });
        }
        let output = match plugin.as_str() {
            "rewrite_tag_filter" => Output::RewriteTag(self.rewrite_tag_filter(&mut section, label)?),
            "copy" => {
                section.ignore(&["copy_mode", "deep_copy"]);
                let mut stores = Vec::new();
                for store in section.children("store") {
                    stores.push(self.output(store, refs)?);
                }
                if stores.is_empty() {
                    return Err(section.invalid(&element.origin, "copy needs at least one <store>"));
                }
                Output::Copy(stores)
            }
            "kafka2" => {
                let default_topic = section.string("default_topic");
                let topic_key = section.string("topic_key").unwrap_or_else(|| "topic".to_string());
                section.ignore(&[
                    "brokers",
                    "use_event_time",
                    "default_message_key",
                    "default_partition_key",
                    "required_acks",
                    "compression_codec",
                    "ack_timeout",
                    "max_send_retries",
                    "exclude_topic_key",
                ]);
                self.json_format(&mut section)?;
                let inject = self.inject(&mut section)?;
                section.ignore_children(&["buffer"]);
                Output::Kafka(KafkaOutput { default_topic, topic_key, inject })
            }
            "elasticsearch" => {
                let output = ElasticsearchOutput {
                    index_name: section.string("index_name").unwrap_or_else(|| "fluentd".to_string()),
                    logstash_format: section.bool("logstash_format", false)?,
                    logstash_prefix: section
                        .string("logstash_prefix")
                        .unwrap_or_else(|| "logstash".to_string()),
                    logstash_prefix_separator: section
                        .string("logstash_prefix_separator")
                        .unwrap_or_else(|| "-".to_string()),
                    logstash_dateformat: section
                        .string("logstash_dateformat")
                        .unwrap_or_else(|| "%Y.%m.%d".to_string()),
                    include_tag_key: section.bool("include_tag_key", false)?,
                    tag_key: section.string("tag_key").unwrap_or_else(|| "tag".to_string()),
                    include_timestamp: section.bool("include_timestamp", false)?,
                    time_precision: match section.param("time_precision") {
                        None => 9,
                        Some(p) => p
                            .value
                            .parse::<u8>()
                            .ok()
                            .filter(|d| *d <= 9)
                            .ok_or_else(|| section.invalid(&p.origin, "time_precision must be 0..=9"))?,
                    },
                    inject: self.inject(&mut section)?,
                };
                section.ignore(&[
                    "host",
                    "port",
                    "hosts",
                    "scheme",
                    "user",
                    "password",
                    "type_name",
                    "default_elasticsearch_version",
                    "utc_index",
                    "flush_interval",
                    "reconnect_on_error",
                    "reload_on_failure",
                    "reload_connections",
                    "request_timeout",
                    "suppress_type_name",
                    "verify_es_version_at_startup",
                ]);
                section.ignore_children(&["buffer"]);
                Output::Elasticsearch(output)
            }
            "stdout" => {
                section.ignore_children(&["format", "buffer"]);
                section.ignore(&["output_type"]);
                Output::Stdout(self.inject(&mut section)?)
            }
            "file" => {
                let path = section.required("path")?.value.clone();
                section.ignore(&["append", "compress", "symlink_path", "add_path_suffix", "path_suffix"]);
                section.ignore_children(&["buffer"]);
                self.json_format(&mut section)?;
                Output::File { path, inject: self.inject(&mut section)? }
            }
            "null" => {
                section.ignore_children(&["buffer"]);
                Output::Null
            }
            "relabel" => match label.clone() {
                Some(label) => Output::Relabel(label),
                None => return Err(section.invalid(&element.origin, "relabel needs `@label`")),
            },
            other => {
                return Err(section.unsupported(
                    &element.origin,
                    format!("output @type {other}"),
                    "implemented outputs are rewrite_tag_filter, copy, kafka2, elasticsearch, stdout, file, \
                     null and relabel",
                ));
            }
        };
        section.finish(&mut self.notes);
        Ok(output)
    }

    fn json_format(&mut self, section: &mut Section<'_>) -> Result<(), Fault> {
        if let Some(format) = section.child("format")? {
            let mut format_section = Section::new(format);
            let kind = format_section.plugin_type()?;
            if kind != "json" {
                note(
                    &mut self.notes,
                    format!(
                        "{}: <format> @type {kind} ignored; records are handed on as JSON objects",
                        format.origin
                    ),
                );
            }
            format_section.ignore(&["add_newline"]);
            format_section.finish(&mut self.notes);
        }
        Ok(())
    }

    fn inject(&mut self, section: &mut Section<'_>) -> Result<Inject, Fault> {
        let Some(element) = section.child("inject")? else { return Ok(Inject::default()) };
        let mut inject = Section::new(element);
        let time_type = inject.string("time_type").unwrap_or_else(|| "float".to_string());
        let time_format = inject.string("time_format");
        let time = match inject.string("time_key") {
            None => None,
            Some(key) => Some((
                key,
                match time_type.as_str() {
                    "float" => InjectTime::Float,
                    "unixtime" => InjectTime::Unixtime,
                    "string" => {
                        InjectTime::String(time_format.unwrap_or_else(|| "%Y-%m-%dT%H:%M:%S%z".to_string()))
                    }
                    other => {
                        return Err(inject.invalid(
                            &element.origin,
                            format!("time_type must be float, unixtime or string, not {other:?}"),
                        ));
                    }
                },
            )),
        };
        let tag_key = inject.string("tag_key");
        let localtime = inject.bool("localtime", true)?;
        let utc = inject.bool("utc", false)?;
        if localtime && !utc {
            note(
                &mut self.notes,
                format!(
                    "{}: <inject> uses local time in Fluentd; chaoslab always renders UTC",
                    element.origin
                ),
            );
        }
        inject.ignore(&["timezone"]);
        if let Some(param) = inject.param("hostname_key") {
            return Err(inject.unsupported(
                &param.origin,
                "`hostname_key`",
                "chaoslab has no host name to inject",
            ));
        }
        inject.finish(&mut self.notes);
        Ok(Inject { time, tag_key })
    }

    fn rewrite_tag_filter(
        &mut self,
        section: &mut Section<'_>,
        label: Option<String>,
    ) -> Result<RewriteTagFilter, Fault> {
        let remove_tag_prefix = section.string("remove_tag_prefix");
        let capitalize_backreferences = section.bool("capitalize_regex_backreference", false)?;
        if let Some(param) = section.param("hostname_command") {
            return Err(section.unsupported(
                &param.origin,
                "`hostname_command`",
                "chaoslab has no host name",
            ));
        }
        if let Some(param) = section.element.body.params.iter().find(|p| p.key.starts_with("rewriterule")) {
            return Err(section.invalid(
                &param.origin,
                "\"rewriterule<num>\" support has been dropped. Use <rule> section instead.",
            ));
        }
        let mut rules = Vec::new();
        let mut seen = Vec::new();
        for rule in section.children("rule") {
            let mut rule_section = Section::new(rule);
            let key_param = rule_section.required("key")?;
            let key = KeyPath::parse(&key_param.value)
                .map_err(|reason| rule_section.invalid(&key_param.origin, reason))?;
            let pattern_param = rule_section.required("pattern")?;
            let pattern = ruby_regex(&pattern_param.value)
                .map_err(|reason| rule_section.invalid(&pattern_param.origin, reason))?;
            let tag_param = rule_section.required("tag")?;
            let tag = tag_param.value.clone();
            if tag.contains("${hostname}") || tag.contains("__HOSTNAME__") {
                return Err(rule_section.unsupported(
                    &tag_param.origin,
                    "the hostname placeholder",
                    "chaoslab has no host name",
                ));
            }
            if tag.is_empty() {
                return Err(rule_section.invalid(&tag_param.origin, "`tag` must not be empty"));
            }
            let invert = rule_section.bool("invert", false)?;
            let identity =
                format!("{}{}{}", key_param.value, if invert { "!" } else { "" }, pattern_param.value);
            if seen.contains(&identity) {
                return Err(rule_section.invalid(&rule.origin, "duplicated rewrite rule"));
            }
            seen.push(identity);
            rule_section.finish(&mut self.notes);
            rules.push(RewriteRule { key, pattern, tag, invert, origin: rule.origin.clone() });
        }
        if rules.is_empty() {
            return Err(
                section.invalid(&section.element.origin, "missing rewrite rules: add at least one <rule>")
            );
        }
        Ok(RewriteTagFilter { rules, remove_tag_prefix, capitalize_backreferences, label })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::logs::config::ConfigError;
    use std::io::Write;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_str(text, Path::new("/virtual/fluent.conf"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn sources_are_read_with_defaults_and_parse_settings() {
        let config = parse(
            "<source>\n  @type forward\n  port 24225\n</source>\n<source>\n  @type http\n  bind 127.0.0.1\n\
             \x20 cors_allow_origins [\"*\"]\n  <parse>\n    @type json\n    time_key time\n    keep_time_key true\n\
             \x20   time_type string\n    time_format %Y-%m-%dT%H:%M:%S.%NZ\n  </parse>\n</source>\n",
        )
        .unwrap();
        let forward = config.forward_source().unwrap();
        assert_eq!((forward.bind.as_str(), forward.port), ("0.0.0.0", 24225));
        let http = config.http_source().unwrap();
        assert_eq!((http.bind.as_str(), http.port), ("127.0.0.1", DEFAULT_HTTP_PORT));
        assert_eq!(http.time_key, "time");
        assert!(http.keep_time_key);
        assert_eq!(http.time_format.as_deref(), Some("%Y-%m-%dT%H:%M:%S.%NZ"));
        assert!(config.notes.is_empty(), "{:?}", config.notes);
    }

    #[test]
    fn comments_quotes_and_values() {
        let config = parse(
            "# leading comment\n<match a.**>   # trailing comment\n  @type file\n  path /tmp/a#b # comment\n\
             \x20 <inject>\n    tag_key \"log name\\t\"\n    time_key 'it''s'\n  </inject>\n</match>\n",
        );
        // `'it''s'` is two adjacent single-quoted strings, which Fluentd rejects as text after a value.
        assert!(config.unwrap_err().to_string().contains("fluent.conf:7"));
        let config = parse(
            "<match a.**>\n  @type file\n  path /tmp/a#b # comment\n  <inject>\n    tag_key \"log name\\t\"\n\
             \x20   time_key 'it\\'s'\n    time_type string\n    time_format %s\n    localtime false\n  </inject>\n</match>\n",
        )
        .unwrap();
        let DirectiveKind::Match(Output::File { path, inject }) = &config.root[0].kind else { panic!() };
        assert_eq!(path, "/tmp/a#b");
        assert_eq!(inject.tag_key.as_deref(), Some("log name\t"));
        assert_eq!(inject.time, Some(("it's".to_string(), InjectTime::String("%s".to_string()))));
        assert!(config.notes.is_empty(), "{:?}", config.notes);
    }

    #[test]
    fn multi_line_json_values() {
        let config = parse(
            "<filter x>\n  @type record_transformer\n  <record>\n    list [1, # one\n      \"a]#\"]\n    plain v\n  </record>\n\
             </filter>\n",
        )
        .unwrap();
        let DirectiveKind::Filter(Filter::Record(edit)) = &config.root[0].kind else { panic!() };
        assert_eq!(edit.set[0], ("list".to_string(), RecordValue::Json(serde_json::json!([1, "a]#"]))));
        assert_eq!(edit.set[1].0, "plain");
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        assert_eq!(
            err("<match a>\n  @type null\n</filter>\n"),
            "/virtual/fluent.conf:3: syntax error: found </filter> while <match> is open"
        );
        assert!(err("<match a>\n  @type null\n").contains(":3: syntax error: end of file inside <match>"));
        assert!(err("<match a\n").contains(":1: syntax error: expected '>'"));
        assert!(
            err("<match a>\n  @type \"null\" x\n</match>\n").contains(":2: syntax error: unexpected 'x'")
        );
        assert!(
            err("<match a>\n @type null\n tag \"abc\n</match>\n").contains(":3: syntax error: unterminated")
        );
        assert!(err("<match a>\n @type null\n x \"#{ENV['A']}\"\n</match>\n").contains("embedded Ruby"));
        assert!(err("<match a>\n @type null\n x \"\\q\"\n</match>\n").contains("back-slash escape"));
        assert!(err("</match>\n").contains("without a matching"));
        assert!(err("<bogus>\n</bogus>\n").contains("unknown top-level directive <bogus>"));
    }

    #[test]
    fn unsupported_plugins_are_refused_with_reason() {
        let e = err("<match a>\n  @type loki\n</match>\n");
        assert!(e.contains("fluent.conf:1: <match a>: output @type loki is not supported"), "{e}");
        assert!(e.contains("implemented outputs are"), "{e}");
        let e = err("<source>\n  @type tail\n</source>\n");
        assert!(e.contains("@type tail is not supported"), "{e}");
        let e = err("<filter a>\n  @type grep\n</filter>\n");
        assert!(e.contains("filter @type grep is not supported"), "{e}");
        let e = err("<match a>\n  @type kafka_buffered\n</match>\n");
        assert!(e.contains("kafka_buffered"), "{e}");
        let e = err(
            "<filter a>\n  @type record_modifier\n  <record>\n    x ${Time.now}\n  </record>\n</filter>\n",
        );
        assert!(e.contains(":4:") && e.contains("unsupported placeholder"), "{e}");
        let e = err(
            "<filter a>\n  @type record_transformer\n  <record>\n    x ${record['k']}\n  </record>\n</filter>\n",
        );
        assert!(e.contains("without enable_ruby"), "{e}");
    }

    #[test]
    fn invalid_parameters_are_reported() {
        assert!(err("<match a>\n  @type rewrite_tag_filter\n</match>\n").contains("missing rewrite rules"));
        assert!(err("<match a>\n  @type file\n</match>\n").contains("parameter `path` is required"));
        assert!(
            err("<match a>\n @type relabel\n @label @NOPE\n</match>\n")
                .contains("label @NOPE is not defined")
        );
        let e = err(
            "<match a>\n  @type rewrite_tag_filter\n  <rule>\n    key k\n    pattern /(?<=x)y/\n    tag t\n  </rule>\n</match>\n",
        );
        assert!(e.contains(":5:") && e.contains("invalid regular expression"), "{e}");
        assert!(err("<match {a,b>\n @type null\n</match>\n").contains("unclosed"));
        assert!(err("<source>\n @type http\n port 99999\n</source>\n").contains("port number"));
        assert!(err("<label FOO>\n</label>\n").contains("starting with '@'"));
    }

    #[test]
    fn unused_parameters_become_notes() {
        let config = parse("<match a>\n  @type null\n  colour blue\n</match>\n<filter docker.**>\n  @type concat\n  key log\n</filter>\n").unwrap();
        assert_eq!(config.notes.len(), 2, "{:?}", config.notes);
        assert!(config.notes[0].contains("fluent.conf:3: parameter `colour` in <match a> is not used"));
        assert!(config.notes[1].contains("filter concat on <filter docker.**> accepted as a no-op"));
    }

    #[test]
    fn empty_pattern_means_everything_and_labels_are_kept_apart() {
        let config = parse("<label @FLUENT_LOG>\n  <match fluent.*>\n    @type stdout\n  </match>\n</label>\n<match>\n  @type null\n</match>\n").unwrap();
        assert!(config.root[0].pattern.matches("anything"));
        assert_eq!(config.labels.len(), 1);
        assert!(config.labels["@FLUENT_LOG"][0].pattern.matches("fluent.info"));
    }

    #[test]
    fn includes_resolve_relative_to_the_including_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        let write = |name: &str, text: &str| {
            let mut f = std::fs::File::create(dir.path().join(name)).unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        write(
            "main.conf",
            "@include conf.d/rules.conf\n<match **>\n  @type copy\n  @include conf.d/store.conf\n</match>\n",
        );
        write("conf.d/rules.conf", "@include b*.conf\n<match a>\n  @type null\n</match>\n");
        write("conf.d/b1.conf", "<match b1>\n  @type null\n</match>\n");
        write("conf.d/b2.conf", "<match b2>\n  @type null\n</match>\n");
        write("conf.d/store.conf", "<store>\n  @type stdout\n</store>\n");
        let config = Config::load(&dir.path().join("main.conf")).unwrap();
        let patterns: Vec<&str> = config.root.iter().map(|d| d.pattern.as_str()).collect();
        assert_eq!(patterns, ["b1", "b2", "a", "**"]);
        assert!(config.root[2].origin.file.ends_with("conf.d/rules.conf"));
        assert_eq!(config.root[2].origin.line, 2);
        let DirectiveKind::Match(Output::Copy(stores)) = &config.root[3].kind else { panic!() };
        assert!(matches!(stores[0], Output::Stdout(_)));

        write("loop.conf", "@include loop.conf\n");
        let e = Config::load(&dir.path().join("loop.conf")).unwrap_err().to_string();
        assert!(e.contains("include cycle"), "{e}");
        write("missing.conf", "\n@include nope.conf\n");
        let e = Config::load(&dir.path().join("missing.conf")).unwrap_err().to_string();
        assert!(e.contains("missing.conf:2: @include nope.conf: cannot read"), "{e}");
    }

    #[test]
    fn every_broken_directive_is_reported() {
        let text = "<match a>\n  @type loki\n</match>\n<match b>\n  @type file\n</match>\n<label @L>\n  <match c>\n    @type grep\n  </match>\n  <match d>\n    @type relabel\n    @label @NOPE\n  </match>\n</label>\n<worker 0>\n</worker>\n";
        let Err(ConfigError::Invalid(problems)) = parse(text) else { panic!("expected problems") };
        let lines: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "/virtual/fluent.conf:1: <match a>: output @type loki is not supported by chaoslab: implemented \
                 outputs are rewrite_tag_filter, copy, kafka2, elasticsearch, stdout, file, null and relabel",
                "/virtual/fluent.conf:4: <match b>: parameter `path` is required",
                "/virtual/fluent.conf:8: <match c>: output @type grep is not supported by chaoslab: implemented \
                 outputs are rewrite_tag_filter, copy, kafka2, elasticsearch, stdout, file, null and relabel",
                "/virtual/fluent.conf:11: <match d>: label @NOPE is not defined",
                "/virtual/fluent.conf:16: <worker 0>: <worker> is not supported by chaoslab: chaoslab runs a \
                 single routing worker",
            ]
        );
        assert!(err(text).starts_with("5 problems:\n/virtual/fluent.conf:1: "), "{}", err(text));
    }
}
