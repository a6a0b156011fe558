//! Chaos engineering on top of the pipeline.
//!
//! [`experiment`] runs Chaos Toolkit experiments natively: the format, validation with JSON paths,
//! configuration and substitution, every tolerance kind, the run algorithm with hypothesis and rollback
//! strategies, controls and safeguards, the journal, ChaosIQ verification and the CLI's exit codes. Pauses
//! use tokio time, so in sim mode a whole experiment runs in virtual time with a byte-identical journal.
//! chaoslab's own actions and probes plug in through [`experiment::PythonProviders`].

pub mod execute;
pub mod experiment;
pub mod faults;
pub mod providers;
pub mod truth;
