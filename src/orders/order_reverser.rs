//! `order-reverser` (`ORDER-REVERSED`): every minute (first run after 1 s), sets `pending` orders older
//! than `expired_order_minutes` to `reversed` — the reference's APScheduler job and its "unwanted state of
//! the system".

use std::time::Duration;

use prometheus::IntCounter;
use serde::Deserialize;
use serde_json::json;

use super::model::OrderState;
use super::service::Orders;
use crate::kernel::component::Ctx;
use crate::kernel::hooks::IoMethod;
use crate::topology::BuildCx;
use crate::topology::check::CheckCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::topology::flow::MAX_RUN_TIME;

/// `kind = "order-reverser"`.
#[derive(Clone, Debug, Deserialize)]
pub struct OrderReverserConfig {
    /// The `order-store`.
    pub store: String,
    /// The `kafka-cluster` (state-change events go to `poke-order-events`).
    pub bus: String,
    /// Pending orders older than this many minutes are reversed.
    #[serde(default = "one")]
    pub expired_order_minutes: u64,
    /// How often it runs.
    #[serde(default = "one_minute", with = "humantime_serde")]
    pub every: Duration,
    /// The producer's `message.timeout.ms`.
    #[serde(default = "two_seconds", with = "humantime_serde")]
    pub produce_timeout: Duration,
}

fn one() -> u64 {
    1
}
fn one_minute() -> Duration {
    Duration::from_secs(60)
}
fn two_seconds() -> Duration {
    Duration::from_secs(2)
}

impl ComponentKind for OrderReverserConfig {
    const KIND: &'static str = "order-reverser";
    const NAMESPACE: &'static str = "orders";

    fn references(&self) -> Vec<Reference<'_>> {
        vec![
            Reference::new("store", &self.store, &["order-store"], Hop::To),
            Reference::new("bus", &self.bus, &["kafka-cluster"], Hop::To),
        ]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        let max = MAX_RUN_TIME.as_secs() / 60;
        cx.require(
            self.expired_order_minutes <= max,
            "expired_order_minutes",
            format!("must be at most {max} (ten years), got {}", self.expired_order_minutes),
        );
        cx.require(!self.every.is_zero(), "every", "must be more than 0");
    }

    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let orders = Orders::new(cx, name, &self.store, &self.bus, "poke-producer", self.produce_timeout)?;
        let reversals =
            cx.metrics(name).counter("poke_orders_reversed_total", "Orders reversed after expiring.")?;
        let cfg = self.clone();
        cx.add(name, move |ctx| run(ctx, cfg.clone(), orders.clone(), reversals.clone()))
    }
}

/// Runs the reverser.
pub async fn run(
    ctx: Ctx,
    cfg: OrderReverserConfig,
    orders: Orders,
    reversals: IntCounter,
) -> anyhow::Result<()> {
    ctx.health.set_ready(true, "scheduled");
    let mut next = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(next) => {}
        }
        next += cfg.every;
        // The flow bounds the minutes; an unrepresentable cutoff would simply expire nothing.
        let age =
            chrono::Duration::try_minutes(cfg.expired_order_minutes as i64).unwrap_or(chrono::Duration::MAX);
        let cutoff = orders.now().checked_sub_signed(age).unwrap_or(chrono::NaiveDateTime::MIN);
        match orders.db(IoMethod::Write, "orders", |s| async move { s.reverse_expired(cutoff).await }).await {
            Ok(ids) => {
                if !ids.is_empty() {
                    tracing::info!(component = %ctx.name, "reversed {} expired orders", ids.len());
                }
                reversals.inc_by(ids.len() as u64);
                ctx.metrics.records_out.inc_by(ids.len() as u64);
                ctx.trace("orders.reversed", &json!({"ids": ids}));
                for id in ids {
                    orders.changed(id, OrderState::Pending, OrderState::Reversed, &ctx.name).await;
                }
            }
            Err(e) => {
                tracing::error!(component = %ctx.name, "reversal run failed: {e}");
                ctx.trace("orders.reversal_failed", &json!({"error": e.to_string()}));
            }
        }
    }
}
