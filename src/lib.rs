//! chaoslab: a whole reference data pipeline in one process, with chaos engineering built in.
//!
//! The IoT pipeline of rdsea/bigdataincidentanalytics (a sensor replaying GNFUV data over MQTT, a Flink
//! count-window job, NiFi into HDFS, Node-RED, Spark k-means, Elasticsearch), the Pokémon order services
//! of jitapichab/kafka-chaos-experiments on a Kafka-semantics bus, and the monitoring and incident
//! reasoning around them run here as tokio tasks under one supervisor, joined by links that carry fault
//! hooks. It runs **live** (real time, real sockets: any MQTT client, browser or Prometheus can connect)
//! or in **sim** mode (virtual time, everything in-process, one seed fixes every byte of the trace).
//!
//! The modules, from the bottom up:
//!
//! - [`kernel`]: clock (the only "now"), seeded random streams, the trace, metrics, component specs and
//!   the supervisor, fault hooks, log records.
//! - [`config`]: reading what users write: one problem collector (`file:line:key: message`) and line
//!   locators for TOML and YAML.
//! - [`transport`]: envelopes, links (every fault hook on a hop), MQTT (in-process, embedded rumqttd behind
//!   its front proxy, external), and the `mqtt-broker` component.
//! - [`bus`]: the embedded Kafka-semantics bus (partitions, offsets, groups, brokers, ISR), its backends
//!   as traits (embedded, rdkafka), and the `kafka-cluster` component.
//! - [`storage`]: the SQLite/PostgreSQL plumbing the order store and the signal store share.
//! - [`topology`]: the component model ([`topology::component::ComponentKind`]), flow files, the build
//!   context and handle map, and the generic [`topology::Pipeline`] that wires any flow.
//! - Components, one file or folder per kind: [`sources`] (`sensor-replay`), [`transforms`]
//!   (`count-window-average`, `mqtt-ingest`), [`sinks`] (`document-index`, `file-store`, `quality-gate`),
//!   [`analytics`] (`kmeans`), [`orders`] (`order-store`, `order-api`, `outbox-relay`, `fraud-detector`,
//!   `order-updater`, `order-reverser`, `load-generator`), [`monitoring`] (`log-router`, `metrics-store`,
//!   with the TSDB, PromQL, rules, Alertmanager and Fluentd libraries) and [`reasoning`]
//!   (`incident-reasoner`, with the knowledge graph, signal history and FP-growth), and [`process_mining`]
//!   (`event-source`, `heuristics-miner`, `conformance`, with process trees, the HM-LC tables, the
//!   dependency graph and replay on Petri nets).
//! - [`catalog`]: the one list that dispatches a flow's `kind = "…"` to its config type, and the flows
//!   compiled into the binary.
//! - [`chaos`]: the fault catalogue (faults as data), the native Chaos Toolkit engine, its providers, and
//!   the ground truth that links faults to incidents.
//! - [`mesh`]: Chaos Mesh's objects (chaos kinds, Schedule, Workflow, StatusCheck) read from their YAML
//!   files and run by controllers of its semantics against the components seen as pods; every pipeline
//!   owns an engine (`Pipeline::mesh`).
//! - [`runner`]: the [`runner::Run`] builder (sim or live), the run summary, the determinism check and
//!   swarm testing.
//! - [`campaign`]: studies of many runs — a parameter grid over Chaos Mesh files, Chaos Toolkit
//!   experiments or fault schedules, seeds (sim) or a live instance (`--target`), captured series in the
//!   ChaosMeshWizard's CSV format, its event detection checked against the ground truth, recovery-time
//!   statistics and the dose-response regression.
//! - [`api`]: the HTTP API of a live run and its authenticated control plane (faults, Chaos Toolkit
//!   experiments, Chaos Mesh objects), the browser session (token cookie, same-origin checks), and its
//!   OpenAPI document with Swagger UI (`/api/openapi.json`, `/api/docs`).
//! - [`dashboard`]: the web page to watch, break and replay a run: the pipeline diagram, faults,
//!   experiments, the timeline of metrics with fault windows and incidents, the indices, the runs; live, or
//!   over a finished sim run's recorded history (`chaoslab serve --out DIR`).
//! - [`executions`]: the local execution store — every experiment, Chaos Mesh run and campaign run with
//!   its journal, outcome, ground truth, resilience score and reproducing command (ChaosIQ's "publish",
//!   locally).
//! - [`bench`](mod@bench): `chaoslab bench pipeline|orders|mining|mqtt|store|soak`, which print figures.

pub mod analytics;
pub mod api;
pub mod bench;
pub mod bus;
pub mod campaign;
pub mod catalog;
pub mod chaos;
pub mod config;
pub mod dashboard;
pub mod executions;
pub mod kernel;
pub mod mesh;
pub mod monitoring;
pub mod orders;
pub mod process_mining;
pub mod reasoning;
pub mod runner;
pub mod sinks;
pub mod sources;
pub mod storage;
#[cfg(test)]
pub mod testing;
pub mod topology;
pub mod transforms;
pub mod transport;
