//! How `serve` treats its store under load: `/metrics` counts live tasks only and at most once
//! per interval (a scrape never scans the finished tasks, and a busy Prometheus does not count
//! them again and again), and a request that finds SQLite's write lock taken for too long is
//! answered 503 with `Retry-After` (the sender tries again; nothing is lost silently), never 500.

mod common;

use arrears::plan::Task;
use chrono::{DateTime, Duration, Utc};
use common::app::{TestApp, spawn_app};
use reqwest::StatusCode;
use sea_orm::ConnectionTrait;

fn human_task(account: &str, now: DateTime<Utc>, queue: &str) -> Task {
    let zone = chrono_tz::Asia::Shanghai;
    Task {
        account_id: account.into(),
        borrower_id: format!("B-{account}").into(),
        local_date: now.with_timezone(&zone).date_naive(),
        dpd: 10,
        stage: "M1".into(),
        strategy: "consumer-cash".into(),
        rule: "broken promises to agents".into(),
        arm: None,
        channel: arrears::domain::Channel::Human,
        queue: Some(queue.into()),
        template: None,
        attempt: 1,
        calls_allowed: 2,
        not_before: now.with_timezone(&zone).fixed_offset(),
        not_after: (now + Duration::hours(4)).with_timezone(&zone).fixed_offset(),
        priority: 1.0,
        p_contact: None,
    }
}

async fn gauge(app: &TestApp, queue: &str, state: &str) -> Option<String> {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let prefix = format!("arrears_tasks{{channel=\"human\",queue=\"{queue}\",state=\"{state}\"}} ");
    text.lines().find_map(|line| line.strip_prefix(prefix.as_str()).map(str::to_string))
}

#[tokio::test]
async fn metrics_count_live_tasks_only_and_at_most_every_15_seconds() {
    for db in common::all_dbs().await {
        let app = spawn_app(db).await;
        let backend = app.backend();
        let now = app.clock.now();
        let tasks: Vec<Task> = (0..5).map(|n| human_task(&format!("A-{n}"), now, "metrics")).collect();
        arrears::store::raw_insert_tasks(&app.db, &tasks).await.unwrap();
        // Three of them are finished: done, cancelled, expired.
        app.db
            .execute_unprepared(
                "UPDATE tasks SET state = CASE account_id WHEN 'A-0' THEN 'done' WHEN 'A-1' THEN 'cancelled' \
                 WHEN 'A-2' THEN 'expired' ELSE state END",
            )
            .await
            .unwrap();

        assert_eq!(gauge(&app, "metrics", "planned").await.as_deref(), Some("2"), "{backend}");
        for finished in ["done", "cancelled", "expired"] {
            assert_eq!(gauge(&app, "metrics", finished).await, None, "{backend}: finished tasks are not counted");
        }
        // A new task: scrapes within 15 s serve the kept count; the next one counts again.
        arrears::store::raw_insert_tasks(&app.db, &[human_task("A-9", now, "metrics")]).await.unwrap();
        app.clock.advance(Duration::seconds(14));
        assert_eq!(gauge(&app, "metrics", "planned").await.as_deref(), Some("2"), "{backend}: kept");
        app.clock.advance(Duration::seconds(1));
        assert_eq!(gauge(&app, "metrics", "planned").await.as_deref(), Some("3"), "{backend}: counted again");
    }
}

#[tokio::test]
async fn a_payment_that_finds_sqlite_locked_too_long_is_answered_503_with_retry_after_and_succeeds_again() {
    let app = spawn_app(common::sqlite_db().await).await;
    let token = Some(app.tokens.ingest.as_str());
    let accounts = serde_json::json!([{
        "account_id": "A-1", "borrower_id": "B-1", "name": "Ada Lovelace", "phones": ["+8613800138000"],
        "timezones": ["Asia/Shanghai"], "product": "cash", "currency": "CNY", "amount_due": "300",
        "balance": 3000, "due_date": "2026-11-10", "consent_robot": true,
    }]);
    let response = app.post_json("/v1/accounts", token, &accounts).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let payment = serde_json::json!([{
        "account_id": "A-1", "amount": "100", "paid_at": "2026-11-22T00:30:00Z", "reference": "P-busy",
    }]);

    // Another process holds the write lock (say, a long import) past the store's busy wait.
    let other = arrears::store::connect(&app.db.url).await.unwrap();
    let holder = arrears::store::begin_write(&other).await.unwrap();
    let response = app.post_json("/v1/payments", token, &payment).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    holder.rollback().await.unwrap();

    // Sent again once the lock is free: stored, once.
    let response = app.post_json("/v1/payments", token, &payment).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let account = arrears::store::load_account(&app.db.db, "A-1").await.unwrap().unwrap();
    assert_eq!(account.portfolio.accounts[0].amount_due.to_string(), "200");
}
