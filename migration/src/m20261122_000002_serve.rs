//! What `arrears serve` and dispatch add to the first schema: API tokens, leases on tasks,
//! callbacks and the author of attempts, the link from a promise to the attempt that made it,
//! scheduler locks (one planner at a time across instances) and the webhook outbox.
//!
//! SQLite can add only one column per `ALTER TABLE`, so each column is its own statement.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds the tables and columns of `serve` and dispatch.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .col(big_pk_auto(ApiTokens::Id))
                    .col(text(ApiTokens::TokenHash))
                    .col(text(ApiTokens::Role))
                    .col(text_null(ApiTokens::AgentId))
                    .col(text_null(ApiTokens::Label))
                    .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::RevokedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_api_tokens_hash")
                    .table(ApiTokens::Table)
                    .col(ApiTokens::TokenHash)
                    .unique()
                    .to_owned(),
            )
            .await?;

        for column in [
            text_null(Tasks::LeaseAgent),
            timestamp_with_time_zone_null(Tasks::LeaseExpiresAt),
            timestamp_with_time_zone_null(Tasks::StateChangedAt),
            text_null(Tasks::StateReason),
        ] {
            manager.alter_table(Table::alter().table(Tasks::Table).add_column(column).to_owned()).await?;
        }
        // Leasing: the ready tasks of one queue, best first.
        manager
            .create_index(
                Index::create()
                    .name("idx_tasks_queue_state_priority")
                    .table(Tasks::Table)
                    .col(Tasks::Queue)
                    .col(Tasks::State)
                    .col(Tasks::Priority)
                    .to_owned(),
            )
            .await?;
        // Lease reaper and "who holds this borrower".
        manager
            .create_index(
                Index::create()
                    .name("idx_tasks_borrower_state")
                    .table(Tasks::Table)
                    .col(Tasks::BorrowerId)
                    .col(Tasks::State)
                    .to_owned(),
            )
            .await?;

        for column in [timestamp_with_time_zone_null(Attempts::CallbackAt), text_null(Attempts::Actor)] {
            manager.alter_table(Table::alter().table(Attempts::Table).add_column(column).to_owned()).await?;
        }
        manager
            .create_index(
                Index::create().name("idx_attempts_task").table(Attempts::Table).col(Attempts::TaskId).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Promises::Table).add_column(big_integer_null(Promises::AttemptId)).to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SchedulerLocks::Table)
                    .col(text(SchedulerLocks::Name).primary_key())
                    .col(text(SchedulerLocks::Holder))
                    .col(timestamp_with_time_zone(SchedulerLocks::ExpiresAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Deliveries::Table)
                    .col(big_pk_auto(Deliveries::Id))
                    .col(text(Deliveries::WebhookId))
                    .col(big_integer_null(Deliveries::TaskId))
                    .col(text(Deliveries::Endpoint))
                    .col(text(Deliveries::Event))
                    .col(text(Deliveries::Body))
                    .col(text(Deliveries::State).default("pending"))
                    .col(integer(Deliveries::Tries).default(0))
                    .col(timestamp_with_time_zone(Deliveries::NextAttemptAt))
                    .col(integer_null(Deliveries::LastStatus))
                    .col(text_null(Deliveries::LastError))
                    .col(timestamp_with_time_zone(Deliveries::CreatedAt))
                    .col(timestamp_with_time_zone_null(Deliveries::DeliveredAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_deliveries_webhook_id")
                    .table(Deliveries::Table)
                    .col(Deliveries::WebhookId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_state_next")
                    .table(Deliveries::Table)
                    .col(Deliveries::State)
                    .col(Deliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [Deliveries::Table.into_iden(), SchedulerLocks::Table.into_iden(), ApiTokens::Table.into_iden()] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        for index in ["idx_tasks_queue_state_priority", "idx_tasks_borrower_state"] {
            manager.drop_index(Index::drop().name(index).table(Tasks::Table).to_owned()).await?;
        }
        manager.drop_index(Index::drop().name("idx_attempts_task").table(Attempts::Table).to_owned()).await?;
        for column in [Tasks::LeaseAgent, Tasks::LeaseExpiresAt, Tasks::StateChangedAt, Tasks::StateReason] {
            manager.alter_table(Table::alter().table(Tasks::Table).drop_column(column).to_owned()).await?;
        }
        for column in [Attempts::CallbackAt, Attempts::Actor] {
            manager.alter_table(Table::alter().table(Attempts::Table).drop_column(column).to_owned()).await?;
        }
        manager.alter_table(Table::alter().table(Promises::Table).drop_column(Promises::AttemptId).to_owned()).await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    TokenHash,
    Role,
    AgentId,
    Label,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    LeaseAgent,
    LeaseExpiresAt,
    StateChangedAt,
    StateReason,
    Queue,
    State,
    Priority,
    BorrowerId,
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    CallbackAt,
    Actor,
    TaskId,
}

#[derive(DeriveIden)]
enum Promises {
    Table,
    AttemptId,
}

#[derive(DeriveIden)]
enum SchedulerLocks {
    Table,
    Name,
    Holder,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    WebhookId,
    TaskId,
    Endpoint,
    Event,
    Body,
    State,
    Tries,
    NextAttemptAt,
    LastStatus,
    LastError,
    CreatedAt,
    DeliveredAt,
}
