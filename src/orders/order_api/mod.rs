//! `order-api` (`POKE-ORDER-API`): the reference's FastAPI service, route for route. It provides its
//! router as [`HttpRoutes`] (served on the HTTP port in live mode, called in-process in sim mode).
//!
//! `POST /orders/`, `GET /orders/` (`state`, `skip`, `limit`), `GET|PUT /orders/{id}`, `DELETE /orders`,
//! the HTML pages `GET|POST /create_order` and `GET /list_orders`, `/openapi.json` and `/docs`.
//! Validation errors are 422 with FastAPI's shape (`{"detail":[{"loc":["body","price"],"msg":…,"type":…}]}`),
//! a missing order is 404 `{"detail":"Order not found"}`, a database that cannot be reached is 503, and a
//! stopped API answers 503 to everything.
//!
//! Creating an order is the reference's dual write: insert `pending`, commit, then produce to
//! `poke-orders`; a failed produce is logged and the order stays pending (and is reversed later). With
//! `publish = "outbox"` the order and an outbox row are written in one transaction instead, and an
//! `outbox-relay` component (`OUTBOX-RELAY`) produces from the outbox, so no order is ever stranded.

pub mod pages;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Json};
use prometheus::{HistogramVec, IntCounter};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::model::{NewOrder, Order, OrderState};
use super::service::{ORDERS_TOPIC, Orders, millis};
use super::store::StoreError;
use crate::kernel::hooks::IoMethod;
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

/// One validation problem, FastAPI style.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// Where: `["body", "price"]`, `["query", "state"]`, `["path", "order_id"]`, `["body", 17]`.
    pub loc: Vec<Value>,
    /// What.
    pub msg: String,
    /// Pydantic's error type.
    pub kind: &'static str,
}

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// 422.
    Invalid(Vec<FieldError>),
    /// 404.
    NotFound,
    /// 503.
    Unavailable(String),
    /// 500.
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Invalid(m) => {
                ApiError::Invalid(vec![FieldError { loc: vec!["body".into()], msg: m, kind: "value_error" }])
            }
            StoreError::Backend(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Invalid(errors) => {
                let detail: Vec<Value> =
                    errors.iter().map(|e| json!({"loc": e.loc, "msg": e.msg, "type": e.kind})).collect();
                (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"detail": detail}))).into_response()
            }
            ApiError::NotFound => {
                (StatusCode::NOT_FOUND, Json(json!({"detail": "Order not found"}))).into_response()
            }
            ApiError::Unavailable(m) => {
                tracing::warn!("order API: database unavailable: {m}");
                (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"detail": "Database unavailable"})))
                    .into_response()
            }
            ApiError::Internal(m) => {
                tracing::error!("order API: internal error: {m}");
                (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"detail": "Internal Server Error"})))
                    .into_response()
            }
        }
    }
}

fn field(loc: &str, name: &str, msg: &str, kind: &'static str) -> FieldError {
    FieldError { loc: vec![loc.into(), name.into()], msg: msg.to_string(), kind }
}

fn body_error(msg: String, kind: &'static str) -> ApiError {
    ApiError::Invalid(vec![FieldError { loc: vec!["body".into()], msg, kind }])
}

/// Reads `PokeOrderCreate` from JSON fields (or form fields, all strings), collecting every problem.
pub fn validate_new_order(fields: &Map<String, Value>) -> Result<NewOrder, ApiError> {
    let mut errors = Vec::new();
    let missing = |name: &str| field("body", name, "field required", "value_error.missing");
    let user_id = match fields.get("user_id") {
        None => {
            errors.push(missing("user_id"));
            None
        }
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => s.trim().parse().ok(),
        Some(_) => {
            errors.push(field("body", "user_id", "value is not a valid integer", "type_error.integer"));
            None
        }
    };
    let mut text = |name: &str| match fields.get(name) {
        None => {
            errors.push(missing(name));
            None
        }
        Some(Value::String(s)) if s.chars().count() <= MAX_NAME => Some(s.clone()),
        Some(Value::String(_)) => {
            let msg = format!("ensure this value has at most {MAX_NAME} characters");
            errors.push(field("body", name, &msg, "value_error.any_str.max_length"));
            None
        }
        Some(_) => {
            errors.push(field("body", name, "str type expected", "type_error.str"));
            None
        }
    };
    let pokemon = text("pokemon");
    let country = text("country");
    let price = match fields.get("price") {
        None => {
            errors.push(missing("price"));
            None
        }
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if s.trim().parse::<f64>().is_ok_and(f64::is_finite) => s.trim().parse().ok(),
        Some(_) => {
            errors.push(field("body", "price", "value is not a valid float", "type_error.float"));
            None
        }
    };
    match (user_id, pokemon, country, price) {
        (Some(user_id), Some(pokemon), Some(country), Some(price)) if errors.is_empty() => {
            Ok(NewOrder { user_id, pokemon, country, price })
        }
        _ => Err(ApiError::Invalid(errors)),
    }
}

fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(body_error("value is not a valid dict".into(), "type_error.dict")),
        Err(e) => {
            // FastAPI points at the character offset of the error in the body.
            let offset = String::from_utf8_lossy(body)
                .split_inclusive('\n')
                .take(e.line().saturating_sub(1))
                .map(|l| l.chars().count())
                .sum::<usize>()
                + e.column().saturating_sub(1);
            Err(ApiError::Invalid(vec![FieldError {
                loc: vec!["body".into(), offset.into()],
                msg: format!("JSON decode error: {e}"),
                kind: "value_error.jsondecode",
            }]))
        }
    }
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::Invalid(vec![field(
            "path",
            "order_id",
            "value is not a valid integer",
            "type_error.integer",
        )])
    })
}

/// `state`, `skip`, `limit` of the listings.
pub fn validate_listing(q: &BTreeMap<String, String>) -> Result<(Option<OrderState>, u64, u64), ApiError> {
    let mut errors = Vec::new();
    let state = match q.get("state").map(String::as_str) {
        None | Some("") => None,
        Some(s) => match OrderState::from_str(s) {
            Ok(st) => Some(st),
            Err(e) => {
                errors.push(field("query", "state", &e.to_string(), "type_error.enum"));
                None
            }
        },
    };
    let mut number = |name: &str, default: u64, min: u64| -> u64 {
        match q.get(name) {
            None => default,
            Some(raw) => match raw.parse::<u64>() {
                Ok(v) if v >= min => v,
                _ => {
                    let msg = if min == 0 {
                        "ensure this value is greater than or equal to 0"
                    } else {
                        "ensure this value is greater than 0"
                    };
                    errors.push(field("query", name, msg, "value_error.number"));
                    default
                }
            },
        }
    };
    let skip = number("skip", 0, 0);
    let limit = number("limit", 20, 1).min(10_000);
    if errors.is_empty() { Ok((state, skip, limit)) } else { Err(ApiError::Invalid(errors)) }
}

/// Inserts a new order and publishes it (or leaves it to the outbox).
async fn create_order(api: &Api, new: NewOrder) -> Result<Order, ApiError> {
    let o = &api.orders;
    let now = o.now();
    let outbox = (api.publish == PublishMode::Outbox).then_some(ORDERS_TOPIC);
    let order = o.db(IoMethod::Write, "orders", |s| async move { s.create(&new, now, outbox).await }).await?;
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
                o.trace.emit(
                    &o.name,
                    "order.published",
                    &json!({"id": order.id, "partition": meta.partition, "offset": meta.offset}),
                );
            }
            Err(e) => {
                // The reference only logs this in its delivery callback: the order stays pending.
                api.publish_failures.inc();
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
    /// The component's flag: while it is false every request gets 503.
    up: Arc<AtomicBool>,
    publish: PublishMode,
    publish_failures: IntCounter,
    requests: HistogramVec,
}

/// The router of the order API.
fn router(state: Api) -> Router {
    Router::new()
        .route("/orders/", get(list_json).post(create_json).fallback(method_not_allowed))
        .route("/orders", get(list_json).post(create_json).delete(delete_all).fallback(method_not_allowed))
        .route("/orders/{id}", get(get_json).put(update_json).fallback(method_not_allowed))
        .route("/create_order", get(create_form).post(create_from_form).fallback(method_not_allowed))
        .route("/list_orders", get(list_html).fallback(method_not_allowed))
        .route("/openapi.json", get(openapi).fallback(method_not_allowed))
        .route("/docs", get(docs).fallback(method_not_allowed))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// A method a route does not have: FastAPI's 405, `{"detail":"Method Not Allowed"}` as JSON (axum adds the
/// `Allow` header, as Starlette does).
async fn method_not_allowed() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, Json(json!({"detail": "Method Not Allowed"}))).into_response()
}

/// Refuses requests while the component is down and records latency per route.
async fn gate(State(api): State<Api>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let started = tokio::time::Instant::now();
    let resp = if api.up.load(Ordering::SeqCst) {
        next.run(req).await
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"detail": "Service Unavailable"}))).into_response()
    };
    let status = resp.status().as_u16().to_string();
    api.requests
        .with_label_values(&[method.as_str(), &route, &status])
        .observe(started.elapsed().as_secs_f64());
    resp
}

async fn create_json(State(api): State<Api>, body: Bytes) -> Result<Json<Order>, ApiError> {
    let fields = parse_json_object(&body)?;
    let new = validate_new_order(&fields)?;
    Ok(Json(create_order(&api, new).await?))
}

async fn list_json(
    State(api): State<Api>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<Vec<Order>>, ApiError> {
    let (state, skip, limit) = validate_listing(&q)?;
    Ok(Json(
        api.orders.db(IoMethod::Read, "orders", |s| async move { s.list(state, skip, limit).await }).await?,
    ))
}

async fn get_json(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Order>, ApiError> {
    let id = parse_id(&id)?;
    api.orders
        .db(IoMethod::Read, "orders", |s| async move { s.get(id).await })
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

async fn update_json(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Order>, ApiError> {
    let id = parse_id(&id)?;
    let fields = parse_json_object(&body)?;
    let state = match fields.get("state") {
        None => {
            return Err(ApiError::Invalid(vec![field(
                "body",
                "state",
                "field required",
                "value_error.missing",
            )]));
        }
        Some(Value::String(s)) => OrderState::from_str(s).map_err(|e| {
            ApiError::Invalid(vec![field("body", "state", &e.to_string(), "type_error.enum")])
        })?,
        Some(_) => {
            return Err(ApiError::Invalid(vec![field(
                "body",
                "state",
                "str type expected",
                "type_error.str",
            )]));
        }
    };
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

async fn create_from_form(
    State(api): State<Api>,
    form: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Result<Html<String>, ApiError> {
    let Form(form) = form.map_err(|e| body_error(e.body_text(), "value_error.form"))?;
    let fields: Map<String, Value> = form.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let new = validate_new_order(&fields)?;
    let order = create_order(&api, new).await?;
    Ok(Html(pages::order_created(&order)))
}

async fn list_html(
    State(api): State<Api>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Html<String>, ApiError> {
    // The reference ignores a state that is not one of the five here.
    let mut q = q;
    if q.get("state").is_some_and(|s| OrderState::from_str(s).is_err()) {
        q.remove("state");
    }
    let (state, skip, limit) = validate_listing(&q)?;
    let orders =
        api.orders.db(IoMethod::Read, "orders", |s| async move { s.list(state, skip, limit).await }).await?;
    Ok(Html(pages::order_list(&orders, state, skip, limit)))
}

async fn openapi() -> Json<Value> {
    Json(pages::openapi())
}

async fn docs(method: Method) -> Response {
    if method == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    Html(pages::docs()).into_response()
}
