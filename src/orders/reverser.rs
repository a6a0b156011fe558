//! `ORDER-REVERSED`: every minute (first run after 1 s), sets `pending` orders older than
//! `expired_order_minutes` to `reversed` — the reference's "unwanted state of the system".

use std::time::Duration;

use serde_json::json;

use super::model::OrderState;
use super::service::Orders;
use crate::kernel::component::Ctx;

/// Runs the reverser.
pub async fn run(ctx: Ctx, orders: Orders) -> anyhow::Result<()> {
    ctx.health.set_ready(true, "scheduled");
    let mut next = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(next) => {}
        }
        next += orders.cfg.reversal_every;
        // The flow bounds the minutes; an unrepresentable cutoff would simply expire nothing.
        let age = chrono::Duration::try_minutes(orders.cfg.expired_order_minutes as i64)
            .unwrap_or(chrono::Duration::MAX);
        let cutoff = orders.now().checked_sub_signed(age).unwrap_or(chrono::NaiveDateTime::MIN);
        match orders.db(|s| async move { s.reverse_expired(cutoff).await }).await {
            Ok(ids) => {
                if !ids.is_empty() {
                    tracing::info!(component = %ctx.name, "reversed {} expired orders", ids.len());
                }
                orders.metrics.reversals.inc_by(ids.len() as u64);
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
