//! `experiment_entries`: one row per account and experiment, written when a plan first finds
//! the account in the experiment's stage.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `experiment_entries`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "experiment_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub experiment: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub account_id: String,
    #[sea_orm(column_type = "Text")]
    pub strategy: String,
    #[sea_orm(column_type = "Text")]
    pub borrower_id: String,
    /// The arm the borrower was assigned to.
    #[sea_orm(column_type = "Text")]
    pub arm: String,
    /// The plan run's `as_of` that first found the account in the stage.
    pub entered_at: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub stage: String,
    /// Days past due at entry (a pre-entry covariate).
    pub dpd: i32,
    /// Balance at entry (a pre-entry covariate).
    #[sea_orm(column_type = "Decimal(Some((20, 4)))")]
    pub balance: Decimal,
    #[sea_orm(column_type = "Text")]
    pub currency: String,
    pub plan_run_id: i64,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
