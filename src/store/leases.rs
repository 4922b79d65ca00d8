//! Reading tasks for leasing: the candidate query (locked `SKIP LOCKED` on PostgreSQL), whether
//! any candidate exists at all, one task by id, and one task locked for an update. The state
//! changes are `store::tasks`'; the decisions `ops::work`'s.

use super::StoreError;
use super::sql::{Sql, is_postgres};
use crate::domain::TaskState;
use chrono::{DateTime, Utc};
use entity::tasks;
use sea_orm::{ConnectionTrait, EntityTrait};

/// `FROM tasks WHERE` the open human tasks of `queue` whose window contains `now` and whose
/// borrower no agent holds, leaving out `skip`.
pub(crate) fn push_open_in_queue(sql: &mut Sql, queue: &str, now: DateTime<Utc>, skip: &[i64]) {
    sql.push(" FROM tasks");
    if !is_postgres(sql.backend()) {
        // Without statistics SQLite prefers `idx_tasks_queue_day` (queue, not_before) and then
        // sorts the whole queue for each lease; the lease index hands out the best task first.
        sql.push(" INDEXED BY idx_tasks_open_queue");
    }
    sql.push(" WHERE channel = 'human' AND queue = ");
    sql.bind(queue);
    sql.push(" AND state IN ");
    sql.push(&TaskState::sql_list(TaskState::OPEN));
    sql.push(" AND not_before <= ");
    let now_number = sql.bind(now);
    sql.push(" AND not_after > ");
    sql.reuse(now_number);
    // The state as a literal equal to `ux_tasks_leased_borrower`'s predicate, not a parameter:
    // only then may SQLite, or a plan PostgreSQL caches for the statement, probe that partial
    // index instead of scanning every task for each candidate.
    sql.push(
        " AND NOT EXISTS (SELECT 1 FROM tasks AS held WHERE held.borrower_id = tasks.borrower_id AND held.state = '",
    );
    sql.push(TaskState::Leased.code());
    sql.push("')");
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

/// Whether any task of the queue is open, in its window and unheld, locked by others or not (no
/// lock taken): an empty claim under `SKIP LOCKED` then means "held right now", not "nothing
/// ready".
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
