//! `conformance` (`CONFORMANCE`): model quality, continuously, as the seed's stack does with its
//! conformance job — reading the models from `model_topic` (the latest of each miner instance, merged) and
//! the held-out cases from `validation_topic`, and every `every`:
//!
//! - precision and recall of the mined dependency graph's edges against the generating model's causal
//!   edges (exact, cheap, deterministic);
//! - token-replay fitness and escaping-edges precision of the mined model on the last `held_out`
//!   complete held-out cases ([`super::petri`]).
//!
//! It judges each new model when it arrives, at most once every `every`.
//!
//! The figures go to gauges (`process_model_edge_precision`, `…_edge_recall`, `…_fitness`,
//! `…_precision`), the trace (`model.quality`), and the miner's board (the model API, the run summary).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::event::ProcessEvent;
use super::event_source::GeneratingModel;
use super::heuristics::{DependencyGraph, edge_quality};
use super::heuristics_miner::{ModelBoard, Quality};
use super::lossy_counting::Counts;
use super::petri::replay_quality;
use crate::bus::backend::{AnyConsumer, BusClient};
use crate::bus::kafka_cluster::BusHandle;
use crate::kernel::component::Ctx;
use crate::topology::BuildCx;
use crate::topology::check::CheckCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::transport::link::Link;

/// `kind = "conformance"`.
#[derive(Clone, Debug, Deserialize)]
pub struct ConformanceConfig {
    /// The `kafka-cluster`.
    pub bus: String,
    /// The `heuristics-miner` whose models it judges.
    pub miner: String,
    /// The `event-source` whose model is the truth.
    pub source: String,
    /// Topic of the models.
    #[serde(default = "model")]
    pub model_topic: String,
    /// Topic of the held-out cases.
    #[serde(default = "validation")]
    pub validation_topic: String,
    /// Least time between two quality computations (each new model is judged).
    #[serde(default = "one_second", with = "humantime_serde")]
    pub every: Duration,
    /// Most recent complete held-out cases replayed.
    #[serde(default = "held_out")]
    pub held_out: usize,
}

fn model() -> String {
    "model".into()
}
fn validation() -> String {
    "validation".into()
}
fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn held_out() -> usize {
    500
}

/// Open held-out cases kept at most (older ones are dropped, counted).
const MAX_OPEN: usize = 100_000;

impl ComponentKind for ConformanceConfig {
    const KIND: &'static str = "conformance";
    const NAMESPACE: &'static str = "kafka";

    fn references(&self) -> Vec<Reference<'_>> {
        vec![
            Reference::new("bus", &self.bus, &["kafka-cluster"], Hop::From),
            Reference::new("miner", &self.miner, &["heuristics-miner"], Hop::None),
            Reference::new("source", &self.source, &["event-source"], Hop::None),
        ]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.require(!self.every.is_zero(), "every", "must be more than 0");
        cx.require((1..=100_000).contains(&self.held_out), "held_out", "must be between 1 and 100 000");
    }

    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let board: ModelBoard = cx.handle(&self.miner)?;
        let truth: GeneratingModel = cx.handle(&self.source)?;
        let BusHandle { client, .. } = cx.handle(&self.bus)?;
        let m = cx.metrics(name);
        let gauges = [
            m.float_gauge(
                "process_model_edge_precision",
                "Mined edges the generating model has, over mined edges.",
            )?,
            m.float_gauge("process_model_edge_recall", "Generating-model edges mined, over model edges.")?,
            m.float_gauge("process_model_fitness", "Token-replay fitness on held-out cases.")?,
            m.float_gauge("process_model_precision", "Escaping-edges precision on held-out cases.")?,
        ];
        let parts = Arc::new(Parts {
            cfg: self.clone(),
            board,
            truth,
            bus: client,
            fetch: cx.link(&self.bus, name)?,
            gauges,
        });
        cx.add(name, move |ctx| run(ctx, parts.clone()))
    }
}

struct Parts {
    cfg: ConformanceConfig,
    board: ModelBoard,
    truth: GeneratingModel,
    bus: BusClient,
    fetch: Arc<Link>,
    gauges: [prometheus::Gauge; 4],
}

/// Takes what is there (waits briefly).
async fn drain(consumer: &mut AnyConsumer) -> Vec<crate::bus::ConsumerRecord> {
    match tokio::time::timeout(Duration::from_millis(20), consumer.poll(10_000)).await {
        Ok(Ok(r)) => r,
        _ => Vec::new(),
    }
}

async fn run(ctx: Ctx, p: Arc<Parts>) -> anyhow::Result<()> {
    let mut models = p.bus.consumer("conformance-models", &ctx.name, true)?;
    models.subscribe(&[&p.cfg.model_topic])?;
    let mut held = p.bus.consumer("conformance-validation", &ctx.name, true)?;
    held.subscribe(&[&p.cfg.validation_topic])?;
    ctx.health.set_ready(true, "checking");
    // What a restart loses is rebuilt from the topics (the model consumer reads from the committed offset;
    // the latest model of each instance arrives again at the next refresh).
    let mut latest: BTreeMap<String, Counts> = BTreeMap::new();
    let mut fresh = false;
    let mut open: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut complete: VecDeque<Vec<String>> = VecDeque::new();
    let mut next = tokio::time::Instant::now();
    loop {
        if ctx.sleep_or_stop(Duration::from_millis(250)).await {
            break;
        }
        if p.fetch.gate().await.is_err() {
            continue;
        }
        for r in drain(&mut models).await {
            ctx.metrics.records_in.inc();
            let parsed: Option<(String, Counts)> =
                serde_json::from_slice::<Value>(&r.value).ok().and_then(|v| {
                    let instance = v.get("instance")?.as_str()?.to_string();
                    let counts = serde_json::from_value(v.get("counts")?.clone()).ok()?;
                    Some((instance, counts))
                });
            match parsed {
                Some((instance, counts)) => {
                    latest.insert(instance, counts);
                    fresh = true;
                }
                None => ctx.drop_record("bad_model", json!({"offset": r.offset})),
            }
            let _ = models.commit(&r.topic, r.partition, r.offset + 1);
        }
        for r in drain(&mut held).await {
            ctx.metrics.records_in.inc();
            match ProcessEvent::parse(&r.value) {
                Ok(e) => {
                    let trace = open.entry(e.case.clone()).or_default();
                    trace.push(e.activity);
                    if e.last {
                        if let Some(t) = open.remove(&e.case) {
                            complete.push_back(t);
                            while complete.len() > p.cfg.held_out {
                                complete.pop_front();
                            }
                        }
                    } else if open.len() > MAX_OPEN
                        && let Some(oldest) = open.keys().next().cloned()
                    {
                        open.remove(&oldest);
                        ctx.drop_record("held_out_case_never_ended", json!({"case": oldest}));
                    }
                }
                Err(e) => ctx.drop_record(e.reason(), json!({"offset": r.offset, "error": e.to_string()})),
            }
            let _ = held.commit(&r.topic, r.partition, r.offset + 1);
        }
        if tokio::time::Instant::now() < next || !fresh {
            continue;
        }
        next = tokio::time::Instant::now() + p.cfg.every;
        fresh = false;
        let mut merged = Counts::default();
        for c in latest.values() {
            merged.merge(c);
        }
        let graph = DependencyGraph::mine(&merged, p.board.variant, &p.board.thresholds);
        let edges = edge_quality(&graph.edge_set(), &p.truth.edges);
        let traces: Vec<Vec<String>> = complete.iter().cloned().collect();
        let replay = replay_quality(&graph, &traces);
        let q = Quality {
            edge_precision: edges.precision,
            edge_recall: edges.recall,
            fitness: replay.map(|r| r.fitness),
            precision: replay.map(|r| r.precision),
            held_out: traces.len(),
            at_ms: ctx.clock.elapsed().as_millis() as u64,
        };
        p.gauges[0].set(q.edge_precision);
        p.gauges[1].set(q.edge_recall);
        if let (Some(f), Some(pr)) = (q.fitness, q.precision) {
            p.gauges[2].set(f);
            p.gauges[3].set(pr);
        }
        p.board.set_quality(q);
        ctx.metrics.records_out.inc();
        ctx.trace("model.quality", &q);
    }
    models.close();
    held.close();
    Ok(())
}
