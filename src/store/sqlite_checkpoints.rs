//! The WAL checkpoints of a plan run on SQLite: when they run and in which mode, beside the
//! run's writer. Writes no plan data (that is `store::sqlite_parts`) and decides nothing about
//! a part.

use sea_orm::DatabaseConnection;

/// The WAL checkpoints of a plan run on SQLite. The run's writer connection never checkpoints
/// (`wal_autocheckpoint=0`): a checkpoint after its commit stopped the writer, the plan's slowest
/// stage, for 70-350 ms every 20,000 pages. Instead, every [`Checkpoints::EVERY_PARTS`] parts a
/// passive checkpoint copies the WAL into the database on a connection of the shared pool,
/// beside the writer's next part and the reader's next page. A passive checkpoint never lets
/// the WAL start over while the writer keeps appending to it, so every
/// [`Checkpoints::RESTART_PARTS`] parts the writer waits for a restarting one (short: the
/// passive ones copied most pages), which bounds the WAL file; after the run's last part it
/// waits for one that empties the WAL, so that the database file alone holds the finished plan.
#[derive(Debug)]
pub(super) struct Checkpoints {
    db: DatabaseConnection,
    parts: usize,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Checkpoints {
    /// Parts between two passive checkpoints: ~20,000 pages of WAL with parts of 10,000
    /// accounts of the benchmark book, so that the index pages consecutive parts rewrite are
    /// copied into the database file once per checkpoint, not once per part.
    pub(super) const EVERY_PARTS: usize = 6;
    /// Parts between two restarts of the WAL: it holds at most about this many parts' pages
    /// (~300 MiB with parts of 10,000 accounts of the benchmark book).
    pub(super) const RESTART_PARTS: usize = 4 * Self::EVERY_PARTS;

    /// Checkpoints for a plan run writing to `db`; `None` unless `db` is a SQLite file with a
    /// pool of several connections (an in-memory database has one, and no WAL).
    pub(super) fn for_writer(db: &DatabaseConnection) -> Option<Self> {
        if super::sql::is_postgres(db.get_database_backend()) {
            return None;
        }
        let shared = db.get_sqlite_connection_pool();
        (shared.options().get_max_connections() > 1).then(|| Checkpoints { db: db.clone(), parts: 0, running: None })
    }

    /// Called after each part is committed, before the next one begins: starts a passive
    /// checkpoint every [`Self::EVERY_PARTS`] parts unless one is still running; every
    /// [`Self::RESTART_PARTS`] parts, and after the run's `last` part, waits for the one running
    /// and runs one that restarts (or, the last, empties) the WAL.
    pub(super) async fn after_part(&mut self, last: bool) {
        self.parts += 1;
        if last || self.parts.is_multiple_of(Self::RESTART_PARTS) {
            if let Some(task) = self.running.take() {
                let _ = task.await;
            }
            checkpoint(&self.db, if last { "TRUNCATE" } else { "RESTART" }).await;
        } else if self.parts.is_multiple_of(Self::EVERY_PARTS)
            && self.running.as_ref().is_none_or(|task| task.is_finished())
        {
            let db = self.db.clone();
            self.running = Some(tokio::spawn(async move { checkpoint(&db, "PASSIVE").await }));
        }
    }
}

/// A checkpoint of `mode` (`PASSIVE`, `RESTART` or `TRUNCATE`). A failure, or readers that
/// keep it from finishing, is logged: the next checkpoint copies the same pages.
async fn checkpoint(db: &DatabaseConnection, mode: &str) {
    use sea_orm::ConnectionTrait;
    let started = std::time::Instant::now();
    let statement =
        sea_orm::Statement::from_string(db.get_database_backend(), format!("PRAGMA wal_checkpoint({mode})"));
    match db.query_one_raw(statement).await {
        Ok(row) => {
            let busy = row.and_then(|row| row.try_get_by_index::<i64>(0).ok()).unwrap_or(0);
            tracing::debug!(mode, busy, elapsed = ?started.elapsed(), "plan WAL checkpoint");
        }
        Err(error) => tracing::warn!(%error, mode, "a plan's WAL checkpoint failed; the next one copies its pages"),
    }
}
