//! One HTTP fault as data: which side of an exchange it acts on, which exchanges it hits, and what it
//! does to them — Chaos Mesh's `PodHttpChaosRule` (`api/v1alpha1/podhttpchaos_types.go`) plus Chaos
//! Monkey for Spring Boot's request assaults.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, request, response};
use serde_json::Value;
use wildmatch::WildMatch;

/// Which side of an exchange a rule acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpTarget {
    /// Before the handler: the request (an abort answers without calling it).
    Request,
    /// After the handler: its response (an abort drops what it answered; what it did stays done).
    Response,
}

/// Which exchanges a rule hits (Chaos Mesh's `PodHttpChaosSelector`). Every part given must match.
#[derive(Clone, Debug, Default)]
pub struct HttpFilter {
    /// A glob over the path (`*` matches anything, `/` included, as Chaos Mesh's proxy does).
    pub path: Option<WildMatch>,
    /// The request method, upper case.
    pub method: Option<Method>,
    /// The response status (response rules only).
    pub code: Option<u16>,
    /// Request headers that must be present with exactly these values.
    pub request_headers: Vec<(HeaderName, String)>,
    /// Response headers that must be present with exactly these values (response rules only).
    pub response_headers: Vec<(HeaderName, String)>,
}

impl PartialEq for HttpFilter {
    fn eq(&self, other: &Self) -> bool {
        self.path.as_ref().map(ToString::to_string) == other.path.as_ref().map(ToString::to_string)
            && self.method == other.method
            && self.code == other.code
            && self.request_headers == other.request_headers
            && self.response_headers == other.response_headers
    }
}

fn headers_match(want: &[(HeaderName, String)], have: &HeaderMap) -> bool {
    want.iter().all(|(name, value)| have.get_all(name).iter().any(|v| v.as_bytes() == value.as_bytes()))
}

impl HttpFilter {
    /// Whether a request passes the request-side parts (path, method, request headers).
    pub fn request_matches(&self, req: &request::Parts) -> bool {
        self.path.as_ref().is_none_or(|p| p.matches(req.uri.path()))
            && self.method.as_ref().is_none_or(|m| *m == req.method)
            && headers_match(&self.request_headers, &req.headers)
    }

    /// Whether a response passes the response-side parts (code, response headers).
    pub fn response_matches(&self, resp: &response::Parts) -> bool {
        self.code.is_none_or(|c| c == resp.status.as_u16())
            && headers_match(&self.response_headers, &resp.headers)
    }
}

/// Chaos Mesh's `replace`: parts set to new values. Request rules use path, method, queries, headers and
/// body; response rules use code, headers and body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpReplace {
    /// The new path (requests).
    pub path: Option<String>,
    /// The new method (requests).
    pub method: Option<Method>,
    /// The new status (responses).
    pub code: Option<u16>,
    /// The new body.
    pub body: Option<Vec<u8>>,
    /// Query parameters set (every occurrence of the name replaced; added when absent).
    pub queries: Vec<(String, String)>,
    /// Headers set (replacing every value of the name).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Chaos Mesh's `patch`: parts added.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpPatch {
    /// A JSON merge patch (RFC 7396) applied to a JSON body.
    pub body: Option<Value>,
    /// Query parameters appended (requests).
    pub queries: Vec<(String, String)>,
    /// Headers appended.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// What a rule does.
#[derive(Clone, Debug, PartialEq)]
pub enum HttpAction {
    /// Answer with this status instead (Chaos Mesh's `abort`: one process has no connection to cut, so the
    /// client gets the status with an empty body).
    Abort(u16),
    /// Wait this long.
    Delay(Duration),
    /// Wait a random time in `[min, max]` (Chaos Monkey latency assault).
    Latency(Duration, Duration),
    /// The handler "throws": this status with a Spring Boot exception body (Chaos Monkey exception assault).
    Exception(u16),
    /// Set parts.
    Replace(HttpReplace),
    /// Add to parts.
    Patch(HttpPatch),
}

impl HttpAction {
    /// Chaos Mesh's order within an exchange: abort, delay, replace, patch.
    pub fn phase(&self) -> u8 {
        match self {
            HttpAction::Abort(_) | HttpAction::Exception(_) => 0,
            HttpAction::Delay(_) | HttpAction::Latency(..) => 1,
            HttpAction::Replace(_) => 2,
            HttpAction::Patch(_) => 3,
        }
    }
}

/// One HTTP fault: side, filter, action and the share of matching exchanges it hits.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRule {
    /// The side.
    pub target: HttpTarget,
    /// Which exchanges.
    pub filter: HttpFilter,
    /// What it does.
    pub action: HttpAction,
    /// Share of matching exchanges hit, in `[0, 1]`.
    pub rate: f64,
}

/// `uri` with its path replaced (the query kept).
pub fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// `uri` with query parameters set (`replace`) and appended (`append`).
pub fn with_query(uri: &Uri, replace: &[(String, String)], append: &[(String, String)]) -> Option<Uri> {
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    for (name, value) in replace {
        let mut found = false;
        for (_, v) in pairs.iter_mut().filter(|(n, _)| n == name) {
            *v = value.clone();
            found = true;
        }
        if !found {
            pairs.push((name.clone(), value.clone()));
        }
    }
    pairs.extend(append.iter().cloned());
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
    let pq = if query.is_empty() { uri.path().to_owned() } else { format!("{}?{query}", uri.path()) };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// Sets (`replace`) and appends (`append`) headers.
pub fn edit_headers(
    headers: &mut HeaderMap,
    replace: &[(HeaderName, HeaderValue)],
    append: &[(HeaderName, HeaderValue)],
) {
    for (name, value) in replace {
        headers.insert(name.clone(), value.clone());
    }
    for (name, value) in append {
        headers.append(name.clone(), value.clone());
    }
}

/// A JSON merge patch over a body: the patched body, or why it was left alone (not JSON).
pub fn merge_body(body: &[u8], patch: &Value) -> Result<Vec<u8>, String> {
    let mut doc: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))?
    };
    json_patch::merge(&mut doc, patch);
    serde_json::to_vec(&doc).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut b = axum::http::Request::builder().method(method).uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn filters_take_globs_methods_and_headers() {
        let f = HttpFilter {
            path: Some(WildMatch::new("/orders/*")),
            method: Some(Method::POST),
            request_headers: vec![(HeaderName::from_static("x-user"), "ash".into())],
            ..Default::default()
        };
        assert!(f.request_matches(&parts("POST", "/orders/12/cancel", &[("x-user", "ash")])));
        assert!(!f.request_matches(&parts("GET", "/orders/12", &[("x-user", "ash")])), "method");
        assert!(!f.request_matches(&parts("POST", "/health", &[("x-user", "ash")])), "path");
        assert!(!f.request_matches(&parts("POST", "/orders/1", &[("x-user", "misty")])), "header value");
        assert!(!f.request_matches(&parts("POST", "/orders/1", &[])), "header missing");
        let r = HttpFilter { code: Some(404), ..Default::default() };
        let resp = axum::http::Response::builder().status(404).body(()).unwrap().into_parts().0;
        assert!(r.response_matches(&resp));
        let ok = axum::http::Response::builder().status(200).body(()).unwrap().into_parts().0;
        assert!(!r.response_matches(&ok));
    }

    #[test]
    fn uris_get_new_paths_and_queries() {
        let uri: Uri = "/orders/?state=NEW&state=PAID&limit=5".parse().unwrap();
        assert_eq!(with_path(&uri, "/health").unwrap().to_string(), "/health?state=NEW&state=PAID&limit=5");
        let set = [("state".to_owned(), "X".to_owned()), ("page".to_owned(), "2".to_owned())];
        let add = [("limit".to_owned(), "9".to_owned())];
        let q = with_query(&uri, &set, &add).unwrap();
        assert_eq!(q.query(), Some("state=X&state=X&limit=5&page=2&limit=9"));
        let bare: Uri = "/x".parse().unwrap();
        assert_eq!(
            with_query(&bare, &[], &[("a b".into(), "c&d".into())]).unwrap().query(),
            Some("a+b=c%26d")
        );
    }

    #[test]
    fn merge_patches_json_bodies_only() {
        let out = merge_body(
            br#"{"price":3,"name":"pikachu","tags":{"a":1}}"#,
            &json!({"price":0,"tags":{"a":null}}),
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&out.unwrap()).unwrap(),
            json!({"price":0,"name":"pikachu","tags":{}})
        );
        assert_eq!(merge_body(b"", &json!({"a":1})).unwrap(), br#"{"a":1}"#);
        assert!(merge_body(b"<html>", &json!({"a":1})).unwrap_err().contains("not JSON"));
    }
}
