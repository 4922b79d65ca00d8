//! The reads behind the KPI report (`crate::report`): attempts, accounts and promises counted
//! by task group and currency, resolved promises, payments and paid-in-full events with the task
//! they are attributed to, all in one period `[from, to)`; and, through `store::book_states`,
//! the book at the period's bounds (the roll matrix, the vintages).
//!
//! Counts are grouped in SQL; money is read row by row exactly ([`get_money`]) and summed by
//! the caller with `rust_decimal`, never in SQL (SQLite stores it as a REAL). No KPI is
//! computed here.

use super::StoreError;
use super::sql::{Sql, get, get_money};
use crate::domain::FundingShares;
use crate::report::{
    AccountAttempted, AttemptCount, CureRow, FunderScope, KpiInput, PaymentRow, Period, PromiseCount, ResolvedPromise,
    TaskGroup, UNKNOWN_CURRENCY,
};
use chrono_tz::Tz;
use sea_orm::{ConnectionTrait, QueryResult};
use std::collections::{BTreeMap, HashMap};

/// The task columns every grouped read selects first, from a task aliased `t`.
const GROUP_COLUMNS: &str = "t.stage, t.strategy, t.rule, t.arm";

/// The currency of the account aliased `acc` (joined with `LEFT JOIN`).
fn currency_column() -> String {
    format!("COALESCE(acc.currency, '{UNKNOWN_CURRENCY}')")
}

/// The latest task of the account in `account` (an SQL expression) whose window opened at or
/// before the instant `at` (an SQL expression): what a payment or a cure is attributed to.
fn latest_task_before(account: &str, at: &str) -> String {
    format!(
        "(SELECT t2.id FROM tasks t2 WHERE t2.account_id = {account} AND t2.not_before <= {at} \
         ORDER BY t2.not_before DESC, t2.id DESC LIMIT 1)"
    )
}

/// Reads the task group of columns 0..4 (all null: no task).
fn task_group(row: &QueryResult, table: &'static str, id: &str) -> Result<Option<TaskGroup>, StoreError> {
    let stage: Option<String> = get(row, 0, table, id)?;
    let strategy: Option<String> = get(row, 1, table, id)?;
    let rule: Option<String> = get(row, 2, table, id)?;
    let arm: Option<String> = get(row, 3, table, id)?;
    Ok(match (stage, strategy, rule) {
        (Some(stage), Some(strategy), Some(rule)) => Some(TaskGroup { stage, strategy, rule, arm }),
        _ => None,
    })
}

pub(super) fn count(row: &QueryResult, index: usize, table: &'static str) -> Result<u64, StoreError> {
    let value: i64 = get(row, index, table, "count")?;
    Ok(u64::try_from(value).unwrap_or(0))
}

/// Appends ` AND` the condition that the account whose `funders` column is `column` is in
/// `scope` (nothing for the whole portfolio). A funder is matched in the canonical text form
/// (`a:0.7;b:0.3`) as `;name:` after a leading `;`, with `LIKE`'s wildcards escaped.
pub(super) fn push_scope(sql: &mut Sql, column: &str, scope: &FunderScope) {
    match scope {
        FunderScope::All => {}
        FunderScope::Unfunded => {
            sql.push(" AND ");
            sql.push(column);
            sql.push(" IS NULL");
        }
        FunderScope::Funder(name) => {
            let escaped = name.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            sql.push(" AND (';' || ");
            sql.push(column);
            sql.push(") LIKE ");
            sql.bind(format!("%;{escaped}:%"));
            sql.push(" ESCAPE '\\'");
        }
    }
}

/// Appends ` column >= from AND column < to`.
pub(super) fn push_period(sql: &mut Sql, column: &str, period: Period) {
    sql.push(column);
    sql.push(" >= ");
    sql.bind(period.from);
    sql.push(" AND ");
    sql.push(column);
    sql.push(" < ");
    sql.bind(period.to);
}

/// The attempts of a period, from one grouped scan of them.
pub struct AttemptTallies {
    /// By the attempt's task group, outcome and currency.
    pub attempts: Vec<AttemptCount>,
    /// The accounts attempted: one per task group and account.
    pub accounts: Vec<AccountAttempted>,
}

/// Attempts made in the period (`attempts.at`): one scan grouped by task group, outcome,
/// currency and account, counted here by group and outcome, and listed by group and account.
pub async fn attempt_tallies(
    db: &impl ConnectionTrait,
    period: Period,
    scope: &FunderScope,
) -> Result<AttemptTallies, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    let currency = currency_column();
    sql.push(&format!(
        "SELECT {GROUP_COLUMNS}, a.outcome, {currency}, a.account_id, COUNT(*), \
         SUM(CASE WHEN a.channel = 'human' THEN COALESCE(a.duration_seconds, 0) ELSE 0 END) \
         FROM attempts a LEFT JOIN tasks t ON t.id = a.task_id LEFT JOIN accounts acc ON acc.id = a.account_id WHERE "
    ));
    push_period(&mut sql, "a.at", period);
    // Attempts are the contacts the engine made; a borrower's inbound call is none.
    sql.push(" AND a.direction = ");
    sql.bind(crate::domain::Direction::Outbound.code());
    push_scope(&mut sql, "acc.funders", scope);
    sql.push(&format!(" GROUP BY {GROUP_COLUMNS}, a.outcome, {currency}, a.account_id"));
    let mut attempts: BTreeMap<(Option<TaskGroup>, String, String), (u64, u64)> = BTreeMap::new();
    let mut accounts: std::collections::HashSet<(Option<TaskGroup>, String, String)> = Default::default();
    for row in db.query_all_raw(sql.statement()).await? {
        let group = task_group(&row, "attempts", "group")?;
        let outcome: String = get(&row, 4, "attempts", "outcome")?;
        let currency: String = get(&row, 5, "attempts", "currency")?;
        let account_id: String = get(&row, 6, "attempts", "account_id")?;
        let tally = attempts.entry((group.clone(), currency.clone(), outcome)).or_default();
        tally.0 += count(&row, 7, "attempts")?;
        tally.1 += count(&row, 8, "attempts")?;
        accounts.insert((group, currency, account_id));
    }
    let accounts = accounts
        .into_iter()
        .map(|(group, currency, account_id)| AccountAttempted { group, currency, account_id })
        .collect();
    Ok(AttemptTallies {
        attempts: attempts
            .into_iter()
            .map(|((group, currency, outcome), (count, agent_seconds))| AttemptCount {
                group,
                outcome,
                currency,
                count,
                agent_seconds,
            })
            .collect(),
        accounts,
    })
}

/// Promises made in the period (`made_at`), counted by the group of the task whose attempt
/// made them and by status.
pub async fn promises_made(
    db: &impl ConnectionTrait,
    period: Period,
    scope: &FunderScope,
) -> Result<Vec<PromiseCount>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {GROUP_COLUMNS}, p.status, COUNT(*) FROM promises p LEFT JOIN attempts a ON a.id = p.attempt_id \
         LEFT JOIN tasks t ON t.id = a.task_id LEFT JOIN accounts acc ON acc.id = p.account_id WHERE "
    ));
    push_period(&mut sql, "p.made_at", period);
    push_scope(&mut sql, "acc.funders", scope);
    sql.push(&format!(" GROUP BY {GROUP_COLUMNS}, p.status"));
    let mut counts = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        counts.push(PromiseCount {
            group: task_group(&row, "promises", "group")?,
            status: get(&row, 4, "promises", "status")?,
            count: count(&row, 5, "promises")?,
        });
    }
    Ok(counts)
}

/// Promises kept or broken in the period (`resolved_at`), one row each with its amount and
/// the account's currency.
pub async fn promises_resolved(
    db: &impl ConnectionTrait,
    period: Period,
    scope: &FunderScope,
) -> Result<Vec<ResolvedPromise>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT {GROUP_COLUMNS}, p.id, p.status, p.amount, {}, p.account_id FROM promises p \
         LEFT JOIN attempts a ON a.id = p.attempt_id LEFT JOIN tasks t ON t.id = a.task_id \
         LEFT JOIN accounts acc ON acc.id = p.account_id WHERE p.status IN ('kept', 'broken') AND ",
        currency_column()
    ));
    push_period(&mut sql, "p.resolved_at", period);
    push_scope(&mut sql, "acc.funders", scope);
    sql.push(" ORDER BY p.id");
    let mut promises = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let id: i64 = get(&row, 4, "promises", "id")?;
        let id = id.to_string();
        let status: String = get(&row, 5, "promises", &id)?;
        promises.push(ResolvedPromise {
            account_id: get(&row, 8, "promises", &id)?,
            group: task_group(&row, "promises", &id)?,
            kept: status == "kept",
            amount: get_money(&row, 6, backend, "promises", &id)?,
            currency: get(&row, 7, "promises", &id)?,
        });
    }
    Ok(promises)
}

/// Payments received in the period (`paid_at`), each with the account's currency and its
/// latest task whose window opened at or before the payment.
pub async fn payments_in(
    db: &impl ConnectionTrait,
    period: Period,
    scope: &FunderScope,
) -> Result<Vec<PaymentRow>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT {GROUP_COLUMNS}, p.id, p.amount, {}, p.account_id FROM payments p \
         LEFT JOIN accounts acc ON acc.id = p.account_id LEFT JOIN tasks t ON t.id = {} WHERE ",
        currency_column(),
        latest_task_before("p.account_id", "p.paid_at")
    ));
    push_period(&mut sql, "p.paid_at", period);
    push_scope(&mut sql, "acc.funders", scope);
    sql.push(" ORDER BY p.id");
    let mut payments = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let id: i64 = get(&row, 4, "payments", "id")?;
        let id = id.to_string();
        payments.push(PaymentRow {
            account_id: get(&row, 7, "payments", &id)?,
            group: task_group(&row, "payments", &id)?,
            amount: get_money(&row, 5, backend, "payments", &id)?,
            currency: get(&row, 6, "payments", &id)?,
        });
    }
    Ok(payments)
}

/// `account.paid_in_full` audit rows in the period, in time order, each with the account's
/// latest task whose window opened at or before it.
pub async fn cures_in(
    db: &impl ConnectionTrait,
    period: Period,
    scope: &FunderScope,
) -> Result<Vec<CureRow>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {GROUP_COLUMNS}, l.entity_id FROM audit_log l LEFT JOIN tasks t ON t.id = {} \
         LEFT JOIN accounts acc ON acc.id = l.entity_id WHERE l.action = 'account.paid_in_full' AND l.entity = 'account' AND ",
        latest_task_before("l.entity_id", "l.at")
    ));
    push_period(&mut sql, "l.at", period);
    push_scope(&mut sql, "acc.funders", scope);
    sql.push(" ORDER BY l.at, l.id");
    let mut cures = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let account_id: String = get(&row, 4, "audit_log", "entity_id")?;
        let group = task_group(&row, "audit_log", &account_id)?;
        cures.push(CureRow { account_id, group });
    }
    Ok(cures)
}

/// The funding shares of the accounts in `scope`, by account.
pub async fn funding_shares(
    db: &impl ConnectionTrait,
    scope: &FunderScope,
) -> Result<HashMap<String, FundingShares>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT id, funders FROM accounts acc WHERE acc.funders IS NOT NULL");
    push_scope(&mut sql, "acc.funders", scope);
    let mut shares = HashMap::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let id: String = get(&row, 0, "accounts", "id")?;
        let text: String = get(&row, 1, "accounts", &id)?;
        let parsed = FundingShares::parse(&text).map_err(|message| StoreError::Corrupt {
            table: "accounts",
            id: id.clone(),
            message: format!("funders: {message}"),
        })?;
        shares.insert(id, parsed);
    }
    Ok(shares)
}

/// Everything the KPI report of a period needs for the accounts of `scope` (a funder's: every
/// amount cut to its share, see `report::funder`); `zone` is the portfolio's (vintage weeks).
pub async fn load_kpi_input(
    db: &impl ConnectionTrait,
    period: Period,
    zone: Tz,
    scope: &FunderScope,
) -> Result<KpiInput, StoreError> {
    let book = super::book_states(db, &[period], zone, scope, super::STATE_PAGE).await?.pop().unwrap_or_default();
    let tallies = attempt_tallies(db, period, scope).await?;
    let mut input = KpiInput {
        attempts: tallies.attempts,
        accounts: tallies.accounts,
        promises_made: promises_made(db, period, scope).await?,
        promises_resolved: promises_resolved(db, period, scope).await?,
        payments: payments_in(db, period, scope).await?,
        cures: cures_in(db, period, scope).await?,
        states: book.states,
        entries: book.entries,
    };
    if let Some(funder) = scope.funder() {
        crate::report::funder::take_share(&mut input, funder, &funding_shares(db, scope).await?);
    }
    Ok(input)
}

/// Every funder holding a share of some account, by name (for the dashboard's funder picker).
pub async fn funder_names(db: &impl ConnectionTrait) -> Result<Vec<String>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT DISTINCT funders FROM accounts WHERE funders IS NOT NULL");
    let mut names = std::collections::BTreeSet::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let text: String = get(&row, 0, "accounts", "funders")?;
        if let Ok(shares) = FundingShares::parse(&text) {
            names.extend(shares.shares().iter().map(|share| share.funder.clone()));
        }
    }
    Ok(names.into_iter().collect())
}
