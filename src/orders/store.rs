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
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDateTime, Timelike};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::orders::model::{self, NewOrder, Order, OrderState};
use crate::storage::postgres::SharedPool;
use crate::storage::sqlite::{OpResult, SharedConnection};
use crate::storage::{self, FromSqlError, SqlErrorKind, Target};

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

// ---------------------------------------------------------------------------------------------------------
// SQLite

/// The SQLite backend: one rusqlite connection shared by all clones.
#[derive(Clone)]
pub struct SqliteStore {
    db: SharedConnection<StoreError>,
}

/// What a call on the SQLite connection returns.
type SqliteResult<T> = OpResult<T, StoreError>;

impl SqliteStore {
    /// Opens the file (`None`: a private in-memory database) and migrates it, on the blocking pool when
    /// `blocking_pool`.
    async fn open(path: Option<PathBuf>, blocking_pool: bool) -> Result<SqliteStore, StoreError> {
        let (db, applied) =
            SharedConnection::open(path, "", blocking_pool, "migrate", sqlite_migrate).await?;
        tracing::info!(place = %db.place(), migrations_applied = ?applied, "order store opened");
        Ok(SqliteStore { db })
    }
}

/// Applies the missing migrations in one immediate transaction; returns the versions applied.
fn sqlite_migrate(conn: &mut Connection, place: &str) -> SqliteResult<Vec<i64>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(MIGRATIONS_TABLE)?;
    let applied = {
        let mut stmt = tx.prepare("SELECT version, name FROM chaoslab_schema_migrations ORDER BY version")?;
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<Vec<(i64, String)>, _>>()?
    };
    let mut done = Vec::new();
    for m in pending_migrations(&applied, place)? {
        tx.execute_batch(m.sqlite)?;
        tx.execute(
            "INSERT INTO chaoslab_schema_migrations (version, name) VALUES (?1, ?2)",
            params![m.version, m.name],
        )?;
        tracing::info!(place, version = m.version, name = m.name, "order store migration applied");
        done.push(m.version);
    }
    tx.commit()?;
    Ok(done)
}

/// Fixed-width text for SQLite (`YYYY-MM-DD HH:MM:SS.ffffff`, as SQLAlchemy stores it), so `<` on the text
/// is `<` on time.
fn sqlite_timestamp(ts: &NaiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        ts.year(),
        ts.month(),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        (ts.nanosecond() / 1_000).min(999_999)
    )
}

fn sqlite_parse_timestamp(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<NaiveDateTime>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| {
        model::parse_timestamp(&t).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

/// The order columns, in `RawOrder` order.
macro_rules! sqlite_order_columns {
    () => {
        r#"id, user_id, pokemon, country, price, state, "timestamp""#
    };
}

fn sqlite_raw_order(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawOrder> {
    Ok(RawOrder {
        id: row.get(0)?,
        user_id: row.get(1)?,
        pokemon: row.get(2)?,
        country: row.get(3)?,
        price: row.get(4)?,
        state: row.get(5)?,
        timestamp: sqlite_parse_timestamp(row, 6)?,
    })
}

fn into_orders(raw: Vec<RawOrder>) -> SqliteResult<Vec<Order>> {
    raw.into_iter().map(|r| r.into_order().map_err(|e| StoreError::Backend(e).into())).collect()
}

fn sqlite_create(
    conn: &mut Connection,
    new: NewOrder,
    user_id: i32,
    now: NaiveDateTime,
    topic: Option<String>,
) -> SqliteResult<Order> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stamp = sqlite_timestamp(&now);
    let id: i64 = tx.query_row(
        r#"INSERT INTO poke_orders (user_id, pokemon, country, price, state, "timestamp")
           VALUES (?1, ?2, ?3, ?4, 'pending', ?5) RETURNING id"#,
        params![user_id, new.pokemon, new.country, new.price, stamp],
        |row| row.get(0),
    )?;
    let order = Order {
        id,
        user_id: i64::from(user_id),
        pokemon: new.pokemon,
        country: new.country,
        price: new.price,
        state: OrderState::Pending,
        timestamp: now,
    };
    if let Some(topic) = topic {
        tx.execute(
            "INSERT INTO poke_orders_outbox (order_id, topic, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, topic, order.to_kafka_json(), stamp],
        )?;
    }
    tx.commit()?;
    Ok(order)
}

fn sqlite_get(conn: &mut Connection, id: i64) -> SqliteResult<Option<Order>> {
    let raw = conn
        .query_row(
            concat!("SELECT ", sqlite_order_columns!(), " FROM poke_orders WHERE id = ?1"),
            [id],
            sqlite_raw_order,
        )
        .optional()?;
    Ok(raw.map(RawOrder::into_order).transpose().map_err(StoreError::Backend)?)
}

fn sqlite_list(
    conn: &mut Connection,
    state: Option<OrderState>,
    skip: i64,
    limit: i64,
) -> SqliteResult<Vec<Order>> {
    let raw = match state {
        Some(state) => {
            let mut stmt = conn.prepare_cached(concat!(
                "SELECT ",
                sqlite_order_columns!(),
                " FROM poke_orders WHERE state = ?1 ORDER BY id LIMIT ?2 OFFSET ?3"
            ))?;
            stmt.query_map(params![state.as_str(), limit, skip], sqlite_raw_order)?
                .collect::<Result<Vec<_>, _>>()?
        }
        None => {
            let mut stmt = conn.prepare_cached(concat!(
                "SELECT ",
                sqlite_order_columns!(),
                " FROM poke_orders ORDER BY id LIMIT ?1 OFFSET ?2"
            ))?;
            stmt.query_map(params![limit, skip], sqlite_raw_order)?.collect::<Result<Vec<_>, _>>()?
        }
    };
    into_orders(raw)
}

fn sqlite_set_state(conn: &mut Connection, id: i64, state: OrderState) -> SqliteResult<Option<Order>> {
    let raw = conn
        .query_row(
            concat!("UPDATE poke_orders SET state = ?1 WHERE id = ?2 RETURNING ", sqlite_order_columns!()),
            params![state.as_str(), id],
            sqlite_raw_order,
        )
        .optional()?;
    Ok(raw.map(RawOrder::into_order).transpose().map_err(StoreError::Backend)?)
}

fn sqlite_reverse(conn: &mut Connection, older_than: NaiveDateTime) -> SqliteResult<Vec<i64>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ids = {
        let mut stmt = tx.prepare_cached(
            r#"UPDATE poke_orders SET state = 'reversed'
               WHERE state = 'pending' AND "timestamp" < ?1 RETURNING id"#,
        )?;
        stmt.query_map([sqlite_timestamp(&older_than)], |row| row.get(0))?.collect::<Result<Vec<i64>, _>>()?
    };
    tx.commit()?;
    ids.sort_unstable();
    Ok(ids)
}

fn sqlite_counts(conn: &mut Connection) -> SqliteResult<Vec<(String, i64)>> {
    let mut stmt =
        conn.prepare_cached("SELECT state, COUNT(*) FROM poke_orders GROUP BY state ORDER BY state")?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn sqlite_outbox_pending(conn: &mut Connection, limit: i64) -> SqliteResult<Vec<OutboxRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, order_id, topic, payload, created_at, sent_at FROM poke_orders_outbox
         WHERE sent_at IS NULL ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |row| {
        let created_at = sqlite_parse_timestamp(row, 4)?.ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                4,
                rusqlite::types::Type::Null,
                "poke_orders_outbox.created_at is NULL".into(),
            )
        })?;
        Ok(OutboxRow {
            id: row.get(0)?,
            order_id: row.get(1)?,
            topic: row.get(2)?,
            payload: row.get(3)?,
            created_at,
            sent_at: sqlite_parse_timestamp(row, 5)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn sqlite_mark_sent(conn: &mut Connection, ids: &[i64], now: NaiveDateTime) -> SqliteResult<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut changed = 0u64;
    {
        let mut stmt = tx
            .prepare_cached("UPDATE poke_orders_outbox SET sent_at = ?1 WHERE id = ?2 AND sent_at IS NULL")?;
        let stamp = sqlite_timestamp(&now);
        for id in ids {
            changed += stmt.execute(params![stamp, id])? as u64;
        }
    }
    tx.commit()?;
    Ok(changed)
}

// ---------------------------------------------------------------------------------------------------------
// PostgreSQL

/// The PostgreSQL backend: a sqlx pool shared by all clones.
#[derive(Clone)]
pub struct PgStore {
    db: SharedPool<StoreError>,
}

/// The order columns, in `RawOrder` order, with the enum read as text.
macro_rules! pg_order_columns {
    () => {
        r#"id, user_id, pokemon, country, price, state::text AS state, "timestamp""#
    };
}

fn pg_raw_order(row: &PgRow) -> Result<RawOrder, sqlx::Error> {
    Ok(RawOrder {
        id: i64::from(row.try_get::<i32, _>(0)?),
        user_id: row.try_get::<Option<i32>, _>(1)?.map(i64::from),
        pokemon: row.try_get(2)?,
        country: row.try_get(3)?,
        price: row.try_get(4)?,
        state: row.try_get(5)?,
        timestamp: row.try_get(6)?,
    })
}

fn pg_outbox_row(row: &PgRow) -> Result<OutboxRow, sqlx::Error> {
    Ok(OutboxRow {
        id: row.try_get(0)?,
        order_id: row.try_get(1)?,
        topic: row.try_get(2)?,
        payload: row.try_get(3)?,
        created_at: row.try_get(4)?,
        sent_at: row.try_get(5)?,
    })
}

impl PgStore {
    async fn open(url: &str) -> Result<PgStore, StoreError> {
        let store = PgStore { db: SharedPool::connect(url, "", PG_MAX_CONNECTIONS).await? };
        let applied = store.migrate().await?;
        tracing::info!(place = %store.db.place(), migrations_applied = ?applied, "order store opened");
        Ok(store)
    }

    fn decode(&self, op: &str, raw: RawOrder) -> Result<Order, StoreError> {
        raw.into_order().map_err(|e| StoreError::Backend(format!("{}: {op}: {e}", self.db.place())))
    }

    /// Applies the missing migrations in one transaction, under an advisory lock so concurrent
    /// processes don't race; returns the versions applied.
    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.db.run("migrate", self.db.pool().begin()).await?;
        let applied: Vec<(i64, String)> = self
            .db
            .run("migrate", async {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_MIGRATION_LOCK)
                    .execute(&mut *tx)
                    .await?;
                sqlx::raw_sql(MIGRATIONS_TABLE).execute(&mut *tx).await?;
                sqlx::query_as("SELECT version, name FROM chaoslab_schema_migrations ORDER BY version")
                    .fetch_all(&mut *tx)
                    .await
            })
            .await?;
        let mut done = Vec::new();
        for m in pending_migrations(&applied, self.db.place())? {
            self.db
                .run("migrate", async {
                    sqlx::raw_sql(m.postgres).execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO chaoslab_schema_migrations (version, name) VALUES ($1, $2)")
                        .bind(m.version)
                        .bind(m.name)
                        .execute(&mut *tx)
                        .await
                })
                .await?;
            tracing::info!(
                place = %self.db.place(), version = m.version, name = m.name, "order store migration applied"
            );
            done.push(m.version);
        }
        self.db.run("migrate", tx.commit()).await?;
        Ok(done)
    }

    async fn create(
        &self,
        new: &NewOrder,
        user_id: i32,
        now: NaiveDateTime,
        outbox_topic: Option<&str>,
    ) -> Result<Order, StoreError> {
        self.db.run("create", async {
            let mut tx = self.db.pool().begin().await?;
            let id: i32 = sqlx::query_scalar(
                r#"INSERT INTO poke_orders (user_id, pokemon, country, price, state, "timestamp")
                   VALUES ($1, $2, $3, $4, 'pending', $5) RETURNING id"#,
            )
            .bind(user_id)
            .bind(&new.pokemon)
            .bind(&new.country)
            .bind(new.price)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let order = Order {
                id: i64::from(id),
                user_id: i64::from(user_id),
                pokemon: new.pokemon.clone(),
                country: new.country.clone(),
                price: new.price,
                state: OrderState::Pending,
                timestamp: now,
            };
            if let Some(topic) = outbox_topic {
                sqlx::query(
                    "INSERT INTO poke_orders_outbox (order_id, topic, payload, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(order.id)
                .bind(topic)
                .bind(order.to_kafka_json())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(order)
        })
        .await
    }

    async fn get(&self, id: i64) -> Result<Option<Order>, StoreError> {
        let Ok(id) = i32::try_from(id) else { return Ok(None) };
        let row = self
            .db
            .run(
                "get",
                sqlx::query(concat!("SELECT ", pg_order_columns!(), " FROM poke_orders WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.db.pool()),
            )
            .await?;
        row.map(|row| self.run_decode("get", &row)).transpose()
    }

    fn run_decode(&self, op: &str, row: &PgRow) -> Result<Order, StoreError> {
        let raw = pg_raw_order(row).map_err(|e| self.db.error(op, e))?;
        self.decode(op, raw)
    }

    async fn list(&self, state: Option<OrderState>, skip: i64, limit: i64) -> Result<Vec<Order>, StoreError> {
        let rows = match state {
            Some(state) => {
                let query = sqlx::query(concat!(
                    "SELECT ",
                    pg_order_columns!(),
                    " FROM poke_orders WHERE state = $1::orderstate ORDER BY id LIMIT $2 OFFSET $3"
                ));
                self.db
                    .run("list", query.bind(state.as_str()).bind(limit).bind(skip).fetch_all(self.db.pool()))
                    .await?
            }
            None => {
                let query = sqlx::query(concat!(
                    "SELECT ",
                    pg_order_columns!(),
                    " FROM poke_orders ORDER BY id LIMIT $1 OFFSET $2"
                ));
                self.db.run("list", query.bind(limit).bind(skip).fetch_all(self.db.pool())).await?
            }
        };
        rows.iter().map(|row| self.run_decode("list", row)).collect()
    }

    async fn set_state(&self, id: i64, state: OrderState) -> Result<Option<Order>, StoreError> {
        let Ok(id) = i32::try_from(id) else { return Ok(None) };
        let row = self
            .db
            .run(
                "set_state",
                sqlx::query(concat!(
                    "UPDATE poke_orders SET state = $1::orderstate WHERE id = $2 RETURNING ",
                    pg_order_columns!()
                ))
                .bind(state.as_str())
                .bind(id)
                .fetch_optional(self.db.pool()),
            )
            .await?;
        row.map(|row| self.run_decode("set_state", &row)).transpose()
    }

    async fn delete_all(&self) -> Result<u64, StoreError> {
        let done =
            self.db.run("delete_all", sqlx::query("DELETE FROM poke_orders").execute(self.db.pool())).await?;
        Ok(done.rows_affected())
    }

    async fn reverse_expired(&self, older_than: NaiveDateTime) -> Result<Vec<i64>, StoreError> {
        let ids: Vec<i32> = self
            .db
            .run(
                "reverse_expired",
                sqlx::query_scalar(
                    r#"UPDATE poke_orders SET state = 'reversed'
                       WHERE state = 'pending' AND "timestamp" < $1 RETURNING id"#,
                )
                .bind(older_than)
                .fetch_all(self.db.pool()),
            )
            .await?;
        let mut ids: Vec<i64> = ids.into_iter().map(i64::from).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.db
            .run(
                "counts_by_state",
                sqlx::query_as("SELECT state::text, count(*) FROM poke_orders GROUP BY state")
                    .fetch_all(self.db.pool()),
            )
            .await
    }

    async fn outbox_pending(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = self
            .db
            .run(
                "outbox_pending",
                sqlx::query(
                    "SELECT id, order_id, topic, payload, created_at, sent_at FROM poke_orders_outbox
                     WHERE sent_at IS NULL ORDER BY id LIMIT $1",
                )
                .bind(limit)
                .fetch_all(self.db.pool()),
            )
            .await?;
        rows.iter().map(|row| pg_outbox_row(row).map_err(|e| self.db.error("outbox_pending", e))).collect()
    }

    async fn outbox_mark_sent(&self, ids: &[i64], now: NaiveDateTime) -> Result<u64, StoreError> {
        let done = self
            .db
            .run(
                "outbox_mark_sent",
                sqlx::query(
                    "UPDATE poke_orders_outbox SET sent_at = $1 WHERE id = ANY($2) AND sent_at IS NULL",
                )
                .bind(now)
                .bind(ids)
                .execute(self.db.pool()),
            )
            .await?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db.run("ping", sqlx::query("SELECT 1").execute(self.db.pool())).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{postgres::sort_error as pg_error, sqlite::sort_error as sqlite_error};
    use chrono::{NaiveDate, TimeDelta};
    use sqlx::Connection as _;
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// 2024-08-14 05:00:00 plus `seconds`.
    fn at(seconds: i64) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2024, 8, 14).unwrap().and_hms_opt(5, 0, 0).unwrap()
            + TimeDelta::seconds(seconds)
    }

    fn new_order(user_id: i64, pokemon: &str, price: f64) -> NewOrder {
        NewOrder { user_id, pokemon: pokemon.into(), country: "Germany".into(), price }
    }

    fn counts(
        pending: u64,
        rejected: u64,
        failed: u64,
        success: u64,
        reversed: u64,
    ) -> BTreeMap<OrderState, u64> {
        BTreeMap::from([
            (OrderState::Pending, pending),
            (OrderState::Rejected, rejected),
            (OrderState::Failed, failed),
            (OrderState::Success, success),
            (OrderState::Reversed, reversed),
        ])
    }

    fn is_invalid<T: fmt::Debug>(result: Result<T, StoreError>) -> bool {
        matches!(result, Err(StoreError::Invalid(_)))
    }

    // ----- backend-independent checks, each on an empty store -----

    async fn check_full_api(store: &OrderStore) {
        store.ping().await.unwrap();
        assert_eq!(store.list(None, 0, 20).await.unwrap(), vec![]);
        assert_eq!(store.counts_by_state().await.unwrap(), counts(0, 0, 0, 0, 0));

        // Nanoseconds are cut to Python's microseconds before storing, so what comes back is what went in.
        let pikachu = new_order(1, "pikachu", 120.0);
        let a = store.create(&pikachu, at(0) + TimeDelta::nanoseconds(922_008_999), None).await.unwrap();
        assert_eq!((a.state, a.timestamp), (OrderState::Pending, at(0) + TimeDelta::microseconds(922_008)));
        let b = store.create(&new_order(2, "rapidash", 246.0), at(1), None).await.unwrap();
        let c = store.create(&new_order(5, "ditto", 3.5), at(2), None).await.unwrap();
        assert_eq!((b.id, c.id), (a.id + 1, a.id + 2), "autoincrement ids");
        assert_eq!(
            (b.user_id, b.pokemon.as_str(), b.country.as_str(), b.price),
            (2, "rapidash", "Germany", 246.0)
        );

        assert_eq!(store.get(a.id).await.unwrap(), Some(a.clone()));
        assert_eq!(store.get(c.id + 100).await.unwrap(), None);
        assert_eq!(store.get(i64::MAX).await.unwrap(), None);

        assert_eq!(store.list(None, 0, 20).await.unwrap(), vec![a.clone(), b.clone(), c.clone()]);
        assert_eq!(store.list(None, 1, 1).await.unwrap(), vec![b.clone()]);
        assert_eq!(store.list(None, 3, 20).await.unwrap(), vec![]);
        assert_eq!(store.list(None, 0, 0).await.unwrap(), vec![]);
        assert_eq!(store.list(None, 0, u64::MAX).await.unwrap().len(), 3, "huge limits are clamped");

        let b2 = store.set_state(b.id, OrderState::Success).await.unwrap().unwrap();
        assert_eq!(b2, Order { state: OrderState::Success, ..b.clone() });
        store.set_state(c.id, OrderState::Rejected).await.unwrap().unwrap();
        // No transition check, as the reference: reversed can go back to pending.
        store.set_state(a.id, OrderState::Reversed).await.unwrap().unwrap();
        assert_eq!(
            store.set_state(a.id, OrderState::Pending).await.unwrap().unwrap().state,
            OrderState::Pending
        );
        assert_eq!(store.set_state(c.id + 100, OrderState::Success).await.unwrap(), None);
        assert_eq!(store.get(b.id).await.unwrap(), Some(b2.clone()));

        assert_eq!(store.list(Some(OrderState::Success), 0, 20).await.unwrap(), vec![b2]);
        assert_eq!(store.list(Some(OrderState::Pending), 0, 20).await.unwrap(), vec![a.clone()]);
        assert_eq!(store.list(Some(OrderState::Failed), 0, 20).await.unwrap(), vec![]);
        assert_eq!(store.counts_by_state().await.unwrap(), counts(1, 1, 0, 1, 0));

        assert_eq!(store.delete_all().await.unwrap(), 3);
        assert_eq!(store.list(None, 0, 20).await.unwrap(), vec![]);
        assert_eq!(store.counts_by_state().await.unwrap(), counts(0, 0, 0, 0, 0));
        assert_eq!(store.delete_all().await.unwrap(), 0);
        let d = store.create(&new_order(3, "mew", 10.0), at(3), None).await.unwrap();
        assert_eq!(d.id, c.id + 1, "ids are not reused after a delete");

        // Values the reference's columns cannot hold are refused before reaching the database.
        assert!(is_invalid(store.create(&new_order(i64::from(i32::MAX) + 1, "mew", 1.0), at(0), None).await));
        assert!(is_invalid(store.create(&new_order(1, "mew", f64::NAN), at(0), None).await));
        assert!(is_invalid(store.create(&new_order(1, "mew\0", 1.0), at(0), None).await));
        let year_10000 = NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
        assert!(is_invalid(store.create(&new_order(1, "mew", 1.0), year_10000, None).await));
        assert_eq!(store.list(None, 0, 20).await.unwrap(), vec![d]);
    }

    async fn check_outbox(store: &OrderStore) {
        let o = store.create(&new_order(2, "rapidash", 246.0), at(10), Some("poke-orders")).await.unwrap();
        store.create(&new_order(3, "mew", 1.0), at(11), None).await.unwrap();
        let q = store.create(&new_order(4, "abra", 7.25), at(12), Some("poke-orders")).await.unwrap();

        let pending = store.outbox_pending(10).await.unwrap();
        assert_eq!(pending.len(), 2, "only orders created with a topic: {pending:?}");
        assert_eq!(
            pending[0],
            OutboxRow {
                id: pending[0].id,
                order_id: o.id,
                topic: "poke-orders".into(),
                payload: o.to_kafka_json(),
                created_at: at(10),
                sent_at: None,
            }
        );
        assert_eq!((pending[1].order_id, pending[1].payload.as_str()), (q.id, q.to_kafka_json().as_str()));
        assert!(pending[0].id < pending[1].id);
        assert_eq!(store.outbox_pending(1).await.unwrap(), vec![pending[0].clone()]);

        assert_eq!(store.outbox_mark_sent(&[pending[0].id], at(20)).await.unwrap(), 1);
        assert_eq!(store.outbox_mark_sent(&[pending[0].id], at(30)).await.unwrap(), 0, "already sent");
        assert_eq!(store.outbox_mark_sent(&[], at(30)).await.unwrap(), 0);
        assert_eq!(store.outbox_pending(10).await.unwrap(), vec![pending[1].clone()]);
        assert_eq!(store.outbox_mark_sent(&[pending[1].id, 999_999], at(31)).await.unwrap(), 1);
        assert_eq!(store.outbox_pending(10).await.unwrap(), vec![]);
    }

    /// The outbox insert fails (CHECK on the topic) after the order insert succeeded: neither row stays.
    async fn check_outbox_rollback(store: &OrderStore) {
        let too_long = "t".repeat(250);
        for topic in ["", too_long.as_str()] {
            let result = store.create(&new_order(2, "rapidash", 246.0), at(0), Some(topic)).await;
            assert!(is_invalid(result.clone()), "topic {topic:?}: {result:?}");
        }
        assert_eq!(store.list(None, 0, 20).await.unwrap(), vec![], "the order insert was rolled back");
        assert_eq!(store.counts_by_state().await.unwrap(), counts(0, 0, 0, 0, 0));
        assert_eq!(store.outbox_pending(10).await.unwrap(), vec![]);
        let ok = store.create(&new_order(2, "rapidash", 246.0), at(0), Some("poke-orders")).await.unwrap();
        assert_eq!(store.list(None, 0, 20).await.unwrap(), vec![ok]);
        assert_eq!(store.outbox_pending(10).await.unwrap().len(), 1);
    }

    async fn check_reverse_expired(store: &OrderStore) {
        let cutoff = at(100);
        let mew = new_order(1, "mew", 1.0);
        let just_before = store.create(&mew, cutoff - TimeDelta::microseconds(1), None).await.unwrap();
        let exactly = store.create(&new_order(1, "mew", 1.0), cutoff, None).await.unwrap();
        let after = store.create(&new_order(1, "mew", 1.0), at(101), None).await.unwrap();
        let old_success = store.create(&new_order(1, "mew", 1.0), at(0), None).await.unwrap();
        store.set_state(old_success.id, OrderState::Success).await.unwrap();
        let old_rejected = store.create(&new_order(1, "mew", 1.0), at(0), None).await.unwrap();
        store.set_state(old_rejected.id, OrderState::Rejected).await.unwrap();
        let old_pending = store.create(&new_order(1, "mew", 1.0), at(0), None).await.unwrap();

        assert_eq!(store.reverse_expired(cutoff).await.unwrap(), vec![just_before.id, old_pending.id]);
        assert_eq!(store.reverse_expired(cutoff).await.unwrap(), Vec::<i64>::new(), "already reversed");
        assert_eq!(
            store.get(exactly.id).await.unwrap().unwrap().state,
            OrderState::Pending,
            "not strictly older"
        );
        assert_eq!(store.get(after.id).await.unwrap().unwrap().state, OrderState::Pending);
        assert_eq!(store.get(old_success.id).await.unwrap().unwrap().state, OrderState::Success);
        assert_eq!(store.get(old_rejected.id).await.unwrap().unwrap().state, OrderState::Rejected);
        assert_eq!(store.counts_by_state().await.unwrap(), counts(2, 1, 0, 1, 2));
        // Reversal order is by id whatever the timestamps: a later cutoff takes the rest.
        assert_eq!(store.reverse_expired(at(200)).await.unwrap(), vec![exactly.id, after.id]);
    }

    // ----- SQLite -----

    async fn memory(blocking_pool: bool) -> OrderStore {
        OrderStore::open("sqlite::memory:", blocking_pool).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn sqlite_memory_full_api_in_sim_mode() {
        let store = memory(false).await;
        assert_eq!((store.backend(), store.place()), ("sqlite", "sqlite :memory:"));
        check_full_api(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_memory_full_api_on_the_blocking_pool() {
        check_full_api(&memory(true).await).await;
    }

    #[tokio::test(start_paused = true)]
    async fn sim_mode_calls_never_yield_to_the_runtime() {
        // A timer that would fire if a store call left the runtime idle (auto-advance) or yielded.
        let fired = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&fired);
        let sleeper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            flag.store(true, Ordering::SeqCst);
        });
        let start = tokio::time::Instant::now();
        let store = memory(false).await;
        for i in 0..50 {
            let order = store.create(&new_order(1, "mew", 1.0), at(i), Some("poke-orders")).await.unwrap();
            store.set_state(order.id, OrderState::Success).await.unwrap();
            store.list(None, 0, 10).await.unwrap();
        }
        store.reverse_expired(at(1000)).await.unwrap();
        store.counts_by_state().await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO, "virtual time moved");
        assert!(!fired.load(Ordering::SeqCst) && !sleeper.is_finished(), "another task ran in between");
        sleeper.await.unwrap();
        assert!(fired.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn sqlite_outbox_is_written_with_the_order() {
        check_outbox(&memory(false).await).await;
    }

    #[tokio::test]
    async fn sqlite_failing_outbox_insert_leaves_neither_row() {
        let store = memory(false).await;
        check_outbox_rollback(&store).await;
        // SQLite's AUTOINCREMENT counter is transactional too: the rolled-back inserts used no id.
        assert_eq!(store.list(None, 0, 20).await.unwrap()[0].id, 1);
    }

    #[tokio::test]
    async fn sqlite_reverse_expired_boundaries() {
        check_reverse_expired(&memory(false).await).await;
    }

    #[tokio::test]
    async fn sqlite_file_reopen_keeps_data_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.db");
        let url = format!("sqlite://{}", path.display());
        let store = OrderStore::open(&url, false).await.unwrap();
        assert_eq!(store.place(), format!("sqlite {}", path.display()));
        let a = store.create(&new_order(1, "pikachu", 120.0), at(0), Some("poke-orders")).await.unwrap();
        let b = store.create(&new_order(2, "rapidash", 246.0), at(1), None).await.unwrap();
        store.set_state(b.id, OrderState::Success).await.unwrap();
        drop(store);

        for _ in 0..2 {
            let store = OrderStore::open_sqlite_file(&path, true).await.unwrap();
            let orders = store.list(None, 0, 20).await.unwrap();
            assert_eq!(orders, vec![a.clone(), Order { state: OrderState::Success, ..b.clone() }]);
            assert_eq!(store.outbox_pending(10).await.unwrap()[0].payload, a.to_kafka_json());
        }
        let store = OrderStore::open(&url, false).await.unwrap();
        assert_eq!(store.create(&new_order(3, "mew", 1.0), at(2), None).await.unwrap().id, b.id + 1);
        drop(store);

        let raw = Connection::open(&path).unwrap();
        let migrations: Vec<(i64, String)> = raw
            .prepare("SELECT version, name FROM chaoslab_schema_migrations ORDER BY version")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(migrations, vec![(1, "poke_orders".to_string()), (2, "poke_orders_outbox".to_string())]);
        let mode: String = raw.query_row("PRAGMA journal_mode", [], |row| row.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let indexes: Vec<String> = raw
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'poke_orders' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            indexes,
            [
                "ix_poke_orders_country",
                "ix_poke_orders_id",
                "ix_poke_orders_pokemon",
                "ix_poke_orders_user_id"
            ]
        );
        let bad_state = raw.execute("INSERT INTO poke_orders (price, state) VALUES (1.0, 'shipped')", []);
        assert!(bad_state.unwrap_err().to_string().contains("CHECK constraint failed: orderstate"));
        let stored: String =
            raw.query_row(r#"SELECT "timestamp" FROM poke_orders WHERE id = 1"#, [], |r| r.get(0)).unwrap();
        assert_eq!(stored, "2024-08-14 05:00:00.000000", "SQLAlchemy's fixed-width text");

        // A database migrated by a newer chaoslab is refused rather than misread.
        raw.execute("INSERT INTO chaoslab_schema_migrations (version, name) VALUES (3, 'future')", [])
            .unwrap();
        drop(raw);
        let err = OrderStore::open(&url, false).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains("schema version 3 (\"future\") is newer")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn sqlite_null_columns_from_a_foreign_writer_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.db");
        let store = OrderStore::open_sqlite_file(&path, false).await.unwrap();
        let raw = Connection::open(&path).unwrap();
        raw.execute("INSERT INTO poke_orders (price, state) VALUES (1.0, 'pending')", []).unwrap();
        let err = store.get(1).await.unwrap_err();
        assert!(matches!(&err, StoreError::Backend(m) if m.contains("column user_id is NULL")), "{err}");
    }

    #[test]
    fn urls_name_the_backend() {
        assert_eq!(parse_url("sqlite::memory:").unwrap(), Target::SqliteMemory);
        assert_eq!(parse_url("sqlite://:memory:").unwrap(), Target::SqliteMemory);
        assert_eq!(parse_url("sqlite://out/orders.db").unwrap(), Target::SqliteFile("out/orders.db".into()));
        assert_eq!(
            parse_url("sqlite:///tmp/orders.db").unwrap(),
            Target::SqliteFile("/tmp/orders.db".into())
        );
        assert_eq!(parse_url("sqlite:orders.db").unwrap(), Target::SqliteFile("orders.db".into()));
        assert_eq!(parse_url("postgres://u:p@h:5433/poke_orders").unwrap(), Target::Postgres);
        assert_eq!(parse_url("postgresql://h/db").unwrap(), Target::Postgres);
        for bad in ["sqlite://", "sqlite://x.db?mode=rwc", "mysql://u:secret@h/db", "orders.db"] {
            let err = parse_url(bad).unwrap_err();
            assert!(matches!(err, StoreError::Invalid(_)), "{bad}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn errors_are_sorted_for_the_api() {
        let sqlite = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        assert!(matches!(
            sqlite_error("p", "op", sqlite(rusqlite::ffi::SQLITE_BUSY)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            sqlite_error("p", "op", sqlite(rusqlite::ffi::SQLITE_FULL)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            sqlite_error("p", "op", sqlite(rusqlite::ffi::SQLITE_CONSTRAINT)),
            StoreError::Invalid(_)
        ));
        assert!(matches!(
            sqlite_error("p", "op", sqlite(rusqlite::ffi::SQLITE_CORRUPT)),
            StoreError::Backend(_)
        ));
        let message = sqlite_error::<StoreError>("sqlite x.db", "create", sqlite(rusqlite::ffi::SQLITE_BUSY))
            .to_string();
        assert!(message.starts_with("order store unavailable: sqlite x.db: create: "), "{message}");
        assert!(matches!(pg_error("p", "op", sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(pg_error("p", "op", sqlx::Error::Io(refused)), StoreError::Unavailable(_)));
        assert!(matches!(pg_error("p", "op", sqlx::Error::RowNotFound), StoreError::Backend(_)));
    }

    // ----- PostgreSQL -----

    /// A PostgreSQL server for tests: the one `CHAOSLAB_TEST_DATABASE_URL` names (a role allowed to create
    /// databases), else a throwaway cluster started here, else none (a SKIP line is printed).
    struct PgTest {
        admin_url: String,
        cluster: Option<PgCluster>,
        tag: &'static str,
        created: Mutex<Vec<String>>,
    }

    async fn pg_test(tag: &'static str) -> Option<PgTest> {
        if let Ok(url) = std::env::var("CHAOSLAB_TEST_DATABASE_URL")
            && !url.is_empty()
        {
            return Some(PgTest { admin_url: url, cluster: None, tag, created: Mutex::new(Vec::new()) });
        }
        match PgCluster::start_new() {
            Ok(Some(cluster)) => Some(PgTest {
                admin_url: cluster.admin_url(),
                cluster: Some(cluster),
                tag,
                created: Mutex::new(Vec::new()),
            }),
            Ok(None) => {
                eprintln!("SKIP {tag}: no PostgreSQL (set CHAOSLAB_TEST_DATABASE_URL or install postgresql)");
                None
            }
            Err(e) => panic!("could not start a throwaway PostgreSQL cluster: {e}"),
        }
    }

    impl PgTest {
        /// A fresh, empty database; returns its URL.
        async fn database(&self, name: &str) -> String {
            let db = format!("chaoslab_{}_{name}_{}", self.tag, std::process::id());
            let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
            for sql in [format!("DROP DATABASE IF EXISTS {db}"), format!("CREATE DATABASE {db}")] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
            }
            conn.close().await.unwrap();
            self.created.lock().unwrap().push(db.clone());
            url_with_database(&self.admin_url, &db)
        }

        /// Drops the databases made on a server we don't own (a throwaway cluster goes away whole).
        async fn finish(self) {
            if self.cluster.is_some() {
                return;
            }
            let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
            let created = std::mem::take(&mut *self.created.lock().unwrap());
            for db in created {
                let sql = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
            }
            conn.close().await.unwrap();
        }
    }

    /// `url` with its database replaced by `db` (user, host, port and options kept).
    fn url_with_database(url: &str, db: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (before_query, query) = match rest.split_once('?') {
            Some((before, query)) => (before, format!("?{query}")),
            None => (rest, String::new()),
        };
        let authority = before_query.split('/').next().unwrap();
        format!("{scheme}://{authority}/{db}{query}")
    }

    /// A throwaway PostgreSQL cluster in a temporary directory, on a free loopback port, run as the
    /// `postgres` user when we are root (PostgreSQL refuses root). Stopped when dropped.
    struct PgCluster {
        bindir: PathBuf,
        port: u16,
        as_postgres: bool,
        dir: tempfile::TempDir,
    }

    /// Runs a command to completion; its output on failure.
    fn run(cmd: &mut Command) -> Result<String, String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            Ok(text.trim().to_string())
        } else {
            Err(format!("{cmd:?}: {}: {text}", out.status))
        }
    }

    impl PgCluster {
        /// `CHAOSLAB_PG_BINDIR`, else the newest `/usr/lib/postgresql/<major>/bin` that has `initdb`.
        fn find_bindir() -> Option<PathBuf> {
            if let Some(dir) = std::env::var_os("CHAOSLAB_PG_BINDIR") {
                return Some(PathBuf::from(dir)).filter(|d| d.join("initdb").exists());
            }
            let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|entry| {
                    let entry = entry.ok()?;
                    let major: u32 = entry.file_name().to_str()?.parse().ok()?;
                    let bin = entry.path().join("bin");
                    bin.join("initdb").exists().then_some((major, bin))
                })
                .collect();
            found.sort();
            found.pop().map(|(_, bin)| bin)
        }

        /// Initialises and starts a cluster; `Ok(None)` when no PostgreSQL binaries are installed.
        fn start_new() -> Result<Option<PgCluster>, String> {
            let Some(bindir) = PgCluster::find_bindir() else { return Ok(None) };
            let as_postgres = run(Command::new("id").arg("-u"))? == "0";
            let dir = tempfile::Builder::new().prefix("chaoslab-pg-").tempdir().map_err(|e| e.to_string())?;
            if as_postgres {
                let uid = run(Command::new("id").args(["-u", "postgres"]))?
                    .parse::<u32>()
                    .map_err(|e| e.to_string())?;
                let gid = run(Command::new("id").args(["-g", "postgres"]))?
                    .parse::<u32>()
                    .map_err(|e| e.to_string())?;
                std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            }
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            let cluster = PgCluster { bindir, port, as_postgres, dir };
            run(cluster.tool("initdb").arg("-D").arg(cluster.data()).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]))?;
            cluster.start()?;
            Ok(Some(cluster))
        }

        fn data(&self) -> PathBuf {
            self.dir.path().join("data")
        }

        /// A PostgreSQL program, run as `postgres` when we are root.
        fn tool(&self, name: &str) -> Command {
            let program = self.bindir.join(name);
            let mut cmd = if self.as_postgres {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", "postgres", "--"]).arg(program);
                cmd
            } else {
                Command::new(program)
            };
            cmd.current_dir(self.dir.path());
            cmd
        }

        fn start(&self) -> Result<(), String> {
            let log = self.dir.path().join("server.log");
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                self.dir.path().display()
            );
            run(self
                .tool("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options, "start"]))
            .map(|_| ())
            .map_err(|e| format!("{e}\nserver log:\n{}", std::fs::read_to_string(&log).unwrap_or_default()))
        }

        fn stop(&self, mode: &str) -> Result<(), String> {
            run(self.tool("pg_ctl").arg("-D").arg(self.data()).args(["-m", mode, "-w", "stop"])).map(|_| ())
        }

        fn admin_url(&self) -> String {
            format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
        }
    }

    impl Drop for PgCluster {
        fn drop(&mut self) {
            if let Err(e) = self.stop("immediate") {
                eprintln!("stopping the throwaway PostgreSQL cluster: {e}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_full_api_outbox_and_reversal() {
        let Some(pg) = pg_test("api").await else { return };
        let store = OrderStore::open(&pg.database("api").await, true).await.unwrap();
        assert_eq!(store.backend(), "postgres");
        assert!(
            store.place().starts_with("postgres 127.0.0.1:") || pg.cluster.is_none(),
            "{}",
            store.place()
        );
        check_full_api(&store).await;
        check_outbox(&OrderStore::open(&pg.database("outbox").await, true).await.unwrap()).await;
        check_outbox_rollback(&OrderStore::open(&pg.database("rollback").await, true).await.unwrap()).await;
        check_reverse_expired(&OrderStore::open(&pg.database("reverse").await, true).await.unwrap()).await;
        pg.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_schema_matches_the_reference_and_migrations_are_idempotent() {
        let Some(pg) = pg_test("schema").await else { return };
        let url = pg.database("schema").await;
        // Two processes opening a fresh database at once: the advisory lock serialises them.
        let (first, second) = tokio::join!(OrderStore::open(&url, false), OrderStore::open(&url, false));
        first.unwrap();
        let store = second.unwrap();
        store.create(&new_order(1, "mew", 1.0), at(0), None).await.unwrap();
        let store = OrderStore::open(&url, false).await.unwrap();
        assert_eq!(store.list(None, 0, 20).await.unwrap().len(), 1, "reopening keeps the data");

        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let migrations: Vec<(i64, String)> =
            sqlx::query_as("SELECT version, name FROM chaoslab_schema_migrations ORDER BY version")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(migrations, vec![(1, "poke_orders".to_string()), (2, "poke_orders_outbox".to_string())]);
        let labels: Vec<String> = sqlx::query_scalar(
            "SELECT e.enumlabel::text FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
             WHERE t.typname = 'orderstate' ORDER BY e.enumsortorder",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(labels, ["pending", "rejected", "failed", "success", "reversed"]);
        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns
             WHERE table_name = 'poke_orders' ORDER BY ordinal_position",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let expected = [
            ("id", "integer", "NO"),
            ("user_id", "integer", "YES"),
            ("pokemon", "character varying", "YES"),
            ("country", "character varying", "YES"),
            ("price", "double precision", "NO"),
            ("state", "USER-DEFINED", "NO"),
            ("timestamp", "timestamp without time zone", "YES"),
        ];
        let columns: Vec<(&str, &str, &str)> =
            columns.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
        assert_eq!(columns, expected);
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE tablename = 'poke_orders' ORDER BY indexname",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            indexes,
            [
                "ix_poke_orders_country",
                "ix_poke_orders_id",
                "ix_poke_orders_pokemon",
                "ix_poke_orders_user_id",
                "poke_orders_pkey"
            ]
        );
        let bad = sqlx::query("INSERT INTO poke_orders (price, state) VALUES (1.0, 'shipped')")
            .execute(&mut conn)
            .await;
        assert!(bad.unwrap_err().to_string().contains("invalid input value for enum orderstate"));
        conn.close().await.unwrap();
        pg.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_adopts_a_database_the_reference_created() {
        let Some(pg) = pg_test("adopt").await else { return };
        let url = pg.database("adopt").await;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        // What Alembic revision 245615355322 creates, and a row the reference's API wrote.
        sqlx::raw_sql(
            "CREATE TYPE orderstate AS ENUM ('pending', 'rejected', 'failed', 'success', 'reversed');
             CREATE TABLE poke_orders (id SERIAL NOT NULL, user_id INTEGER, pokemon VARCHAR, country VARCHAR,
                 price FLOAT NOT NULL, state orderstate NOT NULL, timestamp TIMESTAMP WITHOUT TIME ZONE,
                 PRIMARY KEY (id));
             CREATE INDEX ix_poke_orders_id ON poke_orders (id);
             INSERT INTO poke_orders (user_id, pokemon, country, price, state, timestamp)
                 VALUES (2, 'rapidash', 'Germany', 246, 'pending', '2024-08-14 05:38:58.922008');",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        let store = OrderStore::open(&url, false).await.unwrap();
        let order = store.get(1).await.unwrap().unwrap();
        assert_eq!(
            order.to_kafka_json(),
            r#"{"id": 1, "user_id": 2, "pokemon": "rapidash", "country": "Germany", "price": 246.0, "state": "pending", "timestamp": "2024-08-14 05:38:58.922008"}"#
        );
        assert_eq!(store.create(&new_order(1, "mew", 1.0), at(0), Some("poke-orders")).await.unwrap().id, 2);
        pg.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_down_is_unavailable_and_the_pool_reconnects() {
        // This test stops and restarts the server, so it always uses a cluster of its own.
        let cluster = match PgCluster::start_new() {
            Ok(Some(cluster)) => cluster,
            Ok(None) => {
                eprintln!(
                    "SKIP postgres_down_is_unavailable_and_the_pool_reconnects: no PostgreSQL binaries"
                );
                return;
            }
            Err(e) => panic!("could not start a throwaway PostgreSQL cluster: {e}"),
        };
        let store = OrderStore::open(&cluster.admin_url(), true).await.unwrap();
        let before = store.create(&new_order(2, "rapidash", 246.0), at(0), None).await.unwrap();

        cluster.stop("fast").unwrap();
        let started = std::time::Instant::now();
        let err = store.get(before.id).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(
            started.elapsed() < PG_ACQUIRE_TIMEOUT + Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        let err = store.create(&new_order(3, "mew", 1.0), at(1), Some("poke-orders")).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        let err = OrderStore::open(&cluster.admin_url(), true).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "opening while down: {err}");

        cluster.start().unwrap();
        // The first call after the restart already works: the pool drops dead connections by itself.
        assert_eq!(store.get(before.id).await.unwrap(), Some(before.clone()));
        let after = store.create(&new_order(3, "mew", 1.0), at(1), None).await.unwrap();
        assert_eq!(after.id, before.id + 1);
        store.ping().await.unwrap();
    }
}
