//! The use cases shared by the CLI, the HTTP API (and later the scheduler): migrate, import,
//! check strategies, plan and persist here; ingest over HTTP, API tokens and `serve` in their
//! own files. They read the clock only through their `now` argument (or `serve`'s `Clock`).

pub mod ingest;
pub mod serve;
pub mod tokens;

use crate::config::Config;
use crate::import::{ImportKind, ImportReport};
use crate::plan::{Plan, Skip, Task};
use crate::store::{self, NewPlanRun};
use crate::strategy::{self, LoadOptions, StrategyErrors, StrategySet};
use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where things are and how they are configured.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `--strategies`.
    pub strategies_dir: PathBuf,
    /// `--templates`.
    pub templates_dir: PathBuf,
    /// `arrears.toml` with overrides.
    pub config: Config,
}

/// `plan --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// A summary for people.
    Text,
    /// One JSON object per task or skip.
    Jsonl,
}

/// Connects and brings the schema up to date.
pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let db = store::connect(&settings.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", redact(&settings.database_url)))?;
    store::migrate(&db).await.context("cannot migrate the database")?;
    Ok(db)
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// `arrears migrate`.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    connect(settings).await?;
    Ok(())
}

/// `arrears import KIND FILE`.
pub async fn import(settings: &Settings, kind: ImportKind, file: &Path) -> anyhow::Result<ImportReport> {
    let db = connect(settings).await?;
    Ok(crate::import::import_file(&db, kind, file).await?)
}

/// Loads the strategies of a directory with the configured policy defaults.
pub fn load_strategies(settings: &Settings, dir: &Path) -> Result<StrategySet, StrategyErrors> {
    let options = LoadOptions {
        templates_dir: &settings.templates_dir,
        default_policy: &settings.config.policy,
        settings: &settings.config.policies,
    };
    strategy::load_dir(dir, &options)
}

/// `arrears strategy check`: prints every error, or a one-line summary per strategy. Returns
/// whether everything is valid.
pub fn check_strategies(settings: &Settings, dir: &Path, out: &mut impl Write) -> anyhow::Result<bool> {
    match load_strategies(settings, dir) {
        Ok(set) => {
            for strategy in &set.strategies {
                writeln!(
                    out,
                    "ok  {} ({}): {} stages, {} rules, {} experiments, policy {}",
                    strategy.name,
                    strategy.file,
                    strategy.stages.len(),
                    strategy.rules.len(),
                    strategy.experiments.len(),
                    strategy.policy.name
                )?;
            }
            Ok(true)
        }
        Err(errors) => {
            writeln!(out, "{errors}")?;
            writeln!(out, "{} error(s); nothing was loaded", errors.0.len())?;
            Ok(false)
        }
    }
}

/// `arrears strategy schema`.
pub fn print_schema(out: &mut impl Write) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &strategy::json_schema())?;
    writeln!(out)?;
    Ok(())
}

/// A plan and, when it was saved, its run id.
#[derive(Debug)]
pub struct PlanOutcome {
    /// The plan.
    pub plan: Plan,
    /// The saved run, `None` for a dry run.
    pub run_id: Option<i64>,
    /// Accounts in the book.
    pub accounts: usize,
}

/// Plans the book as of `now` and, unless `dry_run`, saves the run, its tasks and stage changes.
pub async fn plan_and_persist(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    now: DateTime<Utc>,
    dry_run: bool,
) -> anyhow::Result<PlanOutcome> {
    let started_at = Utc::now();
    let clock = std::time::Instant::now();
    let portfolio = store::load_portfolio(db).await?;
    tracing::info!(accounts = portfolio.accounts.len(), elapsed = ?clock.elapsed(), "book loaded");
    let today = now.date_naive();
    let history =
        store::load_history(db, now - Duration::days(8), (today - Duration::days(1))..=(today + Duration::days(1)))
            .await?;
    tracing::info!(elapsed = ?clock.elapsed(), "history loaded");
    let plan = crate::plan::plan(&portfolio, &history, strategies, now);
    tracing::info!(tasks = plan.tasks.len(), skips = plan.skips.len(), elapsed = ?clock.elapsed(), "planned");
    let accounts = portfolio.accounts.len();
    drop(portfolio);
    drop(history);
    if dry_run {
        return Ok(PlanOutcome { plan, run_id: None, accounts });
    }
    for strategy in &strategies.strategies {
        if store::record_strategy_version(db, &strategy.name, &strategy.file, &strategy.content_hash, &strategy.content)
            .await?
        {
            store::record_audit(
                db,
                "planner",
                "strategy.loaded",
                "strategy",
                &strategy.name,
                serde_json::json!({"file": strategy.file, "hash": strategy.content_hash}),
            )
            .await?;
        }
    }
    let stages = stages_of(&plan);
    let run = NewPlanRun {
        as_of: now,
        started_at,
        accounts: accounts as u64,
        tasks: plan.tasks.len() as u64,
        skips: plan.skips.len() as u64,
        skip_counts: skip_counts(&plan.skips),
        strategies: strategies.versions(),
    };
    let run_id = store::save_plan(db, &run, &plan.tasks, &stages).await?;
    tracing::info!(run_id, elapsed = ?clock.elapsed(), "plan saved");
    Ok(PlanOutcome { plan, run_id: Some(run_id), accounts })
}

/// The stage of every account that has one in the plan.
pub fn stages_of(plan: &Plan) -> Vec<(String, Arc<str>)> {
    let mut stages: Vec<(String, Arc<str>)> = Vec::with_capacity(plan.tasks.len() + plan.skips.len());
    let mut last: Option<&str> = None;
    for task in &plan.tasks {
        if last != Some(task.account_id.as_str()) {
            stages.push((task.account_id.clone(), task.stage.clone()));
            last = Some(task.account_id.as_str());
        }
    }
    stages.extend(plan.skips.iter().filter_map(|skip| Some((skip.account_id.clone(), skip.stage.clone()?))));
    stages
}

/// Skips counted by reason.
pub fn skip_counts(skips: &[Skip]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for skip in skips {
        *counts.entry(skip.reason.clone()).or_insert(0) += 1;
    }
    counts
}

/// `arrears plan`.
pub async fn plan_command(
    settings: &Settings,
    now: DateTime<Utc>,
    dry_run: bool,
    format: PlanFormat,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let strategies = load_strategies(settings, &settings.strategies_dir)
        .map_err(|errors| anyhow::anyhow!("the strategies are invalid; nothing was planned:\n{errors}"))?;
    let db = connect(settings).await?;
    let outcome = plan_and_persist(&db, &strategies, now, dry_run).await?;
    match format {
        PlanFormat::Jsonl => write_jsonl(&outcome.plan, out)?,
        PlanFormat::Text => write_summary(&outcome, now, out)?,
    }
    Ok(())
}

#[derive(Serialize)]
struct TaskLine<'a> {
    kind: &'static str,
    account_id: &'a str,
    borrower_id: &'a str,
    local_date: chrono::NaiveDate,
    dpd: i32,
    stage: &'a str,
    strategy: &'a str,
    rule: &'a str,
    arm: Option<&'a str>,
    channel: crate::domain::Channel,
    queue: Option<&'a str>,
    template: Option<&'a str>,
    attempt: u32,
    calls_allowed: u32,
    not_before: String,
    not_after: String,
    priority: f64,
}

#[derive(Serialize)]
struct SkipLine<'a> {
    kind: &'static str,
    account_id: &'a str,
    stage: Option<&'a str>,
    reason: &'a str,
    detail: &'a str,
}

fn task_line(task: &Task) -> TaskLine<'_> {
    TaskLine {
        kind: "task",
        account_id: &task.account_id,
        borrower_id: &task.borrower_id,
        local_date: task.local_date,
        dpd: task.dpd,
        stage: &task.stage,
        strategy: &task.strategy,
        rule: &task.rule,
        arm: task.arm.as_deref(),
        channel: task.channel,
        queue: task.queue.as_deref(),
        template: task.template.as_deref(),
        attempt: task.attempt,
        calls_allowed: task.calls_allowed,
        not_before: task.not_before.to_rfc3339(),
        not_after: task.not_after.to_rfc3339(),
        priority: task.priority,
    }
}

/// Writes the plan as JSON Lines: every task, then every skip.
pub fn write_jsonl(plan: &Plan, out: &mut impl Write) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    for task in &plan.tasks {
        serde_json::to_writer(&mut out, &task_line(task))?;
        out.write_all(b"\n")?;
    }
    for skip in &plan.skips {
        let line = SkipLine {
            kind: "skip",
            account_id: &skip.account_id,
            stage: skip.stage.as_deref(),
            reason: &skip.reason,
            detail: &skip.detail,
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Writes the summary a manager reads: tasks by stage, channel and queue; skips by reason.
pub fn write_summary(outcome: &PlanOutcome, now: DateTime<Utc>, out: &mut impl Write) -> anyhow::Result<()> {
    let plan = &outcome.plan;
    let planned_accounts = plan.tasks.iter().filter(|task| task.attempt == 1).count();
    writeln!(out, "plan as of {}", now.to_rfc3339())?;
    match outcome.run_id {
        Some(id) => writeln!(out, "saved as plan run {id}")?,
        None => writeln!(out, "dry run: nothing saved")?,
    }
    writeln!(
        out,
        "{} accounts: {} with tasks ({} tasks), {} skipped\n",
        outcome.accounts,
        planned_accounts,
        plan.tasks.len(),
        plan.skips.len()
    )?;
    let mut groups: BTreeMap<(&str, String, &str), (u64, std::collections::BTreeSet<&str>)> = BTreeMap::new();
    for task in &plan.tasks {
        let entry = groups
            .entry((&task.stage, task.channel.to_string(), task.queue.as_deref().unwrap_or("-")))
            .or_insert((0, Default::default()));
        entry.0 += 1;
        entry.1.insert(&task.account_id);
    }
    writeln!(out, "{:<14} {:<8} {:<14} {:>9} {:>9}", "stage", "channel", "queue", "accounts", "tasks")?;
    for ((stage, channel, queue), (tasks, accounts)) in &groups {
        writeln!(out, "{stage:<14} {channel:<8} {queue:<14} {:>9} {tasks:>9}", accounts.len())?;
    }
    writeln!(out, "\n{:<32} {:>9}", "skip reason", "accounts")?;
    for (reason, count) in skip_counts(&plan.skips) {
        writeln!(out, "{reason:<32} {count:>9}")?;
    }
    Ok(())
}
