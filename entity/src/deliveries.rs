//! `deliveries`: the webhook outbox, one row per message and endpoint, with its retry state.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `deliveries`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The Standard Webhooks `webhook-id`: the same on every retry.
    #[sea_orm(column_type = "Text", unique)]
    pub webhook_id: String,
    pub task_id: Option<i64>,
    /// The endpoint's name in `arrears.toml` (`robot`, `sms`, `email`, `human`).
    #[sea_orm(column_type = "Text")]
    pub endpoint: String,
    /// `task.ready` or `task.cancelled`.
    #[sea_orm(column_type = "Text")]
    pub event: String,
    /// The JSON body, rendered once and sent unchanged on every try.
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// `pending`, `delivered`, `dead` or `disabled`.
    #[sea_orm(column_type = "Text")]
    pub state: String,
    pub tries: i32,
    pub next_attempt_at: DateTimeUtc,
    pub last_status: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
    /// The claim of the worker sending it now; only that worker may record the try.
    #[sea_orm(column_type = "Text", nullable)]
    pub claim_token: Option<String>,
    /// Why a `void` message was never sent (a reason code).
    #[sea_orm(column_type = "Text", nullable)]
    pub void_reason: Option<String>,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
