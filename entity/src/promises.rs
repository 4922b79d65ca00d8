//! `promises`: promises to pay.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `promises`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "promises")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub account_id: String,
    #[sea_orm(column_type = "Decimal(Some((20, 4)))")]
    pub amount: Decimal,
    pub due_on: Date,
    pub made_at: DateTimeUtc,
    /// `open`, `kept` or `broken`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub resolved_at: Option<DateTimeUtc>,
    /// The attempt whose outcome made the promise (null when imported).
    pub attempt_id: Option<i64>,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
