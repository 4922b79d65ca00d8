//! A plan of a large book on SQLite while the servicing system posts payment batches to a real
//! `serve` application: the plan writes page by page in short transactions, so every batch is
//! answered (no 5xx), every payment is stored and every account owes the right amount, and
//! batches keep being answered all through the plan instead of waiting for its end.

mod common;

use arrears::import::ImportKind;
use entity::prelude::{Accounts, Payments};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Accounts in the book: a plan of a few seconds in a debug build.
const ACCOUNTS: usize = 50_000;
/// Concurrent senders of payment batches.
const SENDERS: usize = 4;
/// Payments per batch.
const BATCH: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payments_posted_while_a_large_book_is_planned_are_all_answered_and_stored() {
    let now: chrono::DateTime<chrono::Utc> = common::app::START.parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), ACCOUNTS, 17, now).unwrap();
    let db = common::sqlite_db().await;
    arrears::import::import_file(&db, ImportKind::Accounts, &dir.path().join("accounts.csv")).await.unwrap();
    // Accounts spread over the book that owe enough to take many small payments.
    let owed: Vec<(String, Decimal)> = Accounts::find()
        .filter(entity::accounts::Column::AmountDue.gte(Decimal::from(500)))
        .order_by_asc(entity::accounts::Column::Id)
        .all(&db.db)
        .await
        .unwrap()
        .into_iter()
        .step_by(20)
        .map(|account| (account.id, account.amount_due))
        .collect();
    assert!(owed.len() >= 200, "only {} accounts owe enough", owed.len());
    let url = db.url.clone();
    let app = Arc::new(common::app::spawn_app(db).await);
    let strategies = app.state.strategies.current();

    // The plan runs as `arrears plan` would: its own connection pool on the same file.
    let planner_db = arrears::store::connect(&url).await.unwrap();
    let planning = Arc::new(AtomicBool::new(true));
    let plan_started = Instant::now();
    let plan = {
        let planning = Arc::clone(&planning);
        tokio::spawn(async move {
            let outcome = arrears::ops::plan_and_persist(&planner_db, &strategies, now, false).await;
            planning.store(false, Ordering::SeqCst);
            (outcome, Instant::now())
        })
    };

    let sent = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (app, owed, planning, sent) = (Arc::clone(&app), owed.clone(), Arc::clone(&planning), Arc::clone(&sent));
        senders.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            // When each batch was answered, and how long it waited.
            let mut answers: Vec<(Instant, Duration)> = Vec::new();
            let mut batch_number = 0usize;
            while planning.load(Ordering::SeqCst) {
                let items: Vec<serde_json::Value> = (0..BATCH)
                    .map(|item| {
                        let n = sent.fetch_add(1, Ordering::SeqCst) as usize;
                        let (account, _) = &owed[n % owed.len()];
                        serde_json::json!({
                            "account_id": account,
                            "amount": "1.00",
                            "paid_at": "2026-11-22T00:30:00Z",
                            "reference": format!("load-{sender}-{batch_number}-{item}"),
                        })
                    })
                    .collect();
                batch_number += 1;
                let posted = Instant::now();
                let response =
                    app.post_json("/v1/payments", Some(&app.tokens.ingest), &serde_json::Value::Array(items)).await;
                let status = response.status();
                if status != reqwest::StatusCode::OK {
                    failures.push(format!("{status}: {}", response.text().await.unwrap_or_default()));
                }
                answers.push((Instant::now(), posted.elapsed()));
            }
            (failures, answers)
        }));
    }
    let (outcome, plan_ended) = plan.await.unwrap();
    let outcome = outcome.unwrap();
    let mut failures = Vec::new();
    let mut answers = Vec::new();
    for sender in senders {
        let (failed, answered) = sender.await.unwrap();
        failures.extend(failed);
        answers.extend(answered);
    }

    assert!(failures.is_empty(), "{} batches failed, the first: {}", failures.len(), failures[0]);
    // Batches were answered all through the plan, not only before its write lock or after it
    // was given up: count those answered in the middle half of the plan.
    let plan_time = plan_ended - plan_started;
    let (from, to) = (plan_started + plan_time / 4, plan_ended - plan_time / 4);
    let middle = answers.iter().filter(|(at, _)| *at >= from && *at <= to).count();
    let slowest = answers.iter().map(|(_, waited)| *waited).max().unwrap_or_default();
    assert!(
        middle >= 5,
        "{middle} of {} batches were answered in the middle half of a {plan_time:?} plan (the slowest waited \
         {slowest:?}): the plan holds the write lock",
        answers.len()
    );
    let sent = sent.load(Ordering::SeqCst);
    // Nothing lost: every payment stored, every account lowered by exactly its payments.
    assert_eq!(Payments::find().count(&app.db.db).await.unwrap(), sent);
    let mut paid: BTreeMap<&str, u64> = BTreeMap::new();
    for n in 0..sent as usize {
        *paid.entry(owed[n % owed.len()].0.as_str()).or_default() += 1;
    }
    for (account, before) in &owed {
        let stored = Accounts::find_by_id(account.clone()).one(&app.db.db).await.unwrap().unwrap();
        let expected = before - Decimal::from(paid.get(account.as_str()).copied().unwrap_or(0));
        assert_eq!(stored.amount_due, expected, "{account}");
    }
    // And the plan itself was saved whole.
    assert_eq!(outcome.totals.accounts, ACCOUNTS as u64);
    assert_eq!(arrears::store::count_tasks(&app.db.db).await.unwrap(), outcome.totals.tasks);
    let run = entity::prelude::PlanRuns::find().one(&app.db.db).await.unwrap().unwrap();
    assert!(run.finished_at.is_some());
    assert_eq!(run.tasks as u64, outcome.totals.tasks);
}
