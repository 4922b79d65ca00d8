//! The webhook outbox (`deliveries`): enqueue messages, claim the due ones, record each try's
//! result, list and replay dead letters, and the endpoints disabled by a `410 Gone`.
//!
//! A claim does not change a delivery's state: it moves its `next_attempt_at` forward by a
//! hold time. A worker that dies after claiming therefore loses nothing — the delivery is due
//! again once the hold passes, and is sent again under the same `webhook-id`.

use super::sql::{Sql, get, insert_values, is_postgres};
use super::{StoreError, begin_write};
use chrono::{DateTime, Utc};
use entity::deliveries;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, Value,
};

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The `webhook-id`, unique: enqueuing the same id twice keeps the first.
    pub webhook_id: String,
    /// The task it is about.
    pub task_id: Option<i64>,
    /// The endpoint's name (`robot`, `sms`, `email`, `human`).
    pub endpoint: String,
    /// `task.ready` or `task.cancelled`.
    pub event: String,
    /// The JSON body.
    pub body: String,
    /// When to send it first.
    pub send_at: DateTime<Utc>,
}

/// A claimed delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    /// Row id.
    pub id: i64,
    /// `webhook-id`.
    pub webhook_id: String,
    /// Endpoint name.
    pub endpoint: String,
    /// The body.
    pub body: String,
    /// Tries made before this one.
    pub tries: i32,
}

/// Adds messages to the outbox; an already present `webhook_id` is left as it is. Returns the
/// rows added.
pub async fn enqueue_deliveries(
    db: &impl ConnectionTrait,
    deliveries: &[NewDelivery],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    insert_values(
        db,
        "INSERT INTO deliveries (created_at, state, tries, webhook_id, task_id, endpoint, event, body, next_attempt_at)",
        &[Value::from(now), Value::from("pending"), Value::from(0i32)],
        6,
        deliveries,
        |delivery, values| {
            values.push(Value::from(delivery.webhook_id.as_str()));
            values.push(Value::BigInt(delivery.task_id));
            values.push(Value::from(delivery.endpoint.as_str()));
            values.push(Value::from(delivery.event.as_str()));
            values.push(Value::from(delivery.body.as_str()));
            values.push(Value::from(delivery.send_at));
        },
        " ON CONFLICT (webhook_id) DO NOTHING",
    )
    .await
}

/// Claims up to `limit` pending deliveries due at `now` (oldest due first) on endpoints not
/// disabled, holding them until `hold_until`. PostgreSQL: one `UPDATE ... WHERE id IN (SELECT
/// ... FOR UPDATE SKIP LOCKED) RETURNING`, so concurrent workers never claim the same row;
/// SQLite: the same `UPDATE ... RETURNING` inside an immediate transaction.
pub async fn claim_due_deliveries(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    limit: u64,
    hold_until: DateTime<Utc>,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("UPDATE deliveries SET next_attempt_at = ");
    sql.bind(hold_until);
    sql.push(
        " WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND endpoint NOT IN \
         (SELECT name FROM endpoint_states WHERE disabled_at IS NOT NULL) AND next_attempt_at <= ",
    );
    sql.bind(now);
    sql.push(" ORDER BY next_attempt_at, id LIMIT ");
    sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    if is_postgres(backend) {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    sql.push(") RETURNING id, webhook_id, endpoint, body, tries");
    let rows = if is_postgres(backend) {
        db.query_all_raw(sql.statement()).await?
    } else {
        let txn = begin_write(db).await?;
        let rows = txn.query_all_raw(sql.statement()).await?;
        txn.commit().await?;
        rows
    };
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = get(&row, 0, "deliveries", "claimed")?;
        let key = id.to_string();
        claimed.push(ClaimedDelivery {
            id,
            webhook_id: get(&row, 1, "deliveries", &key)?,
            endpoint: get(&row, 2, "deliveries", &key)?,
            body: get(&row, 3, "deliveries", &key)?,
            tries: get(&row, 4, "deliveries", &key)?,
        });
    }
    claimed.sort_by_key(|delivery| delivery.id);
    Ok(claimed)
}

/// What one try came to.
#[derive(Debug, Clone, PartialEq)]
pub enum TryResult {
    /// 2xx.
    Delivered {
        /// HTTP status.
        status: u16,
    },
    /// Failed; try again at `retry_at`, or never (`None`: a dead letter).
    Failed {
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// The next try.
        retry_at: Option<DateTime<Utc>>,
    },
    /// `410 Gone`: the endpoint is disabled and this delivery waits for it to be re-enabled.
    Gone,
}

/// Records one try of a claimed delivery.
pub async fn record_try(
    db: &impl ConnectionTrait,
    id: i64,
    result: &TryResult,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE deliveries SET tries = tries + 1, ");
    match result {
        TryResult::Delivered { status } => {
            sql.push("state = 'delivered', last_error = NULL, last_status = ");
            sql.bind(i32::from(*status));
            sql.push(", delivered_at = ");
            sql.bind(now);
        }
        TryResult::Failed { status, error, retry_at } => {
            match retry_at {
                Some(at) => {
                    sql.push("state = 'pending', next_attempt_at = ");
                    sql.bind(*at);
                }
                None => {
                    sql.push("state = 'dead'");
                }
            }
            sql.push(", last_status = ");
            sql.bind(Value::Int(status.map(i32::from)));
            sql.push(", last_error = ");
            sql.bind(error.chars().take(500).collect::<String>());
        }
        TryResult::Gone => {
            sql.push("state = 'disabled', last_status = 410, last_error = 'endpoint answered 410 Gone'");
        }
    }
    sql.push(" WHERE id = ");
    sql.bind(id);
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Records a successful try of many claimed deliveries at once (same HTTP status).
pub async fn record_delivered(
    db: &impl ConnectionTrait,
    ids: &[i64],
    status: u16,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for chunk in ids.chunks(1000) {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push("UPDATE deliveries SET tries = tries + 1, state = 'delivered', last_error = NULL, last_status = ");
        sql.bind(i32::from(status));
        sql.push(", delivered_at = ");
        sql.bind(now);
        sql.push(" WHERE id IN (");
        for (index, id) in chunk.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.bind(*id);
        }
        sql.push(")");
        db.execute_raw(sql.statement()).await?;
    }
    Ok(())
}

/// Disables an endpoint (it answered `410 Gone`): nothing more is sent to it until
/// [`enable_endpoint`].
pub async fn disable_endpoint(
    db: &impl ConnectionTrait,
    name: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("INSERT INTO endpoint_states (name, disabled_at, reason) VALUES (");
    sql.bind(name.to_string());
    sql.push(", ");
    sql.bind(now);
    sql.push(", ");
    sql.bind(reason.to_string());
    sql.push(") ON CONFLICT (name) DO UPDATE SET disabled_at = excluded.disabled_at, reason = excluded.reason");
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Re-enables an endpoint and puts its `disabled` deliveries back in the queue, due at `now`.
/// Returns the deliveries requeued.
pub async fn enable_endpoint(db: &DatabaseConnection, name: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let txn = begin_write(db).await?;
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push("DELETE FROM endpoint_states WHERE name = ");
    sql.bind(name.to_string());
    txn.execute_raw(sql.statement()).await?;
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push("UPDATE deliveries SET state = 'pending', next_attempt_at = ");
    sql.bind(now);
    sql.push(" WHERE state = 'disabled' AND endpoint = ");
    sql.bind(name.to_string());
    let requeued = txn.execute_raw(sql.statement()).await?.rows_affected();
    txn.commit().await?;
    Ok(requeued)
}

/// The endpoints disabled now, with when and why.
pub async fn disabled_endpoints(
    db: &impl ConnectionTrait,
) -> Result<Vec<(String, DateTime<Utc>, Option<String>)>, StoreError> {
    let sql = Sql::new(db.get_database_backend());
    let mut sql = sql;
    sql.push("SELECT name, disabled_at, reason FROM endpoint_states WHERE disabled_at IS NOT NULL ORDER BY name");
    let rows = db.query_all_raw(sql.statement()).await?;
    let mut endpoints = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = get(&row, 0, "endpoint_states", "name")?;
        endpoints.push((
            name.clone(),
            get(&row, 1, "endpoint_states", &name)?,
            get(&row, 2, "endpoint_states", &name)?,
        ));
    }
    Ok(endpoints)
}

/// Deliveries in a state (`pending`, `delivered`, `dead`, `disabled`), oldest first, at most `limit`.
pub async fn deliveries_in_state(
    db: &impl ConnectionTrait,
    state: &str,
    limit: u64,
) -> Result<Vec<deliveries::Model>, StoreError> {
    Ok(deliveries::Entity::find()
        .filter(deliveries::Column::State.eq(state))
        .order_by_asc(deliveries::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Puts dead letters back in the queue, due at `now`, with a fresh retry schedule (`tries`
/// reset). `ids` empty means every dead letter. Returns the deliveries requeued.
pub async fn replay_dead_letters(db: &DatabaseConnection, ids: &[i64], now: DateTime<Utc>) -> Result<u64, StoreError> {
    let txn = db.begin().await?;
    let mut requeued = 0;
    if ids.is_empty() {
        let mut sql = Sql::new(txn.get_database_backend());
        sql.push("UPDATE deliveries SET state = 'pending', tries = 0, next_attempt_at = ");
        sql.bind(now);
        sql.push(" WHERE state = 'dead'");
        requeued += txn.execute_raw(sql.statement()).await?.rows_affected();
    }
    for id in ids {
        let mut sql = Sql::new(txn.get_database_backend());
        sql.push("UPDATE deliveries SET state = 'pending', tries = 0, next_attempt_at = ");
        sql.bind(now);
        sql.push(" WHERE state = 'dead' AND id = ");
        sql.bind(*id);
        requeued += txn.execute_raw(sql.statement()).await?.rows_affected();
    }
    txn.commit().await?;
    Ok(requeued)
}

/// Whether the `task.ready` of task `task_id` went out: delivered, or tried at least once (the
/// receiver may have it even when its answer was lost).
pub async fn ready_was_sent(db: &impl ConnectionTrait, task_id: i64) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT 1 FROM deliveries WHERE webhook_id = ");
    sql.bind(crate::dispatch::task_webhook_id(task_id, crate::dispatch::TASK_READY));
    sql.push(" AND (state = 'delivered' OR tries > 0)");
    Ok(db.query_one_raw(sql.statement()).await?.is_some())
}
