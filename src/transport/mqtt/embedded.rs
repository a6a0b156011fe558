//! Live mode's MQTT_BROKER: an embedded rumqttd broker behind a TCP front proxy that we own.
//!
//! rumqttd runs on its own OS threads and has no shutdown API, so it cannot be stopped. Instead it listens
//! on an internal loopback port and users reach it through [`serve_front`], a plain TCP splice on the
//! user-facing port. Aborting the `serve_front` future closes every proxied connection at once and stops
//! accepting, which is how "broker down" is done in live mode; serving again on the same port brings the
//! broker back with its state (retained messages, persistent sessions) intact.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// How many times [`EmbeddedBroker::start`] picks a new port when rumqttd could not listen on the last one.
const START_ATTEMPTS: u32 = 3;
/// Pause between two readiness probes of the internal port.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// After the first successful probe, how long the listener thread must stay alive to count as ours
/// (if another process grabbed the port first, rumqttd's bind fails and its thread ends at once).
const SETTLE_TIME: Duration = Duration::from_millis(20);
/// Bound on connecting a proxied connection to the internal broker port.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

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
/// no shutdown API); put [`serve_front`] in front of it to make it reachable and stoppable.
#[derive(Debug)]
pub struct EmbeddedBroker {
    internal_addr: SocketAddr,
    internal_v5: SocketAddr,
}

/// Where the front proxy sends a connection, by the MQTT version its CONNECT asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upstreams {
    /// rumqttd's MQTT 3.1.1 listener.
    pub v4: SocketAddr,
    /// rumqttd's MQTT 5 listener, when it runs one (else v5 clients are refused with a CONNACK).
    pub v5: Option<SocketAddr>,
}

impl From<SocketAddr> for Upstreams {
    fn from(v4: SocketAddr) -> Upstreams {
        Upstreams { v4, v5: None }
    }
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
            let mut broker = Broker::new(rumqttd_config(&cfg, addr, v5));
            let thread = std::thread::Builder::new()
                .name("rumqttd".into())
                .spawn(move || {
                    // Returns only once its listener thread has ended, i.e. when binding failed.
                    if let Err(e) = broker.start() {
                        warn!(error = %e, "embedded MQTT broker failed to start");
                    }
                })
                .map_err(EmbeddedError::Spawn)?;
            let listening = wait_listening(addr, &thread, cfg.startup_timeout).and_then(|()| {
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
                    return Ok(EmbeddedBroker { internal_addr: addr, internal_v5: v5 });
                }
                Err(reason) if attempt < START_ATTEMPTS => {
                    warn!(%addr, attempt, %reason, "embedded MQTT broker did not come up; retrying on a new port");
                }
                Err(reason) => return Err(EmbeddedError::NotListening { addr, attempts: attempt, reason }),
            }
        }
    }

    /// The loopback address rumqttd's MQTT 3.1.1 listener is on.
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal_addr
    }

    /// Both of rumqttd's listeners; point [`serve_front`] at them.
    pub fn upstreams(&self) -> Upstreams {
        Upstreams { v4: self.internal_addr, v5: Some(self.internal_v5) }
    }
}

/// Reserves a free port on 127.0.0.1 by binding port 0 and releasing it.
fn free_loopback_addr() -> io::Result<SocketAddr> {
    std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()
}

/// rumqttd's configuration: an MQTT 3.1.1 listener on `addr` and an MQTT 5 one on `v5`, one router
/// behind both (a v5 subscriber gets a v4 publisher's messages); no console, prometheus, metrics,
/// bridge or cluster, so nothing else binds a port.
fn rumqttd_config(cfg: &EmbeddedConfig, addr: SocketAddr, v5: SocketAddr) -> Config {
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
            auth: None,
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
fn wait_listening(addr: SocketAddr, thread: &JoinHandle<()>, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if thread.is_finished() {
            return Err("the broker's listener thread ended (port taken?)".into());
        }
        if mqtt_handshake(addr).is_ok() {
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

/// One MQTT session on `addr`: CONNECT, CONNACK, DISCONNECT. A probe that is a well-behaved client
/// leaves nothing in rumqttd's log (a bare TCP connect made it log an error at every start).
fn mqtt_handshake(addr: SocketAddr) -> io::Result<()> {
    use std::io::{Read as _, Write as _};

    use bytes::BytesMut;
    use rumqttc::{Connect, Disconnect, Packet};

    let mut stream = StdTcpStream::connect_timeout(&addr, PROBE_INTERVAL)?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    let invalid = |e: rumqttc::mqttbytes::Error| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}"));
    let mut out = BytesMut::new();
    Connect::new("chaoslab-readiness-probe").write(&mut out).map_err(invalid)?;
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

/// Counters of one front proxy; shared with whoever reports metrics.
#[derive(Debug, Default)]
pub struct ProxyStats {
    accepted: AtomicU64,
    active: AtomicU64,
    upstream_failures: AtomicU64,
    bytes_to_upstream: AtomicU64,
    bytes_to_client: AtomicU64,
    publishes_to_upstream: AtomicU64,
    publishes_to_client: AtomicU64,
}

impl ProxyStats {
    /// Connections accepted on the front port since the stats were created.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections currently open (accepted and not yet closed).
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Accepted connections that were closed because the upstream could not be reached.
    pub fn upstream_failures(&self) -> u64 {
        self.upstream_failures.load(Ordering::Relaxed)
    }

    /// Bytes read from clients (towards the broker).
    pub fn bytes_to_upstream(&self) -> u64 {
        self.bytes_to_upstream.load(Ordering::Relaxed)
    }

    /// Bytes read from the broker (towards clients).
    pub fn bytes_to_client(&self) -> u64 {
        self.bytes_to_client.load(Ordering::Relaxed)
    }

    /// PUBLISH packets clients sent to the broker (the broker's messages in).
    pub fn publishes_to_upstream(&self) -> u64 {
        self.publishes_to_upstream.load(Ordering::Relaxed)
    }

    /// PUBLISH packets the broker sent to clients (its messages out).
    pub fn publishes_to_client(&self) -> u64 {
        self.publishes_to_client.load(Ordering::Relaxed)
    }
}

/// Accepts TCP connections on `listener` and splices each one to `upstream`. Every proxied connection
/// belongs to the returned future: dropping or aborting it closes them all at once and stops accepting.
/// Accept errors are logged and the loop goes on, so in practice the future never completes; the error
/// case is reserved for a listener whose local address cannot be read.
pub async fn serve_front(
    listener: TcpListener,
    upstreams: impl Into<Upstreams>,
    stats: Arc<ProxyStats>,
) -> io::Result<()> {
    let upstreams = upstreams.into();
    let front = listener.local_addr()?;
    info!(%front, upstream = %upstreams.v4, "MQTT front proxy accepting");
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            Some(done) = connections.join_next() => {
                if let Err(e) = done {
                    warn!(%front, error = %e, "proxied connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    let active = ActiveGuard::new(stats.clone());
                    connections.spawn(splice(client, peer, upstreams, stats.clone(), active));
                }
                Err(e) => {
                    warn!(%front, error = %e, "MQTT front proxy: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

/// The MQTT protocol level a CONNECT packet asks for, once enough of it is there: `Some(Ok(level))`,
/// `Some(Err(()))` when the bytes are not a CONNECT (the broker will refuse them itself), `None` when more
/// bytes are needed.
fn connect_level(head: &[u8]) -> Option<Result<u8, ()>> {
    let (&first, rest) = head.split_first()?;
    if first != 0x10 {
        return Some(Err(()));
    }
    // The remaining length: 1 to 4 bytes, high bit set on all but the last.
    let len_bytes = rest.iter().position(|b| b & 0x80 == 0)? + 1;
    if len_bytes > 4 {
        return Some(Err(()));
    }
    let variable = &rest[len_bytes..];
    let name_len = usize::from(u16::from_be_bytes([*variable.first()?, *variable.get(1)?]));
    if name_len > 6 {
        return Some(Err(()));
    }
    variable.get(2 + name_len).map(|level| Ok(*level))
}

/// Answers a CONNECT for a protocol level no upstream serves with the CONNACK that says so —
/// MQTT 5's reason code 0x84 "Unsupported Protocol Version", MQTT 3.1's return code 0x01 "unacceptable
/// protocol version" — instead of closing without a word (a client then retries for ever).
async fn refuse_version(client: &mut TcpStream, level: u8) -> io::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let connack: &[u8] = if level == 5 { &[0x20, 0x03, 0x00, 0x84, 0x00] } else { &[0x20, 0x02, 0x00, 0x01] };
    client.write_all(connack).await?;
    client.shutdown().await
}

/// Reads the start of a connection until its CONNECT's protocol level shows (at most 16 bytes, for at
/// most the connect timeout): the level, or `None` to let the broker judge, and the bytes read.
async fn read_connect_level(client: &mut TcpStream) -> (Option<u8>, Vec<u8>) {
    use tokio::io::AsyncReadExt as _;
    let mut head = Vec::with_capacity(16);
    let mut chunk = [0u8; 16];
    let read = async {
        while head.len() < 16 {
            if let Some(level) = connect_level(&head) {
                return level.ok();
            }
            let n = client.read(&mut chunk[..16 - head.len()]).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        connect_level(&head).and_then(Result::ok)
    };
    let level = tokio::time::timeout(EmbeddedConfig::default().connect_timeout, read).await.ok().flatten();
    (level, head)
}

/// Connects to the upstream of the client's MQTT version (3.1.1 or 5) and copies bytes both ways until
/// either side closes; a CONNECT for a version no upstream serves gets its refusal from here.
async fn splice(
    mut client: TcpStream,
    peer: SocketAddr,
    upstreams: Upstreams,
    stats: Arc<ProxyStats>,
    _active: ActiveGuard,
) {
    let (level, head) = read_connect_level(&mut client).await;
    let upstream = match level {
        Some(5) => upstreams.v5,
        Some(4) | None => Some(upstreams.v4),
        Some(_) => None,
    };
    if let (Some(level), None) = (level, upstream) {
        debug!(%peer, level, "MQTT protocol level not served; CONNACK refuses it");
        stats.bytes_to_upstream.fetch_add(head.len() as u64, Ordering::Relaxed);
        if let Err(e) = refuse_version(&mut client, level).await {
            debug!(%peer, error = %e, "cannot send the refusing CONNACK");
        }
        return;
    }
    let upstream = upstream.unwrap_or(upstreams.v4);
    let server = match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
        Ok(Ok(server)) => server,
        Ok(Err(e)) => return upstream_failed(&stats, peer, upstream, &e.to_string()),
        Err(_) => return upstream_failed(&stats, peer, upstream, "connect timed out"),
    };
    // MQTT packets are small: do not let Nagle hold them back on either leg.
    for stream in [&client, &server] {
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
    }
    // What was read to see the version goes first, counted as if it had been spliced.
    let mut frames = FrameScan::default();
    let publishes = frames.feed(&head);
    stats.bytes_to_upstream.fetch_add(head.len() as u64, Ordering::Relaxed);
    stats.publishes_to_upstream.fetch_add(publishes, Ordering::Relaxed);
    let mut server = server;
    {
        use tokio::io::AsyncWriteExt as _;
        if let Err(e) = server.write_all(&head).await {
            return upstream_failed(&stats, peer, upstream, &e.to_string());
        }
    }
    let mut client = Counted { io: client, count: CountTo::Upstream, stats: stats.clone(), frames };
    let mut server = Counted { io: server, count: CountTo::Client, stats, frames: FrameScan::default() };
    match tokio::io::copy_bidirectional(&mut client, &mut server).await {
        Ok((up, down)) => debug!(%peer, up, down, "proxied connection closed"),
        Err(e) => debug!(%peer, error = %e, "proxied connection ended"),
    }
}

fn upstream_failed(stats: &ProxyStats, peer: SocketAddr, upstream: SocketAddr, reason: &str) {
    stats.upstream_failures.fetch_add(1, Ordering::Relaxed);
    warn!(%peer, %upstream, reason, "MQTT front proxy: cannot reach the broker; closing the client connection");
}

/// Keeps [`ProxyStats::active`] right however a connection ends, including by abort.
struct ActiveGuard(Arc<ProxyStats>);

impl ActiveGuard {
    fn new(stats: Arc<ProxyStats>) -> Self {
        stats.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(stats)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which byte counter a stream's reads go to.
#[derive(Clone, Copy)]
enum CountTo {
    Upstream,
    Client,
}

/// A stream that adds every byte read from it, and every PUBLISH packet that starts in it, to a
/// [`ProxyStats`] counter as it goes, so the counts stay right for connections that are cut rather than
/// closed.
struct Counted {
    io: TcpStream,
    count: CountTo,
    stats: Arc<ProxyStats>,
    frames: FrameScan,
}

/// Follows MQTT's framing (a fixed header byte, a remaining length of 1–4 bytes, the rest skipped) over
/// a byte stream cut anywhere, to count PUBLISH packets without parsing them. Malformed framing (a
/// fifth length byte) stops the count; the broker closes such a connection anyway.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum FrameScan {
    #[default]
    Header,
    Length {
        value: u32,
        bytes: u32,
    },
    Body {
        left: u32,
    },
    Broken,
}

/// The packet type of PUBLISH (high nibble of the first byte).
const PUBLISH: u8 = 3;

impl FrameScan {
    /// Scans `data`; returns how many PUBLISH packets started in it.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut publishes = 0;
        while let Some((&b, rest)) = data.split_first() {
            match *self {
                FrameScan::Header => {
                    publishes += u64::from(b >> 4 == PUBLISH);
                    *self = FrameScan::Length { value: 0, bytes: 0 };
                    data = rest;
                }
                FrameScan::Length { value, bytes } => {
                    let value = value | (u32::from(b & 0x7f) << (7 * bytes));
                    *self = match (b & 0x80 != 0, bytes) {
                        (true, 3) => FrameScan::Broken,
                        (true, _) => FrameScan::Length { value, bytes: bytes + 1 },
                        (false, _) if value == 0 => FrameScan::Header,
                        (false, _) => FrameScan::Body { left: value },
                    };
                    data = rest;
                }
                FrameScan::Body { left } => {
                    let skip = data.len().min(left as usize);
                    let left = left - skip as u32;
                    *self = if left == 0 { FrameScan::Header } else { FrameScan::Body { left } };
                    data = &data[skip..];
                }
                FrameScan::Broken => break,
            }
        }
        publishes
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let this = &mut *self;
        let read = &buf.filled()[before..];
        let publishes = this.frames.feed(read);
        let (bytes, packets) = match this.count {
            CountTo::Upstream => (&this.stats.bytes_to_upstream, &this.stats.publishes_to_upstream),
            CountTo::Client => (&this.stats.bytes_to_client, &this.stats.publishes_to_client),
        };
        bytes.fetch_add(read.len() as u64, Ordering::Relaxed);
        if publishes > 0 {
            packets.fetch_add(publishes, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_level_shows_after_a_few_bytes() {
        // CONNECT, remaining length 16, "MQTT", level 5 / 4; MQTT 3.1's "MQIsdp", level 3.
        let v5 = [0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60];
        let v311 = [0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60];
        let v31 = [0x10, 18, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2];
        assert_eq!(connect_level(&v5), Some(Ok(5)));
        assert_eq!(connect_level(&v311), Some(Ok(4)));
        assert_eq!(connect_level(&v31), Some(Ok(3)));
        for cut in 0..9 {
            assert_eq!(connect_level(&v5[..cut]), None, "{cut} bytes are not enough");
        }
        assert_eq!(connect_level(&[0x30, 2, 0, 0]), Some(Err(())), "not a CONNECT");
        assert_eq!(connect_level(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]), Some(Err(())), "five length bytes");
    }

    #[test]
    fn the_frame_scan_counts_publishes_however_the_stream_is_cut() {
        // CONNECT (10 bytes of body), PUBLISH QoS 0 with a 200-byte body (two length bytes), PINGREQ
        // (no body), PUBLISH QoS 1 retained (7 bytes), SUBSCRIBE.
        let mut stream = vec![0x10, 10];
        stream.extend([0u8; 10]);
        stream.extend([0x30, 0xc8, 0x01]);
        stream.extend([7u8; 200]);
        stream.extend([0xc0, 0x00]);
        stream.extend([0x33, 7, 0, 1, b't', 0, 1, b'x', b'y']);
        stream.extend([0x82, 3, 0, 1, 0]);
        for cut in 1..stream.len() {
            let mut scan = FrameScan::default();
            let n: u64 = stream.chunks(cut).map(|c| scan.feed(c)).sum();
            assert_eq!((n, scan), (2, FrameScan::Header), "chunks of {cut}");
        }
        let mut broken = FrameScan::default();
        assert_eq!(broken.feed(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x30, 0x00]), 1);
        assert_eq!(broken, FrameScan::Broken, "a fifth length byte is not MQTT");
    }
    use crate::transport::envelope::{Envelope, Qos};
    use crate::transport::mqtt::client::tests::{opts, recv_soon, roundtrip};
    use crate::transport::mqtt::client::{BrokerUrl, LiveSession, MAX_PAYLOAD_SIZE};
    use crate::transport::mqtt::error::MqttError;

    async fn start_broker() -> EmbeddedBroker {
        tokio::task::spawn_blocking(|| EmbeddedBroker::start(EmbeddedConfig::default()))
            .await
            .unwrap()
            .unwrap()
    }

    /// Polls `check` every 10 ms for up to 5 s.
    async fn eventually(what: &str, check: impl Fn() -> bool) {
        for _ in 0..500 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not within 5 s: {what}");
    }

    fn assert_disconnected(result: Result<impl std::fmt::Debug, MqttError>, url: &BrokerUrl) {
        match result {
            Err(MqttError::Disconnected { broker, .. }) => assert_eq!(broker, url.to_string()),
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }

    #[test]
    fn rumqttd_config_has_a_v4_and_a_v5_listener_and_nothing_else() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 4242));
        let v5 = SocketAddr::from(([127, 0, 0, 1], 4243));
        let config = rumqttd_config(&EmbeddedConfig::default(), addr, v5);
        for (servers, listen) in [(config.v4.as_ref().unwrap(), addr), (config.v5.as_ref().unwrap(), v5)] {
            assert_eq!(servers.len(), 1);
            let server = servers.values().next().unwrap();
            assert_eq!(server.listen, listen);
            assert!(server.connections.dynamic_filters);
            assert_eq!(server.connections.connection_timeout_ms, 10_000);
        }
        assert!(config.ws.is_none() && config.cluster.is_none() && config.bridge.is_none());
        assert!(config.console.is_none() && config.prometheus.is_none() && config.metrics.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pubsub_through_the_front_proxy() {
        let broker = start_broker().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = BrokerUrl { host: "127.0.0.1".into(), port: listener.local_addr().unwrap().port() };
        let stats = Arc::new(ProxyStats::default());
        let proxy = tokio::spawn(serve_front(listener, broker.internal_addr(), stats.clone()));

        roundtrip(&url, "front", false).await;
        assert_eq!(stats.accepted(), 2);
        assert_eq!(stats.upstream_failures(), 0);
        assert!(stats.bytes_to_upstream() > 200 * 20, "{}", stats.bytes_to_upstream());
        assert!(stats.bytes_to_client() > 100 * 20, "{}", stats.bytes_to_client());
        eventually("both proxied connections closed", || stats.active() == 0).await;

        // Bad requests are refused locally and leave the session usable.
        let mut session = LiveSession::connect(opts(&url, "checks")).await.unwrap();
        assert_eq!(stats.active(), 1);
        let huge = Envelope::new("customTopic", vec![b'x'; MAX_PAYLOAD_SIZE + 1]);
        assert_eq!(
            session.publish(huge).await,
            Err(MqttError::PayloadTooLarge { size: MAX_PAYLOAD_SIZE + 1, limit: MAX_PAYLOAD_SIZE })
        );
        assert!(matches!(
            session.publish(Envelope::new("a/+", "x")).await,
            Err(MqttError::InvalidTopic { topic, .. }) if topic == "a/+"
        ));
        assert!(matches!(
            session.subscribe("a/#/b", Qos::AtMostOnce).await,
            Err(MqttError::InvalidFilter { filter, .. }) if filter == "a/#/b"
        ));
        session.subscribe("checks/#", Qos::AtMostOnce).await.unwrap();
        session.publish(Envelope::new("checks/1", "still alive")).await.unwrap();
        assert_eq!(recv_soon(&mut session).await.unwrap().payload, "still alive".as_bytes());
        // Dropping a session stops its task, which closes the connection.
        drop(session);
        eventually("the dropped session's connection closed", || stats.active() == 0).await;
        proxy.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopping_the_front_proxy_is_a_broker_outage_and_state_survives() {
        let broker = start_broker().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = listener.local_addr().unwrap();
        let url = BrokerUrl { host: "127.0.0.1".into(), port: front.port() };
        let stats = Arc::new(ProxyStats::default());
        let proxy = tokio::spawn(serve_front(listener, broker.internal_addr(), stats.clone()));

        let mut sub = LiveSession::connect(opts(&url, "outage-sub")).await.unwrap();
        sub.subscribe("chaoslab/status", Qos::AtLeastOnce).await.unwrap();
        let mut publisher = LiveSession::connect(opts(&url, "outage-pub")).await.unwrap();
        let retained =
            Envelope::new("chaoslab/status", "before-outage").with_qos(Qos::AtLeastOnce).with_retain(true);
        publisher.publish(retained).await.unwrap();
        // Received live, so the broker holds it before the outage.
        assert_eq!(recv_soon(&mut sub).await.unwrap().payload, "before-outage".as_bytes());

        proxy.abort();
        assert_disconnected(recv_soon(&mut sub).await, &url);
        let mut outcome = Ok(());
        for _ in 0..500 {
            outcome = publisher.publish(Envelope::new("chaoslab/status", "during")).await;
            if outcome.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_disconnected(outcome, &url);
        eventually("all proxied connections closed", || stats.active() == 0).await;
        match LiveSession::connect(opts(&url, "outage-late")).await {
            Err(MqttError::ConnectionRefused { broker, .. }) => assert_eq!(broker, url.to_string()),
            other => panic!("expected ConnectionRefused, got {other:?}"),
        }

        // Back up on the same port: the broker kept its retained message.
        let listener = TcpListener::bind(front).await.unwrap();
        let proxy = tokio::spawn(serve_front(listener, broker.internal_addr(), stats.clone()));
        let mut sub = LiveSession::connect(opts(&url, "outage-sub")).await.unwrap();
        sub.subscribe("chaoslab/#", Qos::AtLeastOnce).await.unwrap();
        let env = recv_soon(&mut sub).await.unwrap();
        assert_eq!((env.topic.as_str(), &env.payload[..]), ("chaoslab/status", "before-outage".as_bytes()));
        let mut publisher = LiveSession::connect(opts(&url, "outage-pub")).await.unwrap();
        for i in 0..10 {
            publisher
                .publish(Envelope::new("chaoslab/after", i.to_string()).with_qos(Qos::AtLeastOnce))
                .await
                .unwrap();
        }
        for i in 0..10 {
            assert_eq!(recv_soon(&mut sub).await.unwrap().payload, i.to_string().as_bytes());
        }
        assert_eq!(stats.accepted(), 4);
        assert_eq!(stats.active(), 2);
        proxy.abort();
    }
}
