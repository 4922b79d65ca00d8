//! What already happened to a borrower's accounts: attempts, calls in flight, open promises,
//! conversations, and which local days are already planned. Loaded by the store (one loader,
//! `store::load_history`), read by the contact gate, the planner and explain.

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
    /// The phone number or e-mail address used, when known (the report's, else its task's).
    pub address: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// The task it carried out, when it carried one out.
    pub task_id: Option<i64>,
    /// A call the borrower asked for (Reg F §1006.14(b)(3)): outside the 7-in-7 count.
    pub exempt: bool,
    /// A call the borrower placed (an inbound call): it counts toward no call cap, but a
    /// conversation on it starts the cool-down like any other.
    pub inbound: bool,
}

impl AttemptRecord {
    /// An attempt that carried out no task and was not asked for (imports, tests).
    pub fn new(account_id: &str, at: DateTime<Utc>, channel: Channel, address: Option<&str>, outcome: Outcome) -> Self {
        AttemptRecord {
            account_id: account_id.to_string(),
            at,
            channel,
            address: address.map(str::to_string),
            outcome,
            task_id: None,
            exempt: false,
            inbound: false,
        }
    }
}

/// A task handed to a machine (`dispatched`) or a person (`leased`) whose outcome is not
/// reported yet: the gate counts its calls as possibly connected.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlight {
    /// The task.
    pub task_id: i64,
    /// Its account.
    pub account_id: String,
    /// Its channel.
    pub channel: Channel,
    /// The address it was sent or leased to, when known.
    pub address: Option<String>,
    /// Calls it may place in all (robot: 1; human: its `calls_allowed`); the calls already
    /// reported on it are subtracted by the gate.
    pub calls_allowed: u32,
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

/// The history the planner and the gate need, for the whole book or a few borrowers.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Recent attempts (at least the last 8 days) by borrower id, sorted by time.
    pub attempts_by_borrower: HashMap<String, Vec<AttemptRecord>>,
    /// Tasks in flight (dispatched or leased) by borrower id.
    pub in_flight_by_borrower: HashMap<String, Vec<InFlight>>,
    /// Open promises by account id.
    pub open_promises: HashMap<String, PromiseRecord>,
    /// The last conversation (any time) by account id.
    pub last_conversation: HashMap<String, DateTime<Utc>>,
    /// `(account id, local date)` pairs that already have planned tasks: re-planning them adds nothing.
    pub planned_days: HashSet<(String, NaiveDate)>,
}

/// What the gate reads about one account of one borrower.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ledger<'a> {
    /// The borrower's recent attempts on all their accounts, oldest first.
    pub attempts: &'a [AttemptRecord],
    /// The borrower's tasks in flight on all their accounts.
    pub in_flight: &'a [InFlight],
    /// The account's open promise.
    pub open_promise: Option<&'a PromiseRecord>,
    /// The account's last conversation.
    pub last_conversation: Option<DateTime<Utc>>,
}

impl History {
    /// Recent attempts of a borrower, oldest first.
    pub fn attempts_of(&self, borrower_id: &str) -> &[AttemptRecord] {
        self.attempts_by_borrower.get(borrower_id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// What the gate reads about `account_id` of `borrower_id`.
    pub fn ledger(&self, borrower_id: &str, account_id: &str) -> Ledger<'_> {
        Ledger {
            attempts: self.attempts_of(borrower_id),
            in_flight: self.in_flight_by_borrower.get(borrower_id).map(Vec::as_slice).unwrap_or(&[]),
            open_promise: self.open_promises.get(account_id),
            last_conversation: self.last_conversation.get(account_id).copied(),
        }
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

    /// Adds a task in flight.
    pub fn record_in_flight(&mut self, borrower_id: &str, task: InFlight) {
        self.in_flight_by_borrower.entry(borrower_id.to_string()).or_default().push(task);
    }
}
