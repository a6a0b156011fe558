//! Chaos Mesh, natively: its objects (`NetworkChaos`, `PodChaos`, `TimeChaos`, `IOChaos`, `Schedule`,
//! `Workflow`, `StatusCheck`, …) read from the same YAML files and run against the pipeline's components seen
//! as pods, with Chaos Mesh's controller semantics, in virtual time in sim mode. Every pipeline owns an
//! [`Engine`] (`Pipeline::mesh`); `chaoslab mesh`, the HTTP API and a flow's `[[mesh]]` files create objects
//! in it.
//!
//! - [`duration`]: Go's duration syntax, which every Chaos Mesh duration uses;
//! - [`cron`]: schedules as robfig/cron reads them (`croner` underneath);
//! - [`schema`]: the objects as typed values, field for field;
//! - [`select`]: components as pods, and selectors and modes over them;
//! - [`jsonnet`]: `.jsonnet` files rendered to objects;
//! - [`load`]: reading files (every problem with file, line and key);
//! - [`plan`]: an object compiled into faults of the catalogue, schedules and workflow nodes, with the
//!   version traps as warnings;
//! - [`engine`]: the controllers (chaos, Schedule, Workflow, StatusCheck) as tasks of the run;
//! - [`events`]: events like Chaos Mesh's, to the trace, metrics and `mesh-events.jsonl`.

pub mod cron;
pub mod duration;
pub mod engine;
pub mod events;
pub mod jsonnet;
pub mod load;
pub mod plan;
pub mod schema;
pub mod select;

pub use engine::Engine;
pub use events::{Events, MeshEvent};
pub use load::{Loaded, load_files};
