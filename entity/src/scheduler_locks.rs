//! `scheduler_locks`: named, expiring locks so that one instance at a time runs a job.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `scheduler_locks`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "scheduler_locks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub holder: String,
    pub expires_at: DateTimeUtc,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
