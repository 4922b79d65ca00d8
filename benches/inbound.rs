//! The inbound lookup on a big book: how long `POST /v1/inbound-calls`'s work
//! (`ops::work::inbound::lookup`: the number's borrowers through the phone index, their accounts,
//! 8 days of history, the gate's answer for a transfer, the deciding rule and its script, the
//! call's row) takes per call, against the physical limit measured in the same run: one
//! indexed `SELECT` of the number's contact point on the same store.
//!
//! The book is the demo's synthetic portfolio (`ops::synthetic`) imported through the importer,
//! planned once and with its week of attempts. The callers are numbers of the book drawn at
//! random, and 10 % unknown numbers.
//!
//! `cargo bench --bench inbound` (1,000,000 accounts, SQLite); `ARREARS_BENCH_ACCOUNTS=100000`
//! for a quicker run; `ARREARS_BENCH_CALLS` (default 2,000) lookups.

use arrears::import::ImportKind;
use arrears::ops::work::Rules;
use arrears::ops::work::inbound::{InboundCallIn, lookup};
use chrono::{DateTime, Duration, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sea_orm::ConnectionTrait;
use std::path::Path;
use std::time::Instant;

const NOW: &str = "2026-11-22T03:00:00Z";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let accounts = env("ARREARS_BENCH_ACCOUNTS", 1_000_000);
    let calls = env("ARREARS_BENCH_CALLS", 2_000);
    let now: DateTime<Utc> = NOW.parse().expect("instant");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("# inbound lookup: {accounts} accounts, SQLite, {calls} calls");
    let started = Instant::now();
    arrears::ops::synthetic::write_portfolio(dir.path(), accounts, 42, now).expect("synthetic book");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
    let db = arrears::store::connect(&url).await.expect("connect");
    arrears::store::migrate(&db).await.expect("migrate");
    arrears::import::import_file_at(
        &db,
        ImportKind::Accounts,
        &dir.path().join("accounts.csv"),
        now - Duration::days(2),
    )
    .await
    .expect("import accounts");
    let settings = arrears::ops::Settings {
        database_url: url.clone(),
        strategies_dir: root.join("strategies"),
        templates_dir: root.join("templates"),
        config: toml::from_str("").expect("config"),
    };
    let strategies = arrears::ops::load_strategies(&settings, &settings.strategies_dir).expect("strategies");
    arrears::ops::plan_and_persist(&db, &strategies, now - Duration::hours(2), false).await.expect("plan");
    arrears::import::import_file_at(
        &db,
        ImportKind::Attempts,
        &dir.path().join("attempts.csv"),
        now - Duration::hours(1),
    )
    .await
    .expect("attempts");
    println!("  book built in {:.1} s", started.elapsed().as_secs_f64());

    let numbers: Vec<String> = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT address FROM contact_points WHERE kind = 'phone'",
        ))
        .await
        .expect("numbers")
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("address"))
        .collect();
    let mut rng = SmallRng::seed_from_u64(7);
    let callers: Vec<String> = (0..calls)
        .map(|i| {
            if i % 10 == 9 {
                format!("+1999{:07}", rng.random_range(0..10_000_000))
            } else {
                numbers[rng.random_range(0..numbers.len())].clone()
            }
        })
        .collect();
    let fallback = arrears::policy::Policy::builtin("us-reg-f", &Default::default()).expect("policy");
    let rules = Rules::new(&strategies, &fallback);

    // The physical limit: the one indexed read every lookup starts with.
    let mut raw = Vec::with_capacity(calls);
    for number in &callers {
        let started = Instant::now();
        let statement = sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT borrower_id FROM contact_points WHERE address = ? AND kind = 'phone'",
            [number.as_str().into()],
        );
        db.query_all_raw(statement).await.expect("raw select");
        raw.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let mut times = Vec::with_capacity(calls);
    let mut found = 0;
    for (i, number) in callers.iter().enumerate() {
        let call = InboundCallIn { from: number.clone(), to: None };
        let started = Instant::now();
        let answer = lookup(&db, &rules, &settings.templates_dir, "Bench", &call, now + Duration::seconds(i as i64))
            .await
            .expect("lookup");
        times.push(started.elapsed().as_secs_f64() * 1e3);
        found += usize::from(answer.matched != "unknown");
    }
    raw.sort_by(f64::total_cmp);
    times.sort_by(f64::total_cmp);
    println!("  callers found: {found} of {calls}");
    println!("| step | p50 ms | p99 ms |");
    println!("|---|---|---|");
    println!(
        "| raw indexed SELECT of the number (limit) | {:.2} | {:.2} |",
        percentile(&raw, 0.5),
        percentile(&raw, 0.99)
    );
    println!("| inbound lookup | {:.2} | {:.2} |", percentile(&times, 0.5), percentile(&times, 0.99));
    println!(
        "  ratio to the limit: p50 {:.1}x, p99 {:.1}x",
        percentile(&times, 0.5) / percentile(&raw, 0.5),
        percentile(&times, 0.99) / percentile(&raw, 0.99)
    );
}
