//! MQTT for components, whichever broker is behind it.
//!
//! Components talk to [`MqttConnector`] and [`MqttSession`], never to a broker crate: in sim mode they are
//! backed by the in-process [`sim_broker`], in live mode by a rumqttc [`client`] session connected to the
//! embedded rumqttd broker ([`embedded`], reached through its [`front`] proxy) or to an external one. [`pump`] holds the two loops every MQTT
//! component needs (subscribe into a link, publish out of a link) with reconnects and the log lines the
//! reference components print.

pub mod client;
pub mod embedded;
pub mod error;
pub mod front;
pub mod mqtt_broker;
pub mod pump;
pub mod sim_broker;
pub mod topic;

use self::client::{BrokerUrl, ClientOptions, LiveSession};
use self::error::MqttError;
use self::sim_broker::{SimBroker, SimSession};
use super::envelope::{Envelope, Qos};

/// Where sessions come from.
#[derive(Clone)]
pub enum MqttConnector {
    /// The in-process broker.
    Sim(SimBroker),
    /// A real broker over TCP (the embedded one's front port, or an external one).
    Live(BrokerUrl),
}

impl MqttConnector {
    /// The broker's address as logs show it (`sim://MQTT_BROKER`, `tcp://127.0.0.1:1883`).
    pub fn address(&self) -> String {
        match self {
            MqttConnector::Sim(b) => b.address(),
            MqttConnector::Live(url) => url.to_string(),
        }
    }

    /// `host:port` as a client's configuration names the broker (`MQTT_BROKER:1883` for the in-process one),
    /// for log lines that write their own scheme (NiFi's `tcp://…`, Node-RED's `mqtt://…`).
    pub fn host_port(&self) -> String {
        match self {
            MqttConnector::Sim(b) => {
                let a = b.address();
                format!("{}:1883", a.strip_prefix("sim://").unwrap_or(&a))
            }
            MqttConnector::Live(url) => format!("{}:{}", url.host, url.port),
        }
    }

    /// Opens a session.
    pub async fn connect(&self, client_id: &str, clean_session: bool) -> Result<MqttSession, MqttError> {
        match self {
            MqttConnector::Sim(b) => b.connect(client_id, clean_session).map(MqttSession::Sim),
            MqttConnector::Live(url) => {
                let opts = ClientOptions {
                    url: url.clone(),
                    client_id: client_id.to_string(),
                    clean_session,
                    keep_alive: std::time::Duration::from_secs(30),
                };
                LiveSession::connect(opts).await.map(MqttSession::Live)
            }
        }
    }
}

/// A connected client session.
pub enum MqttSession {
    /// In-process.
    Sim(SimSession),
    /// Over TCP.
    Live(LiveSession),
}

impl MqttSession {
    /// Subscribes to a filter.
    pub async fn subscribe(&mut self, filter: &str, qos: Qos) -> Result<(), MqttError> {
        match self {
            MqttSession::Sim(s) => s.subscribe(filter, qos),
            MqttSession::Live(s) => s.subscribe(filter, qos).await,
        }
    }

    /// Publishes a message.
    pub async fn publish(&mut self, env: Envelope) -> Result<(), MqttError> {
        match self {
            MqttSession::Sim(s) => s.publish(env).await,
            MqttSession::Live(s) => s.publish(env).await,
        }
    }

    /// The next message for this session, or the reason the connection ended.
    pub async fn recv(&mut self) -> Result<Envelope, MqttError> {
        match self {
            MqttSession::Sim(s) => s.recv().await,
            MqttSession::Live(s) => s.recv().await,
        }
    }
}
