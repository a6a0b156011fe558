//! What a fault is, as data: the request users write (CLI, HTTP, experiments) and the typed fault it
//! parses into.
//!
//! A [`FaultRequest`] names a `kind` from the [`CATALOGUE`], a `target` selector with a Chaos Mesh mode,
//! `parameters` and an optional `duration`. [`Fault::parse`] checks everything up front and reports
//! every problem with the field it is about, so nothing half-applies.
//!
//! Files: `mod.rs` (the request and the typed fault), `catalogue.rs` (the kinds, with what they act on
//! and their parameters), `parse.rs` (checking a request into a [`Fault`]).

mod catalogue;
mod http;
mod parse;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::http::HttpRule;
use super::selector::Selector;
use crate::kernel::hooks::IoFaults;
use crate::transport::link::{DataFaults, LinkFaults};

pub use catalogue::{CATALOGUE, KindInfo, TargetKind, kind_info};
pub use parse::{parse_duration, parse_offset};

/// A fault as users ask for it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// A kind from the catalogue (`network-delay`, `process-kill`, …).
    pub kind: String,
    /// What to act on: a name, a glob (`KAFKA-*`, `*->FLINK`), or `kind:<component kind>`. Some kinds
    /// have a default (see the catalogue); kinds acting on a topic or group take it from `parameters`.
    #[serde(default)]
    pub target: Option<String>,
    /// Chaos Mesh's selector mode: `one`, `all`, `fixed`, `fixed-percent`, `random-max-percent`.
    #[serde(default)]
    pub mode: Option<String>,
    /// The mode's value: a count for `fixed`, a percentage for the percent modes.
    #[serde(default)]
    pub value: Option<String>,
    /// How long the fault stays (`30s`, `2m`, or seconds as a number); without it, until removed.
    #[serde(default)]
    pub duration: Option<Value>,
    /// Kind-specific parameters.
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

/// Which links of a component a network fault takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Links into the component.
    To,
    /// Links out of it.
    From,
    /// Both.
    Both,
}

/// A network or data fault as an overlay on a link's faults.
#[derive(Clone, Debug, PartialEq)]
pub enum NetFault {
    /// Delay with jitter and correlation.
    Delay {
        /// Fixed part.
        latency: Duration,
        /// Random part.
        jitter: Duration,
        /// Correlation in `[0, 1]`.
        correlation: f64,
    },
    /// Loss probability.
    Loss(f64),
    /// Duplicate probability.
    Duplicate(f64),
    /// Corrupt probability.
    Corrupt(f64),
    /// Reorder probability with the delay the others wait.
    Reorder(f64, Duration),
    /// Cut off.
    Partition,
    /// Bytes per second.
    Bandwidth(u64),
    /// Record changes.
    Data(DataFaults),
}

impl NetFault {
    /// Adds this fault to `f` (later faults win where they set the same field).
    pub fn overlay(&self, f: &mut LinkFaults) {
        match self {
            NetFault::Delay { latency, jitter, correlation } => {
                f.latency = *latency;
                f.jitter = *jitter;
                f.correlation = *correlation;
            }
            NetFault::Loss(p) => f.loss = *p,
            NetFault::Duplicate(p) => f.duplicate = *p,
            NetFault::Corrupt(p) => f.corrupt = *p,
            NetFault::Reorder(p, latency) => {
                f.reorder = *p;
                if f.latency.is_zero() && f.jitter.is_zero() {
                    f.latency = *latency;
                }
            }
            NetFault::Partition => f.partition = true,
            NetFault::Bandwidth(b) => f.bandwidth = *b,
            NetFault::Data(d) => f.data = d.clone(),
        }
    }
}

/// What a parsed fault does.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// A network or data fault on links.
    Net(NetFault, Direction),
    /// Crash once.
    Kill,
    /// Down for the duration.
    Failure,
    /// Frozen for the duration.
    Pause,
    /// Calendar clock offset in milliseconds.
    ClockOffset(i64),
    /// Store/sink write faults.
    Io(IoFaults),
    /// A fault on the exchanges of the HTTP services.
    Http(HttpRule),
    /// Hold this much memory.
    Memory(usize),
    /// CPU stressors taking this many cores' worth of time beside the component.
    CpuStress(f64),
    /// Down, then up after `downtime`.
    Reboot(Duration),
    /// Delete a topic.
    DeleteTopic(String),
    /// Produce raw messages.
    Produce {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Payloads.
        messages: Vec<String>,
    },
    /// Join and leave a group.
    Rebalance {
        /// Group.
        group: String,
        /// Topic to subscribe to.
        topic: String,
    },
    /// Delete a group.
    DeleteGroup(String),
    /// Stop gracefully — within this grace, else killed; the supervisor's own when none — and start again.
    Restart(Option<Duration>),
    /// Drop a client's MQTT session.
    DropSession(String),
}

/// A checked fault, ready to apply.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Its catalogue entry.
    pub info: &'static KindInfo,
    /// Where it goes.
    pub selector: Selector,
    /// What it does.
    pub effect: Effect,
    /// How long it lasts; `None`: until removed (or, for instant kinds, nothing to undo).
    pub duration: Option<Duration>,
}

/// Everything wrong with a request, each with its field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault: {}", .0.join("; "))]
pub struct FaultError(pub Vec<String>);

impl FaultError {
    /// One problem.
    pub fn one(message: impl Into<String>) -> Self {
        FaultError(vec![message.into()])
    }
}
