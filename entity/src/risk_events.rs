//! `risk_events`: early-warning events from the lender's monitoring.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `risk_events`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "risk_events")]
pub struct Model {
    /// The sender's event id (idempotency key).
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    /// `score_change`, `missed_payment_elsewhere`, `contact_changed`, `fraud_alert`,
    /// `legal_notice` or `custom:<name>`.
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    /// The account it is about; null when it is about the borrower (all their accounts).
    #[sea_orm(column_type = "Text", nullable)]
    pub account_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub borrower_id: String,
    /// When it happened, as the sender says.
    pub at: DateTimeUtc,
    /// JSON object of the event's fields.
    #[sea_orm(column_type = "Text")]
    pub fields: String,
    pub received_at: DateTimeUtc,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
