//! The nightly plan inserts every task into each index of `tasks`: `idx_tasks_queue_state_priority`
//! (queue, state, priority) cost a fifth of a 1,000,000-account plan's write on SQLite although
//! leasing reads `idx_tasks_open_queue` and the only other readers count a queue's tasks. It is
//! replaced by `idx_tasks_queue_day (queue, not_before) WHERE queue IS NOT NULL`: only queued
//! (human) tasks, ordered as the queue's day is counted. A queue's backlog counts its open tasks
//! by `idx_tasks_open_queue` and its leased ones by `idx_tasks_lease_expiry`.

use sea_orm_migration::prelude::*;

/// Replaces `idx_tasks_queue_state_priority` with `idx_tasks_queue_day`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_tasks_queue_state_priority").await?;
        db.execute_unprepared("CREATE INDEX idx_tasks_queue_day ON tasks (queue, not_before) WHERE queue IS NOT NULL")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_tasks_queue_day").await?;
        db.execute_unprepared("CREATE INDEX idx_tasks_queue_state_priority ON tasks (queue, state, priority)").await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
