//! A plan reads each page's history by the page's borrowers and accounts: indexes on
//! `attempts (account_id, at)` (each account's last conversation) and `promises (account_id)`
//! (its open promise), so a page's read is bounded by the page, not by the tables.

use sea_orm_migration::prelude::*;

/// Adds `idx_attempts_account_at` and `idx_promises_account`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_attempts_account_at")
                    .table(Attempts::Table)
                    .col(Attempts::AccountId)
                    .col(Attempts::At)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_promises_account").table(Promises::Table).col(Promises::AccountId).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_promises_account").table(Promises::Table).to_owned()).await?;
        manager.drop_index(Index::drop().name("idx_attempts_account_at").table(Attempts::Table).to_owned()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    AccountId,
    At,
}

#[derive(DeriveIden)]
enum Promises {
    Table,
    AccountId,
}
