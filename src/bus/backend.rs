//! One face for the order services over either bus: the embedded one, or a real Kafka cluster through
//! rdkafka (cargo feature `kafka`, `--kafka-brokers host:port`). The services only use what both offer:
//! produce, group consume with explicit commits and seek-back, topic metadata and consumer lag.

use bytes::Bytes;

use super::Bus;
use super::client::{Acks, Consumer, ConsumerConfig, Producer, ProducerConfig, RecordMeta};
use super::cluster::TopicDescription;
use super::error::BusError;
use super::group::PartitionLag;
use super::log::ConsumerRecord;

/// A bus the services can use.
#[derive(Clone)]
pub enum BusClient {
    /// The embedded bus.
    Embedded(Bus),
    /// A real cluster.
    #[cfg(feature = "kafka")]
    Kafka(super::kafka::KafkaBus),
}

/// A producer on either bus.
pub enum AnyProducer {
    /// Embedded.
    Embedded(Producer),
    /// rdkafka.
    #[cfg(feature = "kafka")]
    Kafka(super::kafka::KafkaProducer),
}

/// A group consumer on either bus.
pub enum AnyConsumer {
    /// Embedded.
    Embedded(Consumer),
    /// rdkafka.
    #[cfg(feature = "kafka")]
    Kafka(super::kafka::KafkaConsumer),
}

impl BusClient {
    /// The embedded bus, if that is what this is (brokers as components, admin faults).
    pub fn embedded(&self) -> Option<&Bus> {
        match self {
            BusClient::Embedded(b) => Some(b),
            #[cfg(feature = "kafka")]
            BusClient::Kafka(_) => None,
        }
    }

    /// A producer with the given acks.
    pub fn producer(&self, client_id: &str, acks: Acks) -> Result<AnyProducer, BusError> {
        match self {
            BusClient::Embedded(b) => {
                Ok(AnyProducer::Embedded(b.producer(client_id, ProducerConfig { acks })))
            }
            #[cfg(feature = "kafka")]
            BusClient::Kafka(k) => k.producer(client_id, acks).map(AnyProducer::Kafka),
        }
    }

    /// A producer whose sends give up after `timeout` (librdkafka's `message.timeout.ms`; the embedded bus
    /// answers at once, so there it is the same as [`BusClient::producer`]).
    pub fn producer_with_timeout(
        &self,
        client_id: &str,
        acks: Acks,
        timeout: std::time::Duration,
    ) -> Result<AnyProducer, BusError> {
        match self {
            BusClient::Embedded(_) => {
                let _ = timeout;
                self.producer(client_id, acks)
            }
            #[cfg(feature = "kafka")]
            BusClient::Kafka(k) => k.producer_with_timeout(client_id, acks, timeout).map(AnyProducer::Kafka),
        }
    }

    /// A consumer in `group`; `earliest` sets `auto.offset.reset`.
    pub fn consumer(&self, group: &str, client_id: &str, earliest: bool) -> Result<AnyConsumer, BusError> {
        match self {
            BusClient::Embedded(b) => {
                let cfg = ConsumerConfig::new(group, client_id);
                let cfg = if earliest { cfg.earliest() } else { cfg };
                Ok(AnyConsumer::Embedded(b.consumer(cfg)))
            }
            #[cfg(feature = "kafka")]
            BusClient::Kafka(k) => k.consumer(group, client_id, earliest).map(AnyConsumer::Kafka),
        }
    }

    /// Partitions, leaders, replicas and ISR of a topic.
    pub async fn describe_topic(&self, topic: &str) -> Result<TopicDescription, BusError> {
        match self {
            BusClient::Embedded(b) => b.admin().describe_topic(topic),
            #[cfg(feature = "kafka")]
            BusClient::Kafka(k) => k.describe_topic(topic).await,
        }
    }

    /// Lag of `group` on `topic`, per partition.
    pub async fn consumer_lag(&self, group: &str, topic: &str) -> Result<Vec<PartitionLag>, BusError> {
        match self {
            BusClient::Embedded(b) => b.admin().consumer_lag(group, topic),
            #[cfg(feature = "kafka")]
            BusClient::Kafka(k) => k.consumer_lag(group, topic).await,
        }
    }
}

impl AnyProducer {
    /// Produces one record.
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<u32>,
        key: Option<Bytes>,
        value: Bytes,
        timestamp_ms: i64,
    ) -> Result<RecordMeta, BusError> {
        match self {
            AnyProducer::Embedded(p) => p.send(topic, partition, key, value, timestamp_ms).await,
            #[cfg(feature = "kafka")]
            AnyProducer::Kafka(p) => p.send(topic, partition, key, value, timestamp_ms).await,
        }
    }
}

impl AnyConsumer {
    /// Joins the group on these topics.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<(), BusError> {
        match self {
            AnyConsumer::Embedded(c) => c.subscribe(topics),
            #[cfg(feature = "kafka")]
            AnyConsumer::Kafka(c) => c.subscribe(topics),
        }
    }

    /// Up to `max` records (waits for the first).
    pub async fn poll(&mut self, max: usize) -> Result<Vec<ConsumerRecord>, BusError> {
        match self {
            AnyConsumer::Embedded(c) => c.poll(max).await,
            #[cfg(feature = "kafka")]
            AnyConsumer::Kafka(c) => c.poll(max).await,
        }
    }

    /// Commits `next_offset` for a partition.
    pub fn commit(&mut self, topic: &str, partition: u32, next_offset: u64) -> Result<(), BusError> {
        match self {
            AnyConsumer::Embedded(c) => c.commit(topic, partition, next_offset),
            #[cfg(feature = "kafka")]
            AnyConsumer::Kafka(c) => c.commit(topic, partition, next_offset),
        }
    }

    /// Rewinds a partition to the committed offset.
    pub fn seek_to_committed(&mut self, topic: &str, partition: u32) -> Result<(), BusError> {
        match self {
            AnyConsumer::Embedded(c) => c.seek_to_committed(topic, partition),
            #[cfg(feature = "kafka")]
            AnyConsumer::Kafka(c) => c.seek_to_committed(topic, partition),
        }
    }

    /// Assigned partitions.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        match self {
            AnyConsumer::Embedded(c) => c.assignment(),
            #[cfg(feature = "kafka")]
            AnyConsumer::Kafka(c) => c.assignment(),
        }
    }

    /// Leaves the group now.
    pub fn close(self) {
        match self {
            AnyConsumer::Embedded(c) => c.close(),
            #[cfg(feature = "kafka")]
            AnyConsumer::Kafka(c) => c.close(),
        }
    }
}
