//! ChaosIQ verifications (`chaos verify`, chaosiq-cloud): an experiment measured from start to end.
//!
//! A verification is an experiment with exactly one `chaosiq` extension holding
//! `verification: {id, warm-up-duration, frequency-of-measurement, duration-of-conditions,
//! cool-down-duration}` (seconds). chaoslab runs it as chaosiq-cloud's original loop did, the one
//! that matches the words: the steady-state hypothesis is *measured* every
//! `frequency-of-measurement` seconds throughout (no before/after gate) into `journal.measurements`,
//! while the run waits the warm-up, plays the method (the "conditions"), keeps them for
//! `duration-of-conditions`, then waits the cool-down; measurements stop and rollbacks follow their
//! strategy. (The later chaosiq-cloud loop never passed the frequency on and never ran the cool-down;
//! those gaps are not reproduced.)
//!
//! The summary counts met (`successful`), not met (`deviated`) and missing (`not_run`) samples, as
//! chaosiq-cloud reports them. The journal is `deviated` when any sample deviated, so a verification
//! that saw the system leave its steady state exits 1.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::activity::Halt;
use super::control::Controls;
use super::journal::{ActivityRun, Journal, SteadyState};
use super::model::{ControlScope, Experiment};
use super::provider::PythonProviders;
use super::run::{Now, Runner, Sampling};
use super::settings::RunSettings;
use super::validate::ValidationError;

/// The `chaosiq` extension's `verification` block.
#[derive(Clone, Debug, PartialEq)]
pub struct Verification {
    /// `id`.
    pub id: String,
    /// `warm-up-duration`: wait before the conditions (default 0).
    pub warm_up: Duration,
    /// `frequency-of-measurement`: wait between two measurements.
    pub frequency: Duration,
    /// `duration-of-conditions`: keep the conditions this long after the method.
    pub duration_of_conditions: Duration,
    /// `cool-down-duration`: wait after the conditions (default 0).
    pub cool_down: Duration,
}

/// How the measurements went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerificationSummary {
    /// Samples where the steady state held.
    pub successful_samples: usize,
    /// Samples where it did not.
    pub deviated_samples: usize,
    /// Samples that did not run (always 0 here: an interrupted measurement is not recorded).
    pub not_run_samples: usize,
    /// All samples.
    pub total_number_of_samples: usize,
    /// Seconds the verification took.
    pub total_duration: f64,
}

impl VerificationSummary {
    /// Counts `measurements`.
    pub fn of(measurements: &[SteadyState], total_duration: f64) -> Self {
        let successful = measurements.iter().filter(|m| m.steady_state_met).count();
        VerificationSummary {
            successful_samples: successful,
            deviated_samples: measurements.len() - successful,
            not_run_samples: 0,
            total_number_of_samples: measurements.len(),
            total_duration,
        }
    }
}

/// Reads the verification block: exactly one `chaosiq` extension, with `id`,
/// `frequency-of-measurement` and `duration-of-conditions` required.
pub fn verification_of(experiment: &Experiment) -> Result<Verification, Vec<ValidationError>> {
    let chaosiq: Vec<(usize, &Value)> = experiment
        .extensions
        .iter()
        .enumerate()
        .filter(|(_, e)| e.get("name").and_then(Value::as_str) == Some("chaosiq"))
        .collect();
    let [(index, extension)] = chaosiq.as_slice() else {
        return Err(vec![ValidationError::new(
            "$.extensions",
            format!("a verification needs exactly one 'chaosiq' extension, found {}", chaosiq.len()),
        )]);
    };
    let path = format!("$.extensions[{index}].verification");
    let Some(block) = extension.get("verification").and_then(Value::as_object) else {
        return Err(vec![ValidationError::new(path, "the chaosiq extension needs a `verification` mapping")]);
    };
    let mut errors = Vec::new();
    let id = match block.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => {
            errors.push(ValidationError::new(format!("{path}.id"), "a verification needs an `id`"));
            None
        }
    };
    let mut seconds = |key: &str, required: bool| -> Option<Duration> {
        match block.get(key) {
            None if !required => Some(Duration::ZERO),
            value => match value.and_then(Value::as_f64).and_then(|s| Duration::try_from_secs_f64(s).ok()) {
                Some(d) if key != "frequency-of-measurement" || !d.is_zero() => Some(d),
                _ => {
                    errors.push(ValidationError::new(
                        format!("{path}.{key}"),
                        format!(
                            "`{key}` must be a {} number of seconds",
                            if required { "positive" } else { "non-negative" }
                        ),
                    ));
                    None
                }
            },
        }
    };
    let warm_up = seconds("warm-up-duration", false);
    let frequency = seconds("frequency-of-measurement", true);
    let duration_of_conditions = seconds("duration-of-conditions", true);
    let cool_down = seconds("cool-down-duration", false);
    match (id, warm_up, frequency, duration_of_conditions, cool_down) {
        (Some(id), Some(warm_up), Some(frequency), Some(duration_of_conditions), Some(cool_down))
            if errors.is_empty() =>
        {
            Ok(Verification { id, warm_up, frequency, duration_of_conditions, cool_down })
        }
        _ => Err(errors),
    }
}

/// Runs a verification; returns its journal (with `measurements`) and summary.
pub async fn run_verification(
    experiment: &Experiment,
    verification: &Verification,
    settings: RunSettings,
    providers: &dyn PythonProviders,
    controls: &dyn Controls,
    cancel: CancellationToken,
    now: Now,
) -> (Journal, VerificationSummary) {
    let runner = Runner::prepare(experiment, &settings, providers, controls, cancel, now).await;
    let journal = runner.watching(verify(&runner, verification)).await;
    let summary =
        VerificationSummary::of(journal.measurements.as_deref().unwrap_or_default(), journal.duration);
    tracing::info!(
        id = %verification.id,
        successful = summary.successful_samples,
        deviated = summary.deviated_samples,
        "Verification finished"
    );
    (journal, summary)
}

/// The verification's run, from the journal's start to the controls' end.
async fn verify(runner: &Runner<'_>, verification: &Verification) -> Journal {
    let (mut journal, started) = runner.open_journal().await;
    tracing::info!(id = %verification.id, "Starting verification");

    let outcome = match runner.experiment_controls(ControlScope::Before, None).await {
        Err(halt) => Err(halt),
        Ok(()) => {
            let stop = CancellationToken::new();
            let conditions = async {
                let outcome = conditions(runner, verification).await;
                stop.cancel();
                outcome
            };
            let sampling = Sampling { frequency: verification.frequency, fail_fast_ratio: None };
            // Fixed polling order, measurements first (see `run`).
            let (measurements, (runs, outcome)) =
                futures::future::join(runner.sample(&stop, sampling), conditions).await;
            journal.run = runs;
            journal.deviated = measurements.iter().any(|m| !m.steady_state_met);
            journal.measurements = Some(measurements);
            outcome
        }
    };
    runner.settle(outcome);
    runner.rollback_phase(&mut journal).await;
    runner.close(&mut journal, started).await;
    journal
}

/// Warm-up, method, duration of conditions, cool-down; stops at the first interruption.
async fn conditions(
    runner: &Runner<'_>,
    verification: &Verification,
) -> (Vec<ActivityRun>, Result<(), Halt>) {
    let wait = |what: &'static str, d: Duration| async move {
        if !d.is_zero() {
            tracing::info!("{what} for {}s...", d.as_secs_f64());
            runner
                .cancellable(async {
                    tokio::time::sleep(d).await;
                    Ok(())
                })
                .await?;
        }
        Ok::<(), Halt>(())
    };
    if let Err(halt) = wait("Warming up", verification.warm_up).await {
        return (Vec::new(), Err(halt));
    }
    let (runs, halt) = runner.method().await;
    if let Some(halt) = halt {
        return (runs, Err(halt));
    }
    let rest = async {
        wait("Keeping the conditions", verification.duration_of_conditions).await?;
        wait("Cooling down", verification.cool_down).await
    };
    (runs, rest.await)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::time::Instant;

    use super::*;
    use crate::chaos::experiment::config::Vars;
    use crate::chaos::experiment::control::NoControls;
    use crate::chaos::experiment::exit::run_exit_code;
    use crate::chaos::experiment::journal::JournalStatus;
    use crate::chaos::experiment::testkit::{FakePython, action, experiment_doc, probe, sim_now, since};
    use crate::chaos::experiment::validate::validate;

    fn with_block(block: Value) -> Value {
        let mut doc = experiment_doc(
            vec![probe("p", "outage", json!(true))],
            vec![action("a", "act")],
            vec![action("u", "undo")],
        );
        doc["extensions"] = json!([{"name": "other"}, {"name": "chaosiq", "verification": block}]);
        doc
    }

    #[test]
    fn the_verification_block_is_read_and_checked() {
        let py = FakePython::new()
            .returning("sys", "outage", json!(true))
            .returning("sys", "act", json!(1))
            .returning("sys", "undo", json!(1));
        let sample = json!({"id": "v-1", "warm-up-duration": 2, "frequency-of-measurement": 2,
                            "duration-of-conditions": 10, "cool-down-duration": 2});
        let v = verification_of(&validate(&with_block(sample), &py).unwrap()).unwrap();
        assert_eq!(v.id, "v-1");
        assert_eq!(
            (v.warm_up, v.frequency, v.duration_of_conditions, v.cool_down),
            (Duration::from_secs(2), Duration::from_secs(2), Duration::from_secs(10), Duration::from_secs(2))
        );

        let errors =
            verification_of(&validate(&with_block(json!({"frequency-of-measurement": 0})), &py).unwrap())
                .unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.extensions[1].verification.id",
                "$.extensions[1].verification.frequency-of-measurement",
                "$.extensions[1].verification.duration-of-conditions"
            ]
        );
        let none = validate(&experiment_doc(vec![], vec![], vec![]), &py).unwrap();
        assert_eq!(verification_of(&none).unwrap_err()[0].path, "$.extensions");
    }

    #[tokio::test(start_paused = true)]
    async fn measurements_run_throughout_and_are_summarised() {
        let start = Instant::now();
        let py = FakePython::new()
            .with("sys", "outage", move |_| Ok(json!(!(3..6).contains(&since(start)))))
            .returning("sys", "act", json!("done"))
            .returning("sys", "undo", json!("undone"));
        let block = json!({"id": "v-1", "warm-up-duration": 2, "frequency-of-measurement": 2,
                           "duration-of-conditions": 10, "cool-down-duration": 2});
        let experiment = validate(&with_block(block), &py).unwrap();
        let verification = verification_of(&experiment).unwrap();
        let (journal, summary) = run_verification(
            &experiment,
            &verification,
            RunSettings::new(Vars::default()),
            &py,
            &NoControls,
            CancellationToken::new(),
            sim_now(),
        )
        .await;
        // Samples at t = 0, 2, …, 14 (warm-up 2 + conditions 10 + cool-down 2); the outage hits t = 4.
        assert_eq!(
            summary,
            VerificationSummary {
                successful_samples: 7,
                deviated_samples: 1,
                not_run_samples: 0,
                total_number_of_samples: 8,
                total_duration: 14.0
            }
        );
        assert_eq!(journal.run[0].start, "2024-01-01T00:00:02", "the method starts after the warm-up");
        assert!(journal.steady_states.before.is_none() && journal.steady_states.after.is_none());
        assert_eq!(
            (journal.status, journal.deviated, journal.rollbacks.len()),
            (JournalStatus::Completed, true, 1)
        );
        assert_eq!(run_exit_code(&journal), 1);
        let v = serde_json::to_value(&journal).unwrap();
        assert_eq!(v["measurements"].as_array().map(Vec::len), Some(8));
    }
}
