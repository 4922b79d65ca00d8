//! Experiment entries: `experiment_entries`, one row per account and experiment, written by the
//! plan run that first finds the account in the experiment's stage — its arm (assigned per
//! borrower), when it entered, and its pre-entry covariates (days past due, balance). The
//! experiment readings (`arrears experiments`) are computed from these rows and the outcomes
//! after them. Also `attempts.duration_seconds`: how long a call took, as the agent or dialler
//! reports it (the reports' agent minutes).

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `experiment_entries` and `attempts.duration_seconds`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ExperimentEntries::Table)
                    .col(text(ExperimentEntries::Experiment))
                    .col(text(ExperimentEntries::AccountId))
                    .col(text(ExperimentEntries::Strategy))
                    .col(text(ExperimentEntries::BorrowerId))
                    .col(text(ExperimentEntries::Arm))
                    .col(timestamp_with_time_zone(ExperimentEntries::EnteredAt))
                    .col(text(ExperimentEntries::Stage))
                    .col(integer(ExperimentEntries::Dpd))
                    .col(decimal_len(ExperimentEntries::Balance, 20, 4))
                    .col(text(ExperimentEntries::Currency))
                    .col(big_integer(ExperimentEntries::PlanRunId))
                    .primary_key(Index::create().col(ExperimentEntries::Experiment).col(ExperimentEntries::AccountId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Attempts::Table).add_column(integer_null(Attempts::DurationSeconds)).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_experiment_entries_account")
                    .table(ExperimentEntries::Table)
                    .col(ExperimentEntries::AccountId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Attempts::Table).drop_column(Attempts::DurationSeconds).to_owned())
            .await?;
        manager.drop_table(Table::drop().table(ExperimentEntries::Table).to_owned()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum ExperimentEntries {
    Table,
    Experiment,
    AccountId,
    Strategy,
    BorrowerId,
    Arm,
    EnteredAt,
    Stage,
    Dpd,
    Balance,
    Currency,
    PlanRunId,
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    DurationSeconds,
}
