//! The use cases shared by the CLI, the HTTP API (and later the scheduler): migrate, import,
//! check strategies, plan and persist here; ingest over HTTP, API tokens and `serve` in their
//! own files. They read the clock only through their `now` argument (or `serve`'s `Clock`).

pub mod ingest;
pub mod learn;
pub mod release;
pub mod report;
pub mod serve;
pub mod simulate;
pub mod synthetic;
pub mod tokens;

pub mod deliveries;
pub mod events;
pub mod experiments;
mod explain;
pub mod flags;
mod planning;
pub(crate) mod recheck;

pub use explain::{AccountExplanation, explain_account, explain_command, write_explanation};

pub use planning::{
    PLAN_PAGE_ACCOUNTS, PlanGroup, PlanOptions, PlanOutcome, PlanPage, PlanTotals, SHARD_ACCOUNTS, joinable_plan_run,
    plan_and_persist, plan_collect, plan_command, plan_pages, plan_pages_of, plan_pages_with, write_jsonl,
    write_page_jsonl, write_summary,
};
pub mod work;

use crate::config::Config;
use crate::import::{ImportKind, ImportReport};
use crate::store;
use crate::strategy::{self, LoadOptions, StrategyErrors, StrategySet};
use anyhow::Context as _;
use sea_orm::DatabaseConnection;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    if kind == ImportKind::Events {
        return import_events(settings, &db, file).await;
    }
    Ok(crate::import::import_file(&db, kind, file).await?)
}

/// `arrears import events FILE.csv`: reads and checks every row, then records the events and
/// applies the reactions of the strategies in force, as `POST /v1/events` does.
async fn import_events(
    settings: &Settings,
    db: &sea_orm::DatabaseConnection,
    file: &Path,
) -> anyhow::Result<ImportReport> {
    let strategies = load_strategies(settings, &settings.strategies_dir)
        .map_err(|errors| anyhow::anyhow!("the strategies are invalid:\n{errors}"))?;
    let now = chrono::Utc::now();
    let progress = indicatif::ProgressBar::hidden();
    let (events, labels) = crate::import::risk_events::read_events(file, &progress, now).await?;
    let report = match events::apply_events(db, &strategies, &events, &labels, now, "import").await {
        Ok(report) => report,
        Err(events::EventsError::Invalid(lines) | events::EventsError::Conflict(lines)) => {
            anyhow::bail!("{}: nothing was written:\n{}", file.display(), lines.join("\n"))
        }
        Err(events::EventsError::Store(error)) => return Err(error.into()),
    };
    for fired in &report.reactions {
        eprintln!(
            "{}: reaction `{}` ({}) on account {}{}",
            fired.event_id,
            fired.reaction,
            fired.strategy,
            fired.account_id,
            fired.case_id.map(|id| format!(": case {id}")).unwrap_or_default()
        );
    }
    Ok(ImportReport {
        kind: ImportKind::Events,
        rows: report.received,
        inserted: report.inserted,
        updated: 0,
        unchanged: report.duplicates.len() as u64,
        contact_points_retired: 0,
        contact_points_restored: 0,
    })
}

/// Loads the strategies of a directory with the configured policy defaults.
pub fn load_strategies(settings: &Settings, dir: &Path) -> Result<StrategySet, StrategyErrors> {
    let capacities = settings.config.queue_capacities().map_err(|message| {
        StrategyErrors(vec![strategy::StrategyError { file: "arrears.toml".into(), line: 1, column: 1, message }])
    })?;
    let options = LoadOptions {
        capacities: &capacities,
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
                    "ok  {} ({}): {} stages, {} rules, {} experiments, {} reactions, policy {}",
                    strategy.name,
                    strategy.file,
                    strategy.stages.len(),
                    strategy.rules.len(),
                    strategy.experiments.len(),
                    strategy.reactions.len(),
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
