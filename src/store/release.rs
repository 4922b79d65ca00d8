//! Reading tasks for the release loop and the outbox: the release candidates (claimed `FOR
//! UPDATE SKIP LOCKED` on PostgreSQL) and tasks by id (the outbox's claim-time check). The state
//! changes are `store::tasks`'; the decisions `ops::release`'s and `dispatch`'s.

use super::StoreError;
use super::sql::{Sql, is_postgres};
use chrono::{DateTime, Utc};
use entity::tasks;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use std::collections::HashMap;

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
    sql.push("SELECT tasks.* FROM tasks WHERE state = ");
    sql.bind(crate::domain::TaskState::Planned.code());
    sql.push(" AND not_before <= ");
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

/// The tasks of the given ids that exist, by id.
pub async fn tasks_by_id(db: &impl ConnectionTrait, ids: &[i64]) -> Result<HashMap<i64, tasks::Model>, StoreError> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let rows = tasks::Entity::find().filter(tasks::Column::Id.is_in(chunk.iter().copied())).all(db).await?;
        found.extend(rows.into_iter().map(|task| (task.id, task)));
    }
    Ok(found)
}
