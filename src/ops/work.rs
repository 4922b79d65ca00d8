//! Agents' work queues and what happens on a contact: leasing human tasks (with the lease-time
//! re-checks), heartbeats, releases and completions, the lease reaper, recording attempts with
//! their effects (promises, flags, cancellations, wrong numbers, callbacks) and evaluating
//! promises as kept or broken.
//!
//! These are the use cases behind `POST /v1/queues/{queue}/lease`, `POST /v1/tasks/{id}/...`
//! and the scheduler's jobs. They never read the clock (`now` is an argument), never speak HTTP
//! and never hold a transaction across anything but their own few statements. Decisions are
//! made here; the statements are in `store`.

use super::recheck::{Context, Verdict, policy_of, recheck, rule_of};
use crate::domain::{Account, Borrower, Channel, ContactKind, Flag, Money, Outcome, parse_timezone};
use crate::policy::{Policy, allowed_intervals};
use crate::store::{self, ChannelFilter, Claim, ReportedAttempt, StoreError};
use crate::strategy::StrategySet;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use chrono_tz::Tz;
use entity::tasks;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr};
use serde::{Deserialize, Serialize};

/// How far in the future a reported attempt's `at` may be (clocks differ a little).
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Candidates read (and, on PostgreSQL, locked) per claiming transaction.
const LEASE_BATCH: u64 = 2;

/// Open promises evaluated per transaction.
const PROMISE_PAGE: u64 = 1000;

/// The audit actor of decisions the engine takes on its own (re-checks, reaper, promises).
const ENGINE: &str = "engine";

/// What can go wrong in a work use case. The HTTP layer maps the variants to statuses.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// The task (or account) does not exist (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The task is not leased to this caller, or the caller may not act on it (403).
    #[error("task {0} is not yours to act on")]
    NotYourLease(i64),
    /// The task's state does not allow it: lease expired, not leased, already done (409).
    #[error("{0}")]
    Conflict(String),
    /// A bad argument or report field (422).
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field (`outcome`, `at`, `promise.amount`, ...).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The store failed (500).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DbErr> for WorkError {
    fn from(error: DbErr) -> Self {
        WorkError::Store(StoreError::Db(error))
    }
}

fn invalid(field: &str, message: impl Into<String>) -> WorkError {
    WorkError::Invalid { field: field.to_string(), message: message.into() }
}

/// A task handed to an agent, as the lease response shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LeasedTask {
    /// Task id.
    pub id: i64,
    /// The account to work.
    pub account_id: String,
    /// Its borrower.
    pub borrower_id: String,
    /// The queue it came from.
    pub queue: String,
    /// Stage.
    pub stage: String,
    /// Strategy.
    pub strategy: String,
    /// The rule that planned it.
    pub rule: String,
    /// Experiment arm.
    pub arm: Option<String>,
    /// The borrower's local day of the task.
    pub local_date: NaiveDate,
    /// Days past due on that day.
    pub dpd: i32,
    /// Priority (larger first).
    pub priority: f64,
    /// Window start, at the borrower's primary offset.
    pub not_before: DateTime<FixedOffset>,
    /// Window end, at the borrower's primary offset: no call after it.
    pub not_after: DateTime<FixedOffset>,
    /// Calls the agent may still place on this account now (rule, task history and caps).
    pub calls_allowed: u32,
    /// What an escalated task carries: why it was escalated, the attempts so far, a promise
    /// captured (see `docs/operations.md`); `None` for planned tasks.
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
}

/// The account an agent works, with the borrower's usable phones.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    /// Account id.
    pub id: String,
    /// Borrower id.
    pub borrower_id: String,
    /// Borrower's name.
    pub name: String,
    /// Product.
    pub product: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Amount overdue.
    #[schema(value_type = String)]
    pub amount_due: Money,
    /// Outstanding balance.
    #[schema(value_type = String)]
    pub balance: Money,
    /// Oldest unpaid due date.
    pub due_date: NaiveDate,
    /// Tags.
    pub tags: Vec<String>,
    /// Flags (codes).
    pub flags: Vec<String>,
    /// Promises broken so far.
    pub broken_promises: u32,
    /// The borrower's time zones, primary first.
    pub timezones: Vec<String>,
    /// Phones the agent may call (not opted out of human calls, not wrong numbers).
    pub phones: Vec<String>,
}

/// A lease handed out by [`lease_next`].
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Lease {
    /// The task.
    pub task: LeasedTask,
    /// Its account.
    pub account: AccountView,
    /// The lease ends here unless renewed by a heartbeat.
    pub lease_expires_at: DateTime<Utc>,
}

/// A renewed lease ([`heartbeat`]).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LeaseRenewed {
    /// Task id.
    pub task_id: i64,
    /// New expiry.
    pub lease_expires_at: DateTime<Utc>,
}

/// A task's new state ([`release`], [`complete`]).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TaskStateChanged {
    /// Task id.
    pub task_id: i64,
    /// `ready` or `done`.
    pub state: String,
}

/// Who reports an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An agent, by id: only on a human task whose lease it holds.
    Agent(String),
    /// The robot dialler or message gateway: only on non-human tasks.
    Dialler,
}

impl Actor {
    /// As stored in `attempts.actor` and the audit log: `agent:<id>` or `dialler`.
    pub fn code(&self) -> String {
        match self {
            Actor::Agent(id) => format!("agent:{id}"),
            Actor::Dialler => "dialler".into(),
        }
    }
}

/// The promise part of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromiseTerms {
    /// Promised amount (> 0).
    #[schema(value_type = String)]
    pub amount: Money,
    /// The day by which the borrower will pay (not before the attempt's local day).
    pub due_on: NaiveDate,
}

/// One contact attempt and its outcome, as the agent or dialler reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptReport {
    /// Outcome code (see `domain::Outcome`).
    pub outcome: String,
    /// When it happened; default now; at most [`CLOCK_SKEW`] in the future.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// The phone (or, for e-mail tasks, the address) used; required for `wrong_number`.
    #[serde(default)]
    pub phone: Option<String>,
    /// Required with, and only with, `promise`.
    #[serde(default)]
    pub promise: Option<PromiseTerms>,
    /// Required with, and only with, `callback`.
    #[serde(default)]
    pub callback_at: Option<DateTime<Utc>>,
    /// Free text.
    #[serde(default)]
    pub note: Option<String>,
}

/// What [`record_attempt`] did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AttemptRecorded {
    /// The attempt's id.
    pub attempt_id: i64,
    /// The task.
    pub task_id: i64,
    /// The account.
    pub account_id: String,
    /// The outcome.
    #[schema(value_type = String)]
    pub outcome: Outcome,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The same attempt (account, channel, instant) was already recorded: nothing was done again.
    pub duplicate: bool,
    /// The promise opened, for `promise`.
    pub promise_id: Option<i64>,
    /// Flags newly set on the account (`do_not_call`, `dispute`).
    #[schema(value_type = Vec<String>)]
    pub flags_set: Vec<Flag>,
    /// Tasks cancelled by the outcome.
    pub tasks_cancelled: Vec<i64>,
    /// Whether a contact point was newly marked as a wrong number.
    pub wrong_number_marked: bool,
    /// What the robot-to-human escalation did, when this attempt triggered one.
    pub escalation: Option<Escalation>,
}

/// A robot-to-human escalation ([`record_attempt`]).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Escalation {
    /// `callback` (the borrower asked for a person) or `failed_attempts` (the rule's
    /// `after_failed_attempts` unanswered robot calls within [`ESCALATION_WINDOW_DAYS`]).
    pub trigger: String,
    /// The rule's queue.
    pub queue: String,
    /// The account's robot tasks closed as `escalated`.
    pub robot_tasks_escalated: Vec<i64>,
    /// The human task created (or already open in the queue today), if any.
    pub human_task: Option<i64>,
    /// Why no human task was created (`no_window`, a re-check reason code), if none was.
    pub refused: Option<String>,
}

/// The local days (the attempt's day and the days before it) over which failed robot
/// attempts count towards a rule's `escalate.after_failed_attempts`.
pub const ESCALATION_WINDOW_DAYS: i64 = 7;

/// What [`evaluate_promises`] resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PromiseReport {
    /// Promises now kept.
    pub kept: u64,
    /// Promises now broken.
    pub broken: u64,
}

fn check_agent(agent_id: &str) -> Result<(), WorkError> {
    if agent_id.trim().is_empty() {
        return Err(invalid("agent", "an agent id is required"));
    }
    Ok(())
}

fn check_ttl(ttl: Duration) -> Result<(), WorkError> {
    if ttl <= Duration::zero() {
        return Err(invalid("ttl", "a lease must last longer than zero"));
    }
    Ok(())
}

fn account_view(account: &Account, borrower: &Borrower) -> AccountView {
    AccountView {
        id: account.id.clone(),
        borrower_id: account.borrower_id.clone(),
        name: borrower.name.clone(),
        product: account.product.clone(),
        currency: account.currency.clone(),
        amount_due: account.amount_due,
        balance: account.balance,
        due_date: account.due_date,
        tags: account.tags.clone(),
        flags: account.flags.iter().map(|flag| flag.code().to_string()).collect(),
        broken_promises: account.broken_promises,
        timezones: borrower.timezones.iter().map(|zone| zone.name().to_string()).collect(),
        phones: borrower
            .contact_points
            .iter()
            .filter(|point| point.usable_for(Channel::Human))
            .map(|point| point.address.clone())
            .collect(),
    }
}

fn leased_task(task: &tasks::Model, zone: Tz, calls_allowed: u32) -> LeasedTask {
    LeasedTask {
        id: task.id,
        account_id: task.account_id.clone(),
        borrower_id: task.borrower_id.clone(),
        queue: task.queue.clone().unwrap_or_default(),
        stage: task.stage.clone(),
        strategy: task.strategy.clone(),
        rule: task.rule.clone(),
        arm: task.arm.clone(),
        local_date: task.local_date,
        dpd: task.dpd,
        priority: task.priority,
        not_before: task.not_before.with_timezone(&zone).fixed_offset(),
        not_after: task.not_after.with_timezone(&zone).fixed_offset(),
        calls_allowed,
        context: task.context.as_deref().and_then(|text| serde_json::from_str(text).ok()),
    }
}

/// Hands `agent_id` the best open human task of `queue` at `now`, leased until `now + ttl`, or
/// `None` when nothing can be handed out now.
///
/// Candidates are the open (`planned` or `ready`) human tasks of the queue whose window contains
/// `now` and whose borrower no agent holds, by `priority` descending then `id`. Each is checked
/// again against the latest state (flags, amount due, open promise, usable phones, cool-down,
/// the policy's caps recomputed from the attempts, the task's own calls, and the policy's
/// contact hours now in every zone of the borrower). A task failing a check that will not
/// change today leaves the queue (`cancelled`, or `done` when its calls are made) with the
/// reason code and an audit row; a task outside the hours only is passed over. The policy is the
/// task's strategy's, or `fallback` when that strategy is no longer loaded.
///
/// Claiming happens in one short write transaction per batch of candidates (`BEGIN IMMEDIATE`
/// on SQLite; `FOR UPDATE SKIP LOCKED` rows on PostgreSQL, so concurrent agents get disjoint
/// candidates and, when every candidate is locked by others at that instant, `None`). The
/// `ux_tasks_leased_borrower` index guarantees one leased task per borrower.
pub async fn lease_next(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    fallback: &Policy,
    queue: &str,
    agent_id: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Option<Lease>, WorkError> {
    check_agent(agent_id)?;
    check_ttl(ttl)?;
    if queue.trim().is_empty() {
        return Err(invalid("queue", "a queue name is required"));
    }
    let actor = Actor::Agent(agent_id.to_string()).code();
    let mut passed_over: Vec<i64> = Vec::new();
    loop {
        let txn = store::begin_write(db).await?;
        let candidates = store::lease_candidates(&txn, queue, now, &passed_over, LEASE_BATCH).await?;
        if candidates.is_empty() {
            txn.commit().await?;
            return Ok(None);
        }
        let context = Context::load(&txn, &candidates, now).await?;
        for task in &candidates {
            match recheck(task, &context, strategies, fallback, now) {
                Verdict::Pass { calls_allowed, .. } => {
                    let expires_at = now + ttl;
                    match store::claim_task(&txn, task.id, agent_id, now, expires_at).await? {
                        Claim::Claimed => {}
                        Claim::Gone | Claim::BorrowerHeld => continue,
                    }
                    store::record_audit_at(
                        &txn,
                        now,
                        &actor,
                        "task.leased",
                        "task",
                        &task.id.to_string(),
                        serde_json::json!({
                            "queue": queue,
                            "account_id": task.account_id,
                            "lease_expires_at": expires_at,
                            "calls_allowed": calls_allowed,
                        }),
                    )
                    .await?;
                    txn.commit().await?;
                    // The re-check found both; they are in the context.
                    let (Some(account), Some(borrower)) = (
                        context.accounts.get(&task.account_id),
                        context.accounts.get(&task.account_id).and_then(|a| context.borrowers.get(&a.borrower_id)),
                    ) else {
                        return Err(WorkError::NotFound(format!("account {}", task.account_id)));
                    };
                    return Ok(Some(Lease {
                        task: leased_task(task, borrower.primary_timezone(), calls_allowed),
                        account: account_view(account, borrower),
                        lease_expires_at: expires_at,
                    }));
                }
                Verdict::Wait { .. } => passed_over.push(task.id),
                Verdict::Remove { state, reason, detail } => {
                    if store::close_open_task(&txn, task.id, state, &reason, now).await? {
                        store::record_audit_at(
                            &txn,
                            now,
                            ENGINE,
                            if state == "done" { "task.done" } else { "task.cancelled" },
                            "task",
                            &task.id.to_string(),
                            serde_json::json!({"reason": reason, "detail": detail, "at": "lease"}),
                        )
                        .await?;
                    }
                }
            }
        }
        txn.commit().await?;
    }
}

/// Why a lease operation by `agent_id` on task `id` did not apply.
async fn lease_error(
    db: &impl ConnectionTrait,
    id: i64,
    agent_id: &str,
    now: DateTime<Utc>,
) -> Result<WorkError, WorkError> {
    let Some(task) = store::task_by_id(db, id).await? else {
        return Ok(WorkError::NotFound(format!("task {id}")));
    };
    if task.state != "leased" {
        return Ok(WorkError::Conflict(format!("task {id} is {}, not leased", task.state)));
    }
    if task.lease_agent.as_deref() != Some(agent_id) {
        return Ok(WorkError::NotYourLease(id));
    }
    match task.lease_expires_at {
        Some(expiry) if expiry <= now => {
            Ok(WorkError::Conflict(format!("the lease on task {id} expired at {}", expiry.to_rfc3339())))
        }
        _ => Ok(WorkError::Conflict(format!("task {id} changed meanwhile; try again"))),
    }
}

/// Extends the lease of `agent_id` on task `task_id` to `now + ttl`. Only the lease's agent
/// ([`WorkError::NotYourLease`]), only while leased and unexpired ([`WorkError::Conflict`]).
pub async fn heartbeat(
    db: &DatabaseConnection,
    task_id: i64,
    agent_id: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<LeaseRenewed, WorkError> {
    check_agent(agent_id)?;
    check_ttl(ttl)?;
    let expires_at = now + ttl;
    if store::extend_lease(db, task_id, agent_id, now, expires_at).await? {
        return Ok(LeaseRenewed { task_id, lease_expires_at: expires_at });
    }
    Err(lease_error(db, task_id, agent_id, now).await?)
}

async fn end(
    db: &DatabaseConnection,
    task_id: i64,
    agent_id: &str,
    now: DateTime<Utc>,
    done: bool,
) -> Result<TaskStateChanged, WorkError> {
    check_agent(agent_id)?;
    let (state, reason, action) =
        if done { ("done", "completed", "task.completed") } else { ("ready", "released", "task.released") };
    let txn = store::begin_write(db).await?;
    if store::end_lease(&txn, task_id, agent_id, now, state, reason, done).await? {
        store::record_audit_at(
            &txn,
            now,
            &Actor::Agent(agent_id.to_string()).code(),
            action,
            "task",
            &task_id.to_string(),
            serde_json::json!({}),
        )
        .await?;
        txn.commit().await?;
        return Ok(TaskStateChanged { task_id, state: state.to_string() });
    }
    txn.rollback().await?;
    Err(lease_error(db, task_id, agent_id, now).await?)
}

/// Gives the task back to its queue (`ready`, lease cleared). Same rules as [`heartbeat`].
pub async fn release(
    db: &DatabaseConnection,
    task_id: i64,
    agent_id: &str,
    now: DateTime<Utc>,
) -> Result<TaskStateChanged, WorkError> {
    end(db, task_id, agent_id, now, false).await
}

/// Marks the task `done` (the agent is recorded in `lease_agent`). Same rules as [`heartbeat`].
pub async fn complete(
    db: &DatabaseConnection,
    task_id: i64,
    agent_id: &str,
    now: DateTime<Utc>,
) -> Result<TaskStateChanged, WorkError> {
    end(db, task_id, agent_id, now, true).await
}

/// Returns every lease expired at `now` to its queue (`ready`, lease cleared, reason
/// `lease_expired`, an audit row each); returns how many.
pub async fn reap_expired_leases(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, WorkError> {
    let txn = store::begin_write(db).await?;
    let mut reaped = 0;
    for (id, agent) in store::expired_leases(&txn, now).await? {
        if store::return_expired_lease(&txn, id, now).await? {
            reaped += 1;
            store::record_audit_at(
                &txn,
                now,
                ENGINE,
                "task.lease_expired",
                "task",
                &id.to_string(),
                serde_json::json!({"agent": agent}),
            )
            .await?;
        }
    }
    txn.commit().await?;
    Ok(reaped)
}

/// Checks a report's fields on their own; returns the outcome and the attempt's instant.
fn check_report(report: &AttemptReport, now: DateTime<Utc>) -> Result<(Outcome, DateTime<Utc>), WorkError> {
    let outcome: Outcome =
        report.outcome.parse().map_err(|error: crate::domain::ParseCodeError| invalid("outcome", error.to_string()))?;
    let at = report.at.unwrap_or(now);
    if at > now + CLOCK_SKEW {
        return Err(invalid("at", format!("{} is in the future", at.to_rfc3339())));
    }
    match (&report.promise, outcome) {
        (None, Outcome::Promise) => return Err(invalid("promise", "is required with outcome `promise`")),
        (Some(_), other) if other != Outcome::Promise => {
            return Err(invalid("promise", format!("is only allowed with outcome `promise`, not `{other}`")));
        }
        (Some(promise), _) if promise.amount <= Money::ZERO => {
            return Err(invalid("promise.amount", "must be more than zero"));
        }
        _ => {}
    }
    match (report.callback_at, outcome) {
        (None, Outcome::Callback) => return Err(invalid("callback_at", "is required with outcome `callback`")),
        (Some(_), other) if other != Outcome::Callback => {
            return Err(invalid("callback_at", format!("is only allowed with outcome `callback`, not `{other}`")));
        }
        (Some(callback_at), _) if callback_at < at => {
            return Err(invalid("callback_at", "is before the attempt"));
        }
        _ => {}
    }
    if outcome == Outcome::WrongNumber && report.phone.as_deref().is_none_or(|phone| phone.trim().is_empty()) {
        return Err(invalid("phone", "is required with outcome `wrong_number`"));
    }
    Ok((outcome, at))
}

/// Whether `actor` may report on `task` at `now`.
fn authorize(task: &tasks::Model, actor: &Actor, now: DateTime<Utc>) -> Result<(), WorkError> {
    let human = task.channel == Channel::Human.code();
    match actor {
        Actor::Dialler if human => Err(WorkError::NotYourLease(task.id)),
        Actor::Dialler => Ok(()),
        Actor::Agent(_) if !human => Err(WorkError::NotYourLease(task.id)),
        Actor::Agent(agent) => {
            let mine = task.lease_agent.as_deref() == Some(agent.as_str());
            if !mine {
                return Err(WorkError::NotYourLease(task.id));
            }
            if task.state != "leased" {
                return Err(WorkError::Conflict(format!("task {} is {}, not leased", task.id, task.state)));
            }
            match task.lease_expires_at {
                Some(expiry) if expiry > now => Ok(()),
                _ => Err(WorkError::Conflict(format!("the lease on task {} has expired", task.id))),
            }
        }
    }
}

/// Records one contact attempt on task `task_id` and applies its effects, all in one
/// transaction:
/// - `promise`: an open promise (linked to the attempt); the account's other open tasks are
///   cancelled (`promise`);
/// - `do_not_call`: the account gets the `do_not_call` flag; its other open call tasks are
///   cancelled (`flag:do_not_call`);
/// - `dispute`: the account gets the `dispute` flag; all its other open tasks are cancelled
///   (`flag:dispute`);
/// - `wrong_number`: the phone is marked as a wrong number;
/// - `callback`: `callback_at` is stored with the attempt;
/// - a dialler's report closes its (robot, SMS, e-mail) task as `done` (`attempted`), also
///   when it was `dispatched`;
/// - on a robot task, `callback`, or the rule's `escalate.after_failed_attempts` unanswered
///   robot calls on the account within [`ESCALATION_WINDOW_DAYS`] local days, escalate the
///   account to the rule's human queue (see [`Escalation`] and `docs/operations.md`).
///
/// Tasks cancelled here that were announced by a `task.ready` webhook (dispatched) get a
/// `task.cancelled` message in the same transaction.
///
/// An agent reports only on a human task whose unexpired lease it holds; the dialler only on
/// non-human tasks. A report repeating a stored attempt (same account, channel and instant)
/// changes nothing and comes back with `duplicate: true`.
pub async fn record_attempt(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    fallback: &Policy,
    task_id: i64,
    actor: &Actor,
    report: AttemptReport,
    now: DateTime<Utc>,
) -> Result<AttemptRecorded, WorkError> {
    if let Actor::Agent(agent) = actor {
        check_agent(agent)?;
    }
    let (outcome, at) = check_report(&report, now)?;
    let txn = store::begin_write(db).await?;
    let task = store::lock_task(&txn, task_id).await?.ok_or_else(|| WorkError::NotFound(format!("task {task_id}")))?;
    authorize(&task, actor, now)?;
    let channel: Channel = task.channel.parse().map_err(|error: crate::domain::ParseCodeError| {
        StoreError::Corrupt { table: "tasks", id: task_id.to_string(), message: error.to_string() }
    })?;
    let (accounts, borrowers) = store::parties_by_id(&txn, &[task.account_id.as_str()]).await?;
    let account =
        accounts.get(&task.account_id).ok_or_else(|| WorkError::NotFound(format!("account {}", task.account_id)))?;
    let borrower = borrowers
        .get(&account.borrower_id)
        .ok_or_else(|| WorkError::NotFound(format!("borrower {}", account.borrower_id)))?;

    let address = report.phone.as_deref().map(str::trim).filter(|phone| !phone.is_empty());
    if let Some(address) = address {
        let kind = if channel == Channel::Email { ContactKind::Email } else { ContactKind::Phone };
        if !borrower.contact_points.iter().any(|point| point.kind == kind && point.address == address) {
            return Err(invalid("phone", format!("`{address}` is not one of the borrower's {}s", kind.code())));
        }
    }
    if let Some(promise) = &report.promise {
        let local_day = at.with_timezone(&borrower.primary_timezone()).date_naive();
        if promise.due_on < local_day {
            return Err(invalid(
                "promise.due_on",
                format!("{} is before the attempt's day {local_day}", promise.due_on),
            ));
        }
    }

    let actor_code = actor.code();
    let attempt = ReportedAttempt {
        account_id: account.id.clone(),
        borrower_id: account.borrower_id.clone(),
        task_id,
        channel,
        address: address.map(str::to_string),
        at,
        outcome,
        note: report.note.clone(),
        callback_at: report.callback_at,
        actor: actor_code.clone(),
    };
    let mut recorded = AttemptRecorded {
        attempt_id: 0,
        task_id,
        account_id: account.id.clone(),
        outcome,
        at,
        duplicate: false,
        promise_id: None,
        flags_set: Vec::new(),
        tasks_cancelled: Vec::new(),
        wrong_number_marked: false,
        escalation: None,
    };
    let Some(attempt_id) = store::insert_reported_attempt(&txn, &attempt).await? else {
        let existing = store::attempt_at(&txn, &account.id, channel, at).await?;
        txn.rollback().await?;
        return match existing {
            Some((id, Some(existing_task), code)) if existing_task == task_id && code == outcome.code() => {
                recorded.attempt_id = id;
                recorded.duplicate = true;
                Ok(recorded)
            }
            _ => Err(WorkError::Conflict(format!(
                "another attempt on account {} by {channel} at {} is already recorded",
                account.id,
                at.to_rfc3339()
            ))),
        };
    };
    recorded.attempt_id = attempt_id;

    let cancel = match outcome {
        Outcome::Promise => {
            if let Some(promise) = &report.promise {
                recorded.promise_id =
                    store::insert_attempt_promise(&txn, &account.id, promise.amount, promise.due_on, at, attempt_id)
                        .await?;
                if let Some(promise_id) = recorded.promise_id {
                    store::record_audit_at(
                        &txn,
                        now,
                        &actor_code,
                        "promise.made",
                        "promise",
                        &promise_id.to_string(),
                        serde_json::json!({
                            "account_id": account.id,
                            "amount": promise.amount,
                            "due_on": promise.due_on,
                            "attempt_id": attempt_id,
                        }),
                    )
                    .await?;
                }
            }
            Some((false, "promise".to_string()))
        }
        Outcome::DoNotCall | Outcome::Dispute => {
            let flag = if outcome == Outcome::Dispute { Flag::Dispute } else { Flag::DoNotCall };
            if store::add_account_flag(&txn, &account.id, flag, now).await? {
                recorded.flags_set.push(flag);
                store::record_audit_at(
                    &txn,
                    now,
                    &actor_code,
                    "account.flag_set",
                    "account",
                    &account.id,
                    serde_json::json!({"flag": flag.code(), "attempt_id": attempt_id}),
                )
                .await?;
            }
            Some((flag == Flag::DoNotCall, format!("flag:{flag}")))
        }
        Outcome::WrongNumber => {
            if let Some(phone) = address {
                recorded.wrong_number_marked = store::mark_wrong_numbers(&txn, &[(&borrower.id, phone)]).await? > 0;
                if recorded.wrong_number_marked {
                    store::record_audit_at(
                        &txn,
                        now,
                        &actor_code,
                        "contact_point.wrong_number",
                        "borrower",
                        &borrower.id,
                        serde_json::json!({"phone": phone, "attempt_id": attempt_id}),
                    )
                    .await?;
                }
            }
            None
        }
        _ => None,
    };
    if let Some((calls_only, reason)) = &cancel {
        let filter = if *calls_only { ChannelFilter::Calls } else { ChannelFilter::All };
        let closed = store::close_tasks_of_accounts(
            &txn,
            &[account.id.as_str()],
            filter,
            Some(task_id),
            "cancelled",
            reason,
            now,
        )
        .await?;
        crate::dispatch::enqueue_cancellations(&txn, &closed, reason, now).await?;
        recorded.tasks_cancelled = closed.iter().map(|task| task.id).collect();
        for id in &recorded.tasks_cancelled {
            store::record_audit_at(
                &txn,
                now,
                &actor_code,
                "task.cancelled",
                "task",
                &id.to_string(),
                serde_json::json!({"reason": reason, "attempt_id": attempt_id}),
            )
            .await?;
        }
    }
    if channel != Channel::Human && store::close_open_task(&txn, task_id, "done", "attempted", now).await? {
        store::record_audit_at(
            &txn,
            now,
            &actor_code,
            "task.done",
            "task",
            &task_id.to_string(),
            serde_json::json!({"reason": "attempted", "attempt_id": attempt_id}),
        )
        .await?;
    }
    if channel == Channel::Robot && cancel.is_none() {
        let trigger = Trigger { outcome, callback_at: report.callback_at, attempt_id, actor: &actor_code };
        recorded.escalation = escalate(&txn, strategies, fallback, &task, account, borrower, &trigger, now).await?;
    }
    txn.commit().await?;
    Ok(recorded)
}

/// Resolves open promises at `now`. A promise is **kept** as soon as the payments of its account
/// made at or after the promise (and at or before `now`), on or before its deadline, add up to
/// its amount; it is **broken** once its deadline has passed without that, and the account's
/// `broken_promises` goes up by one. The deadline is `due_on + grace_days`, inclusive, on the
/// calendar of the borrower's primary time zone (UTC when the borrower is unknown). Each
/// resolution leaves an audit row; promises still in time stay open.
pub async fn evaluate_promises(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    grace_days: u32,
) -> Result<PromiseReport, WorkError> {
    let mut report = PromiseReport::default();
    let mut after = 0i64;
    loop {
        let page = store::open_promises_page(db, after, PROMISE_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let mut ids: Vec<&str> = page.iter().map(|promise| promise.account_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let since = page.iter().map(|promise| promise.made_at).min().unwrap_or(now);
        let payments = store::payments_since(db, &ids, since).await?;
        let mut decisions = Vec::new();
        for promise in &page {
            let zone = promise.timezones.split(';').map(str::trim).find(|zone| !zone.is_empty());
            let zone = zone.and_then(|zone| parse_timezone(zone).ok()).unwrap_or(Tz::UTC);
            let deadline = promise.due_on + Duration::days(i64::from(grace_days));
            let paid: Money = payments
                .get(&promise.account_id)
                .into_iter()
                .flatten()
                .filter(|(paid_at, _)| {
                    *paid_at >= promise.made_at
                        && *paid_at <= now
                        && paid_at.with_timezone(&zone).date_naive() <= deadline
                })
                .map(|(_, amount)| *amount)
                .sum();
            if paid >= promise.amount {
                decisions.push((promise, "kept", paid));
            } else if now.with_timezone(&zone).date_naive() > deadline {
                decisions.push((promise, "broken", paid));
            }
        }
        if !decisions.is_empty() {
            let txn = store::begin_write(db).await?;
            for (promise, status, paid) in decisions {
                if !store::resolve_promise(&txn, promise.id, status, now).await? {
                    continue;
                }
                if status == "broken" {
                    store::count_broken_promise(&txn, &promise.account_id, now).await?;
                    report.broken += 1;
                } else {
                    report.kept += 1;
                }
                store::record_audit_at(
                    &txn,
                    now,
                    ENGINE,
                    if status == "broken" { "promise.broken" } else { "promise.kept" },
                    "promise",
                    &promise.id.to_string(),
                    serde_json::json!({
                        "account_id": promise.account_id,
                        "amount": promise.amount,
                        "due_on": promise.due_on,
                        "paid": paid,
                        "grace_days": grace_days,
                    }),
                )
                .await?;
            }
            txn.commit().await?;
        }
        if (page.len() as u64) < PROMISE_PAGE {
            break;
        }
    }
    Ok(report)
}

/// What set off an escalation check.
struct Trigger<'a> {
    outcome: Outcome,
    callback_at: Option<DateTime<Utc>>,
    attempt_id: i64,
    actor: &'a str,
}

/// Escalates the account of robot task `task` to its rule's human queue when the attempt
/// calls for it (see [`record_attempt`]): closes the account's other robot tasks as
/// `escalated` (with `task.cancelled` for the dispatched ones) and, unless a human task of
/// that queue is already open today, creates one `planned` task for the rest of today's
/// allowed window (from `callback_at` when later), re-checked like a lease first. No window
/// left, or a failed re-check, creates none and leaves an audit row saying why.
#[allow(clippy::too_many_arguments)]
async fn escalate(
    txn: &DatabaseTransaction,
    strategies: &StrategySet,
    fallback: &Policy,
    task: &tasks::Model,
    account: &Account,
    borrower: &Borrower,
    trigger: &Trigger<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Escalation>, WorkError> {
    let Some((after, queue)) = rule_of(strategies, task).and_then(|rule| rule.treatment.escalate.clone()) else {
        return Ok(None);
    };
    let zone = borrower.primary_timezone();
    let local_date = now.with_timezone(&zone).date_naive();
    let first_day = local_date - Duration::days(ESCALATION_WINDOW_DAYS - 1);
    let recent = store::attempts_of_borrowers(txn, &[borrower.id.as_str()], now - Duration::days(8)).await?;
    let mine: Vec<&store::StoredAttempt> = recent
        .get(&borrower.id)
        .into_iter()
        .flatten()
        .filter(|attempt| {
            let day = attempt.record.at.with_timezone(&zone).date_naive();
            attempt.record.account_id == account.id && attempt.record.at <= now && day >= first_day && day <= local_date
        })
        .collect();
    let failed = mine
        .iter()
        .filter(|attempt| attempt.record.channel == Channel::Robot && attempt.record.outcome.is_unanswered())
        .count();
    let kind = if trigger.outcome == Outcome::Callback {
        "callback"
    } else if trigger.outcome.is_unanswered() && failed >= after as usize {
        "failed_attempts"
    } else {
        return Ok(None);
    };
    let reason = format!("escalated:{kind}");
    let closed = store::close_tasks_of_accounts(
        txn,
        &[account.id.as_str()],
        ChannelFilter::Only(Channel::Robot),
        Some(task.id),
        "escalated",
        &reason,
        now,
    )
    .await?;
    crate::dispatch::enqueue_cancellations(txn, &closed, &reason, now).await?;
    for closed_task in &closed {
        store::record_audit_at(
            txn,
            now,
            trigger.actor,
            "task.escalated",
            "task",
            &closed_task.id.to_string(),
            serde_json::json!({"reason": reason, "queue": &*queue, "attempt_id": trigger.attempt_id}),
        )
        .await?;
    }
    let mut escalation = Escalation {
        trigger: kind.to_string(),
        queue: queue.to_string(),
        robot_tasks_escalated: closed.iter().map(|task| task.id).collect(),
        human_task: None,
        refused: None,
    };
    let open_states = ["planned", "ready", "leased"];
    if let Some(existing) = store::tasks_for_account(txn, &account.id).await?.into_iter().find(|other| {
        other.local_date == local_date
            && other.channel == Channel::Human.code()
            && other.queue.as_deref() == Some(&*queue)
            && open_states.contains(&other.state.as_str())
    }) {
        escalation.human_task = Some(existing.id);
        return Ok(Some(escalation));
    }

    let policy = policy_of(strategies, fallback, task);
    let start = trigger.callback_at.filter(|at| *at > now).unwrap_or(now);
    let refuse = |escalation: &mut Escalation, code: String, detail: String| {
        escalation.refused = Some(code.clone());
        serde_json::json!({"reason": code, "detail": detail, "queue": &*queue, "from_task": task.id})
    };
    let Some(window) = allowed_intervals(&borrower.timezones, local_date, &[policy.hours], start).into_iter().next()
    else {
        let detail = refuse(
            &mut escalation,
            "no_window".into(),
            format!("no time left on {local_date} inside {}'s contact hours", policy.name),
        );
        store::record_audit_at(txn, now, trigger.actor, "account.escalation_refused", "account", &account.id, detail)
            .await?;
        return Ok(Some(escalation));
    };
    let promises = store::open_promises_of(txn, &[account.id.as_str()]).await?;
    let context = serde_json::json!({
        "escalated_from": task.id,
        "trigger": kind,
        "callback_at": trigger.callback_at,
        "after_failed_attempts": after,
        "failed_attempts": failed,
        "window_days": ESCALATION_WINDOW_DAYS,
        "attempts": mine.iter().map(|attempt| serde_json::json!({
            "at": attempt.record.at,
            "channel": attempt.record.channel.code(),
            "address": attempt.record.address,
            "outcome": attempt.record.outcome.code(),
        })).collect::<Vec<_>>(),
        "promise": promises.get(&account.id).map(|promise| serde_json::json!({
            "amount": promise.amount,
            "due_on": promise.due_on,
            "made_at": promise.made_at,
        })),
    });
    let wanted = rule_of(strategies, task).map_or(1, |rule| rule.treatment.attempts_per_day.max(1));
    let mut candidate = task.clone();
    candidate.id = 0;
    candidate.channel = Channel::Human.code().to_string();
    candidate.queue = Some(queue.to_string());
    candidate.template = None;
    candidate.calls_allowed = i32::try_from(wanted).unwrap_or(i32::MAX);
    candidate.not_before = window.start;
    candidate.not_after = window.end;
    candidate.local_date = local_date;
    candidate.state = "planned".into();
    candidate.context = Some(context.to_string());
    let checked = Context::load(txn, std::slice::from_ref(&candidate), now).await?;
    let calls_allowed = match recheck(&candidate, &checked, strategies, fallback, now) {
        Verdict::Pass { calls_allowed, .. } => calls_allowed,
        Verdict::Wait { .. } => wanted,
        Verdict::Remove { reason, detail, .. } => {
            let detail = refuse(&mut escalation, reason, detail);
            store::record_audit_at(
                txn,
                now,
                trigger.actor,
                "account.escalation_refused",
                "account",
                &account.id,
                detail,
            )
            .await?;
            return Ok(Some(escalation));
        }
    };
    let new_task = store::NewTask {
        plan_run_id: task.plan_run_id,
        account_id: account.id.clone(),
        borrower_id: account.borrower_id.clone(),
        local_date,
        dpd: account.dpd_on(local_date),
        stage: task.stage.clone(),
        strategy: task.strategy.clone(),
        rule: task.rule.clone(),
        arm: task.arm.clone(),
        channel: Channel::Human.code().to_string(),
        queue: Some(queue.to_string()),
        calls_allowed: i32::try_from(calls_allowed).unwrap_or(i32::MAX),
        not_before: window.start,
        not_after: window.end,
        priority: task.priority,
        state: "planned".into(),
        context: candidate.context.clone(),
    };
    let id = store::insert_task(txn, &new_task, now).await?;
    escalation.human_task = Some(id);
    store::record_audit_at(
        txn,
        now,
        trigger.actor,
        "task.escalation_created",
        "task",
        &id.to_string(),
        serde_json::json!({
            "from_task": task.id,
            "trigger": kind,
            "queue": &*queue,
            "calls_allowed": calls_allowed,
            "attempt_id": trigger.attempt_id,
        }),
    )
    .await?;
    Ok(Some(escalation))
}
