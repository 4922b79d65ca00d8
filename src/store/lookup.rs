//! Small reads of a few accounts at a time, for the use cases that re-check one task or one
//! report against the latest state: the accounts, their borrowers with contact points, recent
//! attempts, open promises and last conversations. Bulk loading for the planner is elsewhere
//! (`book`, `history`); nothing here writes.

use super::StoreError;
use super::sql::{Sql, get, get_money, in_list_chunk, push_in_list};
use crate::domain::{Account, AttemptRecord, Borrower, Outcome, PromiseRecord};
use chrono::{DateTime, Utc};
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

/// The stored accounts among `ids` by id, and their borrowers (with contact points) by id.
pub async fn parties_by_id(
    db: &impl ConnectionTrait,
    ids: &[&str],
) -> Result<(HashMap<String, Account>, HashMap<String, Borrower>), StoreError> {
    let book = super::load_accounts_by_id(db, ids).await?;
    let accounts = book.accounts.into_iter().map(|account| (account.id.clone(), account)).collect();
    Ok((accounts, book.borrowers.into_iter().collect()))
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
