//! Agents' work queues and what happens on a contact, one concern a module: leasing human tasks
//! (`lease`: lease, heartbeat, release, complete, the reaper), recording attempts and applying
//! their effects (`attempts`), handing a borrower from the robot to a person or to a callback
//! (`handover`), and resolving promises (`promises`). The decisions are the contact gate's
//! (`policy::gate`, asked through `ops::recheck`) and the pure rules of `domain::effects` and
//! `domain::promise`; these use cases load, ask and write.
//!
//! They are behind `POST /v1/queues/{queue}/lease`, `POST /v1/tasks/{id}/...` and the
//! scheduler's jobs. They never read the clock (`now` is an argument), never speak HTTP and
//! never hold a transaction across anything but their own few statements.

mod attempts;
mod handover;
pub mod inbound;
mod lease;
mod promises;

pub use attempts::record_attempt;
pub use lease::{complete, heartbeat, lease_next, reap_expired_leases, release};
pub use promises::evaluate_promises;

use crate::domain::{Flag, Money, Outcome};
use crate::policy::Policy;
use crate::store::StoreError;
use crate::strategy::StrategySet;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use sea_orm::DbErr;
use serde::{Deserialize, Serialize};

/// How far in the future a reported attempt's `at` may be (clocks differ a little).
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// The audit actor of decisions the engine takes on its own (re-checks, reaper, promises).
const ENGINE: &str = "engine";

/// How far after the attempt a promise's `due_on` may be, by default (`promise_max_days`).
pub const PROMISE_MAX_DAYS: u32 = 60;

/// What every work use case decides with: the strategies in force, the policy of tasks whose
/// strategy is no longer loaded, and the lender's bounds on reports.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The strategy set in force.
    pub strategies: &'a StrategySet,
    /// The policy for tasks whose strategy is no longer loaded.
    pub fallback: &'a Policy,
    /// How many days after the attempt's local day a promise may fall due at most.
    pub promise_max_days: u32,
}

impl<'a> Rules<'a> {
    /// The rules with the default bounds ([`PROMISE_MAX_DAYS`]).
    pub fn new(strategies: &'a StrategySet, fallback: &'a Policy) -> Rules<'a> {
        Rules { strategies, fallback, promise_max_days: PROMISE_MAX_DAYS }
    }
}

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
    /// Calls the agent may still place on this account now (rule, task history and caps,
    /// counting other calls in flight as connected).
    pub calls_allowed: u32,
    /// What the gate said limited `calls_allowed`, when a cap did (`cap:rpc_per_day`, ...).
    pub limited_by: Option<String>,
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
    /// Phones the agent may call now: the borrower's own, current, not opted out of human
    /// calls, with calls left today under the policy's per-number cap.
    pub phones: Vec<String>,
    /// Under a per-number cap (`cn-gbt-45251`): the calls each phone of `phones` has left today
    /// (unanswered calls count against it; other calls in flight to it are counted as used).
    /// Place no more than that on a phone; `calls_allowed` is the total. Empty without such a
    /// cap.
    pub phone_calls_left: std::collections::BTreeMap<String, u32>,
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
    /// How long the call took, talking and wrap-up, in seconds (agents report it; reports sum
    /// human calls' durations as agent minutes).
    #[serde(default)]
    pub duration_seconds: Option<u32>,
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

fn invalid(field: &str, message: impl Into<String>) -> WorkError {
    WorkError::Invalid { field: field.to_string(), message: message.into() }
}

fn check_agent(agent_id: &str) -> Result<(), WorkError> {
    if agent_id.trim().is_empty() {
        return Err(invalid("agent", "an agent id is required"));
    }
    Ok(())
}
