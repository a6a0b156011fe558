//! The bus as supervised components: one per broker (`KAFKA-1` … `KAFKA-n`) and the cluster controller
//! (`KAFKA`).
//!
//! A broker component running means the broker is up: stopping or crashing it takes the broker out of
//! every ISR and re-elects leaders — a broker reboot is a stop followed by a start. The controller
//! enforces retention and publishes per-group lag and rebalance counts; while it is down the cluster is
//! unreachable (every hop to `KAFKA` is refused).

use std::time::Duration;

use prometheus::IntGaugeVec;
use serde_json::json;

use super::Bus;
use crate::kernel::component::Ctx;

/// How often the controller refreshes lag and enforces retention.
pub const CONTROLLER_TICK: Duration = Duration::from_secs(5);

/// Marks a broker down when its component ends, however it ends.
struct BrokerDownOnDrop(Bus, u32);

impl Drop for BrokerDownOnDrop {
    fn drop(&mut self) {
        if let Err(e) = self.0.set_broker_up(self.1, false) {
            tracing::error!("cannot mark broker {} down: {e}", self.1);
        }
    }
}

/// Runs broker `id`.
pub async fn run_broker(ctx: Ctx, bus: Bus, id: u32) -> anyhow::Result<()> {
    bus.set_broker_up(id, true)?;
    let _down = BrokerDownOnDrop(bus.clone(), id);
    let line = format!("[KafkaServer id={id}] started");
    tracing::info!(component = %ctx.name, "{line}");
    ctx.trace("broker.up", &json!({"broker": id, "log": line}));
    ctx.health.set_ready(true, "serving");
    ctx.shutdown.cancelled().await;
    let line = format!("[KafkaServer id={id}] shut down completed");
    tracing::info!(component = %ctx.name, "{line}");
    ctx.trace("broker.down", &json!({"broker": id, "log": line}));
    Ok(())
}

/// Runs the controller: retention and lag.
pub async fn run_controller(
    ctx: Ctx,
    bus: Bus,
    lag: IntGaugeVec,
    rebalances: IntGaugeVec,
) -> anyhow::Result<()> {
    ctx.health.set_ready(true, "serving");
    let admin = bus.admin();
    loop {
        let removed = admin.enforce_retention(ctx.clock.now().timestamp_millis());
        if removed > 0 {
            ctx.trace("bus.retention", &json!({"records": removed}));
        }
        for group in admin.list_groups() {
            let Ok(desc) = admin.describe_group(&group) else { continue };
            rebalances.with_label_values(&[&group]).set(desc.rebalances as i64);
            for p in &desc.offsets {
                let base = p.committed.unwrap_or(p.log_start);
                let value = p.high_watermark.saturating_sub(base) as i64;
                lag.with_label_values(&[&group, &p.topic, &p.partition.to_string()]).set(value);
            }
        }
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(CONTROLLER_TICK) => {}
        }
    }
}
