//! Inbound calls in the store: the borrowers a caller's number belongs to (through the
//! `idx_contact_points_address` index), the call's row, and the attempts reported on it
//! (direction `inbound`, no task). Small queries over `&impl ConnectionTrait`; what a call may
//! lead to is `ops::work::inbound`'s and the contact gate's.

use super::StoreError;
use super::sql::{Sql, get};
use crate::domain::{CallMatch, Channel, Direction, Outcome};
use chrono::{DateTime, Utc};
use entity::inbound_calls;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, EntityTrait, Value};

/// The borrowers with a current phone contact point `number`, by id.
pub async fn borrowers_by_phone(db: &impl ConnectionTrait, number: &str) -> Result<Vec<String>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT DISTINCT borrower_id FROM contact_points WHERE address = ");
    sql.bind(number);
    sql.push(" AND kind = 'phone' AND retired_at IS NULL ORDER BY borrower_id");
    let mut ids = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        ids.push(get(&row, 0, "contact_points", number)?);
    }
    Ok(ids)
}

/// The account ids of these borrowers, by id.
pub async fn accounts_of_borrowers(db: &impl ConnectionTrait, borrowers: &[String]) -> Result<Vec<String>, StoreError> {
    let mut ids = Vec::new();
    for borrower in borrowers {
        ids.extend(super::accounts_of_borrower(db, borrower).await?);
    }
    ids.sort();
    Ok(ids)
}

/// Records a call; returns its id.
pub async fn insert_inbound_call(
    db: &impl ConnectionTrait,
    from: &str,
    to: Option<&str>,
    at: DateTime<Utc>,
    matched: CallMatch,
    borrowers: &[String],
) -> Result<i64, StoreError> {
    let row = inbound_calls::ActiveModel {
        id: NotSet,
        from_number: Set(from.to_string()),
        to_number: Set(to.map(str::to_string)),
        at: Set(at),
        matched: Set(matched.code().to_string()),
        borrowers: Set(borrowers.join(";")),
        transfer_task_id: Set(None),
    };
    Ok(inbound_calls::Entity::insert(row).exec(db).await?.last_insert_id)
}

/// One call by id.
pub async fn inbound_call(db: &impl ConnectionTrait, id: i64) -> Result<Option<inbound_calls::Model>, StoreError> {
    Ok(inbound_calls::Entity::find_by_id(id).one(db).await?)
}

/// Notes the human task a transfer of the call made.
pub async fn set_transfer_task(db: &impl ConnectionTrait, id: i64, task_id: i64) -> Result<(), StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE inbound_calls SET transfer_task_id = ");
    sql.bind(task_id);
    sql.push(" WHERE id = ");
    sql.bind(id);
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// One attempt on an inbound call to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundAttempt<'a> {
    /// The account it was about.
    pub account_id: &'a str,
    /// Its borrower.
    pub borrower_id: &'a str,
    /// The caller's number.
    pub address: &'a str,
    /// When.
    pub at: DateTime<Utc>,
    /// What happened.
    pub outcome: Outcome,
    /// The robot's note.
    pub note: Option<&'a str>,
    /// Who reported it.
    pub actor: &'a str,
}

/// Inserts an inbound attempt (channel `robot`, direction `inbound`, no task); `None` when the
/// account already has a robot attempt at that instant.
pub async fn insert_inbound_attempt(
    db: &impl ConnectionTrait,
    attempt: &InboundAttempt<'_>,
) -> Result<Option<i64>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "INSERT INTO attempts (account_id, borrower_id, task_id, channel, address, at, outcome, note, actor, exempt, \
         direction) VALUES ",
    );
    sql.bind_row([
        Value::from(attempt.account_id),
        Value::from(attempt.borrower_id),
        Value::BigInt(None),
        Value::from(Channel::Robot.code()),
        Value::from(attempt.address),
        Value::from(attempt.at),
        Value::from(attempt.outcome.code()),
        Value::String(attempt.note.map(str::to_string)),
        Value::from(attempt.actor),
        Value::from(false),
        Value::from(Direction::Inbound.code()),
    ]);
    sql.push(" ON CONFLICT (account_id, channel, at) DO NOTHING RETURNING id");
    match db.query_one_raw(sql.statement()).await? {
        Some(row) => Ok(Some(get(&row, 0, "attempts", attempt.account_id)?)),
        None => Ok(None),
    }
}

/// The inbound attempts on `account_id` from `number` since the call began: `(at, outcome)`.
pub async fn inbound_attempts_of_call(
    db: &impl ConnectionTrait,
    account_id: &str,
    number: &str,
    since: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT at, outcome FROM attempts WHERE account_id = ");
    sql.bind(account_id);
    sql.push(" AND address = ");
    sql.bind(number);
    sql.push(" AND direction = 'inbound' AND at >= ");
    sql.bind(since);
    sql.push(" ORDER BY at");
    let mut found = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        found.push((get(&row, 0, "attempts", account_id)?, get(&row, 1, "attempts", account_id)?));
    }
    Ok(found)
}
