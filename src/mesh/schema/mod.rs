//! Chaos Mesh's objects as typed Rust values, field for field after its Go types
//! (`api/v1alpha1/*_types.go` of chaos-mesh/chaos-mesh 2.7): names in camelCase as in the YAML, unknown
//! fields refused, defaults as kubebuilder sets them.
//!
//! Files: `mod.rs` (an object: kind, metadata, and the selector every chaos kind shares), `chaos.rs` (the
//! six chaos kinds chaoslab runs), `workflow.rs` (Schedule, Workflow and StatusCheck).

pub mod chaos;
pub mod workflow;

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

pub use chaos::ChaosSpec;
pub use workflow::{ScheduleSpec, StatusCheckSpec, WorkflowSpec};

/// The one API version of Chaos Mesh's objects.
pub const API_VERSION: &str = "chaos-mesh.org/v1alpha1";

/// The pause annotation: `"true"` keeps a chaos from acting until it is resumed.
pub const PAUSE_ANNOTATION: &str = "experiment.chaos-mesh.org/pause";

/// The kinds chaoslab runs.
pub const SUPPORTED_KINDS: [&str; 9] = [
    "NetworkChaos",
    "PodChaos",
    "TimeChaos",
    "StressChaos",
    "IOChaos",
    "HTTPChaos",
    "Schedule",
    "Workflow",
    "StatusCheck",
];

/// Chaos Mesh kinds that act on what chaoslab does not have (a JVM, DNS, a kernel, block devices, clouds,
/// physical machines): named so that an error can say so instead of "unknown kind".
pub const UNSUPPORTED_KINDS: [&str; 11] = [
    "JVMChaos",
    "DNSChaos",
    "KernelChaos",
    "BlockChaos",
    "AWSChaos",
    "GCPChaos",
    "AzureChaos",
    "PhysicalMachineChaos",
    "PhysicalMachine",
    "RemoteCluster",
    "PodHttpChaos",
];

/// Kubernetes object metadata (what matters here; server-set fields are accepted and ignored).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The object's name.
    #[serde(default)]
    pub name: Option<String>,
    /// A prefix to which a random suffix is added when there is no name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Its namespace (default `default`, as `kubectl apply` without `-n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations (the pause annotation among them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing)]
    uid: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    resource_version: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    generation: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    creation_timestamp: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    deletion_timestamp: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    finalizers: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    managed_fields: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    owner_references: Option<IgnoredAny>,
}

impl Metadata {
    /// The namespace, `default` when none is given.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }

    /// True when the pause annotation is `"true"`.
    pub fn paused(&self) -> bool {
        self.annotations.get(PAUSE_ANNOTATION).is_some_and(|v| v == "true")
    }
}

/// Which pods: every filter given must hold (`PodSelectorSpec`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectorSpec {
    /// Namespaces; empty: the object's own namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Labels that must all be equal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_selectors: BTreeMap<String, String>,
    /// Label requirements (`In`, `NotIn`, `Exists`, `DoesNotExist`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expression_selectors: Vec<LabelRequirement>,
    /// Annotations that must all be equal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotation_selectors: BTreeMap<String, String>,
    /// Field selectors (`metadata.name`, `metadata.namespace`, `status.phase`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_selectors: BTreeMap<String, String>,
    /// Pods by namespace; when given, exactly these (the other filters are not applied).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pods: BTreeMap<String, Vec<String>>,
    /// Pod phases (`Running`, `Pending`, `Failed`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_phase_selectors: Vec<String>,
    /// Node names (one process: only meaningful when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Node labels (one process: only meaningful when empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selectors: BTreeMap<String, String>,
}

/// A label requirement of `expressionSelectors`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelRequirement {
    /// The label.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values for `In` and `NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// How many of the selected pods a chaos takes.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum Mode {
    /// One, at random.
    #[serde(rename = "one")]
    One,
    /// All of them.
    #[serde(rename = "all")]
    All,
    /// `value` of them, at random.
    #[serde(rename = "fixed")]
    Fixed,
    /// `value` percent of them, at random.
    #[serde(rename = "fixed-percent")]
    FixedPercent,
    /// A random share of them up to `value` percent.
    #[serde(rename = "random-max-percent")]
    RandomMaxPercent,
}

/// A selector with its mode, as `NetworkChaos.spec.target` is.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSelector {
    /// Which pods.
    pub selector: SelectorSpec,
    /// How many of them.
    pub mode: Mode,
    /// The mode's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A whole object as read from a file: `apiVersion`, `kind`, `metadata`, `spec` (kept as a node until the
/// kind is known).
#[derive(Clone, Debug)]
pub struct Object {
    /// The kind.
    pub kind: String,
    /// Its metadata.
    pub metadata: Metadata,
    /// Its spec, by kind.
    pub spec: Spec,
    /// Where it was read: file and line of its `kind`.
    pub origin: Origin,
}

impl Object {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.metadata.namespace(), self.name())
    }

    /// The name (`generateName` when there is no name).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().or(self.metadata.generate_name.as_deref()).unwrap_or("")
    }
}

/// Where an object came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The file (as given).
    pub file: String,
    /// The line of the document's start.
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// An object's spec.
#[allow(clippy::large_enum_variant, reason = "read once per object; boxing would only add noise")]
#[derive(Clone, Debug)]
pub enum Spec {
    /// One of the chaos kinds.
    Chaos(ChaosSpec),
    /// A `Schedule`.
    Schedule(Box<ScheduleSpec>),
    /// A `Workflow`.
    Workflow(WorkflowSpec),
    /// A standalone `StatusCheck`.
    StatusCheck(StatusCheckSpec),
}
