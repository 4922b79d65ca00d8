//! Real `arrears serve` processes: a `kill -9` in the middle of delivering webhooks loses
//! nothing (after a restart every message arrives, under the same `webhook-id`), and two
//! instances on one PostgreSQL database plan the book exactly once.

mod common;

use arrears::dispatch::SigningSecret;
use arrears::store::{self, NewDelivery};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{Duration, Utc};
use entity::prelude::{Deliveries, PlanRuns};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Starts `arrears serve` on `database_url` with `config`.
fn serve(database_url: &str, config: &Path) -> Child {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new(env!("CARGO_BIN_EXE_arrears"))
        .arg("--database-url")
        .arg(database_url)
        .arg("--strategies")
        .arg(root.join("strategies"))
        .arg("--templates")
        .arg(root.join("templates"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("ARREARS_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start arrears serve")
}

/// Waits (polling, at most `limit` seconds) until `done` holds.
async fn wait_until<F, Fut>(limit: u64, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed().as_secs() < limit, "gave up waiting: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

type Received = Arc<Mutex<Vec<String>>>;

async fn slow_receiver(secret: &str) -> (Received, String) {
    let received: Received = Arc::default();
    let verifier = Arc::new(standardwebhooks::Webhook::new(secret).unwrap());
    let state = (Arc::clone(&received), verifier);
    let app = axum::Router::new()
        .route(
            "/hooks",
            axum::routing::post(
                |State((received, verifier)): State<(Received, Arc<standardwebhooks::Webhook>)>,
                 headers: HeaderMap,
                 body: String| async move {
                    if verifier.verify(body.as_bytes(), &headers).is_err() {
                        return StatusCode::UNAUTHORIZED;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
                    received.lock().unwrap().push(id.to_string());
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (received, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_while_delivering_loses_nothing_and_keeps_the_ids() {
    let secret = SigningSecret::generate();
    for db in common::all_dbs().await {
        let (received, url) = slow_receiver(&secret).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("arrears.toml");
        std::fs::write(
            &config,
            format!(
                "bind = \"127.0.0.1:0\"\n[endpoints.robot]\nurl = \"{url}\"\nsecret = \"{secret}\"\ntimeout = \"1s\"\nconcurrency = 2\n"
            ),
        )
        .unwrap();
        let now = Utc::now() - Duration::seconds(1);
        let messages: Vec<NewDelivery> = (0..40)
            .map(|n| NewDelivery {
                webhook_id: format!("msg_durable_{n:02}"),
                task_id: None,
                endpoint: "robot".into(),
                event: "task.ready".into(),
                body: format!(r#"{{"type":"task.ready","timestamp":"{}","data":{{"n":{n}}}}}"#, now.to_rfc3339()),
                send_at: now,
            })
            .collect();
        store::enqueue_deliveries(&*db, &messages, now).await.unwrap();

        let mut first = serve(&db.url, &config);
        wait_until(60, "the first deliveries", || async { received.lock().unwrap().len() >= 6 }).await;
        first.kill().unwrap(); // SIGKILL
        first.wait().unwrap();
        let delivered =
            Deliveries::find().filter(entity::deliveries::Column::State.eq("delivered")).count(&db.db).await.unwrap();
        assert!(delivered < 40, "{}: the kill came too late to test anything ({delivered})", db.backend);

        let mut second = serve(&db.url, &config);
        wait_until(60, "every delivery", || async {
            Deliveries::find().filter(entity::deliveries::Column::State.eq("delivered")).count(&db.db).await.unwrap()
                == 40
        })
        .await;
        second.kill().unwrap();
        second.wait().unwrap();

        let received = received.lock().unwrap().clone();
        let mut unique = received.clone();
        unique.sort();
        unique.dedup();
        let expected: Vec<String> = messages.iter().map(|m| m.webhook_id.clone()).collect();
        assert_eq!(unique, expected, "{}: every message arrived, under its own id", db.backend);
        // Only messages in flight at the kill may arrive twice (same id: receivers de-duplicate).
        assert!(received.len() - unique.len() <= 2, "{}: {} duplicates", db.backend, received.len() - unique.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_instances_on_one_postgresql_database_plan_once() {
    let Some(db) = common::postgres_db().await else {
        return; // A PostgreSQL-only test: without ARREARS_TEST_DATABASE_URL there is no shared server.
    };
    let dir = tempfile::tempdir().unwrap();
    arrears::demo::write_portfolio(dir.path(), 400, 5, Utc::now()).unwrap();
    arrears::import::import_file(&db, arrears::import::ImportKind::Accounts, &dir.path().join("accounts.csv"))
        .await
        .unwrap();
    let config = dir.path().join("arrears.toml");
    // A plan every minute: the latest occurrence has no plan yet, so both instances want to plan.
    std::fs::write(&config, "bind = \"127.0.0.1:0\"\n[schedule]\nplan = \"0 * * * * *\"\n").unwrap();
    let mut instances = [serve(&db.url, &config), serve(&db.url, &config)];
    wait_until(60, "a plan run", || async { PlanRuns::find().count(&db.db).await.unwrap() >= 1 }).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let runs = PlanRuns::find().all(&db.db).await.unwrap();
    let minute = |at: chrono::DateTime<Utc>| at.timestamp() / 60;
    let per_minute = runs.iter().fold(std::collections::BTreeMap::new(), |mut counts, run| {
        *counts.entry(minute(run.as_of)).or_insert(0) += 1;
        counts
    });
    for instance in &mut instances {
        instance.kill().unwrap();
        instance.wait().unwrap();
    }
    assert!(per_minute.values().all(|count| *count == 1), "two instances planned the same occurrence: {per_minute:?}");
    assert!(store::count_tasks(&db.db).await.unwrap() > 0, "the plan was saved");
}

/// `arrears plan` started while another instance plans (it holds the planner lock, and its run
/// is unfinished only because it is still writing) refuses with a clear message instead of
/// continuing that run beside it; once the lock is free it plans.
#[tokio::test]
async fn arrears_plan_does_not_continue_a_run_another_instance_is_writing() {
    for test_db in common::all_dbs().await {
        let now = Utc::now();
        assert!(
            store::try_lock(
                &test_db.db,
                arrears::scheduler::PLANNER_LOCK,
                "serve on another host",
                now,
                now + Duration::minutes(5)
            )
            .await
            .unwrap()
        );
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let plan = || {
            Command::new(env!("CARGO_BIN_EXE_arrears"))
                .arg("--database-url")
                .arg(&test_db.url)
                .arg("--strategies")
                .arg(root.join("strategies"))
                .arg("--templates")
                .arg(root.join("templates"))
                .arg("plan")
                .env("ARREARS_LOG", "error")
                .output()
                .expect("cannot run arrears plan")
        };
        let refused = plan();
        assert!(!refused.status.success(), "{}", test_db.backend);
        let message = String::from_utf8_lossy(&refused.stderr);
        assert!(message.contains("another instance is planning now"), "{}: {message}", test_db.backend);
        assert_eq!(PlanRuns::find().count(&test_db.db).await.unwrap(), 0, "{}: nothing planned", test_db.backend);

        store::unlock(&test_db.db, arrears::scheduler::PLANNER_LOCK, "serve on another host", Utc::now())
            .await
            .unwrap();
        let planned = plan();
        assert!(planned.status.success(), "{}: {}", test_db.backend, String::from_utf8_lossy(&planned.stderr));
        assert_eq!(PlanRuns::find().count(&test_db.db).await.unwrap(), 1, "{}", test_db.backend);
    }
}
