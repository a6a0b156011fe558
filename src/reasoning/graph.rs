//! The knowledge graph of the incident reasoner: chaoslab's in-memory stand-in for the reference's Neo4j
//! database (seed003 §7), loaded from YAML, edited at run time, and holding the reasoner's state.
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
//! with the file, the line of the offending entry and the reason.
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
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::signal::{DEFAULT_COOL_DOWN_SEC, DEFAULT_THRESHOLD, DEFAULT_THRESHOLD_COUNTER, check_name};

/// `activationThreshold` of a CompositeSignal that does not set one (the reference's default).
pub const DEFAULT_ACTIVATION_THRESHOLD: f64 = 1.0;
/// `coolDownSec` of a CompositeSignal that does not set one (the reference's default).
pub const DEFAULT_COMPOSITE_COOL_DOWN_SEC: i32 = 60;

/// A problem with the knowledge graph, its file, or an edit.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The YAML file is invalid.
    #[error("{file}:{}: {reason}", line_text(*.line))]
    Load {
        /// File (or other origin) name.
        file: String,
        /// 1-based line of the offending entry, when known.
        line: Option<usize>,
        /// What is wrong, with the entry's path in the document.
        reason: String,
    },
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

fn line_text(line: Option<usize>) -> String {
    line.map_or_else(|| "?".to_string(), |line| line.to_string())
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
pub struct ComponentSpec {
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
pub enum Link {
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

/// The file format (see the module doc).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KnowledgeFile {
    #[serde(default)]
    components: Vec<FileComponent>,
    #[serde(default)]
    incidents: Vec<IncidentSpec>,
    #[serde(default)]
    signals: Vec<SignalSpec>,
    #[serde(default)]
    composite_signals: Vec<FileComposite>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileComponent {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    predecessor_of: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileComposite {
    name: String,
    #[serde(default)]
    activation_threshold: Option<f64>,
    #[serde(default)]
    cool_down_sec: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<SignalKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    indicates: Vec<String>,
}

/// One step of a path into the YAML document.
#[derive(Clone, Copy, Debug)]
enum Step {
    Key(&'static str),
    Index(usize),
}

impl KnowledgeGraph {
    /// An empty graph.
    pub fn new() -> Self {
        KnowledgeGraph::default()
    }

    /// Loads a graph from a YAML file.
    pub fn load(path: &Path) -> Result<Self, GraphError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| GraphError::Read { path: path.to_path_buf(), source })?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// Loads a graph from YAML text; `origin` names it in errors (usually the file name).
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self, GraphError> {
        let file: KnowledgeFile = serde_norway::from_str(text).map_err(|error| {
            let line = error.location().map(|location| location.line());
            GraphError::Load { file: origin.to_string(), line, reason: strip_location(&error) }
        })?;
        let mut graph = KnowledgeGraph::new();
        graph.apply_file(file).map_err(|(path, error)| GraphError::Load {
            file: origin.to_string(),
            line: locate(text, &path),
            reason: format!("{}: {error}", path_text(&path)),
        })?;
        Ok(graph)
    }

    fn apply_file(&mut self, file: KnowledgeFile) -> Result<(), (Vec<Step>, GraphError)> {
        use Step::{Index, Key};
        for (i, component) in file.components.iter().enumerate() {
            let spec = ComponentSpec { name: component.name.clone(), owner: component.owner.clone() };
            self.create_component(spec).map_err(|e| (vec![Key("components"), Index(i)], e))?;
        }
        for (i, component) in file.components.iter().enumerate() {
            for (j, to) in component.predecessor_of.iter().enumerate() {
                let link = Link::PredecessorOf { from: component.name.clone(), to: to.clone() };
                self.link(link)
                    .map_err(|e| (vec![Key("components"), Index(i), Key("predecessorOf"), Index(j)], e))?;
            }
        }
        for (i, incident) in file.incidents.into_iter().enumerate() {
            self.create_incident(incident).map_err(|e| (vec![Key("incidents"), Index(i)], e))?;
        }
        for (i, signal) in file.signals.into_iter().enumerate() {
            self.create_signal(signal).map_err(|e| (vec![Key("signals"), Index(i)], e))?;
        }
        for (i, composite) in file.composite_signals.into_iter().enumerate() {
            let here = |e| (vec![Key("compositeSignals"), Index(i)], e);
            let spec = CompositeSpec {
                name: composite.name.clone(),
                activation_threshold: composite.activation_threshold,
                cool_down_sec: composite.cool_down_sec,
            };
            self.create_composite(spec).map_err(here)?;
            for (j, part) in composite.parts.into_iter().enumerate() {
                let link = Link::PartOf {
                    signal: part.name,
                    component: part.component,
                    composite: composite.name.clone(),
                };
                self.link(link)
                    .map_err(|e| (vec![Key("compositeSignals"), Index(i), Key("parts"), Index(j)], e))?;
            }
            for (j, incident) in composite.indicates.into_iter().enumerate() {
                let link = Link::Indicates { composite: composite.name.clone(), incident };
                self.link(link)
                    .map_err(|e| (vec![Key("compositeSignals"), Index(i), Key("indicates"), Index(j)], e))?;
            }
        }
        Ok(())
    }

    /// The graph's configuration (no run-time state) as YAML in the schema of the module doc.
    pub fn to_yaml(&self) -> Result<String, GraphError> {
        let file = KnowledgeFile {
            components: self
                .components
                .iter()
                .map(|c| FileComponent {
                    name: c.name.clone(),
                    owner: c.owner.clone(),
                    predecessor_of: c.predecessor_of.clone(),
                })
                .collect(),
            incidents: self
                .incidents
                .iter()
                .map(|i| IncidentSpec { name: i.name.clone(), description: i.description.clone() })
                .collect(),
            signals: self
                .signals
                .iter()
                .map(|s| {
                    let counted =
                        s.threshold != DEFAULT_THRESHOLD || s.cool_down_sec != DEFAULT_COOL_DOWN_SEC;
                    SignalSpec {
                        name: s.name.clone(),
                        component: s.component.clone(),
                        threshold: counted.then_some(s.threshold),
                        cool_down_sec: counted.then_some(s.cool_down_sec),
                    }
                })
                .collect(),
            composite_signals: self
                .composites
                .iter()
                .map(|c| FileComposite {
                    name: c.name.clone(),
                    activation_threshold: Some(c.activation_threshold),
                    cool_down_sec: Some(c.cool_down_sec),
                    parts: c.parts.iter().map(|p| p.signal.clone()).collect(),
                    indicates: c.indicates.iter().map(|i| i.incident.clone()).collect(),
                })
                .collect(),
        };
        serde_norway::to_string(&file).map_err(GraphError::Yaml)
    }

    /// Writes [`to_yaml`](Self::to_yaml) to `path` through a temporary file in the same directory that is
    /// then renamed over `path`, so readers never see a half-written file.
    pub fn save(&self, path: &Path) -> Result<(), GraphError> {
        let text = self.to_yaml()?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temporary = path.with_file_name(format!(".{name}.tmp"));
        std::fs::write(&temporary, text)
            .map_err(|source| GraphError::Write { path: temporary.clone(), source })?;
        std::fs::rename(&temporary, path)
            .map_err(|source| GraphError::Write { path: path.to_path_buf(), source })
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

    /// Adds a DataPipeline component.
    pub fn create_component(&mut self, spec: ComponentSpec) -> Result<(), GraphError> {
        valid_name("component name", &spec.name)?;
        if self.component(&spec.name).is_some() {
            return Err(GraphError::Duplicate { kind: "component", name: format!("{:?}", spec.name) });
        }
        self.components.push(ComponentNode {
            name: spec.name,
            owner: spec.owner,
            predecessor_of: Vec::new(),
        });
        Ok(())
    }

    /// Changes a component's owner.
    pub fn update_component(&mut self, spec: ComponentSpec) -> Result<(), GraphError> {
        let node = self
            .components
            .iter_mut()
            .find(|c| c.name == spec.name)
            .ok_or_else(|| GraphError::UnknownComponent(spec.name.clone()))?;
        node.owner = spec.owner;
        Ok(())
    }

    /// Removes a component and its PREDECESSOR_OF edges; refused while signals belong to it.
    pub fn delete_component(&mut self, name: &str) -> Result<(), GraphError> {
        let index = self
            .components
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| GraphError::UnknownComponent(name.to_string()))?;
        let signals: Vec<&str> =
            self.signals.iter().filter(|s| s.component == name).map(|s| s.name.as_str()).collect();
        if !signals.is_empty() {
            return Err(GraphError::ComponentInUse {
                component: name.to_string(),
                signals: signals.join(", "),
            });
        }
        self.components.remove(index);
        for component in &mut self.components {
            component.predecessor_of.retain(|to| to != name);
        }
        Ok(())
    }

    /// Adds a signal of a known component.
    pub fn create_signal(&mut self, spec: SignalSpec) -> Result<(), GraphError> {
        valid_name("signal name", &spec.name)?;
        valid_name("component name", &spec.component)?;
        let (threshold, cool_down_sec) = signal_counting(&spec)?;
        if self.component(&spec.component).is_none() {
            return Err(GraphError::UnknownComponent(spec.component));
        }
        if self.signal(&spec.name, &spec.component).is_some() {
            let name = format!("{:?} of component {:?}", spec.name, spec.component);
            return Err(GraphError::Duplicate { kind: "signal", name });
        }
        self.signals.push(SignalNode {
            name: spec.name,
            component: spec.component,
            threshold,
            cool_down_sec,
            threshold_counter: DEFAULT_THRESHOLD_COUNTER,
            last_signal_time: None,
            summary: None,
            details: None,
        });
        Ok(())
    }

    /// Changes a signal's threshold and cool-down (omitted = simple signal); its counter is kept.
    pub fn update_signal(&mut self, spec: SignalSpec) -> Result<(), GraphError> {
        let (threshold, cool_down_sec) = signal_counting(&spec)?;
        let node = self.signal_mut(&spec.name, &spec.component)?;
        node.threshold = threshold;
        node.cool_down_sec = cool_down_sec;
        Ok(())
    }

    /// Removes a signal and its PART_OF edges.
    pub fn delete_signal(&mut self, key: &SignalKey) -> Result<(), GraphError> {
        let index = self
            .signals
            .iter()
            .position(|s| s.is(&key.name, &key.component))
            .ok_or_else(|| unknown_signal(&key.name, &key.component))?;
        self.signals.remove(index);
        for composite in &mut self.composites {
            composite.parts.retain(|part| &part.signal != key);
        }
        Ok(())
    }

    /// Adds a CompositeSignal (no edges yet).
    pub fn create_composite(&mut self, spec: CompositeSpec) -> Result<(), GraphError> {
        valid_name("composite signal name", &spec.name)?;
        let (activation_threshold, cool_down_sec) = composite_props(&spec)?;
        if self.composite(&spec.name).is_some() {
            return Err(GraphError::Duplicate { kind: "composite signal", name: format!("{:?}", spec.name) });
        }
        self.composites.push(CompositeNode {
            name: spec.name,
            activation_threshold,
            cool_down_sec,
            parts: Vec::new(),
            indicates: Vec::new(),
        });
        Ok(())
    }

    /// Changes a CompositeSignal's activation threshold and cool-down (omitted = defaults).
    pub fn update_composite(&mut self, spec: CompositeSpec) -> Result<(), GraphError> {
        let (activation_threshold, cool_down_sec) = composite_props(&spec)?;
        let node = self.composite_mut(&spec.name)?;
        node.activation_threshold = activation_threshold;
        node.cool_down_sec = cool_down_sec;
        Ok(())
    }

    /// Removes a CompositeSignal with its PART_OF and INDICATES edges.
    pub fn delete_composite(&mut self, name: &str) -> Result<(), GraphError> {
        let index = self
            .composites
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| GraphError::UnknownComposite(name.to_string()))?;
        self.composites.remove(index);
        Ok(())
    }

    /// Adds an incident.
    pub fn create_incident(&mut self, spec: IncidentSpec) -> Result<(), GraphError> {
        valid_name("incident name", &spec.name)?;
        if self.incident(&spec.name).is_some() {
            return Err(GraphError::Duplicate { kind: "incident", name: format!("{:?}", spec.name) });
        }
        self.incidents.push(IncidentNode { name: spec.name, description: spec.description });
        Ok(())
    }

    /// Changes an incident's description.
    pub fn update_incident(&mut self, spec: IncidentSpec) -> Result<(), GraphError> {
        let node = self
            .incidents
            .iter_mut()
            .find(|i| i.name == spec.name)
            .ok_or_else(|| GraphError::UnknownIncident(spec.name.clone()))?;
        node.description = spec.description;
        Ok(())
    }

    /// Removes an incident and the INDICATES edges into it.
    pub fn delete_incident(&mut self, name: &str) -> Result<(), GraphError> {
        let index = self
            .incidents
            .iter()
            .position(|i| i.name == name)
            .ok_or_else(|| GraphError::UnknownIncident(name.to_string()))?;
        self.incidents.remove(index);
        for composite in &mut self.composites {
            composite.indicates.retain(|edge| edge.incident != name);
        }
        Ok(())
    }

    /// Adds an edge between existing nodes; duplicates and self-loops are refused.
    pub fn link(&mut self, link: Link) -> Result<(), GraphError> {
        match link {
            Link::PredecessorOf { from, to } => {
                if self.component(&to).is_none() {
                    return Err(GraphError::UnknownComponent(to));
                }
                if from == to {
                    return Err(GraphError::Invalid {
                        field: "PREDECESSOR_OF",
                        reason: format!("component {from:?} cannot precede itself"),
                    });
                }
                let node = self
                    .components
                    .iter_mut()
                    .find(|c| c.name == from)
                    .ok_or_else(|| GraphError::UnknownComponent(from.clone()))?;
                if node.predecessor_of.contains(&to) {
                    return Err(duplicate_edge("PREDECESSOR_OF", &from, &to));
                }
                node.predecessor_of.push(to);
            }
            Link::PartOf { signal, component, composite } => {
                if self.signal(&signal, &component).is_none() {
                    return Err(unknown_signal(&signal, &component));
                }
                let key = SignalKey::new(signal, component);
                let node = self.composite_mut(&composite)?;
                if node.parts.iter().any(|part| part.signal == key) {
                    return Err(duplicate_edge("PART_OF", &key.to_string(), &composite));
                }
                node.parts.push(PartOf { signal: key, activation_time: None });
            }
            Link::Indicates { composite, incident } => {
                if self.incident(&incident).is_none() {
                    return Err(GraphError::UnknownIncident(incident));
                }
                let node = self.composite_mut(&composite)?;
                if node.indicates.iter().any(|edge| edge.incident == incident) {
                    return Err(duplicate_edge("INDICATES", &composite, &incident));
                }
                node.indicates.push(Indicates { incident, last_activation: None });
            }
        }
        Ok(())
    }

    /// Removes an edge.
    pub fn unlink(&mut self, link: &Link) -> Result<(), GraphError> {
        let (kind, from, to, removed) = match link {
            Link::PredecessorOf { from, to } => {
                let node = self
                    .components
                    .iter_mut()
                    .find(|c| &c.name == from)
                    .ok_or_else(|| GraphError::UnknownComponent(from.clone()))?;
                let before = node.predecessor_of.len();
                node.predecessor_of.retain(|t| t != to);
                ("PREDECESSOR_OF", from.clone(), to.clone(), node.predecessor_of.len() < before)
            }
            Link::PartOf { signal, component, composite } => {
                let node = self.composite_mut(composite)?;
                let before = node.parts.len();
                node.parts
                    .retain(|part| !(part.signal.name == *signal && part.signal.component == *component));
                let from = SignalKey::new(signal.clone(), component.clone()).to_string();
                ("PART_OF", from, composite.clone(), node.parts.len() < before)
            }
            Link::Indicates { composite, incident } => {
                let node = self.composite_mut(composite)?;
                let before = node.indicates.len();
                node.indicates.retain(|edge| &edge.incident != incident);
                ("INDICATES", composite.clone(), incident.clone(), node.indicates.len() < before)
            }
        };
        if removed { Ok(()) } else { Err(GraphError::NoSuchEdge { kind, from, to }) }
    }

    /// Clears all reasoner state: counters, last times, summaries, details, activation times.
    pub fn reset_runtime_state(&mut self) {
        for signal in &mut self.signals {
            signal.threshold_counter = DEFAULT_THRESHOLD_COUNTER;
            signal.last_signal_time = None;
            signal.summary = None;
            signal.details = None;
        }
        for composite in &mut self.composites {
            composite.parts.iter_mut().for_each(|part| part.activation_time = None);
            composite.indicates.iter_mut().for_each(|edge| edge.last_activation = None);
        }
    }

    /// The index of signal (`name`, `component`), added as a simple signal on first sight. Fails, without
    /// changing anything, if the names are invalid or the component is not a DataPipeline node.
    pub(super) fn find_signal_or_create(&mut self, name: &str, component: &str) -> Result<usize, GraphError> {
        if let Some(index) = self.signals.iter().position(|s| s.is(name, component)) {
            return Ok(index);
        }
        self.create_signal(SignalSpec {
            name: name.to_string(),
            component: component.to_string(),
            threshold: None,
            cool_down_sec: None,
        })?;
        Ok(self.signals.len() - 1)
    }

    fn signal_mut(&mut self, name: &str, component: &str) -> Result<&mut SignalNode, GraphError> {
        self.signals.iter_mut().find(|s| s.is(name, component)).ok_or_else(|| unknown_signal(name, component))
    }

    fn composite_mut(&mut self, name: &str) -> Result<&mut CompositeNode, GraphError> {
        self.composites
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| GraphError::UnknownComposite(name.to_string()))
    }

    /// Nodes and edges for the HTTP API.
    pub fn view(&self) -> GraphView {
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        for component in &self.components {
            nodes.push(NodeView::DataPipeline {
                id: component_id(&component.name),
                name: component.name.clone(),
                owner: component.owner.clone(),
            });
            for to in &component.predecessor_of {
                edges.push(EdgeView::plain(
                    "PREDECESSOR_OF",
                    component_id(&component.name),
                    component_id(to),
                ));
            }
        }
        for signal in &self.signals {
            let id = signal_id(&signal.key());
            nodes.push(NodeView::Signal {
                id: id.clone(),
                name: signal.name.clone(),
                component: signal.component.clone(),
                threshold: signal.threshold,
                cool_down_sec: signal.cool_down_sec,
                threshold_counter: (signal.threshold_counter != DEFAULT_THRESHOLD_COUNTER)
                    .then_some(signal.threshold_counter),
                last_signal_time: signal.last_signal_time,
                summary: signal.summary.clone(),
            });
            edges.push(EdgeView::plain("SIGNALLED_BY", id, component_id(&signal.component)));
        }
        for incident in &self.incidents {
            nodes.push(NodeView::Incident {
                id: incident_id(&incident.name),
                name: incident.name.clone(),
                description: incident.description.clone(),
            });
        }
        for composite in &self.composites {
            let id = composite_id(&composite.name);
            nodes.push(NodeView::CompositeSignal {
                id: id.clone(),
                name: composite.name.clone(),
                activation_threshold: composite.activation_threshold,
                cool_down_sec: composite.cool_down_sec,
            });
            for part in &composite.parts {
                let mut edge = EdgeView::plain("PART_OF", signal_id(&part.signal), id.clone());
                edge.activation_time = part.activation_time;
                edges.push(edge);
            }
            for indicates in &composite.indicates {
                let mut edge = EdgeView::plain("INDICATES", id.clone(), incident_id(&indicates.incident));
                edge.last_activation = indicates.last_activation;
                edges.push(edge);
            }
        }
        GraphView { nodes, edges }
    }
}

/// The graph as the HTTP API serves it: `{"nodes": [...], "edges": [...]}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphView {
    /// All nodes; each has `label`, `id` (`<label kind>:<identity>`) and its properties.
    pub nodes: Vec<NodeView>,
    /// All edges; each has `type`, `from`, `to` and its state properties when set.
    pub edges: Vec<EdgeView>,
}

/// A node of [`GraphView`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "label")]
pub enum NodeView {
    /// A component.
    DataPipeline {
        /// `component:<name>`.
        id: String,
        /// Name.
        name: String,
        /// Owner.
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
    },
    /// A signal.
    #[serde(rename_all = "camelCase")]
    Signal {
        /// `signal:<name>#<component>`.
        id: String,
        /// Name.
        name: String,
        /// Component.
        component: String,
        /// Threshold (−1: simple).
        threshold: i32,
        /// Cool-down (−1: simple).
        cool_down_sec: i32,
        /// Counter, when counted.
        #[serde(skip_serializing_if = "Option::is_none")]
        threshold_counter: Option<i32>,
        /// Latest occurrence.
        #[serde(
            serialize_with = "super::signal::serialize_opt_time",
            skip_serializing_if = "Option::is_none"
        )]
        last_signal_time: Option<NaiveDateTime>,
        /// Latest summary.
        #[serde(skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    },
    /// A CompositeSignal.
    #[serde(rename_all = "camelCase")]
    CompositeSignal {
        /// `composite:<name>`.
        id: String,
        /// Name.
        name: String,
        /// Activation threshold.
        activation_threshold: f64,
        /// Window in seconds.
        cool_down_sec: i32,
    },
    /// An incident.
    Incident {
        /// `incident:<name>`.
        id: String,
        /// Name.
        name: String,
        /// Description.
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

/// An edge of [`GraphView`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeView {
    /// `PREDECESSOR_OF`, `SIGNALLED_BY`, `PART_OF` or `INDICATES`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Source node id.
    pub from: String,
    /// Target node id.
    pub to: String,
    /// PART_OF state.
    #[serde(serialize_with = "super::signal::serialize_opt_time", skip_serializing_if = "Option::is_none")]
    pub activation_time: Option<NaiveDateTime>,
    /// INDICATES state.
    #[serde(serialize_with = "super::signal::serialize_opt_time", skip_serializing_if = "Option::is_none")]
    pub last_activation: Option<NaiveDateTime>,
}

impl EdgeView {
    fn plain(kind: &'static str, from: String, to: String) -> Self {
        EdgeView { kind, from, to, activation_time: None, last_activation: None }
    }
}

fn component_id(name: &str) -> String {
    format!("component:{name}")
}

fn signal_id(key: &SignalKey) -> String {
    format!("signal:{key}")
}

fn composite_id(name: &str) -> String {
    format!("composite:{name}")
}

fn incident_id(name: &str) -> String {
    format!("incident:{name}")
}

fn unknown_signal(name: &str, component: &str) -> GraphError {
    GraphError::UnknownSignal { name: name.to_string(), component: component.to_string() }
}

fn duplicate_edge(kind: &'static str, from: &str, to: &str) -> GraphError {
    GraphError::DuplicateEdge { kind, from: format!("{from:?}"), to: format!("{to:?}") }
}

fn valid_name(field: &'static str, name: &str) -> Result<(), GraphError> {
    check_name(name).map_err(|reason| GraphError::Invalid { field, reason })
}

/// `(threshold, coolDownSec)` of a signal spec: both ≥ 1, or both absent (−1, −1).
fn signal_counting(spec: &SignalSpec) -> Result<(i32, i32), GraphError> {
    match (spec.threshold, spec.cool_down_sec) {
        (None, None) => Ok((DEFAULT_THRESHOLD, DEFAULT_COOL_DOWN_SEC)),
        (Some(threshold), Some(cool_down)) => {
            if threshold < 1 {
                return Err(GraphError::Invalid {
                    field: "threshold",
                    reason: format!("{threshold} is below 1"),
                });
            }
            if cool_down < 1 {
                return Err(GraphError::Invalid {
                    field: "coolDownSec",
                    reason: format!("{cool_down} is below 1"),
                });
            }
            Ok((threshold, cool_down))
        }
        (Some(_), None) | (None, Some(_)) => Err(GraphError::Invalid {
            field: "threshold/coolDownSec",
            reason: "a counted signal needs both threshold and coolDownSec".to_string(),
        }),
    }
}

/// `(activationThreshold, coolDownSec)` of a CompositeSignal spec, defaults applied and ranges checked.
fn composite_props(spec: &CompositeSpec) -> Result<(f64, i32), GraphError> {
    let threshold = spec.activation_threshold.unwrap_or(DEFAULT_ACTIVATION_THRESHOLD);
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(GraphError::Invalid {
            field: "activationThreshold",
            reason: format!("{threshold} is not in (0, 1]"),
        });
    }
    let cool_down = spec.cool_down_sec.unwrap_or(DEFAULT_COMPOSITE_COOL_DOWN_SEC);
    if cool_down < 1 {
        return Err(GraphError::Invalid { field: "coolDownSec", reason: format!("{cool_down} is below 1") });
    }
    Ok((threshold, cool_down))
}

/// A YAML error's message without the " at line L column C" that [`GraphError::Load`] shows itself.
fn strip_location(error: &serde_norway::Error) -> String {
    let text = error.to_string();
    match error.location() {
        Some(location) => {
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            text.strip_suffix(&suffix).map_or_else(|| text.clone(), str::to_string)
        }
        None => text,
    }
}

fn path_text(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

/// Marker message of the error [`Locate`] raises at the node it looks for.
const FOUND: &str = "__knowledge_graph_locate_marker__";

/// Finds the 1-based line of the node at `path` by walking the document again and stopping there with an
/// error, to which the YAML deserializer attaches the node's position.
fn locate(text: &str, path: &[Step]) -> Option<usize> {
    let error = Locate { path }.deserialize(serde_norway::Deserializer::from_str(text)).err()?;
    // The deserializer prefixes the message with the node's path, so look for the marker inside it.
    if error.to_string().contains(FOUND) { error.location().map(|location| location.line()) } else { None }
}

/// Walks a YAML document along a path (see [`locate`]).
struct Locate<'p> {
    path: &'p [Step],
}

impl<'de> DeserializeSeed<'de> for Locate<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Locate<'_> {
    fn leaf<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() { Err(E::custom(FOUND)) } else { Ok(()) }
    }
}

impl<'de> Visitor<'de> for Locate<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any YAML node")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Step::Index(wanted), rest)) = self.path.split_first() else {
            return self.leaf();
        };
        let mut index = 0;
        while index < *wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            index += 1;
        }
        seq.next_element_seed(Locate { path: rest }).map(|_| ())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Step::Key(wanted), rest)) = self.path.split_first() else {
            return self.leaf();
        };
        while let Some(key) = map.next_key::<serde_norway::Value>()? {
            if key.as_str() == Some(*wanted) {
                return map.next_value_seed(Locate { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWLEDGE: &str = include_str!("../../flows/knowledge.yaml");

    fn demo() -> KnowledgeGraph {
        KnowledgeGraph::from_yaml_str(KNOWLEDGE, "flows/knowledge.yaml").unwrap()
    }

    fn load_error(text: &str) -> (Option<usize>, String) {
        match KnowledgeGraph::from_yaml_str(text, "k.yaml") {
            Err(GraphError::Load { file, line, reason }) => {
                assert_eq!(file, "k.yaml");
                (line, reason)
            }
            other => panic!("expected a load error, got {other:?}"),
        }
    }

    #[test]
    fn loads_the_demo_graph() {
        let graph = demo();
        let names: Vec<&str> = graph.components().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["SENSOR", "MQTT_BROKER", "NIFI", "FLINK", "NODE-RED", "HADOOP", "SPARK", "ELASTICSEARCH"]
        );
        assert_eq!(graph.component("MQTT_BROKER").unwrap().predecessor_of, ["NIFI", "FLINK", "NODE-RED"]);
        assert_eq!(graph.component("NIFI").unwrap().owner.as_deref(), Some("ServiceProvider1"));
        let nifi = graph.signal("MqttConnectionError", "NIFI").unwrap();
        assert_eq!((nifi.threshold, nifi.cool_down_sec), (10, 15));
        let alert = graph.signal("MqttInstanceDownAlert", "MQTT_BROKER").unwrap();
        assert_eq!((alert.threshold, alert.cool_down_sec, alert.threshold_counter), (-1, -1, -1));
        let composite = graph.composite("MqttUnavailable").unwrap();
        assert_eq!(composite.activation_threshold, 1.0);
        assert_eq!(composite.cool_down_sec, 120);
        assert_eq!(composite.parts.len(), 4);
        assert_eq!(composite.indicates[0].incident, "Data Loading Incident");
    }

    #[test]
    fn yaml_round_trip_keeps_the_configuration() {
        let graph = demo();
        let text = graph.to_yaml().unwrap();
        let again = KnowledgeGraph::from_yaml_str(&text, "round-trip").unwrap();
        assert_eq!(again, graph);
    }

    #[test]
    fn save_writes_through_a_renamed_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knowledge.yaml");
        let mut graph = demo();
        graph.create_incident(IncidentSpec { name: "Storage Incident".into(), description: None }).unwrap();
        graph.save(&path).unwrap();
        let entries: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(entries, ["knowledge.yaml"], "no temporary file is left behind");
        let loaded = KnowledgeGraph::load(&path).unwrap();
        assert!(loaded.incident("Storage Incident").is_some());
        assert!(matches!(
            KnowledgeGraph::load(&dir.path().join("missing.yaml")),
            Err(GraphError::Read { .. })
        ));
    }

    #[test]
    fn unknown_keys_fail_with_line() {
        let text = "components:\n  - name: NIFI\n    colour: blue\n";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(3));
        assert!(reason.contains("unknown field `colour`"), "{reason}");
        assert!(!reason.contains("at line"), "the location is not repeated: {reason}");
        let (line, reason) = load_error("component: []\n");
        assert_eq!(line, Some(1));
        assert!(reason.contains("unknown field `component`"), "{reason}");
    }

    #[test]
    fn unknown_references_fail_with_line_and_path() {
        let text = "\
components:
  - name: NIFI
signals:
  - name: A
    component: NIFI
  - name: B
    component: NIFY
";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(6));
        assert_eq!(reason, "signals[1]: unknown DataPipeline component \"NIFY\"");

        let text = "\
components:
  - name: NIFI
    predecessorOf:
      - HADOOP
";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(4));
        assert_eq!(reason, "components[0].predecessorOf[0]: unknown DataPipeline component \"HADOOP\"");

        let text = "\
components: [{name: NIFI}]
signals: [{name: A, component: NIFI}]
incidents: [{name: I}]
compositeSignals:
  - name: Cs
    parts:
      - {signal: A, component: NIFI}
      - {signal: A, component: FLINK}
    indicates: [I]
";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(8));
        assert_eq!(reason, "compositeSignals[0].parts[1]: unknown signal \"A\" of component \"FLINK\"");

        let text = "\
components: [{name: NIFI}]
compositeSignals:
  - name: Cs
    indicates:
      - Nothing
";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(5));
        assert!(reason.contains("unknown incident \"Nothing\""), "{reason}");
    }

    #[test]
    fn duplicates_fail_with_line() {
        let (line, reason) = load_error("components:\n  - name: NIFI\n  - name: FLINK\n  - name: NIFI\n");
        assert_eq!(line, Some(4));
        assert_eq!(reason, "components[2]: component \"NIFI\" already exists");
        let text = "components:\n  - name: NIFI\n  - name: FLINK\n    predecessorOf: [NIFI, NIFI]\n";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(4));
        assert!(reason.contains("PREDECESSOR_OF edge \"FLINK\" -> \"NIFI\" already exists"), "{reason}");
        let text = "components: [{name: NIFI}]\nsignals:\n  - {name: A, component: NIFI}\n  - {name: A, component: NIFI}\n";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(4));
        assert!(reason.contains("signal \"A\" of component \"NIFI\" already exists"), "{reason}");
    }

    #[test]
    fn out_of_range_properties_fail() {
        let base = "components: [{name: NIFI}]\n";
        let (_, reason) =
            load_error(&format!("{base}signals: [{{name: A, component: NIFI, threshold: 3}}]\n"));
        assert!(reason.contains("needs both threshold and coolDownSec"), "{reason}");
        let (_, reason) = load_error(&format!(
            "{base}signals: [{{name: A, component: NIFI, threshold: 0, coolDownSec: 5}}]\n"
        ));
        assert!(reason.contains("invalid threshold"), "{reason}");
        let (line, reason) =
            load_error(&format!("{base}compositeSignals:\n  - name: Cs\n    activationThreshold: 0\n"));
        assert_eq!(line, Some(3));
        assert!(reason.contains("activationThreshold: 0 is not in (0, 1]"), "{reason}");
        let (_, reason) =
            load_error(&format!("{base}compositeSignals: [{{name: Cs, activationThreshold: 1.5}}]\n"));
        assert!(reason.contains("not in (0, 1]"), "{reason}");
        let (_, reason) = load_error(&format!("{base}compositeSignals: [{{name: Cs, coolDownSec: 0}}]\n"));
        assert!(reason.contains("invalid coolDownSec"), "{reason}");
        let long = "N".repeat(201);
        let (line, reason) = load_error(&format!("components:\n  - name: {long}\n"));
        assert_eq!(line, Some(2));
        assert!(reason.contains("invalid component name: 201 characters"), "{reason}");
        let (line, reason) = load_error("components:\n  - name: 5\n    owner: [x]\n");
        assert_eq!(line, Some(3));
        assert!(reason.contains("invalid type"), "{reason}");
    }

    #[test]
    fn defaults_apply_to_composites() {
        let text = "components: [{name: NIFI}]\ncompositeSignals: [{name: Cs}]\n";
        let graph = KnowledgeGraph::from_yaml_str(text, "k").unwrap();
        let composite = graph.composite("Cs").unwrap();
        assert_eq!(composite.activation_threshold, DEFAULT_ACTIVATION_THRESHOLD);
        assert_eq!(composite.cool_down_sec, DEFAULT_COMPOSITE_COOL_DOWN_SEC);
    }

    #[test]
    fn edits_are_validated() {
        let mut graph = demo();
        assert!(matches!(
            graph.create_component(ComponentSpec { name: "NIFI".into(), owner: None }),
            Err(GraphError::Duplicate { kind: "component", .. })
        ));
        graph.create_component(ComponentSpec { name: "KAFKA".into(), owner: Some("Ops".into()) }).unwrap();
        graph.update_component(ComponentSpec { name: "KAFKA".into(), owner: None }).unwrap();
        assert_eq!(graph.component("KAFKA").unwrap().owner, None);
        graph.link(Link::PredecessorOf { from: "KAFKA".into(), to: "NIFI".into() }).unwrap();
        assert!(matches!(
            graph.link(Link::PredecessorOf { from: "KAFKA".into(), to: "KAFKA".into() }),
            Err(GraphError::Invalid { field: "PREDECESSOR_OF", .. })
        ));
        assert!(matches!(
            graph.link(Link::PredecessorOf { from: "KAFKA".into(), to: "NIFI".into() }),
            Err(GraphError::DuplicateEdge { .. })
        ));

        let spec = |threshold, cool_down_sec| SignalSpec {
            name: "Lag".into(),
            component: "KAFKA".into(),
            threshold,
            cool_down_sec,
        };
        assert!(matches!(
            graph.create_signal(SignalSpec { component: "NOPE".into(), ..spec(None, None) }),
            Err(GraphError::UnknownComponent(_))
        ));
        graph.create_signal(spec(Some(3), Some(30))).unwrap();
        assert!(graph.update_signal(spec(Some(3), None)).is_err());
        graph.update_signal(spec(Some(5), Some(60))).unwrap();
        assert_eq!(graph.signal("Lag", "KAFKA").unwrap().threshold, 5);
        assert!(matches!(graph.delete_component("KAFKA"), Err(GraphError::ComponentInUse { .. })));

        graph
            .create_composite(CompositeSpec {
                name: "Cs".into(),
                activation_threshold: Some(0.5),
                cool_down_sec: None,
            })
            .unwrap();
        assert!(
            graph
                .update_composite(CompositeSpec {
                    name: "Cs".into(),
                    activation_threshold: Some(-1.0),
                    cool_down_sec: None
                })
                .is_err()
        );
        let part = Link::PartOf { signal: "Lag".into(), component: "KAFKA".into(), composite: "Cs".into() };
        graph.link(part.clone()).unwrap();
        assert!(matches!(graph.link(part.clone()), Err(GraphError::DuplicateEdge { kind: "PART_OF", .. })));
        graph.create_incident(IncidentSpec { name: "Lagging".into(), description: None }).unwrap();
        graph
            .update_incident(IncidentSpec { name: "Lagging".into(), description: Some("slow".into()) })
            .unwrap();
        let indicates = Link::Indicates { composite: "Cs".into(), incident: "Lagging".into() };
        graph.link(indicates.clone()).unwrap();
        assert!(matches!(
            graph.link(Link::Indicates { composite: "Cs".into(), incident: "Ghost".into() }),
            Err(GraphError::UnknownIncident(_))
        ));

        graph.delete_incident("Lagging").unwrap();
        assert!(graph.composite("Cs").unwrap().indicates.is_empty(), "INDICATES removed with the incident");
        assert!(matches!(graph.unlink(&indicates), Err(GraphError::NoSuchEdge { .. })));
        graph.delete_signal(&SignalKey::new("Lag", "KAFKA")).unwrap();
        assert!(graph.composite("Cs").unwrap().parts.is_empty(), "PART_OF removed with the signal");
        graph.delete_component("KAFKA").unwrap();
        assert!(graph.components().iter().all(|c| !c.predecessor_of.contains(&"KAFKA".to_string())));
        graph.delete_composite("Cs").unwrap();
        assert_eq!(graph, demo(), "everything added was removed again");

        graph.unlink(&Link::PredecessorOf { from: "MQTT_BROKER".into(), to: "FLINK".into() }).unwrap();
        assert_eq!(graph.component("MQTT_BROKER").unwrap().predecessor_of, ["NIFI", "NODE-RED"]);
        let text = graph.to_yaml().unwrap();
        assert_eq!(KnowledgeGraph::from_yaml_str(&text, "edited").unwrap(), graph, "edits persist");
    }

    #[test]
    fn links_read_from_json() {
        let link: Link = serde_json::from_str(
            r#"{"type": "PART_OF", "signal": "S", "component": "NIFI", "composite": "Cs"}"#,
        )
        .unwrap();
        assert_eq!(
            link,
            Link::PartOf { signal: "S".into(), component: "NIFI".into(), composite: "Cs".into() }
        );
        assert!(serde_json::from_str::<Link>(r#"{"type": "OWNS", "from": "a", "to": "b"}"#).is_err());
    }

    #[test]
    fn find_signal_or_create_adds_on_first_sight_only_for_known_components() {
        let mut graph = demo();
        let before = graph.signals().len();
        let index = graph.find_signal_or_create("MissingTimeInformation", "NODE-RED").unwrap();
        assert_eq!(index, before);
        assert_eq!(graph.find_signal_or_create("MissingTimeInformation", "NODE-RED").unwrap(), index);
        assert_eq!(graph.find_signal_or_create("MqttConnectionError", "NIFI").unwrap(), 0);
        let unknown = graph.find_signal_or_create("Fault", "KAFKA").unwrap_err();
        assert!(matches!(unknown, GraphError::UnknownComponent(ref c) if c == "KAFKA"));
        assert_eq!(graph.signals().len(), before + 1);
        let view = serde_json::to_value(graph.view()).unwrap();
        assert!(view["edges"].as_array().unwrap().iter().any(|e| e["type"] == "SIGNALLED_BY"
            && e["from"] == "signal:MissingTimeInformation#NODE-RED"
            && e["to"] == "component:NODE-RED"));
    }

    #[test]
    fn view_lists_nodes_and_edges() {
        let graph = demo();
        let view = serde_json::to_value(graph.view()).unwrap();
        let nodes = view["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 8 + 4 + 1 + 1);
        assert_eq!(
            nodes[0],
            serde_json::json!({"label": "DataPipeline", "id": "component:SENSOR",
            "name": "SENSOR", "owner": "DataProvider1"})
        );
        let nifi = nodes.iter().find(|n| n["id"] == "signal:MqttConnectionError#NIFI").unwrap();
        assert_eq!(nifi["threshold"], 10);
        assert_eq!(nifi["coolDownSec"], 15);
        assert!(nifi.get("thresholdCounter").is_none());
        let edges = view["edges"].as_array().unwrap();
        let count = |kind: &str| edges.iter().filter(|e| e["type"] == kind).count();
        assert_eq!(count("PREDECESSOR_OF"), 7);
        assert_eq!(count("SIGNALLED_BY"), 4);
        assert_eq!(count("PART_OF"), 4);
        assert_eq!(count("INDICATES"), 1);
    }
}
