//! The scheduler's plan job: once per occurrence, one instance at a time, and another instance
//! takes over when the lock holder dies — on SQLite and (when configured) PostgreSQL, driven
//! step by step with a manual clock.

mod common;

use arrears::clock::Clock;
use arrears::config::Config;
use arrears::import::ImportKind;
use arrears::policy::PolicySettings;
use arrears::scheduler::{PLANNER_LOCK, Scheduler, Schedules, StrategySource};
use arrears::strategy::LoadOptions;
use chrono::{DateTime, Duration, Utc};
use entity::prelude::PlanRuns;
use sea_orm::{EntityTrait, PaginatorTrait};
use std::path::Path;
use std::sync::Arc;

fn strategies() -> StrategySource {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = PolicySettings::default();
    let options =
        LoadOptions { templates_dir: &root.join("templates"), default_policy: "us-reg-f", settings: &settings };
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

        // Yesterday's 06:00 has no plan yet: the first step catches up, and only one instance plans.
        let (first, second) = tokio::join!(a.try_execute_jobs(before), b.try_execute_jobs(before));
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(
            usize::from(first.planned.is_some()) + usize::from(second.planned.is_some()),
            1,
            "{}: {first:?} {second:?}",
            db.backend
        );
        assert_eq!(runs().await, 1, "{}", db.backend);
        // Nothing more until the next occurrence.
        assert_eq!(a.try_execute_jobs(before + Duration::seconds(30)).await.unwrap().planned, None);
        assert_eq!(b.try_execute_jobs(before + Duration::seconds(30)).await.unwrap().planned, None);
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
        assert!(step.plan_locked && step.planned.is_none(), "{}: {step:?}", db.backend);
        assert_eq!(runs().await, 1, "{}: nobody planned while A held the lock", db.backend);
        // Its lock expires; B takes over on its next step.
        let later = occurrence + Duration::minutes(31);
        clock.set(later);
        let step = b.try_execute_jobs(later).await.unwrap();
        assert!(step.planned.is_some(), "{}: {step:?}", db.backend);
        assert_eq!(runs().await, 2, "{}", db.backend);
        // A comes back: the occurrence is planned, it does nothing.
        assert_eq!(a.try_execute_jobs(later + Duration::seconds(1)).await.unwrap(), Default::default());
        assert_eq!(runs().await, 2);
    }
}
