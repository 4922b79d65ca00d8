//! `reaction_cases`: the human task a reaction opens in a team's queue.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `reaction_cases`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "reaction_cases")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub event_id: String,
    #[sea_orm(column_type = "Text")]
    pub account_id: String,
    #[sea_orm(column_type = "Text")]
    pub borrower_id: String,
    #[sea_orm(column_type = "Text")]
    pub strategy: String,
    #[sea_orm(column_type = "Text")]
    pub reaction: String,
    #[sea_orm(column_type = "Text")]
    pub queue: String,
    pub opened_at: DateTimeUtc,
    /// The SLA deadline.
    pub due_at: DateTimeUtc,
    /// `open` or `closed`.
    #[sea_orm(column_type = "Text")]
    pub state: String,
    /// The agent who took the case, then who closed it.
    #[sea_orm(column_type = "Text", nullable)]
    pub agent: Option<String>,
    /// `confirmed`, `false_alarm`, `resolved` or `escalated`, once closed.
    #[sea_orm(column_type = "Text", nullable)]
    pub disposition: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub note: Option<String>,
    pub closed_at: Option<DateTimeUtc>,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
