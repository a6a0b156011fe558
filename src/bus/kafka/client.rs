//! librdkafka clients: their configuration, the context that routes their logs, errors and rebalances to
//! `tracing`, and the two ways their blocking calls are kept off async workers.

use rdkafka::admin::AdminOptions;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::runtime::{Handle, RuntimeFlavor};
use tracing::{debug, error, info, warn};

use super::REQUEST_TIMEOUT;
use crate::bus::error::BusError;

/// Routes librdkafka's log lines and global errors to `tracing`, and logs consumer rebalances.
#[derive(Clone, Debug)]
pub(super) struct TracingContext {
    client_id: String,
}

impl TracingContext {
    pub(super) fn new(client_id: &str) -> Self {
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
pub(super) fn client_config(
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
pub(super) fn admin_options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT)).operation_timeout(Some(REQUEST_TIMEOUT))
}

/// Runs a blocking librdkafka call on tokio's blocking pool.
pub(super) async fn off_runtime<T, F>(operation: &str, f: F) -> Result<T, BusError>
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
pub(super) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
