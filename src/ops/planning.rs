//! Planning the book and saving the plan, page by page: `arrears plan`, the demo and the
//! scheduler's plan job all come through [`plan_pages_with`].
//!
//! Memory is bounded by a page, not by the book: a page of accounts is loaded with its
//! borrowers and their history (what the contact gate reads), planned, written in short
//! transactions of its own and dropped. Loading and planning the next pages (a task of their
//! own) overlap with writing the previous one (on SQLite the writer works in blocking calls on
//! its connection, on PostgreSQL the server works while the planner computes). The run's row
//! is the marker that makes a run resumable: committed first, moved forward with every page,
//! finished with the last.

use super::{Settings, connect, load_strategies};
use crate::domain::{Channel, QueueName, Reason};
use crate::learn::ContactModel;
use crate::plan::{Admission, Plan, Planner, QueueAdmission, Task, admit};
use crate::store::{self, BookPage, NewPlanRun, StageChange};
use crate::strategy::StrategySet;
use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use rustc_hash::FxHashSet;
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
    /// Dry run: accounts whose local day is already planned, decided as if it were not.
    pub already_planned: u64,
    /// Saving run: accounts another plan run saved between this run's history load and its
    /// write (their tasks were not saved; they count as `already_planned` skips).
    pub planned_meanwhile: u64,
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
    /// When this plan continued an interrupted run: the key of the last account that run had
    /// saved (this plan decided the accounts after it).
    pub resumed_after: Option<String>,
    /// What was decided (by this invocation: a resumed run's earlier pages are not in it).
    pub totals: PlanTotals,
    /// Per capacity-limited human queue: its room today, the accounts that asked for it and
    /// those it took (the rest fell through to a later rule or skipped as `capacity:<queue>`).
    pub queues: BTreeMap<String, QueueAdmission>,
    /// A sharded run's number of shards (0: a run of one planner).
    pub shards: u32,
    /// Of those, the shards this invocation's planners saved (others' planners saved the rest).
    pub shards_planned: u32,
}

/// How to plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanOptions {
    /// Decide and show, save nothing. A dry run decides accounts whose day is already planned
    /// as if it were not, and marks them (see [`PlanPage::is_already_planned`]).
    pub dry_run: bool,
    /// Accounts loaded and planned at a time (at least 1).
    pub page_accounts: u64,
    /// The zone whose calendar day decides whether an interrupted run is continued: a plan
    /// continues the latest unfinished run started on the same day in this zone with the same
    /// strategy versions (the portfolio zone; UTC by default).
    pub zone: Tz,
    /// Planners in this process, each planning shards of the run (at least 1). With more than
    /// one a new run is sharded; a dry run has one.
    pub workers: usize,
    /// Whether a new run is sharded even with one planner, so that the planners of other
    /// instances can join it (`serve` with `[plan] shared = true`).
    pub shared: bool,
    /// Accounts per shard of a sharded run (at least 1).
    pub shard_accounts: u64,
}

/// Accounts per shard of a sharded run: ten pages, so that a run of 10,000,000 accounts has a
/// hundred shards to share out and a planner that dies leaves at most one to take over.
pub const SHARD_ACCOUNTS: u64 = 100_000;

/// How often a planner with no shard to claim looks again while other planners' shards are not
/// done (it takes one over once its heartbeat is [`store::SHARD_HEARTBEAT_TTL`] old).
const SHARD_POLL: std::time::Duration = std::time::Duration::from_millis(500);

impl PlanOptions {
    /// Pages of [`PLAN_PAGE_ACCOUNTS`], one planner, interrupted runs continued within the UTC
    /// day.
    pub fn new(dry_run: bool) -> PlanOptions {
        PlanOptions {
            dry_run,
            page_accounts: PLAN_PAGE_ACCOUNTS,
            zone: Tz::UTC,
            workers: 1,
            shared: false,
            shard_accounts: SHARD_ACCOUNTS,
        }
    }

    /// Whether a new run is cut into shards.
    fn sharded(&self) -> bool {
        !self.dry_run && (self.workers > 1 || self.shared)
    }
}

/// One planned page, as the page callback sees it: the plan (through `Deref`) and, in a dry
/// run, which of its accounts already have their day planned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanPage {
    /// The page's tasks and skips, in account order.
    pub plan: Plan,
    already_planned: FxHashSet<String>,
}

impl PlanPage {
    /// Whether the account's local day already has saved tasks (only a dry run says so: a
    /// saving plan skips those accounts with `already_planned`).
    pub fn is_already_planned(&self, account_id: &str) -> bool {
        !self.already_planned.is_empty() && self.already_planned.contains(account_id)
    }

    /// Accounts of the page marked already planned.
    pub fn already_planned_accounts(&self) -> usize {
        self.already_planned.len()
    }
}

impl std::ops::Deref for PlanPage {
    type Target = Plan;

    fn deref(&self) -> &Plan {
        &self.plan
    }
}

/// One planned page on its way to the writer.
struct PlannedPage {
    page: PlanPage,
    changes: Vec<StageChange>,
    /// Accounts entering an experiment's stage (in account order).
    entries: Vec<crate::plan::ExperimentEntry>,
    accounts: usize,
    /// The parts to save it in: `(accounts, key of the part's last account)`; the last part's
    /// key is the page's continuation key.
    parts: Vec<(usize, String)>,
    /// The page is the book's last.
    last: bool,
}

/// Plans the book as of `now` and, unless `dry_run`, saves the run, its tasks and stage changes
/// page by page. See [`plan_pages_with`].
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

/// [`plan_pages_with`] with pages of [`PLAN_PAGE_ACCOUNTS`], continuing interrupted runs of the
/// same UTC day.
pub async fn plan_pages<F>(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    now: DateTime<Utc>,
    dry_run: bool,
    on_page: F,
) -> anyhow::Result<PlanOutcome>
where
    F: FnMut(&PlanPage) -> anyhow::Result<()>,
{
    plan_pages_with(db, strategies, now, &PlanOptions::new(dry_run), on_page).await
}

/// [`plan_pages`] with pages of `page_accounts` accounts (at least 1).
pub async fn plan_pages_of<F>(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    now: DateTime<Utc>,
    dry_run: bool,
    page_accounts: u64,
    on_page: F,
) -> anyhow::Result<PlanOutcome>
where
    F: FnMut(&PlanPage) -> anyhow::Result<()>,
{
    let options = PlanOptions { page_accounts, ..PlanOptions::new(dry_run) };
    plan_pages_with(db, strategies, now, &options, on_page).await
}

/// Plans the book as of `now`, page by page (accounts in id order), and hands each page to
/// `on_page` after it was saved: in order with one planner; with several, each planner's pages
/// in order, interleaved.
///
/// Unless a dry run, also records the strategy versions in force and saves the run page by
/// page: the run's row is committed first (`finished_at` NULL while it runs); each page — on
/// SQLite each slice of [`store::SQLITE_ACCOUNTS_PER_TRANSACTION`] accounts — is written in
/// one short transaction with the run's running counts and `resume_after`; the last one also
/// sets `finished_at`. A failure (or a kill) leaves the saved pages and an unfinished run, which
/// the next plan of the same day (in `options.zone`) with the same strategies continues after
/// its `resume_after`; any other plan skips the saved accounts as `already_planned`. Reads the
/// wall clock only for the run's `started_at` and `finished_at` and, in a sharded run, for the
/// shards' claims and heartbeats.
///
/// A sharded run (`options.workers` > 1 or `options.shared`) is cut into shards of
/// `options.shard_accounts` consecutive accounts, which planners claim one at a time, here and
/// in other instances (see `store::plan_shards`); each shard is saved like a run of its own
/// and the run finishes when every shard is done. A plan that finds the day's sharded run
/// unfinished joins it: it plans as of the run's `as_of` with the run's stored admission, so
/// every planner decides as one planner would.
pub async fn plan_pages_with<F>(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    now: DateTime<Utc>,
    options: &PlanOptions,
    mut on_page: F,
) -> anyhow::Result<PlanOutcome>
where
    F: FnMut(&PlanPage) -> anyhow::Result<()>,
{
    if options.dry_run && options.workers > 1 {
        anyhow::bail!("a dry run plans with one worker: drop --workers, or plan without --dry-run");
    }
    let page_accounts = options.page_accounts.max(1);
    let started_at = Utc::now();
    let clock = std::time::Instant::now();
    // PostgreSQL misjudges every page's queries without statistics (a freshly imported book).
    let analyzed = store::analyze_stale(db, store::PLAN_TABLES).await?;
    if !analyzed.is_empty() {
        tracing::info!(tables = ?analyzed, elapsed = ?clock.elapsed(), "statistics refreshed before planning");
    }
    // The latest contact model of `arrears learn`: rules with learned timing place by it.
    let model = store::load_latest_model(db).await?.map(Arc::new);
    let run = NewPlanRun { as_of: now, started_at, strategies: strategies.versions(), ..NewPlanRun::default() };
    let mut context = RunContext {
        db: db.clone(),
        strategies: Arc::new(strategies.clone()),
        model,
        admission: None,
        now,
        page_accounts,
        dry_run: options.dry_run,
    };
    let start = if options.dry_run {
        context.admission = context.admission_for().await?.map(Arc::new);
        Start::Single { writer: None }
    } else {
        record_strategy_versions(db, strategies, started_at).await?;
        let day = local_day(now, options.zone);
        match store::unfinished_plan_run(db, &run, day).await? {
            Some(row) if row.shards > 0 => {
                tracing::info!(run_id = row.id, shards = row.shards, "joining a sharded plan run");
                context.now = row.as_of;
                if let Some(stored) = &row.admission {
                    let admission = crate::plan::Admission::from_stored(stored)
                        .map_err(|message| anyhow::anyhow!("plan run {}: {message}", row.id))?;
                    context.admission = Some(Arc::new(admission));
                }
                Start::Sharded { run_id: row.id, shards: row.shards }
            }
            found => {
                context.admission = context.admission_for().await?.map(Arc::new);
                if found.is_none() && options.sharded() {
                    let stored = context.admission.as_ref().map(|admission| admission.to_stored());
                    let (run_id, shards) =
                        store::begin_sharded_run(db, &run, options.shard_accounts.max(1), stored).await?;
                    tracing::info!(run_id, shards, "sharded plan run started");
                    Start::Sharded { run_id, shards }
                } else {
                    // The day's unfinished run of one planner is continued, found above once.
                    let writer = match found {
                        Some(row) => store::PlanRunWriter::continuing(db, row, started_at)?,
                        None => store::begin_plan_run(db, &run, None).await?,
                    };
                    Start::Single { writer: Some(Box::new(writer)) }
                }
            }
        }
    };
    let queues: BTreeMap<String, QueueAdmission> = context
        .admission
        .as_ref()
        .map(|admission| admission.queues.iter().map(|(queue, summary)| (queue.to_string(), *summary)).collect())
        .unwrap_or_default();

    let (done, mut pages_done) = tokio::sync::mpsc::channel::<DonePage>(1);
    let (run_id, resumed_after, shards, work) = match start {
        Start::Single { writer } => {
            let run_id = writer.as_ref().map(|writer| writer.run_id());
            let resumed_after =
                writer.as_ref().filter(|writer| writer.resumed()).and_then(|w| w.resume_after()).map(str::to_string);
            if let (Some(id), Some(key)) = (run_id, &resumed_after) {
                tracing::info!(run_id = id, after = %key, "continuing an interrupted plan run");
            }
            let after = resumed_after.clone().unwrap_or_default();
            let work =
                tokio::spawn(
                    async move { plan_range(context, after, None, writer.map(|w| *w), done).await.map(|()| 0) },
                );
            (run_id, resumed_after, 0, work)
        }
        Start::Sharded { run_id, shards } => {
            let sharded = ShardedRun { run_id, created_at: started_at, workers: options.workers.max(1) };
            let work = tokio::spawn(async move { sharded.plan(context, done).await });
            (Some(run_id), None, u32::try_from(shards).unwrap_or(0), work)
        }
    };
    let mut totals = PlanTotals::default();
    let consumed = async {
        while let Some(page) = pages_done.recv().await {
            totals.planned_meanwhile += page.planned_meanwhile;
            totals.already_planned += page.page.already_planned_accounts() as u64;
            on_page(&page.page)?;
            totals.add(&page.page.plan, page.accounts);
            // The planner saves its next page only now (a failing `on_page` stops it first).
            let _ = page.shown.send(());
        }
        anyhow::Ok(())
    }
    .await;
    // The planners stop at their next page (none is cut off in the middle of a statement).
    drop(pages_done);
    let worked = work.await.map_err(|error| anyhow::anyhow!("the plan's planners stopped: {error}"));
    consumed?;
    let shards_planned = worked??;
    tracing::info!(?run_id, accounts = totals.accounts, tasks = totals.tasks, elapsed = ?clock.elapsed(), "planned");
    Ok(PlanOutcome { run_id, resumed_after, totals, queues, shards, shards_planned })
}

/// How a plan starts: one planner over the book (saving through `writer`, or a dry run), or
/// the planners of a sharded run.
enum Start {
    Single { writer: Option<Box<store::PlanRunWriter>> },
    Sharded { run_id: i64, shards: i32 },
}

/// What every page of a run is planned with, shared by the run's planners.
#[derive(Clone)]
struct RunContext {
    db: DatabaseConnection,
    strategies: Arc<StrategySet>,
    model: Option<Arc<ContactModel>>,
    admission: Option<Arc<Admission>>,
    /// The instant the run plans for.
    now: DateTime<Utc>,
    page_accounts: u64,
    dry_run: bool,
}

impl RunContext {
    /// The run's admission to capacity-limited queues (see [`admission_for`]).
    async fn admission_for(&self) -> anyhow::Result<Option<Admission>> {
        let model = self.model.as_deref();
        admission_for(&self.db, &self.strategies, model, self.now, self.page_accounts, self.dry_run).await
    }
}

/// A page saved (or decided, in a dry run), on its way to the caller's `on_page`.
struct DonePage {
    page: PlanPage,
    accounts: usize,
    /// Accounts another run saved meanwhile (their tasks were left out).
    planned_meanwhile: u64,
    /// Told once `on_page` has taken the page: its planner saves no page ahead of what the
    /// caller has seen, so a plan stopped by its caller (a closed output) has saved exactly
    /// the pages shown, and continues after them.
    shown: tokio::sync::oneshot::Sender<()>,
}

/// Plans the accounts after `after` up to `through` (`None`: to the book's end) page by page,
/// saving each through `writer` (none in a dry run), and sends each page on to `done` once it
/// is saved. The range's last page finishes the writer's run (or marks its shard done).
async fn plan_range(
    context: RunContext,
    after: String,
    through: Option<String>,
    mut writer: Option<store::PlanRunWriter>,
    done: tokio::sync::mpsc::Sender<DonePage>,
) -> anyhow::Result<()> {
    let per_transaction = writer.as_ref().map_or(usize::MAX, store::PlanRunWriter::accounts_per_transaction);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<PlannedPage>(PAGES_IN_FLIGHT);
    let (read_pages, mut pages_read) = tokio::sync::mpsc::channel::<ReadPage>(1);
    let now = context.now;
    // Reading, planning and writing are three stages, each a task of its own, so that the next
    // page is read while one is planned and another written (on SQLite a part is written in
    // blocking calls on the writer's connection; see `store::sqlite_parts`).
    let reader = {
        let (db, dry_run, page_accounts) = (context.db.clone(), context.dry_run, context.page_accounts);
        tokio::spawn(async move {
            let mut after = after;
            loop {
                let page = store::load_book_range(&db, &after, through.as_deref(), page_accounts).await?;
                let next = page.next.clone();
                let (history, planned_days) = page_history(&db, &page, through.as_deref(), now, dry_run).await?;
                if read_pages.send(ReadPage { page, history, planned_days }).await.is_err() {
                    break;
                }
                match next {
                    Some(key) => after = key,
                    None => break,
                }
            }
            anyhow::Ok(())
        })
    };
    let producer = {
        let RunContext { strategies, model, admission, .. } = context;
        tokio::spawn(async move {
            while let Some(ReadPage { page, history, planned_days }) = pages_read.recv().await {
                let mut planner = Planner::new(&history, &strategies, now)
                    .with_model(model.as_deref())
                    .with_admission(admission.as_deref());
                let planned = plan_page(&mut planner, page, now, &planned_days, per_transaction);
                if sender.send(planned).await.is_err() {
                    break;
                }
            }
        })
    };
    let consume = async {
        while let Some(mut planned) = receiver.recv().await {
            let mut planned_meanwhile = 0;
            if let Some(writer) = writer.as_mut() {
                save_page(writer, &mut planned).await?;
                planned_meanwhile = planned.page.already_planned.len() as u64;
                planned.page.already_planned.clear();
            }
            let (shown, seen) = tokio::sync::oneshot::channel();
            let page = DonePage { page: planned.page, accounts: planned.accounts, planned_meanwhile, shown };
            if done.send(page).await.is_err() || seen.await.is_err() {
                anyhow::bail!("the plan was stopped");
            }
        }
        anyhow::Ok(())
    };
    let consumed = consume.await;
    // On an error the planner and the reader stop at their next page: neither is cut off in
    // the middle of a statement (a PostgreSQL connection dropped mid-query is left unusable).
    drop(receiver);
    // A failed read explains a closed channel (and a short plan) better than the writer's view.
    let read = reader.await.map_err(|error| anyhow::anyhow!("the plan's reader stopped: {error}"));
    let planned = producer.await.map_err(|error| anyhow::anyhow!("the plan's planner stopped: {error}"));
    match (consumed, read) {
        (_, Ok(Err(read))) => return Err(read),
        (Err(error), _) => return Err(error),
        (Ok(()), Err(stopped)) => return Err(stopped),
        (Ok(()), Ok(Ok(()))) => {}
    }
    planned?;
    Ok(())
}

/// The planners of one process working on a sharded run.
struct ShardedRun {
    run_id: i64,
    /// The tasks' `created_at` (this invocation's start).
    created_at: DateTime<Utc>,
    workers: usize,
}

impl ShardedRun {
    /// Runs `workers` planners, each claiming and planning shards until every shard of the run
    /// is done (taking over those whose planner stopped), then finishes the run. Returns the
    /// shards this process's planners saved.
    async fn plan(self, context: RunContext, done: tokio::sync::mpsc::Sender<DonePage>) -> anyhow::Result<u32> {
        let process = format!("pid {} #{:08x}", std::process::id(), rand::random::<u32>());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut planners = tokio::task::JoinSet::new();
        for index in 0..self.workers {
            let holder = format!("{process} planner {index}");
            let (context, done, stop) = (context.clone(), done.clone(), Arc::clone(&stop));
            let (run_id, created_at) = (self.run_id, self.created_at);
            planners.spawn(async move {
                let planned = plan_shards(context, run_id, created_at, holder, &stop, done).await;
                if planned.is_err() {
                    // The others finish the shard in hand and stop.
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                planned
            });
        }
        drop(done);
        let (mut saved, mut failed) = (0, None);
        while let Some(joined) = planners.join_next().await {
            match joined.map_err(|error| anyhow::anyhow!("a planner stopped: {error}")) {
                Ok(Ok(shards)) => saved += shards,
                Ok(Err(error)) | Err(error) => {
                    failed.get_or_insert(error);
                }
            }
        }
        if let Some(error) = failed {
            return Err(error);
        }
        if !store::finish_sharded_run(&context.db, self.run_id, Utc::now()).await? {
            anyhow::bail!("plan run {}: a shard is not done although no planner has it", self.run_id);
        }
        Ok(saved)
    }
}

/// One planner of a sharded run: claims a shard, plans and saves it, and again, until no
/// shard is left to claim and every shard is done; while other planners' shards are not done
/// it looks again every [`SHARD_POLL`], to take over those whose planner stopped. A shard taken
/// over from this planner meanwhile (its heartbeat had stopped) is left to its new planner.
async fn plan_shards(
    context: RunContext,
    run_id: i64,
    created_at: DateTime<Utc>,
    holder: String,
    stop: &std::sync::atomic::AtomicBool,
    done: tokio::sync::mpsc::Sender<DonePage>,
) -> anyhow::Result<u32> {
    let mut saved = 0;
    loop {
        if done.is_closed() || stop.load(std::sync::atomic::Ordering::Relaxed) {
            anyhow::bail!("the plan was stopped");
        }
        let Some(claim) = store::claim_shard(&context.db, run_id, &holder, Utc::now()).await? else {
            if store::shards_not_done(&context.db, run_id).await? == 0 {
                return Ok(saved);
            }
            tokio::time::sleep(SHARD_POLL).await;
            continue;
        };
        tracing::debug!(run_id, shard = claim.shard, %holder, resumed = claim.resume_after.is_some(), "shard claimed");
        let writer = store::PlanRunWriter::for_shard(&context.db, &claim, &holder, context.now, created_at);
        let after = claim.resume_after.clone().unwrap_or_else(|| claim.after.clone());
        match plan_range(context.clone(), after, claim.through.clone(), Some(writer), done.clone()).await {
            Ok(()) => saved += 1,
            Err(error) if matches!(error.downcast_ref(), Some(store::PlanRunError::Superseded { .. })) => {
                tracing::warn!(run_id, shard = claim.shard, "another planner took this shard over; leaving it");
            }
            Err(error) => return Err(error),
        }
    }
}

/// Whether the day's plan (the calendar day of `now` in `zone`) is a sharded run with the
/// strategy versions of `strategies` that is not finished: the run the planners of another
/// instance may join.
pub async fn joinable_plan_run(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    now: DateTime<Utc>,
    zone: Tz,
) -> anyhow::Result<bool> {
    let run = NewPlanRun { strategies: strategies.versions(), ..NewPlanRun::default() };
    let found = store::unfinished_plan_run(db, &run, local_day(now, zone)).await?;
    Ok(found.is_some_and(|row| row.shards > 0))
}

/// A page of the book with the history its planner reads (see [`page_history`]).
struct ReadPage {
    page: BookPage,
    history: crate::domain::History,
    planned_days: rustc_hash::FxHashSet<(String, chrono::NaiveDate)>,
}

/// The first pass of a plan whose rules route work to capacity-limited human queues: decides
/// the whole book as if no queue had a capacity, collecting the accounts each limited queue
/// would get with their task's value, and admits the most valuable up to the queue's room —
/// the calls its agents complete from now to the end of its local day, less the tasks its day
/// already holds (a dry run decides as if nothing were saved, so it counts none). `None` when
/// no rule routes to a limited queue.
async fn admission_for(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    model: Option<&ContactModel>,
    now: DateTime<Utc>,
    page_accounts: u64,
    dry_run: bool,
) -> anyhow::Result<Option<Admission>> {
    let none = crate::domain::History::default();
    if !Planner::new(&none, strategies, now).needs_admission() {
        return Ok(None);
    }
    let clock = std::time::Instant::now();
    let mut after = String::new();
    let mut scratch = Vec::new();
    let mut candidates = Vec::new();
    loop {
        let page = store::load_book_page(db, &after, page_accounts).await?;
        let (history, _) = page_history(db, &page, None, now, dry_run).await?;
        let mut planner = Planner::new(&history, strategies, now).with_model(model).collecting();
        for account in &page.portfolio.accounts {
            scratch.clear();
            // Skips are of no interest here: only who would go to a limited queue.
            let _ = planner.decide_into(account, page.portfolio.borrowers.get(&account.borrower_id), &mut scratch);
        }
        candidates.extend(planner.take_candidates());
        match page.next {
            Some(key) => after = key,
            None => break,
        }
    }
    let mut room = BTreeMap::new();
    for (name, capacity) in &strategies.capacities {
        let mut left = capacity.calls_left_today(now);
        if !dry_run {
            left = left.saturating_sub(store::queue_day_tasks(db, name, local_day(now, capacity.zone)).await?);
        }
        room.insert(QueueName::intern(name), left);
    }
    let admission = admit(candidates, &room);
    for (queue, summary) in &admission.queues {
        tracing::info!(
            %queue,
            room = summary.room,
            candidates = summary.candidates,
            admitted = summary.admitted,
            elapsed = ?clock.elapsed(),
            "queue capacity"
        );
    }
    Ok(Some(admission))
}

/// The history the gate reads for a page's borrowers: attempts of the last 8 days, calls in
/// flight, open promises, last conversations and the plan's days from yesterday to tomorrow.
/// Read page by page, so a plan holds one page's history, never the book's. A dry run decides
/// as if no day were planned: the planned days come back apart, to mark the page's accounts.
async fn page_history(
    db: &DatabaseConnection,
    page: &BookPage,
    through: Option<&str>,
    now: DateTime<Utc>,
    dry_run: bool,
) -> anyhow::Result<(crate::domain::History, rustc_hash::FxHashSet<(String, chrono::NaiveDate)>)> {
    let today = now.date_naive();
    // A range's last page ends where the range does.
    let scope = store::HistoryScope::Page { after: &page.after, through: page.next.as_deref().or(through) };
    let dates = (today - Duration::days(1))..=(today + Duration::days(1));
    let mut history = store::load_page_history(db, scope, now - Duration::days(8), dates).await?;
    let planned_days = if dry_run { std::mem::take(&mut history.planned_days) } else { Default::default() };
    Ok((history, planned_days))
}

/// Saves a planned page part by part; the book's last part finishes the run. Accounts another
/// run planned meanwhile lose their tasks to an `already_planned` skip and are listed in
/// `page.already_planned`.
async fn save_page(writer: &mut store::PlanRunWriter, planned: &mut PlannedPage) -> anyhow::Result<()> {
    let plan = &planned.page.plan;
    let (mut tasks, mut skips, mut changes) = (&plan.tasks[..], &plan.skips[..], &planned.changes[..]);
    let mut entries = &planned.entries[..];
    let mut meanwhile = Vec::new();
    let parts = planned.parts.len();
    for (index, (accounts, key)) in planned.parts.iter().enumerate() {
        let last_part = index + 1 == parts;
        let upto = |id: &str| last_part || id <= key.as_str();
        let (part_tasks, rest) = tasks.split_at(tasks.partition_point(|task| upto(&task.account_id)));
        tasks = rest;
        let (part_skips, rest) = skips.split_at(skips.partition_point(|skip| upto(&skip.account_id)));
        skips = rest;
        let (part_changes, rest) = changes.split_at(changes.partition_point(|change| upto(&change.account_id)));
        changes = rest;
        let (part_entries, rest) = entries.split_at(entries.partition_point(|entry| upto(&entry.account_id)));
        entries = rest;
        let mut counts = store::RunCounts {
            accounts: *accounts as u64,
            tasks: part_tasks.len() as u64,
            skips: part_skips.len() as u64,
            skip_counts: Default::default(),
        };
        for skip in part_skips {
            *counts.skip_counts.entry(skip.reason.to_string()).or_default() += 1;
        }
        // An empty last page keeps the key the run continued after.
        let key = if key.is_empty() { writer.resume_after().unwrap_or_default().to_string() } else { key.clone() };
        let part = store::RunPart {
            tasks: part_tasks,
            changes: part_changes,
            entries: part_entries,
            counts: &counts,
            resume_after: &key,
        };
        let finished_at = (planned.last && last_part).then(Utc::now);
        let saved = writer.save_part(part, finished_at).await?;
        meanwhile.extend(saved.planned_meanwhile);
    }
    if !meanwhile.is_empty() {
        tracing::warn!(
            accounts = meanwhile.len(),
            "accounts planned by another run meanwhile: their tasks were not saved"
        );
        let plan = &mut planned.page.plan;
        let others: FxHashSet<&str> = meanwhile.iter().map(String::as_str).collect();
        let mut dropped: Vec<Task> = Vec::new();
        plan.tasks.retain(|task| {
            let keep = !others.contains(&*task.account_id);
            if !keep && task.attempt == 1 {
                dropped.push(task.clone());
            }
            keep
        });
        for task in dropped {
            let at = plan.skips.partition_point(|skip| *skip.account_id < *task.account_id);
            let skip = crate::plan::Skip {
                account_id: task.account_id.to_string(),
                stage: Some(task.stage.clone()),
                reason: Reason::AlreadyPlanned,
                detail: format!("{} was planned by another plan run meanwhile", task.local_date),
            };
            plan.skips.insert(at, skip);
        }
        planned.page.already_planned = meanwhile.into_iter().collect();
    }
    Ok(())
}

/// The calendar day containing `now` in `zone`, as a UTC range.
fn local_day(now: DateTime<Utc>, zone: Tz) -> std::ops::Range<DateTime<Utc>> {
    let date = now.with_timezone(&zone).date_naive();
    let midnight = |date: chrono::NaiveDate| {
        // The first instant of the day: midnight, or the end of a gap that swallows it.
        (0..=180)
            .find_map(|minutes| {
                zone.from_local_datetime(&(date.and_time(chrono::NaiveTime::MIN) + Duration::minutes(minutes)))
                    .earliest()
            })
            .map_or(now, |at| at.with_timezone(&Utc))
    };
    let start = midnight(date);
    let end = date.succ_opt().map_or(now + Duration::days(1), midnight);
    start..end
}

/// Plans one page and finds the accounts whose stage changes. In a dry run (`planned_days`
/// not empty) marks the accounts whose local day is already planned.
fn plan_page<S: std::hash::BuildHasher>(
    planner: &mut Planner<'_>,
    page: BookPage,
    now: DateTime<Utc>,
    planned_days: &std::collections::HashSet<(String, chrono::NaiveDate), S>,
    per_transaction: usize,
) -> PlannedPage {
    let BookPage { portfolio, stored_stages, next, .. } = page;
    let mut plan = Plan { tasks: Vec::with_capacity(portfolio.accounts.len() * 2), skips: Vec::new() };
    let mut changes = Vec::new();
    let mut entries = Vec::new();
    let mut already_planned = FxHashSet::default();
    for (account, stored) in portfolio.accounts.iter().zip(stored_stages) {
        let first_task = plan.tasks.len();
        let borrower = portfolio.borrowers.get(&account.borrower_id);
        let stage = match planner.decide_into(account, borrower, &mut plan.tasks) {
            Ok(()) => plan.tasks.get(first_task).map(|task| Arc::clone(&task.stage)),
            Err(skip) => {
                let stage = skip.stage.clone();
                plan.skips.push(skip);
                stage
            }
        };
        if !planned_days.is_empty()
            && let Some(borrower) = borrower
        {
            // The account's local day: the day containing `now` in the borrower's first zone.
            let local_date = now.with_timezone(&borrower.primary_timezone()).date_naive();
            if planned_days.contains(&(account.id.clone(), local_date)) {
                already_planned.insert(account.id.clone());
            }
        }
        if let Some(stage) = stage
            && stored.as_deref() != Some(&*stage)
        {
            // Entering a stage is entering the experiment that splits it (the first entry stays).
            entries.extend(planner.experiment_entry(account, borrower, &stage));
            changes.push(StageChange { account_id: account.id.clone(), from: stored, to: stage });
        }
    }
    let accounts = portfolio.accounts.len();
    let mut parts: Vec<(usize, String)> = portfolio
        .accounts
        .chunks(per_transaction.max(1))
        .map(|chunk| (chunk.len(), chunk.last().map(|account| account.id.clone()).unwrap_or_default()))
        .collect();
    if parts.is_empty() {
        parts.push((0, String::new()));
    }
    let last = next.is_none();
    if let (Some(next), Some(part)) = (next, parts.last_mut()) {
        // The database's key, in its own order (a PostgreSQL collation may not sort bytes).
        part.1 = next;
    }
    PlannedPage { page: PlanPage { plan, already_planned }, changes, entries, accounts, parts, last }
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

/// `arrears plan`: plans (and unless `dry_run` saves) the book as of `now` with `workers`
/// planners (default `[plan] workers`), writing JSON Lines page by page as they are planned, or
/// the summary at the end.
pub async fn plan_command(
    settings: &Settings,
    now: DateTime<Utc>,
    dry_run: bool,
    workers: Option<usize>,
    format: super::PlanFormat,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let strategies = load_strategies(settings, &settings.strategies_dir)
        .map_err(|errors| anyhow::anyhow!("the strategies are invalid; nothing was planned:\n{errors}"))?;
    let zone = crate::domain::parse_timezone(&settings.config.timezone)
        .map_err(|message| anyhow::anyhow!("timezone: {message}"))?;
    let mut options = settings.config.plan.apply(PlanOptions { zone, ..PlanOptions::new(dry_run) });
    if let Some(workers) = workers {
        options.workers = workers;
    } else if dry_run {
        options.workers = 1;
    }
    let db = connect(settings).await?;
    // A saving plan holds the planner lock `serve`'s scheduler takes, so it never continues a
    // run a live instance is still writing (that run is unfinished only because it runs).
    let lock = if dry_run { None } else { Some(PlannerLock::take(&db).await?) };
    let result = plan_and_write(&db, &strategies, now, &options, format, out).await;
    if let Some(lock) = lock {
        lock.release(&db).await;
    }
    result
}

/// The planner lock held by `arrears plan` while it saves, renewed every minute.
struct PlannerLock {
    holder: String,
    renew: tokio::task::JoinHandle<()>,
}

impl PlannerLock {
    async fn take(db: &DatabaseConnection) -> anyhow::Result<PlannerLock> {
        use crate::scheduler::{PLANNER_LOCK, PLANNER_LOCK_TTL};
        let holder = format!("arrears plan (pid {})", std::process::id());
        let now = Utc::now();
        if !store::try_lock(db, PLANNER_LOCK, &holder, now, now + PLANNER_LOCK_TTL).await? {
            anyhow::bail!(
                "another instance is planning now (it holds the `{PLANNER_LOCK}` lock): nothing was planned; \
                 run `arrears plan` again once its run has finished, or `arrears plan --dry-run` meanwhile"
            );
        }
        let (db, renewing) = (db.clone(), holder.clone());
        let renew = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = Utc::now();
                if let Err(error) = store::try_lock(&db, PLANNER_LOCK, &renewing, now, now + PLANNER_LOCK_TTL).await {
                    tracing::warn!(%error, "cannot renew the planner lock");
                }
            }
        });
        Ok(PlannerLock { holder, renew })
    }

    async fn release(self, db: &DatabaseConnection) {
        self.renew.abort();
        if let Err(error) = store::unlock(db, crate::scheduler::PLANNER_LOCK, &self.holder, Utc::now()).await {
            tracing::warn!(%error, "cannot give the planner lock up; it expires by itself");
        }
    }
}

async fn plan_and_write(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    now: DateTime<Utc>,
    options: &PlanOptions,
    format: super::PlanFormat,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match format {
        super::PlanFormat::Jsonl => {
            let mut out = std::io::BufWriter::new(out);
            plan_pages_with(db, strategies, now, options, |page| write_page_jsonl(page, &mut out)).await?;
            out.flush()?;
        }
        super::PlanFormat::Text => {
            let outcome = plan_pages_with(db, strategies, now, options, |_| Ok(())).await?;
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
    /// The model's estimate at `not_before`; `null` with spread timing or without a model.
    p_contact: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    already_planned: bool,
}

#[derive(Serialize)]
struct SkipLine<'a> {
    kind: &'static str,
    account_id: &'a str,
    stage: Option<&'a str>,
    reason: crate::domain::Reason,
    detail: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    already_planned: bool,
}

fn task_line(task: &Task, already_planned: bool) -> TaskLine<'_> {
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
        p_contact: task.p_contact,
        already_planned,
    }
}

/// Writes a plan (or one page of it) as JSON Lines: its tasks, then its skips.
pub fn write_jsonl(plan: &Plan, out: &mut impl Write) -> anyhow::Result<()> {
    write_lines(plan, |_| false, out)
}

/// Writes one planned page as JSON Lines, like [`write_jsonl`]; in a dry run every line of an
/// account whose day is already planned carries `"already_planned": true`.
pub fn write_page_jsonl(page: &PlanPage, out: &mut impl Write) -> anyhow::Result<()> {
    write_lines(&page.plan, |account_id| page.is_already_planned(account_id), out)
}

fn write_lines(plan: &Plan, already_planned: impl Fn(&str) -> bool, out: &mut impl Write) -> anyhow::Result<()> {
    for task in &plan.tasks {
        serde_json::to_writer(&mut *out, &task_line(task, already_planned(&task.account_id)))?;
        out.write_all(b"\n")?;
    }
    for skip in &plan.skips {
        let line = SkipLine {
            kind: "skip",
            account_id: &skip.account_id,
            stage: skip.stage.as_deref(),
            reason: skip.reason,
            detail: &skip.detail,
            already_planned: already_planned(&skip.account_id),
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
    match (outcome.run_id, &outcome.resumed_after) {
        (Some(id), Some(after)) => {
            writeln!(out, "saved as plan run {id}, continued after account {after} where it was interrupted")?
        }
        (Some(id), None) if outcome.shards > 0 => writeln!(
            out,
            "saved as plan run {id} in {} shards, {} of them by this plan's planners",
            outcome.shards, outcome.shards_planned
        )?,
        (Some(id), None) => writeln!(out, "saved as plan run {id}")?,
        (None, _) => writeln!(out, "dry run: nothing saved")?,
    }
    writeln!(
        out,
        "{} accounts: {} with tasks ({} tasks), {} skipped",
        totals.accounts, totals.planned_accounts, totals.tasks, totals.skips
    )?;
    if totals.already_planned > 0 {
        writeln!(
            out,
            "{} accounts already have their day planned: shown as they would be decided now \
             (a saving plan skips them as already_planned)",
            totals.already_planned
        )?;
    }
    if totals.planned_meanwhile > 0 {
        writeln!(
            out,
            "{} accounts were planned by another plan run meanwhile: their tasks were not saved",
            totals.planned_meanwhile
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{:<14} {:<8} {:<14} {:>9} {:>9}", "stage", "channel", "queue", "accounts", "tasks")?;
    for ((stage, channel, queue), group) in &totals.groups {
        writeln!(out, "{stage:<14} {:<8} {queue:<14} {:>9} {:>9}", channel.to_string(), group.accounts, group.tasks)?;
    }
    if !outcome.queues.is_empty() {
        writeln!(out, "\n{:<14} {:>9} {:>9} {:>9}  the rest", "queue", "room", "asked", "taken")?;
        for (queue, summary) in &outcome.queues {
            writeln!(
                out,
                "{queue:<14} {:>9} {:>9} {:>9}  fell through to a later rule or skipped as capacity:{queue}",
                summary.room, summary.candidates, summary.admitted
            )?;
        }
    }
    writeln!(out, "\n{:<32} {:>9}", "skip reason", "accounts")?;
    for (reason, count) in &totals.skip_counts {
        writeln!(out, "{reason:<32} {count:>9}")?;
    }
    Ok(())
}
