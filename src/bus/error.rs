//! The one error type of the bus, shaped like a Kafka client's error codes.
//!
//! Every variant names the topic, partition, broker or group it is about, so a chaos experiment's log says
//! exactly what failed (`poke-orders-1 has no leader`, not just "produce failed").

use thiserror::Error;

/// Everything a bus call can refuse. The Kafka error code each variant stands for is given in brackets.
/// Fields name the topic, partition, broker, group or member concerned.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BusError {
    /// The topic does not exist and was not auto-created (`UNKNOWN_TOPIC_OR_PARTITION`).
    #[error("topic `{topic}` does not exist")]
    UnknownTopic { topic: String },
    /// The topic exists but has fewer partitions (`UNKNOWN_TOPIC_OR_PARTITION`).
    #[error("topic `{topic}` has no partition {partition} (it has {partitions})")]
    UnknownPartition { topic: String, partition: u32, partitions: u32 },
    /// `create_topic` on a name that is taken (`TOPIC_ALREADY_EXISTS`).
    #[error("topic `{topic}` already exists")]
    TopicExists { topic: String },
    /// A topic name, partition count, replication factor or replica list that cannot work
    /// (`INVALID_TOPIC_EXCEPTION`, `INVALID_REPLICATION_FACTOR`, `INVALID_REPLICA_ASSIGNMENT`).
    #[error("invalid configuration for topic `{topic}`: {reason}")]
    InvalidTopicConfig { topic: String, reason: String },
    /// A broker id outside `1..=brokers`.
    #[error("broker {broker} does not exist (brokers are 1..={brokers})")]
    UnknownBroker { broker: u32, brokers: u32 },
    /// The partition is offline: no in-sync replica is up to lead it (`LEADER_NOT_AVAILABLE`).
    #[error("partition {topic}-{partition} has no leader (offline)")]
    LeaderNotAvailable { topic: String, partition: u32 },
    /// `acks=all` while the ISR is smaller than `min.insync.replicas`; nothing was written
    /// (`NOT_ENOUGH_REPLICAS`).
    #[error("{topic}-{partition}: {isr} in-sync replica(s) < min.insync.replicas={min_insync} (acks=all)")]
    NotEnoughReplicas { topic: String, partition: u32, isr: usize, min_insync: u16 },
    /// A read below the log start offset or above the high watermark (`OFFSET_OUT_OF_RANGE`).
    #[error("offset {offset} is out of range for {topic}-{partition} (log start {low}, high {high})")]
    OffsetOutOfRange { topic: String, partition: u32, offset: u64, low: u64, high: u64 },
    /// No group with this id (`GROUP_ID_NOT_FOUND`).
    #[error("consumer group `{group}` does not exist")]
    UnknownGroup { group: String },
    /// `delete_group` on a group that still has members (`NON_EMPTY_GROUP`).
    #[error("consumer group `{group}` is not empty: {members} member(s)")]
    GroupNotEmpty { group: String, members: usize },
    /// A commit from a member that has not seen the group's latest rebalance yet; poll again to get the new
    /// assignment (`ILLEGAL_GENERATION`, surfaced by clients as `CommitFailed`). Generation 0: it never polled.
    #[error("group `{group}` rebalanced: member `{member}` is at generation {generation}, not {current}")]
    StaleGeneration { group: String, member: String, generation: u32, current: u32 },
    /// A commit from a consumer that is not a member, into a group that has members (`UNKNOWN_MEMBER_ID`).
    #[error("group `{group}` has members and `{member}` is not one of them")]
    UnknownMember { group: String, member: String },
    /// `poll` on a consumer that neither subscribed nor assigned partitions.
    #[error("consumer `{client_id}` is neither subscribed to topics nor assigned partitions")]
    NoSubscription { client_id: String },
    /// `seek` on a partition the consumer does not own (as of its last poll).
    #[error("consumer `{client_id}` is not assigned {topic}-{partition}")]
    NotAssigned { client_id: String, topic: String, partition: u32 },
    /// A real Kafka cluster (cargo feature `kafka`) refused or did not answer a request in a way none of the
    /// variants above stands for; `operation` names the call and what it was about, `reason` is librdkafka's
    /// description.
    #[error("kafka {operation}: {reason}")]
    Kafka { operation: String, reason: String },
}
