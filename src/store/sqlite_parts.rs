//! A plan run's part saved on SQLite through the writer connection's own handle (`rusqlite`
//! over the handle sqlx opened): one write transaction whose statements are prepared once and
//! reused for every chunk of rows, each value bound straight from the planner's types. Owns the
//! SQLite statements of [`PlanRunWriter::save_part`](super::PlanRunWriter::save_part); what a
//! part saves (which account-days were planned meanwhile, the run's counts) is decided by
//! `store::plans`, never here.

use super::plans::{
    PartSaved, PartWrite, PlanRunError, RunCounts, SET_STAGES_INTO, SET_STAGES_TAIL, StageChange, count_i64,
    fresh_part, planned_among, small_i32, total_after,
};
use super::{StoreError, sqlx_error};
use crate::domain::ShardState;
use crate::plan::{ExperimentEntry, Task};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rusqlite::{Statement, Transaction, TransactionBehavior};
use rustc_hash::FxHashMap;
use sea_orm::DatabaseConnection;
use std::collections::HashSet;

/// Rows per multi-row `INSERT`: 64 task rows bind 1,152 values, well below SQLite's limit, and
/// amortise the statement's step over many rows (the remainder goes in one row at a time).
const CHUNK_ROWS: usize = 64;

/// The verb of every multi-row `INSERT` here. A plain `INSERT` (`OR ABORT`) must undo its own
/// earlier rows when a later one breaks a constraint, so SQLite first copies every page each
/// statement touches into a statement journal: ~10 % of a part's task insert (see
/// docs/PERFORMANCE.md, step 10). `OR FAIL` keeps no such copy. Nothing is lost by it: any
/// error ends the part's whole transaction, which is rolled back, never committed halfway.
const INSERT: &str = "INSERT OR FAIL INTO";

/// Saves one part in one `BEGIN IMMEDIATE` transaction on the writer's connection: claims the
/// run's row, reads which of the part's account-days already have tasks, inserts the rest with
/// their stage changes and experiment entries, and writes the run's counts (`before` plus this
/// part's) and, with `finished_at`, finishes the run. Returns what was saved and the new counts.
pub(super) async fn save_part(
    db: &DatabaseConnection,
    write: PartWrite<'_>,
) -> Result<(PartSaved, RunCounts), PlanRunError> {
    let mut connection = db.get_sqlite_connection_pool().acquire().await.map_err(sqlx_error)?;
    let mut handle = connection.lock_handle().await.map_err(sqlx_error)?;
    let raw = handle.as_raw_handle();
    blocking(|| {
        // SAFETY: `lock_handle` gives this task the connection exclusively until `handle` drops
        // (after this closure): sqlx's worker thread makes no call on it meanwhile. The
        // `Connection` made here does not own the handle, so dropping it finalizes only its own
        // statements and leaves the connection open to sqlx, back in autocommit mode (the
        // transaction is committed or rolled back before it drops).
        let mut connection = unsafe { rusqlite::Connection::from_handle(raw.as_ptr()) }.map_err(StoreError::from)?;
        let txn = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StoreError::from)?;
        let saved = write_part(&txn, &write)?;
        txn.commit().map_err(StoreError::from)?;
        Ok(saved)
    })
}

/// The statements of one part, inside its transaction (dropped uncommitted: rolled back).
fn write_part(txn: &Transaction<'_>, write: &PartWrite<'_>) -> Result<(PartSaved, RunCounts), PlanRunError> {
    let claimed = match write.shard {
        None => txn.execute(
            "UPDATE plan_runs SET resume_after = ?1 WHERE id = ?2 AND finished_at IS NULL AND resume_after IS ?3",
            rusqlite::params![write.part.resume_after, write.run_id, write.previous],
        ),
        Some(mark) => txn.execute(
            "UPDATE plan_run_shards SET resume_after = ?1, heartbeat_at = ?2 WHERE run_id = ?3 AND shard = ?4 \
             AND holder = ?5 AND state = ?6 AND resume_after IS ?7",
            rusqlite::params![
                write.part.resume_after,
                timestamp(write.heartbeat_at),
                write.run_id,
                mark.shard,
                mark.holder,
                ShardState::Claimed.code(),
                write.previous
            ],
        ),
    }
    .map_err(StoreError::from)?;
    if claimed != 1 {
        return Err(PlanRunError::Superseded { run_id: write.run_id });
    }
    // The write lock is this transaction's since BEGIN IMMEDIATE: nobody adds tasks meanwhile.
    let planned = planned_account_days(txn, write.part.tasks)?;
    let fresh = fresh_part(&write.part, &planned);
    let inserted = insert_tasks(txn, write.run_id, write.created_at, &fresh.tasks)?;
    apply_stage_changes(txn, write.run_id, write.as_of, &fresh.changes)?;
    insert_entries(txn, write.run_id, write.as_of, &fresh.entries)?;
    let total = total_after(write.before, write.part.counts, inserted, fresh.planned_meanwhile.len());
    write_counts(txn, write, &total)?;
    Ok((PartSaved { inserted, planned_meanwhile: fresh.planned_meanwhile }, total))
}

/// The `(account, local date)` pairs of `tasks` that already have a stored task. A part's
/// accounts are consecutive in id order, so one range of the `(account_id, local_date, attempt)`
/// index holds them all.
fn planned_account_days<'t>(
    txn: &Transaction<'_>,
    tasks: &'t [Task],
) -> Result<HashSet<(&'t str, NaiveDate)>, StoreError> {
    let (Some(first), Some(last)) = (tasks.first(), tasks.last()) else {
        return Ok(HashSet::new());
    };
    let mut statement = txn.prepare_cached(
        "SELECT DISTINCT account_id, local_date FROM tasks WHERE account_id >= ?1 AND account_id <= ?2",
    )?;
    let mut rows = statement.query(rusqlite::params![&*first.account_id, &*last.account_id])?;
    let mut stored = Vec::new();
    while let Some(row) = rows.next()? {
        let account: String = row.get(0)?;
        let date: String = row.get(1)?;
        let date = NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(|_| StoreError::Corrupt {
            table: "tasks",
            id: account.clone(),
            message: format!("local_date `{date}`"),
        })?;
        stored.push((account, date));
    }
    Ok(planned_among(tasks, stored))
}

/// Inserts tasks; returns how many.
fn insert_tasks(
    txn: &Transaction<'_>,
    run_id: i64,
    created_at: DateTime<Utc>,
    tasks: &[Task],
) -> Result<u64, StoreError> {
    let created_at = timestamp(created_at);
    let mut texts = Texts::default();
    insert_rows(
        txn,
        &format!("{INSERT} tasks ({})", super::plans::TASK_COLUMNS),
        "",
        18,
        tasks,
        |statement, at, task| {
            let mut column = at;
            let mut bind = |value: &dyn rusqlite::ToSql| {
                statement.raw_bind_parameter(column, value)?;
                column += 1;
                rusqlite::Result::Ok(())
            };
            bind(&run_id)?;
            bind(&created_at)?;
            bind(&&*task.account_id)?;
            bind(&&*task.borrower_id)?;
            bind(&texts.date(task.local_date))?;
            bind(&task.dpd)?;
            bind(&&*task.stage)?;
            bind(&&*task.strategy)?;
            bind(&&*task.rule)?;
            bind(&task.arm.as_deref())?;
            bind(&task.channel.code())?;
            bind(&task.queue.as_deref())?;
            bind(&task.template.as_deref())?;
            bind(&small_i32(task.attempt))?;
            bind(&small_i32(task.calls_allowed))?;
            bind(&texts.time(task.not_before.with_timezone(&Utc)))?;
            bind(&texts.time(task.not_after.with_timezone(&Utc)))?;
            bind(&task.priority)
        },
    )
}

/// Sets the accounts' new stage (`account_stages`, in the part's account order: appended to the
/// table's key on a first plan) and writes one `stage_history` row per change.
fn apply_stage_changes(
    txn: &Transaction<'_>,
    run_id: i64,
    at: DateTime<Utc>,
    changes: &[StageChange],
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    insert_rows(
        txn,
        &format!("{INSERT} {SET_STAGES_INTO}"),
        SET_STAGES_TAIL,
        2,
        changes,
        |statement, column, change| {
            statement.raw_bind_parameter(column, &change.account_id)?;
            statement.raw_bind_parameter(column + 1, &*change.to)
        },
    )?;
    let at = timestamp(at);
    insert_rows(
        txn,
        &format!("{INSERT} stage_history (at, plan_run_id, account_id, from_stage, to_stage)"),
        "",
        5,
        changes,
        |statement, column, change| {
            statement.raw_bind_parameter(column, &at)?;
            statement.raw_bind_parameter(column + 1, run_id)?;
            statement.raw_bind_parameter(column + 2, &change.account_id)?;
            statement.raw_bind_parameter(column + 3, change.from.as_deref())?;
            statement.raw_bind_parameter(column + 4, &*change.to)
        },
    )?;
    Ok(())
}

/// Stores the accounts entering an experiment (an account's first entry stays).
fn insert_entries(
    txn: &Transaction<'_>,
    run_id: i64,
    at: DateTime<Utc>,
    entries: &[ExperimentEntry],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let at = timestamp(at);
    let mut statement = txn.prepare_cached(
        "INSERT INTO experiment_entries (entered_at, plan_run_id, experiment, account_id, strategy, borrower_id, arm, \
         stage, dpd, balance, currency) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT (experiment, account_id) DO NOTHING",
    )?;
    for entry in entries {
        statement.execute(rusqlite::params![
            at,
            run_id,
            &*entry.experiment,
            entry.account_id,
            &*entry.strategy,
            entry.borrower_id,
            &*entry.arm,
            &*entry.stage,
            entry.dpd,
            // The column is REAL: SQLite converts the exact decimal text as it does sqlx's.
            entry.balance.to_string(),
            entry.currency,
        ])?;
    }
    Ok(())
}

/// Sets the run's (or the shard's) running counts, and with `finished_at` finishes the run
/// (marks the shard done).
fn write_counts(txn: &Transaction<'_>, write: &PartWrite<'_>, counts: &RunCounts) -> Result<(), StoreError> {
    let skip_counts = serde_json::to_string(&counts.skip_counts).unwrap_or_else(|_| "{}".into());
    let (accounts, tasks, skips) = (count_i64(counts.accounts), count_i64(counts.tasks), count_i64(counts.skips));
    match write.shard {
        None => txn.execute(
            "UPDATE plan_runs SET accounts = ?1, tasks = ?2, skips = ?3, skip_counts = ?4, \
             finished_at = COALESCE(?5, finished_at) WHERE id = ?6",
            rusqlite::params![accounts, tasks, skips, skip_counts, write.finished_at.map(timestamp), write.run_id],
        )?,
        Some(mark) => txn.execute(
            "UPDATE plan_run_shards SET accounts = ?1, tasks = ?2, skips = ?3, skip_counts = ?4, \
             state = COALESCE(?5, state) WHERE run_id = ?6 AND shard = ?7",
            rusqlite::params![
                accounts,
                tasks,
                skips,
                skip_counts,
                write.finished_at.map(|_| ShardState::Done.code()),
                write.run_id,
                mark.shard
            ],
        )?,
    };
    Ok(())
}

/// Runs `head VALUES (...), (...) tail` over `rows` with `per_row` values each: chunks of
/// [`CHUNK_ROWS`] through one prepared statement, the remainder through a one-row statement.
/// `bind` binds one row's values from parameter number `at` on. Returns the rows inserted.
fn insert_rows<R>(
    txn: &Transaction<'_>,
    head: &str,
    tail: &str,
    per_row: usize,
    rows: &[R],
    mut bind: impl FnMut(&mut Statement<'_>, usize, &R) -> rusqlite::Result<()>,
) -> Result<u64, StoreError> {
    let mut inserted = 0;
    let mut chunks = rows.chunks_exact(CHUNK_ROWS);
    if chunks.len() > 0 {
        let mut statement = txn.prepare_cached(&values_sql(head, tail, per_row, CHUNK_ROWS))?;
        for chunk in &mut chunks {
            for (index, row) in chunk.iter().enumerate() {
                bind(&mut statement, index * per_row + 1, row)?;
            }
            inserted += statement.raw_execute()? as u64;
        }
    }
    if !chunks.remainder().is_empty() {
        let mut statement = txn.prepare_cached(&values_sql(head, tail, per_row, 1))?;
        for row in chunks.remainder() {
            bind(&mut statement, 1, row)?;
            inserted += statement.raw_execute()? as u64;
        }
    }
    Ok(inserted)
}

/// `head VALUES (?, ...), ... tail`: `rows` rows of `per_row` placeholders.
fn values_sql(head: &str, tail: &str, per_row: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; per_row].join(", "));
    let rows = vec![row; rows].join(", ");
    if tail.is_empty() { format!("{head} VALUES {rows}") } else { format!("{head} VALUES {rows} {tail}") }
}

/// The stored texts of a part's dates and instants, each formatted once: a part's tasks share a
/// few local days and window bounds (the benchmark book's 1,399,011 tasks have 8 distinct
/// `not_before`), and formatting each value anew was ~1.5 % of a plan's CPU, on the writer.
#[derive(Default)]
struct Texts {
    dates: FxHashMap<NaiveDate, String>,
    times: FxHashMap<DateTime<Utc>, String>,
}

impl Texts {
    /// [`date`], once per distinct day.
    fn date(&mut self, day: NaiveDate) -> &str {
        self.dates.entry(day).or_insert_with(|| date(day))
    }

    /// [`timestamp`], once per distinct instant.
    fn time(&mut self, at: DateTime<Utc>) -> &str {
        self.times.entry(at).or_insert_with(|| timestamp(at))
    }
}

/// An instant as sqlx stores a `DateTime<Utc>` on SQLite (RFC 3339, `+00:00`, the fraction
/// only when there is one), so that stored texts compare and read back alike.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A date as sqlx stores a `NaiveDate` on SQLite.
fn date(date: NaiveDate) -> String {
    date.format("%F").to_string()
}

/// Runs blocking work from async code: on a multi-threaded runtime the other tasks move to
/// another worker meanwhile (the plan's reading and planning go on while a part is written);
/// elsewhere (a test's single-threaded runtime) it simply runs.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, Value};

    /// The texts written here are the texts sqlx writes for the same values: the release and
    /// expiry scans compare them with values sqlx binds.
    #[tokio::test]
    async fn instants_and_dates_are_stored_as_sqlx_stores_them() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let instants: [DateTime<Utc>; 3] = [
            "2026-11-22T02:00:00Z".parse().unwrap(),
            "2026-12-03T15:19:02.714901353Z".parse().unwrap(),
            "2026-03-29T01:30:00.5Z".parse().unwrap(),
        ];
        for at in instants {
            let row = db
                .query_one_raw(Statement::from_sql_and_values(DbBackend::Sqlite, "SELECT ?", [Value::from(at)]))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.try_get_by_index::<String>(0).unwrap(), timestamp(at));
        }
        let day = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let row = db
            .query_one_raw(Statement::from_sql_and_values(DbBackend::Sqlite, "SELECT ?", [Value::from(day)]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get_by_index::<String>(0).unwrap(), date(day));
    }

    /// A row that breaks a constraint halfway through a 64-row chunk fails the part, and the
    /// part's transaction keeps none of it: `OR FAIL` leaves the chunk's earlier rows in place
    /// only until the transaction is rolled back.
    #[test]
    fn a_bad_row_in_a_chunk_fails_the_insert_and_the_rolled_back_transaction_keeps_nothing() {
        let mut connection = rusqlite::Connection::open_in_memory().unwrap();
        connection.execute_batch("CREATE TABLE t (a INTEGER NOT NULL UNIQUE, b TEXT NOT NULL)").unwrap();
        let mut rows: Vec<i64> = (0..(CHUNK_ROWS as i64 + 10)).collect();
        rows[CHUNK_ROWS / 2] = 3;
        {
            let txn = connection.transaction().unwrap();
            let error = insert_rows(&txn, &format!("{INSERT} t (a, b)"), "", 2, &rows, |statement, column, row| {
                statement.raw_bind_parameter(column, row)?;
                statement.raw_bind_parameter(column + 1, "x")
            })
            .unwrap_err();
            assert!(error.to_string().contains("UNIQUE"), "{error}");
        }
        let kept: i64 = connection.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0)).unwrap();
        assert_eq!(kept, 0);
    }

    #[test]
    fn a_values_statement_has_one_placeholder_per_value() {
        assert_eq!(values_sql("INSERT INTO t (a, b)", "", 2, 2), "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)");
        assert_eq!(
            values_sql("INSERT INTO t (a)", "ON CONFLICT (a) DO NOTHING", 1, 2),
            "INSERT INTO t (a) VALUES (?), (?) ON CONFLICT (a) DO NOTHING"
        );
    }

    #[test]
    fn each_date_and_instant_keeps_its_own_stored_text() {
        let mut texts = Texts::default();
        let (day, next) =
            (NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(), NaiveDate::from_ymd_opt(2026, 11, 23).unwrap());
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 1, 0, 0).unwrap();
        let later = at + chrono::Duration::milliseconds(1_500);
        for _ in 0..2 {
            assert_eq!(texts.date(day), "2026-11-22");
            assert_eq!(texts.date(next), "2026-11-23");
            assert_eq!(texts.time(at), timestamp(at));
            assert_eq!(texts.time(later), "2026-11-22T01:00:01.500+00:00");
        }
    }
}
