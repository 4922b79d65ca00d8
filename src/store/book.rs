//! Loading the loan book: accounts, borrowers and contact points into domain types.

use super::StoreError;
use super::sql::{
    PAGE_ROWS, POINT_PAGE_ROWS, Sql, is_postgres, json_pages, page_key, push_after_id, push_in_list, push_json_page,
};
use crate::domain::{
    Account, Borrower, Channel, ContactKind, ContactPoint, Flags, FundingShares, Portfolio, parse_timezone,
};
use chrono::NaiveDate;
use chrono_tz::Tz;
use rustc_hash::FxHashMap as HashMap;
use sea_orm::ConnectionTrait;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// Loads the whole book: every account (ordered by id, byte-wise) and the borrowers of those
/// accounts with their contact points, page after page (see [`load_book_page`]). Planning does
/// not use this (it works a page at a time); explain, tests and tools do.
pub async fn load_portfolio(db: &impl ConnectionTrait) -> Result<Portfolio, StoreError> {
    let mut book = Portfolio::default();
    let mut after = String::new();
    loop {
        let page = load_book_page(db, &after, PAGE_ROWS).await?;
        book.accounts.extend(page.portfolio.accounts);
        book.borrowers.extend(page.portfolio.borrowers);
        match page.next {
            Some(next) => after = next,
            None => break,
        }
    }
    Ok(book)
}

/// One page of the loan book.
#[derive(Debug, Default)]
pub struct BookPage {
    /// The page's accounts, sorted by id (byte-wise), and all of their borrowers with their
    /// contact points.
    pub portfolio: Portfolio,
    /// The stage stored on each account (the previous plan's), in `portfolio.accounts` order.
    pub stored_stages: Vec<Option<String>>,
    /// The key to pass as `after` for the next page; `None` after the last page.
    pub next: Option<String>,
    /// The key this page was loaded after (`""`: the first page, or not a page of the book):
    /// with `next`, the page's range of ids (see `HistoryScope::Page`).
    pub after: String,
}

/// Loads up to `limit` accounts whose id comes after `after` (`""` for the first page), with
/// their stored stages, their borrowers and the borrowers' contact points: four queries, each
/// answered as one JSON text built by the database (see [`json_page`]). Pages follow the
/// database's order of ids, which is byte order on SQLite and on a PostgreSQL database with the
/// `C` collation; each page is sorted byte-wise.
pub async fn load_book_page(db: &impl ConnectionTrait, after: &str, limit: u64) -> Result<BookPage, StoreError> {
    load_book_range(db, after, None, limit).await
}

/// [`load_book_page`] within a range of the book: only accounts up to and including `through`
/// (a shard's last id; `None`: to the book's end). The page after the range's last is empty.
pub async fn load_book_range(
    db: &impl ConnectionTrait,
    after: &str,
    through: Option<&str>,
    limit: u64,
) -> Result<BookPage, StoreError> {
    let page = load_scope(db, Scope::After { after, through, limit }).await?;
    Ok(BookPage { after: after.to_string(), ..page })
}

/// One account with its stored stage, its borrower and the borrower's contact points; `None`
/// when there is no such account. A borrower missing from the book leaves `borrowers` empty.
pub async fn load_account(db: &impl ConnectionTrait, account_id: &str) -> Result<Option<BookPage>, StoreError> {
    let page = load_scope(db, Scope::Account(account_id)).await?;
    Ok(if page.portfolio.accounts.is_empty() { None } else { Some(page) })
}

/// The accounts among `ids` (unknown ids are absent) with their stored stages, their
/// borrowers and the borrowers' contact points: the lease and release re-checks and recorded
/// attempts read the latest state through this, with the same decoding as the planner's pages.
pub async fn load_accounts_by_id(db: &impl ConnectionTrait, ids: &[&str]) -> Result<Portfolio, StoreError> {
    let mut book = Portfolio::default();
    // Each id is bound twice on SQLite (the accounts and the borrowers' sub-query).
    for chunk in ids.chunks(1_000) {
        let page = load_scope(db, Scope::Accounts(chunk)).await?;
        book.accounts.extend(page.portfolio.accounts);
        book.borrowers.extend(page.portfolio.borrowers);
    }
    Ok(book)
}

/// Which accounts to load.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// The first `limit` accounts after the key `after`, up to and including `through`.
    After { after: &'a str, through: Option<&'a str>, limit: u64 },
    /// One account.
    Account(&'a str),
    /// The accounts among these ids.
    Accounts(&'a [&'a str]),
    /// The account of the task a statement's `claimed` CTE just claimed.
    Claimed,
}

impl Scope<'_> {
    /// The filter on `accounts` (without `WHERE`).
    fn accounts(self, sql: &mut Sql) {
        match self {
            Scope::After { after, through, .. } => {
                sql.push("id > ");
                sql.bind(after.to_string());
                if let Some(through) = through {
                    sql.push(" AND id <= ");
                    sql.bind(through.to_string());
                }
            }
            Scope::Account(id) => {
                sql.push("id = ");
                sql.bind(id.to_string());
            }
            Scope::Accounts(ids) => push_in_list(sql, "id", ids),
            Scope::Claimed => {
                sql.push("id IN (SELECT account_id FROM claimed)");
            }
        }
    }

    fn limit(self) -> u64 {
        match self {
            Scope::After { limit, .. } => limit,
            Scope::Account(_) | Scope::Claimed => 1,
            Scope::Accounts(ids) => ids.len().max(1) as u64,
        }
    }

    /// `<column> IN (the borrowers of the scope's accounts)`. PostgreSQL gets `= ANY(ARRAY(...))`:
    /// it runs the sub-query once and probes the column's index with the borrowers, where as
    /// `IN (SELECT ...)` it read the whole table for a page (124 ms for the borrowers and 212 ms
    /// for the contact points of a page of 10,000 accounts, against ~20 ms).
    fn borrowers(self, sql: &mut Sql, column: &str) {
        let postgres = is_postgres(sql.backend());
        sql.push(column);
        sql.push(if postgres { " = ANY(ARRAY(" } else { " IN (" });
        sql.push("SELECT borrower_id FROM accounts WHERE ");
        self.accounts(sql);
        sql.push(" ORDER BY id LIMIT ");
        sql.bind(i64::try_from(self.limit()).unwrap_or(i64::MAX));
        sql.push(if postgres { "))" } else { ")" });
    }
}

async fn load_scope(db: &impl ConnectionTrait, scope: Scope<'_>) -> Result<BookPage, StoreError> {
    let (mut rows, next) = load_accounts(db, scope).await?;
    rows.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let (accounts, stored_stages): (Vec<Account>, Vec<Option<String>>) = rows.into_iter().unzip();
    let mut borrowers = HashMap::default();
    if !accounts.is_empty() {
        borrowers = load_borrowers(db, scope).await?;
        attach_contact_points(db, scope, &mut borrowers).await?;
    }
    Ok(BookPage { portfolio: Portfolio { accounts, borrowers }, stored_stages, next, after: String::new() })
}

/// One packed `accounts` row.
#[derive(Deserialize)]
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
    Pairs<f64>,
    Pairs<String>,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    #[serde(borrow)] Cow<'a, str>,
);

/// Reads a packed page.
pub(crate) fn unpack<'a, T: Deserialize<'a>>(text: &'a str, table: &'static str) -> Result<Vec<T>, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
        table,
        id: "(page)".into(),
        message: error.to_string(),
    })
}

/// A stored amount of money read as text: exact on both backends (SQLite turns its REAL into
/// the shortest text that reads back the same, exact for up to 15 significant digits).
pub(crate) fn money_text(text: &str) -> Option<crate::domain::Money> {
    use std::str::FromStr;
    let money = crate::domain::Money::from_str(text).or_else(|_| crate::domain::Money::from_scientific(text)).ok()?;
    Some(money.round_dp(4).normalize())
}

/// The text of a money column in a packed row.
pub(crate) fn money_field(backend: sea_orm::DbBackend, column: &str) -> String {
    if is_postgres(backend) { format!("{column}::text") } else { format!("CAST({column} AS TEXT)") }
}

/// Pushes the page of the scope's accounts (see [`sql::push_json_page`]).
pub(crate) fn push_accounts(sql: &mut Sql, scope: Scope<'_>) {
    let backend = sql.backend();
    // `scores` and `attrs` (JSON texts) travel as strings, parsed once by `Pairs`: SQLite's
    // `json()` parsed and rewrote each of them, ~5 % of a plan's reading.
    let fields = format!(
        "id, borrower_id, product, currency, {}, {}, due_date, tags, flags, engine_flags, scores, attrs, \
         broken_promises, stage, funders, hold_until, engine_tags",
        money_field(backend, "amount_due"),
        money_field(backend, "balance"),
    );
    let columns = "id, borrower_id, product, currency, amount_due, balance, due_date, tags, flags, \
                   engine_flags, scores, attrs, broken_promises, stage, funders, hold_until, engine_tags";
    push_json_page(sql, columns, &fields, ACCOUNTS_WITH_STAGES, |sql| scope.accounts(sql), Some("id"), scope.limit());
}

/// `accounts` with each account's stored stage (`stage`, null when in none): the stage lives in
/// `account_stages`, so that a plan's stage changes write narrow rows instead of rewriting the
/// wide ones of `accounts` (see the migration `m20261208_000020_account_stages`).
pub(crate) const ACCOUNTS_WITH_STAGES: &str =
    "accounts LEFT JOIN account_stages ON account_stages.account_id = accounts.id";

/// The scope's accounts with their stored stages, and the key to continue after (`None` when
/// the page was not full).
async fn load_accounts(db: &impl ConnectionTrait, scope: Scope<'_>) -> Result<AccountsPage, StoreError> {
    let page = single_page(db, |sql| push_accounts(sql, scope)).await?;
    decode_accounts(&page, scope, db.get_database_backend())
}

/// Accounts with their stored stages, and the key to continue after (`None` when the page was
/// not full).
pub(crate) type AccountsPage = (Vec<(Account, Option<String>)>, Option<String>);

/// Decodes a page of [`push_accounts`].
pub(crate) fn decode_accounts(
    page: &str,
    scope: Scope<'_>,
    backend: sea_orm::DbBackend,
) -> Result<AccountsPage, StoreError> {
    let rows: Vec<AccountRow<'_>> = unpack(page, "accounts")?;
    let full = matches!(scope, Scope::After { .. }) && rows.len() as u64 >= scope.limit();
    let next = if full { page_key(backend, rows.iter().map(|row| &row.0)).cloned() } else { None };
    let mut accounts = Vec::with_capacity(rows.len());
    for AccountRow(
        id,
        borrower_id,
        product,
        currency,
        amount_due,
        balance,
        due_date,
        tags,
        flags,
        engine_flags,
        scores,
        attrs,
        broken,
        stage,
        funders,
        hold_until,
        engine_tags,
    ) in rows
    {
        let corrupt = |message: String| StoreError::Corrupt { table: "accounts", id: id.clone(), message };
        let amount_due = money_text(&amount_due).ok_or_else(|| corrupt(format!("amount_due `{amount_due}`")))?;
        let balance = money_text(&balance).ok_or_else(|| corrupt(format!("balance `{balance}`")))?;
        let due_date =
            NaiveDate::parse_from_str(&due_date, "%Y-%m-%d").map_err(|_| corrupt(format!("due_date `{due_date}`")))?;
        // The effective flags: the servicing system's and the engine's (see `docs/import.md`).
        let flags = Flags::parse_list(&flags).map_err(|error| corrupt(error.to_string()))?;
        let engine_flags = Flags::parse_list(&engine_flags).map_err(|error| corrupt(error.to_string()))?;
        let flags = flags.union(engine_flags);
        let funders = funders
            .map(|text| FundingShares::parse(&text).map_err(|message| corrupt(format!("funders: {message}"))))
            .transpose()?;
        let account = Account {
            borrower_id,
            product,
            currency,
            amount_due,
            balance,
            due_date,
            // The effective tags: the servicing system's, then the engine's (reactions).
            tags: split_list(&tags)
                .chain(split_list(&engine_tags).filter(|tag| !split_list(&tags).any(|own| own == *tag)))
                .map(str::to_string)
                .collect(),
            flags,
            scores: scores.0,
            attrs: attrs.0,
            broken_promises: u32::try_from(broken).unwrap_or(0),
            funders,
            hold_until: hold_until
                .map(|text| NaiveDate::parse_from_str(&text, "%Y-%m-%d"))
                .transpose()
                .map_err(|_| corrupt("hold_until".into()))?,
            id,
        };
        accounts.push((account, stage));
    }
    Ok((accounts, next))
}

/// Runs one [`push_json_page`] sub-query as a statement of its own.
async fn single_page(db: &impl ConnectionTrait, page: impl FnOnce(&mut Sql) + Send) -> Result<String, StoreError> {
    let mut pages = json_pages(db, vec![Box::new(page)]).await?;
    Ok(pages.pop().unwrap_or_else(|| "[]".into()))
}

/// One packed `borrowers` row.
#[derive(Deserialize)]
struct BorrowerRow<'a>(String, String, #[serde(borrow)] Cow<'a, str>, i64);

/// Pushes the page of the scope's borrowers after id `after`.
pub(crate) fn push_borrowers(sql: &mut Sql, scope: Scope<'_>, after: String) {
    push_json_page(
        sql,
        "id, name, timezones, consent_robot",
        "id, name, timezones, CASE WHEN consent_robot THEN 1 ELSE 0 END",
        "borrowers",
        |sql| {
            sql.push("id > ");
            sql.bind(after);
            sql.push(" AND ");
            scope.borrowers(sql, "id");
        },
        Some("id"),
        PAGE_ROWS,
    );
}

/// The borrowers of the scope's accounts.
async fn load_borrowers(db: &impl ConnectionTrait, scope: Scope<'_>) -> Result<HashMap<String, Borrower>, StoreError> {
    let backend = db.get_database_backend();
    let mut borrowers = HashMap::default();
    let mut zones: HashMap<String, Vec<Tz>> = HashMap::default();
    let mut last = String::new();
    loop {
        let after = std::mem::take(&mut last);
        let page = single_page(db, |sql| push_borrowers(sql, scope, after)).await?;
        let (count, key) = decode_borrowers(&page, backend, &mut zones, &mut borrowers)?;
        match key {
            Some(key) if count >= PAGE_ROWS => last = key,
            _ => break,
        }
    }
    Ok(borrowers)
}

/// Decodes a page of [`push_borrowers`] into `borrowers` (each distinct zone list parsed once,
/// in `zones`); returns the rows read and the page's key.
pub(crate) fn decode_borrowers(
    page: &str,
    backend: sea_orm::DbBackend,
    zones: &mut HashMap<String, Vec<Tz>>,
    borrowers: &mut HashMap<String, Borrower>,
) -> Result<(u64, Option<String>), StoreError> {
    let rows: Vec<BorrowerRow<'_>> = unpack(page, "borrowers")?;
    let count = rows.len() as u64;
    let key = page_key(backend, rows.iter().map(|row| &row.0)).cloned();
    borrowers.reserve(rows.len());
    for BorrowerRow(id, name, timezones, consent_robot) in rows {
        let timezones = match zones.get(timezones.as_ref()) {
            Some(parsed) => parsed.clone(),
            None => {
                let parsed = split_list(&timezones)
                    .map(parse_timezone)
                    .collect::<Result<Vec<Tz>, String>>()
                    .map_err(|message| StoreError::Corrupt { table: "borrowers", id: id.clone(), message })?;
                zones.insert(timezones.into_owned(), parsed.clone());
                parsed
            }
        };
        let borrower =
            Borrower { id: id.clone(), name, timezones, contact_points: Vec::new(), consent_robot: consent_robot != 0 };
        borrowers.insert(id, borrower);
    }
    Ok((count, key))
}

/// One packed `contact_points` row.
#[derive(Deserialize)]
struct ContactRow<'a>(
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    String,
    #[serde(borrow)] Cow<'a, str>,
    i64,
    i64,
);

/// Which contact points of the scope's borrowers one read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PointRead {
    /// All of them, in no order, up to [`POINT_PAGE_ROWS`]: complete only when it returns
    /// fewer. Sorting a plan page's ~16,000 points by id in the database took SQLite ~18 ms of
    /// the read's 29 (1.8 s of a 1,000,000-account plan); the points are put in id order here.
    Whole,
    /// The page after id `0` (the first) or after a page's key, in id order: a borrower with
    /// more points than one read returns is read page by page.
    After(i64),
}

/// Pushes a read of the contact points of the scope's borrowers (see [`PointRead`]).
pub(crate) fn push_contact_points(sql: &mut Sql, scope: Scope<'_>, read: PointRead) {
    let (after, order) = match read {
        PointRead::Whole => (0, None),
        PointRead::After(after) => (after, Some("id")),
    };
    push_json_page(
        sql,
        "id, borrower_id, kind, address, opted_out, wrong_number, retired_at",
        "id, borrower_id, kind, address, opted_out, CASE WHEN wrong_number THEN 1 ELSE 0 END, \
         CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END",
        "contact_points",
        |sql| {
            scope.borrowers(sql, "borrower_id");
            push_after_id(sql, after);
        },
        order,
        POINT_PAGE_ROWS,
    );
}

/// Adds their contact points to the borrowers of the scope's accounts: all in one read when
/// they fit, else page by page in id order.
async fn attach_contact_points(
    db: &impl ConnectionTrait,
    scope: Scope<'_>,
    borrowers: &mut HashMap<String, Borrower>,
) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    let whole = single_page(db, |sql| push_contact_points(sql, scope, PointRead::Whole)).await?;
    let rows = contact_point_rows(&whole)?;
    if (rows.len() as u64) < POINT_PAGE_ROWS {
        attach_rows(rows, backend, borrowers)?;
        return Ok(());
    }
    let mut last = 0i64;
    loop {
        let after = last;
        let page = single_page(db, |sql| push_contact_points(sql, scope, PointRead::After(after))).await?;
        let (count, key) = decode_contact_points(&page, backend, borrowers)?;
        match key {
            Some(key) if count >= POINT_PAGE_ROWS => last = key,
            _ => break,
        }
    }
    Ok(())
}

/// The rows of a read of [`push_contact_points`], in id order.
fn contact_point_rows(page: &str) -> Result<Vec<ContactRow<'_>>, StoreError> {
    let mut rows: Vec<ContactRow<'_>> = unpack(page, "contact_points")?;
    rows.sort_unstable_by_key(|row| row.0);
    Ok(rows)
}

/// Decodes a read of [`push_contact_points`] onto `borrowers`, each borrower's points in id
/// order; returns the rows read and the read's key.
pub(crate) fn decode_contact_points(
    page: &str,
    backend: sea_orm::DbBackend,
    borrowers: &mut HashMap<String, Borrower>,
) -> Result<(u64, Option<i64>), StoreError> {
    attach_rows(contact_point_rows(page)?, backend, borrowers)
}

/// Adds `rows` (in id order) to their borrowers; returns how many and the greatest id.
fn attach_rows(
    rows: Vec<ContactRow<'_>>,
    backend: sea_orm::DbBackend,
    borrowers: &mut HashMap<String, Borrower>,
) -> Result<(u64, Option<i64>), StoreError> {
    let count = rows.len() as u64;
    let key = page_key(backend, rows.iter().map(|row| &row.0)).copied();
    for ContactRow(id, borrower_id, kind, address, opted_out, wrong_number, retired) in rows {
        let Some(borrower) = borrowers.get_mut(borrower_id.as_ref()) else {
            continue;
        };
        let corrupt = |message: String| StoreError::Corrupt { table: "contact_points", id: id.to_string(), message };
        let kind = parse_kind(&kind).ok_or_else(|| corrupt(format!("unknown kind `{kind}`")))?;
        let opted_out = split_list(&opted_out)
            .map(str::parse::<Channel>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| corrupt(error.to_string()))?;
        borrower.contact_points.push(ContactPoint {
            kind,
            address,
            opted_out,
            wrong_number: wrong_number != 0,
            retired: retired != 0,
        });
    }
    Ok((count, key))
}

/// The items of a stored `;`-joined list.
pub(crate) fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(';').map(str::trim).filter(|item| !item.is_empty())
}

/// The contact kind of a stored code.
pub(crate) fn parse_kind(code: &str) -> Option<ContactKind> {
    match code {
        "phone" => Some(ContactKind::Phone),
        "email" => Some(ContactKind::Email),
        _ => None,
    }
}

/// A JSON object read as a list of pairs in stored order (no intermediate map): the object
/// itself, or a string holding its text (a stored JSON column as a packed page carries it).
pub(crate) struct Pairs<V>(pub(crate) Vec<(String, V)>);

impl<'de, V: serde::de::DeserializeOwned> Deserialize<'de> for Pairs<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor<V>(PhantomData<V>);

        impl<'de, V: serde::de::DeserializeOwned> Visitor<'de> for PairsVisitor<V> {
            type Value = Pairs<V>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object or its text")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Pairs<V>, E> {
                serde_json::from_str(text).map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs<V>, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, V>()? {
                    pairs.push(entry);
                }
                Ok(Pairs(pairs))
            }
        }

        deserializer.deserialize_any(PairsVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_json_objects_read_as_pairs_in_order() {
        let Pairs(scores) = serde_json::from_str::<Pairs<f64>>(r#"{"loss":0.25,"churn":1}"#).unwrap();
        assert_eq!(scores, vec![("loss".to_string(), 0.25), ("churn".to_string(), 1.0)]);
        assert!(serde_json::from_str::<Pairs<f64>>(r#"{"loss":"high"}"#).is_err());
        assert!(serde_json::from_str::<Pairs<String>>("[1]").is_err());
        let Pairs(attrs) = serde_json::from_str::<Pairs<String>>(r#""{\"city\":\"chengdu\"}""#).unwrap();
        assert_eq!(attrs, vec![("city".to_string(), "chengdu".to_string())]);
        assert!(serde_json::from_str::<Pairs<f64>>(r#""{\"loss\":""#).is_err());
    }

    #[test]
    fn stored_money_text_is_exact() {
        assert_eq!(money_text("1200.5000").unwrap().to_string(), "1200.5");
        assert_eq!(money_text("1.0e+15").unwrap().to_string(), "1000000000000000");
        assert!(money_text("abc").is_none());
    }

    #[test]
    fn stored_lists_ignore_empty_items() {
        assert_eq!(split_list(" a;;b ;").collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(split_list("").count(), 0);
    }
}
