//! Agents' work queues through the real path: CSV imports, a strategy directory, a saved plan,
//! then leasing, heartbeats, the reaper, attempts and their effects, and promise evaluation, on
//! SQLite and (when `ARREARS_TEST_DATABASE_URL` is set) PostgreSQL. Time moves by passing a
//! later `now`; nothing sleeps.

mod common;

use arrears::import::ImportKind;
use arrears::ops::work::{
    self, Actor, AttemptReport, Lease, PromiseReport, PromiseTerms, Rules, WorkError, evaluate_promises, heartbeat,
    lease_next, reap_expired_leases, record_attempt,
};
use arrears::policy::{Policy, PolicySettings};
use arrears::strategy::{LoadOptions, StrategySet};
use chrono::{DateTime, Duration, Utc};
use common::TestDb;
use entity::{accounts, attempts, contact_points, promises, tasks};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

const QUEUE: &str = "collectors";
const HEADER: &str = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,due_date,tags,flags,consent_robot";

/// Monday 2026-11-23, 10:00 in New York.
fn plan_at() -> DateTime<Utc> {
    "2026-11-23T15:00:00Z".parse().unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn ttl() -> Duration {
    Duration::minutes(5)
}

const STRATEGY: &str = r#"
name = "test"
policy = "us-reg-f"
[stages]
late = { dpd = [1, 365] }

[[rule]]
name = "robots"
when = { tags_any = ["robot"] }
channel = "robot"
template = "robot/t"
attempts_per_day = 3
min_gap = "2h"

[[rule]]
name = "second chance"
when = { broken_promises = { min = 1 } }
channel = "human"
queue = "second-chance"
calls_per_day = 1

[[rule]]
name = "agents"
channel = "human"
queue = "collectors"
calls_per_day = 2
priority = "balance"
"#;

fn strategies() -> StrategySet {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(templates.join("robot")).unwrap();
    std::fs::write(templates.join("robot/t.hbs"), "Hello {{borrower.name}}").unwrap();
    let strategies = dir.path().join("strategies");
    std::fs::create_dir_all(&strategies).unwrap();
    std::fs::write(strategies.join("test.toml"), STRATEGY).unwrap();
    let settings = PolicySettings::default();
    let options = LoadOptions {
        templates_dir: &templates,
        default_policy: "us-reg-f",
        settings: &settings,
        capacities: &Default::default(),
    };
    arrears::strategy::load_dir(&strategies, &options).unwrap_or_else(|errors| panic!("{errors}"))
}

fn fallback() -> Policy {
    Policy::builtin("us-reg-f", &PolicySettings::default()).unwrap()
}

/// One accounts.csv row: `(account, borrower, balance, zones, tags, flags)`; the amount due is
/// a tenth of the balance, the due date 2026-11-01 (DPD 22), one phone per borrower.
fn row(account: &str, borrower: &str, balance: u32, zones: &str, tags: &str, flags: &str) -> String {
    let phone = 15_550_000_000u64 + borrower.bytes().map(u64::from).sum::<u64>() * 1000 + borrower.len() as u64;
    format!(
        "{account},{borrower},Name {borrower},+{phone},,{zones},loan,USD,{},{balance},2026-11-01,{tags},{flags},true",
        balance / 10
    )
}

fn ny(account: &str, borrower: &str, balance: u32) -> String {
    row(account, borrower, balance, "America/New_York", "", "")
}

async fn import(db: &DatabaseConnection, kind: ImportKind, name: &str, lines: &[String], now: DateTime<Utc>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    arrears::import::import_file_at(db, kind, &path, now).await.unwrap_or_else(|error| panic!("{name}: {error}"));
}

async fn import_accounts(db: &DatabaseConnection, rows: &[String], now: DateTime<Utc>) {
    let mut lines = vec![HEADER.to_string()];
    lines.extend(rows.iter().cloned());
    import(db, ImportKind::Accounts, "accounts.csv", &lines, now).await;
}

/// Imports the rows and saves a plan at `plan_at()`.
async fn book(db: &DatabaseConnection, rows: &[String]) -> StrategySet {
    import_accounts(db, rows, plan_at() - Duration::hours(1)).await;
    let strategies = strategies();
    arrears::ops::plan_and_persist(db, &strategies, plan_at(), false).await.unwrap();
    strategies
}

async fn tasks_of(db: &DatabaseConnection, account: &str) -> Vec<tasks::Model> {
    arrears::store::tasks_for_account(db, account).await.unwrap()
}

async fn human_task(db: &DatabaseConnection, account: &str) -> tasks::Model {
    let tasks = tasks_of(db, account).await;
    assert_eq!(tasks.len(), 1, "{account}: {tasks:?}");
    assert_eq!(tasks[0].channel, "human");
    tasks[0].clone()
}

async fn lease(db: &DatabaseConnection, strategies: &StrategySet, agent: &str, now: DateTime<Utc>) -> Option<Lease> {
    lease_next(db, &Rules::new(strategies, &fallback()), QUEUE, agent, now, ttl()).await.unwrap()
}

fn report(outcome: &str, at: DateTime<Utc>) -> AttemptReport {
    AttemptReport { outcome: outcome.into(), at: Some(at), ..AttemptReport::default() }
}

async fn audit_actions(db: &DatabaseConnection, entity_id: &str) -> Vec<String> {
    entity::audit_log::Entity::find()
        .filter(entity::audit_log::Column::EntityId.eq(entity_id))
        .order_by_asc(entity::audit_log::Column::Id)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.action)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_agents_lease_at_once_and_every_task_goes_out_exactly_once() {
    for test_db in common::all_dbs().await {
        many_agents(&test_db).await;
    }
}

async fn many_agents(test_db: &TestDb) {
    let db = &test_db.db;
    // 150 borrowers; the first 30 own a second account: 180 human tasks.
    let mut rows = Vec::new();
    for b in 0..150 {
        rows.push(ny(&format!("A{b:03}"), &format!("B{b:03}"), 1000 + (b * 37) % 500));
        if b < 30 {
            rows.push(ny(&format!("A{b:03}x"), &format!("B{b:03}"), 1200));
        }
    }
    let strategies = Arc::new(book(db, &rows).await);
    let expected: HashSet<i64> = tasks::Entity::find()
        .filter(tasks::Column::Queue.eq(QUEUE))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|task| task.id)
        .collect();
    assert_eq!(expected.len(), 180, "{}", test_db.backend);

    let now = plan_at() + Duration::minutes(5);
    let held: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let handed: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    let mut agents = Vec::new();
    for agent in 0..48 {
        let (db, strategies, held, handed) = (db.clone(), strategies.clone(), held.clone(), handed.clone());
        agents.push(tokio::spawn(async move {
            let agent = format!("agent-{agent}");
            while let Some(lease) =
                lease_next(&db, &Rules::new(&strategies, &fallback()), QUEUE, &agent, now, ttl()).await.unwrap()
            {
                let borrower = lease.task.borrower_id.clone();
                if let Some(other) = held.lock().unwrap().insert(borrower.clone(), agent.clone()) {
                    panic!("borrower {borrower} held by {other} and {agent} at once");
                }
                handed.lock().unwrap().push((lease.task.id, agent.clone()));
                tokio::task::yield_now().await;
                held.lock().unwrap().remove(&borrower);
                work::complete(&db, lease.task.id, &agent, now).await.unwrap();
            }
        }));
    }
    for agent in agents {
        agent.await.unwrap();
    }
    let handed = handed.lock().unwrap().clone();
    let agents: HashSet<&str> = handed.iter().map(|(_, agent)| agent.as_str()).collect();
    assert!(agents.len() > 8, "{}: only {} agents got work", test_db.backend, agents.len());
    let unique: HashSet<i64> = handed.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), handed.len(), "{}: a task was handed out twice", test_db.backend);
    assert_eq!(unique, expected, "{}: every task handed out exactly once", test_db.backend);
    let done = tasks::Entity::find().filter(tasks::Column::State.eq("done")).all(db).await.unwrap();
    assert_eq!(done.len(), 180, "{}", test_db.backend);
}

#[tokio::test]
async fn priority_first_then_the_oldest_task() {
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        let strategies =
            book(db, &[ny("A1", "B1", 5000), ny("A2", "B2", 9000), ny("A3", "B3", 9000), ny("A4", "B4", 1000)]).await;
        let now = plan_at() + Duration::minutes(1);
        let mut order = Vec::new();
        for agent in ["a", "b", "c", "d"] {
            let lease = lease(db, &strategies, agent, now).await.expect("a task");
            assert_eq!(lease.task.queue, QUEUE);
            assert_eq!(lease.task.calls_allowed, 2, "{}: the rule's calls_per_day", test_db.backend);
            assert_eq!(lease.account.phones.len(), 1);
            assert_eq!(lease.lease_expires_at, now + ttl());
            order.push(lease.task.account_id);
        }
        assert_eq!(order, ["A2", "A3", "A1", "A4"], "{}", test_db.backend);
        assert!(lease(db, &strategies, "e", now).await.is_none(), "{}: the queue is empty", test_db.backend);
        let task = human_task(db, "A2").await;
        assert_eq!((task.state.as_str(), task.lease_agent.as_deref()), ("leased", Some("a")));
        assert_eq!(audit_actions(db, &task.id.to_string()).await, ["task.leased"]);
    }
}

#[tokio::test]
async fn one_borrower_is_held_by_one_agent_at_a_time() {
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        let strategies = book(db, &[ny("A1", "B1", 5000), ny("A2", "B1", 4000)]).await;
        let now = plan_at() + Duration::minutes(1);
        let first = lease(db, &strategies, "ann", now).await.expect("a task");
        assert_eq!(first.task.account_id, "A1");
        assert!(lease(db, &strategies, "bob", now).await.is_none(), "{}: B1 is held by ann", test_db.backend);
        work::complete(db, first.task.id, "ann", now + Duration::minutes(2)).await.unwrap();
        let second = lease(db, &strategies, "bob", now + Duration::minutes(3)).await.expect("the other account");
        assert_eq!(second.task.account_id, "A2", "{}", test_db.backend);
    }
}

#[tokio::test]
async fn heartbeats_extend_and_expired_leases_are_reaped_back_to_the_queue() {
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        let strategies = book(db, &[ny("A1", "B1", 5000)]).await;
        let t0 = plan_at() + Duration::minutes(1);
        let lease = lease(db, &strategies, "ann", t0).await.expect("a task");
        let id = lease.task.id;
        let renewed = heartbeat(db, &Rules::new(&strategies, &fallback()), id, "ann", t0 + Duration::minutes(4), ttl())
            .await
            .unwrap();
        assert_eq!(renewed.lease_expires_at, t0 + Duration::minutes(9));
        assert_eq!(reap_expired_leases(db, t0 + Duration::minutes(6)).await.unwrap(), 0, "{}", test_db.backend);
        assert!(matches!(
            heartbeat(db, &Rules::new(&strategies, &fallback()), id, "bob", t0 + Duration::minutes(6), ttl()).await,
            Err(WorkError::NotYourLease(_))
        ));

        let late = t0 + Duration::minutes(10);
        assert!(matches!(
            heartbeat(db, &Rules::new(&strategies, &fallback()), id, "ann", late, ttl()).await,
            Err(WorkError::Conflict(_))
        ));
        assert!(matches!(work::complete(db, id, "ann", late).await, Err(WorkError::Conflict(_))));
        assert!(self::lease(db, &strategies, "bob", late).await.is_none(), "{}: not reaped yet", test_db.backend);
        assert_eq!(reap_expired_leases(db, late).await.unwrap(), 1, "{}", test_db.backend);
        let task = human_task(db, "A1").await;
        assert_eq!((task.state.as_str(), task.lease_agent.as_deref()), ("ready", None));
        assert_eq!(task.state_reason.as_deref(), Some("lease_expired"));

        let again = self::lease(db, &strategies, "bob", late).await.expect("leasable again");
        assert_eq!(again.task.id, id);
        assert!(matches!(work::complete(db, id, "ann", late).await, Err(WorkError::NotYourLease(_))));
        work::complete(db, id, "bob", late + Duration::minutes(1)).await.unwrap();
        assert_eq!(
            audit_actions(db, &id.to_string()).await,
            ["task.leased", "task.lease_expired", "task.leased", "task.completed"],
            "{}",
            test_db.backend
        );
    }
}

#[tokio::test]
async fn only_the_holder_releases_or_completes() {
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        let strategies = book(db, &[ny("A1", "B1", 5000)]).await;
        let now = plan_at() + Duration::minutes(1);
        let id = lease(db, &strategies, "ann", now).await.expect("a task").task.id;
        assert!(matches!(work::complete(db, id, "bob", now).await, Err(WorkError::NotYourLease(_))));
        assert!(matches!(work::release(db, id, "bob", now).await, Err(WorkError::NotYourLease(_))));
        assert!(matches!(work::complete(db, id + 1000, "ann", now).await, Err(WorkError::NotFound(_))));
        let released = work::release(db, id, "ann", now).await.unwrap();
        assert_eq!(released.state, "ready");
        assert!(matches!(work::complete(db, id, "ann", now).await, Err(WorkError::Conflict(_))));
        let again = lease(db, &strategies, "bob", now).await.expect("released work is leasable");
        assert_eq!(again.task.id, id);
        assert_eq!(work::complete(db, id, "bob", now).await.unwrap().state, "done");
        assert!(matches!(work::complete(db, id, "bob", now).await, Err(WorkError::Conflict(_))));
        let task = human_task(db, "A1").await;
        assert_eq!((task.state.as_str(), task.lease_agent.as_deref()), ("done", Some("bob")), "{}", test_db.backend);
    }
}

#[tokio::test]
async fn a_task_outside_the_contact_hours_in_any_zone_waits() {
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        // Planned with New York only: the window opens at 10:00 New York (15:00Z).
        let strategies = book(db, &[ny("A1", "B1", 9000), ny("A2", "B2", 1000)]).await;
        // The servicing system now also places B1 in Los Angeles: 08:00 there is 16:00Z.
        import_accounts(
            db,
            &[row("A1", "B1", 9000, "America/New_York;America/Los_Angeles", "", ""), ny("A2", "B2", 1000)],
            plan_at() + Duration::minutes(10),
        )
        .await;
        let early = at("2026-11-23T15:59:00Z");
        let lease = lease(db, &strategies, "ann", early).await.expect("the New York borrower");
        assert_eq!(lease.task.account_id, "A2", "{}: 07:59 in Los Angeles", test_db.backend);
        assert!(self::lease(db, &strategies, "bob", early).await.is_none());
        assert_eq!(human_task(db, "A1").await.state, "planned", "{}: it stays queued", test_db.backend);
        let lease = self::lease(db, &strategies, "bob", at("2026-11-23T16:00:00Z")).await.expect("08:00 in LA");
        assert_eq!(lease.task.account_id, "A1", "{}", test_db.backend);
        assert_eq!(lease.account.timezones, ["America/New_York", "America/Los_Angeles"]);
    }
}

#[tokio::test]
async fn lease_time_rechecks_take_tasks_out_of_the_queue() {
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        let names = ["FLAG", "PAID", "PROMISE", "DNC", "CAP", "COOL", "FEW", "OK"];
        let rows: Vec<String> =
            names.iter().enumerate().map(|(i, name)| ny(name, &format!("B{name}"), 9000 - i as u32 * 100)).collect();
        let strategies = book(db, &rows).await;
        let after = plan_at() + Duration::minutes(10);
        // What changed since the plan.
        let mut changed = rows.clone();
        changed[0] = row("FLAG", "BFLAG", 9000, "America/New_York", "", "attorney");
        changed[3] = row("DNC", "BDNC", 8700, "America/New_York", "", "do_not_call");
        import_accounts(db, &changed, after).await;
        import(
            db,
            ImportKind::Payments,
            "payments.csv",
            &["account_id,amount,paid_at,reference".into(), "PAID,890,2026-11-23T15:05:00Z,p1".into()],
            after,
        )
        .await;
        import(
            db,
            ImportKind::Promises,
            "promises.csv",
            &["account_id,amount,due_on,made_at".into(), "PROMISE,100,2026-11-30,2026-11-23T15:06:00Z".into()],
            after,
        )
        .await;
        let phone =
            |name: &str| row(name, &format!("B{name}"), 1, "UTC", "", "").split(',').nth(3).unwrap().to_string();
        let mut attempts = vec!["account_id,channel,phone,at,outcome".to_string()];
        for day in 17..=23 {
            attempts.push(format!("CAP,robot,{},2026-11-{day}T15:01:00Z,no_answer", phone("CAP")));
        }
        for day in 18..=23 {
            attempts.push(format!("FEW,robot,{},2026-11-{day}T15:01:00Z,no_answer", phone("FEW")));
        }
        attempts.push(format!("COOL,human,{},2026-11-23T15:02:00Z,rpc", phone("COOL")));
        import(db, ImportKind::Attempts, "attempts.csv", &attempts, after).await;

        let now = after + Duration::minutes(1);
        let first = lease(db, &strategies, "ann", now).await.expect("a task");
        assert_eq!(first.task.account_id, "FEW", "{}", test_db.backend);
        assert_eq!(first.task.calls_allowed, 1, "{}: 6 of us-reg-f's 7 calls in 7 days are made", test_db.backend);
        let second = lease(db, &strategies, "bob", now).await.expect("a task");
        assert_eq!(second.task.account_id, "OK");
        assert_eq!(second.task.calls_allowed, 2);
        assert!(lease(db, &strategies, "cat", now).await.is_none());
        // The payment in full cancelled PAID's task as it was imported (with its audit row on
        // the account); the others leave the queue at lease time.
        let paid = human_task(db, "PAID").await;
        assert_eq!((paid.state.as_str(), paid.state_reason.as_deref()), ("cancelled", Some("paid_in_full")));
        for (name, reason) in [
            ("FLAG", "flag:attorney"),
            ("PROMISE", "promise_open"),
            ("DNC", "flag:do_not_call"),
            ("CAP", "cap:calls_7d"),
            ("COOL", "cooldown:conversation"),
        ] {
            let task = human_task(db, name).await;
            assert_eq!(
                (task.state.as_str(), task.state_reason.as_deref()),
                ("cancelled", Some(reason)),
                "{}: {name}",
                test_db.backend
            );
            assert_eq!(audit_actions(db, &task.id.to_string()).await, ["task.cancelled"]);
        }
    }
}

#[tokio::test]
async fn attempts_and_their_effects() {
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        let b = test_db.backend;
        let strategies = book(
            db,
            &[
                row("R1", "BR1", 5000, "America/New_York", "robot", ""),
                row("R2", "BR2", 5000, "America/New_York", "robot", ""),
                ny("H1", "BH1", 5000),
                ny("H2", "BH2", 4000),
            ],
        )
        .await;
        let now = plan_at() + Duration::minutes(30);
        let robots1 = tasks_of(db, "R1").await;
        assert_eq!(robots1.len(), 3, "{b}: three robot attempts planned");
        // The dialler reports only on calls it was sent: release the first ones.
        let templates = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(templates.path().join("robot")).unwrap();
        std::fs::write(templates.path().join("robot/t.hbs"), "Hello").unwrap();
        let templates = arrears::strategy::MessageTemplates::load(templates.path(), &strategies).unwrap();
        let config = common::book::endpoints("http://127.0.0.1:9/hooks");
        let released =
            arrears::ops::release::release_due(db, &strategies, &fallback(), &templates, &config, now).await.unwrap();
        assert_eq!(released.dispatched, 2, "{b}: R1's and R2's first calls");

        // The dialler reports a promise on R1's first robot call.
        let mut promise = report("promise", now - Duration::minutes(1));
        promise.promise =
            Some(PromiseTerms { amount: "250.50".parse().unwrap(), due_on: "2026-11-27".parse().unwrap() });
        let recorded = record_attempt(
            db,
            &Rules::new(&strategies, &fallback()),
            robots1[0].id,
            &Actor::Dialler,
            promise.clone(),
            now,
        )
        .await
        .unwrap();
        assert_eq!(recorded.tasks_cancelled, [robots1[1].id, robots1[2].id], "{b}");
        let stored = promises::Entity::find().filter(promises::Column::AccountId.eq("R1")).all(db).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!((stored[0].status.as_str(), stored[0].attempt_id), ("open", Some(recorded.attempt_id)));
        assert_eq!(stored[0].amount, "250.50".parse().unwrap(), "{b}");
        let states: Vec<(String, Option<String>)> =
            tasks_of(db, "R1").await.into_iter().map(|task| (task.state, task.state_reason)).collect();
        assert_eq!(
            states,
            [
                ("done".into(), Some("attempted".into())),
                ("cancelled".into(), Some("promise_open".into())),
                ("cancelled".into(), Some("promise_open".into()))
            ],
            "{b}"
        );
        let again =
            record_attempt(db, &Rules::new(&strategies, &fallback()), robots1[0].id, &Actor::Dialler, promise, now)
                .await
                .unwrap();
        assert!(again.duplicate && again.attempt_id == recorded.attempt_id, "{b}: a repeated report changes nothing");

        // do_not_call on R2: the flag, and its other call tasks cancelled.
        let robots2 = tasks_of(db, "R2").await;
        let recorded = record_attempt(
            db,
            &Rules::new(&strategies, &fallback()),
            robots2[0].id,
            &Actor::Dialler,
            report("do_not_call", now),
            now,
        )
        .await
        .unwrap();
        assert_eq!(recorded.flags_set, [arrears::domain::Flag::DoNotCall]);
        assert_eq!(recorded.tasks_cancelled.len(), 2, "{b}");
        let account = accounts::Entity::find_by_id("R2").one(db).await.unwrap().unwrap();
        assert_eq!((account.flags.as_str(), account.engine_flags.as_str()), ("", "do_not_call"));
        assert_eq!(audit_actions(db, "R2").await, ["account.flag_set"]);

        // Who may report on what.
        let h1 = lease(db, &strategies, "ann", now).await.expect("H1");
        assert_eq!(h1.task.account_id, "H1");
        let denied = record_attempt(
            db,
            &Rules::new(&strategies, &fallback()),
            h1.task.id,
            &Actor::Dialler,
            report("no_answer", now),
            now,
        )
        .await;
        assert!(matches!(denied, Err(WorkError::NotYourLease(_))), "{b}: the dialler on a human task");
        let denied = record_attempt(
            db,
            &Rules::new(&strategies, &fallback()),
            h1.task.id,
            &Actor::Agent("bob".into()),
            report("no_answer", now),
            now,
        )
        .await;
        assert!(matches!(denied, Err(WorkError::NotYourLease(_))), "{b}: an agent without the lease");
        let h2 = human_task(db, "H2").await;
        let denied = record_attempt(
            db,
            &Rules::new(&strategies, &fallback()),
            h2.id,
            &Actor::Agent("ann".into()),
            report("no_answer", now),
            now,
        )
        .await;
        assert!(matches!(denied, Err(WorkError::NotYourLease(_))), "{b}: a task nobody leased to ann");
        let ann = Actor::Agent("ann".into());
        let invalid = |result: Result<work::AttemptRecorded, WorkError>| match result {
            Err(WorkError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        };
        assert_eq!(
            invalid(
                record_attempt(
                    db,
                    &Rules::new(&strategies, &fallback()),
                    h1.task.id,
                    &ann,
                    report("hung_up", now),
                    now
                )
                .await
            ),
            "outcome"
        );
        assert_eq!(
            invalid(
                record_attempt(
                    db,
                    &Rules::new(&strategies, &fallback()),
                    h1.task.id,
                    &ann,
                    report("promise", now),
                    now
                )
                .await
            ),
            "promise"
        );
        assert_eq!(
            invalid(
                record_attempt(
                    db,
                    &Rules::new(&strategies, &fallback()),
                    h1.task.id,
                    &ann,
                    report("callback", now),
                    now
                )
                .await
            ),
            "callback_at"
        );
        assert_eq!(
            invalid(
                record_attempt(
                    db,
                    &Rules::new(&strategies, &fallback()),
                    h1.task.id,
                    &ann,
                    report("rpc", now + Duration::hours(1)),
                    now
                )
                .await
            ),
            "at"
        );
        assert_eq!(
            invalid(
                record_attempt(
                    db,
                    &Rules::new(&strategies, &fallback()),
                    h1.task.id,
                    &ann,
                    report("wrong_number", now),
                    now
                )
                .await
            ),
            "phone"
        );

        // wrong_number marks the phone; callback stores its time; dispute flags and cancels.
        let phone = h1.account.phones[0].clone();
        let mut wrong = report("wrong_number", now - Duration::minutes(3));
        wrong.phone = Some(phone.clone());
        assert!(
            record_attempt(db, &Rules::new(&strategies, &fallback()), h1.task.id, &ann, wrong, now)
                .await
                .unwrap()
                .wrong_number_marked,
            "{b}"
        );
        let point = contact_points::Entity::find()
            .filter(contact_points::Column::Address.eq(phone.as_str()))
            .one(db)
            .await
            .unwrap()
            .unwrap();
        assert!(point.wrong_number, "{b}");
        let mut callback = report("callback", now - Duration::minutes(2));
        callback.callback_at = Some(at("2026-11-23T22:00:00Z"));
        callback.note = Some("after work".into());
        let recorded =
            record_attempt(db, &Rules::new(&strategies, &fallback()), h1.task.id, &ann, callback, now).await.unwrap();
        let attempt = attempts::Entity::find_by_id(recorded.attempt_id).one(db).await.unwrap().unwrap();
        assert_eq!(attempt.callback_at, Some(at("2026-11-23T22:00:00Z")), "{b}");
        assert_eq!((attempt.actor.as_deref(), attempt.task_id), (Some("agent:ann"), Some(h1.task.id)));
        assert_eq!((attempt.channel.as_str(), attempt.borrower_id.as_str()), ("human", "BH1"));
        let recorded = record_attempt(
            db,
            &Rules::new(&strategies, &fallback()),
            h1.task.id,
            &ann,
            report("dispute", now - Duration::minutes(1)),
            now,
        )
        .await
        .unwrap();
        assert_eq!(recorded.flags_set, [arrears::domain::Flag::Dispute], "{b}");
        let account = accounts::Entity::find_by_id("H1").one(db).await.unwrap().unwrap();
        assert_eq!((account.flags.as_str(), account.engine_flags.as_str()), ("", "dispute"));

        // An agent cannot report on a robot task.
        let denied = record_attempt(
            db,
            &Rules::new(&strategies, &fallback()),
            robots1[1].id,
            &ann,
            report("no_answer", now),
            now,
        )
        .await;
        assert!(matches!(denied, Err(WorkError::NotYourLease(_))), "{b}");
    }
}

#[tokio::test]
async fn promises_are_kept_or_broken_as_time_moves() {
    for test_db in common::all_dbs().await {
        let db = &test_db.db;
        let b = test_db.backend;
        let strategies = book(db, &[ny("KEEP", "BK", 9000), ny("BREAK", "BB", 8000)]).await;
        let now = plan_at() + Duration::minutes(5);
        for (agent, account) in [("ann", "KEEP"), ("bob", "BREAK")] {
            let lease = lease(db, &strategies, agent, now).await.expect("a task");
            assert_eq!(lease.task.account_id, account);
            let mut promise = report("promise", now);
            promise.promise =
                Some(PromiseTerms { amount: "100".parse().unwrap(), due_on: "2026-11-25".parse().unwrap() });
            record_attempt(
                db,
                &Rules::new(&strategies, &fallback()),
                lease.task.id,
                &Actor::Agent(agent.into()),
                promise,
                now,
            )
            .await
            .unwrap();
            work::complete(db, lease.task.id, agent, now).await.unwrap();
        }
        let pay = |reference: &str, account: &str, amount: &str, paid_at: &str| {
            vec!["account_id,amount,paid_at,reference".to_string(), format!("{account},{amount},{paid_at},{reference}")]
        };
        import(db, ImportKind::Payments, "p1.csv", &pay("k1", "KEEP", "60.25", "2026-11-24T15:00:00Z"), now).await;
        import(db, ImportKind::Payments, "p2.csv", &pay("b1", "BREAK", "99.99", "2026-11-24T15:00:00Z"), now).await;
        let day = |date: &str| at(&format!("{date}T15:00:00Z"));
        assert_eq!(evaluate_promises(db, day("2026-11-24"), 1).await.unwrap(), PromiseReport::default(), "{b}");
        import(db, ImportKind::Payments, "p3.csv", &pay("k2", "KEEP", "39.75", "2026-11-25T14:00:00Z"), now).await;
        assert_eq!(
            evaluate_promises(db, day("2026-11-25"), 1).await.unwrap(),
            PromiseReport { kept: 1, broken: 0 },
            "{b}: 60.25 + 39.75 reach 100"
        );
        // 2026-11-26 is the last day of grace in New York (due 25th + 1 day).
        assert_eq!(evaluate_promises(db, at("2026-11-27T04:59:00Z"), 1).await.unwrap(), PromiseReport::default());
        assert_eq!(
            evaluate_promises(db, at("2026-11-27T05:00:00Z"), 1).await.unwrap(),
            PromiseReport { kept: 0, broken: 1 },
            "{b}: midnight in New York"
        );
        assert_eq!(evaluate_promises(db, day("2026-11-28"), 1).await.unwrap(), PromiseReport::default());
        let status = |account: &'static str| async move {
            let rows = promises::Entity::find().filter(promises::Column::AccountId.eq(account)).all(db).await.unwrap();
            (rows[0].status.clone(), rows[0].resolved_at)
        };
        assert_eq!(status("KEEP").await, ("kept".to_string(), Some(day("2026-11-25"))), "{b}");
        assert_eq!(status("BREAK").await, ("broken".to_string(), Some(at("2026-11-27T05:00:00Z"))), "{b}");
        let broken = accounts::Entity::find_by_id("BREAK").one(db).await.unwrap().unwrap();
        assert_eq!(broken.broken_promises, 1, "{b}");
        let kept = accounts::Entity::find_by_id("KEEP").one(db).await.unwrap().unwrap();
        assert_eq!(kept.broken_promises, 0, "{b}");

        // The broken promise re-enters the strategy: the next plan routes it by broken_promises.
        arrears::ops::plan_and_persist(db, &strategies, day("2026-12-01"), false).await.unwrap();
        let queues: Vec<Option<String>> = tasks_of(db, "BREAK")
            .await
            .into_iter()
            .filter(|task| task.local_date == "2026-12-01".parse().unwrap())
            .map(|task| task.queue)
            .collect();
        assert_eq!(queues, [Some("second-chance".to_string())], "{b}");
    }
}
