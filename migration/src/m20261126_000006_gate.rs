//! What the one contact gate and the task lifecycle need in the store:
//! - `accounts.engine_flags`: flags set by outcomes or operators, kept apart from the servicing
//!   system's `flags` (an import never removes them; the effective set is the union);
//! - `contact_points.retired_at`: addresses the servicing system dropped (kept, never chosen);
//! - `tasks.address`: the phone or address a task was released or leased to, so a report
//!   without one still counts against it; `tasks.origin`: `plan`, `escalation` or `callback`;
//! - `attempts.exempt`: a call the borrower asked for (Reg F §1006.14(b)(3)), outside the
//!   7-in-7 count and the conversation cool-down;
//! - `deliveries.claim_token` (the worker that holds a claim is the only one that may record
//!   its result) and `deliveries.void_reason` (why a message was never sent);
//! - `plan_runs.resume_after`: the last account id a page-by-page plan run has saved.
//!
//! SQLite adds one column per `ALTER TABLE`, so each column is its own statement.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns: Vec<(DynIden, ColumnDef)> = vec![
            (Accounts::Table.into_iden(), text(Accounts::EngineFlags).default("").to_owned()),
            (ContactPoints::Table.into_iden(), timestamp_with_time_zone_null(ContactPoints::RetiredAt).to_owned()),
            (Tasks::Table.into_iden(), text_null(Tasks::Address).to_owned()),
            (Tasks::Table.into_iden(), text(Tasks::Origin).default("plan").to_owned()),
            (Attempts::Table.into_iden(), boolean(Attempts::Exempt).default(false).to_owned()),
            (Deliveries::Table.into_iden(), text_null(Deliveries::ClaimToken).to_owned()),
            (Deliveries::Table.into_iden(), text_null(Deliveries::VoidReason).to_owned()),
            (PlanRuns::Table.into_iden(), text_null(PlanRuns::ResumeAfter).to_owned()),
        ];
        for (table, mut column) in columns {
            manager.alter_table(Table::alter().table(table).add_column(&mut column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns: Vec<(DynIden, DynIden)> = vec![
            (Accounts::Table.into_iden(), Accounts::EngineFlags.into_iden()),
            (ContactPoints::Table.into_iden(), ContactPoints::RetiredAt.into_iden()),
            (Tasks::Table.into_iden(), Tasks::Address.into_iden()),
            (Tasks::Table.into_iden(), Tasks::Origin.into_iden()),
            (Attempts::Table.into_iden(), Attempts::Exempt.into_iden()),
            (Deliveries::Table.into_iden(), Deliveries::ClaimToken.into_iden()),
            (Deliveries::Table.into_iden(), Deliveries::VoidReason.into_iden()),
            (PlanRuns::Table.into_iden(), PlanRuns::ResumeAfter.into_iden()),
        ];
        for (table, column) in columns {
            manager.alter_table(Table::alter().table(table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    EngineFlags,
}

#[derive(DeriveIden)]
enum ContactPoints {
    Table,
    RetiredAt,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Address,
    Origin,
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    Exempt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    ClaimToken,
    VoidReason,
}

#[derive(DeriveIden)]
enum PlanRuns {
    Table,
    ResumeAfter,
}
