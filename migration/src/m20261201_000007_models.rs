//! Learned contact models: `contact_models`, one row per training (`arrears learn`, the nightly
//! job); the row id is the model's version, `body` the model as JSON. Also an index on
//! `stage_history (account_id, at)`, so the training's read finds each attempt's stage at its
//! time by an index probe instead of a scan.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `contact_models` and the stage-history index.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ContactModels::Table)
                    .col(big_pk_auto(ContactModels::Id))
                    .col(timestamp_with_time_zone(ContactModels::CreatedAt))
                    .col(timestamp_with_time_zone(ContactModels::TrainedFrom))
                    .col(timestamp_with_time_zone(ContactModels::TrainedTo))
                    .col(integer(ContactModels::LookbackDays))
                    .col(big_integer(ContactModels::Attempts))
                    .col(text(ContactModels::Body))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_stage_history_account_at")
                    .table(StageHistory::Table)
                    .col(StageHistory::AccountId)
                    .col(StageHistory::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_stage_history_account_at").table(StageHistory::Table).to_owned())
            .await?;
        manager.drop_table(Table::drop().table(ContactModels::Table).to_owned()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum ContactModels {
    Table,
    Id,
    CreatedAt,
    TrainedFrom,
    TrainedTo,
    LookbackDays,
    Attempts,
    Body,
}

#[derive(DeriveIden)]
enum StageHistory {
    Table,
    AccountId,
    At,
}
