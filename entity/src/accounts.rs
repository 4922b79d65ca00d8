//! `accounts`: the loans (the stage a plan put each in is in `account_stages`).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of `accounts`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub borrower_id: String,
    #[sea_orm(column_type = "Text")]
    pub product: String,
    #[sea_orm(column_type = "Text")]
    pub currency: String,
    #[sea_orm(column_type = "Decimal(Some((20, 4)))")]
    pub amount_due: Decimal,
    #[sea_orm(column_type = "Decimal(Some((20, 4)))")]
    pub balance: Decimal,
    pub due_date: Date,
    /// `;`-joined tags.
    #[sea_orm(column_type = "Text")]
    pub tags: String,
    /// `;`-joined flag codes.
    #[sea_orm(column_type = "Text")]
    pub flags: String,
    /// JSON object `{model: number}`.
    #[sea_orm(column_type = "Text")]
    pub scores: String,
    /// JSON object `{name: string}`.
    #[sea_orm(column_type = "Text")]
    pub attrs: String,
    pub broken_promises: i32,
    /// Flags set by the engine (outcomes, operators), `;`-joined; an import never removes them.
    #[sea_orm(column_type = "Text")]
    pub engine_flags: String,
    pub updated_at: DateTimeUtc,
    /// Funding shares, `funder:share;...` in canonical form; null when wholly the lender's own.
    #[sea_orm(column_type = "Text", nullable)]
    pub funders: Option<String>,
    /// The last local day a reaction holds all contact with the account; null when none does.
    pub hold_until: Option<Date>,
    /// Tags set by reactions, `;`-joined; an import never removes them.
    #[sea_orm(column_type = "Text")]
    pub engine_tags: String,
}

/// No relations are declared: the schema has no foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
