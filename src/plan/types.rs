//! What a plan run decides: tasks, skips with their reason codes, and experiment entries.

use crate::domain::{Channel, Money, Reason};
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Serialize;
use std::sync::Arc;

/// One unit of work for one account on its local day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    /// The account to work (shared by the account's tasks of the day).
    pub account_id: Arc<str>,
    /// Its borrower.
    pub borrower_id: Arc<str>,
    /// The borrower's local day this task belongs to (primary zone).
    pub local_date: NaiveDate,
    /// Days past due on that day.
    pub dpd: i32,
    /// Stage name.
    pub stage: Arc<str>,
    /// Strategy name.
    pub strategy: Arc<str>,
    /// The rule that matched.
    pub rule: Arc<str>,
    /// Experiment arm, when the stage runs an experiment.
    pub arm: Option<Arc<str>>,
    /// Channel.
    pub channel: Channel,
    /// Human work queue (human channel only).
    pub queue: Option<Arc<str>>,
    /// Template name (`sms/reminder`).
    pub template: Option<Arc<str>>,
    /// 1-based attempt number within the day.
    pub attempt: u32,
    /// Calls this task may place (human tasks: the rule's `calls_per_day` within the caps; others: 1).
    pub calls_allowed: u32,
    /// Earliest contact instant, at the borrower's primary offset.
    pub not_before: DateTime<FixedOffset>,
    /// Latest contact instant, at the borrower's primary offset.
    pub not_after: DateTime<FixedOffset>,
    /// Larger is served first.
    pub priority: f64,
    /// The contact model's estimated probability of a right-party contact at `not_before`
    /// (`timing = "learned"` with a model; `None` otherwise).
    pub p_contact: Option<f64>,
}

/// Why an account gets no task today.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skip {
    /// The account.
    pub account_id: String,
    /// Its stage, when one was found.
    pub stage: Option<Arc<str>>,
    /// Stable reason code (`not_due`, `flag:deceased`, `cap:calls_7d`, ...).
    pub reason: Reason,
    /// A sentence for people.
    pub detail: String,
}

/// The outcome of planning a book.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Tasks, in account order.
    pub tasks: Vec<Task>,
    /// Skips, in account order.
    pub skips: Vec<Skip>,
}

/// An account entering an experiment: the plan put it in a stage that an experiment of its
/// strategy splits. Stored once per account and experiment (the first entry stays).
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentEntry {
    /// The experiment.
    pub experiment: Arc<str>,
    /// Its strategy.
    pub strategy: Arc<str>,
    /// The account.
    pub account_id: String,
    /// Its borrower (the unit of assignment).
    pub borrower_id: String,
    /// The borrower's arm.
    pub arm: Arc<str>,
    /// The stage entered.
    pub stage: Arc<str>,
    /// Days past due when entering (a pre-entry covariate).
    pub dpd: i32,
    /// Balance when entering (a pre-entry covariate).
    pub balance: Money,
    /// The account's currency.
    pub currency: String,
}
