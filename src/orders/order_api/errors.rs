//! The order API's error answers, as FastAPI 0.111 with pydantic 2.8 writes them.
//!
//! A 422 is `{"detail":[{"type","loc","msg","input","ctx"?}, …]}` in that key order, every problem of
//! the request listed (path first, then query, then body, fields in declaration order). The types and
//! messages are pydantic-core's own (`missing` "Field required", `int_parsing`, `enum`, …), so clients
//! written against the original read chaoslab's answers unchanged.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::orders::store::StoreError;

/// One validation problem, pydantic v2's shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldError {
    /// Pydantic's error type (`missing`, `int_parsing`, `json_invalid`, …).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where: `["body", "price"]`, `["query", "limit"]`, `["path", "order_id"]`, `["body", 13]`.
    pub loc: Vec<Value>,
    /// Pydantic's message.
    pub msg: String,
    /// The value that failed, as received (boxed: errors travel in `Result`s).
    pub input: Box<Value>,
    /// The rule's parameters (`{"gt": 0}`, `{"expected": …}`, `{"error": …}`), where pydantic gives them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Box<Value>>,
}

impl FieldError {
    /// An error at `loc` with no `ctx`.
    pub fn new(kind: &'static str, loc: Vec<Value>, msg: impl Into<String>, input: Value) -> FieldError {
        FieldError { kind, loc, msg: msg.into(), input: Box::new(input), ctx: None }
    }

    /// The same error with `ctx`.
    pub fn with_ctx(mut self, ctx: Value) -> FieldError {
        self.ctx = Some(Box::new(ctx));
        self
    }

    /// `missing` "Field required" at `loc`.
    pub fn missing(loc: Vec<Value>, input: Value) -> FieldError {
        FieldError::new("missing", loc, "Field required", input)
    }
}

/// `["body", "price"]` and the like.
pub fn loc(source: &str, name: &str) -> Vec<Value> {
    vec![source.into(), name.into()]
}

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// 422 with every problem.
    Invalid(Vec<FieldError>),
    /// 400: the body could not be read as text (FastAPI's "There was an error parsing the body").
    BadBody,
    /// 404 `{"detail":"Order not found"}`.
    NotFound,
    /// 413: a body over the limit.
    TooLarge,
    /// 503: the database cannot be reached.
    Unavailable(String),
    /// 500.
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Invalid(m) => {
                ApiError::Invalid(vec![FieldError::new("value_error", vec!["body".into()], m, Value::Null)])
            }
            StoreError::Backend(m) => ApiError::Internal(m),
        }
    }
}

/// `{"detail": …}` with FastAPI's `application/json` (no charset).
pub fn detail(status: StatusCode, detail: Value) -> Response {
    let mut resp = (status, Json(json!({ "detail": detail }))).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Invalid(errors) => {
                detail(StatusCode::UNPROCESSABLE_ENTITY, serde_json::to_value(errors).unwrap_or_default())
            }
            ApiError::BadBody => {
                detail(StatusCode::BAD_REQUEST, "There was an error parsing the body".into())
            }
            ApiError::NotFound => detail(StatusCode::NOT_FOUND, "Order not found".into()),
            ApiError::TooLarge => detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large".into()),
            ApiError::Unavailable(m) => {
                tracing::warn!("order API: database unavailable: {m}");
                detail(StatusCode::SERVICE_UNAVAILABLE, "Database unavailable".into())
            }
            ApiError::Internal(m) => {
                tracing::error!("order API: internal error: {m}");
                detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error".into())
            }
        }
    }
}

/// Gathers the problems of one request, in the order FastAPI reports them.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    /// Keeps `value` or records its error.
    pub fn take<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    /// `Ok(value)` when nothing was recorded, else every problem.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            _ if !self.0.is_empty() => Err(ApiError::Invalid(self.0)),
            Some(v) => Ok(v),
            None => Err(ApiError::Internal("validation produced no value and no error".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialise_in_pydantics_key_order_without_an_empty_ctx() {
        let e = FieldError::missing(loc("body", "user_id"), json!({"price": 2}));
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"missing","loc":["body","user_id"],"msg":"Field required","input":{"price":2}}"#
        );
        let e = FieldError::new(
            "greater_than",
            loc("query", "limit"),
            "Input should be greater than 0",
            "0".into(),
        )
        .with_ctx(json!({"gt": 0}));
        assert!(serde_json::to_string(&e).unwrap().ends_with(r#""input":"0","ctx":{"gt":0}}"#));
    }
}
