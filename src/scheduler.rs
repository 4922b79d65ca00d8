//! The scheduler of `arrears serve`: cron jobs in the portfolio time zone. It reads the clock
//! once per tick and calls `ops`; it owns no business logic.
//!
//! - **plan**: after each occurrence of `[schedule] plan`, the book is planned once. Every
//!   instance checks, on each tick, whether a plan as of the latest occurrence (or later) has
//!   finished; if not, the one that takes the `planner` lock starts the plan as a job of its
//!   own, beside the other jobs (one plan job per instance at a time). Each later step renews
//!   the lock while the job saves pages, and the step after the job ends reports it. A holder
//!   that dies leaves its saved pages and an unfinished run; its lock expires, and another
//!   instance continues the run on its next tick.
//! - **reap** (expired leases back to their queues) and **promises** (kept or broken): on every
//!   occurrence of their expressions, on every instance (both are idempotent).
//! - **learn**: on each occurrence of `[schedule] learn` after the first step (not at start-up),
//!   the instance that takes the `learner` lock (held for an hour, not given back, so the other
//!   instances skip that occurrence) fits and stores a new contact model over the last
//!   [`crate::ops::learn::DEFAULT_LOOKBACK_DAYS`] days, inside the step.
//! - **release**: every step, when configured with [`Scheduler::with_release`]: tasks whose window
//!   opened are checked again and sent to the outbox (robot, SMS, e-mail) or made leasable
//!   (human); tasks whose window closed expire.
//! - **dispatch**: every step, when endpoints are configured (the outbox is claimed with `SKIP
//!   LOCKED`, so instances share it).
//!
//! One step ([`Scheduler::try_execute_jobs`]) is separate from the loop ([`Scheduler::run`]), so
//! tests drive it with a manual clock and never sleep.

use crate::clock::Clock;
use crate::config::Config;
use crate::dispatch::{DeliveryReport, Dispatcher};
use crate::metrics::Metrics;
use crate::ops::release::{self, ReleaseReport};
use crate::ops::work::{self, PromiseReport};
use crate::ops::{PlanOptions, PlanOutcome};
use crate::policy::Policy;
use crate::store;
use crate::strategy::MessageTemplates;
use crate::strategy::StrategySet;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use sea_orm::DatabaseConnection;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The lock the planner job takes.
pub const PLANNER_LOCK: &str = "planner";

/// How long a planner lock lasts without being renewed. The instance running a plan renews it
/// on every step while the plan saves pages, so a live plan keeps it however long the book
/// takes, and a plan that stopped making progress (hung, or its process died) loses it this
/// long after its last page.
pub const PLANNER_LOCK_TTL: Duration = Duration::minutes(30);

/// Where the scheduler gets the strategies in force (they change on reload).
pub type StrategySource = Arc<dyn Fn() -> Arc<StrategySet> + Send + Sync>;

/// The parsed schedules.
#[derive(Debug, Clone)]
pub struct Schedules {
    /// The portfolio time zone the expressions are read in.
    pub zone: Tz,
    /// The daily plan.
    pub plan: cron::Schedule,
    /// The lease reaper.
    pub reap: cron::Schedule,
    /// The promise watcher.
    pub promises: cron::Schedule,
    /// The nightly training of the contact model.
    pub learn: cron::Schedule,
    /// How the plan is shared out (`[plan]`).
    pub plan_settings: crate::config::PlanSettings,
}

/// The lock the learn job takes.
pub const LEARNER_LOCK: &str = "learner";

fn parse_cron(key: &str, expression: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(expression)
        .map_err(|error| format!("{key}: `{expression}` is not a cron expression: {error}"))
}

/// Whether `schedule` has an occurrence in `(after, now]` (read in `zone`).
fn occurs(schedule: &cron::Schedule, zone: Tz, after: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    schedule.after(&after.with_timezone(&zone)).next().is_some_and(|at| at.with_timezone(&Utc) <= now)
}

impl Schedules {
    /// Parses the configuration's schedules; the error names the key.
    pub fn from_config(config: &Config) -> Result<Schedules, String> {
        let zone = crate::domain::parse_timezone(&config.timezone).map_err(|message| format!("timezone: {message}"))?;
        let plan = parse_cron("schedule.plan", &config.schedule.plan)?;
        let reap = parse_cron("schedule.reap", &config.schedule.reap)?;
        let promises = parse_cron("schedule.promises", &config.schedule.promises)?;
        let learn = parse_cron("schedule.learn", &config.schedule.learn)?;
        Ok(Schedules { zone, plan, reap, promises, learn, plan_settings: config.plan })
    }

    /// The latest occurrence of the plan schedule at or before `now`.
    pub fn last_plan_time(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.zone);
        if self.plan.includes(local) {
            return Some(now);
        }
        self.plan.after(&local).next_back().map(|at| at.with_timezone(&Utc))
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    /// The plan run this instance's plan job saved, reported by the first step after the job
    /// ended.
    pub planned: Option<i64>,
    /// This instance's plan job failed (reported once, like `planned`); its saved pages stay,
    /// and a later step starts a plan that continues the run.
    pub plan_failed: Option<String>,
    /// A plan was due and this step started it as a job of its own.
    pub plan_started: bool,
    /// This instance's plan job is still running (its lock was renewed).
    pub plan_running: bool,
    /// A plan was due but another instance holds the planner lock.
    pub plan_locked: bool,
    /// Expired leases returned to their queues.
    pub leases_reaped: u64,
    /// Promises resolved.
    pub promises: PromiseReport,
    /// The version of the contact model this step learned.
    pub learned: Option<i64>,
    /// Tasks released, expired or held back.
    pub released: ReleaseReport,
    /// Webhooks tried.
    pub deliveries: DeliveryReport,
}

/// What the release step needs: the configuration (endpoints, public URL, default policy) and
/// the message templates, loaded again whenever the strategy set changes.
struct Release {
    config: Config,
    fallback: Policy,
    templates_dir: std::path::PathBuf,
    loaded: std::sync::Mutex<Option<(Arc<StrategySet>, Arc<MessageTemplates>)>>,
}

impl Release {
    fn templates_for(&self, strategies: &Arc<StrategySet>) -> anyhow::Result<Arc<MessageTemplates>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((set, templates)) = loaded.as_ref()
            && Arc::ptr_eq(set, strategies)
        {
            return Ok(Arc::clone(templates));
        }
        let templates = Arc::new(MessageTemplates::load(&self.templates_dir, strategies)?);
        *loaded = Some((Arc::clone(strategies), Arc::clone(&templates)));
        Ok(templates)
    }
}

/// This instance's plan job.
enum PlanJob {
    /// No plan is running.
    Idle,
    /// A plan is running (its handle is `None` while [`Scheduler::wait_for_plan`] awaits it).
    Running {
        handle: Option<tokio::task::JoinHandle<anyhow::Result<PlanOutcome>>>,
        /// Pages saved so far, counted by the job.
        pages: Arc<AtomicU64>,
        /// Pages seen by the last step, and that step's instant when they last moved.
        seen: u64,
        progress_at: DateTime<Utc>,
        /// Whether the job holds the planner lock (it started the run); a job that joined
        /// another instance's sharded run holds none.
        holds_lock: bool,
    },
    /// The plan ended; the next step reports it.
    Ended(anyhow::Result<PlanOutcome>),
}

/// A plan job's result, a panic turned into an error.
fn joined(result: Result<anyhow::Result<PlanOutcome>, tokio::task::JoinError>) -> anyhow::Result<PlanOutcome> {
    result.unwrap_or_else(|error| Err(anyhow::anyhow!("the plan job stopped: {error}")))
}

/// The scheduler of one instance.
pub struct Scheduler {
    db: DatabaseConnection,
    schedules: Schedules,
    strategies: StrategySource,
    clock: Clock,
    holder: String,
    dispatcher: Option<Dispatcher>,
    release: Option<Release>,
    metrics: Option<Arc<Metrics>>,
    last_step: std::sync::Mutex<Option<DateTime<Utc>>>,
    plan_job: std::sync::Mutex<PlanJob>,
}

impl Drop for Scheduler {
    /// A plan still running stops with its scheduler (at shutdown): its saved pages stay and
    /// the next plan continues the run.
    fn drop(&mut self) {
        if let PlanJob::Running { handle: Some(handle), .. } = &*self.lock_job() {
            handle.abort();
        }
    }
}

impl Scheduler {
    /// A scheduler for one instance, named `holder` in locks (unique per instance).
    pub fn new(
        db: DatabaseConnection,
        schedules: Schedules,
        strategies: StrategySource,
        clock: Clock,
        holder: impl Into<String>,
    ) -> Scheduler {
        Scheduler {
            db,
            schedules,
            strategies,
            clock,
            holder: holder.into(),
            dispatcher: None,
            release: None,
            metrics: None,
            last_step: std::sync::Mutex::new(None),
            plan_job: std::sync::Mutex::new(PlanJob::Idle),
        }
    }

    /// Delivers the outbox with `dispatcher` on every step; needs [`Scheduler::with_release`]
    /// too (the check before sending uses its default policy).
    pub fn with_dispatcher(mut self, dispatcher: Dispatcher) -> Scheduler {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// Releases due tasks on every step, with the endpoints and defaults of `config` and the
    /// message templates of `templates_dir`.
    pub fn with_release(mut self, config: &Config, templates_dir: &std::path::Path) -> anyhow::Result<Scheduler> {
        let fallback =
            Policy::builtin(&config.policy, &config.policies).map_err(|error| anyhow::anyhow!(error.message))?;
        self.release = Some(Release {
            config: config.clone(),
            fallback,
            templates_dir: templates_dir.to_path_buf(),
            loaded: std::sync::Mutex::new(None),
        });
        Ok(self)
    }

    /// Counts plan runs and webhook tries in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Scheduler {
        self.metrics = Some(metrics);
        self
    }

    /// This instance's name in locks.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// One step at `now`: reaps expired leases and resolves promises when their expressions
    /// occurred since the last step (the first step runs them); releases due tasks; delivers due
    /// webhooks; and starts the plan as a job of its own when one is due and nobody else is
    /// planning (or renews the lock of this instance's running plan, or reports the one that
    /// ended). A step never waits for a plan.
    pub async fn try_execute_jobs(&self, now: DateTime<Utc>) -> anyhow::Result<StepReport> {
        let mut report = StepReport::default();
        let previous = {
            let mut last = self.last_step.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            last.replace(now)
        };
        let zone = self.schedules.zone;
        let due = |schedule: &cron::Schedule| previous.is_none_or(|after| occurs(schedule, zone, after, now));
        if due(&self.schedules.reap) {
            report.leases_reaped = work::reap_expired_leases(&self.db, now).await?;
        }
        if due(&self.schedules.promises) {
            report.promises = work::evaluate_promises(&self.db, now, crate::plan::PROMISE_GRACE_DAYS as u32).await?;
        }
        if previous.is_some_and(|after| occurs(&self.schedules.learn, zone, after, now))
            && store::try_lock(&self.db, LEARNER_LOCK, &self.holder, now, now + Duration::hours(1)).await?
        {
            let lookback = crate::ops::learn::DEFAULT_LOOKBACK_DAYS;
            report.learned = Some(crate::ops::learn::learn(&self.db, now, lookback).await?.version);
        }
        if let Some(release) = &self.release {
            let strategies = (self.strategies)();
            let templates = release.templates_for(&strategies)?;
            report.released =
                release::release_due(&self.db, &strategies, &release.fallback, &templates, &release.config, now)
                    .await?;
            if let Some(metrics) = &self.metrics {
                let released = report.released;
                for (result, count) in [
                    ("dispatched", released.dispatched),
                    ("ready", released.ready),
                    ("cancelled", released.cancelled),
                    ("expired", released.expired),
                ] {
                    if count > 0 {
                        metrics.released.with_label_values(&[result]).inc_by(count);
                    }
                }
            }
        }
        if let Some(dispatcher) = &self.dispatcher {
            // The claim-time check reads the strategies in force and the default policy.
            let Some(release) = &self.release else {
                anyhow::bail!("the dispatcher needs `with_release` (its claim-time check uses the default policy)");
            };
            let strategies = (self.strategies)();
            report.deliveries = dispatcher.deliver_due(&self.db, &strategies, &release.fallback, now).await?;
            if let Some(metrics) = &self.metrics {
                let tries = report.deliveries;
                for (result, count) in [
                    ("delivered", tries.delivered),
                    ("retrying", tries.retrying),
                    ("dead", tries.dead),
                    ("gone", tries.gone),
                ] {
                    if count > 0 {
                        metrics.deliveries.with_label_values(&[result]).inc_by(count);
                    }
                }
            }
        }
        self.plan_step(now, &mut report).await?;
        Ok(report)
    }

    fn lock_job(&self) -> std::sync::MutexGuard<'_, PlanJob> {
        self.plan_job.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The plan part of a step: reports a plan job that ended, renews the lock of a running
    /// one, or starts one when a plan is due and this instance takes the planner lock.
    async fn plan_step(&self, now: DateTime<Utc>, report: &mut StepReport) -> anyhow::Result<()> {
        let ended = {
            let mut job = self.lock_job();
            match &mut *job {
                PlanJob::Ended(_) => match std::mem::replace(&mut *job, PlanJob::Idle) {
                    PlanJob::Ended(result) => Some(Ok(result)),
                    _ => None,
                },
                PlanJob::Running { handle, .. } if handle.as_ref().is_some_and(|h| h.is_finished()) => {
                    let handle = handle.take();
                    *job = PlanJob::Idle;
                    handle.map(Err)
                }
                _ => None,
            }
        };
        if let Some(ended) = ended {
            let result = match ended {
                Ok(result) => result,
                // Finished already: the await returns at once.
                Err(handle) => joined(handle.await),
            };
            match result {
                Ok(outcome) => report.planned = outcome.run_id,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "the scheduled plan failed; its saved pages stay");
                    report.plan_failed = Some(format!("{error:#}"));
                }
            }
            return Ok(());
        }

        let running = match &mut *self.lock_job() {
            PlanJob::Running { pages, seen, progress_at, holds_lock, .. } => {
                let saved = pages.load(Ordering::Relaxed);
                if saved != *seen {
                    *seen = saved;
                    *progress_at = now;
                }
                Some((*progress_at, *holds_lock))
            }
            _ => None,
        };
        if let Some((progress_at, holds_lock)) = running {
            report.plan_running = true;
            let until = progress_at + PLANNER_LOCK_TTL;
            if holds_lock && until > now && !store::try_lock(&self.db, PLANNER_LOCK, &self.holder, now, until).await? {
                tracing::warn!("another instance took the planner lock while this one's plan runs");
            }
            return Ok(());
        }

        let Some(due) = self.schedules.last_plan_time(now) else {
            return Ok(());
        };
        if store::plan_finished_since(&self.db, due).await? {
            return Ok(());
        }
        let strategies = (self.strategies)();
        let options =
            self.schedules.plan_settings.apply(PlanOptions { zone: self.schedules.zone, ..PlanOptions::new(false) });
        let holds_lock = store::try_lock(&self.db, PLANNER_LOCK, &self.holder, now, now + PLANNER_LOCK_TTL).await?;
        // Another instance plans: with a shared plan, this one's planners join its sharded run.
        let joins = !holds_lock
            && options.shared
            && crate::ops::joinable_plan_run(&self.db, &strategies, now, self.schedules.zone).await?;
        if !holds_lock && !joins {
            report.plan_locked = true;
            return Ok(());
        }
        let pages = Arc::new(AtomicU64::new(0));
        let handle = tokio::spawn(plan_job(
            self.db.clone(),
            strategies,
            options,
            now,
            self.clock.clone(),
            holds_lock.then(|| self.holder.clone()),
            self.metrics.clone(),
            Arc::clone(&pages),
        ));
        *self.lock_job() = PlanJob::Running { handle: Some(handle), pages, seen: 0, progress_at: now, holds_lock };
        report.plan_started = true;
        Ok(())
    }

    /// Waits until this instance's plan job (if one runs) has ended; the next step reports it.
    /// Returns whether there was one. For tests and the demo, which step a manual clock and
    /// want the plan saved before they move it on; `serve` never waits.
    pub async fn wait_for_plan(&self) -> bool {
        let handle = match &mut *self.lock_job() {
            PlanJob::Running { handle, .. } => handle.take(),
            _ => None,
        };
        let Some(handle) = handle else {
            return false;
        };
        let result = joined(handle.await);
        *self.lock_job() = PlanJob::Ended(result);
        true
    }

    /// Runs a step every `tick` until `shutdown` resolves; while the dispatcher finds full
    /// batches of due webhooks, the next step follows at once. A failing step is logged and
    /// retried on the next tick.
    pub async fn run(self, tick: std::time::Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let busy = match self.try_execute_jobs(self.clock.now()).await {
                Ok(report) => self.dispatcher.as_ref().is_some_and(|d| report.deliveries.claimed >= d.batch),
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "scheduler step failed");
                    false
                }
            };
            let wait = if busy { std::time::Duration::ZERO } else { tick };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The plan job: plans and saves the book as of `now` page by page (or joins the day's sharded
/// run), counting the pages in `pages` (the steps renew the lock while they move), then gives
/// the planner lock up when `holder` took it.
#[allow(clippy::too_many_arguments)]
async fn plan_job(
    db: DatabaseConnection,
    strategies: Arc<StrategySet>,
    options: PlanOptions,
    now: DateTime<Utc>,
    clock: Clock,
    holder: Option<String>,
    metrics: Option<Arc<Metrics>>,
    pages: Arc<AtomicU64>,
) -> anyhow::Result<PlanOutcome> {
    let started = std::time::Instant::now();
    let outcome = crate::ops::plan_pages_with(&db, &strategies, now, &options, |_| {
        pages.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })
    .await;
    if let (Some(metrics), Ok(_)) = (&metrics, &outcome) {
        metrics.plan_runs.inc();
        metrics.plan_seconds.observe(started.elapsed().as_secs_f64());
    }
    if let Some(holder) = holder
        && let Err(error) = store::unlock(&db, PLANNER_LOCK, &holder, clock.now()).await
    {
        tracing::warn!(%error, "cannot give the planner lock up; it expires on its own");
    }
    let outcome = outcome?;
    tracing::info!(run_id = ?outcome.run_id, tasks = outcome.totals.tasks, elapsed = ?started.elapsed(), "scheduled plan saved");
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedules(expression: &str, zone: &str) -> Schedules {
        let mut config: Config = toml::from_str("").unwrap();
        config.timezone = zone.into();
        config.schedule.plan = expression.into();
        Schedules::from_config(&config).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn the_last_plan_time_is_read_in_the_portfolio_zone() {
        let daily = schedules("0 0 6 * * *", "Asia/Shanghai");
        // 06:00 in Shanghai is 22:00 UTC the day before.
        assert_eq!(daily.last_plan_time(at("2026-11-22T21:59:59Z")), Some(at("2026-11-21T22:00:00Z")));
        assert_eq!(daily.last_plan_time(at("2026-11-22T22:00:00Z")), Some(at("2026-11-22T22:00:00Z")));
        assert_eq!(daily.last_plan_time(at("2026-11-23T03:00:00Z")), Some(at("2026-11-22T22:00:00Z")));
    }

    #[test]
    fn a_daily_plan_follows_daylight_saving_time() {
        let daily = schedules("0 0 6 * * *", "America/New_York");
        // 06:00 EDT = 10:00 UTC before 2026-11-01; 06:00 EST = 11:00 UTC after.
        assert_eq!(daily.last_plan_time(at("2026-10-31T12:00:00Z")), Some(at("2026-10-31T10:00:00Z")));
        assert_eq!(daily.last_plan_time(at("2026-11-01T12:00:00Z")), Some(at("2026-11-01T11:00:00Z")));
    }

    #[test]
    fn a_bad_expression_names_the_key() {
        let mut config: Config = toml::from_str("").unwrap();
        config.schedule.plan = "every morning".into();
        let error = Schedules::from_config(&config).unwrap_err();
        assert!(error.starts_with("schedule.plan: `every morning`"), "{error}");
        config.schedule.plan = "0 0 6 * * *".into();
        config.schedule.reap = "*/61 * *".into();
        assert!(Schedules::from_config(&config).unwrap_err().starts_with("schedule.reap:"));
    }

    #[test]
    fn an_occurrence_counts_once_between_two_steps() {
        let every_15s = parse_cron("schedule.reap", "*/15 * * * * *").unwrap();
        let zone = chrono_tz::UTC;
        assert!(occurs(&every_15s, zone, at("2026-11-22T06:00:14Z"), at("2026-11-22T06:00:15Z")));
        assert!(!occurs(&every_15s, zone, at("2026-11-22T06:00:15Z"), at("2026-11-22T06:00:16Z")));
        assert!(!occurs(&every_15s, zone, at("2026-11-22T06:00:16Z"), at("2026-11-22T06:00:29Z")));
    }
}
