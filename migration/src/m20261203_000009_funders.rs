//! Co-lending funders: `accounts.funders`, the account's funding shares in their canonical text
//! form (`bank-a:0.7;platform:0.3`; null for an account wholly the lender's own), and
//! `api_tokens.funder`, the funder a `funder` role token reads for.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds `accounts.funders` and `api_tokens.funder`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Accounts::Table).add_column(text_null(Accounts::Funders)).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(ApiTokens::Table).add_column(text_null(ApiTokens::Funder)).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(ApiTokens::Table).drop_column(ApiTokens::Funder).to_owned()).await?;
        manager.alter_table(Table::alter().table(Accounts::Table).drop_column(Accounts::Funders).to_owned()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Funders,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Funder,
}
