//! Sim-mode behaviour of the whole IoT path: determinism, faithful windows, link faults, supervision.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use chaoslab::runner::Run;
use chaoslab::sources::dataset::Dataset;
use chaoslab::transport::link::LinkFaults;

const MIN: Duration = Duration::from_secs(60);

#[test]
fn same_seed_gives_identical_trace_and_files_and_another_seed_does_not() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let run = |dir: &std::path::Path, seed| {
        Run::new(chaoslab::catalog::reference_flow().unwrap()).out(dir).seed(seed).sim(10 * MIN).unwrap()
    };
    let a = run(dirs[0].path(), 7);
    let b = run(dirs[1].path(), 7);
    let c = run(dirs[2].path(), 8);
    assert_eq!(a.trace.digest, b.trace.digest);
    assert_eq!(
        common::tree(dirs[0].path()),
        common::tree(dirs[1].path()),
        "output files differ for the same seed"
    );
    assert_ne!(a.trace.digest, c.trace.digest);
    let ids = |dir: &std::path::Path| -> Vec<String> {
        common::index_docs(dir, "flink-sensor-data")
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (ida, idc) = (ids(dirs[0].path()), ids(dirs[2].path()));
    assert!(!ida.is_empty());
    assert_eq!(ida.len(), idc.len(), "the seed changes ids, not the data");
    assert!(ida.iter().zip(&idc).all(|(x, y)| x != y), "another seed must give other window ids");
    // The tables add up: what FLUENTD routed out is what its links took.
    let fluentd = &a.components["FLUENTD"];
    assert!(fluentd.records_out > 0, "{fluentd:?}");
    assert_eq!(
        fluentd.records_out,
        a.links["FLUENTD->ELASTICSEARCH"].delivered + a.links["FLUENTD->KAFKA"].delivered
    );
    // OCTILLERY's plan outlasts the run: its orders are counted as they are placed, not at its end.
    let octillery = &a.components["OCTILLERY"];
    assert!(octillery.records_out > 0, "{octillery:?}");
    assert_eq!(octillery.records_out, a.links["OCTILLERY->POKE-ORDER-API"].delivered);
    // Every order placed was created by the API and produced to poke-orders.
    let api = &a.components["POKE-ORDER-API"];
    assert_eq!((api.records_in, api.records_out), (octillery.records_out, octillery.records_out));
    // The store counts the operations that reached it; each was answered or failed there.
    let db = &a.components["POKE-ORDERS-DB"];
    assert!(db.records_in >= api.records_in, "at least one write per order created: {db:?}");
    assert_eq!(db.records_in, db.records_out + db.records_dropped, "{db:?}");
    // The cluster counts what was produced to it (at most what its links delivered) and fetched from it.
    let kafka = &a.components["KAFKA"];
    let into_kafka: u64 =
        a.links.iter().filter(|(k, _)| k.ends_with("->KAFKA")).map(|(_, l)| l.delivered).sum();
    assert!(kafka.records_in >= api.records_out && kafka.records_in <= into_kafka, "{kafka:?}, {into_kafka}");
    assert!(kafka.records_out >= api.records_out, "every order was consumed at least once: {kafka:?}");
    // Each record has one leader when it is appended and when it is fetched: the brokers' rows add up to
    // the cluster's.
    let brokers: Vec<_> = (1..=3).map(|id| &a.components[&format!("KAFKA-{id}")]).collect();
    assert_eq!(brokers.iter().map(|b| b.records_in).sum::<u64>(), kafka.records_in, "{brokers:?}");
    assert_eq!(brokers.iter().map(|b| b.records_out).sum::<u64>(), kafka.records_out, "{brokers:?}");
    assert!(brokers.iter().filter(|b| b.records_in > 0).count() >= 2, "leaders are spread: {brokers:?}");
    // PROMETHEUS counts the samples it scraped.
    assert!(a.components["PROMETHEUS"].records_in > 0, "{:?}", a.components["PROMETHEUS"]);
    assert_eq!(a.simulated_secs, 600.0);
    // Sim time is virtual: the 10 minutes ran in far less wall time (not a benchmark, a sanity bound).
    assert!(a.wall_secs < 60.0);
}

/// What FLINK must produce for `published` rows of `ds` replayed in file order (looping): per device, the
/// valid rows in order, cut into windows of 10, averaged.
fn expected_windows(ds: &Dataset, published: usize) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut pending: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut windows: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for row in ds.rows.iter().cycle().take(published) {
        let (Some(h), Some(t)) = (row.humidity_value(), row.temperature_value()) else { continue };
        let open = pending.entry(row.device_id.clone()).or_default();
        open.push((h, t));
        if open.len() == 10 {
            let n = open.len() as f64;
            let mean = (open.iter().map(|x| x.0).sum::<f64>() / n, open.iter().map(|x| x.1).sum::<f64>() / n);
            windows.entry(row.device_id.clone()).or_default().push(mean);
            open.clear();
        }
    }
    windows
}

#[test]
fn gnfuv_windows_equal_the_means_of_the_csv() {
    let Some(pi2) = common::gnfuv_pi2("gnfuv_windows_equal_the_means_of_the_csv") else { return };
    let dir = tempfile::tempdir().unwrap();
    let summary = Run::new(chaoslab::catalog::reference_flow().unwrap())
        .out(dir.path())
        .seed(3)
        .dataset(pi2.clone())
        .sim(30 * MIN)
        .unwrap();
    let published = summary.components["SENSOR"].records_in as usize;
    assert_eq!(published, 1801, "one record a second for 30 minutes, the first at t=0");
    let ds = Dataset::load(&pi2).unwrap();
    let expected = expected_windows(&ds, published);

    let docs = common::index_docs(dir.path(), "flink-sensor-data");
    let mut got: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for d in &docs {
        assert_eq!(d["numberOfMeasurements"], 10);
        assert_eq!(d["measurementIds"].as_array().unwrap().len(), 10);
        let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "deviceId",
                "numberOfMeasurements",
                "averageHumidity",
                "averageTemperature",
                "measurementIds"
            ]
        );
        got.entry(d["deviceId"].as_str().unwrap().to_string())
            .or_default()
            .push((d["averageHumidity"].as_f64().unwrap(), d["averageTemperature"].as_f64().unwrap()));
    }
    assert_eq!(got, expected, "every window's averages must equal the means computed from the CSV");
    let first = &got["gnfuv-temp-exp1-55d487b85b-5g2xh"][0];
    assert_eq!(*first, (22.0, 39.5), "the reference's sample report");
    // 14 rows are " None": FLINK counts them and carries on.
    let flink = &summary.components["FLINK"];
    let none_published =
        ds.rows.iter().cycle().take(published).filter(|r| r.humidity_value().is_none()).count();
    assert_eq!(flink.records_dropped as usize, none_published);
    assert_eq!(flink.state, "stopped");
    let model = summary.kmeans["SPARK"].as_ref().expect("k-means ran at the end of the run");
    assert_eq!(model.k, 2);
    assert_eq!(model.points, published - none_published);
}

#[test]
fn loss_on_the_flink_link_is_accounted_for_and_seeded() {
    let run = |seed| {
        let dir = tempfile::tempdir().unwrap();
        let mut flow = chaoslab::catalog::reference_flow().unwrap();
        flow.links.insert("MQTT_BROKER->FLINK".into(), LinkFaults { loss: 0.10, ..Default::default() });
        let s = Run::new(flow).out(dir.path()).seed(seed).sim(20 * MIN).unwrap();
        (s, common::trace(dir.path()))
    };
    let (a, trace) = run(11);
    let link = &a.links["MQTT_BROKER->FLINK"];
    let published = a.components["SENSOR"].records_out;
    assert_eq!(link.sent, published, "every published record entered the link");
    assert_eq!(link.sent, link.delivered + link.dropped(), "published = delivered + dropped");
    assert_eq!(link.dropped(), link.dropped_loss);
    let rate = link.dropped_loss as f64 / link.sent as f64;
    assert!((0.06..0.14).contains(&rate), "loss rate {rate} far from 10%");
    let flink = &a.components["FLINK"];
    assert_eq!(flink.records_in, link.delivered);
    assert_eq!(flink.records_in, a.windows_written * 10 + a.open_window_records + flink.records_dropped);
    let drops = trace
        .iter()
        .filter(|e| e["kind"] == "link.dropped" && e["data"]["link"] == "MQTT_BROKER->FLINK")
        .count();
    assert_eq!(drops as u64, link.dropped_loss, "every drop is in the trace");
    // Other consumers are untouched.
    assert_eq!(a.links["MQTT_BROKER->NIFI"].dropped(), 0);

    let (b, _) = run(11);
    assert_eq!(a.trace.digest, b.trace.digest);
    assert_eq!(b.links["MQTT_BROKER->FLINK"].dropped_loss, link.dropped_loss);
    let (c, _) = run(12);
    assert_ne!(c.links["MQTT_BROKER->FLINK"], *link, "another seed drops other records");
}

#[test]
fn latency_on_a_link_delays_every_record_by_exactly_that_much() {
    let dir = tempfile::tempdir().unwrap();
    let mut flow = chaoslab::catalog::reference_flow().unwrap();
    flow.links.insert(
        "MQTT_BROKER->FLINK".into(),
        LinkFaults { latency: Duration::from_millis(2500), ..Default::default() },
    );
    Run::new(flow).out(dir.path()).seed(5).sim(2 * MIN).unwrap();
    let trace = common::trace(dir.path());
    let at = |e: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(e["t"].as_str().unwrap()).unwrap();
    let mut checked = 0;
    for e in trace.iter().filter(|e| e["component"] == "FLINK" && e["kind"] == "record.received") {
        let published = chrono::DateTime::parse_from_rfc3339(e["data"]["time"].as_str().unwrap()).unwrap();
        assert_eq!((at(e) - published).num_milliseconds(), 2500, "{e}");
        checked += 1;
    }
    assert!(checked > 100, "only {checked} records reached FLINK");
    // NIFI's link has no latency: its records arrive at their publish time.
    let nifi_first =
        trace.iter().find(|e| e["component"] == "NIFI" && e["kind"] == "record.received").unwrap();
    assert_eq!(nifi_first["t"], "2020-02-21T21:00:00.000Z");
}

#[test]
fn a_crashed_flink_is_restarted_and_the_pipeline_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let summary = Run::new(chaoslab::catalog::reference_flow().unwrap())
        .out(dir.path())
        .seed(9)
        .sim_with(|p| async move {
            tokio::time::sleep(5 * MIN + Duration::from_millis(500)).await;
            p.supervisor.crash("FLINK", "test crash").unwrap();
            tokio::time::sleep(5 * MIN).await;
            let metrics = p.metrics.encode();
            assert!(
                metrics.contains("chaoslab_component_restarts_total{component=\"FLINK\"} 1"),
                "{metrics}"
            );
            assert!(metrics.contains("chaoslab_component_up{component=\"FLINK\"} 1"));
            Ok(())
        })
        .unwrap();
    assert_eq!(summary.components["FLINK"].restarts, 1);
    let trace = common::trace(dir.path());
    let states: Vec<(String, u64)> = trace
        .iter()
        .filter(|e| e["component"] == "FLINK" && e["kind"] == "component.state")
        .map(|e| (e["data"]["to"].as_str().unwrap().to_string(), e["ms"].as_u64().unwrap()))
        .collect();
    let names: Vec<&str> = states.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["running", "crashed", "restarting", "running", "stopped"]);
    assert_eq!(states[1].1, 300_500, "crashed when told");
    assert_eq!(states[3].1 - states[1].1, 1_000, "restarted after the first back-off of 1 s");
    let windows_after = trace
        .iter()
        .filter(|e| e["kind"] == "window.emitted" && e["ms"].as_u64().unwrap() > states[3].1)
        .count();
    assert!(windows_after > 20, "FLINK kept producing after its restart ({windows_after} windows)");
    // While FLINK was down it had no MQTT session (clean session, QoS 1), so the broker had nobody to route
    // to: those records never reached its link. What was in its open windows was lost and counted.
    let link = &summary.links["MQTT_BROKER->FLINK"];
    let published = summary.components["SENSOR"].records_out;
    assert_eq!(published - link.sent, 1, "the record published during the 1 s back-off never reached FLINK");
    assert_eq!(link.sent, link.delivered + link.dropped());
    let lost: u64 = trace
        .iter()
        .filter(|e| e["kind"] == "window.state_lost")
        .map(|e| e["data"]["records"].as_u64().unwrap())
        .sum();
    assert!(lost > 0, "open windows were lost with the crash");
    let flink = &summary.components["FLINK"];
    assert_eq!(
        flink.records_in,
        (summary.windows_written * 10) + summary.open_window_records + flink.records_dropped + lost
    );
    // Other consumers never noticed.
    assert_eq!(summary.links["MQTT_BROKER->NIFI"].dropped(), 0);
    assert_eq!(summary.components["NIFI"].restarts, 0);
}

#[test]
fn scheduled_broker_outage_disconnects_consumers_and_loses_the_records_published_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[[schedule]]\nat = \"2m\"\naction = \"stop\"\ntarget = \"MQTT_BROKER\"\nfor = \"90s\"\n",
        chaoslab::catalog::REFERENCE_FLOW
    );
    let flow = chaoslab::catalog::parse_flow(&text, "outage.toml", None).unwrap();
    let s = Run::new(flow).out(dir.path()).seed(2).sim(6 * MIN).unwrap();
    let trace = common::trace(dir.path());
    let lost_at_broker = s.links["SENSOR->MQTT_BROKER"].dropped_down;
    assert!(
        (85..=92).contains(&lost_at_broker),
        "about 90 records published into a dead broker: {lost_at_broker}"
    );
    assert_eq!(s.components["MQTT_BROKER"].restarts, 0, "stopped and started, not crashed");
    let node_red_lost = trace.iter().any(|e| {
        e["component"] == "NODE-RED"
            && e["kind"] == "mqtt.disconnected"
            && e["data"]["log"]
                .as_str()
                .unwrap()
                .starts_with("Disconnected from broker: nodered@mqtt://MQTT_BROKER:1883")
    });
    assert!(node_red_lost);
    let nifi_errors: Vec<u64> = trace
        .iter()
        .filter(|e| e["component"] == "NIFI" && e["kind"] == "mqtt.error")
        .map(|e| e["ms"].as_u64().unwrap())
        .collect();
    assert!(
        (85..=92).contains(&nifi_errors.len()),
        "NiFi retries about once a second: {}",
        nifi_errors.len()
    );
    assert!(nifi_errors.windows(2).all(|w| w[1] - w[0] == 1000));
    // Node-RED retries every 15 s, so it comes back up to 15 s after the broker.
    let reconnects: Vec<u64> = trace
        .iter()
        .filter(|e| e["component"] == "NODE-RED" && e["kind"] == "mqtt.connected")
        .map(|e| e["ms"].as_u64().unwrap())
        .collect();
    assert_eq!(reconnects.len(), 2);
    assert!(reconnects[1] >= 210_000 && reconnects[1] <= 225_000, "{reconnects:?}");
}

#[test]
fn per_device_replay_keeps_each_devices_own_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let text = chaoslab::catalog::REFERENCE_FLOW
        .replace("mode = \"sequential\"", "mode = \"per-device\"")
        .replace("speedup = 1.0", "speedup = 10.0");
    let flow = chaoslab::catalog::parse_flow(&text, "per-device.toml", None).unwrap();
    Run::new(flow).out(dir.path()).seed(4).sim(3 * MIN).unwrap();
    let ds = chaoslab::sources::sensor_replay::load_dataset(
        &chaoslab::catalog::reference_flow().unwrap(),
        "builtin:gnfuv-synth.csv",
    )
    .unwrap();
    let rows = ds.by_device();
    let mut published: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for e in common::trace(dir.path()).iter().filter(|e| e["kind"] == "record.published") {
        published
            .entry(e["data"]["device"].as_str().unwrap().to_string())
            .or_default()
            .push((e["data"]["line"].as_u64().unwrap(), e["ms"].as_u64().unwrap()));
    }
    assert_eq!(published.len(), 9, "every device publishes from the start");
    for (device, seen) in &published {
        let file_rows = &rows[device.as_str()];
        assert_eq!(seen[0].1, 0, "{device} starts at once");
        for (i, w) in seen.windows(2).enumerate() {
            let (a, b) = (file_rows[i % file_rows.len()], file_rows[(i + 1) % file_rows.len()]);
            assert_eq!((w[0].0, w[1].0), (a.line, b.line), "{device} publishes its rows in file order");
            if b.line > a.line {
                let want = (b.time - a.time).num_microseconds().unwrap() as f64 / 10.0 / 1000.0;
                let got = (w[1].1 - w[0].1) as f64;
                assert!((got - want).abs() <= 1.0, "{device}: gap {got} ms, file says {want} ms / 10");
            }
        }
    }
}

#[test]
fn broker_uptime_stands_still_while_the_broker_is_down() {
    let dir = tempfile::tempdir().unwrap();
    Run::new(chaoslab::catalog::reference_flow().unwrap())
        .out(dir.path())
        .seed(1)
        .sim_with(|p| async move {
            let uptime = |p: &chaoslab::topology::Pipeline| -> u64 {
                let text = p.metrics.encode();
                let line = text
                    .lines()
                    .find(|l| l.starts_with("broker_uptime{component=\"MQTT_BROKER\",job=\"mqtt\"}"))
                    .unwrap()
                    .to_string();
                line.rsplit(' ').next().unwrap().parse().unwrap()
            };
            tokio::time::sleep(MIN + Duration::from_millis(500)).await;
            assert_eq!(uptime(&p), 60);
            p.supervisor.stop("MQTT_BROKER").unwrap();
            tokio::time::sleep(MIN).await;
            assert_eq!(uptime(&p), 60, "no increase while down");
            assert!(!p.supervisor.health("NIFI").unwrap().ready, "NIFI lost its broker");
            p.supervisor.start("MQTT_BROKER").unwrap();
            tokio::time::sleep(MIN + Duration::from_millis(250)).await;
            assert_eq!(uptime(&p), 120);
            assert!(p.supervisor.health("NIFI").unwrap().ready, "NIFI reconnected");
            Ok(())
        })
        .unwrap();
}

#[test]
fn lifecycle_trace_keeps_what_is_not_per_record_and_stays_deterministic() {
    let run = |level| {
        let dir = tempfile::tempdir().unwrap();
        let s = Run::new(chaoslab::catalog::reference_flow().unwrap())
            .out(dir.path())
            .seed(6)
            .trace_level(level)
            .sim(3 * MIN)
            .unwrap();
        (s, common::trace(dir.path()))
    };
    use chaoslab::kernel::trace::TraceLevel;
    let (full, full_trace) = run(TraceLevel::Records);
    let (a, a_trace) = run(TraceLevel::Lifecycle);
    let (b, _) = run(TraceLevel::Lifecycle);
    assert_eq!(a.trace.digest, b.trace.digest);
    let per_record = [
        "record.published",
        "record.received",
        "record.appended",
        "file.stored",
        "document.written",
        "order.decided",
        "update.done",
        "update.skipped",
    ];
    assert!(a_trace.iter().all(|e| !per_record.contains(&e["kind"].as_str().unwrap())));
    let lifecycle = |t: &[serde_json::Value]| -> Vec<serde_json::Value> {
        t.iter()
            .filter(|e| !per_record.contains(&e["kind"].as_str().unwrap()))
            .map(|e| e["data"].clone())
            .collect()
    };
    assert_eq!(lifecycle(&a_trace), lifecycle(&full_trace), "the same events, minus the per-record ones");
    assert_eq!(a.windows_written, full.windows_written, "counts come from metrics, not from the trace");
    assert_eq!(a.stored_files, full.stored_files);
    assert!(a.trace.events * 2 < full.trace.events, "{} vs {}", a.trace.events, full.trace.events);
}

#[test]
fn as_fast_as_possible_still_lets_virtual_time_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut flow = chaoslab::catalog::reference_flow().unwrap();
    for name in ["NIFI", "HADOOP", "SPARK"] {
        flow.components.remove(name);
    }
    let s = Run::new(flow).out(dir.path()).seed(1).rate_ms(0).sim(Duration::from_secs(1)).unwrap();
    assert!(s.drained);
    let published = s.components["SENSOR"].records_out;
    assert!(published >= 10_000, "64 records per 1 ms tick: {published}");
    assert_eq!(s.links["MQTT_BROKER->FLINK"].sent, published);
}

#[test]
fn a_stopped_store_fails_the_kmeans_job_and_a_delayed_sensor_link_still_drains() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[links.\"SENSOR->MQTT_BROKER\"]\nlatency = \"3s\"\n[[schedule]]\nat = \"4m\"\naction = \"stop\"\ntarget = \"HADOOP\"\nfor = \"2m\"\n",
        chaoslab::catalog::REFERENCE_FLOW
    );
    let s = Run::new(chaoslab::catalog::parse_flow(&text, "x.toml", None).unwrap())
        .out(dir.path())
        .seed(1)
        .sim(11 * MIN)
        .unwrap();
    let trace = common::trace(dir.path());
    let failed: Vec<&serde_json::Value> = trace.iter().filter(|e| e["kind"] == "kmeans.failed").collect();
    assert_eq!(failed.len(), 1, "only the 5 m run falls in the outage");
    assert_eq!(failed[0]["ms"], 300_000);
    assert!(failed[0]["data"]["error"].as_str().unwrap().contains("HADOOP is down"), "{}", failed[0]);
    assert!(s.drained, "the sensor's publisher empties its delayed link before stopping");
    let link = &s.links["SENSOR->MQTT_BROKER"];
    assert_eq!((link.sent, link.dropped()), (link.delivered, 0));
    assert_eq!(s.simulated_secs, 660.0 + 3.0, "stopping waits out the last 3 s of latency, no more");
    assert!(s.kmeans["SPARK"].is_some() && s.kmeans_problems.is_empty(), "the later jobs succeeded");

    // A store SPARK cannot reach to the end: every job fails, and the summary says so rather than
    // blaming too few records.
    let cut = format!("{}\n[links.\"HADOOP->SPARK\"]\npartition = true\n", chaoslab::catalog::REFERENCE_FLOW);
    let dir = tempfile::tempdir().unwrap();
    let s = Run::new(chaoslab::catalog::parse_flow(&cut, "x.toml", None).unwrap())
        .out(dir.path())
        .seed(1)
        .sim(6 * MIN)
        .unwrap();
    assert!(s.kmeans["SPARK"].is_none(), "{:?}", s.kmeans_problems);
    let problem = &s.kmeans_problems["SPARK"];
    assert!(problem.contains("could not read the store"), "{problem}");
    assert!(
        s.render().contains("SPARK k-means: no model (its last job could not read the store"),
        "{}",
        s.render()
    );
}

#[test]
fn timed_link_faults_are_undone_to_what_was_there_before() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[links.\"MQTT_BROKER->FLINK\"]\nloss = 0.2\n[[schedule]]\nat = \"1m\"\naction = \"link-faults\"\ntarget = \"MQTT_BROKER->FLINK\"\nfor = \"1m\"\nfaults = {{ partition = true }}\n",
        chaoslab::catalog::REFERENCE_FLOW
    );
    let flow = chaoslab::catalog::parse_flow(&text, "x.toml", None).unwrap();
    Run::new(flow)
        .out(dir.path())
        .seed(1)
        .sim_with(|p| async move {
            let link = p.links["MQTT_BROKER->FLINK"].clone();
            tokio::time::sleep(Duration::from_secs(90)).await;
            assert!(link.faults().partition);
            tokio::time::sleep(MIN).await;
            assert_eq!(
                link.faults(),
                LinkFaults { loss: 0.2, ..Default::default() },
                "back to the flow's own loss"
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn runs_with_crashes_faults_and_schedules_are_just_as_deterministic() {
    let text = format!(
        "{}\n[links.\"MQTT_BROKER->NIFI\"]\nlatency = \"200ms\"\njitter = \"2s\"\ncorrelation = 0.3\nreorder = 0.1\nduplicate = 0.05\ncorrupt = 0.05\n\
         [links.\"NIFI->HADOOP\"]\nbandwidth = 60\n\
         [[schedule]]\nat = \"2m\"\naction = \"crash\"\ntarget = \"FLINK\"\n\
         [[schedule]]\nat = \"3m\"\naction = \"stop\"\ntarget = \"MQTT_BROKER\"\nfor = \"40s\"\n\
         [[schedule]]\nat = \"5m\"\naction = \"link-faults\"\ntarget = \"MQTT_BROKER->NODE-RED\"\nfor = \"1m\"\nfaults = {{ loss = 0.5 }}\n",
        chaoslab::catalog::REFERENCE_FLOW
    );
    let run = || {
        let dir = tempfile::tempdir().unwrap();
        let s = Run::new(chaoslab::catalog::parse_flow(&text, "x.toml", None).unwrap())
            .out(dir.path())
            .seed(21)
            .sim(8 * MIN)
            .unwrap();
        (s, common::tree(dir.path()))
    };
    let (a, files_a) = run();
    let (b, files_b) = run();
    assert_eq!(a.trace.digest, b.trace.digest);
    assert_eq!(files_a, files_b);
    let nifi = &a.links["MQTT_BROKER->NIFI"];
    assert!(nifi.duplicated > 0 && nifi.corrupted > 0, "{nifi:?}");
    for (name, l) in &a.links {
        assert_eq!(l.sent + l.duplicated, l.delivered + l.dropped(), "{name}: {l:?}");
    }
    // The printed table adds up too: every link row is sent, duplicated, delivered, dropped.
    let printed = a.render();
    let row: Vec<u64> = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("MQTT_BROKER->NIFI "))
        .unwrap_or_else(|| panic!("no NIFI row in\n{printed}"))
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(row, [nifi.sent, nifi.duplicated, nifi.delivered, nifi.dropped()], "{printed}");
    assert_eq!(row[0] + row[1], row[2] + row[3]);
}
