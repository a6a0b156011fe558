//! `chaoslab mesh check|run`: Chaos Mesh files, checked against a flow and run in virtual time.
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

use clap::{Args, Subcommand};

use super::PipelineArgs;
use chaoslab::chaos::truth::{self, GroundTruth};
use chaoslab::config::{Problem, Problems};
use chaoslab::mesh::events::{EventType, Events, MeshEvent};
use chaoslab::mesh::select::{self, Pod};
use chaoslab::mesh::{Engine, Loaded, load_files};
use chaoslab::topology::flow::Flow;

/// `chaoslab mesh …`.
#[derive(Subcommand)]
pub enum MeshCommand {
    /// Check Chaos Mesh files: every problem with file:line:key, and the components each selector matches.
    Check(CheckArgs),
    /// Run Chaos Mesh files against the pipeline in virtual time (--sim).
    Run(Box<RunArgs>),
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
    }
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
        let events = Arc::new(Events::new(p.clock.clone(), p.trace.clone(), &p.metrics, Some(&p.out))?);
        let engine = Engine::new(p.clone(), events);
        for l in &loaded {
            engine.create(l);
        }
        tokio::time::sleep(duration).await;
        engine.shutdown().await;
        let incidents = chaoslab::reasoning::incident_reasoner::incidents(&p);
        let truth = truth::ground_truth(&p.faults.all(), &incidents);
        *out.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Outcome { events: engine.events().all(), truth });
        Ok(())
    })?;
    let outcome = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(o) = outcome {
        println!("Chaos Mesh events ({}):", o.events.len());
        for e in &o.events {
            let mark = if e.event_type == EventType::Warning { " (warning)" } else { "" };
            let targets =
                if e.targets.is_empty() { String::new() } else { format!(" [{}]", e.targets.join(", ")) };
            println!("  {} {} {} {}{mark}: {}{targets}", e.time, e.kind, e.object, e.reason, e.message);
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
