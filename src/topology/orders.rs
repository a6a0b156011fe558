//! Wiring of the Pokémon order services: the bus and its topics, the store, and one supervised
//! component per service, joined by the links the flow implies.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::Mode;
use super::flow::{
    BROKER_PREFIX, DETECTIVE_PREFIX, Flow, KAFKA, LOAD, ORDER_API, ORDER_REVERSED, ORDER_UPDATER, ORDERS_DB,
    OUTBOX_RELAY, PublishMode,
};
use crate::bus::backend::BusClient;
use crate::bus::{Acks, Bus, BusConfig, TopicConfig};
use crate::kernel::clock::Clock;
use crate::kernel::component::{ComponentSpec, RestartMode, RestartPolicy};
use crate::kernel::metrics::Metrics;
use crate::kernel::supervisor::Supervisor;
use crate::kernel::trace::Trace;
use crate::orders::http::ApiClient;
use crate::orders::service::{Ledger, OrderMetrics, Orders};
use crate::orders::store::OrderStore;
use crate::transport::link::Link;

/// The order services of a pipeline.
#[derive(Clone)]
pub struct OrderStack {
    /// Shared context (store, producer, metrics, ledger).
    pub orders: Orders,
    /// The embedded bus.
    pub bus: Bus,
    /// The bus the services use (the embedded one, or a real cluster).
    pub client: BusClient,
    /// The order API's router (served on the HTTP port in live mode, called in-process in sim mode).
    pub router: axum::Router,
}

/// What the order wiring needs from the topology.
pub struct Wiring<'a> {
    /// Live or sim.
    pub mode: Mode,
    /// Output directory.
    pub out: &'a Path,
    /// `--database-url`, if any.
    pub database_url: Option<&'a str>,
    /// Where the order API is served in live mode (`http://127.0.0.1:8080`).
    pub api_base: Option<&'a str>,
    /// Root seed.
    pub seed: crate::kernel::seed::Seed,
    /// Run clock.
    pub clock: &'a Clock,
    /// Run trace.
    pub trace: &'a Trace,
    /// Registry.
    pub metrics: &'a Metrics,
    /// Components are added here.
    pub supervisor: &'a Supervisor,
    /// All links of the pipeline.
    pub links: &'a BTreeMap<String, Arc<Link>>,
    /// HTTP fault rules, applied to the order API's routes.
    pub http_faults: &'a Arc<crate::chaos::faults::http::HttpFaults>,
}

/// Connects to a real Kafka cluster and creates the flow's topics there (existing ones are kept).
#[cfg(feature = "kafka")]
async fn real_cluster(servers: &str, flow: &Flow) -> anyhow::Result<BusClient> {
    let kafka = crate::bus::kafka::KafkaBus::new(servers)?;
    for (name, t) in &flow.bus.topics {
        let config = TopicConfig::new(t.partitions, t.replication_factor).min_insync(t.min_insync_replicas);
        match kafka.create_topic(name, &config).await {
            Ok(()) | Err(crate::bus::BusError::TopicExists { .. }) => {}
            // Some clusters (librdkafka's mock among them) refuse CreateTopics: a topic that exists will do.
            Err(e) => match kafka.describe_topic(name).await {
                Ok(_) => {
                    tracing::warn!("cannot create topic {name} on {servers} ({e}); using the existing one")
                }
                Err(_) => return Err(anyhow::anyhow!("creating topic {name} on {servers}: {e}")),
            },
        }
    }
    Ok(BusClient::Kafka(kafka))
}

/// Without the `kafka` feature there is no real-cluster client (the topology's preflight said so already).
#[cfg(not(feature = "kafka"))]
async fn real_cluster(servers: &str, _flow: &Flow) -> anyhow::Result<BusClient> {
    anyhow::bail!("--kafka-brokers {servers}: built without the `kafka` feature")
}

/// Builds the order services and registers their components (none started).
pub async fn build(flow: &Flow, w: Wiring<'_>) -> anyhow::Result<Option<OrderStack>> {
    let cfg = &flow.orders;
    if !cfg.enabled {
        return Ok(None);
    }
    let link = |from: &str, to: &str| -> anyhow::Result<Arc<Link>> {
        w.links
            .get(&format!("{from}->{to}"))
            .cloned()
            .with_context(|| format!("internal: no link {from}->{to}"))
    };

    let bus = Bus::new(BusConfig {
        brokers: flow.bus.brokers,
        auto_create_topics: flow.bus.auto_create_topics,
        ..BusConfig::default()
    });
    let admin = bus.admin();
    for (name, t) in &flow.bus.topics {
        let mut config =
            TopicConfig::new(t.partitions, t.replication_factor).min_insync(t.min_insync_replicas);
        if let Some(r) = t.retention {
            config = config.retention(r);
        }
        if let Some(a) = &t.replica_assignment {
            config = config.assignment(a.clone());
        }
        admin.create_topic(name, config).with_context(|| format!("{}: bus.topics.{name}", flow.source))?;
    }

    let store = match (w.database_url, w.mode) {
        (Some(url), mode) => OrderStore::open(url, mode == Mode::Live).await?,
        (None, mode) => OrderStore::open_sqlite_file(&w.out.join("orders.db"), mode == Mode::Live).await?,
    };
    let metrics = OrderMetrics::register(w.metrics)?;
    let client = match &flow.bus.bootstrap {
        None => BusClient::Embedded(bus.clone()),
        Some(servers) => real_cluster(servers, flow).await?,
    };
    let orders = Orders {
        cfg: cfg.clone(),
        store,
        clock: w.clock.clone(),
        trace: w.trace.clone(),
        metrics: metrics.clone(),
        ledger: Ledger::default(),
        producer: Arc::new(client.producer_with_timeout("poke-producer", Acks::All, cfg.produce_timeout)?),
        bus: client.clone(),
        partitioner: w.seed.shared_stream("partitioner:poke-producer"),
        db_link: link(ORDER_API, ORDERS_DB)?,
        kafka_link: link(ORDER_API, KAFKA)?,
        db_hooks: w.supervisor.hooks(ORDERS_DB),
    };
    let router = crate::orders::api::router(orders.clone(), w.supervisor.up_flag(ORDER_API)).layer(
        axum::middleware::from_fn_with_state(w.http_faults.clone(), crate::chaos::faults::http::middleware),
    );
    let http = match (w.mode, w.api_base) {
        (Mode::Live, Some(base)) => ApiClient::remote(base, Duration::from_secs(10))?,
        _ => ApiClient::InProcess(router.clone()),
    };
    let always = RestartPolicy::default();
    let add = |spec: ComponentSpec| w.supervisor.add(spec);

    let brokers = if flow.bus.bootstrap.is_some() { 0 } else { flow.bus.brokers };
    for id in 1..=brokers {
        let bus = bus.clone();
        add(ComponentSpec::new(
            &format!("{BROKER_PREFIX}{id}"),
            "kafka-broker",
            always.clone(),
            move |ctx| crate::bus::component::run_broker(ctx, bus.clone(), id),
        ))?;
    }
    {
        let (bus, lag, rebalances) = (client.clone(), metrics.lag.clone(), metrics.rebalances.clone());
        add(ComponentSpec::new(KAFKA, "kafka-controller", always.clone(), move |ctx| {
            crate::bus::component::run_controller(ctx, bus.clone(), lag.clone(), rebalances.clone())
        }))?;
    }
    {
        let o = orders.clone();
        add(ComponentSpec::new(ORDERS_DB, "order-store", always.clone(), move |ctx| {
            crate::orders::database::run(ctx, o.clone())
        }))?;
    }
    add(ComponentSpec::new(ORDER_API, "order-api", always.clone(), |ctx| async move {
        ctx.health.set_ready(true, "serving");
        ctx.shutdown.cancelled().await;
        Ok(())
    }))?;
    if cfg.publish == PublishMode::Outbox {
        let o = Orders {
            db_link: link(OUTBOX_RELAY, ORDERS_DB)?,
            kafka_link: link(OUTBOX_RELAY, KAFKA)?,
            ..orders.clone()
        };
        add(ComponentSpec::new(OUTBOX_RELAY, "outbox-relay", always.clone(), move |ctx| {
            crate::orders::outbox::run(ctx, o.clone())
        }))?;
    }
    for i in 0..cfg.detective_replicas {
        let name = format!("{DETECTIVE_PREFIX}{i}");
        let (o, bus, fetch, publish) =
            (orders.clone(), client.clone(), link(KAFKA, &name)?, link(&name, KAFKA)?);
        add(ComponentSpec::new(&name, "fraud-detector", always.clone(), move |ctx| {
            crate::orders::detective::run(ctx, o.clone(), bus.clone(), fetch.clone(), publish.clone())
        }))?;
    }
    {
        let (o, bus, http) = (orders.clone(), client.clone(), http.clone());
        let (fetch, api) = (link(KAFKA, ORDER_UPDATER)?, link(ORDER_UPDATER, ORDER_API)?);
        add(ComponentSpec::new(ORDER_UPDATER, "order-updater", always.clone(), move |ctx| {
            crate::orders::updater::run(ctx, o.clone(), bus.clone(), http.clone(), fetch.clone(), api.clone())
        }))?;
    }
    {
        let o = Orders {
            db_link: link(ORDER_REVERSED, ORDERS_DB)?,
            kafka_link: link(ORDER_REVERSED, KAFKA)?,
            ..orders.clone()
        };
        add(ComponentSpec::new(ORDER_REVERSED, "order-reverser", always.clone(), move |ctx| {
            crate::orders::reverser::run(ctx, o.clone())
        }))?;
    }
    if cfg.load.enabled {
        // The load runs once: a normal end is final, a crash starts the plan over (like re-running the workflow).
        let once = RestartPolicy { mode: RestartMode::OnFailure, ..RestartPolicy::default() };
        let (plan, http, gate) = (cfg.load.clone(), http.clone(), link(LOAD, ORDER_API)?);
        add(ComponentSpec::new(LOAD, "load-generator", once, move |ctx| {
            crate::orders::load::run(ctx, plan.clone(), http.clone(), gate.clone())
        }))?;
    }
    Ok(Some(OrderStack { orders, bus, client, router }))
}
