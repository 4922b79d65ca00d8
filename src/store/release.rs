//! Task statements of the release loop, cancellations and escalation: the release candidates
//! (claimed `FOR UPDATE SKIP LOCKED` on PostgreSQL), conditional state moves, the expiry sweep,
//! the one cancellation statement every caller shares (payments, outcomes, escalation), reading
//! tasks by id (the outbox's claim-time check), and inserting an escalated human task.
//!
//! Small statements for the caller's transaction; the decisions are `ops::release`'s and
//! `ops::work`'s. Every state change is conditional on the state it expects.

use super::StoreError;
use super::sql::{Sql, get, in_list_chunk, is_postgres, push_in_list};
use crate::domain::{Reason, TaskState};
use chrono::{DateTime, NaiveDate, Utc};
use entity::tasks;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Value};
use std::collections::HashMap;

/// The states a cancellation applies to: every state with work still to do or a message out.
pub const CANCELLABLE_STATES: &str = "('planned', 'ready', 'leased', 'dispatched')";

/// `planned` tasks whose window has opened and not yet closed at `now`, by `(not_before, id)`
/// after `after`, at most `limit`. On PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED`
/// (call it inside the releasing transaction), so concurrent releasers get disjoint tasks;
/// SQLite has no row locks, and the caller's immediate transaction serialises releasers.
pub async fn release_candidates(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    after: Option<(DateTime<Utc>, i64)>,
    limit: u64,
) -> Result<Vec<tasks::Model>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("SELECT tasks.* FROM tasks WHERE state = 'planned' AND not_before <= ");
    let now_number = sql.bind(now);
    sql.push(" AND not_after > ");
    sql.reuse(now_number);
    if let Some((not_before, id)) = after {
        sql.push(" AND (not_before > ");
        let at = sql.bind(not_before);
        sql.push(" OR (not_before = ");
        sql.reuse(at);
        sql.push(" AND id > ");
        sql.bind(id);
        sql.push("))");
    }
    sql.push(" ORDER BY not_before, id LIMIT ");
    sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    if is_postgres(backend) {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    Ok(tasks::Entity::find().from_raw_sql(sql.statement()).all(db).await?)
}

/// Moves task `id` from state `from` to `to` (reason `reason`); returns whether it did.
pub async fn move_task(
    db: &impl ConnectionTrait,
    id: i64,
    from: &str,
    to: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE tasks SET state = ");
    sql.bind(to);
    sql.push(", state_reason = ");
    sql.bind(Value::String(reason.map(str::to_string)));
    sql.push(", state_changed_at = ");
    sql.bind(now);
    sql.push(" WHERE id = ");
    sql.bind(id);
    sql.push(" AND state = ");
    sql.bind(from);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Expires at most `limit` tasks whose window closed at `now` (`not_after <= now`) and that
/// nobody is working: `planned`, `ready` and `dispatched` (a message about it may still be
/// waiting in the outbox: the caller voids it). State `expired`, reason `window_closed`.
/// `leased` tasks are left to their lease. Returns their ids. On PostgreSQL rows another
/// sweeper holds are skipped.
pub async fn expire_closed_windows(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<i64>, StoreError> {
    let backend = db.get_database_backend();
    let expiring = TaskState::sql_list(EXPIRING);
    let mut sql = Sql::new(backend);
    sql.push("UPDATE tasks SET state = ");
    sql.bind(TaskState::Expired.code());
    sql.push(", state_reason = ");
    sql.bind(Reason::WindowClosed.to_string());
    sql.push(", state_changed_at = ");
    let now_number = sql.bind(now);
    sql.push(" WHERE id IN (SELECT id FROM tasks WHERE state IN ");
    sql.push(&expiring);
    sql.push(" AND not_after <= ");
    sql.reuse(now_number);
    sql.push(" ORDER BY id LIMIT ");
    sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    if is_postgres(backend) {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    sql.push(") AND state IN ");
    sql.push(&expiring);
    sql.push(" RETURNING id");
    let mut ids = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        ids.push(get::<i64>(&row, 0, "tasks", "expired")?);
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The states the expiry sweep closes: open, or sent to a machine (`dispatched`).
const EXPIRING: &[TaskState] = &[TaskState::Planned, TaskState::Ready, TaskState::Dispatched];

/// Which tasks of the given accounts a cancellation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelFilter {
    /// Every channel.
    #[default]
    All,
    /// Calls only (robot, human): `do_not_call`.
    Calls,
    /// One channel (`robot` for an escalation).
    Only(crate::domain::Channel),
}

/// A task a cancellation closed, with the state it was in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedTask {
    /// Task id.
    pub id: i64,
    /// Its account.
    pub account_id: String,
    /// Its channel.
    pub channel: String,
    /// The state it left (`dispatched` means a message about it is out).
    pub previous: String,
}

/// Closes the cancellable tasks (`planned`, `ready`, `leased`, `dispatched`) of `account_ids`
/// on the channels `filter` lets through, leaving out task `except`: they move to `state`
/// (`cancelled`, or `escalated`) with `reason`, a lease is cleared. Returns them with the
/// state each left, by id. The rows are read `FOR UPDATE` on PostgreSQL first, so the states
/// returned are the ones the update changed.
pub async fn close_tasks_of_accounts(
    db: &impl ConnectionTrait,
    account_ids: &[&str],
    filter: ChannelFilter,
    except: Option<i64>,
    state: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<ClosedTask>, StoreError> {
    let backend = db.get_database_backend();
    let mut closed = Vec::new();
    for chunk in account_ids.chunks(in_list_chunk(backend, 8)) {
        let mut sql = Sql::new(backend);
        sql.push("SELECT id, account_id, channel, state FROM tasks WHERE state IN ");
        sql.push(CANCELLABLE_STATES);
        sql.push(" AND ");
        push_in_list(&mut sql, "account_id", chunk);
        match filter {
            ChannelFilter::All => {}
            ChannelFilter::Calls => {
                sql.push(" AND channel IN ('robot', 'human')");
            }
            ChannelFilter::Only(channel) => {
                sql.push(" AND channel = ");
                sql.bind(channel.code());
            }
        }
        if let Some(id) = except {
            sql.push(" AND id <> ");
            sql.bind(id);
        }
        sql.push(" ORDER BY id");
        if is_postgres(backend) {
            sql.push(" FOR UPDATE");
        }
        for row in db.query_all_raw(sql.statement()).await? {
            let id: i64 = get(&row, 0, "tasks", "?")?;
            let key = id.to_string();
            let task = ClosedTask {
                id,
                account_id: get(&row, 1, "tasks", &key)?,
                channel: get(&row, 2, "tasks", &key)?,
                previous: get(&row, 3, "tasks", &key)?,
            };
            let mut update = Sql::new(backend);
            update.push("UPDATE tasks SET state = ");
            update.bind(state);
            update.push(", state_reason = ");
            update.bind(reason);
            update.push(", state_changed_at = ");
            update.bind(now);
            update.push(", lease_expires_at = NULL WHERE id = ");
            update.bind(id);
            update.push(" AND state = ");
            update.bind(task.previous.as_str());
            if db.execute_raw(update.statement()).await?.rows_affected() == 1 {
                closed.push(task);
            }
        }
    }
    closed.sort_by_key(|task| task.id);
    Ok(closed)
}

/// The tasks of the given ids that exist, by id.
pub async fn tasks_by_id(db: &impl ConnectionTrait, ids: &[i64]) -> Result<HashMap<i64, tasks::Model>, StoreError> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let rows = tasks::Entity::find().filter(tasks::Column::Id.is_in(chunk.iter().copied())).all(db).await?;
        found.extend(rows.into_iter().map(|task| (task.id, task)));
    }
    Ok(found)
}

/// A task made outside a plan run (an escalation to a human queue).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// The plan run of the task it comes from.
    pub plan_run_id: i64,
    /// The account.
    pub account_id: String,
    /// Its borrower.
    pub borrower_id: String,
    /// The borrower's local day.
    pub local_date: NaiveDate,
    /// Days past due that day.
    pub dpd: i32,
    /// Stage.
    pub stage: String,
    /// Strategy.
    pub strategy: String,
    /// The rule it comes from.
    pub rule: String,
    /// Experiment arm.
    pub arm: Option<String>,
    /// Channel code.
    pub channel: String,
    /// Human queue.
    pub queue: Option<String>,
    /// Calls the agent may place.
    pub calls_allowed: i32,
    /// Window start.
    pub not_before: DateTime<Utc>,
    /// Window end.
    pub not_after: DateTime<Utc>,
    /// Priority.
    pub priority: f64,
    /// Initial state (`planned`).
    pub state: String,
    /// JSON text carried to the agent.
    pub context: Option<String>,
    /// Why it exists: an `escalation` or a `callback`.
    pub origin: crate::domain::TaskOrigin,
}

/// Inserts a task as the next attempt number of its account's local day (so the
/// `(account_id, local_date, attempt)` key holds); returns its id.
pub async fn insert_task(db: &impl ConnectionTrait, task: &NewTask, now: DateTime<Utc>) -> Result<i64, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "INSERT INTO tasks (plan_run_id, account_id, borrower_id, local_date, dpd, stage, strategy, rule, arm, \
         channel, queue, template, attempt, calls_allowed, not_before, not_after, priority, state, created_at, \
         state_changed_at, state_reason, context, origin) SELECT ",
    );
    let values = [
        Value::from(task.plan_run_id),
        Value::from(task.account_id.as_str()),
        Value::from(task.borrower_id.as_str()),
        Value::from(task.local_date),
        Value::from(task.dpd),
        Value::from(task.stage.as_str()),
        Value::from(task.strategy.as_str()),
        Value::from(task.rule.as_str()),
        Value::String(task.arm.clone()),
        Value::from(task.channel.as_str()),
        Value::String(task.queue.clone()),
        Value::String(None),
    ];
    for value in values {
        sql.bind(value);
        sql.push(", ");
    }
    sql.push("COALESCE(MAX(attempt), 0) + 1");
    let rest = [
        Value::from(task.calls_allowed),
        Value::from(task.not_before),
        Value::from(task.not_after),
        Value::from(task.priority),
        Value::from(task.state.as_str()),
        Value::from(now),
        Value::from(now),
        Value::from(task.origin.code()),
        Value::String(task.context.clone()),
        Value::from(task.origin.code()),
    ];
    for value in rest {
        sql.push(", ");
        sql.bind(value);
    }
    sql.push(" FROM tasks WHERE account_id = ");
    sql.bind(task.account_id.as_str());
    sql.push(" AND local_date = ");
    sql.bind(task.local_date);
    sql.push(" RETURNING id");
    let row = db.query_one_raw(sql.statement()).await?.ok_or_else(|| StoreError::Corrupt {
        table: "tasks",
        id: task.account_id.clone(),
        message: "no id".into(),
    })?;
    get(&row, 0, "tasks", &task.account_id)
}
