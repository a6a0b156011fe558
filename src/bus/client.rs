//! The client handles: [`Producer`], [`Consumer`] and [`Admin`], shaped like a Kafka client's.
//!
//! A producer appends to the leader of a partition and answers with the record's offset, subject to `acks`
//! and `min.insync.replicas`. A consumer either subscribes (joins its group and gets partitions from
//! rebalances) or is assigned partitions by hand; it keeps its own positions, as a Kafka client does, and
//! commits to its group. The admin client covers what `kafka-topics`, `kafka-configs`,
//! `kafka-reassign-partitions`, `kafka-consumer-groups` and chaostoolkit-kafka's probes need.

use std::collections::BTreeMap;
use std::pin::pin;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::debug;

use super::cluster::{TopicConfig, TopicDescription};
use super::error::BusError;
use super::group::{self, Committer, GroupDescription, PartitionLag};
use super::log::ConsumerRecord;
use super::{Bus, State};

/// How many replicas must have a record before a send succeeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: fire and forget; the offset is not reported.
    None,
    /// `acks=1`: the leader has it.
    Leader,
    /// `acks=all`: every in-sync replica has it, and the ISR has at least `min.insync.replicas` members
    /// (librdkafka's default, and what both reference producers use).
    #[default]
    All,
}

/// Settings of a [`Producer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerConfig {
    /// Acknowledgement level.
    pub acks: Acks,
}

/// Where a sent record went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// Topic.
    pub topic: String,
    /// Partition chosen (given, by key hash, or round-robin).
    pub partition: u32,
    /// Offset of the record; `None` with `acks=0`, as a Kafka client reports no offset then.
    pub offset: Option<u64>,
}

/// Sends records. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Producer {
    bus: Bus,
    client_id: String,
    acks: Acks,
}

impl Producer {
    pub(crate) fn new(bus: Bus, client_id: &str, config: ProducerConfig) -> Self {
        Producer { bus, client_id: client_id.to_owned(), acks: config.acks }
    }

    /// The client id given at creation.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Appends a record to `topic`: to `partition` if given, else by the default partitioner (see
    /// [`murmur2`](super::murmur2); keyless records go round-robin over partitions that have a leader).
    /// Completes at once: the embedded cluster acknowledges synchronously, and a refused write is not
    /// retried (the caller decides, as with a delivery report).
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<u32>,
        key: Option<Bytes>,
        value: Bytes,
        timestamp_ms: i64,
    ) -> Result<RecordMeta, BusError> {
        let mut st = self.bus.lock();
        if st.config.auto_create_topics && !st.cluster.topics.contains_key(topic) {
            let config = TopicConfig::new(st.config.default_partitions, 1);
            st.cluster.create_topic(topic, config)?;
            st.topic_changed(topic);
            self.bus.wake();
        }
        let default_max = st.config.retention_bytes;
        let t = st.cluster.topic_mut(topic)?;
        let partition = partition.unwrap_or_else(|| t.choose_partition(key.as_deref()));
        let min_insync = t.config.min_insync_replicas;
        // 0 keeps everything, for a topic as for the bus (Kafka's -1).
        let max_bytes = t.config.retention_bytes.or(default_max).filter(|&b| b > 0);
        let p = t.partition_mut(topic, partition)?;
        if p.leader.is_none() {
            return Err(BusError::LeaderNotAvailable { topic: topic.to_owned(), partition });
        }
        if self.acks == Acks::All && p.isr.len() < usize::from(min_insync) {
            let isr = p.isr.len();
            return Err(BusError::NotEnoughReplicas { topic: topic.to_owned(), partition, isr, min_insync });
        }
        let leader = p.leader;
        let offset = p.log.append(key, value, timestamp_ms, max_bytes);
        st.produced += 1;
        if let Some(leader) = leader {
            st.per_broker.entry(leader).or_default().records_produced += 1;
        }
        drop(st);
        self.bus.wake();
        let offset = (self.acks != Acks::None).then_some(offset);
        Ok(RecordMeta { topic: topic.to_owned(), partition, offset })
    }
}

/// Where a consumer starts when its group has no valid committed offset (`auto.offset.reset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset (what both reference consumers use).
    Earliest,
    /// The high watermark: only records produced from now on (Kafka's default).
    #[default]
    Latest,
}

/// Settings of a [`Consumer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Group it joins and commits to.
    pub group_id: String,
    /// Client id; member ids are `<client_id>-<sequence>`.
    pub client_id: String,
    /// Where to start without a valid committed offset.
    pub auto_offset_reset: OffsetReset,
}

impl ConsumerConfig {
    /// Group `group_id`, client `client_id`, `auto.offset.reset=latest`.
    pub fn new(group_id: &str, client_id: &str) -> Self {
        ConsumerConfig {
            group_id: group_id.to_owned(),
            client_id: client_id.to_owned(),
            auto_offset_reset: OffsetReset::Latest,
        }
    }

    /// The same with `auto.offset.reset=earliest`.
    pub fn earliest(self) -> Self {
        ConsumerConfig { auto_offset_reset: OffsetReset::Earliest, ..self }
    }
}

/// How a consumer takes its partitions: not yet, as a group member, or assigned by hand.
#[derive(Debug)]
enum Membership {
    Idle,
    /// Member of the group; `generation` is the last one this consumer saw (0: none yet).
    Subscribed {
        member_id: String,
        generation: u32,
    },
    Assigned,
}

/// Reads records and commits offsets. Dropping it without [`close`](Consumer::close) is a crash: its group
/// keeps it (and its partitions) until the session timeout passes.
#[derive(Debug)]
pub struct Consumer {
    bus: Bus,
    config: ConsumerConfig,
    mode: Membership,
    assignment: Vec<(String, u32)>,
    positions: BTreeMap<(String, u32), u64>,
    /// Index in `assignment` where the next fetch starts, rotated so that no partition starves.
    cursor: usize,
}

impl Consumer {
    pub(crate) fn new(bus: Bus, config: ConsumerConfig) -> Self {
        Consumer {
            bus,
            config,
            mode: Membership::Idle,
            assignment: Vec::new(),
            positions: BTreeMap::new(),
            cursor: 0,
        }
    }

    /// Joins the group for `topics`, or changes the subscription; either rebalances the group (subscribing
    /// again to the same topics does not). The new assignment arrives with the next [`poll`](Consumer::poll).
    /// A manual assignment is dropped.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<(), BusError> {
        if topics.is_empty() {
            return Err(BusError::NoSubscription { client_id: self.config.client_id.clone() });
        }
        let mut topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        topics.sort();
        topics.dedup();
        let mut st = self.bus.lock();
        let (member_id, generation) = match &self.mode {
            Membership::Subscribed { member_id, generation } => (member_id.clone(), *generation),
            Membership::Idle | Membership::Assigned => {
                st.members_joined += 1;
                (format!("{}-{:06}", self.config.client_id, st.members_joined), 0)
            }
        };
        let State { cluster, groups, .. } = &mut *st;
        let id = &self.config.group_id;
        let group = groups.entry(id.clone()).or_insert_with(|| group::Group::new(id));
        group.join(&member_id, &self.config.client_id, topics, cluster);
        drop(st);
        if generation == 0 {
            self.reset_positions(Vec::new());
        }
        self.mode = Membership::Subscribed { member_id, generation };
        self.bus.wake();
        Ok(())
    }

    /// Takes these partitions by hand, outside group management (leaving the group if subscribed). Positions
    /// start from the group's committed offsets; an empty list unassigns everything.
    pub fn assign(&mut self, partitions: &[(&str, u32)]) {
        self.unsubscribe();
        let mut list: Vec<(String, u32)> = partitions.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect();
        list.sort();
        list.dedup();
        self.mode = if list.is_empty() { Membership::Idle } else { Membership::Assigned };
        self.reset_positions(list);
    }

    /// Leaves the group now (a rebalance for the others) and forgets the assignment.
    pub fn unsubscribe(&mut self) {
        if let Membership::Subscribed { member_id, .. } = &self.mode {
            let mut st = self.bus.lock();
            let State { cluster, groups, .. } = &mut *st;
            if let Some(g) = groups.get_mut(&self.config.group_id) {
                g.leave(member_id, cluster);
            }
            drop(st);
            self.bus.wake();
        }
        self.mode = Membership::Idle;
        self.reset_positions(Vec::new());
    }

    /// Leaves the group cleanly and drops the consumer.
    pub fn close(mut self) {
        self.unsubscribe();
    }

    /// Up to `max` records (at least 1) from the assigned partitions that have a leader, waiting until there
    /// are some. Returns an empty batch when the group rebalanced and there is nothing to read yet: check
    /// [`assignment`](Consumer::assignment). After a rebalance, positions restart from the committed
    /// offsets; a position outside the log (below the log start after retention) gets `auto_offset_reset`.
    /// Cancel-safe: a poll dropped while waiting loses nothing.
    pub async fn poll(&mut self, max: usize) -> Result<Vec<ConsumerRecord>, BusError> {
        let bus = self.bus.clone();
        loop {
            let mut changed = pin!(bus.changed().notified());
            changed.as_mut().enable();
            let (records, rebalanced, expiry) = {
                let mut st = bus.lock();
                let rebalanced = self.sync(&st)?;
                let records = self.fetch(&mut st, max.max(1));
                let timeout = st.config.session_timeout;
                let expiry = st.groups.get(&self.config.group_id).and_then(|g| g.next_expiry(timeout));
                (records, rebalanced, expiry)
            };
            if !records.is_empty() || rebalanced {
                return Ok(records);
            }
            match expiry {
                Some(at) => tokio::select! {
                    biased;
                    _ = changed => {}
                    _ = tokio::time::sleep_until(at) => {}
                },
                None => changed.await,
            }
        }
    }

    /// Commits `next_offset` (the offset of the next record to read: last processed + 1) for a partition.
    /// Refused if the group rebalanced since this consumer's last poll, or, for a manual assignment, while
    /// the group has members.
    pub fn commit(&mut self, topic: &str, partition: u32, next_offset: u64) -> Result<(), BusError> {
        let mut st = self.bus.lock();
        st.cluster.partition(topic, partition)?;
        let who = match &self.mode {
            Membership::Subscribed { member_id, generation } => {
                Committer::Member { id: member_id, generation: *generation }
            }
            Membership::Idle | Membership::Assigned => {
                Committer::Standalone { client_id: &self.config.client_id }
            }
        };
        st.group_mut(&self.config.group_id).commit(who, topic, partition, next_offset)
    }

    /// The group's committed offset for a partition.
    pub fn committed(&self, topic: &str, partition: u32) -> Option<u64> {
        self.bus.lock().groups.get(&self.config.group_id).and_then(|g| g.committed(topic, partition))
    }

    /// Sets the next offset `poll` reads from an assigned partition.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: u64) -> Result<(), BusError> {
        self.check_assigned(topic, partition)?;
        self.positions.insert((topic.to_owned(), partition), offset);
        Ok(())
    }

    /// Rewinds a partition to the group's committed offset (or `auto_offset_reset` without one): the
    /// "seek back and retry" of the reference consumers.
    pub fn seek_to_committed(&mut self, topic: &str, partition: u32) -> Result<(), BusError> {
        self.check_assigned(topic, partition)?;
        self.positions.remove(&(topic.to_owned(), partition));
        Ok(())
    }

    /// The next offset `poll` reads from a partition, once known.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.positions.get(&(topic.to_owned(), partition)).copied()
    }

    /// Partitions owned, as of the last poll (subscribed) or as assigned.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.assignment.clone()
    }

    /// Member id in the group, while subscribed.
    pub fn member_id(&self) -> Option<&str> {
        match &self.mode {
            Membership::Subscribed { member_id, .. } => Some(member_id),
            Membership::Idle | Membership::Assigned => None,
        }
    }

    fn reset_positions(&mut self, assignment: Vec<(String, u32)>) {
        self.assignment = assignment;
        self.positions.clear();
        self.cursor = 0;
    }

    fn check_assigned(&self, topic: &str, partition: u32) -> Result<(), BusError> {
        if self.assignment.iter().any(|(t, p)| t == topic && *p == partition) {
            return Ok(());
        }
        let client_id = self.config.client_id.clone();
        Err(BusError::NotAssigned { client_id, topic: topic.to_owned(), partition })
    }

    /// Picks up a new generation's assignment (eager protocol: every position restarts from the committed
    /// offsets). Returns whether the group rebalanced since the last look.
    fn sync(&mut self, st: &State) -> Result<bool, BusError> {
        let (member_id, generation) = match &mut self.mode {
            Membership::Subscribed { member_id, generation } => (member_id, generation),
            Membership::Assigned => return Ok(false),
            Membership::Idle => {
                return Err(BusError::NoSubscription { client_id: self.config.client_id.clone() });
            }
        };
        let group = st.groups.get(&self.config.group_id);
        let Some((current, assigned)) = group.and_then(|g| Some((g.generation, g.assignment_of(member_id)?)))
        else {
            let group = self.config.group_id.clone();
            return Err(BusError::UnknownMember { group, member: member_id.clone() });
        };
        if *generation == current {
            return Ok(false);
        }
        *generation = current;
        debug!(member = %member_id, generation = current, assignment = ?assigned, "new assignment");
        self.reset_positions(assigned.to_vec());
        Ok(true)
    }

    /// Reads up to `max` records, starting at the rotating cursor; skips offline partitions.
    fn fetch(&mut self, st: &mut State, max: usize) -> Vec<ConsumerRecord> {
        let n = self.assignment.len();
        let mut out = Vec::new();
        let mut fetched_from = Vec::new();
        let group = st.groups.get(&self.config.group_id);
        for i in 0..n {
            let (topic, partition) = &self.assignment[(self.cursor + i) % n];
            let Ok(p) = st.cluster.online_partition(topic, *partition) else { continue };
            let (low, high) = (p.log.log_start(), p.log.high_watermark());
            let key = (topic.clone(), *partition);
            let known = self.positions.get(&key).copied().or_else(|| group?.committed(topic, *partition));
            let position = match known {
                Some(at) if (low..=high).contains(&at) => at,
                _ => {
                    let reset = self.config.auto_offset_reset;
                    debug!(topic = %topic, partition, from = ?known, ?reset, low, high, "offset reset");
                    if reset == OffsetReset::Earliest { low } else { high }
                }
            };
            let batch = p.log.read(topic, *partition, position, max - out.len());
            if let Some(leader) = p.leader
                && !batch.is_empty()
            {
                fetched_from.push((leader, batch.len() as u64));
            }
            self.positions.insert(key, position + batch.len() as u64);
            out.extend(batch);
            if out.len() >= max {
                break;
            }
        }
        self.cursor = (self.cursor + 1) % n.max(1);
        st.fetched += out.len() as u64;
        for (leader, n) in fetched_from {
            st.per_broker.entry(leader).or_default().records_fetched += n;
        }
        out
    }
}

impl Drop for Consumer {
    /// A consumer dropped while subscribed has crashed: it stops heartbeating but stays in the group.
    fn drop(&mut self) {
        if let Membership::Subscribed { member_id, .. } = &self.mode {
            if let Some(g) = self.bus.lock().groups.get_mut(&self.config.group_id) {
                g.mark_crashed(member_id, Instant::now());
            }
            self.bus.wake();
        }
    }
}

/// Cluster administration. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Admin {
    bus: Bus,
}

impl Admin {
    pub(crate) fn new(bus: Bus) -> Self {
        Admin { bus }
    }

    /// Creates a topic; fails if it exists or the configuration cannot work.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<(), BusError> {
        let mut st = self.bus.lock();
        st.cluster.create_topic(name, config)?;
        st.topic_changed(name);
        drop(st);
        self.bus.wake();
        Ok(())
    }

    /// Deletes a topic, its records and every group's committed offsets for it.
    pub fn delete_topic(&self, name: &str) -> Result<(), BusError> {
        let mut st = self.bus.lock();
        st.cluster.delete_topic(name)?;
        st.groups.values_mut().for_each(|g| g.forget_topic(name));
        st.topic_changed(name);
        drop(st);
        self.bus.wake();
        Ok(())
    }

    /// Partitions with leader, replicas, ISR and offsets, plus the configuration.
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription, BusError> {
        self.bus.lock().cluster.describe(name)
    }

    /// Topic names, sorted.
    pub fn list_topics(&self) -> Vec<String> {
        self.bus.lock().cluster.topics.keys().cloned().collect()
    }

    /// Sets `min.insync.replicas` (`kafka-configs --add-config`).
    pub fn alter_min_insync(&self, topic: &str, n: u16) -> Result<(), BusError> {
        if n == 0 {
            let reason = "min.insync.replicas must be ≥ 1".to_owned();
            return Err(BusError::InvalidTopicConfig { topic: topic.to_owned(), reason });
        }
        self.bus.lock().cluster.topic_mut(topic)?.config.min_insync_replicas = n;
        Ok(())
    }

    /// Moves partitions to new replica lists, one per partition (`kafka-reassign-partitions`).
    pub fn reassign_partitions(&self, topic: &str, replicas: Vec<Vec<u32>>) -> Result<(), BusError> {
        self.bus.lock().cluster.reassign(topic, replicas)?;
        self.bus.wake();
        Ok(())
    }

    /// Group ids, sorted.
    pub fn list_groups(&self) -> Vec<String> {
        self.bus.lock().groups.keys().cloned().collect()
    }

    /// State, generation, members with their assignments, committed offsets and lag.
    pub fn describe_group(&self, group: &str) -> Result<GroupDescription, BusError> {
        let st = self.bus.lock();
        let g = st.groups.get(group).ok_or_else(|| BusError::UnknownGroup { group: group.to_owned() })?;
        Ok(g.describe(&st.cluster))
    }

    /// Deletes a group and its offsets; refused while it has members (crashed ones included).
    pub fn delete_group(&self, group: &str) -> Result<(), BusError> {
        let mut st = self.bus.lock();
        let g = st.groups.get(group).ok_or_else(|| BusError::UnknownGroup { group: group.to_owned() })?;
        if g.member_count() > 0 {
            return Err(BusError::GroupNotEmpty { group: group.to_owned(), members: g.member_count() });
        }
        st.groups.remove(group);
        Ok(())
    }

    /// Lag of `group` on every partition of `topic`, as chaostoolkit-kafka's
    /// `check_consumer_lag_under_threshold` computes it (`high - committed`, or `high - low` without a
    /// commit; an unknown group has no commits). Fails on an offline partition, whose watermarks cannot be
    /// fetched.
    pub fn consumer_lag(&self, group: &str, topic: &str) -> Result<Vec<PartitionLag>, BusError> {
        let st = self.bus.lock();
        let count = st.cluster.topic(topic)?.partition_count();
        (0..count)
            .map(|p| {
                st.cluster.online_partition(topic, p)?;
                group::lag(st.groups.get(group), &st.cluster, topic, p)
            })
            .collect()
    }

    /// `(log start, high watermark)` of a partition (a consumer's `get_watermark_offsets`).
    pub fn offsets(&self, topic: &str, partition: u32) -> Result<(u64, u64), BusError> {
        let st = self.bus.lock();
        let log = &st.cluster.online_partition(topic, partition)?.log;
        Ok((log.log_start(), log.high_watermark()))
    }

    /// Up to `max` records from `from` on, outside any group (nothing is committed).
    pub fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<ConsumerRecord>, BusError> {
        let st = self.bus.lock();
        let log = &st.cluster.online_partition(topic, partition)?.log;
        let (low, high) = (log.log_start(), log.high_watermark());
        if !(low..=high).contains(&from) {
            let topic = topic.to_owned();
            return Err(BusError::OffsetOutOfRange { topic, partition, offset: from, low, high });
        }
        Ok(log.read(topic, partition, from, max))
    }

    /// Applies every topic's retention as of `now_ms` (the caller's clock, in epoch milliseconds like the
    /// record timestamps): records older than `now_ms - retention` are deleted from the head of each
    /// partition. Returns how many records were deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> u64 {
        let mut st = self.bus.lock();
        let mut deleted = 0;
        for (name, t) in &mut st.cluster.topics {
            let Some(retention) = t.config.retention else { continue };
            let cutoff = now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
            let n: u64 = t.partitions.iter_mut().map(|p| p.log.delete_older_than(cutoff)).sum();
            if n > 0 {
                debug!(topic = %name, deleted = n, cutoff, "retention");
            }
            deleted += n;
        }
        deleted
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::super::{BrokerStats, Bus, BusConfig, murmur2};
    use super::*;

    /// Polls until a non-empty batch arrives (a rebalance gives empty ones), failing after an hour of
    /// virtual time instead of hanging.
    pub(crate) async fn poll_for(c: &mut Consumer) -> Vec<ConsumerRecord> {
        let wait = async {
            loop {
                let got = c.poll(100).await.unwrap();
                if !got.is_empty() {
                    return got;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(3600), wait).await.unwrap()
    }

    /// `(partition, offset)` of each record.
    pub(crate) fn summary(records: &[ConsumerRecord]) -> Vec<(u32, u64)> {
        records.iter().map(|r| (r.partition, r.offset)).collect()
    }

    fn text(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test(start_paused = true)]
    async fn records_keep_their_order_within_a_partition() {
        let bus = Bus::new(BusConfig::default());
        bus.admin().create_topic("t", TopicConfig::new(2, 1)).unwrap();
        let producer = bus.producer("p", ProducerConfig::default());
        for i in 0..6u32 {
            let meta = producer.send("t", Some(i % 2), None, text(&format!("m{i}")), i.into()).await.unwrap();
            assert_eq!((meta.partition, meta.offset), (i % 2, Some(u64::from(i / 2))));
        }
        let mut c = bus.consumer(ConsumerConfig::new("g", "c").earliest());
        c.assign(&[("t", 1), ("t", 0)]);
        let got = poll_for(&mut c).await;
        assert_eq!(summary(&got), [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
        let p1: Vec<_> = got.iter().filter(|r| r.partition == 1).map(|r| r.value.clone()).collect();
        assert_eq!(p1, [text("m1"), text("m3"), text("m5")]);
        assert_eq!(got[1].timestamp_ms, 2);
        assert_eq!(bus.stats().records_fetched, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn each_broker_counts_what_it_served_as_leader() {
        let bus = Bus::new(BusConfig { brokers: 3, ..BusConfig::default() });
        bus.admin().create_topic("t", TopicConfig::new(1, 3)).unwrap();
        let leader = || bus.admin().describe_topic("t").unwrap().partitions[0].leader.unwrap();
        let first = leader();
        let producer = bus.producer("p", ProducerConfig::default());
        let mut c = bus.consumer(ConsumerConfig::new("g", "c").earliest());
        c.assign(&[("t", 0)]);
        for i in 0..4 {
            producer.send("t", None, None, text("v"), i).await.unwrap();
        }
        assert_eq!(poll_for(&mut c).await.len(), 4);
        bus.set_broker_up(first, false).unwrap();
        let second = leader();
        assert_ne!(first, second, "leadership moved");
        for i in 0..3 {
            producer.send("t", None, None, text("v"), i).await.unwrap();
        }
        assert_eq!(poll_for(&mut c).await.len(), 3);
        let served = |id| bus.broker_stats(id);
        assert_eq!(served(first), BrokerStats { records_produced: 4, records_fetched: 4 });
        assert_eq!(served(second), BrokerStats { records_produced: 3, records_fetched: 3 });
        let third = (1..=3).find(|id| ![first, second].contains(id)).unwrap();
        assert_eq!(served(third), BrokerStats::default(), "a follower serves nothing");
        let total = bus.stats();
        assert_eq!((total.records_produced, total.records_fetched), (7, 7));
    }

    #[tokio::test(start_paused = true)]
    async fn keys_hash_stably_and_keyless_records_go_round_robin_over_live_partitions() {
        let bus = Bus::new(BusConfig::default());
        bus.admin().create_topic("t", TopicConfig::new(3, 1)).unwrap();
        let producer = bus.producer("p", ProducerConfig { acks: Acks::None });
        let key = Some(text("pikachu"));
        let want = (murmur2(b"pikachu") & 0x7fff_ffff) % 3;
        for _ in 0..3 {
            let meta = producer.send("t", None, key.clone(), text("v"), 0).await.unwrap();
            assert_eq!((meta.partition, meta.offset), (want, None), "acks=0 reports no offset");
        }
        let mut spread = Vec::new();
        for _ in 0..4 {
            spread.push(producer.send("t", None, None, text("v"), 0).await.unwrap().partition);
        }
        bus.set_broker_up(2, false).unwrap(); // leads p1
        for _ in 0..4 {
            spread.push(producer.send("t", None, None, text("v"), 0).await.unwrap().partition);
        }
        assert_eq!(spread, [0, 1, 2, 0, 2, 0, 2, 0]);
    }

    #[tokio::test(start_paused = true)]
    async fn topics_are_auto_created_only_when_enabled() {
        let bus = Bus::new(BusConfig::default());
        let producer = bus.producer("p", ProducerConfig::default());
        producer.send("poke-orders-state", None, None, text("v"), 0).await.unwrap();
        let d = bus.admin().describe_topic("poke-orders-state").unwrap();
        assert_eq!((d.partitions.len(), d.partitions[0].replicas.len()), (1, 1));
        let err = producer.send("poke-orders-state", Some(5), None, text("v"), 0).await.unwrap_err();
        assert!(matches!(err, BusError::UnknownPartition { partition: 5, partitions: 1, .. }));

        let strict = Bus::new(BusConfig { auto_create_topics: false, ..BusConfig::default() });
        let producer = strict.producer("p", ProducerConfig::default());
        let err = producer.send("x", None, None, text("v"), 0).await.unwrap_err();
        assert_eq!(err, BusError::UnknownTopic { topic: "x".into() });
    }

    #[tokio::test(start_paused = true)]
    async fn poll_waits_for_the_next_record() {
        let bus = Bus::new(BusConfig::default());
        bus.admin().create_topic("t", TopicConfig::new(1, 1)).unwrap();
        let mut c = bus.consumer(ConsumerConfig::new("g", "c"));
        c.subscribe(&["t"]).unwrap();
        assert!(c.poll(10).await.unwrap().is_empty(), "the first poll only brings the assignment");
        let producer = bus.producer("p", ProducerConfig::default());
        let start = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            producer.send("t", None, None, text("late"), 5000).await.unwrap();
        });
        let got = poll_for(&mut c).await;
        assert_eq!((got[0].value.clone(), start.elapsed()), (text("late"), Duration::from_secs(5)));
    }

    /// Detective Pikachu's loop on a poison pill: on a processing error it seeks back to the committed
    /// offset, so the same record comes back forever and the partition's lag grows.
    #[tokio::test(start_paused = true)]
    async fn seeking_back_to_the_committed_offset_rereads_the_same_record() {
        let bus = Bus::new(BusConfig::default());
        bus.admin().create_topic("poke-orders", TopicConfig::new(3, 1)).unwrap();
        let producer = bus.producer("chaostoolkit", ProducerConfig::default());
        for value in ["{\"id\": 1}", "{\"id\": 2", "{\"id\": 3}"] {
            producer.send("poke-orders", Some(1), None, text(value), 0).await.unwrap();
        }
        let mut c = bus.consumer(ConsumerConfig::new("poke-order-consumer", "pikachu").earliest());
        c.subscribe(&["poke-orders"]).unwrap();
        let mut seen = Vec::new();
        while seen.len() < 5 {
            for r in c.poll(1).await.unwrap() {
                seen.push(r.offset);
                if r.value.ends_with(b"}") {
                    c.commit(&r.topic, r.partition, r.offset + 1).unwrap();
                } else {
                    c.seek_to_committed(&r.topic, r.partition).unwrap();
                }
            }
        }
        assert_eq!(seen, [0, 1, 1, 1, 1]);
        assert_eq!(c.committed("poke-orders", 1), Some(1));
        let lag = bus.admin().consumer_lag("poke-order-consumer", "poke-orders").unwrap();
        assert_eq!(lag[1].lag, 2);
        c.seek("poke-orders", 1, 2).unwrap(); // skip the pill by hand
        assert_eq!(summary(&c.poll(10).await.unwrap()), [(1, 2)]);
        assert!(matches!(c.seek("other", 0, 0), Err(BusError::NotAssigned { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn admin_reads_from_an_offset_without_a_group() {
        let bus = Bus::new(BusConfig::default());
        bus.admin().create_topic("t", TopicConfig::new(1, 1)).unwrap();
        let producer = bus.producer("p", ProducerConfig::default());
        for i in 0..4 {
            producer.send("t", None, Some(text("k")), text(&i.to_string()), 0).await.unwrap();
        }
        let admin = bus.admin();
        let got = admin.read("t", 0, 1, 2).unwrap();
        assert_eq!(
            got.iter().map(|r| (r.offset, r.value.clone())).collect::<Vec<_>>(),
            [(1, text("1")), (2, text("2"))]
        );
        assert_eq!(got[0].key, Some(text("k")));
        assert_eq!(admin.offsets("t", 0).unwrap(), (0, 4));
        assert!(admin.read("t", 0, 4, 1).unwrap().is_empty());
        assert!(matches!(admin.read("t", 0, 5, 1), Err(BusError::OffsetOutOfRange { low: 0, high: 4, .. })));
        assert!(admin.list_groups().is_empty(), "reading joins no group");
    }

    #[tokio::test(start_paused = true)]
    async fn retention_moves_the_log_start_and_consumers_below_it_are_reset() {
        let bus = Bus::new(BusConfig::default());
        let admin = bus.admin();
        admin.create_topic("t", TopicConfig::new(1, 1).retention(Duration::from_secs(60))).unwrap();
        let producer = bus.producer("p", ProducerConfig::default());
        for ts in [0, 10_000, 70_000] {
            producer.send("t", None, None, text("v"), ts).await.unwrap();
        }
        let mut early = bus.consumer(ConsumerConfig::new("early", "e").earliest());
        early.assign(&[("t", 0)]);
        early.commit("t", 0, 0).unwrap();
        assert_eq!(admin.enforce_retention(100_000), 2, "cutoff 40 s: the first two records go");
        assert_eq!(admin.offsets("t", 0).unwrap(), (2, 3));
        assert_eq!(summary(&poll_for(&mut early).await), [(0, 2)], "committed 0 < log start: earliest");

        let mut late = bus.consumer(ConsumerConfig::new("late", "l"));
        late.assign(&[("t", 0)]);
        assert!(tokio::time::timeout(Duration::from_secs(1), late.poll(10)).await.is_err());
        assert_eq!(late.position("t", 0), Some(3), "latest: the high watermark");
    }

    #[tokio::test(start_paused = true)]
    async fn size_retention_bounds_every_partition_and_a_topic_may_set_its_own() {
        let bus = Bus::new(BusConfig { retention_bytes: Some(1_000), ..BusConfig::default() });
        let admin = bus.admin();
        admin.create_topic("own", TopicConfig::new(1, 1).retention_bytes(10_000)).unwrap();
        let producer = bus.producer("p", ProducerConfig::default());
        for i in 0..200 {
            // Auto-created topics take the bus's limit: 36 + 64 bytes a record, ten records.
            producer.send("auto", None, None, text(&format!("{i:036}")), i).await.unwrap();
            producer.send("own", None, None, text(&format!("{i:036}")), i).await.unwrap();
        }
        assert_eq!(admin.offsets("auto", 0).unwrap(), (190, 200));
        assert_eq!(admin.offsets("own", 0).unwrap(), (100, 200));
        let mut early = bus.consumer(ConsumerConfig::new("c", "g").earliest());
        early.assign(&[("auto", 0)]);
        let got = poll_for(&mut early).await;
        assert_eq!(got.first().map(|r| r.offset), Some(190), "a new consumer starts at the log start");
    }

    #[tokio::test(start_paused = true)]
    async fn a_topic_with_retention_bytes_0_keeps_everything_under_a_bounded_bus() {
        let bus = Bus::new(BusConfig { retention_bytes: Some(1_000), ..BusConfig::default() });
        let admin = bus.admin();
        admin.create_topic("all", TopicConfig::new(1, 1).retention_bytes(0)).unwrap();
        let producer = bus.producer("p", ProducerConfig::default());
        for i in 0..200 {
            producer.send("all", None, None, text(&format!("{i:036}")), i).await.unwrap();
        }
        assert_eq!(admin.offsets("all", 0).unwrap(), (0, 200));
    }

    #[tokio::test(start_paused = true)]
    async fn admin_manages_topics_and_groups() {
        let bus = Bus::new(BusConfig::default());
        let admin = bus.admin();
        admin.create_topic("poke-orders", TopicConfig::new(3, 1)).unwrap();
        admin.create_topic("poke-orders-state", TopicConfig::new(3, 3).min_insync(2)).unwrap();
        assert_eq!(admin.list_topics(), ["poke-orders", "poke-orders-state"]);
        let mut c = bus.consumer(ConsumerConfig::new("order-updater", "u"));
        c.subscribe(&["poke-orders-state"]).unwrap();
        c.poll(1).await.unwrap();
        c.commit("poke-orders-state", 0, 0).unwrap();
        let err = admin.delete_group("order-updater").unwrap_err();
        assert_eq!(err, BusError::GroupNotEmpty { group: "order-updater".into(), members: 1 });
        // Deleting the topic rebalances the group to nothing and drops its offsets.
        admin.delete_topic("poke-orders-state").unwrap();
        assert!(c.poll(1).await.unwrap().is_empty());
        assert!(c.assignment().is_empty());
        assert!(admin.describe_group("order-updater").unwrap().offsets.is_empty());
        assert!(matches!(admin.describe_topic("poke-orders-state"), Err(BusError::UnknownTopic { .. })));
        c.close();
        admin.delete_group("order-updater").unwrap();
        assert!(matches!(admin.delete_group("order-updater"), Err(BusError::UnknownGroup { .. })));
        let stats = bus.stats();
        assert_eq!((stats.topics, stats.partitions, stats.groups, stats.members), (1, 3, 0, 0));
    }

    /// One scenario with groups, a broker failure and a rebalance, traced as text.
    async fn scenario() -> Vec<String> {
        let bus = Bus::new(BusConfig::default());
        bus.admin().create_topic("t", TopicConfig::new(3, 2).min_insync(2)).unwrap();
        let producer = bus.producer("p", ProducerConfig::default());
        let mut trace = Vec::new();
        let mut a = bus.consumer(ConsumerConfig::new("g", "a").earliest());
        let mut b = bus.consumer(ConsumerConfig::new("g", "b").earliest());
        a.subscribe(&["t"]).unwrap();
        b.subscribe(&["t"]).unwrap();
        for i in 0..12 {
            if i == 6 {
                bus.set_broker_up(3, false).unwrap();
            }
            let key = (i % 4 == 0).then(|| text(&format!("k{i}")));
            trace.push(format!("{:?}", producer.send("t", None, key, text("v"), i).await));
        }
        for c in [&mut a, &mut b] {
            let got = c.poll(100).await.unwrap();
            trace.push(format!("{:?} {:?}", c.member_id(), summary(&got)));
        }
        drop(b);
        trace.push(format!("{:?}", summary(&poll_for(&mut a).await)));
        trace.push(format!("{:?}", bus.admin().describe_group("g").unwrap()));
        trace.push(format!("{:?} {:?}", bus.brokers(), bus.stats()));
        trace
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_calls_give_the_same_results() {
        let first = scenario().await;
        let second = scenario().await;
        assert_eq!(first, second);
        assert!(
            first.iter().any(|l| l.contains("NotEnoughReplicas")),
            "the broker failure shows: {first:#?}"
        );
    }
}
