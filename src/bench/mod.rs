//! `chaoslab bench pipeline` (and `orders`; `mining` in [`mining`], `mqtt` in [`mqtt`], `store` in
//! [`store`](mod@store), `soak` in [`soak`]): the figures the project's targets are stated in, printed, not
//! asserted.
//!
//! 1. Sim throughput: sensor records per wall second through MQTT_BROKER → FLINK → ELASTICSEARCH with no
//!    rate limit (target ≥ 1 M records/s/core).
//! 2. Time compression of a 30-minute reference run in sim mode (target ≥ 1000×).
//! 3. Live: MQTT messages per second through the embedded broker (rumqttd behind our front port).
//! 4. Live start-up until every component is running and ready (target < 300 ms).
//! 5. Peak resident memory of each phase (target < 64 MB for the reference pipeline).

pub mod mining;
pub mod mqtt;
pub mod soak;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::catalog::reference_flow;
use crate::kernel::trace::TraceLevel;
use crate::orders::load_generator::LoadGeneratorConfig;
use crate::orders::service::OrderDb;
use crate::runner::Run;
use crate::topology::Pipeline;
use crate::transport::envelope::{Envelope, Qos};
use crate::transport::mqtt::client::{BrokerUrl, ClientOptions, LiveSession};
use crate::transport::mqtt::embedded::{EmbeddedBroker, EmbeddedConfig};
use crate::transport::mqtt::front::{ProxyStats, serve_front};

/// Runs all pipeline benchmarks and prints their figures.
pub fn pipeline(records: u64, messages: u64) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    println!("chaoslab bench pipeline ({} build)", if cfg!(debug_assertions) { "debug" } else { "release" });

    let live_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    reset_peak_rss();
    let startup = live_rt.block_on(live_startup(&dir.join("live")))?;
    println!(
        "live start-up:     {:.1} ms until every component is running and ready (target < 300 ms); peak RSS {} (target < 64 MB)",
        startup * 1e3,
        peak_rss_text()
    );
    drop(live_rt);

    reset_peak_rss();
    let summary = Run::new(reference_flow()?)
        .out(dir.join("reference"))
        .seed(7)
        .history(false)
        .sim(Duration::from_secs(1800))?;
    println!(
        "sim compression:   30 min reference run in {:.3} s wall = {:.0}x (target >= 1000x); {} trace events; peak RSS {}",
        summary.wall_secs,
        summary.compression,
        summary.trace.events,
        peak_rss_text()
    );

    for level in [TraceLevel::Records, TraceLevel::Lifecycle] {
        reset_peak_rss();
        let (n, wall) = sim_throughput(records, &dir.join("throughput"), level)?;
        println!(
            "sim throughput:    {n} records MQTT_BROKER -> FLINK -> ELASTICSEARCH in {wall:.3} s = {:.0} records/s on one core, trace {level:?} (target >= 1000000); peak RSS {}",
            n as f64 / wall,
            peak_rss_text()
        );
    }

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (sent, secs) = rt.block_on(live_mqtt(messages))?;
    println!(
        "live MQTT:         {sent} QoS0 messages publisher -> embedded broker -> subscriber in {secs:.3} s = {:.0} msg/s",
        sent as f64 / secs
    );
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("chaoslab-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// SENSOR (no rate limit) → MQTT_BROKER → FLINK → ELASTICSEARCH, trace hashed in memory.
fn sim_throughput(records: u64, out: &std::path::Path, level: TraceLevel) -> anyhow::Result<(u64, f64)> {
    let mut flow = reference_flow()?;
    flow.without(&["NIFI", "HADOOP", "NODE-RED", "SPARK", "KAFKA", "POKE-ORDERS-DB"]);
    let started = Instant::now();
    Run::new(flow).out(out).seed(1).rate_ms(0).trace_in_memory().history(false).trace_level(level).sim_with(
        |p: Arc<Pipeline>| async move {
            let flink = p.metrics.component("FLINK");
            // A virtual sleep, not a busy yield: the sensor's bursts need virtual time to pass.
            while flink.records_in.get() < records {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(())
        },
    )?;
    let wall = started.elapsed().as_secs_f64();
    Ok((records, wall))
}

async fn live_mqtt(messages: u64) -> anyhow::Result<(u64, f64)> {
    let broker = tokio::task::spawn_blocking(|| EmbeddedBroker::start(EmbeddedConfig::default())).await??;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let _front = crate::kernel::task::ChildTask::spawn(async move {
        let _ = serve_front(listener, broker.upstreams(), Arc::new(ProxyStats::default())).await;
    });
    let url = BrokerUrl { host: addr.ip().to_string(), port: addr.port() };
    let opts = |id: &str| ClientOptions {
        url: url.clone(),
        client_id: id.into(),
        clean_session: true,
        keep_alive: Duration::from_secs(30),
    };
    let mut sub = LiveSession::connect(opts("bench-sub")).await?;
    sub.subscribe("bench/#", Qos::AtMostOnce).await?;
    let mut publisher = LiveSession::connect(opts("bench-pub")).await?;
    let started = Instant::now();
    let producer = tokio::spawn(async move {
        for i in 0..messages {
            let payload = format!("{{\"seq\":{i},\"humidity\":\"21\",\"temperature\":\"40\"}}");
            if publisher.publish(Envelope::new("bench/x", payload).with_qos(Qos::AtMostOnce)).await.is_err() {
                break;
            }
        }
        publisher
    });
    let mut got = 0;
    while got < messages {
        match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
            Ok(Ok(_)) => got += 1,
            _ => break,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = producer.await;
    Ok((got, secs))
}

async fn live_startup(out: &std::path::Path) -> anyhow::Result<f64> {
    let started = Instant::now();
    let handle = live_on_free_ports(Run::new(reference_flow()?).out(out).seed(1))?.live().await?;
    for name in handle.pipeline.supervisor.names() {
        let sup = handle.pipeline.supervisor.clone();
        tokio::time::timeout(Duration::from_secs(10), sup.wait_for(&name, |h| h.ready))
            .await
            .with_context(|| format!("{name} did not become ready"))??;
    }
    let secs = started.elapsed().as_secs_f64();
    handle.stop().await?;
    Ok(secs)
}

/// `run` with every listener on a port the OS picks.
fn live_on_free_ports(run: Run) -> anyhow::Result<Run> {
    let any: std::net::SocketAddr = "127.0.0.1:0".parse()?;
    Ok(run.mqtt_listen(any).forward_listen(any).log_http_listen(any).http_listen(any))
}

/// Starts a new peak-RSS measurement (Linux: writing 5 to `clear_refs` resets `VmHWM`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_text() -> String {
    peak_rss_kib().map_or("n/a".into(), |kib| format!("{:.1} MB", kib as f64 / 1024.0))
}

/// Peak resident set size in KiB (Linux `VmHWM`).
pub fn peak_rss_kib() -> Option<u64> {
    proc_status_kib("self", "VmHWM")
}

/// A KiB field (`VmRSS`, `VmHWM`, …) of `/proc/<process>/status`; `process` is a PID or `self`.
pub fn proc_status_kib(process: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `chaoslab bench orders`: order API requests per second over real HTTP on the embedded store — and,
/// with `peer`, the same requests against another order API (the reference's FastAPI, say) with the
/// ratio — and orders per wall second end to end (API → bus → detector → updater → store) in sim mode.
pub fn orders(requests: u64, concurrency: u32, sim_orders: u32, peer: Option<&str>) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    println!("chaoslab bench orders ({} build)", if cfg!(debug_assertions) { "debug" } else { "release" });

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    reset_peak_rss();
    let ours = rt.block_on(live_posts(&dir.join("live"), requests, concurrency))?;
    println!(
        "live API:          {} POST /orders/ over HTTP/1.1 ({concurrency} concurrent clients, SQLite store, direct publish) {}; peak RSS {} (this process: the live run and its clients; target <= 64 MB)",
        ours.ok,
        ours.figures(),
        peak_rss_text()
    );
    if let Some(url) = peer {
        let client = crate::orders::http::ApiClient::remote(url, Duration::from_secs(30))
            .with_context(|| format!("--peer {url}"))?;
        let theirs = rt.block_on(posts(client, requests, concurrency));
        println!(
            "peer API:          {} POST /orders/ to {url}, the same requests, {}",
            theirs.ok,
            theirs.figures()
        );
        anyhow::ensure!(theirs.ok > 0, "the peer at {url} answered no POST /orders/ with 200");
        println!(
            "chaoslab / peer:   {:.2}x the requests/s; p99 latency {:.2}x",
            ours.rate() / theirs.rate().max(1e-9),
            ours.percentile(0.99) / theirs.percentile(0.99).max(1e-9)
        );
    }
    drop(rt);

    let mut flow = reference_flow()?;
    flow.without(&["SENSOR", "FLINK", "NIFI", "HADOOP", "NODE-RED", "SPARK"]);
    flow.configure::<LoadGeneratorConfig>(|l| {
        l.users = 5;
        l.orders = sim_orders;
        l.delay = Duration::from_millis(1);
    });
    let total = u64::from(5 * sim_orders);
    let started = Instant::now();
    let summary = Run::new(flow)
        .out(dir.join("sim"))
        .seed(1)
        .history(false)
        .trace_level(TraceLevel::Lifecycle)
        .sim_with(|p: Arc<Pipeline>| async move {
            let Some(db) = p.handles.first::<OrderDb>().cloned() else { anyhow::bail!("no order services") };
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let counts = db.store.counts_by_state().await?;
                let settled: u64 =
                    counts.iter().filter(|(s, _)| s.as_str() != "pending").map(|(_, n)| n).sum();
                if settled >= total {
                    return Ok(());
                }
            }
        })?;
    let wall = started.elapsed().as_secs_f64();
    println!(
        "sim end to end:    {total} orders created, decided and written back in {wall:.3} s wall ({:.0} orders/s; {:.0} s simulated)",
        total as f64 / wall,
        summary.simulated_secs
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// What a run of `POST /orders/` requests gave: how many were answered 200, in how long, each one's time.
struct Posts {
    ok: u64,
    secs: f64,
    latencies: Vec<f64>,
}

impl Posts {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.secs.max(1e-9)
    }

    /// The `q` quantile of the request times in seconds (nearest rank), 0 without requests.
    fn percentile(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(rank).copied().unwrap_or(0.0)
    }

    fn figures(&self) -> String {
        format!(
            "in {:.3} s = {:.0} requests/s; latency p50 {:.2} ms, p99 {:.2} ms",
            self.secs,
            self.rate(),
            self.percentile(0.5) * 1e3,
            self.percentile(0.99) * 1e3
        )
    }
}

async fn live_posts(out: &std::path::Path, requests: u64, concurrency: u32) -> anyhow::Result<Posts> {
    let mut flow = reference_flow()?;
    flow.without(&["OCTILLERY", "SENSOR", "FLINK", "NIFI", "HADOOP", "NODE-RED", "SPARK"]);
    let handle = live_on_free_ports(Run::new(flow).out(out).seed(1))?.live().await?;
    let client = crate::orders::http::ApiClient::remote(
        &format!("http://{}", handle.http_addr),
        Duration::from_secs(30),
    )?;
    let posts = posts(client, requests, concurrency).await;
    handle.stop().await?;
    Ok(posts)
}

/// `requests` orders posted by `concurrency` clients in parallel, each waiting for its answer.
async fn posts(client: crate::orders::http::ApiClient, requests: u64, concurrency: u32) -> Posts {
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency.max(1) {
        let client = client.clone();
        let n = requests / u64::from(concurrency.max(1));
        workers.push(tokio::spawn(async move {
            let mut ok = 0u64;
            let mut latencies = Vec::with_capacity(n as usize);
            for i in 0..n {
                let body = format!(
                    r#"{{"user_id": {}, "pokemon": "pikachu", "country": "Chile", "price": {}}}"#,
                    w + 1,
                    i % 300
                );
                let sent = Instant::now();
                if let Ok(r) = client.send(hyper::Method::POST, "/orders/", Some(body.into_bytes())).await
                    && r.status == hyper::StatusCode::OK
                {
                    ok += 1;
                    latencies.push(sent.elapsed().as_secs_f64());
                }
            }
            (ok, latencies)
        }));
    }
    let mut all = Posts { ok: 0, secs: 0.0, latencies: Vec::new() };
    for w in workers {
        if let Ok((ok, latencies)) = w.await {
            all.ok += ok;
            all.latencies.extend(latencies);
        }
    }
    all.secs = started.elapsed().as_secs_f64();
    all
}
