//! `chaoslab mesh check|run|apply|delete|pause|resume|list|events`: Chaos Mesh files, checked against a
//! flow, run in virtual time, or sent to a live instance.
//!
//! `check` lists every problem of every file (`file:line:key: message`) and what each selector matches
//! in the flow; `run --sim` builds the flow's pipeline in this process, creates every object at the
//! start, runs for `--for` of virtual time, deletes what is left (recovering its faults), and prints the
//! events, the ground truth (each fault with the object that caused it, and the incidents it explains)
//! and the run's summary. Events also go to `<out>/mesh-events.jsonl`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::Value;

use super::PipelineArgs;
use super::fault::Target;
use chaoslab::chaos::truth::{self, GroundTruth};
use chaoslab::config::{Problem, Problems};
use chaoslab::mesh::events::{EventType, MeshEvent};
use chaoslab::mesh::select::{self, Pod};
use chaoslab::mesh::{Loaded, load_files};
use chaoslab::topology::flow::Flow;

/// `chaoslab mesh …`.
#[derive(Subcommand)]
pub enum MeshCommand {
    /// Check Chaos Mesh files: every problem with file:line:key, and the components each selector matches.
    Check(CheckArgs),
    /// Run Chaos Mesh files against the pipeline in virtual time (--sim).
    Run(Box<RunArgs>),
    /// Create the objects of files in a live instance.
    Apply {
        /// Chaos Mesh files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Delete an object (uid, name, namespace/name or Kind/namespace/name) in a live instance.
    Delete {
        /// Which object.
        object: String,
        #[command(flatten)]
        target: Target,
    },
    /// Pause a chaos or a Schedule in a live instance.
    Pause {
        /// Which object.
        object: String,
        #[command(flatten)]
        target: Target,
    },
    /// Resume a paused chaos or Schedule in a live instance.
    Resume {
        /// Which object.
        object: String,
        #[command(flatten)]
        target: Target,
    },
    /// List the objects of a live instance.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Print the events of a live instance (of one object when given).
    Events {
        /// Which object.
        object: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

impl MeshCommand {
    /// True for a sim run (quieter logs).
    pub fn is_sim(&self) -> bool {
        matches!(self, MeshCommand::Run(a) if a.sim)
    }
}

/// `mesh check`.
#[derive(Args)]
pub struct CheckArgs {
    /// Chaos Mesh files (YAML or JSON; several objects per file separated by `---`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The flow whose components the selectors should match (default: the built-in reference flow).
    #[arg(long)]
    pub flow: Option<PathBuf>,
}

/// `mesh run`.
#[derive(Args)]
pub struct RunArgs {
    /// Chaos Mesh files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Run the pipeline in virtual time in this process (the only mode so far).
    #[arg(long)]
    pub sim: bool,
    /// Virtual time to run after creating the objects.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Runs a `mesh` command.
pub fn execute(command: MeshCommand) -> anyhow::Result<ExitCode> {
    match command {
        MeshCommand::Check(a) => check(a),
        MeshCommand::Run(a) => run(*a),
        live => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(remote(live))
        }
    }
}

const COLLECTIONS: [&str; 3] = ["experiments", "schedules", "workflows"];

/// Every object of the instance, with the collection it is listed in.
async fn objects(target: &Target) -> anyhow::Result<Vec<(&'static str, Value)>> {
    let mut out = Vec::new();
    for c in COLLECTIONS {
        let (status, body) = target.request(Method::GET, &format!("/api/{c}"), None).await?;
        anyhow::ensure!(status == 200, "GET /api/{c}: {status} {body}");
        for item in body.as_array().cloned().unwrap_or_default() {
            out.push((c, item));
        }
    }
    Ok(out)
}

/// The object `which` names: a uid, `name`, `namespace/name` or `Kind/namespace/name`; the newest when a
/// name was used more than once.
async fn resolve(target: &Target, which: &str) -> anyhow::Result<(&'static str, Value)> {
    let all = objects(target).await?;
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let matches = |v: &Value| {
        let (kind, ns, name) = (text(v, "kind"), text(v, "namespace"), text(v, "name"));
        which == text(v, "uid")
            || which == name
            || which == format!("{ns}/{name}")
            || which == format!("{kind}/{ns}/{name}")
    };
    let found: Vec<(&'static str, Value)> = all.into_iter().filter(|(_, v)| matches(v)).collect();
    let kinds: std::collections::BTreeSet<String> = found
        .iter()
        .map(|(_, v)| format!("{}/{}/{}", text(v, "kind"), text(v, "namespace"), text(v, "name")))
        .collect();
    match (found.last(), kinds.len()) {
        (None, _) => anyhow::bail!("no object {which:?} (see `chaoslab mesh list`)"),
        (Some(_), n) if n > 1 => {
            let listed: Vec<String> = kinds.into_iter().collect();
            anyhow::bail!("{which:?} is ambiguous: {}", listed.join(", "))
        }
        (Some(f), _) => Ok(f.clone()),
    }
}

async fn remote(command: MeshCommand) -> anyhow::Result<ExitCode> {
    match command {
        MeshCommand::Apply { files, target } => {
            let mut failed = false;
            for file in &files {
                // Jsonnet is rendered here; the instance takes YAML or JSON.
                let text = if file.extension().is_some_and(|e| e == "jsonnet") {
                    let documents = chaoslab::mesh::jsonnet::render(file)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                    let texts: Vec<String> = documents.into_iter().map(|(_, json)| json).collect();
                    texts.join("\n---\n").into_bytes()
                } else {
                    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?
                };
                let (status, body) = target.request(Method::POST, "/api/experiments", Some(text)).await?;
                if status == 201 {
                    for w in body["warnings"].as_array().into_iter().flatten() {
                        eprintln!("{}: {}", file.display(), w.as_str().unwrap_or_default());
                    }
                    for o in body["created"].as_array().into_iter().flatten() {
                        println!(
                            "{} {}/{} created (uid {})",
                            o["kind"].as_str().unwrap_or(""),
                            o["namespace"].as_str().unwrap_or(""),
                            o["name"].as_str().unwrap_or(""),
                            o["uid"].as_str().unwrap_or("")
                        );
                    }
                } else {
                    failed = true;
                    eprintln!(
                        "{}: {status} {}",
                        file.display(),
                        body["error"].as_str().unwrap_or(&body.to_string())
                    );
                    for p in body["problems"].as_array().into_iter().flatten() {
                        eprintln!("{}: {}", file.display(), p.as_str().unwrap_or_default());
                    }
                }
            }
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        MeshCommand::Delete { object, target } => {
            let (c, v) = resolve(&target, &object).await?;
            let uid = v["uid"].as_str().unwrap_or_default();
            let (status, body) = target.request(Method::DELETE, &format!("/api/{c}/{uid}"), None).await?;
            anyhow::ensure!(status == 200, "{status} {body}");
            println!(
                "{} {}/{} deleted",
                v["kind"].as_str().unwrap_or(""),
                v["namespace"].as_str().unwrap_or(""),
                v["name"].as_str().unwrap_or("")
            );
            Ok(ExitCode::SUCCESS)
        }
        MeshCommand::Pause { object, target } => set_paused(&target, &object, true).await,
        MeshCommand::Resume { object, target } => set_paused(&target, &object, false).await,
        MeshCommand::List { target } => {
            for (_, v) in objects(&target).await? {
                let owner = v["owner"].as_str().map(|o| format!(" (created by {o})")).unwrap_or_default();
                println!(
                    "{:<13} {:<40} {:<9} {} {}{owner}",
                    v["kind"].as_str().unwrap_or(""),
                    format!("{}/{}", v["namespace"].as_str().unwrap_or(""), v["name"].as_str().unwrap_or("")),
                    v["status"].as_str().unwrap_or(""),
                    v["created_at"].as_str().unwrap_or(""),
                    v["uid"].as_str().unwrap_or(""),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        MeshCommand::Events { object, target } => {
            let query = match &object {
                Some(o) => {
                    let (_, v) = resolve(&target, o).await?;
                    format!("?object_id={}", v["uid"].as_str().unwrap_or_default())
                }
                None => String::new(),
            };
            let (status, body) = target.request(Method::GET, &format!("/api/events{query}"), None).await?;
            anyhow::ensure!(status == 200, "{status} {body}");
            let events: Vec<MeshEvent> = serde_json::from_value(body).context("reading the events")?;
            for e in &events {
                print_event(e);
            }
            Ok(ExitCode::SUCCESS)
        }
        MeshCommand::Check(_) | MeshCommand::Run(_) => {
            anyhow::bail!("internal: check and run are not live commands")
        }
    }
}

async fn set_paused(target: &Target, object: &str, paused: bool) -> anyhow::Result<ExitCode> {
    let (c, v) = resolve(target, object).await?;
    let uid = v["uid"].as_str().unwrap_or_default();
    let verb = if paused { "pause" } else { "start" };
    let (status, body) = target.request(Method::PUT, &format!("/api/{c}/{verb}/{uid}"), None).await?;
    anyhow::ensure!(status == 200, "{status} {}", body["error"].as_str().unwrap_or(&body.to_string()));
    println!(
        "{} {}/{} {}",
        v["kind"].as_str().unwrap_or(""),
        v["namespace"].as_str().unwrap_or(""),
        v["name"].as_str().unwrap_or(""),
        if paused { "paused" } else { "resumed" }
    );
    Ok(ExitCode::SUCCESS)
}

fn print_event(e: &MeshEvent) {
    let mark = if e.event_type == EventType::Warning { " (warning)" } else { "" };
    let targets = if e.targets.is_empty() { String::new() } else { format!(" [{}]", e.targets.join(", ")) };
    println!("  {} {} {} {}{mark}: {}{targets}", e.time, e.kind, e.object, e.reason, e.message);
}

fn flow_of(path: Option<&PathBuf>) -> anyhow::Result<Flow> {
    Ok(match path {
        Some(p) => chaoslab::catalog::load_flow(p)?,
        None => chaoslab::catalog::reference_flow()?,
    })
}

fn print_problems(problems: &Problems) {
    let mut sorted = problems.clone();
    sorted.sort_by_line();
    for p in sorted.all() {
        eprintln!("{p}");
    }
}

fn count(problems: &[&Problem]) -> String {
    match problems.len() {
        1 => "1 error".into(),
        n => format!("{n} errors"),
    }
}

fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let flow = flow_of(a.flow.as_ref())?;
    let pods = select::pods_of_flow(&flow);
    let mut problems = Problems::new();
    let loaded = load_files(&a.files, Some(&pods), &mut problems);
    print_problems(&problems);
    let errors: Vec<&Problem> = problems.errors().collect();
    for l in &loaded {
        println!("{} {} ({})", l.object.kind, l.object.key(), l.object.origin);
        for (label, sel) in l.plan.selectors() {
            let matched = select::filter(&sel.selector, l.object.metadata.namespace(), &pods);
            let names: Vec<&str> = matched.iter().map(|p| p.name.as_str()).collect();
            let mode = select::mode_name(sel.mode);
            let value = sel.value.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
            let listed = if names.is_empty() { "no pod".to_string() } else { names.join(", ") };
            println!("  {label}: mode {mode}{value} of {listed}");
        }
    }
    if errors.is_empty() {
        println!("{} object(s) valid, {} warning(s)", loaded.len(), problems.warnings().count());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} in {} file(s); nothing would start", count(&errors), a.files.len());
        Ok(ExitCode::from(1))
    }
}

/// What a run leaves for printing.
struct Outcome {
    events: Vec<MeshEvent>,
    truth: GroundTruth,
}

/// Keeps the run in the execution store: the files, the events and the ground truth. It passed when every
/// fault it caused was detected and no incident went unexplained.
fn keep(
    files: &[std::path::PathBuf],
    out: &std::path::Path,
    summary: &chaoslab::runner::summary::RunSummary,
    o: &Outcome,
) {
    use chaoslab::dashboard::view::{RUN_FILE, RunInfo};
    let Some(store) = chaoslab::executions::Store::open_default() else { return };
    let run: Option<RunInfo> =
        std::fs::read_to_string(out.join(RUN_FILE)).ok().and_then(|t| serde_json::from_str(&t).ok());
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let truth = serde_json::to_value(&o.truth).unwrap_or_default();
    let passed = o.truth.faults.iter().all(|f| !f.detections.is_empty()) && o.truth.unexplained.is_empty();
    let execution = chaoslab::executions::Execution {
        id: 0,
        kind: chaoslab::executions::Kind::Mesh,
        title: names.join(", "),
        status: "completed".into(),
        passed: Some(passed),
        started: run.map(|r| r.start_time).unwrap_or_default(),
        ended: None,
        source: "cli".into(),
        command: chaoslab::executions::this_command(),
        origin: out.display().to_string(),
        resilience: None,
        ground_truth: Some(truth),
        journal: serde_json::json!({"files": names, "events": o.events, "seed": summary.seed,
                                    "simulated_secs": summary.simulated_secs}),
    };
    store.record(&execution);
}

fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        a.sim,
        "mesh run needs --sim (virtual time, in this process); running against a live instance is not available yet"
    );
    let flow = a.pipeline.flow()?;
    let pods: Vec<Pod> = select::pods_of_flow(&flow);
    let mut problems = Problems::new();
    let loaded: Vec<Loaded> = load_files(&a.files, Some(&pods), &mut problems);
    print_problems(&problems);
    let errors: Vec<&Problem> = problems.errors().collect();
    if !errors.is_empty() {
        eprintln!("{}; nothing started", count(&errors));
        return Ok(ExitCode::from(1));
    }
    let slot: Arc<Mutex<Option<Outcome>>> = Arc::default();
    let out = slot.clone();
    let duration = a.duration;
    let summary = a.pipeline.run(flow).sim_with(move |p| async move {
        for l in &loaded {
            if let Err(e) = p.mesh.create(&p, l) {
                eprintln!("{}: {e}", l.object.origin);
            }
        }
        tokio::time::sleep(duration).await;
        p.mesh.shutdown().await;
        let incidents = chaoslab::reasoning::incident_reasoner::incidents(&p);
        let truth = truth::ground_truth(&p.faults.all(), &incidents);
        *out.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Outcome { events: p.mesh.events(), truth });
        Ok(())
    })?;
    let outcome = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(o) = &outcome {
        keep(&a.files, &a.pipeline.out, &summary, o);
    }
    if let Some(o) = outcome {
        println!("Chaos Mesh events ({}):", o.events.len());
        for e in &o.events {
            print_event(e);
        }
        println!("Ground truth ({} faults):", o.truth.faults.len());
        for f in &o.truth.faults {
            let detected: Vec<String> = f
                .detections
                .iter()
                .map(|d| format!("{} after {:.1}s", d.incident, d.time_to_detect_secs))
                .collect();
            println!(
                "  {} {} {} on {} by {}: {}",
                f.applied_at,
                f.fault,
                f.kind,
                f.targets.join(", "),
                f.origin.as_deref().unwrap_or("a user"),
                if detected.is_empty() { "undetected".to_string() } else { detected.join("; ") }
            );
        }
        if !o.truth.unexplained.is_empty() {
            println!("  {} incident(s) no fault explains", o.truth.unexplained.len());
        }
    }
    println!("{}", summary.render());
    Ok(ExitCode::SUCCESS)
}
