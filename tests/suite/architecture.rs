//! The component architecture from the outside: two components of one kind in one flow, a kind written
//! outside the crate and dispatched by a catalog of its own, the determinism check catching a component
//! that reads the wall clock, and swarm testing finding a seed that breaks an invariant.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chaoslab::catalog::{BUILTIN_FLOWS, KINDS, REFERENCE_FLOW, parse_flow};
use chaoslab::runner::Run;
use chaoslab::runner::determinism::Determinism;
use chaoslab::topology::BuildCx;
use chaoslab::topology::component::{ComponentKind, KindEntry};
use chaoslab::topology::flow::Flow;
use serde::Deserialize;

const MIN: Duration = Duration::from_secs(60);

/// The IoT path with a second sensor and a second count window of its own.
const TWO_OF_A_KIND: &str = r#"
[components.SENSOR-2]
kind = "sensor-replay"
dataset = "builtin:gnfuv-synth.csv"
broker = "MQTT_BROKER"
topic = "otherTopic"
rate_ms = 500

[components.FLINK-2]
kind = "count-window-average"
broker = "MQTT_BROKER"
topic = "otherTopic"
window = 5
output = "ELASTICSEARCH"
index = "flink-other"
"#;

fn metric(text: &str, series: &str) -> f64 {
    let line =
        text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn two_components_of_one_kind_keep_their_own_metrics_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let flow =
        common::iot_only(parse_flow(&format!("{REFERENCE_FLOW}{TWO_OF_A_KIND}"), "two.toml", None).unwrap());
    let metrics = Arc::new(std::sync::Mutex::new(String::new()));
    let seen = metrics.clone();
    let s = Run::new(flow)
        .out(dir.path())
        .seed(2)
        .sim_with(|p| async move {
            tokio::time::sleep(3 * MIN).await;
            *seen.lock().unwrap() = p.metrics.encode();
            Ok(())
        })
        .unwrap();
    let text = metrics.lock().unwrap().clone();
    let windows = |c: &str| metric(&text, &format!("flink_windows_emitted_total{{component=\"{c}\"}}"));
    assert!(windows("FLINK") > 0.0 && windows("FLINK-2") > 0.0, "{text}");
    // SENSOR-2 publishes twice as often and FLINK-2 closes windows of 5: about four times as many windows.
    assert!(windows("FLINK-2") > 3.0 * windows("FLINK"), "{} vs {}", windows("FLINK-2"), windows("FLINK"));
    assert_eq!(s.components["SENSOR-2"].records_in, 361, "one record every 500 ms for 3 minutes, from t=0");
    let docs = |index: &str| common::index_docs(dir.path(), index).len() as f64;
    assert_eq!(docs("flink-sensor-data"), windows("FLINK"));
    assert_eq!(docs("flink-other"), windows("FLINK-2"));
    for d in common::index_docs(dir.path(), "flink-other") {
        assert_eq!(d["numberOfMeasurements"], 5);
    }
}

/// A kind written outside the crate: each second it traces the wall clock, so no two runs agree.
#[derive(Clone, Debug, Deserialize)]
struct WallClockProbe {
    every_ms: u64,
}

impl ComponentKind for WallClockProbe {
    const KIND: &'static str = "wall-clock-probe";

    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let every = Duration::from_millis(self.every_ms);
        cx.add(name, move |ctx| async move {
            ctx.health.set_ready(true, "probing");
            while !ctx.sleep_or_stop(every).await {
                let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
                ctx.trace("probe.wall_clock", &serde_json::json!({"nanos": nanos.to_string()}));
            }
            Ok(())
        })
    }
}

fn with_probe(every_ms: u64) -> Flow {
    let mut kinds: Vec<KindEntry> = KINDS.to_vec();
    kinds.push(KindEntry::of::<WallClockProbe>());
    let text =
        format!("{REFERENCE_FLOW}\n[components.PROBE]\nkind = \"wall-clock-probe\"\nevery_ms = {every_ms}\n");
    common::iot_only(Flow::parse(&text, "probe.toml", None, &kinds.as_slice(), BUILTIN_FLOWS).unwrap())
}

#[test]
fn a_kind_from_outside_the_crate_is_one_catalog_entry_away() {
    let flow = with_probe(1000);
    assert_eq!(flow.kind_of("PROBE"), Some("wall-clock-probe"));
    // The crate's own catalog does not know it, and says which kinds it does know.
    let text = format!("{REFERENCE_FLOW}\n[components.PROBE]\nkind = \"wall-clock-probe\"\nevery_ms = 1\n");
    let err = parse_flow(&text, "probe.toml", None).unwrap_err().to_string();
    assert!(
        err.contains("components.PROBE.kind: unknown kind \"wall-clock-probe\"; one of sensor-replay"),
        "{err}"
    );
}

#[test]
fn the_determinism_check_finds_the_first_line_a_wall_clock_changes() {
    let dir = tempfile::tempdir().unwrap();
    let verdict = Run::new(with_probe(10_000)).out(dir.path()).seed(5).check_determinism(MIN).unwrap();
    let Determinism::Diverged(d) = &verdict else {
        panic!("a wall clock in the trace must be caught: {verdict}")
    };
    assert_eq!(d.component.as_deref(), Some("PROBE"));
    assert_eq!(d.time.as_deref(), Some("2020-02-21T21:00:10.000Z"), "the probe's first tick, 10 s in");
    let (first, second) = (d.first.as_deref().unwrap(), d.second.as_deref().unwrap());
    assert!(first.contains("probe.wall_clock") && second.contains("probe.wall_clock"));
    assert_ne!(first, second);
    let shown = verdict.to_string();
    assert!(shown.starts_with(&format!("NOT deterministic: trace line {} (seq ", d.line)), "{shown}");
    assert!(shown.contains(first) && shown.contains(second), "{shown}");

    let dir = tempfile::tempdir().unwrap();
    let verdict = Run::new(common::iot_only(chaoslab::catalog::reference_flow().unwrap()))
        .out(dir.path())
        .seed(5)
        .check_determinism(MIN)
        .unwrap();
    assert!(matches!(verdict, Determinism::Deterministic { .. }), "{verdict}");
    assert!(verdict.to_string().starts_with("deterministic: "));
}

#[test]
fn swarm_holds_on_the_reference_and_names_the_seed_that_breaks_an_invariant() {
    use chaoslab::runner::swarm;
    let d = 4 * MIN;
    let dir = tempfile::tempdir().unwrap();
    let base = Run::new(common::iot_only(chaoslab::catalog::reference_flow().unwrap()));
    let outcomes = swarm::run(&base, &[1, 2, 3], d, dir.path(), 2).unwrap();
    assert_eq!(outcomes.iter().map(|o| o.seed).collect::<Vec<_>>(), [1, 2, 3], "in seed order");
    for o in &outcomes {
        assert!(o.holds(), "seed {}: {:?} after {:?}", o.seed, o.problems, o.schedule);
        assert!(!dir.path().join(format!("seed-{}", o.seed)).exists(), "a seed that holds leaves nothing");
    }

    // FLINK never restarts here: the first seed whose schedule kills it must fail, and only there.
    let text = REFERENCE_FLOW.replace(
        "qos = 1                              # the Flink source",
        "restart = { mode = \"never\" }\nqos = 1 # the Flink source",
    );
    let flow = common::iot_only(parse_flow(&text, "never.toml", None).unwrap());
    let links: Vec<String> = flow.edges().into_iter().map(|(f, t)| format!("{f}->{t}")).collect();
    let comps: Vec<(String, String)> = flow
        .all_components()
        .into_iter()
        .map(|c| (c.clone(), flow.kind_of(&c).unwrap().to_string()))
        .collect();
    let kills_flink = |seed| {
        swarm::draw(seed, d, &links, &comps)
            .iter()
            .any(|p| p.request.kind == "process-kill" && p.request.target.as_deref() == Some("FLINK"))
    };
    let bad = (1..500).find(|s| kills_flink(*s)).expect("some seed kills FLINK");
    let good = (1..500).find(|s| !kills_flink(*s)).unwrap();
    let outcomes = swarm::run(&Run::new(flow), &[bad, good], d, dir.path(), 2).unwrap();
    assert!(!outcomes[0].holds(), "seed {bad} kills a component that never restarts");
    assert!(
        outcomes[0].problems.iter().any(|p| p.starts_with("FLINK is Crashed")),
        "{:?}",
        outcomes[0].problems
    );
    assert!(dir.path().join(format!("seed-{bad}")).is_dir(), "a failing seed keeps its outputs");
    assert!(outcomes[1].holds(), "seed {good}: {:?}", outcomes[1].problems);
}
