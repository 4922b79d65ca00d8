//! Which of a strategy's `[[reaction]]`s act on a risk event for an account: the one decision
//! `ops::events` applies and `explain` shows. Pure: the account, its borrower's history and the
//! event in, the reactions with why each does or does not act out. No I/O, no clock.

use crate::domain::{Account, Borrower, EventKind, History};
use crate::policy::count_calls;
use crate::strategy::{Miss, Reaction, Strategy, StrategySet};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The account's strategy and its reactions, each with why it does not act (`None`: it acts).
pub type Matched<'a> = (&'a Strategy, Vec<(&'a Reaction, Option<Miss>)>);

/// The reactions of the account's strategy, each with why it does not act (`None`: it acts),
/// in file order; `None` when no strategy handles the account's product.
pub fn match_reactions<'a>(
    account: &Account,
    borrower: &Borrower,
    history: &History,
    strategies: &'a StrategySet,
    kind: &EventKind,
    fields: &serde_json::Map<String, serde_json::Value>,
    now: DateTime<Utc>,
) -> Option<Matched<'a>> {
    let strategy = strategies.strategy_for(&account.product)?;
    let zone = borrower.primary_timezone();
    let local_date = now.with_timezone(&zone).date_naive();
    let dpd = account.dpd_on(local_date);
    let counters = count_calls(history.attempts_of(&borrower.id), &account.id, zone, local_date, now);
    let days_since_rpc = history
        .last_conversation
        .get(&account.id)
        .map(|at| (local_date - at.with_timezone(&zone).date_naive()).num_days().max(0) as u32);
    let mut facts = strategies.new_facts();
    strategies.fill_facts(account, dpd, counters.account_attempts_7d, days_since_rpc, &mut facts);
    let stage = strategy.stage_of(dpd);
    let matched = strategy
        .reactions
        .iter()
        .map(|reaction| (reaction, reaction.first_failure(kind, fields, stage, &facts)))
        .collect();
    Some((strategy, matched))
}

/// One reaction as `explain` shows it, for an event of each of its types.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReactionTrace {
    /// Reaction name.
    pub reaction: String,
    /// The event types it reacts to.
    pub on: Vec<String>,
    /// Whether the account's side of its conditions holds now (its stage and `when` conditions
    /// on the account); `event.<field>` conditions depend on the event.
    pub account_matches: bool,
    /// Why not, when it does not.
    pub failed: Option<String>,
    /// Its `event.<field>` conditions, which the event must also meet.
    pub event_fields: Vec<String>,
}

/// What each reaction of the account's strategy would do on an event now: [`match_reactions`]
/// asked with each reaction's first type and no event fields.
pub fn trace_reactions(
    account: &Account,
    borrower: &Borrower,
    history: &History,
    strategies: &StrategySet,
    now: DateTime<Utc>,
) -> Vec<ReactionTrace> {
    let Some(strategy) = strategies.strategy_for(&account.product) else { return Vec::new() };
    let none = serde_json::Map::new();
    strategy
        .reactions
        .iter()
        .filter_map(|reaction| {
            let kind = reaction.on.first()?;
            let (_, matched) = match_reactions(account, borrower, history, strategies, kind, &none, now)?;
            let miss = matched.into_iter().find(|(other, _)| other.name == reaction.name).and_then(|(_, miss)| miss);
            let failed = match miss {
                None | Some(Miss::EventField(_)) => None,
                Some(miss) => Some(miss.to_string()),
            };
            Some(ReactionTrace {
                reaction: reaction.name.to_string(),
                on: reaction.on.iter().map(ToString::to_string).collect(),
                account_matches: failed.is_none(),
                failed,
                event_fields: reaction.event_conditions.iter().map(|(field, _)| format!("event.{field}")).collect(),
            })
        })
        .collect()
}
