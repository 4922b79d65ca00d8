//! `api_tokens`: storing and finding bearer tokens by their hash. This module never sees a token
//! in clear: hashing is the caller's job (`ops::tokens`).

use super::StoreError;
use chrono::{DateTime, Utc};
use entity::api_tokens;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

/// A token row as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The row id (names the token in the audit trail without revealing it).
    pub id: i64,
    /// `agent`, `dialler`, `ingest` or `admin`, as stored.
    pub role: String,
    /// The agent a token of role `agent` belongs to.
    pub agent_id: Option<String>,
}

/// Stores a new token's hash; returns the row id.
pub async fn insert_token(
    db: &impl ConnectionTrait,
    token_hash: &str,
    role: &str,
    agent_id: Option<&str>,
    label: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let row = api_tokens::ActiveModel {
        id: NotSet,
        token_hash: Set(token_hash.to_string()),
        role: Set(role.to_string()),
        agent_id: Set(agent_id.map(str::to_string)),
        label: Set(label.map(str::to_string)),
        created_at: Set(now),
        revoked_at: Set(None),
    };
    Ok(api_tokens::Entity::insert(row).exec(db).await?.last_insert_id)
}

/// The token with this hash, unless it is unknown or revoked.
pub async fn find_token(db: &impl ConnectionTrait, token_hash: &str) -> Result<Option<StoredToken>, StoreError> {
    let found = api_tokens::Entity::find()
        .filter(api_tokens::Column::TokenHash.eq(token_hash))
        .filter(api_tokens::Column::RevokedAt.is_null())
        .one(db)
        .await?;
    Ok(found.map(|row| StoredToken { id: row.id, role: row.role, agent_id: row.agent_id }))
}
