//! `borrowers`: the people who owe.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `borrowers`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "borrowers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// `;`-joined IANA zone names, the primary one first.
    #[sea_orm(column_type = "Text")]
    pub timezones: String,
    pub consent_robot: bool,
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
