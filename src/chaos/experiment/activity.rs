//! Running one activity, as chaostoolkit-lib's `execute_activity` does: activity-level controls
//! around everything, the pause before, the provider call (timed, recorded), the pause after.
//!
//! The [`Engine`] is the state every part of a run shares: the experiment, the providers and
//! controls, the live configuration and secrets (controls may change them while background
//! activities and the continuous hypothesis read them), the outputs of activities so far (for
//! `${output:NAME}`) and the clock. Pauses sleep on tokio's clock, so in sim mode they take no wall
//! time at all. A clone of the engine is the [`Probing`] that control watches (safeguards) run their
//! probes with.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::config::Vars;
use super::control::{Controls, Hook, applicable};
use super::journal::{ActivityRun, RunStatus, WaitOutcome, seconds_between};
use super::model::{
    Activity, ActivityEntry, ActivityKind, ControlDecl, ControlLevel, ControlScope, Dry, Experiment, Pause,
    Tolerance, WaitUntil,
};
use super::provider::{BoxFuture, PythonProviders, run_provider};
use super::run::Now;
use super::substitute::{Bindings, Outputs, substitute_str};
use super::tolerance::within_tolerance;
use super::validate::{ValidationError, validate_activity};
use super::watch::Probing;

/// Why the run cannot go on normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Halt {
    /// A control interrupted the run, or it was cancelled (the lib's `InterruptExecution` and
    /// `KeyboardInterrupt`): status `interrupted`.
    Interrupted(String),
    /// An unexpected problem (the lib's "any other exception" in the method): status `aborted`.
    Aborted(String),
}

/// What every part of a run shares. A clone shares the same live state (it is how control watches
/// get the run's [`Probing`]).
#[derive(Clone)]
pub(crate) struct Engine<'a> {
    pub experiment: &'a Experiment,
    pub python: &'a dyn PythonProviders,
    pub controls: &'a dyn Controls,
    /// Global controls (from the settings) that configured successfully.
    pub globals: Arc<Vec<ControlDecl>>,
    /// The live configuration and secrets; locked only around control hooks and snapshots.
    pub vars: Arc<tokio::sync::Mutex<Vars>>,
    /// Outputs of the activities run so far, by name.
    pub outputs: Arc<std::sync::Mutex<Outputs>>,
    pub now: Now,
    pub dry: Option<Dry>,
}

/// Who runs an activity: the experiment itself, or a control (a safeguard probe), whose activities
/// are neither recorded as outputs nor skipped by a dry run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Run,
    Control,
}

impl Engine<'_> {
    /// A consistent copy of the vars and outputs, for substitution and provider calls.
    pub(crate) async fn snapshot(&self) -> (Vars, Outputs) {
        let vars = self.vars.lock().await.clone();
        let outputs = self.outputs.lock().unwrap_or_else(PoisonError::into_inner).clone();
        (vars, outputs)
    }

    fn record_output(&self, name: &str, output: &Value) {
        self.outputs.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned(), output.clone());
    }

    /// Applies the controls that apply at `level` (see [`applicable`]) for `scope`; `own` are the
    /// controls the context declares. The first interruption stops the remaining hooks.
    pub(crate) async fn apply_controls(
        &self,
        level: ControlLevel,
        scope: ControlScope,
        own: &[ControlDecl],
        context: &Value,
        state: Option<&Value>,
    ) -> Result<(), Halt> {
        for control in self.hooked(level, scope, own) {
            self.apply_control(control, level, scope, context, state).await?;
        }
        Ok(())
    }

    /// The controls whose `scope` hook applies at `level` (see [`applicable`]), in order. A `{ref}`
    /// entry is inert: the control it names was added to the list in its place.
    pub(crate) fn hooked<'c>(
        &'c self,
        level: ControlLevel,
        scope: ControlScope,
        own: &'c [ControlDecl],
    ) -> Vec<&'c ControlDecl> {
        let mut list = applicable(level, &self.experiment.controls, own, &self.globals);
        list.retain(|c| c.reference.is_none() && c.scope.is_none_or(|s| s == scope));
        list
    }

    /// One control's `scope` hook at `level`.
    pub(crate) async fn apply_control(
        &self,
        control: &ControlDecl,
        level: ControlLevel,
        scope: ControlScope,
        context: &Value,
        state: Option<&Value>,
    ) -> Result<(), Halt> {
        tracing::debug!(control = %control.name, level = level.as_str(), ?scope, "applying control");
        let hook = Hook { control, level, scope, experiment: self.experiment, context, state };
        let mut vars = self.vars.lock().await;
        if let ControlFlow::Break(interrupt) = self.controls.apply(hook, &mut vars).await {
            tracing::warn!(control = %control.name, reason = %interrupt.reason, "control interrupted the execution");
            return Err(Halt::Interrupted(interrupt.reason));
        }
        Ok(())
    }

    /// Runs a method or rollback entry, resolving a reference first.
    pub(crate) async fn execute(&self, entry: &ActivityEntry) -> Result<ActivityRun, Halt> {
        match entry {
            ActivityEntry::Inline(activity) => self.execute_activity(activity).await,
            ActivityEntry::Ref(name) => match self.experiment.find_activity(name) {
                Some(activity) => self.execute_activity(activity).await,
                None => Err(Halt::Aborted(format!("could not find referenced activity '{name}'"))),
            },
        }
    }

    /// Runs one activity inside its activity-level controls. The after-controls see the run; they
    /// run even when the before-controls interrupted (with no state), like the lib's context manager.
    pub(crate) async fn execute_activity(&self, activity: &Activity) -> Result<ActivityRun, Halt> {
        self.execute_as(activity, Origin::Run).await
    }

    async fn execute_as(&self, activity: &Activity, origin: Origin) -> Result<ActivityRun, Halt> {
        let own = &activity.controls;
        let ran = match self
            .apply_controls(ControlLevel::Activity, ControlScope::Before, own, &activity.raw, None)
            .await
        {
            Ok(()) => self.perform(activity, origin).await,
            Err(halt) => Err(halt),
        };
        let state = ran.as_ref().ok().and_then(|run| serde_json::to_value(run).ok());
        let after = self
            .apply_controls(ControlLevel::Activity, ControlScope::After, own, &activity.raw, state.as_ref())
            .await;
        let run = ran?;
        after.map(|()| run)
    }

    /// True when the dry mode (the activity's own, else the run's) skips this activity.
    pub(crate) fn skips(&self, activity: &Activity) -> bool {
        match activity.dry.or(self.dry) {
            Some(Dry::Activities) => true,
            Some(Dry::Actions) => activity.kind == ActivityKind::Action,
            Some(Dry::Probes) => activity.kind == ActivityKind::Probe,
            Some(Dry::Pause) | None => false,
        }
    }

    /// Pauses, dry mode, the provider call and the run record.
    async fn perform(&self, activity: &Activity, origin: Origin) -> Result<ActivityRun, Halt> {
        let own = origin == Origin::Run;
        let skipped = own && self.skips(activity);
        let skip_pauses = skipped || (own && activity.dry.or(self.dry) == Some(Dry::Pause));
        // Pauses are substituted once, when the activity starts, as the lib does.
        let (vars, outputs) = self.snapshot().await;
        let bindings = vars.bindings(&outputs);
        let mut waits = BTreeMap::new();

        if let Some(pause) = &activity.pauses.before
            && let Some(outcome) = self.pause("before", pause, &bindings, skip_pauses).await?
        {
            waits.insert("before".to_owned(), outcome);
        }

        if own {
            let suffix = if activity.background { " [in background]" } else { "" };
            tracing::info!("{}: {}{suffix}", activity.kind.title(), activity.name);
        } else {
            tracing::debug!("{}: {} [control]", activity.kind.title(), activity.name);
        }
        let start = (self.now)();
        let outcome = if skipped {
            Ok(Value::Null)
        } else {
            let (vars, outputs) = self.snapshot().await;
            run_provider(activity, &vars.bindings(&outputs), self.python).await
        };
        let end = (self.now)();
        match &outcome {
            Ok(v) => tracing::debug!(output = %v, "  => succeeded"),
            Err(e) => tracing::error!("  => failed: {e}"),
        }
        let mut run = ActivityRun::new(activity.raw.clone(), start, end, outcome);
        if own && run.status == RunStatus::Succeeded {
            self.record_output(&activity.name, &run.output);
        }

        if let Some(pause) = &activity.pauses.after
            && let Some(outcome) = self.pause("after", pause, &bindings, skip_pauses).await?
        {
            waits.insert("after".to_owned(), outcome);
        }
        if !waits.is_empty() {
            run.wait_until = Some(waits);
        }
        Ok(run)
    }

    /// One pause. A fixed pause sleeps (on tokio's clock); `wait-until` polls its probe.
    async fn pause(
        &self,
        which: &str,
        pause: &Pause,
        bindings: &Bindings<'_>,
        skip: bool,
    ) -> Result<Option<WaitOutcome>, Halt> {
        let seconds = match pause {
            Pause::Seconds(s) => *s,
            Pause::Template(template) => {
                let value = substitute_str(template, bindings);
                value.as_f64().ok_or_else(|| {
                    Halt::Aborted(format!("pause {which} '{template}' is {value}, not a number of seconds"))
                })?
            }
            Pause::WaitUntil(_) if skip => {
                tracing::info!("Skipping the wait-until pause {which} (dry run)");
                return Ok(None);
            }
            Pause::WaitUntil(wait) => return self.wait_until(which, wait).await.map(Some),
        };
        if seconds == 0.0 {
            return Ok(None);
        }
        let duration = Duration::try_from_secs_f64(seconds)
            .map_err(|e| Halt::Aborted(format!("pause {which} of {seconds}s is not a duration: {e}")))?;
        if skip {
            tracing::info!("Pausing {which} activity for {seconds}s... skipped (dry run)");
        } else {
            tracing::info!("Pausing {which} activity for {seconds}s...");
            tokio::time::sleep(duration).await;
        }
        Ok(None)
    }

    /// Polls the probe every `frequency` seconds until its tolerance holds or `timeout` passes.
    async fn wait_until(&self, which: &str, wait: &WaitUntil) -> Result<WaitOutcome, Halt> {
        let probe = match wait.probe.as_ref() {
            ActivityEntry::Inline(a) => a,
            ActivityEntry::Ref(name) => self
                .experiment
                .find_activity(name)
                .ok_or_else(|| Halt::Aborted(format!("could not find referenced activity '{name}'")))?,
        };
        let tolerance = probe
            .tolerance
            .as_ref()
            .ok_or_else(|| Halt::Aborted(format!("wait-until probe '{}' has no tolerance", probe.name)))?;
        let frequency = Duration::try_from_secs_f64(wait.frequency)
            .map_err(|e| Halt::Aborted(format!("wait-until frequency: {e}")))?;
        let timeout = Duration::try_from_secs_f64(wait.timeout)
            .map_err(|e| Halt::Aborted(format!("wait-until timeout: {e}")))?;
        tracing::info!(
            "Waiting {which} activity until '{}' is within tolerance (at most {}s)...",
            probe.name,
            wait.timeout
        );
        let started = (self.now)();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (vars, outputs) = self.snapshot().await;
            let bindings = vars.bindings(&outputs);
            let met = match run_provider(probe, &bindings, self.python).await {
                Ok(output) => within_tolerance(tolerance, &output, &bindings, self.python).await,
                Err(e) => {
                    tracing::debug!(probe = %probe.name, error = %e, "wait-until probe failed");
                    false
                }
            };
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if met || remaining.is_zero() {
                let waited = seconds_between(started, (self.now)());
                if !met {
                    tracing::warn!("'{}' still not within tolerance after {waited}s; going on", probe.name);
                }
                return Ok(WaitOutcome { met, attempts, waited });
            }
            tokio::time::sleep(frequency.min(remaining)).await;
        }
    }
}

impl Probing for Engine<'_> {
    fn read_activity(&self, raw: &Value, path: &str) -> Result<Activity, Vec<ValidationError>> {
        validate_activity(raw, path, self.python)
    }

    fn run_probe<'b>(&'b self, probe: &'b Activity) -> BoxFuture<'b, Result<ActivityRun, String>> {
        Box::pin(async move {
            self.execute_as(probe, Origin::Control).await.map_err(|halt| match halt {
                Halt::Interrupted(why) | Halt::Aborted(why) => why,
            })
        })
    }

    fn within_tolerance<'b>(&'b self, tolerance: &'b Tolerance, output: &'b Value) -> BoxFuture<'b, bool> {
        Box::pin(async move {
            let (vars, outputs) = self.snapshot().await;
            within_tolerance(tolerance, output, &vars.bindings(&outputs), self.python).await
        })
    }
}
