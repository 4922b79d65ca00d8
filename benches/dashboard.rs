//! Dashboard page loads on a big book: how long each page takes over HTTP on loopback, the
//! first time (nothing cached: every aggregate read from the store), the next time (from the
//! cache), and once the cache has expired (the stale page at once, refreshed behind it).
//!
//! The book is the demo's synthetic portfolio (`ops::synthetic`: accounts, a week of robot
//! attempts, promises) imported through `arrears import`'s code, planned and saved three times
//! (8 days, 3 days and 1 hour before "now", so the roll matrix has states at both bounds),
//! 5 % of the accounts paying during the week, the promise watcher run, and a contact model
//! learnt. The server is the real `arrears::http::router` with the repository's strategies and
//! a manual clock, in the same process; the client is reqwest with a manager token.
//!
//! `cargo bench --bench dashboard` (1,000,000 accounts, SQLite);
//! `ARREARS_BENCH_ACCOUNTS=100000` for a quicker run; `ARREARS_BENCH_DATABASE_URL=postgres://…`
//! (a server whose user may create databases) to measure PostgreSQL instead.
//! `ARREARS_BENCH_BOOK=DIR` (SQLite) keeps the book in `DIR` and, when `DIR` already holds
//! one of the same size, loads the pages on it without building it again.

use arrears::clock::Clock;
use arrears::config::Config;
use arrears::http::{self, AppState};
use arrears::import::ImportKind;
use arrears::ops::{self, Settings};
use chrono::{DateTime, Duration, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sea_orm::ConnectionTrait;
use std::path::Path;
use std::time::Instant;

const NOW: &str = "2026-11-22T01:00:00Z";

const PAGES: &[&str] = &[
    "/dashboard",
    "/dashboard/strategies",
    "/dashboard/experiments",
    "/dashboard/timing",
    "/dashboard/operations",
    "/dashboard/roll?from_state=M1&to_state=M2",
];

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

fn accounts() -> usize {
    std::env::var("ARREARS_BENCH_ACCOUNTS").ok().and_then(|value| value.parse().ok()).unwrap_or(1_000_000)
}

fn step(what: &str, started: Instant) {
    println!("  {what}: {:.1} s", started.elapsed().as_secs_f64());
}

/// Payments for 5 % of the accounts, at random instants of the week before `now`.
fn write_payments(dir: &Path, accounts: usize, now: DateTime<Utc>) -> std::path::PathBuf {
    let path = dir.join("payments.csv");
    let mut rng = SmallRng::seed_from_u64(7);
    let mut out = String::from("account_id,amount,paid_at,reference\n");
    for index in 1..=accounts {
        if rng.random_bool(0.05) {
            let at = now - Duration::minutes(rng.random_range(60..7 * 24 * 60));
            let amount = format!("{}.{:02}", rng.random_range(20..400), rng.random_range(0..100));
            out.push_str(&format!("A{index:08},{amount},{},bench-{index}\n", at.to_rfc3339()));
        }
    }
    std::fs::write(&path, out).expect("payments.csv");
    path
}

async fn database(dir: &Path) -> (String, Option<(String, String)>) {
    match std::env::var("ARREARS_BENCH_DATABASE_URL").ok().filter(|url| !url.is_empty()) {
        Some(server) => {
            let name = format!("arrears_bench_dashboard_{}", std::process::id());
            let admin = arrears::store::connect(&server).await.expect("connect to the PostgreSQL server");
            admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create database");
            admin.close().await.ok();
            let base = server.rsplit_once('/').map_or(server.as_str(), |(base, _)| base).to_string();
            (format!("{base}/{name}"), Some((server, name)))
        }
        None => (format!("sqlite://{}?mode=rwc", dir.join("arrears.db").display()), None),
    }
}

/// Builds the book in `dir` (see the module documentation) and answers a connection to it.
async fn build_book(
    dir: &Path,
    url: &str,
    accounts: usize,
    now: DateTime<Utc>,
    set: &arrears::strategy::StrategySet,
) -> sea_orm::DatabaseConnection {
    let started = Instant::now();
    ops::synthetic::write_portfolio(dir, accounts, 42, now).expect("synthetic book");
    let db = arrears::store::connect(url).await.expect("connect");
    arrears::store::migrate(&db).await.expect("migrate");
    let setup = now - Duration::days(9);
    arrears::import::import_file_at(&db, ImportKind::Accounts, &dir.join("accounts.csv"), setup)
        .await
        .expect("import accounts");
    step("accounts imported", started);
    for days in [8, 3] {
        ops::plan_and_persist(&db, set, now - Duration::days(days), false).await.expect("plan");
        step(&format!("planned {days} days before"), started);
    }
    for (kind, file) in [(ImportKind::Attempts, "attempts.csv"), (ImportKind::Promises, "promises.csv")] {
        arrears::import::import_file_at(&db, kind, &dir.join(file), now - Duration::hours(2)).await.expect("import");
    }
    let payments = write_payments(dir, accounts, now);
    arrears::import::import_file_at(&db, ImportKind::Payments, &payments, now - Duration::hours(2))
        .await
        .expect("payments");
    ops::work::evaluate_promises(&db, now - Duration::hours(2), 1).await.expect("promises");
    ops::plan_and_persist(&db, set, now - Duration::hours(1), false).await.expect("plan");
    ops::learn::learn(&db, now, 30).await.expect("learn");
    step("history written (3 plans, payments, promises, model)", started);
    db
}

async fn run() {
    let accounts = accounts();
    let now: DateTime<Utc> = NOW.parse().expect("instant");
    let temporary = tempfile::tempdir().expect("tempdir");
    let kept = std::env::var_os("ARREARS_BENCH_BOOK").map(std::path::PathBuf::from);
    let dir = kept.as_deref().unwrap_or(temporary.path());
    std::fs::create_dir_all(dir).expect("book directory");
    let (url, drop_after) = database(dir).await;
    let store = if drop_after.is_some() { "PostgreSQL" } else { "SQLite" };
    println!("# dashboard page loads: {accounts} accounts, {store}, server and client in one process");
    let ready = dir.join(format!("book-ready-{accounts}"));
    let reuse = kept.is_some() && drop_after.is_none() && ready.exists();

    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = Settings {
        database_url: url.clone(),
        strategies_dir: repo.join("strategies"),
        templates_dir: repo.join("templates"),
        config: Config::load(Path::new("/nonexistent/arrears.toml"), false).expect("configuration"),
    };
    let set = ops::load_strategies(&settings, &settings.strategies_dir).unwrap_or_else(|errors| panic!("{errors}"));
    let db = if reuse {
        println!("  reusing the book in {}", dir.display());
        arrears::store::connect(&url).await.expect("connect")
    } else {
        let db = build_book(dir, &url, accounts, now, &set).await;
        std::fs::write(&ready, "").expect("marker");
        db
    };
    let tasks = arrears::store::count_tasks(&db).await.expect("count");
    println!("  {tasks} tasks stored");

    ops::serve::record_versions(&db, &set, now, "bench").await.expect("versions");
    let clock = Clock::manual(now);
    let token = ops::tokens::create_token(&db, ops::tokens::Role::Manager, None, None, now).await.expect("token");
    let state = AppState::with_strategies(db.clone(), settings, set, clock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = http::router(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let load = |path: &'static str| {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        async move {
            let started = Instant::now();
            let response = client.get(format!("{base}{path}")).bearer_auth(&token).send().await.expect("GET");
            let status = response.status();
            let bytes = response.bytes().await.expect("body").len();
            assert_eq!(status, 200, "{path}");
            (started.elapsed().as_secs_f64(), bytes)
        }
    };

    println!("\n| page | first load (cold) | next load (cached) | after 60 s (stale, refreshing) | HTML |");
    println!("|---|---:|---:|---:|---:|");
    for path in PAGES {
        let (cold, bytes) = load(path).await;
        let (warm, _) = load(path).await;
        clock.advance(Duration::seconds(61));
        let (stale, _) = load(path).await;
        state.dashboard.settle().await;
        println!("| `{path}` | {cold:.3} s | {warm:.3} s | {stale:.3} s | {} KB |", bytes / 1024);
    }
    db.close().await.ok();
    if let Some((server, name)) = drop_after
        && let Ok(admin) = arrears::store::connect(&server).await
    {
        let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
    }
}
