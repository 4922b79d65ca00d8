//! The release loop's expiry sweep closes `planned`, `ready` and `dispatched` tasks whose window
//! has closed, but `idx_tasks_open_not_after` (migration 5) held only the first two, so the sweep
//! could not use it: SQLite read every planned task for each batch of 1,000 and sorted them by
//! id, again for each batch (2.7 s a batch in `serve` on a 1,000,000-account book the day after
//! its plan: about an hour for its 1,400 batches at that rate). The index now holds the three
//! states the sweep reads, and the sweep takes its batches in the index's order (`not_after`).

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
