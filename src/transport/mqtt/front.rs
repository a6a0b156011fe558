//! The front proxy of live mode's embedded MQTT_BROKER: the user-facing listener, in front of rumqttd.
//!
//! It reads each connection's CONNECT, answers a protocol version rumqttd does not serve with the CONNACK
//! that says so, writes the login only it knows into the CONNECT (rumqttd's internal listeners admit
//! nothing else, see [`super::embedded`]), and then splices bytes both ways, counting PUBLISH packets as
//! they pass. Every proxied connection belongs to the [`serve_front`] future: aborting it closes them all
//! at once and stops accepting, which is how "broker down" is done in live mode; serving again on the
//! same port brings the broker back with its state (retained messages, persistent sessions) intact.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::embedded::EmbeddedConfig;

/// Bound on connecting a proxied connection to the internal broker port.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The login the front proxy writes into every CONNECT it forwards, in place of the client's: 256
/// random bits, drawn at start-up, never written anywhere. rumqttd's internal listeners require it.
#[derive(Clone, PartialEq, Eq)]
pub struct FrontLogin {
    /// The user name rumqttd knows the proxy by.
    pub username: String,
    /// The random password.
    pub password: String,
}

impl FrontLogin {
    /// A new login with a password from the OS's random source (live mode only).
    pub fn generate() -> FrontLogin {
        use rand::RngCore as _;
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        FrontLogin { username: "chaoslab-front-proxy".into(), password: hex::encode(secret) }
    }
}

impl fmt::Debug for FrontLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontLogin").field("username", &self.username).field("password", &"…").finish()
    }
}

/// Where the front proxy sends a connection, by the MQTT version its CONNECT asks for, and what it
/// writes into that CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstreams {
    /// rumqttd's MQTT 3.1.1 listener.
    pub v4: SocketAddr,
    /// rumqttd's MQTT 5 listener, when it runs one (else v5 clients are refused with a CONNACK).
    pub v5: Option<SocketAddr>,
    /// The login the upstreams require, written into every CONNECT in place of the client's.
    pub login: FrontLogin,
    /// Largest CONNECT packet read (its remaining length, in bytes); a longer one closes the connection.
    pub max_connect: usize,
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
    upstreams: Upstreams,
    stats: Arc<ProxyStats>,
) -> io::Result<()> {
    let upstreams = Arc::new(upstreams);
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
                    connections.spawn(splice(client, peer, upstreams.clone(), stats.clone(), active));
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
/// `Some(Err(()))` when the bytes are not a CONNECT, `None` when more bytes are needed.
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

/// The length of the CONNECT packet `head` starts with (fixed header included), once its fixed header
/// is there: `Some(Ok(len))`, `Some(Err(why))` when `head` does not start a CONNECT, `None` when more
/// bytes are needed.
fn connect_frame_len(head: &[u8]) -> Option<Result<usize, &'static str>> {
    let (&first, rest) = head.split_first()?;
    if first != 0x10 {
        return Some(Err("the first packet is not a CONNECT"));
    }
    let mut remaining = 0usize;
    for (i, &b) in rest.iter().enumerate() {
        if i == 4 {
            return Some(Err("malformed remaining length"));
        }
        remaining |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(Ok(1 + i + 1 + remaining));
        }
    }
    if rest.len() >= 4 { Some(Err("malformed remaining length")) } else { None }
}

/// A connection's first packet, as the proxy reads it.
#[derive(Debug, PartialEq, Eq)]
enum Hello {
    /// A complete CONNECT packet, its protocol level, and the bytes that followed it in the same reads.
    Connect { level: u8, packet: Vec<u8>, rest: Vec<u8> },
    /// Nothing to forward: not a CONNECT, malformed, too long, too slow, or closed first.
    Refused(&'static str),
}

/// Reads a connection's CONNECT packet, at most `max` bytes of it after the fixed header, within the
/// broker's connect timeout.
async fn read_hello(client: &mut (impl tokio::io::AsyncRead + Unpin), max: usize) -> Hello {
    use tokio::io::AsyncReadExt as _;
    let read = async {
        let mut buf = Vec::with_capacity(64);
        let mut chunk = [0u8; 4096];
        loop {
            match connect_frame_len(&buf) {
                Some(Err(why)) => return Hello::Refused(why),
                Some(Ok(len)) if len > max.saturating_add(5) => {
                    return Hello::Refused("the CONNECT is longer than the broker accepts");
                }
                Some(Ok(len)) if buf.len() >= len => {
                    let rest = buf.split_off(len);
                    return match connect_level(&buf) {
                        Some(Ok(level)) => Hello::Connect { level, packet: buf, rest },
                        _ => Hello::Refused("malformed CONNECT"),
                    };
                }
                _ => {}
            }
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return Hello::Refused("the client closed before its CONNECT was complete"),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    match tokio::time::timeout(EmbeddedConfig::default().connect_timeout, read).await {
        Ok(hello) => hello,
        Err(_) => Hello::Refused("no complete CONNECT within the connect timeout"),
    }
}

/// The CONNECT `packet` (complete, of protocol `level` 4 or 5) with its login replaced by `login`,
/// re-encoded with everything else it carries (will, properties, keep-alive, session flags).
fn with_login(packet: &[u8], level: u8, login: &FrontLogin, max: usize) -> Result<BytesMut, String> {
    let mut bytes = BytesMut::from(packet);
    let mut out = BytesMut::with_capacity(packet.len() + login.username.len() + login.password.len() + 8);
    match level {
        4 => {
            use rumqttc::mqttbytes::v4::{Login, Packet};
            match Packet::read(&mut bytes, max).map_err(|e| format!("{e:?}"))? {
                Packet::Connect(mut connect) => {
                    connect.login = Some(Login::new(login.username.clone(), login.password.clone()));
                    connect.write(&mut out).map_err(|e| format!("{e:?}"))?;
                }
                other => return Err(format!("expected CONNECT, read {other:?}")),
            }
        }
        5 => {
            use rumqttc::v5::mqttbytes::v5::{Login, Packet};
            let max = u32::try_from(max).unwrap_or(u32::MAX);
            match Packet::read(&mut bytes, Some(max)).map_err(|e| format!("{e:?}"))? {
                Packet::Connect(connect, will, _) => {
                    let login = Some(Login::new(login.username.clone(), login.password.clone()));
                    connect.write(&will, &login, &mut out).map_err(|e| format!("{e:?}"))?;
                }
                other => return Err(format!("expected CONNECT, read {other:?}")),
            }
        }
        other => return Err(format!("protocol level {other} is not served")),
    }
    Ok(out)
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

/// Reads the client's CONNECT, connects to the upstream of its MQTT version (3.1.1 or 5), forwards the
/// CONNECT with the upstreams' login, and copies bytes both ways until either side closes. A CONNECT
/// for a version no upstream serves gets its refusal from here; anything that is not a CONNECT closes
/// the connection, as the broker itself would.
async fn splice(
    mut client: TcpStream,
    peer: SocketAddr,
    upstreams: Arc<Upstreams>,
    stats: Arc<ProxyStats>,
    _active: ActiveGuard,
) {
    let (level, packet, rest) = match read_hello(&mut client, upstreams.max_connect).await {
        Hello::Connect { level, packet, rest } => (level, packet, rest),
        Hello::Refused(why) => {
            debug!(%peer, why, "MQTT front proxy: connection closed before the broker");
            return;
        }
    };
    stats.bytes_to_upstream.fetch_add((packet.len() + rest.len()) as u64, Ordering::Relaxed);
    let upstream = match level {
        5 => upstreams.v5,
        4 => Some(upstreams.v4),
        _ => None,
    };
    let Some(upstream) = upstream else {
        debug!(%peer, level, "MQTT protocol level not served; CONNACK refuses it");
        if let Err(e) = refuse_version(&mut client, level).await {
            debug!(%peer, error = %e, "cannot send the refusing CONNACK");
        }
        return;
    };
    let connect = match with_login(&packet, level, &upstreams.login, upstreams.max_connect) {
        Ok(connect) => connect,
        Err(why) => {
            debug!(%peer, level, why, "MQTT front proxy: unreadable CONNECT; connection closed");
            return;
        }
    };
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
    // What followed the CONNECT in its reads goes next, counted as if it had been spliced.
    let mut frames = FrameScan::default();
    stats.publishes_to_upstream.fetch_add(frames.feed(&rest), Ordering::Relaxed);
    let mut server = server;
    {
        use tokio::io::AsyncWriteExt as _;
        let sent = async {
            server.write_all(&connect).await?;
            server.write_all(&rest).await
        };
        if let Err(e) = sent.await {
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
pub(crate) mod tests {
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
    use crate::transport::mqtt::embedded::{EmbeddedBroker, SkippedAheadLayer, skipped_ahead};
    use crate::transport::mqtt::error::MqttError;

    async fn start_broker() -> EmbeddedBroker {
        tokio::task::spawn_blocking(|| EmbeddedBroker::start(EmbeddedConfig::default()))
            .await
            .unwrap()
            .unwrap()
    }

    /// A front proxy on a free port for `broker`: its URL, its counters, and its task (abort = outage).
    pub(crate) async fn spawn_front(
        broker: &EmbeddedBroker,
    ) -> (BrokerUrl, Arc<ProxyStats>, tokio::task::JoinHandle<io::Result<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = BrokerUrl { host: "127.0.0.1".into(), port: listener.local_addr().unwrap().port() };
        let stats = Arc::new(ProxyStats::default());
        let proxy = tokio::spawn(serve_front(listener, broker.upstreams(), stats.clone()));
        (url, stats, proxy)
    }

    /// A CONNECT as a client sends it: MQTT 3.1.1 with a will and a login, or MQTT 5 with properties.
    fn client_connect(level: u8) -> Vec<u8> {
        let mut out = BytesMut::new();
        if level == 5 {
            use rumqttc::v5::mqttbytes::QoS;
            use rumqttc::v5::mqttbytes::v5::{Connect, ConnectProperties, LastWill, Login};
            let mut props = ConnectProperties::new();
            props.session_expiry_interval = Some(120);
            props.user_properties = vec![("app".into(), "chaoslab".into())];
            let connect = Connect {
                keep_alive: 30,
                client_id: "v5-client".into(),
                clean_start: false,
                properties: Some(props),
            };
            let will = Some(LastWill::new("wills/v5", "gone", QoS::AtLeastOnce, true, None));
            connect.write(&will, &Some(Login::new("alice", "secret")), &mut out).unwrap();
        } else {
            use rumqttc::mqttbytes::v4::{Connect, LastWill};
            let mut connect = Connect::new("v4-client");
            connect.keep_alive = 30;
            connect.last_will = Some(LastWill::new("wills/v4", "gone", rumqttc::QoS::AtLeastOnce, false));
            connect.set_login("alice", "secret");
            connect.write(&mut out).unwrap();
        }
        out.to_vec()
    }

    #[test]
    fn the_login_is_replaced_and_the_rest_of_the_connect_kept() {
        let login = FrontLogin::generate();
        assert_eq!(login.password.len(), 64);
        assert_ne!(login, FrontLogin::generate(), "each start draws a new password");
        assert!(!format!("{login:?}").contains(&login.password), "Debug must not show the password");

        let v4 = client_connect(4);
        let mut rewritten = with_login(&v4, 4, &login, 1 << 20).unwrap();
        let (mut original, mut rewritten) = {
            use rumqttc::mqttbytes::v4::Packet;
            let Packet::Connect(original) = Packet::read(&mut BytesMut::from(&v4[..]), 1 << 20).unwrap()
            else {
                panic!("not a CONNECT")
            };
            let Packet::Connect(rewritten) = Packet::read(&mut rewritten, 1 << 20).unwrap() else {
                panic!("not a CONNECT")
            };
            (original, rewritten)
        };
        assert_eq!(original.login.take().unwrap().username, "alice");
        let got = rewritten.login.take().unwrap();
        assert_eq!((got.username, got.password), (login.username.clone(), login.password.clone()));
        assert_eq!(original, rewritten, "client id, keep-alive, will and session flag are kept");

        let v5 = client_connect(5);
        let mut rewritten = with_login(&v5, 5, &login, 1 << 20).unwrap();
        use rumqttc::v5::mqttbytes::v5::Packet;
        let Packet::Connect(c0, w0, l0) = Packet::read(&mut BytesMut::from(&v5[..]), None).unwrap() else {
            panic!("not a CONNECT")
        };
        let Packet::Connect(c1, w1, l1) = Packet::read(&mut rewritten, None).unwrap() else {
            panic!("not a CONNECT")
        };
        assert_eq!((c0, w0), (c1, w1), "properties, will and clean start are kept");
        assert_eq!(l0.unwrap().username, "alice");
        assert_eq!(l1.unwrap().password, login.password);

        assert!(with_login(&v4[..v4.len() - 3], 4, &login, 1 << 20).is_err(), "a cut CONNECT");
        assert!(with_login(&v4, 4, &login, 8).is_err(), "longer than the limit");
    }

    #[tokio::test]
    async fn the_hello_is_one_whole_connect_and_what_follows_it() {
        let connect = client_connect(4);
        let mut stream = connect.clone();
        stream.extend([0xc0, 0x00]); // a PINGREQ right behind it
        match read_hello(&mut &stream[..], 1 << 20).await {
            Hello::Connect { level, packet, rest } => {
                assert_eq!((level, packet, rest), (4, connect.clone(), vec![0xc0, 0x00]));
            }
            other => panic!("{other:?}"),
        }
        // Cut anywhere, it is read to its end.
        let (mut client, mut peer) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            for byte in client_connect(5) {
                peer.write_all(&[byte]).await.unwrap();
            }
            peer
        });
        assert!(matches!(read_hello(&mut client, 1 << 20).await, Hello::Connect { level: 5, .. }));
        drop(writer.await.unwrap());

        let refused =
            |bytes: &'static [u8], max: usize| async move { read_hello(&mut &bytes[..], max).await };
        assert_eq!(
            refused(&[0x30, 0x02, 0, 0], 1024).await,
            Hello::Refused("the first packet is not a CONNECT")
        );
        assert_eq!(
            refused(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x01], 1024).await,
            Hello::Refused("malformed remaining length")
        );
        assert_eq!(
            refused(&[0x10, 0xff, 0xff, 0x7f], 1024).await,
            Hello::Refused("the CONNECT is longer than the broker accepts")
        );
        assert_eq!(
            refused(&[0x10, 12, 0, 4, b'M'], 1024).await,
            Hello::Refused("the client closed before its CONNECT was complete")
        );
    }

    /// rumqttd's own port admits only the proxy: a client that finds it can neither connect nor publish
    /// around a `mqtt-broker-down`, while the same client through the front is served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_internal_ports_admit_only_the_proxy() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let broker = start_broker().await;
        let upstreams = broker.upstreams();
        let (url, stats, proxy) = spawn_front(&broker).await;

        for (addr, level) in [(upstreams.v4, 4), (upstreams.v5.unwrap(), 5)] {
            // The client's own login, or none, is refused: rumqttd closes without a CONNACK.
            let mut direct = TcpStream::connect(addr).await.unwrap();
            direct.write_all(&client_connect(level)).await.unwrap();
            let mut answer = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(5), direct.read_to_end(&mut answer)).await;
            assert!(read.is_ok(), "rumqttd must close the connection");
            assert!(
                answer.first() != Some(&0x20) || answer.get(3).is_some_and(|code| *code != 0),
                "level {level}: a direct CONNECT was accepted: {answer:?}"
            );
            // Through the front, the same CONNECT is accepted.
            let mut front = TcpStream::connect((url.host.as_str(), url.port)).await.unwrap();
            front.write_all(&client_connect(level)).await.unwrap();
            let mut connack = [0u8; 4];
            front.read_exact(&mut connack).await.unwrap();
            assert_eq!((connack[0], connack[3]), (0x20, 0x00), "level {level}: {connack:?}");
        }
        let direct = BrokerUrl { host: "127.0.0.1".into(), port: upstreams.v4.port() };
        assert!(LiveSession::connect(opts(&direct, "around-the-front")).await.is_err());

        // During an outage (the proxy stopped) the internal port still refuses: the outage is total.
        proxy.abort();
        assert!(LiveSession::connect(opts(&direct, "during-outage")).await.is_err());
        assert_eq!(stats.upstream_failures(), 0);
    }

    /// rumqttd skips a subscriber that falls more than its commit log behind; the skipped messages are
    /// counted, so what the subscriber received plus what was skipped is exactly what was sent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_skipped_for_a_stalled_subscriber_are_counted() {
        use std::io::{Read as _, Write as _};
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        let _ = tracing_subscriber::registry()
            .with(SkippedAheadLayer.with_filter(SkippedAheadLayer::filter()))
            .try_init();
        let broker = start_broker().await;
        let (url, _stats, _proxy) = spawn_front(&broker).await;

        // A subscriber that subscribes and then stops reading, on a plain socket.
        let mut stalled = std::net::TcpStream::connect((url.host.as_str(), url.port)).unwrap();
        let mut hello = BytesMut::new();
        let mut connect = rumqttc::mqttbytes::v4::Connect::new("stalled");
        connect.keep_alive = 600;
        connect.write(&mut hello).unwrap();
        rumqttc::mqttbytes::v4::Subscribe::new("flood/#", rumqttc::QoS::AtMostOnce)
            .write(&mut hello)
            .unwrap();
        stalled.write_all(&hello).unwrap();
        let mut acks = [0u8; 4 + 5];
        stalled.read_exact(&mut acks).unwrap();
        assert_eq!((acks[0], acks[4]), (0x20, 0x90), "CONNACK and SUBACK: {acks:?}");

        let before = skipped_ahead();
        let sent = 48_000u64;
        let mut publisher = LiveSession::connect(opts(&url, "flooder")).await.unwrap();
        let payload = vec![b'x'; 1024];
        for i in 0..sent {
            publisher.publish(Envelope::new(format!("flood/{}", i % 8), payload.clone())).await.unwrap();
        }
        // A marker through the publisher's own subscription shows the broker has taken every message in.
        publisher.subscribe("flood-done", Qos::AtLeastOnce).await.unwrap();
        publisher.publish(Envelope::new("flood-done", "x").with_qos(Qos::AtLeastOnce)).await.unwrap();
        recv_soon(&mut publisher).await.unwrap();

        // Now read everything the stalled subscriber was given, until two quiet seconds.
        let received = tokio::task::spawn_blocking(move || {
            stalled.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut scan = FrameScan::default();
            let mut chunk = vec![0u8; 1 << 16];
            let mut publishes = 0u64;
            while let Ok(n @ 1..) = stalled.read(&mut chunk) {
                publishes += scan.feed(&chunk[..n]);
            }
            publishes
        })
        .await
        .unwrap();
        let skipped = skipped_ahead() - before;
        assert!(skipped > 0, "the stalled subscriber got {received} of {sent}: nothing was skipped");
        assert_eq!(received + skipped, sent, "received {received}, skipped {skipped}");
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pubsub_through_the_front_proxy() {
        let broker = start_broker().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = BrokerUrl { host: "127.0.0.1".into(), port: listener.local_addr().unwrap().port() };
        let stats = Arc::new(ProxyStats::default());
        let proxy = tokio::spawn(serve_front(listener, broker.upstreams(), stats.clone()));

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
        let proxy = tokio::spawn(serve_front(listener, broker.upstreams(), stats.clone()));

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
        let proxy = tokio::spawn(serve_front(listener, broker.upstreams(), stats.clone()));
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
