//! The order store: the reference's `poke_orders` table (and a transactional outbox) in SQLite or
//! PostgreSQL, behind one type, [`OrderStore`].
//!
//! - **SQLite** (the default, `sqlite://<out>/orders.db` or `sqlite::memory:`) goes through `rusqlite`,
//!   called synchronously on one connection shared by all clones ([`crate::storage::sqlite`] says why
//!   not sqlx): in sim mode (`blocking_pool = false`) a store call is one uninterrupted step, so the run
//!   stays a function of the seed; in live mode each call moves to tokio's blocking pool so a slow disk
//!   never stalls a runtime worker.
//! - **PostgreSQL** (`postgres://…`, `postgresql://…`) goes through a sqlx pool
//!   ([`crate::storage::postgres`]) whose short timeouts make a down server [`StoreError::Unavailable`]
//!   quickly, and which reconnects by itself when the server is back. Live mode only.
//!
//! Both backends run the same versioned, idempotent migrations (table `chaoslab_schema_migrations`):
//! `poke_orders` exactly as the reference's Alembic revision 245615355322 (indexes
//! `ix_poke_orders_{country,id,pokemon,user_id}`; `state` is the enum type `orderstate` in PostgreSQL
//! and a CHECK-constrained text in SQLite), then `poke_orders_outbox` for the transactional-outbox mode.
//! They use `IF NOT EXISTS`, so a database the reference already created is adopted as it is.
//!
//! Determinism: nothing here reads the clock (every timestamp is passed in and kept to Python's
//! microseconds) and ids are the database's autoincrement, never reused after a delete.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chrono::{Datelike, NaiveDateTime, Timelike};

use crate::orders::model::{NewOrder, Order, OrderState};
use crate::storage::{self, FromSqlError, SqlErrorKind, Target};

mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

pub use postgres::PgStore;
pub use sqlite::{SqliteStore, read_file as read_sqlite_file};
use sqlite::{
    sqlite_counts, sqlite_create, sqlite_get, sqlite_list, sqlite_list_after, sqlite_mark_sent,
    sqlite_outbox_pending, sqlite_reverse, sqlite_set_state,
};

pub use crate::storage::postgres::{
    ACQUIRE_TIMEOUT as PG_ACQUIRE_TIMEOUT, OPERATION_TIMEOUT as PG_OPERATION_TIMEOUT,
};
pub use crate::storage::sqlite::BUSY_TIMEOUT as SQLITE_BUSY_TIMEOUT;

/// Connections in the PostgreSQL pool.
pub const PG_MAX_CONNECTIONS: u32 = 8;

/// Advisory-lock key serialising concurrent PostgreSQL migrations ("chaoslab" in ASCII).
const PG_MIGRATION_LOCK: i64 = 0x6368_616f_736c_6162;

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now (connection refused or lost, pool timeout, file locked):
    /// the API answers 503 and a later call may succeed.
    #[error("order store unavailable: {0}")]
    Unavailable(String),
    /// The request itself is wrong (bad URL, value out of range, constraint violated): retrying won't help.
    #[error("invalid order store request: {0}")]
    Invalid(String),
    /// Anything else the database reported, or a row it returned that makes no sense.
    #[error("order store failure: {0}")]
    Backend(String),
}

impl FromSqlError for StoreError {
    fn from_sql_error(kind: SqlErrorKind, message: String) -> Self {
        match kind {
            SqlErrorKind::Unavailable => StoreError::Unavailable(message),
            SqlErrorKind::Invalid => StoreError::Invalid(message),
            SqlErrorKind::Backend => StoreError::Backend(message),
        }
    }
}

/// One message waiting in (or sent from) the transactional outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Outbox id, increasing in insertion order.
    pub id: i64,
    /// The order the message is about.
    pub order_id: i64,
    /// Kafka topic to publish to.
    pub topic: String,
    /// Message value: [`Order::to_kafka_json`] at creation.
    pub payload: String,
    /// When the order (and this row) was created.
    pub created_at: NaiveDateTime,
    /// When a relay marked it published; `None` while pending.
    pub sent_at: Option<NaiveDateTime>,
}

/// The order store: cheap to clone, all clones share the connection or pool.
#[derive(Clone)]
pub enum OrderStore {
    /// Embedded SQLite through rusqlite.
    Sqlite(SqliteStore),
    /// PostgreSQL through a sqlx pool.
    Postgres(PgStore),
}

impl fmt::Debug for OrderStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OrderStore").field(&self.place()).finish()
    }
}

impl OrderStore {
    /// Opens (creating if needed) and migrates the store named by `url`: `sqlite://<path>`,
    /// `sqlite:<path>`, `sqlite::memory:`, `postgres://…` or `postgresql://…`.
    ///
    /// `blocking_pool` runs each SQLite call on tokio's blocking pool (live mode); `false` runs it in the
    /// calling task (sim mode). PostgreSQL ignores it.
    pub async fn open(url: &str, blocking_pool: bool) -> Result<OrderStore, StoreError> {
        match parse_url(url)? {
            Target::SqliteMemory => SqliteStore::open(None, blocking_pool).await.map(OrderStore::Sqlite),
            Target::SqliteFile(path) => OrderStore::open_sqlite_file(&path, blocking_pool).await,
            Target::Postgres => PgStore::open(url).await.map(OrderStore::Postgres),
        }
    }

    /// Opens (creating if needed) and migrates the SQLite file at `path`, e.g. `<out>/orders.db`.
    pub async fn open_sqlite_file(path: &Path, blocking_pool: bool) -> Result<OrderStore, StoreError> {
        SqliteStore::open(Some(path.to_path_buf()), blocking_pool).await.map(OrderStore::Sqlite)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            OrderStore::Sqlite(_) => "sqlite",
            OrderStore::Postgres(_) => "postgres",
        }
    }

    /// Where the data lives, for logs and errors (never contains a password).
    pub fn place(&self) -> &str {
        match self {
            OrderStore::Sqlite(s) => s.db.place(),
            OrderStore::Postgres(p) => p.db.place(),
        }
    }

    /// Inserts a `pending` order created at `now` (cut to microseconds). With `outbox_topic`, the Kafka
    /// message for it is queued in `poke_orders_outbox` in the same transaction: both rows or neither.
    pub async fn create(
        &self,
        new: &NewOrder,
        now: NaiveDateTime,
        outbox_topic: Option<&str>,
    ) -> Result<Order, StoreError> {
        let (user_id, now) = validate_new(new, now)?;
        match self {
            OrderStore::Sqlite(s) => {
                let new = new.clone();
                let topic = outbox_topic.map(str::to_string);
                s.db.call("create", move |conn| sqlite_create(conn, new, user_id, now, topic)).await
            }
            OrderStore::Postgres(p) => p.create(new, user_id, now, outbox_topic).await,
        }
    }

    /// The order with this id.
    pub async fn get(&self, id: i64) -> Result<Option<Order>, StoreError> {
        match self {
            OrderStore::Sqlite(s) => s.db.call("get", move |conn| sqlite_get(conn, id)).await,
            OrderStore::Postgres(p) => p.get(id).await,
        }
    }

    /// Orders by increasing id, optionally only those in `state`, skipping `skip` and returning at most
    /// `limit`.
    pub async fn list(
        &self,
        state: Option<OrderState>,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Order>, StoreError> {
        let (skip, limit) = (clamp_i64(skip), clamp_i64(limit));
        match self {
            OrderStore::Sqlite(s) => {
                s.db.call("list", move |conn| sqlite_list(conn, state, skip, limit)).await
            }
            OrderStore::Postgres(p) => p.list(state, skip, limit).await,
        }
    }

    /// At most `limit` orders by increasing id, those after `after` (all from the first without it): a
    /// whole-table scan a page at a time that costs the same for the last page as for the first.
    pub async fn list_after(&self, after: Option<i64>, limit: u64) -> Result<Vec<Order>, StoreError> {
        let (after, limit) = (after.unwrap_or(i64::MIN), clamp_i64(limit));
        match self {
            OrderStore::Sqlite(s) => {
                s.db.call("list_after", move |conn| sqlite_list_after(conn, after, limit)).await
            }
            OrderStore::Postgres(p) => p.list_after(after, limit).await,
        }
    }

    /// Sets an order's state, whatever it was (the reference checks no transition); `None` if no such
    /// order.
    pub async fn set_state(&self, id: i64, state: OrderState) -> Result<Option<Order>, StoreError> {
        match self {
            OrderStore::Sqlite(s) => {
                s.db.call("set_state", move |conn| sqlite_set_state(conn, id, state)).await
            }
            OrderStore::Postgres(p) => p.set_state(id, state).await,
        }
    }

    /// Deletes every order (`DELETE FROM poke_orders`) and returns how many; ids are not reused and the
    /// outbox is left alone.
    pub async fn delete_all(&self) -> Result<u64, StoreError> {
        match self {
            OrderStore::Sqlite(s) => {
                s.db.call("delete_all", |conn| Ok(conn.execute("DELETE FROM poke_orders", [])? as u64)).await
            }
            OrderStore::Postgres(p) => p.delete_all().await,
        }
    }

    /// ORDER-REVERSED's update: every `pending` order whose timestamp is strictly before `older_than`
    /// becomes `reversed`. Returns their ids, sorted.
    pub async fn reverse_expired(&self, older_than: NaiveDateTime) -> Result<Vec<i64>, StoreError> {
        let older_than = storable_timestamp(older_than, "older_than")?;
        match self {
            OrderStore::Sqlite(s) => {
                s.db.call("reverse_expired", move |conn| sqlite_reverse(conn, older_than)).await
            }
            OrderStore::Postgres(p) => p.reverse_expired(older_than).await,
        }
    }

    /// How many orders are in each state; all five states are present (0 when none).
    pub async fn counts_by_state(&self) -> Result<BTreeMap<OrderState, u64>, StoreError> {
        let rows = match self {
            OrderStore::Sqlite(s) => s.db.call("counts_by_state", sqlite_counts).await?,
            OrderStore::Postgres(p) => p.counts().await?,
        };
        let mut counts: BTreeMap<OrderState, u64> = OrderState::ALL.into_iter().map(|s| (s, 0)).collect();
        for (state, count) in rows {
            let state = state.parse::<OrderState>().map_err(|e| {
                StoreError::Backend(format!("{}: counts_by_state: poke_orders.state: {e}", self.place()))
            })?;
            *counts.entry(state).or_default() += u64::try_from(count).unwrap_or(0);
        }
        Ok(counts)
    }

    /// Up to `limit` outbox rows not yet sent, oldest first.
    pub async fn outbox_pending(&self, limit: u64) -> Result<Vec<OutboxRow>, StoreError> {
        let limit = clamp_i64(limit);
        match self {
            OrderStore::Sqlite(s) => {
                s.db.call("outbox_pending", move |conn| sqlite_outbox_pending(conn, limit)).await
            }
            OrderStore::Postgres(p) => p.outbox_pending(limit).await,
        }
    }

    /// Marks these outbox rows sent at `now`; rows already sent keep their first time. Returns how many
    /// rows changed.
    pub async fn outbox_mark_sent(&self, ids: &[i64], now: NaiveDateTime) -> Result<u64, StoreError> {
        let now = storable_timestamp(now, "now")?;
        if ids.is_empty() {
            return Ok(0);
        }
        match self {
            OrderStore::Sqlite(s) => {
                let ids = ids.to_vec();
                s.db.call("outbox_mark_sent", move |conn| sqlite_mark_sent(conn, &ids, now)).await
            }
            OrderStore::Postgres(p) => p.outbox_mark_sent(ids, now).await,
        }
    }

    /// Checks the database answers (`SELECT 1`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            OrderStore::Sqlite(s) => {
                s.db.call("ping", |conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?)).await
            }
            OrderStore::Postgres(p) => p.ping().await,
        }
    }
}

/// Which backend `url` names.
fn parse_url(url: &str) -> Result<Target, StoreError> {
    storage::parse_url(url, "database")
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Checks a new order fits the reference's columns; returns the `INTEGER` user id and the timestamp cut to
/// microseconds.
fn validate_new(new: &NewOrder, now: NaiveDateTime) -> Result<(i32, NaiveDateTime), StoreError> {
    let user_id = i32::try_from(new.user_id).map_err(|_| {
        StoreError::Invalid(format!(
            "user_id {} does not fit poke_orders.user_id (INTEGER, 32-bit)",
            new.user_id
        ))
    })?;
    if !new.price.is_finite() {
        return Err(StoreError::Invalid(format!("price {} is not a finite number", new.price)));
    }
    for (field, value) in [("pokemon", &new.pokemon), ("country", &new.country)] {
        if value.contains('\0') {
            return Err(StoreError::Invalid(format!("{field} {value:?} contains a NUL character")));
        }
    }
    Ok((user_id, storable_timestamp(now, "timestamp")?))
}

/// A timestamp both backends store exactly: years 1..=9999 (Python's range, and fixed-width text in
/// SQLite, so text order is time order), microseconds, no leap second.
fn storable_timestamp(ts: NaiveDateTime, what: &str) -> Result<NaiveDateTime, StoreError> {
    if !(1..=9999).contains(&ts.year()) {
        return Err(StoreError::Invalid(format!("{what} {ts} is outside years 1..=9999")));
    }
    let micros = (ts.nanosecond() / 1_000).min(999_999);
    ts.with_nanosecond(micros * 1_000)
        .ok_or_else(|| StoreError::Invalid(format!("{what} {ts}: cannot keep microseconds")))
}

/// A row of `poke_orders` as stored: the reference leaves most columns nullable.
struct RawOrder {
    id: i64,
    user_id: Option<i64>,
    pokemon: Option<String>,
    country: Option<String>,
    price: f64,
    state: String,
    timestamp: Option<NaiveDateTime>,
}

impl RawOrder {
    fn into_order(self) -> Result<Order, String> {
        let id = self.id;
        let null = |column: &str| format!("poke_orders row id {id}: column {column} is NULL");
        Ok(Order {
            id,
            user_id: self.user_id.ok_or_else(|| null("user_id"))?,
            pokemon: self.pokemon.ok_or_else(|| null("pokemon"))?,
            country: self.country.ok_or_else(|| null("country"))?,
            price: self.price,
            state: self.state.parse().map_err(|e| format!("poke_orders row id {id}: column state: {e}"))?,
            timestamp: self.timestamp.ok_or_else(|| null("timestamp"))?,
        })
    }
}

/// One schema step, in both dialects.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS chaoslab_schema_migrations (\
     version BIGINT NOT NULL PRIMARY KEY, name VARCHAR NOT NULL)";

const MIGRATIONS: [Migration; 2] = [
    Migration {
        version: 1,
        name: "poke_orders",
        sqlite: r#"
CREATE TABLE IF NOT EXISTS poke_orders (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER,
    pokemon VARCHAR,
    country VARCHAR,
    price FLOAT NOT NULL,
    state VARCHAR(8) NOT NULL
        CONSTRAINT orderstate CHECK (state IN ('pending', 'rejected', 'failed', 'success', 'reversed')),
    "timestamp" DATETIME
);
CREATE INDEX IF NOT EXISTS ix_poke_orders_country ON poke_orders (country);
CREATE INDEX IF NOT EXISTS ix_poke_orders_id ON poke_orders (id);
CREATE INDEX IF NOT EXISTS ix_poke_orders_pokemon ON poke_orders (pokemon);
CREATE INDEX IF NOT EXISTS ix_poke_orders_user_id ON poke_orders (user_id);
"#,
        postgres: r#"
DO $$ BEGIN
    CREATE TYPE orderstate AS ENUM ('pending', 'rejected', 'failed', 'success', 'reversed');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
CREATE TABLE IF NOT EXISTS poke_orders (
    id SERIAL NOT NULL,
    user_id INTEGER,
    pokemon VARCHAR,
    country VARCHAR,
    price FLOAT NOT NULL,
    state orderstate NOT NULL,
    "timestamp" TIMESTAMP WITHOUT TIME ZONE,
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_poke_orders_country ON poke_orders (country);
CREATE INDEX IF NOT EXISTS ix_poke_orders_id ON poke_orders (id);
CREATE INDEX IF NOT EXISTS ix_poke_orders_pokemon ON poke_orders (pokemon);
CREATE INDEX IF NOT EXISTS ix_poke_orders_user_id ON poke_orders (user_id);
"#,
    },
    Migration {
        version: 2,
        name: "poke_orders_outbox",
        sqlite: r#"
CREATE TABLE IF NOT EXISTS poke_orders_outbox (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL,
    topic VARCHAR NOT NULL CHECK (length(topic) BETWEEN 1 AND 249),
    payload TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    sent_at DATETIME
);
CREATE INDEX IF NOT EXISTS ix_poke_orders_outbox_unsent ON poke_orders_outbox (id) WHERE sent_at IS NULL;
"#,
        postgres: r#"
CREATE TABLE IF NOT EXISTS poke_orders_outbox (
    id BIGSERIAL NOT NULL PRIMARY KEY,
    order_id BIGINT NOT NULL,
    topic VARCHAR NOT NULL CHECK (char_length(topic) BETWEEN 1 AND 249),
    payload TEXT NOT NULL,
    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    sent_at TIMESTAMP WITHOUT TIME ZONE
);
CREATE INDEX IF NOT EXISTS ix_poke_orders_outbox_unsent ON poke_orders_outbox (id) WHERE sent_at IS NULL;
"#,
    },
];

/// The migrations still to apply, given the `(version, name)` rows already recorded.
fn pending_migrations(applied: &[(i64, String)], place: &str) -> Result<Vec<&'static Migration>, StoreError> {
    for (version, name) in applied {
        match MIGRATIONS.iter().find(|m| m.version == *version) {
            Some(m) if m.name == name => {}
            Some(m) => {
                return Err(StoreError::Backend(format!(
                    "{place}: chaoslab_schema_migrations version {version} is {name:?}, this chaoslab expects \
                     {:?}",
                    m.name
                )));
            }
            None => {
                return Err(StoreError::Backend(format!(
                    "{place}: schema version {version} ({name:?}) is newer than this chaoslab knows (up to {})",
                    MIGRATIONS.len()
                )));
            }
        }
    }
    Ok(MIGRATIONS.iter().filter(|m| !applied.iter().any(|(v, _)| *v == m.version)).collect())
}
