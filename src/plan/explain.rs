//! `explain`: why one account is (or is not) contacted today — its day and stage, every rule
//! tried with the condition that failed, the counters the policy reads, and the planner's own
//! decision. Pure, like `plan()`: the decision comes from the same [`Planner`], never from a
//! second copy of its logic.

use super::{Decision, HourTrace, Planner, Skip, Task};
use crate::domain::{Account, Borrower, History, Money};
use crate::policy::{Policy, count_calls};
use crate::strategy::{Facts, StrategySet};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// The answer to "why was this account (not) called?" for one plan instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The account.
    pub account_id: String,
    /// The plan instant.
    pub as_of: DateTime<Utc>,
    /// The borrower's zones; the day is the first one's.
    pub timezones: Vec<String>,
    /// The borrower's local date at `as_of` (none when the borrower is missing).
    pub local_date: Option<NaiveDate>,
    /// Days past due on that date.
    pub dpd: Option<i32>,
    /// The strategy handling the account's product.
    pub strategy: Option<String>,
    /// The policy in force (profile tightened by the strategy's limits).
    pub policy: Option<Policy>,
    /// The stage the DPD falls in.
    pub stage: Option<String>,
    /// The experiment and arm, when the stage runs one.
    pub experiment: Option<ArmTrace>,
    /// What the conditions and caps read.
    pub facts: Option<FactsView>,
    /// The rules of the stage, in order, up to the first match.
    pub rules: Vec<RuleTrace>,
    /// The decision: tasks, or a skip with its reason code.
    pub decision: DecisionView,
    /// With `timing = "learned"` and a model: every hour the rule could use today, with the
    /// model's estimate, the draw and why it was or was not taken.
    pub hours: Vec<HourTrace>,
    /// When the decision gives the account to a human queue with a capacity: that queue, whose
    /// day goes to the accounts of highest priority in the whole book (the plan run decides;
    /// one account alone cannot).
    pub capacity: Option<CapacityNote>,
}

/// A human queue with a capacity that the decision routes to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityNote {
    /// The queue.
    pub queue: String,
    /// The calls its agents complete in a whole day.
    pub calls_per_day: u64,
    /// This account's priority, against which the plan ranks the book.
    pub priority: f64,
}

/// An experiment assignment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmTrace {
    /// Experiment name.
    pub experiment: String,
    /// The account's arm.
    pub arm: String,
}

/// What rules and caps saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactsView {
    /// Amount due.
    pub amount_due: Money,
    /// Balance.
    pub balance: Money,
    /// Tags.
    pub tags: Vec<String>,
    /// Broken promises so far.
    pub broken_promises: u32,
    /// Attempts on any channel over the last 7 local days.
    pub attempts_7d: u32,
    /// Calls on this account over the last 7 local days.
    pub calls_7d: u32,
    /// Calls on this account today.
    pub calls_today: u32,
    /// Right-party calls with the borrower today, across accounts.
    pub borrower_rpc_today: u32,
    /// Days since the last conversation, if there was one.
    pub days_since_rpc: Option<u32>,
    /// The open promise, if any: `(amount, due_on)`.
    pub open_promise: Option<(Money, NaiveDate)>,
}

/// One rule tried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleTrace {
    /// Rule name.
    pub rule: String,
    /// Whether every condition held (the first such rule decides).
    pub matched: bool,
    /// Why not: the first condition that failed, with the account's value.
    pub failed: Option<String>,
}

/// The planner's decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionView {
    /// `tasks` or `skip`.
    pub kind: &'static str,
    /// The skip's reason code.
    pub reason: Option<String>,
    /// The skip's sentence.
    pub detail: Option<String>,
    /// The tasks planned.
    pub tasks: Vec<Task>,
    /// The cap that limited the day's attempts (robot, SMS, e-mail) or calls (human), with what
    /// it left (`cap:calls_7d: 2 left`); none when no cap did.
    pub limited_by: Option<String>,
}

impl From<Decision> for DecisionView {
    fn from(decision: Decision) -> DecisionView {
        match decision {
            Decision::Tasks(tasks) => {
                DecisionView { kind: "tasks", reason: None, detail: None, tasks, limited_by: None }
            }
            Decision::Skip(Skip { reason, detail, .. }) => DecisionView {
                kind: "skip",
                reason: Some(reason.to_string()),
                detail: Some(detail),
                tasks: Vec::new(),
                limited_by: None,
            },
        }
    }
}

/// Explains the plan of one account at `now`, with `history` holding at least its borrower's,
/// planned with `model` as a plan run would (learned timing).
pub fn explain(
    account: &Account,
    borrower: Option<&Borrower>,
    history: &History,
    strategies: &StrategySet,
    model: Option<&crate::learn::ContactModel>,
    now: DateTime<Utc>,
) -> Explanation {
    let mut planner = Planner::new(history, strategies, now).with_model(model).tracing_hours();
    let mut decision: DecisionView = planner.decide(account, borrower).into();
    let hours = planner.hour_trace().to_vec();
    let capacity = decision.tasks.iter().find_map(|task| {
        let queue = task.queue.as_deref()?;
        let capacity = strategies.capacities.get(queue)?;
        Some(CapacityNote {
            queue: queue.to_string(),
            calls_per_day: capacity.calls_per_day(),
            priority: task.priority,
        })
    });
    if let Some((cap, left)) = planner.last_limit() {
        decision.limited_by = Some(format!("{}: {left} left", crate::domain::Reason::Cap(cap)));
    }
    let mut explanation = Explanation {
        account_id: account.id.clone(),
        as_of: now,
        timezones: Vec::new(),
        local_date: None,
        dpd: None,
        strategy: None,
        policy: None,
        stage: None,
        experiment: None,
        facts: None,
        rules: Vec::new(),
        decision,
        hours,
        capacity,
    };
    let Some(borrower) = borrower else {
        return explanation;
    };
    let zone = borrower.primary_timezone();
    let local_date = now.with_timezone(&zone).date_naive();
    let dpd = account.dpd_on(local_date);
    explanation.timezones = borrower.timezones.iter().map(|zone| zone.name().to_string()).collect();
    explanation.local_date = Some(local_date);
    explanation.dpd = Some(dpd);

    let attempts = history.attempts_of(&borrower.id);
    let counters = count_calls(attempts, &account.id, zone, local_date, now);
    let days_since_rpc = history
        .last_conversation
        .get(&account.id)
        .map(|at| (local_date - at.with_timezone(&zone).date_naive()).num_days().max(0) as u32);
    explanation.facts = Some(FactsView {
        amount_due: account.amount_due,
        balance: account.balance,
        tags: account.tags.clone(),
        broken_promises: account.broken_promises,
        attempts_7d: counters.account_attempts_7d,
        calls_7d: counters.account_calls_7d,
        calls_today: counters.account_calls_today,
        borrower_rpc_today: counters.borrower_rpc_today,
        days_since_rpc,
        open_promise: history.open_promises.get(&account.id).map(|promise| (promise.amount, promise.due_on)),
    });

    let Some(strategy) = strategies.strategy_for(&account.product) else {
        return explanation;
    };
    explanation.strategy = Some(strategy.name.to_string());
    explanation.policy = Some(strategy.policy.clone());
    let Some(stage) = strategy.stage_of(dpd) else {
        return explanation;
    };
    explanation.stage = Some(strategy.stages[stage].name.to_string());
    let arm = strategy.arm_of(stage, &account.borrower_id);
    explanation.experiment = arm.map(|(experiment, arm)| ArmTrace {
        experiment: strategy.experiments[experiment].name.to_string(),
        arm: strategy.experiments[experiment].arms[arm].0.to_string(),
    });
    let mut facts = strategies.new_facts();
    strategies.fill_facts(account, dpd, counters.account_attempts_7d, days_since_rpc, &mut facts);
    for (_, rule) in strategy.candidate_rules(stage, arm) {
        let failed = rule.conditions.first_failure(&facts);
        explanation.rules.push(RuleTrace {
            rule: rule.name.to_string(),
            matched: failed.is_none(),
            failed: failed.map(|condition| describe_failure(condition, account, &facts)),
        });
        if failed.is_none() {
            break;
        }
    }
    explanation
}

/// "`balance` (the account has 1200)": the failed condition and what the account had.
fn describe_failure(condition: &str, account: &Account, facts: &Facts) -> String {
    let value = match condition {
        "product" => account.product.clone(),
        "dpd" => facts.dpd.to_string(),
        "tags_any" | "tags_all" | "tags_none" => format!("[{}]", account.tags.join(", ")),
        "funder" => account.funders.as_ref().map_or_else(|| "no funders".to_string(), |shares| shares.to_string()),
        "amount_due" => account.amount_due.to_string(),
        "balance" => account.balance.to_string(),
        "score" => {
            account.scores.iter().map(|(model, value)| format!("{model}={value}")).collect::<Vec<_>>().join(", ")
        }
        "attr" => account.attrs.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join(", "),
        "broken_promises" => facts.broken_promises.to_string(),
        "attempts_7d" => facts.attempts_7d.to_string(),
        "days_since_rpc" => facts.days_since_rpc.map_or_else(|| "never".to_string(), |days| days.to_string()),
        _ => String::new(),
    };
    format!("{condition} (the account has {value})")
}
