//! The `http` provider: one HTTP request, returning `{status, headers, body}`.
//!
//! Semantics of chaostoolkit-lib's `provider/http.py` (which uses `requests`): `url`, `headers`,
//! `arguments` and `timeout` are substituted; a `GET` sends `arguments` as the query string; any
//! other method sends them as JSON when the `Content-Type` header is exactly `application/json`,
//! else as a form (a mapping) or a raw body (a string). `timeout` is seconds for both connecting and
//! reading, or `[connect, read]`; `max_retries` retries connection errors. The body is parsed as JSON
//! when the response's `Content-Type` is exactly `application/json`, else kept as text. A status
//! of 400 or more is *not* a failure (tolerances decide); a connection error or a timeout is.
//!
//! chaoslab speaks plain `http://` only (the tree has no TLS client), so `verify_tls` has nothing to
//! verify and an `https://` URL fails the activity. Header names come back lower-cased (HTTP/1 via
//! hyper); repeated headers are joined with `, ` as `requests` does.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};

use super::ActivityError;
use crate::chaos::experiment::model::HttpProvider;
use crate::chaos::experiment::pyvalue::py_str;
use crate::chaos::experiment::substitute::{Bindings, substitute, substitute_map, substitute_str};

/// Sends the request; `in_hypothesis` silences the error-status warning.
pub async fn run(
    provider: &HttpProvider,
    in_hypothesis: bool,
    bindings: &Bindings<'_>,
) -> Result<Value, ActivityError> {
    let url = py_str(&substitute_str(&provider.url, bindings));
    let headers: Vec<(String, String)> =
        substitute_map(&provider.headers, bindings).iter().map(|(k, v)| (k.clone(), py_str(v))).collect();
    let arguments = provider.arguments.as_ref().map(|a| substitute(a, bindings)).filter(|a| !a.is_null());
    let (connect_timeout, read_timeout) =
        timeouts(provider.timeout.as_ref().map(|t| substitute(t, bindings)))?;
    let method = Method::from_bytes(provider.method.to_ascii_uppercase().as_bytes())
        .map_err(|e| ActivityError::failed(format!("invalid HTTP method '{}': {e}", provider.method)))?;

    let (uri, body, kind) = request_parts(&method, &url, &headers, arguments.as_ref())?;
    if uri.scheme_str() != Some("http") {
        return Err(ActivityError::failed(format!(
            "chaoslab's http provider speaks plain http:// only, cannot call {url}"
        )));
    }

    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(connect_timeout);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);

    let mut attempt = 0;
    let response = loop {
        let request = build_request(&method, &uri, &headers, kind, body.clone())?;
        let sent = with_timeout(read_timeout, client.request(request)).await?;
        match sent {
            Ok(response) => break response,
            Err(e) if e.is_connect() && attempt < provider.max_retries => {
                attempt += 1;
                tracing::debug!(%url, attempt, error = %e, "retrying http activity after a connection error");
            }
            Err(e) => return Err(ActivityError::failed(format!("failed to connect to {url}: {e}"))),
        }
    };

    let status = response.status().as_u16();
    let mut response_headers = Map::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match response_headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                response_headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let is_json = response.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/json");
    let bytes = with_timeout(read_timeout, response.into_body().collect())
        .await?
        .map_err(|e| ActivityError::failed(format!("failed to read the response of {url}: {e}")))?
        .to_bytes();
    let body = if is_json {
        serde_json::from_slice(&bytes)
            .map_err(|e| ActivityError::failed(format!("{url} answered invalid JSON: {e}")))?
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };

    if !in_hypothesis && status > 399 {
        tracing::warn!(
            status,
            "This HTTP call returned a response with a HTTP status code above 400. This may indicate some \
             error and not what you expected. Please have a look at the logs."
        );
    }
    Ok(json!({"status": status, "headers": response_headers, "body": body}))
}

/// How the body is encoded, to set a `Content-Type` when the experiment did not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyKind {
    None,
    Json,
    Form,
    Raw,
}

/// The URI (with the query for a `GET`) and the body bytes.
fn request_parts(
    method: &Method,
    url: &str,
    headers: &[(String, String)],
    arguments: Option<&Value>,
) -> Result<(Uri, Bytes, BodyKind), ActivityError> {
    let mut target = url.to_owned();
    let mut body = Bytes::new();
    let mut kind = BodyKind::None;
    // `requests` reads the request headers as a plain dict: only the exact key `Content-Type` counts.
    let json_body = headers.iter().any(|(k, v)| k == "Content-Type" && v == "application/json");
    match (method == Method::GET, arguments) {
        (_, None) => {}
        (true, Some(args)) => {
            let query = form_encode(args)?;
            if !query.is_empty() {
                target.push(if target.contains('?') { '&' } else { '?' });
                target.push_str(&query);
            }
        }
        (false, Some(args)) if json_body => {
            body = Bytes::from(serde_json::to_vec(args).map_err(|e| ActivityError::failed(e.to_string()))?);
            kind = BodyKind::Json;
        }
        (false, Some(Value::String(raw))) => {
            body = Bytes::from(raw.clone());
            kind = BodyKind::Raw;
        }
        (false, Some(args)) => {
            body = Bytes::from(form_encode(args)?);
            kind = BodyKind::Form;
        }
    }
    let uri =
        target.parse::<Uri>().map_err(|e| ActivityError::failed(format!("invalid URL '{url}': {e}")))?;
    Ok((uri, body, kind))
}

fn build_request(
    method: &Method,
    uri: &Uri,
    headers: &[(String, String)],
    kind: BodyKind,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, ActivityError> {
    let mut request = Request::builder().method(method.clone()).uri(uri.clone());
    let mut has_content_type = false;
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ActivityError::failed(format!("invalid header name '{name}': {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| ActivityError::failed(format!("invalid value for header '{name}': {e}")))?;
        has_content_type |= name == CONTENT_TYPE;
        request = request.header(name, value);
    }
    let default_type = match kind {
        BodyKind::Form => Some("application/x-www-form-urlencoded"),
        BodyKind::Json => Some("application/json"),
        BodyKind::None | BodyKind::Raw => None,
    };
    if let (false, Some(content_type)) = (has_content_type, default_type) {
        request = request.header(CONTENT_TYPE, content_type);
    }
    request.body(Full::new(body)).map_err(|e| ActivityError::failed(format!("invalid request: {e}")))
}

/// `timeout`: none, a number for both phases, or `[connect, read]`.
fn timeouts(timeout: Option<Value>) -> Result<(Option<Duration>, Option<Duration>), ActivityError> {
    let seconds = |v: &Value| {
        v.as_f64()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| ActivityError::failed(format!("invalid http timeout {v}")))
    };
    match timeout {
        None | Some(Value::Null) => Ok((None, None)),
        Some(Value::Array(pair)) if pair.len() == 2 => {
            Ok((Some(seconds(&pair[0])?), Some(seconds(&pair[1])?)))
        }
        Some(one) => {
            let d = seconds(&one)?;
            Ok((Some(d), Some(d)))
        }
    }
}

async fn with_timeout<F: std::future::Future>(
    limit: Option<Duration>,
    fut: F,
) -> Result<F::Output, ActivityError> {
    match limit {
        Some(d) => tokio::time::timeout(d, fut)
            .await
            .map_err(|_| ActivityError::TimedOut { what: "activity", seconds: d.as_secs_f64() }),
        None => Ok(fut.await),
    }
}

/// `application/x-www-form-urlencoded` of a mapping as `requests` encodes `params`/`data`: list values
/// repeat the key, `None` values are dropped, other values go through Python's `str()`.
fn form_encode(arguments: &Value) -> Result<String, ActivityError> {
    let Value::Object(map) = arguments else {
        return Err(ActivityError::failed(format!("http arguments must be a mapping here, got {arguments}")));
    };
    let mut pairs = Vec::new();
    for (key, value) in map {
        let values: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for v in values.into_iter().filter(|v| !v.is_null()) {
            pairs.push(format!("{}={}", percent_encode(key), percent_encode(&py_str(v))));
        }
    }
    Ok(pairs.join("&"))
}

/// Python's `quote_plus`: everything but letters, digits and `-._~` percent-encoded, spaces as `+`.
fn percent_encode(text: &str) -> String {
    const QUOTE_PLUS: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    // A literal `%20` in the text has its `%` encoded, so every `%20` here is a space.
    percent_encoding::utf8_percent_encode(text, QUOTE_PLUS).to_string().replace("%20", "+")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::Router;
    use axum::extract::{Query, RawForm};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use serde_json::json;

    use super::*;
    use crate::chaos::experiment::model::Configuration;
    use crate::chaos::experiment::substitute::Outputs;

    /// A tiny server on a free loopback port: `/health` (JSON), `/echo` (query back as text),
    /// `/orders` (JSON body back with 201), `/form` (form body back), `/slow` (answers after 2 s),
    /// `/missing` (404 text).
    async fn server() -> String {
        let app = Router::new()
            .route("/health", get(|| async { axum::Json(json!({"status": "ok", "lag": 3})) }))
            .route("/echo", get(|Query(q): Query<BTreeMap<String, String>>| async move { format!("{q:?}") }))
            .route(
                "/orders",
                post(|headers: HeaderMap, axum::Json(v): axum::Json<Value>| async move {
                    let auth = headers.get("x-token").map(|h| h.to_str().unwrap_or("").to_owned());
                    (StatusCode::CREATED, axum::Json(json!({"got": v, "token": auth})))
                }),
            )
            .route(
                "/form",
                post(|RawForm(b): RawForm| async move { String::from_utf8_lossy(&b).into_owned() }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    "late"
                }),
            )
            .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "nope") }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn provider(doc: Value) -> HttpProvider {
        HttpProvider {
            url: doc["url"].as_str().unwrap().to_owned(),
            method: doc.get("method").and_then(Value::as_str).unwrap_or("GET").to_owned(),
            headers: doc.get("headers").and_then(Value::as_object).cloned().unwrap_or_default(),
            arguments: doc.get("arguments").cloned(),
            timeout: doc.get("timeout").cloned(),
            verify_tls: true,
            max_retries: doc.get("max_retries").and_then(Value::as_u64).unwrap_or(0) as u32,
        }
    }

    async fn call(doc: Value, base: &str) -> Result<Value, ActivityError> {
        let configuration: Configuration =
            json!({"base": base, "token": "t0k"}).as_object().cloned().unwrap();
        let secrets = Configuration::new();
        let outputs = Outputs::new();
        let b = Bindings { configuration: &configuration, secrets: &secrets, outputs: &outputs };
        run(&provider(doc), true, &b).await
    }

    #[tokio::test]
    async fn get_parses_json_bodies_and_sends_query_arguments() {
        let base = server().await;
        let out = call(json!({"url": "${base}/health"}), &base).await.unwrap();
        assert_eq!(out["status"], 200);
        assert_eq!(out["body"], json!({"status": "ok", "lag": 3}));
        assert_eq!(out["headers"]["content-type"], "application/json");

        let out =
            call(json!({"url": "${base}/echo", "arguments": {"q": "a b&c", "n": 2, "skip": null}}), &base)
                .await
                .unwrap();
        assert_eq!(out["body"], r#"{"n": "2", "q": "a b&c"}"#);
    }

    #[tokio::test]
    async fn post_sends_json_or_form_and_error_statuses_are_not_failures() {
        let base = server().await;
        let out = call(
            json!({"url": "${base}/orders", "method": "post", "arguments": {"id": 1, "tags": ["x"]},
                   "headers": {"Content-Type": "application/json", "X-Token": "${token}"}}),
            &base,
        )
        .await
        .unwrap();
        assert_eq!(out["status"], 201);
        assert_eq!(out["body"], json!({"got": {"id": 1, "tags": ["x"]}, "token": "t0k"}));

        let out = call(
            json!({"url": "${base}/form", "method": "POST", "arguments": {"a": ["1", "2"], "b": true}}),
            &base,
        )
        .await
        .unwrap();
        assert_eq!(out["body"], "a=1&a=2&b=True");

        let out = call(json!({"url": "${base}/missing"}), &base).await.unwrap();
        assert_eq!((out["status"].clone(), out["body"].clone()), (json!(404), json!("nope")));
    }

    #[tokio::test]
    async fn timeouts_refused_connections_and_https_fail_the_activity() {
        let base = server().await;
        let err = call(json!({"url": "${base}/slow", "timeout": [1, 0.2]}), &base).await.unwrap_err();
        assert!(matches!(err, ActivityError::TimedOut { what: "activity", .. }), "{err}");

        let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = format!("http://{}", free.local_addr().unwrap());
        drop(free);
        let err = call(json!({"url": "${base}/x", "max_retries": 2}), &closed).await.unwrap_err();
        assert!(err.to_string().starts_with(&format!("failed to connect to {closed}/x")), "{err}");

        let err = call(json!({"url": "https://localhost/"}), &base).await.unwrap_err();
        assert!(err.to_string().contains("plain http:// only"), "{err}");
    }

    #[test]
    fn arguments_are_quoted_like_python() {
        assert_eq!(percent_encode("a b~-._*%20/é"), "a+b~-._%2A%2520%2F%C3%A9");
    }
}
