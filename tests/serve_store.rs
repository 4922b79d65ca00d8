//! How `serve` treats its store under load: `/metrics` counts live tasks only and at most once
//! per interval (a scrape never scans the finished tasks, and a busy Prometheus does not count
//! them again and again).

mod common;

use arrears::plan::Task;
use chrono::{DateTime, Duration, Utc};
use common::app::{TestApp, spawn_app};
use sea_orm::ConnectionTrait;

fn human_task(account: &str, now: DateTime<Utc>, queue: &str) -> Task {
    let zone = chrono_tz::Asia::Shanghai;
    Task {
        account_id: account.into(),
        borrower_id: format!("B-{account}"),
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
