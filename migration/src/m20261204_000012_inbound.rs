//! Inbound calls: `attempts.direction` (`outbound`, the calls the caps count, or `inbound`, the
//! calls a borrower placed), `inbound_calls` (each call a robot took: the number, how it matched
//! the book, and the task a transfer to a person made), and an index on phone contact points by
//! number for the live lookup.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds `attempts.direction`, `inbound_calls` and `idx_contact_points_phone`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Attempts::Table)
                    .add_column(text(Attempts::Direction).default("outbound"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(InboundCalls::Table)
                    .col(big_integer(InboundCalls::Id).auto_increment().primary_key())
                    .col(text(InboundCalls::FromNumber))
                    .col(text_null(InboundCalls::ToNumber))
                    .col(timestamp_with_time_zone(InboundCalls::At))
                    .col(text(InboundCalls::Matched))
                    .col(text(InboundCalls::Borrowers))
                    .col(big_integer_null(InboundCalls::TransferTaskId))
                    .to_owned(),
            )
            .await?;
        // The lookup reads phone contact points by number: an index on (address, kind) serves
        // `kind = 'phone' AND address = ?` on both stores.
        manager
            .create_index(
                Index::create()
                    .name("idx_contact_points_address")
                    .table(ContactPoints::Table)
                    .col(ContactPoints::Address)
                    .col(ContactPoints::Kind)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_contact_points_address").table(ContactPoints::Table).to_owned())
            .await?;
        manager.drop_table(Table::drop().table(InboundCalls::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Attempts::Table).drop_column(Attempts::Direction).to_owned()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    Direction,
}

#[derive(DeriveIden)]
enum InboundCalls {
    Table,
    Id,
    FromNumber,
    ToNumber,
    At,
    Matched,
    Borrowers,
    TransferTaskId,
}

#[derive(DeriveIden)]
enum ContactPoints {
    Table,
    Address,
    Kind,
}
