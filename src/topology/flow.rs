//! The pipeline definition file (`flows/*.toml`): components, their kinds and settings, the links
//! between them with optional faults, and a schedule of actions.
//!
//! Parsing is strict (unknown keys are errors) and every error names the file, the line and the key, so a
//! typo never silently turns into a default. Wiring is checked after parsing: every name a component
//! refers to must exist and be of a kind that can play that role.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::kernel::component::RestartPolicy;
use crate::kernel::component::humantime_serde_compat as hd;
use crate::transport::envelope::Qos;
use crate::transport::link::LinkFaults;

/// Prefix of the broker components (`KAFKA-1` …).
pub const BROKER_PREFIX: &str = "KAFKA-";
/// The bus controller component.
pub const KAFKA: &str = "KAFKA";
/// The order store component.
pub const ORDERS_DB: &str = "POKE-ORDERS-DB";
/// The order API component.
pub const ORDER_API: &str = "POKE-ORDER-API";
/// The outbox relay component.
pub const OUTBOX_RELAY: &str = "OUTBOX-RELAY";
/// Prefix of the fraud detector replicas (`DETECTIVE-PIKACHU-0` …).
pub const DETECTIVE_PREFIX: &str = "DETECTIVE-PIKACHU-";
/// The state updater component.
pub const ORDER_UPDATER: &str = "ORDER-UPDATER";
/// The reverser component.
pub const ORDER_REVERSED: &str = "ORDER-REVERSED";
/// The load generator component.
pub const LOAD: &str = "OCTILLERY";

fn detectives(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("{DETECTIVE_PREFIX}{i}")).collect()
}

/// The longest time a schedule may name (ten years).
pub const MAX_RUN_TIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The reference pipeline, compiled into the binary.
pub const REFERENCE_FLOW: &str = include_str!("../../flows/reference.toml");

/// A parsed and checked pipeline definition.
#[derive(Clone, Debug)]
pub struct Flow {
    /// Run-wide settings.
    pub pipeline: PipelineSection,
    /// HTTP API (live mode).
    pub http: HttpSection,
    /// Components by reference name.
    pub components: BTreeMap<String, ComponentConfig>,
    /// Faults present from the start, by link name `FROM->TO`.
    pub links: BTreeMap<String, LinkFaults>,
    /// Actions at fixed times.
    pub schedule: Vec<ScheduledAction>,
    /// The embedded Kafka-semantics bus.
    pub bus: BusSection,
    /// The Pokémon order services.
    pub orders: OrdersSection,
    /// Monitoring and incident reasoning.
    pub monitoring: MonitoringSection,
    /// Where relative paths are resolved (the flow file's directory).
    pub base_dir: Option<PathBuf>,
    /// Where the flow came from, for messages.
    pub source: String,
    /// The file's text, to point messages at lines.
    text: String,
}

/// The file as written; components stay raw tables until their `kind` is known, so that errors inside
/// them can name the key (`components.SENSOR.rate_ms`), which serde's tagged enums cannot. A file may
/// start with `extends = "other.toml"` (resolved against its directory; `reference.toml` falls back to the
/// built-in one): the other flow's tables are merged key by key under this file's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    pipeline: PipelineSection,
    #[serde(default)]
    http: HttpSection,
    components: BTreeMap<String, toml::Table>,
    #[serde(default)]
    links: BTreeMap<String, LinkFaults>,
    #[serde(default)]
    schedule: Vec<ScheduledAction>,
    #[serde(default)]
    bus: BusSection,
    #[serde(default)]
    orders: OrdersSection,
    #[serde(default)]
    monitoring: MonitoringSection,
}

/// `[bus]`: the embedded bus and its topics.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusSection {
    /// Brokers, named `KAFKA-1` … `KAFKA-n` (ids 1..=n).
    pub brokers: u32,
    /// Create unknown topics on first produce (1 partition, RF 1), like the reference's compose file.
    pub auto_create_topics: bool,
    /// Topics created at start.
    pub topics: BTreeMap<String, TopicSection>,
    /// A real Kafka cluster (`host:port,…`) to use instead of the embedded bus (cargo feature `kafka`).
    pub bootstrap: Option<String>,
}

impl Default for BusSection {
    fn default() -> Self {
        BusSection { brokers: 3, auto_create_topics: true, topics: BTreeMap::new(), bootstrap: None }
    }
}

/// `[bus.topics.<name>]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSection {
    /// Partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication_factor: u16,
    /// `min.insync.replicas`.
    #[serde(default = "one")]
    pub min_insync_replicas: u16,
    /// Delete records older than this (Kafka's default is 7 days).
    #[serde(default, with = "option_duration")]
    pub retention: Option<Duration>,
    /// Explicit replicas per partition (broker ids), as a partition reassignment writes them.
    #[serde(default)]
    pub replica_assignment: Option<Vec<Vec<u32>>>,
}

fn one() -> u16 {
    1
}

/// How the order API publishes a new order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PublishMode {
    /// Commit, then produce; a failed produce leaves the order pending (the reference's dual write).
    #[default]
    Direct,
    /// Insert the order and an outbox row in one transaction; a relay produces from the outbox.
    Outbox,
}

/// What `DETECTIVE-PIKACHU` does with a message it cannot parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PoisonMode {
    /// Seek back and retry forever, stalling the partition (the reference).
    #[default]
    Retry,
    /// Park it on `poke-orders-dlq` and move on.
    Dlq,
}

/// `[orders]`: the Pokémon order services.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrdersSection {
    /// Run them at all.
    pub enabled: bool,
    /// How new orders reach `poke-orders`.
    pub publish: PublishMode,
    /// What the fraud detector does with unparsable messages.
    pub poison: PoisonMode,
    /// `DETECTIVE-PIKACHU` replicas (consumer group members).
    pub detective_replicas: u32,
    /// Pending orders older than this many minutes are reversed.
    pub expired_order_minutes: u64,
    /// How often `ORDER-REVERSED` runs.
    #[serde(with = "hd")]
    pub reversal_every: Duration,
    /// `ORDER-UPDATER`'s pause after an error.
    #[serde(with = "hd")]
    pub updater_retry: Duration,
    /// The API producer's `message.timeout.ms`.
    #[serde(with = "hd")]
    pub produce_timeout: Duration,
    /// `OCTILLERY`.
    pub load: LoadSection,
}

impl Default for OrdersSection {
    fn default() -> Self {
        OrdersSection {
            enabled: false,
            publish: PublishMode::Direct,
            poison: PoisonMode::Retry,
            detective_replicas: 3,
            expired_order_minutes: 1,
            reversal_every: Duration::from_secs(60),
            updater_retry: Duration::from_secs(5),
            produce_timeout: Duration::from_secs(2),
            load: LoadSection::default(),
        }
    }
}

/// `[monitoring]`: log routing, metrics and alerting, and the reasoner. They publish to and read from the
/// `signals` topic, so they run with the bus, i.e. when `[orders]` is enabled.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringSection {
    /// Run them at all.
    pub enabled: bool,
    /// Prometheus' `scrape_interval`.
    #[serde(with = "hd")]
    pub scrape_interval: Duration,
    /// Prometheus' `evaluation_interval`.
    #[serde(with = "hd")]
    pub evaluation_interval: Duration,
    /// Alertmanager's `group_wait`.
    #[serde(with = "hd")]
    pub group_wait: Duration,
    /// Alertmanager's `group_interval`.
    #[serde(with = "hd")]
    pub group_interval: Duration,
    /// Alertmanager's `repeat_interval`.
    #[serde(with = "hd")]
    pub repeat_interval: Duration,
    /// Directory of Prometheus rule files (default: the shipped `flows/rules`).
    pub rules: Option<PathBuf>,
    /// Fluentd configuration (default: the shipped `flows/logging/fluent.conf`).
    pub logging: Option<PathBuf>,
    /// Knowledge graph (default: the shipped `flows/knowledge.yaml`); runtime edits are saved to
    /// `<out>/knowledge.yaml`.
    pub knowledge: Option<PathBuf>,
    /// Live: where the Fluentd Forward input listens.
    pub forward_listen: std::net::SocketAddr,
    /// Live: where the Fluentd HTTP input listens.
    pub http_input_listen: std::net::SocketAddr,
}

impl Default for MonitoringSection {
    fn default() -> Self {
        MonitoringSection {
            enabled: false,
            scrape_interval: Duration::from_secs(10),
            evaluation_interval: Duration::from_secs(10),
            group_wait: Duration::from_secs(5),
            group_interval: Duration::from_secs(60),
            repeat_interval: Duration::from_secs(300),
            rules: None,
            logging: None,
            knowledge: None,
            forward_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 24224)),
            http_input_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9880)),
        }
    }
}

/// `FLUENTD`: the log router.
pub const FLUENTD: &str = "FLUENTD";
/// `PROMETHEUS`: scraping, rules and the in-process Alertmanager.
pub const PROMETHEUS: &str = "PROMETHEUS";
/// `REASONER`: the incident reasoner.
pub const REASONER: &str = "REASONER";
/// The index every sink of `ELASTICSEARCH` writes through.
pub const ELASTICSEARCH: &str = "ELASTICSEARCH";

/// `[orders.load]`: the reference load (5 users × 1000 orders, 2 s apart).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadSection {
    /// Generate load at all.
    pub enabled: bool,
    /// Users placing orders in parallel (user ids 1..=users).
    pub users: u32,
    /// Orders per user.
    pub orders: u32,
    /// Pause after each order.
    #[serde(with = "hd")]
    pub delay: Duration,
    /// Pause before the first order.
    #[serde(with = "hd")]
    pub initial_delay: Duration,
}

impl Default for LoadSection {
    fn default() -> Self {
        LoadSection {
            enabled: true,
            users: 5,
            orders: 1000,
            delay: Duration::from_secs(2),
            initial_delay: Duration::ZERO,
        }
    }
}

/// `[pipeline]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Name shown in summaries.
    pub name: String,
    /// Calendar time at which sim runs start.
    #[serde(default = "default_epoch")]
    pub sim_epoch: DateTime<Utc>,
    /// Queue length of every link.
    #[serde(default = "default_capacity")]
    pub link_capacity: usize,
}

fn default_epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2020-02-21T21:00:00Z").map(|t| t.to_utc()).unwrap_or_default()
}

fn default_capacity() -> usize {
    1024
}

/// `[http]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Listen address of the HTTP API in live mode.
    pub listen: SocketAddr,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection { listen: SocketAddr::from(([127, 0, 0, 1], 8080)) }
    }
}

/// One component; `kind` selects the variant.
#[derive(Clone, Debug)]
pub enum ComponentConfig {
    /// `SENSOR`.
    SensorReplay(SensorConfig),
    /// `MQTT_BROKER`.
    MqttBroker(BrokerConfig),
    /// `FLINK`.
    CountWindowAverage(WindowConfig),
    /// `NIFI`.
    MqttIngest(IngestConfig),
    /// `HADOOP`.
    FileStore(FileStoreConfig),
    /// `NODE-RED`.
    QualityGate(QualityGateConfig),
    /// `SPARK`.
    Kmeans(KmeansConfig),
    /// `ELASTICSEARCH`.
    DocumentIndex(IndexConfig),
}

/// Every `kind` a component may have.
pub const KINDS: [&str; 8] = [
    "sensor-replay",
    "mqtt-broker",
    "count-window-average",
    "mqtt-ingest",
    "file-store",
    "quality-gate",
    "kmeans",
    "document-index",
];

fn variant<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        (if path == "." { String::new() } else { path }, e.into_inner().to_string())
    })
}

impl ComponentConfig {
    /// Reads one component table. The error is `(key path inside the table, message)`.
    pub fn from_table(mut table: toml::Table) -> Result<ComponentConfig, (String, String)> {
        let kind = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(_) => return Err(("kind".into(), "must be a string".into())),
            None => return Err(("kind".into(), format!("missing; one of {}", KINDS.join(", ")))),
        };
        Ok(match kind.as_str() {
            "sensor-replay" => ComponentConfig::SensorReplay(variant(table)?),
            "mqtt-broker" => ComponentConfig::MqttBroker(variant(table)?),
            "count-window-average" => ComponentConfig::CountWindowAverage(variant(table)?),
            "mqtt-ingest" => ComponentConfig::MqttIngest(variant(table)?),
            "file-store" => ComponentConfig::FileStore(variant(table)?),
            "quality-gate" => ComponentConfig::QualityGate(variant(table)?),
            "kmeans" => ComponentConfig::Kmeans(variant(table)?),
            "document-index" => ComponentConfig::DocumentIndex(variant(table)?),
            other => {
                return Err(("kind".into(), format!("unknown kind {other:?}; one of {}", KINDS.join(", "))));
            }
        })
    }

    /// The kind as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            ComponentConfig::SensorReplay(_) => "sensor-replay",
            ComponentConfig::MqttBroker(_) => "mqtt-broker",
            ComponentConfig::CountWindowAverage(_) => "count-window-average",
            ComponentConfig::MqttIngest(_) => "mqtt-ingest",
            ComponentConfig::FileStore(_) => "file-store",
            ComponentConfig::QualityGate(_) => "quality-gate",
            ComponentConfig::Kmeans(_) => "kmeans",
            ComponentConfig::DocumentIndex(_) => "document-index",
        }
    }

    /// The restart policy.
    pub fn restart(&self) -> &RestartPolicy {
        match self {
            ComponentConfig::SensorReplay(c) => &c.restart,
            ComponentConfig::MqttBroker(c) => &c.restart,
            ComponentConfig::CountWindowAverage(c) => &c.restart,
            ComponentConfig::MqttIngest(c) => &c.restart,
            ComponentConfig::FileStore(c) => &c.restart,
            ComponentConfig::QualityGate(c) => &c.restart,
            ComponentConfig::Kmeans(c) => &c.restart,
            ComponentConfig::DocumentIndex(c) => &c.restart,
        }
    }

    /// The components this one sends to (each gives a link `self->target`).
    pub fn targets(&self) -> Vec<&str> {
        match self {
            ComponentConfig::SensorReplay(c) => vec![c.broker.as_str()],
            ComponentConfig::CountWindowAverage(c) => vec![c.output.as_str()],
            ComponentConfig::MqttIngest(c) => vec![c.output.as_str()],
            _ => vec![],
        }
    }

    /// The broker this component subscribes through (gives a link `broker->self`).
    pub fn subscribes_via(&self) -> Option<&str> {
        match self {
            ComponentConfig::CountWindowAverage(c) => Some(&c.broker),
            ComponentConfig::MqttIngest(c) => Some(&c.broker),
            ComponentConfig::QualityGate(c) => Some(&c.broker),
            _ => None,
        }
    }

    /// The store a batch job reads from (gives a request link `store->self`).
    pub fn reads_from(&self) -> Option<&str> {
        match self {
            ComponentConfig::Kmeans(c) => Some(&c.input),
            _ => None,
        }
    }
}

/// How the sensor replays its file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayMode {
    /// One row every `rate_ms`, in file order, looping (the reference simulator).
    #[default]
    Sequential,
    /// One sensor per device, each keeping its own inter-arrival gaps divided by `speedup`.
    PerDevice,
}

/// Reads a QoS written as its level: 0, 1 or 2 (2 is served as 1).
fn qos_level<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Qos, D::Error> {
    let level = u8::deserialize(d)?;
    Qos::from_level(level)
        .ok_or_else(|| serde::de::Error::custom(format!("qos must be 0, 1 or 2, got {level}")))
}

fn qos0() -> Qos {
    Qos::AtMostOnce
}
fn qos1() -> Qos {
    Qos::AtLeastOnce
}

/// `kind = "sensor-replay"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// GNFUV-format CSV; `builtin:gnfuv-synth.csv` is the synthetic file compiled into the binary.
    pub dataset: String,
    /// Broker component to publish through.
    pub broker: String,
    /// Topic to publish to.
    pub topic: String,
    /// Pause between rows in sequential mode; 0 = as fast as possible.
    #[serde(default = "default_rate")]
    pub rate_ms: u64,
    /// Replay mode.
    #[serde(default)]
    pub mode: ReplayMode,
    /// Time compression in per-device mode.
    #[serde(default = "default_speedup")]
    pub speedup: f64,
    /// QoS of each publish.
    #[serde(default = "qos0", deserialize_with = "qos_level")]
    pub qos: Qos,
    /// Client id prefix.
    #[serde(default = "default_sensor_client")]
    pub client_id: String,
    /// Retry interval when the broker is unreachable.
    #[serde(default = "one_second", with = "hd")]
    pub retry: Duration,
    /// Restart behaviour.
    #[serde(default)]
    pub restart: RestartPolicy,
}

fn default_rate() -> u64 {
    1000
}
fn default_speedup() -> f64 {
    1.0
}
fn default_sensor_client() -> String {
    "mqttjs_sensor".into()
}
fn one_second() -> Duration {
    Duration::from_secs(1)
}

/// `kind = "mqtt-broker"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// Listen address of the embedded broker in live mode (ignored in sim mode).
    #[serde(default = "default_mqtt_listen")]
    pub listen: SocketAddr,
    /// Queue length per client session (in-process broker).
    #[serde(default = "default_capacity")]
    pub session_queue: usize,
    /// Restart behaviour.
    #[serde(default)]
    pub restart: RestartPolicy,
}

fn default_mqtt_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1883))
}

/// `kind = "count-window-average"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Broker to subscribe through.
    pub broker: String,
    /// Topic filter.
    pub topic: String,
    /// Records per window and key.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Index component that receives the reports.
    pub output: String,
    /// Index name.
    pub index: String,
    /// Subscription QoS.
    #[serde(default = "qos1", deserialize_with = "qos_level")]
    pub qos: Qos,
    /// MQTT client id.
    #[serde(default = "default_flink_client")]
    pub client_id: String,
    /// Reconnect interval.
    #[serde(default = "one_second", with = "hd")]
    pub retry: Duration,
    /// Restart behaviour.
    #[serde(default)]
    pub restart: RestartPolicy,
}

fn default_window() -> usize {
    10
}
fn default_flink_client() -> String {
    "flink-client".into()
}

/// `kind = "mqtt-ingest"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Broker to subscribe through.
    pub broker: String,
    /// Topic filter.
    pub topic: String,
    /// Store component that receives the records.
    pub output: String,
    /// Subscription QoS.
    #[serde(default = "qos0", deserialize_with = "qos_level")]
    pub qos: Qos,
    /// MQTT client id.
    #[serde(default = "default_nifi_client")]
    pub client_id: String,
    /// Processor id shown in log lines (`ConsumeMQTT[id=…]`).
    #[serde(default = "default_processor_id")]
    pub processor_id: String,
    /// Reconnect interval (NiFi yields for about a second).
    #[serde(default = "one_second", with = "hd")]
    pub retry: Duration,
    /// Restart behaviour.
    #[serde(default)]
    pub restart: RestartPolicy,
}

fn default_nifi_client() -> String {
    "nifi".into()
}
fn default_processor_id() -> String {
    "74042ed4-0170-1000-0000-00000000c001".into()
}

/// `kind = "file-store"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStoreConfig {
    /// Directory under the run's output directory.
    #[serde(default = "default_hdfs_dir")]
    pub dir: PathBuf,
    /// Restart behaviour.
    #[serde(default)]
    pub restart: RestartPolicy,
}

fn default_hdfs_dir() -> PathBuf {
    PathBuf::from("hdfs/nifi")
}

/// `kind = "quality-gate"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityGateConfig {
    /// Broker to subscribe through.
    pub broker: String,
    /// Topic filter.
    pub topic: String,
    /// Flat file under the run's output directory.
    #[serde(default = "default_flat_file")]
    pub file: PathBuf,
    /// Prometheus `job` label of its counter.
    #[serde(default = "default_nodered_job")]
    pub job: String,
    /// Subscription QoS (Node-RED asks for 2; served as 1).
    #[serde(default = "qos1", deserialize_with = "qos_level")]
    pub qos: Qos,
    /// MQTT client id.
    #[serde(default = "default_nodered_client")]
    pub client_id: String,
    /// Reconnect interval (Node-RED's `mqttReconnectTime`).
    #[serde(default = "fifteen_seconds", with = "hd")]
    pub retry: Duration,
    /// Restart behaviour.
    #[serde(default)]
    pub restart: RestartPolicy,
}

fn default_flat_file() -> PathBuf {
    PathBuf::from("node-red/data.txt")
}
fn default_nodered_job() -> String {
    "node-red".into()
}
fn default_nodered_client() -> String {
    "nodered".into()
}
fn fifteen_seconds() -> Duration {
    Duration::from_secs(15)
}

/// `kind = "kmeans"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmeansConfig {
    /// File-store component to read.
    pub input: String,
    /// Clusters.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Seed of the k-means initialisation (Spark's `seed=1`).
    #[serde(default = "default_kmeans_seed")]
    pub seed: u64,
    /// How often the job runs; it also runs once at the end of a sim run.
    #[serde(default = "five_minutes", with = "hd")]
    pub every: Duration,
    /// Output directory under the run's output directory.
    #[serde(default = "default_spark_dir")]
    pub dir: PathBuf,
    /// Restart behaviour.
    #[serde(default)]
    pub restart: RestartPolicy,
}

fn default_k() -> usize {
    2
}
fn default_kmeans_seed() -> u64 {
    1
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn default_spark_dir() -> PathBuf {
    PathBuf::from("spark")
}

/// `kind = "document-index"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    /// Directory under the run's output directory.
    #[serde(default = "default_index_dir")]
    pub dir: PathBuf,
    /// Restart behaviour.
    #[serde(default)]
    pub restart: RestartPolicy,
}

fn default_index_dir() -> PathBuf {
    PathBuf::from("index")
}

/// What a scheduled action does.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Kill a component (its restart policy applies).
    Crash,
    /// Stop a component (for `for`, if given).
    Stop,
    /// Start a stopped component.
    Start,
    /// Restart a component.
    Restart,
    /// Set faults on a link (for `for`, if given).
    LinkFaults,
}

/// `[[schedule]]`: one action at a point in run time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledAction {
    /// Run time at which to act.
    #[serde(with = "hd")]
    pub at: Duration,
    /// What to do.
    pub action: Action,
    /// A component name, or a link name `FROM->TO` for `link-faults`.
    pub target: String,
    /// Undo after this long (stop → start, link-faults → clear).
    #[serde(default, rename = "for", with = "option_duration")]
    pub duration: Option<Duration>,
    /// Faults for `link-faults`.
    #[serde(default)]
    pub faults: Option<LinkFaults>,
}

mod option_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
    }
}

/// A flow that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The file could not be read.
    #[error("cannot read flow {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax or schema error (the message carries line, column and key).
    #[error("{source_name}: {message}")]
    Parse {
        /// File.
        source_name: String,
        /// What toml reported.
        message: String,
    },
    /// The wiring is inconsistent.
    #[error("{source_name}: {message}")]
    Invalid {
        /// File.
        source_name: String,
        /// Which key and why.
        message: String,
    },
}

impl Flow {
    /// The built-in reference pipeline.
    pub fn reference() -> Result<Flow, FlowError> {
        Flow::parse(REFERENCE_FLOW, "flows/reference.toml (built in)", None)
    }

    /// Reads and checks a flow file; relative paths in it resolve against its directory.
    pub fn load(path: &Path) -> Result<Flow, FlowError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| FlowError::Read { path: path.display().to_string(), source })?;
        Flow::parse(&text, &path.display().to_string(), path.parent().map(Path::to_path_buf))
    }

    /// The merged table of a flow that `extends` another (recursively, at most 8 deep).
    fn merged(
        text: &str,
        source: &str,
        base_dir: Option<&Path>,
        depth: u8,
    ) -> Result<toml::Table, FlowError> {
        let parse_err = |name: &str, text: &str, e: toml::de::Error| FlowError::Parse {
            source_name: name.to_string(),
            message: describe_toml_error(text, &e),
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| parse_err(source, text, e))?;
        let Some(parent) = table.remove("extends") else { return Ok(table) };
        let invalid = |message: String| FlowError::Invalid { source_name: source.to_string(), message };
        let parent = parent
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| invalid("extends: must be a file name".into()))?;
        if depth >= 8 {
            return Err(invalid(format!("extends: {parent:?} nests too deep (a cycle?)")));
        }
        let path = base_dir.map(|d| d.join(&parent));
        let (base_text, base_name, base_base) = match path.as_ref().filter(|p| p.is_file()) {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|source| FlowError::Read { path: p.display().to_string(), source })?;
                (text, p.display().to_string(), p.parent().map(Path::to_path_buf))
            }
            None if parent == "reference.toml" => {
                (REFERENCE_FLOW.to_string(), "flows/reference.toml (built in)".into(), None)
            }
            None => return Err(invalid(format!("extends: cannot find {parent:?}"))),
        };
        let mut base = Flow::merged(&base_text, &base_name, base_base.as_deref(), depth + 1)?;
        merge(&mut base, table);
        Ok(base)
    }

    /// Parses and checks flow text.
    pub fn parse(text: &str, source: &str, base_dir: Option<PathBuf>) -> Result<Flow, FlowError> {
        let extends = toml::from_str::<toml::Table>(text).map(|t| t.contains_key("extends")).unwrap_or(false);
        let raw: RawFlow = if extends {
            // Spans are lost in a merged table; the key path still names the place.
            let table = Flow::merged(text, source, base_dir.as_deref(), 0)?;
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| FlowError::Parse {
                source_name: source.to_string(),
                message: format!("{}: {}", e.path(), e.inner()),
            })?
        } else {
            toml::from_str(text).map_err(|e| FlowError::Parse {
                source_name: source.to_string(),
                message: describe_toml_error(text, &e),
            })?
        };
        let mut components = BTreeMap::new();
        for (name, table) in raw.components {
            let config = ComponentConfig::from_table(table).map_err(|(key, message)| {
                let at = key_line(text, &name, key.split('.').next().unwrap_or(""));
                let path = if key.is_empty() {
                    format!("components.{name}")
                } else {
                    format!("components.{name}.{key}")
                };
                FlowError::Parse {
                    source_name: source.to_string(),
                    message: format!("line {at}: {path}: {message}"),
                }
            })?;
            components.insert(name, config);
        }
        let flow = Flow {
            pipeline: raw.pipeline,
            http: raw.http,
            components,
            links: raw.links,
            schedule: raw.schedule,
            bus: raw.bus,
            orders: raw.orders,
            monitoring: raw.monitoring,
            base_dir,
            source: source.to_string(),
            text: text.to_string(),
        };
        flow.check()?;
        Ok(flow)
    }

    fn invalid(&self, message: String) -> FlowError {
        let message = match message_line(&self.text, &message) {
            Some(line) => format!("line {line}: {message}"),
            None => message,
        };
        FlowError::Invalid { source_name: self.source.clone(), message }
    }

    /// Every link the wiring implies, as `(from, to)`, in a fixed order.
    pub fn edges(&self) -> Vec<(String, String)> {
        let mut edges = Vec::new();
        for (name, c) in &self.components {
            for t in c.targets() {
                edges.push((name.clone(), t.to_string()));
            }
            if let Some(b) = c.subscribes_via() {
                edges.push((b.to_string(), name.clone()));
            }
            if let Some(s) = c.reads_from() {
                edges.push((s.to_string(), name.clone()));
            }
        }
        edges.extend(self.order_edges());
        edges.extend(self.monitoring_edges());
        edges.sort();
        edges.dedup();
        edges
    }

    /// The order services' components, in start order (empty when `[orders]` is off).
    pub fn order_components(&self) -> Vec<String> {
        let o = &self.orders;
        if !o.enabled {
            return Vec::new();
        }
        // A real cluster's brokers are not ours to stop: only the embedded bus has broker components.
        let brokers = if self.bus.bootstrap.is_some() { 0 } else { self.bus.brokers };
        let mut names: Vec<String> = (1..=brokers).map(|i| format!("{BROKER_PREFIX}{i}")).collect();
        names.extend([KAFKA.to_string(), ORDERS_DB.to_string(), ORDER_API.to_string()]);
        if o.publish == PublishMode::Outbox {
            names.push(OUTBOX_RELAY.into());
        }
        names.extend(detectives(o.detective_replicas));
        names.extend([ORDER_UPDATER.to_string(), ORDER_REVERSED.to_string()]);
        if o.load.enabled {
            names.push(LOAD.into());
        }
        names
    }

    /// The order services' hops (requests, produces and fetches), as `(from, to)`.
    pub fn order_edges(&self) -> Vec<(String, String)> {
        let o = &self.orders;
        if !o.enabled {
            return Vec::new();
        }
        let e = |a: &str, b: &str| (a.to_string(), b.to_string());
        let mut edges = vec![
            e(ORDER_API, ORDERS_DB),
            e(ORDER_API, KAFKA),
            e(ORDER_REVERSED, ORDERS_DB),
            e(ORDER_REVERSED, KAFKA),
        ];
        if o.publish == PublishMode::Outbox {
            edges.extend([e(OUTBOX_RELAY, ORDERS_DB), e(OUTBOX_RELAY, KAFKA)]);
        }
        for d in detectives(o.detective_replicas) {
            edges.extend([e(KAFKA, &d), e(&d, KAFKA)]);
        }
        edges.extend([e(KAFKA, ORDER_UPDATER), e(ORDER_UPDATER, ORDER_API)]);
        if o.load.enabled {
            edges.push(e(LOAD, ORDER_API));
        }
        edges
    }

    /// True when the monitoring and reasoning components run (they need the order services' bus).
    pub fn monitoring_on(&self) -> bool {
        self.monitoring.enabled && self.orders.enabled
    }

    /// The monitoring components (empty when off).
    pub fn monitoring_components(&self) -> Vec<String> {
        if !self.monitoring_on() {
            return Vec::new();
        }
        vec![FLUENTD.to_string(), PROMETHEUS.to_string(), REASONER.to_string()]
    }

    /// The monitoring hops: logs and alerts to the bus, signals to the reasoner, documents to the index.
    pub fn monitoring_edges(&self) -> Vec<(String, String)> {
        if !self.monitoring_on() {
            return Vec::new();
        }
        let e = |a: &str, b: &str| (a.to_string(), b.to_string());
        let mut edges = vec![e(FLUENTD, KAFKA), e(PROMETHEUS, KAFKA), e(KAFKA, REASONER)];
        if self.components.contains_key(ELASTICSEARCH) {
            edges.extend([e(FLUENTD, ELASTICSEARCH), e(REASONER, ELASTICSEARCH)]);
        }
        edges
    }

    /// Every component name: the flow's, the order services' and monitoring's.
    pub fn all_components(&self) -> Vec<String> {
        let mut names: Vec<String> = self.components.keys().cloned().collect();
        names.extend(self.order_components());
        names.extend(self.monitoring_components());
        names
    }

    fn check(&self) -> Result<(), FlowError> {
        let kind_of = |n: &str| self.components.get(n).map(|c| c.kind());
        for (name, c) in &self.components {
            if name.is_empty() || name.contains("->") || name.chars().any(char::is_whitespace) {
                return Err(self.invalid(format!(
                    "components.{name:?}: names may not be empty or contain '->' or spaces"
                )));
            }
            let want = |field: &str, target: &str, kind: &str| -> Result<(), FlowError> {
                match kind_of(target) {
                    Some(k) if k == kind => Ok(()),
                    Some(k) => Err(self.invalid(format!(
                        "components.{name}.{field}: {target:?} is a {k}, expected a {kind}"
                    ))),
                    None => {
                        Err(self.invalid(format!("components.{name}.{field}: no component named {target:?}")))
                    }
                }
            };
            match c {
                ComponentConfig::SensorReplay(s) => {
                    want("broker", &s.broker, "mqtt-broker")?;
                    crate::transport::mqtt::topic::validate_topic_name(&s.topic)
                        .map_err(|e| self.invalid(format!("components.{name}.topic: {e}")))?;
                    if !(s.speedup.is_finite() && s.speedup > 0.0) {
                        return Err(self
                            .invalid(format!("components.{name}.speedup: must be > 0, got {}", s.speedup)));
                    }
                }
                ComponentConfig::CountWindowAverage(w) => {
                    want("broker", &w.broker, "mqtt-broker")?;
                    want("output", &w.output, "document-index")?;
                    if w.window == 0 {
                        return Err(self.invalid(format!("components.{name}.window: must be at least 1")));
                    }
                }
                ComponentConfig::MqttIngest(i) => {
                    want("broker", &i.broker, "mqtt-broker")?;
                    want("output", &i.output, "file-store")?;
                }
                ComponentConfig::QualityGate(q) => want("broker", &q.broker, "mqtt-broker")?,
                ComponentConfig::Kmeans(k) => {
                    want("input", &k.input, "file-store")?;
                    if k.k == 0 {
                        return Err(self.invalid(format!("components.{name}.k: must be at least 1")));
                    }
                    if k.every.is_zero() {
                        return Err(self.invalid(format!("components.{name}.every: must be more than 0")));
                    }
                }
                ComponentConfig::MqttBroker(_) => {}
                ComponentConfig::FileStore(f) => self.inside_out(name, "dir", &f.dir)?,
                ComponentConfig::DocumentIndex(i) => self.inside_out(name, "dir", &i.dir)?,
            }
            match c {
                ComponentConfig::QualityGate(q) => self.inside_out(name, "file", &q.file)?,
                ComponentConfig::Kmeans(k) => self.inside_out(name, "dir", &k.dir)?,
                _ => {}
            }
            for (field, filter) in [("topic", subscription_topic(c))] {
                if let Some(f) = filter {
                    crate::transport::mqtt::topic::validate_filter(f)
                        .map_err(|e| self.invalid(format!("components.{name}.{field}: {e}")))?;
                }
            }
        }
        self.check_bus()?;
        for name in self.order_components() {
            if self.components.contains_key(&name) {
                return Err(
                    self.invalid(format!("components.{name}: the name is taken by the order services"))
                );
            }
        }
        let brokers = self.components.values().filter(|c| c.kind() == "mqtt-broker").count();
        if brokers > 1 {
            return Err(self.invalid("only one mqtt-broker component per flow is supported".into()));
        }
        let edges = self.edges();
        for (link, faults) in &self.links {
            let known = edges.iter().any(|(f, t)| format!("{f}->{t}") == *link);
            if !known {
                let all: Vec<String> = edges.iter().map(|(f, t)| format!("{f}->{t}")).collect();
                return Err(self.invalid(format!("links.{link:?}: no such link (links: {})", all.join(", "))));
            }
            faults.validate().map_err(|e| self.invalid(format!("links.{link:?}: {e}")))?;
        }
        for (i, s) in self.schedule.iter().enumerate() {
            let at = format!("schedule[{i}]");
            if s.at > MAX_RUN_TIME || s.duration.is_some_and(|d| d > MAX_RUN_TIME) {
                return Err(self.invalid(format!(
                    "{at}: times must be at most {}",
                    humantime::format_duration(MAX_RUN_TIME)
                )));
            }
            if s.duration.is_some() && !matches!(s.action, Action::Stop | Action::LinkFaults) {
                return Err(
                    self.invalid(format!("{at}.for: only stop and link-faults can be undone after a while"))
                );
            }
            match s.action {
                Action::LinkFaults => {
                    if !edges.iter().any(|(f, t)| format!("{f}->{t}") == s.target) {
                        return Err(self.invalid(format!("{at}.target: no link named {:?}", s.target)));
                    }
                    match &s.faults {
                        Some(f) => f.validate().map_err(|e| self.invalid(format!("{at}.faults: {e}")))?,
                        None => return Err(self.invalid(format!("{at}.faults: required for link-faults"))),
                    }
                }
                _ => {
                    if !self.all_components().contains(&s.target) {
                        return Err(self.invalid(format!("{at}.target: no component named {:?}", s.target)));
                    }
                    if s.faults.is_some() {
                        return Err(self.invalid(format!("{at}.faults: only for link-faults")));
                    }
                }
            }
        }
        Ok(())
    }

    /// Output paths stay inside the run's output directory (which each run clears).
    fn inside_out(&self, name: &str, field: &str, path: &Path) -> Result<(), FlowError> {
        let escapes = path.is_absolute()
            || path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
        if escapes || path.as_os_str().is_empty() {
            return Err(self.invalid(format!(
                "components.{name}.{field}: {:?} must be a relative path inside the output directory",
                path.display().to_string()
            )));
        }
        Ok(())
    }

    fn check_bus(&self) -> Result<(), FlowError> {
        let n = self.bus.brokers;
        if n == 0 {
            return Err(self.invalid("bus.brokers: must be at least 1".into()));
        }
        for (name, t) in &self.bus.topics {
            let at = format!("bus.topics.{name}");
            if t.partitions == 0 {
                return Err(self.invalid(format!("{at}.partitions: must be at least 1")));
            }
            if t.replication_factor == 0 || u32::from(t.replication_factor) > n {
                return Err(self.invalid(format!(
                    "{at}.replication_factor: must be between 1 and the {n} brokers, got {}",
                    t.replication_factor
                )));
            }
            if t.min_insync_replicas == 0 || t.min_insync_replicas > t.replication_factor {
                return Err(self.invalid(format!(
                    "{at}.min_insync_replicas: must be between 1 and replication_factor {}, got {}",
                    t.replication_factor, t.min_insync_replicas
                )));
            }
            if let Some(assignment) = &t.replica_assignment {
                if assignment.len() != t.partitions as usize {
                    return Err(self.invalid(format!(
                        "{at}.replica_assignment: {} lists for {} partitions",
                        assignment.len(),
                        t.partitions
                    )));
                }
                for (p, replicas) in assignment.iter().enumerate() {
                    let mut seen = replicas.clone();
                    seen.sort_unstable();
                    seen.dedup();
                    let ok = replicas.len() == usize::from(t.replication_factor)
                        && seen.len() == replicas.len()
                        && replicas.iter().all(|b| (1..=n).contains(b));
                    if !ok {
                        return Err(self.invalid(format!(
                            "{at}.replica_assignment[{p}]: needs {} distinct broker ids in 1..={n}, got {replicas:?}",
                            t.replication_factor
                        )));
                    }
                }
            }
        }
        let o = &self.orders;
        if o.enabled && o.detective_replicas == 0 {
            return Err(self.invalid("orders.detective_replicas: must be at least 1".into()));
        }
        if o.expired_order_minutes > MAX_RUN_TIME.as_secs() / 60 {
            return Err(self.invalid(format!(
                "orders.expired_order_minutes: must be at most {} (ten years), got {}",
                MAX_RUN_TIME.as_secs() / 60,
                o.expired_order_minutes
            )));
        }
        if o.enabled && o.reversal_every.is_zero() {
            return Err(self.invalid("orders.reversal_every: must be more than 0".into()));
        }
        Ok(())
    }

    /// Resolves a path from the flow against its directory (absolute paths stay as they are).
    pub fn resolve(&self, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        match &self.base_dir {
            Some(base) if path.is_relative() => base.join(path),
            _ => path,
        }
    }
}

fn subscription_topic(c: &ComponentConfig) -> Option<&str> {
    match c {
        ComponentConfig::CountWindowAverage(w) => Some(&w.topic),
        ComponentConfig::MqttIngest(i) => Some(&i.topic),
        ComponentConfig::QualityGate(q) => Some(&q.topic),
        _ => None,
    }
}

/// Merges `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// The line of `key` inside the table whose header is one of `headers` (the `nth` such table, for arrays of
/// tables), else the header's line; `None` when the text has no such table.
fn section_line(text: &str, headers: &[String], nth: usize, key: &str) -> Option<usize> {
    let mut in_table = false;
    let mut header_line = None;
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            if in_table {
                break;
            }
            if headers.iter().any(|h| line.starts_with(h.as_str())) {
                seen += 1;
                if seen > nth {
                    in_table = true;
                    header_line = Some(i + 1);
                }
            }
            continue;
        }
        if in_table && !key.is_empty() {
            let k = line.split('=').next().unwrap_or("").trim().trim_matches('"');
            if k == key {
                return Some(i + 1);
            }
        }
    }
    header_line
}

/// The line of `key` inside the `[components.NAME]` table (or of the table's header, or 1).
fn key_line(text: &str, name: &str, key: &str) -> usize {
    let headers = [format!("[components.{name}]"), format!("[components.\"{name}\"]")];
    section_line(text, &headers, 0, key).unwrap_or(1)
}

/// The line a check message's leading key path (`components.FLINK.output: …`) points at.
fn message_line(text: &str, message: &str) -> Option<usize> {
    let path = message.split(": ").next()?;
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    let quoted = |name: &str| [format!("[{head}.{name}]"), format!("[{head}.\"{name}\"]")];
    if let Some(index) = head.strip_prefix("schedule[").and_then(|r| r.strip_suffix(']')) {
        return section_line(text, &["[[schedule]]".to_string()], index.parse().ok()?, rest);
    }
    match head {
        "components" => {
            let (name, key) = rest.split_once('.').unwrap_or((rest, ""));
            section_line(text, &quoted(name), 0, key)
        }
        "links" => section_line(text, &quoted(rest.trim_matches('"')), 0, ""),
        "bus" => {
            let rest = rest.strip_prefix("topics.").unwrap_or(rest);
            let (topic, key) = rest.split_once('.').unwrap_or((rest, ""));
            let headers = [format!("[bus.topics.{topic}]"), format!("[bus.topics.\"{topic}\"]")];
            section_line(text, &headers, 0, key)
                .or_else(|| section_line(text, &["[bus]".to_string()], 0, key))
        }
        _ => section_line(text, &[format!("[{head}]")], 0, rest),
    }
}

/// toml's message already has `line N, column M` for syntax errors; for schema errors we add the line.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let snippet = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line}: {msg} (at `{snippet}`)")
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_flow_parses_and_wires() {
        let flow = Flow::reference().unwrap();
        let edges: Vec<String> = flow.edges().into_iter().map(|(f, t)| format!("{f}->{t}")).collect();
        for e in [
            "SENSOR->MQTT_BROKER",
            "MQTT_BROKER->FLINK",
            "MQTT_BROKER->NIFI",
            "MQTT_BROKER->NODE-RED",
            "FLINK->ELASTICSEARCH",
            "NIFI->HADOOP",
            "HADOOP->SPARK",
        ] {
            assert!(edges.contains(&e.to_string()), "missing {e} in {edges:?}");
        }
    }

    #[test]
    fn errors_name_line_and_key() {
        let text = Flow::reference_text().replace("window = 10", "window = 10\nwindw = 3");
        let err = Flow::parse(&text, "x.toml", None).unwrap_err().to_string();
        assert!(err.starts_with("x.toml: line "), "{err}");
        assert!(err.contains("windw"), "{err}");

        let text = Flow::reference_text().replace("output = \"ELASTICSEARCH\"", "output = \"HADOOP\"");
        let err = Flow::parse(&text, "x.toml", None).unwrap_err().to_string();
        assert!(
            err.contains("components.FLINK.output: \"HADOOP\" is a file-store, expected a document-index"),
            "{err}"
        );

        let text = format!("{}\n[links.\"FLINK->NIFI\"]\nloss = 0.5\n", Flow::reference_text());
        let err = Flow::parse(&text, "x.toml", None).unwrap_err().to_string();
        assert!(err.contains("links.\"FLINK->NIFI\": no such link"), "{err}");

        let text = format!("{}\n[links.\"MQTT_BROKER->FLINK\"]\nloss = 1.5\n", Flow::reference_text());
        let err = Flow::parse(&text, "x.toml", None).unwrap_err().to_string();
        assert!(err.contains("loss must be between 0 and 1"), "{err}");
        let line = text.lines().count() - 1;
        assert!(err.starts_with(&format!("x.toml: line {line}: links.")), "{err}");

        let text = format!(
            "{}\n[[schedule]]\nat = \"1m\"\naction = \"crash\"\ntarget = \"FLINK\"\nfor = \"1m\"\n",
            Flow::reference_text()
        );
        let err = Flow::parse(&text, "x.toml", None).unwrap_err().to_string();
        assert!(err.contains("schedule[0].for: only stop and link-faults"), "{err}");
        assert!(err.starts_with(&format!("x.toml: line {}: ", text.lines().count())), "{err}");

        let text = Flow::reference_text().replace("dir = \"hdfs/nifi\"", "dir = \"../elsewhere\"");
        let err = Flow::parse(&text, "x.toml", None).unwrap_err().to_string();
        assert!(
            err.contains(
                "components.HADOOP.dir: \"../elsewhere\" must be a relative path inside the output directory"
            ),
            "{err}"
        );

        let text = format!("{}\n[links.\"MQTT_BROKER->FLINK\"]\nreorder = 0.5\n", Flow::reference_text());
        assert!(
            Flow::parse(&text, "x.toml", None).unwrap_err().to_string().contains("reorder needs a latency")
        );
        let text = format!(
            "{}\n[links.\"MQTT_BROKER->FLINK\"]\nlatency = \"400000years\"\n",
            Flow::reference_text()
        );
        assert!(
            Flow::parse(&text, "x.toml", None).unwrap_err().to_string().contains("latency must be at most")
        );

        let text =
            Flow::reference_text().replace("topic = \"customTopic\"\nwindow", "topic = \"a/#/b\"\nwindow");
        let err = Flow::parse(&text, "x.toml", None).unwrap_err().to_string();
        assert!(err.contains("components.FLINK.topic"), "{err}");
    }

    #[test]
    fn extends_merges_tables_and_checks_the_bus() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.toml");
        std::fs::write(&base, REFERENCE_FLOW).unwrap();
        let fixed = dir.path().join("fixed.toml");
        std::fs::write(
            &fixed,
            "extends = \"base.toml\"\n[pipeline]\nname = \"fixed\"\n[bus.topics.poke-orders]\nreplication_factor = 3\nmin_insync_replicas = 2\nreplica_assignment = [[1,2,3],[3,1,2],[2,3,1]]\n",
        )
        .unwrap();
        let flow = Flow::load(&fixed).unwrap();
        assert_eq!(flow.pipeline.name, "fixed");
        let t = &flow.bus.topics["poke-orders"];
        assert_eq!((t.partitions, t.replication_factor, t.min_insync_replicas), (3, 3, 2));
        assert_eq!(flow.components.len(), 8, "components come from the base");
        assert_eq!(Flow::load(&base).unwrap().bus.topics["poke-orders"].replication_factor, 1);

        std::fs::write(&fixed, "extends = \"base.toml\"\n[bus.topics.poke-orders]\nreplication_factor = 4\n")
            .unwrap();
        let err = Flow::load(&fixed).unwrap_err().to_string();
        assert!(
            err.contains("bus.topics.poke-orders.replication_factor: must be between 1 and the 3 brokers"),
            "{err}"
        );
        std::fs::write(
            &fixed,
            "extends = \"base.toml\"\n[bus.topics.poke-orders]\nreplica_assignment = [[1],[1],[1,1]]\n",
        )
        .unwrap();
        let err = Flow::load(&fixed).unwrap_err().to_string();
        assert!(err.contains("replica_assignment[2]"), "{err}");
        std::fs::write(&fixed, "extends = \"missing.toml\"\n").unwrap();
        assert!(Flow::load(&fixed).unwrap_err().to_string().contains("cannot find \"missing.toml\""));
        std::fs::write(&fixed, "extends = \"fixed.toml\"\n").unwrap();
        assert!(Flow::load(&fixed).unwrap_err().to_string().contains("too deep"));
        std::fs::write(&fixed, "extends = \"reference.toml\"\n[orders]\nenabled = true\nwhat = 1\n").unwrap();
        let err = Flow::load(&fixed).unwrap_err().to_string();
        assert!(err.contains("orders") && err.contains("what"), "{err}");
    }

    impl Flow {
        fn reference_text() -> String {
            REFERENCE_FLOW.to_string()
        }
    }
}
