//! HTTP faults on the order API: a tower middleware that reads the rules in force.
//!
//! Envoy-style faults (abort with a status, delay, replace the body) and Chaos Monkey for Spring
//! Boot's request assaults (random latency, an exception) are rules keyed by the fault that installed
//! them. The middleware sits on the order API's router only, so the control plane (`/api/faults`,
//! `/metrics`) stays reachable while the API is being hurt. Draws come from a seeded stream.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng as _;

use super::spec::HttpAction;
use crate::kernel::seed::Rng;

struct Rule {
    fault: String,
    action: HttpAction,
    path: Option<String>,
    rate: f64,
}

/// The HTTP fault rules in force.
pub struct HttpFaults {
    rules: Mutex<Vec<Rule>>,
    rng: Mutex<Rng>,
}

impl HttpFaults {
    /// No rules; draws from `rng`.
    pub fn new(rng: Rng) -> Self {
        HttpFaults { rules: Mutex::new(Vec::new()), rng: Mutex::new(rng) }
    }

    fn rules(&self) -> MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Installs a rule for fault `fault`.
    pub fn add(&self, fault: &str, action: HttpAction, path: Option<String>, rate: f64) {
        self.rules().push(Rule { fault: fault.to_owned(), action, path, rate });
    }

    /// Removes the rules of fault `fault`.
    pub fn remove(&self, fault: &str) {
        self.rules().retain(|r| r.fault != fault);
    }

    /// What applies to one request to `path`: the total delay, a status to answer instead of calling the
    /// handler (with whether it is an "exception"), and a body to put in place of the response's.
    fn decide(&self, path: &str) -> Decision {
        let rules = self.rules();
        let mut d = Decision::default();
        if rules.is_empty() {
            return d;
        }
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        for r in rules.iter() {
            if r.path.as_deref().is_some_and(|p| !path.starts_with(p)) {
                continue;
            }
            if r.rate < 1.0 && rng.r#gen::<f64>() >= r.rate {
                continue;
            }
            match &r.action {
                HttpAction::Delay(t) => d.delay += *t,
                HttpAction::Latency(min, max) => {
                    let span = max.saturating_sub(*min).as_millis() as u64;
                    d.delay +=
                        *min + Duration::from_millis(if span == 0 { 0 } else { rng.gen_range(0..=span) });
                }
                HttpAction::Abort(code) => d.answer = d.answer.or(Some((*code, false))),
                HttpAction::Exception(code) => d.answer = d.answer.or(Some((*code, true))),
                HttpAction::ReplaceBody(body) => d.body = Some(body.clone()),
            }
        }
        d
    }
}

#[derive(Default)]
struct Decision {
    delay: Duration,
    answer: Option<(u16, bool)>,
    body: Option<String>,
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn middleware(State(faults): State<Arc<HttpFaults>>, req: Request, next: Next) -> Response {
    let decision = faults.decide(req.uri().path());
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if let Some((code, exception)) = decision.answer {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        tracing::debug!(path = %req.uri().path(), code, "HTTP fault answered the request");
        return if exception {
            let body = serde_json::json!({
                "error": status.canonical_reason().unwrap_or("Internal Server Error"),
                "exception": "java.lang.RuntimeException",
                "message": "Chaos Monkey - RuntimeException",
                "path": req.uri().path(),
                "status": code,
            });
            (status, axum::Json(body)).into_response()
        } else {
            (status, Body::empty()).into_response()
        };
    }
    let response = next.run(req).await;
    match decision.body {
        None => response,
        Some(body) => {
            let (mut parts, _) = response.into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            let json = serde_json::from_str::<serde_json::Value>(&body).is_ok();
            let ct = if json { "application/json" } else { "text/plain; charset=utf-8" };
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            Response::from_parts(parts, Body::from(body))
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;
    use crate::kernel::seed::Seed;

    fn app(f: Arc<HttpFaults>) -> Router {
        Router::new()
            .route("/orders/", get(|| async { "real" }))
            .route("/other", get(|| async { "other" }))
            .layer(axum::middleware::from_fn_with_state(f, middleware))
    }

    async fn call(app: &Router, path: &str) -> (u16, String) {
        let r = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let code = r.status().as_u16();
        (code, String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn abort_delay_replace_and_removal() {
        let f = Arc::new(HttpFaults::new(Seed(3).stream("http")));
        let app = app(f.clone());
        assert_eq!(call(&app, "/orders/").await, (200, "real".into()));
        f.add("f1", HttpAction::Abort(503), Some("/orders".into()), 1.0);
        assert_eq!(call(&app, "/orders/").await.0, 503);
        assert_eq!(call(&app, "/other").await, (200, "other".into()), "path prefix limits the fault");
        f.remove("f1");
        f.add("f2", HttpAction::Delay(Duration::from_secs(2)), None, 1.0);
        f.add("f3", HttpAction::ReplaceBody("{\"hacked\":true}".into()), None, 1.0);
        let t = tokio::time::Instant::now();
        assert_eq!(call(&app, "/orders/").await, (200, "{\"hacked\":true}".into()));
        assert_eq!(t.elapsed(), Duration::from_secs(2));
        f.remove("f2");
        f.remove("f3");
        f.add("f4", HttpAction::Exception(500), None, 1.0);
        let (code, body) = call(&app, "/orders/").await;
        assert_eq!(code, 500);
        assert!(body.contains("Chaos Monkey - RuntimeException"));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_and_latency_assault_are_seeded() {
        let f = Arc::new(HttpFaults::new(Seed(3).stream("http")));
        let app = app(f.clone());
        f.add("f1", HttpAction::Abort(500), None, 0.3);
        let mut failed = 0;
        for _ in 0..200 {
            if call(&app, "/orders/").await.0 == 500 {
                failed += 1;
            }
        }
        assert!((35..85).contains(&failed), "{failed} of 200 at 30 %");
        f.remove("f1");
        f.add("f2", HttpAction::Latency(Duration::from_millis(100), Duration::from_millis(300)), None, 1.0);
        let t = tokio::time::Instant::now();
        call(&app, "/orders/").await;
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(100) && took <= Duration::from_millis(300), "{took:?}");
    }
}
