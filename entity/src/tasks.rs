//! `tasks`: units of work planned for an account's local day.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `tasks`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub plan_run_id: i64,
    #[sea_orm(column_type = "Text")]
    pub account_id: String,
    #[sea_orm(column_type = "Text")]
    pub borrower_id: String,
    pub local_date: Date,
    pub dpd: i32,
    #[sea_orm(column_type = "Text")]
    pub stage: String,
    #[sea_orm(column_type = "Text")]
    pub strategy: String,
    #[sea_orm(column_type = "Text")]
    pub rule: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub arm: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub channel: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub queue: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub template: Option<String>,
    pub attempt: i32,
    pub calls_allowed: i32,
    pub not_before: DateTimeUtc,
    pub not_after: DateTimeUtc,
    #[sea_orm(column_type = "Double")]
    pub priority: f64,
    #[sea_orm(column_type = "Text")]
    pub state: String,
    pub created_at: DateTimeUtc,
    /// The agent holding the task's lease, while `state` is `leased`.
    #[sea_orm(column_type = "Text", nullable)]
    pub lease_agent: Option<String>,
    pub lease_expires_at: Option<DateTimeUtc>,
    /// When `state` last changed (null while still as planned).
    pub state_changed_at: Option<DateTimeUtc>,
    /// Why the task reached its state (`paid_in_full`, `promise`, `window_closed`, ...).
    #[sea_orm(column_type = "Text", nullable)]
    pub state_reason: Option<String>,
    /// What an escalated task carries (JSON text: attempts so far, a promise captured, why).
    #[sea_orm(column_type = "Text", nullable)]
    pub context: Option<String>,
    /// The phone or address the task was released or leased to.
    #[sea_orm(column_type = "Text", nullable)]
    pub address: Option<String>,
    /// `plan`, `escalation` or `callback`.
    #[sea_orm(column_type = "Text")]
    pub origin: String,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
