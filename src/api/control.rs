//! The control plane: faults, provider calls and experiment execution over HTTP, all authenticated.
//!
//! - `GET /api/faults` (active and ended), `POST /api/faults` (a fault request), `DELETE /api/faults/{id}`,
//!   `DELETE /api/faults` (all), `GET /api/faults/kinds` (the catalogue);
//! - `POST /api/chaos/call` `{module, func, arguments}` → `{output}`: what the Python extension calls;
//!   `GET /api/chaos/discover`: the discovery document;
//! - `POST /execute_experiment` with a Chaos Toolkit experiment as JSON: validates and runs it against this
//!   pipeline, answering `{status_code, title, status, info, journal}` (the shape of dqualizer-ctk's
//!   Resilience Execution API); `GET /experiments` and `GET /experiments/{id}` return journals;
//!   `POST /ui/api/experiments/run` `{text}` does the same for the dashboard with YAML or JSON text.
//!
//! - Chaos Mesh objects: [`crate::api::mesh`] (`/api/experiments`, `/api/schedules`, `/api/workflows`,
//!   `/api/events`, `/api/archives`).
//!
//! One experiment runs at a time unless configured otherwise (`409` meanwhile). `process` providers in
//! submitted experiments may only run executables on the allow-list.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::auth::{Credentials, require_auth};
use crate::chaos::execute::{self, SimEnv};
use crate::chaos::experiment::provider::process::ProcessAllow;
use crate::chaos::experiment::{ActivityError, JournalStatus, RunOptions, VarOverrides};
use crate::chaos::faults::{ApplyError, CATALOGUE, FaultRequest};
use crate::chaos::providers::{Backend, NativeProviders, call_local, discovery};
use crate::reasoning::incident_reasoner::ReasonerHandle;
use crate::sinks::document_index::IndexStore;
use crate::topology::Pipeline;

/// How the control plane is set up.
#[derive(Clone, Default)]
pub struct ControlConfig {
    /// Executables a submitted experiment's `process` provider may run, resolved at the start.
    pub process_allow: ProcessAllow,
    /// Experiments that may run at once (at least 1).
    pub max_concurrent: usize,
    /// Where journals are written.
    pub journal_dir: Option<PathBuf>,
    /// Where every experiment run is also kept (the dashboard's Runs tab).
    pub store: Option<Arc<crate::executions::Store>>,
    /// The base URL this control plane is served at (for the commands that reproduce a run).
    pub api_base: Option<String>,
}

struct Control {
    pipeline: Arc<Pipeline>,
    config: ControlConfig,
    running: tokio::sync::Semaphore,
    journals: Mutex<BTreeMap<String, Value>>,
    next: Mutex<u64>,
    stop: CancellationToken,
}

type Shared = Arc<Control>;

/// The control-plane routes, behind `credentials`. `stop` interrupts running experiments (the run is
/// ending).
pub fn router(
    p: Arc<Pipeline>,
    credentials: Arc<Credentials>,
    config: ControlConfig,
    stop: CancellationToken,
) -> Router {
    let permits = config.max_concurrent.max(1);
    let (store, api_base) = (config.store.clone(), config.api_base.clone());
    let pipeline = p.clone();
    let control = Arc::new(Control {
        pipeline: p,
        config,
        running: tokio::sync::Semaphore::new(permits),
        journals: Mutex::new(BTreeMap::new()),
        next: Mutex::new(0),
        stop,
    });
    let reasoning =
        control.pipeline.handles.first::<ReasonerHandle>().map(|m| reasoning_router(&control.pipeline, m));
    let routes = Router::new()
        .route("/api/faults", get(list_faults).post(apply_fault).delete(remove_all))
        .route("/api/faults/kinds", get(kinds))
        .route("/api/faults/{id}", delete(remove_fault))
        .route("/api/chaos/call", post(call))
        .route("/api/chaos/discover", get(discover))
        .route("/execute_experiment", post(execute_experiment))
        .route("/ui/api/experiments/run", post(execute_text))
        .route("/experiments", get(list_experiments))
        .route("/experiments/{id}", get(get_experiment))
        .route("/api/ground-truth", get(ground_truth))
        .with_state(control);
    let routes = match reasoning {
        Some(r) => routes.merge(r),
        None => routes,
    };
    let routes = routes.merge(crate::api::mesh::router(pipeline, store, api_base));
    routes.layer(axum::middleware::from_fn_with_state(credentials, require_auth))
}

/// The knowledge graph API and the mining trigger over this pipeline's reasoner and signal history.
fn reasoning_router(p: &Arc<Pipeline>, m: &ReasonerHandle) -> Router {
    use crate::api::reasoning::{MiningRequest, ReasoningApi};
    let index = m.index.clone().unwrap_or_else(|| IndexStore::new(Some(p.out.join("index"))));
    let (store, reasoner, clock) = (m.store.clone(), m.reasoner.clone(), p.clock.clone());
    let rng = p.seed.shared_stream("pattern-analysis");
    let trigger = Arc::new(move |req: MiningRequest| {
        let (store, reasoner, index, clock, rng) =
            (store.clone(), reasoner.clone(), index.clone(), clock.clone(), rng.clone());
        let run: futures::future::BoxFuture<'static, Result<Value, String>> = Box::pin(async move {
            let graph = reasoner.lock().await.graph().clone();
            // Each run draws its own stream from the shared one, so ids differ per run yet follow the seed.
            let mut rng = {
                use rand::{RngCore as _, SeedableRng as _};
                rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(rng.lock().next_u64())
            };
            let now = clock.now().timestamp_millis();
            crate::reasoning::analysis::run_analysis(&store, Some(&graph), &index, req.params, &mut rng, now)
                .await
                .map_err(|e| format!("{e:#}"))
        });
        run
    });
    crate::api::reasoning::router(ReasoningApi::new(m.reasoner.clone(), Some(m.graph_path.clone()), trigger))
}

async fn ground_truth(State(c): State<Shared>) -> Response {
    let incidents = crate::reasoning::incident_reasoner::incidents(&c.pipeline);
    Json(crate::chaos::truth::ground_truth(&c.pipeline.faults.all(), &incidents)).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

async fn list_faults(State(c): State<Shared>) -> Response {
    c.pipeline.faults.prune();
    let (active, ended) = c.pipeline.faults.list();
    Json(json!({"active": active, "ended": ended})).into_response()
}

async fn kinds() -> Response {
    Json(json!({"kinds": CATALOGUE})).into_response()
}

async fn apply_fault(State(c): State<Shared>, body: axum::body::Bytes) -> Response {
    let request: FaultRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid fault request: {e}")),
    };
    match c.pipeline.faults.apply(&request).await {
        Ok(record) => (StatusCode::CREATED, Json(record)).into_response(),
        Err(ApplyError::Invalid(e)) => {
            (StatusCode::BAD_REQUEST, Json(json!({"error": e.to_string(), "problems": e.0}))).into_response()
        }
        Err(ApplyError::Failed(e)) => error(StatusCode::CONFLICT, e),
    }
}

async fn remove_fault(State(c): State<Shared>, Path(id): Path<String>) -> Response {
    match c.pipeline.faults.remove(&id) {
        Some(record) => Json(record).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no active fault {id:?}")),
    }
}

async fn remove_all(State(c): State<Shared>) -> Response {
    Json(json!({"removed": c.pipeline.faults.remove_all("removed")})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Call {
    module: String,
    func: String,
    #[serde(default)]
    arguments: serde_json::Map<String, Value>,
}

async fn call(State(c): State<Shared>, body: axum::body::Bytes) -> Response {
    let call: Call = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid call: {e}")),
    };
    match call_local(&c.pipeline, &call.module, &call.func, &call.arguments).await {
        Ok(output) => Json(json!({"output": output})).into_response(),
        Err(e @ ActivityError::UnknownFunction { .. }) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

async fn discover() -> Response {
    Json(discovery()).into_response()
}

/// `process` providers whose executable is not on the allow-list, with their JSON paths.
fn disallowed_processes(raw: &Value, allow: &ProcessAllow) -> Vec<String> {
    let mut found = Vec::new();
    fn walk(v: &Value, path: String, allow: &ProcessAllow, found: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if m.get("type").and_then(Value::as_str) == Some("process") {
                    let exe = m.get("path").and_then(Value::as_str).unwrap_or("");
                    if allow.permits(exe).is_none() {
                        found.push(format!(
                            "{path}: process {exe:?} is not on the allow-list (--allow-process)"
                        ));
                    }
                }
                for (k, v) in m {
                    walk(v, format!("{path}.{k}"), allow, found);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, format!("{path}[{i}]"), allow, found);
                }
            }
            _ => {}
        }
    }
    walk(raw, "$".into(), allow, &mut found);
    found
}

fn answer(status: StatusCode, title: &str, state: String, info: Value, extra: Value) -> Response {
    let mut body =
        json!({"status_code": status.as_u16().to_string(), "title": title, "status": state, "info": info});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    (status, Json(body)).into_response()
}

async fn execute_experiment(State(c): State<Shared>, body: axum::body::Bytes) -> Response {
    let raw: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let info = json!([format!("the body is not JSON: {e}")]);
            return answer(StatusCode::BAD_REQUEST, "", "Experiment is invalid".into(), info, Value::Null);
        }
    };
    execute_value(c, raw).await
}

/// The dashboard's `POST /ui/api/experiments/run` `{text}`: an experiment as YAML or JSON text, run as
/// `POST /execute_experiment` runs one; a parse error names its line.
async fn execute_text(State(c): State<Shared>, body: axum::body::Bytes) -> Response {
    #[derive(Deserialize)]
    struct Text {
        text: String,
    }
    let invalid =
        |info: Value| answer(StatusCode::BAD_REQUEST, "", "Experiment is invalid".into(), info, Value::Null);
    let text = match serde_json::from_slice::<Text>(&body) {
        Ok(t) => t.text,
        Err(e) => return invalid(json!([format!("the body is not {{\"text\": …}}: {e}")])),
    };
    use crate::chaos::experiment::load::{Format, parse};
    let origin = std::path::Path::new("experiment");
    match parse(&text, Format::detect(origin, &text), origin) {
        Ok(raw) => execute_value(c, raw).await,
        Err(e) => invalid(json!([e.to_string()])),
    }
}

async fn execute_value(c: Shared, raw: Value) -> Response {
    let title = raw.get("title").and_then(Value::as_str).unwrap_or("").to_owned();
    let providers = NativeProviders::new(Backend::Local(c.pipeline.clone()));
    let mut problems = disallowed_processes(&raw, &c.config.process_allow);
    let seed = c.pipeline.seed.0;
    let env = SimEnv::for_flow(&c.pipeline.flow, seed);
    let prepared = execute::prepare(&raw, &providers, &RunOptions::default(), &VarOverrides::default(), &env);
    if let Err(errors) = &prepared {
        problems.extend(errors.iter().map(|e| e.to_string()));
    }
    let (experiment, settings) = match prepared {
        Ok(p) if problems.is_empty() => p,
        _ => {
            return answer(
                StatusCode::BAD_REQUEST,
                &title,
                "Experiment is invalid".into(),
                json!(problems),
                Value::Null,
            );
        }
    };
    let Ok(_permit) = c.running.try_acquire() else {
        let info = json!("one experiment runs at a time on this target; try again when it has finished");
        return answer(
            StatusCode::CONFLICT,
            &title,
            "Another experiment is running".into(),
            info,
            Value::Null,
        );
    };
    let id = {
        let mut next = c.next.lock().unwrap_or_else(PoisonError::into_inner);
        *next += 1;
        format!("exp-{:04}", *next)
    };
    tracing::info!(id = %id, title = %title, "executing experiment");
    let mut journal = execute::run(
        &experiment,
        settings,
        &providers,
        c.stop.child_token(),
        execute::now_of(&c.pipeline.clock),
    )
    .await;
    let truth = crate::chaos::truth::since_journal_start(
        &c.pipeline.faults.all(),
        &crate::reasoning::incident_reasoner::incidents(&c.pipeline),
        &journal.start,
    );
    journal.ground_truth = serde_json::to_value(truth).ok();
    journal.redact_secrets();
    let status = journal.status;
    let journal_json = serde_json::to_value(&journal).unwrap_or(Value::Null);
    let location = format!("/experiments/{id}");
    let mut info = format!("journal at {location}");
    if let Some(dir) = &c.config.journal_dir {
        let path = dir.join(format!("{id}.json"));
        let written = std::fs::create_dir_all(dir).and_then(|()| journal.write_private(&path));
        match written {
            Ok(()) => info = format!("{info} and {}", path.display()),
            Err(e) => tracing::warn!("cannot write journal {}: {e}", path.display()),
        }
    }
    if let Some(store) = &c.config.store {
        let command = keep_experiment(&c, &id, &journal.experiment);
        let origin = c.pipeline.out.display().to_string();
        if let Ok(execution) = crate::executions::from_journal(&journal_json, "http", &command, &origin) {
            store.record(&execution);
        }
    }
    c.journals.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone(), journal_json);
    let state = format!("Experiment was executed and terminated with status: {}", status.as_str());
    // dqualizer-ctk's four fields first (`status_code` a string, as it sends it), then chaoslab's:
    // `journal` the path on this server, `journal_url` the whole address to fetch it from.
    let journal_url = c.config.api_base.as_deref().map(|base| format!("{base}{location}"));
    let extra = json!({"id": id, "journal": location, "journal_url": journal_url, "deviated": journal.deviated, "experiment_status": status.as_str(), "completed": status == JournalStatus::Completed});
    answer(StatusCode::OK, &title, state, json!(info), extra)
}

/// Writes the experiment an HTTP run executed beside its journal, and returns the command that runs it again
/// against this instance.
fn keep_experiment(c: &Control, id: &str, experiment: &Value) -> String {
    let api = c.config.api_base.clone().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let Some(dir) = &c.config.journal_dir else { return format!("POST {api}/execute_experiment") };
    let path = dir.join(format!("{id}.experiment.json"));
    let text = serde_json::to_string_pretty(experiment).unwrap_or_default();
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, text)) {
        tracing::warn!("cannot keep the experiment {}: {e}", path.display());
    }
    format!("chaoslab experiment run --target {api} {}", path.display())
}

async fn list_experiments(State(c): State<Shared>) -> Response {
    let journals = c.journals.lock().unwrap_or_else(PoisonError::into_inner);
    let list: Vec<Value> = journals
        .iter()
        .map(|(id, j)| {
            json!({"id": id, "title": j.pointer("/experiment/title"), "status": j.get("status"), "deviated": j.get("deviated")})
        })
        .collect();
    Json(json!({"experiments": list})).into_response()
}

async fn get_experiment(State(c): State<Shared>, Path(id): Path<String>) -> Response {
    match c.journals.lock().unwrap_or_else(PoisonError::into_inner).get(&id) {
        Some(j) => Json(j.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no experiment {id:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_providers_need_the_allow_list() {
        let raw = json!({"method": [
            {"type": "action", "provider": {"type": "process", "path": "/usr/bin/pkill", "arguments": "-f x"}},
            {"type": "action", "provider": {"type": "process", "path": "echo"}}
        ]});
        let echo = ProcessAllow::resolve(&["echo".into()]).unwrap();
        let found = disallowed_processes(&raw, &echo);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("$.method[0].provider: process \"/usr/bin/pkill\""), "{found:?}");
        let both = ProcessAllow::resolve(&["pkill".into(), "echo".into()]).unwrap();
        assert!(disallowed_processes(&raw, &both).is_empty());
    }

    #[test]
    fn an_allowed_name_is_that_executable_not_any_file_so_named() {
        let allow = ProcessAllow::resolve(&["echo".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let impostor = dir.path().join("echo");
        std::fs::write(&impostor, "#!/bin/sh\nrm -rf \"$HOME\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&impostor, std::fs::Permissions::from_mode(0o755)).unwrap();
        let raw = json!({"method": [{"type": "action", "provider": {"type": "process", "path": impostor}}]});
        assert_eq!(disallowed_processes(&raw, &allow).len(), 1, "another file called echo is refused");
        let real = crate::chaos::experiment::provider::process::which("echo").unwrap();
        let raw = json!({"method": [{"type": "action", "provider": {"type": "process", "path": real}}]});
        assert!(disallowed_processes(&raw, &allow).is_empty(), "the allowed one, by its path, runs");
        let err = ProcessAllow::resolve(&["no-such-program-anywhere".into()]).unwrap_err();
        assert!(err.contains("--allow-process \"no-such-program-anywhere\": no such executable"), "{err}");
    }
}
