//! What the order services share in a run: store, bus, links, metrics, and the ledger that checks the
//! run's invariants.
//!
//! Every database query and every produce goes through a link (`POKE-ORDER-API->POKE-ORDERS-DB`,
//! `POKE-ORDER-API->KAFKA`, …) so that network faults, partitions and a stopped database or broker reach
//! the services the way they would reach the real ones.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use chrono::NaiveDateTime;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts};
use serde::Serialize;
use serde_json::json;

use super::fraud::is_fraud;
use super::model::{Order, OrderState};
use super::store::{OrderStore, StoreError};
use rand::Rng as _;

use crate::bus::backend::{AnyProducer, BusClient};
use crate::bus::{BusError, RecordMeta};
use crate::kernel::clock::Clock;
use crate::kernel::metrics::{Metrics, MetricsError};
use crate::kernel::seed::SharedRng;
use crate::kernel::trace::Trace;
use crate::topology::flow::OrdersSection;
use crate::transport::link::{GateError, Link};

/// Topic of new orders.
pub const ORDERS_TOPIC: &str = "poke-orders";
/// Topic of orders with their decided state.
pub const STATE_TOPIC: &str = "poke-orders-state";
/// Topic of the process-mining event log.
pub const EVENTS_TOPIC: &str = "poke-order-events";
/// Topic where `dlq` mode parks unparsable messages.
pub const DLQ_TOPIC: &str = "poke-orders-dlq";
/// Consumer group of `DETECTIVE-PIKACHU`.
pub const DETECTIVE_GROUP: &str = "poke-order-consumer";
/// Consumer group of `ORDER-UPDATER`.
pub const UPDATER_GROUP: &str = "order-updater";

/// The order services' metrics.
#[derive(Clone)]
pub struct OrderMetrics {
    /// Orders by state (refreshed by the database component).
    pub by_state: IntGaugeVec,
    /// Produces of new orders that failed (the order stays pending).
    pub publish_failures: IntCounter,
    /// State changes, by from and to.
    pub transitions: IntCounterVec,
    /// Orders reversed by `ORDER-REVERSED`.
    pub reversals: IntCounter,
    /// API requests, by method, route and status.
    pub requests: HistogramVec,
    /// Messages a consumer could not parse, by consumer.
    pub unparsable: IntCounterVec,
    /// Consumer lag by group, topic and partition (refreshed by the bus controller).
    pub lag: IntGaugeVec,
    /// Rebalances by group.
    pub rebalances: IntGaugeVec,
}

impl OrderMetrics {
    /// Registers the families.
    pub fn register(m: &Metrics) -> Result<OrderMetrics, MetricsError> {
        let by_state =
            IntGaugeVec::new(Opts::new("poke_orders", "Orders in the store by state."), &["state"])?;
        let publish_failures = IntCounter::with_opts(Opts::new(
            "poke_order_publish_failures_total",
            "New orders whose produce to poke-orders failed (they stay pending).",
        ))?;
        let transitions = IntCounterVec::new(
            Opts::new("poke_order_state_changes_total", "Order state changes."),
            &["from", "to"],
        )?;
        let reversals = IntCounter::with_opts(Opts::new(
            "poke_orders_reversed_total",
            "Orders reversed after expiring.",
        ))?;
        let requests = HistogramVec::new(
            HistogramOpts::new("poke_order_api_request_duration_seconds", "Order API request latency.")
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0]),
            &["method", "route", "status"],
        )?;
        let unparsable = IntCounterVec::new(
            Opts::new("poke_order_unparsable_messages_total", "Messages a consumer could not parse."),
            &["consumer"],
        )?;
        let lag = IntGaugeVec::new(
            Opts::new("bus_consumer_lag", "Records not yet committed by a group, per partition."),
            &["group", "topic", "partition"],
        )?;
        let rebalances =
            IntGaugeVec::new(Opts::new("bus_group_rebalances", "Rebalances of a group."), &["group"])?;
        m.register(&by_state)?;
        m.register(&publish_failures)?;
        m.register(&transitions)?;
        m.register(&reversals)?;
        m.register(&requests)?;
        m.register(&unparsable)?;
        m.register(&lag)?;
        m.register(&rebalances)?;
        Ok(OrderMetrics {
            by_state,
            publish_failures,
            transitions,
            reversals,
            requests,
            unparsable,
            lag,
            rebalances,
        })
    }
}

/// What the run saw happen to orders, to check the invariants at the end.
#[derive(Default)]
struct LedgerData {
    created: BTreeSet<i64>,
    transitions: BTreeMap<i64, Vec<(OrderState, OrderState)>>,
}

/// Created orders and every state change, as the services made them.
#[derive(Clone, Default)]
pub struct Ledger(Arc<Mutex<LedgerData>>);

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, LedgerData> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a new order.
    pub fn created(&self, id: i64) {
        self.lock().created.insert(id);
    }

    /// Notes a state change.
    pub fn changed(&self, id: i64, from: OrderState, to: OrderState) {
        self.lock().transitions.entry(id).or_default().push((from, to));
    }

    /// Orders created so far.
    pub fn created_count(&self) -> usize {
        self.lock().created.len()
    }
}

/// The invariants of a run, checked against the store.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Invariants {
    /// Orders in the store by state.
    pub by_state: BTreeMap<String, u64>,
    /// Orders the API created.
    pub created: u64,
    /// Created orders missing from the store.
    pub missing: Vec<i64>,
    /// Orders still pending (in flight).
    pub in_flight: u64,
    /// Decided orders whose state disagrees with the fraud rule.
    pub wrong_decision: Vec<i64>,
    /// Orders that changed state in a way the flow does not allow (pending → success|rejected|reversed only).
    pub illegal_transitions: Vec<(i64, String)>,
    /// True when nothing above is wrong.
    pub ok: bool,
}

/// Everything the order services share.
#[derive(Clone)]
pub struct Orders {
    /// `[orders]` of the flow.
    pub cfg: OrdersSection,
    /// The store.
    pub store: OrderStore,
    /// Run clock.
    pub clock: Clock,
    /// Run trace.
    pub trace: Trace,
    /// Metrics.
    pub metrics: OrderMetrics,
    /// Created orders and transitions.
    pub ledger: Ledger,
    /// The API's producer (`poke-producer`, acks=all).
    pub producer: Arc<AnyProducer>,
    /// The bus (for partition metadata).
    pub bus: BusClient,
    /// The producer's random partitioner stream.
    pub partitioner: SharedRng,
    /// API → database.
    pub db_link: Arc<Link>,
    /// API → bus.
    pub kafka_link: Arc<Link>,
    /// The database component's fault hooks (I/O faults on the store).
    pub db_hooks: Arc<crate::kernel::hooks::ComponentHooks>,
}

/// Why a produce did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The hop refused it.
    #[error(transparent)]
    Link(#[from] GateError),
    /// The bus refused it.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Produces `value` through `link`, retrying retriable failures (offline partition, too few in-sync
/// replicas, a refused hop) every 100 ms until `timeout` — librdkafka's `message.timeout.ms`.
pub async fn produce(
    link: &Link,
    producer: &AnyProducer,
    topic: &str,
    partition: Option<u32>,
    value: Bytes,
    timestamp_ms: i64,
    timeout: Duration,
) -> Result<RecordMeta, ProduceError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let attempt = match link.gate().await {
            Ok(()) => producer
                .send(topic, partition, None, value.clone(), timestamp_ms)
                .await
                .map_err(ProduceError::from),
            Err(e) => Err(e.into()),
        };
        let retriable = matches!(
            &attempt,
            Err(ProduceError::Link(_))
                | Err(ProduceError::Bus(
                    BusError::LeaderNotAvailable { .. } | BusError::NotEnoughReplicas { .. }
                ))
        );
        if !retriable || tokio::time::Instant::now() >= deadline {
            return attempt;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// librdkafka's partitioner for records without a key (`consistent_random`): a random partition of all of
/// them; if that one has no leader, one more random pick, available or not. So while a partition is
/// offline some produces still go to it and fail — the reference's failure mode, which a partitioner
/// that only picks available partitions would hide.
pub async fn pick_partition(bus: &BusClient, topic: &str, rng: &SharedRng) -> Option<u32> {
    let desc = bus.describe_topic(topic).await.ok()?;
    let n = desc.partitions.len() as u32;
    if n == 0 {
        return None;
    }
    let mut r = rng.lock();
    let first = r.gen_range(0..n);
    let available = desc.partitions.iter().any(|p| p.id == first && p.leader.is_some());
    Some(if available { first } else { r.gen_range(0..n) })
}

/// Epoch milliseconds of a naive UTC time.
pub fn millis(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis()
}

impl Orders {
    /// The current naive UTC time (the reference's `datetime.utcnow()`).
    pub fn now(&self) -> NaiveDateTime {
        self.clock.now().naive_utc()
    }

    /// Produces a keyless record as the reference's producer does (librdkafka's random partitioner, retries
    /// until `produce_timeout`).
    pub async fn publish(
        &self,
        topic: &str,
        value: Bytes,
        timestamp_ms: i64,
    ) -> Result<RecordMeta, ProduceError> {
        // On a real cluster librdkafka's own partitioner does this (and metadata per produce would be costly).
        let partition = match self.bus.embedded() {
            Some(_) => pick_partition(&self.bus, topic, &self.partitioner).await,
            None => None,
        };
        produce(
            &self.kafka_link,
            &self.producer,
            topic,
            partition,
            value,
            timestamp_ms,
            self.cfg.produce_timeout,
        )
        .await
    }

    /// Runs a store operation through the database link: a refused hop is `Unavailable`.
    pub async fn db<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(OrderStore) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.db_link.gate().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.db_hooks
            .io_write()
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", crate::topology::flow::ORDERS_DB)))?;
        op(self.store.clone()).await
    }

    /// Records a state change: ledger, metric, trace and the process-mining event.
    pub async fn changed(&self, id: i64, from: OrderState, to: OrderState, by: &str) {
        self.ledger.changed(id, from, to);
        self.metrics.transitions.with_label_values(&[from.as_str(), to.as_str()]).inc();
        self.trace.emit(by, "order.state", &json!({"id": id, "from": from.as_str(), "to": to.as_str()}));
        self.event(id, &format!("order {}", to.as_str()), by).await;
    }

    /// Emits `{case, activity, timestamp}` to `poke-order-events`; a failure is logged, not fatal.
    pub async fn event(&self, id: i64, activity: &str, by: &str) {
        let now = self.now();
        let value =
            json!({"case": id, "activity": activity, "timestamp": super::model::python_datetime(&now, 'T')});
        let sent = self.publish(EVENTS_TOPIC, Bytes::from(value.to_string()), millis(now)).await;
        if let Err(e) = sent {
            tracing::warn!(component = by, "event for order {id} not delivered: {e}");
        }
    }

    /// Checks the run's invariants against the store.
    pub async fn invariants(&self) -> Result<Invariants, StoreError> {
        let counts = self.db(|s| async move { s.counts_by_state().await }).await?;
        let mut all = Vec::new();
        let mut skip = 0;
        loop {
            let page = self.db(|s| async move { s.list(None, skip, 1000).await }).await?;
            if page.is_empty() {
                break;
            }
            skip += page.len() as u64;
            all.extend(page);
        }
        let ids: BTreeSet<i64> = all.iter().map(|o| o.id).collect();
        let (created, transitions) = {
            let ledger = self.ledger.lock();
            (ledger.created.clone(), ledger.transitions.clone())
        };
        let missing: Vec<i64> = created.difference(&ids).copied().collect();
        let wrong_decision: Vec<i64> = all
            .iter()
            .filter(|o| match o.state {
                OrderState::Rejected => !is_fraud(o.user_id, &o.pokemon, o.price),
                OrderState::Success => is_fraud(o.user_id, &o.pokemon, o.price),
                _ => false,
            })
            .map(|o: &Order| o.id)
            .collect();
        let mut illegal = Vec::new();
        for (id, changes) in &transitions {
            for (from, to) in changes {
                if *from != OrderState::Pending || *to == OrderState::Pending || *to == OrderState::Failed {
                    illegal.push((*id, format!("{} -> {}", from.as_str(), to.as_str())));
                }
            }
        }
        let in_flight = counts.get(&OrderState::Pending).copied().unwrap_or(0);
        let ok = missing.is_empty() && wrong_decision.is_empty() && illegal.is_empty();
        Ok(Invariants {
            by_state: counts.iter().map(|(s, n)| (s.as_str().to_string(), *n)).collect(),
            created: created.len() as u64,
            missing,
            in_flight,
            wrong_decision,
            illegal_transitions: illegal,
            ok,
        })
    }
}
