//! `fraud-detector` (`DETECTIVE-PIKACHU`): the fraud detector, `replicas` supervised components
//! (`DETECTIVE-PIKACHU-0` …), all in group `poke-order-consumer`.
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

use prometheus::IntCounter;
use serde::Deserialize;

use super::fraud::is_fraud;
use super::model::{Order, OrderState};
use super::service::{DETECTIVE_GROUP, DLQ_TOPIC, ORDERS_TOPIC, STATE_TOPIC, millis, produce};
use crate::bus::backend::{AnyProducer, BusClient};
use crate::bus::kafka_cluster::BusHandle;
use crate::bus::{Acks, ConsumerRecord};
use crate::kernel::component::Ctx;
use crate::topology::BuildCx;
use crate::topology::check::CheckCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::transport::link::Link;

/// What the detector does with a message it cannot parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PoisonMode {
    /// Seek back and retry forever, stalling the partition (the reference).
    #[default]
    Retry,
    /// Park it on `poke-orders-dlq` and move on.
    Dlq,
}

/// `kind = "fraud-detector"`.
#[derive(Clone, Debug, Deserialize)]
pub struct FraudDetectorConfig {
    /// The `kafka-cluster`.
    pub bus: String,
    /// Replicas (consumer group members), named `<name>-0` … `<name>-(n-1)`.
    #[serde(default = "three")]
    pub replicas: u32,
    /// What it does with unparsable messages.
    #[serde(default)]
    pub poison: PoisonMode,
}

fn three() -> u32 {
    3
}

impl ComponentKind for FraudDetectorConfig {
    const KIND: &'static str = "fraud-detector";
    const NAMESPACE: &'static str = "orders";

    fn instances(&self, name: &str) -> Vec<String> {
        (0..self.replicas).map(|i| format!("{name}-{i}")).collect()
    }

    fn references(&self) -> Vec<Reference<'_>> {
        vec![Reference::new("bus", &self.bus, &["kafka-cluster"], Hop::Both)]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.require(self.replicas > 0, "replicas", "must be at least 1");
    }

    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let BusHandle { client, .. } = cx.handle(&self.bus)?;
        for instance in ComponentKind::instances(self, name) {
            let (fetch, publish) = (cx.link(&self.bus, &instance)?, cx.link(&instance, &self.bus)?);
            let unparsable = cx
                .metrics(&instance)
                .counter("poke_order_unparsable_messages_total", "Messages a consumer could not parse.")?;
            let (bus, poison) = (client.clone(), self.poison);
            cx.add(&instance, move |ctx| {
                run(ctx, poison, unparsable.clone(), bus.clone(), fetch.clone(), publish.clone())
            })?;
        }
        Ok(())
    }
}

/// librdkafka's default `message.timeout.ms` (the detector's producer sets none).
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(300);
/// Pause before polling again after a failure (the reference polls with a 1 s timeout).
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs one replica.
pub async fn run(
    ctx: Ctx,
    poison: PoisonMode,
    unparsable: IntCounter,
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
            let ok = handle(&ctx, poison, &unparsable, producer.as_ref(), &publish, &r).await;
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
    poison: PoisonMode,
    unparsable: &IntCounter,
    producer: &AnyProducer,
    publish: &Link,
    r: &ConsumerRecord,
) -> bool {
    let now_ms = millis(ctx.clock.now().naive_utc());
    let text = String::from_utf8_lossy(&r.value);
    let mut order = match Order::from_kafka_json(&text) {
        Ok(o) => o,
        Err(e) => {
            unparsable.inc();
            return match poison {
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
