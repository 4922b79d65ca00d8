//! Borrowers who call back in the simulation: every hour the world says who calls
//! (`World::inbound_calls`), and the simulated robot takes each call through the same paths as
//! `POST /v1/inbound-calls`: it looks the caller up, then either reports what the borrower told
//! it (`/attempts`: a promise, a conversation, a dispute) or, when they ask for a person and the
//! gate allows it, transfers them (`/transfer`) to a queue the simulated agents work, whose
//! next lease hands the transfer out first. Counts what happened; decides nothing of the
//! engine's.

use crate::ops::work::inbound::{self, InboundAttemptIn, InboundCallIn, TransferIn};
use crate::ops::work::{PromiseTerms, Rules};
use crate::sim::World;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What the borrowers' calls did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InboundTally {
    /// Calls, by how the number matched (`single`, `shared`, `unknown`).
    pub calls: BTreeMap<String, u64>,
    /// Calls the robot settled itself, by outcome.
    pub settled: BTreeMap<String, u64>,
    /// Calls transferred to a person.
    pub transferred: u64,
    /// Transfers the gate refused (the borrower was told to call again).
    pub transfer_refused: u64,
}

/// Takes the calls of the hour starting at `hour`; `queues` are the simulated agents' queues
/// with their zones (a transfer goes to its default queue when agents work it, else to a worked
/// queue in the caller's zone).
/// Returns the transfers made: `(queue, at)`, for the queues' agents to look for work then.
pub(super) async fn take_calls(
    db: &DatabaseConnection,
    rules: &Rules<'_>,
    templates_dir: &Path,
    world: &mut World,
    queues: &[(String, String)],
    hour: DateTime<Utc>,
    tally: &mut InboundTally,
) -> anyhow::Result<Vec<(String, DateTime<Utc>)>> {
    let mut transfers = Vec::new();
    let calls = world.inbound_calls(hour);
    for call in calls {
        let Some(phone) = phone_of(db, &call.account_id).await? else { continue };
        let answer =
            inbound::lookup(db, rules, templates_dir, "", &InboundCallIn { from: phone, to: None }, call.at).await?;
        *tally.calls.entry(answer.matched.clone()).or_insert(0) += 1;
        let on_call = answer.borrowers.iter().flat_map(|b| &b.accounts).find(|a| a.account_id == call.account_id);
        let Some(on_call) = on_call else { continue };
        if call.wants_person {
            if !on_call.contact_now.transfer_allowed {
                tally.transfer_refused += 1;
                continue;
            }
            // The default queue when agents work it, else a worked queue in the caller's zone.
            let zone = answer.borrowers.iter().find(|b| b.accounts.iter().any(|a| a.account_id == call.account_id));
            let zone = zone.and_then(|borrower| borrower.timezones.first()).cloned().unwrap_or_default();
            let queue = if queues.iter().any(|(name, _)| *name == on_call.transfer_queue) {
                None
            } else {
                queues.iter().find(|(_, queue_zone)| *queue_zone == zone).map(|(name, _)| name.clone())
            };
            let body = TransferIn {
                queue,
                account_id: Some(call.account_id.clone()),
                note: Some("simulated: asked for a person".into()),
            };
            match inbound::transfer(db, rules, answer.id, &body, "dialler", call.at).await {
                Ok(done) => {
                    tally.transferred += 1;
                    transfers.push((done.queue, call.at));
                }
                Err(crate::ops::work::WorkError::Conflict(_)) => tally.transfer_refused += 1,
                Err(error) => return Err(error.into()),
            }
            continue;
        }
        let report = InboundAttemptIn {
            account_id: Some(call.account_id.clone()),
            outcome: call.outcome.code().to_string(),
            at: Some(call.at),
            promise: call.promise.as_ref().map(|terms| PromiseTerms { amount: terms.amount, due_on: terms.due_on }),
            note: None,
        };
        match inbound::record_inbound_attempt(db, answer.id, &report, "dialler", call.at).await {
            Ok(_) => *tally.settled.entry(call.outcome.code().to_string()).or_insert(0) += 1,
            Err(crate::ops::work::WorkError::Conflict(_) | crate::ops::work::WorkError::Invalid { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(transfers)
}

/// The account's borrower's first current phone.
async fn phone_of(db: &DatabaseConnection, account_id: &str) -> anyhow::Result<Option<String>> {
    let ids = [account_id];
    let portfolio = crate::store::load_accounts_by_id(db, &ids).await?;
    let phone = portfolio.accounts.first().and_then(|account| portfolio.borrowers.get(&account.borrower_id)).and_then(
        |borrower| {
            borrower
                .contact_points
                .iter()
                .find(|point| point.kind == crate::domain::ContactKind::Phone && !point.retired)
                .map(|point| point.address.clone())
        },
    );
    Ok(phone)
}
