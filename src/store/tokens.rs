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
    /// The funder a token of role `funder` reads for.
    pub funder: Option<String>,
}

/// Whom a token is for: the agent of an `agent` token, the funder of a `funder` token.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenSubject<'a> {
    /// The agent id.
    pub agent_id: Option<&'a str>,
    /// The funder's name.
    pub funder: Option<&'a str>,
}

/// Stores a new token's hash; returns the row id.
pub async fn insert_token(
    db: &impl ConnectionTrait,
    token_hash: &str,
    role: &str,
    subject: TokenSubject<'_>,
    label: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let row = api_tokens::ActiveModel {
        id: NotSet,
        token_hash: Set(token_hash.to_string()),
        role: Set(role.to_string()),
        agent_id: Set(subject.agent_id.map(str::to_string)),
        funder: Set(subject.funder.map(str::to_string)),
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
    Ok(found.map(|row| StoredToken { id: row.id, role: row.role, agent_id: row.agent_id, funder: row.funder }))
}
