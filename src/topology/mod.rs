//! The topology: turns a [`flow::Flow`] into running components joined by links.
//!
//! Like Vector's topology builder, this is the only place that knows how stages are wired. It creates
//! one [`Link`] per edge the flow implies, registers every stage with the [`Supervisor`] in a fixed start
//! order (stores, broker, consumers, batch jobs, sources), and owns what must outlive a component's
//! restart (links, the index store, open Flink windows, k-means results). It also prepares the output
//! directory and checks all inputs before anything runs, so a bad dataset or flow writes nothing.

pub mod flow;
pub mod monitoring;
pub mod orders;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use self::flow::{Action, ComponentConfig, Flow};
use crate::analytics::spark::{self, SparkProbe};
use crate::kernel::clock::Clock;
use crate::kernel::component::{ComponentSpec, RestartPolicy};
use crate::kernel::metrics::Metrics;
use crate::kernel::seed::Seed;
use crate::kernel::supervisor::Supervisor;
use crate::kernel::trace::{Trace, TraceLevel};
use crate::sinks::index::IndexStore;
use crate::sources::dataset::Dataset;
use crate::transforms::window_average::{WindowMetrics, WindowState};
use crate::transport::link::Link;
use crate::transport::mqtt::MqttConnector;
use crate::transport::mqtt::broker::BrokerBackend;
use crate::transport::mqtt::sim_broker::{SimBroker, SimBrokerConfig};

/// The synthetic dataset compiled into the binary (`builtin:gnfuv-synth.csv`).
pub const BUILTIN_DATASET: &str = include_str!("../../datasets/gnfuv-synth.csv");

/// The marker that tells a directory was written by chaoslab and may be reused.
const OUT_MARKER: &str = ".chaoslab-run";

/// The two ways a pipeline runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Real time, real sockets.
    Live,
    /// Virtual time, everything in-process, deterministic for the seed.
    Sim,
}

/// Where the trace goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceSink {
    /// `<out>/trace.jsonl`.
    File,
    /// Hashed and counted only (benchmarks).
    Memory,
}

/// Everything about a run that is not in the flow.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Live or sim.
    pub mode: Mode,
    /// Root seed.
    pub seed: Seed,
    /// Output directory.
    pub out: PathBuf,
    /// Replaces every sensor's dataset.
    pub dataset: Option<PathBuf>,
    /// Replaces every sensor's `rate_ms`.
    pub rate_ms: Option<u64>,
    /// Live mode: how components reach MQTT (the embedded broker's front port, or an external broker).
    pub live_mqtt: Option<LiveMqtt>,
    /// Where the trace goes.
    pub trace: TraceSink,
    /// How much goes into it.
    pub trace_level: TraceLevel,
    /// The order store (`postgres://…`, `sqlite://…`); default `<out>/orders.db`.
    pub database_url: Option<String>,
    /// Live mode: the base URL the order API is served at, for the services that call it.
    pub api_base: Option<String>,
}

/// How live components reach MQTT.
#[derive(Clone, Debug)]
pub enum LiveMqtt {
    /// Our embedded broker: rumqttd at `internal`, served to the world on `listen` (already bound).
    Embedded {
        /// rumqttd's own port.
        internal: std::net::SocketAddr,
        /// The user-facing address.
        listen: std::net::SocketAddr,
        /// The user-facing listener, bound before start-up.
        listener: Arc<std::sync::Mutex<Option<std::net::TcpListener>>>,
        /// Connection counters.
        stats: Arc<crate::transport::mqtt::embedded::ProxyStats>,
    },
    /// A broker outside the process.
    External(crate::transport::mqtt::client::BrokerUrl),
}

/// A built pipeline.
pub struct Pipeline {
    /// The definition.
    pub flow: Flow,
    /// Live or sim.
    pub mode: Mode,
    /// Root seed.
    pub seed: Seed,
    /// Run clock.
    pub clock: Clock,
    /// Event trace.
    pub trace: Trace,
    /// Prometheus registry.
    pub metrics: Metrics,
    /// Components.
    pub supervisor: Supervisor,
    /// Links by name `FROM->TO`.
    pub links: BTreeMap<String, Arc<Link>>,
    /// The document index.
    pub index: IndexStore,
    /// Output directory.
    pub out: PathBuf,
    /// How components reach MQTT.
    pub mqtt: MqttConnector,
    /// Open windows per window stage.
    pub windows: BTreeMap<String, WindowState>,
    /// k-means stages' metrics and latest results.
    pub spark: BTreeMap<String, SparkProbe>,
    /// The order services, when the flow enables them.
    pub orders: Option<orders::OrderStack>,
    /// Applies and removes faults (`fault` command, `/api/faults`, experiments).
    pub faults: crate::chaos::faults::FaultManager,
    /// Monitoring and reasoning, when the flow runs them.
    pub monitoring: Option<monitoring::MonitoringStack>,
}

fn start_rank(c: &ComponentConfig) -> u8 {
    match c {
        ComponentConfig::DocumentIndex(_) => 0,
        ComponentConfig::FileStore(_) => 1,
        ComponentConfig::MqttBroker(_) => 2,
        ComponentConfig::CountWindowAverage(_) => 3,
        ComponentConfig::MqttIngest(_) => 4,
        ComponentConfig::QualityGate(_) => 5,
        ComponentConfig::Kmeans(_) => 6,
        ComponentConfig::SensorReplay(_) => 7,
    }
}

/// Loads a sensor dataset: `builtin:gnfuv-synth.csv` or a path resolved against the flow.
pub fn load_dataset(flow: &Flow, spec: &str) -> anyhow::Result<Dataset> {
    if let Some(name) = spec.strip_prefix("builtin:") {
        if name != "gnfuv-synth.csv" {
            anyhow::bail!("unknown built-in dataset {spec:?} (there is builtin:gnfuv-synth.csv)");
        }
        return Ok(Dataset::from_reader(spec, BUILTIN_DATASET.as_bytes())?);
    }
    Ok(Dataset::load(&flow.resolve(spec))?)
}

/// Refuses, before anything is written, options this run cannot honour.
fn preflight(flow: &Flow, opts: &RunOptions) -> anyhow::Result<()> {
    if !flow.orders.enabled {
        return Ok(());
    }
    if let Some(servers) = &flow.bus.bootstrap {
        if !cfg!(feature = "kafka") {
            anyhow::bail!(
                "bus.bootstrap / --kafka-brokers {servers}: this chaoslab was built without the `kafka` feature; \
                 rebuild with `cargo build --release --features kafka` (needs cmake and libcurl headers)"
            );
        }
        if opts.mode == Mode::Sim {
            anyhow::bail!(
                "--kafka-brokers {servers}: sim mode runs on the embedded bus only (a real cluster is not in virtual time)"
            );
        }
    }
    if let Some(url) = &opts.database_url
        && opts.mode == Mode::Sim
        && !url.starts_with("sqlite")
    {
        anyhow::bail!(
            "--database-url {url}: sim mode runs on the embedded SQLite store only (a database server's own \
             threads and sockets would make the run non-deterministic)"
        );
    }
    Ok(())
}

/// Makes `out` ready for a run: creates it, or clears what an earlier chaoslab run left there. A
/// non-empty directory that chaoslab did not create is refused, never emptied.
pub fn prepare_out(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let marker = out.join(OUT_MARKER);
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .next()
            .is_none();
        if !empty && !marker.exists() {
            anyhow::bail!(
                "output directory {} is not empty and was not written by chaoslab; choose another --out",
                out.display()
            );
        }
        for entry in std::fs::read_dir(out)? {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n == OUT_MARKER) {
                continue;
            }
            let res =
                if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            res.with_context(|| format!("cannot clear {}", path.display()))?;
        }
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    std::fs::write(out.join(OUT_MARKER), "written by chaoslab; its contents are replaced by the next run\n")
        .with_context(|| format!("cannot write in {}", out.display()))?;
    Ok(())
}

impl Pipeline {
    /// Checks every input, prepares the output directory and builds all components (none started).
    /// Must be called inside the runtime that will run the pipeline.
    pub async fn build(flow: Flow, opts: RunOptions) -> anyhow::Result<Pipeline> {
        // Inputs first: nothing is written unless every dataset is good.
        let mut datasets = BTreeMap::new();
        for (name, c) in &flow.components {
            if let ComponentConfig::SensorReplay(s) = c {
                let ds = match &opts.dataset {
                    Some(path) => Dataset::load(path)?,
                    None => load_dataset(&flow, &s.dataset)?,
                };
                datasets.insert(name.clone(), Arc::new(ds));
            }
        }
        preflight(&flow, &opts)?;
        prepare_out(&opts.out)?;
        let clock = match opts.mode {
            Mode::Sim => Clock::sim(flow.pipeline.sim_epoch),
            Mode::Live => Clock::live(),
        };
        let trace = match opts.trace {
            TraceSink::File => {
                let path = opts.out.join("trace.jsonl");
                Trace::to_file(&path, clock.clone())
                    .with_context(|| format!("cannot create {}", path.display()))?
            }
            TraceSink::Memory => Trace::in_memory(clock.clone()),
        }
        .with_level(opts.trace_level);
        let metrics = Metrics::new()?;
        let supervisor = Supervisor::new(clock.clone(), trace.clone(), metrics.clone(), opts.seed);
        let index_dir = flow.components.values().find_map(|c| match c {
            ComponentConfig::DocumentIndex(i) => Some(i.dir.clone()),
            _ => None,
        });
        let index = IndexStore::new(Some(opts.out.join(index_dir.unwrap_or_else(|| "index".into()))));

        let broker_name =
            flow.components.iter().find(|(_, c)| c.kind() == "mqtt-broker").map(|(n, _)| n.clone());
        let (mqtt, backend) = match (opts.mode, &opts.live_mqtt) {
            (Mode::Sim, _) => {
                let name = broker_name.clone().unwrap_or_else(|| "MQTT_BROKER".into());
                let queue = match broker_name.as_ref().and_then(|n| flow.components.get(n)) {
                    Some(ComponentConfig::MqttBroker(b)) => b.session_queue,
                    _ => 1024,
                };
                let broker = SimBroker::new(SimBrokerConfig {
                    name,
                    queue_capacity: queue,
                    ..SimBrokerConfig::default()
                });
                (MqttConnector::Sim(broker.clone()), BrokerBackend::Sim(broker))
            }
            (Mode::Live, Some(LiveMqtt::Embedded { internal, listen, listener, stats })) => (
                MqttConnector::Live(crate::transport::mqtt::client::BrokerUrl {
                    host: listen.ip().to_string(),
                    port: listen.port(),
                }),
                BrokerBackend::Embedded {
                    internal: *internal,
                    listen: *listen,
                    prebound: listener.clone(),
                    stats: stats.clone(),
                },
            ),
            (Mode::Live, Some(LiveMqtt::External(url))) => {
                (MqttConnector::Live(url.clone()), BrokerBackend::External(url.clone()))
            }
            (Mode::Live, None) => anyhow::bail!("live mode needs an MQTT broker (embedded or --mqtt-url)"),
        };

        let mut links = BTreeMap::new();
        for (from, to) in flow.edges() {
            let link = Link::new(
                &from,
                &to,
                flow.pipeline.link_capacity,
                opts.seed,
                &metrics,
                trace.clone(),
                (supervisor.up_flag(&from), supervisor.up_flag(&to)),
            );
            links.insert(link.name().to_string(), link);
        }
        let link = |from: &str, to: &str| -> anyhow::Result<Arc<Link>> {
            links
                .get(&format!("{from}->{to}"))
                .cloned()
                .with_context(|| format!("internal: no link {from}->{to}"))
        };

        let http_faults =
            Arc::new(crate::chaos::faults::http::HttpFaults::new(opts.seed.stream("http-faults")));
        let mut pipeline = Pipeline {
            flow: flow.clone(),
            mode: opts.mode,
            seed: opts.seed,
            clock: clock.clone(),
            trace: trace.clone(),
            metrics: metrics.clone(),
            supervisor: supervisor.clone(),
            links: links.clone(),
            index: index.clone(),
            out: opts.out.clone(),
            mqtt: mqtt.clone(),
            windows: BTreeMap::new(),
            spark: BTreeMap::new(),
            orders: None,
            faults: crate::chaos::faults::FaultManager::new(
                crate::chaos::faults::FaultEnv {
                    supervisor: supervisor.clone(),
                    links: links.clone(),
                    mqtt: mqtt.clone(),
                    http: http_faults.clone(),
                    clock: clock.clone(),
                    trace: trace.clone(),
                },
                &metrics,
                opts.seed,
            )?,
            monitoring: None,
        };

        let mut order: Vec<(&String, &ComponentConfig)> = flow.components.iter().collect();
        order.sort_by_key(|(name, c)| (start_rank(c), (*name).clone()));
        for (name, c) in order {
            let restart: RestartPolicy = c.restart().clone();
            let kind = c.kind();
            let spec = match c {
                ComponentConfig::SensorReplay(cfg) => {
                    let mut cfg = cfg.clone();
                    if let Some(rate) = opts.rate_ms {
                        cfg.rate_ms = rate;
                    }
                    let ds = datasets.get(name).cloned().context("internal: dataset not loaded")?;
                    let (mqtt, out_link) = (mqtt.clone(), link(name, &cfg.broker)?);
                    ComponentSpec::new(name, kind, restart, move |ctx| {
                        crate::sources::sensor::run(
                            ctx,
                            cfg.clone(),
                            ds.clone(),
                            mqtt.clone(),
                            out_link.clone(),
                        )
                    })
                }
                ComponentConfig::MqttBroker(_) => {
                    let uptime = crate::transport::mqtt::broker::register_uptime(&metrics)?;
                    let backend = backend.clone();
                    ComponentSpec::new(name, kind, restart, move |ctx| {
                        crate::transport::mqtt::broker::run(ctx, backend.clone(), uptime.clone())
                    })
                }
                ComponentConfig::CountWindowAverage(cfg) => {
                    let cfg = cfg.clone();
                    let state = WindowState::default();
                    pipeline.windows.insert(name.clone(), state.clone());
                    let wm = WindowMetrics::register(&metrics)?;
                    let (inbound, outbound) = (link(&cfg.broker, name)?, link(name, &cfg.output)?);
                    let mqtt = mqtt.clone();
                    ComponentSpec::new(name, kind, restart, move |ctx| {
                        crate::transforms::window_average::run(
                            ctx,
                            cfg.clone(),
                            mqtt.clone(),
                            inbound.clone(),
                            outbound.clone(),
                            state.clone(),
                            wm.clone(),
                        )
                    })
                }
                ComponentConfig::MqttIngest(cfg) => {
                    let cfg = cfg.clone();
                    let (inbound, outbound) = (link(&cfg.broker, name)?, link(name, &cfg.output)?);
                    let mqtt = mqtt.clone();
                    ComponentSpec::new(name, kind, restart, move |ctx| {
                        crate::transforms::ingest::run(
                            ctx,
                            cfg.clone(),
                            mqtt.clone(),
                            inbound.clone(),
                            outbound.clone(),
                        )
                    })
                }
                ComponentConfig::FileStore(cfg) => {
                    let root = opts.out.join(&cfg.dir);
                    let inbound: Vec<Arc<Link>> =
                        links.values().filter(|l| l.to() == name).cloned().collect();
                    let inbound = match inbound.as_slice() {
                        [one] => one.clone(),
                        [] => anyhow::bail!("{}: file-store {name} has no writer", flow.source),
                        _ => anyhow::bail!("{}: file-store {name} has more than one writer", flow.source),
                    };
                    ComponentSpec::new(name, kind, restart, move |ctx| {
                        crate::sinks::file_store::run(ctx, root.clone(), inbound.clone())
                    })
                }
                ComponentConfig::QualityGate(cfg) => {
                    let cfg = cfg.clone();
                    let file = opts.out.join(&cfg.file);
                    let packets = crate::sinks::quality_gate::register_packets(&metrics, &cfg.job)?;
                    let inbound = link(&cfg.broker, name)?;
                    let mqtt = mqtt.clone();
                    ComponentSpec::new(name, kind, restart, move |ctx| {
                        crate::sinks::quality_gate::run(
                            ctx,
                            cfg.clone(),
                            file.clone(),
                            mqtt.clone(),
                            inbound.clone(),
                            packets.clone(),
                        )
                    })
                }
                ComponentConfig::Kmeans(cfg) => {
                    let cfg = cfg.clone();
                    let store = match flow.components.get(&cfg.input) {
                        Some(ComponentConfig::FileStore(fs)) => opts.out.join(&fs.dir),
                        _ => anyhow::bail!("internal: {name}.input is not a file-store"),
                    };
                    let out_dir = opts.out.join(&cfg.dir);
                    let probe = SparkProbe::register(&metrics)?;
                    pipeline.spark.insert(name.clone(), probe.clone());
                    let read = link(&cfg.input, name)?;
                    ComponentSpec::new(name, kind, restart, move |ctx| {
                        spark::run(
                            ctx,
                            cfg.clone(),
                            store.clone(),
                            out_dir.clone(),
                            read.clone(),
                            probe.clone(),
                        )
                    })
                }
                ComponentConfig::DocumentIndex(_) => {
                    let inbound: Vec<Arc<Link>> =
                        links.values().filter(|l| l.to() == name).cloned().collect();
                    let store = index.clone();
                    ComponentSpec::new(name, kind, restart, move |ctx| {
                        crate::sinks::index::run(ctx, store.clone(), inbound.clone())
                    })
                }
            };
            supervisor.add(spec)?;
        }
        pipeline.orders = orders::build(
            &flow,
            orders::Wiring {
                mode: opts.mode,
                out: &opts.out,
                database_url: opts.database_url.as_deref(),
                api_base: opts.api_base.as_deref(),
                seed: opts.seed,
                clock: &pipeline.clock,
                trace: &pipeline.trace,
                metrics: &metrics,
                supervisor: &supervisor,
                links: &links,
                http_faults: &http_faults,
            },
        )
        .await?;
        if let Some(stack) = &pipeline.orders {
            pipeline.faults.set_bus(stack.client.clone());
            let instance = match &opts.api_base {
                Some(base) => base.trim_start_matches("http://").to_string(),
                None => "chaoslab:8080".to_string(),
            };
            pipeline.monitoring = monitoring::build(
                &flow,
                monitoring::Wiring {
                    mode: opts.mode,
                    out: &opts.out,
                    database_url: opts.database_url.as_deref(),
                    metrics: &metrics,
                    supervisor: &supervisor,
                    links: &links,
                    orders: stack,
                    instance,
                    clock: &pipeline.clock,
                },
            )
            .await?;
        }
        Ok(pipeline)
    }

    /// The order services' invariants, checked against the store (none without order services).
    pub async fn order_invariants(&self) -> Option<Result<crate::orders::service::Invariants, String>> {
        let stack = self.orders.as_ref()?;
        Some(stack.orders.invariants().await.map_err(|e| e.to_string()))
    }

    /// Starts every component, applies the flow's link faults and arms its schedule.
    pub fn start(&self) {
        self.trace.emit(
            "chaoslab",
            "run.started",
            &json!({"pipeline": self.flow.pipeline.name, "mode": self.mode, "seed": self.seed.0}),
        );
        for (name, faults) in &self.flow.links {
            if let Some(l) = self.links.get(name) {
                l.set_faults(faults.clone());
            }
        }
        self.supervisor.start_all();
        let mut schedule = self.flow.schedule.clone();
        schedule.sort_by_key(|s| s.at);
        if !schedule.is_empty() {
            let (sup, links, trace, start) =
                (self.supervisor.clone(), self.links.clone(), self.trace.clone(), self.clock.start());
            tokio::spawn(async move {
                for s in schedule {
                    tokio::time::sleep_until(start + s.at).await;
                    trace.emit(
                        "chaoslab",
                        "schedule.action",
                        &json!({"action": format!("{:?}", s.action), "target": s.target}),
                    );
                    // What to put back afterwards: the faults in force before, or a start after a stop.
                    let before = links.get(&s.target).map(|l| l.faults());
                    apply_action(&sup, &links, &s.action, &s.target, s.faults.clone());
                    if let Some(d) = s.duration {
                        let undo = match s.action {
                            Action::Stop => Some((Action::Start, None)),
                            Action::LinkFaults => Some((Action::LinkFaults, before)),
                            _ => None,
                        };
                        if let Some((undo, faults)) = undo {
                            let (sup, links, target) = (sup.clone(), links.clone(), s.target.clone());
                            tokio::spawn(async move {
                                tokio::time::sleep(d).await;
                                apply_action(&sup, &links, &undo, &target, faults);
                            });
                        }
                    }
                }
            });
        }
    }

    /// Incidents the reasoner reported so far (none without monitoring).
    pub fn incidents(&self) -> Vec<crate::reasoning::component::IncidentSeen> {
        self.monitoring.as_ref().map_or_else(Vec::new, |m| {
            m.incidents.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
        })
    }

    /// Messages accepted by links and not yet received.
    pub fn in_flight(&self) -> u64 {
        self.links.values().map(|l| l.in_flight()).sum()
    }

    /// Stops the sources, lets the rest of the pipeline drain (up to `max`), takes the order services'
    /// summary while everything still runs, then stops everything in reverse start order (batch jobs run
    /// once more as they stop). Returns whether the drain completed, and the order summary.
    pub async fn finish(
        &self,
        max: Duration,
    ) -> anyhow::Result<(bool, Option<crate::runner::summary::OrdersSummary>)> {
        // Faults end with the run: a partition or a stopped stage left in place would block the drain.
        self.faults.remove_all("run ended");
        let mut sources: Vec<String> = self
            .flow
            .components
            .iter()
            .filter(|(_, c)| matches!(c, ComponentConfig::SensorReplay(_)))
            .map(|(n, _)| n.clone())
            .collect();
        if self.orders.is_some() && self.flow.orders.load.enabled {
            sources.push(flow::LOAD.to_string());
        }
        for s in &sources {
            self.supervisor.shutdown_one(s).await;
        }
        let deadline = tokio::time::Instant::now() + max;
        let mut drained = true;
        while self.in_flight() > 0 {
            if tokio::time::Instant::now() >= deadline {
                drained = false;
                tracing::warn!(
                    "{} messages still in flight after {:?}; stopping anyway",
                    self.in_flight(),
                    max
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let orders = crate::runner::summary::OrdersSummary::collect(self).await?;
        self.supervisor.shutdown().await;
        self.index.flush()?;
        self.trace.emit("chaoslab", "run.finished", &json!({"drained": drained}));
        Ok((drained, orders))
    }
}

/// Carries out one schedule action (also used to undo one).
pub fn apply_action(
    sup: &Supervisor,
    links: &BTreeMap<String, Arc<Link>>,
    action: &Action,
    target: &str,
    faults: Option<crate::transport::link::LinkFaults>,
) {
    let result = match action {
        Action::Crash => sup.crash(target, "crash scheduled by the flow").map_err(|e| e.to_string()),
        Action::Stop => sup.stop(target).map_err(|e| e.to_string()),
        Action::Start => sup.start(target).map_err(|e| e.to_string()),
        Action::Restart => sup.restart(target).map_err(|e| e.to_string()),
        Action::LinkFaults => match links.get(target) {
            Some(l) => {
                l.set_faults(faults.unwrap_or_default());
                Ok(())
            }
            None => Err(format!("no link named {target:?}")),
        },
    };
    if let Err(e) = result {
        tracing::error!("scheduled {action:?} on {target} failed: {e}");
    }
}
