//! The store against real databases: plan persistence (bulk, idempotent, stage history), the
//! raw bulk insert, the loaders and the audit trail, on SQLite and (when configured) PostgreSQL.

mod common;

use arrears::domain::{Account, Borrower, Channel, ContactKind, ContactPoint, Flags};
use arrears::plan::Task;
use arrears::store::{self, NewAttempt, NewPlanRun};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use common::{TestDb, all_dbs, postgres_db, with_database};
use entity::prelude::*;
use rust_decimal::Decimal;
use sea_orm::{EntityTrait, PaginatorTrait, QueryOrder};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

fn day(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
}

fn account(id: &str, borrower: &str, amount: &str) -> Account {
    Account {
        id: id.to_string(),
        borrower_id: borrower.to_string(),
        product: "cash".into(),
        currency: "CNY".into(),
        amount_due: Decimal::from_str(amount).unwrap(),
        balance: Decimal::from_str(amount).unwrap(),
        due_date: day(1),
        tags: vec![],
        flags: Flags::NONE,
        scores: vec![],
        attrs: vec![],
        broken_promises: 0,
        funders: None,
        hold_until: None,
    }
}

fn borrower(id: &str) -> Borrower {
    Borrower {
        id: id.to_string(),
        name: format!("Borrower {id}"),
        timezones: vec![chrono_tz::Asia::Shanghai],
        contact_points: vec![ContactPoint {
            kind: ContactKind::Phone,
            address: "+8613800138000".into(),
            opted_out: vec![],
            wrong_number: false,
            retired: false,
        }],
        consent_robot: true,
    }
}

/// A store with `n` accounts `A-00000`… of borrowers `B-00000`….
async fn with_accounts(db: &TestDb, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("A-{i:05}")).collect();
    let borrowers: Vec<Borrower> = (0..n).map(|i| borrower(&format!("B-{i:05}"))).collect();
    let accounts: Vec<Account> =
        ids.iter().enumerate().map(|(i, id)| account(id, &format!("B-{i:05}"), "100")).collect();
    store::upsert_borrowers(&db.db, &borrowers, at(1, 0)).await.unwrap();
    store::upsert_accounts(&db.db, &accounts, at(1, 0)).await.unwrap();
    ids
}

/// Every row of `account_stages`, `(account, stage)` in account order.
async fn stored_stages(db: &TestDb) -> Vec<(String, String)> {
    AccountStages::find()
        .order_by_asc(entity::account_stages::Column::AccountId)
        .all(&db.db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.account_id, row.stage))
        .collect()
}

fn task(account_id: &str, local_date: NaiveDate, attempt: u32, stage: &str) -> Task {
    let zone = FixedOffset::east_opt(8 * 3600).unwrap();
    let opens = zone.from_local_datetime(&local_date.and_hms_opt(9, 0, 0).unwrap()).unwrap();
    Task {
        account_id: account_id.into(),
        borrower_id: account_id.replace("A-", "B-").into(),
        local_date,
        dpd: 21,
        stage: Arc::from(stage),
        strategy: Arc::from("consumer-cash"),
        rule: Arc::from("early robot"),
        arm: (attempt == 2).then(|| Arc::from("champion")),
        channel: Channel::Robot,
        queue: None,
        template: Some(Arc::from("robot/early")),
        attempt,
        calls_allowed: 1,
        not_before: opens + Duration::hours(i64::from(attempt) * 2),
        not_after: opens + Duration::hours(11),
        priority: 0.5,
        p_contact: None,
    }
}

fn run(as_of: DateTime<Utc>, tasks: usize) -> NewPlanRun {
    NewPlanRun {
        as_of,
        started_at: as_of,
        accounts: 3,
        tasks: tasks as u64,
        skips: 1,
        skip_counts: BTreeMap::from([("not_due".to_string(), 1)]),
        strategies: vec![("consumer-cash".into(), "abc123".into())],
    }
}

fn stages(pairs: &[(&str, &str)]) -> Vec<(String, Arc<str>)> {
    pairs.iter().map(|(id, stage)| (id.to_string(), Arc::from(*stage))).collect()
}

#[tokio::test]
async fn a_saved_plan_reads_back_in_utc_and_replanning_adds_nothing() {
    for db in all_dbs().await {
        with_accounts(&db, 3).await;
        let tasks = vec![
            task("A-00000", day(22), 1, "M1"),
            task("A-00000", day(22), 2, "M1"),
            task("A-00001", day(22), 1, "M2"),
        ];
        let first = store::save_plan(
            &db,
            &run(at(22, 0), 3),
            &tasks,
            &stages(&[("A-00000", "M1"), ("A-00001", "M2")]),
            at(22, 0),
        )
        .await
        .unwrap();
        let stored = store::tasks_for_account(&*db, "A-00000").await.unwrap();
        assert_eq!(stored.len(), 2, "{}", db.backend);
        let second_attempt = &stored[1];
        assert_eq!(second_attempt.plan_run_id, first);
        assert_eq!(second_attempt.attempt, 2);
        assert_eq!(second_attempt.state, "planned");
        assert_eq!(second_attempt.channel, "robot");
        assert_eq!(second_attempt.arm.as_deref(), Some("champion"));
        assert_eq!(stored[0].arm, None, "{}: an empty arm is NULL", db.backend);
        assert_eq!(second_attempt.queue, None);
        assert_eq!(second_attempt.template.as_deref(), Some("robot/early"));
        // 09:00+08:00 plus two attempts' spacing = 05:00 UTC.
        assert_eq!(second_attempt.not_before, at(22, 5), "{}", db.backend);
        assert_eq!(second_attempt.not_after, at(22, 12));
        assert_eq!(second_attempt.local_date, day(22));
        assert_eq!(second_attempt.priority, 0.5);

        // Re-planning the same day: a new run, no new task, no stage change.
        let again = store::save_plan(
            &db,
            &run(at(22, 1), 3),
            &tasks,
            &stages(&[("A-00000", "M1"), ("A-00001", "M2")]),
            at(22, 1),
        )
        .await
        .unwrap();
        assert_ne!(again, first);
        assert_eq!(store::count_tasks(&*db).await.unwrap(), 3, "{}", db.backend);
        assert_eq!(StageHistory::find().count(&db.db).await.unwrap(), 2, "{}", db.backend);

        // A re-plan that adds an attempt: only the new task is written, by the new run.
        let mut more = tasks.clone();
        more.insert(2, task("A-00000", day(22), 3, "M1"));
        let third =
            store::save_plan(&db, &run(at(22, 2), 4), &more, &stages(&[("A-00000", "M1")]), at(22, 2)).await.unwrap();
        let stored = store::tasks_for_account(&*db, "A-00000").await.unwrap();
        let runs: Vec<(i32, i64)> = stored.iter().map(|task| (task.attempt, task.plan_run_id)).collect();
        assert_eq!(runs, [(1, first), (2, first), (3, third)], "{}", db.backend);
        assert_eq!(store::count_tasks(&*db).await.unwrap(), 4, "{}", db.backend);

        let runs = PlanRuns::find().order_by_asc(entity::plan_runs::Column::Id).all(&db.db).await.unwrap();
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[0].as_of, at(22, 0));
        assert_eq!(runs[0].skip_counts, r#"{"not_due":1}"#);
        assert_eq!(runs[0].strategies, r#"[{"hash":"abc123","name":"consumer-cash"}]"#);
        assert!(runs[0].finished_at.is_some());

        // A planned day is history for the next plan.
        let history =
            store::load_history(&*db, store::HistoryScope::Book, at(15, 0), Some(day(21)..=day(23))).await.unwrap();
        assert!(history.planned_days.contains(&("A-00000".to_string(), day(22))));
        assert_eq!(history.planned_days.len(), 2, "{}", db.backend);
        let outside =
            store::load_history(&*db, store::HistoryScope::Book, at(15, 0), Some(day(23)..=day(24))).await.unwrap();
        assert!(outside.planned_days.is_empty());
    }
}

#[tokio::test]
async fn stage_changes_are_recorded_once_each() {
    for db in all_dbs().await {
        with_accounts(&db, 3).await;
        let first =
            store::save_plan(&db, &run(at(22, 0), 0), &[], &stages(&[("A-00000", "M1"), ("A-00001", "M1")]), at(22, 0))
                .await
                .unwrap();
        let second = store::save_plan(
            &db,
            &run(at(23, 0), 0),
            &[],
            &stages(&[("A-00000", "M1"), ("A-00001", "M2"), ("A-00002", "pre-due"), ("A-missing", "M1")]),
            at(23, 0),
        )
        .await
        .unwrap();
        let history = store::stage_history_of(&*db, "A-00001").await.unwrap();
        let moves: Vec<(Option<&str>, &str, i64)> =
            history.iter().map(|row| (row.from_stage.as_deref(), row.to_stage.as_str(), row.plan_run_id)).collect();
        assert_eq!(moves, [(None, "M1", first), (Some("M1"), "M2", second)], "{}", db.backend);
        assert_eq!(history[1].at, at(23, 0));
        assert_eq!(store::stage_history_of(&*db, "A-00000").await.unwrap().len(), 1, "{}: unchanged stage", db.backend);
        assert!(store::stage_history_of(&*db, "A-missing").await.unwrap().is_empty());
        // The stored stages: one row per account in a stage, none for an account not in the book.
        let stages = stored_stages(&db).await;
        let expected =
            [("A-00000", "M1"), ("A-00001", "M2"), ("A-00002", "pre-due")].map(|(a, s)| (a.into(), s.into()));
        assert_eq!(stages, expected, "{}", db.backend);
    }
}

#[tokio::test]
async fn big_plans_are_split_below_the_bind_limits() {
    // More rows than one statement takes on either backend (SQLite 2,047 rows of 16 values;
    // PostgreSQL 20,000 rows per UNNEST), and more stage changes than one IN list.
    let n = 40_000;
    for db in all_dbs().await {
        let ids = with_accounts(&db, n).await;
        let tasks: Vec<Task> = ids.iter().map(|id| task(id, day(22), 1, "M1")).collect();
        let pairs: Vec<(String, Arc<str>)> = ids.iter().map(|id| (id.clone(), Arc::from("M1"))).collect();
        store::save_plan(&db, &run(at(22, 0), n), &tasks, &pairs, at(22, 0)).await.unwrap();
        assert_eq!(store::count_tasks(&*db).await.unwrap(), n as u64, "{}", db.backend);
        assert_eq!(StageHistory::find().count(&db.db).await.unwrap(), n as u64, "{}", db.backend);
        let book = store::load_portfolio(&*db).await.unwrap();
        assert_eq!(book.accounts.len(), n, "{}: loaded across pages", db.backend);
        assert_eq!(book.borrowers.len(), n);
        assert!(book.borrowers.values().all(|borrower| borrower.contact_points.len() == 1));
    }
}

#[tokio::test]
async fn the_raw_insert_writes_the_same_rows() {
    for db in all_dbs().await {
        let tasks: Vec<Task> =
            (0..5000).map(|i| task(&format!("A-{i:05}"), day(22), 1 + (i % 3) as u32, "M1")).collect();
        assert_eq!(store::raw_insert_tasks(&db, &tasks).await.unwrap(), 5000, "{}", db.backend);
        assert_eq!(store::count_tasks(&*db).await.unwrap(), 5000);
        let stored = store::tasks_for_account(&*db, "A-00004").await.unwrap();
        assert_eq!(
            (stored[0].attempt, stored[0].plan_run_id, stored[0].not_after),
            (2, 0, at(22, 12)),
            "{}",
            db.backend
        );
        // The raw path has no conflict handling: the same rows again fail, and roll back.
        assert!(store::raw_insert_tasks(&db, &tasks).await.is_err(), "{}", db.backend);
        assert_eq!(store::count_tasks(&*db).await.unwrap(), 5000, "{}", db.backend);
    }
}

#[tokio::test]
async fn accounts_load_in_byte_order_with_exact_money() {
    for db in all_dbs().await {
        let accounts = vec![
            account("a-1", "B-1", "12345678901.2345"),
            account("B-2", "B-1", "0.1"),
            account("A-9", "B-1", "0"),
            account("A-10", "B-1", "99999999999.9999"),
        ];
        store::upsert_borrowers(&db.db, &[borrower("B-1")], at(1, 0)).await.unwrap();
        store::upsert_accounts(&db.db, &accounts, at(1, 0)).await.unwrap();
        let book = store::load_portfolio(&*db).await.unwrap();
        let loaded: Vec<(&str, String)> =
            book.accounts.iter().map(|account| (account.id.as_str(), account.amount_due.to_string())).collect();
        assert_eq!(
            loaded,
            [
                ("A-10", "99999999999.9999".to_string()),
                ("A-9", "0".to_string()),
                ("B-2", "0.1".to_string()),
                ("a-1", "12345678901.2345".to_string())
            ],
            "{}",
            db.backend
        );
    }
}

#[tokio::test]
async fn history_windows_and_last_conversations() {
    for db in all_dbs().await {
        with_accounts(&db, 2).await;
        let attempt = |account: &str, at: DateTime<Utc>, outcome: arrears::domain::Outcome| NewAttempt {
            account_id: account.to_string(),
            borrower_id: account.replace("A-", "B-"),
            task_id: None,
            channel: Channel::Human,
            address: None,
            at,
            outcome,
            note: Some("called".into()),
        };
        use arrears::domain::Outcome::*;
        let attempts = vec![
            attempt("A-00000", at(21, 9), NoAnswer),
            attempt("A-00000", at(2, 9), Rpc),
            attempt("A-00000", at(20, 9), Busy),
            attempt("A-00000", at(20, 9) + Duration::microseconds(1), Voicemail),
            attempt("A-00001", at(3, 9), Refused),
            attempt("A-00001", at(4, 9), Callback),
        ];
        assert_eq!(store::insert_attempts(&db.db, &attempts).await.unwrap(), 6);
        assert_eq!(store::insert_attempts(&db.db, &attempts).await.unwrap(), 0, "{}: idempotent", db.backend);
        let history =
            store::load_history(&*db, store::HistoryScope::Book, at(14, 0), Some(day(22)..=day(22))).await.unwrap();
        let recent: Vec<_> =
            history.attempts_of("B-00000").iter().map(|attempt| (attempt.at, attempt.outcome)).collect();
        assert_eq!(
            recent,
            [(at(20, 9), Busy), (at(20, 9) + Duration::microseconds(1), Voicemail), (at(21, 9), NoAnswer)],
            "{}",
            db.backend
        );
        assert!(history.attempts_of("B-00001").is_empty());
        // All time, conversations only.
        assert_eq!(history.last_conversation["A-00000"], at(2, 9), "{}", db.backend);
        assert_eq!(history.last_conversation["A-00001"], at(4, 9));
    }
}

#[tokio::test]
async fn strategy_versions_and_audit_rows() {
    for db in all_dbs().await {
        assert!(
            store::record_strategy_version(&*db, "consumer-cash", "strategies/a.toml", "h1", "name = 'x'")
                .await
                .unwrap()
        );
        assert!(
            !store::record_strategy_version(&*db, "consumer-cash", "strategies/a.toml", "h1", "name = 'x'")
                .await
                .unwrap()
        );
        assert!(
            store::record_strategy_version(&*db, "consumer-cash", std::path::Path::new("strategies/a.toml"), "h2", "y")
                .await
                .unwrap()
        );
        assert_eq!(StrategyVersions::find().count(&db.db).await.unwrap(), 2, "{}", db.backend);
        let id = store::record_audit_at(
            &*db,
            at(22, 0),
            "planner",
            "strategy.loaded",
            "strategy",
            "consumer-cash",
            serde_json::json!({"hash": "h2"}),
        )
        .await
        .unwrap();
        let row = AuditLog::find_by_id(id).one(&db.db).await.unwrap().unwrap();
        assert_eq!((row.at, row.detail.as_str()), (at(22, 0), r#"{"hash":"h2"}"#), "{}", db.backend);
    }
}

#[tokio::test]
async fn migrations_are_idempotent() {
    for db in all_dbs().await {
        store::migrate(&db).await.unwrap();
        assert_eq!(Tasks::find().count(&db.db).await.unwrap(), 0, "{}", db.backend);
    }
}

/// A store planned before the stage moved out of `accounts` keeps each account's stored stage:
/// the migration moves it into `account_stages` (an account in no stage gets no row), and its
/// `down` puts it back.
#[tokio::test]
async fn stored_stages_move_to_their_own_table_and_back() {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::ConnectionTrait;
    for db in all_dbs().await {
        let ids = with_accounts(&db, 3).await;
        Migrator::down(&db.db, Some(1)).await.unwrap();
        let backend = db.db.get_database_backend();
        for (id, stage) in [(&ids[0], "M1"), (&ids[2], "M2")] {
            let set = format!("UPDATE accounts SET stage = '{stage}' WHERE id = '{id}'");
            db.db.execute_raw(sea_orm::Statement::from_string(backend, set)).await.unwrap();
        }
        Migrator::up(&db.db, None).await.unwrap();
        let stages = stored_stages(&db).await;
        assert_eq!(stages, [(ids[0].clone(), "M1".into()), (ids[2].clone(), "M2".into())], "{}", db.backend);
        let page = store::load_book_page(&db.db, "", 10).await.unwrap();
        assert_eq!(page.stored_stages, [Some("M1".into()), None, Some("M2".into())], "{}", db.backend);

        Migrator::down(&db.db, Some(1)).await.unwrap();
        let back = db
            .db
            .query_all_raw(sea_orm::Statement::from_string(backend, "SELECT stage FROM accounts ORDER BY id"))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get_by_index::<Option<String>>(0).unwrap())
            .collect::<Vec<_>>();
        assert_eq!(back, [Some("M1".into()), None, Some("M2".into())], "{}", db.backend);
    }
}

#[test]
fn database_names_are_replaced_in_urls() {
    assert_eq!(with_database("postgres://postgres@127.0.0.1:5432/test", "x"), "postgres://postgres@127.0.0.1:5432/x");
    assert_eq!(with_database("postgres://u:p@h/test?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
    assert_eq!(with_database("postgres://h:5432", "x"), "postgres://h:5432/x");
}

/// A book planned on PostgreSQL right after its import has statistics for the planner: the
/// tables a plan reads that were never analyzed are analyzed first, once (SQLite: nothing).
#[tokio::test]
async fn tables_without_statistics_are_analyzed_before_a_plan_reads_them() {
    use sea_orm::ConnectionTrait;
    for db in all_dbs().await {
        with_accounts(&db, 50).await;
        let analyzed = store::analyze_stale(&db.db, store::PLAN_TABLES).await.unwrap();
        if db.backend == "sqlite" {
            assert!(analyzed.is_empty(), "SQLite keeps no planner statistics: {analyzed:?}");
            continue;
        }
        assert!(analyzed.contains(&"accounts".to_string()), "never analyzed, so analyzed now: {analyzed:?}");
        let row = db
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT COUNT(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'accounts'",
            ))
            .await
            .unwrap()
            .unwrap();
        let columns: i64 = row.try_get_by_index(0).unwrap();
        assert!(columns > 0, "the planner has statistics for accounts now");
        let again = store::analyze_stale(&db.db, store::PLAN_TABLES).await.unwrap();
        assert!(again.is_empty(), "just analyzed, nothing is stale: {again:?}");
    }
}

/// Without `ARREARS_DB_POOL`, a PostgreSQL pool is sized from the server it opens on: half the
/// server's free connection slots, between 4 and 32 (SQLite: nothing to size).
#[tokio::test]
async fn a_postgres_pool_is_sized_from_the_servers_free_connections() {
    let Some(db) = postgres_db().await else { return };
    assert!(std::env::var("ARREARS_DB_POOL").is_err(), "this test checks the pool sized from the server");
    let before = store::server_room(&db.url).await.unwrap();
    let expected = store::pool_for_server(before);
    assert!(before.max_connections > 0 && before.in_use >= 1, "the server's room as read: {before:?}");
    let pool = store::connect(&db.url).await.unwrap();
    let size = pool.get_postgres_connection_pool().options().get_max_connections();
    let after = store::server_room(&db.url).await.unwrap();
    // Other tests open and close connections meanwhile: the pool follows the room as it was just
    // before or just after it opened.
    let candidates = [expected, store::pool_for_server(after)];
    assert!(candidates.contains(&size), "pool of {size} on a server with {before:?} / {after:?}");
    assert!((store::POOL_LEAST..=store::POOL_MOST).contains(&size));
    pool.close().await.ok();
}

/// The dashboard's balances by product and stage are summed by the database, exactly: on
/// SQLite, where money is a REAL, each amount is rounded to ten-thousandths before it is summed
/// (8.29 is 82899.99999999999 ten-thousandths as a float, 82899 if truncated).
#[tokio::test]
async fn balances_by_stage_are_summed_exactly_by_the_database() {
    for test_db in all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let header = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,due_date,\
                      tags,flags,consent_robot";
        let lines: Vec<String> = [("A1", "0.1"), ("A2", "0.2"), ("A3", "1234.5678"), ("A4", "8.29")]
            .iter()
            .map(|(id, balance)| {
                format!("{id},B{id},N,+12025550100,,America/New_York,cash,USD,1,{balance},2026-11-01,,,true")
            })
            .collect();
        common::import_lines(db, arrears::import::ImportKind::Accounts, header, &lines, at(2, 0)).await;
        let balances = store::dashboard::stage_balances(db).await.unwrap();
        assert_eq!(balances.len(), 1, "{b}: {balances:?}");
        assert_eq!(balances[0].accounts, 4, "{b}");
        assert_eq!(balances[0].balance, Decimal::from_str("1243.1578").unwrap(), "{b}");
    }
}

#[tokio::test]
async fn the_expiry_sweep_closes_every_closed_window_once_in_batches_and_nothing_else() {
    use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter};
    let now = at(22, 12);
    // (state, window opens and closes in hours from now, expired by the sweep). The still-open
    // planned tasks sit between closed ones in the release index's order (`not_before`, id), and
    // a window that closes at `now` is closed.
    let cases: &[(&str, i64, i64, bool)] = &[
        ("planned", -6, -1, true),
        ("planned", -6, 1, false),
        ("planned", -6, 0, true),
        ("planned", -5, -2, true),
        ("planned", -5, 2, false),
        ("planned", -6, -3, true),
        ("planned", -4, -3, true),
        ("planned", 1, 3, false),
        ("ready", -6, -1, true),
        ("ready", -3, 1, false),
        ("dispatched", -2, -1, true),
        ("dispatched", -2, 0, true),
        ("leased", -6, -1, false),
        ("done", -6, -1, false),
    ];
    for db in all_dbs().await {
        let b = db.backend;
        let tasks: Vec<Task> = cases
            .iter()
            .enumerate()
            .map(|(i, (_, opens, closes, _))| Task {
                not_before: (now + Duration::hours(*opens)).fixed_offset(),
                not_after: (now + Duration::hours(*closes)).fixed_offset(),
                ..task(&format!("A-{i:05}"), day(22), 1, "M1")
            })
            .collect();
        store::raw_insert_tasks(&db, &tasks).await.unwrap();
        for (i, (state, ..)) in cases.iter().enumerate() {
            db.execute_unprepared(&format!("UPDATE tasks SET state = '{state}' WHERE account_id = 'A-{i:05}'"))
                .await
                .unwrap();
        }
        // Batches of two: more batches than closed tasks of either kind need.
        let mut sweep = store::tasks::ExpirySweep::default();
        let mut expired = Vec::new();
        let mut batches = 0;
        while !sweep.finished() {
            expired.extend(store::tasks::expire_closed_windows(&*db, "engine", now, &mut sweep, 2).await.unwrap());
            batches += 1;
            assert!(batches <= cases.len(), "{b}: the sweep ends");
        }
        let stored: BTreeMap<String, (i64, String, Option<String>)> = Tasks::find()
            .all(&*db)
            .await
            .unwrap()
            .into_iter()
            .map(|task| (task.account_id, (task.id, task.state, task.state_reason)))
            .collect();
        let mut expected = Vec::new();
        for (i, (state, _, _, expires)) in cases.iter().enumerate() {
            let (id, now_state, reason) = &stored[&format!("A-{i:05}")];
            if *expires {
                expected.push(*id);
                assert_eq!((now_state.as_str(), reason.as_deref()), ("expired", Some("window_closed")), "{b}: {i}");
            } else {
                assert_eq!((now_state.as_str(), reason.as_deref()), (*state, None), "{b}: {i} is left as it was");
            }
        }
        expired.sort_unstable();
        assert_eq!(expired, expected, "{b}: each closed task once");
        let audits =
            AuditLog::find().filter(entity::audit_log::Column::Action.eq("task.expired")).count(&*db).await.unwrap();
        assert_eq!(audits, expected.len() as u64, "{b}: one audit row each");
        // A second sweep finds nothing.
        let mut again = store::tasks::ExpirySweep::default();
        while !again.finished() {
            let ids = store::tasks::expire_closed_windows(&*db, "engine", now, &mut again, 2).await.unwrap();
            assert!(ids.is_empty(), "{b}");
        }
    }
}
