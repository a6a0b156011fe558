//! The cluster-side calls of [`KafkaBus`]: topic metadata and watermarks, committed offsets and lag,
//! consumer groups, topic configuration (cached) and topic creation.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures::future::join_all;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use tokio::time::Instant;
use tracing::{info, warn};

use super::client::{TracingContext, admin_options, off_runtime};
use super::convert::{kafka_error, map_error, offset_value, to_i32};
use super::{ADMIN_CLIENT_ID, KafkaBus, REQUEST_TIMEOUT, SETTINGS_TTL, TopicSettings};
use crate::bus::cluster::{PartitionInfo, TopicConfig, TopicDescription};
use crate::bus::error::BusError;
use crate::bus::group::PartitionLag;

impl KafkaBus {
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
        let (min_insync_replicas, retention, retention_bytes) = settings.unwrap_or((1, None, None));
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
            retention_bytes,
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
    /// embedded bus), not the broker's default. `retention.bytes` is set only where `config` has it: a
    /// real cluster keeps its logs on disk, so the embedded bus's default bound is not carried over.
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
        // 0 keeps everything here, as on the embedded bus: Kafka's -1.
        let retention_bytes =
            config.retention_bytes.map(|b| if b == 0 { "-1".to_owned() } else { b.to_string() });
        let mut topic = NewTopic::new(name, partitions, replication)
            .set("min.insync.replicas", &min_insync)
            .set("retention.ms", &retention);
        if let Some(bytes) = &retention_bytes {
            topic = topic.set("retention.bytes", bytes);
        }
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

    /// A topic's partitions from the cluster metadata, by id, with zero offsets.
    pub(super) async fn partitions(&self, topic: &str) -> Result<Vec<PartitionInfo>, BusError> {
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
    pub(super) async fn topic_settings(&self, topic: &str) -> TopicSettings {
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
        // -1 (Kafka's default) keeps everything.
        let retention_bytes = value("retention.bytes").and_then(|v| v.parse::<u64>().ok());
        Some((min_insync, retention, retention_bytes))
    }
}
