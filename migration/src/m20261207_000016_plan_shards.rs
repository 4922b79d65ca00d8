//! Several planners, one plan run: a sharded run cuts the book into shards of consecutive
//! account ids (`plan_run_shards`), each claimed by one planner at a time and saved part by
//! part with its own `resume_after`, counts and heartbeat; a shard whose heartbeat stopped is
//! taken over. `plan_runs.shards` is the run's number of shards (0: a run of one planner,
//! resumed by `plan_runs.resume_after`), and `plan_runs.admission` the capacity-limited queues'
//! admission the run decided once, so that every shard admits the same accounts.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds `plan_run_shards`, `plan_runs.shards` and `plan_runs.admission`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [integer(PlanRuns::Shards).default(0).to_owned(), text_null(PlanRuns::Admission).to_owned()];
        for mut column in columns {
            manager.alter_table(Table::alter().table(PlanRuns::Table).add_column(&mut column).to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(PlanRunShards::Table)
                    .col(big_integer(PlanRunShards::RunId))
                    .col(integer(PlanRunShards::Shard))
                    .col(text(PlanRunShards::AfterId))
                    .col(text_null(PlanRunShards::ThroughId))
                    .col(text(PlanRunShards::State).default("open"))
                    .col(text_null(PlanRunShards::Holder))
                    .col(timestamp_with_time_zone_null(PlanRunShards::HeartbeatAt))
                    .col(text_null(PlanRunShards::ResumeAfter))
                    .col(big_integer(PlanRunShards::Accounts).default(0))
                    .col(big_integer(PlanRunShards::Tasks).default(0))
                    .col(big_integer(PlanRunShards::Skips).default(0))
                    .col(text(PlanRunShards::SkipCounts).default("{}"))
                    .primary_key(Index::create().col(PlanRunShards::RunId).col(PlanRunShards::Shard))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(PlanRunShards::Table).to_owned()).await?;
        for column in [PlanRuns::Shards, PlanRuns::Admission] {
            manager.alter_table(Table::alter().table(PlanRuns::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum PlanRuns {
    Table,
    Shards,
    Admission,
}

#[derive(DeriveIden)]
enum PlanRunShards {
    Table,
    RunId,
    Shard,
    AfterId,
    ThroughId,
    State,
    Holder,
    HeartbeatAt,
    ResumeAfter,
    Accounts,
    Tasks,
    Skips,
    SkipCounts,
}
