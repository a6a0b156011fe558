//! Chaos Mesh over HTTP, shaped after its dashboard API (`pkg/dashboard/swaggerdocs`), behind the control
//! plane's authentication:
//!
//! - `GET /api/experiments` (chaos objects and StatusChecks), `GET /api/schedules`, `GET /api/workflows`:
//!   `[{uid, kind, namespace, name, owner, status, created_at}]`;
//! - `POST` to any of them with YAML or JSON (one or more objects, `---` between them): every object is
//!   checked (a problem list with `request:line:key` and nothing created when one is wrong), then created;
//!   the answer lists them with their uids;
//! - `GET|DELETE /api/experiments/{uid}` (likewise `/schedules/{uid}`, `/workflows/{uid}`): one object
//!   with its events, or its deletion (faults recovered);
//! - `PUT /api/experiments/pause/{uid}`, `PUT /api/experiments/start/{uid}` (and for schedules): the
//!   pause annotation, at run time;
//! - `GET /api/events?object_id=&namespace=&name=&kind=&limit=`: events, newest last;
//! - `GET /api/archives`, `GET /api/archives/{uid}`: finished objects with their events.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Problems;
use crate::executions::Store;
use crate::mesh::engine::{EngineError, ObjectStatus, Phase};
use crate::mesh::load::load_text;
use crate::mesh::select::pods_of_flow;
use crate::topology::Pipeline;

/// Largest number of events one `GET /api/events` returns.
pub const MAX_EVENTS: usize = 10_000;

/// What the Chaos Mesh routes work with: the pipeline, and the execution store objects created over HTTP
/// are kept in.
#[derive(Clone)]
struct MeshApi {
    p: Arc<Pipeline>,
    store: Option<Arc<Store>>,
    api_base: Option<String>,
}

impl FromRef<MeshApi> for Arc<Pipeline> {
    fn from_ref(m: &MeshApi) -> Arc<Pipeline> {
        m.p.clone()
    }
}

/// The routes (to be put behind authentication). With a `store`, every object created is kept there, and
/// its record completed when it finishes.
pub fn router(p: Arc<Pipeline>, store: Option<Arc<Store>>, api_base: Option<String>) -> Router {
    let state = MeshApi { p, store, api_base };
    Router::new()
        .route("/api/experiments", get(list_experiments).post(create))
        .route("/api/schedules", get(list_schedules).post(create))
        .route("/api/workflows", get(list_workflows).post(create))
        .route("/api/experiments/{uid}", get(get_one).delete(delete_one))
        .route("/api/schedules/{uid}", get(get_one).delete(delete_one))
        .route("/api/workflows/{uid}", get(get_one).delete(delete_one))
        .route("/api/experiments/pause/{uid}", put(pause))
        .route("/api/experiments/start/{uid}", put(start))
        .route("/api/schedules/pause/{uid}", put(pause))
        .route("/api/schedules/start/{uid}", put(start))
        .route("/api/events", get(events))
        .route("/api/archives", get(archives))
        .route("/api/archives/{uid}", get(get_one))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn engine_error(e: EngineError) -> Response {
    let status = match e {
        EngineError::NotFound(_) => StatusCode::NOT_FOUND,
        EngineError::Exists(_) => StatusCode::CONFLICT,
        EngineError::Invalid(_) => StatusCode::BAD_REQUEST,
    };
    error(status, e.to_string())
}

/// An object as the dashboard lists it.
fn view(s: &ObjectStatus) -> Value {
    let status = match s.phase {
        Phase::Running => "running",
        Phase::Paused => "paused",
        Phase::Finished => "finished",
    };
    json!({
        "uid": s.uid,
        "kind": s.kind,
        "namespace": s.namespace,
        "name": s.name,
        "owner": s.owner,
        "status": status,
        "created_at": s.created,
    })
}

fn list_of(p: &Pipeline, wanted: impl Fn(&str) -> bool) -> Response {
    let items: Vec<Value> = p.mesh.list().iter().filter(|s| wanted(&s.kind)).map(view).collect();
    Json(items).into_response()
}

async fn list_experiments(State(p): State<Arc<Pipeline>>) -> Response {
    list_of(&p, |k| k != "Schedule" && k != "Workflow")
}

async fn list_schedules(State(p): State<Arc<Pipeline>>) -> Response {
    list_of(&p, |k| k == "Schedule")
}

async fn list_workflows(State(p): State<Arc<Pipeline>>) -> Response {
    list_of(&p, |k| k == "Workflow")
}

async fn create(State(m): State<MeshApi>, body: axum::body::Bytes) -> Response {
    let p = m.p.clone();
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not UTF-8 text (YAML or JSON)");
    };
    let mut problems = Problems::new();
    let loaded = load_text("request", text, Some(&pods_of_flow(&p.flow)), &mut problems);
    let listed: Vec<String> = problems.all().iter().map(ToString::to_string).collect();
    if problems.has_errors() || loaded.is_empty() {
        let message =
            if loaded.is_empty() && !problems.has_errors() { "no object in the body" } else { "invalid" };
        return (StatusCode::BAD_REQUEST, Json(json!({"error": message, "problems": listed})))
            .into_response();
    }
    // Refuse the whole request when one of them already runs, before creating any.
    let listed_now = p.mesh.list();
    let running: Vec<String> = loaded
        .iter()
        .filter(|l| {
            listed_now
                .iter()
                .any(|s| s.kind == l.object.kind && s.key() == l.object.key() && s.phase != Phase::Finished)
        })
        .map(|l| format!("{} {}", l.object.kind, l.object.key()))
        .collect();
    if !running.is_empty() {
        return error(StatusCode::CONFLICT, format!("already running: {}", running.join(", ")));
    }
    let mut created = Vec::new();
    for l in &loaded {
        match p.mesh.create(&p, l) {
            Ok(s) => {
                if let Some(store) = &m.store {
                    keep(&m, store, &s, text);
                }
                created.push(view(&s))
            }
            Err(e) => return engine_error(e),
        }
    }
    (StatusCode::CREATED, Json(json!({"created": created, "warnings": listed}))).into_response()
}

/// How often a kept object is looked at until it finishes.
const KEEP_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps an object created over HTTP in the execution store: recorded now as running (with the request
/// kept beside the run's journals, and the command that applies it again), completed when it finishes
/// with its events and the ground truth of the faults it caused. It passed when every fault it caused was
/// detected and no incident went unexplained.
fn keep(m: &MeshApi, store: &Arc<Store>, s: &ObjectStatus, text: &str) {
    use crate::executions::{Execution, Kind};
    let dir = m.p.out.join("mesh-requests");
    let path = dir.join(format!("{}.yaml", s.uid));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)) {
        tracing::warn!("cannot keep the request {}: {e}", path.display());
    }
    let api = m.api_base.clone().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let mut record = Execution {
        id: 0,
        kind: Kind::Mesh,
        title: format!("{} {}", s.kind, s.key()),
        status: "running".into(),
        passed: None,
        started: s.created.clone(),
        ended: None,
        source: "http".into(),
        command: format!("chaoslab mesh apply --target {api} {}", path.display()),
        origin: m.p.out.display().to_string(),
        resilience: None,
        ground_truth: None,
        journal: json!({"object": view(s)}),
    };
    let Some(id) = store.record(&record) else { return };
    let (p, store, status) = (m.p.clone(), store.clone(), s.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(KEEP_POLL).await;
            let now = p.mesh.list().into_iter().find(|o| o.uid == status.uid);
            if now.is_none_or(|o| o.phase == Phase::Finished) {
                break;
            }
        }
        // Its faults: those it applied, and those of the objects it created (named after it).
        let key = status.key();
        let mine = |origin: &str| {
            origin.split_once(' ').is_some_and(|(_, k)| k == key || k.starts_with(&format!("{key}-")))
        };
        let events = p.mesh.events_of(&status.kind, &key);
        let faults: Vec<_> =
            p.faults.all().into_iter().filter(|f| f.origin.as_deref().is_some_and(mine)).collect();
        let truth =
            crate::chaos::truth::ground_truth(&faults, &crate::reasoning::incident_reasoner::incidents(&p));
        record.status = "finished".into();
        record.passed =
            Some(truth.faults.iter().all(|f| !f.detections.is_empty()) && truth.unexplained.is_empty());
        record.ended = Some(crate::kernel::clock::iso_millis(p.clock.now()));
        record.ground_truth = serde_json::to_value(&truth).ok();
        record.journal = json!({"object": view(&status), "events": events});
        if let Err(e) = store.finish(id, &record) {
            tracing::warn!("{e:#}");
        }
    });
}

fn find(p: &Pipeline, uid: &str) -> Option<ObjectStatus> {
    p.mesh.by_uid(uid)
}

fn not_found(uid: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no object with uid {uid}"))
}

async fn get_one(State(p): State<Arc<Pipeline>>, Path(uid): Path<String>) -> Response {
    match find(&p, &uid) {
        Some(s) => {
            let events = p.mesh.events_of(&s.kind, &s.key());
            let mut v = view(&s);
            v["events"] = serde_json::to_value(events).unwrap_or_default();
            Json(v).into_response()
        }
        None => not_found(&uid),
    }
}

async fn delete_one(State(p): State<Arc<Pipeline>>, Path(uid): Path<String>) -> Response {
    match find(&p, &uid) {
        Some(s) => match p.mesh.delete(&s.kind, &s.key()) {
            Ok(()) => Json(json!({"deleted": view(&s)})).into_response(),
            Err(e) => engine_error(e),
        },
        None => not_found(&uid),
    }
}

async fn set_paused(p: &Pipeline, uid: &str, paused: bool) -> Response {
    match find(p, uid) {
        Some(s) => match p.mesh.set_paused(&s.kind, &s.key(), paused) {
            Ok(()) => Json(json!({"status": if paused { "paused" } else { "running" }})).into_response(),
            Err(e) => engine_error(e),
        },
        None => not_found(uid),
    }
}

async fn pause(State(p): State<Arc<Pipeline>>, Path(uid): Path<String>) -> Response {
    set_paused(&p, &uid, true).await
}

async fn start(State(p): State<Arc<Pipeline>>, Path(uid): Path<String>) -> Response {
    set_paused(&p, &uid, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    object_id: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
}

async fn events(
    State(p): State<Arc<Pipeline>>,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let object = match &q.object_id {
        Some(uid) => match find(&p, uid) {
            Some(s) => Some(s),
            None => return not_found(uid),
        },
        None => None,
    };
    let limit = q.limit.unwrap_or(MAX_EVENTS).min(MAX_EVENTS);
    let all = p.mesh.events();
    let matching: Vec<_> = all
        .iter()
        .filter(|e| object.as_ref().is_none_or(|o| e.kind == o.kind && e.object == o.key()))
        .filter(|e| q.kind.as_ref().is_none_or(|k| &e.kind == k))
        .filter(|e| q.namespace.as_ref().is_none_or(|n| e.object.split('/').next() == Some(n.as_str())))
        .filter(|e| q.name.as_ref().is_none_or(|n| e.object.split('/').nth(1) == Some(n.as_str())))
        .collect();
    let skip = matching.len().saturating_sub(limit);
    Json(&matching[skip..]).into_response()
}

async fn archives(State(p): State<Arc<Pipeline>>) -> Response {
    // One pass over the events, grouped by object, instead of one pass per archived object.
    let mut by_object: std::collections::BTreeMap<(String, String), Vec<Value>> = Default::default();
    for e in p.mesh.events() {
        let key = (e.kind.clone(), e.object.clone());
        by_object.entry(key).or_default().push(serde_json::to_value(e).unwrap_or_default());
    }
    let finished: Vec<Value> = p
        .mesh
        .list()
        .iter()
        .filter(|s| s.phase == Phase::Finished)
        .map(|s| {
            let mut v = view(s);
            v["events"] = Value::Array(by_object.remove(&(s.kind.clone(), s.key())).unwrap_or_default());
            v
        })
        .collect();
    Json(finished).into_response()
}
