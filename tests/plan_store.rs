//! Planning through the store: the same book gives the same plan on SQLite and PostgreSQL, a
//! saved plan is idempotent for the local day, and stage changes are recorded.

mod common;

use arrears::import::ImportKind;
use arrears::policy::PolicySettings;
use arrears::strategy::{LoadOptions, StrategySet};
use chrono::{DateTime, Utc};
use std::path::Path;

fn shipped_strategies() -> StrategySet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = PolicySettings::default();
    let options =
        LoadOptions { templates_dir: &root.join("templates"), default_policy: "us-reg-f", settings: &settings };
    arrears::strategy::load_dir(&root.join("strategies"), &options).unwrap_or_else(|errors| panic!("{errors}"))
}

async fn load_book(db: &sea_orm::DatabaseConnection, dir: &Path) {
    for (kind, file) in [
        (ImportKind::Accounts, "accounts.csv"),
        (ImportKind::Attempts, "attempts.csv"),
        (ImportKind::Promises, "promises.csv"),
    ] {
        arrears::import::import_file(db, kind, &dir.join(file)).await.unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

fn jsonl(plan: &arrears::plan::Plan) -> String {
    let mut out = Vec::new();
    arrears::ops::write_jsonl(plan, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn the_same_book_plans_the_same_on_every_store_and_replanning_adds_nothing() {
    // A US fall-back day: New York and Chicago borrowers get a 25-hour local day.
    let now: DateTime<Utc> = "2026-11-01T11:30:00Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), 1_500, 11, now).unwrap();
    let strategies = shipped_strategies();
    let mut plans = Vec::new();
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        load_book(db, dir.path()).await;
        let dry = arrears::ops::plan_and_persist(db, &strategies, now, true).await.unwrap();
        assert_eq!(arrears::store::count_tasks(db).await.unwrap(), 0, "{}: a dry run saves nothing", test_db.backend);
        let first = arrears::ops::plan_and_persist(db, &strategies, now, false).await.unwrap();
        assert_eq!(first.plan, dry.plan, "{}: the dry run shows what is saved", test_db.backend);
        let saved = arrears::store::count_tasks(db).await.unwrap();
        assert_eq!(saved, first.plan.tasks.len() as u64, "{}", test_db.backend);
        assert!(saved > 500, "{}: only {saved} tasks", test_db.backend);

        let later: DateTime<Utc> = "2026-11-01T15:00:00Z".parse().unwrap();
        let again = arrears::ops::plan_and_persist(db, &strategies, later, false).await.unwrap();
        assert_eq!(
            arrears::store::count_tasks(db).await.unwrap(),
            saved,
            "{}: the same local day adds nothing",
            test_db.backend
        );
        assert!(again.plan.tasks.iter().all(|task| !first.plan.tasks.iter().any(|t| t.account_id == task.account_id)));
        assert!(again.plan.skips.iter().filter(|s| s.reason == "already_planned").count() as u64 >= saved / 3);

        let planned = &first.plan.tasks[0];
        let history = arrears::store::stage_history_of(db, &planned.account_id).await.unwrap();
        assert!(!history.is_empty(), "{}: the first stage of an account is recorded", test_db.backend);
        plans.push((test_db.backend, jsonl(&first.plan)));
    }
    for (backend, plan) in &plans[1..] {
        assert_eq!(plan, &plans[0].1, "{backend} planned differently from {}", plans[0].0);
    }
}

#[tokio::test]
async fn every_account_appears_and_no_task_leaves_its_policy_hours() {
    // The US spring-forward day, with borrowers across Chinese and US zones.
    let now: DateTime<Utc> = "2026-03-08T06:30:00Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), 2_000, 5, now).unwrap();
    let strategies = shipped_strategies();
    let test_db = common::sqlite_db().await;
    load_book(&test_db.db, dir.path()).await;
    let outcome = arrears::ops::plan_and_persist(&test_db.db, &strategies, now, true).await.unwrap();
    let book = arrears::store::load_portfolio(&test_db.db).await.unwrap();
    let mut seen: std::collections::HashSet<&str> = outcome.plan.skips.iter().map(|s| s.account_id.as_str()).collect();
    seen.extend(outcome.plan.tasks.iter().map(|t| t.account_id.as_str()));
    assert_eq!(seen.len(), book.accounts.len());
    for task in &outcome.plan.tasks {
        let strategy = strategies.strategies.iter().find(|s| s.name == task.strategy).unwrap();
        let hours = strategy.policy.hours;
        let account = book.accounts.iter().find(|a| a.id == task.account_id).unwrap();
        let borrower = &book.borrowers[&account.borrower_id];
        let mut instant = task.not_before.to_utc();
        while instant < task.not_after.to_utc() {
            for zone in &borrower.timezones {
                let local = instant.with_timezone(zone).time();
                assert!(
                    hours.contains(local),
                    "{} {} at {local} in {zone}, outside {hours}",
                    task.account_id,
                    task.rule
                );
            }
            instant += chrono::Duration::minutes(5);
        }
    }
}
