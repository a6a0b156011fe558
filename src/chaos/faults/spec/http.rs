//! The HTTP kinds' parameters: the side, the filter every kind shares, and each kind's action.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use serde_json::Value;
use wildmatch::WildMatch;

use super::Effect;
use super::parse::Params;
use crate::chaos::faults::http::{HttpAction, HttpFilter, HttpPatch, HttpReplace, HttpRule, HttpTarget};

/// The parameters every HTTP kind takes, as the catalogue lists them.
pub(super) const FILTER: &str = "target (request|response), path (prefix), path-glob, method, status, \
                                 request-headers, response-headers, percent (100)";

impl Params<'_> {
    fn target(&mut self, default: HttpTarget) -> HttpTarget {
        match self.get("target").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("request") => HttpTarget::Request,
            Some("response") => HttpTarget::Response,
            Some(other) => {
                self.errors.push(format!("parameters.target: {other:?} is not request or response"));
                default
            }
        }
    }

    fn method(&mut self, name: &'static str) -> Option<Method> {
        let text = self.get(name)?.as_str().map(str::to_ascii_uppercase);
        match text.as_deref().map(|t| (t, Method::from_bytes(t.as_bytes()))) {
            Some((_, Ok(m))) => Some(m),
            _ => {
                self.errors.push(format!("parameters.{name}: not an HTTP method"));
                None
            }
        }
    }

    fn status(&mut self, name: &'static str) -> Option<u16> {
        self.get(name)?;
        let code = self.uint(name, 500);
        if (100..=599).contains(&code) {
            Some(code as u16)
        } else {
            self.errors.push(format!("parameters.{name}: {code} is not an HTTP status"));
            None
        }
    }

    /// `{name: value}` or `[[name, value], ...]`.
    fn pairs(&mut self, name: &'static str) -> Vec<(String, String)> {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let out: Option<Vec<(String, String)>> = match self.get(name) {
            None => return Vec::new(),
            Some(Value::Object(m)) => m.iter().map(|(k, v)| Some((k.clone(), text(v)?))).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|pair| match pair.as_array().map(Vec::as_slice) {
                    Some([k, v]) => Some((k.as_str()?.to_owned(), text(v)?)),
                    _ => None,
                })
                .collect(),
            Some(_) => None,
        };
        out.unwrap_or_else(|| {
            self.errors.push(format!(
                "parameters.{name}: must be a map of names to values, or a list of [name, value] pairs"
            ));
            Vec::new()
        })
    }

    fn headers(&mut self, name: &'static str) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        for (k, v) in self.pairs(name) {
            match (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
                (Ok(k), Ok(v)) => out.push((k, v)),
                _ => self.errors.push(format!("parameters.{name}: {k:?}: {v:?} is not a valid header")),
            }
        }
        out
    }

    fn filter(&mut self, target: HttpTarget) -> HttpFilter {
        let prefix = self.get("path").and_then(Value::as_str).map(str::to_owned);
        let glob = self.get("path-glob").and_then(Value::as_str).map(str::to_owned);
        let path = match (prefix, glob) {
            (Some(_), Some(_)) => {
                self.errors.push("parameters.path-glob: give path (a prefix) or path-glob, not both".into());
                None
            }
            (Some(prefix), None) => Some(WildMatch::new(&format!("{prefix}*"))),
            (None, Some(glob)) => Some(WildMatch::new(&glob)),
            (None, None) => None,
        };
        let code = self.status("status");
        let response_headers = self.headers("response-headers");
        if target == HttpTarget::Request && (code.is_some() || !response_headers.is_empty()) {
            self.errors
                .push("parameters.status and response-headers: filters of target response only".into());
        }
        HttpFilter {
            path,
            method: self.method("method"),
            code,
            request_headers: self
                .headers("request-headers")
                .into_iter()
                .map(|(k, v)| (k, lossy(&v)))
                .collect(),
            response_headers: response_headers.into_iter().map(|(k, v)| (k, lossy(&v))).collect(),
        }
    }
}

fn lossy(v: &HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

/// A body parameter: a string as it is, anything else as JSON.
fn body_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The effect of HTTP kind `kind`, or `None` when `kind` is not one.
pub(super) fn effect(kind: &str, p: &mut Params<'_>) -> Option<Effect> {
    let side = |default| move |p: &mut Params<'_>| p.target(default);
    let (target, action) = match kind {
        "http-abort" | "assault-exception" => {
            let target = side(HttpTarget::Request)(p);
            let code = p.status("code").unwrap_or(500);
            let action =
                if kind == "http-abort" { HttpAction::Abort(code) } else { HttpAction::Exception(code) };
            (target, action)
        }
        "http-delay" => (side(HttpTarget::Request)(p), HttpAction::Delay(p.duration("delay", None))),
        "assault-latency" => {
            let min = p.duration("min", Some(Duration::from_secs(1)));
            let max = p.duration("max", Some(Duration::from_secs(3)));
            if max < min {
                p.errors.push("parameters.max: must not be below min".into());
            }
            (side(HttpTarget::Request)(p), HttpAction::Latency(min, max))
        }
        "http-replace-body" => {
            let body = match p.get("body") {
                Some(v) => body_text(v),
                None => {
                    p.errors.push("parameters.body: required".into());
                    String::new()
                }
            };
            let json = serde_json::from_str::<Value>(&body).is_ok();
            let ct = if json { "application/json" } else { "text/plain; charset=utf-8" };
            let replace = HttpReplace {
                body: Some(body.into_bytes()),
                headers: vec![(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(ct))],
                ..Default::default()
            };
            (side(HttpTarget::Response)(p), HttpAction::Replace(replace))
        }
        "http-replace" => {
            let target = side(HttpTarget::Request)(p);
            let replace = HttpReplace {
                path: p.get("set-path").and_then(Value::as_str).map(str::to_owned),
                method: p.method("set-method"),
                code: p.status("set-code"),
                body: p.get("set-body").map(|v| body_text(v).into_bytes()),
                queries: p.pairs("set-queries"),
                headers: p.headers("set-headers"),
            };
            let request_only =
                replace.path.is_some() || replace.method.is_some() || !replace.queries.is_empty();
            match target {
                HttpTarget::Request if replace.code.is_some() => {
                    p.errors.push("parameters.set-code: a status is replaced on target response".into())
                }
                HttpTarget::Response if request_only => p.errors.push(
                    "parameters.set-path, set-method and set-queries: replaced on target request".into(),
                ),
                _ => {}
            }
            if replace == HttpReplace::default() {
                p.errors.push(
                    "parameters: http-replace needs one of set-path, set-method, set-code, set-body, \
                               set-queries, set-headers"
                        .into(),
                );
            }
            (target, HttpAction::Replace(replace))
        }
        "http-patch" => {
            let target = side(HttpTarget::Request)(p);
            let body = match p.get("merge-body") {
                None => None,
                Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        p.errors.push(format!("parameters.merge-body: not JSON: {e}"));
                        None
                    }
                },
                Some(v) => Some(v.clone()),
            };
            let patch =
                HttpPatch { body, queries: p.pairs("add-queries"), headers: p.headers("add-headers") };
            if target == HttpTarget::Response && !patch.queries.is_empty() {
                p.errors.push("parameters.add-queries: queries are added on target request".into());
            }
            if patch == HttpPatch::default() {
                p.errors
                    .push("parameters: http-patch needs one of merge-body, add-queries, add-headers".into());
            }
            (target, HttpAction::Patch(patch))
        }
        _ => return None,
    };
    let filter = p.filter(target);
    Some(Effect::Http(HttpRule { target, filter, action, rate: p.percent("percent", Some(1.0)) }))
}
