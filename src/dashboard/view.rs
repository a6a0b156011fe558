//! What the dashboard shows, at one instant of a run: the same views whether the run is live or a finished
//! sim run being replayed. A [`Source`] answers the few questions that differ (component states, faults,
//! incidents, events, documents at an instant); everything else (health colours, link rates from the
//! recorded history, the ground truth) is derived here, once, for both.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::history::History;
use crate::chaos::faults::FaultRecord;
use crate::kernel::supervisor::Health;
use crate::monitoring::promql;
use crate::reasoning::incident_reasoner::IncidentSeen;

/// Live (a running pipeline, now) or replay (a finished run, at any instant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A running pipeline.
    Live,
    /// A finished sim run read from its output directory.
    Replay,
}

/// A component as the flow declares it (written to `run.json`, so a replay can draw the diagram).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Supervisor name (`FLINK`, `KAFKA-1`, …).
    pub name: String,
    /// Component kind.
    pub kind: String,
    /// Namespace (the diagram's lane: `iot`, `orders`, `monitoring`, `mining`, …).
    pub namespace: String,
    /// Labels (`app=…`).
    pub labels: BTreeMap<String, String>,
}

/// A link as the flow declares it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// `FROM->TO`.
    pub name: String,
    /// Sending component.
    pub from: String,
    /// Receiving component.
    pub to: String,
}

/// What a run was: written to `<out>/run.json` when it starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The flow's name.
    pub pipeline: String,
    /// Root seed.
    pub seed: u64,
    /// `sim` or `live`.
    pub mode: String,
    /// The command line that reproduces the run.
    pub command: String,
    /// Calendar time of the start (virtual in sim mode).
    pub start_time: String,
    /// Epoch milliseconds of the start.
    pub start_ms: i64,
    /// The components.
    pub components: Vec<NodeInfo>,
    /// The links.
    pub links: Vec<LinkInfo>,
}

/// The file [`RunInfo`] is written to, under a run's output directory.
pub const RUN_FILE: &str = "run.json";

/// One lifecycle event of the trace (`component.state`, `fault.applied`, …).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the run started.
    pub ms: u64,
    /// Who emitted it.
    pub component: String,
    /// What happened.
    pub kind: String,
    /// Details.
    #[serde(default)]
    pub data: Value,
}

/// Where a dashboard's facts come from.
pub trait Source: Send + Sync + 'static {
    /// Live or replay.
    fn mode(&self) -> Mode;
    /// The run.
    fn run(&self) -> &RunInfo;
    /// The run's output directory.
    fn out_dir(&self) -> &std::path::Path;
    /// The newest instant there is (ms since start): now, or the end of a replayed run.
    fn now_ms(&self) -> u64;
    /// The recorded metrics.
    fn history(&self) -> &History;
    /// Every component's health at `at`.
    fn health_at(&self, at: u64) -> Vec<(String, Health)>;
    /// Every fault applied up to `at`; one that ended after `at` is returned as active.
    fn faults_at(&self, at: u64) -> Vec<FaultRecord>;
    /// Incidents reported up to `at`.
    fn incidents_at(&self, at: u64) -> Vec<IncidentSeen>;
    /// Lifecycle events of `component` up to `at`, newest last, at most `limit`.
    fn events_of(&self, component: &str, at: u64, limit: usize) -> Vec<Event>;
    /// The document indices and their sizes.
    fn indices(&self) -> Vec<(String, usize)>;
    /// Calls `f` with every document of an index in write order until it returns false (false: no such
    /// index). Documents stream past; none is kept beyond the call.
    fn scan_documents(&self, index: &str, f: &mut dyn FnMut(Value) -> bool) -> bool;
}

/// A component at an instant.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentView {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// The diagram lane.
    pub lane: String,
    /// Namespace.
    pub namespace: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Lifecycle state (`running`, `stopped`, `crashed`, `restarting`, `failed`, …).
    pub state: String,
    /// Doing its job.
    pub ready: bool,
    /// Frozen by a pause.
    pub paused: bool,
    /// Restarts so far.
    pub restarts: u64,
    /// Last note.
    pub detail: String,
    /// `ok`, `degraded` (paused, not ready, or a fault acts on it) or `down`.
    pub health: &'static str,
}

/// A link at an instant.
#[derive(Clone, Debug, Serialize)]
pub struct LinkView {
    /// `FROM->TO`.
    pub name: String,
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// Messages delivered per second over the last [`RATE_WINDOW`].
    pub rate: f64,
    /// Delivered so far.
    pub delivered: u64,
    /// Dropped so far (loss, partition, receiver down, queue full).
    pub dropped: u64,
    /// A fault acts on it.
    pub faulty: bool,
}

/// A fault on the time axis.
#[derive(Clone, Debug, Serialize)]
pub struct FaultView {
    /// `f-0001`.
    pub id: String,
    /// Catalogue kind.
    pub kind: String,
    /// What it acts on.
    pub targets: Vec<String>,
    /// The selector as given.
    pub selector: String,
    /// Parameters.
    pub parameters: serde_json::Map<String, Value>,
    /// Start, ms since the run started.
    pub applied_ms: u64,
    /// End, ms since the run started; `None` while active.
    pub ended_ms: Option<u64>,
    /// `active`, `expired`, `removed`, `completed`.
    pub status: String,
    /// What asked for it (a Chaos Mesh object), if not a user.
    pub origin: Option<String>,
}

/// An incident on the time axis.
#[derive(Clone, Debug, Serialize)]
pub struct IncidentView {
    /// When it was reported, ms since the run started.
    pub t_ms: u64,
    /// Its name.
    pub name: String,
    /// The components involved.
    pub components: Vec<String>,
    /// Faults that explain it.
    pub faults: Vec<String>,
}

/// Everything the pages show at one instant.
#[derive(Clone, Debug, Serialize)]
pub struct StateView {
    /// The instant, ms since the run started.
    pub at_ms: u64,
    /// Components.
    pub components: Vec<ComponentView>,
    /// Links.
    pub links: Vec<LinkView>,
    /// Faults applied up to the instant.
    pub faults: Vec<FaultView>,
    /// Incidents up to the instant.
    pub incidents: Vec<IncidentView>,
}

/// The window link rates are measured over.
pub const RATE_WINDOW: &str = "30s";

/// The instant a request asks for, clamped to the run.
pub fn instant(source: &dyn Source, at: Option<u64>) -> u64 {
    let now = source.now_ms();
    at.map_or(now, |a| a.min(now))
}

/// Milliseconds since the run's start of a time: RFC 3339, or a journal's zone-less UTC time
/// (`2020-02-21T21:00:10.000000`); 0 when before the start, `None` when unreadable.
pub fn ms_since_any(run: &RunInfo, text: &str) -> Option<u64> {
    ms_since(run, text).or_else(|| {
        let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
        Some(u64::try_from(naive.and_utc().timestamp_millis() - run.start_ms).unwrap_or(0))
    })
}

/// A phase of a Chaos Toolkit experiment on the time axis.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseView {
    /// `steady-state before`, `method`, `steady-state after`, `rollbacks`.
    pub name: &'static str,
    /// Start, ms since the run started.
    pub from_ms: u64,
    /// End.
    pub to_ms: u64,
}

/// A probe's verdict on the time axis.
#[derive(Clone, Debug, Serialize)]
pub struct VerdictView {
    /// When it was judged (the probe's end).
    pub t_ms: u64,
    /// The probe's name.
    pub name: String,
    /// Whether its tolerance was met.
    pub met: bool,
}

/// An experiment run against this pipeline, as its journal tells it.
#[derive(Clone, Debug, Serialize)]
pub struct ExperimentView {
    /// The journal's file stem (`exp-0001`).
    pub id: String,
    /// The experiment's title.
    pub title: String,
    /// The journal's status.
    pub status: String,
    /// Its phases.
    pub phases: Vec<PhaseView>,
    /// Its steady-state probes' verdicts.
    pub verdicts: Vec<VerdictView>,
}

/// The Chaos Toolkit journals in `<out>/experiments/`, in file order, each with its file's path and stem
/// (the experiments kept beside them, `*.experiment.json`, are not journals and are left out).
pub fn journals(out: &std::path::Path) -> Vec<(std::path::PathBuf, String, Value)> {
    let Ok(entries) = std::fs::read_dir(out.join("experiments")) else { return Vec::new() };
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().ends_with(".experiment.json")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let journal: Value = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
            let id = path.file_stem()?.to_string_lossy().into_owned();
            Some((path, id, journal))
        })
        .collect()
}

/// The experiments whose journals are in `<out>/experiments/`, in file order.
pub fn experiments(run: &RunInfo, out: &std::path::Path) -> Vec<ExperimentView> {
    journals(out).into_iter().map(|(_, id, journal)| experiment_view(run, id, &journal)).collect()
}

fn experiment_view(run: &RunInfo, id: String, journal: &Value) -> ExperimentView {
    let at = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).and_then(|t| ms_since_any(run, t));
    let span = |name: &'static str, runs: &[Value]| -> Option<PhaseView> {
        let from = runs.iter().filter_map(|r| at(r, "start")).min()?;
        let to = runs.iter().filter_map(|r| at(r, "end")).max()?;
        Some(PhaseView { name, from_ms: from, to_ms: to.max(from) })
    };
    let list = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
    let states = journal.get("steady_states");
    let before = list(states.and_then(|s| s.get("before")).and_then(|b| b.get("probes")));
    let after = list(states.and_then(|s| s.get("after")).and_then(|b| b.get("probes")));
    let during: Vec<Value> =
        list(states.and_then(|s| s.get("during"))).iter().flat_map(|d| list(d.get("probes"))).collect();
    let (after_span, mut method) =
        (span("steady-state after", &after), span("method", &list(journal.get("run"))));
    // A journal's activities end before their `pauses.after`, which still belong to the method.
    if let (Some(m), Some(a)) = (method.as_mut(), after_span.as_ref()) {
        m.to_ms = m.to_ms.max(a.from_ms);
    }
    let phases = [
        span("steady-state before", &before),
        method,
        after_span,
        span("rollbacks", &list(journal.get("rollbacks"))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let verdicts = before
        .iter()
        .chain(&during)
        .chain(&after)
        .filter_map(|p| {
            let met = p.get("tolerance_met")?.as_bool()?;
            let name = p.pointer("/activity/name").and_then(Value::as_str).unwrap_or("probe").to_owned();
            Some(VerdictView { t_ms: at(p, "end")?, name, met })
        })
        .collect();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
    ExperimentView {
        id,
        title: text(journal.pointer("/experiment/title")),
        status: text(journal.get("status")),
        phases,
        verdicts,
    }
}

/// Milliseconds since the run's start of an RFC 3339 time (0 when before the start or unreadable).
pub fn ms_since(run: &RunInfo, iso: &str) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(iso).ok()?.timestamp_millis();
    Some(u64::try_from(t - run.start_ms).unwrap_or(0))
}

/// The faults of `records` as seen at `at`.
pub fn fault_views(run: &RunInfo, records: &[FaultRecord], at: u64) -> Vec<FaultView> {
    records
        .iter()
        .filter(|r| r.applied_ms <= at)
        .map(|r| {
            let ended = r.ended_at.as_deref().and_then(|e| ms_since(run, e)).filter(|&e| e <= at);
            FaultView {
                id: r.id.clone(),
                kind: r.kind.clone(),
                targets: r.targets.clone(),
                selector: r.selector.clone(),
                parameters: r.parameters.clone(),
                applied_ms: r.applied_ms,
                ended_ms: ended,
                status: if ended.is_some() { r.status.clone() } else { "active".into() },
                origin: r.origin.clone(),
            }
        })
        .collect()
}

/// The whole state at `at`.
pub fn state_at(source: &dyn Source, at: u64) -> StateView {
    let run = source.run();
    let records = source.faults_at(at);
    let faults = fault_views(run, &records, at);
    let active: Vec<&FaultView> = faults.iter().filter(|f| f.ended_ms.is_none()).collect();
    let under_fault = |name: &str| active.iter().any(|f| f.targets.iter().any(|t| t == name));
    let nodes: BTreeMap<&str, &NodeInfo> = run.components.iter().map(|n| (n.name.as_str(), n)).collect();
    let components = source
        .health_at(at)
        .into_iter()
        .map(|(name, h)| {
            let node = nodes.get(name.as_str());
            let state = h.state.as_str().to_owned();
            let health = if state != "running" {
                "down"
            } else if h.paused || !h.ready || under_fault(&name) {
                "degraded"
            } else {
                "ok"
            };
            ComponentView {
                kind: node.map(|n| n.kind.clone()).unwrap_or_default(),
                lane: node.map(|n| n.namespace.clone()).unwrap_or_default(),
                namespace: node.map(|n| n.namespace.clone()).unwrap_or_default(),
                labels: node.map(|n| n.labels.clone()).unwrap_or_default(),
                name,
                state,
                ready: h.ready,
                paused: h.paused,
                restarts: h.restarts,
                detail: h.detail,
                health,
            }
        })
        .collect();
    let counters = link_counters(source.history(), run.start_ms + at as i64);
    let links = run
        .links
        .iter()
        .map(|l| {
            let c = counters.get(&l.name).cloned().unwrap_or_default();
            LinkView {
                name: l.name.clone(),
                from: l.from.clone(),
                to: l.to.clone(),
                rate: c.rate,
                delivered: c.delivered as u64,
                dropped: c.dropped as u64,
                faulty: under_fault(&l.name),
            }
        })
        .collect();
    let incidents = incident_views(run, &records, &source.incidents_at(at));
    StateView { at_ms: at, components, links, faults, incidents }
}

/// Incidents with the faults that explain them (the ground truth's matching).
pub fn incident_views(
    run: &RunInfo,
    faults: &[FaultRecord],
    incidents: &[IncidentSeen],
) -> Vec<IncidentView> {
    let truth = crate::chaos::truth::ground_truth(faults, incidents);
    incidents
        .iter()
        .map(|i| IncidentView {
            t_ms: u64::try_from(i.at_ms - run.start_ms).unwrap_or(0),
            name: i.name.clone(),
            components: i.components.clone(),
            faults: truth
                .faults
                .iter()
                .filter(|f| f.detections.iter().any(|d| d.incident == i.name && d.at == i.date_time))
                .map(|f| f.fault.clone())
                .collect(),
        })
        .collect()
}

#[derive(Clone, Default)]
struct LinkCounters {
    rate: f64,
    delivered: f64,
    dropped: f64,
}

/// Per link: the delivery rate and the delivered and dropped totals at `t_ms` (epoch), from the history.
fn link_counters(history: &History, t_ms: i64) -> BTreeMap<String, LinkCounters> {
    let mut out: BTreeMap<String, LinkCounters> = BTreeMap::new();
    let queries = [
        format!("rate(chaoslab_link_messages_total{{outcome=\"delivered\"}}[{RATE_WINDOW}])"),
        "chaoslab_link_messages_total{outcome=\"delivered\"}".to_owned(),
        "sum by (link) (chaoslab_link_messages_total{outcome=~\"dropped_.*\"})".to_owned(),
    ];
    history.with_db(|db| {
        for (i, q) in queries.iter().enumerate() {
            let Ok(promql::Value::Vector(samples)) = promql::query(q, db, t_ms) else { continue };
            for s in samples {
                let Some(link) = s.labels.get("link") else { continue };
                let c = out.entry(link.clone()).or_default();
                match i {
                    0 => c.rate = s.value,
                    1 => c.delivered = s.value,
                    _ => c.dropped = s.value,
                }
            }
        }
    });
    out
}
