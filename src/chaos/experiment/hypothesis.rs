//! Running the steady-state hypothesis once, as chaostoolkit-lib's `run_steady_state_hypothesis`:
//! hypothesis-level controls around it, then each probe in order (with its own activity controls and
//! pauses), stopping at the first probe that fails or misses its tolerance.

use serde_json::json;

use super::activity::{Engine, Halt};
use super::journal::{ActivityRun, RunStatus, SteadyState};
use super::model::{ControlLevel, ControlScope, Hypothesis};
use super::tolerance::within_tolerance;

impl Engine<'_> {
    /// Runs the hypothesis; `None` when the experiment declares none. The after-controls receive the
    /// state even when a probe's control interrupted (then with the probes run so far).
    pub(crate) async fn run_hypothesis(&self) -> Result<Option<SteadyState>, Halt> {
        let Some(hypothesis) = &self.experiment.steady_state_hypothesis else {
            tracing::debug!("No hypothesis declared.");
            return Ok(None);
        };
        tracing::info!("Steady state hypothesis: {}", hypothesis.title);
        let (own, context) = (&hypothesis.controls, &hypothesis.raw);
        let before =
            self.apply_controls(ControlLevel::Hypothesis, ControlScope::Before, own, context, None).await;
        let mut probes = Vec::new();
        let outcome = match before {
            Ok(()) => self.probe(hypothesis, &mut probes).await,
            Err(halt) => Err(halt),
        };
        let met = outcome.as_ref().ok().copied();
        let state = json!({"steady_state_met": met, "probes": probes});
        let after = self
            .apply_controls(ControlLevel::Hypothesis, ControlScope::After, own, context, Some(&state))
            .await;
        let met = outcome?;
        after?;
        Ok(Some(SteadyState { steady_state_met: met, probes }))
    }

    /// Runs the probes into `probes`; true when every one ran and was within tolerance.
    async fn probe(&self, hypothesis: &Hypothesis, probes: &mut Vec<ActivityRun>) -> Result<bool, Halt> {
        for probe in &hypothesis.probes {
            let mut run = self.execute_activity(probe).await?;
            if run.status == RunStatus::Failed {
                tracing::warn!("Probe terminated unexpectedly, so its tolerance could not be validated");
                run.tolerance_met = Some(false);
                probes.push(run);
                return Ok(false);
            }
            // A probe that a dry run skipped has no output to check.
            let met = match (&probe.tolerance, self.skips(probe)) {
                (Some(tolerance), false) => {
                    let (vars, outputs) = self.snapshot().await;
                    within_tolerance(tolerance, &run.output, &vars.bindings(&outputs), self.python).await
                }
                _ => true,
            };
            run.tolerance_met = Some(met);
            probes.push(run);
            if !met {
                tracing::debug!(probe = %probe.name, "probe not within tolerance");
                return Ok(false);
            }
        }
        tracing::info!("Steady state hypothesis is met!");
        Ok(true)
    }
}
