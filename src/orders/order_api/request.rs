//! How FastAPI 0.111 reads the order API's requests: the body by its content type, then the models
//! (`PokeOrderCreate`, `PokeOrderUpdate`, the `/create_order` form) and the path and query parameters,
//! every problem collected with the original's `loc`.
//!
//! - A JSON route parses the body as JSON when the content type is absent, `application/json` or
//!   `application/*+json` (any case, any parameters), as Python's `json.loads` does ([`pyjson`]); a
//!   decode error is `json_invalid` at `["body", <code-point position>]`, bytes that are not text are
//!   400. Any other content type hands the raw text to the model, which refuses it
//!   (`model_attributes_type`). An empty body or `null` is `missing` at `["body"]`.
//! - The form route reads `application/x-www-form-urlencoded` and `multipart/form-data`; an empty
//!   field is missing, and any other content type leaves all four fields missing.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::MAX_NAME;
use super::errors::{ApiError, FieldError, Problems, loc};
use super::lax::{self, Given, Range};
use super::pyjson::{self, DecodeError, PyValue};
use crate::orders::model::{NewOrder, OrderState};

/// A JSON route's body, read.
#[derive(Debug)]
pub enum Body {
    /// None, empty, or `null`.
    Missing,
    /// Parsed JSON.
    Json(PyValue),
    /// A body of another content type, as text.
    Raw(String),
}

/// A content type's `type/subtype`, lower-case, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether FastAPI parses a body of this content type as JSON.
pub fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type.map(str::trim).filter(|c| !c.is_empty()) else { return true };
    match media_type(ct).split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    }
}

/// Reads a JSON route's body.
pub fn json_body(content_type: Option<&str>, bytes: &[u8]) -> Result<Body, ApiError> {
    if bytes.is_empty() {
        return Ok(Body::Missing);
    }
    if !is_json(content_type) {
        return Ok(Body::Raw(String::from_utf8_lossy(bytes).into_owned()));
    }
    match pyjson::loads(bytes) {
        Ok(PyValue::Null) => Ok(Body::Missing),
        Ok(v) => Ok(Body::Json(v)),
        // Not text, or a number or a nesting Python cannot hold: FastAPI's 400.
        Err(DecodeError::NotText | DecodeError::Other { .. }) => Err(ApiError::BadBody),
        Err(DecodeError::Invalid { msg, pos }) => Err(ApiError::Invalid(vec![
            FieldError::new("json_invalid", vec!["body".into(), pos.into()], "JSON decode error", json!({}))
                .with_ctx(json!({ "error": msg })),
        ])),
    }
}

/// The body as an object of fields, or the error pydantic gives a model for it.
fn fields(body: &Body) -> Result<&[(String, PyValue)], FieldError> {
    let whole = || vec![Value::from("body")];
    const MSG: &str = "Input should be a valid dictionary or object to extract fields from";
    match body {
        Body::Missing => Err(FieldError::missing(whole(), Value::Null)),
        Body::Json(PyValue::Object(members)) => Ok(members),
        Body::Json(other) => Err(FieldError::new("model_attributes_type", whole(), MSG, other.to_json())),
        Body::Raw(text) => Err(FieldError::new("model_attributes_type", whole(), MSG, text.clone().into())),
    }
}

fn member<'a>(members: &'a [(String, PyValue)], name: &str) -> Option<&'a PyValue> {
    members.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn object_json(members: &[(String, PyValue)]) -> Value {
    Value::Object(members.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

/// `PokeOrderCreate` from a JSON body, every problem reported (after those already in `problems`).
pub fn new_order(body: &Body, mut problems: Problems) -> Result<NewOrder, ApiError> {
    let members = match fields(body) {
        Ok(m) => m,
        Err(e) => {
            problems.0.push(e);
            return problems.finish(None);
        }
    };
    let get = |name: &str| member(members, name).map(Given::Json);
    let order = read_order(&mut problems, get, || object_json(members));
    problems.finish(order)
}

/// The `/create_order` form's fields (already decoded; an empty value counts as missing).
pub fn form_order(form: &BTreeMap<String, String>) -> Result<NewOrder, ApiError> {
    let mut problems = Problems::default();
    let get = |name: &str| form.get(name).filter(|v| !v.is_empty()).map(|v| Given::Text(v));
    let order = read_order(&mut problems, get, || Value::Null);
    problems.finish(order)
}

fn read_order<'a>(
    problems: &mut Problems,
    get: impl Fn(&str) -> Option<Given<'a>>,
    whole: impl Fn() -> Value,
) -> Option<NewOrder> {
    // Each field in the model's order: missing, or refused, or kept.
    let given = |problems: &mut Problems, name: &'static str| {
        let value = get(name);
        if value.is_none() {
            problems.0.push(FieldError::missing(loc("body", name), whole()));
        }
        value.map(|v| (v, loc("body", name)))
    };
    let user_id =
        given(problems, "user_id").and_then(|(v, at)| problems.take(lax::int(v, &at, Range::INT32)));
    let pokemon = given(problems, "pokemon").and_then(|(v, at)| problems.take(lax::string(v, &at, MAX_NAME)));
    let country = given(problems, "country").and_then(|(v, at)| problems.take(lax::string(v, &at, MAX_NAME)));
    let price = given(problems, "price").and_then(|(v, at)| problems.take(lax::float(v, &at)));
    Some(NewOrder { user_id: user_id?, pokemon: pokemon?, country: country?, price: price? })
}

/// `PokeOrderUpdate`'s `state` from a JSON body.
pub fn new_state(body: &Body, mut problems: Problems) -> Result<OrderState, ApiError> {
    let state = match fields(body) {
        Ok(members) => match member(members, "state") {
            None => {
                problems.0.push(FieldError::missing(loc("body", "state"), object_json(members)));
                None
            }
            Some(v) => problems.take(lax::state(Given::Json(v), &loc("body", "state"))),
        },
        Err(e) => {
            problems.0.push(e);
            None
        }
    };
    problems.finish(state)
}

/// The path's `order_id`.
pub fn order_id(raw: &str, problems: &mut Problems) -> Option<i64> {
    problems.take(lax::int(Given::Text(raw), &loc("path", "order_id"), Range::INT64))
}

/// A listing's `skip` (≥ 0, default 0) and `limit` (> 0, default 20).
pub fn paging(q: &BTreeMap<String, String>, problems: &mut Problems) -> (u64, u64) {
    let mut number = |name: &'static str, default: u64, min: i64| -> Option<u64> {
        let Some(raw) = q.get(name) else { return Some(default) };
        let at = loc("query", name);
        let n = problems.take(lax::int(Given::Text(raw), &at, Range::INT64))?;
        if n >= min {
            return u64::try_from(n).ok();
        }
        let (kind, msg, ctx) = if min == 0 {
            ("greater_than_equal", "Input should be greater than or equal to 0", json!({"ge": 0}))
        } else {
            ("greater_than", "Input should be greater than 0", json!({"gt": 0}))
        };
        problems.0.push(FieldError::new(kind, at, msg, raw.clone().into()).with_ctx(ctx));
        None
    };
    let skip = number("skip", 0, 0).unwrap_or(0);
    let limit = number("limit", 20, 1).unwrap_or(20);
    (skip, limit)
}
