//! `arrears demo`: the days that end now, simulated on the user's database. A synthetic
//! portfolio (several zones, products, stages, tags, scores and flags) as of `days` ago is
//! imported through the real importer, and `ops::simulate` runs the real engine over the days
//! from then to now (the scheduler's plans, releases, webhooks, leases, outcomes, promises and
//! payments, against `sim`'s borrowers and the agents the demo declares as queue capacity);
//! then today is planned as `serve` would plan it, and the KPIs are printed. Nothing it leaves
//! lies after the real clock, so `explain`, `report` and `serve` take up from where it stops.
//! It owns the demo's choices (the queues, the output); it must not drive the engine itself.

use crate::ops::simulate::{self, Book, SimOptions};
use crate::ops::{self, PlanOutcome, Settings};
use crate::strategy::StrategySet;
use anyhow::Context as _;
use chrono::{Duration, SubsecRound, Utc};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::io::Write;

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

/// Agents on each human queue's shift.
const AGENTS_PER_QUEUE: u32 = 2;
/// Tasks a simulated agent completes an hour when the queue never runs dry: most calls go
/// unanswered (about 0.7 minutes each), conversations take 4.5–7 (`sim::contact`). Measured on
/// the default demo with the plan not limited: 30–38 tasks per agent-hour on the busy queues.
const TASKS_PER_AGENT_HOUR: f64 = 30.0;

/// `arrears demo`: `days` simulated days of a synthetic book of `accounts` accounts, ending now.
pub async fn run(
    settings: &Settings,
    accounts: usize,
    seed: u64,
    days: u32,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if days == 0 {
        anyhow::bail!("--days: must be at least 1 (the demo simulates the days that end now)");
    }
    if accounts == 0 {
        anyhow::bail!("--accounts: must be at least 1");
    }
    let now = Utc::now().trunc_subsecs(0);
    let strategies = ops::load_strategies(settings, &settings.strategies_dir)
        .map_err(|errors| anyhow::anyhow!("the strategies are invalid:\n{errors}"))?;
    // The simulated agents' capacity, as `[queues.<name>]` would declare it, unless the
    // configuration declares queues itself: the plan then gives each queue what they can work,
    // and the simulated agents work those shifts.
    let mut settings = settings.clone();
    if settings.config.queues.is_empty() {
        settings.config.queues = demo_queues(&strategies);
    }
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
    if let Some(path) = reset_sqlite(&settings.database_url)? {
        writeln!(out, "database: {path} (rebuilt)")?;
    }
    writeln!(
        out,
        "simulating the {days} day(s) that end now on {accounts} synthetic accounts (seed {seed}): the real \
         engine (scheduler, contact gate, webhooks, leases, outcomes, promises, payments) against \
         simulated borrowers, a robot dialler and the queues' agents\n"
    )?;
    let options = SimOptions {
        days,
        book: Book::Generated(accounts),
        seed,
        end: now,
        robot_calls_per_hour: simulate::DEFAULT_ROBOT_CALLS_PER_HOUR,
        store: Some(settings.database_url.clone()),
    };
    let progress = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("simulating [{bar:40.cyan/blue}] {pos}/{len} h ({eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = std::time::Instant::now();
    let run = simulate::simulate(settings, &settings.strategies_dir, &options, &progress).await?;
    progress.finish_and_clear();
    simulate::write_report(&run.report, out)?;
    writeln!(out, "(simulated in {:.1?})\n", started.elapsed())?;

    let db = ops::connect(settings).await?;
    let strategies: StrategySet = ops::load_strategies(settings, &settings.strategies_dir)
        .map_err(|errors| anyhow::anyhow!("the strategies are invalid:\n{errors}"))?;
    let outcome: PlanOutcome = ops::plan_and_persist(&db, &strategies, now, false).await?;
    writeln!(out, "today, as `serve` plans it (accounts the simulated night already planned add nothing):")?;
    ops::write_summary(&outcome, now, out)?;
    let order = crate::report::StageOrder::of(&strategies);
    let zone = crate::domain::parse_timezone(&settings.config.timezone)
        .map_err(|message| anyhow::anyhow!("timezone: {message}"))?;
    // The default period of `arrears report` and of the dashboard (the 7 days before now), so
    // the demo's tables are theirs; with fewer simulated days, from the first one.
    let week = crate::report::Period::parse(None, None, zone, now + Duration::seconds(1))?;
    let period = crate::report::Period { from: week.from.max(run.report.start), to: week.to };
    for by in [crate::report::GroupBy::Stage, crate::report::GroupBy::Strategy] {
        writeln!(out)?;
        let kpis = ops::report::kpis(&db, period, by, &order, zone, &crate::report::FunderScope::All).await?;
        crate::report::write_groups(&kpis, out)?;
        if by == crate::report::GroupBy::Strategy {
            // The roll matrix and vintages are the portfolio's: printed once, after the groups.
            crate::report::write_portfolio(&kpis, out)?;
        }
    }
    writeln!(out)?;
    let reactions = ops::report::reactions(&db, period, &order, now).await?;
    crate::report::reactions::write_reactions(&reactions, period.from, period.to, out)?;
    writeln!(out)?;
    for reading in ops::experiments::read_all(&db, &strategies, now).await? {
        ops::experiments::write_text(&reading, out)?;
    }
    writeln!(
        out,
        "\nnext: `arrears experiments` reads the experiments again at any time; `arrears serve` serves this \
         database (see docs/api.md) and its dashboard: `arrears token create --role manager`, then open \
         http://127.0.0.1:8080/dashboard (docs/dashboard.md); `arrears explain ACCOUNT_ID` \
         says why an account was or was not contacted; `arrears report --reactions` reads the early-warning \
         reactions again; `arrears plan --dry-run --format jsonl | head` \
         shows each decision; `arrears simulate --vs strategies-learned/` compares two strategy sets; \
         edit strategies/*.toml, `arrears strategy check`, and plan again."
    )?;
    Ok(())
}

/// The demo's agents per human queue: [`AGENTS_PER_QUEUE`] agents from 09:00 to 21:00 in the
/// zone of the queue's borrowers (the strategies under a Chinese profile serve the Shanghai
/// book, the others the American one), each planned at [`TASKS_PER_AGENT_HOUR`].
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
    let mut queues = BTreeMap::new();
    for (zone, names) in regions {
        for name in names {
            queues.insert(
                name,
                crate::config::Queue {
                    zone: Some(zone.to_string()),
                    calls_per_agent_hour: TASKS_PER_AGENT_HOUR,
                    shifts: vec![crate::config::Shift { hours: "09:00-21:00".into(), agents: AGENTS_PER_QUEUE }],
                },
            );
        }
    }
    queues
}
