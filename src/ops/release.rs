//! The release loop: `planned` tasks whose window opened are checked again against the
//! latest state and then sent out — robot, SMS and e-mail tasks as a `task.ready` message in
//! the outbox (state `dispatched`), human tasks made `ready` in their queue (announced to the
//! `human` endpoint when one is configured) — and tasks nobody is working whose window closed
//! (planned, ready, or dispatched with their message unsent or sent) become `expired`.
//!
//! This is the use case the scheduler calls every few seconds. It never reads the clock
//! (`now` is an argument), never speaks HTTP (the outbox worker sends) and holds each
//! transaction only over one batch of its own statements. Decisions are made here and in
//! `recheck`; the statements are in `store`.

use super::recheck::{Context, Verdict, recheck};
use crate::config::Config;
use crate::dispatch::{Envelope, TASK_READY, TaskReadyV1, task_webhook_id};
use crate::domain::{Account, Borrower, Channel, Reason, TaskState};
use crate::policy::Policy;
use crate::store::{self, NewDelivery, StoreError};
use crate::strategy::{
    AccountView as MessageAccount, BorrowerView, LenderView, MessageContext, MessageTemplates, StrategySet, TaskView,
};
use chrono::{DateTime, Utc};
use entity::tasks;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use serde::Serialize;
use std::collections::BTreeSet;

/// Planned tasks claimed and released per transaction.
pub const RELEASE_BATCH: u64 = 256;

/// Tasks expired per transaction.
const EXPIRE_BATCH: u64 = 1000;

/// The audit actor of the release loop.
const ENGINE: &str = "engine";

/// The endpoint a human task's `task.ready` goes to, when configured.
pub const HUMAN_ENDPOINT: &str = "human";

/// What can go wrong in a release step.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The store failed; the batch in progress was rolled back and is released next time.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A message body could not be built.
    #[error("cannot encode the task.ready body of task {task_id}: {message}")]
    Encode {
        /// The task.
        task_id: i64,
        /// What failed.
        message: String,
    },
}

impl From<DbErr> for ReleaseError {
    fn from(error: DbErr) -> Self {
        ReleaseError::Store(StoreError::Db(error))
    }
}

/// What one [`release_due`] step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReleaseReport {
    /// Robot, SMS and e-mail tasks sent to the outbox (`dispatched`).
    pub dispatched: u64,
    /// Human tasks made `ready`.
    pub ready: u64,
    /// `task.ready` messages to the `human` endpoint.
    pub human_notified: u64,
    /// Tasks the re-check took out (`cancelled`, or `done` when a human task's calls are made).
    pub cancelled: u64,
    /// Tasks left `planned` for now: outside the contact hours or too soon after the last attempt.
    pub waiting: u64,
    /// Tasks left `planned` because no endpoint is configured for their channel.
    pub no_endpoint: u64,
    /// Tasks left `planned` because their template failed to render.
    pub render_failed: u64,
    /// Tasks nobody is working (`planned`, `ready`, `dispatched`) whose window closed
    /// (`expired`, `window_closed`).
    pub expired: u64,
}

/// One release step at `now`:
///
/// 1. tasks nobody is working (`planned`, `ready`, `dispatched`) whose window closed
///    (`not_after <= now`) become `expired` with reason `window_closed` (an audit row each), and
///    their `task.ready` still unsent becomes `void` (`window_closed`);
/// 2. `planned` tasks whose window is open (`not_before <= now < not_after`) are claimed a
///    batch of [`RELEASE_BATCH`] at a time (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so two
///    instances never release the same task; SQLite: an immediate transaction) and re-checked
///    against the latest state with the lease's rules, for their channel (see `recheck`):
///    - pass: a robot, SMS or e-mail task gets its message rendered from its template, a
///      usable address (`to`) and a `task.ready` delivery (`webhook-id` `task_<id>_ready`) to
///      the endpoint named like its channel, in the transaction that makes it `dispatched`; a
///      human task becomes `ready`, with a `task.ready` to the `human` endpoint when one is
///      configured;
///    - outside the contact hours now, or within the rule's `min_gap` of the last attempt: it
///      stays `planned` (next step);
///    - any other failure: `cancelled` with the planner's reason code and an audit row;
///    - no endpoint for the channel, or a template that fails to render: it stays `planned`,
///      counted in the report, with one warning per step.
///
/// The policy is the task's strategy's, or `fallback` when that strategy is no longer loaded.
pub async fn release_due(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    fallback: &Policy,
    templates: &MessageTemplates,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<ReleaseReport, ReleaseError> {
    let mut report = ReleaseReport { expired: expire_closed(db, now).await?, ..ReleaseReport::default() };
    let mut step = Step { strategies, fallback, templates, config, now, warned: BTreeSet::new() };
    let mut after = None;
    loop {
        let txn = store::begin_write(db).await?;
        let candidates = store::release_candidates(&txn, now, after, RELEASE_BATCH).await?;
        let Some(last) = candidates.last() else {
            txn.commit().await?;
            break;
        };
        after = Some((last.not_before, last.id));
        let context = Context::load(&txn, &candidates, now).await?;
        for task in &candidates {
            step.release_one(&txn, task, &context, &mut report).await?;
        }
        txn.commit().await?;
        if (candidates.len() as u64) < RELEASE_BATCH {
            break;
        }
    }
    Ok(report)
}

/// Expires the tasks whose window closed and that nobody is working (`planned`, `ready`,
/// `dispatched`) and voids their unsent `task.ready` (`window_closed`); returns how many.
async fn expire_closed(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, ReleaseError> {
    let reason = Reason::WindowClosed.to_string();
    let mut expired = 0;
    let mut sweep = store::tasks::ExpirySweep::default();
    while !sweep.finished() {
        let txn = store::begin_write(db).await?;
        let ids = store::tasks::expire_closed_windows(&txn, ENGINE, now, &mut sweep, EXPIRE_BATCH).await?;
        let readies: Vec<String> = ids.iter().map(|id| task_webhook_id(*id, TASK_READY)).collect();
        let keys: Vec<&str> = readies.iter().map(String::as_str).collect();
        store::void_unsent(&txn, &keys, &reason, now).await?;
        txn.commit().await?;
        expired += ids.len() as u64;
    }
    Ok(expired)
}

/// What every task of one step shares.
struct Step<'a> {
    strategies: &'a StrategySet,
    fallback: &'a Policy,
    templates: &'a MessageTemplates,
    config: &'a Config,
    now: DateTime<Utc>,
    /// Endpoints and templates already warned about in this step.
    warned: BTreeSet<String>,
}

impl Step<'_> {
    fn warn_once(&mut self, key: String, message: &str) {
        if self.warned.insert(key.clone()) {
            tracing::warn!(what = key, "{message}");
        }
    }

    async fn release_one(
        &mut self,
        txn: &DatabaseTransaction,
        task: &tasks::Model,
        context: &Context,
        report: &mut ReleaseReport,
    ) -> Result<(), ReleaseError> {
        let now = self.now;
        let to = match recheck(task, context, self.strategies, self.fallback, now) {
            Verdict::Wait { .. } => {
                report.waiting += 1;
                return Ok(());
            }
            Verdict::Remove { state, reason, detail } => {
                let audit = store::Audit::new(ENGINE, serde_json::json!({"detail": detail, "at": "release"}));
                if store::tasks::close(txn, task.id, state, &reason.to_string(), audit, now).await? {
                    report.cancelled += 1;
                }
                return Ok(());
            }
            verdict @ Verdict::Pass { .. } => verdict.to().map(str::to_string),
        };
        // The re-check passed, so both are in the context.
        let Some((account, borrower)) = context.parties(task) else {
            return Ok(());
        };
        let channel: Channel = task.channel.parse().map_err(|error: crate::domain::ParseCodeError| {
            StoreError::Corrupt { table: "tasks", id: task.id.to_string(), message: error.to_string() }
        })?;
        if channel == Channel::Human {
            let mut detail = serde_json::json!({"queue": task.queue});
            let announce = if self.config.endpoints.contains_key(HUMAN_ENDPOINT) {
                let body = self.ready_body(task, account, borrower, None, None)?;
                let delivery = ready_delivery(task.id, HUMAN_ENDPOINT, body, now);
                detail["webhook_id"] = delivery.webhook_id.clone().into();
                Some(delivery)
            } else {
                None
            };
            let audit = store::Audit::new(ENGINE, detail);
            if !store::tasks::release(txn, task.id, TaskState::Ready, None, audit, now).await? {
                return Ok(());
            }
            report.ready += 1;
            if let Some(delivery) = announce {
                report.human_notified += store::enqueue_deliveries(txn, &[delivery], now).await?;
            }
            return Ok(());
        }
        let endpoint = channel.code();
        if !self.config.endpoints.contains_key(endpoint) {
            report.no_endpoint += 1;
            self.warn_once(
                format!("endpoint:{endpoint}"),
                "no endpoint is configured for this channel; its tasks stay planned",
            );
            return Ok(());
        }
        let message = match task.template.as_deref() {
            Some(name) => {
                match self.templates.render(name, &message_context(task, account, borrower, &self.config.lender_name)) {
                    Ok(text) => Some(text),
                    Err(error) => {
                        report.render_failed += 1;
                        self.warn_once(format!("template:{name}"), &format!("{error}; its tasks stay planned"));
                        return Ok(());
                    }
                }
            }
            None => None,
        };
        let body = self.ready_body(task, account, borrower, to.clone(), message)?;
        let delivery = ready_delivery(task.id, endpoint, body, now);
        let detail = serde_json::json!({"endpoint": endpoint, "to": to, "webhook_id": delivery.webhook_id});
        let audit = store::Audit::new(ENGINE, detail);
        if !store::tasks::release(txn, task.id, TaskState::Dispatched, to.as_deref(), audit, now).await? {
            return Ok(());
        }
        store::enqueue_deliveries(txn, std::slice::from_ref(&delivery), now).await?;
        report.dispatched += 1;
        Ok(())
    }

    /// The `task.ready` body of a task.
    fn ready_body(
        &self,
        task: &tasks::Model,
        account: &Account,
        borrower: &Borrower,
        to: Option<String>,
        message: Option<String>,
    ) -> Result<String, ReleaseError> {
        let zone = borrower.primary_timezone();
        let envelope = Envelope {
            kind: TASK_READY.to_string(),
            timestamp: self.now,
            data: TaskReadyV1 {
                task_id: task.id.to_string(),
                account_id: account.id.clone(),
                borrower_id: borrower.id.clone(),
                channel: task.channel.clone(),
                to,
                name: borrower.name.clone(),
                stage: task.stage.clone(),
                strategy: task.strategy.clone(),
                rule: task.rule.clone(),
                arm: task.arm.clone(),
                queue: task.queue.clone(),
                attempt: task.attempt,
                not_before: task.not_before.with_timezone(&zone).fixed_offset(),
                not_after: task.not_after.with_timezone(&zone).fixed_offset(),
                message,
                callback_url: format!("{}/v1/tasks/{}/attempts", self.config.public_base_url(), task.id),
            },
        };
        serde_json::to_string(&envelope)
            .map_err(|error| ReleaseError::Encode { task_id: task.id, message: error.to_string() })
    }
}

fn ready_delivery(task_id: i64, endpoint: &str, body: String, now: DateTime<Utc>) -> NewDelivery {
    NewDelivery {
        webhook_id: task_webhook_id(task_id, TASK_READY),
        task_id: Some(task_id),
        endpoint: endpoint.to_string(),
        event: TASK_READY.to_string(),
        body,
        send_at: now,
    }
}

/// The variables a message template sees, from the task and the latest account (the release's
/// messages and the inbound call's script).
pub(crate) fn message_context(
    task: &tasks::Model,
    account: &Account,
    borrower: &Borrower,
    lender: &str,
) -> MessageContext {
    let zone = borrower.primary_timezone();
    MessageContext {
        borrower: BorrowerView { id: borrower.id.clone(), name: borrower.name.clone() },
        account: MessageAccount {
            id: account.id.clone(),
            product: account.product.clone(),
            currency: account.currency.clone(),
            amount_due: account.amount_due.to_string(),
            balance: account.balance.to_string(),
            due_date: account.due_date.to_string(),
            dpd: task.dpd,
        },
        task: TaskView {
            stage: task.stage.clone(),
            strategy: task.strategy.clone(),
            rule: task.rule.clone(),
            channel: task.channel.clone(),
            attempt: u32::try_from(task.attempt).unwrap_or(0),
            not_before: task.not_before.with_timezone(&zone).to_rfc3339(),
            not_after: task.not_after.with_timezone(&zone).to_rfc3339(),
        },
        lender: LenderView { name: lender.to_string() },
    }
}
