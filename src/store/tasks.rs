//! Every task-state transition, each with its audit row in the same transaction: release
//! (`planned` → `ready` / `dispatched`), lease, the end of a lease, the reaper, closing one task
//! or the live tasks of accounts, the expiry sweep, and inserting a task made outside a plan run
//! (an escalation or a callback). The one module that writes `tasks.state`.
//!
//! Each statement is conditional on the states it expects (`TaskState::OPEN`, `LIVE`, ...), so
//! two callers racing for a row cannot both win: the loser sees zero rows changed and writes no
//! audit row. The decisions are the callers' (the gate's, through `ops`); this module only moves
//! rows and records who moved them and why.

use super::book::Scope;
use super::sql::{Sql, get, in_list_chunk, is_postgres, push_in_list};
use super::{HistoryScope, StoreError, record_audit_at, record_audits_at};
use crate::domain::{Channel, Reason, TaskOrigin, TaskState};
use chrono::{DateTime, NaiveDate, Utc};
use entity::tasks;
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, SqlErr, Value};

/// Who moves a task and what the audit row says beyond the move itself (its `detail` JSON; the
/// reason is added to it).
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    /// `engine`, `agent:<id>`, `dialler`, an operator.
    pub actor: &'a str,
    /// Extra detail (an object), or `null`.
    pub detail: serde_json::Value,
}

impl<'a> Audit<'a> {
    /// An audit row by `actor` with `detail`.
    pub fn new(actor: &'a str, detail: serde_json::Value) -> Audit<'a> {
        Audit { actor, detail }
    }

    /// The detail with `reason` (and anything else given) added.
    fn detail_with(&self, extra: &[(&str, serde_json::Value)]) -> serde_json::Value {
        let mut detail = match &self.detail {
            serde_json::Value::Object(map) => map.clone(),
            serde_json::Value::Null => serde_json::Map::new(),
            other => {
                let mut map = serde_json::Map::new();
                map.insert("detail".into(), other.clone());
                map
            }
        };
        for (key, value) in extra {
            detail.entry(key.to_string()).or_insert_with(|| value.clone());
        }
        serde_json::Value::Object(detail)
    }
}

async fn write_audit(
    db: &impl ConnectionTrait,
    id: i64,
    action: &str,
    audit: &Audit<'_>,
    extra: &[(&str, serde_json::Value)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    record_audit_at(db, now, audit.actor, action, "task", &id.to_string(), audit.detail_with(extra)).await?;
    Ok(())
}

/// Releases a `planned` task whose window is open: to `ready` (human) or `dispatched` (robot,
/// SMS, e-mail, to `address`), audit `task.<to>`. Returns whether it moved.
pub async fn release(
    db: &impl ConnectionTrait,
    id: i64,
    to: TaskState,
    address: Option<&str>,
    audit: Audit<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE tasks SET state = ");
    sql.bind(to.code());
    sql.push(", state_reason = ");
    sql.bind(Value::String((to == TaskState::Ready).then(|| "released".to_string())));
    sql.push(", address = ");
    sql.bind(Value::String(address.map(str::to_string)));
    sql.push(", state_changed_at = ");
    sql.bind(now);
    sql.push(" WHERE id = ");
    sql.bind(id);
    sql.push(" AND state = ");
    sql.bind(TaskState::Planned.code());
    if db.execute_raw(sql.statement()).await?.rows_affected() != 1 {
        return Ok(false);
    }
    write_audit(db, id, &format!("task.{to}"), &audit, &[], now).await?;
    Ok(true)
}

/// A task claimed for a lease, before the gate confirms it.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The task, now `leased` to the agent until the claim's expiry.
    pub task: tasks::Model,
    /// The state it was claimed from (`planned` or `ready`), to give it back to.
    pub previous: TaskState,
    /// The reason it was in that state for.
    pub previous_reason: Option<String>,
    /// The task's account with its borrower, as the gate reads them.
    pub book: crate::domain::Portfolio,
    /// The borrower's history, as the gate reads it (see `store::load_hand_off`).
    pub history: crate::domain::History,
}

/// Claims the best open human task of `queue` whose window contains `now` and whose borrower no
/// agent holds (priority descending, then oldest), leaving out `skip`: it becomes `leased` to
/// `agent` until `expires_at`. Locks are held only for the claim itself: one statement on
/// PostgreSQL (`FOR UPDATE SKIP LOCKED`, so concurrent agents claim different tasks), one short
/// immediate transaction on SQLite. `None` when no unheld candidate was free at that instant
/// (see [`super::has_lease_candidate`]). No audit row yet: [`confirm_lease`] writes it once the
/// gate agrees, [`unclaim`] gives the task back when it does not. The same round trip reads
/// what the gate needs about the claimed task (its account, borrower and the borrower's history
/// since `attempts_since`, as `store::load_hand_off`).
pub async fn claim_next(
    db: &DatabaseConnection,
    queue: &str,
    agent: &str,
    skip: &[i64],
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    attempts_since: DateTime<Utc>,
) -> Result<Option<Claimed>, StoreError> {
    let backend = db.get_database_backend();
    let set_leased = |sql: &mut Sql| {
        sql.push("UPDATE tasks SET state = ");
        sql.bind(TaskState::Leased.code());
        sql.push(", lease_agent = ");
        sql.bind(agent);
        sql.push(", lease_expires_at = ");
        sql.bind(expires_at);
        sql.push(", state_changed_at = ");
        sql.bind(now);
        sql.push(", state_reason = NULL");
    };
    if is_postgres(backend) {
        let mut sql = Sql::new(backend);
        sql.push("WITH candidate AS (SELECT id, state, state_reason");
        super::leases::push_open_in_queue(&mut sql, queue, now, skip);
        sql.push(" ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED), claimed AS (");
        set_leased(&mut sql);
        sql.push(
            " FROM candidate WHERE tasks.id = candidate.id \
             RETURNING tasks.*, candidate.state AS previous, candidate.state_reason AS previous_reason) \
             SELECT claimed.*",
        );
        // The gate's context in the same round trip (it reads the rows as they were before the
        // claim, which changes only the claimed task: the gate leaves that one out of the calls
        // in flight anyway).
        let pages = super::history::hand_off_pages(Scope::Claimed, HistoryScope::Claimed, attempts_since);
        let count = pages.len();
        for (index, page) in pages.into_iter().enumerate() {
            sql.push(", ");
            page(&mut sql);
            sql.push(&format!(" AS page_{index}"));
        }
        sql.push(" FROM claimed");
        let row = match db.query_one_raw(sql.statement()).await {
            Ok(row) => row,
            // Another agent leased a task of the same borrower at the same instant.
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let Some(row) = row else { return Ok(None) };
        let mut claimed = claimed_from(&row)?;
        let pages = (0..count)
            .map(|index| Ok(row.try_get::<Option<String>>("", &format!("page_{index}"))?.unwrap_or_default()))
            .collect::<Result<Vec<String>, StoreError>>()?;
        match super::history::decode_hand_off(pages, Scope::Claimed, backend)? {
            Some((book, history)) => (claimed.book, claimed.history) = (book, history),
            None => {
                let ids = [claimed.task.account_id.as_str()];
                (claimed.book, claimed.history) = super::load_hand_off(db, &ids, attempts_since).await?;
            }
        }
        return Ok(Some(claimed));
    }
    let txn = super::begin_write(db).await?;
    let mut sql = Sql::new(backend);
    sql.push("SELECT id, state, state_reason");
    super::leases::push_open_in_queue(&mut sql, queue, now, skip);
    sql.push(" ORDER BY priority DESC, id LIMIT 1");
    let Some(row) = txn.query_one_raw(sql.statement()).await? else {
        txn.commit().await?;
        return Ok(None);
    };
    let id: i64 = get(&row, 0, "tasks", "claim")?;
    let previous: String = get(&row, 1, "tasks", &id.to_string())?;
    let previous_reason: Option<String> = get(&row, 2, "tasks", &id.to_string())?;
    let mut sql = Sql::new(backend);
    set_leased(&mut sql);
    sql.push(" WHERE id = ");
    sql.bind(id);
    sql.push(" AND state = ");
    sql.bind(previous.as_str());
    sql.push(" RETURNING *, ");
    sql.bind(previous.as_str());
    sql.push(" AS previous, ");
    sql.bind(Value::String(previous_reason));
    sql.push(" AS previous_reason");
    let Some(row) = txn.query_one_raw(sql.statement()).await? else {
        txn.commit().await?;
        return Ok(None);
    };
    let mut claimed = claimed_from(&row)?;
    let ids = [claimed.task.account_id.as_str()];
    (claimed.book, claimed.history) = super::load_hand_off(&txn, &ids, attempts_since).await?;
    txn.commit().await?;
    Ok(Some(claimed))
}

fn claimed_from(row: &sea_orm::QueryResult) -> Result<Claimed, StoreError> {
    let task = tasks::Model::from_query_result(row, "")?;
    let previous: String = row.try_get("", "previous")?;
    let previous_reason: Option<String> = row.try_get("", "previous_reason")?;
    let previous = previous.parse().map_err(|error: crate::domain::ParseCodeError| StoreError::Corrupt {
        table: "tasks",
        id: task.id.to_string(),
        message: error.to_string(),
    })?;
    Ok(Claimed { task, previous, previous_reason, book: Default::default(), history: Default::default() })
}

/// Confirms a claim the gate agreed to: the lease ends at `expires_at` (never later than the
/// claim's), the first phone to call is `address`; audit `task.leased`. Atomic: one statement on
/// PostgreSQL, a write transaction on SQLite. Returns whether the claim was still the agent's.
pub async fn confirm_lease(
    db: &DatabaseConnection,
    id: i64,
    agent: &str,
    expires_at: DateTime<Utc>,
    address: Option<&str>,
    audit: Audit<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE tasks SET lease_expires_at = ");
    sql.bind(expires_at);
    sql.push(", address = ");
    sql.bind(Value::String(address.map(str::to_string)));
    push_held_by(&mut sql, id, agent, now);
    let detail = audit.detail_with(&[("lease_expires_at", expires_at.to_rfc3339().into())]);
    Ok(update_audited(db, sql, "task.leased", Audit::new(audit.actor, detail), now).await? == 1)
}

/// Gives back a claim the gate did not agree to now (it must wait): the task returns to the
/// state it was claimed from, as if never claimed (no audit row: nothing happened to it).
pub async fn unclaim(db: &impl ConnectionTrait, claimed: &Claimed, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let Some(agent) = claimed.task.lease_agent.as_deref() else { return Ok(false) };
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE tasks SET state = ");
    sql.bind(claimed.previous.code());
    sql.push(", lease_agent = NULL, lease_expires_at = NULL, state_changed_at = ");
    sql.bind(now);
    sql.push(", state_reason = ");
    sql.bind(Value::String(claimed.previous_reason.clone()));
    push_held_by(&mut sql, claimed.task.id, agent, now);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Runs `update` (an `UPDATE tasks ...` moving at most the rows it names) and writes `action`'s
/// audit row for each task it moved, atomically: one statement on PostgreSQL (a data-modifying
/// CTE), a write transaction on SQLite. Returns the tasks moved.
async fn update_audited(
    db: &DatabaseConnection,
    mut update: Sql,
    action: &str,
    audit: Audit<'_>,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let backend = db.get_database_backend();
    if is_postgres(backend) {
        let mut sql = Sql::new(backend);
        sql.push("WITH moved AS (");
        sql.append(update);
        sql.push(" RETURNING id) INSERT INTO audit_log (at, actor, action, entity, entity_id, detail) SELECT ");
        sql.bind(now);
        sql.push(", ");
        sql.bind(audit.actor);
        sql.push(", ");
        sql.bind(action);
        sql.push(", 'task', CAST(moved.id AS TEXT), ");
        sql.bind(audit.detail.to_string());
        sql.push(" FROM moved");
        return Ok(db.execute_raw(sql.statement()).await?.rows_affected());
    }
    let txn = super::begin_write(db).await?;
    update.push(" RETURNING id");
    let rows = txn.query_all_raw(update.statement()).await?;
    for row in &rows {
        let id: i64 = get(row, 0, "tasks", "moved")?;
        record_audit_at(&txn, now, audit.actor, action, "task", &id.to_string(), audit.detail.clone()).await?;
    }
    txn.commit().await?;
    Ok(rows.len() as u64)
}

fn push_held_by(sql: &mut Sql, id: i64, agent: &str, now: DateTime<Utc>) {
    sql.push(" WHERE id = ");
    sql.bind(id);
    sql.push(" AND state = ");
    sql.bind(TaskState::Leased.code());
    sql.push(" AND lease_agent = ");
    sql.bind(agent);
    sql.push(" AND lease_expires_at > ");
    sql.bind(now);
}

/// Moves the lease of `agent` on task `id` to `expires_at`, if it is still leased to that agent
/// and has not expired at `now`; returns whether it did. Not a state change: no audit row.
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

/// Ends the lease of `agent` on task `id` (still held and unexpired at `now`): the task goes back
/// to `ready` (reason `released`, lease cleared; audit `task.released`) or becomes `done`
/// (reason `completed`, `lease_agent` kept as the record of who finished it; audit
/// `task.completed`). Atomic on its own (see `update_audited`). Returns whether it did.
pub async fn end_lease(
    db: &DatabaseConnection,
    id: i64,
    agent: &str,
    to: TaskState,
    audit: Audit<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let reason = if to == TaskState::Done { "completed" } else { "released" };
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE tasks SET state = ");
    sql.bind(to.code());
    sql.push(", state_reason = ");
    sql.bind(reason);
    sql.push(", state_changed_at = ");
    sql.bind(now);
    sql.push(", lease_expires_at = NULL");
    if to != TaskState::Done {
        sql.push(", lease_agent = NULL");
    }
    push_held_by(&mut sql, id, agent, now);
    let detail = audit.detail_with(&[("reason", reason.into())]);
    Ok(update_audited(db, sql, &format!("task.{reason}"), Audit::new(audit.actor, detail), now).await? == 1)
}

/// The reaper: every lease expired at `now` goes back to `ready` (lease cleared, reason
/// `lease_expired`), audit `task.lease_expired` naming the agent. On PostgreSQL rows another
/// reaper holds are skipped. Returns how many.
pub async fn return_expired_leases(
    db: &impl ConnectionTrait,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("SELECT id, lease_agent FROM tasks WHERE state = ");
    sql.bind(TaskState::Leased.code());
    sql.push(" AND lease_expires_at <= ");
    sql.bind(now);
    sql.push(" ORDER BY lease_expires_at, id");
    if is_postgres(backend) {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    let mut returned = 0;
    for row in db.query_all_raw(sql.statement()).await? {
        let id: i64 = get(&row, 0, "tasks", "?")?;
        let agent: Option<String> = get(&row, 1, "tasks", &id.to_string())?;
        let mut update = Sql::new(backend);
        update.push("UPDATE tasks SET state = ");
        update.bind(TaskState::Ready.code());
        update
            .push(", state_reason = 'lease_expired', lease_agent = NULL, lease_expires_at = NULL, state_changed_at = ");
        let now_number = update.bind(now);
        update.push(" WHERE id = ");
        update.bind(id);
        update.push(" AND state = ");
        update.bind(TaskState::Leased.code());
        update.push(" AND lease_expires_at <= ");
        update.reuse(now_number);
        if db.execute_raw(update.statement()).await?.rows_affected() == 1 {
            returned += 1;
            let audit = Audit::new(actor, serde_json::json!({"agent": agent.unwrap_or_default()}));
            write_audit(db, id, "task.lease_expired", &audit, &[], now).await?;
        }
    }
    Ok(returned)
}

/// Closes a live task (`planned`, `ready`, `leased` or `dispatched`): it moves to `to`
/// (`cancelled`, `expired`, `done`) with `reason`, a lease's expiry cleared; audit `task.<to>`
/// with the reason. Returns whether it did.
pub async fn close(
    db: &impl ConnectionTrait,
    id: i64,
    to: TaskState,
    reason: &str,
    audit: Audit<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    close_from(db, id, TaskState::LIVE, to, reason, audit, now).await
}

/// [`close`] for a task in one of the states `from` only.
pub async fn close_from(
    db: &impl ConnectionTrait,
    id: i64,
    from: &[TaskState],
    to: TaskState,
    reason: &str,
    audit: Audit<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE tasks SET state = ");
    sql.bind(to.code());
    sql.push(", state_reason = ");
    sql.bind(reason);
    sql.push(", state_changed_at = ");
    sql.bind(now);
    sql.push(", lease_expires_at = NULL WHERE id = ");
    sql.bind(id);
    sql.push(" AND state IN ");
    sql.push(&TaskState::sql_list(from));
    if db.execute_raw(sql.statement()).await?.rows_affected() != 1 {
        return Ok(false);
    }
    write_audit(db, id, &format!("task.{to}"), &audit, &[("reason", reason.into())], now).await?;
    Ok(true)
}

/// Which tasks of the given accounts a closing takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelFilter {
    /// Every channel.
    #[default]
    All,
    /// Calls only (robot, human): `do_not_call`.
    Calls,
    /// One channel (`robot` for an escalation).
    Only(Channel),
}

impl From<crate::domain::effects::Cancels> for ChannelFilter {
    fn from(cancels: crate::domain::effects::Cancels) -> ChannelFilter {
        match cancels {
            crate::domain::effects::Cancels::All => ChannelFilter::All,
            crate::domain::effects::Cancels::Calls => ChannelFilter::Calls,
        }
    }
}

/// A task a closing took, with the state it was in.
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

/// Closes the live tasks (`planned`, `ready`, `leased`, `dispatched`) of `account_ids` on the
/// channels `filter` lets through, leaving out task `except`: they move to `to` (`cancelled`,
/// or `escalated`) with `reason`, a lease is cleared, and each gets its audit row (`task.<to>`).
/// Returns them with the state each left, by id. The rows are read `FOR UPDATE` on PostgreSQL
/// first, so the states returned are the ones the update changed.
#[allow(clippy::too_many_arguments)]
pub async fn close_of_accounts(
    db: &impl ConnectionTrait,
    account_ids: &[&str],
    filter: ChannelFilter,
    except: Option<i64>,
    to: TaskState,
    reason: &str,
    audit: Audit<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<ClosedTask>, StoreError> {
    let backend = db.get_database_backend();
    let live = TaskState::sql_list(TaskState::LIVE);
    let mut closed = Vec::new();
    for chunk in account_ids.chunks(in_list_chunk(backend, 8)) {
        let mut sql = Sql::new(backend);
        sql.push("SELECT id, account_id, channel, state FROM tasks WHERE state IN ");
        sql.push(&live);
        sql.push(" AND ");
        push_in_list(&mut sql, "account_id", chunk);
        match filter {
            ChannelFilter::All => {}
            ChannelFilter::Calls => {
                sql.push(" AND channel IN ");
                sql.push(&Channel::sql_list(&[Channel::Robot, Channel::Human]));
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
            update.bind(to.code());
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
    let rows: Vec<(String, serde_json::Value)> = closed
        .iter()
        .map(|task| {
            (
                task.id.to_string(),
                audit.detail_with(&[("reason", reason.into()), ("from", task.previous.clone().into())]),
            )
        })
        .collect();
    record_audits_at(db, now, audit.actor, &format!("task.{to}"), "task", &rows).await?;
    Ok(closed)
}

/// The states the expiry sweep closes: open, or sent to a machine (`dispatched`).
pub const EXPIRING: &[TaskState] = &[TaskState::Planned, TaskState::Ready, TaskState::Dispatched];

/// The released states the sweep closes, and the states of `idx_tasks_released_not_after`. A
/// `planned` task is not in that index: a plan inserts every task `planned`, and a plan's insert
/// into one more index of every row was ~15 % of a saved plan (see `docs/PERFORMANCE.md`, step
/// 9). The sweep finds closed planned tasks by the release index instead.
pub const RELEASED: &[TaskState] = &[TaskState::Ready, TaskState::Dispatched];

/// How far one expiry sweep has got. It closes the released tasks first, in
/// `idx_tasks_released_not_after`'s order (the ones it expires leave that index, so no batch
/// reads what an earlier one closed). Then it walks the `planned` tasks whose window has opened,
/// in the release index's order `(not_before, id)`, from the last one it expired: a `planned`
/// task whose window closed has `not_before <= not_after <= now`, and the ones still in their
/// window stay in that index, so the walk goes on after them instead of reading them again.
#[derive(Debug, Clone, Default)]
pub struct ExpirySweep(SweepPhase);

/// Where an [`ExpirySweep`] is.
#[derive(Debug, Clone, Default)]
enum SweepPhase {
    /// Closing the released tasks.
    #[default]
    Released,
    /// Walking the planned tasks, after the last one expired (if any yet).
    Planned(Option<(DateTime<Utc>, i64)>),
    /// Every task whose window closed is expired.
    Finished,
}

impl ExpirySweep {
    /// Whether every task whose window closed has been expired.
    pub fn finished(&self) -> bool {
        matches!(self.0, SweepPhase::Finished)
    }
}

/// Expires the next batch of at most `limit` tasks whose window closed at `now` (`not_after <=
/// now`) and that nobody is working ([`EXPIRING`]: a message about a `dispatched` one may still
/// be waiting in the outbox: the caller voids it), where `sweep` has got to. State `expired`,
/// reason `window_closed`, audit `task.expired` by `actor`. `leased` tasks are left to their
/// lease. Returns their ids; call again until [`ExpirySweep::finished`]. On PostgreSQL rows
/// another sweeper holds are skipped.
pub async fn expire_closed_windows(
    db: &impl ConnectionTrait,
    actor: &str,
    now: DateTime<Utc>,
    sweep: &mut ExpirySweep,
    limit: u64,
) -> Result<Vec<i64>, StoreError> {
    let (states, index, after) = match sweep.0 {
        SweepPhase::Released => (RELEASED, "idx_tasks_released_not_after", None),
        SweepPhase::Planned(after) => (&[TaskState::Planned][..], "idx_tasks_state_not_before", after),
        SweepPhase::Finished => return Ok(Vec::new()),
    };
    let states = TaskState::sql_list(states);
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("UPDATE tasks SET state = ");
    sql.bind(TaskState::Expired.code());
    sql.push(", state_reason = ");
    sql.bind(Reason::WindowClosed.to_string());
    sql.push(", state_changed_at = ");
    let now_number = sql.bind(now);
    sql.push(" WHERE id IN (SELECT id FROM tasks");
    if !is_postgres(backend) {
        // Without statistics SQLite might take another index and read every task of a state.
        sql.push(" INDEXED BY ");
        sql.push(index);
    }
    sql.push(" WHERE state IN ");
    sql.push(&states);
    sql.push(" AND not_after <= ");
    sql.reuse(now_number);
    if matches!(sweep.0, SweepPhase::Released) {
        sql.push(" ORDER BY not_after");
    } else {
        sql.push(" AND not_before <= ");
        sql.reuse(now_number);
        if let Some((not_before, id)) = after {
            sql.push(" AND (not_before, id) > (");
            sql.bind(not_before);
            sql.push(", ");
            sql.bind(id);
            sql.push(")");
        }
        sql.push(" ORDER BY not_before, id");
    }
    sql.push(" LIMIT ");
    sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    if is_postgres(backend) {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    sql.push(") AND state IN ");
    sql.push(&states);
    sql.push(" RETURNING id, not_before");
    let mut ids = Vec::new();
    let mut last = after;
    for row in db.query_all_raw(sql.statement()).await? {
        let id = get::<i64>(&row, 0, "tasks", "expired")?;
        let key = (get::<DateTime<Utc>>(&row, 1, "tasks", &id.to_string())?, id);
        last = last.max(Some(key));
        ids.push(id);
    }
    let full = ids.len() as u64 >= limit;
    sweep.0 = match sweep.0 {
        SweepPhase::Released if full => SweepPhase::Released,
        SweepPhase::Released => SweepPhase::Planned(None),
        _ if full => SweepPhase::Planned(last),
        _ => SweepPhase::Finished,
    };
    ids.sort_unstable();
    let detail = serde_json::json!({"reason": Reason::WindowClosed});
    let rows: Vec<(String, serde_json::Value)> = ids.iter().map(|id| (id.to_string(), detail.clone())).collect();
    record_audits_at(db, now, actor, "task.expired", "task", &rows).await?;
    Ok(ids)
}

/// A task made outside a plan run (an escalation to a human queue, a callback).
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
    /// Channel.
    pub channel: Channel,
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
    /// JSON text carried to the agent.
    pub context: Option<String>,
    /// Why it exists: an `escalation` or a `callback`.
    pub origin: TaskOrigin,
}

/// Inserts a `planned` task as the next attempt number of its account's local day (so the
/// `(account_id, local_date, attempt)` key holds), audit `task.<origin>_created`; returns its id.
pub async fn insert(
    db: &impl ConnectionTrait,
    task: &NewTask,
    audit: Audit<'_>,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
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
        Value::from(task.channel.code()),
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
        Value::from(TaskState::Planned.code()),
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
    let id = get(&row, 0, "tasks", &task.account_id)?;
    write_audit(db, id, &format!("task.{}_created", task.origin), &audit, &[], now).await?;
    Ok(id)
}
