//! `order-store` (`POKE-ORDERS-DB`): the order store as a component — SQLite (`<out>/orders.db` by
//! default, rusqlite in the calling thread so sim runs stay deterministic) or PostgreSQL (`url`,
//! `--database-url`, live only). While it runs the services can reach the store; stopped, every query
//! through a link to it is refused and the API answers 503 until it is back. It keeps `poke_orders{state}`
//! current and provides an [`OrderDb`] (store, ledger, hooks) to the services and the run summary.

use std::path::PathBuf;
use std::time::Duration;

use prometheus::IntGaugeVec;
use serde::Deserialize;

use super::service::{Ledger, OrderDb};
use super::store::OrderStore;
use crate::kernel::component::Ctx;
use crate::topology::build::InputCx;
use crate::topology::check::CheckCx;
use crate::topology::component::ComponentKind;
use crate::topology::{BuildCx, RunMode};

/// How often the per-state gauge is refreshed.
pub const REFRESH: Duration = Duration::from_secs(5);

/// `kind = "order-store"`.
#[derive(Clone, Debug, Deserialize)]
pub struct OrderStoreConfig {
    /// SQLite file under the run's output directory.
    #[serde(default = "default_file")]
    pub file: PathBuf,
    /// A database URL instead (`postgres://…`, `sqlite://…`; `--database-url`). Sim mode takes SQLite only.
    #[serde(default)]
    pub url: Option<String>,
}

fn default_file() -> PathBuf {
    PathBuf::from("orders.db")
}

impl ComponentKind for OrderStoreConfig {
    const KIND: &'static str = "order-store";
    const NAMESPACE: &'static str = "orders";

    fn external_hosts(&self) -> Vec<String> {
        let url = self.url.as_deref().filter(|u| u.starts_with("postgres"));
        url.and_then(crate::topology::component::url_host).into_iter().collect()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.relative_path("file", &self.file);
    }

    fn check_inputs(&self, _name: &str, cx: &InputCx<'_>) -> anyhow::Result<()> {
        match &self.url {
            Some(url) if cx.mode == RunMode::Sim && !url.starts_with("sqlite") => anyhow::bail!(
                "--database-url: sim mode runs on the embedded SQLite store only (a database server's own \
                 threads and sockets would make the run non-deterministic)"
            ),
            _ => Ok(()),
        }
    }

    /// Provides the [`OrderDb`].
    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let live = cx.mode == RunMode::Live;
        let store = match &self.url {
            Some(url) => OrderStore::open(url, live).await?,
            None => OrderStore::open_sqlite_file(&cx.out_path(&self.file), live).await?,
        };
        let db = OrderDb {
            name: name.to_string(),
            store: store.clone(),
            ledger: Ledger::default(),
            hooks: cx.hooks(name),
            up: cx.up_flag(name),
            counts: cx.registry().component(name),
        };
        cx.provide(name, db);
        let by_state =
            cx.metrics(name).gauge_vec("poke_orders", "Orders in the store by state.", &["state"])?;
        cx.add(name, move |ctx| run(ctx, store.clone(), by_state.clone()))
    }
}

/// Runs the database component.
pub async fn run(ctx: Ctx, store: OrderStore, by_state: IntGaugeVec) -> anyhow::Result<()> {
    tracing::info!(component = %ctx.name, "{} store at {}", store.backend(), store.place());
    ctx.health.set_ready(true, "serving");
    loop {
        match store.counts_by_state().await {
            Ok(counts) => {
                for (state, n) in counts {
                    by_state.with_label_values(&[state.as_str()]).set(n as i64);
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
