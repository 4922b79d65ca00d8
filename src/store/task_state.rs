//! Counting task states: the counts by queue and state that `/metrics` shows. Changing
//! states is in `leases` and `release`.

use super::StoreError;
use super::sql::{Sql, get};
use crate::domain::TaskState;
use sea_orm::ConnectionTrait;

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

/// Live tasks (planned, ready, dispatched, leased) counted by channel, queue and state: read
/// through the `state` index, so finished tasks — most of the table — are never visited.
pub async fn live_task_counts(db: &impl ConnectionTrait) -> Result<Vec<TaskCount>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT channel, queue, state, COUNT(*) FROM tasks WHERE state IN ");
    sql.push(&TaskState::sql_list(TaskState::LIVE));
    sql.push(" GROUP BY channel, queue, state ORDER BY channel, queue, state");
    read_counts(db, sql).await
}

/// Every task counted by channel, queue and state (one `GROUP BY` over the whole table).
pub async fn task_counts(db: &impl ConnectionTrait) -> Result<Vec<TaskCount>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "SELECT channel, queue, state, COUNT(*) FROM tasks GROUP BY channel, queue, state \
         ORDER BY channel, queue, state",
    );
    read_counts(db, sql).await
}

async fn read_counts(db: &impl ConnectionTrait, sql: Sql) -> Result<Vec<TaskCount>, StoreError> {
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
