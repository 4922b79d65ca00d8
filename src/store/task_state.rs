//! Changing and counting task states outside planning: cancelling an account's open tasks (a
//! payment in full) and the counts by queue and state that `/metrics` shows. Leasing is not
//! here. The caller holds the transaction.

use super::StoreError;
use super::sql::{Sql, get, in_list_chunk, push_in_list};
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use std::collections::BTreeMap;

/// The states of a task that still has work to do: cancelling applies to these.
pub const OPEN_TASK_STATES: [&str; 3] = ["planned", "ready", "leased"];

/// Cancels every open task (`planned`, `ready` or `leased`) of the given accounts: sets
/// `state = 'cancelled'`, `state_reason = reason` and `state_changed_at = now`. Returns the
/// cancelled task ids by account (accounts without open tasks are absent).
pub async fn cancel_open_tasks(
    db: &impl ConnectionTrait,
    account_ids: &[&str],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<BTreeMap<String, Vec<i64>>, StoreError> {
    let backend = db.get_database_backend();
    let mut cancelled: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for chunk in account_ids.chunks(in_list_chunk(backend, 8)) {
        let mut sql = Sql::new(backend);
        sql.push("UPDATE tasks SET state = 'cancelled', state_reason = ");
        sql.bind(reason);
        sql.push(", state_changed_at = ");
        sql.bind(now);
        sql.push(" WHERE state IN ('planned', 'ready', 'leased') AND ");
        push_in_list(&mut sql, "account_id", chunk);
        sql.push(" RETURNING id, account_id");
        for row in db.query_all_raw(sql.statement()).await? {
            let id: i64 = get(&row, 0, "tasks", "?")?;
            let account_id: String = get(&row, 1, "tasks", &id.to_string())?;
            cancelled.entry(account_id).or_default().push(id);
        }
    }
    for ids in cancelled.values_mut() {
        ids.sort_unstable();
    }
    Ok(cancelled)
}

/// Tasks counted by channel, queue (`None` for robot, SMS and e-mail tasks) and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCount {
    /// `sms`, `email`, `robot` or `human`.
    pub channel: String,
    /// The human queue, if any.
    pub queue: Option<String>,
    /// `planned`, `ready`, `leased`, `done`, `cancelled`, ...
    pub state: String,
    /// How many.
    pub count: u64,
}

/// Every task counted by channel, queue and state (one `GROUP BY`).
pub async fn task_counts(db: &impl ConnectionTrait) -> Result<Vec<TaskCount>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "SELECT channel, queue, state, COUNT(*) FROM tasks GROUP BY channel, queue, state \
         ORDER BY channel, queue, state",
    );
    let mut counts = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let count: i64 = get(&row, 3, "tasks", "(count)")?;
        counts.push(TaskCount {
            channel: get(&row, 0, "tasks", "(count)")?,
            queue: get(&row, 1, "tasks", "(count)")?,
            state: get(&row, 2, "tasks", "(count)")?,
            count: u64::try_from(count).unwrap_or(0),
        });
    }
    Ok(counts)
}
