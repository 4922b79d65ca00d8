//! Planning benchmarks, reported as ratios against the physical limit measured in the same run:
//!
//! 1. pure planning (600 rules, 300 tags) — accounts per second on one core;
//! 2. CSV import of the book into SQLite;
//! 3. plan-and-persist of the whole book vs. a raw bulk INSERT of the same task rows, on SQLite
//!    and (when `ARREARS_TEST_DATABASE_URL` or `ARREARS_BENCH_DATABASE_URL` is set) PostgreSQL;
//! 4. peak resident memory.
//!
//! `cargo bench --bench plan` (1,000,000 accounts); `ARREARS_BENCH_ACCOUNTS=100000` for a quick run.

use arrears::domain::{Account, Borrower, ContactKind, ContactPoint, Flags, History, Portfolio};
use arrears::policy::PolicySettings;
use arrears::strategy::{LoadOptions, SourceFile, StrategySet, load_sources};
use chrono::{DateTime, Duration, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

use arrears::ops::synthetic::{
    BENCHMARK_STAGES as STAGES, BENCHMARK_TAGS as TAGS, benchmark_strategy as strategy_text,
};

fn strategies(timing: &str) -> (StrategySet, tempfile::TempDir) {
    let templates = tempfile::tempdir().expect("tempdir");
    for (dir, body) in [("sms", "Hi {{borrower.name}}"), ("robot", "Hello {{borrower.name}}")] {
        std::fs::create_dir_all(templates.path().join(dir)).expect("template dir");
        std::fs::write(templates.path().join(dir).join("t.hbs"), body).expect("template");
    }
    let settings = PolicySettings::default();
    let options = LoadOptions {
        templates_dir: templates.path(),
        default_policy: "cn-gbt-45251",
        settings: &settings,
        capacities: &Default::default(),
    };
    let set = load_sources(&[SourceFile { name: "bench.toml".into(), text: strategy_text(timing) }], &options)
        .unwrap_or_else(|errors| panic!("bench strategy invalid:\n{errors}"));
    (set, templates)
}

fn portfolio(accounts: usize, now: DateTime<Utc>) -> Portfolio {
    let mut rng = SmallRng::seed_from_u64(42);
    let zones = [chrono_tz::Asia::Shanghai, chrono_tz::Asia::Urumqi];
    let mut book = Portfolio::default();
    book.accounts.reserve(accounts);
    for index in 0..accounts {
        let borrower_id = format!("B{index:08}");
        let zone_list = if index % 10 == 0 { zones.to_vec() } else { vec![zones[0]] };
        book.borrowers.insert(
            borrower_id.clone(),
            Borrower {
                id: borrower_id.clone(),
                name: format!("Borrower {index}"),
                timezones: zone_list,
                contact_points: vec![ContactPoint {
                    kind: ContactKind::Phone,
                    address: format!("+86138{index:08}"),
                    opted_out: vec![],
                    wrong_number: false,
                    retired: false,
                }],
                consent_robot: true,
            },
        );
        let dpd = match rng.random_range(0..6) {
            0 => rng.random_range(-5..=-1),
            1 => rng.random_range(1..=7),
            2 => rng.random_range(8..=30),
            3 => rng.random_range(31..=60),
            4 => rng.random_range(61..=90),
            _ => rng.random_range(91..=720),
        };
        book.accounts.push(Account {
            id: format!("A{index:08}"),
            borrower_id,
            product: "cash".into(),
            currency: "CNY".into(),
            amount_due: rng.random_range(100..5000).into(),
            balance: rng.random_range(500..60000).into(),
            due_date: (now - Duration::days(dpd)).date_naive(),
            tags: (0..3).map(|_| format!("t{}", rng.random_range(0..TAGS))).collect(),
            flags: Flags::NONE,
            scores: vec![("loss".into(), rng.random_range(0.0..1.0))],
            attrs: vec![],
            broken_promises: 0,
            funders: None,
            hold_until: None,
        });
    }
    book
}

/// A copy of the book (the page-by-page measurement gets its own allocations, as a loaded page
/// does).
fn book_clone(book: &Portfolio) -> Portfolio {
    Portfolio { accounts: book.accounts.clone(), borrowers: book.borrowers.clone() }
}

/// The book cut into pages of `size` accounts, each with its own borrowers, as
/// `store::load_book_page` returns them.
fn paginate(book: Portfolio, size: usize) -> Vec<Portfolio> {
    let Portfolio { accounts, mut borrowers } = book;
    let mut pages = Vec::new();
    for chunk in accounts.chunks(size) {
        let mut page = Portfolio::default();
        for account in chunk {
            if let Some(borrower) = borrowers.remove(&account.borrower_id) {
                page.borrowers.insert(account.borrower_id.clone(), borrower);
            }
            page.accounts.push(account.clone());
        }
        pages.push(page);
    }
    pages
}

/// The rule-matching part of planning alone: DPD, stage, facts and the first matching rule.
fn evaluate_rules(book: &Portfolio, set: &StrategySet, now: DateTime<Utc>) -> usize {
    let mut facts = set.new_facts();
    let mut matched = 0;
    let date = now.with_timezone(&chrono_tz::Asia::Shanghai).date_naive();
    for account in &book.accounts {
        let Some(strategy) = set.strategy_for(&account.product) else { continue };
        let dpd = account.dpd_on(date);
        let Some(stage) = strategy.stage_of(dpd) else { continue };
        set.fill_facts(account, dpd, 0, None, &mut facts);
        let arm = strategy.arm_of(stage, &account.id);
        if strategy.first_match(stage, arm, &facts).is_some() {
            matched += 1;
        }
    }
    matched
}

/// A contact model fitted from 3,000,000 synthetic robot attempts of a third of the book's
/// borrowers, in every stage, answered more in the evening.
fn synthetic_model(book: &Portfolio, now: DateTime<Utc>) -> arrears::learn::ContactModel {
    use chrono::Weekday;
    let mut rng = SmallRng::seed_from_u64(9);
    let mut fitter = arrears::learn::Fitter::new();
    let weekdays = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];
    let borrowers: Vec<&str> = book.accounts.iter().step_by(3).map(|account| account.borrower_id.as_str()).collect();
    for index in 0..3_000_000usize {
        let hour = rng.random_range(9..20u32);
        let rate = if hour >= 18 { 0.45 } else { 0.15 };
        fitter.add(arrears::learn::AttemptFact {
            borrower_id: borrowers[index % borrowers.len()],
            stage: STAGES[index % STAGES.len()].0,
            channel: arrears::domain::Channel::Robot,
            product: "cash",
            weekday: weekdays[index % 7],
            hour,
            contact: rng.random_bool(rate),
        });
    }
    fitter.finish(now - Duration::days(90), now)
}

/// Resets the kernel's peak-RSS mark (Linux `clear_refs` 5), so the next reading covers one phase.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let accounts: usize =
        std::env::var("ARREARS_BENCH_ACCOUNTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let now: DateTime<Utc> = "2026-11-22T01:00:00Z".parse().expect("instant");
    let (set, _templates) = strategies("spread");
    let rules: usize = set.strategies.iter().map(|s| s.rules.len()).sum();
    println!("# arrears planning benchmark: {accounts} accounts, {rules} rules, {TAGS} tags");

    let pure_accounts = accounts.min(300_000);
    let book = portfolio(pure_accounts, now);
    let history = History::default();
    drop(arrears::plan::plan(&book, &history, &set, now));
    let started = Instant::now();
    let plan = arrears::plan::plan(&book, &history, &set, now);
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "pure plan(): {pure_accounts} accounts in {elapsed:.3} s = {:.0} accounts/s on one core ({} tasks, {} skips); target 1,000,000/s: {:.2}x",
        pure_accounts as f64 / elapsed,
        plan.tasks.len(),
        plan.skips.len(),
        pure_accounts as f64 / elapsed / 1_000_000.0
    );
    // A plan run plans its book a page at a time with one planner (`ops::planning`): the same
    // book cut into pages of `PLAN_PAGE_ACCOUNTS`.
    let pages = paginate(book_clone(&book), arrears::ops::PLAN_PAGE_ACCOUNTS as usize);
    let mut planner = arrears::plan::Planner::new(&history, &set, now);
    let (mut tasks, mut skips) = (0, 0);
    let started = Instant::now();
    for page in &pages {
        let plan = planner.plan(page);
        tasks += plan.tasks.len();
        skips += plan.skips.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "pure plan() page by page as a plan run does ({} pages of {}): {pure_accounts} accounts in {elapsed:.3} s = {:.0} accounts/s on one core ({tasks} tasks, {skips} skips); target 1,000,000/s: {:.2}x",
        pages.len(),
        arrears::ops::PLAN_PAGE_ACCOUNTS,
        pure_accounts as f64 / elapsed,
        pure_accounts as f64 / elapsed / 1_000_000.0
    );
    drop(pages);
    let started = Instant::now();
    let matched = evaluate_rules(&book, &set, now);
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "rule evaluation only (stage, facts, first matching rule of 600): {pure_accounts} accounts in {elapsed:.3} s = {:.0} accounts/s on one core ({matched} matched); target 1,000,000/s: {:.2}x",
        pure_accounts as f64 / elapsed,
        pure_accounts as f64 / elapsed / 1_000_000.0
    );
    // The same book with every robot rule on `timing = "learned"`, and a model fitted from
    // 3,000,000 synthetic attempts (every stage's robot segment, a third of the borrowers).
    let (learned_set, _learned_templates) = strategies("learned");
    let model = synthetic_model(&book, now);
    let mut planner = arrears::plan::Planner::new(&history, &learned_set, now).with_model(Some(&model));
    drop(planner.plan(&book));
    let mut planner = arrears::plan::Planner::new(&history, &learned_set, now).with_model(Some(&model));
    let started = Instant::now();
    let learned = planner.plan(&book);
    let elapsed = started.elapsed().as_secs_f64();
    let placed = learned.tasks.iter().filter(|task| task.p_contact.is_some()).count();
    println!(
        "pure plan() with learned timing: {pure_accounts} accounts in {elapsed:.3} s = {:.0} accounts/s on one core ({} tasks, {placed} placed by the model); target 500,000/s: {:.2}x",
        pure_accounts as f64 / elapsed,
        learned.tasks.len(),
        pure_accounts as f64 / elapsed / 500_000.0
    );
    drop(learned);
    drop(book);
    drop(plan);

    if std::env::var("ARREARS_BENCH_ONLY").is_ok_and(|only| only == "pure") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(persist::run(accounts, now, &set, _templates.path()));
    println!("peak resident memory since the last phase mark: {:.0} MiB", peak_rss_mib());
}

mod persist {
    use super::*;
    use arrears::import::ImportKind;
    use sea_orm::ConnectionTrait;

    /// A new, empty database on the server `url` points at (dropped first if a previous run left it).
    async fn fresh_postgres_database(url: &str) -> String {
        let admin = sea_orm::Database::connect(url).await.expect("connect to PostgreSQL");
        let name = "arrears_bench_plan";
        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.expect("drop");
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create");
        let (base, _) = url.rsplit_once('/').expect("a database URL ends with /NAME");
        format!("{base}/{name}")
    }

    /// Waits for a child process and returns whether it succeeded and its peak resident memory
    /// in MiB (from `wait4`'s resource usage of that child alone).
    fn wait_with_peak_rss(child: std::process::Child) -> (bool, f64) {
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: wait4 writes only into the status and rusage it is given; the child is ours
        // and is reaped here exactly once (std's Child does not wait on drop).
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        drop(child);
        let ok = waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        (ok, usage.ru_maxrss as f64 / 1024.0)
    }

    /// Runs the release `arrears plan` on the same book in a fresh process: its wall time and
    /// peak memory are those of the real command, with nothing left over from the import.
    async fn plan_in_child(
        db: &sea_orm::DatabaseConnection,
        url: &str,
        now: DateTime<Utc>,
        templates: &std::path::Path,
    ) -> (f64, f64) {
        for statement in
            ["DELETE FROM tasks", "DELETE FROM stage_history", "DELETE FROM plan_runs", "DELETE FROM account_stages"]
        {
            db.execute_unprepared(statement).await.expect("reset the plan");
        }
        let strategies = tempfile::tempdir().expect("tempdir");
        std::fs::write(strategies.path().join("bench.toml"), strategy_text("spread")).expect("strategy file");
        let started = Instant::now();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_arrears"))
            .arg("--database-url")
            .arg(url)
            .arg("--strategies")
            .arg(strategies.path())
            .arg("--templates")
            .arg(templates)
            .args(["plan", "--as-of", &now.to_rfc3339()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("run arrears plan");
        let (ok, peak) = wait_with_peak_rss(child);
        assert!(ok, "arrears plan failed");
        (started.elapsed().as_secs_f64(), peak)
    }

    pub async fn run(accounts: usize, now: DateTime<Utc>, strategies: &StrategySet, templates: &std::path::Path) {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        arrears::demo::write_portfolio(dir.path(), accounts, 42, now).expect("portfolio csv");
        println!("generated accounts.csv ({accounts} rows) in {:.1} s", started.elapsed().as_secs_f64());
        let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
        let mut urls = vec![("SQLite", sqlite)];
        if let Ok(url) =
            std::env::var("ARREARS_BENCH_DATABASE_URL").or_else(|_| std::env::var("ARREARS_TEST_DATABASE_URL"))
        {
            urls.push(("PostgreSQL", url));
        }
        for (name, url) in urls {
            let url = if name == "PostgreSQL" { fresh_postgres_database(&url).await } else { url };
            let db = arrears::store::connect(&url).await.expect("connect");
            arrears::store::migrate(&db).await.expect("migrate");
            let started = Instant::now();
            arrears::import::import_file(&db, ImportKind::Accounts, &dir.path().join("accounts.csv"))
                .await
                .expect("import");
            println!("{name}: import {accounts} accounts from CSV: {:.1} s", started.elapsed().as_secs_f64());
            reset_peak_rss();
            let started = Instant::now();
            let outcome = arrears::ops::plan_and_persist(&db, strategies, now, false).await.expect("plan");
            let engine = started.elapsed().as_secs_f64();
            let peak = peak_rss_mib();
            let saved = outcome.totals.tasks;
            // The same task rows again, for the raw insert: with the tasks gone, a dry run plans
            // exactly what was saved (outside the measurement).
            db.execute_unprepared("DELETE FROM tasks").await.expect("clear tasks");
            let (_, plan) = arrears::ops::plan_collect(&db, strategies, now, true).await.expect("dry run");
            let tasks = plan.tasks;
            assert_eq!(tasks.len() as u64, saved, "the dry run plans what was saved");
            let started = Instant::now();
            arrears::store::raw_insert_tasks(&db, &tasks).await.expect("raw insert");
            let raw = started.elapsed().as_secs_f64();
            println!(
                "{name}: plan and persist {accounts} accounts ({} tasks): {engine:.2} s; raw bulk INSERT of the same rows: {raw:.2} s; ratio {:.2}x (target <= 2x); peak memory while planning and persisting {peak:.0} MiB (target < 1024)",
                tasks.len(),
                engine / raw
            );
            drop(tasks);
            let (seconds, peak) = plan_in_child(&db, &url, now, templates).await;
            println!(
                "{name}: `arrears plan` in a fresh process on the same book: {seconds:.2} s, peak memory {peak:.0} MiB (target < 1024)"
            );
        }
    }
}
