//! The shards of a sharded plan run (`plan_run_shards`): cutting the book into ranges of
//! consecutive account ids when the run starts, claiming one for a planner (`SKIP LOCKED` on
//! PostgreSQL, so planners of several instances never wait for each other's claims), taking over
//! one whose heartbeat stopped, and finishing the run once every shard is done. It neither plans
//! nor saves tasks: [`PlanRunWriter::for_shard`](super::PlanRunWriter::for_shard) saves a shard's
//! parts, each moving the shard's `resume_after`, counts and heartbeat.

use super::StoreError;
use super::plans::{NewPlanRun, RunCounts, finish_run, insert_run, stored_counts};
use super::sql::{Sql, get, is_postgres};
use crate::domain::ShardState;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait, Value};

/// How long a claimed shard stays its planner's without a heartbeat (every saved part is one):
/// after that, another planner takes it over and continues after its `resume_after`. A page is
/// read, planned and saved in about a second; this leaves room for a store that stalls.
pub const SHARD_HEARTBEAT_TTL: Duration = Duration::minutes(2);

/// A shard a planner claimed: the range of account ids it covers and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardClaim {
    /// The run.
    pub run_id: i64,
    /// The shard's number (0 first).
    pub shard: i32,
    /// Its accounts come after this id (`""`: the book's first).
    pub after: String,
    /// ... up to and including this one (`None`: to the book's end).
    pub through: Option<String>,
    /// The last account id a planner saved of it (a shard taken over continues after it).
    pub resume_after: Option<String>,
    /// What its saved parts decided.
    pub counts: RunCounts,
}

/// Inserts a sharded run's row (`finished_at` NULL) and its shards in one transaction: the
/// book's account ids cut every `shard_accounts` ids (the last shard open-ended: it also takes
/// accounts imported meanwhile), so shards follow the pages' order. `admission` is the capacity-limited queues' admission the run
/// decided (see `plan::Admission::to_stored`). Returns the run's id and its number of shards.
pub async fn begin_sharded_run(
    db: &DatabaseConnection,
    run: &NewPlanRun,
    shard_accounts: u64,
    admission: Option<String>,
) -> Result<(i64, i32), StoreError> {
    let txn = db.begin().await?;
    let run_id = insert_run(&txn, run).await?;
    let mut after = String::new();
    let mut shard = 0i32;
    loop {
        let mut through = nth_account_after(&txn, &after, shard_accounts.max(1)).await?;
        if let Some(last) = &through
            && nth_account_after(&txn, last, 1).await?.is_none()
        {
            // The book ends with this shard: it is the last, open-ended one.
            through = None;
        }
        let mut sql = Sql::new(txn.get_database_backend());
        sql.push("INSERT INTO plan_run_shards (run_id, shard, after_id, through_id, state) VALUES ");
        sql.bind_row([
            Value::from(run_id),
            Value::from(shard),
            Value::from(after.clone()),
            Value::from(through.clone()),
            Value::from(ShardState::Open.code()),
        ]);
        txn.execute_raw(sql.statement()).await?;
        shard += 1;
        match through {
            Some(id) => after = id,
            None => break,
        }
    }
    let mut sql = Sql::new(txn.get_database_backend());
    sql.push("UPDATE plan_runs SET shards = ");
    sql.bind(shard);
    sql.push(", admission = ");
    sql.bind(admission);
    sql.push(" WHERE id = ");
    sql.bind(run_id);
    txn.execute_raw(sql.statement()).await?;
    txn.commit().await?;
    Ok((run_id, shard))
}

/// The `n`-th account id after `after` in the book's order, `None` when fewer follow it: one
/// walk of the primary key's index.
async fn nth_account_after(db: &impl ConnectionTrait, after: &str, n: u64) -> Result<Option<String>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT id FROM accounts WHERE id > ");
    sql.bind(after.to_string());
    sql.push(" ORDER BY id LIMIT 1 OFFSET ");
    sql.bind(i64::try_from(n - 1).unwrap_or(i64::MAX));
    match db.query_one_raw(sql.statement()).await? {
        Some(row) => Ok(Some(get(&row, 0, "accounts", "(shard boundary)")?)),
        None => Ok(None),
    }
}

/// Claims the run's first shard that nobody plans: an `open` one, or a `claimed` one whose
/// heartbeat is older than [`SHARD_HEARTBEAT_TTL`] at `now` (its planner died or hung; the
/// claim takes it over, and that planner's next part is refused). `None` when there is none.
pub async fn claim_shard(
    db: &impl ConnectionTrait,
    run_id: i64,
    holder: &str,
    now: DateTime<Utc>,
) -> Result<Option<ShardClaim>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("UPDATE plan_run_shards SET state = ");
    sql.bind(ShardState::Claimed.code());
    sql.push(", holder = ");
    sql.bind(holder.to_string());
    sql.push(", heartbeat_at = ");
    sql.bind(now);
    sql.push(" WHERE run_id = ");
    sql.bind(run_id);
    sql.push(" AND shard = (SELECT shard FROM plan_run_shards WHERE run_id = ");
    sql.bind(run_id);
    sql.push(" AND (state = ");
    sql.bind(ShardState::Open.code());
    sql.push(" OR (state = ");
    sql.bind(ShardState::Claimed.code());
    sql.push(" AND heartbeat_at < ");
    sql.bind(now - SHARD_HEARTBEAT_TTL);
    sql.push(")) ORDER BY shard LIMIT 1");
    if is_postgres(backend) {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    sql.push(") RETURNING shard, after_id, through_id, resume_after, accounts, tasks, skips, skip_counts");
    let Some(row) = db.query_one_raw(sql.statement()).await? else {
        return Ok(None);
    };
    let shard: i32 = get(&row, 0, "plan_run_shards", "(claim)")?;
    let id = format!("{run_id}/{shard}");
    let count = |index| get::<i64>(&row, index, "plan_run_shards", &id);
    let skip_counts: String = get(&row, 7, "plan_run_shards", &id)?;
    let counts = stored_counts("plan_run_shards", &id, count(4)?, count(5)?, count(6)?, &skip_counts)?;
    Ok(Some(ShardClaim {
        run_id,
        shard,
        after: get(&row, 1, "plan_run_shards", &id)?,
        through: get(&row, 2, "plan_run_shards", &id)?,
        resume_after: get(&row, 3, "plan_run_shards", &id)?,
        counts,
    }))
}

/// Shards of the run not done yet (planned now by someone, or open).
pub async fn shards_not_done(db: &impl ConnectionTrait, run_id: i64) -> Result<u64, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT COUNT(*) FROM plan_run_shards WHERE run_id = ");
    sql.bind(run_id);
    sql.push(" AND state <> ");
    sql.bind(ShardState::Done.code());
    let row = db.query_one_raw(sql.statement()).await?;
    let count: i64 = match row {
        Some(row) => get(&row, 0, "plan_run_shards", "(count)")?,
        None => 0,
    };
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Finishes a sharded run once every shard is done: its counts become the sum of its shards'
/// and `finished_at` is set. Returns whether the run is finished (by this call or an earlier
/// one); `false` while a shard is not done. Every planner calls it after its last shard: the
/// one whose shard was the last to be committed finds them all done.
pub async fn finish_sharded_run(
    db: &impl ConnectionTrait,
    run_id: i64,
    finished_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT state, accounts, tasks, skips, skip_counts FROM plan_run_shards WHERE run_id = ");
    sql.bind(run_id);
    let mut total = RunCounts::default();
    for row in db.query_all_raw(sql.statement()).await? {
        let id = run_id.to_string();
        let state: String = get(&row, 0, "plan_run_shards", &id)?;
        if state != ShardState::Done.code() {
            return Ok(false);
        }
        let count = |index| get::<i64>(&row, index, "plan_run_shards", &id);
        let skip_counts: String = get(&row, 4, "plan_run_shards", &id)?;
        total.add(&stored_counts("plan_run_shards", &id, count(1)?, count(2)?, count(3)?, &skip_counts)?);
    }
    finish_run(db, run_id, &total, finished_at).await?;
    Ok(true)
}
