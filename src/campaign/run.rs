//! Running a campaign: one sim run per point and seed, on a pool of threads (`-j`), each run
//! single-threaded in virtual time. A run leaves `runs/<name>_<point>_<seed>.csv` (the captured series in
//! the wizard's format), `runs/<id>/` (its outputs, with `mesh-events.jsonl`), `runs/<id>.truth.json`
//! (the fault windows) and last `runs/<id>.json` (its analysis): a campaign that is run again keeps the
//! runs that have that file and does only the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Timelike as _};
use serde::{Deserialize, Serialize};

use super::analysis::{self, RunResult};
use super::detect::Window;
use super::grid::{self, Grid, Value};
use super::series::{self, Series};
use super::spec::Campaign;
use crate::chaos::experiment::{RunOptions, VarOverrides};
use crate::chaos::providers::{Backend, NativeProviders};
use crate::config::Problems;
use crate::mesh::load::Loaded;
use crate::mesh::schema::Spec;
use crate::mesh::select::pods_of_flow;
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

/// Reads the campaign's flow and its chaos files for one point, checked against the flow's pods.
fn chaos_for(c: &Campaign, flow: &Flow, run: &RunId) -> anyhow::Result<Vec<Loaded>> {
    let names: Vec<String> = run.point.keys().cloned().collect();
    let pods = pods_of_flow(flow);
    let mut problems = Problems::new();
    let mut loaded = Vec::new();
    for f in &c.chaos.mesh {
        let path = c.dir.join(f);
        let objects = if f.extension().is_some_and(|e| e == "jsonnet") {
            // Jsonnet templates take the point as external variables (`std.extVar("latency")`).
            let vars: Vec<(String, String)> = run.point.clone().into_iter().collect();
            let documents = crate::mesh::jsonnet::render_with(&path, &vars)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let mut objects = Vec::new();
            for (label, json) in documents {
                let name = format!("{} ({label})", path.display());
                objects.extend(crate::mesh::load::load_text(&name, &json, Some(&pods), &mut problems));
            }
            objects
        } else {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let text = grid::substitute(&text, &names, &run.values);
            crate::mesh::load::load_text(&path.display().to_string(), &text, Some(&pods), &mut problems)
        };
        loaded.extend(objects);
    }
    let errors: Vec<String> = problems.errors().map(ToString::to_string).collect();
    anyhow::ensure!(errors.is_empty(), "the chaos files do not load:\n  {}", errors.join("\n  "));
    Ok(loaded)
}

/// Whether an object fires on a cron schedule (then it is applied at a "good time", as the wizard does).
fn has_cron(l: &Loaded) -> bool {
    match &l.object.spec {
        Spec::Schedule(_) => true,
        Spec::Workflow(w) => w.templates.iter().any(|t| t.template_type == "Schedule"),
        _ => false,
    }
}

fn unix(t: &str) -> Option<f64> {
    DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp_millis() as f64 / 1000.0)
}

/// What one sim run captured.
struct Captured {
    series: BTreeMap<String, Series>,
    truth: Vec<Window>,
    warnings: Vec<String>,
    journals: Vec<serde_json::Value>,
}

/// The campaign's Chaos Toolkit experiments, read, with the point as configuration overrides.
fn experiments_for(c: &Campaign, run: &RunId) -> anyhow::Result<(Vec<serde_json::Value>, VarOverrides)> {
    let mut raw = Vec::new();
    for f in &c.chaos.experiments {
        let path = c.dir.join(f);
        raw.push(crate::chaos::experiment::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    let mut overrides = VarOverrides::default();
    for (name, value) in &run.point {
        overrides.configuration.insert(name.clone(), serde_json::Value::String(value.clone()));
    }
    Ok((raw, overrides))
}

/// Runs one point with one seed; writes its files under `out`.
pub fn run_one(c: &Campaign, flow: &Flow, run: &RunId, out: &Path) -> anyhow::Result<RunResult> {
    let loaded = chaos_for(c, flow, run)?;
    let (experiments, overrides) = experiments_for(c, run)?;
    let env = crate::chaos::execute::SimEnv::for_flow(flow, run.seed);
    let cron = loaded.iter().any(has_cron);
    let dir = out.join("runs").join(&run.id);
    let captures = c.captures();
    let (warmup, offset, number) = (c.runs.warmup, c.runs.offset, c.runs.number);
    let slot: Arc<Mutex<Option<Captured>>> = Arc::default();
    let seen = slot.clone();
    Run::new(flow.clone())
        .out(&dir)
        .seed(run.seed)
        .trace_in_memory()
        .sim_with(move |p| async move {
            let start = tokio::time::Instant::now();
            let mut series: BTreeMap<String, Series> = BTreeMap::new();
            let mut warnings = Vec::new();
            // The wizard applies a cron file just after the next minute divisible by its offset, + 2 s.
            let mut apply = warmup;
            if cron {
                let at = p.clock.now() + chrono::Duration::from_std(warmup).unwrap_or_default();
                let minutes = (offset.as_secs() / 60).max(1) as u32;
                let past = (at.minute() % minutes) * 60 + at.second();
                let wait = if past == 0 && at.nanosecond() == 0 { 0 } else { minutes * 60 - past };
                apply += Duration::from_secs(u64::from(wait) + 2);
            }
            let end = apply + offset * (number + 2);
            // Chaos Toolkit experiments run from the chaos's start, beside the capture.
            let journals: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
            let ctk_warnings: Arc<Mutex<Vec<String>>> = Arc::default();
            let ctk = {
                let (p, journals, ctk_warnings) = (p.clone(), journals.clone(), ctk_warnings.clone());
                async move {
                    if experiments.is_empty() {
                        return;
                    }
                    tokio::time::sleep_until(start + apply).await;
                    let providers = NativeProviders::new(Backend::Local(p.clone()));
                    for raw in &experiments {
                        let options = RunOptions::default();
                        match crate::chaos::execute::prepare(raw, &providers, &options, &overrides, &env) {
                            Ok((experiment, settings)) => {
                                let now = crate::chaos::execute::now_of(&p.clock);
                                let cancel = tokio_util::sync::CancellationToken::new();
                                let journal = crate::chaos::execute::run(
                                    &experiment,
                                    settings,
                                    &providers,
                                    cancel,
                                    now,
                                )
                                .await;
                                let value = serde_json::to_value(&journal).unwrap_or_default();
                                journals.lock().unwrap_or_else(PoisonError::into_inner).push(value);
                            }
                            Err(errors) => {
                                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                                ctk_warnings
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .push(format!("experiment not run: {}", text.join("; ")));
                            }
                        }
                    }
                }
            };
            let mut next_sample: Vec<Duration> = vec![Duration::ZERO; captures.len()];
            let mut applied = false;
            let capture = async {
                loop {
                    let now = start.elapsed();
                    if !applied && now >= apply {
                        for l in &loaded {
                            if let Err(e) = p.mesh.create(&p, l) {
                                warnings.push(format!("{}: {e}", l.object.origin));
                            }
                        }
                        applied = true;
                    }
                    for (i, cap) in captures.iter().enumerate() {
                        if now >= next_sample[i] {
                            let t = p.clock.now().timestamp_millis() as f64 / 1000.0;
                            match crate::monitoring::query_value(&p, &cap.query) {
                                Ok(v) => match v.as_f64() {
                                    Some(v) => series.entry(cap.name.clone()).or_default().push(t, v),
                                    None if warnings.len() < 20 => {
                                        warnings.push(format!("{} at {t}: {v} is not one number", cap.name))
                                    }
                                    None => {}
                                },
                                Err(e) if warnings.len() < 20 => {
                                    warnings.push(format!("{} at {t}: {e}", cap.name))
                                }
                                Err(_) => {}
                            }
                            next_sample[i] += cap.interval;
                        }
                    }
                    if now >= end {
                        break;
                    }
                    let mut wake = next_sample.iter().copied().min().unwrap_or(end).min(end);
                    if !applied {
                        wake = wake.min(apply);
                    }
                    tokio::time::sleep_until(start + wake).await;
                }
            };
            tokio::join!(capture, ctk);
            warnings.extend(ctk_warnings.lock().unwrap_or_else(PoisonError::into_inner).drain(..));
            let journals = std::mem::take(&mut *journals.lock().unwrap_or_else(PoisonError::into_inner));
            p.mesh.shutdown().await;
            let truth = p
                .faults
                .all()
                .iter()
                .filter_map(|r| {
                    Some(Window {
                        fault: r.id.clone(),
                        kind: r.kind.clone(),
                        start: unix(&r.applied_at)?,
                        end: r.ended_at.as_deref().and_then(unix),
                    })
                })
                .collect();
            *seen.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(Captured { series, truth, warnings, journals });
            Ok(())
        })
        .with_context(|| format!("run {}", run.id))?;
    let captured =
        slot.lock().unwrap_or_else(PoisonError::into_inner).take().context("the run captured nothing")?;
    let runs = out.join("runs");
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

/// Runs every run not done yet, `jobs` at a time; returns every run's result in plan order (failed runs
/// included, with their error).
pub fn run_all(
    c: &Campaign,
    out: &Path,
    jobs: usize,
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
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(run) = runs.get(i) else { break };
                    if results[i].lock().unwrap_or_else(PoisonError::into_inner).is_some() {
                        continue;
                    }
                    let result = match run_one(c, &flow, run, out) {
                        Ok(r) => r,
                        Err(e) => RunResult::failed(run, format!("{e:#}")),
                    };
                    // Only a finished run is kept: a failed one is tried again when the campaign runs again.
                    if result.error.is_none()
                        && let Err(e) = write_json(&marker(run), &result)
                    {
                        tracing::warn!("{e:#}");
                    }
                    progress.done(&result);
                    *results[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
                }
            });
        }
    });
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
