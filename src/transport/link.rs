//! Links: the one road every message takes from one component to the next, and where faults live.
//!
//! A link is a directed, named hop (`MQTT_BROKER->FLINK`) with a bounded queue. Its [`LinkFaults`] are
//! plain data that can be changed at any time (all off by default): loss, duplication, corruption and
//! partition are decided when a message is sent; latency, jitter, reordering and bandwidth become a due
//! time, and the receiver gets messages in due-time order. Every decision draws from the link's own
//! random stream (seed + link name), so a faulty run is as reproducible as a clean one. A message sent
//! while the receiving component is down is dropped and counted, like a packet to a dead host.
//!
//! Links are also used for request-style hops (a batch job reading a store): [`Link::gate`] applies the
//! same faults to one request.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use prometheus::IntCounter;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard, mpsc};
use tokio::time::Instant;

use super::envelope::Envelope;
use crate::kernel::metrics::Metrics;
use crate::kernel::seed::{Rng, Seed};
use crate::kernel::trace::Trace;
use humantime_serde as hd;

/// The longest latency or jitter a link accepts.
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

/// The faults a link applies. Probabilities are in `[0, 1]`; everything zero means a perfect link.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkFaults {
    /// Fixed extra delay.
    #[serde(with = "hd")]
    pub latency: Duration,
    /// Random extra delay, uniform in `[0, jitter]`.
    #[serde(with = "hd")]
    pub jitter: Duration,
    /// How much each jitter draw follows the previous one (netem's correlation), in `[0, 1]`.
    pub correlation: f64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message's payload has one bit flipped.
    pub corrupt: f64,
    /// Probability that a message skips the delay queue (arrives ahead of earlier ones).
    pub reorder: f64,
    /// Nothing gets through.
    pub partition: bool,
    /// Throughput cap in bytes per second; 0 = unlimited.
    pub bandwidth: u64,
    /// Changes to the records themselves (JSON object payloads only).
    pub data: DataFaults,
}

/// Faults in the data a link carries: what a flaky sensor or a broken serializer does to records. They
/// apply to payloads that are JSON objects (sensor records); anything else passes unchanged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataFaults {
    /// Probability that a record is altered, in `[0, 1]`.
    pub rate: f64,
    /// Fields removed from an altered record.
    pub drop_fields: Vec<String>,
    /// Fields whose value becomes the dataset's `" None"`.
    pub none_fields: Vec<String>,
    /// Remove the `time` field (the record has no time information).
    pub drop_time: bool,
    /// Move `time` this far into the past (out-of-order timestamps).
    #[serde(with = "hd")]
    pub time_shift: Duration,
}

impl DataFaults {
    /// True when no record is altered.
    pub fn is_clear(&self) -> bool {
        self.rate == 0.0
            || (self.drop_fields.is_empty()
                && self.none_fields.is_empty()
                && !self.drop_time
                && self.time_shift.is_zero())
    }

    /// Applies the changes to one record; returns the new payload, or `None` when it is not a JSON object.
    fn alter(&self, payload: &[u8]) -> Option<Bytes> {
        let mut record: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(payload).ok()?;
        for f in &self.drop_fields {
            record.remove(f);
        }
        for f in &self.none_fields {
            record.insert(f.clone(), serde_json::Value::from(" None"));
        }
        if self.drop_time {
            record.remove("time");
        } else if !self.time_shift.is_zero()
            && let Some(t) = record.get("time").and_then(|t| t.as_str())
            && let Ok(t) = chrono::DateTime::parse_from_rfc3339(t)
        {
            let shifted = t.with_timezone(&chrono::Utc)
                - chrono::Duration::from_std(self.time_shift).unwrap_or(chrono::Duration::zero());
            record.insert("time".into(), serde_json::Value::from(crate::kernel::clock::iso_millis(shifted)));
        }
        serde_json::to_vec(&record).ok().map(Bytes::from)
    }
}

impl LinkFaults {
    /// True when every fault is off.
    pub fn is_clear(&self) -> bool {
        *self == LinkFaults::default()
    }

    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("correlation", self.correlation),
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
            ("reorder", self.reorder),
            ("data.rate", self.data.rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be between 0 and 1, got {p}"));
            }
        }
        for (name, d) in [("latency", self.latency), ("jitter", self.jitter)] {
            if d > MAX_DELAY {
                return Err(format!(
                    "{name} must be at most {}, got {}",
                    humantime::format_duration(MAX_DELAY),
                    humantime::format_duration(d)
                ));
            }
        }
        if self.reorder > 0.0 && self.latency.is_zero() && self.jitter.is_zero() {
            return Err("reorder needs a latency or jitter to jump ahead of (as netem's reorder does)".into());
        }
        Ok(())
    }
}

/// Counters of one link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// Messages offered to the link.
    pub sent: u64,
    /// Messages handed to the receiver (duplicates included).
    pub delivered: u64,
    /// Lost to the loss fault.
    pub dropped_loss: u64,
    /// Dropped by a partition.
    pub dropped_partition: u64,
    /// Dropped because the receiving component was down (or, for requests, the serving one).
    pub dropped_down: u64,
    /// Queued for a receiver that went away (crashed or stopped): lost with it.
    pub dropped_queued: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Payloads corrupted.
    pub corrupted: u64,
    /// Records altered by data faults.
    pub altered: u64,
}

impl LinkStats {
    /// All drops.
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_partition + self.dropped_down + self.dropped_queued
    }
}

/// One outcome's counter (`chaoslab_link_messages_total{link,outcome}`).
struct Counter(IntCounter);

impl Counter {
    fn new(metrics: &Metrics, link: &str, outcome: &str) -> Counter {
        Counter(metrics.link(link, outcome))
    }
    fn add(&self, n: u64) {
        self.0.inc_by(n);
    }
    fn get(&self) -> u64 {
        self.0.get()
    }
}

struct Counters {
    sent: Counter,
    delivered: Counter,
    loss: Counter,
    partition: Counter,
    down: Counter,
    queued: Counter,
    duplicated: Counter,
    corrupted: Counter,
    altered: Counter,
}

/// State the fault decisions share.
struct FaultState {
    faults: LinkFaults,
    rng: Rng,
    last_jitter: f64,
    next_free: Option<Instant>,
    seq: u64,
}

/// A message in flight with its due time (`None`: at once, the clean-link fast path).
struct Item {
    due: Option<Instant>,
    seq: u64,
    env: Envelope,
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Item {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// A directed hop between two components.
pub struct Link {
    name: String,
    from: String,
    to: String,
    state: Mutex<FaultState>,
    tx: mpsc::Sender<Item>,
    rx: AsyncMutex<LinkReceiverState>,
    src_up: Arc<AtomicBool>,
    dest_up: Arc<AtomicBool>,
    counters: Counters,
    in_flight: AtomicU64,
    trace: Trace,
    /// Set while the receiving or sending component is paused: messages queue and wait.
    hold: tokio::sync::watch::Sender<bool>,
    /// The same flag for the per-message check (a plain load instead of the watch's lock).
    held: AtomicBool,
}

struct LinkReceiverState {
    rx: mpsc::Receiver<Item>,
    /// Messages taken off the channel, at most `capacity` of them (so a receiver that falls behind pushes
    /// back on its senders instead of queueing without limit), split in two: those that came in
    /// due-time order, in a queue (the usual case, O(1) each way) ...
    fifo: VecDeque<Item>,
    /// ... and those that came earlier than the queue's last (a delay with jitter), in a heap.
    heap: BinaryHeap<Reverse<Item>>,
    capacity: usize,
}

impl LinkReceiverState {
    /// Messages held.
    fn len(&self) -> usize {
        self.fifo.len() + self.heap.len()
    }

    fn is_empty(&self) -> bool {
        self.fifo.is_empty() && self.heap.is_empty()
    }

    /// Room for one more message.
    fn has_room(&self) -> bool {
        self.len() < self.capacity
    }

    fn push(&mut self, item: Item) {
        if self.fifo.back().is_none_or(|last| *last <= item) {
            self.fifo.push_back(item);
        } else {
            self.heap.push(Reverse(item));
        }
    }

    /// Whether the next message (the earliest due) is the queue's, rather than the heap's.
    fn next_is_fifo(&self) -> bool {
        match (self.fifo.front(), self.heap.peek()) {
            (Some(a), Some(Reverse(b))) => a < b,
            (a, _) => a.is_some(),
        }
    }

    /// The earliest-due message held.
    fn peek(&self) -> Option<&Item> {
        if self.next_is_fifo() { self.fifo.front() } else { self.heap.peek().map(|Reverse(i)| i) }
    }

    /// Takes the earliest-due message held.
    fn pop(&mut self) -> Option<Item> {
        if self.next_is_fifo() { self.fifo.pop_front() } else { self.heap.pop().map(|Reverse(i)| i) }
    }

    fn clear(&mut self) {
        self.fifo.clear();
        self.heap.clear();
    }

    /// Moves what is queued on the channel in, while there is room.
    fn take_queued(&mut self) {
        while self.has_room() {
            match self.rx.try_recv() {
                Ok(item) => self.push(item),
                Err(_) => break,
            }
        }
    }
}

/// Why [`Link::gate`] refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// Cut off by a partition.
    #[error("link {0} is partitioned")]
    Partitioned(String),
    /// The request was lost.
    #[error("request over link {0} was lost")]
    Lost(String),
    /// The other side is down.
    #[error("{1} is down (link {0})")]
    Down(String, String),
}

impl Link {
    /// A link `from -> to` with a queue of `capacity` messages. `up` tells whether `from` and `to` are running.
    pub fn new(
        from: &str,
        to: &str,
        capacity: usize,
        seed: Seed,
        metrics: &Metrics,
        trace: Trace,
        up: (Arc<AtomicBool>, Arc<AtomicBool>),
    ) -> Arc<Link> {
        let (src_up, dest_up) = up;
        let name = format!("{from}->{to}");
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let c = |outcome: &str| Counter::new(metrics, &name, outcome);
        let counters = Counters {
            sent: c("sent"),
            delivered: c("delivered"),
            loss: c("dropped_loss"),
            partition: c("dropped_partition"),
            down: c("dropped_down"),
            queued: c("dropped_queued"),
            duplicated: c("duplicated"),
            corrupted: c("corrupted"),
            altered: c("altered"),
        };
        let state = FaultState {
            faults: LinkFaults::default(),
            rng: seed.stream(&format!("link:{name}")),
            last_jitter: 0.0,
            next_free: None,
            seq: 0,
        };
        Arc::new(Link {
            name,
            from: from.to_string(),
            to: to.to_string(),
            state: Mutex::new(state),
            tx,
            rx: AsyncMutex::new(LinkReceiverState {
                rx,
                fifo: VecDeque::new(),
                heap: BinaryHeap::new(),
                capacity: capacity.max(1),
            }),
            src_up,
            dest_up,
            counters,
            in_flight: AtomicU64::new(0),
            trace,
            hold: tokio::sync::watch::channel(false).0,
            held: AtomicBool::new(false),
        })
    }

    /// `FROM->TO`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sending component.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// Receiving component.
    pub fn to(&self) -> &str {
        &self.to
    }

    fn state(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The faults in force.
    pub fn faults(&self) -> LinkFaults {
        self.state().faults.clone()
    }

    /// Replaces the faults in force (traced as `fault.applied`, or `fault.cleared` when all are off).
    pub fn set_faults(&self, faults: LinkFaults) {
        let kind = if faults.is_clear() { "fault.cleared" } else { "fault.applied" };
        let data = serde_json::to_value(&faults).unwrap_or_default();
        {
            let mut st = self.state();
            st.faults = faults;
            st.last_jitter = 0.0;
        }
        tracing::info!(link = %self.name, "{kind}: {data}");
        self.trace.emit(&self.name, kind, &json!({"link": self.name, "faults": data}));
    }

    /// Holds (true) or releases (false) delivery: while held, messages queue in the link (their delays
    /// run on) and are delivered in order once released, as a paused process finds its socket backlog.
    /// As with a socket, the backlog is bounded (twice the link's capacity): then senders wait.
    pub fn set_hold(&self, hold: bool) {
        self.held.store(hold, Ordering::SeqCst);
        if self.hold.send_replace(hold) != hold {
            self.trace.emit(
                &self.name,
                if hold { "link.held" } else { "link.released" },
                &json!({"link": self.name}),
            );
        }
    }

    /// True while delivery is held.
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    async fn wait_released(&self) {
        let mut rx = self.hold.subscribe();
        // The sender lives in `self`; an error means it is gone, and then nothing holds.
        let _ = rx.wait_for(|held| !*held).await;
    }

    /// Counters so far.
    pub fn stats(&self) -> LinkStats {
        let c = &self.counters;
        LinkStats {
            sent: c.sent.get(),
            delivered: c.delivered.get(),
            dropped_loss: c.loss.get(),
            dropped_partition: c.partition.get(),
            dropped_down: c.down.get(),
            dropped_queued: c.queued.get(),
            duplicated: c.duplicated.get(),
            corrupted: c.corrupted.get(),
            altered: c.altered.get(),
        }
    }

    /// Messages accepted but not yet received (queued or delayed).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    fn dropped(&self, counter: &Counter, reason: &str, env: &Envelope) {
        counter.add(1);
        self.trace.emit(
            &self.name,
            "link.dropped",
            &json!({"link": self.name, "reason": reason, "topic": env.topic, "bytes": env.payload.len()}),
        );
    }

    /// Offers a message to the link. Waits while the queue is full (backpressure). Returns false when the
    /// message was dropped (by a fault, or because the receiver is down).
    pub async fn send(&self, env: Envelope) -> bool {
        self.counters.sent.add(1);
        if !self.dest_up.load(Ordering::SeqCst) {
            self.dropped(&self.counters.down, "destination_down", &env);
            return false;
        }
        let mut copies: Vec<Item> = Vec::with_capacity(1);
        {
            let mut st = self.state();
            if st.faults.is_clear() {
                st.seq += 1;
                copies.push(Item { due: None, seq: st.seq, env });
            } else {
                let now = Instant::now();
                let st = &mut *st;
                if st.faults.partition {
                    self.dropped(&self.counters.partition, "partition", &env);
                    return false;
                }
                if st.faults.loss > 0.0 && st.rng.r#gen::<f64>() < st.faults.loss {
                    self.dropped(&self.counters.loss, "loss", &env);
                    return false;
                }
                let mut env = env;
                if !st.faults.data.is_clear()
                    && st.rng.r#gen::<f64>() < st.faults.data.rate
                    && let Some(altered) = st.faults.data.alter(&env.payload)
                {
                    env.payload = altered;
                    self.counters.altered.add(1);
                    self.trace.emit(
                        &self.name,
                        "link.altered",
                        &json!({"link": self.name, "topic": env.topic}),
                    );
                }
                if st.faults.corrupt > 0.0
                    && st.rng.r#gen::<f64>() < st.faults.corrupt
                    && !env.payload.is_empty()
                {
                    let mut bytes = env.payload.to_vec();
                    let i = st.rng.gen_range(0..bytes.len());
                    bytes[i] ^= 1 << st.rng.gen_range(0..8);
                    env.payload = Bytes::from(bytes);
                    self.counters.corrupted.add(1);
                    self.trace.emit(&self.name, "link.corrupted", &json!({"link": self.name, "byte": i}));
                }
                let twice = st.faults.duplicate > 0.0 && st.rng.r#gen::<f64>() < st.faults.duplicate;
                let due = Some(Self::due_time(st, now, env.payload.len()));
                st.seq += 1;
                if twice {
                    self.counters.duplicated.add(1);
                    self.trace.emit(
                        &self.name,
                        "link.duplicated",
                        &json!({"link": self.name, "topic": env.topic}),
                    );
                    copies.push(Item { due, seq: st.seq, env: env.clone() });
                    st.seq += 1;
                }
                copies.push(Item { due, seq: st.seq, env });
            }
        }
        for item in copies {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            if self.tx.send(item).await.is_err() {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                return false;
            }
        }
        true
    }

    fn due_time(st: &mut FaultState, now: Instant, bytes: usize) -> Instant {
        let f = &st.faults;
        let mut due = now;
        let reorder = f.reorder > 0.0 && st.rng.r#gen::<f64>() < f.reorder;
        if !reorder {
            let mut delay = f.latency.as_secs_f64();
            if !f.jitter.is_zero() {
                let fresh: f64 = st.rng.r#gen();
                let r = f.correlation * st.last_jitter + (1.0 - f.correlation) * fresh;
                st.last_jitter = r;
                delay += r * f.jitter.as_secs_f64();
            }
            due += Duration::from_secs_f64(delay);
        }
        if f.bandwidth > 0 {
            let start = st.next_free.map_or(due, |free| free.max(due));
            let transmit = Duration::from_secs_f64(bytes as f64 / f.bandwidth as f64);
            st.next_free = Some(start + transmit);
            due = start + transmit;
        }
        due
    }

    fn delivered(&self, item: Item) -> Envelope {
        self.counters.delivered.add(1);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        item.env
    }

    /// Takes the receiving end. Only one holder at a time; a restarted component takes it again and finds
    /// whatever was queued while it was gone.
    pub async fn receiver(&self) -> LinkReceiver<'_> {
        LinkReceiver { link: self, state: self.rx.lock().await }
    }

    /// Applies the link's faults to one request across the hop (a read, a produce, an RPC, a query): waits
    /// out the delay, or fails when either end is down, the link is partitioned, or the request is lost.
    pub async fn gate(&self) -> Result<(), GateError> {
        self.counters.sent.add(1);
        if self.is_held() {
            self.wait_released().await;
        }
        let refused = |counter: &Counter, err: GateError| {
            counter.add(1);
            self.trace.emit(
                &self.name,
                "link.refused",
                &json!({"link": self.name, "error": err.to_string()}),
            );
            Err(err)
        };
        for (up, end) in [(&self.src_up, &self.from), (&self.dest_up, &self.to)] {
            if !up.load(Ordering::SeqCst) {
                return refused(&self.counters.down, GateError::Down(self.name.clone(), end.clone()));
            }
        }
        let due = {
            let mut st = self.state();
            if st.faults.is_clear() {
                None
            } else if st.faults.partition {
                drop(st);
                return refused(&self.counters.partition, GateError::Partitioned(self.name.clone()));
            } else if st.faults.loss > 0.0 && st.rng.r#gen::<f64>() < st.faults.loss {
                drop(st);
                return refused(&self.counters.loss, GateError::Lost(self.name.clone()));
            } else {
                Some(Self::due_time(&mut st, Instant::now(), 0))
            }
        };
        if let Some(due) = due {
            tokio::time::sleep_until(due).await;
        }
        self.counters.delivered.add(1);
        Ok(())
    }
}

/// The receiving end of a link, held by the component that consumes it. When it is dropped (the
/// component stopped or crashed) whatever was queued for it is lost and counted as `dropped_queued`,
/// as a process loses its socket buffers.
pub struct LinkReceiver<'a> {
    link: &'a Link,
    state: AsyncMutexGuard<'a, LinkReceiverState>,
}

impl LinkReceiver<'_> {
    /// The next message, or `None` once `stop` is cancelled (the component's graceful stop).
    pub async fn recv_until(&mut self, stop: &tokio_util::sync::CancellationToken) -> Option<Envelope> {
        tokio::select! {
            biased;
            _ = stop.cancelled() => None,
            env = self.recv() => env,
        }
    }

    /// The next message if one is due now, without waiting (for taking what is queued in a batch).
    pub fn try_recv(&mut self) -> Option<Envelope> {
        if self.link.is_held() {
            return None;
        }
        let st = &mut *self.state;
        if st.is_empty() {
            match st.rx.try_recv() {
                Ok(item) if item.due.is_none() => return Some(self.link.delivered(item)),
                Ok(item) => st.push(item),
                Err(_) => return None,
            }
        }
        st.take_queued();
        let now = Instant::now();
        match st.peek() {
            Some(top) if top.due.is_none_or(|due| due <= now) => {
                let item = st.pop()?;
                Some(self.link.delivered(item))
            }
            _ => None,
        }
    }

    /// The next message in due-time order; `None` when every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Envelope> {
        let st = &mut *self.state;
        loop {
            if self.link.is_held() {
                // Keep taking what arrives up to the receiver's room, so senders block only once both
                // the channel and the receiver's room are full (as a paused process's socket buffers fill).
                tokio::select! {
                    biased;
                    _ = self.link.wait_released() => {}
                    item = st.rx.recv(), if !st.rx.is_closed() && st.has_room() => {
                        if let Some(item) = item {
                            st.push(item);
                        }
                    }
                }
                continue;
            }
            if st.is_empty() {
                match st.rx.try_recv() {
                    Ok(item) if item.due.is_none() => return Some(self.link.delivered(item)),
                    Ok(item) => st.push(item),
                    Err(_) => {}
                }
            }
            st.take_queued();
            let now = Instant::now();
            if let Some(top) = st.peek()
                && top.due.is_none_or(|due| due <= now)
            {
                let item = st.pop()?;
                return Some(self.link.delivered(item));
            }
            let next_due = st.peek().and_then(|i| i.due);
            tokio::select! {
                biased;
                item = st.rx.recv(), if st.has_room() => match item {
                    Some(item) => st.push(item),
                    None => match next_due {
                        Some(due) => tokio::time::sleep_until(due).await,
                        None => return None,
                    },
                },
                _ = tokio::time::sleep_until(next_due.unwrap_or(now)), if next_due.is_some() => {}
            }
        }
    }
}

impl Drop for LinkReceiver<'_> {
    fn drop(&mut self) {
        let st = &mut *self.state;
        let mut lost = st.len() as u64;
        st.clear();
        while st.rx.try_recv().is_ok() {
            lost += 1;
        }
        if lost > 0 {
            self.link.in_flight.fetch_sub(lost, Ordering::SeqCst);
            self.link.counters.queued.add(lost);
            let data = json!({"link": self.link.name, "messages": lost});
            self.link.trace.emit(&self.link.name, "link.discarded", &data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::clock::Clock;

    fn link(up: bool) -> Arc<Link> {
        let metrics = Metrics::new().unwrap();
        let trace = Trace::recording(Clock::sim(chrono::DateTime::UNIX_EPOCH));
        Link::new(
            "A",
            "B",
            64,
            Seed(7),
            &metrics,
            trace,
            (Arc::new(AtomicBool::new(up)), Arc::new(AtomicBool::new(up))),
        )
    }

    /// The receiver's two-part queue gives messages back in (due, seq) order whatever order they came
    /// in: in order (the queue), early ones (the heap), `None` dues (at once) among them.
    #[test]
    fn the_receiver_queue_gives_messages_back_in_due_order() {
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(11);
        let start = Instant::now();
        let (_tx, rx) = mpsc::channel(1);
        let mut st =
            LinkReceiverState { rx, fifo: VecDeque::new(), heap: BinaryHeap::new(), capacity: 10_000 };
        let mut keys = Vec::new();
        let mut due_ms = 0u64;
        for seq in 0..2_000u64 {
            // Mostly rising, sometimes earlier (jitter), sometimes no due time at all.
            let due = match rng.gen_range(0..10) {
                0 => None,
                1 | 2 => Some(start + Duration::from_millis(due_ms.saturating_sub(rng.gen_range(0..50)))),
                _ => {
                    due_ms += rng.gen_range(0..3);
                    Some(start + Duration::from_millis(due_ms))
                }
            };
            keys.push((due, seq));
            st.push(Item { due, seq, env: msg(0) });
            if rng.gen_range(0..4) == 0 {
                // Take some out as they come, as a receiver does.
                let first = st.pop().unwrap();
                let min = *keys.iter().min().unwrap();
                assert_eq!((first.due, first.seq), min);
                keys.retain(|k| *k != min);
            }
        }
        assert!(!st.fifo.is_empty() && !st.heap.is_empty(), "both parts were used");
        assert_eq!(st.len(), keys.len());
        keys.sort();
        let mut out = Vec::new();
        while let Some(peeked) = st.peek().map(|i| (i.due, i.seq)) {
            let item = st.pop().unwrap();
            assert_eq!((item.due, item.seq), peeked);
            out.push(peeked);
        }
        assert_eq!(out, keys);
        assert!(st.is_empty());
    }

    fn msg(i: u32) -> Envelope {
        Envelope::new("t", format!("{i}"))
    }

    #[tokio::test(start_paused = true)]
    async fn clean_link_preserves_order() {
        let l = link(true);
        for i in 0..10 {
            assert!(l.send(msg(i)).await);
        }
        let mut rx = l.receiver().await;
        for i in 0..10 {
            assert_eq!(rx.recv().await.unwrap().payload, format!("{i}"));
        }
        assert_eq!(l.stats().delivered, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_receiver_that_falls_behind_pushes_back_instead_of_queueing_without_limit() {
        // A hold fills the receiver's side first; then the sender runs far ahead of a slow receiver.
        let l = link(true);
        l.set_hold(true);
        let sender = {
            let l = l.clone();
            tokio::spawn(async move {
                for i in 0..10_000 {
                    l.send(msg(i)).await;
                }
            })
        };
        let mut rx = l.receiver().await;
        let held = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
        assert!(held.is_err(), "a held link delivered");
        // The link's queue plus the receiver's side (two capacities) and the one the sender waits to
        // hand over; not the 10 000 sent.
        assert_eq!(l.in_flight(), 129);
        l.set_hold(false);
        for i in 0..10_000 {
            assert_eq!(rx.recv().await.unwrap().payload, format!("{i}"));
            assert!(l.in_flight() <= 129, "{} in flight after {i}", l.in_flight());
            if i % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        sender.await.unwrap();
        assert_eq!(l.stats().delivered, 10_000);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_delivery_by_exactly_the_latency() {
        let l = link(true);
        l.set_faults(LinkFaults { latency: Duration::from_millis(250), ..Default::default() });
        let t0 = Instant::now();
        l.send(msg(1)).await;
        let mut rx = l.receiver().await;
        rx.recv().await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn loss_is_seeded_and_accounted() {
        let run = || async {
            let l = link(true);
            l.set_faults(LinkFaults { loss: 0.3, ..Default::default() });
            let mut kept = Vec::new();
            for i in 0..200 {
                if l.send(msg(i)).await {
                    kept.push(i);
                }
                let mut rx = l.receiver().await;
                if kept.last() == Some(&i) {
                    assert_eq!(rx.recv().await.unwrap().payload, format!("{i}"));
                }
            }
            let s = l.stats();
            assert_eq!(s.sent, s.delivered + s.dropped());
            assert!(s.dropped_loss > 30 && s.dropped_loss < 90, "{s:?}");
            kept
        };
        assert_eq!(run().await, run().await);
    }

    #[tokio::test(start_paused = true)]
    async fn partition_and_down_receiver_drop_everything() {
        let l = link(true);
        l.set_faults(LinkFaults { partition: true, ..Default::default() });
        assert!(!l.send(msg(1)).await);
        assert!(l.gate().await.is_err());
        let down = link(false);
        assert!(!down.send(msg(1)).await);
        assert_eq!(down.stats().dropped_down, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_corrupt_and_bandwidth() {
        let l = link(true);
        l.set_faults(LinkFaults { duplicate: 1.0, corrupt: 1.0, bandwidth: 1000, ..Default::default() });
        let t0 = Instant::now();
        l.send(Envelope::new("t", vec![0u8; 500])).await;
        let mut rx = l.receiver().await;
        let a = rx.recv().await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a.payload.iter().filter(|&&x| x != 0).count(), 1);
        assert_eq!(t0.elapsed(), Duration::from_millis(500));
        let s = l.stats();
        assert_eq!((s.sent, s.delivered, s.duplicated, s.corrupted), (1, 2, 1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_can_reorder_but_loses_nothing() {
        let l = link(true);
        l.set_faults(LinkFaults {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(100),
            ..Default::default()
        });
        for i in 0..50 {
            l.send(msg(i)).await;
        }
        let mut rx = l.receiver().await;
        let mut got: Vec<u32> = Vec::new();
        for _ in 0..50 {
            got.push(String::from_utf8_lossy(&rx.recv().await.unwrap().payload).parse().unwrap());
        }
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(got, sorted, "jitter of 100ms over simultaneous sends should reorder some");
    }
}
