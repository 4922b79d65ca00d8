//! What outcomes write: one reported attempt (with its author and callback time), the promise
//! it made, engine-set account flags, and the promise evaluation's reads and resolutions. Small
//! statements for the caller's transaction; the decisions are `ops::work`'s.

use super::StoreError;
use super::sql::{Sql, get, get_money, in_list_chunk, is_postgres, push_in_list};
use crate::domain::{Channel, Flag, Flags, Money, Outcome};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, Value};
use std::collections::HashMap;

/// One reported attempt to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedAttempt {
    /// The account.
    pub account_id: String,
    /// Its borrower.
    pub borrower_id: String,
    /// The task carried out.
    pub task_id: i64,
    /// The task's channel.
    pub channel: Channel,
    /// Phone or address used.
    pub address: Option<String>,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub outcome: Outcome,
    /// Free text.
    pub note: Option<String>,
    /// When the borrower asked to be called back.
    pub callback_at: Option<DateTime<Utc>>,
    /// `agent:<id>` or `dialler`.
    pub actor: String,
    /// A call the borrower asked for (its task's origin is `callback`).
    pub exempt: bool,
    /// How long it took, in seconds, as reported.
    pub duration_seconds: Option<u32>,
}

/// Inserts a reported attempt; returns its id, or `None` when the same account, channel and
/// instant is already stored (a repeated report).
pub async fn insert_reported_attempt(
    db: &impl ConnectionTrait,
    attempt: &ReportedAttempt,
) -> Result<Option<i64>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "INSERT INTO attempts (account_id, borrower_id, task_id, channel, address, at, outcome, note, \
         callback_at, actor, exempt, duration_seconds) VALUES ",
    );
    sql.bind_row([
        Value::from(attempt.account_id.as_str()),
        Value::from(attempt.borrower_id.as_str()),
        Value::from(attempt.task_id),
        Value::from(attempt.channel.code()),
        Value::String(attempt.address.clone()),
        Value::from(attempt.at),
        Value::from(attempt.outcome.code()),
        Value::String(attempt.note.clone()),
        Value::ChronoDateTimeUtc(attempt.callback_at),
        Value::from(attempt.actor.as_str()),
        Value::from(attempt.exempt),
        Value::Int(attempt.duration_seconds.map(|seconds| i32::try_from(seconds).unwrap_or(i32::MAX))),
    ]);
    sql.push(" ON CONFLICT (account_id, channel, at) DO NOTHING RETURNING id");
    match db.query_one_raw(sql.statement()).await? {
        Some(row) => Ok(Some(get(&row, 0, "attempts", &attempt.account_id)?)),
        None => Ok(None),
    }
}

/// The stored attempt of an account on a channel at an instant: `(id, task id, outcome)`.
pub async fn attempt_at(
    db: &impl ConnectionTrait,
    account_id: &str,
    channel: Channel,
    at: DateTime<Utc>,
) -> Result<Option<(i64, Option<i64>, String)>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT id, task_id, outcome FROM attempts WHERE account_id = ");
    sql.bind(account_id);
    sql.push(" AND channel = ");
    sql.bind(channel.code());
    sql.push(" AND at = ");
    sql.bind(at);
    match db.query_one_raw(sql.statement()).await? {
        Some(row) => Ok(Some((
            get(&row, 0, "attempts", account_id)?,
            get(&row, 1, "attempts", account_id)?,
            get(&row, 2, "attempts", account_id)?,
        ))),
        None => Ok(None),
    }
}

/// One stored attempt of a task, as repeats are recognised by.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskAttempt {
    /// The attempt's id.
    pub id: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Its outcome code.
    pub outcome: String,
    /// The address it used.
    pub address: Option<String>,
    /// Who reported it.
    pub actor: Option<String>,
}

/// The attempts recorded on a task, oldest first.
pub async fn attempts_of_task(db: &impl ConnectionTrait, task_id: i64) -> Result<Vec<TaskAttempt>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT id, at, outcome, address, actor FROM attempts WHERE task_id = ");
    sql.bind(task_id);
    sql.push(" ORDER BY at, id");
    let mut attempts = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let id: i64 = get(&row, 0, "attempts", "?")?;
        let key = id.to_string();
        attempts.push(TaskAttempt {
            id,
            at: get(&row, 1, "attempts", &key)?,
            outcome: get(&row, 2, "attempts", &key)?,
            address: get(&row, 3, "attempts", &key)?,
            actor: get(&row, 4, "attempts", &key)?,
        });
    }
    Ok(attempts)
}

/// Inserts an open promise made by attempt `attempt_id`; returns its id, or `None` when the
/// account already has a promise made at that instant.
pub async fn insert_attempt_promise(
    db: &impl ConnectionTrait,
    account_id: &str,
    amount: Money,
    due_on: NaiveDate,
    made_at: DateTime<Utc>,
    attempt_id: i64,
) -> Result<Option<i64>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("INSERT INTO promises (account_id, amount, due_on, made_at, status, attempt_id) VALUES ");
    sql.bind_row([
        Value::from(account_id),
        Value::from(amount),
        Value::from(due_on),
        Value::from(made_at),
        Value::from("open"),
        Value::from(attempt_id),
    ]);
    sql.push(" ON CONFLICT (account_id, made_at) DO NOTHING RETURNING id");
    match db.query_one_raw(sql.statement()).await? {
        Some(row) => Ok(Some(get(&row, 0, "promises", account_id)?)),
        None => Ok(None),
    }
}

/// An account's flags by owner: the servicing system's (`accounts.flags`, written by imports)
/// and the engine's (`accounts.engine_flags`, written by outcomes and operators). The
/// effective set, the one the planner and the re-checks see, is their union.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountFlags {
    /// Set by the servicing system (CSV `flags`, `POST /v1/accounts` `flags`).
    pub servicing: Flags,
    /// Set by the engine: an outcome (`do_not_call`, `dispute`) or an operator.
    pub engine: Flags,
}

impl AccountFlags {
    /// The effective flags.
    pub fn effective(self) -> Flags {
        self.servicing.union(self.engine)
    }
}

/// An account's flags by owner; `None` when there is no such account. With `lock`, the row is
/// read `FOR UPDATE` on PostgreSQL (on SQLite the caller's immediate transaction serialises
/// writers).
pub async fn account_flags(
    db: &impl ConnectionTrait,
    account_id: &str,
    lock: bool,
) -> Result<Option<AccountFlags>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("SELECT flags, engine_flags FROM accounts WHERE id = ");
    sql.bind(account_id);
    if lock && is_postgres(backend) {
        sql.push(" FOR UPDATE");
    }
    let Some(row) = db.query_one_raw(sql.statement()).await? else {
        return Ok(None);
    };
    let parse = |index: usize| -> Result<Flags, StoreError> {
        let text: String = get(&row, index, "accounts", account_id)?;
        Flags::parse_list(&text).map_err(|error| StoreError::Corrupt {
            table: "accounts",
            id: account_id.to_string(),
            message: error.to_string(),
        })
    };
    Ok(Some(AccountFlags { servicing: parse(0)?, engine: parse(1)? }))
}

/// Replaces an account's engine-set flags (and stamps `updated_at`). The servicing system's
/// flags are not touched.
pub async fn set_engine_flags(
    db: &impl ConnectionTrait,
    account_id: &str,
    engine: Flags,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE accounts SET engine_flags = ");
    sql.bind(engine.to_list());
    sql.push(", updated_at = ");
    sql.bind(now);
    sql.push(" WHERE id = ");
    sql.bind(account_id);
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Adds `flag` to an account's engine-set flags (and stamps `updated_at`); returns whether it
/// was new there. The flag lives apart from the servicing system's, so no import removes it;
/// only an operator lifts it (`ops::flags`). Reads the row `FOR UPDATE` on PostgreSQL; on
/// SQLite the caller's immediate transaction serialises writers.
pub async fn add_account_flag(
    db: &impl ConnectionTrait,
    account_id: &str,
    flag: Flag,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(flags) = account_flags(db, account_id, true).await? else {
        return Ok(false);
    };
    if flags.engine.contains(flag) {
        return Ok(false);
    }
    let mut engine = flags.engine;
    engine.insert(flag);
    set_engine_flags(db, account_id, engine, now).await?;
    Ok(true)
}

/// An open promise as the evaluation reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenPromise {
    /// Promise id.
    pub id: i64,
    /// The account.
    pub account_id: String,
    /// Promised amount.
    pub amount: Money,
    /// Promised day.
    pub due_on: NaiveDate,
    /// When it was made.
    pub made_at: DateTime<Utc>,
    /// The borrower's stored time zones (`;`-joined; the first is the primary zone), empty when
    /// the account or borrower is missing.
    pub timezones: String,
}

/// Open promises with `id > after`, by id, at most `limit`.
pub async fn open_promises_page(
    db: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<Vec<OpenPromise>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(
        "SELECT p.id, p.account_id, p.amount, p.due_on, p.made_at, COALESCE(b.timezones, '') FROM promises p \
         LEFT JOIN accounts a ON a.id = p.account_id LEFT JOIN borrowers b ON b.id = a.borrower_id \
         WHERE p.status = 'open' AND p.id > ",
    );
    sql.bind(after);
    sql.push(" ORDER BY p.id LIMIT ");
    sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let mut promises = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let id: i64 = get(&row, 0, "promises", "?")?;
        let key = id.to_string();
        promises.push(OpenPromise {
            id,
            account_id: get(&row, 1, "promises", &key)?,
            amount: get_money(&row, 2, backend, "promises", &key)?,
            due_on: get(&row, 3, "promises", &key)?,
            made_at: get(&row, 4, "promises", &key)?,
            timezones: get(&row, 5, "promises", &key)?,
        });
    }
    Ok(promises)
}

/// The payments of the accounts among `ids` paid at or after `since`: `(paid_at, amount)` by
/// account, oldest first.
pub async fn payments_since(
    db: &impl ConnectionTrait,
    ids: &[&str],
    since: DateTime<Utc>,
) -> Result<HashMap<String, Vec<(DateTime<Utc>, Money)>>, StoreError> {
    let backend = db.get_database_backend();
    let mut found: HashMap<String, Vec<(DateTime<Utc>, Money)>> = HashMap::new();
    for chunk in ids.chunks(in_list_chunk(backend, 1)) {
        let mut sql = Sql::new(backend);
        sql.push("SELECT account_id, paid_at, amount FROM payments WHERE ");
        push_in_list(&mut sql, "account_id", chunk);
        sql.push(" AND paid_at >= ");
        sql.bind(since);
        sql.push(" ORDER BY paid_at, id");
        for row in db.query_all_raw(sql.statement()).await? {
            let account_id: String = get(&row, 0, "payments", "?")?;
            let paid_at: DateTime<Utc> = get(&row, 1, "payments", &account_id)?;
            let amount = get_money(&row, 2, backend, "payments", &account_id)?;
            found.entry(account_id).or_default().push((paid_at, amount));
        }
    }
    Ok(found)
}

/// Resolves an open promise as `kept` or `broken` at `now`; returns whether it was still open.
pub async fn resolve_promise(
    db: &impl ConnectionTrait,
    id: i64,
    status: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE promises SET status = ");
    sql.bind(status);
    sql.push(", resolved_at = ");
    sql.bind(now);
    sql.push(" WHERE id = ");
    sql.bind(id);
    sql.push(" AND status = 'open'");
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Adds one to an account's `broken_promises` (and stamps `updated_at`).
pub async fn count_broken_promise(
    db: &impl ConnectionTrait,
    account_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE accounts SET broken_promises = broken_promises + 1, updated_at = ");
    sql.bind(now);
    sql.push(" WHERE id = ");
    sql.bind(account_id);
    db.execute_raw(sql.statement()).await?;
    Ok(())
}
