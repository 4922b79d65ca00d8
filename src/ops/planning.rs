//! Planning the book and saving the plan, page by page: `arrears plan`, the demo and (later)
//! the scheduler's plan job all come through [`plan_pages`].
//!
//! Memory is bounded by a page, not by the book: a page of accounts is loaded with its
//! borrowers, planned, written inside the run's one transaction and dropped. Loading and
//! planning the next page overlap with writing the previous one (the database works in its own
//! thread or process while the planner computes).

use super::{Settings, connect, load_strategies};
use crate::domain::Channel;
use crate::plan::{Plan, Planner, Task};
use crate::store::{self, BookPage, NewPlanRun, StageChange};
use crate::strategy::StrategySet;
use chrono::{DateTime, Duration, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

/// Accounts loaded, planned and written at a time.
pub const PLAN_PAGE_ACCOUNTS: u64 = 10_000;

/// Pages planned ahead of the writer: bounds memory to this many pages plus the one in hand.
const PAGES_IN_FLIGHT: usize = 2;

/// Tasks of one stage, channel and queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanGroup {
    /// Accounts with tasks in the group.
    pub accounts: u64,
    /// Tasks in the group.
    pub tasks: u64,
}

/// What a plan run decided, counted as its pages go by.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanTotals {
    /// Accounts in the book.
    pub accounts: u64,
    /// Accounts with at least one task.
    pub planned_accounts: u64,
    /// Tasks planned.
    pub tasks: u64,
    /// Accounts skipped.
    pub skips: u64,
    /// Skips by reason code.
    pub skip_counts: BTreeMap<String, u64>,
    /// Tasks by `(stage, channel, queue)`; `-` when there is no queue.
    pub groups: BTreeMap<(String, Channel, String), PlanGroup>,
}

impl PlanTotals {
    /// Counts one planned page.
    pub fn add(&mut self, plan: &Plan, accounts: usize) {
        self.accounts += accounts as u64;
        self.tasks += plan.tasks.len() as u64;
        self.skips += plan.skips.len() as u64;
        for skip in &plan.skips {
            *self.skip_counts.entry(skip.reason.to_string()).or_default() += 1;
        }
        let mut last: Option<(&str, Channel, Option<&str>, &str)> = None;
        let mut group: Option<&mut PlanGroup> = None;
        for task in &plan.tasks {
            let key = (&*task.stage, task.channel, task.queue.as_deref(), &*task.account_id);
            if last.map(|(stage, channel, queue, _)| (stage, channel, queue)) != Some((key.0, key.1, key.2)) {
                let id = (key.0.to_string(), key.1, key.2.unwrap_or("-").to_string());
                group = Some(self.groups.entry(id).or_default());
            }
            if let Some(group) = group.as_deref_mut() {
                group.tasks += 1;
                if last.map(|previous| previous.3) != Some(key.3) {
                    group.accounts += 1;
                }
            }
            if last.map(|previous| previous.3) != Some(key.3) {
                self.planned_accounts += 1;
            }
            last = Some(key);
        }
    }
}

/// A plan run: what it decided and, when it was saved, its id.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOutcome {
    /// The saved run, `None` for a dry run.
    pub run_id: Option<i64>,
    /// What was decided.
    pub totals: PlanTotals,
}

/// One planned page on its way to the writer.
struct PlannedPage {
    plan: Plan,
    changes: Vec<StageChange>,
    accounts: usize,
}

/// Plans the book as of `now` and, unless `dry_run`, saves the run, its tasks and stage changes
/// in one transaction. See [`plan_pages`].
pub async fn plan_and_persist(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    now: DateTime<Utc>,
    dry_run: bool,
) -> anyhow::Result<PlanOutcome> {
    plan_pages(db, strategies, now, dry_run, |_| Ok(())).await
}

/// Like [`plan_and_persist`], and also returns the whole plan (tasks, then skips, in account
/// order). Holds the whole plan in memory: for tools, tests and small books.
pub async fn plan_collect(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    now: DateTime<Utc>,
    dry_run: bool,
) -> anyhow::Result<(PlanOutcome, Plan)> {
    let mut whole = Plan::default();
    let outcome = plan_pages(db, strategies, now, dry_run, |page| {
        whole.tasks.extend_from_slice(&page.tasks);
        whole.skips.extend_from_slice(&page.skips);
        Ok(())
    })
    .await?;
    Ok((outcome, whole))
}

/// Plans the book as of `now`, page by page (accounts in id order), and hands each page's plan
/// to `on_page` in order. Unless `dry_run`, also records the strategy versions in force and
/// saves the run: its row, every page's tasks and stage changes, all in one transaction that
/// commits after the last page (a failure saves nothing). Reads the wall clock only for the
/// run's `started_at` and `finished_at`.
pub async fn plan_pages<F>(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    now: DateTime<Utc>,
    dry_run: bool,
    on_page: F,
) -> anyhow::Result<PlanOutcome>
where
    F: FnMut(&Plan) -> anyhow::Result<()>,
{
    plan_pages_of(db, strategies, now, dry_run, PLAN_PAGE_ACCOUNTS, on_page).await
}

/// [`plan_pages`] with pages of `page_accounts` accounts (at least 1).
pub async fn plan_pages_of<F>(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    now: DateTime<Utc>,
    dry_run: bool,
    page_accounts: u64,
    mut on_page: F,
) -> anyhow::Result<PlanOutcome>
where
    F: FnMut(&Plan) -> anyhow::Result<()>,
{
    let page_accounts = page_accounts.max(1);
    let started_at = Utc::now();
    let clock = std::time::Instant::now();
    let today = now.date_naive();
    let history = store::load_history(
        db,
        store::HistoryScope::Book,
        now - Duration::days(8),
        Some((today - Duration::days(1))..=(today + Duration::days(1))),
    )
    .await?;
    tracing::info!(elapsed = ?clock.elapsed(), "history loaded");
    let mut run = NewPlanRun { as_of: now, started_at, strategies: strategies.versions(), ..NewPlanRun::default() };
    let writer = if dry_run {
        None
    } else {
        record_strategy_versions(db, strategies, started_at).await?;
        Some(store::begin_plan_run(db, &run).await?)
    };

    let (sender, mut receiver) = tokio::sync::mpsc::channel::<PlannedPage>(PAGES_IN_FLIGHT);
    let produce = async move {
        let mut planner = Planner::new(&history, strategies, now);
        let mut after = String::new();
        loop {
            let page = store::load_book_page(db, &after, page_accounts).await?;
            let next = page.next.clone();
            if sender.send(plan_page(&mut planner, page)).await.is_err() {
                break;
            }
            match next {
                Some(key) => after = key,
                None => break,
            }
        }
        anyhow::Ok(())
    };
    let consume = async {
        let mut totals = PlanTotals::default();
        while let Some(page) = receiver.recv().await {
            on_page(&page.plan)?;
            if let Some(writer) = &writer {
                writer.save_page(&page.plan.tasks, &page.changes).await?;
            }
            totals.add(&page.plan, page.accounts);
        }
        anyhow::Ok(totals)
    };
    let ((), totals) = tokio::try_join!(produce, consume)?;
    tracing::info!(accounts = totals.accounts, tasks = totals.tasks, elapsed = ?clock.elapsed(), "planned");

    let Some(writer) = writer else {
        return Ok(PlanOutcome { run_id: None, totals });
    };
    run.accounts = totals.accounts;
    run.tasks = totals.tasks;
    run.skips = totals.skips;
    run.skip_counts = totals.skip_counts.clone();
    let run_id = writer.finish(&run, Utc::now()).await?;
    tracing::info!(run_id, elapsed = ?clock.elapsed(), "plan saved");
    Ok(PlanOutcome { run_id: Some(run_id), totals })
}

/// Plans one page and finds the accounts whose stage changes.
fn plan_page(planner: &mut Planner<'_>, page: BookPage) -> PlannedPage {
    let BookPage { portfolio, stored_stages, .. } = page;
    let mut plan = Plan { tasks: Vec::with_capacity(portfolio.accounts.len() * 2), skips: Vec::new() };
    let mut changes = Vec::new();
    for (account, stored) in portfolio.accounts.iter().zip(stored_stages) {
        let first_task = plan.tasks.len();
        let stage = match planner.decide_into(account, portfolio.borrowers.get(&account.borrower_id), &mut plan.tasks) {
            Ok(()) => plan.tasks.get(first_task).map(|task| Arc::clone(&task.stage)),
            Err(skip) => {
                let stage = skip.stage.clone();
                plan.skips.push(skip);
                stage
            }
        };
        if let Some(stage) = stage
            && stored.as_deref() != Some(&*stage)
        {
            changes.push(StageChange { account_id: account.id.clone(), from: stored, to: stage });
        }
    }
    PlannedPage { plan, changes, accounts: portfolio.accounts.len() }
}

/// Records each strategy's version, with an audit row when it is new.
async fn record_strategy_versions(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    for strategy in &strategies.strategies {
        if store::record_strategy_version_at(
            db,
            at,
            &strategy.name,
            &strategy.file,
            &strategy.content_hash,
            &strategy.content,
        )
        .await?
        {
            store::record_audit_at(
                db,
                at,
                "planner",
                "strategy.loaded",
                "strategy",
                &strategy.name,
                serde_json::json!({"file": strategy.file, "hash": strategy.content_hash}),
            )
            .await?;
        }
    }
    Ok(())
}

/// `arrears plan`: plans (and unless `dry_run` saves) the book as of `now`, writing JSON Lines
/// page by page as they are planned, or the summary at the end.
pub async fn plan_command(
    settings: &Settings,
    now: DateTime<Utc>,
    dry_run: bool,
    format: super::PlanFormat,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let strategies = load_strategies(settings, &settings.strategies_dir)
        .map_err(|errors| anyhow::anyhow!("the strategies are invalid; nothing was planned:\n{errors}"))?;
    let db = connect(settings).await?;
    match format {
        super::PlanFormat::Jsonl => {
            let mut out = std::io::BufWriter::new(out);
            plan_pages(&db, &strategies, now, dry_run, |page| write_jsonl(page, &mut out)).await?;
            out.flush()?;
        }
        super::PlanFormat::Text => {
            let outcome = plan_and_persist(&db, &strategies, now, dry_run).await?;
            write_summary(&outcome, now, out)?;
        }
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
    channel: Channel,
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
    reason: crate::domain::Reason,
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

/// Writes a plan (or one page of it) as JSON Lines: its tasks, then its skips.
pub fn write_jsonl(plan: &Plan, out: &mut impl Write) -> anyhow::Result<()> {
    for task in &plan.tasks {
        serde_json::to_writer(&mut *out, &task_line(task))?;
        out.write_all(b"\n")?;
    }
    for skip in &plan.skips {
        let line = SkipLine {
            kind: "skip",
            account_id: &skip.account_id,
            stage: skip.stage.as_deref(),
            reason: skip.reason,
            detail: &skip.detail,
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes the summary a manager reads: tasks by stage, channel and queue; skips by reason.
pub fn write_summary(outcome: &PlanOutcome, now: DateTime<Utc>, out: &mut impl Write) -> anyhow::Result<()> {
    let totals = &outcome.totals;
    writeln!(out, "plan as of {}", now.to_rfc3339())?;
    match outcome.run_id {
        Some(id) => writeln!(out, "saved as plan run {id}")?,
        None => writeln!(out, "dry run: nothing saved")?,
    }
    writeln!(
        out,
        "{} accounts: {} with tasks ({} tasks), {} skipped\n",
        totals.accounts, totals.planned_accounts, totals.tasks, totals.skips
    )?;
    writeln!(out, "{:<14} {:<8} {:<14} {:>9} {:>9}", "stage", "channel", "queue", "accounts", "tasks")?;
    for ((stage, channel, queue), group) in &totals.groups {
        writeln!(out, "{stage:<14} {:<8} {queue:<14} {:>9} {:>9}", channel.to_string(), group.accounts, group.tasks)?;
    }
    writeln!(out, "\n{:<32} {:>9}", "skip reason", "accounts")?;
    for (reason, count) in &totals.skip_counts {
        writeln!(out, "{reason:<32} {count:>9}")?;
    }
    Ok(())
}
