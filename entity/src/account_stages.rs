//! `account_stages`: the stage the last plan run put each account in (an account in no stage has
//! no row).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `account_stages`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "account_stages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub account_id: String,
    #[sea_orm(column_type = "Text")]
    pub stage: String,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
