//! The dashboard over a running pipeline: states from its supervisor, faults from its fault manager,
//! incidents from its reasoner, documents from its indices, and recent lifecycle events from the trace's
//! in-memory tail.

use std::sync::Arc;

use serde_json::Value;

use super::history::History;
use super::view::{Event, LinkInfo, Mode, NodeInfo, RunInfo, Source};
use crate::chaos::faults::FaultRecord;
use crate::kernel::supervisor::Health;
use crate::reasoning::incident_reasoner::IncidentSeen;
use crate::sinks::document_index::IndexStore;
use crate::topology::Pipeline;

/// A running pipeline and the history recorded beside it.
pub struct Live {
    pipeline: Arc<Pipeline>,
    history: History,
    run: RunInfo,
}

impl Live {
    /// The dashboard's view of `pipeline`, whose metrics `history` records.
    pub fn new(pipeline: Arc<Pipeline>, history: History, run: RunInfo) -> Live {
        Live { pipeline, history, run }
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }
}

/// What `run.json` says of a built pipeline.
pub fn run_info(p: &Pipeline, command: &str) -> RunInfo {
    let now = p.clock.now();
    let start_ms = now.timestamp_millis() - p.clock.elapsed().as_millis() as i64;
    let start = chrono::DateTime::from_timestamp_millis(start_ms).unwrap_or(now);
    let components = p
        .supervisor
        .names()
        .into_iter()
        .map(|name| {
            let kind = p.supervisor.kind_of(&name).unwrap_or_default();
            let entry = p.flow.owner_of(&name).and_then(|o| p.flow.components.get(o));
            let (namespace, labels) =
                entry.map(|e| (e.namespace.clone(), e.labels.clone())).unwrap_or_default();
            NodeInfo { name, kind, namespace, labels }
        })
        .collect();
    let links = p
        .links
        .values()
        .map(|l| LinkInfo { name: l.name().to_owned(), from: l.from().to_owned(), to: l.to().to_owned() })
        .collect();
    RunInfo {
        pipeline: p.flow.pipeline.name.clone(),
        seed: p.seed.0,
        mode: if p.clock.is_sim() { "sim" } else { "live" }.into(),
        command: command.to_owned(),
        start_time: start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        start_ms,
        components,
        links,
    }
}

fn stores(p: &Pipeline) -> Vec<&IndexStore> {
    p.handles.all::<IndexStore>().into_iter().map(|(_, s)| s).collect()
}

impl Source for Live {
    fn mode(&self) -> Mode {
        Mode::Live
    }

    fn run(&self) -> &RunInfo {
        &self.run
    }

    fn out_dir(&self) -> &std::path::Path {
        &self.pipeline.out
    }

    fn now_ms(&self) -> u64 {
        self.pipeline.clock.elapsed().as_millis() as u64
    }

    fn history(&self) -> &History {
        &self.history
    }

    fn health_at(&self, _at: u64) -> Vec<(String, Health)> {
        self.pipeline.supervisor.health_all()
    }

    fn faults_at(&self, _at: u64) -> Vec<FaultRecord> {
        let (active, mut ended) = self.pipeline.faults.list();
        ended.extend(active);
        ended.sort_by(|a, b| a.applied_ms.cmp(&b.applied_ms).then_with(|| a.id.cmp(&b.id)));
        ended
    }

    fn incidents_at(&self, _at: u64) -> Vec<IncidentSeen> {
        crate::reasoning::incident_reasoner::incidents(&self.pipeline)
    }

    fn events_of(&self, component: &str, _at: u64, limit: usize) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .pipeline
            .trace
            .recent()
            .iter()
            .filter_map(|line| serde_json::from_str::<Event>(line).ok())
            .filter(|e| e.component == component)
            .collect();
        let skip = events.len().saturating_sub(limit);
        events.drain(..skip);
        events
    }

    fn indices(&self) -> Vec<(String, usize)> {
        stores(&self.pipeline).iter().flat_map(|s| s.list()).map(|i| (i.name.clone(), i.docs)).collect()
    }

    fn scan_documents(&self, index: &str, f: &mut dyn FnMut(Value) -> bool) -> bool {
        let Some(store) =
            stores(&self.pipeline).into_iter().find(|s| s.list().iter().any(|i| i.name == index))
        else {
            return false;
        };
        store.scan(index, 0, &mut |doc| serde_json::from_str(doc.get()).map_or(true, &mut *f))
    }
}
