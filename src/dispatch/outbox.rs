//! Writing to the outbox about tasks: the deterministic `webhook-id` of a task's event, and the
//! `task.cancelled` messages owed when tasks about which a `task.ready` went out are closed.
//! Runs inside the caller's transaction (the one that closes the tasks), so the cancellation
//! and its message commit together; sending is the worker's job.

use super::{Envelope, TASK_CANCELLED, TASK_READY, TaskCancelledV1};
use crate::store::{self, ClosedTask, NewDelivery, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

/// The `webhook-id` of event `event` about task `task_id`: `task_<id>_ready`,
/// `task_<id>_cancelled`. Deterministic, so a retried release or cancellation never enqueues a
/// second message (the outbox keeps the first of an id).
pub fn task_webhook_id(task_id: i64, event: &str) -> String {
    let suffix = event.strip_prefix("task.").unwrap_or(event);
    format!("task_{task_id}_{suffix}")
}

/// Enqueues one `task.cancelled` (reason `reason`) for every task of `closed` about which a
/// `task.ready` was enqueued, to the endpoint that message went to: the dispatched robot, SMS
/// and e-mail tasks, and human tasks announced to the `human` endpoint. Tasks never announced
/// get nothing. Returns the messages added.
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
    let endpoints = store::delivery_endpoints(db, &keys).await?;
    let mut deliveries = Vec::new();
    for (task, ready_id) in closed.iter().zip(&ready_ids) {
        let Some(endpoint) = endpoints.get(ready_id) else { continue };
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
        deliveries.push(NewDelivery {
            webhook_id: task_webhook_id(task.id, TASK_CANCELLED),
            task_id: Some(task.id),
            endpoint: endpoint.clone(),
            event: TASK_CANCELLED.to_string(),
            body,
            send_at: now,
        });
    }
    if deliveries.is_empty() {
        return Ok(0);
    }
    store::enqueue_deliveries(db, &deliveries, now).await
}
