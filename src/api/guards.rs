//! Guards beside the control plane's own: the order API's destructive routes, and the ingestion
//! webhook when the run has credentials. Both reuse [`super::auth::require_auth`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::auth::{Credentials, require_auth};

/// What guards the order API's destructive routes: the control plane's credentials, or the key the
/// run's own services (ORDER-UPDATER) present.
pub struct OrderGuard {
    /// The control plane's users and tokens.
    pub credentials: Arc<Credentials>,
    /// The run's service key.
    pub service_key: String,
}

/// `DELETE /orders` (wipes the table) and `PUT /orders/{id}` (sets any state) need credentials — a
/// foreign page that reaches the port, or a careless client, cannot wipe or rewrite the orders; reads
/// and creates stay open (the order API is the system under test). `--open-order-api` lifts it.
pub async fn guard_order_writes(State(guard): State<Arc<OrderGuard>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let destructive = (req.method() == axum::http::Method::DELETE && path.trim_end_matches('/') == "/orders")
        || (req.method() == axum::http::Method::PUT
            && path.strip_prefix("/orders/").is_some_and(|id| !id.is_empty() && !id.contains('/')));
    if !destructive {
        return next.run(req).await;
    }
    let service = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|key| constant_time_eq(key.as_bytes(), guard.service_key.as_bytes()));
    if service {
        return next.run(req).await;
    }
    require_auth(State(guard.credentials.clone()), req, next).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// [`require_auth`] for the ingestion webhook only (`POST /alerts`): with `--credentials` a forged alert
/// needs them too, as the control plane does; every other path passes through.
pub async fn require_auth_on_alerts(
    State(creds): State<Arc<Credentials>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path() == "/alerts" {
        require_auth(State(creds), req, next).await
    } else {
        next.run(req).await
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Method, StatusCode};
    use axum::routing::any;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn only_the_destructive_order_routes_need_a_key_or_credentials() {
        let hash = super::super::auth::hash_secret("a-control-token").unwrap();
        let text = format!("[[token]]\nname = \"t\"\ntoken_hash = \"{hash}\"\n");
        let guard = OrderGuard {
            credentials: Arc::new(Credentials::parse(&text, "<test>").unwrap()),
            service_key: "the-service-key".into(),
        };
        let app = Router::new()
            .route("/{*rest}", any(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(Arc::new(guard), guard_order_writes));
        let call = |method: Method, path: &'static str, auth: Option<&'static str>| {
            let app = app.clone();
            async move {
                let mut req = axum::http::Request::builder().method(method).uri(path);
                if let Some(a) = auth {
                    req = req.header("authorization", a);
                }
                app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap().status()
            }
        };
        assert_eq!(call(Method::DELETE, "/orders", None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(call(Method::DELETE, "/orders/", None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(call(Method::PUT, "/orders/7", None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(call(Method::PUT, "/orders/7", Some("Bearer wrong-key")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(call(Method::PUT, "/orders/7", Some("Bearer the-service-key")).await, StatusCode::OK);
        assert_eq!(call(Method::DELETE, "/orders", Some("Bearer a-control-token")).await, StatusCode::OK);
        for (method, path) in
            [(Method::GET, "/orders/7"), (Method::POST, "/orders/"), (Method::PUT, "/api/faults")]
        {
            assert_eq!(call(method, path, None).await, StatusCode::OK, "{path}");
        }
    }
}
