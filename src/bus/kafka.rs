//! [`KafkaBus`]: the bus operations the order services use, on a real Kafka cluster through rdkafka (cargo
//! feature `kafka`), so that the same services run against the embedded bus or a real cluster.
//!
//! It mirrors the embedded [`Producer`](super::Producer), [`Consumer`](super::Consumer) and
//! [`Admin`](super::Admin) calls and answers with the same types: [`RecordMeta`], [`ConsumerRecord`],
//! [`TopicDescription`], [`PartitionLag`] and [`BusError`]. Consumers never auto-commit: the services commit
//! explicit offsets after processing, as the reference consumers do.
//!
//! Live mode only: librdkafka runs its own threads and opens real sockets. No call stalls an async worker:
//! produce and consume use rdkafka's futures, metadata, offset and group look-ups run on tokio's blocking
//! pool, and the consumer's synchronous calls (commit, seek, close) run under `block_in_place`.
//!
//! Where it differs from the embedded bus:
//! - keyed records go where librdkafka's default partitioner (`consistent_random`, CRC32 of the key) puts
//!   them, not by murmur2;
//! - a failed send has already been retried by librdkafka for `message.timeout.ms` (default 300 s; see
//!   [`KafkaBus::producer_with_timeout`]), so a refused write usually surfaces as a timeout
//!   ([`BusError::LeaderNotAvailable`]) rather than as the broker's error;
//! - [`PartitionLag::owner`] stays `None` (it would need DescribeGroups);
//! - [`TopicDescription`] offsets are 0 for a partition whose watermarks cannot be fetched, and its
//!   `min_insync_replicas`/`retention` fall back to 1/`None` when the topic's configuration cannot be read;
//! - dropping a [`KafkaConsumer`] without [`close`](KafkaConsumer::close) leaves the group too (librdkafka
//!   closes on drop) and blocks the dropping thread meanwhile.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::client::{Acks, RecordMeta};
use super::cluster::{PartitionInfo, TopicConfig, TopicDescription};
use super::error::BusError;
use super::group::PartitionLag;
use super::log::ConsumerRecord;

/// How long a metadata, offset, commit, seek or admin request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`KafkaConsumer::poll`] waits for a first record.
const POLL_WAIT: Duration = Duration::from_secs(1);
/// How long a send may wait for room in librdkafka's local queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// Client id of the admin client shared by a [`KafkaBus`] and its clones.
const ADMIN_CLIENT_ID: &str = "chaoslab-admin";
/// How long a topic's `min.insync.replicas` and retention (or the failure to read them) are reused before
/// DescribeConfigs is asked again.
const SETTINGS_TTL: Duration = Duration::from_secs(30);

/// `min.insync.replicas` and retention of a topic, `None` when they could not be read.
type TopicSettings = Option<(u16, Option<Duration>)>;

/// A handle on a Kafka cluster; cheap to clone, all clones share one admin client.
#[derive(Clone)]
pub struct KafkaBus {
    bootstrap: String,
    properties: Arc<[(String, String)]>,
    admin: Arc<AdminClient<TracingContext>>,
    /// Topic settings by topic, with the time they were read.
    settings: Arc<Mutex<BTreeMap<String, (Instant, TopicSettings)>>>,
}

impl fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaBus")
            .field("bootstrap", &self.bootstrap)
            .field("properties", &self.properties)
            .finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// A handle on the cluster at `bootstrap_servers` (`host:port,host:port`). Nothing connects yet; an
    /// unreachable cluster shows up as errors of the calls.
    pub fn new(bootstrap_servers: &str) -> Result<KafkaBus, BusError> {
        KafkaBus::with_properties(bootstrap_servers, &[])
    }

    /// The same with extra librdkafka properties for every client it creates (e.g. `message.timeout.ms`,
    /// `session.timeout.ms`); they are applied last, so they override this module's settings.
    pub fn with_properties(
        bootstrap_servers: &str,
        properties: &[(&str, &str)],
    ) -> Result<KafkaBus, BusError> {
        let properties: Arc<[(String, String)]> =
            properties.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        // Describing a topic must not create it on a broker with `auto.create.topics.enable`.
        let config = client_config(
            bootstrap_servers,
            &properties,
            ADMIN_CLIENT_ID,
            &[("allow.auto.create.topics", "false")],
        );
        let admin = config
            .create_with_context(TracingContext::new(ADMIN_CLIENT_ID))
            .map_err(|e| kafka_error(format!("create admin client for `{bootstrap_servers}`"), &e))?;
        Ok(KafkaBus {
            bootstrap: bootstrap_servers.to_owned(),
            properties,
            admin: Arc::new(admin),
            settings: Arc::default(),
        })
    }

    /// The bootstrap servers given at creation.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// A producer that identifies itself as `client_id`, with the given acknowledgement level and
    /// librdkafka's default `message.timeout.ms` (300 s).
    pub fn producer(&self, client_id: &str, acks: Acks) -> Result<KafkaProducer, BusError> {
        self.make_producer(client_id, acks, &[])
    }

    /// The same with `message.timeout.ms` set: how long a send may take, librdkafka's own retries
    /// included, before it fails (what the reference's API producer configures; zero means no limit).
    pub fn producer_with_timeout(
        &self,
        client_id: &str,
        acks: Acks,
        message_timeout: Duration,
    ) -> Result<KafkaProducer, BusError> {
        let ms = message_timeout.as_millis().to_string();
        self.make_producer(client_id, acks, &[("message.timeout.ms", &ms)])
    }

    fn make_producer(
        &self,
        client_id: &str,
        acks: Acks,
        settings: &[(&str, &str)],
    ) -> Result<KafkaProducer, BusError> {
        let acks_value = match acks {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        };
        let settings: Vec<(&str, &str)> =
            [("acks", acks_value)].into_iter().chain(settings.iter().copied()).collect();
        let producer = self
            .config(client_id, &settings)
            .create_with_context(TracingContext::new(client_id))
            .map_err(|e| kafka_error(format!("create producer `{client_id}`"), &e))?;
        Ok(KafkaProducer { producer, bus: self.clone(), client_id: client_id.to_owned(), acks })
    }

    /// A consumer in `group_id` that commits only explicitly; without a committed offset it starts at the
    /// log start (`earliest`) or at the end. It joins the group on [`KafkaConsumer::subscribe`].
    pub fn consumer(
        &self,
        group_id: &str,
        client_id: &str,
        earliest: bool,
    ) -> Result<KafkaConsumer, BusError> {
        let reset = if earliest { "earliest" } else { "latest" };
        let settings =
            [("group.id", group_id), ("enable.auto.commit", "false"), ("auto.offset.reset", reset)];
        let consumer = self
            .config(client_id, &settings)
            .create_with_context(TracingContext::new(client_id))
            .map_err(|e| kafka_error(format!("create consumer `{client_id}` in group `{group_id}`"), &e))?;
        Ok(KafkaConsumer {
            consumer,
            group_id: group_id.to_owned(),
            client_id: client_id.to_owned(),
            earliest,
            deferred: None,
        })
    }

    /// Partitions with leader (`None` for -1), replicas, ISR and watermarks, plus the topic's
    /// configuration. Fails only when the topic's metadata cannot be had; see the module notes for the
    /// parts filled in best-effort. The configuration is read at most every 30 s.
    pub async fn describe_topic(&self, topic: &str) -> Result<TopicDescription, BusError> {
        let mut partitions = self.partitions(topic).await?;
        let online: Vec<u32> = partitions.iter().filter(|p| p.leader.is_some()).map(|p| p.id).collect();
        let (marks, settings) = tokio::join!(
            join_all(online.iter().map(|p| self.watermarks(topic, *p))),
            self.topic_settings(topic)
        );
        for (id, mark) in online.iter().zip(marks) {
            match (mark, partitions.iter_mut().find(|p| p.id == *id)) {
                (Ok((low, high)), Some(p)) => (p.log_start, p.high_watermark) = (low, high),
                (Err(e), _) => warn!(topic, partition = id, "watermarks unavailable, reported as 0: {e}"),
                (Ok(_), None) => {}
            }
        }
        let (min_insync_replicas, retention) = settings.unwrap_or((1, None));
        let replication_factor = partitions
            .iter()
            .map(|p| p.replicas.len())
            .max()
            .map_or(0, |n| u16::try_from(n).unwrap_or(u16::MAX));
        let config = TopicConfig {
            partitions: u32::try_from(partitions.len()).unwrap_or(u32::MAX),
            replication_factor,
            min_insync_replicas,
            retention,
            replica_assignment: Some(partitions.iter().map(|p| p.replicas.clone()).collect()),
        };
        Ok(TopicDescription { name: topic.to_owned(), partitions, config })
    }

    /// Lag of `group` on every partition of `topic`, as chaostoolkit-kafka's
    /// `check_consumer_lag_under_threshold` computes it: `high - committed`, or `high - low` without a
    /// commit (an unknown group has no commits). Committed offsets are read before the watermarks, so a lag
    /// is never understated. Fails on an offline partition, whose watermarks cannot be fetched.
    pub async fn consumer_lag(&self, group: &str, topic: &str) -> Result<Vec<PartitionLag>, BusError> {
        let partitions = self.partitions(topic).await?;
        if let Some(p) = partitions.iter().find(|p| p.leader.is_none()) {
            return Err(BusError::LeaderNotAvailable { topic: topic.to_owned(), partition: p.id });
        }
        let ids: Vec<u32> = partitions.iter().map(|p| p.id).collect();
        let committed = self.committed(group, topic, &ids).await?;
        let marks = join_all(ids.iter().map(|p| self.watermarks(topic, *p))).await;
        ids.iter()
            .zip(committed)
            .zip(marks)
            .map(|((&partition, committed), mark)| {
                let (low, high) = mark?;
                Ok(PartitionLag::new(topic, partition, committed, low, high, None))
            })
            .collect()
    }

    /// Group ids known to the cluster, sorted; empty (with a warning) when they cannot be listed.
    pub async fn list_groups(&self) -> Vec<String> {
        let admin = Arc::clone(&self.admin);
        let listed = off_runtime("list groups", move || {
            let list = admin
                .inner()
                .fetch_group_list(None, REQUEST_TIMEOUT)
                .map_err(|e| kafka_error("list groups".to_owned(), &e))?;
            Ok(list.groups().iter().map(|g| g.name().to_owned()).collect::<Vec<_>>())
        })
        .await;
        match listed {
            Ok(mut names) => {
                names.sort();
                names.dedup();
                names
            }
            Err(e) => {
                warn!("{e}");
                Vec::new()
            }
        }
    }

    /// Creates a topic with the partitions, replication (factor or explicit lists), `min.insync.replicas`
    /// and retention of `config`; no retention becomes `retention.ms=-1` (keep everything, as in the
    /// embedded bus), not the broker's default.
    pub async fn create_topic(&self, name: &str, config: &TopicConfig) -> Result<(), BusError> {
        let invalid = |reason: String| BusError::InvalidTopicConfig { topic: name.to_owned(), reason };
        let partitions = i32::try_from(config.partitions)
            .map_err(|_| invalid(format!("{} partitions is more than Kafka allows", config.partitions)))?;
        let lists: Vec<Vec<i32>> = config
            .replica_assignment
            .iter()
            .flatten()
            .map(|brokers| brokers.iter().map(|b| i32::try_from(*b)).collect::<Result<_, _>>())
            .collect::<Result<_, _>>()
            .map_err(|_| invalid("a broker id in the replica assignment exceeds i32".to_owned()))?;
        let rows: Vec<&[i32]> = lists.iter().map(Vec::as_slice).collect();
        let replication = match config.replica_assignment {
            Some(_) => TopicReplication::Variable(&rows),
            None => TopicReplication::Fixed(i32::from(config.replication_factor)),
        };
        let min_insync = config.min_insync_replicas.to_string();
        let retention = config.retention.map_or_else(|| "-1".to_owned(), |d| d.as_millis().to_string());
        let topic = NewTopic::new(name, partitions, replication)
            .set("min.insync.replicas", &min_insync)
            .set("retention.ms", &retention);
        let options = admin_options();
        let operation = || format!("create topic `{name}`");
        let results =
            self.admin.create_topics([&topic], &options).await.map_err(|e| kafka_error(operation(), &e))?;
        for result in results {
            if let Err((_, code)) = result {
                return Err(match code {
                    RDKafkaErrorCode::TopicAlreadyExists => BusError::TopicExists { topic: name.to_owned() },
                    RDKafkaErrorCode::InvalidPartitions
                    | RDKafkaErrorCode::InvalidReplicationFactor
                    | RDKafkaErrorCode::InvalidReplicaAssignment
                    | RDKafkaErrorCode::InvalidConfig
                    | RDKafkaErrorCode::InvalidTopic
                    | RDKafkaErrorCode::PolicyViolation => invalid(code.to_string()),
                    _ => BusError::Kafka { operation: operation(), reason: code.to_string() },
                });
            }
        }
        info!(topic = name, partitions, "topic created");
        Ok(())
    }

    /// A client configuration: bootstrap servers, client id, log level, `settings`, then the extra
    /// properties.
    fn config(&self, client_id: &str, settings: &[(&str, &str)]) -> ClientConfig {
        client_config(&self.bootstrap, &self.properties, client_id, settings)
    }

    /// A topic's partitions from the cluster metadata, by id, with zero offsets.
    async fn partitions(&self, topic: &str) -> Result<Vec<PartitionInfo>, BusError> {
        let admin = Arc::clone(&self.admin);
        let name = topic.to_owned();
        let operation = format!("fetch metadata of `{topic}`");
        off_runtime(&operation.clone(), move || {
            let metadata = admin
                .inner()
                .fetch_metadata(Some(&name), REQUEST_TIMEOUT)
                .map_err(|e| map_error(&e, operation.clone(), &name, None))?;
            let t = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .ok_or_else(|| BusError::UnknownTopic { topic: name.clone() })?;
            if let Some(err) = t.error() {
                return Err(match RDKafkaErrorCode::from(err) {
                    RDKafkaErrorCode::UnknownTopicOrPartition => BusError::UnknownTopic { topic: name },
                    code => BusError::Kafka { operation, reason: code.to_string() },
                });
            }
            let brokers = |ids: &[i32]| ids.iter().filter_map(|b| u32::try_from(*b).ok()).collect::<Vec<_>>();
            let mut partitions: Vec<PartitionInfo> = t
                .partitions()
                .iter()
                .filter_map(|p| {
                    Some(PartitionInfo {
                        id: u32::try_from(p.id()).ok()?,
                        leader: u32::try_from(p.leader()).ok(),
                        replicas: brokers(p.replicas()),
                        isr: brokers(p.isr()),
                        log_start: 0,
                        high_watermark: 0,
                    })
                })
                .collect();
            partitions.sort_by_key(|p| p.id);
            Ok(partitions)
        })
        .await
    }

    /// `(log start, high watermark)` of a partition, asked of its leader.
    async fn watermarks(&self, topic: &str, partition: u32) -> Result<(u64, u64), BusError> {
        let admin = Arc::clone(&self.admin);
        let name = topic.to_owned();
        let operation = format!("fetch watermarks of {topic}-{partition}");
        off_runtime(&operation.clone(), move || {
            let p = to_i32(partition, &operation)?;
            let (low, high) = admin
                .inner()
                .fetch_watermarks(&name, p, REQUEST_TIMEOUT)
                .map_err(|e| map_error(&e, operation, &name, Some(partition)))?;
            Ok((u64::try_from(low).unwrap_or(0), u64::try_from(high).unwrap_or(0)))
        })
        .await
    }

    /// The committed offsets of `group` for `partitions` of `topic`, in the same order (`None`: no commit).
    /// Asked through a short-lived consumer in that group that never joins it.
    async fn committed(
        &self,
        group: &str,
        topic: &str,
        partitions: &[u32],
    ) -> Result<Vec<Option<u64>>, BusError> {
        let settings = [("group.id", group), ("enable.auto.commit", "false")];
        let config = self.config(ADMIN_CLIENT_ID, &settings);
        let (name, ids) = (topic.to_owned(), partitions.to_vec());
        let operation = format!("fetch offsets of group `{group}` on `{topic}`");
        off_runtime(&operation.clone(), move || {
            let consumer: BaseConsumer<TracingContext> = config
                .create_with_context(TracingContext::new(ADMIN_CLIENT_ID))
                .map_err(|e| kafka_error(operation.clone(), &e))?;
            let mut list = TopicPartitionList::new();
            for p in &ids {
                list.add_partition(&name, to_i32(*p, &operation)?);
            }
            let committed = consumer
                .committed_offsets(list, REQUEST_TIMEOUT)
                .map_err(|e| map_error(&e, operation.clone(), &name, None))?;
            ids.iter()
                .map(|p| {
                    let found = committed.find_partition(&name, to_i32(*p, &operation)?);
                    Ok(found.and_then(|e| offset_value(e.offset())))
                })
                .collect()
        })
        .await
    }

    /// `min.insync.replicas` and retention of a topic, read at most once per [`SETTINGS_TTL`] so that a
    /// cluster that does not answer DescribeConfigs stalls a description only now and then.
    async fn topic_settings(&self, topic: &str) -> TopicSettings {
        let cached = self.settings.lock().unwrap_or_else(PoisonError::into_inner).get(topic).copied();
        if let Some((read_at, settings)) = cached
            && read_at.elapsed() < SETTINGS_TTL
        {
            return settings;
        }
        let settings = self.describe_settings(topic).await;
        let mut cache = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        cache.insert(topic.to_owned(), (Instant::now(), settings));
        settings
    }

    /// `min.insync.replicas` and retention of a topic from DescribeConfigs; `None` (with a warning) when
    /// the configuration cannot be read.
    async fn describe_settings(&self, topic: &str) -> TopicSettings {
        let resources = [ResourceSpecifier::Topic(topic)];
        let described = self.admin.describe_configs(&resources, &admin_options()).await;
        let resource = match described.map(|mut r| r.pop()) {
            Ok(Some(Ok(resource))) => resource,
            Ok(Some(Err(code))) => {
                warn!(topic, "topic configuration unavailable: {code}");
                return None;
            }
            Ok(None) => return None,
            Err(e) => {
                warn!(topic, "topic configuration unavailable: {e}");
                return None;
            }
        };
        let value = |name: &str| resource.get(name).and_then(|e| e.value.as_deref()).map(str::to_owned);
        let min_insync = value("min.insync.replicas").and_then(|v| v.parse().ok()).unwrap_or(1);
        let retention = value("retention.ms")
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Duration::from_millis);
        Some((min_insync, retention))
    }
}

/// Sends records to the cluster. Cheap to clone.
#[derive(Clone)]
pub struct KafkaProducer {
    producer: FutureProducer<TracingContext>,
    bus: KafkaBus,
    client_id: String,
    acks: Acks,
}

impl fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaProducer")
            .field("client_id", &self.client_id)
            .field("acks", &self.acks)
            .finish_non_exhaustive()
    }
}

impl KafkaProducer {
    /// The client id given at creation.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Sends a record to `partition`, or where the partitioner puts it, and waits for the delivery report.
    /// The offset is `None` with `acks=0`. librdkafka retries retriable failures itself until
    /// `message.timeout.ms`; then an unreachable or leaderless partition (and a timeout) is
    /// [`BusError::LeaderNotAvailable`], too few in-sync replicas [`BusError::NotEnoughReplicas`] (the
    /// counts looked up from the cluster, 0 when that fails), a missing topic [`BusError::UnknownTopic`].
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<u32>,
        key: Option<Bytes>,
        value: Bytes,
        timestamp_ms: i64,
    ) -> Result<RecordMeta, BusError> {
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).payload(value.as_ref()).timestamp(timestamp_ms);
        if let Some(k) = key.as_deref() {
            record = record.key(k);
        }
        if let Some(p) = partition {
            record = record.partition(to_i32(p, &format!("produce to {topic}-{p}"))?);
        }
        match self.producer.send(record, QUEUE_TIMEOUT).await {
            Ok(delivery) => {
                let partition = u32::try_from(delivery.partition).map_err(|_| BusError::Kafka {
                    operation: format!("produce to `{topic}` by `{}`", self.client_id),
                    reason: format!("delivery report names partition {}", delivery.partition),
                })?;
                let offset = u64::try_from(delivery.offset).ok().filter(|_| self.acks != Acks::None);
                Ok(RecordMeta { topic: topic.to_owned(), partition, offset })
            }
            Err((err, message)) => {
                let partition = partition.or_else(|| u32::try_from(message.partition()).ok());
                Err(self.send_error(topic, partition, &err).await)
            }
        }
    }

    /// The bus error for a failed send.
    async fn send_error(&self, topic: &str, partition: Option<u32>, err: &KafkaError) -> BusError {
        let place = partition.map_or_else(|| format!("`{topic}`"), |p| format!("{topic}-{p}"));
        let operation = format!("produce to {place} by `{}`", self.client_id);
        debug!(client = %self.client_id, "{operation} failed: {err}");
        let too_few = matches!(
            err.rdkafka_error_code(),
            Some(RDKafkaErrorCode::NotEnoughReplicas | RDKafkaErrorCode::NotEnoughReplicasAfterAppend)
        );
        match partition {
            Some(partition) if too_few => {
                let (isr, settings) =
                    tokio::join!(self.bus.partitions(topic), self.bus.topic_settings(topic));
                let isr = isr
                    .ok()
                    .and_then(|ps| ps.into_iter().find(|p| p.id == partition))
                    .map_or(0, |p| p.isr.len());
                let min_insync = settings.map_or(0, |(n, _)| n);
                BusError::NotEnoughReplicas { topic: topic.to_owned(), partition, isr, min_insync }
            }
            _ => map_error(err, operation, topic, partition),
        }
    }
}

/// A group member that reads records and commits offsets explicitly.
pub struct KafkaConsumer {
    consumer: StreamConsumer<TracingContext>,
    group_id: String,
    client_id: String,
    earliest: bool,
    /// An error met after some records of a poll were already taken; the next poll returns it.
    deferred: Option<BusError>,
}

impl fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("group_id", &self.group_id)
            .field("client_id", &self.client_id)
            .field("earliest", &self.earliest)
            .finish_non_exhaustive()
    }
}

impl KafkaConsumer {
    /// The client id given at creation.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Joins the group for `topics` (or changes the subscription). Partitions arrive with later polls.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<(), BusError> {
        if topics.is_empty() {
            return Err(BusError::NoSubscription { client_id: self.client_id.clone() });
        }
        self.consumer.subscribe(topics).map_err(|e| {
            kafka_error(
                format!("subscribe `{}` to {topics:?} in group `{}`", self.client_id, self.group_id),
                &e,
            )
        })
    }

    /// Up to `max` records (at least 1): waits up to 1 s for a first one, then takes what has already
    /// arrived. An empty batch means nothing came in time (or the group is still rebalancing). Cancel-safe:
    /// the only wait is before the first record is taken.
    pub async fn poll(&mut self, max: usize) -> Result<Vec<ConsumerRecord>, BusError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let first = match tokio::time::timeout(POLL_WAIT, self.consumer.recv()).await {
            Err(_elapsed) => return Ok(Vec::new()),
            Ok(received) => received.map(|m| record(&m)).map_err(|e| self.poll_error(&e))?,
        };
        let mut records = vec![first];
        while records.len() < max.max(1) {
            match self.consumer.recv().now_or_never() {
                None => break,
                Some(Ok(m)) => records.push(record(&m)),
                Some(Err(e)) => {
                    self.deferred = Some(self.poll_error(&e));
                    break;
                }
            }
        }
        Ok(records)
    }

    /// Commits `next_offset` (last processed + 1) for a partition and waits for the coordinator's answer.
    pub fn commit(&mut self, topic: &str, partition: u32, next_offset: u64) -> Result<(), BusError> {
        let operation = format!("commit {topic}-{partition}@{next_offset} for `{}`", self.client_id);
        let p = to_i32(partition, &operation)?;
        let offset = i64::try_from(next_offset).map_err(|_| BusError::Kafka {
            operation: operation.clone(),
            reason: "offset exceeds i64".to_owned(),
        })?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, p, Offset::Offset(offset))
            .map_err(|e| kafka_error(operation.clone(), &e))?;
        blocking(|| self.consumer.commit(&list, CommitMode::Sync)).map_err(|e| match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::UnknownMemberId) => {
                BusError::UnknownMember { group: self.group_id.clone(), member: self.client_id.clone() }
            }
            _ => map_error(&e, operation, topic, None),
        })
    }

    /// Rewinds an assigned partition to the group's committed offset, or without one to the log start
    /// (`earliest`) or end: the "seek back and retry" of the reference consumers. Records already fetched
    /// from the old position are dropped by librdkafka.
    pub fn seek_to_committed(&mut self, topic: &str, partition: u32) -> Result<(), BusError> {
        if !self.assignment().iter().any(|(t, p)| t == topic && *p == partition) {
            let client_id = self.client_id.clone();
            return Err(BusError::NotAssigned { client_id, topic: topic.to_owned(), partition });
        }
        let operation = format!("seek {topic}-{partition} to the committed offset for `{}`", self.client_id);
        let p = to_i32(partition, &operation)?;
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, p);
        let committed = blocking(|| self.consumer.committed_offsets(list, REQUEST_TIMEOUT))
            .map_err(|e| map_error(&e, operation.clone(), topic, Some(partition)))?;
        let reset = if self.earliest { Offset::Beginning } else { Offset::End };
        let offset = committed
            .find_partition(topic, p)
            .and_then(|e| offset_value(e.offset()))
            .and_then(|o| i64::try_from(o).ok())
            .map_or(reset, Offset::Offset);
        debug!(client = %self.client_id, topic, partition, ?offset, "seek to committed");
        blocking(|| self.consumer.seek(topic, p, offset, REQUEST_TIMEOUT))
            .map_err(|e| map_error(&e, operation, topic, Some(partition)))
    }

    /// Partitions assigned to this member now, sorted; empty before the first assignment.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        match self.consumer.assignment() {
            Ok(list) => {
                let mut owned: Vec<(String, u32)> = list
                    .elements()
                    .iter()
                    .filter_map(|e| Some((e.topic().to_owned(), u32::try_from(e.partition()).ok()?)))
                    .collect();
                owned.sort();
                owned
            }
            Err(e) => {
                warn!(client = %self.client_id, "assignment unavailable: {e}");
                Vec::new()
            }
        }
    }

    /// Leaves the group (the others rebalance at once) and drops the consumer; returns when librdkafka has
    /// closed it.
    pub fn close(self) {
        let client_id = self.client_id.clone();
        blocking(move || drop(self));
        debug!(client = %client_id, "consumer closed");
    }

    /// The bus error for a failed poll.
    fn poll_error(&self, err: &KafkaError) -> BusError {
        let operation = format!("poll by `{}` in group `{}`", self.client_id, self.group_id);
        kafka_error(operation, err)
    }
}

/// Routes librdkafka's log lines and global errors to `tracing`, and logs consumer rebalances.
#[derive(Clone, Debug)]
struct TracingContext {
    client_id: String,
}

impl TracingContext {
    fn new(client_id: &str) -> Self {
        TracingContext { client_id: client_id.to_owned() }
    }
}

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let client = &self.client_id;
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => error!(client, facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Warning => warn!(client, facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice => info!(client, facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => {
                debug!(client, facility, "librdkafka: {message}")
            }
        }
    }

    /// Client-wide errors (a broker down, all brokers down) are what chaos experiments cause: warnings.
    fn error(&self, error: KafkaError, reason: &str) {
        warn!(client = %self.client_id, "librdkafka: {error}: {reason}");
    }
}

impl ConsumerContext for TracingContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let client = &self.client_id;
        match rebalance {
            Rebalance::Assign(list) => {
                info!(client, partitions = %describe_list(list), "partitions assigned")
            }
            Rebalance::Revoke(list) => info!(client, partitions = %describe_list(list), "partitions revoked"),
            Rebalance::Error(e) => warn!(client, "rebalance failed: {e}"),
        }
    }
}

/// `topic-partition` pairs of a list, comma-separated.
fn describe_list(list: &TopicPartitionList) -> String {
    let names: Vec<String> =
        list.elements().iter().map(|e| format!("{}-{}", e.topic(), e.partition())).collect();
    names.join(",")
}

/// A client configuration: bootstrap servers, client id, log level, `settings`, then `properties`.
fn client_config(
    bootstrap: &str,
    properties: &[(String, String)],
    client_id: &str,
    settings: &[(&str, &str)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("client.id", client_id);
    config.set_log_level(RDKafkaLogLevel::Info);
    for (key, value) in settings {
        config.set(*key, *value);
    }
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

/// Admin request options with this module's timeout.
fn admin_options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT)).operation_timeout(Some(REQUEST_TIMEOUT))
}

/// A record as the bus hands it out: owned, with an absent payload as empty bytes.
fn record(m: &BorrowedMessage<'_>) -> ConsumerRecord {
    ConsumerRecord {
        topic: m.topic().to_owned(),
        partition: u32::try_from(m.partition()).unwrap_or_default(),
        offset: u64::try_from(m.offset()).unwrap_or_default(),
        key: m.key().map(Bytes::copy_from_slice),
        value: m.payload().map(Bytes::copy_from_slice).unwrap_or_default(),
        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
    }
}

/// The absolute offset, if `offset` is one.
fn offset_value(offset: Offset) -> Option<u64> {
    match offset {
        Offset::Offset(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

/// A partition id as librdkafka takes it.
fn to_i32(partition: u32, operation: &str) -> Result<i32, BusError> {
    i32::try_from(partition).map_err(|_| BusError::Kafka {
        operation: operation.to_owned(),
        reason: format!("partition {partition} exceeds i32"),
    })
}

/// Whether an error code means the partition (or the broker leading it) cannot be reached now: a
/// retriable condition the services treat as an offline partition.
fn unavailable(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::PreferredLeaderNotAvailable
            | RDKafkaErrorCode::EligibleLeadersNotAvailable
            | RDKafkaErrorCode::FencedLeaderEpoch
            | RDKafkaErrorCode::UnknownLeaderEpoch
            | RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::TimedOutQueue
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::NetworkException
    )
}

/// The bus error for a failed call about `topic` (and `partition`, when known): a missing topic, an
/// unavailable partition, or else [`BusError::Kafka`] naming `operation`.
fn map_error(err: &KafkaError, operation: String, topic: &str, partition: Option<u32>) -> BusError {
    match (err.rdkafka_error_code(), partition) {
        (Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic), _) => {
            BusError::UnknownTopic { topic: topic.to_owned() }
        }
        (Some(code), Some(partition)) if unavailable(code) => {
            BusError::LeaderNotAvailable { topic: topic.to_owned(), partition }
        }
        _ => kafka_error(operation, err),
    }
}

/// [`BusError::Kafka`] for `operation` with librdkafka's description.
fn kafka_error(operation: String, err: &KafkaError) -> BusError {
    BusError::Kafka { operation, reason: err.to_string() }
}

/// Runs a blocking librdkafka call on tokio's blocking pool.
async fn off_runtime<T, F>(operation: &str, f: F) -> Result<T, BusError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BusError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(BusError::Kafka { operation: operation.to_owned(), reason: e.to_string() }),
    }
}

/// Runs a short blocking librdkafka call from synchronous code that may run on an async worker: on a
/// multi-thread runtime the worker first hands its other tasks on (`block_in_place`); elsewhere (no runtime,
/// a current-thread runtime) it just runs.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::future::Future;

    use rdkafka::bindings::{rd_kafka_handle_mock_cluster, rd_kafka_mock_group_initial_rebalance_delay_ms};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    use super::*;

    /// Upper bound of every test.
    const TEST_LIMIT: Duration = Duration::from_secs(90);

    /// A 3-broker librdkafka mock cluster, owned by an idle client, with no initial rebalance delay.
    struct Mock {
        holder: BaseProducer,
        bootstrap: String,
    }

    impl Mock {
        fn new() -> Mock {
            let holder: BaseProducer =
                ClientConfig::new().set("test.mock.num.brokers", "3").create().unwrap();
            // SAFETY: the pointer comes from a live client created with `test.mock.num.brokers`, which owns
            // the mock cluster for as long as `holder` lives, and is only used during this call.
            unsafe {
                let cluster = rd_kafka_handle_mock_cluster(holder.client().native_ptr());
                assert!(!cluster.is_null());
                rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
            }
            let bootstrap = holder.client().mock_cluster().unwrap().bootstrap_servers();
            Mock { holder, bootstrap }
        }

        fn cluster(&self) -> MockCluster<'_, DefaultProducerContext> {
            self.holder.client().mock_cluster().unwrap()
        }

        /// A topic made by the mock itself (the mock does not implement CreateTopics).
        fn topic(&self, name: &str, partitions: i32, replication: i32) {
            self.cluster().create_topic(name, partitions, replication).unwrap();
        }

        fn bus(&self) -> KafkaBus {
            KafkaBus::new(&self.bootstrap).unwrap()
        }
    }

    async fn bounded<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(TEST_LIMIT, f).await.expect("test exceeded its time limit")
    }

    /// Polls until `n` records arrived or `within` passed.
    async fn poll_n(c: &mut KafkaConsumer, n: usize, within: Duration) -> Vec<ConsumerRecord> {
        let deadline = tokio::time::Instant::now() + within;
        let mut got = Vec::new();
        while got.len() < n && tokio::time::Instant::now() < deadline {
            got.extend(c.poll(n - got.len()).await.unwrap());
        }
        got
    }

    fn text(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn produce_consume_commit_and_resume_in_a_group() {
        bounded(async {
            let mock = Mock::new();
            mock.topic("orders", 3, 3);
            // The mock, unlike a broker, keeps a group whose last member left in a rebalance until the
            // session timeout (less 1 s) has passed, so the next member waits that long to join.
            let bus = KafkaBus::with_properties(
                &mock.bootstrap,
                &[("session.timeout.ms", "3000"), ("heartbeat.interval.ms", "500")],
            )
            .unwrap();
            let producer = bus.producer("p", Acks::All).unwrap();
            let mut sent = BTreeMap::new();
            let mut key_partition = BTreeMap::new();
            for i in 0..30u32 {
                let key = (i % 2 == 0).then(|| text(&format!("k{}", i % 5)));
                let ts = 1_700_000_000_000 + i64::from(i);
                let meta =
                    producer.send("orders", None, key.clone(), text(&format!("v{i}")), ts).await.unwrap();
                assert_eq!(meta.topic, "orders");
                assert!(meta.partition < 3, "{meta:?}");
                if let Some(k) = &key {
                    let first = *key_partition.entry(k.clone()).or_insert(meta.partition);
                    assert_eq!(first, meta.partition, "one key, one partition");
                }
                let offset = meta.offset.expect("acks=all reports the offset");
                sent.insert((meta.partition, offset), (key, format!("v{i}"), ts));
            }
            for p in 0..3 {
                let offsets: Vec<u64> = sent.keys().filter(|(q, _)| *q == p).map(|(_, o)| *o).collect();
                assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>(), "partition {p}");
            }

            let lag_before = bus.consumer_lag("g", "orders").await.unwrap();
            let highs: Vec<u64> =
                (0..3).map(|p| sent.keys().filter(|(q, _)| *q == p).count() as u64).collect();
            assert_eq!(lag_before.iter().map(|l| l.lag).collect::<Vec<_>>(), highs, "no commit: high - low");
            assert!(lag_before.iter().all(|l| l.committed.is_none() && l.log_start == 0));

            let mut c1 = bus.consumer("g", "c1", true).unwrap();
            c1.subscribe(&["orders"]).unwrap();
            let got = poll_n(&mut c1, 30, Duration::from_secs(30)).await;
            assert_eq!(got.len(), 30);
            for r in &got {
                let (key, value, ts) = &sent[&(r.partition, r.offset)];
                assert_eq!((&r.key, r.value.as_ref(), r.timestamp_ms), (key, value.as_bytes(), *ts));
            }
            let assigned = c1.assignment();
            assert_eq!(assigned, (0..3).map(|p| ("orders".to_owned(), p)).collect::<Vec<_>>());
            for (p, high) in highs.iter().enumerate() {
                c1.commit("orders", p as u32, *high).unwrap();
            }
            let lag_after = bus.consumer_lag("g", "orders").await.unwrap();
            assert!(lag_after.iter().all(|l| l.lag == 0), "{lag_after:?}");
            let committed: Vec<Option<u64>> = lag_after.iter().map(|l| l.committed).collect();
            assert_eq!(committed, highs.iter().map(|h| Some(*h)).collect::<Vec<_>>());
            c1.close();

            let mut c2 = bus.consumer("g", "c2", true).unwrap();
            c2.subscribe(&["orders"]).unwrap();
            let again = poll_n(&mut c2, 1, Duration::from_secs(4)).await;
            assert!(again.is_empty(), "all was committed, nothing is redelivered: {again:?}");
            let meta = producer.send("orders", Some(1), None, text("late"), 0).await.unwrap();
            assert_eq!(meta.offset, Some(highs[1]));
            let late = poll_n(&mut c2, 2, Duration::from_secs(8)).await;
            assert_eq!(late.iter().map(|r| (r.partition, r.offset)).collect::<Vec<_>>(), [(1, highs[1])]);
            assert_eq!(c2.assignment().len(), 3);
            c2.close();
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn seek_to_committed_rereads_what_was_not_committed() {
        bounded(async {
            let mock = Mock::new();
            mock.topic("state", 3, 3);
            let bus = mock.bus();
            let producer = bus.producer("p", Acks::Leader).unwrap();
            for i in 0..6 {
                let meta = producer.send("state", Some(0), None, text(&format!("s{i}")), 0).await.unwrap();
                assert_eq!((meta.partition, meta.offset), (0, Some(i)));
            }
            let mut c = bus.consumer("updater", "u", true).unwrap();
            c.subscribe(&["state"]).unwrap();
            let offsets = |rs: &[ConsumerRecord]| rs.iter().map(|r| r.offset).collect::<Vec<_>>();
            let first = poll_n(&mut c, 6, Duration::from_secs(30)).await;
            assert_eq!(offsets(&first), [0, 1, 2, 3, 4, 5]);

            c.seek_to_committed("state", 0).unwrap();
            let replay = poll_n(&mut c, 6, Duration::from_secs(10)).await;
            assert_eq!(offsets(&replay), [0, 1, 2, 3, 4, 5], "no commit: back to the log start (earliest)");

            c.commit("state", 0, 4).unwrap();
            let lag = bus.consumer_lag("updater", "state").await.unwrap();
            let lag: Vec<(Option<u64>, u64)> = lag.iter().map(|l| (l.committed, l.lag)).collect();
            assert_eq!(lag, [(Some(4), 2), (None, 0), (None, 0)]);

            c.seek_to_committed("state", 0).unwrap();
            let retry = poll_n(&mut c, 6, Duration::from_secs(10)).await;
            assert_eq!(offsets(&retry), [4, 5], "only the uncommitted records come again");
            assert_eq!(retry[1].value, text("s5"));

            let err = c.seek_to_committed("other", 0).unwrap_err();
            assert!(matches!(err, BusError::NotAssigned { partition: 0, .. }), "{err}");
            c.close();
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn describe_topic_reports_leaders_replicas_and_offline_partitions() {
        bounded(async {
            let mock = Mock::new();
            mock.topic("orders", 3, 3);
            let bus = mock.bus();
            let producer = bus.producer("p", Acks::All).unwrap();
            for p in [0, 2, 2] {
                producer.send("orders", Some(p), None, text("x"), 0).await.unwrap();
            }
            let d = bus.describe_topic("orders").await.unwrap();
            assert_eq!((d.name.as_str(), d.partitions.len()), ("orders", 3));
            assert_eq!((d.config.partitions, d.config.replication_factor), (3, 3));
            for (i, p) in d.partitions.iter().enumerate() {
                assert_eq!(p.id, i as u32);
                let mut replicas = p.replicas.clone();
                replicas.sort();
                assert_eq!(replicas, [1, 2, 3], "RF 3 on the 3 brokers");
                assert!(p.leader.is_some_and(|l| p.replicas.contains(&l)), "{p:?}");
                assert_eq!(p.isr, p.replicas);
            }
            let highs: Vec<u64> = d.partitions.iter().map(|p| p.high_watermark).collect();
            assert_eq!(highs, [1, 0, 2]);
            // The mock does not answer DescribeConfigs: the defaults stand in, and the failed read is
            // remembered instead of stalling every description for the request timeout.
            assert_eq!((d.config.min_insync_replicas, d.config.retention), (1, None));
            let started = Instant::now();
            bus.describe_topic("orders").await.unwrap();
            assert!(started.elapsed() < REQUEST_TIMEOUT / 2, "{:?}", started.elapsed());
            assert!(d.all_replicas_in_sync() && !d.has_offline_partitions());

            let err = bus.describe_topic("missing").await.unwrap_err();
            assert_eq!(err, BusError::UnknownTopic { topic: "missing".to_owned() });

            // The mock has no controller: leadership is set by hand. A partition without a leader is
            // offline, as Kafka's metadata reports it (-1).
            mock.cluster().partition_leader("orders", 1, None).unwrap();
            let d = bus.describe_topic("orders").await.unwrap();
            assert_eq!(d.partitions[1].leader, None);
            assert_eq!(d.partitions[1].leader_id(), -1);
            assert!(d.has_offline_partitions());
            let err = bus.consumer_lag("g", "orders").await.unwrap_err();
            assert!(matches!(err, BusError::LeaderNotAvailable { partition: 1, .. }), "{err}");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_down_broker_keeps_its_leadership_in_the_mock() {
        bounded(async {
            let mock = Mock::new();
            mock.topic("orders", 3, 3);
            let bus = mock.bus();
            let before = bus.describe_topic("orders").await.unwrap();
            let leader = before.partitions[0].leader.unwrap();
            mock.cluster().broker_down(i32::try_from(leader).unwrap()).unwrap();
            // librdkafka's mock neither moves leaders nor shrinks ISRs when a broker goes down (ISR is
            // always the replica list), so the metadata still looks healthy: under-replicated partitions
            // cannot be shown on it. The description still comes from the other brokers — once the client
            // stops asking the one that is down, so a transport failure is retried a few times.
            let mut after = bus.describe_topic("orders").await;
            for _ in 0..20 {
                if after.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                after = bus.describe_topic("orders").await;
            }
            let after = after.unwrap();
            assert_eq!(after.partitions[0].leader, Some(leader));
            assert!(after.all_replicas_in_sync());
            mock.cluster().broker_up(i32::try_from(leader).unwrap()).unwrap();
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn send_failures_map_to_bus_errors() {
        bounded(async {
            let mock = Mock::new();
            mock.topic("orders", 3, 3);
            let bus = mock.bus();
            let producer = bus.producer_with_timeout("p", Acks::All, Duration::from_millis(1500)).unwrap();
            producer.send("orders", Some(1), None, text("ok"), 0).await.unwrap();

            // A crashed leader that the cluster has not replaced yet: the record times out. (The mock cannot
            // produce to a leaderless partition: its Produce handler dereferences the missing leader.)
            let leader = bus.describe_topic("orders").await.unwrap().partitions[1].leader.unwrap();
            mock.cluster().broker_down(i32::try_from(leader).unwrap()).unwrap();
            let err = producer.send("orders", Some(1), None, text("lost"), 0).await.unwrap_err();
            assert_eq!(err, BusError::LeaderNotAvailable { topic: "orders".to_owned(), partition: 1 });
            mock.cluster().broker_up(i32::try_from(leader).unwrap()).unwrap();

            // librdkafka retries NOT_ENOUGH_REPLICAS itself until `message.timeout.ms`: a timeout.
            let errors = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 200];
            mock.cluster().request_errors(RDKafkaApiKey::Produce, &errors);
            let err = producer.send("orders", Some(2), None, text("few"), 0).await.unwrap_err();
            assert_eq!(err, BusError::LeaderNotAvailable { topic: "orders".to_owned(), partition: 2 });
            // Without its retries the broker's answer comes through, with the ISR looked up (the mock
            // reports ISR = replicas, and has no DescribeConfigs: min.insync.replicas is unknown, 0).
            let eager = KafkaBus::with_properties(&mock.bootstrap, &[("retries", "0")]).unwrap();
            let eager = eager.producer("eager", Acks::All).unwrap();
            let err = eager.send("orders", Some(2), None, text("few"), 0).await.unwrap_err();
            assert!(
                matches!(err, BusError::NotEnoughReplicas { partition: 2, isr: 3, min_insync: 0, .. }),
                "{err}"
            );
            mock.cluster().clear_request_errors(RDKafkaApiKey::Produce);

            let quiet = bus.producer("q", Acks::None).unwrap();
            let meta = quiet.send("orders", Some(0), None, text("fire"), 0).await.unwrap();
            assert_eq!((meta.partition, meta.offset), (0, None), "acks=0 reports no offset");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn admin_calls_the_mock_lacks_fail_cleanly() {
        bounded(async {
            let mock = Mock::new();
            let bus = mock.bus();
            // The mock implements neither CreateTopics nor ListGroups.
            let err = bus.create_topic("orders", &TopicConfig::new(3, 3).min_insync(2)).await.unwrap_err();
            assert!(
                matches!(&err, BusError::Kafka { operation, .. } if operation.contains("`orders`")),
                "{err}"
            );
            assert!(bus.list_groups().await.is_empty());
            let err = bus.create_topic("big", &TopicConfig::new(u32::MAX, 1)).await.unwrap_err();
            assert!(matches!(err, BusError::InvalidTopicConfig { .. }), "{err}");
        })
        .await;
    }

    #[test]
    fn errors_map_by_code_and_place() {
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let op = || "op".to_owned();
        assert_eq!(
            map_error(&timed_out, op(), "t", Some(2)),
            BusError::LeaderNotAvailable { topic: "t".to_owned(), partition: 2 }
        );
        assert!(matches!(map_error(&timed_out, op(), "t", None), BusError::Kafka { .. }));
        let unknown = KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert_eq!(map_error(&unknown, op(), "t", None), BusError::UnknownTopic { topic: "t".to_owned() });
        let other = KafkaError::ConsumerCommit(RDKafkaErrorCode::IllegalGeneration);
        let err = map_error(&other, op(), "t", Some(0));
        assert!(
            matches!(&err, BusError::Kafka { reason, .. } if reason.contains("IllegalGeneration")),
            "{err}"
        );
    }
}
