//! The component kinds a flow may use: the one list that dispatches a `kind = "…"` to its config type.
//!
//! Adding a kind: write its file (config type implementing [`ComponentKind`], build, runtime, metrics,
//! tests), add one line here, and use it in a flow file. Nothing else names it.
//!
//! Also the flows compiled into the binary, and the entry points that read flows with this catalog.

use std::path::{Path, PathBuf};

use crate::config::ProblemsError;
use crate::topology::component::KindEntry;
use crate::topology::flow::Flow;

/// Every kind, one line each.
pub const KINDS: &[KindEntry] = &[
    KindEntry::of::<crate::sources::sensor_replay::SensorReplayConfig>(),
    KindEntry::of::<crate::transport::mqtt::mqtt_broker::MqttBrokerConfig>(),
    KindEntry::of::<crate::transforms::count_window_average::CountWindowAverageConfig>(),
    KindEntry::of::<crate::transforms::mqtt_ingest::MqttIngestConfig>(),
    KindEntry::of::<crate::sinks::file_store::FileStoreConfig>(),
    KindEntry::of::<crate::sinks::quality_gate::QualityGateConfig>(),
    KindEntry::of::<crate::sinks::document_index::DocumentIndexConfig>(),
    KindEntry::of::<crate::analytics::kmeans::KmeansConfig>(),
    KindEntry::of::<crate::bus::kafka_cluster::KafkaClusterConfig>(),
    KindEntry::of::<crate::orders::order_store::OrderStoreConfig>(),
    KindEntry::of::<crate::orders::order_api::OrderApiConfig>(),
    KindEntry::of::<crate::orders::outbox_relay::OutboxRelayConfig>(),
    KindEntry::of::<crate::orders::fraud_detector::FraudDetectorConfig>(),
    KindEntry::of::<crate::orders::order_updater::OrderUpdaterConfig>(),
    KindEntry::of::<crate::orders::order_reverser::OrderReverserConfig>(),
    KindEntry::of::<crate::orders::load_generator::LoadGeneratorConfig>(),
    KindEntry::of::<crate::monitoring::log_router::LogRouterConfig>(),
    KindEntry::of::<crate::monitoring::metrics_store::MetricsStoreConfig>(),
    KindEntry::of::<crate::reasoning::incident_reasoner::IncidentReasonerConfig>(),
];

/// The reference pipeline, compiled into the binary.
pub const REFERENCE_FLOW: &str = include_str!("../flows/reference.toml");

/// Flows an `extends` may name without a path.
pub const BUILTIN_FLOWS: &[(&str, &str)] = &[("reference.toml", REFERENCE_FLOW)];

/// The built-in reference pipeline.
pub fn reference_flow() -> Result<Flow, ProblemsError> {
    parse_flow(REFERENCE_FLOW, "flows/reference.toml (built in)", None)
}

/// Reads and checks a flow file.
pub fn load_flow(path: &Path) -> Result<Flow, ProblemsError> {
    Flow::load(path, &KINDS, BUILTIN_FLOWS)
}

/// Parses and checks flow text (`base_dir` resolves its relative paths).
pub fn parse_flow(text: &str, source: &str, base_dir: Option<PathBuf>) -> Result<Flow, ProblemsError> {
    Flow::parse(text, source, base_dir, &KINDS, BUILTIN_FLOWS)
}
