//! How a run is carried out: strategies, frequency, dry mode, vars and global controls.
//!
//! [`RunOptions`] mirrors the `chaos run` flags (all optional); [`RunSettings::resolve`] applies the
//! CLI's precedence — command line, then the experiment's `runtime`, then the settings' `runtime`,
//! then `default` — and yields the [`RunSettings`] the engine runs with.

use std::time::Duration;

use super::config::Vars;
use super::journal::JournalMeta;
use super::model::{ControlDecl, Dry, Experiment, HypothesisStrategy, RollbackStrategy, Runtime};

/// Everything a run needs besides the experiment, providers, controls, cancellation and clock.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSettings {
    /// When the steady-state hypothesis runs.
    pub hypothesis_strategy: HypothesisStrategy,
    /// Wait between two runs of the hypothesis during the method (`--hypothesis-frequency`, default
    /// 1 s; at least 1 ms, so a zero cannot spin).
    pub hypothesis_frequency: Duration,
    /// `--fail-fast`: stop the method when the during-method hypothesis deviates.
    pub fail_fast: bool,
    /// Percentage of deviated during-method samples that triggers `fail_fast` (the CLI uses 0: the
    /// first miss).
    pub fail_fast_ratio: f64,
    /// Whether rollbacks play.
    pub rollback_strategy: RollbackStrategy,
    /// `--dry`.
    pub dry: Option<Dry>,
    /// chaoslab (chaostoolkit#115/#135): a failed method activity stops the method and fails the
    /// run (`status: failed`), instead of being recorded and ignored.
    pub fail_on_activity_failure: bool,
    /// The resolved configuration and secrets (see [`resolve_vars`](super::config::resolve_vars)).
    pub vars: Vars,
    /// Controls declared in the settings, applied to every experiment.
    pub global_controls: Vec<ControlDecl>,
    /// `chaoslib-version`, `platform` and `node` of the journal.
    pub journal_meta: JournalMeta,
}

impl RunSettings {
    /// Default settings over resolved `vars`.
    pub fn new(vars: Vars) -> Self {
        RunSettings {
            hypothesis_strategy: HypothesisStrategy::Default,
            hypothesis_frequency: Duration::from_secs(1),
            fail_fast: false,
            fail_fast_ratio: 0.0,
            rollback_strategy: RollbackStrategy::Default,
            dry: None,
            fail_on_activity_failure: false,
            vars,
            global_controls: Vec::new(),
            journal_meta: JournalMeta::default(),
        }
    }

    /// Settings for `experiment` from command-line `options` and the settings file's `runtime`.
    pub fn resolve(
        experiment: &Experiment,
        options: &RunOptions,
        settings_runtime: &Runtime,
        vars: Vars,
    ) -> Self {
        let defaults = RunSettings::new(vars);
        RunSettings {
            hypothesis_strategy: options
                .hypothesis_strategy
                .or(experiment.runtime.hypothesis_strategy)
                .or(settings_runtime.hypothesis_strategy)
                .unwrap_or_default(),
            rollback_strategy: options
                .rollback_strategy
                .or(experiment.runtime.rollback_strategy)
                .or(settings_runtime.rollback_strategy)
                .unwrap_or_default(),
            hypothesis_frequency: options.hypothesis_frequency.unwrap_or(defaults.hypothesis_frequency),
            fail_fast: options.fail_fast,
            dry: options.dry,
            fail_on_activity_failure: options.fail_on_activity_failure,
            ..defaults
        }
    }
}

/// The `chaos run` flags that shape a run; `None` means "not given".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunOptions {
    /// `--hypothesis-strategy`.
    pub hypothesis_strategy: Option<HypothesisStrategy>,
    /// `--rollback-strategy`.
    pub rollback_strategy: Option<RollbackStrategy>,
    /// `--hypothesis-frequency`.
    pub hypothesis_frequency: Option<Duration>,
    /// `--fail-fast`.
    pub fail_fast: bool,
    /// `--dry`.
    pub dry: Option<Dry>,
    /// `--fail-on-activity-failure` (chaoslab).
    pub fail_on_activity_failure: bool,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chaos::experiment::provider::NoPythonProviders;
    use crate::chaos::experiment::validate::validate;

    #[test]
    fn command_line_then_experiment_then_settings_then_default() {
        let with_runtime = validate(
            &json!({"title": "t", "description": "d", "method": [],
                    "runtime": {"hypothesis": {"strategy": "continuously"}}}),
            &NoPythonProviders,
        )
        .unwrap();
        let settings_runtime = Runtime {
            rollback_strategy: Some(RollbackStrategy::Always),
            hypothesis_strategy: Some(HypothesisStrategy::Skip),
        };

        let s =
            RunSettings::resolve(&with_runtime, &RunOptions::default(), &settings_runtime, Vars::default());
        assert_eq!(
            (s.hypothesis_strategy, s.rollback_strategy),
            (HypothesisStrategy::Continuously, RollbackStrategy::Always)
        );

        let cli = RunOptions {
            hypothesis_strategy: Some(HypothesisStrategy::BeforeMethodOnly),
            rollback_strategy: Some(RollbackStrategy::Never),
            hypothesis_frequency: Some(Duration::from_millis(500)),
            fail_fast: true,
            ..RunOptions::default()
        };
        let s = RunSettings::resolve(&with_runtime, &cli, &settings_runtime, Vars::default());
        assert_eq!(
            (s.hypothesis_strategy, s.rollback_strategy),
            (HypothesisStrategy::BeforeMethodOnly, RollbackStrategy::Never)
        );
        assert_eq!(s.hypothesis_frequency, Duration::from_millis(500));
        assert!(s.fail_fast);

        let s =
            RunSettings::resolve(&with_runtime, &RunOptions::default(), &Runtime::default(), Vars::default());
        assert_eq!(s.rollback_strategy, RollbackStrategy::Default);
    }
}
