//! Persisting plan runs: the run row, its tasks (bulk, idempotent per account, day and attempt)
//! and the stage changes it decided.

use super::book::{ACCOUNTS_WITH_STAGES, unpack};
use super::sql::{PAGE_ROWS, Sql, get, insert_values, is_postgres, json_page, page_key};
use super::{StoreError, begin_write};
use crate::plan::Task;
use chrono::{DateTime, Utc};
use entity::{stage_history, tasks};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, SqlErr, TransactionTrait, Value,
};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Rows per `UNNEST` statement on PostgreSQL (arrays are not subject to the bind limit).
const UNNEST_ROWS: usize = 20_000;

/// The task columns written per row, after the shared `plan_run_id` and `created_at`.
pub(super) const TASK_COLUMNS: &str = "plan_run_id, created_at, account_id, borrower_id, local_date, dpd, \
     stage, strategy, rule, arm, channel, queue, template, attempt, calls_allowed, not_before, \
     not_after, priority";
/// Makes a task insert skip rows whose account, day and attempt already exist.
const ON_CONFLICT_NOTHING: &str = " ON CONFLICT (account_id, local_date, attempt) DO NOTHING";
/// Values bound per task row on SQLite.
const TASK_BINDS: usize = 16;

/// The summary row of one plan run, written by [`save_plan`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewPlanRun {
    /// The plan instant (what "now" was for the planner).
    pub as_of: DateTime<Utc>,
    /// When the run started (wall clock, read by the caller).
    pub started_at: DateTime<Utc>,
    /// Accounts considered.
    pub accounts: u64,
    /// Tasks planned.
    pub tasks: u64,
    /// Skips decided.
    pub skips: u64,
    /// Skips by reason code.
    pub skip_counts: BTreeMap<String, u64>,
    /// The strategies in force: `(name, content hash)`.
    pub strategies: Vec<(String, String)>,
}

/// Persists a whole plan run in one transaction and returns its id:
/// - inserts the `plan_runs` row;
/// - inserts the tasks in multi-row statements (`UNNEST` arrays on PostgreSQL), skipping those
///   whose `(account_id, local_date, attempt)` already exists, so re-planning a day adds nothing;
/// - sets each account's stage (`account_stages`) where `stages` (account id → stage) differs
///   from the stored stage and writes one `stage_history` row per change, at `run.as_of`.
///
/// Task times are stored in UTC; `created_at` of the tasks is `run.started_at`; the run's
/// `finished_at` is `finished_at`. The planner itself saves page by page instead (see
/// [`begin_plan_run`]); this whole-plan form serves tools and tests.
pub async fn save_plan(
    db: &DatabaseConnection,
    run: &NewPlanRun,
    tasks: &[Task],
    stages: &[(String, Arc<str>)],
    finished_at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let txn = begin_write(db).await?;
    let run_id = insert_run(&txn, run).await?;
    insert_tasks(&txn, run_id, run.started_at, tasks, true).await?;
    let changes = stage_changes(&txn, stages).await?;
    apply_stage_changes(&txn, run_id, run.as_of, &changes).await?;
    let counts =
        RunCounts { accounts: run.accounts, tasks: run.tasks, skips: run.skips, skip_counts: run.skip_counts.clone() };
    finish_run(&txn, run_id, &counts, finished_at).await?;
    txn.commit().await?;
    Ok(run_id)
}

/// Counts a plan run accumulates as its pages are saved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Accounts considered.
    pub accounts: u64,
    /// Tasks saved.
    pub tasks: u64,
    /// Skips decided.
    pub skips: u64,
    /// Skips by reason code.
    pub skip_counts: BTreeMap<String, u64>,
}

impl RunCounts {
    /// Adds another part's counts.
    pub fn add(&mut self, other: &RunCounts) {
        self.accounts += other.accounts;
        self.tasks += other.tasks;
        self.skips += other.skips;
        for (reason, count) in &other.skip_counts {
            *self.skip_counts.entry(reason.clone()).or_default() += count;
        }
    }
}

/// Why a page of a plan run could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum PlanRunError {
    /// The store failed; the part was rolled back (the parts before it stay saved).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another planner saved a part of the same run since this writer's last part: two
    /// processes were continuing one run. This one stops; nothing of its part was saved.
    #[error("plan run {run_id} was continued by another planner meanwhile; this planner stopped")]
    Superseded {
        /// The run.
        run_id: i64,
    },
}

impl From<sea_orm::DbErr> for PlanRunError {
    fn from(error: sea_orm::DbErr) -> Self {
        PlanRunError::Store(StoreError::Db(error))
    }
}

/// One part of a plan run to save in one short transaction: a page of accounts, or on SQLite a
/// slice of one (see [`PlanRunWriter::accounts_per_transaction`]).
#[derive(Debug, Clone, Copy)]
pub struct RunPart<'a> {
    /// The part's tasks, in account order.
    pub tasks: &'a [Task],
    /// The part's stage changes.
    pub changes: &'a [StageChange],
    /// The part's accounts entering an experiment (stored unless already entered).
    pub entries: &'a [crate::plan::ExperimentEntry],
    /// What the part decided (accounts, tasks, skips by reason).
    pub counts: &'a RunCounts,
    /// The key of the part's last account: a resumed run loads the accounts after it.
    pub resume_after: &'a str,
}

/// One part to save, as the stores' part writers (`store::sqlite_parts`,
/// `store::postgres_parts`) take it: the run's row it claims, the part, the run's counts
/// before it, and the instants to write.
pub(super) struct PartWrite<'a> {
    pub run_id: i64,
    /// The shard the part belongs to, in a sharded run: its row is claimed and moved instead of
    /// the run's.
    pub shard: Option<&'a ShardMark>,
    /// What the run's `resume_after` must still be; it becomes `part.resume_after`.
    pub previous: Option<&'a str>,
    /// The tasks' `created_at`.
    pub created_at: DateTime<Utc>,
    /// The stage changes' and experiment entries' instant (the run's `as_of`).
    pub as_of: DateTime<Utc>,
    pub part: RunPart<'a>,
    pub before: &'a RunCounts,
    /// Set on the run's last part: the run is finished (in a sharded run: the shard is done).
    pub finished_at: Option<DateTime<Utc>>,
    /// The wall clock when the part is saved: a shard's heartbeat.
    pub heartbeat_at: DateTime<Utc>,
}

/// The shard a writer saves, and the planner that claimed it (see `store::plan_shards`).
#[derive(Debug, Clone)]
pub(super) struct ShardMark {
    pub shard: i32,
    pub holder: String,
}

/// What saving a part did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartSaved {
    /// Tasks inserted.
    pub inserted: u64,
    /// Accounts whose local day another plan run saved after this run loaded its history:
    /// their tasks were left out (the other run's stand), and they count as `already_planned`.
    pub planned_meanwhile: Vec<String>,
}

/// A plan run saved part by part, each part in its own short write transaction together with
/// the run's running counts and `resume_after`. The run's row is committed when the writer is
/// made (`finished_at` NULL: in progress, or interrupted); [`PlanRunWriter::save_part`] with a
/// finishing instant completes it.
#[derive(Debug)]
pub struct PlanRunWriter {
    db: DatabaseConnection,
    /// On SQLite, copies the writer's WAL into the database in the background.
    checkpoints: Option<super::sqlite_checkpoints::Checkpoints>,
    run_id: i64,
    created_at: DateTime<Utc>,
    as_of: DateTime<Utc>,
    counts: RunCounts,
    resume_after: Option<String>,
    resumed: bool,
    shard: Option<ShardMark>,
}

/// Accounts per write transaction on SQLite, where a writer holds the whole database's write
/// lock: a page, ~110 ms of lock (p50; p90 ~190 ms) in a release build on the 1,000,000-account
/// benchmark book, so that another writer — a payment batch, an agent's lease — waits for a
/// fraction of a second. Every commit costs (each writes the index pages it touched again): the
/// smaller the transactions, the longer the whole plan (see docs/PERFORMANCE.md).
pub const SQLITE_ACCOUNTS_PER_TRANSACTION: usize = 10_000;

/// The pause between two of a plan run's write transactions on SQLite: waiting writers try for
/// the lock every millisecond (see `store::sqlite_busy`), so one of them takes it now.
pub const SQLITE_WRITE_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// Starts a plan run, or continues an interrupted one.
///
/// When `resumable` is given, the latest unfinished run whose `as_of` falls in that range and
/// whose strategy versions are `run.strategies` is continued: its saved parts stay, its counts
/// go on, and [`PlanRunWriter::resume_after`] tells where to continue. Otherwise a new run row
/// is inserted and committed at once (`finished_at` NULL).
pub async fn begin_plan_run(
    db: &DatabaseConnection,
    run: &NewPlanRun,
    resumable: Option<std::ops::Range<DateTime<Utc>>>,
) -> Result<PlanRunWriter, StoreError> {
    if let Some(range) = resumable
        && let Some(row) = unfinished_plan_run(db, run, range).await?
    {
        return PlanRunWriter::continuing(db, row, run.started_at);
    }
    let run_id = insert_run(db, run).await?;
    Ok(PlanRunWriter {
        db: writer_connection(db),
        checkpoints: super::sqlite_checkpoints::Checkpoints::for_writer(db),
        run_id,
        created_at: run.started_at,
        as_of: run.as_of,
        counts: RunCounts::default(),
        resume_after: None,
        resumed: false,
        shard: None,
    })
}

/// The latest unfinished run whose `as_of` falls in `range` and whose strategy versions are
/// `run.strategies`: the run a plan of that day continues (or, when it is sharded, joins).
pub async fn unfinished_plan_run(
    db: &DatabaseConnection,
    run: &NewPlanRun,
    range: std::ops::Range<DateTime<Utc>>,
) -> Result<Option<entity::plan_runs::Model>, StoreError> {
    Ok(entity::plan_runs::Entity::find()
        .filter(entity::plan_runs::Column::FinishedAt.is_null())
        .filter(entity::plan_runs::Column::AsOf.gte(range.start))
        .filter(entity::plan_runs::Column::AsOf.lt(range.end))
        .filter(entity::plan_runs::Column::Strategies.eq(strategies_json(run).as_str()))
        .order_by_desc(entity::plan_runs::Column::Id)
        .one(db)
        .await?)
}

/// Counts stored on a run's or a shard's row.
pub(super) fn stored_counts(
    table: &'static str,
    id: &str,
    accounts: i64,
    tasks: i64,
    skips: i64,
    skip_counts: &str,
) -> Result<RunCounts, StoreError> {
    let skip_counts = serde_json::from_str(skip_counts).map_err(|error| StoreError::Corrupt {
        table,
        id: id.to_string(),
        message: format!("skip_counts: {error}"),
    })?;
    let count = |value: i64| u64::try_from(value).unwrap_or(0);
    Ok(RunCounts { accounts: count(accounts), tasks: count(tasks), skips: count(skips), skip_counts })
}

/// The connection a plan run writes through. On SQLite a pool of its own with one connection:
/// SQLite drops a connection's page cache when another connection wrote since its last
/// transaction, so parts written by the shared pool's connections in turn would each start
/// with a cold cache; one connection keeps the `tasks` indexes cached from one part to the
/// next. It never checkpoints the WAL after its commits: [`sqlite_checkpoints::Checkpoints`](super::sqlite_checkpoints::Checkpoints)
/// does, mostly beside it (a checkpoint after the writer's commit had stopped the writer for
/// 70-350 ms each time, ~1.9 s of a 1,000,000-account plan). It keeps any statement journal
/// in memory (`temp_store=memory`): past 64 KiB SQLite wrote one to a temporary file, 38 % of
/// the writer's time on the 1,000,000-account book when every 64-row `INSERT` journalled the
/// pages it touched. (The multi-row inserts are now `OR FAIL` and journal nothing; see
/// `store::sqlite_parts`.) (An in-memory database has one connection, which is shared.)
fn writer_connection(db: &DatabaseConnection) -> DatabaseConnection {
    if is_postgres(db.get_database_backend()) {
        return db.clone();
    }
    let shared = db.get_sqlite_connection_pool();
    if shared.options().get_max_connections() <= 1 {
        return db.clone();
    }
    let options = (*shared.connect_options()).clone().pragma("wal_autocheckpoint", "0").pragma("temp_store", "memory");
    sea_orm::sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .after_connect(|connection, _| Box::pin(async move { super::sqlite_busy::install(connection).await }))
        .connect_lazy_with(options)
        .into()
}

impl PlanRunWriter {
    /// A writer that continues the interrupted run `row` (one of [`unfinished_plan_run`]): its
    /// saved parts stay, its counts go on from the row's, its tasks are created at
    /// `created_at`, and [`PlanRunWriter::resume_after`] tells where to continue.
    pub fn continuing(
        db: &DatabaseConnection,
        row: entity::plan_runs::Model,
        created_at: DateTime<Utc>,
    ) -> Result<PlanRunWriter, StoreError> {
        let counts =
            stored_counts("plan_runs", &row.id.to_string(), row.accounts, row.tasks, row.skips, &row.skip_counts)?;
        Ok(PlanRunWriter {
            db: writer_connection(db),
            checkpoints: super::sqlite_checkpoints::Checkpoints::for_writer(db),
            run_id: row.id,
            created_at,
            as_of: row.as_of,
            counts,
            resume_after: row.resume_after,
            resumed: true,
            shard: None,
        })
    }

    /// A writer of one claimed shard of a sharded run (as of `as_of`, its tasks created at
    /// `created_at`), for the planner `holder` that claimed it: its parts move the shard's
    /// `resume_after`, counts and heartbeat, and its last part marks the shard done (the run
    /// itself is finished by [`finish_sharded_run`](super::finish_sharded_run)). A part is
    /// refused ([`PlanRunError::Superseded`]) once another planner has taken the shard over.
    pub fn for_shard(
        db: &DatabaseConnection,
        claim: &super::ShardClaim,
        holder: &str,
        as_of: DateTime<Utc>,
        created_at: DateTime<Utc>,
    ) -> PlanRunWriter {
        PlanRunWriter {
            db: writer_connection(db),
            checkpoints: super::sqlite_checkpoints::Checkpoints::for_writer(db),
            run_id: claim.run_id,
            created_at,
            as_of,
            counts: claim.counts.clone(),
            resume_after: claim.resume_after.clone(),
            resumed: claim.resume_after.is_some(),
            shard: Some(ShardMark { shard: claim.shard, holder: holder.to_string() }),
        }
    }

    /// The run's id.
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// Whether this writer continues an interrupted run.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The key of the last account saved: the run continues with the accounts after it
    /// (`None`: from the start).
    pub fn resume_after(&self) -> Option<&str> {
        self.resume_after.as_deref()
    }

    /// The instant the run was started for (a resumed run keeps its first `as_of`).
    pub fn as_of(&self) -> DateTime<Utc> {
        self.as_of
    }

    /// The run's counts so far, its earlier parts included.
    pub fn counts(&self) -> &RunCounts {
        &self.counts
    }

    /// How many accounts to save per transaction: a page at a time on PostgreSQL (rows are
    /// locked, not the database), [`SQLITE_ACCOUNTS_PER_TRANSACTION`] on SQLite.
    pub fn accounts_per_transaction(&self) -> usize {
        if is_postgres(self.db.get_database_backend()) { usize::MAX } else { SQLITE_ACCOUNTS_PER_TRANSACTION }
    }

    /// Saves one part in one transaction: claims the run's row (its `resume_after` must still be
    /// what this writer saved last, else [`PlanRunError::Superseded`]), inserts the part's tasks
    /// (created at this invocation's start) except those of accounts whose local day already
    /// has tasks, writes the stage changes (at the run's `as_of`), and sets the run's running
    /// counts and `resume_after`; with `finished_at`, also finishes the run.
    ///
    /// Account-days planned meanwhile by another run are checked inside the transaction, so
    /// two runs never mix their tasks for one account and day. On PostgreSQL the tasks go in by
    /// `COPY` inside a savepoint (no conflict check to pay on a first plan); a unique violation
    /// means a concurrent run is saving the same accounts: the savepoint is rolled back, the
    /// check repeated once the other run has committed, and the rest inserted.
    pub async fn save_part(
        &mut self,
        part: RunPart<'_>,
        finished_at: Option<DateTime<Utc>>,
    ) -> Result<PartSaved, PlanRunError> {
        let started = std::time::Instant::now();
        let postgres = is_postgres(self.db.get_database_backend());
        let write = PartWrite {
            run_id: self.run_id,
            shard: self.shard.as_ref(),
            previous: self.resume_after.as_deref(),
            created_at: self.created_at,
            as_of: self.as_of,
            part,
            before: &self.counts,
            finished_at,
            heartbeat_at: Utc::now(),
        };
        let (saved, total) = if postgres {
            super::postgres_parts::save_part(&self.db, write).await?
        } else {
            super::sqlite_parts::save_part(&self.db, write).await?
        };
        tracing::debug!(
            run_id = self.run_id,
            accounts = part.counts.accounts,
            tasks = saved.inserted,
            held = ?started.elapsed(),
            "plan part saved"
        );
        self.counts = total;
        self.resume_after = Some(part.resume_after.to_string());
        if let Some(checkpoints) = self.checkpoints.as_mut() {
            checkpoints.after_part(finished_at.is_some()).await;
        }
        if !postgres && finished_at.is_none() {
            // Leave the write lock free for a moment: writers waiting for it get in now.
            tokio::time::sleep(SQLITE_WRITE_PAUSE).await;
        }
        Ok(saved)
    }
}

/// What of a part is saved once the account-days already stored (`planned`) are known.
pub(super) struct FreshPart<'a> {
    /// The tasks of the other account-days.
    pub tasks: Cow<'a, [Task]>,
    /// The stage changes of the accounts left.
    pub changes: Cow<'a, [StageChange]>,
    /// The experiment entries of the accounts left.
    pub entries: Cow<'a, [crate::plan::ExperimentEntry]>,
    /// The accounts whose day another run saved meanwhile, in account order.
    pub planned_meanwhile: Vec<String>,
}

/// The part's account-days among `stored`, the `(account, local date)` pairs a store read back
/// from `tasks` for the part's accounts: what [`fresh_part`] leaves out.
pub(super) fn planned_among<'t>(
    tasks: &'t [Task],
    stored: impl IntoIterator<Item = (String, chrono::NaiveDate)>,
) -> std::collections::HashSet<(&'t str, chrono::NaiveDate)> {
    let days: std::collections::HashSet<(&'t str, chrono::NaiveDate)> =
        tasks.iter().map(|task| (&*task.account_id, task.local_date)).collect();
    let accounts: std::collections::HashSet<&'t str> = tasks.iter().map(|task| &*task.account_id).collect();
    stored
        .into_iter()
        .filter_map(|(account, date)| accounts.get(account.as_str()).map(|&id| (id, date)))
        .filter(|day| days.contains(day))
        .collect()
}

/// Leaves out of a part the accounts whose local day already has stored tasks (another run
/// saved them after this run read its history).
pub(super) fn fresh_part<'a>(
    part: &RunPart<'a>,
    planned: &std::collections::HashSet<(&str, chrono::NaiveDate)>,
) -> FreshPart<'a> {
    let (tasks, planned_meanwhile) = fresh_tasks(part.tasks, planned);
    let (changes, entries) = left_after(part, &planned_meanwhile);
    FreshPart { tasks, changes, entries, planned_meanwhile }
}

/// A part's stage changes and experiment entries but those of the accounts planned meanwhile.
fn left_after<'a>(
    part: &RunPart<'a>,
    planned_meanwhile: &[String],
) -> (Cow<'a, [StageChange]>, Cow<'a, [crate::plan::ExperimentEntry]>) {
    let others: std::collections::HashSet<&str> = planned_meanwhile.iter().map(String::as_str).collect();
    (
        without_accounts(part.changes, &others, |change| &change.account_id),
        without_accounts(part.entries, &others, |entry| &entry.account_id),
    )
}

/// The tasks whose account-day is not in `planned`, and the accounts left out (in order).
fn fresh_tasks<'a>(
    tasks: &'a [Task],
    planned: &std::collections::HashSet<(&str, chrono::NaiveDate)>,
) -> (Cow<'a, [Task]>, Vec<String>) {
    if planned.is_empty() {
        return (Cow::Borrowed(tasks), Vec::new());
    }
    let is_planned = |task: &Task| planned.contains(&(&*task.account_id, task.local_date));
    let mut planned_meanwhile: Vec<String> =
        tasks.iter().filter(|task| is_planned(task)).map(|task| task.account_id.to_string()).collect();
    planned_meanwhile.dedup();
    (Cow::Owned(tasks.iter().filter(|task| !is_planned(task)).cloned().collect()), planned_meanwhile)
}

/// `rows` but those of the accounts in `others`.
fn without_accounts<'a, R: Clone>(
    rows: &'a [R],
    others: &std::collections::HashSet<&str>,
    account: impl Fn(&R) -> &String,
) -> Cow<'a, [R]> {
    if others.is_empty() {
        return Cow::Borrowed(rows);
    }
    Cow::Owned(rows.iter().filter(|row| !others.contains(account(row).as_str())).cloned().collect())
}

/// The run's counts after a part: `before` plus the part's, with `inserted` tasks and the
/// accounts planned meanwhile counted as `already_planned` skips.
pub(super) fn total_after(before: &RunCounts, part: &RunCounts, inserted: u64, planned_meanwhile: usize) -> RunCounts {
    let mut counts = part.clone();
    counts.tasks = inserted;
    if planned_meanwhile > 0 {
        let dropped = planned_meanwhile as u64;
        counts.skips += dropped;
        *counts.skip_counts.entry(crate::domain::Reason::AlreadyPlanned.to_string()).or_default() += dropped;
    }
    let mut total = before.clone();
    total.add(&counts);
    total
}

/// The `strategies` column of a run: `[{name, hash}, ...]` in the set's order.
fn strategies_json(run: &NewPlanRun) -> String {
    let strategies: Vec<serde_json::Value> =
        run.strategies.iter().map(|(name, hash)| serde_json::json!({ "name": name, "hash": hash })).collect();
    serde_json::Value::Array(strategies).to_string()
}

/// Writes a run's final counts and the instant it finished, unless it has finished already.
pub(super) async fn finish_run(
    db: &impl ConnectionTrait,
    run_id: i64,
    counts: &RunCounts,
    finished_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE plan_runs SET finished_at = ");
    sql.bind(finished_at);
    sql.push(", accounts = ");
    sql.bind(count_i64(counts.accounts));
    sql.push(", tasks = ");
    sql.bind(count_i64(counts.tasks));
    sql.push(", skips = ");
    sql.bind(count_i64(counts.skips));
    sql.push(", skip_counts = ");
    sql.bind(serde_json::to_string(&counts.skip_counts).unwrap_or_else(|_| "{}".into()));
    sql.push(" WHERE id = ");
    sql.bind(run_id);
    sql.push(" AND finished_at IS NULL");
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// The plainest fast bulk insert of the same task rows into the same table, in one
/// transaction, with no conflict handling, no run row and no stage bookkeeping: the physical
/// limit [`save_plan`] is measured against. Rows get `plan_run_id` 0 and `created_at` at the
/// Unix epoch. Fails if a row already exists.
pub async fn raw_insert_tasks(db: &DatabaseConnection, tasks: &[Task]) -> Result<u64, StoreError> {
    let txn = begin_write(db).await?;
    let inserted = insert_tasks(&txn, 0, DateTime::UNIX_EPOCH, tasks, false).await?;
    txn.commit().await?;
    Ok(inserted)
}

/// Number of stored tasks.
pub async fn count_tasks(db: &impl ConnectionTrait) -> Result<u64, StoreError> {
    super::ingest::count_rows(db, "tasks").await
}

/// A queue's open work at `now`: its human tasks `planned`, `ready` or `leased` whose window
/// has not closed. What the queue's agents still have to get through today. Counted in two
/// parts, each in the words of the partial index that serves it: the open tasks by
/// `idx_tasks_open_queue`, the leased ones by `idx_tasks_lease_expiry` (SQLite, which keeps no
/// statistics, is told so; it would pick `idx_tasks_queue_day` and read the queue's every task).
pub async fn queue_backlog(db: &impl ConnectionTrait, queue: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
    use crate::domain::TaskState;
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    let count = |sql: &mut Sql, states: &str, index: &str| {
        sql.push("(SELECT COUNT(*) FROM tasks ");
        if !is_postgres(backend) {
            sql.push("INDEXED BY ");
            sql.push(index);
        }
        sql.push(" WHERE channel = 'human' AND state ");
        sql.push(states);
        sql.push(" AND queue = ");
        sql.bind(queue);
        sql.push(" AND not_after > ");
        sql.bind(now);
        sql.push(")");
    };
    sql.push("SELECT ");
    count(&mut sql, &format!("IN {}", TaskState::sql_list(TaskState::OPEN)), "idx_tasks_open_queue");
    sql.push(" + ");
    count(&mut sql, &format!("= '{}'", TaskState::Leased.code()), "idx_tasks_lease_expiry");
    let row = db.query_one_raw(sql.statement()).await?;
    let total: i64 = match row {
        Some(row) => get(&row, 0, "tasks", "(backlog)")?,
        None => 0,
    };
    Ok(u64::try_from(total).unwrap_or(0))
}

/// Every stored task of an account, by local date, attempt and id.
pub async fn tasks_for_account(db: &impl ConnectionTrait, account_id: &str) -> Result<Vec<tasks::Model>, StoreError> {
    Ok(tasks::Entity::find()
        .filter(tasks::Column::AccountId.eq(account_id))
        .order_by_asc(tasks::Column::LocalDate)
        .order_by_asc(tasks::Column::Attempt)
        .order_by_asc(tasks::Column::Id)
        .all(db)
        .await?)
}

/// Every stage change of an account, oldest first.
pub async fn stage_history_of(
    db: &impl ConnectionTrait,
    account_id: &str,
) -> Result<Vec<stage_history::Model>, StoreError> {
    Ok(stage_history::Entity::find()
        .filter(stage_history::Column::AccountId.eq(account_id))
        .order_by_asc(stage_history::Column::Id)
        .all(db)
        .await?)
}

pub(super) async fn insert_run(db: &impl ConnectionTrait, run: &NewPlanRun) -> Result<i64, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "INSERT INTO plan_runs (as_of, started_at, finished_at, accounts, tasks, skips, \
         skip_counts, strategies) VALUES ",
    );
    sql.bind_row([
        Value::from(run.as_of),
        Value::from(run.started_at),
        Value::ChronoDateTimeUtc(None),
        Value::from(count_i64(run.accounts)),
        Value::from(count_i64(run.tasks)),
        Value::from(count_i64(run.skips)),
        Value::from(serde_json::to_string(&run.skip_counts).unwrap_or_else(|_| "{}".into())),
        Value::from(strategies_json(run)),
    ]);
    sql.push(" RETURNING id");
    let row = db.query_one_raw(sql.statement()).await?.ok_or_else(|| StoreError::Corrupt {
        table: "plan_runs",
        id: String::new(),
        message: "the insert returned no id".into(),
    })?;
    get(&row, 0, "plan_runs", "new")
}

pub(super) fn count_i64(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

pub(super) fn small_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Inserts tasks in chunks; returns how many rows were inserted.
///
/// With `skip_existing`, rows that already exist are skipped (`ON CONFLICT ... DO NOTHING`).
/// On PostgreSQL, where that clause costs a third more time, the chunks are first written as
/// plain `INSERT`s inside one savepoint, and only when one of them hits an existing row (a
/// re-plan) is the savepoint rolled back and everything written again with the clause: the
/// first plan of a day — the big one — does not pay for conflict checks, and a re-plan fails on
/// its first chunk. One savepoint, not one per chunk: PostgreSQL slows down once a transaction
/// has more than 64 subtransactions.
async fn insert_tasks(
    txn: &DatabaseTransaction,
    run_id: i64,
    created_at: DateTime<Utc>,
    tasks: &[Task],
    skip_existing: bool,
) -> Result<u64, StoreError> {
    let conflict = ON_CONFLICT_NOTHING;
    if !skip_existing {
        return write_tasks(txn, run_id, created_at, tasks, "").await;
    }
    if !is_postgres(txn.get_database_backend()) {
        // SQLite checks the unique index on every insert anyway: the clause costs nothing.
        return write_tasks(txn, run_id, created_at, tasks, conflict).await;
    }
    let savepoint = txn.begin().await?;
    match write_tasks(&savepoint, run_id, created_at, tasks, "").await {
        Ok(inserted) => {
            savepoint.commit().await?;
            Ok(inserted)
        }
        Err(StoreError::Db(error)) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            savepoint.rollback().await?;
            write_tasks(txn, run_id, created_at, tasks, conflict).await
        }
        Err(error) => Err(error),
    }
}

/// Writes tasks in statements below the bind limit (`UNNEST` arrays on PostgreSQL).
async fn write_tasks(
    db: &impl ConnectionTrait,
    run_id: i64,
    created_at: DateTime<Utc>,
    tasks: &[Task],
    conflict: &str,
) -> Result<u64, StoreError> {
    let backend = db.get_database_backend();
    let mut inserted = 0;
    if is_postgres(backend) {
        for chunk in tasks.chunks(UNNEST_ROWS) {
            let statement = unnest_tasks(run_id, created_at, chunk, conflict);
            inserted += db.execute_raw(statement).await?.rows_affected();
        }
    } else {
        let head = format!("INSERT INTO tasks ({TASK_COLUMNS})");
        let shared = [Value::from(run_id), Value::from(created_at)];
        inserted = insert_values(
            db,
            &head,
            &shared,
            TASK_BINDS,
            tasks,
            |task, values| values.extend(task_values(task)),
            conflict,
        )
        .await?;
    }
    Ok(inserted)
}

/// The per-row values of a task, in [`TASK_COLUMNS`] order after the two shared ones.
fn task_values(task: &Task) -> [Value; TASK_BINDS] {
    [
        Value::String(Some(task.account_id.to_string())),
        Value::String(Some(task.borrower_id.to_string())),
        Value::ChronoDate(Some(task.local_date)),
        Value::Int(Some(task.dpd)),
        Value::String(Some(task.stage.to_string())),
        Value::String(Some(task.strategy.to_string())),
        Value::String(Some(task.rule.to_string())),
        Value::String(task.arm.as_deref().map(str::to_string)),
        Value::String(Some(task.channel.code().to_string())),
        Value::String(task.queue.as_deref().map(str::to_string)),
        Value::String(task.template.as_deref().map(str::to_string)),
        Value::Int(Some(small_i32(task.attempt))),
        Value::Int(Some(small_i32(task.calls_allowed))),
        Value::ChronoDateTimeUtc(Some(task.not_before.with_timezone(&Utc))),
        Value::ChronoDateTimeUtc(Some(task.not_after.with_timezone(&Utc))),
        Value::Double(Some(task.priority)),
    ]
}

/// `INSERT ... SELECT ... FROM UNNEST($3::text[], ...)`: one array per column, so a statement
/// carries any number of rows with 18 parameters. Optional texts travel as `''` (arrays of
/// nullable values are not supported by the binder) and come back as NULL through `NULLIF`.
fn unnest_tasks(run_id: i64, created_at: DateTime<Utc>, tasks: &[Task], conflict: &str) -> sea_orm::Statement {
    let n = tasks.len();
    let mut account_id = Vec::with_capacity(n);
    let mut borrower_id = Vec::with_capacity(n);
    let mut local_date = Vec::with_capacity(n);
    let mut dpd = Vec::with_capacity(n);
    let mut stage = Vec::with_capacity(n);
    let mut strategy = Vec::with_capacity(n);
    let mut rule = Vec::with_capacity(n);
    let mut arm = Vec::with_capacity(n);
    let mut channel = Vec::with_capacity(n);
    let mut queue = Vec::with_capacity(n);
    let mut template = Vec::with_capacity(n);
    let mut attempt = Vec::with_capacity(n);
    let mut calls_allowed = Vec::with_capacity(n);
    let mut not_before = Vec::with_capacity(n);
    let mut not_after = Vec::with_capacity(n);
    let mut priority = Vec::with_capacity(n);
    for task in tasks {
        account_id.push(task.account_id.to_string());
        borrower_id.push(task.borrower_id.to_string());
        local_date.push(task.local_date);
        dpd.push(task.dpd);
        stage.push(task.stage.to_string());
        strategy.push(task.strategy.to_string());
        rule.push(task.rule.to_string());
        arm.push(task.arm.as_deref().unwrap_or("").to_string());
        channel.push(task.channel.code().to_string());
        queue.push(task.queue.as_deref().unwrap_or("").to_string());
        template.push(task.template.as_deref().unwrap_or("").to_string());
        attempt.push(small_i32(task.attempt));
        calls_allowed.push(small_i32(task.calls_allowed));
        not_before.push(task.not_before.with_timezone(&Utc));
        not_after.push(task.not_after.with_timezone(&Utc));
        priority.push(task.priority);
    }
    let sql = format!(
        "INSERT INTO tasks ({TASK_COLUMNS}) SELECT $1, $2, u.account_id, u.borrower_id, \
         u.local_date, u.dpd, u.stage, u.strategy, u.rule, NULLIF(u.arm, ''), u.channel, \
         NULLIF(u.queue, ''), NULLIF(u.template, ''), u.attempt, u.calls_allowed, u.not_before, \
         u.not_after, u.priority FROM UNNEST($3::text[], $4::text[], $5::date[], $6::int4[], \
         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
         $14::int4[], $15::int4[], $16::timestamptz[], $17::timestamptz[], $18::float8[]) AS \
         u(account_id, borrower_id, local_date, dpd, stage, strategy, rule, arm, channel, queue, \
         template, attempt, calls_allowed, not_before, not_after, priority){conflict}"
    );
    let values: Vec<Value> = vec![
        Value::from(run_id),
        Value::from(created_at),
        Value::from(account_id),
        Value::from(borrower_id),
        Value::from(local_date),
        Value::from(dpd),
        Value::from(stage),
        Value::from(strategy),
        Value::from(rule),
        Value::from(arm),
        Value::from(channel),
        Value::from(queue),
        Value::from(template),
        Value::from(attempt),
        Value::from(calls_allowed),
        Value::from(not_before),
        Value::from(not_after),
        Value::from(priority),
    ];
    sea_orm::Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// One account whose stage changes.
#[derive(Debug, Clone, PartialEq)]
pub struct StageChange {
    /// The account.
    pub account_id: String,
    /// Its stored stage before (none before its first plan).
    pub from: Option<String>,
    /// The stage the plan puts it in.
    pub to: Arc<str>,
}

/// Compares planned stages with the stored ones, reading the accounts page by page.
async fn stage_changes(
    db: &impl ConnectionTrait,
    stages: &[(String, Arc<str>)],
) -> Result<Vec<StageChange>, StoreError> {
    if stages.is_empty() {
        return Ok(Vec::new());
    }
    let planned: HashMap<&str, &Arc<str>> = stages.iter().map(|(id, stage)| (id.as_str(), stage)).collect();
    let backend = db.get_database_backend();
    let mut changes = Vec::new();
    let mut last = String::new();
    loop {
        let after = std::mem::take(&mut last);
        let page = json_page(
            db,
            "id, stage",
            "id, stage",
            ACCOUNTS_WITH_STAGES,
            |sql| {
                sql.push("id > ");
                sql.bind(after);
            },
            "id",
            PAGE_ROWS,
        )
        .await?;
        let rows: Vec<(Cow<'_, str>, Option<String>)> = unpack(&page, "accounts")?;
        let count = rows.len() as u64;
        if let Some(key) = page_key(backend, rows.iter().map(|row| &row.0)) {
            last = key.to_string();
        }
        for (id, from) in rows {
            if let Some(to) = planned.get(id.as_ref())
                && from.as_deref() != Some(&***to)
            {
                changes.push(StageChange { account_id: id.into_owned(), from, to: Arc::clone(to) });
            }
        }
        if count < PAGE_ROWS {
            break;
        }
    }
    Ok(changes)
}

/// Where a multi-row `INSERT INTO` setting accounts' stages goes (`VALUES (account_id, stage)`
/// rows follow, then [`SET_STAGES_TAIL`]): an account's first stage inserts its row, a later
/// one replaces the stage.
pub(crate) const SET_STAGES_INTO: &str = "account_stages (account_id, stage)";
/// The tail of a [`SET_STAGES_INTO`] statement.
pub(crate) const SET_STAGES_TAIL: &str = "ON CONFLICT (account_id) DO UPDATE SET stage = excluded.stage";
/// The same from two arrays on PostgreSQL (`$1` account ids, `$2` stages).
pub(crate) const SET_STAGES_POSTGRES: &str = "INSERT INTO account_stages (account_id, stage) \
     SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT (account_id) DO UPDATE SET stage = excluded.stage";

/// Writes stage changes: the accounts' new stage (`account_stages`) and one `stage_history` row
/// each. PostgreSQL: one `INSERT ... SELECT FROM UNNEST` of each per chunk; SQLite: multi-row
/// inserts.
async fn apply_stage_changes(
    db: &impl ConnectionTrait,
    run_id: i64,
    at: DateTime<Utc>,
    changes: &[StageChange],
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    if is_postgres(backend) {
        for chunk in changes.chunks(UNNEST_ROWS) {
            let ids: Vec<String> = chunk.iter().map(|change| change.account_id.clone()).collect();
            let from: Vec<String> = chunk.iter().map(|change| change.from.clone().unwrap_or_default()).collect();
            let to: Vec<String> = chunk.iter().map(|change| change.to.to_string()).collect();
            db.execute_raw(sea_orm::Statement::from_sql_and_values(
                DbBackend::Postgres,
                SET_STAGES_POSTGRES,
                [Value::from(ids.clone()), Value::from(to.clone())],
            ))
            .await?;
            db.execute_raw(sea_orm::Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO stage_history (account_id, from_stage, to_stage, at, plan_run_id) \
                 SELECT u.id, NULLIF(u.from_stage, ''), u.to_stage, $4, $5 \
                 FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(id, from_stage, to_stage)",
                [Value::from(ids), Value::from(from), Value::from(to), Value::from(at), Value::from(run_id)],
            ))
            .await?;
        }
        return Ok(());
    }
    insert_values(
        db,
        &format!("INSERT INTO {SET_STAGES_INTO}"),
        &[],
        2,
        changes,
        |change, values| {
            values.push(Value::from(change.account_id.as_str()));
            values.push(Value::from(&*change.to));
        },
        SET_STAGES_TAIL,
    )
    .await?;
    insert_values(
        db,
        "INSERT INTO stage_history (at, plan_run_id, account_id, from_stage, to_stage)",
        &[Value::from(at), Value::from(run_id)],
        3,
        changes,
        |change, values| {
            values.push(Value::from(change.account_id.as_str()));
            values.push(Value::String(change.from.clone()));
            values.push(Value::from(&*change.to));
        },
        "",
    )
    .await?;
    Ok(())
}

/// Tasks of `queue` whose window opens within `day` (any state, any origin: planned work,
/// escalations and callbacks all take agents' time): what the queue's day already holds.
pub async fn queue_day_tasks(
    db: &impl ConnectionTrait,
    queue: &str,
    day: std::ops::Range<DateTime<Utc>>,
) -> Result<u64, StoreError> {
    use sea_orm::PaginatorTrait;
    Ok(tasks::Entity::find()
        .filter(tasks::Column::Queue.eq(queue))
        .filter(tasks::Column::NotBefore.gte(day.start))
        .filter(tasks::Column::NotBefore.lt(day.end))
        .count(db)
        .await?)
}

/// Adds one account's re-planned tasks (a reaction's `replan`) to the latest plan run, skipping
/// any whose `(account_id, local_date, attempt)` exists; returns how many were added (0 when no
/// plan has run yet: the next plan decides the account).
pub async fn add_replanned_tasks(
    txn: &DatabaseTransaction,
    created_at: DateTime<Utc>,
    tasks: &[Task],
) -> Result<u64, StoreError> {
    let run_id = latest_plan_run_id(txn).await?;
    match run_id {
        Some(run_id) if !tasks.is_empty() => insert_tasks(txn, run_id, created_at, tasks, true).await,
        _ => Ok(0),
    }
}

/// The id of the latest plan run, if any ran.
pub async fn latest_plan_run_id(db: &impl ConnectionTrait) -> Result<Option<i64>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT MAX(id) FROM plan_runs");
    match db.query_one_raw(sql.statement()).await? {
        Some(row) => get::<Option<i64>>(&row, 0, "plan_runs", "max"),
        None => Ok(None),
    }
}

#[cfg(test)]
mod writer_tests {
    use super::*;

    /// The plan writer's own connection keeps statement journals in memory and never
    /// checkpoints (the background checkpoints do); the shared pool keeps SQLite's defaults.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_plan_writer_journals_statements_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("book.db").display());
        let db = super::super::connect(&url).await.unwrap();
        let pragma = |db: DatabaseConnection, name: &'static str| async move {
            let statement = sea_orm::Statement::from_string(db.get_database_backend(), format!("PRAGMA {name}"));
            db.query_one_raw(statement).await.unwrap().unwrap().try_get_by_index::<i64>(0).unwrap()
        };
        let writer = writer_connection(&db);
        assert_eq!(pragma(writer.clone(), "temp_store").await, 2, "2 is MEMORY");
        assert_eq!(pragma(writer, "wal_autocheckpoint").await, 0);
        assert_eq!(pragma(db.clone(), "temp_store").await, 0, "0 is the build's default");
        assert_eq!(pragma(db, "wal_autocheckpoint").await, 1_000);
    }
}
