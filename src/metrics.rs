//! The metrics registry of one `serve` (Prometheus, every metric named `arrears_*`): the HTTP
//! layer counts requests and serves `/metrics`, the scheduler counts plan runs, releases and
//! webhook tries. Each registry is separate, so several servers in one process (tests) do not
//! share counters.

use chrono::{DateTime, Duration, Utc};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::Arc;

/// How long the task gauges are kept before `/metrics` counts the tasks again: scrapes in
/// between (every Prometheus server, every dashboard refresh) read the kept values.
pub const TASK_GAUGES_TTL: Duration = Duration::seconds(15);

/// The server's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests answered, by method, route and status.
    pub http_requests: IntCounterVec,
    /// Time to answer HTTP requests, by method and route.
    pub http_duration: HistogramVec,
    /// Strategy reloads refused (kept equal to the live set's count at each scrape).
    pub reload_refusals: IntCounter,
    /// Live tasks (planned, ready, dispatched, leased) by channel, queue and state.
    pub tasks: IntGaugeVec,
    /// When [`Metrics::tasks`] was last counted; one counting at a time.
    pub tasks_counted_at: Arc<tokio::sync::Mutex<Option<DateTime<Utc>>>>,
    /// Leases handed out.
    pub leases: IntCounter,
    /// Plan runs saved by this instance's scheduler.
    pub plan_runs: IntCounter,
    /// Duration of those plan runs.
    pub plan_seconds: Histogram,
    /// Webhook tries by result (`delivered`, `retrying`, `dead`, `gone`).
    pub deliveries: IntCounterVec,
    /// Tasks released by the release loop, by result (`dispatched`, `ready`, `cancelled`, `expired`).
    pub released: IntCounterVec,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new("arrears_http_requests_total", "HTTP requests answered, by method, route and status"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("arrears_http_request_duration_seconds", "Time to answer HTTP requests, by route"),
            &["method", "route"],
        )?;
        let reload_refusals = IntCounter::new(
            "arrears_strategy_reload_refusals_total",
            "Strategy reloads refused because a file was invalid (the running set was kept)",
        )?;
        let tasks = IntGaugeVec::new(
            Opts::new(
                "arrears_tasks",
                "Live tasks (planned, ready, dispatched, leased) by channel, queue and state; counted at most \
                 every 15 s",
            ),
            &["channel", "queue", "state"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(reload_refusals.clone()))?;
        let leases = IntCounter::new("arrears_leases_total", "Tasks leased to agents")?;
        let plan_runs =
            IntCounter::new("arrears_plan_runs_total", "Plan runs saved by the scheduler of this instance")?;
        let plan_seconds = Histogram::with_opts(
            HistogramOpts::new("arrears_plan_run_seconds", "Duration of scheduled plan runs")
                .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0]),
        )?;
        let deliveries = IntCounterVec::new(
            Opts::new("arrears_webhook_tries_total", "Webhook delivery tries, by result"),
            &["result"],
        )?;
        let released =
            IntCounterVec::new(Opts::new("arrears_released_tasks_total", "Tasks released, by result"), &["result"])?;
        registry.register(Box::new(tasks.clone()))?;
        registry.register(Box::new(leases.clone()))?;
        registry.register(Box::new(plan_runs.clone()))?;
        registry.register(Box::new(plan_seconds.clone()))?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(released.clone()))?;
        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            reload_refusals,
            tasks,
            tasks_counted_at: Arc::default(),
            leases,
            plan_runs,
            plan_seconds,
            deliveries,
            released,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}
