//! The streaming process-mining path (`flows/process-mining.toml`) in sim mode: the mined model equals
//! the generating one, a killed miner makes the lag rise and fall and the model quality drop and recover
//! (and a checkpointed one keeps its model), the same seed gives the same model and figures, and bad input
//! is named or counted.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaoslab::catalog::{PROCESS_MINING_FLOW, parse_flow};
use chaoslab::process_mining::heuristics_miner::HeuristicsMinerConfig;
use chaoslab::runner::Run;
use chaoslab::topology::flow::Flow;
use serde_json::{Value, json};

const MIN: Duration = Duration::from_secs(60);

fn flow() -> Flow {
    parse_flow(PROCESS_MINING_FLOW, "process-mining.toml", None).unwrap()
}

use common::light_mining as light;

#[test]
fn the_mined_model_is_the_generating_one_and_a_run_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Run::new(light(flow())).out(dir.path()).seed(3).sim(2 * MIN).unwrap();
    let m = &s.process_models["HEURISTICS-MINER"];
    let q = m.quality.expect("the conformance checker judged the model");
    assert_eq!((q.edge_precision, q.edge_recall), (1.0, 1.0), "{m:?}");
    assert_eq!(q.fitness, Some(1.0));
    assert!(q.precision.unwrap() > 0.9 && q.held_out > 100, "{q:?}");
    assert_eq!((m.activities, m.edges), (13, 14));
    let model: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("process-model.json")).unwrap())
            .unwrap();
    let edge = model["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == "check stock" && e["to"] == "cancel order");
    assert!(
        edge.is_some_and(|e| e["frequency"].as_u64().unwrap() > 0 && e["dependency"].as_f64().unwrap() > 0.9),
        "{model}"
    );
    assert_eq!(model["start"], json!(["register order"]));
    let dot = std::fs::read_to_string(dir.path().join("process-model.dot")).unwrap();
    assert!(dot.starts_with("digraph") && dot.contains("\"confirm order\" -> \"pick items\""), "{dot}");
    // The generated log, as XES, reads back with the cases the source completed.
    let cases = chaoslab::process_mining::xes::read(&dir.path().join("events.xes")).unwrap();
    assert!(cases.len() > 100);
    assert!(cases.iter().all(|(_, t)| t.first().map(String::as_str) == Some("register order")));
}

/// Samples of `Lag_Input_Topic` and the quality trace of a run with `script` at 2 minutes.
fn lag_and_quality(flow: Flow, seed: u64, fault: Value) -> (Vec<(u64, f64)>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let lag = Arc::new(Mutex::new(Vec::new()));
    let seen = lag.clone();
    Run::new(flow)
        .out(dir.path())
        .seed(seed)
        .sim_with(|p| async move {
            let start = p.clock.start();
            for s in 0..300u64 {
                tokio::time::sleep_until(start + Duration::from_secs(s)).await;
                if s == 120 {
                    p.faults.apply(&serde_json::from_value(fault.clone()).unwrap()).await.unwrap();
                }
                let v = chaoslab::monitoring::query_value(&p, "sum(Lag_Input_Topic)").unwrap();
                seen.lock().unwrap().push((s, v.as_f64().unwrap_or(0.0)));
            }
            Ok(())
        })
        .unwrap();
    let quality = common::trace(dir.path()).into_iter().filter(|e| e["kind"] == "model.quality").collect();
    let lag = lag.lock().unwrap().clone();
    (lag, quality)
}

fn max_in(lag: &[(u64, f64)], from: u64, to: u64) -> f64 {
    lag.iter().filter(|(s, _)| (from..to).contains(s)).map(|(_, v)| *v).fold(0.0, f64::max)
}

#[test]
fn a_killed_miner_lags_and_forgets_its_model_unless_it_checkpoints() {
    let kill = json!({"kind": "process-kill", "target": "HEURISTICS-MINER"});
    let (lag, quality) = lag_and_quality(light(flow()), 7, kill.clone());
    let before = max_in(&lag, 60, 120);
    let peak = max_in(&lag, 120, 180);
    let after = max_in(&lag, 270, 300);
    // The killed member keeps its partitions until its session times out: nothing is mined meanwhile.
    assert!(peak > before + 5_000.0, "lag rises after the kill: before {before}, peak {peak}");
    assert!(after < peak / 10.0, "and falls again: peak {peak}, at the end {after}");
    let recall = |e: &Value| e["data"]["edge_recall"].as_f64().unwrap();
    let at = |e: &Value| e["ms"].as_u64().unwrap();
    let dropped: Vec<&Value> = quality.iter().filter(|e| at(e) > 120_000 && recall(e) < 1.0).collect();
    assert!(
        !dropped.is_empty(),
        "without a checkpoint the restarted job mines from nothing: the quality drops"
    );
    let last = quality.last().unwrap();
    assert_eq!(recall(last), 1.0, "and recovers: {last}");
    assert!(quality.iter().filter(|e| at(e) < 120_000 && at(e) > 30_000).all(|e| recall(e) == 1.0));

    // With a checkpoint the job resumes with its tables: the model never forgets an edge.
    let mut checkpointed = light(flow());
    checkpointed.configure::<HeuristicsMinerConfig>(|m| m.checkpoint = Some(Duration::from_secs(5)));
    let (lag, quality) = lag_and_quality(checkpointed, 7, kill);
    // Offsets are committed only at checkpoints, so the lag runs higher all along; the kill still adds.
    assert!(max_in(&lag, 120, 180) > max_in(&lag, 60, 120) + 5_000.0, "the lag still rises");
    assert!(
        quality.iter().filter(|e| at(e) > 60_000).all(|e| recall(e) == 1.0),
        "a restored job keeps the model: {:?}",
        quality.iter().map(|e| (at(e), recall(e))).collect::<Vec<_>>()
    );
}

#[test]
fn the_same_seed_gives_the_same_models_and_bad_input_is_named_or_counted() {
    let run = |seed| {
        let dir = tempfile::tempdir().unwrap();
        let s = Run::new(light(flow())).out(dir.path()).seed(seed).sim(MIN).unwrap();
        (s.trace.digest.clone(), std::fs::read_to_string(dir.path().join("process-model.json")).unwrap())
    };
    let (a, b) = (run(5), run(5));
    assert_eq!(a, b, "same seed: same trace and model file");
    assert_ne!(a.0, run(6).0);

    // A model file with a mistake names the file, line and column; nothing is written.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bad.ptree");
    std::fs::write(&model, "->( 'a',\n  X( 'b' 'c' ) )\n").unwrap();
    let text = PROCESS_MINING_FLOW
        .replace("model = \"order-to-cash\"", &format!("model_file = {:?}", model.display().to_string()));
    let f = parse_flow(&text, "x.toml", None).unwrap();
    let out = dir.path().join("out");
    let err = Run::new(f).out(&out).sim(MIN).unwrap_err().to_string();
    assert!(err.contains(&format!("{}:2:10: expected , or )", model.display())), "{err}");
    assert!(!out.exists());

    // Events without a case on the topic are counted and dropped; the miner carries on.
    let dir = tempfile::tempdir().unwrap();
    let s = Run::new(light(flow()))
        .out(dir.path())
        .seed(1)
        .sim_with(|p| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let bus = common::bus(&p);
            let producer = bus.producer("test", chaoslab::bus::Acks::All).unwrap();
            for payload in [&br#"{"activity": "x"}"#[..], b"\xff\xfe", br#"{"case": 1, "activity": ""}"#] {
                producer
                    .send("input", Some(0), None, bytes::Bytes::copy_from_slice(payload), 0)
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_secs(20)).await;
            Ok(())
        })
        .unwrap();
    let miner = &s.components["HEURISTICS-MINER"];
    assert_eq!(miner.records_dropped, 3, "{miner:?}");
    assert_eq!(miner.restarts, 0);
}

#[test]
fn an_xes_log_replays_as_the_source_and_its_own_footprint_is_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let t = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00+00:00").unwrap();
    let case = |id: &str, acts: &[&str]| (id.to_string(), acts.iter().map(|a| (a.to_string(), t)).collect());
    let log = dir.path().join("log.xes");
    chaoslab::process_mining::xes::write(
        &log,
        &[
            case("1", &["receive", "approve", "pay"]),
            case("2", &["receive", "reject"]),
            case("3", &["receive", "approve", "pay"]),
        ],
    )
    .unwrap();
    let text = PROCESS_MINING_FLOW
        .replace("model = \"order-to-cash\"", &format!("log = {:?}", log.display().to_string()));
    let s = Run::new(light(parse_flow(&text, "x.toml", None).unwrap()))
        .out(dir.path().join("out"))
        .seed(2)
        .sim(MIN)
        .unwrap();
    let m = &s.process_models["HEURISTICS-MINER"];
    let q = m.quality.unwrap();
    assert_eq!((q.edge_precision, q.edge_recall, m.edges), (1.0, 1.0, 3), "{m:?}");

    // A broken log is named with its line, before anything runs.
    std::fs::write(&log, std::fs::read_to_string(&log).unwrap().replacen("<event>", "<event><oops>", 1))
        .unwrap();
    let out = dir.path().join("out2");
    let err =
        Run::new(parse_flow(&text, "x.toml", None).unwrap()).out(&out).sim(MIN).unwrap_err().to_string();
    assert!(err.contains(&format!("{}:1: not well-formed XML", log.display())), "{err}");
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_api_serves_json_and_dot_live() {
    let dir = tempfile::tempdir().unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let run = Run::new(light(flow())).out(dir.path()).seed(1).http_listen(any);
    let handle = tokio::time::timeout(common::http::WAIT, run.live()).await.unwrap().unwrap();
    let addr = handle.http_addr;
    let model = common::http::eventually("a mined model with its quality", async || {
        let r = common::http::http_get(addr, "/api/process-model").await;
        let v = r.json();
        (v["edges"].as_array().is_some_and(|e| e.len() == 14) && v["quality"]["edge_recall"] == 1.0)
            .then_some(v)
    })
    .await;
    assert_eq!(model["quality"]["edge_precision"], 1.0, "{model}");
    let dot = common::http::http_get(addr, "/api/process-model.dot").await;
    assert_eq!(dot.status, 200);
    assert!(dot.header("content-type").is_some_and(|c| c.starts_with("text/vnd.graphviz")));
    assert!(dot.body.contains("\"register order\" -> \"check stock\""), "{}", dot.body);
    let metrics = common::http::http_get(addr, "/metrics").await.body;
    for series in [
        "Lag_Input_Topic{",
        "kafka_consumergroup_lag{",
        "hm_events_processed_total{",
        "process_model_edge_recall{",
        "hm_table_entries{",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics");
    }
    handle.stop().await.unwrap();
}

#[test]
fn the_order_services_own_event_log_is_mined_too() {
    // A miner on the reference flow's `poke-order-events`: the orders' lifecycle as the services log it.
    let text = format!(
        "{}\n[components.ORDER-MINER]\nkind = \"heuristics-miner\"\nbus = \"KAFKA\"\ntopic = \"poke-order-events\"\nmodel_topic = \"order-models\"\noutput = \"order-model\"\ngroup = \"order-miner\"\nrefresh = 50\nepsilon = 0.001\n",
        chaoslab::catalog::REFERENCE_FLOW
    );
    let mut f = parse_flow(&text, "orders.toml", None).unwrap();
    f.without(&["SENSOR", "FLINK", "NIFI", "HADOOP", "NODE-RED", "SPARK"]);
    f.configure::<chaoslab::orders::load_generator::LoadGeneratorConfig>(|l| l.orders = 60);
    let dir = tempfile::tempdir().unwrap();
    let s = Run::new(f).out(dir.path()).seed(4).sim(5 * MIN).unwrap();
    let m = &s.process_models["ORDER-MINER"];
    assert!(m.events >= 300, "{m:?}");
    let model: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("order-model.json")).unwrap()).unwrap();
    let edges: Vec<(String, String)> = model["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["from"].as_str().unwrap().to_string(), e["to"].as_str().unwrap().to_string()))
        .collect();
    let truth = chaoslab::process_mining::tree::ProcessTree::builtin("poke-order").unwrap().causal_edges();
    assert!(edges.contains(&("order created".into(), "order success".into())), "{edges:?}");
    assert!(edges.iter().all(|e| truth.contains(e)), "every mined edge is the lifecycle's: {edges:?}");
    assert_eq!(model["start"], json!(["order created"]));
}

#[test]
fn parallel_miners_split_the_partitions_and_their_models_merge() {
    let mut f = light(flow());
    f.configure::<HeuristicsMinerConfig>(|m| m.parallelism = 3);
    let dir = tempfile::tempdir().unwrap();
    let s = Run::new(f).out(dir.path()).seed(8).sim(2 * MIN).unwrap();
    let per: Vec<u64> = (0..3).map(|i| s.components[&format!("HEURISTICS-MINER-{i}")].records_in).collect();
    assert!(per.iter().all(|n| *n > 0), "each instance mines its partition: {per:?}");
    let m = &s.process_models["HEURISTICS-MINER"];
    assert_eq!(m.events, per.iter().sum::<u64>(), "the merged counts cover every instance's events");
    let q = m.quality.unwrap();
    assert_eq!((q.edge_precision, q.edge_recall, q.fitness), (1.0, 1.0, Some(1.0)), "{q:?}");
}
