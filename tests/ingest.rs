//! What the servicing system sends against what the engine decided, on SQLite and (when
//! configured) PostgreSQL, through a real `serve` on loopback, CSV imports and the CLI:
//! - flags have an owner: an engine-set `do_not_call` survives any import, only an admin lifts
//!   it (API or CLI, audited), and a servicing-owned flag cannot be lifted by an operator;
//! - payments apply atomically: concurrent payments all count, a reference posted twice at
//!   once is recorded once;
//! - contact points missing from the next import are retired, never chosen, and keep their
//!   opt-outs when they return.

mod common;

use arrears::import::{ImportKind, ImportReport};
use arrears::plan::Plan;
use chrono::Duration;
use common::all_dbs;
use common::app::{TestApp, spawn_app};
use entity::{audit_log, payments};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const P1: &str = "+8613800138001";
const P2: &str = "+8613800138002";

/// An account of the shipped `consumer-cash` strategy that an agent calls: VIP, 5 days past due
/// at the test clock's start (09:00 in Shanghai), a human task in queue `senior`.
fn vip(id: &str, borrower: &str, phones: &[&str], amount_due: &str, flags: &[&str]) -> Value {
    json!({
        "account_id": id, "borrower_id": borrower, "name": "Ada Lovelace",
        "phones": phones, "email": null, "timezones": ["Asia/Shanghai"],
        "product": "cash", "currency": "CNY", "amount_due": amount_due, "balance": "5000",
        "due_date": "2026-11-17", "tags": ["vip"], "flags": flags, "consent_robot": true,
        "scores": {}, "attrs": {}
    })
}

const HEADER: &str = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,\
                      due_date,tags,flags,consent_robot,opt_outs";

/// The same account as an `accounts.csv` row.
fn vip_row(id: &str, borrower: &str, phones: &[&str], email: &str, flags: &str, opt_outs: &str) -> String {
    format!(
        "{id},{borrower},Ada Lovelace,{},{email},Asia/Shanghai,cash,CNY,300,5000,2026-11-17,vip,{flags},true,{opt_outs}",
        phones.join(";")
    )
}

async fn import_csv(app: &TestApp, rows: &[String]) -> ImportReport {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.csv");
    std::fs::write(&path, format!("{HEADER}\n{}\n", rows.join("\n"))).unwrap();
    arrears::import::import_file_at(&app.db.db, ImportKind::Accounts, &path, app.clock.now())
        .await
        .unwrap_or_else(|error| panic!("{}: {error}", app.backend()))
}

async fn json_ok(response: reqwest::Response, backend: &str) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{backend}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{backend}: not JSON ({error}): {text}"))
}

async fn error_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn post_accounts(app: &TestApp, accounts: Value) -> Value {
    json_ok(app.post_json("/v1/accounts", Some(&app.tokens.ingest), &accounts).await, app.backend()).await
}

async fn account(app: &TestApp, id: &str) -> Value {
    json_ok(app.get(&format!("/v1/accounts/{id}"), Some(&app.tokens.admin)).await, app.backend()).await
}

/// Plans the book at the clock's instant and saves the plan.
async fn plan(app: &TestApp) -> Plan {
    let strategies = app.state.strategies.current();
    arrears::ops::plan_collect(&app.db.db, &strategies, app.clock.now(), false).await.unwrap().1
}

fn tasks_of<'a>(plan: &'a Plan, account: &str) -> Vec<&'a arrears::plan::Task> {
    plan.tasks.iter().filter(|task| &*task.account_id == account).collect()
}

fn skip_of(plan: &Plan, account: &str) -> Option<String> {
    plan.skips.iter().find(|skip| skip.account_id == account).map(|skip| skip.reason.to_string())
}

async fn audit(app: &TestApp, action: &str) -> Vec<audit_log::Model> {
    audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq(action))
        .order_by_asc(audit_log::Column::Id)
        .all(&app.db.db)
        .await
        .unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(|item| item.as_str().map(String::from)).collect()
}

/// Leases the account's human task and reports `outcome` on it as agent-7.
async fn agent_reports(app: &TestApp, account: &str, outcome: &str, phone: &str) {
    let backend = app.backend();
    let lease =
        json_ok(app.post_json("/v1/queues/senior/lease", Some(&app.tokens.agent), &json!({})).await, backend).await;
    assert_eq!(lease["task"]["account_id"], account, "{backend}: {lease}");
    let task = lease["task"]["id"].as_i64().unwrap();
    let body = json!({"outcome": outcome, "phone": phone});
    json_ok(app.post_json(&format!("/v1/tasks/{task}/attempts"), Some(&app.tokens.agent), &body).await, backend).await;
}

#[tokio::test]
async fn an_outcomes_do_not_call_survives_every_import_until_an_admin_lifts_it() {
    for db in all_dbs().await {
        let app = spawn_app(db).await;
        let backend = app.backend();
        post_accounts(&app, json!([vip("A-1", "B-1", &[P1], "300", &[])])).await;
        assert_eq!(tasks_of(&plan(&app).await, "A-1").len(), 1, "{backend}: the agent calls A-1 today");
        agent_reports(&app, "A-1", "do_not_call", P1).await;

        let shown = account(&app, "A-1").await;
        assert_eq!(
            (&shown["flags"], &shown["servicing_flags"], &shown["engine_flags"]),
            (&json!(["do_not_call"]), &json!([]), &json!(["do_not_call"])),
            "{backend}: the outcome's flag is the engine's"
        );

        // The servicing system sends the account again, without the flag: by API, then by CSV.
        app.clock.advance(Duration::hours(1));
        let report = post_accounts(&app, json!([vip("A-1", "B-1", &[P1], "280", &[])])).await;
        assert_eq!(report["accounts"]["updated"], 1, "{backend}: the batch was written");
        assert_eq!(account(&app, "A-1").await["flags"], json!(["do_not_call"]), "{backend}: kept by the API batch");
        import_csv(&app, &[vip_row("A-1", "B-1", &[P1], "", "", "")]).await;
        let shown = account(&app, "A-1").await;
        assert_eq!(shown["amount_due"], "300", "{backend}: the file was written");
        assert_eq!(shown["flags"], json!(["do_not_call"]), "{backend}: kept by the CSV import");

        // Tomorrow's plan still does not call.
        app.clock.advance(Duration::days(1));
        let next = plan(&app).await;
        assert!(tasks_of(&next, "A-1").is_empty(), "{backend}");
        assert_eq!(skip_of(&next, "A-1").as_deref(), Some("flag:do_not_call"), "{backend}");

        // Only an admin lifts it, with a reason, naming a real flag that the engine set.
        let lift = |flag: &str, token: &str, body: Value| {
            let request = app
                .client
                .post(app.url(&format!("/v1/accounts/A-1/flags/{flag}/lift")))
                .bearer_auth(token.to_string())
                .json(&body);
            async move { request.send().await.unwrap() }
        };
        let reason = json!({"reason": "ticket 4711: the borrower asked to be called again"});
        let (status, _) = error_of(lift("do_not_call", &app.tokens.ingest, reason.clone()).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend}: ingest tokens may not lift flags");
        let (status, body) = error_of(lift("do_not_call", &app.tokens.admin, json!({"reason": " "})).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}: {body}");
        assert!(strings(&body["error"]["details"])[0].starts_with("reason: is required"), "{backend}: {body}");
        let (status, body) = error_of(lift("vip", &app.tokens.admin, reason.clone()).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}: {body}");
        assert!(strings(&body["error"]["details"])[0].starts_with("flag: \"vip\" is not a flag"), "{backend}: {body}");
        let (status, body) = error_of(lift("dispute", &app.tokens.admin, reason.clone()).await).await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend}: a flag that is not set: {body}");
        assert!(audit(&app, "account.flag_lifted").await.is_empty(), "{backend}: refusals change nothing");

        let lifted = json_ok(lift("do_not_call", &app.tokens.admin, reason).await, backend).await;
        assert_eq!((&lifted["changed"], &lifted["flags"]), (&json!(true), &json!([])), "{backend}: {lifted}");
        let rows = audit(&app, "account.flag_lifted").await;
        assert_eq!(rows.len(), 1, "{backend}");
        assert_eq!(rows[0].entity_id, "A-1");
        assert!(rows[0].actor.starts_with("token:"), "{backend}: the admin's token signs it: {}", rows[0].actor);
        let detail: Value = serde_json::from_str(&rows[0].detail).unwrap();
        assert_eq!(detail["flag"], "do_not_call", "{backend}");
        assert_eq!(detail["reason"], "ticket 4711: the borrower asked to be called again", "{backend}");
        assert_eq!(account(&app, "A-1").await["engine_flags"], json!([]), "{backend}");

        // The same day's plan now calls again.
        let again = plan(&app).await;
        assert_eq!(tasks_of(&again, "A-1").len(), 1, "{backend}: {:?}", skip_of(&again, "A-1"));
    }
}

#[tokio::test]
async fn an_operator_cannot_lift_the_servicing_systems_flag_and_an_import_cannot_lift_the_engines() {
    for db in all_dbs().await {
        let app = spawn_app(db).await;
        let backend = app.backend();
        let admin = app.tokens.admin.clone();
        post_accounts(&app, json!([vip("A-1", "B-1", &[P1], "300", &["do_not_call"])])).await;

        let response = app
            .client
            .post(app.url("/v1/accounts/A-1/flags/do_not_call/lift"))
            .bearer_auth(&admin)
            .json(&json!({"reason": "the borrower asked"}))
            .send()
            .await
            .unwrap();
        let (status, body) = error_of(response).await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend}: {body}");
        assert_eq!(body["error"]["code"], "conflict");
        assert!(body["error"]["message"].as_str().unwrap().contains("servicing system, which owns it"), "{body}");
        assert_eq!(account(&app, "A-1").await["servicing_flags"], json!(["do_not_call"]), "{backend}: unchanged");

        // An operator sets `dispute` (audited), then the servicing system drops its own flag.
        let set = |body: Value| {
            let request = app.client.post(app.url("/v1/accounts/A-1/flags")).bearer_auth(&admin).json(&body);
            async move { request.send().await.unwrap() }
        };
        let (status, body) = error_of(set(json!({"flag": "disputed", "reason": "letter"})).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}: {body}");
        assert!(strings(&body["error"]["details"])[0].starts_with("flag: \"disputed\""), "{backend}: {body}");
        let body = json!({"flag": "dispute", "reason": "letter of 2026-11-20 disputes the debt"});
        let first = json_ok(set(body.clone()).await, backend).await;
        assert_eq!(first["changed"], true, "{backend}");
        let second = json_ok(set(body).await, backend).await;
        assert_eq!(second["changed"], false, "{backend}: setting it again changes nothing");
        let rows = audit(&app, "account.flag_set").await;
        assert_eq!(rows.len(), 1, "{backend}");
        let detail: Value = serde_json::from_str(&rows[0].detail).unwrap();
        assert_eq!(
            (&detail["flag"], &detail["reason"]),
            (&json!("dispute"), &json!("letter of 2026-11-20 disputes the debt"))
        );

        post_accounts(&app, json!([vip("A-1", "B-1", &[P1], "300", &[])])).await;
        let shown = account(&app, "A-1").await;
        assert_eq!(
            (&shown["flags"], &shown["servicing_flags"], &shown["engine_flags"]),
            (&json!(["dispute"]), &json!([]), &json!(["dispute"])),
            "{backend}: the servicing system lifted its flag, not the operator's"
        );
        assert_eq!(skip_of(&plan(&app).await, "A-1").as_deref(), Some("flag:dispute"), "{backend}");
    }
}

#[tokio::test]
async fn the_cli_lifts_an_engine_flag_with_an_audit_row_and_refuses_a_servicing_one() {
    for db in all_dbs().await {
        let app = spawn_app(db).await;
        let backend = app.backend();
        post_accounts(
            &app,
            json!([vip("A-1", "B-1", &[P1], "300", &[]), vip("A-2", "B-2", &[P2], "300", &["do_not_call"])]),
        )
        .await;
        // As an outcome does.
        arrears::store::add_account_flag(&app.db.db, "A-1", arrears::domain::Flag::DoNotCall, app.clock.now())
            .await
            .unwrap();
        post_accounts(&app, json!([vip("A-1", "B-1", &[P1], "300", &[])])).await;
        assert_eq!(skip_of(&plan_dry(&app).await, "A-1").as_deref(), Some("flag:do_not_call"), "{backend}");

        let run = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_arrears"))
                .arg("flags")
                .args(args)
                .env("DATABASE_URL", &app.db.url)
                .env("USER", "olga")
                .current_dir(app.strategies_dir.parent().unwrap())
                .output()
                .unwrap()
        };
        let no_reason = run(&["lift", "A-1", "do_not_call"]);
        assert!(!no_reason.status.success(), "{backend}: --reason is required");
        let servicing = run(&["lift", "A-2", "do_not_call", "--reason", "asked"]);
        assert!(!servicing.status.success(), "{backend}");
        let stderr = String::from_utf8_lossy(&servicing.stderr);
        assert!(stderr.contains("servicing system, which owns it"), "{backend}: {stderr}");

        let lifted = run(&["lift", "A-1", "do_not_call", "--reason", "ticket 4711"]);
        let stdout = String::from_utf8_lossy(&lifted.stdout);
        assert!(lifted.status.success(), "{backend}: {}", String::from_utf8_lossy(&lifted.stderr));
        assert!(stdout.starts_with("A-1: `do_not_call` lifted"), "{backend}: {stdout}");
        let rows = audit(&app, "account.flag_lifted").await;
        assert_eq!(rows.len(), 1, "{backend}");
        assert_eq!((rows[0].entity_id.as_str(), rows[0].actor.as_str()), ("A-1", "cli:olga"), "{backend}");
        let detail: Value = serde_json::from_str(&rows[0].detail).unwrap();
        assert_eq!((&detail["flag"], &detail["reason"]), (&json!("do_not_call"), &json!("ticket 4711")));
        assert_eq!(tasks_of(&plan_dry(&app).await, "A-1").len(), 1, "{backend}: A-1 is called again");

        let set = run(&["set", "A-1", "cease_contact", "--reason", "solicitor's letter"]);
        assert!(set.status.success(), "{backend}: {}", String::from_utf8_lossy(&set.stderr));
        assert_eq!(account(&app, "A-1").await["engine_flags"], json!(["cease_contact"]), "{backend}");
        assert_eq!(audit(&app, "account.flag_set").await.len(), 1, "{backend}");
    }
}

/// Plans without saving.
async fn plan_dry(app: &TestApp) -> Plan {
    let strategies = app.state.strategies.current();
    arrears::ops::plan_collect(&app.db.db, &strategies, app.clock.now(), true).await.unwrap().1
}

/// Posts every body at the same moment (a barrier releases them together) and returns the
/// answers in order.
async fn post_all_at_once(app: &TestApp, bodies: Vec<Value>) -> Vec<Value> {
    let barrier = Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let mut handles = Vec::new();
    for body in bodies {
        let (client, url, token, barrier) =
            (app.client.clone(), app.url("/v1/payments"), app.tokens.ingest.clone(), barrier.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let response = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert_eq!(status, StatusCode::OK, "{text}");
            serde_json::from_str::<Value>(&text).unwrap()
        }));
    }
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    answers
}

fn payment(account: &str, amount: &str, reference: &str) -> Value {
    json!([{"account_id": account, "amount": amount, "paid_at": "2026-11-22T09:30:00+08:00", "reference": reference}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payments_posted_at_the_same_moment_all_count() {
    for db in all_dbs().await {
        let app = spawn_app(db).await;
        let backend = app.backend();
        let ids: Vec<String> = (0..30).map(|index| format!("A-{index:02}")).collect();
        let batch: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(index, id)| vip(id, &format!("B-{index:02}"), &[&format!("+86138000{index:05}")], "100", &[]))
            .collect();
        post_accounts(&app, Value::Array(batch)).await;
        let planned = plan(&app).await;
        for id in &ids {
            assert!(!tasks_of(&planned, id).is_empty(), "{backend}: {id} has open tasks");
            assert!(account(&app, id).await["stage"].is_string(), "{backend}: {id} is in the stage it was planned in");
        }

        // 60 + 40 on every account, 60 requests at once.
        let mut bodies = Vec::new();
        for id in &ids {
            bodies.push(payment(id, "60", &format!("{id}-60")));
            bodies.push(payment(id, "40.00", &format!("{id}-40")));
        }
        let answers = post_all_at_once(&app, bodies).await;
        let mut paid_in_full: Vec<String> =
            answers.iter().flat_map(|answer| strings(&answer["paid_in_full"])).collect();
        paid_in_full.sort();
        assert_eq!(paid_in_full, ids, "{backend}: each account is paid in full exactly once");
        for id in &ids {
            let shown = account(&app, id).await;
            assert_eq!(
                (shown["amount_due"].as_str(), shown["balance"].as_str()),
                (Some("0"), Some("4900")),
                "{backend} {id}"
            );
            assert!(shown["stage"].is_null(), "{backend} {id}: paid in full, it is in no stage: {}", shown["stage"]);
            for task in shown["tasks"].as_array().unwrap() {
                assert_eq!(
                    (task["state"].as_str(), task["state_reason"].as_str()),
                    (Some("cancelled"), Some("paid_in_full")),
                    "{backend} {id}"
                );
            }
        }
        let audited: BTreeSet<String> =
            audit(&app, "account.paid_in_full").await.into_iter().map(|row| row.entity_id).collect();
        assert_eq!(audited.len(), 30, "{backend}");
        assert_eq!(audit(&app, "account.paid_in_full").await.len(), 30, "{backend}: one audit row per account");

        // The same reference twice at once, on 10 accounts owing 100: one payment each.
        let batch: Vec<Value> = (0..10)
            .map(|index| {
                vip(&format!("C-{index}"), &format!("D-{index}"), &[&format!("+86139000{index:05}")], "100", &[])
            })
            .collect();
        post_accounts(&app, Value::Array(batch)).await;
        plan(&app).await;
        let mut bodies = Vec::new();
        for index in 0..10 {
            bodies.push(payment(&format!("C-{index}"), "30", &format!("S-{index}")));
            bodies.push(payment(&format!("C-{index}"), "30", &format!("S-{index}")));
        }
        let answers = post_all_at_once(&app, bodies).await;
        for pair in answers.chunks(2) {
            let mut outcomes: Vec<(u64, Vec<String>)> = pair
                .iter()
                .map(|answer| (answer["inserted"].as_u64().unwrap(), strings(&answer["duplicates"])))
                .collect();
            outcomes.sort();
            assert_eq!(outcomes[0].0, 0, "{backend}: {pair:?}");
            assert_eq!(outcomes[0].1.len(), 1, "{backend}: the second is reported as a duplicate: {pair:?}");
            assert_eq!((outcomes[1].0, outcomes[1].1.len()), (1, 0), "{backend}: {pair:?}");
        }
        for index in 0..10 {
            let id = format!("C-{index}");
            let stored = payments::Entity::find()
                .filter(payments::Column::Reference.eq(format!("S-{index}")))
                .all(&app.db.db)
                .await
                .unwrap();
            assert_eq!(stored.len(), 1, "{backend}");
            let shown = account(&app, &id).await;
            assert_eq!(shown["amount_due"], "70", "{backend} {id}: lowered once");
            assert!(shown["stage"].is_string(), "{backend} {id}: still owing, it keeps its stage");
        }

        // Binary fractions: 0.7 then 0.3 on 1.0 owing leaves nothing (REAL money on SQLite).
        post_accounts(&app, json!([vip("E-1", "F-1", &["+8613700000001"], "1.0", &[])])).await;
        json_ok(app.post_json("/v1/payments", Some(&app.tokens.ingest), &payment("E-1", "0.7", "E-1a")).await, backend)
            .await;
        let last = json_ok(
            app.post_json("/v1/payments", Some(&app.tokens.ingest), &payment("E-1", "0.3", "E-1b")).await,
            backend,
        )
        .await;
        assert_eq!(last["paid_in_full"], json!(["E-1"]), "{backend}");
        assert_eq!(account(&app, "E-1").await["amount_due"], "0", "{backend}");
    }
}

#[tokio::test]
async fn a_contact_point_dropped_by_the_servicing_system_is_retired_and_keeps_its_opt_outs() {
    for db in all_dbs().await {
        let app = spawn_app(db).await;
        let backend = app.backend();
        let report =
            import_csv(&app, &[vip_row("A-1", "B-1", &[P1, P2], "ada@example.com", "", &format!("sms:{P1}"))]).await;
        assert_eq!(report.contact_points_retired, 0, "{backend}");

        // The next file lists P2 only: P1 is retired (audited), shown as retired, never chosen.
        app.clock.advance(Duration::minutes(10));
        let report = import_csv(&app, &[vip_row("A-1", "B-1", &[P2], "ada@example.com", "", "")]).await;
        assert_eq!((report.contact_points_retired, report.contact_points_restored), (1, 0), "{backend}: {report}");
        let rows = audit(&app, "contact_point.retired").await;
        assert_eq!(rows.len(), 1, "{backend}");
        let detail: Value = serde_json::from_str(&rows[0].detail).unwrap();
        assert_eq!((rows[0].entity_id.as_str(), &detail["address"]), ("B-1", &json!(P1)), "{backend}");
        let points = contact_points(&account(&app, "A-1").await);
        assert_eq!(points[P1]["retired"], true, "{backend}");
        assert_eq!(points[P1]["retired_at"], "2026-11-22T01:10:00Z", "{backend}");
        assert_eq!(points[P1]["opted_out"], json!(["sms"]), "{backend}: its opt-out is kept");
        assert_eq!(points[P2]["retired"], false, "{backend}");

        assert_eq!(tasks_of(&plan(&app).await, "A-1").len(), 1, "{backend}: P2 is left to call");
        let lease =
            json_ok(app.post_json("/v1/queues/senior/lease", Some(&app.tokens.agent), &json!({})).await, backend).await;
        assert_eq!(lease["account"]["phones"], json!([P2]), "{backend}: the agent is given the current phone only");

        // The servicing system sends no phone and no e-mail (by API): nothing is left to call.
        app.clock.advance(Duration::days(1));
        let mut item = vip("A-1", "B-1", &[], "300", &[]);
        item["email"] = Value::Null;
        let report = post_accounts(&app, json!([item])).await;
        assert_eq!(report["contact_points"], json!({"retired": 2, "restored": 0}), "{backend}: P2 and the e-mail");
        let next = plan(&app).await;
        assert!(tasks_of(&next, "A-1").is_empty(), "{backend}: a retired number is never planned");
        // No current address is no contact point (a retired one is not the borrower's any more).
        let reason = skip_of(&next, "A-1");
        assert_eq!(reason.as_deref(), Some("no_contact_point"), "{backend}");

        // P1 comes back without an opt-out in the file: current again, its STOP still honoured.
        let report = import_csv(&app, &[vip_row("A-1", "B-1", &[P1], "", "", "")]).await;
        assert_eq!((report.contact_points_retired, report.contact_points_restored), (0, 1), "{backend}: {report}");
        assert_eq!(audit(&app, "contact_point.restored").await.len(), 1, "{backend}");
        let points = contact_points(&account(&app, "A-1").await);
        assert_eq!((&points[P1]["retired"], &points[P1]["opted_out"]), (&json!(false), &json!(["sms"])), "{backend}");
        assert_eq!((&points[P2]["retired"], &points["ada@example.com"]["retired"]), (&json!(true), &json!(true)));
        let book = arrears::store::load_portfolio(&app.db.db).await.unwrap();
        let p1 = book.borrowers["B-1"].contact_points.iter().find(|point| point.address == P1).unwrap();
        assert!(!p1.retired && !p1.usable_for(arrears::domain::Channel::Sms), "{backend}: {p1:?}");
        assert!(p1.usable_for(arrears::domain::Channel::Human), "{backend}");
        let p2 = book.borrowers["B-1"].contact_points.iter().find(|point| point.address == P2).unwrap();
        assert!(p2.retired && !p2.usable_for(arrears::domain::Channel::Human), "{backend}");
        let next = plan(&app).await;
        assert_eq!(tasks_of(&next, "A-1").len(), 1, "{backend}: {:?}", skip_of(&next, "A-1"));

        let all = entity::contact_points::Entity::find().all(&app.db.db).await.unwrap();
        assert_eq!(all.len(), 3, "{backend}: retiring deletes nothing");
    }
}

/// The borrower's contact points in an account view, by address.
fn contact_points(view: &Value) -> BTreeMap<String, Value> {
    view["borrower"]["contact_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| (point["address"].as_str().unwrap().to_string(), point.clone()))
        .collect()
}
