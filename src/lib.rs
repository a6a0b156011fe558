//! chaoslab: a whole reference data pipeline in one process, with chaos engineering built in.
//!
//! The pipeline of rdsea/bigdataincidentanalytics (a sensor replaying GNFUV data over MQTT, a Flink
//! count-window job, NiFi into HDFS, Node-RED, Spark k-means, Elasticsearch) runs here as tokio tasks
//! under one supervisor, joined by links that carry fault hooks. It runs **live** (real time, real
//! sockets: any MQTT client, browser or Prometheus can connect) or in **sim** mode (virtual time,
//! everything in-process, one seed fixes every byte of the trace).
//!
//! Modules, from the bottom up:
//! - [`kernel`]: clock, seeded randomness, trace, metrics, components and their supervisor.
//! - [`transport`]: envelopes, links (where faults live), MQTT (in-process, embedded rumqttd, external).
//! - [`bus`]: the embedded Kafka-semantics bus (partitions, offsets, groups, brokers, ISR).
//! - [`sources`], [`transforms`], [`sinks`], [`analytics`]: the IoT pipeline stages; [`orders`]: the Pokémon
//!   order services.
//! - [`storage`]: the SQLite/PostgreSQL plumbing the order store and the signal store share (one
//!   connection or pool, sim-mode determinism, error sorting), written once so both get every fix.
//! - [`topology`]: flow files and the builder that wires stages into a [`topology::Pipeline`].
//! - [`chaos`]: the Chaos Toolkit experiment engine (faults and the CLI around it come next).
//! - [`runner`]: sim and live runs and their summary; [`api`]: the HTTP API; [`bench`]: benchmarks.

pub mod analytics;
pub mod api;
pub mod bench;
pub mod bus;
pub mod catalog;
pub mod chaos;
pub mod config;
pub mod kernel;
pub mod monitoring;
pub mod orders;
pub mod reasoning;
pub mod runner;
pub mod sinks;
pub mod sources;
pub mod storage;
pub mod topology;
pub mod transforms;
pub mod transport;
