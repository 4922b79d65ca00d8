//! `api_tokens`: bearer tokens of the HTTP API; only a hash of each token is kept.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `api_tokens`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Hex SHA-256 of the token.
    #[sea_orm(column_type = "Text", unique)]
    pub token_hash: String,
    /// `agent`, `dialler`, `ingest` or `admin`.
    #[sea_orm(column_type = "Text")]
    pub role: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub agent_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub label: Option<String>,
    pub created_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    /// The funder a `funder` role token reads for.
    #[sea_orm(column_type = "Text", nullable)]
    pub funder: Option<String>,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
