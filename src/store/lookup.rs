//! Small reads of a few accounts at a time, for the use cases that re-check one task or one
//! report against the latest state: the accounts, their borrowers with contact points, recent
//! attempts, open promises and last conversations. Bulk loading for the planner is elsewhere
//! (`book`, `history`); nothing here writes.

use super::StoreError;
use super::book::{Pairs, parse_kind, split_list};
use super::sql::{Sql, get, get_money, in_list_chunk, push_in_list};
use crate::domain::{
    Account, AttemptRecord, Borrower, Channel, ContactPoint, Flags, Outcome, PromiseRecord, parse_timezone,
};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, QueryResult};
use std::collections::HashMap;

/// A stored attempt with the task it carried out.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAttempt {
    /// What the caps and cool-downs read.
    pub record: AttemptRecord,
    /// The task, when the attempt carried one out.
    pub task_id: Option<i64>,
}

/// Runs `head <column IN list> tail` for every chunk of `keys` and hands each row to `each`.
async fn for_each_row(
    db: &impl ConnectionTrait,
    head: &str,
    column: &str,
    keys: &[&str],
    tail: impl Fn(&mut Sql),
    mut each: impl FnMut(&QueryResult) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    for chunk in keys.chunks(in_list_chunk(backend, 4)) {
        let mut sql = Sql::new(backend);
        sql.push(head);
        push_in_list(&mut sql, column, chunk);
        tail(&mut sql);
        for row in db.query_all_raw(sql.statement()).await? {
            each(&row)?;
        }
    }
    Ok(())
}

/// The stored accounts among `ids`, by id (unknown ids are absent).
pub async fn accounts_by_id(db: &impl ConnectionTrait, ids: &[&str]) -> Result<HashMap<String, Account>, StoreError> {
    let backend = db.get_database_backend();
    let mut found = HashMap::with_capacity(ids.len());
    for_each_row(
        db,
        "SELECT id, borrower_id, product, currency, amount_due, balance, due_date, tags, flags, scores, attrs, \
         broken_promises FROM accounts WHERE ",
        "id",
        ids,
        |_| {},
        |row| {
            let id: String = get(row, 0, "accounts", "?")?;
            let corrupt = |message: String| StoreError::Corrupt { table: "accounts", id: id.clone(), message };
            let tags: String = get(row, 7, "accounts", &id)?;
            let flags: String = get(row, 8, "accounts", &id)?;
            let scores: String = get(row, 9, "accounts", &id)?;
            let attrs: String = get(row, 10, "accounts", &id)?;
            let broken: i32 = get(row, 11, "accounts", &id)?;
            let Pairs(scores) =
                serde_json::from_str::<Pairs<f64>>(&scores).map_err(|error| corrupt(format!("scores: {error}")))?;
            let Pairs(attrs) =
                serde_json::from_str::<Pairs<String>>(&attrs).map_err(|error| corrupt(format!("attrs: {error}")))?;
            let account = Account {
                borrower_id: get(row, 1, "accounts", &id)?,
                product: get(row, 2, "accounts", &id)?,
                currency: get(row, 3, "accounts", &id)?,
                amount_due: get_money(row, 4, backend, "accounts", &id)?,
                balance: get_money(row, 5, backend, "accounts", &id)?,
                due_date: get::<NaiveDate>(row, 6, "accounts", &id)?,
                tags: split_list(&tags).map(str::to_string).collect(),
                flags: Flags::parse_list(&flags).map_err(|error| corrupt(error.to_string()))?,
                scores,
                attrs,
                broken_promises: u32::try_from(broken).unwrap_or(0),
                id: id.clone(),
            };
            found.insert(id, account);
            Ok(())
        },
    )
    .await?;
    Ok(found)
}

/// The stored borrowers among `ids` with their contact points (in the order they were added).
pub async fn borrowers_by_id(db: &impl ConnectionTrait, ids: &[&str]) -> Result<HashMap<String, Borrower>, StoreError> {
    let mut found: HashMap<String, Borrower> = HashMap::with_capacity(ids.len());
    for_each_row(
        db,
        "SELECT id, name, timezones, consent_robot FROM borrowers WHERE ",
        "id",
        ids,
        |_| {},
        |row| {
            let id: String = get(row, 0, "borrowers", "?")?;
            let zones: String = get(row, 2, "borrowers", &id)?;
            let timezones = split_list(&zones)
                .map(parse_timezone)
                .collect::<Result<Vec<_>, String>>()
                .map_err(|message| StoreError::Corrupt { table: "borrowers", id: id.clone(), message })?;
            let borrower = Borrower {
                id: id.clone(),
                name: get(row, 1, "borrowers", &id)?,
                timezones,
                contact_points: Vec::new(),
                consent_robot: get(row, 3, "borrowers", &id)?,
            };
            found.insert(id, borrower);
            Ok(())
        },
    )
    .await?;
    for_each_row(
        db,
        "SELECT borrower_id, kind, address, opted_out, wrong_number, id FROM contact_points WHERE ",
        "borrower_id",
        ids,
        |sql| {
            sql.push(" ORDER BY id");
        },
        |row| {
            let borrower_id: String = get(row, 0, "contact_points", "?")?;
            let id: i64 = get(row, 5, "contact_points", &borrower_id)?;
            let corrupt =
                |message: String| StoreError::Corrupt { table: "contact_points", id: id.to_string(), message };
            let kind: String = get(row, 1, "contact_points", &borrower_id)?;
            let opted_out: String = get(row, 3, "contact_points", &borrower_id)?;
            let point = ContactPoint {
                kind: parse_kind(&kind).ok_or_else(|| corrupt(format!("unknown kind `{kind}`")))?,
                address: get(row, 2, "contact_points", &borrower_id)?,
                opted_out: split_list(&opted_out)
                    .map(str::parse::<Channel>)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| corrupt(error.to_string()))?,
                wrong_number: get(row, 4, "contact_points", &borrower_id)?,
            };
            if let Some(borrower) = found.get_mut(&borrower_id) {
                borrower.contact_points.push(point);
            }
            Ok(())
        },
    )
    .await?;
    Ok(found)
}

/// The attempts of the borrowers among `ids` at or after `since`, by borrower, oldest first.
pub async fn attempts_of_borrowers(
    db: &impl ConnectionTrait,
    ids: &[&str],
    since: DateTime<Utc>,
) -> Result<HashMap<String, Vec<StoredAttempt>>, StoreError> {
    let mut found: HashMap<String, Vec<StoredAttempt>> = HashMap::new();
    for_each_row(
        db,
        "SELECT id, borrower_id, account_id, task_id, channel, address, at, outcome FROM attempts WHERE ",
        "borrower_id",
        ids,
        |sql| {
            sql.push(" AND at >= ");
            sql.bind(since);
            sql.push(" ORDER BY at, id");
        },
        |row| {
            let id: i64 = get(row, 0, "attempts", "?")?;
            let key = id.to_string();
            let corrupt = |message: String| StoreError::Corrupt { table: "attempts", id: key.clone(), message };
            let borrower_id: String = get(row, 1, "attempts", &key)?;
            let channel: String = get(row, 4, "attempts", &key)?;
            let outcome: String = get(row, 7, "attempts", &key)?;
            let attempt = StoredAttempt {
                record: AttemptRecord {
                    account_id: get(row, 2, "attempts", &key)?,
                    at: get(row, 6, "attempts", &key)?,
                    channel: channel
                        .parse()
                        .map_err(|error: crate::domain::ParseCodeError| corrupt(error.to_string()))?,
                    address: get(row, 5, "attempts", &key)?,
                    outcome: outcome
                        .parse()
                        .map_err(|error: crate::domain::ParseCodeError| corrupt(error.to_string()))?,
                },
                task_id: get(row, 3, "attempts", &key)?,
            };
            found.entry(borrower_id).or_default().push(attempt);
            Ok(())
        },
    )
    .await?;
    for attempts in found.values_mut() {
        attempts.sort_by_key(|attempt| attempt.record.at);
    }
    Ok(found)
}

/// The open promise of each account among `ids` (the latest made when several are open).
pub async fn open_promises_of(
    db: &impl ConnectionTrait,
    ids: &[&str],
) -> Result<HashMap<String, PromiseRecord>, StoreError> {
    let backend = db.get_database_backend();
    let mut found: HashMap<String, PromiseRecord> = HashMap::new();
    for_each_row(
        db,
        "SELECT id, account_id, amount, due_on, made_at FROM promises WHERE status = 'open' AND ",
        "account_id",
        ids,
        |_| {},
        |row| {
            let id: i64 = get(row, 0, "promises", "?")?;
            let key = id.to_string();
            let account_id: String = get(row, 1, "promises", &key)?;
            let promise = PromiseRecord {
                amount: get_money(row, 2, backend, "promises", &key)?,
                due_on: get(row, 3, "promises", &key)?,
                made_at: get(row, 4, "promises", &key)?,
            };
            match found.get(&account_id) {
                Some(existing) if existing.made_at >= promise.made_at => {}
                _ => {
                    found.insert(account_id, promise);
                }
            }
            Ok(())
        },
    )
    .await?;
    Ok(found)
}

/// The last conversation (any time) of each account among `ids`.
pub async fn last_conversations_of(
    db: &impl ConnectionTrait,
    ids: &[&str],
) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
    let codes: Vec<String> = Outcome::ALL
        .iter()
        .filter(|outcome| outcome.is_conversation())
        .map(|outcome| format!("'{}'", outcome.code()))
        .collect();
    let head = format!("SELECT account_id, MAX(at) FROM attempts WHERE outcome IN ({}) AND ", codes.join(", "));
    let mut found = HashMap::new();
    for_each_row(
        db,
        &head,
        "account_id",
        ids,
        |sql| {
            sql.push(" GROUP BY account_id");
        },
        |row| {
            let account_id: String = get(row, 0, "attempts", "?")?;
            let at: DateTime<Utc> = get(row, 1, "attempts", &account_id)?;
            found.insert(account_id, at);
            Ok(())
        },
    )
    .await?;
    Ok(found)
}
