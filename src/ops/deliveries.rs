//! `arrears deliveries list | replay | enable-endpoint` and the matching API: looking at the
//! webhook outbox, putting dead letters back in the queue, and re-enabling an endpoint that
//! answered `410 Gone`. The worker itself is `crate::dispatch`.

use super::{Settings, connect};
use crate::domain::DeliveryState;
use crate::store::{self, StoreError};
use chrono::{DateTime, Utc};
use entity::deliveries;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use std::io::Write;

/// One delivery as listed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    /// Row id (what `replay` takes).
    pub id: i64,
    /// The `webhook-id` every try carried.
    pub webhook_id: String,
    /// The task it is about.
    pub task_id: Option<i64>,
    /// The endpoint's name.
    pub endpoint: String,
    /// `task.ready` or `task.cancelled`.
    pub event: String,
    /// `pending`, `delivered`, `dead`, `disabled` or `void`.
    pub state: String,
    /// Tries made.
    pub tries: i32,
    /// When it is (or was) next due.
    pub next_attempt_at: DateTime<Utc>,
    /// The last HTTP status.
    pub last_status: Option<i32>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Why a `void` message was never sent: a reason code (`window_closed`, `not_live`,
    /// `flag:dispute`, `paid_in_full`, `ready_not_delivered`, ...); `null` otherwise.
    pub void_reason: Option<String>,
}

impl From<deliveries::Model> for DeliveryOut {
    fn from(row: deliveries::Model) -> Self {
        DeliveryOut {
            id: row.id,
            webhook_id: row.webhook_id,
            task_id: row.task_id,
            endpoint: row.endpoint,
            event: row.event,
            state: row.state,
            tries: row.tries,
            next_attempt_at: row.next_attempt_at,
            last_status: row.last_status,
            last_error: row.last_error,
            delivered_at: row.delivered_at,
            void_reason: row.void_reason,
        }
    }
}

/// What to replay.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Dead letters by id; empty or absent: every dead letter.
    #[serde(default)]
    pub ids: Vec<i64>,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReplayReport {
    /// Dead letters put back in the queue (due now, with a fresh retry schedule).
    pub requeued: u64,
}

/// Why a listing cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum DeliveriesError {
    /// An unknown state.
    #[error("state: `{0}` is not one of pending, delivered, dead, disabled, void")]
    UnknownState(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The deliveries in `state`, oldest first, at most `limit`.
pub async fn list_deliveries(
    db: &DatabaseConnection,
    state: &str,
    limit: u64,
) -> Result<Vec<DeliveryOut>, DeliveriesError> {
    let Ok(state) = state.parse::<DeliveryState>() else {
        return Err(DeliveriesError::UnknownState(state.to_string()));
    };
    Ok(store::deliveries_in_state(db, state.code(), limit).await?.into_iter().map(DeliveryOut::from).collect())
}

/// Puts dead letters back in the queue at `now`. Each goes through the outbox's claim-time
/// check when its turn comes: one about a task no longer sendable is voided, never sent.
pub async fn replay(
    db: &DatabaseConnection,
    request: &ReplayRequest,
    now: DateTime<Utc>,
) -> Result<ReplayReport, StoreError> {
    Ok(ReplayReport { requeued: store::replay_dead_letters(db, &request.ids, now).await? })
}

/// `arrears deliveries list`.
pub async fn list_command(settings: &Settings, state: &str, limit: u64, out: &mut impl Write) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    let rows = list_deliveries(&db, state, limit).await?;
    writeln!(
        out,
        "{:>8} {:<28} {:<8} {:<15} {:>5} {:>6}  last error (void: why never sent)",
        "id", "webhook-id", "endpoint", "event", "tries", "status"
    )?;
    for row in &rows {
        writeln!(
            out,
            "{:>8} {:<28} {:<8} {:<15} {:>5} {:>6}  {}",
            row.id,
            row.webhook_id,
            row.endpoint,
            row.event,
            row.tries,
            row.last_status.map(|status| status.to_string()).unwrap_or_else(|| "-".into()),
            match (&row.void_reason, &row.last_error) {
                (Some(reason), Some(error)) => format!("void: {reason} (last error: {error})"),
                (Some(reason), None) => format!("void: {reason}"),
                (None, error) => error.clone().unwrap_or_default(),
            }
        )?;
    }
    writeln!(out, "{} {state} deliveries", rows.len())?;
    for (name, at, reason) in store::disabled_endpoints(&db).await? {
        writeln!(out, "endpoint `{name}` is disabled since {} ({})", at.to_rfc3339(), reason.unwrap_or_default())?;
    }
    Ok(())
}

/// `arrears deliveries replay [ID...]`.
pub async fn replay_command(settings: &Settings, ids: Vec<i64>, now: DateTime<Utc>) -> anyhow::Result<ReplayReport> {
    let db = connect(settings).await?;
    Ok(replay(&db, &ReplayRequest { ids }, now).await?)
}

/// `arrears deliveries enable-endpoint NAME`: re-enables an endpoint disabled by `410 Gone` and
/// requeues what waited for it. Returns the deliveries requeued.
pub async fn enable_endpoint_command(settings: &Settings, name: &str, now: DateTime<Utc>) -> anyhow::Result<u64> {
    let db = connect(settings).await?;
    Ok(store::enable_endpoint(&db, name, now).await?)
}
