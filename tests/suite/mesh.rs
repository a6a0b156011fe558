//! Chaos Mesh files run natively in sim mode: the study's Schedules fire on the even minutes of the run's
//! calendar and make the miner lag, its Workflow behaves as Chaos Mesh's controllers make it (its cron
//! Schedule node fires at most once), Forbid and Allow and historyLimit act as documented, bad files list
//! every problem and start nothing, and the same seed writes the same events.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaoslab::catalog::{PROCESS_MINING_FLOW, parse_flow};
use chaoslab::config::Problems;
use chaoslab::mesh::engine::ObjectStatus;
use chaoslab::mesh::events::MeshEvent;
use chaoslab::mesh::load_files;
use chaoslab::mesh::select::pods_of_flow;
use chaoslab::process_mining::heuristics_miner::HeuristicsMinerConfig;
use chaoslab::runner::Run;
use chaoslab::topology::flow::Flow;

const MIN: Duration = Duration::from_secs(60);

fn flow() -> Flow {
    common::light_mining(parse_flow(PROCESS_MINING_FLOW, "process-mining.toml", None).unwrap())
}

/// A study file from `../shared/reference/chaosmeshwizard/experiments`.
fn study(test: &str, name: &str) -> Option<PathBuf> {
    let path = common::shared_dir()?.join("reference/chaosmeshwizard/experiments").join(name);
    if path.is_file() {
        Some(path)
    } else {
        common::skip(test, &format!("{} is missing", path.display()));
        None
    }
}

/// What a sim run with Chaos Mesh files left: events, objects at the end, lag samples (second, value).
struct Outcome {
    events: Vec<MeshEvent>,
    objects: Vec<ObjectStatus>,
    lag: Vec<(u64, f64)>,
    faults: Vec<chaoslab::chaos::faults::FaultRecord>,
}

/// Runs `files` on `flow` for `length`, creating the objects `delay` after the start.
fn run(flow: Flow, files: &[PathBuf], seed: u64, delay: Duration, length: Duration, out: &Path) -> Outcome {
    let mut problems = Problems::new();
    let loaded = load_files(files, Some(&pods_of_flow(&flow)), &mut problems);
    assert!(!problems.has_errors(), "{problems:?}");
    let slot = Arc::new(Mutex::new(None));
    let seen = slot.clone();
    Run::new(flow)
        .out(out)
        .seed(seed)
        .sim_with(move |p| async move {
            let start = p.clock.start();
            tokio::time::sleep(delay).await;
            for l in &loaded {
                p.mesh.create(&p, l).unwrap();
            }
            let mut lag = Vec::new();
            for s in delay.as_secs()..length.as_secs() {
                tokio::time::sleep_until(start + Duration::from_secs(s)).await;
                let v = chaoslab::monitoring::query_value(&p, "sum(Lag_Input_Topic)").unwrap();
                lag.push((s, v.as_f64().unwrap_or(0.0)));
            }
            let objects = p.mesh.list();
            p.mesh.shutdown().await;
            *seen.lock().unwrap() =
                Some(Outcome { events: p.mesh.events(), objects, lag, faults: p.faults.all() });
            Ok(())
        })
        .unwrap();
    slot.lock().unwrap().take().unwrap()
}

fn reasons<'a>(events: &'a [MeshEvent], reason: &str) -> Vec<&'a MeshEvent> {
    events.iter().filter(|e| e.reason == reason).collect()
}

fn max_in(lag: &[(u64, f64)], from: u64, to: u64) -> f64 {
    lag.iter().filter(|(s, _)| (from..to).contains(s)).map(|(_, v)| *v).fold(0.0, f64::max)
}

#[test]
fn the_study_schedules_fail_the_miner_on_even_minutes_for_30s_and_it_lags() {
    let Some(file) = study("single_schedules", "single_20.yaml") else { return };
    let dir = tempfile::tempdir().unwrap();
    let o = run(flow(), &[file], 5, Duration::ZERO, 7 * MIN, dir.path());
    // The flow's calendar starts at 12:00:00; `*/2 * * * *` ticks strictly after the creation.
    let spawned: Vec<&str> = reasons(&o.events, "ScheduleSpawn").iter().map(|e| e.time.as_str()).collect();
    assert_eq!(spawned, ["2024-06-01T12:02:00.000Z", "2024-06-01T12:04:00.000Z", "2024-06-01T12:06:00.000Z"]);
    let applied = reasons(&o.events, "Applied");
    assert_eq!(applied.len(), 3, "{:?}", o.events);
    for (i, e) in applied.iter().enumerate() {
        assert_eq!(e.object, format!("default/pod-failure-20ms-{}", i + 1));
        assert_eq!(e.targets, ["HEURISTICS-MINER"]);
    }
    let up: Vec<&str> = reasons(&o.events, "TimeUp").iter().map(|e| e.time.as_str()).collect();
    assert_eq!(up, ["2024-06-01T12:02:30.000Z", "2024-06-01T12:04:30.000Z", "2024-06-01T12:06:30.000Z"]);
    // Each failure is a process-failure fault of the miner, 30 s long, caused by its PodChaos.
    let failures: Vec<_> = o.faults.iter().filter(|f| f.kind == "process-failure").collect();
    assert_eq!(failures.len(), 3);
    assert_eq!(failures[0].origin.as_deref(), Some("PodChaos default/pod-failure-20ms-1"));
    // The lag rises during each failure and falls after it.
    for minute in [2u64, 4, 6] {
        let before = max_in(&o.lag, minute * 60 - 30, minute * 60);
        let during = max_in(&o.lag, minute * 60 + 20, minute * 60 + 31);
        assert!(during > before + 5_000.0, "minute {minute}: before {before}, during {during}: {:?}", o.lag);
    }
    // historyLimit 5: all three spawned objects are still listed, finished.
    let spawned_objects: Vec<_> = o.objects.iter().filter(|s| s.kind == "PodChaos").collect();
    assert_eq!(spawned_objects.len(), 3);
    let written = std::fs::read_to_string(dir.path().join("mesh-events.jsonl")).unwrap();
    assert_eq!(written.lines().count(), o.events.len());
}

#[test]
fn the_study_workflow_fires_at_most_once_as_in_chaos_mesh() {
    let Some(file) = study("study_workflow", "pod_failure.yaml") else { return };
    // `mesh check` warns with file and line: the Schedule node's 30 s deadline is shorter than its cron.
    let mut problems = Problems::new();
    load_files(std::slice::from_ref(&file), Some(&pods_of_flow(&flow())), &mut problems);
    let warnings: Vec<String> = problems.warnings().map(ToString::to_string).collect();
    let at = format!("{}:16:spec.templates[1].deadline", file.display());
    assert!(warnings.iter().any(|w| w.contains(&at) && w.contains("fires at most once")), "{warnings:#?}");
    assert!(warnings.iter().any(|w| w.contains("jitter") && w.contains("2.8")), "{warnings:#?}");
    assert!(warnings.iter().any(|w| w.contains("type") && w.contains("PodChaos")), "{warnings:#?}");

    // Started at 12:00:00, the node ends at 12:00:30, before the first tick at 12:02: nothing fails.
    let dir = tempfile::tempdir().unwrap();
    let o = run(flow(), std::slice::from_ref(&file), 1, Duration::ZERO, 7 * MIN, dir.path());
    assert_eq!(reasons(&o.events, "ScheduleNeverFires").len(), 1, "{:#?}", o.events);
    assert!(reasons(&o.events, "ScheduleSpawn").is_empty());
    assert!(o.faults.is_empty(), "a zero delay injects nothing: {:?}", o.faults);
    let accomplished = reasons(&o.events, "WorkflowAccomplished");
    assert_eq!(accomplished.len(), 1);
    assert_eq!(accomplished[0].time, "2024-06-01T12:06:00.000Z");

    // Started at 12:01:45, the tick at 12:02:00 falls inside the 30 s: one failure, cut short at 12:02:15
    // when the node's deadline deletes the Schedule and the chaos it created.
    let dir = tempfile::tempdir().unwrap();
    let o = run(flow(), &[file], 1, Duration::from_secs(105), 9 * MIN, dir.path());
    let spawned = reasons(&o.events, "ScheduleSpawn");
    assert_eq!(spawned.len(), 1, "{:#?}", o.events);
    assert_eq!(spawned[0].time, "2024-06-01T12:02:00.000Z");
    let failures: Vec<_> = o.faults.iter().filter(|f| f.kind == "process-failure").collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].ended_at.as_deref(), Some("2024-06-01T12:02:15.000Z"));
    let deadline: Vec<&str> =
        reasons(&o.events, "NodeDeadlineExceed").iter().map(|e| e.targets[0].as_str()).collect();
    assert!(deadline.contains(&"podfailure-1") && deadline.contains(&"parententry"), "{deadline:?}");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn every_20s(policy: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: Schedule\nmetadata:\n  name: overlap\n  namespace: kafka\n\
         spec:\n  schedule: '@every 20s'\n  type: PodChaos\n  concurrencyPolicy: {policy}\n  historyLimit: 2\n  \
         podChaos:\n    action: pod-failure\n    mode: one\n    duration: 50s\n    selector:\n      \
         labelSelectors:\n        app: heuristics-miner-flink\n"
    )
}

#[test]
fn forbid_skips_allow_overlaps_and_history_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    let forbid = write(dir.path(), "forbid.yaml", &every_20s("Forbid"));
    let o = run(flow(), &[forbid], 2, Duration::ZERO, 3 * MIN, &dir.path().join("forbid"));
    // Ticks at 20 s, 40 s, …: the first chaos runs 20–70 s, so 40 and 60 are forbidden, 80 spawns.
    let spawn: Vec<u64> = reasons(&o.events, "ScheduleSpawn").iter().map(|e| e.elapsed_ms / 1000).collect();
    assert_eq!(spawn, [20, 80, 140]);
    let forbidden: Vec<u64> =
        reasons(&o.events, "ScheduleForbid").iter().map(|e| e.elapsed_ms / 1000).collect();
    assert_eq!(forbidden, [40, 60, 100, 120, 160]);
    // historyLimit 2: the oldest finished one is forgotten once a third exists.
    let listed: Vec<&str> =
        o.objects.iter().filter(|s| s.kind == "PodChaos").map(|s| s.name.as_str()).collect();
    assert_eq!(listed, ["overlap-2", "overlap-3"]);

    let allow = write(dir.path(), "allow.yaml", &every_20s("Allow"));
    let o = run(flow(), &[allow], 2, Duration::ZERO, 3 * MIN, &dir.path().join("allow"));
    let spawn: Vec<u64> = reasons(&o.events, "ScheduleSpawn").iter().map(|e| e.elapsed_ms / 1000).collect();
    assert_eq!(spawn, [20, 40, 60, 80, 100, 120, 140, 160]);
    assert!(reasons(&o.events, "ScheduleForbid").is_empty());
    // Overlapping failures of the same miner: at 65 s three are active at once.
    let active_at = |ms: u64| {
        let by = |reason: &str| reasons(&o.events, reason).iter().filter(|e| e.elapsed_ms <= ms).count();
        by("Applied") - by("Recovered")
    };
    assert_eq!(active_at(65_000), 3);
}

fn chaoslab() -> Command {
    crate::common::chaoslab()
}

#[test]
fn bad_files_list_every_problem_and_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: lag\nspec:\n  action: delay\n  \
         mode: fixed-percent\n  value: '150'\n  selector:\n    namespaces: [kafka]\n  delay:\n    latency: 20 ms\n  \
         duration: soon\n---\napiVersion: chaos-mesh.org/v1alpha1\nkind: DNSChaos\nmetadata:\n  name: dns\nspec: {}\n\
         ---\napiVersion: chaos-mesh.org/v1alpha1\nkind: Schedule\nmetadata:\n  name: cron\nspec:\n  schedule: '*/2 * *'\n  \
         type: PodChaos\n  podChaos:\n    action: pod-kill\n    mode: one\n    selector: {}\n",
    );
    let out = dir.path().join("out");
    let run = chaoslab()
        .args(["mesh", "run", "--sim", "--for", "1m", "--out"])
        .arg(&out)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    let file = bad.display().to_string();
    for expected in [
        format!("{file}:8:spec.value: "),
        format!("{file}:12:spec.delay.latency: "),
        format!("{file}:13:spec.duration: "),
        format!("{file}:16:kind: DNSChaos acts on"),
        format!("{file}:26:spec.schedule: expected 5 fields"),
    ] {
        assert!(stderr.contains(&expected), "missing {expected:?} in:\n{stderr}");
    }
    assert!(stderr.contains("nothing started"), "{stderr}");
    assert!(!out.join("mesh-events.jsonl").exists(), "nothing ran");

    let check = chaoslab().args(["mesh", "check"]).arg(&bad).output().unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&check.stderr).lines().filter(|l| l.starts_with(&file)).count(), 5);
}

#[test]
fn check_shows_what_each_selector_matches() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "delay.yaml",
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: network-delay\nspec:\n  \
         action: delay\n  mode: all\n  selector:\n    namespaces: [kafka]\n  delay:\n    latency: 20ms\n---\n\
         apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata:\n  name: nothing\nspec:\n  action: pod-kill\n  \
         mode: one\n  selector:\n    labelSelectors: {app: nobody}\n",
    );
    let flow = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/process-mining.toml");
    let check = chaoslab().args(["mesh", "check", "--flow"]).arg(&flow).arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("NetworkChaos default/network-delay"), "{stdout}");
    assert!(stdout.contains("heuristics-miner") && stdout.contains("event-source"), "{stdout}");
    assert!(stdout.contains("spec: mode one of no pod"), "{stdout}");
    let file = file.display().to_string();
    assert!(stderr.contains(&format!("warning: {file}:20:spec.selector: selects no pod")), "{stderr}");
    assert!(
        stderr.contains(&format!("warning: {file}:11:spec.delay.latency: Chaos Mesh 2.7.0 to 2.7.3")),
        "{stderr}"
    );
}

#[test]
fn the_same_seed_writes_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    // `mode: one` over every pod of the namespace: which pod, and so every event after, follows the seed.
    let file = write(
        dir.path(),
        "random.yaml",
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: Schedule\nmetadata:\n  name: random-kill\n  namespace: kafka\n\
         spec:\n  schedule: '@every 10s'\n  type: NetworkChaos\n  historyLimit: 3\n  networkChaos:\n    \
         action: loss\n    mode: one\n    duration: 5s\n    selector: {}\n    loss:\n      loss: '50'\n",
    );
    let events = |seed: u64, name: &str| {
        let out = dir.path().join(name);
        let status = chaoslab()
            .args([
                "mesh",
                "run",
                "--sim",
                "--for",
                "75s",
                "--trace",
                "lifecycle",
                "--seed",
                &seed.to_string(),
            ])
            .args(["--flow", concat!(env!("CARGO_MANIFEST_DIR"), "/flows/process-mining.toml"), "--out"])
            .arg(&out)
            .arg(&file)
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        std::fs::read(out.join("mesh-events.jsonl")).unwrap()
    };
    let a = events(11, "a");
    let b = events(11, "b");
    assert_eq!(a, b, "same seed, same bytes");
    assert!(String::from_utf8_lossy(&a).lines().filter(|l| l.contains("\"Applied\"")).count() >= 6);
    let others: Vec<Vec<u8>> = (12..14).map(|s| events(s, &format!("s{s}"))).collect();
    assert!(others.iter().any(|o| *o != a), "another seed picks other pods");
}

#[test]
fn the_shipped_files_are_valid_and_the_fixed_workflow_fails_the_miner_under_delay() {
    let shipped: Vec<PathBuf> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/mesh"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(shipped.len() >= 2);
    let mut problems = Problems::new();
    let loaded = load_files(&shipped, Some(&pods_of_flow(&flow())), &mut problems);
    assert!(!problems.has_errors(), "{problems:?}");
    assert_eq!(loaded.len(), shipped.len());

    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/mesh/miner-failures-under-delay.yaml");
    let dir = tempfile::tempdir().unwrap();
    let o = run(flow(), &[file], 4, Duration::ZERO, 5 * MIN, dir.path());
    let spawned: Vec<&str> = reasons(&o.events, "ScheduleSpawn").iter().map(|e| e.time.as_str()).collect();
    assert_eq!(spawned, ["2024-06-01T12:02:00.000Z", "2024-06-01T12:04:00.000Z"], "{:#?}", o.events);
    let delays: Vec<_> = o.faults.iter().filter(|f| f.kind == "network-delay").collect();
    assert_eq!(delays.len(), 1);
    assert_eq!(delays[0].origin.as_deref(), Some("NetworkChaos kafka/failures-under-delay-kafka-delay"));
    assert!(delays[0].targets.iter().any(|t| t.ends_with("->HEURISTICS-MINER")), "{:?}", delays[0].targets);
    assert_eq!(o.faults.iter().filter(|f| f.kind == "process-failure").count(), 2);
}

const MINER_FAILURE: &str = "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata:\n  name: miner-down\n  \
                             namespace: kafka\nspec:\n  action: pod-failure\n  mode: one\n  selector:\n    \
                             labelSelectors:\n      app: heuristics-miner-flink\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_instance_takes_objects_over_http_and_from_the_cli() {
    use common::http::{WAIT, eventually, request_with};
    let dir = tempfile::tempdir().unwrap();
    let run = Run::new(flow()).out(dir.path().join("out")).seed(1).http_listen(([127, 0, 0, 1], 0).into());
    let h = tokio::time::timeout(WAIT, run.live()).await.expect("live run did not start").unwrap();
    let addr = h.http_addr;
    let bearer = format!("Bearer {}", h.control_token.clone().unwrap());
    let auth = [("Authorization", bearer.as_str())];
    let yaml = |text: &'static str| Some(("application/yaml", text.as_bytes()));

    let anonymous = request_with(addr, "POST", "/api/experiments", &[], yaml(MINER_FAILURE)).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(request_with(addr, "GET", "/api/events", &[], None).await.status, 401);
    let bad = request_with(addr, "POST", "/api/experiments", &auth, yaml("apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {name: x}\nspec:\n  action: pod-kill\n  mode: most\n  selector: {}\n")).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.json()["problems"][0].as_str().unwrap().starts_with("request:6:spec.mode: unknown variant"),
        "{}",
        bad.body
    );

    let created = request_with(addr, "POST", "/api/experiments", &auth, yaml(MINER_FAILURE)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let uid = created.json()["created"][0]["uid"].as_str().unwrap().to_string();
    let again = request_with(addr, "POST", "/api/experiments", &auth, yaml(MINER_FAILURE)).await;
    assert_eq!(again.status, 409, "{}", again.body);
    let active = |body: &str| -> usize {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["active"].as_array().unwrap().iter().filter(|f| f["origin"] == "PodChaos kafka/miner-down").count()
    };
    eventually("the failure is applied", async || {
        (active(&request_with(addr, "GET", "/api/faults", &auth, None).await.body) == 1).then_some(())
    })
    .await;
    // Paused, its fault is recovered; started again, applied again.
    let paused = request_with(addr, "PUT", &format!("/api/experiments/pause/{uid}"), &auth, None).await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    eventually("the pause recovers it", async || {
        (active(&request_with(addr, "GET", "/api/faults", &auth, None).await.body) == 0).then_some(())
    })
    .await;
    assert_eq!(
        request_with(addr, "PUT", &format!("/api/experiments/start/{uid}"), &auth, None).await.status,
        200
    );
    eventually("the resume applies it again", async || {
        (active(&request_with(addr, "GET", "/api/faults", &auth, None).await.body) == 1).then_some(())
    })
    .await;
    assert_eq!(
        request_with(addr, "DELETE", &format!("/api/experiments/{uid}"), &auth, None).await.status,
        200
    );
    let archived = eventually("the deleted chaos is archived", async || {
        let a = request_with(addr, "GET", "/api/archives", &auth, None).await.json();
        a.as_array().unwrap().iter().find(|o| o["uid"] == uid.as_str()).cloned()
    })
    .await;
    let reasons: Vec<&str> =
        archived["events"].as_array().unwrap().iter().map(|e| e["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["Applied", "Recovered", "Paused", "Applied", "Recovered", "Deleted"]);
    assert_eq!(active(&request_with(addr, "GET", "/api/faults", &auth, None).await.body), 0);

    // The CLI: apply, list, events, delete.
    let file = write(dir.path(), "schedule.yaml", &every_20s("Allow"));
    let target = format!("http://{addr}");
    let token = h.control_token.clone().unwrap();
    let cli = move |args: &[&str]| {
        let out = chaoslab()
            .arg("mesh")
            .args(args)
            .args(["--target", &target, "--token", &token])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cli = std::sync::Arc::new(cli);
    let run_cli = |args: Vec<String>| {
        let cli = cli.clone();
        async move {
            tokio::task::spawn_blocking(move || cli(&args.iter().map(String::as_str).collect::<Vec<_>>()))
                .await
                .unwrap()
        }
    };
    let (code, out, err) = run_cli(vec!["apply".into(), file.display().to_string()]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Schedule kafka/overlap created"), "{out}");
    let jsonnet = write(
        dir.path(),
        "kill.jsonnet",
        "local kill(name) = { apiVersion: 'chaos-mesh.org/v1alpha1', kind: 'PodChaos', metadata: { name: name, \
         namespace: 'kafka' }, spec: { action: 'pod-kill', mode: 'one', selector: { labelSelectors: { app: \
         'heuristics-miner-flink' } } } };\n{ first: kill('jk') }\n",
    );
    let (code, out, err) = run_cli(vec!["apply".into(), jsonnet.display().to_string()]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("PodChaos kafka/jk created"), "{out}");
    let (_, listed, _) = run_cli(vec!["list".into()]).await;
    assert!(
        listed.contains("Schedule") && listed.contains("kafka/overlap") && listed.contains("running"),
        "{listed}"
    );
    let (code, out, err) = run_cli(vec!["delete".into(), "kafka/overlap".into()]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    eventually("the CLI shows the deletion", async || {
        let (code, events, _) = run_cli(vec!["events".into(), "Schedule/kafka/overlap".into()]).await;
        (code == Some(0) && events.contains("Schedule kafka/overlap Deleted")).then_some(())
    })
    .await;
    let (code, _, err) = run_cli(vec!["delete".into(), "nothing-like-it".into()]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("no object \"nothing-like-it\""), "{err}");
    tokio::time::timeout(WAIT, h.stop()).await.expect("stop in time").unwrap();
}

#[test]
fn a_flow_applies_its_mesh_files_at_the_start_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "kill.yaml", MINER_FAILURE.replace("pod-failure", "pod-kill").as_str());
    let text = format!("{PROCESS_MINING_FLOW}\n[[mesh]]\nfile = \"kill.yaml\"\n");
    let mut f = parse_flow(&text, "flow.toml", Some(dir.path().to_path_buf())).unwrap();
    f.configure::<HeuristicsMinerConfig>(|m| m.throughput = 800);
    let summary = Run::new(f).out(dir.path().join("out")).seed(1).sim(Duration::from_secs(20)).unwrap();
    assert_eq!(summary.components["HEURISTICS-MINER"].restarts, 1, "the pod-kill restarted the miner");
    let events = std::fs::read_to_string(dir.path().join("out/mesh-events.jsonl")).unwrap();
    assert!(events.contains("\"Applied\""), "{events}");

    let missing = format!("{PROCESS_MINING_FLOW}\n[[mesh]]\nfile = \"nope.yaml\"\n");
    let e = parse_flow(&missing, "flow.toml", Some(dir.path().to_path_buf())).unwrap_err().to_string();
    assert!(e.contains("mesh[0].file") && e.contains("nope.yaml not found"), "{e}");
    write(dir.path(), "bad.yaml", &MINER_FAILURE.replace("mode: one", "mode: few"));
    let bad = format!("{PROCESS_MINING_FLOW}\n[[mesh]]\nfile = \"bad.yaml\"\n");
    let f = parse_flow(&bad, "flow.toml", Some(dir.path().to_path_buf())).unwrap();
    let e = Run::new(f).out(dir.path().join("out2")).sim(Duration::from_secs(5)).unwrap_err().to_string();
    assert!(e.contains("bad.yaml:8:spec.mode"), "{e}");
    assert!(!dir.path().join("out2").exists(), "nothing was built");
}

fn checked_failure(abort: bool) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: Workflow\nmetadata:\n  name: checked\n  namespace: kafka\nspec:\n  \
         entry: all\n  templates:\n    - name: all\n      templateType: Parallel\n      deadline: 3m\n      \
         children: [health, later]\n    - name: health\n      templateType: StatusCheck\n      \
         abortWithStatusCheck: {abort}\n      statusCheck:\n        mode: Continuous\n        intervalSeconds: 10\n        \
         failureThreshold: 2\n        http:\n          url: /health\n          criteria: {{statusCode: '200'}}\n    \
         - name: later\n      templateType: Serial\n      children: [wait, fail]\n    - name: wait\n      \
         templateType: Suspend\n      deadline: 25s\n    - name: fail\n      templateType: PodChaos\n      \
         deadline: 2m\n      podChaos:\n        action: pod-failure\n        mode: one\n        selector:\n          \
         labelSelectors: {{app: heuristics-miner-flink}}\n"
    )
}

#[test]
fn a_failing_status_check_aborts_the_workflow_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let abort = write(dir.path(), "abort.yaml", &checked_failure(true));
    let o = run(flow(), &[abort], 3, Duration::ZERO, 4 * MIN, &dir.path().join("abort"));
    let at =
        |reason: &str| reasons(&o.events, reason).iter().map(|e| e.elapsed_ms / 1000).collect::<Vec<_>>();
    // /health answers 503 from 25 s (the miner is down); the probes at 30 s and 40 s fail.
    assert_eq!(at("StatusCheckFailing"), [30]);
    assert_eq!(at("FailureThresholdExceed"), [40]);
    assert_eq!(at("WorkflowAborted"), [40]);
    assert!(at("WorkflowAccomplished").is_empty());
    let failure = o.faults.iter().find(|f| f.kind == "process-failure").unwrap();
    assert_eq!(failure.ended_at.as_deref(), Some("2024-06-01T12:00:40.000Z"), "the abort deleted the chaos");

    let keep = write(dir.path(), "keep.yaml", &checked_failure(false));
    let o = run(flow(), &[keep], 3, Duration::ZERO, 4 * MIN, &dir.path().join("keep"));
    let at =
        |reason: &str| reasons(&o.events, reason).iter().map(|e| e.elapsed_ms / 1000).collect::<Vec<_>>();
    assert_eq!(at("FailureThresholdExceed"), [40]);
    assert!(at("WorkflowAborted").is_empty());
    assert_eq!(at("WorkflowAccomplished"), [145], "the workflow runs on: 25 s + 2 m");
    let failure = o.faults.iter().find(|f| f.kind == "process-failure").unwrap();
    assert_eq!(failure.ended_at.as_deref(), Some("2024-06-01T12:02:25.000Z"));
}

const TASK_WORKFLOW: &str = "apiVersion: chaos-mesh.org/v1alpha1\nkind: Workflow\nmetadata:\n  name: decide\n  \
namespace: kafka\nspec:\n  entry: probe\n  templates:\n    - name: probe\n      templateType: Task\n      task:\n        \
container:\n          name: probe\n          image: chaoslab\n          command: [http-get, /health]\n      \
conditionalBranches:\n        - {target: kill, expression: 'exitCode == 0'}\n        - {target: wait, expression: \
'exitCode != 0'}\n        - {target: shout, expression: ''}\n    - name: kill\n      templateType: PodChaos\n      \
deadline: 10s\n      podChaos: {action: pod-kill, mode: one, selector: {labelSelectors: {app: heuristics-miner-flink}}}\n    \
- name: wait\n      templateType: Suspend\n      deadline: 10s\n    - name: shout\n      templateType: Task\n      \
task: {container: {name: shout, image: 'chaoslab:latest', command: [echo, branch-a]}}\n      conditionalBranches:\n        \
- {target: never, expression: 'stdout == \"branch-b\"'}\n    - name: never\n      templateType: Task\n      \
task: {container: {name: sh, image: alpine, command: [sh, -c, 'echo hi']}}\n";

#[test]
fn task_nodes_branch_on_exit_code_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "task.yaml", TASK_WORKFLOW);
    let o = run(flow(), &[file], 1, Duration::from_secs(5), MIN, &dir.path().join("a"));
    let selected: Vec<Vec<String>> =
        reasons(&o.events, "ConditionalBranchesSelected").iter().map(|e| e.targets.clone()).collect();
    assert_eq!(selected, [vec!["kill".to_string(), "shout".into()], vec![]], "{:#?}", o.events);
    let completed: Vec<&str> =
        reasons(&o.events, "TaskPodPodCompleted").iter().map(|e| e.message.as_str()).collect();
    assert!(completed[0].starts_with("task probe exited with 0; stdout \"{"), "{completed:?}");
    assert_eq!(completed[1], "task shout exited with 0; stdout \"branch-a\"");
    let kills: Vec<_> = o.faults.iter().filter(|f| f.kind == "process-kill").collect();
    assert_eq!(kills.len(), 1);
    assert_eq!(kills[0].origin.as_deref(), Some("PodChaos kafka/decide-kill"));
    assert_eq!(reasons(&o.events, "WorkflowAccomplished").len(), 1);

    // A container that is not chaoslab's is an executable: refused in sim mode, with the reason.
    let process = TASK_WORKFLOW.replace("entry: probe", "entry: never");
    let file = write(dir.path(), "process.yaml", &process);
    let o = run(flow(), &[file], 1, Duration::ZERO, MIN, &dir.path().join("p"));
    let failed = reasons(&o.events, "Failed");
    assert!(failed.iter().any(|e| e.message.contains("sim mode runs no processes")), "{:#?}", o.events);
}

#[test]
fn http_chaos_hurts_the_order_api() {
    let file_text = "apiVersion: chaos-mesh.org/v1alpha1\nkind: HTTPChaos\nmetadata:\n  name: api-down\n  namespace: orders\n\
spec:\n  mode: all\n  selector:\n    labelSelectors: {app: poke-order-api}\n  target: Request\n  port: 8000\n  \
path: /list_orders*\n  abort: true\n  duration: 30s\n";
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "http.yaml", file_text);
    let mut problems = Problems::new();
    let mut flow = common::no_load(chaoslab::catalog::reference_flow().unwrap());
    flow.without(&["SENSOR", "FLINK", "NIFI", "HADOOP", "NODE-RED", "SPARK", "ELASTICSEARCH"]);
    let loaded = load_files(&[file], Some(&pods_of_flow(&flow)), &mut problems);
    assert!(!problems.has_errors(), "{problems:?}");
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let seen = statuses.clone();
    Run::new(flow)
        .out(dir.path().join("out"))
        .seed(1)
        .sim_with(move |p| async move {
            let api = common::order_api(&p);
            let status = async |api: &chaoslab::orders::http::ApiClient| {
                api.send(hyper::Method::GET, "/list_orders", None).await.unwrap().status.as_u16()
            };
            tokio::time::sleep(Duration::from_secs(5)).await;
            let code = status(&api).await;
            seen.lock().unwrap().push(code);
            p.mesh.create(&p, &loaded[0]).unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let code = status(&api).await;
            seen.lock().unwrap().push(code);
            tokio::time::sleep(Duration::from_secs(30)).await;
            let code = status(&api).await;
            seen.lock().unwrap().push(code);
            Ok(())
        })
        .unwrap();
    assert_eq!(*statuses.lock().unwrap(), [200, 503, 200]);
}

/// Chaos Mesh's patch and replace with filters: a tampering proxy in front of the order API. New orders'
/// prices are patched to 0 on the way in (and stored so); only 404 answers become 500s.
#[test]
fn http_chaos_patches_requests_and_replaces_filtered_responses() {
    let file_text = "apiVersion: chaos-mesh.org/v1alpha1\nkind: HTTPChaos\nmetadata: {name: free-pokemon, namespace: orders}\n\
spec:\n  mode: all\n  selector: {labelSelectors: {app: poke-order-api}}\n  target: Request\n  port: 8000\n  \
path: /orders*\n  method: POST\n  request_headers: {content-type: application/json}\n  \
patch:\n    body: {type: JSON, value: '{\"price\": 0}'}\n---\n\
apiVersion: chaos-mesh.org/v1alpha1\nkind: HTTPChaos\nmetadata: {name: lost-is-broken, namespace: orders}\n\
spec:\n  mode: all\n  selector: {labelSelectors: {app: poke-order-api}}\n  target: Response\n  port: 8000\n  \
path: /orders/*\n  code: 404\n  replace: {code: 500, headers: {x-chaos: lost-is-broken}}\n";
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "http.yaml", file_text);
    let mut problems = Problems::new();
    let mut flow = common::no_load(chaoslab::catalog::reference_flow().unwrap());
    flow.without(&["SENSOR", "FLINK", "NIFI", "HADOOP", "NODE-RED", "SPARK", "ELASTICSEARCH"]);
    let loaded = load_files(&[file], Some(&pods_of_flow(&flow)), &mut problems);
    assert!(!problems.has_errors(), "{problems:?}");
    assert_eq!(loaded.len(), 2);
    let seen = Arc::new(Mutex::new(Vec::<(u16, serde_json::Value)>::new()));
    let out = seen.clone();
    Run::new(flow)
        .out(dir.path().join("out"))
        .seed(1)
        .sim_with(move |p| async move {
            let api = common::order_api(&p);
            let order = br#"{"user_id": 7, "pokemon": "eevee", "country": "Germany", "price": 120}"#.to_vec();
            let call = async |method: hyper::Method, path: &str, body: Option<Vec<u8>>| {
                let r = api.send(method, path, body).await.unwrap();
                (r.status.as_u16(), serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null))
            };
            tokio::time::sleep(Duration::from_secs(5)).await;
            for o in &loaded {
                p.mesh.create(&p, o).unwrap();
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let created = call(hyper::Method::POST, "/orders/", Some(order)).await;
            let id = created.1["id"].as_i64().unwrap_or(-1);
            let stored = call(hyper::Method::GET, &format!("/orders/{id}"), None).await;
            let missing = call(hyper::Method::GET, "/orders/999999", None).await;
            out.lock().unwrap().extend([created, stored, missing]);
            Ok(())
        })
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, 200, "{seen:?}");
    assert_eq!(seen[0].1["price"], 0.0, "the request was patched before the handler: {seen:?}");
    assert_eq!((seen[1].0, &seen[1].1["price"]), (200, &serde_json::json!(0.0)), "and stored so");
    assert_eq!(seen[2].0, 500, "a 404 became a 500: {seen:?}");
}

/// IOChaos `attrOverride` through the one attribute the stores depend on: a read-only `perm` on the order
/// store's `orders` table fails writes with EACCES (creating an order answers 503) while reads go on.
#[test]
fn io_chaos_read_only_perm_fails_writes_not_reads() {
    let file_text = "apiVersion: chaos-mesh.org/v1alpha1\nkind: IOChaos\nmetadata: {name: read-only-db, namespace: orders}\n\
spec:\n  action: attrOverride\n  mode: all\n  selector: {labelSelectors: {app: poke-orders-db}}\n  volumePath: /var/lib/db\n  \
path: /var/lib/db/orders\n  attr: {perm: 0444}\n  duration: 30s\n";
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "io.yaml", file_text);
    let mut problems = Problems::new();
    let mut flow = common::no_load(chaoslab::catalog::reference_flow().unwrap());
    flow.without(&["SENSOR", "FLINK", "NIFI", "HADOOP", "NODE-RED", "SPARK", "ELASTICSEARCH"]);
    let loaded = load_files(&[file], Some(&pods_of_flow(&flow)), &mut problems);
    assert!(!problems.has_errors(), "{problems:?}");
    let seen = Arc::new(Mutex::new(Vec::<u16>::new()));
    let out = seen.clone();
    Run::new(flow)
        .out(dir.path().join("out"))
        .seed(1)
        .sim_with(move |p| async move {
            let api = common::order_api(&p);
            let order = br#"{"user_id": 7, "pokemon": "eevee", "country": "Germany", "price": 120}"#.to_vec();
            let status = async |method: hyper::Method, body: Option<Vec<u8>>| {
                api.send(method, "/orders/", body).await.unwrap().status.as_u16()
            };
            tokio::time::sleep(Duration::from_secs(5)).await;
            let before = status(hyper::Method::POST, Some(order.clone())).await;
            p.mesh.create(&p, &loaded[0]).unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let write = status(hyper::Method::POST, Some(order.clone())).await;
            let read = status(hyper::Method::GET, None).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            let after = status(hyper::Method::POST, Some(order)).await;
            out.lock().unwrap().extend([before, write, read, after]);
            Ok(())
        })
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [200, 503, 200, 200]);
}

/// `externalTargets` name hosts outside chaoslab: the component fronting an external broker is the other
/// end of the cut, so the sensor's publishes to "Mosquitto" are lost while the rest of the flow runs on.
#[test]
fn external_targets_cut_the_links_to_the_component_fronting_that_host() {
    let file_text = "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: broker-loss, namespace: iot}\n\
spec:\n  action: loss\n  mode: all\n  selector: {namespaces: [iot]}\n  loss: {loss: '100'}\n  \
externalTargets: [Mosquitto.lab.example, 10.0.0.0/8]\n  duration: 20s\n";
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "external.yaml", file_text);
    let mut flow = common::iot_only(chaoslab::catalog::reference_flow().unwrap());
    flow.configure::<chaoslab::transport::mqtt::mqtt_broker::MqttBrokerConfig>(|b| {
        b.external = Some("mqtt://mosquitto.lab.example:1883".into())
    });
    let mut problems = Problems::new();
    let loaded = load_files(std::slice::from_ref(&file), Some(&pods_of_flow(&flow)), &mut problems);
    assert!(!problems.has_errors(), "{problems:?}");
    let warnings: Vec<String> = problems.all().iter().map(ToString::to_string).collect();
    let warnings = warnings.join("\n");
    assert!(
        warnings.contains("externalTargets[1]: \"10.0.0.0/8\" is no external host of this flow"),
        "{warnings}"
    );
    assert!(!warnings.contains("externalTargets[0]"), "{warnings}");
    let records = Arc::new(Mutex::new(Vec::new()));
    let seen = records.clone();
    Run::new(flow)
        .out(dir.path().join("out"))
        .seed(2)
        .sim_with(move |p| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            p.mesh.create(&p, &loaded[0]).unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            *seen.lock().unwrap() = p.faults.all();
            Ok(())
        })
        .unwrap();
    let records = records.lock().unwrap();
    let loss: Vec<_> = records.iter().filter(|r| r.kind == "network-loss").collect();
    assert_eq!(loss.len(), 1, "{records:?}");
    assert_eq!(loss[0].targets, ["SENSOR->MQTT_BROKER"], "only the hop to the external broker");
    // Without a component fronting it, the same file names nothing: `mesh check` says so.
    let out = chaoslab().args(["mesh", "check"]).arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"Mosquitto.lab.example\" is no external host of this flow"), "{stderr}");
}

#[test]
fn the_study_jsonnet_renders_but_not_to_the_yaml_it_committed() {
    let Some(yaml) = study("jsonnet", "pod_failure.yaml") else { return };
    let jsonnet_dir = yaml.parent().unwrap().parent().unwrap().join("jsonnet");
    let rendered = chaoslab::mesh::jsonnet::render(&jsonnet_dir.join("pod_failure.jsonnet")).unwrap();
    assert_eq!(rendered.len(), 1);
    assert_eq!(rendered[0].0, "chaosWorkflow");
    let mut from_jsonnet: serde_json::Value = serde_json::from_str(&rendered[0].1).unwrap();
    let committed: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(&yaml).unwrap()).unwrap();
    // The helper renders `templates` as {parent, childConfigs}, which Chaos Mesh refuses; chaoslab says so
    // and how to write it.
    let mut problems = Problems::new();
    let files: Vec<PathBuf> = std::fs::read_dir(&jsonnet_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonnet"))
        .collect();
    assert_eq!(files.len(), 6);
    let loaded = load_files(&files, Some(&pods_of_flow(&flow())), &mut problems);
    assert!(loaded.is_empty());
    let errors: Vec<String> = problems.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 6, "{errors:#?}");
    let (broken, semi_valid): (Vec<&String>, Vec<&String>) = errors.iter().partition(|e| e.contains("80ms"));
    // 80ms_network_and_pod.jsonnet names `podFailureDuration`, which it never defines: it does not evaluate.
    assert!(
        broken[0].ends_with(
            "80ms_network_and_pod.jsonnet: Jsonnet evaluation failed (the evaluator's message is above)"
        ),
        "{broken:?}"
    );
    assert!(
        semi_valid.iter().all(|e| e
            .contains(".jsonnet (chaosWorkflow):9:spec.templates: a mapping of `parent` and `childConfigs`")),
        "{semi_valid:#?}"
    );
    // Flattened as the message says, it is the committed file but for one field: the Schedule node's
    // deadline, 360s as rendered, 30s as committed — the edit that made its cron fire at most once.
    let templates = from_jsonnet["spec"]["templates"].take();
    let mut flat = vec![templates["parent"].clone()];
    flat.extend(templates["childConfigs"].as_array().unwrap().iter().map(|c| c["config"].clone()));
    from_jsonnet["spec"]["templates"] = serde_json::Value::Array(flat);
    assert_eq!(from_jsonnet["spec"]["templates"][1]["deadline"], "360s");
    assert_eq!(committed["spec"]["templates"][1]["deadline"], "30s");
    from_jsonnet["spec"]["templates"][1]["deadline"] = "30s".into();
    assert_eq!(from_jsonnet, committed);
}

#[test]
fn cpu_stress_slows_the_miner_and_its_lag_grows() {
    let dir = tempfile::tempdir().unwrap();
    // Three workers at 100 %: the miner keeps a quarter of a core, 200 of its 800 events/s, under the
    // 400/s the source sends.
    let file = write(
        dir.path(),
        "stress.yaml",
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: StressChaos\nmetadata:\n  name: busy\n  namespace: kafka\nspec:\n  \
         mode: one\n  selector:\n    labelSelectors: {app: heuristics-miner-flink}\n  duration: 60s\n  stressors:\n    \
         cpu: {workers: 3, load: 100}\n    memory: {workers: 2, size: 8MB}\n",
    );
    let o = run(flow(), &[file], 2, Duration::from_secs(60), 3 * MIN, &dir.path().join("out"));
    let kinds: Vec<&str> = o.faults.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["cpu-stress", "memory-stress"]);
    assert_eq!(o.faults[1].parameters["megabytes"], 16);
    let before = max_in(&o.lag, 30, 60);
    let during = max_in(&o.lag, 100, 121);
    let after = o.lag.iter().filter(|(s, _)| *s >= 170).map(|(_, v)| *v).fold(f64::MAX, f64::min);
    assert!(during > before + 5_000.0, "the lag grows under stress: before {before}, during {during}");
    assert!(after < during / 2.0, "and falls once the stress ends: during {during}, after {after}");
}

#[test]
fn io_mistakes_write_wrong_bytes_into_hadoop() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "mistake.yaml",
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: IOChaos\nmetadata:\n  name: bad-bytes\n  namespace: iot\nspec:\n  \
         action: mistake\n  mode: one\n  selector:\n    labelSelectors: {app: hadoop}\n  volumePath: /hdfs\n  \
         mistake: {filling: zero, maxOccurrences: 1, maxLength: 3}\n  duration: 20s\n",
    );
    let mut flow = common::iot_only(chaoslab::catalog::reference_flow().unwrap());
    flow.configure::<chaoslab::sources::sensor_replay::SensorReplayConfig>(|s| s.rate_ms = 500);
    let mut problems = Problems::new();
    let loaded = load_files(&[file], Some(&pods_of_flow(&flow)), &mut problems);
    assert!(!problems.has_errors(), "{problems:?}");
    let out = dir.path().join("out");
    Run::new(flow)
        .out(&out)
        .seed(4)
        .sim_with(move |p| async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            p.mesh.create(&p, &loaded[0]).unwrap();
            tokio::time::sleep(Duration::from_secs(40)).await;
            Ok(())
        })
        .unwrap();
    // Files written while the mistake was in force hold zero bytes; the others are JSON.
    let mut bad = 0;
    let mut good = 0;
    chaoslab::sinks::file_store::read::walk(&out.join("hdfs/nifi"), &mut |_, bytes| {
        let bytes = bytes.unwrap();
        if bytes.contains(&0) {
            assert!(serde_json::from_slice::<serde_json::Value>(bytes).is_err());
            bad += 1;
        } else {
            serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
            good += 1;
        }
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert!(bad >= 30 && good >= 60, "{bad} mangled, {good} intact");
}

#[test]
fn a_schedule_can_create_whole_workflows() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "wf.yaml",
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: Schedule\nmetadata:\n  name: nightly\n  namespace: kafka\nspec:\n  \
         schedule: '@every 30s'\n  type: Workflow\n  historyLimit: 2\n  workflow:\n    entry: fail-then-wait\n    \
         templates:\n      - {name: fail-then-wait, templateType: Serial, children: [fail, wait]}\n      \
         - {name: fail, templateType: PodChaos, deadline: 5s, podChaos: {action: pod-failure, mode: one, selector: \
         {labelSelectors: {app: heuristics-miner-flink}}}}\n      - {name: wait, templateType: Suspend, deadline: 5s}\n",
    );
    let o = run(flow(), &[file], 1, Duration::ZERO, 100 * Duration::from_secs(1), &dir.path().join("out"));
    let spawned: Vec<(u64, String)> = reasons(&o.events, "ScheduleSpawn")
        .iter()
        .map(|e| (e.elapsed_ms / 1000, e.targets[0].clone()))
        .collect();
    assert_eq!(
        spawned,
        [(30, "kafka/nightly-1".to_string()), (60, "kafka/nightly-2".into()), (90, "kafka/nightly-3".into())]
    );
    let done: Vec<(u64, &str)> = reasons(&o.events, "WorkflowAccomplished")
        .iter()
        .map(|e| (e.elapsed_ms / 1000, e.object.as_str()))
        .collect();
    assert_eq!(done, [(40, "kafka/nightly-1"), (70, "kafka/nightly-2")], "the third ends after the run");
    let failures: Vec<&str> = o.faults.iter().filter_map(|f| f.origin.as_deref()).collect();
    assert_eq!(
        failures,
        ["PodChaos kafka/nightly-1-fail", "PodChaos kafka/nightly-2-fail", "PodChaos kafka/nightly-3-fail"]
    );
    // historyLimit 2: the first workflow is forgotten once the third exists.
    let kept: Vec<&str> =
        o.objects.iter().filter(|s| s.kind == "Workflow").map(|s| s.name.as_str()).collect();
    assert_eq!(kept, ["nightly-2", "nightly-3"]);
}
