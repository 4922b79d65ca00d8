//! `experiment_entries` and the reads behind an experiment reading: writing the entries a plan
//! run found (the first entry of an account stays), listing the experiments that have
//! entries, and loading one experiment's entries with the outcomes after them (cures,
//! payments, attempts up to the look). No statistics here (`crate::experiment`).

use super::StoreError;
use super::sql::{Sql, get, get_money, insert_values};
use crate::domain::Outcome;
use crate::experiment::reading::{EntryRow, Outcomes};
use crate::plan::ExperimentEntry;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};

/// Inserts the entries of a plan run at `at`, leaving an account already in an experiment as
/// it entered (sticky: its arm and entry instant never change).
pub async fn insert_entries(
    db: &impl ConnectionTrait,
    run_id: i64,
    at: DateTime<Utc>,
    entries: &[ExperimentEntry],
) -> Result<u64, StoreError> {
    if entries.is_empty() {
        return Ok(0);
    }
    insert_values(
        db,
        "INSERT INTO experiment_entries (entered_at, plan_run_id, experiment, account_id, strategy, borrower_id, arm, \
         stage, dpd, balance, currency)",
        &[Value::from(at), Value::from(run_id)],
        9,
        entries,
        |entry, values| {
            values.push(Value::from(&*entry.experiment));
            values.push(Value::from(entry.account_id.as_str()));
            values.push(Value::from(&*entry.strategy));
            values.push(Value::from(entry.borrower_id.as_str()));
            values.push(Value::from(&*entry.arm));
            values.push(Value::from(&*entry.stage));
            values.push(Value::from(entry.dpd));
            values.push(Value::from(entry.balance));
            values.push(Value::from(entry.currency.as_str()));
        },
        " ON CONFLICT (experiment, account_id) DO NOTHING",
    )
    .await
}

/// One experiment known from its entries: `(experiment, strategy, stage)`, by name.
pub async fn entered_experiments(db: &impl ConnectionTrait) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "SELECT experiment, MIN(strategy), MIN(stage) FROM experiment_entries GROUP BY experiment ORDER BY experiment",
    );
    let mut experiments = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let name: String = get(&row, 0, "experiment_entries", "experiment")?;
        experiments.push((
            name.clone(),
            get(&row, 1, "experiment_entries", &name)?,
            get(&row, 2, "experiment_entries", &name)?,
        ));
    }
    Ok(experiments)
}

/// The entries of `experiment` made before `as_of`, in account order.
pub async fn entries_of(
    db: &impl ConnectionTrait,
    experiment: &str,
    as_of: DateTime<Utc>,
) -> Result<Vec<EntryRow>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(
        "SELECT account_id, arm, entered_at, dpd, balance, currency, borrower_id FROM experiment_entries \
         WHERE experiment = ",
    );
    sql.bind(experiment);
    sql.push(" AND entered_at < ");
    sql.bind(as_of);
    sql.push(" ORDER BY account_id");
    let mut entries = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let account_id: String = get(&row, 0, "experiment_entries", "account_id")?;
        entries.push(EntryRow {
            arm: get(&row, 1, "experiment_entries", &account_id)?,
            entered_at: get(&row, 2, "experiment_entries", &account_id)?,
            dpd: get(&row, 3, "experiment_entries", &account_id)?,
            balance: get_money(&row, 4, backend, "experiment_entries", &account_id)?,
            currency: get(&row, 5, "experiment_entries", &account_id)?,
            borrower_id: get(&row, 6, "experiment_entries", &account_id)?,
            account_id,
        });
    }
    Ok(entries)
}

/// What happened to the accounts of `experiment` after each entered and before `as_of`:
/// paid-in-full events, payments and attempts.
pub async fn outcomes_of(
    db: &impl ConnectionTrait,
    experiment: &str,
    as_of: DateTime<Utc>,
) -> Result<Outcomes, StoreError> {
    let backend = db.get_database_backend();
    let mut outcomes = Outcomes::default();
    let after = |sql: &mut Sql, column: &str| {
        sql.push(" WHERE e.experiment = ");
        sql.bind(experiment);
        sql.push(&format!(" AND {column} >= e.entered_at AND {column} < "));
        sql.bind(as_of);
    };

    let mut sql = Sql::new(backend);
    sql.push(
        "SELECT l.entity_id, l.at FROM audit_log l JOIN experiment_entries e ON e.account_id = l.entity_id \
         AND l.action = 'account.paid_in_full' AND l.entity = 'account'",
    );
    after(&mut sql, "l.at");
    for row in db.query_all_raw(sql.statement()).await? {
        let account_id: String = get(&row, 0, "audit_log", "entity_id")?;
        let at: DateTime<Utc> = get(&row, 1, "audit_log", &account_id)?;
        outcomes.cures.entry(account_id).or_default().push(at);
    }

    let mut sql = Sql::new(backend);
    sql.push(
        "SELECT p.id, p.account_id, p.paid_at, p.amount FROM payments p \
         JOIN experiment_entries e ON e.account_id = p.account_id",
    );
    after(&mut sql, "p.paid_at");
    for row in db.query_all_raw(sql.statement()).await? {
        let id: i64 = get(&row, 0, "payments", "id")?;
        let id = id.to_string();
        let account_id: String = get(&row, 1, "payments", &id)?;
        let at: DateTime<Utc> = get(&row, 2, "payments", &id)?;
        let amount = get_money(&row, 3, backend, "payments", &id)?;
        outcomes.payments.entry(account_id).or_default().push((at, amount));
    }

    let mut sql = Sql::new(backend);
    sql.push(
        "SELECT a.account_id, a.at, a.outcome FROM attempts a JOIN experiment_entries e ON e.account_id = a.account_id",
    );
    after(&mut sql, "a.at");
    for row in db.query_all_raw(sql.statement()).await? {
        let account_id: String = get(&row, 0, "attempts", "account_id")?;
        let at: DateTime<Utc> = get(&row, 1, "attempts", &account_id)?;
        let outcome: String = get(&row, 2, "attempts", &account_id)?;
        let rpc = outcome.parse::<Outcome>().is_ok_and(Outcome::is_right_party);
        outcomes.attempts.entry(account_id).or_default().push((at, rpc));
    }
    Ok(outcomes)
}
