//! An embedded message bus with Kafka semantics, for the Poké-order services in live and sim mode.
//!
//! The reference site talks through a 3-broker Kafka cluster, and its chaos experiments are about Kafka
//! itself: a broker reboot that takes RF-1 partitions offline, `acks=all` against `min.insync.replicas`, a
//! poison pill that stalls one partition of a consumer group, consumer lag. This module reproduces those
//! semantics in-process so that the experiments behave as they would against the real cluster:
//! - [`cluster`]: brokers, replica placement, ISR, clean leader election, offline partitions;
//! - [`log`]: per-partition logs with offsets, high watermark, log start and retention, their newest
//!   records in memory and, with a [`SpillConfig`], the rest in [`segment`] files;
//! - [`group`]: consumer groups with generations, range assignment, rebalances on join, leave
//!   and session timeout, committed offsets and lag;
//! - [`client`]: the [`Producer`], [`Consumer`] and [`Admin`] handles, shaped like a Kafka
//!   client's so that an rdkafka-backed implementation can mirror them;
//! - [`error`], home of [`BusError`].
//!
//! Determinism: state lives in `BTreeMap`s and `Vec`s behind one `std::sync::Mutex` that is never held
//! across an `.await`; the only clock is `tokio::time` (session timeouts) and the producers' record
//! timestamps (retention). The same calls in the same virtual time give the same offsets, assignments and
//! errors. Waiting consumers sleep on a `tokio::sync::Notify` that every change wakes.
//!
//! Simplified on purpose: replication and rebalances are instantaneous; leadership does not move back to the
//! preferred replica by itself; a live consumer handle heartbeats forever (no `max.poll.interval.ms`);
//! retention deletes single records from the in-memory tail (whole segments only on disk); there are no
//! transactions or idempotent producers.

pub mod backend;
pub mod client;
pub mod cluster;
pub mod error;
pub mod group;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod kafka_cluster;
pub mod log;
pub mod segment;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub use client::{Acks, Admin, Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, RecordMeta};
pub use cluster::{BrokerInfo, PartitionInfo, TopicConfig, TopicDescription, murmur2};
pub use error::BusError;
pub use group::{GroupDescription, GroupState, MemberDescription, PartitionLag};
pub use log::{ConsumerRecord, SpillConfig};

use cluster::Cluster;
use group::Group;

/// Settings of a [`Bus`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Number of brokers, ids `1..=brokers` (0 is taken as 1).
    pub brokers: u32,
    /// Producing to an unknown topic creates it with `default_partitions` partitions and RF 1 (the compose
    /// setup's `KAFKA_AUTO_CREATE_TOPICS_ENABLE`); otherwise it fails with `UnknownTopic`.
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic (0 is taken as 1).
    pub default_partitions: u32,
    /// How long a crashed consumer stays in its group before the group rebalances without it.
    pub session_timeout: Duration,
    /// `log.retention.bytes`: most bytes a partition of a topic without its own `retention.bytes` keeps;
    /// `None` keeps everything.
    pub retention_bytes: Option<u64>,
    /// Where the logs go past their in-memory tail; `None` keeps them wholly in memory (then
    /// `retention_bytes` is what bounds the bus's memory).
    pub spill: Option<SpillConfig>,
}

/// The embedded bus's default `log.retention.bytes` per partition: room for the backlog the process-mining
/// study builds under a pod failure at full rate (a quarter of a million events over three partitions),
/// so retention bounds the log (in memory, or on disk with a [`SpillConfig`]) without cutting a lagging
/// consumer off.
pub const DEFAULT_RETENTION_BYTES: u64 = 64 << 20;

impl Default for BusConfig {
    /// Three brokers (the MSK setup), auto-creation with 1 partition, Kafka's 45 s session timeout,
    /// [`DEFAULT_RETENTION_BYTES`] per partition.
    fn default() -> Self {
        BusConfig {
            brokers: 3,
            auto_create_topics: true,
            default_partitions: 1,
            session_timeout: Duration::from_secs(45),
            retention_bytes: Some(DEFAULT_RETENTION_BYTES),
            spill: None,
        }
    }
}

/// What one broker of a [`Bus`] served: records appended to and read from the partitions it leads (as a
/// Kafka broker's `MessagesInPerSec` counts only what it appends as leader).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BrokerStats {
    /// Records appended to partitions this broker led at the time.
    pub records_produced: u64,
    /// Records handed to consumers from partitions this broker led at the time.
    pub records_fetched: u64,
}

/// Counters and gauges of a [`Bus`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BusStats {
    /// Topics.
    pub topics: usize,
    /// Partitions of all topics.
    pub partitions: usize,
    /// Partitions without a leader.
    pub offline_partitions: usize,
    /// Partitions whose ISR is smaller than their replica list.
    pub under_replicated_partitions: usize,
    /// Records appended since the bus was created.
    pub records_produced: u64,
    /// Records handed to consumers by `poll` since the bus was created.
    pub records_fetched: u64,
    /// Consumer groups.
    pub groups: usize,
    /// Members of all groups.
    pub members: usize,
    /// Rebalances of all groups.
    pub rebalances: u64,
    /// Bytes of records the partition logs hold in memory.
    pub log_memory_bytes: u64,
    /// Bytes of the partition logs' segment files.
    pub log_disk_bytes: u64,
}

/// The whole bus state, behind the mutex of [`Bus`].
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: BusConfig,
    pub(crate) cluster: Cluster,
    pub(crate) groups: BTreeMap<String, Group>,
    /// Sequence for member ids.
    pub(crate) members_joined: u64,
    pub(crate) produced: u64,
    pub(crate) fetched: u64,
    /// What each broker served as leader, by broker id.
    pub(crate) per_broker: BTreeMap<u32, BrokerStats>,
}

impl State {
    /// The group, created empty if new (Kafka creates groups on first join or commit).
    pub(crate) fn group_mut(&mut self, id: &str) -> &mut Group {
        self.groups.entry(id.to_owned()).or_insert_with(|| Group::new(id))
    }

    /// Rebalances the groups subscribed to a topic that appeared or disappeared.
    pub(crate) fn topic_changed(&mut self, topic: &str) {
        for g in self.groups.values_mut().filter(|g| g.subscribes_to(topic)) {
            g.rebalance(&self.cluster, "topic metadata changed");
        }
    }

    /// Expels timed-out members everywhere; returns whether any group rebalanced.
    fn expire(&mut self, now: Instant) -> bool {
        let timeout = self.config.session_timeout;
        self.groups.values_mut().fold(false, |any, g| g.expire(now, timeout, &self.cluster) | any)
    }
}

/// A handle on the bus; cheap to clone, all clones share one cluster.
#[derive(Clone, Debug)]
pub struct Bus {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

impl Bus {
    /// A cluster of `config.brokers` running brokers with no topics.
    pub fn new(mut config: BusConfig) -> Bus {
        config.brokers = config.brokers.max(1);
        config.default_partitions = config.default_partitions.max(1);
        let state = State {
            cluster: Cluster::new(config.brokers, config.spill.clone()),
            config,
            groups: BTreeMap::new(),
            members_joined: 0,
            produced: 0,
            fetched: 0,
            per_broker: BTreeMap::new(),
        };
        Bus { shared: Arc::new(Shared { state: Mutex::new(state), changed: Notify::new() }) }
    }

    /// A producer that identifies itself as `client_id`.
    pub fn producer(&self, client_id: &str, config: ProducerConfig) -> Producer {
        Producer::new(self.clone(), client_id, config)
    }

    /// A consumer; it joins its group on [`Consumer::subscribe`].
    pub fn consumer(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.clone(), config)
    }

    /// The admin client.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// Says the run is stopping: the brokers' shutdown that follows is logged as such, not as outages.
    pub fn closing(&self) {
        self.lock().cluster.closing = true;
    }

    /// What broker `id` has served as leader since the bus was created (zeros for an unknown id).
    pub fn broker_stats(&self, id: u32) -> BrokerStats {
        self.lock().per_broker.get(&id).copied().unwrap_or_default()
    }

    /// Stops or starts a broker (a crash or a reboot): ISRs shrink or grow and leaders move.
    pub fn set_broker_up(&self, id: u32, up: bool) -> Result<(), BusError> {
        let changed = self.lock().cluster.set_broker_up(id, up)?;
        if changed {
            self.wake();
        }
        Ok(())
    }

    /// All brokers, by id.
    pub fn brokers(&self) -> Vec<BrokerInfo> {
        self.lock().cluster.brokers()
    }

    /// Counters and gauges now.
    pub fn stats(&self) -> BusStats {
        let st = self.lock();
        let parts: Vec<_> = st.cluster.all_partitions().collect();
        BusStats {
            topics: st.cluster.topics.len(),
            partitions: parts.len(),
            offline_partitions: parts.iter().filter(|p| p.leader.is_none()).count(),
            under_replicated_partitions: parts.iter().filter(|p| p.isr.len() < p.replicas.len()).count(),
            records_produced: st.produced,
            records_fetched: st.fetched,
            groups: st.groups.len(),
            members: st.groups.values().map(Group::member_count).sum(),
            rebalances: st.groups.values().map(Group::rebalances).sum(),
            log_memory_bytes: parts.iter().map(|p| p.log.memory_bytes()).sum(),
            log_disk_bytes: parts.iter().map(|p| p.log.disk_bytes()).sum(),
        }
    }

    /// Locks the state, first expelling group members whose session timed out (so every observer sees
    /// expiries that are due, without a background task).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        let mut st = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.expire(Instant::now()) {
            self.wake();
        }
        st
    }

    /// Wakes every waiting consumer to look at the state again.
    pub(crate) fn wake(&self) {
        self.shared.changed.notify_waiters();
    }

    /// The notifier that [`Bus::wake`] triggers.
    pub(crate) fn changed(&self) -> &Notify {
        &self.shared.changed
    }
}
