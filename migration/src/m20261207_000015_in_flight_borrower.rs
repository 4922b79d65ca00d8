//! The nightly plan inserts every task into each index of `tasks`. `idx_tasks_borrower_state`
//! (borrower_id, state) held every task ever planned, yet its only reader is the gate's history:
//! the tasks in flight (`dispatched`, `leased`) of a page's or a hand-off's borrowers. It is
//! replaced by `idx_tasks_in_flight_borrower (borrower_id) WHERE state IN ('dispatched',
//! 'leased')`: a planned task enters it only when it is handed out and leaves it when it ends,
//! so the plan's insert no longer pays for it and it stays as small as the work in flight.

use sea_orm_migration::prelude::*;

/// Replaces `idx_tasks_borrower_state` with `idx_tasks_in_flight_borrower`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_tasks_borrower_state").await?;
        db.execute_unprepared(
            "CREATE INDEX idx_tasks_in_flight_borrower ON tasks (borrower_id) WHERE state IN ('dispatched', 'leased')",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_tasks_in_flight_borrower").await?;
        db.execute_unprepared("CREATE INDEX idx_tasks_borrower_state ON tasks (borrower_id, state)").await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
