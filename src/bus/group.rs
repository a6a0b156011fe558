//! Consumer groups: membership, generations, partition assignment, committed offsets and lag.
//!
//! A group's membership changes when a consumer subscribes, closes, or crashes (its handle is dropped without
//! `close`; it is expelled once `session_timeout` has passed). Every change is a **rebalance**: the
//! generation goes up and the partitions of the subscribed topics are dealt out again with Kafka's *range*
//! assignor (per topic, partitions in order over the members sorted by member id, the first ones taking one
//! extra). Rebalances are instantaneous here; members learn of them on their next poll, and a commit from
//! a member that has not yet seen the latest generation is refused, as Kafka refuses it. After a rebalance
//! every member restarts from the group's committed offsets, so records processed but not committed are
//! delivered again: at-least-once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use super::cluster::Cluster;
use super::error::BusError;

/// Group state as `kafka-consumer-groups --describe --state` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum GroupState {
    /// No members; committed offsets are kept.
    Empty,
    /// Members with an assignment.
    Stable,
}

/// One member of a group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemberDescription {
    /// Member id (`<client_id>-<sequence>`).
    pub member_id: String,
    /// Client id of its consumer.
    pub client_id: String,
    /// Topics it subscribed to.
    pub topics: Vec<String>,
    /// Partitions assigned to it in the current generation.
    pub assignment: Vec<(String, u32)>,
    /// Its handle was dropped without `close`; it is expelled when the session timeout passes.
    pub crashed: bool,
}

/// Offsets and lag of one partition for one group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    /// Topic name.
    pub topic: String,
    /// Partition id.
    pub partition: u32,
    /// The group's committed offset (the next offset to consume), if any.
    pub committed: Option<u64>,
    /// Log start offset.
    pub log_start: u64,
    /// High watermark.
    pub high_watermark: u64,
    /// `high - committed`, or `high - log_start` with no commit (chaostoolkit-kafka's definition).
    pub lag: u64,
    /// Member that owns the partition now, if any.
    pub owner: Option<String>,
}

impl PartitionLag {
    /// Offsets of one partition, with the lag chaostoolkit-kafka computes from them.
    pub fn new(
        topic: &str,
        partition: u32,
        committed: Option<u64>,
        low: u64,
        high: u64,
        owner: Option<String>,
    ) -> Self {
        let lag = high.saturating_sub(committed.unwrap_or(low));
        PartitionLag {
            topic: topic.to_owned(),
            partition,
            committed,
            log_start: low,
            high_watermark: high,
            lag,
            owner,
        }
    }
}

/// A group as `Admin::describe_group` reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// Empty or Stable.
    pub state: GroupState,
    /// Generation: goes up by one at every rebalance.
    pub generation: u32,
    /// Rebalances so far.
    pub rebalances: u64,
    /// Members by member id.
    pub members: Vec<MemberDescription>,
    /// Every partition the group has committed or owns, sorted.
    pub offsets: Vec<PartitionLag>,
}

/// Who is committing: a group member at the generation it last saw, or a consumer with a manual assignment.
pub(crate) enum Committer<'a> {
    Member { id: &'a str, generation: u32 },
    Standalone { client_id: &'a str },
}

#[derive(Debug)]
struct Member {
    client_id: String,
    topics: Vec<String>,
    assignment: Vec<(String, u32)>,
    crashed_at: Option<Instant>,
}

/// One consumer group's coordinator state.
#[derive(Debug)]
pub(crate) struct Group {
    id: String,
    members: BTreeMap<String, Member>,
    pub(crate) generation: u32,
    committed: BTreeMap<(String, u32), u64>,
    rebalances: u64,
}

impl Group {
    pub(crate) fn new(id: &str) -> Self {
        Group {
            id: id.to_owned(),
            members: BTreeMap::new(),
            generation: 0,
            committed: BTreeMap::new(),
            rebalances: 0,
        }
    }

    pub(crate) fn member_count(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn rebalances(&self) -> u64 {
        self.rebalances
    }

    /// Adds a member, or changes an existing member's subscription, and rebalances (unless nothing changed).
    pub(crate) fn join(&mut self, member_id: &str, client_id: &str, topics: Vec<String>, cluster: &Cluster) {
        if self.members.get(member_id).is_some_and(|m| m.topics == topics) {
            return;
        }
        let member =
            Member { client_id: client_id.to_owned(), topics, assignment: Vec::new(), crashed_at: None };
        self.members.insert(member_id.to_owned(), member);
        self.rebalance(cluster, "join");
    }

    /// Removes a member now (a clean `close`) and rebalances.
    pub(crate) fn leave(&mut self, member_id: &str, cluster: &Cluster) {
        if self.members.remove(member_id).is_some() {
            self.rebalance(cluster, "leave");
        }
    }

    /// Notes that a member's consumer is gone without leaving: its heartbeats stop now.
    pub(crate) fn mark_crashed(&mut self, member_id: &str, now: Instant) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.crashed_at = Some(now);
        }
    }

    /// Expels crashed members whose session timed out; returns whether the group rebalanced.
    pub(crate) fn expire(&mut self, now: Instant, session_timeout: Duration, cluster: &Cluster) -> bool {
        let before = self.members.len();
        self.members.retain(|_, m| m.crashed_at.is_none_or(|at| now < at + session_timeout));
        let expired = self.members.len() < before;
        if expired {
            self.rebalance(cluster, "session timeout");
        }
        expired
    }

    /// When the next crashed member will be expelled.
    pub(crate) fn next_expiry(&self, session_timeout: Duration) -> Option<Instant> {
        self.members.values().filter_map(|m| m.crashed_at).min().map(|at| at + session_timeout)
    }

    pub(crate) fn subscribes_to(&self, topic: &str) -> bool {
        self.members.values().any(|m| m.topics.iter().any(|t| t == topic))
    }

    /// Starts a new generation and deals the partitions out with the range assignor.
    pub(crate) fn rebalance(&mut self, cluster: &Cluster, reason: &str) {
        self.generation += 1;
        self.rebalances += 1;
        for m in self.members.values_mut() {
            m.assignment.clear();
        }
        let topics: BTreeSet<String> = self.members.values().flat_map(|m| m.topics.iter().cloned()).collect();
        for topic in topics {
            let Ok(t) = cluster.topic(&topic) else { continue };
            let mut subscribers: Vec<&mut Member> =
                self.members.values_mut().filter(|m| m.topics.contains(&topic)).collect();
            let (n, count) = (t.partition_count(), subscribers.len() as u32);
            let mut next = 0;
            for (i, m) in (0..).zip(subscribers.iter_mut()) {
                let take = n / count + u32::from(i < n % count);
                m.assignment.extend((next..next + take).map(|p| (topic.clone(), p)));
                next += take;
            }
        }
        info!(group = %self.id, generation = self.generation, members = self.members.len(), reason, "rebalanced");
    }

    /// The member's partitions in the current generation, or `None` if it is not a member.
    pub(crate) fn assignment_of(&self, member_id: &str) -> Option<&[(String, u32)]> {
        self.members.get(member_id).map(|m| m.assignment.as_slice())
    }

    pub(crate) fn committed(&self, topic: &str, partition: u32) -> Option<u64> {
        self.committed.get(&(topic.to_owned(), partition)).copied()
    }

    /// Stores a committed offset after the coordinator's checks: a member must be current; a consumer
    /// outside the group may commit only while the group has no members.
    pub(crate) fn commit(
        &mut self,
        who: Committer<'_>,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), BusError> {
        match who {
            Committer::Member { id, generation } => {
                if !self.members.contains_key(id) {
                    return Err(BusError::UnknownMember { group: self.id.clone(), member: id.to_owned() });
                }
                if generation != self.generation {
                    return Err(BusError::StaleGeneration {
                        group: self.id.clone(),
                        member: id.to_owned(),
                        generation,
                        current: self.generation,
                    });
                }
            }
            Committer::Standalone { client_id } if !self.members.is_empty() => {
                return Err(BusError::UnknownMember { group: self.id.clone(), member: client_id.to_owned() });
            }
            Committer::Standalone { .. } => {}
        }
        self.committed.insert((topic.to_owned(), partition), offset);
        Ok(())
    }

    /// Drops the committed offsets of a deleted topic.
    pub(crate) fn forget_topic(&mut self, topic: &str) {
        self.committed.retain(|(t, _), _| t != topic);
    }

    pub(crate) fn describe(&self, cluster: &Cluster) -> GroupDescription {
        let members = (self.members.iter())
            .map(|(id, m)| MemberDescription {
                member_id: id.clone(),
                client_id: m.client_id.clone(),
                topics: m.topics.clone(),
                assignment: m.assignment.clone(),
                crashed: m.crashed_at.is_some(),
            })
            .collect();
        let owned = self.members.values().flat_map(|m| m.assignment.iter().cloned());
        let partitions: BTreeSet<(String, u32)> = self.committed.keys().cloned().chain(owned).collect();
        let offsets = partitions.iter().filter_map(|(t, p)| lag(Some(self), cluster, t, *p).ok()).collect();
        GroupDescription {
            group_id: self.id.clone(),
            state: if self.members.is_empty() { GroupState::Empty } else { GroupState::Stable },
            generation: self.generation,
            rebalances: self.rebalances,
            members,
            offsets,
        }
    }
}

/// Offsets and lag of `topic`-`partition` for `group` (`None`: a group that never committed).
pub(crate) fn lag(
    group: Option<&Group>,
    cluster: &Cluster,
    topic: &str,
    partition: u32,
) -> Result<PartitionLag, BusError> {
    let log = &cluster.partition(topic, partition)?.log;
    let (low, high) = (log.log_start(), log.high_watermark());
    let committed = group.and_then(|g| g.committed(topic, partition));
    let owner = group.and_then(|g| {
        let owns = |m: &&Member| m.assignment.iter().any(|(t, p)| t == topic && *p == partition);
        g.members.iter().find(|(_, m)| owns(m)).map(|(id, _)| id.clone())
    });
    Ok(PartitionLag::new(topic, partition, committed, low, high, owner))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::time::Instant;

    use super::super::client::tests::{poll_for, summary};
    use super::super::{Bus, BusConfig, BusError, ConsumerConfig, GroupState, ProducerConfig, TopicConfig};

    /// A bus with `poke-orders` (3 partitions) holding `per_partition` records in each partition.
    async fn orders_bus(per_partition: u64) -> Bus {
        let bus = Bus::new(BusConfig::default());
        bus.admin().create_topic("poke-orders", TopicConfig::new(3, 1)).unwrap();
        let producer = bus.producer("api", ProducerConfig::default());
        for i in 0..per_partition * 3 {
            let value = Bytes::from(format!("order-{i}"));
            producer.send("poke-orders", Some((i % 3) as u32), None, value, 0).await.unwrap();
        }
        bus
    }

    fn pikachu(bus: &Bus, name: &str) -> super::super::Consumer {
        let mut c = bus.consumer(ConsumerConfig::new("poke-order-consumer", name).earliest());
        c.subscribe(&["poke-orders"]).unwrap();
        c
    }

    #[tokio::test(start_paused = true)]
    async fn a_closing_member_hands_its_partitions_over_with_redelivery() {
        let bus = orders_bus(2).await;
        let mut members = [pikachu(&bus, "a"), pikachu(&bus, "b"), pikachu(&bus, "c")];
        // Range assignment over members sorted by id: one partition each; each reads its two records.
        for (i, c) in (0..).zip(members.iter_mut()) {
            let got = poll_for(c).await;
            assert_eq!(c.assignment(), [("poke-orders".to_owned(), i)]);
            assert_eq!(summary(&got), [(i, 0), (i, 1)]);
        }
        let [a, b, c] = &mut members;
        a.subscribe(&["poke-orders"]).unwrap(); // the same subscription again: no rebalance
        a.commit("poke-orders", 0, 2).unwrap();
        b.commit("poke-orders", 1, 1).unwrap(); // offset 1 processed but not committed
        c.commit("poke-orders", 2, 2).unwrap();

        let [a, mut b, c] = members;
        c.close();
        let d = bus.admin().describe_group("poke-order-consumer").unwrap();
        assert_eq!((d.state, d.generation, d.rebalances, d.members.len()), (GroupState::Stable, 4, 4, 2));
        // b has not polled since the rebalance: its commit is refused, as Kafka's CommitFailed.
        let err = b.commit("poke-orders", 1, 2).unwrap_err();
        assert!(matches!(err, BusError::StaleGeneration { generation: 3, current: 4, .. }), "{err}");

        let mut a = a;
        let got = poll_for(&mut a).await;
        assert_eq!(a.assignment().len(), 2, "a now owns p0 and p1");
        assert_eq!(summary(&got), [(1, 1)], "p0 resumes at its commit, p1's uncommitted record comes again");
        assert!(b.poll(10).await.unwrap().is_empty(), "b rebalanced to p2 and has nothing new");
        assert_eq!(b.assignment(), [("poke-orders".to_owned(), 2)]);
        assert_eq!(b.position("poke-orders", 2), Some(2));

        // A manual consumer may not commit into an active group.
        let mut manual = bus.consumer(ConsumerConfig::new("poke-order-consumer", "m"));
        manual.assign(&[("poke-orders", 0)]);
        assert!(matches!(manual.commit("poke-orders", 0, 0), Err(BusError::UnknownMember { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_crashed_member_is_expelled_after_the_session_timeout() {
        let bus = orders_bus(1).await;
        let mut a = pikachu(&bus, "a");
        let mut b = pikachu(&bus, "b");
        assert_eq!(summary(&poll_for(&mut a).await), [(0, 0), (1, 0)]);
        a.commit("poke-orders", 0, 1).unwrap();
        a.commit("poke-orders", 1, 1).unwrap();
        assert_eq!(summary(&poll_for(&mut b).await), [(2, 0)], "b reads p2 but crashes before committing");
        let crashed_at = Instant::now();
        drop(b);
        let d = bus.admin().describe_group("poke-order-consumer").unwrap();
        assert_eq!(d.members.iter().map(|m| m.crashed).collect::<Vec<_>>(), [false, true]);
        assert_eq!(
            d.offsets.iter().find(|o| o.partition == 2).and_then(|o| o.owner.clone()),
            Some("b-000002".into())
        );

        // a waits; the group rebalances exactly when b's session times out, and p2's record comes again.
        let got = poll_for(&mut a).await;
        assert_eq!(crashed_at.elapsed(), Duration::from_secs(45));
        assert_eq!(summary(&got), [(2, 0)]);
        assert_eq!(a.assignment().len(), 3);
        let d = bus.admin().describe_group("poke-order-consumer").unwrap();
        assert_eq!((d.members.len(), d.generation), (1, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn lag_follows_chaostoolkit_kafka() {
        let bus = orders_bus(4).await;
        let admin = bus.admin();
        let lags =
            |g| admin.consumer_lag(g, "poke-orders").unwrap().iter().map(|l| l.lag).collect::<Vec<_>>();
        assert_eq!(lags("nobody"), [4, 4, 4], "no commit: high - low");
        let mut c = bus.consumer(ConsumerConfig::new("poke-order-consumer", "c"));
        c.assign(&[("poke-orders", 1)]);
        c.commit("poke-orders", 1, 3).unwrap();
        assert_eq!(lags("poke-order-consumer"), [4, 1, 4], "high - committed");
        assert_eq!(c.committed("poke-orders", 1), Some(3));
        bus.set_broker_up(2, false).unwrap();
        let err = admin.consumer_lag("poke-order-consumer", "poke-orders").unwrap_err();
        assert!(matches!(err, BusError::LeaderNotAvailable { partition: 1, .. }), "{err}");
        let described = admin.describe_group("poke-order-consumer").unwrap();
        assert_eq!((described.state, described.offsets.len()), (GroupState::Empty, 1));
        assert_eq!(described.offsets[0].lag, 1);
    }
}
