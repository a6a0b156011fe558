//! [`KafkaConsumer`]: a group member that polls records, commits offsets explicitly and seeks back.

use std::fmt;

use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, warn};

use super::client::{TracingContext, blocking};
use super::convert::{kafka_error, map_error, offset_value, record, to_i32};
use super::{KafkaBus, POLL_WAIT, REQUEST_TIMEOUT};
use crate::bus::error::BusError;
use crate::bus::log::ConsumerRecord;

impl KafkaBus {
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
