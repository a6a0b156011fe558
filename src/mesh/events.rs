//! Events like Chaos Mesh's: each one names an object, a reason (`Applied`, `Recovered`, `ScheduleSpawn`,
//! `ScheduleForbid`, `NodeDeadlineExceed`, …), a message and the targets. They go to the trace (as
//! `mesh.event`), to a counter (`chaoslab_mesh_events_total{reason}`), to `<out>/mesh-events.jsonl` (one
//! JSON object per line) and to a list the API and the CLI read.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use prometheus::IntCounterVec;
use serde::{Deserialize, Serialize};

use crate::kernel::clock::{Clock, iso_millis};
use crate::kernel::metrics::Metrics;
use crate::kernel::trace::Trace;

/// The name of the events file in a run's output directory.
pub const EVENTS_FILE: &str = "mesh-events.jsonl";

/// `Normal` or `Warning`, as Kubernetes events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// Things going as planned.
    Normal,
    /// Something failed or was skipped.
    Warning,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeshEvent {
    /// The run's calendar time (RFC 3339, milliseconds).
    pub time: String,
    /// Milliseconds since the run started.
    pub elapsed_ms: u64,
    /// The object's kind.
    pub kind: String,
    /// `namespace/name`.
    pub object: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Why (Chaos Mesh's reason names).
    pub reason: String,
    /// What happened.
    pub message: String,
    /// The pods, links or objects concerned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

/// Where events go.
pub struct Events {
    clock: Clock,
    trace: Trace,
    counter: Option<IntCounterVec>,
    /// Where the events file goes; it is created at the first event.
    path: Option<PathBuf>,
    file: Mutex<Option<BufWriter<File>>>,
    list: Mutex<VecDeque<MeshEvent>>,
}

/// Events kept in memory (the file keeps them all).
pub const MAX_KEPT: usize = 100_000;

impl Events {
    /// Events of a run: the counter is registered in `metrics`; the file is created in `out` (when given)
    /// at the first event, so a run without Chaos Mesh objects writes none.
    pub fn new(clock: Clock, trace: Trace, metrics: &Metrics, out: Option<&Path>) -> Events {
        let counter = metrics
            .scope("chaos-mesh")
            .counter_vec("chaoslab_mesh_events_total", "Chaos Mesh events by reason.", &["reason"])
            .ok();
        Events {
            clock,
            trace,
            counter,
            path: out.map(|dir| dir.join(EVENTS_FILE)),
            file: Mutex::new(None),
            list: Mutex::new(VecDeque::new()),
        }
    }

    /// Records one event.
    pub fn emit(
        &self,
        kind: &str,
        object: &str,
        event_type: EventType,
        reason: &str,
        message: impl Into<String>,
        targets: Vec<String>,
    ) {
        let event = MeshEvent {
            time: iso_millis(self.clock.now()),
            elapsed_ms: self.clock.elapsed().as_millis() as u64,
            kind: kind.to_string(),
            object: object.to_string(),
            event_type,
            reason: reason.to_string(),
            message: message.into(),
            targets,
        };
        match event.event_type {
            EventType::Normal => {
                tracing::info!("{} {} {}: {}", event.kind, event.object, event.reason, event.message)
            }
            EventType::Warning => {
                tracing::warn!("{} {} {}: {}", event.kind, event.object, event.reason, event.message)
            }
        }
        self.trace.emit("chaos-mesh", "mesh.event", &event);
        if let Some(c) = &self.counter {
            c.with_label_values(&[reason]).inc();
        }
        self.write(&event);
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if list.len() == MAX_KEPT {
            list.pop_front();
        }
        list.push_back(event);
    }

    fn write(&self, event: &MeshEvent) {
        let Some(path) = &self.path else { return };
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if file.is_none() {
            match File::create(path) {
                Ok(f) => *file = Some(BufWriter::new(f)),
                Err(e) => {
                    tracing::warn!("cannot create {}: {e}", path.display());
                    return;
                }
            }
        }
        if let Some(f) = file.as_mut()
            && let Ok(line) = serde_json::to_string(event)
            && let Err(e) = writeln!(f, "{line}")
        {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }

    /// The events kept (the last [`MAX_KEPT`]), in order.
    pub fn all(&self) -> Vec<MeshEvent> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    /// The events of one object (`kind`, `namespace/name`).
    pub fn of(&self, kind: &str, object: &str) -> Vec<MeshEvent> {
        let list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.iter().filter(|e| e.kind == kind && e.object == object).cloned().collect()
    }

    /// Writes buffered lines to the file.
    pub fn flush(&self) -> std::io::Result<()> {
        match self.file.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}
