//! What the plan's page reads could cost on SQLite (docs/PERFORMANCE.md, step 10): the
//! accounts, borrowers and contact points of a book, 10,000 accounts a page in id order, read
//! by a plain rusqlite program on one thread in two ways, in turns. `json`: each read packed by
//! SQLite into one JSON text and decoded into typed rows, as `store::book` reads a page; `rows`:
//! the same statements unpacked, every value read from its column. Nothing is planned.
//! `cargo run --release --example raw_page_read -- BOOK.db [ROUNDS]` prints each pass's
//! seconds.

use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;
use std::borrow::Cow;
use std::time::Instant;

/// Accounts a page.
const PAGE: usize = 10_000;

/// The columns `store::book` reads of an account.
const ACCOUNT_FIELDS: &str = "id, borrower_id, product, currency, CAST(amount_due AS TEXT), CAST(balance AS TEXT), \
    due_date, tags, flags, engine_flags, scores, attrs, broken_promises, stage, funders, hold_until, engine_tags";

/// The accounts with their stored stages, as `store::book` reads them.
const ACCOUNTS: &str = "accounts LEFT JOIN account_stages ON account_stages.account_id = accounts.id";

/// The page's borrowers, as a sub-query of one parameter (the page's `after`).
const PAGE_BORROWERS: &str = "SELECT borrower_id FROM accounts WHERE id > ?1 ORDER BY id LIMIT 10000";

/// One packed account, decoded as `store::book` decodes it (borrowed where it can).
#[derive(Deserialize)]
#[allow(dead_code)]
struct AccountRow<'a>(
    String,
    String,
    String,
    String,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    #[serde(borrow)] Cow<'a, str>,
);

/// A page's borrowers and contact points (`id, name, timezones, consent_robot`; `id,
/// borrower_id, kind, address, opted_out, wrong_number, retired`).
type BorrowerRow = (String, String, String, i64);
type PointRow = (i64, String, String, String, String, i64, i64);

fn borrowers_sql(fields: &str) -> String {
    format!("SELECT {fields} FROM borrowers WHERE id IN ({PAGE_BORROWERS}) ORDER BY id LIMIT 40000")
}

fn points_sql(fields: &str) -> String {
    format!("SELECT {fields} FROM contact_points WHERE borrower_id IN ({PAGE_BORROWERS}) LIMIT 40000")
}

const BORROWER_FIELDS: &str = "id, name, timezones, consent_robot";
const POINT_FIELDS: &str = "id, borrower_id, kind, address, opted_out, wrong_number, retired_at IS NOT NULL";

/// One page read as JSON texts, each statement's rows packed as `store::book` packs them (the
/// fields over the page's rows); returns the page's accounts, its last id and the rows read.
fn json_page(db: &Connection, after: &str) -> anyhow::Result<(usize, Option<String>, usize)> {
    let packed = |fields: &str, page: String| -> anyhow::Result<String> {
        let sql = format!("SELECT (SELECT json_group_array(json_array({fields})) FROM ({page}) AS page)");
        Ok(db.prepare_cached(&sql)?.query_row([after], |row| row.get(0))?)
    };
    let accounts = packed(ACCOUNT_FIELDS, format!("SELECT * FROM {ACCOUNTS} WHERE id > ?1 ORDER BY id LIMIT {PAGE}"))?;
    let accounts: Vec<AccountRow<'_>> = serde_json::from_str(&accounts)?;
    let borrowers: Vec<BorrowerRow> = serde_json::from_str(&packed(BORROWER_FIELDS, borrowers_sql("*"))?)?;
    let points: Vec<PointRow> = serde_json::from_str(&packed(POINT_FIELDS, points_sql("*"))?)?;
    let last = accounts.last().map(|row| row.0.clone());
    Ok((accounts.len(), last, accounts.len() + borrowers.len() + points.len()))
}

/// The same page read row by row.
fn row_page(db: &Connection, after: &str) -> anyhow::Result<(usize, Option<String>, usize)> {
    let mut accounts = 0;
    let mut last = None;
    let sql = format!("SELECT {ACCOUNT_FIELDS} FROM {ACCOUNTS} WHERE id > ?1 ORDER BY id LIMIT {PAGE}");
    let mut statement = db.prepare_cached(&sql)?;
    let mut rows = statement.query([after])?;
    while let Some(row) = rows.next()? {
        let mut texts: Vec<Option<String>> = Vec::with_capacity(17);
        for column in 0..17 {
            texts.push(if column == 12 { Some(row.get::<_, i64>(column)?.to_string()) } else { row.get(column)? });
        }
        last = texts.swap_remove(0);
        accounts += 1;
    }
    let mut read = accounts;
    let mut statement = db.prepare_cached(&borrowers_sql(BORROWER_FIELDS))?;
    let mut rows = statement.query([after])?;
    while let Some(row) = rows.next()? {
        let _: BorrowerRow = (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        read += 1;
    }
    let mut statement = db.prepare_cached(&points_sql(POINT_FIELDS))?;
    let mut rows = statement.query([after])?;
    while let Some(row) = rows.next()? {
        let _: PointRow = (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?);
        read += 1;
    }
    Ok((accounts, last, read))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or_else(|| anyhow::anyhow!("usage: raw_page_read BOOK.db [ROUNDS]"))?;
    let rounds: usize = args.next().map_or(Ok(2), |text| text.parse())?;
    let db = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    // The page cache `arrears` gives each connection.
    db.pragma_update(None, "cache_size", -65536)?;
    type Read = fn(&Connection, &str) -> anyhow::Result<(usize, Option<String>, usize)>;
    for _ in 0..rounds {
        for (name, read) in [("JSON pages", json_page as Read), ("row by row", row_page as Read)] {
            let started = Instant::now();
            let (mut after, mut total) = (String::new(), 0);
            loop {
                let (accounts, last, read) = read(&db, &after)?;
                total += read;
                match last {
                    Some(last) if accounts == PAGE => after = last,
                    _ => break,
                }
            }
            println!("{name}: {total} rows in {:.2} s", started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}
