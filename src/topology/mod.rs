//! The topology: turns a [`flow::Flow`] into running components joined by links.
//!
//! Like Vector's topology builder, this is the only place that wires components, and it knows none of
//! them: it creates one [`Link`] per edge the flow's references imply, then builds each component through
//! its kind ([`component::ComponentKind`]) in start order (what a component names starts before it;
//! sources last), handing it a [`build::BuildCx`]. What components offer each other and the rest of the
//! program (a broker's connector, a store, a bus, probes for the summary) goes through
//! [`build::Handles`]. All inputs are checked before the output directory is touched, so a bad dataset or
//! flow writes nothing.

pub mod build;
pub mod check;
pub mod component;
pub mod flow;
pub mod out_dir;
pub mod schedule;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

pub use self::build::{BuildCx, Handles, RunMode};
use self::build::{BuildParts, InputCx};
use self::flow::Flow;
use crate::bus::backend::BusClient;
use crate::chaos::faults::http::HttpFaults;
use crate::chaos::faults::{FaultEnv, FaultManager};
use crate::kernel::clock::Clock;
use crate::kernel::metrics::Metrics;
use crate::kernel::seed::Seed;
use crate::kernel::supervisor::Supervisor;
use crate::kernel::trace::{Trace, TraceLevel};
use crate::transport::link::Link;
use crate::transport::mqtt::MqttConnector;

/// Where the trace goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceSink {
    /// `<out>/trace.jsonl`.
    File,
    /// Hashed and counted only (benchmarks, determinism checks).
    Memory,
}

/// Everything about a run that is not in the flow.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Live or sim.
    pub mode: RunMode,
    /// Root seed.
    pub seed: Seed,
    /// Output directory.
    pub out: PathBuf,
    /// Where the trace goes.
    pub trace: TraceSink,
    /// How much goes into it.
    pub trace_level: TraceLevel,
    /// Live mode: the base URL the HTTP API is served at, for the services that call it.
    pub api_base: Option<String>,
    /// Live mode: the bearer key the run's own services present to the order API's guarded routes.
    pub service_key: Option<String>,
}

/// A built pipeline: generic, whatever its components are.
pub struct Pipeline {
    /// The definition.
    pub flow: Flow,
    /// Live or sim.
    pub mode: RunMode,
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
    /// What components provided, by component name.
    pub handles: Handles,
    /// Output directory.
    pub out: PathBuf,
    /// The lock on it, held while the pipeline lives; [`out_dir::OutDir::finish`] marks a clean end.
    pub out_dir: out_dir::OutDir,
    /// Applies and removes faults (`fault` command, `/api/faults`, experiments).
    pub faults: FaultManager,
    /// Runs Chaos Mesh objects (`mesh` command, `/api/experiments`, the flow's `[[mesh]]` files).
    pub mesh: crate::mesh::Engine,
}

impl Pipeline {
    /// Checks every input, prepares the output directory and builds all components (none started).
    /// Must be called inside the runtime that will run the pipeline.
    pub async fn build(flow: Flow, opts: PipelineOptions) -> anyhow::Result<Pipeline> {
        // The flow may have been edited since it was read (command-line options): check it again.
        flow.validate()?;
        // Inputs first: nothing is written unless every component's inputs are good.
        let cx = InputCx { mode: opts.mode, flow: &flow };
        let mut problems = Vec::new();
        for name in flow.build_order() {
            if let Err(e) = flow.components[name].config.check_inputs(name, &cx) {
                problems.push(format!("{name}: {e:#}"));
            }
        }
        match problems.len() {
            0 => {}
            1 => anyhow::bail!("{}", problems[0]),
            n => anyhow::bail!("{n} problems:\n{}", problems.join("\n")),
        }
        let out_dir = out_dir::prepare(&opts.out)?;
        let clock = match opts.mode {
            RunMode::Sim => Clock::sim(flow.pipeline.sim_epoch),
            RunMode::Live => Clock::live(),
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

        let mut links = BTreeMap::new();
        for (from, to) in flow.edges() {
            let up = (supervisor.up_flag(&from), supervisor.up_flag(&to));
            let link =
                Link::new(&from, &to, flow.pipeline.link_capacity, opts.seed, &metrics, trace.clone(), up);
            links.insert(link.name().to_string(), link);
        }
        let http_faults = Arc::new(HttpFaults::new(opts.seed.stream("http-faults")));
        let mut handles = Handles::default();
        for name in flow.build_order() {
            let entry = &flow.components[name];
            let parts = BuildParts {
                mode: opts.mode,
                seed: opts.seed,
                clock: &clock,
                trace: &trace,
                out: &opts.out,
                flow: &flow,
                api_base: opts.api_base.as_deref(),
                service_key: opts.service_key.as_deref(),
                http_faults: &http_faults,
                metrics: &metrics,
                supervisor: &supervisor,
                links: &links,
                handles: &mut handles,
            };
            let mut cx = BuildCx::new(parts, entry.kind(), entry.restart.clone());
            entry.config.build(name, &mut cx).await.with_context(|| format!("building {name}"))?;
            // The links were made for the instances the kind lists: each must now be supervised.
            let added = supervisor.names();
            if let Some(missing) = entry.config.instances(name).into_iter().find(|i| !added.contains(i)) {
                anyhow::bail!("internal: {name} ({}) lists {missing} but did not add it", entry.kind());
            }
        }
        let start: Vec<String> =
            flow.start_order().into_iter().flat_map(|n| flow.components[n].config.instances(n)).collect();
        supervisor.set_start_order(&start);
        let env = FaultEnv {
            supervisor: supervisor.clone(),
            links: links.clone(),
            mqtt: handles
                .all::<MqttConnector>()
                .into_iter()
                .map(|(n, c)| (n.to_string(), c.clone()))
                .collect(),
            bus: handles.first::<BusClient>().cloned(),
            http: http_faults,
            clock: clock.clone(),
            trace: trace.clone(),
        };
        let faults = FaultManager::new(env, &metrics, opts.seed)?;
        let mesh =
            crate::mesh::Engine::new(clock.clone(), trace.clone(), &metrics, opts.seed, Some(&opts.out));
        Ok(Pipeline {
            flow,
            mode: opts.mode,
            seed: opts.seed,
            clock,
            trace,
            metrics,
            supervisor,
            links,
            handles,
            out: opts.out,
            out_dir,
            faults,
            mesh,
        })
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
        schedule::arm(&self.flow.schedule, &self.supervisor, &self.links, &self.trace, &self.clock);
    }

    /// Messages accepted by links and not yet received.
    pub fn in_flight(&self) -> u64 {
        self.links.values().map(|l| l.in_flight()).sum()
    }

    /// The supervised components that generate work (they stop first when a run drains).
    pub fn sources(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, e) in &self.flow.components {
            if e.config.is_source() {
                out.extend(e.config.instances(name));
            }
        }
        out
    }

    /// Removes every fault, stops the sources and lets the rest of the pipeline drain (up to `max`).
    /// Returns whether the drain completed. Everything still runs: call [`Pipeline::stop`] after taking
    /// what needs running components (the order invariants read the store).
    pub async fn drain(&self, max: Duration) -> bool {
        // Faults end with the run: a partition or a stopped stage left in place would block the drain.
        self.faults.remove_all("run ended");
        for s in self.sources() {
            self.supervisor.shutdown_one(&s).await;
        }
        let deadline = tokio::time::Instant::now() + max;
        while self.in_flight() > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    "{} messages still in flight after {:?}; stopping anyway",
                    self.in_flight(),
                    max
                );
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Stops everything in reverse start order (batch jobs run once more as they stop) and flushes.
    pub async fn stop(&self, drained: bool) -> anyhow::Result<()> {
        for (_, bus) in self.handles.all::<crate::bus::kafka_cluster::BusHandle>() {
            bus.bus.closing();
        }
        self.supervisor.shutdown().await;
        for (_, flush) in self.handles.all::<Flush>() {
            (flush.0)()?;
        }
        self.trace.emit("chaoslab", "run.finished", &json!({"drained": drained}));
        Ok(())
    }
}

/// Something a component must write out when the run stops (an index's buffered documents).
#[derive(Clone)]
pub struct Flush(pub Arc<dyn Fn() -> anyhow::Result<()> + Send + Sync>);
