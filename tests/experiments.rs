//! Experiments through the real paths, on SQLite and (when `ARREARS_TEST_DATABASE_URL` is set)
//! PostgreSQL: a borrower's accounts share an arm (plan, stored entries and `explain` agree);
//! entries are written once, when an account enters the experiment's stage, and keep their
//! arm and instant; outcomes are read only for accounts whose horizon has passed and only
//! within it; the HTTP endpoint and its errors; strategy errors with their location.

mod common;

use arrears::experiment::reading::Role;
use arrears::import::ImportKind;
use arrears::ops::experiments::read_one;
use arrears::strategy::StrategySet;
use chrono::{DateTime, Duration, Utc};
use common::TestDb;
use sea_orm::DatabaseConnection;
use std::collections::{HashMap, HashSet};

const HEADER: &str = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,due_date,tags,flags,consent_robot";

const STRATEGY: &str = r#"
name = "test"
policy = "us-reg-f"
[stages]
early = { dpd = [1, 10] }
late = { dpd = [11, 365] }

[[rule]]
name = "early challenger"
stage = "early"
channel = "human"
queue = "challengers"
calls_per_day = 1

[[rule]]
name = "early agents"
stage = "early"
channel = "human"
queue = "collectors"
calls_per_day = 1

[[rule]]
name = "late agents"
stage = "late"
channel = "human"
queue = "collectors"
calls_per_day = 1

[[experiment]]
name = "early-test"
stage = "early"
horizon = "3d"
arms = [
  { name = "champion", weight = 50 },
  { name = "challenger", weight = 50, rules = ["early challenger"] },
]
"#;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Monday 2026-11-23, 10:00 in New York.
fn day1() -> DateTime<Utc> {
    at("2026-11-23T15:00:00Z")
}

fn load(text: &str) -> Result<StrategySet, String> {
    common::strategies_from(text)
}

fn strategies() -> StrategySet {
    load(STRATEGY).unwrap_or_else(|errors| panic!("{errors}"))
}

/// One accounts.csv row in New York; `borrower` may own several accounts.
fn row(account: &str, borrower: &str, due_date: &str) -> String {
    let phone = format!("+1555{:07}", borrower.bytes().map(u64::from).sum::<u64>());
    format!("{account},{borrower},Name {borrower},{phone},,America/New_York,loan,USD,100,1000,{due_date},,,true")
}

async fn import(db: &DatabaseConnection, kind: ImportKind, header: &str, lines: &[String], now: DateTime<Utc>) {
    common::import_lines(db, kind, header, lines, now).await;
}

/// 40 borrowers with two accounts each, all due 11-20 (DPD 3 on 11-23: stage early).
fn book() -> Vec<String> {
    (0..40)
        .flat_map(|b| ["a", "b"].map(|suffix| row(&format!("A{b}{suffix}"), &format!("B{b}"), "2026-11-20")))
        .collect()
}

async fn entries(db: &DatabaseConnection) -> Vec<entity::experiment_entries::Model> {
    use sea_orm::{EntityTrait, QueryOrder};
    entity::experiment_entries::Entity::find()
        .order_by_asc(entity::experiment_entries::Column::AccountId)
        .all(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_borrowers_accounts_share_an_arm_and_entries_are_sticky() {
    for test_db in common::all_dbs().await {
        check_assignment(&test_db).await;
    }
}

async fn check_assignment(test_db: &TestDb) {
    let db = &test_db.db;
    let b = test_db.backend;
    let strategies = strategies();
    import(db, ImportKind::Accounts, HEADER, &book(), at("2026-11-22T00:00:00Z")).await;
    arrears::ops::plan_and_persist(db, &strategies, day1(), false).await.unwrap();

    let stored = entries(db).await;
    assert_eq!(stored.len(), 80, "{b}: every account entered the experiment at its first plan");
    let mut arm_of_borrower: HashMap<&str, &str> = HashMap::new();
    for entry in &stored {
        let arm = arm_of_borrower.entry(&entry.borrower_id).or_insert(&entry.arm);
        assert_eq!(*arm, entry.arm, "{b}: borrower {} has accounts in two arms", entry.borrower_id);
        assert_eq!((entry.entered_at, entry.dpd, entry.stage.as_str()), (day1(), 3, "early"), "{b}");
        assert_eq!((entry.balance, entry.currency.as_str()), ("1000".parse().unwrap(), "USD"), "{b}");
    }
    let arms: HashSet<&str> = arm_of_borrower.values().copied().collect();
    assert_eq!(arms.len(), 2, "{b}: 40 borrowers at 50/50 fill both arms");

    // The tasks follow the stored arm: challengers' accounts go to their reserved rule.
    use sea_orm::EntityTrait;
    let tasks = entity::tasks::Entity::find().all(db).await.unwrap();
    let arm_of_account: HashMap<&str, &str> =
        stored.iter().map(|entry| (entry.account_id.as_str(), entry.arm.as_str())).collect();
    for task in &tasks {
        assert_eq!(task.arm.as_deref(), Some(arm_of_account[task.account_id.as_str()]), "{b}");
        let expected =
            if arm_of_account[task.account_id.as_str()] == "challenger" { "challengers" } else { "collectors" };
        assert_eq!(task.queue.as_deref(), Some(expected), "{b}: {task:?}");
    }
    // `explain` names the same arm.
    let explained = arrears::ops::explain_account(db, &strategies, "A7b", day1()).await.unwrap().unwrap();
    let trace = explained.explanation.experiment.unwrap();
    assert_eq!((trace.experiment.as_str(), trace.arm.as_str()), ("early-test", arm_of_account["A7b"]), "{b}");

    // Planned again the next day, and after a roll to `late` and back: nothing changes.
    arrears::ops::plan_and_persist(db, &strategies, day1() + Duration::days(1), false).await.unwrap();
    let late: Vec<String> = (0..40).map(|b| row(&format!("A{b}a"), &format!("B{b}"), "2026-11-10")).collect();
    import(db, ImportKind::Accounts, HEADER, &late, day1() + Duration::days(1)).await;
    arrears::ops::plan_and_persist(db, &strategies, day1() + Duration::days(2), false).await.unwrap();
    let back: Vec<String> = (0..40).map(|b| row(&format!("A{b}a"), &format!("B{b}"), "2026-11-20")).collect();
    import(db, ImportKind::Accounts, HEADER, &back, day1() + Duration::days(2)).await;
    arrears::ops::plan_and_persist(db, &strategies, day1() + Duration::days(3), false).await.unwrap();
    assert_eq!(entries(db).await, stored, "{b}: the first entry stays");
}

#[tokio::test]
async fn outcomes_are_read_at_the_horizon_only() {
    for test_db in common::all_dbs().await {
        check_horizon(&test_db).await;
    }
}

async fn check_horizon(test_db: &TestDb) {
    let db = &test_db.db;
    let b = test_db.backend;
    let strategies = strategies();
    import(db, ImportKind::Accounts, HEADER, &book(), at("2026-11-22T00:00:00Z")).await;
    arrears::ops::plan_and_persist(db, &strategies, day1(), false).await.unwrap();
    // A0a pays in full on day 2 (inside 3 days); A1a on day 5 (after its horizon). Each is
    // imported an hour after it was made (a cure counts when the engine learns of it).
    for (account, paid_at) in [("A0a", "2026-11-24T12:00:00Z"), ("A1a", "2026-11-27T12:00:00Z")] {
        let line = format!("{account},100,{paid_at},ref-{account}");
        let now = at(paid_at) + Duration::hours(1);
        import(db, ImportKind::Payments, "account_id,amount,paid_at,reference", &[line], now).await;
    }

    let before = read_one(db, &strategies, "early-test", day1() + Duration::days(2)).await.unwrap().unwrap();
    assert_eq!(before.arms.iter().map(|arm| arm.matured).sum::<u64>(), 0, "{b}: nobody is 3 days in yet");
    assert_eq!(before.arms.iter().map(|arm| arm.entered).sum::<u64>(), 80, "{b}");
    let cured = |reading: &arrears::experiment::ExperimentReading| -> f64 {
        reading
            .arms
            .iter()
            .map(|arm| {
                let mean =
                    arm.metrics.iter().find(|m| m.metric == "cured").and_then(|m| m.estimate).map_or(0.0, |e| e.mean);
                mean * arm.matured as f64
            })
            .sum()
    };
    assert_eq!(cured(&before), 0.0, "{b}");

    let after = read_one(db, &strategies, "early-test", day1() + Duration::days(6)).await.unwrap().unwrap();
    assert_eq!(after.arms.iter().map(|arm| arm.matured).sum::<u64>(), 80, "{b}");
    assert!((cured(&after) - 1.0).abs() < 1e-9, "{b}: only A0a paid within 3 days: {}", cured(&after));
    let collected: f64 = after
        .arms
        .iter()
        .map(|arm| {
            arm.metrics.iter().find(|m| m.metric == "collected:USD").and_then(|m| m.estimate).map_or(0.0, |e| e.mean)
                * arm.matured as f64
        })
        .sum();
    assert!((collected - 100.0).abs() < 1e-6, "{b}: A1a's payment is after its horizon: {collected}");
    assert_eq!(after.arms[0].role, Role::Champion);
    assert_eq!(after.comparisons.len(), 1);
    assert!(after.srm.is_some(), "{b}");
    assert!(after.summary.starts_with("80 accounts entered since 2026-11-23; 80 have reached the 3-day horizon."));
}

#[tokio::test]
async fn strategy_errors_name_the_experiment_field() {
    let bad = STRATEGY.replace(r#"horizon = "3d""#, r#"horizon = "36h""#);
    let errors = load(&bad).unwrap_err();
    assert!(errors.contains("test.toml:") && errors.contains("horizon `36h` must be whole days"), "{errors}");
    let bad = STRATEGY
        .replace(r#"{ name = "champion", weight = 50 }"#, r#"{ name = "champion", weight = 50, holdout = true }"#);
    let errors = load(&bad).unwrap_err();
    assert!(errors.contains("the first arm is the champion and cannot be the holdout"), "{errors}");
    let holdout = STRATEGY.replace(
        r#"{ name = "challenger", weight = 50, rules = ["early challenger"] },"#,
        r#"{ name = "challenger", weight = 45, rules = ["early challenger"] }, { name = "holdout", weight = 5, holdout = true },"#,
    );
    let set = load(&holdout).unwrap();
    assert_eq!(set.strategies[0].experiments[0].holdout, Some(2));
    assert_eq!(set.strategies[0].experiments[0].horizon_days, 3);
}

#[tokio::test]
async fn experiments_are_served_to_admin_manager_and_ingest_tokens() {
    let app = common::app::spawn_app(common::sqlite_db().await).await;
    let response = app.get("/v1/experiments", Some(&app.tokens.admin)).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let names: Vec<&str> = body.as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert!(names.contains(&"m1-robot-vs-human"), "{body}");
    let response = app.get("/v1/experiments/m1-robot-vs-human", Some(&app.tokens.ingest)).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["arms"][0]["name"], "champion", "{body}");
    assert_eq!(body["arms"][0]["role"], "champion");
    assert_eq!(body["summary"], "No account has entered stage M1 since the experiment started.");
    let response = app.get("/v1/experiments/nope", Some(&app.tokens.admin)).await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(app.get("/v1/experiments", Some(&app.tokens.manager)).await.status(), 200, "managers read experiments");
    assert_eq!(app.get("/v1/experiments", Some(&app.tokens.agent)).await.status(), 403);
    assert_eq!(app.get("/v1/experiments", None).await.status(), 401);
    let openapi: serde_json::Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert!(openapi["paths"]["/v1/experiments/{name}"]["get"].is_object());
}
