//! `<filter>`: `record_modifier`, `record_transformer`, `parser` and `concat` (a no-op).

use serde_json::Value;

use super::Builder;
use super::section::{Section, note, split_list};
use crate::monitoring::logs::config::placeholders::{PlaceholderMode, parse_template};
use crate::monitoring::logs::config::regex::ruby_regex;
use crate::monitoring::logs::config::syntax::Element;
use crate::monitoring::logs::config::{
    Directive, DirectiveKind, Fault, Filter, ParseFormat, ParseTime, ParserFilter, RecordEdit, RecordFlavour,
    RecordPath, RecordValue,
};

impl Builder {
    pub(super) fn filter(&mut self, element: &Element) -> Result<Directive, Fault> {
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
            section.list("remove_keys").unwrap_or_default().iter().map(|k| RecordPath::top(k)).collect();
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
                    .push(RecordPath::parse(&key).map_err(|reason| section.invalid(&param.origin, reason))?);
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
        let key_name = RecordPath::parse(&key_param.value)
            .map_err(|reason| section.invalid(&key_param.origin, reason))?;
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
}
