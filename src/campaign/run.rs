//! Running a campaign: one sim run per point and seed, on a pool of threads (`-j`), each run
//! single-threaded in virtual time. A run leaves `runs/<name>_<point>_<seed>.csv` (the captured series in
//! the wizard's format), `runs/<id>/` (its outputs, with `mesh-events.jsonl`), `runs/<id>.truth.json`
//! (the fault windows) and last `runs/<id>.json` (its analysis): a campaign that is run again keeps the
//! runs that have that file and does only the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::analysis::{self, RunResult};
use super::capture::{self, Captured, Firing, Plan};
use super::detect::Window;
use super::grid::{self, Grid, Value};
use super::series;
use super::spec::Campaign;
use super::target::{ChaosDoc, Local, Remote};
use crate::chaos::experiment::VarOverrides;
use crate::config::Problems;
use crate::mesh::load::Loaded;
use crate::mesh::schema::Spec;
use crate::mesh::select::{Pod, pods_of_flow};
use crate::runner::Run;
use crate::topology::flow::Flow;

/// One run of the campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunId {
    /// `<name>_<point>_<seed>`.
    pub id: String,
    /// The point's values by parameter.
    pub point: BTreeMap<String, String>,
    /// The first parameter's value as a number (for plots and the regression).
    pub x: Option<f64>,
    /// The seed.
    pub seed: u64,
    #[serde(skip)]
    values: Vec<Value>,
}

impl RunId {
    /// A run captured elsewhere (`campaign analyse`), named after its file.
    pub fn external(name: &str) -> RunId {
        RunId { id: name.to_string(), point: BTreeMap::new(), x: None, seed: 0, values: Vec::new() }
    }
}

/// Every run of a campaign, points in grid order, seeds within a point.
pub fn plan(c: &Campaign) -> anyhow::Result<Vec<RunId>> {
    let grid = Grid::new(&c.grid).map_err(|(k, e)| anyhow::anyhow!("grid.{k}: {e}"))?;
    let seeds = c.runs.seeds.expand().map_err(|e| anyhow::anyhow!("runs.seeds: {e}"))?;
    anyhow::ensure!(
        grid.points.len().saturating_mul(seeds.len()) <= super::spec::MAX_RUNS,
        "{} points × {} seeds is more than {} runs",
        grid.points.len(),
        seeds.len(),
        super::spec::MAX_RUNS
    );
    let mut out = Vec::new();
    for values in &grid.points {
        for &seed in &seeds {
            out.push(RunId {
                id: format!("{}_{}_{seed}", c.name, Grid::label(values)),
                point: grid.names.iter().cloned().zip(values.iter().map(|v| v.text.clone())).collect(),
                x: values.first().and_then(|v| v.number),
                seed,
                values: values.clone(),
            });
        }
    }
    Ok(out)
}

/// The campaign's chaos files for one point, with its values in; checked against `pods` (the flow's,
/// for sim runs; a live target checks them itself).
fn chaos_for(c: &Campaign, pods: Option<&[Pod]>, run: &RunId) -> anyhow::Result<Vec<ChaosDoc>> {
    let names: Vec<String> = run.point.keys().cloned().collect();
    let mut problems = Problems::new();
    let mut docs = Vec::new();
    for f in &c.chaos.mesh {
        let path = c.dir.join(f);
        if f.extension().is_some_and(|e| e == "jsonnet") {
            // Jsonnet templates take the point as external variables (`std.extVar("latency")`).
            let vars: Vec<(String, String)> = run.point.clone().into_iter().collect();
            let documents = crate::mesh::jsonnet::render_with(&path, &vars)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            for (label, json) in documents {
                let origin = format!("{} ({label})", path.display());
                let objects = crate::mesh::load::load_text(&origin, &json, pods, &mut problems);
                docs.push(ChaosDoc { origin, text: json, objects });
            }
        } else {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let text = grid::substitute(&text, &names, &run.values);
            let origin = path.display().to_string();
            let objects = crate::mesh::load::load_text(&origin, &text, pods, &mut problems);
            docs.push(ChaosDoc { origin, text, objects });
        }
    }
    let errors: Vec<String> = problems.errors().map(ToString::to_string).collect();
    anyhow::ensure!(errors.is_empty(), "the chaos files do not load:\n  {}", errors.join("\n  "));
    Ok(docs)
}

/// Whether an object fires on a cron schedule (then it is applied at a "good time", as the wizard does).
fn has_cron(l: &Loaded) -> bool {
    match &l.object.spec {
        Spec::Schedule(_) => true,
        Spec::Workflow(w) => w.templates.iter().any(|t| t.template_type == "Schedule"),
        _ => false,
    }
}

/// What one run of the campaign does at `run`'s point.
fn plan_of(c: &Campaign, pods: Option<&[Pod]>, run: &RunId) -> anyhow::Result<Plan> {
    let docs = chaos_for(c, pods, run)?;
    let cron = docs.iter().flat_map(|d| &d.objects).any(has_cron);
    anyhow::ensure!(
        !cron || c.runs.offset.as_secs().is_multiple_of(60) && c.runs.offset.subsec_nanos() == 0,
        "runs.offset must be whole minutes when the chaos has a cron schedule (the wizard's OFFSET_IN_MINUTES)"
    );
    let names: Vec<String> = run.point.keys().cloned().collect();
    let mut schedule = Vec::new();
    for (i, f) in c.chaos.schedule.iter().enumerate() {
        let request =
            f.request(&names, &run.values).map_err(|e| anyhow::anyhow!("chaos.schedule[{i}]: {e}"))?;
        schedule.push(Firing { at: f.at, every: f.every, request });
    }
    let mut experiments = Vec::new();
    for f in &c.chaos.experiments {
        let path = c.dir.join(f);
        experiments.push(crate::chaos::experiment::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    // The point's values are the experiments' configuration overrides, as `chaos run --var name=value`.
    let mut overrides = VarOverrides::default();
    for (name, value) in &run.point {
        overrides.configuration.insert(name.clone(), serde_json::Value::String(value.clone()));
    }
    Ok(Plan {
        docs,
        schedule,
        experiments,
        overrides,
        captures: c.captures(),
        warmup: c.runs.warmup,
        offset: c.runs.offset,
        number: c.runs.number,
        cron,
    })
}

/// Writes what a run captured and analyses it.
fn finish_run(c: &Campaign, run: &RunId, out: &Path, captured: Captured) -> anyhow::Result<RunResult> {
    let runs = out.join("runs");
    std::fs::create_dir_all(runs.join(&run.id))
        .with_context(|| format!("cannot create {}", runs.display()))?;
    series::write(&runs.join(format!("{}.csv", run.id)), &captured.series)?;
    write_json(&runs.join(format!("{}.truth.json", run.id)), &captured.truth)?;
    for (i, journal) in captured.journals.iter().enumerate() {
        write_json(&runs.join(&run.id).join(format!("journal-{i}.json")), journal)?;
    }
    let mut result =
        analysis::analyse_run(&c.analysis, &c.probes, run, &captured.series, Some(&captured.truth));
    result.warnings.extend(captured.warnings);
    Ok(result)
}

/// Runs one point with one seed in virtual time; writes its files under `out`.
pub fn run_one(c: &Campaign, flow: &Flow, run: &RunId, out: &Path) -> anyhow::Result<RunResult> {
    let plan = plan_of(c, Some(&pods_of_flow(flow)), run)?;
    let env = crate::chaos::execute::SimEnv::for_flow(flow, run.seed);
    let dir = out.join("runs").join(&run.id);
    let queries: Vec<String> = plan.captures.iter().map(|c| c.query.clone()).collect();
    let slot: Arc<Mutex<Option<Captured>>> = Arc::default();
    let seen = slot.clone();
    Run::new(flow.clone())
        .out(&dir)
        .seed(run.seed)
        .trace_in_memory()
        .history(false)
        .sim_with(move |p| async move {
            let mut target = Local::new(p, env, queries);
            let captured = capture::run(&mut target, &plan, Default::default()).await;
            *seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(captured);
            Ok(())
        })
        .with_context(|| format!("run {}", run.id))?;
    let captured =
        slot.lock().unwrap_or_else(PoisonError::into_inner).take().context("the run captured nothing")?;
    finish_run(c, run, out, captured)
}

/// Runs one point against a live target in real time (the seed only numbers the repetition).
pub fn run_live(
    c: &Campaign,
    target: &Remote,
    runtime: &tokio::runtime::Runtime,
    run: &RunId,
    out: &Path,
) -> anyhow::Result<RunResult> {
    let plan = plan_of(c, None, run)?;
    let mut target = target.clone();
    // Ctrl-C ends the capture early; the chaos is removed from the instance either way.
    let cancel = tokio_util::sync::CancellationToken::new();
    let captured = runtime.block_on(async {
        let watch = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    cancel.cancel();
                }
            })
        };
        let captured = capture::run(&mut target, &plan, cancel.clone()).await;
        watch.abort();
        captured
    });
    if cancel.is_cancelled() {
        let problems = captured.warnings.into_iter().filter(|w| w.starts_with("DELETE ")).collect();
        anyhow::bail!(Interrupted(problems));
    }
    finish_run(c, run, out, captured)
}

/// A live campaign stopped by Ctrl-C; what could not be removed from the target, if anything.
#[derive(Debug, thiserror::Error)]
#[error("interrupted (Ctrl-C); the run's chaos was removed from the target{}", removal(.0))]
pub struct Interrupted(pub Vec<String>);

fn removal(problems: &[String]) -> String {
    if problems.is_empty() { String::new() } else { format!(", except: {}", problems.join("; ")) }
}

/// A kept run analysed again from its CSV and ground truth with `analysis` (its result file updated); a
/// run without them is "not run yet".
pub fn reanalyse(
    out: &Path,
    analysis: &super::spec::Analysis,
    probes: &[super::spec::Probe],
    run: &RunId,
) -> RunResult {
    let runs = out.join("runs");
    let marker = runs.join(format!("{}.json", run.id));
    let before: Option<RunResult> = std::fs::read(&marker).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let Some(before) = before else { return RunResult::failed(run, "not run yet".into()) };
    if before.error.is_some() {
        return before;
    }
    let truth: Option<Vec<Window>> = std::fs::read(runs.join(format!("{}.truth.json", run.id)))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let result = match series::read(&runs.join(format!("{}.csv", run.id))) {
        Ok(s) => {
            let mut r = analysis::analyse_run(analysis, probes, run, &s, truth.as_deref());
            r.warnings = before.warnings;
            r
        }
        Err(e) => RunResult::failed(run, e.to_string()),
    };
    if let Err(e) = write_json(&marker, &result) {
        tracing::warn!("{e:#}");
    }
    result
}

/// Writes JSON through a temporary file, so that a file that is there is whole.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value)?;
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// What [`run_all`] reports as runs finish.
pub trait Progress: Sync {
    /// A run started over (`kept` runs were already done).
    fn start(&self, total: usize, kept: usize);
    /// A run ended.
    fn done(&self, result: &RunResult);
}

/// Where the runs happen.
pub enum Mode<'a> {
    /// Sim runs in this process, `jobs` at a time.
    Sim {
        /// Threads.
        jobs: usize,
    },
    /// One after another against a live chaoslab, in real time.
    Live(&'a Remote),
}

/// Runs every run not done yet; returns every run's result in plan order (failed runs included, with
/// their error).
pub fn run_all(
    c: &Campaign,
    out: &Path,
    mode: Mode<'_>,
    progress: &dyn Progress,
) -> anyhow::Result<Vec<RunResult>> {
    let flow = crate::catalog::load_flow(&c.dir.join(&c.flow)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runs = plan(c)?;
    std::fs::create_dir_all(out.join("runs")).with_context(|| format!("cannot create {}", out.display()))?;
    let marker = |r: &RunId| -> PathBuf { out.join("runs").join(format!("{}.json", r.id)) };
    let done: Vec<Option<RunResult>> = runs
        .iter()
        .map(|r| std::fs::read(marker(r)).ok().and_then(|b| serde_json::from_slice(&b).ok()))
        .collect();
    progress.start(runs.len(), done.iter().flatten().count());
    let results: Vec<Mutex<Option<RunResult>>> = done.into_iter().map(Mutex::new).collect();
    let keep = |i: usize, run: &RunId, result: RunResult| {
        // Only a finished run is kept: a failed one is tried again when the campaign runs again.
        if result.error.is_none()
            && let Err(e) = write_json(&marker(run), &result)
        {
            tracing::warn!("{e:#}");
        }
        progress.done(&result);
        *results[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
    };
    let pending = |i: usize| results[i].lock().unwrap_or_else(PoisonError::into_inner).is_none();
    match mode {
        Mode::Sim { jobs } => {
            let next = AtomicUsize::new(0);
            std::thread::scope(|scope| {
                for _ in 0..jobs.max(1) {
                    scope.spawn(|| {
                        loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            let Some(run) = runs.get(i) else { break };
                            if !pending(i) {
                                continue;
                            }
                            let result = run_one(c, &flow, run, out)
                                .unwrap_or_else(|e| RunResult::failed(run, format!("{e:#}")));
                            keep(i, run, result);
                        }
                    });
                }
            });
        }
        Mode::Live(target) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let components = runtime.block_on(target.check()).context("the target does not answer")?;
            let missing: Vec<&String> = flow.components.keys().filter(|n| !components.contains(n)).collect();
            for (i, run) in runs.iter().enumerate() {
                if !pending(i) {
                    continue;
                }
                let mut result = match run_live(c, target, &runtime, run, out) {
                    Ok(r) => r,
                    // The finished runs are kept; running the campaign again goes on from here.
                    Err(e) if e.is::<Interrupted>() => return Err(e),
                    Err(e) => RunResult::failed(run, format!("{e:#}")),
                };
                if !missing.is_empty() {
                    let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                    result.warnings.push(format!(
                        "the target runs no {} (the campaign's flow has them)",
                        names.join(", ")
                    ));
                }
                keep(i, run, result);
            }
        }
    }
    Ok(results
        .into_iter()
        .zip(&runs)
        .map(|(m, r)| {
            m.into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .unwrap_or_else(|| RunResult::failed(r, "did not run".into()))
        })
        .collect())
}
