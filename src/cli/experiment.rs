//! `chaoslab experiment run|validate|verify|discover|init`: Chaos Toolkit's CLI, natively.
//!
//! `run --sim` builds the reference pipeline in virtual time in this process (the same outputs as
//! `run --sim`), warms it up, runs the experiment against it and drains; the journal is deterministic
//! for the seed. Without `--sim` the experiment runs against a live instance at `--target`, whose
//! control plane executes chaoslab's actions and probes. Exit codes are `chaos run`'s.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::PipelineArgs;
use super::fault::Target;
use chaoslab::chaos::execute::{self, SimEnv};
use chaoslab::chaos::experiment::exit::run_exit_code;
use chaoslab::chaos::experiment::model::{Dry, HypothesisStrategy, RollbackStrategy};
use chaoslab::chaos::experiment::{Journal, RunOptions, ValidationError, VarOverrides, load};
use chaoslab::chaos::providers::{Backend, NativeProviders, discovery};
use chaoslab::executions::{self, Store};

/// The subcommands.
#[derive(Subcommand)]
pub enum ExperimentCommand {
    /// Run an experiment (JSON or YAML).
    Run(Box<RunArgs>),
    /// Run an experiment's ChaosIQ verification (extensions[].verification).
    Verify(Box<RunArgs>),
    /// Check an experiment; every problem is listed with its JSON path.
    Validate {
        /// The experiment file.
        file: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
    },
    /// Write the discovery document of chaoslab's actions, probes and fault kinds.
    Discover {
        /// Where to write it.
        #[arg(long, default_value = "./discovery.json")]
        discovery_path: PathBuf,
    },
    /// Write a starting experiment that uses chaoslab's providers.
    Init {
        /// Where to write it (refused if it exists).
        #[arg(long, default_value = "./experiment.json")]
        experiment_path: PathBuf,
    },
    /// Add a journal made elsewhere (the real `chaos run`, another machine) to the local execution store,
    /// so the dashboard's Runs tab lists it.
    Publish {
        /// The journal (JSON).
        journal: PathBuf,
        /// The execution store (default: $CHAOSLAB_STORE, $CHAOSLAB_HOME/executions.db, or
        /// ~/.local/share/chaoslab/executions.db).
        #[arg(long)]
        store: Option<PathBuf>,
    },
}

impl ExperimentCommand {
    /// True for a run in virtual time (logs stay quiet then).
    pub fn is_sim(&self) -> bool {
        matches!(self, ExperimentCommand::Run(a) | ExperimentCommand::Verify(a) if a.sim)
    }
}

/// `--var` / `--var-file`.
#[derive(Args, Clone, Debug, Default)]
pub struct VarArgs {
    /// A configuration value `key=value` (or `key:type=value`); repeatable.
    #[arg(long = "var")]
    pub var: Vec<String>,
    /// A JSON, YAML or .env file with `configuration` and `secrets` values; repeatable.
    #[arg(long = "var-file")]
    pub var_file: Vec<PathBuf>,
}

impl VarArgs {
    fn overrides(&self) -> anyhow::Result<VarOverrides> {
        let mut o = VarOverrides::default();
        for v in &self.var {
            o.add_var(v).with_context(|| format!("--var {v}"))?;
        }
        for f in &self.var_file {
            o.add_var_file(f).with_context(|| format!("--var-file {}", f.display()))?;
        }
        Ok(o)
    }
}

/// `experiment run` / `experiment verify`.
#[derive(Args)]
pub struct RunArgs {
    /// The experiment file (JSON or YAML).
    pub file: PathBuf,
    /// Start the reference pipeline in virtual time in this process and run against it.
    #[arg(long)]
    pub sim: bool,
    /// Sim: virtual time the pipeline runs before the experiment starts.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub warm_up: Duration,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    pub target: Target,
    /// Where the journal goes.
    #[arg(long, default_value = "./journal.json")]
    pub journal_path: PathBuf,
    #[command(flatten)]
    pub vars: VarArgs,
    /// default | always | never | deviated.
    #[arg(long)]
    pub rollback_strategy: Option<String>,
    /// default | before-method-only | after-method-only | during-method-only | continuously.
    #[arg(long)]
    pub hypothesis_strategy: Option<String>,
    /// Seconds between two runs of the hypothesis during the method.
    #[arg(long)]
    pub hypothesis_frequency: Option<f64>,
    /// Stop as soon as the during-method hypothesis deviates.
    #[arg(long)]
    pub fail_fast: bool,
    /// A failed method activity fails the run (chaoslab extension; Chaos Toolkit records and goes on).
    #[arg(long)]
    pub fail_on_activity_failure: bool,
    /// probes | actions | activities | pause: skip them.
    #[arg(long)]
    pub dry: Option<String>,
}

fn parse_enum<T: serde::de::DeserializeOwned>(flag: &str, v: &Option<String>) -> anyhow::Result<Option<T>> {
    v.as_ref()
        .map(|s| {
            serde_json::from_value(Value::String(s.clone()))
                .map_err(|_| anyhow::anyhow!("{flag}: {s:?} is not a valid value"))
        })
        .transpose()
}

impl RunArgs {
    fn options(&self) -> anyhow::Result<RunOptions> {
        let frequency = match self.hypothesis_frequency {
            Some(f) if f.is_finite() && f >= 0.0 => Some(Duration::from_secs_f64(f)),
            Some(f) => anyhow::bail!("--hypothesis-frequency: {f} is not a number of seconds"),
            None => None,
        };
        let dry = match self.dry.as_deref() {
            None => None,
            Some("probes") => Some(Dry::Probes),
            Some("actions") => Some(Dry::Actions),
            Some("activities") => Some(Dry::Activities),
            Some("pause") => Some(Dry::Pause),
            Some(other) => anyhow::bail!("--dry: {other:?} is not one of probes, actions, activities, pause"),
        };
        Ok(RunOptions {
            hypothesis_strategy: parse_enum::<HypothesisStrategy>(
                "--hypothesis-strategy",
                &self.hypothesis_strategy,
            )?,
            rollback_strategy: parse_enum::<RollbackStrategy>(
                "--rollback-strategy",
                &self.rollback_strategy,
            )?,
            hypothesis_frequency: frequency,
            fail_fast: self.fail_fast,
            dry,
            fail_on_activity_failure: self.fail_on_activity_failure,
        })
    }
}

fn print_errors(file: &Path, errors: &[ValidationError]) {
    eprintln!(
        "{}: the experiment is invalid ({} problem{}):",
        file.display(),
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for p in chaoslab::chaos::experiment::validate::file_problems(file, errors).all() {
        eprintln!("  {p}");
    }
}

fn write_journal(path: &Path, journal: &Journal) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    journal.write_private(path).with_context(|| format!("cannot write {}", path.display()))
}

/// Cancels `token` on SIGINT/SIGTERM, from a thread of its own (the sim runtime has no I/O driver).
fn cancel_on_signal(token: CancellationToken) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut term) = signal(SignalKind::terminate()) else { return };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
        });
        tracing::warn!("signal received: interrupting the experiment");
        token.cancel();
    });
}

/// Runs one subcommand; `Ok(code)` is the process exit code.
pub fn execute(command: ExperimentCommand) -> anyhow::Result<ExitCode> {
    match command {
        ExperimentCommand::Validate { file, vars } => {
            let raw = load(&file)?;
            let providers = offline_providers()?;
            let env = SimEnv::for_bus(None, 0);
            match execute::prepare(&raw, &providers, &RunOptions::default(), &vars.overrides()?, &env) {
                Ok((e, _)) => {
                    println!("{}: experiment '{}' is valid", file.display(), e.title);
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    print_errors(&file, &errors);
                    Ok(ExitCode::from(1))
                }
            }
        }
        ExperimentCommand::Discover { discovery_path } => {
            let doc = serde_json::to_string_pretty(&discovery())?;
            std::fs::write(&discovery_path, doc)
                .with_context(|| format!("cannot write {}", discovery_path.display()))?;
            println!("discovery written to {}", discovery_path.display());
            Ok(ExitCode::SUCCESS)
        }
        ExperimentCommand::Init { experiment_path } => {
            if experiment_path.exists() {
                anyhow::bail!("{} exists; choose another --experiment-path", experiment_path.display());
            }
            let text = serde_json::to_string_pretty(&execute::template())?;
            std::fs::write(&experiment_path, text)
                .with_context(|| format!("cannot write {}", experiment_path.display()))?;
            println!(
                "experiment written to {}; check it with `chaoslab experiment validate`",
                experiment_path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        ExperimentCommand::Publish { journal, store } => publish(&journal, store),
        ExperimentCommand::Run(a) => run(*a, false),
        ExperimentCommand::Verify(a) => run(*a, true),
    }
}

/// The store at `path`, or the default one.
fn store_at(path: Option<PathBuf>) -> anyhow::Result<Store> {
    let path =
        path.or_else(Store::default_path).context("no execution store: set CHAOSLAB_STORE or --store")?;
    Store::open(&path)
}

fn publish(journal: &Path, store: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(journal).with_context(|| format!("cannot read {}", journal.display()))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}:{}:{}: not JSON: {e}", journal.display(), e.line(), e.column()))?;
    let origin = std::path::absolute(journal).unwrap_or_else(|_| journal.to_path_buf());
    let execution = executions::from_journal(
        &value,
        "publish",
        &format!("chaos run # journal {}", origin.display()),
        &origin.display().to_string(),
    )
    .with_context(|| format!("{}: not a Chaos Toolkit journal", journal.display()))?;
    let store = store_at(store)?;
    let id = store.add(&execution)?;
    println!(
        "published '{}' ({}) as execution {id} in {}",
        execution.title,
        execution.status,
        store.path().display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Providers for validation only (signatures are known without a target).
fn offline_providers() -> anyhow::Result<NativeProviders> {
    let client = chaoslab::orders::http::ApiClient::remote("http://127.0.0.1:8080", Duration::from_secs(30))?;
    Ok(NativeProviders::new(Backend::Remote { client, token: None }))
}

/// The journal, and the verification summary of a verify run.
type Outcome = (Journal, Option<Value>);

fn run(a: RunArgs, verify: bool) -> anyhow::Result<ExitCode> {
    let raw = load(&a.file)?;
    let options = a.options()?;
    let overrides = a.vars.overrides()?;
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let outcome: Arc<Mutex<Option<Outcome>>> = Arc::default();
    if a.sim {
        let flow = a.pipeline.flow()?;
        let env = SimEnv::for_flow(&flow, a.pipeline.seed.unwrap_or(0));
        // Validate before building anything, so an invalid experiment runs nothing.
        let check = offline_providers()?;
        if let Err(errors) = execute::prepare(&raw, &check, &options, &overrides, &env) {
            print_errors(&a.file, &errors);
            return Ok(ExitCode::from(1));
        }
        let slot = outcome.clone();
        let warm_up = a.warm_up;
        let summary = a.pipeline.run(flow).sim_with(move |p| async move {
            tokio::time::sleep(warm_up).await;
            let providers = NativeProviders::new(Backend::Local(p.clone()));
            let (experiment, settings) = execute::prepare(&raw, &providers, &options, &overrides, &env)
                .map_err(|e| anyhow::anyhow!("{} problems", e.len()))?;
            let now = execute::now_of(&p.clock);
            let result = if verify {
                let (journal, summary) =
                    execute::verify(&experiment, settings, &providers, cancel, now).await.map_err(|e| {
                        anyhow::anyhow!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))
                    })?;
                (journal, Some(serde_json::to_value(summary)?))
            } else {
                (execute::run(&experiment, settings, &providers, cancel, now).await, None)
            };
            // The experiment's faults end with it; anything left would only distort the drain.
            p.faults.remove_all("experiment ended");
            let mut result = result;
            let truth = chaoslab::chaos::truth::since_journal_start(
                &p.faults.all(),
                &chaoslab::reasoning::incident_reasoner::incidents(&p),
                &result.0.start,
            );
            result.0.ground_truth = Some(serde_json::to_value(truth)?);
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
            Ok(())
        })?;
        println!("{}", summary.render());
    } else {
        let client = a.target.client()?;
        let providers = NativeProviders::new(Backend::Remote { client, token: a.target.token()? });
        let env = SimEnv::for_bus(None, 0);
        let (experiment, settings) = match execute::prepare(&raw, &providers, &options, &overrides, &env) {
            Ok(p) => p,
            Err(errors) => {
                print_errors(&a.file, &errors);
                return Ok(ExitCode::from(1));
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let now: chaoslab::chaos::experiment::Now = Arc::new(chrono::Utc::now);
        let result = rt.block_on(async {
            if verify {
                let (journal, summary) =
                    execute::verify(&experiment, settings, &providers, cancel, now).await.map_err(|e| {
                        anyhow::anyhow!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))
                    })?;
                Ok::<_, anyhow::Error>((journal, Some(serde_json::to_value(summary)?)))
            } else {
                Ok((execute::run(&experiment, settings, &providers, cancel, now).await, None))
            }
        })?;
        *outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
    }
    let Some((journal, summary)) = outcome.lock().unwrap_or_else(PoisonError::into_inner).take() else {
        anyhow::bail!("the experiment did not run");
    };
    write_journal(&a.journal_path, &journal)?;
    if a.sim {
        // The run's own directory keeps it too, where the dashboard's replay finds it.
        write_journal(&a.pipeline.out.join("experiments/journal.json"), &journal)?;
    }
    if let Some(store) = Store::open_default() {
        let origin = if a.sim { a.pipeline.out.display().to_string() } else { a.target.url.clone() };
        let value = serde_json::to_value(&journal)?;
        if let Ok(execution) = executions::from_journal(&value, "cli", &executions::this_command(), &origin) {
            store.record(&execution);
        }
    }
    if let Some(summary) = summary {
        println!("verification summary: {}", serde_json::to_string_pretty(&summary)?);
    }
    println!(
        "experiment '{}' ended with status: {}{}; journal at {}",
        journal.experiment.get("title").and_then(Value::as_str).unwrap_or(""),
        journal.status.as_str(),
        if journal.deviated { " (deviated)" } else { "" },
        a.journal_path.display()
    );
    Ok(ExitCode::from(run_exit_code(&journal)))
}
