//! Every hand-off of a task asks the one contact gate: leases and heartbeats end with the
//! contact hours, the dialler reports only on what it was sent (once), a report without a phone
//! counts against the number the task went to, calls in flight count as connected, agents that
//! stop at their first 204 still drain a queue, and a callback the borrower asked for is made
//! despite the cool-down. Real ops calls on real SQLite and PostgreSQL stores, a manual clock
//! passed as `now`; nothing sleeps.

mod common;

use arrears::dispatch::Dispatcher;
use arrears::domain::TaskState;
use arrears::ops::work::{
    Actor, AttemptReport, PromiseTerms, WorkError, complete, heartbeat, lease_next, record_attempt,
};
use chrono::Duration;
use common::book::{Fixture, at, endpoints, import, import_accounts, receiver, row, tasks_of};
use entity::{attempts, audit_log};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

const NY: &str = "America/New_York";
const SH: &str = "Asia/Shanghai";
const P1: &str = "+8613800000001";
const P2: &str = "+8613800000002";

fn report(outcome: &str) -> AttemptReport {
    AttemptReport { outcome: outcome.into(), ..AttemptReport::default() }
}

async fn attempts_of(db: &DatabaseConnection, account: &str) -> Vec<attempts::Model> {
    attempts::Entity::find()
        .filter(attempts::Column::AccountId.eq(account))
        .order_by_asc(attempts::Column::Id)
        .all(db)
        .await
        .unwrap()
}

async fn audited(db: &DatabaseConnection, action: &str) -> usize {
    audit_log::Entity::find().filter(audit_log::Column::Action.eq(action)).all(db).await.unwrap().len()
}

const AGENTS: &str = r#"
[[rule]]
name = "agents"
channel = "human"
queue = "collectors"
calls_per_day = 2
"#;

#[tokio::test]
async fn a_lease_and_its_heartbeats_end_at_21_00_under_reg_f() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let fixture = Fixture::new("us-reg-f", AGENTS);
        // Monday 2026-11-23, 08:00 in New York; the human task's window is 08:00-21:00 EST.
        import_accounts(db, &[row("A1", "B1", &["+12125550001"], NY, "", 100)], at("2026-11-23T12:00:00Z")).await;
        fixture.plan(db, at("2026-11-23T13:00:00Z")).await;
        let rules = fixture.rules();
        let ttl = Duration::minutes(15);

        // 20:50: a 15-minute lease ends at 21:00, not 21:05.
        let taken = at("2026-11-24T01:50:00Z");
        let lease = lease_next(db, &rules, "collectors", "ann", taken, ttl).await.unwrap().expect("a task");
        let nine_pm = at("2026-11-24T02:00:00Z");
        assert_eq!(lease.lease_expires_at, nine_pm, "{b}");
        // A heartbeat at 20:58 cannot carry it past 21:00 either.
        let renewed = heartbeat(db, &rules, lease.task.id, "ann", taken + Duration::minutes(8), ttl).await.unwrap();
        assert_eq!(renewed.lease_expires_at, nine_pm, "{b}");
        // An attempt before the contact hours (07:30) is refused, naming the rule.
        let mut early = report("no_answer");
        early.at = Some(at("2026-11-23T12:30:00Z"));
        let refused = record_attempt(db, &rules, lease.task.id, &Actor::Agent("ann".into()), early, taken).await;
        match refused {
            Err(WorkError::Invalid { field, message }) => {
                assert_eq!(field, "at", "{b}");
                assert!(message.contains("rule `agents`"), "{b}: {message}");
            }
            other => panic!("{b}: an attempt at 07:30 must be refused, got {other:?}"),
        }
        // At 21:00 the lease is over: no heartbeat, no attempt.
        assert!(matches!(heartbeat(db, &rules, lease.task.id, "ann", nine_pm, ttl).await, Err(WorkError::Conflict(_))));
        let late = record_attempt(db, &rules, lease.task.id, &Actor::Agent("ann".into()), report("rpc"), nine_pm).await;
        assert!(matches!(late, Err(WorkError::Conflict(_))), "{b}: {late:?}");
        assert!(attempts_of(db, "A1").await.is_empty(), "{b}");
    }
}

const ROBOTS: &str = r#"
[[rule]]
name = "robots"
when = { tags_any = ["robot"] }
channel = "robot"
template = "robot/t"
windows = ["09:00-20:00"]
attempts_per_day = 8

[[rule]]
name = "agents"
channel = "human"
queue = "collectors"
calls_per_day = 2
"#;

#[tokio::test]
async fn a_dialler_reports_once_and_only_on_a_task_it_was_sent() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let fixture = Fixture::new("cn-gbt-45251", ROBOTS);
        let rows = [
            row("R1", "B1", &[P1], SH, "robot", 900),
            row("R2", "B2", &["+8613800000022"], SH, "robot", 900),
            row("R3", "B3", &["+8613800000033"], SH, "robot", 900),
            row("H1", "B4", &["+8613800000044"], SH, "", 900),
        ];
        import_accounts(db, &rows, at("2026-11-23T00:00:00Z")).await;
        // 08:30 in Shanghai.
        fixture.plan(db, at("2026-11-23T00:30:00Z")).await;
        let rules = fixture.rules();
        let dialler = Actor::Dialler;
        let r1 = tasks_of(db, "R1").await;
        let early = at("2026-11-23T00:40:00Z");

        // Not sent yet (its window opens at 09:00): the dialler cannot report on it.
        let refused = record_attempt(db, &rules, r1[0].id, &dialler, report("no_answer"), early).await;
        assert!(matches!(refused, Err(WorkError::Conflict(_))), "{b}: {refused:?}");
        // A human task is never the dialler's.
        let human = tasks_of(db, "H1").await;
        let refused = record_attempt(db, &rules, human[0].id, &dialler, report("dispute"), early).await;
        assert!(matches!(refused, Err(WorkError::NotYourLease(_))), "{b}: {refused:?}");

        let (seen, url) = receiver().await;
        let config = endpoints(&url);
        let nine = at("2026-11-23T01:05:00Z");
        let released = fixture.release(db, &config, nine).await;
        assert_eq!((released.dispatched, released.human_notified), (3, 1), "{b}");
        Dispatcher::from_config(&config)
            .unwrap()
            .deliver_due(db, &fixture.strategies, &fixture.policy, nine)
            .await
            .unwrap();
        assert_eq!(seen.lock().unwrap().len(), 4, "{b}");

        // Sent: the report is taken; the same report again, without `at`, is the same attempt.
        let first = record_attempt(db, &rules, r1[0].id, &dialler, report("no_answer"), nine).await.unwrap();
        let again = record_attempt(db, &rules, r1[0].id, &dialler, report("no_answer"), nine + Duration::minutes(2))
            .await
            .unwrap();
        assert!(again.duplicate, "{b}");
        assert_eq!(again.attempt_id, first.attempt_id, "{b}");
        assert_eq!(attempts_of(db, "R1").await.len(), 1, "{b}: one attempt");
        let other = record_attempt(db, &rules, r1[0].id, &dialler, report("rpc"), nine + Duration::minutes(3)).await;
        assert!(matches!(other, Err(WorkError::Conflict(_))), "{b}: {other:?}");

        // A promise due in 2030 would silence the account for years: refused.
        let r2 = tasks_of(db, "R2").await;
        let mut promise = report("promise");
        promise.promise = Some(PromiseTerms { amount: "900".parse().unwrap(), due_on: "2030-01-01".parse().unwrap() });
        let refused = record_attempt(db, &rules, r2[0].id, &dialler, promise.clone(), nine).await;
        assert!(
            matches!(&refused, Err(WorkError::Invalid { field, .. }) if field == "promise.due_on"),
            "{b}: {refused:?}"
        );
        promise.promise = Some(PromiseTerms { amount: "900".parse().unwrap(), due_on: "2026-12-20".parse().unwrap() });
        assert!(record_attempt(db, &rules, r2[0].id, &dialler, promise, nine).await.unwrap().promise_id.is_some());

        // Paid in full after the call went out: the call happened, its report is kept and audited.
        let r3 = tasks_of(db, "R3").await;
        let paid = ["account_id,amount,paid_at,reference".to_string(), format!("R3,900,{},pay-r3", nine.to_rfc3339())];
        import(db, arrears::import::ImportKind::Payments, &paid, nine).await;
        assert_eq!(tasks_of(db, "R3").await[0].state, TaskState::Cancelled.code(), "{b}");
        let late = nine + Duration::minutes(4);
        let recorded = record_attempt(db, &rules, r3[0].id, &dialler, report("rpc"), late).await.unwrap();
        assert!(!recorded.duplicate, "{b}");
        assert_eq!(audited(db, "attempt.after_cancellation").await, 1, "{b}");
    }
}

#[tokio::test]
async fn a_report_without_a_phone_counts_against_the_number_the_task_went_to() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let fixture = Fixture::new("cn-gbt-45251", ROBOTS);
        let rows = [row("R1", "B1", &[P1, P2], SH, "robot", 900), row("H1", "B1", &[P1, P2], SH, "", 900)];
        import_accounts(db, &rows, at("2026-11-23T00:00:00Z")).await;
        fixture.plan(db, at("2026-11-23T00:30:00Z")).await;
        let rules = fixture.rules();
        let config = endpoints("http://127.0.0.1:9/hooks");
        let robots = tasks_of(db, "R1").await;
        assert_eq!(robots.len(), 8, "{b}: cn-gbt-45251 lets a rule plan 8 attempts on two numbers");

        // Six unanswered calls to the first number, reported without `phone`.
        for task in &robots[..6] {
            let now = task.not_before + Duration::minutes(1);
            fixture.release(db, &config, now).await;
            let sent = arrears::store::task_by_id(db, task.id).await.unwrap().unwrap();
            assert_eq!(sent.address.as_deref(), Some(P1), "{b}: task {} goes to the first number", task.attempt);
            record_attempt(db, &rules, task.id, &Actor::Dialler, report("no_answer"), now).await.unwrap();
        }
        assert!(attempts_of(db, "R1").await.iter().all(|attempt| attempt.address.as_deref() == Some(P1)), "{b}");
        // The seventh call goes to the second number; an agent is offered only that one.
        let now = robots[6].not_before + Duration::minutes(1);
        fixture.release(db, &config, now).await;
        let sent = arrears::store::task_by_id(db, robots[6].id).await.unwrap().unwrap();
        assert_eq!(sent.address.as_deref(), Some(P2), "{b}");
        let lease = lease_next(db, &rules, "collectors", "ann", now, Duration::minutes(10)).await.unwrap();
        assert_eq!(lease.map(|lease| lease.account.phones), Some(vec![P2.to_string()]), "{b}");
    }
}

#[tokio::test]
async fn a_call_in_flight_counts_as_connected_so_no_fourth_call_goes_out() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let fixture = Fixture::new("cn-gbt-45251", ROBOTS);
        let rows = [row("R1", "B1", &[P1], SH, "robot", 900), row("H1", "B1", &[P1], SH, "", 900)];
        import_accounts(db, &rows, at("2026-11-23T00:00:00Z")).await;
        // Two conversations with the borrower this morning (08:00 and 08:10 in Shanghai).
        let attempts = [
            "account_id,channel,phone,at,outcome".to_string(),
            format!("R1,human,{P1},2026-11-23T00:00:00Z,rpc"),
            format!("R1,human,{P1},2026-11-23T00:10:00Z,refused"),
        ];
        import(db, arrears::import::ImportKind::Attempts, &attempts, at("2026-11-23T00:20:00Z")).await;
        fixture.plan(db, at("2026-11-23T00:30:00Z")).await;
        let rules = fixture.rules();
        let config = endpoints("http://127.0.0.1:9/hooks");

        // An agent leases the human task at 09:05: one connected call is left, and it is hers.
        let nine = at("2026-11-23T01:05:00Z");
        let lease = lease_next(db, &rules, "collectors", "ann", nine, Duration::minutes(30)).await.unwrap();
        let lease = lease.expect("the human task");
        assert_eq!((lease.task.calls_allowed, lease.task.limited_by.as_deref()), (1, Some("cap:rpc_per_day")), "{b}");
        // Meanwhile the robot's first call waits: the agent's call may connect.
        let robots = tasks_of(db, "R1").await;
        let released = fixture.release(db, &config, nine + Duration::minutes(1)).await;
        assert_eq!((released.dispatched, released.waiting), (0, 1), "{b}");
        assert_eq!(tasks_of(db, "R1").await[0].state, TaskState::Planned.code(), "{b}");
        // The agent's call goes unanswered and the task is done: the robot may call now.
        let agent = Actor::Agent("ann".into());
        record_attempt(db, &rules, lease.task.id, &agent, report("no_answer"), nine + Duration::minutes(2))
            .await
            .unwrap();
        complete(db, lease.task.id, "ann", nine + Duration::minutes(3)).await.unwrap();
        let released = fixture.release(db, &config, nine + Duration::minutes(4)).await;
        assert_eq!(released.dispatched, 1, "{b}");
        assert_eq!(arrears::store::task_by_id(db, robots[0].id).await.unwrap().unwrap().state, "dispatched", "{b}");
    }
}

#[tokio::test]
async fn ninety_six_agents_stopping_at_their_first_204_drain_a_queue() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let fixture = std::sync::Arc::new(Fixture::new("us-reg-f", AGENTS));
        let rows: Vec<String> = (0..300)
            .map(|i| row(&format!("A{i:04}"), &format!("B{i:04}"), &[&format!("+1212555{i:04}")], NY, "", 100))
            .collect();
        import_accounts(db, &rows, at("2026-11-23T12:00:00Z")).await;
        fixture.plan(db, at("2026-11-23T13:00:00Z")).await;
        let now = at("2026-11-23T15:00:00Z");
        let mut agents = tokio::task::JoinSet::new();
        for agent in 0..96 {
            let (db, fixture) = (db.clone(), fixture.clone());
            agents.spawn(async move {
                let name = format!("agent-{agent}");
                let mut worked = 0;
                while let Some(lease) =
                    lease_next(&db, &fixture.rules(), "collectors", &name, now, Duration::minutes(10)).await.unwrap()
                {
                    complete(&db, lease.task.id, &name, now).await.unwrap();
                    worked += 1;
                }
                worked
            });
        }
        let mut worked = 0;
        while let Some(done) = agents.join_next().await {
            worked += done.unwrap();
        }
        assert_eq!(worked, 300, "{b}: every ready task is handed out before agents hear 204");
    }
}

#[tokio::test]
async fn a_callback_the_borrower_asked_for_is_made_despite_the_cool_down_and_not_counted() {
    for test_db in common::all_dbs().await {
        let (db, b) = (&test_db.db, test_db.backend);
        let fixture = Fixture::new("us-reg-f", AGENTS);
        import_accounts(db, &[row("A1", "B1", &["+12125550001"], NY, "", 100)], at("2026-11-23T12:00:00Z")).await;
        fixture.plan(db, at("2026-11-23T13:00:00Z")).await;
        let rules = fixture.rules();
        let agent = Actor::Agent("ann".into());
        // 10:00: the borrower asks to be called back at 15:00.
        let ten = at("2026-11-23T15:00:00Z");
        let lease = lease_next(db, &rules, "collectors", "ann", ten, Duration::minutes(15)).await.unwrap().unwrap();
        let mut asked = report("callback");
        asked.callback_at = Some(at("2026-11-23T20:00:00Z"));
        let recorded = record_attempt(db, &rules, lease.task.id, &agent, asked, ten).await.unwrap();
        complete(db, lease.task.id, "ann", ten + Duration::minutes(1)).await.unwrap();
        let callback_id = recorded.escalation.and_then(|escalation| escalation.human_task).expect("a callback task");
        let callback = arrears::store::task_by_id(db, callback_id).await.unwrap().unwrap();
        assert_eq!((callback.origin.as_str(), callback.not_before), ("callback", at("2026-11-23T20:00:00Z")), "{b}");

        // Not before 15:00; at 15:00 it is handed out although a conversation happened today.
        assert!(
            lease_next(db, &rules, "collectors", "bob", ten + Duration::hours(2), Duration::minutes(15))
                .await
                .unwrap()
                .is_none()
        );
        let three = at("2026-11-23T20:00:00Z");
        let lease = lease_next(db, &rules, "collectors", "bob", three, Duration::minutes(15)).await.unwrap();
        assert_eq!(lease.as_ref().map(|lease| lease.task.id), Some(callback_id), "{b}");
        let bob = Actor::Agent("bob".into());
        record_attempt(db, &rules, callback_id, &bob, report("rpc"), three).await.unwrap();
        // The consent-based call is outside the 7-in-7 count.
        let calls = attempts_of(db, "A1").await;
        assert_eq!(calls.iter().map(|call| call.exempt).collect::<Vec<_>>(), [false, true], "{b}");
        assert_eq!(audited(db, "task.callback_created").await, 1, "{b}");
    }
}
