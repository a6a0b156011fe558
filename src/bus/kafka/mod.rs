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
//!
//! Files: `mod.rs` ([`KafkaBus`] and its settings), `admin.rs` (metadata, offsets, groups and topic
//! creation), `producer.rs` ([`KafkaProducer`]), `consumer.rs` ([`KafkaConsumer`]), `client.rs`
//! (librdkafka client configuration, logging context and blocking calls), `convert.rs` (records, offsets
//! and errors between librdkafka and the bus).
//!
//! [`RecordMeta`]: super::RecordMeta
//! [`ConsumerRecord`]: super::ConsumerRecord
//! [`TopicDescription`]: super::TopicDescription
//! [`PartitionLag`]: super::PartitionLag
//! [`PartitionLag::owner`]: super::PartitionLag::owner

mod admin;
mod client;
mod consumer;
mod convert;
mod producer;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::config::ClientConfig;
use tokio::time::Instant;

use super::error::BusError;
use client::{TracingContext, client_config};
use convert::kafka_error;

pub use consumer::KafkaConsumer;
pub use producer::KafkaProducer;

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

/// `min.insync.replicas`, `retention.ms` and `retention.bytes` of a topic, `None` when they could not be
/// read.
type TopicSettings = Option<(u16, Option<Duration>, Option<u64>)>;

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

    /// A client configuration: bootstrap servers, client id, log level, `settings`, then the extra
    /// properties.
    fn config(&self, client_id: &str, settings: &[(&str, &str)]) -> ClientConfig {
        client_config(&self.bootstrap, &self.properties, client_id, settings)
    }
}

#[cfg(test)]
mod tests;
