//! Tests of the order store on both backends.

use super::*;
use crate::storage::{postgres::sort_error as pg_error, sqlite::sort_error as sqlite_error};
use chrono::{NaiveDate, TimeDelta};
use rusqlite::Connection;
use sqlx::Connection as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// 2024-08-14 05:00:00 plus `seconds`.
fn at(seconds: i64) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 8, 14).unwrap().and_hms_opt(5, 0, 0).unwrap() + TimeDelta::seconds(seconds)
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
    assert_eq!(store.list_after(None, 2).await.unwrap(), vec![a.clone(), b.clone()]);
    assert_eq!(store.list_after(Some(a.id), 1).await.unwrap(), vec![b.clone()]);
    assert_eq!(store.list_after(Some(b.id), 20).await.unwrap(), vec![c.clone()]);
    assert_eq!(store.list_after(Some(c.id), 20).await.unwrap(), vec![]);
    assert_eq!(store.list_after(Some(i64::MIN), u64::MAX).await.unwrap().len(), 3, "huge limits are clamped");

    let b2 = store.set_state(b.id, OrderState::Success).await.unwrap().unwrap();
    assert_eq!(b2, Order { state: OrderState::Success, ..b.clone() });
    store.set_state(c.id, OrderState::Rejected).await.unwrap().unwrap();
    // No transition check, as the reference: reversed can go back to pending.
    store.set_state(a.id, OrderState::Reversed).await.unwrap().unwrap();
    assert_eq!(store.set_state(a.id, OrderState::Pending).await.unwrap().unwrap().state, OrderState::Pending);
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
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'poke_orders' ORDER BY name",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        ["ix_poke_orders_country", "ix_poke_orders_id", "ix_poke_orders_pokemon", "ix_poke_orders_user_id"]
    );
    let bad_state = raw.execute("INSERT INTO poke_orders (price, state) VALUES (1.0, 'shipped')", []);
    assert!(bad_state.unwrap_err().to_string().contains("CHECK constraint failed: orderstate"));
    let stored: String =
        raw.query_row(r#"SELECT "timestamp" FROM poke_orders WHERE id = 1"#, [], |r| r.get(0)).unwrap();
    assert_eq!(stored, "2024-08-14 05:00:00.000000", "SQLAlchemy's fixed-width text");

    // A database migrated by a newer chaoslab is refused rather than misread.
    raw.execute("INSERT INTO chaoslab_schema_migrations (version, name) VALUES (3, 'future')", []).unwrap();
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
    assert_eq!(parse_url("sqlite:///tmp/orders.db").unwrap(), Target::SqliteFile("/tmp/orders.db".into()));
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
    assert!(matches!(sqlite_error("p", "op", sqlite(rusqlite::ffi::SQLITE_CORRUPT)), StoreError::Backend(_)));
    let message =
        sqlite_error::<StoreError>("sqlite x.db", "create", sqlite(rusqlite::ffi::SQLITE_BUSY)).to_string();
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
            crate::testing::skip(tag, "no PostgreSQL (set CHAOSLAB_TEST_DATABASE_URL or install postgresql)");
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
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
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
    assert!(store.place().starts_with("postgres 127.0.0.1:") || pg.cluster.is_none(), "{}", store.place());
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
            crate::testing::skip(
                "postgres_down_is_unavailable_and_the_pool_reconnects",
                "no PostgreSQL binaries",
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
    assert!(started.elapsed() < PG_ACQUIRE_TIMEOUT + Duration::from_secs(3), "took {:?}", started.elapsed());
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
