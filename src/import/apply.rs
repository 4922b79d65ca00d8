//! Writing checked batches, shared by the CSV importer and the HTTP API (`ops::ingest`):
//! accounts with their borrowers (upsert), and payments (idempotent by reference; they lower
//! the accounts' amounts and cancel the open tasks of an account paid in full, enqueuing the
//! `task.cancelled` messages owed for tasks already sent out).
//!
//! The caller holds the transaction, so a batch is written whole or not at all; nothing here
//! reads the clock (`now` comes in) or knows about files or JSON.

use super::records::{FieldError, Position};
use crate::domain::{Account, Borrower, Money, TaskState};
use crate::store::{self, ChannelFilter, NewPayment, StoreError, UpsertCounts};
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The state reason of tasks cancelled because their account was paid in full.
pub const PAID_IN_FULL: &str = "paid_in_full";

/// What writing accounts did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountsWritten {
    /// About the accounts.
    pub accounts: UpsertCounts,
    /// About their borrowers.
    pub borrowers: UpsertCounts,
    /// Contact points the batch no longer carried, now retired.
    pub contact_points_retired: u64,
    /// Retired contact points the batch carried again, current again.
    pub contact_points_restored: u64,
}

/// Upserts borrowers (with their contact points) and accounts. The batch's contact points are
/// its borrowers' current ones: stored points missing from it are retired and retired ones it
/// carries again come back (`store::retire_missing_contact_points`), each change with a
/// `contact_point.retired` / `contact_point.restored` audit row signed by `actor`. Accounts'
/// `flags` are the servicing system's; the engine's (`engine_flags`) are never touched here.
pub(crate) async fn write_accounts(
    txn: &impl ConnectionTrait,
    accounts: &[Account],
    borrowers: &[Borrower],
    now: DateTime<Utc>,
    actor: &str,
) -> Result<AccountsWritten, StoreError> {
    let borrower_counts = store::upsert_borrowers(txn, borrowers, now).await?;
    let points = store::retire_missing_contact_points(txn, borrowers, now).await?;
    for (action, keys) in [("contact_point.retired", &points.retired), ("contact_point.restored", &points.restored)] {
        let rows: Vec<(String, serde_json::Value)> = keys
            .iter()
            .map(|key| {
                let detail = serde_json::json!({"kind": key.kind.code(), "address": key.address});
                (key.borrower_id.clone(), detail)
            })
            .collect();
        store::record_audits_at(txn, now, actor, action, "borrower", &rows).await?;
    }
    let accounts = store::upsert_accounts(txn, accounts, now).await?;
    Ok(AccountsWritten {
        accounts,
        borrowers: borrower_counts,
        contact_points_retired: points.retired.len() as u64,
        contact_points_restored: points.restored.len() as u64,
    })
}

/// What applying payments did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentsApplied {
    /// Payments new to the store.
    pub inserted: u64,
    /// References of payments the store (or the batch, earlier) already had, as they were.
    pub duplicates: Vec<String>,
    /// Accounts whose `amount_due` these payments brought to zero, in id order.
    pub paid_in_full: Vec<String>,
    /// Open tasks cancelled because their account was paid in full.
    pub tasks_cancelled: u64,
}

/// Checks and applies payments:
/// - every account must be stored, else an error on `account_id`;
/// - a reference already stored, or earlier in the batch, with the same account, amount and
///   time is a duplicate and changes nothing; with other values it is a conflict on `reference`;
/// - new payments are inserted and lower their account's `amount_due` and `balance`, never
///   below zero, by a relative update the database computes on the row it holds: payments
///   posted at the same moment all count (see `store::apply_payment_totals`); a reference that
///   a concurrent request recorded first is a duplicate or a conflict as above;
/// - an account whose `amount_due` the update left at zero gets its open tasks (`planned`, `ready`,
///   `leased`, `dispatched`) cancelled with reason `paid_in_full` and one audit row by `actor`;
///   a `task.cancelled` message is enqueued for every cancelled task a `task.ready` went out
///   about (see `dispatch::enqueue_cancellations`).
///
/// Returns the errors (and writes nothing) when any payment is bad.
pub(crate) async fn apply_payments<P: Position>(
    txn: &impl ConnectionTrait,
    payments: &[(P, NewPayment)],
    now: DateTime<Utc>,
    actor: &str,
) -> Result<Result<PaymentsApplied, Vec<FieldError<P>>>, StoreError> {
    let mut ids: Vec<&str> = payments.iter().map(|(_, payment)| payment.account_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let accounts = store::account_refs(txn, &ids).await?;
    let references: Vec<&str> = payments.iter().map(|(_, payment)| payment.reference.as_str()).collect();
    let stored = store::stored_payments(txn, &references).await?;

    let mut errors = Vec::new();
    let mut seen: HashMap<&str, &NewPayment> = HashMap::new();
    let mut new: Vec<(&P, &NewPayment)> = Vec::new();
    let mut duplicates = Vec::new();
    for (at, payment) in payments {
        if !accounts.contains_key(&payment.account_id) {
            let message = format!("is not a known account ({})", P::UNKNOWN_ACCOUNT_HINT);
            errors.push(FieldError::new(at.clone(), "account_id", Some(&payment.account_id), message));
            continue;
        }
        let earlier = seen.get(payment.reference.as_str()).map(|first| {
            (first.account_id.as_str(), first.amount, first.paid_at, format!("earlier in this {}", P::BATCH))
        });
        let recorded = stored
            .get(&payment.reference)
            .map(|stored| (stored.account_id.as_str(), stored.amount, stored.paid_at, "in the store".to_string()));
        match earlier.or(recorded) {
            Some((account_id, amount, paid_at, where_)) => {
                if account_id != payment.account_id || amount != payment.amount || paid_at != payment.paid_at {
                    let message = format!(
                        "is already recorded {where_} for account {account_id}, amount {amount}, paid at {}; \
                         a reference names one payment",
                        paid_at.to_rfc3339()
                    );
                    let mut error = FieldError::new(at.clone(), "reference", Some(&payment.reference), message);
                    error.conflict = true;
                    errors.push(error);
                } else {
                    duplicates.push(payment.reference.clone());
                }
            }
            None => {
                seen.insert(&payment.reference, payment);
                new.push((at, payment));
            }
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }

    // A reference that another request recorded since the check above (PostgreSQL: it waited
    // for that request to commit) is not inserted: compare it like any stored one.
    let new_payments: Vec<NewPayment> = new.iter().map(|(_, payment)| (*payment).clone()).collect();
    let inserted_refs = store::insert_payments(txn, &new_payments, now).await?;
    let inserted: HashSet<&str> = inserted_refs.iter().map(String::as_str).collect();
    let raced: Vec<&str> = new
        .iter()
        .map(|(_, payment)| payment.reference.as_str())
        .filter(|reference| !inserted.contains(reference))
        .collect();
    if !raced.is_empty() {
        let recorded = store::stored_payments(txn, &raced).await?;
        for (at, payment) in new.iter().filter(|(_, payment)| !inserted.contains(payment.reference.as_str())) {
            match recorded.get(&payment.reference) {
                Some(stored)
                    if stored.account_id == payment.account_id
                        && stored.amount == payment.amount
                        && stored.paid_at == payment.paid_at =>
                {
                    duplicates.push(payment.reference.clone())
                }
                stored => {
                    let message = match stored {
                        Some(stored) => format!(
                            "was just recorded by another request for account {}, amount {}, paid at {}; \
                             a reference names one payment",
                            stored.account_id,
                            stored.amount,
                            stored.paid_at.to_rfc3339()
                        ),
                        None => "is being recorded by another request; send it again".to_string(),
                    };
                    let mut error = FieldError::new((*at).clone(), "reference", Some(&payment.reference), message);
                    error.conflict = true;
                    errors.push(error);
                }
            }
        }
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
    }

    let mut paid: BTreeMap<&str, (Money, Vec<&str>)> = BTreeMap::new();
    for (_, payment) in new.iter().filter(|(_, payment)| inserted.contains(payment.reference.as_str())) {
        let entry = paid.entry(payment.account_id.as_str()).or_default();
        entry.0 += payment.amount;
        entry.1.push(payment.reference.as_str());
    }
    // Relative and atomic: the database lowers the amounts on the row it holds, and "paid in
    // full" is read from what the update left, so concurrent payments all count.
    let totals: Vec<(&str, Money)> = paid.iter().map(|(account_id, (total, _))| (*account_id, *total)).collect();
    let after = store::apply_payment_totals(txn, &totals, now).await?;
    let mut paid_in_full: Vec<(&str, &[&str])> = Vec::new();
    for account in after.iter().filter(|account| account.amount_due <= Money::ZERO) {
        if let Some((account_id, (_, references))) = paid.get_key_value(account.account_id.as_str()) {
            paid_in_full.push((account_id, references));
        }
    }

    let full_ids: Vec<&str> = paid_in_full.iter().map(|(id, _)| *id).collect();
    let audit = store::Audit::new(actor, serde_json::Value::Null);
    let closed = crate::dispatch::close_tasks(
        txn,
        &full_ids,
        ChannelFilter::All,
        None,
        TaskState::Cancelled,
        PAID_IN_FULL,
        audit,
        now,
    )
    .await?;
    let mut cancelled: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for task in &closed {
        cancelled.entry(task.account_id.as_str()).or_default().push(task.id);
    }
    let mut tasks_cancelled = 0;
    for (account_id, references) in &paid_in_full {
        let tasks = cancelled.get(*account_id).cloned().unwrap_or_default();
        tasks_cancelled += tasks.len() as u64;
        let detail = serde_json::json!({
            "reason": PAID_IN_FULL,
            "payments": references,
            "cancelled_tasks": tasks,
        });
        store::record_audit_at(txn, now, actor, "account.paid_in_full", "account", account_id, detail).await?;
    }
    Ok(Ok(PaymentsApplied {
        inserted: inserted_refs.len() as u64,
        duplicates,
        paid_in_full: full_ids.iter().map(|id| id.to_string()).collect(),
        tasks_cancelled,
    }))
}
