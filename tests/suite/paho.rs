//! A real MQTT client from another implementation, Eclipse paho-mqtt (Python), against a live chaoslab, in
//! MQTT 3.1.1 and MQTT 5: QoS 0/1/2, retained messages, a persistent session that queues while its
//! client is away, a last will, and MQTT 5's user properties and message expiry passed through.
//!
//! Needs a Python with `paho-mqtt` 2.x, named by `PAHO_PYTHON` (`.ci/run` sets it up); without it the
//! test is skipped, or fails under `CHAOSLAB_REQUIRE_EXTERNALS=1`:
//!
//! ```text
//! python3 -m venv .venv && .venv/bin/pip install paho-mqtt
//! PAHO_PYTHON=.venv/bin/python cargo test --test suite paho
//! ```

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use chaoslab::runner::Run;
use serde_json::{Value, json};
use tokio::time::timeout;

const SCRIPT: &str = include_str!("paho_client.py");
const WAIT: Duration = Duration::from_secs(60);

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// `(topic, payload)` of each message, in arrival order.
fn seen(messages: &Value) -> Vec<(String, String)> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["topic"].as_str().unwrap().to_owned(), m["payload"].as_str().unwrap().to_owned()))
        .collect()
}

fn pairs(base: &str, list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(t, p)| (format!("{base}/{t}"), (*p).to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_clients_in_mqtt_3_1_1_and_5_get_what_the_protocol_promises() {
    let Some(python) = std::env::var("PAHO_PYTHON").ok().filter(|p| !p.is_empty()) else {
        common::skip("paho_clients", "PAHO_PYTHON (a Python with paho-mqtt) is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = Run::new(common::iot_only(chaoslab::catalog::reference_flow().unwrap()))
        .out(dir.path().join("out"))
        .seed(3)
        .rate_ms(200)
        .http_listen(any_port())
        .mqtt_listen(any_port())
        .forward_listen(any_port())
        .log_http_listen(any_port());
    let handle = timeout(WAIT, run.live()).await.expect("live run did not start in time").unwrap();
    let port = handle.mqtt_url.as_ref().expect("the flow has an MQTT broker").port;

    for version in ["311", "5"] {
        let output = timeout(
            WAIT,
            tokio::process::Command::new(&python)
                .arg("-c")
                .arg(SCRIPT)
                .args([port.to_string(), version.to_owned()])
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the paho client finishes")
        .expect("the paho client starts");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "MQTT {version}: {stderr}");
        let r: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("MQTT {version}: {e}: {}", String::from_utf8_lossy(&output.stdout)));
        let base = if version == "5" { "paho/v5" } else { "paho/v311" };
        let ctx = format!("MQTT {version}: {r:#}");

        assert_eq!(r["sub_connack"], json!({"code": 0, "session_present": false}), "{ctx}");
        assert_eq!(r["granted"], json!([2]), "QoS 2 is granted: {ctx}");
        // Every QoS arrives, in order. (rumqttd delivers at the subscription's QoS even when the message
        // was published at a lower one; the README lists it among the differences.)
        assert_eq!(seen(&r["live"]), pairs(base, &[("q0", "m0"), ("q1", "m1"), ("q2", "m2")]), "{ctx}");
        for (i, m) in r["live"].as_array().unwrap().iter().enumerate() {
            assert!(m["qos"].as_u64().unwrap() >= i as u64, "delivered at least at its QoS: {ctx}");
            assert_eq!(m["retain"], false, "{ctx}");
        }
        // A later subscriber gets the retained message, flagged as retained.
        assert_eq!(seen(&r["retained"]), pairs(base, &[("retained", "kept")]), "{ctx}");
        assert_eq!(r["retained"][0]["retain"], true, "{ctx}");
        // The persistent session survived its client's absence and kept what came meanwhile.
        assert_eq!(r["resumed_connack"], json!({"code": 0, "session_present": true}), "{ctx}");
        assert_eq!(seen(&r["queued"]), pairs(base, &[("away", "while-away")]), "{ctx}");
        // The publisher vanished without DISCONNECT: its will went out.
        assert_eq!(seen(&r["after_will"]), pairs(base, &[("away", "while-away"), ("will", "gone")]), "{ctx}");
        if version == "5" {
            // User properties pass through unchanged, in order; the message expiry is passed on.
            for m in r["live"].as_array().unwrap() {
                assert_eq!(m["user"], json!([["origin", "paho"], ["run", "chaoslab"]]), "{ctx}");
            }
            assert_eq!(r["live"][0]["expiry"], Value::Null, "{ctx}");
            for m in &r["live"].as_array().unwrap()[1..] {
                let left = m["expiry"].as_u64().unwrap_or_else(|| panic!("no message expiry: {ctx}"));
                assert!((590..=600).contains(&left), "the expiry left: {ctx}");
            }
        }
    }
    timeout(WAIT, handle.stop()).await.expect("live run did not stop in time").unwrap();
}
