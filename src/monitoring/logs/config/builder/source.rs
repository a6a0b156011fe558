//! `<source>`: the Forward and HTTP listeners.

use super::section::Section;
use super::{Builder, LabelRef};
use crate::monitoring::logs::config::syntax::Element;
use crate::monitoring::logs::config::{
    DEFAULT_FORWARD_PORT, DEFAULT_HTTP_PORT, Fault, ForwardSource, HttpSource, Source,
};

impl Builder {
    pub(super) fn source(&mut self, element: &Element, refs: &mut Vec<LabelRef>) -> Result<Source, Fault> {
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
}
