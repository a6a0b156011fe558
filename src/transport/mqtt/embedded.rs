//! Live mode's MQTT_BROKER: an embedded rumqttd broker on internal loopback ports.
//!
//! rumqttd runs on its own OS threads and has no shutdown API, so it cannot be stopped. Users reach it
//! through the front proxy ([`super::front`]) on the user-facing port; aborting the proxy is how "broker
//! down" is done in live mode. rumqttd's own listeners admit only the proxy: they require a login made of
//! random bytes that lives in this process's memory and that the proxy writes into every CONNECT it
//! forwards, so a client that finds the internal port cannot publish around an outage.
//!
//! rumqttd drops messages silently when a subscriber falls more than its commit log behind (it moves the
//! subscriber's cursor ahead and logs a warning); [`SkippedAheadLayer`] turns that warning into the
//! count [`skipped_ahead`] that `MQTT_BROKER` reports as dropped.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tracing::{info, warn};

use super::front::{FrontLogin, Upstreams};

/// How many times [`EmbeddedBroker::start`] picks a new port when rumqttd could not listen on the last one.
const START_ATTEMPTS: u32 = 3;
/// Pause between two readiness probes of the internal port.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// After the first successful probe, how long the listener thread must stay alive to count as ours
/// (if another process grabbed the port first, rumqttd's bind fails and its thread ends at once).
const SETTLE_TIME: Duration = Duration::from_millis(20);

/// Settings of the embedded broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// Most simultaneous client connections the router accepts.
    pub max_connections: usize,
    /// Largest MQTT packet the broker accepts from a client, in bytes.
    pub max_payload_size: usize,
    /// Most unacknowledged QoS 1 messages per connection.
    pub max_inflight_count: usize,
    /// How long a client may take to send CONNECT after the TCP connect (at most 65 535 ms).
    pub connect_timeout: Duration,
    /// How long [`EmbeddedBroker::start`] waits for the broker to accept TCP connections.
    pub startup_timeout: Duration,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            max_connections: 10_000,
            max_payload_size: 2 * 1024 * 1024,
            max_inflight_count: 100,
            connect_timeout: Duration::from_secs(10),
            startup_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the embedded broker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No free loopback port could be reserved for the internal listener.
    #[error("embedded MQTT broker: cannot pick a free port on 127.0.0.1: {0}")]
    PortProbe(#[source] io::Error),
    /// The OS refused to start the broker's thread.
    #[error("embedded MQTT broker: cannot spawn the broker thread: {0}")]
    Spawn(#[source] io::Error),
    /// rumqttd never accepted a TCP connection on its internal port.
    #[error("embedded MQTT broker did not start listening on {addr} after {attempts} attempt(s): {reason}")]
    NotListening { addr: SocketAddr, attempts: u32, reason: String },
}

/// A running rumqttd broker on an internal loopback port. It lives until the process exits (rumqttd has
/// no shutdown API); put [`super::front::serve_front`] in front of it to make it reachable and stoppable.
#[derive(Debug)]
pub struct EmbeddedBroker {
    internal_addr: SocketAddr,
    internal_v5: SocketAddr,
    login: FrontLogin,
    max_packet: usize,
}

impl EmbeddedBroker {
    /// Starts rumqttd (router and listener on their own threads) on a free loopback port and waits until
    /// it accepts TCP connections. Blocks the calling thread for up to `cfg.startup_timeout` per attempt:
    /// from async code call it through `tokio::task::spawn_blocking`.
    ///
    /// The port is picked by binding `127.0.0.1:0` and releasing it, so another process can take it
    /// before rumqttd binds; the start is then retried on a new port. A failed attempt leaves an idle
    /// router thread behind (rumqttd cannot stop it).
    pub fn start(cfg: EmbeddedConfig) -> Result<EmbeddedBroker, EmbeddedError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let addr = free_loopback_addr().map_err(EmbeddedError::PortProbe)?;
            let v5 = free_loopback_addr().map_err(EmbeddedError::PortProbe)?;
            let login = FrontLogin::generate();
            let mut broker = Broker::new(rumqttd_config(&cfg, addr, v5, &login));
            let thread = std::thread::Builder::new()
                .name("rumqttd".into())
                .spawn(move || {
                    // Returns only once its listener thread has ended, i.e. when binding failed.
                    if let Err(e) = broker.start() {
                        warn!(error = %e, "embedded MQTT broker failed to start");
                    }
                })
                .map_err(EmbeddedError::Spawn)?;
            let listening = wait_listening(addr, &login, &thread, cfg.startup_timeout).and_then(|()| {
                // The v5 listener: a TCP connect is its probe (its handshake is MQTT 5's).
                let deadline = Instant::now() + cfg.startup_timeout;
                while StdTcpStream::connect_timeout(&v5, PROBE_INTERVAL).is_err() {
                    if Instant::now() >= deadline || thread.is_finished() {
                        return Err(format!("the MQTT 5 listener on {v5} did not come up"));
                    }
                    std::thread::sleep(PROBE_INTERVAL);
                }
                Ok(())
            });
            match listening {
                Ok(()) => {
                    info!(%addr, %v5, attempt, "embedded MQTT broker listening (3.1.1 and 5)");
                    return Ok(EmbeddedBroker {
                        internal_addr: addr,
                        internal_v5: v5,
                        login,
                        max_packet: cfg.max_payload_size,
                    });
                }
                Err(reason) if attempt < START_ATTEMPTS => {
                    warn!(%addr, attempt, %reason, "embedded MQTT broker did not come up; retrying on a new port");
                }
                Err(reason) => return Err(EmbeddedError::NotListening { addr, attempts: attempt, reason }),
            }
        }
    }

    /// Both of rumqttd's listeners and the login they require; point [`super::front::serve_front`] at
    /// them.
    pub fn upstreams(&self) -> Upstreams {
        Upstreams {
            v4: self.internal_addr,
            v5: Some(self.internal_v5),
            login: self.login.clone(),
            max_connect: self.max_packet,
        }
    }
}

/// Reserves a free port on 127.0.0.1 by binding port 0 and releasing it.
fn free_loopback_addr() -> io::Result<SocketAddr> {
    std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()
}

/// rumqttd's configuration: an MQTT 3.1.1 listener on `addr` and an MQTT 5 one on `v5`, one router
/// behind both (a v5 subscriber gets a v4 publisher's messages), both admitting only `login`; no
/// console, prometheus, metrics, bridge or cluster, so nothing else binds a port.
fn rumqttd_config(cfg: &EmbeddedConfig, addr: SocketAddr, v5: SocketAddr, login: &FrontLogin) -> Config {
    let auth = HashMap::from([(login.username.clone(), login.password.clone())]);
    let connect_timeout_ms = u16::try_from(cfg.connect_timeout.as_millis()).unwrap_or(u16::MAX);
    let server = |name: &str, listen: SocketAddr| ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: connect_timeout_ms,
            max_payload_size: cfg.max_payload_size,
            max_inflight_count: cfg.max_inflight_count,
            auth: Some(auth.clone()),
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: cfg.max_connections,
            max_outgoing_packet_count: 200,
            // rumqttd keeps what was published to a topic in a commit log of segments, in memory: 8 MiB
            // of it per topic (a subscriber further behind skips ahead, as a QoS 0 queue overflows in
            // Mosquitto), not the 1 GB 100 MiB × 10 would let a fast publisher fill.
            max_segment_size: 1024 * 1024,
            max_segment_count: 8,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server("chaoslab-mqtt-v4", addr))])),
        v5: Some(HashMap::from([("1".to_string(), server("chaoslab-mqtt-v5", v5))])),
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    }
}

/// Probes `addr` until a TCP connect succeeds while `thread` (the broker) is still running.
fn wait_listening(
    addr: SocketAddr,
    login: &FrontLogin,
    thread: &JoinHandle<()>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if thread.is_finished() {
            return Err("the broker's listener thread ended (port taken?)".into());
        }
        if mqtt_handshake(addr, login).is_ok() {
            std::thread::sleep(SETTLE_TIME);
            if thread.is_finished() {
                return Err("the port answered but the broker's listener thread ended (port taken?)".into());
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("no TCP connect succeeded within {timeout:?}"));
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
}

/// One MQTT session on `addr` with the proxy's login: CONNECT, CONNACK, DISCONNECT. A probe that is a
/// well-behaved client leaves nothing in rumqttd's log (a bare TCP connect made it log an error at every
/// start).
fn mqtt_handshake(addr: SocketAddr, login: &FrontLogin) -> io::Result<()> {
    use std::io::{Read as _, Write as _};

    use bytes::BytesMut;
    use rumqttc::{Connect, Disconnect, Packet};

    let mut stream = StdTcpStream::connect_timeout(&addr, PROBE_INTERVAL)?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    let invalid = |e: rumqttc::mqttbytes::Error| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}"));
    let mut out = BytesMut::new();
    let mut connect = Connect::new("chaoslab-readiness-probe");
    connect.set_login(login.username.clone(), login.password.clone());
    connect.write(&mut out).map_err(invalid)?;
    stream.write_all(&out)?;
    let mut got = BytesMut::new();
    let mut chunk = [0u8; 64];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&chunk[..n]);
        match Packet::read(&mut got, 1024) {
            Ok(Packet::ConnAck(_)) => break,
            Ok(other) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("expected CONNACK, got {other:?}"),
                ));
            }
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => continue,
            Err(e) => return Err(invalid(e)),
        }
    }
    out.clear();
    Disconnect.write(&mut out).map_err(invalid)?;
    stream.write_all(&out)?;
    // Let the broker close its end first (or the read time out): the session has ended either way.
    while stream.read(&mut chunk).is_ok_and(|n| n > 0) {}
    Ok(())
}

/// Messages rumqttd skipped in this process, as [`SkippedAheadLayer`] counted them.
static SKIPPED_AHEAD: AtomicU64 = AtomicU64::new(0);

/// The tracing target rumqttd reports a subscriber's cursor jump under.
pub const ROUTER_TARGET: &str = "rumqttd::router::routing";

/// Messages the embedded brokers of this process dropped because a subscriber fell further behind than
/// rumqttd's commit log reaches (8 MiB per subscription filter): rumqttd moves such a subscriber ahead to
/// the oldest message it still holds, as Mosquitto drops from an overflowing QoS 0 queue. Counted only
/// while a [`SkippedAheadLayer`] is installed (the `chaoslab` binary installs one); 0 otherwise.
pub fn skipped_ahead() -> u64 {
    SKIPPED_AHEAD.load(Ordering::Relaxed)
}

/// A tracing layer that counts the messages rumqttd skips.
///
/// rumqttd (0.20) has no counter for them: its router logs `Read cursor start jumped from (s, a) to
/// (t, b)` at WARN with the cursors as fields, and raises an alert whose `lost` field it always sets to
/// 0. Cursor offsets are absolute positions in the filter's log, so `b - a` messages were skipped. Add
/// this layer with [`SkippedAheadLayer::filter`] as its own filter, so it sees those events whatever the
/// log filter shows; a test floods a stalled subscriber and checks that received + skipped = sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct SkippedAheadLayer;

impl SkippedAheadLayer {
    /// The per-layer filter: rumqttd's router at WARN, nothing else.
    pub fn filter() -> tracing_subscriber::filter::Targets {
        tracing_subscriber::filter::Targets::new().with_target(ROUTER_TARGET, tracing::Level::WARN)
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SkippedAheadLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != ROUTER_TARGET {
            return;
        }
        let mut cursors = JumpCursors::default();
        event.record(&mut cursors);
        if let (Some(from), Some(to)) = (cursors.request, cursors.start) {
            SKIPPED_AHEAD.fetch_add(to.saturating_sub(from), Ordering::Relaxed);
        }
    }
}

/// The two cursors of a cursor-jump event (their offsets).
#[derive(Default)]
struct JumpCursors {
    request: Option<u64>,
    start: Option<u64>,
}

impl tracing::field::Visit for JumpCursors {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let slot = match field.name() {
            "request_cursor" => &mut self.request,
            "start_cursor" => &mut self.start,
            _ => return,
        };
        *slot = cursor_offset(&format!("{value:?}"));
    }
}

/// The offset of a rumqttd cursor as its `Debug` shows it: `(segment, offset)`.
fn cursor_offset(debug: &str) -> Option<u64> {
    let inner = debug.strip_prefix('(')?.strip_suffix(')')?;
    let (_segment, offset) = inner.split_once(',')?;
    offset.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rumqttd_config_has_a_v4_and_a_v5_listener_and_nothing_else() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 4242));
        let v5 = SocketAddr::from(([127, 0, 0, 1], 4243));
        let login = FrontLogin::generate();
        let config = rumqttd_config(&EmbeddedConfig::default(), addr, v5, &login);
        for (servers, listen) in [(config.v4.as_ref().unwrap(), addr), (config.v5.as_ref().unwrap(), v5)] {
            assert_eq!(servers.len(), 1);
            let server = servers.values().next().unwrap();
            assert_eq!(server.listen, listen);
            assert!(server.connections.dynamic_filters);
            assert_eq!(server.connections.connection_timeout_ms, 10_000);
            let auth = server.connections.auth.as_ref().expect("the internal listeners require a login");
            assert_eq!(auth.get(&login.username), Some(&login.password));
            assert_eq!(auth.len(), 1);
        }
        assert!(config.ws.is_none() && config.cluster.is_none() && config.bridge.is_none());
        assert!(config.console.is_none() && config.prometheus.is_none() && config.metrics.is_none());
    }

    #[test]
    fn cursor_offsets_read_as_rumqttd_debug_prints_them() {
        assert_eq!(cursor_offset("(0, 1234)"), Some(1234));
        assert_eq!(cursor_offset("(17,5)"), Some(5));
        for bad in ["", "(0)", "0, 5", "(0, x)", "(0, -1)"] {
            assert_eq!(cursor_offset(bad), None, "{bad}");
        }
    }
}
