//! `payments`: money received, idempotent by reference.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `payments`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub account_id: String,
    #[sea_orm(column_type = "Decimal(Some((20, 4)))")]
    pub amount: Decimal,
    pub paid_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", unique)]
    pub reference: String,
    pub created_at: DateTimeUtc,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
