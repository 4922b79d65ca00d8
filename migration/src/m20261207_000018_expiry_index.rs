//! The release loop's expiry sweep closes `planned`, `ready` and `dispatched` tasks whose window
//! has closed, but `idx_tasks_open_not_after` (migration 5) held only the first two, so the sweep
//! could not use it: SQLite read every planned task for each batch of 1,000 and sorted them by
//! id (2.7 s a batch on a 1,000,000-account book left unplanned for a day, growing with every
//! batch as the expired rows stayed in its path). The index now holds the three states the
//! sweep reads, and the sweep takes its batches in the index's order (`not_after`).

use sea_orm_migration::prelude::*;

/// Recreates `idx_tasks_open_not_after` over the states the expiry sweep closes.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_tasks_open_not_after").await?;
        db.execute_unprepared(
            "CREATE INDEX idx_tasks_open_not_after ON tasks (not_after) \
             WHERE state IN ('planned', 'ready', 'dispatched')",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_tasks_open_not_after").await?;
        db.execute_unprepared(
            "CREATE INDEX idx_tasks_open_not_after ON tasks (not_after) WHERE state IN ('planned', 'ready')",
        )
        .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
