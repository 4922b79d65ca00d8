//! `contact_models`: the learned contact models, one row per training; the id is the version.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `contact_models`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "contact_models")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub created_at: DateTimeUtc,
    pub trained_from: DateTimeUtc,
    pub trained_to: DateTimeUtc,
    pub lookback_days: i32,
    /// Attempts learned from.
    pub attempts: i64,
    /// The model as JSON (`arrears::learn::ContactModel`).
    #[sea_orm(column_type = "Text")]
    pub body: String,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
