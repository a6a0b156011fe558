//! The fault catalogue: faults as data, applied to a running pipeline and removed again.
//!
//! - [`spec`]: the catalogue of kinds and the request format (kind, target selector, parameters,
//!   duration), checked up front with every problem named;
//! - [`selector`]: target patterns and Chaos Mesh's modes (`one`, `all`, `fixed`, `fixed-percent`,
//!   `random-max-percent`), picked from a seeded stream;
//! - [`manager`]: applies, lists, expires and removes faults, composing overlapping ones, with trace
//!   events and metrics;
//! - [`http`]: the HTTP fault middleware of the order API.
//!
//! Faults act through the hooks the rest of the pipeline already has — a link's faults, the
//! supervisor's stop/start/crash/pause, a component's clock offset and I/O hooks, the bus's admin
//! operations, the MQTT broker — so no component contains fault-specific code.

pub mod http;
pub mod manager;
pub mod selector;
pub mod spec;

pub use manager::{ApplyError, FaultEnv, FaultManager, FaultRecord};
pub use spec::{CATALOGUE, Fault, FaultError, FaultRequest};
