//! The promise watcher: resolves open promises as kept or broken with `domain::promise`, and
//! counts a broken one on its account. Each resolution leaves an audit row.

use super::{ENGINE, PromiseReport, WorkError};
use crate::domain::PromiseRecord;
use crate::domain::parse_timezone;
use crate::domain::promise::{Resolution, resolve};
use crate::store;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::DatabaseConnection;

/// Open promises evaluated per transaction.
const PROMISE_PAGE: u64 = 1000;

/// Resolves open promises at `now` (see `domain::promise::resolve`): the deadline is
/// `due_on + grace_days` on the calendar of the borrower's primary time zone (UTC when the
/// borrower is unknown). A broken promise adds one to the account's `broken_promises`. Promises
/// still in time stay open.
pub async fn evaluate_promises(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    grace_days: u32,
) -> Result<PromiseReport, WorkError> {
    let mut report = PromiseReport::default();
    let mut after = 0i64;
    loop {
        let page = store::open_promises_page(db, after, PROMISE_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let mut ids: Vec<&str> = page.iter().map(|promise| promise.account_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let since = page.iter().map(|promise| promise.made_at).min().unwrap_or(now);
        let payments = store::payments_since(db, &ids, since).await?;
        let mut decisions = Vec::new();
        for promise in &page {
            let zone = promise.timezones.split(';').map(str::trim).find(|zone| !zone.is_empty());
            let zone = zone.and_then(|zone| parse_timezone(zone).ok()).unwrap_or(Tz::UTC);
            let record = PromiseRecord { amount: promise.amount, due_on: promise.due_on, made_at: promise.made_at };
            let paid_so_far = payments.get(&promise.account_id).map(Vec::as_slice).unwrap_or(&[]);
            if let (Some(resolution), paid) = resolve(&record, paid_so_far, zone, grace_days, now) {
                decisions.push((promise, resolution, paid));
            }
        }
        if !decisions.is_empty() {
            let txn = store::begin_write(db).await?;
            for (promise, resolution, paid) in decisions {
                if !store::resolve_promise(&txn, promise.id, resolution.code(), now).await? {
                    continue;
                }
                match resolution {
                    Resolution::Broken => {
                        store::count_broken_promise(&txn, &promise.account_id, now).await?;
                        report.broken += 1;
                    }
                    Resolution::Kept => report.kept += 1,
                }
                store::record_audit_at(
                    &txn,
                    now,
                    ENGINE,
                    &format!("promise.{}", resolution.code()),
                    "promise",
                    &promise.id.to_string(),
                    serde_json::json!({
                        "account_id": promise.account_id,
                        "amount": promise.amount,
                        "due_on": promise.due_on,
                        "paid": paid,
                        "grace_days": grace_days,
                    }),
                )
                .await?;
            }
            txn.commit().await?;
        }
        if (page.len() as u64) < PROMISE_PAGE {
            break;
        }
    }
    Ok(report)
}
