//! chaoslab's native Chaos Toolkit experiment engine (format of Chaos Toolkit 1.19, semantics of
//! chaostoolkit-lib 1.45).
//!
//! The path of an experiment through this module:
//! 1. [`load`](load::load) reads a JSON or YAML file into a JSON value;
//! 2. [`validate`](validate::validate) checks it — reporting every problem with its JSON path — and
//!    builds an [`Experiment`];
//! 3. [`resolve_vars`] resolves configuration and secrets (environment,
//!    `--var`, `--var-file`);
//! 4. [`run_experiment`] runs it — steady-state hypothesis, method, rollbacks,
//!    controls, interruption — and returns the [`Journal`];
//! 5. [`run_exit_code`](exit::run_exit_code) turns the journal into the `chaos run` exit code.
//!
//! `python` providers and controls are chaoslab's own, plugged in through
//! [`PythonProviders`] and [`Controls`] (a control that keeps watching the run, such as chaosaddons'
//! safeguards, gets the run's activity machinery through [`watch`]); `http` and
//! `process` providers are built in. [`verify`] runs ChaosIQ verifications. Time is read only
//! through the run's `now` and tokio's clock, so in sim mode a run is virtual-time and deterministic.
//!
//! chaoslab extensions to the format: `${output:NAME}` substitution (substitute), `wait-until`
//! pauses (model), and `fail_on_activity_failure` (settings).

mod activity;
pub mod config;
pub mod control;
pub mod exit;
mod hypothesis;
pub mod journal;
pub mod load;
pub mod model;
pub mod provider;
pub mod pyvalue;
pub mod run;
pub mod settings;
pub mod substitute;
pub mod tolerance;
pub mod validate;
pub mod verify;
pub mod watch;

#[cfg(test)]
mod seeds;
#[cfg(test)]
pub(crate) mod testkit;

pub use config::{VarOverrides, Vars, resolve_vars};
pub use control::{Controls, Hook, Interrupt, NoControls};
pub use journal::{Journal, JournalStatus};
pub use load::{LoadError, load};
pub use model::{Configuration, Experiment, Secrets};
pub use provider::{ActivityError, NoPythonProviders, PythonProviders};
pub use run::{Now, run_experiment};
pub use settings::{RunOptions, RunSettings};
pub use validate::{ValidationError, validate};
pub use watch::{Probing, Watch};
