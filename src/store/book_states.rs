//! The book at a period's bounds, read page by page: each account's latest stage entry and
//! latest cure before each bound, its balance now and what it was paid since each bound, folded
//! at once into `report::StateCells` (the roll matrix, the balances by stage); and the accounts
//! that entered collections in the period with their first cure since (the vintages).
//!
//! A page is [`STATE_PAGE`] accounts in id order; its stage history, cures and payments are read
//! by the page's range of account ids, so what is held follows the page and the states, never
//! the book. Several periods (the dashboard's weekly roll trend) are read in one pass. No KPI is
//! decided here: `report::roll` decides the states, `report::vintage` the horizons,
//! `report::funder` a funder's part.

use super::StoreError;
use super::report::push_scope;
use super::sql::{Sql, get, get_money};
use crate::domain::{FundingShares, Money};
use crate::report::{AccountStates, FunderScope, Period, StateCells, VintageEntry};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sea_orm::ConnectionTrait;
use std::collections::HashMap;

/// Accounts per page of [`book_states`].
pub const STATE_PAGE: u64 = 10_000;

/// What the roll matrix, the balances by stage and the vintages read of a book for a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookStates {
    /// Every account of the scope in a state at the period's end, folded.
    pub states: StateCells,
    /// The accounts of the scope that entered collections in the period.
    pub entries: Vec<VintageEntry>,
}

/// The latest of something before each bound of a period: `[before from, before to]`.
type AtBounds<T> = [Option<T>; 2];

/// Keeps `value` in the bounds it precedes when it is later than what they hold (by `key`).
fn keep_latest<T: Clone, K: PartialOrd>(
    bounds: &mut AtBounds<T>,
    period: Period,
    at: DateTime<Utc>,
    value: T,
    key: impl Fn(&T) -> K,
) {
    if at >= period.to {
        return;
    }
    let later = |held: &Option<T>| held.as_ref().is_none_or(|held| key(&value) > key(held));
    if at < period.from && later(&bounds[0]) {
        bounds[0] = Some(value.clone());
    }
    if later(&bounds[1]) {
        bounds[1] = Some(value);
    }
}

/// A stage entry: stage, instant, id (the id orders entries of the same instant).
type StageEntry = (String, DateTime<Utc>, i64);

/// One account of a page, as read.
struct PageAccount {
    id: String,
    currency: String,
    balance: Money,
    due_date: NaiveDate,
    funders: Option<String>,
}

/// What a page read of one account's history: its stage entries, its paid-in-full instants and
/// its payments since the earliest period's start.
#[derive(Default)]
struct AccountHistory {
    stages: Vec<StageEntry>,
    cures: Vec<DateTime<Utc>>,
    payments: Vec<(DateTime<Utc>, Money)>,
}

/// The book of `scope` at the bounds of each of `periods`, in one pass over the book, `page`
/// accounts at a time (`STATE_PAGE` but for tests); `zone` is the portfolio's (the day an
/// account enters collections). One [`BookStates`] per period, in their order.
pub async fn book_states(
    db: &impl ConnectionTrait,
    periods: &[Period],
    zone: Tz,
    scope: &FunderScope,
    page: u64,
) -> Result<Vec<BookStates>, StoreError> {
    let mut books = vec![BookStates::default(); periods.len()];
    let Some(since) = periods.iter().map(|period| period.from).min() else { return Ok(books) };
    let page = page.max(1);
    let windows: Vec<Window> = periods.iter().map(|period| Window::of(*period, zone)).collect();
    let mut after: Option<String> = None;
    loop {
        let accounts = account_page(db, after.as_deref(), scope, page).await?;
        let (Some(first), Some(last)) = (accounts.first(), accounts.last()) else { break };
        let mut histories = page_histories(db, (first.id.as_str(), last.id.as_str()), since).await?;
        for account in &accounts {
            let history = histories.remove(&account.id).unwrap_or_default();
            let shares = match scope.funder() {
                Some(funder) => Some((funder, shares_of(account)?)),
                None => None,
            };
            for (window, book) in windows.iter().zip(&mut books) {
                fold_account(book, account, &history, window, zone, shares.as_ref().map(|(f, s)| (*f, s.as_ref())));
            }
        }
        if (accounts.len() as u64) < page {
            break;
        }
        after = accounts.last().map(|account| account.id.clone());
    }
    Ok(books)
}

/// The funding shares of an account, as stored.
fn shares_of(account: &PageAccount) -> Result<Option<FundingShares>, StoreError> {
    account.funders.as_deref().map(FundingShares::parse).transpose().map_err(|message| StoreError::Corrupt {
        table: "accounts",
        id: account.id.clone(),
        message: format!("funders: {message}"),
    })
}

/// A period, and the due dates of the accounts that can enter collections in it.
struct Window {
    period: Period,
    due: std::ops::RangeInclusive<NaiveDate>,
}

impl Window {
    fn of(period: Period, zone: Tz) -> Window {
        // An account enters collections on the day after its due date: those due from the day
        // before the period's first to its last can enter within it.
        let first = period.from.with_timezone(&zone).date_naive().pred_opt().unwrap_or(NaiveDate::MIN);
        Window { period, due: first..=period.to.with_timezone(&zone).date_naive() }
    }
}

/// Adds one account to the book of `period`: its vintage entry when it entered collections in
/// the period, its states when it is in one at the period's end (cut to a funder's part when
/// `shares` names the funder).
fn fold_account(
    book: &mut BookStates,
    account: &PageAccount,
    history: &AccountHistory,
    window: &Window,
    zone: Tz,
    shares: Option<(&str, Option<&FundingShares>)>,
) {
    let period = window.period;
    let mut stage_bounds: AtBounds<&StageEntry> = [None, None];
    for entry in &history.stages {
        keep_latest(&mut stage_bounds, period, entry.1, entry, |(_, at, id)| (*at, *id));
    }
    // An account enters collections on the day after its due date, and counts when it was put
    // in a stage since (its latest entry of all, not only before the period's end).
    if window.due.contains(&account.due_date)
        && let Some(entered_at) = account.due_date.succ_opt().and_then(|day| crate::report::start_of_day(day, zone))
        && period.contains(entered_at)
        && history.stages.iter().any(|(_, at, _)| *at >= entered_at)
    {
        book.entries.push(VintageEntry::new(entered_at, &history.cures));
    }
    let mut cure_bounds: AtBounds<DateTime<Utc>> = [None, None];
    for at in &history.cures {
        keep_latest(&mut cure_bounds, period, *at, *at, |at| *at);
    }
    let ([start_stage, end_stage], [start_cure, end_cure]) = (stage_bounds, cure_bounds);
    if end_stage.is_none() && end_cure.is_none() {
        return;
    }
    let (mut paid_since_start, mut paid_since_end) = (Money::ZERO, Money::ZERO);
    for (at, amount) in &history.payments {
        if *at >= period.from {
            paid_since_start += *amount;
        }
        if *at >= period.to {
            paid_since_end += *amount;
        }
    }
    let stage = |entry: Option<&StageEntry>| entry.map(|(stage, at, _)| (stage.clone(), *at));
    let mut states = AccountStates {
        account_id: account.id.clone(),
        currency: account.currency.clone(),
        balance_now: account.balance,
        paid_since_start,
        paid_since_end,
        start_stage: stage(start_stage),
        start_cure,
        end_stage: stage(end_stage),
        end_cure,
    };
    if let Some((funder, shares)) = shares {
        crate::report::funder::share_states(&mut states, funder, shares);
    }
    book.states.add(&states);
}

/// The next `page` accounts of `scope` after the id `after`, in id order.
async fn account_page(
    db: &impl ConnectionTrait,
    after: Option<&str>,
    scope: &FunderScope,
    page: u64,
) -> Result<Vec<PageAccount>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("SELECT id, currency, balance, due_date, funders FROM accounts acc WHERE 1 = 1");
    if let Some(after) = after {
        sql.push(" AND id > ");
        sql.bind(after.to_string());
    }
    push_scope(&mut sql, "acc.funders", scope);
    sql.push(" ORDER BY id LIMIT ");
    sql.bind(i64::try_from(page).unwrap_or(i64::MAX));
    let mut accounts = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let id: String = get(&row, 0, "accounts", "id")?;
        accounts.push(PageAccount {
            currency: get(&row, 1, "accounts", &id)?,
            balance: get_money(&row, 2, backend, "accounts", &id)?,
            due_date: get(&row, 3, "accounts", &id)?,
            funders: get(&row, 4, "accounts", &id)?,
            id,
        });
    }
    Ok(accounts)
}

/// Appends ` AND column >= first AND column <= last`.
fn push_range(sql: &mut Sql, column: &str, (first, last): (&str, &str)) {
    sql.push(" AND ");
    sql.push(column);
    sql.push(" >= ");
    sql.bind(first.to_string());
    sql.push(" AND ");
    sql.push(column);
    sql.push(" <= ");
    sql.bind(last.to_string());
}

/// The history of the accounts whose ids are in `range`, by account: every stage entry
/// (through `idx_stage_history_account_at`), every paid-in-full (`idx_audit_log_paid_in_full`)
/// and the payments since `since` (`idx_payments_account_paid`).
async fn page_histories(
    db: &impl ConnectionTrait,
    range: (&str, &str),
    since: DateTime<Utc>,
) -> Result<HashMap<String, AccountHistory>, StoreError> {
    let backend = db.get_database_backend();
    let mut histories: HashMap<String, AccountHistory> = HashMap::new();

    let mut sql = Sql::new(backend);
    sql.push("SELECT account_id, to_stage, at, id FROM stage_history WHERE 1 = 1");
    push_range(&mut sql, "account_id", range);
    for row in db.query_all_raw(sql.statement()).await? {
        let account_id: String = get(&row, 0, "stage_history", "account_id")?;
        let id: i64 = get(&row, 3, "stage_history", &account_id)?;
        let stage: String = get(&row, 1, "stage_history", &account_id)?;
        let at: DateTime<Utc> = get(&row, 2, "stage_history", &account_id)?;
        histories.entry(account_id).or_default().stages.push((stage, at, id));
    }

    let mut sql = Sql::new(backend);
    sql.push("SELECT entity_id, at FROM audit_log WHERE action = 'account.paid_in_full' AND entity = 'account'");
    push_range(&mut sql, "entity_id", range);
    for row in db.query_all_raw(sql.statement()).await? {
        let account_id: String = get(&row, 0, "audit_log", "entity_id")?;
        let at: DateTime<Utc> = get(&row, 1, "audit_log", &account_id)?;
        histories.entry(account_id).or_default().cures.push(at);
    }

    let mut sql = Sql::new(backend);
    sql.push("SELECT id, account_id, amount, paid_at FROM payments WHERE paid_at >= ");
    sql.bind(since);
    push_range(&mut sql, "account_id", range);
    for row in db.query_all_raw(sql.statement()).await? {
        let id: i64 = get(&row, 0, "payments", "id")?;
        let id = id.to_string();
        let account_id: String = get(&row, 1, "payments", &id)?;
        let amount = get_money(&row, 2, backend, "payments", &id)?;
        let at: DateTime<Utc> = get(&row, 3, "payments", &id)?;
        histories.entry(account_id).or_default().payments.push((at, amount));
    }
    Ok(histories)
}
