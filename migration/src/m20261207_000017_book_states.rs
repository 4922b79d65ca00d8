//! The roll matrix and the vintages read the book page by page (`store::book_states`): a page
//! of accounts, then the stage history, the cures and the payments of the page's range of
//! account ids. Stage history has its `(account_id, at)` index; these two give the cures
//! (`account.paid_in_full` audit rows) and the payments the same range read, instead of a scan
//! of the whole table per page or the whole table held in memory.

use sea_orm_migration::prelude::*;

/// Adds `idx_audit_log_paid_in_full` and `idx_payments_account_paid`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE INDEX idx_audit_log_paid_in_full ON audit_log (entity_id, at) \
             WHERE action = 'account.paid_in_full' AND entity = 'account'",
        )
        .await?;
        db.execute_unprepared("CREATE INDEX idx_payments_account_paid ON payments (account_id, paid_at)").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_payments_account_paid").await?;
        db.execute_unprepared("DROP INDEX IF EXISTS idx_audit_log_paid_in_full").await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
