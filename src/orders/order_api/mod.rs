//! `order-api` (`POKE-ORDER-API`): the reference's FastAPI service, route for route. It provides its
//! router as [`HttpRoutes`] (served on the HTTP port in live mode, called in-process in sim mode).
//!
//! `POST /orders/`, `GET /orders/` (`state`, `skip`, `limit`), `GET|PUT /orders/{id}`, `DELETE /orders`,
//! the HTML pages `GET|POST /create_order` and `GET /list_orders`, `/openapi.json` and `/docs`. The
//! contract is the original's (FastAPI 0.111, pydantic 2.8), checked against its recorded answers:
//! pydantic v2's 422 bodies ([`errors`]), its lax coercions ([`lax`]), FastAPI's reading of bodies by
//! content type and Python's JSON decoding ([`request`], [`pyjson`]), Starlette's routing (405 with the
//! first route's `Allow`, 307 to the path with its trailing slash toggled, JSON 404s), the pages
//! ([`pages`]) and the OpenAPI 3.1 document ([`openapi`]). A missing order is 404
//! `{"detail":"Order not found"}`, a database that cannot be reached is 503, and a stopped API answers
//! 503 to everything. Where the original failed with a 500 (integers past the column's range, NaN
//! prices, a NUL, an unknown `state` filter) chaoslab answers 422 instead.
//!
//! Creating an order is the reference's dual write: insert `pending`, commit, then produce to
//! `poke-orders`; a failed produce is logged and the order stays pending (and is reversed later). With
//! `publish = "outbox"` the order and an outbox row are written in one transaction instead, and an
//! `outbox-relay` component (`OUTBOX-RELAY`) produces from the outbox, so no order is ever stranded.

pub mod errors;
pub mod lax;
pub mod openapi;
pub mod pages;
pub mod pyjson;
pub mod request;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get};
use prometheus::{HistogramVec, IntCounter};
use serde::Deserialize;
use serde_json::{Value, json};

use self::errors::{ApiError, Problems};
use self::lax::Given;

use super::model::{NewOrder, Order, OrderState};
use super::service::{ORDERS_TOPIC, Orders, millis};
use crate::kernel::hooks::IoMethod;
use crate::kernel::metrics::ComponentMetrics;
use crate::topology::BuildCx;
use crate::topology::build::HttpRoutes;
use crate::topology::check::CheckCx;
use crate::topology::component::{ComponentKind, Hop, Reference};

/// How the order API publishes a new order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PublishMode {
    /// Commit, then produce; a failed produce leaves the order pending (the reference's dual write).
    #[default]
    Direct,
    /// Insert the order and an outbox row in one transaction; an `outbox-relay` produces from the outbox.
    Outbox,
}

/// `kind = "order-api"`.
#[derive(Clone, Debug, Deserialize)]
pub struct OrderApiConfig {
    /// The `order-store` component.
    pub store: String,
    /// The `kafka-cluster` component.
    pub bus: String,
    /// How new orders reach `poke-orders`.
    #[serde(default)]
    pub publish: PublishMode,
    /// The producer's `message.timeout.ms`.
    #[serde(default = "two_seconds", with = "humantime_serde")]
    pub produce_timeout: std::time::Duration,
}

fn two_seconds() -> std::time::Duration {
    std::time::Duration::from_secs(2)
}

impl ComponentKind for OrderApiConfig {
    const KIND: &'static str = "order-api";
    const NAMESPACE: &'static str = "orders";

    fn references(&self) -> Vec<Reference<'_>> {
        vec![
            Reference::new("store", &self.store, &["order-store"], Hop::To),
            Reference::new("bus", &self.bus, &["kafka-cluster"], Hop::To),
        ]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        if self.publish == PublishMode::Outbox {
            let relayed = cx
                .flow()
                .each::<crate::orders::outbox_relay::OutboxRelayConfig>()
                .any(|(_, r)| r.store == self.store);
            cx.require(
                relayed,
                "publish",
                format!("outbox needs an outbox-relay component on store {:?} (e.g. [components.OUTBOX-RELAY] kind = \"outbox-relay\")", self.store),
            );
        }
    }

    /// Provides its router as [`HttpRoutes`].
    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let orders = Orders::new(cx, name, &self.store, &self.bus, "poke-producer", self.produce_timeout)?;
        let m = cx.metrics(name);
        let api = Api {
            orders,
            counts: cx.registry().component(name),
            up: cx.up_flag(name),
            publish: self.publish,
            publish_failures: m.counter(
                "poke_order_publish_failures_total",
                "New orders whose produce to poke-orders failed (they stay pending).",
            )?,
            requests: m.histogram_vec(
                "poke_order_api_request_duration_seconds",
                "Order API request latency.",
                vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0],
                &["method", "route", "status"],
            )?,
        };
        let routes = crate::chaos::faults::http::HttpGate::layer(cx.http_faults.clone(), name, router(api));
        cx.provide(name, HttpRoutes(routes));
        cx.add(name, |ctx| async move {
            ctx.health.set_ready(true, "serving");
            ctx.shutdown.cancelled().await;
            Ok(())
        })
    }
}

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest Pokémon or country name accepted.
pub const MAX_NAME: usize = 100;

/// Inserts a new order and publishes it (or leaves it to the outbox).
async fn create_order(api: &Api, new: NewOrder) -> Result<Order, ApiError> {
    let o = &api.orders;
    let now = o.now();
    let outbox = (api.publish == PublishMode::Outbox).then_some(ORDERS_TOPIC);
    let order = o.db(IoMethod::Write, "orders", |s| async move { s.create(&new, now, outbox).await }).await?;
    // In: orders created; out: orders produced to poke-orders (with an outbox, OUTBOX-RELAY's out).
    api.counts.records_in.inc();
    o.ledger.created(order.id);
    o.trace.emit(
        &o.name,
        "order.created",
        &json!({"id": order.id, "user_id": order.user_id, "pokemon": order.pokemon, "price": order.price}),
    );
    o.event(order.id, "order created", &o.name).await;
    if outbox.is_none() {
        let value = Bytes::from(order.to_kafka_json());
        match o.publish(ORDERS_TOPIC, value, millis(now)).await {
            Ok(meta) => {
                api.counts.records_out.inc();
                o.trace.emit(
                    &o.name,
                    "order.published",
                    &json!({"id": order.id, "partition": meta.partition, "offset": meta.offset}),
                );
            }
            Err(e) => {
                // The reference only logs this in its delivery callback: the order stays pending, and
                // its message is lost.
                api.publish_failures.inc();
                api.counts.dropped("publish_failed");
                tracing::error!(component = %o.name, "Message delivery failed for order {}: {e}", order.id);
                o.trace.emit(
                    &o.name,
                    "order.publish_failed",
                    &json!({"id": order.id, "error": e.to_string()}),
                );
            }
        }
    }
    Ok(order)
}

#[derive(Clone)]
struct Api {
    orders: Orders,
    /// The component's in/out/dropped counters.
    counts: ComponentMetrics,
    /// The component's flag: while it is false every request gets 503.
    up: Arc<AtomicBool>,
    publish: PublishMode,
    publish_failures: IntCounter,
    requests: HistogramVec,
}

/// The routes in the original's registration order, with the methods each has: Starlette answers a
/// method a path lacks with 405 and the `Allow` of the *first* route whose path matches.
const ROUTES: [(&str, &str); 8] = [
    ("/openapi.json", "GET, HEAD"),
    ("/docs", "GET, HEAD"),
    ("/docs/oauth2-redirect", "GET, HEAD"),
    ("/create_order", "GET"),
    ("/list_orders", "GET"),
    ("/orders/", "POST"),
    ("/orders/{id}", "GET"),
    ("/orders", "DELETE"),
];

/// The route `path` matches, if any, with its methods.
fn route_of(path: &str) -> Option<&'static (&'static str, &'static str)> {
    ROUTES.iter().find(|(r, _)| match r.strip_suffix("{id}") {
        Some(prefix) => path.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty() && !rest.contains('/')),
        None => path == *r,
    })
}

/// The router of the order API.
fn router(state: Api) -> Router {
    Router::new()
        .route("/orders/", get(list_json).post(create_json).fallback(method_not_allowed))
        .route("/orders", delete(delete_all).fallback(method_not_allowed))
        .route("/orders/{id}", get(get_json).put(update_json).fallback(method_not_allowed))
        .route("/create_order", get(create_form).post(create_from_form).fallback(method_not_allowed))
        .route("/list_orders", get(list_html).fallback(method_not_allowed))
        .route("/openapi.json", get(openapi).fallback(method_not_allowed))
        .route("/docs", get(docs).fallback(method_not_allowed))
        .route("/docs/oauth2-redirect", get(docs).fallback(method_not_allowed))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
        .fallback(not_found)
}

/// A method a route does not have: Starlette's 405, `{"detail":"Method Not Allowed"}`, with the `Allow`
/// of the first route on that path. (Routes without GET have no HEAD either: FastAPI adds HEAD only to
/// its own documentation routes.)
async fn method_not_allowed(uri: Uri) -> Response {
    let allow = route_of(uri.path()).map_or("GET", |(_, allow)| allow);
    let mut resp = errors::detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed".into());
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// No route: Starlette's redirect to the same path with its trailing slash toggled when that path is a
/// route (307, absolute `Location` from the `Host` header, the query kept), else 404
/// `{"detail":"Not Found"}`.
async fn not_found(req: Request) -> Response {
    let path = percent_encoding::percent_decode_str(req.uri().path()).decode_utf8_lossy().into_owned();
    let toggled = match path.strip_suffix('/') {
        Some(_) => path.trim_end_matches('/').to_owned(),
        None => format!("{path}/"),
    };
    if toggled.starts_with('/') && !toggled.starts_with("//") && route_of(&toggled).is_some() {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let query = req.uri().query().map_or(String::new(), |q| format!("?{q}"));
        let location = format!("http://{host}{toggled}{query}");
        if let Ok(value) = HeaderValue::from_str(&location) {
            let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
            resp.headers_mut().insert(header::LOCATION, value);
            return resp;
        }
    }
    errors::detail(StatusCode::NOT_FOUND, "Not Found".into())
}

/// Refuses requests while the component is down, answers HEAD where the original has none, and records
/// latency per route.
async fn gate(State(api): State<Api>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let started = tokio::time::Instant::now();
    let decoded = percent_encoding::percent_decode_str(req.uri().path()).decode_utf8_lossy().into_owned();
    let resp = if !api.up.load(Ordering::SeqCst) {
        errors::detail(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable".into())
    } else if route_of(&decoded).is_none() {
        // Starlette matches the decoded path: `/orders/1%2F` is `/orders/1/`, no route (a redirect).
        not_found(req).await
    } else if method == Method::HEAD && !route.starts_with("/docs") && route != "/openapi.json" {
        let mut resp = method_not_allowed(req.uri().clone()).await;
        *resp.body_mut() = axum::body::Body::empty();
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        resp
    } else {
        next.run(req).await
    };
    let status = resp.status().as_u16().to_string();
    api.requests
        .with_label_values(&[method.as_str(), &route, &status])
        .observe(started.elapsed().as_secs_f64());
    resp
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("invalid"))
}

async fn create_json(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Order>, ApiError> {
    let body = request::json_body(content_type(&headers), &body)?;
    let new = request::new_order(&body, Problems::default())?;
    Ok(Json(create_order(&api, new).await?))
}

/// A listing's query: `state` (a lower-case state; empty is no filter), `skip`, `limit`.
fn listing(
    q: &BTreeMap<String, String>,
    strict_state: bool,
) -> Result<(Option<OrderState>, u64, u64), ApiError> {
    let mut problems = Problems::default();
    let (skip, limit) = request::paging(q, &mut problems);
    let state = match q.get("state").map(String::as_str) {
        None | Some("") => None,
        // The original checked the state only in the database, after the parameters: a bad page is
        // the one error it reports.
        Some(s) if strict_state && problems.0.is_empty() => {
            problems.take(lax::state(Given::Text(s), &errors::loc("query", "state")))
        }
        // The HTML listing ignores a state that is not one of the five, as the original does.
        Some(s) => OrderState::ALL.into_iter().find(|st| st.as_str() == s),
    };
    problems.finish(Some((state, skip, limit.min(MAX_PAGE))))
}

/// The most orders one listing returns.
const MAX_PAGE: u64 = 10_000;

async fn list_json(
    State(api): State<Api>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<Vec<Order>>, ApiError> {
    let (state, skip, limit) = listing(&q, true)?;
    Ok(Json(
        api.orders.db(IoMethod::Read, "orders", |s| async move { s.list(state, skip, limit).await }).await?,
    ))
}

async fn get_json(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Order>, ApiError> {
    let mut problems = Problems::default();
    let id = request::order_id(&id, &mut problems);
    let id = problems.finish(id)?;
    api.orders
        .db(IoMethod::Read, "orders", |s| async move { s.get(id).await })
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

async fn update_json(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Order>, ApiError> {
    let body = request::json_body(content_type(&headers), &body)?;
    let mut problems = Problems::default();
    let id = request::order_id(&id, &mut problems);
    let state = request::new_state(&body, problems)?;
    let Some(id) = id else { return Err(ApiError::Internal("an order id error was not reported".into())) };
    let o = &api.orders;
    let before = o
        .db(IoMethod::Read, "orders", |s| async move { s.get(id).await })
        .await?
        .ok_or(ApiError::NotFound)?;
    let after = o
        .db(IoMethod::Write, "orders", |s| async move { s.set_state(id, state).await })
        .await?
        .ok_or(ApiError::NotFound)?;
    if before.state != after.state {
        o.changed(id, before.state, after.state, &o.name).await;
    }
    Ok(Json(after))
}

async fn delete_all(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let n = api.orders.db(IoMethod::Write, "orders", |s| async move { s.delete_all().await }).await?;
    api.orders.trace.emit(&api.orders.name, "orders.deleted", &json!({"orders": n}));
    Ok(Json(json!({"detail": "All orders deleted"})))
}

async fn create_form() -> Html<String> {
    Html(pages::create_form())
}

/// `POST /create_order`: a urlencoded or multipart form; any other body leaves every field missing.
async fn create_from_form(State(api): State<Api>, req: Request) -> Result<Html<String>, ApiError> {
    let form = read_form(req).await?;
    let new = request::form_order(&form)?;
    let order = create_order(&api, new).await?;
    Ok(Html(pages::order_created(&order)))
}

async fn read_form(req: Request) -> Result<BTreeMap<String, String>, ApiError> {
    match request::media_type(content_type(req.headers()).unwrap_or("")).as_str() {
        "application/x-www-form-urlencoded" => {
            let bytes =
                axum::body::to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| ApiError::TooLarge)?;
            Ok(form_urlencoded::parse(&bytes).into_owned().collect())
        }
        "multipart/form-data" => {
            use axum::extract::FromRequest as _;
            let mut parts =
                axum::extract::Multipart::from_request(req, &()).await.map_err(|_| ApiError::BadBody)?;
            let mut form = BTreeMap::new();
            while let Some(field) = parts.next_field().await.map_err(|_| ApiError::BadBody)? {
                let Some(name) = field.name().map(str::to_owned) else { continue };
                let text = field.text().await.map_err(|_| ApiError::BadBody)?;
                form.insert(name, text);
            }
            Ok(form)
        }
        _ => Ok(BTreeMap::new()),
    }
}

async fn list_html(
    State(api): State<Api>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Html<String>, ApiError> {
    let (state, skip, limit) = listing(&q, false)?;
    let orders =
        api.orders.db(IoMethod::Read, "orders", |s| async move { s.list(state, skip, limit).await }).await?;
    let shown = q.get("state").map_or("", String::as_str);
    Ok(Html(pages::order_list(&orders, shown, skip, limit)))
}

async fn openapi() -> Json<Value> {
    Json(openapi::document())
}

async fn docs(method: Method, uri: Uri) -> Response {
    if method == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    if uri.path() == "/docs/oauth2-redirect" {
        return Html(pages::oauth2_redirect()).into_response();
    }
    Html(pages::docs()).into_response()
}
