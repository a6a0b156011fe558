//! Fluentd's `in_http` input for live mode: `POST /<tag path>` with a JSON (or msgpack) body.
//!
//! The reference pipeline's NiFi flow posts CloudEvents to `http://fluentd:9880/${FLUENTD_TAG}`; this
//! module accepts the same requests and turns them into [`LogEvent`]s, as Fluentd does:
//!
//! * the tag is the URL path without its leading slash, `/` becoming `.` (`/a/b` → `a.b`);
//! * the body is a JSON object (one event) or an array of objects (a batch), given as an
//!   `application/json` body, as the `json=` parameter of a form body or of the query string, or as
//!   msgpack (`application/msgpack` body or `msgpack=` parameter);
//! * the event time is the `time` query parameter (epoch seconds) if present, else the record's
//!   `time_key` field parsed with `time_format` (kept in the record with `keep_time_key`), else the time
//!   of arrival (this listener is live-only, so it may read the wall clock);
//! * a bad body or time answers `400 Bad Request` with the reason, and is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::monitoring::logs::config::{HttpSource, ParseTime};
use crate::monitoring::logs::event::{EventTime, LogEvent};
use crate::monitoring::logs::forward::MAX_TAG_LEN;
use crate::monitoring::logs::router::take_time;

/// Fluentd's default `body_size_limit` (32 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// How the HTTP input reads requests.
#[derive(Debug, Clone)]
pub struct HttpInputSettings {
    /// The record field holding the event time.
    pub time_key: String,
    /// Keep that field in the record after reading it.
    pub keep_time_key: bool,
    /// Ruby `strptime` format of string times; `None` reads epoch seconds.
    pub time_format: Option<String>,
    /// Longest accepted tag, in bytes.
    pub max_tag_len: usize,
    /// Largest accepted body, in bytes.
    pub body_limit: usize,
    /// The time given to events that carry none.
    pub now: fn() -> EventTime,
}

impl Default for HttpInputSettings {
    /// The reference pipeline's settings: `time_key time`, `keep_time_key true`,
    /// `time_format %Y-%m-%dT%H:%M:%S.%NZ`, with Fluentd's limits and the wall clock.
    fn default() -> Self {
        Self {
            time_key: "time".to_string(),
            keep_time_key: true,
            time_format: Some("%Y-%m-%dT%H:%M:%S.%NZ".to_string()),
            max_tag_len: MAX_TAG_LEN,
            body_limit: DEFAULT_BODY_LIMIT,
            now: EventTime::now_wall,
        }
    }
}

impl From<&HttpSource> for HttpInputSettings {
    fn from(source: &HttpSource) -> Self {
        Self {
            time_key: source.time_key.clone(),
            keep_time_key: source.keep_time_key,
            time_format: source.time_format.clone(),
            ..Self::default()
        }
    }
}

/// Counters of one HTTP input.
#[derive(Debug, Default)]
pub struct HttpStats {
    requests: AtomicU64,
    events: AtomicU64,
    bad_requests: AtomicU64,
    rejected_tags: AtomicU64,
    unavailable: AtomicU64,
}

/// A copy of [`HttpStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStatsSnapshot {
    /// Requests handled.
    pub requests: u64,
    /// Events queued.
    pub events: u64,
    /// Requests refused for their body, parameters or time (400).
    pub bad_requests: u64,
    /// Requests refused for their tag (empty or too long; 400).
    pub rejected_tags: u64,
    /// Requests refused because the event receiver is gone (503).
    pub unavailable: u64,
}

impl HttpStats {
    /// The counters so far.
    pub fn snapshot(&self) -> HttpStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpStatsSnapshot {
            requests: get(&self.requests),
            events: get(&self.events),
            bad_requests: get(&self.bad_requests),
            rejected_tags: get(&self.rejected_tags),
            unavailable: get(&self.unavailable),
        }
    }
}

struct Shared {
    settings: HttpInputSettings,
    tx: mpsc::Sender<LogEvent>,
    stats: Arc<HttpStats>,
}

/// The HTTP input with the reference pipeline's settings ([`HttpInputSettings::default`]).
pub fn router(tx: mpsc::Sender<LogEvent>, stats: Arc<HttpStats>) -> Router {
    router_with(HttpInputSettings::default(), tx, stats)
}

/// The HTTP input with explicit settings (e.g. `HttpInputSettings::from(config.http_source()?)`).
pub fn router_with(settings: HttpInputSettings, tx: mpsc::Sender<LogEvent>, stats: Arc<HttpStats>) -> Router {
    let body_limit = settings.body_limit;
    Router::new()
        .route("/{*tag}", post(ingest))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(Arc::new(Shared { settings, tx, stats }))
}

fn bad_request(message: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "text/plain")], format!("400 Bad Request\n{message}\n"))
        .into_response()
}

async fn ingest(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stats = &shared.stats;
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let tag = match tag_of(&path, shared.settings.max_tag_len) {
        Ok(tag) => tag,
        Err(reason) => {
            stats.rejected_tags.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%reason, "http input: request refused");
            return bad_request(reason);
        }
    };
    let events = match events_of(&shared.settings, &tag, query.as_deref(), &headers, &body) {
        Ok(events) => events,
        Err(reason) => {
            stats.bad_requests.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tag, %reason, "http input: request refused");
            return bad_request(reason);
        }
    };
    for event in events {
        if shared.tx.send(event).await.is_err() {
            stats.unavailable.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable\n").into_response();
        }
        stats.events.fetch_add(1, Ordering::Relaxed);
    }
    StatusCode::OK.into_response()
}

/// `/a/b` → `a.b` (Ruby's `split('/')` drops trailing empty parts).
fn tag_of(path: &str, max_len: usize) -> Result<String, String> {
    let mut parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    let tag = parts.join(".");
    if tag.is_empty() {
        return Err("the URL path must name a tag".to_string());
    }
    if tag.len() > max_len {
        return Err(format!("tag of {} bytes exceeds the limit of {max_len}", tag.len()));
    }
    Ok(tag)
}

fn events_of(
    settings: &HttpInputSettings,
    tag: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<LogEvent>, String> {
    let mut params = query.map(parse_urlencoded).unwrap_or_default();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut msgpack_body = None;
    if content_type.starts_with("application/json") {
        let text = std::str::from_utf8(body).map_err(|e| format!("the JSON body is not UTF-8: {e}"))?;
        params.push(("json".to_string(), text.to_string()));
    } else if content_type.starts_with("application/msgpack")
        || content_type.starts_with("application/x-msgpack")
    {
        msgpack_body = Some(body);
    } else if content_type.is_empty() || content_type.starts_with("application/x-www-form-urlencoded") {
        let text = std::str::from_utf8(body).map_err(|e| format!("the form body is not UTF-8: {e}"))?;
        params.extend(parse_urlencoded(text));
    }
    let param = |name: &str| params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());

    let records = if let Some(json) = param("json") {
        let value: Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
        records_of(value)?
    } else if let Some(bytes) =
        msgpack_body.map(<[u8]>::to_vec).or_else(|| param("msgpack").map(|m| m.as_bytes().to_vec()))
    {
        let value = rmpv::decode::read_value_with_max_depth(&mut bytes.as_slice(), 128)
            .map_err(|e| format!("invalid msgpack: {e}"))?;
        let json: Value =
            serde_json::to_value(MsgpackJson(&value)).map_err(|e| format!("invalid msgpack: {e}"))?;
        records_of(json)?
    } else {
        return Err("'json' or 'msgpack' parameter is required".to_string());
    };

    let param_time = match param("time") {
        // Ruby's `to_f`: anything unparsable is 0, and 0 means "now".
        Some(text) => EventTime::from_float_secs(text.trim().parse::<f64>().unwrap_or(0.0))
            .filter(|t| *t != EventTime::default()),
        None => None,
    };
    let time_settings = ParseTime {
        key: settings.time_key.clone(),
        format: settings.time_format.clone(),
        keep: settings.keep_time_key,
    };
    let mut events = Vec::with_capacity(records.len());
    for mut record in records {
        let record_time = take_time(&mut record, &time_settings)
            .map_err(|e| format!("invalid {}: {e}", settings.time_key))?;
        let time = param_time.or(record_time).unwrap_or_else(settings.now);
        events.push(LogEvent::new(tag, time, record));
    }
    Ok(events)
}

fn records_of(value: Value) -> Result<Vec<Map<String, Value>>, String> {
    match value {
        Value::Object(record) => Ok(vec![record]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::Object(record) => Ok(record),
                other => Err(format!(
                    "element {index} of the batch is {}, not an object",
                    crate::config::json_kind(&other)
                )),
            })
            .collect(),
        other => Err(format!(
            "the record must be a JSON object or an array of objects, not {}",
            crate::config::json_kind(&other)
        )),
    }
}

/// Serializes a msgpack value as JSON (binary as lossy UTF-8; extension values as null).
struct MsgpackJson<'a>(&'a rmpv::Value);

impl serde::Serialize for MsgpackJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            rmpv::Value::Nil | rmpv::Value::Ext(..) => serializer.serialize_none(),
            rmpv::Value::Boolean(b) => serializer.serialize_bool(*b),
            rmpv::Value::Integer(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => serializer.serialize_i64(i),
                (None, Some(u)) => serializer.serialize_u64(u),
                _ => serializer.serialize_none(),
            },
            rmpv::Value::F32(f) => serializer.serialize_f64(f64::from(*f)),
            rmpv::Value::F64(f) => serializer.serialize_f64(*f),
            rmpv::Value::String(s) => serializer.serialize_str(&String::from_utf8_lossy(s.as_bytes())),
            rmpv::Value::Binary(b) => serializer.serialize_str(&String::from_utf8_lossy(b)),
            rmpv::Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&MsgpackJson(item))?;
                }
                seq.end()
            }
            rmpv::Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    let key = match key {
                        rmpv::Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                        other => other.to_string(),
                    };
                    map.serialize_entry(&key, &MsgpackJson(value))?;
                }
                map.end()
            }
        }
    }
}

/// `a=1&b=x+y%21` → `[(a, 1), (b, "x y!")]` (`application/x-www-form-urlencoded`, as WHATWG parses it).
fn parse_urlencoded(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes()).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::json;
    use tower::ServiceExt;

    fn fixed_now() -> EventTime {
        EventTime::new(1_000, 0)
    }

    fn app(capacity: usize) -> (Router, mpsc::Receiver<LogEvent>, Arc<HttpStats>) {
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(HttpStats::default());
        let settings = HttpInputSettings { now: fixed_now, ..HttpInputSettings::default() };
        (router_with(settings, tx, stats.clone()), rx, stats)
    }

    async fn send(
        app: &Router,
        uri: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, String) {
        let mut request = Request::post(uri);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = app.clone().oneshot(request.body(body.into()).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn json_object_with_time_key_kept() {
        let (app, mut rx, stats) = app(8);
        let body = json!({"time": "2020-02-21T21:20:33.224Z", "message": "ConsumeMQTT[id=1] failed", "level": "ERROR"});
        let (status, _) =
            send(&app, "/com.chaoslab.nifi.mqtt.app.error", Some("application/json"), body.to_string()).await;
        assert_eq!(status, StatusCode::OK);
        let event = rx.try_recv().unwrap();
        assert_eq!(event.tag, "com.chaoslab.nifi.mqtt.app.error");
        assert_eq!(event.time, EventTime::new(1_582_320_033, 224_000_000));
        assert_eq!(Value::Object(event.record), body, "keep_time_key keeps the time field");
        assert_eq!(stats.snapshot().events, 1);
    }

    #[tokio::test]
    async fn batch_array_path_tags_and_missing_time() {
        let (app, mut rx, _) = app(8);
        let body = json!([{"n": 1}, {"n": 2, "time": "2020-02-21T21:20:02.991Z"}]).to_string();
        let (status, _) = send(&app, "/com/chaoslab/x/", Some("application/json; charset=utf-8"), body).await;
        assert_eq!(status, StatusCode::OK);
        let first = rx.try_recv().unwrap();
        let second = rx.try_recv().unwrap();
        assert_eq!(first.tag, "com.chaoslab.x");
        assert_eq!(first.time, fixed_now());
        assert_eq!(second.time, EventTime::from_millis(1_582_320_002_991));
    }

    #[tokio::test]
    async fn time_query_parameter_wins() {
        let (app, mut rx, _) = app(8);
        let body = json!({"time": "2020-02-21T21:20:02.991Z"}).to_string();
        let (status, _) = send(&app, "/t?time=1582320000.5", Some("application/json"), body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(rx.try_recv().unwrap().time, EventTime::new(1_582_320_000, 500_000_000));
    }

    #[tokio::test]
    async fn form_and_query_json_parameters() {
        let (app, mut rx, _) = app(8);
        let form = "json=%7B%22a%22%3A%22x+y%22%7D&time=5";
        let (status, _) = send(&app, "/f", Some("application/x-www-form-urlencoded"), form).await;
        assert_eq!(status, StatusCode::OK);
        let event = rx.try_recv().unwrap();
        assert_eq!(event.record["a"], "x y");
        assert_eq!(event.time, EventTime::new(5, 0));
        let (status, _) = send(&app, "/q?json=%7B%22b%22%3A1%7D", None, "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(rx.try_recv().unwrap().record["b"], 1);
    }

    #[tokio::test]
    async fn msgpack_body() {
        let (app, mut rx, _) = app(8);
        let value = rmpv::Value::Map(vec![(rmpv::Value::from("k"), rmpv::Value::from("v"))]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &value).unwrap();
        let (status, _) = send(&app, "/m", Some("application/msgpack"), bytes).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(rx.try_recv().unwrap().record["k"], "v");
    }

    #[tokio::test]
    async fn bad_requests_are_refused_with_a_reason_and_counted() {
        let (app, mut rx, stats) = app(8);
        let (status, text) = send(&app, "/t", Some("application/json"), "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.starts_with("400 Bad Request\ninvalid JSON"), "{text}");
        let (status, text) = send(&app, "/t", Some("application/json"), "[1]").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("element 0 of the batch is a number"), "{text}");
        let (status, text) = send(&app, "/t", Some("application/json"), r#"{"time": "yesterday"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("invalid time"), "{text}");
        let (status, text) = send(&app, "/t", Some("text/plain"), "hello").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("'json' or 'msgpack' parameter is required"), "{text}");
        let long = format!("/{}", "a".repeat(MAX_TAG_LEN + 1));
        let (status, text) = send(&app, &long, Some("application/json"), "{}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("exceeds the limit"), "{text}");
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.requests, snapshot.bad_requests, snapshot.rejected_tags, snapshot.events),
            (5, 4, 1, 0)
        );
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn only_post_with_a_tag_is_routed() {
        let (app, _rx, _) = app(8);
        let response = app.clone().oneshot(Request::get("/t").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        let (status, _) = send(&app, "/", Some("application/json"), "{}").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn closed_receiver_gives_503() {
        let (app, rx, stats) = app(1);
        drop(rx);
        let (status, _) = send(&app, "/t", Some("application/json"), "{}").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(stats.snapshot().unavailable, 1);
    }

    #[test]
    fn urlencoded_decoding() {
        assert_eq!(
            parse_urlencoded("a=1&b=x+y%21&c&&d=%zz"),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x y!".to_string()),
                ("c".to_string(), String::new()),
                ("d".to_string(), "%zz".to_string()),
            ]
        );
    }

    #[test]
    fn settings_from_config() {
        let source = HttpSource {
            bind: "0.0.0.0".into(),
            port: 9880,
            label: None,
            time_key: "ts".into(),
            keep_time_key: false,
            time_format: None,
            origin: crate::monitoring::logs::config::Origin { file: "f".into(), line: 1 },
        };
        let settings = HttpInputSettings::from(&source);
        assert_eq!(
            (settings.time_key.as_str(), settings.keep_time_key, settings.time_format),
            ("ts", false, None)
        );
    }
}
