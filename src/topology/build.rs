//! What building a component gets: the run's clock, trace, seed, metrics, output directory and links, a
//! way to register its instances with the supervisor, and the handle map through which components find
//! each other's state (a broker's connector, a store, a bus) and through which the summary, the API and
//! the chaos providers find theirs.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use super::flow::Flow;
use crate::chaos::faults::http::HttpFaults;
use crate::kernel::clock::Clock;
use crate::kernel::component::{ComponentSpec, Ctx, RestartPolicy};
use crate::kernel::hooks::ComponentHooks;
use crate::kernel::metrics::{MetricScope, Metrics};
use crate::kernel::seed::Seed;
use crate::kernel::supervisor::Supervisor;
use crate::kernel::trace::Trace;
use crate::transport::link::Link;

/// The two ways a pipeline runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Real time, real sockets.
    Live,
    /// Virtual time, everything in-process, deterministic for the seed.
    Sim,
}

/// Typed state components share by name: one component provides, others (and the API, the summary, the
/// chaos providers) look it up.
#[derive(Clone, Default)]
pub struct Handles {
    map: BTreeMap<String, Vec<Arc<dyn Any + Send + Sync>>>,
}

impl Handles {
    /// Adds `value` under `name`.
    pub fn provide<T: Any + Send + Sync>(&mut self, name: &str, value: T) {
        self.map.entry(name.to_string()).or_default().push(Arc::new(value));
    }

    /// The `T` that `name` provided.
    pub fn get<T: Any + Send + Sync>(&self, name: &str) -> Option<&T> {
        self.map.get(name)?.iter().find_map(|v| v.downcast_ref::<T>())
    }

    /// Every `T` provided, by name, in name order.
    pub fn all<T: Any + Send + Sync>(&self) -> Vec<(&str, &T)> {
        self.map
            .iter()
            .flat_map(|(n, vs)| vs.iter().filter_map(move |v| v.downcast_ref::<T>().map(|t| (n.as_str(), t))))
            .collect()
    }

    /// The first `T` provided (in name order), for things a flow usually has one of.
    pub fn first<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.all::<T>().into_iter().next().map(|(_, t)| t)
    }
}

/// What reading inputs gets (before the run writes anything).
pub struct InputCx<'a> {
    /// Live or sim.
    pub mode: RunMode,
    /// The flow (to resolve paths against).
    pub flow: &'a Flow,
}

/// The build context of a pipeline; each component's build borrows it.
pub struct BuildCx<'a> {
    /// Live or sim.
    pub mode: RunMode,
    /// The root seed.
    pub seed: Seed,
    /// The run's clock.
    pub clock: &'a Clock,
    /// The run's trace.
    pub trace: &'a Trace,
    /// The run's output directory.
    pub out: &'a Path,
    /// The flow.
    pub flow: &'a Flow,
    /// Live: the base URL the HTTP API is served at (services that call the order API use it).
    pub api_base: Option<&'a str>,
    /// Live: the key the run's own services present to the order API's guarded routes.
    pub service_key: Option<&'a str>,
    /// HTTP fault rules, for components serving HTTP.
    pub http_faults: &'a Arc<HttpFaults>,
    metrics: &'a Metrics,
    supervisor: &'a Supervisor,
    links: &'a BTreeMap<String, Arc<Link>>,
    handles: &'a mut Handles,
    restart: RestartPolicy,
    kind: &'static str,
}

/// The pipeline-wide parts a build context borrows.
pub struct BuildParts<'a> {
    /// Live or sim.
    pub mode: RunMode,
    /// The root seed.
    pub seed: Seed,
    /// The run's clock.
    pub clock: &'a Clock,
    /// The run's trace.
    pub trace: &'a Trace,
    /// The output directory.
    pub out: &'a Path,
    /// The flow.
    pub flow: &'a Flow,
    /// Live: the HTTP API's base URL.
    pub api_base: Option<&'a str>,
    /// Live: the run's service key.
    pub service_key: Option<&'a str>,
    /// HTTP fault rules.
    pub http_faults: &'a Arc<HttpFaults>,
    /// The registry.
    pub metrics: &'a Metrics,
    /// The supervisor.
    pub supervisor: &'a Supervisor,
    /// Every link.
    pub links: &'a BTreeMap<String, Arc<Link>>,
    /// The handle map.
    pub handles: &'a mut Handles,
}

impl<'a> BuildCx<'a> {
    /// The context for building one component of `kind` with restart policy `restart`.
    pub fn new(parts: BuildParts<'a>, kind: &'static str, restart: RestartPolicy) -> Self {
        BuildCx {
            mode: parts.mode,
            seed: parts.seed,
            clock: parts.clock,
            trace: parts.trace,
            out: parts.out,
            flow: parts.flow,
            api_base: parts.api_base,
            service_key: parts.service_key,
            http_faults: parts.http_faults,
            metrics: parts.metrics,
            supervisor: parts.supervisor,
            links: parts.links,
            handles: parts.handles,
            restart,
            kind,
        }
    }

    /// The link `from->to` (the flow's wiring implies it).
    pub fn link(&self, from: &str, to: &str) -> anyhow::Result<Arc<Link>> {
        self.links
            .get(&format!("{from}->{to}"))
            .cloned()
            .with_context(|| format!("internal: no link {from}->{to}"))
    }

    /// Every link that delivers to `to`, in name order.
    pub fn inbound(&self, to: &str) -> Vec<Arc<Link>> {
        self.links.values().filter(|l| l.to() == to).cloned().collect()
    }

    /// A path under the run's output directory.
    pub fn out_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.out.join(rel)
    }

    /// Registers metrics labelled `component="<instance>"`.
    pub fn metrics(&self, instance: &str) -> MetricScope {
        self.metrics.scope(instance)
    }

    /// The run's registry (for components that read every metric, like `PROMETHEUS`).
    pub fn registry(&self) -> &Metrics {
        self.metrics
    }

    /// The supervisor (for components that act on others, like the log router's sink).
    pub fn supervisor(&self) -> &Supervisor {
        self.supervisor
    }

    /// A component's fault hooks (clock offset, pause, I/O faults).
    pub fn hooks(&self, instance: &str) -> Arc<ComponentHooks> {
        self.supervisor.hooks(instance)
    }

    /// The flag that is true while `instance` runs.
    pub fn up_flag(&self, instance: &str) -> Arc<std::sync::atomic::AtomicBool> {
        self.supervisor.up_flag(instance)
    }

    /// Registers `instance` with this component's kind and restart policy.
    pub fn add<F, Fut>(&mut self, instance: &str, run: F) -> anyhow::Result<()>
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (kind, restart) = (self.kind, self.restart.clone());
        self.add_as(instance, kind, restart, run)
    }

    /// Registers `instance` with its own kind label and restart policy (parts of a cluster).
    pub fn add_as<F, Fut>(
        &mut self,
        instance: &str,
        kind: &str,
        restart: RestartPolicy,
        run: F,
    ) -> anyhow::Result<()>
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.supervisor.add(ComponentSpec::new(instance, kind, restart, run))
    }

    /// Offers `value` to other components, the API and the summary under `name`.
    pub fn provide<T: Any + Send + Sync>(&mut self, name: &str, value: T) {
        self.handles.provide(name, value);
    }

    /// What `name` provided as `T` (it is built first: the start order follows references).
    pub fn handle<T: Any + Send + Sync + Clone>(&self, name: &str) -> anyhow::Result<T> {
        self.handles.get::<T>(name).cloned().with_context(|| {
            format!("internal: {name} provides no {} (built in the wrong order?)", std::any::type_name::<T>())
        })
    }

    /// What `name` provided as `T`, if anything.
    pub fn try_handle<T: Any + Send + Sync + Clone>(&self, name: &str) -> Option<T> {
        self.handles.get::<T>(name).cloned()
    }
}

/// HTTP routes a component serves (the order API): the live HTTP API mounts every one; sim-mode callers
/// use them in-process.
#[derive(Clone)]
pub struct HttpRoutes(pub axum::Router);
