//! The SQL plumbing the SQLite/PostgreSQL stores share: the order store ([`crate::orders::store`]) and the
//! signal store ([`crate::reasoning::store`]).
//!
//! Both stores accept the same database URLs, run SQLite calls on one shared connection (in the calling
//! task in sim mode, on tokio's blocking pool in live mode), reach PostgreSQL through a sqlx pool with the
//! same timeouts, and sort every database error the same way: the database is unavailable right now, the
//! request is invalid, or anything else failed. That plumbing is written once here, so a fix to it (a new
//! error code, a timeout, the determinism rule of sim mode) reaches both stores:
//!
//! - this module: [`Target`] and [`parse_url`] (which backend a URL names, never echoing a password), and
//!   [`SqlErrorKind`] with the [`FromSqlError`] trait through which each store builds its own error type;
//! - [`sqlite`]: the shared rusqlite connection ([`sqlite::SharedConnection`]) and SQLite's error sorting;
//! - [`postgres`]: the shared sqlx pool ([`postgres::SharedPool`]) and PostgreSQL's error sorting.
//!
//! What is really a store's own stays in the store: its schema, queries, migrations and error enum.

use std::path::PathBuf;

pub mod postgres;
pub mod sqlite;

/// How a failed database call is reported, whatever the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlErrorKind {
    /// The database cannot be reached right now (connection refused or lost, pool timeout, file locked,
    /// disk full): a later call may succeed.
    Unavailable,
    /// The request itself is wrong (bad URL, value out of range, constraint violated): retrying won't help.
    Invalid,
    /// Anything else the database reported, or something it returned that makes no sense.
    Backend,
}

/// A store's error type, built by the shared plumbing from the kind of a failure and a message that names
/// the place and the operation.
pub trait FromSqlError: Sized {
    /// The store's error of this kind with this message.
    fn from_sql_error(kind: SqlErrorKind, message: String) -> Self;
}

/// What a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `sqlite::memory:` or `sqlite://:memory:`: a private in-memory database.
    SqliteMemory,
    /// `sqlite://<path>` or `sqlite:<path>`: a database file.
    SqliteFile(PathBuf),
    /// `postgres://…` or `postgresql://…`: a PostgreSQL server (the URL is parsed when connecting).
    Postgres,
}

/// Which backend `url` names. `database` says whose URL it is in the error for an unknown scheme (e.g.
/// `"signal database"`); that error shows only the scheme, as the rest of the URL may hold a password.
pub fn parse_url<E: FromSqlError>(url: &str, database: &str) -> Result<Target, E> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres);
    }
    let invalid = |message: String| E::from_sql_error(SqlErrorKind::Invalid, message);
    let Some(rest) = url.strip_prefix("sqlite:") else {
        let scheme = url.split_once(':').map_or("(none)", |(scheme, _)| scheme);
        return Err(invalid(format!(
            "{database} URL scheme {scheme:?} is not supported: expected sqlite://<path>, sqlite::memory: or \
             postgres://user@host:port/db"
        )));
    };
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.contains('?') {
        return Err(invalid(format!("SQLite URL {url:?}: options after '?' are not supported")));
    }
    match path {
        "" => Err(invalid(format!("SQLite URL {url:?} names no file"))),
        ":memory:" => Ok(Target::SqliteMemory),
        _ => Ok(Target::SqliteFile(PathBuf::from(path))),
    }
}

/// A minimal store error for the tests of this module and its children.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TestError {
    pub(crate) kind: SqlErrorKind,
    pub(crate) message: String,
}

#[cfg(test)]
impl FromSqlError for TestError {
    fn from_sql_error(kind: SqlErrorKind, message: String) -> Self {
        TestError { kind, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Target, TestError> {
        parse_url(url, "test database")
    }

    #[test]
    fn urls_name_the_backend() {
        assert_eq!(parse("sqlite::memory:"), Ok(Target::SqliteMemory));
        assert_eq!(parse("sqlite://:memory:"), Ok(Target::SqliteMemory));
        assert_eq!(parse("sqlite://out/x.db"), Ok(Target::SqliteFile("out/x.db".into())));
        assert_eq!(parse("sqlite:///tmp/x.db"), Ok(Target::SqliteFile("/tmp/x.db".into())));
        assert_eq!(parse("sqlite:x.db"), Ok(Target::SqliteFile("x.db".into())));
        assert_eq!(parse("postgres://u:p@h:5433/db"), Ok(Target::Postgres));
        assert_eq!(parse("postgresql://h/db"), Ok(Target::Postgres));
    }

    #[test]
    fn bad_urls_are_invalid_and_never_show_a_password() {
        for bad in ["sqlite://", "sqlite:", "sqlite://x.db?mode=rwc", "mysql://u:secret@h/db", "x.db"] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.kind, SqlErrorKind::Invalid, "{bad}");
            assert!(!err.message.contains("secret"), "{}", err.message);
        }
        let err = parse("mysql://u:secret@h/db").unwrap_err();
        assert!(
            err.message.starts_with("test database URL scheme \"mysql\" is not supported"),
            "{}",
            err.message
        );
        assert!(parse("x.db").unwrap_err().message.contains("scheme \"(none)\""));
        assert_eq!(parse("sqlite://").unwrap_err().message, "SQLite URL \"sqlite://\" names no file");
    }
}
