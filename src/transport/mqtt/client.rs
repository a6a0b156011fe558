//! Live-mode MQTT client session over rumqttc, for the embedded broker or any external one (Mosquitto...).
//!
//! A [`LiveSession`] is one MQTT connection. A task per session polls the rumqttc event loop and forwards
//! incoming PUBLISH and SUBACK packets over channels. The session dies with its connection: the first
//! event-loop error ends it and rumqttc is never polled again, so it never reconnects on its own. Callers
//! reconnect by creating a new session, with their own back-off and logging.
//!
//! rumqttc deadlocks if its request channel is full while nobody polls the event loop. Here the event
//! loop only stops when the incoming channel is full, so while `publish` or `subscribe` wait they move
//! incoming messages into a side buffer (up to [`INCOMING_CAPACITY`]) for later `recv` calls. If they
//! still make no progress for [`ACK_TIMEOUT`], the session is closed and they return `Disconnected`, so
//! neither call can block forever.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, QoS, SubAck};
use rumqttc::{Publish, SubscribeReasonCode};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::transport::envelope::{Envelope, Qos};
use crate::transport::mqtt::error::MqttError;

/// Port used when a broker URL names none.
pub const DEFAULT_PORT: u16 = 1883;
/// Largest payload [`LiveSession::publish`] sends and accepts, in bytes.
pub const MAX_PAYLOAD_SIZE: usize = 1024 * 1024;
/// Bound on the TCP connect plus CONNACK in [`LiveSession::connect`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `publish` waits to hand a message to the event loop and `subscribe` waits for the SUBACK.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Incoming messages buffered per session before the event loop stops reading from the broker
/// (plus as many again while `publish`/`subscribe` wait).
pub const INCOMING_CAPACITY: usize = 1024;
/// Requests (publish, subscribe...) queued for the event loop.
const REQUEST_CAPACITY: usize = 256;
/// Packet size limit in both directions: the payload plus the longest topic and headers.
const MAX_PACKET_SIZE: usize = MAX_PAYLOAD_SIZE + 64 * 1024 + 16;
/// How long `disconnect` waits for the DISCONNECT packet to be flushed.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);

/// Where a broker listens, as given by the user: `mqtt://host:port`, `tcp://host:port` or `host:port`
/// (port defaults to 1883; IPv6 hosts in brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// A broker URL that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid broker URL {input:?}: {reason}")]
pub struct BrokerUrlError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl BrokerUrl {
    /// The host as rumqttc must be given it (IPv6 in brackets).
    fn connect_host(&self) -> String {
        if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() }
    }
}

impl FromStr for BrokerUrl {
    type Err = BrokerUrlError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| BrokerUrlError { input: input.to_string(), reason };
        let text = input.trim();
        let rest = match text.split_once("://") {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("mqtt") || scheme.eq_ignore_ascii_case("tcp") =>
            {
                rest
            }
            Some((scheme, _)) => {
                return Err(fail(format!("unsupported scheme {scheme:?} (expected mqtt:// or tcp://)")));
            }
            None => text,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if let Some(bad) = rest.chars().find(|c| matches!(c, '/' | '?' | '#' | '@')) {
            return Err(fail(format!("unexpected {bad:?}: only host and port are allowed")));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) =
                bracketed.split_once(']').ok_or_else(|| fail("IPv6 address without closing ']'".into()))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(fail(format!("unexpected {after:?} after the IPv6 address"))),
                },
            }
        } else {
            match rest.split_once(':') {
                Some((_, port)) if port.contains(':') => {
                    return Err(fail("IPv6 addresses must be written in brackets, e.g. [::1]:1883".into()));
                }
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(fail("the host is empty".into()));
        }
        if let Some(bad) =
            host.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
        {
            return Err(fail(format!("the host contains {bad:?}")));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => match port.parse::<u16>() {
                Ok(0) | Err(_) => {
                    return Err(fail(format!("the port {port:?} is not a number from 1 to 65535")));
                }
                Ok(port) => port,
            },
        };
        Ok(BrokerUrl { host: host.to_string(), port })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcp://{}:{}", self.connect_host(), self.port)
    }
}

/// How to open a [`LiveSession`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// The broker.
    pub url: BrokerUrl,
    /// MQTT client identifier; may be empty only with `clean_session`.
    pub client_id: String,
    /// Start a fresh session (`true`) or resume the broker-side one for this client id.
    pub clean_session: bool,
    /// Keep-alive interval; zero disables pings, sub-second values are raised to one second.
    pub keep_alive: Duration,
}

/// One live MQTT connection. Dropping it closes the connection at once (no DISCONNECT packet);
/// [`LiveSession::disconnect`] closes it politely.
pub struct LiveSession {
    broker: String,
    client_id: String,
    client: AsyncClient,
    incoming: mpsc::Receiver<Envelope>,
    subacks: mpsc::UnboundedReceiver<SubAck>,
    /// Messages taken off `incoming` while `publish`/`subscribe` waited; `recv` returns them first.
    parked: VecDeque<Envelope>,
    /// Why the connection ended; set by the session task before it drops its channel ends.
    end: Arc<OnceLock<String>>,
    task: JoinHandle<()>,
}

impl fmt::Debug for LiveSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSession")
            .field("broker", &self.broker)
            .field("client_id", &self.client_id)
            .field("parked", &self.parked.len())
            .field("ended", &self.end.get())
            .finish()
    }
}

impl LiveSession {
    /// Connects and resolves once the broker's CONNACK accepts the session, within [`CONNECT_TIMEOUT`].
    /// Any failure (no listener, refused CONNACK, timeout, bad options) is `ConnectionRefused`.
    pub async fn connect(opts: ClientOptions) -> Result<LiveSession, MqttError> {
        let broker = opts.url.to_string();
        let refused = |reason: String| MqttError::ConnectionRefused { broker: broker.clone(), reason };
        if !opts.clean_session && opts.client_id.is_empty() {
            return Err(refused("a persistent session (clean_session = false) needs a client id".into()));
        }
        let mut mqtt = MqttOptions::new(opts.client_id.clone(), opts.url.connect_host(), opts.url.port);
        mqtt.set_clean_session(opts.clean_session)
            .set_keep_alive(wire_keep_alive(opts.keep_alive))
            .set_max_packet_size(MAX_PACKET_SIZE, MAX_PACKET_SIZE);
        let (client, mut eventloop) = AsyncClient::new(mqtt, REQUEST_CAPACITY);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        network.set_connection_timeout(CONNECT_TIMEOUT.as_secs());
        eventloop.set_network_options(network);

        match tokio::time::timeout(CONNECT_TIMEOUT, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                debug!(%broker, client_id = opts.client_id, session_present = ack.session_present, "MQTT connected");
            }
            Ok(Ok(other)) => return Err(refused(format!("expected CONNACK, got {other:?}"))),
            Ok(Err(e)) => return Err(refused(e.to_string())),
            Err(_) => return Err(refused(format!("no CONNACK within {CONNECT_TIMEOUT:?}"))),
        }

        let (incoming_tx, incoming) = mpsc::channel(INCOMING_CAPACITY);
        let (suback_tx, subacks) = mpsc::unbounded_channel();
        let end = Arc::new(OnceLock::new());
        let task = tokio::spawn(drive(
            eventloop,
            incoming_tx,
            suback_tx,
            end.clone(),
            broker.clone(),
            opts.client_id.clone(),
        ));
        Ok(LiveSession {
            broker,
            client_id: opts.client_id,
            client,
            incoming,
            subacks,
            parked: VecDeque::new(),
            end,
            task,
        })
    }

    /// The MQTT client identifier this session connected with.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Subscribes to `filter` and waits for the broker's SUBACK. A filter the broker rejects is
    /// `InvalidFilter`.
    pub async fn subscribe(&mut self, filter: &str, qos: Qos) -> Result<(), MqttError> {
        super::topic::validate_filter(filter)?;
        let client = self.client.clone();
        let subacks = &mut self.subacks;
        let request = async move {
            client.subscribe(filter, to_rumqttc(qos)).await.ok()?;
            subacks.recv().await
        };
        let outcome = wait_draining(&mut self.incoming, &mut self.parked, request).await;
        match outcome {
            Some(Some(ack)) => match ack.return_codes.first() {
                Some(SubscribeReasonCode::Success(_)) => Ok(()),
                _ => Err(MqttError::InvalidFilter {
                    filter: filter.to_string(),
                    reason: format!("refused by the broker (SUBACK {:?})", ack.return_codes),
                }),
            },
            Some(None) => Err(self.lost()),
            None => Err(self.stalled("subscribe")),
        }
    }

    /// Hands `env` to the event loop and returns; QoS 1 retransmission then happens within this
    /// connection only (a QoS 1 message not yet acknowledged when the connection drops is lost with it).
    pub async fn publish(&mut self, env: Envelope) -> Result<(), MqttError> {
        super::topic::validate_topic_name(&env.topic)?;
        if env.payload.len() > MAX_PAYLOAD_SIZE {
            return Err(MqttError::PayloadTooLarge { size: env.payload.len(), limit: MAX_PAYLOAD_SIZE });
        }
        let client = self.client.clone();
        let request = async move {
            client.publish_bytes(env.topic, to_rumqttc(env.qos), env.retain, env.payload).await
        };
        match wait_draining(&mut self.incoming, &mut self.parked, request).await {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) => Err(self.lost()),
            None => Err(self.stalled("publish")),
        }
    }

    /// The next incoming PUBLISH (in arrival order), or `Disconnected` once the connection is lost and
    /// everything received before has been returned.
    pub async fn recv(&mut self) -> Result<Envelope, MqttError> {
        if let Some(env) = self.parked.pop_front() {
            return Ok(env);
        }
        self.incoming.recv().await.ok_or_else(|| self.lost())
    }

    /// Sends DISCONNECT (so the broker discards any last will) and closes the connection.
    pub async fn disconnect(mut self) {
        // The task must not block forwarding messages nobody will read.
        self.incoming.close();
        if self.client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(DISCONNECT_GRACE, &mut self.task).await;
        }
        debug!(broker = self.broker, client_id = self.client_id, "MQTT session disconnected");
    }

    /// The error for a session whose connection has ended.
    fn lost(&self) -> MqttError {
        let reason = self.end.get().cloned().unwrap_or_else(|| "the session task ended".into());
        MqttError::Disconnected { broker: self.broker.clone(), reason }
    }

    /// Closes a session that made no progress for [`ACK_TIMEOUT`] and says why.
    fn stalled(&mut self, what: &str) -> MqttError {
        self.task.abort();
        let reason = if self.parked.len() >= INCOMING_CAPACITY {
            format!(
                "{what} made no progress for {ACK_TIMEOUT:?}: {} incoming messages are waiting to be \
                 received; session closed",
                self.parked.len() + self.incoming.len()
            )
        } else {
            format!("{what} made no progress for {ACK_TIMEOUT:?} (broker not responding); session closed")
        };
        warn!(broker = self.broker, client_id = self.client_id, reason, "MQTT session stalled");
        let _ = self.end.set(reason.clone());
        MqttError::Disconnected { broker: self.broker.clone(), reason }
    }
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `request` for at most [`ACK_TIMEOUT`], meanwhile moving incoming messages to `parked` (while it
/// holds fewer than [`INCOMING_CAPACITY`]) so the event loop keeps polling. `None` on timeout.
async fn wait_draining<T>(
    incoming: &mut mpsc::Receiver<Envelope>,
    parked: &mut VecDeque<Envelope>,
    request: impl Future<Output = T>,
) -> Option<T> {
    let deadline = tokio::time::sleep(ACK_TIMEOUT);
    tokio::pin!(request, deadline);
    loop {
        tokio::select! {
            biased;
            out = &mut request => return Some(out),
            Some(env) = incoming.recv(), if parked.len() < INCOMING_CAPACITY => parked.push_back(env),
            () = &mut deadline => return None,
        }
    }
}

/// The session task: polls the event loop until the connection ends, forwarding PUBLISH and SUBACK.
async fn drive(
    mut eventloop: EventLoop,
    incoming: mpsc::Sender<Envelope>,
    subacks: mpsc::UnboundedSender<SubAck>,
    end: Arc<OnceLock<String>>,
    broker: String,
    client_id: String,
) {
    let reason = loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                // A closed receiver means `disconnect` is under way: keep polling until DISCONNECT is out.
                let _ = incoming.send(to_envelope(publish)).await;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let _ = subacks.send(ack);
            }
            Ok(Event::Incoming(Packet::Disconnect)) => break "the broker sent DISCONNECT".to_string(),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                debug!(broker, client_id, "MQTT DISCONNECT sent");
                break "the session was disconnected by the client".to_string();
            }
            Ok(_) => {}
            Err(e) => {
                info!(broker, client_id, error = %e, "MQTT connection lost");
                break e.to_string();
            }
        }
    };
    // Set before the channel ends drop, so a caller seeing them closed finds the reason.
    let _ = end.set(reason);
}

fn to_envelope(publish: Publish) -> Envelope {
    Envelope {
        topic: publish.topic,
        payload: publish.payload,
        qos: match publish.qos {
            QoS::AtMostOnce => Qos::AtMostOnce,
            QoS::AtLeastOnce | QoS::ExactlyOnce => Qos::AtLeastOnce,
        },
        retain: publish.retain,
    }
}

fn to_rumqttc(qos: Qos) -> QoS {
    match qos {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
    }
}

/// Keep-alive as rumqttc accepts it (zero, or whole seconds from 1 to 65 535) without panicking.
fn wire_keep_alive(requested: Duration) -> Duration {
    if requested.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_secs(requested.as_secs().clamp(1, u64::from(u16::MAX)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::transport::mqtt::embedded::{EmbeddedBroker, EmbeddedConfig};

    /// Options for a clean session with a 5 s keep-alive.
    pub(crate) fn opts(url: &BrokerUrl, client_id: &str) -> ClientOptions {
        ClientOptions {
            url: url.clone(),
            client_id: client_id.into(),
            clean_session: true,
            keep_alive: Duration::from_secs(5),
        }
    }

    /// The next message, failing the test after 5 s.
    pub(crate) async fn recv_soon(session: &mut LiveSession) -> Result<Envelope, MqttError> {
        tokio::time::timeout(Duration::from_secs(5), session.recv()).await.expect("no message within 5 s")
    }

    /// One session subscribes to `customTopic` with QoS 1, another publishes 100 QoS 0 then 100 QoS 1
    /// messages; all must arrive in order with their payloads. `spec_qos`: the broker delivers at
    /// min(publish QoS, subscription QoS) as MQTT says (rumqttd 0.20 delivers at the subscription's QoS).
    pub(crate) async fn roundtrip(url: &BrokerUrl, tag: &str, spec_qos: bool) {
        let mut sub = LiveSession::connect(opts(url, &format!("{tag}-sub"))).await.unwrap();
        sub.subscribe("customTopic", Qos::AtLeastOnce).await.unwrap();
        let mut publisher = LiveSession::connect(opts(url, &format!("{tag}-pub"))).await.unwrap();
        for qos in [Qos::AtMostOnce, Qos::AtLeastOnce] {
            for i in 0..100 {
                let payload = format!(r#"{{"qos":{},"n":{i}}}"#, qos.level());
                publisher.publish(Envelope::new("customTopic", payload).with_qos(qos)).await.unwrap();
            }
            for i in 0..100 {
                let env = recv_soon(&mut sub).await.unwrap();
                assert_eq!(env.topic, "customTopic");
                assert_eq!(env.payload, format!(r#"{{"qos":{},"n":{i}}}"#, qos.level()).as_bytes());
                assert_eq!(env.qos, if spec_qos { qos } else { Qos::AtLeastOnce });
            }
        }
        publisher.disconnect().await;
        sub.disconnect().await;
    }

    fn parse(text: &str) -> Result<BrokerUrl, BrokerUrlError> {
        text.parse()
    }

    #[test]
    fn broker_urls_parse() {
        let url = |host: &str, port| BrokerUrl { host: host.into(), port };
        assert_eq!(parse("mqtt://localhost:1884"), Ok(url("localhost", 1884)));
        assert_eq!(parse("tcp://127.0.0.1:1883"), Ok(url("127.0.0.1", 1883)));
        assert_eq!(parse("broker.example-1.net:8883"), Ok(url("broker.example-1.net", 8883)));
        assert_eq!(parse("MQTT://mosquitto/"), Ok(url("mosquitto", DEFAULT_PORT)));
        assert_eq!(parse("  mqtt_broker  "), Ok(url("mqtt_broker", DEFAULT_PORT)));
        assert_eq!(parse("tcp://[::1]:1884"), Ok(url("::1", 1884)));
        assert_eq!(parse("[::1]"), Ok(url("::1", DEFAULT_PORT)));
    }

    #[test]
    fn broker_urls_display_as_tcp_and_round_trip() {
        for (text, shown) in [
            ("mqtt://localhost:1884", "tcp://localhost:1884"),
            ("mosquitto", "tcp://mosquitto:1883"),
            ("[::1]:9", "tcp://[::1]:9"),
        ] {
            let url = parse(text).unwrap();
            assert_eq!(url.to_string(), shown);
            assert_eq!(parse(shown), Ok(url));
        }
    }

    #[test]
    fn bad_broker_urls_say_what_is_wrong() {
        for (text, reason) in [
            ("", "the host is empty"),
            ("mqtt://:1883", "the host is empty"),
            ("http://localhost:1883", "unsupported scheme \"http\""),
            ("mqtts://localhost:8883", "unsupported scheme \"mqtts\""),
            ("localhost:0", "not a number from 1 to 65535"),
            ("localhost:65536", "not a number from 1 to 65535"),
            ("localhost:", "not a number from 1 to 65535"),
            ("localhost:abc", "not a number from 1 to 65535"),
            ("::1:1883", "IPv6 addresses must be written in brackets"),
            ("[::1:1883", "without closing ']'"),
            ("[::1]1883", "after the IPv6 address"),
            ("mqtt://user@localhost", "unexpected '@'"),
            ("mqtt://localhost:1883/sensors", "unexpected '/'"),
            ("local host", "the host contains ' '"),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.input, text);
            assert!(err.reason.contains(reason), "{text:?}: {err}");
            assert!(err.to_string().starts_with("invalid broker URL"), "{err}");
        }
    }

    #[test]
    fn keep_alive_is_made_acceptable_to_rumqttc() {
        assert_eq!(wire_keep_alive(Duration::ZERO), Duration::ZERO);
        assert_eq!(wire_keep_alive(Duration::from_millis(300)), Duration::from_secs(1));
        assert_eq!(wire_keep_alive(Duration::from_millis(30_900)), Duration::from_secs(30));
        assert_eq!(wire_keep_alive(Duration::from_secs(1 << 20)), Duration::from_secs(65_535));
    }

    #[tokio::test]
    async fn persistent_session_without_client_id_is_refused_before_connecting() {
        let url = parse("127.0.0.1:9").unwrap();
        let options = ClientOptions { clean_session: false, ..opts(&url, "") };
        match LiveSession::connect(options).await {
            Err(MqttError::ConnectionRefused { broker, reason }) => {
                assert_eq!(broker, "tcp://127.0.0.1:9");
                assert!(reason.contains("needs a client id"), "{reason}");
            }
            other => panic!("expected ConnectionRefused, got {other:?}"),
        }
    }

    /// Publishing to its own subscription without ever calling `recv` is the rumqttc deadlock pattern:
    /// it must get well past the incoming channel's capacity, then fail with `Disconnected` instead of
    /// hanging, and every message received before must still be readable in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishing_without_receiving_never_hangs() {
        let broker = tokio::task::spawn_blocking(|| EmbeddedBroker::start(EmbeddedConfig::default()))
            .await
            .unwrap()
            .unwrap();
        let (url, _stats, _front) = crate::transport::mqtt::front::tests::spawn_front(&broker).await;
        let mut session = LiveSession::connect(opts(&url, "self-loop")).await.unwrap();
        session.subscribe("loop/t", Qos::AtMostOnce).await.unwrap();
        let mut published = 0;
        let failure = loop {
            match session.publish(Envelope::new("loop/t", published.to_string())).await {
                Ok(()) => published += 1,
                Err(e) => break e,
            }
            assert!(published < 20_000, "publish never pushed back");
        };
        assert!(published > INCOMING_CAPACITY + REQUEST_CAPACITY, "stalled after {published}");
        match failure {
            MqttError::Disconnected { broker, reason } => {
                assert_eq!(broker, url.to_string());
                assert!(reason.contains("waiting to be received"), "{reason}");
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
        let mut next = 0;
        while let Ok(env) = session.recv().await {
            assert_eq!(env.payload, next.to_string().as_bytes());
            next += 1;
        }
        assert!(next >= 2 * INCOMING_CAPACITY, "only {next} messages were kept");
    }

    fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pubsub_against_mosquitto() {
        let Some(mosquitto) = find_on_path("mosquitto") else {
            crate::testing::skip("pubsub_against_mosquitto", "mosquitto is not on PATH");
            return;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let mut child = tokio::process::Command::new(mosquitto)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = BrokerUrl { host: "127.0.0.1".into(), port };
        let mut up = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                up = true;
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "mosquitto exited early");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "mosquitto did not listen on {port}");
        roundtrip(&url, "mosquitto", true).await;
        child.kill().await.unwrap();
    }
}
