//! Inbound calls through the real paths, on SQLite and (when `ARREARS_TEST_DATABASE_URL` is set)
//! PostgreSQL: the lookup by number (one borrower, a shared number, an unknown caller, a number
//! written with spaces and dashes) with the gate's answer and the rule's script; a conversation
//! on the call ends the day's outbound calls and starts the cool-down; a promise taken on it;
//! the transfer to a person, which the next lease hands out before planned work, refused by the
//! gate for a flagged account and outside the contact hours; and the HTTP contract.

mod common;

use arrears::ops::work::inbound::{self, InboundAttemptIn, InboundCallIn, TransferIn};
use arrears::ops::work::lease_next;
use arrears::ops::work::{PromiseTerms, WorkError};
use chrono::Duration;
use common::book::{Fixture, HEADER, at, import, row, tasks_of};
use serde_json::json;

const RULES: &str = r#"
[[rule]]
name = "people"
stage = "late"
when = { tags_any = ["people"] }
channel = "human"
queue = "collections"

[[rule]]
name = "robot"
stage = "late"
channel = "robot"
template = "robot/t"
inbound_template = "robot/t"
escalate = { after_failed_attempts = 3, queue = "collections" }
"#;

const NY: &str = "America/New_York";

fn book() -> Vec<String> {
    let mut lines = vec![HEADER.to_string()];
    lines.extend([
        row("A1", "B1", &["+15550000001"], NY, "", 100),
        row("A2", "B2", &["+15550000002"], NY, "people", 100),
        row("A3", "B3", &["+15550000003"], NY, "people", 100),
        row("A4", "B4", &["+15550000009"], NY, "", 100),
        row("A5", "B5", &["+15550000009"], NY, "", 100),
        // A6: the servicing system says stop all contact.
        row("A6", "B6", &["+15550000006"], NY, "", 100).replace(",,true", ",cease_contact,true"),
    ]);
    lines
}

fn call(from: &str) -> InboundCallIn {
    InboundCallIn { from: from.into(), to: Some("+15551234567".into()) }
}

#[tokio::test]
async fn an_inbound_call_is_looked_up_worked_and_transferred_through_the_gate() {
    for db in common::all_dbs().await {
        let backend = db.backend;
        let db = &db.db;
        let fixture = Fixture::new("us-reg-f", RULES);
        import(db, arrears::import::ImportKind::Accounts, &book(), at("2026-11-20T12:00:00Z")).await;
        let plan_at = at("2026-11-23T14:00:00Z");
        fixture.plan(db, plan_at).await;
        let rules = fixture.rules();
        let now = plan_at + Duration::minutes(30);
        let lookup = |number: &str| {
            let (rules, fixture) = (&rules, &fixture);
            let call = call(number);
            async move { inbound::lookup(db, rules, &fixture.templates_dir, "Lender", &call, now).await.unwrap() }
        };

        // One borrower, found with the number written for people; the gate's answer and the
        // script of the rule deciding the day.
        let started = std::time::Instant::now();
        let answer = lookup("+1 555-000-0001").await;
        let lookup_ms = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!((answer.matched.as_str(), answer.from.as_str()), ("single", "+15550000001"), "{backend}");
        let account = &answer.borrowers[0].accounts[0];
        assert_eq!(account.account_id, "A1");
        assert_eq!(account.rule.as_deref(), Some("robot"));
        assert_eq!(account.script.as_deref(), Some("Robot A1"), "{backend}: the rule's inbound_template");
        assert!(account.contact_now.transfer_allowed, "{backend}: {:?}", account.contact_now);
        assert!(!account.open_tasks.is_empty(), "{backend}: today's robot tasks");
        // A shared number lists its candidates; an unknown caller is recorded and named so.
        let shared = lookup("+15550000009").await;
        assert_eq!(shared.matched, "shared");
        let ids: Vec<&str> = shared.borrowers.iter().map(|b| b.borrower_id.as_str()).collect();
        assert_eq!(ids, ["B4", "B5"], "{backend}");
        let unknown = lookup("+15559999999").await;
        assert_eq!((unknown.matched.as_str(), unknown.borrowers.len()), ("unknown", 0));
        assert!(unknown.id > shared.id && shared.id > answer.id, "{backend}: every call is recorded");
        let bad = inbound::lookup(db, &rules, &fixture.templates_dir, "Lender", &call("12345"), now).await;
        assert!(matches!(bad, Err(WorkError::Invalid { ref field, .. }) if field == "from"), "{backend}");

        // A conversation on the call ends A1's outbound calls today, and the cool-down it
        // starts keeps the planner from calling tomorrow.
        let report = InboundAttemptIn {
            outcome: "rpc".into(),
            note: Some("asked about the balance".into()),
            ..Default::default()
        };
        let recorded = inbound::record_inbound_attempt(db, answer.id, &report, "dialler", now).await.unwrap();
        assert!(!recorded.tasks_cancelled.is_empty(), "{backend}");
        for task in tasks_of(db, "A1").await {
            assert_eq!(task.state_reason.as_deref(), Some(inbound::INBOUND_CONVERSATION), "{backend}: {task:?}");
        }
        let (_, tomorrow) =
            arrears::ops::plan_collect(db, &fixture.strategies, plan_at + Duration::days(1), true).await.unwrap();
        let skip = tomorrow.skips.iter().find(|skip| skip.account_id == "A1").expect("A1 is skipped tomorrow");
        assert_eq!(skip.reason.to_string(), "cooldown:conversation", "{backend}");
        // Robots cannot report an unanswered call on a call the borrower placed.
        let wrong = InboundAttemptIn { outcome: "no_answer".into(), ..Default::default() };
        assert!(matches!(
            inbound::record_inbound_attempt(db, answer.id, &wrong, "dialler", now).await,
            Err(WorkError::Invalid { ref field, .. }) if field == "outcome"
        ));

        // A promise taken on A3's call is recorded and closes A3's open work.
        let a3 = lookup("+15550000003").await;
        let promise = InboundAttemptIn {
            outcome: "promise".into(),
            promise: Some(PromiseTerms { amount: "50".parse().unwrap(), due_on: "2026-11-30".parse().unwrap() }),
            at: Some(now + Duration::minutes(1)),
            ..Default::default()
        };
        let recorded =
            inbound::record_inbound_attempt(db, a3.id, &promise, "dialler", now + Duration::minutes(1)).await.unwrap();
        assert!(recorded.promise_id.is_some(), "{backend}");

        // A2 calls and asks for a person: the transfer goes to the deciding rule's queue and the
        // next lease of that queue hands it out before A2's and A3's planned work.
        let a2 = lookup("+15550000002").await;
        let transferred = inbound::transfer(
            db,
            &rules,
            a2.id,
            &TransferIn { note: Some("wants a payment plan".into()), ..Default::default() },
            "dialler",
            now,
        )
        .await
        .unwrap();
        assert_eq!(transferred.queue, "collections", "{backend}");
        assert!(transferred.not_after <= now + Duration::minutes(15));
        let lease = lease_next(db, &rules, "collections", "agent-1", now, Duration::minutes(10))
            .await
            .unwrap()
            .expect("a lease");
        assert_eq!(lease.task.id, transferred.task_id, "{backend}: the transfer first");
        let context = lease.task.context.expect("the call's context");
        assert_eq!(context["inbound_call"], json!(a2.id));
        assert_eq!(context["note"], "wants a payment plan");
        // Twice is a conflict.
        assert!(matches!(
            inbound::transfer(db, &rules, a2.id, &TransferIn::default(), "dialler", now).await,
            Err(WorkError::Conflict(_))
        ));

        // The gate refuses a transfer of a flagged account, and one outside the contact hours.
        let a6 = lookup("+15550000006").await;
        assert!(!a6.borrowers[0].accounts[0].contact_now.transfer_allowed);
        match inbound::transfer(db, &rules, a6.id, &TransferIn::default(), "dialler", now).await {
            Err(WorkError::Conflict(message)) => {
                assert!(message.contains("flag:cease_contact"), "{backend}: {message}")
            }
            other => panic!("{backend}: {other:?}"),
        }
        let night = at("2026-11-24T03:30:00Z"); // 22:30 in New York
        let late =
            inbound::lookup(db, &rules, &fixture.templates_dir, "Lender", &call("+15550000004"), night).await.unwrap();
        assert_eq!(late.matched, "unknown");
        let a4 =
            inbound::lookup(db, &rules, &fixture.templates_dir, "Lender", &call("+15550000009"), night).await.unwrap();
        let body = TransferIn { account_id: Some("A4".into()), ..Default::default() };
        match inbound::transfer(db, &rules, a4.id, &body, "dialler", night).await {
            Err(WorkError::Conflict(message)) => assert!(message.contains("hours"), "{backend}: {message}"),
            other => panic!("{backend}: {other:?}"),
        }
        // A shared number's call must name its account.
        assert!(matches!(
            inbound::transfer(db, &rules, a4.id, &TransferIn::default(), "dialler", night).await,
            Err(WorkError::Invalid { ref field, .. }) if field == "account_id"
        ));
        eprintln!("{backend}: inbound lookup of one caller took {lookup_ms:.1} ms (debug build, {} accounts)", 6);
    }
}

#[tokio::test]
async fn the_inbound_endpoints_answer_json_and_check_roles() {
    for db in common::all_dbs().await {
        let app = common::app::spawn_app(db).await;
        let backend = app.backend();
        let account = json!({
            "account_id": "C-1", "borrower_id": "P-1", "name": "Li Lei", "phones": ["+8613800138001"],
            "timezones": ["Asia/Shanghai"], "product": "cash", "currency": "CNY", "amount_due": "500",
            "balance": "5000", "due_date": "2026-11-12", "consent_robot": true
        });
        assert_eq!(app.post_json("/v1/accounts", Some(&app.tokens.ingest), &json!([account])).await.status(), 200);
        let body = json!({"from": "+86 138-0013-8001"});
        assert_eq!(app.post_json("/v1/inbound-calls", Some(&app.tokens.agent), &body).await.status(), 403, "{backend}");
        let response = app.post_json("/v1/inbound-calls", Some(&app.tokens.dialler), &body).await;
        assert_eq!(response.status(), 200, "{backend}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["match"], "single", "{answer}");
        assert_eq!(answer["borrowers"][0]["accounts"][0]["account_id"], "C-1");
        assert_eq!(answer["borrowers"][0]["name"], "Li Lei");
        let id = answer["id"].as_i64().unwrap();
        let bad = app.post_json("/v1/inbound-calls", Some(&app.tokens.dialler), &json!({"from": "hello"})).await;
        assert_eq!(bad.status(), 422);
        let error: serde_json::Value = bad.json().await.unwrap();
        assert!(error["error"]["message"].as_str().unwrap().starts_with("from:"), "{error}");
        let wrong = app
            .post_json(
                &format!("/v1/inbound-calls/{id}/attempts"),
                Some(&app.tokens.dialler),
                &json!({"outcome": "busy"}),
            )
            .await;
        assert_eq!(wrong.status(), 422, "{backend}");
        let ok = app
            .post_json(
                &format!("/v1/inbound-calls/{id}/attempts"),
                Some(&app.tokens.dialler),
                &json!({"outcome": "rpc"}),
            )
            .await;
        assert_eq!(ok.status(), 200, "{backend}");
        let missing = app.post_json("/v1/inbound-calls/999999/transfer", Some(&app.tokens.dialler), &json!({})).await;
        assert_eq!(missing.status(), 404);
        let unknown: serde_json::Value = app
            .post_json("/v1/inbound-calls", Some(&app.tokens.dialler), &json!({"from": "+8613900000000"}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(unknown["match"], "unknown");
        let nobody = app
            .post_json(&format!("/v1/inbound-calls/{}/transfer", unknown["id"]), Some(&app.tokens.dialler), &json!({}))
            .await;
        assert_eq!(nobody.status(), 409, "{backend}: nobody to transfer");
    }
}
