//! `accounts.csv`: accounts, their borrowers and the borrowers' contact points.

use super::csvfile::{ColumnSpec, Errors, Header, Row, parse_bool, read_file};
use super::records::{AccountBatch, AccountRecord, FieldError, Position};
use super::{ImportError, ImportKind, ImportReport, RowError, begin};
use crate::domain::{Account, Borrower};
use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use sea_orm::DatabaseConnection;
use std::path::{Path, PathBuf};

/// The required columns of `accounts.csv`, in the contract's order.
pub const ACCOUNT_COLUMNS: &[&str] = &[
    "account_id",
    "borrower_id",
    "name",
    "phones",
    "email",
    "timezones",
    "product",
    "currency",
    "amount_due",
    "balance",
    "due_date",
    "tags",
    "flags",
    "consent_robot",
];

const SPEC: ColumnSpec =
    ColumnSpec { required: ACCOUNT_COLUMNS, optional: &["opt_outs", "funders"], dynamic: &["score.", "attr."] };

/// Where each column is.
struct Columns {
    account_id: usize,
    borrower_id: usize,
    name: usize,
    phones: usize,
    email: usize,
    timezones: usize,
    product: usize,
    currency: usize,
    amount_due: usize,
    balance: usize,
    due_date: usize,
    tags: usize,
    flags: usize,
    consent_robot: usize,
    opt_outs: Option<usize>,
    funders: Option<usize>,
    scores: Vec<(usize, String)>,
    attrs: Vec<(usize, String)>,
}

impl Columns {
    fn of(header: &Header) -> Columns {
        // The header was checked: every required column is present.
        let at = |name: &str| header.index(name).unwrap_or(usize::MAX);
        Columns {
            account_id: at("account_id"),
            borrower_id: at("borrower_id"),
            name: at("name"),
            phones: at("phones"),
            email: at("email"),
            timezones: at("timezones"),
            product: at("product"),
            currency: at("currency"),
            amount_due: at("amount_due"),
            balance: at("balance"),
            due_date: at("due_date"),
            tags: at("tags"),
            flags: at("flags"),
            consent_robot: at("consent_robot"),
            opt_outs: header.index("opt_outs"),
            funders: header.index("funders"),
            scores: header.with_prefix("score."),
            attrs: header.with_prefix("attr."),
        }
    }
}

/// Imports `accounts.csv`.
pub(super) async fn import(
    db: &DatabaseConnection,
    path: &Path,
    progress: &ProgressBar,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    let name = path.display().to_string();
    let path: PathBuf = path.to_path_buf();
    let bar = progress.clone();
    let (accounts, borrowers, rows) = tokio::task::spawn_blocking(move || parse(&path, &bar))
        .await
        .map_err(|error| ImportError::Read { file: name, message: error.to_string() })??;

    progress.set_message("writing accounts");
    let txn = begin(db).await?;
    let written = super::apply::write_accounts(&txn, &accounts, &borrowers, now, "import").await?;
    txn.commit().await?;
    let counts = written.accounts;
    Ok(ImportReport {
        kind: ImportKind::Accounts,
        rows,
        inserted: counts.inserted,
        updated: counts.updated,
        unchanged: counts.unchanged,
        contact_points_retired: written.contact_points_retired,
        contact_points_restored: written.contact_points_restored,
    })
}

/// Where a record is in the file: the data row and the physical line where it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowAt {
    /// 1 = the first row after the header.
    pub row: u64,
    /// Physical line.
    pub line: u64,
}

impl Position for RowAt {
    fn describe(&self) -> String {
        format!("row {}", self.row)
    }
    const BATCH: &'static str = "file";
    const UNKNOWN_ACCOUNT_HINT: &'static str = "import it with accounts.csv first";
}

/// A shared record error as a row error of this file.
pub(crate) fn row_error(file: &str, error: FieldError<RowAt>) -> RowError {
    RowError {
        file: file.to_string(),
        row: Some(error.at.row),
        line: error.at.line,
        column: Some(error.field),
        value: error.value,
        message: error.message,
    }
}

/// Reads and checks the whole file: accounts in file order, borrowers in order of first
/// appearance, and the number of data rows.
fn parse(path: &Path, progress: &ProgressBar) -> Result<(Vec<Account>, Vec<Borrower>, u64), ImportError> {
    let file = path.display().to_string();
    let mut errors = Errors::new(&file);
    let mut batch: AccountBatch<RowAt> = AccountBatch::default();
    let mut rows = 0;
    let mut columns: Option<Columns> = None;
    read_file(path, &file, &SPEC, progress, &mut errors, |row, errors| {
        rows = row.number;
        let columns = columns.get_or_insert_with(|| Columns::of(row.header()));
        parse_row(row, columns, errors, &mut batch);
    })?;
    let mut found = Vec::new();
    let (accounts, borrowers) = batch.finish(&mut found);
    for error in found {
        errors.push(row_error(&file, error));
    }
    errors.into_result()?;
    Ok((accounts, borrowers, rows))
}

/// The items of a `;`-separated cell, trimmed, without empty ones.
fn items(value: &str) -> Vec<&str> {
    value.split(';').map(str::trim).filter(|item| !item.is_empty()).collect()
}

fn parse_row(row: &Row<'_>, columns: &Columns, errors: &mut Errors, batch: &mut AccountBatch<RowAt>) {
    let at = RowAt { row: row.number, line: row.line };
    let record = AccountRecord {
        account_id: row.field(columns.account_id),
        borrower_id: row.field(columns.borrower_id),
        name: row.field(columns.name),
        phones: items(row.field(columns.phones)),
        email: row.field(columns.email),
        timezones: items(row.field(columns.timezones)),
        timezones_text: row.field(columns.timezones),
        product: row.field(columns.product),
        currency: row.field(columns.currency),
        amount_due: row.field(columns.amount_due),
        balance: row.field(columns.balance),
        due_date: row.field(columns.due_date),
        tags: items(row.field(columns.tags)),
        flags: items(row.field(columns.flags)),
        consent_robot: row.parse(columns.consent_robot, errors, parse_bool),
        opt_outs: columns.opt_outs.map(|index| items(row.field(index))).unwrap_or_default(),
        scores: parse_scores(row, &columns.scores, errors),
        attrs: columns
            .attrs
            .iter()
            .filter(|(index, _)| !row.field(*index).is_empty())
            .map(|(index, name)| (name.clone(), row.field(*index).to_string()))
            .collect(),
        funders: columns.funders.map(|index| row.field(index)).unwrap_or_default(),
    };
    let mut row_errors = Vec::new();
    batch.add(at, &record, &mut row_errors);
    for error in row_errors {
        errors.push(row_error(row.file, error));
    }
}

fn parse_scores(row: &Row<'_>, columns: &[(usize, String)], errors: &mut Errors) -> Option<Vec<(String, f64)>> {
    let mut scores = Vec::with_capacity(columns.len());
    let mut good = true;
    for (index, model) in columns {
        let value = row.field(*index);
        if value.is_empty() {
            continue;
        }
        match value.parse::<f64>() {
            Ok(number) if number.is_finite() => scores.push((model.clone(), number)),
            _ => {
                errors.push(row.error(*index, value, "is not a number (like 0.25)"));
                good = false;
            }
        }
    }
    good.then_some(scores)
}
