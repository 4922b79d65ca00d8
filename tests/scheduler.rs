//! The scheduler's plan job: once per occurrence, one instance at a time, another instance
//! takes over when the lock holder dies, and the other jobs (release, lease reaper) go on while
//! a plan runs — on SQLite and (when configured) PostgreSQL, driven step by step with a manual
//! clock.

mod common;

use arrears::clock::Clock;
use arrears::config::Config;
use arrears::import::ImportKind;
use arrears::policy::PolicySettings;
use arrears::scheduler::{PLANNER_LOCK, Scheduler, Schedules, StrategySource};
use arrears::strategy::LoadOptions;
use chrono::{DateTime, Duration, Utc};
use entity::prelude::PlanRuns;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};
use std::path::Path;
use std::sync::Arc;

fn strategies() -> StrategySource {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = PolicySettings::default();
    let options = LoadOptions {
        templates_dir: &root.join("templates"),
        default_policy: "us-reg-f",
        settings: &settings,
        capacities: &Default::default(),
    };
    let set = Arc::new(arrears::strategy::load_dir(&root.join("strategies"), &options).unwrap());
    Arc::new(move || Arc::clone(&set))
}

fn schedules() -> Schedules {
    let mut config: Config = toml::from_str("").unwrap();
    config.timezone = "Asia/Shanghai".into();
    config.schedule.plan = "0 0 6 * * *".into();
    Schedules::from_config(&config).unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

async fn instance(url: &str, name: &str, clock: &Clock) -> Scheduler {
    let db = arrears::store::connect(url).await.unwrap();
    Scheduler::new(db, schedules(), strategies(), clock.clone(), name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_plan_once_per_occurrence_and_one_takes_over_when_the_other_dies() {
    // 06:00 in Shanghai on 2026-11-23 is 22:00 UTC on the 22nd.
    let before = at("2026-11-22T21:59:00Z");
    let occurrence = at("2026-11-22T22:00:05Z");
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), 300, 1, before).unwrap();
    for db in common::all_dbs().await {
        arrears::import::import_file(&db, ImportKind::Accounts, &dir.path().join("accounts.csv")).await.unwrap();
        let clock = Clock::manual(before);
        let a = instance(&db.url, "instance-a", &clock).await;
        let b = instance(&db.url, "instance-b", &clock).await;
        let runs = || async { PlanRuns::find().count(&db.db).await.unwrap() };

        // Yesterday's 06:00 has no plan yet: the first step catches up, and only one instance
        // starts the plan (as a job of its own: the step does not wait for it).
        let (first, second) = tokio::join!(a.try_execute_jobs(before), b.try_execute_jobs(before));
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(
            usize::from(first.plan_started) + usize::from(second.plan_started),
            1,
            "{}: {first:?} {second:?}",
            db.backend
        );
        // The other found the lock taken, or (when the small plan was done before its step got
        // there) the plan finished: either way it started none.
        let (planner, other) = if first.plan_started { (&a, &b) } else { (&b, &a) };
        assert!(planner.wait_for_plan().await);
        assert!(!other.wait_for_plan().await, "{}: the other instance runs no plan", db.backend);
        assert_eq!(runs().await, 1, "{}", db.backend);
        // The next step of the instance that planned reports the saved run; nothing more until
        // the next occurrence.
        let step = planner.try_execute_jobs(before + Duration::seconds(30)).await.unwrap();
        assert!(step.planned.is_some() && !step.plan_started, "{}: {step:?}", db.backend);
        assert_eq!(other.try_execute_jobs(before + Duration::seconds(30)).await.unwrap().planned, None);
        assert_eq!(planner.try_execute_jobs(before + Duration::seconds(31)).await.unwrap(), Default::default());
        assert_eq!(runs().await, 1);

        // At 06:00 instance A takes the planner lock and dies before saving anything.
        assert!(
            arrears::store::try_lock(
                &db.db,
                PLANNER_LOCK,
                "instance-a",
                occurrence,
                occurrence + Duration::minutes(30)
            )
            .await
            .unwrap()
        );
        let step = b.try_execute_jobs(occurrence).await.unwrap();
        assert!(step.plan_locked && !step.plan_started, "{}: {step:?}", db.backend);
        assert_eq!(runs().await, 1, "{}: nobody planned while A held the lock", db.backend);
        // Its lock expires; B takes over on its next step.
        let later = occurrence + Duration::minutes(31);
        clock.set(later);
        let step = b.try_execute_jobs(later).await.unwrap();
        assert!(step.plan_started, "{}: {step:?}", db.backend);
        assert!(b.wait_for_plan().await);
        assert!(b.try_execute_jobs(later + Duration::seconds(1)).await.unwrap().planned.is_some());
        assert_eq!(runs().await, 2, "{}", db.backend);
        // A comes back: the occurrence is planned, it does nothing.
        assert_eq!(a.try_execute_jobs(later + Duration::seconds(2)).await.unwrap(), Default::default());
        assert_eq!(runs().await, 2);
    }
}

fn schedules_at(plan: &str) -> Schedules {
    let mut config: Config = toml::from_str("").unwrap();
    config.timezone = "Asia/Shanghai".into();
    config.schedule.plan = plan.into();
    Schedules::from_config(&config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_keeps_releasing_and_reaping_while_its_plan_job_runs() {
    // A plan at 09:00 in Shanghai (01:00 UTC), inside the contact hours.
    let occurrence = at("2026-11-22T01:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), 30_000, 2, occurrence).unwrap();
    let set = strategies();
    for db in common::all_dbs().await {
        arrears::import::import_file(&db, ImportKind::Accounts, &dir.path().join("accounts.csv")).await.unwrap();
        // Two human tasks for today on accounts the plan would work too: one whose window opens
        // 5 s after the occurrence (for the release), one leased until 10 s after it (for the
        // reaper).
        let accounts = entity::prelude::Accounts::find()
            .filter(entity::accounts::Column::Flags.eq(""))
            .filter(entity::accounts::Column::Product.eq("cash"))
            .filter(entity::accounts::Column::AmountDue.gt(rust_decimal::Decimal::ONE))
            .order_by_asc(entity::accounts::Column::Id)
            .all(&db.db)
            .await
            .unwrap();
        let mut picked = Vec::new();
        for account in accounts {
            let borrower =
                entity::prelude::Borrowers::find_by_id(account.borrower_id.clone()).one(&db.db).await.unwrap().unwrap();
            if borrower.timezones == "Asia/Shanghai" {
                picked.push(account);
            }
            if picked.len() == 2 {
                break;
            }
        }
        let zone = chrono_tz::Asia::Shanghai;
        let task = |account: &entity::accounts::Model, opens: DateTime<Utc>| arrears::plan::Task {
            account_id: account.id.as_str().into(),
            borrower_id: account.borrower_id.as_str().into(),
            local_date: occurrence.with_timezone(&zone).date_naive(),
            dpd: 10,
            stage: "M1".into(),
            strategy: "consumer-cash".into(),
            rule: "broken promises to agents".into(),
            arm: None,
            channel: arrears::domain::Channel::Human,
            queue: Some("early".into()),
            template: None,
            attempt: 1,
            calls_allowed: 2,
            not_before: opens.with_timezone(&zone).fixed_offset(),
            not_after: (occurrence + Duration::hours(8)).with_timezone(&zone).fixed_offset(),
            priority: 1.0,
            p_contact: None,
        };
        arrears::store::raw_insert_tasks(
            &db.db,
            &[task(&picked[0], occurrence + Duration::seconds(5)), task(&picked[1], occurrence - Duration::hours(1))],
        )
        .await
        .unwrap();
        let leased = entity::prelude::Tasks::find()
            .filter(entity::tasks::Column::AccountId.eq(picked[1].id.clone()))
            .one(&db.db)
            .await
            .unwrap()
            .unwrap();
        let mut lease: entity::tasks::ActiveModel = leased.into();
        lease.state = Set("leased".into());
        lease.lease_agent = Set(Some("agent-1".into()));
        lease.lease_expires_at = Set(Some(occurrence + Duration::seconds(10)));
        lease.update(&db.db).await.unwrap();

        let clock = Clock::manual(occurrence);
        let config: Config = toml::from_str("").unwrap();
        let source: StrategySource = set.clone();
        let scheduler = Scheduler::new(
            arrears::store::connect(&db.url).await.unwrap(),
            schedules_at("0 0 9 * * *"),
            source,
            clock.clone(),
            "instance-a",
        )
        .with_release(&config, &Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"))
        .unwrap();

        // 09:00: the plan is due; the step starts it and returns at once.
        let first = scheduler.try_execute_jobs(occurrence).await.unwrap();
        assert!(first.plan_started && first.planned.is_none(), "{}: {first:?}", db.backend);
        assert_eq!(first.leases_reaped, 0, "{}", db.backend);
        // 09:00:15, the plan still running: the lease that ran out is reaped and the task whose
        // window opened is released, by a step that does not wait for the plan.
        let during = occurrence + Duration::seconds(15);
        clock.set(during);
        let step = scheduler.try_execute_jobs(during).await.unwrap();
        assert!(step.plan_running, "{}: the plan was over before the second step: {step:?}", db.backend);
        assert!(!step.plan_started && step.planned.is_none(), "{}: {step:?}", db.backend);
        assert_eq!(step.leases_reaped, 1, "{}: {step:?}", db.backend);
        assert_eq!(step.released.ready + step.released.cancelled, 1, "{}: {step:?}", db.backend);
        let released = entity::prelude::Tasks::find()
            .filter(entity::tasks::Column::AccountId.eq(picked[0].id.clone()))
            .one(&db.db)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(released.state, "planned", "{}", db.backend);

        // The plan ends whole. (The step after it reports it: see the test above. Not here: that
        // step would release the whole new plan, which is not what this test is about.)
        assert!(scheduler.wait_for_plan().await);
        let runs = PlanRuns::find().all(&db.db).await.unwrap();
        assert_eq!(runs.len(), 1, "{}", db.backend);
        assert!(runs[0].finished_at.is_some(), "{}", db.backend);
        // The lock was given up when the plan ended.
        assert!(arrears::store::try_lock(&db.db, PLANNER_LOCK, "instance-b", during, during).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_the_plan_join_the_run_one_of_them_started_and_finish_it_once() {
    let before = at("2026-11-22T21:59:00Z");
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), 1_000, 1, before).unwrap();
    let mut config: Config = toml::from_str("[plan]\nshared = true\nshard_accounts = 50").unwrap();
    config.timezone = "Asia/Shanghai".into();
    config.schedule.plan = "0 0 6 * * *".into();
    let shared = Schedules::from_config(&config).unwrap();
    for db in common::all_dbs().await {
        arrears::import::import_file(&db, ImportKind::Accounts, &dir.path().join("accounts.csv")).await.unwrap();
        let clock = Clock::manual(before);
        let connect = || async { arrears::store::connect(&db.url).await.unwrap() };
        let a = Scheduler::new(connect().await, shared.clone(), strategies(), clock.clone(), "instance-a");
        let b = Scheduler::new(connect().await, shared.clone(), strategies(), clock.clone(), "instance-b");

        // A takes the planner lock and starts the day's run, cut into 20 shards.
        let step = a.try_execute_jobs(before).await.unwrap();
        assert!(step.plan_started, "{}: {step:?}", db.backend);
        let started = std::time::Instant::now();
        while PlanRuns::find().count(&db.db).await.unwrap() == 0 {
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "{}: no run row", db.backend);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // B finds the lock taken but the run shared: its planners join it instead of waiting.
        let step = b.try_execute_jobs(before).await.unwrap();
        assert!(step.plan_started && !step.plan_locked, "{}: {step:?}", db.backend);
        assert!(a.wait_for_plan().await && b.wait_for_plan().await);
        let (ended_a, ended_b) = (
            a.try_execute_jobs(before + Duration::seconds(1)).await.unwrap(),
            b.try_execute_jobs(before + Duration::seconds(1)).await.unwrap(),
        );
        let run = PlanRuns::find().one(&db.db).await.unwrap().unwrap();
        assert_eq!(ended_a.planned, Some(run.id), "{}: {ended_a:?}", db.backend);
        assert_eq!(ended_b.planned, Some(run.id), "{}: B reports the run it helped with: {ended_b:?}", db.backend);
        assert_eq!(PlanRuns::find().count(&db.db).await.unwrap(), 1, "{}: one run for both", db.backend);
        assert!(run.finished_at.is_some() && run.shards == 20, "{}: {run:?}", db.backend);
        assert_eq!(run.accounts, 1_000, "{}", db.backend);
        let tasks = entity::prelude::Tasks::find().count(&db.db).await.unwrap();
        assert_eq!(run.tasks as u64, tasks, "{}: the run's count is every shard's tasks", db.backend);
        // Neither plans again until the next occurrence.
        let (next_a, next_b) = (
            a.try_execute_jobs(before + Duration::seconds(2)).await.unwrap(),
            b.try_execute_jobs(before + Duration::seconds(2)).await.unwrap(),
        );
        assert!(!next_a.plan_started && !next_b.plan_started, "{}: {next_a:?} {next_b:?}", db.backend);
    }
}
