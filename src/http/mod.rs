//! The HTTP API of `arrears serve` (axum): [`router`] builds it from an [`AppState`].
//!
//! One module per resource, each exposing `routes() -> OpenApiRouter<AppState>` whose handlers
//! are annotated for the OpenAPI document; to add a resource, write its module and merge its
//! routes in [`router`]. Handlers are thin: they authenticate ([`auth::Principal`]), parse
//! ([`error::ApiJson`], [`error::ApiPath`]), call `ops` or `store`, and answer JSON or an
//! [`error::ApiError`]. They read the time only through `state.clock`. No business rule lives
//! here.

pub mod accounts;
pub mod auth;
pub mod deliveries;
pub mod error;
pub mod events;
pub mod experiments;
pub mod health;
pub mod inbound;
pub mod metrics;
pub mod payments;
pub mod reports;
pub mod strategies;
pub mod work;

use crate::clock::Clock;
use crate::ops::Settings;
use crate::ops::serve::LiveStrategies;
use crate::strategy::StrategySet;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

/// The largest request body accepted (a batch of accounts or payments).
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// What every handler can reach. Cheap to clone: everything is shared.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database pool.
    pub db: DatabaseConnection,
    /// Paths and configuration.
    pub settings: Arc<Settings>,
    /// The strategy set in force, reloadable.
    pub strategies: Arc<LiveStrategies>,
    /// The only source of "now" for handlers and jobs.
    pub clock: Clock,
    /// The Prometheus registry.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Tokens proven in the last few seconds.
    pub tokens: Arc<crate::ops::tokens::TokenCache>,
    /// The dashboard's aggregates, kept a short while per page and filters.
    pub dashboard: Arc<crate::dashboard::DashboardCache>,
    /// Lease requests worked on at once ([`crate::config::Config::lease_slots`]); the others
    /// wait here, in order, instead of in the store.
    pub leasing: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// A state around a database, settings, a live strategy set and a clock.
    pub fn new(db: DatabaseConnection, settings: Settings, strategies: LiveStrategies, clock: Clock) -> AppState {
        let leasing = Arc::new(tokio::sync::Semaphore::new(settings.config.lease_slots()));
        AppState {
            db,
            settings: Arc::new(settings),
            strategies: Arc::new(strategies),
            clock,
            // Registering fixed, distinct metric names in a fresh registry cannot fail.
            metrics: Arc::new(
                crate::metrics::Metrics::new().unwrap_or_else(|error| panic!("metrics registry: {error}")),
            ),
            tokens: Arc::default(),
            dashboard: Arc::default(),
            leasing,
        }
    }

    /// The state for a strategy set loaded at the clock's now.
    pub fn with_strategies(db: DatabaseConnection, settings: Settings, set: StrategySet, clock: Clock) -> AppState {
        let now = clock.now();
        AppState::new(db, settings, LiveStrategies::new(set, now), clock)
    }
}

/// The OpenAPI document's fixed parts; paths come from the resource modules.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "arrears",
        description = "Post-loan collections orchestration engine. Authenticate with `Authorization: Bearer <token>` \
                       (create one with `arrears token create --role ...`). Errors are \
                       `{\"error\": {\"code\", \"message\", \"details\"}}`."
    ),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorBody)),
    tags(
        (name = "ingest", description = "Accounts and payments from the servicing system"),
        (name = "accounts", description = "Reading accounts"),
        (name = "strategies", description = "The running strategies and their reload"),
        (name = "deliveries", description = "The webhook outbox and its dead letters"),
        (name = "work", description = "Agents' work queues and contact outcomes"),
        (name = "reports", description = "KPIs for managers"),
        (name = "operations", description = "Health"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the endpoints refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("arr_<64 hex digits>".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The API's routes with their OpenAPI description, before the state is attached.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::routes())
        .merge(strategies::routes())
        .merge(accounts::routes())
        .merge(payments::routes())
        .merge(events::routes())
        .merge(work::routes())
        .merge(inbound::routes())
        .merge(deliveries::routes())
        .merge(reports::routes())
        .merge(experiments::routes())
}

/// The OpenAPI document of the API (what `GET /openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

/// The whole HTTP application: the API, `/openapi.json`, `/metrics`, the manager dashboard
/// (`/dashboard`, HTML, outside the OpenAPI document), JSON 404 and 405 answers, request
/// metrics and the body size limit.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api_routes().split_for_parts();
    let openapi = Arc::new(openapi);
    api.route("/openapi.json", get(move || async move { Json(openapi.as_ref().clone()) }))
        .route("/metrics", get(metrics::scrape))
        .merge(crate::dashboard::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
