//! `attempts`: contact attempts and their outcomes.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `attempts`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub account_id: String,
    #[sea_orm(column_type = "Text")]
    pub borrower_id: String,
    pub task_id: Option<i64>,
    #[sea_orm(column_type = "Text")]
    pub channel: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub address: Option<String>,
    pub at: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub outcome: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub note: Option<String>,
    /// The time the borrower asked to be called back (`callback` outcomes).
    pub callback_at: Option<DateTimeUtc>,
    /// Who reported it: `agent:<id>`, `dialler`, or `import`.
    #[sea_orm(column_type = "Text", nullable)]
    pub actor: Option<String>,
    /// A call the borrower asked for (Reg F's consent-based call): outside the 7-in-7 count
    /// and the conversation cool-down.
    pub exempt: bool,
    /// How long the call took, in seconds, as reported (agent minutes in reports).
    pub duration_seconds: Option<i32>,
    /// `outbound` (placed by the engine) or `inbound` (placed by the borrower).
    #[sea_orm(column_type = "Text")]
    pub direction: String,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
