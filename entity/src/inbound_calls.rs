//! `inbound_calls`: the calls borrowers placed that a robot took.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `inbound_calls`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "inbound_calls")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The caller's number, E.164.
    #[sea_orm(column_type = "Text")]
    pub from_number: String,
    /// The number dialled.
    #[sea_orm(column_type = "Text", nullable)]
    pub to_number: Option<String>,
    pub at: DateTimeUtc,
    /// `single`, `shared` or `unknown`.
    #[sea_orm(column_type = "Text")]
    pub matched: String,
    /// The matching borrowers' ids, `;`-joined.
    #[sea_orm(column_type = "Text")]
    pub borrowers: String,
    /// The human task a transfer made.
    pub transfer_task_id: Option<i64>,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
