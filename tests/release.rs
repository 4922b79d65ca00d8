//! The release loop, cancellation webhooks and robot-to-human escalation through the real
//! path: CSV imports, a strategy directory with SMS, e-mail, robot and human rules, a plan saved
//! at a fixed instant, then `release_due` at chosen instants, dialler outcomes, payments and
//! leases — on SQLite and (when `ARREARS_TEST_DATABASE_URL` is set) PostgreSQL. Deliveries are
//! enqueued in the outbox and, in one test, delivered to a real receiver on 127.0.0.1:0. Time
//! moves by passing a later `now`; nothing sleeps.

mod common;

use arrears::config::Config;
use arrears::dispatch::Dispatcher;
use arrears::import::ImportKind;
use arrears::ops::release::{ReleaseReport, release_due};
use arrears::ops::work::{Actor, AttemptReport, Rules, lease_next, record_attempt};
use arrears::policy::{Policy, PolicySettings};
use arrears::strategy::{LoadOptions, MessageTemplates, StrategySet};
use chrono::{DateTime, Duration, Utc};
use entity::{audit_log, deliveries, tasks};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

const HEADER: &str = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,due_date,tags,flags,consent_robot";

const STRATEGY: &str = r#"
name = "test"
policy = "cn-gbt-45251"
[stages]
late = { dpd = [1, 365] }

[[rule]]
name = "texts"
when = { tags_any = ["sms"] }
channel = "sms"
template = "sms/t"
windows = ["09:00-12:00"]

[[rule]]
name = "mails"
when = { tags_any = ["email"] }
channel = "email"
template = "email/t"
windows = ["09:00-12:00"]

[[rule]]
name = "robots"
when = { tags_any = ["robot"] }
channel = "robot"
template = "robot/t"
windows = ["09:00-20:00"]
attempts_per_day = 3
min_gap = "2h"
escalate = { after_failed_attempts = 3, queue = "early" }

[[rule]]
name = "agents"
channel = "human"
queue = "collectors"
calls_per_day = 2
"#;

/// Monday 2026-11-23, 08:30 in Shanghai.
fn plan_at() -> DateTime<Utc> {
    at("2026-11-23T00:30:00Z")
}

/// 09:05 in Shanghai: the SMS, e-mail and first robot windows are open.
fn morning() -> DateTime<Utc> {
    at("2026-11-23T01:05:00Z")
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn fallback() -> Policy {
    Policy::builtin("cn-gbt-45251", &PolicySettings::default()).unwrap()
}

/// The strategies, the compiled message templates, and the directory that holds them.
struct Setup {
    strategies: StrategySet,
    templates: MessageTemplates,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    setup_with(&Default::default())
}

/// [`setup`] with queue capacities.
fn setup_with(capacities: &std::collections::BTreeMap<String, arrears::domain::QueueCapacity>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let templates: PathBuf = dir.path().join("templates");
    for (name, text) in [
        ("sms/t", "Dear {{borrower.name}}, {{account.amount_due}} {{account.currency}} is due to {{lender.name}} & co"),
        ("email/t", "Hello {{borrower.name}}"),
        ("robot/t", "Robot for {{account.id}}, attempt {{task.attempt}}"),
    ] {
        let path = templates.join(format!("{name}.hbs"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let strategies_dir = dir.path().join("strategies");
    std::fs::create_dir_all(&strategies_dir).unwrap();
    std::fs::write(strategies_dir.join("test.toml"), STRATEGY).unwrap();
    let settings = PolicySettings::default();
    let options =
        LoadOptions { templates_dir: &templates, default_policy: "cn-gbt-45251", settings: &settings, capacities };
    let strategies = arrears::strategy::load_dir(&strategies_dir, &options).unwrap_or_else(|errors| panic!("{errors}"));
    let templates = MessageTemplates::load(&templates, &strategies).unwrap();
    Setup { strategies, templates, _dir: dir }
}

/// Endpoints for robot, SMS and human (none for e-mail), pointing at `url`.
fn config(url: &str) -> Config {
    let secret = arrears::dispatch::SigningSecret::generate();
    let mut text = String::from("public_url = \"https://arrears.example/\"\n");
    for name in ["robot", "sms", "human"] {
        text.push_str(&format!("[endpoints.{name}]\nurl = \"{url}\"\nsecret = \"{secret}\"\n"));
    }
    toml::from_str(&text).unwrap()
}

fn phone_of(borrower: &str) -> String {
    let number = 13_800_000_000u64 + borrower.bytes().map(u64::from).sum::<u64>() * 1000 + borrower.len() as u64;
    format!("+86{number}")
}

/// One accounts.csv row in Shanghai: the amount due is a tenth of the balance, due
/// 2026-11-01 (DPD 22), one phone and one e-mail per borrower.
fn row(account: &str, borrower: &str, zones: &str, tags: &str, flags: &str, amount_due: &str) -> String {
    format!(
        "{account},{borrower},Name {borrower},{},{}@mail.example,{zones},loan,CNY,{amount_due},9000,2026-11-01,{tags},{flags},true",
        phone_of(borrower),
        borrower.to_lowercase()
    )
}

fn sh(account: &str, tags: &str) -> String {
    row(account, &format!("B{account}"), "Asia/Shanghai", tags, "", "900")
}

async fn import(db: &DatabaseConnection, kind: ImportKind, lines: &[String], now: DateTime<Utc>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    arrears::import::import_file_at(db, kind, &path, now).await.unwrap_or_else(|error| panic!("{kind:?}: {error}"));
}

async fn import_accounts(db: &DatabaseConnection, rows: &[String], now: DateTime<Utc>) {
    let mut lines = vec![HEADER.to_string()];
    lines.extend(rows.iter().cloned());
    import(db, ImportKind::Accounts, &lines, now).await;
}

async fn pay(db: &DatabaseConnection, account: &str, amount: &str, paid_at: DateTime<Utc>) {
    let lines = [
        "account_id,amount,paid_at,reference".to_string(),
        format!("{account},{amount},{},ref-{account}-{}", paid_at.to_rfc3339(), paid_at.timestamp()),
    ];
    import(db, ImportKind::Payments, &lines, paid_at).await;
}

/// Imports the rows and saves a plan at `plan_at()`.
async fn book(db: &DatabaseConnection, rows: &[String]) -> Setup {
    import_accounts(db, rows, plan_at() - Duration::hours(1)).await;
    let setup = setup();
    arrears::ops::plan_and_persist(db, &setup.strategies, plan_at(), false).await.unwrap();
    setup
}

async fn release(db: &DatabaseConnection, setup: &Setup, config: &Config, now: DateTime<Utc>) -> ReleaseReport {
    release_due(db, &setup.strategies, &fallback(), &setup.templates, config, now).await.unwrap()
}

async fn tasks_of(db: &DatabaseConnection, account: &str) -> Vec<tasks::Model> {
    arrears::store::tasks_for_account(db, account).await.unwrap()
}

async fn state_of(db: &DatabaseConnection, id: i64) -> (String, Option<String>) {
    let task = tasks::Entity::find_by_id(id).one(db).await.unwrap().unwrap();
    (task.state, task.state_reason)
}

async fn outbox(db: &DatabaseConnection) -> Vec<deliveries::Model> {
    deliveries::Entity::find().order_by_asc(deliveries::Column::Id).all(db).await.unwrap()
}

fn body(delivery: &deliveries::Model) -> serde_json::Value {
    serde_json::from_str(&delivery.body).unwrap()
}

fn report(outcome: &str, when: DateTime<Utc>) -> AttemptReport {
    AttemptReport { outcome: outcome.into(), at: Some(when), ..AttemptReport::default() }
}

async fn actions(db: &DatabaseConnection, entity_id: &str) -> Vec<String> {
    audit_log::Entity::find()
        .filter(audit_log::Column::EntityId.eq(entity_id))
        .order_by_asc(audit_log::Column::Id)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.action)
        .collect()
}

#[tokio::test]
async fn release_enqueues_one_rendered_message_per_due_task_and_nothing_on_a_second_run() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[sh("S1", "sms"), sh("E1", "email"), sh("R1", "robot"), sh("H1", "")]).await;
        let config = config("http://127.0.0.1:9/hooks");
        let first = release(db, &setup, &config, morning()).await;
        assert_eq!(
            first,
            ReleaseReport { dispatched: 2, ready: 1, human_notified: 1, no_endpoint: 1, ..ReleaseReport::default() },
            "{b}: SMS and the first robot call out, the agents' task ready, no e-mail endpoint"
        );
        let sms = tasks_of(db, "S1").await.remove(0);
        let robots = tasks_of(db, "R1").await;
        assert_eq!(robots.len(), 3, "{b}");
        assert_eq!(state_of(db, sms.id).await.0, "dispatched", "{b}");
        assert_eq!(state_of(db, robots[0].id).await.0, "dispatched", "{b}");
        assert_eq!(state_of(db, robots[1].id).await.0, "planned", "{b}: its window is not open");
        assert_eq!(tasks_of(db, "E1").await[0].state, "planned", "{b}: kept for when an endpoint exists");
        assert_eq!(tasks_of(db, "H1").await[0].state, "ready", "{b}");

        let sent = outbox(db).await;
        assert_eq!(sent.len(), 3, "{b}");
        let of = |task: i64| sent.iter().find(|d| d.task_id == Some(task)).unwrap().clone();
        let sms_delivery = of(sms.id);
        assert_eq!(
            (sms_delivery.webhook_id.as_str(), sms_delivery.endpoint.as_str(), sms_delivery.event.as_str()),
            (format!("task_{}_ready", sms.id).as_str(), "sms", "task.ready")
        );
        let data = &body(&sms_delivery)["data"];
        assert_eq!(data["message"], "Dear Name BS1, 900 CNY is due to Example Finance & co", "{b}: no HTML escaping");
        assert_eq!(data["to"], phone_of("BS1"));
        assert_eq!(data["channel"], "sms");
        assert_eq!(data["callback_url"], format!("https://arrears.example/v1/tasks/{}/attempts", sms.id));
        assert_eq!(data["not_before"], "2026-11-23T09:00:00+08:00", "{b}: at the borrower's offset");
        let robot = body(&of(robots[0].id));
        assert_eq!(robot["data"]["message"], "Robot for R1, attempt 1");
        assert_eq!(robot["data"]["to"], phone_of("BR1"));
        let human = of(tasks_of(db, "H1").await[0].id);
        assert_eq!((human.endpoint.as_str(), body(&human)["data"]["queue"].as_str()), ("human", Some("collectors")));

        let second = release(db, &setup, &config, morning() + Duration::seconds(5)).await;
        assert_eq!(second, ReleaseReport { no_endpoint: 1, ..ReleaseReport::default() }, "{b}");
        assert_eq!(outbox(db).await.len(), 3, "{b}: a second release adds nothing");
        assert_eq!(actions(db, &sms.id.to_string()).await, ["task.dispatched"], "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_releases_send_each_task_once() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let rows: Vec<String> = (0..300).map(|n| sh(&format!("S{n:03}"), "sms")).collect();
        let setup = Arc::new(book(db, &rows).await);
        let config = Arc::new(config("http://127.0.0.1:9/hooks"));
        let mut runs = Vec::new();
        for _ in 0..4 {
            let (db, setup, config) = (db.clone(), setup.clone(), config.clone());
            runs.push(tokio::spawn(async move { release(&db, &setup, &config, morning()).await }));
        }
        let mut dispatched = 0;
        for run in runs {
            dispatched += run.await.unwrap().dispatched;
        }
        assert_eq!(dispatched, 300, "{b}: every task released once across the instances");
        let sent = outbox(db).await;
        let ids: HashSet<Option<i64>> = sent.iter().map(|delivery| delivery.task_id).collect();
        assert_eq!((sent.len(), ids.len()), (300, 300), "{b}");
        let audits =
            audit_log::Entity::find().filter(audit_log::Column::Action.eq("task.dispatched")).all(db).await.unwrap();
        assert_eq!(audits.len(), 300, "{b}: one state change per task");
    }
}

#[tokio::test]
async fn the_release_recheck_refuses_what_changed_since_planning() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let rows = [sh("PAID", "sms"), sh("ZERO", "sms"), sh("FLAG", "sms"), sh("DNC", "robot"), sh("DNCS", "sms")];
        let setup = book(db, &rows).await;
        let config = config("http://127.0.0.1:9/hooks");
        // Between planning and release: a payment in full, an amount due brought to zero by the
        // servicing system, a hard-stop flag, and do_not_call (which stops calls, not texts).
        pay(db, "PAID", "900", plan_at() + Duration::minutes(10)).await;
        import_accounts(
            db,
            &[
                row("ZERO", "BZERO", "Asia/Shanghai", "sms", "", "0"),
                row("FLAG", "BFLAG", "Asia/Shanghai", "sms", "bankruptcy", "900"),
                row("DNC", "BDNC", "Asia/Shanghai", "robot", "do_not_call", "900"),
                row("DNCS", "BDNCS", "Asia/Shanghai", "sms", "do_not_call", "900"),
            ],
            plan_at() + Duration::minutes(11),
        )
        .await;
        let report = release(db, &setup, &config, morning()).await;
        assert_eq!((report.dispatched, report.cancelled), (1, 3), "{b}: {report:?}");
        let sent = outbox(db).await;
        assert_eq!(sent.len(), 1, "{b}");
        assert_eq!(sent[0].task_id, Some(tasks_of(db, "DNCS").await[0].id), "{b}: texts still go");
        for (account, reason) in
            [("PAID", "paid_in_full"), ("ZERO", "not_due"), ("FLAG", "flag:bankruptcy"), ("DNC", "flag:do_not_call")]
        {
            let task = tasks_of(db, account).await.remove(0);
            assert_eq!(
                (task.state.as_str(), task.state_reason.as_deref()),
                ("cancelled", Some(reason)),
                "{b}: {account}"
            );
        }
        assert_eq!(actions(db, &tasks_of(db, "ZERO").await[0].id.to_string()).await, ["task.cancelled"]);
    }
}

#[tokio::test]
async fn outside_the_hours_a_task_waits_and_a_closed_window_expires() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[sh("H1", ""), sh("S1", "sms")]).await;
        // The servicing system now also places H1's borrower in London: 01:05 there.
        import_accounts(
            db,
            &[row("H1", "BH1", "Asia/Shanghai;Europe/London", "", "", "900")],
            plan_at() + Duration::minutes(5),
        )
        .await;
        let config = config("http://127.0.0.1:9/hooks");
        let report = release(db, &setup, &config, morning()).await;
        assert_eq!((report.waiting, report.ready, report.dispatched), (1, 0, 1), "{b}: {report:?}");
        let human = tasks_of(db, "H1").await.remove(0);
        assert_eq!(human.state, "planned", "{b}: it stays planned");
        // 08:00 in London (16:00 in Shanghai): released. The SMS window (09:00-12:00 Shanghai)
        // closed long ago: that dispatched task, never reported, expires too (its message, were
        // it still unsent, would be voided).
        let report = release(db, &setup, &config, at("2026-11-23T08:00:00Z")).await;
        assert_eq!((report.ready, report.expired), (1, 1), "{b}: {report:?}");
        assert_eq!(state_of(db, human.id).await.0, "ready", "{b}");
        let sms = tasks_of(db, "S1").await.remove(0);
        assert_eq!(state_of(db, sms.id).await, ("expired".into(), Some("window_closed".into())), "{b}");

        // E-mail without an endpoint stays planned until its window closes: then expired.
        let test_db2 = common::sqlite_db().await;
        let db2 = &test_db2.db;
        let setup2 = book(db2, &[sh("E1", "email")]).await;
        let task = tasks_of(db2, "E1").await.remove(0);
        assert_eq!(release(db2, &setup2, &config, morning()).await.no_endpoint, 1);
        let report = release(db2, &setup2, &config, at("2026-11-23T04:00:00Z")).await;
        assert_eq!(report.expired, 1, "{report:?}");
        assert_eq!(state_of(db2, task.id).await, ("expired".into(), Some("window_closed".into())));
        assert_eq!(actions(db2, &task.id.to_string()).await, ["task.expired"]);
    }
}

#[tokio::test]
async fn min_gap_since_an_actual_attempt_delays_the_next_robot_call() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[sh("R1", "robot")]).await;
        let config = config("http://127.0.0.1:9/hooks");
        let robots = tasks_of(db, "R1").await;
        let second = robots[1].clone();
        // A call placed outside the engine half an hour before the second window opens.
        let called = second.not_before - Duration::minutes(30);
        let lines = [
            "account_id,channel,phone,at,outcome".to_string(),
            format!("R1,robot,{},{},no_answer", phone_of("BR1"), called.to_rfc3339()),
        ];
        import(db, ImportKind::Attempts, &lines, called).await;
        let report = release(db, &setup, &config, second.not_before).await;
        assert_eq!(report.dispatched, 0, "{b}: 2h have not passed: {report:?}");
        assert_eq!(state_of(db, second.id).await.0, "planned", "{b}");
        let report = release(db, &setup, &config, called + Duration::hours(2)).await;
        assert_eq!(report.dispatched, 1, "{b}: {report:?}");
        assert_eq!(state_of(db, second.id).await.0, "dispatched", "{b}");
    }
}

#[tokio::test]
async fn a_payment_after_dispatch_sends_task_cancelled() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[sh("R1", "robot"), sh("S1", "sms")]).await;
        let (seen, url) = common::book::receiver().await;
        let config = config(&url);
        assert_eq!(release(db, &setup, &config, morning()).await.dispatched, 2, "{b}");
        let dispatcher = Dispatcher::from_config(&config).unwrap();
        let delivered = dispatcher.deliver_due(db, &setup.strategies, &fallback(), morning()).await.unwrap();
        assert_eq!(delivered.delivered, 2, "{b}: both task.ready delivered before the payment");
        let robots = tasks_of(db, "R1").await;
        pay(db, "R1", "900", morning() + Duration::minutes(1)).await;
        assert_eq!(state_of(db, robots[0].id).await, ("cancelled".into(), Some("paid_in_full".into())), "{b}");
        assert_eq!(state_of(db, robots[1].id).await, ("cancelled".into(), Some("paid_in_full".into())), "{b}");
        let cancellations: Vec<deliveries::Model> =
            outbox(db).await.into_iter().filter(|delivery| delivery.event == "task.cancelled").collect();
        assert_eq!(cancellations.len(), 1, "{b}: only the dispatched task was announced");
        assert_eq!(cancellations[0].webhook_id, format!("task_{}_cancelled", robots[0].id));
        assert_eq!(cancellations[0].endpoint, "robot");
        let data = &body(&cancellations[0])["data"];
        assert_eq!((data["reason"].as_str(), data["account_id"].as_str()), (Some("paid_in_full"), Some("R1")));

        let delivered =
            dispatcher.deliver_due(db, &setup.strategies, &fallback(), morning() + Duration::minutes(2)).await.unwrap();
        assert_eq!(delivered.delivered, 1, "{b}: the task.cancelled");
        let ids: HashSet<String> = seen.lock().unwrap().iter().map(|(id, _)| id.clone()).collect();
        assert!(ids.contains(&format!("task_{}_ready", robots[0].id)), "{b}");
        assert!(ids.contains(&format!("task_{}_cancelled", robots[0].id)), "{b}");
    }
}

#[tokio::test]
async fn failed_robot_attempts_escalate_to_a_human_queue_with_context() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[sh("R1", "robot")]).await;
        let config = config("http://127.0.0.1:9/hooks");
        // Two unanswered robot calls on the days before.
        let mut lines = vec!["account_id,channel,phone,at,outcome".to_string()];
        for day in ["2026-11-21", "2026-11-22"] {
            lines.push(format!("R1,robot,{},{day}T02:00:00Z,no_answer", phone_of("BR1")));
        }
        import(db, ImportKind::Attempts, &lines, plan_at()).await;
        assert_eq!(release(db, &setup, &config, morning()).await.dispatched, 1, "{b}");
        let robots = tasks_of(db, "R1").await;
        let now = morning() + Duration::minutes(15);
        let mut busy = report("busy", now - Duration::minutes(1));
        busy.phone = Some(phone_of("BR1"));
        let recorded =
            record_attempt(db, &Rules::new(&setup.strategies, &fallback()), robots[0].id, &Actor::Dialler, busy, now)
                .await
                .unwrap();
        let escalation = recorded.escalation.expect("the third failure escalates");
        assert_eq!((escalation.trigger.as_str(), escalation.queue.as_str()), ("failed_attempts", "early"), "{b}");
        assert_eq!(escalation.robot_tasks_escalated, [robots[1].id, robots[2].id], "{b}");
        assert_eq!(state_of(db, robots[0].id).await, ("done".into(), Some("attempted".into())), "{b}");
        assert_eq!(state_of(db, robots[1].id).await, ("escalated".into(), Some("escalated:failed_attempts".into())));
        let human_id = escalation.human_task.expect("a human task");
        let human = tasks::Entity::find_by_id(human_id).one(db).await.unwrap().unwrap();
        assert_eq!((human.channel.as_str(), human.queue.as_deref()), ("human", Some("early")), "{b}");
        assert_eq!((human.not_before, human.not_after), (now, at("2026-11-23T14:00:00Z")), "{b}: until 22:00");
        assert_eq!(human.calls_allowed, 3, "{b}");
        let context: serde_json::Value = serde_json::from_str(human.context.as_deref().unwrap()).unwrap();
        assert_eq!(context["trigger"], "failed_attempts");
        assert_eq!(context["attempts"].as_array().unwrap().len(), 3, "{b}: {context}");
        assert_eq!(context["escalated_from"], robots[0].id);

        // The agents of the queue get it, with its context.
        let lease =
            lease_next(db, &Rules::new(&setup.strategies, &fallback()), "early", "ann", now, Duration::minutes(5))
                .await
                .unwrap()
                .expect("the escalated task is leasable");
        assert_eq!(lease.task.id, human_id, "{b}");
        assert_eq!(lease.task.context.as_ref().map(|c| c["trigger"].clone()), Some("failed_attempts".into()));
        assert_eq!(actions(db, &human_id.to_string()).await, ["task.escalation_created", "task.leased"], "{b}");
    }
}

#[tokio::test]
async fn a_queue_at_capacity_takes_no_escalation_and_the_robot_keeps_calling_until_there_is_room() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let accounts: Vec<String> = (1..=4).map(|n| sh(&format!("R{n}"), "robot")).collect();
        let setup = book(db, &accounts).await;
        // The `early` queue: one agent from 09:00 to 10:00 in Shanghai, two calls an hour.
        let mut agents_by_hour = [0; 24];
        agents_by_hour[9] = 1;
        let early = arrears::domain::QueueCapacity {
            zone: "Asia/Shanghai".parse().unwrap(),
            calls_per_agent_hour: 2.0,
            agents_by_hour,
        };
        let limited = setup_with(&std::collections::BTreeMap::from([("early".to_string(), early)]));
        let policy = fallback();
        let rules = Rules::new(&limited.strategies, &policy);
        let config = config("http://127.0.0.1:9/hooks");
        let mut lines = vec!["account_id,channel,phone,at,outcome".to_string()];
        for n in 1..=4 {
            for day in ["2026-11-21", "2026-11-22"] {
                lines.push(format!("R{n},robot,{},{day}T02:00:00Z,no_answer", phone_of(&format!("BR{n}"))));
            }
        }
        import(db, ImportKind::Attempts, &lines, plan_at()).await;
        assert_eq!(release(db, &setup, &config, morning()).await.dispatched, 4, "{b}");
        let now = morning() + Duration::minutes(15);
        let fail = |account: &'static str| {
            let db = db.clone();
            async move {
                let robots = tasks_of(&db, account).await;
                let mut busy = report("busy", now - Duration::minutes(1));
                busy.phone = Some(phone_of(&format!("B{account}")));
                let recorded = record_attempt(&db, &rules, robots[0].id, &Actor::Dialler, busy, now).await.unwrap();
                (robots, recorded.escalation.expect("the third failure asks for a person"))
            }
        };
        // Two calls are left today (09:15, the hour counts in full): two escalations fit.
        for account in ["R1", "R2"] {
            let (_, escalation) = fail(account).await;
            assert!(escalation.human_task.is_some() && escalation.refused.is_none(), "{b} {account}: {escalation:?}");
        }
        // The third finds two open tasks for two calls: refused, and the robot keeps the account.
        let (robots, escalation) = fail("R3").await;
        assert_eq!((escalation.human_task, escalation.refused.as_deref()), (None, Some("capacity:early")), "{b}");
        assert!(escalation.robot_tasks_escalated.is_empty(), "{b}");
        assert_eq!(state_of(db, robots[1].id).await.0, "planned", "{b}: the robot's next call stays planned");
        assert_eq!(actions(db, "R3").await, ["account.escalation_refused"], "{b}");
        assert_eq!(
            tasks_of(db, "R3")
                .await
                .iter()
                .filter(|task| task.channel == "human" && task.queue.as_deref() == Some("early"))
                .count(),
            0,
            "{b}"
        );

        // The agent works one: room again, and the next escalation is taken.
        let lease = lease_next(db, &rules, "early", "ann", now, Duration::minutes(5)).await.unwrap().expect("work");
        arrears::ops::work::complete(db, lease.task.id, "ann", now + Duration::minutes(3)).await.unwrap();
        let (_, escalation) = fail("R4").await;
        assert!(escalation.human_task.is_some(), "{b}: {escalation:?}");
    }
}

#[tokio::test]
async fn a_callback_escalates_at_once_from_the_time_asked() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[sh("R1", "robot"), sh("R2", "robot")]).await;
        let config = config("http://127.0.0.1:9/hooks");
        assert_eq!(release(db, &setup, &config, morning()).await.dispatched, 2, "{b}");
        let now = morning() + Duration::minutes(10);

        let r1 = tasks_of(db, "R1").await;
        let mut callback = report("callback", now);
        callback.callback_at = Some(now + Duration::hours(1));
        let recorded =
            record_attempt(db, &Rules::new(&setup.strategies, &fallback()), r1[0].id, &Actor::Dialler, callback, now)
                .await
                .unwrap();
        let escalation = recorded.escalation.expect("a callback escalates at once");
        assert_eq!(escalation.trigger, "callback", "{b}");
        let human = tasks::Entity::find_by_id(escalation.human_task.unwrap()).one(db).await.unwrap().unwrap();
        assert_eq!(human.not_before, now + Duration::hours(1), "{b}: from the time asked");
        let lease = |when: DateTime<Utc>, agent: &'static str| {
            let strategies = setup.strategies.clone();
            let db = db.clone();
            async move {
                lease_next(&db, &Rules::new(&strategies, &fallback()), "early", agent, when, Duration::minutes(5))
                    .await
                    .unwrap()
            }
        };
        assert!(lease(now, "ann").await.is_none(), "{b}: not before the callback time");
        assert_eq!(lease(now + Duration::hours(1), "ann").await.map(|l| l.task.id), Some(human.id), "{b}");

        // A callback asked for after the contact hours (22:30 in Shanghai): no human task; the
        // refusal names the hours.
        let r2 = tasks_of(db, "R2").await;
        let mut late = report("callback", now);
        late.callback_at = Some(at("2026-11-23T14:30:00Z"));
        let recorded =
            record_attempt(db, &Rules::new(&setup.strategies, &fallback()), r2[0].id, &Actor::Dialler, late, now)
                .await
                .unwrap();
        let escalation = recorded.escalation.expect("escalated");
        assert_eq!((escalation.human_task, escalation.refused.as_deref()), (None, Some("hours")), "{b}");
        assert_eq!(state_of(db, r2[1].id).await.0, "escalated", "{b}: the robot stops all the same");
        assert_eq!(actions(db, "R2").await, ["account.escalation_refused"], "{b}");
    }
}
