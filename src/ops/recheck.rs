//! The re-check of a task against the latest state, shared by the lease (`work::lease_next`)
//! and the release loop (`release::release_due`), parameterised by the task's channel: the
//! planner's rules and reason codes (flags, amount due, open promise, usable addresses and
//! opt-outs, robot consent, cool-down, caps recomputed from the attempts, the rule's `min_gap`
//! since the last actual attempt, and the policy's contact hours now in every zone).
//!
//! Pure decisions over a [`Context`] loaded by the caller inside its claiming transaction; it
//! never writes and never reads the clock.

use crate::domain::{Account, AttemptRecord, Borrower, Channel, ContactKind, Flag, Money, PromiseRecord};
use crate::plan::PROMISE_GRACE_DAYS;
use crate::policy::{Policy, call_room, cooldown_from, count_calls, unanswered_today};
use crate::store::{self, StoreError, StoredAttempt};
use crate::strategy::{Rule, Strategy, StrategySet};
use chrono::{DateTime, Duration, Utc};
use entity::tasks;
use sea_orm::ConnectionTrait;
use std::collections::HashMap;

/// Everything the re-check reads about a batch of tasks.
#[derive(Default)]
pub(crate) struct Context {
    pub(crate) accounts: HashMap<String, Account>,
    pub(crate) borrowers: HashMap<String, Borrower>,
    pub(crate) attempts: HashMap<String, Vec<StoredAttempt>>,
    pub(crate) promises: HashMap<String, PromiseRecord>,
    pub(crate) conversations: HashMap<String, DateTime<Utc>>,
}

impl Context {
    /// Reads the accounts, borrowers, attempts of the last 8 days, open promises and last
    /// conversations of `tasks`.
    pub(crate) async fn load(
        db: &impl ConnectionTrait,
        tasks: &[tasks::Model],
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let mut account_ids: Vec<&str> = tasks.iter().map(|task| task.account_id.as_str()).collect();
        account_ids.sort_unstable();
        account_ids.dedup();
        let (accounts, borrowers) = store::parties_by_id(db, &account_ids).await?;
        let mut borrower_ids: Vec<&str> = accounts.values().map(|account| account.borrower_id.as_str()).collect();
        borrower_ids.sort_unstable();
        borrower_ids.dedup();
        let attempts = store::attempts_of_borrowers(db, &borrower_ids, now - Duration::days(8)).await?;
        let promises = store::open_promises_of(db, &account_ids).await?;
        let conversations = store::last_conversations_of(db, &account_ids).await?;
        Ok(Context { accounts, borrowers, attempts, promises, conversations })
    }

    /// The account and borrower of a task, when both are stored.
    pub(crate) fn parties(&self, task: &tasks::Model) -> Option<(&Account, &Borrower)> {
        let account = self.accounts.get(&task.account_id)?;
        Some((account, self.borrowers.get(&account.borrower_id)?))
    }

    /// The borrower's stored attempts (last 8 days), oldest first.
    pub(crate) fn attempts_of(&self, borrower_id: &str) -> &[StoredAttempt] {
        self.attempts.get(borrower_id).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// What the re-check says about one task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// It may go out now: to this address (robot, SMS, e-mail; `None` for human tasks), with
    /// this many calls (human tasks; 1 otherwise).
    Pass { calls_allowed: u32, to: Option<String> },
    /// Not now (outside the contact hours in one of the borrower's zones, or too soon after the
    /// last attempt); it stays queued.
    Wait { reason: &'static str },
    /// It leaves the queue for the day: the new state, the reason code and a sentence.
    Remove { state: &'static str, reason: String, detail: String },
}

fn remove(reason: impl Into<String>, detail: impl Into<String>) -> Verdict {
    Verdict::Remove { state: "cancelled", reason: reason.into(), detail: detail.into() }
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

/// Re-checks `task` against the latest state in `context` at `now`, with the planner's rules
/// and reason codes (see `docs/operations.md`). The channel decides which checks apply: calls
/// (robot, human) get `do_not_call`, the cool-down and the call caps; robot calls the consent
/// and the unanswered-per-number cap; robot, SMS and e-mail the rule's `min_gap` since the last
/// attempt on the account on that channel; human tasks the calls already made on them.
pub(crate) fn recheck(
    task: &tasks::Model,
    context: &Context,
    strategies: &StrategySet,
    fallback: &Policy,
    now: DateTime<Utc>,
) -> Verdict {
    let Ok(channel) = task.channel.parse::<Channel>() else {
        return remove("bad_channel", format!("unknown channel `{}`", task.channel));
    };
    let Some(account) = context.accounts.get(&task.account_id) else {
        return remove("no_account", format!("account {} is not in the book", task.account_id));
    };
    let Some(borrower) = context.borrowers.get(&account.borrower_id) else {
        return remove("no_contact_point", format!("borrower {} is not in the book", account.borrower_id));
    };
    if let Some(flag) = account.flags.iter().find(|flag| flag.stops_all_contact()) {
        return remove(format!("flag:{flag}"), format!("the `{flag}` flag stops all contact"));
    }
    if channel.is_call() && account.flags.contains(Flag::DoNotCall) {
        return remove("flag:do_not_call", "the account must not be called");
    }
    if account.amount_due <= Money::ZERO {
        return remove("not_due", "nothing is due on this account any more");
    }
    let zone = borrower.primary_timezone();
    let local_date = now.with_timezone(&zone).date_naive();
    if let Some(promise) = context.promises.get(&account.id)
        && promise.due_on + Duration::days(PROMISE_GRACE_DAYS) >= local_date
    {
        return remove("promise_open", format!("promise to pay {} by {} is open", promise.amount, promise.due_on));
    }
    let kind = if channel == Channel::Email { ContactKind::Email } else { ContactKind::Phone };
    if !borrower.contact_points.iter().any(|point| point.kind == kind && !point.wrong_number) {
        return remove("no_contact_point", format!("the borrower has no usable {}", kind.code()));
    }
    if !borrower.contact_points.iter().any(|point| point.usable_for(channel)) {
        return remove(format!("opt_out:{channel}"), format!("every {} opted out of {channel}", kind.code()));
    }
    let policy = policy_of(strategies, fallback, task);
    if channel == Channel::Robot && policy.robot_needs_consent && !borrower.consent_robot {
        return remove("no_consent", format!("{} needs consent for robot calls", policy.name));
    }
    let stored = context.attempts_of(&borrower.id);
    let records: Vec<AttemptRecord> = stored.iter().map(|attempt| attempt.record.clone()).collect();
    let mut to = None;
    let mut room = 1;
    if channel.is_call() {
        if let Some(day) = cooldown_from(policy, context.conversations.get(&account.id).copied(), zone, local_date) {
            return remove(
                "cooldown:conversation",
                format!("conversation on {day}: no call until day {} after it", policy.cooldown_days.unwrap_or(0) + 1),
            );
        }
        let counters = count_calls(&records, &account.id, zone, local_date, now);
        let unanswered_cap = policy.unanswered_per_number_per_day.filter(|_| channel == Channel::Robot);
        let left_on = |number: &str| {
            unanswered_cap
                .map_or(u32::MAX, |cap| cap.saturating_sub(unanswered_today(&records, number, zone, local_date)))
        };
        let unanswered = unanswered_cap.map(|cap| {
            let left = borrower
                .contact_points
                .iter()
                .filter(|point| point.usable_for(channel))
                .map(|point| left_on(&point.address))
                .fold(0u32, u32::saturating_add);
            (cap, left)
        });
        room = match call_room(policy, &counters, unanswered) {
            Ok(room) => room,
            Err(reached) => {
                return remove(
                    reached.reason(),
                    format!("{}'s {} cap of {} is reached", policy.name, reached.name, reached.cap),
                );
            }
        };
        if channel == Channel::Robot {
            to = borrower
                .contact_points
                .iter()
                .find(|point| point.usable_for(channel) && left_on(&point.address) > 0)
                .map(|point| point.address.clone());
        }
    } else {
        to = borrower.contact_points.iter().find(|point| point.usable_for(channel)).map(|point| point.address.clone());
    }
    let rule = rule_of(strategies, task).filter(|rule| rule.treatment.channel == channel);
    let calls_allowed = if channel == Channel::Human {
        // An escalated human task carries a robot rule: its own `calls_allowed` then counts.
        let rule_calls =
            rule.map_or(u32::try_from(task.calls_allowed).unwrap_or(0), |rule| rule.treatment.calls_per_day);
        let made = stored
            .iter()
            .filter(|attempt| {
                attempt.task_id == Some(task.id) && attempt.record.channel.is_call() && attempt.record.at <= now
            })
            .count();
        let left = rule_calls.saturating_sub(u32::try_from(made).unwrap_or(u32::MAX));
        if left == 0 {
            return Verdict::Remove {
                state: "done",
                reason: "calls_used".into(),
                detail: format!("the {rule_calls} call(s) of this task are made"),
            };
        }
        left.min(room)
    } else {
        let gap = rule.map_or(0, |rule| rule.treatment.min_gap_minutes);
        let last = stored
            .iter()
            .filter(|attempt| {
                attempt.record.account_id == account.id && attempt.record.channel == channel && attempt.record.at <= now
            })
            .map(|attempt| attempt.record.at)
            .max();
        if gap > 0
            && let Some(last) = last
            && now < last + Duration::minutes(i64::from(gap))
        {
            return Verdict::Wait { reason: "min_gap" };
        }
        1
    };
    if borrower.timezones.iter().any(|zone| !policy.hours.contains(now.with_timezone(zone).time())) {
        return Verdict::Wait { reason: "hours" };
    }
    Verdict::Pass { calls_allowed, to }
}
