//! A sqlx PostgreSQL pool shared by all clones of a store, with the timeouts that make a down server a
//! quick "unavailable" rather than a hang, and how PostgreSQL errors are sorted.
//!
//! Queries are runtime queries (no `DATABASE_URL` at build time). The pool's acquire timeout is a few
//! seconds, so a down server is reported quickly, and the pool reconnects by itself when the server is
//! back (connections are tested before use). Live mode only: sqlx's pool sleeps and spawns on the runtime.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{FromSqlError, SqlErrorKind};

/// How long a call waits for a pooled connection (including reconnecting) before it is unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound on one call, so a frozen server or link is also unavailable, not a hang.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Sorts a sqlx error: lost or refused connections, pool timeouts and SQLSTATE classes 08 (connection),
/// 40 (retryable conflicts), 53 (resources) and 57 (shutdown) are unavailable; a bad configuration or
/// argument and SQLSTATE classes 22 (data) and 23 (constraints) are invalid; anything else is a backend
/// failure.
pub fn error_kind(e: &sqlx::Error) -> SqlErrorKind {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => SqlErrorKind::Unavailable,
        sqlx::Error::Configuration(_) | sqlx::Error::InvalidArgument(_) => SqlErrorKind::Invalid,
        sqlx::Error::Database(db) => match db.code().as_deref().and_then(|code| code.get(..2)) {
            Some("08" | "40" | "53" | "57") => SqlErrorKind::Unavailable,
            Some("22" | "23") => SqlErrorKind::Invalid,
            _ => SqlErrorKind::Backend,
        },
        _ => SqlErrorKind::Backend,
    }
}

/// The store's error for a sqlx error during `op` at `place`: `"{place}: {op}: {e}"`, sorted by
/// [`error_kind`].
pub fn sort_error<E: FromSqlError>(place: &str, op: &str, e: sqlx::Error) -> E {
    E::from_sql_error(error_kind(&e), format!("{place}: {op}: {e}"))
}

/// Parses a `postgres://…` URL; returns the connect options and the place for logs and errors:
/// `postgres <host>:<port>/<database>` followed by `place_suffix`, which never shows the user or password.
fn connect_options<E: FromSqlError>(
    url: &str,
    place_suffix: &str,
) -> Result<(PgConnectOptions, Arc<str>), E> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| E::from_sql_error(SqlErrorKind::Invalid, format!("PostgreSQL URL is not valid: {e}")))?;
    let place = format!(
        "postgres {}:{}/{}{place_suffix}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default database)")
    );
    Ok((options, place.into()))
}

/// A PostgreSQL pool shared by all clones of a store whose error type is `E`.
pub struct SharedPool<E> {
    pool: PgPool,
    place: Arc<str>,
    error: PhantomData<fn() -> E>,
}

impl<E> Clone for SharedPool<E> {
    fn clone(&self) -> Self {
        SharedPool { pool: self.pool.clone(), place: Arc::clone(&self.place), error: PhantomData }
    }
}

impl<E> fmt::Debug for SharedPool<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPool").field("place", &self.place).finish_non_exhaustive()
    }
}

impl<E: FromSqlError> SharedPool<E> {
    /// Connects a pool of up to `max_connections` to the server `url` names, waiting at most
    /// [`ACQUIRE_TIMEOUT`] for a connection. The place (see [`place`](Self::place)) is
    /// `postgres <host>:<port>/<database>` followed by `place_suffix`; a failure to connect is reported as
    /// operation `connect` there.
    pub async fn connect(url: &str, place_suffix: &str, max_connections: u32) -> Result<SharedPool<E>, E> {
        let (options, place) = connect_options(url, place_suffix)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .connect_with(options)
            .await
            .map_err(|e| sort_error(&place, "connect", e))?;
        Ok(SharedPool { pool, place, error: PhantomData })
    }

    /// The pool, to run queries on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Where the data lives, for logs and errors (never contains a password).
    pub fn place(&self) -> &Arc<str> {
        &self.place
    }

    /// The store's error for a sqlx error during `op` here (see [`sort_error`]).
    pub fn error(&self, op: &str, e: sqlx::Error) -> E {
        sort_error(&self.place, op, e)
    }

    /// Runs one call within [`OPERATION_TIMEOUT`] and sorts its error as operation `op`.
    pub async fn run<T>(&self, op: &str, call: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, E> {
        match tokio::time::timeout(OPERATION_TIMEOUT, call).await {
            Ok(result) => result.map_err(|e| self.error(op, e)),
            Err(_) => Err(E::from_sql_error(
                SqlErrorKind::Unavailable,
                format!("{}: {op}: no answer within {OPERATION_TIMEOUT:?}", self.place),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::TestError;

    #[test]
    fn errors_are_sorted_and_name_place_and_operation() {
        let refused = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        for e in [refused(), sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, sqlx::Error::WorkerCrashed] {
            assert_eq!(error_kind(&e), SqlErrorKind::Unavailable, "{e}");
        }
        assert_eq!(error_kind(&sqlx::Error::Configuration("bad".into())), SqlErrorKind::Invalid);
        assert_eq!(error_kind(&sqlx::Error::RowNotFound), SqlErrorKind::Backend);
        let err: TestError = sort_error("postgres h:5432/db", "get", sqlx::Error::PoolTimedOut);
        assert_eq!(err.kind, SqlErrorKind::Unavailable);
        assert!(err.message.starts_with("postgres h:5432/db: get: "), "{}", err.message);
    }

    #[test]
    fn the_place_never_shows_the_user_or_password() {
        let (_, place) =
            connect_options::<TestError>("postgres://chaoslab:secret@db.example:5433/orders", " table t")
                .unwrap();
        assert_eq!(&*place, "postgres db.example:5433/orders table t");
        let (_, place) = connect_options::<TestError>("postgresql://u:secret@h", "").unwrap();
        assert!(place.starts_with("postgres h:5432/") && !place.contains("secret"), "{place}");
        let err = connect_options::<TestError>("postgres://h:notaport/db", "").unwrap_err();
        assert_eq!(err.kind, SqlErrorKind::Invalid);
        assert!(err.message.starts_with("PostgreSQL URL is not valid: "), "{}", err.message);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_without_an_answer_is_unavailable_after_the_operation_timeout() {
        let (options, place) = connect_options::<TestError>("postgres://u@127.0.0.1:1/db", "").unwrap();
        let shared: SharedPool<TestError> =
            SharedPool { pool: PgPoolOptions::new().connect_lazy_with(options), place, error: PhantomData };
        let start = tokio::time::Instant::now();
        let err = shared.run("get", std::future::pending::<Result<(), sqlx::Error>>()).await.unwrap_err();
        assert_eq!(start.elapsed(), OPERATION_TIMEOUT);
        assert_eq!(
            err,
            TestError {
                kind: SqlErrorKind::Unavailable,
                message: "postgres 127.0.0.1:1/db: get: no answer within 10s".into()
            }
        );
        let err = shared.run("get", async { Err::<(), _>(sqlx::Error::RowNotFound) }).await.unwrap_err();
        assert_eq!(err.kind, SqlErrorKind::Backend);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_is_not_there_is_unavailable_quickly() {
        // A port nothing listens on: the listener is dropped before connecting.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("postgres://chaoslab:secret@127.0.0.1:{port}/chaoslab");
        let started = std::time::Instant::now();
        let err = SharedPool::<TestError>::connect(&url, " (test)", 1).await.unwrap_err();
        assert_eq!(err.kind, SqlErrorKind::Unavailable, "{err:?}");
        let expected = format!("postgres 127.0.0.1:{port}/chaoslab (test): connect: ");
        assert!(err.message.starts_with(&expected), "{}", err.message);
        assert!(!err.message.contains("secret"), "{}", err.message);
        assert!(started.elapsed() < ACQUIRE_TIMEOUT + Duration::from_secs(3), "took {:?}", started.elapsed());
    }
}
