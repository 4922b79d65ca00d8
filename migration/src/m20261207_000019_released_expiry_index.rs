//! A plan inserts every task `planned`, and each went into `idx_tasks_open_not_after` too: on a
//! 1,000,000-account plan (1,399,011 tasks) on SQLite that one index was ~2 to 3 s of a 15 s
//! saved plan. The expiry sweep now finds closed `planned` tasks by the release index
//! (`idx_tasks_state_not_before`: a planned task whose window closed has `not_before <=
//! not_after <= now`), so its own index holds only the released states, `ready` and
//! `dispatched`, which a task enters at release, one batch at a time through the day.

use sea_orm_migration::prelude::*;

/// Replaces `idx_tasks_open_not_after` by `idx_tasks_released_not_after`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_tasks_open_not_after").await?;
        db.execute_unprepared(
            "CREATE INDEX idx_tasks_released_not_after ON tasks (not_after) WHERE state IN ('ready', 'dispatched')",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_tasks_released_not_after").await?;
        db.execute_unprepared(
            "CREATE INDEX idx_tasks_open_not_after ON tasks (not_after) \
             WHERE state IN ('planned', 'ready', 'dispatched')",
        )
        .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
