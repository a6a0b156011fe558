//! Tests of the rdkafka backend against librdkafka's mock cluster.

use std::collections::BTreeMap;
use std::future::Future;

use bytes::Bytes;
use rdkafka::bindings::{rd_kafka_handle_mock_cluster, rd_kafka_mock_group_initial_rebalance_delay_ms};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use super::convert::map_error;
use super::*;
use crate::bus::client::Acks;
use crate::bus::cluster::TopicConfig;
use crate::bus::log::ConsumerRecord;

/// Upper bound of every test.
const TEST_LIMIT: Duration = Duration::from_secs(90);

/// A 3-broker librdkafka mock cluster, owned by an idle client, with no initial rebalance delay.
struct Mock {
    holder: BaseProducer,
    bootstrap: String,
}

impl Mock {
    fn new() -> Mock {
        let holder: BaseProducer = ClientConfig::new().set("test.mock.num.brokers", "3").create().unwrap();
        // SAFETY: the pointer comes from a live client created with `test.mock.num.brokers`, which owns
        // the mock cluster for as long as `holder` lives, and is only used during this call.
        unsafe {
            let cluster = rd_kafka_handle_mock_cluster(holder.client().native_ptr());
            assert!(!cluster.is_null());
            rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
        }
        let bootstrap = holder.client().mock_cluster().unwrap().bootstrap_servers();
        Mock { holder, bootstrap }
    }

    fn cluster(&self) -> MockCluster<'_, DefaultProducerContext> {
        self.holder.client().mock_cluster().unwrap()
    }

    /// A topic made by the mock itself (the mock does not implement CreateTopics).
    fn topic(&self, name: &str, partitions: i32, replication: i32) {
        self.cluster().create_topic(name, partitions, replication).unwrap();
    }

    fn bus(&self) -> KafkaBus {
        KafkaBus::new(&self.bootstrap).unwrap()
    }
}

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, f).await.expect("test exceeded its time limit")
}

/// Polls until `n` records arrived or `within` passed.
async fn poll_n(c: &mut KafkaConsumer, n: usize, within: Duration) -> Vec<ConsumerRecord> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n && tokio::time::Instant::now() < deadline {
        got.extend(c.poll(n - got.len()).await.unwrap());
    }
    got
}

fn text(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_consume_commit_and_resume_in_a_group() {
    bounded(async {
        let mock = Mock::new();
        mock.topic("orders", 3, 3);
        // The mock, unlike a broker, keeps a group whose last member left in a rebalance until the
        // session timeout (less 1 s) has passed, so the next member waits that long to join.
        let bus = KafkaBus::with_properties(
            &mock.bootstrap,
            &[("session.timeout.ms", "3000"), ("heartbeat.interval.ms", "500")],
        )
        .unwrap();
        let producer = bus.producer("p", Acks::All).unwrap();
        let mut sent = BTreeMap::new();
        let mut key_partition = BTreeMap::new();
        for i in 0..30u32 {
            let key = (i % 2 == 0).then(|| text(&format!("k{}", i % 5)));
            let ts = 1_700_000_000_000 + i64::from(i);
            let meta = producer.send("orders", None, key.clone(), text(&format!("v{i}")), ts).await.unwrap();
            assert_eq!(meta.topic, "orders");
            assert!(meta.partition < 3, "{meta:?}");
            if let Some(k) = &key {
                let first = *key_partition.entry(k.clone()).or_insert(meta.partition);
                assert_eq!(first, meta.partition, "one key, one partition");
            }
            let offset = meta.offset.expect("acks=all reports the offset");
            sent.insert((meta.partition, offset), (key, format!("v{i}"), ts));
        }
        for p in 0..3 {
            let offsets: Vec<u64> = sent.keys().filter(|(q, _)| *q == p).map(|(_, o)| *o).collect();
            assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>(), "partition {p}");
        }

        let lag_before = bus.consumer_lag("g", "orders").await.unwrap();
        let highs: Vec<u64> = (0..3).map(|p| sent.keys().filter(|(q, _)| *q == p).count() as u64).collect();
        assert_eq!(lag_before.iter().map(|l| l.lag).collect::<Vec<_>>(), highs, "no commit: high - low");
        assert!(lag_before.iter().all(|l| l.committed.is_none() && l.log_start == 0));

        let mut c1 = bus.consumer("g", "c1", true).unwrap();
        c1.subscribe(&["orders"]).unwrap();
        let got = poll_n(&mut c1, 30, Duration::from_secs(30)).await;
        assert_eq!(got.len(), 30);
        for r in &got {
            let (key, value, ts) = &sent[&(r.partition, r.offset)];
            assert_eq!((&r.key, r.value.as_ref(), r.timestamp_ms), (key, value.as_bytes(), *ts));
        }
        let assigned = c1.assignment();
        assert_eq!(assigned, (0..3).map(|p| ("orders".to_owned(), p)).collect::<Vec<_>>());
        for (p, high) in highs.iter().enumerate() {
            c1.commit("orders", p as u32, *high).unwrap();
        }
        let lag_after = bus.consumer_lag("g", "orders").await.unwrap();
        assert!(lag_after.iter().all(|l| l.lag == 0), "{lag_after:?}");
        let committed: Vec<Option<u64>> = lag_after.iter().map(|l| l.committed).collect();
        assert_eq!(committed, highs.iter().map(|h| Some(*h)).collect::<Vec<_>>());
        c1.close();

        let mut c2 = bus.consumer("g", "c2", true).unwrap();
        c2.subscribe(&["orders"]).unwrap();
        let again = poll_n(&mut c2, 1, Duration::from_secs(4)).await;
        assert!(again.is_empty(), "all was committed, nothing is redelivered: {again:?}");
        let meta = producer.send("orders", Some(1), None, text("late"), 0).await.unwrap();
        assert_eq!(meta.offset, Some(highs[1]));
        let late = poll_n(&mut c2, 2, Duration::from_secs(8)).await;
        assert_eq!(late.iter().map(|r| (r.partition, r.offset)).collect::<Vec<_>>(), [(1, highs[1])]);
        assert_eq!(c2.assignment().len(), 3);
        c2.close();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seek_to_committed_rereads_what_was_not_committed() {
    bounded(async {
        let mock = Mock::new();
        mock.topic("state", 3, 3);
        let bus = mock.bus();
        let producer = bus.producer("p", Acks::Leader).unwrap();
        for i in 0..6 {
            let meta = producer.send("state", Some(0), None, text(&format!("s{i}")), 0).await.unwrap();
            assert_eq!((meta.partition, meta.offset), (0, Some(i)));
        }
        let mut c = bus.consumer("updater", "u", true).unwrap();
        c.subscribe(&["state"]).unwrap();
        let offsets = |rs: &[ConsumerRecord]| rs.iter().map(|r| r.offset).collect::<Vec<_>>();
        let first = poll_n(&mut c, 6, Duration::from_secs(30)).await;
        assert_eq!(offsets(&first), [0, 1, 2, 3, 4, 5]);

        c.seek_to_committed("state", 0).unwrap();
        let replay = poll_n(&mut c, 6, Duration::from_secs(10)).await;
        assert_eq!(offsets(&replay), [0, 1, 2, 3, 4, 5], "no commit: back to the log start (earliest)");

        c.commit("state", 0, 4).unwrap();
        let lag = bus.consumer_lag("updater", "state").await.unwrap();
        let lag: Vec<(Option<u64>, u64)> = lag.iter().map(|l| (l.committed, l.lag)).collect();
        assert_eq!(lag, [(Some(4), 2), (None, 0), (None, 0)]);

        c.seek_to_committed("state", 0).unwrap();
        let retry = poll_n(&mut c, 6, Duration::from_secs(10)).await;
        assert_eq!(offsets(&retry), [4, 5], "only the uncommitted records come again");
        assert_eq!(retry[1].value, text("s5"));

        let err = c.seek_to_committed("other", 0).unwrap_err();
        assert!(matches!(err, BusError::NotAssigned { partition: 0, .. }), "{err}");
        c.close();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_topic_reports_leaders_replicas_and_offline_partitions() {
    bounded(async {
        let mock = Mock::new();
        mock.topic("orders", 3, 3);
        let bus = mock.bus();
        let producer = bus.producer("p", Acks::All).unwrap();
        for p in [0, 2, 2] {
            producer.send("orders", Some(p), None, text("x"), 0).await.unwrap();
        }
        let d = bus.describe_topic("orders").await.unwrap();
        assert_eq!((d.name.as_str(), d.partitions.len()), ("orders", 3));
        assert_eq!((d.config.partitions, d.config.replication_factor), (3, 3));
        for (i, p) in d.partitions.iter().enumerate() {
            assert_eq!(p.id, i as u32);
            let mut replicas = p.replicas.clone();
            replicas.sort();
            assert_eq!(replicas, [1, 2, 3], "RF 3 on the 3 brokers");
            assert!(p.leader.is_some_and(|l| p.replicas.contains(&l)), "{p:?}");
            assert_eq!(p.isr, p.replicas);
        }
        let highs: Vec<u64> = d.partitions.iter().map(|p| p.high_watermark).collect();
        assert_eq!(highs, [1, 0, 2]);
        // The mock does not answer DescribeConfigs: the defaults stand in, and the failed read is
        // remembered instead of stalling every description for the request timeout.
        assert_eq!(
            (d.config.min_insync_replicas, d.config.retention, d.config.retention_bytes),
            (1, None, None)
        );
        let started = Instant::now();
        bus.describe_topic("orders").await.unwrap();
        assert!(started.elapsed() < REQUEST_TIMEOUT / 2, "{:?}", started.elapsed());
        assert!(d.all_replicas_in_sync() && !d.has_offline_partitions());

        let err = bus.describe_topic("missing").await.unwrap_err();
        assert_eq!(err, BusError::UnknownTopic { topic: "missing".to_owned() });

        // The mock has no controller: leadership is set by hand. A partition without a leader is
        // offline, as Kafka's metadata reports it (-1).
        mock.cluster().partition_leader("orders", 1, None).unwrap();
        let d = bus.describe_topic("orders").await.unwrap();
        assert_eq!(d.partitions[1].leader, None);
        assert_eq!(d.partitions[1].leader_id(), -1);
        assert!(d.has_offline_partitions());
        let err = bus.consumer_lag("g", "orders").await.unwrap_err();
        assert!(matches!(err, BusError::LeaderNotAvailable { partition: 1, .. }), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_down_broker_keeps_its_leadership_in_the_mock() {
    bounded(async {
        let mock = Mock::new();
        mock.topic("orders", 3, 3);
        let bus = mock.bus();
        let before = bus.describe_topic("orders").await.unwrap();
        let leader = before.partitions[0].leader.unwrap();
        mock.cluster().broker_down(i32::try_from(leader).unwrap()).unwrap();
        // librdkafka's mock neither moves leaders nor shrinks ISRs when a broker goes down (ISR is
        // always the replica list), so the metadata still looks healthy: under-replicated partitions
        // cannot be shown on it. The description still comes from the other brokers — once the client
        // stops asking the one that is down, so a transport failure is retried a few times.
        let mut after = bus.describe_topic("orders").await;
        for _ in 0..20 {
            if after.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            after = bus.describe_topic("orders").await;
        }
        let after = after.unwrap();
        assert_eq!(after.partitions[0].leader, Some(leader));
        assert!(after.all_replicas_in_sync());
        mock.cluster().broker_up(i32::try_from(leader).unwrap()).unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn send_failures_map_to_bus_errors() {
    bounded(async {
        let mock = Mock::new();
        mock.topic("orders", 3, 3);
        let bus = mock.bus();
        let producer = bus.producer_with_timeout("p", Acks::All, Duration::from_millis(1500)).unwrap();
        producer.send("orders", Some(1), None, text("ok"), 0).await.unwrap();

        // A crashed leader that the cluster has not replaced yet: the record times out. (The mock cannot
        // produce to a leaderless partition: its Produce handler dereferences the missing leader.)
        let leader = bus.describe_topic("orders").await.unwrap().partitions[1].leader.unwrap();
        mock.cluster().broker_down(i32::try_from(leader).unwrap()).unwrap();
        let err = producer.send("orders", Some(1), None, text("lost"), 0).await.unwrap_err();
        assert_eq!(err, BusError::LeaderNotAvailable { topic: "orders".to_owned(), partition: 1 });
        mock.cluster().broker_up(i32::try_from(leader).unwrap()).unwrap();

        // librdkafka retries NOT_ENOUGH_REPLICAS itself until `message.timeout.ms`: a timeout.
        let errors = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 200];
        mock.cluster().request_errors(RDKafkaApiKey::Produce, &errors);
        let err = producer.send("orders", Some(2), None, text("few"), 0).await.unwrap_err();
        assert_eq!(err, BusError::LeaderNotAvailable { topic: "orders".to_owned(), partition: 2 });
        // Without its retries the broker's answer comes through, with the ISR looked up (the mock
        // reports ISR = replicas, and has no DescribeConfigs: min.insync.replicas is unknown, 0).
        let eager = KafkaBus::with_properties(&mock.bootstrap, &[("retries", "0")]).unwrap();
        let eager = eager.producer("eager", Acks::All).unwrap();
        let err = eager.send("orders", Some(2), None, text("few"), 0).await.unwrap_err();
        assert!(
            matches!(err, BusError::NotEnoughReplicas { partition: 2, isr: 3, min_insync: 0, .. }),
            "{err}"
        );
        mock.cluster().clear_request_errors(RDKafkaApiKey::Produce);

        let quiet = bus.producer("q", Acks::None).unwrap();
        let meta = quiet.send("orders", Some(0), None, text("fire"), 0).await.unwrap();
        assert_eq!((meta.partition, meta.offset), (0, None), "acks=0 reports no offset");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_calls_the_mock_lacks_fail_cleanly() {
    bounded(async {
        let mock = Mock::new();
        let bus = mock.bus();
        // The mock implements neither CreateTopics nor ListGroups.
        let err = bus.create_topic("orders", &TopicConfig::new(3, 3).min_insync(2)).await.unwrap_err();
        assert!(matches!(&err, BusError::Kafka { operation, .. } if operation.contains("`orders`")), "{err}");
        assert!(bus.list_groups().await.is_empty());
        let err = bus.create_topic("big", &TopicConfig::new(u32::MAX, 1)).await.unwrap_err();
        assert!(matches!(err, BusError::InvalidTopicConfig { .. }), "{err}");
    })
    .await;
}

#[test]
fn errors_map_by_code_and_place() {
    let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
    let op = || "op".to_owned();
    assert_eq!(
        map_error(&timed_out, op(), "t", Some(2)),
        BusError::LeaderNotAvailable { topic: "t".to_owned(), partition: 2 }
    );
    assert!(matches!(map_error(&timed_out, op(), "t", None), BusError::Kafka { .. }));
    let unknown = KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition);
    assert_eq!(map_error(&unknown, op(), "t", None), BusError::UnknownTopic { topic: "t".to_owned() });
    let other = KafkaError::ConsumerCommit(RDKafkaErrorCode::IllegalGeneration);
    let err = map_error(&other, op(), "t", Some(0));
    assert!(matches!(&err, BusError::Kafka { reason, .. } if reason.contains("IllegalGeneration")), "{err}");
}
