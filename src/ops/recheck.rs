//! Every hand-off of a stored task asks the one contact gate (`policy::gate`) through this:
//! [`Context::load`] reads the accounts, borrowers and history of a batch of tasks with the one
//! history loader, and [`recheck`] turns a task row into the gate's question and its answer
//! into a [`Verdict`] — pass (with the room and the addresses usable now), wait, or remove.
//!
//! No contact rule lives here: only the mapping from a stored task to the gate's terms (its
//! strategy's policy and rule, its window, its calls, whether the borrower asked for it).
//! It never writes and never reads the clock.

use crate::domain::{Account, Borrower, Channel, History, Ledger, Portfolio, Reason, TaskOrigin, TaskState};
use crate::policy::{Ask, HandOff, Interval, Policy, Refusal, Room, gate};
use crate::store::{self, StoreError};
use crate::strategy::{Rule, Strategy, StrategySet};
use chrono::{DateTime, Duration, Utc};
use entity::tasks;
use sea_orm::ConnectionTrait;

/// How far back the history of a hand-off reaches: the 7-day caps need 7 local days, and the
/// borrower's zones may be a day apart.
pub(crate) const HISTORY_DAYS: i64 = 8;

/// Everything the gate reads about a batch of tasks.
#[derive(Default)]
pub(crate) struct Context {
    pub(crate) book: Portfolio,
    pub(crate) history: History,
}

impl Context {
    /// Reads the accounts of `tasks` with their borrowers, and the borrowers' history (attempts
    /// of the last [`HISTORY_DAYS`] days, calls in flight, open promises, last conversations).
    pub(crate) async fn load(
        db: &impl ConnectionTrait,
        tasks: &[tasks::Model],
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let mut account_ids: Vec<&str> = tasks.iter().map(|task| task.account_id.as_str()).collect();
        account_ids.sort_unstable();
        account_ids.dedup();
        Self::load_accounts(db, &account_ids, now).await
    }

    /// [`Context::load`] for accounts given by id: one round trip (`store::load_hand_off`).
    pub(crate) async fn load_accounts(
        db: &impl ConnectionTrait,
        account_ids: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let (book, history) = store::load_hand_off(db, account_ids, now - Duration::days(HISTORY_DAYS)).await?;
        Ok(Context { book, history })
    }

    /// The stored account of that id.
    pub(crate) fn account(&self, id: &str) -> Option<&Account> {
        self.book.accounts.iter().find(|account| account.id == id)
    }

    /// The account and borrower of a task, when both are stored.
    pub(crate) fn parties(&self, task: &tasks::Model) -> Option<(&Account, &Borrower)> {
        let account = self.account(&task.account_id)?;
        Some((account, self.book.borrowers.get(&account.borrower_id)?))
    }
}

/// What the gate says about one task now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// It may be handed off now, with this room, to these addresses (those with calls left,
    /// in stored order; the first is where a message goes), each with the calls it has left
    /// under the per-number cap (`u32::MAX` when none applies).
    Pass { room: Room, addresses: Vec<String>, calls_left: Vec<u32> },
    /// Not now (outside the contact hours, before its window, within `min_gap`, or a cap
    /// reached only by calls still in flight); it stays as it is.
    Wait { reason: Reason, detail: String },
    /// It leaves the queue for the day: the state it moves to, the reason code and a sentence.
    Remove { state: TaskState, reason: Reason, detail: String },
}

impl Verdict {
    /// The first address of a pass.
    pub(crate) fn to(&self) -> Option<&str> {
        match self {
            Verdict::Pass { addresses, .. } => addresses.first().map(String::as_str),
            _ => None,
        }
    }
}

/// The loaded strategy of that name.
pub(crate) fn strategy_of<'a>(strategies: &'a StrategySet, name: &str) -> Option<&'a Strategy> {
    strategies.strategies.iter().find(|strategy| &*strategy.name == name)
}

/// The rule that planned `task`, when its strategy is still loaded and the rule still exists.
pub(crate) fn rule_of<'a>(strategies: &'a StrategySet, task: &tasks::Model) -> Option<&'a Rule> {
    strategy_of(strategies, &task.strategy)?.rules.iter().find(|rule| *rule.name == *task.rule)
}

/// The policy in force for `task`: its strategy's, or `fallback` when that is no longer loaded.
pub(crate) fn policy_of<'a>(strategies: &'a StrategySet, fallback: &'a Policy, task: &tasks::Model) -> &'a Policy {
    strategy_of(strategies, &task.strategy).map_or(fallback, |strategy| &strategy.policy)
}

/// The gate's terms for a stored task at a hand-off.
pub(crate) fn hand_off_of(task: &tasks::Model, strategies: &StrategySet) -> HandOff {
    let human = task.channel == Channel::Human.code();
    // An escalated or callback human task carries a robot rule: its own `calls_allowed` counts.
    let rule_calls = rule_of(strategies, task)
        .filter(|rule| human && rule.treatment.channel == Channel::Human)
        .map(|rule| rule.treatment.calls_per_day);
    HandOff {
        task_id: task.id,
        window: Interval { start: task.not_before, end: task.not_after },
        calls_allowed: if human { rule_calls.unwrap_or(u32::try_from(task.calls_allowed).unwrap_or(0)) } else { 1 },
        // The borrower asked for this call (a callback) or is on the line (a transfer of their
        // own inbound call): consent-based, outside the 7-in-7 count and the cool-down.
        exempt: task.origin == TaskOrigin::Callback.code() || task.origin == TaskOrigin::Transfer.code(),
    }
}

/// The gate's question about a stored task and the ledger it reads, or why there is none (an
/// unknown channel, the account or borrower gone). The policy is the task's strategy's, or
/// `fallback` when that strategy is no longer loaded; the rule's `min_gap` applies to robot,
/// SMS and e-mail tasks.
pub(crate) fn ask_of<'a>(
    task: &tasks::Model,
    context: &'a Context,
    strategies: &'a StrategySet,
    fallback: &'a Policy,
) -> Result<(Ask<'a>, Ledger<'a>), Verdict> {
    let remove = |reason: Reason, detail: String| Verdict::Remove { state: TaskState::Cancelled, reason, detail };
    let Ok(channel) = task.channel.parse::<Channel>() else {
        return Err(remove(Reason::NotLive, format!("unknown channel `{}`", task.channel)));
    };
    let Some(account) = context.account(&task.account_id) else {
        return Err(remove(Reason::NoContactPoint, format!("account {} is not in the book", task.account_id)));
    };
    let Some(borrower) = context.book.borrowers.get(&account.borrower_id) else {
        return Err(remove(Reason::NoContactPoint, format!("borrower {} is not in the book", account.borrower_id)));
    };
    let rule = rule_of(strategies, task).filter(|rule| rule.treatment.channel == channel);
    let min_gap = match rule {
        Some(rule) if channel != Channel::Human => Duration::minutes(i64::from(rule.treatment.min_gap_minutes)),
        _ => Duration::zero(),
    };
    let ask = Ask {
        account,
        borrower,
        channel,
        policy: policy_of(strategies, fallback, task),
        min_gap,
        hand_off: Some(hand_off_of(task, strategies)),
    };
    Ok((ask, context.history.ledger(&borrower.id, &account.id)))
}

/// The verdict of a gate refusal: wait, or leave for the day in the state its reason implies
/// (`done` when a human task's calls are made, `expired` when its window closed, else
/// `cancelled`).
pub(crate) fn verdict_of(refusal: Refusal) -> Verdict {
    if refusal.wait {
        return Verdict::Wait { reason: refusal.reason, detail: refusal.detail };
    }
    let state = match refusal.reason {
        Reason::CallsUsed => TaskState::Done,
        Reason::WindowClosed => TaskState::Expired,
        _ => TaskState::Cancelled,
    };
    Verdict::Remove { state, reason: refusal.reason, detail: refusal.detail }
}

/// Asks the gate whether `task` may be handed off at `now`, with the latest state in `context`
/// (see [`ask_of`]).
pub(crate) fn recheck(
    task: &tasks::Model,
    context: &Context,
    strategies: &StrategySet,
    fallback: &Policy,
    now: DateTime<Utc>,
) -> Verdict {
    let (ask, ledger) = match ask_of(task, context, strategies, fallback) {
        Ok(question) => question,
        Err(verdict) => return verdict,
    };
    match gate::check(&ask, ledger, now) {
        Ok(room) => {
            let (addresses, calls_left) = gate::addresses(&ask, ledger, now)
                .filter(|(_, left)| *left > 0)
                .map(|(address, left)| (address.to_string(), left))
                .unzip();
            Verdict::Pass { room, addresses, calls_left }
        }
        Err(refusal) => verdict_of(refusal),
    }
}
