//! The one history loader: recent attempts, calls in flight, open promises, last
//! conversations and the local days that already have planned tasks — for the whole book (the
//! planner) or for a few borrowers (explain and every hand-off's re-check). What it loads is
//! exactly what the contact gate reads. Each table is a pushed page (`push_*`) and its decoder
//! (`decode_*`), so the paged loops and the one-round-trip read of a hand-off
//! ([`load_hand_off`]) share them.

use super::StoreError;
use super::book::{Scope, money_field, money_text, unpack};
use super::sql::{
    PAGE_ROWS, POINT_PAGE_ROWS, Sql, is_postgres, json_pages, page_key, push_after_id, push_in_list, push_json_page,
};
use crate::domain::{
    AttemptRecord, Channel, History, InFlight, Outcome, Portfolio, PromiseRecord, TaskOrigin, TaskState,
};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DbBackend};
use serde::Deserialize;
use std::borrow::Cow;
use std::ops::RangeInclusive;

/// Whose history to load.
#[derive(Debug, Clone, Copy)]
pub enum HistoryScope<'a> {
    /// Every borrower of the book (tools and tests; a plan reads [`HistoryScope::Page`]s).
    Book,
    /// These borrowers and their accounts (explain).
    Borrowers(&'a [&'a str]),
    /// The borrowers of these accounts, and all their accounts (hand-offs).
    BorrowersOfAccounts(&'a [&'a str]),
    /// The borrower of the task a statement's `claimed` CTE just claimed (a lease).
    Claimed,
    /// A plan page: the accounts whose id comes after `after` and up to `through` (to the end
    /// of the book when `None`), in the database's order. Their borrowers' attempts and calls
    /// in flight, and the page's own accounts' promises, conversations and planned days.
    Page {
        /// The key the page was loaded after (`""`: the first page).
        after: &'a str,
        /// The page's last key (`None`: the book's last page).
        through: Option<&'a str>,
    },
}

impl HistoryScope<'_> {
    fn is_empty(self) -> bool {
        match self {
            HistoryScope::Book | HistoryScope::Claimed | HistoryScope::Page { .. } => false,
            HistoryScope::Borrowers(ids) | HistoryScope::BorrowersOfAccounts(ids) => ids.is_empty(),
        }
    }

    /// ` AND <column> IN (the scope's borrowers)`, unless the scope is the book.
    fn of_borrowers(self, sql: &mut Sql, column: &str) {
        match self {
            HistoryScope::Book => {}
            HistoryScope::Borrowers(ids) => {
                sql.push(" AND ");
                push_in_list(sql, column, ids);
            }
            HistoryScope::BorrowersOfAccounts(ids) => {
                sql.push(" AND ");
                sql.push(column);
                sql.push(" IN (SELECT borrower_id FROM accounts WHERE ");
                push_in_list(sql, "id", ids);
                sql.push(")");
            }
            HistoryScope::Claimed => {
                sql.push(" AND ");
                sql.push(column);
                sql.push(" IN (SELECT borrower_id FROM claimed)");
            }
            HistoryScope::Page { after, through } => {
                // PostgreSQL runs `= ANY(ARRAY(...))` once and probes the column's index with the
                // page's borrowers; as `IN (SELECT ...)` it misjudged the page and read whole
                // tables (0.5-1.3 s a page of 10,000 accounts against ~0.05 s). SQLite probes
                // its index for an `IN (SELECT ...)` already.
                let postgres = is_postgres(sql.backend());
                sql.push(" AND ");
                sql.push(column);
                sql.push(if postgres { " = ANY(ARRAY(" } else { " IN (" });
                sql.push("SELECT borrower_id FROM accounts WHERE id > ");
                sql.bind(after.to_string());
                if let Some(through) = through {
                    sql.push(" AND id <= ");
                    sql.bind(through.to_string());
                }
                sql.push(if postgres { "))" } else { ")" });
            }
        }
    }

    /// ` AND account_id` among the scope's accounts, and after `after` for a read keyed by
    /// account, for the account-keyed history (open promises, last conversations, planned
    /// days). The accounts of the scope's borrowers, except for a plan page: its own range of
    /// ids, since its planner decides no other account and looks them up by the account decided
    /// (`History::ledger`); expanding the page's borrowers to all their accounts cost each of
    /// those reads ~4 ms of a page's ~40. A page's range takes the greater lower bound, so that
    /// it is one range of the index.
    fn of_accounts(self, sql: &mut Sql, after: Option<&str>) {
        if let HistoryScope::Page { after: page_after, through } = self {
            sql.push(" AND account_id > ");
            sql.bind(after.map_or(page_after, |after| page_after.max(after)).to_string());
            if let Some(through) = through {
                sql.push(" AND account_id <= ");
                sql.bind(through.to_string());
            }
            return;
        }
        if let Some(after) = after {
            sql.push(" AND account_id > ");
            sql.bind(after.to_string());
        }
        if !matches!(self, HistoryScope::Book) {
            sql.push(" AND account_id IN (SELECT id FROM accounts WHERE true");
            self.of_borrowers(sql, "borrower_id");
            sql.push(")");
        }
    }

    /// The table `tasks` as a read of planned days names it: SQLite, which keeps no statistics,
    /// walked the whole table in the order of ids for a page's range of account ids (0.6 s a
    /// page); it is told to read the range from the `(account_id, local_date, attempt)` key.
    fn planned_days_from(self, backend: DbBackend) -> &'static str {
        match self {
            HistoryScope::Page { .. } if !is_postgres(backend) => "tasks INDEXED BY ux_tasks_account_day_attempt",
            _ => "tasks",
        }
    }
}

/// Loads the history the gate reads, for `scope`:
/// - attempts at or after `attempts_since`, by borrower, oldest first, with the task each
///   carried out and whether it was a call the borrower asked for;
/// - tasks in flight (`dispatched`, `leased`), by borrower, with the address each went to;
/// - the open promise of each account (the latest one when several are open);
/// - the last conversation of each account, over all time (see [`Outcome::is_conversation`]);
/// - the `(account, local date)` pairs that already have tasks of the daily plan, for dates in
///   `planned_dates` (none when `None`).
pub async fn load_history(
    db: &impl ConnectionTrait,
    scope: HistoryScope<'_>,
    attempts_since: DateTime<Utc>,
    planned_dates: Option<RangeInclusive<NaiveDate>>,
) -> Result<History, StoreError> {
    let mut history = History::default();
    if scope.is_empty() {
        return Ok(history);
    }
    let start = Rest {
        attempts: Some(None),
        in_flight: Some(0),
        promises: Some(0),
        conversations: Some(String::new()),
        planned_days: planned_dates.as_ref().map(|_| 0),
    };
    read_rest(db, scope, attempts_since, planned_dates.as_ref(), start, &mut history).await?;
    Ok(history)
}

/// The history of a plan page's borrowers (see [`HistoryScope::Page`]), as [`load_history`]
/// reads it — in one round trip when no table's page comes back full: what one page of a plan
/// needs, so that a plan's memory follows its page, not its book.
pub async fn load_page_history(
    db: &impl ConnectionTrait,
    scope: HistoryScope<'_>,
    attempts_since: DateTime<Utc>,
    planned_dates: RangeInclusive<NaiveDate>,
) -> Result<History, StoreError> {
    let backend = db.get_database_backend();
    let pages: Vec<super::sql::PushPage<'_>> = vec![
        Box::new(move |sql: &mut Sql| push_attempts(sql, scope, attempts_since, None)),
        Box::new(move |sql: &mut Sql| push_in_flight(sql, scope, 0)),
        Box::new(move |sql: &mut Sql| push_open_promises(sql, scope, 0)),
        Box::new(move |sql: &mut Sql| push_last_conversations(sql, scope, String::new())),
        Box::new({
            let dates = planned_dates.clone();
            move |sql: &mut Sql| push_planned_days(sql, scope, &dates, 0)
        }),
    ];
    let pages = json_pages(db, pages).await?;
    let mut history = History::default();
    let mut pages = pages.iter().map(String::as_str);
    let mut next = || pages.next().unwrap_or("[]");
    // A table whose page came back full goes on from its key.
    let rest = Rest {
        attempts: more(decode_attempts(next(), backend, &mut history)?).map(Some),
        in_flight: more(decode_in_flight(next(), backend, &mut history)?),
        promises: more(decode_open_promises(next(), backend, &mut history)?),
        conversations: more(decode_last_conversations(next(), backend, &mut history)?),
        planned_days: more(decode_planned_days(next(), backend, &mut history)?),
    };
    read_rest(db, scope, attempts_since, Some(&planned_dates), rest, &mut history).await?;
    Ok(history)
}

/// The key to go on from after a decoded page, when it came back full.
fn more<K>((count, key): (u64, Option<K>)) -> Option<K> {
    key.filter(|_| count >= PAGE_ROWS)
}

/// Where each table's read goes on from (`None`: read to its end).
struct Rest {
    attempts: Option<Option<AttemptKey>>,
    in_flight: Option<i64>,
    promises: Option<i64>,
    conversations: Option<String>,
    planned_days: Option<i64>,
}

/// Reads each table page by page, by key, from where `rest` says, to its end.
async fn read_rest(
    db: &impl ConnectionTrait,
    scope: HistoryScope<'_>,
    attempts_since: DateTime<Utc>,
    planned_dates: Option<&RangeInclusive<NaiveDate>>,
    mut rest: Rest,
    history: &mut History,
) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    while let Some(key) = rest.attempts.take() {
        let page = one(db, |sql| push_attempts(sql, scope, attempts_since, key)).await?;
        rest.attempts = more(decode_attempts(&page, backend, history)?).map(Some);
    }
    while let Some(key) = rest.in_flight.take() {
        let page = one(db, |sql| push_in_flight(sql, scope, key)).await?;
        rest.in_flight = more(decode_in_flight(&page, backend, history)?);
    }
    while let Some(key) = rest.promises.take() {
        let page = one(db, |sql| push_open_promises(sql, scope, key)).await?;
        rest.promises = more(decode_open_promises(&page, backend, history)?);
    }
    while let Some(after) = rest.conversations.take() {
        let page = one(db, |sql| push_last_conversations(sql, scope, after)).await?;
        rest.conversations = more(decode_last_conversations(&page, backend, history)?);
    }
    if let Some(dates) = planned_dates {
        while let Some(key) = rest.planned_days.take() {
            let page = one(db, |sql| push_planned_days(sql, scope, dates, key)).await?;
            rest.planned_days = more(decode_planned_days(&page, backend, history)?);
        }
    }
    Ok(())
}

/// Everything the gate reads at a hand-off about the accounts `account_ids`: the accounts, their
/// borrowers with contact points, and the borrowers' history (as [`load_history`] with
/// [`HistoryScope::BorrowersOfAccounts`], no planned days) — in one round trip. When a page
/// comes back full (a borrower with thousands of recent attempts), the paged loaders read it
/// all instead.
pub async fn load_hand_off(
    db: &impl ConnectionTrait,
    account_ids: &[&str],
    attempts_since: DateTime<Utc>,
) -> Result<(Portfolio, History), StoreError> {
    if account_ids.is_empty() {
        return Ok((Portfolio::default(), History::default()));
    }
    let book = Scope::Accounts(account_ids);
    let scope = HistoryScope::BorrowersOfAccounts(account_ids);
    let pages = json_pages(db, hand_off_pages(book, scope, attempts_since)).await?;
    match decode_hand_off(pages, book, db.get_database_backend())? {
        Some(read) => Ok(read),
        None => {
            let portfolio = super::book::load_accounts_by_id(db, account_ids).await?;
            let history = load_history(db, scope, attempts_since, None).await?;
            Ok((portfolio, history))
        }
    }
}

/// The seven pages a hand-off reads, in the order [`decode_hand_off`] takes them.
pub(crate) fn hand_off_pages<'a>(
    book: Scope<'a>,
    scope: HistoryScope<'a>,
    attempts_since: DateTime<Utc>,
) -> Vec<super::sql::PushPage<'a>> {
    vec![
        Box::new(move |sql: &mut Sql| super::book::push_accounts(sql, book)),
        Box::new(move |sql: &mut Sql| super::book::push_borrowers(sql, book, String::new())),
        Box::new(move |sql: &mut Sql| super::book::push_contact_points(sql, book, super::book::PointRead::Whole)),
        Box::new(move |sql: &mut Sql| push_attempts(sql, scope, attempts_since, None)),
        Box::new(move |sql: &mut Sql| push_in_flight(sql, scope, 0)),
        Box::new(move |sql: &mut Sql| push_open_promises(sql, scope, 0)),
        Box::new(move |sql: &mut Sql| push_last_conversations(sql, scope, String::new())),
    ]
}

/// Decodes the pages of [`hand_off_pages`]; `None` when one came back full (read it paged).
pub(crate) fn decode_hand_off(
    pages: Vec<String>,
    book: Scope<'_>,
    backend: DbBackend,
) -> Result<Option<(Portfolio, History)>, StoreError> {
    let mut pages = pages.into_iter();
    let mut next = || pages.next().unwrap_or_else(|| "[]".to_string());
    let (accounts_page, borrowers_page, points_page) = (next(), next(), next());
    let (attempts_page, in_flight_page, promises_page, conversations_page) = (next(), next(), next(), next());
    let mut portfolio = Portfolio::default();
    let (accounts, _) = super::book::decode_accounts(&accounts_page, book, backend)?;
    portfolio.accounts = accounts.into_iter().map(|(account, _)| account).collect();
    portfolio.accounts.sort_by(|a, b| a.id.cmp(&b.id));
    let mut zones = Default::default();
    let mut full = super::book::decode_borrowers(&borrowers_page, backend, &mut zones, &mut portfolio.borrowers)?.0;
    let points = super::book::decode_contact_points(&points_page, backend, &mut portfolio.borrowers)?.0;
    let mut history = History::default();
    full = full.max(decode_attempts(&attempts_page, backend, &mut history)?.0);
    full = full.max(decode_in_flight(&in_flight_page, backend, &mut history)?.0);
    full = full.max(decode_open_promises(&promises_page, backend, &mut history)?.0);
    full = full.max(decode_last_conversations(&conversations_page, backend, &mut history)?.0);
    Ok((full < PAGE_ROWS && points < POINT_PAGE_ROWS).then_some((portfolio, history)))
}

/// Runs one pushed page as a statement of its own.
async fn one(db: &impl ConnectionTrait, page: impl FnOnce(&mut Sql) + Send) -> Result<String, StoreError> {
    Ok(json_pages(db, vec![Box::new(page)]).await?.pop().unwrap_or_else(|| "[]".into()))
}

/// One packed `attempts` row.
#[derive(Deserialize)]
struct AttemptRow<'a>(
    i64,
    String,
    String,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    Option<String>,
    #[serde(borrow)] Cow<'a, str>,
    Option<i64>,
    i64,
    #[serde(borrow)] Cow<'a, str>,
);

/// The key of an attempts page: `(at, id)` of its last row.
type AttemptKey = (DateTime<Utc>, i64);

/// A stored instant, as the packed rows carry it (RFC 3339 on both backends).
fn instant(text: &str, table: &'static str, id: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)).map_err(|_| StoreError::Corrupt {
        table,
        id: id.to_string(),
        message: format!("`{text}` is not a timestamp"),
    })
}

/// The page of the scope's attempts at or after `since`, after the key `(at, id)`. Keyset over
/// `(at, id)`: served by the `(at, id)` index, bounded by the window, not the table.
fn push_attempts(sql: &mut Sql, scope: HistoryScope<'_>, since: DateTime<Utc>, after: Option<AttemptKey>) {
    push_json_page(
        sql,
        "id, borrower_id, account_id, at, channel, address, outcome, task_id, exempt, direction",
        "id, borrower_id, account_id, at, channel, address, outcome, task_id, CASE WHEN exempt THEN 1 ELSE 0 END, \
         direction",
        "attempts",
        |sql| {
            sql.push("at >= ");
            sql.bind(since);
            scope.of_borrowers(sql, "borrower_id");
            if let Some((at, id)) = after {
                sql.push(" AND (at > ");
                let at_number = sql.bind(at);
                sql.push(" OR (at = ");
                sql.reuse(at_number);
                sql.push(" AND id > ");
                sql.bind(id);
                sql.push("))");
            }
        },
        Some("at, id"),
        PAGE_ROWS,
    );
}

/// Decodes a page of [`push_attempts`] into `history` (each borrower's attempts kept sorted by
/// time); returns the rows read and the page's key.
fn decode_attempts(
    page: &str,
    backend: DbBackend,
    history: &mut History,
) -> Result<(u64, Option<AttemptKey>), StoreError> {
    let rows: Vec<AttemptRow<'_>> = unpack(page, "attempts")?;
    let count = rows.len() as u64;
    let mut last: Option<AttemptKey> = None;
    for AttemptRow(id, borrower_id, account_id, at, channel, address, outcome, task_id, exempt, direction) in rows {
        let key = id.to_string();
        let corrupt = |message: String| StoreError::Corrupt { table: "attempts", id: key.clone(), message };
        let at = instant(&at, "attempts", &key)?;
        let record = AttemptRecord {
            account_id,
            at,
            channel: channel.parse::<Channel>().map_err(|error| corrupt(error.to_string()))?,
            address,
            outcome: outcome.parse::<Outcome>().map_err(|error| corrupt(error.to_string()))?,
            task_id,
            exempt: exempt != 0,
            inbound: direction == crate::domain::Direction::Inbound.code(),
        };
        let list = history.attempts_by_borrower.entry(borrower_id).or_default();
        if list.last().is_some_and(|previous| previous.at > record.at) {
            let position = list.partition_point(|existing| existing.at <= record.at);
            list.insert(position, record);
        } else {
            list.push(record);
        }
        // PostgreSQL pages are ordered (the last row is the key); SQLite's: take the greatest.
        if is_postgres(backend) || last.is_none_or(|previous| (at, id) > previous) {
            last = Some((at, id));
        }
    }
    Ok((count, last))
}

/// One packed in-flight `tasks` row.
#[derive(Deserialize)]
struct InFlightRow<'a>(i64, String, String, #[serde(borrow)] Cow<'a, str>, Option<String>, i64);

/// The page of the scope's tasks in flight after id `after`.
fn push_in_flight(sql: &mut Sql, scope: HistoryScope<'_>, after: i64) {
    push_json_page(
        sql,
        "id, account_id, borrower_id, channel, address, calls_allowed",
        "id, account_id, borrower_id, channel, address, calls_allowed",
        "tasks",
        |sql| {
            sql.push("state IN ");
            sql.push(&TaskState::sql_list(TaskState::IN_FLIGHT));
            push_after_id(sql, after);
            scope.of_borrowers(sql, "borrower_id");
        },
        Some("id"),
        PAGE_ROWS,
    );
}

fn decode_in_flight(page: &str, backend: DbBackend, history: &mut History) -> Result<(u64, Option<i64>), StoreError> {
    let rows: Vec<InFlightRow<'_>> = unpack(page, "tasks")?;
    let count = rows.len() as u64;
    let key = page_key(backend, rows.iter().map(|row| &row.0)).copied();
    for InFlightRow(id, account_id, borrower_id, channel, address, calls_allowed) in rows {
        let channel = channel.parse::<Channel>().map_err(|error| StoreError::Corrupt {
            table: "tasks",
            id: id.to_string(),
            message: error.to_string(),
        })?;
        let task = InFlight {
            task_id: id,
            account_id,
            channel,
            address,
            calls_allowed: u32::try_from(calls_allowed).unwrap_or(0),
        };
        history.record_in_flight(&borrower_id, task);
    }
    Ok((count, key))
}

/// One packed `promises` row.
#[derive(Deserialize)]
struct PromiseRow<'a>(
    i64,
    String,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
);

/// The page of the open promises of the scope's accounts after id `after`.
fn push_open_promises(sql: &mut Sql, scope: HistoryScope<'_>, after: i64) {
    let fields = format!("id, account_id, {}, due_on, made_at", money_field(sql.backend(), "amount"));
    push_json_page(
        sql,
        "id, account_id, amount, due_on, made_at",
        &fields,
        "promises",
        |sql| {
            sql.push("status = 'open'");
            push_after_id(sql, after);
            scope.of_accounts(sql, None);
        },
        Some("id"),
        PAGE_ROWS,
    );
}

fn decode_open_promises(
    page: &str,
    backend: DbBackend,
    history: &mut History,
) -> Result<(u64, Option<i64>), StoreError> {
    let rows: Vec<PromiseRow<'_>> = unpack(page, "promises")?;
    let count = rows.len() as u64;
    let key = page_key(backend, rows.iter().map(|row| &row.0)).copied();
    for PromiseRow(id, account_id, amount, due_on, made_at) in rows {
        let key = id.to_string();
        let corrupt = |message: String| StoreError::Corrupt { table: "promises", id: key.clone(), message };
        let promise = PromiseRecord {
            amount: money_text(&amount).ok_or_else(|| corrupt(format!("amount `{amount}`")))?,
            due_on: NaiveDate::parse_from_str(&due_on, "%Y-%m-%d")
                .map_err(|_| corrupt(format!("due_on `{due_on}`")))?,
            made_at: instant(&made_at, "promises", &key)?,
        };
        match history.open_promises.get(&account_id) {
            Some(existing) if existing.made_at >= promise.made_at => {}
            _ => {
                history.open_promises.insert(account_id, promise);
            }
        }
    }
    Ok((count, key))
}

/// The conversation outcome codes, quoted for an SQL `IN (...)` list.
fn conversation_codes() -> String {
    Outcome::ALL
        .iter()
        .filter(|outcome| outcome.is_conversation())
        .map(|outcome| format!("'{}'", outcome.code()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The page of the last conversation of each of the scope's accounts after account `after`.
fn push_last_conversations(sql: &mut Sql, scope: HistoryScope<'_>, after: String) {
    let codes = conversation_codes();
    push_json_page(
        sql,
        "account_id, MAX(at) AS at",
        "account_id, at",
        "attempts",
        |sql| {
            sql.push("outcome IN (");
            sql.push(&codes);
            sql.push(")");
            scope.of_accounts(sql, Some(&after));
            sql.push(" GROUP BY account_id");
        },
        Some("account_id"),
        PAGE_ROWS,
    );
}

fn decode_last_conversations(
    page: &str,
    backend: DbBackend,
    history: &mut History,
) -> Result<(u64, Option<String>), StoreError> {
    let rows: Vec<(String, Cow<'_, str>)> = unpack(page, "attempts")?;
    let count = rows.len() as u64;
    let key = page_key(backend, rows.iter().map(|row| &row.0)).cloned();
    for (account_id, at) in rows {
        let at = instant(&at, "attempts", &account_id)?;
        history.last_conversation.insert(account_id, at);
    }
    Ok((count, key))
}

/// The page of the `(account, local date)` pairs of plan tasks in `dates` after task id `after`.
/// By the scope's accounts (a plan page: its range of ids), read from the `(account_id,
/// local_date, attempt)` key the plan writes anyway, so `tasks` needs no index by borrower
/// beyond the calls in flight.
fn push_planned_days(sql: &mut Sql, scope: HistoryScope<'_>, dates: &RangeInclusive<NaiveDate>, after: i64) {
    let from = scope.planned_days_from(sql.backend());
    push_json_page(
        sql,
        "id, account_id, local_date",
        "id, account_id, local_date",
        from,
        |sql| {
            sql.push("local_date >= ");
            sql.bind(*dates.start());
            sql.push(" AND local_date <= ");
            sql.bind(*dates.end());
            sql.push(" AND origin = '");
            sql.push(TaskOrigin::Plan.code());
            sql.push("'");
            push_after_id(sql, after);
            scope.of_accounts(sql, None);
        },
        Some("id"),
        PAGE_ROWS,
    );
}

fn decode_planned_days(
    page: &str,
    backend: DbBackend,
    history: &mut History,
) -> Result<(u64, Option<i64>), StoreError> {
    let rows: Vec<(i64, String, Cow<'_, str>)> = unpack(page, "tasks")?;
    let count = rows.len() as u64;
    let key = page_key(backend, rows.iter().map(|row| &row.0)).copied();
    for (id, account_id, date) in rows {
        let date = NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(|_| StoreError::Corrupt {
            table: "tasks",
            id: id.to_string(),
            message: format!("local_date `{date}`"),
        })?;
        history.planned_days.insert((account_id, date));
    }
    Ok((count, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_codes_are_the_domain_ones() {
        assert_eq!(conversation_codes(), "'rpc', 'promise', 'refused', 'dispute', 'callback', 'do_not_call'");
    }
}
