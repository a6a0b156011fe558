//! The command line as a user runs it: summaries, the shipped dataset, and clear errors on bad input.

use std::path::Path;
use std::process::Output;

fn chaoslab(args: &[&str]) -> Output {
    crate::common::chaoslab().args(args).output().expect("run chaoslab")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn sim_run_prints_a_summary_ending_with_the_digest_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let human = chaoslab(&["run", "--sim", "--seed", "7", "--for", "5m", "--out", o]);
    assert!(human.status.success(), "{}", text(&human.stderr));
    let stdout = text(&human.stdout);
    let last = stdout.trim_end().lines().last().unwrap();
    let digest = last.strip_prefix("trace-digest: ").expect("last line is the digest");
    assert_eq!(digest.len(), 64);
    assert!(stdout.contains("windows written: "), "{stdout}");
    assert!(stdout.contains("SPARK k-means: k=2"), "{stdout}");

    // --json: one object, same digest for the same seed (the directory is reused: it is ours).
    let json = chaoslab(&["run", "--sim", "--seed", "7", "--for", "5m", "--out", o, "--json"]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["trace"]["digest"], digest);
    assert_eq!(v["mode"], "sim");
    assert_eq!(v["simulated_secs"], 300.0);
    assert!(v["windows_written"].as_u64().unwrap() > 0);
    assert!(v["components"]["SENSOR"]["records_out"].as_u64().unwrap() >= 300);
    assert!(out.join("trace.jsonl").is_file());
    assert!(out.join("index/flink-sensor-data.jsonl").is_file());
    assert!(out.join("node-red/data.txt").is_file());
}

#[test]
fn the_shipped_dataset_is_what_the_documented_command_generates() {
    let o = chaoslab(&["dataset", "synth", "--seed", "2018"]);
    assert!(o.status.success());
    let shipped =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/gnfuv-synth.csv")).unwrap();
    assert!(
        o.stdout == shipped,
        "datasets/gnfuv-synth.csv differs from `chaoslab dataset synth --seed 2018`"
    );
}

#[test]
fn a_malformed_csv_row_names_file_line_and_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "device_id,humidity,temperature,time\nd1,21,40,2018-03-26 17:19:17.406089000\nd1,abc,40,2018-03-26 17:19:18.000000000\n").unwrap();
    let out = dir.path().join("out");
    let o = chaoslab(&[
        "run",
        "--sim",
        "--for",
        "1m",
        "--dataset",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("bad.csv:3"), "{err}");
    assert!(err.contains("humidity"), "{err}");
    assert!(err.contains("abc"), "{err}");
    assert!(!out.exists(), "nothing may be written for a bad dataset");

    let missing = chaoslab(&[
        "run",
        "--sim",
        "--for",
        "1m",
        "--dataset",
        "/nonexistent/x.csv",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("/nonexistent/x.csv"), "{}", text(&missing.stderr));
}

#[test]
fn a_bad_flow_names_the_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.toml");
    let good = chaoslab::catalog::REFERENCE_FLOW;
    std::fs::write(&flow, good.replace("rate_ms = 1000", "rate_ms = \"fast\"")).unwrap();
    let o = chaoslab(&["flow", "check", flow.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    let line = good.lines().position(|l| l.starts_with("rate_ms = 1000")).unwrap() + 1;
    assert!(err.contains(&format!("flow.toml:{line}:components.SENSOR.rate_ms: invalid type")), "{err}");

    std::fs::write(
        &flow,
        good.replace(
            "broker = \"MQTT_BROKER\"\ntopic = \"customTopic\"\nwindow",
            "broker = \"MQTT\"\ntopic = \"customTopic\"\nwindow",
        ),
    )
    .unwrap();
    let o = chaoslab(&[
        "run",
        "--sim",
        "--for",
        "1m",
        "--flow",
        flow.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("components.FLINK.broker: no component named \"MQTT\""),
        "{}",
        text(&o.stderr)
    );
    assert!(!dir.path().join("o").exists());

    let ok = chaoslab(&[
        "flow",
        "check",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/reference.toml").to_str().unwrap(),
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("link MQTT_BROKER->FLINK"));
}

#[test]
fn a_foreign_non_empty_output_directory_is_refused_not_emptied() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
    let o = chaoslab(&["run", "--sim", "--for", "1m", "--out", dir.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("not written by chaoslab"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(dir.path().join("precious.txt")).unwrap(), "keep me");
}

#[test]
fn sim_needs_a_duration() {
    let o = chaoslab(&["run", "--sim"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("--for"), "{}", text(&o.stderr));
}

#[test]
fn both_hdfs_layouts_store_the_same_files_and_hdfs_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = |layout: &str| {
        let out = dir.path().join(layout);
        let args = ["run", "--sim", "--seed", "3", "--for", "2m", "--no-orders", "--hdfs-layout", layout];
        let o = chaoslab(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
        assert!(o.status.success(), "{}", text(&o.stderr));
        out
    };
    let (segments, files) = (run("segments"), run("files"));
    let real = crate::common::tree(&files.join("hdfs/nifi"));
    assert!(real.len() > 100, "{}", real.len());
    assert!(real.iter().all(|(p, _)| p.ends_with(".json")), "one real file per record");
    let packed = crate::common::tree(&segments.join("hdfs/nifi"));
    assert!(
        packed.len() < 5,
        "a few segment files and the namespace: {:?}",
        packed.iter().map(|p| &p.0).collect::<Vec<_>>()
    );

    let export = dir.path().join("export");
    let e = chaoslab(&["hdfs", "export", segments.to_str().unwrap(), "--to", export.to_str().unwrap()]);
    assert!(e.status.success(), "{}", text(&e.stderr));
    assert_eq!(crate::common::tree(&export), real, "the same paths and bytes as the reference layout");

    let ls = chaoslab(&["hdfs", "ls", segments.to_str().unwrap()]);
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    let listed: Vec<(String, String)> = text(&ls.stdout)
        .lines()
        .map(|l| {
            let (size, path) = l.trim_start().split_once(' ').unwrap();
            (path.to_string(), size.to_string())
        })
        .collect();
    assert_eq!(listed.len(), real.len());
    assert!(text(&ls.stderr).contains(&format!("{} files", real.len())), "{}", text(&ls.stderr));
    let (path, bytes) = &real[7];
    assert!(listed.contains(&(path.clone(), bytes.len().to_string())), "{path} listed with its size");
    let cat = chaoslab(&["hdfs", "cat", segments.to_str().unwrap(), path]);
    assert!(cat.status.success(), "{}", text(&cat.stderr));
    assert_eq!(&cat.stdout, bytes);
    let missing = chaoslab(&["hdfs", "cat", segments.to_str().unwrap(), "2020-02-21/none.json"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("2020-02-21/none.json: no such file"),
        "{}",
        text(&missing.stderr)
    );
    let again = chaoslab(&["hdfs", "export", segments.to_str().unwrap(), "--to", export.to_str().unwrap()]);
    assert!(text(&again.stderr).contains("is not empty"), "{}", text(&again.stderr));
}

#[test]
fn kmeans_on_demand_over_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().to_str().unwrap();
    assert!(chaoslab(&["run", "--sim", "--seed", "1", "--for", "3m", "--out", o]).status.success());
    let k = chaoslab(&["kmeans", "--out", o, "--k", "2", "--seed", "1"]);
    assert!(k.status.success(), "{}", text(&k.stderr));
    let report: serde_json::Value = serde_json::from_slice(&k.stdout).unwrap();
    assert_eq!(report["result"]["k"], 2);
    // As many files as HADOOP stored: exported as real files and counted on disk.
    let export = dir.path().join("export");
    let e = chaoslab(&["hdfs", "export", o, "--to", export.to_str().unwrap()]);
    assert!(e.status.success(), "{}", text(&e.stderr));
    let stored = crate::common::tree(&export).len();
    assert!(stored > 100, "a 3-minute run stores a record a second: {stored}");
    assert_eq!(report["files"], stored);
    let again = chaoslab(&["kmeans", "--out", o, "--k", "2", "--seed", "1"]);
    let report2: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["result"]["centres"], report2["result"]["centres"], "deterministic for the seed");
    let empty = tempfile::tempdir().unwrap();
    let none = chaoslab(&["kmeans", "--out", empty.path().to_str().unwrap()]);
    assert!(!none.status.success());
    assert!(text(&none.stderr).contains("k-means needs at least 2"), "{}", text(&none.stderr));
}

#[test]
fn the_benchmarks_run_and_print_their_figures() {
    let pipeline = chaoslab(&["bench", "pipeline", "--records", "2000", "--messages", "200"]);
    assert!(pipeline.status.success(), "{}", text(&pipeline.stderr));
    let out = text(&pipeline.stdout);
    for figure in ["live start-up:", "sim compression:", "sim throughput:", "live MQTT:", "peak RSS"] {
        assert!(out.contains(figure), "missing {figure:?} in:\n{out}");
    }
    assert_eq!(out.matches("sim throughput:").count(), 2, "both trace levels");
    // The peer: another chaoslab serving only the order API, as a user would point --peer at the
    // reference's FastAPI.
    let peer_dir = tempfile::tempdir().unwrap();
    let flow = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/order_api/chaoslab-flow.toml");
    let mut peer = crate::common::chaoslab()
        .args(["run", "--flow", flow.to_str().unwrap(), "--http-listen", "127.0.0.1:0"])
        .args(["--mqtt-listen", "127.0.0.1:0", "--out", peer_dir.path().join("out").to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(peer.stdout.take().unwrap()));
    let url = lines
        .find_map(|l| Some(l.ok()?.split("HTTP at ").nth(1)?.split([' ', ',']).next()?.to_owned()))
        .expect("the peer prints its HTTP address");
    let orders = chaoslab(&[
        "bench",
        "orders",
        "--requests",
        "40",
        "--concurrency",
        "2",
        "--sim-orders",
        "10",
        "--peer",
        &url,
    ]);
    let _ = peer.kill();
    let _ = peer.wait();
    assert!(orders.status.success(), "{}", text(&orders.stderr));
    let out = text(&orders.stdout);
    assert!(out.contains("live API:          40 POST /orders/"), "{out}");
    // The order API's memory is printed beside its speed.
    let rss =
        out.split("peak RSS ").nth(1).and_then(|r| r.split(" MB").next()).and_then(|n| n.parse::<f64>().ok());
    assert!(rss.is_some_and(|mb| mb > 1.0), "{out}");
    assert!(out.contains(&format!("peer API:          40 POST /orders/ to {url}")), "{out}");
    assert!(out.contains("chaoslab / peer:") && out.contains("p99 latency"), "{out}");
    assert!(out.contains("sim end to end:    50 orders"), "{out}");
    let mining = chaoslab(&["bench", "mining", "--events", "20000", "--sim-for", "3s"]);
    assert!(mining.status.success(), "{}", text(&mining.stderr));
    let out = text(&mining.stdout);
    for figure in ["miner alone:       20000 events", "pybeamline:", "tables at ε 0.0001", "sim path:"] {
        assert!(out.contains(figure), "missing {figure:?} in:\n{out}");
    }
    let store = chaoslab(&["bench", "store", "--records", "2000", "--files-records", "200"]);
    assert!(store.status.success(), "{}", text(&store.stderr));
    let out = text(&store.stdout);
    for figure in ["HADOOP segments:   2000 records", "HADOOP files:      200 records", "SPARK over segments"]
    {
        assert!(out.contains(figure), "missing {figure:?} in:\n{out}");
    }
    let mqtt = chaoslab(&["bench", "mqtt", "--messages", "3000", "--publishers", "2"]);
    assert!(mqtt.status.success(), "{}", text(&mqtt.stderr));
    let out = text(&mqtt.stdout);
    // At least once: QoS 1 delivers every message, through each broker measured.
    assert!(out.contains("chaoslab:          QoS 1: 3000/3000 delivered"), "{out}");
    assert!(out.contains("chaoslab:          QoS 0: "), "{out}");
    assert!(out.contains("chaoslab:          peak RSS"), "{out}");
    // The broker's own count of what it skipped makes what was sent add up, at either QoS.
    for line in out.lines().filter(|l| l.starts_with("chaoslab:          QoS")) {
        assert!(line.contains("skipped for the subscriber (every message accounted for)"), "{out}");
    }
    if out.contains("mosquitto:         not measured") {
        crate::common::skip(
            "the_benchmarks_run_and_print_their_figures",
            "no mosquitto for bench mqtt's peer",
        );
    } else {
        // Mosquitto runs with its defaults, as users run it: its 1 000-message queue per client may drop
        // QoS 1 messages that fast publishers send, so only that it delivered is checked.
        let peer =
            out.lines().find(|l| l.starts_with("mosquitto ") && l.contains("QoS 1:")).unwrap_or_default();
        let delivered: u64 = peer
            .split("QoS 1: ")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        assert!(delivered > 0 && peer.contains("/3000 delivered"), "{out}");
        for figure in [
            "chaoslab / mosquitto, QoS 0: throughput",
            "chaoslab / mosquitto, QoS 1: throughput",
            "chaoslab / mosquitto, peak RSS",
        ] {
            assert!(out.contains(figure), "missing {figure:?} in:\n{out}");
        }
    }
    let soak = chaoslab(&["bench", "soak", "--for", "3s", "--every", "1s", "--no-orders"]);
    assert!(soak.status.success(), "{}", text(&soak.stderr));
    let out = text(&soak.stdout);
    // Three samples, each with a resident set, the counts of a pipeline that moved records, and the
    // output it wrote meanwhile.
    let rows: Vec<Vec<f64>> = out
        .lines()
        .filter_map(|l| l.split_whitespace().map(|w| w.parse().ok()).collect::<Option<Vec<f64>>>())
        .filter(|r| r.len() == 6)
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows.iter().all(|r| r[1] > 1.0), "{out}");
    assert!(rows[2][2] > 0.0 && rows[2][3] > 0.0, "nothing published and stored:\n{out}");
    assert!(rows[0][5] > 0.0 && rows[2][5] > rows[0][5], "the output grows as records are stored:\n{out}");
    assert!(out.contains("records stored;"), "{out}");
}

#[test]
fn check_determinism_prints_the_digest_and_flow_check_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = chaoslab(&[
        "run",
        "--sim",
        "--seed",
        "3",
        "--for",
        "2m",
        "--check-determinism",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    let digest =
        stdout.trim().strip_prefix("deterministic: ").expect("one verdict line").split(' ').next().unwrap();
    assert_eq!(digest.len(), 64, "{stdout}");
    assert!(out.join("run-1/trace.jsonl").is_file() && out.join("run-2/trace.jsonl").is_file());
    let once = chaoslab(&[
        "run",
        "--sim",
        "--seed",
        "3",
        "--for",
        "2m",
        "--json",
        "--out",
        dir.path().join("once").to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&once.stdout).unwrap();
    assert_eq!(v["trace"]["digest"], digest, "a plain run of the same seed writes the same trace");

    // Five mistakes, five lines, exit 1, nothing written.
    let good = chaoslab::catalog::REFERENCE_FLOW;
    let bad = good
        .replace("window = 10", "window = 0")
        .replace("k = 2", "k = \"two\"")
        .replace("every = \"5m\"", "every = \"5m\"\nevry = 1")
        .replace("brokers = 3", "brokers = 0")
        .replace("api = \"POKE-ORDER-API\"\nusers", "api = \"NOPE\"\nusers");
    let flow = dir.path().join("bad.toml");
    std::fs::write(&flow, &bad).unwrap();
    let o = chaoslab(&["flow", "check", flow.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("bad.toml:")).collect();
    assert_eq!(lines.len(), 5, "{err}");
    for key in [
        "components.FLINK.window",
        "components.SPARK.k",
        "components.SPARK.evry",
        "components.KAFKA.brokers",
        "components.OCTILLERY.api",
    ] {
        assert!(lines.iter().any(|l| l.contains(&format!(":{key}"))), "{key} missing in {err}");
    }
    let written = dir.path().join("bad-out");
    let o = chaoslab(&[
        "run",
        "--sim",
        "--for",
        "1m",
        "--flow",
        flow.to_str().unwrap(),
        "--out",
        written.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(!written.exists(), "a bad flow writes nothing");
}

#[test]
fn swarm_prints_a_reproduce_line_per_failing_seed_and_a_tally() {
    let dir = tempfile::tempdir().unwrap();
    let o = chaoslab(&[
        "swarm",
        "--seeds",
        "1..2",
        "--for",
        "4m",
        "--no-orders",
        "--out",
        dir.path().join("s").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "2/2 seeds hold");

    // Every component of this flow stays down once killed: the seeds that kill one fail.
    let never = chaoslab::catalog::REFERENCE_FLOW
        .replace("[components.SENSOR]\n", "[components.SENSOR]\nrestart = { mode = \"never\" }\n")
        .replace("[components.FLINK]\n", "[components.FLINK]\nrestart = { mode = \"never\" }\n")
        .replace("[components.NIFI]\n", "[components.NIFI]\nrestart = { mode = \"never\" }\n")
        .replace("[components.SPARK]\n", "[components.SPARK]\nrestart = { mode = \"never\" }\n");
    let flow = dir.path().join("never.toml");
    std::fs::write(&flow, never).unwrap();
    let f = flow.to_str().unwrap();
    let o = chaoslab(&[
        "swarm",
        "--seeds",
        "1..12",
        "--for",
        "4m",
        "--no-orders",
        "--flow",
        f,
        "--out",
        dir.path().join("t").to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert!(!o.status.success(), "{stdout}");
    let tally = stdout.lines().last().unwrap();
    let held: usize =
        tally.strip_suffix("/12 seeds hold").expect("the tally ends the output").parse().unwrap();
    assert!(held < 12, "{stdout}");
    let reproduce: Vec<&str> = stdout.lines().filter(|l| l.trim_start().starts_with("reproduce: ")).collect();
    assert_eq!(reproduce.len(), 12 - held, "{stdout}");
    assert!(
        reproduce[0].contains("chaoslab swarm --seeds ") && reproduce[0].contains(&format!("--flow {f}")),
        "{stdout}"
    );
    assert!(stdout.contains("is Crashed after the quiet phase"), "{stdout}");
}

/// `script` runs a command on a pseudo-terminal (util-linux), so the progress bar has a terminal to draw on.
fn on_a_terminal(args: &str) -> Option<String> {
    let script = crate::common::find_on_path("script")?;
    let bin = env!("CARGO_BIN_EXE_chaoslab");
    let o = std::process::Command::new(script)
        .args(["-qec", &format!("{bin} {args}"), "/dev/null"])
        .env("CHAOSLAB_STORE", crate::common::test_store())
        .output()
        .expect("script runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn a_long_sim_run_shows_a_progress_bar_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let args = format!("run --sim --for 20m --no-orders --out {}", out.display());
    let Some(shown) = on_a_terminal(&args) else {
        crate::common::skip(
            "a_long_sim_run_shows_a_progress_bar_on_a_terminal_only",
            "no `script` (util-linux)",
        );
        return;
    };
    assert!(shown.contains("records/s") && shown.contains("of 20m"), "the bar: {shown}");
    let quiet = on_a_terminal(&format!("{args} --quiet")).unwrap();
    assert!(!quiet.contains("records/s"), "--quiet: {quiet}");
    // Piped, as here: no bar at all.
    let piped = chaoslab(&["run", "--sim", "--for", "20m", "--no-orders", "--out", out.to_str().unwrap()]);
    assert!(piped.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&piped.stdout), String::from_utf8_lossy(&piped.stderr));
    assert!(!all.contains("records/s"), "{all}");
}

#[test]
fn errors_name_the_place_without_echoing_what_they_should_not() {
    let dir = tempfile::tempdir().unwrap();
    // A 100 KB field makes a short error line, cut with an ellipsis.
    let csv = dir.path().join("big.csv");
    let huge = "x".repeat(100_000);
    std::fs::write(
        &csv,
        format!("device_id,humidity,temperature,time\nd,{huge},40,2018-03-26 17:19:17.406089000\n"),
    )
    .unwrap();
    let o = chaoslab(&["dataset", "check", csv.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("big.csv:2: field 'humidity'") && err.contains("xxx…"),
        "{}",
        crate::common::cut(&err)
    );
    assert!(err.lines().all(|l| l.len() < 400), "every line is short");

    // `extends` names a file that is not a flow: refused by name, its content never printed.
    std::fs::write(dir.path().join("secret.txt"), "root:TOPSECRET:0:0\n").unwrap();
    let flow = dir.path().join("f.toml");
    std::fs::write(&flow, "extends = \"secret.txt\"\n").unwrap();
    let o = chaoslab(&["flow", "check", flow.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("f.toml") && err.contains("\"secret.txt\" is not a flow file"), "{err}");
    assert!(!err.contains("TOPSECRET") && !err.contains("root"), "{err}");

    // Bytes that are not UTF-8 are named by line and column.
    std::fs::write(&flow, b"[pipeline]\nname = \"a\xff\"\n").unwrap();
    let o = chaoslab(&["flow", "check", flow.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert!(err.contains("f.toml:2") && err.contains("column 10: byte 0xff is not UTF-8"), "{err}");
}
