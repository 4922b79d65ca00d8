//! An account's stage moves out of `accounts` into a narrow table of its own, `account_stages`
//! (one row per account in a stage). A plan sets the stage of every account it puts in a new
//! one — on a book's first plan, all of them — and updating `accounts.stage` rewrote every page
//! of the widest table of the book, each one into the WAL and again at the checkpoint: ~2.5 s
//! of a 12 s saved plan of 1,000,000 accounts on SQLite. A row here is an account id and a
//! stage, appended in id order (see docs/PERFORMANCE.md, step 11). An account in no stage (never
//! planned into one, or paid in full since) has no row. SQLite keeps the table `WITHOUT ROWID`:
//! the rows live in the primary key's own b-tree.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// Creates `account_stages` from `accounts.stage`, then drops that column.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let rowid = if manager.get_database_backend() == DatabaseBackend::Sqlite { " WITHOUT ROWID" } else { "" };
        db.execute_unprepared(&format!(
            "CREATE TABLE account_stages (account_id text NOT NULL PRIMARY KEY, stage text NOT NULL){rowid}"
        ))
        .await?;
        db.execute_unprepared(
            "INSERT INTO account_stages (account_id, stage) SELECT id, stage FROM accounts WHERE stage IS NOT NULL",
        )
        .await?;
        db.execute_unprepared("ALTER TABLE accounts DROP COLUMN stage").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE accounts ADD COLUMN stage text NULL").await?;
        db.execute_unprepared(
            "UPDATE accounts SET stage = (SELECT stage FROM account_stages WHERE account_stages.account_id = accounts.id)",
        )
        .await?;
        db.execute_unprepared("DROP TABLE account_stages").await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
