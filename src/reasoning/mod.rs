//! Incident reasoning, as the reference's Flink reasoner, Neo4j graph and Spark FP-growth job do it.
//!
//! - [`signal`]: signals parsed from the `signals` topic (Fluentd `LOG` records and Prometheus alerts);
//! - [`graph`]: the knowledge graph (pipeline components, signals, composite signals, incidents) loaded
//!   from `flows/knowledge.yaml` and edited at runtime;
//! - [`reasoner`], [`report`]: the reference's exact per-signal and composite-signal algorithm and its
//!   incident report;
//! - [`store`]: the signal history (`signals` table, SQLite or PostgreSQL), as the reference kept it in
//!   Cassandra;
//! - [`fpgrowth`], [`mining`]: frequent-pattern mining over the signal history, with predictions;
//! - [`incident_reasoner`]: the `incident-reasoner` component (`REASONER`) that runs all of it on the `signals` topic.

pub mod analysis;
pub mod fpgrowth;
pub mod graph;
pub mod incident_reasoner;
pub mod mining;
pub mod reasoner;
pub mod report;
pub mod signal;
pub mod store;
