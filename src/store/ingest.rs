//! Writing what the servicing system sends: borrowers with contact points, accounts, payments,
//! attempts and promises. Bulk, idempotent statements; the caller holds the transaction.

use super::StoreError;
use super::book::{money_field, money_text, split_list};
use super::sql::{
    Sql, get, get_money, in_list_chunk, insert_values, is_postgres, max_binds, push_in_list, rows_per_statement,
    values_rows_per_statement, values_statement,
};
use crate::domain::{Account, Borrower, Channel, ContactKind, ContactPoint, Money, Outcome};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, Value};
use std::collections::{BTreeMap, HashMap};

/// What an upsert did to the rows it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    /// Rows that did not exist.
    pub inserted: u64,
    /// Rows that existed with different values.
    pub updated: u64,
    /// Rows that existed with the same values (left untouched, `updated_at` included).
    pub unchanged: u64,
}

/// Number of rows of one of the store's tables.
pub(crate) async fn count_rows(db: &impl ConnectionTrait, table: &'static str) -> Result<u64, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT COUNT(*) FROM ");
    sql.push(table);
    let row = db.query_one_raw(sql.statement()).await?;
    let count: i64 = match row {
        Some(row) => get(&row, 0, table, "count")?,
        None => 0,
    };
    Ok(u64::try_from(count).unwrap_or(0))
}

fn counts(given: usize, before: u64, after: u64, affected: u64) -> UpsertCounts {
    let inserted = after.saturating_sub(before);
    let updated = affected.saturating_sub(inserted);
    UpsertCounts { inserted, updated, unchanged: (given as u64).saturating_sub(inserted + updated) }
}

/// Upserts borrowers (name, time zones, robot consent) and adds their contact points.
///
/// Contact points are added, never deleted (see [`retire_missing_contact_points`] for those a
/// batch no longer carries), and a contact point's opt-outs are the union of the stored ones
/// and the given ones: a file cannot undo a STOP. `wrong_number` marks are left alone. Rows whose values are unchanged are not touched (`updated_at` included).
/// The counts are about the borrowers.
pub async fn upsert_borrowers(
    db: &impl ConnectionTrait,
    borrowers: &[Borrower],
    now: DateTime<Utc>,
) -> Result<UpsertCounts, StoreError> {
    let before = count_rows(db, "borrowers").await?;
    let affected = insert_values(
        db,
        "INSERT INTO borrowers (updated_at, id, name, timezones, consent_robot)",
        &[Value::from(now)],
        4,
        borrowers,
        |borrower, values| {
            let zones: Vec<&str> = borrower.timezones.iter().map(|zone| zone.name()).collect();
            values.push(Value::from(borrower.id.as_str()));
            values.push(Value::from(borrower.name.as_str()));
            values.push(Value::from(zones.join(";")));
            values.push(Value::from(borrower.consent_robot));
        },
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, timezones = excluded.timezones, \
         consent_robot = excluded.consent_robot, updated_at = excluded.updated_at \
         WHERE borrowers.name IS DISTINCT FROM excluded.name \
         OR borrowers.timezones IS DISTINCT FROM excluded.timezones \
         OR borrowers.consent_robot IS DISTINCT FROM excluded.consent_robot",
    )
    .await?;
    let after = count_rows(db, "borrowers").await?;
    upsert_contact_points(db, borrowers).await?;
    Ok(counts(borrowers.len(), before, after, affected))
}

/// One contact point row to upsert.
struct ContactRow<'a> {
    borrower_id: &'a str,
    kind: ContactKind,
    address: &'a str,
    opted_out: String,
}

/// `;`-joined channel codes, in contract order, without repeats.
fn channel_list(channels: impl IntoIterator<Item = Channel>) -> String {
    let mut channels: Vec<Channel> = channels.into_iter().collect();
    channels.sort();
    channels.dedup();
    channels.iter().map(|channel| channel.code()).collect::<Vec<_>>().join(";")
}

async fn upsert_contact_points(db: &impl ConnectionTrait, borrowers: &[Borrower]) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    let mut rows: Vec<ContactRow<'_>> = Vec::new();
    for borrower in borrowers {
        for point in &borrower.contact_points {
            rows.push(ContactRow {
                borrower_id: &borrower.id,
                kind: point.kind,
                address: &point.address,
                opted_out: channel_list(point.opted_out.iter().copied()),
            });
        }
    }

    // Opt-outs merge with the stored ones: read those of the borrowers concerned (rare).
    let with_opt_outs: Vec<&str> = {
        let mut ids: Vec<&str> =
            rows.iter().filter(|row| !row.opted_out.is_empty()).map(|row| row.borrower_id).collect();
        ids.dedup();
        ids
    };
    let mut stored: HashMap<(String, String, String), String> = HashMap::new();
    for chunk in with_opt_outs.chunks(in_list_chunk(backend, 0)) {
        let mut sql = Sql::new(backend);
        sql.push("SELECT borrower_id, kind, address, opted_out FROM contact_points WHERE ");
        push_in_list(&mut sql, "borrower_id", chunk);
        for row in db.query_all_raw(sql.statement()).await? {
            let borrower_id: String = get(&row, 0, "contact_points", "?")?;
            let kind: String = get(&row, 1, "contact_points", &borrower_id)?;
            let address: String = get(&row, 2, "contact_points", &borrower_id)?;
            let opted_out: String = get(&row, 3, "contact_points", &borrower_id)?;
            stored.insert((borrower_id, kind, address), opted_out);
        }
    }
    for row in rows.iter_mut().filter(|row| !row.opted_out.is_empty()) {
        let key = (row.borrower_id.to_string(), row.kind.code().to_string(), row.address.to_string());
        if let Some(existing) = stored.get(&key) {
            let merged = split_list(existing)
                .filter_map(|code| code.parse::<Channel>().ok())
                .chain(split_list(&row.opted_out).filter_map(|code| code.parse::<Channel>().ok()));
            row.opted_out = channel_list(merged);
        }
    }

    insert_values(
        db,
        "INSERT INTO contact_points (borrower_id, kind, address, opted_out)",
        &[],
        4,
        &rows,
        |row, values| {
            values.push(Value::from(row.borrower_id));
            values.push(Value::from(row.kind.code()));
            values.push(Value::from(row.address));
            values.push(Value::from(row.opted_out.as_str()));
        },
        " ON CONFLICT (borrower_id, kind, address) DO UPDATE SET opted_out = excluded.opted_out \
         WHERE excluded.opted_out <> '' AND contact_points.opted_out <> excluded.opted_out",
    )
    .await?;
    Ok(())
}

/// One contact point, by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactPointKey {
    /// Its borrower.
    pub borrower_id: String,
    /// Phone or e-mail.
    pub kind: ContactKind,
    /// The number or address.
    pub address: String,
}

/// What [`retire_missing_contact_points`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactPointsRetired {
    /// Current points that were missing from the batch, now retired.
    pub retired: Vec<ContactPointKey>,
    /// Retired points the batch carried again, current again.
    pub restored: Vec<ContactPointKey>,
}

/// Makes the batch's contact points the current ones of its borrowers: each borrower's points
/// in `borrowers` (the union over the batch's rows, as the batch checker builds them) are its
/// current set. Stored points of those borrowers that are missing from it get `retired_at =
/// now`; retired points the batch carries again get `retired_at = NULL`. Opt-outs and
/// wrong-number marks are untouched, so they still hold while a point is retired and after it
/// returns. Borrowers not in the batch are left alone. Call after [`upsert_borrowers`].
pub async fn retire_missing_contact_points(
    db: &impl ConnectionTrait,
    borrowers: &[Borrower],
    now: DateTime<Utc>,
) -> Result<ContactPointsRetired, StoreError> {
    let backend = db.get_database_backend();
    let mut changes = ContactPointsRetired::default();
    let decode = |row: &sea_orm::QueryResult| -> Result<ContactPointKey, StoreError> {
        let borrower_id: String = get(row, 0, "contact_points", "?")?;
        let kind: String = get(row, 1, "contact_points", &borrower_id)?;
        let kind = super::book::parse_kind(&kind).ok_or_else(|| StoreError::Corrupt {
            table: "contact_points",
            id: borrower_id.clone(),
            message: format!("unknown kind `{kind}`"),
        })?;
        Ok(ContactPointKey { borrower_id, kind, address: get(row, 2, "contact_points", "?")? })
    };

    // Cheap checks first (one bound id per borrower), precise statements only where needed: a
    // changed contact list is rare, and binding every point of a big import again would cost
    // as much as the upsert itself.
    let chunk = in_list_chunk(backend, 1);
    let batch: HashMap<&str, &Borrower> = borrowers.iter().map(|borrower| (borrower.id.as_str(), borrower)).collect();

    // Points that come back: the retired points of the batch's borrowers that the batch carries.
    let mut back: Vec<(&str, &ContactPoint)> = Vec::new();
    let ids: Vec<&str> = borrowers.iter().map(|borrower| borrower.id.as_str()).collect();
    for ids in ids.chunks(chunk) {
        let mut sql = Sql::new(backend);
        sql.push("SELECT borrower_id, kind, address FROM contact_points WHERE retired_at IS NOT NULL AND ");
        push_in_list(&mut sql, "borrower_id", ids);
        for row in db.query_all_raw(sql.statement()).await? {
            let key = decode(&row)?;
            let Some(borrower) = batch.get(key.borrower_id.as_str()) else { continue };
            if let Some(point) =
                borrower.contact_points.iter().find(|point| point.kind == key.kind && point.address == key.address)
            {
                back.push((borrower.id.as_str(), point));
            }
        }
    }
    for points in back.chunks(rows_per_statement(backend, 3, 0)) {
        let mut sql = Sql::new(backend);
        sql.push(
            "UPDATE contact_points SET retired_at = NULL WHERE retired_at IS NOT NULL \
             AND (borrower_id, kind, address) IN (VALUES ",
        );
        push_point_rows(&mut sql, points);
        sql.push(") RETURNING borrower_id, kind, address");
        for row in db.query_all_raw(sql.statement()).await? {
            changes.restored.push(decode(&row)?);
        }
    }

    // Points that are gone. Every point of the batch is now stored and current, so a borrower
    // has one to retire exactly when it has more current points than the batch carries.
    let mut by_count: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for borrower in borrowers {
        by_count.entry(borrower.contact_points.len()).or_default().push(&borrower.id);
    }
    let mut changed: Vec<&Borrower> = Vec::new();
    for (count, ids) in &by_count {
        for ids in ids.chunks(chunk) {
            let mut sql = Sql::new(backend);
            sql.push("SELECT borrower_id FROM contact_points WHERE retired_at IS NULL AND ");
            push_in_list(&mut sql, "borrower_id", ids);
            sql.push(" GROUP BY borrower_id HAVING COUNT(*) > ");
            sql.bind(i64::try_from(*count).unwrap_or(i64::MAX));
            for row in db.query_all_raw(sql.statement()).await? {
                let id: String = get(&row, 0, "contact_points", "?")?;
                if let Some(borrower) = batch.get(id.as_str()) {
                    changed.push(borrower);
                }
            }
        }
    }
    // Per group of those borrowers (below the bind limit): every current point not in the batch.
    let budget = max_binds(backend) - 1;
    let mut start = 0;
    while start < changed.len() {
        let (mut end, mut binds) = (start, 0);
        while end < changed.len() {
            let cost = 1 + 3 * changed[end].contact_points.len();
            if end > start && binds + cost > budget {
                break;
            }
            binds += cost;
            end += 1;
        }
        let group = &changed[start..end];
        start = end;
        let ids: Vec<&str> = group.iter().map(|borrower| borrower.id.as_str()).collect();
        let points: Vec<(&str, &ContactPoint)> = group
            .iter()
            .flat_map(|borrower| borrower.contact_points.iter().map(move |point| (borrower.id.as_str(), point)))
            .collect();
        let mut sql = Sql::new(backend);
        sql.push("UPDATE contact_points SET retired_at = ");
        sql.bind(now);
        sql.push(" WHERE retired_at IS NULL AND ");
        push_in_list(&mut sql, "borrower_id", &ids);
        if !points.is_empty() {
            sql.push(" AND (borrower_id, kind, address) NOT IN (VALUES ");
            push_point_rows(&mut sql, &points);
            sql.push(")");
        }
        sql.push(" RETURNING borrower_id, kind, address");
        for row in db.query_all_raw(sql.statement()).await? {
            changes.retired.push(decode(&row)?);
        }
    }
    let order = |key: &ContactPointKey| (key.borrower_id.clone(), key.kind.code(), key.address.clone());
    changes.retired.sort_by_key(order);
    changes.restored.sort_by_key(order);
    Ok(changes)
}

/// `(borrower_id, kind, address), ...` for the points.
fn push_point_rows(sql: &mut Sql, points: &[(&str, &ContactPoint)]) {
    for (index, (borrower_id, point)) in points.iter().enumerate() {
        if index > 0 {
            sql.push(", ");
        }
        sql.bind_row([Value::from(*borrower_id), Value::from(point.kind.code()), Value::from(point.address.as_str())]);
    }
}

/// Upserts accounts: everything the servicing system owns (borrower, product, currency,
/// amounts, due date, tags, flags, scores, attributes, funding shares). `broken_promises` and `stage` belong to
/// the engine and are not touched. Unchanged rows are left alone (`updated_at` included).
pub async fn upsert_accounts(
    db: &impl ConnectionTrait,
    accounts: &[Account],
    now: DateTime<Utc>,
) -> Result<UpsertCounts, StoreError> {
    let before = count_rows(db, "accounts").await?;
    let affected = insert_values(
        db,
        "INSERT INTO accounts (updated_at, id, borrower_id, product, currency, amount_due, balance, \
         due_date, tags, flags, scores, attrs, funders)",
        &[Value::from(now)],
        12,
        accounts,
        |account, values| {
            values.push(Value::from(account.id.as_str()));
            values.push(Value::from(account.borrower_id.as_str()));
            values.push(Value::from(account.product.as_str()));
            values.push(Value::from(account.currency.as_str()));
            values.push(Value::from(account.amount_due));
            values.push(Value::from(account.balance));
            values.push(Value::from(account.due_date));
            values.push(Value::from(account.tags.join(";")));
            values.push(Value::from(account.flags.to_list()));
            values.push(Value::from(scores_json(&account.scores)));
            values.push(Value::from(attrs_json(&account.attrs)));
            values.push(Value::from(account.funders.as_ref().map(|shares| shares.to_string())));
        },
        " ON CONFLICT (id) DO UPDATE SET borrower_id = excluded.borrower_id, \
         product = excluded.product, currency = excluded.currency, \
         amount_due = excluded.amount_due, balance = excluded.balance, \
         due_date = excluded.due_date, tags = excluded.tags, flags = excluded.flags, \
         scores = excluded.scores, attrs = excluded.attrs, funders = excluded.funders, \
         updated_at = excluded.updated_at \
         WHERE accounts.borrower_id IS DISTINCT FROM excluded.borrower_id \
         OR accounts.product IS DISTINCT FROM excluded.product \
         OR accounts.currency IS DISTINCT FROM excluded.currency \
         OR accounts.amount_due IS DISTINCT FROM excluded.amount_due \
         OR accounts.balance IS DISTINCT FROM excluded.balance \
         OR accounts.due_date IS DISTINCT FROM excluded.due_date \
         OR accounts.tags IS DISTINCT FROM excluded.tags \
         OR accounts.flags IS DISTINCT FROM excluded.flags \
         OR accounts.scores IS DISTINCT FROM excluded.scores \
         OR accounts.attrs IS DISTINCT FROM excluded.attrs \
         OR accounts.funders IS DISTINCT FROM excluded.funders",
    )
    .await?;
    let after = count_rows(db, "accounts").await?;
    Ok(counts(accounts.len(), before, after, affected))
}

/// Scores as stored: a JSON object with keys in name order.
fn scores_json(scores: &[(String, f64)]) -> String {
    let map: BTreeMap<&str, f64> = scores.iter().map(|(name, value)| (name.as_str(), *value)).collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
}

/// Attributes as stored: a JSON object with keys in name order.
fn attrs_json(attrs: &[(String, String)]) -> String {
    let map: BTreeMap<&str, &str> = attrs.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
}

/// What the importers need to know about an existing account.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRef {
    /// Its borrower.
    pub borrower_id: String,
    /// Amount overdue now.
    pub amount_due: Money,
    /// Outstanding balance.
    pub balance: Money,
}

/// The stored accounts among `ids` (unknown ids are simply absent from the map).
pub async fn account_refs(db: &impl ConnectionTrait, ids: &[&str]) -> Result<HashMap<String, AccountRef>, StoreError> {
    let backend = db.get_database_backend();
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(in_list_chunk(backend, 0)) {
        let mut sql = Sql::new(backend);
        sql.push("SELECT id, borrower_id, amount_due, balance FROM accounts WHERE ");
        push_in_list(&mut sql, "id", chunk);
        for row in db.query_all_raw(sql.statement()).await? {
            let id: String = get(&row, 0, "accounts", "?")?;
            let account = AccountRef {
                borrower_id: get(&row, 1, "accounts", &id)?,
                amount_due: get_money(&row, 2, backend, "accounts", &id)?,
                balance: get_money(&row, 3, backend, "accounts", &id)?,
            };
            found.insert(id, account);
        }
    }
    Ok(found)
}

/// A payment as already stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPayment {
    /// The account paid.
    pub account_id: String,
    /// Amount paid.
    pub amount: Money,
    /// When.
    pub paid_at: DateTime<Utc>,
}

/// The stored payments among `references`, by reference.
pub async fn stored_payments(
    db: &impl ConnectionTrait,
    references: &[&str],
) -> Result<HashMap<String, StoredPayment>, StoreError> {
    let backend = db.get_database_backend();
    let mut found = HashMap::new();
    for chunk in references.chunks(in_list_chunk(backend, 0)) {
        let mut sql = Sql::new(backend);
        sql.push("SELECT reference, account_id, amount, paid_at FROM payments WHERE ");
        push_in_list(&mut sql, "reference", chunk);
        for row in db.query_all_raw(sql.statement()).await? {
            let reference: String = get(&row, 0, "payments", "?")?;
            let payment = StoredPayment {
                account_id: get(&row, 1, "payments", &reference)?,
                amount: get_money(&row, 2, backend, "payments", &reference)?,
                paid_at: get(&row, 3, "payments", &reference)?,
            };
            found.insert(reference, payment);
        }
    }
    Ok(found)
}

/// A payment to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPayment {
    /// The account paid.
    pub account_id: String,
    /// Amount paid.
    pub amount: Money,
    /// When.
    pub paid_at: DateTime<Utc>,
    /// The servicing system's reference: the idempotency key.
    pub reference: String,
}

/// Inserts payments, skipping references already stored; returns the references inserted.
/// Adjusting the accounts is the caller's job ([`apply_payment_totals`]).
///
/// The rows go in reference order: on PostgreSQL a reference another transaction is inserting
/// makes this one wait for it (and then skip it), and a common order means two batches sharing
/// references wait on each other instead of deadlocking.
pub async fn insert_payments(
    db: &impl ConnectionTrait,
    payments: &[NewPayment],
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let backend = db.get_database_backend();
    let mut sorted: Vec<&NewPayment> = payments.iter().collect();
    sorted.sort_by(|a, b| a.reference.cmp(&b.reference));
    let shared = [Value::from(now)];
    let mut inserted = Vec::new();
    for chunk in sorted.chunks(values_rows_per_statement(backend, 4, shared.len())) {
        let statement = values_statement(
            backend,
            "INSERT INTO payments (created_at, account_id, amount, paid_at, reference)",
            &shared,
            4,
            chunk,
            &|payment: &&NewPayment, values: &mut Vec<Value>| {
                values.push(Value::from(payment.account_id.as_str()));
                values.push(Value::from(payment.amount));
                values.push(Value::from(payment.paid_at));
                values.push(Value::from(payment.reference.as_str()));
            },
            " ON CONFLICT (reference) DO NOTHING RETURNING reference",
        );
        for row in db.query_all_raw(statement).await? {
            inserted.push(get::<String>(&row, 0, "payments", "?")?);
        }
    }
    Ok(inserted)
}

/// An account's amounts after payments were applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PaidAccount {
    /// The account.
    pub account_id: String,
    /// Amount overdue now.
    pub amount_due: Money,
    /// Outstanding balance now.
    pub balance: Money,
}

/// Lowers accounts' `amount_due` and `balance` by the amounts paid, never below zero (and
/// stamps `updated_at`), and returns the amounts the update left: one relative statement per
/// chunk, computed by the database on the row it holds, so concurrent payments on one account
/// all count (`GREATEST(amount_due - paid, 0)` on PostgreSQL; `MAX(...)` rounded to 4 decimals
/// on SQLite, whose money is REAL, so that 0.1 + 0.2 style sums leave nothing owing). On
/// PostgreSQL the rows are locked in id order first, so batches paying the same accounts wait
/// on each other instead of deadlocking. Unknown accounts are absent from the answer. An
/// account left owing nothing loses its stage (it is `current`; the next plan that finds it
/// due again records its entry from no stage, which the roll matrix and vintages read).
pub async fn apply_payment_totals(
    db: &impl ConnectionTrait,
    totals: &[(&str, Money)],
    now: DateTime<Utc>,
) -> Result<Vec<PaidAccount>, StoreError> {
    let backend = db.get_database_backend();
    let postgres = is_postgres(backend);
    let mut sorted: Vec<&(&str, Money)> = totals.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut paid = Vec::with_capacity(totals.len());
    for chunk in sorted.chunks(rows_per_statement(backend, 2, 1)) {
        if postgres {
            let ids: Vec<&str> = chunk.iter().map(|(id, _)| *id).collect();
            let mut sql = Sql::new(backend);
            sql.push("SELECT id FROM accounts WHERE ");
            push_in_list(&mut sql, "id", &ids);
            sql.push(" ORDER BY id FOR UPDATE");
            db.query_all_raw(sql.statement()).await?;
        }
        let mut sql = Sql::new(backend);
        sql.push("WITH v(id, paid) AS (VALUES ");
        for (index, (id, amount)) in chunk.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.bind_row([Value::from(*id), Value::from(*amount)]);
        }
        if postgres {
            sql.push(
                ") UPDATE accounts SET amount_due = GREATEST(accounts.amount_due - v.paid, 0), \
                 balance = GREATEST(accounts.balance - v.paid, 0), updated_at = ",
            );
        } else {
            sql.push(
                ") UPDATE accounts SET amount_due = ROUND(MAX(accounts.amount_due - CAST(v.paid AS REAL), 0), 4), \
                 balance = ROUND(MAX(accounts.balance - CAST(v.paid AS REAL), 0), 4), updated_at = ",
            );
        }
        sql.bind(now);
        sql.push(" FROM v WHERE accounts.id = v.id RETURNING accounts.id, ");
        sql.push(&money_field(backend, "accounts.amount_due"));
        sql.push(", ");
        sql.push(&money_field(backend, "accounts.balance"));
        for row in db.query_all_raw(sql.statement()).await? {
            let account_id: String = get(&row, 0, "accounts", "?")?;
            let money = |index: usize| -> Result<Money, StoreError> {
                let text: String = get(&row, index, "accounts", &account_id)?;
                money_text(&text).ok_or_else(|| StoreError::Corrupt {
                    table: "accounts",
                    id: account_id.clone(),
                    message: format!("column {index}: `{text}` is not an amount of money"),
                })
            };
            let (amount_due, balance) = (money(1)?, money(2)?);
            paid.push(PaidAccount { account_id, amount_due, balance });
        }
    }
    paid.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    let cleared: Vec<&str> =
        paid.iter().filter(|account| account.amount_due.is_zero()).map(|account| account.account_id.as_str()).collect();
    for chunk in cleared.chunks(in_list_chunk(backend, 0)) {
        let mut sql = Sql::new(backend);
        sql.push("DELETE FROM account_stages WHERE ");
        push_in_list(&mut sql, "account_id", chunk);
        db.execute_raw(sql.statement()).await?;
    }
    Ok(paid)
}

/// A contact attempt to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAttempt {
    /// The account the attempt was about.
    pub account_id: String,
    /// Its borrower.
    pub borrower_id: String,
    /// The task it carried out, when known.
    pub task_id: Option<i64>,
    /// How.
    pub channel: Channel,
    /// The phone number or e-mail address used, when known.
    pub address: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// What happened.
    pub outcome: Outcome,
    /// Free text from the agent or dialler.
    pub note: Option<String>,
}

/// Inserts attempts, skipping those already stored (same account, channel and instant);
/// returns how many were inserted.
pub async fn insert_attempts(db: &impl ConnectionTrait, attempts: &[NewAttempt]) -> Result<u64, StoreError> {
    insert_values(
        db,
        "INSERT INTO attempts (account_id, borrower_id, task_id, channel, address, at, outcome, note)",
        &[],
        8,
        attempts,
        |attempt, values| {
            values.push(Value::from(attempt.account_id.as_str()));
            values.push(Value::from(attempt.borrower_id.as_str()));
            values.push(Value::BigInt(attempt.task_id));
            values.push(Value::from(attempt.channel.code()));
            values.push(Value::String(attempt.address.clone()));
            values.push(Value::from(attempt.at));
            values.push(Value::from(attempt.outcome.code()));
            values.push(Value::String(attempt.note.clone()));
        },
        " ON CONFLICT (account_id, channel, at) DO NOTHING",
    )
    .await
}

/// Marks `(borrower id, phone)` contact points as wrong numbers; returns how many changed.
pub async fn mark_wrong_numbers(db: &impl ConnectionTrait, phones: &[(&str, &str)]) -> Result<u64, StoreError> {
    let backend = db.get_database_backend();
    let mut changed = 0;
    for chunk in phones.chunks(rows_per_statement(backend, 2, 0)) {
        let mut sql = Sql::new(backend);
        sql.push(
            "UPDATE contact_points SET wrong_number = TRUE WHERE kind = 'phone' \
             AND wrong_number = FALSE AND (borrower_id, address) IN (VALUES ",
        );
        for (index, (borrower_id, phone)) in chunk.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.bind_row([Value::from(*borrower_id), Value::from(*phone)]);
        }
        sql.push(")");
        changed += db.execute_raw(sql.statement()).await?.rows_affected();
    }
    Ok(changed)
}

/// A promise to pay to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPromise {
    /// The account.
    pub account_id: String,
    /// Promised amount.
    pub amount: Money,
    /// The day by which the borrower promised to pay.
    pub due_on: NaiveDate,
    /// When the promise was made.
    pub made_at: DateTime<Utc>,
}

/// Inserts open promises, skipping those already stored (same account and instant); returns
/// how many were inserted.
pub async fn insert_promises(db: &impl ConnectionTrait, promises: &[NewPromise]) -> Result<u64, StoreError> {
    insert_values(
        db,
        "INSERT INTO promises (account_id, amount, due_on, made_at)",
        &[],
        4,
        promises,
        |promise, values| {
            values.push(Value::from(promise.account_id.as_str()));
            values.push(Value::from(promise.amount));
            values.push(Value::from(promise.due_on));
            values.push(Value::from(promise.made_at));
        },
        " ON CONFLICT (account_id, made_at) DO NOTHING",
    )
    .await
}
