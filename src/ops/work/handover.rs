//! Handing a borrower to a person: the robot's escalation to its rule's human queue (after the
//! rule's unanswered calls, or when the borrower asks for a person) and the callback the
//! borrower asked for at a time — a consent-based call under Reg F §1006.14(b)(3), exempt from
//! the 7-in-7 count and the conversation cool-down but never from the contact hours. The new
//! human task is asked through the one contact gate before it is created; an escalation after
//! unanswered calls also waits for room in a queue with a capacity (`[queues.<name>]`).

use super::{ESCALATION_WINDOW_DAYS, Escalation, Rules, WorkError};
use crate::domain::effects::{Handover, handover_due};
use crate::domain::{Channel, Outcome, Reason, TaskOrigin, TaskState};
use crate::ops::recheck::{Context, Verdict, policy_of, recheck, rule_of};
use crate::policy::{Interval, allowed_intervals};
use crate::store::{self, ChannelFilter};
use chrono::{DateTime, Duration, Utc};
use entity::tasks;
use sea_orm::DatabaseTransaction;

/// How long a callback task stays open after the time the borrower asked for.
pub const CALLBACK_WINDOW: Duration = Duration::hours(1);

/// The priority of a callback task: above any planned work, so the next lease hands it out.
pub const CALLBACK_PRIORITY: f64 = 1e15;

/// The priority of a transfer: the borrower is waiting on the line, so above callbacks too.
pub const TRANSFER_PRIORITY: f64 = 2e15;

/// How long a transfer waits for an agent before it expires (the caller is on hold).
pub const TRANSFER_WINDOW: Duration = Duration::minutes(15);

/// What set off a hand-over check.
pub(super) struct Trigger<'a> {
    pub(super) outcome: Outcome,
    pub(super) callback_at: Option<DateTime<Utc>>,
    pub(super) attempt_id: i64,
    pub(super) actor: &'a str,
}

/// After a robot attempt: when the rule escalates and [`handover_due`] says so (its
/// `after_failed_attempts` unanswered robot calls on the account within
/// [`ESCALATION_WINDOW_DAYS`] local days), closes the account's other robot tasks as
/// `escalated` (with `task.cancelled` for the ones sent) and, unless a human task of that queue
/// is already open today, creates one for the rest of today's contact hours.
pub(super) async fn escalate_if_due(
    txn: &DatabaseTransaction,
    rules: &Rules<'_>,
    task: &tasks::Model,
    trigger: &Trigger<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Escalation>, WorkError> {
    let Some((after, queue)) = rule_of(rules.strategies, task).and_then(|rule| rule.treatment.escalate.clone()) else {
        return Ok(None);
    };
    let context = Context::load(txn, std::slice::from_ref(task), now).await?;
    let Some((account, borrower)) = context.parties(task) else { return Ok(None) };
    let zone = borrower.primary_timezone();
    let local_date = now.with_timezone(&zone).date_naive();
    let first_day = local_date - Duration::days(ESCALATION_WINDOW_DAYS - 1);
    let failed = context
        .history
        .attempts_of(&borrower.id)
        .iter()
        .filter(|attempt| {
            let day = attempt.at.with_timezone(&zone).date_naive();
            attempt.account_id == account.id
                && attempt.at <= now
                && day >= first_day
                && day <= local_date
                && attempt.channel == Channel::Robot
                && attempt.outcome.is_unanswered()
        })
        .count();
    let Some(kind) = handover_due(trigger.outcome, failed, after) else {
        return Ok(None);
    };
    // A human task of that queue already open today takes the hand-over: nothing new to work.
    let open = [TaskState::Planned, TaskState::Ready, TaskState::Leased];
    let existing = store::tasks_for_account(txn, &account.id).await?.into_iter().find(|other| {
        other.local_date == local_date
            && other.channel == Channel::Human.code()
            && other.queue.as_deref() == Some(&*queue)
            && open.iter().any(|state| state.code() == other.state)
    });
    if existing.is_none()
        && let (Handover::FailedAttempts, Some(capacity)) = (kind, rules.strategies.capacities.get(&*queue))
    {
        // A queue with a capacity takes a new escalation after unanswered calls only while its
        // agents can still get through their open work today; otherwise the robot keeps the
        // account (its tasks stay open) and the next unanswered call asks again. A borrower who
        // asks for a person always gets one.
        let backlog = store::queue_backlog(txn, &queue, now).await?;
        let left = capacity.calls_left_today(now);
        if backlog >= left {
            let mut escalation = Escalation {
                trigger: kind.code().to_string(),
                queue: queue.to_string(),
                robot_tasks_escalated: Vec::new(),
                human_task: None,
                refused: None,
            };
            let detail = format!("queue {queue} has {backlog} open task(s) and {left} call(s) left today");
            let reason = Reason::Capacity(crate::domain::QueueName::intern(&queue));
            refuse(txn, task, &mut escalation, reason, detail, trigger, now).await?;
            return Ok(Some(escalation));
        }
    }
    let mut escalation = close_robot_tasks(txn, task, &queue, kind, trigger, now).await?;
    if let Some(existing) = existing {
        escalation.human_task = Some(existing.id);
        return Ok(Some(escalation));
    }
    let policy = policy_of(rules.strategies, rules.fallback, task);
    let window = allowed_intervals(&borrower.timezones, local_date, &[policy.hours], now).into_iter().next();
    let Some(window) = window else {
        let detail = format!("no time left on {local_date} inside {}'s contact hours", policy.name);
        refuse(txn, task, &mut escalation, Reason::NoWindow, detail, trigger, now).await?;
        return Ok(Some(escalation));
    };
    let wanted = rule_of(rules.strategies, task).map_or(1, |rule| rule.treatment.attempts_per_day.max(1));
    let new = NewHumanTask {
        queue: &queue,
        origin: TaskOrigin::Escalation,
        window,
        calls: wanted,
        priority: task.priority,
        kind,
        after: Some((after, failed)),
        extra: None,
    };
    create(txn, rules, task, &context, new, &mut escalation, trigger, now).await?;
    Ok(Some(escalation))
}

/// After a `callback` outcome with the time the borrower asked for: a human task for that time
/// (in the task's own queue for a human task, in the rule's escalation queue for a robot one,
/// whose other robot tasks are closed as `escalated`), open for [`CALLBACK_WINDOW`] inside the
/// contact hours, origin `callback`: a consent-based call, exempt from the 7-in-7 count and
/// the cool-down. A time outside the contact hours, or no queue, creates none (audited).
pub(super) async fn callback(
    txn: &DatabaseTransaction,
    rules: &Rules<'_>,
    task: &tasks::Model,
    trigger: &Trigger<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Escalation>, WorkError> {
    let Some(callback_at) = trigger.callback_at else { return Ok(None) };
    let human = task.channel == Channel::Human.code();
    let queue = if human {
        task.queue.clone().map(std::sync::Arc::<str>::from)
    } else {
        rule_of(rules.strategies, task).and_then(|rule| rule.treatment.escalate.clone()).map(|(_, queue)| queue)
    };
    let Some(queue) = queue else {
        store::record_audit_at(
            txn,
            now,
            trigger.actor,
            "account.callback_refused",
            "account",
            &task.account_id,
            serde_json::json!({"reason": "no_queue", "from_task": task.id, "callback_at": callback_at}),
        )
        .await?;
        return Ok(None);
    };
    let mut escalation = if human {
        Escalation {
            trigger: Handover::Callback.code().to_string(),
            queue: queue.to_string(),
            robot_tasks_escalated: Vec::new(),
            human_task: None,
            refused: None,
        }
    } else {
        close_robot_tasks(txn, task, &queue, Handover::Callback, trigger, now).await?
    };
    let context = Context::load(txn, std::slice::from_ref(task), now).await?;
    let Some((_, borrower)) = context.parties(task) else { return Ok(None) };
    let policy = policy_of(rules.strategies, rules.fallback, task);
    let start = callback_at.max(now);
    let date = start.with_timezone(&borrower.primary_timezone()).date_naive();
    let span = allowed_intervals(&borrower.timezones, date, &[policy.hours], start)
        .into_iter()
        .next()
        .filter(|span| span.start == start);
    let Some(span) = span else {
        let detail = format!(
            "{} is outside {}'s contact hours {} in the borrower's zones",
            callback_at.with_timezone(&borrower.primary_timezone()).to_rfc3339(),
            policy.name,
            policy.hours
        );
        refuse(txn, task, &mut escalation, Reason::Hours, detail, trigger, now).await?;
        return Ok(Some(escalation));
    };
    let window = Interval { start, end: span.end.min(start + CALLBACK_WINDOW) };
    let new = NewHumanTask {
        queue: &queue,
        origin: TaskOrigin::Callback,
        window,
        calls: 1,
        priority: CALLBACK_PRIORITY,
        kind: Handover::Callback,
        after: None,
        extra: None,
    };
    create(txn, rules, task, &context, new, &mut escalation, trigger, now).await?;
    Ok(Some(escalation))
}

/// Hands a borrower who called in to a person: a human task in `queue`, origin `transfer`, for
/// the next [`TRANSFER_WINDOW`] inside the contact hours, at [`TRANSFER_PRIORITY`] (so the next
/// lease of the queue hands it out before any planned work), carrying the call and the robot's
/// note. `from` is the account's stand-in task (no stored task carried the call); the new task is
/// asked through the one contact gate like every hand-over. The account's open robot tasks are
/// closed as `escalated:transfer`.
pub(super) async fn transfer(
    txn: &DatabaseTransaction,
    rules: &Rules<'_>,
    from: &tasks::Model,
    queue: &str,
    extra: serde_json::Value,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Escalation, WorkError> {
    let trigger = Trigger { outcome: Outcome::Callback, callback_at: None, attempt_id: 0, actor };
    let context = Context::load(txn, std::slice::from_ref(from), now).await?;
    let mut escalation = Escalation {
        trigger: Handover::Transfer.code().to_string(),
        queue: queue.to_string(),
        robot_tasks_escalated: Vec::new(),
        human_task: None,
        refused: None,
    };
    let Some((_, borrower)) = context.parties(from) else {
        escalation.refused = Some(Reason::NoContactPoint.to_string());
        return Ok(escalation);
    };
    let policy = policy_of(rules.strategies, rules.fallback, from);
    let date = now.with_timezone(&borrower.primary_timezone()).date_naive();
    let span = allowed_intervals(&borrower.timezones, date, &[policy.hours], now)
        .into_iter()
        .next()
        .filter(|span| span.start <= now);
    let Some(span) = span else {
        let detail = format!(
            "{} is outside {}'s contact hours {} in the borrower's zones",
            now.with_timezone(&borrower.primary_timezone()).to_rfc3339(),
            policy.name,
            policy.hours
        );
        refuse(txn, from, &mut escalation, Reason::Hours, detail, &trigger, now).await?;
        return Ok(escalation);
    };
    let window = Interval { start: now, end: span.end.min(now + TRANSFER_WINDOW) };
    let new = NewHumanTask {
        queue,
        origin: TaskOrigin::Transfer,
        window,
        calls: 1,
        priority: TRANSFER_PRIORITY,
        kind: Handover::Transfer,
        after: None,
        extra: Some(extra),
    };
    create(txn, rules, from, &context, new, &mut escalation, &trigger, now).await?;
    if escalation.human_task.is_some() {
        let closed = close_robot_tasks(txn, from, queue, Handover::Transfer, &trigger, now).await?;
        escalation.robot_tasks_escalated = closed.robot_tasks_escalated;
    }
    Ok(escalation)
}

/// Closes the account's other robot tasks as `escalated` (reason `escalated:<kind>`), with
/// `task.cancelled` for the ones sent and an audit row each.
async fn close_robot_tasks(
    txn: &DatabaseTransaction,
    task: &tasks::Model,
    queue: &str,
    kind: Handover,
    trigger: &Trigger<'_>,
    now: DateTime<Utc>,
) -> Result<Escalation, WorkError> {
    let reason = format!("escalated:{}", kind.code());
    let audit = store::Audit::new(trigger.actor, serde_json::json!({"queue": queue, "attempt_id": trigger.attempt_id}));
    let closed = crate::dispatch::close_tasks(
        txn,
        &[task.account_id.as_str()],
        ChannelFilter::Only(Channel::Robot),
        Some(task.id),
        TaskState::Escalated,
        &reason,
        audit,
        now,
    )
    .await?;
    Ok(Escalation {
        trigger: kind.code().to_string(),
        queue: queue.to_string(),
        robot_tasks_escalated: closed.iter().map(|task| task.id).collect(),
        human_task: None,
        refused: None,
    })
}

/// Records why no human task was created.
async fn refuse(
    txn: &DatabaseTransaction,
    task: &tasks::Model,
    escalation: &mut Escalation,
    reason: Reason,
    detail: String,
    trigger: &Trigger<'_>,
    now: DateTime<Utc>,
) -> Result<(), WorkError> {
    escalation.refused = Some(reason.to_string());
    store::record_audit_at(
        txn,
        now,
        trigger.actor,
        "account.escalation_refused",
        "account",
        &task.account_id,
        serde_json::json!({"reason": reason, "detail": detail, "queue": escalation.queue, "from_task": task.id}),
    )
    .await?;
    Ok(())
}

/// The human task a hand-over wants.
struct NewHumanTask<'a> {
    queue: &'a str,
    origin: TaskOrigin,
    window: Interval,
    calls: u32,
    priority: f64,
    kind: Handover,
    /// The rule's threshold and the unanswered calls counted (escalations).
    after: Option<(u32, usize)>,
    /// More context for the agent (a transfer's call, the robot's note).
    extra: Option<serde_json::Value>,
}

/// Asks the gate about the human task `new` (as a task of its own, now) and creates it
/// `planned`, carrying what the agent needs: why, the attempts so far, an open promise.
#[allow(clippy::too_many_arguments)]
async fn create(
    txn: &DatabaseTransaction,
    rules: &Rules<'_>,
    from: &tasks::Model,
    context: &Context,
    new: NewHumanTask<'_>,
    escalation: &mut Escalation,
    trigger: &Trigger<'_>,
    now: DateTime<Utc>,
) -> Result<(), WorkError> {
    let Some((account, borrower)) = context.parties(from) else { return Ok(()) };
    let zone = borrower.primary_timezone();
    let local_date = new.window.start.with_timezone(&zone).date_naive();
    let first_day = now.with_timezone(&zone).date_naive() - Duration::days(ESCALATION_WINDOW_DAYS - 1);
    let attempts: Vec<serde_json::Value> = context
        .history
        .attempts_of(&borrower.id)
        .iter()
        .filter(|attempt| attempt.account_id == account.id && attempt.at.with_timezone(&zone).date_naive() >= first_day)
        .map(|attempt| {
            serde_json::json!({
                "at": attempt.at,
                "channel": attempt.channel.code(),
                "address": attempt.address,
                "outcome": attempt.outcome.code(),
            })
        })
        .collect();
    let mut carried = serde_json::json!({
        "escalated_from": (from.id != 0).then_some(from.id),
        "trigger": new.kind.code(),
        "origin": new.origin.code(),
        "callback_at": trigger.callback_at,
        "after_failed_attempts": new.after.map(|(after, _)| after),
        "failed_attempts": new.after.map(|(_, failed)| failed),
        "window_days": ESCALATION_WINDOW_DAYS,
        "attempts": attempts,
        "promise": context.history.open_promises.get(&account.id).map(|promise| serde_json::json!({
            "amount": promise.amount,
            "due_on": promise.due_on,
            "made_at": promise.made_at,
        })),
    });
    if let (Some(serde_json::Value::Object(extra)), Some(object)) = (&new.extra, carried.as_object_mut()) {
        object.extend(extra.clone());
    }
    let mut candidate = from.clone();
    candidate.id = 0;
    candidate.channel = Channel::Human.code().to_string();
    candidate.queue = Some(new.queue.to_string());
    candidate.template = None;
    candidate.calls_allowed = i32::try_from(new.calls).unwrap_or(i32::MAX);
    candidate.not_before = new.window.start;
    candidate.not_after = new.window.end;
    candidate.local_date = local_date;
    candidate.state = TaskState::Planned.code().to_string();
    candidate.origin = new.origin.code().to_string();
    candidate.address = None;
    let calls_allowed = match recheck(&candidate, context, rules.strategies, rules.fallback, now) {
        Verdict::Pass { room, .. } => room.calls.min(new.calls),
        Verdict::Wait { .. } => new.calls,
        Verdict::Remove { reason, detail, .. } => {
            refuse(txn, from, escalation, reason, detail, trigger, now).await?;
            return Ok(());
        }
    };
    let task = store::NewTask {
        plan_run_id: from.plan_run_id,
        account_id: account.id.clone(),
        borrower_id: account.borrower_id.clone(),
        local_date,
        dpd: account.dpd_on(local_date),
        stage: from.stage.clone(),
        strategy: from.strategy.clone(),
        rule: from.rule.clone(),
        arm: from.arm.clone(),
        channel: Channel::Human,
        queue: Some(new.queue.to_string()),
        calls_allowed: i32::try_from(calls_allowed).unwrap_or(i32::MAX),
        not_before: new.window.start,
        not_after: new.window.end,
        priority: new.priority,
        context: Some(carried.to_string()),
        origin: new.origin,
    };
    let detail = serde_json::json!({
        "from_task": (from.id != 0).then_some(from.id),
        "trigger": new.kind.code(),
        "queue": new.queue,
        "calls_allowed": calls_allowed,
        "not_before": new.window.start,
        "attempt_id": trigger.attempt_id,
        "consent_based": matches!(new.origin, TaskOrigin::Callback | TaskOrigin::Transfer),
    });
    let id = store::tasks::insert(txn, &task, store::Audit::new(trigger.actor, detail), now).await?;
    escalation.human_task = Some(id);
    Ok(())
}
