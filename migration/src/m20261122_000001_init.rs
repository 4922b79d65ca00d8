//! The initial schema: the loan book (borrowers, contact points, accounts), what happened to it
//! (payments, promises, attempts), what the engine decided (plan runs, tasks, stage history) and
//! the audit trail (strategy versions, audit log).
//!
//! Conventions, identical on SQLite and PostgreSQL:
//! - the servicing system's text ids are the primary keys of `borrowers` and `accounts`; every
//!   other table has a 64-bit auto-increment id;
//! - money is `decimal(20,4)`, instants are timestamps with time zone written in UTC, calendar
//!   days are dates;
//! - lists are `;`-joined text, maps are JSON text;
//! - no foreign keys: the importer checks references before it writes, and the hot bulk inserts
//!   (tasks, attempts) do not pay a parent lookup per row. Indexes are kept to what the queries
//!   need, on `tasks` especially (every index slows the plan's bulk insert).

use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};
use sea_orm_migration::{prelude::*, schema::*};

/// Creates every table of the first release.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Money columns: 16 digits before the point, 4 after.
fn money<T: IntoIden>(column: T) -> ColumnDef {
    decimal_len(column, 20, 4)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Borrowers::Table)
                    .col(text(Borrowers::Id).primary_key())
                    .col(text(Borrowers::Name))
                    .col(text(Borrowers::Timezones))
                    .col(boolean(Borrowers::ConsentRobot))
                    .col(timestamp_with_time_zone(Borrowers::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ContactPoints::Table)
                    .col(big_pk_auto(ContactPoints::Id))
                    .col(text(ContactPoints::BorrowerId))
                    .col(text(ContactPoints::Kind))
                    .col(text(ContactPoints::Address))
                    .col(text(ContactPoints::OptedOut).default(""))
                    .col(boolean(ContactPoints::WrongNumber).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_contact_points_borrower_kind_address")
                    .table(ContactPoints::Table)
                    .col(ContactPoints::BorrowerId)
                    .col(ContactPoints::Kind)
                    .col(ContactPoints::Address)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .col(text(Accounts::Id).primary_key())
                    .col(text(Accounts::BorrowerId))
                    .col(text(Accounts::Product))
                    .col(text(Accounts::Currency))
                    .col(money(Accounts::AmountDue))
                    .col(money(Accounts::Balance))
                    .col(date(Accounts::DueDate))
                    .col(text(Accounts::Tags).default(""))
                    .col(text(Accounts::Flags).default(""))
                    .col(text(Accounts::Scores).default("{}"))
                    .col(text(Accounts::Attrs).default("{}"))
                    .col(integer(Accounts::BrokenPromises).default(0))
                    .col(text_null(Accounts::Stage))
                    .col(timestamp_with_time_zone(Accounts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            // Accounts are rewritten in bulk: every plan run moves stages, every import moves
            // amounts. Half-empty pages let PostgreSQL update them in place (HOT: no new index
            // entries) — a million stage changes take about 1.5 s instead of 5 s. SQLite
            // rewrites rows in place anyway and has no such setting.
            manager.get_connection().execute_unprepared("ALTER TABLE accounts SET (fillfactor = 50)").await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_accounts_borrower_id")
                    .table(Accounts::Table)
                    .col(Accounts::BorrowerId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .col(big_pk_auto(Payments::Id))
                    .col(text(Payments::AccountId))
                    .col(money(Payments::Amount))
                    .col(timestamp_with_time_zone(Payments::PaidAt))
                    .col(text(Payments::Reference))
                    .col(timestamp_with_time_zone(Payments::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_payments_reference")
                    .table(Payments::Table)
                    .col(Payments::Reference)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Promises::Table)
                    .col(big_pk_auto(Promises::Id))
                    .col(text(Promises::AccountId))
                    .col(money(Promises::Amount))
                    .col(date(Promises::DueOn))
                    .col(timestamp_with_time_zone(Promises::MadeAt))
                    .col(text(Promises::Status).default("open"))
                    .col(timestamp_with_time_zone_null(Promises::ResolvedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_promises_account_made_at")
                    .table(Promises::Table)
                    .col(Promises::AccountId)
                    .col(Promises::MadeAt)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Attempts::Table)
                    .col(big_pk_auto(Attempts::Id))
                    .col(text(Attempts::AccountId))
                    .col(text(Attempts::BorrowerId))
                    .col(big_integer_null(Attempts::TaskId))
                    .col(text(Attempts::Channel))
                    .col(text_null(Attempts::Address))
                    .col(timestamp_with_time_zone(Attempts::At))
                    .col(text(Attempts::Outcome))
                    .col(text_null(Attempts::Note))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_attempts_account_channel_at")
                    .table(Attempts::Table)
                    .col(Attempts::AccountId)
                    .col(Attempts::Channel)
                    .col(Attempts::At)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_attempts_borrower_id_at")
                    .table(Attempts::Table)
                    .col(Attempts::BorrowerId)
                    .col(Attempts::At)
                    .to_owned(),
            )
            .await?;
        // The planner pages through the whole book's recent attempts by (at, id).
        manager
            .create_index(
                Index::create()
                    .name("idx_attempts_at_id")
                    .table(Attempts::Table)
                    .col(Attempts::At)
                    .col(Attempts::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PlanRuns::Table)
                    .col(big_pk_auto(PlanRuns::Id))
                    .col(timestamp_with_time_zone(PlanRuns::AsOf))
                    .col(timestamp_with_time_zone(PlanRuns::StartedAt))
                    .col(timestamp_with_time_zone_null(PlanRuns::FinishedAt))
                    .col(big_integer(PlanRuns::Accounts))
                    .col(big_integer(PlanRuns::Tasks))
                    .col(big_integer(PlanRuns::Skips))
                    .col(text(PlanRuns::SkipCounts).default("{}"))
                    .col(text(PlanRuns::Strategies).default("[]"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .col(big_pk_auto(Tasks::Id))
                    .col(big_integer(Tasks::PlanRunId))
                    .col(text(Tasks::AccountId))
                    .col(text(Tasks::BorrowerId))
                    .col(date(Tasks::LocalDate))
                    .col(integer(Tasks::Dpd))
                    .col(text(Tasks::Stage))
                    .col(text(Tasks::Strategy))
                    .col(text(Tasks::Rule))
                    .col(text_null(Tasks::Arm))
                    .col(text(Tasks::Channel))
                    .col(text_null(Tasks::Queue))
                    .col(text_null(Tasks::Template))
                    .col(integer(Tasks::Attempt))
                    .col(integer(Tasks::CallsAllowed))
                    .col(timestamp_with_time_zone(Tasks::NotBefore))
                    .col(timestamp_with_time_zone(Tasks::NotAfter))
                    .col(double(Tasks::Priority))
                    .col(text(Tasks::State).default("planned"))
                    .col(timestamp_with_time_zone(Tasks::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // Makes re-planning a day idempotent (`ON CONFLICT ... DO NOTHING`).
        manager
            .create_index(
                Index::create()
                    .name("ux_tasks_account_day_attempt")
                    .table(Tasks::Table)
                    .col(Tasks::AccountId)
                    .col(Tasks::LocalDate)
                    .col(Tasks::Attempt)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Release: planned tasks whose window opened.
        manager
            .create_index(
                Index::create()
                    .name("idx_tasks_state_not_before")
                    .table(Tasks::Table)
                    .col(Tasks::State)
                    .col(Tasks::NotBefore)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StageHistory::Table)
                    .col(big_pk_auto(StageHistory::Id))
                    .col(text(StageHistory::AccountId))
                    .col(text_null(StageHistory::FromStage))
                    .col(text(StageHistory::ToStage))
                    .col(timestamp_with_time_zone(StageHistory::At))
                    .col(big_integer(StageHistory::PlanRunId))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StrategyVersions::Table)
                    .col(big_pk_auto(StrategyVersions::Id))
                    .col(text(StrategyVersions::Name))
                    .col(text(StrategyVersions::File))
                    .col(text(StrategyVersions::ContentHash))
                    .col(text(StrategyVersions::Content))
                    .col(timestamp_with_time_zone(StrategyVersions::LoadedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_strategy_versions_name_hash")
                    .table(StrategyVersions::Table)
                    .col(StrategyVersions::Name)
                    .col(StrategyVersions::ContentHash)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_pk_auto(AuditLog::Id))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(text(AuditLog::Actor))
                    .col(text(AuditLog::Action))
                    .col(text(AuditLog::Entity))
                    .col(text(AuditLog::EntityId))
                    .col(text(AuditLog::Detail).default("{}"))
                    .to_owned(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            StrategyVersions::Table.into_iden(),
            StageHistory::Table.into_iden(),
            Tasks::Table.into_iden(),
            PlanRuns::Table.into_iden(),
            Attempts::Table.into_iden(),
            Promises::Table.into_iden(),
            Payments::Table.into_iden(),
            Accounts::Table.into_iden(),
            ContactPoints::Table.into_iden(),
            Borrowers::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        // SQLite and PostgreSQL both have transactional DDL: a failed migration leaves nothing.
        Some(true)
    }
}

#[derive(DeriveIden)]
enum Borrowers {
    Table,
    Id,
    Name,
    Timezones,
    ConsentRobot,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ContactPoints {
    Table,
    Id,
    BorrowerId,
    Kind,
    Address,
    OptedOut,
    WrongNumber,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    BorrowerId,
    Product,
    Currency,
    AmountDue,
    Balance,
    DueDate,
    Tags,
    Flags,
    Scores,
    Attrs,
    BrokenPromises,
    Stage,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    AccountId,
    Amount,
    PaidAt,
    Reference,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Promises {
    Table,
    Id,
    AccountId,
    Amount,
    DueOn,
    MadeAt,
    Status,
    ResolvedAt,
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    Id,
    AccountId,
    BorrowerId,
    TaskId,
    Channel,
    Address,
    At,
    Outcome,
    Note,
}

#[derive(DeriveIden)]
enum PlanRuns {
    Table,
    Id,
    AsOf,
    StartedAt,
    FinishedAt,
    Accounts,
    Tasks,
    Skips,
    SkipCounts,
    Strategies,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    PlanRunId,
    AccountId,
    BorrowerId,
    LocalDate,
    Dpd,
    Stage,
    Strategy,
    Rule,
    Arm,
    Channel,
    Queue,
    Template,
    Attempt,
    CallsAllowed,
    NotBefore,
    NotAfter,
    Priority,
    State,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StageHistory {
    Table,
    Id,
    AccountId,
    FromStage,
    ToStage,
    At,
    PlanRunId,
}

#[derive(DeriveIden)]
enum StrategyVersions {
    Table,
    Id,
    Name,
    File,
    ContentHash,
    Content,
    LoadedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    Entity,
    EntityId,
    Detail,
}
