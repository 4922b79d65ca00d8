//! The physical limit of a saved plan on SQLite (docs/PERFORMANCE.md): the same task rows a plan
//! saved, inserted by a plain rusqlite program in one transaction through one prepared
//! statement. `cargo run --release --example raw_task_insert -- PLANNED.db SCRATCH_DIR` reads the
//! `tasks` of a planned book (not timed), then times writing them into a new database file in
//! `SCRATCH_DIR`, with the same journal settings as `arrears` (WAL, `synchronous=NORMAL`): once
//! into a table with its primary key only (the baseline), once with the indexes
//! `tasks` has in `arrears` (the same rows, the same one transaction).

use rusqlite::{Connection, params};
use std::time::Instant;

/// One stored task, as the plan writes it (18 columns).
type Row = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
    String,
    String,
    f64,
);

const COLUMNS: &str = "plan_run_id, created_at, account_id, borrower_id, local_date, dpd, stage, strategy, rule, arm, \
                       channel, queue, template, attempt, calls_allowed, not_before, not_after, priority";

const TABLE: &str = "CREATE TABLE tasks (id INTEGER PRIMARY KEY AUTOINCREMENT, plan_run_id INTEGER NOT NULL, \
    created_at TEXT NOT NULL, account_id TEXT NOT NULL, borrower_id TEXT NOT NULL, local_date TEXT NOT NULL, \
    dpd INTEGER NOT NULL, stage TEXT NOT NULL, strategy TEXT NOT NULL, rule TEXT NOT NULL, arm TEXT, \
    channel TEXT NOT NULL, queue TEXT, template TEXT, attempt INTEGER NOT NULL, calls_allowed INTEGER NOT NULL, \
    not_before TEXT NOT NULL, not_after TEXT NOT NULL, priority REAL NOT NULL, state TEXT NOT NULL DEFAULT 'planned', lease_expires_at TEXT, \
    origin TEXT NOT NULL DEFAULT 'plan')";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: raw_task_insert PLANNED.db SCRATCH_DIR";
    let source = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let scratch = std::path::PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let rows = read_tasks(&source)?;
    // The indexes of `tasks` in arrears, read from the planned database itself.
    let indexes: Vec<String> = Connection::open(&source)?
        .prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND sql IS NOT NULL")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    std::fs::create_dir_all(&scratch)?;
    for (label, with) in [("primary key only", &[][..]), ("the indexes of arrears", &indexes[..])] {
        let path = scratch.join("raw_task_insert.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let seconds = insert(&path, &rows, with)?;
        println!(
            "{} rows, {label} ({} indexes): {seconds:.2} s, {:.0} rows/s",
            rows.len(),
            with.len(),
            rows.len() as f64 / seconds
        );
    }
    Ok(())
}

fn read_tasks(source: &str) -> anyhow::Result<Vec<Row>> {
    let db = Connection::open(source)?;
    let mut statement = db.prepare(&format!("SELECT {COLUMNS} FROM tasks ORDER BY id"))?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
                row.get(8)?,
                row.get(9)?,
                row.get(10)?,
                row.get(11)?,
                row.get(12)?,
                row.get(13)?,
                row.get(14)?,
                row.get(15)?,
                row.get(16)?,
                row.get(17)?,
            ))
        })?
        .collect::<Result<Vec<Row>, _>>()?;
    Ok(rows)
}

/// Creates the table (and `indexes`), then inserts every row in one transaction through one
/// prepared statement; returns the seconds from the first insert to the commit.
fn insert(path: &std::path::Path, rows: &[Row], indexes: &[String]) -> anyhow::Result<f64> {
    let mut db = Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "wal")?;
    db.pragma_update(None, "synchronous", "normal")?;
    db.pragma_update(None, "cache_size", -65536)?;
    db.execute_batch(TABLE)?;
    for index in indexes {
        db.execute_batch(index)?;
    }
    let started = Instant::now();
    let txn = db.transaction()?;
    {
        let placeholders = vec!["?"; 18].join(", ");
        let mut statement = txn.prepare(&format!("INSERT INTO tasks ({COLUMNS}) VALUES ({placeholders})"))?;
        for row in rows {
            statement.execute(params![
                row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10, row.11, row.12, row.13,
                row.14, row.15, row.16, row.17
            ])?;
        }
    }
    txn.commit()?;
    Ok(started.elapsed().as_secs_f64())
}
