//! Planning through the store: the same book gives the same plan on SQLite and PostgreSQL, a
//! saved plan is idempotent for the local day, and stage changes are recorded.

mod common;

use arrears::import::ImportKind;
use arrears::policy::PolicySettings;
use arrears::strategy::{LoadOptions, StrategySet};
use chrono::{DateTime, Utc};
use sea_orm::{EntityTrait, PaginatorTrait};
use std::path::Path;

fn shipped_strategies() -> StrategySet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = PolicySettings::default();
    let options = LoadOptions {
        templates_dir: &root.join("templates"),
        default_policy: "us-reg-f",
        settings: &settings,
        capacities: &Default::default(),
    };
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
        let (_, dry) = arrears::ops::plan_collect(db, &strategies, now, true).await.unwrap();
        assert_eq!(arrears::store::count_tasks(db).await.unwrap(), 0, "{}: a dry run saves nothing", test_db.backend);
        let (first_run, first) = arrears::ops::plan_collect(db, &strategies, now, false).await.unwrap();
        assert_eq!(first, dry, "{}: the dry run shows what is saved", test_db.backend);
        let saved = arrears::store::count_tasks(db).await.unwrap();
        assert_eq!(saved, first.tasks.len() as u64, "{}", test_db.backend);
        assert!(saved > 500, "{}: only {saved} tasks", test_db.backend);

        let later: DateTime<Utc> = "2026-11-01T15:00:00Z".parse().unwrap();
        let (_, again) = arrears::ops::plan_collect(db, &strategies, later, false).await.unwrap();
        assert_eq!(
            arrears::store::count_tasks(db).await.unwrap(),
            saved,
            "{}: the same local day adds nothing",
            test_db.backend
        );
        assert!(again.tasks.iter().all(|task| !first.tasks.iter().any(|t| t.account_id == task.account_id)));
        assert!(again.skips.iter().filter(|s| s.reason == "already_planned").count() as u64 >= saved / 3);

        assert_eq!(first_run.totals.tasks, saved, "{}", test_db.backend);
        let planned = &first.tasks[0];
        let history = arrears::store::stage_history_of(db, &planned.account_id).await.unwrap();
        assert!(!history.is_empty(), "{}: the first stage of an account is recorded", test_db.backend);
        plans.push((test_db.backend, jsonl(&first)));
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
    let (_, plan) = arrears::ops::plan_collect(&test_db.db, &strategies, now, true).await.unwrap();
    let book = arrears::store::load_portfolio(&test_db.db).await.unwrap();
    let mut seen: std::collections::HashSet<&str> = plan.skips.iter().map(|s| s.account_id.as_str()).collect();
    seen.extend(plan.tasks.iter().map(|t| &*t.account_id));
    assert_eq!(seen.len(), book.accounts.len());
    for task in &plan.tasks {
        let strategy = strategies.strategies.iter().find(|s| s.name == task.strategy).unwrap();
        let hours = strategy.policy.hours;
        let account = book.accounts.iter().find(|a| *a.id == *task.account_id).unwrap();
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

#[tokio::test]
async fn planning_page_by_page_decides_and_saves_exactly_what_planning_the_whole_book_does() {
    let now: DateTime<Utc> = "2026-11-22T01:30:00Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), 1_000, 3, now).unwrap();
    let strategies = shipped_strategies();
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        load_book(db, dir.path()).await;
        // The pure planner over the whole book at once.
        let book = arrears::store::load_portfolio(db).await.unwrap();
        let today = now.date_naive();
        let history = arrears::store::load_history(
            db,
            arrears::store::HistoryScope::Book,
            now - chrono::Duration::days(8),
            Some((today - chrono::Duration::days(1))..=(today + chrono::Duration::days(1))),
        )
        .await
        .unwrap();
        let whole = arrears::plan::plan(&book, &history, &strategies, now);
        // The history decides some of them (each page reads its own borrowers' history).
        use arrears::domain::Reason;
        let by_history = whole
            .skips
            .iter()
            .filter(|skip| matches!(skip.reason, Reason::PromiseOpen | Reason::Cooldown | Reason::Cap(_)));
        assert!(by_history.count() > 0, "{}: the book's history decides no account", test_db.backend);

        // Pages of 97 accounts: many pages, and borrowers whose accounts straddle two pages.
        let mut paged = arrears::plan::Plan::default();
        let outcome = arrears::ops::plan_pages_of(db, &strategies, now, false, 97, |page| {
            assert!(page.tasks.len() + page.skips.len() >= 1);
            paged.tasks.extend_from_slice(&page.tasks);
            paged.skips.extend_from_slice(&page.skips);
            Ok(())
        })
        .await
        .unwrap();
        let key = |plan: &arrears::plan::Plan| {
            let mut tasks = plan.tasks.clone();
            tasks.sort_by(|a, b| (&a.account_id, a.attempt).cmp(&(&b.account_id, b.attempt)));
            let mut skips = plan.skips.clone();
            skips.sort_by(|a, b| a.account_id.cmp(&b.account_id));
            (tasks, skips)
        };
        assert_eq!(key(&paged), key(&whole), "{}", test_db.backend);
        assert_eq!(outcome.totals.accounts, 1_000, "{}", test_db.backend);
        assert_eq!(outcome.totals.tasks, whole.tasks.len() as u64);
        assert_eq!(outcome.totals.skips, whole.skips.len() as u64);
        let saved = arrears::store::count_tasks(db).await.unwrap();
        assert_eq!(saved, whole.tasks.len() as u64, "{}: every page was saved", test_db.backend);
        let staged = whole.skips.iter().filter(|skip| skip.stage.is_some()).count()
            + whole.tasks.iter().filter(|task| task.attempt == 1).count();
        let moves = entity::prelude::StageHistory::find().count(db).await.unwrap();
        assert_eq!(moves, staged as u64, "{}: one first stage per staged account", test_db.backend);
    }
}

/// A borrower with more contact points than one read returns (here 40,001 more than the
/// book's own) is read whole, by a plan page and by a hand-off: the gate sees every address
/// it may have to refuse.
#[tokio::test]
async fn a_borrower_with_more_contact_points_than_one_read_returns_is_read_whole() {
    let now: DateTime<Utc> = "2026-11-22T01:30:00Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), 20, 3, now).unwrap();
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        load_book(db, dir.path()).await;
        let first = arrears::store::load_book_page(db, "", 10_000).await.unwrap();
        let account = first.portfolio.accounts[7].clone();
        let own = first.portfolio.borrowers[&account.borrower_id].contact_points.len();
        use sea_orm::ConnectionTrait;
        let extra = 40_001;
        db.execute_unprepared(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {extra}) \
             INSERT INTO contact_points (borrower_id, kind, address) \
             SELECT '{}', 'email', 'p' || i || '@example.com' FROM n",
            account.borrower_id
        ))
        .await
        .unwrap();

        let before = &first.portfolio.borrowers[&account.borrower_id].contact_points;
        // In the order they were added: the borrower's own points first, then p1 ... p40001
        // (by address, p10 would come before p2).
        let in_id_order = |points: &[arrears::domain::ContactPoint], path: &str| {
            assert_eq!(points.len(), own + extra, "{}: {path}", test_db.backend);
            assert_eq!(&points[..own], &before[..], "{}: {path}", test_db.backend);
            for (index, point) in points[own..].iter().enumerate() {
                assert_eq!(point.address, format!("p{}@example.com", index + 1), "{}: {path}", test_db.backend);
            }
        };
        for (path, points) in points_on_both_paths(db, &account, now).await {
            in_id_order(&points, path);
        }
    }
}

/// The contact points of `account`'s borrower as a plan page reads them and as a hand-off
/// (lease, release, attempt) reads them, each with the path's name.
async fn points_on_both_paths(
    db: &sea_orm::DatabaseConnection,
    account: &arrears::domain::Account,
    now: DateTime<Utc>,
) -> [(&'static str, Vec<arrears::domain::ContactPoint>); 2] {
    let mut page = arrears::store::load_book_page(db, "", 10_000).await.unwrap();
    let (mut book, _) = arrears::store::load_hand_off(db, &[account.id.as_str()], now).await.unwrap();
    let points = |borrowers: &mut std::collections::HashMap<_, arrears::domain::Borrower, _>| {
        std::mem::take(&mut borrowers.get_mut(&account.borrower_id).unwrap().contact_points)
    };
    [("a plan page", points(&mut page.portfolio.borrowers)), ("a hand-off", points(&mut book.borrowers))]
}

/// A borrower's contact points are read in the order they were added (their ids), whatever
/// the order of the index they are found by (kind, then address): the first usable phone is
/// the one the lender gave first, on a plan page and at a hand-off alike.
#[tokio::test]
async fn a_borrowers_contact_points_come_in_the_order_they_were_added() {
    let now: DateTime<Utc> = "2026-11-22T01:30:00Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), 20, 3, now).unwrap();
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        load_book(db, dir.path()).await;
        let first = arrears::store::load_book_page(db, "", 10_000).await.unwrap();
        let account = first.portfolio.accounts[3].clone();
        use sea_orm::ConnectionTrait;
        db.execute_unprepared(&format!(
            "DELETE FROM contact_points WHERE borrower_id = '{0}'; \
             INSERT INTO contact_points (borrower_id, kind, address) VALUES ('{0}', 'phone', '+15550000009'); \
             INSERT INTO contact_points (borrower_id, kind, address) VALUES ('{0}', 'email', 'z@example.com'); \
             INSERT INTO contact_points (borrower_id, kind, address) VALUES ('{0}', 'phone', '+15550000001'); \
             INSERT INTO contact_points (borrower_id, kind, address) VALUES ('{0}', 'email', 'a@example.com')",
            account.borrower_id
        ))
        .await
        .unwrap();
        let added = ["+15550000009", "z@example.com", "+15550000001", "a@example.com"];
        for (path, points) in points_on_both_paths(db, &account, now).await {
            let read: Vec<&str> = points.iter().map(|point| point.address.as_str()).collect();
            assert_eq!(read, added, "{}: {path}", test_db.backend);
        }
    }
}
