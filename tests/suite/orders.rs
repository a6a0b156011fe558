//! The Pokémon order services in sim mode: the reference's behaviour, its two weaknesses, and their fixes.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use chaoslab::bus::{Acks, ProducerConfig};
use chaoslab::catalog::REFERENCE_FLOW;
use chaoslab::orders::fraud::is_fraud;
use chaoslab::orders::fraud_detector::{FraudDetectorConfig, PoisonMode};
use chaoslab::orders::load_generator::LoadGeneratorConfig;
use chaoslab::orders::model::OrderState;
use chaoslab::orders::service::{DETECTIVE_GROUP, ORDERS_TOPIC};
use chaoslab::runner::Run;
use chaoslab::runner::summary::RunSummary;
use chaoslab::topology::flow::Flow;

const MIN: Duration = Duration::from_secs(60);

/// The reference flow, orders only (no IoT path), with `users` × `orders` of load 2 s apart.
fn orders_flow(text: &str, users: u32, orders: u32) -> Flow {
    let mut flow = chaoslab::catalog::parse_flow(text, "orders.toml", None).unwrap();
    flow.without(&["SENSOR", "FLINK", "NIFI", "HADOOP", "NODE-RED", "SPARK", "ELASTICSEARCH"]);
    flow.configure::<LoadGeneratorConfig>(|l| {
        l.users = users;
        l.orders = orders;
    });
    flow
}

fn by_state(s: &RunSummary, state: &str) -> u64 {
    s.orders.as_ref().unwrap().invariants.by_state[state]
}

#[test]
fn decisions_follow_the_fraud_rule_and_every_order_settles() {
    let run = |seed| {
        let dir = tempfile::tempdir().unwrap();
        let s =
            Run::new(orders_flow(REFERENCE_FLOW, 5, 100)).out(dir.path()).seed(seed).sim(5 * MIN).unwrap();
        // What the fraud rule predicts for the orders the load generated, read back from the store.
        let db = rusqlite::Connection::open(dir.path().join("orders.db")).unwrap();
        let mut stmt = db.prepare("SELECT user_id, pokemon, price FROM poke_orders").unwrap();
        let orders: Vec<(i64, String, f64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let predicted = orders.iter().filter(|(u, p, price)| is_fraud(*u, p, *price)).count() as u64;
        (s, predicted, orders)
    };
    let (s, predicted, orders) = run(3);
    let inv = &s.orders.as_ref().unwrap().invariants;
    assert_eq!(inv.created, 500);
    assert_eq!(orders.len(), 500);
    assert!(inv.ok, "{inv:?}");
    assert_eq!(by_state(&s, "rejected"), predicted);
    assert_eq!(by_state(&s, "success"), 500 - predicted);
    assert_eq!(
        (by_state(&s, "pending"), by_state(&s, "reversed")),
        (0, 0),
        "every order decided, none expired"
    );
    assert!(orders.iter().filter(|o| o.0 == 5).count() == 100, "user 5 placed 100 orders, all rejected");
    assert!(
        predicted > 100 && predicted < 400,
        "the rule rejects user 5, prices > 200 and d/f/a names: {predicted}"
    );
    let again = run(3).0;
    assert_eq!(s.trace.digest, again.trace.digest, "deterministic for the seed");
    let other = run(4);
    assert_ne!(other.2, orders, "another seed, other orders");
}

/// Publishes the reference experiment's truncated message on partition 1 at 2 min, then keeps going.
fn poison_run(poison: PoisonMode) -> (RunSummary, Vec<serde_json::Value>, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut flow = orders_flow(REFERENCE_FLOW, 5, 150);
    flow.configure::<FraudDetectorConfig>(|d| d.poison = poison);
    let (mut lag_p1, mut pill_offset) = (0, 0);
    let (lag, offset) = (&mut lag_p1, &mut pill_offset);
    let s = Run::new(flow).out(dir.path())
        .seed(8)
        .sim_with(|p| async move {
            tokio::time::sleep(2 * MIN).await;
            let bus = p.handles.first::<chaoslab::bus::kafka_cluster::BusHandle>().unwrap().bus.clone();
            let chaos = bus.producer("chaostoolkit", ProducerConfig { acks: Acks::All });
            let pill = r#"{"id": 4054, "user_id": 2, "pokemon": "rapidash", "country": "Germany", "price": 246.0, "state": "pending", "timestamp": "2024-08-14 05:38:58.922008"#;
            let meta = chaos.send(ORDERS_TOPIC, Some(1), None, Bytes::from(pill), 0).await.unwrap();
            *offset = meta.offset.unwrap();
            tokio::time::sleep(3 * MIN).await;
            let lags = bus.admin().consumer_lag(DETECTIVE_GROUP, ORDERS_TOPIC).unwrap();
            let p1 = lags.iter().find(|l| l.partition == 1).unwrap();
            *lag = p1.high_watermark - p1.committed.unwrap_or(p1.log_start);
            Ok(())
        })
        .unwrap();
    (s, common::trace(dir.path()), lag_p1, pill_offset)
}

#[test]
fn a_poison_pill_stalls_its_partition_unless_parked_on_the_dlq() {
    let (stalled, trace, lag, pill) = poison_run(PoisonMode::Retry);
    assert!(lag > 20, "partition 1's lag grows behind the poison pill: {lag}");
    let reversed = by_state(&stalled, "reversed");
    assert!(reversed > 20, "its orders expire: {reversed}");
    // Exactly the orders published to partition 1 after the pill were reversed.
    let mut behind: Vec<u64> = trace
        .iter()
        .filter(|e| {
            e["kind"] == "order.published"
                && e["data"]["partition"] == 1
                && e["data"]["offset"].as_u64().unwrap() > pill
        })
        .map(|e| e["data"]["id"].as_u64().unwrap())
        .collect();
    behind.sort();
    let mut reversed_ids: Vec<u64> = trace
        .iter()
        .filter(|e| e["kind"] == "order.state" && e["data"]["to"] == "reversed")
        .map(|e| e["data"]["id"].as_u64().unwrap())
        .collect();
    reversed_ids.sort();
    let expired: Vec<u64> = behind.iter().copied().filter(|id| reversed_ids.contains(id)).collect();
    assert_eq!(reversed_ids, expired, "only orders stuck behind the pill are reversed");
    assert!(
        trace.iter().filter(|e| e["kind"] == "poison.retry").count() > 100,
        "retried about once a second"
    );
    assert!(stalled.orders.as_ref().unwrap().invariants.ok);

    let (parked, trace, lag, _) = poison_run(PoisonMode::Dlq);
    assert_eq!(lag, 0);
    assert_eq!(by_state(&parked, "reversed"), 0);
    assert_eq!(trace.iter().filter(|e| e["kind"] == "poison.parked").count(), 1);
    assert_eq!(by_state(&parked, "pending"), 0);
}

/// Takes broker 1 down from 2 to 5 minutes with the given topic configuration.
fn broker_down(text: &str) -> RunSummary {
    // `text` may `extends = "reference.toml"`: without a directory that is the built-in flow.
    let dir = tempfile::tempdir().unwrap();
    let with_outage =
        format!("{text}\n[[schedule]]\nat = \"2m\"\naction = \"stop\"\ntarget = \"KAFKA-1\"\nfor = \"3m\"\n");
    Run::new(orders_flow(&with_outage, 5, 200)).out(dir.path()).seed(5).sim(9 * MIN).unwrap()
}

#[test]
fn a_broker_outage_reverses_orders_with_the_initial_topics_and_not_with_the_fixed_ones() {
    let initial = broker_down(REFERENCE_FLOW);
    let failures = initial.orders.as_ref().unwrap().publish_failures;
    assert!(failures > 5, "produces to the partition led by broker 1 time out: {failures}");
    assert_eq!(by_state(&initial, "reversed"), failures, "every order whose publish failed expired");
    assert!(initial.orders.as_ref().unwrap().invariants.ok);

    let fixed_text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/flows/reference-fixed.toml")).unwrap();
    let fixed = broker_down(&fixed_text);
    assert_eq!(fixed.orders.as_ref().unwrap().publish_failures, 0);
    assert_eq!(by_state(&fixed, "reversed"), 0);
    assert_eq!(by_state(&fixed, "pending"), 0);
    assert_eq!(fixed.components["KAFKA-1"].restarts, 0, "stopped and started, not crashed");
}

#[test]
fn the_outbox_never_strands_an_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut flow = orders_flow(
        &format!(
            "{REFERENCE_FLOW}\n[[schedule]]\nat = \"2m\"\naction = \"stop\"\ntarget = \"KAFKA-1\"\nfor = \"3m\"\n"
        ),
        5,
        200,
    );
    chaoslab::orders::outbox_relay::set_publish(&mut flow, chaoslab::orders::order_api::PublishMode::Outbox);
    let s = Run::new(flow).out(dir.path()).seed(5).sim(9 * MIN).unwrap();
    assert_eq!(s.orders.as_ref().unwrap().publish_failures, 0);
    assert_eq!(by_state(&s, "pending"), 0);
    assert!(s.components["OUTBOX-RELAY"].records_out >= 1000);
    // Orders placed during the outage waited in the outbox and may have expired before the relay got
    // them through: that is the reverser's timer, not a lost order. None is missing.
    let inv = &s.orders.as_ref().unwrap().invariants;
    assert!(inv.missing.is_empty() && inv.wrong_decision.is_empty(), "{inv:?}");
    let _ = OrderState::Reversed;
}

/// The invariants are the oracle of the order tests, so they must be able to fail: a created order
/// missing from the store, a decision against the fraud rule, and a state change the flow does not
/// allow are each reported (and only then is `ok` false).
#[test]
fn the_invariants_report_each_kind_of_violation() {
    let dir = tempfile::tempdir().unwrap();
    Run::new(orders_flow(REFERENCE_FLOW, 1, 10))
        .out(dir.path())
        .seed(4)
        .sim_with(|p| async move {
            tokio::time::sleep(2 * MIN).await;
            let db = common::order_db(&p);
            let clean = db.invariants().await.unwrap();
            assert!(clean.ok && clean.created == 10, "{clean:?}");
            let orders = db.store.list(None, 0, 100).await.unwrap();

            // A created order the store lost.
            db.ledger.created(9_999);
            let inv = db.invariants().await.unwrap();
            assert_eq!((inv.missing.clone(), inv.ok), (vec![9_999], false), "{inv:?}");

            // A decision against the fraud rule, written behind the services' back.
            let decided = orders.iter().find(|o| o.state != OrderState::Pending).expect("a decided order");
            let wrong =
                if decided.state == OrderState::Success { OrderState::Rejected } else { OrderState::Success };
            db.store.set_state(decided.id, wrong).await.unwrap();
            let inv = db.invariants().await.unwrap();
            assert_eq!(inv.wrong_decision, vec![decided.id], "{inv:?}");

            // A change the flow never makes.
            db.ledger.changed(decided.id, OrderState::Success, OrderState::Pending);
            let inv = db.invariants().await.unwrap();
            assert_eq!(
                inv.illegal_transitions,
                vec![(decided.id, "success -> pending".to_string())],
                "{inv:?}"
            );
            assert!(!inv.ok);
            Ok(())
        })
        .unwrap();
}

/// With a tiny in-memory tail the bus writes its logs to segment files under `kafka-logs/`, and the run
/// is the same run: every order settles as without spilling, the detectives read what went to disk, and
/// memory holds no more than the tail of each partition.
#[test]
fn the_bus_spills_its_logs_to_segment_files_and_the_run_is_unchanged() {
    use chaoslab::bus::kafka_cluster::KafkaClusterConfig;
    let run = |memory_bytes: u64| {
        let dir = tempfile::tempdir().unwrap();
        let mut flow = orders_flow(REFERENCE_FLOW, 2, 150);
        flow.configure::<KafkaClusterConfig>(|k| {
            k.memory_bytes = memory_bytes;
            k.segment_bytes = 4096;
        });
        let s = Run::new(flow).out(dir.path()).seed(7).sim(10 * MIN).unwrap();
        (s, dir)
    };
    let (spilled, dir) = run(2048);
    let (in_memory, _d) = run(0);
    let (a, b) = (spilled.orders.as_ref().unwrap(), in_memory.orders.as_ref().unwrap());
    assert!(a.invariants.ok && a.invariants.created == 300, "{:?}", a.invariants);
    assert_eq!(a.invariants.by_state, b.invariants.by_state, "the same decisions");
    assert_eq!(a.bus.records_produced, b.bus.records_produced);
    assert_eq!(a.bus.records_fetched, b.bus.records_fetched, "consumers read every record back from disk");
    assert_eq!(b.bus.log_disk_bytes, 0);
    assert!(a.bus.log_disk_bytes > 100_000, "{:?}", a.bus);
    // Each partition keeps at most its tail in memory (the newest record may overflow it).
    assert!(a.bus.log_memory_bytes <= a.bus.partitions as u64 * 2048 + 4096, "{:?}", a.bus);
    assert!(b.bus.log_memory_bytes > a.bus.log_memory_bytes * 10, "{:?}", b.bus);
    let part = dir.path().join("kafka-logs").join("poke-orders-0");
    let files: Vec<String> =
        std::fs::read_dir(&part).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(files.contains(&"00000000000000000000.log".to_string()), "{files:?}");
    assert!(files.len() > 1, "segments roll at segment_bytes: {files:?}");
}
