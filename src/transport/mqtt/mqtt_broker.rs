//! `mqtt-broker` (`MQTT_BROKER`) as a supervised component, whichever broker backs it. It provides the
//! [`MqttConnector`] its clients (sensors, subscribers) connect through.
//!
//! - sim: the in-process broker; running = accepting sessions, stopping disconnects every client.
//! - embedded (live): rumqttd runs on its own threads on an internal port; this component owns the
//!   user-facing listener and splices connections through, so stopping it closes every client
//!   connection and refuses new ones — a broker outage, although rumqttd itself cannot be stopped.
//! - external (live, `--mqtt-url`): a broker we do not own; the component probes it with a TCP connect.
//!
//! In all three, `broker_uptime{job="mqtt"}` counts seconds while the broker is serving and stands still
//! while it is down, which is what the reference alert `increase(broker_uptime{job="mqtt"}[30s]) == 0`
//! watches.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use prometheus::IntCounter;
use serde::Deserialize;
use serde_json::json;

use super::MqttConnector;
use super::client::BrokerUrl;
use super::embedded::{EmbeddedBroker, EmbeddedConfig, skipped_ahead};
use super::front::{ProxyStats, Upstreams, serve_front};
use super::sim_broker::{SimBroker, SimBrokerConfig, SimBrokerStats};
use crate::kernel::component::Ctx;
use crate::kernel::metrics::{MetricScope, MetricsError};
use crate::topology::check::CheckCx;
use crate::topology::component::ComponentKind;
use crate::topology::{BuildCx, RunMode};

/// `kind = "mqtt-broker"`.
#[derive(Clone, Debug, Deserialize)]
pub struct MqttBrokerConfig {
    /// Live mode: where the embedded broker listens (`--mqtt-listen`; sim mode uses the in-process broker).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Live mode: a broker outside the process (`mqtt://host:port`, `--mqtt-url`) instead of the embedded one.
    #[serde(default)]
    pub external: Option<String>,
    /// Queue length per client session (in-process broker).
    #[serde(default = "default_queue")]
    pub session_queue: usize,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1883))
}
fn default_queue() -> usize {
    1024
}

/// The embedded rumqttd of a live run, kept alive as long as the pipeline.
#[derive(Clone)]
pub struct EmbeddedHandle(pub Arc<EmbeddedBroker>);

impl ComponentKind for MqttBrokerConfig {
    const KIND: &'static str = "mqtt-broker";
    const NAMESPACE: &'static str = "iot";

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.require(self.session_queue > 0, "session_queue", "must be at least 1");
        if let Some(url) = &self.external
            && let Err(e) = url.parse::<BrokerUrl>()
        {
            cx.error("external", e.to_string());
        }
    }

    fn external_hosts(&self) -> Vec<String> {
        let url = self.external.as_deref().and_then(|u| u.parse::<BrokerUrl>().ok());
        url.map(|u| u.host.to_ascii_lowercase()).into_iter().collect()
    }

    /// Live, embedded: the listen port must be free (checked before the run writes anything; bound at build).
    fn check_inputs(&self, _name: &str, cx: &crate::topology::build::InputCx<'_>) -> anyhow::Result<()> {
        if cx.mode == RunMode::Live && self.external.is_none() {
            bind_front(self.listen)?;
        }
        Ok(())
    }

    /// Provides the [`MqttConnector`] clients use.
    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let external = self.external.as_deref().map(str::parse::<BrokerUrl>).transpose()?;
        let (connector, backend) = match (cx.mode, external) {
            (RunMode::Sim, _) => {
                let cfg = SimBrokerConfig {
                    name: name.to_string(),
                    queue_capacity: self.session_queue,
                    ..SimBrokerConfig::default()
                };
                let broker = SimBroker::new(cfg);
                (MqttConnector::Sim(broker.clone()), BrokerBackend::Sim(broker))
            }
            (RunMode::Live, Some(url)) => (MqttConnector::Live(url.clone()), BrokerBackend::External(url)),
            (RunMode::Live, None) => {
                let listener = bind_front(self.listen)?;
                let listen = listener.local_addr()?;
                // Starting rumqttd waits until it accepts connections: keep that off the async workers.
                let embedded =
                    tokio::task::spawn_blocking(|| EmbeddedBroker::start(EmbeddedConfig::default()))
                        .await
                        .context("embedded broker start-up panicked")??;
                let backend = BrokerBackend::Embedded {
                    internal: embedded.upstreams(),
                    listen,
                    prebound: Arc::new(Mutex::new(Some(listener))),
                    stats: Arc::new(ProxyStats::default()),
                };
                cx.provide(name, EmbeddedHandle(Arc::new(embedded)));
                let url = BrokerUrl { host: listen.ip().to_string(), port: listen.port() };
                (MqttConnector::Live(url), backend)
            }
        };
        cx.provide(name, connector);
        let uptime = register_uptime(&cx.metrics(name))?;
        cx.add(name, move |ctx| run(ctx, backend.clone(), uptime.clone()))
    }
}

/// What backs the component.
#[derive(Clone)]
pub enum BrokerBackend {
    /// In-process broker.
    Sim(SimBroker),
    /// Embedded rumqttd behind our front listener.
    Embedded {
        /// rumqttd's internal listeners (MQTT 3.1.1 and 5).
        internal: Upstreams,
        /// The user-facing address.
        listen: SocketAddr,
        /// The listener bound at start-up (so an occupied port fails the run before anything starts);
        /// later incarnations bind again.
        prebound: Arc<Mutex<Option<std::net::TcpListener>>>,
        /// Connection counters.
        stats: Arc<ProxyStats>,
    },
    /// A broker outside this process.
    External(BrokerUrl),
}

/// Binds the user-facing MQTT port.
fn bind_front(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| {
        format!(
            "cannot listen for MQTT on {addr} (port {} in use? choose another with --mqtt-listen)",
            addr.port()
        )
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Registers `broker_uptime{job="mqtt"}`: the reference's series, as its alert rule reads it.
pub fn register_uptime(metrics: &MetricScope) -> Result<IntCounter, MetricsError> {
    let opts = metrics
        .opts("broker_uptime", "Seconds the MQTT broker has been serving (stands still while it is down).")
        .const_label("job", "mqtt");
    metrics.counter_with(opts)
}

/// Runs one incarnation of the broker.
pub async fn run(ctx: Ctx, backend: BrokerBackend, uptime: IntCounter) -> anyhow::Result<()> {
    let version = concat!("chaoslab ", env!("CARGO_PKG_VERSION"));
    match backend {
        BrokerBackend::Sim(broker) => {
            broker.set_up(true);
            let _down = SetDownOnDrop(broker.clone());
            announce(&ctx, &format!("{version} (in-process broker) starting"), "broker.starting");
            ctx.health.set_ready(true, "serving");
            // The broker's own counters become this component's, also when it ends by a crash.
            let mut counts = SyncCounts { broker: broker.clone(), ctx: ctx.clone(), seen: broker.stats() };
            tick_uptime(&ctx, &uptime, || counts.sync()).await;
            drop(counts);
            announce(&ctx, &format!("{version} (in-process broker) terminating"), "broker.terminating");
            Ok(())
        }
        BrokerBackend::Embedded { internal, listen, prebound, stats } => {
            let taken = prebound.lock().unwrap_or_else(PoisonError::into_inner).take();
            let listener = match taken {
                Some(l) => tokio::net::TcpListener::from_std(l)?,
                None => tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen for MQTT on {listen}: {e}"))?,
            };
            announce(&ctx, &format!("{version} (rumqttd) starting on {listen}"), "broker.starting");
            ctx.health.set_ready(true, "serving");
            let serve = serve_front(listener, internal, stats.clone());
            tokio::pin!(serve);
            // PUBLISH packets through the front proxy are this component's records in and out; messages
            // rumqttd skipped for a subscriber too far behind are its drops.
            let counts = || (stats.publishes_to_upstream(), stats.publishes_to_client(), skipped_ahead());
            let mut seen = counts();
            let mut sync = || {
                let now = counts();
                ctx.metrics.records_in.inc_by(now.0.saturating_sub(seen.0));
                ctx.metrics.records_out.inc_by(now.1.saturating_sub(seen.1));
                let skipped = now.2.saturating_sub(seen.2);
                if skipped > 0 {
                    ctx.metrics.dropped_n("skipped_ahead", skipped);
                    tracing::warn!(
                        component = %ctx.name,
                        skipped,
                        "MQTT_BROKER dropped messages: a subscriber fell further behind than the broker \
                         keeps (8 MiB per subscription) and was moved ahead to the oldest message held"
                    );
                }
                seen = now;
            };
            tokio::select! {
                biased;
                res = &mut serve => res.map_err(|e| anyhow::anyhow!("MQTT listener on {listen} failed: {e}"))?,
                _ = tick_uptime(&ctx, &uptime, &mut sync) => {}
            }
            sync();
            announce(&ctx, &format!("{version} (rumqttd) terminating"), "broker.terminating");
            Ok(())
        }
        BrokerBackend::External(url) => {
            let target = format!("{}:{}", url.host, url.port);
            ctx.trace("broker.external", &json!({"url": url.to_string()}));
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    biased;
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                    _ = tick.tick() => {}
                }
                let probe =
                    tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(&target))
                        .await;
                let reachable = matches!(probe, Ok(Ok(_)));
                ctx.health.set_ready(reachable, if reachable { "reachable" } else { "unreachable" });
                if reachable {
                    uptime.inc();
                }
            }
        }
    }
}

fn announce(ctx: &Ctx, line: &str, kind: &str) {
    ctx.platform_log(&crate::kernel::logsink::LogStyle::Docker { container: "mqtt".into() }, "INFO", line);
    ctx.trace(kind, &json!({"log": line}));
}

/// Adds a second to the uptime every second until shutdown, calling `each_second` too.
async fn tick_uptime(ctx: &Ctx, uptime: &IntCounter, mut each_second: impl FnMut()) {
    let mut next = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        uptime.inc();
        each_second();
        next += Duration::from_secs(1);
    }
}

/// Copies the in-process broker's message counts into the component's metrics (each second, and when
/// dropped — which a crash does too).
struct SyncCounts {
    broker: SimBroker,
    ctx: Ctx,
    seen: SimBrokerStats,
}

impl SyncCounts {
    fn sync(&mut self) {
        let now = self.broker.stats();
        let m = &self.ctx.metrics;
        m.records_in.inc_by(now.messages_received.saturating_sub(self.seen.messages_received));
        m.records_out.inc_by(now.messages_routed.saturating_sub(self.seen.messages_routed));
        m.dropped_n("subscriber_offline", now.dropped_offline.saturating_sub(self.seen.dropped_offline));
        m.dropped_n("queue_overflow", now.dropped_overflow.saturating_sub(self.seen.dropped_overflow));
        self.seen = now;
    }
}

impl Drop for SyncCounts {
    fn drop(&mut self) {
        self.sync();
    }
}

/// Takes the in-process broker down when the component ends, however it ends (a crash included).
struct SetDownOnDrop(SimBroker);

impl Drop for SetDownOnDrop {
    fn drop(&mut self) {
        self.0.set_up(false);
    }
}
