//! `kafka-cluster` (`KAFKA`): the bus as supervised components — one per broker (`KAFKA-1` … `KAFKA-n`)
//! and the cluster controller (`KAFKA`, the name other components refer to). It provides a
//! [`BusHandle`]: the embedded bus and the client the services use (the embedded bus, or a real cluster
//! with `bootstrap`, cargo feature `kafka`).
//!
//! A broker component running means the broker is up: stopping or crashing it takes the broker out of
//! every ISR and re-elects leaders — a broker reboot is a stop followed by a start. The controller
//! enforces retention and publishes per-group lag and rebalance counts; while it is down the cluster is
//! unreachable (every hop to `KAFKA` is refused).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use prometheus::IntGaugeVec;
use serde::Deserialize;
use serde_json::json;

use super::backend::BusClient;
use super::group::PartitionLag;
use super::{Bus, BusConfig, SpillConfig, TopicConfig};
use crate::kernel::component::{Ctx, RestartPolicy};
use crate::topology::build::InputCx;
use crate::topology::check::CheckCx;
use crate::topology::component::ComponentKind;
use crate::topology::{BuildCx, RunMode};

/// `kind = "kafka-cluster"`.
#[derive(Clone, Debug, Deserialize)]
pub struct KafkaClusterConfig {
    /// Brokers, named `<name>-1` … `<name>-n` (ids 1..=n).
    #[serde(default = "default_brokers")]
    pub brokers: u32,
    /// Create unknown topics on first produce (1 partition, RF 1), like the reference's compose file.
    #[serde(default = "yes")]
    pub auto_create_topics: bool,
    /// Topics created at start.
    #[serde(default)]
    pub topics: BTreeMap<String, TopicSection>,
    /// A real Kafka cluster (`host:port,…`, `--kafka-brokers`) instead of the embedded bus (live mode,
    /// cargo feature `kafka`).
    #[serde(default)]
    pub bootstrap: Option<String>,
    /// How often the controller refreshes lag (and enforces retention).
    #[serde(default = "five_seconds", with = "humantime_serde")]
    pub lag_interval: Duration,
    /// `log.retention.bytes` per partition of the embedded bus: older records are deleted from the head as
    /// the log passes it (a consumer left behind resets as `auto.offset.reset` says). 0 keeps everything.
    #[serde(default = "default_retention_bytes")]
    pub retention_bytes: u64,
    /// Most bytes of records a partition of the embedded bus keeps in memory; older ones go to segment
    /// files under `log_dir`. 0 keeps every log wholly in memory.
    #[serde(default = "default_memory_bytes")]
    pub memory_bytes: u64,
    /// Kafka's `log.segment.bytes`: the size at which a segment file is closed and the next one started
    /// (size retention deletes whole segments).
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// Kafka's `log.dirs`: the directory of the segment files, under the run's `--out`.
    #[serde(default = "default_log_dir")]
    pub log_dir: std::path::PathBuf,
    /// Extra series of a topic's lag summed over partitions, `{consumergroup, topic}`, by metric name
    /// (the process-mining study captures `Lag_Input_Topic = "input"`).
    #[serde(default)]
    pub lag_series: BTreeMap<String, String>,
}

fn default_retention_bytes() -> u64 {
    super::DEFAULT_RETENTION_BYTES
}

/// 256 KiB: about 800 orders of lag per partition before a consumer reads from the page cache instead.
fn default_memory_bytes() -> u64 {
    256 << 10
}

fn default_segment_bytes() -> u64 {
    8 << 20
}

fn default_log_dir() -> std::path::PathBuf {
    "kafka-logs".into()
}

fn five_seconds() -> Duration {
    CONTROLLER_TICK
}

fn default_brokers() -> u32 {
    3
}
fn yes() -> bool {
    true
}

/// `[components.KAFKA.topics.<name>]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TopicSection {
    /// Partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication_factor: u16,
    /// `min.insync.replicas`.
    #[serde(default = "one")]
    pub min_insync_replicas: u16,
    /// Delete records older than this (Kafka's default is 7 days).
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// `retention.bytes`: most bytes a partition keeps (default: the cluster's `retention_bytes`).
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Explicit replicas per partition (broker ids), as a partition reassignment writes them.
    #[serde(default)]
    pub replica_assignment: Option<Vec<Vec<u32>>>,
}

fn one() -> u16 {
    1
}

/// What the cluster provides to the services, the API and the chaos providers.
#[derive(Clone)]
pub struct BusHandle {
    /// The embedded bus (brokers, topics, groups; admin faults act on it).
    pub bus: Bus,
    /// The bus the services use: the embedded one, or a real cluster.
    pub client: BusClient,
}

impl KafkaClusterConfig {
    /// Broker components exist only on the embedded bus: a real cluster's brokers are not ours to stop.
    fn broker_count(&self) -> u32 {
        if self.bootstrap.is_some() { 0 } else { self.brokers }
    }
}

impl ComponentKind for KafkaClusterConfig {
    const KIND: &'static str = "kafka-cluster";
    const NAMESPACE: &'static str = "kafka";

    /// The bootstrap servers' hosts (`host:port,host:port`).
    fn external_hosts(&self) -> Vec<String> {
        let servers = self.bootstrap.as_deref().unwrap_or("").split(',');
        let host = |s: &str| {
            s.trim()
                .rsplit_once(':')
                .map_or(s.trim(), |(h, _)| h)
                .trim_matches(['[', ']'])
                .to_ascii_lowercase()
        };
        servers.map(host).filter(|h| !h.is_empty()).collect()
    }

    fn instances(&self, name: &str) -> Vec<String> {
        let mut names: Vec<String> = (1..=self.broker_count()).map(|i| format!("{name}-{i}")).collect();
        names.push(name.to_string());
        names
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.require(!self.lag_interval.is_zero(), "lag_interval", "must be more than 0");
        cx.require(self.segment_bytes > 0, "segment_bytes", "must be more than 0");
        cx.relative_path("log_dir", &self.log_dir);
        for name in self.lag_series.keys() {
            let ok = name.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            });
            cx.require(
                ok && !name.is_empty(),
                &format!("lag_series.{name}"),
                "is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
            );
        }
        let n = self.brokers;
        if n == 0 {
            // The topics' replica counts are checked against the brokers once there are some.
            return cx.error("brokers", "must be at least 1");
        }
        for (topic, t) in &self.topics {
            let at = |field: &str| format!("topics.{topic}.{field}");
            cx.require(t.partitions > 0, &at("partitions"), "must be at least 1");
            if t.replication_factor == 0 || u32::from(t.replication_factor) > n {
                cx.error(
                    &at("replication_factor"),
                    format!("must be between 1 and the {n} brokers, got {}", t.replication_factor),
                );
            }
            if t.min_insync_replicas == 0 || t.min_insync_replicas > t.replication_factor {
                cx.error(
                    &at("min_insync_replicas"),
                    format!(
                        "must be between 1 and replication_factor {}, got {}",
                        t.replication_factor, t.min_insync_replicas
                    ),
                );
            }
            if let Some(assignment) = &t.replica_assignment {
                if assignment.len() != t.partitions as usize {
                    cx.error(
                        &at("replica_assignment"),
                        format!("{} lists for {} partitions", assignment.len(), t.partitions),
                    );
                }
                for (p, replicas) in assignment.iter().enumerate() {
                    let mut seen = replicas.clone();
                    seen.sort_unstable();
                    seen.dedup();
                    let ok = replicas.len() == usize::from(t.replication_factor)
                        && seen.len() == replicas.len()
                        && replicas.iter().all(|b| (1..=n).contains(b));
                    if !ok {
                        cx.error(
                            &format!("topics.{topic}.replica_assignment[{p}]"),
                            format!(
                                "needs {} distinct broker ids in 1..={n}, got {replicas:?}",
                                t.replication_factor
                            ),
                        );
                    }
                }
            }
        }
    }

    fn check_inputs(&self, _name: &str, cx: &InputCx<'_>) -> anyhow::Result<()> {
        let Some(servers) = &self.bootstrap else { return Ok(()) };
        if !cfg!(feature = "kafka") {
            anyhow::bail!(
                "bootstrap / --kafka-brokers {servers}: this chaoslab was built without the `kafka` feature; \
                 rebuild with `cargo build --release --features kafka` (needs cmake and libcurl headers)"
            );
        }
        if cx.mode == RunMode::Sim {
            anyhow::bail!(
                "bootstrap / --kafka-brokers {servers}: sim mode runs on the embedded bus only (a real cluster is not in virtual time)"
            );
        }
        Ok(())
    }

    /// Provides the [`BusHandle`] (and its [`BusClient`] alone, for the fault catalogue).
    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let bus = Bus::new(BusConfig {
            brokers: self.brokers,
            auto_create_topics: self.auto_create_topics,
            retention_bytes: (self.retention_bytes > 0).then_some(self.retention_bytes),
            spill: (self.memory_bytes > 0).then(|| SpillConfig {
                dir: cx.out_path(&self.log_dir),
                memory_bytes: self.memory_bytes,
                segment_bytes: self.segment_bytes,
            }),
            ..BusConfig::default()
        });
        let admin = bus.admin();
        for (topic, t) in &self.topics {
            admin.create_topic(topic, topic_config(t)).with_context(|| format!("{name}: topics.{topic}"))?;
        }
        let client = match &self.bootstrap {
            None => BusClient::from_embedded(bus.clone()),
            Some(servers) => real_cluster(servers, &self.topics).await?,
        };
        cx.provide(name, BusHandle { bus: bus.clone(), client: client.clone() });
        cx.provide(name, client.clone());
        let always = RestartPolicy::default();
        for id in 1..=self.broker_count() {
            let bus = bus.clone();
            cx.add_as(&format!("{name}-{id}"), "kafka-broker", always.clone(), move |ctx| {
                run_broker(ctx, bus.clone(), id)
            })?;
        }
        let m = cx.metrics(name);
        let lag = LagGauges {
            bus: m.gauge_vec(
                "bus_consumer_lag",
                "Records not yet committed by a group, per partition.",
                &["group", "topic", "partition"],
            )?,
            exporter: m.gauge_vec(
                "kafka_consumergroup_lag",
                "Records not yet committed by a group, per partition (kafka-exporter's name).",
                &["consumergroup", "topic", "partition"],
            )?,
            series: self
                .lag_series
                .iter()
                .map(|(metric, topic)| {
                    let help = format!("Lag of each group on topic {topic}, summed over partitions.");
                    Ok((topic.clone(), m.gauge_vec(metric, &help, &["consumergroup", "topic"])?))
                })
                .collect::<Result<_, crate::kernel::metrics::MetricsError>>()?,
        };
        let gauges = ControllerGauges {
            lag,
            rebalances: m.gauge_vec("bus_group_rebalances", "Rebalances of a group.", &["group"])?,
            log_bytes: m.gauge_vec(
                "bus_log_bytes",
                "Bytes of the embedded bus's partition logs, in memory and in segment files.",
                &["tier"],
            )?,
        };
        let every = self.lag_interval;
        cx.add_as(name, "kafka-controller", always, move |ctx| {
            run_controller(ctx, client.clone(), gauges.clone(), every)
        })
    }
}

fn topic_config(t: &TopicSection) -> TopicConfig {
    let mut config = TopicConfig::new(t.partitions, t.replication_factor).min_insync(t.min_insync_replicas);
    if let Some(r) = t.retention {
        config = config.retention(r);
    }
    if let Some(b) = t.retention_bytes {
        config = config.retention_bytes(b);
    }
    if let Some(a) = &t.replica_assignment {
        config = config.assignment(a.clone());
    }
    config
}

/// Connects to a real Kafka cluster and creates the flow's topics there (existing ones are kept).
#[cfg(feature = "kafka")]
async fn real_cluster(servers: &str, topics: &BTreeMap<String, TopicSection>) -> anyhow::Result<BusClient> {
    let kafka = super::kafka::KafkaBus::new(servers)?;
    for (name, t) in topics {
        let config = TopicConfig::new(t.partitions, t.replication_factor).min_insync(t.min_insync_replicas);
        match kafka.create_topic(name, &config).await {
            Ok(()) | Err(super::BusError::TopicExists { .. }) => {}
            // Some clusters (librdkafka's mock among them) refuse CreateTopics: a topic that exists will do.
            Err(e) => match kafka.describe_topic(name).await {
                Ok(_) => {
                    tracing::warn!("cannot create topic {name} on {servers} ({e}); using the existing one")
                }
                Err(_) => return Err(anyhow::anyhow!("creating topic {name} on {servers}: {e}")),
            },
        }
    }
    Ok(BusClient::kafka(kafka))
}

/// Without the `kafka` feature there is no real-cluster client (`check_inputs` said so already).
#[cfg(not(feature = "kafka"))]
async fn real_cluster(servers: &str, _topics: &BTreeMap<String, TopicSection>) -> anyhow::Result<BusClient> {
    anyhow::bail!("--kafka-brokers {servers}: built without the `kafka` feature")
}

/// How often the controller refreshes lag and enforces retention, unless the flow says otherwise.
pub const CONTROLLER_TICK: Duration = Duration::from_secs(5);

/// The groups whose lag the controller follows on a real cluster.
const GROUPS: [(&str, &str); 2] =
    [("poke-order-consumer", "poke-orders"), ("order-updater", "poke-orders-state")];

/// The series the controller keeps.
#[derive(Clone)]
pub struct ControllerGauges {
    lag: LagGauges,
    rebalances: IntGaugeVec,
    /// `{tier="memory"|"disk"}`.
    log_bytes: IntGaugeVec,
}

/// The lag series the controller keeps.
#[derive(Clone)]
pub struct LagGauges {
    bus: IntGaugeVec,
    exporter: IntGaugeVec,
    series: Vec<(String, IntGaugeVec)>,
}

impl LagGauges {
    fn set(&self, group: &str, offsets: &[PartitionLag]) {
        let mut sums: BTreeMap<&str, i64> = BTreeMap::new();
        for p in offsets {
            let partition = p.partition.to_string();
            self.bus.with_label_values(&[group, &p.topic, &partition]).set(p.lag as i64);
            self.exporter.with_label_values(&[group, &p.topic, &partition]).set(p.lag as i64);
            *sums.entry(p.topic.as_str()).or_insert(0) += p.lag as i64;
        }
        for (topic, gauge) in &self.series {
            if let Some(sum) = sums.get(topic.as_str()) {
                gauge.with_label_values(&[group, topic]).set(*sum);
            }
        }
    }
}

/// Marks a broker down when its component ends, however it ends.
struct BrokerDownOnDrop(Bus, u32);

impl Drop for BrokerDownOnDrop {
    fn drop(&mut self) {
        if let Err(e) = self.0.set_broker_up(self.1, false) {
            tracing::error!("cannot mark broker {} down: {e}", self.1);
        }
    }
}

/// Runs broker `id`.
pub async fn run_broker(ctx: Ctx, bus: Bus, id: u32) -> anyhow::Result<()> {
    bus.set_broker_up(id, true)?;
    let _down = BrokerDownOnDrop(bus.clone(), id);
    let line = format!("[KafkaServer id={id}] started");
    tracing::info!(component = %ctx.name, "{line}");
    ctx.trace("broker.up", &json!({"broker": id, "log": line}));
    ctx.health.set_ready(true, "serving");
    // The broker's row in the run's table: records appended to the partitions it leads in, records
    // fetched from them out; brought up to date each second and when the broker stops.
    let tally = || {
        let stats = bus.broker_stats(id);
        let m = &ctx.metrics;
        m.records_in.inc_by(stats.records_produced.saturating_sub(m.records_in.get()));
        m.records_out.inc_by(stats.records_fetched.saturating_sub(m.records_out.get()));
    };
    loop {
        tally();
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    tally();
    let line = format!("[KafkaServer id={id}] shut down completed");
    tracing::info!(component = %ctx.name, "{line}");
    ctx.trace("broker.down", &json!({"broker": id, "log": line}));
    Ok(())
}

/// Runs the controller: retention (embedded bus) and lag (either bus).
pub async fn run_controller(
    ctx: Ctx,
    bus: BusClient,
    gauges: ControllerGauges,
    every: Duration,
) -> anyhow::Result<()> {
    let ControllerGauges { lag, rebalances, log_bytes } = gauges;
    ctx.health.set_ready(true, "serving");
    // The cluster's row in the run's table: records produced in, records fetched by consumers out.
    let tally = |bus: &Bus| {
        let stats = bus.stats();
        let m = &ctx.metrics;
        m.records_in.inc_by(stats.records_produced.saturating_sub(m.records_in.get()));
        m.records_out.inc_by(stats.records_fetched.saturating_sub(m.records_out.get()));
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        log_bytes.with_label_values(&["memory"]).set(gauge(stats.log_memory_bytes));
        log_bytes.with_label_values(&["disk"]).set(gauge(stats.log_disk_bytes));
    };
    loop {
        if let Some(embedded) = bus.embedded() {
            tally(embedded);
        }
        match bus.embedded().map(Bus::admin) {
            Some(admin) => {
                let removed = admin.enforce_retention(ctx.clock.now().timestamp_millis());
                if removed > 0 {
                    ctx.trace("bus.retention", &json!({"records": removed}));
                }
                for group in admin.list_groups() {
                    let Ok(desc) = admin.describe_group(&group) else { continue };
                    rebalances.with_label_values(&[&group]).set(desc.rebalances as i64);
                    lag.set(&group, &desc.offsets);
                }
            }
            None => {
                for (group, topic) in GROUPS {
                    match bus.consumer_lag(group, topic).await {
                        Ok(offsets) => lag.set(group, &offsets),
                        Err(e) => tracing::debug!(component = %ctx.name, "lag of {group} unknown: {e}"),
                    }
                }
            }
        }
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => {
                if let Some(embedded) = bus.embedded() {
                    tally(embedded);
                }
                return Ok(());
            }
            _ = tokio::time::sleep(every) => {}
        }
    }
}
