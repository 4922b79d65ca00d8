//! Webhook delivery benchmark (issue #4), as a ratio against the physical limit measured in the
//! same run:
//!
//! - **plain**: the same bodies POSTed to the same loopback receiver by `C` concurrent tasks of
//!   this process, with no database at all;
//! - **arrears**: the same number of messages enqueued in the outbox (SQLite file; PostgreSQL
//!   when `ARREARS_BENCH_DATABASE_URL` or `ARREARS_TEST_DATABASE_URL` is set) and delivered by
//!   the real `Dispatcher` (claim, sign, POST, record every try durably), steps back to back as
//!   `serve` runs them while there is work. Latency: from the moment the messages became due
//!   (their release) to their receipt, p50 and p99.
//!
//! `cargo bench --bench deliver`; `ARREARS_BENCH_MESSAGES` (default 20,000) and
//! `ARREARS_BENCH_CONCURRENCY` (default 64).

use arrears::config::Config;
use arrears::dispatch::{Dispatcher, SigningSecret};
use arrears::store::{self, NewDelivery};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use sea_orm::ConnectionTrait;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Receipt instants by message number.
type Receipts = Arc<Mutex<Vec<(usize, Instant)>>>;

async fn receiver() -> (Receipts, String) {
    let receipts: Receipts = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hooks",
            axum::routing::post(|State(receipts): State<Receipts>, headers: HeaderMap| async move {
                let number = headers
                    .get("webhook-id")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|id| id.rsplit('_').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(usize::MAX);
                receipts.lock().unwrap_or_else(|p| p.into_inner()).push((number, Instant::now()));
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(Arc::clone(&receipts));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
    (receipts, url)
}

fn body(n: usize) -> String {
    format!(
        r#"{{"type":"task.ready","timestamp":"2026-11-22T01:00:00Z","data":{{"task_id":"{n}","account_id":"A{n:08}","channel":"robot","to":"+8613800000000","message":"Hello, this is a reminder about your payment."}}}}"#
    )
}

async fn plain(url: &str, messages: usize, concurrency: usize) -> f64 {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, next) = (client.clone(), url.to_string(), Arc::clone(&next));
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= messages {
                    break;
                }
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", format!("plain_{n}"))
                    .body(body(n))
                    .send()
                    .await
                    .expect("post");
                assert!(response.status().is_success());
            }
        });
    }
    while workers.join_next().await.is_some() {}
    messages as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn arrears_run(
    url: &str,
    database: &str,
    messages: usize,
    concurrency: usize,
    receipts: &Receipts,
) -> (f64, f64, f64) {
    let db = store::connect(database).await.expect("connect");
    store::migrate(&db).await.expect("migrate");
    db.execute_unprepared("DELETE FROM deliveries").await.expect("clear");
    let secret = SigningSecret::generate();
    let config: Config = toml::from_str(&format!(
        "[endpoints.robot]\nurl = \"{url}\"\nsecret = \"{secret}\"\nconcurrency = {concurrency}\ntimeout = \"10s\"\n"
    ))
    .expect("config");
    let dispatcher = Dispatcher::from_config(&config).expect("dispatcher");
    // The messages are about no task: the claim-time check passes them as they are.
    let fallback = arrears::policy::Policy::builtin("cn-gbt-45251", &Default::default()).expect("policy");
    let now = Utc::now();
    let rows: Vec<NewDelivery> = (0..messages)
        .map(|n| NewDelivery {
            webhook_id: format!("task_{n}"),
            task_id: None,
            endpoint: "robot".into(),
            event: "task.ready".into(),
            body: body(n),
            send_at: now,
        })
        .collect();
    store::enqueue_deliveries(&db, &rows, now).await.expect("enqueue");
    receipts.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let released = Instant::now();
    let mut delivered = 0;
    while delivered < messages as u64 {
        let report = dispatcher.deliver_due(&db, &Default::default(), &fallback, Utc::now()).await.expect("deliver");
        assert_eq!(report.dead + report.gone, 0);
        delivered += report.delivered;
        if report.claimed == 0 {
            break;
        }
    }
    let elapsed = released.elapsed().as_secs_f64();
    assert_eq!(delivered, messages as u64, "every message delivered");
    let recorded = store::deliveries_in_state(&db, "delivered", u64::MAX >> 1).await.expect("read back").len();
    assert_eq!(recorded, messages, "every delivery durably recorded");
    let mut latencies: Vec<f64> = receipts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(_, at)| at.duration_since(released).as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    (messages as f64 / elapsed, percentile(&latencies, 0.5), percentile(&latencies, 0.99))
}

/// A new, empty database `arrears_bench_deliver` on the server `url` points at.
async fn fresh_postgres_database(url: &str) -> String {
    let admin = sea_orm::Database::connect(url).await.expect("connect to PostgreSQL");
    let name = "arrears_bench_deliver";
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.expect("drop");
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create");
    let (base, _) = url.rsplit_once('/').expect("a database URL ends with /NAME");
    format!("{base}/{name}")
}

fn main() {
    let messages: usize = std::env::var("ARREARS_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let concurrency: usize = std::env::var("ARREARS_BENCH_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (receipts, url) = receiver().await;
        println!("# webhook delivery: {messages} messages, {concurrency} concurrent requests, loopback receiver");
        let plain_rate = plain(&url, messages, concurrency).await;
        println!("plain concurrent POSTs (no database): {plain_rate:.0} messages/s");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut stores = vec![("SQLite", format!("sqlite://{}?mode=rwc", dir.path().join("outbox.db").display()))];
        if let Ok(url) =
            std::env::var("ARREARS_BENCH_DATABASE_URL").or_else(|_| std::env::var("ARREARS_TEST_DATABASE_URL"))
        {
            stores.push(("PostgreSQL", fresh_postgres_database(&url).await));
        }
        for (name, database) in stores {
            let (rate, p50, p99) = arrears_run(&url, &database, messages, concurrency, &receipts).await;
            println!(
                "{name}: arrears outbox {rate:.0} messages/s = {:.2}x plain (target >= 0.5x); receipt latency from release p50 {p50:.0} ms, p99 {p99:.0} ms",
                rate / plain_rate
            );
        }
    });
}
