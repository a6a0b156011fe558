//! Errors every MQTT session kind (in-process, embedded, external) reports the same way.

/// What can go wrong talking MQTT. `broker` is the broker's address as a user would write it,
/// e.g. `tcp://127.0.0.1:1883` or `sim://MQTT_BROKER`, so that log lines can name it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MqttError {
    /// The broker is not reachable or refused the connection.
    #[error("connection to {broker} refused: {reason}")]
    ConnectionRefused { broker: String, reason: String },
    /// An established connection was lost (broker stopped, session taken over, network cut).
    #[error("connection to {broker} lost: {reason}")]
    Disconnected { broker: String, reason: String },
    /// A subscription filter that MQTT does not allow.
    #[error("invalid topic filter {filter:?}: {reason}")]
    InvalidFilter { filter: String, reason: String },
    /// A topic name (for publishing) that MQTT does not allow.
    #[error("invalid topic name {topic:?}: {reason}")]
    InvalidTopic { topic: String, reason: String },
    /// The payload is larger than the broker accepts.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge { size: usize, limit: usize },
}
