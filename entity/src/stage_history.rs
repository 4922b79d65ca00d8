//! `stage_history`: every change of an account's stage.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `stage_history`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "stage_history")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub account_id: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub from_stage: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub to_stage: String,
    pub at: DateTimeUtc,
    pub plan_run_id: i64,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
