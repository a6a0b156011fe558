//! Streaming process mining, as the seed study's system under test: an event stream generated from a
//! process model, the Heuristics Miner with Lossy Counting mining it, and the mined model's quality.
//!
//! - [`tree`]: process models (pm4py's process-tree notation and built-ins), seeded trace generation, the
//!   generating model's causal edges;
//! - [`lossy_counting`]: the HM-LC tables in the published variants; [`heuristics`]: the dependency graph
//!   mined from them, and edge precision/recall; [`petri`]: the mined model as a Petri net, token-replay
//!   fitness and escaping-edges precision on held-out cases;
//! - [`event`]: the `{case, activity, timestamp}` records on the bus; [`xes`]: XES import and export;
//! - the components: `event-source` ([`event_source`]), `heuristics-miner` ([`heuristics_miner`]) and
//!   `conformance` ([`conformance`]); `flows/process-mining.toml` wires them.

pub mod conformance;
pub mod event;
pub mod event_source;
pub mod heuristics;
pub mod heuristics_miner;
pub mod lossy_counting;
pub mod petri;
pub mod tree;
pub mod xes;
