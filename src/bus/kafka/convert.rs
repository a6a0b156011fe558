//! Between librdkafka and the bus: records, offsets, partition ids, and errors mapped to [`BusError`].

use bytes::Bytes;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset};

use crate::bus::error::BusError;
use crate::bus::log::ConsumerRecord;

/// A record as the bus hands it out: owned, with an absent payload as empty bytes.
pub(super) fn record(m: &BorrowedMessage<'_>) -> ConsumerRecord {
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
pub(super) fn offset_value(offset: Offset) -> Option<u64> {
    match offset {
        Offset::Offset(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

/// A partition id as librdkafka takes it.
pub(super) fn to_i32(partition: u32, operation: &str) -> Result<i32, BusError> {
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
pub(super) fn map_error(
    err: &KafkaError,
    operation: String,
    topic: &str,
    partition: Option<u32>,
) -> BusError {
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
pub(super) fn kafka_error(operation: String, err: &KafkaError) -> BusError {
    BusError::Kafka { operation, reason: err.to_string() }
}
