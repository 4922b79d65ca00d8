//! The planner: `plan(portfolio, history, strategies, now)` decides each account's local day —
//! tasks with their windows, or one skip with a stable reason code. Pure: no I/O, no clock; every
//! input is a parameter and every reason comes back as data.

mod explain;
mod spread;
mod types;

pub use explain::{ArmTrace, DecisionView, Explanation, FactsView, RuleTrace, explain};
pub use spread::spread;
pub use types::{Plan, Skip, Task};

use crate::domain::{Account, Borrower, Channel, ContactKind, Flag, History, Portfolio};
use crate::policy::{Interval, allowed_intervals, call_room, cooldown_from, count_calls, unanswered_today};
use crate::strategy::{Facts, Rule, Strategy, StrategySet};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Offset, Utc};
use chrono_tz::Tz;
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// Days a promise stays open after its due date before it counts as broken.
pub const PROMISE_GRACE_DAYS: i64 = 1;

/// The decision for one account.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Tasks for the day (at least one).
    Tasks(Vec<Task>),
    /// No task today, and why.
    Skip(Skip),
}

/// Window results shared by accounts with the same zones, day and rule.
type WindowKey = ([Option<Tz>; 3], NaiveDate, usize, usize);

/// Reusable state across the accounts of one plan: the facts buffer and the window cache.
pub struct Planner<'a> {
    history: &'a History,
    strategies: &'a StrategySet,
    now: DateTime<Utc>,
    facts: Facts,
    windows: FxHashMap<WindowKey, Arc<[Interval]>>,
    /// The one UTC offset of a zone over a local day (its UTC bounds), or `None` when the offset
    /// changes that day.
    day_offsets: FxHashMap<(Tz, NaiveDate), Option<DayOffset>>,
    slots: Vec<Interval>,
}

/// Plans every account of the portfolio for its local day containing `now`.
pub fn plan(portfolio: &Portfolio, history: &History, strategies: &StrategySet, now: DateTime<Utc>) -> Plan {
    let mut planner = Planner::new(history, strategies, now);
    let mut result = Plan { tasks: Vec::with_capacity(portfolio.accounts.len() * 2), skips: Vec::new() };
    for account in &portfolio.accounts {
        if let Err(skip) =
            planner.decide_into(account, portfolio.borrowers.get(&account.borrower_id), &mut result.tasks)
        {
            result.skips.push(skip);
        }
    }
    result
}

/// The borrower's addresses that can carry the channel.
fn addresses_of(borrower: &Borrower, channel: Channel) -> impl Iterator<Item = &str> {
    borrower.contact_points.iter().filter(move |point| point.usable_for(channel)).map(|point| point.address.as_str())
}

/// A zone's single offset over one local day, `start..=end` in UTC.
#[derive(Debug, Clone, Copy)]
struct DayOffset {
    offset: FixedOffset,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// An instant at the zone's offset: the day's one offset when the instant is in that day, else
/// a look-up.
fn at_offset(instant: DateTime<Utc>, zone: Tz, day: Option<DayOffset>) -> DateTime<FixedOffset> {
    match day {
        Some(day) if day.start <= instant && instant <= day.end => instant.with_timezone(&day.offset),
        _ => instant.with_timezone(&zone).fixed_offset(),
    }
}

/// The longest interval (the earliest among equals): a human task carries one window, and it
/// must never span a gap where contact is not allowed.
fn longest(intervals: &[Interval]) -> Interval {
    let mut best = intervals[0];
    for interval in &intervals[1..] {
        if interval.duration() > best.duration() {
            best = *interval;
        }
    }
    best
}

fn skip(
    account: &Account,
    stage: Option<&Arc<str>>,
    reason: impl Into<String>,
    detail: impl Into<String>,
) -> Result<(), Skip> {
    Err(Skip { account_id: account.id.clone(), stage: stage.cloned(), reason: reason.into(), detail: detail.into() })
}

impl<'a> Planner<'a> {
    /// A planner for one plan instant.
    pub fn new(history: &'a History, strategies: &'a StrategySet, now: DateTime<Utc>) -> Planner<'a> {
        Planner {
            history,
            strategies,
            now,
            facts: strategies.new_facts(),
            windows: FxHashMap::default(),
            day_offsets: FxHashMap::default(),
            slots: Vec::new(),
        }
    }

    /// Decides one account's local day.
    pub fn decide(&mut self, account: &Account, borrower: Option<&Borrower>) -> Decision {
        let mut tasks = Vec::new();
        match self.decide_into(account, borrower, &mut tasks) {
            Ok(()) => Decision::Tasks(tasks),
            Err(skip) => Decision::Skip(skip),
        }
    }

    /// Decides one account's local day, appending its tasks to `tasks`; a skip comes back as the
    /// error.
    pub fn decide_into(
        &mut self,
        account: &Account,
        borrower: Option<&Borrower>,
        tasks: &mut Vec<Task>,
    ) -> Result<(), Skip> {
        let Some(borrower) = borrower else {
            return skip(
                account,
                None,
                "no_contact_point",
                format!("borrower {} is not in the book", account.borrower_id),
            );
        };
        let zone = borrower.primary_timezone();
        let local_date = self.now.with_timezone(&zone).date_naive();
        let dpd = account.dpd_on(local_date);
        if account.amount_due.is_zero() {
            return skip(account, None, "not_due", "nothing is due on this account");
        }
        let Some(strategy_index) = self.strategies.index_for(&account.product) else {
            return skip(account, None, "no_strategy", format!("no strategy handles product `{}`", account.product));
        };
        let strategy = &self.strategies.strategies[strategy_index];
        let Some(stage_index) = strategy.stage_of(dpd) else {
            return skip(
                account,
                None,
                "no_stage",
                format!("DPD {dpd} is in no stage of strategy `{}`", strategy.name),
            );
        };
        let stage = &strategy.stages[stage_index].name;
        if !self.history.planned_days.is_empty()
            && self.history.planned_days.contains(&(account.id.clone(), local_date))
        {
            return skip(
                account,
                Some(stage),
                "already_planned",
                format!("{local_date} is already planned for this account"),
            );
        }
        if let Some(flag) = account.flags.iter().find(|flag| flag.stops_all_contact()) {
            return skip(account, Some(stage), format!("flag:{flag}"), format!("the `{flag}` flag stops all contact"));
        }
        if let Some(promise) = self.history.open_promises.get(&account.id)
            && promise.due_on + Duration::days(PROMISE_GRACE_DAYS) >= local_date
        {
            return skip(
                account,
                Some(stage),
                "promise_open",
                format!("promise to pay {} by {} is open", promise.amount, promise.due_on),
            );
        }

        let attempts = self.history.attempts_of(&borrower.id);
        let counters = count_calls(attempts, &account.id, zone, local_date, self.now);
        let days_since_rpc = self
            .history
            .last_conversation
            .get(&account.id)
            .map(|at| (local_date - at.with_timezone(&zone).date_naive()).num_days().max(0) as u32);
        self.strategies.fill_facts(account, dpd, counters.account_attempts_7d, days_since_rpc, &mut self.facts);
        let arm = strategy.arm_of(stage_index, &account.id);
        let Some((rule_index, rule)) = strategy.first_match(stage_index, arm, &self.facts) else {
            return skip(
                account,
                Some(stage),
                "no_rule",
                format!("no rule of strategy `{}` matches in stage {stage}", strategy.name),
            );
        };
        let treatment = &rule.treatment;
        let channel = treatment.channel;
        let policy = &strategy.policy;

        if channel.is_call() && account.flags.contains(Flag::DoNotCall) {
            return skip(
                account,
                Some(stage),
                "flag:do_not_call",
                format!("rule `{}` calls, and the account must not be called", rule.name),
            );
        }
        let kind = if channel == Channel::Email { ContactKind::Email } else { ContactKind::Phone };
        let mut addresses =
            borrower.contact_points.iter().filter(|point| point.kind == kind && !point.wrong_number).peekable();
        if addresses.peek().is_none() {
            return skip(
                account,
                Some(stage),
                "no_contact_point",
                format!("the borrower has no usable {} for rule `{}`", kind.code(), rule.name),
            );
        }
        let usable = || addresses_of(borrower, channel);
        if usable().next().is_none() {
            return skip(
                account,
                Some(stage),
                format!("opt_out:{channel}"),
                format!("every {} opted out of {channel}", kind.code()),
            );
        }
        if channel == Channel::Robot && policy.robot_needs_consent && !borrower.consent_robot {
            return skip(account, Some(stage), "no_consent", format!("{} needs consent for robot calls", policy.name));
        }

        let mut count = treatment.attempts_per_day;
        let mut calls_allowed = if channel == Channel::Human { treatment.calls_per_day } else { 1 };
        if channel.is_call() {
            let last_conversation = self.history.last_conversation.get(&account.id).copied();
            if let Some(conversation_day) = cooldown_from(policy, last_conversation, zone, local_date) {
                return skip(
                    account,
                    Some(stage),
                    "cooldown:conversation",
                    format!(
                        "conversation on {conversation_day}: no call until day {} after it",
                        policy.cooldown_days.unwrap_or(0) + 1
                    ),
                );
            }
            let unanswered = match policy.unanswered_per_number_per_day {
                Some(cap) if channel == Channel::Robot => {
                    let left: u32 = usable()
                        .map(|number| cap.saturating_sub(unanswered_today(attempts, number, zone, local_date)))
                        .sum();
                    Some((cap, left))
                }
                _ => None,
            };
            let room = match call_room(policy, &counters, unanswered) {
                Ok(room) => room,
                Err(reached) => {
                    return skip(
                        account,
                        Some(stage),
                        reached.reason(),
                        format!("{}'s {} cap of {} is reached", policy.name, reached.name, reached.cap),
                    );
                }
            };
            if channel == Channel::Human {
                calls_allowed = calls_allowed.min(room);
            } else {
                count = count.min(room);
            }
        }

        let intervals = self.windows_for(borrower, local_date, strategy_index, rule_index, rule);
        if intervals.is_empty() {
            let detail = if borrower.timezones.len() > 1 {
                format!(
                    "no time left on {local_date} inside rule `{}`'s windows in every zone of the borrower",
                    rule.name
                )
            } else {
                format!("no time left on {local_date} inside rule `{}`'s windows", rule.name)
            };
            return skip(account, Some(stage), "no_window", detail);
        }
        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        if channel == Channel::Human {
            slots.push(longest(&intervals));
        } else {
            spread(&intervals, count, Duration::minutes(i64::from(treatment.min_gap_minutes)), &mut slots);
        }
        let arm_name = arm.map(|(experiment, arm)| strategy.experiments[experiment].arms[arm].0.clone());
        let priority = treatment.priority.value(&self.facts);
        let day_offset = self.day_offset(zone, local_date);
        for (index, slot) in slots.iter().enumerate() {
            tasks.push(self.task(
                day_offset,
                account,
                strategy,
                stage,
                rule,
                arm_name.clone(),
                zone,
                local_date,
                dpd,
                index,
                *slot,
                calls_allowed,
                priority,
            ));
        }
        self.slots = slots;
        Ok(())
    }

    /// The zone's offset on a local day when it holds all day (most days): converting task
    /// times then needs no time-zone look-up per task.
    fn day_offset(&mut self, zone: Tz, date: NaiveDate) -> Option<DayOffset> {
        *self.day_offsets.entry((zone, date)).or_insert_with(|| {
            let start = crate::policy::local_to_utc_start(zone, date, 0);
            let end = crate::policy::local_to_utc_end(zone, date, 24 * 60);
            let offset = start.with_timezone(&zone).offset().fix();
            (offset == end.with_timezone(&zone).offset().fix()).then_some(DayOffset { offset, start, end })
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn task(
        &self,
        day_offset: Option<DayOffset>,
        account: &Account,
        strategy: &Strategy,
        stage: &Arc<str>,
        rule: &Rule,
        arm: Option<Arc<str>>,
        zone: Tz,
        local_date: NaiveDate,
        dpd: i32,
        index: usize,
        slot: Interval,
        calls_allowed: u32,
        priority: f64,
    ) -> Task {
        let treatment = &rule.treatment;
        Task {
            account_id: account.id.clone(),
            borrower_id: account.borrower_id.clone(),
            local_date,
            dpd,
            stage: stage.clone(),
            strategy: strategy.name.clone(),
            rule: rule.name.clone(),
            arm,
            channel: treatment.channel,
            queue: treatment.queue.clone(),
            template: treatment.template.clone(),
            attempt: index as u32 + 1,
            calls_allowed,
            not_before: at_offset(slot.start, zone, day_offset),
            not_after: at_offset(slot.end, zone, day_offset),
            priority,
        }
    }

    fn windows_for(
        &mut self,
        borrower: &Borrower,
        date: NaiveDate,
        strategy: usize,
        rule_index: usize,
        rule: &Rule,
    ) -> Arc<[Interval]> {
        let zones = &borrower.timezones;
        if zones.len() > 3 {
            return allowed_intervals(zones, date, &rule.treatment.windows, self.now).into();
        }
        let mut key_zones = [None; 3];
        for (slot, zone) in key_zones.iter_mut().zip(zones) {
            *slot = Some(*zone);
        }
        let now = self.now;
        self.windows
            .entry((key_zones, date, strategy, rule_index))
            .or_insert_with(|| allowed_intervals(zones, date, &rule.treatment.windows, now).into())
            .clone()
    }
}
