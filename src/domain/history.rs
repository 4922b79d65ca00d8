//! What already happened to a borrower's accounts: attempts, open promises, conversations, and
//! which local days are already planned. Loaded by the store, read by policy and planner.

use super::{Channel, Money, Outcome};
use chrono::{DateTime, NaiveDate, Utc};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// One contact attempt as the caps and cool-downs need it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    /// The account the attempt was about.
    pub account_id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// How.
    pub channel: Channel,
    /// The phone number or e-mail address used, when known.
    pub address: Option<String>,
    /// What happened.
    pub outcome: Outcome,
}

/// An open promise to pay.
#[derive(Debug, Clone, PartialEq)]
pub struct PromiseRecord {
    /// Promised amount.
    pub amount: Money,
    /// The day by which the borrower promised to pay.
    pub due_on: NaiveDate,
    /// When the promise was made.
    pub made_at: DateTime<Utc>,
}

/// The history the planner needs, for the whole book at once.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Recent attempts (at least the last 8 days) by borrower id, sorted by time.
    pub attempts_by_borrower: HashMap<String, Vec<AttemptRecord>>,
    /// Open promises by account id.
    pub open_promises: HashMap<String, PromiseRecord>,
    /// The last conversation (any time) by account id.
    pub last_conversation: HashMap<String, DateTime<Utc>>,
    /// `(account id, local date)` pairs that already have tasks: re-planning them adds nothing.
    pub planned_days: HashSet<(String, NaiveDate)>,
}

impl History {
    /// Recent attempts of a borrower, oldest first.
    pub fn attempts_of(&self, borrower_id: &str) -> &[AttemptRecord] {
        self.attempts_by_borrower.get(borrower_id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Adds an attempt, keeping each borrower's list sorted by time.
    pub fn record_attempt(&mut self, borrower_id: &str, attempt: AttemptRecord) {
        if attempt.outcome.is_conversation() {
            let last = self.last_conversation.entry(attempt.account_id.clone()).or_insert(attempt.at);
            if *last < attempt.at {
                *last = attempt.at;
            }
        }
        let list = self.attempts_by_borrower.entry(borrower_id.to_string()).or_default();
        let position = list.partition_point(|existing| existing.at <= attempt.at);
        list.insert(position, attempt);
    }
}
