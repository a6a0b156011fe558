//! The fault catalogue on the reference pipeline in sim mode: each family takes effect where it should,
//! faults compose and expire, and bad requests are refused with the reason.

use crate::common;

use std::time::Duration;

use chaoslab::chaos::faults::{ApplyError, FaultRequest};
use chaoslab::runner::Run;
use chaoslab::topology::Pipeline;
use chaoslab::topology::flow::Flow;
use serde_json::{Value, json};

fn req(v: Value) -> FaultRequest {
    serde_json::from_value(v).unwrap()
}

fn iot_only() -> Flow {
    common::iot_only(chaoslab::catalog::reference_flow().unwrap())
}

async fn apply(p: &Pipeline, v: Value) -> chaoslab::chaos::faults::FaultRecord {
    p.faults.apply(&req(v.clone())).await.unwrap_or_else(|e| panic!("{v}: {e}"))
}

async fn sleep(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

#[test]
fn link_faults_compose_expire_and_are_traced() {
    let dir = tempfile::tempdir().unwrap();
    Run::new(iot_only()).out(dir.path())
        .seed(1)
        .sim_with(|p| async move {
            sleep(5).await;
            let link = p.links["MQTT_BROKER->FLINK"].clone();
            let delay = apply(
                &p,
                json!({"kind": "network-delay", "target": "MQTT_BROKER->FLINK", "duration": "20s",
                       "parameters": {"latency": "250ms"}}),
            )
            .await;
            let loss = apply(
                &p,
                json!({"kind": "network-loss", "target": "MQTT_BROKER->FLINK", "parameters": {"percent": 50}}),
            )
            .await;
            assert_eq!(delay.id, "f-0001");
            assert_eq!(link.faults().latency, Duration::from_millis(250));
            assert_eq!(link.faults().loss, 0.5);
            // Removing one fault leaves the other's effect in place.
            let removed = p.faults.remove(&loss.id).unwrap();
            assert_eq!(removed.status, "removed");
            assert_eq!(link.faults().loss, 0.0);
            assert_eq!(link.faults().latency, Duration::from_millis(250));
            sleep(21).await;
            assert!(link.faults().is_clear(), "the delay expired: {:?}", link.faults());
            let (active, ended) = p.faults.list();
            assert!(active.is_empty());
            assert_eq!(ended.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(), ["removed", "expired"]);
            let metrics = p.metrics.encode();
            assert!(metrics.contains("chaoslab_faults_applied_total{kind=\"network-delay\"} 1"), "{metrics}");
            assert!(metrics.contains("chaoslab_faults_active{kind=\"network-delay\"} 0"));
            // A component name with a direction takes that component's links.
            let part = apply(
                &p,
                json!({"kind": "network-partition", "target": "FLINK", "parameters": {"direction": "to"}, "duration": "5s"}),
            )
            .await;
            assert_eq!(part.targets, ["MQTT_BROKER->FLINK"]);
            sleep(6).await;
            Ok(())
        })
        .unwrap();
    let trace = common::trace(dir.path());
    let kinds: Vec<(&str, &str)> = trace
        .iter()
        .filter(|e| e["component"] == "chaoslab" && e["kind"].as_str().unwrap().starts_with("fault."))
        .map(|e| (e["kind"].as_str().unwrap(), e["data"]["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("fault.applied", "f-0001"),
            ("fault.applied", "f-0002"),
            ("fault.removed", "f-0002"),
            ("fault.removed", "f-0001"),
            ("fault.applied", "f-0003"),
            ("fault.removed", "f-0003")
        ]
    );
}

#[test]
fn pause_freezes_a_stage_and_it_resumes_with_its_backlog() {
    let dir = tempfile::tempdir().unwrap();
    Run::new(iot_only())
        .out(dir.path())
        .seed(2)
        .sim_with(|p| async move {
            sleep(5).await;
            let inbound = p.links["MQTT_BROKER->FLINK"].clone();
            let before = inbound.stats().delivered;
            apply(&p, json!({"kind": "process-pause", "target": "FLINK", "duration": "30s"})).await;
            let h = p.supervisor.health("FLINK").unwrap();
            assert!(h.paused && !h.ready);
            sleep(29).await;
            assert_eq!(inbound.stats().delivered, before, "nothing reaches a paused FLINK");
            assert!(inbound.in_flight() >= 25, "its backlog waits in the link: {}", inbound.in_flight());
            sleep(2).await;
            assert!(!p.supervisor.health("FLINK").unwrap().paused);
            sleep(1).await;
            assert!(inbound.stats().delivered >= before + 25, "the backlog is delivered after the pause");
            assert_eq!(inbound.stats().dropped(), 0, "a pause loses nothing");
            Ok(())
        })
        .unwrap();
}

#[test]
fn clock_io_and_data_faults_change_what_reaches_the_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let summary = Run::new(iot_only()).out(dir.path())
        .seed(3)
        .sim_with(|p| async move {
            sleep(10).await;
            apply(&p, json!({"kind": "clock-offset", "target": "SENSOR", "parameters": {"offset": "-1h"}, "duration": "10s"}))
                .await;
            sleep(12).await;
            apply(&p, json!({"kind": "disk-full", "target": "HADOOP", "duration": "10s"})).await;
            sleep(12).await;
            apply(&p, json!({"kind": "data-missing-time", "duration": "10s"})).await;
            sleep(12).await;
            apply(&p, json!({"kind": "data-none-values", "parameters": {"fields": ["temperature"]}, "duration": "10s"}))
                .await;
            sleep(12).await;
            Ok(())
        })
        .unwrap();
    // NODE-RED's flat file: one line per record it kept, with the sensor's `time`.
    let lines = std::fs::read_to_string(dir.path().join("node-red/data.txt")).unwrap();
    let times: Vec<chrono::DateTime<chrono::Utc>> = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| r["time"].as_str().and_then(|t| t.parse().ok()))
        .collect();
    let jumps_back = times.windows(2).filter(|w| w[1] < w[0] - chrono::Duration::minutes(59)).count();
    assert_eq!(jumps_back, 1, "the sensor's clock went back an hour once");
    let trace = common::trace(dir.path());
    let drops = |component: &str, reason: &str| {
        trace
            .iter()
            .filter(|e| {
                e["component"] == component && e["kind"] == "record.dropped" && e["data"]["reason"] == reason
            })
            .count()
    };
    assert!(drops("NODE-RED", "missing_time") >= 9, "records without time are dropped by NODE-RED");
    assert!(drops("HADOOP", "io_error") >= 9, "a full disk fails HADOOP's writes");
    let none_temps = lines.lines().filter(|l| l.contains(r#""temperature":" None""#)).count();
    assert!(none_temps >= 9, "{none_temps} records with a None temperature");
    assert!(summary.components["FLINK"].records_dropped >= 9, "FLINK skips the None records");
    assert_eq!(summary.components["SENSOR"].records_dropped, 0);
}

#[test]
fn bus_http_and_mqtt_faults_on_the_order_services() {
    let dir = tempfile::tempdir().unwrap();
    let flow = common::no_load(chaoslab::catalog::reference_flow().unwrap());
    Run::new(flow).out(dir.path())
        .seed(4)
        .sim_with(|p| async move {
            sleep(5).await;
            let bus = common::bus(&p);
            let offline = || async {
                bus.describe_topic("poke-orders").await.unwrap().has_offline_partitions()
            };
            assert!(!offline().await);
            let down = apply(&p, json!({"kind": "kafka-broker-down", "target": "KAFKA-*", "mode": "all", "duration": "10s"})).await;
            assert_eq!(down.targets, ["KAFKA-1", "KAFKA-2", "KAFKA-3"]);
            assert!(offline().await, "every broker down: poke-orders is offline");
            sleep(11).await;
            assert!(!offline().await, "the brokers came back");

            let produced = apply(
                &p,
                json!({"kind": "kafka-produce", "parameters": {"topic": "poke-orders", "partition": 2, "messages": ["not json"]}}),
            )
            .await;
            assert_eq!(produced.status, "completed");
            assert_eq!(produced.output[0]["partition"], 2);

            let api = common::order_api(&p);
            let get = || async { api.send(hyper::Method::GET, "/orders/", None).await.unwrap().status.as_u16() };
            assert_eq!(get().await, 200);
            let abort = apply(&p, json!({"kind": "http-abort", "parameters": {"code": 503, "path": "/orders"}})).await;
            assert_eq!(get().await, 503);
            p.faults.remove(&abort.id);
            assert_eq!(get().await, 200);

            let dropped = apply(&p, json!({"kind": "mqtt-drop-session", "parameters": {"client_id": "nodered"}})).await;
            assert_eq!(dropped.output["dropped"], "nodered", "NODE-RED's client id");
            let err = p.faults.apply(&req(json!({"kind": "mqtt-drop-session", "parameters": {"client_id": "ghost"}}))).await;
            let Err(ApplyError::Failed(why)) = err else { panic!("{err:?}") };
            assert!(why.contains("no connected client \"ghost\""), "{why}");
            Ok(())
        })
        .unwrap();
}

#[test]
fn bad_requests_are_refused_with_the_reason_and_nothing_applied() {
    let dir = tempfile::tempdir().unwrap();
    Run::new(iot_only())
        .out(dir.path())
        .sim_with(|p| async move {
            let refuse = |v: Value| {
                let p = p.clone();
                async move {
                    match p.faults.apply(&req(v)).await {
                        Err(e) => e.to_string(),
                        Ok(r) => panic!("applied {r:?}"),
                    }
                }
            };
            let e = refuse(json!({"kind": "meteor", "target": "FLINK"})).await;
            assert!(e.contains("unknown fault kind \"meteor\""), "{e}");
            let e = refuse(json!({"kind": "process-kill", "target": "SPORK"})).await;
            assert!(e.contains("\"SPORK\" matches nothing") && e.contains("FLINK"), "{e}");
            let e = refuse(json!({"kind": "disk-full", "target": "FLINK"})).await;
            assert!(e.contains("I/O faults act on stores and sinks"), "{e}");
            let e = refuse(json!({"kind": "network-delay", "target": "A->B", "duration": "a while",
                                  "parameters": {"latency": "1s"}}))
            .await;
            assert!(e.contains("duration: \"a while\" is not a duration"), "{e}");
            let e = refuse(json!({"kind": "kafka-broker-down", "target": "KAFKA-1"})).await;
            assert!(e.contains("order services are off"), "{e}");
            assert!(p.faults.all().is_empty(), "nothing was applied");
            Ok(())
        })
        .unwrap();
}

/// Resident memory of this process, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The kinds no other test applies, each applied to the reference flow and checked by what it does:
/// network duplicate, corrupt, reorder and bandwidth; data drop-fields and out-of-order; I/O error,
/// latency and mistake; HTTP delay, replace-body, replace and patch; the Chaos Monkey exception, kill
/// and memory assaults; broker reboot and restart; group rebalance and deletion; topic deletion.
#[test]
fn every_other_kind_is_applied_and_does_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let flow = common::no_load(chaoslab::catalog::reference_flow().unwrap());
    Run::new(flow)
        .out(dir.path())
        .seed(6)
        .sim_with(|p| async move {
            sleep(5).await;
            // Network.
            let short = |kind: &str, target: &str, parameters: Value| {
                json!({"kind": kind, "target": target, "duration": "10s", "parameters": parameters})
            };
            apply(&p, short("network-duplicate", "MQTT_BROKER->FLINK", json!({"percent": 100}))).await;
            apply(&p, short("network-corrupt", "MQTT_BROKER->NIFI", json!({"percent": 100}))).await;
            apply(&p, short("network-reorder", "MQTT_BROKER->NODE-RED", json!({"percent": 50, "latency": "3s"})))
                .await;
            sleep(12).await;
            assert!(p.links["MQTT_BROKER->FLINK"].stats().duplicated >= 5);
            assert!(p.links["MQTT_BROKER->NIFI"].stats().corrupted >= 5);
            apply(&p, short("network-bandwidth", "SENSOR->MQTT_BROKER", json!({"rate": 20}))).await;
            sleep(9).await;
            let sensor = p.links["SENSOR->MQTT_BROKER"].stats();
            assert!(sensor.sent >= sensor.delivered + 5, "a 20 B/s link backs up: {sensor:?}");
            sleep(30).await;

            // Data.
            apply(&p, json!({"kind": "data-drop-fields", "parameters": {"fields": ["humidity"]}, "duration": "5s"})).await;
            sleep(7).await;
            apply(&p, json!({"kind": "data-out-of-order", "parameters": {"shift": "1h"}, "duration": "5s"})).await;
            sleep(7).await;

            // Storage.
            apply(&p, json!({"kind": "io-error", "target": "HADOOP", "duration": "5s"})).await;
            sleep(7).await;
            apply(&p, json!({"kind": "io-mistake", "target": "NODE-RED", "duration": "5s",
                             "parameters": {"occurrences": 1, "length": 4}}))
            .await;
            sleep(7).await;
            apply(&p, json!({"kind": "io-latency", "target": "HADOOP", "duration": "10s", "parameters": {"delay": "3s"}}))
                .await;
            sleep(12).await;

            // HTTP, on the order API.
            let api = common::order_api(&p);
            let created = api
                .send(hyper::Method::POST, "/orders/", Some(br#"{"user_id":1,"pokemon":"mew","country":"Chile","price":1}"#.to_vec()))
                .await
                .unwrap();
            assert_eq!(created.status.as_u16(), 200);
            let get = |path: &'static str| {
                let api = api.clone();
                async move {
                    let r = api.send(hyper::Method::GET, path, None).await.unwrap();
                    (r.status.as_u16(), serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null))
                }
            };
            let delay = apply(&p, json!({"kind": "http-delay", "parameters": {"delay": "2s", "path": "/orders/1"}})).await;
            let t0 = tokio::time::Instant::now();
            assert_eq!(get("/orders/1").await.0, 200);
            assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
            p.faults.remove(&delay.id);
            let body = apply(&p, json!({"kind": "http-replace-body", "parameters": {"body": {"x": 1}, "path": "/orders/1"}})).await;
            assert_eq!(get("/orders/1").await.1, json!({"x": 1}));
            p.faults.remove(&body.id);
            let replace = apply(&p, json!({"kind": "http-replace", "parameters": {"target": "request", "path": "/orders/1", "set-path": "/openapi.json"}})).await;
            assert_eq!(get("/orders/1").await.1["openapi"], "3.1.0", "the request went to another route");
            p.faults.remove(&replace.id);
            let patch = apply(&p, json!({"kind": "http-patch", "parameters": {"target": "response", "path": "/orders/1", "merge-body": {"country": "Atlantis"}}})).await;
            let (_, order) = get("/orders/1").await;
            assert_eq!((order["country"].as_str(), order["pokemon"].as_str()), (Some("Atlantis"), Some("mew")));
            p.faults.remove(&patch.id);
            let thrown = apply(&p, json!({"kind": "assault-exception", "parameters": {"path": "/orders"}})).await;
            assert_eq!(get("/orders/1").await.0, 500);
            p.faults.remove(&thrown.id);
            apply(&p, json!({"kind": "assault-kill", "target": "POKE-ORDER-API", "duration": "5s"})).await;
            assert_eq!(get("/orders/1").await.0, 503, "the service is down");
            sleep(6).await;
            assert_eq!(get("/orders/1").await.0, 200, "and back");
            let before = rss();
            let held = apply(&p, json!({"kind": "assault-memory", "target": "POKE-ORDER-API", "parameters": {"megabytes": 64}})).await;
            assert!(rss() >= before + 48 * 1024 * 1024, "64 MB are resident: {} → {}", before, rss());
            p.faults.remove(&held.id);

            // The bus and the broker.
            let bus = p.handles.first::<chaoslab::bus::kafka_cluster::BusHandle>().unwrap().bus.clone();
            let up = |id: u32| bus.brokers().iter().find(|b| b.id == id).map(|b| b.up);
            apply(&p, json!({"kind": "kafka-broker-reboot", "target": "KAFKA-2", "parameters": {"downtime": "5s"}})).await;
            assert_eq!(up(2), Some(false), "down at once");
            sleep(6).await;
            assert_eq!(up(2), Some(true), "up after the downtime");
            let rebalances = || p.metrics.total("bus_group_rebalances");
            let before = rebalances();
            apply(&p, json!({"kind": "kafka-rebalance-group", "parameters": {"group": "poke-order-consumer", "topic": "poke-orders"}})).await;
            sleep(10).await;
            assert!(rebalances() > before, "{before} → {}", rebalances());
            p.supervisor.stop("ORDER-UPDATER").unwrap();
            sleep(5).await;
            apply(&p, json!({"kind": "kafka-delete-group", "parameters": {"group": "order-updater"}})).await;
            assert!(bus.admin().describe_group("order-updater").is_err(), "the group is gone");
            apply(&p, json!({"kind": "kafka-delete-topic", "parameters": {"topic": "poke-orders-dlq"}})).await;
            assert!(!bus.admin().list_topics().iter().any(|t| t == "poke-orders-dlq"));
            apply(&p, json!({"kind": "mqtt-broker-restart"})).await;
            sleep(5).await;
            Ok(())
        })
        .unwrap();

    let trace = common::trace(dir.path());
    let count = |component: &str, kind: &str| {
        trace.iter().filter(|e| e["component"] == component && e["kind"] == kind).count()
    };
    assert_eq!(count("MQTT_BROKER", "broker.starting"), 2, "the broker started again after the restart");
    let io_errors = trace
        .iter()
        .filter(|e| {
            e["component"] == "HADOOP" && e["kind"] == "record.dropped" && e["data"]["reason"] == "io_error"
        })
        .count();
    assert!(io_errors >= 3, "failed writes: {io_errors}");
    // Stored writes 3 s apart while the latency lasted.
    let stored: Vec<chrono::DateTime<chrono::Utc>> = trace
        .iter()
        .filter(|e| e["component"] == "HADOOP" && e["kind"] == "file.stored")
        .filter_map(|e| e["t"].as_str().and_then(|t| t.parse().ok()))
        .collect();
    assert!(stored.windows(2).any(|w| w[1] - w[0] >= chrono::Duration::seconds(3)), "slow writes show");
    let file = std::fs::read(dir.path().join("node-red/data.txt")).unwrap();
    assert!(file.contains(&0), "the mistake wrote zero bytes into NODE-RED's file");
    let lines: Vec<Value> = String::from_utf8_lossy(&file)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    assert!(lines.iter().filter(|r| r.get("humidity").is_none()).count() >= 3, "records without humidity");
    let times: Vec<chrono::DateTime<chrono::Utc>> =
        lines.iter().filter_map(|r| r["time"].as_str().and_then(|t| t.parse().ok())).collect();
    let back = times.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(back >= 2, "reordered and shifted records arrive out of time order: {back}");
}
