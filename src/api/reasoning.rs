//! The HTTP API of the incident reasoner: edits to the knowledge graph and on-demand pattern mining.
//!
//! The reference's knowledge graph lives in Neo4j and can only be changed with raw Cypher. Here the
//! graph ([`KnowledgeGraph`]) sits inside the running [`Reasoner`], and these routes edit it in place,
//! under the same lock the reasoner takes for each signal, so an edit applies from the next signal on.
//!
//! # Routes
//! Bodies are JSON (`Content-Type: application/json` or `application/*+json`) of at most
//! [`MAX_BODY_BYTES`]; answers are JSON, except `GET /api/graph/yaml`.
//!
//! | Route | Body | Success |
//! |---|---|---|
//! | `GET /api/graph` | – | 200, [`KnowledgeGraph::view`]: `{"nodes": [...], "edges": [...]}` |
//! | `GET /api/graph/yaml` | – | 200, [`KnowledgeGraph::to_yaml`] as `application/yaml` |
//! | `POST /api/graph/components` | [`GraphComponent`] | 201, the node as in the view |
//! | `PUT /api/graph/components/{name}` | [`GraphComponent`] | 200, the node |
//! | `DELETE /api/graph/components/{name}` | – | 204 |
//! | `POST /api/graph/signals` | [`SignalSpec`] | 201, the node |
//! | `PUT /api/graph/signals/{component}/{name}` | [`SignalSpec`] | 200, the node |
//! | `DELETE /api/graph/signals/{component}/{name}` | – | 204 |
//! | `POST /api/graph/composite-signals` | [`CompositeSpec`] | 201, the node |
//! | `PUT /api/graph/composite-signals/{name}` | [`CompositeSpec`] | 200, the node |
//! | `DELETE /api/graph/composite-signals/{name}` | – | 204 |
//! | `POST /api/graph/incidents` | [`IncidentSpec`] | 201, the node |
//! | `PUT /api/graph/incidents/{name}` | [`IncidentSpec`] | 200, the node |
//! | `DELETE /api/graph/incidents/{name}` | – | 204 |
//! | `POST /api/graph/links` | [`GraphLink`] | 201, the link as sent |
//! | `DELETE /api/graph/links` | [`GraphLink`] | 204 |
//! | `POST /api/graph/reset` | – | 204, after [`KnowledgeGraph::reset_runtime_state`] |
//! | `POST /api/mining/run` | optional `{window, slide, min_support, min_confidence}` | 200, the trigger's JSON |
//!
//! Names in paths are percent-decoded (`Data%20Loading%20Incident`). A `PUT` body may leave out the
//! identity fields (`name`, and `component` for signals), which are then taken from the path; if it sets
//! them they must equal the path (nodes cannot be renamed). An update replaces all properties: an
//! omitted property falls back to its default, as [`KnowledgeGraph`]'s `update_*` methods define it.
//! Deleting a node removes its edges; a component with signals cannot be deleted.
//!
//! `POST /api/mining/run` takes durations as humantime strings (`"1m"`, `"15s"`, `"1m 30s"`) in whole
//! milliseconds; omitted fields take [`MiningParams::default`] (1m window, 15s slide, support 0.1,
//! confidence 0.3). The window and slide must be at least 1 ms, the slide at most the window, at most
//! [`MAX_WINDOWS_PER_SIGNAL`] windows per signal, and `min_support` and `min_confidence` in (0, 1]. The
//! validated [`MiningRequest`] goes to the [`MiningTrigger`] the caller plugs in; the reasoner lock is not
//! held meanwhile.
//!
//! # Errors
//! Every error answers `{"error": "<message>"}`: 400 for an invalid body, path or property (including
//! a name longer than [`MAX_NAME_CHARS`](crate::reasoning::signal::MAX_NAME_CHARS) characters and a self-loop), 404 for an unknown node or edge,
//! 409 for a duplicate node or edge and for deleting a component that still has signals, 413 for a body
//! over the limit, 415 for a body that is not declared JSON, 500 when saving or mining fails.
//!
//! # Persistence
//! With [`ReasoningApi::graph_path`] set, every successful edit is saved with [`KnowledgeGraph::save`]
//! (temporary file then rename) while the lock is still held, so the file always follows the edit order.
//! Resetting the run-time state saves nothing (the file holds no run-time state). If saving fails the
//! answer is 500 and the error is logged, but **the edit stays applied in memory** and the reasoner uses
//! it; the file catches up with the next edit that saves successfully.
//!
//! The routes carry no authentication; put them behind the control plane's authentication layer when
//! they are exposed.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::reasoning::graph::{
    CompositeSpec, GraphComponent, GraphError, GraphLink, GraphView, IncidentSpec, KnowledgeGraph, NodeView,
    SignalKey, SignalSpec,
};
use crate::reasoning::mining::{MAX_WINDOWS_PER_SIGNAL, MiningParams};
use crate::reasoning::reasoner::Reasoner;
use crate::reasoning::signal::check_name;

/// Largest request body accepted, in bytes (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A validated request to run frequent-pattern mining.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MiningRequest {
    /// Window, slide and FP-growth thresholds, checked as the module doc says.
    pub params: MiningParams,
}

/// Runs one mining job and gives its result as JSON, or why it failed.
pub type MiningTrigger =
    Arc<dyn Fn(MiningRequest) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

/// What the routes work on.
#[derive(Clone)]
pub struct ReasoningApi {
    /// The reasoner of the run, shared with the task that feeds it signals.
    pub reasoner: Arc<Mutex<Reasoner>>,
    /// Where every successful edit is saved; `None` keeps edits in memory only.
    pub graph_path: Option<PathBuf>,
    /// Starts a mining run for `POST /api/mining/run`.
    pub mining: MiningTrigger,
}

impl ReasoningApi {
    /// The API over `reasoner`, saving edits to `graph_path` and mining with `mining`.
    pub fn new(reasoner: Arc<Mutex<Reasoner>>, graph_path: Option<PathBuf>, mining: MiningTrigger) -> Self {
        ReasoningApi { reasoner, graph_path, mining }
    }

    /// Applies `apply` to the graph under the reasoner lock and saves the graph when it succeeds.
    async fn edit<R>(
        &self,
        change: &str,
        apply: impl FnOnce(&mut KnowledgeGraph) -> Result<R, GraphError>,
    ) -> Result<R, ApiError> {
        let mut reasoner = self.reasoner.lock().await;
        let graph = reasoner.graph_mut();
        let outcome = apply(graph)?;
        tracing::info!(change, "knowledge graph edited over the API");
        if let Some(path) = &self.graph_path {
            graph.save(path).map_err(ApiError::NotSaved)?;
            tracing::debug!(path = %path.display(), "knowledge graph saved");
        }
        Ok(outcome)
    }
}

impl fmt::Debug for ReasoningApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReasoningApi").field("graph_path", &self.graph_path).finish_non_exhaustive()
    }
}

/// Why a request failed; the response is `{"error": "<Display>"}` with [`ApiError::status`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The graph refused the edit or could not be serialized.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A request value is out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The body field or path segment.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The body is not valid JSON for the route.
    #[error("invalid JSON body: {0}")]
    Json(#[source] serde_json::Error),
    /// The route needs a body and none was sent.
    #[error("a JSON body is required")]
    MissingBody,
    /// The body is not declared as JSON.
    #[error("the request body must be JSON (Content-Type: application/json)")]
    NotJson,
    /// The body or path could not be read (too large, bad percent-encoding, ...).
    #[error("{reason}")]
    Request {
        /// Status axum gives the problem.
        status: StatusCode,
        /// axum's description.
        reason: String,
    },
    /// The edit is applied in memory but the file could not be written.
    #[error("the change is applied in memory but was not saved: {0}")]
    NotSaved(#[source] GraphError),
    /// The mining trigger failed.
    #[error("mining run failed: {0}")]
    Mining(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Graph(error) => graph_status(error),
            ApiError::Invalid { .. } | ApiError::Json(_) | ApiError::MissingBody => StatusCode::BAD_REQUEST,
            ApiError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Request { status, .. } => *status,
            ApiError::NotSaved(_) | ApiError::Mining(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Status of a graph error: unknown nodes and edges 404, duplicates and conflicts 409, bad values 400.
fn graph_status(error: &GraphError) -> StatusCode {
    match error {
        GraphError::UnknownComponent(_)
        | GraphError::UnknownSignal { .. }
        | GraphError::UnknownComposite(_)
        | GraphError::UnknownIncident(_)
        | GraphError::NoSuchEdge { .. } => StatusCode::NOT_FOUND,
        GraphError::Duplicate { .. }
        | GraphError::DuplicateEdge { .. }
        | GraphError::ComponentInUse { .. } => StatusCode::CONFLICT,
        GraphError::Invalid { .. } => StatusCode::BAD_REQUEST,
        GraphError::Load { .. }
        | GraphError::Read { .. }
        | GraphError::Write { .. }
        | GraphError::Yaml(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();
        if status.is_server_error() {
            tracing::error!(%status, error = %message, "reasoning API request failed");
        } else {
            tracing::debug!(%status, error = %message, "reasoning API request refused");
        }
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// The reasoning API (see the module doc for the routes).
pub fn router(state: ReasoningApi) -> Router {
    Router::new()
        .route("/api/graph", get(graph_view))
        .route("/api/graph/yaml", get(graph_yaml))
        .route("/api/graph/components", post(create_component))
        .route("/api/graph/components/{name}", put(update_component).delete(delete_component))
        .route("/api/graph/signals", post(create_signal))
        .route("/api/graph/signals/{component}/{name}", put(update_signal).delete(delete_signal))
        .route("/api/graph/composite-signals", post(create_composite))
        .route("/api/graph/composite-signals/{name}", put(update_composite).delete(delete_composite))
        .route("/api/graph/incidents", post(create_incident))
        .route("/api/graph/incidents/{name}", put(update_incident).delete(delete_incident))
        .route("/api/graph/links", post(link).delete(unlink))
        .route("/api/graph/reset", post(reset))
        .route("/api/mining/run", post(run_mining))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A required JSON body.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        read_json(request, state).await?.map(JsonBody).ok_or(ApiError::MissingBody)
    }
}

/// A JSON body that may be left out (empty or only whitespace).
struct OptionalJsonBody<T>(Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        read_json(request, state).await.map(OptionalJsonBody)
    }
}

/// Reads the body (within the body limit) and parses it, or `None` when it is empty.
async fn read_json<S: Send + Sync, T: DeserializeOwned>(
    request: Request,
    state: &S,
) -> Result<Option<T>, ApiError> {
    let declared_json = is_json(request.headers());
    let body = Bytes::from_request(request, state).await.map_err(|rejection| ApiError::Request {
        status: rejection.status(),
        reason: rejection.body_text(),
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !declared_json {
        return Err(ApiError::NotJson);
    }
    serde_json::from_slice(&body).map(Some).map_err(ApiError::Json)
}

/// `Content-Type` is `application/json` or `application/<something>+json`, parameters ignored.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Path parameters, with axum's rejection turned into an [`ApiError`].
struct PathParams<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state).await.map(|Path(params)| PathParams(params)).map_err(
            |rejection| ApiError::Request { status: rejection.status(), reason: rejection.body_text() },
        )
    }
}

/// The graph's own name check (length and emptiness), as the same error the graph gives.
fn check(field: &'static str, name: &str) -> Result<(), GraphError> {
    check_name(name).map_err(|reason| GraphError::Invalid { field, reason })
}

/// Checks every name a link refers to.
fn check_link(link: &GraphLink) -> Result<(), GraphError> {
    match link {
        GraphLink::PredecessorOf { from, to } => {
            check("component name", from)?;
            check("component name", to)
        }
        GraphLink::PartOf { signal, component, composite } => {
            check("signal name", signal)?;
            check("component name", component)?;
            check("composite signal name", composite)
        }
        GraphLink::Indicates { composite, incident } => {
            check("composite signal name", composite)?;
            check("incident name", incident)
        }
    }
}

/// Builds the spec of a `PUT` from its body, taking the identity fields from the path when the body
/// leaves them out and refusing a body that names another node.
fn update_spec<T: DeserializeOwned>(body: Value, identity: &[(&'static str, &str)]) -> Result<T, ApiError> {
    let Value::Object(mut object) = body else {
        return Err(ApiError::Invalid { field: "body", reason: "must be a JSON object".to_string() });
    };
    for &(field, expected) in identity {
        match object.get(field) {
            None => {
                object.insert(field.to_string(), Value::String(expected.to_string()));
            }
            Some(Value::String(given)) if given == expected => {}
            Some(_) => {
                return Err(ApiError::Invalid {
                    field,
                    reason: format!(
                        "the body's {field} differs from {expected:?} in the path (nodes cannot be renamed)"
                    ),
                });
            }
        }
    }
    serde_json::from_value(Value::Object(object)).map_err(ApiError::Json)
}

/// A node of the graph, by identity.
#[derive(Clone, Copy)]
enum NodeRef<'a> {
    Component(&'a str),
    Signal { name: &'a str, component: &'a str },
    Composite(&'a str),
    Incident(&'a str),
}

/// The node `wanted` as [`KnowledgeGraph::view`] shows it.
fn node_view(graph: &KnowledgeGraph, wanted: NodeRef<'_>) -> Result<NodeView, GraphError> {
    let found = graph.view().nodes.into_iter().find(|node| match (node, wanted) {
        (NodeView::DataPipeline { name, .. }, NodeRef::Component(wanted)) => name == wanted,
        (NodeView::Signal { name, component, .. }, NodeRef::Signal { name: n, component: c }) => {
            name == n && component == c
        }
        (NodeView::CompositeSignal { name, .. }, NodeRef::Composite(wanted)) => name == wanted,
        (NodeView::Incident { name, .. }, NodeRef::Incident(wanted)) => name == wanted,
        _ => false,
    });
    found.ok_or_else(|| match wanted {
        NodeRef::Component(name) => GraphError::UnknownComponent(name.to_string()),
        NodeRef::Signal { name, component } => {
            GraphError::UnknownSignal { name: name.to_string(), component: component.to_string() }
        }
        NodeRef::Composite(name) => GraphError::UnknownComposite(name.to_string()),
        NodeRef::Incident(name) => GraphError::UnknownIncident(name.to_string()),
    })
}

type Created = (StatusCode, Json<NodeView>);

async fn graph_view(State(api): State<ReasoningApi>) -> Json<GraphView> {
    Json(api.reasoner.lock().await.graph().view())
}

async fn graph_yaml(State(api): State<ReasoningApi>) -> Result<Response, ApiError> {
    let text = api.reasoner.lock().await.graph().to_yaml()?;
    Ok(([(header::CONTENT_TYPE, "application/yaml")], text).into_response())
}

async fn create_component(
    State(api): State<ReasoningApi>,
    JsonBody(spec): JsonBody<GraphComponent>,
) -> Result<Created, ApiError> {
    check("component name", &spec.name)?;
    let name = spec.name.clone();
    let node = api
        .edit(&format!("create component {name:?}"), |graph| {
            graph.create_component(spec)?;
            node_view(graph, NodeRef::Component(&name))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(node)))
}

async fn update_component(
    State(api): State<ReasoningApi>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<NodeView>, ApiError> {
    check("component name", &name)?;
    let spec: GraphComponent = update_spec(body, &[("name", &name)])?;
    let node = api
        .edit(&format!("update component {name:?}"), |graph| {
            graph.update_component(spec)?;
            node_view(graph, NodeRef::Component(&name))
        })
        .await?;
    Ok(Json(node))
}

async fn delete_component(
    State(api): State<ReasoningApi>,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    check("component name", &name)?;
    api.edit(&format!("delete component {name:?}"), |graph| graph.delete_component(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_signal(
    State(api): State<ReasoningApi>,
    JsonBody(spec): JsonBody<SignalSpec>,
) -> Result<Created, ApiError> {
    check("signal name", &spec.name)?;
    check("component name", &spec.component)?;
    let key = SignalKey::new(spec.name.clone(), spec.component.clone());
    let node = api
        .edit(&format!("create signal {key}"), |graph| {
            graph.create_signal(spec)?;
            node_view(graph, NodeRef::Signal { name: &key.name, component: &key.component })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(node)))
}

async fn update_signal(
    State(api): State<ReasoningApi>,
    PathParams((component, name)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<NodeView>, ApiError> {
    check("component name", &component)?;
    check("signal name", &name)?;
    let spec: SignalSpec = update_spec(body, &[("name", &name), ("component", &component)])?;
    let node = api
        .edit(&format!("update signal {name}#{component}"), |graph| {
            graph.update_signal(spec)?;
            node_view(graph, NodeRef::Signal { name: &name, component: &component })
        })
        .await?;
    Ok(Json(node))
}

async fn delete_signal(
    State(api): State<ReasoningApi>,
    PathParams((component, name)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check("component name", &component)?;
    check("signal name", &name)?;
    let key = SignalKey::new(name, component);
    api.edit(&format!("delete signal {key}"), |graph| graph.delete_signal(&key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_composite(
    State(api): State<ReasoningApi>,
    JsonBody(spec): JsonBody<CompositeSpec>,
) -> Result<Created, ApiError> {
    check("composite signal name", &spec.name)?;
    let name = spec.name.clone();
    let node = api
        .edit(&format!("create composite signal {name:?}"), |graph| {
            graph.create_composite(spec)?;
            node_view(graph, NodeRef::Composite(&name))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(node)))
}

async fn update_composite(
    State(api): State<ReasoningApi>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<NodeView>, ApiError> {
    check("composite signal name", &name)?;
    let spec: CompositeSpec = update_spec(body, &[("name", &name)])?;
    let node = api
        .edit(&format!("update composite signal {name:?}"), |graph| {
            graph.update_composite(spec)?;
            node_view(graph, NodeRef::Composite(&name))
        })
        .await?;
    Ok(Json(node))
}

async fn delete_composite(
    State(api): State<ReasoningApi>,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    check("composite signal name", &name)?;
    api.edit(&format!("delete composite signal {name:?}"), |graph| graph.delete_composite(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_incident(
    State(api): State<ReasoningApi>,
    JsonBody(spec): JsonBody<IncidentSpec>,
) -> Result<Created, ApiError> {
    check("incident name", &spec.name)?;
    let name = spec.name.clone();
    let node = api
        .edit(&format!("create incident {name:?}"), |graph| {
            graph.create_incident(spec)?;
            node_view(graph, NodeRef::Incident(&name))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(node)))
}

async fn update_incident(
    State(api): State<ReasoningApi>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<NodeView>, ApiError> {
    check("incident name", &name)?;
    let spec: IncidentSpec = update_spec(body, &[("name", &name)])?;
    let node = api
        .edit(&format!("update incident {name:?}"), |graph| {
            graph.update_incident(spec)?;
            node_view(graph, NodeRef::Incident(&name))
        })
        .await?;
    Ok(Json(node))
}

async fn delete_incident(
    State(api): State<ReasoningApi>,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    check("incident name", &name)?;
    api.edit(&format!("delete incident {name:?}"), |graph| graph.delete_incident(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn link(
    State(api): State<ReasoningApi>,
    JsonBody(link): JsonBody<GraphLink>,
) -> Result<(StatusCode, Json<GraphLink>), ApiError> {
    check_link(&link)?;
    api.edit(&format!("link {link:?}"), |graph| graph.link(link.clone())).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

async fn unlink(
    State(api): State<ReasoningApi>,
    JsonBody(link): JsonBody<GraphLink>,
) -> Result<StatusCode, ApiError> {
    check_link(&link)?;
    api.edit(&format!("unlink {link:?}"), |graph| graph.unlink(&link)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset(State(api): State<ReasoningApi>) -> StatusCode {
    api.reasoner.lock().await.graph_mut().reset_runtime_state();
    tracing::info!("knowledge graph run-time state reset over the API");
    StatusCode::NO_CONTENT
}

/// The body of `POST /api/mining/run`; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MiningBody {
    window: Option<String>,
    slide: Option<String>,
    min_support: Option<f64>,
    min_confidence: Option<f64>,
}

impl MiningBody {
    /// Fills the defaults in and checks the ranges of the module doc.
    fn validate(self) -> Result<MiningRequest, ApiError> {
        let defaults = MiningParams::default();
        let window = self.window.map_or(Ok(defaults.window), |text| duration("window", &text))?;
        let slide = self.slide.map_or(Ok(defaults.slide), |text| duration("slide", &text))?;
        if slide > window {
            return Err(ApiError::Invalid {
                field: "slide",
                reason: format!(
                    "{} is longer than the window ({})",
                    humantime::format_duration(slide),
                    humantime::format_duration(window)
                ),
            });
        }
        // Both are at least 1 ms here.
        let per_signal = window.as_millis().div_ceil(slide.as_millis());
        if per_signal > u128::from(MAX_WINDOWS_PER_SIGNAL) {
            return Err(ApiError::Invalid {
                field: "window",
                reason: format!(
                    "window / slide puts each signal into {per_signal} windows, at most {MAX_WINDOWS_PER_SIGNAL} allowed"
                ),
            });
        }
        let min_support = fraction("min_support", self.min_support.unwrap_or(defaults.min_support))?;
        let min_confidence =
            fraction("min_confidence", self.min_confidence.unwrap_or(defaults.min_confidence))?;
        Ok(MiningRequest { params: MiningParams { window, slide, min_support, min_confidence } })
    }
}

/// A humantime duration of at least 1 ms in whole milliseconds.
fn duration(field: &'static str, text: &str) -> Result<Duration, ApiError> {
    let value = humantime::parse_duration(text).map_err(|error| ApiError::Invalid {
        field,
        reason: format!("{error} (expected a duration such as \"1m\" or \"15s\")"),
    })?;
    if value < Duration::from_millis(1) {
        return Err(ApiError::Invalid { field, reason: "must be at least 1ms".to_string() });
    }
    if value.subsec_nanos() % 1_000_000 != 0 {
        return Err(ApiError::Invalid {
            field,
            reason: "must be a whole number of milliseconds".to_string(),
        });
    }
    Ok(value)
}

/// A value in (0, 1].
fn fraction(field: &'static str, value: f64) -> Result<f64, ApiError> {
    if value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(ApiError::Invalid { field, reason: format!("{value} is not in (0, 1]") })
    }
}

async fn run_mining(
    State(api): State<ReasoningApi>,
    OptionalJsonBody(body): OptionalJsonBody<MiningBody>,
) -> Result<Json<Value>, ApiError> {
    let request = body.unwrap_or_default().validate()?;
    tracing::info!(?request, "mining run requested over the API");
    let result = (api.mining)(request).await.map_err(ApiError::Mining)?;
    Ok(Json(result))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use axum::body::Body;
    use chrono::NaiveDateTime;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::reasoning::signal::{MAX_NAME_CHARS, Signal};

    const KNOWLEDGE: &str = include_str!("../../flows/knowledge.yaml");

    fn demo() -> KnowledgeGraph {
        KnowledgeGraph::from_yaml_str(KNOWLEDGE, "flows/knowledge.yaml").unwrap()
    }

    /// A test setup: the router, the shared reasoner and the mining requests the trigger received.
    struct Setup {
        router: Router,
        reasoner: Arc<Mutex<Reasoner>>,
        mined: Arc<StdMutex<Vec<MiningRequest>>>,
    }

    fn setup_with(graph_path: Option<PathBuf>, mining_result: Result<Value, String>) -> Setup {
        let reasoner = Arc::new(Mutex::new(Reasoner::new(demo())));
        let mined = Arc::new(StdMutex::new(Vec::new()));
        let seen = Arc::clone(&mined);
        let trigger: MiningTrigger =
            Arc::new(move |request: MiningRequest| -> BoxFuture<'static, Result<Value, String>> {
                seen.lock().unwrap().push(request);
                let result = mining_result.clone();
                Box::pin(async move { result })
            });
        let router = router(ReasoningApi::new(Arc::clone(&reasoner), graph_path, trigger));
        Setup { router, reasoner, mined }
    }

    fn setup() -> Setup {
        setup_with(None, Ok(json!({"predictions": []})))
    }

    async fn send(router: &Router, request: axum::http::Request<Body>) -> (StatusCode, Value) {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        (status, body)
    }

    async fn call(router: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let builder = axum::http::Request::builder().method(method).uri(uri);
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        };
        send(router, request).await
    }

    fn error_of(body: &Value) -> &str {
        body["error"].as_str().unwrap_or_else(|| panic!("no error message in {body}"))
    }

    fn time(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    #[tokio::test]
    async fn graph_view_and_yaml() {
        let s = setup();
        let (status, view) = call(&s.router, "GET", "/api/graph", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(view, serde_json::to_value(demo().view()).unwrap());
        assert_eq!(view["nodes"].as_array().unwrap().len(), 14);

        let request = axum::http::Request::get("/api/graph/yaml").body(Body::empty()).unwrap();
        let response = s.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/yaml");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(KnowledgeGraph::from_yaml_str(text, "served").unwrap(), demo());
    }

    #[tokio::test]
    async fn components_are_created_updated_and_deleted() {
        let s = setup();
        let (status, node) =
            call(&s.router, "POST", "/api/graph/components", Some(json!({"name": "KAFKA", "owner": "Ops"})))
                .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            node,
            json!({"label": "DataPipeline", "id": "component:KAFKA", "name": "KAFKA", "owner": "Ops"})
        );

        let (status, body) =
            call(&s.router, "POST", "/api/graph/components", Some(json!({"name": "KAFKA"}))).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(error_of(&body), "component \"KAFKA\" already exists");

        let (status, node) =
            call(&s.router, "PUT", "/api/graph/components/KAFKA", Some(json!({"owner": "Platform"}))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(node["owner"], "Platform");
        let (status, node) =
            call(&s.router, "PUT", "/api/graph/components/KAFKA", Some(json!({"name": "KAFKA"}))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(node.get("owner").is_none(), "an omitted owner is cleared: {node}");
        assert_eq!(s.reasoner.lock().await.graph().component("KAFKA").unwrap().owner, None);

        let (status, body) =
            call(&s.router, "PUT", "/api/graph/components/KAFKA", Some(json!({"name": "KAFKA2"}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).contains("cannot be renamed"), "{body}");
        let (status, _) = call(&s.router, "PUT", "/api/graph/components/NOPE", Some(json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (status, body) = call(&s.router, "DELETE", "/api/graph/components/NIFI", None).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(error_of(&body).contains("still has signals (MqttConnectionError)"), "{body}");
        let (status, body) = call(&s.router, "DELETE", "/api/graph/components/KAFKA", None).await;
        assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
        assert!(s.reasoner.lock().await.graph().component("KAFKA").is_none());
        let (status, body) = call(&s.router, "DELETE", "/api/graph/components/KAFKA", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error_of(&body), "unknown DataPipeline component \"KAFKA\"");
        assert_eq!(*s.reasoner.lock().await.graph(), demo());
    }

    #[tokio::test]
    async fn signals_are_addressed_by_component_and_name() {
        let s = setup();
        let spec = json!({"name": "Lag", "component": "FLINK", "threshold": 3, "coolDownSec": 30});
        let (status, node) = call(&s.router, "POST", "/api/graph/signals", Some(spec.clone())).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            node,
            json!({"label": "Signal", "id": "signal:Lag#FLINK", "name": "Lag", "component": "FLINK",
                "threshold": 3, "coolDownSec": 30})
        );
        let (status, _) = call(&s.router, "POST", "/api/graph/signals", Some(spec)).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, body) =
            call(&s.router, "POST", "/api/graph/signals", Some(json!({"name": "Lag", "component": "KAFKA"})))
                .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error_of(&body), "unknown DataPipeline component \"KAFKA\"");
        let half = json!({"name": "Half", "component": "FLINK", "threshold": 3});
        let (status, body) = call(&s.router, "POST", "/api/graph/signals", Some(half)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).contains("needs both threshold and coolDownSec"), "{body}");

        let (status, node) = call(
            &s.router,
            "PUT",
            "/api/graph/signals/FLINK/Lag",
            Some(json!({"threshold": 5, "coolDownSec": 60})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!((node["threshold"].clone(), node["coolDownSec"].clone()), (json!(5), json!(60)));
        let (status, node) = call(&s.router, "PUT", "/api/graph/signals/FLINK/Lag", Some(json!({}))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(node["threshold"], -1, "an update without counting makes a simple signal");
        let (status, body) = call(
            &s.router,
            "PUT",
            "/api/graph/signals/FLINK/Lag",
            Some(json!({"name": "Lag", "component": "NIFI"})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).starts_with("invalid component: "), "{body}");
        let (status, body) = call(&s.router, "PUT", "/api/graph/signals/NIFI/Lag", Some(json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error_of(&body), "unknown signal \"Lag\" of component \"NIFI\"");

        let (status, _) = call(&s.router, "DELETE", "/api/graph/signals/FLINK/Lag", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = call(&s.router, "DELETE", "/api/graph/signals/FLINK/Lag", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Deleting a signal removes its PART_OF edge.
        let (status, _) =
            call(&s.router, "DELETE", "/api/graph/signals/NIFI/MqttConnectionError", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(s.reasoner.lock().await.graph().composite("MqttUnavailable").unwrap().parts.len(), 3);
    }

    #[tokio::test]
    async fn composites_and_incidents_are_created_updated_and_deleted() {
        let s = setup();
        let (status, node) = call(
            &s.router,
            "POST",
            "/api/graph/composite-signals",
            Some(json!({"name": "Lagging", "activationThreshold": 0.5})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            node,
            json!({"label": "CompositeSignal", "id": "composite:Lagging", "name": "Lagging",
                "activationThreshold": 0.5, "coolDownSec": 60})
        );
        let (status, _) =
            call(&s.router, "POST", "/api/graph/composite-signals", Some(json!({"name": "Lagging"}))).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, body) = call(
            &s.router,
            "PUT",
            "/api/graph/composite-signals/Lagging",
            Some(json!({"activationThreshold": 1.5})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).contains("not in (0, 1]"), "{body}");
        let (status, node) =
            call(&s.router, "PUT", "/api/graph/composite-signals/Lagging", Some(json!({"coolDownSec": 300})))
                .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (node["activationThreshold"].clone(), node["coolDownSec"].clone()),
            (json!(1.0), json!(300))
        );

        let (status, node) = call(
            &s.router,
            "POST",
            "/api/graph/incidents",
            Some(json!({"name": "Storage Incident", "description": "disk full"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            node,
            json!({"label": "Incident", "id": "incident:Storage Incident", "name": "Storage Incident",
                "description": "disk full"})
        );
        let (status, _) =
            call(&s.router, "POST", "/api/graph/incidents", Some(json!({"name": "Storage Incident"}))).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, node) = call(
            &s.router,
            "PUT",
            "/api/graph/incidents/Data%20Loading%20Incident",
            Some(json!({"description": "broker down"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(node["description"], "broker down");
        let (status, _) = call(&s.router, "PUT", "/api/graph/incidents/Ghost", Some(json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (status, _) =
            call(&s.router, "DELETE", "/api/graph/incidents/Data%20Loading%20Incident", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(s.reasoner.lock().await.graph().composite("MqttUnavailable").unwrap().indicates.is_empty());
        let (status, _) = call(&s.router, "DELETE", "/api/graph/incidents/Ghost", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = call(&s.router, "DELETE", "/api/graph/composite-signals/Lagging", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body) = call(&s.router, "DELETE", "/api/graph/composite-signals/Lagging", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error_of(&body), "unknown composite signal \"Lagging\"");
    }

    #[tokio::test]
    async fn links_are_added_and_removed() {
        let s = setup();
        let edge = json!({"type": "PREDECESSOR_OF", "from": "NODE-RED", "to": "ELASTICSEARCH"});
        let (status, body) = call(&s.router, "POST", "/api/graph/links", Some(edge.clone())).await;
        assert_eq!((status, body), (StatusCode::CREATED, edge.clone()));
        assert_eq!(
            s.reasoner.lock().await.graph().component("NODE-RED").unwrap().predecessor_of,
            ["ELASTICSEARCH"]
        );
        let (status, body) = call(&s.router, "POST", "/api/graph/links", Some(edge.clone())).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(error_of(&body).contains("PREDECESSOR_OF edge"), "{body}");
        let self_loop = json!({"type": "PREDECESSOR_OF", "from": "NIFI", "to": "NIFI"});
        let (status, _) = call(&s.router, "POST", "/api/graph/links", Some(self_loop)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let unknown = json!({"type": "INDICATES", "composite": "MqttUnavailable", "incident": "Ghost"});
        let (status, body) = call(&s.router, "POST", "/api/graph/links", Some(unknown)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error_of(&body), "unknown incident \"Ghost\"");
        let (status, body) = call(
            &s.router,
            "POST",
            "/api/graph/links",
            Some(json!({"type": "OWNS", "from": "a", "to": "b"})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).starts_with("invalid JSON body: unknown variant `OWNS`"), "{body}");

        let (status, body) = call(&s.router, "DELETE", "/api/graph/links", Some(edge.clone())).await;
        assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
        let (status, body) = call(&s.router, "DELETE", "/api/graph/links", Some(edge)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(error_of(&body).starts_with("there is no PREDECESSOR_OF edge"), "{body}");
        let part = json!({"type": "PART_OF", "signal": "MqttConnectionError", "component": "NIFI",
            "composite": "MqttUnavailable"});
        let (status, _) = call(&s.router, "DELETE", "/api/graph/links", Some(part)).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(s.reasoner.lock().await.graph().composite("MqttUnavailable").unwrap().parts.len(), 3);
    }

    #[tokio::test]
    async fn bad_bodies_and_names_are_refused() {
        let s = setup();
        let long = "N".repeat(MAX_NAME_CHARS + 1);
        let (status, body) =
            call(&s.router, "POST", "/api/graph/components", Some(json!({"name": long.clone()}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).starts_with("invalid component name: 201 characters"), "{body}");
        let (status, body) = call(&s.router, "DELETE", &format!("/api/graph/components/{long}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).starts_with("invalid component name"), "{body}");
        let link = json!({"type": "INDICATES", "composite": long, "incident": "Data Loading Incident"});
        let (status, body) = call(&s.router, "POST", "/api/graph/links", Some(link)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).len() < 300, "the long name is not echoed: {body}");

        let (status, body) =
            call(&s.router, "POST", "/api/graph/components", Some(json!({"name": "X", "colour": "blue"})))
                .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).contains("unknown field `colour`"), "{body}");
        let (status, body) = call(&s.router, "PUT", "/api/graph/components/NIFI", Some(json!(["x"]))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_of(&body), "invalid body: must be a JSON object");
        let (status, body) = call(&s.router, "POST", "/api/graph/incidents", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_of(&body), "a JSON body is required");

        let malformed = axum::http::Request::post("/api/graph/incidents")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"name\": "))
            .unwrap();
        let (status, body) = send(&s.router, malformed).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&body).starts_with("invalid JSON body: EOF"), "{body}");
        let text = axum::http::Request::post("/api/graph/incidents")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("{\"name\": \"X\"}"))
            .unwrap();
        let (status, body) = send(&s.router, text).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(error_of(&body).contains("application/json"), "{body}");
        let description = "d".repeat(MAX_BODY_BYTES);
        let (status, body) = call(
            &s.router,
            "POST",
            "/api/graph/incidents",
            Some(json!({"name": "Big", "description": description})),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!error_of(&body).is_empty());
        let charset = axum::http::Request::post("/api/graph/incidents")
            .header(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")
            .body(Body::from("{\"name\": \"X\"}"))
            .unwrap();
        assert_eq!(send(&s.router, charset).await.0, StatusCode::CREATED);
        assert_eq!(s.reasoner.lock().await.graph().incidents().len(), 2, "only X was added");
    }

    #[tokio::test]
    async fn reset_clears_runtime_state() {
        let s = setup();
        let signal = Signal::new(
            "MqttConnectionError",
            time("2024-01-01T00:00:00"),
            "NIFI",
            "down",
            Default::default(),
        );
        s.reasoner.lock().await.process(signal).unwrap();
        let counter = |view: &Value| {
            view["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["id"] == "signal:MqttConnectionError#NIFI")
                .unwrap()["thresholdCounter"]
                .clone()
        };
        let (_, view) = call(&s.router, "GET", "/api/graph", None).await;
        assert_eq!(counter(&view), 1);
        let (status, body) = call(&s.router, "POST", "/api/graph/reset", None).await;
        assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
        let (_, view) = call(&s.router, "GET", "/api/graph", None).await;
        assert_eq!(counter(&view), Value::Null);
        assert_eq!(*s.reasoner.lock().await.graph(), demo());
    }

    #[tokio::test]
    async fn edits_are_saved_and_reload_to_the_same_graph() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knowledge.yaml");
        std::fs::write(&path, KNOWLEDGE).unwrap();
        let s = setup_with(Some(path.clone()), Ok(Value::Null));

        let (status, _) =
            call(&s.router, "POST", "/api/graph/incidents", Some(json!({"name": "Storage Incident"}))).await;
        assert_eq!(status, StatusCode::CREATED);
        let saved = std::fs::read_to_string(&path).unwrap();
        assert_ne!(saved, KNOWLEDGE);
        assert!(saved.contains("Storage Incident"), "{saved}");
        let indicates =
            json!({"type": "INDICATES", "composite": "MqttUnavailable", "incident": "Storage Incident"});
        let (status, _) = call(&s.router, "POST", "/api/graph/links", Some(indicates)).await;
        assert_eq!(status, StatusCode::CREATED);
        let loaded = KnowledgeGraph::load(&path).unwrap();
        assert_eq!(loaded, *s.reasoner.lock().await.graph());
        assert_eq!(loaded.composite("MqttUnavailable").unwrap().indicates.len(), 2);

        // A refused edit leaves the file alone.
        let before = std::fs::read_to_string(&path).unwrap();
        let (status, _) = call(&s.router, "DELETE", "/api/graph/incidents/Ghost", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 1, "no temporary file is left behind");
    }

    #[tokio::test]
    async fn a_failed_save_answers_500_and_keeps_the_edit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("knowledge.yaml");
        let s = setup_with(Some(path.clone()), Ok(Value::Null));
        let (status, body) =
            call(&s.router, "POST", "/api/graph/components", Some(json!({"name": "KAFKA"}))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let message = error_of(&body);
        assert!(
            message.starts_with("the change is applied in memory but was not saved: writing"),
            "{message}"
        );
        assert!(s.reasoner.lock().await.graph().component("KAFKA").is_some());
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn edits_reach_the_shared_reasoner() {
        let s = setup();
        let alert = |at: &str| {
            Signal::new("MqttInstanceDownAlert", time(at), "MQTT_BROKER", "broker down", Default::default())
        };
        // In the demo graph the alert is one of four parts of MqttUnavailable: alone it fires nothing.
        let processed = s.reasoner.lock().await.process(alert("2024-01-01T00:00:00")).unwrap();
        assert!(processed.incidents.is_empty());

        let (status, _) =
            call(&s.router, "POST", "/api/graph/composite-signals", Some(json!({"name": "BrokerDown"})))
                .await;
        assert_eq!(status, StatusCode::CREATED);
        let links = [
            json!({"type": "PART_OF", "signal": "MqttInstanceDownAlert", "component": "MQTT_BROKER",
                "composite": "BrokerDown"}),
            json!({"type": "INDICATES", "composite": "BrokerDown", "incident": "Data Loading Incident"}),
        ];
        for link in links {
            let (status, body) = call(&s.router, "POST", "/api/graph/links", Some(link)).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let processed = s.reasoner.lock().await.process(alert("2024-01-01T00:00:10")).unwrap();
        assert_eq!(processed.incidents.len(), 1);
        assert_eq!(processed.incidents[0].name, "Data Loading Incident");
        assert_eq!(processed.incidents[0].composite_signal.name, "BrokerDown");

        // Signals of a component added over the API are accepted by the reasoner from then on.
        let fault = || Signal::new("Lag", time("2024-01-01T00:01:00"), "KAFKA", "slow", Default::default());
        assert!(s.reasoner.lock().await.process(fault()).is_err());
        let (status, _) =
            call(&s.router, "POST", "/api/graph/components", Some(json!({"name": "KAFKA"}))).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(s.reasoner.lock().await.process(fault()).is_ok());
        assert!(s.reasoner.lock().await.graph().signal("Lag", "KAFKA").is_some());
    }

    #[tokio::test]
    async fn mining_runs_with_defaults_or_given_parameters() {
        let s = setup();
        let (status, body) = call(&s.router, "POST", "/api/mining/run", None).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"predictions": []})));
        let (status, _) = call(
            &s.router,
            "POST",
            "/api/mining/run",
            Some(json!({"window": "2m", "slide": "30s", "min_support": 0.5, "min_confidence": 1})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = call(&s.router, "POST", "/api/mining/run", Some(json!({"slide": "1m"}))).await;
        assert_eq!(status, StatusCode::OK);
        let mined = s.mined.lock().unwrap().clone();
        assert_eq!(
            mined,
            [
                MiningRequest { params: MiningParams::default() },
                MiningRequest {
                    params: MiningParams {
                        window: Duration::from_secs(120),
                        slide: Duration::from_secs(30),
                        min_support: 0.5,
                        min_confidence: 1.0,
                    }
                },
                MiningRequest {
                    params: MiningParams { slide: Duration::from_secs(60), ..MiningParams::default() }
                },
            ]
        );
    }

    #[tokio::test]
    async fn mining_parameters_are_validated() {
        let s = setup();
        let cases = [
            (json!({"min_support": 0}), "invalid min_support: 0 is not in (0, 1]"),
            (json!({"min_support": 1.5}), "invalid min_support: 1.5 is not in (0, 1]"),
            (json!({"min_confidence": -0.1}), "invalid min_confidence: -0.1 is not in (0, 1]"),
            (json!({"slide": "0s"}), "invalid slide: must be at least 1ms"),
            (
                json!({"window": "1500us", "slide": "1ms"}),
                "invalid window: must be a whole number of milliseconds",
            ),
            (json!({"window": "30s", "slide": "1m"}), "invalid slide: 1m is longer than the window (30s)"),
            (
                json!({"window": "1h", "slide": "10ms"}),
                "invalid window: window / slide puts each signal into 360000 windows",
            ),
            (json!({"window": "soon"}), "invalid window: "),
            (json!({"window": 60}), "invalid JSON body: invalid type: integer `60`"),
            (json!({"minSupport": 0.2}), "invalid JSON body: unknown field `minSupport`"),
        ];
        for (body, expected) in cases {
            let (status, answer) = call(&s.router, "POST", "/api/mining/run", Some(body.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(error_of(&answer).starts_with(expected), "{body}: {answer}");
        }
        assert!(s.mined.lock().unwrap().is_empty(), "the trigger is not called for invalid parameters");
    }

    #[tokio::test]
    async fn a_failed_mining_run_answers_500() {
        let s = setup_with(None, Err("no signals recorded yet".to_string()));
        let (status, body) = call(&s.router, "POST", "/api/mining/run", None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error_of(&body), "mining run failed: no signals recorded yet");
        assert_eq!(s.mined.lock().unwrap().len(), 1);
    }
}
