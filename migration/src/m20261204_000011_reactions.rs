//! Risk events and the reactions to them: `risk_events`, one row per event as the lender's
//! monitoring sent it (idempotent by its id); `reaction_cases`, the human task a reaction opens
//! in a team's queue with its SLA deadline, closed with a disposition (the feedback);
//! `accounts.hold_until`, the last local day a reaction holds all contact with the account; and
//! `accounts.engine_tags`, the tags reactions set (an import never removes them).

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `risk_events`, `reaction_cases`, `accounts.hold_until` and `accounts.engine_tags`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RiskEvents::Table)
                    .col(text(RiskEvents::Id).primary_key())
                    .col(text(RiskEvents::Kind))
                    .col(text_null(RiskEvents::AccountId))
                    .col(text(RiskEvents::BorrowerId))
                    .col(timestamp_with_time_zone(RiskEvents::At))
                    .col(text(RiskEvents::Fields))
                    .col(timestamp_with_time_zone(RiskEvents::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_risk_events_borrower")
                    .table(RiskEvents::Table)
                    .col(RiskEvents::BorrowerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReactionCases::Table)
                    .col(big_integer(ReactionCases::Id).auto_increment().primary_key())
                    .col(text(ReactionCases::EventId))
                    .col(text(ReactionCases::AccountId))
                    .col(text(ReactionCases::BorrowerId))
                    .col(text(ReactionCases::Strategy))
                    .col(text(ReactionCases::Reaction))
                    .col(text(ReactionCases::Queue))
                    .col(timestamp_with_time_zone(ReactionCases::OpenedAt))
                    .col(timestamp_with_time_zone(ReactionCases::DueAt))
                    .col(text(ReactionCases::State))
                    .col(text_null(ReactionCases::Agent))
                    .col(text_null(ReactionCases::Disposition))
                    .col(text_null(ReactionCases::Note))
                    .col(timestamp_with_time_zone_null(ReactionCases::ClosedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_reaction_cases_event")
                    .table(ReactionCases::Table)
                    .col(ReactionCases::EventId)
                    .col(ReactionCases::AccountId)
                    .col(ReactionCases::Strategy)
                    .col(ReactionCases::Reaction)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_reaction_cases_queue")
                    .table(ReactionCases::Table)
                    .col(ReactionCases::Queue)
                    .col(ReactionCases::State)
                    .col(ReactionCases::DueAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(Accounts::Table).add_column(date_null(Accounts::HoldUntil)).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter().table(Accounts::Table).add_column(text(Accounts::EngineTags).default("")).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Accounts::Table).drop_column(Accounts::EngineTags).to_owned()).await?;
        manager.alter_table(Table::alter().table(Accounts::Table).drop_column(Accounts::HoldUntil).to_owned()).await?;
        manager.drop_table(Table::drop().table(ReactionCases::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(RiskEvents::Table).to_owned()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum RiskEvents {
    Table,
    Id,
    Kind,
    AccountId,
    BorrowerId,
    At,
    Fields,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum ReactionCases {
    Table,
    Id,
    EventId,
    AccountId,
    BorrowerId,
    Strategy,
    Reaction,
    Queue,
    OpenedAt,
    DueAt,
    State,
    Agent,
    Disposition,
    Note,
    ClosedAt,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    HoldUntil,
    EngineTags,
}
