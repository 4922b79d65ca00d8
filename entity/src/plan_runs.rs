//! `plan_runs`: one row per persisted plan run.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `plan_runs`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plan_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub as_of: DateTimeUtc,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub accounts: i64,
    pub tasks: i64,
    pub skips: i64,
    /// JSON object `{reason: count}`.
    #[sea_orm(column_type = "Text")]
    pub skip_counts: String,
    /// JSON list of `{name, hash}`.
    #[sea_orm(column_type = "Text")]
    pub strategies: String,
    /// The last account id whose page this run has saved (page-by-page runs).
    #[sea_orm(column_type = "Text", nullable)]
    pub resume_after: Option<String>,
    /// The run's shards in `plan_run_shards` (0: a run of one planner).
    pub shards: i32,
    /// The capacity-limited queues' admission of a sharded run (JSON), decided once.
    #[sea_orm(column_type = "Text", nullable)]
    pub admission: Option<String>,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
