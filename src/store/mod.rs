//! The store: sea-orm repositories over SQLite (embedded default) and PostgreSQL (scale-out).
//!
//! Queries are small functions taking `&impl ConnectionTrait`, so they run alike on a pooled
//! connection and inside a transaction. Bulk paths (import, plan persistence) build multi-row,
//! parameterised statements chunked below each backend's bind-parameter limit; loaders page
//! through big tables by key so memory stays bounded.

mod account_view;
mod audit;
mod book;
mod book_states;
pub mod dashboard;
mod deliveries;
mod experiments;
mod history;
mod inbound;
mod ingest;
mod leases;
mod locks;
mod models;
mod outcomes;
mod plan_shards;
mod plans;
mod postgres_parts;
mod reactions;
mod release;
mod report;
mod sql;
mod sqlite_busy;
mod sqlite_checkpoints;
mod sqlite_parts;
mod statistics;
mod task_state;
pub mod tasks;
mod tokens;

pub use account_view::{AccountView, PromiseView, account_view};
pub use audit::{record_audit_at, record_audits_at, record_strategy_version, record_strategy_version_at};
pub use book::{BookPage, load_account, load_accounts_by_id, load_book_page, load_book_range, load_portfolio};
pub use deliveries::{
    ClaimedDelivery, NewDelivery, OutboxState, TryResult, claim_due_deliveries, deliveries_in_state, disable_endpoint,
    disabled_endpoints, enable_endpoint, enqueue_deliveries, outbox_states, postpone_claimed, ready_was_sent,
    record_delivered, record_try, replay_dead_letters, void_claimed, void_unsent,
};
pub use history::{HistoryScope, load_hand_off, load_history, load_page_history};
pub use inbound::{
    InboundAttempt, accounts_of_borrowers, borrowers_by_phone, inbound_attempts_of_call, inbound_call,
    insert_inbound_attempt, insert_inbound_call, set_transfer_task,
};
pub use ingest::{
    AccountRef, ContactPointKey, ContactPointsRetired, NewAttempt, NewPayment, NewPromise, PaidAccount, StoredPayment,
    UpsertCounts, account_refs, apply_payment_totals, insert_attempts, insert_payments, insert_promises,
    mark_wrong_numbers, retire_missing_contact_points, stored_payments, upsert_accounts, upsert_borrowers,
};
pub use leases::{has_lease_candidate, lock_task, task_by_id};
pub use locks::{plan_finished_since, try_lock, unlock};
pub use models::{FACT_PAGE_ROWS, load_latest_model, read_attempt_facts, save_model};

pub use book_states::{BookStates, STATE_PAGE, book_states};
pub use experiments::{entered_experiments, entries_of, insert_entries, outcomes_of};
pub use outcomes::{
    AccountFlags, OpenPromise, ReportedAttempt, TaskAttempt, account_flags, add_account_flag, attempt_at,
    attempts_of_task, count_broken_promise, insert_attempt_promise, insert_reported_attempt, open_promises_page,
    payments_since, resolve_promise, set_engine_flags,
};
pub use plan_shards::{
    SHARD_HEARTBEAT_TTL, ShardClaim, begin_sharded_run, claim_shard, finish_sharded_run, shards_not_done,
};
pub use plans::{
    NewPlanRun, PartSaved, PlanRunError, PlanRunWriter, RunCounts, RunPart, SQLITE_ACCOUNTS_PER_TRANSACTION,
    StageChange, add_replanned_tasks, begin_plan_run, count_tasks, latest_plan_run_id, queue_backlog, queue_day_tasks,
    raw_insert_tasks, save_plan, stage_history_of, tasks_for_account, unfinished_plan_run,
};
pub use reactions::{
    NewCase, REACTION_FIRED, account_row, accounts_of_borrower, case_by_id, cases, cases_by_id, cases_of_account,
    cases_opened_in, close_case, events_received_in, insert_risk_event, open_case, raise_open_tasks, reaction_firings,
    risk_event, set_reaction_marks, stage_moves_since,
};
pub use release::{release_candidates, tasks_by_id};
pub use report::{
    AttemptTallies, attempt_tallies, cures_in, funder_names, funding_shares, load_kpi_input, payments_in,
    promises_made, promises_resolved,
};
pub use statistics::{PLAN_TABLES, analyze_stale};
pub use task_state::{TaskCount, live_task_counts, task_counts};
pub use tasks::{Audit, ChannelFilter, Claimed, ClosedTask, NewTask};
pub use tokens::{StoredToken, TokenSubject, find_token, insert_token};

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use std::time::Duration;

/// The default `DATABASE_URL`: an SQLite file in the working directory, created when missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://arrears.db?mode=rwc";

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement, or could not be reached.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// SQLite refused or failed a statement of the bulk path (a plan run's parts).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value could not be read back into the domain (hand-edited or foreign data).
    #[error("corrupt row in {table} (id {id}): {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: String,
        /// What is wrong with it.
        message: String,
    },
}

impl StoreError {
    /// Whether the store was too busy to answer and the same request may succeed a moment
    /// later, with nothing written by this one: SQLite's write lock still held by another writer
    /// when the wait for it ran out (`database is locked`, `SQLITE_BUSY`/`SQLITE_LOCKED` and
    /// their extended codes), no pooled connection free in time, or a PostgreSQL transaction
    /// aborted by a deadlock, a serialization failure or a lock timeout.
    pub fn is_busy(&self) -> bool {
        use sea_orm::{RuntimeErr, sqlx};
        let error = match self {
            StoreError::Db(error) => error,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => {
                return matches!(failure.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked);
            }
            _ => return false,
        };
        let sqlx_error = match error {
            DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout) => return true,
            DbErr::Conn(RuntimeErr::SqlxError(error))
            | DbErr::Exec(RuntimeErr::SqlxError(error))
            | DbErr::Query(RuntimeErr::SqlxError(error)) => error,
            _ => return false,
        };
        match &**sqlx_error {
            sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(database) => {
                let code = database.code().unwrap_or_default();
                if database.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // Primary result code in the low byte: 5 SQLITE_BUSY, 6 SQLITE_LOCKED.
                    code.parse::<i32>().is_ok_and(|code| matches!(code & 0xff, 5 | 6))
                } else {
                    matches!(&*code, "40001" | "40P01" | "55P03")
                }
            }
            _ => false,
        }
    }
}

/// Connects to `url` (`sqlite://…` or `postgres://…`).
///
/// PostgreSQL pools hold up to `ARREARS_DB_POOL` connections; unset, the pool is sized from the
/// server (see [`pool_for_server`]).
/// SQLite connections use WAL, a wait of at least 5 s for the write lock that tries again every
/// millisecond (`sqlite_busy`), `synchronous=NORMAL` and a 64 MiB page cache; the file is created when the URL says `mode=rwc` or names no mode. An in-memory SQLite
/// database gets a single connection (each connection would otherwise see its own database).
/// Statements are logged by sqlx at DEBUG level only.
pub async fn connect(url: &str) -> Result<DatabaseConnection, StoreError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging_level(log::LevelFilter::Debug);
    if url.starts_with("postgres") {
        let size = match configured_pool_size() {
            Some(size) => size,
            None => {
                let room = server_room(url).await?;
                let size = pool_for_server(room);
                tracing::info!(
                    connections = size,
                    max_connections = room.max_connections,
                    reserved = room.reserved,
                    in_use = room.in_use,
                    "PostgreSQL pool sized from the server"
                );
                size
            }
        };
        options.max_connections(size);
    }
    if url.starts_with("sqlite:") {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let names_mode = url.contains("mode=");
        options.max_connections(if in_memory { 1 } else { 4 });
        options.map_sqlx_sqlite_opts(move |sqlite| {
            let sqlite = sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_millis(5000))
                .synchronous(SqliteSynchronous::Normal)
                .pragma("cache_size", "-65536")
                // Bulk inserts are big statements of varying row counts: keep few of them
                // prepared per connection (sqlx caches 100 by default).
                .statement_cache_capacity(16);
            if names_mode { sqlite } else { sqlite.create_if_missing(true) }
        });
        // A fair wait for the write lock (see `sqlite_busy`): replaces `busy_timeout`'s handler.
        options.map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_connect(|connection, _| Box::pin(async move { sqlite_busy::install(connection).await }))
        });
    }
    Ok(Database::connect(options).await?)
}

/// Connections per PostgreSQL pool as `ARREARS_DB_POOL` sets them (a positive number), if it does.
fn configured_pool_size() -> Option<u32> {
    std::env::var("ARREARS_DB_POOL").ok().and_then(|value| value.parse().ok()).filter(|size| *size > 0)
}

/// What a PostgreSQL server has room for when a pool is opened on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerRoom {
    /// `max_connections`.
    pub max_connections: u32,
    /// Slots only superusers or reserved roles may take (`superuser_reserved_connections` plus
    /// `reserved_connections` where the server has it).
    pub reserved: u32,
    /// Client connections open on the server now (other instances, tools, this probe).
    pub in_use: u32,
}

/// The most connections a pool sized from the server holds: past it, more connections on a
/// server of a few cores only queue inside PostgreSQL instead of in the pool.
pub const POOL_MOST: u32 = 32;
/// The fewest: a plan's reader, writer and shard claims, or a lease beside a reaper.
pub const POOL_LEAST: u32 = 4;

/// Connections for a new pool on a server with `room`: half of its free slots, so that another
/// instance (or the CLI beside `serve`) still finds as many, within [`POOL_LEAST`] and
/// [`POOL_MOST`].
pub fn pool_for_server(room: ServerRoom) -> u32 {
    let free = room.max_connections.saturating_sub(room.reserved).saturating_sub(room.in_use);
    (free / 2).clamp(POOL_LEAST, POOL_MOST)
}

/// Asks the server at `url` for its [`ServerRoom`], over one connection closed afterwards.
pub async fn server_room(url: &str) -> Result<ServerRoom, StoreError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(1).sqlx_logging_level(log::LevelFilter::Debug);
    let probe = Database::connect(options).await?;
    let sql = "SELECT CAST(current_setting('max_connections') AS INTEGER), \
               CAST(current_setting('superuser_reserved_connections') AS INTEGER) \
               + COALESCE(CAST(current_setting('reserved_connections', true) AS INTEGER), 0), \
               CAST((SELECT COUNT(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS INTEGER)";
    let row = probe.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await;
    probe.close().await.ok();
    let row = row?.ok_or_else(|| StoreError::Db(DbErr::RecordNotFound("the server's settings".into())))?;
    let number = |index: usize| -> Result<u32, StoreError> {
        Ok(u32::try_from(row.try_get_by_index::<i32>(index)?.max(0)).unwrap_or(0))
    };
    Ok(ServerRoom { max_connections: number(0)?, reserved: number(1)?, in_use: number(2)? })
}

/// An error of sqlx met where the store talks to it directly (a plan run's parts), as sea-orm
/// reports it: a pool timeout as such, a statement's error as an execution error (so that
/// `sql_err()` still tells a unique violation), anything else as a connection error.
pub(crate) fn sqlx_error(error: sea_orm::sqlx::Error) -> StoreError {
    use sea_orm::{DbErr, RuntimeErr};
    match error {
        sea_orm::sqlx::Error::PoolTimedOut => {
            StoreError::Db(DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout))
        }
        error @ sea_orm::sqlx::Error::Database(_) => {
            StoreError::Db(DbErr::Exec(RuntimeErr::SqlxError(std::sync::Arc::new(error))))
        }
        error => StoreError::Db(DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(error)))),
    }
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), StoreError> {
    Migrator::up(db, None).await?;
    Ok(())
}

/// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite (takes the write lock up front, so
/// a read-then-write transaction never fails half-way on a busy database), a plain transaction
/// on PostgreSQL.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, StoreError> {
    let options = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    Ok(db.begin_with_options(options).await?)
}

#[cfg(test)]
mod pool_tests {
    use super::{POOL_LEAST, POOL_MOST, ServerRoom, pool_for_server};

    #[test]
    fn a_pool_takes_half_the_free_slots_within_its_bounds() {
        let room = |max_connections, in_use| ServerRoom { max_connections, reserved: 3, in_use };
        // The default server, idle but for the probe: (100 - 3 - 1) / 2 = 48, capped.
        assert_eq!(pool_for_server(room(100, 1)), POOL_MOST);
        // Two instances already hold 60: (100 - 3 - 60) / 2 = 18.
        assert_eq!(pool_for_server(room(100, 60)), 18);
        // A small or crowded server still gets a working pool.
        assert_eq!(pool_for_server(room(20, 15)), POOL_LEAST);
        assert_eq!(pool_for_server(room(10, 40)), POOL_LEAST);
        // A big server does not get more than helps.
        assert_eq!(pool_for_server(room(1_000, 1)), POOL_MOST);
    }
}
