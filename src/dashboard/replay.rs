//! The dashboard over a finished run (`chaoslab serve --out DIR`): the run's `run.json`, its recorded
//! metric history, the lifecycle events of its trace and its document indices, read once; every question
//! is then answered *at an instant* by folding the events up to it. Only a deterministic simulator can
//! offer this: the page also shows the command that reproduces the run byte for byte.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use super::history::{HISTORY_FILE, History};
use super::view::{Event, Mode, RUN_FILE, RunInfo, Source};
use crate::chaos::faults::FaultRecord;
use crate::kernel::supervisor::{Health, State};
use crate::reasoning::incident_reasoner::IncidentSeen;

/// Event kinds replay keeps from the trace (per-record events are skipped unread).
const KEPT: &[&str] =
    &["component.", "fault.applied", "fault.removed", "incident.reported", "run.", "broker.", "mqtt."];

/// Most documents replay loads from one index file.
pub const MAX_DOCS: usize = 200_000;

/// A finished run, loaded.
pub struct Replay {
    dir: PathBuf,
    run: RunInfo,
    history: History,
    events: Vec<Event>,
    end_ms: u64,
    indices: BTreeMap<String, Vec<Value>>,
}

impl Replay {
    /// Loads the run in `dir` (a sim run's `--out`); says what is missing or malformed, with the line.
    pub fn load(dir: &Path) -> anyhow::Result<Replay> {
        let run_path = dir.join(RUN_FILE);
        let text = std::fs::read_to_string(&run_path).with_context(|| {
            format!("cannot read {} (is {} the --out of a chaoslab run?)", run_path.display(), dir.display())
        })?;
        let run: RunInfo = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a run description", run_path.display()))?;
        let history = History::load(&dir.join(HISTORY_FILE))?;
        let events = read_events(&dir.join("trace.jsonl"))?;
        let last_event = events.last().map_or(0, |e| e.ms);
        let last_sample =
            history.with_db(|db| db.newest()).map_or(0, |t| u64::try_from(t - run.start_ms).unwrap_or(0));
        let indices = read_indices(&dir.join("index"))?;
        Ok(Replay {
            dir: dir.to_path_buf(),
            run,
            history,
            events,
            end_ms: last_event.max(last_sample),
            indices,
        })
    }

    fn until(&self, at: u64) -> &[Event] {
        &self.events[..self.events.partition_point(|e| e.ms <= at)]
    }
}

fn read_events(path: &Path) -> anyhow::Result<Vec<Event>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut events = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        let Some(kind_at) = line.find("\"kind\":\"") else { continue };
        let kind = &line[kind_at + 8..];
        if !KEPT.iter().any(|k| kind.starts_with(k)) {
            continue;
        }
        let event: Event = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a trace event", path.display(), i + 1))?;
        events.push(event);
    }
    Ok(events)
}

fn read_indices(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<Value>>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(out) };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for path in files {
        let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".jsonl"))
        else {
            continue;
        };
        let file = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut docs = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate().take(MAX_DOCS) {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let doc: Value = serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not a JSON document", path.display(), i + 1))?;
            docs.push(doc);
        }
        out.insert(name.to_owned(), docs);
    }
    Ok(out)
}

fn state_named(s: &str) -> State {
    match s {
        "running" => State::Running,
        "stopped" => State::Stopped,
        "crashed" => State::Crashed,
        "restarting" => State::Restarting,
        "exited" => State::Exited,
        "failed" => State::Failed,
        _ => State::Created,
    }
}

impl Source for Replay {
    fn mode(&self) -> Mode {
        Mode::Replay
    }

    fn run(&self) -> &RunInfo {
        &self.run
    }

    fn out_dir(&self) -> &Path {
        &self.dir
    }

    fn now_ms(&self) -> u64 {
        self.end_ms
    }

    fn history(&self) -> &History {
        &self.history
    }

    fn health_at(&self, at: u64) -> Vec<(String, Health)> {
        let mut all: BTreeMap<String, Health> = BTreeMap::new();
        for node in &self.run.components {
            all.insert(node.name.clone(), Health::created());
        }
        for e in self.until(at) {
            let Some(h) = all.get_mut(&e.component) else { continue };
            match e.kind.as_str() {
                // The run's own end stops everything; the diagram shows the pipeline as it ran.
                "component.state" if e.data["detail"] == "shutdown" => {}
                "component.state" => {
                    let from = e.data["from"].as_str().unwrap_or("");
                    let to = state_named(e.data["to"].as_str().unwrap_or(""));
                    if to == State::Running && matches!(from, "restarting" | "crashed") {
                        h.restarts += 1;
                    }
                    h.state = to;
                    h.since_ms = e.ms;
                    h.detail = e.data["detail"].as_str().unwrap_or("").to_owned();
                    h.ready = to == State::Running && !h.paused;
                }
                "component.paused" => {
                    h.paused = true;
                    h.ready = false;
                }
                "component.resumed" => {
                    h.paused = false;
                    h.ready = h.state == State::Running;
                }
                _ => {}
            }
        }
        all.into_iter().collect()
    }

    fn faults_at(&self, at: u64) -> Vec<FaultRecord> {
        let mut by_id: BTreeMap<String, FaultRecord> = BTreeMap::new();
        for e in self.until(at).iter().filter(|e| e.component == "chaoslab" && e.kind.starts_with("fault.")) {
            if let Ok(record) = serde_json::from_value::<FaultRecord>(e.data.clone()) {
                by_id.insert(record.id.clone(), record);
            }
        }
        let mut all: Vec<FaultRecord> = by_id.into_values().collect();
        all.sort_by(|a, b| a.applied_ms.cmp(&b.applied_ms).then_with(|| a.id.cmp(&b.id)));
        all
    }

    fn incidents_at(&self, at: u64) -> Vec<IncidentSeen> {
        self.until(at)
            .iter()
            .filter(|e| e.kind == "incident.reported")
            .filter_map(|e| serde_json::from_value(e.data.clone()).ok())
            .collect()
    }

    fn events_of(&self, component: &str, at: u64, limit: usize) -> Vec<Event> {
        let mut events: Vec<Event> =
            self.until(at).iter().rev().filter(|e| e.component == component).take(limit).cloned().collect();
        events.reverse();
        events
    }

    fn indices(&self) -> Vec<(String, usize)> {
        self.indices.iter().map(|(n, d)| (n.clone(), d.len())).collect()
    }

    fn scan_documents(&self, index: &str, f: &mut dyn FnMut(Value) -> bool) -> bool {
        let Some(docs) = self.indices.get(index) else { return false };
        for doc in docs {
            if !f(doc.clone()) {
                break;
            }
        }
        true
    }
}
