//! Leasing human tasks: at most one leased task per borrower (so one borrower is never held by
//! two agents at once, even when two instances claim concurrently), and small state-filtered
//! indexes for the lease query and the lease reaper.
//!
//! Partial indexes are written as SQL: the same text is valid on SQLite and PostgreSQL, and the
//! schema builder has no `WHERE` for indexes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

/// Adds the lease indexes.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(name, definition)` of every index this migration creates.
const INDEXES: &[(&str, &str)] = &[
    // The guard: a second lease of a borrower's task fails with a unique violation.
    (
        "ux_tasks_leased_borrower",
        "CREATE UNIQUE INDEX ux_tasks_leased_borrower ON tasks (borrower_id) WHERE state = 'leased'",
    ),
    // The lease query: open human tasks of one queue, best first. Only open tasks are indexed,
    // so the index stays small however many finished tasks the table holds.
    (
        "idx_tasks_open_queue",
        "CREATE INDEX idx_tasks_open_queue ON tasks (queue, priority DESC, id) \
         WHERE channel = 'human' AND state IN ('planned', 'ready')",
    ),
    // The reaper: leases by expiry.
    (
        "idx_tasks_lease_expiry",
        "CREATE INDEX idx_tasks_lease_expiry ON tasks (lease_expires_at) WHERE state = 'leased'",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (_, definition) in INDEXES {
            db.execute_unprepared(definition).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}")).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
