//! Wiring of the monitoring and reasoning components (`FLUENTD`, `PROMETHEUS`, `REASONER`).
//!
//! The shipped configuration (Fluentd rules, Prometheus rule files, the knowledge graph) is compiled
//! in and written to `<out>/flows/` when the flow names no files of its own, so a run shows exactly
//! what it used and the Fluentd `@include`s resolve. Every file is checked before anything starts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tokio::sync::mpsc;

use super::Mode;
use super::flow::{ELASTICSEARCH, FLUENTD, Flow, KAFKA, PROMETHEUS, REASONER};
use super::orders::OrderStack;
use crate::bus::client::Acks;
use crate::kernel::component::{ComponentSpec, RestartPolicy};
use crate::kernel::logsink::LogSink;
use crate::kernel::metrics::Metrics;
use crate::kernel::supervisor::Supervisor;
use crate::monitoring::alertmanager::AlertmanagerConfig;
use crate::monitoring::logs::config::Config as FluentConfig;
use crate::monitoring::logs::event::LogEvent;
use crate::monitoring::logs::forward::ForwardStats;
use crate::monitoring::logs::http_input::HttpStats;
use crate::monitoring::logs::router::Router;
use crate::monitoring::rules::RuleSet;
use crate::monitoring::stack::{Ingestion, LogInputs, LogOutputs, MetricsState, run_fluentd, run_prometheus};
use crate::reasoning::component::{IncidentSeen, ReasonerParts};
use crate::reasoning::graph::KnowledgeGraph;
use crate::reasoning::reasoner::Reasoner;
use crate::reasoning::store::SignalStore;
use crate::transport::link::Link;

/// The shipped files, by path under `flows/`.
const BUILTIN: &[(&str, &str)] = &[
    ("logging/fluent.conf", include_str!("../../flows/logging/fluent.conf")),
    ("logging/kafka_output.conf", include_str!("../../flows/logging/kafka_output.conf")),
    ("logging/mqtt_signal_rules.conf", include_str!("../../flows/logging/mqtt_signal_rules.conf")),
    ("logging/nifi_signal_rules.conf", include_str!("../../flows/logging/nifi_signal_rules.conf")),
    ("logging/nodered_signal_rules.conf", include_str!("../../flows/logging/nodered_signal_rules.conf")),
    ("rules/mqtt.yml", include_str!("../../flows/rules/mqtt.yml")),
    ("rules/nodered.yml", include_str!("../../flows/rules/nodered.yml")),
    ("knowledge.yaml", include_str!("../../flows/knowledge.yaml")),
];

/// The running monitoring stack's shared parts.
pub struct MonitoringStack {
    /// TSDB, rules, Alertmanager.
    pub metrics: Arc<MetricsState>,
    /// The ingestion service (`POST /alerts`).
    pub ingestion: Arc<Ingestion>,
    /// The reasoner and its graph.
    pub reasoner: Arc<tokio::sync::Mutex<Reasoner>>,
    /// Where graph edits are saved.
    pub graph_path: PathBuf,
    /// The signal history.
    pub store: SignalStore,
    /// Incidents reported so far.
    pub incidents: Arc<Mutex<Vec<IncidentSeen>>>,
    /// Events from outside clients (Forward, HTTP) enter here.
    pub external_logs: mpsc::Sender<LogEvent>,
    /// Forward input counters.
    pub forward_stats: Arc<ForwardStats>,
    /// HTTP input counters.
    pub http_stats: Arc<HttpStats>,
}

/// What the wiring needs from the topology.
pub struct Wiring<'a> {
    /// Live or sim.
    pub mode: Mode,
    /// Output directory.
    pub out: &'a Path,
    /// `--database-url`.
    pub database_url: Option<&'a str>,
    /// Registry.
    pub metrics: &'a Metrics,
    /// Components are added here.
    pub supervisor: &'a Supervisor,
    /// All links.
    pub links: &'a std::collections::BTreeMap<String, Arc<Link>>,
    /// The order services (their bus carries `signals`).
    pub orders: &'a OrderStack,
    /// The `instance` label scraped series get.
    pub instance: String,
    /// Run clock.
    pub clock: &'a crate::kernel::clock::Clock,
}

/// Writes the shipped files under `<out>/flows/`; returns that directory.
fn materialize(out: &Path) -> anyhow::Result<PathBuf> {
    let root = out.join("flows");
    for (rel, text) in BUILTIN {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(root)
}

/// Builds the stack and registers its components (none started); `None` when monitoring is off.
pub async fn build(flow: &Flow, w: Wiring<'_>) -> anyhow::Result<Option<MonitoringStack>> {
    if !flow.monitoring_on() {
        return Ok(None);
    }
    let m = &flow.monitoring;
    let builtin = materialize(w.out)?;
    let resolve = |p: &Option<PathBuf>, default: &str| match p {
        Some(p) => flow.base_dir.as_ref().map_or_else(|| p.clone(), |b| b.join(p)),
        None => builtin.join(default),
    };
    let fluent = FluentConfig::load(&resolve(&m.logging, "logging/fluent.conf"))?;
    for note in &fluent.notes {
        tracing::debug!("fluentd configuration: {note}");
    }
    let router = Arc::new(Router::new(fluent));
    let rules = RuleSet::load_dir(resolve(&m.rules, "rules"))?;
    let graph = KnowledgeGraph::load(&resolve(&m.knowledge, "knowledge.yaml"))?;
    let graph_path = w.out.join("knowledge.yaml");
    let live = w.mode == Mode::Live;
    let store = match w.database_url.filter(|u| u.starts_with("postgres")) {
        Some(url) => SignalStore::open(url, live, crate::reasoning::store::DEFAULT_TABLE).await?,
        None => SignalStore::open_sqlite_file(&w.out.join("signals.db"), live).await?,
    };

    let link = |from: &str, to: &str| -> anyhow::Result<Arc<Link>> {
        w.links
            .get(&format!("{from}->{to}"))
            .cloned()
            .with_context(|| format!("internal: no link {from}->{to}"))
    };
    let client = w.orders.client.clone();
    let ingestion = Arc::new(Ingestion::new(
        Arc::new(client.producer("nest-js", Acks::All)?),
        link(PROMETHEUS, KAFKA)?,
        w.clock.clone(),
    ));
    let alertmanager = AlertmanagerConfig {
        group_wait: m.group_wait,
        group_interval: m.group_interval,
        repeat_interval: m.repeat_interval,
        ..AlertmanagerConfig::default()
    };
    let metrics_state = Arc::new(MetricsState::new(
        w.metrics.clone(),
        rules,
        alertmanager,
        &w.instance,
        m.scrape_interval,
        m.evaluation_interval,
    ));
    let (sink, internal) = LogSink::new(1 << 16);
    w.supervisor.set_log_sink(sink);
    let (external_logs, external) = mpsc::channel(1 << 14);
    let inputs = Arc::new(LogInputs {
        internal: tokio::sync::Mutex::new(internal),
        external: tokio::sync::Mutex::new(external),
    });
    let has_index = flow.components.contains_key(ELASTICSEARCH);
    let outputs = Arc::new(LogOutputs {
        producer: Arc::new(client.producer("fluentd", Acks::All)?),
        kafka: link(FLUENTD, KAFKA)?,
        index: if has_index { Some(link(FLUENTD, ELASTICSEARCH)?) } else { None },
        files: w.out.join("fluentd"),
    });
    let reasoner = Arc::new(tokio::sync::Mutex::new(Reasoner::new(graph)));
    let incidents = Arc::new(Mutex::new(Vec::new()));
    let counter = prometheus::IntCounterVec::new(
        prometheus::Opts::new("chaoslab_incidents_total", "Incident reports, by incident"),
        &["name"],
    )?;
    w.metrics.register(&counter)?;
    let parts = Arc::new(ReasonerParts {
        reasoner: reasoner.clone(),
        bus: client.clone(),
        inbound: link(KAFKA, REASONER)?,
        index: if has_index { Some(link(REASONER, ELASTICSEARCH)?) } else { None },
        store: store.clone(),
        incidents: incidents.clone(),
        counter,
    });

    let always = RestartPolicy::default();
    w.supervisor.add(ComponentSpec::new(FLUENTD, "log-router", always.clone(), move |ctx| {
        run_fluentd(ctx, router.clone(), inputs.clone(), outputs.clone())
    }))?;
    {
        let (state, ingestion) = (metrics_state.clone(), ingestion.clone());
        w.supervisor.add(ComponentSpec::new(PROMETHEUS, "metrics-store", always.clone(), move |ctx| {
            run_prometheus(ctx, state.clone(), ingestion.clone())
        }))?;
    }
    w.supervisor.add(ComponentSpec::new(REASONER, "reasoner", always, move |ctx| {
        crate::reasoning::component::run(ctx, parts.clone())
    }))?;
    Ok(Some(MonitoringStack {
        metrics: metrics_state,
        ingestion,
        reasoner,
        graph_path,
        store,
        incidents,
        external_logs,
        forward_stats: Arc::default(),
        http_stats: Arc::default(),
    }))
}
