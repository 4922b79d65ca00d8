//! `arrears import accounts|payments|attempts|promises FILE.csv`: the servicing system's CSV
//! files into the store, whole or not at all.
//!
//! Every row is parsed and checked first (up to [`MAX_ERRORS`] errors are collected, each
//! naming the file, the data row and its physical line, the column and the bad value); only a
//! clean file is written, in one transaction. Imports are idempotent: importing the same file
//! twice changes nothing. The file contracts are in `docs/import.md`.

mod accounts;
pub use accounts::ACCOUNT_COLUMNS;
pub(crate) mod apply;
pub use apply::{AccountsWritten, PAID_IN_FULL, PaymentsApplied};
mod csvfile;
mod events;
pub(crate) mod records;
pub mod risk_events;

use crate::store::{self, StoreError};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use sea_orm::DatabaseConnection;
use std::fmt;
use std::io::IsTerminal;
use std::path::Path;
use std::str::FromStr;

/// At most this many errors are reported for one file.
pub const MAX_ERRORS: usize = 20;

/// Which file is imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportKind {
    /// `accounts.csv`: accounts, their borrowers and contact points (upsert).
    Accounts,
    /// `payments.csv`: payments, idempotent by reference; they lower the accounts' amounts.
    Payments,
    /// `attempts.csv`: contact attempts and outcomes, idempotent by account, channel and time.
    Attempts,
    /// `promises.csv`: promises to pay, idempotent by account and time made.
    Promises,
    /// `events.csv`: risk events, idempotent by event id; the strategies' reactions act on them.
    Events,
}

impl ImportKind {
    /// Every kind, in CLI order.
    pub const ALL: [ImportKind; 5] =
        [ImportKind::Accounts, ImportKind::Payments, ImportKind::Attempts, ImportKind::Promises, ImportKind::Events];

    /// The CLI name (`accounts`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ImportKind::Accounts => "accounts",
            ImportKind::Payments => "payments",
            ImportKind::Attempts => "attempts",
            ImportKind::Promises => "promises",
            ImportKind::Events => "events",
        }
    }
}

impl FromStr for ImportKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ImportKind::ALL.into_iter().find(|kind| kind.name() == text.trim()).ok_or_else(|| {
            format!("unknown import kind `{text}` (expected one of: accounts, payments, attempts, promises, events)")
        })
    }
}

impl fmt::Display for ImportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an import did. For accounts the counts are about accounts (borrowers and contact
/// points follow them); for the other kinds about payments, attempts or promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    /// Which file.
    pub kind: ImportKind,
    /// Data rows read.
    pub rows: u64,
    /// Rows that were new to the store.
    pub inserted: u64,
    /// Rows that changed stored values (accounts only).
    pub updated: u64,
    /// Rows the store already had, as they were (including repeats within the file).
    pub unchanged: u64,
    /// Accounts only: stored contact points of the file's borrowers that the file no longer
    /// carries, now retired (kept with their opt-outs, never chosen again).
    pub contact_points_retired: u64,
    /// Accounts only: retired contact points the file carries again.
    pub contact_points_restored: u64,
}

impl ImportReport {
    /// A report of nothing (the counts are filled in by each importer).
    pub(crate) fn empty() -> ImportReport {
        ImportReport {
            kind: ImportKind::Accounts,
            rows: 0,
            inserted: 0,
            updated: 0,
            unchanged: 0,
            contact_points_retired: 0,
            contact_points_restored: 0,
        }
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rows: {} inserted, {} updated, {} unchanged",
            self.rows, self.inserted, self.updated, self.unchanged
        )?;
        if self.contact_points_retired > 0 || self.contact_points_restored > 0 {
            write!(
                f,
                "; contact points: {} retired, {} restored",
                self.contact_points_retired, self.contact_points_restored
            )?;
        }
        Ok(())
    }
}

/// One bad row, header or field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The file, as given.
    pub file: String,
    /// The data row (1 = the first row after the header); `None` for the header.
    pub row: Option<u64>,
    /// The physical line where the row starts.
    pub line: u64,
    /// The column, when the error is about one field or header cell.
    pub column: Option<String>,
    /// The bad value, when there is one.
    pub value: Option<String>,
    /// What is wrong; follows the quoted value ("is not a date (YYYY-MM-DD)").
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        match self.row {
            Some(row) => write!(f, "row {row} (line {})", self.line)?,
            None => write!(f, "line {} (header)", self.line)?,
        }
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        f.write_str(": ")?;
        if let Some(value) = &self.value {
            write!(f, "{value:?} ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why an import failed. Nothing is written in any case.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be opened.
    #[error("{file}: cannot open: {source}")]
    Open {
        /// The file, as given.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file could not be read as CSV.
    #[error("{file}: cannot read: {message}")]
    Read {
        /// The file, as given.
        file: String,
        /// The reader's error.
        message: String,
    },
    /// Rows are invalid.
    #[error("{}", invalid_message(file, errors, *truncated))]
    Invalid {
        /// The file, as given.
        file: String,
        /// The first errors, in file order.
        errors: Vec<RowError>,
        /// Whether reading stopped at [`MAX_ERRORS`] errors (there may be more).
        truncated: bool,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid_message(file: &str, errors: &[RowError], truncated: bool) -> String {
    let mut message = format!(
        "{file}: {} error{}{}; nothing was imported",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        if truncated { " (stopped there; there may be more)" } else { "" },
    );
    for error in errors {
        message.push_str("\n  ");
        message.push_str(&error.to_string());
    }
    message
}

impl From<sea_orm::DbErr> for ImportError {
    fn from(error: sea_orm::DbErr) -> Self {
        ImportError::Store(StoreError::Db(error))
    }
}

/// Imports one CSV file, stamping changed rows with the current time. See [`import_file_at`].
pub async fn import_file(db: &DatabaseConnection, kind: ImportKind, path: &Path) -> Result<ImportReport, ImportError> {
    import_file_at(db, kind, path, Utc::now()).await
}

/// Imports one CSV file: parses and checks every row, then writes everything in one
/// transaction, or nothing when any row is bad. `now` stamps `updated_at` / `created_at`.
pub async fn import_file_at(
    db: &DatabaseConnection,
    kind: ImportKind,
    path: &Path,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    let progress = progress_bar(kind);
    let result = match kind {
        ImportKind::Accounts => accounts::import(db, path, &progress, now).await,
        ImportKind::Payments => events::import_payments(db, path, &progress, now).await,
        ImportKind::Attempts => events::import_attempts(db, path, &progress).await,
        ImportKind::Promises => events::import_promises(db, path, &progress).await,
        // Events need the strategies their reactions are in: `ops::import` reads them.
        ImportKind::Events => Err(ImportError::Read {
            file: path.display().to_string(),
            message: "risk events are imported with the strategies in force (`arrears import events FILE`)".into(),
        }),
    };
    progress.finish_and_clear();
    result
}

/// A byte-progress bar on a terminal, hidden when stderr is not one.
fn progress_bar(kind: ImportKind) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{msg:>18} [{bar:40.cyan/blue}] {bytes}/{total_bytes} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("reading {kind}"));
    bar
}

/// Begins the import's write transaction.
async fn begin(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, ImportError> {
    Ok(store::begin_write(db).await?)
}
