//! The kernel every stage stands on: time, randomness, the event trace, metrics, and supervision.
//!
//! Nothing here knows about sensors or brokers. The kernel's job is to make a component's life
//! observable (trace, metrics, health) and controllable (start, stop, crash, restart), and to make sim
//! runs reproducible: [`clock`] is the only source of "now" and [`seed`] the only source of randomness.

pub mod clock;
pub mod component;
pub mod hooks;
pub mod logsink;
pub mod metrics;
pub mod seed;
pub mod supervisor;
pub mod task;
pub mod trace;
