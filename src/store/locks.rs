//! Named, expiring locks (`scheduler_locks`): one instance at a time runs a job such as the
//! planner, and another takes over once the holder's lock expires (it died or hung).

use super::StoreError;
use super::sql::{Sql, get};
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

/// Takes the lock `name` for `holder` until `until`, or renews it when `holder` has it already.
/// Returns whether `holder` holds it now: `false` when another holder's lock has not expired at
/// `now`. One statement (an upsert with a condition), so two instances racing for a free lock
/// cannot both win, on SQLite or PostgreSQL.
pub async fn try_lock(
    db: &impl ConnectionTrait,
    name: &str,
    holder: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("INSERT INTO scheduler_locks (name, holder, expires_at) VALUES (");
    sql.bind(name.to_string());
    sql.push(", ");
    sql.bind(holder.to_string());
    sql.push(", ");
    sql.bind(until);
    sql.push(
        ") ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE scheduler_locks.holder = excluded.holder OR scheduler_locks.expires_at <= ",
    );
    sql.bind(now);
    sql.push(" RETURNING holder");
    let row = db.query_one_raw(sql.statement()).await?;
    match row {
        Some(row) => Ok(get::<String>(&row, 0, "scheduler_locks", name)? == holder),
        None => Ok(false),
    }
}

/// Gives the lock up (it expires at `now`) when `holder` has it; otherwise does nothing.
pub async fn unlock(db: &impl ConnectionTrait, name: &str, holder: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE scheduler_locks SET expires_at = ");
    sql.bind(now);
    sql.push(" WHERE name = ");
    sql.bind(name.to_string());
    sql.push(" AND holder = ");
    sql.bind(holder.to_string());
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Whether a plan run as of `since` or later has finished (been saved).
pub async fn plan_finished_since(db: &impl ConnectionTrait, since: DateTime<Utc>) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT COUNT(*) FROM plan_runs WHERE finished_at IS NOT NULL AND as_of >= ");
    sql.bind(since);
    let row = db.query_one_raw(sql.statement()).await?;
    Ok(match row {
        Some(row) => get::<i64>(&row, 0, "plan_runs", "count")? > 0,
        None => false,
    })
}
