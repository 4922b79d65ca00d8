//! The manager dashboard of `arrears serve`, at `/dashboard`: server-rendered pages (overview,
//! strategies and rules, experiments, contact timing, operations, a funder's share), their CSV files, the
//! sign-in page and the embedded assets. [`routes`] is merged into `http::router`.
//!
//! One module per concern: [`auth`] (who may see it, the session cookie), [`query`] (the
//! filters), [`cache`] (aggregates kept per page and filters), [`render`] (templates, chrome,
//! formatting), [`assets`] (embedded files), and one module per page, each of which reads its
//! aggregates through `store::dashboard` and `store::load_kpi_input` (never one query per row)
//! and hands the template strings that are already formatted. Pages only read: nothing here
//! writes to the store. No KPI is defined here (`crate::report` and `docs/kpis.md` define
//! them); what each number on a page is, is in `docs/dashboard.md`.

/// A page's aggregates for `$params` from the cache under `$key`, computed (when missing or
/// stale) by the page's `$compute(&state, &params, zone, now)`; answers `(cached, zone)`. One
/// copy of the filter check and the owned copies the cache's background refresh needs.
macro_rules! cached_page {
    ($state:expr, $params:expr, $key:expr, $compute:path) => {{
        let zone = super::portfolio_zone($state)?;
        let now = $state.clock.now();
        $params.period(zone, now)?;
        let (state_copy, params_copy) = ($state.clone(), $params.clone());
        let cached = $state
            .dashboard
            .page(&$key, now, move |now| {
                let (state, params) = (state_copy.clone(), params_copy.clone());
                async move { $compute(&state, &params, zone, now).await }
            })
            .await?;
        Ok((cached, zone))
    }};
}

pub mod assets;
pub mod auth;
pub mod cache;
pub mod experiments;
pub mod query;
pub mod render;

mod data;
mod funder;
mod operations;
mod overview;
mod strategies;
mod timing;

pub use cache::DashboardCache;

use crate::http::AppState;
use crate::report::FunderScope;
use crate::report::{KpiInput, Period};
use crate::store::StoreError;
use auth::Viewer;
use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use cache::Cached;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use query::{BadParameter, Params};

/// The dashboard's routes (HTML pages, CSV files, sign-in, assets), outside the OpenAPI
/// document.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(overview::page))
        .route("/dashboard/", get(|| async { auth::see_other("/dashboard") }))
        .route("/dashboard/roll", get(overview::roll_trend))
        .route("/dashboard/strategies", get(strategies::page))
        .route("/dashboard/experiments", get(experiments::page))
        .route("/dashboard/timing", get(timing::page))
        .route("/dashboard/operations", get(operations::page))
        .route("/dashboard/funder", get(funder::page))
        .route("/dashboard/data/{file}", get(data::file))
        .route("/dashboard/login", get(auth::login_form).post(auth::login))
        .route("/dashboard/logout", post(auth::logout))
        .route("/dashboard/assets/{*path}", get(assets::serve))
}

/// Why a page cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A query parameter is wrong: a 400 page naming it.
    #[error(transparent)]
    Bad(#[from] BadParameter),
    /// The store failed: a 500 (or 503 when busy) page.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration is unusable (the portfolio zone): a 500 page.
    #[error("{0}")]
    Config(String),
}

impl PageError {
    /// The error page for `viewer` on page `key`.
    pub fn response(self, viewer: &Viewer, key: &str) -> Response {
        match self {
            PageError::Bad(error) => {
                let chrome = viewer.chrome(key, "Bad request", "");
                let message = format!("The query parameter “{}” is wrong: {}", error.parameter, error.message);
                render::error_page(StatusCode::BAD_REQUEST, "Bad request", &message, &chrome, false)
            }
            PageError::Store(error) => auth::store_failure(error),
            PageError::Config(message) => {
                tracing::error!(%message, "dashboard: configuration");
                let chrome = viewer.chrome(key, "Error", "");
                render::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    "The server's configuration is unusable; see the server log.",
                    &chrome,
                    false,
                )
            }
        }
    }
}

/// How often `serve` computes the pages' default views again in the background (besides the
/// refresh a page's stale figures start when someone looks at it).
pub const WARM_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Computes every cached page's default view (the last 7 days, no filter; the roll trend ending
/// now) into the cache, waiting for the background refreshes it starts: what `serve` does when
/// it starts and then every [`WARM_EVERY`], so a manager's first look at a big book is answered
/// from the cache.
pub async fn warm(state: &AppState) -> Result<(), PageError> {
    let params = Params::default();
    overview::data(state, &params).await?;
    strategies::data(state, &params).await?;
    experiments::data(state, &params).await?;
    timing::data(state, &params).await?;
    operations::data(state, &params).await?;
    overview::trend_data(state, &params).await?;
    state.dashboard.settle().await;
    Ok(())
}

/// The background task of `serve` that runs [`warm`] at once and then every [`WARM_EVERY`]; a
/// failure is logged and tried again at the next turn.
pub fn spawn_warmer(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let started = std::time::Instant::now();
            match warm(&state).await {
                Ok(()) => tracing::info!(seconds = started.elapsed().as_secs_f64(), "dashboard: warmed"),
                Err(error) => tracing::warn!(%error, "dashboard: warming the cache failed"),
            }
            tokio::time::sleep(WARM_EVERY).await;
        }
    })
}

/// The portfolio time zone of `arrears.toml` (periods and days are read in it).
fn portfolio_zone(state: &AppState) -> Result<Tz, PageError> {
    crate::domain::parse_timezone(&state.settings.config.timezone)
        .map_err(|message| PageError::Config(format!("timezone: {message}")))
}

/// The KPI rows of a period (`store::load_kpi_input`), shared by the overview and the
/// strategies page through the cache, keyed by the period's texts.
async fn kpi_input(
    state: &AppState,
    params: &Params,
    zone: Tz,
    now: DateTime<Utc>,
) -> Result<Cached<(Period, KpiInput)>, PageError> {
    let period_only = Params { from: params.from.clone(), to: params.to.clone(), ..Params::default() };
    let key = period_only.cache_key("kpi-input");
    state
        .dashboard
        .fresh(&key, now, || async {
            let period = period_only.period(zone, now)?;
            let input = crate::store::load_kpi_input(&state.db, period, zone, &FunderScope::All).await?;
            Ok::<_, PageError>((period, input))
        })
        .await
}

/// The period form of a page at `action`, with the page's other filters kept as hidden fields.
fn period_view(params: &Params, period: Period, zone: Tz, action: &str) -> render::PeriodView {
    render::PeriodView {
        action: action.to_string(),
        from: params.from.clone().unwrap_or_default(),
        to: params.to.clone().unwrap_or_default(),
        text: format!(
            "{} – {} ({})",
            render::local_time(period.from, zone),
            render::local_time(period.to, zone),
            zone.name()
        ),
        hidden: params
            .others
            .iter()
            .map(|(name, value)| render::Hidden { name: name.clone(), value: value.clone() })
            .collect(),
    }
}

/// The API's KPI report of exactly this period (its bounds as RFC 3339 instants, so the link
/// answers the numbers shown even when the page's period is the default "last 7 days").
fn kpis_link(period: Period, by: &str) -> String {
    let from = period.from.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let to = period.to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    query::link("/v1/reports/kpis", &[("from", &from), ("to", &to), ("by", by)])
}

/// The period's bounds as RFC 3339 query pairs for the dashboard's own links.
fn period_pairs(period: Period) -> (String, String) {
    (
        period.from.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        period.to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}
