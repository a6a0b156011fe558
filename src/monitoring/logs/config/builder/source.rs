//! `<source>`: the Forward and HTTP listeners.

use super::section::Section;
use super::{Builder, LabelRef};
use crate::monitoring::logs::config::syntax::Element;
use crate::monitoring::logs::config::{
    DEFAULT_FORWARD_PORT, DEFAULT_HTTP_PORT, Fault, ForwardSecurity, ForwardSource, HttpSource, Source,
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
                let security = match section.child("security")? {
                    Some(element) => Some(self.security(element)?),
                    None => None,
                };
                Source::Forward(ForwardSource { bind, port, label, security, origin: element.origin.clone() })
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
        section.ignore_children(&["transport"]);
        section.finish(&mut self.notes);
        Ok(source)
    }

    /// A Forward source's `<security>`: `self_hostname` and `shared_key` required, as in Fluentd;
    /// `user_auth` with its `<user>` entries; per-client keys (`<client>`) are not implemented.
    fn security(&mut self, element: &Element) -> Result<ForwardSecurity, Fault> {
        let mut section = Section::new(element);
        let self_hostname = section.required("self_hostname")?.value.clone();
        let shared_key = section.required("shared_key")?.value.clone();
        if shared_key.is_empty() {
            return Err(section.invalid(&element.origin, "`shared_key` must not be empty"));
        }
        let user_auth = section.bool("user_auth", false)?;
        if let Some(param) = section.param("allow_anonymous_source")
            && matches!(param.value.as_str(), "false" | "no")
        {
            return Err(section.unsupported(
                &param.origin,
                "allow_anonymous_source false",
                "sources are not told apart by address: every client uses the shared key",
            ));
        }
        if let Some(client) = section.children("client").first() {
            return Err(section.unsupported(
                &client.origin,
                "<client>",
                "per-client keys are not implemented; every client uses the shared key",
            ));
        }
        let mut users = Vec::new();
        for user in section.children("user") {
            let mut entry = Section::new(user);
            let name = entry.required("username")?.value.clone();
            let password = entry.required("password")?.value.clone();
            entry.finish(&mut self.notes);
            users.push((name, password));
        }
        if user_auth && users.is_empty() {
            return Err(section.invalid(&element.origin, "`user_auth true` needs at least one <user>"));
        }
        if !user_auth {
            users.clear();
        }
        section.finish(&mut self.notes);
        Ok(ForwardSecurity { self_hostname, shared_key, users })
    }
}
