//! Incident reasoning, as the reference's Flink reasoner, Neo4j graph and Spark FP-growth job do it.
//!
//! - [`signal`]: signals parsed from the `signals` topic (Fluentd `LOG` records and Prometheus alerts);
//! - [`graph`]: the knowledge graph (pipeline components, signals, composite signals, incidents) loaded
//!   from `flows/knowledge.yaml` and edited at runtime;
//! - [`reasoner`], [`report`]: the reference's exact per-signal and composite-signal algorithm and its
//!   incident report;
//! - [`fpgrowth`], [`mining`]: frequent-pattern mining over the signal history, with predictions.

pub mod fpgrowth;
pub mod graph;
pub mod mining;
pub mod reasoner;
pub mod report;
pub mod signal;
