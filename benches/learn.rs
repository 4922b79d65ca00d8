//! Learning benchmark (issue #9: `arrears learn` on 10,000,000 attempts in under 60 s), reported
//! as a ratio against the physical limit measured in the same run, on SQLite (a temporary file):
//!
//! 1. **raw limit**: one `SELECT` in SQLite's own loop over the same rows and columns the
//!    learner reads (the attempts of the window joined to their borrowers' zones), summing their
//!    lengths so every value is touched, scanning the table in storage order (`NOT INDEXED`: the
//!    window's index would add a random table read per row);
//! 2. **read**: `store::read_attempt_facts` with a no-op consumer (the learner's read path:
//!    pages of attempts decoded into facts, local hour and weekday in the borrower's zone);
//! 3. **learn**: `ops::learn::learn` as `arrears learn` runs it (read, fit with shrinkage, store
//!    the model).
//!
//! The book: N attempts (`ARREARS_BENCH_ATTEMPTS`, default 10,000,000) by N / 20 borrowers in
//! four zones over 90 days, robot and human, with an answer rate that depends on the hour;
//! written by SQLite itself (a recursive CTE), not measured.
//!
//! `cargo bench --bench learn`.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::time::Instant;

fn attempts() -> u64 {
    std::env::var("ARREARS_BENCH_ATTEMPTS")
        .ok()
        .and_then(|text| text.replace('_', "").parse().ok())
        .unwrap_or(10_000_000)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let total = attempts();
    let borrowers = (total / 20).max(1);
    let as_of: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
    let first = as_of - Duration::days(90);
    println!("# arrears learning benchmark: {total} attempts by {borrowers} borrowers over 90 days (SQLite)");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("learn.db").display());
    let db = arrears::store::connect(&url).await.unwrap();
    arrears::store::migrate(&db).await.unwrap();

    let started = Instant::now();
    let sql = |text: String| Statement::from_string(DbBackend::Sqlite, text);
    db.execute_raw(sql(format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
         INSERT INTO borrowers (id, name, timezones, consent_robot, updated_at) \
         SELECT 'B' || i, 'Borrower ' || i, \
           CASE i % 4 WHEN 0 THEN 'Asia/Shanghai' WHEN 1 THEN 'America/New_York' \
             WHEN 2 THEN 'Europe/London' ELSE 'Asia/Urumqi;Asia/Shanghai' END, 1, '{as_of}' FROM n",
        last = borrowers - 1,
        as_of = as_of.to_rfc3339(),
    )))
    .await
    .unwrap();
    // Attempt i: borrower i % B, on day (i / B) % 90 at a UTC hour that moves with i; answered
    // more in the UTC evening hours (10–13) than in the others.
    db.execute_raw(sql(format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
         INSERT INTO attempts (account_id, borrower_id, channel, at, outcome, exempt) \
         SELECT 'A' || (i % {borrowers}), 'B' || (i % {borrowers}), \
           CASE WHEN i % 5 = 0 THEN 'human' ELSE 'robot' END, \
           strftime('%Y-%m-%dT%H:%M:%S+00:00', {start} + ((i / {borrowers}) % 90) * 86400 \
             + ((i * 7) % 24) * 3600 + (i / ({borrowers} * 90)) * 61, 'unixepoch'), \
           CASE WHEN abs(random() % 100) < (CASE WHEN (i * 7) % 24 BETWEEN 10 AND 13 THEN 45 ELSE 12 END) \
             THEN 'rpc' ELSE 'no_answer' END, 0 FROM n",
        last = total - 1,
        start = first.timestamp(),
    )))
    .await
    .unwrap();
    println!("setup: {total} attempts written by SQLite in {:.1?} (not measured)", started.elapsed());

    let started = Instant::now();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT count(*), sum(length(a.id) + length(a.borrower_id) + length(a.channel) + length(a.at) \
             + length(a.outcome) + length(COALESCE(b.timezones, ''))) FROM attempts a NOT INDEXED \
             LEFT JOIN borrowers b ON b.id = a.borrower_id WHERE a.at >= ? AND a.at < ?",
            [first.into(), as_of.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let scanned: i64 = row.try_get_by_index(0).unwrap();
    let raw = started.elapsed();
    println!(
        "raw limit: SQLite scans the {scanned} attempts with their borrowers' zones in {:.2} s = {:.0} rows/s",
        raw.as_secs_f64(),
        scanned as f64 / raw.as_secs_f64()
    );

    let started = Instant::now();
    let mut contacts = 0u64;
    let read = arrears::store::read_attempt_facts(&db, first, as_of, |fact| contacts += u64::from(fact.contact))
        .await
        .unwrap();
    let reading = started.elapsed();
    println!(
        "read: {read} attempt facts ({contacts} contacts) in {:.2} s = {:.0} rows/s: {:.1}x the raw limit",
        reading.as_secs_f64(),
        read as f64 / reading.as_secs_f64(),
        reading.as_secs_f64() / raw.as_secs_f64()
    );

    // The learner's three steps one by one, then `ops::learn::learn` as `arrears learn` runs them.
    let started = Instant::now();
    let mut fitter = arrears::learn::Fitter::new();
    arrears::store::read_attempt_facts(&db, first, as_of, |fact| fitter.add(fact)).await.unwrap();
    let read_and_add = started.elapsed();
    let started = Instant::now();
    let model = fitter.finish(first, as_of);
    let fitting = started.elapsed();
    let started = Instant::now();
    arrears::store::save_model(&db, &model, 90, total, as_of).await.unwrap();
    let storing = started.elapsed();
    drop(model);
    println!(
        "steps: read and count {:.2} s, fit {:.2} s, store {:.2} s",
        read_and_add.as_secs_f64(),
        fitting.as_secs_f64(),
        storing.as_secs_f64()
    );
    let started = Instant::now();
    let report = arrears::ops::learn::learn(&db, as_of, 90).await.unwrap();
    let learning = started.elapsed();
    println!(
        "learn: model v{} from {} attempts in {:.2} s ({:.1}x the raw limit); goal: 10,000,000 in under 60 s",
        report.version,
        report.attempts,
        learning.as_secs_f64(),
        learning.as_secs_f64() / raw.as_secs_f64(),
    );
    assert_eq!(report.attempts, total, "every attempt of the window is learned from");
    let best = report.model.summaries();
    for summary in best.iter().take(4) {
        let top: Vec<String> = summary
            .hours
            .iter()
            .take(3)
            .map(|hour| format!("{:02}:00 {:.0} %", hour.hour, hour.rate * 100.0))
            .collect();
        println!("  {}/{}/{}: best {}", summary.stage, summary.channel, summary.product, top.join(", "));
    }
}
