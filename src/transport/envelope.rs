//! The unit that crosses every hop: a topic, an opaque payload and its delivery settings.
//!
//! Every transport (the in-process MQTT broker, the embedded rumqttd broker, an external broker)
//! and every link carries `Envelope`s, so fault hooks never need to know which transport is in use.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// MQTT quality of service. QoS 2 is accepted from peers and handled as QoS 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Qos {
    /// Fire and forget.
    #[default]
    AtMostOnce,
    /// Acknowledged; may be delivered more than once.
    AtLeastOnce,
}

impl Qos {
    /// The numeric level as on the wire.
    pub fn level(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
        }
    }

    /// Parses a numeric level; 2 is downgraded to 1.
    pub fn from_level(level: u8) -> Option<Qos> {
        match level {
            0 => Some(Qos::AtMostOnce),
            1 | 2 => Some(Qos::AtLeastOnce),
            _ => None,
        }
    }
}

/// Serde adapter for a QoS written as its level in flow files: 0, 1 or 2 (2 is served as 1).
pub mod qos_level {
    use serde::{Deserialize, Deserializer};

    use super::Qos;

    /// Reads a level.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Qos, D::Error> {
        let level = u8::deserialize(d)?;
        Qos::from_level(level)
            .ok_or_else(|| serde::de::Error::custom(format!("qos must be 0, 1 or 2, got {level}")))
    }

    /// QoS 1, for fields whose default it is.
    pub fn at_least_once() -> Qos {
        Qos::AtLeastOnce
    }
}

/// One message on its way from a publisher to a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Topic name (never a filter: no `+` or `#`).
    pub topic: String,
    /// Opaque bytes; for the sensor path a JSON object.
    pub payload: Bytes,
    /// Requested quality of service.
    pub qos: Qos,
    /// MQTT retain flag.
    pub retain: bool,
}

impl Envelope {
    /// A QoS 0, non-retained message.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Envelope { topic: topic.into(), payload: payload.into(), qos: Qos::AtMostOnce, retain: false }
    }

    /// The same message with another QoS.
    pub fn with_qos(mut self, qos: Qos) -> Self {
        self.qos = qos;
        self
    }

    /// The same message with the retain flag set as given.
    pub fn with_retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }
}
