//! Risk events in (`POST /v1/events`, `arrears import events`) and what the strategies'
//! reactions do with them: record each event once (idempotent by its id), ask
//! `plan::match_reactions` which reactions act for each of its accounts, and apply them in one
//! transaction — engine tags, a hold (which the contact gate enforces), raised priorities, a
//! re-plan of the day, and a case in a team's queue with its SLA deadline. Cases are closed here
//! too, with a disposition. Knows nothing of HTTP or CSV: callers hand in parsed events.

use crate::domain::{CaseState, Disposition, EventKind, History, TaskState};
use crate::import::records::parse_instant;
use crate::plan::{Task, match_reactions, plan};
use crate::store::{self, NewCase, StoreError};
use crate::strategy::{Reaction, StrategySet};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::{reaction_cases, risk_events};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::ToSchema;

/// The priority a reaction's `priority = "now"` gives the account's open tasks: above any
/// planned work, below callbacks and transfers (`CALLBACK_PRIORITY`).
pub const REACTION_PRIORITY: f64 = 1e14;

/// How far in the future an event's `at` may be (clocks differ a little).
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// One event as sent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// The sender's event id: the idempotency key.
    pub id: String,
    /// `score_change`, `missed_payment_elsewhere`, `contact_changed`, `fraud_alert`,
    /// `legal_notice` or `custom:<name>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The account it is about (or give `borrower_id` for all the borrower's accounts).
    #[serde(default)]
    pub account_id: Option<String>,
    /// The borrower it is about, when it is not about one account.
    #[serde(default)]
    pub borrower_id: Option<String>,
    /// When it happened, RFC 3339.
    pub at: String,
    /// The event's own fields (numbers, strings, booleans), read by `event.<field>` conditions.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// An event that passed its checks.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Its id.
    pub id: String,
    /// Its type.
    pub kind: EventKind,
    /// The account, or
    pub account_id: Option<String>,
    /// the borrower.
    pub borrower_id: Option<String>,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Its fields.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// One problem of an event: the field, the bad value when the message does not quote it, and
/// what is wrong.
pub type EventProblem = (&'static str, Option<String>, String);

/// Checks one event; every problem found.
pub fn check_event(item: &EventIn, now: DateTime<Utc>) -> Result<NewEvent, Vec<EventProblem>> {
    let mut problems = Vec::new();
    let id = item.id.trim();
    if id.is_empty() {
        problems.push(("id", None, "an event id is required (the idempotency key)".to_string()));
    }
    let kind = item.kind.parse::<EventKind>().map_err(|error| problems.push(("type", None, error.to_string()))).ok();
    let account_id = item.account_id.as_deref().map(str::trim).filter(|id| !id.is_empty());
    let borrower_id = item.borrower_id.as_deref().map(str::trim).filter(|id| !id.is_empty());
    if account_id.is_some() == borrower_id.is_some() {
        problems.push(("account_id", None, "give exactly one of account_id and borrower_id".to_string()));
    }
    let at = match parse_instant(item.at.trim()) {
        Ok(at) if at > now + CLOCK_SKEW => {
            problems.push(("at", None, format!("`{}` is in the future", item.at.trim())));
            None
        }
        Ok(at) => Some(at),
        Err(message) => {
            problems.push(("at", Some(item.at.trim().to_string()), message));
            None
        }
    };
    if let Some((name, _)) =
        item.fields.iter().find(|(_, value)| value.is_object() || value.is_array() || value.is_null())
    {
        problems.push(("fields", None, format!("`{name}` must be a number, a string or a boolean")));
    }
    match (kind, at) {
        (Some(kind), Some(at)) if problems.is_empty() => Ok(NewEvent {
            id: id.to_string(),
            kind,
            account_id: account_id.map(str::to_string),
            borrower_id: borrower_id.map(str::to_string),
            at,
            fields: item.fields.clone(),
        }),
        _ => Err(problems),
    }
}

/// What one reaction did on one account.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReactionFired {
    /// The event.
    pub event_id: String,
    /// The account.
    pub account_id: String,
    /// The strategy and
    pub strategy: String,
    /// reaction.
    pub reaction: String,
    /// The case it opened, if it opens one.
    pub case_id: Option<i64>,
    /// The case's SLA deadline.
    pub due_at: Option<DateTime<Utc>>,
    /// The last local day contact is held, if it holds.
    pub hold_until: Option<NaiveDate>,
    /// Open tasks raised to the top of their queues.
    pub tasks_raised: u64,
    /// Open tasks the re-plan cancelled, and
    pub tasks_cancelled: u64,
    /// the tasks it planned instead.
    pub tasks_planned: u64,
}

/// What a batch of events did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct EventsReport {
    /// Events received.
    pub received: u64,
    /// Events new to the store.
    pub inserted: u64,
    /// Ids already recorded with the same content: nothing happened again.
    pub duplicates: Vec<String>,
    /// The reactions that acted.
    pub reactions: Vec<ReactionFired>,
}

/// Why a batch of events was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// Events are invalid: each message names the event and the field.
    #[error("{} invalid event(s)", .0.len())]
    Invalid(Vec<String>),
    /// Event ids already name other events.
    #[error("{} conflicting event id(s)", .0.len())]
    Conflict(Vec<String>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sea_orm::DbErr> for EventsError {
    fn from(error: sea_orm::DbErr) -> Self {
        EventsError::Store(StoreError::Db(error))
    }
}

fn stored_form(event: &NewEvent, borrower_id: &str, now: DateTime<Utc>) -> risk_events::Model {
    risk_events::Model {
        id: event.id.clone(),
        kind: event.kind.to_string(),
        account_id: event.account_id.clone(),
        borrower_id: borrower_id.to_string(),
        at: event.at,
        fields: serde_json::Value::Object(event.fields.clone()).to_string(),
        received_at: now,
    }
}

fn same_event(stored: &risk_events::Model, event: &NewEvent) -> bool {
    let fields: Option<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&stored.fields).ok();
    stored.kind == event.kind.to_string()
        && stored.at == event.at
        && stored.account_id == event.account_id
        && event.borrower_id.as_ref().is_none_or(|borrower| *borrower == stored.borrower_id)
        && fields.as_ref() == Some(&event.fields)
}

/// Records the new events and applies the reactions they set off, all in one transaction;
/// `labels[i]` names event `i` in errors ("item [3]", "events.csv row 4"). `actor` signs the
/// audit rows.
pub async fn apply_events(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    events: &[NewEvent],
    labels: &[String],
    now: DateTime<Utc>,
    actor: &str,
) -> Result<EventsReport, EventsError> {
    let mut report = EventsReport { received: events.len() as u64, ..EventsReport::default() };
    let txn = store::begin_write(db).await?;
    let mut invalid = Vec::new();
    let mut conflicts = Vec::new();
    let mut seen = BTreeSet::new();
    let mut work = Vec::new();
    for (event, label) in events.iter().zip(labels) {
        if !seen.insert(event.id.clone()) {
            invalid.push(format!("{label}: event id `{}` appears twice in the batch", event.id));
            continue;
        }
        if let Some(stored) = store::risk_event(&txn, &event.id).await? {
            if same_event(&stored, event) {
                report.duplicates.push(event.id.clone());
            } else {
                conflicts.push(format!("{label}: event id `{}` was already received with other content", event.id));
            }
            continue;
        }
        let (borrower_id, accounts) = match (&event.account_id, &event.borrower_id) {
            (Some(account_id), _) => match store::account_row(&txn, account_id).await? {
                Some(row) => (row.borrower_id, vec![row.id]),
                None => {
                    invalid.push(format!(
                        "{label}: account_id: no account `{account_id}` (post it to /v1/accounts first)"
                    ));
                    continue;
                }
            },
            (None, Some(borrower_id)) => {
                let accounts = store::accounts_of_borrower(&txn, borrower_id).await?;
                if accounts.is_empty() {
                    invalid.push(format!("{label}: borrower_id: no accounts of borrower `{borrower_id}`"));
                    continue;
                }
                (borrower_id.clone(), accounts)
            }
            (None, None) => continue,
        };
        work.push((event, borrower_id, accounts));
    }
    if !invalid.is_empty() {
        return Err(EventsError::Invalid(invalid));
    }
    if !conflicts.is_empty() {
        return Err(EventsError::Conflict(conflicts));
    }
    for (event, borrower_id, accounts) in work {
        store::insert_risk_event(&txn, stored_form(event, &borrower_id, now)).await?;
        report.inserted += 1;
        for account_id in accounts {
            react(&txn, strategies, event, &account_id, now, actor, &mut report.reactions).await?;
        }
    }
    txn.commit().await?;
    Ok(report)
}

/// Applies every reaction that acts on `event` for one account.
async fn react(
    txn: &DatabaseTransaction,
    strategies: &StrategySet,
    event: &NewEvent,
    account_id: &str,
    now: DateTime<Utc>,
    actor: &str,
    fired: &mut Vec<ReactionFired>,
) -> Result<(), EventsError> {
    let Some(page) = store::load_account(txn, account_id).await? else { return Ok(()) };
    let Some(account) = page.portfolio.accounts.first() else { return Ok(()) };
    let Some(borrower) = page.portfolio.borrowers.get(&account.borrower_id) else { return Ok(()) };
    let history = load_history(txn, &account.borrower_id, now).await?;
    let Some((strategy, matched)) =
        match_reactions(account, borrower, &history, strategies, &event.kind, &event.fields, now)
    else {
        return Ok(());
    };
    let acting: Vec<&Reaction> = matched.into_iter().filter(|(_, miss)| miss.is_none()).map(|(r, _)| r).collect();
    if acting.is_empty() {
        return Ok(());
    }
    let zone = borrower.primary_timezone();
    let local_date = now.with_timezone(&zone).date_naive();
    let row = store::account_row(txn, account_id).await?;
    let mut engine_tags: Vec<String> = row
        .as_ref()
        .map(|row| row.engine_tags.split(';').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    let mut hold_until = row.as_ref().and_then(|row| row.hold_until);
    for reaction in &acting {
        for tag in &reaction.add_tags {
            if !engine_tags.contains(tag) {
                engine_tags.push(tag.clone());
            }
        }
        engine_tags.retain(|tag| !reaction.remove_tags.contains(tag));
        if let Some(days) = reaction.hold_days {
            let until = local_date + Duration::days(days - 1);
            hold_until = Some(hold_until.map_or(until, |held| held.max(until)));
        }
    }
    store::set_reaction_marks(txn, account_id, &engine_tags.join(";"), hold_until, now).await?;
    for reaction in acting {
        let mut done = ReactionFired {
            event_id: event.id.clone(),
            account_id: account_id.to_string(),
            strategy: strategy.name.to_string(),
            reaction: reaction.name.to_string(),
            case_id: None,
            due_at: None,
            hold_until: reaction.hold_days.and(hold_until),
            tasks_raised: 0,
            tasks_cancelled: 0,
            tasks_planned: 0,
        };
        if let Some(case) = &reaction.case {
            let due_at = now + case.sla;
            let new = NewCase {
                event_id: &event.id,
                account_id,
                borrower_id: &account.borrower_id,
                strategy: &strategy.name,
                reaction: &reaction.name,
                queue: &case.queue,
                opened_at: now,
                due_at,
            };
            done.case_id = store::open_case(txn, &new).await?;
            done.due_at = Some(due_at);
        }
        if reaction.replan {
            let (cancelled, planned) = replan(txn, strategies, account_id, now, actor).await?;
            done.tasks_cancelled = cancelled;
            done.tasks_planned = planned;
        }
        if reaction.raise_priority {
            done.tasks_raised = store::raise_open_tasks(txn, account_id, REACTION_PRIORITY).await?;
        }
        let detail = serde_json::json!({
            "event_id": event.id, "type": event.kind.to_string(), "strategy": done.strategy,
            "reaction": done.reaction, "case_id": done.case_id, "hold_until": done.hold_until,
            "engine_tags": engine_tags, "tasks_raised": done.tasks_raised,
            "tasks_cancelled": done.tasks_cancelled, "tasks_planned": done.tasks_planned,
        });
        store::record_audit_at(txn, now, actor, store::REACTION_FIRED, "account", account_id, detail).await?;
        fired.push(done);
    }
    Ok(())
}

/// The borrower's contact history as the planner reads it; the days already planned are left
/// out: a re-plan decides the day again.
async fn load_history(db: &impl ConnectionTrait, borrower_id: &str, now: DateTime<Utc>) -> Result<History, StoreError> {
    store::load_history(
        db,
        store::HistoryScope::Borrowers(&[borrower_id]),
        now - Duration::days(crate::ops::recheck::HISTORY_DAYS),
        None,
    )
    .await
}

/// Re-plans the account's day now: its open tasks (planned, ready) are cancelled as
/// `replanned` and the planner's tasks for the rest of the day — asked under the tags and hold
/// just set, through the one contact gate the planner asks — are added to the latest plan run
/// with attempt numbers after the day's existing ones. Returns `(cancelled, planned)`.
async fn replan(
    txn: &DatabaseTransaction,
    strategies: &StrategySet,
    account_id: &str,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<(u64, u64), EventsError> {
    let existing = store::tasks_for_account(txn, account_id).await?;
    let mut cancelled = 0;
    for task in existing.iter().filter(|task| TaskState::OPEN.iter().any(|state| state.code() == task.state)) {
        let audit = store::Audit::new(actor, serde_json::json!({"detail": "a reaction re-planned the account"}));
        if store::tasks::close(txn, task.id, TaskState::Cancelled, REPLANNED, audit, now).await? {
            cancelled += 1;
        }
    }
    let Some(page) = store::load_account(txn, account_id).await? else { return Ok((cancelled, 0)) };
    let Some(account) = page.portfolio.accounts.first() else { return Ok((cancelled, 0)) };
    let history = load_history(txn, &account.borrower_id, now).await?;
    let fresh = plan(&page.portfolio, &history, strategies, now);
    let mut tasks: Vec<Task> = fresh.tasks;
    let next_attempt = |date: NaiveDate| {
        existing.iter().filter(|task| task.local_date == date).map(|task| task.attempt as u32).max().unwrap_or(0)
    };
    for task in &mut tasks {
        task.attempt += next_attempt(task.local_date);
        // The rest of today only: a window that already closed is no task.
        if task.not_after.with_timezone(&Utc) <= now {
            task.attempt = 0;
        }
    }
    tasks.retain(|task| task.attempt > 0);
    let planned = store::add_replanned_tasks(txn, now, &tasks).await?;
    Ok((cancelled, planned))
}

/// The reason code of tasks a reaction's re-plan cancelled (like `import::apply::PAID_IN_FULL`).
pub const REPLANNED: &str = "replanned";

/// A case as the team sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CaseView {
    /// Case id.
    pub id: i64,
    /// The event that opened it, its type and fields.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The event's fields.
    #[schema(value_type = Object)]
    pub event_fields: serde_json::Value,
    /// The account and borrower.
    pub account_id: String,
    /// The borrower.
    pub borrower_id: String,
    /// The strategy and reaction.
    pub strategy: String,
    /// The reaction.
    pub reaction: String,
    /// The team's queue.
    pub queue: String,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// Its SLA deadline.
    pub due_at: DateTime<Utc>,
    /// `open` or `closed`.
    pub state: String,
    /// Open past its deadline.
    pub overdue: bool,
    /// Closed within its deadline (`None` while open).
    pub sla_met: Option<bool>,
    /// Who closed it.
    pub agent: Option<String>,
    /// The disposition, once closed.
    pub disposition: Option<String>,
    /// The team's note.
    pub note: Option<String>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
}

/// A stored case as the team sees it at `now`.
pub fn case_view(case: reaction_cases::Model, event: Option<&risk_events::Model>, now: DateTime<Utc>) -> CaseView {
    let open = case.state == CaseState::Open.code();
    CaseView {
        id: case.id,
        event_type: event.map(|event| event.kind.clone()).unwrap_or_default(),
        event_fields: event
            .and_then(|event| serde_json::from_str(&event.fields).ok())
            .unwrap_or(serde_json::Value::Object(Default::default())),
        event_id: case.event_id,
        account_id: case.account_id,
        borrower_id: case.borrower_id,
        strategy: case.strategy,
        reaction: case.reaction,
        queue: case.queue,
        opened_at: case.opened_at,
        overdue: open && now > case.due_at,
        sla_met: case.closed_at.map(|closed| closed <= case.due_at),
        due_at: case.due_at,
        state: case.state,
        agent: case.agent,
        disposition: case.disposition,
        note: case.note,
        closed_at: case.closed_at,
    }
}

/// The cases of a queue (or all), in one state (or all), oldest deadline first.
pub async fn list_cases(
    db: &impl ConnectionTrait,
    queue: Option<&str>,
    state: Option<CaseState>,
    now: DateTime<Utc>,
) -> Result<Vec<CaseView>, StoreError> {
    views_of(db, store::cases(db, queue, state).await?, now).await
}

/// One account's cases, oldest deadline first.
pub async fn account_cases(
    db: &impl ConnectionTrait,
    account_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<CaseView>, StoreError> {
    views_of(db, store::cases_of_account(db, account_id).await?, now).await
}

async fn views_of(
    db: &impl ConnectionTrait,
    cases: Vec<reaction_cases::Model>,
    now: DateTime<Utc>,
) -> Result<Vec<CaseView>, StoreError> {
    let mut views = Vec::with_capacity(cases.len());
    for case in cases {
        let event = store::risk_event(db, &case.event_id).await?;
        views.push(case_view(case, event.as_ref(), now));
    }
    Ok(views)
}

/// Why a case could not be closed.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    /// No such case (404).
    #[error("no case {0}")]
    NotFound(i64),
    /// A field is wrong (422): `(field, message)`.
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    /// Already closed (409).
    #[error("case {0} is already closed ({1})")]
    Closed(i64, String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sea_orm::DbErr> for CloseError {
    fn from(error: sea_orm::DbErr) -> Self {
        CloseError::Store(StoreError::Db(error))
    }
}

/// Closes a case with the team's disposition (required: a case is the feedback loop) and note,
/// signed by `agent`.
pub async fn close_case(
    db: &DatabaseConnection,
    id: i64,
    agent: &str,
    disposition: Option<&str>,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<CaseView, CloseError> {
    if agent.trim().is_empty() {
        return Err(CloseError::Invalid("agent_id", "the agent closing the case is required".into()));
    }
    let disposition = match disposition.map(str::trim) {
        None | Some("") => {
            let expected: Vec<&str> = Disposition::ALL.iter().map(|d| d.code()).collect();
            return Err(CloseError::Invalid(
                "disposition",
                format!("a case is closed with a disposition: one of {}", expected.join(", ")),
            ));
        }
        Some(text) => {
            text.parse::<Disposition>().map_err(|error| CloseError::Invalid("disposition", error.to_string()))?
        }
    };
    let txn = store::begin_write(db).await?;
    let Some(case) = store::case_by_id(&txn, id).await? else { return Err(CloseError::NotFound(id)) };
    if !store::close_case(&txn, id, disposition, agent.trim(), note, now).await? {
        return Err(CloseError::Closed(id, case.disposition.unwrap_or_default()));
    }
    let detail = serde_json::json!({"disposition": disposition.code(), "note": note, "sla_met": now <= case.due_at});
    store::record_audit_at(
        &txn,
        now,
        &format!("agent:{}", agent.trim()),
        "case.closed",
        "case",
        &id.to_string(),
        detail,
    )
    .await?;
    let closed = store::case_by_id(&txn, id).await?.ok_or(CloseError::NotFound(id))?;
    let event = store::risk_event(&txn, &closed.event_id).await?;
    txn.commit().await?;
    Ok(case_view(closed, event.as_ref(), now))
}
