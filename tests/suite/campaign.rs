//! Campaigns: a grid over Chaos Mesh files, seeds, captured series in the wizard's format, the wizard's
//! detector checked against the ground truth, resuming, and every problem of a bad file at once.

use std::path::{Path, PathBuf};
use std::process::Command;

fn chaoslab() -> Command {
    crate::common::chaoslab()
}

fn flows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("flows")
}

/// The shipped study's files with a short timeline (1-minute offset, one run) and two latencies.
fn small_campaign(dir: &Path) -> PathBuf {
    let hmlc = flows().join("campaigns/hmlc");
    let text = format!(
        "name = \"small\"\nflow = \"{flow}\"\n[chaos]\nmesh = [\"{pod}\", \"{delay}\"]\n[grid]\nlatency = \
         \"0ms..300ms/300ms\"\n[runs]\nseeds = [5]\nnumber = 1\noffset = \"1m\"\nwarmup = \"10s\"\n\
         [[capture]]\nname = \"Lag_Input_Topic\"\nquery = \"sum(Lag_Input_Topic)\"\ninterval = \"2s\"\n\
         [analysis]\nmetric = \"Lag_Input_Topic\"\nprominence = 1000\n\
         [[probe]]\nname = \"always\"\nquery = \"sum(Lag_Input_Topic)\"\ncriteria = \">=\"\nvalue = 0\nweight = 3\n\
         [[probe]]\nname = \"never\"\nquery = \"sum(Lag_Input_Topic)\"\ncriteria = \"<\"\nvalue = 0\nmode = \"eot\"\n",
        flow = hmlc.join("process-mining.toml").display(),
        pod = hmlc.join("pod-failure.yaml").display(),
        delay = hmlc.join("delay.yaml").display(),
    );
    let path = dir.join("small.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(file: &Path, out: &Path, jobs: &str) -> String {
    let o = chaoslab()
        .args(["campaign", "run"])
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(["-j", jobs])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    stdout
}

#[test]
fn a_campaign_captures_the_wizards_csvs_finds_every_fault_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let file = small_campaign(dir.path());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let stdout = run(&file, &a, "2");
    assert!(stdout.contains("campaign small: 2 runs, 0 failed"), "{stdout}");
    // The wizard's CSV, one per run, named <campaign>_<point>_<seed>.
    let csv = std::fs::read_to_string(a.join("runs/small_0ms_5.csv")).unwrap();
    assert!(csv.starts_with("Metric,Time,Value\nLag_Input_Topic,"), "{}", &csv[..80.min(csv.len())]);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("summary.json")).unwrap()).unwrap();
    // Every pod failure is followed by an event and every event follows a failure.
    assert_eq!(
        (summary["precision"].as_f64(), summary["recall"].as_f64()),
        (Some(1.0), Some(1.0)),
        "{summary}"
    );
    assert!(summary["recovery"]["n"].as_u64() >= Some(2), "{summary}");
    // Litmus's score: the probe that always holds carries 3 of the 4 weight units.
    assert_eq!(summary["resilience"]["mean"].as_f64(), Some(75.0), "{summary}");
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("runs/small_300ms_5.truth.json")).unwrap()).unwrap();
    let kinds: Vec<&str> = truth.as_array().unwrap().iter().filter_map(|w| w["kind"].as_str()).collect();
    assert!(kinds.contains(&"process-failure") && kinds.contains(&"network-delay"), "{kinds:?}");
    // The report: tables, the command to reproduce it, and the plots (PNG and SVG).
    let md = std::fs::read_to_string(a.join("report.md")).unwrap();
    assert!(md.contains("| 300ms | 1 | 0 |") && md.contains("chaoslab campaign run"), "{md}");
    assert!(md.contains("From each fault's start (the ground truth)"), "{md}");
    let html = std::fs::read_to_string(a.join("report.html")).unwrap();
    assert!(html.contains("<table>") && !html.contains("<script"), "{html}");
    if chaoslab::campaign::plot::font().is_ok() {
        for f in [
            "recovery.png",
            "recovery.svg",
            "distribution.png",
            "runs/small_0ms_5.png",
            "runs/small_0ms_5.svg",
        ] {
            assert!(a.join(f).is_file(), "{f}");
        }
        assert!(md.contains("![recovery against latency](recovery.png)"), "{md}");
    }
    // The same runs one at a time write the same bytes.
    run(&file, &b, "1");
    for name in ["small_0ms_5.csv", "small_300ms_5.csv", "small_300ms_5.json"] {
        assert_eq!(
            std::fs::read(a.join("runs").join(name)).unwrap(),
            std::fs::read(b.join("runs").join(name)).unwrap(),
            "{name}"
        );
    }
    // Run again: finished runs are kept; a run whose result is gone is done again.
    std::fs::remove_file(a.join("runs/small_300ms_5.json")).unwrap();
    let again = chaoslab().args(["campaign", "run"]).arg(&file).arg("--out").arg(&a).output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("1 of 2 runs are done already"), "{stderr}");
    assert_eq!(
        std::fs::read(a.join("runs/small_300ms_5.json")).unwrap(),
        std::fs::read(b.join("runs/small_300ms_5.json")).unwrap()
    );
    // The report is rebuilt from what is kept.
    let report = chaoslab().args(["campaign", "report"]).arg(&a).output().unwrap();
    assert!(String::from_utf8_lossy(&report.stdout).contains("campaign small: 2 runs, 0 failed"));
}

#[test]
fn a_bad_campaign_file_lists_every_problem_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "name = \"bad name\"\nflow = \"nowhere.toml\"\n[chaos]\nmesh = [\"missing.yaml\"]\n[grid]\nlatency = \
         \"9ms..1ms/1ms\"\n[runs]\nseeds = \"x\"\noffset = \"0s\"\n[[capture]]\nname = \"Lag\"\nquery = \
         \"sum(\"\n[analysis]\nmetric = \"Other\"\nbogus = 1\n",
    )
    .unwrap();
    let out = chaoslab()
        .args(["campaign", "run"])
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:15:analysis.bogus: unknown key"), "{stderr}");
    assert!(!dir.path().join("o").exists(), "nothing written");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("bogus = 1\n", "")).unwrap();
    let out = chaoslab()
        .args(["campaign", "run"])
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "bad.toml:1:name: \"bad name\"",
        "bad.toml:2:flow:",
        "bad.toml:4:chaos.mesh[0]:",
        "bad.toml:6:grid.latency: \"9ms..1ms/1ms\"",
        "bad.toml:8:runs.seeds: \"x\" is not a range",
        "bad.toml:9:runs.offset: at least 1s",
        "bad.toml:12:capture[0].query: \"sum(\" does not parse",
        "bad.toml:14:analysis.metric: \"Other\" is not captured",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn analyse_finds_the_studys_events_in_its_captured_run() {
    let Some(shared) = crate::common::shared_dir() else { return };
    let csv = shared.join("reference/chaosmeshwizard/runs/single_100_2024-12-19_13-47-23.csv");
    let out = chaoslab().args(["campaign", "analyse"]).arg(&csv).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("441 samples, 4 events"), "{stdout}");
    assert!(stdout.contains("mean recovery time 65.809 s"), "{stdout}");
    // A malformed CSV names its line.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "Metric,Time,Value\nLag_Input_Topic,1,2\nLag_Input_Topic,2,oops\n").unwrap();
    let out = chaoslab().args(["campaign", "analyse"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.csv:3: Value \"oops\" is not a number"));
}

/// Chaos Toolkit experiments as a campaign's chaos: run natively from the chaos's start, the point's values as
/// configuration overrides (`--var`), their journals kept, their faults in the ground truth.
#[test]
fn a_campaign_runs_chaos_toolkit_experiments_with_the_point_as_vars() {
    let dir = tempfile::tempdir().unwrap();
    let experiment = dir.path().join("kill.yaml");
    std::fs::write(
        &experiment,
        "title: kill the miner\ndescription: one crash of the component the grid names\n\
         configuration: {victim: NOBODY}\nmethod:\n  - type: action\n    name: kill\n    provider: {type: python, \
         module: chaoslab.actions, func: apply_fault, arguments: {kind: process-kill, target: '${victim}'}}\n",
    )
    .unwrap();
    let flow = flows().join("campaigns/hmlc/process-mining.toml");
    let file = dir.path().join("ctk.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"ctk\"\nflow = \"{}\"\n[chaos]\nexperiments = [\"kill.yaml\"]\n[grid]\nvictim = \
             [\"HEURISTICS-MINER\"]\n[runs]\nseeds = [1]\nnumber = 1\noffset = \"1m\"\nwarmup = \"20s\"\n\
             [[capture]]\nname = \"Lag_Input_Topic\"\nquery = \"sum(Lag_Input_Topic)\"\n[analysis]\n\
             metric = \"Lag_Input_Topic\"\nprominence = 1000\n",
            flow.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let stdout = run(&file, &out, "1");
    assert!(stdout.contains("campaign ctk: 1 runs, 0 failed"), "{stdout}");
    let journal: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("runs/ctk_HEURISTICS-MINER_1/journal-0.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(journal["status"], "completed", "{journal}");
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("runs/ctk_HEURISTICS-MINER_1.truth.json")).unwrap())
            .unwrap();
    let kinds: Vec<&str> = truth.as_array().unwrap().iter().filter_map(|w| w["kind"].as_str()).collect();
    assert_eq!(kinds, ["process-kill"], "the overridden target was killed: {truth}");
}

/// A fault schedule (`[[chaos.schedule]]`) as a campaign's chaos: repeated faults with the grid's values
/// in, every one in the ground truth; a fault the metric never shows makes the run deviate, and the report
/// lists it apart.
#[test]
fn a_fault_schedule_is_a_campaigns_chaos_and_deviating_runs_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let flow = flows().join("campaigns/hmlc/process-mining.toml");
    let file = dir.path().join("schedule.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"sched\"\nflow = \"{}\"\n[grid]\nlatency = [\"0ms\", \"300ms\"]\n[runs]\nseeds = [2]\n\
             number = 2\noffset = \"1m\"\nwarmup = \"20s\"\n\
             [[chaos.schedule]]\nevery = \"2m\"\nkind = \"process-failure\"\ntarget = \"HEURISTICS-MINER\"\n\
             duration = \"30s\"\n\
             [[chaos.schedule]]\nkind = \"network-delay\"\ntarget = \"*->HEURISTICS-MINER\"\n\
             parameters = {{ latency = \"${{latency}}\" }}\n\
             [[chaos.schedule]]\nat = \"210s\"\nkind = \"clock-offset\"\ntarget = \"CONFORMANCE\"\n\
             duration = \"5s\"\nparameters = {{ offset = \"-5m\" }}\n\
             [[capture]]\nname = \"Lag_Input_Topic\"\nquery = \"sum(Lag_Input_Topic)\"\n[analysis]\n\
             metric = \"Lag_Input_Topic\"\nprominence = 1000\n",
            flow.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let stdout = run(&file, &out, "2");
    assert!(stdout.contains("campaign sched: 2 runs, 0 failed, 2 deviating"), "{stdout}");
    for point in ["0ms", "300ms"] {
        let truth: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(format!("runs/sched_{point}_2.truth.json"))).unwrap(),
        )
        .unwrap();
        let windows = truth.as_array().unwrap();
        let failures: Vec<f64> = windows
            .iter()
            .filter(|w| w["kind"] == "process-failure")
            .map(|w| w["end"].as_f64().unwrap() - w["start"].as_f64().unwrap())
            .collect();
        // At the chaos's start and every two minutes until the capture ends (4 offsets), 30 s each.
        assert_eq!(failures, [30.0, 30.0], "{truth}");
        assert_eq!(windows.iter().filter(|w| w["kind"] == "network-delay").count(), 1, "{truth}");
        assert_eq!(windows.iter().filter(|w| w["kind"] == "clock-offset").count(), 1, "{truth}");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let deviating = summary["deviating"].as_array().unwrap();
    assert_eq!(deviating.len(), 2, "{summary}");
    assert!(deviating[0].to_string().contains("1 of 3 faults are followed by no event"), "{summary}");
    // Every failure of the miner was found: only the clock offset, which the lag cannot show, was not.
    assert!((summary["recall"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9, "{summary}");
    assert_eq!(summary["precision"].as_f64(), Some(1.0), "{summary}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Runs that deviate") && md.contains("- sched_300ms_2: 1 of 3 faults"), "{md}");
    assert!(md.contains("deviates: 1 of 3 faults"), "{md}");
}

/// The study's flow running live on a free port: its handle, address and control token.
async fn live_study_flow(dir: &Path) -> (chaoslab::runner::LiveHandle, std::net::SocketAddr, String) {
    let flow = chaoslab::catalog::load_flow(&flows().join("campaigns/hmlc/process-mining.toml")).unwrap();
    let run = chaoslab::runner::Run::new(flow)
        .out(dir.join("live"))
        .seed(1)
        .http_listen(([127, 0, 0, 1], 0).into());
    let h = tokio::time::timeout(crate::common::http::WAIT, run.live())
        .await
        .expect("live run did not start")
        .unwrap();
    let (addr, token) = (h.http_addr, h.control_token.clone().unwrap());
    (h, addr, token)
}

/// Runs `campaign run FILE --out OUT --target URL --token T [--prometheus P]` off the test's runtime.
async fn live_campaign(
    file: &Path,
    out: &Path,
    target: &str,
    token: &str,
    prometheus: Option<&str>,
) -> std::process::Output {
    let mut args: Vec<String> = vec!["campaign".into(), "run".into(), file.display().to_string()];
    args.extend(["--out".into(), out.display().to_string(), "--target".into(), target.into()]);
    args.extend(["--token".into(), token.into()]);
    if let Some(p) = prometheus {
        args.extend(["--prometheus".into(), p.into()]);
    }
    tokio::task::spawn_blocking(move || chaoslab().args(&args).output().unwrap()).await.unwrap()
}

/// `campaign run --target URL`: the same campaign against a live instance in real time — the chaos
/// posted to its Chaos Mesh API and control plane and removed after the run, the series read from its
/// Prometheus-compatible `/api/v1/query`, the ground truth from its fault list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_runs_against_a_live_instance_in_real_time() {
    use crate::common::http::{WAIT, eventually, request, request_with};
    let dir = tempfile::tempdir().unwrap();
    let flow_file = flows().join("campaigns/hmlc/process-mining.toml");
    let (h, addr, token) = live_study_flow(dir.path()).await;

    // Prometheus's instant-query API, in its format (once the consumer lag is reported).
    let q = eventually("the lag is reported", async || {
        let q =
            request(addr, "GET", "/api/v1/query?query=sum(Lag_Input_Topic)%20%3E%3D%200", None).await.json();
        q["data"]["result"].as_array().is_some_and(|r| !r.is_empty()).then_some(q)
    })
    .await;
    assert_eq!(
        (q["status"].as_str(), q["data"]["resultType"].as_str()),
        (Some("success"), Some("vector")),
        "{q}"
    );
    assert!(q["data"]["result"][0]["value"][1].as_str().unwrap().parse::<f64>().is_ok(), "{q}");
    let bad = request(addr, "GET", "/api/v1/query?query=sum(", None).await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.json()["errorType"], "execution");
    let missing =
        request(addr, "POST", "/api/v1/query", Some(("application/x-www-form-urlencoded", b"q=1"))).await;
    assert_eq!(
        (missing.status, missing.json()["errorType"].as_str()),
        (400, Some("bad_data")),
        "{}",
        missing.body
    );

    let hmlc = flows().join("campaigns/hmlc");
    let file = dir.path().join("live.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"live\"\nflow = \"{flow}\"\n[chaos]\nmesh = [\"{delay}\"]\n[grid]\nlatency = [\"50ms\"]\n\
             [runs]\nseeds = [1]\nnumber = 1\noffset = \"2s\"\nwarmup = \"1s\"\n\
             [[chaos.schedule]]\nkind = \"process-failure\"\ntarget = \"HEURISTICS-MINER\"\nduration = \"2s\"\n\
             [[capture]]\nname = \"Lag_Input_Topic\"\nquery = \"sum(Lag_Input_Topic)\"\ninterval = \"500ms\"\n\
             [analysis]\nmetric = \"Lag_Input_Topic\"\nprominence = 1\n",
            flow = flow_file.display(),
            delay = hmlc.join("delay.yaml").display(),
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let started = std::time::Instant::now();
    let o = live_campaign(&file, &out, &format!("http://{addr}"), &token, None).await;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("campaign live: 1 runs, 0 failed"), "{stdout}");
    assert!(stdout.contains(&format!("against http://{addr}")), "{stdout}");
    // Real time: the warm-up and three offsets.
    assert!(elapsed >= std::time::Duration::from_secs(7), "{elapsed:?}");
    let csv = std::fs::read_to_string(out.join("runs/live_50ms_1.csv")).unwrap();
    let samples = csv.lines().filter(|l| l.starts_with("Lag_Input_Topic,")).count();
    assert!((10..=16).contains(&samples), "{samples} samples every 500 ms over 7 s:\n{csv}");
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("runs/live_50ms_1.truth.json")).unwrap()).unwrap();
    let mut kinds: Vec<&str> = truth.as_array().unwrap().iter().filter_map(|w| w["kind"].as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["network-delay", "process-failure"], "{truth}");
    // The chaos is gone from the instance after the run: no object running, no fault active.
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    let experiments = request_with(addr, "GET", "/api/experiments", &auth, None).await.json();
    assert!(experiments.as_array().unwrap().iter().all(|o| o["status"] != "running"), "{experiments}");
    let faults = request_with(addr, "GET", "/api/faults", &auth, None).await.json();
    assert_eq!(faults["active"].as_array().map(Vec::len), Some(0), "{faults}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains(&format!("the live instance at http://{addr} in real time")), "{md}");
    assert!(md.contains("of real time"), "{md}");
    tokio::time::timeout(WAIT, h.stop()).await.expect("stop in time").unwrap();
}

/// A real Prometheus, killed when dropped.
struct Prometheus(std::process::Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The wizard's setup: the campaign's series read from a real Prometheus (`--prometheus`) that scrapes the
/// live instance, the chaos sent to the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_campaign_reads_its_series_from_a_real_prometheus() {
    use crate::common::http::{WAIT, eventually, request};
    let Some(program) = crate::common::find_on_path("prometheus") else {
        crate::common::skip(
            "a_live_campaign_reads_its_series_from_a_real_prometheus",
            "prometheus is not on PATH",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let flow_file = flows().join("campaigns/hmlc/process-mining.toml");
    let (h, addr, token) = live_study_flow(dir.path()).await;
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: chaoslab-live\n    static_configs:\n      \
             - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let prom_addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let _prometheus = Prometheus(
        std::process::Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually("Prometheus scrapes the instance", async || {
        tokio::net::TcpStream::connect(prom_addr).await.ok()?;
        let q = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            request(prom_addr, "GET", "/api/v1/query?query=sum(Lag_Input_Topic)", None),
        )
        .await
        .ok()?;
        (q.status == 200 && q.json()["data"]["result"].as_array().is_some_and(|r| !r.is_empty()))
            .then_some(())
    })
    .await;
    let file = dir.path().join("prom.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"prom\"\nflow = \"{}\"\n[runs]\nseeds = [1]\nnumber = 1\noffset = \"2s\"\nwarmup = \"1s\"\n\
             [[chaos.schedule]]\nkind = \"process-failure\"\ntarget = \"HEURISTICS-MINER\"\nduration = \"2s\"\n\
             [[capture]]\nname = \"Lag_Input_Topic\"\nquery = \"sum(Lag_Input_Topic)\"\ninterval = \"1s\"\n\
             [[capture]]\nname = \"Up\"\nquery = \"sum(up{{job=\\\"chaoslab-live\\\"}})\"\ninterval = \"1s\"\n\
             [analysis]\nmetric = \"Lag_Input_Topic\"\nprominence = 1\n",
            flow_file.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o =
        live_campaign(&file, &out, &format!("http://{addr}"), &token, Some(&format!("http://{prom_addr}")))
            .await;
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("campaign prom: 1 runs, 0 failed"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("runs/prom_base_1.csv")).unwrap();
    // `up` exists only in Prometheus: the series came from it, every scrape of the instance succeeding.
    let up: Vec<&str> = csv.lines().filter(|l| l.starts_with("Up,")).collect();
    assert!(up.len() >= 6 && up.iter().all(|l| l.ends_with(",1")), "{csv}");
    assert!(csv.lines().filter(|l| l.starts_with("Lag_Input_Topic,")).count() >= 6, "{csv}");
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("runs/prom_base_1.truth.json")).unwrap()).unwrap();
    assert_eq!(truth[0]["kind"], "process-failure", "{truth}");
    tokio::time::timeout(WAIT, h.stop()).await.expect("stop in time").unwrap();
}

/// Ctrl-C during a live campaign removes the run's chaos from the instance before the command exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_live_campaign_leaves_no_chaos_behind() {
    use crate::common::http::{WAIT, eventually, request_with};
    let dir = tempfile::tempdir().unwrap();
    let flow_file = flows().join("campaigns/hmlc/process-mining.toml");
    let (h, addr, token) = live_study_flow(dir.path()).await;
    let file = dir.path().join("long.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"long\"\nflow = \"{flow}\"\n[chaos]\nmesh = [\"{delay}\"]\n[grid]\nlatency = [\"50ms\"]\n\
             [runs]\nseeds = [1]\nnumber = 5\noffset = \"1m\"\nwarmup = \"0s\"\n\
             [[chaos.schedule]]\nkind = \"process-failure\"\ntarget = \"HEURISTICS-MINER\"\nduration = \"5m\"\n\
             [[capture]]\nname = \"Lag_Input_Topic\"\nquery = \"sum(Lag_Input_Topic)\"\n\
             [analysis]\nmetric = \"Lag_Input_Topic\"\n",
            flow = flow_file.display(),
            delay = flows().join("campaigns/hmlc/delay.yaml").display(),
        ),
    )
    .unwrap();
    let child = crate::common::chaoslab_async()
        .args(["campaign", "run", file.to_str().unwrap(), "--out", dir.path().join("out").to_str().unwrap()])
        .args(["--target", &format!("http://{addr}"), "--token", &token])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    eventually("the delay and the failure to be applied", async || {
        (h.pipeline.faults.list().0.len() >= 2).then_some(())
    })
    .await;
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out =
        tokio::time::timeout(WAIT, child.wait_with_output()).await.expect("it stops on SIGINT").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("interrupted (Ctrl-C); the run's chaos was removed from the target"), "{stderr}");
    assert!(h.pipeline.faults.list().0.is_empty(), "{:?}", h.pipeline.faults.list().0);
    let bearer = format!("Bearer {token}");
    let experiments =
        request_with(addr, "GET", "/api/experiments", &[("Authorization", &bearer)], None).await.json();
    assert!(experiments.as_array().unwrap().iter().all(|o| o["status"] != "running"), "{experiments}");
    tokio::time::timeout(WAIT, h.stop()).await.expect("stop in time").unwrap();
}
