//! `order-updater` (`ORDER-UPDATER`): consumes `poke-orders-state` (group `order-updater`) and writes each decision back
//! through the order API: `GET /orders/{id}`, skip if `reversed`, else `PUT` the new state, then commit.
//! On any error it waits 5 s and retries from the committed offset, forever — as the reference does.

use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::http::ApiClient;
use super::model::{Order, OrderState};
use super::service::{STATE_TOPIC, UPDATER_GROUP};
use crate::bus::ConsumerRecord;
use crate::bus::backend::BusClient;
use crate::bus::kafka_cluster::BusHandle;
use crate::kernel::component::Ctx;
use crate::topology::BuildCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::transport::link::Link;

/// `kind = "order-updater"`.
#[derive(Clone, Debug, Deserialize)]
pub struct OrderUpdaterConfig {
    /// The `kafka-cluster` it consumes from.
    pub bus: String,
    /// The `order-api` it writes through.
    pub api: String,
    /// Pause after an error.
    #[serde(default = "five_seconds", with = "humantime_serde")]
    pub retry: Duration,
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

impl ComponentKind for OrderUpdaterConfig {
    const KIND: &'static str = "order-updater";
    const NAMESPACE: &'static str = "orders";

    fn references(&self) -> Vec<Reference<'_>> {
        vec![
            Reference::new("bus", &self.bus, &["kafka-cluster"], Hop::From),
            Reference::new("api", &self.api, &["order-api"], Hop::To),
        ]
    }

    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let BusHandle { client: bus, .. } = cx.handle(&self.bus)?;
        let http = ApiClient::for_component(cx, &self.api)?;
        let (fetch, api) = (cx.link(&self.bus, name)?, cx.link(name, &self.api)?);
        let retry = self.retry;
        cx.add(name, move |ctx| run(ctx, retry, bus.clone(), http.clone(), fetch.clone(), api.clone()))
    }
}

/// Runs the updater.
pub async fn run(
    ctx: Ctx,
    retry: Duration,
    bus: BusClient,
    client: ApiClient,
    fetch: Arc<Link>,
    api: Arc<Link>,
) -> anyhow::Result<()> {
    let mut consumer = bus.consumer(UPDATER_GROUP, &ctx.name, true)?;
    consumer.subscribe(&[STATE_TOPIC])?;
    ctx.health.set_ready(true, "consuming");
    'outer: loop {
        let records = match fetch.gate().await {
            Err(e) => Err(e.to_string()),
            Ok(()) => tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => break,
                r = consumer.poll(10) => r.map_err(|e| e.to_string()),
            },
        };
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(component = %ctx.name, "poll failed: {e}");
                if ctx.sleep_or_stop(retry).await {
                    break;
                }
                continue;
            }
        };
        for r in &records {
            ctx.metrics.records_in.inc();
            match update(&ctx, &client, &api, r).await {
                Ok(()) => {
                    ctx.metrics.records_out.inc();
                    if let Err(e) = consumer.commit(&r.topic, r.partition, r.offset + 1) {
                        tracing::warn!(component = %ctx.name, "commit failed: {e}");
                    }
                }
                Err(e) => {
                    tracing::warn!(component = %ctx.name, "update from {}-{}@{} failed, retrying in {retry:?}: {e}", r.topic, r.partition, r.offset);
                    ctx.trace(
                        "update.failed",
                        &json!({"partition": r.partition, "offset": r.offset, "error": e}),
                    );
                    // Everything fetched and not committed is read again.
                    for (topic, partition) in consumer.assignment() {
                        let _ = consumer.seek_to_committed(&topic, partition);
                    }
                    if ctx.sleep_or_stop(retry).await {
                        break 'outer;
                    }
                    continue 'outer;
                }
            }
        }
    }
    consumer.close();
    Ok(())
}

/// GET, then PUT unless reversed.
async fn update(ctx: &Ctx, client: &ApiClient, api: &Link, r: &ConsumerRecord) -> Result<(), String> {
    let decided = Order::from_kafka_json(&String::from_utf8_lossy(&r.value))
        .map_err(|e| format!("bad message: {e}"))?;
    let path = format!("/orders/{}", decided.id);
    api.gate().await.map_err(|e| e.to_string())?;
    let current = client.send(Method::GET, &path, None).await.map_err(|e| e.to_string())?;
    if current.status != StatusCode::OK {
        return Err(format!("GET {path}: {}", current.status));
    }
    let current: Order = serde_json::from_slice(&current.body).map_err(|e| format!("GET {path}: {e}"))?;
    if current.state == OrderState::Reversed {
        tracing::info!(component = %ctx.name, "order {} is reversed; not updating it to {}", decided.id, decided.state);
        ctx.trace_record("update.skipped", &json!({"id": decided.id}));
        return Ok(());
    }
    let body = serde_json::to_vec(&json!({"state": decided.state})).map_err(|e| e.to_string())?;
    api.gate().await.map_err(|e| e.to_string())?;
    let put = client.send(Method::PUT, &path, Some(body)).await.map_err(|e| e.to_string())?;
    if put.status != StatusCode::OK {
        return Err(format!("PUT {path}: {}", put.status));
    }
    ctx.trace_record("update.done", &json!({"id": decided.id, "state": decided.state.as_str()}));
    Ok(())
}
