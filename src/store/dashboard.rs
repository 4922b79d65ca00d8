//! The reads behind the manager dashboard (`crate::dashboard`) that the KPI report
//! (`store::report`) does not make: accounts and balance by stage now, payments by instant,
//! promises falling due, the latest broken promises, the local hours of planned tasks, agents'
//! attempts by hour, the outbox's backlog and dead letters, the last plan runs and the latest
//! contact model's curves.
//!
//! Each is one statement (or one per page of rows), grouped or packed by the database, never
//! one query per row. Counts are grouped in SQL; money is read exactly ([`get_money`],
//! [`money_text`]) and summed by the caller with `rust_decimal`, or summed exactly by the
//! database ([`exact_money_sum`]: on SQLite, where money is a REAL, as integer ten-thousandths,
//! never as floats). No KPI and no clock here: periods and instants come in.

use super::StoreError;
use super::book::{ACCOUNTS_WITH_STAGES, money_field, money_text, unpack};
use super::report::{count, push_period};
use super::sql::{Sql, exact_money_sum, get, get_money, get_money_sum, is_postgres};
use crate::domain::{DeliveryState, Money, TaskOrigin};
use crate::learn::ModelCurves;
use crate::report::{Period, UNKNOWN_CURRENCY};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sea_orm::ConnectionTrait;
use std::collections::BTreeMap;

/// Rows read per packed page by the paged reads here.
const PAGE_ROWS: i64 = 50_000;

/// The UTC hour of a timestamp column as text `YYYY-MM-DDTHH` (SQLite keeps RFC 3339 text;
/// PostgreSQL a `timestamptz`).
fn utc_hour(backend: sea_orm::DbBackend, column: &str) -> String {
    if is_postgres(backend) {
        format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')")
    } else {
        format!("substr({column}, 1, 13)")
    }
}

/// Reads a `YYYY-MM-DDTHH` hour (see [`utc_hour`]) back as the instant it starts.
fn parse_hour(text: &str, table: &'static str) -> Result<DateTime<Utc>, StoreError> {
    let normal = text.replace(' ', "T");
    NaiveDateTime::parse_from_str(&format!("{normal}:00:00"), "%Y-%m-%dT%H:%M:%S")
        .map(|at| at.and_utc())
        .map_err(|error| StoreError::Corrupt { table, id: text.to_string(), message: format!("hour: {error}") })
}

fn parse_instant(text: &str, table: &'static str, id: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)).map_err(|error| StoreError::Corrupt {
        table,
        id: id.to_string(),
        message: format!("`{text}`: {error}"),
    })
}

/// The accounts of one product, stage and currency now, with their balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageBalance {
    /// The product.
    pub product: String,
    /// The stage the last plan run put the accounts in (`accounts.stage`); `None`: in no stage
    /// (never planned into one, or paid up since).
    pub stage: Option<String>,
    /// ISO 4217 code.
    pub currency: String,
    /// How many accounts.
    pub accounts: u64,
    /// Their balance now, exact.
    pub balance: Money,
}

/// Every account counted by product, stage and currency, with its balance summed exactly in one
/// grouped statement ([`exact_money_sum`]): what is held follows the groups, not the accounts.
pub async fn stage_balances(db: &impl ConnectionTrait) -> Result<Vec<StageBalance>, StoreError> {
    let backend = db.get_database_backend();
    let mut totals: BTreeMap<(String, Option<String>, String), (u64, Money)> = BTreeMap::new();
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT product, stage, currency, COUNT(*), {} FROM {ACCOUNTS_WITH_STAGES} GROUP BY product, stage, currency",
        exact_money_sum(backend, "balance")
    ));
    for row in db.query_all_raw(sql.statement()).await? {
        let product: String = get(&row, 0, "accounts", "product")?;
        let stage: Option<String> = get(&row, 1, "accounts", &product)?;
        let currency: String = get(&row, 2, "accounts", &product)?;
        let accounts = count(&row, 3, "accounts")?;
        let balance = get_money_sum(&row, 4, backend, "accounts", &product)?;
        totals.insert((product, stage, currency), (accounts, balance));
    }
    Ok(totals
        .into_iter()
        .map(|((product, stage, currency), (accounts, balance))| StageBalance {
            product,
            stage,
            currency,
            accounts,
            balance: balance.normalize(),
        })
        .collect())
}

/// One payment: when, how much, in which currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentAt {
    /// When it was paid.
    pub paid_at: DateTime<Utc>,
    /// The amount, exact.
    pub amount: Money,
    /// The account's currency.
    pub currency: String,
}

/// The payments received in the period (`paid_at`), read in packed pages by id.
pub async fn payments_at(db: &impl ConnectionTrait, period: Period) -> Result<Vec<PaymentAt>, StoreError> {
    let backend = db.get_database_backend();
    let pack = if is_postgres(backend) {
        "COALESCE(json_agg(json_build_array(id, paid_at, amount, currency) ORDER BY id)::text, '[]')"
    } else {
        "json_group_array(json_array(id, paid_at, amount, currency))"
    };
    let (mut after, mut payments) = (0i64, Vec::new());
    loop {
        let mut sql = Sql::new(backend);
        sql.push(&format!(
            "SELECT {pack} FROM (SELECT p.id AS id, p.paid_at AS paid_at, {} AS amount, \
             COALESCE(acc.currency, '{UNKNOWN_CURRENCY}') AS currency FROM payments p \
             LEFT JOIN accounts acc ON acc.id = p.account_id WHERE p.id > ",
            money_field(backend, "p.amount")
        ));
        sql.bind(after);
        sql.push(" AND ");
        push_period(&mut sql, "p.paid_at", period);
        sql.push(" ORDER BY p.id LIMIT ");
        sql.bind(PAGE_ROWS);
        sql.push(") AS page");
        let text = match db.query_one_raw(sql.statement()).await? {
            Some(row) => get::<Option<String>>(&row, 0, "payments", "(page)")?.unwrap_or_else(|| "[]".into()),
            None => "[]".into(),
        };
        let rows: Vec<(i64, String, String, String)> = unpack(&text, "payments")?;
        let read = rows.len();
        for (id, paid_at, amount, currency) in rows {
            let key = id.to_string();
            let amount = money_text(&amount).ok_or_else(|| StoreError::Corrupt {
                table: "payments",
                id: key.clone(),
                message: format!("amount `{amount}`"),
            })?;
            payments.push(PaymentAt { paid_at: parse_instant(&paid_at, "payments", &key)?, amount, currency });
            after = after.max(id);
        }
        if read < PAGE_ROWS as usize {
            return Ok(payments);
        }
    }
}

/// Promises falling due on a range of days, by their status now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromisesDue {
    /// Promises whose `due_on` is in the range.
    pub due: u64,
    /// Of those, kept.
    pub kept: u64,
    /// Of those, broken.
    pub broken: u64,
    /// Of those, still open.
    pub open: u64,
}

/// The promises whose due date is between `first` and `last` (both included), counted by status.
pub async fn promises_due(
    db: &impl ConnectionTrait,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<PromisesDue, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT status, COUNT(*) FROM promises WHERE due_on >= ");
    sql.bind(first);
    sql.push(" AND due_on <= ");
    sql.bind(last);
    sql.push(" GROUP BY status");
    let mut due = PromisesDue::default();
    for row in db.query_all_raw(sql.statement()).await? {
        let status: String = get(&row, 0, "promises", "status")?;
        let count = count(&row, 1, "promises")?;
        due.due += count;
        match status.as_str() {
            "kept" => due.kept += count,
            "broken" => due.broken += count,
            _ => due.open += count,
        }
    }
    Ok(due)
}

/// A promise broken in the period, with whose it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenPromise {
    /// The account.
    pub account_id: String,
    /// The borrower's name (empty when the account is not stored).
    pub borrower_name: String,
    /// The amount promised, exact.
    pub amount: Money,
    /// The account's currency.
    pub currency: String,
    /// When it was due.
    pub due_on: NaiveDate,
    /// When it was found broken.
    pub resolved_at: DateTime<Utc>,
}

/// The `limit` promises found broken last in the period, latest first.
pub async fn latest_broken_promises(
    db: &impl ConnectionTrait,
    period: Period,
    limit: u64,
) -> Result<Vec<BrokenPromise>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT p.account_id, COALESCE(b.name, ''), p.amount, COALESCE(acc.currency, '{UNKNOWN_CURRENCY}'), \
         p.due_on, p.resolved_at FROM promises p LEFT JOIN accounts acc ON acc.id = p.account_id \
         LEFT JOIN borrowers b ON b.id = acc.borrower_id WHERE p.status = 'broken' AND "
    ));
    push_period(&mut sql, "p.resolved_at", period);
    sql.push(" ORDER BY p.resolved_at DESC, p.id DESC LIMIT ");
    sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let mut promises = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let account_id: String = get(&row, 0, "promises", "account_id")?;
        promises.push(BrokenPromise {
            borrower_name: get(&row, 1, "promises", &account_id)?,
            amount: get_money(&row, 2, backend, "promises", &account_id)?,
            currency: get(&row, 3, "promises", &account_id)?,
            due_on: get(&row, 4, "promises", &account_id)?,
            resolved_at: get(&row, 5, "promises", &account_id)?,
            account_id,
        });
    }
    Ok(promises)
}

/// Planned tasks of one channel whose window opens in one local hour of their borrowers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskHour {
    /// `sms`, `email`, `robot` or `human`.
    pub channel: String,
    /// The local hour (0–23) of `not_before` in the borrower's primary zone (the zone the
    /// contact model's hours are in), taken at the start of its UTC hour.
    pub hour: u32,
    /// How many tasks.
    pub tasks: u64,
}

/// The tasks the daily plan made (`origin = 'plan'`) whose window opens (`not_before`) in the
/// period, by channel and local hour: one `GROUP BY` by channel, borrower zones and UTC hour,
/// each group's UTC hour then read in its primary zone. By channel, then hour.
pub async fn planned_task_hours(db: &impl ConnectionTrait, period: Period) -> Result<Vec<TaskHour>, StoreError> {
    use chrono::Timelike as _;
    let backend = db.get_database_backend();
    let hour = utc_hour(backend, "t.not_before");
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT t.channel, COALESCE(b.timezones, ''), {hour}, COUNT(*) FROM tasks t \
         LEFT JOIN borrowers b ON b.id = t.borrower_id WHERE t.origin = '{}' AND ",
        TaskOrigin::Plan.code()
    ));
    push_period(&mut sql, "t.not_before", period);
    sql.push(&format!(" GROUP BY t.channel, COALESCE(b.timezones, ''), {hour}"));
    let mut zones: std::collections::HashMap<String, chrono_tz::Tz> = std::collections::HashMap::new();
    let mut counts: BTreeMap<(String, u32), u64> = BTreeMap::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let text: String = get(&row, 2, "tasks", "hour")?;
        let channel: String = get(&row, 0, "tasks", &text)?;
        let timezones: String = get(&row, 1, "tasks", &text)?;
        let zone = *zones.entry(timezones).or_insert_with_key(|timezones| super::models::primary_zone(timezones));
        let local = parse_hour(&text, "tasks")?.with_timezone(&zone).hour();
        *counts.entry((channel, local)).or_default() += count(&row, 3, "tasks")?;
    }
    Ok(counts.into_iter().map(|((channel, hour), tasks)| TaskHour { channel, hour, tasks }).collect())
}

/// An agent's attempts with one outcome in one UTC hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentHour {
    /// The agent id (the attempt's actor `agent:<id>`, without the prefix).
    pub agent: String,
    /// The UTC hour the attempts were made in.
    pub hour: DateTime<Utc>,
    /// The outcome code.
    pub outcome: String,
    /// How many.
    pub attempts: u64,
}

/// The attempts agents reported in the period (`actor` `agent:<id>`), counted by agent, UTC
/// hour and outcome (one `GROUP BY`, through the `at` index).
pub async fn agent_hours(db: &impl ConnectionTrait, period: Period) -> Result<Vec<AgentHour>, StoreError> {
    let backend = db.get_database_backend();
    let hour = utc_hour(backend, "a.at");
    let mut sql = Sql::new(backend);
    sql.push(&format!("SELECT a.actor, {hour}, a.outcome, COUNT(*) FROM attempts a WHERE "));
    push_period(&mut sql, "a.at", period);
    sql.push(&format!(" AND a.actor LIKE 'agent:%' GROUP BY a.actor, {hour}, a.outcome"));
    let mut hours = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let actor: String = get(&row, 0, "attempts", "actor")?;
        let text: String = get(&row, 1, "attempts", &actor)?;
        hours.push(AgentHour {
            agent: actor.strip_prefix("agent:").unwrap_or(&actor).to_string(),
            hour: parse_hour(&text, "attempts")?,
            outcome: get(&row, 2, "attempts", &actor)?,
            attempts: count(&row, 3, "attempts")?,
        });
    }
    Ok(hours)
}

/// Messages of one endpoint waiting in the outbox, or dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxCount {
    /// The endpoint's name.
    pub endpoint: String,
    /// `pending` or `dead`.
    pub state: String,
    /// Whether they were tried at least once (a pending one: retrying).
    pub tried: bool,
    /// How many.
    pub count: u64,
    /// The earliest `next_attempt_at` among them.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The pending and dead messages of the outbox, by endpoint, state and whether tried (through
/// the `(state, next_attempt_at)` index: delivered messages are not visited).
pub async fn outbox_counts(db: &impl ConnectionTrait) -> Result<Vec<OutboxCount>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT endpoint, state, CASE WHEN tries > 0 THEN 1 ELSE 0 END AS tried, COUNT(*), MIN(next_attempt_at) \
         FROM deliveries WHERE state IN {} GROUP BY endpoint, state, CASE WHEN tries > 0 THEN 1 ELSE 0 END \
         ORDER BY endpoint, state",
        DeliveryState::sql_list(&[DeliveryState::Pending, DeliveryState::Dead])
    ));
    let mut counts = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let endpoint: String = get(&row, 0, "deliveries", "endpoint")?;
        let tried: i32 = get(&row, 2, "deliveries", &endpoint)?;
        counts.push(OutboxCount {
            state: get(&row, 1, "deliveries", &endpoint)?,
            tried: tried != 0,
            count: count(&row, 3, "deliveries")?,
            next_attempt_at: get(&row, 4, "deliveries", &endpoint)?,
            endpoint,
        });
    }
    Ok(counts)
}

/// A dead letter: a message whose retries ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Row id (what `POST /v1/deliveries/replay` takes).
    pub id: i64,
    /// The endpoint.
    pub endpoint: String,
    /// `task.ready` or `task.cancelled`.
    pub event: String,
    /// The task.
    pub task_id: Option<i64>,
    /// Tries made.
    pub tries: i32,
    /// The last HTTP status, if any answered.
    pub last_status: Option<i32>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
}

/// The `limit` latest dead letters, newest first (their bodies are not read).
pub async fn latest_dead_letters(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<DeadLetter>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT id, endpoint, event, task_id, tries, last_status, last_error, created_at FROM deliveries \
         WHERE state = '{}' ORDER BY id DESC LIMIT ",
        DeliveryState::Dead.code()
    ));
    sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let mut letters = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let id: i64 = get(&row, 0, "deliveries", "id")?;
        let key = id.to_string();
        letters.push(DeadLetter {
            id,
            endpoint: get(&row, 1, "deliveries", &key)?,
            event: get(&row, 2, "deliveries", &key)?,
            task_id: get(&row, 3, "deliveries", &key)?,
            tries: get(&row, 4, "deliveries", &key)?,
            last_status: get(&row, 5, "deliveries", &key)?,
            last_error: get(&row, 6, "deliveries", &key)?,
            created_at: get(&row, 7, "deliveries", &key)?,
        });
    }
    Ok(letters)
}

/// The `limit` latest plan runs, newest first.
pub async fn latest_plan_runs(
    db: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<entity::plan_runs::Model>, StoreError> {
    use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
    Ok(entity::plan_runs::Entity::find().order_by_desc(entity::plan_runs::Column::Id).limit(limit).all(db).await?)
}

/// The latest stored contact model's segment curves, with its version (row id) and when it was
/// stored; `None` before the first training. Reads the stored JSON without its per-borrower
/// factors ([`ModelCurves`]).
pub async fn latest_model_curves(
    db: &impl ConnectionTrait,
) -> Result<Option<(i64, DateTime<Utc>, ModelCurves)>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT id, created_at, body FROM contact_models ORDER BY id DESC LIMIT 1");
    let Some(row) = db.query_one_raw(sql.statement()).await? else {
        return Ok(None);
    };
    let id: i64 = get(&row, 0, "contact_models", "id")?;
    let key = id.to_string();
    let created_at: DateTime<Utc> = get(&row, 1, "contact_models", &key)?;
    let body: String = get(&row, 2, "contact_models", &key)?;
    let curves: ModelCurves = serde_json::from_str(&body).map_err(|error| StoreError::Corrupt {
        table: "contact_models",
        id: key,
        message: format!("the body is not a contact model: {error}"),
    })?;
    Ok(Some((id, created_at, curves)))
}
