//! `chaoslab bench mqtt`: the embedded broker beside Mosquitto, with the same clients.
//!
//! Each broker runs as a process of its own on a free port: chaoslab as a live run of a flow that holds
//! only `MQTT_BROKER` (rumqttd behind chaoslab's front listener, with its HTTP plane, metrics and
//! supervisor, as a user runs it), and — when `mosquitto` is on the `PATH` — a Mosquitto with a minimal
//! configuration. The same rumqttc clients, in this process, then push the same messages through each at
//! each QoS: `--publishers` connections publish, one subscriber receives everything. Printed per broker and
//! QoS: messages delivered, messages/s and MB/s from the first publish to the last delivery, and the broker
//! process's CPU time per message and, for chaoslab, the messages its broker counted as skipped for a
//! subscriber too far behind (read from its `/metrics`), so that every message sent is accounted for; per
//! broker, its peak resident set (`VmHWM`); then the ratios.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::transport::envelope::{Envelope, Qos};
use crate::transport::mqtt::client::{BrokerUrl, ClientOptions, LiveSession};

/// What `bench mqtt` is asked to do.
#[derive(Clone, Debug)]
pub struct MqttBench {
    /// Messages per QoS level.
    pub messages: u64,
    /// Publishing connections sharing them.
    pub publishers: u32,
    /// QoS levels measured, in order.
    pub qos: Vec<Qos>,
    /// Measure Mosquitto too when it is installed.
    pub peer: bool,
}

/// One broker and QoS: what arrived, how fast, at what CPU cost to the broker.
#[derive(Clone, Debug)]
struct Measured {
    qos: Qos,
    delivered: u64,
    secs: f64,
    bytes: u64,
    broker_cpu: Option<f64>,
    /// Messages the broker itself counted as dropped (chaoslab's `skipped_ahead`); `None` when it does
    /// not say.
    skipped: Option<u64>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.secs.max(1e-9)
    }

    fn cpu_per_message_us(&self) -> Option<f64> {
        self.broker_cpu.map(|cpu| cpu * 1e6 / self.delivered.max(1) as f64)
    }
}

/// A broker process under test.
struct BrokerProcess {
    name: String,
    child: Child,
    addr: SocketAddr,
    /// The HTTP plane (chaoslab's), where its metrics are.
    http: Option<crate::orders::http::ApiClient>,
}

impl BrokerProcess {
    /// Seconds of CPU (user + system) the process has used so far (Linux `/proc/<pid>/stat`).
    fn cpu_secs(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which may hold spaces) start at the state, field 3.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(ticks as f64 / CLOCK_TICKS)
    }

    /// Messages chaoslab's broker has counted as skipped ahead so far, from its `/metrics`.
    async fn skipped(&self) -> Option<u64> {
        let resp = self.http.as_ref()?.send(hyper::Method::GET, "/metrics", None).await.ok()?;
        let text = std::str::from_utf8(&resp.body).ok().filter(|_| resp.status.is_success())?;
        let line = text.lines().find(|l| {
            l.starts_with("chaoslab_records_dropped_total{")
                && l.contains(r#"component="MQTT_BROKER""#)
                && l.contains(r#"reason="skipped_ahead""#)
        });
        // No line: nothing was skipped yet (the series appears with its first drop).
        Some(line.and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).map_or(0, |v| v as u64))
    }

    /// Peak resident set in KiB (Linux `VmHWM`).
    fn peak_rss_kib(&self) -> Option<u64> {
        super::proc_status_kib(&self.child.id().to_string(), "VmHWM")
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `USER_HZ`: the unit of `/proc/<pid>/stat` times, 100 on every Linux this runs on.
const CLOCK_TICKS: f64 = 100.0;

/// The payload every message carries: a sensor record as the reference's simulator publishes it.
fn payload(i: u64) -> String {
    format!(
        r#"{{"device_id":"gnfuv-bench","humidity":"{}","temperature":"{}","seq":{i:08},"time":"2020-02-21T21:38:12.000Z"}}"#,
        20 + i % 30,
        25 + i % 15
    )
}

/// Runs the benchmark and prints its figures.
pub fn run(bench: &MqttBench) -> anyhow::Result<()> {
    anyhow::ensure!(bench.publishers > 0, "--publishers must be at least 1");
    anyhow::ensure!(!bench.qos.is_empty(), "--qos needs at least one level");
    println!(
        "chaoslab bench mqtt ({} build): {} messages of ~{} bytes per QoS, {} publisher(s) -> broker -> 1 subscriber; the same rumqttc clients for every broker",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        bench.messages,
        payload(0).len(),
        bench.publishers
    );
    let dir = super::tempfile_dir()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let ours = rt.block_on(measure_broker(start_chaoslab(&dir)?, bench))?;
    let peer = match (bench.peer, which("mosquitto")) {
        (false, _) => None,
        (true, None) => {
            println!("mosquitto:         not measured (no `mosquitto` on the PATH; Debian's package has it)");
            None
        }
        (true, Some(program)) => Some(rt.block_on(measure_broker(start_mosquitto(&program, &dir)?, bench))?),
    };
    if let Some((theirs, their_rss)) = &peer {
        let (mine, my_rss) = &ours;
        for (a, b) in mine.iter().zip(theirs) {
            let cpu = match (a.cpu_per_message_us(), b.cpu_per_message_us()) {
                (Some(x), Some(y)) if y > 0.0 => format!("; broker CPU per message {:.2}x", x / y),
                _ => String::new(),
            };
            println!(
                "chaoslab / mosquitto, QoS {}: throughput {:.2}x{cpu}",
                a.qos.level(),
                a.rate() / b.rate().max(1e-9),
            );
        }
        if let (Some(x), Some(y)) = (my_rss, their_rss) {
            println!("chaoslab / mosquitto, peak RSS: {:.1}x", *x as f64 / (*y).max(1) as f64);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Measures every QoS level through `broker`, printing a line for each and one for its memory.
async fn measure_broker(
    broker: BrokerProcess,
    bench: &MqttBench,
) -> anyhow::Result<(Vec<Measured>, Option<u64>)> {
    let mut all = Vec::new();
    for &qos in &bench.qos {
        let before = broker.cpu_secs();
        let skipped_before = broker.skipped().await;
        let mut m = push(broker.addr, qos, bench.messages, bench.publishers)
            .await
            .with_context(|| format!("{} at {}, QoS {}", broker.name, broker.addr, qos.level()))?;
        m.broker_cpu = before.zip(broker.cpu_secs()).map(|(a, b)| b - a);
        if skipped_before.is_some() {
            // MQTT_BROKER brings its counts up to date each second.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            m.skipped = skipped_before.zip(broker.skipped().await).map(|(a, b)| b.saturating_sub(a));
        }
        let cpu = m.cpu_per_message_us().map_or(String::new(), |us| {
            format!("; broker CPU {:.2} s ({us:.2} µs/message)", m.broker_cpu.unwrap_or_default())
        });
        let skipped = m.skipped.map_or(String::new(), |n| {
            let sum = if m.delivered + n == bench.messages {
                "every message accounted for"
            } else {
                "some unaccounted"
            };
            format!("; the broker counted {n} skipped for the subscriber ({sum})")
        });
        println!(
            "{:<18} QoS {}: {}/{} delivered in {:.3} s = {:.0} msg/s ({:.1} MB/s){cpu}{skipped}",
            format!("{}:", broker.name),
            qos.level(),
            m.delivered,
            bench.messages,
            m.secs,
            m.rate(),
            m.bytes as f64 / m.secs.max(1e-9) / 1e6,
        );
        all.push(m);
    }
    let rss = broker.peak_rss_kib();
    println!(
        "{:<18} peak RSS {} (the broker process)",
        format!("{}:", broker.name),
        rss.map_or("n/a".into(), |kib| format!("{:.1} MB", kib as f64 / 1024.0))
    );
    Ok((all, rss))
}

/// Publishes `messages` over `publishers` connections and receives them on one subscriber.
async fn push(addr: SocketAddr, qos: Qos, messages: u64, publishers: u32) -> anyhow::Result<Measured> {
    let url = BrokerUrl { host: addr.ip().to_string(), port: addr.port() };
    let opts = |id: String| ClientOptions {
        url: url.clone(),
        client_id: id,
        clean_session: true,
        keep_alive: Duration::from_secs(30),
    };
    let level = qos.level();
    let mut sub = LiveSession::connect(opts(format!("bench-sub-{level}"))).await?;
    sub.subscribe(&format!("bench/{level}/#"), qos).await?;
    let mut sessions = Vec::new();
    for p in 0..publishers {
        sessions.push(LiveSession::connect(opts(format!("bench-pub-{level}-{p}"))).await?);
    }
    let started = Instant::now();
    let mut producers = Vec::new();
    for (p, mut session) in sessions.into_iter().enumerate() {
        let share =
            messages / u64::from(publishers) + u64::from((p as u64) < messages % u64::from(publishers));
        producers.push(tokio::spawn(async move {
            let topic = format!("bench/{level}/{p}");
            for i in 0..share {
                let env = Envelope::new(topic.clone(), payload(i)).with_qos(qos);
                if session.publish(env).await.is_err() {
                    break;
                }
            }
            session
        }));
    }
    let (mut delivered, mut bytes) = (0u64, 0u64);
    let mut last = started;
    // A broker that drops messages (a full queue) is measured on what arrived: the count says so.
    while delivered < messages {
        match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
            Ok(Ok(env)) => {
                delivered += 1;
                bytes += env.payload.len() as u64;
                last = Instant::now();
            }
            _ => break,
        }
    }
    for producer in producers {
        if let Ok(session) = producer.await {
            session.disconnect().await;
        }
    }
    sub.disconnect().await;
    Ok(Measured {
        qos,
        delivered,
        secs: (last - started).as_secs_f64(),
        bytes,
        broker_cpu: None,
        skipped: None,
    })
}

/// A live chaoslab running only `MQTT_BROKER`, on ports the OS picks.
fn start_chaoslab(dir: &Path) -> anyhow::Result<BrokerProcess> {
    let flow = dir.join("broker-only.toml");
    std::fs::write(
        &flow,
        "[pipeline]\nname = \"broker-only\"\n\n[components.MQTT_BROKER]\nkind = \"mqtt-broker\"\nlisten = \"127.0.0.1:0\"\n",
    )?;
    let log = std::fs::File::create(dir.join("chaoslab-broker.log"))?;
    let exe = std::env::current_exe().context("cannot find the chaoslab executable")?;
    let mut child = Command::new(exe)
        .args(["run", "--flow"])
        .arg(&flow)
        .arg("--out")
        .arg(dir.join("broker-run"))
        .args(["--http-listen", "127.0.0.1:0", "--trace", "lifecycle"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("cannot start chaoslab's broker-only run")?;
    let stdout = child.stdout.take().context("no stdout from the broker-only run")?;
    // The run prints `chaoslab live: MQTT at tcp://HOST:PORT, HTTP at http://HOST:PORT ...` once it is
    // listening.
    let mut lines = BufReader::new(stdout).lines();
    let (addr, http) = loop {
        match lines.next() {
            Some(Ok(line)) => {
                let after = |marker: &str| {
                    let rest = line.split(marker).nth(1)?;
                    rest.split([',', ' ']).next()?.parse::<SocketAddr>().ok()
                };
                if let Some(addr) = after("MQTT at tcp://") {
                    let http = after("HTTP at http://").and_then(|a| {
                        crate::orders::http::ApiClient::remote(&format!("http://{a}"), Duration::from_secs(5))
                            .ok()
                    });
                    break (addr, http);
                }
            }
            _ => {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.join("chaoslab-broker.log")).unwrap_or_default();
                anyhow::bail!("chaoslab's broker-only run ended before listening:\n{log}");
            }
        }
    };
    // Keep reading its stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(BrokerProcess { name: "chaoslab".into(), child, addr, http })
}

/// Mosquitto on a free port, anonymous, without persistence or logging.
fn start_mosquitto(program: &Path, dir: &Path) -> anyhow::Result<BrokerProcess> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"),
    )?;
    let child = Command::new(program)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let version = Command::new(program)
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .unwrap_or_default();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let broker =
        BrokerProcess { name: format!("mosquitto {version}").trim().to_owned(), child, addr, http: None };
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(broker);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("mosquitto did not listen on {addr} within 5 s")
}

/// The first executable `program` on the `PATH`, else in `/usr/sbin` (where Debian puts Mosquitto).
fn which(program: &str) -> Option<std::path::PathBuf> {
    use crate::chaos::experiment::provider::process::which;
    which(program).or_else(|| which(&format!("/usr/sbin/{program}")))
}
