//! `incident-reasoner` (`REASONER`): the reference's "Incident Reasoning" Flink job as a component. It
//! provides a [`ReasonerHandle`] (the graph API, the mining trigger, the incidents of the run summary).
//!
//! It consumes `signals` (group `flink-reasoner`, from the earliest offset), parses each record, runs the
//! reasoner, records every signal in the signal history, and writes each incident report to the index
//! `iot-incident-reports` through its `REASONER->ELASTICSEARCH` link, to the log and to metrics. A record
//! it cannot parse or place (an unknown component) is counted and skipped, never fatal. Offsets are
//! committed after each record, so a restarted reasoner resumes where it stopped.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use prometheus::IntCounterVec;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::graph::KnowledgeGraph;
use super::reasoner::Reasoner;
use super::signal::{epoch_millis, format_time, parse_signal_record};
use super::store::SignalStore;
use crate::bus::backend::BusClient;
use crate::bus::kafka_cluster::BusHandle;
use crate::kernel::component::Ctx;
use crate::sinks::document_index::IndexStore;
use crate::topology::build::InputCx;
use crate::topology::check::CheckCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::topology::{BuildCx, Pipeline, RunMode};
use crate::transport::envelope::{Envelope, Qos};
use crate::transport::link::Link;

/// The shipped knowledge graph, written to `<out>/flows/knowledge.yaml` when the flow names none.
const SHIPPED_GRAPH: &str = include_str!("../../flows/knowledge.yaml");

/// `kind = "incident-reasoner"`.
#[derive(Clone, Debug, Deserialize)]
pub struct IncidentReasonerConfig {
    /// The `kafka-cluster` carrying `signals`.
    pub bus: String,
    /// The `document-index` incident reports go to, if any.
    #[serde(default)]
    pub index: Option<String>,
    /// Knowledge graph (default: the shipped `flows/knowledge.yaml`); runtime edits are saved to
    /// `<out>/knowledge.yaml`.
    #[serde(default)]
    pub knowledge: Option<PathBuf>,
    /// The signal history's SQLite file under the run's output directory.
    #[serde(default = "default_file")]
    pub file: PathBuf,
    /// The signal history in PostgreSQL instead (`postgres://…`, `--database-url`; live only).
    #[serde(default)]
    pub url: Option<String>,
}

fn default_file() -> PathBuf {
    PathBuf::from("signals.db")
}

/// What the reasoner provides.
#[derive(Clone)]
pub struct ReasonerHandle {
    /// The reasoner and its graph (shared with the graph API).
    pub reasoner: Arc<tokio::sync::Mutex<Reasoner>>,
    /// Where graph edits are saved.
    pub graph_path: PathBuf,
    /// The signal history.
    pub store: SignalStore,
    /// Incidents reported so far.
    pub incidents: Arc<Mutex<Vec<IncidentSeen>>>,
    /// The index its reports go to (mining predictions go there too).
    pub index: Option<IndexStore>,
}

impl ComponentKind for IncidentReasonerConfig {
    const KIND: &'static str = "incident-reasoner";
    const NAMESPACE: &'static str = "monitoring";

    fn external_hosts(&self) -> Vec<String> {
        let url = self.url.as_deref().filter(|u| u.starts_with("postgres"));
        url.and_then(crate::topology::component::url_host).into_iter().collect()
    }

    fn references(&self) -> Vec<Reference<'_>> {
        let mut refs = vec![Reference::new("bus", &self.bus, &["kafka-cluster"], Hop::From)];
        if let Some(index) = &self.index {
            refs.push(Reference::new("index", index, &["document-index"], Hop::To));
        }
        refs
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.relative_path("file", &self.file);
    }

    /// The index is optional: without it, nothing is indexed.
    fn forget(&mut self, target: &str) -> bool {
        if self.index.as_deref() == Some(target) {
            self.index = None;
            return true;
        }
        false
    }

    fn check_inputs(&self, _name: &str, cx: &InputCx<'_>) -> anyhow::Result<()> {
        if let Some(file) = &self.knowledge {
            KnowledgeGraph::load(&cx.flow.resolve(&file.display().to_string()))?;
        }
        if self.url.is_some() && cx.mode == RunMode::Sim {
            anyhow::bail!("--database-url: sim mode keeps the signal history in SQLite only");
        }
        Ok(())
    }

    /// Provides a [`ReasonerHandle`].
    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let file = match &self.knowledge {
            Some(f) => cx.flow.resolve(&f.display().to_string()),
            None => {
                crate::monitoring::materialize(&cx.out_path("flows"), &[("knowledge.yaml", SHIPPED_GRAPH)])?
                    .join("knowledge.yaml")
            }
        };
        let graph = KnowledgeGraph::load(&file)?;
        let live = cx.mode == RunMode::Live;
        let store = match &self.url {
            Some(url) => SignalStore::open(url, live, super::store::DEFAULT_TABLE).await?,
            None => SignalStore::open_sqlite_file(&cx.out_path(&self.file), live).await?,
        };
        let BusHandle { client, .. } = cx.handle(&self.bus)?;
        let reasoner = Arc::new(tokio::sync::Mutex::new(Reasoner::new(graph)));
        let incidents = Arc::new(Mutex::new(Vec::new()));
        let index = match &self.index {
            Some(i) => cx.try_handle::<IndexStore>(i),
            None => None,
        };
        cx.provide(
            name,
            ReasonerHandle {
                reasoner: reasoner.clone(),
                graph_path: cx.out_path("knowledge.yaml"),
                store: store.clone(),
                incidents: incidents.clone(),
                index,
            },
        );
        let counter = cx.metrics(name).counter_vec(
            "chaoslab_incidents_total",
            "Incident reports, by incident",
            &["name"],
        )?;
        let parts = Arc::new(ReasonerParts {
            reasoner,
            bus: client,
            inbound: cx.link(&self.bus, name)?,
            index: match &self.index {
                Some(i) => Some(cx.link(name, i)?),
                None => None,
            },
            store,
            incidents,
            counter,
        });
        cx.add(name, move |ctx| run(ctx, parts.clone()))
    }
}

/// Every incident the pipeline's reasoners reported so far, in the order reported.
pub fn incidents(p: &Pipeline) -> Vec<IncidentSeen> {
    let mut all = Vec::new();
    for (_, h) in p.handles.all::<ReasonerHandle>() {
        all.extend(h.incidents.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned());
    }
    all
}

/// The index incident reports go to.
pub const INCIDENT_INDEX: &str = "iot-incident-reports";
/// The reasoner's consumer group.
pub const GROUP: &str = "flink-reasoner";

/// An incident as the run saw it (for the summary and the ground truth; replay reads it from the trace).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct IncidentSeen {
    /// Incident name.
    pub name: String,
    /// The CompositeSignal that fired.
    pub composite: String,
    /// `dateTime` of the report.
    pub date_time: String,
    /// Epoch milliseconds of `dateTime`.
    pub at_ms: i64,
    /// Signals that made it fire, `name#component`.
    pub signals: Vec<String>,
    /// Components involved.
    pub components: Vec<String>,
}

/// What one incarnation works with.
pub struct ReasonerParts {
    /// The reasoner and its graph (shared with the graph API).
    pub reasoner: Arc<tokio::sync::Mutex<Reasoner>>,
    /// The bus.
    pub bus: BusClient,
    /// `KAFKA->REASONER`.
    pub inbound: Arc<Link>,
    /// `REASONER->ELASTICSEARCH`, if the flow has the index.
    pub index: Option<Arc<Link>>,
    /// The signal history.
    pub store: SignalStore,
    /// Incidents so far.
    pub incidents: Arc<Mutex<Vec<IncidentSeen>>>,
    /// `chaoslab_incidents_total{name}`.
    pub counter: IntCounterVec,
}

/// Runs one incarnation.
pub async fn run(ctx: Ctx, parts: Arc<ReasonerParts>) -> anyhow::Result<()> {
    let mut consumer = parts.bus.consumer(GROUP, "reasoner", true)?;
    consumer.subscribe(&[crate::monitoring::SIGNALS_TOPIC])?;
    ctx.health.set_ready(true, "consuming signals");
    loop {
        let polled = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            polled = async {
                parts.inbound.gate().await.map_err(|e| anyhow::anyhow!(e))?;
                consumer.poll(100).await.map_err(anyhow::Error::from)
            } => polled,
        };
        let records = match polled {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(component = %ctx.name, "poll failed: {e}");
                if ctx.sleep_or_stop(std::time::Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
        };
        for r in records {
            ctx.metrics.records_in.inc();
            handle(&ctx, &parts, &r.value).await;
            if let Err(e) = consumer.commit(&r.topic, r.partition, r.offset + 1) {
                tracing::debug!(component = %ctx.name, "commit after a rebalance refused: {e}");
            }
        }
    }
    consumer.close();
    Ok(())
}

async fn handle(ctx: &Ctx, parts: &ReasonerParts, payload: &Bytes) {
    let record: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => return ctx.drop_record("not_json", json!({"error": e.to_string()})),
    };
    let signal = match parse_signal_record(&record) {
        Ok(s) => s,
        Err(e) => return ctx.drop_record("unparsable_signal", json!({"error": e.to_string()})),
    };
    let (name, component, at) = (signal.name.clone(), signal.pipeline_component.clone(), signal.timestamp);
    let processed = parts.reasoner.lock().await.process(signal);
    let processed = match processed {
        Ok(p) => p,
        Err(e) => {
            return ctx.drop_record("unknown_component", json!({"signal": name, "error": e.to_string()}));
        }
    };
    let uuid = ctx.rng.uuid();
    if let Err(e) = parts.store.record(uuid, epoch_millis(at), &name, &component).await {
        tracing::warn!(component = %ctx.name, "signal history: {e}");
    }
    ctx.trace(
        "signal.processed",
        &json!({"name": name, "component": component, "timestamp": format_time(at),
                "thresholdCounter": processed.signal.threshold_counter, "activated": processed.signal.is_activated()}),
    );
    for report in processed.incidents {
        let doc = report.to_json();
        let seen = IncidentSeen {
            name: report.name.clone(),
            composite: report.composite_signal.name.clone(),
            date_time: format_time(report.date_time),
            at_ms: epoch_millis(report.date_time),
            signals: report
                .composite_signal
                .active_signals
                .iter()
                .map(|s| format!("{}#{}", s.name, s.pipeline_component))
                .collect(),
            components: report.participating_components.clone(),
        };
        tracing::warn!(component = %ctx.name, incident = %seen.name, "{}", report.summary);
        ctx.trace("incident.reported", &seen);
        parts.counter.with_label_values(&[&seen.name]).inc();
        parts.incidents.lock().unwrap_or_else(PoisonError::into_inner).push(seen);
        ctx.metrics.records_out.inc();
        if let Some(link) = &parts.index {
            let env = Envelope {
                topic: INCIDENT_INDEX.into(),
                payload: Bytes::from(doc.to_string()),
                qos: Qos::AtMostOnce,
                retain: false,
            };
            link.send(env).await;
        }
    }
}
