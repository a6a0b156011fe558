//! Brokers, topics and partitions: replica placement, the in-sync replica set (ISR) and leader election.
//!
//! Each partition has a replica list (its brokers, the first one *preferred*), an ISR and at most one
//! leader. The rules, which are Kafka's with `unclean.leader.election.enable=false`:
//! - A broker going down leaves the ISR of its partitions, except that the **last** in-sync replica stays
//!   listed: it alone holds every committed record, so only it may lead again.
//! - A partition whose leader went down elects the first replica (in replica order) that is in the ISR and
//!   up. If there is none the partition is **offline**: no leader, produce fails, consumers cannot fetch.
//! - A broker coming back catches up instantly and rejoins the ISR of every partition that has a leader; an
//!   offline partition comes back only when a broker of its ISR returns.
//!
//! Replicas share one partition log: with instant catch-up and clean elections only, every in-sync
//! replica holds the same records, so storing them once changes nothing observable.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{info, warn};

use super::error::BusError;
use super::log::{PartitionLog, SpillConfig};

/// Settings of one topic, as `kafka-topics --create` and `kafka-configs` set them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TopicConfig {
    /// Number of partitions (at least 1).
    pub partitions: u32,
    /// Replicas per partition (at least 1, at most the number of live brokers for the default placement).
    pub replication_factor: u16,
    /// `min.insync.replicas`: the ISR size an `acks=all` write needs.
    pub min_insync_replicas: u16,
    /// `retention.ms`: records older than this are deleted by [`Admin::enforce_retention`]. `None` keeps
    /// everything (the reference topics set no retention).
    ///
    /// [`Admin::enforce_retention`]: super::Admin::enforce_retention
    pub retention: Option<Duration>,
    /// `retention.bytes`: most bytes a partition keeps (records deleted from the head on append); `None`
    /// takes the bus's [`BusConfig::retention_bytes`](super::BusConfig::retention_bytes), 0 keeps
    /// everything.
    pub retention_bytes: Option<u64>,
    /// Replica list per partition (`--replica-assignment`); `None` spreads them round-robin over the live
    /// brokers. In a [`TopicDescription`] this always holds the current lists.
    pub replica_assignment: Option<Vec<Vec<u32>>>,
}

impl TopicConfig {
    /// `partitions` partitions with `replication_factor` replicas each, `min.insync.replicas=1`, no
    /// retention, default placement.
    pub fn new(partitions: u32, replication_factor: u16) -> Self {
        TopicConfig {
            partitions,
            replication_factor,
            min_insync_replicas: 1,
            retention: None,
            retention_bytes: None,
            replica_assignment: None,
        }
    }

    /// The same with `min.insync.replicas = n`.
    pub fn min_insync(self, n: u16) -> Self {
        TopicConfig { min_insync_replicas: n, ..self }
    }

    /// The same with a retention time.
    pub fn retention(self, retention: Duration) -> Self {
        TopicConfig { retention: Some(retention), ..self }
    }

    /// The same with a size limit per partition.
    pub fn retention_bytes(self, bytes: u64) -> Self {
        TopicConfig { retention_bytes: Some(bytes), ..self }
    }

    /// The same with explicit replica lists, one per partition.
    pub fn assignment(self, replicas: Vec<Vec<u32>>) -> Self {
        TopicConfig { replica_assignment: Some(replicas), ..self }
    }
}

/// One partition as `kafka-topics --describe` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PartitionInfo {
    /// Partition id.
    pub id: u32,
    /// Leading broker; `None` when the partition is offline (Kafka prints -1 or `none`).
    pub leader: Option<u32>,
    /// Replica brokers, preferred leader first.
    pub replicas: Vec<u32>,
    /// In-sync replicas, in replica order.
    pub isr: Vec<u32>,
    /// First offset still stored.
    pub log_start: u64,
    /// Offset the next record will get.
    pub high_watermark: u64,
}

impl PartitionInfo {
    /// The leader as Kafka's metadata reports it: the broker id, or -1 when there is none.
    pub fn leader_id(&self) -> i64 {
        self.leader.map_or(-1, i64::from)
    }

    /// No leader or an empty ISR (the test of chaostoolkit-kafka's `topic_has_no_offline_partitions`).
    pub fn is_offline(&self) -> bool {
        self.leader.is_none() || self.isr.is_empty()
    }

    /// Fewer in-sync replicas than replicas.
    pub fn is_under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

/// A topic as `Admin::describe_topic` reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Its partitions, by id.
    pub partitions: Vec<PartitionInfo>,
    /// Its configuration (with the current replica lists).
    pub config: TopicConfig,
}

impl TopicDescription {
    /// ISR equals the replica list for every partition (chaostoolkit-kafka's `all_replicas_in_sync`).
    pub fn all_replicas_in_sync(&self) -> bool {
        self.partitions.iter().all(|p| p.isr == p.replicas)
    }

    /// Some partition is offline (the negation of `topic_has_no_offline_partitions`).
    pub fn has_offline_partitions(&self) -> bool {
        self.partitions.iter().any(PartitionInfo::is_offline)
    }
}

/// One broker of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BrokerInfo {
    /// Broker id (1..=n).
    pub id: u32,
    /// Whether it is running.
    pub up: bool,
    /// Partitions it leads now.
    pub leader_for: usize,
    /// Partitions it is a replica of.
    pub replica_for: usize,
}

/// Kafka's murmur2 hash (the Java client's `Utils.murmur2`), which its default partitioner applies to keys.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    // The length is mixed in modulo 2^32, as Java's int arithmetic does.
    let mut h = 0x9747_b28c ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        let mut k = u32::from_le_bytes([w[0], w[1], w[2], w[3]]).wrapping_mul(M);
        k ^= k >> 24;
        h = h.wrapping_mul(M) ^ k.wrapping_mul(M);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// A partition: replicas, ISR, leader and the log they share.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) replicas: Vec<u32>,
    pub(crate) isr: Vec<u32>,
    pub(crate) leader: Option<u32>,
    pub(crate) log: PartitionLog,
}

impl Partition {
    fn new(replicas: Vec<u32>, brokers: &BTreeMap<u32, bool>, log: PartitionLog) -> Self {
        let mut p = Partition { replicas, isr: Vec::new(), leader: None, log };
        p.settle(brokers);
        p
    }

    /// Elects a leader if there is none and a clean choice exists, then lets every live replica catch up.
    fn settle(&mut self, brokers: &BTreeMap<u32, bool>) {
        let up = |b: &u32| brokers.get(b).copied().unwrap_or(false);
        if self.leader.is_none() {
            self.leader = if self.isr.is_empty() {
                // A partition that never had a leader holds no data: any live replica may start it.
                self.replicas.iter().copied().find(up)
            } else {
                self.replicas.iter().copied().find(|b| self.isr.contains(b) && up(b))
            };
        }
        if self.leader.is_some() {
            self.isr = self.replicas.iter().copied().filter(up).collect();
        }
    }

    fn broker_down(&mut self, broker: u32, brokers: &BTreeMap<u32, bool>) {
        if self.leader == Some(broker) {
            self.leader = None;
        }
        if self.isr.len() > 1 {
            self.isr.retain(|&b| b != broker);
        }
        self.settle(brokers);
    }

    pub(crate) fn info(&self, id: u32) -> PartitionInfo {
        PartitionInfo {
            id,
            leader: self.leader,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            log_start: self.log.log_start(),
            high_watermark: self.log.high_watermark(),
        }
    }
}

/// A topic: its configuration, partitions and the keyless round-robin cursor.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) config: TopicConfig,
    pub(crate) partitions: Vec<Partition>,
    next_round_robin: u32,
}

impl Topic {
    pub(crate) fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// Partition `id` of this topic (named `topic` in the error).
    pub(crate) fn partition_mut(&mut self, topic: &str, id: u32) -> Result<&mut Partition, BusError> {
        let partitions = self.partition_count();
        self.partitions.get_mut(id as usize).ok_or_else(|| BusError::UnknownPartition {
            topic: topic.to_owned(),
            partition: id,
            partitions,
        })
    }

    /// The default partitioner: a key goes to `murmur2(key) mod n` (positive part, as Kafka does); no key
    /// goes round-robin over the partitions that have a leader, like Kafka's partitioners use only the
    /// available partitions (if none is, the next one in turn, and the write fails).
    pub(crate) fn choose_partition(&mut self, key: Option<&[u8]>) -> u32 {
        let n = self.partition_count();
        if let Some(key) = key {
            return (murmur2(key) & 0x7fff_ffff) % n;
        }
        let start = self.next_round_robin % n;
        let pick = (0..n)
            .map(|i| (start + i) % n)
            .find(|&p| self.partitions[p as usize].leader.is_some())
            .unwrap_or(start);
        self.next_round_robin = (pick + 1) % n;
        pick
    }
}

/// All brokers and topics.
#[derive(Debug)]
pub(crate) struct Cluster {
    brokers: BTreeMap<u32, bool>,
    pub(crate) topics: BTreeMap<String, Topic>,
    /// The run is stopping: brokers going down is the shutdown, not news worth a warning.
    pub(crate) closing: bool,
    /// Where partition logs spill to disk.
    spill: Option<SpillConfig>,
}

impl Cluster {
    /// `brokers` running brokers with ids `1..=brokers`; partition logs spill as `spill` says.
    pub(crate) fn new(brokers: u32, spill: Option<SpillConfig>) -> Self {
        Cluster {
            brokers: (1..=brokers).map(|id| (id, true)).collect(),
            topics: BTreeMap::new(),
            closing: false,
            spill,
        }
    }

    pub(crate) fn topic(&self, name: &str) -> Result<&Topic, BusError> {
        self.topics.get(name).ok_or_else(|| BusError::UnknownTopic { topic: name.to_owned() })
    }

    pub(crate) fn topic_mut(&mut self, name: &str) -> Result<&mut Topic, BusError> {
        self.topics.get_mut(name).ok_or_else(|| BusError::UnknownTopic { topic: name.to_owned() })
    }

    pub(crate) fn partition(&self, topic: &str, id: u32) -> Result<&Partition, BusError> {
        let t = self.topic(topic)?;
        t.partitions.get(id as usize).ok_or_else(|| BusError::UnknownPartition {
            topic: topic.to_owned(),
            partition: id,
            partitions: t.partition_count(),
        })
    }

    /// The partition, if it has a leader to serve it (metadata, watermarks and fetches need one).
    pub(crate) fn online_partition(&self, topic: &str, id: u32) -> Result<&Partition, BusError> {
        let p = self.partition(topic, id)?;
        match p.leader {
            Some(_) => Ok(p),
            None => Err(BusError::LeaderNotAvailable { topic: topic.to_owned(), partition: id }),
        }
    }

    /// Creates a topic; fails if the name is taken or the configuration cannot work.
    pub(crate) fn create_topic(&mut self, name: &str, mut config: TopicConfig) -> Result<(), BusError> {
        let invalid = |reason: String| BusError::InvalidTopicConfig { topic: name.to_owned(), reason };
        let legal = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
        if name.is_empty() || name.len() > 249 || name == "." || name == ".." || !name.bytes().all(legal) {
            return Err(invalid("a name is 1 to 249 characters from [a-zA-Z0-9._-]".into()));
        }
        if self.topics.contains_key(name) {
            return Err(BusError::TopicExists { topic: name.to_owned() });
        }
        if config.partitions == 0 || config.replication_factor == 0 || config.min_insync_replicas == 0 {
            return Err(invalid("partitions, replication factor and min.insync.replicas must be ≥ 1".into()));
        }
        let rf = usize::from(config.replication_factor);
        let assignment = match config.replica_assignment.take() {
            Some(lists) => {
                self.check_replica_lists(name, &lists, config.partitions)?;
                if let Some(bad) = lists.iter().position(|r| r.len() != rf) {
                    return Err(invalid(format!("partition {bad} has not {rf} replicas")));
                }
                lists
            }
            None => {
                let live: Vec<u32> = self.brokers.iter().filter(|(_, up)| **up).map(|(id, _)| *id).collect();
                if rf > live.len() {
                    return Err(invalid(format!("replication factor {rf} > {} live broker(s)", live.len())));
                }
                (0..config.partitions as usize)
                    .map(|p| (0..rf).map(|i| live[(p + i) % live.len()]).collect())
                    .collect()
            }
        };
        let log = |p: usize| PartitionLog::new(self.spill.as_ref(), name, p as u32);
        let partitions = assignment
            .into_iter()
            .enumerate()
            .map(|(p, r)| Partition::new(r, &self.brokers, log(p)))
            .collect();
        info!(topic = name, partitions = config.partitions, rf, "topic created");
        self.topics.insert(name.to_owned(), Topic { config, partitions, next_round_robin: 0 });
        Ok(())
    }

    /// Checks one replica list per partition, each non-empty, of distinct known brokers.
    fn check_replica_lists(&self, topic: &str, lists: &[Vec<u32>], partitions: u32) -> Result<(), BusError> {
        let invalid = |reason: String| BusError::InvalidTopicConfig { topic: topic.to_owned(), reason };
        if lists.len() != partitions as usize {
            return Err(invalid(format!("{} replica lists for {partitions} partitions", lists.len())));
        }
        for (p, list) in lists.iter().enumerate() {
            let distinct = list.iter().enumerate().all(|(i, b)| !list[..i].contains(b));
            if list.is_empty() || !distinct {
                return Err(invalid(format!("partition {p}: replica list {list:?} is empty or repeats")));
            }
            if let Some(b) = list.iter().find(|b| !self.brokers.contains_key(b)) {
                return Err(invalid(format!("partition {p}: broker {b} does not exist")));
            }
        }
        Ok(())
    }

    pub(crate) fn delete_topic(&mut self, name: &str) -> Result<(), BusError> {
        let mut topic =
            self.topics.remove(name).ok_or_else(|| BusError::UnknownTopic { topic: name.to_owned() })?;
        topic.partitions.iter_mut().for_each(|p| p.log.remove_files());
        info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Starts or stops a broker and applies the ISR and election rules. Returns whether anything changed.
    pub(crate) fn set_broker_up(&mut self, id: u32, up: bool) -> Result<bool, BusError> {
        let count = self.brokers.len() as u32;
        let state =
            self.brokers.get_mut(&id).ok_or(BusError::UnknownBroker { broker: id, brokers: count })?;
        if *state == up {
            return Ok(false);
        }
        *state = up;
        info!(broker = id, up, "broker state changed");
        for (name, topic) in &mut self.topics {
            for (pid, p) in topic.partitions.iter_mut().enumerate() {
                if !p.replicas.contains(&id) {
                    continue;
                }
                let before = p.leader;
                if up {
                    p.settle(&self.brokers)
                } else {
                    p.broker_down(id, &self.brokers)
                }
                match p.leader {
                    None if before.is_some() && self.closing => {
                        info!(topic = %name, partition = pid, "partition offline (shutdown)")
                    }
                    None if before.is_some() => warn!(topic = %name, partition = pid, "partition offline"),
                    Some(l) if before != Some(l) => {
                        info!(topic = %name, partition = pid, leader = l, "new leader")
                    }
                    _ => {}
                }
            }
        }
        Ok(true)
    }

    /// Moves partitions to new replica lists (`kafka-reassign-partitions`). Every partition must have a
    /// leader to copy from and a live broker in its new list; new replicas catch up instantly. The leader
    /// stays if it is kept, otherwise the first live broker of the new list takes over.
    pub(crate) fn reassign(&mut self, topic: &str, lists: Vec<Vec<u32>>) -> Result<(), BusError> {
        let count = self.topic(topic)?.partition_count();
        self.check_replica_lists(topic, &lists, count)?;
        let brokers = &self.brokers;
        let t = self.topics.get_mut(topic).ok_or_else(|| BusError::UnknownTopic { topic: topic.into() })?;
        for (id, (p, list)) in t.partitions.iter().zip(&lists).enumerate() {
            if p.leader.is_none() {
                return Err(BusError::LeaderNotAvailable { topic: topic.to_owned(), partition: id as u32 });
            }
            if !list.iter().any(|b| brokers.get(b).copied().unwrap_or(false)) {
                let reason = format!("partition {id}: no live broker in {list:?}");
                return Err(BusError::InvalidTopicConfig { topic: topic.to_owned(), reason });
            }
        }
        t.config.replication_factor = lists.iter().map(Vec::len).max().unwrap_or(1) as u16;
        for (p, list) in t.partitions.iter_mut().zip(lists) {
            p.leader = p.leader.filter(|l| list.contains(l));
            p.isr = list.iter().copied().filter(|b| brokers.get(b).copied().unwrap_or(false)).collect();
            p.replicas = list;
            p.settle(brokers);
        }
        info!(topic, rf = t.config.replication_factor, "partitions reassigned");
        Ok(())
    }

    pub(crate) fn describe(&self, name: &str) -> Result<TopicDescription, BusError> {
        let t = self.topic(name)?;
        let partitions: Vec<PartitionInfo> = (0..).zip(&t.partitions).map(|(id, p)| p.info(id)).collect();
        let lists = partitions.iter().map(|p| p.replicas.clone()).collect();
        let config = TopicConfig { replica_assignment: Some(lists), ..t.config.clone() };
        Ok(TopicDescription { name: name.to_owned(), partitions, config })
    }

    pub(crate) fn brokers(&self) -> Vec<BrokerInfo> {
        let parts = || self.topics.values().flat_map(|t| &t.partitions);
        (self.brokers.iter())
            .map(|(&id, &up)| BrokerInfo {
                id,
                up,
                leader_for: parts().filter(|p| p.leader == Some(id)).count(),
                replica_for: parts().filter(|p| p.replicas.contains(&id)).count(),
            })
            .collect()
    }

    /// All partitions of all topics, for statistics.
    pub(crate) fn all_partitions(&self) -> impl Iterator<Item = &Partition> {
        self.topics.values().flat_map(|t| &t.partitions)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Acks, Bus, BusConfig, BusError, ProducerConfig};
    use super::*;
    use bytes::Bytes;

    fn leaders_and_isr(d: &TopicDescription) -> Vec<(Option<u32>, Vec<u32>)> {
        d.partitions.iter().map(|p| (p.leader, p.isr.clone())).collect()
    }

    #[test]
    fn murmur2_matches_kafka() {
        // Values of Kafka's UtilsTest (Java ints).
        for (key, want) in [("21", -973_932_308), ("foobar", -790_332_482), ("abc", 479_470_107)] {
            assert_eq!(murmur2(key.as_bytes()) as i32, want, "{key}");
        }
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985_981_536);
    }

    #[test]
    fn default_placement_is_round_robin_and_validated() {
        let mut c = Cluster::new(3, None);
        c.create_topic("t", TopicConfig::new(4, 2)).unwrap();
        let replicas: Vec<_> = c.describe("t").unwrap().partitions.into_iter().map(|p| p.replicas).collect();
        assert_eq!(replicas, [vec![1, 2], vec![2, 3], vec![3, 1], vec![1, 2]]);
        assert!(matches!(c.create_topic("t", TopicConfig::new(1, 1)), Err(BusError::TopicExists { .. })));
        for (name, cfg) in [
            ("x", TopicConfig::new(1, 4)),
            ("bad name", TopicConfig::new(1, 1)),
            ("x", TopicConfig::new(0, 1)),
            ("x", TopicConfig::new(2, 1).assignment(vec![vec![1]])),
            ("x", TopicConfig::new(1, 2).assignment(vec![vec![1, 1]])),
            ("x", TopicConfig::new(1, 1).assignment(vec![vec![9]])),
        ] {
            assert!(matches!(c.create_topic(name, cfg), Err(BusError::InvalidTopicConfig { .. })), "{name}");
        }
    }

    #[test]
    fn elections_are_clean_and_the_last_isr_member_is_kept() {
        let mut c = Cluster::new(3, None);
        c.create_topic("t", TopicConfig::new(1, 3)).unwrap();
        c.set_broker_up(1, false).unwrap();
        assert_eq!(leaders_and_isr(&c.describe("t").unwrap()), [(Some(2), vec![2, 3])]);
        c.set_broker_up(2, false).unwrap();
        c.set_broker_up(3, false).unwrap();
        let d = c.describe("t").unwrap();
        assert_eq!(leaders_and_isr(&d), [(None, vec![3])], "offline, broker 3 holds the latest data");
        assert_eq!(d.partitions[0].leader_id(), -1);
        assert!(d.has_offline_partitions());
        // Broker 1 is stale: it may not lead (clean election only).
        c.set_broker_up(1, true).unwrap();
        assert_eq!(leaders_and_isr(&c.describe("t").unwrap()), [(None, vec![3])]);
        c.set_broker_up(3, true).unwrap();
        let d = c.describe("t").unwrap();
        assert_eq!(leaders_and_isr(&d), [(Some(3), vec![1, 3])], "3 leads, 1 catches up from it");
        c.set_broker_up(2, true).unwrap();
        assert!(c.describe("t").unwrap().all_replicas_in_sync());
        assert!(matches!(c.set_broker_up(4, true), Err(BusError::UnknownBroker { broker: 4, brokers: 3 })));
        let b1 = &c.brokers()[0];
        assert_eq!((b1.id, b1.up, b1.leader_for, b1.replica_for), (1, true, 0, 1));
    }

    /// The two reference configurations of `poke-orders` (A.3) under the same broker failures.
    #[tokio::test(start_paused = true)]
    async fn initial_and_fixed_configurations_differ_under_broker_loss() {
        let bus = Bus::new(BusConfig::default());
        let admin = bus.admin();
        let all = bus.producer("poke-producer", ProducerConfig { acks: Acks::All });
        let one = bus.producer("acks-1", ProducerConfig { acks: Acks::Leader });
        let send = |p: &super::super::Producer, partition| {
            let p = p.clone();
            async move { p.send("poke-orders", Some(partition), None, Bytes::from("order"), 0).await }
        };
        // initial: 3 partitions, RF 1, min.insync 1; broker 1 leads p0 only.
        admin.create_topic("poke-orders", TopicConfig::new(3, 1).min_insync(1)).unwrap();
        bus.set_broker_up(1, false).unwrap();
        let d = admin.describe_topic("poke-orders").unwrap();
        assert_eq!(leaders_and_isr(&d), [(None, vec![1]), (Some(2), vec![2]), (Some(3), vec![3])]);
        assert!(d.has_offline_partitions());
        assert!(matches!(send(&all, 0).await, Err(BusError::LeaderNotAvailable { partition: 0, .. })));
        assert_eq!(send(&all, 1).await.unwrap().offset, Some(0));
        let err = admin.reassign_partitions("poke-orders", vec![vec![1, 2, 3]; 3]).unwrap_err();
        assert!(matches!(err, BusError::LeaderNotAvailable { partition: 0, .. }), "{err}");
        bus.set_broker_up(1, true).unwrap();
        assert!(!admin.describe_topic("poke-orders").unwrap().has_offline_partitions());

        // fixed: RF 3 with the reference lists, then min.insync 2.
        admin.reassign_partitions("poke-orders", vec![vec![1, 2, 3], vec![3, 1, 2], vec![2, 3, 1]]).unwrap();
        admin.alter_min_insync("poke-orders", 2).unwrap();
        let d = admin.describe_topic("poke-orders").unwrap();
        assert!(d.all_replicas_in_sync());
        assert_eq!((d.config.replication_factor, d.config.min_insync_replicas), (3, 2));
        assert_eq!(d.partitions.iter().map(|p| p.leader).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
        bus.set_broker_up(1, false).unwrap();
        let d = admin.describe_topic("poke-orders").unwrap();
        assert!(!d.has_offline_partitions() && !d.all_replicas_in_sync());
        assert_eq!(d.partitions[0].leader, Some(2), "p0 fails over to the next in-sync replica");
        for p in 0..3 {
            assert!(send(&all, p).await.is_ok(), "acks=all still works on p{p}");
        }
        bus.set_broker_up(2, false).unwrap();
        for p in 0..3 {
            let err = send(&all, p).await.unwrap_err();
            assert!(matches!(err, BusError::NotEnoughReplicas { isr: 1, min_insync: 2, .. }), "{err}");
            assert!(send(&one, p).await.is_ok(), "acks=1 is only the leader's word");
        }
        assert_eq!(bus.stats().under_replicated_partitions, 3);
    }
}
