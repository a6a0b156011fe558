//! The dashboard's HTTP routes over a [`Source`].

use std::convert::Infallible;
use std::net::SocketAddr;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::timeline::{self, ChartSpec, PRESETS};
use super::view::{self, Mode, Source};
use super::{APP_CSS, APP_JS, INDEX_HTML, browse, diagram};
use crate::api::auth::{Credentials, check_token, principal_of};
use crate::api::session;
use crate::executions::Store;
use crate::topology::Pipeline;

/// What a dashboard has besides its source.
#[derive(Default)]
pub struct Options {
    /// The control plane's credentials (live): the page's actions are possible once the browser holds the
    /// token, and reads from other hosts than loopback need it too.
    pub credentials: Option<Arc<Credentials>>,
    /// The running pipeline (live): validation of experiments against its components.
    pub pipeline: Option<Arc<Pipeline>>,
    /// The execution store the Runs tab lists.
    pub store: Option<Arc<Store>>,
}

pub(super) struct Dash {
    pub(super) source: Arc<dyn Source>,
    pub(super) credentials: Option<Arc<Credentials>>,
    pub(super) pipeline: Option<Arc<Pipeline>>,
    pub(super) store: Option<Arc<Store>>,
}

pub(super) type Shared = Arc<Dash>;

/// The dashboard over `source`.
pub fn router(source: Arc<dyn Source>, options: Options) -> Router {
    let Options { credentials, pipeline, store } = options;
    let dash = Arc::new(Dash { source, credentials, pipeline, store });
    let reads = Router::new()
        .route("/ui/pipeline.svg", get(pipeline_svg))
        .route("/ui/api/session", get(session_info))
        .route("/ui/api/state", get(state))
        .route("/ui/api/component/{name}", get(component))
        .route("/ui/api/presets", get(|| async { Json(PRESETS) }))
        .route("/ui/api/timeline", get(chart))
        .route("/ui/api/targets", get(targets))
        .route("/ui/api/indices", get(browse::indices))
        .route("/ui/api/search", get(browse::search))
        .route("/ui/api/incidents", get(browse::incidents))
        .route("/ui/api/orders", get(browse::orders))
        .route("/ui/api/workflows", get(browse::workflows))
        .route("/ui/api/model", get(browse::process_model))
        .route("/ui/api/graph", get(browse::graph_json))
        .route("/ui/graph.svg", get(browse::graph_svg))
        .route("/ui/api/runs", get(browse::runs))
        .route("/ui/api/runs/{id}", get(browse::run_details))
        .route("/ui/api/stream", get(stream))
        .route("/ui/api/validate", post(validate))
        .layer(axum::middleware::from_fn_with_state(dash.clone(), loopback_or_token));
    Router::new()
        .route("/", get(index))
        .route(
            "/ui/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS) }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .merge(reads)
        .with_state(dash)
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// Reads are open from loopback (or in-process); from elsewhere they need the token, as actions do.
async fn loopback_or_token(State(d): State<Shared>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let Some(creds) = &d.credentials else { return next.run(req).await };
    // A v4 client of a dual-stack listener arrives as ::ffff:a.b.c.d: canonical first.
    if peer.is_none_or(|ip| ip.to_canonical().is_loopback()) {
        return next.run(req).await;
    }
    match principal_of(creds, req.method(), req.headers()).await {
        Some(_) => next.run(req).await,
        None => error(StatusCode::UNAUTHORIZED, "reading from another host than loopback needs the token"),
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `/` — the page; `/?token=…` first checks the token and keeps it in the session cookie.
async fn index(State(d): State<Shared>, Query(q): Query<TokenQuery>) -> Response {
    let page = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX_HTML);
    let (Some(token), Some(creds)) = (q.token, &d.credentials) else { return page.into_response() };
    match check_token(creds, &token).await {
        Ok(p) => {
            tracing::info!(principal = %p.name, "dashboard session opened");
            let Some(cookie) = session::set_cookie(&token) else { return page.into_response() };
            // The token leaves the address bar (and the history) at once.
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(e) => {
            tracing::warn!("dashboard link refused: {e}");
            page.into_response()
        }
    }
}

#[derive(Deserialize)]
pub(super) struct At {
    pub(super) at: Option<u64>,
}

async fn session_info(State(d): State<Shared>, method: Method, headers: HeaderMap) -> Json<Value> {
    let authenticated = match &d.credentials {
        Some(creds) => principal_of(creds, &method, &headers).await.is_some(),
        None => false,
    };
    let s = &d.source;
    let mode = s.mode();
    Json(json!({
        "mode": mode,
        "authenticated": authenticated,
        "actions": authenticated && mode == Mode::Live,
        "run": {"pipeline": s.run().pipeline, "seed": s.run().seed, "mode": s.run().mode, "command": s.run().command},
        "start_ms": 0,
        "end_ms": (mode == Mode::Replay).then(|| s.now_ms()),
        "now_ms": s.now_ms(),
        "start_time": s.run().start_time,
    }))
}

async fn state(State(d): State<Shared>, Query(at): Query<At>) -> Json<view::StateView> {
    let at = view::instant(&*d.source, at.at);
    Json(view::state_at(&*d.source, at))
}

async fn pipeline_svg(State(d): State<Shared>, Query(at): Query<At>) -> Response {
    let at = view::instant(&*d.source, at.at);
    let svg = diagram::render(&view::state_at(&*d.source, at));
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")], svg).into_response()
}

/// Most events a component's panel lists.
const PANEL_EVENTS: usize = 30;

async fn component(State(d): State<Shared>, Path(name): Path<String>, Query(at): Query<At>) -> Response {
    let at = view::instant(&*d.source, at.at);
    let state = view::state_at(&*d.source, at);
    let Some(c) = state.components.iter().find(|c| c.name == name) else {
        return error(StatusCode::NOT_FOUND, format!("no component {name:?}"));
    };
    let t = d.source.run().start_ms + at as i64;
    let metrics: Vec<Value> = d.source.history().with_db(|db| {
        db.all_series()
            .filter(|(labels, _)| {
                labels.get("component") == Some(&name)
                    || labels.get("link").is_some_and(|l| l.starts_with(&format!("{name}->")))
            })
            .filter_map(|(labels, points)| {
                let i = points.partition_point(|p| p.t <= t);
                let p = points.get(i.checked_sub(1)?)?;
                // The name is its own column; `job` and `instance` are the same on every series here.
                let shown: std::collections::BTreeMap<&String, &String> = labels
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "__name__" | "job" | "instance"))
                    .collect();
                p.v.is_finite()
                    .then(|| json!({"name": labels.get("__name__"), "labels": shown, "value": p.v}))
            })
            .take(200)
            .collect()
    });
    let logs: Vec<Value> = d
        .source
        .events_of(&name, at, PANEL_EVENTS)
        .into_iter()
        .map(|e| json!({"t_ms": e.ms, "level": level_of(&e.kind), "message": format!("{} {}", e.kind, e.data)}))
        .collect();
    let faults: Vec<&view::FaultView> =
        state.faults.iter().filter(|f| f.ended_ms.is_none() && f.targets.contains(&name)).collect();
    let mut out = serde_json::to_value(c).unwrap_or_default();
    out["metrics"] = json!(metrics);
    out["logs"] = json!(logs);
    out["faults"] = json!(faults);
    Json(out).into_response()
}

fn level_of(kind: &str) -> &'static str {
    if kind.contains("crash") || kind.contains("failed") || kind.contains("down") { "warn" } else { "info" }
}

#[derive(Deserialize)]
struct ChartQuery {
    preset: Option<String>,
    query: Option<String>,
    from: Option<u64>,
    to: Option<u64>,
    at: Option<u64>,
    width: Option<u32>,
    height: Option<u32>,
}

/// The default range of a chart: the last 15 minutes live, the whole run in replay.
const LIVE_RANGE_MS: u64 = 15 * 60 * 1000;

async fn chart(State(d): State<Shared>, Query(q): Query<ChartQuery>) -> Response {
    let (query, title) = match (&q.preset, &q.query) {
        (_, Some(query)) if !query.trim().is_empty() => (query.clone(), query.clone()),
        (Some(name), _) => match PRESETS.iter().find(|p| p.name == name) {
            Some(p) => (p.query.to_owned(), p.title.to_owned()),
            None => return error(StatusCode::BAD_REQUEST, format!("no preset {name:?}")),
        },
        _ => return error(StatusCode::BAD_REQUEST, "give preset=NAME or query=PROMQL"),
    };
    let at = view::instant(&*d.source, q.at);
    let to = q.to.map_or(at, |t| t.min(d.source.now_ms()));
    let default_from = match d.source.mode() {
        Mode::Live => to.saturating_sub(LIVE_RANGE_MS),
        Mode::Replay => 0,
    };
    let from = q.from.unwrap_or(default_from).min(to.saturating_sub(1000));
    let size = (q.width.unwrap_or(960).clamp(320, 2400), q.height.unwrap_or(300).clamp(160, 1200));
    let source = d.source.clone();
    // Evaluating and drawing take a few milliseconds per series; off the async threads.
    let answer = tokio::task::spawn_blocking(move || {
        let state = view::state_at(&*source, to);
        let windows: Vec<Value> = state
            .faults
            .iter()
            .filter(|f| f.applied_ms <= to && f.ended_ms.is_none_or(|e| e >= from))
            .map(|f| json!({"id": f.id, "kind": f.kind, "targets": f.targets, "from_ms": f.applied_ms, "to_ms": f.ended_ms}))
            .collect();
        let incidents: Vec<Value> = state
            .incidents
            .iter()
            .filter(|i| (from..=to).contains(&i.t_ms))
            .map(|i| json!({"t_ms": i.t_ms, "name": i.name, "faults": i.faults}))
            .collect();
        let mut out = json!({"from_ms": from, "to_ms": to, "width": size.0, "height": size.1,
                             "query": query, "windows": windows, "incidents": incidents});
        let experiments = view::experiments(source.run(), source.out_dir());
        out["experiments"] = json!(experiments);
        let drawn = timeline::range_query(source.history(), &query, from, to).and_then(|series| {
            let spec = ChartSpec {
                title: &title,
                from,
                to,
                size,
                faults: &state.faults,
                incidents: &state.incidents,
                experiments: &experiments,
            };
            timeline::render(&spec, &series)
        });
        match drawn {
            Ok(c) => {
                out["svg"] = json!(c.svg);
                out["plot"] = json!(c.plot);
                out["series"] = json!(c.series);
                out["omitted"] = json!(c.omitted);
            }
            Err(e) => out["error"] = json!(e),
        }
        out
    })
    .await;
    match answer {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("drawing failed: {e}")),
    }
}

#[derive(Deserialize)]
struct Selector {
    selector: Option<String>,
}

async fn targets(State(d): State<Shared>, Query(q): Query<Selector>) -> Json<Value> {
    let pattern = q.selector.unwrap_or_default();
    if pattern.trim().is_empty() {
        return Json(json!({"matches": [], "error": "type a name, a glob (KAFKA-*) or kind:KIND"}));
    }
    let selector = crate::chaos::faults::selector::Selector::all_of(pattern.trim());
    let run = d.source.run();
    let mut matches: Vec<&str> = run
        .components
        .iter()
        .filter(|c| selector.matches(&c.name, Some(&c.kind)))
        .map(|c| c.name.as_str())
        .chain(run.links.iter().filter(|l| selector.matches(&l.name, None)).map(|l| l.name.as_str()))
        .collect();
    matches.sort_unstable();
    if matches.is_empty() {
        return Json(
            json!({"matches": [], "error": format!("{pattern:?} matches no component and no link")}),
        );
    }
    Json(json!({"matches": matches}))
}

/// How often the live page hears from the server.
const STREAM_EVERY: Duration = Duration::from_secs(1);

async fn stream(State(d): State<Shared>) -> Response {
    if d.source.mode() != Mode::Live {
        return error(StatusCode::NOT_FOUND, "a replay does not change: no stream");
    }
    let events = futures::stream::unfold(d, |d| async move {
        tokio::time::sleep(STREAM_EVERY).await;
        let at = d.source.now_ms();
        let state = view::state_at(&*d.source, at);
        let event = SseEvent::default().event("state").json_data(&state).unwrap_or_default();
        Some((Ok::<_, Infallible>(event), d))
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

#[derive(Deserialize)]
struct Validate {
    format: String,
    text: String,
}

/// Most bytes a document to validate may have.
const MAX_VALIDATE: usize = 1 << 20;

async fn validate(State(d): State<Shared>, Json(v): Json<Validate>) -> Response {
    if v.text.len() > MAX_VALIDATE {
        return error(StatusCode::PAYLOAD_TOO_LARGE, format!("the document is over {MAX_VALIDATE} bytes"));
    }
    let problems = match v.format.as_str() {
        "mesh" => {
            let pods = d.pipeline.as_ref().map(|p| crate::mesh::select::pods_of_flow(&p.flow));
            let mut problems = crate::config::Problems::new();
            crate::mesh::load::load_text("document", &v.text, pods.as_deref(), &mut problems);
            problems
        }
        "ctk" => {
            use crate::chaos::providers::{Backend, NativeProviders};
            // Validation only needs the providers' signatures; a replay has no pipeline to call.
            let backend = match &d.pipeline {
                Some(p) => Backend::Local(p.clone()),
                None => {
                    match crate::orders::http::ApiClient::remote("http://127.0.0.1:1", Duration::from_secs(1))
                    {
                        Ok(client) => Backend::Remote { client, token: None },
                        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                    }
                }
            };
            crate::chaos::experiment::validate::check_text(
                "document",
                &v.text,
                &NativeProviders::new(backend),
            )
        }
        other => return error(StatusCode::BAD_REQUEST, format!("format {other:?} is not ctk or mesh")),
    };
    let list: Vec<Value> = problems
        .all()
        .iter()
        .map(|p| {
            json!({"line": p.line, "key": p.key.to_string(), "message": p.message,
                   "severity": if p.severity == crate::config::Severity::Warning { "warning" } else { "error" }})
        })
        .collect();
    Json(json!({"problems": list})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::history::History;
    use crate::dashboard::view::{Event, RunInfo};
    use axum::body::Body;
    use tower::ServiceExt as _;

    /// A run with nothing in it.
    struct Empty(RunInfo, History);

    impl Source for Empty {
        fn mode(&self) -> Mode {
            Mode::Live
        }
        fn run(&self) -> &RunInfo {
            &self.0
        }
        fn out_dir(&self) -> &std::path::Path {
            std::path::Path::new("/nonexistent")
        }
        fn now_ms(&self) -> u64 {
            0
        }
        fn history(&self) -> &History {
            &self.1
        }
        fn health_at(&self, _: u64) -> Vec<(String, crate::kernel::supervisor::Health)> {
            Vec::new()
        }
        fn faults_at(&self, _: u64) -> Vec<crate::chaos::faults::FaultRecord> {
            Vec::new()
        }
        fn incidents_at(&self, _: u64) -> Vec<crate::reasoning::incident_reasoner::IncidentSeen> {
            Vec::new()
        }
        fn events_of(&self, _: &str, _: u64, _: usize) -> Vec<Event> {
            Vec::new()
        }
        fn indices(&self) -> Vec<(String, usize)> {
            Vec::new()
        }
        fn scan_documents(&self, _: &str, _: &mut dyn FnMut(Value) -> bool) -> bool {
            false
        }
    }

    const TOKEN: &str = "tok_dashboard_test";

    fn app() -> Router {
        let run = RunInfo {
            pipeline: "t".into(),
            seed: 0,
            mode: "live".into(),
            command: "chaoslab run".into(),
            start_time: "2020-02-21T21:00:00.000Z".into(),
            start_ms: 0,
            components: Vec::new(),
            links: Vec::new(),
        };
        let hash = crate::api::auth::hash_secret(TOKEN).unwrap();
        let text = format!("[[token]]\nname = \"t\"\ntoken_hash = \"{hash}\"\n");
        let creds = Arc::new(Credentials::parse(&text, "creds.toml").unwrap());
        let source = Arc::new(Empty(run, History::new(0, std::time::Duration::from_secs(10))));
        router(source, Options { credentials: Some(creds), ..Default::default() })
    }

    async fn status_from(app: Router, peer: &str, token: Option<&str>) -> StatusCode {
        let mut req = Request::builder().uri("/ui/api/session");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let mut req = req.body(Body::empty()).unwrap();
        req.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        app.oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn reads_need_the_token_from_anywhere_but_loopback() {
        let app = app();
        assert_eq!(status_from(app.clone(), "127.0.0.1:5000", None).await, StatusCode::OK);
        assert_eq!(status_from(app.clone(), "[::1]:5000", None).await, StatusCode::OK);
        assert_eq!(status_from(app.clone(), "[::ffff:127.0.0.1]:5000", None).await, StatusCode::OK);
        assert_eq!(status_from(app.clone(), "10.1.2.3:5000", None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status_from(app.clone(), "10.1.2.3:5000", Some("wrong")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status_from(app, "10.1.2.3:5000", Some(TOKEN)).await, StatusCode::OK);
    }
}
