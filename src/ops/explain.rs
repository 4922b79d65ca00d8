//! `arrears explain ACCOUNT_ID` and `GET /v1/accounts/{id}/explain`: the planner's reasoning for
//! one account (see [`crate::plan::explain`]) together with what is stored about it — its tasks
//! and their states, its promises, its stored stage.

use super::{Settings, connect, load_strategies};
use crate::plan::{Explanation, explain};
use crate::store::{self, StoreError};
use crate::strategy::StrategySet;
use chrono::{DateTime, Duration, Utc};
use entity::{promises, tasks};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use std::io::Write;

/// Everything "why was this account (not) called?" needs.
#[derive(Debug, Clone, Serialize)]
pub struct AccountExplanation {
    /// The stage stored by the last saved plan.
    pub stored_stage: Option<String>,
    /// What the planner decides at `as_of`, and why.
    pub explanation: Explanation,
    /// The account's stored tasks (newest day first), with their states.
    pub tasks: Vec<tasks::Model>,
    /// The account's promises, newest first.
    pub promises: Vec<promises::Model>,
    /// The last local day a reaction holds all contact, if one does.
    pub hold_until: Option<chrono::NaiveDate>,
    /// The reactions of the account's strategy and whether the account's side of each holds
    /// now (the same decision `ops::events` applies to an arriving event).
    pub reactions: Vec<crate::plan::ReactionTrace>,
    /// The account's reaction cases, oldest deadline first.
    pub cases: Vec<super::events::CaseView>,
}

/// Explains one account as of `now`; `None` when the account does not exist.
pub async fn explain_account(
    db: &impl ConnectionTrait,
    strategies: &StrategySet,
    account_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<AccountExplanation>, StoreError> {
    let Some(page) = store::load_account(db, account_id).await? else {
        return Ok(None);
    };
    let Some(account) = page.portfolio.accounts.first() else {
        return Ok(None);
    };
    let borrower = page.portfolio.borrowers.get(&account.borrower_id);
    let today = now.date_naive();
    let history = store::load_history(
        db,
        store::HistoryScope::Borrowers(&[account.borrower_id.as_str()]),
        now - Duration::days(8),
        Some((today - Duration::days(1))..=(today + Duration::days(1))),
    )
    .await?;
    let model = store::load_latest_model(db).await?;
    let explanation = explain(account, borrower, &history, strategies, model.as_ref(), now);
    let tasks = tasks::Entity::find()
        .filter(tasks::Column::AccountId.eq(account_id))
        .order_by_desc(tasks::Column::LocalDate)
        .order_by_asc(tasks::Column::Attempt)
        .all(db)
        .await?;
    let promises = promises::Entity::find()
        .filter(promises::Column::AccountId.eq(account_id))
        .order_by_desc(promises::Column::MadeAt)
        .all(db)
        .await?;
    let reactions = borrower
        .map(|borrower| crate::plan::trace_reactions(account, borrower, &history, strategies, now))
        .unwrap_or_default();
    let cases = super::events::account_cases(db, account_id, now).await?;
    let hold_until = account.hold_until;
    let stored_stage = page.stored_stages.into_iter().next().flatten();
    Ok(Some(AccountExplanation { stored_stage, explanation, tasks, promises, hold_until, reactions, cases }))
}

/// `arrears explain`: prints the explanation for people, or as JSON.
pub async fn explain_command(
    settings: &Settings,
    account_id: &str,
    now: DateTime<Utc>,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let strategies = load_strategies(settings, &settings.strategies_dir)
        .map_err(|errors| anyhow::anyhow!("the strategies are invalid:\n{errors}"))?;
    let db = connect(settings).await?;
    let Some(report) = explain_account(&db, &strategies, account_id, now).await? else {
        writeln!(out, "no account `{account_id}`")?;
        return Ok(false);
    };
    if json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        write_explanation(&report, out)?;
    }
    Ok(true)
}

/// Writes an explanation for people.
pub fn write_explanation(report: &AccountExplanation, out: &mut impl Write) -> anyhow::Result<()> {
    let e = &report.explanation;
    writeln!(out, "account {} as of {}", e.account_id, e.as_of.to_rfc3339())?;
    match (e.local_date, e.dpd) {
        (Some(date), Some(dpd)) => {
            writeln!(out, "local day {date} ({}), {dpd} days past due", e.timezones.join(" + "))?
        }
        _ => writeln!(out, "the borrower is not in the book")?,
    }
    if let Some(facts) = &e.facts {
        writeln!(
            out,
            "amount due {}, balance {}, tags [{}], broken promises {}",
            facts.amount_due,
            facts.balance,
            facts.tags.join(", "),
            facts.broken_promises
        )?;
        let since = facts.days_since_rpc.map_or_else(|| "never".to_string(), |days| format!("{days} days ago"));
        writeln!(
            out,
            "history: {} attempts and {} calls in 7 days, {} calls today, {} right-party calls with the borrower today, last conversation {since}",
            facts.attempts_7d, facts.calls_7d, facts.calls_today, facts.borrower_rpc_today
        )?;
        if let Some((amount, due_on)) = &facts.open_promise {
            writeln!(out, "open promise: {amount} by {due_on}")?;
        }
    }
    match (&e.strategy, &e.policy) {
        (Some(strategy), Some(policy)) => {
            writeln!(out, "strategy {strategy}, policy {} (contact hours {})", policy.name, policy.hours)?
        }
        _ => writeln!(out, "no strategy handles this account's product")?,
    }
    writeln!(
        out,
        "stage {} (stored: {})",
        e.stage.as_deref().unwrap_or("none"),
        report.stored_stage.as_deref().unwrap_or("none")
    )?;
    if let Some(arm) = &e.experiment {
        writeln!(out, "experiment {}: arm {}", arm.experiment, arm.arm)?;
    }
    if !e.rules.is_empty() {
        writeln!(out, "rules tried:")?;
        for rule in &e.rules {
            match &rule.failed {
                None => writeln!(out, "  ✓ {} matched", rule.rule)?,
                Some(failed) => writeln!(out, "  ✗ {}: {failed}", rule.rule)?,
            }
        }
    }
    match e.decision.kind {
        "skip" => writeln!(
            out,
            "decision: skip {} — {}",
            e.decision.reason.as_deref().unwrap_or(""),
            e.decision.detail.as_deref().unwrap_or("")
        )?,
        _ => {
            match &e.decision.limited_by {
                Some(limit) => writeln!(out, "decision: {} task(s), cut by {limit}", e.decision.tasks.len())?,
                None => writeln!(out, "decision: {} task(s)", e.decision.tasks.len())?,
            }
            for task in &e.decision.tasks {
                writeln!(
                    out,
                    "  #{} {} {} → {} {}{}",
                    task.attempt,
                    task.channel,
                    task.not_before.format("%H:%M"),
                    task.not_after.format("%H:%M %:z"),
                    task.queue.as_deref().or(task.template.as_deref()).unwrap_or(""),
                    task.p_contact
                        .map(|p| format!(" (learned hour: estimated contact {:.0} %)", p * 100.0))
                        .unwrap_or_default()
                )?;
            }
        }
    }
    if let Some(note) = &e.capacity {
        writeln!(
            out,
            "queue {} has a capacity ({} calls a day): the plan run gives it the accounts of highest priority in the book \
             (this one: {:.2}); one it does not take falls through to the next rule — the stored tasks show what it decided",
            note.queue, note.calls_per_day, note.priority
        )?;
    }
    if !e.hours.is_empty() {
        writeln!(out, "learned contact curve today (estimate of a right-party contact; ● chosen):")?;
        for hour in &e.hours {
            let bar = "█".repeat((hour.estimate * 40.0).round() as usize);
            let why = match hour.fate {
                crate::plan::HourFate::Chosen => "● chosen".to_string(),
                crate::plan::HourFate::BelowMinPContact => "below min_p_contact".to_string(),
                crate::plan::HourFate::WithinMinGap => "within min_gap of a chosen hour".to_string(),
                crate::plan::HourFate::DrawnLower => "drawn lower than the chosen hours".to_string(),
            };
            let draw = hour.draw.map(|draw| format!(", draw {:.0} %", draw * 100.0)).unwrap_or_default();
            writeln!(out, "  {:02}:00 {:>3.0} % {bar:<40} {why}{draw}", hour.local_hour, hour.estimate * 100.0)?;
        }
    }
    if let Some(until) = report.hold_until {
        writeln!(out, "held: a reaction to a risk event holds all contact through {until}")?;
    }
    if !report.reactions.is_empty() {
        writeln!(out, "reactions to risk events:")?;
        for reaction in &report.reactions {
            let fields = if reaction.event_fields.is_empty() {
                String::new()
            } else {
                format!(" if the event meets {}", reaction.event_fields.join(", "))
            };
            match &reaction.failed {
                None => writeln!(out, "  ✓ {} would act on {}{fields}", reaction.reaction, reaction.on.join(", "))?,
                Some(failed) => writeln!(out, "  ✗ {} ({}): {failed}", reaction.reaction, reaction.on.join(", "))?,
            }
        }
    }
    for case in &report.cases {
        writeln!(
            out,
            "case {} ({} {}, queue {}): {}{}",
            case.id,
            case.event_type,
            case.reaction,
            case.queue,
            case.disposition.as_deref().unwrap_or(&case.state),
            if case.overdue { ", overdue" } else { "" }
        )?;
    }
    if !report.tasks.is_empty() {
        writeln!(out, "stored tasks:")?;
        for task in &report.tasks {
            writeln!(
                out,
                "  {} #{} {} {} ({}){}",
                task.local_date,
                task.attempt,
                task.channel,
                task.state,
                task.rule,
                task.state_reason.as_deref().map(|reason| format!(" — {reason}")).unwrap_or_default()
            )?;
        }
    }
    for promise in &report.promises {
        writeln!(out, "promise {} by {}: {}", promise.amount, promise.due_on, promise.status)?;
    }
    Ok(())
}
