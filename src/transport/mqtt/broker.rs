//! `MQTT_BROKER` as a supervised component, whichever broker backs it.
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

use prometheus::{IntCounter, Opts};
use serde_json::json;

use super::client::BrokerUrl;
use super::embedded::{ProxyStats, serve_front};
use super::sim_broker::{SimBroker, SimBrokerStats};
use crate::kernel::component::Ctx;
use crate::kernel::metrics::{Metrics, MetricsError};

/// What backs the component.
#[derive(Clone)]
pub enum BrokerBackend {
    /// In-process broker.
    Sim(SimBroker),
    /// Embedded rumqttd behind our front listener.
    Embedded {
        /// rumqttd's internal address.
        internal: SocketAddr,
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

/// Registers `broker_uptime{job="mqtt"}`.
pub fn register_uptime(metrics: &Metrics) -> Result<IntCounter, MetricsError> {
    let c = IntCounter::with_opts(
        Opts::new(
            "broker_uptime",
            "Seconds the MQTT broker has been serving (stands still while it is down).",
        )
        .const_label("job", "mqtt"),
    )?;
    metrics.register(&c)?;
    Ok(c)
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
            let serve = serve_front(listener, internal, stats);
            tokio::pin!(serve);
            tokio::select! {
                biased;
                res = &mut serve => res.map_err(|e| anyhow::anyhow!("MQTT listener on {listen} failed: {e}"))?,
                _ = tick_uptime(&ctx, &uptime, || {}) => {}
            }
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
