//! HTTP faults on the HTTP services: a tower middleware that reads the rules in force.
//!
//! A rule ([`HttpRule`]) is Chaos Mesh's `PodHttpChaosRule` — a side (request or response), a filter
//! (path glob, method, status, headers) and an action (abort, delay, replace, patch) — or one of Chaos
//! Monkey for Spring Boot's request assaults (random latency, an exception). Rules are keyed by the fault
//! that installed them and act on the components it targets only. Within an exchange they apply in Chaos
//! Mesh's order: abort, delay, replace, patch. A request whose path or method was replaced is routed again
//! through the service's own routes, as the pod's server would see it behind Chaos Mesh's proxy. The
//! middleware sits on the services' routes only, so the control plane (`/api/faults`, `/metrics`) stays
//! reachable while a service is being hurt. Draws come from a seeded stream.

mod rule;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header, request, response};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng as _;
use tower::ServiceExt as _;

pub use self::rule::{HttpAction, HttpFilter, HttpPatch, HttpReplace, HttpRule, HttpTarget};
use crate::kernel::seed::Rng;

/// Largest body the middleware buffers to replace or patch it.
pub const MAX_BUFFERED: usize = 16 * 1024 * 1024;

struct Installed {
    fault: String,
    /// The components it acts on (empty: all).
    targets: Vec<String>,
    rule: HttpRule,
}

/// The HTTP fault rules in force.
pub struct HttpFaults {
    rules: Mutex<Vec<Installed>>,
    rng: Mutex<Rng>,
}

impl HttpFaults {
    /// No rules; draws from `rng`.
    pub fn new(rng: Rng) -> Self {
        HttpFaults { rules: Mutex::new(Vec::new()), rng: Mutex::new(rng) }
    }

    fn rules(&self) -> MutexGuard<'_, Vec<Installed>> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Installs `rule` for fault `fault` on the components `targets` (empty: every HTTP service).
    pub fn add(&self, fault: &str, targets: &[String], rule: HttpRule) {
        self.rules().push(Installed { fault: fault.to_owned(), targets: targets.to_vec(), rule });
    }

    /// Removes the rules of fault `fault`.
    pub fn remove(&self, fault: &str) {
        self.rules().retain(|r| r.fault != fault);
    }

    /// The rules acting on `component`, in the order they were installed.
    fn for_component(&self, component: &str) -> Vec<HttpRule> {
        self.rules()
            .iter()
            .filter(|r| r.targets.is_empty() || r.targets.iter().any(|t| t == component))
            .map(|r| r.rule.clone())
            .collect()
    }

    /// Whether an exchange is hit at `rate`.
    fn draw(&self, rate: f64) -> bool {
        rate >= 1.0 || self.rng.lock().unwrap_or_else(PoisonError::into_inner).r#gen::<f64>() < rate
    }

    fn wait(&self, action: &HttpAction) -> Duration {
        match action {
            HttpAction::Delay(t) => *t,
            HttpAction::Latency(min, max) => {
                let span = max.saturating_sub(*min).as_millis() as u64;
                let extra = if span == 0 {
                    0
                } else {
                    self.rng.lock().unwrap_or_else(PoisonError::into_inner).gen_range(0..=span)
                };
                *min + Duration::from_millis(extra)
            }
            _ => Duration::ZERO,
        }
    }

    /// The matching rules of one side, drawn and in Chaos Mesh's order.
    fn hits(
        &self,
        rules: &[HttpRule],
        side: HttpTarget,
        matches: impl Fn(&HttpFilter) -> bool,
    ) -> Vec<HttpAction> {
        let mut hit: Vec<HttpAction> = rules
            .iter()
            .filter(|r| r.target == side && matches(&r.filter) && self.draw(r.rate))
            .map(|r| r.action.clone())
            .collect();
        hit.sort_by_key(HttpAction::phase);
        hit
    }
}

/// The middleware's state for one service: the rules, the component's name, and its routes (to route a
/// rewritten request again).
#[derive(Clone)]
pub struct HttpGate {
    faults: Arc<HttpFaults>,
    component: Arc<str>,
    routes: Router,
}

impl HttpGate {
    /// Wraps `routes` (component `component`'s) in the fault middleware.
    pub fn layer(faults: Arc<HttpFaults>, component: &str, routes: Router) -> Router {
        let gate = HttpGate { faults, component: component.into(), routes: routes.clone() };
        routes.layer(axum::middleware::from_fn_with_state(gate, middleware))
    }
}

/// A body, streaming or read.
enum Content {
    Stream(Body),
    Read(Bytes),
}

impl Content {
    async fn bytes(self) -> Result<Bytes, String> {
        match self {
            Content::Read(b) => Ok(b),
            Content::Stream(body) => axum::body::to_bytes(body, MAX_BUFFERED)
                .await
                .map_err(|e| format!("could not buffer the body (at most {MAX_BUFFERED} bytes): {e}")),
        }
    }

    fn body(self) -> Body {
        match self {
            Content::Stream(b) => b,
            Content::Read(b) => Body::from(b),
        }
    }
}

fn answer(code: u16, exception: bool, path: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    tracing::debug!(%path, code, "HTTP fault answered the exchange");
    if exception {
        let body = serde_json::json!({
            "error": status.canonical_reason().unwrap_or("Internal Server Error"),
            "exception": "java.lang.RuntimeException",
            "message": "Chaos Monkey - RuntimeException",
            "path": path,
            "status": code,
        });
        (status, axum::Json(body)).into_response()
    } else {
        (status, Body::empty()).into_response()
    }
}

fn bad_gateway(what: String) -> Response {
    tracing::warn!("HTTP fault: {what}");
    (StatusCode::BAD_GATEWAY, what).into_response()
}

/// The body with a JSON merge patch applied, when there is one; a body that is not JSON is left alone.
async fn merged(content: Content, patch: Option<&serde_json::Value>, side: &str) -> Result<Content, String> {
    let Some(patch) = patch else { return Ok(content) };
    let bytes = content.bytes().await?;
    Ok(match rule::merge_body(&bytes, patch) {
        Ok(b) => Content::Read(Bytes::from(b)),
        Err(why) => {
            tracing::debug!("HTTP fault: {side} body left alone: {why}");
            Content::Read(bytes)
        }
    })
}

/// Applies a request-side replace or patch; `Ok(true)` when the path or method changed.
async fn edit_request(
    parts: &mut request::Parts,
    content: Content,
    action: &HttpAction,
) -> Result<(Content, bool), String> {
    let mut rerouted = false;
    let content = match action {
        HttpAction::Replace(r) => {
            if let Some(path) = &r.path {
                parts.uri =
                    rule::with_path(&parts.uri, path).ok_or_else(|| format!("{path:?} is not a path"))?;
                rerouted = true;
            }
            if let Some(m) = &r.method {
                parts.method = m.clone();
                rerouted = true;
            }
            if !r.queries.is_empty() {
                parts.uri =
                    rule::with_query(&parts.uri, &r.queries, &[]).ok_or("a query could not be set")?;
            }
            rule::edit_headers(&mut parts.headers, &r.headers, &[]);
            match &r.body {
                Some(b) => Content::Read(Bytes::from(b.clone())),
                None => content,
            }
        }
        HttpAction::Patch(p) => {
            if !p.queries.is_empty() {
                parts.uri =
                    rule::with_query(&parts.uri, &[], &p.queries).ok_or("a query could not be added")?;
            }
            rule::edit_headers(&mut parts.headers, &[], &p.headers);
            merged(content, p.body.as_ref(), "request").await?
        }
        _ => content,
    };
    Ok((content, rerouted))
}

/// Applies a response-side replace or patch.
async fn edit_response(
    parts: &mut response::Parts,
    content: Content,
    action: &HttpAction,
) -> Result<Content, String> {
    Ok(match action {
        HttpAction::Replace(r) => {
            if let Some(code) = r.code {
                parts.status = StatusCode::from_u16(code).map_err(|e| format!("status {code}: {e}"))?;
            }
            rule::edit_headers(&mut parts.headers, &r.headers, &[]);
            match &r.body {
                Some(b) => Content::Read(Bytes::from(b.clone())),
                None => content,
            }
        }
        HttpAction::Patch(p) => {
            rule::edit_headers(&mut parts.headers, &[], &p.headers);
            merged(content, p.body.as_ref(), "response").await?
        }
        _ => content,
    })
}

fn fix_length(headers: &mut axum::http::HeaderMap, content: &Content) {
    if let Content::Read(b) = content {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
    }
}

/// The actions that do not edit the exchange: an abort or exception answers in its place (`Some`), a delay
/// waits; replace and patch are left to the caller (`None`).
async fn interrupt(faults: &HttpFaults, action: &HttpAction, path: &str) -> Option<Response> {
    match action {
        HttpAction::Abort(code) => Some(answer(*code, false, path)),
        HttpAction::Exception(code) => Some(answer(*code, true, path)),
        HttpAction::Delay(_) | HttpAction::Latency(..) => {
            tokio::time::sleep(faults.wait(action)).await;
            None
        }
        HttpAction::Replace(_) | HttpAction::Patch(_) => None,
    }
}

/// The middleware (see [`HttpGate::layer`]).
pub async fn middleware(State(gate): State<HttpGate>, req: Request, next: Next) -> Response {
    let rules = gate.faults.for_component(&gate.component);
    if rules.is_empty() {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let matched: Vec<HttpRule> = rules.into_iter().filter(|r| r.filter.request_matches(&parts)).collect();
    let mut content = Content::Stream(body);
    let mut rerouted = false;
    for action in gate.faults.hits(&matched, HttpTarget::Request, |_| true) {
        if let Some(answered) = interrupt(&gate.faults, &action, &path).await {
            return answered;
        }
        match edit_request(&mut parts, content, &action).await {
            Ok((c, moved)) => {
                content = c;
                rerouted |= moved;
            }
            Err(why) => return bad_gateway(format!("request to {path}: {why}")),
        }
    }
    fix_length(&mut parts.headers, &content);
    let req = Request::from_parts(parts, content.body());
    let response = if rerouted {
        match gate.routes.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    } else {
        next.run(req).await
    };
    let (mut parts, body) = response.into_parts();
    let mut content = Content::Stream(body);
    for action in gate.faults.hits(&matched, HttpTarget::Response, |f| f.response_matches(&parts)) {
        if let Some(answered) = interrupt(&gate.faults, &action, &path).await {
            return answered;
        }
        match edit_response(&mut parts, content, &action).await {
            Ok(c) => content = c,
            Err(why) => return bad_gateway(format!("response of {path}: {why}")),
        }
    }
    fix_length(&mut parts.headers, &content);
    Response::from_parts(parts, content.body())
}

#[cfg(test)]
mod tests;
