//! The dashboard in a real headless Chromium (Debian's, driven through ChromeDriver): every page loads
//! without a console error; a fault applied from the Faults page is active in `/api/faults` and drawn as
//! a window on the Timeline; stopping a component from its panel turns it red in the diagram; an action
//! without the token is refused; the replay slider of `chaoslab serve` changes what the page shows.
//! Screenshots of every page go to `target/dashboard-screenshots/`.

use crate::common;

use common::browser::{Driver, console_errors, screenshot, wait_for, wait_until};
use common::http::{http_get, request_with};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chaoslab::dashboard::replay::Replay;
use chaoslab::executions::Kind;
use chaoslab::runner::{LiveHandle, Run};
use fantoccini::{Client, Locator};
use serde_json::Value;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(60);
const PAGES: [&str; 7] = ["pipeline", "faults", "experiments", "timeline", "incidents", "data", "runs"];

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The whole reference flow, live on free ports.
async fn start_live(out: &Path) -> LiveHandle {
    let run = Run::new(chaoslab::catalog::reference_flow().unwrap())
        .out(out)
        .seed(5)
        .rate_ms(100)
        .http_listen(any_port())
        .mqtt_listen(any_port())
        .forward_listen(any_port())
        .log_http_listen(any_port());
    timeout(WAIT, run.live()).await.expect("live run did not start in time").unwrap()
}

/// Opens a tab and waits until its page is the one shown.
async fn open_tab(c: &Client, page: &str) {
    c.find(Locator::Css(&format!("#tab-{page}"))).await.unwrap().click().await.unwrap();
    wait_until(c, &format!("the {page} page to show"), &format!(
        "const p = document.getElementById('page-{page}'); return p && !p.hidden && p.offsetParent !== null;"
    ))
    .await;
}

/// The health the diagram shows for a component.
fn health_of(name: &str) -> String {
    format!(
        "const n = document.querySelector('#diagram g.node[data-name=\"{name}\"]'); return n && n.getAttribute('data-health');"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_dashboard_watches_and_breaks_the_pipeline() {
    let Some(mut driver) = Driver::start("the_live_dashboard_watches_and_breaks_the_pipeline") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let h = start_live(dir.path()).await;
    let (addr, token) = (h.http_addr, h.control_token.clone().unwrap());
    assert_eq!(h.dashboard_url(), format!("http://{addr}/?token={token}"));
    let c = driver.session().await;

    // The link with the token lands on the page with the token kept, and out of the address bar.
    c.goto(&h.dashboard_url()).await.unwrap();
    wait_until(
        &c,
        "the session to be authenticated",
        "return document.getElementById('auth').textContent.includes('token ok');",
    )
    .await;
    assert_eq!(c.current_url().await.unwrap().as_str(), format!("http://{addr}/"));
    assert_eq!(c.find(Locator::Css("#mode")).await.unwrap().text().await.unwrap(), "live");

    // A workflow runs, so the Experiments tab has one to draw.
    let auth = format!("Bearer {token}");
    post_workflow(addr, &auth).await;

    // Every page loads without a console error.
    for page in PAGES {
        open_tab(&c, page).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        screenshot(&c, page).await;
        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "page {page}: console errors {errors:?}");
    }
    open_tab(&c, "experiments").await;
    wait_for(&c, "#workflow-graphs g.wnode[data-name='fail-flink']").await;
    c.execute("document.getElementById('mesh-workflows').scrollIntoView(); return true;", vec![])
        .await
        .unwrap();
    screenshot(&c, "experiments-workflow").await;

    // The Data tab lists the order store's orders.
    open_tab(&c, "data").await;
    wait_until(&c, "the orders", "return !!document.querySelector('#orders-table tbody tr:not(.empty)');")
        .await;
    let orders = http_get(addr, "/ui/api/orders?size=5").await.json();
    assert!(!orders["orders"].as_array().unwrap().is_empty(), "{orders}");

    // A fault applied from the Faults page is active in the API and a window on the Timeline.
    open_tab(&c, "faults").await;
    wait_for(&c, "#fault-kind option[value='network-delay']").await;
    c.find(Locator::Css("#fault-kind")).await.unwrap().select_by_value("network-delay").await.unwrap();
    let target = c.find(Locator::Css("#fault-target")).await.unwrap();
    target.clear().await.unwrap();
    target.send_keys("SENSOR->MQTT_BROKER").await.unwrap();
    wait_until(
        &c,
        "the target preview",
        "return document.getElementById('fault-preview').textContent.includes('SENSOR->MQTT_BROKER');",
    )
    .await;
    let set = c
        .execute(
            "const row = [...document.querySelectorAll('#fault-params .param-row')]
                 .find(r => r.querySelector('.param-name').value === 'latency');
             if (!row) return false;
             row.querySelector('.param-value').value = '300ms';
             document.getElementById('fault-duration').value = '120s';
             return true;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(set, Value::Bool(true), "the form has a latency parameter");
    c.find(Locator::Css("#fault-apply")).await.unwrap().click().await.unwrap();
    let result = wait_until(
        &c,
        "the fault to be applied",
        "const t = document.getElementById('fault-result').textContent; return /f-\\d+/.test(t) && t;",
    )
    .await;
    let id = regex::Regex::new(r"f-\d+").unwrap().find(result.as_str().unwrap()).unwrap().as_str().to_owned();

    let faults = request_with(addr, "GET", "/api/faults", &[("Authorization", &auth)], None).await.json();
    let active = faults["active"].as_array().unwrap();
    let applied = active
        .iter()
        .find(|f| f["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} is not active: {faults}"));
    assert_eq!(
        (applied["kind"].as_str(), applied["targets"][0].as_str()),
        (Some("network-delay"), Some("SENSOR->MQTT_BROKER"))
    );
    assert_eq!(applied["parameters"]["latency"], "300ms");
    screenshot(&c, "faults-applied").await;

    open_tab(&c, "timeline").await;
    wait_until(
        &c,
        "the fault window in the list",
        &format!("return document.getElementById('timeline-windows').textContent.includes('{id}');"),
    )
    .await;
    wait_until(&c, "the fault window on the chart", &format!(
        "const svg = document.querySelector('#chart-0 svg'); return !!svg && svg.textContent.includes('{id}');"
    ))
    .await;
    screenshot(&c, "timeline-fault").await;

    // Stopping a component from its panel turns it red.
    open_tab(&c, "pipeline").await;
    wait_until(
        &c,
        "FLINK to be healthy",
        &format!("return (function(){{ {} }})() === 'ok';", health_of("FLINK")),
    )
    .await;
    c.execute("document.querySelector('#diagram g.node[data-name=\"FLINK\"]').dispatchEvent(new MouseEvent('click', {bubbles: true})); return true;", vec![])
        .await
        .unwrap();
    wait_until(&c, "the FLINK panel", "const p = document.getElementById('component-panel'); return !p.hidden && document.getElementById('component-name').textContent.includes('FLINK');").await;
    c.find(Locator::Css("#btn-stop")).await.unwrap().click().await.unwrap();
    wait_until(
        &c,
        "FLINK to turn red",
        &format!("return (function(){{ {} }})() === 'down';", health_of("FLINK")),
    )
    .await;
    let components = http_get(addr, "/api/components").await.json();
    let flink = components.as_array().unwrap().iter().find(|c| c["name"] == "FLINK").unwrap();
    assert_eq!(flink["health"]["state"], "stopped");
    screenshot(&c, "pipeline-stopped").await;

    // The knowledge graph is drawn on the Incidents tab, and a signal's threshold is edited from it.
    open_tab(&c, "incidents").await;
    let node = "#graph g.gnode[data-id='signal:MqttConnectionError#NIFI']";
    wait_for(&c, node).await;
    c.execute(&format!("document.querySelector(\"{node}\").dispatchEvent(new MouseEvent('click', {{bubbles: true}})); return true;"), vec![])
        .await
        .unwrap();
    wait_until(
        &c,
        "the signal in the editor",
        "return document.getElementById('graph-signal').value === 'MqttConnectionError';",
    )
    .await;
    let threshold = c.find(Locator::Css("#graph-threshold")).await.unwrap();
    threshold.clear().await.unwrap();
    threshold.send_keys("7").await.unwrap();
    c.find(Locator::Css("#graph-save-signal")).await.unwrap().click().await.unwrap();
    wait_until(
        &c,
        "the edit to be saved",
        "return document.getElementById('graph-result').textContent.includes('saved');",
    )
    .await;
    let graph = request_with(addr, "GET", "/api/graph", &[("Authorization", &auth)], None).await.json();
    let signal = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "signal:MqttConnectionError#NIFI")
        .unwrap();
    assert_eq!(signal["threshold"], 7, "{signal}");
    wait_until(
        &c,
        "the signals table",
        "return document.getElementById('signals-table').textContent.includes('MqttConnectionError');",
    )
    .await;
    screenshot(&c, "incidents-graph").await;
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors while acting: {errors:?}");

    // Halt: two clicks remove every active fault.
    open_tab(&c, "faults").await;
    c.find(Locator::Css("#halt")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("#halt")).await.unwrap().click().await.unwrap();
    common::http::eventually("every fault removed", async || {
        let f = request_with(addr, "GET", "/api/faults", &[("Authorization", &auth)], None).await.json();
        f["active"].as_array().is_some_and(|a| a.is_empty()).then_some(())
    })
    .await;
    c.close().await.unwrap();

    // Without the token the page is read-only, and the server refuses what it would send.
    let anon = driver.session().await;
    anon.goto(&format!("http://{addr}/")).await.unwrap();
    wait_until(
        &anon,
        "the read-only notice",
        "return document.getElementById('auth').textContent.includes('read-only');",
    )
    .await;
    open_tab(&anon, "faults").await;
    let disabled =
        anon.execute("return document.getElementById('fault-apply').disabled;", vec![]).await.unwrap();
    assert_eq!(disabled, Value::Bool(true), "the apply button is disabled without the token");
    let status = anon
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/faults', {method: 'POST', headers: {'content-type': 'application/json'},
                   body: JSON.stringify({kind: 'network-loss', target: 'SENSOR->MQTT_BROKER', parameters: {percent: '50'}})})
               .then(r => done(r.status), e => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, Value::from(401));
    anon.close().await.unwrap();
    let faults = request_with(addr, "GET", "/api/faults", &[("Authorization", &auth)], None).await.json();
    assert!(faults["active"].as_array().unwrap().iter().all(|f| f["kind"] != "network-loss"));

    // The session cookie works only from the page's own origin.
    let cookie = format!("chaoslab_token={token}");
    let body = br#"{"kind":"network-loss","target":"SENSOR->MQTT_BROKER","parameters":{"percent":"10"},"duration":"5s"}"#;
    let json = Some(("application/json", &body[..]));
    let forged = request_with(
        addr,
        "POST",
        "/api/faults",
        &[("Cookie", &cookie), ("Origin", "http://evil.example")],
        json,
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let own = request_with(
        addr,
        "POST",
        "/api/faults",
        &[("Cookie", &cookie), ("Origin", "http://127.0.0.1")],
        json,
    )
    .await;
    assert_eq!(own.status, 201, "{}", own.body);

    timeout(WAIT, h.stop()).await.expect("live run did not stop in time").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_link_sets_a_strict_cookie_and_a_wrong_one_sets_none() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_live(dir.path()).await;
    let (addr, token) = (h.http_addr, h.control_token.clone().unwrap());
    let ok = http_get(addr, &format!("/?token={token}")).await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.header("location"), Some("/"));
    let cookie = ok.header("set-cookie").unwrap();
    assert!(cookie.starts_with(&format!("chaoslab_token={token};")), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let wrong = http_get(addr, "/?token=nope").await;
    assert_eq!(wrong.status, 200);
    assert_eq!(wrong.header("set-cookie"), None);
    let session = http_get(addr, "/ui/api/session").await.json();
    assert_eq!((session["mode"].as_str(), session["authenticated"].as_bool()), (Some("live"), Some(false)));
    let with_cookie =
        request_with(addr, "GET", "/ui/api/session", &[("Cookie", &format!("chaoslab_token={token}"))], None)
            .await
            .json();
    assert_eq!(
        (with_cookie["authenticated"].as_bool(), with_cookie["actions"].as_bool()),
        (Some(true), Some(true))
    );
    timeout(WAIT, h.stop()).await.expect("live run did not stop in time").unwrap();
}

/// A sim run whose FLINK is stopped at 2:00 and started again at 4:00, replayed by `chaoslab serve`'s router.
async fn replay_server(out: &Path) -> SocketAddr {
    let flow = common::iot_only(chaoslab::catalog::reference_flow().unwrap());
    let out_dir = out.to_path_buf();
    std::thread::spawn(move || {
        Run::new(flow)
            .out(&out_dir)
            .seed(3)
            .command("chaoslab run --sim --for 6m --seed 3 (test)")
            .sim_with(|p| async move {
                tokio::time::sleep(Duration::from_secs(120)).await;
                p.supervisor.stop("FLINK")?;
                tokio::time::sleep(Duration::from_secs(120)).await;
                p.supervisor.start("FLINK")?;
                tokio::time::sleep(Duration::from_secs(120)).await;
                Ok(())
            })
            .unwrap()
    })
    .join()
    .unwrap();
    let replay = Replay::load(out).unwrap();
    let listener = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = chaoslab::dashboard::router(Arc::new(replay), Default::default())
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_slider_scrubs_through_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let addr = replay_server(dir.path()).await;

    // The API answers at any instant.
    let at = |ms: u64| async move {
        let state = http_get(addr, &format!("/ui/api/state?at={ms}")).await.json();
        let flink =
            state["components"].as_array().unwrap().iter().find(|c| c["name"] == "FLINK").cloned().unwrap();
        flink["health"].as_str().unwrap().to_owned()
    };
    assert_eq!(at(60_000).await, "ok");
    assert_eq!(at(180_000).await, "down");
    assert_eq!(at(300_000).await, "ok");
    let session = http_get(addr, "/ui/api/session").await.json();
    assert_eq!(session["mode"], "replay");
    assert!(session["end_ms"].as_u64().unwrap() >= 360_000, "{session}");
    assert_eq!(session["run"]["command"], "chaoslab run --sim --for 6m --seed 3 (test)");
    let chart = http_get(addr, "/ui/api/timeline?preset=components-up").await.json();
    assert!(chart["error"].is_null(), "{chart}");
    assert!(chart["svg"].as_str().unwrap().starts_with("<svg"));
    assert_eq!(http_get(addr, "/ui/api/stream").await.status, 404, "a replay has no stream");
    // The indices as they were: a window report counts from its last measurement's time.
    let total = |q: &str| {
        let q = q.to_owned();
        async move {
            http_get(addr, &format!("/ui/api/search?index=flink-sensor-data{q}")).await.json()["total"]
                .as_u64()
                .unwrap()
        }
    };
    let (all, early, minute) =
        (total("").await, total("&at=60000").await, total("&since_ms=60000&until_ms=120000").await);
    assert!(early > 0 && early < all, "{early} of {all} written by 1:00");
    assert!(minute > 0 && minute < all, "{minute} of {all} in the second minute");

    let Some(mut driver) = Driver::start("the_replay_slider_scrubs_through_a_finished_run") else { return };
    let c = driver.session().await;
    c.goto(&format!("http://{addr}/")).await.unwrap();
    wait_for(&c, "#replay-slider").await;
    assert_eq!(c.find(Locator::Css("#mode")).await.unwrap().text().await.unwrap(), "replay");
    let command = c.find(Locator::Css("#command")).await.unwrap().text().await.unwrap();
    assert!(command.contains("--seed 3"), "{command}");
    for (ms, health) in [(60_000, "ok"), (180_000, "down"), (300_000, "ok")] {
        c.execute(
            "const s = document.getElementById('replay-slider'); s.value = arguments[0];
             s.dispatchEvent(new Event('input', {bubbles: true})); s.dispatchEvent(new Event('change', {bubbles: true}));
             return true;",
            vec![Value::from(ms)],
        )
        .await
        .unwrap();
        let expected = format!("return (function(){{ {} }})() === '{health}';", health_of("FLINK"));
        wait_until(&c, &format!("FLINK {health} at {ms} ms"), &expected).await;
        if ms == 180_000 {
            screenshot(&c, "replay").await;
        }
    }
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors in replay: {errors:?}");
    c.close().await.unwrap();
}

/// A workflow: settle for a second, then fail FLINK for two.
const WORKFLOW: &str = "apiVersion: chaos-mesh.org/v1alpha1
kind: Workflow
metadata: {name: flink-break, namespace: iot}
spec:
  entry: main
  templates:
    - name: main
      templateType: Serial
      deadline: 60s
      children: [settle, fail-flink]
    - name: settle
      templateType: Suspend
      deadline: 1s
    - name: fail-flink
      templateType: PodChaos
      deadline: 2s
      podChaos:
        action: pod-failure
        mode: all
        selector:
          labelSelectors: {app: flink}
";

/// Creates [`WORKFLOW`] with the bearer header `auth`.
async fn post_workflow(addr: SocketAddr, auth: &str) {
    let body = Some(("application/yaml", WORKFLOW.as_bytes()));
    let created = request_with(addr, "POST", "/api/workflows", &[("Authorization", auth)], body).await;
    assert!(created.status < 300, "{}", created.body);
}

/// A tiny experiment in YAML: FLINK is up before and after a pause.
const FLINK_UP: &str = "title: FLINK stays up
description: a steady state around a pause
steady-state-hypothesis:
  title: FLINK up
  probes:
    - type: probe
      name: up
      tolerance: true
      provider: {type: python, module: chaoslab.probes, func: component_up, arguments: {name: FLINK}}
method:
  - type: action
    name: wait
    provider: {type: python, module: chaoslab.probes, func: component_up, arguments: {name: FLINK}}
    pauses: {after: 1}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_run_from_the_page_are_kept_in_the_execution_store() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store/executions.db");
    let run = Run::new(common::iot_only(chaoslab::catalog::reference_flow().unwrap()))
        .out(dir.path().join("out"))
        .seed(2)
        .http_listen(any_port())
        .mqtt_listen(any_port())
        .execution_store(&store_path);
    let h = timeout(WAIT, run.live()).await.expect("live run did not start in time").unwrap();
    let (addr, token) = (h.http_addr, h.control_token.clone().unwrap());
    let auth = format!("Bearer {token}");
    // The experiment probes FLINK: it must have started (subscribed) first, not race the probe.
    let ready = h.pipeline.supervisor.wait_for("FLINK", |s| s.ready);
    timeout(WAIT, ready).await.expect("FLINK did not become ready").unwrap();

    // The page validates YAML with lines, then runs it.
    let broken =
        serde_json::json!({"format": "ctk", "text": FLINK_UP.replace("tolerance: true", "tolerance: [")})
            .to_string();
    let problems =
        request_with(addr, "POST", "/ui/api/validate", &[], Some(("application/json", broken.as_bytes())))
            .await
            .json();
    let first = &problems["problems"][0];
    assert!(first["line"].as_u64().is_some(), "a YAML error has its line: {problems}");
    let valid = serde_json::json!({"format": "ctk", "text": FLINK_UP}).to_string();
    let none =
        request_with(addr, "POST", "/ui/api/validate", &[], Some(("application/json", valid.as_bytes())))
            .await
            .json();
    assert_eq!(none["problems"], serde_json::json!([]), "{none}");
    let body = serde_json::json!({"text": FLINK_UP}).to_string();
    let done = request_with(
        addr,
        "POST",
        "/ui/api/experiments/run",
        &[("Authorization", &auth)],
        Some(("application/json", body.as_bytes())),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let refused = request_with(
        addr,
        "POST",
        "/ui/api/experiments/run",
        &[],
        Some(("application/json", body.as_bytes())),
    )
    .await;
    assert_eq!(refused.status, 401, "running needs the token");

    // The Runs tab lists it, and its details hold the journal and the command that runs it again.
    let runs = http_get(addr, "/ui/api/runs").await.json();
    let listed = runs.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{runs}");
    let r = &listed[0];
    assert_eq!(
        (r["title"].as_str(), r["source"].as_str(), r["status"].as_str()),
        (Some("FLINK stays up"), Some("http"), Some("completed"))
    );
    assert_eq!((r["passed"].as_bool(), r["resilience"].as_f64()), (Some(true), Some(100.0)));
    let command = r["command"].as_str().unwrap();
    assert!(command.starts_with(&format!("chaoslab experiment run --target http://{addr} ")), "{command}");
    let kept = command.rsplit(' ').next().unwrap();
    assert!(Path::new(kept).is_file(), "the experiment is kept at {kept}");
    let details = http_get(addr, &format!("/ui/api/runs/{}", r["id"])).await.json();
    assert_eq!(details["journal"]["experiment"]["title"], "FLINK stays up");
    assert_eq!(http_get(addr, "/ui/api/runs/999").await.status, 404);

    // The Timeline draws its phases and its probes' verdicts on the time axis.
    let chart = http_get(addr, "/ui/api/timeline?preset=components-up").await.json();
    let e = &chart["experiments"][0];
    assert_eq!(e["title"], "FLINK stays up", "{chart}");
    let phases: Vec<&str> =
        e["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(phases, ["steady-state before", "method", "steady-state after"]);
    let verdicts = e["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 2, "before and after");
    assert!(verdicts.iter().all(|v| v["met"] == true));
    let method = &e["phases"][1];
    assert!(
        method["to_ms"].as_u64().unwrap() >= method["from_ms"].as_u64().unwrap() + 1000,
        "the pause is inside the method"
    );
    assert!(
        chart["svg"].as_str().unwrap().contains("FLINK stays up · completed"),
        "the chart labels the method"
    );
    // A Chaos Mesh Workflow is drawn with its nodes' states as it runs.
    post_workflow(addr, &auth).await;
    let done = common::http::eventually("the workflow to be accomplished", async || {
        let w = http_get(addr, "/ui/api/workflows").await.json();
        let states = w["workflows"][0]["states"].clone();
        (states["main"] == "accomplished").then_some(w)
    })
    .await;
    let w = &done["workflows"][0];
    // The workflow is kept in the execution store, and its record completed once it finished.
    let kept = common::http::eventually("the workflow's record to be completed", async || {
        let runs = http_get(addr, "/ui/api/runs").await.json();
        runs.as_array()?
            .iter()
            .find(|r| r["title"] == "Workflow iot/flink-break" && r["status"] == "finished")
            .cloned()
    })
    .await;
    assert_eq!((kept["kind"].as_str(), kept["source"].as_str()), (Some("mesh"), Some("http")));
    assert!(kept["command"].as_str().unwrap().starts_with("chaoslab mesh apply --target "), "{kept}");
    let faults = &kept["ground_truth"]["faults"];
    assert_eq!(faults.as_array().map(Vec::len), Some(1), "the pod failure its child applied: {kept}");
    assert_eq!(w["key"], "iot/flink-break");
    assert_eq!(w["states"]["settle"], "deadline", "a Suspend ends at its deadline: {w}");
    assert_eq!(w["states"]["fail-flink"], "deadline", "{w}");
    let svg = w["svg"].as_str().unwrap();
    for node in ["main", "settle", "fail-flink"] {
        assert!(svg.contains(&format!("data-name=\"{node}\"")), "{node} is drawn");
    }
    assert!(svg.contains(">PodChaos") || svg.contains(">Chaos"), "{svg}");
    timeout(WAIT, h.stop()).await.expect("live run did not stop in time").unwrap();

    // The store outlives the run.
    let store = chaoslab::executions::Store::open(&store_path).unwrap();
    let kinds: Vec<Kind> = store.list(10).unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [Kind::Mesh, Kind::Experiment]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_shows_the_mined_process_model() {
    use chaoslab::catalog::{PROCESS_MINING_FLOW, parse_flow};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_path_buf();
    let flow = common::light_mining(parse_flow(PROCESS_MINING_FLOW, "process-mining.toml", None).unwrap());
    std::thread::spawn(move || Run::new(flow).out(&out).seed(4).sim(Duration::from_secs(60)).unwrap())
        .join()
        .unwrap();
    let replay = Replay::load(dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = chaoslab::dashboard::router(Arc::new(replay), Default::default())
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let model = http_get(addr, "/ui/api/model").await.json();
    let activities = model["model"]["activities"].as_array().unwrap_or_else(|| panic!("{model}"));
    assert!(activities.len() >= 3, "{model}");
    let svg = model["svg"].as_str().unwrap();
    for a in activities {
        assert!(
            svg.contains(&format!("data-name=\"{}\"", a["name"].as_str().unwrap())),
            "every activity is drawn"
        );
    }
    // This flow has no order store: the answer says so instead of failing.
    let orders = http_get(addr, "/ui/api/orders").await.json();
    assert_eq!(orders["orders"], serde_json::json!([]));
    assert!(orders["error"].as_str().unwrap().contains("no order store"));
    assert_eq!(http_get(addr, "/ui/api/orders?state=lost").await.status, 400);
}

/// How many operations an OpenAPI document has.
fn operations(doc: &Value) -> usize {
    let verbs = ["get", "post", "put", "delete", "patch", "head", "options"];
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| verbs.iter().filter(|v| item.get(**v).is_some()).count())
        .sum()
}

/// `/api/docs` and the order API's `/docs` are Swagger UI served from the binary: in a real browser each
/// shows every operation of its document, without a console error, and the other document is one
/// choice away in the top bar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_docs_show_every_operation_in_a_browser() {
    let Some(mut driver) = Driver::start("the_api_docs_show_every_operation_in_a_browser") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let h = start_live(dir.path()).await;
    let addr = h.http_addr;
    let ours = operations(&http_get(addr, "/api/openapi.json").await.json());
    let orders = operations(&http_get(addr, "/openapi.json").await.json());
    assert!(ours > 60 && orders > 3, "{ours} and {orders} operations");
    let c = driver.session().await;
    let shown = |n: usize| format!("return document.querySelectorAll('.opblock').length === {n};");

    c.goto(&format!("http://{addr}/api/docs")).await.unwrap();
    wait_until(&c, &format!("chaoslab's {ours} operations"), &shown(ours)).await;
    screenshot(&c, "api-docs").await;
    // The top bar lists both documents; choosing the order API's shows its operations.
    let choice = wait_for(&c, ".topbar select").await;
    choice.select_by_label("POKE-ORDER-API").await.unwrap();
    wait_until(&c, &format!("the order API's {orders} operations"), &shown(orders)).await;

    c.goto(&format!("http://{addr}/docs")).await.unwrap();
    wait_until(&c, &format!("the order API's {orders} operations at /docs"), &shown(orders)).await;
    assert_eq!(c.title().await.unwrap(), "FastAPI - Swagger UI");
    screenshot(&c, "order-api-docs").await;
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");

    timeout(WAIT, h.stop()).await.expect("live run did not stop in time").unwrap();
}
