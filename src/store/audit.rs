//! The audit trail: who changed what, and every strategy version ever loaded.

use super::StoreError;
use chrono::{DateTime, Utc};
use entity::{audit_log, strategy_versions};
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, EntityTrait, TryInsertResult, Value};
use std::path::Path;

/// Appends one audit row at the given instant; returns its id.
pub async fn record_audit_at(
    db: &impl ConnectionTrait,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: &str,
    detail: serde_json::Value,
) -> Result<i64, StoreError> {
    let row = audit_log::ActiveModel {
        id: NotSet,
        at: Set(at),
        actor: Set(actor.to_string()),
        action: Set(action.to_string()),
        entity: Set(entity.to_string()),
        entity_id: Set(entity_id.to_string()),
        detail: Set(detail.to_string()),
    };
    Ok(audit_log::Entity::insert(row).exec(db).await?.last_insert_id)
}

/// Appends one audit row per `(entity id, detail)`, all with the same instant, actor, action
/// and entity, in as few statements as the bind limit allows (imports may write thousands).
pub async fn record_audits_at(
    db: &impl ConnectionTrait,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    entity: &str,
    rows: &[(String, serde_json::Value)],
) -> Result<u64, StoreError> {
    super::sql::insert_values(
        db,
        "INSERT INTO audit_log (at, actor, action, entity, entity_id, detail)",
        &[Value::from(at), Value::from(actor), Value::from(action), Value::from(entity)],
        2,
        rows,
        |(entity_id, detail), values| {
            values.push(Value::from(entity_id.as_str()));
            values.push(Value::from(detail.to_string()));
        },
        "",
    )
    .await
}

/// Records a strategy file's content under its name and content hash, stamped with the current
/// time; returns whether this version is new (an already recorded `(name, hash)` is left as it
/// is). See [`record_strategy_version_at`] to give the instant.
pub async fn record_strategy_version(
    db: &impl ConnectionTrait,
    name: &str,
    file: impl AsRef<Path>,
    hash: &str,
    content: &str,
) -> Result<bool, StoreError> {
    record_strategy_version_at(db, Utc::now(), name, file, hash, content).await
}

/// [`record_strategy_version`] at the given instant.
pub async fn record_strategy_version_at(
    db: &impl ConnectionTrait,
    at: DateTime<Utc>,
    name: &str,
    file: impl AsRef<Path>,
    hash: &str,
    content: &str,
) -> Result<bool, StoreError> {
    let row = strategy_versions::ActiveModel {
        id: NotSet,
        name: Set(name.to_string()),
        file: Set(file.as_ref().display().to_string()),
        content_hash: Set(hash.to_string()),
        content: Set(content.to_string()),
        loaded_at: Set(at),
    };
    let result = strategy_versions::Entity::insert(row)
        .on_conflict_do_nothing_on([strategy_versions::Column::Name, strategy_versions::Column::ContentHash])
        .exec_without_returning(db)
        .await?;
    Ok(matches!(result, TryInsertResult::Inserted(rows) if rows > 0))
}
