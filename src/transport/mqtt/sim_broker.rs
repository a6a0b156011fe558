//! The in-process MQTT broker: MQTT 3.1.1 routing semantics without sockets, clock or randomness.
//!
//! Sim mode runs the whole pipeline on one virtual-time thread and must replay byte for byte, so it cannot
//! talk to a real broker. [`SimBroker`] behaves like mosquitto with persistence for everything chaoslab
//! uses: wildcard subscriptions, QoS downgrade, retained messages, session takeover, persistent sessions
//! with an offline queue, a broker that can be stopped and started again, and bounded per-session queues
//! that make publishers wait (backpressure). Nothing in it is specific to sim mode, so live mode can use
//! it too.
//!
//! How it works: all state sits behind one `std::sync::Mutex` that is never held across an `.await`.
//! Waiting (for a message, or for room in a full queue) uses `tokio::sync::Notify`; a waiter registers
//! (`enable`) *before* it looks at the state, so a wake-up sent in between is never lost. Sessions live in
//! `BTreeMap`s and a message goes to its targets in connection order, so the same scenario always yields
//! the same sequence of deliveries.

use std::collections::{BTreeMap, VecDeque};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tracing::{debug, info};

use crate::transport::envelope::{Envelope, Qos};
use crate::transport::mqtt::error::MqttError;
use crate::transport::mqtt::topic::{matches, validate_filter, validate_topic_name};

/// Settings of a [`SimBroker`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimBrokerConfig {
    /// Broker name: the address is `sim://<name>`, and errors name the broker that way.
    pub name: String,
    /// How many messages each session's inbound queue holds (0 is taken as 1). A publish waits while the
    /// queue of a connected target is full; the queue of an offline persistent session drops its oldest
    /// message instead.
    pub queue_capacity: usize,
    /// Largest payload accepted, in bytes.
    pub max_payload: usize,
}

impl Default for SimBrokerConfig {
    /// `MQTT_BROKER`, 1024 queued messages per session, MQTT's own payload limit.
    fn default() -> Self {
        SimBrokerConfig { name: "MQTT_BROKER".to_owned(), queue_capacity: 1024, max_payload: 268_435_455 }
    }
}

/// Counters of a [`SimBroker`]; all but `connected` and `retained` count since its creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimBrokerStats {
    /// Sessions connected right now.
    pub connected: usize,
    /// Publishes accepted from clients.
    pub messages_received: u64,
    /// Message copies put into the queue of a connected session (retained ones sent on subscribe included).
    pub messages_routed: u64,
    /// QoS 1 copies queued for an offline persistent session.
    pub queued_offline: u64,
    /// Copies lost because their session was disconnected: QoS 0 copies for an offline persistent session,
    /// and everything meant for a clean session that ended.
    pub dropped_offline: u64,
    /// Oldest queued copies dropped because an offline session's queue was full.
    pub dropped_overflow: u64,
    /// Retained messages stored right now.
    pub retained: usize,
}

/// An in-process MQTT 3.1.1 broker. Cloning gives another handle to the same broker.
///
/// Differences from a network broker, all deliberate: no will messages, no QoS 2 (handled as QoS 1, see
/// [`Qos`]), and a publish hands its message to the targets one after the other in connection order,
/// waiting at each full queue.
#[derive(Clone, Debug)]
pub struct SimBroker {
    shared: Arc<Shared>,
}

/// What the broker and its sessions share.
#[derive(Debug)]
struct Shared {
    address: String,
    queue_capacity: usize,
    max_payload: usize,
    state: Mutex<State>,
}

/// Everything that changes, guarded by one mutex.
#[derive(Debug, Default)]
struct State {
    up: bool,
    /// The last connection id handed out; ids grow, so they also give the connection order.
    last_id: u64,
    /// Session state by client id.
    sessions: BTreeMap<String, Session>,
    /// Retained message by topic.
    retained: BTreeMap<String, Envelope>,
    /// Why the broker closed a connection, kept until that connection's [`SimSession`] is dropped.
    closed: BTreeMap<u64, String>,
    stats: SimBrokerStats,
}

/// The broker's state for one client id (MQTT "session state").
#[derive(Debug)]
struct Session {
    /// Id of the connection that created this state: tells it apart from a later state under the same id.
    incarnation: u64,
    clean: bool,
    subscriptions: BTreeMap<String, Qos>,
    /// Messages not read yet; for a persistent session this survives reconnects.
    queue: VecDeque<Envelope>,
    /// The live connection, if the client is connected.
    connection: Option<Connection>,
    /// Id of the latest connection: messages reach sessions in this order.
    order: u64,
    /// Notified when the queue gets room or the session goes offline: wakes waiting publishers.
    room: Arc<Notify>,
}

/// One live connection of a session.
#[derive(Debug)]
struct Connection {
    id: u64,
    /// Notified when a message is queued or the connection is closed: wakes the waiting reader.
    readable: Arc<Notify>,
}

/// One copy of a publish still to be handed over: who gets it, at which QoS.
struct Target {
    client_id: String,
    incarnation: u64,
    qos: Qos,
    room: Arc<Notify>,
}

impl Shared {
    /// Locks the state; a panic elsewhere while it was locked leaves it consistent, so poison is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `msg` to `target`, waiting while the target is connected and its queue is full.
    async fn deliver(&self, target: &Target, msg: Envelope) {
        loop {
            let mut room = pin!(target.room.notified());
            room.as_mut().enable();
            let done = self.lock().offer(target, &msg, self.queue_capacity);
            if done {
                return;
            }
            room.await;
        }
    }
}

impl State {
    /// Who gets a copy of `msg`: every session with a matching subscription once, at the highest matching
    /// subscription QoS capped by the publish QoS, in connection order.
    fn targets(&self, msg: &Envelope) -> Vec<Target> {
        let mut targets: Vec<(u64, Target)> = self
            .sessions
            .iter()
            .filter_map(|(client_id, session)| {
                let granted = session
                    .subscriptions
                    .iter()
                    .filter(|(filter, _)| matches(filter, &msg.topic))
                    .map(|(_, qos)| *qos)
                    .max()?;
                let target = Target {
                    client_id: client_id.clone(),
                    incarnation: session.incarnation,
                    qos: granted.min(msg.qos),
                    room: Arc::clone(&session.room),
                };
                Some((session.order, target))
            })
            .collect();
        targets.sort_by_key(|(order, _)| *order);
        targets.into_iter().map(|(_, target)| target).collect()
    }

    /// Tries to hand `msg` to `target`. Returns `false` only when the target is connected and its queue is
    /// full; otherwise the copy was queued, or dropped because the target is offline or gone.
    fn offer(&mut self, target: &Target, msg: &Envelope, capacity: usize) -> bool {
        let stats = &mut self.stats;
        let Some(session) = self
            .sessions
            .get_mut(&target.client_id)
            .filter(|session| session.incarnation == target.incarnation)
        else {
            stats.dropped_offline += 1;
            return true;
        };
        match &session.connection {
            Some(_) if session.queue.len() >= capacity => return false,
            Some(connection) => {
                session.queue.push_back(msg.clone());
                connection.readable.notify_waiters();
                stats.messages_routed += 1;
            }
            None if msg.qos == Qos::AtLeastOnce => {
                while session.queue.len() >= capacity {
                    session.queue.pop_front();
                    stats.dropped_overflow += 1;
                    debug!(client_id = %target.client_id, "offline queue full, dropped its oldest message");
                }
                session.queue.push_back(msg.clone());
                stats.queued_offline += 1;
            }
            None => stats.dropped_offline += 1,
        }
        true
    }

    /// Ends the live connection of `client_id`, if any. With `kick_reason` the broker closed it, and its
    /// [`SimSession`] reports that reason from then on. A clean session is then discarded; a persistent one
    /// keeps its subscriptions and queued QoS 1 messages.
    fn go_offline(&mut self, client_id: &str, kick_reason: Option<&str>) {
        let Some(session) = self.sessions.get_mut(client_id) else { return };
        let Some(connection) = session.connection.take() else { return };
        if let Some(reason) = kick_reason {
            self.closed.insert(connection.id, reason.to_owned());
            connection.readable.notify_waiters();
        }
        if session.clean {
            self.discard(client_id);
        } else {
            let before = session.queue.len();
            session.queue.retain(|msg| msg.qos == Qos::AtLeastOnce);
            self.stats.dropped_offline += (before - session.queue.len()) as u64;
            session.room.notify_waiters();
        }
    }

    /// Forgets the session state of `client_id` and the messages queued for it.
    fn discard(&mut self, client_id: &str) {
        if let Some(session) = self.sessions.remove(client_id) {
            self.stats.dropped_offline += session.queue.len() as u64;
            session.room.notify_waiters();
        }
    }
}

impl SimBroker {
    /// A running broker with no sessions and no retained messages.
    pub fn new(cfg: SimBrokerConfig) -> Self {
        let shared = Shared {
            address: format!("sim://{}", cfg.name),
            queue_capacity: cfg.queue_capacity.max(1),
            max_payload: cfg.max_payload,
            state: Mutex::new(State { up: true, ..State::default() }),
        };
        SimBroker { shared: Arc::new(shared) }
    }

    /// The broker's address as users write it, e.g. `sim://MQTT_BROKER`.
    pub fn address(&self) -> String {
        self.shared.address.clone()
    }

    /// Whether the broker accepts connections.
    pub fn is_up(&self) -> bool {
        self.shared.lock().up
    }

    /// Starts or stops the broker. Stopping disconnects every session (their calls then fail with
    /// [`MqttError::Disconnected`], reason "broker stopped") and refuses connections until started again.
    /// Retained messages and persistent sessions survive, as with a broker that persists its state.
    pub fn set_up(&self, up: bool) {
        let mut state = self.shared.lock();
        if state.up == up {
            return;
        }
        state.up = up;
        if !up {
            let connected: Vec<String> = state
                .sessions
                .iter()
                .filter(|(_, session)| session.connection.is_some())
                .map(|(client_id, _)| client_id.clone())
                .collect();
            for client_id in &connected {
                state.go_offline(client_id, Some("broker stopped"));
            }
        }
        info!(broker = %self.shared.address, up, "sim broker {}", if up { "started" } else { "stopped" });
    }

    /// Connects a client. A client already connected under `client_id` is disconnected (session takeover).
    /// With `clean_session` any stored state is discarded and the new one ends with the connection;
    /// without it, stored subscriptions and queued messages are resumed and kept after disconnecting.
    pub fn connect(&self, client_id: &str, clean_session: bool) -> Result<SimSession, MqttError> {
        let refused = |reason: &str| MqttError::ConnectionRefused {
            broker: self.shared.address.clone(),
            reason: reason.to_owned(),
        };
        let mut state = self.shared.lock();
        if !state.up {
            return Err(refused("broker is down"));
        }
        if client_id.is_empty() {
            return Err(refused("identifier rejected: empty client id"));
        }
        if state.sessions.get(client_id).is_some_and(|session| session.connection.is_some()) {
            debug!(broker = %self.shared.address, client_id, "session taken over");
            state.go_offline(client_id, Some("session taken over"));
        }
        if clean_session {
            state.discard(client_id);
        }
        state.last_id += 1;
        let id = state.last_id;
        let readable = Arc::new(Notify::new());
        let session = state.sessions.entry(client_id.to_owned()).or_insert_with(|| Session {
            incarnation: id,
            clean: clean_session,
            subscriptions: BTreeMap::new(),
            queue: VecDeque::new(),
            connection: None,
            order: id,
            room: Arc::new(Notify::new()),
        });
        session.clean = clean_session;
        session.order = id;
        session.connection = Some(Connection { id, readable: Arc::clone(&readable) });
        debug!(
            broker = %self.shared.address,
            client_id,
            clean_session,
            resumed = session.incarnation != id,
            queued = session.queue.len(),
            "client connected"
        );
        Ok(SimSession { shared: Arc::clone(&self.shared), client_id: client_id.to_owned(), id, readable })
    }

    /// Closes the connection of `client_id` from the broker's side, as an administrator dropping a client
    /// would; the client sees a disconnect and reconnects on its own. Returns whether it was connected.
    pub fn kick(&self, client_id: &str) -> bool {
        let mut state = self.shared.lock();
        let connected = state.sessions.get(client_id).is_some_and(|session| session.connection.is_some());
        if connected {
            state.go_offline(client_id, Some("session dropped by the broker"));
            info!(broker = %self.shared.address, client_id, "session dropped");
        }
        connected
    }

    /// Client ids with a live connection, in order.
    pub fn connected_clients(&self) -> Vec<String> {
        let state = self.shared.lock();
        state.sessions.iter().filter(|(_, s)| s.connection.is_some()).map(|(id, _)| id.clone()).collect()
    }

    /// A snapshot of the broker's counters.
    pub fn stats(&self) -> SimBrokerStats {
        let state = self.shared.lock();
        SimBrokerStats {
            connected: state.sessions.values().filter(|session| session.connection.is_some()).count(),
            retained: state.retained.len(),
            ..state.stats
        }
    }
}

/// One client connection to a [`SimBroker`]. Dropping it without [`SimSession::disconnect`] is an abnormal
/// disconnect, which (without will messages) has the same effect.
#[derive(Debug)]
pub struct SimSession {
    shared: Arc<Shared>,
    client_id: String,
    /// This connection's id; the broker may have closed it since.
    id: u64,
    readable: Arc<Notify>,
}

impl SimSession {
    /// The client id this session connected with.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Subscribes (or changes the QoS of an existing subscription) and queues the retained messages that
    /// match, with the retain flag set. They are queued even beyond the queue capacity, as subscribing
    /// cannot wait.
    pub fn subscribe(&mut self, filter: &str, qos: Qos) -> Result<(), MqttError> {
        validate_filter(filter)?;
        let mut state = self.shared.lock();
        let retained: Vec<Envelope> = state
            .retained
            .values()
            .filter(|msg| matches(filter, &msg.topic))
            .map(|msg| Envelope { qos: msg.qos.min(qos), retain: true, ..msg.clone() })
            .collect();
        let count = retained.len() as u64;
        let session = self.live(&mut state)?;
        session.subscriptions.insert(filter.to_owned(), qos);
        session.queue.extend(retained);
        state.stats.messages_routed += count;
        debug!(broker = %self.shared.address, client_id = %self.client_id, filter, ?qos, retained = count, "subscribed");
        Ok(())
    }

    /// Removes a subscription; removing one that does not exist is not an error (as in MQTT).
    pub fn unsubscribe(&mut self, filter: &str) -> Result<(), MqttError> {
        validate_filter(filter)?;
        let mut state = self.shared.lock();
        self.live(&mut state)?.subscriptions.remove(filter);
        Ok(())
    }

    /// Publishes a message: stores or clears the retained message if `retain` is set (an empty payload
    /// clears), then hands a copy to every session with a matching subscription, this one included.
    /// Waits while a connected target's queue is full. Not cancel-safe: dropping the future part-way leaves
    /// the later targets without their copy.
    pub async fn publish(&mut self, env: Envelope) -> Result<(), MqttError> {
        validate_topic_name(&env.topic)?;
        if env.payload.len() > self.shared.max_payload {
            return Err(MqttError::PayloadTooLarge {
                size: env.payload.len(),
                limit: self.shared.max_payload,
            });
        }
        let targets = {
            let mut state = self.shared.lock();
            self.live(&mut state)?;
            state.stats.messages_received += 1;
            if env.retain && env.payload.is_empty() {
                state.retained.remove(&env.topic);
            } else if env.retain {
                state.retained.insert(env.topic.clone(), env.clone());
            }
            state.targets(&env)
        };
        for target in &targets {
            let copy = Envelope { qos: target.qos, retain: false, ..env.clone() };
            self.shared.deliver(target, copy).await;
        }
        Ok(())
    }

    /// The next message delivered to this session, waiting for one; fails with
    /// [`MqttError::Disconnected`] once the broker has closed this connection. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Envelope, MqttError> {
        loop {
            let mut readable = pin!(self.readable.notified());
            readable.as_mut().enable();
            if let Some(msg) = self.try_take()? {
                return Ok(msg);
            }
            readable.await;
        }
    }

    /// Disconnects cleanly: a clean session's state is discarded, a persistent one's kept.
    pub fn disconnect(self) {
        debug!(broker = %self.shared.address, client_id = %self.client_id, "client disconnecting");
    }

    /// Takes the next queued message, if any, and tells waiting publishers there is room.
    fn try_take(&self) -> Result<Option<Envelope>, MqttError> {
        let mut state = self.shared.lock();
        let session = self.live(&mut state)?;
        let msg = session.queue.pop_front();
        if msg.is_some() {
            session.room.notify_waiters();
        }
        Ok(msg)
    }

    /// This connection's session state, or why the connection is no longer live.
    fn live<'s>(&self, state: &'s mut State) -> Result<&'s mut Session, MqttError> {
        let lost = |reason: &str| MqttError::Disconnected {
            broker: self.shared.address.clone(),
            reason: reason.to_owned(),
        };
        if let Some(reason) = state.closed.get(&self.id) {
            return Err(lost(reason));
        }
        state
            .sessions
            .get_mut(&self.client_id)
            .filter(|session| session.connection.as_ref().is_some_and(|connection| connection.id == self.id))
            .ok_or_else(|| lost("session closed"))
    }
}

impl Drop for SimSession {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if state.closed.remove(&self.id).is_none() && self.live(&mut state).is_ok() {
            state.go_offline(&self.client_id, None);
            debug!(broker = %self.shared.address, client_id = %self.client_id, "client disconnected");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::time::{sleep, timeout};

    use super::*;

    const Q0: Qos = Qos::AtMostOnce;
    const Q1: Qos = Qos::AtLeastOnce;

    fn broker(queue_capacity: usize) -> SimBroker {
        SimBroker::new(SimBrokerConfig { queue_capacity, ..SimBrokerConfig::default() })
    }

    fn msg(topic: &str, payload: &str, qos: Qos) -> Envelope {
        Envelope::new(topic, payload.to_owned()).with_qos(qos)
    }

    fn lost(reason: &str) -> MqttError {
        MqttError::Disconnected { broker: "sim://MQTT_BROKER".to_owned(), reason: reason.to_owned() }
    }

    /// The next message as (topic, payload, qos, retain), or `None` if nothing comes within a virtual second.
    async fn next(session: &mut SimSession) -> Option<(String, String, Qos, bool)> {
        let msg = timeout(Duration::from_secs(1), session.recv()).await.ok()?.unwrap();
        Some((msg.topic, String::from_utf8(msg.payload.to_vec()).unwrap(), msg.qos, msg.retain))
    }

    fn got(topic: &str, payload: &str, qos: Qos, retain: bool) -> Option<(String, String, Qos, bool)> {
        Some((topic.to_owned(), payload.to_owned(), qos, retain))
    }

    #[tokio::test(start_paused = true)]
    async fn routes_by_wildcards_to_each_matching_session() {
        let broker = broker(16);
        assert_eq!(broker.address(), "sim://MQTT_BROKER");
        let mut plus = broker.connect("plus", true).unwrap();
        plus.subscribe("sensors/+/temp", Q0).unwrap();
        let mut hash = broker.connect("hash", true).unwrap();
        hash.subscribe("sensors/#", Q0).unwrap();
        let mut other = broker.connect("other", true).unwrap();
        other.subscribe("actuators/#", Q0).unwrap();
        let mut publisher = broker.connect("publisher", true).unwrap();

        publisher.publish(msg("sensors/s1/temp", "21", Q0)).await.unwrap();
        publisher.publish(msg("sensors/s1/humidity", "40", Q0)).await.unwrap();

        assert_eq!(next(&mut plus).await, got("sensors/s1/temp", "21", Q0, false));
        assert_eq!(next(&mut plus).await, None);
        assert_eq!(next(&mut hash).await, got("sensors/s1/temp", "21", Q0, false));
        assert_eq!(next(&mut hash).await, got("sensors/s1/humidity", "40", Q0, false));
        assert_eq!(next(&mut other).await, None);
        assert_eq!(next(&mut publisher).await, None);
        let stats = broker.stats();
        assert_eq!((stats.connected, stats.messages_received, stats.messages_routed), (4, 2, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn overlapping_filters_deliver_once_at_the_highest_qos_capped_by_the_publish() {
        let broker = broker(16);
        let mut both = broker.connect("both", true).unwrap();
        both.subscribe("a/+", Q0).unwrap();
        both.subscribe("a/#", Q1).unwrap();
        let mut low = broker.connect("low", true).unwrap();
        low.subscribe("a/b", Q0).unwrap();

        // `both` publishes and, being subscribed, receives its own message.
        both.publish(msg("a/b", "1", Q1)).await.unwrap();
        both.publish(msg("a/b", "2", Q0)).await.unwrap();

        assert_eq!(next(&mut both).await, got("a/b", "1", Q1, false));
        assert_eq!(next(&mut both).await, got("a/b", "2", Q0, false));
        assert_eq!(next(&mut both).await, None);
        assert_eq!(next(&mut low).await, got("a/b", "1", Q0, false), "QoS 1 publish downgraded to QoS 0");
        assert_eq!(next(&mut low).await, got("a/b", "2", Q0, false));

        both.unsubscribe("a/#").unwrap();
        both.unsubscribe("never/subscribed").unwrap();
        both.publish(msg("a/b", "3", Q1)).await.unwrap();
        assert_eq!(next(&mut both).await, got("a/b", "3", Q0, false), "only the QoS 0 subscription is left");
    }

    #[tokio::test(start_paused = true)]
    async fn retained_messages_are_stored_replaced_cleared_and_sent_on_subscribe() {
        let broker = broker(16);
        let mut watcher = broker.connect("watcher", true).unwrap();
        watcher.subscribe("status/#", Q1).unwrap();
        let mut publisher = broker.connect("publisher", true).unwrap();
        publisher.publish(msg("status/b", "off", Q0).with_retain(true)).await.unwrap();
        publisher.publish(msg("status/a", "on", Q1).with_retain(true)).await.unwrap();
        assert_eq!(broker.stats().retained, 2);
        assert_eq!(next(&mut watcher).await, got("status/b", "off", Q0, false), "retain cleared when routed");
        assert_eq!(next(&mut watcher).await, got("status/a", "on", Q1, false));

        let mut late = broker.connect("late", true).unwrap();
        late.subscribe("status/+", Q0).unwrap();
        assert_eq!(next(&mut late).await, got("status/a", "on", Q0, true), "in topic order, QoS capped");
        assert_eq!(next(&mut late).await, got("status/b", "off", Q0, true));
        assert_eq!(next(&mut late).await, None);

        publisher.publish(msg("status/a", "standby", Q1).with_retain(true)).await.unwrap();
        publisher.publish(msg("status/b", "", Q0).with_retain(true)).await.unwrap();
        assert_eq!(broker.stats().retained, 1);
        assert_eq!(next(&mut watcher).await, got("status/a", "standby", Q1, false));
        assert_eq!(next(&mut watcher).await, got("status/b", "", Q0, false), "a clearing publish is routed");

        let mut later = broker.connect("later", true).unwrap();
        later.subscribe("status/#", Q1).unwrap();
        assert_eq!(next(&mut later).await, got("status/a", "standby", Q1, true));
        assert_eq!(next(&mut later).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn connecting_with_a_connected_client_id_takes_the_session_over() {
        let broker = broker(16);
        let mut old = broker.connect("client", false).unwrap();
        old.subscribe("t", Q1).unwrap();
        let waiting = tokio::spawn(async move {
            let result = old.recv().await;
            (old, result)
        });
        sleep(Duration::from_millis(10)).await;

        let mut new = broker.connect("client", false).unwrap();
        let (mut old, result) = timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap();
        assert_eq!(result, Err(lost("session taken over")));
        assert_eq!(old.publish(msg("t", "x", Q0)).await, Err(lost("session taken over")));
        assert_eq!(old.subscribe("u", Q0), Err(lost("session taken over")));
        drop(old);
        assert_eq!(broker.stats().connected, 1, "dropping the old handle leaves the new connection alone");

        let mut publisher = broker.connect("publisher", true).unwrap();
        publisher.publish(msg("t", "kept", Q1)).await.unwrap();
        assert_eq!(
            next(&mut new).await,
            got("t", "kept", Q1, false),
            "the persistent subscription carried over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn persistent_sessions_queue_qos1_while_offline() {
        let broker = broker(3);
        let mut store = broker.connect("store", false).unwrap();
        store.subscribe("data/#", Q1).unwrap();
        drop(store); // abnormal disconnect: the session goes offline all the same
        assert_eq!(broker.stats().connected, 0);

        let mut publisher = broker.connect("publisher", true).unwrap();
        for (n, qos) in [("1", Q1), ("2", Q0), ("3", Q1), ("4", Q1), ("5", Q1)] {
            publisher.publish(msg(&format!("data/{n}"), n, qos)).await.unwrap();
        }
        let stats = broker.stats();
        assert_eq!((stats.queued_offline, stats.dropped_overflow, stats.dropped_offline), (4, 1, 1));

        let mut store = broker.connect("store", false).unwrap();
        for n in ["3", "4", "5"] {
            assert_eq!(next(&mut store).await, got(&format!("data/{n}"), n, Q1, false));
        }
        assert_eq!(next(&mut store).await, None);
        publisher.publish(msg("data/6", "6", Q1)).await.unwrap();
        assert_eq!(next(&mut store).await, got("data/6", "6", Q1, false), "subscriptions survived");

        // Unread QoS 1 messages survive a disconnect too; unread QoS 0 ones do not.
        publisher.publish(msg("data/7", "7", Q0)).await.unwrap();
        publisher.publish(msg("data/8", "8", Q1)).await.unwrap();
        store.disconnect();
        let mut store = broker.connect("store", false).unwrap();
        assert_eq!(next(&mut store).await, got("data/8", "8", Q1, false));
        assert_eq!(next(&mut store).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn clean_sessions_discard_state() {
        let broker = broker(16);
        let mut publisher = broker.connect("publisher", true).unwrap();

        let mut client = broker.connect("client", false).unwrap();
        client.subscribe("t", Q1).unwrap();
        client.disconnect();
        publisher.publish(msg("t", "queued", Q1)).await.unwrap();
        let mut client = broker.connect("client", true).unwrap();
        assert_eq!(next(&mut client).await, None, "a clean connect discards the queue");
        publisher.publish(msg("t", "unsubscribed", Q1)).await.unwrap();
        assert_eq!(next(&mut client).await, None, "and the subscriptions");

        client.subscribe("t", Q1).unwrap();
        client.disconnect();
        let mut client = broker.connect("client", false).unwrap();
        publisher.publish(msg("t", "after", Q1)).await.unwrap();
        assert_eq!(next(&mut client).await, None, "a clean session ends with its connection");
        assert_eq!(broker.stats().dropped_offline, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_the_broker_disconnects_everyone_and_keeps_persistent_state() {
        let broker = broker(16);
        let mut subscriber = broker.connect("subscriber", false).unwrap();
        subscriber.subscribe("t", Q1).unwrap();
        let mut publisher = broker.connect("publisher", true).unwrap();
        publisher.publish(msg("config", "v1", Q1).with_retain(true)).await.unwrap();
        let waiting = tokio::spawn(async move { subscriber.recv().await });
        sleep(Duration::from_millis(10)).await;

        broker.set_up(false);
        assert!(!broker.is_up());
        assert_eq!(
            timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap(),
            Err(lost("broker stopped"))
        );
        assert_eq!(broker.stats().connected, 0);
        assert_eq!(publisher.publish(msg("t", "x", Q1)).await, Err(lost("broker stopped")));
        let refused = broker.connect("publisher", true).map(|_| ());
        assert_eq!(
            refused,
            Err(MqttError::ConnectionRefused {
                broker: "sim://MQTT_BROKER".to_owned(),
                reason: "broker is down".to_owned()
            })
        );

        broker.set_up(true);
        assert!(broker.is_up());
        assert_eq!(publisher.publish(msg("t", "x", Q1)).await, Err(lost("broker stopped")), "must reconnect");
        let mut publisher = broker.connect("publisher", true).unwrap();
        publisher.publish(msg("t", "while away", Q1)).await.unwrap();
        let mut subscriber = broker.connect("subscriber", false).unwrap();
        assert_eq!(next(&mut subscriber).await, got("t", "while away", Q1, false));
        subscriber.subscribe("config", Q1).unwrap();
        assert_eq!(next(&mut subscriber).await, got("config", "v1", Q1, true), "retained survived");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_makes_the_publisher_wait_without_losing_or_reordering() {
        let broker = broker(2);
        let mut consumer = broker.connect("consumer", true).unwrap();
        consumer.subscribe("load", Q1).unwrap();
        let mut producer = broker.connect("producer", true).unwrap();
        let published = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&published);
        let producing = tokio::spawn(async move {
            for n in 0..10 {
                producer.publish(msg("load", &n.to_string(), Q1)).await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });

        sleep(Duration::from_secs(1)).await;
        assert_eq!(published.load(Ordering::SeqCst), 2, "the third publish waits for room");
        assert!(!producing.is_finished());

        for n in 0..10 {
            assert_eq!(next(&mut consumer).await, got("load", &n.to_string(), Q1, false));
        }
        timeout(Duration::from_secs(1), producing).await.unwrap().unwrap();
        assert_eq!(published.load(Ordering::SeqCst), 10);
        assert_eq!(broker.stats().messages_routed, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_publisher_is_released_when_its_target_leaves() {
        let broker = broker(1);
        let mut stalled = broker.connect("stalled", true).unwrap();
        stalled.subscribe("x", Q1).unwrap();
        let mut producer = broker.connect("producer", true).unwrap();
        let producing = tokio::spawn(async move {
            for n in 0..3 {
                producer.publish(msg("x", &n.to_string(), Q1)).await.unwrap();
            }
        });
        sleep(Duration::from_secs(1)).await;
        assert!(!producing.is_finished());

        drop(stalled);
        timeout(Duration::from_secs(1), producing).await.unwrap().unwrap();
        let stats = broker.stats();
        assert_eq!((stats.messages_received, stats.messages_routed, stats.dropped_offline), (3, 1, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_requests_are_rejected() {
        let broker = SimBroker::new(SimBrokerConfig { max_payload: 4, ..SimBrokerConfig::default() });
        let mut session = broker.connect("client", true).unwrap();
        assert!(matches!(
            session.publish(msg("a/+", "x", Q0)).await,
            Err(MqttError::InvalidTopic { topic, .. }) if topic == "a/+"
        ));
        assert!(matches!(
            session.subscribe("a/#/b", Q0),
            Err(MqttError::InvalidFilter { filter, .. }) if filter == "a/#/b"
        ));
        assert!(matches!(session.unsubscribe(""), Err(MqttError::InvalidFilter { .. })));
        assert_eq!(
            session.publish(msg("a", "12345", Q0)).await,
            Err(MqttError::PayloadTooLarge { size: 5, limit: 4 })
        );
        assert_eq!(session.publish(msg("a", "1234", Q0)).await, Ok(()));
        assert!(matches!(broker.connect("", true), Err(MqttError::ConnectionRefused { .. })));
        assert_eq!(broker.stats().messages_received, 1);
        assert_eq!(session.client_id(), "client");
    }

    /// Two producers and three consumers with tiny queues, so publishers wait and tasks interleave.
    async fn busy_scenario() -> Vec<String> {
        let broker = broker(2);
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, filter, qos) in
            [("all", "plant/#", Q1), ("temps", "plant/+/temp", Q0), ("line1", "plant/line1/+", Q1)]
        {
            let mut consumer = broker.connect(name, true).unwrap();
            consumer.subscribe(filter, qos).unwrap();
            let log = Arc::clone(&log);
            tasks.push(tokio::spawn(async move {
                while let Ok(Ok(m)) = timeout(Duration::from_secs(5), consumer.recv()).await {
                    let payload = String::from_utf8(m.payload.to_vec()).unwrap();
                    log.lock().unwrap().push(format!("{name} {} {payload} {:?}", m.topic, m.qos));
                    tokio::task::yield_now().await;
                }
            }));
        }
        for line in ["line1", "line2"] {
            let mut producer = broker.connect(&format!("{line}-producer"), true).unwrap();
            tasks.push(tokio::spawn(async move {
                for n in 0..20 {
                    let kind = if n % 2 == 0 { "temp" } else { "pressure" };
                    let qos = if n % 3 == 0 { Q0 } else { Q1 };
                    producer
                        .publish(msg(&format!("plant/{line}/{kind}"), &n.to_string(), qos))
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            timeout(Duration::from_secs(60), task).await.unwrap().unwrap();
        }
        Arc::try_unwrap(log).unwrap().into_inner().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_scenario_yields_the_same_sequence() {
        let first = busy_scenario().await;
        assert_eq!(first.len(), 40 + 20 + 20);
        let line1_for_all: Vec<&str> = first
            .iter()
            .filter(|entry| entry.starts_with("all plant/line1/"))
            .map(|entry| entry.split(' ').nth(2).unwrap())
            .collect();
        let expected: Vec<String> = (0..20).map(|n| n.to_string()).collect();
        assert_eq!(line1_for_all, expected, "each producer's messages arrive in order");
        assert_eq!(busy_scenario().await, first);
    }
}
