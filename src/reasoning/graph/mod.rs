//! The knowledge graph of the incident reasoner: chaoslab's in-memory stand-in for the reference's Neo4j
//! database (rdsea/bigdataincidentanalytics runs Neo4j 3.5.14 for it), loaded from YAML, edited at run
//! time, and holding the reasoner's state.
//!
//! # Model
//! - **DataPipeline** components (`NIFI`, `MQTT_BROKER`, …), each with an optional owner, linked by
//!   `PREDECESSOR_OF` edges in data-flow direction.
//! - **Signals**, identified by (name, component) and `SIGNALLED_BY` their component, with `threshold` and
//!   `coolDownSec` (both −1 for a signal that one occurrence activates).
//! - **CompositeSignals** with `activationThreshold` (fraction of their signals that must be active,
//!   in (0, 1], default 1.0) and `coolDownSec` (window in seconds, ≥ 1, default 60); signals are `PART_OF`
//!   them and they `INDICATE` incidents.
//! - **Incidents**, identified by name, with an optional description.
//!
//! Reasoner state lives here too, as in Neo4j: each signal's `thresholdCounter`, `lastSignalTime`,
//! `summary` and `details`, `activationTime` on `PART_OF` edges and `lastActivation` on `INDICATES` edges.
//! It is not written by [`KnowledgeGraph::to_yaml`] (a loaded graph starts clean) and
//! [`KnowledgeGraph::reset_runtime_state`] clears it.
//!
//! # YAML schema (`flows/knowledge.yaml`)
//! ```yaml
//! components:                      # DataPipeline nodes
//!   - name: MQTT_BROKER            # required, unique, 1–200 characters
//!     owner: DataProvider1         # optional
//!     predecessorOf: [NIFI, FLINK] # optional: PREDECESSOR_OF edges to other components
//! incidents:
//!   - name: Data Loading Incident  # required, unique
//!     description: free text       # optional
//! signals:
//!   - name: MqttConnectionError    # required; (name, component) unique
//!     component: NIFI              # required: a component above (SIGNALLED_BY)
//!     threshold: 10                # optional, ≥ 1, only together with coolDownSec
//!     coolDownSec: 15              # optional, ≥ 1, only together with threshold
//! compositeSignals:
//!   - name: MqttUnavailable        # required, unique
//!     activationThreshold: 1       # optional, in (0, 1], default 1.0
//!     coolDownSec: 120             # optional, ≥ 1, default 60
//!     parts:                       # PART_OF edges from signals listed above
//!       - { signal: MqttConnectionError, component: NIFI }
//!     indicates: [Data Loading Incident]  # INDICATES edges to incidents listed above
//! ```
//! All four lists are optional. Loading is strict: an unknown key, a wrong type, a duplicate node or edge,
//! a reference to a component, signal or incident that is not declared, or a value out of range fails
//! with the file, the line of the offending entry and the reason; every problem of a file is reported at once.
//!
//! # Edits
//! `create_*`, `update_*` (properties only; run-time state is kept), `delete_*`, [`KnowledgeGraph::link`]
//! and [`KnowledgeGraph::unlink`] apply the same checks as loading. Deleting a signal, CompositeSignal or
//! incident removes its edges; a component that still has signals cannot be deleted. Persist edits with
//! [`KnowledgeGraph::save`], which writes a temporary file beside the target and renames it over it.
//!
//! # Signals seen first at run time
//! The reasoner adds a signal it has not seen before, `SIGNALLED_BY` its component, as the reference's
//! `MERGE` does. If the component is not a DataPipeline node, the reference's `MATCH` finds nothing and
//! its DAO throws `IllegalStateException("Unable to find or create signal …")`, failing the Flink job.
//! Here the same case is [`GraphError::UnknownComponent`]: the reasoner logs a warning, returns the error
//! for that one signal without touching any state, and goes on with the next signal.
//!
//! [`KnowledgeGraph::view`] gives the nodes and edges for the HTTP API.

use std::fmt;
use std::path::PathBuf;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::ProblemsError;

mod edit;
mod load;
mod view;

pub use view::{EdgeView, GraphView, NodeView};

/// `activationThreshold` of a CompositeSignal that does not set one (the reference's default).
pub const DEFAULT_ACTIVATION_THRESHOLD: f64 = 1.0;
/// `coolDownSec` of a CompositeSignal that does not set one (the reference's default).
pub const DEFAULT_COMPOSITE_COOL_DOWN_SEC: i32 = 60;

/// A problem with the knowledge graph, its file, or an edit.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The YAML file is invalid: every problem found, each `file:line:key: message`.
    #[error("{0}")]
    Load(ProblemsError),
    /// The file could not be read.
    #[error("reading knowledge graph {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("writing knowledge graph {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The graph could not be turned into YAML.
    #[error("serializing knowledge graph to YAML: {0}")]
    Yaml(#[source] serde_norway::Error),
    /// No DataPipeline component of that name.
    #[error("unknown DataPipeline component {0:?}")]
    UnknownComponent(String),
    /// No signal of that name and component.
    #[error("unknown signal {name:?} of component {component:?}")]
    UnknownSignal {
        /// Signal name.
        name: String,
        /// Component.
        component: String,
    },
    /// No CompositeSignal of that name.
    #[error("unknown composite signal {0:?}")]
    UnknownComposite(String),
    /// No incident of that name.
    #[error("unknown incident {0:?}")]
    UnknownIncident(String),
    /// A node with that identity exists already.
    #[error("{kind} {name} already exists")]
    Duplicate {
        /// Node kind.
        kind: &'static str,
        /// Its identity.
        name: String,
    },
    /// The edge exists already.
    #[error("{kind} edge {from} -> {to} already exists")]
    DuplicateEdge {
        /// Edge type.
        kind: &'static str,
        /// Source node.
        from: String,
        /// Target node.
        to: String,
    },
    /// The edge to remove does not exist.
    #[error("there is no {kind} edge {from} -> {to}")]
    NoSuchEdge {
        /// Edge type.
        kind: &'static str,
        /// Source node.
        from: String,
        /// Target node.
        to: String,
    },
    /// A property or name is out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Property.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The component still has signals.
    #[error("component {component:?} still has signals ({signals}); delete them first")]
    ComponentInUse {
        /// Component.
        component: String,
        /// Its signals, comma-separated.
        signals: String,
    },
}

/// Identity of a signal node: its name and the component that signals it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalKey {
    /// Signal name.
    #[serde(rename = "signal")]
    pub name: String,
    /// DataPipeline component.
    pub component: String,
}

impl SignalKey {
    /// Key of signal `name` of `component`.
    pub fn new(name: impl Into<String>, component: impl Into<String>) -> Self {
        SignalKey { name: name.into(), component: component.into() }
    }
}

impl fmt::Display for SignalKey {
    /// `name#component`, the notation of the FP-growth items.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.name, self.component)
    }
}

/// Properties of a DataPipeline component (create or update).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GraphComponent {
    /// Name.
    pub name: String,
    /// Owning stakeholder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// Properties of a signal (create or update).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignalSpec {
    /// Name.
    pub name: String,
    /// Component that signals it.
    pub component: String,
    /// Occurrences needed, with `cool_down_sec`; none for a simple signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<i32>,
    /// Longest gap between counted occurrences, with `threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cool_down_sec: Option<i32>,
}

/// Properties of a CompositeSignal (create or update).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompositeSpec {
    /// Name.
    pub name: String,
    /// Fraction of its signals that must be active, in (0, 1]; default 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_threshold: Option<f64>,
    /// Window in seconds, ≥ 1; default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cool_down_sec: Option<i32>,
}

/// Properties of an incident (create or update).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IncidentSpec {
    /// Name.
    pub name: String,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An edge, for [`KnowledgeGraph::link`] and [`KnowledgeGraph::unlink`]. As JSON:
/// `{"type": "PART_OF", "signal": "S", "component": "C", "composite": "Cs"}` and so on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum GraphLink {
    /// Component `from` feeds component `to`.
    PredecessorOf {
        /// Upstream component.
        from: String,
        /// Downstream component.
        to: String,
    },
    /// A signal is part of a CompositeSignal.
    PartOf {
        /// Signal name.
        signal: String,
        /// The signal's component.
        component: String,
        /// CompositeSignal.
        composite: String,
    },
    /// A CompositeSignal indicates an incident.
    Indicates {
        /// CompositeSignal.
        composite: String,
        /// Incident.
        incident: String,
    },
}

/// A DataPipeline component.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentNode {
    /// Name.
    pub name: String,
    /// Owning stakeholder.
    pub owner: Option<String>,
    /// Targets of its PREDECESSOR_OF edges.
    pub predecessor_of: Vec<String>,
}

/// A signal node with its configuration and the reasoner's state.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalNode {
    /// Name.
    pub name: String,
    /// Component it is SIGNALLED_BY.
    pub component: String,
    /// Occurrences needed; −1 for a simple signal.
    pub threshold: i32,
    /// Longest gap between counted occurrences; −1 for a simple signal.
    pub cool_down_sec: i32,
    /// State: occurrences counted; −1 (null in Neo4j) when uncounted.
    pub threshold_counter: i32,
    /// State: time of the latest occurrence.
    pub last_signal_time: Option<NaiveDateTime>,
    /// State: summary of the latest occurrence.
    pub summary: Option<String>,
    /// State: details of the latest occurrence.
    pub details: Option<Map<String, Value>>,
}

impl SignalNode {
    /// This node's identity.
    pub fn key(&self) -> SignalKey {
        SignalKey::new(self.name.clone(), self.component.clone())
    }

    fn is(&self, name: &str, component: &str) -> bool {
        self.name == name && self.component == component
    }
}

/// A PART_OF edge from a signal into a CompositeSignal.
#[derive(Clone, Debug, PartialEq)]
pub struct PartOf {
    /// The signal.
    pub signal: SignalKey,
    /// State: when the signal last activated this edge; cleared when it falls out of the window.
    pub activation_time: Option<NaiveDateTime>,
}

/// An INDICATES edge from a CompositeSignal to an incident.
#[derive(Clone, Debug, PartialEq)]
pub struct Indicates {
    /// The incident.
    pub incident: String,
    /// State: when it last produced an incident report.
    pub last_activation: Option<NaiveDateTime>,
}

/// A CompositeSignal with its PART_OF (incoming) and INDICATES (outgoing) edges.
#[derive(Clone, Debug, PartialEq)]
pub struct CompositeNode {
    /// Name.
    pub name: String,
    /// Fraction of the connected signals that must be active.
    pub activation_threshold: f64,
    /// Window in seconds.
    pub cool_down_sec: i32,
    /// PART_OF edges, in creation order.
    pub parts: Vec<PartOf>,
    /// INDICATES edges, in creation order.
    pub indicates: Vec<Indicates>,
}

/// An incident node.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentNode {
    /// Name.
    pub name: String,
    /// What it means.
    pub description: Option<String>,
}

/// The knowledge graph. Node lists keep creation order, which fixes every iteration order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KnowledgeGraph {
    pub(super) components: Vec<ComponentNode>,
    pub(super) signals: Vec<SignalNode>,
    pub(super) composites: Vec<CompositeNode>,
    pub(super) incidents: Vec<IncidentNode>,
}

impl KnowledgeGraph {
    /// An empty graph.
    pub fn new() -> Self {
        KnowledgeGraph::default()
    }

    /// DataPipeline components, in creation order.
    pub fn components(&self) -> &[ComponentNode] {
        &self.components
    }

    /// Signals, in creation order.
    pub fn signals(&self) -> &[SignalNode] {
        &self.signals
    }

    /// CompositeSignals, in creation order.
    pub fn composites(&self) -> &[CompositeNode] {
        &self.composites
    }

    /// Incidents, in creation order.
    pub fn incidents(&self) -> &[IncidentNode] {
        &self.incidents
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&ComponentNode> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The signal `name` of `component`.
    pub fn signal(&self, name: &str, component: &str) -> Option<&SignalNode> {
        self.signals.iter().find(|s| s.is(name, component))
    }

    /// The CompositeSignal called `name`.
    pub fn composite(&self, name: &str) -> Option<&CompositeNode> {
        self.composites.iter().find(|c| c.name == name)
    }

    /// The incident called `name`.
    pub fn incident(&self, name: &str) -> Option<&IncidentNode> {
        self.incidents.iter().find(|i| i.name == name)
    }
}
