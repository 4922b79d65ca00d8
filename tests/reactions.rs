//! Risk events and the strategies' reactions through the real paths, on SQLite and (when
//! `ARREARS_TEST_DATABASE_URL` is set) PostgreSQL: `[[reaction]]` validation with `file:line:col`,
//! idempotent events, the hold the contact gate enforces (the planner skips the account as
//! `held`), engine tags that survive the next import, a re-plan and raised priority, cases that
//! need a disposition and show an SLA missed, `events.csv` errors naming row and column, and the
//! reactions report.

mod common;

use arrears::import::ImportKind;
use arrears::ops::events::{EventIn, EventsError, NewEvent, apply_events, check_event};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use common::book::{Fixture, at, import_accounts, row, tasks_of};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

#[test]
fn reaction_errors_name_the_file_line_and_column() {
    let text = r#"name = "t"
[stages]
late = { dpd = [1, 365] }

[[reaction]]
name = "a"
on = "fraud"
queue = "q"
sla = "4h"

[[reaction]]
name = "b"
on = "fraud_alert"
queue = "q"

[[reaction]]
name = "c"
on = "score_change"
when = { "event.delta" = { max = "x" }, colour = "red" }
hold = "36h"

[[reaction]]
name = "d"
on = "legal_notice"

[[rule]]
name = "r"
when = { "event.delta" = { max = 1 } }
channel = "human"
"#;
    let error = common::strategies_from(text).unwrap_err();
    for expected in [
        ":7:6: reaction `a`: on: unknown event type `fraud`",
        ":14:9: reaction `b`: a case needs a deadline",
        ":19:26: reaction `c`: when.event.delta: max: expected a number",
        ":19:41: reaction `c`: unknown condition `colour`",
        ":20:8: reaction `c`: hold `36h` must be whole days",
        ":22:1: reaction `d`: does nothing",
        ":28:10: rule `r`: unknown condition `event.delta`",
    ] {
        assert!(error.contains(expected), "missing {expected:?} in:\n{error}");
    }
    // A good reaction loads.
    let good = "name = \"t\"\n[stages]\nlate = { dpd = [1, 365] }\n[[reaction]]\nname = \"x\"\non = [\"fraud_alert\", \"custom:bureau-hit\"]\nhold = \"3d\"\n";
    let set = common::strategies_from(good).unwrap();
    assert_eq!(set.strategies[0].reactions.len(), 1);
}

const RULES: &str = r#"
[[rule]]
name = "watched to people"
stage = "late"
when = { tags_any = ["watch"] }
channel = "human"
queue = "watch"

[[rule]]
name = "robot"
stage = "late"
channel = "robot"
template = "robot/t"

[[reaction]]
name = "fraud review"
on = "fraud_alert"
queue = "fraud"
sla = "4h"
hold = "3d"
replan = true

[[reaction]]
name = "score drop"
on = ["score_change", "custom:bureau-hit"]
when = { "event.delta" = { max = -50 } }
add_tags = ["watch"]
replan = true
priority = "now"
"#;

const ZONE: &str = "America/New_York";

fn book() -> Vec<String> {
    vec![
        row("A1", "B1", &["+15550000001"], ZONE, "", 100),
        row("A2", "B2", &["+15550000002"], ZONE, "", 100),
        row("A3", "B3", &["+15550000003"], ZONE, "", 100),
        row("A4", "B3", &["+15550000003"], ZONE, "", 100),
    ]
}

fn event(id: &str, kind: &str, account: Option<&str>, borrower: Option<&str>, fields: Value) -> EventIn {
    EventIn {
        id: id.into(),
        kind: kind.into(),
        account_id: account.map(Into::into),
        borrower_id: borrower.map(Into::into),
        at: "2026-11-23T13:00:00Z".into(),
        fields: fields.as_object().cloned().unwrap_or_default(),
    }
}

async fn send(
    db: &DatabaseConnection,
    fixture: &Fixture,
    items: &[EventIn],
    now: DateTime<Utc>,
) -> Result<arrears::ops::events::EventsReport, EventsError> {
    let checked: Vec<NewEvent> = items.iter().map(|item| check_event(item, now).unwrap()).collect();
    let labels: Vec<String> = (0..items.len()).map(|i| format!("[{i}]")).collect();
    apply_events(db, &fixture.strategies, &checked, &labels, now, "test").await
}

fn open(task: &entity::tasks::Model) -> bool {
    task.state == "planned" || task.state == "ready"
}

#[tokio::test]
async fn events_are_idempotent_and_reactions_hold_tag_replan_and_raise() {
    for db in common::all_dbs().await {
        let backend = db.backend;
        let db = &db.db;
        import_accounts(db, &book(), at("2026-11-20T12:00:00Z")).await;
        let fixture = Fixture::new("us-reg-f", RULES);
        let plan_at = at("2026-11-23T14:00:00Z");
        fixture.plan(db, plan_at).await;
        assert!(tasks_of(db, "A1").await.iter().any(open), "{backend}: A1 planned");

        // A fraud alert: a case due in 4 hours, contact held for 3 local days, today re-planned.
        let now = plan_at + Duration::minutes(10);
        let report =
            send(db, &fixture, &[event("ev-1", "fraud_alert", Some("A1"), None, json!({}))], now).await.unwrap();
        assert_eq!(report.inserted, 1, "{backend}");
        let fired = &report.reactions[0];
        assert_eq!(fired.reaction, "fraud review");
        assert_eq!(fired.due_at, Some(now + Duration::hours(4)));
        assert_eq!(fired.hold_until, Some(NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()), "{backend}");
        assert!(
            fired.case_id.is_some() && fired.tasks_cancelled > 0 && fired.tasks_planned == 0,
            "{backend}: {fired:?}"
        );
        let a1 = tasks_of(db, "A1").await;
        assert!(a1.iter().all(|task| !open(task)), "{backend}: the hold leaves no open task");
        assert!(a1.iter().all(|task| task.state_reason.as_deref() == Some("replanned")), "{backend}");
        // The planner skips the held account through the gate's stops until the hold ends.
        let (_, plan) =
            arrears::ops::plan_collect(db, &fixture.strategies, plan_at + Duration::days(2), true).await.unwrap();
        let skip = plan.skips.iter().find(|skip| &*skip.account_id == "A1").expect("A1 skipped");
        assert_eq!(skip.reason.to_string(), "held", "{backend}");
        let (_, plan) =
            arrears::ops::plan_collect(db, &fixture.strategies, plan_at + Duration::days(3), true).await.unwrap();
        assert!(plan.tasks.iter().any(|task| &*task.account_id == "A1"), "{backend}: the hold ended");

        // The same event again does nothing; the same id with other content is a conflict.
        let again =
            send(db, &fixture, &[event("ev-1", "fraud_alert", Some("A1"), None, json!({}))], now).await.unwrap();
        assert_eq!((again.inserted, again.duplicates.clone(), again.reactions.len()), (0, vec!["ev-1".to_string()], 0));
        let conflict = send(db, &fixture, &[event("ev-1", "legal_notice", Some("A1"), None, json!({}))], now).await;
        assert!(matches!(conflict, Err(EventsError::Conflict(ref lines)) if lines[0].contains("ev-1")), "{backend}");
        let cases = arrears::ops::events::list_cases(db, Some("fraud"), None, now).await.unwrap();
        assert_eq!(cases.len(), 1, "{backend}: one case however often the event comes");

        // A score drop of 80 tags A2 `watch` (kept across imports), re-plans it to the watch
        // queue and raises the new task to the top; a drop of 10 does nothing.
        let report = send(
            db,
            &fixture,
            &[
                event("ev-2", "score_change", Some("A2"), None, json!({"delta": -80})),
                event("ev-3", "score_change", Some("A3"), None, json!({"delta": -10})),
            ],
            now,
        )
        .await
        .unwrap();
        assert_eq!(report.reactions.len(), 1, "{backend}: {:?}", report.reactions);
        let a2 = tasks_of(db, "A2").await;
        let human: Vec<_> = a2.iter().filter(|task| open(task)).collect();
        assert_eq!(human.len(), 1, "{backend}: {a2:?}");
        assert_eq!((human[0].channel.as_str(), human[0].queue.as_deref()), ("human", Some("watch")));
        assert!(human[0].priority >= arrears::ops::events::REACTION_PRIORITY, "{backend}: raised");
        import_accounts(db, &book(), now).await;
        let page = arrears::store::load_account(db, "A2").await.unwrap().unwrap();
        assert!(page.portfolio.accounts[0].tags.contains(&"watch".to_string()), "{backend}: the engine tag stays");
        assert!(tasks_of(db, "A3").await.iter().any(open), "{backend}: a small drop changes nothing");

        // A borrower's event reaches each of their accounts.
        let report =
            send(db, &fixture, &[event("ev-4", "custom:bureau-hit", None, Some("B3"), json!({"delta": -60}))], now)
                .await
                .unwrap();
        let accounts: Vec<&str> = report.reactions.iter().map(|fired| fired.account_id.as_str()).collect();
        assert_eq!(accounts, ["A3", "A4"], "{backend}");

        // Unknown accounts and bad fields are errors naming the event; nothing is written.
        let unknown = send(db, &fixture, &[event("ev-5", "fraud_alert", Some("NOPE"), None, json!({}))], now).await;
        assert!(matches!(unknown, Err(EventsError::Invalid(ref lines)) if lines[0].starts_with("[0]: account_id")));
        let bad = check_event(&event("", "fraud", Some("A1"), Some("B1"), json!({"x": [1]})), now).unwrap_err();
        let fields: Vec<&str> = bad.iter().map(|(field, _, _)| *field).collect();
        assert_eq!(fields, ["id", "type", "account_id", "fields"], "{backend}");
        let mut future = event("ev-6", "fraud_alert", Some("A1"), None, json!({}));
        future.at = "2026-12-30T00:00:00Z".into();
        assert_eq!(check_event(&future, now).unwrap_err()[0].0, "at");

        // explain shows the hold, the reactions and the case.
        let explained = arrears::ops::explain_account(db, &fixture.strategies, "A1", now).await.unwrap().unwrap();
        assert_eq!(explained.hold_until, Some(NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()));
        assert_eq!(explained.reactions.len(), 2);
        assert_eq!(explained.cases.len(), 1);
        let mut text = Vec::new();
        arrears::ops::write_explanation(&explained, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("held: a reaction to a risk event holds all contact through 2026-11-25"), "{text}");
        assert!(
            text.contains("✓ score drop would act on score_change, custom:bureau-hit if the event meets event.delta")
        );
    }
}

#[tokio::test]
async fn events_csv_errors_name_row_and_column_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.csv");
    std::fs::write(
        &path,
        "id,type,account_id,borrower_id,at,field.delta\n\
         ev-1,score_change,A1,,2026-11-23T13:00:00Z,-80\n\
         ev-2,fraud,A1,,2026-11-23T13:00:00Z,\n\
         ev-3,fraud_alert,,,yesterday,\n",
    )
    .unwrap();
    let progress = indicatif::ProgressBar::hidden();
    let error = arrears::import::risk_events::read_events(&path, &progress, at("2026-11-23T14:00:00Z"))
        .await
        .unwrap_err()
        .to_string();
    for expected in ["row 2", "column type", "row 3", "column account_id", "column at"] {
        assert!(error.contains(expected), "missing {expected:?} in:\n{error}");
    }
    std::fs::write(
        &path,
        "id,type,account_id,at,field.delta,field.severity\nev-1,score_change,A1,2026-11-23T13:00:00Z,-80,high\n",
    )
    .unwrap();
    let (events, labels) =
        arrears::import::risk_events::read_events(&path, &progress, at("2026-11-23T14:00:00Z")).await.unwrap();
    assert_eq!(events[0].fields["delta"], json!(-80));
    assert_eq!(events[0].fields["severity"], json!("high"));
    assert!(labels[0].ends_with("row 1"));
    // The import kind is known to the CLI.
    assert_eq!("events".parse::<ImportKind>(), Ok(ImportKind::Events));
}

#[tokio::test]
async fn cases_need_a_disposition_and_show_a_missed_sla_in_the_report() {
    for db in common::all_dbs().await {
        let app = common::app::spawn_app(db).await;
        let backend = app.backend();
        let account = json!({
            "account_id": "C-1", "borrower_id": "P-1", "name": "Li Lei", "phones": ["+8613800138001"],
            "timezones": ["Asia/Shanghai"], "product": "cash", "currency": "CNY", "amount_due": "500",
            "balance": "5000", "due_date": "2026-11-12", "consent_robot": true
        });
        let posted = app.post_json("/v1/accounts", Some(&app.tokens.ingest), &json!([account])).await;
        assert_eq!(posted.status(), 200, "{backend}");
        let now = app.clock.now();
        let events = json!([{"id": "fr-1", "type": "fraud_alert", "account_id": "C-1", "at": now.to_rfc3339(),
                             "fields": {"source": "bureau"}}]);
        // Only ingest (and admin) tokens post events; bad events are 422s naming the item.
        assert_eq!(app.post_json("/v1/events", Some(&app.tokens.agent), &events).await.status(), 403);
        let bad = app
            .post_json(
                "/v1/events",
                Some(&app.tokens.ingest),
                &json!([{"id": "x", "type": "fraud", "account_id": "C-1", "at": now.to_rfc3339()}]),
            )
            .await;
        assert_eq!(bad.status(), 422, "{backend}");
        let body: Value = bad.json().await.unwrap();
        assert!(body["error"]["details"][0].as_str().unwrap().starts_with("[0].type: unknown event type"), "{body}");

        let response = app.post_json("/v1/events", Some(&app.tokens.ingest), &events).await;
        assert_eq!(response.status(), 200, "{backend}");
        let report: Value = response.json().await.unwrap();
        let case_id = report["reactions"][0]["case_id"].as_i64().expect("a case");
        let cases: Value = app.get("/v1/cases?queue=fraud", Some(&app.tokens.agent)).await.json().await.unwrap();
        assert_eq!(cases.as_array().unwrap().len(), 1, "{backend}: {cases}");
        assert_eq!(cases[0]["overdue"], false);
        assert_eq!(cases[0]["event_fields"]["source"], "bureau");

        // Past its deadline the open case is overdue.
        app.clock.advance(Duration::hours(5));
        let cases: Value = app.get("/v1/cases?queue=fraud", Some(&app.tokens.manager)).await.json().await.unwrap();
        assert_eq!(cases[0]["overdue"], true, "{backend}");
        // A disposition is required, and must be one of the four.
        let close = format!("/v1/cases/{case_id}/close");
        let missing = app.post_json(&close, Some(&app.tokens.agent), &json!({"note": "checked"})).await;
        assert_eq!(missing.status(), 422, "{backend}");
        let body: Value = missing.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().starts_with("disposition:"), "{body}");
        let wrong = app.post_json(&close, Some(&app.tokens.agent), &json!({"disposition": "maybe"})).await;
        assert_eq!(wrong.status(), 422);
        let closed = app
            .post_json(&close, Some(&app.tokens.agent), &json!({"disposition": "confirmed", "note": "card stolen"}))
            .await;
        assert_eq!(closed.status(), 200, "{backend}");
        let closed: Value = closed.json().await.unwrap();
        assert_eq!((closed["state"].as_str(), closed["sla_met"].as_bool()), (Some("closed"), Some(false)));
        assert_eq!(
            app.post_json(&close, Some(&app.tokens.agent), &json!({"disposition": "resolved"})).await.status(),
            409
        );
        assert_eq!(
            app.post_json("/v1/cases/999999/close", Some(&app.tokens.agent), &json!({"disposition": "resolved"}))
                .await
                .status(),
            404
        );
        let open: Value = app.get("/v1/cases", Some(&app.tokens.agent)).await.json().await.unwrap();
        assert_eq!(open.as_array().unwrap().len(), 0, "{backend}: closed cases leave the open list");

        // The reactions report: one event, one case, closed late, confirmed.
        let period = arrears::report::Period { from: now - Duration::days(1), to: now + Duration::days(1) };
        let order = arrears::report::StageOrder::of(&app.state.strategies.current());
        let rows = arrears::ops::report::reactions(&app.state.db, period, &order, app.clock.now()).await.unwrap();
        let row = rows.iter().find(|row| row.reaction == "fraud review").expect("the fraud review row");
        assert_eq!((row.events, row.cases, row.closed, row.sla_met), (1, 1, 1, 0), "{backend}");
        assert_eq!(row.precision, Some(1.0));
        assert_eq!(row.dispositions.get("confirmed"), Some(&1));
    }
}
