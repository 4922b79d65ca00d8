//! `GET /metrics` (Prometheus text, no authentication) and the middleware that counts requests.
//!
//! Each [`AppState`] has its own registry, so several servers in one process (tests) do not
//! share counters. Task gauges are computed from the database at scrape time; nothing here
//! changes state.

use super::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The server's metrics, all named `arrears_*`.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    reload_refusals: IntCounter,
    tasks: IntGaugeVec,
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
            Opts::new("arrears_tasks", "Tasks in the database, by channel, queue and state (at scrape time)"),
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
            leases,
            plan_runs,
            plan_seconds,
            deliveries,
            released,
        })
    }
}

/// Middleware: counts every answered request by method, matched route (`unmatched` for
/// unknown paths, so that scanners cannot blow up the label set) and status.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_string());
    let route = route.unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics.http_requests.with_label_values(&[method.as_str(), route.as_str(), response.status().as_str()]).inc();
    metrics
        .http_duration
        .with_label_values(&[method.as_str(), route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The Prometheus text exposition. Task gauges are read from the database now; when it does
/// not answer they are left out and the rest is still served.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let refusals = state.strategies.refusals();
    let counted = metrics.reload_refusals.get();
    if refusals > counted {
        metrics.reload_refusals.inc_by(refusals - counted);
    }
    match crate::store::task_counts(&state.db).await {
        Ok(counts) => {
            metrics.tasks.reset();
            for count in counts {
                let queue = count.queue.as_deref().unwrap_or("");
                let value = i64::try_from(count.count).unwrap_or(i64::MAX);
                metrics.tasks.with_label_values(&[count.channel.as_str(), queue, count.state.as_str()]).set(value);
            }
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot count tasks"),
    }
    match TextEncoder::new().encode_to_string(&metrics.registry.gather()) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(error) => super::error::ApiError::internal(error).into_response(),
    }
}
