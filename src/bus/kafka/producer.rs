//! [`KafkaProducer`]: sends records and maps delivery failures to bus errors.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::debug;

use super::client::TracingContext;
use super::convert::{kafka_error, map_error, to_i32};
use super::{KafkaBus, QUEUE_TIMEOUT};
use crate::bus::client::{Acks, RecordMeta};
use crate::bus::error::BusError;

impl KafkaBus {
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
                let min_insync = settings.map_or(0, |(n, _, _)| n);
                BusError::NotEnoughReplicas { topic: topic.to_owned(), partition, isr, min_insync }
            }
            _ => map_error(err, operation, topic, partition),
        }
    }
}
