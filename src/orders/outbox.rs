//! `OUTBOX-RELAY`: the fix for the dual write. The API writes each order and its message in one
//! transaction; this relay produces pending outbox rows to their topic and marks them sent, retrying
//! whatever fails on the next round. A crash between produce and mark re-sends (at-least-once), which
//! the detector's idempotent decision tolerates.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::service::{Orders, millis};
use crate::kernel::component::Ctx;

/// How often the relay looks at the outbox.
pub const POLL: Duration = Duration::from_millis(100);

/// Runs the relay.
pub async fn run(ctx: Ctx, orders: Orders) -> anyhow::Result<()> {
    ctx.health.set_ready(true, "relaying");
    loop {
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(POLL) => {}
        }
        let rows = match orders.db(|s| async move { s.outbox_pending(100).await }).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(component = %ctx.name, "cannot read the outbox: {e}");
                continue;
            }
        };
        for row in rows {
            ctx.metrics.records_in.inc();
            let ts = millis(row.created_at);
            let sent = orders.publish(&row.topic, Bytes::from(row.payload.clone()), ts).await;
            match sent {
                Ok(meta) => {
                    let now = orders.now();
                    if let Err(e) =
                        orders.db(|s| async move { s.outbox_mark_sent(&[row.id], now).await }).await
                    {
                        tracing::warn!(component = %ctx.name, "sent outbox row {} but could not mark it: {e}", row.id);
                    }
                    ctx.metrics.records_out.inc();
                    ctx.trace_record(
                        "order.published",
                        &json!({"id": row.order_id, "partition": meta.partition, "offset": meta.offset}),
                    );
                }
                Err(e) => {
                    tracing::warn!(component = %ctx.name, "outbox row {} not sent yet: {e}", row.id);
                    break;
                }
            }
        }
    }
}
