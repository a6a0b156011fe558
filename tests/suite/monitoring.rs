//! Monitoring and incident reasoning on the reference pipeline: the MQTT outage acceptance scenario in
//! sim mode (signals, alerts, the incident report and its timings), mining over the signal history, and
//! the live inputs (ingestion webhook, Fluentd HTTP and Forward inputs) and the authenticated graph API.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use chaoslab::runner::Run;
use serde_json::{Value, json};

use common::http::{WAIT, eventually, request_with};

const T0: u64 = 60;
const OUTAGE: u64 = 90;

/// Runs the reference pipeline for 6 minutes with MQTT_BROKER down from 1:00 for 90 s.
fn outage(dir: &Path, seed: u64) -> chaoslab::runner::summary::RunSummary {
    Run::new(chaoslab::catalog::reference_flow().unwrap())
        .out(dir)
        .seed(seed)
        .sim_with(|p| async move {
            tokio::time::sleep(Duration::from_secs(T0)).await;
            let q = |e: &str| chaoslab::monitoring::query_value(&p, e).unwrap();
            assert_eq!(q("increase(broker_uptime{job=\"mqtt\"}[30s])"), json!(30.0), "uptime grows while up");
            let fault = json!({"kind": "mqtt-broker-down", "duration": format!("{OUTAGE}s")});
            p.faults.apply(&serde_json::from_value(fault).unwrap()).await.unwrap();
            tokio::time::sleep(Duration::from_secs(45)).await;
            assert_eq!(
                q("increase(broker_uptime{job=\"mqtt\"}[30s])"),
                json!(0.0),
                "and stands still while down"
            );
            tokio::time::sleep(Duration::from_secs(300 - T0 - 45)).await;
            Ok(())
        })
        .unwrap()
}

/// Every key path of a JSON value (array elements share one path).
fn shape(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{prefix}.{k}");
                out.insert(p.clone());
                shape(v, &p, out);
            }
        }
        Value::Array(items) => {
            for i in items {
                shape(i, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn an_mqtt_outage_becomes_one_data_loading_incident_with_the_reference_shape_and_timings() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let summary = outage(a.path(), 11);
    let reports = common::index_docs(a.path(), "iot-incident-reports");
    assert_eq!(reports.len(), 1, "one incident, not repeated within 120 s: {reports:#?}");
    let r = &reports[0];

    // The report has the sample's shape, key for key.
    let sample: Value =
        serde_json::from_str(include_str!("../../src/reasoning/fixtures/sample_incident_report.json"))
            .unwrap();
    let (mut want, mut got) = (BTreeSet::new(), BTreeSet::new());
    shape(&sample, "$", &mut want);
    shape(r, "$", &mut got);
    // Details differ by nature (our NiFi log has no Java stack trace); everything else must match.
    let outside_details = |s: &BTreeSet<String>| -> BTreeSet<String> {
        s.iter().filter(|p| !p.contains(".details.")).cloned().collect()
    };
    assert_eq!(outside_details(&got), outside_details(&want));
    assert_eq!(r["name"], "Data Loading Incident");
    assert_eq!(r["summary"], "Incident \"Data Loading Incident\" is active! It is indicated by 4 signal(s).");
    assert_eq!(r["compositeSignal"]["name"], "MqttUnavailable");
    assert_eq!(r["compositeSignal"]["numOfConnectedSignals"], 4);
    let comps: BTreeSet<&str> =
        r["participatingComponents"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(comps, BTreeSet::from(["MQTT_BROKER", "NIFI", "NODE-RED"]));

    // Timings against the rules (seconds after the fault).
    let t0 = chrono::DateTime::parse_from_rfc3339("2020-02-21T21:00:00Z").unwrap().timestamp() + T0 as i64;
    let at = |name: &str| -> i64 {
        let s = r["compositeSignal"]["activeSignals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap();
        let t =
            chrono::NaiveDateTime::parse_from_str(s["timestamp"].as_str().unwrap(), "%Y-%m-%dT%H:%M:%S%.3fZ")
                .unwrap();
        t.and_utc().timestamp() - t0
    };
    assert!(at("MqttConnectionFailureLog") <= 1, "Node-RED logs its disconnect at about t0");
    // The `[30s]` increase is zero 30 s after the last uptime tick, + up to one evaluation + group_wait.
    for alert in ["NotReceivingSensorData", "MqttInstanceDownAlert"] {
        let t = at(alert);
        assert!((30..=30 + 10 + 5 + 1).contains(&t), "{alert} at t0+{t}s");
    }
    let nifi = r["compositeSignal"]["activeSignals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "MqttConnectionError")
        .unwrap();
    assert_eq!((nifi["threshold"].as_i64(), nifi["coolDownSec"].as_i64()), (Some(10), Some(15)));
    assert!(nifi["thresholdCounter"].as_i64().unwrap() >= 30, "about one NiFi error a second: {nifi}");
    // The incident's dateTime is its most recent signal's.
    let newest = r["compositeSignal"]["activeSignals"][0]["timestamp"].clone();
    assert_eq!(r["dateTime"], newest);

    // Ground truth: the fault explains the incident.
    let truth = &summary.ground_truth;
    assert_eq!(truth.faults.len(), 1);
    assert_eq!(truth.faults[0].detections.len(), 1);
    let ttd = truth.faults[0].detections[0].time_to_detect_secs;
    assert!((30.0..=46.0).contains(&ttd), "time to detect {ttd}");
    assert!(truth.unexplained.is_empty());

    // Deterministic for the seed.
    outage(b.path(), 11);
    for index in ["iot-incident-reports", "fluentd-20200221"] {
        let read =
            |d: &Path| std::fs::read_to_string(d.join("index").join(format!("{index}.jsonl"))).unwrap();
        let (x, y) = (read(a.path()), read(b.path()));
        let first_difference = x.lines().zip(y.lines()).find(|(l, r)| l != r);
        assert!(x == y, "{index} differs between two runs of one seed: {first_difference:?}");
    }

    // Mining the run's signal history predicts the fourth signal from the other three.
    let o = crate::common::chaoslab()
        .args(["mine", "--seed", "1", "--out", a.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let predictions = common::index_docs(a.path(), "correlated-signal-predictions");
    assert!(!predictions.is_empty());
    assert!(predictions.iter().all(|p| p["analysisId"] == predictions[0]["analysisId"]));
    assert!(predictions.iter().any(|p| {
        p["predictedSignals"].as_array().unwrap().iter().any(|s| s == "MqttConnectionFailureLog#NODE-RED")
    }));
}

async fn live(out: &Path) -> chaoslab::runner::LiveHandle {
    let any = || "127.0.0.1:0".parse().unwrap();
    let flow = common::no_load(chaoslab::catalog::reference_flow().unwrap());
    let run = Run::new(flow)
        .out(out)
        .seed(3)
        .rate_ms(100)
        .http_listen(any())
        .mqtt_listen(any())
        .forward_listen(any())
        .log_http_listen(any());
    tokio::time::timeout(WAIT, run.live()).await.expect("live run did not start").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_inputs_feed_the_reasoner_and_bad_input_is_refused_not_fatal() {
    use tokio::io::AsyncWriteExt as _;
    let dir = tempfile::tempdir().unwrap();
    let h = live(&dir.path().join("out")).await;
    let (api, logs) = (h.http_addr, h.log_http_addr.unwrap());

    // The ingestion webhook: not JSON, no alerts, then a real Alertmanager-shaped payload.
    let json_body = |v: &Value| v.to_string();
    let bad = request_with(api, "POST", "/alerts", &[], Some(("application/json", b"{oops"))).await;
    assert_eq!(bad.status, 400);
    let none =
        request_with(api, "POST", "/alerts", &[], Some(("application/json", b"{\"status\":\"firing\"}")))
            .await;
    assert_eq!(none.status, 400);
    assert!(none.body.contains("no `alerts` array"), "{}", none.body);
    let long = "x".repeat(300);
    let too_long = json_body(&json!({"alerts": [{"labels": {"alertname": long}}]}));
    let refused =
        request_with(api, "POST", "/alerts", &[], Some(("application/json", too_long.as_bytes()))).await;
    assert_eq!(refused.status, 400);
    // An alert the REASONER could not read is refused at the door, naming what is missing — not 200 and
    // then dropped.
    let unreadable = json_body(
        &json!({"alerts": [{"labels": {"alertname": "BrokerDown", "pipeline_component": "MQTT_BROKER"}}]}),
    );
    let refused =
        request_with(api, "POST", "/alerts", &[], Some(("application/json", unreadable.as_bytes()))).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("alerts[0]") && refused.body.contains("`annotations`"), "{}", refused.body);
    let hook = json_body(
        &json!({"version": "4", "status": "firing", "receiver": "ingestion-service", "alerts": [{
        "status": "firing", "labels": {"alertname": "DiskAlmostFull", "pipeline_component": "HADOOP", "severity": "warning"},
        "annotations": {"summary": "HDFS is 95% full"}, "startsAt": "2020-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph"}]}),
    );
    let ok = request_with(api, "POST", "/alerts", &[], Some(("application/json", hook.as_bytes()))).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["signals"], 1);

    // Fluentd's HTTP input, as NiFi's InvokeHTTP posts: a NiFi platform error becomes a signal.
    let nifi = json_body(
        &json!({"message": "ConsumeMQTT[id=1] Connection to tcp://mqtt:1883 lost (or was never connected) and connection failed. Yielding processor: x", "level": "ERROR"}),
    );
    let posted = request_with(
        logs,
        "POST",
        "/com.chaoslab.nifi.platform",
        &[],
        Some(("application/json", nifi.as_bytes())),
    )
    .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    let bad_log =
        request_with(logs, "POST", "/com.chaoslab.nifi.platform", &[], Some(("application/json", b"[1,")))
            .await;
    assert_eq!(bad_log.status, 400);

    // The Forward input: garbage closes that connection only.
    let mut s = tokio::net::TcpStream::connect(h.forward_addr.unwrap()).await.unwrap();
    s.write_all(&[0xc1, 0xc1, 0xc1, 0xc1]).await.unwrap();
    drop(s);

    // The graph API is behind the control plane's credentials.
    let token = h.control_token.clone().unwrap();
    let bearer = format!("Bearer {token}");
    assert_eq!(request_with(api, "GET", "/api/graph", &[], None).await.status, 401);
    let graph = eventually("the new alert signal in the graph", async || {
        let g = request_with(api, "GET", "/api/graph", &[("Authorization", &bearer)], None).await.json();
        g.to_string().contains("DiskAlmostFull").then_some(g)
    })
    .await;
    assert!(graph.to_string().contains("MqttConnectionError"));
    let fluentd_docs = eventually("the NiFi line in the log index", async || {
        let r = request_with(api, "GET", "/indices", &[], None).await;
        r.body.contains("fluentd-").then_some(r.json())
    })
    .await;
    assert!(fluentd_docs.to_string().contains("fluentd-"));
    let pipeline = h.pipeline.clone();
    let summary = h.stop().await.unwrap();
    assert_eq!(summary.components["FLUENTD"].restarts, 0, "bad input never crashes the router");
    let h = &pipeline.handles;
    let metrics = h.first::<chaoslab::monitoring::metrics_store::MetricsStoreHandle>().unwrap();
    assert_eq!(metrics.ingestion.stats.refused.get(), 4);
    // The same counts are on /metrics (the registry the endpoint renders).
    let text = pipeline.metrics.encode();
    assert!(text.contains("alertmanager_webhook_refused_total{component=\"PROMETHEUS\"} 4"), "{text}");
    assert!(text.contains("alertmanager_webhook_payloads_total{component=\"PROMETHEUS\"} 1"), "{text}");
    let forward =
        h.first::<chaoslab::monitoring::log_router::LogInputHandle>().unwrap().forward_stats.snapshot();
    assert_eq!(forward.decode_errors, 1, "the garbage was counted: {forward:?}");
    let reasoner = h.first::<chaoslab::reasoning::incident_reasoner::ReasonerHandle>().unwrap();
    let names: Vec<String> = reasoner.store.all().await.unwrap().into_iter().map(|r| r.name).collect();
    assert!(
        names.contains(&"DiskAlmostFull".to_string()) && names.contains(&"MqttConnectionError".to_string()),
        "{names:?}"
    );
}

/// A real process, killed when dropped.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The shipped `docker/prometheus.yml` and `docker/alertmanager.yml`, run by a real Prometheus and a real
/// Alertmanager against a live chaoslab whose own PROMETHEUS evaluates no rules: a broker outage makes the
/// real stack fire `MqttInstanceDownAlert` (the shipped rule reads `broker_uptime{job="mqtt"}`, so only
/// `honor_labels: true` lets it match) and deliver it to `POST /alerts`, where it becomes a signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_prometheus_and_alertmanager_configs_deliver_a_broker_outage() {
    const TEST: &str = "the_shipped_prometheus_and_alertmanager_configs_deliver_a_broker_outage";
    let (Some(prometheus), Some(alertmanager)) =
        (common::find_on_path("prometheus"), common::find_on_path("prometheus-alertmanager"))
    else {
        common::skip(TEST, "prometheus or prometheus-alertmanager is not on PATH");
        return;
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let no_rules = dir.path().join("no-rules");
    std::fs::create_dir(&no_rules).unwrap();
    let mut flow = common::no_load(chaoslab::catalog::reference_flow().unwrap());
    flow.configure::<chaoslab::monitoring::metrics_store::MetricsStoreConfig>(|m| {
        m.rules = Some(no_rules.clone())
    });
    let any = || "127.0.0.1:0".parse().unwrap();
    let run = Run::new(flow)
        .out(dir.path().join("out"))
        .seed(5)
        .rate_ms(100)
        .http_listen(any())
        .mqtt_listen(any())
        .forward_listen(any())
        .log_http_listen(any());
    let h = tokio::time::timeout(WAIT, run.live()).await.expect("live run did not start").unwrap();
    let api = h.http_addr;

    let (prom_port, am_port, am_cluster) = (free_port(), free_port(), free_port());
    let shipped = std::fs::read_to_string(repo.join("docker/prometheus.yml")).unwrap();
    assert!(shipped.contains("honor_labels: true"), "{shipped}");
    let prom_config = shipped
        .replace("10s", "1s")
        .replace("127.0.0.1:8080", &api.to_string())
        .replace("127.0.0.1:9093", &format!("127.0.0.1:{am_port}"))
        .replace("../flows/rules/", &format!("{}/", repo.join("flows/rules").display()));
    std::fs::write(dir.path().join("prometheus.yml"), prom_config).unwrap();
    let am_config = std::fs::read_to_string(repo.join("docker/alertmanager.yml"))
        .unwrap()
        .replace("group_wait: 10s", "group_wait: 1s")
        .replace("127.0.0.1:8080", &api.to_string());
    std::fs::write(dir.path().join("alertmanager.yml"), am_config).unwrap();
    let spawn = |program: &std::path::PathBuf, args: Vec<String>| {
        Daemon(
            std::process::Command::new(program)
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let d = |p: &str| dir.path().join(p).display().to_string();
    let _am = spawn(
        &alertmanager,
        vec![
            format!("--config.file={}", d("alertmanager.yml")),
            format!("--storage.path={}", d("am-data")),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            format!("--cluster.listen-address=127.0.0.1:{am_cluster}"),
        ],
    );
    let _prom = spawn(
        &prometheus,
        vec![
            format!("--config.file={}", d("prometheus.yml")),
            format!("--storage.tsdb.path={}", d("prom-data")),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
    );

    // The broker goes down; the uptime stops; half a minute later the rule fires.
    let token = h.control_token.clone().unwrap();
    let bearer = format!("Bearer {token}");
    let fault = json!({"kind": "mqtt-broker-down", "duration": "90s"}).to_string();
    let applied = request_with(
        api,
        "POST",
        "/api/faults",
        &[("Authorization", bearer.as_str())],
        Some(("application/json", fault.as_bytes())),
    )
    .await;
    assert_eq!(applied.status, 201, "{}", applied.body);
    let reasoner =
        h.pipeline.handles.first::<chaoslab::reasoning::incident_reasoner::ReasonerHandle>().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let names: Vec<String> = reasoner.store.all().await.unwrap().into_iter().map(|r| r.name).collect();
        if names.iter().any(|n| n == "MqttInstanceDownAlert") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no MqttInstanceDownAlert from the real stack: {names:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let metrics = request_with(api, "GET", "/metrics", &[], None).await.body;
    let delivered = metrics
        .lines()
        .find(|l| l.starts_with("alertmanager_webhook_payloads_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(delivered >= 1.0, "Alertmanager's deliveries show on /metrics: {delivered}");
    tokio::time::timeout(WAIT, h.stop()).await.expect("stop in time").unwrap();
}

/// The PromQL evaluator against Prometheus itself: the same series and expressions go through ours, and
/// what ours answers becomes the expected values of a `promtool test rules` file, which Prometheus's own
/// engine then checks — so any disagreement fails this test, with promtool's report.
#[test]
fn the_promql_evaluator_agrees_with_promtool() {
    use chaoslab::monitoring::promql::{self, Value as Q};
    use chaoslab::monitoring::tsdb::Tsdb;
    let Some(promtool) = common::find_on_path("promtool") else {
        common::skip("the_promql_evaluator_agrees_with_promtool", "promtool is not on PATH");
        return;
    };
    const STEP_MS: i64 = 15_000;
    // Counters (one with a reset), gauges, a series with gaps ('_'), over 10 minutes at 15 s.
    let counter =
        |start: f64, by: f64| (0..41).map(|i| (start + by * f64::from(i)).to_string()).collect::<Vec<_>>();
    let mut reset = counter(0.0, 7.0);
    for (i, v) in reset.iter_mut().enumerate().skip(20) {
        *v = (3.0 * (i as f64 - 20.0)).to_string();
    }
    let wave: Vec<String> =
        (0..41).map(|i| format!("{}", ((f64::from(i) * 0.7).sin() * 10.0).round() / 2.0)).collect();
    let gappy: Vec<String> =
        (0..41).map(|i| if i % 5 == 2 { "_".into() } else { (i * 2).to_string() }).collect();
    type Series<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<String>);
    let series: Vec<Series<'_>> = vec![
        ("requests_total", vec![("job", "api"), ("instance", "a")], counter(0.0, 10.0)),
        ("requests_total", vec![("job", "api"), ("instance", "b")], reset),
        ("requests_total", vec![("job", "web"), ("instance", "a")], counter(100.0, 2.5)),
        ("temperature", vec![("room", "lab")], wave),
        ("temperature", vec![("room", "hall")], gappy),
    ];
    let mut db = Tsdb::new(Duration::from_secs(24 * 3600));
    let mut input = String::new();
    for (name, labels, values) in &series {
        let mut l: std::collections::BTreeMap<String, String> =
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        l.insert("__name__".into(), name.to_string());
        for (i, v) in values.iter().enumerate() {
            if let Ok(x) = v.parse::<f64>() {
                db.append(l.clone(), i as i64 * STEP_MS, x).unwrap();
            }
        }
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        input.push_str(&format!(
            "      - series: '{name}{{{}}}'\n        values: '{}'\n",
            selector.join(","),
            values.join(" ")
        ));
    }
    let exprs = [
        "rate(requests_total[1m])",
        "increase(requests_total[2m])",
        "irate(requests_total[1m])",
        "delta(temperature[2m])",
        "idelta(temperature[1m])",
        "resets(requests_total[10m])",
        "changes(temperature[5m])",
        "avg_over_time(temperature[3m])",
        "min_over_time(temperature[3m])",
        "max_over_time(temperature[3m])",
        "sum_over_time(temperature[2m])",
        "count_over_time(temperature[2m])",
        "last_over_time(temperature[2m])",
        "present_over_time(temperature[2m])",
        "sum by (job) (rate(requests_total[1m]))",
        "sum(requests_total)",
        "avg by (instance) (requests_total)",
        "max(temperature)",
        "min(temperature)",
        "count(requests_total)",
        "requests_total * 2 + 1",
        "requests_total{job=\"api\"} > 150",
        "temperature < 0",
        "increase(requests_total{job=\"api\"}[30s]) == 0",
        "abs(temperature)",
        "ceil(temperature / 3)",
        "floor(temperature / 3)",
        "round(temperature / 3)",
        "clamp_min(temperature, 0)",
        "clamp_max(temperature, 1)",
        "time()",
        "vector(7)",
        "scalar(sum(requests_total))",
        "absent(nonexistent_metric)",
        "absent(requests_total)",
        "temperature offset 1m",
    ];
    let mut tests = String::new();
    for eval_s in [45, 150, 330, 600] {
        for expr in exprs {
            let value = promql::query(expr, &db, eval_s * 1000).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let samples: Vec<String> = match value {
                Q::Scalar(v) => vec![format!("          - labels: '{{}}'\n            value: {v:?}\n")],
                Q::Vector(samples) => samples
                    .into_iter()
                    .map(|s| {
                        let name = s.labels.get("__name__").cloned().unwrap_or_default();
                        let rest: Vec<String> = s
                            .labels
                            .iter()
                            .filter(|(k, _)| *k != "__name__")
                            .map(|(k, v)| format!("{k}=\"{v}\""))
                            .collect();
                        format!(
                            "          - labels: '{name}{{{}}}'\n            value: {:?}\n",
                            rest.join(","),
                            s.value
                        )
                    })
                    .collect(),
                Q::String(s) => panic!("{expr}: a string {s}"),
            };
            let expected =
                if samples.is_empty() { " []\n".to_string() } else { format!("\n{}", samples.concat()) };
            tests.push_str(&format!(
                "      - expr: '{expr}'\n        eval_time: {eval_s}s\n        exp_samples:{expected}",
                expr = expr.replace('\'', "''")
            ));
        }
    }
    let file = format!(
        "rule_files: []\nevaluation_interval: 15s\ntests:\n  - interval: 15s\n    input_series:\n{input}    promql_expr_test:\n{tests}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agreement.yml");
    std::fs::write(&path, &file).unwrap();
    let out = std::process::Command::new(promtool).args(["test", "rules"]).arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "Prometheus disagrees with chaoslab's evaluator:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With `--credentials`, a forged incident needs them: `POST /alerts` and the Fluentd HTTP input answer
/// 401 without a token and take the alert or line with one, and the Forward input wants the shared-key
/// handshake (without `--credentials` they stay open, as the reference's are).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_credentials_alerts_and_log_lines_need_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "ingest-token-for-the-test";
    let file = dir.path().join("credentials.toml");
    let hash = chaoslab::api::auth::hash_secret(token).unwrap();
    std::fs::write(&file, format!("[[token]]\nname = \"alertmanager\"\ntoken_hash = \"{hash}\"\n")).unwrap();
    let any = || "127.0.0.1:0".parse().unwrap();
    let run = Run::new(common::no_load(chaoslab::catalog::reference_flow().unwrap()))
        .out(dir.path().join("out"))
        .seed(3)
        .http_listen(any())
        .mqtt_listen(any())
        .forward_listen(any())
        .log_http_listen(any())
        .credentials(&file);
    let h = tokio::time::timeout(WAIT, run.live()).await.expect("live run did not start").unwrap();
    let (api, logs) = (h.http_addr, h.log_http_addr.unwrap());
    let alert = json!({"alerts": [{"status": "firing", "labels": {"alertname": "MqttInstanceDownAlert",
        "pipeline_component": "MQTT_BROKER"}, "annotations": {"summary": "forged"}}]})
    .to_string();
    let line = json!({"message": "Connection to tcp://mqtt:1883 lost", "level": "ERROR"}).to_string();
    let bearer = format!("Bearer {token}");
    for (addr, path, body) in [(api, "/alerts", &alert), (logs, "/com.chaoslab.nifi.platform", &line)] {
        let refused =
            request_with(addr, "POST", path, &[], Some(("application/json", body.as_bytes()))).await;
        assert_eq!(refused.status, 401, "{path}: {}", refused.body);
        let taken = request_with(
            addr,
            "POST",
            path,
            &[("Authorization", &bearer)],
            Some(("application/json", body.as_bytes())),
        )
        .await;
        assert_eq!(taken.status, 200, "{path}: {}", taken.body);
    }
    assert_eq!(request_with(api, "GET", "/health", &[], None).await.status, 200, "other reads stay open");

    // The Forward input's configuration has no <security>: a key was generated, owner-only, and the
    // handshake takes it and refuses any other.
    let key_file = dir.path().join("out").join(chaoslab::runner::FORWARD_KEY_FILE);
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()), "{key:?}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let forward = h.forward_addr.unwrap();
    assert_eq!(forward_handshake(forward, &key).await, (true, String::new()));
    assert_eq!(forward_handshake(forward, "a-guess").await, (false, "shared_key mismatch".to_string()));
    tokio::time::timeout(WAIT, h.stop()).await.expect("stop in time").unwrap();
}

/// Connects to a Forward input, reads its HELO and answers with a PING for `key` (Fluentd's
/// forward-protocol handshake); returns the PONG's verdict and reason.
async fn forward_handshake(addr: std::net::SocketAddr, key: &str) -> (bool, String) {
    use rmpv::Value as Msgpack;
    use sha2::Digest as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    async fn read(stream: &mut tokio::net::TcpStream) -> Msgpack {
        let (mut got, mut buf) = (Vec::new(), [0u8; 1024]);
        loop {
            if let Ok(v) = rmpv::decode::read_value(&mut &got[..]) {
                return v;
            }
            let n = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed while the handshake expected a message");
            got.extend_from_slice(&buf[..n]);
        }
    }
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let helo = read(&mut stream).await;
    assert_eq!(helo[0].as_str(), Some("HELO"), "the server speaks first: {helo:?}");
    let nonce = match &helo[1].as_map().unwrap()[0].1 {
        Msgpack::Binary(b) => b.clone(),
        other => panic!("nonce {other:?}"),
    };
    let mut digest = sha2::Sha512::new();
    for part in [&b"salt"[..], b"client", &nonce, key.as_bytes()] {
        digest.update(part);
    }
    let digest = hex::encode(digest.finalize());
    let ping =
        Msgpack::Array(["PING", "client", "salt", &digest, "", ""].into_iter().map(Msgpack::from).collect());
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &ping).unwrap();
    stream.write_all(&bytes).await.unwrap();
    let pong = read(&mut stream).await;
    (pong[1].as_bool().unwrap(), pong[2].as_str().unwrap_or("").to_string())
}
