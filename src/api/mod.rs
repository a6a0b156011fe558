//! The HTTP API of a live run (axum): Prometheus metrics, health, components, links and the index.
//!
//! - `GET /metrics` — Prometheus text format 0.0.4.
//! - `GET /health` — every component's state; 200 when all run, 503 otherwise.
//! - `GET /api/components`, `GET /api/links` — supervisor and link state as JSON.
//! - `GET /indices`, `GET /indices/{name}/docs?from=&size=` — the `ELASTICSEARCH` document index.
//! - `GET /api/bus/brokers|topics|topics/{name}|groups|groups/{group}` — the bus: brokers, partitions with
//!   leader, replicas and ISR, consumer groups with members, committed offsets and lag.
//! - `GET|POST /api/v1/query?query=…` — Prometheus's instant-query API over the run's metrics ([`query`]).
//! - `GET /api/orders/invariants` — the order services' invariants, checked now; and the order API itself
//!   (`/orders/`, `/create_order`, `/list_orders`, `/docs`, …) when the flow runs it.
//!
//! The router is also usable in-process (tower `oneshot`), which is how sim-mode tools query it. Around
//! it in a live run: [`catch_panics`] (a handler's panic is a 500), [`loopback_hosts_only`] (no DNS
//! rebinding), [`guards`] (order writes, the alerts webhook) and [`auth`]'s control-plane credentials
//! with [`limiter`]'s bound on failed checks.

pub mod auth;
pub mod control;
pub mod docs;
pub mod guards;
pub mod limiter;
pub mod mesh;
pub mod query;
pub mod reasoning;
pub mod session;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::bus::kafka_cluster::BusHandle;
use crate::kernel::supervisor::State as Lifecycle;
use crate::monitoring::metrics_store::MetricsStoreHandle;
use crate::orders::service::OrderDb;
use crate::sinks::document_index::{IndexStore, validate_index_name};
use crate::topology::Pipeline;
use crate::topology::build::HttpRoutes;

/// Largest page `GET /indices/{name}/docs` returns.
pub const MAX_PAGE: usize = 10_000;

/// The API over a pipeline.
pub fn router(p: Arc<Pipeline>) -> Router {
    let served: Vec<Router> = p.handles.all::<HttpRoutes>().into_iter().map(|(_, r)| r.0.clone()).collect();
    let api = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/api/components", get(components))
        .route("/api/links", get(links))
        .route("/indices", get(indices))
        .route("/indices/{name}/docs", get(docs))
        .route("/api/orders/invariants", get(invariants))
        .route("/alerts", axum::routing::post(alerts))
        .route("/api/incidents", get(incidents))
        .route("/api/bus/brokers", get(bus_brokers))
        .route("/api/bus/topics", get(bus_topics))
        .route("/api/bus/topics/{name}", get(bus_topic))
        .route("/api/bus/groups", get(bus_groups))
        .route("/api/bus/groups/{group}", get(bus_group))
        .merge(query::routes())
        .with_state(p)
        .merge(docs::routes());
    served.into_iter().fold(api, Router::merge)
}

/// Turns a panic in any handler of `router` into a 500 `{"error": …}` and an error log line, where it would
/// otherwise drop the connection. Every listener chaoslab serves goes through this.
pub fn catch_panics(router: Router) -> Router {
    router.layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
}

/// Refuses requests whose `Host` is not a loopback name or address (403): a server on 127.0.0.1 is
/// then out of reach of DNS rebinding, where a foreign page's own host name comes to resolve to
/// 127.0.0.1 and its scripts talk to the control plane and the order API as a same-origin page. A
/// request without `Host` (HTTP/1.0) passes.
pub fn loopback_hosts_only(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(check_host))
}

/// Whether a `Host` header names this machine's loopback (`localhost`, `127.x.y.z`, `[::1]`, any port).
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host
            .rsplit_once(':')
            .map_or(host, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn check_host(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match req.headers().get(header::HOST).map(|h| h.to_str().unwrap_or("")) {
        Some(host) if !is_loopback_host(host) => {
            let why = format!(
                "Host {:?} is not this server: it listens on loopback only (a DNS rebinding?); use 127.0.0.1 or localhost",
                crate::config::cut(host)
            );
            (StatusCode::FORBIDDEN, Json(json!({ "error": why }))).into_response()
        }
        _ => next.run(req).await,
    }
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!("a request handler panicked: {what}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "internal error: the handler failed; see the log"})),
    )
        .into_response()
}

fn bus(p: &Pipeline) -> Option<&BusHandle> {
    p.handles.first::<BusHandle>()
}

fn no_bus() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "this pipeline runs no embedded bus"}))).into_response()
}

fn bus_error(e: crate::bus::BusError) -> Response {
    use crate::bus::BusError;
    let status = match e {
        BusError::UnknownTopic { .. } | BusError::UnknownGroup { .. } => StatusCode::NOT_FOUND,
        BusError::LeaderNotAvailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}

async fn bus_brokers(State(p): State<Arc<Pipeline>>) -> Response {
    match bus(&p) {
        Some(o) => Json(json!({"brokers": o.bus.brokers(), "stats": o.bus.stats()})).into_response(),
        None => no_bus(),
    }
}

async fn bus_topics(State(p): State<Arc<Pipeline>>) -> Response {
    let Some(o) = bus(&p) else { return no_bus() };
    let admin = o.bus.admin();
    let topics: Vec<Value> = admin
        .list_topics()
        .iter()
        .filter_map(|t| admin.describe_topic(t).ok())
        .map(|d| serde_json::to_value(d).unwrap_or_default())
        .collect();
    Json(Value::Array(topics)).into_response()
}

async fn bus_topic(State(p): State<Arc<Pipeline>>, Path(name): Path<String>) -> Response {
    let Some(o) = bus(&p) else { return no_bus() };
    match o.client.describe_topic(&name).await {
        Ok(d) => {
            let in_sync = d.all_replicas_in_sync();
            let offline = d.has_offline_partitions();
            let mut v = serde_json::to_value(d).unwrap_or_default();
            v["all_replicas_in_sync"] = in_sync.into();
            v["has_offline_partitions"] = offline.into();
            Json(v).into_response()
        }
        Err(e) => bus_error(e),
    }
}

async fn bus_groups(State(p): State<Arc<Pipeline>>) -> Response {
    match bus(&p) {
        Some(o) => Json(o.bus.admin().list_groups()).into_response(),
        None => no_bus(),
    }
}

async fn bus_group(State(p): State<Arc<Pipeline>>, Path(group): Path<String>) -> Response {
    let Some(o) = bus(&p) else { return no_bus() };
    match o.bus.admin().describe_group(&group) {
        Ok(d) => Json(serde_json::to_value(d).unwrap_or_default()).into_response(),
        Err(e) => bus_error(e),
    }
}

async fn invariants(State(p): State<Arc<Pipeline>>) -> Response {
    let Some(db) = p.handles.first::<OrderDb>() else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "this pipeline runs no order services"})))
            .into_response();
    };
    match db.invariants().await {
        Ok(inv) => Json(inv).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": e.to_string()}))).into_response(),
    }
}

async fn metrics(State(p): State<Arc<Pipeline>>) -> Response {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], p.metrics.encode()).into_response()
}

async fn health(State(p): State<Arc<Pipeline>>) -> Response {
    let all = p.supervisor.health_all();
    let healthy = all.iter().all(|(_, h)| h.state == Lifecycle::Running);
    let body: BTreeMap<String, Value> =
        all.into_iter().map(|(n, h)| (n, serde_json::to_value(h).unwrap_or_default())).collect();
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"healthy": healthy, "components": body}))).into_response()
}

async fn components(State(p): State<Arc<Pipeline>>) -> Json<Value> {
    let list: Vec<Value> = p
        .supervisor
        .health_all()
        .into_iter()
        .map(|(name, h)| {
            let kind = p.supervisor.kind_of(&name).unwrap_or_default();
            let entry = p.flow.owner_of(&name).and_then(|o| p.flow.components.get(o));
            let (namespace, labels, external) = entry
                .map(|e| (e.namespace.clone(), e.labels.clone(), e.config.external_hosts()))
                .unwrap_or_default();
            json!({"name": name, "kind": kind, "namespace": namespace, "labels": labels,
                   "external_hosts": external, "health": h})
        })
        .collect();
    Json(Value::Array(list))
}

async fn links(State(p): State<Arc<Pipeline>>) -> Json<Value> {
    let list: Vec<Value> = p
        .links
        .values()
        .map(|l| json!({"name": l.name(), "from": l.from(), "to": l.to(), "faults": l.faults(), "stats": l.stats(), "in_flight": l.in_flight()}))
        .collect();
    Json(Value::Array(list))
}

fn stores(p: &Pipeline) -> Vec<&IndexStore> {
    p.handles.all::<IndexStore>().into_iter().map(|(_, s)| s).collect()
}

async fn indices(State(p): State<Arc<Pipeline>>) -> Json<Value> {
    let all: Vec<_> = stores(&p).iter().flat_map(|s| s.list()).collect();
    Json(serde_json::to_value(all).unwrap_or_default())
}

/// Paging of `GET /indices/{name}/docs`.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    from: usize,
    #[serde(default = "default_size")]
    size: usize,
}

fn default_size() -> usize {
    10
}

async fn docs(
    State(p): State<Arc<Pipeline>>,
    Path(name): Path<String>,
    page: Result<Query<Page>, QueryRejection>,
) -> Response {
    let Ok(Query(page)) = page else {
        let body = json!({"error": "query parameters 'from' and 'size' must be non-negative integers"});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    if let Err(e) = validate_index_name(&name) {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": e.to_string()}))).into_response();
    }
    if page.size > MAX_PAGE {
        let body = json!({"error": format!("size must be at most {MAX_PAGE}, got {}", page.size)});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let Some(store) = stores(&p).into_iter().find(|s| s.list().iter().any(|i| i.name == name)) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": format!("no such index: {name}")})))
            .into_response();
    };
    let docs = store.docs(&name, page.from, page.size);
    let docs: Vec<&serde_json::value::RawValue> = docs.iter().map(|d| &**d).collect();
    let total = store.count(&name);
    Json(json!({"index": name, "total": total, "from": page.from, "docs": docs})).into_response()
}

/// `POST /alerts`: the ingestion service's webhook (Alertmanager's format, from ours or a real one).
async fn alerts(State(p): State<Arc<Pipeline>>, body: axum::body::Bytes) -> Response {
    let Some(m) = p.handles.first::<MetricsStoreHandle>() else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "monitoring is off in this flow"})))
            .into_response();
    };
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            m.ingestion.stats.refused.inc();
            return (StatusCode::BAD_REQUEST, Json(json!({"error": format!("the body is not JSON: {e}")})))
                .into_response();
        }
    };
    match m.ingestion.ingest(&payload).await {
        Ok(n) => Json(json!({"signals": n})).into_response(),
        Err(e @ crate::monitoring::metrics_store::IngestError::Invalid(_)) => {
            (StatusCode::BAD_REQUEST, Json(json!({"error": e.to_string()}))).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": e.to_string()}))).into_response(),
    }
}

/// `GET /api/incidents`: incidents reported so far, with the faults that explain them.
async fn incidents(State(p): State<Arc<Pipeline>>) -> Response {
    let incidents = crate::reasoning::incident_reasoner::incidents(&p);
    let truth = crate::chaos::truth::ground_truth(&p.faults.all(), &incidents);
    Json(json!({"incidents": incidents, "ground_truth": truth})).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn loopback_hosts_are_recognised_whatever_their_port() {
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:18000",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:80",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in
            ["evil.example", "evil.example:8080", "10.0.0.1:80", "127.0.0.1.evil.example", "[::2]:80", ""]
        {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[tokio::test]
    async fn a_foreign_host_is_refused_before_any_handler_runs() {
        let app = loopback_hosts_only(
            Router::new().route("/orders", axum::routing::delete(|| async { "deleted" })),
        );
        let call = |host: &'static str| {
            let app = app.clone();
            async move {
                let req = Request::delete("/orders").header("host", host).body(Body::empty()).unwrap();
                app.oneshot(req).await.unwrap().status()
            }
        };
        assert_eq!(call("rebound.example:8080").await, StatusCode::FORBIDDEN);
        assert_eq!(call("127.0.0.1:8080").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
        let app = catch_panics(
            Router::new()
                .route(
                    "/boom",
                    get(|| async { format!("{:?}", std::time::Duration::from_secs_f64(f64::MAX)) }),
                )
                .route("/fine", get(|| async { "fine" })),
        );
        let res = app.clone().oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("internal error"), "{v}");
        let res = app.oneshot(Request::get("/fine").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
}
