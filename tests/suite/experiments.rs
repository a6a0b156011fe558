//! Chaos Toolkit experiments as users run them: `chaoslab experiment …` in sim mode on the shipped
//! experiments, and the authenticated control plane of a live run (faults, provider calls,
//! `/execute_experiment`).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use common::http::{WAIT, eventually, request_with};

fn chaoslab(args: &[&str]) -> Output {
    crate::common::chaoslab()
        .args(args)
        .env_remove("BOOTSTRAP_SERVERS")
        .env_remove("MSK_CLUSTER_ARN")
        .output()
        .expect("run chaoslab")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn experiment(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/experiments").join(name).display().to_string()
}

/// Runs an experiment in sim mode; returns the exit code and the journal.
fn run_sim(file: &str, dir: &Path, extra: &[&str]) -> (i32, Value, PathBuf) {
    let out = dir.join("out");
    let journal = dir.join("journal.json");
    let mut args = vec!["experiment", "run", "--sim", file, "--out", out.to_str().unwrap()];
    args.extend(["--journal-path", journal.to_str().unwrap()]);
    args.extend(extra);
    let o = chaoslab(&args);
    let code = o.status.code().unwrap();
    assert!(journal.is_file(), "no journal: {}\n{}", text(&o.stdout), text(&o.stderr));
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    (code, j, journal)
}

#[test]
fn the_corrupt_message_experiment_deviates_with_retry_and_holds_with_a_dlq() {
    let file = experiment("corrupt_kafka_messages.yaml");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (code, j, _) = run_sim(&file, a.path(), &[]);
    assert_eq!(code, 1, "a deviated run exits 1");
    assert_eq!(j["status"], "completed");
    assert_eq!(j["deviated"], true);
    assert_eq!(j["steady_states"]["before"]["steady_state_met"], true);
    assert_eq!(j["steady_states"]["after"]["steady_state_met"], false);
    // The control fed the rollback: it consumed exactly the poison pill the method produced.
    let produced = &j["run"][0]["output"][0];
    let consumed = &j["rollbacks"][0]["output"][0];
    assert_eq!(j["rollbacks"][0]["status"], "succeeded");
    assert_eq!(consumed["offset"], produced["offset"]);
    assert_eq!(consumed["partition"], 1);
    assert!(consumed["value"].as_str().unwrap().starts_with("{\"id\": 4054"));

    let (code, j, _) = run_sim(&file, b.path(), &["--poison", "dlq"]);
    assert_eq!(code, 0, "with a dead-letter queue the lag stays under the threshold");
    assert_eq!(j["deviated"], false);
    assert_eq!(j["steady_states"]["after"]["steady_state_met"], true);
}

#[test]
fn the_broker_reboot_shows_offline_partitions_during_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--hypothesis-strategy", "continuously", "--hypothesis-frequency", "5"];
    let (code, j, _) = run_sim(&experiment("reboot_msk_broker.yaml"), dir.path(), &extra);
    let during = j["steady_states"]["during"].as_array().unwrap();
    let missed = during.iter().filter(|s| s["steady_state_met"] == false).count();
    assert!(missed >= 1, "poke-orders (RF 1) has an offline partition while KAFKA-1 reboots");
    assert!(missed < during.len(), "and recovers once it is back");
    assert_eq!(j["run"][0]["output"]["ClusterArn"], "arn:aws:kafka:local:000000000000:cluster/chaoslab/0");
    // The 300 s pause lets the cluster recover: the hypothesis after the method holds again.
    assert_eq!(j["deviated"], false);
    assert_eq!(code, 0);
}

#[test]
fn the_same_seed_gives_the_same_journal() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let file = experiment("mqtt-outage.yaml");
    let journal = |dir: &Path, seed: &str| {
        let (code, j, path) = run_sim(&file, dir, &["--seed", seed]);
        assert_eq!(code, 0, "{j}");
        (std::fs::read(path).unwrap(), j)
    };
    let (a, ja) = journal(dirs[0].path(), "5");
    let (b, _) = journal(dirs[1].path(), "5");
    assert_eq!(a, b, "same seed, byte-identical journal");
    let (c, _) = journal(dirs[2].path(), "6");
    assert_eq!(ja["run"][1]["output"]["state"], "stopped", "the probe after the fault sees the broker down");
    assert_eq!(ja["duration"], 120.0);
    // Another seed moves the sim clock's ids, not the experiment's structure.
    let jc: Value = serde_json::from_slice(&c).unwrap();
    assert_eq!(jc["status"], ja["status"]);
}

#[test]
fn the_api_latency_assault_makes_the_expiry_worker_reverse_orders() {
    let dir = tempfile::tempdir().unwrap();
    let (code, j, _) = run_sim(&experiment("api-latency-assault.yaml"), dir.path(), &["--warm-up", "3m"]);
    assert_eq!(j["steady_states"]["before"]["probes"][0]["output"], 0.0);
    let after = j["steady_states"]["after"]["probes"][0]["output"].as_f64().unwrap();
    assert!(after > 0.0, "orders were reversed under the assault: {after}");
    assert_eq!((code, &j["deviated"]), (1, &json!(true)));
    assert_eq!(j["ground_truth"]["faults"][0]["kind"], "assault-latency");
}

#[test]
fn an_invalid_experiment_lists_every_problem_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    let bad = json!({
        "title": "",
        "description": "two problems and an unknown function",
        "method": [
            {"type": "action", "name": "x", "provider": {"type": "python", "module": "chaoslab.actions", "func": "explode"}},
            {"type": "action", "name": "y", "provider": {"type": "python", "module": "chaoslab.actions", "func": "apply_fault",
             "arguments": {"kind": "process-kill", "colour": "red"}}}
        ]
    });
    let pretty = serde_json::to_string_pretty(&bad).unwrap();
    std::fs::write(&file, &pretty).unwrap();
    let out = dir.path().join("out");
    let o = chaoslab(&["experiment", "run", "--sim", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("$.title"), "{err}");
    // Every problem with its place: file, line (JSON is read for lines too) and JSON path.
    let func = pretty.lines().position(|l| l.contains("\"explode\"")).unwrap() + 1;
    assert!(err.contains(&format!("bad.json:{func}:$.method[0].provider.func: could not find")), "{err}");
    assert!(err.contains("bad.json:2:$.title: experiment requires a title"), "{err}");
    assert!(err.contains("explode"), "{err}");
    assert!(err.contains("argument 'colour' is not part of the function signature"), "{err}");
    assert!(!out.exists(), "nothing ran");
    let v = chaoslab(&["experiment", "validate", file.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(1));
    for shipped in
        ["corrupt_kafka_messages.yaml", "reboot_msk_broker.yaml", "mqtt-outage.yaml", "flink-crash-loop.yaml"]
    {
        let v = chaoslab(&["experiment", "validate", &experiment(shipped)]);
        let source = std::fs::read_to_string(experiment(shipped)).unwrap();
        assert!(source.starts_with("# What it teaches:"), "{shipped} says what it teaches");
        assert!(v.status.success(), "{shipped}: {}", text(&v.stderr));
    }
}

#[test]
fn discover_and_init_write_usable_documents() {
    let dir = tempfile::tempdir().unwrap();
    let disc = dir.path().join("discovery.json");
    let o = chaoslab(&["experiment", "discover", "--discovery-path", disc.to_str().unwrap()]);
    assert!(o.status.success());
    let d: Value = serde_json::from_str(&std::fs::read_to_string(&disc).unwrap()).unwrap();
    let names: Vec<&str> =
        d["activities"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"apply_fault") && names.contains(&"check_consumer_lag_under_threshold"));
    let exp = dir.path().join("experiment.json");
    assert!(chaoslab(&["experiment", "init", "--experiment-path", exp.to_str().unwrap()]).status.success());
    assert!(
        !chaoslab(&["experiment", "init", "--experiment-path", exp.to_str().unwrap()]).status.success(),
        "no overwrite"
    );
    let (code, j, _) = run_sim(exp.to_str().unwrap(), dir.path(), &[]);
    assert_eq!(code, 0, "the template runs as written: {j}");
}

async fn live(out: &Path) -> chaoslab::runner::LiveHandle {
    let any = || "127.0.0.1:0".parse().unwrap();
    let flow = common::no_load(chaoslab::catalog::reference_flow().unwrap());
    let run = chaoslab::runner::Run::new(flow)
        .out(out)
        .seed(1)
        .rate_ms(50)
        .http_listen(any())
        .mqtt_listen(any())
        .forward_listen(any())
        .log_http_listen(any())
        .allow_process(vec!["true".into()]);
    tokio::time::timeout(WAIT, run.live()).await.expect("live run did not start").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_refuses_bad_credentials_and_runs_faults_and_experiments() {
    let dir = tempfile::tempdir().unwrap();
    let h = live(&dir.path().join("out")).await;
    let addr = h.http_addr;
    let token = h.control_token.clone().unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("out/control-token")).unwrap(), token);
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];

    let missing = request_with(addr, "GET", "/api/faults", &[], None).await;
    assert_eq!(missing.status, 401);
    assert!(missing.header("www-authenticate").unwrap().contains("Bearer"));
    let wrong = request_with(addr, "GET", "/api/faults", &[("Authorization", "Bearer nope")], None).await;
    assert_eq!(wrong.status, 401);
    let exec =
        request_with(addr, "POST", "/execute_experiment", &[], Some(("application/json", b"{}"))).await;
    assert_eq!(exec.status, 401, "experiment execution is authenticated too");
    assert!(!wrong.body.contains(&token));

    // Faults over HTTP.
    let body =
        json!({"kind": "network-delay", "target": "MQTT_BROKER->FLINK", "parameters": {"latency": "100ms"}})
            .to_string();
    let applied =
        request_with(addr, "POST", "/api/faults", &auth, Some(("application/json", body.as_bytes()))).await;
    assert_eq!(applied.status, 201, "{}", applied.body);
    let id = applied.json()["id"].as_str().unwrap().to_owned();
    let listed = request_with(addr, "GET", "/api/faults", &auth, None).await.json();
    assert_eq!(listed["active"][0]["id"], id.as_str());
    let bad =
        json!({"kind": "network-delay", "target": "NOWHERE", "parameters": {"latency": "1s"}}).to_string();
    let refused =
        request_with(addr, "POST", "/api/faults", &auth, Some(("application/json", bad.as_bytes()))).await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("matches nothing"), "{}", refused.body);
    // Durations no clock can hold are refused by name, not a panic and a dropped connection.
    for huge in [json!(1e300), json!(1e20), json!(1e15), json!("300000years")] {
        let bad = json!({"kind": "network-delay", "target": "MQTT_BROKER->FLINK", "duration": huge,
                         "parameters": {"latency": "1s"}})
        .to_string();
        let refused =
            request_with(addr, "POST", "/api/faults", &auth, Some(("application/json", bad.as_bytes())))
                .await;
        assert_eq!(refused.status, 400, "{huge}: {}", refused.body);
        assert!(
            refused.body.contains("duration: ") && refused.body.contains("longer than"),
            "{}",
            refused.body
        );
        let call = json!({"module": "chaoslab.actions", "func": "apply_fault",
                          "arguments": {"kind": "mqtt-broker-down", "duration": huge}})
        .to_string();
        let refused =
            request_with(addr, "POST", "/api/chaos/call", &auth, Some(("application/json", call.as_bytes())))
                .await;
        assert!(refused.status >= 400 && refused.status < 500, "{huge}: {} {}", refused.status, refused.body);
        assert!(refused.body.contains("longer than"), "{}", refused.body);
    }
    let removed = request_with(addr, "DELETE", &format!("/api/faults/{id}"), &auth, None).await;
    assert_eq!(removed.status, 200);
    assert_eq!(removed.json()["status"], "removed");

    // What the Python extension calls. FLINK is ready once it has subscribed; the checks above no longer
    // take argon2's tens of milliseconds each, so wait for it rather than race its start.
    let ready = h.pipeline.supervisor.wait_for("FLINK", |s| s.ready);
    tokio::time::timeout(WAIT, ready).await.expect("FLINK did not become ready").unwrap();
    let call = json!({"module": "chaoslab.probes", "func": "component_up", "arguments": {"name": "FLINK"}})
        .to_string();
    let up =
        request_with(addr, "POST", "/api/chaos/call", &auth, Some(("application/json", call.as_bytes())))
            .await;
    assert_eq!(up.json()["output"], true, "{}", up.body);

    // An experiment over HTTP: a process outside the allow-list is refused, with every problem listed.
    let bad = json!({"title": "t", "description": "d", "method": [
        {"type": "action", "name": "rm", "provider": {"type": "process", "path": "rm", "arguments": "-rf /tmp/x"}}
    ]})
    .to_string();
    let refused =
        request_with(addr, "POST", "/execute_experiment", &auth, Some(("application/json", bad.as_bytes())))
            .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["status_code"], "400");
    assert!(refused.body.contains("not on the allow-list"), "{}", refused.body);
    let good = json!({
        "title": "FLINK survives a kill", "description": "kill it and check it comes back",
        "steady-state-hypothesis": {"title": "FLINK up", "probes": [
            {"type": "probe", "name": "up", "tolerance": true,
             "provider": {"type": "python", "module": "chaoslab.probes", "func": "component_up", "arguments": {"name": "FLINK"}}}
        ]},
        "method": [
            {"type": "action", "name": "kill", "provider": {"type": "python", "module": "chaoslab.actions", "func": "crash_component",
             "arguments": {"name": "FLINK"}}, "pauses": {"after": 3}},
            {"type": "action", "name": "allowed", "provider": {"type": "process", "path": "true"}}
        ]
    })
    .to_string();
    let done =
        request_with(addr, "POST", "/execute_experiment", &auth, Some(("application/json", good.as_bytes())))
            .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let answer = done.json();
    assert_eq!(answer["status_code"], "200");
    assert_eq!(answer["title"], "FLINK survives a kill");
    assert_eq!(answer["status"], "Experiment was executed and terminated with status: completed");
    let journal = request_with(addr, "GET", answer["journal"].as_str().unwrap(), &auth, None).await.json();
    assert_eq!(answer["journal_url"], format!("http://{addr}{}", answer["journal"].as_str().unwrap()));
    assert_eq!(journal["status"], "completed");
    assert_eq!(journal["run"][1]["status"], "succeeded");
    assert!(dir.path().join("out/experiments/exp-0001.json").is_file());
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_interrupts_a_run_against_a_live_target() {
    let dir = tempfile::tempdir().unwrap();
    let h = live(&dir.path().join("out")).await;
    let file = dir.path().join("long.json");
    let exp = json!({
        "title": "long pause", "description": "interrupted halfway",
        "method": [{"type": "action", "name": "delay", "provider": {"type": "python", "module": "chaoslab.actions",
            "func": "apply_fault", "arguments": {"kind": "network-delay", "target": "MQTT_BROKER->FLINK",
            "parameters": {"latency": "50ms"}}}, "pauses": {"after": 60}}],
        "rollbacks": [{"type": "action", "name": "clean", "provider": {"type": "python", "module": "chaoslab.actions",
            "func": "remove_all_faults"}}]
    });
    std::fs::write(&file, exp.to_string()).unwrap();
    let journal = dir.path().join("journal.json");
    let child = crate::common::chaoslab_async()
        .args(["experiment", "run", file.to_str().unwrap(), "--journal-path", journal.to_str().unwrap()])
        .args([
            "--target",
            &format!("http://{}", h.http_addr),
            "--token",
            h.control_token.as_deref().unwrap(),
        ])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    eventually("the fault to be applied", async || (!h.pipeline.faults.list().0.is_empty()).then_some(()))
        .await;
    let killed = std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(killed.success());
    let out =
        tokio::time::timeout(WAIT, child.wait_with_output()).await.expect("the run stops on SIGINT").unwrap();
    assert!(!out.status.success());
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    assert_eq!(j["status"], "interrupted");
    assert!(j["duration"].as_f64().unwrap() < 30.0, "it did not wait out the 60 s pause");
    h.stop().await.unwrap();
}

#[test]
fn verify_measures_throughout_and_summarises_met_and_deviated_samples() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("verify.json");
    let exp = json!({
        "title": "FLINK under a pause", "description": "a ChaosIQ verification",
        "extensions": [{"name": "chaosiq", "verification": {"id": "v-1", "warm-up-duration": 2,
            "frequency-of-measurement": 2, "duration-of-conditions": 20, "cool-down-duration": 2}}],
        "steady-state-hypothesis": {"title": "FLINK up", "probes": [{"type": "probe", "name": "up", "tolerance": true,
            "provider": {"type": "python", "module": "chaoslab.probes", "func": "component_up", "arguments": {"name": "FLINK"}}}]},
        "method": [{"type": "action", "name": "pause", "provider": {"type": "python", "module": "chaoslab.actions",
            "func": "apply_fault", "arguments": {"kind": "process-pause", "target": "FLINK", "duration": "8s"}}}]
    });
    std::fs::write(&file, exp.to_string()).unwrap();
    let out = dir.path().join("out");
    let journal = dir.path().join("journal.json");
    let o = chaoslab(&[
        "experiment",
        "verify",
        "--sim",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert!(stdout.contains("verification summary"), "{stdout}\n{}", text(&o.stderr));
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    let m = j["measurements"].as_array().unwrap();
    let deviated = m.iter().filter(|s| s["steady_state_met"] == false).count();
    assert!(
        deviated >= 2 && deviated < m.len(),
        "the pause shows in some samples only: {deviated} of {}",
        m.len()
    );
}

#[test]
fn runs_and_published_journals_are_kept_in_the_execution_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("executions.db");
    let journal = dir.path().join("journal.json");
    let out = dir.path().join("out");
    let file = experiment("flink-crash-loop.yaml");
    let o = crate::common::chaoslab()
        .env("CHAOSLAB_STORE", &store)
        .args(["experiment", "run", "--sim", &file, "--out", out.to_str().unwrap()])
        .args(["--journal-path", journal.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(journal.is_file(), "{}\n{}", text(&o.stdout), text(&o.stderr));
    // The same journal, published as if the real `chaos` had written it.
    let o =
        chaoslab(&["experiment", "publish", journal.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("as execution 2"), "{}", text(&o.stdout));
    let kept = chaoslab::executions::Store::open(&store).unwrap().list(10).unwrap();
    let sources: Vec<&str> = kept.iter().map(|e| e.source.as_str()).collect();
    assert_eq!(sources, ["publish", "cli"]);
    assert!(kept[1].command.starts_with("chaoslab experiment run --sim"), "{}", kept[1].command);
    assert_eq!(kept[0].title, kept[1].title);
    assert!(kept[1].ground_truth.is_some(), "a sim run knows its ground truth");

    // A file that is not a journal is refused, naming it; nothing is added.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"title\": \"x\"}").unwrap();
    let o = chaoslab(&["experiment", "publish", bad.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("bad.json: not a Chaos Toolkit journal"), "{}", text(&o.stderr));
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\n  \"status\": \n").unwrap();
    let o =
        chaoslab(&["experiment", "publish", broken.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert!(text(&o.stderr).contains("broken.json:3:"), "{}", text(&o.stderr));
    assert_eq!(chaoslab::executions::Store::open(&store).unwrap().list(10).unwrap().len(), 2);
}

/// A flood of wrong tokens from one address runs argon2 at most `MAX_FAILURES` times: after that the
/// address gets 429 at once, while a token the server already verified still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_tokens_is_cut_off_and_a_known_token_still_passes() {
    use chaoslab::api::limiter::MAX_FAILURES;
    let dir = tempfile::tempdir().unwrap();
    let h = live(&dir.path().join("out")).await;
    let addr = h.http_addr;
    let bearer = format!("Bearer {}", h.control_token.clone().unwrap());
    let good = [("Authorization", bearer.as_str())];
    assert_eq!(request_with(addr, "GET", "/api/faults", &good, None).await.status, 200);
    let wrong = [("Authorization", "Bearer not-the-token")];
    for _ in 0..MAX_FAILURES {
        assert_eq!(request_with(addr, "GET", "/api/faults", &wrong, None).await.status, 401);
    }
    let cut = request_with(addr, "GET", "/api/faults", &wrong, None).await;
    assert_eq!(cut.status, 429, "{}", cut.body);
    assert!(cut.body.contains("too many failed credential checks"), "{}", cut.body);
    assert_eq!(
        request_with(addr, "GET", "/api/faults", &good, None).await.status,
        200,
        "the known token passes"
    );
    h.stop().await.unwrap();
}
