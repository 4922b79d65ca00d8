//! Ingest over the API: accounts and payments as JSON arrays from the servicing system.
//!
//! The records go through the same checks and writes as the CSV importer (`import::records`,
//! `import::apply`): every item is checked first, every error names the item and the field
//! (`[3].timezones: "Mars/Olympus" is not an IANA time zone ...`), and a batch is written in
//! one transaction or not at all. This module owns the JSON shapes; it knows nothing of HTTP.

use crate::import::records::{AccountBatch, AccountRecord, FieldError, Position};
use crate::import::{PaymentsApplied, apply};
use crate::store::{self, NewPayment, StoreError, UpsertCounts};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// An amount of money as sent: a JSON string (`"1234.50"`, exact) or a JSON number (exact up to
/// 15 significant digits; a number that a binary float cannot carry exactly is refused, so that
/// no amount is ever rounded on the way in).
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
#[schema(value_type = String, example = "1234.50")]
pub struct MoneyText(pub String);

impl<'de> Deserialize<'de> for MoneyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = MoneyText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an amount as a string like \"1234.50\" or a number")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<MoneyText, E> {
                Ok(MoneyText(value.trim().to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<MoneyText, E> {
                Ok(MoneyText(value.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<MoneyText, E> {
                Ok(MoneyText(value.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<MoneyText, E> {
                // Rust prints the shortest text that reads back as the same float; up to 15
                // significant digits that is exactly the decimal that was written.
                let text = value.to_string();
                let digits = text.trim_start_matches('-').replace('.', "");
                if digits.trim_start_matches('0').trim_end_matches('0').len() > 15 {
                    return Err(E::custom(format!(
                        "the number {text} has more than 15 significant digits and cannot be read exactly; \
                         send the amount as a string like \"1234.50\""
                    )));
                }
                Ok(MoneyText(text))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One account as `POST /v1/accounts` takes it: the fields of `accounts.csv`, lists as arrays
/// and `score.<model>` / `attr.<name>` columns as the `scores` and `attrs` objects.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountIn {
    /// The servicing system's account id; once per request.
    pub account_id: String,
    /// The borrower who owes it.
    pub borrower_id: String,
    /// The borrower's name.
    #[serde(default)]
    pub name: String,
    /// E.164 numbers.
    #[serde(default)]
    #[schema(example = json!(["+8613800138000"]))]
    pub phones: Vec<String>,
    /// One e-mail address, or null.
    #[serde(default)]
    pub email: Option<String>,
    /// IANA time zones, at least one; the first is the primary one.
    #[schema(example = json!(["Asia/Shanghai"]))]
    pub timezones: Vec<String>,
    /// Product code.
    pub product: String,
    /// ISO 4217 code.
    #[schema(example = "CNY")]
    pub currency: String,
    /// Amount overdue, zero or more.
    pub amount_due: MoneyText,
    /// Outstanding balance, zero or more.
    pub balance: MoneyText,
    /// Oldest unpaid due date, `YYYY-MM-DD`.
    #[schema(example = "2026-11-01")]
    pub due_date: String,
    /// Free tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Hard-stop flags: `cease_contact, deceased, bankruptcy, attorney, breathing_space, dispute,
    /// do_not_call`.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Consent to robot calls (default false).
    #[serde(default)]
    pub consent_robot: bool,
    /// `channel:address` opt-outs, such as `sms:+8613800138000`.
    #[serde(default)]
    pub opt_outs: Vec<String>,
    /// Model scores by model name.
    #[serde(default)]
    #[schema(example = json!({"loss": 0.25}))]
    pub scores: BTreeMap<String, f64>,
    /// String attributes by name.
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
    /// Co-lending funding shares, `funder:share;...` summing to 1 (absent or empty: wholly the
    /// lender's own).
    #[serde(default)]
    #[schema(example = "bank-a:0.7;platform:0.3")]
    pub funders: Option<String>,
}

/// One payment as `POST /v1/payments` takes it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentIn {
    /// The account paid (must be stored).
    pub account_id: String,
    /// More than zero.
    pub amount: MoneyText,
    /// RFC 3339 instant.
    #[schema(example = "2026-11-22T09:30:00+08:00")]
    pub paid_at: String,
    /// The servicing system's reference: the idempotency key.
    pub reference: String,
}

/// Where an item is in the request's JSON array.
#[derive(Debug, Clone, Copy)]
struct Item(usize);

impl Position for Item {
    fn describe(&self) -> String {
        format!("item [{}]", self.0)
    }
    const BATCH: &'static str = "request";
    const UNKNOWN_ACCOUNT_HINT: &'static str = "post it to /v1/accounts first";
}

/// Why a batch was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Items are invalid: every error, as `[i].field: message`.
    #[error("{} invalid item(s)", .0.len())]
    Invalid(Vec<String>),
    /// Payment references already name other payments (and nothing else is wrong).
    #[error("{} conflicting reference(s)", .0.len())]
    Conflict(Vec<String>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sea_orm::DbErr> for IngestError {
    fn from(error: sea_orm::DbErr) -> Self {
        IngestError::Store(StoreError::Db(error))
    }
}

/// `[3].timezones: "Mars/Olympus" is not an IANA time zone ...`.
fn describe(error: &FieldError<Item>) -> String {
    let field = if let Some(model) = error.field.strip_prefix("score.") {
        format!("scores.{model}")
    } else if let Some(name) = error.field.strip_prefix("attr.") {
        format!("attrs.{name}")
    } else {
        error.field.clone()
    };
    match &error.value {
        Some(value) => format!("[{}].{field}: {value:?} {}", error.at.0, error.message),
        None => format!("[{}].{field}: {}", error.at.0, error.message),
    }
}

/// Counts of one upsert.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counts {
    /// New rows.
    pub inserted: u64,
    /// Rows whose values changed.
    pub updated: u64,
    /// Rows already as sent (left untouched).
    pub unchanged: u64,
}

impl From<UpsertCounts> for Counts {
    fn from(counts: UpsertCounts) -> Self {
        Counts { inserted: counts.inserted, updated: counts.updated, unchanged: counts.unchanged }
    }
}

/// What `POST /v1/accounts` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AccountsReport {
    /// Items received.
    pub received: u64,
    /// About the accounts.
    pub accounts: Counts,
    /// About their borrowers.
    pub borrowers: Counts,
    /// About their contact points: those the batch no longer carried are retired, retired ones
    /// it carried again are restored.
    pub contact_points: ContactPointCounts,
}

/// What an accounts batch did to its borrowers' contact points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ContactPointCounts {
    /// Stored points missing from the batch, now retired (never chosen for a contact again;
    /// opt-outs and wrong-number marks kept).
    pub retired: u64,
    /// Retired points the batch carried again, current again.
    pub restored: u64,
}

/// Checks every account, then upserts them all with their borrowers in one transaction;
/// `actor` signs the audit rows (retired and restored contact points).
pub async fn ingest_accounts(
    db: &DatabaseConnection,
    items: &[AccountIn],
    now: DateTime<Utc>,
    actor: &str,
) -> Result<AccountsReport, IngestError> {
    let mut batch: AccountBatch<Item> = AccountBatch::default();
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let record = AccountRecord {
            account_id: item.account_id.trim(),
            borrower_id: item.borrower_id.trim(),
            name: item.name.trim(),
            phones: item.phones.iter().map(|phone| phone.trim()).collect(),
            email: item.email.as_deref().map(str::trim).unwrap_or(""),
            timezones: item.timezones.iter().map(|zone| zone.trim()).filter(|zone| !zone.is_empty()).collect(),
            timezones_text: "",
            product: item.product.trim(),
            currency: item.currency.trim(),
            amount_due: &item.amount_due.0,
            balance: &item.balance.0,
            due_date: item.due_date.trim(),
            tags: item.tags.iter().map(String::as_str).collect(),
            flags: item.flags.iter().map(|flag| flag.trim()).filter(|flag| !flag.is_empty()).collect(),
            consent_robot: Some(item.consent_robot),
            opt_outs: item.opt_outs.iter().map(|opt_out| opt_out.trim()).collect(),
            scores: Some(item.scores.iter().map(|(model, score)| (model.clone(), *score)).collect()),
            attrs: item.attrs.iter().map(|(name, value)| (name.clone(), value.clone())).collect(),
            funders: item.funders.as_deref().unwrap_or(""),
        };
        batch.add(Item(index), &record, &mut errors);
    }
    let (accounts, borrowers) = batch.finish(&mut errors);
    if !errors.is_empty() {
        errors.sort_by_key(|error| error.at.0);
        return Err(IngestError::Invalid(errors.iter().map(describe).collect()));
    }
    let txn = store::begin_write(db).await?;
    let written = apply::write_accounts(&txn, &accounts, &borrowers, now, actor).await?;
    txn.commit().await?;
    Ok(AccountsReport {
        received: items.len() as u64,
        accounts: written.accounts.into(),
        borrowers: written.borrowers.into(),
        contact_points: ContactPointCounts {
            retired: written.contact_points_retired,
            restored: written.contact_points_restored,
        },
    })
}

/// What `POST /v1/payments` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PaymentsReport {
    /// Items received.
    pub received: u64,
    /// Payments new to the store.
    pub inserted: u64,
    /// References already recorded with the same values: nothing changed for them.
    pub duplicates: Vec<String>,
    /// Accounts these payments paid in full (their open tasks were cancelled).
    pub paid_in_full: Vec<String>,
    /// Open tasks cancelled because their account was paid in full.
    pub tasks_cancelled: u64,
}

/// Checks every payment, then records the new ones, lowers the accounts' amounts and cancels
/// the open tasks of accounts paid in full, in one transaction. `actor` signs the audit rows.
pub async fn ingest_payments(
    db: &DatabaseConnection,
    items: &[PaymentIn],
    now: DateTime<Utc>,
    actor: &str,
) -> Result<PaymentsReport, IngestError> {
    use crate::import::records::{parse_instant, parse_positive_money, parse_required};
    let mut errors = Vec::new();
    let mut payments = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let at = Item(index);
        let mut field = |name: &str, value: &str, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push(FieldError::new(at, name, Some(value), message));
            }
        };
        let account_id = item.account_id.trim();
        let reference = item.reference.trim();
        let paid_at_text = item.paid_at.trim();
        field("account_id", account_id, parse_required(account_id).map(drop));
        let amount = parse_positive_money(&item.amount.0);
        field("amount", &item.amount.0, amount.as_ref().map(drop).map_err(Clone::clone));
        let paid_at = parse_instant(paid_at_text);
        field("paid_at", paid_at_text, paid_at.as_ref().map(drop).map_err(Clone::clone));
        field("reference", reference, parse_required(reference).map(drop));
        if let (false, Ok(amount), Ok(paid_at)) = (account_id.is_empty() || reference.is_empty(), amount, paid_at) {
            let payment =
                NewPayment { account_id: account_id.to_string(), amount, paid_at, reference: reference.to_string() };
            payments.push((at, payment));
        }
    }
    if !errors.is_empty() {
        return Err(IngestError::Invalid(errors.iter().map(describe).collect()));
    }
    let txn = store::begin_write(db).await?;
    let applied: PaymentsApplied = match apply::apply_payments(&txn, &payments, now, actor).await? {
        Ok(applied) => applied,
        Err(found) => {
            let conflict = found.iter().all(|error| error.conflict);
            let messages = found.iter().map(describe).collect();
            return Err(if conflict { IngestError::Conflict(messages) } else { IngestError::Invalid(messages) });
        }
    };
    txn.commit().await?;
    Ok(PaymentsReport {
        received: items.len() as u64,
        inserted: applied.inserted,
        duplicates: applied.duplicates,
        paid_in_full: applied.paid_in_full,
        tasks_cancelled: applied.tasks_cancelled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(json: &str) -> Result<String, String> {
        serde_json::from_str::<MoneyText>(json).map(|money| money.0).map_err(|error| error.to_string())
    }

    #[test]
    fn money_is_read_exactly_from_strings_and_numbers() {
        assert_eq!(money("\"1234.50\"").unwrap(), "1234.50");
        assert_eq!(money("1234.50").unwrap(), "1234.5");
        assert_eq!(money("0.1").unwrap(), "0.1");
        assert_eq!(money("100").unwrap(), "100");
        assert_eq!(money("99999999999.9999").unwrap(), "99999999999.9999");
        assert!(money("12345678901234567.25").unwrap_err().contains("send the amount as a string"));
        assert!(money("true").is_err());
    }
}
