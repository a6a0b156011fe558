//! The run algorithm of chaostoolkit-lib 1.45 (`chaoslib/run.py`, `Runner._run`).
//!
//! 1. Experiment-level *before* controls.
//! 2. The steady-state hypothesis *before* the method (strategies `default`, `before-method-only`,
//!    `continuously`). Not met: the method is skipped, `deviated` stays false and the status is
//!    `completed` — or `failed` when a probe *errored* (since 1.35; the run-flow tutorial still says
//!    `failed`).
//! 3. The method, activity by activity; `background` ones run alongside and are awaited at its end.
//!    A failed activity is recorded and the method goes on (unless chaoslab's
//!    `fail_on_activity_failure`). For `during-method-only` and `continuously` the hypothesis runs
//!    meanwhile every `hypothesis_frequency` (the wait comes *between* runs) into
//!    `steady_states.during`; with `fail_fast` the first miss sets `failed` and the method stops
//!    after the activity in progress, as in the lib. During-method misses never set `deviated`.
//! 4. The hypothesis *after* the method (`default`, `after-method-only`, `continuously`) unless the
//!    run was interrupted or aborted. Not met: `deviated` (and `failed` only when a probe errored).
//! 5. Rollbacks per strategy: `always`, `never`, `default` (unless `failed` or `interrupted`),
//!    `deviated` (only if deviated). A failed rollback does not stop the next ones.
//! 6. End time and duration, status normalised to `completed` when unset, experiment-level *after*
//!    controls with the journal, control clean-up.
//!
//! Interruption — a control's `Break` (the lib's `InterruptExecution`), a control's watch (the lib's
//! `exit_gracefully`, see [`watch`](super::watch)) or the cancellation token (SIGINT/SIGTERM, the
//! lib's `KeyboardInterrupt`) — ends the run as `interrupted` with rollbacks per strategy. It drops
//! the activity in progress (it is not recorded, as in the lib), still waits for background
//! activities, and does not apply to rollbacks once they have started: a strategy that plays them
//! (`always`) must be able to. The lib's SIGUSR2 "exit ungracefully"
//! (no rollbacks, background activities killed) is not modelled.
//!
//! Control watches (chaosaddons' safeguards) start with their control's before-experiment hook and
//! are polled beside the run, ahead of it, until their after-experiment hook (at the latest the end
//! of the run).
//!
//! Everything runs as futures of the calling task (no `spawn`), polled in a fixed order, and reads
//! time only through `now` and tokio's clock: on a paused single-threaded runtime a whole run —
//! pauses, frequencies and all — takes no wall time and its journal is identical run to run.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::activity::{Engine, Halt};
use super::config::load_dynamic_configuration;
use super::control::{Controls, declared_once};
use super::journal::{
    ActivityRun, Journal, JournalStatus, RunStatus, SteadyState, SteadyStates, iso_time, seconds_between,
};
use super::model::{ActivityEntry, ControlLevel, ControlScope, Experiment, RollbackStrategy};
use super::provider::PythonProviders;
use super::pyvalue::py_str;
use super::settings::RunSettings;
use super::substitute::substitute_str;
use super::watch::{Probing, Watches};

/// The calendar clock of a run: wall time in live mode, virtual time in sim mode.
pub type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The shortest wait between two runs of a repeated hypothesis.
const MIN_FREQUENCY: Duration = Duration::from_millis(1);

/// What the log says when the run is cancelled.
const CANCELLED: &str = "Received a termination signal (Ctrl-C or SIGTERM)";

/// Runs `experiment` and returns its journal. `cancel` interrupts it (wire it to SIGINT/SIGTERM);
/// `now` is the calendar clock (see [`Now`]).
pub async fn run_experiment(
    experiment: &Experiment,
    settings: RunSettings,
    providers: &dyn PythonProviders,
    controls: &dyn Controls,
    cancel: CancellationToken,
    now: Now,
) -> Journal {
    let runner = Runner::prepare(experiment, &settings, providers, controls, cancel, now).await;
    runner
        .watching(async {
            let (mut journal, started) = runner.open_journal().await;
            let outcome = runner.body(&mut journal).await;
            runner.settle(outcome);
            runner.rollback_phase(&mut journal).await;
            runner.close(&mut journal, started).await;
            journal
        })
        .await
}

/// Which part of a run a list of activities belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Method,
    Rollback,
}

/// How to sample the hypothesis repeatedly.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sampling {
    pub frequency: Duration,
    /// Stop the run (`failed`) when this percentage of samples deviated; `None`: never.
    pub fail_fast_ratio: Option<f64>,
}

/// One run in progress: the shared [`Engine`] plus the run-wide status.
pub(crate) struct Runner<'a> {
    pub(crate) engine: Engine<'a>,
    pub(crate) settings: &'a RunSettings,
    pub(crate) cancel: CancellationToken,
    status: Mutex<Option<JournalStatus>>,
    watches: Watches<'a>,
}

impl<'a> Runner<'a> {
    /// Evaluates dynamic configuration and configures the controls (the lib does both before the
    /// journal starts).
    pub(crate) async fn prepare(
        experiment: &'a Experiment,
        settings: &'a RunSettings,
        python: &'a dyn PythonProviders,
        controls: &'a dyn Controls,
        cancel: CancellationToken,
        now: Now,
    ) -> Runner<'a> {
        let mut vars = settings.vars.clone();
        load_dynamic_configuration(experiment, &mut vars, python).await;
        for control in declared_once(experiment) {
            if let Err(e) = controls.configure(control, experiment, &mut vars).await {
                tracing::debug!(control = %control.name, error = %e, "control initialization failed");
            }
        }
        let mut globals = Vec::new();
        for control in &settings.global_controls {
            match controls.configure(control, experiment, &mut vars).await {
                Ok(()) => globals.push(control.clone()),
                Err(e) => tracing::warn!(control = %control.name, error = %e,
                    "global control initialization failed; it will not be registered"),
            }
        }
        let engine = Engine {
            experiment,
            python,
            controls,
            globals: Arc::new(globals),
            vars: Arc::new(tokio::sync::Mutex::new(vars)),
            outputs: Arc::default(),
            now,
            dry: settings.dry,
        };
        Runner { engine, settings, cancel, status: Mutex::new(None), watches: Watches::new() }
    }

    /// Runs `work` (the whole run, up to its end) with the control watches polled beside it, first.
    pub(crate) async fn watching<T>(&self, work: impl Future<Output = T>) -> T {
        let done = CancellationToken::new();
        let work = async {
            let out = work.await;
            done.cancel();
            out
        };
        let ((), out) = futures::future::join(self.watches.keep(&done), work).await;
        out
    }

    /// Fails with the interruption a control's watch took, if it took one.
    fn check_watches(&self) -> Result<(), Halt> {
        self.watches.tripped().map_or(Ok(()), |reason| Err(Halt::Interrupted(reason)))
    }

    pub(crate) fn status(&self) -> Option<JournalStatus> {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_status(&self, status: JournalStatus) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = Some(status);
    }

    /// The method stops at the next activity when the run is already failed, interrupted or aborted.
    fn stopped(&self) -> bool {
        matches!(
            self.status(),
            Some(JournalStatus::Failed | JournalStatus::Interrupted | JournalStatus::Aborted)
        )
    }

    /// The journal as `initialize_run_journal` starts it (title substituted, `dry` as the CLI sets
    /// it), and the start time.
    pub(crate) async fn open_journal(&self) -> (Journal, DateTime<Utc>) {
        let experiment = self.engine.experiment;
        let (vars, outputs) = self.engine.snapshot().await;
        let title = py_str(&substitute_str(&experiment.title, &vars.bindings(&outputs)));
        tracing::info!("Running experiment: {title}");
        let mut copy = experiment.raw.clone();
        if let Value::Object(doc) = &mut copy {
            doc.insert("title".to_owned(), Value::String(title));
            let dry = self.settings.dry.map_or(Value::Null, |d| Value::String(d.as_str().to_owned()));
            doc.insert("dry".to_owned(), dry);
        }
        if let Some(dry) = self.settings.dry {
            tracing::warn!("Running experiment with dry {}", dry.as_str());
        }
        let started = (self.engine.now)();
        let meta = &self.settings.journal_meta;
        let journal = Journal {
            chaoslib_version: meta.chaoslib_version.clone(),
            platform: meta.platform.clone(),
            node: meta.node.clone(),
            experiment: copy,
            start: iso_time(started),
            status: JournalStatus::Completed,
            deviated: false,
            steady_states: SteadyStates::default(),
            run: Vec::new(),
            rollbacks: Vec::new(),
            end: String::new(),
            duration: 0.0,
            measurements: None,
            ground_truth: None,
        };
        tracing::info!("Steady-state strategy: {}", self.settings.hypothesis_strategy);
        tracing::info!("Rollbacks strategy: {}", self.settings.rollback_strategy);
        (journal, started)
    }

    /// Steps 1 to 4.
    async fn body(&self, journal: &mut Journal) -> Result<(), Halt> {
        let experiment = self.engine.experiment;
        let strategy = self.settings.hypothesis_strategy;
        let with_ssh = experiment.has_steady_state_probes();
        if !with_ssh {
            tracing::info!("No steady state hypothesis defined. That's ok, just exploring.");
        }
        self.experiment_controls(ControlScope::Before, None).await?;

        if with_ssh && strategy.runs_before() {
            tracing::debug!("Running steady-state hypothesis before the method");
            if let Some(state) = self.cancellable(self.engine.run_hypothesis()).await? {
                let (met, errored) = (state.steady_state_met, state.probe_errored());
                report_miss("", &state);
                journal.steady_states.before = Some(state);
                if !met {
                    self.set_status(if errored { JournalStatus::Failed } else { JournalStatus::Completed });
                    return Ok(());
                }
            }
        }

        let (runs, halt) = if with_ssh && strategy.runs_during() {
            let method_done = CancellationToken::new();
            let sampling = Sampling {
                frequency: self.settings.hypothesis_frequency,
                fail_fast_ratio: self.settings.fail_fast.then_some(self.settings.fail_fast_ratio),
            };
            let method = async {
                let outcome = self.method().await;
                method_done.cancel();
                outcome
            };
            // Polled in this order every time (no rotation as in `tokio::join!`): when a sample and
            // the method's end fall on the same instant, the sample is taken first.
            let (during, outcome) = futures::future::join(self.sample(&method_done, sampling), method).await;
            journal.steady_states.during = during;
            outcome
        } else {
            self.method().await
        };
        journal.run = runs;
        if let Some(halt) = halt {
            return Err(halt);
        }

        let halted = matches!(self.status(), Some(JournalStatus::Interrupted | JournalStatus::Aborted));
        if !halted && with_ssh && strategy.runs_after() {
            tracing::debug!("Running steady-state hypothesis after the method");
            if let Some(state) = self.cancellable(self.engine.run_hypothesis()).await? {
                if !state.steady_state_met {
                    journal.deviated = true;
                    if state.probe_errored() {
                        self.set_status(JournalStatus::Failed);
                    }
                }
                report_miss("", &state);
                journal.steady_states.after = Some(state);
            }
        }
        Ok(())
    }

    /// Runs the experiment-level controls for `scope`. Before: each control's watch starts right
    /// after its hook, which returns once the watch is ready. After: each hook stops the control's
    /// watches.
    pub(crate) async fn experiment_controls(
        &self,
        scope: ControlScope,
        state: Option<&Value>,
    ) -> Result<(), Halt> {
        let experiment = self.engine.experiment;
        let level = ControlLevel::Experiment;
        for control in self.engine.hooked(level, scope, &experiment.controls) {
            self.engine.apply_control(control, level, scope, &experiment.raw, state).await?;
            match scope {
                ControlScope::Before => {
                    let probing: Arc<dyn Probing + 'a> = Arc::new(self.engine.clone());
                    if let Some(watch) = self.watches.start(self.engine.controls, control, probing) {
                        self.cancellable(async {
                            Watches::until_ready(&watch).await;
                            Ok(())
                        })
                        .await?;
                    }
                }
                ControlScope::After => self.watches.stop(Some(&control.name)).await,
            }
        }
        if scope == ControlScope::Before {
            self.check_watches()?;
        }
        Ok(())
    }

    /// Awaits `work` unless the run is cancelled, or a control's watch interrupts it, first.
    pub(crate) async fn cancellable<T>(
        &self,
        work: impl Future<Output = Result<T, Halt>>,
    ) -> Result<T, Halt> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(Halt::Interrupted(CANCELLED.to_owned())),
            reason = self.watches.interrupted() => Err(Halt::Interrupted(reason)),
            result = work => result,
        }
    }

    /// Records how the body ended: an interruption or an abort becomes the status.
    pub(crate) fn settle(&self, outcome: Result<(), Halt>) {
        match outcome {
            Ok(()) => {}
            Err(Halt::Interrupted(reason)) => {
                tracing::error!("{reason}");
                self.set_status(JournalStatus::Interrupted);
            }
            Err(Halt::Aborted(reason)) => {
                tracing::error!("Experiment ran into an unexpected fatal error, aborting now: {reason}");
                self.set_status(JournalStatus::Aborted);
            }
        }
    }

    /// The method inside method-level controls; returns the runs and why it stopped early, if it did.
    pub(crate) async fn method(&self) -> (Vec<ActivityRun>, Option<Halt>) {
        tracing::info!("Playing your experiment's method now...");
        let experiment = self.engine.experiment;
        if experiment.method.is_empty() {
            tracing::info!("No declared activities, let's move on.");
        }
        let (runs, halt) = self.controlled(ControlLevel::Method, &experiment.method, Phase::Method).await;
        // A watch may have interrupted while the method waited for background activities.
        (runs, halt.or_else(|| self.check_watches().err()))
    }

    /// `entries` inside the controls of `level` (method or rollback, whose context is the experiment).
    async fn controlled(
        &self,
        level: ControlLevel,
        entries: &[ActivityEntry],
        phase: Phase,
    ) -> (Vec<ActivityRun>, Option<Halt>) {
        let experiment = self.engine.experiment;
        let (own, context) = (&experiment.controls, &experiment.raw);
        let before = self.engine.apply_controls(level, ControlScope::Before, own, context, None).await;
        let (runs, halt) = match before {
            Ok(()) => self.play(entries, phase).await,
            Err(halt) => (Vec::new(), Some(halt)),
        };
        let state = serde_json::to_value(&runs).ok();
        let after =
            self.engine.apply_controls(level, ControlScope::After, own, context, state.as_ref()).await;
        (runs, halt.or(after.err()))
    }

    /// Plays activities in order; background ones run alongside the next ones and are awaited at the
    /// end. The records keep the declaration order.
    async fn play(&self, entries: &[ActivityEntry], phase: Phase) -> (Vec<ActivityRun>, Option<Halt>) {
        let mut slots: Vec<Option<ActivityRun>> = entries.iter().map(|_| None).collect();
        let mut halt: Option<Halt> = None;
        let mut background = FuturesUnordered::new();
        for (index, entry) in entries.iter().enumerate() {
            if phase == Phase::Method && self.cancel.is_cancelled() {
                halt = Some(Halt::Interrupted(CANCELLED.to_owned()));
                break;
            }
            if phase == Phase::Method
                && let Err(h) = self.check_watches()
            {
                halt = Some(h);
                break;
            }
            if phase == Phase::Rollback {
                tracing::info!("Rollback: {}", entry_name(entry));
            }
            if entry.is_background() {
                background.push(async move { (index, self.engine.execute(entry).await) });
            } else {
                let foreground = self.engine.execute(entry);
                tokio::pin!(foreground);
                let result = loop {
                    tokio::select! {
                        biased;
                        _ = self.cancel.cancelled(), if phase == Phase::Method => {
                            break Err(Halt::Interrupted(CANCELLED.to_owned()));
                        }
                        reason = self.watches.interrupted(), if phase == Phase::Method => {
                            break Err(Halt::Interrupted(reason));
                        }
                        result = &mut foreground => break result,
                        Some((i, result)) = background.next() => self.keep(&mut slots, &mut halt, i, result, phase),
                    }
                };
                self.keep(&mut slots, &mut halt, index, result, phase);
            }
            if halt.is_some() || (phase == Phase::Method && self.stopped()) {
                break;
            }
        }
        if !background.is_empty() {
            tracing::debug!("Waiting for background activities to complete");
        }
        while let Some((i, result)) = background.next().await {
            self.keep(&mut slots, &mut halt, i, result, phase);
        }
        (slots.into_iter().flatten().collect(), halt)
    }

    /// Stores a finished activity's record, or keeps the first reason to stop.
    fn keep(
        &self,
        slots: &mut [Option<ActivityRun>],
        halt: &mut Option<Halt>,
        index: usize,
        result: Result<ActivityRun, Halt>,
        phase: Phase,
    ) {
        match result {
            Ok(run) => {
                if phase == Phase::Method
                    && run.status == RunStatus::Failed
                    && self.settings.fail_on_activity_failure
                {
                    tracing::error!("Activity '{}' failed and the run fails on activity failure", run.name());
                    if !self.stopped() {
                        self.set_status(JournalStatus::Failed);
                    }
                }
                slots[index] = Some(run);
            }
            Err(h) => {
                halt.get_or_insert(h);
            }
        }
    }

    /// Runs the hypothesis every `sampling.frequency` until `stop` (or cancellation, or a stopped
    /// run), returning every state.
    pub(crate) async fn sample(&self, stop: &CancellationToken, sampling: Sampling) -> Vec<SteadyState> {
        let frequency = sampling.frequency.max(MIN_FREQUENCY);
        tracing::info!(
            "Executing the steady-state hypothesis continuously every {} seconds",
            frequency.as_secs_f64()
        );
        let mut states = Vec::new();
        let (mut iteration, mut deviated) = (1u32, 0u32);
        while !stop.is_cancelled()
            && !self.cancel.is_cancelled()
            && self.watches.tripped().is_none()
            && !self.stopped()
        {
            let state = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                _ = self.watches.interrupted() => break,
                state = self.engine.run_hypothesis() => state,
            };
            match state {
                Ok(None) => break,
                Err(halt) => {
                    self.settle(Err(halt));
                    break;
                }
                Ok(Some(state)) => {
                    let met = state.steady_state_met;
                    report_miss("Continuous ", &state);
                    states.push(state);
                    if !met {
                        deviated += 1;
                        let ratio = f64::from(deviated) * 100.0 / f64::from(iteration);
                        if sampling.fail_fast_ratio.is_some_and(|limit| ratio >= limit) {
                            tracing::info!(
                                "Terminating immediately the experiment after {ratio:.1}% hypothesis deviated"
                            );
                            self.set_status(JournalStatus::Failed);
                            break;
                        }
                    }
                }
            }
            iteration += 1;
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = self.cancel.cancelled() => break,
                _ = self.watches.interrupted() => break,
                _ = tokio::time::sleep(frequency) => {}
            }
        }
        tracing::info!("Continuous steady state hypothesis terminated");
        states
    }

    /// Step 5: rollbacks, if the strategy says so. Control watches interrupt the run up to their end
    /// (not the rollbacks themselves: one first taken while they play lets them finish).
    pub(crate) async fn rollback_phase(&self, journal: &mut Journal) {
        self.play_rollbacks(journal).await;
        if let Some(reason) = self.watches.close()
            && self.status() != Some(JournalStatus::Interrupted)
        {
            self.settle(Err(Halt::Interrupted(reason)));
        }
    }

    async fn play_rollbacks(&self, journal: &mut Journal) {
        let status = self.status();
        let play = match self.settings.rollback_strategy {
            RollbackStrategy::Always => {
                tracing::warn!("Rollbacks were explicitly requested to be played");
                true
            }
            RollbackStrategy::Never => {
                tracing::warn!("Rollbacks were explicitly requested to not be played");
                false
            }
            RollbackStrategy::Default => {
                !matches!(status, Some(JournalStatus::Failed | JournalStatus::Interrupted))
            }
            RollbackStrategy::Deviated if journal.deviated => {
                tracing::warn!("Rollbacks will be played only because the experiment deviated");
                true
            }
            RollbackStrategy::Deviated => {
                tracing::warn!(
                    "Rollbacks are only played when the experiment deviated; it did not, so they are not"
                );
                false
            }
        };
        if !play {
            return;
        }
        tracing::info!("Let's rollback...");
        let rollbacks = &self.engine.experiment.rollbacks;
        if rollbacks.is_empty() {
            tracing::info!("No declared rollbacks, let's move on.");
        }
        let (runs, halt) = self.controlled(ControlLevel::Rollback, rollbacks, Phase::Rollback).await;
        // The lib leaves `rollbacks` empty when interrupted; chaoslab keeps what did run.
        journal.rollbacks = runs;
        if let Some(halt) = halt {
            self.settle(Err(halt));
        }
    }

    /// Step 6.
    pub(crate) async fn close(&self, journal: &mut Journal, started: DateTime<Utc>) {
        let end = (self.engine.now)();
        journal.end = iso_time(end);
        journal.duration = seconds_between(started, end);
        journal.status = self.status().unwrap_or(JournalStatus::Completed);
        tracing::info!("Experiment ended with status: {}", journal.final_state());
        if journal.deviated {
            tracing::info!("The steady-state has deviated, a weakness may have been discovered");
        }
        let state = serde_json::to_value(&*journal).ok();
        if let Err(halt) = self.experiment_controls(ControlScope::After, state.as_ref()).await {
            tracing::debug!(?halt, "failed to close controls");
        }
        // Watches whose after-experiment hook did not run stop with the run.
        self.watches.stop(None).await;
        for control in declared_once(self.engine.experiment).into_iter().chain(self.engine.globals.iter()) {
            self.engine.controls.cleanup(control);
        }
    }
}

fn entry_name(entry: &ActivityEntry) -> &str {
    match entry {
        ActivityEntry::Inline(a) => &a.name,
        ActivityEntry::Ref(name) => name,
    }
}

/// Logs the probe that made a hypothesis miss.
fn report_miss(prefix: &str, state: &SteadyState) {
    if state.steady_state_met {
        return;
    }
    let name = state.probes.last().map(ActivityRun::name).unwrap_or_default();
    tracing::warn!("{prefix}Steady state probe '{name}' is not in the given tolerance");
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;
    use tokio::time::Instant;

    use super::*;
    use crate::chaos::experiment::config::Vars;
    use crate::chaos::experiment::control::{Interrupt, NoControls};
    use crate::chaos::experiment::exit::run_exit_code;
    use crate::chaos::experiment::model::{Dry, HypothesisStrategy};
    use crate::chaos::experiment::provider::ActivityError;
    use crate::chaos::experiment::testkit::{
        FakePython, RecordingControls, action, experiment_doc, probe, run_doc, sim_now, since,
    };
    use crate::chaos::experiment::validate::validate;

    fn python() -> FakePython {
        FakePython::new()
            .returning("sys", "healthy", json!(true))
            .returning("sys", "unhealthy", json!(false))
            .with("sys", "broken", |_| Err(ActivityError::failed("probe broke")))
            .returning("sys", "act", json!("done"))
            .returning("sys", "undo", json!("undone"))
    }

    /// `sys.flaky` is true on its first call only; `sys.flaky_err` errors after its first call.
    fn deviating_python() -> FakePython {
        let calls = Arc::new(AtomicUsize::new(0));
        let calls2 = Arc::new(AtomicUsize::new(0));
        python().with("sys", "flaky", move |_| Ok(json!(calls.fetch_add(1, Ordering::SeqCst) == 0))).with(
            "sys",
            "flaky_err",
            move |_| match calls2.fetch_add(1, Ordering::SeqCst) {
                0 => Ok(json!(true)),
                _ => Err(ActivityError::failed("lost the broker")),
            },
        )
    }

    async fn run(doc: &Value, python: &FakePython, tune: impl FnOnce(&mut RunSettings)) -> Journal {
        run_doc(doc, python, &NoControls, &[], CancellationToken::new(), tune).await
    }

    fn names(runs: &[ActivityRun]) -> Vec<&str> {
        runs.iter().map(ActivityRun::name).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn each_hypothesis_strategy_runs_the_hypothesis_where_it_says() {
        use HypothesisStrategy::*;
        for (strategy, before, during, after) in [
            (Default, true, false, true),
            (BeforeMethodOnly, true, false, false),
            (AfterMethodOnly, false, false, true),
            (DuringMethodOnly, false, true, false),
            (Continuously, true, true, true),
            (Skip, false, false, false),
        ] {
            let mut slow = action("slow", "act");
            slow["pauses"] = json!({"after": 3});
            let doc = experiment_doc(vec![probe("p", "healthy", json!(true))], vec![slow], vec![]);
            let j = run(&doc, &python(), |s| s.hypothesis_strategy = strategy).await;
            assert_eq!(j.steady_states.before.is_some(), before, "{strategy}");
            assert_eq!(!j.steady_states.during.is_empty(), during, "{strategy}");
            assert_eq!(j.steady_states.after.is_some(), after, "{strategy}");
            assert_eq!(
                (j.status, j.deviated, names(&j.run)),
                (JournalStatus::Completed, false, vec!["slow"])
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_missed_before_hypothesis_skips_the_method_completes_and_rolls_back() {
        let py = python();
        let doc = experiment_doc(
            vec![probe("ok", "healthy", json!(true)), probe("bad", "unhealthy", json!(true))],
            vec![action("a", "act")],
            vec![action("u", "undo")],
        );
        let j = run(&doc, &py, |_| {}).await;
        let before = j.steady_states.before.as_ref().unwrap();
        assert!(!before.steady_state_met);
        assert_eq!(
            before.probes.iter().map(|p| p.tolerance_met).collect::<Vec<_>>(),
            [Some(true), Some(false)]
        );
        assert_eq!((j.status, j.deviated, j.run.len()), (JournalStatus::Completed, false, 0));
        assert!(j.steady_states.after.is_none());
        assert_eq!(names(&j.rollbacks), ["u"]);
        assert_eq!(py.call_names(), ["healthy", "unhealthy", "undo"]);
        assert_eq!(run_exit_code(&j), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_errored_before_probe_fails_the_run_without_rollbacks() {
        let doc = experiment_doc(
            vec![probe("bad", "broken", json!(true))],
            vec![action("a", "act")],
            vec![action("u", "undo")],
        );
        let j = run(&doc, &python(), |_| {}).await;
        let probe_run = &j.steady_states.before.as_ref().unwrap().probes[0];
        assert_eq!((probe_run.status, probe_run.tolerance_met), (RunStatus::Failed, Some(false)));
        assert_eq!(
            probe_run.exception,
            Some(vec!["chaoslib.exceptions.ActivityFailed: probe broke\n".to_owned()])
        );
        assert_eq!(
            (j.status, j.deviated, j.run.len(), j.rollbacks.len()),
            (JournalStatus::Failed, false, 0, 0)
        );
        assert_eq!(run_exit_code(&j), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_after_miss_deviates_an_after_error_also_fails() {
        let doc = experiment_doc(
            vec![probe("p", "flaky", json!(true))],
            vec![action("a", "act")],
            vec![action("u", "undo")],
        );
        let j = run(&doc, &deviating_python(), |_| {}).await;
        assert_eq!((j.status, j.deviated, j.rollbacks.len()), (JournalStatus::Completed, true, 1));
        assert_eq!(j.final_state(), "deviated");
        assert_eq!(run_exit_code(&j), 1);

        let doc = experiment_doc(
            vec![probe("p", "flaky_err", json!(true))],
            vec![action("a", "act")],
            vec![action("u", "undo")],
        );
        let j = run(&doc, &deviating_python(), |_| {}).await;
        assert_eq!((j.status, j.deviated, j.rollbacks.len()), (JournalStatus::Failed, true, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn rollback_strategies() {
        use RollbackStrategy::*;
        // Outcomes: completed, deviated, failed (errored before probe), interrupted (cancelled).
        let scenarios = [
            ("completed", "healthy"),
            ("deviated", "flaky"),
            ("failed", "broken"),
            ("interrupted", "healthy"),
        ];
        let expected = [
            (Default, [true, true, false, false]),
            (Always, [true, true, true, true]),
            (Never, [false, false, false, false]),
            (Deviated, [false, true, false, false]),
        ];
        for (strategy, plays) in expected {
            for ((scenario, func), played) in scenarios.iter().zip(plays) {
                let doc = experiment_doc(
                    vec![probe("p", func, json!(true))],
                    vec![action("a", "act")],
                    vec![action("u", "undo")],
                );
                let cancel = CancellationToken::new();
                if *scenario == "interrupted" {
                    cancel.cancel();
                }
                let j = run_doc(&doc, &deviating_python(), &NoControls, &[], cancel, |s| {
                    s.rollback_strategy = strategy
                })
                .await;
                let status = if j.deviated { "deviated" } else { j.status.as_str() };
                assert_eq!(status, *scenario, "{strategy} {scenario}");
                assert_eq!(j.rollbacks.len() == 1, played, "{strategy} {scenario}");
            }
        }
    }

    /// `sys.outage` misses its tolerance from t=3 s to t=6 s.
    fn outage_python(start: Instant) -> FakePython {
        python().with("sys", "outage", move |_| Ok(json!(!(3..6).contains(&since(start)))))
    }

    fn outage_doc() -> Value {
        let mut a1 = action("a1", "act");
        a1["pauses"] = json!({"after": 10});
        experiment_doc(
            vec![probe("p", "outage", json!(true))],
            vec![a1, action("a2", "act")],
            vec![action("u", "undo")],
        )
    }

    #[tokio::test(start_paused = true)]
    async fn continuous_hypothesis_sees_what_before_and_after_miss() {
        let py = outage_python(Instant::now());
        let j = run(&outage_doc(), &py, |s| s.hypothesis_strategy = HypothesisStrategy::Continuously).await;
        let misses = j.steady_states.during.iter().filter(|s| !s.steady_state_met).count();
        assert_eq!((j.steady_states.during.len(), misses), (11, 3));
        assert_eq!((j.status, j.deviated), (JournalStatus::Completed, false), "during misses never deviate");
        assert_eq!(names(&j.run), ["a1", "a2"]);
        assert_eq!(j.rollbacks.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn fail_fast_stops_the_method_after_the_activity_in_progress() {
        let py = outage_python(Instant::now());
        let j = run(&outage_doc(), &py, |s| {
            s.hypothesis_strategy = HypothesisStrategy::Continuously;
            s.fail_fast = true;
        })
        .await;
        let during: Vec<bool> = j.steady_states.during.iter().map(|s| s.steady_state_met).collect();
        assert_eq!(during, [true, true, true, false]);
        assert_eq!(names(&j.run), ["a1"], "a2 never starts");
        assert_eq!(j.duration, 10.0, "a1's pause runs to its end, as in the lib");
        assert!(j.steady_states.after.as_ref().unwrap().steady_state_met);
        assert_eq!((j.status, j.deviated, j.rollbacks.len()), (JournalStatus::Failed, false, 0));
        assert_eq!(run_exit_code(&j), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_run_in_virtual_time() {
        let wall = std::time::Instant::now();
        let mut a = action("a", "act");
        a["pauses"] = json!({"before": 30, "after": 120});
        let j = run(&experiment_doc(vec![], vec![a], vec![]), &python(), |_| {}).await;
        assert!(wall.elapsed() < Duration::from_secs(5));
        assert_eq!(j.duration, 150.0);
        assert_eq!((j.start.as_str(), j.end.as_str()), ("2024-01-01T00:00:00", "2024-01-01T00:02:30"));
        let a = &j.run[0];
        assert_eq!(
            (a.start.as_str(), a.end.as_str(), a.duration),
            ("2024-01-01T00:00:30", "2024-01-01T00:00:30", 0.0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn template_pauses_and_dry_modes() {
        let mut doc = experiment_doc(vec![], vec![], vec![]);
        let mut a = action("a", "act");
        a["pauses"] = json!({"after": "${settle}"});
        doc["method"] = json!([a, probe("look", "healthy", Value::Null)]);
        doc["configuration"] = json!({"settle": 45});
        let j = run(&doc, &python(), |_| {}).await;
        assert_eq!(j.duration, 45.0);
        assert_eq!(j.experiment["dry"], Value::Null);

        let py = python();
        let j = run(&doc, &py, |s| s.dry = Some(Dry::Pause)).await;
        assert_eq!((j.duration, py.call_names().len()), (0.0, 2));
        assert_eq!(j.experiment["dry"], "pause");

        let py = python();
        let j = run(&doc, &py, |s| s.dry = Some(Dry::Actions)).await;
        assert_eq!((j.duration, py.call_names()), (0.0, vec!["healthy".to_owned()]));
        assert_eq!((j.run[0].status, &j.run[0].output), (RunStatus::Succeeded, &Value::Null));

        doc["configuration"] = json!({"settle": "soon"});
        let j = run(&doc, &python(), |_| {}).await;
        assert_eq!(
            j.status,
            JournalStatus::Aborted,
            "a pause that is not a number aborts, as time.sleep('soon') would"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn journal_has_the_lib_structure() {
        let mut doc = experiment_doc(
            vec![probe("p", "healthy", json!(true))],
            vec![action("a", "act")],
            vec![action("u", "undo")],
        );
        doc["title"] = json!("Lag on ${topic}");
        doc["configuration"] = json!({"topic": "poke-orders"});
        let j = run(&doc, &python(), |_| {}).await;
        let v: Value = serde_json::from_str(&j.to_json_pretty()).unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(&v),
            [
                "chaoslib-version",
                "platform",
                "node",
                "experiment",
                "start",
                "status",
                "deviated",
                "steady_states",
                "run",
                "rollbacks",
                "end",
                "duration"
            ]
        );
        assert_eq!(keys(&v["steady_states"]), ["before", "after", "during"]);
        assert_eq!(keys(&v["steady_states"]["before"]), ["steady_state_met", "probes"]);
        assert_eq!(
            keys(&v["steady_states"]["before"]["probes"][0]),
            ["activity", "output", "start", "status", "end", "duration", "tolerance_met"]
        );
        assert_eq!(keys(&v["run"][0]), ["activity", "output", "start", "status", "end", "duration"]);
        assert_eq!(
            (v["status"].as_str(), v["run"][0]["status"].as_str()),
            (Some("completed"), Some("succeeded"))
        );
        assert_eq!(v["run"][0]["activity"], doc["method"][0]);
        assert_eq!(v["run"][0]["output"], "done");
        assert_eq!(v["rollbacks"][0]["output"], "undone");
        assert_eq!(v["experiment"]["title"], "Lag on poke-orders");
        assert_eq!(v["steady_states"]["during"], json!([]));
    }

    #[tokio::test(start_paused = true)]
    async fn background_activities_run_alongside_and_keep_their_place() {
        let py =
            python().returning("sys", "load", json!("bg")).delayed("sys", "load", 5).delayed("sys", "act", 1);
        let mut bg = action("bg", "load");
        bg["background"] = json!(true);
        let j = run(&experiment_doc(vec![], vec![bg, action("fg", "act")], vec![]), &py, |_| {}).await;
        assert_eq!(names(&j.run), ["bg", "fg"]);
        assert_eq!(
            (j.run[0].end.as_str(), j.run[1].end.as_str()),
            ("2024-01-01T00:00:05", "2024-01-01T00:00:01")
        );
        assert_eq!(j.duration, 5.0);
    }

    #[tokio::test(start_paused = true)]
    async fn controls_wrap_every_level_in_order() {
        use crate::chaos::experiment::model::ControlLevel::*;
        use crate::chaos::experiment::model::ControlScope::*;
        let controls = RecordingControls::new().on("ctl.trace", |_, _| ControlFlow::Continue(()));
        let mut doc = experiment_doc(
            vec![probe("p", "healthy", json!(true))],
            vec![action("a", "act")],
            vec![action("u", "undo")],
        );
        doc["controls"] = json!([{"name": "trace", "provider": {"type": "python", "module": "ctl.trace"}}]);
        let j = run_doc(&doc, &python(), &controls, &[], CancellationToken::new(), |_| {}).await;
        assert_eq!(j.status, JournalStatus::Completed);
        let hooks = controls.hooks();
        let seen: Vec<(ControlLevel, ControlScope, Option<&str>)> =
            hooks.iter().map(|h| (h.level, h.scope, h.context_name.as_deref())).collect();
        let hypothesis = [
            (Hypothesis, Before, None),
            (Activity, Before, Some("p")),
            (Activity, After, Some("p")),
            (Hypothesis, After, None),
        ];
        let mut expected = vec![(Experiment, Before, None)];
        expected.extend(hypothesis);
        expected.extend([
            (Method, Before, None),
            (Activity, Before, Some("a")),
            (Activity, After, Some("a")),
            (Method, After, None),
        ]);
        expected.extend(hypothesis);
        expected.extend([
            (Rollback, Before, None),
            (Activity, Before, Some("u")),
            (Activity, After, Some("u")),
            (Rollback, After, None),
        ]);
        expected.push((Experiment, After, None));
        assert_eq!(seen, expected);
        let activity_after =
            hooks.iter().find(|h| h.context_name.as_deref() == Some("a") && h.scope == After).unwrap();
        assert_eq!(activity_after.state.as_ref().unwrap()["output"], "done");
        assert_eq!(hooks.last().unwrap().state.as_ref().unwrap()["status"], "completed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_safeguard_control_interrupts_and_rollbacks_follow_the_strategy() {
        for (strategy, rollbacks) in [(RollbackStrategy::Default, 0), (RollbackStrategy::Always, 1)] {
            let controls = RecordingControls::new().on("ctl.safeguard", |hook, _| {
                let risky = hook.context.get("name").and_then(Value::as_str) == Some("risky");
                if risky && hook.scope == ControlScope::Before {
                    ControlFlow::Break(Interrupt::new("unsafe"))
                } else {
                    ControlFlow::Continue(())
                }
            });
            let mut doc = experiment_doc(
                vec![probe("p", "healthy", json!(true))],
                vec![action("a", "act"), action("risky", "act"), action("b", "act")],
                vec![action("u", "undo")],
            );
            doc["controls"] =
                json!([{"name": "safeguard", "provider": {"type": "python", "module": "ctl.safeguard"}}]);
            let py = python();
            let j = run_doc(&doc, &py, &controls, &[], CancellationToken::new(), |s| {
                s.rollback_strategy = strategy
            })
            .await;
            assert_eq!(j.status, JournalStatus::Interrupted);
            assert_eq!(names(&j.run), ["a"]);
            assert!(j.steady_states.after.is_none());
            assert_eq!(j.rollbacks.len(), rollbacks, "{strategy}");
            assert_eq!(run_exit_code(&j), 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_mid_pause_interrupts_and_follows_the_rollback_strategy() {
        for (strategy, rollbacks) in [(RollbackStrategy::Default, 0), (RollbackStrategy::Always, 1)] {
            let cancel = CancellationToken::new();
            let trigger = cancel.clone();
            let signal = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                trigger.cancel();
            });
            let mut a1 = action("a1", "act");
            a1["pauses"] = json!({"after": 120});
            let doc = experiment_doc(
                vec![probe("p", "healthy", json!(true))],
                vec![a1, action("a2", "act")],
                vec![action("u", "undo")],
            );
            let py = python();
            let j = run_doc(&doc, &py, &NoControls, &[], cancel, |s| s.rollback_strategy = strategy).await;
            signal.await.unwrap();
            assert_eq!(j.status, JournalStatus::Interrupted);
            assert!(j.run.is_empty(), "the activity interrupted in its pause is not recorded");
            assert!(j.steady_states.after.is_none());
            assert_eq!(j.rollbacks.len(), rollbacks, "{strategy}");
            assert_eq!(j.duration, 30.0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn outputs_feed_later_activities_and_rollbacks() {
        let py = python().returning("sys", "make", json!({"id": 42})).returning("sys", "use", json!(null));
        let mut inspect = action("inspect", "use");
        inspect["provider"]["arguments"] =
            json!({"order": "${output:create order}", "text": "order ${output:create order}"});
        let mut cleanup = action("cleanup", "use");
        cleanup["provider"]["arguments"] = json!({"id": "${output:create order}"});
        let doc = experiment_doc(vec![], vec![action("create order", "make"), inspect], vec![cleanup]);
        run(&doc, &py, |_| {}).await;
        let args: Vec<Value> = py.calls().into_iter().filter(|c| c.func == "use").map(|c| c.args).collect();
        assert_eq!(
            args,
            [json!({"order": {"id": 42}, "text": "order {'id': 42}"}), json!({"id": {"id": 42}})]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_activities_go_on_unless_asked_to_fail_the_run() {
        let doc = experiment_doc(
            vec![],
            vec![probe("bad", "broken", Value::Null), action("b", "act")],
            vec![action("u", "undo")],
        );
        let j = run(&doc, &python(), |_| {}).await;
        assert_eq!(
            (j.status, names(&j.run), j.run[0].status),
            (JournalStatus::Completed, vec!["bad", "b"], RunStatus::Failed)
        );
        let j = run(&doc, &python(), |s| s.fail_on_activity_failure = true).await;
        assert_eq!((j.status, names(&j.run), j.rollbacks.len()), (JournalStatus::Failed, vec!["bad"], 0));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_until_polls_instead_of_sleeping() {
        // The broker is back 40 s after the run starts.
        let broker = || {
            let start = Instant::now();
            python().with("sys", "recovered", move |_| Ok(json!(since(start) >= 40)))
        };
        let wait = |timeout: u64| {
            let mut a = action("reboot", "act");
            a["pauses"] = json!({"after": {"wait-until": {"timeout": timeout, "frequency": 5,
                "probe": {"type": "probe", "name": "broker back", "tolerance": true,
                          "provider": {"type": "python", "module": "sys", "func": "recovered"}}}}});
            experiment_doc(vec![], vec![a], vec![])
        };
        let j = run(&wait(100), &broker(), |_| {}).await;
        let outcome = &j.run[0].wait_until.as_ref().unwrap()["after"];
        assert_eq!((outcome.met, outcome.attempts, outcome.waited), (true, 9, 40.0));
        assert_eq!(j.duration, 40.0);

        let j = run(&wait(20), &broker(), |_| {}).await;
        let outcome = &j.run[0].wait_until.as_ref().unwrap()["after"];
        assert_eq!((outcome.met, outcome.attempts, outcome.waited), (false, 5, 20.0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unresolvable_reference_aborts_and_default_rollbacks_still_play() {
        let py = python();
        let mut experiment =
            validate(&experiment_doc(vec![], vec![action("a", "act")], vec![action("u", "undo")]), &py)
                .unwrap();
        experiment.method.push(ActivityEntry::Ref("ghost".into()));
        let settings = RunSettings::new(Vars::default());
        let j = run_experiment(&experiment, settings, &py, &NoControls, CancellationToken::new(), sim_now())
            .await;
        assert_eq!((j.status, names(&j.run), j.rollbacks.len()), (JournalStatus::Aborted, vec!["a"], 1));
    }

    #[tokio::test(start_paused = true)]
    async fn dynamic_configuration_is_evaluated_at_start() {
        let py = python().returning("sys", "token", json!("s3cr3t")).returning("sys", "use", json!(null));
        let mut doc = experiment_doc(vec![], vec![action("use it", "use")], vec![]);
        doc["method"][0]["provider"]["arguments"] = json!({"t": "${token}"});
        doc["configuration"] = json!({"token": {"type": "probe", "name": "fetch token",
            "provider": {"type": "python", "module": "sys", "func": "token"}}});
        run(&doc, &py, |_| {}).await;
        assert_eq!(py.calls().last().unwrap().args, json!({"t": "s3cr3t"}));
    }

    #[test]
    fn runs_are_send_so_live_mode_can_spawn_them() {
        fn assert_send<T: Send>(_: &T) {}
        let py = python();
        let experiment = validate(&experiment_doc(vec![], vec![], vec![]), &py).unwrap();
        let run = run_experiment(
            &experiment,
            RunSettings::new(Vars::default()),
            &py,
            &NoControls,
            CancellationToken::new(),
            Arc::new(Utc::now),
        );
        assert_send(&run);
    }

    /// Runs a continuous, paused, backgrounded experiment on a fresh paused runtime.
    fn journal_text() -> String {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        runtime.block_on(async {
            let py = outage_python(Instant::now())
                .returning("sys", "load", json!([1, 2]))
                .delayed("sys", "load", 4);
            let mut doc = outage_doc();
            let mut bg = action("bg", "load");
            bg["background"] = json!(true);
            doc["method"].as_array_mut().unwrap().insert(0, bg);
            run(&doc, &py, |s| s.hypothesis_strategy = HypothesisStrategy::Continuously)
                .await
                .to_json_pretty()
        })
    }

    #[test]
    fn the_same_run_gives_the_same_journal_bytes() {
        let first = journal_text();
        assert!(first.contains("\"during\"") && first.len() > 10_000, "{}", first.len());
        assert_eq!(first, journal_text());
    }
}
