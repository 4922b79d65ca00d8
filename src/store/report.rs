//! The reads behind the KPI report (`crate::report`): attempts and promises counted by task
//! group, payments and paid-in-full events with the task they are attributed to, and stage
//! changes, all in one period `[from, to)`.
//!
//! Counts are grouped in SQL; money is read row by row exactly ([`get_money`]) and summed by
//! the caller with `rust_decimal`, never in SQL (SQLite stores it as a REAL). No KPI is
//! computed here.

use super::StoreError;
use super::sql::{Sql, get, get_money};
use crate::report::{AttemptCount, CureRow, KpiInput, PaymentRow, Period, PromiseCount, StageMoveCount, TaskGroup};
use sea_orm::{ConnectionTrait, QueryResult};

/// The task columns every grouped read selects first, from a task aliased `t`.
const GROUP_COLUMNS: &str = "t.stage, t.strategy, t.rule, t.arm";

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

fn count(row: &QueryResult, index: usize, table: &'static str) -> Result<u64, StoreError> {
    let value: i64 = get(row, index, table, "count")?;
    Ok(u64::try_from(value).unwrap_or(0))
}

/// Appends ` column >= from AND column < to`.
fn push_period(sql: &mut Sql, column: &str, period: Period) {
    sql.push(column);
    sql.push(" >= ");
    sql.bind(period.from);
    sql.push(" AND ");
    sql.push(column);
    sql.push(" < ");
    sql.bind(period.to);
}

/// Attempts made in the period (`attempts.at`), counted by their task's group and outcome.
pub async fn attempt_counts(db: &impl ConnectionTrait, period: Period) -> Result<Vec<AttemptCount>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {GROUP_COLUMNS}, a.outcome, COUNT(*) FROM attempts a LEFT JOIN tasks t ON t.id = a.task_id WHERE "
    ));
    push_period(&mut sql, "a.at", period);
    sql.push(&format!(" GROUP BY {GROUP_COLUMNS}, a.outcome"));
    let mut counts = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        counts.push(AttemptCount {
            group: task_group(&row, "attempts", "group")?,
            outcome: get(&row, 4, "attempts", "outcome")?,
            count: count(&row, 5, "attempts")?,
        });
    }
    Ok(counts)
}

/// Promises counted by the group of the task whose attempt made them, and by status: those
/// made in the period (`made_at`) or, with `resolved`, those kept or broken in it
/// (`resolved_at`).
pub async fn promise_counts(
    db: &impl ConnectionTrait,
    period: Period,
    resolved: bool,
) -> Result<Vec<PromiseCount>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {GROUP_COLUMNS}, p.status, COUNT(*) FROM promises p LEFT JOIN attempts a ON a.id = p.attempt_id \
         LEFT JOIN tasks t ON t.id = a.task_id WHERE "
    ));
    if resolved {
        push_period(&mut sql, "p.resolved_at", period);
        sql.push(" AND p.status IN ('kept', 'broken')");
    } else {
        push_period(&mut sql, "p.made_at", period);
    }
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

/// Payments received in the period (`paid_at`), each with the account's currency and its
/// latest task whose window opened at or before the payment.
pub async fn payments_in(db: &impl ConnectionTrait, period: Period) -> Result<Vec<PaymentRow>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT {GROUP_COLUMNS}, p.id, p.amount, acc.currency FROM payments p \
         LEFT JOIN accounts acc ON acc.id = p.account_id LEFT JOIN tasks t ON t.id = {} WHERE ",
        latest_task_before("p.account_id", "p.paid_at")
    ));
    push_period(&mut sql, "p.paid_at", period);
    sql.push(" ORDER BY p.id");
    let mut payments = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let id: i64 = get(&row, 4, "payments", "id")?;
        let id = id.to_string();
        payments.push(PaymentRow {
            group: task_group(&row, "payments", &id)?,
            amount: get_money(&row, 5, backend, "payments", &id)?,
            currency: get(&row, 6, "payments", &id)?,
        });
    }
    Ok(payments)
}

/// `account.paid_in_full` audit rows in the period, in time order, each with the account's
/// latest task whose window opened at or before it.
pub async fn cures_in(db: &impl ConnectionTrait, period: Period) -> Result<Vec<CureRow>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {GROUP_COLUMNS}, l.entity_id FROM audit_log l LEFT JOIN tasks t ON t.id = {} \
         WHERE l.action = 'account.paid_in_full' AND l.entity = 'account' AND ",
        latest_task_before("l.entity_id", "l.at")
    ));
    push_period(&mut sql, "l.at", period);
    sql.push(" ORDER BY l.at, l.id");
    let mut cures = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let account_id: String = get(&row, 4, "audit_log", "entity_id")?;
        let group = task_group(&row, "audit_log", &account_id)?;
        cures.push(CureRow { account_id, group });
    }
    Ok(cures)
}

/// Stage changes in the period (`stage_history.at`) from one stage to another, counted; an
/// account's first classification (no `from_stage`) is not a move.
pub async fn stage_moves(db: &impl ConnectionTrait, period: Period) -> Result<Vec<StageMoveCount>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT from_stage, to_stage, COUNT(*) FROM stage_history WHERE from_stage IS NOT NULL AND ");
    push_period(&mut sql, "at", period);
    sql.push(" GROUP BY from_stage, to_stage");
    let mut moves = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        moves.push(StageMoveCount {
            from_stage: get(&row, 0, "stage_history", "from_stage")?,
            to_stage: get(&row, 1, "stage_history", "to_stage")?,
            count: count(&row, 2, "stage_history")?,
        });
    }
    Ok(moves)
}

/// Everything the KPI report of a period needs.
pub async fn load_kpi_input(db: &impl ConnectionTrait, period: Period) -> Result<KpiInput, StoreError> {
    Ok(KpiInput {
        attempts: attempt_counts(db, period).await?,
        promises_made: promise_counts(db, period, false).await?,
        promises_resolved: promise_counts(db, period, true).await?,
        payments: payments_in(db, period).await?,
        cures: cures_in(db, period).await?,
        moves: stage_moves(db, period).await?,
    })
}
