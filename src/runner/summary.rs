//! What a run amounts to: per-component and per-link counts, what the stages produced, the trace digest.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::analytics::kmeans::SparkProbe;
use crate::analytics::kmeans::model::KMeansResult;
use crate::bus::BusStats;
use crate::bus::kafka_cluster::BusHandle;
use crate::kernel::trace::TraceSummary;
use crate::orders::service::{Invariants, OrderDb};
use crate::sinks::document_index::{IndexInfo, IndexStore};
use crate::topology::{Pipeline, RunMode};
use crate::transforms::count_window_average::WindowState;
use crate::transport::link::LinkStats;

/// One component's counts.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentSummary {
    /// Final state.
    pub state: String,
    /// Restarts.
    pub restarts: u64,
    /// Records in.
    pub records_in: u64,
    /// Records out.
    pub records_out: u64,
    /// Records dropped.
    pub records_dropped: u64,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// Pipeline name.
    pub pipeline: String,
    /// Live or sim.
    pub mode: RunMode,
    /// Root seed.
    pub seed: u64,
    /// Run time on the run's clock (virtual in sim mode).
    pub simulated_secs: f64,
    /// Wall-clock time the run took.
    pub wall_secs: f64,
    /// Simulated seconds per wall second.
    pub compression: f64,
    /// Whether every in-flight message was delivered before the end.
    pub drained: bool,
    /// Components by name.
    pub components: BTreeMap<String, ComponentSummary>,
    /// Links.
    pub links: BTreeMap<String, LinkStats>,
    /// Windows emitted by count-window stages.
    pub windows_written: u64,
    /// Records waiting in open windows at the end.
    pub open_window_records: u64,
    /// Indices and their sizes.
    pub indices: Vec<IndexInfo>,
    /// Files written by file stores.
    pub stored_files: u64,
    /// Lines appended to flat files.
    pub flat_file_lines: u64,
    /// The last k-means model per stage.
    pub kmeans: BTreeMap<String, Option<KMeansResult>>,
    /// Per stage whose last job failed or was cut off: why (its model, if any, is from an earlier job).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kmeans_problems: BTreeMap<String, String>,
    /// The order services, when the flow runs them.
    pub orders: Option<OrdersSummary>,
    /// The mined process models, by miner (when the flow mines).
    pub process_models: BTreeMap<String, ProcessModelSummary>,
    /// Incidents the reasoner reported (when monitoring runs).
    pub incidents: Vec<crate::reasoning::incident_reasoner::IncidentSeen>,
    /// Faults applied and the incidents each explains; incidents no fault explains.
    pub ground_truth: crate::chaos::truth::GroundTruth,
    /// Trace size and digest.
    pub trace: TraceSummary,
}

/// What a heuristics miner produced.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessModelSummary {
    /// Events its instances counted.
    pub events: u64,
    /// Models published.
    pub refreshes: u64,
    /// Activities and edges of the merged model.
    pub activities: usize,
    /// Edges of the merged model.
    pub edges: usize,
    /// The latest quality figures (with a conformance checker).
    pub quality: Option<crate::process_mining::heuristics_miner::Quality>,
}

/// What the order services did.
#[derive(Clone, Debug, Serialize)]
pub struct OrdersSummary {
    /// The run's invariants, checked against the store at the end.
    pub invariants: Invariants,
    /// New orders whose produce failed (they stayed pending).
    pub publish_failures: u64,
    /// The bus at the end.
    pub bus: BusStats,
}

impl OrdersSummary {
    /// Collects the order summary of a drained pipeline whose store still runs (`None` without an order
    /// store).
    pub async fn collect(p: &Pipeline) -> anyhow::Result<Option<OrdersSummary>> {
        let Some(db) = p.handles.first::<OrderDb>() else { return Ok(None) };
        let invariants = db.invariants().await?;
        let bus = p.handles.first::<BusHandle>().map(|b| b.bus.stats()).unwrap_or_default();
        Ok(Some(OrdersSummary {
            invariants,
            publish_failures: p.metrics.total("poke_order_publish_failures_total") as u64,
            bus,
        }))
    }
}

impl RunSummary {
    /// Collects the summary of a finished pipeline.
    pub fn collect(
        p: &Pipeline,
        wall_secs: f64,
        drained: bool,
        orders: Option<OrdersSummary>,
        trace: TraceSummary,
    ) -> RunSummary {
        let mut components = BTreeMap::new();
        for (name, h) in p.supervisor.health_all() {
            let m = p.metrics.component(&name);
            let state = serde_json::to_value(h.state).ok().and_then(|v| v.as_str().map(String::from));
            components.insert(
                name,
                ComponentSummary {
                    state: state.unwrap_or_default(),
                    restarts: h.restarts,
                    records_in: m.records_in.get(),
                    records_out: m.records_out.get(),
                    records_dropped: m.dropped_total(),
                },
            );
        }
        let simulated_secs = p.clock.elapsed().as_secs_f64();
        let out_of = |kind: &str| -> u64 {
            let names = p.flow.components.iter().filter(|(_, c)| c.kind() == kind);
            names.map(|(n, _)| components.get(n).map_or(0, |c: &ComponentSummary| c.records_out)).sum()
        };
        let (windows_written, stored_files, flat_file_lines) =
            (out_of("count-window-average"), out_of("file-store"), out_of("quality-gate"));
        let incidents = crate::reasoning::incident_reasoner::incidents(p);
        let ground_truth = crate::chaos::truth::ground_truth(&p.faults.all(), &incidents);
        RunSummary {
            pipeline: p.flow.pipeline.name.clone(),
            mode: p.mode,
            seed: p.seed.0,
            simulated_secs,
            wall_secs,
            compression: if wall_secs > 0.0 { simulated_secs / wall_secs } else { 0.0 },
            drained,
            components,
            links: p.links.iter().map(|(n, l)| (n.clone(), l.stats())).collect(),
            windows_written,
            open_window_records: p.handles.all::<WindowState>().iter().map(|(_, w)| w.pending() as u64).sum(),
            indices: p.handles.all::<IndexStore>().iter().flat_map(|(_, i)| i.list()).collect(),
            stored_files,
            flat_file_lines,
            kmeans: p
                .handles
                .all::<SparkProbe>()
                .into_iter()
                .map(|(n, probe)| (n.to_string(), probe.latest().and_then(|r| r.result)))
                .collect(),
            kmeans_problems: p
                .handles
                .all::<SparkProbe>()
                .into_iter()
                .filter_map(|(n, probe)| Some((n.to_string(), probe.problem()?)))
                .collect(),
            orders,
            process_models: p
                .handles
                .all::<crate::process_mining::heuristics_miner::ModelBoard>()
                .into_iter()
                .map(|(n, b)| {
                    let g = b.model();
                    let s = ProcessModelSummary {
                        events: g.events,
                        refreshes: b.refreshes(),
                        activities: g.activities.len(),
                        edges: g.edges.len(),
                        quality: b.quality(),
                    };
                    (n.to_string(), s)
                })
                .collect(),
            incidents,
            ground_truth,
            trace,
        }
    }

    /// The human-readable form; the last line is `trace-digest: <hex>`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mode = match self.mode {
            RunMode::Sim => "sim",
            RunMode::Live => "live",
        };
        let _ = writeln!(s, "chaoslab {mode} run of '{}' (seed {})", self.pipeline, self.seed);
        let drained = if self.drained { "" } else { "; NOT fully drained" };
        let _ = match self.mode {
            RunMode::Sim => writeln!(
                s,
                "  time: {:.1} s simulated in {:.3} s wall ({:.0}x){drained}",
                self.simulated_secs, self.wall_secs, self.compression,
            ),
            RunMode::Live => writeln!(s, "  time: {:.1} s{drained}", self.wall_secs),
        };
        let width = self.components.keys().map(|n| n.chars().count()).max().unwrap_or(0).max(14);
        let row = |s: &mut String, a: &str, b: &str, c: &str, d: &str, e: &str, f: &str| {
            let _ = writeln!(s, "  {a:<width$} {b:<10} {c:>9} {d:>9} {e:>9} {f:>8}");
        };
        row(&mut s, "component", "state", "in", "out", "dropped", "restarts");
        for (name, c) in &self.components {
            let n = |x: u64| x.to_string();
            row(
                &mut s,
                name,
                &c.state,
                &n(c.records_in),
                &n(c.records_out),
                &n(c.records_dropped),
                &n(c.restarts),
            );
        }
        // sent + duplicated = delivered + dropped (+ in flight, when not drained): every row adds up.
        let width = self.links.keys().map(|n| n.chars().count()).max().unwrap_or(0).max(26);
        let _ = writeln!(
            s,
            "  {:<width$} {:>9} {:>10} {:>9} {:>9}",
            "link", "sent", "duplicated", "delivered", "dropped"
        );
        for (name, l) in &self.links {
            let _ = writeln!(
                s,
                "  {:<width$} {:>9} {:>10} {:>9} {:>9}",
                name,
                l.sent,
                l.duplicated,
                l.delivered,
                l.dropped()
            );
        }
        let _ = writeln!(
            s,
            "  windows written: {} ({} records waiting in open windows)",
            self.windows_written, self.open_window_records
        );
        for i in &self.indices {
            let _ = writeln!(s, "  index {}: {} documents", i.name, i.docs);
        }
        let _ =
            writeln!(s, "  stored files: {}; flat-file lines: {}", self.stored_files, self.flat_file_lines);
        for (name, k) in &self.kmeans {
            match k {
                Some(r) => {
                    let centres: Vec<String> =
                        r.centres.iter().map(|c| format!("({:.2}, {:.2})", c[0], c[1])).collect();
                    let sil = r.silhouette.map_or("n/a".to_string(), |x| format!("{x:.4}"));
                    let sample = if r.fitted_on < r.points {
                        format!(" (fitted on a sample of {})", r.fitted_on)
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        s,
                        "  {name} k-means: k={} over {} points{sample}; centres (humidity, temperature) {}; sizes {:?}; silhouette {sil}",
                        r.k,
                        r.points,
                        centres.join(" "),
                        r.cluster_sizes
                    );
                    if let Some(problem) = self.kmeans_problems.get(name) {
                        let _ = writeln!(s, "    (from an earlier job: {problem})");
                    }
                }
                None => match self.kmeans_problems.get(name) {
                    Some(problem) => {
                        let _ = writeln!(s, "  {name} k-means: no model ({problem})");
                    }
                    None => {
                        let _ = writeln!(s, "  {name} k-means: no model (too few records)");
                    }
                },
            }
        }
        if let Some(o) = &self.orders {
            let i = &o.invariants;
            let states: Vec<String> = i.by_state.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(
                s,
                "  orders: {} created; {}; {} publish failures",
                i.created,
                states.join(", "),
                o.publish_failures
            );
            let verdict = if i.ok { "hold".to_string() } else { "VIOLATED".to_string() };
            let _ = writeln!(
                s,
                "  order invariants {verdict}: {} in flight, {} missing, {} decided against the fraud rule, {} illegal transitions",
                i.in_flight,
                i.missing.len(),
                i.wrong_decision.len(),
                i.illegal_transitions.len()
            );
            let _ = writeln!(
                s,
                "  bus: {} records produced, {} fetched, {} offline partitions",
                o.bus.records_produced, o.bus.records_fetched, o.bus.offline_partitions
            );
        }
        for (name, m) in &self.process_models {
            let _ = write!(
                s,
                "  {name} process model: {} events, {} refreshes, {} activities, {} edges",
                m.events, m.refreshes, m.activities, m.edges
            );
            match &m.quality {
                Some(q) => {
                    let opt = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.3}"));
                    let _ = writeln!(
                        s,
                        "; edge precision {:.3}, recall {:.3}; fitness {}, precision {} on {} held-out cases",
                        q.edge_precision,
                        q.edge_recall,
                        opt(q.fitness),
                        opt(q.precision),
                        q.held_out
                    );
                }
                None => {
                    let _ = writeln!(s);
                }
            }
        }
        if !self.incidents.is_empty() || !self.ground_truth.faults.is_empty() {
            let _ = writeln!(s, "  incidents reported: {}", self.incidents.len());
            for f in &self.ground_truth.faults {
                let detected: Vec<String> = f
                    .detections
                    .iter()
                    .map(|d| format!("{} after {:.1} s", d.incident, d.time_to_detect_secs))
                    .collect();
                let verdict =
                    if detected.is_empty() { "not detected".to_string() } else { detected.join(", ") };
                let _ = writeln!(s, "  fault {} {} on {}: {verdict}", f.fault, f.kind, f.targets.join(","));
            }
            for i in &self.ground_truth.unexplained {
                let _ = writeln!(s, "  incident no fault explains: {} at {}", i.name, i.date_time);
            }
        }
        let _ = writeln!(s, "  trace: {} events", self.trace.events);
        let _ = write!(s, "trace-digest: {}", self.trace.digest);
        s
    }
}
