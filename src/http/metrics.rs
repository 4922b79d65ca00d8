//! `GET /metrics` (Prometheus text, no authentication) and the middleware that counts requests.
//! The registry itself is [`crate::metrics::Metrics`], shared with the scheduler.
//!
//! The task gauges count live tasks only (planned, ready, dispatched, leased: the rows the
//! state-filtered indexes hold, not the ever-growing finished ones), at most once every
//! [`TASK_GAUGES_TTL`] on the server's clock; scrapes in between serve the kept values.
//! Nothing here changes state.

use super::AppState;
use crate::metrics::TASK_GAUGES_TTL;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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

/// The Prometheus text exposition. The task gauges are counted again when the kept ones are
/// older than [`TASK_GAUGES_TTL`] (one scrape counts; concurrent ones wait for it); when the
/// database does not answer, the last values are served and counting is tried again next time.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let refusals = state.strategies.refusals();
    let counted = metrics.reload_refusals.get();
    if refusals > counted {
        metrics.reload_refusals.inc_by(refusals - counted);
    }
    {
        let mut counted_at = metrics.tasks_counted_at.lock().await;
        let now = state.clock.now();
        let fresh = counted_at.is_some_and(|at| at <= now && now - at < TASK_GAUGES_TTL);
        if !fresh {
            match crate::store::live_task_counts(&state.db).await {
                Ok(counts) => {
                    metrics.tasks.reset();
                    for count in counts {
                        let queue = count.queue.as_deref().unwrap_or("");
                        let value = i64::try_from(count.count).unwrap_or(i64::MAX);
                        metrics
                            .tasks
                            .with_label_values(&[count.channel.as_str(), queue, count.state.as_str()])
                            .set(value);
                    }
                    *counted_at = Some(now);
                }
                Err(error) => tracing::warn!(%error, "metrics: cannot count tasks"),
            }
        }
    }
    match metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(error) => super::error::ApiError::internal(error).into_response(),
    }
}
