//! `POKE-ORDERS-DB`: the order store as a component. While it runs the services can reach the store;
//! stopped, every query through a link to it is refused and the API answers 503 until it is back.
//! It also keeps `poke_orders{state}` current.

use std::time::Duration;

use super::service::Orders;
use crate::kernel::component::Ctx;

/// How often the per-state gauge is refreshed.
pub const REFRESH: Duration = Duration::from_secs(5);

/// Runs the database component.
pub async fn run(ctx: Ctx, orders: Orders) -> anyhow::Result<()> {
    tracing::info!(component = %ctx.name, "{} store at {}", orders.store.backend(), orders.store.place());
    ctx.health.set_ready(true, "serving");
    loop {
        match orders.store.counts_by_state().await {
            Ok(counts) => {
                for (state, n) in counts {
                    orders.metrics.by_state.with_label_values(&[state.as_str()]).set(n as i64);
                }
                ctx.health.set_ready(true, "serving");
            }
            Err(e) => {
                ctx.health.set_ready(false, "unreachable");
                tracing::warn!(component = %ctx.name, "store unreachable: {e}");
            }
        }
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}
