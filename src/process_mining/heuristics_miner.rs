//! `heuristics-miner` (`HEURISTICS-MINER`, the seed's `app=heuristics-miner-flink`): the Heuristics Miner
//! with Lossy Counting as a streaming job on the bus.
//!
//! `parallelism` instances (one is named like the component, more are `<NAME>-0…`) share the consumer
//! group `group` on `topic`; the source keys events by case, so each instance sees whole cases of its
//! partitions, and their models are merged (counts summed, the graph mined again) as the seed's job merges
//! its parallel models. Every `refresh` events an instance publishes its counts to `model_topic` and to the
//! component's [`ModelBoard`], which serves `GET /api/process-model` (JSON) and
//! `GET /api/process-model.dot`, and writes `<out>/process-model.json` and `.dot` (`output`) when the
//! run stops.
//!
//! State is the job's: lost on a crash unless `checkpoint` is set. With a checkpoint interval the job saves
//! its tables and commits its offsets together, as Flink does, and a restarted instance resumes from the
//! last checkpoint; without one it commits after every batch and starts over with empty tables.
//!
//! `throughput` is the job's service rate in events per second, so that in virtual time a backlog takes
//! time to work off (0: as fast as the machine goes).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use prometheus::{IntCounter, IntGaugeVec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::event::ProcessEvent;
use super::heuristics::{DependencyGraph, Thresholds};
use super::lossy_counting::{Counts, LossyCounting, Variant};
use crate::bus::backend::{AnyProducer, BusClient};
use crate::bus::client::Acks;
use crate::bus::kafka_cluster::BusHandle;
use crate::kernel::component::Ctx;
use crate::topology::build::HttpRoutes;
use crate::topology::check::CheckCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::topology::{BuildCx, Flush};
use crate::transport::link::Link;

/// `kind = "heuristics-miner"`.
#[derive(Clone, Debug, Deserialize)]
pub struct HeuristicsMinerConfig {
    /// The `kafka-cluster`.
    pub bus: String,
    /// Topic to mine.
    #[serde(default = "input")]
    pub topic: String,
    /// Topic the models go to.
    #[serde(default = "model")]
    pub model_topic: String,
    /// Consumer group.
    #[serde(default = "group")]
    pub group: String,
    /// Instances.
    #[serde(default = "one")]
    pub parallelism: u32,
    /// The published variant.
    #[serde(default)]
    pub variant: Variant,
    /// Lossy Counting's error ε (`beamline`, `pybeamline`).
    #[serde(default = "epsilon")]
    pub epsilon: f64,
    /// Bucket size (`henrywedge`).
    #[serde(default = "bucket")]
    pub bucket: u64,
    /// Dependency threshold (default: the variant's).
    #[serde(default)]
    pub dependency: Option<f64>,
    /// Positive observations (default: the variant's).
    #[serde(default)]
    pub positive_observations: Option<u64>,
    /// Relative-to-best (default: the variant's).
    #[serde(default)]
    pub relative_to_best: Option<f64>,
    /// AND threshold (default: the variant's).
    #[serde(default)]
    pub and: Option<f64>,
    /// Events between model refreshes.
    #[serde(default = "refresh")]
    pub refresh: u64,
    /// Service rate in events per second (0: unlimited).
    #[serde(default = "throughput")]
    pub throughput: u64,
    /// Checkpoint interval (none: state is lost on a crash).
    #[serde(default, with = "humantime_serde")]
    pub checkpoint: Option<Duration>,
    /// Where the final model goes under the run's output directory (`.json` and `.dot` are added).
    #[serde(default = "output")]
    pub output: std::path::PathBuf,
}

fn output() -> std::path::PathBuf {
    "process-model".into()
}

fn input() -> String {
    "input".into()
}
fn model() -> String {
    "model".into()
}
fn group() -> String {
    "heuristics-miner".into()
}
fn one() -> u32 {
    1
}
fn epsilon() -> f64 {
    1e-4
}
fn bucket() -> u64 {
    1000
}
fn refresh() -> u64 {
    1000
}
fn throughput() -> u64 {
    50_000
}

impl HeuristicsMinerConfig {
    /// The thresholds: the variant's defaults with the flow's overrides.
    pub fn thresholds(&self) -> Thresholds {
        let d = Thresholds::defaults(self.variant);
        Thresholds {
            dependency: self.dependency.unwrap_or(d.dependency),
            positive_observations: self.positive_observations.unwrap_or(d.positive_observations),
            relative_to_best: self.relative_to_best.unwrap_or(d.relative_to_best),
            and: self.and.unwrap_or(d.and),
        }
    }
}

/// Model quality figures, as the conformance checker last computed them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Mined edges the generating model has, over mined edges.
    pub edge_precision: f64,
    /// Generating-model edges mined, over model edges.
    pub edge_recall: f64,
    /// Token-replay fitness on held-out cases (`None` before there are any).
    pub fitness: Option<f64>,
    /// Escaping-edges precision on held-out cases.
    pub precision: Option<f64>,
    /// Held-out cases the replay used.
    pub held_out: usize,
    /// Milliseconds since the run started when this was computed.
    pub at_ms: u64,
}

/// The latest counts of every instance, the merged model, and its quality.
#[derive(Clone)]
pub struct ModelBoard {
    inner: Arc<Mutex<BoardData>>,
    /// The variant the graph is mined with.
    pub variant: Variant,
    /// Its thresholds.
    pub thresholds: Thresholds,
}

#[derive(Default)]
struct BoardData {
    counts: BTreeMap<String, Counts>,
    refreshes: u64,
    quality: Option<Quality>,
}

impl ModelBoard {
    fn lock(&self) -> MutexGuard<'_, BoardData> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an instance's counts.
    pub fn publish(&self, instance: &str, counts: Counts) {
        let mut d = self.lock();
        d.counts.insert(instance.to_string(), counts);
        d.refreshes += 1;
    }

    /// The instances' counts summed.
    pub fn merged(&self) -> Counts {
        let d = self.lock();
        let mut all = Counts::default();
        for c in d.counts.values() {
            all.merge(c);
        }
        all
    }

    /// The merged model.
    pub fn model(&self) -> DependencyGraph {
        DependencyGraph::mine(&self.merged(), self.variant, &self.thresholds)
    }

    /// Sets the quality figures (the conformance checker does).
    pub fn set_quality(&self, q: Quality) {
        self.lock().quality = Some(q);
    }

    /// The latest quality figures.
    pub fn quality(&self) -> Option<Quality> {
        self.lock().quality
    }

    /// Model refreshes so far (all instances).
    pub fn refreshes(&self) -> u64 {
        self.lock().refreshes
    }

    /// The model as `GET /api/process-model` shows it.
    pub fn to_json(&self) -> Value {
        let g = self.model();
        json!({
            "activities": g.activities,
            "edges": g.edges,
            "start": g.start,
            "end": g.end,
            "and_splits": g.and_splits,
            "and_joins": g.and_joins,
            "events": g.events,
            "refreshes": self.refreshes(),
            "variant": self.variant,
            "thresholds": self.thresholds,
            "quality": self.quality(),
        })
    }
}

impl ComponentKind for HeuristicsMinerConfig {
    const KIND: &'static str = "heuristics-miner";
    const NAMESPACE: &'static str = "kafka";

    fn instances(&self, name: &str) -> Vec<String> {
        match self.parallelism {
            1 => vec![name.to_string()],
            n => (0..n).map(|i| format!("{name}-{i}")).collect(),
        }
    }

    fn references(&self) -> Vec<Reference<'_>> {
        vec![Reference::new("bus", &self.bus, &["kafka-cluster"], Hop::Both)]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.require((1..=64).contains(&self.parallelism), "parallelism", "must be between 1 and 64");
        cx.require(
            self.epsilon > 0.0 && self.epsilon < 1.0,
            "epsilon",
            format!("must be in (0, 1), got {}", self.epsilon),
        );
        cx.require(self.bucket > 0, "bucket", "must be at least 1");
        cx.require(self.refresh > 0, "refresh", "must be at least 1");
        cx.require(self.topic != self.model_topic, "model_topic", "must differ from topic");
        for (field, v) in
            [("dependency", self.dependency), ("relative_to_best", self.relative_to_best), ("and", self.and)]
        {
            if let Some(v) = v {
                cx.require(
                    v.is_finite() && (-1.0..=1.0).contains(&v),
                    field,
                    format!("must be between -1 and 1, got {v}"),
                );
            }
        }
        if self.checkpoint.is_some_and(|d| d.is_zero()) {
            cx.error("checkpoint", "must be more than 0");
        }
        cx.relative_path("output", &self.output);
        let me = cx.name().to_string();
        let clash = cx
            .flow()
            .each::<HeuristicsMinerConfig>()
            .find(|(n, m)| **n != me && m.output == self.output)
            .map(|(n, _)| n.clone());
        if let Some(other) = clash {
            cx.error(
                "output",
                format!("{other} writes {} too; give each miner its own", self.output.display()),
            );
        }
    }

    /// Provides its [`ModelBoard`], its routes and a flush writing the final model.
    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let board =
            ModelBoard { inner: Arc::default(), variant: self.variant, thresholds: self.thresholds() };
        cx.provide(name, board.clone());
        cx.provide(name, HttpRoutes(routes(board.clone())));
        let (json_path, dot_path) =
            (cx.out_path(self.output.with_extension("json")), cx.out_path(self.output.with_extension("dot")));
        let written = board.clone();
        cx.provide(
            name,
            Flush(Arc::new(move || {
                if written.refreshes() == 0 {
                    return Ok(());
                }
                let text = serde_json::to_string_pretty(&written.to_json())?;
                std::fs::write(&json_path, text)?;
                std::fs::write(&dot_path, written.model().to_dot())?;
                Ok(())
            })),
        );
        let BusHandle { client, .. } = cx.handle(&self.bus)?;
        for instance in ComponentKind::instances(self, name) {
            let m = cx.metrics(&instance);
            let metrics = MinerMetrics {
                events: m.counter("hm_events_processed_total", "Events the miner counted.")?,
                refreshes: m.counter("hm_model_refreshes_total", "Models published.")?,
                tables: m.gauge_vec(
                    "hm_table_entries",
                    "Entries in each Lossy Counting table.",
                    &["table"],
                )?,
                latency: m.float_gauge(
                    "hm_model_latency_seconds",
                    "Time from the newest event a model counts to its publication.",
                )?,
            };
            let parts = Arc::new(Instance {
                cfg: self.clone(),
                name: instance.clone(),
                bus: client.clone(),
                producer: client.producer(&instance, Acks::All)?,
                fetch: cx.link(&self.bus, &instance)?,
                publish: cx.link(&instance, &self.bus)?,
                board: board.clone(),
                metrics,
                checkpoint: Arc::default(),
            });
            cx.add(&instance, move |ctx| run(ctx, parts.clone()))?;
        }
        Ok(())
    }
}

fn routes(board: ModelBoard) -> axum::Router {
    async fn json_model(State(b): State<ModelBoard>) -> Json<Value> {
        Json(b.to_json())
    }
    async fn dot_model(State(b): State<ModelBoard>) -> Response {
        ([(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")], b.model().to_dot()).into_response()
    }
    axum::Router::new()
        .route("/api/process-model", axum::routing::get(json_model))
        .route("/api/process-model.dot", axum::routing::get(dot_model))
        .with_state(board)
}

#[derive(Clone)]
struct MinerMetrics {
    events: IntCounter,
    refreshes: IntCounter,
    tables: IntGaugeVec,
    latency: prometheus::Gauge,
}

/// A checkpoint: the tables as they were when the group's offsets were last committed.
#[derive(Clone)]
struct Checkpoint {
    tables: LossyCounting,
}

struct Instance {
    cfg: HeuristicsMinerConfig,
    name: String,
    bus: BusClient,
    producer: Arc<AnyProducer>,
    fetch: Arc<Link>,
    publish: Arc<Link>,
    board: ModelBoard,
    metrics: MinerMetrics,
    /// Survives the instance's crashes, as a Flink checkpoint does.
    checkpoint: Arc<Mutex<Option<Checkpoint>>>,
}

/// Records taken per poll.
const BATCH: usize = 500;

async fn run(ctx: Ctx, p: Arc<Instance>) -> anyhow::Result<()> {
    let mut consumer = p.bus.consumer(&p.cfg.group, &p.name, true)?;
    consumer.subscribe(&[&p.cfg.topic])?;
    let restored = p.checkpoint.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut tables = match restored {
        Some(c) => {
            ctx.trace("miner.restored", &json!({"events": c.tables.observed()}));
            c.tables
        }
        None => {
            if p.cfg.checkpoint.is_none() {
                ctx.trace("miner.started", &json!({"state": "empty (no checkpoint)"}));
            }
            LossyCounting::new(p.cfg.variant, p.cfg.epsilon, p.cfg.bucket)
        }
    };
    ctx.health.set_ready(true, "mining");
    let mut pending: BTreeMap<(String, u32), u64> = BTreeMap::new();
    let mut next_checkpoint = p.cfg.checkpoint.map(|d| tokio::time::Instant::now() + d);
    let mut newest_ms = 0i64;
    // The next fetch's request, sent while a batch is processed (a Kafka consumer fetches ahead).
    let mut prefetched = None;
    // The Kafka sink: models queue for a sender that ships what is queued as one request, so the job goes
    // on counting while models cross the link. It is aborted with the instance when the instance is killed.
    let (models, outbox) = tokio::sync::mpsc::channel::<Value>(MODEL_BUFFER);
    let mut sink = tokio::task::JoinSet::new();
    sink.spawn(send_models(p.clone(), ctx.name.clone(), outbox));
    loop {
        let crossed = match prefetched.take() {
            Some(c) => c,
            None => p.fetch.gate().await,
        };
        if let Err(e) = crossed {
            tracing::debug!(component = %ctx.name, "fetch refused: {e}");
            if ctx.sleep_or_stop(Duration::from_secs(1)).await {
                break;
            }
            continue;
        }
        let polled = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            r = tokio::time::timeout(Duration::from_millis(200), consumer.poll(BATCH)) => r,
        };
        let records = match polled {
            Err(_) => Vec::new(),
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(component = %ctx.name, "poll failed: {e}");
                if ctx.sleep_or_stop(Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
        };
        let n = records.len();
        for r in records {
            pending.insert((r.topic.clone(), r.partition), r.offset + 1);
            ctx.metrics.records_in.inc();
            match ProcessEvent::parse(&r.value) {
                Ok(e) => {
                    tables.observe(&e.case, &e.activity);
                    p.metrics.events.inc();
                    newest_ms = newest_ms.max(r.timestamp_ms);
                    if tables.observed().is_multiple_of(p.cfg.refresh) {
                        let record = refresh_model(&ctx, &p, &tables, newest_ms);
                        // Waits only when the sink's buffer is full (backpressure).
                        let _ = models.send(record).await;
                    }
                }
                Err(e) => ctx.drop_record(e.reason(), json!({"offset": r.offset, "error": e.to_string()})),
            }
        }
        match next_checkpoint {
            None => commit(&ctx, consumer.as_mut(), &mut pending),
            Some(at) if tokio::time::Instant::now() >= at => {
                *p.checkpoint.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(Checkpoint { tables: tables.clone() });
                commit(&ctx, consumer.as_mut(), &mut pending);
                ctx.trace("miner.checkpoint", &json!({"events": tables.observed()}));
                next_checkpoint = p.cfg.checkpoint.map(|d| tokio::time::Instant::now() + d);
            }
            Some(_) => {}
        }
        if n > 0 && p.cfg.throughput > 0 {
            // The job's service rate: a batch takes its share of a second; the next fetch crosses the link
            // meanwhile, so a network delay costs time only where it is longer than the processing.
            let busy = Duration::from_secs_f64(n as f64 / p.cfg.throughput as f64);
            let (crossed, stopped) = tokio::join!(p.fetch.gate(), ctx.work(busy));
            if stopped {
                break;
            }
            prefetched = Some(crossed);
        }
    }
    // A graceful stop (the end of a run) publishes what was counted since the last refresh, and flushes.
    if !tables.observed().is_multiple_of(p.cfg.refresh) {
        let _ = models.send(refresh_model(&ctx, &p, &tables, newest_ms)).await;
    }
    drop(models);
    while sink.join_next().await.is_some() {}
    consumer.close();
    Ok(())
}

fn commit(
    ctx: &Ctx,
    consumer: &mut dyn crate::bus::backend::BusConsumer,
    pending: &mut BTreeMap<(String, u32), u64>,
) {
    for ((topic, partition), next) in std::mem::take(pending) {
        if let Err(e) = consumer.commit(&topic, partition, next) {
            tracing::debug!(component = %ctx.name, "commit of {topic}-{partition} refused: {e}");
        }
    }
}

/// How many model records the sink holds before the job waits for it (its `buffer.memory`).
const MODEL_BUFFER: usize = 1024;

/// The most model records one produce request carries (its `batch.size`).
const MODEL_BATCH: usize = 256;

/// A refresh: the counts go to the board and the gauges; returns the record for the model topic.
fn refresh_model(ctx: &Ctx, p: &Instance, tables: &LossyCounting, newest_ms: i64) -> Value {
    let counts = tables.counts();
    let sizes = tables.sizes();
    for (t, n) in [("activities", sizes.activities), ("cases", sizes.cases), ("relations", sizes.relations)] {
        p.metrics.tables.with_label_values(&[t]).set(n as i64);
    }
    let now_ms = ctx.clock.now().timestamp_millis();
    p.metrics.latency.set((now_ms - newest_ms).max(0) as f64 / 1000.0);
    p.metrics.refreshes.inc();
    ctx.metrics.records_out.inc();
    let record = json!({"instance": p.name, "counts": counts, "at_ms": now_ms});
    p.board.publish(&p.name, counts);
    ctx.trace("model.refreshed", &json!({"events": tables.observed(), "relations": sizes.relations}));
    record
}

/// The sink's sender: what is queued crosses the instance's link as one produce request, then is written
/// to the model topic, as a Kafka producer batches records.
async fn send_models(p: Arc<Instance>, name: Arc<str>, mut outbox: tokio::sync::mpsc::Receiver<Value>) {
    let mut batch = Vec::with_capacity(MODEL_BATCH);
    while outbox.recv_many(&mut batch, MODEL_BATCH).await > 0 {
        if let Err(e) = p.publish.gate().await {
            tracing::debug!(component = %name, "{} models not published: {e}", batch.len());
            batch.clear();
            continue;
        }
        for record in batch.drain(..) {
            let at_ms = record["at_ms"].as_i64().unwrap_or_default();
            let key = Some(Bytes::from(p.name.clone()));
            if let Err(e) =
                p.producer.send(&p.cfg.model_topic, None, key, Bytes::from(record.to_string()), at_ms).await
            {
                tracing::debug!(component = %name, "model not published: {e}");
            }
        }
    }
}
