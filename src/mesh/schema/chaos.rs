//! The chaos kinds: `NetworkChaos`, `PodChaos`, `TimeChaos`, `StressChaos`, `IOChaos`, `HTTPChaos`.
//!
//! Percentages and correlations are strings in Chaos Mesh (`loss: "25"`), durations are Go durations;
//! both stay text here and are checked (with their line) by the loader.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Mode, PodSelector, SelectorSpec};

/// Declares a chaos spec: the fields every chaos kind has (`selector`, `mode`, `value`, `duration`,
/// `remoteCluster`), then the kind's own.
macro_rules! chaos_spec {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            /// Which pods.
            pub selector: SelectorSpec,
            /// How many of them.
            pub mode: Mode,
            /// The mode's value (a count for `fixed`, a percentage otherwise).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub value: Option<String>,
            /// How long the chaos acts; none: until the object is deleted.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub duration: Option<String>,
            /// Another cluster (not supported: one process is one cluster).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub remote_cluster: Option<String>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            /// The selector with its mode.
            pub fn pods(&self) -> PodSelector {
                PodSelector { selector: self.selector.clone(), mode: self.mode, value: self.value.clone() }
            }
        }
    };
}

chaos_spec! {
    /// `NetworkChaos`: netem faults and partitions on the selected pods' traffic.
    NetworkChaosSpec {
        /// `netem`, `delay`, `loss`, `duplicate`, `corrupt`, `partition`, `bandwidth`, `rate`.
        action: String,
        /// `to` (default), `from` or `both`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        direction: Option<String>,
        /// The other end of the traffic.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<PodSelector>,
        /// Endpoints outside the cluster (hosts or CIDRs).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        external_targets: Vec<String>,
        /// The network device (one process: no devices; accepted and ignored).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        /// The target's device (likewise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_device: Option<String>,
        /// `delay` (and `netem`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay: Option<DelaySpec>,
        /// `loss` (and `netem`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loss: Option<LossSpec>,
        /// `duplicate` (and `netem`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duplicate: Option<DuplicateSpec>,
        /// `corrupt` (and `netem`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        corrupt: Option<CorruptSpec>,
        /// `bandwidth`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bandwidth: Option<BandwidthSpec>,
        /// `rate` (and `netem`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<RateSpec>,
    }
}

/// `delay`: netem delay.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DelaySpec {
    /// The fixed part (Go duration).
    pub latency: String,
    /// Correlation with the previous packet, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// The random part (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// Reordering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<ReorderSpec>,
}

/// `delay.reorder`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReorderSpec {
    /// Share of packets sent at once, percent.
    pub reorder: String,
    /// Correlation, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// Every `gap`-th packet is sent at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<i64>,
}

/// `loss`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LossSpec {
    /// Percent lost.
    pub loss: String,
    /// Correlation, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

/// `duplicate`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DuplicateSpec {
    /// Percent duplicated.
    pub duplicate: String,
    /// Correlation, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

/// `corrupt`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorruptSpec {
    /// Percent corrupted.
    pub corrupt: String,
    /// Correlation, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

/// `bandwidth`: a token bucket filter.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BandwidthSpec {
    /// The rate, in tc's units (`bps` is bytes per second, `kbit` kilobits …).
    pub rate: String,
    /// Bytes that may queue.
    pub limit: u64,
    /// The bucket size in bytes.
    pub buffer: u64,
    /// The peak rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peakrate: Option<u64>,
    /// The peak bucket size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minburst: Option<u64>,
}

/// `rate`: netem's rate.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateSpec {
    /// The rate, in tc's units.
    pub rate: String,
}

chaos_spec! {
    /// `PodChaos`: kill a pod, fail it for a while, or kill containers.
    PodChaosSpec {
        /// `pod-kill`, `pod-failure` or `container-kill`.
        action: String,
        /// Containers (`container-kill`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        container_names: Vec<String>,
        /// Seconds a killed pod gets to stop (`pod-kill`; default 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grace_period: Option<i64>,
    }
}

chaos_spec! {
    /// `TimeChaos`: shifts the selected pods' clocks.
    TimeChaosSpec {
        /// The offset (Go duration, may be negative).
        time_offset: String,
        /// Clocks (default `CLOCK_REALTIME`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        clock_ids: Vec<String>,
        /// Containers.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        container_names: Vec<String>,
    }
}

chaos_spec! {
    /// `StressChaos`: CPU and memory stressors.
    StressChaosSpec {
        /// The stressors.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stressors: Option<Stressors>,
        /// Raw stress-ng options (`--cpu 2 --cpu-load 50 --vm 1 --vm-bytes 256M`); they win over `stressors`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stressng_stressors: Option<String>,
        /// Containers.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        container_names: Vec<String>,
    }
}

/// `stressors`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stressors {
    /// Memory stressors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStressor>,
    /// CPU stressors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStressor>,
}

/// `stressors.memory`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemoryStressor {
    /// Workers.
    pub workers: i64,
    /// Memory each takes (`256MB`, `25%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// OOM score adjustment (accepted, no effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    /// Extra stress-ng options (accepted; a warning says they change nothing modelled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// `stressors.cpu`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CpuStressor {
    /// Workers.
    pub workers: i64,
    /// Load each puts on a CPU, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<i64>,
    /// Extra stress-ng options (accepted; a warning says they change nothing modelled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

chaos_spec! {
    /// `IOChaos`: faults on file operations under a volume.
    IoChaosSpec {
        /// `latency`, `fault`, `attrOverride` or `mistake`.
        action: String,
        /// The volume's mount path.
        volume_path: String,
        /// A glob of affected files (default: all under the volume).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// Operations affected (default all).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        methods: Vec<String>,
        /// Percent of operations affected (default 100).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        percent: Option<i64>,
        /// `latency`: how long each takes extra (Go duration).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay: Option<String>,
        /// `fault`: the error number returned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        errno: Option<u32>,
        /// `attrOverride`: attributes (`perm` acts; the others warn).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attr: Option<serde_json::Value>,
        /// `mistake`: wrong data.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mistake: Option<MistakeSpec>,
        /// Containers.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        container_names: Vec<String>,
    }
}

/// `mistake`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MistakeSpec {
    /// `zero` or `random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filling: Option<String>,
    /// Mistakes per operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_occurrences: Option<i64>,
    /// Bytes per mistake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<i64>,
}

chaos_spec! {
    /// `HTTPChaos`: faults on HTTP requests or responses of the selected pods' servers.
    HttpChaosSpec {
        /// `Request` or `Response`.
        target: String,
        /// The server's port.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<i64>,
        /// A path glob (`*` everything, `/api/*`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// The request method.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// The response code (`target: Response`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i64>,
        /// Request headers that must match (snake case, as Chaos Mesh spells it).
        #[serde(default, rename = "request_headers", skip_serializing_if = "BTreeMap::is_empty")]
        request_headers: BTreeMap<String, String>,
        /// Response headers that must match (snake case, as Chaos Mesh spells it).
        #[serde(default, rename = "response_headers", skip_serializing_if = "BTreeMap::is_empty")]
        response_headers: BTreeMap<String, String>,
        /// Abort the connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        abort: Option<bool>,
        /// Delay (Go duration).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay: Option<String>,
        /// Replace parts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replace: Option<HttpReplace>,
        /// Patch parts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patch: Option<HttpPatch>,
        /// TLS (refused: the services speak plain HTTP).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls: Option<serde_json::Value>,
    }
}

/// `replace`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpReplace {
    /// Headers set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body, base64 (Go's `[]byte` in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Request method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Query parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub queries: BTreeMap<String, String>,
    /// Response code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
}

/// `patch`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpPatch {
    /// Headers added, `[name, value]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Vec<String>>,
    /// Body patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpPatchBody>,
    /// Queries added, `[name, value]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<Vec<String>>,
}

/// `patch.body`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpPatchBody {
    /// `JSON` (a JSON merge patch).
    #[serde(rename = "type")]
    pub kind: String,
    /// The patch.
    pub value: String,
}

/// A chaos kind's spec.
#[allow(clippy::large_enum_variant, reason = "read once per object; boxing would only add noise")]
#[derive(Clone, Debug, PartialEq)]
pub enum ChaosSpec {
    /// `NetworkChaos`.
    Network(NetworkChaosSpec),
    /// `PodChaos`.
    Pod(PodChaosSpec),
    /// `TimeChaos`.
    Time(TimeChaosSpec),
    /// `StressChaos`.
    Stress(StressChaosSpec),
    /// `IOChaos`.
    Io(IoChaosSpec),
    /// `HTTPChaos`.
    Http(HttpChaosSpec),
}

impl ChaosSpec {
    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        match self {
            ChaosSpec::Network(_) => "NetworkChaos",
            ChaosSpec::Pod(_) => "PodChaos",
            ChaosSpec::Time(_) => "TimeChaos",
            ChaosSpec::Stress(_) => "StressChaos",
            ChaosSpec::Io(_) => "IOChaos",
            ChaosSpec::Http(_) => "HTTPChaos",
        }
    }

    /// The selected pods with the mode.
    pub fn pods(&self) -> PodSelector {
        match self {
            ChaosSpec::Network(s) => s.pods(),
            ChaosSpec::Pod(s) => s.pods(),
            ChaosSpec::Time(s) => s.pods(),
            ChaosSpec::Stress(s) => s.pods(),
            ChaosSpec::Io(s) => s.pods(),
            ChaosSpec::Http(s) => s.pods(),
        }
    }

    /// The `remoteCluster`, when one is named.
    pub fn remote_cluster(&self) -> Option<&str> {
        match self {
            ChaosSpec::Network(s) => s.remote_cluster.as_deref(),
            ChaosSpec::Pod(s) => s.remote_cluster.as_deref(),
            ChaosSpec::Time(s) => s.remote_cluster.as_deref(),
            ChaosSpec::Stress(s) => s.remote_cluster.as_deref(),
            ChaosSpec::Io(s) => s.remote_cluster.as_deref(),
            ChaosSpec::Http(s) => s.remote_cluster.as_deref(),
        }
    }

    /// The `duration` as written.
    pub fn duration(&self) -> Option<&str> {
        match self {
            ChaosSpec::Network(s) => s.duration.as_deref(),
            ChaosSpec::Pod(s) => s.duration.as_deref(),
            ChaosSpec::Time(s) => s.duration.as_deref(),
            ChaosSpec::Stress(s) => s.duration.as_deref(),
            ChaosSpec::Io(s) => s.duration.as_deref(),
            ChaosSpec::Http(s) => s.duration.as_deref(),
        }
    }
}

/// The key a kind's spec sits under when embedded (`podChaos`), for the kinds chaoslab runs.
pub fn embed_key(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "NetworkChaos" => "networkChaos",
        "PodChaos" => "podChaos",
        "TimeChaos" => "timeChaos",
        "StressChaos" => "stressChaos",
        "IOChaos" => "ioChaos",
        "HTTPChaos" => "httpChaos",
        _ => return None,
    })
}
