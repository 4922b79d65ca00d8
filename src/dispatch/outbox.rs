//! The outbox about tasks: the deterministic `webhook-id` of a task's event, the `task.cancelled`
//! messages owed when announced tasks are closed, and the claim-time check that decides, for
//! every claimed message about a task, whether it still goes out.
//!
//! - **Closing a task** (payment, outcome, escalation, expiry) voids its unsent `task.ready`
//!   (pending and not being sent, dead or disabled) in the closing transaction; a
//!   `task.cancelled` is enqueued only when the `task.ready` was delivered or is being sent.
//! - **At claim time** ([`screen_claimed`]) a `task.ready` goes out only while its task is still
//!   sendable ([`sendable`]: the state the message announced, its window open, the contact
//!   re-check); one that may go later (outside the contact hours now) waits without counting a
//!   try; one that may never go becomes `void` with its reason and its task is closed, in one
//!   transaction. A `task.cancelled` goes out only once its `task.ready` was delivered: it
//!   waits while that one is being sent and is voided (`ready_not_delivered`) otherwise. So a
//!   receiver never hears of a task after its window, and never hears `task.cancelled` first.

use super::{Envelope, TASK_CANCELLED, TASK_READY, TaskCancelledV1};
use crate::domain::{Channel, DeliveryState, Reason, TaskState};
use crate::ops::recheck::{Context, Verdict, recheck};
use crate::policy::Policy;
use crate::store::{self, ClaimedDelivery, ClosedTask, NewDelivery, StoreError};
use crate::strategy::StrategySet;
use chrono::{DateTime, Duration, Utc};
use entity::tasks;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use std::collections::HashMap;

/// How long a `task.ready` that may not go out yet (outside the contact hours now, too soon
/// after the last attempt) waits before it is checked again; never past its window's end.
pub const RECHECK_AFTER: Duration = Duration::minutes(1);

/// The audit actor of the claim-time check.
const ENGINE: &str = "engine";

/// The `webhook-id` of event `event` about task `task_id`: `task_<id>_ready`,
/// `task_<id>_cancelled`. Deterministic, so a retried release or cancellation never enqueues a
/// second message (the outbox keeps the first of an id).
pub fn task_webhook_id(task_id: i64, event: &str) -> String {
    let suffix = event.strip_prefix("task.").unwrap_or(event);
    format!("task_{task_id}_{suffix}")
}

/// Closes the live tasks of `account_ids` on the channels `filter` lets through, leaving out
/// `except` (`store::tasks::close_of_accounts`: state `to`, `reason`, an audit row each), and
/// settles the messages about them ([`enqueue_cancellations`]), in the caller's transaction: the
/// one way a payment, an outcome, a flag or an escalation closes tasks.
#[allow(clippy::too_many_arguments)]
pub async fn close_tasks(
    db: &impl ConnectionTrait,
    account_ids: &[&str],
    filter: store::ChannelFilter,
    except: Option<i64>,
    to: TaskState,
    reason: &str,
    audit: store::Audit<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<ClosedTask>, StoreError> {
    let closed = store::tasks::close_of_accounts(db, account_ids, filter, except, to, reason, audit, now).await?;
    enqueue_cancellations(db, &closed, reason, now).await?;
    Ok(closed)
}

/// Runs inside the transaction that closed `closed` (reason `reason`): voids each one's unsent
/// `task.ready` (pending and not being sent at `now`, dead or disabled) with that reason, and
/// enqueues one `task.cancelled` for each whose `task.ready` was delivered or is being sent
/// right now, to the endpoint that message went to. Tasks never announced, and tasks whose
/// announcement was never sent, get nothing. Returns the messages added.
pub async fn enqueue_cancellations(
    db: &impl ConnectionTrait,
    closed: &[ClosedTask],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if closed.is_empty() {
        return Ok(0);
    }
    let ready_ids: Vec<String> = closed.iter().map(|task| task_webhook_id(task.id, TASK_READY)).collect();
    let keys: Vec<&str> = ready_ids.iter().map(String::as_str).collect();
    store::void_unsent(db, &keys, reason, now).await?;
    let readies = store::outbox_states(db, &keys, now).await?;
    let mut deliveries = Vec::new();
    for (task, ready_id) in closed.iter().zip(&ready_ids) {
        let Some(ready) = readies.get(ready_id) else { continue };
        if ready.state != DeliveryState::Delivered && !ready.held {
            continue;
        }
        deliveries.push(cancelled_delivery(task, &ready.endpoint, reason, now)?);
    }
    if deliveries.is_empty() {
        return Ok(0);
    }
    store::enqueue_deliveries(db, &deliveries, now).await
}

fn cancelled_delivery(
    task: &ClosedTask,
    endpoint: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<NewDelivery, StoreError> {
    let envelope = Envelope {
        kind: TASK_CANCELLED.to_string(),
        timestamp: now,
        data: TaskCancelledV1 {
            task_id: task.id.to_string(),
            account_id: task.account_id.clone(),
            reason: reason.to_string(),
        },
    };
    let body = serde_json::to_string(&envelope).map_err(|error| StoreError::Corrupt {
        table: "deliveries",
        id: task.id.to_string(),
        message: error.to_string(),
    })?;
    Ok(NewDelivery {
        webhook_id: task_webhook_id(task.id, TASK_CANCELLED),
        task_id: Some(task.id),
        endpoint: endpoint.to_string(),
        event: TASK_CANCELLED.to_string(),
        body,
        send_at: now,
    })
}

/// What the claim-time check says about one `task.ready`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sendable {
    /// It goes out now.
    Send,
    /// Not now but maybe later today: due again at `until`, no try counted.
    Wait {
        /// When to check again.
        until: DateTime<Utc>,
        /// Why not now (`hours`, `min_gap`).
        reason: String,
    },
    /// Never: the message becomes `void` with `reason`, and the task moves to `close` (when
    /// given and the task is still in the state the message announced).
    Void {
        /// The reason code (`window_closed`, `not_live`, `flag:dispute`, `not_due`, ...).
        reason: String,
        /// A sentence for the audit row.
        detail: String,
        /// The task's new state.
        close: Option<TaskState>,
    },
}

/// The state a task's `task.ready` announced: `ready` for a human task (to the `human`
/// endpoint), `dispatched` for robot, SMS and e-mail tasks.
fn announced_state(task: &tasks::Model) -> TaskState {
    if task.channel == Channel::Human.code() { TaskState::Ready } else { TaskState::Dispatched }
}

/// The part of the check that needs no context: the task is still in the state its message
/// announced and its window is open at `now`.
fn still_announced(task: &tasks::Model, now: DateTime<Utc>) -> Result<(), Sendable> {
    let announced = announced_state(task);
    let live = task.state == announced.code();
    if now >= task.not_after {
        return Err(Sendable::Void {
            reason: Reason::WindowClosed.to_string(),
            detail: format!("the task's window closed at {}", task.not_after.to_rfc3339()),
            close: live.then_some(TaskState::Expired),
        });
    }
    if !live {
        return Err(Sendable::Void {
            reason: Reason::NotLive.to_string(),
            detail: format!("the task is {}, no longer {announced}", task.state),
            close: None,
        });
    }
    Ok(())
}

/// Whether the `task.ready` about `task`, addressed `to`, may go out at `now`. The one place
/// the outbox asks: the task is still in the state the message announced, its window is open,
/// the contact re-check passes (flags, amount due, promise, opt-outs, consent, cool-down, caps,
/// `min_gap`, the contact hours now in every zone of the borrower), and the address in the
/// message is still usable for the channel. `context` holds what the re-check reads about the
/// task (loaded for every task that passed the state and window checks).
pub(crate) fn sendable(
    task: &tasks::Model,
    to: Option<&str>,
    context: &Context,
    strategies: &StrategySet,
    fallback: &Policy,
    now: DateTime<Utc>,
) -> Sendable {
    if let Err(verdict) = still_announced(task, now) {
        return verdict;
    }
    let with_calls_left = match recheck(task, context, strategies, fallback, now) {
        Verdict::Pass { addresses, .. } => addresses,
        Verdict::Wait { reason, .. } => {
            return Sendable::Wait { until: (now + RECHECK_AFTER).min(task.not_after), reason: reason.to_string() };
        }
        Verdict::Remove { state, reason, detail } => {
            return Sendable::Void { reason: reason.to_string(), detail, close: Some(state) };
        }
    };
    // The message names its address: the gate must still let the channel use it now.
    let (Ok(channel), Some(to), Some((_, borrower))) = (task.channel.parse::<Channel>(), to, context.parties(task))
    else {
        return Sendable::Send;
    };
    if with_calls_left.iter().any(|address| address == to) {
        return Sendable::Send;
    }
    let (reason, detail) = match borrower.contact_points.iter().find(|point| point.address == to) {
        Some(point) if point.usable_for(channel) => (
            Reason::Cap(crate::domain::Cap::UnansweredPerNumber),
            format!("{to} has no calls left today under the per-number cap"),
        ),
        Some(point) if point.reaches(channel) => (Reason::OptOut(channel), format!("{to} opted out of {channel}")),
        _ => (Reason::NoContactPoint, format!("{to} is no longer a usable address of the borrower")),
    };
    Sendable::Void { reason: reason.to_string(), detail, close: Some(TaskState::Cancelled) }
}

/// The address (`data.to`) a `task.ready` body names, if any.
fn addressed_to(body: &str) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(body).ok()?;
    body.get("data")?.get("to")?.as_str().map(str::to_string)
}

/// What the claim-time check did with a claimed batch.
#[derive(Debug, Default)]
pub(crate) struct Screened {
    /// The messages to send now, by id.
    pub(crate) send: Vec<ClaimedDelivery>,
    /// Messages voided (never to be sent).
    pub(crate) voided: u64,
    /// Messages given back to wait (no try counted).
    pub(crate) waiting: u64,
}

/// Checks a claimed batch before anything is sent, in one write transaction: every
/// `task.ready` against [`sendable`], then every `task.cancelled` against what became of its
/// `task.ready` (so one claimed in the same batch is seen). Messages about no task are sent as
/// they are. Every update is conditional on the claim (see `store::deliveries`).
pub(crate) async fn screen_claimed(
    db: &DatabaseConnection,
    claimed: Vec<ClaimedDelivery>,
    strategies: &StrategySet,
    fallback: &Policy,
    now: DateTime<Utc>,
) -> Result<Screened, StoreError> {
    let mut screened = Screened::default();
    let (mut readies, mut cancels) = (Vec::new(), Vec::new());
    for delivery in claimed {
        match (delivery.task_id, delivery.event.as_str()) {
            (Some(_), TASK_READY) => readies.push(delivery),
            (Some(_), TASK_CANCELLED) => cancels.push(delivery),
            _ => screened.send.push(delivery),
        }
    }
    if readies.is_empty() && cancels.is_empty() {
        return Ok(screened);
    }
    let txn = store::begin_write(db).await?;
    let mut ids: Vec<i64> = readies.iter().chain(&cancels).filter_map(|delivery| delivery.task_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let tasks = store::tasks_by_id(&txn, &ids).await?;
    screen_readies(&txn, readies, &tasks, strategies, fallback, now, &mut screened).await?;
    screen_cancels(&txn, cancels, &tasks, now, &mut screened).await?;
    txn.commit().await?;
    screened.send.sort_by_key(|delivery| delivery.id);
    Ok(screened)
}

async fn screen_readies(
    txn: &DatabaseTransaction,
    readies: Vec<ClaimedDelivery>,
    tasks: &HashMap<i64, tasks::Model>,
    strategies: &StrategySet,
    fallback: &Policy,
    now: DateTime<Utc>,
    screened: &mut Screened,
) -> Result<(), StoreError> {
    let mut open: Vec<tasks::Model> = Vec::new();
    for delivery in &readies {
        if let Some(task) = delivery.task_id.and_then(|id| tasks.get(&id))
            && still_announced(task, now).is_ok()
            && !open.iter().any(|seen| seen.id == task.id)
        {
            open.push(task.clone());
        }
    }
    let context = if open.is_empty() { Context::default() } else { Context::load(txn, &open, now).await? };
    for delivery in readies {
        let task = delivery.task_id.and_then(|id| tasks.get(&id));
        let verdict = match task {
            Some(task) => sendable(task, addressed_to(&delivery.body).as_deref(), &context, strategies, fallback, now),
            None => Sendable::Void {
                reason: Reason::NotLive.to_string(),
                detail: "the task does not exist".into(),
                close: None,
            },
        };
        match verdict {
            Sendable::Send => screened.send.push(delivery),
            Sendable::Wait { until, reason } => {
                if store::postpone_claimed(txn, delivery.id, &delivery.claim_token, until).await? {
                    screened.waiting += 1;
                    tracing::debug!(webhook_id = delivery.webhook_id, reason, %until, "task.ready waits");
                }
            }
            Sendable::Void { reason, detail, close } => {
                if !store::void_claimed(txn, delivery.id, &delivery.claim_token, &reason).await? {
                    continue;
                }
                screened.voided += 1;
                tracing::info!(webhook_id = delivery.webhook_id, reason, "task.ready voided: never sent");
                if let (Some(task), Some(state)) = (task, close) {
                    close_task(txn, task, state, &reason, &detail, &delivery.webhook_id, now).await?;
                }
            }
        }
    }
    Ok(())
}

/// Moves `task` from the state its message announced to `state` with an audit row.
async fn close_task(
    txn: &DatabaseTransaction,
    task: &tasks::Model,
    state: TaskState,
    reason: &str,
    detail: &str,
    webhook_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let from = [announced_state(task)];
    let detail = serde_json::json!({"detail": detail, "at": "outbox", "webhook_id": webhook_id});
    store::tasks::close_from(txn, task.id, &from, state, reason, store::Audit::new(ENGINE, detail), now).await?;
    Ok(())
}

async fn screen_cancels(
    txn: &DatabaseTransaction,
    cancels: Vec<ClaimedDelivery>,
    tasks: &HashMap<i64, tasks::Model>,
    now: DateTime<Utc>,
    screened: &mut Screened,
) -> Result<(), StoreError> {
    if cancels.is_empty() {
        return Ok(());
    }
    let ready_ids: Vec<String> =
        cancels.iter().map(|delivery| task_webhook_id(delivery.task_id.unwrap_or_default(), TASK_READY)).collect();
    let keys: Vec<&str> = ready_ids.iter().map(String::as_str).collect();
    let readies = store::outbox_states(txn, &keys, now).await?;
    for (delivery, ready_id) in cancels.into_iter().zip(&ready_ids) {
        match readies.get(ready_id) {
            Some(ready) if ready.state == DeliveryState::Delivered => screened.send.push(delivery),
            Some(ready) if ready.held => {
                // Its task.ready is being sent: ask again once that claim is over.
                let until = ready.next_attempt_at.max(now);
                if store::postpone_claimed(txn, delivery.id, &delivery.claim_token, until).await? {
                    screened.waiting += 1;
                }
            }
            ready => {
                if ready.is_some_and(|ready| ready.state != DeliveryState::Void) {
                    // Never delivered and no longer being sent: it never will be (its task is
                    // closed), so it goes with the cancellation.
                    let task = delivery.task_id.and_then(|id| tasks.get(&id));
                    let reason = task.and_then(|task| task.state_reason.clone());
                    let reason = reason.unwrap_or_else(|| Reason::NotLive.to_string());
                    store::void_unsent(txn, &[ready_id.as_str()], &reason, now).await?;
                }
                let reason = Reason::ReadyNotDelivered.to_string();
                if store::void_claimed(txn, delivery.id, &delivery.claim_token, &reason).await? {
                    screened.voided += 1;
                    tracing::info!(
                        webhook_id = delivery.webhook_id,
                        "task.cancelled voided: its task.ready never went out"
                    );
                }
            }
        }
    }
    Ok(())
}
