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
use chrono::{DateTime, Duration, SubsecRound, Utc};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use sea_orm::DatabaseConnection;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

pub use crate::ops::synthetic::write_portfolio;

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
    // The simulated agents' capacity, as `[queues.<name>]` would declare it, unless the
    // configuration declares queues itself: the plan then gives each queue what they can work.
    let mut settings = settings.clone();
    let strategies = if settings.config.queues.is_empty() {
        settings.config.queues = demo_queues(&strategies);
        ops::load_strategies(&settings, &settings.strategies_dir)
            .map_err(|errors| anyhow::anyhow!("the strategies are invalid:\n{errors}"))?
    } else {
        strategies
    };
    let settings = &settings;
    for (name, queue) in &settings.config.queues {
        writeln!(
            out,
            "queue {name}: {} calls an hour over {} ({})",
            queue.calls_per_agent_hour,
            queue.shifts.iter().map(|shift| shift.hours.as_str()).collect::<Vec<_>>().join(", "),
            queue.zone.as_deref().unwrap_or(&settings.config.timezone)
        )?;
    }
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

/// The demo agents' capacity per human queue: [`AGENTS`] agents taking
/// [`TASKS_PER_AGENT_PER_STEP`] tasks an hour between them, shared by the queues whose
/// borrowers are awake at the same time (the strategies under a Chinese profile serve the
/// Shanghai book, the others the American one), 09:00–21:00 in that zone.
fn demo_queues(strategies: &StrategySet) -> BTreeMap<String, crate::config::Queue> {
    let mut regions: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for strategy in &strategies.strategies {
        let zone = if strategy.policy.name.starts_with("cn-") { "Asia/Shanghai" } else { "America/New_York" };
        for rule in &strategy.rules {
            if rule.treatment.channel == crate::domain::Channel::Human
                && let Some(queue) = rule.treatment.queue.as_deref()
            {
                regions.entry(zone).or_default().push(queue.to_string());
            }
        }
        for escalate in strategy.rules.iter().filter_map(|rule| rule.treatment.escalate.as_ref()) {
            regions.entry(zone).or_default().push(escalate.1.to_string());
        }
    }
    let per_hour = (AGENTS * TASKS_PER_AGENT_PER_STEP) as f64;
    let mut queues = BTreeMap::new();
    for (zone, mut names) in regions {
        names.sort();
        names.dedup();
        let share = per_hour / names.len() as f64;
        for name in names {
            queues.insert(
                name,
                crate::config::Queue {
                    zone: Some(zone.to_string()),
                    calls_per_agent_hour: (share * 10.0).floor() / 10.0,
                    shifts: vec![crate::config::Shift { hours: "09:00-21:00".into(), agents: 1 }],
                },
            );
        }
    }
    queues
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
