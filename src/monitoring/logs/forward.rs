//! A Fluentd Forward protocol v1 server (TCP), for live mode: the port real Fluentd clients (Docker's
//! fluentd log driver, fluent-logger libraries, Fluent Bit, another Fluentd) send logs to.
//!
//! A connection carries a stream of msgpack values, each one message in one of the protocol's modes:
//! Message `[tag, time, record, option?]`, Forward `[tag, [[time, record], …], option?]`, PackedForward
//! `[tag, bin, option?]` (the entries concatenated as msgpack) and CompressedPackedForward (the same,
//! gzip-compressed, with `option.compressed = "gzip"`). Times are integers, floats or the `EventTime` ext
//! type 0; a missing or zero time becomes the wall-clock time of arrival (this server is live-only, so
//! reading the clock is allowed here and nowhere else in log routing). A `chunk` option is answered with
//! `{"ack": chunk}` once the events are queued; a msgpack `nil` (heartbeat) is ignored.
//!
//! Defence: a message is at most [`MAX_MESSAGE_BYTES`] (also after decompression, up to
//! [`MAX_DECOMPRESSED_BYTES`]) and [`MAX_ENTRIES`] entries, a tag at most [`MAX_TAG_LEN`] bytes, nesting at
//! most [`MAX_NESTING`] levels.
//! Bytes that are not msgpack, or a message over the size limit, close the connection with a warning and
//! a counter; a well-formed message with bad content (wrong shape, long tag, non-map record) is skipped
//! and counted, and the connection goes on. Nothing a client sends can panic the server.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rmpv::Value as Msgpack;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::monitoring::logs::config::ForwardSecurity;
use crate::monitoring::logs::event::{EventTime, LogEvent};

/// Longest accepted tag, in bytes.
pub const MAX_TAG_LEN: usize = 1024;
/// Largest accepted message (one top-level msgpack value), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// Largest accepted decompressed CompressedPackedForward payload, in bytes.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;
/// Deepest accepted nesting of arrays and maps.
pub const MAX_NESTING: usize = 64;
/// Most entries one message may carry: each becomes an event of a few hundred bytes, so a small
/// gzip payload of millions of tiny entries would otherwise take gigabytes (Fluentd's own forward
/// output sends chunks of at most a few thousand records).
pub const MAX_ENTRIES: usize = 100_000;

/// Why a message (or a connection) was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForwardError {
    /// The bytes are not msgpack.
    #[error("invalid msgpack at byte {offset} of the message: {reason}")]
    Msgpack {
        /// Offset from the start of the message.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A message is larger than [`MAX_MESSAGE_BYTES`] (or its decompressed payload larger than
    /// [`MAX_DECOMPRESSED_BYTES`]).
    #[error("message of more than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// Values nested deeper than [`MAX_NESTING`].
    #[error("msgpack nested deeper than {MAX_NESTING} levels")]
    TooDeep,
    /// Valid msgpack that is not a Forward-protocol message.
    #[error("invalid forward message: {0}")]
    Invalid(String),
    /// The tag is longer than [`MAX_TAG_LEN`].
    #[error("tag of {len} bytes exceeds the limit of {MAX_TAG_LEN}")]
    TagTooLong {
        /// The tag's length.
        len: usize,
    },
    /// A CompressedPackedForward payload that does not decompress.
    #[error("gzip payload: {0}")]
    Gzip(String),
    /// A message with more than [`MAX_ENTRIES`] entries.
    #[error("message of more than {MAX_ENTRIES} entries")]
    TooManyEntries,
}

/// Counters of one Forward server.
#[derive(Debug, Default)]
pub struct ForwardStats {
    connections: AtomicU64,
    messages: AtomicU64,
    events: AtomicU64,
    acks: AtomicU64,
    heartbeats: AtomicU64,
    decode_errors: AtomicU64,
    invalid_messages: AtomicU64,
    invalid_entries: AtomicU64,
    oversized: AtomicU64,
    refused: AtomicU64,
}

/// A copy of [`ForwardStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardStatsSnapshot {
    /// Accepted connections.
    pub connections: u64,
    /// Messages decoded (heartbeats excluded).
    pub messages: u64,
    /// Events queued.
    pub events: u64,
    /// Acknowledgements sent.
    pub acks: u64,
    /// Heartbeats (msgpack `nil`) received.
    pub heartbeats: u64,
    /// Connections closed because the bytes were not msgpack (or nested too deeply).
    pub decode_errors: u64,
    /// Messages skipped because of their shape or content.
    pub invalid_messages: u64,
    /// Entries of otherwise valid messages skipped (bad time or a record that is not a map).
    pub invalid_entries: u64,
    /// Messages rejected for size: over the message limit (connection closed) or a tag over the limit.
    pub oversized: u64,
    /// Connections closed because they failed the `<security>` handshake.
    pub refused: u64,
}

impl ForwardStats {
    /// The counters so far.
    pub fn snapshot(&self) -> ForwardStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ForwardStatsSnapshot {
            connections: get(&self.connections),
            messages: get(&self.messages),
            events: get(&self.events),
            acks: get(&self.acks),
            heartbeats: get(&self.heartbeats),
            decode_errors: get(&self.decode_errors),
            invalid_messages: get(&self.invalid_messages),
            invalid_entries: get(&self.invalid_entries),
            oversized: get(&self.oversized),
            refused: get(&self.refused),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The protocol mode a message used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMode {
    /// `[tag, time, record, option?]`.
    Message,
    /// `[tag, [[time, record], …], option?]`.
    Forward,
    /// `[tag, bin, option?]`.
    PackedForward,
    /// `[tag, bin, {"compressed": "gzip", …}]`.
    CompressedPackedForward,
    /// A msgpack `nil`.
    Heartbeat,
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardMessage {
    /// Its mode.
    pub mode: ForwardMode,
    /// Its valid events, in order.
    pub events: Vec<LogEvent>,
    /// Entries that were skipped (bad time, record not a map).
    pub skipped_entries: usize,
    /// The `chunk` option, to be acknowledged.
    pub chunk: Option<String>,
}

/// Splits a byte stream into complete top-level msgpack values, without re-reading what it has already
/// checked: the scan state survives between reads, so a message arriving in many pieces costs linear
/// time.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned for the current frame.
    pos: usize,
    /// Items still expected by each open array or map.
    open: Vec<u64>,
    /// Whether the current frame's first header has been read.
    started: bool,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether part of a message is waiting for more bytes.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next complete message, `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Msgpack>, ForwardError> {
        loop {
            if self.started && self.open.is_empty() {
                let len = self.pos;
                let mut frame: &[u8] = &self.buf[..len];
                let value =
                    rmpv::decode::read_value_with_max_depth(&mut frame, 2 * MAX_NESTING + 2).map_err(
                        |e| ForwardError::Msgpack { offset: len - frame.len(), reason: e.to_string() },
                    )?;
                self.buf.drain(..len);
                self.pos = 0;
                self.started = false;
                return Ok(Some(value));
            }
            let Some((size, children)) = header(&self.buf[self.pos..])
                .map_err(|reason| ForwardError::Msgpack { offset: self.pos, reason })?
            else {
                if self.buf.len() > MAX_MESSAGE_BYTES {
                    return Err(ForwardError::TooLarge { limit: MAX_MESSAGE_BYTES });
                }
                return Ok(None);
            };
            let end = self.pos as u64 + size;
            if end > MAX_MESSAGE_BYTES as u64 {
                return Err(ForwardError::TooLarge { limit: MAX_MESSAGE_BYTES });
            }
            if end > self.buf.len() as u64 {
                return Ok(None);
            }
            self.pos = end as usize;
            self.started = true;
            if let Some(remaining) = self.open.last_mut() {
                *remaining -= 1;
            }
            if children > 0 {
                if self.open.len() >= MAX_NESTING {
                    return Err(ForwardError::TooDeep);
                }
                self.open.push(children);
            }
            while self.open.last() == Some(&0) {
                self.open.pop();
            }
        }
    }
}

/// Reads the header of the msgpack value at the start of `bytes`: how many bytes the value occupies
/// itself (header and payload, children excluded) and how many child values follow. `None` if the header
/// is not complete yet.
fn header(bytes: &[u8]) -> Result<Option<(u64, u64)>, String> {
    let Some(&marker) = bytes.first() else { return Ok(None) };
    let be = |n: usize| -> Option<u64> {
        let slice = bytes.get(1..1 + n)?;
        Some(slice.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    };
    let sized = |n: usize, extra: u64| be(n).map(|len| (1 + n as u64 + extra + len, 0));
    let result = match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Some((1, 0)),
        0x80..=0x8f => Some((1, 2 * u64::from(marker & 0x0f))),
        0x90..=0x9f => Some((1, u64::from(marker & 0x0f))),
        0xa0..=0xbf => Some((1 + u64::from(marker & 0x1f), 0)),
        0xc1 => return Err("reserved marker 0xc1".to_string()),
        0xc4 | 0xd9 => sized(1, 0),
        0xc5 | 0xda => sized(2, 0),
        0xc6 | 0xdb => sized(4, 0),
        0xc7 => sized(1, 1),
        0xc8 => sized(2, 1),
        0xc9 => sized(4, 1),
        0xca => Some((5, 0)),
        0xcb => Some((9, 0)),
        0xcc | 0xd0 => Some((2, 0)),
        0xcd | 0xd1 => Some((3, 0)),
        0xce | 0xd2 => Some((5, 0)),
        0xcf | 0xd3 => Some((9, 0)),
        0xd4 => Some((3, 0)),
        0xd5 => Some((4, 0)),
        0xd6 => Some((6, 0)),
        0xd7 => Some((10, 0)),
        0xd8 => Some((18, 0)),
        0xdc => be(2).map(|n| (3, n)),
        0xdd => be(4).map(|n| (5, n)),
        0xde => be(2).map(|n| (3, 2 * n)),
        0xdf => be(4).map(|n| (5, 2 * n)),
    };
    Ok(result)
}

/// Interprets one msgpack value as a Forward-protocol message. `now` supplies the time for entries
/// without one.
pub fn decode_message(value: Msgpack, now: impl Fn() -> EventTime) -> Result<ForwardMessage, ForwardError> {
    let items = match value {
        Msgpack::Nil => {
            return Ok(ForwardMessage {
                mode: ForwardMode::Heartbeat,
                events: Vec::new(),
                skipped_entries: 0,
                chunk: None,
            });
        }
        Msgpack::Array(items) => items,
        other => return Err(ForwardError::Invalid(format!("expected an array, got {}", kind(&other)))),
    };
    if items.len() < 2 {
        return Err(ForwardError::Invalid(format!("expected at least 2 elements, got {}", items.len())));
    }
    let mut items = items.into_iter();
    let tag = match items.next() {
        Some(Msgpack::String(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(Msgpack::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
        Some(other) => {
            return Err(ForwardError::Invalid(format!("the tag is {}, not a string", kind(&other))));
        }
        None => return Err(ForwardError::Invalid("missing tag".to_string())),
    };
    if tag.len() > MAX_TAG_LEN {
        return Err(ForwardError::TagTooLong { len: tag.len() });
    }
    if tag.is_empty() {
        return Err(ForwardError::Invalid("empty tag".to_string()));
    }
    let second = items.next().unwrap_or(Msgpack::Nil);
    let mut message =
        ForwardMessage { mode: ForwardMode::Message, events: Vec::new(), skipped_entries: 0, chunk: None };
    let push =
        |message: &mut ForwardMessage, time: &Msgpack, record: Msgpack| match (event_time(time), record) {
            (Ok(time), Msgpack::Map(record)) => {
                let time = time.unwrap_or_else(&now);
                message.events.push(LogEvent::new(tag.clone(), time, record_to_json(record)));
            }
            _ => message.skipped_entries += 1,
        };
    match second {
        Msgpack::Array(entries) => {
            message.mode = ForwardMode::Forward;
            if entries.len() > MAX_ENTRIES {
                return Err(ForwardError::TooManyEntries);
            }
            let option = option_of(items.next())?;
            message.chunk = option.chunk;
            for entry in entries {
                match entry {
                    Msgpack::Array(pair) if pair.len() >= 2 => {
                        let mut pair = pair.into_iter();
                        let time = pair.next().unwrap_or(Msgpack::Nil);
                        let record = pair.next().unwrap_or(Msgpack::Nil);
                        push(&mut message, &time, record);
                    }
                    _ => message.skipped_entries += 1,
                }
            }
        }
        Msgpack::String(_) | Msgpack::Binary(_) => {
            let bytes = match second {
                Msgpack::String(s) => s.into_bytes(),
                Msgpack::Binary(b) => b,
                _ => Vec::new(),
            };
            let option = option_of(items.next())?;
            message.chunk = option.chunk;
            let entries = match option.compressed.as_deref() {
                None | Some("text") => {
                    message.mode = ForwardMode::PackedForward;
                    bytes
                }
                Some("gzip") => {
                    message.mode = ForwardMode::CompressedPackedForward;
                    gunzip(&bytes)?
                }
                Some(other) => return Err(ForwardError::Invalid(format!("unknown compression {other:?}"))),
            };
            let mut rest: &[u8] = &entries;
            while !rest.is_empty() {
                if message.events.len() + message.skipped_entries >= MAX_ENTRIES {
                    return Err(ForwardError::TooManyEntries);
                }
                let offset = entries.len() - rest.len();
                let entry =
                    rmpv::decode::read_value_with_max_depth(&mut rest, 2 * MAX_NESTING + 2).map_err(|e| {
                        ForwardError::Msgpack { offset, reason: format!("in packed entries: {e}") }
                    })?;
                match entry {
                    Msgpack::Array(pair) if pair.len() >= 2 => {
                        let mut pair = pair.into_iter();
                        let time = pair.next().unwrap_or(Msgpack::Nil);
                        let record = pair.next().unwrap_or(Msgpack::Nil);
                        push(&mut message, &time, record);
                    }
                    _ => message.skipped_entries += 1,
                }
            }
            if let Some(size) = option.size
                && size != (message.events.len() + message.skipped_entries) as u64
            {
                tracing::debug!(
                    tag,
                    size,
                    entries = message.events.len(),
                    "forward: option size differs from the entries"
                );
            }
        }
        time => {
            message.mode = ForwardMode::Message;
            let record = items.next().unwrap_or(Msgpack::Nil);
            let option = option_of(items.next())?;
            message.chunk = option.chunk;
            push(&mut message, &time, record);
        }
    }
    Ok(message)
}

#[derive(Debug, Default)]
struct Options {
    chunk: Option<String>,
    compressed: Option<String>,
    size: Option<u64>,
}

fn option_of(value: Option<Msgpack>) -> Result<Options, ForwardError> {
    let mut options = Options::default();
    match value {
        None | Some(Msgpack::Nil) => {}
        Some(Msgpack::Map(entries)) => {
            for (key, value) in entries {
                let text = |v: &Msgpack| match v {
                    Msgpack::String(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
                    Msgpack::Binary(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    _ => None,
                };
                match text(&key).as_deref() {
                    Some("chunk") => options.chunk = text(&value),
                    Some("compressed") => options.compressed = text(&value),
                    Some("size") => options.size = value.as_u64(),
                    _ => {}
                }
            }
        }
        Some(other) => {
            return Err(ForwardError::Invalid(format!("the option is {}, not a map", kind(&other))));
        }
    }
    Ok(options)
}

/// `Ok(None)` for a missing or zero time (to be replaced by the arrival time).
fn event_time(value: &Msgpack) -> Result<Option<EventTime>, ()> {
    let time = match value {
        Msgpack::Nil => return Ok(None),
        Msgpack::Integer(n) => match n.as_i64() {
            Some(secs) => EventTime::new(secs, 0),
            None => return Err(()),
        },
        Msgpack::F32(f) => EventTime::from_float_secs(f64::from(*f)).ok_or(())?,
        Msgpack::F64(f) => EventTime::from_float_secs(*f).ok_or(())?,
        Msgpack::Ext(0, bytes) if bytes.len() == 8 => {
            let secs = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let nanos = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            if nanos >= 1_000_000_000 {
                return Err(());
            }
            EventTime::new(i64::from(secs), nanos)
        }
        _ => return Err(()),
    };
    Ok(if time == EventTime::default() { None } else { Some(time) })
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, ForwardError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_DECOMPRESSED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ForwardError::Gzip(e.to_string()))?;
    if out.len() > MAX_DECOMPRESSED_BYTES {
        return Err(ForwardError::TooLarge { limit: MAX_DECOMPRESSED_BYTES });
    }
    Ok(out)
}

fn kind(value: &Msgpack) -> &'static str {
    match value {
        Msgpack::Nil => "nil",
        Msgpack::Boolean(_) => "a boolean",
        Msgpack::Integer(_) => "an integer",
        Msgpack::F32(_) | Msgpack::F64(_) => "a float",
        Msgpack::String(_) => "a string",
        Msgpack::Binary(_) => "binary",
        Msgpack::Array(_) => "an array",
        Msgpack::Map(_) => "a map",
        Msgpack::Ext(..) => "an extension value",
    }
}

fn record_to_json(entries: Vec<(Msgpack, Msgpack)>) -> Map<String, Value> {
    let mut map = Map::new();
    for (key, value) in entries {
        let key = match key {
            Msgpack::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            Msgpack::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            other => msgpack_to_json(other).to_string(),
        };
        map.insert(key, msgpack_to_json(value));
    }
    map
}

/// Converts a msgpack value to JSON: binary becomes a (lossy UTF-8) string, as Fluentd treats it; an
/// `EventTime` becomes fractional seconds; other extension values and non-finite floats become `null`.
fn msgpack_to_json(value: Msgpack) -> Value {
    match value {
        Msgpack::Nil => Value::Null,
        Msgpack::Boolean(b) => Value::Bool(b),
        Msgpack::Integer(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::Null,
        },
        Msgpack::F32(f) => {
            serde_json::Number::from_f64(f64::from(f)).map(Value::Number).unwrap_or(Value::Null)
        }
        Msgpack::F64(f) => serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null),
        Msgpack::String(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Msgpack::Binary(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        Msgpack::Array(items) => Value::Array(items.into_iter().map(msgpack_to_json).collect()),
        Msgpack::Map(entries) => Value::Object(record_to_json(entries)),
        ext @ Msgpack::Ext(0, _) => match event_time(&ext) {
            Ok(Some(t)) => {
                serde_json::Number::from_f64(t.as_float_secs()).map(Value::Number).unwrap_or(Value::Null)
            }
            _ => Value::Null,
        },
        Msgpack::Ext(..) => Value::Null,
    }
}

/// The `{"ack": chunk}` reply.
fn ack_bytes(chunk: &str) -> Vec<u8> {
    let reply = Msgpack::Map(vec![(Msgpack::from("ack"), Msgpack::from(chunk))]);
    let mut out = Vec::new();
    // Writing msgpack into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &reply);
    out
}

/// Resolves once `shutdown` holds `true` or its sender is gone.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Serves the Forward protocol on `listener` until `shutdown` becomes `true` (or its sender is dropped)
/// or the receiver of `tx` is dropped. Each connection runs in its own task; events are queued on `tx`
/// (waiting when it is full) before a chunk is acknowledged.
pub async fn serve(
    listener: TcpListener,
    tx: mpsc::Sender<LogEvent>,
    stats: Arc<ForwardStats>,
    mut shutdown: watch::Receiver<bool>,
    security: Option<Arc<ForwardSecurity>>,
) {
    let mut connections = JoinSet::new();
    let local = listener.local_addr().ok();
    tracing::info!(address = ?local, "forward: listening");
    loop {
        tokio::select! {
            biased;
            () = shutdown_requested(&mut shutdown) => break,
            () = tx.closed() => {
                tracing::info!("forward: event receiver closed; stopping");
                break;
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    ForwardStats::add(&stats.connections, 1);
                    tracing::debug!(%peer, "forward: connection accepted");
                    connections.spawn(connection(stream, peer.to_string(), tx.clone(), stats.clone(), shutdown.clone(), security.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "forward: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
    connections.shutdown().await;
    tracing::info!(address = ?local, "forward: stopped");
}

async fn connection(
    mut stream: TcpStream,
    peer: String,
    tx: mpsc::Sender<LogEvent>,
    stats: Arc<ForwardStats>,
    mut shutdown: watch::Receiver<bool>,
    security: Option<Arc<ForwardSecurity>>,
) {
    let mut decoder = FrameDecoder::new();
    if let Some(security) = &security {
        let outcome = tokio::select! {
            biased;
            () = shutdown_requested(&mut shutdown) => return,
            outcome = super::forward_auth::handshake(&mut stream, &mut decoder, security) => outcome,
        };
        if let Err(reason) = outcome {
            ForwardStats::add(&stats.refused, 1);
            tracing::warn!(%peer, %reason, "forward: handshake failed; connection closed");
            return;
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    match error {
                        ForwardError::TooLarge { .. } => ForwardStats::add(&stats.oversized, 1),
                        _ => ForwardStats::add(&stats.decode_errors, 1),
                    }
                    tracing::warn!(%peer, %error, "forward: closing connection");
                    return;
                }
            };
            let message = match decode_message(frame, EventTime::now_wall) {
                Ok(message) => message,
                Err(error) => {
                    match error {
                        ForwardError::TagTooLong { .. } | ForwardError::TooLarge { .. } => {
                            ForwardStats::add(&stats.oversized, 1)
                        }
                        _ => ForwardStats::add(&stats.invalid_messages, 1),
                    }
                    tracing::warn!(%peer, %error, "forward: message skipped");
                    continue;
                }
            };
            if message.mode == ForwardMode::Heartbeat {
                ForwardStats::add(&stats.heartbeats, 1);
                continue;
            }
            ForwardStats::add(&stats.messages, 1);
            if message.skipped_entries > 0 {
                ForwardStats::add(&stats.invalid_entries, message.skipped_entries as u64);
                tracing::warn!(%peer, skipped = message.skipped_entries, "forward: invalid entries skipped");
            }
            for event in message.events {
                if tx.send(event).await.is_err() {
                    tracing::debug!(%peer, "forward: event receiver closed");
                    return;
                }
                ForwardStats::add(&stats.events, 1);
            }
            if let Some(chunk) = message.chunk {
                if let Err(error) = stream.write_all(&ack_bytes(&chunk)).await {
                    tracing::debug!(%peer, %error, "forward: could not send ack");
                    return;
                }
                ForwardStats::add(&stats.acks, 1);
            }
        }
        let read = tokio::select! {
            biased;
            () = shutdown_requested(&mut shutdown) => return,
            read = stream.read(&mut buf) => read,
        };
        match read {
            Ok(0) => {
                if decoder.has_partial() {
                    ForwardStats::add(&stats.decode_errors, 1);
                    tracing::warn!(%peer, "forward: connection closed in the middle of a message");
                }
                return;
            }
            Ok(n) => decoder.push(&buf[..n]),
            Err(error) => {
                tracing::debug!(%peer, %error, "forward: read failed");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn encode(value: &Msgpack) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        out
    }

    fn record(pairs: &[(&str, &str)]) -> Msgpack {
        Msgpack::Map(pairs.iter().map(|(k, v)| (Msgpack::from(*k), Msgpack::from(*v))).collect())
    }

    fn event_time_ext(secs: u32, nanos: u32) -> Msgpack {
        let mut bytes = secs.to_be_bytes().to_vec();
        bytes.extend_from_slice(&nanos.to_be_bytes());
        Msgpack::Ext(0, bytes)
    }

    fn option(pairs: Vec<(&str, Msgpack)>) -> Msgpack {
        Msgpack::Map(pairs.into_iter().map(|(k, v)| (Msgpack::from(k), v)).collect())
    }

    fn fixed_now() -> EventTime {
        EventTime::new(42, 0)
    }

    fn decode_bytes(bytes: &[u8]) -> ForwardMessage {
        let mut decoder = FrameDecoder::new();
        decoder.push(bytes);
        let frame = decoder.next_frame().unwrap().unwrap();
        assert!(!decoder.has_partial());
        decode_message(frame, fixed_now).unwrap()
    }

    #[test]
    fn message_mode_with_event_time_and_chunk() {
        let bytes = encode(&Msgpack::Array(vec![
            Msgpack::from("com.chaoslab.nifi.platform"),
            event_time_ext(1_582_320_002, 991_000_000),
            record(&[("message", "hello")]),
            option(vec![("chunk", Msgpack::from("c1"))]),
        ]));
        let message = decode_bytes(&bytes);
        assert_eq!(message.mode, ForwardMode::Message);
        assert_eq!(message.chunk.as_deref(), Some("c1"));
        assert_eq!(message.events.len(), 1);
        let event = &message.events[0];
        assert_eq!(event.tag, "com.chaoslab.nifi.platform");
        assert_eq!(event.time, EventTime::new(1_582_320_002, 991_000_000));
        assert_eq!(event.record["message"], "hello");
    }

    #[test]
    fn message_mode_with_integer_float_and_missing_time() {
        let m = |time: Msgpack| {
            decode_bytes(&encode(&Msgpack::Array(vec![Msgpack::from("t"), time, record(&[("a", "b")])])))
        };
        assert_eq!(m(Msgpack::from(1_582_320_002u64)).events[0].time, EventTime::new(1_582_320_002, 0));
        assert_eq!(
            m(Msgpack::F64(1_582_320_002.5)).events[0].time,
            EventTime::new(1_582_320_002, 500_000_000)
        );
        assert_eq!(m(Msgpack::from(0)).events[0].time, fixed_now(), "time 0 means now");
        assert_eq!(m(Msgpack::Nil).events[0].time, fixed_now());
        let bad = m(Msgpack::Boolean(true));
        assert!(bad.events.is_empty());
        assert_eq!(bad.skipped_entries, 1);
    }

    #[test]
    fn forward_mode() {
        let bytes = encode(&Msgpack::Array(vec![
            Msgpack::from("fwd"),
            Msgpack::Array(vec![
                Msgpack::Array(vec![Msgpack::from(1), record(&[("n", "1")])]),
                Msgpack::Array(vec![event_time_ext(2, 5), record(&[("n", "2")])]),
                Msgpack::Array(vec![Msgpack::from(3), Msgpack::from("not a map")]),
            ]),
            option(vec![("chunk", Msgpack::from("abc")), ("size", Msgpack::from(3))]),
        ]));
        let message = decode_bytes(&bytes);
        assert_eq!(message.mode, ForwardMode::Forward);
        assert_eq!(
            message.events.iter().map(|e| e.record["n"].as_str().unwrap()).collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(message.events[1].time, EventTime::new(2, 5));
        assert_eq!(message.skipped_entries, 1);
        assert_eq!(message.chunk.as_deref(), Some("abc"));
    }

    fn packed_entries() -> Vec<u8> {
        let mut entries = encode(&Msgpack::Array(vec![Msgpack::from(10), record(&[("k", "a")])]));
        entries.extend(encode(&Msgpack::Array(vec![event_time_ext(11, 1), record(&[("k", "b")])])));
        entries
    }

    #[test]
    fn packed_forward_mode_as_bin_and_str() {
        for entries in [Msgpack::Binary(packed_entries()), Msgpack::String(rmpv::Utf8String::from(""))] {
            let is_bin = matches!(entries, Msgpack::Binary(_));
            let message = decode_bytes(&encode(&Msgpack::Array(vec![
                Msgpack::from("packed"),
                entries,
                option(vec![("size", Msgpack::from(2))]),
            ])));
            assert_eq!(message.mode, ForwardMode::PackedForward);
            if is_bin {
                assert_eq!(message.events.len(), 2);
                assert_eq!(message.events[0].time, EventTime::new(10, 0));
                assert_eq!(message.events[1].record["k"], "b");
                assert_eq!(message.events[1].time, EventTime::new(11, 1));
            } else {
                assert!(message.events.is_empty());
            }
        }
    }

    #[test]
    fn compressed_packed_forward_mode_with_two_gzip_members() {
        let entries = packed_entries();
        let (first, second) = entries.split_at(5);
        let mut payload = Vec::new();
        for part in [first, second] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(part).unwrap();
            payload.extend(gz.finish().unwrap());
        }
        let message = decode_bytes(&encode(&Msgpack::Array(vec![
            Msgpack::from("gz"),
            Msgpack::Binary(payload),
            option(vec![("compressed", Msgpack::from("gzip")), ("chunk", Msgpack::from("z"))]),
        ])));
        assert_eq!(message.mode, ForwardMode::CompressedPackedForward);
        assert_eq!(message.events.len(), 2);
        assert_eq!(message.chunk.as_deref(), Some("z"));
        let not_gzip = decode_message(
            Msgpack::Array(vec![
                Msgpack::from("gz"),
                Msgpack::Binary(vec![1, 2, 3]),
                option(vec![("compressed", Msgpack::from("gzip"))]),
            ]),
            fixed_now,
        );
        assert!(matches!(not_gzip, Err(ForwardError::Gzip(_))));
    }

    #[test]
    fn millions_of_tiny_gzipped_entries_are_refused_not_expanded() {
        // 6.3 million of these made a 122 KB message that took RSS to 4 GB; past MAX_ENTRIES the decoder
        // stops, having built at most MAX_ENTRIES events.
        let tiny = encode(&Msgpack::Array(vec![Msgpack::from(1), Msgpack::Map(vec![])]));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for _ in 0..MAX_ENTRIES + 1 {
            gz.write_all(&tiny).unwrap();
        }
        let payload = gz.finish().unwrap();
        assert!(payload.len() < 64 * 1024, "a small message: {} bytes", payload.len());
        let bomb = Msgpack::Array(vec![
            Msgpack::from("gz"),
            Msgpack::Binary(payload),
            option(vec![("compressed", Msgpack::from("gzip"))]),
        ]);
        assert_eq!(decode_message(bomb, fixed_now).err(), Some(ForwardError::TooManyEntries));
        let entries = vec![Msgpack::Array(vec![Msgpack::from(1), Msgpack::Map(vec![])]); MAX_ENTRIES + 1];
        let forward = Msgpack::Array(vec![Msgpack::from("f"), Msgpack::Array(entries)]);
        assert_eq!(decode_message(forward, fixed_now).err(), Some(ForwardError::TooManyEntries));
    }

    #[test]
    fn heartbeat_and_invalid_shapes() {
        assert_eq!(decode_bytes(&[0xc0]).mode, ForwardMode::Heartbeat);
        let invalid = |v: Msgpack| decode_message(v, fixed_now).unwrap_err();
        assert!(matches!(invalid(Msgpack::from(1)), ForwardError::Invalid(_)));
        assert!(matches!(invalid(Msgpack::Array(vec![Msgpack::from("t")])), ForwardError::Invalid(_)));
        assert!(matches!(
            invalid(Msgpack::Array(vec![Msgpack::from(1), Msgpack::from(1), record(&[])])),
            ForwardError::Invalid(_)
        ));
        assert_eq!(
            invalid(Msgpack::Array(vec![Msgpack::from("x".repeat(1025)), Msgpack::from(1), record(&[])])),
            ForwardError::TagTooLong { len: 1025 }
        );
        assert!(matches!(
            invalid(Msgpack::Array(vec![
                Msgpack::from("t"),
                Msgpack::from(1),
                record(&[]),
                Msgpack::from(5)
            ])),
            ForwardError::Invalid(_)
        ));
        let packed_garbage = invalid(Msgpack::Array(vec![
            Msgpack::from("t"),
            Msgpack::Binary(vec![0x92, 0xc1]),
            Msgpack::Nil,
        ]));
        assert!(matches!(packed_garbage, ForwardError::Msgpack { .. }), "{packed_garbage:?}");
    }

    #[test]
    fn frames_split_across_reads_and_several_per_read() {
        let one = encode(&Msgpack::Array(vec![Msgpack::from("a"), Msgpack::from(1), record(&[("x", "y")])]));
        let two = encode(&Msgpack::Array(vec![
            Msgpack::from("b"),
            Msgpack::from(2),
            record(&[("big", &"z".repeat(70_000))]),
        ]));
        let mut stream = one.clone();
        stream.extend(&two);
        stream.push(0xc0);
        let mut decoder = FrameDecoder::new();
        let mut frames = Vec::new();
        for piece in stream.chunks(7) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 3);
        assert_eq!(encode(&frames[0]), one);
        assert_eq!(encode(&frames[1]), two);
        assert_eq!(frames[2], Msgpack::Nil);
        assert!(!decoder.has_partial());
    }

    #[test]
    fn decoder_limits() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&[0xc1]);
        assert!(matches!(decoder.next_frame(), Err(ForwardError::Msgpack { offset: 0, .. })));

        let mut decoder = FrameDecoder::new();
        // A bin32 header announcing 9 MiB is refused before the payload arrives.
        decoder.push(&[0x93, 0xa1, b't', 0xc6, 0x00, 0x90, 0x00, 0x00]);
        assert_eq!(decoder.next_frame(), Err(ForwardError::TooLarge { limit: MAX_MESSAGE_BYTES }));

        let mut decoder = FrameDecoder::new();
        decoder.push(&[0x91; MAX_NESTING + 1]);
        assert_eq!(decoder.next_frame(), Err(ForwardError::TooDeep));

        let mut decoder = FrameDecoder::new();
        decoder.push(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decoder.next_frame(), Ok(None), "a huge array count alone allocates nothing");
    }

    #[test]
    fn json_conversion_of_odd_values() {
        let message = decode_message(
            Msgpack::Array(vec![
                Msgpack::from("t"),
                Msgpack::from(1),
                Msgpack::Map(vec![
                    (Msgpack::from(7), Msgpack::Binary(b"bytes".to_vec())),
                    (Msgpack::from("f"), Msgpack::F64(f64::NAN)),
                    (Msgpack::from("u"), Msgpack::from(u64::MAX)),
                    (Msgpack::from("nested"), Msgpack::Array(vec![Msgpack::Boolean(true), Msgpack::Nil])),
                    (Msgpack::from("ts"), event_time_ext(1, 500_000_000)),
                ]),
            ]),
            fixed_now,
        )
        .unwrap();
        assert_eq!(
            Value::Object(message.events[0].record.clone()),
            serde_json::json!({"7": "bytes", "f": null, "u": u64::MAX, "nested": [true, null], "ts": 1.5})
        );
    }

    struct Server {
        addr: std::net::SocketAddr,
        rx: mpsc::Receiver<LogEvent>,
        stats: Arc<ForwardStats>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel(16);
        let stats = Arc::new(ForwardStats::default());
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(serve(listener, tx, stats.clone(), shutdown, None));
        Server { addr, rx, stats, stop, task }
    }

    async fn recv(rx: &mut mpsc::Receiver<LogEvent>) -> LogEvent {
        tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn serves_a_stream_of_messages_and_acks_chunks() {
        let mut server = start().await;
        let mut client = TcpStream::connect(server.addr).await.unwrap();
        let mut bytes = encode(&Msgpack::Nil);
        bytes.extend(encode(&Msgpack::Array(vec![
            Msgpack::from("a.b"),
            Msgpack::from(5),
            record(&[("k", "1")]),
        ])));
        bytes.extend(encode(&Msgpack::Array(vec![
            Msgpack::from("a.c"),
            Msgpack::Binary(packed_entries()),
            option(vec![("chunk", Msgpack::from("Y2h1bms="))]),
        ])));
        client.write_all(&bytes).await.unwrap();
        let first = recv(&mut server.rx).await;
        assert_eq!((first.tag.as_str(), first.time), ("a.b", EventTime::new(5, 0)));
        assert_eq!(recv(&mut server.rx).await.record["k"], "a");
        assert_eq!(recv(&mut server.rx).await.record["k"], "b");
        let mut ack = vec![0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut ack)).await.unwrap().unwrap();
        let reply = rmpv::decode::read_value(&mut &ack[..n]).unwrap();
        assert_eq!(reply, Msgpack::Map(vec![(Msgpack::from("ack"), Msgpack::from("Y2h1bms="))]));

        // A long tag is skipped, the connection stays usable.
        client
            .write_all(&encode(&Msgpack::Array(vec![
                Msgpack::from("t".repeat(2000)),
                Msgpack::from(1),
                record(&[]),
            ])))
            .await
            .unwrap();
        client
            .write_all(&encode(&Msgpack::Array(vec![Msgpack::from("after"), Msgpack::from(1), record(&[])])))
            .await
            .unwrap();
        assert_eq!(recv(&mut server.rx).await.tag, "after");

        let stats = server.stats.snapshot();
        assert_eq!(
            (stats.connections, stats.messages, stats.events, stats.acks, stats.heartbeats, stats.oversized),
            (1, 3, 4, 1, 1, 1)
        );
        server.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server.task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn garbage_closes_the_connection_and_is_counted() {
        let mut server = start().await;
        let mut client = TcpStream::connect(server.addr).await.unwrap();
        client.write_all(&[0x93, 0xa1, b't', 0x01, 0xc1]).await.unwrap();
        let mut buf = [0u8; 8];
        let n =
            tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await.unwrap().unwrap_or(0);
        assert_eq!(n, 0, "the server closes the connection");
        assert_eq!(server.stats.snapshot().decode_errors, 1);

        // The server keeps serving other connections.
        let mut client = TcpStream::connect(server.addr).await.unwrap();
        client
            .write_all(&encode(&Msgpack::Array(vec![Msgpack::from("ok"), Msgpack::from(1), record(&[])])))
            .await
            .unwrap();
        assert_eq!(recv(&mut server.rx).await.tag, "ok");
        drop(server.stop);
        tokio::time::timeout(Duration::from_secs(5), server.task).await.unwrap().unwrap();
    }
}
