//! One face for the services over either bus: the embedded one, or a real Kafka cluster through rdkafka
//! (cargo feature `kafka`, `--kafka-brokers host:port`). The services only use what both offer: produce,
//! group consume with explicit commits and seek-back, topic metadata and consumer lag. Each is a trait
//! ([`BusBackend`], [`BusProducer`], [`BusConsumer`]) that each bus implements, so adding a backend is one
//! `impl` per trait, not one more arm in every method.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::Bus;
use super::client::{Acks, Consumer, ConsumerConfig, Producer, ProducerConfig, RecordMeta};
use super::cluster::TopicDescription;
use super::error::BusError;
use super::group::PartitionLag;
use super::log::ConsumerRecord;

/// Produces records.
pub trait BusProducer: Send + Sync {
    /// Produces one record (to `partition`, or as the bus partitions it).
    fn send<'a>(
        &'a self,
        topic: &'a str,
        partition: Option<u32>,
        key: Option<Bytes>,
        value: Bytes,
        timestamp_ms: i64,
    ) -> BoxFuture<'a, Result<RecordMeta, BusError>>;
}

/// Consumes as a member of a group, committing explicitly.
pub trait BusConsumer: Send {
    /// Joins the group on these topics.
    fn subscribe(&mut self, topics: &[&str]) -> Result<(), BusError>;
    /// Up to `max` records (waits for the first).
    fn poll(&mut self, max: usize) -> BoxFuture<'_, Result<Vec<ConsumerRecord>, BusError>>;
    /// Commits `next_offset` for a partition.
    fn commit(&mut self, topic: &str, partition: u32, next_offset: u64) -> Result<(), BusError>;
    /// Rewinds a partition to the committed offset.
    fn seek_to_committed(&mut self, topic: &str, partition: u32) -> Result<(), BusError>;
    /// Assigned partitions.
    fn assignment(&self) -> Vec<(String, u32)>;
    /// Leaves the group now.
    fn close(self: Box<Self>);
}

/// A bus the services can use.
pub trait BusBackend: Send + Sync {
    /// The embedded bus, if that is what this is (brokers as components, admin faults).
    fn embedded(&self) -> Option<&Bus>;
    /// A producer with the given acks; `timeout` is librdkafka's `message.timeout.ms` (the embedded bus
    /// answers at once and needs none).
    fn producer(
        &self,
        client_id: &str,
        acks: Acks,
        timeout: Option<Duration>,
    ) -> Result<Arc<AnyProducer>, BusError>;
    /// A consumer in `group`; `earliest` sets `auto.offset.reset`.
    fn consumer(&self, group: &str, client_id: &str, earliest: bool) -> Result<AnyConsumer, BusError>;
    /// Partitions, leaders, replicas and ISR of a topic.
    fn describe_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<TopicDescription, BusError>>;
    /// Lag of `group` on `topic`, per partition.
    fn consumer_lag<'a>(
        &'a self,
        group: &'a str,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartitionLag>, BusError>>;
}

/// A producer on any bus.
pub type AnyProducer = dyn BusProducer;
/// A group consumer on any bus.
pub type AnyConsumer = Box<dyn BusConsumer>;

/// The bus the services use (cheap to clone).
#[derive(Clone)]
pub struct BusClient(Arc<dyn BusBackend>);

impl BusClient {
    /// The embedded bus.
    pub fn from_embedded(bus: Bus) -> BusClient {
        BusClient(Arc::new(bus))
    }

    /// Any backend.
    pub fn new(backend: Arc<dyn BusBackend>) -> BusClient {
        BusClient(backend)
    }

    /// The embedded bus, if that is what this is.
    pub fn embedded(&self) -> Option<&Bus> {
        self.0.embedded()
    }

    /// A producer with the given acks.
    pub fn producer(&self, client_id: &str, acks: Acks) -> Result<Arc<AnyProducer>, BusError> {
        self.0.producer(client_id, acks, None)
    }

    /// A producer whose sends give up after `timeout` (librdkafka's `message.timeout.ms`).
    pub fn producer_with_timeout(
        &self,
        client_id: &str,
        acks: Acks,
        timeout: Duration,
    ) -> Result<Arc<AnyProducer>, BusError> {
        self.0.producer(client_id, acks, Some(timeout))
    }

    /// A consumer in `group`; `earliest` sets `auto.offset.reset`.
    pub fn consumer(&self, group: &str, client_id: &str, earliest: bool) -> Result<AnyConsumer, BusError> {
        self.0.consumer(group, client_id, earliest)
    }

    /// Partitions, leaders, replicas and ISR of a topic.
    pub async fn describe_topic(&self, topic: &str) -> Result<TopicDescription, BusError> {
        self.0.describe_topic(topic).await
    }

    /// Lag of `group` on `topic`, per partition.
    pub async fn consumer_lag(&self, group: &str, topic: &str) -> Result<Vec<PartitionLag>, BusError> {
        self.0.consumer_lag(group, topic).await
    }
}

impl BusBackend for Bus {
    fn embedded(&self) -> Option<&Bus> {
        Some(self)
    }

    fn producer(
        &self,
        client_id: &str,
        acks: Acks,
        _timeout: Option<Duration>,
    ) -> Result<Arc<AnyProducer>, BusError> {
        Ok(Arc::new(Bus::producer(self, client_id, ProducerConfig { acks })))
    }

    fn consumer(&self, group: &str, client_id: &str, earliest: bool) -> Result<AnyConsumer, BusError> {
        let cfg = ConsumerConfig::new(group, client_id);
        let cfg = if earliest { cfg.earliest() } else { cfg };
        Ok(Box::new(Bus::consumer(self, cfg)))
    }

    fn describe_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<TopicDescription, BusError>> {
        Box::pin(async move { self.admin().describe_topic(topic) })
    }

    fn consumer_lag<'a>(
        &'a self,
        group: &'a str,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartitionLag>, BusError>> {
        Box::pin(async move { self.admin().consumer_lag(group, topic) })
    }
}

impl BusProducer for Producer {
    fn send<'a>(
        &'a self,
        topic: &'a str,
        partition: Option<u32>,
        key: Option<Bytes>,
        value: Bytes,
        timestamp_ms: i64,
    ) -> BoxFuture<'a, Result<RecordMeta, BusError>> {
        Box::pin(Producer::send(self, topic, partition, key, value, timestamp_ms))
    }
}

impl BusConsumer for Consumer {
    fn subscribe(&mut self, topics: &[&str]) -> Result<(), BusError> {
        Consumer::subscribe(self, topics)
    }
    fn poll(&mut self, max: usize) -> BoxFuture<'_, Result<Vec<ConsumerRecord>, BusError>> {
        Box::pin(Consumer::poll(self, max))
    }
    fn commit(&mut self, topic: &str, partition: u32, next_offset: u64) -> Result<(), BusError> {
        Consumer::commit(self, topic, partition, next_offset)
    }
    fn seek_to_committed(&mut self, topic: &str, partition: u32) -> Result<(), BusError> {
        Consumer::seek_to_committed(self, topic, partition)
    }
    fn assignment(&self) -> Vec<(String, u32)> {
        Consumer::assignment(self)
    }
    fn close(self: Box<Self>) {
        Consumer::close(*self)
    }
}

#[cfg(feature = "kafka")]
mod rdkafka_backend {
    use super::*;
    use crate::bus::kafka::{KafkaBus, KafkaConsumer, KafkaProducer};

    impl BusClient {
        /// A real cluster.
        pub fn kafka(k: KafkaBus) -> BusClient {
            BusClient(Arc::new(k))
        }
    }

    impl BusBackend for KafkaBus {
        fn embedded(&self) -> Option<&Bus> {
            None
        }
        fn producer(
            &self,
            client_id: &str,
            acks: Acks,
            timeout: Option<Duration>,
        ) -> Result<Arc<AnyProducer>, BusError> {
            let p = match timeout {
                Some(t) => KafkaBus::producer_with_timeout(self, client_id, acks, t)?,
                None => KafkaBus::producer(self, client_id, acks)?,
            };
            Ok(Arc::new(p))
        }
        fn consumer(&self, group: &str, client_id: &str, earliest: bool) -> Result<AnyConsumer, BusError> {
            Ok(Box::new(KafkaBus::consumer(self, group, client_id, earliest)?))
        }
        fn describe_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<TopicDescription, BusError>> {
            Box::pin(KafkaBus::describe_topic(self, topic))
        }
        fn consumer_lag<'a>(
            &'a self,
            group: &'a str,
            topic: &'a str,
        ) -> BoxFuture<'a, Result<Vec<PartitionLag>, BusError>> {
            Box::pin(KafkaBus::consumer_lag(self, group, topic))
        }
    }

    impl BusProducer for KafkaProducer {
        fn send<'a>(
            &'a self,
            topic: &'a str,
            partition: Option<u32>,
            key: Option<Bytes>,
            value: Bytes,
            timestamp_ms: i64,
        ) -> BoxFuture<'a, Result<RecordMeta, BusError>> {
            Box::pin(KafkaProducer::send(self, topic, partition, key, value, timestamp_ms))
        }
    }

    impl BusConsumer for KafkaConsumer {
        fn subscribe(&mut self, topics: &[&str]) -> Result<(), BusError> {
            KafkaConsumer::subscribe(self, topics)
        }
        fn poll(&mut self, max: usize) -> BoxFuture<'_, Result<Vec<ConsumerRecord>, BusError>> {
            Box::pin(KafkaConsumer::poll(self, max))
        }
        fn commit(&mut self, topic: &str, partition: u32, next_offset: u64) -> Result<(), BusError> {
            KafkaConsumer::commit(self, topic, partition, next_offset)
        }
        fn seek_to_committed(&mut self, topic: &str, partition: u32) -> Result<(), BusError> {
            KafkaConsumer::seek_to_committed(self, topic, partition)
        }
        fn assignment(&self) -> Vec<(String, u32)> {
            KafkaConsumer::assignment(self)
        }
        fn close(self: Box<Self>) {
            KafkaConsumer::close(*self)
        }
    }
}
