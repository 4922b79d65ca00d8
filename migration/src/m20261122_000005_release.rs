//! The release loop and robot-to-human escalation: a nullable `context` JSON text on `tasks`
//! (what an escalated human task carries: attempts so far, a promise captured, why it was
//! escalated), and a small state-filtered index for the release loop's expiry sweep (open
//! tasks by the end of their window). Dispatched tasks are found by account through the
//! existing `(account_id, local_date, attempt)` key.
//!
//! The partial index is written as SQL: the same text is valid on SQLite and PostgreSQL.

use sea_orm_migration::sea_orm::ConnectionTrait;
use sea_orm_migration::{prelude::*, schema::*};

/// Adds `tasks.context` and the expiry index.
#[derive(DeriveMigrationName)]
pub struct Migration;

const EXPIRY_INDEX: &str = "CREATE INDEX idx_tasks_open_not_after ON tasks (not_after) \
                            WHERE state IN ('planned', 'ready')";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Tasks::Table).add_column(text_null(Tasks::Context)).to_owned())
            .await?;
        manager.get_connection().execute_unprepared(EXPIRY_INDEX).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS idx_tasks_open_not_after").await?;
        manager.alter_table(Table::alter().table(Tasks::Table).drop_column(Tasks::Context).to_owned()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Context,
}
