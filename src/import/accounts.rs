//! `accounts.csv`: accounts, their borrowers and the borrowers' contact points.

use super::csvfile::{
    ColumnSpec, Errors, Header, Row, parse_amount, parse_bool, parse_date, parse_required, read_file, reason,
};
use super::{ImportError, ImportKind, ImportReport, begin};
use crate::domain::{
    Account, Borrower, Channel, ContactKind, ContactPoint, Flags, parse_email, parse_phone, parse_timezone,
};
use crate::store;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use indicatif::ProgressBar;
use sea_orm::DatabaseConnection;
use std::collections::HashMap;
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

const SPEC: ColumnSpec = ColumnSpec { required: ACCOUNT_COLUMNS, optional: &["opt_outs"], dynamic: true };

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
            scores: header.with_prefix("score."),
            attrs: header.with_prefix("attr."),
        }
    }
}

/// An opt-out as written, kept until the borrower's contact points are all known.
struct OptOut {
    channel: Channel,
    address: String,
    item: String,
    row: u64,
    line: u64,
}

/// A borrower as the rows so far describe it.
struct BorrowerDraft {
    borrower: Borrower,
    opt_outs: Vec<OptOut>,
}

/// Everything a clean file says.
#[derive(Default)]
struct Book {
    rows: u64,
    accounts: Vec<Account>,
    account_rows: HashMap<String, u64>,
    borrowers: Vec<BorrowerDraft>,
    borrower_index: HashMap<String, usize>,
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
    store::upsert_borrowers(&txn, &borrowers, now).await?;
    let counts = store::upsert_accounts(&txn, &accounts, now).await?;
    txn.commit().await?;
    Ok(ImportReport {
        kind: ImportKind::Accounts,
        rows,
        inserted: counts.inserted,
        updated: counts.updated,
        unchanged: counts.unchanged,
    })
}

/// Reads and checks the whole file: accounts in file order, borrowers in order of first
/// appearance, and the number of data rows.
fn parse(path: &Path, progress: &ProgressBar) -> Result<(Vec<Account>, Vec<Borrower>, u64), ImportError> {
    let file = path.display().to_string();
    let mut errors = Errors::new(&file);
    let mut book = Book::default();
    let mut columns: Option<Columns> = None;
    read_file(path, &file, &SPEC, progress, &mut errors, |row, errors| {
        book.rows = row.number;
        let columns = columns.get_or_insert_with(|| Columns::of(row.header()));
        parse_row(row, columns, errors, &mut book);
    })?;
    let borrowers = finish_borrowers(&file, book.borrowers, &mut errors);
    errors.into_result()?;
    Ok((book.accounts, borrowers, book.rows))
}

fn parse_row(row: &Row<'_>, columns: &Columns, errors: &mut Errors, book: &mut Book) {
    let account_id = row.parse(columns.account_id, errors, parse_required);
    let borrower_id = row.parse(columns.borrower_id, errors, parse_required);
    let name = row.field(columns.name).to_string();
    let phones = parse_phones(row, columns.phones, errors);
    let email = row.parse(columns.email, errors, |value| {
        if value.is_empty() { Ok(None) } else { parse_email(value).map(Some).map_err(|message| reason(value, message)) }
    });
    let timezones = parse_timezones(row, columns.timezones, errors);
    let product = row.parse(columns.product, errors, parse_required);
    let currency = row.parse(columns.currency, errors, parse_currency);
    let amount_due = row.parse(columns.amount_due, errors, parse_amount);
    let balance = row.parse(columns.balance, errors, parse_amount);
    let due_date = row.parse(columns.due_date, errors, parse_date);
    let tags = parse_tags(row.field(columns.tags));
    let flags = parse_flags(row, columns.flags, errors);
    let consent_robot = row.parse(columns.consent_robot, errors, parse_bool);
    let scores = parse_scores(row, &columns.scores, errors);
    let attrs: Vec<(String, String)> = columns
        .attrs
        .iter()
        .filter(|(index, _)| !row.field(*index).is_empty())
        .map(|(index, name)| (name.clone(), row.field(*index).to_string()))
        .collect();
    let opt_outs = match columns.opt_outs {
        Some(index) => parse_opt_outs(row, index, errors),
        None => Some(Vec::new()),
    };

    let (
        Some(account_id),
        Some(borrower_id),
        Some(phones),
        Some(email),
        Some(timezones),
        Some(product),
        Some(currency),
        Some(amount_due),
        Some(balance),
        Some(due_date),
        Some(flags),
        Some(consent_robot),
        Some(scores),
        Some(opt_outs),
    ) = (
        account_id,
        borrower_id,
        phones,
        email,
        timezones,
        product,
        currency,
        amount_due,
        balance,
        due_date,
        flags,
        consent_robot,
        scores,
        opt_outs,
    )
    else {
        return;
    };

    if let Some(first) = book.account_rows.get(&account_id) {
        errors.push(row.error(
            columns.account_id,
            &account_id,
            format!("repeats row {first}; an account appears once per file"),
        ));
        return;
    }
    book.account_rows.insert(account_id.clone(), row.number);

    // Borrower fields: the last row wins; contact points: the union, in order of appearance.
    let index = *book.borrower_index.entry(borrower_id.clone()).or_insert_with(|| {
        book.borrowers.push(BorrowerDraft {
            borrower: Borrower {
                id: borrower_id.clone(),
                name: String::new(),
                timezones: Vec::new(),
                contact_points: Vec::new(),
                consent_robot: false,
            },
            opt_outs: Vec::new(),
        });
        book.borrowers.len() - 1
    });
    let draft = &mut book.borrowers[index];
    draft.borrower.name = name;
    draft.borrower.timezones = timezones;
    draft.borrower.consent_robot = consent_robot;
    let points = &mut draft.borrower.contact_points;
    let addresses = phones.into_iter().map(|phone| (ContactKind::Phone, phone));
    for (kind, address) in addresses.chain(email.map(|email| (ContactKind::Email, email))) {
        if !points.iter().any(|point| point.kind == kind && point.address == address) {
            points.push(ContactPoint { kind, address, opted_out: Vec::new(), wrong_number: false });
        }
    }
    draft.opt_outs.extend(opt_outs);

    book.accounts.push(Account {
        id: account_id,
        borrower_id,
        product,
        currency,
        amount_due,
        balance,
        due_date,
        tags,
        flags,
        scores,
        attrs,
        broken_promises: 0,
    });
}

/// Applies the opt-outs to the contact points they name; an opt-out naming an address the
/// borrower does not have in the file is an error.
fn finish_borrowers(file: &str, drafts: Vec<BorrowerDraft>, errors: &mut Errors) -> Vec<Borrower> {
    let mut borrowers = Vec::with_capacity(drafts.len());
    for mut draft in drafts {
        for opt_out in draft.opt_outs {
            let kind = if opt_out.channel == Channel::Email { ContactKind::Email } else { ContactKind::Phone };
            let point = draft
                .borrower
                .contact_points
                .iter_mut()
                .find(|point| point.kind == kind && point.address == opt_out.address);
            match point {
                Some(point) => {
                    if !point.opted_out.contains(&opt_out.channel) {
                        point.opted_out.push(opt_out.channel);
                    }
                }
                None => errors.push(super::RowError {
                    file: file.to_string(),
                    row: Some(opt_out.row),
                    line: opt_out.line,
                    column: Some("opt_outs".into()),
                    value: Some(opt_out.item),
                    message: format!(
                        "names {} {}, which is not among borrower {}'s {} in this file",
                        if kind == ContactKind::Email { "e-mail address" } else { "phone number" },
                        opt_out.address,
                        draft.borrower.id,
                        if kind == ContactKind::Email { "e-mail addresses" } else { "phones" },
                    ),
                }),
            }
        }
        borrowers.push(draft.borrower);
    }
    borrowers
}

/// The items of a `;`-separated cell, trimmed, without empty ones.
fn items(value: &str) -> impl Iterator<Item = &str> {
    value.split(';').map(str::trim).filter(|item| !item.is_empty())
}

fn parse_phones(row: &Row<'_>, index: usize, errors: &mut Errors) -> Option<Vec<String>> {
    let mut phones: Vec<String> = Vec::new();
    let mut good = true;
    for item in items(row.field(index)) {
        match parse_phone(item) {
            Ok(phone) if !phones.contains(&phone) => phones.push(phone),
            Ok(_) => {}
            Err(message) => {
                errors.push(row.error(index, item, reason(item, message)));
                good = false;
            }
        }
    }
    good.then_some(phones)
}

fn parse_timezones(row: &Row<'_>, index: usize, errors: &mut Errors) -> Option<Vec<Tz>> {
    let value = row.field(index);
    let mut zones: Vec<Tz> = Vec::new();
    let mut good = true;
    for item in items(value) {
        match parse_timezone(item) {
            Ok(zone) if !zones.contains(&zone) => zones.push(zone),
            Ok(_) => {}
            Err(message) => {
                errors.push(row.error(index, item, reason(item, message)));
                good = false;
            }
        }
    }
    if good && zones.is_empty() {
        errors.push(row.error(index, value, "is empty; at least one IANA time zone is required"));
        return None;
    }
    good.then_some(zones)
}

fn parse_currency(value: &str) -> Result<String, String> {
    if value.len() == 3 && value.bytes().all(|byte| byte.is_ascii_uppercase()) {
        Ok(value.to_string())
    } else {
        Err("is not an ISO 4217 currency code (three capital letters, like CNY)".into())
    }
}

fn parse_tags(value: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for item in items(value) {
        if !tags.iter().any(|tag| tag == item) {
            tags.push(item.to_string());
        }
    }
    tags
}

fn parse_flags(row: &Row<'_>, index: usize, errors: &mut Errors) -> Option<Flags> {
    match Flags::parse_list(row.field(index)) {
        Ok(flags) => Some(flags),
        Err(error) => {
            let message = format!("is not a known flag (expected one of: {})", error.expected);
            errors.push(row.error(index, &error.value, message));
            None
        }
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

fn parse_opt_outs(row: &Row<'_>, index: usize, errors: &mut Errors) -> Option<Vec<OptOut>> {
    let mut opt_outs = Vec::new();
    let mut good = true;
    for item in items(row.field(index)) {
        let parsed = match item.split_once(':') {
            None => Err("is not `channel:address` (like sms:+8613800138000)".to_string()),
            Some((channel, address)) => match channel.trim().parse::<Channel>() {
                Err(error) => Err(format!("does not start with a known channel (expected one of: {})", error.expected)),
                Ok(channel) => {
                    let address = address.trim();
                    let checked = if channel == Channel::Email { parse_email(address) } else { parse_phone(address) };
                    checked.map(|address| (channel, address)).map_err(|message| format!("has a bad address: {message}"))
                }
            },
        };
        match parsed {
            Ok((channel, address)) => {
                opt_outs.push(OptOut { channel, address, item: item.to_string(), row: row.number, line: row.line })
            }
            Err(message) => {
                errors.push(row.error(index, item, message));
                good = false;
            }
        }
    }
    good.then_some(opt_outs)
}
