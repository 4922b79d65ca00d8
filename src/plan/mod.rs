//! The planner: `plan(portfolio, history, strategies, now)` decides each account's local day —
//! tasks with their windows, or one skip with a stable reason code. Pure: no I/O, no clock; every
//! input is a parameter and every reason comes back as data.

mod capacity;
mod explain;
mod learned;
mod reactions;
mod spread;
mod types;

pub use capacity::{Admission, Candidate, QueueAdmission, admit};
pub use explain::{ArmTrace, CapacityNote, DecisionView, Explanation, FactsView, RuleTrace, explain};
pub use learned::{Estimates, HourFate, HourTrace, Placed, Placement, place, window_mean};
pub use reactions::{Matched, ReactionTrace, match_reactions, trace_reactions};
pub use spread::spread;
pub use types::{ExperimentEntry, Plan, Skip, Task};

use crate::domain::{Account, Borrower, Cap, Channel, Flag, History, Portfolio, QueueName, Reason};
use crate::learn::{ContactModel, SegmentRef};
use crate::policy::{Interval, allowed_intervals, count_calls, gate};
use crate::strategy::{Facts, Priority, Rule, Strategy, StrategySet, Timing};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Offset, Utc};
use chrono_tz::Tz;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rustc_hash::FxHashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

pub use crate::policy::PROMISE_GRACE_DAYS;

/// The decision for one account.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Tasks for the day (at least one).
    Tasks(Vec<Task>),
    /// No task today, and why.
    Skip(Skip),
}

/// Attempt windows shared by accounts with the same zones, day, rule and number of attempts.
type SlotsKey = ([Option<Tz>; 3], NaiveDate, usize, usize, u32);

/// A stage's segments of the contact model by product.
type ProductSegments = Vec<(Box<str>, SegmentRef)>;

/// The allowed intervals of a rule for the same zones and day.
type IntervalsKey = ([Option<Tz>; 3], NaiveDate, usize, usize);

/// Reusable state across the accounts of one plan: the facts buffer and the window cache.
pub struct Planner<'a> {
    history: &'a History,
    strategies: &'a StrategySet,
    now: DateTime<Utc>,
    facts: Facts,
    slots: FxHashMap<SlotsKey, Arc<[Interval]>>,
    intervals: FxHashMap<IntervalsKey, Arc<[Interval]>>,
    /// The contact model learned timing samples from (`None`: every rule spreads).
    model: Option<&'a ContactModel>,
    /// Segments of the model by (strategy, stage, channel), then product.
    segments: FxHashMap<(usize, usize, Channel), ProductSegments>,
    /// The learned placements of the account being decided (reused).
    placed: Vec<Placed>,
    /// The one UTC offset of a zone over a local day (its UTC bounds), or `None` when the offset
    /// changes that day.
    day_offsets: FxHashMap<(Tz, NaiveDate), Option<DayOffset>>,
    last_limit: Option<(Cap, u32)>,
    /// Per strategy and rule: the capacity-limited queue a human rule routes to.
    limited: Vec<Vec<Option<QueueName>>>,
    /// Which accounts the limited queues take (`None`: every queue takes every account).
    admission: Option<&'a Admission>,
    /// When collecting: the accounts that would go to a limited queue, with their value.
    candidates: Option<Vec<Candidate>>,
    /// When tracing (`explain`): what became of each hour of the last learned placement.
    hour_trace: Option<Vec<HourTrace>>,
}

/// Plans every account of the portfolio for its local day containing `now`.
pub fn plan(portfolio: &Portfolio, history: &History, strategies: &StrategySet, now: DateTime<Utc>) -> Plan {
    Planner::new(history, strategies, now).plan(portfolio)
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

fn skip(account: &Account, stage: Option<&Arc<str>>, reason: Reason, detail: impl Into<String>) -> Result<(), Skip> {
    Err(Skip { account_id: account.id.clone(), stage: stage.cloned(), reason, detail: detail.into() })
}

impl<'a> Planner<'a> {
    /// A planner for one plan instant.
    pub fn new(history: &'a History, strategies: &'a StrategySet, now: DateTime<Utc>) -> Planner<'a> {
        Planner {
            history,
            strategies,
            now,
            facts: strategies.new_facts(),
            slots: FxHashMap::default(),
            intervals: FxHashMap::default(),
            model: None,
            segments: FxHashMap::default(),
            placed: Vec::new(),
            day_offsets: FxHashMap::default(),
            last_limit: None,
            limited: strategies
                .strategies
                .iter()
                .map(|strategy| {
                    strategy
                        .rules
                        .iter()
                        .map(|rule| match (&rule.treatment.queue, rule.treatment.channel) {
                            (Some(queue), Channel::Human) if strategies.capacities.contains_key(&**queue) => {
                                Some(QueueName::intern(queue))
                            }
                            _ => None,
                        })
                        .collect()
                })
                .collect(),
            admission: None,
            candidates: None,
            hour_trace: None,
        }
    }

    /// The planner recording, for each decision, what became of every hour a learned rule
    /// considered ([`Planner::hour_trace`]): `explain` shows it.
    pub fn tracing_hours(mut self) -> Planner<'a> {
        self.hour_trace = Some(Vec::new());
        self
    }

    /// The hours of the last decision's learned placement, in time order (empty when the rule
    /// spreads, or without [`Planner::tracing_hours`]).
    pub fn hour_trace(&self) -> &[HourTrace] {
        self.hour_trace.as_deref().unwrap_or_default()
    }

    /// Whether any rule routes to a human queue with a capacity: a plan then needs a first
    /// pass ([`Planner::collecting`]) to choose which accounts those queues take.
    pub fn needs_admission(&self) -> bool {
        self.limited.iter().flatten().any(Option::is_some)
    }

    /// The planner in its first pass: it decides as if no queue had a capacity and collects,
    /// for [`admit`], each account it gives to a limited queue ([`Planner::take_candidates`]).
    pub fn collecting(mut self) -> Planner<'a> {
        self.candidates = Some(Vec::new());
        self
    }

    /// The candidates collected so far (emptied).
    pub fn take_candidates(&mut self) -> Vec<Candidate> {
        self.candidates.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The planner with the admission of the limited queues: an account a queue does not take
    /// falls through to the stage's next matching rule, or skips as `capacity:<queue>`.
    pub fn with_admission(mut self, admission: Option<&'a Admission>) -> Planner<'a> {
        self.admission = admission;
        self
    }

    /// The planner with a contact model: rules with `timing = "learned"` place their attempts
    /// by it (without one they spread).
    pub fn with_model(mut self, model: Option<&'a ContactModel>) -> Planner<'a> {
        self.model = model;
        self
    }

    /// Plans every account of one portfolio (a plan run's page), keeping the window caches for
    /// the next page.
    pub fn plan(&mut self, portfolio: &Portfolio) -> Plan {
        let mut result = Plan { tasks: Vec::with_capacity(portfolio.accounts.len() * 2), skips: Vec::new() };
        for account in &portfolio.accounts {
            if let Err(skip) =
                self.decide_into(account, portfolio.borrowers.get(&account.borrower_id), &mut result.tasks)
            {
                result.skips.push(skip);
            }
        }
        result
    }

    /// Decides one account's local day.
    pub fn decide(&mut self, account: &Account, borrower: Option<&Borrower>) -> Decision {
        let mut tasks = Vec::new();
        match self.decide_into(account, borrower, &mut tasks) {
            Ok(()) => Decision::Tasks(tasks),
            Err(skip) => Decision::Skip(skip),
        }
    }

    /// The experiment entry of an account this plan puts in `stage`, when an experiment of
    /// its strategy splits that stage: the borrower's arm (`Strategy::arm_of`, as
    /// [`Planner::decide_into`] assigns it) and the covariates as of this plan.
    pub fn experiment_entry(
        &self,
        account: &Account,
        borrower: Option<&Borrower>,
        stage: &str,
    ) -> Option<ExperimentEntry> {
        let strategy = self.strategies.strategy_for(&account.product)?;
        let stage_index = strategy.stages.iter().position(|candidate| &*candidate.name == stage)?;
        let (experiment, arm) = strategy.arm_of(stage_index, &account.borrower_id)?;
        let experiment = &strategy.experiments[experiment];
        let zone = borrower.map_or(chrono_tz::UTC, Borrower::primary_timezone);
        Some(ExperimentEntry {
            experiment: Arc::clone(&experiment.name),
            strategy: Arc::clone(&strategy.name),
            account_id: account.id.clone(),
            borrower_id: account.borrower_id.clone(),
            arm: Arc::clone(&experiment.arms[arm].0),
            stage: Arc::clone(&strategy.stages[stage_index].name),
            dpd: account.dpd_on(self.now.with_timezone(&zone).date_naive()),
            balance: account.balance,
            currency: account.currency.clone(),
        })
    }

    /// Decides one account's local day, appending its tasks to `tasks`; a skip comes back as the
    /// error.
    pub fn decide_into(
        &mut self,
        account: &Account,
        borrower: Option<&Borrower>,
        tasks: &mut Vec<Task>,
    ) -> Result<(), Skip> {
        self.last_limit = None;
        if let Some(trace) = self.hour_trace.as_mut() {
            trace.clear();
        }
        let Some(borrower) = borrower else {
            return skip(
                account,
                None,
                Reason::NoContactPoint,
                format!("borrower {} is not in the book", account.borrower_id),
            );
        };
        let zone = borrower.primary_timezone();
        let local_date = self.now.with_timezone(&zone).date_naive();
        let dpd = account.dpd_on(local_date);
        let ledger = self.history.ledger(&borrower.id, &account.id);
        // The account's stops rank around the strategy's: nothing due first, flags and
        // promises after the stage is known (their skips carry it).
        let stop = gate::stops(account, ledger, local_date);
        if let Some(refusal) = stop.as_ref().filter(|refusal| refusal.reason == Reason::NotDue) {
            return skip(account, None, refusal.reason, refusal.detail.clone());
        }
        let Some(strategy_index) = self.strategies.index_for(&account.product) else {
            return skip(
                account,
                None,
                Reason::NoStrategy,
                format!("no strategy handles product `{}`", account.product),
            );
        };
        let strategy = &self.strategies.strategies[strategy_index];
        let Some(stage_index) = strategy.stage_of(dpd) else {
            return skip(
                account,
                None,
                Reason::NoStage,
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
                Reason::AlreadyPlanned,
                format!("{local_date} is already planned for this account"),
            );
        }
        if let Some(refusal) = stop {
            return skip(account, Some(stage), refusal.reason, refusal.detail);
        }

        let counters = count_calls(ledger.attempts, &account.id, zone, local_date, self.now);
        let days_since_rpc = ledger
            .last_conversation
            .map(|at| (local_date - at.with_timezone(&zone).date_naive()).num_days().max(0) as u32);
        self.strategies.fill_facts(account, dpd, counters.account_attempts_7d, days_since_rpc, &mut self.facts);
        let arm = strategy.arm_of(stage_index, &account.borrower_id);
        let mut from = 0;
        let mut turned_away: Option<QueueName> = None;
        let (rule_index, rule) = loop {
            let Some((rule_index, rule)) = strategy.first_match_from(stage_index, arm, &self.facts, from) else {
                if let Some(queue) = turned_away {
                    return skip(
                        account,
                        Some(stage),
                        Reason::Capacity(queue),
                        format!(
                            "queue `{queue}` is at today's capacity with accounts of higher value, and no later rule of stage {stage} matches"
                        ),
                    );
                }
                return skip(
                    account,
                    Some(stage),
                    Reason::NoRule,
                    format!("no rule of strategy `{}` matches in stage {stage}", strategy.name),
                );
            };
            if let (Some(queue), Some(admission)) = (self.limited[strategy_index][rule_index], self.admission)
                && !admission.admits(queue, &account.id)
            {
                turned_away.get_or_insert(queue);
                from = rule_index + 1;
                continue;
            }
            break (rule_index, rule);
        };
        let treatment = &rule.treatment;
        let channel = treatment.channel;
        let ask = gate::Ask {
            account,
            borrower,
            channel,
            policy: &strategy.policy,
            min_gap: Duration::minutes(i64::from(treatment.min_gap_minutes)),
            hand_off: None,
        };
        let room = match gate::check(&ask, ledger, self.now) {
            Ok(room) => room,
            Err(refusal) => {
                let detail = match refusal.reason {
                    Reason::Flag(Flag::DoNotCall) => {
                        format!("rule `{}` calls, and the account must not be called", rule.name)
                    }
                    Reason::NoContactPoint => format!("{} for rule `{}`", refusal.detail, rule.name),
                    _ => refusal.detail,
                };
                return skip(account, Some(stage), refusal.reason, detail);
            }
        };
        let wanted = if channel == Channel::Human { treatment.calls_per_day } else { treatment.attempts_per_day };
        if room.calls < wanted {
            self.last_limit = room.limited_by.map(|cap| (cap, room.calls));
        }
        let (count, calls_allowed) = if channel == Channel::Human {
            (1, treatment.calls_per_day.min(room.calls))
        } else {
            (treatment.attempts_per_day.min(room.calls), 1)
        };

        let no_window = || {
            if borrower.timezones.len() > 1 {
                format!(
                    "no time left on {local_date} inside rule `{}`'s windows in every zone of the borrower",
                    rule.name
                )
            } else {
                format!("no time left on {local_date} inside rule `{}`'s windows", rule.name)
            }
        };
        let learned = match self.model {
            Some(model) if treatment.timing == Timing::Learned && channel != Channel::Human => Some(model),
            _ => None,
        };
        let mut placed = std::mem::take(&mut self.placed);
        placed.clear();
        let slots = if let Some(model) = learned {
            let intervals = self.intervals_for(borrower, local_date, strategy_index, rule_index, rule);
            let estimates = Estimates {
                model,
                segment: self.segment_of(model, strategy_index, stage_index, channel, &account.product),
                borrower_id: &borrower.id,
                zone,
                min_p_contact: treatment.min_p_contact,
            };
            let mut rng = SmallRng::seed_from_u64(draw_seed(&account.id, local_date, rule_index));
            let min_gap = Duration::minutes(i64::from(treatment.min_gap_minutes));
            match place(&intervals, count, min_gap, &estimates, &mut rng, &mut placed, self.hour_trace.as_mut()) {
                Placement::Placed => {}
                Placement::NoTime => {
                    self.placed = placed;
                    return skip(account, Some(stage), Reason::NoWindow, no_window());
                }
                Placement::BelowThreshold => {
                    self.placed = placed;
                    let least = treatment.min_p_contact.unwrap_or_default();
                    return skip(
                        account,
                        Some(stage),
                        Reason::LowContactProbability,
                        format!(
                            "every hour left on {local_date} inside rule `{}`'s windows is estimated below min_p_contact {least}",
                            rule.name
                        ),
                    );
                }
            }
            None
        } else {
            let slots = self.slots_for(borrower, local_date, strategy_index, rule_index, rule, count);
            if slots.is_empty() {
                return skip(account, Some(stage), Reason::NoWindow, no_window());
            }
            Some(slots)
        };
        let arm_name = arm.map(|(experiment, arm)| strategy.experiments[experiment].arms[arm].0.clone());
        let mut priority = treatment.priority.value(&self.facts);
        // Expected value: the balance times the estimated chance of reaching the borrower in
        // the task's window (one window for a human task; the placed hours' own estimates for
        // a learned call rule).
        let mut window_p = None;
        if treatment.priority == Priority::ExpectedValue
            && let (Some(model), Some(slots)) = (self.model, slots.as_ref())
        {
            let estimates = Estimates {
                model,
                segment: self.segment_of(model, strategy_index, stage_index, channel, &account.product),
                borrower_id: &borrower.id,
                zone,
                min_p_contact: None,
            };
            window_p = window_mean(slots, &estimates);
        }
        let p_for_value = window_p.or_else(|| placed.iter().map(|placed| placed.p_contact).reduce(f64::max));
        if treatment.priority == Priority::ExpectedValue
            && let Some(p) = p_for_value
        {
            priority *= p;
        }
        if let (Some(candidates), Some(queue)) = (self.candidates.as_mut(), self.limited[strategy_index][rule_index]) {
            candidates.push(Candidate { queue, value: priority, account_id: account.id.clone() });
        }
        let day_offset = self.day_offset(zone, local_date);
        let ids: (Arc<str>, Arc<str>) = (account.id.as_str().into(), account.borrower_id.as_str().into());
        let shape =
            TaskShape { day_offset, ids: &ids, strategy, stage, rule, zone, local_date, dpd, calls_allowed, priority };
        match slots {
            Some(slots) => {
                for (index, slot) in slots.iter().enumerate() {
                    tasks.push(shape.task(arm_name.clone(), index, *slot, window_p));
                }
            }
            None => {
                for (index, placed) in placed.iter().enumerate() {
                    tasks.push(shape.task(arm_name.clone(), index, placed.slot, Some(placed.p_contact)));
                }
            }
        }
        self.placed = placed;
        Ok(())
    }

    /// The cap that cut the day's attempts (or a human task's calls) below what the rule asks,
    /// with what it left, for the last account [`Planner::decide_into`] decided: `explain`
    /// names it.
    pub fn last_limit(&self) -> Option<(Cap, u32)> {
        self.last_limit
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

    /// The model's segment of an account in `stage` of `strategy` reached by `channel`.
    fn segment_of(
        &mut self,
        model: &ContactModel,
        strategy_index: usize,
        stage_index: usize,
        channel: Channel,
        product: &str,
    ) -> SegmentRef {
        let products = self.segments.entry((strategy_index, stage_index, channel)).or_default();
        if let Some((_, segment)) = products.iter().find(|(known, _)| &**known == product) {
            return *segment;
        }
        let stage = &self.strategies.strategies[strategy_index].stages[stage_index].name;
        let segment = model.segment(stage, channel, product);
        products.push((product.into(), segment));
        segment
    }

    /// The allowed intervals of `rule` on `date` for the borrower's zones: its windows within
    /// the contact hours in every zone, from `now` on. Shared by every account with the same
    /// zones, day and rule: computed once.
    fn intervals_for(
        &mut self,
        borrower: &Borrower,
        date: NaiveDate,
        strategy: usize,
        rule_index: usize,
        rule: &Rule,
    ) -> Arc<[Interval]> {
        let now = self.now;
        let zones = &borrower.timezones;
        let compute = || -> Arc<[Interval]> { allowed_intervals(zones, date, &rule.treatment.windows, now).into() };
        match zones_key(zones) {
            Some(key_zones) => {
                self.intervals.entry((key_zones, date, strategy, rule_index)).or_insert_with(compute).clone()
            }
            None => compute(),
        }
    }

    /// The day's attempt windows of `rule` for the borrower's zones: `count` attempts spread
    /// over the rule's windows within the contact hours in every zone (one, the longest
    /// interval, for a human task); empty when no time is left. Shared by every account with the
    /// same zones, day, rule and count: computed once.
    fn slots_for(
        &mut self,
        borrower: &Borrower,
        date: NaiveDate,
        strategy: usize,
        rule_index: usize,
        rule: &Rule,
        count: u32,
    ) -> Arc<[Interval]> {
        let count = if rule.treatment.channel == Channel::Human { 1 } else { count };
        let key_zones = zones_key(&borrower.timezones);
        if let Some(key_zones) = key_zones
            && let Some(slots) = self.slots.get(&(key_zones, date, strategy, rule_index, count))
        {
            return slots.clone();
        }
        let intervals = self.intervals_for(borrower, date, strategy, rule_index, rule);
        let slots: Arc<[Interval]> = if intervals.is_empty() {
            Arc::from(Vec::new())
        } else if rule.treatment.channel == Channel::Human {
            Arc::from(vec![longest(&intervals)])
        } else {
            let mut slots = Vec::with_capacity(count as usize);
            spread(&intervals, count, Duration::minutes(i64::from(rule.treatment.min_gap_minutes)), &mut slots);
            slots.into()
        };
        if let Some(key_zones) = key_zones {
            self.slots.insert((key_zones, date, strategy, rule_index, count), slots.clone());
        }
        slots
    }
}

/// The cache key of up to three zones (more are not cached).
fn zones_key(zones: &[Tz]) -> Option<[Option<Tz>; 3]> {
    if zones.len() > 3 {
        return None;
    }
    let mut key = [None; 3];
    for (slot, zone) in key.iter_mut().zip(zones) {
        *slot = Some(*zone);
    }
    Some(key)
}

/// The seed of an account's Thompson draws on a local day for a rule: the same plan gives the
/// same placements; another day draws anew (and so keeps exploring).
fn draw_seed(account_id: &str, date: NaiveDate, rule_index: usize) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    account_id.hash(&mut hasher);
    date.hash(&mut hasher);
    rule_index.hash(&mut hasher);
    hasher.finish()
}

/// What the tasks of one account's day share.
struct TaskShape<'s> {
    day_offset: Option<DayOffset>,
    ids: &'s (Arc<str>, Arc<str>),
    strategy: &'s Strategy,
    stage: &'s Arc<str>,
    rule: &'s Rule,
    zone: Tz,
    local_date: NaiveDate,
    dpd: i32,
    calls_allowed: u32,
    priority: f64,
}

impl TaskShape<'_> {
    fn task(&self, arm: Option<Arc<str>>, index: usize, slot: Interval, p_contact: Option<f64>) -> Task {
        let treatment = &self.rule.treatment;
        Task {
            account_id: Arc::clone(&self.ids.0),
            borrower_id: Arc::clone(&self.ids.1),
            local_date: self.local_date,
            dpd: self.dpd,
            stage: self.stage.clone(),
            strategy: self.strategy.name.clone(),
            rule: self.rule.name.clone(),
            arm,
            channel: treatment.channel,
            queue: treatment.queue.clone(),
            template: treatment.template.clone(),
            attempt: index as u32 + 1,
            calls_allowed: self.calls_allowed,
            not_before: at_offset(slot.start, self.zone, self.day_offset),
            not_after: at_offset(slot.end, self.zone, self.day_offset),
            priority: self.priority,
            p_contact,
        }
    }
}
