//! The one history loader: recent attempts, calls in flight, open promises, last
//! conversations and the local days that already have planned tasks — for the whole book (the
//! planner) or for a few borrowers (explain and every hand-off's re-check). What it loads is
//! exactly what the contact gate reads.

use super::StoreError;
use super::book::{money_field, money_text, unpack};
use super::sql::{PAGE_ROWS, Sql, is_postgres, json_page, page_key, push_in_list};
use crate::domain::{AttemptRecord, Channel, History, InFlight, Outcome, PromiseRecord, TaskOrigin, TaskState};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::ConnectionTrait;
use serde::Deserialize;
use std::borrow::Cow;
use std::ops::RangeInclusive;

/// Whose history to load.
#[derive(Debug, Clone, Copy)]
pub enum HistoryScope<'a> {
    /// Every borrower of the book (the planner).
    Book,
    /// These borrowers and their accounts (explain, re-checks at hand-offs).
    Borrowers(&'a [&'a str]),
}

/// Loads the history the gate reads, for `scope`:
/// - attempts at or after `attempts_since`, by borrower, oldest first, with the task each
///   carried out and whether it was a call the borrower asked for;
/// - tasks in flight (`dispatched`, `leased`), by borrower, with the address each went to;
/// - the open promise of each account (the latest one when several are open);
/// - the last conversation of each account, over all time (see [`Outcome::is_conversation`]);
/// - the `(account, local date)` pairs that already have tasks of the daily plan, for dates in
///   `planned_dates` (none when `None`).
pub async fn load_history(
    db: &impl ConnectionTrait,
    scope: HistoryScope<'_>,
    attempts_since: DateTime<Utc>,
    planned_dates: Option<RangeInclusive<NaiveDate>>,
) -> Result<History, StoreError> {
    let mut history = History::default();
    if let HistoryScope::Borrowers(ids) = scope
        && ids.is_empty()
    {
        return Ok(history);
    }
    load_attempts(db, scope, attempts_since, &mut history).await?;
    load_in_flight(db, scope, &mut history).await?;
    load_open_promises(db, scope, &mut history).await?;
    load_last_conversations(db, scope, &mut history).await?;
    if let Some(dates) = planned_dates {
        load_planned_days(db, scope, dates, &mut history).await?;
    }
    Ok(history)
}

/// ` AND <column> IN (the scope's borrowers)` when the scope is a few borrowers.
fn of_borrowers(sql: &mut Sql, scope: HistoryScope<'_>, column: &str) {
    if let HistoryScope::Borrowers(ids) = scope {
        sql.push(" AND ");
        push_in_list(sql, column, ids);
    }
}

/// ` AND account_id IN (the accounts of the scope's borrowers)` when the scope is a few borrowers.
fn of_borrower_accounts(sql: &mut Sql, scope: HistoryScope<'_>) {
    if let HistoryScope::Borrowers(ids) = scope {
        sql.push(" AND account_id IN (SELECT id FROM accounts WHERE ");
        push_in_list(sql, "borrower_id", ids);
        sql.push(")");
    }
}

/// One packed `attempts` row.
#[derive(Deserialize)]
struct AttemptRow<'a>(
    i64,
    String,
    String,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    Option<String>,
    #[serde(borrow)] Cow<'a, str>,
    Option<i64>,
    i64,
);

/// A stored instant, as the packed rows carry it (RFC 3339 on both backends).
fn instant(text: &str, table: &'static str, id: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)).map_err(|_| StoreError::Corrupt {
        table,
        id: id.to_string(),
        message: format!("`{text}` is not a timestamp"),
    })
}

async fn load_attempts(
    db: &impl ConnectionTrait,
    scope: HistoryScope<'_>,
    since: DateTime<Utc>,
    history: &mut History,
) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    // Keyset over (at, id): served by the `(at, id)` index, bounded by the window, not the table.
    let mut last: Option<(DateTime<Utc>, i64)> = None;
    loop {
        let after = last;
        let page = json_page(
            db,
            "id, borrower_id, account_id, at, channel, address, outcome, task_id, exempt",
            "id, borrower_id, account_id, at, channel, address, outcome, task_id, \
             CASE WHEN exempt THEN 1 ELSE 0 END",
            "attempts",
            |sql| {
                sql.push("at >= ");
                sql.bind(since);
                of_borrowers(sql, scope, "borrower_id");
                if let Some((at, id)) = after {
                    sql.push(" AND (at > ");
                    let at_number = sql.bind(at);
                    sql.push(" OR (at = ");
                    sql.reuse(at_number);
                    sql.push(" AND id > ");
                    sql.bind(id);
                    sql.push("))");
                }
            },
            "at, id",
            PAGE_ROWS,
        )
        .await?;
        let rows: Vec<AttemptRow<'_>> = unpack(&page, "attempts")?;
        let count = rows.len() as u64;
        for AttemptRow(id, borrower_id, account_id, at, channel, address, outcome, task_id, exempt) in rows {
            let key = id.to_string();
            let corrupt = |message: String| StoreError::Corrupt { table: "attempts", id: key.clone(), message };
            let at = instant(&at, "attempts", &key)?;
            let record = AttemptRecord {
                account_id,
                at,
                channel: channel.parse::<Channel>().map_err(|error| corrupt(error.to_string()))?,
                address,
                outcome: outcome.parse::<Outcome>().map_err(|error| corrupt(error.to_string()))?,
                task_id,
                exempt: exempt != 0,
            };
            history.attempts_by_borrower.entry(borrower_id).or_default().push(record);
            // PostgreSQL pages are ordered (the last row is the key); SQLite's: take the greatest.
            if is_postgres(backend) || last.is_none_or(|previous| (at, id) > previous) {
                last = Some((at, id));
            }
        }
        if count < PAGE_ROWS {
            break;
        }
    }
    for attempts in history.attempts_by_borrower.values_mut() {
        attempts.sort_by_key(|attempt| attempt.at);
    }
    Ok(())
}

/// One packed in-flight `tasks` row.
#[derive(Deserialize)]
struct InFlightRow<'a>(i64, String, String, #[serde(borrow)] Cow<'a, str>, Option<String>, i64);

async fn load_in_flight(
    db: &impl ConnectionTrait,
    scope: HistoryScope<'_>,
    history: &mut History,
) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    let states = TaskState::sql_list(TaskState::IN_FLIGHT);
    let mut last = 0i64;
    loop {
        let after = last;
        let page = json_page(
            db,
            "id, account_id, borrower_id, channel, address, calls_allowed",
            "id, account_id, borrower_id, channel, address, calls_allowed",
            "tasks",
            |sql| {
                sql.push("state IN ");
                sql.push(&states);
                sql.push(" AND id > ");
                sql.bind(after);
                of_borrowers(sql, scope, "borrower_id");
            },
            "id",
            PAGE_ROWS,
        )
        .await?;
        let rows: Vec<InFlightRow<'_>> = unpack(&page, "tasks")?;
        let count = rows.len() as u64;
        if let Some(key) = page_key(backend, rows.iter().map(|row| &row.0)) {
            last = *key;
        }
        for InFlightRow(id, account_id, borrower_id, channel, address, calls_allowed) in rows {
            let channel = channel.parse::<Channel>().map_err(|error| StoreError::Corrupt {
                table: "tasks",
                id: id.to_string(),
                message: error.to_string(),
            })?;
            let task = InFlight {
                task_id: id,
                account_id,
                channel,
                address,
                calls_allowed: u32::try_from(calls_allowed).unwrap_or(0),
            };
            history.record_in_flight(&borrower_id, task);
        }
        if count < PAGE_ROWS {
            break;
        }
    }
    Ok(())
}

/// One packed `promises` row.
#[derive(Deserialize)]
struct PromiseRow<'a>(
    i64,
    String,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
);

async fn load_open_promises(
    db: &impl ConnectionTrait,
    scope: HistoryScope<'_>,
    history: &mut History,
) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    let fields = format!("id, account_id, {}, due_on, made_at", money_field(backend, "amount"));
    let mut last = 0i64;
    loop {
        let after = last;
        let page = json_page(
            db,
            "id, account_id, amount, due_on, made_at",
            &fields,
            "promises",
            |sql| {
                sql.push("status = 'open' AND id > ");
                sql.bind(after);
                of_borrower_accounts(sql, scope);
            },
            "id",
            PAGE_ROWS,
        )
        .await?;
        let rows: Vec<PromiseRow<'_>> = unpack(&page, "promises")?;
        let count = rows.len() as u64;
        if let Some(key) = page_key(backend, rows.iter().map(|row| &row.0)) {
            last = *key;
        }
        for PromiseRow(id, account_id, amount, due_on, made_at) in rows {
            let key = id.to_string();
            let corrupt = |message: String| StoreError::Corrupt { table: "promises", id: key.clone(), message };
            let promise = PromiseRecord {
                amount: money_text(&amount).ok_or_else(|| corrupt(format!("amount `{amount}`")))?,
                due_on: NaiveDate::parse_from_str(&due_on, "%Y-%m-%d")
                    .map_err(|_| corrupt(format!("due_on `{due_on}`")))?,
                made_at: instant(&made_at, "promises", &key)?,
            };
            match history.open_promises.get(&account_id) {
                Some(existing) if existing.made_at >= promise.made_at => {}
                _ => {
                    history.open_promises.insert(account_id, promise);
                }
            }
        }
        if count < PAGE_ROWS {
            break;
        }
    }
    Ok(())
}

/// The conversation outcome codes, quoted for an SQL `IN (...)` list.
fn conversation_codes() -> String {
    Outcome::ALL
        .iter()
        .filter(|outcome| outcome.is_conversation())
        .map(|outcome| format!("'{}'", outcome.code()))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn load_last_conversations(
    db: &impl ConnectionTrait,
    scope: HistoryScope<'_>,
    history: &mut History,
) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    let codes = conversation_codes();
    let mut last = String::new();
    loop {
        let after = std::mem::take(&mut last);
        let page = json_page(
            db,
            "account_id, MAX(at) AS at",
            "account_id, at",
            "attempts",
            |sql| {
                sql.push("outcome IN (");
                sql.push(&codes);
                sql.push(") AND account_id > ");
                sql.bind(after);
                of_borrower_accounts(sql, scope);
                sql.push(" GROUP BY account_id");
            },
            "account_id",
            PAGE_ROWS,
        )
        .await?;
        let rows: Vec<(String, Cow<'_, str>)> = unpack(&page, "attempts")?;
        let count = rows.len() as u64;
        if let Some(key) = page_key(backend, rows.iter().map(|row| &row.0)) {
            last.clone_from(key);
        }
        for (account_id, at) in rows {
            let at = instant(&at, "attempts", &account_id)?;
            history.last_conversation.insert(account_id, at);
        }
        if count < PAGE_ROWS {
            break;
        }
    }
    Ok(())
}

async fn load_planned_days(
    db: &impl ConnectionTrait,
    scope: HistoryScope<'_>,
    dates: RangeInclusive<NaiveDate>,
    history: &mut History,
) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    let mut last = 0i64;
    loop {
        let after = last;
        let page = json_page(
            db,
            "id, account_id, local_date",
            "id, account_id, local_date",
            "tasks",
            |sql| {
                sql.push("local_date >= ");
                sql.bind(*dates.start());
                sql.push(" AND local_date <= ");
                sql.bind(*dates.end());
                sql.push(" AND origin = '");
                sql.push(TaskOrigin::Plan.code());
                sql.push("' AND id > ");
                sql.bind(after);
                of_borrowers(sql, scope, "borrower_id");
            },
            "id",
            PAGE_ROWS,
        )
        .await?;
        let rows: Vec<(i64, String, Cow<'_, str>)> = unpack(&page, "tasks")?;
        let count = rows.len() as u64;
        if let Some(key) = page_key(backend, rows.iter().map(|row| &row.0)) {
            last = *key;
        }
        for (id, account_id, date) in rows {
            let date = NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(|_| StoreError::Corrupt {
                table: "tasks",
                id: id.to_string(),
                message: format!("local_date `{date}`"),
            })?;
            history.planned_days.insert((account_id, date));
        }
        if count < PAGE_ROWS {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_codes_are_the_domain_ones() {
        assert_eq!(conversation_codes(), "'rpc', 'promise', 'refused', 'dispute', 'callback', 'do_not_call'");
    }
}
