//! The reads behind the Data, Incidents, Experiments and Runs tabs: the indices and their search, the
//! orders, the incidents with their ground truth, the knowledge graph, the mined process model, the Chaos
//! Mesh workflows and the execution store's runs — each from the running pipeline, or from the files a
//! finished run left.

use std::path::Path as FsPath;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::routes::{At, Dash, Shared, error};
use super::view::{self, Mode};

/// Most documents one search answers.
pub const MAX_SEARCH_PAGE: usize = 500;

pub(super) async fn indices(State(d): State<Shared>) -> Json<Value> {
    let list: Vec<Value> =
        d.source.indices().into_iter().map(|(name, docs)| json!({"name": name, "docs": docs})).collect();
    Json(json!(list))
}

#[derive(Deserialize)]
pub(super) struct Search {
    index: String,
    q: Option<String>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    from: Option<usize>,
    size: Option<usize>,
    /// Replay: only documents written up to this instant (those with a time).
    at: Option<u64>,
}

/// The time fields documents of the reference's indices carry, in the order they are looked for.
const TIME_FIELDS: &[&str] = &["@timestamp", "timestamp", "dateTime", "time", "date"];

/// A document's time, ms since the run started: its first time field, or (FLINK's window reports) the
/// last of its `measurementIds`.
fn doc_time(run: &view::RunInfo, doc: &Value) -> Option<u64> {
    let text = TIME_FIELDS
        .iter()
        .find_map(|f| doc.get(*f)?.as_str())
        .or_else(|| doc.get("measurementIds")?.as_array()?.last()?.as_str())?;
    view::ms_since_any(run, text)
}

pub(super) async fn search(State(d): State<Shared>, Query(s): Query<Search>) -> Response {
    // An index's older documents are read from its file: off the runtime's workers, which the pipeline
    // shares in a live run.
    match tokio::task::spawn_blocking(move || search_blocking(&d, &s)).await {
        Ok(response) => response,
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("the search failed: {e}")),
    }
}

fn search_blocking(d: &Shared, s: &Search) -> Response {
    let terms: Vec<(String, String)> = match parse_terms(s.q.as_deref().unwrap_or("")) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let run = d.source.run();
    let replay_at = s.at.filter(|_| d.source.mode() == Mode::Replay);
    let matches = |doc: &Value| {
        if !terms.iter().all(|(field, value)| field_matches(doc, field, value)) {
            return false;
        }
        let t = doc_time(run, doc);
        let written = replay_at.is_none_or(|at| t.is_none_or(|t| t <= at));
        if s.since_ms.is_none() && s.until_ms.is_none() {
            return written;
        }
        written && t.is_some_and(|t| s.since_ms.is_none_or(|a| t >= a) && s.until_ms.is_none_or(|b| t <= b))
    };
    let from = s.from.unwrap_or(0);
    let size = s.size.unwrap_or(50).min(MAX_SEARCH_PAGE);
    // The documents stream past: only the page is kept, whatever the index's size.
    let (mut total, mut page) = (0usize, Vec::new());
    let found = d.source.scan_documents(&s.index, &mut |doc| {
        if matches(&doc) {
            if total >= from && page.len() < size {
                page.push(doc);
            }
            total += 1;
        }
        true
    });
    if !found {
        return error(StatusCode::NOT_FOUND, format!("no index {:?}", s.index));
    }
    Json(json!({"index": s.index, "total": total, "from": from, "docs": page})).into_response()
}

/// `field:value field2:value2` → pairs; a term without `:` is refused, naming it.
fn parse_terms(q: &str) -> Result<Vec<(String, String)>, String> {
    q.split_whitespace()
        .map(|term| match term.split_once(':') {
            Some((f, v)) if !f.is_empty() => Ok((f.to_owned(), v.to_owned())),
            _ => Err(format!("term {term:?} is not field:value")),
        })
        .collect()
}

/// A dotted field path equals `value` (as text; `*` matches any value present).
fn field_matches(doc: &Value, field: &str, value: &str) -> bool {
    let found = field.split('.').try_fold(doc, |v, key| v.get(key));
    match found {
        None => false,
        Some(_) if value == "*" => true,
        Some(Value::String(s)) => s == value,
        Some(v) => serde_json::to_string(v).is_ok_and(|text| text == value),
    }
}

pub(super) async fn incidents(State(d): State<Shared>, Query(at): Query<At>) -> Json<Value> {
    let at = view::instant(&*d.source, at.at);
    let faults = d.source.faults_at(at);
    let seen = d.source.incidents_at(at);
    let truth = crate::chaos::truth::ground_truth(&faults, &seen);
    let views = view::incident_views(d.source.run(), &faults, &seen);
    Json(json!({"at_ms": at, "incidents": views, "ground_truth": truth}))
}

#[derive(Deserialize)]
pub(super) struct OrdersQuery {
    state: Option<String>,
    from: Option<u64>,
    size: Option<u64>,
}

/// The order store's orders by id: the running store's, or a finished run's `orders.db`.
pub(super) async fn orders(State(d): State<Shared>, Query(q): Query<OrdersQuery>) -> Response {
    use crate::orders::model::OrderState;
    use crate::orders::service::OrderDb;
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<OrderState>() {
            Ok(st) => Some(st),
            Err(_) => return error(StatusCode::BAD_REQUEST, format!("state {s:?} is not an order state")),
        },
    };
    let (from, size) = (q.from.unwrap_or(0), q.size.unwrap_or(50).min(MAX_SEARCH_PAGE as u64));
    let listed = if let Some(db) = d.pipeline.as_ref().and_then(|p| p.handles.first::<OrderDb>()) {
        db.store.list(state, from, size).await
    } else {
        let path = d.source.out_dir().join("orders.db");
        if !path.is_file() {
            return Json(json!({"orders": [], "error": "this run has no order store"})).into_response();
        }
        match tokio::task::spawn_blocking(move || {
            crate::orders::store::read_sqlite_file(&path, state, from, size)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    };
    match listed {
        Ok(list) => Json(json!({"from": from, "orders": list})).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Most events a workflow's answer lists.
const WORKFLOW_EVENTS: usize = 50;

/// The running pipeline's Chaos Mesh Workflows, each drawn with its templates' states and its newest events.
pub(super) async fn workflows(State(d): State<Shared>) -> Json<Value> {
    use super::workflow;
    let Some(p) = &d.pipeline else {
        return Json(
            json!({"workflows": [], "note": "a replay has no workflow plans: see its events in mesh-events.jsonl"}),
        );
    };
    let list: Vec<Value> = p
        .mesh
        .list()
        .into_iter()
        .filter(|s| s.kind == "Workflow")
        .filter_map(|s| {
            let key = s.key();
            let plan = p.mesh.workflow_plan(&key)?;
            let events = p.mesh.events_of("Workflow", &key);
            let states = workflow::states(&plan, &events);
            let newest = &events[events.len().saturating_sub(WORKFLOW_EVENTS)..];
            Some(json!({"key": key, "uid": s.uid, "phase": s.phase, "states": states,
                        "svg": workflow::render(&plan, &states), "events": newest}))
        })
        .collect();
    Json(json!({"workflows": list}))
}

/// The mined process model: the running miner's, or the one a finished run left.
pub(super) async fn process_model(State(d): State<Shared>) -> Json<Value> {
    use crate::process_mining::heuristics::DependencyGraph;
    use crate::process_mining::heuristics_miner::ModelBoard;
    let model: Option<(DependencyGraph, Value)> =
        match d.pipeline.as_ref().and_then(|p| p.handles.first::<ModelBoard>()) {
            Some(board) => Some((board.model(), serde_json::to_value(board.quality()).unwrap_or_default())),
            // The miner writes its final model, with its quality, when the run stops.
            None => std::fs::read_to_string(d.source.out_dir().join(super::model::MODEL_FILE))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| {
                    Some((serde_json::from_value::<DependencyGraph>(v.clone()).ok()?, v["quality"].clone()))
                }),
        };
    match model {
        Some((g, quality)) => {
            let svg = super::model::render(&g);
            Json(json!({"model": g, "quality": quality, "svg": svg}))
        }
        None => {
            Json(json!({"model": null, "error": "this run mines no process model (no heuristics miner)"}))
        }
    }
}

/// The knowledge graph: the running reasoner's (with its edits), or the file a finished run left.
async fn knowledge_graph(d: &Dash) -> Option<crate::reasoning::graph::GraphView> {
    use crate::reasoning::graph::KnowledgeGraph;
    use crate::reasoning::incident_reasoner::ReasonerHandle;
    if let Some(h) = d.pipeline.as_ref().and_then(|p| p.handles.first::<ReasonerHandle>()) {
        return Some(h.reasoner.lock().await.graph().view());
    }
    let dir = d.source.out_dir();
    let path =
        [dir.join("knowledge.yaml"), dir.join("flows/knowledge.yaml")].into_iter().find(|p| p.is_file())?;
    KnowledgeGraph::load(&path).map(|g| g.view()).map_err(|e| tracing::warn!("{e}")).ok()
}

/// `{graph, svg}`: the graph's nodes and edges (for the editor) and its drawing, with the incidents
/// reported up to `at` marked; `{graph: null, error}` when the run has none (an answer, not a 404: a page
/// asks for it whatever the flow).
pub(super) async fn graph_json(State(d): State<Shared>, Query(at): Query<At>) -> Json<Value> {
    let Some(view) = knowledge_graph(&d).await else {
        return Json(
            json!({"graph": null, "error": "this run has no knowledge graph (no incident reasoner)"}),
        );
    };
    let at = view::instant(&*d.source, at.at);
    let reported: Vec<String> = d.source.incidents_at(at).into_iter().map(|i| i.name).collect();
    let svg = super::graph::render(&view, &reported);
    Json(json!({"graph": view, "svg": svg}))
}

pub(super) async fn graph_svg(State(d): State<Shared>, Query(at): Query<At>) -> Response {
    let Some(view) = knowledge_graph(&d).await else {
        return error(StatusCode::NOT_FOUND, "this run has no knowledge graph (no incident reasoner)");
    };
    let at = view::instant(&*d.source, at.at);
    let reported: Vec<String> = d.source.incidents_at(at).into_iter().map(|i| i.name).collect();
    let svg = super::graph::render(&view, &reported);
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")], svg).into_response()
}

/// The execution store's runs, newest first; without a store, the journals in the run's directory.
pub(super) async fn runs(State(d): State<Shared>) -> Response {
    let Some(store) = d.store.clone() else {
        return Json(json!(journals(d.source.out_dir()))).into_response();
    };
    match tokio::task::spawn_blocking(move || store.list(MAX_RUNS)).await {
        Ok(Ok(list)) => {
            let rows: Vec<Value> = list
                .into_iter()
                .map(|e| {
                    let mut v = serde_json::to_value(&e).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.remove("journal");
                    }
                    v
                })
                .collect();
            Json(json!(rows)).into_response()
        }
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Most runs the Runs tab lists.
const MAX_RUNS: usize = 200;

/// One run of the store, whole (its journal included).
pub(super) async fn run_details(State(d): State<Shared>, Path(id): Path<i64>) -> Response {
    let Some(store) = d.store.clone() else { return error(StatusCode::NOT_FOUND, "no execution store") };
    match tokio::task::spawn_blocking(move || store.get(id)).await {
        Ok(Ok(Some(e))) => Json(e).into_response(),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, format!("no run {id}")),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The Chaos Toolkit journals in `<out>/experiments/`, newest first, as the Runs tab lists them without a store.
fn journals(out: &FsPath) -> Vec<Value> {
    view::journals(out)
        .into_iter()
        .rev()
        .map(|(path, id, j)| {
            json!({
                "id": id,
                "title": j.pointer("/experiment/title").cloned().unwrap_or(Value::Null),
                "status": j.get("status").cloned().unwrap_or(Value::Null),
                "deviated": j.get("deviated").cloned().unwrap_or(Value::Null),
                "started": j.get("start").cloned().unwrap_or(Value::Null),
                "ended": j.get("end").cloned().unwrap_or(Value::Null),
                "source": "ctk",
                "command": format!("chaos run {}", path.display()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_and_dotted_fields() {
        assert_eq!(
            parse_terms("a:1 b.c:x").unwrap(),
            vec![("a".into(), "1".into()), ("b.c".into(), "x".into())]
        );
        assert!(parse_terms("oops").unwrap_err().contains("oops"));
        let doc = json!({"a": 1, "b": {"c": "x"}});
        assert!(field_matches(&doc, "a", "1"));
        assert!(field_matches(&doc, "b.c", "x"));
        assert!(field_matches(&doc, "b.c", "*"));
        assert!(!field_matches(&doc, "b.d", "*"));
        assert!(!field_matches(&doc, "a", "2"));
    }
}
