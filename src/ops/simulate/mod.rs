//! `arrears simulate`: the real engine over simulated days that end now, on a throw-away SQLite
//! store, against a simulated call center (`center`) whose borrowers behave as `sim::World`
//! says. One run: the book imported through the real importer, the real scheduler stepped
//! hourly on a manual clock (plan, release, reaper, promise watcher, nightly learn), the real
//! outbox worker delivering signed webhooks to in-process receivers, the dialler, gateway and
//! agents reporting through the engine's own use cases, the world's payments posted through
//! `ingest_payments`; then the metrics (`tally`) and an independent count of violations
//! (`sim::check`). `--vs` runs the same book twice with the same draws and compares them
//! account by account (`compare`). `--oracle` gives one arm the world's true curves
//! (`sim::oracle_model`, stored before each plan run) instead of the nightly learn.
//!
//! `arrears demo` is this loop on the user's database (`SimOptions::store`). It drives the
//! scheduler; it reads no clock of its own (the end instant is an
//! option) and prints nothing (`write_*` format what it returns) except what the debugging
//! switches of `docs/simulate.md` ask for on stderr (`ARREARS_SIM_PROFILE`,
//! `ARREARS_SIM_VIOLATIONS`; `ARREARS_SIM_DB` keeps the store).

pub mod callers;
mod center;
mod compare;
pub mod risk;
mod tally;
pub mod validation;

pub use compare::{ComparedRow, Comparison, compare, write_comparison};

use self::center::{Center, Engine, Inbox, QueueSim};
use self::tally::{AccountIndex, Tally};
use super::Settings;
use crate::clock::Clock;
use crate::config::Config;
use crate::dispatch::{Dispatcher, SigningSecret};
use crate::domain::{Channel, Money, Portfolio, QueueCapacity};
use crate::import::ImportKind;
use crate::ops::ingest::{MoneyText, PaymentIn};
use crate::ops::work::Rules;
use crate::policy::Policy;
use crate::scheduler::{Scheduler, Schedules, StrategySource};
use crate::sim::{self, ContactMade, Violations, World};
use crate::strategy::StrategySet;
use anyhow::Context as _;
use chrono::{DateTime, Duration, DurationRound, Timelike, Utc};
use chrono_tz::Tz;
use rustc_hash::FxHashMap as HashMap;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The dialler's capacity when none is given: robot calls placed per hour.
pub const DEFAULT_ROBOT_CALLS_PER_HOUR: u32 = 20_000;
/// Agents of a human queue without a `[queues.<name>]` table.
pub const DEFAULT_AGENTS: u32 = 12;
/// Their shift (local hours, in the zone most of the queue's borrowers live in).
pub const DEFAULT_SHIFT: (u32, u32) = (9, 21);
/// Calls per agent-hour the planner is told for such a queue (the simulated agents take the
/// world's handling times).
pub const DEFAULT_CALLS_PER_AGENT_HOUR: f64 = 10.0;
/// When the world's payments of a day arrive: this UTC hour, when the date is the same from
/// UTC−10 to UTC+11.
pub const PAYMENT_HOUR_UTC: u32 = 12;

/// Where an arm's contact model (what `timing = "learned"` rules read) comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArmModel {
    /// The nightly `learn` on the arm's own simulated history: the engine as deployed.
    #[default]
    Learned,
    /// The world's true curves (`sim::oracle_model`), stored before each plan run; the nightly
    /// learn does not run. The upper bound of learned timing.
    Oracle,
}

/// A cron expression with no occurrence after 1970: the oracle arm's learn schedule.
const NEVER: &str = "0 0 0 1 1 * 1970";

/// Where the book comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Book {
    /// The demo's synthetic book of this many accounts (seeded with the run's seed).
    Generated(usize),
    /// An accounts CSV (the import contract).
    File(PathBuf),
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Simulated days (at least 1).
    pub days: u32,
    /// The book.
    pub book: Book,
    /// The seed of the world (and of a generated book).
    pub seed: u64,
    /// The end of the simulated period (the CLI passes now): the days are the `days` before
    /// it, cut to the hour.
    pub end: DateTime<Utc>,
    /// Robot calls the simulated dialler places per hour.
    pub robot_calls_per_hour: u32,
    /// The store to simulate into (a database URL; migrated first) instead of a throw-away
    /// SQLite file: `arrears demo` keeps its run in the user's database.
    pub store: Option<String>,
}

/// Why the simulation cannot start: a bad option, named by its flag.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An option's value cannot be used.
    #[error("{flag}: {message}")]
    Invalid {
        /// The flag (`--days`, `--book`, ...).
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(flag: &'static str, message: impl Into<String>) -> anyhow::Error {
    SimError::Invalid { flag, message: message.into() }.into()
}

/// One metric of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// Its name, as in the table.
    pub metric: String,
    /// Its value (money as a number here; exact in [`SimReport::collected`]).
    pub value: f64,
}

/// A simulated queue's capacity and what was used of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueUse {
    /// The queue.
    pub queue: String,
    /// Where its capacity came from: `arrears.toml` or `default`.
    pub capacity_from: String,
    /// The zone its shifts are in.
    pub zone: String,
    /// Agent hours on shift over the run.
    pub agent_hours_available: f64,
    /// Agent hours spent on calls inside the shifts.
    pub agent_hours_used: f64,
    /// Agent hours of calls that ran past a shift's end.
    pub overtime_hours: f64,
    /// Leases taken.
    pub leases: u64,
}

/// What one simulated run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// The strategies directory.
    pub strategies: String,
    /// The book (`generated:N` or the file).
    pub book: String,
    /// Accounts in the book.
    pub accounts: usize,
    /// The seed.
    pub seed: u64,
    /// The first simulated instant.
    pub start: DateTime<Utc>,
    /// The end (excluded).
    pub end: DateTime<Utc>,
    /// UTC hours at which the book was planned each day.
    pub plan_hours_utc: Vec<u32>,
    /// The dialler's capacity.
    pub robot_calls_per_hour: u32,
    /// Where the contact model came from.
    pub contact_model: ArmModel,
    /// The metrics, in the table's order.
    pub metrics: Vec<Metric>,
    /// Money collected, per currency, exact.
    pub collected: BTreeMap<String, Money>,
    /// Human tasks the engine made (planned, escalated, callbacks).
    pub human_tasks: u64,
    /// The independent check's violations, by rule.
    pub violations: Violations,
    /// The queues and their use.
    pub queues: Vec<QueueUse>,
    /// Robot tasks the dialler could not reach before their window closed.
    pub robot_tasks_unreached: u64,
    /// Reports and requests the engine refused, by operation and reason (expected empty).
    pub refused: BTreeMap<String, u64>,
    /// Webhooks the in-process receivers refused (bad signature or body; expected 0).
    pub webhooks_rejected: u64,
    /// The risk desk: events sent, reactions, cases and their dispositions.
    pub risk: risk::RiskTally,
    /// The borrowers' calls: how they matched, what the robot settled, the transfers.
    pub inbound: callers::InboundTally,
}

/// One run: its report and its per-account counts (for a paired comparison).
#[derive(Debug, Clone)]
pub struct SimRun {
    /// The report.
    pub report: SimReport,
    tally: Tally,
    currencies: Vec<String>,
}

/// The first instant and the number of hourly steps of `options`.
fn period(options: &SimOptions) -> anyhow::Result<(DateTime<Utc>, u32)> {
    if options.days == 0 {
        return Err(invalid("--days", "must be at least 1"));
    }
    if options.days > 3650 {
        return Err(invalid("--days", format!("{} is more than ten years", options.days)));
    }
    let end = options.end.duration_trunc(Duration::hours(1)).unwrap_or(options.end);
    Ok((end - Duration::days(i64::from(options.days)), options.days * 24))
}

/// The local-night UTC hours at which to plan: each zone of the book gets a plan run between
/// its local 00:00 and 07:59 (before every profile's contact hours) on the first and the last
/// day (so across a DST change too); hours are chosen greedily, the one serving most zones first.
pub fn plan_hours(zones: &[Tz], first: DateTime<Utc>, last: DateTime<Utc>) -> Vec<u32> {
    let serves = |zone: &Tz, hour: u32| {
        [first, last].iter().all(|day| {
            let at = day.date_naive().and_hms_opt(hour, 0, 0).map(|at| at.and_utc());
            at.is_some_and(|at| at.with_timezone(zone).hour() < 8)
        })
    };
    let mut left: Vec<&Tz> = zones.iter().collect();
    let mut hours = Vec::new();
    while !left.is_empty() {
        let best = (0..24u32).max_by_key(|hour| (left.iter().filter(|zone| serves(zone, *hour)).count(), 24 - hour));
        let Some(hour) = best.filter(|hour| left.iter().any(|zone| serves(zone, *hour))) else { break };
        left.retain(|zone| !serves(zone, hour));
        hours.push(hour);
    }
    if hours.is_empty() {
        hours.push(0);
    }
    hours.sort_unstable();
    hours
}

/// The human queues the strategies route work to (rules, escalations), each with its
/// configured capacity or the default one: [`DEFAULT_AGENTS`] agents over [`DEFAULT_SHIFT`] in
/// the zone most of the borrowers of the strategy naming the queue live in.
fn queues_of(strategies: &StrategySet, portfolio: &Portfolio, fallback_zone: Tz) -> Vec<QueueSim> {
    let mut zone_counts: Vec<BTreeMap<&'static str, (Tz, u64)>> = vec![BTreeMap::new(); strategies.strategies.len()];
    for account in &portfolio.accounts {
        if let (Some(strategy), Some(borrower)) =
            (strategies.index_for(&account.product), portfolio.borrowers.get(&account.borrower_id))
        {
            let zone = borrower.primary_timezone();
            zone_counts[strategy].entry(zone.name()).or_insert((zone, 0)).1 += 1;
        }
    }
    let mut named: BTreeMap<String, usize> = BTreeMap::new();
    for (index, strategy) in strategies.strategies.iter().enumerate() {
        for rule in &strategy.rules {
            let treatment = &rule.treatment;
            if treatment.channel == Channel::Human
                && let Some(queue) = &treatment.queue
            {
                named.entry(queue.to_string()).or_insert(index);
            }
            if let Some((_, queue)) = &treatment.escalate {
                named.entry(queue.to_string()).or_insert(index);
            }
        }
    }
    for queue in strategies.capacities.keys() {
        named.entry(queue.clone()).or_insert(usize::MAX);
    }
    named
        .into_iter()
        .map(|(name, strategy)| match strategies.capacities.get(&name) {
            Some(capacity) => QueueSim { name, capacity: capacity.clone(), default: false },
            None => {
                let zone = zone_counts
                    .get(strategy)
                    .and_then(|counts| {
                        counts.iter().max_by_key(|(name, (_, count))| (*count, std::cmp::Reverse(*name)))
                    })
                    .map_or(fallback_zone, |(_, (zone, _))| *zone);
                let mut agents_by_hour = [0; 24];
                agents_by_hour[DEFAULT_SHIFT.0 as usize..DEFAULT_SHIFT.1 as usize].fill(DEFAULT_AGENTS);
                let capacity =
                    QueueCapacity { zone, calls_per_agent_hour: DEFAULT_CALLS_PER_AGENT_HOUR, agents_by_hour };
                QueueSim { name, capacity, default: true }
            }
        })
        .collect()
}

/// The configuration of a run: the user's, with the robot, SMS and e-mail endpoints pointing at
/// the in-process receivers (and no other endpoint: a simulation never sends a real webhook).
fn run_config(config: &Config, secret: &str) -> anyhow::Result<Config> {
    let mut config = config.clone();
    let endpoints: Config = toml::from_str(
        &["robot", "sms", "email"]
            .iter()
            .map(|name| {
                format!("[endpoints.{name}]\nurl = \"http://simulated.invalid/{name}\"\nsecret = \"{secret}\"\n")
            })
            .collect::<String>(),
    )
    .context("the simulated endpoints")?;
    config.endpoints = endpoints.endpoints;
    Ok(config)
}

/// The schedules of a run, in UTC: plan at `plan_hours`, learn an hour before the day's first
/// plan (never for an [`ArmModel::Oracle`] arm), reap and check promises as configured (every
/// step, with the default expressions).
fn run_schedules(config: &Config, hours: &[u32], model: ArmModel) -> anyhow::Result<Schedules> {
    let list = hours.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let first = hours.first().copied().unwrap_or(0);
    let mut utc = config.clone();
    utc.timezone = "UTC".into();
    utc.schedule.plan = format!("0 0 {list} * * *");
    utc.schedule.learn = match model {
        ArmModel::Learned => format!("0 0 {} * * *", (first + 23) % 24),
        ArmModel::Oracle => NEVER.to_string(),
    };
    Schedules::from_config(&utc).map_err(|message| anyhow::anyhow!(message))
}

/// Runs one simulation of the strategies of `strategies_dir` (see the module's documentation),
/// learning nightly.
pub async fn simulate(
    settings: &Settings,
    strategies_dir: &Path,
    options: &SimOptions,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<SimRun> {
    simulate_arm(settings, strategies_dir, options, ArmModel::Learned, progress).await
}

/// [`simulate`] with the contact model from `model`.
pub async fn simulate_arm(
    settings: &Settings,
    strategies_dir: &Path,
    options: &SimOptions,
    model: ArmModel,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<SimRun> {
    let (start, steps) = period(options)?;
    if options.robot_calls_per_hour == 0 {
        return Err(invalid("robot calls per hour", "must be at least 1"));
    }
    let strategies = super::load_strategies(settings, strategies_dir).map_err(|errors| {
        invalid("--strategies", format!("{} has invalid strategies:\n{errors}", strategies_dir.display()))
    })?;
    let strategies = Arc::new(strategies);
    let dir = tempfile::tempdir().context("cannot create a temporary directory for the simulated store")?;
    let url = match &options.store {
        Some(url) => url.clone(),
        None => format!("sqlite://{}?mode=rwc", dir.path().join("simulate.db").display()),
    };
    let db = crate::store::connect(&url).await.context("cannot open the simulated store")?;
    crate::store::migrate(&db).await.context("cannot migrate the simulated store")?;
    let (accounts_csv, book_name) = match &options.book {
        Book::Generated(accounts) => {
            if *accounts == 0 {
                return Err(invalid("--accounts", "must be at least 1"));
            }
            super::synthetic::write_portfolio(dir.path(), *accounts, options.seed, start)?;
            (dir.path().join("accounts.csv"), format!("generated:{accounts}"))
        }
        Book::File(path) => {
            if !path.is_file() {
                return Err(invalid("--book", format!("{} is not a file", path.display())));
            }
            (path.clone(), path.display().to_string())
        }
    };
    crate::import::import_file_at(&db, ImportKind::Accounts, &accounts_csv, start - Duration::minutes(1))
        .await
        .map_err(|error| match &options.book {
            Book::File(path) => invalid("--book", format!("{}: {error}", path.display())),
            Book::Generated(_) => anyhow::Error::from(error).context("cannot import the generated book"),
        })?;
    let portfolio = crate::store::load_portfolio(&db).await?;
    if portfolio.accounts.is_empty() {
        return Err(invalid("--book", format!("{book_name} has no accounts")));
    }
    let index = AccountIndex::new(&portfolio, &strategies);
    let owed_at_start: Vec<Money> = portfolio.accounts.iter().map(|account| account.amount_due).collect();
    let zones: BTreeMap<&'static str, Tz> = portfolio
        .borrowers
        .values()
        .map(|borrower| (borrower.primary_timezone().name(), borrower.primary_timezone()))
        .collect();
    let zones: Vec<Tz> = zones.into_values().collect();
    let end = start + Duration::hours(i64::from(steps));
    let hours = plan_hours(&zones, start, end - Duration::hours(1));
    let portfolio_zone = crate::domain::parse_timezone(&settings.config.timezone).unwrap_or(Tz::UTC);
    let queues = queues_of(&strategies, &portfolio, portfolio_zone);
    let world = World::new(options.seed, &portfolio, start.date_naive());
    let oracle_borrowers = match model {
        ArmModel::Oracle => oracle_borrowers(&portfolio),
        ArmModel::Learned => Vec::new(),
    };
    drop(portfolio);

    let secret_text = SigningSecret::generate();
    let secret = SigningSecret::parse(&secret_text).map_err(|message| anyhow::anyhow!(message))?;
    let config = run_config(&settings.config, &secret_text)?;
    let fallback = Policy::builtin(&config.policy, &config.policies).map_err(|error| anyhow::anyhow!(error.message))?;
    let inbox = Arc::new(Inbox::new(secret.clone()));
    let mut dispatcher = Dispatcher::from_config(&config)?;
    for name in ["robot", "sms", "email"] {
        dispatcher = dispatcher.with_sink(name, secret.clone(), inbox.clone());
    }
    dispatcher.batch = 1000;
    let clock = Clock::manual(start);
    let live = Arc::clone(&strategies);
    let source: StrategySource = Arc::new(move || Arc::clone(&live));
    let scheduler =
        Scheduler::new(db.clone(), run_schedules(&config, &hours, model)?, source, clock.clone(), "simulate")
            .with_release(&config, &settings.templates_dir)?;
    let lease_ttl = config.lease_duration().map_err(|message| anyhow::anyhow!("lease_ttl: {message}"))?;
    let engine = Engine {
        db: &db,
        strategies: &strategies,
        fallback: &fallback,
        rules: Rules { strategies: &strategies, fallback: &fallback, promise_max_days: config.promise_max_days },
        dispatcher: &dispatcher,
        lease_ttl,
    };
    let mut center = Center::new(world, inbox.clone(), options.robot_calls_per_hour, queues, index.clone(), start, end);

    let mut risk_tally = risk::RiskTally::default();
    let mut inbound_tally = callers::InboundTally::default();
    progress.set_length(u64::from(steps));
    for step in 0..steps {
        let now = start + Duration::hours(i64::from(step));
        clock.set(now);
        if now.hour() == PAYMENT_HOUR_UTC {
            let started = std::time::Instant::now();
            post_payments(&db, &mut center, &index, now).await?;
            center.profile.add("payments", started);
        }
        if model == ArmModel::Oracle && hours.contains(&now.hour()) {
            let started = std::time::Instant::now();
            let truth = sim::oracle_model(center.world(), &oracle_borrowers, now);
            crate::store::save_model(&db, &truth, 0, 0, now).await.context("cannot store the oracle's model")?;
            center.profile.add("oracle model", started);
        }
        let started = std::time::Instant::now();
        let report = scheduler.try_execute_jobs(now).await?;
        if let Some(error) = &report.plan_failed {
            anyhow::bail!("the scheduled plan failed at {now}: {error}");
        }
        center
            .profile
            .add(if report.learned.is_some() { "scheduler step (with learn)" } else { "scheduler step" }, started);
        if report.plan_started {
            let started = std::time::Instant::now();
            scheduler.wait_for_plan().await;
            center.profile.add("plan", started);
        }
        let started = std::time::Instant::now();
        risk::raise_events(&db, &strategies, center.world(), now, &mut risk_tally).await?;
        risk::work_cases(&db, center.world(), portfolio_zone, now, &mut risk_tally).await?;
        center.profile.add("risk desk", started);
        let started = std::time::Instant::now();
        let queue_names: Vec<(String, String)> =
            center.queues().iter().map(|queue| (queue.name.clone(), queue.capacity.zone.name().to_string())).collect();
        let transfers = callers::take_calls(
            &db,
            &engine.rules,
            &settings.templates_dir,
            center.world_mut(),
            &queue_names,
            now,
            &mut inbound_tally,
        )
        .await?;
        center.profile.add("inbound calls", started);
        center.flush_outbox(&engine, now).await?;
        center.start_hour(now);
        for (queue, at) in transfers {
            center.ring(&queue, at);
        }
        center.run_until(&engine, now + Duration::hours(1)).await?;
        progress.inc(1);
    }
    clock.set(end);
    if std::env::var_os("ARREARS_SIM_PROFILE").is_some() {
        for (operation, (spent, calls)) in &center.profile.spent {
            eprintln!(
                "{operation:<28} {:>9.1} s {calls:>9} calls {:>9.1} µs/call",
                spent.as_secs_f64(),
                spent.as_secs_f64() * 1e6 / *calls as f64
            );
        }
    }

    let mut tally = center.tally.clone();
    let human_tasks = finish_counts(&db, &index, &owed_at_start, &mut tally).await?;
    let violations = count_violations(&center.contacts, &strategies, &fallback, &index, &mut tally);
    let queue_use: Vec<QueueUse> = center
        .queues()
        .iter()
        .enumerate()
        .map(|(i, queue)| QueueUse {
            queue: queue.name.clone(),
            capacity_from: if queue.default { "default" } else { "arrears.toml" }.into(),
            zone: queue.capacity.zone.name().to_string(),
            agent_hours_available: (0..steps)
                .map(|step| f64::from(queue.capacity.agents_at(start + Duration::hours(i64::from(step)))))
                .sum(),
            agent_hours_used: center.agent_minutes[i] / 60.0,
            overtime_hours: center.overtime_minutes[i] / 60.0,
            leases: center.leases[i],
        })
        .collect();
    let currencies: Vec<String> = (0..index.len()).map(|i| index.currency(i).to_string()).collect();
    let mut collected: BTreeMap<String, Money> = BTreeMap::new();
    for (i, counts) in tally.accounts.iter().enumerate() {
        if counts.collected > Money::ZERO {
            *collected.entry(currencies[i].clone()).or_default() += counts.collected;
        }
    }
    let metrics = compare::metric_defs(&currencies)
        .iter()
        .map(|def| Metric { metric: def.name.clone(), value: def.total(&tally, &currencies) })
        .collect();
    let report = SimReport {
        strategies: strategies_dir.display().to_string(),
        book: book_name,
        accounts: index.len(),
        seed: options.seed,
        start,
        end,
        plan_hours_utc: hours,
        robot_calls_per_hour: options.robot_calls_per_hour,
        contact_model: model,
        metrics,
        collected,
        human_tasks,
        violations,
        queues: queue_use,
        robot_tasks_unreached: center.robot_unreached,
        refused: center.refusals.clone(),
        webhooks_rejected: inbox.rejected(),
        risk: risk_tally,
        inbound: inbound_tally,
    };
    db.close().await.ok();
    Ok(SimRun { report, tally, currencies })
}

/// The borrowers of the book as the oracle asks the world about them: each with their first
/// account and primary zone, by borrower id.
fn oracle_borrowers(portfolio: &Portfolio) -> Vec<sim::OracleBorrower> {
    let mut first: BTreeMap<&str, &str> = BTreeMap::new();
    for account in &portfolio.accounts {
        first.entry(account.borrower_id.as_str()).or_insert(account.id.as_str());
    }
    first
        .into_iter()
        .filter_map(|(borrower_id, account_id)| {
            let borrower = portfolio.borrowers.get(borrower_id)?;
            Some(sim::OracleBorrower {
                borrower_id: borrower_id.to_string(),
                account_id: account_id.to_string(),
                zone: borrower.primary_timezone(),
            })
        })
        .collect()
}

/// The world's payments of `now`'s UTC date, through the servicing system's own ingest.
async fn post_payments(
    db: &DatabaseConnection,
    center: &mut Center,
    index: &AccountIndex,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let date = now.date_naive();
    let payments = center.world_mut().day(date);
    if payments.is_empty() {
        return Ok(());
    }
    let items: Vec<PaymentIn> = payments
        .iter()
        .enumerate()
        .map(|(n, payment)| PaymentIn {
            account_id: payment.account_id.clone(),
            amount: MoneyText(payment.amount.to_string()),
            paid_at: now.to_rfc3339(),
            reference: format!("sim-{date}-{n}-{}", payment.account_id),
        })
        .collect();
    let report = crate::ops::ingest::ingest_payments(db, &items, now, "simulated servicing system")
        .await
        .map_err(|error| anyhow::anyhow!("the simulated payments of {date} were refused: {error}"))?;
    center.paid_in_full(&report.paid_in_full);
    for payment in payments {
        if let Some(account) = index.of(&payment.account_id) {
            center.tally.collected(account, payment.amount);
        }
    }
    Ok(())
}

/// `(account_id, count)` rows of a grouped count.
async fn counts_by_account(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    rows.iter()
        .map(|row| Ok((row.try_get::<String>("", "account_id")?, row.try_get::<i64>("", "n")?)))
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()
        .map_err(Into::into)
}

/// What only the store knows at the end: promises kept, human tasks expired unworked, cures.
/// Returns the number of human tasks the engine made.
async fn finish_counts(
    db: &DatabaseConnection,
    index: &AccountIndex,
    owed_at_start: &[Money],
    tally: &mut Tally,
) -> anyhow::Result<u64> {
    for (account_id, n) in counts_by_account(
        db,
        "SELECT account_id, COUNT(*) AS n FROM promises WHERE status = 'kept' GROUP BY account_id",
    )
    .await?
    {
        if let Some(account) = index.of(&account_id) {
            tally.accounts[account].kept = u32::try_from(n).unwrap_or(u32::MAX);
        }
    }
    let expired = "SELECT account_id, COUNT(*) AS n FROM tasks WHERE channel = 'human' AND state = 'expired' \
         AND NOT EXISTS (SELECT 1 FROM attempts WHERE attempts.task_id = tasks.id) GROUP BY account_id";
    for (account_id, n) in counts_by_account(db, expired).await? {
        if let Some(account) = index.of(&account_id) {
            tally.accounts[account].expired_unworked = u32::try_from(n).unwrap_or(u32::MAX);
        }
    }
    let book = crate::store::load_portfolio(db).await?;
    for account in &book.accounts {
        if let Some(i) = index.of(&account.id) {
            tally.accounts[i].cured = owed_at_start[i] > Money::ZERO && account.amount_due <= Money::ZERO;
        }
    }
    let human = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM tasks WHERE channel = 'human'",
        ))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    Ok(u64::try_from(human).unwrap_or(0))
}

/// The policy's limits as the independent check takes them.
fn limits_of(policy: &Policy) -> sim::Limits {
    sim::Limits {
        hours: (u32::from(policy.hours.start), u32::from(policy.hours.end)),
        calls_per_7_days: policy.calls_per_7_days,
        calls_per_day: policy.calls_per_day,
        rpc_per_day: policy.rpc_per_day,
        unanswered_per_number_per_day: policy.unanswered_per_number_per_day,
        cooldown_days: policy.cooldown_days,
    }
}

/// Counts the violations in every contact made, per borrower and policy (each contact under its
/// task's strategy's policy), and puts each borrower's count on its first account.
fn count_violations(
    contacts: &[(ContactMade, Option<usize>)],
    strategies: &StrategySet,
    fallback: &Policy,
    index: &AccountIndex,
    tally: &mut Tally,
) -> Violations {
    let mut groups: BTreeMap<(&str, Option<usize>), Vec<ContactMade>> = BTreeMap::new();
    for (contact, strategy) in contacts {
        groups.entry((contact.borrower_id.as_str(), *strategy)).or_default().push(contact.clone());
    }
    let first: HashMap<&str, usize> = index.first_account_of();
    let mut total = Violations::default();
    for ((borrower, strategy), made) in &groups {
        let policy = strategy.and_then(|i| strategies.strategies.get(i)).map_or(fallback, |s| &s.policy);
        let found = sim::violations(made, &limits_of(policy));
        if found.total() > 0 && std::env::var_os("ARREARS_SIM_VIOLATIONS").is_some() {
            eprintln!("{borrower} under {}: {found:?}", policy.name);
            for contact in made {
                eprintln!(
                    "  {} {} {:?} {} {}",
                    contact.at, contact.account_id, contact.phone, contact.channel, contact.outcome
                );
            }
        }
        total.add(&found);
        if let Some(account) = first.get(borrower) {
            tally.accounts[*account].violations += found.total();
        }
    }
    total
}

/// `arrears simulate`'s output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimFormat {
    /// Tables for people.
    Text,
    /// The report (or the comparison) as JSON.
    Json,
}

/// Writes one run's report as text.
pub fn write_report(report: &SimReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{} simulated day(s), {} to {} (UTC), book {} ({} accounts), seed {}, strategies {}",
        (report.end - report.start).num_days(),
        report.start.format("%Y-%m-%d %H:%M"),
        report.end.format("%Y-%m-%d %H:%M"),
        report.book,
        report.accounts,
        report.seed,
        report.strategies
    )?;
    writeln!(out)?;
    writeln!(out, "{:<32} {:>16}", "metric", "value")?;
    for metric in &report.metrics {
        writeln!(out, "{:<32} {:>16}", metric.metric, compare::format_value(&metric.metric, metric.value))?;
    }
    compare::write_notes(std::slice::from_ref(report), out)?;
    write_inbound(&report.inbound, out)?;
    write_risk(&report.risk, out)
}

/// The borrowers' calls' line of a report (nothing when nobody called).
fn write_inbound(inbound: &callers::InboundTally, out: &mut impl Write) -> std::io::Result<()> {
    if inbound.calls.is_empty() {
        return Ok(());
    }
    let matched: Vec<String> = inbound.calls.iter().map(|(kind, count)| format!("{count} {kind}")).collect();
    let settled: Vec<String> = inbound.settled.iter().map(|(outcome, count)| format!("{count} {outcome}")).collect();
    writeln!(
        out,
        "inbound calls: {} ({}); the robot settled {} ({}), transferred {} to an agent, {} transfer(s) refused by the gate",
        inbound.calls.values().sum::<u64>(),
        matched.join(", "),
        inbound.settled.values().sum::<u64>(),
        if settled.is_empty() { "none".to_string() } else { settled.join(", ") },
        inbound.transferred,
        inbound.transfer_refused
    )
}

/// The risk desk's lines of a report (nothing when no event was sent).
fn write_risk(risk: &risk::RiskTally, out: &mut impl Write) -> std::io::Result<()> {
    if risk.events.is_empty() {
        return Ok(());
    }
    let events: Vec<String> = risk.events.iter().map(|(kind, count)| format!("{count} {kind}")).collect();
    let dispositions: Vec<String> = risk.dispositions.iter().map(|(name, count)| format!("{count} {name}")).collect();
    writeln!(
        out,
        "risk events: {} ({}); {} reaction(s) acted, {} case(s) opened, {} closed ({} within their SLA){}",
        risk.events.values().sum::<u64>(),
        events.join(", "),
        risk.reactions,
        risk.cases_opened,
        risk.cases_closed,
        risk.sla_met,
        if dispositions.is_empty() { String::new() } else { format!(": {}", dispositions.join(", ")) }
    )
}

/// The arguments of `arrears simulate`.
#[derive(Debug, Clone)]
pub struct SimulateArgs {
    /// What to simulate.
    pub options: SimOptions,
    /// The challenger's strategies (`--vs`).
    pub vs: Option<PathBuf>,
    /// `--oracle`: arm B (the only arm without `--vs`) plans with the world's true curves.
    pub oracle: bool,
    /// The output format.
    pub format: SimFormat,
}

/// `arrears simulate`: one run, or two paired runs side by side with `--vs`.
pub async fn simulate_command(settings: &Settings, args: SimulateArgs, out: &mut impl Write) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let bar = |label: &str| {
        if !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg:>24} [{bar:40.cyan/blue}] {pos}/{len} h ({eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        bar
    };
    let mut args = args;
    if let Some(path) = std::env::var_os("ARREARS_SIM_DB") {
        args.options.store = Some(format!("sqlite://{}?mode=rwc", Path::new(&path).display()));
    }
    if let Some(dir) = &args.vs {
        if !dir.is_dir() {
            return Err(invalid("--vs", format!("{} is not a directory", dir.display())));
        }
        if std::env::var_os("ARREARS_SIM_DB").is_some() {
            return Err(invalid("--vs", "ARREARS_SIM_DB keeps the store of one run: unset it to compare two"));
        }
    }
    let challenger = if args.oracle { ArmModel::Oracle } else { ArmModel::Learned };
    match &args.vs {
        None => {
            let progress = bar("simulating");
            let run = simulate_arm(settings, &settings.strategies_dir, &args.options, challenger, &progress).await?;
            progress.finish_and_clear();
            match args.format {
                SimFormat::Text => write_report(&run.report, out)?,
                SimFormat::Json => {
                    serde_json::to_writer_pretty(&mut *out, &run.report)?;
                    writeln!(out)?;
                }
            }
        }
        Some(vs) => {
            let bars = indicatif::MultiProgress::new();
            let (a_bar, b_bar) = (bars.add(bar("A")), bars.add(bar("B")));
            // The two arms share nothing but the book file: run them side by side.
            let a = {
                let (settings, dir, options) =
                    (settings.clone(), settings.strategies_dir.clone(), args.options.clone());
                let bar = a_bar.clone();
                tokio::spawn(async move { simulate(&settings, &dir, &options, &bar).await })
            };
            let b = {
                let (settings, dir, options) = (settings.clone(), vs.clone(), args.options.clone());
                let bar = b_bar.clone();
                tokio::spawn(async move { simulate_arm(&settings, &dir, &options, challenger, &bar).await })
            };
            let (a, b) = (a.await.context("the A run stopped")??, b.await.context("the B run stopped")??);
            a_bar.finish_and_clear();
            b_bar.finish_and_clear();
            let comparison = compare(&a, &b, 0.95)?;
            match args.format {
                SimFormat::Text => write_comparison(&comparison, out)?,
                SimFormat::Json => {
                    serde_json::to_writer_pretty(&mut *out, &comparison)?;
                    writeln!(out)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn every_zone_is_planned_in_its_local_night() {
        let zones: Vec<Tz> =
            ["Asia/Shanghai", "Asia/Urumqi", "America/New_York", "America/Los_Angeles", "Pacific/Honolulu"]
                .iter()
                .map(|name| name.parse().unwrap())
                .collect();
        let (first, last) = (at("2026-03-01T00:00:00Z"), at("2026-03-30T00:00:00Z"));
        let hours = plan_hours(&zones, first, last);
        assert!(hours.len() <= 2, "{hours:?}");
        for zone in &zones {
            for day in [first, last] {
                let local: Vec<u32> = hours
                    .iter()
                    .map(|hour| {
                        (day.date_naive().and_hms_opt(*hour, 0, 0).unwrap().and_utc()).with_timezone(zone).hour()
                    })
                    .collect();
                assert!(local.iter().any(|hour| *hour < 8), "{zone} on {day}: {hours:?} are local {local:?}");
            }
        }
        assert_eq!(plan_hours(&[Tz::UTC], first, last), vec![0]);
    }

    #[test]
    fn bad_options_name_their_flag() {
        let options = SimOptions {
            days: 0,
            book: Book::Generated(10),
            seed: 1,
            end: at("2026-03-01T10:30:00Z"),
            robot_calls_per_hour: 10,
            store: None,
        };
        assert_eq!(period(&options).unwrap_err().to_string(), "--days: must be at least 1");
        let (start, steps) = period(&SimOptions { days: 2, ..options }).unwrap();
        assert_eq!((start, steps), (at("2026-02-27T10:00:00Z"), 48), "the days end at the hour before the end");
    }
}
