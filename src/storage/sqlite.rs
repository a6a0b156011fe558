//! One rusqlite connection shared by all clones of a store, and how SQLite errors are sorted.
//!
//! Not sqlx: sqlx's SQLite driver runs each connection on a worker thread of its own and the caller awaits
//! a channel. In sim mode (single-threaded tokio runtime, paused clock) that wait leaves the runtime idle,
//! so tokio auto-advances virtual time by however long the thread happens to take, and the other tasks
//! interleave with it in an order the OS decides: the run is no longer a function of the seed. rusqlite
//! runs in the calling thread, so with `blocking_pool = false` (sim mode) a store call is one uninterrupted
//! step. With `blocking_pool = true` (live mode) each call moves to `tokio::task::spawn_blocking` so that a
//! slow disk never stalls a runtime worker. The connection sits behind a `std::sync::Mutex` that is taken
//! and released inside a call, never held across an `.await`.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

use super::{FromSqlError, SqlErrorKind};

/// How long SQLite waits for another process's lock on the same file before reporting busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An error inside a SQLite call: from rusqlite (sorted into the store's error by the caller of the
/// closure, which knows the place and the operation), or already the store's own error `E`.
#[derive(Debug)]
pub enum OpError<E> {
    /// What rusqlite reported.
    Sql(rusqlite::Error),
    /// An error the closure built itself (a row that makes no sense, a duplicate key...).
    Store(E),
}

impl<E> From<rusqlite::Error> for OpError<E> {
    fn from(e: rusqlite::Error) -> Self {
        OpError::Sql(e)
    }
}

impl<E: FromSqlError> From<E> for OpError<E> {
    fn from(e: E) -> Self {
        OpError::Store(e)
    }
}

impl<E: FromSqlError> OpError<E> {
    /// The store's error: a rusqlite error is sorted with [`sort_error`].
    pub fn into_store_error(self, place: &str, op: &str) -> E {
        match self {
            OpError::Sql(e) => sort_error(place, op, e),
            OpError::Store(e) => e,
        }
    }
}

/// What a closure run on the connection returns.
pub type OpResult<T, E> = Result<T, OpError<E>>;

/// Sorts a rusqlite error: busy, locked, I/O failure, full disk and cannot-open are unavailable;
/// constraint violations and too-big values are invalid; anything else is a backend failure.
pub fn error_kind(e: &rusqlite::Error) -> SqlErrorKind {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen,
        ) => SqlErrorKind::Unavailable,
        Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig) => SqlErrorKind::Invalid,
        _ => SqlErrorKind::Backend,
    }
}

/// The store's error for a rusqlite error during `op` at `place`: `"{place}: {op}: {e}"`, sorted by
/// [`error_kind`].
pub fn sort_error<E: FromSqlError>(place: &str, op: &str, e: rusqlite::Error) -> E {
    E::from_sql_error(error_kind(&e), format!("{place}: {op}: {e}"))
}

/// One SQLite connection shared by all clones of a store whose error type is `E`.
pub struct SharedConnection<E> {
    conn: Arc<Mutex<Connection>>,
    blocking_pool: bool,
    place: Arc<str>,
    error: PhantomData<fn() -> E>,
}

impl<E> Clone for SharedConnection<E> {
    fn clone(&self) -> Self {
        SharedConnection {
            conn: Arc::clone(&self.conn),
            blocking_pool: self.blocking_pool,
            place: Arc::clone(&self.place),
            error: PhantomData,
        }
    }
}

impl<E> fmt::Debug for SharedConnection<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedConnection")
            .field("place", &self.place)
            .field("blocking_pool", &self.blocking_pool)
            .finish_non_exhaustive()
    }
}

impl<E: FromSqlError + Send + 'static> SharedConnection<E> {
    /// Opens the file at `path` (`None`: a private in-memory database) and sets it up: a busy timeout of
    /// [`BUSY_TIMEOUT`], and for a file the WAL journal with `synchronous = NORMAL`. Then runs the store's
    /// `setup` (its schema) with the connection and the place. Returns the connection and what `setup`
    /// returned.
    ///
    /// The place, for logs and errors, is `sqlite <path>` or `sqlite :memory:` followed by `place_suffix`.
    /// Errors opening the file are reported as operation `open`, any later one as `setup_op`. With
    /// `blocking_pool`, all of it runs on tokio's blocking pool, as every later [`call`](Self::call).
    pub async fn open<T, F>(
        path: Option<PathBuf>,
        place_suffix: &str,
        blocking_pool: bool,
        setup_op: &'static str,
        setup: F,
    ) -> Result<(SharedConnection<E>, T), E>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &str) -> OpResult<T, E> + Send + 'static,
    {
        let place: Arc<str> = match &path {
            Some(p) => format!("sqlite {}{place_suffix}", p.display()).into(),
            None => format!("sqlite :memory:{place_suffix}").into(),
        };
        let at = Arc::clone(&place);
        let (conn, setup_done) = on_pool(blocking_pool, &place, move || {
            let opened = match &path {
                Some(p) => Connection::open(p),
                None => Connection::open_in_memory(),
            };
            let mut conn = opened.map_err(|e| sort_error::<E>(&at, "open", e))?;
            let configure = |conn: &mut Connection| -> OpResult<T, E> {
                conn.busy_timeout(BUSY_TIMEOUT)?;
                if path.is_some() {
                    let mode: String =
                        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
                    if !mode.eq_ignore_ascii_case("wal") {
                        let message = format!("{at}: journal_mode is {mode:?}, not WAL");
                        return Err(OpError::Store(E::from_sql_error(SqlErrorKind::Backend, message)));
                    }
                    conn.pragma_update(None, "synchronous", "NORMAL")?;
                }
                setup(conn, &at)
            };
            let setup_done = configure(&mut conn).map_err(|e| e.into_store_error(&at, setup_op))?;
            Ok((conn, setup_done))
        })
        .await?;
        let shared =
            SharedConnection { conn: Arc::new(Mutex::new(conn)), blocking_pool, place, error: PhantomData };
        Ok((shared, setup_done))
    }

    /// Where the data lives, for logs and errors.
    pub fn place(&self) -> &Arc<str> {
        &self.place
    }

    /// Runs `f` on the connection and sorts a rusqlite error it returns as operation `op`.
    ///
    /// Without the blocking pool (sim mode) `f` runs right here, before this future first returns: the
    /// call never yields, so virtual time cannot jump and no other task runs in between. With it (live
    /// mode) `f` runs on tokio's blocking pool. The mutex is taken and released inside, never across an
    /// await.
    pub async fn call<T, F>(&self, op: &'static str, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> OpResult<T, E> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let place = Arc::clone(&self.place);
        on_pool(self.blocking_pool, &self.place, move || {
            // A call that panicked left nothing half done: its transaction rolled back on unwind.
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard).map_err(|e| e.into_store_error(&place, op))
        })
        .await
    }
}

/// Runs `f` on tokio's blocking pool when `blocking_pool`, else right here without yielding.
async fn on_pool<T, E, F>(blocking_pool: bool, place: &str, f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: FromSqlError + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    if !blocking_pool {
        return f();
    }
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        let message = format!("{place}: SQLite call on the blocking pool did not finish: {e}");
        E::from_sql_error(SqlErrorKind::Backend, message)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::TestError;
    use futures::FutureExt;

    fn failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    async fn memory(blocking_pool: bool) -> SharedConnection<TestError> {
        let (shared, ()) = SharedConnection::open(None, " (test)", blocking_pool, "setup", |conn, place| {
            assert_eq!(place, "sqlite :memory: (test)");
            conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")?;
            Ok(())
        })
        .await
        .unwrap();
        shared
    }

    #[test]
    fn errors_are_sorted_and_name_place_and_operation() {
        use rusqlite::ffi;
        for code in
            [ffi::SQLITE_BUSY, ffi::SQLITE_LOCKED, ffi::SQLITE_IOERR, ffi::SQLITE_FULL, ffi::SQLITE_CANTOPEN]
        {
            assert_eq!(error_kind(&failure(code)), SqlErrorKind::Unavailable, "{code}");
        }
        for code in [ffi::SQLITE_CONSTRAINT, ffi::SQLITE_TOOBIG] {
            assert_eq!(error_kind(&failure(code)), SqlErrorKind::Invalid, "{code}");
        }
        for code in [ffi::SQLITE_CORRUPT, ffi::SQLITE_ERROR] {
            assert_eq!(error_kind(&failure(code)), SqlErrorKind::Backend, "{code}");
        }
        assert_eq!(error_kind(&rusqlite::Error::QueryReturnedNoRows), SqlErrorKind::Backend);
        let err: TestError = sort_error("sqlite x.db", "create", failure(ffi::SQLITE_BUSY));
        assert_eq!(err.kind, SqlErrorKind::Unavailable);
        assert!(err.message.starts_with("sqlite x.db: create: "), "{}", err.message);
    }

    #[tokio::test]
    async fn calls_sort_sql_errors_and_pass_store_errors_through() {
        let db = memory(false).await;
        assert_eq!(&**db.place(), "sqlite :memory: (test)");
        db.call("insert", |conn| Ok(conn.execute("INSERT INTO t (id, v) VALUES (1, 'a')", [])?))
            .await
            .unwrap();
        let err = db
            .call("insert", |conn| Ok(conn.execute("INSERT INTO t (id, v) VALUES (1, 'b')", [])?))
            .await
            .unwrap_err();
        assert_eq!(err.kind, SqlErrorKind::Invalid, "{err:?}");
        assert!(err.message.starts_with("sqlite :memory: (test): insert: "), "{}", err.message);
        let own = TestError { kind: SqlErrorKind::Backend, message: "mine".into() };
        let passed = own.clone();
        assert_eq!(db.call("check", move |_| -> OpResult<(), _> { Err(passed.into()) }).await, Err(own));
        // Clones share the connection.
        let v: String = db
            .clone()
            .call("get", |conn| Ok(conn.query_row("SELECT v FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(v, "a");
    }

    #[test]
    fn without_the_blocking_pool_calls_finish_in_their_first_poll() {
        // Done in the first poll: the call never yields, so (in sim mode) no other task runs in between
        // and virtual time cannot jump. No runtime is needed at all.
        let db = memory(false).now_or_never().expect("opening yielded");
        for id in 0..100 {
            let insert = move |conn: &mut Connection| {
                Ok(conn.execute("INSERT INTO t (id, v) VALUES (?1, 'x')", [id])?)
            };
            db.call("insert", insert).now_or_never().expect("the call yielded").unwrap();
        }
        let count = db.call("count", |conn| Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?));
        assert_eq!(count.now_or_never().expect("the call yielded"), Ok(100_i64));
        let there = db.call("probe", |_| Ok(std::thread::current().id())).now_or_never();
        assert_eq!(there, Some(Ok(std::thread::current().id())), "the closure ran in another thread");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_the_blocking_pool_calls_run_off_the_runtime() {
        let db = memory(true).await;
        let here = std::thread::current().id();
        let there = db.call("probe", |_| Ok(std::thread::current().id())).await.unwrap();
        assert_ne!(here, there, "the closure ran in the calling thread");
        let panicked = db.call("panic", |_| -> OpResult<(), TestError> { panic!("boom") }).await.unwrap_err();
        assert_eq!(panicked.kind, SqlErrorKind::Backend);
        assert!(panicked.message.contains("did not finish"), "{}", panicked.message);
        // The connection is still usable after a call panicked while holding it.
        let count: i64 = db
            .call("count", |conn| Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(count, 0);
    }

    #[tokio::test]
    async fn files_use_wal_and_setup_errors_name_the_setup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let (db, mode) =
            SharedConnection::<TestError>::open(Some(path.clone()), "", false, "setup", |conn, _| {
                Ok(conn.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))?)
            })
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(&**db.place(), format!("sqlite {}", path.display()));
        let err = SharedConnection::<TestError>::open(Some(path.clone()), "", false, "migrate", |conn, _| {
            Ok(conn.execute_batch("NOT SQL")?)
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind, SqlErrorKind::Backend);
        assert!(err.message.starts_with(&format!("sqlite {}: migrate: ", path.display())), "{}", err.message);

        let missing = dir.path().join("no/such/dir/x.db");
        let err = SharedConnection::<TestError>::open(Some(missing), "", false, "setup", |_, _| Ok(()))
            .await
            .unwrap_err();
        assert_eq!(err.kind, SqlErrorKind::Unavailable, "{err:?}");
        assert!(err.message.contains(": open: "), "{}", err.message);
    }
}
