//! A small book with a week of history for the dashboard's tests, built through the real paths
//! (CSV imports, saved plans, leases, `record_attempt`, payments, the promise watcher, `learn`)
//! against the application's own strategies (`strategies/`), before the clock's start
//! ([`super::app::START`], 2026-11-22 09:00 in Shanghai):
//!
//! - C1 (borrower named `<script>alert(1)</script>`), C2, C3: cash loans in CNY, vip, due
//!   2026-11-12; U1: a card in USD (New York), due 2026-11-12; C1 funded 60/40 by bank-a and
//!   bank-b, C2 wholly by bank-a;
//! - plans on 11-14 (C1–C3 enter M1-early, U1 B1), 11-16 and 11-21 (C1, C2 roll to M1);
//! - 11-16: agent-7 leases the senior queue: C1 promises 1,000 (due 11-18), C2 no answer then
//!   a right-party contact, C3 promises 1,500 (due 11-17);
//! - payments: C3 1,500 on 11-17 (paid in full: a cure, its promise kept), U1 100 on 11-18;
//! - the promise watcher on 11-20: C1's promise broken;
//! - the contact model learnt at the start from those attempts.

use super::app::{START, TestApp};
use arrears::import::ImportKind;
use arrears::ops::work::{
    Actor, AttemptReport, PromiseTerms, Rules, complete, evaluate_promises, lease_next, record_attempt,
};
use arrears::policy::{Policy, PolicySettings};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

/// The borrower name that must stay text on every page.
pub const SCRIPT_NAME: &str = "<script>alert(1)</script>";

/// The accounts.csv header of the rows below.
const HEADER: &str = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,due_date,tags,flags,consent_robot,funders";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

async fn import(app: &TestApp, kind: ImportKind, header: &str, lines: &[String], now: DateTime<Utc>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.csv");
    let mut text = vec![header.to_string()];
    text.extend(lines.iter().cloned());
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
    arrears::import::import_file_at(&app.db.db, kind, &path, now)
        .await
        .unwrap_or_else(|error| panic!("{kind:?}: {error}"));
}

async fn pay(app: &TestApp, account: &str, amount: &str, paid_at: &str) {
    let line = format!("{account},{amount},{paid_at},ref-{account}-{paid_at}");
    import(app, ImportKind::Payments, "account_id,amount,paid_at,reference", &[line], at(paid_at)).await;
}

fn policy() -> Policy {
    Policy::builtin("cn-gbt-45251", &PolicySettings::default()).unwrap()
}

async fn attempt(app: &TestApp, task: i64, outcome: &str, at: DateTime<Utc>, promise: Option<(&str, &str)>) {
    let strategies = app.state.strategies.current();
    let fallback = policy();
    let report = AttemptReport {
        outcome: outcome.into(),
        at: Some(at),
        promise: promise
            .map(|(amount, due_on)| PromiseTerms { amount: amount.parse().unwrap(), due_on: due_on.parse().unwrap() }),
        ..AttemptReport::default()
    };
    record_attempt(&app.db.db, &Rules::new(&strategies, &fallback), task, &Actor::Agent("agent-7".into()), report, at)
        .await
        .unwrap_or_else(|error| panic!("task {task} {outcome}: {error}"));
}

/// Builds the history (see the module documentation). The clock is left at [`START`].
pub async fn seed(app: &TestApp) {
    let db = &app.db.db;
    let strategies = app.state.strategies.current();
    let row = |account: &str, name: &str, phone: &str, zone: &str, product: &str, currency: &str, amount: u32| {
        let balance = amount * 10;
        format!(
            "{account},B{account},{name},{phone},,{zone},{product},{currency},{amount},{balance},2026-11-12,vip,,true,"
        )
    };
    let rows = [
        row("C1", SCRIPT_NAME, "+8613800000001", "Asia/Shanghai", "cash", "CNY", 3000) + "bank-a:0.6;bank-b:0.4",
        row("C2", "Wang Fang", "+8613800000002", "Asia/Shanghai", "cash", "CNY", 2000) + "bank-a:1",
        row("C3", "Li Lei", "+8613800000003", "Asia/Shanghai", "cash", "CNY", 1500),
        row("U1", "Jane Doe", "+12125550101", "America/New_York", "card", "USD", 500),
    ];
    import(app, ImportKind::Accounts, HEADER, &rows, at("2026-11-13T00:00:00Z")).await;

    for plan in ["2026-11-14T01:00:00Z", "2026-11-16T01:00:00Z"] {
        arrears::ops::plan_and_persist(db, &strategies, at(plan), false).await.unwrap();
    }
    let lease_at = at("2026-11-16T01:05:00Z");
    let fallback = policy();
    let rules = Rules::new(&strategies, &fallback);
    let mut tasks: HashMap<String, i64> = HashMap::new();
    while let Some(lease) = lease_next(db, &rules, "senior", "agent-7", lease_at, Duration::minutes(30)).await.unwrap()
    {
        tasks.insert(lease.task.account_id.clone(), lease.task.id);
    }
    for account in ["C1", "C2", "C3"] {
        assert!(tasks.contains_key(account), "{account} is in the senior queue on 11-16: {tasks:?}");
    }
    attempt(app, tasks["C1"], "promise", at("2026-11-16T01:10:00Z"), Some(("1000", "2026-11-18"))).await;
    attempt(app, tasks["C2"], "no_answer", at("2026-11-16T01:12:00Z"), None).await;
    attempt(app, tasks["C2"], "rpc", at("2026-11-16T01:20:00Z"), None).await;
    attempt(app, tasks["C3"], "promise", at("2026-11-16T01:25:00Z"), Some(("1500", "2026-11-17"))).await;
    for task in tasks.values() {
        complete(db, *task, "agent-7", at("2026-11-16T01:30:00Z")).await.unwrap();
    }

    pay(app, "C3", "1500", "2026-11-17T03:00:00Z").await;
    pay(app, "U1", "100", "2026-11-18T15:00:00Z").await;
    evaluate_promises(db, at("2026-11-20T01:00:00Z"), 1).await.unwrap();

    arrears::ops::plan_and_persist(db, &strategies, at("2026-11-21T01:00:00Z"), false).await.unwrap();
    arrears::ops::learn::learn(db, at(START), 30).await.unwrap();
}
