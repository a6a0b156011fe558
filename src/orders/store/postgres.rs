//! The PostgreSQL backend of the order store: a sqlx pool.

use chrono::NaiveDateTime;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{
    MIGRATIONS_TABLE, OutboxRow, PG_MAX_CONNECTIONS, PG_MIGRATION_LOCK, RawOrder, StoreError,
    pending_migrations,
};
use crate::orders::model::{NewOrder, Order, OrderState};
use crate::storage::postgres::SharedPool;

/// The PostgreSQL backend: a sqlx pool shared by all clones.
#[derive(Clone)]
pub struct PgStore {
    pub(super) db: SharedPool<StoreError>,
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
    pub(super) async fn open(url: &str) -> Result<PgStore, StoreError> {
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
    pub(super) async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
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

    pub(super) async fn create(
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

    pub(super) async fn get(&self, id: i64) -> Result<Option<Order>, StoreError> {
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

    pub(super) async fn list_after(&self, after: i64, limit: i64) -> Result<Vec<Order>, StoreError> {
        let query = sqlx::query(concat!(
            "SELECT ",
            pg_order_columns!(),
            " FROM poke_orders WHERE id > $1 ORDER BY id LIMIT $2"
        ));
        let rows = self.db.run("list_after", query.bind(after).bind(limit).fetch_all(self.db.pool())).await?;
        rows.iter().map(|row| self.run_decode("list_after", row)).collect()
    }

    pub(super) async fn list(
        &self,
        state: Option<OrderState>,
        skip: i64,
        limit: i64,
    ) -> Result<Vec<Order>, StoreError> {
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

    pub(super) async fn set_state(&self, id: i64, state: OrderState) -> Result<Option<Order>, StoreError> {
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

    pub(super) async fn delete_all(&self) -> Result<u64, StoreError> {
        let done =
            self.db.run("delete_all", sqlx::query("DELETE FROM poke_orders").execute(self.db.pool())).await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn reverse_expired(&self, older_than: NaiveDateTime) -> Result<Vec<i64>, StoreError> {
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

    pub(super) async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.db
            .run(
                "counts_by_state",
                sqlx::query_as("SELECT state::text, count(*) FROM poke_orders GROUP BY state")
                    .fetch_all(self.db.pool()),
            )
            .await
    }

    pub(super) async fn outbox_pending(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
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

    pub(super) async fn outbox_mark_sent(&self, ids: &[i64], now: NaiveDateTime) -> Result<u64, StoreError> {
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

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.db.run("ping", sqlx::query("SELECT 1").execute(self.db.pool())).await.map(|_| ())
    }
}
