//! What a receiver notices about the outbox's claim-time check, through the real path: CSV
//! imports, a strategy under `us-reg-f` (contact hours 08:00-21:00) for borrowers in New York, a
//! plan, `release_due`, and the real `Dispatcher` posting to a receiver on 127.0.0.1:0 that
//! answers 503, `Retry-After`, holds a request, or comes back up — on SQLite and (when
//! `ARREARS_TEST_DATABASE_URL` is set) PostgreSQL. Time moves by passing a later `now`;
//! nothing sleeps beyond a loopback call.

mod common;

use arrears::config::Config;
use arrears::dispatch::{DeliveryReport, Dispatcher, RECHECK_AFTER};
use arrears::import::ImportKind;
use arrears::ops::deliveries::ReplayRequest;
use arrears::ops::release::release_due;
use arrears::policy::{Policy, PolicySettings};
use arrears::store;
use arrears::strategy::{LoadOptions, MessageTemplates, StrategySet};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use entity::{audit_log, deliveries, tasks};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const HEADER: &str = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,due_date,tags,flags,consent_robot,opt_outs";

const STRATEGY: &str = r#"
name = "test"
policy = "us-reg-f"
[stages]
late = { dpd = [1, 365] }

[[rule]]
name = "texts"
when = { tags_any = ["sms"] }
channel = "sms"
template = "sms/t"
windows = ["09:00-12:00"]

[[rule]]
name = "evening robot"
when = { tags_any = ["robot"] }
channel = "robot"
template = "robot/t"
windows = ["20:00-21:00"]

[[rule]]
name = "agents"
channel = "human"
queue = "collectors"
calls_per_day = 2
"#;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Monday 2026-11-23, 06:00 in New York (UTC-5).
fn plan_at() -> DateTime<Utc> {
    at("2026-11-23T11:00:00Z")
}

/// 09:05 in New York: the SMS window (09:00-12:00) is open.
fn morning() -> DateTime<Utc> {
    at("2026-11-23T14:05:00Z")
}

/// 12:00 in New York: the SMS window's end.
fn noon() -> DateTime<Utc> {
    at("2026-11-23T17:00:00Z")
}

/// 20:50 in New York: the robot window (20:00-21:00) is open, ten minutes of contact hours left.
fn evening() -> DateTime<Utc> {
    at("2026-11-24T01:50:00Z")
}

/// 21:00 in New York: the robot window and `us-reg-f`'s contact hours end.
fn nine_pm() -> DateTime<Utc> {
    at("2026-11-24T02:00:00Z")
}

fn fallback() -> Policy {
    Policy::builtin("us-reg-f", &PolicySettings::default()).unwrap()
}

struct Setup {
    strategies: StrategySet,
    templates: MessageTemplates,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    for (name, text) in [("sms/t", "Dear {{borrower.name}}, {{account.amount_due}} is due"), ("robot/t", "Robot")] {
        let path = templates.join(format!("{name}.hbs"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let strategies_dir = dir.path().join("strategies");
    std::fs::create_dir_all(&strategies_dir).unwrap();
    std::fs::write(strategies_dir.join("test.toml"), STRATEGY).unwrap();
    let settings = PolicySettings::default();
    let options = LoadOptions {
        templates_dir: &templates,
        default_policy: "us-reg-f",
        settings: &settings,
        capacities: &Default::default(),
    };
    let strategies = arrears::strategy::load_dir(&strategies_dir, &options).unwrap_or_else(|errors| panic!("{errors}"));
    let templates = MessageTemplates::load(&templates, &strategies).unwrap();
    Setup { strategies, templates, _dir: dir }
}

/// Endpoints for robot, SMS and human, all at `url`; requests time out after 2 s.
fn config(url: &str) -> Config {
    let secret = arrears::dispatch::SigningSecret::generate();
    let mut text = String::from("public_url = \"https://arrears.example/\"\n");
    for name in ["robot", "sms", "human"] {
        text.push_str(&format!("[endpoints.{name}]\nurl = \"{url}\"\nsecret = \"{secret}\"\ntimeout = \"2s\"\n"));
    }
    toml::from_str(&text).unwrap()
}

/// The borrower's phones: two New York numbers.
fn phones_of(borrower: &str) -> [String; 2] {
    let n = borrower.bytes().map(u64::from).sum::<u64>() % 1000;
    [format!("+1212555{n:04}"), format!("+1212556{n:04}")]
}

/// One accounts.csv row: 900 due since 2026-11-01 (DPD 22), two phones, robot consent.
fn row(account: &str, zones: &str, tags: &str, flags: &str, opt_outs: &str) -> String {
    let borrower = format!("B{account}");
    let [first, second] = phones_of(&borrower);
    format!(
        "{account},{borrower},Name {borrower},{first};{second},{}@mail.example,{zones},loan,USD,900,9000,2026-11-01,{tags},{flags},true,{opt_outs}",
        borrower.to_lowercase()
    )
}

fn ny(account: &str, tags: &str) -> String {
    row(account, "America/New_York", tags, "", "")
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

async fn pay_in_full(db: &DatabaseConnection, account: &str, paid_at: DateTime<Utc>) {
    let lines = [
        "account_id,amount,paid_at,reference".to_string(),
        format!("{account},900,{},ref-{account}-{}", paid_at.to_rfc3339(), paid_at.timestamp()),
    ];
    import(db, ImportKind::Payments, &lines, paid_at).await;
}

async fn book(db: &DatabaseConnection, rows: &[String]) -> Setup {
    import_accounts(db, rows, plan_at() - Duration::hours(1)).await;
    let setup = setup();
    arrears::ops::plan_and_persist(db, &setup.strategies, plan_at(), false).await.unwrap();
    setup
}

/// What the receiver answers.
#[derive(Clone, Debug)]
enum Answer {
    Ok,
    Status(u16),
    RetryAfter(u16, u32),
    /// Takes the request, then answers 200 only once `Receiver::release` is notified.
    Hold,
}

struct Receiver {
    /// The answer to every request with that `webhook-id`.
    by_id: Mutex<HashMap<String, Answer>>,
    /// Answers for the next requests, then `default`.
    script: Mutex<VecDeque<Answer>>,
    default: Mutex<Answer>,
    /// The `webhook-id` of every request, in arrival order.
    seen: Mutex<Vec<String>>,
    release: tokio::sync::Notify,
}

impl Receiver {
    fn answer(&self, answer: Answer) {
        *self.default.lock().unwrap() = answer;
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, webhook_id: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|id| *id == webhook_id).count()
    }

    /// Waits (a loopback call's time) until `n` requests arrived.
    async fn wait_for(&self, n: usize) {
        for _ in 0..10_000 {
            if self.seen.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("the receiver did not get {n} requests: {:?}", self.seen());
    }
}

async fn hook(State(receiver): State<Arc<Receiver>>, headers: HeaderMap) -> Response {
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let by_id = receiver.by_id.lock().unwrap().get(&id).cloned();
    receiver.seen.lock().unwrap().push(id);
    let next = by_id.or_else(|| receiver.script.lock().unwrap().pop_front());
    let answer = next.unwrap_or_else(|| receiver.default.lock().unwrap().clone());
    match answer {
        Answer::Ok => StatusCode::OK.into_response(),
        Answer::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Answer::RetryAfter(code, seconds) => {
            (StatusCode::from_u16(code).unwrap(), [("retry-after", seconds.to_string())]).into_response()
        }
        Answer::Hold => {
            receiver.release.notified().await;
            StatusCode::OK.into_response()
        }
    }
}

/// A receiver on a fresh loopback port answering `answer` to everything.
async fn receiver(answer: Answer) -> (Arc<Receiver>, String) {
    let state = Arc::new(Receiver {
        by_id: Mutex::default(),
        script: Mutex::default(),
        default: Mutex::new(answer),
        seen: Mutex::default(),
        release: tokio::sync::Notify::new(),
    });
    let app = axum::Router::new().route("/hooks", axum::routing::post(hook)).with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

async fn release(db: &DatabaseConnection, setup: &Setup, config: &Config, now: DateTime<Utc>) {
    release_due(db, &setup.strategies, &fallback(), &setup.templates, config, now).await.unwrap();
}

async fn deliver(
    db: &DatabaseConnection,
    setup: &Setup,
    dispatcher: &Dispatcher,
    now: DateTime<Utc>,
) -> DeliveryReport {
    dispatcher.deliver_due(db, &setup.strategies, &fallback(), now).await.unwrap()
}

async fn only_task(db: &DatabaseConnection, account: &str) -> tasks::Model {
    let mut tasks = store::tasks_for_account(db, account).await.unwrap();
    assert_eq!(tasks.len(), 1, "{account}: {tasks:?}");
    tasks.remove(0)
}

async fn task(db: &DatabaseConnection, id: i64) -> (String, Option<String>) {
    let task = tasks::Entity::find_by_id(id).one(db).await.unwrap().unwrap();
    (task.state, task.state_reason)
}

async fn delivery(db: &DatabaseConnection, webhook_id: &str) -> Option<deliveries::Model> {
    deliveries::Entity::find().filter(deliveries::Column::WebhookId.eq(webhook_id)).one(db).await.unwrap()
}

fn ready_id(task: &tasks::Model) -> String {
    format!("task_{}_ready", task.id)
}

fn cancelled_id(task: &tasks::Model) -> String {
    format!("task_{}_cancelled", task.id)
}

/// `(action, detail)` of the audit rows about a task.
async fn audits(db: &DatabaseConnection, task: &tasks::Model) -> Vec<(String, serde_json::Value)> {
    audit_log::Entity::find()
        .filter(audit_log::Column::Entity.eq("task"))
        .filter(audit_log::Column::EntityId.eq(task.id.to_string()))
        .order_by_asc(audit_log::Column::Id)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.action, serde_json::from_str(&row.detail).unwrap()))
        .collect()
}

#[tokio::test]
async fn a_receiver_answering_503_retry_after_until_past_the_window_end_never_gets_that_task_ready_later() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[ny("S1", "sms")]).await;
        let (receiver, url) = receiver(Answer::RetryAfter(503, 3600)).await;
        let config = config(&url);
        let dispatcher = Dispatcher::from_config(&config).unwrap();
        release(db, &setup, &config, morning()).await;
        let sms = only_task(db, "S1").await;
        assert_eq!(sms.not_after, noon(), "{b}");

        // Down at 09:05, 10:05 and 11:05, each time asking to come back an hour later.
        let mut now = morning();
        for try_number in 1..=3 {
            let report = deliver(db, &setup, &dispatcher, now).await;
            assert_eq!((report.claimed, report.retrying), (1, 1), "{b}: try {try_number}");
            now = delivery(db, &ready_id(&sms)).await.unwrap().next_attempt_at;
            assert_eq!(now, morning() + Duration::hours(try_number), "{b}: Retry-After is honoured");
        }
        // Back up at 12:05, past the window's end: the message is not sent.
        receiver.answer(Answer::Ok);
        let report = deliver(db, &setup, &dispatcher, now).await;
        assert_eq!((report.claimed, report.voided, report.delivered), (1, 1, 0), "{b}: {report:?}");
        assert_eq!(receiver.seen(), vec![ready_id(&sms); 3], "{b}: only the three refused tries arrived");
        let ready = delivery(db, &ready_id(&sms)).await.unwrap();
        assert_eq!(
            (ready.state.as_str(), ready.void_reason.as_deref(), ready.tries),
            ("void", Some("window_closed"), 3),
            "{b}"
        );
        assert_eq!(task(db, sms.id).await, ("expired".into(), Some("window_closed".into())), "{b}");
        let (action, detail) = audits(db, &sms).await.pop().unwrap();
        assert_eq!(
            (action.as_str(), &detail["reason"], &detail["at"]),
            ("task.expired", &"window_closed".into(), &"outbox".into())
        );

        assert_eq!(deliver(db, &setup, &dispatcher, now + Duration::days(1)).await.claimed, 0, "{b}");
        assert_eq!(receiver.seen().len(), 3, "{b}");
    }
}

#[tokio::test]
async fn a_robot_endpoint_answering_503_at_20_50_gets_no_retry_after_the_contact_hours_or_the_window_end() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[ny("R1", "robot"), ny("R2", "robot")]).await;
        let (receiver, url) = receiver(Answer::Status(503)).await;
        let config = config(&url);
        let dispatcher = Dispatcher::from_config(&config).unwrap();
        release(db, &setup, &config, evening()).await;
        let (r1, r2) = (only_task(db, "R1").await, only_task(db, "R2").await);
        assert_eq!((r1.state.as_str(), r1.not_after), ("dispatched", nine_pm()), "{b}");
        let report = deliver(db, &setup, &dispatcher, evening()).await;
        assert_eq!(report.retrying, 2, "{b}: both refused at 20:50");

        // R2's borrower turns out to be in London too, where it is 01:50: outside the hours.
        import_accounts(db, &[row("R2", "America/New_York;Europe/London", "robot", "", "")], evening()).await;

        // Every 30 s until 21:30, the receiver answering 503 throughout.
        let mut waited = 0;
        let mut seen_at_nine = None;
        let mut now = evening() + Duration::seconds(30);
        while now <= nine_pm() + Duration::minutes(30) {
            if now >= nine_pm() && seen_at_nine.is_none() {
                seen_at_nine = Some(receiver.seen().len());
            }
            let report = deliver(db, &setup, &dispatcher, now).await;
            waited += report.waiting;
            if now < nine_pm() {
                assert_eq!(delivery(db, &ready_id(&r2)).await.unwrap().tries, 1, "{b}: waiting counts no try");
            }
            now += Duration::seconds(30);
        }
        assert!(waited >= 9, "{b}: R2's message waited, checked again every {RECHECK_AFTER}: {waited}");
        assert_eq!(receiver.count(&ready_id(&r2)), 1, "{b}: R2 was tried at 20:50 only");
        assert_eq!(receiver.count(&ready_id(&r1)), 3, "{b}: R1 at 20:50, 20:50:30 and 20:55:30, none later");
        assert_eq!(receiver.seen().len(), seen_at_nine.unwrap(), "{b}: nothing reached the dialler after 21:00");
        for robot in [&r1, &r2] {
            let ready = delivery(db, &ready_id(robot)).await.unwrap();
            assert_eq!((ready.state.as_str(), ready.void_reason.as_deref()), ("void", Some("window_closed")), "{b}");
            assert_eq!(task(db, robot.id).await, ("expired".into(), Some("window_closed".into())), "{b}");
        }
    }
}

#[tokio::test]
async fn an_account_paid_in_full_while_its_task_ready_is_pending_sends_neither_ready_nor_cancelled() {
    for test_db in common::all_dbs().await {
        let app = common::app::spawn_app(test_db).await;
        let (db, b) = (&app.db.db, app.backend());
        let setup = book(db, &[ny("S1", "sms"), ny("S2", "sms")]).await;
        let (receiver, url) = receiver(Answer::Status(503)).await;
        let config = config(&url);
        let dispatcher = Dispatcher::from_config(&config).unwrap();
        release(db, &setup, &config, morning()).await;
        let (s1, s2) = (only_task(db, "S1").await, only_task(db, "S2").await);
        assert_eq!(deliver(db, &setup, &dispatcher, morning()).await.retrying, 2, "{b}: the receiver is down");

        pay_in_full(db, "S1", morning() + Duration::minutes(1)).await;
        assert_eq!(task(db, s1.id).await, ("cancelled".into(), Some("paid_in_full".into())), "{b}");
        let ready = delivery(db, &ready_id(&s1)).await.unwrap();
        assert_eq!((ready.state.as_str(), ready.void_reason.as_deref()), ("void", Some("paid_in_full")), "{b}");
        assert!(delivery(db, &cancelled_id(&s1)).await.is_none(), "{b}: nothing to cancel: it was never announced");

        // The receiver is back: S2's message arrives, nothing about S1 does.
        receiver.answer(Answer::Ok);
        let report = deliver(db, &setup, &dispatcher, morning() + Duration::minutes(2)).await;
        assert_eq!((report.claimed, report.delivered), (1, 1), "{b}: {report:?}");
        assert_eq!(deliver(db, &setup, &dispatcher, morning() + Duration::hours(1)).await.claimed, 0, "{b}");
        assert_eq!(receiver.count(&ready_id(&s1)), 1, "{b}: only the refused try before the payment");
        assert_eq!(receiver.count(&cancelled_id(&s1)), 0, "{b}");
        assert_eq!(receiver.count(&ready_id(&s2)), 2, "{b}");

        // The void message is listed with its reason, over the API and by the CLI.
        let admin = Some(app.tokens.admin.as_str());
        let listed: serde_json::Value = app.get("/v1/deliveries?state=void", admin).await.json().await.unwrap();
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{b}: {listed}");
        assert_eq!(
            (&listed[0]["webhook_id"], &listed[0]["void_reason"]),
            (&ready_id(&s1).into(), &"paid_in_full".into())
        );
        assert_eq!(listed[0]["state"], "void");
        let settings = common::app::settings(&app.db, &app.strategies_dir);
        let mut out = Vec::new();
        arrears::ops::deliveries::list_command(&settings, "void", 100, &mut out).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(&ready_id(&s1)) && out.contains("void: paid_in_full"), "{b}: {out}");
        assert!(out.contains("1 void deliveries"), "{out}");
    }
}

#[tokio::test]
async fn a_cancellation_waits_while_its_task_ready_is_being_sent_and_arrives_after_it() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = Arc::new(book(db, &[ny("S1", "sms")]).await);
        let (receiver, url) = receiver(Answer::Ok).await;
        receiver.script.lock().unwrap().push_back(Answer::Hold);
        let config = config(&url);
        let dispatcher = Dispatcher::from_config(&config).unwrap();
        release(db, &setup, &config, morning()).await;
        let sms = only_task(db, "S1").await;

        // Worker A sends the task.ready; the receiver holds the request.
        let sending = {
            let (db, setup, dispatcher) = (db.clone(), Arc::clone(&setup), dispatcher.clone());
            tokio::spawn(async move { deliver(&db, &setup, &dispatcher, morning()).await })
        };
        receiver.wait_for(1).await;

        // Paid in full meanwhile: the message being sent is not voided; a cancellation is owed.
        pay_in_full(db, "S1", morning() + Duration::seconds(1)).await;
        assert_eq!(delivery(db, &ready_id(&sms)).await.unwrap().state, "pending", "{b}: being sent");
        assert_eq!(delivery(db, &cancelled_id(&sms)).await.unwrap().state, "pending", "{b}");

        // Worker B claims the cancellation before the task.ready was acknowledged: it waits.
        let report = deliver(db, &setup, &dispatcher, morning() + Duration::seconds(2)).await;
        assert_eq!((report.claimed, report.waiting, report.delivered), (1, 1, 0), "{b}: {report:?}");
        assert_eq!(receiver.seen(), [ready_id(&sms)], "{b}: the cancellation did not overtake the task.ready");
        let cancelled = delivery(db, &cancelled_id(&sms)).await.unwrap();
        assert_eq!((cancelled.tries, cancelled.next_attempt_at), (0, morning() + dispatcher.hold), "{b}");

        receiver.release.notify_one();
        assert_eq!(sending.await.unwrap().delivered, 1, "{b}");
        assert_eq!(delivery(db, &ready_id(&sms)).await.unwrap().state, "delivered", "{b}");
        let report = deliver(db, &setup, &dispatcher, morning() + dispatcher.hold).await;
        assert_eq!(report.delivered, 1, "{b}: {report:?}");
        assert_eq!(receiver.seen(), [ready_id(&sms), cancelled_id(&sms)], "{b}: task.cancelled after task.ready");
    }
}

#[tokio::test]
async fn a_dead_letter_replayed_after_the_tasks_day_is_voided_not_sent() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[ny("S1", "sms")]).await;
        let (receiver, url) = receiver(Answer::Status(500)).await;
        let config = config(&url);
        let dispatcher = Dispatcher::from_config(&config).unwrap();
        release(db, &setup, &config, morning()).await;
        let sms = only_task(db, "S1").await;
        assert_eq!(deliver(db, &setup, &dispatcher, morning()).await.retrying, 1, "{b}");
        // Its last try fails: a dead letter (as left by an earlier version, or a longer window).
        let retry = morning() + Duration::seconds(10);
        let claimed = store::claim_due_deliveries(db, retry, 10, retry + dispatcher.hold).await.unwrap();
        let last = store::TryResult::Failed { status: Some(500), error: "HTTP 500".into(), retry_at: None };
        assert!(store::record_try(db, claimed[0].id, &claimed[0].claim_token, &last, retry).await.unwrap());
        assert_eq!(delivery(db, &ready_id(&sms)).await.unwrap().state, "dead", "{b}");

        // Replayed two days later, with the receiver up: voided when its turn comes.
        receiver.answer(Answer::Ok);
        let later = morning() + Duration::days(2);
        let replayed = arrears::ops::deliveries::replay(db, &ReplayRequest::default(), later).await.unwrap();
        assert_eq!(replayed.requeued, 1, "{b}");
        let report = deliver(db, &setup, &dispatcher, later).await;
        assert_eq!((report.claimed, report.voided, report.delivered), (1, 1, 0), "{b}: {report:?}");
        assert_eq!(receiver.seen(), [ready_id(&sms)], "{b}: only the first, refused try arrived");
        let ready = delivery(db, &ready_id(&sms)).await.unwrap();
        assert_eq!((ready.state.as_str(), ready.void_reason.as_deref()), ("void", Some("window_closed")), "{b}");
        assert_eq!(task(db, sms.id).await, ("expired".into(), Some("window_closed".into())), "{b}");
        let again = arrears::ops::deliveries::replay(db, &ReplayRequest::default(), later).await.unwrap();
        assert_eq!(again.requeued, 0, "{b}: a void message is not a dead letter");
    }
}

#[tokio::test]
async fn the_expiry_sweep_expires_a_dispatched_task_and_voids_its_unsent_task_ready() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[ny("S1", "sms"), ny("S2", "sms")]).await;
        let (receiver, url) = receiver(Answer::Ok).await;
        let config = config(&url);
        let dispatcher = Dispatcher::from_config(&config).unwrap();
        release(db, &setup, &config, morning()).await;
        let (s1, s2) = (only_task(db, "S1").await, only_task(db, "S2").await);
        receiver.by_id.lock().unwrap().insert(ready_id(&s1), Answer::Status(503));
        let report = deliver(db, &setup, &dispatcher, morning()).await;
        assert_eq!((report.retrying, report.delivered), (1, 1), "{b}: S1 refused, S2 delivered");

        let report = release_due(db, &setup.strategies, &fallback(), &setup.templates, &config, noon()).await.unwrap();
        assert_eq!(report.expired, 2, "{b}: both dispatched tasks, unreported at their window's end");
        for sms in [&s1, &s2] {
            assert_eq!(task(db, sms.id).await, ("expired".into(), Some("window_closed".into())), "{b}");
            assert_eq!(audits(db, sms).await.last().unwrap().0, "task.expired", "{b}");
        }
        let unsent = delivery(db, &ready_id(&s1)).await.unwrap();
        assert_eq!((unsent.state.as_str(), unsent.void_reason.as_deref()), ("void", Some("window_closed")), "{b}");
        assert_eq!(delivery(db, &ready_id(&s2)).await.unwrap().state, "delivered", "{b}: delivered stays delivered");
        assert_eq!(deliver(db, &setup, &dispatcher, noon() + Duration::minutes(1)).await.claimed, 0, "{b}");
        assert_eq!(receiver.count(&ready_id(&s1)), 1, "{b}");
    }
}

#[tokio::test]
async fn a_dispute_raised_while_the_task_ready_is_pending_voids_it_and_cancels_the_task() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[ny("S1", "sms")]).await;
        let (receiver, url) = receiver(Answer::Status(503)).await;
        let config = config(&url);
        let dispatcher = Dispatcher::from_config(&config).unwrap();
        release(db, &setup, &config, morning()).await;
        let sms = only_task(db, "S1").await;
        deliver(db, &setup, &dispatcher, morning()).await;
        import_accounts(db, &[row("S1", "America/New_York", "sms", "dispute", "")], morning()).await;

        receiver.answer(Answer::Ok);
        let report = deliver(db, &setup, &dispatcher, morning() + Duration::seconds(10)).await;
        assert_eq!((report.voided, report.delivered), (1, 0), "{b}: {report:?}");
        let ready = delivery(db, &ready_id(&sms)).await.unwrap();
        assert_eq!((ready.state.as_str(), ready.void_reason.as_deref()), ("void", Some("flag:dispute")), "{b}");
        assert_eq!(task(db, sms.id).await, ("cancelled".into(), Some("flag:dispute".into())), "{b}");
        let (action, detail) = audits(db, &sms).await.pop().unwrap();
        assert_eq!((action.as_str(), &detail["at"]), ("task.cancelled", &"outbox".into()), "{b}");
        assert_eq!(receiver.seen(), [ready_id(&sms)], "{b}");
    }
}

#[tokio::test]
async fn a_number_opted_out_since_release_is_not_texted_even_when_another_one_could_be() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[ny("S1", "sms")]).await;
        let (receiver, url) = receiver(Answer::Status(503)).await;
        let config = config(&url);
        let dispatcher = Dispatcher::from_config(&config).unwrap();
        release(db, &setup, &config, morning()).await;
        let sms = only_task(db, "S1").await;
        let [first, _] = phones_of("BS1");
        let body: serde_json::Value = serde_json::from_str(&delivery(db, &ready_id(&sms)).await.unwrap().body).unwrap();
        assert_eq!(body["data"]["to"], first.as_str(), "{b}");
        deliver(db, &setup, &dispatcher, morning()).await;
        // The borrower replied STOP to that number; the other one may still be texted.
        import_accounts(db, &[row("S1", "America/New_York", "sms", "", &format!("sms:{first}"))], morning()).await;

        receiver.answer(Answer::Ok);
        let report = deliver(db, &setup, &dispatcher, morning() + Duration::seconds(10)).await;
        assert_eq!((report.voided, report.delivered), (1, 0), "{b}: {report:?}");
        let ready = delivery(db, &ready_id(&sms)).await.unwrap();
        assert_eq!((ready.state.as_str(), ready.void_reason.as_deref()), ("void", Some("opt_out:sms")), "{b}");
        assert_eq!(task(db, sms.id).await, ("cancelled".into(), Some("opt_out:sms".into())), "{b}");
        assert_eq!(receiver.seen().len(), 1, "{b}");
    }
}

#[tokio::test]
async fn a_human_task_leased_before_its_late_announcement_stays_with_its_agent_and_is_not_announced() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[ny("H1", "")]).await;
        let (receiver, url) = receiver(Answer::Status(503)).await;
        let config = config(&url);
        let dispatcher = Dispatcher::from_config(&config).unwrap();
        release(db, &setup, &config, morning()).await;
        let human = only_task(db, "H1").await;
        assert_eq!(human.state, "ready", "{b}");
        deliver(db, &setup, &dispatcher, morning()).await;
        let leased = morning() + Duration::minutes(1);
        let lease = arrears::ops::work::lease_next(
            db,
            &arrears::ops::work::Rules::new(&setup.strategies, &fallback()),
            "collectors",
            "ann",
            leased,
            Duration::minutes(5),
        )
        .await
        .unwrap();
        assert_eq!(lease.map(|lease| lease.task.id), Some(human.id), "{b}");

        receiver.answer(Answer::Ok);
        let report = deliver(db, &setup, &dispatcher, leased).await;
        assert_eq!((report.voided, report.delivered), (1, 0), "{b}: {report:?}");
        let ready = delivery(db, &ready_id(&human)).await.unwrap();
        assert_eq!((ready.state.as_str(), ready.void_reason.as_deref()), ("void", Some("not_live")), "{b}");
        assert_eq!(task(db, human.id).await.0, "leased", "{b}: the agent keeps it");
        assert_eq!(receiver.seen().len(), 1, "{b}");
    }
}

/// An in-process receiver: answers from a script (then 200), keeps what it got.
struct InProcess {
    verifier: standardwebhooks::Webhook,
    script: Mutex<VecDeque<arrears::dispatch::SinkAnswer>>,
    /// `(webhook-id, timestamp, the signature verified independently, body)`.
    got: Mutex<Vec<(String, i64, bool, String)>>,
}

impl arrears::dispatch::Sink for InProcess {
    fn receive(&self, message: &arrears::dispatch::SignedMessage<'_>) -> arrears::dispatch::SinkAnswer {
        let expected = self.verifier.sign(message.webhook_id, message.timestamp, message.body.as_bytes()).unwrap();
        let verified = message.signature.split(' ').any(|signature| signature == expected);
        self.got.lock().unwrap().push((
            message.webhook_id.to_string(),
            message.timestamp,
            verified,
            message.body.to_string(),
        ));
        self.script.lock().unwrap().pop_front().unwrap_or(arrears::dispatch::SinkAnswer::Delivered)
    }
}

#[tokio::test]
async fn an_in_process_sink_gets_the_signed_task_ready_through_the_same_claim_check_and_retries() {
    use arrears::dispatch::{SigningSecret, SinkAnswer};
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let setup = book(db, &[ny("S1", "sms"), ny("S2", "sms")]).await;
        let secret = SigningSecret::generate();
        let sink = Arc::new(InProcess {
            verifier: standardwebhooks::Webhook::new(&secret).unwrap(),
            script: Mutex::new(VecDeque::from([SinkAnswer::Failed { status: 503, retry_after: None }; 2])),
            got: Mutex::default(),
        });
        // The HTTP endpoint points nowhere: the sink takes its place.
        let config = config("http://127.0.0.1:9/unreachable");
        let dispatcher = Dispatcher::from_config(&config).unwrap().with_sink(
            "sms",
            SigningSecret::parse(&secret).unwrap(),
            sink.clone(),
        );
        assert!(dispatcher.batch >= arrears::dispatch::SINK_BATCH, "{b}");
        release(db, &setup, &config, morning()).await;
        let (s1, s2) = (only_task(db, "S1").await, only_task(db, "S2").await);
        let report = deliver(db, &setup, &dispatcher, morning()).await;
        assert_eq!((report.claimed, report.retrying), (2, 2), "{b}: the sink answered 503: {report:?}");
        let failed = delivery(db, &ready_id(&s2)).await.unwrap();
        assert_eq!((failed.state.as_str(), failed.tries), ("pending", 1), "{b}");

        // Paid in full meanwhile: S1's message is voided before it reaches the sink again.
        pay_in_full(db, "S1", morning() + Duration::minutes(1)).await;
        let report = deliver(db, &setup, &dispatcher, morning() + Duration::minutes(2)).await;
        assert_eq!((report.claimed, report.delivered), (1, 1), "{b}: {report:?}");
        assert_eq!(delivery(db, &ready_id(&s1)).await.unwrap().state, "void", "{b}");
        assert_eq!(delivery(db, &ready_id(&s2)).await.unwrap().state, "delivered", "{b}");

        let got = sink.got.lock().unwrap().clone();
        let ids: Vec<&str> = got.iter().map(|(id, ..)| id.as_str()).collect();
        let mut first_two = ids[..2].to_vec();
        first_two.sort();
        let mut expected = vec![ready_id(&s1), ready_id(&s2)];
        expected.sort();
        assert_eq!(first_two, expected, "{b}");
        assert_eq!(ids[2], ready_id(&s2), "{b}: only S2 again");
        assert!(got.iter().all(|(_, _, verified, _)| *verified), "{b}: every signature verifies independently");
        assert_eq!(got[2].1, (morning() + Duration::minutes(2)).timestamp(), "{b}: signed at the engine's now");
        let body: serde_json::Value = serde_json::from_str(&got[2].3).unwrap();
        assert_eq!(
            (body["type"].as_str(), body["data"]["task_id"].as_str()),
            (Some("task.ready"), Some(s2.id.to_string().as_str())),
            "{b}"
        );
    }
}
