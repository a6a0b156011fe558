//! `GET|POST /api/v1/query`: Prometheus's instant-query API over the run's metrics (the metrics store's
//! scraped history when the flow runs `PROMETHEUS`, otherwise the registry now), answered in Prometheus's
//! JSON format, so that what reads Prometheus — `chaoslab campaign run --target`, a notebook, `curl` —
//! reads chaoslab the same way. Queries are evaluated at the run's current time; `time` is not supported.

use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::monitoring::promql;
use crate::topology::Pipeline;

/// The longest query accepted, in bytes.
pub const MAX_QUERY: usize = 16 * 1024;

/// The routes.
pub fn routes() -> Router<Arc<Pipeline>> {
    Router::new().route("/api/v1/query", get(query_get).post(query_post))
}

/// The parameters.
#[derive(Deserialize)]
pub struct Params {
    query: Option<String>,
    time: Option<String>,
}

fn bad(message: impl Into<String>) -> Response {
    let body = json!({"status": "error", "errorType": "bad_data", "error": message.into()});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// A number as Prometheus writes sample values (`NaN`, `+Inf`, `-Inf`, shortest decimal otherwise).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        v.to_string()
    }
}

fn answer(p: &Pipeline, params: Params) -> Response {
    let Some(query) = params.query.filter(|q| !q.trim().is_empty()) else {
        return bad("missing the query parameter \"query\"");
    };
    if query.len() > MAX_QUERY {
        return bad(format!("the query is longer than {MAX_QUERY} bytes"));
    }
    if params.time.is_some() {
        return bad("\"time\" is not supported: queries are evaluated at the run's current time");
    }
    let at = p.clock.now().timestamp_millis() as f64 / 1000.0;
    let value = match crate::monitoring::query_at(p, &query) {
        Ok(v) => v,
        Err(e) => {
            let body = json!({"status": "error", "errorType": "execution", "error": e});
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
        }
    };
    let (kind, result) = match value {
        promql::Value::Scalar(v) => ("scalar", json!([at, number(v)])),
        promql::Value::String(s) => ("string", json!([at, s])),
        promql::Value::Vector(samples) => (
            "vector",
            Value::Array(
                samples
                    .into_iter()
                    .map(|s| json!({"metric": s.labels, "value": [at, number(s.value)]}))
                    .collect(),
            ),
        ),
    };
    Json(json!({"status": "success", "data": {"resultType": kind, "result": result}})).into_response()
}

async fn query_get(
    State(p): State<Arc<Pipeline>>,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    match params {
        Ok(Query(params)) => answer(&p, params),
        Err(e) => bad(e.body_text()),
    }
}

async fn query_post(State(p): State<Arc<Pipeline>>, params: Result<Form<Params>, FormRejection>) -> Response {
    match params {
        Ok(Form(params)) => answer(&p, params),
        Err(e) => bad(e.body_text()),
    }
}
