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
use super::backend::BusClient;
use super::group::PartitionLag;
use crate::kernel::component::Ctx;

/// How often the controller refreshes lag and enforces retention.
pub const CONTROLLER_TICK: Duration = Duration::from_secs(5);

/// The groups whose lag the controller follows on a real cluster.
const GROUPS: [(&str, &str); 2] =
    [("poke-order-consumer", "poke-orders"), ("order-updater", "poke-orders-state")];

fn set_lag(gauge: &IntGaugeVec, group: &str, offsets: &[PartitionLag]) {
    for p in offsets {
        gauge.with_label_values(&[group, &p.topic, &p.partition.to_string()]).set(p.lag as i64);
    }
}

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

/// Runs the controller: retention (embedded bus) and lag (either bus).
pub async fn run_controller(
    ctx: Ctx,
    bus: BusClient,
    lag: IntGaugeVec,
    rebalances: IntGaugeVec,
) -> anyhow::Result<()> {
    ctx.health.set_ready(true, "serving");
    loop {
        match bus.embedded().map(Bus::admin) {
            Some(admin) => {
                let removed = admin.enforce_retention(ctx.clock.now().timestamp_millis());
                if removed > 0 {
                    ctx.trace("bus.retention", &json!({"records": removed}));
                }
                for group in admin.list_groups() {
                    let Ok(desc) = admin.describe_group(&group) else { continue };
                    rebalances.with_label_values(&[&group]).set(desc.rebalances as i64);
                    set_lag(&lag, &group, &desc.offsets);
                }
            }
            None => {
                for (group, topic) in GROUPS {
                    match bus.consumer_lag(group, topic).await {
                        Ok(offsets) => set_lag(&lag, group, &offsets),
                        Err(e) => tracing::debug!(component = %ctx.name, "lag of {group} unknown: {e}"),
                    }
                }
            }
        }
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(CONTROLLER_TICK) => {}
        }
    }
}
