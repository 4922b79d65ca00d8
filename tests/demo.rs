//! `arrears demo` end to end on a fresh SQLite file: a synthetic book as of two days ago, the
//! two simulated days that end now run by the real engine against the simulated call center,
//! then today's plan. What a user opening the file afterwards sees: work was done (attempts,
//! promises, payments, agents' leases), no contact broke the policy, nothing the engine was
//! told was refused, and nothing lies after the real clock — no attempt, promise, payment or
//! task dated after today, and every account's stored stage is the stage it is in now.

mod common;

use arrears::config::Config;
use arrears::ops::Settings;
use chrono::{Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use std::path::Path;

fn metric(text: &str, name: &str) -> f64 {
    let line = text
        .lines()
        .map(str::trim_start)
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with("  "))
        .unwrap_or_else(|| panic!("no `{name}` in:\n{text}"));
    line[name.len()..].trim().replace(',', "").parse().unwrap_or_else(|_| panic!("{line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_simulates_the_days_that_end_now_and_leaves_nothing_in_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = Settings {
        database_url: format!("sqlite://{}?mode=rwc", dir.path().join("demo.db").display()),
        strategies_dir: root.join("strategies"),
        templates_dir: root.join("templates"),
        config: toml::from_str::<Config>("").unwrap(),
    };
    let before = Utc::now();
    let mut out = Vec::new();
    arrears::demo::run(&settings, 600, 3, 2, &mut out).await.unwrap();
    let after = Utc::now();
    let text = String::from_utf8(out).unwrap();

    assert!(text.contains("2 simulated day(s)"), "{text}");
    assert!(metric(&text, "robot attempts") > 50.0, "{text}");
    assert!(metric(&text, "human attempts") > 20.0, "agents worked the declared queues: {text}");
    assert!(metric(&text, "right-party contacts") > 0.0, "{text}");
    assert_eq!(metric(&text, "policy violations"), 0.0, "{text}");
    assert!(!text.contains("the engine refused"), "the engine refused a report: {text}");
    assert!(text.contains("queue m1:") && text.contains("calls an hour over 09:00-21:00"), "{text}");
    assert!(text.contains("today, as `serve` plans it"), "{text}");

    let db = arrears::store::connect(&settings.database_url).await.unwrap();
    use entity::prelude::*;
    let attempts = Attempts::find().count(&db).await.unwrap();
    assert!(attempts > 100, "{attempts} attempts");
    let late_attempts = Attempts::find().filter(entity::attempts::Column::At.gt(after)).count(&db).await.unwrap();
    assert_eq!(late_attempts, 0, "no attempt after the real clock");
    assert!(Promises::find().count(&db).await.unwrap() > 0, "promises were made");
    let late_promises = Promises::find().filter(entity::promises::Column::MadeAt.gt(after)).count(&db).await.unwrap();
    assert_eq!(late_promises, 0);
    assert!(Payments::find().count(&db).await.unwrap() > 0, "the simulated borrowers paid");
    let late_payments = Payments::find().filter(entity::payments::Column::PaidAt.gt(after)).count(&db).await.unwrap();
    assert_eq!(late_payments, 0);
    // Tasks belong to the borrower-local days up to today (the earliest zone's today is at most
    // a day ahead of UTC).
    let tomorrow = (after + Duration::days(1)).date_naive();
    let future_tasks = Tasks::find().filter(entity::tasks::Column::LocalDate.gt(tomorrow)).count(&db).await.unwrap();
    assert_eq!(future_tasks, 0, "no task for a day after today");
    let first_day = (before - Duration::days(3)).date_naive();
    let early_tasks = Tasks::find().filter(entity::tasks::Column::LocalDate.lt(first_day)).count(&db).await.unwrap();
    assert_eq!(early_tasks, 0, "tasks belong to the simulated days");
    // The risk desk: events arrived through the events path and every closed case has its
    // disposition; the demo prints the reactions report.
    assert!(text.contains("risk events: ") && text.contains("Reactions to risk events"), "{text}");
    let events = entity::risk_events::Entity::find().count(&db).await.unwrap();
    assert!(events > 0, "the simulated monitoring sent events");
    let late_events = entity::risk_events::Entity::find()
        .filter(entity::risk_events::Column::ReceivedAt.gt(after))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(late_events, 0);
    let closed_without = entity::reaction_cases::Entity::find()
        .filter(entity::reaction_cases::Column::State.eq("closed"))
        .filter(entity::reaction_cases::Column::Disposition.is_null())
        .count(&db)
        .await
        .unwrap();
    assert_eq!(closed_without, 0, "a closed case always has a disposition");

    // Every owing account's stored stage is the stage it is in now (what `explain` shows as
    // "stored"); an account paid off is out of collections and has none stored.
    let strategies = arrears::ops::load_strategies(&settings, &settings.strategies_dir).unwrap();
    let ids: Vec<String> = Accounts::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .filter(|account| account.amount_due > rust_decimal::Decimal::ZERO)
        .map(|account| account.id)
        .collect();
    let mut compared = 0;
    for id in ids.iter().step_by(10) {
        let report = arrears::ops::explain_account(&db, &strategies, id, Utc::now()).await.unwrap().unwrap();
        if report.explanation.stage.is_some() {
            assert_eq!(report.explanation.stage, report.stored_stage, "{id}: stage now vs stored");
            compared += 1;
        }
    }
    assert!(compared > 30, "{compared} accounts compared");
}
