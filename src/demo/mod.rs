//! `arrears demo`: a synthetic portfolio (several zones, products, stages, tags, scores, flags and
//! some history) written as the contract's CSV files, imported through the real import path,
//! planned by the real engine, then run for several simulated days: the real HTTP API on
//! loopback, the real scheduler (daily plan, lease reaper, promise watcher) stepped with a
//! manual clock, simulated agents working the human queues over HTTP, and a simulated servicing
//! system paying most promises.

mod agents;
mod callcenter;

use crate::clock::Clock;
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::http::AppState;
use crate::import::ImportKind;
use crate::ops::tokens::{Role, create_token};
use crate::ops::{self, PlanOutcome, Settings};
use crate::scheduler::{Scheduler, Schedules, StrategySource};
use crate::strategy::StrategySet;
use anyhow::Context as _;
use chrono::{DateTime, Duration, NaiveDate, SubsecRound, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sea_orm::DatabaseConnection;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const CN_ZONES: &[&[&str]] =
    &[&["Asia/Shanghai"], &["Asia/Shanghai"], &["Asia/Shanghai"], &["Asia/Urumqi"], &["Asia/Shanghai", "Asia/Urumqi"]];
const US_ZONES: &[&[&str]] = &[
    &["America/New_York"],
    &["America/New_York"],
    &["America/Chicago"],
    &["America/Denver"],
    &["America/Los_Angeles"],
    &["America/Phoenix"],
    &["America/New_York", "America/Los_Angeles"],
    &["America/Anchorage"],
    &["Pacific/Honolulu"],
];
const US_STATES: &[&str] = &["NY", "CA", "TX", "FL", "MA", "IL", "WA", "GA"];
const CN_CITIES: &[&str] = &["shanghai", "beijing", "chengdu", "urumqi", "shenzhen"];
const TAGS: &[(&str, f64)] = &[
    ("vip", 0.03),
    ("new_customer", 0.15),
    ("salaried", 0.5),
    ("self_employed", 0.2),
    ("hardship", 0.04),
    ("student", 0.06),
];
const FLAGS: &[(&str, f64)] = &[
    ("dispute", 0.01),
    ("do_not_call", 0.01),
    ("deceased", 0.003),
    ("bankruptcy", 0.004),
    ("attorney", 0.004),
    ("cease_contact", 0.002),
];

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn days_past_due(rng: &mut SmallRng) -> i64 {
    match rng.random_range(0..100) {
        0..=9 => rng.random_range(-5..=-1),
        10..=11 => 0,
        12..=44 => rng.random_range(1..=7),
        45..=69 => rng.random_range(8..=30),
        70..=84 => rng.random_range(31..=60),
        85..=97 => rng.random_range(61..=180),
        _ => rng.random_range(181..=400),
    }
}

/// Writes the demo's CSV files into `dir`: accounts, attempts and promises as of `now`.
pub fn write_portfolio(dir: &Path, accounts: usize, seed: u64, now: DateTime<Utc>) -> anyhow::Result<()> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let today: NaiveDate = now.date_naive();
    let mut accounts_csv = csv::Writer::from_path(dir.join("accounts.csv"))?;
    let extra = ["score.loss", "score.contact", "attr.state", "attr.city"];
    accounts_csv.write_record(crate::import::ACCOUNT_COLUMNS.iter().chain(&extra))?;
    let mut attempts_csv = csv::Writer::from_path(dir.join("attempts.csv"))?;
    attempts_csv.write_record(["account_id", "channel", "phone", "at", "outcome"])?;
    let mut promises_csv = csv::Writer::from_path(dir.join("promises.csv"))?;
    promises_csv.write_record(["account_id", "amount", "due_on", "made_at"])?;
    let mut borrower = 0usize;
    let mut index = 0usize;
    while index < accounts {
        borrower += 1;
        let us = rng.random_bool(0.35);
        let loans = if rng.random_bool(0.15) { 2 } else { 1 };
        let zones = pick(&mut rng, if us { US_ZONES } else { CN_ZONES }).join(";");
        let phone = if us {
            format!("+1{}{:07}", rng.random_range(201..=989), rng.random_range(0..10_000_000))
        } else {
            format!("+86{}{:08}", rng.random_range(130..=199), rng.random_range(0..100_000_000))
        };
        let second_phone = rng.random_bool(0.2).then(|| format!("{}9", &phone[..phone.len() - 1]));
        let phones = match &second_phone {
            Some(second) if *second != phone => format!("{phone};{second}"),
            _ => phone.clone(),
        };
        let name = if us { format!("Borrower {borrower}") } else { format!("借款人 {borrower}") };
        let email = if rng.random_bool(0.7) { format!("b{borrower}@example.com") } else { String::new() };
        let consent = rng.random_bool(if us { 0.8 } else { 0.95 });
        let state = if us { pick(&mut rng, US_STATES).to_string() } else { String::new() };
        let city = if us { String::new() } else { pick(&mut rng, CN_CITIES).to_string() };
        for _ in 0..loans {
            if index == accounts {
                break;
            }
            index += 1;
            let account_id = format!("A{index:08}");
            let product = if us {
                "card"
            } else if rng.random_bool(0.6) {
                "cash"
            } else {
                "installment"
            };
            let dpd = days_past_due(&mut rng);
            let balance =
                if rng.random_bool(0.05) { rng.random_range(20_000..80_000) } else { rng.random_range(500..20_000) };
            let due =
                if dpd == 0 && rng.random_bool(0.5) { 0 } else { (balance / 10).max(50) + rng.random_range(0..500) };
            let tags: Vec<&str> = TAGS.iter().filter(|(_, p)| rng.random_bool(*p)).map(|(t, _)| *t).collect();
            let flags: Vec<&str> = FLAGS.iter().filter(|(_, p)| rng.random_bool(*p)).map(|(f, _)| *f).collect();
            accounts_csv.write_record([
                account_id.as_str(),
                &format!("B{borrower:08}"),
                &name,
                &phones,
                &email,
                &zones,
                product,
                if us { "USD" } else { "CNY" },
                &format!("{due}.00"),
                &format!("{balance}.{:02}", rng.random_range(0..100)),
                &(today - Duration::days(dpd)).to_string(),
                &tags.join(";"),
                &flags.join(";"),
                if consent { "true" } else { "false" },
                &format!("{:.3}", rng.random_range(0.0..1.0)),
                &format!("{:.3}", rng.random_range(0.0..1.0)),
                &state,
                &city,
            ])?;
            if dpd > 1 && rng.random_bool(0.3) {
                for _ in 0..rng.random_range(1..=4) {
                    let at = now - Duration::minutes(rng.random_range(60..7 * 24 * 60));
                    let outcome = *pick(
                        &mut rng,
                        &["no_answer", "no_answer", "busy", "voicemail", "rpc", "refused", "callback", "third_party"],
                    );
                    attempts_csv.write_record([account_id.as_str(), "robot", &phone, &at.to_rfc3339(), outcome])?;
                }
            }
            if dpd > 0 && due > 0 && rng.random_bool(0.04) {
                let made = now - Duration::hours(rng.random_range(2..72));
                let due_on = today + Duration::days(rng.random_range(0..5));
                promises_csv.write_record([
                    account_id.as_str(),
                    &format!("{due}.00"),
                    &due_on.to_string(),
                    &made.to_rfc3339(),
                ])?;
            }
        }
    }
    accounts_csv.flush()?;
    attempts_csv.flush()?;
    promises_csv.flush()?;
    Ok(())
}

/// Removes the SQLite file (and its WAL) a `sqlite://` URL points at, so the demo starts clean.
fn reset_sqlite(url: &str) -> anyhow::Result<Option<String>> {
    let Some(rest) = url.strip_prefix("sqlite://") else { return Ok(None) };
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        return Ok(None);
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{path}{suffix}");
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error).with_context(|| format!("cannot remove {file}")),
        }
    }
    Ok(Some(path.to_string()))
}

/// Simulated minutes between two steps of the demo's clock.
const STEP_MINUTES: i64 = 60;
/// Simulated agents.
const AGENTS: usize = 12;
/// Tasks each agent takes per step.
const TASKS_PER_AGENT_PER_STEP: usize = 3;
/// Share of promises the simulated borrowers keep.
const PROMISES_KEPT: f64 = 0.65;

/// `arrears demo`.
pub async fn run(
    settings: &Settings,
    accounts: usize,
    seed: u64,
    days: u32,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let now = Utc::now().trunc_subsecs(0);
    let strategies = ops::load_strategies(settings, &settings.strategies_dir)
        .map_err(|errors| anyhow::anyhow!("the strategies are invalid:\n{errors}"))?;
    let rebuilt = reset_sqlite(&settings.database_url)?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let started = Instant::now();
    write_portfolio(dir.path(), accounts, seed, now)?;
    writeln!(out, "synthetic portfolio: {accounts} accounts (seed {seed}) in {:.1?}", started.elapsed())?;
    let db = ops::connect(settings).await?;
    if let Some(path) = rebuilt {
        writeln!(out, "database: {path} (rebuilt)")?;
    }
    for (kind, file) in [
        (ImportKind::Accounts, "accounts.csv"),
        (ImportKind::Attempts, "attempts.csv"),
        (ImportKind::Promises, "promises.csv"),
    ] {
        let started = Instant::now();
        let report = crate::import::import_file(&db, kind, &dir.path().join(file)).await?;
        writeln!(out, "imported {file}: {report} in {:.1?}", started.elapsed())?;
    }
    let started = Instant::now();
    let outcome: PlanOutcome = ops::plan_and_persist(&db, &strategies, now, false).await?;
    writeln!(out, "planned and saved in {:.1?}\n", started.elapsed())?;
    ops::write_summary(&outcome, now, out)?;
    if days > 0 {
        simulate(settings, &db, strategies, now, days, seed, out).await?;
    }
    writeln!(
        out,
        "\nnext: `arrears serve` serves this database (see docs/api.md); `arrears explain ACCOUNT_ID` \
         says why an account was or was not contacted; `arrears plan --dry-run --format jsonl | head` \
         shows each decision; edit strategies/*.toml, `arrears strategy check`, and plan again."
    )?;
    Ok(())
}

/// The human queues the strategies route work to.
fn human_queues(strategies: &StrategySet) -> Vec<String> {
    let mut queues: Vec<String> = strategies
        .strategies
        .iter()
        .flat_map(|strategy| strategy.rules.iter())
        .filter(|rule| rule.treatment.channel == crate::domain::Channel::Human)
        .filter_map(|rule| rule.treatment.queue.as_deref().map(str::to_string))
        .collect();
    queues.sort();
    queues.dedup();
    queues
}

/// Runs `days` simulated days from `start`, a step every [`STEP_MINUTES`].
async fn simulate(
    settings: &Settings,
    db: &DatabaseConnection,
    strategies: StrategySet,
    start: DateTime<Utc>,
    days: u32,
    seed: u64,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let clock = Clock::manual(start);
    let queues = human_queues(&strategies);
    // The simulated robot dialler and SMS/e-mail gateway, and endpoints pointing at them.
    let center = callcenter::CallCenter::start().await?;
    let mut settings = settings.clone();
    let endpoints: Config = toml::from_str(&center.endpoints_toml()).context("demo endpoints")?;
    settings.config.endpoints.extend(endpoints.endpoints);
    let settings = &settings;
    let state = AppState::with_strategies(db.clone(), settings.clone(), strategies, clock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot listen on 127.0.0.1")?;
    let api = agents::Api {
        base: format!("http://{}", listener.local_addr().context("no local address")?),
        client: reqwest::Client::builder().no_proxy().build().context("cannot build the HTTP client")?,
    };
    let server = tokio::spawn(axum::serve(listener, crate::http::router(state.clone())).into_future());
    let mut agents = Vec::new();
    for n in 1..=AGENTS {
        let id = format!("demo-agent-{n:02}");
        let token = create_token(db, Role::Agent, Some(&id), Some("demo"), start).await?;
        agents.push(agents::Agent { token });
    }
    let ingest = create_token(db, Role::Ingest, None, Some("demo servicing system"), start).await?;
    let dialler = create_token(db, Role::Dialler, None, Some("demo dialler"), start).await?;
    let schedules = Schedules::from_config(&settings.config).map_err(|message| anyhow::anyhow!(message))?;
    let live = Arc::clone(&state.strategies);
    let source: StrategySource = Arc::new(move || live.current());
    let scheduler = Scheduler::new(db.clone(), schedules, source, clock.clone(), "demo")
        .with_release(&settings.config, &settings.templates_dir)?
        .with_dispatcher(Dispatcher::from_config(&settings.config)?);

    writeln!(
        out,
        "\nsimulating {days} day(s) with the API at {} and a call center at {}: the scheduler (plan, release, dispatch, reaper, promises) every {STEP_MINUTES} minutes; a robot dialler and an SMS gateway receiving signed webhooks and reporting outcomes; {AGENTS} agents on queues [{}]",
        api.base,
        center.url,
        queues.join(", "),
    )?;
    let steps = u64::from(days) * 24 * 60 / STEP_MINUTES as u64;
    let progress = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(steps)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let mut tally = agents::AgentTally::default();
    let mut decided: std::collections::HashSet<i64> = std::collections::HashSet::new();
    let (mut plans, mut payments, mut kept, mut broken, mut reaped) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut dispatched, mut made_ready, mut recheck_cancelled, mut expired, mut delivered) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for step in 0..steps {
        let now = start + Duration::minutes(STEP_MINUTES * i64::try_from(step).unwrap_or(0));
        clock.set(now);
        let report = scheduler.try_execute_jobs(now).await?;
        if let Some(error) = &report.plan_failed {
            anyhow::bail!("the scheduled plan failed: {error}");
        }
        plans += u64::from(report.planned.is_some());
        if report.plan_started {
            // The simulated clock moves on only once the plan it started is saved (`serve`
            // does not wait: its steps go on while the plan runs).
            scheduler.wait_for_plan().await;
        }
        kept += report.promises.kept;
        broken += report.promises.broken;
        reaped += report.leases_reaped;
        dispatched += report.released.dispatched;
        made_ready += report.released.ready;
        recheck_cancelled += report.released.cancelled;
        expired += report.released.expired;
        delivered += report.deliveries.delivered;
        center.report_outcomes(&api, &dialler, now, &mut rng).await?;
        agents::work_step(&api, &agents, &queues, TASKS_PER_AGENT_PER_STEP, now, &mut rng, &mut tally).await?;
        if step % (24 * 60 / STEP_MINUTES as u64) == 0 {
            // Each promise is paid (or not) once: its decision is not drawn again the next day.
            let due: Vec<(i64, String, String)> =
                promises_due(db, now).await?.into_iter().filter(|(id, _, _)| decided.insert(*id)).collect();
            payments += agents::pay_promises(&api, &ingest, &due, now, PROMISES_KEPT, &mut rng).await?;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    server.abort();
    let calls = center.tally();
    writeln!(
        out,
        "{days} simulated day(s) in {:.1?}: {plans} scheduled plan run(s); agents leased {} tasks and reported {} attempts ({} refused requests); {payments} promise payment(s); promises kept {kept}, broken {broken}; {reaped} expired lease(s) reaped",
        started.elapsed(),
        tally.leases,
        tally.outcomes.values().sum::<u64>(),
        tally.refused,
    )?;
    writeln!(
        out,
        "release: {dispatched} robot/SMS/e-mail task(s) sent to the outbox, {made_ready} human task(s) made ready, {recheck_cancelled} taken out by the re-check, {expired} expired; {delivered} webhook(s) delivered; the call center verified {} and refused {} signature(s), reported {} outcome(s), {} on tasks cancelled meanwhile, {} refused",
        calls.received.values().sum::<u64>(),
        calls.rejected,
        calls.outcomes.values().sum::<u64>(),
        calls.late,
        calls.refused,
    )?;
    let mut outcomes: BTreeMap<(String, String), u64> = calls.outcomes.clone();
    for (outcome, count) in &tally.outcomes {
        *outcomes.entry(("human".to_string(), outcome.clone())).or_default() += count;
    }
    writeln!(out, "\n{:<8} {:<16} {:>9}", "channel", "outcome", "attempts")?;
    for ((channel, outcome), count) in &outcomes {
        writeln!(out, "{channel:<8} {outcome:<16} {count:>9}")?;
    }
    let period = crate::report::Period { from: start, to: clock.now() + Duration::seconds(1) };
    for by in [crate::report::GroupBy::Stage, crate::report::GroupBy::Strategy] {
        writeln!(out)?;
        let kpis = ops::report::kpis(db, period, by).await?;
        crate::report::write_text(&kpis, out)?;
    }
    Ok(())
}

/// Open promises due on or before `now`'s date: `(promise id, account id, amount)`.
async fn promises_due(db: &DatabaseConnection, now: DateTime<Utc>) -> anyhow::Result<Vec<(i64, String, String)>> {
    use entity::promises;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let rows = promises::Entity::find()
        .filter(promises::Column::Status.eq("open"))
        .filter(promises::Column::DueOn.lte(now.date_naive()))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|promise| (promise.id, promise.account_id, promise.amount.to_string())).collect())
}
