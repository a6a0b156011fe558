//! The pipeline definition file (`flows/*.toml`): run-wide settings, the components with their kinds and
//! settings, faults on links from the start, and a schedule of actions.
//!
//! Every check runs and every problem is collected with its file, line and key, as Vector's config
//! validation does: a flow with five mistakes reports five lines and nothing starts. Kinds come from a
//! [`Catalog`](super::component::Catalog) (the crate's is `crate::catalog`); this module never names one.
//! Reading and checking are the other half of `impl Flow`, in `flow/read.rs`.

mod read;

pub(crate) use read::check_dns_label;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::component::{DynComponent, Hop};
use super::schedule::ScheduledAction;
use crate::config::Problem;
use crate::kernel::component::RestartPolicy;
use crate::transport::link::LinkFaults;

/// The longest time a schedule may name (ten years).
pub const MAX_RUN_TIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Sections that older flows had and that are components now.
const FORMER_SECTIONS: [(&str, &str); 3] = [
    ("bus", "a `kafka-cluster` component (with its `topics`)"),
    (
        "orders",
        "components: order-store, order-api, fraud-detector, order-updater, order-reverser, load-generator",
    ),
    ("monitoring", "components: log-router, metrics-store, reasoner"),
];

/// A parsed and checked pipeline definition.
#[derive(Clone, Debug)]
pub struct Flow {
    /// Run-wide settings.
    pub pipeline: PipelineSection,
    /// HTTP API (live mode).
    pub http: HttpSection,
    /// Components by name.
    pub components: BTreeMap<String, ComponentEntry>,
    /// Faults present from the start, by link name `FROM->TO`.
    pub links: BTreeMap<String, LinkFaults>,
    /// Actions at fixed times.
    pub schedule: Vec<ScheduledAction>,
    /// Chaos Mesh files whose objects are created when the run starts (`[[mesh]] file = "…"`).
    pub mesh: Vec<MeshFile>,
    /// Where relative paths are resolved (the flow file's directory).
    pub base_dir: Option<PathBuf>,
    /// Where the flow came from, for messages.
    pub source: String,
    /// What the checks found worth a warning.
    pub warnings: Vec<Problem>,
}

/// A Chaos Mesh file a flow applies at the start (`[[mesh]]`).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MeshFile {
    /// The file, relative to the flow's directory.
    pub file: String,
}

/// One component of a flow: its kind's config and the settings every component has.
#[derive(Clone, Debug)]
pub struct ComponentEntry {
    /// The kind's settings.
    pub config: Box<dyn DynComponent>,
    /// Restart behaviour under the supervisor.
    pub restart: RestartPolicy,
    /// Kubernetes-style namespace (default: the kind's area).
    pub namespace: String,
    /// Kubernetes-style labels (default: `app = <lower-case name>`), which every instance carries.
    pub labels: BTreeMap<String, String>,
}

impl ComponentEntry {
    /// An entry with the kind's defaults (for components added by code).
    pub fn new(name: &str, config: Box<dyn DynComponent>) -> ComponentEntry {
        ComponentEntry {
            restart: config.default_restart(),
            namespace: config.namespace().to_string(),
            labels: [("app".to_string(), name.to_lowercase())].into(),
            config,
        }
    }

    /// The kind name.
    pub fn kind(&self) -> &'static str {
        self.config.kind()
    }

    /// The config as its type, when it is one.
    pub fn get<C: 'static>(&self) -> Option<&C> {
        self.config.as_any().downcast_ref()
    }
}

/// `[pipeline]`.
#[derive(Clone, Debug, Deserialize)]
pub struct PipelineSection {
    /// Name shown in summaries.
    pub name: String,
    /// Calendar time at which sim runs start.
    #[serde(default = "default_epoch")]
    pub sim_epoch: DateTime<Utc>,
    /// Queue length of every link.
    #[serde(default = "default_capacity")]
    pub link_capacity: usize,
}

fn default_epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2020-02-21T21:00:00Z").map(|t| t.to_utc()).unwrap_or_default()
}

fn default_capacity() -> usize {
    1024
}

/// `[http]`.
#[derive(Clone, Debug, Deserialize)]
pub struct HttpSection {
    /// Listen address of the HTTP API in live mode.
    pub listen: SocketAddr,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection { listen: SocketAddr::from(([127, 0, 0, 1], 8080)) }
    }
}

impl Flow {
    /// Every supervised component name, in flow order, with the component it belongs to.
    pub fn instances(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        for (name, entry) in &self.components {
            for i in entry.config.instances(name) {
                out.push((i, name.as_str()));
            }
        }
        out
    }

    /// Every supervised component name.
    pub fn all_components(&self) -> Vec<String> {
        self.instances().into_iter().map(|(i, _)| i).collect()
    }

    /// Every link the wiring implies, as `(from, to)`, sorted.
    pub fn edges(&self) -> Vec<(String, String)> {
        let mut edges = Vec::new();
        for (name, entry) in &self.components {
            let instances = entry.config.instances(name);
            for r in entry.config.references() {
                for i in &instances {
                    let (to, from) = ((i.clone(), r.target.to_string()), (r.target.to_string(), i.clone()));
                    match r.hop {
                        Hop::None => {}
                        Hop::To => edges.push(to),
                        Hop::From => edges.push(from),
                        Hop::Both => edges.extend([to, from]),
                    }
                }
            }
        }
        edges.sort();
        edges.dedup();
        edges
    }

    /// The kind of a component or of the component an instance belongs to.
    pub fn kind_of(&self, name: &str) -> Option<&'static str> {
        if let Some(e) = self.components.get(name) {
            return Some(e.kind());
        }
        self.instances()
            .into_iter()
            .find(|(i, _)| i == name)
            .and_then(|(_, c)| self.components.get(c))
            .map(ComponentEntry::kind)
    }

    /// The components of type `C`, by name.
    pub fn each<C: 'static>(&self) -> impl Iterator<Item = (&String, &C)> {
        self.components.iter().filter_map(|(n, e)| e.get::<C>().map(|c| (n, c)))
    }

    /// Applies `edit` to every component of type `C` (how command-line options reach components).
    pub fn configure<C: 'static>(&mut self, mut edit: impl FnMut(&mut C)) -> usize {
        let mut n = 0;
        for entry in self.components.values_mut() {
            if let Some(c) = entry.config.as_any_mut().downcast_mut::<C>() {
                edit(c);
                n += 1;
            }
        }
        n
    }

    /// Removes components and, transitively, every component that needs one that is gone (a component
    /// with an optional reference lets go of it instead); returns what was removed, in order. Links and
    /// schedule entries that lose an end go too.
    pub fn without(&mut self, names: &[&str]) -> Vec<String> {
        let mut removed: Vec<String> = Vec::new();
        let mut queue: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        while let Some(name) = queue.pop() {
            if self.components.remove(&name).is_none() {
                continue;
            }
            for (other, e) in self.components.iter_mut() {
                if e.config.references().iter().any(|r| r.target == name) && !e.config.forget(&name) {
                    queue.push(other.clone());
                }
            }
            removed.push(name);
        }
        let alive: BTreeSet<String> = self.all_components().into_iter().collect();
        let edges: BTreeSet<String> = self.edges().into_iter().map(|(f, t)| format!("{f}->{t}")).collect();
        self.links.retain(|name, _| edges.contains(name));
        self.schedule.retain(|s| alive.contains(&s.target) || edges.contains(&s.target));
        removed
    }

    /// Resolves a path from the flow against its directory (absolute paths stay as they are).
    pub fn resolve(&self, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        match &self.base_dir {
            Some(base) if path.is_relative() => base.join(path),
            _ => path,
        }
    }

    /// The flow component a name belongs to (itself, or the component an instance is part of).
    pub fn owner_of(&self, name: &str) -> Option<&str> {
        if let Some((n, _)) = self.components.get_key_value(name) {
            return Some(n);
        }
        self.components
            .iter()
            .find(|(n, e)| e.config.instances(n).iter().any(|i| i == name))
            .map(|(n, _)| n.as_str())
    }

    /// The flow's components in build order: what each names first (ties by name).
    pub fn build_order(&self) -> Vec<&str> {
        self.ordered(false)
    }

    /// The flow's components in start order: what each names first (ties by name), sources last, so that
    /// nothing is generated before its consumers run.
    pub fn start_order(&self) -> Vec<&str> {
        self.ordered(true)
    }

    fn ordered(&self, sources_last: bool) -> Vec<&str> {
        let mut order: Vec<&str> = Vec::new();
        let mut placed: BTreeSet<&str> = BTreeSet::new();
        let phases: &[bool] = if sources_last { &[false, true] } else { &[false] };
        for &sources in phases {
            loop {
                let ready = self.components.iter().find(|(name, e)| {
                    (!sources_last || e.config.is_source() == sources)
                        && !placed.contains(name.as_str())
                        && e.config.references().iter().all(|r| {
                            self.owner_of(r.target).is_none_or(|t| {
                                let later_source = sources_last
                                    && !sources
                                    && self.components.get(t).is_some_and(|te| te.config.is_source());
                                t == name.as_str() || placed.contains(t) || later_source
                            })
                        })
                });
                match ready {
                    Some((name, _)) => {
                        placed.insert(name);
                        order.push(name);
                    }
                    None => break,
                }
            }
        }
        // A cycle (reported by the check) leaves the rest in name order.
        for name in self.components.keys() {
            if !placed.contains(name.as_str()) {
                order.push(name);
            }
        }
        order
    }
}
