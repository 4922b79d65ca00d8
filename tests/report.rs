//! KPIs over a small known history built through the real paths: CSV imports, two saved plans
//! four days apart, human tasks leased and worked with `record_attempt`, payments, promises
//! evaluated as the clock moves; then the numbers a manager checks, by stage and by rule, on
//! SQLite and (when `ARREARS_TEST_DATABASE_URL` is set) PostgreSQL. Plus the HTTP endpoint.

mod common;

use arrears::import::ImportKind;
use arrears::ops::report::kpis;
use arrears::ops::work::{
    Actor, AttemptReport, PromiseReport, PromiseTerms, Rules, evaluate_promises, lease_next, record_attempt,
};
use arrears::policy::{Policy, PolicySettings};
use arrears::report::{CURRENT, FunderScope, GroupBy, KpiReport, KpiRow, Period, StageOrder};
use arrears::store::{STATE_PAGE, book_states};
use arrears::strategy::StrategySet;
use chrono::{DateTime, Duration, Utc};
use common::TestDb;
use rust_decimal::Decimal;
use sea_orm::DatabaseConnection;
use std::collections::HashMap;

const HEADER: &str = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,due_date,tags,flags,consent_robot";

const STRATEGY: &str = r#"
name = "test"
policy = "us-reg-f"
[stages]
early = { dpd = [1, 10] }
late = { dpd = [11, 365] }

[[rule]]
name = "vip agents"
stage = "early"
when = { tags_any = ["vip"] }
channel = "human"
queue = "collectors"
calls_per_day = 2

[[rule]]
name = "early agents"
stage = "early"
channel = "human"
queue = "collectors"
calls_per_day = 2

[[rule]]
name = "late agents"
stage = "late"
channel = "human"
queue = "collectors"
calls_per_day = 2
"#;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Monday 2026-11-23, 10:00 in New York.
fn plan1() -> DateTime<Utc> {
    at("2026-11-23T15:00:00Z")
}

/// Friday 2026-11-27, 10:00 in New York.
fn plan2() -> DateTime<Utc> {
    at("2026-11-27T15:00:00Z")
}

fn strategies() -> StrategySet {
    common::strategies_from(STRATEGY).unwrap_or_else(|errors| panic!("{errors}"))
}

fn fallback() -> Policy {
    Policy::builtin("us-reg-f", &PolicySettings::default()).unwrap()
}

/// One accounts.csv row in New York, one phone per borrower.
fn row(account: &str, amount_due: &str, due_date: &str, tags: &str) -> String {
    let phone = phone(account);
    format!(
        "{account},B{account},Name {account},{phone},,America/New_York,loan,USD,{amount_due},5000,{due_date},{tags},,true"
    )
}

fn phone(account: &str) -> String {
    format!("+1555{:07}", account.bytes().map(u64::from).sum::<u64>())
}

async fn import(db: &DatabaseConnection, kind: ImportKind, header: &str, lines: &[String], now: DateTime<Utc>) {
    common::import_lines(db, kind, header, lines, now).await;
}

async fn pay(db: &DatabaseConnection, account: &str, amount: &str, paid_at: &str, now: DateTime<Utc>) {
    let line = format!("{account},{amount},{paid_at},ref-{account}-{paid_at}");
    import(db, ImportKind::Payments, "account_id,amount,paid_at,reference", &[line], now).await;
}

/// Leases every ready task of the queue at `now`: account id → task id.
async fn lease_all(db: &DatabaseConnection, strategies: &StrategySet, now: DateTime<Utc>) -> HashMap<String, i64> {
    let mut leased = HashMap::new();
    let ttl = Duration::minutes(30);
    while let Some(lease) =
        lease_next(db, &Rules::new(strategies, &fallback()), "collectors", "ann", now, ttl).await.unwrap()
    {
        leased.insert(lease.task.account_id.clone(), lease.task.id);
    }
    leased
}

async fn attempt(db: &DatabaseConnection, task: i64, outcome: &str, at: DateTime<Utc>, promise: Option<(&str, &str)>) {
    let report = AttemptReport {
        outcome: outcome.into(),
        at: Some(at),
        promise: promise
            .map(|(amount, due_on)| PromiseTerms { amount: amount.parse().unwrap(), due_on: due_on.parse().unwrap() }),
        duration_seconds: Some(120),
        ..AttemptReport::default()
    };
    record_attempt(
        db,
        &Rules::new(&strategies(), &fallback()),
        task,
        &Actor::Agent("ann".into()),
        report,
        at + Duration::minutes(1),
    )
    .await
    .unwrap_or_else(|error| panic!("task {task} {outcome}: {error}"));
}

/// The history (all instants UTC; New York is UTC-5):
/// - accounts A1 (vip, due 11-20), A2 (due 11-15), A3 (due 11-01), A4 (due 11-16);
/// - plan 1 on 11-23: A1 `vip agents`, A2 and A4 `early agents` (stage early), A3 `late agents`;
/// - 11-23: A1 no_answer + rpc, A2 promise 100 due 11-25, A3 promise 200 due 11-24, A4 busy +
///   voicemail; an imported sms `delivered` on A1 11-24 (no task); an imported robot attempt on
///   A4 on 11-10 (before the period);
/// - payments: A4 20 on 11-15 (before the period), A2 100 on 11-24 (keeps its promise), A1 its
///   whole 300.50 on 11-25 (a cure);
/// - promises evaluated on 11-25 (A2 kept) and 11-26 (A3 broken); a promise imported for A3 on
///   11-26 (no attempt);
/// - A3's due date moves to 11-24 (its oldest instalment paid by the servicer);
/// - plan 2 on 11-27: A2 and A4 roll early → late (DPD 12 and 11), A3 rolls late → early;
///   A4 `late agents`: no_answer.
async fn history(db: &DatabaseConnection) {
    let strategies = strategies();
    let rows = [
        row("A1", "300.50", "2026-11-20", "vip"),
        row("A2", "500", "2026-11-15", ""),
        row("A3", "800", "2026-11-01", ""),
        row("A4", "400", "2026-11-16", ""),
    ];
    import(db, ImportKind::Accounts, HEADER, &rows, at("2026-11-10T00:00:00Z")).await;
    let attempts_header = "account_id,channel,phone,at,outcome";
    let old = format!("A4,robot,{},2026-11-10T15:00:00Z,no_answer", phone("A4"));
    import(db, ImportKind::Attempts, attempts_header, &[old], at("2026-11-10T16:00:00Z")).await;
    pay(db, "A4", "20", "2026-11-15T12:00:00Z", at("2026-11-15T13:00:00Z")).await;

    arrears::ops::plan_and_persist(db, &strategies, plan1(), false).await.unwrap();
    let tasks = lease_all(db, &strategies, plan1() + Duration::minutes(5)).await;
    assert_eq!(tasks.len(), 4, "{tasks:?}");
    attempt(db, tasks["A1"], "no_answer", at("2026-11-23T15:10:00Z"), None).await;
    attempt(db, tasks["A1"], "rpc", at("2026-11-23T15:20:00Z"), None).await;
    attempt(db, tasks["A2"], "promise", at("2026-11-23T15:10:00Z"), Some(("100", "2026-11-25"))).await;
    attempt(db, tasks["A3"], "promise", at("2026-11-23T15:10:00Z"), Some(("200", "2026-11-24"))).await;
    attempt(db, tasks["A4"], "busy", at("2026-11-23T15:10:00Z"), None).await;
    attempt(db, tasks["A4"], "voicemail", at("2026-11-23T15:15:00Z"), None).await;
    for task in tasks.values() {
        arrears::ops::work::complete(db, *task, "ann", at("2026-11-23T15:30:00Z")).await.unwrap();
    }

    let delivered = "A1,sms,,2026-11-24T14:00:00Z,delivered".to_string();
    import(db, ImportKind::Attempts, attempts_header, &[delivered], at("2026-11-24T14:30:00Z")).await;
    pay(db, "A2", "100", "2026-11-24T16:00:00Z", at("2026-11-24T16:30:00Z")).await;
    pay(db, "A1", "300.50", "2026-11-25T15:00:00Z", at("2026-11-25T15:05:00Z")).await;
    assert_eq!(
        evaluate_promises(db, at("2026-11-25T15:00:00Z"), 1).await.unwrap(),
        PromiseReport { kept: 1, broken: 0 }
    );
    assert_eq!(
        evaluate_promises(db, at("2026-11-26T15:00:00Z"), 1).await.unwrap(),
        PromiseReport { kept: 0, broken: 1 }
    );
    let promise = "A3,50,2026-11-30,2026-11-26T15:00:00Z".to_string();
    import(db, ImportKind::Promises, "account_id,amount,due_on,made_at", &[promise], at("2026-11-26T15:30:00Z")).await;

    let rows = [
        row("A1", "0", "2026-11-20", "vip"),
        row("A2", "400", "2026-11-15", ""),
        row("A3", "600", "2026-11-24", ""),
        row("A4", "380", "2026-11-16", ""),
    ];
    import(db, ImportKind::Accounts, HEADER, &rows, at("2026-11-27T12:00:00Z")).await;
    arrears::ops::plan_and_persist(db, &strategies, plan2(), false).await.unwrap();
    let tasks = lease_all(db, &strategies, plan2() + Duration::minutes(5)).await;
    let late = tasks.get("A4").copied().unwrap_or_else(|| panic!("A4 works again on 11-27: {tasks:?}"));
    attempt(db, late, "no_answer", at("2026-11-27T15:10:00Z"), None).await;
}

fn week() -> Period {
    Period { from: at("2026-11-20T00:00:00Z"), to: at("2026-11-28T00:00:00Z") }
}

fn group<'a>(report: &'a KpiReport, name: &str) -> &'a KpiRow {
    report.groups.iter().find(|row| row.group == name).unwrap_or_else(|| panic!("no group {name}: {report:#?}"))
}

fn money(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// The USD amounts of a row (the book is all USD): collected, and collected per attempt.
fn usd(row: &KpiRow) -> (Decimal, Option<Decimal>) {
    row.amounts_in("USD").map_or((Decimal::ZERO, None), |amounts| (amounts.collected, amounts.collected_per_attempt))
}

async fn kpis_of(db: &DatabaseConnection, period: Period, by: GroupBy) -> KpiReport {
    let order = StageOrder::of(&strategies());
    kpis(db, period, by, &order, "America/New_York".parse().unwrap(), &arrears::report::FunderScope::All).await.unwrap()
}

#[tokio::test]
async fn kpis_of_a_known_history() {
    for test_db in common::all_dbs().await {
        check_history(&test_db).await;
    }
}

async fn check_history(test_db: &TestDb) {
    let db = &test_db.db;
    let b = test_db.backend;
    history(db).await;

    let report = kpis_of(db, week(), GroupBy::Stage).await;
    let names: Vec<&str> = report.groups.iter().map(|row| row.group.as_str()).collect();
    assert_eq!(names, ["early", "late", "(none)"], "{b}");

    let total = &report.total;
    assert_eq!(total.group, "total");
    assert_eq!(total.attempts, 8, "{b}: 6 on 11-23, 1 imported sms, 1 on 11-27; not the one of 11-10");
    assert_eq!(total.right_party_contacts, 3, "{b}: rpc + two promises");
    assert_eq!(total.rpc_rate, Some(3.0 / 8.0), "{b}");
    assert_eq!(total.promises_made, 3, "{b}: two on calls, one imported");
    assert_eq!(total.promise_rate, Some(1.0), "{b}");
    assert_eq!((total.promises_kept, total.promises_broken, total.kept_rate), (1, 1, Some(0.5)), "{b}");
    assert_eq!(total.payments, 2, "{b}: the payment of 11-15 is before the period");
    assert_eq!(usd(total), (money("400.50"), Some(money("50.0625"))), "{b}");
    assert_eq!(total.amounts.len(), 1, "{b}: one currency");
    assert_eq!((total.cures, total.accounts, total.cure_rate), (1, 4, Some(0.25)), "{b}");
    assert_eq!(total.attempts_per_cure, Some(8.0), "{b}");
    assert_eq!((total.agent_seconds, total.agent_minutes), (7 * 120, 14.0), "{b}: 7 agent calls of 2 minutes");
    let amounts = total.amounts_in("USD").unwrap();
    assert_eq!(amounts.collected_per_account, Some(money("100.125")), "{b}: 400.50 over 4 accounts attempted");
    assert_eq!(
        (amounts.promised_kept, amounts.promised_resolved, amounts.kept_rate_by_amount),
        (money("100"), money("300"), Some(1.0 / 3.0)),
        "{b}: A2's 100 kept, A3's 200 broken"
    );

    let early = group(&report, "early");
    assert_eq!((early.attempts, early.right_party_contacts, early.promises_made), (5, 2, 1), "{b}");
    assert_eq!((early.rpc_rate, early.promise_rate), (Some(0.4), Some(0.5)), "{b}");
    assert_eq!((early.promises_kept, early.promises_broken, early.kept_rate), (1, 0, Some(1.0)), "{b}");
    assert_eq!((early.payments, usd(early).0, early.cures), (2, money("400.50"), 1), "{b}");
    let late = group(&report, "late");
    assert_eq!((late.attempts, late.right_party_contacts, late.promises_made), (2, 1, 1), "{b}");
    assert_eq!((late.promises_kept, late.promises_broken, late.kept_rate), (0, 1, Some(0.0)), "{b}");
    assert_eq!((late.payments, usd(late)), (0, (Decimal::ZERO, Some(Decimal::ZERO))), "{b}");
    let none = group(&report, "(none)");
    assert_eq!((none.attempts, none.right_party_contacts, none.rpc_rate), (1, 0, Some(0.0)), "{b}");
    assert_eq!((none.promises_made, none.promise_rate), (1, None), "{b}: the imported promise");

    // Nobody had a stage before the period: all four entered during it.
    let roll = &report.roll;
    assert!(roll.rows.is_empty(), "{b}: {roll:?}");
    let entered = roll.entered.as_ref().unwrap();
    let cells: Vec<(&str, u64)> = entered.cells.iter().map(|cell| (cell.to.as_str(), cell.accounts)).collect();
    assert_eq!(cells, [(CURRENT, 1), ("early", 1), ("late", 2)], "{b}: A1 cured, A3 early, A2 and A4 late");
    // Vintages: A1 (due 11-20) entered on 11-21, A3 (due 11-24 after the re-import) on 11-25;
    // A2 and A4 entered before the period. Nothing is 7 days old by 11-28.
    let weeks: Vec<(String, u64)> =
        report.vintages.iter().map(|vintage| (vintage.week.to_string(), vintage.entered)).collect();
    assert_eq!(weeks, [("2026-11-16".to_string(), 1), ("2026-11-23".to_string(), 1)], "{b}");
    assert!(report.vintages.iter().all(|v| v.horizons.iter().all(|h| h.cure_rate.is_none())), "{b}");

    // The roll matrix of 11-24 to 11-28: at the start A1, A2, A4 early and A3 late (plan 1);
    // at the end A1 current (paid in full 11-25), A2 and A4 late, A3 early (plan 2).
    let rolled = kpis_of(db, Period { from: at("2026-11-24T00:00:00Z"), to: week().to }, GroupBy::Stage).await;
    let roll = &rolled.roll;
    assert_eq!(roll.states, [CURRENT, "early", "late"], "{b}");
    let early = &roll.rows[0];
    assert_eq!((early.from.as_str(), early.accounts), ("early", 3), "{b}");
    assert_eq!((early.roll_rate, early.cure_rate), (Some(2.0 / 3.0), Some(1.0 / 3.0)), "{b}");
    // Balances at the start: now (5000 each, re-imported) plus what each paid since 11-24.
    let balance = &early.balance[0];
    assert_eq!((balance.currency.as_str(), balance.amount), ("USD", money("15400.50")), "{b}");
    let rolled_balance = &early.balance_roll_rate[0];
    assert_eq!(rolled_balance.amount, money("10100"), "{b}: A2 (5000 + 100) and A4 (5000)");
    assert!((rolled_balance.share.unwrap() - 10100.0 / 15400.5).abs() < 1e-12, "{b}");
    let late = &roll.rows[1];
    assert_eq!((late.from.as_str(), late.accounts, late.roll_rate, late.cure_rate), ("late", 1, Some(0.0), Some(0.0)));
    assert!(rolled.roll.entered.is_none(), "{b}");

    let by_rule = kpis_of(db, week(), GroupBy::Rule).await;
    let names: Vec<&str> = by_rule.groups.iter().map(|row| row.group.as_str()).collect();
    assert_eq!(names, ["test/early agents", "test/late agents", "test/vip agents", "(none)"], "{b}");
    let vip = group(&by_rule, "test/vip agents");
    assert_eq!((vip.attempts, vip.right_party_contacts, vip.rpc_rate), (2, 1, Some(0.5)), "{b}");
    assert_eq!((usd(vip).0, vip.cures), (money("300.50"), 1), "{b}: A1 paid in full after its vip task");
    let early_rule = group(&by_rule, "test/early agents");
    assert_eq!((early_rule.attempts, usd(early_rule).0, early_rule.promises_kept), (3, money("100"), 1), "{b}");
    assert_eq!(by_rule.total, KpiRow { group: "total".into(), ..report.total.clone() }, "{b}");

    // Periods: from 11-24 the calls of 11-23 and their promises are out.
    let later = Period { from: at("2026-11-24T00:00:00Z"), to: week().to };
    let report = kpis_of(db, later, GroupBy::Stage).await;
    let total = &report.total;
    assert_eq!((total.attempts, total.right_party_contacts, total.promises_made), (2, 0, 1), "{b}");
    assert_eq!((total.promises_kept, total.promises_broken, usd(total).0), (1, 1, money("400.50")), "{b}");
    // Up to 11-27 15:00: the second plan (its stage changes and call) is out.
    let before_plan2 = Period { from: week().from, to: plan2() };
    let report = kpis_of(db, before_plan2, GroupBy::Stage).await;
    assert_eq!(report.total.attempts, 7, "{b}");
    let ends: Vec<&str> = report.roll.entered.as_ref().unwrap().cells.iter().map(|cell| cell.to.as_str()).collect();
    assert_eq!(ends, [CURRENT, "early", "late"], "{b}: plan 2's stage changes are out");
    assert_eq!(group(&report, "late").attempts, 1, "{b}");

    // The book is read page by page: pages of one and of three accounts (A1–A3, then A4) read
    // the same states, entries and cures as one page of all four.
    let zone: chrono_tz::Tz = "America/New_York".parse().unwrap();
    // Several periods in one pass are each period read alone.
    let periods = [week(), Period { from: at("2026-11-24T00:00:00Z"), to: week().to }];
    let whole = book_states(db, &periods, zone, &FunderScope::All, STATE_PAGE).await.unwrap();
    assert_eq!(whole.len(), 2, "{b}");
    assert_eq!(whole[0].states.accounts(), 4, "{b}");
    for (period, book) in periods.iter().zip(&whole) {
        assert_eq!(&book_states(db, &[*period], zone, &FunderScope::All, STATE_PAGE).await.unwrap()[0], book, "{b}");
    }
    assert_ne!(whole[0], whole[1], "{b}: the two periods differ (A1 entered collections in the first only)");
    for page in [1, 3] {
        let paged = book_states(db, &periods, zone, &FunderScope::All, page).await.unwrap();
        assert_eq!(paged, whole, "{b}: pages of {page} accounts");
    }
    let entries = book_states(db, &[week()], zone, &FunderScope::All, 1).await.unwrap().remove(0).entries;
    let cured: Vec<Option<DateTime<Utc>>> = entries.iter().map(|entry| entry.first_cure).collect();
    assert_eq!(cured, [Some(at("2026-11-25T15:05:00Z")), None], "{b}: A1 paid in full (imported 11-25 15:05), A3 not");
}

#[tokio::test]
async fn the_report_is_served_to_admin_and_ingest_tokens() {
    let app = common::app::spawn_app(common::sqlite_db().await).await;
    let db = &app.db.db;
    let rows = [row("A1", "300", "2026-11-01", ""), row("A2", "300", "2026-11-01", "")];
    import(db, ImportKind::Accounts, HEADER, &rows, at("2026-11-01T00:00:00Z")).await;
    // The clock stands at 2026-11-22T01:00Z: the default period starts 2026-11-15T01:00Z.
    let lines = [
        format!("A1,human,{},2026-11-20T15:00:00Z,rpc", phone("A1")),
        format!("A2,human,{},2026-11-21T15:00:00Z,no_answer", phone("A2")),
        format!("A2,human,{},2026-11-10T15:00:00Z,rpc", phone("A2")),
    ];
    import(db, ImportKind::Attempts, "account_id,channel,phone,at,outcome", &lines, at("2026-11-21T16:00:00Z")).await;
    pay(db, "A1", "12.345", "2026-11-21T10:00:00Z", at("2026-11-21T11:00:00Z")).await;

    let response = app.get("/v1/reports/kpis", Some(&app.tokens.admin)).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["by"], "stage");
    assert_eq!(body["from"], "2026-11-15T01:00:00Z");
    assert_eq!(body["total"]["attempts"], 2, "{body}");
    assert_eq!(body["total"]["right_party_contacts"], 1);
    assert_eq!(body["total"]["rpc_rate"], 0.5);
    assert_eq!(body["total"]["amounts"][0]["currency"], "USD", "{body}");
    assert_eq!(body["total"]["amounts"][0]["collected"], "12.345", "money is an exact string");
    assert_eq!(body["groups"][0]["group"], "(none)");
    assert!(body["roll"]["rows"].as_array().unwrap().is_empty(), "{body}");

    let response = app.get("/v1/reports/kpis?from=2026-11-01&to=2026-11-20&by=rule", Some(&app.tokens.ingest)).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!((body["by"].as_str(), body["to"].as_str()), (Some("rule"), Some("2026-11-21T00:00:00Z")));
    assert_eq!(body["total"]["attempts"], 2, "11-10 and 11-20 (the date `to` is included): {body}");

    let response = app.get("/v1/reports/kpis?by=color", Some(&app.tokens.admin)).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_query");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("by: `color`"), "{body}");
    let response = app.get("/v1/reports/kpis?from=yesterday", Some(&app.tokens.admin)).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().starts_with("from:"), "{body}");
    let response = app.get("/v1/reports/kpis?form=2026-11-01", Some(&app.tokens.admin)).await;
    assert_eq!(response.status(), 400, "a misspelt parameter is not ignored");

    let response = app.get("/v1/reports/kpis", Some(&app.tokens.agent)).await;
    assert_eq!(response.status(), 403);
    let response = app.get("/v1/reports/kpis", Some(&app.tokens.dialler)).await;
    assert_eq!(response.status(), 403);
    let response = app.get("/v1/reports/kpis", None).await;
    assert_eq!(response.status(), 401);

    let openapi: serde_json::Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert!(openapi["paths"]["/v1/reports/kpis"]["get"].is_object());
    assert!(openapi["components"]["schemas"]["KpiReport"].is_object());
}
