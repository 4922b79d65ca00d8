//! Task states for leasing: the candidate query, the claim, lease heartbeats and ends, the
//! reaper's statements and closing one open task. Each is one small statement taking the
//! connection or the caller's transaction; the use cases (`ops::work`) decide, this module only
//! reads and writes rows, and never holds a transaction of its own across anything.
//!
//! Every state change is conditional on the state it expects (`WHERE state IN ...`), so two
//! callers racing for the same row cannot both win: the loser sees zero rows changed.

use super::StoreError;
use super::sql::{Sql, get, is_postgres};
use crate::domain::TaskState;
use chrono::{DateTime, Utc};
use entity::tasks;
use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait, SqlErr, TransactionTrait};

/// `FROM tasks WHERE` the open human tasks of `queue` whose window contains `now` and whose
/// borrower no agent holds, leaving out `skip`.
fn push_open_in_queue(sql: &mut Sql, queue: &str, now: DateTime<Utc>, skip: &[i64]) {
    sql.push(" FROM tasks WHERE channel = 'human' AND queue = ");
    sql.bind(queue);
    sql.push(" AND state IN ");
    sql.push(&TaskState::sql_list(TaskState::OPEN));
    sql.push(" AND not_before <= ");
    let now_number = sql.bind(now);
    sql.push(" AND not_after > ");
    sql.reuse(now_number);
    sql.push(
        " AND NOT EXISTS (SELECT 1 FROM tasks AS held WHERE held.borrower_id = tasks.borrower_id \
         AND held.state = 'leased')",
    );
    if !skip.is_empty() {
        sql.push(" AND id NOT IN (");
        for (index, id) in skip.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.bind(*id);
        }
        sql.push(")");
    }
}

/// The open human tasks of `queue` whose window contains `now`, whose borrower no agent holds,
/// best first (`priority` descending, then oldest `id`), at most `limit`, leaving out `skip`.
///
/// On PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED` (call it inside the claiming
/// transaction): concurrent claimers get disjoint candidates. SQLite has no row locks; there the
/// caller's immediate transaction serialises claimers.
pub async fn lease_candidates(
    db: &impl ConnectionTrait,
    queue: &str,
    now: DateTime<Utc>,
    skip: &[i64],
    limit: u64,
) -> Result<Vec<tasks::Model>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("SELECT tasks.*");
    push_open_in_queue(&mut sql, queue, now, skip);
    sql.push(" ORDER BY priority DESC, id LIMIT ");
    sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    if is_postgres(backend) {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    Ok(tasks::Entity::find().from_raw_sql(sql.statement()).all(db).await?)
}

/// Whether [`lease_candidates`] has anything at all, locked by others or not (no lock taken):
/// an empty claim under `SKIP LOCKED` then means "held right now", not "nothing ready".
pub async fn has_lease_candidate(
    db: &impl ConnectionTrait,
    queue: &str,
    now: DateTime<Utc>,
    skip: &[i64],
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT 1");
    push_open_in_queue(&mut sql, queue, now, skip);
    sql.push(" LIMIT 1");
    Ok(db.query_one_raw(sql.statement()).await?.is_some())
}

/// What claiming a task did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The task is now leased to the agent.
    Claimed,
    /// The task was no longer open (someone else took or closed it).
    Gone,
    /// Another task of the same borrower is leased (the `ux_tasks_leased_borrower` index).
    BorrowerHeld,
}

/// Leases an open task to `agent` until `expires_at`, to call `address` first, inside the
/// caller's transaction. A savepoint keeps a unique violation (the borrower is held) from
/// aborting the transaction.
pub async fn claim_task(
    txn: &DatabaseTransaction,
    id: i64,
    agent: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    address: Option<&str>,
) -> Result<Claim, StoreError> {
    let savepoint = txn.begin().await?;
    let mut sql = Sql::new(savepoint.get_database_backend());
    sql.push("UPDATE tasks SET state = 'leased', lease_agent = ");
    sql.bind(agent);
    sql.push(", address = ");
    sql.bind(sea_orm::Value::String(address.map(str::to_string)));
    sql.push(", lease_expires_at = ");
    sql.bind(expires_at);
    sql.push(", state_changed_at = ");
    sql.bind(now);
    sql.push(", state_reason = NULL WHERE id = ");
    sql.bind(id);
    sql.push(" AND state IN ");
    sql.push(&TaskState::sql_list(TaskState::OPEN));
    match savepoint.execute_raw(sql.statement()).await {
        Ok(result) => {
            savepoint.commit().await?;
            Ok(if result.rows_affected() == 1 { Claim::Claimed } else { Claim::Gone })
        }
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            savepoint.rollback().await?;
            Ok(Claim::BorrowerHeld)
        }
        Err(error) => Err(error.into()),
    }
}

/// One task by id.
pub async fn task_by_id(db: &impl ConnectionTrait, id: i64) -> Result<Option<tasks::Model>, StoreError> {
    Ok(tasks::Entity::find_by_id(id).one(db).await?)
}

/// One task by id, its row locked `FOR UPDATE` on PostgreSQL until the caller's transaction
/// ends (SQLite: the caller's immediate transaction already excludes other writers).
pub async fn lock_task(db: &impl ConnectionTrait, id: i64) -> Result<Option<tasks::Model>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("SELECT tasks.* FROM tasks WHERE id = ");
    sql.bind(id);
    if is_postgres(backend) {
        sql.push(" FOR UPDATE");
    }
    Ok(tasks::Entity::find().from_raw_sql(sql.statement()).one(db).await?)
}

/// Moves the lease of `agent` on task `id` to `expires_at`, if it is still leased to that agent
/// and has not expired at `now`; returns whether it did.
pub async fn extend_lease(
    db: &impl ConnectionTrait,
    id: i64,
    agent: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE tasks SET lease_expires_at = ");
    sql.bind(expires_at);
    push_held_by(&mut sql, id, agent, now);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Ends the lease of `agent` on task `id` (still held and unexpired at `now`): the task moves to
/// `state` with `reason`. `keep_agent` leaves `lease_agent` as a record of who finished it
/// (`done`); otherwise it is cleared (`ready` again). Returns whether it did.
pub async fn end_lease(
    db: &impl ConnectionTrait,
    id: i64,
    agent: &str,
    now: DateTime<Utc>,
    state: &str,
    reason: &str,
    keep_agent: bool,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE tasks SET state = ");
    sql.bind(state);
    sql.push(", state_reason = ");
    sql.bind(reason);
    sql.push(", state_changed_at = ");
    sql.bind(now);
    sql.push(", lease_expires_at = NULL");
    if !keep_agent {
        sql.push(", lease_agent = NULL");
    }
    push_held_by(&mut sql, id, agent, now);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

fn push_held_by(sql: &mut Sql, id: i64, agent: &str, now: DateTime<Utc>) {
    sql.push(" WHERE id = ");
    sql.bind(id);
    sql.push(" AND state = 'leased' AND lease_agent = ");
    sql.bind(agent);
    sql.push(" AND lease_expires_at > ");
    sql.bind(now);
}

/// Leases expired at `now`: `(task id, agent)`, oldest expiry first. On PostgreSQL the rows are
/// locked `FOR UPDATE SKIP LOCKED` (call it inside the reaping transaction).
pub async fn expired_leases(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<(i64, String)>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("SELECT id, lease_agent FROM tasks WHERE state = 'leased' AND lease_expires_at <= ");
    sql.bind(now);
    sql.push(" ORDER BY lease_expires_at, id");
    if is_postgres(backend) {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    let mut leases = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let id: i64 = get(&row, 0, "tasks", "?")?;
        let agent: Option<String> = get(&row, 1, "tasks", &id.to_string())?;
        leases.push((id, agent.unwrap_or_default()));
    }
    Ok(leases)
}

/// Returns an expired lease's task to `ready` (lease cleared, reason `lease_expired`), if it is
/// still leased and expired at `now`; returns whether it did.
pub async fn return_expired_lease(db: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "UPDATE tasks SET state = 'ready', state_reason = 'lease_expired', lease_agent = NULL, \
         lease_expires_at = NULL, state_changed_at = ",
    );
    let now_number = sql.bind(now);
    sql.push(" WHERE id = ");
    sql.bind(id);
    sql.push(" AND state = 'leased' AND lease_expires_at <= ");
    sql.reuse(now_number);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Closes a live task (`planned`, `ready`, `leased` or `dispatched`): moves it to `state`
/// (`cancelled`, `expired`, `done`) with `reason`, clearing a lease's expiry; returns whether it
/// did.
pub async fn close_live_task(
    db: &impl ConnectionTrait,
    id: i64,
    state: TaskState,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE tasks SET state = ");
    sql.bind(state.code());
    sql.push(", state_reason = ");
    sql.bind(reason);
    sql.push(", state_changed_at = ");
    sql.bind(now);
    sql.push(", lease_expires_at = NULL WHERE id = ");
    sql.bind(id);
    sql.push(" AND state IN ");
    sql.push(&TaskState::sql_list(TaskState::LIVE));
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// [`close_live_task`] and, when it closed the task, its audit row (`task.<state>`, by `actor`,
/// with `detail`), in the caller's transaction.
pub async fn close_live_task_audited(
    db: &impl ConnectionTrait,
    id: i64,
    state: TaskState,
    reason: &str,
    actor: &str,
    detail: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if !close_live_task(db, id, state, reason, now).await? {
        return Ok(false);
    }
    super::record_audit_at(db, now, actor, &format!("task.{state}"), "task", &id.to_string(), detail).await?;
    Ok(true)
}

/// Records the address a task is sent to (release), so a report without one counts against it.
pub async fn record_task_address(db: &impl ConnectionTrait, id: i64, address: Option<&str>) -> Result<(), StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE tasks SET address = ");
    sql.bind(sea_orm::Value::String(address.map(str::to_string)));
    sql.push(" WHERE id = ");
    sql.bind(id);
    db.execute_raw(sql.statement()).await?;
    Ok(())
}
