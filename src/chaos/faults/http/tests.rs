use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderName, Method};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
use serde_json::json;
use wildmatch::WildMatch;

use super::*;
use crate::kernel::seed::Seed;

fn routes(posts: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route("/orders/", get(|| async { axum::Json(json!({"orders": [1, 2], "total": 2})) }))
        .route(
            "/orders/",
            post(move |body: String| {
                let posts = posts.clone();
                async move {
                    posts.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::CREATED, body)
                }
            }),
        )
        .route("/other", get(|| async { "other" }))
        .route("/echo", get(|req: Request| async move { req.uri().query().unwrap_or("").to_owned() }))
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "no such order") }))
}

fn app(f: &Arc<HttpFaults>, component: &str) -> Router {
    HttpGate::layer(f.clone(), component, routes(Arc::default()))
}

async fn call(app: &Router, method: &str, path: &str, body: &str) -> (u16, String, axum::http::HeaderMap) {
    let req = Request::builder().method(method).uri(path).body(Body::from(body.to_owned())).unwrap();
    let r = app.clone().oneshot(req).await.unwrap();
    let code = r.status().as_u16();
    let headers = r.headers().clone();
    (code, String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap(), headers)
}

async fn get_(app: &Router, path: &str) -> (u16, String) {
    let (code, body, _) = call(app, "GET", path, "").await;
    (code, body)
}

fn rule(target: HttpTarget, action: HttpAction) -> HttpRule {
    HttpRule { target, filter: HttpFilter::default(), action, rate: 1.0 }
}

fn on_path(glob: &str, mut r: HttpRule) -> HttpRule {
    r.filter.path = Some(WildMatch::new(glob));
    r
}

fn faults() -> Arc<HttpFaults> {
    Arc::new(HttpFaults::new(Seed(3).stream("http")))
}

#[tokio::test(start_paused = true)]
async fn abort_delay_replace_and_removal() {
    let f = faults();
    let app = app(&f, "API");
    assert_eq!(get_(&app, "/other").await, (200, "other".into()));
    f.add("f1", &[], on_path("/orders*", rule(HttpTarget::Request, HttpAction::Abort(503))));
    assert_eq!(get_(&app, "/orders/").await.0, 503);
    assert_eq!(get_(&app, "/other").await, (200, "other".into()), "the path glob limits the fault");
    f.remove("f1");
    f.add("f2", &[], rule(HttpTarget::Request, HttpAction::Delay(Duration::from_secs(2))));
    let replace = HttpReplace { body: Some(b"{\"hacked\":true}".to_vec()), ..Default::default() };
    f.add("f3", &[], rule(HttpTarget::Response, HttpAction::Replace(replace)));
    let t = tokio::time::Instant::now();
    let (code, body, headers) = call(&app, "GET", "/other", "").await;
    assert_eq!((code, body.as_str()), (200, "{\"hacked\":true}"));
    assert_eq!(headers[header::CONTENT_LENGTH], "15", "the length follows the new body");
    assert_eq!(t.elapsed(), Duration::from_secs(2));
    f.remove("f2");
    f.remove("f3");
    f.add("f4", &[], rule(HttpTarget::Request, HttpAction::Exception(500)));
    let (code, body) = get_(&app, "/orders/").await;
    assert_eq!(code, 500);
    assert!(body.contains("Chaos Monkey - RuntimeException"));
}

#[tokio::test(start_paused = true)]
async fn rate_and_latency_assault_are_seeded() {
    let f = faults();
    let app = app(&f, "API");
    f.add("f1", &[], HttpRule { rate: 0.3, ..rule(HttpTarget::Request, HttpAction::Abort(500)) });
    let mut failed = 0;
    for _ in 0..200 {
        if get_(&app, "/orders/").await.0 == 500 {
            failed += 1;
        }
    }
    assert!((35..85).contains(&failed), "{failed} of 200 at 30 %");
    f.remove("f1");
    let latency = HttpAction::Latency(Duration::from_millis(100), Duration::from_millis(300));
    f.add("f2", &[], rule(HttpTarget::Request, latency));
    let t = tokio::time::Instant::now();
    get_(&app, "/orders/").await;
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(100) && took <= Duration::from_millis(300), "{took:?}");
}

#[tokio::test]
async fn rules_act_on_their_targets_only() {
    let f = faults();
    let (a, b) = (app(&f, "ORDER-API-A"), app(&f, "ORDER-API-B"));
    f.add("f1", &["ORDER-API-A".into()], rule(HttpTarget::Request, HttpAction::Abort(503)));
    assert_eq!(get_(&a, "/other").await.0, 503);
    assert_eq!(get_(&b, "/other").await, (200, "other".into()));
}

#[tokio::test]
async fn request_filters_and_rewrites() {
    let f = faults();
    let app = app(&f, "API");
    // Method and header filters.
    let mut abort = rule(HttpTarget::Request, HttpAction::Abort(503));
    abort.filter.method = Some(Method::POST);
    abort.filter.request_headers = vec![(HeaderName::from_static("x-chaos"), "yes".into())];
    f.add("f1", &[], abort);
    assert_eq!(get_(&app, "/orders/").await.0, 200, "GET is not POST");
    assert_eq!(call(&app, "POST", "/orders/", "{}").await.0, 201, "no x-chaos header");
    let req = Request::post("/orders/").header("x-chaos", "yes").body(Body::from("{}")).unwrap();
    assert_eq!(app.clone().oneshot(req).await.unwrap().status(), 503);
    f.remove("f1");
    // A replaced path is routed again; queries are set and appended.
    let replace = HttpReplace {
        path: Some("/echo".into()),
        queries: vec![("state".into(), "PAID".into())],
        ..Default::default()
    };
    f.add("f2", &[], on_path("/other", rule(HttpTarget::Request, HttpAction::Replace(replace))));
    let patch = HttpPatch { queries: vec![("debug".into(), "1".into())], ..Default::default() };
    f.add("f3", &[], on_path("/other", rule(HttpTarget::Request, HttpAction::Patch(patch))));
    assert_eq!(get_(&app, "/other?state=NEW").await, (200, "state=PAID&debug=1".into()));
    f.remove("f2");
    f.remove("f3");
    // A patched request body reaches the handler.
    let patch = HttpPatch { body: Some(json!({"price": 0})), ..Default::default() };
    f.add("f4", &[], rule(HttpTarget::Request, HttpAction::Patch(patch)));
    let (code, body, _) = call(&app, "POST", "/orders/", r#"{"price":12,"name":"eevee"}"#).await;
    assert_eq!(code, 201);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"price": 0, "name": "eevee"})
    );
}

#[tokio::test]
async fn response_filters_and_rewrites() {
    let f = faults();
    let posts = Arc::new(AtomicUsize::new(0));
    let app = HttpGate::layer(f.clone(), "API", routes(posts.clone()));
    // Only 404s become 500s, with a header set.
    let mut replace = rule(
        HttpTarget::Response,
        HttpAction::Replace(HttpReplace {
            code: Some(500),
            headers: vec![(HeaderName::from_static("x-fault"), HeaderValue::from_static("replaced"))],
            ..Default::default()
        }),
    );
    replace.filter.code = Some(404);
    f.add("f1", &[], replace);
    let (code, body, headers) = call(&app, "GET", "/missing", "").await;
    assert_eq!((code, body.as_str()), (500, "no such order"));
    assert_eq!(headers["x-fault"], "replaced");
    assert_eq!(get_(&app, "/other").await, (200, "other".into()));
    f.remove("f1");
    // A JSON merge patch on the response body, and a header appended.
    let patch = HttpPatch {
        body: Some(json!({"total": 99, "orders": null})),
        headers: vec![(HeaderName::from_static("set-cookie"), HeaderValue::from_static("a=1"))],
        ..Default::default()
    };
    f.add("f2", &[], rule(HttpTarget::Response, HttpAction::Patch(patch)));
    let (code, body, headers) = call(&app, "GET", "/orders/", "").await;
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap(), json!({"total": 99}));
    assert_eq!(headers["set-cookie"], "a=1");
    let (_, body) = get_(&app, "/other").await;
    assert_eq!(body, "other", "a body that is not JSON is left alone");
    f.remove("f2");
    // A response abort drops the answer, but the handler did its work.
    f.add("f3", &[], rule(HttpTarget::Response, HttpAction::Abort(503)));
    assert_eq!(call(&app, "POST", "/orders/", "{}").await.0, 503);
    assert_eq!(posts.load(Ordering::SeqCst), 1, "the order was still created");
}
