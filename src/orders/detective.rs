//! `DETECTIVE-PIKACHU`: the fraud detector, one replica per component, all in group `poke-order-consumer`.
//!
//! For each order on `poke-orders`: decide `rejected` or `success` by the fraud rule, produce the order
//! with its state to `poke-orders-state`, commit that message. On a message it cannot parse it does
//! what the reference does — seek back to the committed offset and try again, forever, which stalls
//! that partition — or, with `poison = "dlq"`, parks it on `poke-orders-dlq` and moves on.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::fraud::is_fraud;
use super::model::{Order, OrderState};
use super::service::{DETECTIVE_GROUP, DLQ_TOPIC, ORDERS_TOPIC, Orders, STATE_TOPIC, produce};
use crate::bus::backend::{AnyProducer, BusClient};
use crate::bus::{Acks, ConsumerRecord};
use crate::kernel::component::Ctx;
use crate::topology::flow::PoisonMode;
use crate::transport::link::Link;

/// librdkafka's default `message.timeout.ms` (the detector's producer sets none).
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(300);
/// Pause before polling again after a failure (the reference polls with a 1 s timeout).
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs one replica.
pub async fn run(
    ctx: Ctx,
    orders: Orders,
    bus: BusClient,
    fetch: Arc<Link>,
    publish: Arc<Link>,
) -> anyhow::Result<()> {
    let mut consumer = bus.consumer(DETECTIVE_GROUP, &ctx.name, true)?;
    consumer.subscribe(&[ORDERS_TOPIC])?;
    let producer = bus.producer(&ctx.name, Acks::All)?;
    ctx.health.set_ready(true, "consuming");
    loop {
        if let Err(e) = fetch.gate().await {
            tracing::warn!(component = %ctx.name, "fetch failed: {e}");
            if ctx.sleep_or_stop(RETRY_PAUSE).await {
                break;
            }
            continue;
        }
        let records = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            r = consumer.poll(10) => r,
        };
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(component = %ctx.name, "poll failed: {e}");
                if ctx.sleep_or_stop(RETRY_PAUSE).await {
                    break;
                }
                continue;
            }
        };
        // Partitions sent back to their committed offset: the rest of their records wait for the next poll.
        let mut rewound = BTreeSet::new();
        for r in records {
            if rewound.contains(&r.partition) {
                continue;
            }
            ctx.metrics.records_in.inc();
            let ok = handle(&ctx, &orders, &producer, &publish, &r).await;
            if ok {
                if let Err(e) = consumer.commit(&r.topic, r.partition, r.offset + 1) {
                    tracing::warn!(component = %ctx.name, "commit of {}-{}@{} failed: {e}", r.topic, r.partition, r.offset);
                }
            } else {
                rewound.insert(r.partition);
                if let Err(e) = consumer.seek_to_committed(&r.topic, r.partition) {
                    tracing::warn!(component = %ctx.name, "seek back on {}-{} failed: {e}", r.topic, r.partition);
                }
            }
        }
        if !rewound.is_empty() && ctx.sleep_or_stop(RETRY_PAUSE).await {
            break;
        }
    }
    consumer.close();
    Ok(())
}

/// Decides one message; false when it must be retried (seek back).
async fn handle(
    ctx: &Ctx,
    orders: &Orders,
    producer: &AnyProducer,
    publish: &Link,
    r: &ConsumerRecord,
) -> bool {
    let now_ms = super::service::millis(orders.now());
    let text = String::from_utf8_lossy(&r.value);
    let mut order = match Order::from_kafka_json(&text) {
        Ok(o) => o,
        Err(e) => {
            orders.metrics.unparsable.with_label_values(&[&ctx.name]).inc();
            return match orders.cfg.poison {
                PoisonMode::Retry => {
                    tracing::error!(component = %ctx.name, "Error processing message {}-{}@{}: {e}", r.topic, r.partition, r.offset);
                    ctx.trace(
                        "poison.retry",
                        &json!({"partition": r.partition, "offset": r.offset, "error": e.to_string()}),
                    );
                    false
                }
                PoisonMode::Dlq => {
                    let parked = produce(
                        publish,
                        producer,
                        DLQ_TOPIC,
                        None,
                        r.value.clone(),
                        now_ms,
                        DEFAULT_MESSAGE_TIMEOUT,
                    )
                    .await;
                    match parked {
                        Ok(meta) => {
                            tracing::warn!(component = %ctx.name, "parked unparsable message {}-{}@{} on {DLQ_TOPIC}", r.topic, r.partition, r.offset);
                            ctx.trace("poison.parked", &json!({"partition": r.partition, "offset": r.offset, "dlq_offset": meta.offset}));
                            ctx.drop_record(
                                "unparsable",
                                json!({"partition": r.partition, "offset": r.offset}),
                            );
                            true
                        }
                        Err(e) => {
                            tracing::error!(component = %ctx.name, "cannot park message on {DLQ_TOPIC}: {e}");
                            false
                        }
                    }
                }
            };
        }
    };
    order.state = if is_fraud(order.user_id, &order.pokemon, order.price) {
        OrderState::Rejected
    } else {
        OrderState::Success
    };
    let value = Bytes::from(order.to_kafka_json());
    match produce(publish, producer, STATE_TOPIC, None, value, now_ms, DEFAULT_MESSAGE_TIMEOUT).await {
        Ok(_) => {
            ctx.metrics.records_out.inc();
            ctx.trace_record(
                "order.decided",
                &json!({"id": order.id, "state": order.state.as_str(), "partition": r.partition}),
            );
            true
        }
        Err(e) => {
            tracing::error!(component = %ctx.name, "Message delivery failed for order {}: {e}", order.id);
            false
        }
    }
}
