//! `outbox-relay` (`OUTBOX-RELAY`): the fix for the dual write. The API writes each order and its message in one
//! transaction; this relay produces pending outbox rows to their topic and marks them sent, retrying
//! whatever fails on the next round. A crash between produce and mark re-sends (at-least-once), which
//! the detector's idempotent decision tolerates.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::order_api::{OrderApiConfig, PublishMode};
use super::service::{Orders, millis};
use crate::kernel::component::Ctx;
use crate::kernel::hooks::IoMethod;
use crate::topology::BuildCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::topology::flow::{ComponentEntry, Flow};

/// `kind = "outbox-relay"`.
#[derive(Clone, Debug, Deserialize)]
pub struct OutboxRelayConfig {
    /// The `order-store` whose outbox it relays.
    pub store: String,
    /// The `kafka-cluster` it produces to.
    pub bus: String,
    /// The producer's `message.timeout.ms`.
    #[serde(default = "two_seconds", with = "humantime_serde")]
    pub produce_timeout: Duration,
}

fn two_seconds() -> Duration {
    Duration::from_secs(2)
}

impl ComponentKind for OutboxRelayConfig {
    const KIND: &'static str = "outbox-relay";
    const NAMESPACE: &'static str = "orders";

    fn references(&self) -> Vec<Reference<'_>> {
        vec![
            Reference::new("store", &self.store, &["order-store"], Hop::To),
            Reference::new("bus", &self.bus, &["kafka-cluster"], Hop::To),
        ]
    }

    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let orders = Orders::new(cx, name, &self.store, &self.bus, "outbox-relay", self.produce_timeout)?;
        cx.add(name, move |ctx| run(ctx, orders.clone()))
    }
}

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
        let rows =
            match orders.db(IoMethod::Read, "outbox", |s| async move { s.outbox_pending(100).await }).await {
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
                        orders
                            .db(IoMethod::Write, "outbox", |s| async move {
                                s.outbox_mark_sent(&[row.id], now).await
                            })
                            .await
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

/// Sets every order API's publish mode; `outbox` adds the relay it needs when the flow has none.
pub fn set_publish(flow: &mut Flow, mode: PublishMode) {
    flow.configure::<OrderApiConfig>(|a| a.publish = mode);
    if mode != PublishMode::Outbox {
        return;
    }
    let apis: Vec<(String, OrderApiConfig)> =
        flow.each::<OrderApiConfig>().map(|(n, a)| (n.clone(), a.clone())).collect();
    for (name, api) in apis {
        if flow.each::<OutboxRelayConfig>().any(|(_, r)| r.store == api.store) {
            continue;
        }
        let relay = if flow.components.contains_key("OUTBOX-RELAY") {
            format!("{name}-OUTBOX-RELAY")
        } else {
            "OUTBOX-RELAY".into()
        };
        let config = OutboxRelayConfig {
            store: api.store.clone(),
            bus: api.bus.clone(),
            produce_timeout: api.produce_timeout,
        };
        let entry = ComponentEntry::new(&relay, Box::new(config));
        flow.components.insert(relay, entry);
    }
}
