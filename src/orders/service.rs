//! What the order services share in a run: store, bus, links, metrics, and the ledger that checks the
//! run's invariants.
//!
//! Every database query and every produce goes through a link (`POKE-ORDER-API->POKE-ORDERS-DB`,
//! `POKE-ORDER-API->KAFKA`, …) so that network faults, partitions and a stopped database or broker reach
//! the services the way they would reach the real ones.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use chrono::NaiveDateTime;
use prometheus::IntCounterVec;
use rangemap::RangeInclusiveSet;
use serde::Serialize;
use serde_json::json;

use super::fraud::is_fraud;
use super::model::OrderState;
use super::store::{OrderStore, StoreError};
use rand::Rng as _;

use crate::bus::backend::{AnyProducer, BusClient};
use crate::bus::kafka_cluster::BusHandle;
use crate::bus::{Acks, BusError, RecordMeta};
use crate::kernel::clock::Clock;
use crate::kernel::hooks::{ComponentHooks, IoMethod};
use crate::kernel::metrics::ComponentMetrics;
use crate::kernel::seed::SharedRng;
use crate::kernel::trace::Trace;
use crate::topology::BuildCx;
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

/// What the run saw happen to orders, to check the invariants at the end — in memory that does not grow
/// with the run: order ids are sequential, so the created ones are a few ranges, and of the state changes
/// only the illegal ones are kept.
#[derive(Default)]
struct LedgerData {
    created: Ids,
    created_count: u64,
    /// State changes the flow does not allow, in the order they happened.
    illegal: Vec<(i64, OrderState, OrderState)>,
}

/// A set of order ids kept as ranges. Ids are widened to `i128` so that merging a range with its
/// neighbour (`id + 1`, `id - 1`) cannot overflow, whatever ids a store holds.
type Ids = RangeInclusiveSet<i128>;

/// Created orders and every illegal state change, as the services made them.
#[derive(Clone, Default)]
pub struct Ledger(Arc<Mutex<LedgerData>>);

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, LedgerData> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a new order.
    pub fn created(&self, id: i64) {
        let (mut l, id) = (self.lock(), i128::from(id));
        if !l.created.contains(&id) {
            l.created.insert(id..=id);
            l.created_count += 1;
        }
    }

    /// Notes a state change: the flow allows `pending` → `success` | `rejected` | `reversed` only.
    pub fn changed(&self, id: i64, from: OrderState, to: OrderState) {
        if from != OrderState::Pending || to == OrderState::Pending || to == OrderState::Failed {
            self.lock().illegal.push((id, from, to));
        }
    }

    /// Orders created so far.
    pub fn created_count(&self) -> u64 {
        self.lock().created_count
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

/// What an `order-store` component provides: the store and the run's ledger of what the services did.
#[derive(Clone)]
pub struct OrderDb {
    /// The component's name.
    pub name: String,
    /// The store.
    pub store: OrderStore,
    /// Created orders and transitions.
    pub ledger: Ledger,
    /// The component's fault hooks (I/O faults on the store).
    pub hooks: Arc<ComponentHooks>,
    /// True while the component runs.
    pub up: Arc<std::sync::atomic::AtomicBool>,
    /// The component's row in the run's table: operations in, answered out, failed dropped.
    pub counts: ComponentMetrics,
}

/// What a service that reads and writes orders works with: the store through its link, the bus
/// through its link with its own producer, and the run's clock, trace and ledger.
#[derive(Clone)]
pub struct Orders {
    /// The component using it (traces and logs carry its name).
    pub name: Arc<str>,
    /// The store component's name (for messages).
    pub db_name: Arc<str>,
    /// The store.
    pub store: OrderStore,
    /// Run clock.
    pub clock: Clock,
    /// Run trace.
    pub trace: Trace,
    /// `poke_order_state_changes_total{from,to}` of this component.
    pub transitions: IntCounterVec,
    /// Created orders and transitions.
    pub ledger: Ledger,
    /// This component's producer (acks=all).
    pub producer: Arc<AnyProducer>,
    /// The bus (for partition metadata).
    pub bus: BusClient,
    /// The producer's random partitioner stream.
    pub partitioner: SharedRng,
    /// This component → database.
    pub db_link: Arc<Link>,
    /// This component → bus.
    pub kafka_link: Arc<Link>,
    /// The database component's fault hooks (I/O faults on the store).
    pub db_hooks: Arc<ComponentHooks>,
    /// The store component's counts.
    pub db_counts: ComponentMetrics,
    /// The producer's `message.timeout.ms`.
    pub produce_timeout: Duration,
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
    /// The context of component `name` using the store `store` and the bus `bus` (both built before it),
    /// producing as `client_id`.
    pub fn new(
        cx: &BuildCx<'_>,
        name: &str,
        store: &str,
        bus: &str,
        client_id: &str,
        produce_timeout: Duration,
    ) -> anyhow::Result<Orders> {
        let db: OrderDb = cx.handle(store)?;
        let bus_handle: BusHandle = cx.handle(bus)?;
        let transitions = cx.metrics(name).counter_vec(
            "poke_order_state_changes_total",
            "Order state changes.",
            &["from", "to"],
        )?;
        Ok(Orders {
            name: name.into(),
            db_name: store.into(),
            store: db.store,
            clock: cx.clock.clone(),
            trace: cx.trace.clone(),
            transitions,
            ledger: db.ledger,
            producer: bus_handle.client.producer_with_timeout(client_id, Acks::All, produce_timeout)?,
            bus: bus_handle.client,
            partitioner: cx.seed.shared_stream(&format!("partitioner:{name}")),
            db_link: cx.link(name, store)?,
            kafka_link: cx.link(name, bus)?,
            db_hooks: db.hooks,
            db_counts: db.counts,
            produce_timeout,
        })
    }

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
            self.producer.as_ref(),
            topic,
            partition,
            value,
            timestamp_ms,
            self.produce_timeout,
        )
        .await
    }

    /// Runs a store operation — a `method` on `table` (`orders` or `outbox`, the paths IOChaos sees) —
    /// through the database link: a refused hop or an injected I/O error is `Unavailable`.
    pub async fn db<T, F, Fut>(&self, method: IoMethod, table: &str, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(OrderStore) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.db_link.gate().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.db_hooks
            .io(method, table)
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.db_name)))?;
        // The store's row: an operation that reached it is in; answered, out; failed there, dropped.
        self.db_counts.records_in.inc();
        let outcome = op(self.store.clone()).await;
        match &outcome {
            Ok(_) => self.db_counts.records_out.inc(),
            Err(StoreError::Invalid(_)) => self.db_counts.dropped("invalid_request"),
            Err(_) => self.db_counts.dropped("store_error"),
        }
        outcome
    }

    /// Records a state change: ledger, metric, trace and the process-mining event.
    pub async fn changed(&self, id: i64, from: OrderState, to: OrderState, by: &str) {
        self.ledger.changed(id, from, to);
        self.transitions.with_label_values(&[from.as_str(), to.as_str()]).inc();
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
}

impl OrderDb {
    /// Checks the run's invariants against the store (refused while the store component is down).
    pub async fn invariants(&self) -> Result<Invariants, StoreError> {
        if !self.up.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable(format!("{} is down", self.name)));
        }
        self.hooks
            .io(IoMethod::Read, "orders")
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.name)))?;
        let counts = self.store.counts_by_state().await?;
        // The store is read a page at a time; what stays is its ids as ranges and the wrong decisions.
        let (mut stored, mut wrong_decision, mut after) = (Ids::new(), Vec::new(), None);
        loop {
            let page = self.store.list_after(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for o in &page {
                stored.insert(i128::from(o.id)..=i128::from(o.id));
                let wrong = match o.state {
                    OrderState::Rejected => !is_fraud(o.user_id, &o.pokemon, o.price),
                    OrderState::Success => is_fraud(o.user_id, &o.pokemon, o.price),
                    _ => false,
                };
                if wrong {
                    wrong_decision.push(o.id);
                }
            }
        }
        let (created, created_count, illegal) = {
            let ledger = self.ledger.lock();
            (ledger.created.clone(), ledger.created_count, ledger.illegal.clone())
        };
        // Gaps lie inside created ranges, which hold i64 ids only.
        let missing: Vec<i64> = created
            .iter()
            .flat_map(|r| stored.gaps(r))
            .flatten()
            .filter_map(|id| i64::try_from(id).ok())
            .collect();
        let mut illegal: Vec<(i64, String)> = illegal
            .into_iter()
            .map(|(id, from, to)| (id, format!("{} -> {}", from.as_str(), to.as_str())))
            .collect();
        illegal.sort_by_key(|(id, _)| *id); // stable: an order's changes stay in their order
        let in_flight = counts.get(&OrderState::Pending).copied().unwrap_or(0);
        let ok = missing.is_empty() && wrong_decision.is_empty() && illegal.is_empty();
        Ok(Invariants {
            by_state: counts.iter().map(|(s, n)| (s.as_str().to_string(), *n)).collect(),
            created: created_count,
            missing,
            in_flight,
            wrong_decision,
            illegal_transitions: illegal,
            ok,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_keeps_ranges_of_ids_and_only_the_illegal_changes() {
        let ledger = Ledger::default();
        // Ids arrive a little out of order from concurrent requests, and one twice.
        for id in [1, 2, 4, 3, 5, 5, 9, 7, 8, i64::MAX, i64::MIN] {
            ledger.created(id);
        }
        assert_eq!(ledger.created_count(), 10);
        let l = ledger.lock();
        let (min, max) = (i128::from(i64::MIN), i128::from(i64::MAX));
        assert_eq!(l.created.iter().cloned().collect::<Vec<_>>(), vec![min..=min, 1..=5, 7..=9, max..=max]);
        drop(l);
        for to in [OrderState::Success, OrderState::Rejected, OrderState::Reversed] {
            ledger.changed(1, OrderState::Pending, to);
        }
        assert!(ledger.lock().illegal.is_empty(), "every change out of pending is allowed");
        ledger.changed(2, OrderState::Pending, OrderState::Failed);
        ledger.changed(3, OrderState::Success, OrderState::Reversed);
        ledger.changed(4, OrderState::Pending, OrderState::Pending);
        assert_eq!(
            ledger.lock().illegal,
            vec![
                (2, OrderState::Pending, OrderState::Failed),
                (3, OrderState::Success, OrderState::Reversed),
                (4, OrderState::Pending, OrderState::Pending)
            ]
        );
    }
}
