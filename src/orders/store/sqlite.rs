//! The SQLite backend of the order store: rusqlite on one shared connection.

use std::path::PathBuf;

use chrono::{Datelike, NaiveDateTime, Timelike};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{MIGRATIONS_TABLE, OutboxRow, RawOrder, StoreError, pending_migrations};
use crate::orders::model::{self, NewOrder, Order, OrderState};
use crate::storage::sqlite::{OpResult, SharedConnection};

/// The SQLite backend: one rusqlite connection shared by all clones.
#[derive(Clone)]
pub struct SqliteStore {
    pub(super) db: SharedConnection<StoreError>,
}

/// What a call on the SQLite connection returns.
pub(super) type SqliteResult<T> = OpResult<T, StoreError>;

impl SqliteStore {
    /// Opens the file (`None`: a private in-memory database) and migrates it, on the blocking pool when
    /// `blocking_pool`.
    pub(super) async fn open(path: Option<PathBuf>, blocking_pool: bool) -> Result<SqliteStore, StoreError> {
        let (db, applied) =
            SharedConnection::open(path, "", blocking_pool, "migrate", sqlite_migrate).await?;
        tracing::info!(place = %db.place(), migrations_applied = ?applied, "order store opened");
        Ok(SqliteStore { db })
    }
}

/// Applies the missing migrations in one immediate transaction; returns the versions applied.
pub(super) fn sqlite_migrate(conn: &mut Connection, place: &str) -> SqliteResult<Vec<i64>> {
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
pub(super) fn sqlite_timestamp(ts: &NaiveDateTime) -> String {
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

pub(super) fn sqlite_parse_timestamp(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<NaiveDateTime>> {
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

pub(super) fn sqlite_raw_order(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawOrder> {
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

pub(super) fn sqlite_create(
    conn: &mut Connection,
    new: NewOrder,
    user_id: i32,
    now: NaiveDateTime,
    topic: Option<String>,
) -> SqliteResult<Order> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stamp = sqlite_timestamp(&now);
    // Cached statements: an order's few statements run thousands of times a second in a fast run, and
    // preparing each anew was a fifth of a sim run's time.
    let id: i64 = tx
        .prepare_cached(
            r#"INSERT INTO poke_orders (user_id, pokemon, country, price, state, "timestamp")
               VALUES (?1, ?2, ?3, ?4, 'pending', ?5) RETURNING id"#,
        )?
        .query_row(params![user_id, new.pokemon, new.country, new.price, stamp], |row| row.get(0))?;
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
        tx.prepare_cached(
            "INSERT INTO poke_orders_outbox (order_id, topic, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![id, topic, order.to_kafka_json(), stamp])?;
    }
    tx.commit()?;
    Ok(order)
}

pub(super) fn sqlite_get(conn: &mut Connection, id: i64) -> SqliteResult<Option<Order>> {
    let raw = conn
        .prepare_cached(concat!("SELECT ", sqlite_order_columns!(), " FROM poke_orders WHERE id = ?1"))?
        .query_row([id], sqlite_raw_order)
        .optional()?;
    Ok(raw.map(RawOrder::into_order).transpose().map_err(StoreError::Backend)?)
}

pub(super) fn sqlite_list_after(conn: &mut Connection, after: i64, limit: i64) -> SqliteResult<Vec<Order>> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        sqlite_order_columns!(),
        " FROM poke_orders WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))?;
    let raw = stmt.query_map(params![after, limit], sqlite_raw_order)?.collect::<Result<Vec<_>, _>>()?;
    into_orders(raw)
}

pub(super) fn sqlite_list(
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

pub(super) fn sqlite_set_state(
    conn: &mut Connection,
    id: i64,
    state: OrderState,
) -> SqliteResult<Option<Order>> {
    let raw = conn
        .prepare_cached(concat!(
            "UPDATE poke_orders SET state = ?1 WHERE id = ?2 RETURNING ",
            sqlite_order_columns!()
        ))?
        .query_row(params![state.as_str(), id], sqlite_raw_order)
        .optional()?;
    Ok(raw.map(RawOrder::into_order).transpose().map_err(StoreError::Backend)?)
}

pub(super) fn sqlite_reverse(conn: &mut Connection, older_than: NaiveDateTime) -> SqliteResult<Vec<i64>> {
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

pub(super) fn sqlite_counts(conn: &mut Connection) -> SqliteResult<Vec<(String, i64)>> {
    let mut stmt =
        conn.prepare_cached("SELECT state, COUNT(*) FROM poke_orders GROUP BY state ORDER BY state")?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn sqlite_outbox_pending(conn: &mut Connection, limit: i64) -> SqliteResult<Vec<OutboxRow>> {
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

pub(super) fn sqlite_mark_sent(conn: &mut Connection, ids: &[i64], now: NaiveDateTime) -> SqliteResult<u64> {
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

/// Orders by increasing id from a finished run's SQLite file, read-only (the dashboard's replay): at most
/// `limit` after skipping `skip`, optionally only those in `state`.
pub fn read_file(
    path: &std::path::Path,
    state: Option<OrderState>,
    skip: u64,
    limit: u64,
) -> Result<Vec<Order>, StoreError> {
    let place = path.display().to_string();
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| {
        crate::storage::sqlite::OpError::<StoreError>::Sql(e).into_store_error(&place, "open")
    })?;
    let (skip, limit) = (i64::try_from(skip).unwrap_or(i64::MAX), i64::try_from(limit).unwrap_or(i64::MAX));
    sqlite_list(&mut conn, state, skip, limit).map_err(|e| e.into_store_error(&place, "list"))
}
