//! Plan runs as a manager and an operator meet them: a run saves page by page behind a run
//! marker, so a run that dies keeps what it saved and the next plan of the day completes it
//! (no task twice, the same tasks as one uninterrupted run); and `plan --dry-run` on a day
//! already planned shows what the strategies in force would decide today, each line marked
//! `already_planned`.

mod common;

use arrears::import::ImportKind;
use arrears::ops::{self, PlanFormat};
use arrears::policy::PolicySettings;
use arrears::strategy::{LoadOptions, StrategySet};
use chrono::{DateTime, Duration, Utc};
use entity::prelude::{PlanRuns, StageHistory, Tasks};
use sea_orm::{EntityTrait, PaginatorTrait, QueryOrder};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn load_strategies(dir: &Path) -> StrategySet {
    let settings = PolicySettings::default();
    let options = LoadOptions {
        templates_dir: &root().join("templates"),
        default_policy: "us-reg-f",
        settings: &settings,
        capacities: &Default::default(),
    };
    arrears::strategy::load_dir(dir, &options).unwrap_or_else(|errors| panic!("{errors}"))
}

/// A copy of the shipped strategies in a temporary directory.
fn copy_strategies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("strategies")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// The manager's edit: the "early robot" rule calls once a day instead of three times.
const EARLY_ROBOT: &str =
    "attempts_per_day = 3\nmin_gap = \"2h\"\nescalate = { after_failed_attempts = 6, queue = \"early\" }";
const EARLY_ROBOT_EDITED: &str =
    "attempts_per_day = 1\nmin_gap = \"2h\"\nescalate = { after_failed_attempts = 6, queue = \"early\" }";

fn edit_early_robot(dir: &Path) {
    let file = dir.join("consumer-cash.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches(EARLY_ROBOT).count(), 1, "the edit must hit the early robot rule only");
    std::fs::write(&file, text.replace(EARLY_ROBOT, EARLY_ROBOT_EDITED)).unwrap();
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

/// The plan instant of the books of [`planned_books`].
const NOW: &str = "2026-11-22T01:30:00Z";

/// The demo book of `accounts` accounts (seed `seed`) loaded into each store, with what one
/// uninterrupted run decides for it as of [`NOW`] (a dry run shows exactly what a run saves).
async fn planned_books(
    accounts: usize,
    seed: u64,
    strategies: &StrategySet,
) -> Vec<(common::TestDb, arrears::plan::Plan)> {
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), accounts, seed, now).unwrap();
    let mut books = Vec::new();
    for test_db in common::all_dbs().await {
        load_book(&test_db.db, dir.path()).await;
        let (_, whole) = ops::plan_collect(&test_db.db, strategies, now, true).await.unwrap();
        books.push((test_db, whole));
    }
    books
}

/// What identifies a saved task and what the planner decided for it.
type TaskKey = (String, chrono::NaiveDate, i32, String, String, DateTime<Utc>, DateTime<Utc>, i32);

async fn stored_tasks(db: &sea_orm::DatabaseConnection) -> Vec<TaskKey> {
    let mut tasks: Vec<TaskKey> = Tasks::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.account_id, t.local_date, t.attempt, t.rule, t.channel, t.not_before, t.not_after, t.calls_allowed))
        .collect();
    tasks.sort();
    tasks
}

fn planned_tasks(plan: &arrears::plan::Plan) -> Vec<TaskKey> {
    let mut tasks: Vec<TaskKey> = plan
        .tasks
        .iter()
        .map(|t| {
            (
                t.account_id.to_string(),
                t.local_date,
                t.attempt as i32,
                t.rule.to_string(),
                t.channel.to_string(),
                t.not_before.to_utc(),
                t.not_after.to_utc(),
                t.calls_allowed as i32,
            )
        })
        .collect();
    tasks.sort();
    tasks
}

#[tokio::test]
async fn a_plan_that_dies_after_some_pages_keeps_them_and_the_next_plan_completes_the_same_run() {
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let strategies = load_strategies(&root().join("strategies"));
    for (test_db, whole) in planned_books(1_000, 3, &strategies).await {
        let (db, backend) = (&test_db.db, test_db.backend);
        // What one uninterrupted run decides (a dry run shows exactly what a run saves).
        let mut accounts: Vec<String> = Vec::new();
        for task in &whole.tasks {
            accounts.push(task.account_id.to_string());
        }
        accounts.extend(whole.skips.iter().map(|skip| skip.account_id.clone()));
        accounts.sort();
        accounts.dedup();
        assert_eq!(accounts.len(), 1_000);

        // The run dies after its third page of 97 accounts (as a kill would between pages).
        let mut pages = 0;
        let died = ops::plan_pages_of(db, &strategies, now, false, 97, |_| {
            pages += 1;
            if pages == 3 { Err(anyhow::anyhow!("killed")) } else { Ok(()) }
        })
        .await;
        assert!(died.is_err(), "{backend}");
        let runs = PlanRuns::find().all(db).await.unwrap();
        assert_eq!(runs.len(), 1, "{backend}");
        let run = &runs[0];
        assert_eq!(run.finished_at, None, "{backend}: the run is marked unfinished");
        assert_eq!(run.resume_after.as_deref(), Some(accounts[3 * 97 - 1].as_str()), "{backend}");
        assert_eq!(run.accounts, 3 * 97, "{backend}: the running counts cover the saved pages");
        assert!(!arrears::store::plan_finished_since(db, now).await.unwrap(), "{backend}: it does not count as a plan");
        // Its saved pages are visible: exactly the first 291 accounts' tasks of the whole plan.
        let saved_accounts: BTreeSet<&str> = accounts[..3 * 97].iter().map(String::as_str).collect();
        let expected_saved: Vec<TaskKey> =
            planned_tasks(&whole).into_iter().filter(|task| saved_accounts.contains(task.0.as_str())).collect();
        assert!(!expected_saved.is_empty());
        assert_eq!(stored_tasks(db).await, expected_saved, "{backend}");
        assert_eq!(run.tasks as usize, expected_saved.len(), "{backend}");

        // The next plan of the day continues the same run after its last saved account.
        let outcome = ops::plan_pages_of(db, &strategies, now, false, 97, |_| Ok(())).await.unwrap();
        assert_eq!(outcome.run_id, Some(run.id), "{backend}");
        assert_eq!(outcome.resumed_after.as_deref(), Some(accounts[3 * 97 - 1].as_str()), "{backend}");
        assert_eq!(outcome.totals.accounts, 1_000 - 3 * 97, "{backend}: only the rest was planned");
        let runs = PlanRuns::find().all(db).await.unwrap();
        assert_eq!(runs.len(), 1, "{backend}: no second run");
        let run = &runs[0];
        assert!(run.finished_at.is_some(), "{backend}");
        assert!(arrears::store::plan_finished_since(db, now).await.unwrap(), "{backend}");
        // The same tasks as one uninterrupted run, none twice, and the run's counts are whole.
        assert_eq!(stored_tasks(db).await, planned_tasks(&whole), "{backend}");
        assert_eq!(run.accounts, 1_000, "{backend}");
        assert_eq!(run.tasks as usize, whole.tasks.len(), "{backend}");
        assert_eq!(run.skips as usize, whole.skips.len(), "{backend}");
        let mut skip_counts: BTreeMap<String, u64> = BTreeMap::new();
        for skip in &whole.skips {
            *skip_counts.entry(skip.reason.to_string()).or_default() += 1;
        }
        assert_eq!(serde_json::from_str::<BTreeMap<String, u64>>(&run.skip_counts).unwrap(), skip_counts);
        // One first stage per staged account: the saved pages' stage changes were not repeated.
        let staged = whole.skips.iter().filter(|skip| skip.stage.is_some()).count()
            + whole.tasks.iter().filter(|task| task.attempt == 1).count();
        assert_eq!(StageHistory::find().count(db).await.unwrap(), staged as u64, "{backend}");

        // Planning the day again adds nothing.
        let again = ops::plan_and_persist(db, &strategies, now + Duration::hours(1), false).await.unwrap();
        assert_eq!(again.totals.tasks, 0, "{backend}");
        assert_eq!(stored_tasks(db).await, planned_tasks(&whole), "{backend}");
    }
}

/// An operator who backs the database up by copying its file after the night's plan gets the
/// whole plan, and no WAL is left beside it: the plan's writer never checkpoints its WAL in its
/// commits (checkpoints run beside it), and a finished run empties the WAL before `plan` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_plan_is_in_the_sqlite_file_itself() {
    let now: DateTime<Utc> = "2026-11-22T01:30:00Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), 1_000, 3, now).unwrap();
    let strategies = load_strategies(&root().join("strategies"));
    let test_db = common::sqlite_db().await;
    let db = &test_db.db;
    load_book(db, dir.path()).await;
    // The book is in the file before the plan; what follows is the plan's own writing.
    use sea_orm::ConnectionTrait;
    db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)").await.unwrap();
    // Pages of 50 accounts: 20 parts, several background checkpoints and the last one.
    let outcome = ops::plan_pages_of(db, &strategies, now, false, 50, |_| Ok(())).await.unwrap();
    assert!(outcome.totals.tasks > 0);
    let saved = arrears::store::count_tasks(db).await.unwrap();
    assert_eq!(saved, outcome.totals.tasks);

    // The file alone, copied while the pool still holds it open (no `-wal` beside the copy).
    let file = test_db.url.trim_start_matches("sqlite://").split('?').next().unwrap().to_string();
    let wal = std::fs::metadata(format!("{file}-wal")).map(|meta| meta.len()).unwrap_or(0);
    assert_eq!(wal, 0, "the finished run emptied the WAL");
    let copy = dir.path().join("copy.db");
    std::fs::copy(&file, &copy).unwrap();
    let copied = arrears::store::connect(&format!("sqlite://{}?mode=rwc", copy.display())).await.unwrap();
    assert_eq!(arrears::store::count_tasks(&copied).await.unwrap(), saved, "the file holds every saved task");
    let run = PlanRuns::find().one(&copied).await.unwrap().expect("the run is in the file");
    assert!(run.finished_at.is_some(), "the file holds the finished run");
}

#[tokio::test]
async fn a_plan_with_other_strategies_does_not_continue_an_interrupted_run_and_plans_no_account_twice() {
    let now: DateTime<Utc> = "2026-11-22T01:30:00Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), 600, 5, now).unwrap();
    let shipped = load_strategies(&root().join("strategies"));
    let edited_dir = copy_strategies();
    edit_early_robot(edited_dir.path());
    let edited = load_strategies(edited_dir.path());
    for test_db in common::all_dbs().await {
        let (db, backend) = (&test_db.db, test_db.backend);
        load_book(db, dir.path()).await;
        let mut pages = 0;
        let died = ops::plan_pages_of(db, &shipped, now, false, 100, |_| {
            pages += 1;
            if pages == 2 { Err(anyhow::anyhow!("killed")) } else { Ok(()) }
        })
        .await;
        assert!(died.is_err());
        let saved = stored_tasks(db).await;
        let saved_accounts: BTreeSet<String> = saved.iter().map(|task| task.0.clone()).collect();

        // The manager reloads edited strategies: a new run, which skips what the first saved.
        let outcome = ops::plan_pages_of(db, &edited, now, false, 100, |_| Ok(())).await.unwrap();
        assert_eq!(outcome.resumed_after, None, "{backend}");
        let runs = PlanRuns::find().order_by_asc(entity::plan_runs::Column::Id).all(db).await.unwrap();
        assert_eq!(runs.len(), 2, "{backend}");
        assert_eq!(runs[0].finished_at, None, "{backend}: the interrupted run stays marked unfinished");
        assert!(runs[1].finished_at.is_some(), "{backend}");
        assert_eq!(
            outcome.totals.skip_counts.get("already_planned").copied().unwrap_or(0) as usize,
            saved_accounts.len(),
            "{backend}"
        );
        let stored = stored_tasks(db).await;
        // The first run's tasks stand as they were; no account has tasks of both runs.
        for task in &saved {
            assert!(stored.contains(task), "{backend}: {task:?} was lost");
        }
        let all = Tasks::find().all(db).await.unwrap();
        let mut runs_of_account: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
        for task in &all {
            runs_of_account.entry(&*task.account_id).or_default().insert(task.plan_run_id);
        }
        assert!(runs_of_account.values().all(|runs| runs.len() == 1), "{backend}: an account planned twice");
        assert!(
            all.iter().any(|task| task.plan_run_id == runs[1].id && task.rule == "early robot")
                && all
                    .iter()
                    .filter(|task| task.plan_run_id == runs[1].id && task.rule == "early robot")
                    .all(|task| task.attempt == 1),
            "{backend}: the second run planned with the edited strategies"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_another_run_saves_while_a_run_plans_keep_that_runs_tasks_only() {
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let strategies = load_strategies(&root().join("strategies"));
    for (test_db, whole) in planned_books(500, 9, &strategies).await {
        let (db, backend) = (&test_db.db, test_db.backend);
        let mut accounts: Vec<&str> = whole.tasks.iter().map(|task| &*task.account_id).collect();
        accounts.extend(whole.skips.iter().map(|skip| skip.account_id.as_str()));
        accounts.sort();
        accounts.dedup();
        // Five accounts of the run's fourth page (of 100) that the plan gives tasks.
        let racing: Vec<&str> = accounts[300..400]
            .iter()
            .copied()
            .filter(|account| whole.tasks.iter().any(|task| &*task.account_id == *account))
            .take(5)
            .collect();
        let theirs: Vec<arrears::plan::Task> = whole
            .tasks
            .iter()
            .filter(|task| racing.contains(&&*task.account_id) && task.attempt == 1)
            .map(|task| arrears::plan::Task { rule: "another run".into(), ..task.clone() })
            .collect();
        assert_eq!(theirs.len(), 5);

        // Another plan saves those accounts while this run plans (as it shows its first page):
        // the run sees them in their page's history (`already_planned`) or, when it read that
        // history before, when it writes them (`planned_meanwhile`); either way it keeps the
        // other run's tasks and saves none of its own for them.
        let mut pages = 0;
        let outcome = ops::plan_pages_of(db, &strategies, now, false, 100, |_| {
            pages += 1;
            if pages == 1 {
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(arrears::store::raw_insert_tasks(db, &theirs))
                })?;
            }
            Ok(())
        })
        .await
        .unwrap();
        assert!(outcome.totals.planned_meanwhile <= 5, "{backend}");
        let stored = Tasks::find().all(db).await.unwrap();
        for account in &racing {
            let tasks: Vec<&entity::tasks::Model> = stored.iter().filter(|task| task.account_id == *account).collect();
            assert_eq!(tasks.len(), 1, "{backend}: {account} keeps the other run's task only");
            assert_eq!(tasks[0].rule, "another run", "{backend}");
        }
        let run = PlanRuns::find().one(db).await.unwrap().unwrap();
        let others = theirs.len();
        assert_eq!(run.tasks as usize + others, stored.len(), "{backend}: the run counts what it saved");
        let skip_counts: BTreeMap<String, u64> = serde_json::from_str(&run.skip_counts).unwrap();
        assert_eq!(skip_counts.get("already_planned"), Some(&5), "{backend}");
        assert_eq!(outcome.totals.skip_counts.get("already_planned"), Some(&5), "{backend}");
    }
}

#[tokio::test]
async fn a_part_whose_account_days_another_run_saved_after_its_history_was_read_saves_none_of_them() {
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let strategies = load_strategies(&root().join("strategies"));
    for (test_db, whole) in planned_books(200, 9, &strategies).await {
        let (db, backend) = (&test_db.db, test_db.backend);
        // This run's decisions, made before the other run saves.
        let mut racing: Vec<&str> = whole.tasks.iter().map(|task| &*task.account_id).collect();
        racing.dedup();
        racing.truncate(3);
        let theirs: Vec<arrears::plan::Task> = whole
            .tasks
            .iter()
            .filter(|task| racing.contains(&&*task.account_id) && task.attempt == 1)
            .map(|task| arrears::plan::Task { rule: "another run".into(), ..task.clone() })
            .collect();
        arrears::store::raw_insert_tasks(db, &theirs).await.unwrap();

        let run = arrears::store::NewPlanRun { as_of: now, started_at: now, ..Default::default() };
        let mut writer = arrears::store::begin_plan_run(db, &run, None).await.unwrap();
        let counts = arrears::store::RunCounts { accounts: 200, ..Default::default() };
        let part = arrears::store::RunPart {
            tasks: &whole.tasks,
            changes: &[],
            entries: &[],
            counts: &counts,
            resume_after: "~",
        };
        let saved = writer.save_part(part, Some(now)).await.unwrap();
        let mut meanwhile = saved.planned_meanwhile.clone();
        meanwhile.dedup();
        assert_eq!(meanwhile, racing, "{backend}");
        let ours = whole.tasks.iter().filter(|task| !racing.contains(&&*task.account_id)).count();
        assert_eq!(saved.inserted as usize, ours, "{backend}");
        let stored = Tasks::find().all(db).await.unwrap();
        assert_eq!(stored.len(), ours + theirs.len(), "{backend}");
        for account in &racing {
            assert!(
                stored.iter().filter(|task| task.account_id == *account).all(|task| task.rule == "another run"),
                "{backend}: {account} keeps the other run's tasks only"
            );
        }
        let run = PlanRuns::find().one(db).await.unwrap().unwrap();
        let skip_counts: BTreeMap<String, u64> = serde_json::from_str(&run.skip_counts).unwrap();
        assert_eq!(skip_counts.get("already_planned"), Some(&(racing.len() as u64)), "{backend}");
    }
}

/// Another run's tasks for three of the part's accounts, inserted in `txn` (not committed).
async fn insert_as_another_run(txn: &sea_orm::DatabaseTransaction, tasks: &[arrears::plan::Task]) {
    use sea_orm::ActiveValue::Set;
    let rows = tasks.iter().map(|task| entity::tasks::ActiveModel {
        plan_run_id: Set(0),
        account_id: Set(task.account_id.to_string()),
        borrower_id: Set(task.borrower_id.to_string()),
        local_date: Set(task.local_date),
        dpd: Set(task.dpd),
        stage: Set(task.stage.to_string()),
        strategy: Set(task.strategy.to_string()),
        rule: Set("another run".into()),
        channel: Set(task.channel.to_string()),
        attempt: Set(task.attempt as i32),
        calls_allowed: Set(task.calls_allowed as i32),
        not_before: Set(task.not_before.with_timezone(&Utc)),
        not_after: Set(task.not_after.with_timezone(&Utc)),
        priority: Set(task.priority),
        created_at: Set(task.not_before.with_timezone(&Utc)),
        ..Default::default()
    });
    Tasks::insert_many(rows).exec(txn).await.unwrap();
}

/// Two runs write the same accounts at the same instant: the other run's uncommitted rows are
/// invisible to this part's check, so its bulk write (PostgreSQL's `COPY`) runs into them,
/// waits for that run to commit and fails on the key; the part then checks again and saves
/// the rest. On SQLite the other run holds the write lock, so the part checks after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_racing_another_runs_uncommitted_tasks_keeps_that_runs_and_saves_the_rest() {
    use sea_orm::ConnectionTrait;
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let strategies = load_strategies(&root().join("strategies"));
    for (test_db, whole) in planned_books(200, 9, &strategies).await {
        let (db, backend) = (&test_db.db, test_db.backend);
        let mut racing: Vec<String> = whole.tasks.iter().map(|task| task.account_id.to_string()).collect();
        racing.dedup();
        racing = racing.into_iter().skip(10).take(3).collect();
        let theirs: Vec<arrears::plan::Task> =
            whole.tasks.iter().filter(|task| racing.contains(&task.account_id.to_string())).cloned().collect();

        let run = arrears::store::NewPlanRun { as_of: now, started_at: now, ..Default::default() };
        let mut writer = arrears::store::begin_plan_run(db, &run, None).await.unwrap();
        let other = arrears::store::begin_write(db).await.unwrap();
        insert_as_another_run(&other, &theirs).await;
        let tasks = whole.tasks.clone();
        let saving = tokio::spawn(async move {
            let counts = arrears::store::RunCounts { accounts: 200, ..Default::default() };
            let part = arrears::store::RunPart {
                tasks: &tasks,
                changes: &[],
                entries: &[],
                counts: &counts,
                resume_after: "~",
            };
            writer.save_part(part, Some(now)).await
        });
        if backend == "postgres" {
            // Commit only once the part's write waits for the other run's rows.
            let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                           AND wait_event_type = 'Lock' AND query LIKE 'COPY tasks%'";
            let mut polls = 0;
            loop {
                let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), waiting));
                let count: i64 = row.await.unwrap().unwrap().try_get_by_index(0).unwrap();
                if count == 1 {
                    break;
                }
                polls += 1;
                assert!(polls < 2_000, "{backend}: the part's COPY never waited for the other run");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        other.commit().await.unwrap();
        let saved = saving.await.unwrap().unwrap();

        let mut meanwhile = saved.planned_meanwhile.clone();
        meanwhile.dedup();
        assert_eq!(meanwhile, racing, "{backend}");
        let ours = whole.tasks.len() - theirs.len();
        assert_eq!(saved.inserted as usize, ours, "{backend}");
        let stored = Tasks::find().all(db).await.unwrap();
        assert_eq!(stored.len(), whole.tasks.len(), "{backend}: every account-day once");
        for task in &stored {
            let raced = racing.contains(&task.account_id);
            assert_eq!(task.rule == "another run", raced, "{backend}: {} {}", task.account_id, task.rule);
        }
        let run = PlanRuns::find().one(db).await.unwrap().unwrap();
        assert_eq!(run.tasks as usize, ours, "{backend}: the run counts what it saved");
        assert!(run.finished_at.is_some(), "{backend}");
    }
}

#[tokio::test]
async fn a_dry_run_on_a_planned_day_shows_todays_decisions_marked_already_planned() {
    for test_db in common::all_dbs().await {
        let backend = test_db.backend;
        let now: DateTime<Utc> = common::app::START.parse().unwrap();
        let book = tempfile::tempdir().unwrap();
        arrears::demo::write_portfolio(book.path(), 400, 7, now).unwrap();
        load_book(&test_db.db, book.path()).await;
        let strategies_dir = copy_strategies();
        let settings = common::app::settings(&test_db, strategies_dir.path());
        let run = |dry_run: bool, format: PlanFormat, at: DateTime<Utc>| {
            let settings = settings.clone();
            async move {
                let mut out = Vec::new();
                ops::plan_command(&settings, at, dry_run, None, format, &mut out).await.unwrap();
                String::from_utf8(out).unwrap()
            }
        };
        run(false, PlanFormat::Text, now).await;
        let saved = stored_tasks(&test_db.db).await;
        let planned_accounts: BTreeSet<String> = saved.iter().map(|task| task.0.clone()).collect();
        assert!(
            saved.iter().any(|task| task.3 == "early robot" && task.2 > 1),
            "{backend}: robots call more than once"
        );

        // An hour later, the same local day: the dry run decides again instead of skipping.
        let later = now + Duration::hours(1);
        let lines = |text: &str| -> Vec<serde_json::Value> {
            text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
        };
        let check_marks = |lines: &[serde_json::Value]| {
            for line in lines {
                let account = line["account_id"].as_str().unwrap();
                assert_ne!(line["reason"], "already_planned", "{backend}: {line}");
                let marked = line.get("already_planned") == Some(&serde_json::Value::Bool(true));
                assert_eq!(marked, planned_accounts.contains(account), "{backend}: {line}");
            }
        };
        let preview = lines(&run(true, PlanFormat::Jsonl, later).await);
        check_marks(&preview);
        let marked_tasks: Vec<&serde_json::Value> =
            preview.iter().filter(|line| line["kind"] == "task" && line["already_planned"] == true).collect();
        assert!(marked_tasks.len() * 2 >= saved.len(), "{backend}: the planned accounts' tasks are shown");
        let summary = run(true, PlanFormat::Text, later).await;
        assert!(
            summary.contains(&format!("{} accounts already have their day planned", planned_accounts.len())),
            "{backend}:\n{summary}"
        );

        // The manager edits a rule: the preview shows today's effect of the edit.
        edit_early_robot(strategies_dir.path());
        let edited = lines(&run(true, PlanFormat::Jsonl, later).await);
        check_marks(&edited);
        let early: Vec<&serde_json::Value> =
            edited.iter().filter(|line| line["kind"] == "task" && line["rule"] == "early robot").collect();
        assert!(!early.is_empty(), "{backend}");
        assert!(early.iter().all(|line| line["attempt"] == 1), "{backend}: the edited rule calls once");
        assert!(early.iter().any(|line| line["already_planned"] == true), "{backend}");

        // A saving plan still skips the planned days.
        run(false, PlanFormat::Text, later).await;
        assert_eq!(stored_tasks(&test_db.db).await, saved, "{backend}");
    }
}

/// The shards of a run as stored: `(shard, state, holder)`.
async fn shards_of(db: &sea_orm::DatabaseConnection, run_id: i64) -> Vec<(i32, String, Option<String>)> {
    use sea_orm::{ConnectionTrait, Statement};
    let sql = format!("SELECT shard, state, holder FROM plan_run_shards WHERE run_id = {run_id} ORDER BY shard");
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter()
        .map(|row| {
            (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap(), row.try_get_by_index(2).unwrap())
        })
        .collect()
}

/// The options of a sharded run: three planners, shards of 150 accounts, pages of 97 (so pages
/// straddle shard boundaries unless cut by them).
fn sharded_options() -> ops::PlanOptions {
    ops::PlanOptions { workers: 3, shard_accounts: 150, page_accounts: 97, ..ops::PlanOptions::new(false) }
}

/// What a run's row says it decided.
fn run_counts(run: &entity::plan_runs::Model) -> (i64, i64, i64, BTreeMap<String, u64>) {
    (run.accounts, run.tasks, run.skips, serde_json::from_str(&run.skip_counts).unwrap())
}

/// What one planner decides for the whole book: the run's counts and its stage changes.
fn whole_counts(whole: &arrears::plan::Plan) -> (i64, i64, i64, BTreeMap<String, u64>) {
    let mut skip_counts: BTreeMap<String, u64> = BTreeMap::new();
    for skip in &whole.skips {
        *skip_counts.entry(skip.reason.to_string()).or_default() += 1;
    }
    let accounts: BTreeSet<&str> = whole
        .tasks
        .iter()
        .map(|task| &*task.account_id)
        .chain(whole.skips.iter().map(|s| s.account_id.as_str()))
        .collect();
    (accounts.len() as i64, whole.tasks.len() as i64, whole.skips.len() as i64, skip_counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planners_sharing_a_run_save_exactly_what_one_planner_decides() {
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let strategies = load_strategies(&root().join("strategies"));
    for (test_db, whole) in planned_books(1_000, 3, &strategies).await {
        let (db, backend) = (&test_db.db, test_db.backend);

        let mut pages = 0;
        let outcome = ops::plan_pages_with(db, &strategies, now, &sharded_options(), |_| {
            pages += 1;
            Ok(())
        })
        .await
        .unwrap();
        // 1,000 accounts in shards of 150: six full shards and the rest.
        assert_eq!((outcome.shards, outcome.shards_planned), (7, 7), "{backend}");
        assert_eq!(outcome.totals.accounts, 1_000, "{backend}");
        assert!(pages >= 7 * 2, "{backend}: each shard is planned page by page ({pages} pages)");
        assert_eq!(
            stored_tasks(db).await,
            planned_tasks(&whole),
            "{backend}: the same tasks as one planner, none twice"
        );
        let runs = PlanRuns::find().all(db).await.unwrap();
        assert_eq!(runs.len(), 1, "{backend}");
        assert!(runs[0].finished_at.is_some(), "{backend}: the run finished with its last shard");
        assert_eq!(runs[0].shards, 7, "{backend}");
        assert_eq!(run_counts(&runs[0]), whole_counts(&whole), "{backend}: the run's counts are its shards' sum");
        let shards = shards_of(db, runs[0].id).await;
        assert!(shards.iter().all(|(_, state, _)| state == "done"), "{backend}: {shards:?}");
        let holders: BTreeSet<&Option<String>> = shards.iter().map(|(_, _, holder)| holder).collect();
        assert!(holders.len() > 1, "{backend}: the three planners shared the shards out: {shards:?}");
        let staged = whole.skips.iter().filter(|skip| skip.stage.is_some()).count()
            + whole.tasks.iter().filter(|task| task.attempt == 1).count();
        assert_eq!(StageHistory::find().count(db).await.unwrap(), staged as u64, "{backend}: one stage change each");
        assert!(arrears::store::plan_finished_since(db, now).await.unwrap(), "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shards_of_a_planner_that_died_are_taken_over_and_the_run_completes_once() {
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let strategies = load_strategies(&root().join("strategies"));
    for (test_db, whole) in planned_books(1_000, 3, &strategies).await {
        let (db, backend) = (&test_db.db, test_db.backend);

        // An instance's planners die after four pages: their shards of four pages each stay
        // claimed, partly saved.
        let options = ops::PlanOptions { shard_accounts: 300, ..sharded_options() };
        let mut pages = 0;
        let died = ops::plan_pages_with(db, &strategies, now, &options, |_| {
            pages += 1;
            if pages == 4 { Err(anyhow::anyhow!("killed")) } else { Ok(()) }
        })
        .await;
        assert!(died.is_err(), "{backend}");
        let run = PlanRuns::find().one(db).await.unwrap().unwrap();
        assert_eq!(run.finished_at, None, "{backend}");
        let shards = shards_of(db, run.id).await;
        assert!(shards.iter().any(|(_, state, _)| state == "claimed"), "{backend}: {shards:?}");
        assert!(!stored_tasks(db).await.is_empty(), "{backend}: the saved pages stay");

        // While their heartbeats are fresh, nobody else may take those shards.
        let fresh = arrears::store::claim_shard(db, run.id, "intruder", Utc::now()).await.unwrap();
        if let Some(claim) = &fresh {
            let (_, state, _) = &shards[claim.shard as usize];
            assert_eq!(state, "open", "{backend}: only an open shard may be claimed while its planner lives");
            release_shard(db, run.id, claim.shard).await;
        }

        // Their heartbeats stop: a later plan of the day joins the run and takes them over.
        let stale = Utc::now() - Duration::minutes(10);
        set_heartbeats(db, run.id, stale).await;
        let outcome = ops::plan_pages_with(
            db,
            &strategies,
            now + Duration::minutes(5),
            &ops::PlanOptions::new(false),
            |_| Ok(()),
        )
        .await
        .unwrap();
        assert_eq!(outcome.run_id, Some(run.id), "{backend}: the day's sharded run is joined, not started again");
        assert_eq!(outcome.shards, 4, "{backend}");
        assert!(outcome.totals.accounts < 1_000, "{backend}: only what was not saved was planned");
        assert_eq!(PlanRuns::find().count(db).await.unwrap(), 1, "{backend}");
        let run = PlanRuns::find().one(db).await.unwrap().unwrap();
        assert!(run.finished_at.is_some(), "{backend}");
        assert_eq!(stored_tasks(db).await, planned_tasks(&whole), "{backend}: as one planner would, none twice");
        assert_eq!(run_counts(&run), whole_counts(&whole), "{backend}");
    }
}

#[tokio::test]
async fn a_planner_whose_shard_was_taken_over_can_save_no_more_of_it() {
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let strategies = load_strategies(&root().join("strategies"));
    for (test_db, whole) in planned_books(300, 3, &strategies).await {
        let (db, backend) = (&test_db.db, test_db.backend);
        let run = arrears::store::NewPlanRun { as_of: now, started_at: now, ..Default::default() };
        let (run_id, shards) = arrears::store::begin_sharded_run(db, &run, 100, None).await.unwrap();
        assert_eq!(shards, 3, "{backend}: 300 accounts in shards of 100");
        let long_ago = Utc::now() - Duration::hours(1);
        let first = arrears::store::claim_shard(db, run_id, "slow", long_ago).await.unwrap().unwrap();
        let taken = arrears::store::claim_shard(db, run_id, "quick", Utc::now()).await.unwrap().unwrap();
        assert_eq!(taken.shard, first.shard, "{backend}: the stale claim is taken over first");

        let mut slow = arrears::store::PlanRunWriter::for_shard(db, &first, "slow", now, now);
        let tasks: Vec<_> = whole
            .tasks
            .iter()
            .filter(|task| first.through.as_deref().is_none_or(|t| *task.account_id <= *t))
            .cloned()
            .collect();
        let counts = arrears::store::RunCounts { accounts: 1, tasks: tasks.len() as u64, ..Default::default() };
        let last = tasks.last().map(|task| task.account_id.to_string()).unwrap_or_default();
        let part =
            arrears::store::RunPart { tasks: &tasks, changes: &[], entries: &[], counts: &counts, resume_after: &last };
        let refused = slow.save_part(part, None).await;
        assert!(matches!(refused, Err(arrears::store::PlanRunError::Superseded { .. })), "{backend}: {refused:?}");
        assert!(stored_tasks(db).await.is_empty(), "{backend}: nothing of the refused part was saved");
        let mut quick = arrears::store::PlanRunWriter::for_shard(db, &taken, "quick", now, now);
        let saved = quick.save_part(part, Some(now)).await.unwrap();
        assert_eq!(saved.inserted, tasks.len() as u64, "{backend}");
        assert_eq!(shards_of(db, run_id).await[0].1, "done", "{backend}");
        assert!(!arrears::store::finish_sharded_run(db, run_id, now).await.unwrap(), "{backend}: two shards are open");
    }
}

async fn set_heartbeats(db: &sea_orm::DatabaseConnection, run_id: i64, at: DateTime<Utc>) {
    use sea_orm::{ConnectionTrait, Statement};
    let sql = "UPDATE plan_run_shards SET heartbeat_at = $1 WHERE run_id = $2";
    let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, [at.into(), run_id.into()]);
    db.execute_raw(statement).await.unwrap();
}

/// Gives an intruder's claim back (as if it had never been made).
async fn release_shard(db: &sea_orm::DatabaseConnection, run_id: i64, shard: i32) {
    use sea_orm::{ConnectionTrait, Statement};
    let sql = "UPDATE plan_run_shards SET state = 'open', holder = NULL WHERE run_id = $1 AND shard = $2";
    let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, [run_id.into(), shard.into()]);
    db.execute_raw(statement).await.unwrap();
}
