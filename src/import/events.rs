//! `payments.csv`, `attempts.csv` and `promises.csv`: what happened to accounts already in the
//! store.

use super::accounts::{RowAt, row_error};
use super::csvfile::{
    ColumnSpec, Errors, Header, Row, parse_date, parse_instant, parse_positive_money, parse_required, read_file, reason,
};
use super::{ImportError, ImportKind, ImportReport, RowError, begin};
use crate::domain::{Channel, Outcome, parse_email, parse_phone};
use crate::store::{self, AccountRef, NewAttempt, NewPayment, NewPromise};
use chrono::{DateTime, NaiveDate, Utc};
use indicatif::ProgressBar;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A parsed row with its position, for errors found after reading.
pub(super) struct Located<T> {
    pub(super) row: u64,
    pub(super) line: u64,
    pub(super) item: T,
}

/// Reads a whole file on a blocking thread, parsing each row with `parse_row`.
pub(super) async fn read_rows<T, F>(
    path: &Path,
    spec: &'static ColumnSpec,
    progress: &ProgressBar,
    parse_row: F,
) -> Result<(String, Vec<Located<T>>, u64), ImportError>
where
    T: Send + 'static,
    F: Fn(&Row<'_>, &Header, &mut Errors) -> Option<T> + Send + 'static,
{
    let name = path.display().to_string();
    let path: PathBuf = path.to_path_buf();
    let bar = progress.clone();
    tokio::task::spawn_blocking(move || {
        let file = path.display().to_string();
        let mut errors = Errors::new(&file);
        let mut rows = Vec::new();
        let mut count = 0;
        read_file(&path, &file, spec, &bar, &mut errors, |row, errors| {
            count = row.number;
            if let Some(item) = parse_row(row, row.header(), errors) {
                rows.push(Located { row: row.number, line: row.line, item });
            }
        })?;
        errors.into_result()?;
        Ok((file, rows, count))
    })
    .await
    .map_err(|error| ImportError::Read { file: name, message: error.to_string() })?
}

/// Column index by name (the header was checked: required columns are present).
fn column(header: &Header, name: &str) -> usize {
    header.index(name).unwrap_or(usize::MAX)
}

/// Looks up the accounts the rows name; every unknown one is an error on its row.
async fn known_accounts<T>(
    db: &impl ConnectionTrait,
    file: &str,
    rows: &[Located<T>],
    account_of: impl Fn(&T) -> &str,
) -> Result<HashMap<String, AccountRef>, ImportError> {
    let mut ids: Vec<&str> = rows.iter().map(|row| account_of(&row.item)).collect();
    ids.sort_unstable();
    ids.dedup();
    let known = store::account_refs(db, &ids).await?;
    let mut errors = Errors::new(file);
    for row in rows {
        let id = account_of(&row.item);
        if !known.contains_key(id) {
            errors.push(unknown_account(file, row, id));
        }
    }
    errors.into_result()?;
    Ok(known)
}

fn unknown_account<T>(file: &str, row: &Located<T>, id: &str) -> RowError {
    RowError {
        file: file.to_string(),
        row: Some(row.row),
        line: row.line,
        column: Some("account_id".into()),
        value: Some(id.to_string()),
        message: "is not a known account (import it with accounts.csv first)".into(),
    }
}

static PAYMENTS: ColumnSpec =
    ColumnSpec { required: &["account_id", "amount", "paid_at", "reference"], optional: &[], dynamic: &[] };

/// Imports `payments.csv`. A reference already stored (or repeated in the file) with the same
/// account, amount and time is left as it is; with different ones it is an error. New payments
/// lower their account's `amount_due` and `balance`, never below zero, and an account paid in
/// full gets its open tasks cancelled (see `apply::apply_payments`, shared with the HTTP API).
pub(super) async fn import_payments(
    db: &DatabaseConnection,
    path: &Path,
    progress: &ProgressBar,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    let (file, rows, count) = read_rows(path, &PAYMENTS, progress, |row, header, errors| {
        let account_id = row.parse(column(header, "account_id"), errors, parse_required);
        let amount = row.parse(column(header, "amount"), errors, parse_positive_money);
        let paid_at = row.parse(column(header, "paid_at"), errors, parse_instant);
        let reference = row.parse(column(header, "reference"), errors, parse_required);
        Some(NewPayment { account_id: account_id?, amount: amount?, paid_at: paid_at?, reference: reference? })
    })
    .await?;

    progress.set_message("writing payments");
    let payments: Vec<(RowAt, NewPayment)> =
        rows.into_iter().map(|row| (RowAt { row: row.row, line: row.line }, row.item)).collect();
    let txn = begin(db).await?;
    let applied = match super::apply::apply_payments(&txn, &payments, now, "import").await? {
        Ok(applied) => applied,
        Err(found) => {
            let mut errors = Errors::new(&file);
            for error in found {
                errors.push(row_error(&file, error));
            }
            return Err(errors.into_error());
        }
    };
    txn.commit().await?;
    let inserted = applied.inserted;
    Ok(ImportReport {
        kind: ImportKind::Payments,
        rows: count,
        inserted,
        updated: 0,
        unchanged: count - inserted,
        ..ImportReport::empty()
    })
}

static ATTEMPTS: ColumnSpec =
    ColumnSpec { required: &["account_id", "channel", "phone", "at", "outcome"], optional: &[], dynamic: &[] };

/// A parsed `attempts.csv` row.
struct AttemptRow {
    account_id: String,
    channel: Channel,
    address: Option<String>,
    at: DateTime<Utc>,
    outcome: Outcome,
}

/// Imports `attempts.csv`. An attempt already stored (same account, channel and instant) is
/// left as it is. A `wrong_number` outcome on a phone marks that contact point.
pub(super) async fn import_attempts(
    db: &DatabaseConnection,
    path: &Path,
    progress: &ProgressBar,
) -> Result<ImportReport, ImportError> {
    let (file, rows, count) = read_rows(path, &ATTEMPTS, progress, |row, header, errors| {
        let account_id = row.parse(column(header, "account_id"), errors, parse_required);
        let channel = row.parse(column(header, "channel"), errors, |value| {
            value
                .parse::<Channel>()
                .map_err(|error| format!("is not a known channel (expected one of: {})", error.expected))
        });
        let at = row.parse(column(header, "at"), errors, parse_instant);
        let outcome = row.parse(column(header, "outcome"), errors, |value| {
            value
                .parse::<Outcome>()
                .map_err(|error| format!("is not a known outcome (expected one of: {})", error.expected))
        });
        let channel = channel?;
        let address = row.parse(column(header, "phone"), errors, |value| {
            if value.is_empty() {
                Ok(None)
            } else if channel == Channel::Email {
                parse_email(value).map(Some).map_err(|message| reason(value, message))
            } else {
                parse_phone(value).map(Some).map_err(|message| reason(value, message))
            }
        });
        Some(AttemptRow { account_id: account_id?, channel, address: address?, at: at?, outcome: outcome? })
    })
    .await?;

    progress.set_message("writing attempts");
    let txn = begin(db).await?;
    let accounts = known_accounts(&txn, &file, &rows, |attempt| attempt.account_id.as_str()).await?;
    let attempts: Vec<NewAttempt> = rows
        .iter()
        .filter_map(|row| {
            let attempt = &row.item;
            Some(NewAttempt {
                account_id: attempt.account_id.clone(),
                borrower_id: accounts.get(&attempt.account_id)?.borrower_id.clone(),
                task_id: None,
                channel: attempt.channel,
                address: attempt.address.clone(),
                at: attempt.at,
                outcome: attempt.outcome,
                note: None,
            })
        })
        .collect();
    let inserted = store::insert_attempts(&txn, &attempts).await?;
    let wrong: Vec<(&str, &str)> = attempts
        .iter()
        .filter(|attempt| attempt.outcome == Outcome::WrongNumber && attempt.channel != Channel::Email)
        .filter_map(|attempt| Some((attempt.borrower_id.as_str(), attempt.address.as_deref()?)))
        .collect();
    store::mark_wrong_numbers(&txn, &wrong).await?;
    txn.commit().await?;
    Ok(ImportReport {
        kind: ImportKind::Attempts,
        rows: count,
        inserted,
        updated: 0,
        unchanged: count - inserted,
        ..ImportReport::empty()
    })
}

static PROMISES: ColumnSpec =
    ColumnSpec { required: &["account_id", "amount", "due_on", "made_at"], optional: &[], dynamic: &[] };

/// Imports `promises.csv` as open promises. A promise already stored (same account and time
/// made) is left as it is.
pub(super) async fn import_promises(
    db: &DatabaseConnection,
    path: &Path,
    progress: &ProgressBar,
) -> Result<ImportReport, ImportError> {
    let (file, rows, count) = read_rows(path, &PROMISES, progress, |row, header, errors| {
        let account_id = row.parse(column(header, "account_id"), errors, parse_required);
        let amount = row.parse(column(header, "amount"), errors, parse_positive_money);
        let due_on: Option<NaiveDate> = row.parse(column(header, "due_on"), errors, parse_date);
        let made_at = row.parse(column(header, "made_at"), errors, parse_instant);
        Some(NewPromise { account_id: account_id?, amount: amount?, due_on: due_on?, made_at: made_at? })
    })
    .await?;

    progress.set_message("writing promises");
    let txn = begin(db).await?;
    known_accounts(&txn, &file, &rows, |promise| promise.account_id.as_str()).await?;
    let promises: Vec<NewPromise> = rows.into_iter().map(|row| row.item).collect();
    let inserted = store::insert_promises(&txn, &promises).await?;
    txn.commit().await?;
    Ok(ImportReport {
        kind: ImportKind::Promises,
        rows: count,
        inserted,
        updated: 0,
        unchanged: count - inserted,
        ..ImportReport::empty()
    })
}
