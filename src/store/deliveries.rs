//! The webhook outbox (`deliveries`): enqueue messages, claim the due ones, record each try's
//! result, void the ones that must never be sent, list and replay dead letters, and the
//! endpoints disabled by a `410 Gone`.
//!
//! A claim does not change a delivery's state: it moves its `next_attempt_at` forward by a
//! hold time and writes a fresh random `claim_token`. A worker that dies after claiming
//! therefore loses nothing — the delivery is due again once the hold passes, and is sent again
//! under the same `webhook-id`. Every later update of a claim (a try's result, a postponement,
//! voiding) is conditional on the row's id, that token and `state = 'pending'`, and clears the
//! token: a worker whose claim was taken over after its hold passed, or whose row another
//! statement finished meanwhile, changes nothing (0 rows). No statement moves a `delivered` row
//! to another state.

use super::sql::{Sql, get, in_list_chunk, insert_values, is_postgres, push_in_list};
use super::{StoreError, begin_write};
use crate::domain::DeliveryState;
use chrono::{DateTime, Utc};
use entity::deliveries;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, Value,
};
use std::collections::HashMap;

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
    /// The task it is about.
    pub task_id: Option<i64>,
    /// `task.ready` or `task.cancelled`.
    pub event: String,
    /// The claim's token: only its holder may record the result, and only until another claim
    /// takes the row over.
    pub claim_token: String,
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
        &[Value::from(now), Value::from(DeliveryState::Pending.code()), Value::from(0i32)],
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
/// disabled, holding them until `hold_until` under a fresh random claim token (one per claim,
/// written on every row it takes). PostgreSQL: one `UPDATE ... WHERE id IN (SELECT ... FOR
/// UPDATE SKIP LOCKED) RETURNING`, so concurrent workers never claim the same row; SQLite: the
/// same `UPDATE ... RETURNING` inside an immediate transaction. A row held by another claim is
/// not due (its `next_attempt_at` is the hold's end) until that hold passes.
pub async fn claim_due_deliveries(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    limit: u64,
    hold_until: DateTime<Utc>,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let backend = db.get_database_backend();
    let token = new_claim_token();
    let mut sql = Sql::new(backend);
    sql.push("UPDATE deliveries SET next_attempt_at = ");
    sql.bind(hold_until);
    sql.push(", claim_token = ");
    sql.bind(token.as_str());
    sql.push(" WHERE id IN (SELECT id FROM deliveries WHERE state = ");
    sql.bind(DeliveryState::Pending.code());
    sql.push(
        " AND endpoint NOT IN (SELECT name FROM endpoint_states WHERE disabled_at IS NOT NULL) \
         AND next_attempt_at <= ",
    );
    sql.bind(now);
    sql.push(" ORDER BY next_attempt_at, id LIMIT ");
    sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    if is_postgres(backend) {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    sql.push(") RETURNING id, webhook_id, endpoint, body, tries, task_id, event");
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
            task_id: get(&row, 5, "deliveries", &key)?,
            event: get(&row, 6, "deliveries", &key)?,
            claim_token: token.clone(),
        });
    }
    claimed.sort_by_key(|delivery| delivery.id);
    Ok(claimed)
}

/// A fresh claim token: 128 random bits in hex.
fn new_claim_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Appends ` WHERE id = ? AND claim_token = ? AND state = 'pending'`: the condition of every
/// update of a claim.
fn push_claim_condition(sql: &mut Sql, id: i64, claim_token: &str) {
    sql.push(" WHERE id = ");
    sql.bind(id);
    sql.push(" AND claim_token = ");
    sql.bind(claim_token);
    sql.push(" AND state = ");
    sql.bind(DeliveryState::Pending.code());
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

/// Records one try of the delivery `id` claimed under `claim_token`; returns whether it did.
/// `false` means the claim is no longer this worker's (its hold passed and another worker took
/// the row, or the row was voided or delivered meanwhile): nothing is changed.
pub async fn record_try(
    db: &impl ConnectionTrait,
    id: i64,
    claim_token: &str,
    result: &TryResult,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE deliveries SET tries = tries + 1, claim_token = NULL, state = ");
    match result {
        TryResult::Delivered { status } => {
            sql.bind(DeliveryState::Delivered.code());
            sql.push(", last_error = NULL, last_status = ");
            sql.bind(i32::from(*status));
            sql.push(", delivered_at = ");
            sql.bind(now);
        }
        TryResult::Failed { status, error, retry_at } => {
            match retry_at {
                Some(at) => {
                    sql.bind(DeliveryState::Pending.code());
                    sql.push(", next_attempt_at = ");
                    sql.bind(*at);
                }
                None => {
                    sql.bind(DeliveryState::Dead.code());
                }
            }
            sql.push(", last_status = ");
            sql.bind(Value::Int(status.map(i32::from)));
            sql.push(", last_error = ");
            sql.bind(error.chars().take(500).collect::<String>());
        }
        TryResult::Gone => {
            sql.bind(DeliveryState::Disabled.code());
            sql.push(", last_status = 410, last_error = 'endpoint answered 410 Gone'");
        }
    }
    push_claim_condition(&mut sql, id, claim_token);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Records a successful try (same HTTP status) of many deliveries claimed under `claim_token`;
/// returns how many it recorded (fewer than `ids` when some claims were lost meanwhile).
pub async fn record_delivered(
    db: &impl ConnectionTrait,
    claim_token: &str,
    ids: &[i64],
    status: u16,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut recorded = 0;
    for chunk in ids.chunks(1000) {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push("UPDATE deliveries SET tries = tries + 1, claim_token = NULL, last_error = NULL, state = ");
        sql.bind(DeliveryState::Delivered.code());
        sql.push(", last_status = ");
        sql.bind(i32::from(status));
        sql.push(", delivered_at = ");
        sql.bind(now);
        sql.push(" WHERE claim_token = ");
        sql.bind(claim_token);
        sql.push(" AND state = ");
        sql.bind(DeliveryState::Pending.code());
        sql.push(" AND id IN (");
        for (index, id) in chunk.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.bind(*id);
        }
        sql.push(")");
        recorded += db.execute_raw(sql.statement()).await?.rows_affected();
    }
    Ok(recorded)
}

/// Gives a claim back without a try: the delivery stays `pending`, due again at `until`, its
/// `tries` unchanged (the message was not sent: not yet sendable). Returns whether it did.
pub async fn postpone_claimed(
    db: &impl ConnectionTrait,
    id: i64,
    claim_token: &str,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE deliveries SET claim_token = NULL, next_attempt_at = ");
    sql.bind(until);
    push_claim_condition(&mut sql, id, claim_token);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Voids a claimed delivery: state `void` with `reason` (a reason code); it is never sent.
/// Returns whether it did.
pub async fn void_claimed(
    db: &impl ConnectionTrait,
    id: i64,
    claim_token: &str,
    reason: &str,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE deliveries SET claim_token = NULL, state = ");
    sql.bind(DeliveryState::Void.code());
    sql.push(", void_reason = ");
    sql.bind(reason);
    push_claim_condition(&mut sql, id, claim_token);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Voids the unsent ones among the deliveries `webhook_ids` (`reason`, a reason code): those
/// `pending` and not held by a live claim at `now` (no claim token, or its hold passed), and
/// the `dead` and `disabled` ones. A delivery being sent now, a delivered or an already void
/// one is left as it is. Returns the webhook ids voided.
pub async fn void_unsent(
    db: &impl ConnectionTrait,
    webhook_ids: &[&str],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let backend = db.get_database_backend();
    let mut voided = Vec::new();
    for chunk in webhook_ids.chunks(in_list_chunk(backend, 8)) {
        let mut sql = Sql::new(backend);
        sql.push("UPDATE deliveries SET claim_token = NULL, state = ");
        sql.bind(DeliveryState::Void.code());
        sql.push(", void_reason = ");
        sql.bind(reason);
        sql.push(" WHERE ");
        push_in_list(&mut sql, "webhook_id", chunk);
        sql.push(" AND (state IN ");
        sql.push(&DeliveryState::sql_list(&[DeliveryState::Dead, DeliveryState::Disabled]));
        sql.push(" OR (state = ");
        sql.bind(DeliveryState::Pending.code());
        sql.push(" AND (claim_token IS NULL OR next_attempt_at <= ");
        sql.bind(now);
        sql.push("))) RETURNING webhook_id");
        for row in db.query_all_raw(sql.statement()).await? {
            voided.push(get(&row, 0, "deliveries", "voided")?);
        }
    }
    voided.sort_unstable();
    Ok(voided)
}

/// Where one message is, as [`outbox_states`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxState {
    /// Row id.
    pub id: i64,
    /// The endpoint it goes to.
    pub endpoint: String,
    /// `pending`, `delivered`, `dead`, `disabled` or `void`.
    pub state: DeliveryState,
    /// Whether a claim holds it at the instant asked: `pending` with a claim token whose hold
    /// has not passed — a worker is sending it.
    pub held: bool,
    /// When it is next due (for a held one: when its hold ends).
    pub next_attempt_at: DateTime<Utc>,
}

/// The deliveries of the given `webhook_ids` that exist, by webhook id, as they are at `now`.
pub async fn outbox_states(
    db: &impl ConnectionTrait,
    webhook_ids: &[&str],
    now: DateTime<Utc>,
) -> Result<HashMap<String, OutboxState>, StoreError> {
    let backend = db.get_database_backend();
    let mut found = HashMap::new();
    for chunk in webhook_ids.chunks(in_list_chunk(backend, 0)) {
        let mut sql = Sql::new(backend);
        sql.push("SELECT webhook_id, id, endpoint, state, claim_token, next_attempt_at FROM deliveries WHERE ");
        push_in_list(&mut sql, "webhook_id", chunk);
        for row in db.query_all_raw(sql.statement()).await? {
            let webhook_id: String = get(&row, 0, "deliveries", "?")?;
            let state: String = get(&row, 3, "deliveries", &webhook_id)?;
            let token: Option<String> = get(&row, 4, "deliveries", &webhook_id)?;
            let next_attempt_at: DateTime<Utc> = get(&row, 5, "deliveries", &webhook_id)?;
            let state: DeliveryState = state.parse().map_err(|error: crate::domain::ParseCodeError| {
                StoreError::Corrupt { table: "deliveries", id: webhook_id.clone(), message: error.to_string() }
            })?;
            let held = state == DeliveryState::Pending && token.is_some() && next_attempt_at > now;
            let entry = OutboxState {
                id: get(&row, 1, "deliveries", &webhook_id)?,
                endpoint: get(&row, 2, "deliveries", &webhook_id)?,
                state,
                held,
                next_attempt_at,
            };
            found.insert(webhook_id, entry);
        }
    }
    Ok(found)
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
    sql.push("UPDATE deliveries SET claim_token = NULL, state = ");
    sql.bind(DeliveryState::Pending.code());
    sql.push(", next_attempt_at = ");
    sql.bind(now);
    sql.push(" WHERE state = ");
    sql.bind(DeliveryState::Disabled.code());
    sql.push(" AND endpoint = ");
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

/// Deliveries in a state (`pending`, `delivered`, `dead`, `disabled`, `void`), oldest first, at
/// most `limit`.
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
/// reset). `ids` empty means every dead letter. Returns the deliveries requeued. A replayed
/// message goes through the outbox's claim-time check like any other: one about a task that
/// is no longer sendable is voided then, never sent.
pub async fn replay_dead_letters(db: &DatabaseConnection, ids: &[i64], now: DateTime<Utc>) -> Result<u64, StoreError> {
    let txn = db.begin().await?;
    let mut requeued = 0;
    let statement = |id: Option<i64>| {
        let mut sql = Sql::new(txn.get_database_backend());
        sql.push("UPDATE deliveries SET claim_token = NULL, tries = 0, state = ");
        sql.bind(DeliveryState::Pending.code());
        sql.push(", next_attempt_at = ");
        sql.bind(now);
        sql.push(" WHERE state = ");
        sql.bind(DeliveryState::Dead.code());
        if let Some(id) = id {
            sql.push(" AND id = ");
            sql.bind(id);
        }
        sql.statement()
    };
    if ids.is_empty() {
        requeued += txn.execute_raw(statement(None)).await?.rows_affected();
    }
    for id in ids {
        requeued += txn.execute_raw(statement(Some(*id))).await?.rows_affected();
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
