//! Agent-leasing benchmark (issue #3), reported as a ratio against the physical limit measured in
//! the same run, on SQLite (a temporary file) and PostgreSQL (a fresh database
//! `arrears_bench_lease` on the server `ARREARS_BENCH_DATABASE_URL` or
//! `ARREARS_TEST_DATABASE_URL` names; skipped with a note when neither is set):
//!
//! 1. **raw limit**: K workers, each looping a plain claim (`UPDATE tasks ... WHERE id = (SELECT
//!    ... ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id` on
//!    PostgreSQL; the same `UPDATE ... RETURNING` inside an immediate transaction on SQLite) and
//!    a plain `UPDATE ... SET state = 'done'`, on the same `tasks` rows of the same database;
//! 2. **arrears over HTTP**: the real `arrears::http::router` on 127.0.0.1:0 in this process (a
//!    manual clock at 09:00 in Shanghai), K simulated agents with a token each, looping
//!    `POST /v1/queues/bench/lease` → `POST /v1/tasks/{id}/complete` until the queue answers 204
//!    three times in a row: leases per second, p50/p99 of the lease request, and double
//!    assignments (a task id handed out twice: printed, and the process exits non-zero);
//! 3. **arrears with think time**: the same HTTP loop at `ARREARS_BENCH_THINK_AGENTS` agents
//!    (default 200) who wait `ARREARS_BENCH_THINK_MS` (default 1,000 ms) after each completion
//!    before the next lease, their starts spread evenly over one think time (agents do not all
//!    sit down at the same millisecond): the lease latency an agent sees at a realistic load.
//!
//! The book: N accounts with one borrower each (Asia/Shanghai, one phone, amount due > 0, no
//! flags, no history), imported from CSV through `arrears import`'s code; one human task each
//! in queue `bench` (distinct priorities, a window around the instant) inserted with
//! `store::raw_insert_tasks`. Before measuring, 100 more tasks in queue `bench-check` are leased
//! by one agent, asserting that every one passes the lease-time re-check. Tasks are reset to
//! `planned` (and the task audit rows removed) before every measured loop.
//!
//! `cargo bench --bench lease`. Knobs: `ARREARS_BENCH_AGENTS=1,16,64,200`,
//! `ARREARS_BENCH_TASKS` (tasks per loop, default 5,000), `ARREARS_BENCH_PG_POOL` (the
//! PostgreSQL pool of both loops, default 64: the server's `max_connections` is shared with
//! everything else on it), `ARREARS_BENCH_ONLY=sqlite|postgres`, `ARREARS_BENCH_THINK_AGENTS`
//! and `ARREARS_BENCH_THINK_MS` (0 agents skips the think-time loop), `ARREARS_BENCH_LEASE_SLOTS`
//! (the engine's `lease_concurrency`; default twice the cores).

use arrears::clock::Clock;
use arrears::config::Config;
use arrears::domain::Channel;
use arrears::http::{self, AppState};
use arrears::import::{ACCOUNT_COLUMNS, ImportKind};
use arrears::ops::Settings;
use arrears::ops::tokens::{Role, create_token};
use arrears::plan::Task;
use arrears::strategy::{LoadOptions, SourceFile, StrategySet, load_sources};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The bench instant: 09:00 in Asia/Shanghai, inside the tasks' windows and `cn-gbt-45251`'s
/// 08:00-22:00 contact hours.
const NOW: &str = "2026-11-22T01:00:00Z";
/// The measured queue.
const QUEUE: &str = "bench";
/// The queue of the re-check verification.
const CHECK_QUEUE: &str = "bench-check";
/// Tasks of the re-check verification.
const CHECK_TASKS: usize = 100;
/// Consecutive 204 answers after which a simulated agent stops.
const EMPTY_ANSWERS: u32 = 3;

const STRATEGY: &str = r#"name = "bench"
description = "Agent-leasing benchmark: every account to a human queue"
policy = "cn-gbt-45251"

[stages]
M1 = { dpd = [1, 30] }

[[rule]]
name = "bench"
stage = "M1"
channel = "human"
queue = "bench"
calls_per_day = 1
"#;

struct Knobs {
    agents: Vec<usize>,
    tasks: usize,
    pg_pool: u32,
    only: Option<String>,
    think_agents: usize,
    think: std::time::Duration,
}

impl Knobs {
    fn from_env() -> Knobs {
        let agents = std::env::var("ARREARS_BENCH_AGENTS")
            .ok()
            .map(|list| list.split(',').filter_map(|k| k.trim().parse().ok()).filter(|&k| k > 0).collect())
            .filter(|list: &Vec<usize>| !list.is_empty())
            .unwrap_or_else(|| vec![1, 16, 64, 200]);
        let tasks = std::env::var("ARREARS_BENCH_TASKS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
        let pg_pool = std::env::var("ARREARS_BENCH_PG_POOL").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
        let think_agents = std::env::var("ARREARS_BENCH_THINK_AGENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
        let think_ms = std::env::var("ARREARS_BENCH_THINK_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
        Knobs {
            agents,
            tasks,
            pg_pool,
            only: std::env::var("ARREARS_BENCH_ONLY").ok(),
            think_agents,
            think: std::time::Duration::from_millis(think_ms),
        }
    }
}

fn main() {
    let knobs = Knobs::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let failed = runtime.block_on(run(&knobs));
    if failed {
        eprintln!("FAILED: double assignments or request errors (see above)");
        std::process::exit(1);
    }
}

/// One line of results.
struct Row {
    store: &'static str,
    agents: usize,
    /// Think time between an agent's completion and its next lease (zero: a closed loop).
    think_ms: u128,
    /// The raw loop's rate (none for a think-time loop, which has no raw counterpart).
    raw: Option<f64>,
    http: f64,
    p50_ms: f64,
    p99_ms: f64,
    doubles: usize,
    errors: usize,
}

async fn run(knobs: &Knobs) -> bool {
    let now: DateTime<Utc> = NOW.parse().expect("instant");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "# arrears agent-leasing benchmark: {} tasks per loop, agents {:?}, {cores} cores, client and server in one process",
        knobs.tasks, knobs.agents
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write_accounts(&dir.path().join("accounts.csv"), knobs.tasks + CHECK_TASKS, now);

    let mut rows = Vec::new();
    let wants = |name: &str| knobs.only.as_deref().is_none_or(|only| only.eq_ignore_ascii_case(name));
    if wants("sqlite") {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
        let db = arrears::store::connect(&url).await.expect("open SQLite");
        println!("SQLite: store::connect's pool (4 connections, WAL, busy_timeout 5 s) for both loops");
        rows.extend(bench_store("SQLite", db, &url, dir.path(), knobs, now).await);
    }
    if wants("postgres") {
        match std::env::var("ARREARS_BENCH_DATABASE_URL").or_else(|_| std::env::var("ARREARS_TEST_DATABASE_URL")) {
            Ok(server) => {
                let (url, limit) = fresh_postgres_database(&server).await;
                println!(
                    "PostgreSQL: server max_connections = {limit}; a pool of {} connections for both loops",
                    knobs.pg_pool
                );
                let mut options = ConnectOptions::new(url.clone());
                options
                    .max_connections(knobs.pg_pool)
                    .acquire_timeout(std::time::Duration::from_secs(120))
                    .sqlx_logging(false);
                let db = Database::connect(options).await.expect("connect to the bench database");
                rows.extend(bench_store("PostgreSQL", db, &url, dir.path(), knobs, now).await);
            }
            Err(_) => println!(
                "PostgreSQL: skipped (set ARREARS_BENCH_DATABASE_URL or ARREARS_TEST_DATABASE_URL to a server URL)"
            ),
        }
    }

    println!(
        "\n| store | agents | think | raw leases/s | HTTP leases/s | HTTP/raw | lease p50 | lease p99 | doubles | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {} | {} ms | {} | {:.0} | {} | {:.1} ms | {:.1} ms | {} | {} |",
            row.store,
            row.agents,
            row.think_ms,
            row.raw.map_or("-".into(), |raw| format!("{raw:.0}")),
            row.http,
            row.raw.map_or("-".into(), |raw| format!("{:.2}x", row.http / raw)),
            row.p50_ms,
            row.p99_ms,
            row.doubles,
            row.errors
        );
    }
    let at_64 = rows.iter().find(|row| row.store == "PostgreSQL" && row.agents == 64 && row.think_ms == 0);
    if let Some((row, raw)) = at_64.and_then(|row| Some((row, row.raw?))) {
        let ratio = row.http / raw;
        println!(
            "target: PostgreSQL at 64 agents >= 0.5x the raw loop: {ratio:.2}x, {}",
            if ratio >= 0.5 { "met" } else { "MISSED" }
        );
    }
    for row in rows.iter().filter(|row| row.agents == 200 && row.think_ms == 1_000) {
        println!(
            "target: {} lease p99 < 50 ms at 200 agents with 1 s think time: {:.1} ms, {}",
            row.store,
            row.p99_ms,
            if row.p99_ms < 50.0 { "met" } else { "MISSED" }
        );
    }
    let doubles: usize = rows.iter().map(|row| row.doubles).sum();
    println!("target: zero double assignments: {doubles}, {}", if doubles == 0 { "met" } else { "MISSED" });
    rows.iter().any(|row| row.doubles > 0 || row.errors > 0)
}

/// A new, empty database `arrears_bench_lease` on the server `server` points at (dropped first
/// if a previous run left it); its URL and the server's `max_connections`.
async fn fresh_postgres_database(server: &str) -> (String, String) {
    let admin = Database::connect(server).await.expect("connect to PostgreSQL");
    let name = "arrears_bench_lease";
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.expect("drop");
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create");
    let limit = admin
        .query_one_raw(Statement::from_string(DbBackend::Postgres, "SHOW max_connections"))
        .await
        .ok()
        .flatten()
        .and_then(|row| row.try_get_by_index::<String>(0).ok())
        .unwrap_or_else(|| "?".into());
    admin.close().await.ok();
    (with_database(server, name), limit)
}

/// `url` with its database name replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(base, query)| (base, Some(query)));
    let authority = base.find("://").map_or(0, |index| index + 3);
    let server = base[authority..].find('/').map_or(base, |slash| &base[..authority + slash]);
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

fn account_id(index: usize) -> String {
    format!("A{index:08}")
}

fn borrower_id(index: usize) -> String {
    format!("B{index:08}")
}

/// `accounts` accounts, one borrower each, all due and callable at [`NOW`].
fn write_accounts(path: &Path, accounts: usize, now: DateTime<Utc>) {
    let mut csv = csv::Writer::from_path(path).expect("accounts.csv");
    csv.write_record(ACCOUNT_COLUMNS).expect("header");
    let due_date = (now.date_naive() - Duration::days(10)).to_string();
    for index in 0..accounts {
        csv.write_record([
            account_id(index).as_str(),
            &borrower_id(index),
            &format!("Borrower {index}"),
            &format!("+86138{index:08}"),
            "",
            "Asia/Shanghai",
            "cash",
            "CNY",
            "300.00",
            "3000.00",
            &due_date,
            "",
            "",
            "true",
        ])
        .expect("row");
    }
    csv.flush().expect("flush accounts.csv");
}

/// The human tasks of accounts `range` in `queue`, with distinct shuffled priorities and a
/// 08:00-21:00 Shanghai window on the bench day.
fn tasks(range: std::ops::Range<usize>, queue: &str, now: DateTime<Utc>) -> Vec<Task> {
    let shanghai = FixedOffset::east_opt(8 * 3600).expect("offset");
    let day: NaiveDate = now.with_timezone(&shanghai).date_naive();
    let at = |hour| shanghai.from_local_datetime(&day.and_hms_opt(hour, 0, 0).expect("time")).single().expect("time");
    let mut priorities: Vec<usize> = (0..range.len()).collect();
    priorities.shuffle(&mut SmallRng::seed_from_u64(7));
    let (stage, strategy, rule, queue): (Arc<str>, Arc<str>, Arc<str>, Arc<str>) =
        ("M1".into(), "bench".into(), "bench".into(), queue.into());
    range
        .zip(priorities)
        .map(|(index, priority)| Task {
            account_id: account_id(index).into(),
            borrower_id: borrower_id(index).into(),
            local_date: day,
            dpd: 10,
            stage: stage.clone(),
            strategy: strategy.clone(),
            rule: rule.clone(),
            arm: None,
            channel: Channel::Human,
            queue: Some(queue.clone()),
            template: None,
            attempt: 1,
            calls_allowed: 1,
            not_before: at(8),
            not_after: at(21),
            priority: priority as f64,
            p_contact: None,
        })
        .collect()
}

fn strategies(templates: &Path) -> StrategySet {
    let settings = arrears::policy::PolicySettings::default();
    let options = LoadOptions {
        templates_dir: templates,
        default_policy: "cn-gbt-45251",
        settings: &settings,
        capacities: &Default::default(),
    };
    load_sources(&[SourceFile { name: "bench.toml".into(), text: STRATEGY.into() }], &options)
        .unwrap_or_else(|errors| panic!("bench strategy invalid:\n{errors}"))
}

/// Sets up one store (book, tasks, tokens, the HTTP app), checks the re-check passes, then
/// measures both loops at every K.
async fn bench_store(
    name: &'static str,
    db: DatabaseConnection,
    url: &str,
    dir: &Path,
    knobs: &Knobs,
    now: DateTime<Utc>,
) -> Vec<Row> {
    arrears::store::migrate(&db).await.expect("migrate");
    let started = Instant::now();
    let report = arrears::import::import_file(&db, ImportKind::Accounts, &dir.join("accounts.csv")).await;
    report.expect("import accounts.csv");
    let mut all = tasks(0..knobs.tasks, QUEUE, now);
    all.extend(tasks(knobs.tasks..knobs.tasks + CHECK_TASKS, CHECK_QUEUE, now));
    arrears::store::raw_insert_tasks(&db, &all).await.expect("insert tasks");
    drop(all);
    let most = knobs.agents.iter().copied().max().unwrap_or(1).max(knobs.think_agents);
    let mut tokens = Vec::with_capacity(most);
    for agent in 0..most {
        let token = create_token(&db, Role::Agent, Some(&format!("agent-{agent:03}")), None, now).await;
        tokens.push(token.expect("agent token"));
    }
    println!(
        "{name}: imported {} accounts, inserted their tasks and {most} agent tokens in {:.1} s",
        knobs.tasks + CHECK_TASKS,
        started.elapsed().as_secs_f64()
    );

    let templates = tempfile::tempdir().expect("tempdir");
    let mut config = Config::load(Path::new("/nonexistent/arrears.toml"), false).expect("default configuration");
    config.lease_concurrency = std::env::var("ARREARS_BENCH_LEASE_SLOTS").ok().and_then(|v| v.parse().ok());
    let settings = Settings {
        database_url: url.to_string(),
        strategies_dir: dir.to_path_buf(),
        templates_dir: templates.path().to_path_buf(),
        config,
    };
    // The engine runs on the pool `serve` would open (on PostgreSQL sized from the server), with
    // its lease slots; the raw loop keeps the bench's pool.
    let app_db = if db.get_database_backend() == DbBackend::Postgres {
        let app_db = arrears::store::connect(url).await.expect("connect the engine's pool");
        let size = app_db.get_postgres_connection_pool().options().get_max_connections();
        println!("{name}: the engine's pool (store::connect, sized from the server): {size} connections");
        app_db
    } else {
        db.clone()
    };
    println!("{name}: lease requests worked on at once: {}", settings.config.lease_slots());
    let state = AppState::with_strategies(app_db, settings, strategies(templates.path()), Clock::manual(now));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, http::router(state)).await;
    });
    let client = reqwest::Client::builder().no_proxy().tcp_nodelay(true).build().expect("HTTP client");

    // Every task must pass the lease-time re-check: one agent leases the whole check queue.
    let check = http_loop(&client, &base, &tokens[..1], CHECK_QUEUE, std::time::Duration::ZERO).await;
    assert!(check.errors.is_empty(), "{name}: re-check verification failed: {:?}", check.errors);
    assert_eq!(check.leased.len(), CHECK_TASKS, "{name}: every check task must be leased at K=1");
    println!("{name}: re-check verified: all {CHECK_TASKS} tasks of `{CHECK_QUEUE}` leased and completed by one agent");

    let mut rows = Vec::new();
    for &agents in &knobs.agents {
        reset(&db).await;
        let raw = raw_loop(&db, agents, now).await;
        assert_eq!(raw.leased, knobs.tasks, "{name}: the raw loop must claim every task");
        assert_eq!(done_count(&db).await, knobs.tasks, "{name}: the raw loop completes every task");

        reset(&db).await;
        let result = http_loop(&client, &base, &tokens[..agents], QUEUE, std::time::Duration::ZERO).await;
        let mut row = http_row(name, &db, knobs, agents, std::time::Duration::ZERO, result).await;
        let raw_rate = raw.leased as f64 / raw.elapsed;
        row.raw = Some(raw_rate);
        println!(
            "{name} K={agents}: raw {:.0} leases/s ({:.2} s) | HTTP {:.0} leases/s = {:.2}x raw | lease p50 {:.1} ms, p99 {:.1} ms | doubles {} | errors {}",
            raw_rate,
            raw.elapsed,
            row.http,
            row.http / raw_rate,
            row.p50_ms,
            row.p99_ms,
            row.doubles,
            row.errors
        );
        rows.push(row);
    }
    if knobs.think_agents > 0 {
        let agents = knobs.think_agents;
        reset(&db).await;
        let result = http_loop(&client, &base, &tokens[..agents], QUEUE, knobs.think).await;
        let row = http_row(name, &db, knobs, agents, knobs.think, result).await;
        println!(
            "{name} K={agents}, think {} ms: HTTP {:.0} leases/s | lease p50 {:.1} ms, p99 {:.1} ms | doubles {} | errors {}",
            row.think_ms, row.http, row.p50_ms, row.p99_ms, row.doubles, row.errors
        );
        rows.push(row);
    }
    server.abort();
    db.close().await.ok();
    rows
}

/// The row of one HTTP loop: its rate and latencies, with the double assignments and errors it
/// met (every task leased once and done afterwards, or an error is counted).
async fn http_row(
    name: &'static str,
    db: &DatabaseConnection,
    knobs: &Knobs,
    agents: usize,
    think: std::time::Duration,
    result: HttpResult,
) -> Row {
    let mut seen: HashMap<i64, Vec<usize>> = HashMap::new();
    for &(id, agent) in &result.leased {
        seen.entry(id).or_default().push(agent);
    }
    let mut doubles: Vec<(i64, Vec<usize>)> = seen.into_iter().filter(|(_, agents)| agents.len() > 1).collect();
    doubles.sort_unstable();
    for (id, holders) in &doubles {
        println!("{name} K={agents}: DOUBLE ASSIGNMENT: task {id} handed to agents {holders:?}");
    }
    let mut errors = result.errors.clone();
    let unique = result.leased.len() - doubles.iter().map(|(_, holders)| holders.len() - 1).sum::<usize>();
    if unique != knobs.tasks {
        errors.push(format!("{unique} distinct tasks leased over HTTP, expected {}", knobs.tasks));
    }
    let done = done_count(db).await;
    if done != knobs.tasks {
        errors.push(format!("{done} tasks done after the HTTP loop, expected {}", knobs.tasks));
    }
    for error in errors.iter().take(10) {
        println!("{name} K={agents}: ERROR: {error}");
    }
    let mut latencies = result.latencies;
    latencies.sort_unstable();
    Row {
        store: name,
        agents,
        think_ms: think.as_millis(),
        raw: None,
        http: result.leased.len() as f64 / result.elapsed,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        doubles: doubles.len(),
        errors: errors.len(),
    }
}

/// The `p`th percentile (nearest rank) of sorted microseconds, in milliseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// Puts the measured queue's tasks back to `planned` and drops the task audit rows, so every
/// loop starts from the same tables.
async fn reset(db: &DatabaseConnection) {
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    db.execute_unprepared(&format!(
        "UPDATE tasks SET state = 'planned', lease_agent = NULL, lease_expires_at = NULL, \
         state_changed_at = NULL, state_reason = NULL WHERE queue = '{QUEUE}'"
    ))
    .await
    .expect("reset tasks");
    db.execute_unprepared("DELETE FROM audit_log WHERE entity = 'task'").await.expect("reset audit");
    let tidy: &[&str] = if postgres {
        &["VACUUM ANALYZE tasks", "VACUUM ANALYZE audit_log"]
    } else {
        &["PRAGMA wal_checkpoint(TRUNCATE)"]
    };
    for statement in tidy {
        db.execute_unprepared(statement).await.expect("vacuum");
    }
}

async fn done_count(db: &DatabaseConnection) -> usize {
    let sql = format!("SELECT COUNT(*) FROM tasks WHERE queue = '{QUEUE}' AND state = 'done'");
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("count");
    row.and_then(|row| row.try_get_by_index::<i64>(0).ok()).map_or(usize::MAX, |count| count as usize)
}

struct RawResult {
    leased: usize,
    elapsed: f64,
}

/// The physical limit: K workers claiming and completing with one plain statement each.
async fn raw_loop(db: &DatabaseConnection, workers: usize, now: DateTime<Utc>) -> RawResult {
    let backend = db.get_database_backend();
    let postgres = backend == DbBackend::Postgres;
    let (claim, complete) = if postgres {
        (
            "UPDATE tasks SET state = 'leased', lease_agent = $1, lease_expires_at = $2, state_changed_at = $3 \
             WHERE id = (SELECT id FROM tasks WHERE channel = 'human' AND queue = $4 AND state IN ('planned', 'ready') \
             ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
            "UPDATE tasks SET state = 'done', state_reason = 'completed', state_changed_at = $1, \
             lease_expires_at = NULL WHERE id = $2 AND state = 'leased' AND lease_agent = $3",
        )
    } else {
        (
            "UPDATE tasks SET state = 'leased', lease_agent = ?, lease_expires_at = ?, state_changed_at = ? \
             WHERE id = (SELECT id FROM tasks WHERE channel = 'human' AND queue = ? AND state IN ('planned', 'ready') \
             ORDER BY priority DESC, id LIMIT 1) RETURNING id",
            "UPDATE tasks SET state = 'done', state_reason = 'completed', state_changed_at = ?, \
             lease_expires_at = NULL WHERE id = ? AND state = 'leased' AND lease_agent = ?",
        )
    };
    let started = Instant::now();
    let mut handles = Vec::with_capacity(workers);
    for worker in 0..workers {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            let agent = format!("raw-{worker:03}");
            let mut leased = 0usize;
            loop {
                let values: Vec<Value> =
                    vec![agent.clone().into(), (now + Duration::minutes(15)).into(), now.into(), QUEUE.into()];
                let statement = Statement::from_sql_and_values(backend, claim, values);
                let row = if postgres {
                    db.query_one_raw(statement).await.expect("raw claim")
                } else {
                    let txn = arrears::store::begin_write(&db).await.expect("begin immediate");
                    let row = txn.query_one_raw(statement).await.expect("raw claim");
                    txn.commit().await.expect("commit");
                    row
                };
                let Some(row) = row else { break };
                let id: i64 = row.try_get_by_index(0).expect("claimed id");
                let values: Vec<Value> = vec![now.into(), id.into(), agent.clone().into()];
                let done = db.execute_raw(Statement::from_sql_and_values(backend, complete, values)).await;
                assert_eq!(done.expect("raw complete").rows_affected(), 1, "raw complete of task {id}");
                leased += 1;
            }
            (leased, Instant::now())
        }));
    }
    let mut leased = 0;
    let mut last = started;
    for handle in handles {
        let (count, finished) = handle.await.expect("raw worker");
        leased += count;
        last = last.max(finished);
    }
    RawResult { leased, elapsed: (last - started).as_secs_f64() }
}

struct HttpResult {
    /// `(task id, agent index)` of every lease handed out.
    leased: Vec<(i64, usize)>,
    /// Lease request latencies of the 200 answers, in microseconds.
    latencies: Vec<u64>,
    errors: Vec<String>,
    /// From the start to the last completion, in seconds.
    elapsed: f64,
}

#[derive(serde::Deserialize)]
struct LeaseBody {
    task: LeasedId,
}

#[derive(serde::Deserialize)]
struct LeasedId {
    id: i64,
}

/// What one simulated agent saw: its leases, lease latencies, errors and its last completion.
type AgentReport = (Vec<(i64, usize)>, Vec<u64>, Vec<String>, Instant);

/// One simulated agent: after `start`, leases and completes, waiting `think` after each
/// completion, until `lease_url` answers 204 [`EMPTY_ANSWERS`] times in a row (or after 10
/// errors).
async fn agent_loop(
    client: reqwest::Client,
    base: String,
    lease_url: String,
    token: String,
    agent: usize,
    (start, think): (std::time::Duration, std::time::Duration),
) -> AgentReport {
    tokio::time::sleep(start).await;
    let (mut leased, mut latencies, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = Instant::now();
    let mut empty = 0;
    while empty < EMPTY_ANSWERS && errors.len() < 10 {
        let sent = Instant::now();
        let response = match client.post(&lease_url).bearer_auth(&token).send().await {
            Ok(response) => response,
            Err(error) => {
                errors.push(format!("agent {agent}: lease: {error}"));
                continue;
            }
        };
        let status = response.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            empty += 1;
            continue;
        }
        let body = response.bytes().await;
        let elapsed = sent.elapsed();
        let id = match (status, body) {
            (reqwest::StatusCode::OK, Ok(body)) => match serde_json::from_slice::<LeaseBody>(&body) {
                Ok(lease) => lease.task.id,
                Err(error) => {
                    errors.push(format!("agent {agent}: lease body: {error}"));
                    continue;
                }
            },
            (status, body) => {
                let text = body.map(|body| String::from_utf8_lossy(&body).into_owned()).unwrap_or_default();
                errors.push(format!("agent {agent}: lease answered {status}: {text}"));
                continue;
            }
        };
        empty = 0;
        latencies.push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        leased.push((id, agent));
        match client.post(format!("{base}/v1/tasks/{id}/complete")).bearer_auth(&token).send().await {
            Ok(done) if done.status() == reqwest::StatusCode::OK => {
                last = Instant::now();
                tokio::time::sleep(think).await;
            }
            Ok(done) => {
                let status = done.status();
                let text = done.text().await.unwrap_or_default();
                errors.push(format!("agent {agent}: complete {id}: {status}: {text}"));
            }
            Err(error) => errors.push(format!("agent {agent}: complete {id}: {error}")),
        }
    }
    (leased, latencies, errors, last)
}

/// K simulated agents (one token each) on `queue`; with a `think` time their starts are spread
/// evenly over one think time, else they all start at once.
async fn http_loop(
    client: &reqwest::Client,
    base: &str,
    tokens: &[String],
    queue: &str,
    think: std::time::Duration,
) -> HttpResult {
    let started = Instant::now();
    let lease_url = format!("{base}/v1/queues/{queue}/lease");
    let handles: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(agent, token)| {
            let start = think.mul_f64(agent as f64 / tokens.len() as f64);
            let (base, url, token) = (base.to_string(), lease_url.clone(), token.clone());
            tokio::spawn(agent_loop(client.clone(), base, url, token, agent, (start, think)))
        })
        .collect();
    let mut result = HttpResult { leased: Vec::new(), latencies: Vec::new(), errors: Vec::new(), elapsed: 0.0 };
    let mut last = started;
    for handle in handles {
        let (leased, latencies, errors, finished) = handle.await.expect("agent task");
        result.leased.extend(leased);
        result.latencies.extend(latencies);
        result.errors.extend(errors);
        last = last.max(finished);
    }
    result.elapsed = (last - started).as_secs_f64();
    result
}
