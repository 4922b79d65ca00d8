//! Webhook endpoints that answered `410 Gone` are disabled until an operator re-enables them;
//! the flag must survive restarts, so it lives in the store.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds `endpoint_states`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EndpointStates::Table)
                    .col(text(EndpointStates::Name).primary_key())
                    .col(timestamp_with_time_zone_null(EndpointStates::DisabledAt))
                    .col(text_null(EndpointStates::Reason))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(EndpointStates::Table).to_owned()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum EndpointStates {
    Table,
    Name,
    DisabledAt,
    Reason,
}
