//! `load-generator` (`OCTILLERY`): the reference's synthetic load (an Argo workflow there) — N users in parallel, each placing `orders` orders with
//! `delay` between them: a Pokémon from the shipped list, a country from the shipped list, a whole price
//! 0–300, all from the run's seeded stream. Also `chaoslab load --url …` against any order API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use rand::Rng as _;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::catalog::{COUNTRIES, POKEMON, names};
use super::http::ApiClient;
use crate::kernel::component::Ctx;
use crate::kernel::component::{RestartMode, RestartPolicy};
use crate::kernel::metrics::ComponentMetrics;
use crate::kernel::seed::SharedRng;
use crate::kernel::task::ChildTask;
use crate::topology::BuildCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::transport::link::Link;

/// `kind = "load-generator"`: the reference load is 5 users × 1000 orders, 2 s apart.
#[derive(Clone, Debug, Deserialize)]
pub struct LoadGeneratorConfig {
    /// The `order-api` to place orders with.
    pub api: String,
    /// Users placing orders in parallel (user ids 1..=users).
    #[serde(default = "five")]
    pub users: u32,
    /// Orders per user.
    #[serde(default = "thousand")]
    pub orders: u32,
    /// Pause after each order.
    #[serde(default = "two_seconds", with = "humantime_serde")]
    pub delay: Duration,
    /// Pause before the first order.
    #[serde(default, with = "humantime_serde")]
    pub initial_delay: Duration,
}

fn five() -> u32 {
    5
}
fn thousand() -> u32 {
    1000
}
fn two_seconds() -> Duration {
    Duration::from_secs(2)
}

impl LoadGeneratorConfig {
    /// A plan against `api` (for `chaoslab load`).
    pub fn plan(users: u32, orders: u32, delay: Duration, initial_delay: Duration) -> LoadGeneratorConfig {
        LoadGeneratorConfig { api: String::new(), users, orders, delay, initial_delay }
    }
}

impl ComponentKind for LoadGeneratorConfig {
    const KIND: &'static str = "load-generator";
    const NAMESPACE: &'static str = "orders";
    const SOURCE: bool = true;

    /// The load runs once: a normal end is final, a crash starts the plan over (like re-running the
    /// workflow).
    fn default_restart() -> RestartPolicy {
        RestartPolicy { mode: RestartMode::OnFailure, ..RestartPolicy::default() }
    }

    fn references(&self) -> Vec<Reference<'_>> {
        vec![Reference::new("api", &self.api, &["order-api"], Hop::To)]
    }

    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let http = ApiClient::for_component(cx, &self.api)?;
        let gate = cx.link(name, &self.api)?;
        let plan = self.clone();
        cx.add(name, move |ctx| run(ctx, plan.clone(), http.clone(), gate.clone()))
    }
}

/// What one run of the load produced.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// Orders the API accepted (200).
    pub placed: u64,
    /// Orders that got no 200 (status or transport error).
    pub failed: u64,
    /// Answers by status code (`error` for no answer).
    pub statuses: BTreeMap<String, u64>,
}

impl LoadReport {
    fn add(&mut self, other: &LoadReport) {
        self.placed += other.placed;
        self.failed += other.failed;
        for (k, v) in &other.statuses {
            *self.statuses.entry(k.clone()).or_insert(0) += v;
        }
    }
}

/// One user's orders. `gate` is the hop to the API (none for `chaoslab load`); `counts`, the component's
/// counters, see each order as it is placed (out) or not (dropped, `not_placed`).
pub async fn run_user(
    client: ApiClient,
    user_id: u32,
    plan: LoadGeneratorConfig,
    rng: SharedRng,
    gate: Option<Arc<Link>>,
    counts: Option<ComponentMetrics>,
) -> LoadReport {
    let (pokemon, countries) = (names(POKEMON), names(COUNTRIES));
    let mut report = LoadReport::default();
    tokio::time::sleep(plan.initial_delay).await;
    for _ in 0..plan.orders {
        let body = {
            let mut r = rng.lock();
            json!({
                "user_id": user_id,
                "pokemon": pokemon.choose(&mut *r).copied().unwrap_or("pikachu"),
                "country": countries.choose(&mut *r).copied().unwrap_or("Chile"),
                "price": r.gen_range(0..=300),
            })
        };
        let sent = match &gate {
            Some(link) => match link.gate().await {
                Ok(()) => client
                    .send(Method::POST, "/orders/", Some(body.to_string().into_bytes()))
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            None => client
                .send(Method::POST, "/orders/", Some(body.to_string().into_bytes()))
                .await
                .map_err(|e| e.to_string()),
        };
        let key = match &sent {
            Ok(resp) if resp.status == StatusCode::OK => {
                report.placed += 1;
                if let Some(c) = &counts {
                    c.records_out.inc();
                }
                "200".to_string()
            }
            Ok(resp) => {
                report.failed += 1;
                if let Some(c) = &counts {
                    c.dropped("not_placed");
                }
                resp.status.as_u16().to_string()
            }
            Err(e) => {
                report.failed += 1;
                if let Some(c) = &counts {
                    c.dropped("not_placed");
                }
                tracing::warn!(user = user_id, "order not placed: {e}");
                "error".to_string()
            }
        };
        *report.statuses.entry(key).or_insert(0) += 1;
        tokio::time::sleep(plan.delay).await;
    }
    report
}

/// All users in parallel; returns their combined report.
pub async fn run_users(
    client: ApiClient,
    plan: &LoadGeneratorConfig,
    rng: SharedRng,
    gate: Option<Arc<Link>>,
    counts: Option<ComponentMetrics>,
) -> LoadReport {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut users = Vec::new();
    for user_id in 1..=plan.users {
        let (client, plan, rng, gate, counts, tx) =
            (client.clone(), plan.clone(), rng.clone(), gate.clone(), counts.clone(), tx.clone());
        users.push(ChildTask::spawn(async move {
            let _ = tx.send(run_user(client, user_id, plan, rng, gate, counts).await);
        }));
    }
    drop(tx);
    let mut total = LoadReport::default();
    while let Some(r) = rx.recv().await {
        total.add(&r);
    }
    total
}

/// The `OCTILLERY` component: runs the plan once, then exits.
pub async fn run(
    ctx: Ctx,
    plan: LoadGeneratorConfig,
    client: ApiClient,
    gate: Arc<Link>,
) -> anyhow::Result<()> {
    ctx.health.set_ready(true, "placing orders");
    tracing::info!(component = %ctx.name, "{} users x {} orders, {:?} apart", plan.users, plan.orders, plan.delay);
    let report = tokio::select! {
        biased;
        _ = ctx.shutdown.cancelled() => return Ok(()),
        r = run_users(client, &plan, ctx.rng.clone(), Some(gate), Some(ctx.metrics.clone())) => r,
    };
    tracing::info!(component = %ctx.name, "load done: {} placed, {} failed", report.placed, report.failed);
    ctx.trace("load.done", &report);
    Ok(())
}
