//! Leasing human tasks: the lease (the gate asked at the claim), heartbeats (asked again: a
//! lease never outlasts the task's window or the contact hours in the borrower's zones),
//! giving a task back or completing it, and the reaper of expired leases.

use super::{
    AccountView, ENGINE, Lease, LeaseRenewed, LeasedTask, Rules, TaskStateChanged, WorkError, check_agent, invalid,
};
use crate::domain::{Account, Borrower, TaskState};
use crate::ops::recheck::{Context, Verdict, recheck};
use crate::policy::Room;
use crate::store;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use entity::tasks;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};

/// How many times a lease looks again when every candidate was locked by other agents at that
/// instant (each look after a millisecond): a queue with ready tasks answers "nothing" only
/// after they stayed held that long.
const LOCKED_RETRIES: u32 = 2_000;

fn check_ttl(ttl: Duration) -> Result<(), WorkError> {
    if ttl <= Duration::zero() {
        return Err(invalid("ttl", "a lease must last longer than zero"));
    }
    Ok(())
}

fn account_view(account: &Account, borrower: &Borrower, phones: &[String], calls_left: &[u32]) -> AccountView {
    AccountView {
        id: account.id.clone(),
        borrower_id: account.borrower_id.clone(),
        name: borrower.name.clone(),
        product: account.product.clone(),
        currency: account.currency.clone(),
        amount_due: account.amount_due,
        balance: account.balance,
        due_date: account.due_date,
        tags: account.tags.clone(),
        flags: account.flags.iter().map(|flag| flag.code().to_string()).collect(),
        broken_promises: account.broken_promises,
        timezones: borrower.timezones.iter().map(|zone| zone.name().to_string()).collect(),
        phones: phones.to_vec(),
        phone_calls_left: phones
            .iter()
            .zip(calls_left)
            .filter(|(_, left)| **left != u32::MAX)
            .map(|(phone, left)| (phone.clone(), *left))
            .collect(),
    }
}

fn leased_task(task: &tasks::Model, zone: Tz, room: &Room) -> LeasedTask {
    LeasedTask {
        id: task.id,
        account_id: task.account_id.clone(),
        borrower_id: task.borrower_id.clone(),
        queue: task.queue.clone().unwrap_or_default(),
        stage: task.stage.clone(),
        strategy: task.strategy.clone(),
        rule: task.rule.clone(),
        arm: task.arm.clone(),
        local_date: task.local_date,
        dpd: task.dpd,
        priority: task.priority,
        not_before: task.not_before.with_timezone(&zone).fixed_offset(),
        not_after: task.not_after.with_timezone(&zone).fixed_offset(),
        calls_allowed: room.calls,
        limited_by: room.limited_by.map(|cap| crate::domain::Reason::Cap(cap).to_string()),
        context: task.context.as_deref().and_then(|text| serde_json::from_str(text).ok()),
    }
}

/// The lease's end: `now + ttl`, but never after the instant the gate says contact must stop.
fn lease_end(now: DateTime<Utc>, ttl: Duration, room: &Room) -> DateTime<Utc> {
    let wanted = now + ttl;
    room.until.map_or(wanted, |until| until.min(wanted))
}

/// Closes an open or in-flight task the gate removed, with its audit row.
async fn close_removed(
    txn: &DatabaseTransaction,
    task: &tasks::Model,
    verdict: &Verdict,
    at: &str,
    now: DateTime<Utc>,
) -> Result<(), WorkError> {
    let Verdict::Remove { state, reason, detail } = verdict else {
        return Ok(());
    };
    let audit = store::Audit::new(ENGINE, serde_json::json!({"detail": detail, "at": at}));
    store::tasks::close(txn, task.id, *state, &reason.to_string(), audit, now).await?;
    Ok(())
}

/// Hands `agent_id` the best open human task of `queue` at `now`, leased until `now + ttl` —
/// never past the task's window or the end of the contact hours in the borrower's zones — or
/// `None` when no task of the queue can be handed out now.
///
/// The best candidate (an open human task of the queue whose window contains `now` and whose
/// borrower no agent holds; `priority` descending, then `id`) is claimed first, in one statement
/// that holds its lock only for the claim (`store::tasks::claim_next`); the contact gate is then
/// asked about it against the latest state, read in one round trip (flags, amount due, open
/// promise, usable phones, cool-down, the caps counting other calls in flight, the task's own
/// calls, the contact hours now). When it agrees, the lease is confirmed with its end and the
/// first phone, and audited; when the task must wait it is given back untouched and passed
/// over; when the gate takes it out it leaves the queue (`cancelled`, `expired`, or `done` when
/// its calls are made) with its reason and an audit row. An empty claim while unheld candidates
/// remain (all locked by other agents' claims at that instant) looks again: `None` means none
/// is ready. The `ux_tasks_leased_borrower` index guarantees one leased task per borrower.
pub async fn lease_next(
    db: &DatabaseConnection,
    rules: &Rules<'_>,
    queue: &str,
    agent_id: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Option<Lease>, WorkError> {
    check_agent(agent_id)?;
    check_ttl(ttl)?;
    if queue.trim().is_empty() {
        return Err(invalid("queue", "a queue name is required"));
    }
    let actor = super::Actor::Agent(agent_id.to_string()).code();
    let mut passed_over: Vec<i64> = Vec::new();
    let mut locked_looks = 0;
    loop {
        let since = now - Duration::days(crate::ops::recheck::HISTORY_DAYS);
        let claim = store::tasks::claim_next(db, queue, agent_id, &passed_over, now + ttl, now, since).await?;
        let Some(mut claimed) = claim else {
            // Under SKIP LOCKED an empty claim may only mean others hold the rows right now.
            if locked_looks < LOCKED_RETRIES && store::has_lease_candidate(db, queue, now, &passed_over).await? {
                locked_looks += 1;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                continue;
            }
            return Ok(None);
        };
        let context =
            Context { book: std::mem::take(&mut claimed.book), history: std::mem::take(&mut claimed.history) };
        let task = &claimed.task;
        let verdict = recheck(task, &context, rules.strategies, rules.fallback, now);
        let Verdict::Pass { room, addresses, calls_left } = &verdict else {
            if matches!(verdict, Verdict::Wait { .. }) {
                passed_over.push(task.id);
                store::tasks::unclaim(db, &claimed, now).await?;
            } else {
                let txn = store::begin_write(db).await?;
                close_removed(&txn, task, &verdict, "lease", now).await?;
                txn.commit().await?;
            }
            continue;
        };
        let expires_at = lease_end(now, ttl, room);
        let address = addresses.first().map(String::as_str);
        let detail = serde_json::json!({
            "queue": queue,
            "account_id": task.account_id,
            "calls_allowed": room.calls,
            "phones": addresses,
        });
        let audit = store::Audit::new(&actor, detail);
        if !store::tasks::confirm_lease(db, task.id, agent_id, expires_at, address, audit, now).await? {
            continue;
        }
        let Some((account, borrower)) = context.parties(task) else {
            return Err(WorkError::NotFound(format!("account {}", task.account_id)));
        };
        return Ok(Some(Lease {
            task: leased_task(task, borrower.primary_timezone(), room),
            account: account_view(account, borrower, addresses, calls_left),
            lease_expires_at: expires_at,
        }));
    }
}

/// Why a lease operation by `agent_id` on task `id` did not apply.
async fn lease_error(
    db: &impl ConnectionTrait,
    id: i64,
    agent_id: &str,
    now: DateTime<Utc>,
) -> Result<WorkError, WorkError> {
    let Some(task) = store::task_by_id(db, id).await? else {
        return Ok(WorkError::NotFound(format!("task {id}")));
    };
    if task.state != TaskState::Leased.code() {
        return Ok(WorkError::Conflict(format!("task {id} is {}, not leased", task.state)));
    }
    if task.lease_agent.as_deref() != Some(agent_id) {
        return Ok(WorkError::NotYourLease(id));
    }
    match task.lease_expires_at {
        Some(expiry) if expiry <= now => {
            Ok(WorkError::Conflict(format!("the lease on task {id} expired at {}", expiry.to_rfc3339())))
        }
        _ => Ok(WorkError::Conflict(format!("task {id} changed meanwhile; try again"))),
    }
}

/// Extends the lease of `agent_id` on task `task_id` to `now + ttl`, asking the gate again: the
/// lease never runs past the task's window or the end of the contact hours in any of the
/// borrower's zones. Only the lease's agent ([`WorkError::NotYourLease`]), only while leased
/// and unexpired ([`WorkError::Conflict`]). When the gate says no now (outside the hours, a cap
/// reached, a payment, ...), the lease is not extended ([`WorkError::Conflict`] naming the
/// reason); when its refusal is final, the task leaves the agent (`cancelled`, `expired` or
/// `done`) with an audit row.
pub async fn heartbeat(
    db: &DatabaseConnection,
    rules: &Rules<'_>,
    task_id: i64,
    agent_id: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<LeaseRenewed, WorkError> {
    check_agent(agent_id)?;
    check_ttl(ttl)?;
    let txn = store::begin_write(db).await?;
    let held = store::lock_task(&txn, task_id).await?.filter(|task| {
        task.state == TaskState::Leased.code()
            && task.lease_agent.as_deref() == Some(agent_id)
            && task.lease_expires_at.is_some_and(|expiry| expiry > now)
    });
    let Some(task) = held else {
        txn.rollback().await?;
        return Err(lease_error(db, task_id, agent_id, now).await?);
    };
    let context = Context::load(&txn, std::slice::from_ref(&task), now).await?;
    let verdict = recheck(&task, &context, rules.strategies, rules.fallback, now);
    let room = match &verdict {
        Verdict::Pass { room, .. } => room,
        Verdict::Wait { reason, detail } => {
            txn.rollback().await?;
            return Err(WorkError::Conflict(format!("the lease cannot be extended now: {detail} ({reason})")));
        }
        Verdict::Remove { reason, detail, .. } => {
            close_removed(&txn, &task, &verdict, "heartbeat", now).await?;
            txn.commit().await?;
            return Err(WorkError::Conflict(format!("the task is no longer workable: {detail} ({reason})")));
        }
    };
    let expires_at = lease_end(now, ttl, room);
    if !store::tasks::extend_lease(&txn, task_id, agent_id, now, expires_at).await? {
        txn.rollback().await?;
        return Err(lease_error(db, task_id, agent_id, now).await?);
    }
    txn.commit().await?;
    Ok(LeaseRenewed { task_id, lease_expires_at: expires_at })
}

async fn end(
    db: &DatabaseConnection,
    task_id: i64,
    agent_id: &str,
    now: DateTime<Utc>,
    done: bool,
) -> Result<TaskStateChanged, WorkError> {
    check_agent(agent_id)?;
    let actor = super::Actor::Agent(agent_id.to_string()).code();
    let state = if done { TaskState::Done } else { TaskState::Ready };
    let audit = store::Audit::new(&actor, serde_json::Value::Null);
    if store::tasks::end_lease(db, task_id, agent_id, state, audit, now).await? {
        return Ok(TaskStateChanged { task_id, state: state.code().to_string() });
    }
    Err(lease_error(db, task_id, agent_id, now).await?)
}

/// Gives the task back to its queue (`ready`, lease cleared). Only the lease's agent, only
/// while leased and unexpired.
pub async fn release(
    db: &DatabaseConnection,
    task_id: i64,
    agent_id: &str,
    now: DateTime<Utc>,
) -> Result<TaskStateChanged, WorkError> {
    end(db, task_id, agent_id, now, false).await
}

/// Marks the task `done` (the agent is recorded in `lease_agent`). Only the lease's agent,
/// only while leased and unexpired.
pub async fn complete(
    db: &DatabaseConnection,
    task_id: i64,
    agent_id: &str,
    now: DateTime<Utc>,
) -> Result<TaskStateChanged, WorkError> {
    end(db, task_id, agent_id, now, true).await
}

/// Returns every lease expired at `now` to its queue (`ready`, lease cleared, reason
/// `lease_expired`, an audit row each); returns how many.
pub async fn reap_expired_leases(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, WorkError> {
    let txn = store::begin_write(db).await?;
    let reaped = store::tasks::return_expired_leases(&txn, ENGINE, now).await?;
    txn.commit().await?;
    Ok(reaped)
}
