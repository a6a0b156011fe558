//! `HTTPChaos`: abort, delay, replace and patch with Chaos Mesh's filters.

use serde_json::{Value, json};

use super::{Cx, Effect, fault};
use crate::config::KeyPath;
use crate::mesh::schema::chaos::HttpChaosSpec;

impl Cx<'_, '_> {
    /// `HTTPChaos` on the HTTP services (see `chaos::faults::http`): each action of the object becomes one
    /// fault with the object's side and filter — `path` (a glob), `method`, `code` (the response status),
    /// `request_headers`, `response_headers` — applied in Chaos Mesh's order (abort, delay, replace,
    /// patch). `abort` answers 503 (one process has no connection to cut); `replace.body` is base64 (Go's
    /// `[]byte`); `patch.body` is a JSON merge patch.
    pub(super) fn http(&mut self, h: &HttpChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        let errors = self.errors;
        let response = match h.target.as_str() {
            "Request" => false,
            "Response" => true,
            other => {
                self.error(at.key("target"), format!("{other:?} is not Request or Response"));
                false
            }
        };
        let mut filter = serde_json::Map::new();
        filter.insert("target".into(), json!(if response { "response" } else { "request" }));
        if let Some(glob) = h.path.as_deref().map(str::trim).filter(|g| !g.is_empty() && *g != "*") {
            if !glob.starts_with(['/', '*']) {
                self.error(at.key("path"), format!("{glob:?} is not a path glob (such as /api/*)"));
            }
            filter.insert("path-glob".into(), json!(glob));
        }
        if let Some(m) = &h.method
            && self.method(m, at.key("method"))
        {
            filter.insert("method".into(), json!(m.to_ascii_uppercase()));
        }
        if let Some(code) = h.code {
            if !response {
                self.error(at.key("code"), "`code` selects responses: it needs target: Response");
            }
            if self.status(code, at.key("code")) {
                filter.insert("status".into(), json!(code));
            }
        }
        if !h.response_headers.is_empty() && !response {
            self.error(
                at.key("response_headers"),
                "`response_headers` select responses: it needs target: Response",
            );
        }
        for (key, headers) in
            [("request_headers", &h.request_headers), ("response_headers", &h.response_headers)]
        {
            if !headers.is_empty() {
                self.headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), &at.key(key));
                filter.insert(key.replace('_', "-"), json!(headers));
            }
        }
        if let Some(port) = h.port
            && !(1..=65535).contains(&port)
        {
            self.error(at.key("port"), format!("{port} is not a port"));
        }
        if h.tls.is_some() {
            self.error(at.key("tls"), "chaoslab's services speak plain HTTP: there is no TLS to intercept");
        }
        let with_filter = |v: Value| {
            let mut m = filter.clone();
            if let Value::Object(own) = v {
                m.extend(own);
            }
            Value::Object(m)
        };
        let mut faults = Vec::new();
        let mut actions = Vec::new();
        if h.abort == Some(true) {
            actions.push("abort");
            faults.push(fault("http-abort", with_filter(json!({ "code": 503 }))));
        }
        if let Some(d) = self.duration(h.delay.as_deref(), at.key("delay")) {
            actions.push("delay");
            faults.push(fault("http-delay", with_filter(json!({ "delay": d.as_secs_f64() }))));
        }
        if let Some(r) = &h.replace {
            actions.push("replace");
            let rat = at.key("replace");
            let mut set = serde_json::Map::new();
            for (key, present) in [
                ("path", r.path.is_some()),
                ("method", r.method.is_some()),
                ("queries", !r.queries.is_empty()),
            ] {
                if present && response {
                    self.error(
                        rat.key(key),
                        format!("`replace.{key}` changes requests: it needs target: Request"),
                    );
                }
            }
            if let Some(path) = &r.path {
                if !path.starts_with('/') {
                    self.error(rat.key("path"), format!("{path:?} is not a path"));
                }
                set.insert("set-path".into(), json!(path));
            }
            if let Some(m) = &r.method
                && self.method(m, rat.key("method"))
            {
                set.insert("set-method".into(), json!(m.to_ascii_uppercase()));
            }
            if let Some(code) = r.code {
                if !response {
                    self.error(
                        rat.key("code"),
                        "`replace.code` changes responses: it needs target: Response",
                    );
                }
                if self.status(code, rat.key("code")) {
                    set.insert("set-code".into(), json!(code));
                }
            }
            if let Some(body) = &r.body {
                use base64::Engine as _;
                match base64::engine::general_purpose::STANDARD.decode(body.trim()) {
                    Ok(bytes) => {
                        set.insert("set-body".into(), json!(String::from_utf8_lossy(&bytes)));
                    }
                    Err(e) => self.error(rat.key("body"), format!("not base64 (Chaos Mesh's []byte): {e}")),
                }
            }
            if !r.queries.is_empty() {
                set.insert("set-queries".into(), json!(r.queries));
            }
            if !r.headers.is_empty() {
                self.headers(r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), &rat.key("headers"));
                set.insert("set-headers".into(), json!(r.headers));
            }
            if set.is_empty() {
                self.warning(rat, "an empty replace changes nothing");
            } else {
                faults.push(fault("http-replace", with_filter(Value::Object(set))));
            }
        }
        if let Some(p) = &h.patch {
            actions.push("patch");
            let pat = at.key("patch");
            let mut add = serde_json::Map::new();
            if let Some(b) = &p.body {
                if b.kind != "JSON" {
                    self.error(
                        pat.key("body").key("type"),
                        format!("{:?}: Chaos Mesh patches JSON bodies only", b.kind),
                    );
                }
                match serde_json::from_str::<Value>(&b.value) {
                    Ok(v) => {
                        add.insert("merge-body".into(), v);
                    }
                    Err(e) => self.error(pat.key("body").key("value"), format!("not JSON: {e}")),
                }
            }
            for (key, pairs) in [("queries", &p.queries), ("headers", &p.headers)] {
                for (i, pair) in pairs.iter().enumerate() {
                    if pair.len() != 2 {
                        self.error(pat.key(key).index(i), "a pair is [name, value]");
                    }
                }
                if !pairs.is_empty() {
                    add.insert(format!("add-{key}"), json!(pairs));
                }
            }
            if !p.queries.is_empty() && response {
                self.error(pat.key("queries"), "`patch.queries` changes requests: it needs target: Request");
            }
            self.headers(
                p.headers.iter().filter_map(|kv| Some((kv.first()?.as_str(), kv.get(1)?.as_str()))),
                &pat.key("headers"),
            );
            if add.is_empty() {
                self.warning(pat, "an empty patch changes nothing");
            } else {
                faults.push(fault("http-patch", with_filter(Value::Object(add))));
            }
        }
        if actions.is_empty() && self.errors == errors {
            self.error(at.clone(), "an HTTPChaos needs abort, delay, replace or patch");
        }
        (self.errors == errors).then(|| (actions.join("+"), Effect::Pods { faults }))
    }

    fn method(&mut self, m: &str, at: KeyPath) -> bool {
        let ok = axum::http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).is_ok() && !m.is_empty();
        if !ok {
            self.error(at, format!("{m:?} is not an HTTP method"));
        }
        ok
    }

    fn status(&mut self, code: i64, at: KeyPath) -> bool {
        let ok = (100..=599).contains(&code);
        if !ok {
            self.error(at, format!("{code} is not an HTTP status"));
        }
        ok
    }

    fn headers<'h>(&mut self, headers: impl Iterator<Item = (&'h str, &'h str)>, at: &KeyPath) {
        use axum::http::{HeaderName, HeaderValue};
        for (k, v) in headers {
            if HeaderName::from_bytes(k.as_bytes()).is_err() || HeaderValue::from_str(v).is_err() {
                self.error(at.key(k), format!("{k:?}: {v:?} is not a valid header"));
            }
        }
    }
}
