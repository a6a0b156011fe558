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
