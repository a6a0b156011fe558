//! Live-mode integration tests: the reference flow on real sockets on 127.0.0.1.
//!
//! Every test binds free ports only (`127.0.0.1:0`), so it never collides with a broker or web server
//! already on the machine, and writes into its own temporary directory. External clients are real: MQTT
//! sessions from the crate's own rumqttc client, HTTP over a bare `TcpStream`, `promtool` and Mosquitto
//! when they are installed, and the `chaoslab` binary itself. Every wait is bounded, so a broken
//! pipeline fails a test instead of hanging it; no test asserts how fast anything is.

use crate::common;

use common::http::{eventually, http_get};

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chaoslab::kernel::supervisor::State;
use chaoslab::runner::summary::RunSummary;
use chaoslab::runner::{LiveHandle, Run};
use chaoslab::sources::dataset::{Dataset, SensorRow};
use chaoslab::sources::sensor_replay::BUILTIN_DATASET;
use chaoslab::topology::flow::Flow;
use chaoslab::transport::envelope::{Envelope, Qos};
use chaoslab::transport::mqtt::client::{BrokerUrl, ClientOptions, LiveSession};
use chaoslab::transport::mqtt::error::MqttError;
use prometheus_parse::Scrape;
use serde_json::Value;
use tokio::time::timeout;

/// Upper bound on any single wait (a record, a window, a state change, an HTTP exchange).
const WAIT: Duration = Duration::from_secs(20);
/// The sensor's topic in the reference flow.
const TOPIC: &str = "customTopic";
/// The index FLINK writes to in the reference flow.
const INDEX: &str = "flink-sensor-data";
/// The components of the reference flow.
const REFERENCE_COMPONENTS: [&str; 8] =
    ["ELASTICSEARCH", "FLINK", "HADOOP", "MQTT_BROKER", "NIFI", "NODE-RED", "SENSOR", "SPARK"];

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The reference flow, live on free ports, with a seeded sensor publishing every 20 ms.
/// The IoT path of the reference flow (the order services have their own tests in `orders_live.rs`).
fn fast_run(out: &Path) -> Run {
    run_with(common::iot_only(chaoslab::catalog::reference_flow().unwrap()), out)
}

fn run_with(flow: Flow, out: &Path) -> Run {
    Run::new(flow)
        .out(out)
        .seed(1)
        .rate_ms(20)
        .http_listen(any_port())
        .mqtt_listen(any_port())
        .forward_listen(any_port())
        .log_http_listen(any_port())
}

/// Where a live run's MQTT clients connect.
fn mqtt(h: &LiveHandle) -> &BrokerUrl {
    h.mqtt_url.as_ref().expect("the flow has an MQTT broker")
}

async fn start(run: Run) -> LiveHandle {
    timeout(WAIT, run.live()).await.expect("live run did not start in time").unwrap()
}

async fn stop(handle: LiveHandle) -> RunSummary {
    timeout(WAIT, handle.stop()).await.expect("live run did not stop in time").unwrap()
}

/// `GET /metrics`, checked for status and content type, parsed.
async fn scrape(addr: SocketAddr) -> Scrape {
    let response = http_get(addr, "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("text/plain; version=0.0.4"));
    parse_metrics(&response.body)
}

/// Parses the text format; prometheus-parse skips lines it does not understand, so every sample line
/// must also come out as a sample (a histogram's `_bucket`/`_sum`/`_count` lines become one sample per
/// label set, counted by its `_count` line).
fn parse_metrics(text: &str) -> Scrape {
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let histograms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter(|l| l.ends_with(" histogram"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let family = |l: &str| histograms.iter().find(|h| l.starts_with(&format!("{h}_"))).copied();
    let sample_lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter(|l| match family(l) {
            Some(h) => l.starts_with(&format!("{h}_count")),
            None => true,
        })
        .count();
    assert_eq!(scrape.samples.len(), sample_lines, "some sample lines did not parse:\n{text}");
    scrape
}

/// The value of the sample `metric{labels}`, if present.
fn sample(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))?;
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => Some(v),
        ref other => panic!("{metric}: unexpected sample value {other:?}"),
    }
}

async fn metric(addr: SocketAddr, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(&scrape(addr).await, metric, labels)
}

async fn connect(url: &BrokerUrl, client_id: &str) -> Result<LiveSession, MqttError> {
    let opts = ClientOptions {
        url: url.clone(),
        client_id: client_id.to_string(),
        clean_session: true,
        keep_alive: Duration::from_secs(30),
    };
    timeout(WAIT, LiveSession::connect(opts)).await.expect("connect did not resolve in time")
}

/// A session subscribed to the sensor's topic.
async fn subscriber(url: &BrokerUrl, client_id: &str) -> LiveSession {
    let mut session = connect(url, client_id).await.unwrap();
    session.subscribe(TOPIC, Qos::AtLeastOnce).await.unwrap();
    session
}

/// The next message's payload as JSON.
async fn recv_json(session: &mut LiveSession) -> Value {
    let env = timeout(WAIT, session.recv()).await.expect("no message in time").unwrap();
    assert_eq!(env.topic, TOPIC);
    serde_json::from_slice(&env.payload).unwrap_or_else(|e| panic!("payload is not JSON ({e}): {env:?}"))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, a valid instant.
fn is_iso_millis(s: &str) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    s.len() == SHAPE.len()
        && s.bytes().zip(SHAPE).all(|(c, &p)| if p == b'd' { c.is_ascii_digit() } else { c == p })
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// Checks a sensor payload's shape and returns `(device_id, humidity, temperature)`.
fn sensor_record(v: &Value) -> (String, String, String) {
    let obj = v.as_object().unwrap_or_else(|| panic!("not a JSON object: {v}"));
    // serde_json keeps key order here (the crate enables `preserve_order`): the reference's order.
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys, ["device_id", "humidity", "temperature", "time"], "{v}");
    let text = |k: &str| obj[k].as_str().unwrap_or_else(|| panic!("{k} is not a string: {v}")).to_string();
    let time = text("time");
    assert!(is_iso_millis(&time), "time {time:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ");
    (text("device_id"), text("humidity"), text("temperature"))
}

fn builtin_rows() -> Vec<SensorRow> {
    Dataset::from_reader("builtin:gnfuv-synth.csv", BUILTIN_DATASET.as_bytes()).unwrap().rows
}

/// The built-in dataset without its ` None` rows, so that FLINK drops nothing the sensor sends.
fn clean_dataset(dir: &Path) -> PathBuf {
    let path = dir.join("clean.csv");
    let text: String =
        BUILTIN_DATASET.lines().filter(|l| !l.contains("None")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// Waits until `/health` answers 200 with every component running and ready; returns the body.
async fn wait_healthy(addr: SocketAddr) -> Value {
    eventually("every component running and ready", async || {
        let response = http_get(addr, "/health").await;
        let body = response.json();
        let all_ready = body["components"]
            .as_object()
            .is_some_and(|c| c.values().all(|h| h["state"] == "running" && h["ready"] == true));
        (response.status == 200 && all_ready).then_some(body)
    })
    .await
}

/// The one lint promtool reports on our metrics: the reference's alert watches `broker_uptime{job="mqtt"}`
/// (mosquitto-exporter's name) with `increase()`, so the counter keeps that name without `_total`.
const KNOWN_LINT: &str = r#"broker_uptime counter metrics should have "_total" suffix"#;

/// Runs `promtool check metrics < file`: no format error (exit 1) and no lint but [`KNOWN_LINT`]
/// (lint problems alone exit 3).
fn promtool_check(promtool: &Path, file: &Path) {
    let output = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(file).unwrap())
        .output()
        .unwrap();
    let report =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let problems: Vec<&str> =
        report.lines().map(str::trim).filter(|l| !l.is_empty() && *l != KNOWN_LINT).collect();
    let only_known_lint = output.status.code() == Some(3) && problems.is_empty();
    assert!(
        output.status.success() || only_known_lint,
        "promtool check metrics failed ({}):\n{report}",
        output.status
    );
}

// ---------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_subscriber_receives_sensor_records_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(fast_run(&dir.path().join("out"))).await;
    let mut session = subscriber(mqtt(&handle), "test-subscriber").await;

    let mut received = Vec::new();
    for _ in 0..30 {
        let v = recv_json(&mut session).await;
        let time = v["time"].as_str().unwrap_or_default().to_string();
        received.push((sensor_record(&v), time));
    }
    // `time` is the publish time, not the dataset's 2018 timestamps, and never goes backwards.
    let now = chrono::Utc::now();
    for (_, time) in &received {
        let t = chrono::DateTime::parse_from_rfc3339(time).unwrap();
        assert!((now - t.with_timezone(&chrono::Utc)).num_minutes().abs() < 10, "{time} is not now");
    }
    assert!(received.windows(2).all(|w| w[0].1 <= w[1].1), "times go backwards: {received:?}");

    // The records are consecutive rows of the built-in dataset, in file order.
    let rows = builtin_rows();
    let matches_from = |start: usize| {
        received.iter().enumerate().all(|(j, ((device, hum, temp), _))| {
            let row = &rows[(start + j) % rows.len()];
            (&row.device_id, &row.humidity, &row.temperature) == (device, hum, temp)
        })
    };
    assert!((0..rows.len()).any(matches_from), "not consecutive dataset rows: {received:?}");
    assert_eq!(received[0].0.0, rows[0].device_id, "the sensor starts at the first rows");

    session.disconnect().await;
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_valid_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    // Everything on, order services included (without their load), so every metric family is checked.
    let flow = common::no_load(chaoslab::catalog::reference_flow().unwrap());
    let handle = start(run_with(flow, &dir.path().join("out"))).await;
    let addr = handle.http_addr;

    let flink_in = eventually("FLINK to receive records", async || {
        metric(addr, "chaoslab_records_in_total", &[("component", "FLINK")]).await.filter(|&v| v > 0.0)
    })
    .await;
    assert!(flink_in > 0.0);

    let response = http_get(addr, "/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/plain; version=0.0.4"));
    let scrape = parse_metrics(&response.body);
    assert!(sample(&scrape, "broker_uptime", &[("job", "mqtt")]).is_some(), "{}", response.body);
    assert!(
        sample(&scrape, "mqtt_received_data_packets_total", &[("job", "node-red")]).is_some(),
        "{}",
        response.body
    );
    assert!(sample(&scrape, "chaoslab_records_in_total", &[("component", "FLINK")]) >= Some(flink_in));

    match common::find_on_path("promtool") {
        Some(promtool) => {
            let file = dir.path().join("metrics.txt");
            std::fs::write(&file, &response.body).unwrap();
            promtool_check(&promtool, &file);
        }
        None => common::skip(
            "metrics_endpoint_serves_valid_prometheus_text (promtool part)",
            "promtool is not on PATH",
        ),
    }
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_components_and_index_api() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(fast_run(&dir.path().join("out"))).await;
    let addr = handle.http_addr;

    let health = wait_healthy(addr).await;
    assert_eq!(health["healthy"], true);
    let names: BTreeSet<&str> =
        health["components"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(REFERENCE_COMPONENTS));

    let components = http_get(addr, "/api/components").await;
    assert_eq!(components.status, 200);
    let list = components.json();
    let list = list.as_array().unwrap();
    let names: BTreeSet<&str> = list.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(REFERENCE_COMPONENTS));
    let kind_of = |name: &str| list.iter().find(|c| c["name"] == name).map(|c| c["kind"].clone());
    assert_eq!(kind_of("FLINK"), Some(Value::from("count-window-average")));
    assert_eq!(kind_of("MQTT_BROKER"), Some(Value::from("mqtt-broker")));
    let flink = list.iter().find(|c| c["name"] == "FLINK").unwrap();
    assert_eq!((&flink["namespace"], &flink["labels"]["app"]), (&Value::from("iot"), &Value::from("flink")));

    // Two windows of 10 records (the first device has hundreds of rows in a row).
    eventually("two FLINK windows in the index", async || {
        let indices = http_get(addr, "/indices").await.json();
        let listed = indices.as_array()?.iter().find(|i| i["name"] == INDEX)?.clone();
        (listed["docs"].as_u64()? >= 2).then_some(())
    })
    .await;

    let page = http_get(addr, &format!("/indices/{INDEX}/docs?from=0&size=2")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let page = page.json();
    assert_eq!(page["index"], INDEX);
    assert_eq!(page["from"], 0);
    assert!(page["total"].as_u64().unwrap() >= 2);
    let docs = page["docs"].as_array().unwrap();
    assert_eq!(docs.len(), 2);
    let first_device = &builtin_rows()[0].device_id;
    for doc in docs {
        let keys: BTreeSet<&str> = doc.as_object().unwrap().keys().map(String::as_str).collect();
        let expected = [
            "averageHumidity",
            "averageTemperature",
            "deviceId",
            "id",
            "measurementIds",
            "numberOfMeasurements",
        ];
        assert_eq!(keys, BTreeSet::from(expected), "{doc}");
        assert!(!doc["id"].as_str().unwrap().is_empty());
        assert_eq!(doc["deviceId"].as_str(), Some(first_device.as_str()), "{doc}");
        assert_eq!(doc["numberOfMeasurements"], 10);
        assert!(doc["averageHumidity"].is_f64() && doc["averageTemperature"].is_f64(), "{doc}");
        let ids = doc["measurementIds"].as_array().unwrap();
        assert_eq!(ids.len(), 10);
        assert!(ids.iter().all(|t| t.as_str().is_some_and(is_iso_millis)), "{doc}");
    }
    assert_ne!(docs[0]["id"], docs[1]["id"]);

    for bad in [format!("/indices/{INDEX}/docs?size=100000"), format!("/indices/{INDEX}/docs?from=-1")] {
        let response = http_get(addr, &bad).await;
        assert_eq!(response.status, 400, "GET {bad}: {}", response.body);
        assert!(response.json()["error"].is_string());
    }
    let unknown = http_get(addr, "/indices/no-such-index/docs").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_are_counted_and_the_pipeline_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let run = fast_run(&dir.path().join("out")).dataset(clean_dataset(dir.path()));
    let handle = start(run).await;
    let addr = handle.http_addr;
    wait_healthy(addr).await;

    let invalid_record = [("component", "FLINK"), ("reason", "invalid_record")];
    let invalid_json = [("component", "NODE-RED"), ("reason", "invalid_json")];
    let dropped = "chaoslab_records_dropped_total";
    assert_eq!(metric(addr, dropped, &invalid_record).await, None, "the clean dataset has no bad rows");

    let mut publisher = connect(mqtt(&handle), "test-publisher").await.unwrap();
    let bad_humidity = r#"{"device_id":"test-device","humidity":"abc","temperature":"20","time":"2020-02-18T21:23:32.106Z"}"#;
    for payload in ["not json", bad_humidity] {
        let env = Envelope::new(TOPIC, payload.as_bytes().to_vec()).with_qos(Qos::AtLeastOnce);
        publisher.publish(env).await.unwrap();
    }
    eventually("both bad records counted", async || {
        let scrape = scrape(addr).await;
        let flink = sample(&scrape, dropped, &invalid_record);
        let node_red = sample(&scrape, dropped, &invalid_json);
        (flink == Some(2.0) && node_red == Some(1.0)).then_some(())
    })
    .await;
    publisher.disconnect().await;

    // Still healthy, and good records keep flowing past the bad ones.
    let health = http_get(addr, "/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
    let flink_in = metric(addr, "chaoslab_records_in_total", &[("component", "FLINK")]).await.unwrap();
    eventually("FLINK to receive more records", async || {
        let now = metric(addr, "chaoslab_records_in_total", &[("component", "FLINK")]).await?;
        (now > flink_in).then_some(())
    })
    .await;
    let mut session = subscriber(mqtt(&handle), "test-subscriber").await;
    sensor_record(&recv_json(&mut session).await);
    session.disconnect().await;

    let summary = stop(handle).await;
    assert_eq!(summary.components["FLINK"].state, "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_disconnects_clients_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(fast_run(&dir.path().join("out"))).await;
    let addr = handle.http_addr;
    let supervisor = &handle.pipeline.supervisor;
    let mut session = subscriber(mqtt(&handle), "test-before-outage").await;
    sensor_record(&recv_json(&mut session).await);
    eventually("broker_uptime to count", async || {
        metric(addr, "broker_uptime", &[("job", "mqtt")]).await.filter(|&v| v > 0.0)
    })
    .await;

    supervisor.stop("MQTT_BROKER").unwrap();
    timeout(WAIT, supervisor.wait_for("MQTT_BROKER", |h| h.state == State::Stopped))
        .await
        .expect("broker did not stop")
        .unwrap();
    let ended = timeout(WAIT, async {
        loop {
            if let Err(e) = session.recv().await {
                return e;
            }
        }
    })
    .await
    .expect("the session did not notice the outage");
    assert!(matches!(ended, MqttError::Disconnected { .. }), "{ended:?}");
    let refused = connect(mqtt(&handle), "test-during-outage").await;
    assert!(matches!(refused, Err(MqttError::ConnectionRefused { .. })), "{refused:?}");

    let down_at = metric(addr, "broker_uptime", &[("job", "mqtt")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let still = metric(addr, "broker_uptime", &[("job", "mqtt")]).await.unwrap();
    assert_eq!(still, down_at, "broker_uptime must stand still while the broker is down");

    supervisor.start("MQTT_BROKER").unwrap();
    let url = mqtt(&handle).clone();
    let mut session = eventually("the broker to accept connections again", async || {
        connect(&url, "test-after-outage").await.ok()
    })
    .await;
    session.subscribe(TOPIC, Qos::AtLeastOnce).await.unwrap();
    sensor_record(&recv_json(&mut session).await);
    eventually("broker_uptime to count again", async || {
        metric(addr, "broker_uptime", &[("job", "mqtt")]).await.filter(|&v| v > down_at)
    })
    .await;

    session.disconnect().await;
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occupied_http_port_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let taken = std::net::TcpListener::bind(any_port()).unwrap();
    let addr = taken.local_addr().unwrap();
    let result = fast_run(&out).http_listen(addr).live().await;
    let message = format!("{:#}", result.err().expect("start must fail on an occupied port"));
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(message.contains("--http-listen"), "{message}");
    assert!(!out.exists(), "nothing may be written when a port is taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occupied_mqtt_port_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let taken = std::net::TcpListener::bind(any_port()).unwrap();
    let addr = taken.local_addr().unwrap();
    let result = fast_run(&out).mqtt_listen(addr).live().await;
    let message = format!("{:#}", result.err().expect("start must fail on an occupied port"));
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(message.contains("--mqtt-listen"), "{message}");
    assert!(!out.exists(), "nothing may be written when a port is taken");
}

fn spawn_mosquitto(program: &Path, conf: &Path) -> std::process::Child {
    std::process::Command::new(program)
        .arg("-c")
        .arg(conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A Mosquitto process killed when the guard drops (also when the test fails).
struct Mosquitto {
    child: std::process::Child,
    url: BrokerUrl,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts `program` on a free loopback port and waits until it accepts TCP connections.
    async fn start(program: &Path) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind(any_port()).unwrap().local_addr().unwrap().port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = spawn_mosquitto(program, &conf);
        let mut guard = Mosquitto { child, url: BrokerUrl { host: "127.0.0.1".into(), port }, _dir: dir };
        eventually("mosquitto to listen", async || {
            assert!(guard.child.try_wait().unwrap().is_none(), "mosquitto exited early");
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        })
        .await;
        guard
    }
}

impl Mosquitto {
    /// Kills the broker (no clean shutdown) and starts a new one on the same port and configuration.
    async fn restart(&mut self, program: &Path) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_mosquitto(program, &self._dir.path().join("mosquitto.conf"));
        let port = self.url.port;
        eventually("mosquitto to listen again", async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        })
        .await;
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_against_an_external_mosquitto() {
    let Some(program) = common::find_on_path("mosquitto") else {
        common::skip("runs_against_an_external_mosquitto", "mosquitto is not on PATH");
        return;
    };
    let mosquitto = Mosquitto::start(&program).await;
    let dir = tempfile::tempdir().unwrap();
    let handle = start(fast_run(&dir.path().join("out")).mqtt_url(&mosquitto.url)).await;
    assert_eq!(mqtt(&handle), &mosquitto.url);

    let mut session = subscriber(&mosquitto.url, "test-mosquitto-subscriber").await;
    let devices: BTreeSet<String> = builtin_rows().into_iter().map(|r| r.device_id).collect();
    for _ in 0..5 {
        let (device, _, _) = sensor_record(&recv_json(&mut session).await);
        assert!(devices.contains(&device), "unknown device {device}");
    }
    eventually("FLINK to window records from mosquitto", async || {
        metric(handle.http_addr, "chaoslab_records_in_total", &[("component", "FLINK")])
            .await
            .filter(|&v| v > 0.0)
    })
    .await;

    session.disconnect().await;
    stop(handle).await;
    drop(mosquitto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_live_run_prints_a_json_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let child = crate::common::chaoslab_async()
        .args(["run", "--for", "3s", "--rate-ms", "50", "--out"])
        .arg(&out)
        .args(["--http-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--json"])
        .args(["--forward-listen", "127.0.0.1:0", "--log-http-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("chaoslab run did not end in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}:\n{stdout}\n{stderr}", output.status);

    let json_line =
        stdout.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON: {stdout}"));
    let summary: Value = serde_json::from_str(json_line).unwrap();
    assert_eq!(summary["mode"], "live");
    assert_eq!(summary["pipeline"], "reference");
    assert!(summary["components"]["SENSOR"]["records_out"].as_u64().unwrap() > 0, "{summary}");
    // The embedded broker counts the PUBLISH packets through its front listener: each of the sensor's
    // messages in, and out once per subscriber (FLINK, NIFI, NODE-RED).
    let broker = &summary["components"]["MQTT_BROKER"];
    let (sent, received) = (
        summary["components"]["SENSOR"]["records_out"].as_u64().unwrap(),
        broker["records_in"].as_u64().unwrap(),
    );
    assert_eq!(received, sent, "{summary}");
    let to_subscribers: u64 = ["FLINK", "NIFI", "NODE-RED"]
        .iter()
        .map(|s| summary["links"][format!("MQTT_BROKER->{s}")]["sent"].as_u64().unwrap())
        .sum();
    // (A PUBLISH read from the broker for a subscriber that stopped meanwhile counts as out but never
    // reaches its link, so out may exceed the links by what was in flight at shutdown.)
    let routed = broker["records_out"].as_u64().unwrap();
    assert!(to_subscribers > 0 && routed >= to_subscribers && routed <= 3 * received, "{routed}: {summary}");
    let trace = std::fs::metadata(out.join("trace.jsonl")).expect("trace.jsonl is missing");
    assert!(trace.len() > 0, "trace.jsonl is empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_sub_sees_the_sensor_records() {
    let Some(sub) = common::find_on_path("mosquitto_sub") else {
        common::skip("mosquitto_sub_sees_the_sensor_records", "mosquitto_sub is not on PATH");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let handle = start(fast_run(&dir.path().join("out"))).await;
    let port = mqtt(&handle).port.to_string();
    let run = tokio::process::Command::new(sub)
        .args(["-h", "127.0.0.1", "-p", &port, "-t", "customTopic", "-C", "5", "-W", "20"])
        .kill_on_drop(true)
        .output();
    let out = timeout(WAIT, run).await.expect("mosquitto_sub did not finish").unwrap();
    assert!(out.status.success(), "mosquitto_sub failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5);
    for record in &lines {
        assert!(record["device_id"].as_str().unwrap().starts_with("gnfuv-synth-"), "{record}");
        assert!(record["time"].as_str().unwrap().ends_with('Z'));
    }
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_in_use_is_refused_and_a_killed_runs_files_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut first = crate::common::chaoslab_async()
        .args(["run", "--no-load", "--rate-ms", "50", "--out"])
        .arg(&out)
        .args(["--http-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0"])
        .args(["--forward-listen", "127.0.0.1:0", "--log-http-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = first.id().unwrap();
    let token = common::http::eventually("the first run to write its token", async || {
        std::fs::read_to_string(out.join("control-token")).ok().filter(|t| !t.is_empty())
    })
    .await;

    let sim = |out: &std::path::Path| {
        crate::common::chaoslab()
            .args(["run", "--sim", "--for", "10s", "--no-orders", "--quiet", "--out"])
            .arg(out)
            .output()
            .unwrap()
    };
    let second = sim(&out);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(
        stderr.contains(&format!("{} is in use by another chaoslab run (PID {pid})", out.display())),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("control-token")).unwrap(),
        token,
        "the first run's files stay"
    );

    first.start_kill().unwrap(); // SIGKILL: no clean end
    let _ = first.wait().await;
    let third = sim(&out);
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(third.status.success(), "{stderr}");
    let aside = dir.path().join("out.crashed-1");
    assert!(stderr.contains("did not finish") && stderr.contains(&aside.display().to_string()), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(aside.join("control-token")).unwrap(),
        token,
        "the killed run is kept"
    );
    assert!(out.join("trace.jsonl").exists());

    let fourth = sim(&out);
    assert!(fourth.status.success());
    assert!(!dir.path().join("out.crashed-2").exists(), "a finished run is replaced, not kept");
}

/// An external broker that dies and comes back (a new process, no session kept): the sensor publishes
/// again and the subscribers subscribe again, so records reach FLINK once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_reconnect_after_an_external_mosquitto_restarts() {
    let Some(program) = common::find_on_path("mosquitto") else {
        common::skip("components_reconnect_after_an_external_mosquitto_restarts", "mosquitto is not on PATH");
        return;
    };
    let mut mosquitto = Mosquitto::start(&program).await;
    let dir = tempfile::tempdir().unwrap();
    let handle = start(fast_run(&dir.path().join("out")).mqtt_url(&mosquitto.url)).await;
    let flink_in = || async {
        metric(handle.http_addr, "chaoslab_records_in_total", &[("component", "FLINK")]).await.unwrap_or(0.0)
    };
    eventually("records to reach FLINK", async || (flink_in().await > 10.0).then_some(())).await;
    mosquitto.restart(&program).await;
    let after_restart = flink_in().await;
    eventually("records to reach FLINK through the new broker", async || {
        (flink_in().await > after_restart + 20.0).then_some(())
    })
    .await;
    stop(handle).await;
    drop(mosquitto);
}

/// MQTT 5 clients are served beside 3.1.1 ones through the same port, on one router: a v5 subscriber
/// gets the (3.1.1) sensor's records, retained messages and QoS 2 included, and a v5 publisher reaches a
/// 3.1.1 subscriber. MQTT 3.1 is told its version is not served (a CONNACK with the reason, at once,
/// instead of a closed connection it would retry for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_5_clients_are_served_and_3_1_is_refused_with_a_connack() {
    let (Some(sub), Some(publish)) =
        (common::find_on_path("mosquitto_sub"), common::find_on_path("mosquitto_pub"))
    else {
        common::skip(
            "mqtt_5_clients_are_served_and_3_1_is_refused_with_a_connack",
            "mosquitto clients are not on PATH",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let handle = start(fast_run(&dir.path().join("out"))).await;
    let port = mqtt(&handle).port.to_string();
    let client = |program: &std::path::Path, args: &[&str]| {
        let mut c = tokio::process::Command::new(program);
        c.args(["-h", "127.0.0.1", "-p", &port]).args(args).kill_on_drop(true);
        c.output()
    };
    // A v5 subscriber, QoS 2, gets the sensor's records.
    let out =
        timeout(WAIT, client(&sub, &["-V", "mqttv5", "-q", "2", "-t", "customTopic", "-C", "3", "-W", "20"]))
            .await
            .unwrap()
            .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r["device_id"].as_str().is_some_and(|d| d.starts_with("gnfuv-synth-"))));
    // A retained v5 message is there for a 3.1.1 subscriber that comes later.
    let sent = client(&publish, &["-V", "mqttv5", "-q", "2", "-r", "-t", "lab/note", "-m", "from-v5"]);
    assert!(timeout(WAIT, sent).await.unwrap().unwrap().status.success());
    let out = timeout(WAIT, client(&sub, &["-V", "mqttv311", "-t", "lab/note", "-C", "1", "-W", "10"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-v5");
    // MQTT 3.1 is refused by name, at once.
    let out =
        timeout(Duration::from_secs(10), client(&sub, &["-V", "mqttv31", "-t", "customTopic", "-C", "1"]))
            .await
            .expect("the client gave up at once")
            .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("unacceptable protocol version"), "{stderr}");
    stop(handle).await;
}
