//! `arrears serve` over real HTTP on loopback, on SQLite and (when configured) PostgreSQL: roles,
//! JSON errors for every bad request, account and payment ingest (all or nothing, idempotent),
//! a payment in full cancelling open tasks, strategy reload refusal and recovery, health,
//! OpenAPI and metrics.

mod common;

use common::app::{TestApp, spawn_app};
use common::{all_dbs, snapshot};
use entity::{audit_log, tasks};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

/// Every app under test: one per backend.
async fn apps() -> Vec<TestApp> {
    let mut apps = Vec::new();
    for db in all_dbs().await {
        apps.push(spawn_app(db).await);
    }
    apps
}

/// An account record the shipped `consumer-cash` strategy plans for: VIP, 5 days past due at
/// the test clock's start (a human task in queue `senior`).
fn account(id: &str, borrower: &str, amount_due: &str) -> Value {
    json!({
        "account_id": id,
        "borrower_id": borrower,
        "name": "Ada Lovelace",
        "phones": ["+8613800138000"],
        "email": "ada@example.com",
        "timezones": ["Asia/Shanghai"],
        "product": "cash",
        "currency": "CNY",
        "amount_due": amount_due,
        "balance": 5000,
        "due_date": "2026-11-17",
        "tags": ["vip"],
        "flags": [],
        "consent_robot": true,
        "scores": {"loss": 0.25},
        "attrs": {"branch": "north"}
    })
}

/// The error body's code, asserting the body is the contract's JSON error shape.
async fn error_code(response: reqwest::Response, backend: &str) -> (StatusCode, String, Value) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_else(|error| panic!("{backend}: not JSON: {error}"));
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("{backend}: no error.code in {body}"));
    assert!(body["error"]["message"].is_string(), "{backend}: no error.message in {body}");
    assert!(body["error"]["details"].is_array(), "{backend}: no error.details in {body}");
    (status, code.to_string(), body)
}

fn details(body: &Value) -> Vec<String> {
    body["error"]["details"].as_array().into_iter().flatten().filter_map(|d| d.as_str().map(String::from)).collect()
}

async fn json_ok(response: reqwest::Response, backend: &str) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{backend}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{backend}: not JSON ({error}): {text}"))
}

#[tokio::test]
async fn roles_decide_who_may_call_what() {
    for app in apps().await {
        let backend = app.backend();
        let t = &app.tokens;

        let (status, code, _) = error_code(app.get("/v1/strategies", None).await, backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{backend}: no token");
        let unknown = format!("arr_{}", "0".repeat(64));
        let (status, _, _) = error_code(app.get("/v1/strategies", Some(&unknown)).await, backend).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{backend}: unknown token");
        let response = app.client.get(app.url("/v1/strategies")).header("Authorization", "Basic abc").send().await;
        let (status, _, _) = error_code(response.unwrap(), backend).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{backend}: not a bearer token");

        for wrong in [&t.ingest, &t.agent, &t.dialler] {
            let (status, code, _) = error_code(app.get("/v1/strategies", Some(wrong)).await, backend).await;
            assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "forbidden"), "{backend}");
        }
        assert_eq!(app.get("/v1/strategies", Some(&t.admin)).await.status(), StatusCode::OK, "{backend}");

        let batch = json!([account("A-1", "B-1", "100")]);
        for wrong in [&t.agent, &t.dialler] {
            let (status, _, _) = error_code(app.post_json("/v1/accounts", Some(wrong), &batch).await, backend).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{backend}: accounts need ingest");
        }
        assert_eq!(snapshot(&app.db).await.accounts.len(), 0, "{backend}: a refused call writes nothing");
        for right in [&t.ingest, &t.admin] {
            json_ok(app.post_json("/v1/accounts", Some(right), &batch).await, backend).await;
            json_ok(app.get("/v1/accounts/A-1", Some(right)).await, backend).await;
        }
        let (status, _, _) = error_code(app.get("/v1/accounts/A-1", Some(&t.dialler)).await, backend).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend}");
    }
}

#[tokio::test]
async fn bad_requests_are_json_4xx_errors_never_500s() {
    for app in apps().await {
        let backend = app.backend();
        let token = app.tokens.ingest.as_str();
        let raw = |body: &'static str, content_type: &'static str| {
            app.client
                .post(app.url("/v1/accounts"))
                .bearer_auth(token)
                .header("Content-Type", content_type)
                .body(body)
                .send()
        };

        let (status, code, _) = error_code(raw("[{", "application/json").await.unwrap(), backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "malformed_json"), "{backend}");
        let (status, code, _) = error_code(raw("[] []", "application/json").await.unwrap(), backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "malformed_json"), "{backend}: trailing data");
        let (status, code, _) = error_code(raw("[]", "text/plain").await.unwrap(), backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
        let (status, code, body) = error_code(raw("{\"a\": 1}", "application/json").await.unwrap(), backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"), "{backend}: {body}");

        let mut wrong_type = account("A-1", "B-1", "100");
        wrong_type["consent_robot"] = json!("yes");
        let response =
            app.post_json("/v1/accounts", Some(token), &json!([account("A-0", "B-0", "1"), wrong_type])).await;
        let (status, code, body) = error_code(response, backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"), "{backend}");
        assert!(details(&body)[0].starts_with("[1].consent_robot: invalid type"), "{backend}: {body}");

        let mut unknown_field = account("A-1", "B-1", "100");
        unknown_field["colour"] = json!("red");
        let (status, _, body) =
            error_code(app.post_json("/v1/accounts", Some(token), &json!([unknown_field])).await, backend).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}");
        assert!(details(&body)[0].contains("unknown field `colour`"), "{backend}: {body}");

        let mut too_precise = account("A-1", "B-1", "100");
        too_precise["amount_due"] = json!(12345678901234567.25);
        let (status, _, body) =
            error_code(app.post_json("/v1/accounts", Some(token), &json!([too_precise])).await, backend).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}");
        assert!(details(&body)[0].contains("send the amount as a string"), "{backend}: {body}");

        let (status, code, _) = error_code(app.get("/v1/nothing-here", None).await, backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"), "{backend}");
        let response = app.client.delete(app.url("/v1/accounts")).send().await.unwrap();
        assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"), "{backend}");
        let (status, code, _) = error_code(response, backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"), "{backend}");
        let (status, code, _) = error_code(app.get("/v1/accounts/A-404", Some(token)).await, backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"), "{backend}");

        assert_eq!(snapshot(&app.db).await.counts(), [0; 6], "{backend}: nothing was written");
    }
}

#[tokio::test]
async fn a_bad_account_item_is_named_and_nothing_is_written() {
    for app in apps().await {
        let backend = app.backend();
        let mut bad = account("A-2", "B-2", "100");
        bad["timezones"] = json!(["Mars/Olympus"]);
        bad["currency"] = json!("cny");
        let mut opt_out = account("A-3", "B-3", "100");
        opt_out["opt_outs"] = json!(["sms:+15550000000"]);
        let batch = json!([account("A-1", "B-1", "100"), bad, opt_out, account("A-1", "B-1", "100")]);
        let (status, code, body) =
            error_code(app.post_json("/v1/accounts", Some(&app.tokens.ingest), &batch).await, backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{backend}");
        assert_eq!(
            details(&body),
            vec![
                "[1].timezones: \"Mars/Olympus\" is not an IANA time zone (like Europe/London)".to_string(),
                "[1].currency: \"cny\" is not an ISO 4217 currency code (three capital letters, like CNY)".into(),
                "[2].opt_outs: \"sms:+15550000000\" names phone number +15550000000, which is not among \
                 borrower B-3's phones in this request"
                    .into(),
                "[3].account_id: \"A-1\" repeats item [0]; an account appears once per request".into(),
            ],
            "{backend}"
        );
        assert_eq!(snapshot(&app.db).await.counts(), [0; 6], "{backend}: nothing was written");
    }
}

#[tokio::test]
async fn posting_the_same_accounts_again_changes_nothing() {
    for app in apps().await {
        let backend = app.backend();
        let token = Some(app.tokens.ingest.as_str());
        let batch = json!([account("A-1", "B-1", "1200.50"), account("A-2", "B-1", "300")]);
        let first = json_ok(app.post_json("/v1/accounts", token, &batch).await, backend).await;
        assert_eq!(first["accounts"], json!({"inserted": 2, "updated": 0, "unchanged": 0}), "{backend}");
        assert_eq!(first["borrowers"]["inserted"], 1, "{backend}");
        let before = snapshot(&app.db).await;

        app.clock.advance(chrono::Duration::hours(1));
        let again = json_ok(app.post_json("/v1/accounts", token, &batch).await, backend).await;
        assert_eq!(again["accounts"], json!({"inserted": 0, "updated": 0, "unchanged": 2}), "{backend}");
        assert_eq!(snapshot(&app.db).await, before, "{backend}: a repeat changes nothing, updated_at included");

        let changed = json!([account("A-1", "B-1", "99.99")]);
        let report = json_ok(app.post_json("/v1/accounts", token, &changed).await, backend).await;
        assert_eq!(report["accounts"], json!({"inserted": 0, "updated": 1, "unchanged": 0}), "{backend}");
        let shown = json_ok(app.get("/v1/accounts/A-1", token).await, backend).await;
        assert_eq!(shown["amount_due"], "99.99", "{backend}: money is exact");
        assert_eq!(shown["borrower"]["contact_points"].as_array().map(Vec::len), Some(2), "{backend}");
        assert_eq!(shown["scores"], json!({"loss": 0.25}), "{backend}");
    }
}

#[tokio::test]
async fn payments_are_idempotent_by_reference() {
    for app in apps().await {
        let backend = app.backend();
        let token = Some(app.tokens.ingest.as_str());
        json_ok(app.post_json("/v1/accounts", token, &json!([account("A-1", "B-1", "1200.50")])).await, backend).await;
        let payment = json!({"account_id": "A-1", "amount": "200.25", "paid_at": "2026-11-22T09:00:00+08:00", "reference": "P-1"});

        let first = json_ok(app.post_json("/v1/payments", token, &json!([payment])).await, backend).await;
        assert_eq!((first["inserted"].as_u64(), &first["paid_in_full"]), (Some(1), &json!([])), "{backend}");
        let again = json_ok(app.post_json("/v1/payments", token, &json!([payment])).await, backend).await;
        assert_eq!((again["inserted"].as_u64(), &again["duplicates"]), (Some(0), &json!(["P-1"])), "{backend}");
        let shown = json_ok(app.get("/v1/accounts/A-1", token).await, backend).await;
        assert_eq!((shown["amount_due"].as_str(), shown["balance"].as_str()), (Some("1000.25"), Some("4799.75")));
        let before = snapshot(&app.db).await;

        let mut other = payment.clone();
        other["amount"] = json!(5);
        let (status, code, body) =
            error_code(app.post_json("/v1/payments", token, &json!([other])).await, backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "conflict"), "{backend}");
        assert!(details(&body)[0].starts_with("[0].reference: \"P-1\" is already recorded"), "{backend}: {body}");

        let unknown =
            json!({"account_id": "A-404", "amount": 1, "paid_at": "2026-11-22T09:00:00Z", "reference": "P-2"});
        let (status, code, body) =
            error_code(app.post_json("/v1/payments", token, &json!([unknown])).await, backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{backend}");
        assert!(details(&body)[0].starts_with("[0].account_id: \"A-404\" is not a known account"), "{body}");
        assert_eq!(snapshot(&app.db).await, before, "{backend}: refused batches write nothing");
    }
}

#[tokio::test]
async fn a_payment_in_full_cancels_the_open_tasks_and_is_audited() {
    for app in apps().await {
        let backend = app.backend();
        let token = Some(app.tokens.ingest.as_str());
        let batch = json!([account("A-1", "B-1", "1200.50"), account("A-2", "B-2", "80")]);
        json_ok(app.post_json("/v1/accounts", token, &batch).await, backend).await;
        let strategies = app.state.strategies.current();
        let (_, plan) = arrears::ops::plan_collect(&app.db, &strategies, app.clock.now(), false).await.unwrap();
        let planned = plan.tasks.iter().filter(|task| &*task.account_id == "A-1").count();
        assert!(planned > 0, "{backend}: the account has tasks to cancel");

        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        assert!(
            metrics.contains(&format!("arrears_tasks{{channel=\"human\",queue=\"senior\",state=\"planned\"}} {}", 2)),
            "{backend}: task gauges by queue and state:\n{metrics}"
        );

        let partial = json!([{"account_id": "A-1", "amount": "200.50", "paid_at": "2026-11-22T09:10:00+08:00", "reference": "P-1"}]);
        let report = json_ok(app.post_json("/v1/payments", token, &partial).await, backend).await;
        assert_eq!((report["paid_in_full"].clone(), report["tasks_cancelled"].as_u64()), (json!([]), Some(0)));

        app.clock.advance(chrono::Duration::minutes(30));
        let rest =
            json!([{"account_id": "A-1", "amount": 1000, "paid_at": "2026-11-22T09:20:00+08:00", "reference": "P-2"}]);
        let report = json_ok(app.post_json("/v1/payments", token, &rest).await, backend).await;
        assert_eq!(report["paid_in_full"], json!(["A-1"]), "{backend}");
        assert_eq!(report["tasks_cancelled"].as_u64(), Some(planned as u64), "{backend}");

        let shown = json_ok(app.get("/v1/accounts/A-1", token).await, backend).await;
        assert_eq!(shown["amount_due"], "0", "{backend}");
        for task in shown["tasks"].as_array().unwrap() {
            assert_eq!(
                (task["state"].as_str(), task["state_reason"].as_str()),
                (Some("cancelled"), Some("paid_in_full"))
            );
            assert_eq!(task["state_changed_at"], "2026-11-22T01:30:00Z", "{backend}: stamped with the clock");
        }
        let others = tasks::Entity::find().filter(tasks::Column::AccountId.eq("A-2")).all(&app.db.db).await.unwrap();
        assert!(others.iter().all(|task| task.state == "planned"), "{backend}: other accounts keep their tasks");

        let audit = audit_log::Entity::find()
            .filter(audit_log::Column::Action.eq("account.paid_in_full"))
            .all(&app.db.db)
            .await
            .unwrap();
        assert_eq!(audit.len(), 1, "{backend}");
        assert_eq!(audit[0].entity_id, "A-1", "{backend}");
        assert!(audit[0].actor.starts_with("token:"), "{backend}: the token is the actor: {}", audit[0].actor);
        let detail: Value = serde_json::from_str(&audit[0].detail).unwrap();
        assert_eq!(detail["payments"], json!(["P-2"]), "{backend}");
        assert_eq!(detail["cancelled_tasks"].as_array().map(Vec::len), Some(planned), "{backend}");
    }
}

#[tokio::test]
async fn a_broken_strategy_reload_is_refused_and_the_old_set_keeps_serving() {
    for app in apps().await {
        let backend = app.backend();
        let admin = Some(app.tokens.admin.as_str());
        let before = json_ok(app.get("/v1/strategies", admin).await, backend).await;
        let file = app.strategies_dir.join("consumer-cash.toml");
        let good = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, good.replacen("channel = \"sms\"", "channel = \"pigeon\"", 1)).unwrap();

        let (status, code, body) =
            error_code(app.post_json("/v1/strategies/reload", admin, &json!({})).await, backend).await;
        assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "strategies_invalid"), "{backend}");
        let errors = details(&body);
        let line = good.lines().position(|line| line.contains("channel = \"sms\"")).unwrap() + 1;
        let expected = format!("{}:{line}:", file.display());
        assert!(errors.iter().any(|error| error.starts_with(&expected) && error.contains("pigeon")), "{errors:?}");

        let during = json_ok(app.get("/v1/strategies", admin).await, backend).await;
        assert_eq!(during["strategies"], before["strategies"], "{backend}: the running set is kept");
        assert_eq!(during["last_refusal"]["errors"], json!(errors), "{backend}");
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        assert!(metrics.contains("arrears_strategy_reload_refusals_total 1"), "{backend}:\n{metrics}");
        let refused = audit_log::Entity::find()
            .filter(audit_log::Column::Action.eq("strategy.reload_refused"))
            .all(&app.db.db)
            .await
            .unwrap();
        assert_eq!(refused.len(), 1, "{backend}: the refusal is audited");

        std::fs::write(&file, format!("{good}\n# reviewed\n")).unwrap();
        let reloaded = json_ok(app.post_json("/v1/strategies/reload", admin, &json!({})).await, backend).await;
        let cash = reloaded["strategies"].as_array().unwrap().iter().find(|s| s["name"] == "consumer-cash").unwrap();
        assert_eq!(cash["new_version"], true, "{backend}");
        let after = json_ok(app.get("/v1/strategies", admin).await, backend).await;
        let hash = |listing: &Value| {
            listing["strategies"].as_array().unwrap().iter().find(|s| s["name"] == "consumer-cash").unwrap()["hash"]
                .clone()
        };
        assert_ne!(hash(&after), hash(&before), "{backend}: the fixed file is running");
        assert_eq!(hash(&after), cash["hash"], "{backend}");
        assert_eq!(after["last_refusal"], Value::Null, "{backend}");
        let versions = entity::strategy_versions::Entity::find().all(&app.db.db).await.unwrap();
        assert_eq!(versions.len(), 3, "{backend}: two at start, one new version");
    }
}

#[tokio::test]
async fn health_openapi_and_metrics_need_no_token() {
    for app in apps().await {
        let backend = app.backend();
        assert_eq!(json_ok(app.get("/healthz", None).await, backend).await, json!({"status": "ok"}));

        let openapi = json_ok(app.get("/openapi.json", None).await, backend).await;
        for path in
            ["/healthz", "/v1/accounts", "/v1/accounts/{id}", "/v1/payments", "/v1/strategies", "/v1/strategies/reload"]
        {
            assert!(openapi["paths"][path].is_object(), "{backend}: {path} missing from the OpenAPI document");
        }
        assert_eq!(openapi["components"]["securitySchemes"]["bearer"]["scheme"], "bearer", "{backend}");
        assert!(openapi["components"]["schemas"]["AccountIn"].is_object(), "{backend}");

        app.get("/v1/strategies", None).await;
        let response = app.get("/metrics", None).await;
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"), "{backend}");
        let metrics = response.text().await.unwrap();
        for line in [
            "arrears_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
            "arrears_http_requests_total{method=\"GET\",route=\"/v1/strategies\",status=\"401\"} 1",
            "arrears_strategy_reload_refusals_total 0",
        ] {
            assert!(metrics.lines().any(|l| l == line), "{backend}: no `{line}` in\n{metrics}");
        }
    }
}

#[tokio::test]
async fn health_is_503_when_the_database_is_gone() {
    let app = spawn_app(common::sqlite_db().await).await;
    app.db.db.clone().close().await.unwrap();
    let (status, code, _) = error_code(app.get("/healthz", None).await, "sqlite").await;
    assert_eq!((status, code.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
}

#[tokio::test]
async fn token_create_prints_only_a_token_that_then_authenticates() {
    for app in apps().await {
        let backend = app.backend();
        let run = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_arrears"))
                .args(["token", "create"])
                .args(args)
                .env("DATABASE_URL", &app.db.url)
                .current_dir(app.strategies_dir.parent().unwrap())
                .output()
                .unwrap()
        };
        let refused = run(&["--role", "agent"]);
        assert!(!refused.status.success(), "{backend}");
        assert!(String::from_utf8_lossy(&refused.stderr).contains("needs --agent"), "{backend}");
        assert!(refused.stdout.is_empty(), "{backend}");
        assert!(!run(&["--role", "ingest", "--agent", "x"]).status.success(), "{backend}");

        let created = run(&["--role", "admin", "--label", "ops"]);
        assert!(created.status.success(), "{backend}: {}", String::from_utf8_lossy(&created.stderr));
        let stdout = String::from_utf8(created.stdout).unwrap();
        let token = stdout.strip_suffix('\n').unwrap();
        assert!(token.starts_with("arr_") && token.len() == 68 && !token.contains(char::is_whitespace), "{stdout:?}");
        assert_eq!(app.get("/v1/strategies", Some(token)).await.status(), StatusCode::OK, "{backend}");
        let stored = entity::api_tokens::Entity::find().all(&app.db.db).await.unwrap();
        assert!(stored.iter().all(|row| !row.token_hash.contains(&token[4..])), "{backend}: only the hash is kept");
    }
}
