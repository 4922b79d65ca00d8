//! Risk events and reaction cases in the store: recording an event once, the account changes a
//! reaction makes (engine tags, hold, priority), and opening, listing and closing cases. Small
//! queries over `&impl ConnectionTrait`; what a reaction decides is `plan::match_reactions`.

use super::StoreError;
use super::sql::Sql;
use crate::domain::{CaseState, Disposition, TaskState};
use chrono::{DateTime, NaiveDate, Utc};
use entity::{accounts, reaction_cases, risk_events};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};

/// A stored event by id.
pub async fn risk_event(db: &impl ConnectionTrait, id: &str) -> Result<Option<risk_events::Model>, StoreError> {
    Ok(risk_events::Entity::find_by_id(id.to_string()).one(db).await?)
}

/// Records an event (the caller checked it is new).
pub async fn insert_risk_event(db: &impl ConnectionTrait, event: risk_events::Model) -> Result<(), StoreError> {
    let row: risk_events::ActiveModel = event.into();
    risk_events::Entity::insert(row).exec_without_returning(db).await?;
    Ok(())
}

/// The ids of a borrower's accounts, in id order.
pub async fn accounts_of_borrower(db: &impl ConnectionTrait, borrower_id: &str) -> Result<Vec<String>, StoreError> {
    let rows = accounts::Entity::find()
        .filter(accounts::Column::BorrowerId.eq(borrower_id))
        .order_by_asc(accounts::Column::Id)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|row| row.id).collect())
}

/// An account's stored row (its engine tags and hold).
pub async fn account_row(db: &impl ConnectionTrait, account_id: &str) -> Result<Option<accounts::Model>, StoreError> {
    Ok(accounts::Entity::find_by_id(account_id.to_string()).one(db).await?)
}

/// Sets an account's engine tags (`;`-joined) and hold.
pub async fn set_reaction_marks(
    db: &impl ConnectionTrait,
    account_id: &str,
    engine_tags: &str,
    hold_until: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE accounts SET engine_tags = ");
    sql.bind(engine_tags);
    sql.push(", hold_until = ");
    sql.bind(hold_until);
    sql.push(", updated_at = ");
    sql.bind(now);
    sql.push(" WHERE id = ");
    sql.bind(account_id);
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Raises the account's open tasks (planned, ready) to at least `floor`; returns how many rose.
pub async fn raise_open_tasks(db: &impl ConnectionTrait, account_id: &str, floor: f64) -> Result<u64, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE tasks SET priority = ");
    sql.bind(floor);
    sql.push(" WHERE account_id = ");
    sql.bind(account_id);
    sql.push(&format!(" AND state IN {} AND priority < ", TaskState::sql_list(TaskState::OPEN)));
    sql.bind(floor);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected())
}

/// A case to open.
#[derive(Debug, Clone)]
pub struct NewCase<'a> {
    /// The event that set it off.
    pub event_id: &'a str,
    /// The account.
    pub account_id: &'a str,
    /// Its borrower.
    pub borrower_id: &'a str,
    /// The strategy and reaction.
    pub strategy: &'a str,
    /// The reaction's name.
    pub reaction: &'a str,
    /// The human queue.
    pub queue: &'a str,
    /// When it opens.
    pub opened_at: DateTime<Utc>,
    /// Its SLA deadline.
    pub due_at: DateTime<Utc>,
}

/// Opens a case unless the same event already opened it for the account and reaction; returns
/// the new case's id.
pub async fn open_case(db: &impl ConnectionTrait, case: &NewCase<'_>) -> Result<Option<i64>, StoreError> {
    let row = reaction_cases::ActiveModel {
        id: NotSet,
        event_id: Set(case.event_id.to_string()),
        account_id: Set(case.account_id.to_string()),
        borrower_id: Set(case.borrower_id.to_string()),
        strategy: Set(case.strategy.to_string()),
        reaction: Set(case.reaction.to_string()),
        queue: Set(case.queue.to_string()),
        opened_at: Set(case.opened_at),
        due_at: Set(case.due_at),
        state: Set(CaseState::Open.code().to_string()),
        agent: Set(None),
        disposition: Set(None),
        note: Set(None),
        closed_at: Set(None),
    };
    let conflict = OnConflict::columns([
        reaction_cases::Column::EventId,
        reaction_cases::Column::AccountId,
        reaction_cases::Column::Strategy,
        reaction_cases::Column::Reaction,
    ])
    .do_nothing()
    .to_owned();
    let result = reaction_cases::Entity::insert(row).on_conflict(conflict).try_insert().exec(db).await?;
    Ok(match result {
        sea_orm::TryInsertResult::Inserted(inserted) => Some(inserted.last_insert_id),
        _ => None,
    })
}

/// Cases, oldest deadline first: of one queue (or all), in one state (or all).
pub async fn cases(
    db: &impl ConnectionTrait,
    queue: Option<&str>,
    state: Option<CaseState>,
) -> Result<Vec<reaction_cases::Model>, StoreError> {
    let mut find = reaction_cases::Entity::find();
    if let Some(queue) = queue {
        find = find.filter(reaction_cases::Column::Queue.eq(queue));
    }
    if let Some(state) = state {
        find = find.filter(reaction_cases::Column::State.eq(state.code()));
    }
    Ok(find.order_by_asc(reaction_cases::Column::DueAt).order_by_asc(reaction_cases::Column::Id).all(db).await?)
}

/// Cases opened in `[from, to)`, in id order (the reactions report).
pub async fn cases_opened_in(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<reaction_cases::Model>, StoreError> {
    Ok(reaction_cases::Entity::find()
        .filter(reaction_cases::Column::OpenedAt.gte(from))
        .filter(reaction_cases::Column::OpenedAt.lt(to))
        .order_by_asc(reaction_cases::Column::Id)
        .all(db)
        .await?)
}

/// One case by id.
pub async fn case_by_id(db: &impl ConnectionTrait, id: i64) -> Result<Option<reaction_cases::Model>, StoreError> {
    Ok(reaction_cases::Entity::find_by_id(id).one(db).await?)
}

/// Closes an open case with its disposition; returns whether it was open.
pub async fn close_case(
    db: &impl ConnectionTrait,
    id: i64,
    disposition: Disposition,
    agent: &str,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE reaction_cases SET state = ");
    sql.bind(CaseState::Closed.code());
    sql.push(", disposition = ");
    sql.bind(disposition.code());
    sql.push(", agent = ");
    sql.bind(agent);
    sql.push(", note = ");
    sql.bind(note);
    sql.push(", closed_at = ");
    sql.bind(now);
    sql.push(" WHERE id = ");
    sql.bind(id);
    sql.push(" AND state = ");
    sql.bind(CaseState::Open.code());
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// The risk events received in `[from, to)`, by id.
pub async fn events_received_in(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<risk_events::Model>, StoreError> {
    Ok(risk_events::Entity::find()
        .filter(risk_events::Column::ReceivedAt.gte(from))
        .filter(risk_events::Column::ReceivedAt.lt(to))
        .order_by_asc(risk_events::Column::Id)
        .all(db)
        .await?)
}

/// The audit action of a reaction acting on an account (its detail names the event, strategy,
/// reaction and case): the source of `report --reactions`.
pub const REACTION_FIRED: &str = "reaction.fired";

/// The reactions that acted in `[from, to)`, from the audit trail, in order.
pub async fn reaction_firings(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<crate::report::reactions::Firing>, StoreError> {
    let rows = entity::audit_log::Entity::find()
        .filter(entity::audit_log::Column::Action.eq(REACTION_FIRED))
        .filter(entity::audit_log::Column::At.gte(from))
        .filter(entity::audit_log::Column::At.lt(to))
        .order_by_asc(entity::audit_log::Column::Id)
        .all(db)
        .await?;
    let mut firings = Vec::with_capacity(rows.len());
    for row in rows {
        let detail: serde_json::Value = serde_json::from_str(&row.detail).map_err(|error| StoreError::Corrupt {
            table: "audit_log",
            id: row.id.to_string(),
            message: error.to_string(),
        })?;
        let text = |key: &str| detail[key].as_str().unwrap_or_default().to_string();
        firings.push(crate::report::reactions::Firing {
            at: row.at,
            event_id: text("event_id"),
            account_id: row.entity_id,
            strategy: text("strategy"),
            reaction: text("reaction"),
            case_id: detail["case_id"].as_i64(),
        });
    }
    Ok(firings)
}

/// The cases among `ids`, by id.
pub async fn cases_by_id(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, reaction_cases::Model>, StoreError> {
    let mut found = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        let rows =
            reaction_cases::Entity::find().filter(reaction_cases::Column::Id.is_in(chunk.to_vec())).all(db).await?;
        found.extend(rows.into_iter().map(|row| (row.id, row)));
    }
    Ok(found)
}

/// The stage changes of `accounts` after `since`, by account, in order.
pub async fn stage_moves_since(
    db: &impl ConnectionTrait,
    accounts: &[&str],
    since: DateTime<Utc>,
) -> Result<std::collections::HashMap<String, Vec<crate::report::reactions::StageMove>>, StoreError> {
    use entity::stage_history;
    let mut moves: std::collections::HashMap<String, Vec<crate::report::reactions::StageMove>> = Default::default();
    for chunk in accounts.chunks(500) {
        let rows = stage_history::Entity::find()
            .filter(stage_history::Column::AccountId.is_in(chunk.iter().map(|id| id.to_string())))
            .filter(stage_history::Column::At.gt(since))
            .order_by_asc(stage_history::Column::Id)
            .all(db)
            .await?;
        for row in rows {
            moves.entry(row.account_id).or_default().push((row.at, row.from_stage, row.to_stage));
        }
    }
    Ok(moves)
}

/// One account's cases, oldest deadline first.
pub async fn cases_of_account(
    db: &impl ConnectionTrait,
    account_id: &str,
) -> Result<Vec<reaction_cases::Model>, StoreError> {
    Ok(reaction_cases::Entity::find()
        .filter(reaction_cases::Column::AccountId.eq(account_id))
        .order_by_asc(reaction_cases::Column::DueAt)
        .order_by_asc(reaction_cases::Column::Id)
        .all(db)
        .await?)
}
