//! Human queues within their day's capacity, as a collections manager meets it: a queue with
//! `[queues.<name>]` gets at most the calls its agents complete in what is left of its day, the
//! accounts of highest priority first; the others fall through to the stage's next matching
//! rule (here a robot rule), or skip as `capacity:<queue>` when none is left. On SQLite and
//! PostgreSQL, through the real importer and plan run.

mod common;

use arrears::config::Config;
use arrears::domain::QueueCapacity;
use arrears::policy::PolicySettings;
use arrears::strategy::{LoadOptions, SourceFile, StrategyErrors, StrategySet, load_sources};
use common::book::{Fixture, at, import_accounts, row};
use entity::tasks;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use std::collections::BTreeMap;

/// One human rule taking every account of the stage, to the `collections` queue.
macro_rules! agents_rule {
    () => {
        r#"
[[rule]]
name = "agents"
stage = "late"
channel = "human"
queue = "collections"
priority = "balance"
windows = ["09:00-18:00"]
"#
    };
}

const HUMAN_ONLY: &str = agents_rule!();

/// The human rule, then a robot rule for whoever the agents cannot take.
const HUMAN_THEN_ROBOT: &str = concat!(
    agents_rule!(),
    r#"
[[rule]]
name = "robot"
stage = "late"
channel = "robot"
template = "robot/t"
attempts_per_day = 1
windows = ["09:00-18:00"]
"#
);

/// Two agents from 09:00 to 11:00 New York time, 2.5 calls an hour each: 10 calls a day.
const QUEUE: &str = r#"
timezone = "America/New_York"
[queues.collections]
calls_per_agent_hour = 2.5
shifts = [{ hours = "09:00-11:00", agents = 2 }]
"#;

/// The strategy of `rules` loaded with `capacities`.
fn load(rules: &str, capacities: &BTreeMap<String, QueueCapacity>) -> Result<StrategySet, StrategyErrors> {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(templates.join("robot")).unwrap();
    std::fs::write(templates.join("robot/t.hbs"), "Robot {{account.id}}").unwrap();
    let text = format!("name = \"test\"\npolicy = \"us-reg-f\"\n[stages]\nlate = {{ dpd = [1, 365] }}\n{rules}");
    let settings = PolicySettings::default();
    let options =
        LoadOptions { templates_dir: &templates, default_policy: "us-reg-f", settings: &settings, capacities };
    load_sources(&[SourceFile { name: "test.toml".into(), text }], &options)
}

/// The strategy of `rules` loaded with [`QUEUE`]'s capacity.
fn with_capacity(rules: &str) -> StrategySet {
    let config: Config = toml::from_str(QUEUE).unwrap();
    load(rules, &config.queue_capacities().unwrap()).unwrap_or_else(|errors| panic!("{errors}"))
}

/// 25 accounts with amounts due 100, 200, … 2,500 (balance ten times that).
fn rows() -> Vec<String> {
    (1..=25)
        .map(|n| {
            row(
                &format!("A{n:02}"),
                &format!("B{n:02}"),
                &[&format!("+1212555{n:04}")],
                "America/New_York",
                "",
                n * 100,
            )
        })
        .collect()
}

async fn tasks_by_rule(db: &sea_orm::DatabaseConnection, rule: &str) -> Vec<String> {
    let mut accounts: Vec<String> = tasks::Entity::find()
        .filter(tasks::Column::Rule.eq(rule))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|task| task.account_id)
        .collect();
    accounts.sort();
    accounts
}

#[tokio::test]
async fn a_full_queue_takes_the_highest_balances_and_the_rest_fall_through_to_the_robot() {
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        let strategies = with_capacity(HUMAN_THEN_ROBOT);
        // 08:00 in New York: the whole day's capacity (10 calls) is ahead.
        let now = at("2026-12-01T13:00:00Z");
        import_accounts(db, &rows(), now).await;
        // Before the plan, `explain` says the queue has a capacity and which priority the plan
        // will rank: one account alone cannot say whether the queue takes it.
        let explained = arrears::ops::explain_account(db, &strategies, "A01", now).await.unwrap().unwrap();
        let note = explained.explanation.capacity.as_ref().expect("a capacity note");
        assert_eq!((note.queue.as_str(), note.calls_per_day, note.priority), ("collections", 10, 1000.0));
        let mut text = Vec::new();
        arrears::ops::write_explanation(&explained, &mut text).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("queue collections has a capacity (10 calls a day)"));

        let outcome = arrears::ops::plan_and_persist(db, &strategies, now, false).await.unwrap();
        let human = tasks_by_rule(db, "agents").await;
        let expected: Vec<String> = (16..=25).map(|n| format!("A{n:02}")).collect();
        assert_eq!(human, expected, "{}: the ten largest balances go to the agents", test_db.backend);
        let robot = tasks_by_rule(db, "robot").await;
        let fell: Vec<String> = (1..=15).map(|n| format!("A{n:02}")).collect();
        assert_eq!(robot, fell, "{}: the others fall through to the robot rule", test_db.backend);
        let queue = &outcome.queues["collections"];
        assert_eq!((queue.room, queue.candidates, queue.admitted), (10, 25, 10), "{}", test_db.backend);

        // Planning again the same day adds nothing, and a new account that day finds the queue
        // full (its day already holds 10 tasks): it goes to the robot.
        import_accounts(db, &[row("A99", "B99", &["+12125559999"], "America/New_York", "", 99_999)], now).await;
        let again = arrears::ops::plan_and_persist(db, &strategies, now, false).await.unwrap();
        assert_eq!(again.queues["collections"].room, 0, "{}", test_db.backend);
        assert_eq!(tasks_by_rule(db, "agents").await.len(), 10, "{}", test_db.backend);
        assert!(tasks_by_rule(db, "robot").await.contains(&"A99".to_string()), "{}", test_db.backend);
    }
}

#[tokio::test]
async fn without_a_later_rule_the_rest_skip_as_capacity_and_late_in_the_day_the_room_is_smaller() {
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        let strategies = with_capacity(HUMAN_ONLY);
        // 10:30 in New York: only the 10:00 hour is left, 2 agents × 2.5 calls = 5.
        let now = at("2026-12-01T15:30:00Z");
        import_accounts(db, &rows(), now).await;
        let (outcome, plan) = arrears::ops::plan_collect(db, &strategies, now, true).await.unwrap();
        assert_eq!(outcome.queues["collections"].room, 5, "{}", test_db.backend);
        let mut human: Vec<&str> = plan.tasks.iter().map(|task| &*task.account_id).collect();
        human.sort();
        assert_eq!(human, ["A21", "A22", "A23", "A24", "A25"], "{}", test_db.backend);
        let capacity: Vec<&str> =
            plan.skips.iter().filter(|skip| skip.reason == "capacity:collections").map(|s| &*s.account_id).collect();
        assert_eq!(capacity.len(), 20, "{}: every other account skips as capacity:collections", test_db.backend);
        assert!(plan.skips.iter().all(|skip| skip.reason == "capacity:collections"), "{}", test_db.backend);
    }
}

#[test]
fn without_a_capacity_a_rule_below_a_catch_all_human_rule_can_never_match() {
    let errors = load(HUMAN_THEN_ROBOT, &BTreeMap::new()).unwrap_err();
    assert!(errors.to_string().contains("rule `robot` can never match"), "{errors}");
}

#[tokio::test]
async fn a_queue_without_capacity_takes_everyone() {
    let test_db = common::sqlite_db().await;
    let db = &test_db.db;
    let fixture = Fixture::new("us-reg-f", HUMAN_ONLY);
    let now = at("2026-12-01T13:00:00Z");
    import_accounts(db, &rows(), now).await;
    let outcome = arrears::ops::plan_and_persist(db, &fixture.strategies, now, false).await.unwrap();
    assert!(outcome.queues.is_empty());
    assert_eq!(tasks_by_rule(db, "agents").await.len(), 25);
}

#[test]
fn a_bad_queue_table_names_its_field() {
    let config: Config = toml::from_str(
        "[queues.early]\ncalls_per_agent_hour = 5\nshifts = [{ hours = \"09:30-12:00\", agents = 2 }]\n",
    )
    .unwrap();
    let error = config.queue_capacities().unwrap_err();
    assert!(error.starts_with("queues.early.shifts[0].hours:"), "{error}");
    let config: Config = toml::from_str("[queues.early]\ncalls_per_agent_hour = 0\nshifts = []\n").unwrap();
    assert!(config.queue_capacities().unwrap_err().starts_with("queues.early.calls_per_agent_hour:"));
}
