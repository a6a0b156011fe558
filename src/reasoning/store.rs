//! The signal store: every signal the reasoner processes, one row each, as the reference's Flink reasoner
//! wrote them to Cassandra (`incident_analytics.signals(uuid uuid PRIMARY KEY, timestamp timestamp,
//! signal_name text, pipeline_component text)`), in SQLite or PostgreSQL behind one type, [`SignalStore`].
//!
//! - **SQLite** (the default, `sqlite://<out>/signals.db` or `sqlite::memory:`) goes through `rusqlite` on
//!   one connection shared by all clones, the plumbing the order store uses too ([`crate::storage::sqlite`]):
//!   in sim mode (`blocking_pool = false`) a call is one uninterrupted step, so the run stays a function
//!   of the seed; in live mode each call moves to tokio's blocking pool.
//! - **PostgreSQL** (`postgres://…`, `postgresql://…`) goes through a sqlx pool
//!   ([`crate::storage::postgres`]) with short acquire and operation timeouts, so a down server is
//!   [`SignalStoreError::Unavailable`] quickly. Live mode only.
//!
//! The table name is a parameter (default [`DEFAULT_TABLE`]) so that several runs can share one PostgreSQL
//! database without mixing their signals. It is checked to be a plain lowercase identifier and is always
//! quoted, which is what makes splicing it into SQL text safe. The table is created if missing (with an
//! index on `("timestamp", uuid)`), and a table that exists without the expected columns is refused.
//!
//! Timestamps are epoch milliseconds, as Cassandra's `timestamp`: `INTEGER` in SQLite, `TIMESTAMPTZ` in
//! PostgreSQL, limited to years 1..=9999 so both backends hold exactly the same values. A uuid is the
//! primary key: recording one twice is [`SignalStoreError::Duplicate`], never an overwrite. Reads come back
//! ordered by timestamp then uuid (byte order, the same in both backends), so they are deterministic.
//! Nothing here reads the clock or draws a uuid: the caller passes both.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use crate::storage::postgres::SharedPool;
use crate::storage::sqlite::{OpResult, SharedConnection};
use crate::storage::{self, FromSqlError, SqlErrorKind, Target};

pub use crate::storage::postgres::{
    ACQUIRE_TIMEOUT as PG_ACQUIRE_TIMEOUT, OPERATION_TIMEOUT as PG_OPERATION_TIMEOUT,
};
pub use crate::storage::sqlite::BUSY_TIMEOUT as SQLITE_BUSY_TIMEOUT;

/// The table signals go to unless the caller names another (the reference's `signals`).
pub const DEFAULT_TABLE: &str = "signals";
/// Longest accepted table name, leaving room under PostgreSQL's 63-byte identifiers for the index name.
pub const MAX_TABLE_NAME_CHARS: usize = 48;
/// The earliest storable timestamp: 0001-01-01T00:00:00.000Z in epoch milliseconds.
pub const MIN_TIMESTAMP_MS: i64 = -62_135_596_800_000;
/// The latest storable timestamp: 9999-12-31T23:59:59.999Z in epoch milliseconds.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;
/// Connections in the PostgreSQL pool (the reasoner writes from one task).
pub const PG_MAX_CONNECTIONS: u32 = 4;

/// Advisory-lock key serialising concurrent table creation in PostgreSQL ("chlbsgnl" in ASCII).
const PG_SETUP_LOCK: i64 = 0x6368_6c62_7367_6e6c;

/// The columns every signal table must have, in the reference's order.
const COLUMNS: [&str; 4] = ["uuid", "timestamp", "signal_name", "pipeline_component"];

/// Why a signal store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalStoreError {
    /// The database cannot be reached right now (connection refused or lost, pool timeout, file locked):
    /// a later call may succeed.
    #[error("signal store unavailable: {0}")]
    Unavailable(String),
    /// The request itself is wrong (bad URL or table name, value out of range, table of another shape):
    /// retrying won't help.
    #[error("invalid signal store request: {0}")]
    Invalid(String),
    /// A signal with this uuid is already in the table (or twice in one batch); nothing was written.
    #[error("{place}: signal uuid {uuid} is already recorded (uuid is the primary key)")]
    Duplicate {
        /// Where: backend, file or server, and table.
        place: String,
        /// The uuid recorded twice.
        uuid: Uuid,
    },
    /// Anything else the database reported, or a row it returned that makes no sense.
    #[error("signal store failure: {0}")]
    Backend(String),
}

impl FromSqlError for SignalStoreError {
    fn from_sql_error(kind: SqlErrorKind, message: String) -> Self {
        match kind {
            SqlErrorKind::Unavailable => SignalStoreError::Unavailable(message),
            SqlErrorKind::Invalid => SignalStoreError::Invalid(message),
            SqlErrorKind::Backend => SignalStoreError::Backend(message),
        }
    }
}

/// One row of the signal table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignalRow {
    /// Primary key, drawn by the caller from the run's seeded generator.
    pub uuid: Uuid,
    /// When the signal happened, epoch milliseconds (column `timestamp`).
    pub timestamp_ms: i64,
    /// The signal's name (column `signal_name`).
    pub name: String,
    /// The pipeline component it came from (column `pipeline_component`).
    pub component: String,
}

impl SignalRow {
    /// A row from its four values.
    pub fn new(uuid: Uuid, timestamp_ms: i64, name: impl Into<String>, component: impl Into<String>) -> Self {
        SignalRow { uuid, timestamp_ms, name: name.into(), component: component.into() }
    }
}

/// The signal store: cheap to clone, all clones share the connection or pool.
#[derive(Clone)]
pub enum SignalStore {
    /// Embedded SQLite through rusqlite.
    Sqlite(SqliteSignalStore),
    /// PostgreSQL through a sqlx pool.
    Postgres(PgSignalStore),
}

impl fmt::Debug for SignalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SignalStore").field(&self.place()).finish()
    }
}

impl SignalStore {
    /// Opens the store named by `url` (`sqlite://<path>`, `sqlite:<path>`, `sqlite::memory:`,
    /// `postgres://…` or `postgresql://…`) and creates `table` there if missing.
    ///
    /// `blocking_pool` runs each SQLite call on tokio's blocking pool (live mode); `false` runs it in the
    /// calling task (sim mode). PostgreSQL ignores it.
    pub async fn open(url: &str, blocking_pool: bool, table: &str) -> Result<SignalStore, SignalStoreError> {
        check_table_name(table)?;
        let table: Arc<str> = table.into();
        match parse_url(url)? {
            Target::SqliteMemory => SignalStore::open_sqlite(None, blocking_pool, table).await,
            Target::SqliteFile(path) => SignalStore::open_sqlite(Some(path), blocking_pool, table).await,
            Target::Postgres => PgSignalStore::open(url, table).await.map(SignalStore::Postgres),
        }
    }

    /// Opens (creating if needed) the SQLite file at `path`, e.g. `<out>/signals.db`, with the
    /// [`DEFAULT_TABLE`].
    pub async fn open_sqlite_file(path: &Path, blocking_pool: bool) -> Result<SignalStore, SignalStoreError> {
        SignalStore::open_sqlite(Some(path.to_path_buf()), blocking_pool, DEFAULT_TABLE.into()).await
    }

    /// Opens a SQLite file (`None`: a private in-memory database), on the blocking pool in live mode.
    async fn open_sqlite(
        path: Option<PathBuf>,
        blocking_pool: bool,
        table: Arc<str>,
    ) -> Result<SignalStore, SignalStoreError> {
        SqliteSignalStore::open(path, blocking_pool, table).await.map(SignalStore::Sqlite)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            SignalStore::Sqlite(_) => "sqlite",
            SignalStore::Postgres(_) => "postgres",
        }
    }

    /// Where the signals live, backend, file or server, and table, for logs and errors (never contains a
    /// password).
    pub fn place(&self) -> &str {
        match self {
            SignalStore::Sqlite(s) => s.db.place(),
            SignalStore::Postgres(p) => p.db.place(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        match self {
            SignalStore::Sqlite(s) => &s.table,
            SignalStore::Postgres(p) => &p.table,
        }
    }

    /// Records one signal. A uuid already recorded is [`SignalStoreError::Duplicate`].
    pub async fn record(
        &self,
        uuid: Uuid,
        timestamp_ms: i64,
        name: &str,
        component: &str,
    ) -> Result<(), SignalStoreError> {
        self.insert("record", vec![SignalRow::new(uuid, timestamp_ms, name, component)]).await
    }

    /// Records all these signals in one transaction: all of them, or (on any error, such as a uuid already
    /// recorded or repeated in `rows`) none.
    pub async fn record_many(&self, rows: &[SignalRow]) -> Result<(), SignalStoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.insert("record_many", rows.to_vec()).await
    }

    /// Every signal, ordered by timestamp then uuid.
    pub async fn all(&self) -> Result<Vec<SignalRow>, SignalStoreError> {
        match self {
            SignalStore::Sqlite(s) => s.select("all", None).await,
            SignalStore::Postgres(p) => p.select("all", None).await,
        }
    }

    /// The signals whose timestamp is at or after `timestamp_ms`, ordered by timestamp then uuid.
    pub async fn since(&self, timestamp_ms: i64) -> Result<Vec<SignalRow>, SignalStoreError> {
        // Past either end of the storable range the answer is everything or nothing: clamp so that both
        // backends (and chrono) can take the bound.
        let from = timestamp_ms.clamp(MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS + 1);
        match self {
            SignalStore::Sqlite(s) => s.select("since", Some(from)).await,
            SignalStore::Postgres(p) => p.select("since", Some(from)).await,
        }
    }

    /// How many signals the table holds.
    pub async fn count(&self) -> Result<u64, SignalStoreError> {
        let count = match self {
            SignalStore::Sqlite(s) => {
                let sql = Arc::clone(&s.sql);
                s.db.call(
                    "count",
                    move |conn| Ok(conn.query_row(&sql.count, [], |row| row.get::<_, i64>(0))?),
                )
                .await?
            }
            SignalStore::Postgres(p) => p.count().await?,
        };
        u64::try_from(count).map_err(|_| {
            SignalStoreError::Backend(format!("{}: count: negative count {count}", self.place()))
        })
    }

    /// Checks and inserts a batch: the checks both backends share, then the backend's transaction.
    async fn insert(&self, op: &'static str, rows: Vec<SignalRow>) -> Result<(), SignalStoreError> {
        let place = self.place();
        let mut seen = BTreeSet::new();
        for row in &rows {
            check_row(row, place, op)?;
            if !seen.insert(row.uuid) {
                return Err(SignalStoreError::Duplicate { place: place.to_string(), uuid: row.uuid });
            }
        }
        match self {
            SignalStore::Sqlite(s) => {
                let (sql, place) = (Arc::clone(&s.sql), Arc::clone(s.db.place()));
                s.db.call(op, move |conn| sqlite_insert(conn, &sql, &place, &rows)).await
            }
            SignalStore::Postgres(p) => p.insert(op, &rows).await,
        }
    }
}

/// Which backend `url` names.
fn parse_url(url: &str) -> Result<Target, SignalStoreError> {
    storage::parse_url(url, "signal database")
}

/// Accepts 1..=[`MAX_TABLE_NAME_CHARS`] lowercase ASCII letters, digits and `_`, not starting with a digit
/// and not in SQLite's reserved `sqlite_` namespace: a name that needs no escaping inside double quotes
/// and means the same table in both backends.
fn check_table_name(table: &str) -> Result<(), SignalStoreError> {
    let plain = table.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let starts_well = table.bytes().next().is_some_and(|b| !b.is_ascii_digit());
    if plain && starts_well && table.len() <= MAX_TABLE_NAME_CHARS && !table.starts_with("sqlite_") {
        return Ok(());
    }
    Err(SignalStoreError::Invalid(format!(
        "signal table name {table:?} is not a plain SQL identifier: use 1 to {MAX_TABLE_NAME_CHARS} \
         lowercase ASCII letters, digits and '_', not starting with a digit nor with \"sqlite_\""
    )))
}

/// A row both backends store exactly: a timestamp in years 1..=9999 and text without NUL (which
/// PostgreSQL cannot hold).
fn check_row(row: &SignalRow, place: &str, op: &str) -> Result<(), SignalStoreError> {
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&row.timestamp_ms) {
        return Err(SignalStoreError::Invalid(format!(
            "{place}: {op}: signal {}: timestamp {} ms is outside years 1..=9999 \
             ({MIN_TIMESTAMP_MS}..={MAX_TIMESTAMP_MS} ms)",
            row.uuid, row.timestamp_ms
        )));
    }
    for (column, value) in [("signal_name", &row.name), ("pipeline_component", &row.component)] {
        if value.contains('\0') {
            return Err(SignalStoreError::Invalid(format!(
                "{place}: {op}: signal {}: column {column} value {value:?} contains a NUL character",
                row.uuid
            )));
        }
    }
    Ok(())
}

/// The expected columns missing from `found`, as an error naming them; `Ok` when none is.
fn check_columns(found: &[String], place: &str) -> Result<(), SignalStoreError> {
    let missing: Vec<&str> = COLUMNS.into_iter().filter(|c| !found.iter().any(|f| f == c)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(SignalStoreError::Invalid(format!(
        "{place}: the table exists without column(s) {} (it has: {}); use another table name",
        missing.join(", "),
        found.join(", ")
    )))
}

/// The text form of a uuid both backends store and compare: lowercase, hyphenated.
fn uuid_text(uuid: &Uuid) -> String {
    uuid.hyphenated().to_string()
}

/// The statements of one table in one dialect, built once at open from the checked table name.
struct Statements {
    insert: Arc<str>,
    all: Arc<str>,
    since: Arc<str>,
    count: Arc<str>,
}

impl Statements {
    fn new(table: &str, insert: String, placeholder: &str, uuid_column: &str) -> Statements {
        let select = format!(
            r#"SELECT {uuid_column}, s."timestamp", s.signal_name, s.pipeline_component FROM "{table}" AS s"#
        );
        let order = r#"ORDER BY s."timestamp", s.uuid"#;
        Statements {
            insert: insert.into(),
            all: format!("{select} {order}").into(),
            since: format!(r#"{select} WHERE s."timestamp" >= {placeholder} {order}"#).into(),
            count: format!(r#"SELECT count(*) FROM "{table}""#).into(),
        }
    }

    fn sqlite(table: &str) -> Statements {
        let insert = format!(
            r#"INSERT INTO "{table}" (uuid, "timestamp", signal_name, pipeline_component)
               VALUES (?1, ?2, ?3, ?4) ON CONFLICT (uuid) DO NOTHING"#
        );
        Statements::new(table, insert, "?1", "s.uuid")
    }

    fn postgres(table: &str) -> Statements {
        // One statement for the whole batch; rows whose uuid is taken are skipped and missing from the
        // RETURNING list, which is how the caller finds them.
        let insert = format!(
            r#"INSERT INTO "{table}" (uuid, "timestamp", signal_name, pipeline_component)
               SELECT b.u::uuid, b.ts, b.n, b.c
               FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[]) AS b(u, ts, n, c)
               ON CONFLICT (uuid) DO NOTHING
               RETURNING uuid::text"#
        );
        Statements::new(table, insert, "$1", "s.uuid::text")
    }
}

// ---------------------------------------------------------------------------------------------------------
// SQLite

/// The SQLite backend: one rusqlite connection shared by all clones.
#[derive(Clone)]
pub struct SqliteSignalStore {
    db: SharedConnection<SignalStoreError>,
    table: Arc<str>,
    sql: Arc<Statements>,
}

/// What a call on the SQLite connection returns.
type SqliteResult<T> = OpResult<T, SignalStoreError>;

impl SqliteSignalStore {
    /// Opens the file (`None`: a private in-memory database) and creates the table if missing, on the
    /// blocking pool when `blocking_pool`.
    async fn open(
        path: Option<PathBuf>,
        blocking_pool: bool,
        table: Arc<str>,
    ) -> Result<SqliteSignalStore, SignalStoreError> {
        let created = Arc::clone(&table);
        let setup = move |conn: &mut Connection, place: &str| sqlite_create_table(conn, &created, place);
        let suffix = format!(" table {table}");
        let (db, ()) = SharedConnection::open(path, &suffix, blocking_pool, "create table", setup).await?;
        tracing::info!(place = %db.place(), "signal store opened");
        let sql = Arc::new(Statements::sqlite(&table));
        Ok(SqliteSignalStore { db, table, sql })
    }

    /// All rows, or those at or after `from` ms.
    async fn select(&self, op: &'static str, from: Option<i64>) -> Result<Vec<SignalRow>, SignalStoreError> {
        let sql = Arc::clone(&self.sql);
        self.db
            .call(op, move |conn| {
                let (text, params) = match &from {
                    Some(from) => (&sql.since, vec![from]),
                    None => (&sql.all, vec![]),
                };
                let mut stmt = conn.prepare_cached(text)?;
                let rows = stmt.query_map(rusqlite::params_from_iter(params), sqlite_row)?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }
}

/// Creates the table and its index if missing, in one immediate transaction; refuses a table of another
/// shape before making the index.
fn sqlite_create_table(conn: &mut Connection, table: &str, place: &str) -> SqliteResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(&format!(
        r#"CREATE TABLE IF NOT EXISTS "{table}" (
               uuid TEXT NOT NULL PRIMARY KEY,
               "timestamp" INTEGER NOT NULL,
               signal_name TEXT NOT NULL,
               pipeline_component TEXT NOT NULL
           )"#
    ))?;
    let found = {
        let mut stmt = tx.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
        stmt.query_map([table], |row| row.get(0))?.collect::<Result<Vec<String>, _>>()?
    };
    check_columns(&found, place)?;
    tx.execute_batch(&format!(
        r#"CREATE INDEX IF NOT EXISTS "{table}_timestamp" ON "{table}" ("timestamp", uuid)"#
    ))?;
    tx.commit()?;
    Ok(())
}

fn sqlite_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SignalRow> {
    let text: String = row.get(0)?;
    let uuid = Uuid::parse_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("column uuid value {text:?} is not a uuid: {e}").into(),
        )
    })?;
    Ok(SignalRow { uuid, timestamp_ms: row.get(1)?, name: row.get(2)?, component: row.get(3)? })
}

/// Inserts the (checked, distinct) rows in one immediate transaction; a uuid already there rolls all back.
fn sqlite_insert(
    conn: &mut Connection,
    sql: &Statements,
    place: &str,
    rows: &[SignalRow],
) -> SqliteResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(&sql.insert)?;
        for row in rows {
            let inserted =
                stmt.execute(params![uuid_text(&row.uuid), row.timestamp_ms, row.name, row.component])?;
            if inserted == 0 {
                // Dropping the transaction rolls back the rows inserted before this one.
                return Err(SignalStoreError::Duplicate { place: place.to_string(), uuid: row.uuid }.into());
            }
        }
    }
    tx.commit()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// PostgreSQL

/// The PostgreSQL backend: a sqlx pool shared by all clones.
#[derive(Clone)]
pub struct PgSignalStore {
    db: SharedPool<SignalStoreError>,
    table: Arc<str>,
    sql: Arc<Statements>,
}

/// A statement text built from the checked table name (see [`check_table_name`]).
fn pg_sql(text: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(Arc::clone(text))
}

/// Epoch milliseconds as a PostgreSQL `timestamptz` value.
fn pg_timestamp(ms: i64, place: &str) -> Result<DateTime<Utc>, SignalStoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| SignalStoreError::Invalid(format!("{place}: timestamp {ms} ms is out of range")))
}

impl PgSignalStore {
    async fn open(url: &str, table: Arc<str>) -> Result<PgSignalStore, SignalStoreError> {
        let db = SharedPool::connect(url, &format!(" table {table}"), PG_MAX_CONNECTIONS).await?;
        let sql = Arc::new(Statements::postgres(&table));
        let store = PgSignalStore { db, table, sql };
        store.create_table().await?;
        tracing::info!(place = %store.db.place(), "signal store opened");
        Ok(store)
    }

    /// Creates the table and its index if missing, under an advisory lock so that processes opening the
    /// same new table at once don't race, then checks its columns.
    async fn create_table(&self) -> Result<(), SignalStoreError> {
        let table = &self.table;
        let create_table = format!(
            r#"CREATE TABLE IF NOT EXISTS "{table}" (
                   uuid UUID PRIMARY KEY,
                   "timestamp" TIMESTAMPTZ NOT NULL,
                   signal_name TEXT NOT NULL,
                   pipeline_component TEXT NOT NULL
               )"#
        );
        let create_index =
            format!(r#"CREATE INDEX IF NOT EXISTS "{table}_timestamp" ON "{table}" ("timestamp", uuid)"#);
        // Columns are checked before the index is made, so a table of another shape is reported by name.
        let outcome: Result<(), SignalStoreError> = self
            .db
            .run("create table", async {
                let mut tx = self.db.pool().begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_SETUP_LOCK).execute(&mut *tx).await?;
                sqlx::raw_sql(AssertSqlSafe(create_table)).execute(&mut *tx).await?;
                let found: Vec<String> = sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(&**table)
                .fetch_all(&mut *tx)
                .await?;
                let checked = check_columns(&found, self.db.place());
                if checked.is_ok() {
                    sqlx::raw_sql(AssertSqlSafe(create_index)).execute(&mut *tx).await?;
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok(checked)
            })
            .await?;
        outcome
    }

    async fn insert(&self, op: &str, rows: &[SignalRow]) -> Result<(), SignalStoreError> {
        let uuids: Vec<String> = rows.iter().map(|r| uuid_text(&r.uuid)).collect();
        let stamps = rows
            .iter()
            .map(|r| pg_timestamp(r.timestamp_ms, self.db.place()))
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        let components: Vec<&str> = rows.iter().map(|r| r.component.as_str()).collect();
        let expected = uuids.len();
        let inserted: Vec<String> = self
            .db
            .run(op, async {
                let mut tx = self.db.pool().begin().await?;
                let inserted: Vec<String> = sqlx::query_scalar(pg_sql(&self.sql.insert))
                    .bind(&uuids)
                    .bind(stamps)
                    .bind(names)
                    .bind(components)
                    .fetch_all(&mut *tx)
                    .await?;
                if inserted.len() == expected {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok(inserted)
            })
            .await?;
        if inserted.len() == expected {
            return Ok(());
        }
        let inserted: BTreeSet<&str> = inserted.iter().map(String::as_str).collect();
        let taken = rows.iter().zip(&uuids).find(|(_, text)| !inserted.contains(text.as_str()));
        match taken {
            Some((row, _)) => {
                Err(SignalStoreError::Duplicate { place: self.db.place().to_string(), uuid: row.uuid })
            }
            None => Err(SignalStoreError::Backend(format!(
                "{}: {op}: {} of {expected} rows inserted, yet every uuid came back",
                self.db.place(),
                inserted.len()
            ))),
        }
    }

    /// All rows, or those at or after `from` ms.
    async fn select(&self, op: &str, from: Option<i64>) -> Result<Vec<SignalRow>, SignalStoreError> {
        let rows = match from {
            Some(from) => {
                let from = pg_timestamp(from, self.db.place())?;
                self.db
                    .run(op, sqlx::query(pg_sql(&self.sql.since)).bind(from).fetch_all(self.db.pool()))
                    .await?
            }
            None => self.db.run(op, sqlx::query(pg_sql(&self.sql.all)).fetch_all(self.db.pool())).await?,
        };
        rows.iter().map(|row| self.decode(op, row)).collect()
    }

    fn decode(&self, op: &str, row: &PgRow) -> Result<SignalRow, SignalStoreError> {
        let read = || -> Result<(String, DateTime<Utc>, String, String), sqlx::Error> {
            Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?))
        };
        let (text, timestamp, name, component) = read().map_err(|e| self.db.error(op, e))?;
        let uuid = Uuid::parse_str(&text).map_err(|e| {
            SignalStoreError::Backend(format!("{}: {op}: column uuid value {text:?}: {e}", self.db.place()))
        })?;
        Ok(SignalRow { uuid, timestamp_ms: timestamp.timestamp_millis(), name, component })
    }

    async fn count(&self) -> Result<i64, SignalStoreError> {
        self.db.run("count", sqlx::query_scalar(pg_sql(&self.sql.count)).fetch_one(self.db.pool())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{postgres::sort_error as pg_error, sqlite::sort_error as sqlite_error};
    use chrono::NaiveDate;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// A fixed uuid whose last byte is `n` (so uuid order is `n` order).
    fn id(n: u8) -> Uuid {
        Uuid::from_bytes([0x5a, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, n])
    }

    /// 2024-08-14T05:00:00Z plus `ms`, in epoch milliseconds.
    fn at(ms: i64) -> i64 {
        1_723_611_600_000 + ms
    }

    fn row(n: u8, ms: i64, name: &str) -> SignalRow {
        SignalRow::new(id(n), at(ms), name, "iot-sensor-3")
    }

    // ----- backend-independent checks, each on an empty table -----

    async fn check_api(store: &SignalStore) {
        assert_eq!(store.all().await.unwrap(), vec![]);
        assert_eq!(store.count().await.unwrap(), 0);

        // Recorded out of order; two share a timestamp, so the uuid breaks the tie.
        store.record(id(9), at(2_000), "HIGH_LATENCY", "kafka").await.unwrap();
        store.record(id(3), at(1_000), "LOG_ERROR", "iot-sensor-3").await.unwrap();
        store.record(id(1), at(2_000), "MQTT_DOWN", "mosquitto").await.unwrap();
        store.record_many(&[row(7, 500, "A"), row(2, 3_000, "B"), row(8, -1, "C")]).await.unwrap();
        store.record_many(&[]).await.unwrap();
        let all = store.all().await.unwrap();
        let order: Vec<(u8, i64)> = all.iter().map(|r| (r.uuid.as_bytes()[15], r.timestamp_ms)).collect();
        assert_eq!(
            order,
            [(8, at(-1)), (7, at(500)), (3, at(1_000)), (1, at(2_000)), (9, at(2_000)), (2, at(3_000))]
        );
        assert_eq!(all[3], SignalRow::new(id(1), at(2_000), "MQTT_DOWN", "mosquitto"));
        assert_eq!(store.count().await.unwrap(), 6);

        assert_eq!(store.since(at(2_000)).await.unwrap(), all[3..].to_vec(), "the bound is inclusive");
        assert_eq!(store.since(at(2_001)).await.unwrap(), all[5..].to_vec());
        assert_eq!(store.since(i64::MIN).await.unwrap(), all, "clamped to everything");
        assert_eq!(store.since(i64::MAX).await.unwrap(), vec![], "clamped to nothing");

        // A uuid already recorded is refused, by itself or inside a batch that then leaves no row.
        let err = store.record(id(3), at(9_000), "OTHER", "x").await.unwrap_err();
        assert_eq!(err, SignalStoreError::Duplicate { place: store.place().to_string(), uuid: id(3) });
        assert!(err.to_string().contains(&format!("signal uuid {} is already recorded", id(3))), "{err}");
        let err = store.record_many(&[row(20, 0, "new"), row(9, 0, "dup"), row(21, 0, "new")]).await;
        assert_eq!(
            err.unwrap_err(),
            SignalStoreError::Duplicate { place: store.place().into(), uuid: id(9) }
        );
        let err = store.record_many(&[row(22, 0, "new"), row(22, 1, "again")]).await;
        assert_eq!(
            err.unwrap_err(),
            SignalStoreError::Duplicate { place: store.place().into(), uuid: id(22) },
            "repeated inside one batch"
        );
        assert_eq!(store.all().await.unwrap(), all, "the failed batches wrote nothing");

        // Values both backends cannot hold alike are refused before reaching the database.
        for bad in [MIN_TIMESTAMP_MS - 1, MAX_TIMESTAMP_MS + 1, i64::MIN, i64::MAX] {
            let err = store.record(id(30), bad, "x", "y").await.unwrap_err();
            assert!(matches!(&err, SignalStoreError::Invalid(m) if m.contains("outside years")), "{err}");
        }
        let err = store.record(id(30), at(0), "x", "com\0ponent").await.unwrap_err();
        assert!(matches!(&err, SignalStoreError::Invalid(m) if m.contains("column pipeline_component")));
        let err = store.record_many(&[row(31, 0, "ok"), row(32, 0, "n\0")]).await.unwrap_err();
        assert!(matches!(&err, SignalStoreError::Invalid(m) if m.contains("column signal_name")), "{err}");

        // The extremes of the range round-trip exactly.
        store.record(id(40), MIN_TIMESTAMP_MS, "first", "c").await.unwrap();
        store.record(id(41), MAX_TIMESTAMP_MS, "last", "c").await.unwrap();
        let all = store.all().await.unwrap();
        assert_eq!(all.len(), 8);
        assert_eq!((all[0].uuid, all[0].timestamp_ms), (id(40), MIN_TIMESTAMP_MS));
        assert_eq!((all[7].uuid, all[7].timestamp_ms), (id(41), MAX_TIMESTAMP_MS));
        assert_eq!(store.since(MAX_TIMESTAMP_MS).await.unwrap(), all[7..].to_vec());
    }

    // ----- SQLite -----

    #[test]
    fn timestamp_bounds_are_years_1_to_9999() {
        let first = NaiveDate::from_ymd_opt(1, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
        let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap().and_hms_milli_opt(23, 59, 59, 999).unwrap();
        assert_eq!(first.timestamp_millis(), MIN_TIMESTAMP_MS);
        assert_eq!(last.and_utc().timestamp_millis(), MAX_TIMESTAMP_MS);
    }

    #[tokio::test(start_paused = true)]
    async fn sqlite_memory_api_in_sim_mode() {
        let store = SignalStore::open("sqlite::memory:", false, DEFAULT_TABLE).await.unwrap();
        assert_eq!(
            (store.backend(), store.place(), store.table()),
            ("sqlite", "sqlite :memory: table signals", "signals")
        );
        check_api(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_memory_api_on_the_blocking_pool() {
        check_api(&SignalStore::open("sqlite::memory:", true, "run_2").await.unwrap()).await;
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
        let store = SignalStore::open("sqlite::memory:", false, DEFAULT_TABLE).await.unwrap();
        for n in 0..50 {
            store.record(id(n), at(i64::from(n)), "S", "c").await.unwrap();
            store.since(at(0)).await.unwrap();
        }
        assert_eq!(store.count().await.unwrap(), 50);
        assert_eq!(start.elapsed(), Duration::ZERO, "virtual time moved");
        assert!(!fired.load(Ordering::SeqCst) && !sleeper.is_finished(), "another task ran in between");
        sleeper.await.unwrap();
        assert!(fired.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn sqlite_file_roundtrip_reopen_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signals.db");
        let store = SignalStore::open_sqlite_file(&path, false).await.unwrap();
        assert_eq!(store.place(), format!("sqlite {} table signals", path.display()));
        check_api(&store).await;
        let before = store.all().await.unwrap();
        drop(store);

        // Reopening (by URL, on the blocking pool) keeps the rows and still refuses their uuids.
        let url = format!("sqlite://{}", path.display());
        let store = SignalStore::open(&url, true, DEFAULT_TABLE).await.unwrap();
        assert_eq!(store.all().await.unwrap(), before);
        let err = store.record(before[0].uuid, at(0), "again", "c").await.unwrap_err();
        assert!(matches!(err, SignalStoreError::Duplicate { uuid, .. } if uuid == before[0].uuid));
        // Another table in the same file is separate.
        let other = SignalStore::open(&url, false, "signals_b").await.unwrap();
        assert_eq!(other.count().await.unwrap(), 0);
        other.record(id(1), at(0), "S", "c").await.unwrap();
        assert_eq!(store.count().await.unwrap(), before.len() as u64);
        drop((store, other));

        let raw = Connection::open(&path).unwrap();
        let stored: (String, i64, String, String) = raw
            .query_row(
                r#"SELECT uuid, "timestamp", signal_name, pipeline_component FROM signals WHERE uuid = ?1"#,
                [uuid_text(&id(1))],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            stored,
            (
                "5a000000-0000-4000-8000-000000000001".into(),
                at(2_000),
                "MQTT_DOWN".into(),
                "mosquitto".into()
            )
        );
        let mode: String = raw.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let index: String = raw
            .query_row(
                "SELECT name FROM sqlite_master
                 WHERE type = 'index' AND sql IS NOT NULL AND tbl_name = 'signals'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, "signals_timestamp");

        // A row another writer left unreadable is reported with its column, not skipped.
        raw.execute(r#"INSERT INTO signals VALUES ('not-a-uuid', 0, 'S', 'c')"#, []).unwrap();
        drop(raw);
        let store = SignalStore::open_sqlite_file(&path, false).await.unwrap();
        let err = store.all().await.unwrap_err();
        assert!(
            matches!(&err, SignalStoreError::Backend(m) if m.contains("column uuid value \"not-a-uuid\"")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_table_of_another_shape_is_refused_with_its_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signals.db");
        let raw = Connection::open(&path).unwrap();
        raw.execute_batch("CREATE TABLE signals (uuid TEXT PRIMARY KEY, ts INTEGER, signal_name TEXT)")
            .unwrap();
        drop(raw);
        let err = SignalStore::open_sqlite_file(&path, false).await.unwrap_err();
        let SignalStoreError::Invalid(message) = &err else { panic!("{err:?}") };
        assert!(message.contains(&format!("sqlite {} table signals", path.display())), "{message}");
        assert!(
            message
                .contains("without column(s) timestamp, pipeline_component (it has: uuid, ts, signal_name)"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn bad_urls_and_table_names_are_refused() {
        for bad in ["mysql://u:secret@h/db", "signals.db", "sqlite://", "sqlite://x.db?mode=rwc"] {
            let err = SignalStore::open(bad, false, DEFAULT_TABLE).await.unwrap_err();
            assert!(matches!(err, SignalStoreError::Invalid(_)), "{bad}: {err}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        let err = SignalStore::open("mysql://u:secret@h/db", false, DEFAULT_TABLE).await.unwrap_err();
        assert!(err.to_string().contains("scheme \"mysql\" is not supported"), "{err}");

        let too_long = "t".repeat(MAX_TABLE_NAME_CHARS + 1);
        for bad in
            ["", "Signals", "1signals", "sig-nals", "signals\"; DROP TABLE x; --", "sqlite_x", &too_long]
        {
            let err = SignalStore::open("sqlite::memory:", false, bad).await.unwrap_err();
            assert!(
                matches!(&err, SignalStoreError::Invalid(m) if m.contains("not a plain SQL identifier")),
                "{bad}"
            );
        }
        let longest = "t".repeat(MAX_TABLE_NAME_CHARS);
        for good in ["signals", "_x", "run_2024_08_14", "select", &longest] {
            let store = SignalStore::open("sqlite::memory:", false, good).await.unwrap();
            store.record(id(1), at(0), "S", "c").await.unwrap();
            assert_eq!(store.count().await.unwrap(), 1, "{good}");
        }
    }

    #[test]
    fn urls_name_the_backend() {
        assert_eq!(parse_url("sqlite::memory:").unwrap(), Target::SqliteMemory);
        assert_eq!(
            parse_url("sqlite://out/signals.db").unwrap(),
            Target::SqliteFile("out/signals.db".into())
        );
        assert_eq!(
            parse_url("sqlite:///tmp/signals.db").unwrap(),
            Target::SqliteFile("/tmp/signals.db".into())
        );
        assert_eq!(parse_url("postgres://u:p@h:5433/chaoslab").unwrap(), Target::Postgres);
        assert_eq!(parse_url("postgresql://h/db").unwrap(), Target::Postgres);
    }

    #[test]
    fn rows_serialize_with_their_field_names() {
        let json = serde_json::to_string(&SignalRow::new(id(1), 5, "MQTT_DOWN", "mosquitto")).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"uuid":"5a000000-0000-4000-8000-000000000001","timestamp_ms":5,"#,
                r#""name":"MQTT_DOWN","component":"mosquitto"}"#
            )
        );
    }

    #[test]
    fn errors_are_sorted() {
        let sqlite = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        assert!(matches!(
            sqlite_error("p", "op", sqlite(rusqlite::ffi::SQLITE_BUSY)),
            SignalStoreError::Unavailable(_)
        ));
        assert!(matches!(
            sqlite_error("p", "op", sqlite(rusqlite::ffi::SQLITE_CONSTRAINT)),
            SignalStoreError::Invalid(_)
        ));
        assert!(matches!(
            sqlite_error("p", "op", sqlite(rusqlite::ffi::SQLITE_CORRUPT)),
            SignalStoreError::Backend(_)
        ));
        let message: SignalStoreError =
            sqlite_error("sqlite x.db table signals", "record", sqlite(rusqlite::ffi::SQLITE_BUSY));
        assert!(
            message.to_string().starts_with("signal store unavailable: sqlite x.db table signals: record: ")
        );
        assert!(matches!(pg_error("p", "op", sqlx::Error::PoolTimedOut), SignalStoreError::Unavailable(_)));
        assert!(matches!(pg_error("p", "op", sqlx::Error::RowNotFound), SignalStoreError::Backend(_)));
    }

    // ----- PostgreSQL -----

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_down_is_unavailable_without_the_password() {
        // A port nothing listens on: the listener is dropped before connecting.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("postgres://chaoslab:secret@127.0.0.1:{port}/chaoslab");
        let started = std::time::Instant::now();
        let err = SignalStore::open(&url, true, DEFAULT_TABLE).await.unwrap_err();
        assert!(matches!(&err, SignalStoreError::Unavailable(_)), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("postgres 127.0.0.1:{port}/chaoslab table signals: connect")),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
        assert!(
            started.elapsed() < PG_ACQUIRE_TIMEOUT + Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }

    /// A table name no other test run uses.
    fn unique_table(tag: &str) -> String {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        format!("chaoslab_test_{tag}_{}_{nanos}", std::process::id())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_roundtrip_schema_and_separate_tables() {
        let url = match std::env::var("CHAOSLAB_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                crate::testing::skip(
                    "postgres_roundtrip_schema_and_separate_tables",
                    "CHAOSLAB_TEST_DATABASE_URL is not set",
                );
                return;
            }
        };
        let (a, b, c) = (unique_table("a"), unique_table("b"), unique_table("c"));
        let checks = {
            let (url, a, b, c) = (url.clone(), a.clone(), b.clone(), c.clone());
            // Run in a task so that a failed assertion still reaches the cleanup below.
            tokio::spawn(async move {
                // Two processes opening the same new table at once: the advisory lock serialises them.
                let (first, second) =
                    tokio::join!(SignalStore::open(&url, true, &a), SignalStore::open(&url, true, &a));
                first.unwrap();
                let store = second.unwrap();
                assert_eq!((store.backend(), store.table()), ("postgres", a.as_str()));
                let place = store.place();
                assert!(place.starts_with("postgres ") && place.ends_with(&format!(" table {a}")), "{place}");
                check_api(&store).await;
                let rows = store.all().await.unwrap();

                // Another table in the same database sees none of them; reopening keeps them.
                let other = SignalStore::open(&url, false, &b).await.unwrap();
                assert_eq!(other.count().await.unwrap(), 0);
                other.record_many(&rows[..2]).await.unwrap();
                assert_eq!(other.all().await.unwrap(), rows[..2].to_vec());
                let reopened = SignalStore::open(&url, false, &a).await.unwrap();
                assert_eq!(reopened.all().await.unwrap(), rows);

                // A table of another shape is refused by column name, and left without our index.
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.unwrap();
                let other_shape = format!(r#"CREATE TABLE "{c}" (uuid UUID PRIMARY KEY, ts BIGINT)"#);
                sqlx::raw_sql(AssertSqlSafe(other_shape)).execute(&mut conn).await.unwrap();
                let err = SignalStore::open(&url, false, &c).await.unwrap_err();
                assert!(
                    matches!(&err, SignalStoreError::Invalid(m)
                        if m.contains(&format!("table {c}: the table exists without column(s) timestamp, \
                                                signal_name, pipeline_component (it has: uuid, ts)"))),
                    "{err}"
                );
                let indexes: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_indexes WHERE tablename = $1")
                    .bind(&c)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(indexes, 1, "only the primary key's");

                let columns: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT column_name::text, data_type::text, is_nullable::text
                     FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(&a)
                .fetch_all(&mut conn)
                .await
                .unwrap();
                let columns: Vec<(&str, &str, &str)> =
                    columns.iter().map(|(x, y, z)| (x.as_str(), y.as_str(), z.as_str())).collect();
                assert_eq!(
                    columns,
                    [
                        ("uuid", "uuid", "NO"),
                        ("timestamp", "timestamp with time zone", "NO"),
                        ("signal_name", "text", "NO"),
                        ("pipeline_component", "text", "NO"),
                    ]
                );
                let stored: String = sqlx::query_scalar(AssertSqlSafe(format!(
                    r#"SELECT to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS')
                       FROM "{a}" WHERE uuid = $1::uuid"#
                )))
                .bind(uuid_text(&id(1)))
                .fetch_one(&mut conn)
                .await
                .unwrap();
                assert_eq!(stored, "2024-08-14T05:00:02.000", "stored as the instant, not the raw number");
                sqlx::Connection::close(conn).await.unwrap();
            })
            .await
        };
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.unwrap();
        for table in [&a, &b, &c] {
            sqlx::raw_sql(AssertSqlSafe(format!(r#"DROP TABLE IF EXISTS "{table}""#)))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::Connection::close(conn).await.unwrap();
        if let Err(e) = checks {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
