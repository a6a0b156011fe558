//! `<match>` and its outputs: `rewrite_tag_filter`, `copy`, `kafka2`, `elasticsearch`, `stdout`, `file`,
//! `null` and `relabel`, with their `<format>` and `<inject>` sections.

use super::section::{Section, note};
use super::{Builder, LabelRef};
use crate::monitoring::logs::config::regex::ruby_regex;
use crate::monitoring::logs::config::syntax::Element;
use crate::monitoring::logs::config::{
    Directive, DirectiveKind, ElasticsearchOutput, Fault, Inject, InjectTime, KafkaOutput, Output,
    RecordPath, RewriteRule, RewriteTagFilter,
};

impl Builder {
    pub(super) fn match_directive(
        &mut self,
        element: &Element,
        refs: &mut Vec<LabelRef>,
    ) -> Result<Directive, Fault> {
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
            let key = RecordPath::parse(&key_param.value)
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
