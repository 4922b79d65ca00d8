//! Recording one contact attempt and applying its effects: who may report on which task, the
//! time rules of the gate at the attempt's instant (a report outside the task's window or the
//! contact hours is refused), idempotent repeats, and the effects `domain::effects` decides
//! (promise, flags, cancellations, wrong numbers, hand-overs).

use super::handover::{self, Trigger};
use super::{Actor, AttemptRecorded, AttemptReport, CLOCK_SKEW, Rules, WorkError, check_agent, invalid};
use crate::domain::effects::effects;
use crate::domain::{Channel, ContactKind, Money, Outcome, TaskState};
use crate::ops::recheck::{Context, ask_of};
use crate::policy::gate;
use crate::store::{self, ReportedAttempt, StoreError};
use chrono::{DateTime, Duration, Utc};
use entity::tasks;
use sea_orm::{ConnectionTrait, DatabaseConnection};

/// How long after the attempt a callback the borrower asked for may be (Reg F counts a call as
/// consented to when the consent was given within the past seven days).
pub const CALLBACK_MAX_DAYS: i64 = 7;

fn check_report(report: &AttemptReport, now: DateTime<Utc>) -> Result<(Outcome, DateTime<Utc>), WorkError> {
    let outcome: Outcome =
        report.outcome.parse().map_err(|error: crate::domain::ParseCodeError| invalid("outcome", error.to_string()))?;
    let at = report.at.unwrap_or(now);
    if at > now + CLOCK_SKEW {
        return Err(invalid("at", format!("{} is in the future", at.to_rfc3339())));
    }
    match (&report.promise, outcome) {
        (None, Outcome::Promise) => return Err(invalid("promise", "is required with outcome `promise`")),
        (Some(_), other) if other != Outcome::Promise => {
            return Err(invalid("promise", format!("is only allowed with outcome `promise`, not `{other}`")));
        }
        (Some(promise), _) if promise.amount <= Money::ZERO => {
            return Err(invalid("promise.amount", "must be more than zero"));
        }
        _ => {}
    }
    match (report.callback_at, outcome) {
        (None, Outcome::Callback) => return Err(invalid("callback_at", "is required with outcome `callback`")),
        (Some(_), other) if other != Outcome::Callback => {
            return Err(invalid("callback_at", format!("is only allowed with outcome `callback`, not `{other}`")));
        }
        (Some(callback_at), _) if callback_at < at => {
            return Err(invalid("callback_at", "is before the attempt"));
        }
        _ => {}
    }
    if outcome == Outcome::WrongNumber && report.phone.as_deref().is_none_or(|phone| phone.trim().is_empty()) {
        return Err(invalid("phone", "is required with outcome `wrong_number`"));
    }
    Ok((outcome, at))
}

/// Whether `actor` may report on `task` (in `state`) at `now`: an agent only on a human task
/// whose unexpired lease it holds; the dialler only on a robot, SMS or e-mail task that was
/// sent — in flight or done, or closed after its `task.ready` went out — never on one still
/// waiting for its window.
async fn authorize(
    db: &impl ConnectionTrait,
    task: &tasks::Model,
    state: TaskState,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(), WorkError> {
    let human = task.channel == Channel::Human.code();
    match actor {
        Actor::Dialler if human => Err(WorkError::NotYourLease(task.id)),
        Actor::Dialler => match state {
            TaskState::Dispatched | TaskState::Done => Ok(()),
            TaskState::Planned | TaskState::Ready | TaskState::Leased => {
                Err(WorkError::Conflict(format!("task {} was never sent; it is {state}", task.id)))
            }
            TaskState::Cancelled | TaskState::Expired | TaskState::Escalated => {
                if store::ready_was_sent(db, task.id).await? {
                    Ok(())
                } else {
                    Err(WorkError::Conflict(format!("task {} was {state} before it was sent", task.id)))
                }
            }
        },
        Actor::Agent(_) if !human => Err(WorkError::NotYourLease(task.id)),
        Actor::Agent(agent) => {
            if task.lease_agent.as_deref() != Some(agent.as_str()) {
                return Err(WorkError::NotYourLease(task.id));
            }
            if state != TaskState::Leased {
                return Err(WorkError::Conflict(format!("task {} is {state}, not leased", task.id)));
            }
            match task.lease_expires_at {
                Some(expiry) if expiry > now => Ok(()),
                _ => Err(WorkError::Conflict(format!("the lease on task {} has expired", task.id))),
            }
        }
    }
}

/// Records one contact attempt on task `task_id` and applies its effects, all in one
/// transaction.
///
/// Who: an agent reports only on a human task whose unexpired lease it holds; the dialler only
/// on a robot, SMS or e-mail task that was sent (see `authorize`). A report on a sent task that
/// was cancelled or expired meanwhile is still recorded — the call happened — and audited as a
/// contact after cancellation.
///
/// When: the attempt's `at` must fall inside the task's window and the policy's contact hours
/// in every zone of the borrower (the gate's time rules), else 422 naming the rule; an agent
/// cannot report more calls than the task allows (`calls_used`). Other refusals of the gate at
/// that instant (a cap reached meanwhile, a flag) do not lose the report: it is recorded and
/// audited (`attempt.outside_gate`).
///
/// Repeats: a robot, SMS or e-mail task carries one attempt: the same report again (with or
/// without `at`) is that attempt (`duplicate: true`), another outcome is a conflict. On a human
/// task, a report without `at` repeating the task's latest attempt (same outcome, phone and
/// actor) within [`CLOCK_SKEW`] is that attempt; with `at`, the same account, channel and
/// instant is.
///
/// Bounds: `promise.due_on` from the attempt's local day to `promise_max_days` after it;
/// `callback_at` within [`CALLBACK_MAX_DAYS`] of the attempt.
///
/// Effects (`domain::effects`): `promise` opens a promise and cancels the account's other live
/// tasks; `do_not_call` and `dispute` set the engine-owned flag and cancel calls / everything;
/// `wrong_number` marks the number (the report's `phone`, else the task's address); a
/// dialler's report closes its task as `done` (`attempted`); `callback` hands the borrower to a
/// person at the time asked (a consent-based call, see `handover`); on a robot task the rule's
/// `escalate.after_failed_attempts` unanswered calls hand the borrower to its human queue.
/// Tasks cancelled here about which a `task.ready` went out get a `task.cancelled` message in
/// the same transaction.
pub async fn record_attempt(
    db: &DatabaseConnection,
    rules: &Rules<'_>,
    task_id: i64,
    actor: &Actor,
    report: AttemptReport,
    now: DateTime<Utc>,
) -> Result<AttemptRecorded, WorkError> {
    if let Actor::Agent(agent) = actor {
        check_agent(agent)?;
    }
    let (outcome, at) = check_report(&report, now)?;
    let txn = store::begin_write(db).await?;
    let task = store::lock_task(&txn, task_id).await?.ok_or_else(|| WorkError::NotFound(format!("task {task_id}")))?;
    let corrupt = |message: String| StoreError::Corrupt { table: "tasks", id: task_id.to_string(), message };
    let state: TaskState =
        task.state.parse().map_err(|error: crate::domain::ParseCodeError| corrupt(error.to_string()))?;
    let channel: Channel =
        task.channel.parse().map_err(|error: crate::domain::ParseCodeError| corrupt(error.to_string()))?;
    authorize(&txn, &task, state, actor, now).await?;
    let context = Context::load(&txn, std::slice::from_ref(&task), now).await?;
    let (ask, ledger) = ask_of(&task, &context, rules.strategies, rules.fallback)
        .map_err(|_| WorkError::NotFound(format!("account {}", task.account_id)))?;
    let (account, borrower) = (ask.account, ask.borrower);

    let reported = report.phone.as_deref().map(str::trim).filter(|phone| !phone.is_empty());
    if let Some(address) = reported {
        let kind = ContactKind::for_channel(channel);
        if !borrower.contact_points.iter().any(|point| point.kind == kind && point.address == address) {
            return Err(invalid("phone", format!("`{address}` is not one of the borrower's {}s", kind.code())));
        }
    }
    let address = reported.or(task.address.as_deref());
    let local_day = at.with_timezone(&borrower.primary_timezone()).date_naive();
    if let Some(promise) = &report.promise {
        if promise.due_on < local_day {
            return Err(invalid(
                "promise.due_on",
                format!("{} is before the attempt's day {local_day}", promise.due_on),
            ));
        }
        let latest = local_day + Duration::days(i64::from(rules.promise_max_days));
        if promise.due_on > latest {
            return Err(invalid(
                "promise.due_on",
                format!(
                    "{} is more than {} days after the attempt's day {local_day} (latest {latest})",
                    promise.due_on, rules.promise_max_days
                ),
            ));
        }
    }
    if let Some(callback_at) = report.callback_at
        && callback_at > at + Duration::days(CALLBACK_MAX_DAYS)
    {
        return Err(invalid(
            "callback_at",
            format!("is more than {CALLBACK_MAX_DAYS} days after the attempt; a callback is asked for the coming week"),
        ));
    }

    // The time rules at the attempt's instant, then what else the gate says then.
    let hand_off = ask.hand_off.unwrap_or_else(|| crate::ops::recheck::hand_off_of(&task, rules.strategies));
    if let Err(refusal) = gate::timing(&ask, &hand_off, at) {
        return Err(invalid(
            "at",
            format!(
                "{} is outside rule `{}`'s task: {} ({})",
                at.to_rfc3339(),
                task.rule,
                refusal.detail,
                refusal.reason
            ),
        ));
    }
    let outside_gate = gate::check(&ask, ledger, at).err();
    if let Some(refusal) = &outside_gate
        && refusal.reason == crate::domain::Reason::CallsUsed
        && matches!(actor, Actor::Agent(_))
    {
        return Err(WorkError::Conflict(format!("{} ({})", refusal.detail, refusal.reason)));
    }

    let actor_code = actor.code();
    let mut recorded = AttemptRecorded {
        attempt_id: 0,
        task_id,
        account_id: account.id.clone(),
        outcome,
        at,
        duplicate: false,
        promise_id: None,
        flags_set: Vec::new(),
        tasks_cancelled: Vec::new(),
        wrong_number_marked: false,
        escalation: None,
    };
    let earlier = store::attempts_of_task(&txn, task_id).await?;
    let repeat = if channel == Channel::Human {
        earlier.iter().rev().find(|attempt| {
            report.at.is_none()
                && attempt.outcome == outcome.code()
                && attempt.address.as_deref() == address
                && attempt.actor.as_deref() == Some(actor_code.as_str())
                && attempt.at >= now - CLOCK_SKEW
        })
    } else {
        earlier.first()
    };
    if let Some(existing) = repeat {
        txn.rollback().await?;
        if existing.outcome != outcome.code() {
            return Err(WorkError::Conflict(format!(
                "task {task_id} already has its attempt ({} at {}); one attempt per {channel} task",
                existing.outcome,
                existing.at.to_rfc3339()
            )));
        }
        recorded.attempt_id = existing.id;
        recorded.at = existing.at;
        recorded.duplicate = true;
        return Ok(recorded);
    }
    let attempt = ReportedAttempt {
        account_id: account.id.clone(),
        borrower_id: account.borrower_id.clone(),
        task_id,
        channel,
        address: address.map(str::to_string),
        at,
        outcome,
        note: report.note.clone(),
        callback_at: report.callback_at,
        actor: actor_code.clone(),
        exempt: hand_off.exempt,
        duration_seconds: report.duration_seconds,
    };
    let Some(attempt_id) = store::insert_reported_attempt(&txn, &attempt).await? else {
        let existing = store::attempt_at(&txn, &account.id, channel, at).await?;
        txn.rollback().await?;
        return match existing {
            Some((id, Some(existing_task), code)) if existing_task == task_id && code == outcome.code() => {
                recorded.attempt_id = id;
                recorded.duplicate = true;
                Ok(recorded)
            }
            _ => Err(WorkError::Conflict(format!(
                "another attempt on account {} by {channel} at {} is already recorded",
                account.id,
                at.to_rfc3339()
            ))),
        };
    };
    recorded.attempt_id = attempt_id;
    if state.is_final() {
        store::record_audit_at(
            &txn,
            now,
            &actor_code,
            "attempt.after_cancellation",
            "task",
            &task_id.to_string(),
            serde_json::json!({"attempt_id": attempt_id, "state": state, "reason": task.state_reason, "outcome": outcome}),
        )
        .await?;
    } else if let Some(refusal) = &outside_gate {
        store::record_audit_at(
            &txn,
            now,
            &actor_code,
            "attempt.outside_gate",
            "task",
            &task_id.to_string(),
            serde_json::json!({"attempt_id": attempt_id, "reason": refusal.reason, "detail": refusal.detail}),
        )
        .await?;
    }

    let effects = effects(outcome);
    if effects.opens_promise
        && let Some(promise) = &report.promise
    {
        recorded.promise_id =
            store::insert_attempt_promise(&txn, &account.id, promise.amount, promise.due_on, at, attempt_id).await?;
        if let Some(promise_id) = recorded.promise_id {
            store::record_audit_at(
                &txn,
                now,
                &actor_code,
                "promise.made",
                "promise",
                &promise_id.to_string(),
                serde_json::json!({
                    "account_id": account.id,
                    "amount": promise.amount,
                    "due_on": promise.due_on,
                    "attempt_id": attempt_id,
                }),
            )
            .await?;
        }
    }
    if let Some(flag) = effects.sets_flag
        && store::add_account_flag(&txn, &account.id, flag, now).await?
    {
        recorded.flags_set.push(flag);
        store::record_audit_at(
            &txn,
            now,
            &actor_code,
            "account.flag_set",
            "account",
            &account.id,
            serde_json::json!({"flag": flag.code(), "attempt_id": attempt_id}),
        )
        .await?;
    }
    if effects.marks_wrong_number
        && let Some(phone) = address
    {
        recorded.wrong_number_marked = store::mark_wrong_numbers(&txn, &[(&borrower.id, phone)]).await? > 0;
        if recorded.wrong_number_marked {
            store::record_audit_at(
                &txn,
                now,
                &actor_code,
                "contact_point.wrong_number",
                "borrower",
                &borrower.id,
                serde_json::json!({"phone": phone, "attempt_id": attempt_id}),
            )
            .await?;
        }
    }
    if let Some((cancels, reason)) = effects.cancels {
        let reason = reason.to_string();
        let audit = store::Audit::new(&actor_code, serde_json::json!({"attempt_id": attempt_id}));
        let closed = crate::dispatch::close_tasks(
            &txn,
            &[account.id.as_str()],
            cancels.into(),
            Some(task_id),
            TaskState::Cancelled,
            &reason,
            audit,
            now,
        )
        .await?;
        recorded.tasks_cancelled = closed.iter().map(|task| task.id).collect();
    }
    if channel != Channel::Human {
        let audit = store::Audit::new(&actor_code, serde_json::json!({"attempt_id": attempt_id}));
        store::tasks::close(&txn, task_id, TaskState::Done, "attempted", audit, now).await?;
    }
    let trigger = Trigger { outcome, callback_at: report.callback_at, attempt_id, actor: &actor_code };
    let contact_continues = effects.cancels.is_none() && !state.is_final();
    recorded.escalation = if effects.asks_callback && contact_continues {
        handover::callback(&txn, rules, &task, &trigger, now).await?
    } else if channel == Channel::Robot && contact_continues {
        handover::escalate_if_due(&txn, rules, &task, &trigger, now).await?
    } else {
        None
    };
    txn.commit().await?;
    Ok(recorded)
}
