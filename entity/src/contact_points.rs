//! `contact_points`: borrowers' phones and e-mail addresses.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `contact_points`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "contact_points")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub borrower_id: String,
    /// `phone` or `email`.
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub address: String,
    /// `;`-joined channel codes opted out on this address.
    #[sea_orm(column_type = "Text")]
    pub opted_out: String,
    pub wrong_number: bool,
    /// When the servicing system dropped this address (null while current).
    pub retired_at: Option<DateTimeUtc>,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
