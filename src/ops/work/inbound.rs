//! Inbound calls: a borrower calls, the robot answers. The lookup (who is this — one borrower,
//! the candidates of a shared number, or nobody — with their accounts, open promises, last
//! attempts, open tasks, what the contact gate allows now, and the script of the rule deciding
//! the account's day), the attempts the robot reports on the call (direction `inbound`: they
//! count toward no call cap, but a conversation starts the cool-down and ends the account's
//! outbound calls for the day), and the transfer to a person (`handover::transfer`, the one
//! hand-over path, asked through the gate). Decisions are the gate's and the planner's; this
//! module loads, asks and writes.

use super::handover::{self, TRANSFER_WINDOW};
use super::{CLOCK_SKEW, PromiseTerms, Rules, WorkError, invalid};
use crate::domain::effects::effects;
use crate::domain::{
    Account, Borrower, CallMatch, Channel, Money, Outcome, Reason, TaskOrigin, TaskState, parse_phone,
};
use crate::ops::recheck::{Context, Verdict, recheck};
use crate::plan::explain;
use crate::store;
use crate::strategy::{MessageTemplates, StrategySet};
use chrono::{DateTime, NaiveDate, Utc};
use entity::tasks;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::{Deserialize, Serialize};
use std::path::Path;
use utoipa::ToSchema;

/// The reason code of the outbound tasks an inbound conversation ended.
pub const INBOUND_CONVERSATION: &str = "inbound_conversation";

/// The last attempts shown per borrower.
const LAST_ATTEMPTS: usize = 10;

/// A call as the dialler announces it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundCallIn {
    /// The caller's number, E.164 (spaces, dashes, dots and brackets are ignored).
    pub from: String,
    /// The number dialled, if known.
    #[serde(default)]
    pub to: Option<String>,
}

/// What the gate says about handing the account's borrower to a person now.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ContactNow {
    /// Whether a transfer to an agent may happen now.
    pub transfer_allowed: bool,
    /// Why not (a reason code: `hours`, `flag:cease_contact`, `held`, ...).
    pub reason: Option<String>,
    /// A sentence for people.
    pub detail: Option<String>,
    /// Until when contact may go on today, when it may.
    pub until: Option<DateTime<Utc>>,
}

/// A promise on the call's account.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PromiseOnCall {
    /// The amount.
    #[schema(value_type = String)]
    pub amount: Money,
    /// Due by.
    pub due_on: NaiveDate,
}

/// An open task of the account.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OpenTask {
    /// Task id.
    pub id: i64,
    /// Channel.
    pub channel: String,
    /// Human queue.
    pub queue: Option<String>,
    /// State.
    pub state: String,
    /// Its window.
    pub not_before: DateTime<Utc>,
    /// Its window's end.
    pub not_after: DateTime<Utc>,
}

/// One account of the caller.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AccountOnCall {
    /// Account id.
    pub account_id: String,
    /// Product.
    pub product: String,
    /// Currency.
    pub currency: String,
    /// Amount due.
    #[schema(value_type = String)]
    pub amount_due: Money,
    /// Balance.
    #[schema(value_type = String)]
    pub balance: Money,
    /// Days past due on the borrower's local day.
    pub dpd: i32,
    /// The stage the planner puts it in today.
    pub stage: Option<String>,
    /// Its strategy.
    pub strategy: Option<String>,
    /// The rule deciding its day.
    pub rule: Option<String>,
    /// The queue a transfer goes to unless the robot names one: the deciding rule's escalation
    /// queue, its own human queue, or `default`.
    pub transfer_queue: String,
    /// Its flags.
    pub flags: Vec<String>,
    /// The open promise.
    pub open_promise: Option<PromiseOnCall>,
    /// Its open tasks.
    pub open_tasks: Vec<OpenTask>,
    /// What the gate allows now.
    pub contact_now: ContactNow,
    /// The script of the deciding rule's `inbound_template`, rendered.
    pub script: Option<String>,
}

/// One attempt of the borrower's history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttemptOnCall {
    /// The account.
    pub account_id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Channel.
    pub channel: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Outcome.
    pub outcome: String,
}

/// One borrower the number belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Caller {
    /// Borrower id.
    pub borrower_id: String,
    /// Name, for the robot and the agent.
    pub name: String,
    /// Their zones; the first decides the local day.
    pub timezones: Vec<String>,
    /// Their accounts.
    pub accounts: Vec<AccountOnCall>,
    /// Their last attempts (newest first, at most 10) and conversations among them.
    pub last_attempts: Vec<AttemptOnCall>,
    /// When they last talked with us, per account.
    pub last_conversation: Option<DateTime<Utc>>,
}

/// The answer to `POST /v1/inbound-calls`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InboundAnswer {
    /// The call's id (for its attempts and transfer).
    pub id: i64,
    /// The caller's number, normalised.
    pub from: String,
    /// `single`, `shared` (several borrowers: ask who is calling) or `unknown`.
    #[serde(rename = "match")]
    pub matched: String,
    /// The borrowers the number belongs to.
    pub borrowers: Vec<Caller>,
}

/// The number without spaces, dashes, dots or brackets, as E.164.
pub fn normalise_number(text: &str) -> Result<String, String> {
    let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}')).collect();
    parse_phone(&compact)
}

/// The stand-in task of a call about `account`: the human task a transfer would create, which
/// the gate is asked about.
fn stand_in(
    account: &Account,
    borrower: &Borrower,
    strategies: &StrategySet,
    rule: Option<&str>,
    queue: &str,
    plan_run_id: i64,
    now: DateTime<Utc>,
) -> tasks::Model {
    let zone = borrower.primary_timezone();
    let local_date = now.with_timezone(&zone).date_naive();
    let strategy = strategies.strategy_for(&account.product);
    let dpd = account.dpd_on(local_date);
    tasks::Model {
        id: 0,
        plan_run_id,
        account_id: account.id.clone(),
        borrower_id: account.borrower_id.clone(),
        local_date,
        dpd,
        stage: strategy.and_then(|s| s.stage_of(dpd).map(|i| s.stages[i].name.to_string())).unwrap_or_default(),
        strategy: strategy.map(|s| s.name.to_string()).unwrap_or_default(),
        rule: rule.unwrap_or_default().to_string(),
        arm: None,
        channel: Channel::Human.code().to_string(),
        queue: Some(queue.to_string()),
        template: None,
        attempt: 0,
        calls_allowed: 1,
        not_before: now,
        not_after: now + TRANSFER_WINDOW,
        priority: handover::TRANSFER_PRIORITY,
        state: TaskState::Planned.code().to_string(),
        created_at: now,
        lease_agent: None,
        lease_expires_at: None,
        state_changed_at: None,
        state_reason: None,
        context: None,
        address: None,
        origin: TaskOrigin::Transfer.code().to_string(),
    }
}

fn contact_now(verdict: &Verdict) -> ContactNow {
    match verdict {
        Verdict::Pass { room, .. } => {
            ContactNow { transfer_allowed: true, reason: None, detail: None, until: room.until }
        }
        Verdict::Wait { reason, detail } | Verdict::Remove { reason, detail, .. } => ContactNow {
            transfer_allowed: false,
            reason: Some(reason.to_string()),
            detail: Some(detail.clone()),
            until: None,
        },
    }
}

/// The deciding rule of the account's day (the planner's own decision, as `explain` shows it)
/// and the queue a transfer goes to by default: the rule's escalation queue, its own human
/// queue, or `default`.
fn deciding_rule<'a>(
    account: &Account,
    borrower: &Borrower,
    context: &Context,
    strategies: &'a StrategySet,
    now: DateTime<Utc>,
) -> (Option<&'a crate::strategy::Rule>, String) {
    let explanation = explain(account, Some(borrower), &context.history, strategies, None, now);
    let rule = explanation.rules.iter().find(|trace| trace.matched).and_then(|trace| {
        strategies.strategy_for(&account.product)?.rules.iter().find(|rule| *rule.name == *trace.rule)
    });
    let queue = rule
        .and_then(|rule| {
            rule.treatment.escalate.as_ref().map(|(_, queue)| queue.to_string()).or(rule
                .treatment
                .queue
                .as_ref()
                .map(|q| q.to_string()))
        })
        .unwrap_or_else(|| "default".to_string());
    (rule, queue)
}

fn script(
    templates_dir: &Path,
    rule: Option<&crate::strategy::Rule>,
    account: &Account,
    borrower: &Borrower,
    task: &tasks::Model,
    lender: &str,
) -> Option<String> {
    let name = rule?.treatment.inbound_template.as_deref()?;
    // The stand-in is the transfer's human task; the script is the robot's.
    let mut context = crate::ops::release::message_context(task, account, borrower, lender);
    context.task.channel = Channel::Robot.code().to_string();
    match MessageTemplates::render_file(templates_dir, name, &context) {
        Ok(text) => Some(text),
        Err(error) => {
            tracing::warn!(%error, "inbound script");
            None
        }
    }
}

/// Everything the lookup and the transfer read about the call's accounts.
struct CallContext {
    context: Context,
    stand_ins: Vec<tasks::Model>,
}

async fn call_context(
    db: &impl ConnectionTrait,
    strategies: &StrategySet,
    accounts: &[String],
    now: DateTime<Utc>,
) -> Result<CallContext, WorkError> {
    let plan_run_id = store::latest_plan_run_id(db).await?.unwrap_or(0);
    let ids: Vec<&str> = accounts.iter().map(String::as_str).collect();
    let portfolio = store::load_accounts_by_id(db, &ids).await?;
    let mut stand_ins: Vec<tasks::Model> = Vec::new();
    for account in &portfolio.accounts {
        if let Some(borrower) = portfolio.borrowers.get(&account.borrower_id) {
            stand_ins.push(stand_in(account, borrower, strategies, None, "default", plan_run_id, now));
        }
    }
    let context = Context::load(db, &stand_ins, now).await?;
    // Now that the history is read, each stand-in gets its deciding rule and default queue.
    for task in &mut stand_ins {
        if let Some((account, borrower)) = context.parties(task) {
            let (rule, queue) = deciding_rule(account, borrower, &context, strategies, now);
            task.rule = rule.map(|rule| rule.name.to_string()).unwrap_or_default();
            task.queue = Some(queue);
        }
    }
    Ok(CallContext { context, stand_ins })
}

/// `POST /v1/inbound-calls`: records the call and answers who is calling and what may happen.
pub async fn lookup(
    db: &DatabaseConnection,
    rules: &Rules<'_>,
    templates_dir: &Path,
    lender: &str,
    call: &InboundCallIn,
    now: DateTime<Utc>,
) -> Result<InboundAnswer, WorkError> {
    let from = normalise_number(&call.from).map_err(|message| invalid("from", message))?;
    let to = match call.to.as_deref().map(str::trim).filter(|to| !to.is_empty()) {
        Some(to) => Some(normalise_number(to).map_err(|message| invalid("to", message))?),
        None => None,
    };
    let borrower_ids = store::borrowers_by_phone(db, &from).await?;
    let matched = match borrower_ids.len() {
        0 => CallMatch::Unknown,
        1 => CallMatch::Single,
        _ => CallMatch::Shared,
    };
    let id = store::insert_inbound_call(db, &from, to.as_deref(), now, matched, &borrower_ids).await?;
    let accounts = store::accounts_of_borrowers(db, &borrower_ids).await?;
    let call_context = call_context(db, rules.strategies, &accounts, now).await?;
    let mut callers = Vec::new();
    for borrower_id in &borrower_ids {
        let Some(borrower) = call_context.context.book.borrowers.get(borrower_id) else { continue };
        let mut on_call = Vec::new();
        for task in call_context.stand_ins.iter().filter(|task| &task.borrower_id == borrower_id) {
            let Some((account, _)) = call_context.context.parties(task) else { continue };
            let verdict = recheck(task, &call_context.context, rules.strategies, rules.fallback, now);
            let rule = crate::ops::recheck::rule_of(rules.strategies, task);
            let open_tasks = store::tasks_for_account(db, &account.id)
                .await?
                .into_iter()
                .filter(|stored| TaskState::LIVE.iter().any(|state| state.code() == stored.state))
                .map(|stored| OpenTask {
                    id: stored.id,
                    channel: stored.channel,
                    queue: stored.queue,
                    state: stored.state,
                    not_before: stored.not_before,
                    not_after: stored.not_after,
                })
                .collect();
            on_call.push(AccountOnCall {
                account_id: account.id.clone(),
                product: account.product.clone(),
                currency: account.currency.clone(),
                amount_due: account.amount_due,
                balance: account.balance,
                dpd: task.dpd,
                stage: (!task.stage.is_empty()).then(|| task.stage.clone()),
                strategy: (!task.strategy.is_empty()).then(|| task.strategy.clone()),
                rule: (!task.rule.is_empty()).then(|| task.rule.clone()),
                transfer_queue: task.queue.clone().unwrap_or_else(|| "default".into()),
                flags: account.flags.iter().map(|flag| flag.code().to_string()).collect(),
                open_promise: call_context
                    .context
                    .history
                    .open_promises
                    .get(&account.id)
                    .map(|promise| PromiseOnCall { amount: promise.amount, due_on: promise.due_on }),
                open_tasks,
                contact_now: contact_now(&verdict),
                script: script(templates_dir, rule, account, borrower, task, lender),
            });
        }
        let history = &call_context.context.history;
        let last_attempts: Vec<AttemptOnCall> = history
            .attempts_of(borrower_id)
            .iter()
            .rev()
            .take(LAST_ATTEMPTS)
            .map(|attempt| AttemptOnCall {
                account_id: attempt.account_id.clone(),
                at: attempt.at,
                channel: attempt.channel.code().to_string(),
                direction: if attempt.inbound { "inbound" } else { "outbound" }.to_string(),
                outcome: attempt.outcome.code().to_string(),
            })
            .collect();
        let last_conversation =
            on_call.iter().filter_map(|account| history.last_conversation.get(&account.account_id)).max().copied();
        callers.push(Caller {
            borrower_id: borrower_id.clone(),
            name: borrower.name.clone(),
            timezones: borrower.timezones.iter().map(|zone| zone.name().to_string()).collect(),
            accounts: on_call,
            last_attempts,
            last_conversation,
        });
    }
    Ok(InboundAnswer { id, from, matched: matched.code().to_string(), borrowers: callers })
}

/// What the robot reports on an inbound call.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundAttemptIn {
    /// The account it was about (required when the caller has several).
    #[serde(default)]
    pub account_id: Option<String>,
    /// Outcome code: `rpc`, `promise`, `dispute`, `refused`, `third_party`, `paid_claimed`, ...
    pub outcome: String,
    /// When; default now.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// Required with, and only with, `promise`.
    #[serde(default)]
    pub promise: Option<PromiseTerms>,
    /// Free text.
    #[serde(default)]
    pub note: Option<String>,
}

/// What an inbound attempt did.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InboundAttemptRecorded {
    /// The call.
    pub call_id: i64,
    /// The attempt's id.
    pub attempt_id: i64,
    /// The account.
    pub account_id: String,
    /// The promise it made.
    pub promise_id: Option<i64>,
    /// Flags it set (`dispute`, `do_not_call`).
    pub flags_set: Vec<String>,
    /// The account's outbound tasks it ended (a conversation ends the day's calls).
    pub tasks_cancelled: Vec<i64>,
}

/// The call's account the report is about: the one named, or the caller's only account.
async fn account_of_call(
    db: &impl ConnectionTrait,
    call: &entity::inbound_calls::Model,
    asked: Option<&str>,
) -> Result<String, WorkError> {
    let borrowers: Vec<String> = call.borrowers.split(';').filter(|id| !id.is_empty()).map(str::to_string).collect();
    let accounts = store::accounts_of_borrowers(db, &borrowers).await?;
    match asked.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) if accounts.iter().any(|account| account == id) => Ok(id.to_string()),
        Some(id) => Err(invalid("account_id", format!("`{id}` is not an account of the caller (call {})", call.id))),
        None if accounts.len() == 1 => Ok(accounts[0].clone()),
        None if accounts.is_empty() => {
            Err(WorkError::Conflict(format!("call {} matched no borrower: nothing to record it on", call.id)))
        }
        None => {
            Err(invalid("account_id", format!("the caller has {} accounts: name the one it was about", accounts.len())))
        }
    }
}

/// `POST /v1/inbound-calls/{id}/attempts`: records what happened on the call as an inbound
/// attempt and applies its effects — a promise, a flag, and for a conversation the end of the
/// account's outbound calls for the day (`inbound_conversation`); the cool-down then runs from
/// it like from any conversation.
pub async fn record_inbound_attempt(
    db: &DatabaseConnection,
    call_id: i64,
    report: &InboundAttemptIn,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<InboundAttemptRecorded, WorkError> {
    let outcome: Outcome =
        report.outcome.parse().map_err(|error: crate::domain::ParseCodeError| invalid("outcome", error.to_string()))?;
    if matches!(
        outcome,
        Outcome::NoAnswer
            | Outcome::Busy
            | Outcome::Voicemail
            | Outcome::Failed
            | Outcome::Delivered
            | Outcome::Undelivered
    ) {
        return Err(invalid("outcome", format!("`{outcome}` cannot happen on a call the borrower placed")));
    }
    if outcome == Outcome::Callback {
        return Err(invalid(
            "outcome",
            "a borrower on the line who wants a person is transferred: POST /v1/inbound-calls/{id}/transfer",
        ));
    }
    let at = report.at.unwrap_or(now);
    if at > now + CLOCK_SKEW {
        return Err(invalid("at", "is in the future"));
    }
    match (&report.promise, outcome == Outcome::Promise) {
        (None, true) => return Err(invalid("promise", "a `promise` outcome needs the promise's amount and due_on")),
        (Some(_), false) => return Err(invalid("promise", "only a `promise` outcome carries a promise")),
        (Some(terms), true) if terms.amount <= Money::ZERO => {
            return Err(invalid("promise.amount", "must be more than zero"));
        }
        _ => {}
    }
    let call = store::inbound_call(db, call_id)
        .await?
        .ok_or_else(|| WorkError::NotFound(format!("inbound call {call_id}")))?;
    let account_id = account_of_call(db, &call, report.account_id.as_deref()).await?;
    let txn = store::begin_write(db).await?;
    let row = store::account_row(&txn, &account_id)
        .await?
        .ok_or_else(|| WorkError::NotFound(format!("account {account_id}")))?;
    let attempt = store::InboundAttempt {
        account_id: &account_id,
        borrower_id: &row.borrower_id,
        address: &call.from_number,
        at,
        outcome,
        note: report.note.as_deref(),
        actor,
    };
    let Some(attempt_id) = store::insert_inbound_attempt(&txn, &attempt).await? else {
        txn.rollback().await?;
        return Err(WorkError::Conflict(format!(
            "account {account_id} already has a robot attempt at {}",
            at.to_rfc3339()
        )));
    };
    let mut recorded = InboundAttemptRecorded {
        call_id,
        attempt_id,
        account_id: account_id.clone(),
        promise_id: None,
        flags_set: Vec::new(),
        tasks_cancelled: Vec::new(),
    };
    let effects = effects(outcome);
    if let (true, Some(terms)) = (effects.opens_promise, &report.promise) {
        recorded.promise_id =
            store::insert_attempt_promise(&txn, &account_id, terms.amount, terms.due_on, at, attempt_id).await?;
    }
    if let Some(flag) = effects.sets_flag
        && store::add_account_flag(&txn, &account_id, flag, now).await?
    {
        recorded.flags_set.push(flag.code().to_string());
    }
    // What the outcome cancels (a promise, a flag), or for any other conversation the day's
    // outbound calls: the borrower has just talked with us.
    let cancels = match effects.cancels {
        Some((cancels, reason)) => Some((store::ChannelFilter::from(cancels), reason.to_string())),
        None if outcome.is_right_party() => Some((store::ChannelFilter::Calls, INBOUND_CONVERSATION.to_string())),
        None => None,
    };
    if let Some((filter, reason)) = cancels {
        let audit = store::Audit::new(actor, serde_json::json!({"attempt_id": attempt_id, "inbound_call": call_id}));
        let closed = crate::dispatch::close_tasks(
            &txn,
            &[account_id.as_str()],
            filter,
            None,
            TaskState::Cancelled,
            &reason,
            audit,
            now,
        )
        .await?;
        recorded.tasks_cancelled = closed.iter().map(|task| task.id).collect();
    }
    store::record_audit_at(
        &txn,
        now,
        actor,
        "attempt.inbound",
        "account",
        &account_id,
        serde_json::json!({"call_id": call_id, "attempt_id": attempt_id, "outcome": outcome, "promise_id": recorded.promise_id}),
    )
    .await?;
    txn.commit().await?;
    Ok(recorded)
}

/// How the robot hands the caller to a person.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferIn {
    /// The human queue; default the deciding rule's escalation queue, its own queue, or `default`.
    #[serde(default)]
    pub queue: Option<String>,
    /// The account the caller is about (required when they have several).
    #[serde(default)]
    pub account_id: Option<String>,
    /// The robot's note for the agent.
    #[serde(default)]
    pub note: Option<String>,
}

/// What a transfer did.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Transferred {
    /// The call.
    pub call_id: i64,
    /// The account.
    pub account_id: String,
    /// The queue.
    pub queue: String,
    /// The human task the next lease of the queue hands out first.
    pub task_id: i64,
    /// Until when an agent may take it (the caller is on hold).
    pub not_after: DateTime<Utc>,
    /// The account's robot tasks closed as `escalated:transfer`.
    pub robot_tasks_escalated: Vec<i64>,
}

/// `POST /v1/inbound-calls/{id}/transfer`: a human task for the caller through the one
/// hand-over path, asked through the contact gate; a refusal is a conflict naming the reason.
pub async fn transfer(
    db: &DatabaseConnection,
    rules: &Rules<'_>,
    call_id: i64,
    body: &TransferIn,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Transferred, WorkError> {
    let call = store::inbound_call(db, call_id)
        .await?
        .ok_or_else(|| WorkError::NotFound(format!("inbound call {call_id}")))?;
    if let Some(task) = call.transfer_task_id {
        return Err(WorkError::Conflict(format!("call {call_id} was already transferred (task {task})")));
    }
    let account_id = account_of_call(db, &call, body.account_id.as_deref()).await?;
    let txn = store::begin_write(db).await?;
    let call_context = call_context(&txn, rules.strategies, std::slice::from_ref(&account_id), now).await?;
    let Some(mut from) = call_context.stand_ins.into_iter().next() else {
        return Err(WorkError::NotFound(format!("account {account_id}")));
    };
    let queue = match body.queue.as_deref().map(str::trim) {
        Some("") => return Err(invalid("queue", "must not be empty")),
        Some(queue) => queue.to_string(),
        None => from.queue.clone().unwrap_or_else(|| "default".into()),
    };
    from.queue = Some(queue.clone());
    let attempts: Vec<serde_json::Value> =
        store::inbound_attempts_of_call(&txn, &account_id, &call.from_number, call.at)
            .await?
            .into_iter()
            .map(|(at, outcome)| serde_json::json!({"at": at, "outcome": outcome}))
            .collect();
    let extra = serde_json::json!({"inbound_call": call_id, "from": call.from_number, "note": body.note, "call_attempts": attempts});
    let escalation = handover::transfer(&txn, rules, &from, &queue, extra, actor, now).await?;
    let Some(task_id) = escalation.human_task else {
        // The refusal's audit row stays; nothing else was written.
        txn.commit().await?;
        let reason = escalation.refused.unwrap_or_else(|| Reason::NoWindow.to_string());
        return Err(WorkError::Conflict(format!("the contact gate refuses a transfer now: {reason}")));
    };
    store::set_transfer_task(&txn, call_id, task_id).await?;
    let task = store::task_by_id(&txn, task_id).await?.ok_or_else(|| WorkError::NotFound(format!("task {task_id}")))?;
    txn.commit().await?;
    Ok(Transferred {
        call_id,
        account_id,
        queue,
        task_id,
        not_after: task.not_after,
        robot_tasks_escalated: escalation.robot_tasks_escalated,
    })
}
