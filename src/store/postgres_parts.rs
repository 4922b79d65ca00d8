//! A plan run's part saved on PostgreSQL through one pooled sqlx connection: one transaction
//! whose tasks and stage history go in by binary `COPY` (each value encoded by sqlx's own
//! PostgreSQL encoders), the accounts' new stages and the experiment entries by `UNNEST`
//! arrays. Owns the PostgreSQL statements of
//! [`PlanRunWriter::save_part`](super::PlanRunWriter::save_part); what a part saves (which
//! account-days were planned meanwhile, the run's counts) is decided by `store::plans`, never
//! here.

use super::plans::{
    PartSaved, PartWrite, PlanRunError, RunCounts, SET_STAGES_POSTGRES, StageChange, TASK_COLUMNS, count_i64,
    fresh_part, planned_among, small_i32, total_after,
};
use super::{StoreError, sqlx_error};
use crate::domain::ShardState;
use crate::plan::{ExperimentEntry, Task};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::DatabaseConnection;
use sea_orm::sqlx::postgres::{PgArgumentBuffer, PgConnection};
// The statements built with `format!` join constant column lists only.
use sea_orm::sqlx::{self, AssertSqlSafe, Encode, Postgres, encode::IsNull};
use std::collections::HashSet;

/// Saves one part in one transaction: claims the run's row, reads which of the part's
/// account-days already have tasks, copies in the rest with their stage changes and experiment
/// entries, and writes the run's counts (`before` plus this part's) and, with `finished_at`,
/// finishes the run. Returns what was saved and the new counts.
///
/// `COPY` cannot skip existing rows: a unique violation means a concurrent run committed tasks
/// of these accounts after the check. The tasks go in under a savepoint, which is then rolled
/// back, the check repeated, and the rest copied into a temporary table and inserted from it
/// with `ON CONFLICT DO NOTHING` (should yet another run commit the same rows meanwhile).
pub(super) async fn save_part(
    db: &DatabaseConnection,
    write: PartWrite<'_>,
) -> Result<(PartSaved, RunCounts), PlanRunError> {
    let mut txn = db.get_postgres_connection_pool().begin().await.map_err(sqlx_error)?;
    let claim = match write.shard {
        None => sqlx::query(
            "UPDATE plan_runs SET resume_after = $1 WHERE id = $2 AND finished_at IS NULL \
             AND resume_after IS NOT DISTINCT FROM $3",
        )
        .bind(write.part.resume_after)
        .bind(write.run_id)
        .bind(write.previous),
        Some(mark) => sqlx::query(
            "UPDATE plan_run_shards SET resume_after = $1, heartbeat_at = $4 WHERE run_id = $2 \
             AND resume_after IS NOT DISTINCT FROM $3 AND shard = $5 AND holder = $6 AND state = $7",
        )
        .bind(write.part.resume_after)
        .bind(write.run_id)
        .bind(write.previous)
        .bind(write.heartbeat_at)
        .bind(mark.shard)
        .bind(mark.holder.as_str())
        .bind(ShardState::Claimed.code()),
    };
    let claimed = claim.execute(&mut *txn).await.map_err(sqlx_error)?.rows_affected();
    if claimed != 1 {
        return Err(PlanRunError::Superseded { run_id: write.run_id });
    }
    let mut skip_existing = false;
    let (inserted, fresh) = loop {
        let planned = planned_account_days(&mut txn, write.part.tasks).await?;
        let fresh = fresh_part(&write.part, &planned);
        execute(&mut txn, "SAVEPOINT part_tasks").await?;
        match copy_tasks(&mut txn, write.run_id, write.created_at, &fresh.tasks, skip_existing).await {
            Ok(inserted) => {
                execute(&mut txn, "RELEASE SAVEPOINT part_tasks").await?;
                break (inserted, fresh);
            }
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() && !skip_existing => {
                // The other run has committed (the violation waited for it): check again.
                execute(&mut txn, "ROLLBACK TO SAVEPOINT part_tasks").await?;
                skip_existing = true;
            }
            Err(error) => return Err(sqlx_error(error).into()),
        }
    };
    apply_stage_changes(&mut txn, write.run_id, write.as_of, &fresh.changes).await?;
    insert_entries(&mut txn, write.run_id, write.as_of, &fresh.entries).await?;
    let total = total_after(write.before, write.part.counts, inserted, fresh.planned_meanwhile.len());
    write_counts(&mut txn, &write, &total).await?;
    txn.commit().await.map_err(sqlx_error)?;
    Ok((PartSaved { inserted, planned_meanwhile: fresh.planned_meanwhile }, total))
}

async fn execute(connection: &mut PgConnection, sql: &'static str) -> Result<(), StoreError> {
    sqlx::query(sql).execute(connection).await.map_err(sqlx_error)?;
    Ok(())
}

/// The `(account, local date)` pairs of `tasks` that already have a stored task: the unique
/// `(account_id, local_date, attempt)` index probed with the part's accounts.
async fn planned_account_days<'t>(
    connection: &mut PgConnection,
    tasks: &'t [Task],
) -> Result<HashSet<(&'t str, NaiveDate)>, StoreError> {
    if tasks.is_empty() {
        return Ok(HashSet::new());
    }
    let mut ids: Vec<&str> = tasks.iter().map(|task| &*task.account_id).collect();
    ids.dedup();
    let stored: Vec<(String, NaiveDate)> =
        sqlx::query_as("SELECT DISTINCT account_id, local_date FROM tasks WHERE account_id = ANY($1)")
            .bind(&ids)
            .fetch_all(connection)
            .await
            .map_err(sqlx_error)?;
    Ok(planned_among(tasks, stored))
}

/// Copies tasks into `tasks`; with `skip_existing`, through a temporary table and
/// `INSERT ... ON CONFLICT DO NOTHING`. Returns how many were inserted.
async fn copy_tasks(
    connection: &mut PgConnection,
    run_id: i64,
    created_at: DateTime<Utc>,
    tasks: &[Task],
    skip_existing: bool,
) -> Result<u64, sqlx::Error> {
    if tasks.is_empty() {
        return Ok(0);
    }
    let mut rows = BinaryCopy::default();
    for task in tasks {
        rows.row(18);
        rows.field(run_id)?;
        rows.field(created_at)?;
        rows.field(&*task.account_id)?;
        rows.field(&*task.borrower_id)?;
        rows.field(task.local_date)?;
        rows.field(task.dpd)?;
        rows.field(&*task.stage)?;
        rows.field(&*task.strategy)?;
        rows.field(&*task.rule)?;
        rows.field(task.arm.as_deref())?;
        rows.field(task.channel.code())?;
        rows.field(task.queue.as_deref())?;
        rows.field(task.template.as_deref())?;
        rows.field(small_i32(task.attempt))?;
        rows.field(small_i32(task.calls_allowed))?;
        rows.field(task.not_before.with_timezone(&Utc))?;
        rows.field(task.not_after.with_timezone(&Utc))?;
        rows.field(task.priority)?;
    }
    if !skip_existing {
        return rows.copy_into(connection, &format!("tasks ({TASK_COLUMNS})")).await;
    }
    // The task columns without their constraints (`LIKE` would copy `id`'s NOT NULL).
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TEMPORARY TABLE IF NOT EXISTS part_tasks AS SELECT {TASK_COLUMNS} FROM tasks WITH NO DATA"
    )))
    .execute(&mut *connection)
    .await?;
    rows.copy_into(connection, &format!("part_tasks ({TASK_COLUMNS})")).await?;
    let inserted = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO tasks ({TASK_COLUMNS}) SELECT {TASK_COLUMNS} FROM part_tasks \
         ON CONFLICT (account_id, local_date, attempt) DO NOTHING"
    )))
    .execute(&mut *connection)
    .await?
    .rows_affected();
    sqlx::query("TRUNCATE part_tasks").execute(connection).await?;
    Ok(inserted)
}

/// Sets the accounts' new stage (`account_stages`) and copies one `stage_history` row per change.
async fn apply_stage_changes(
    connection: &mut PgConnection,
    run_id: i64,
    at: DateTime<Utc>,
    changes: &[StageChange],
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = changes.iter().map(|change| change.account_id.as_str()).collect();
    let stages: Vec<&str> = changes.iter().map(|change| &*change.to).collect();
    sqlx::query(SET_STAGES_POSTGRES).bind(&ids).bind(&stages).execute(&mut *connection).await.map_err(sqlx_error)?;
    let mut rows = BinaryCopy::default();
    for change in changes {
        rows.row(5);
        rows.field(at).map_err(sqlx_error)?;
        rows.field(run_id).map_err(sqlx_error)?;
        rows.field(change.account_id.as_str()).map_err(sqlx_error)?;
        rows.field(change.from.as_deref()).map_err(sqlx_error)?;
        rows.field(&*change.to).map_err(sqlx_error)?;
    }
    rows.copy_into(connection, "stage_history (at, plan_run_id, account_id, from_stage, to_stage)")
        .await
        .map_err(sqlx_error)?;
    Ok(())
}

/// Stores the accounts entering an experiment (an account's first entry stays).
async fn insert_entries(
    connection: &mut PgConnection,
    run_id: i64,
    at: DateTime<Utc>,
    entries: &[ExperimentEntry],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let column = |value: fn(&ExperimentEntry) -> &str| entries.iter().map(value).collect::<Vec<&str>>();
    let dpd: Vec<i32> = entries.iter().map(|entry| entry.dpd).collect();
    let balance: Vec<rust_decimal::Decimal> = entries.iter().map(|entry| entry.balance).collect();
    sqlx::query(
        "INSERT INTO experiment_entries (entered_at, plan_run_id, experiment, account_id, strategy, borrower_id, \
         arm, stage, dpd, balance, currency) SELECT $1, $2, u.* FROM UNNEST($3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::int4[], $10::numeric[], $11::text[]) AS u \
         ON CONFLICT (experiment, account_id) DO NOTHING",
    )
    .bind(at)
    .bind(run_id)
    .bind(column(|entry| &entry.experiment))
    .bind(column(|entry| &entry.account_id))
    .bind(column(|entry| &entry.strategy))
    .bind(column(|entry| &entry.borrower_id))
    .bind(column(|entry| &entry.arm))
    .bind(column(|entry| &entry.stage))
    .bind(dpd)
    .bind(balance)
    .bind(column(|entry| &entry.currency))
    .execute(connection)
    .await
    .map_err(sqlx_error)?;
    Ok(())
}

/// Sets the run's (or the shard's) running counts, and with `finished_at` finishes the run
/// (marks the shard done).
async fn write_counts(
    connection: &mut PgConnection,
    write: &PartWrite<'_>,
    counts: &RunCounts,
) -> Result<(), StoreError> {
    let skip_counts = serde_json::to_string(&counts.skip_counts).unwrap_or_else(|_| "{}".into());
    let (accounts, tasks, skips) = (count_i64(counts.accounts), count_i64(counts.tasks), count_i64(counts.skips));
    let query = match write.shard {
        None => sqlx::query(
            "UPDATE plan_runs SET accounts = $1, tasks = $2, skips = $3, skip_counts = $4, \
             finished_at = COALESCE($5, finished_at) WHERE id = $6",
        )
        .bind(accounts)
        .bind(tasks)
        .bind(skips)
        .bind(skip_counts)
        .bind(write.finished_at)
        .bind(write.run_id),
        Some(mark) => sqlx::query(
            "UPDATE plan_run_shards SET accounts = $1, tasks = $2, skips = $3, skip_counts = $4, \
             state = COALESCE($5, state) WHERE run_id = $6 AND shard = $7",
        )
        .bind(accounts)
        .bind(tasks)
        .bind(skips)
        .bind(skip_counts)
        .bind(write.finished_at.map(|_| ShardState::Done.code()))
        .bind(write.run_id)
        .bind(mark.shard),
    };
    query.execute(connection).await.map_err(sqlx_error)?;
    Ok(())
}

/// Rows in PostgreSQL's binary `COPY` format: the format's framing (signature, a field count
/// per row, a length per field, the trailer) around values that sqlx encodes exactly as it
/// encodes bound parameters.
struct BinaryCopy {
    data: Vec<u8>,
    value: PgArgumentBuffer,
}

/// The binary format's header: its signature, no flags, no header extension.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

impl Default for BinaryCopy {
    fn default() -> Self {
        BinaryCopy { data: COPY_HEADER.to_vec(), value: PgArgumentBuffer::default() }
    }
}

impl BinaryCopy {
    /// Starts a row of `fields` values.
    fn row(&mut self, fields: i16) {
        self.data.extend_from_slice(&fields.to_be_bytes());
    }

    /// Adds one value of the row (`None` is NULL).
    fn field<'q, T: Encode<'q, Postgres>>(&mut self, value: T) -> Result<(), sqlx::Error> {
        self.value.clear();
        match value.encode_by_ref(&mut self.value).map_err(sqlx::Error::Encode)? {
            IsNull::Yes => self.data.extend_from_slice(&(-1i32).to_be_bytes()),
            IsNull::No => {
                let length = i32::try_from(self.value.len())
                    .map_err(|_| sqlx::Error::Encode("a value longer than PostgreSQL takes".into()))?;
                self.data.extend_from_slice(&length.to_be_bytes());
                self.data.extend_from_slice(&self.value);
            }
        }
        Ok(())
    }

    /// `COPY target FROM STDIN` with these rows; returns how many were copied.
    async fn copy_into(mut self, connection: &mut PgConnection, target: &str) -> Result<u64, sqlx::Error> {
        self.data.extend_from_slice(&(-1i16).to_be_bytes());
        let mut copy = connection.copy_in_raw(&format!("COPY {target} FROM STDIN WITH (FORMAT binary)")).await?;
        copy.send(self.data).await?;
        copy.finish().await
    }
}
