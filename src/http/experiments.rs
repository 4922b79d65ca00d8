//! `GET /v1/experiments` and `GET /v1/experiments/{name}`: the experiments read as of now
//! (admin, manager and ingest tokens). Thin: reads the clock and the strategies in force, calls
//! `ops::experiments`.

use super::AppState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ApiPath, ErrorBody};
use crate::experiment::ExperimentReading;
use axum::Json;
use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_experiments)).routes(routes!(get_experiment))
}

/// Every experiment — those the strategies in force define, then those only stored entries
/// still name — read as of now: per arm the accounts entered and matured and each metric at
/// the horizon with its 95 % interval; each challenger against the champion (and the champion
/// against the holdout) with an always-valid confidence sequence, a verdict and its
/// explanation; the sample-ratio check; a summary. See docs/experiments.md.
#[utoipa::path(
    get,
    path = "/v1/experiments",
    tag = "reports",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The readings", body = Vec<ExperimentReading>),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an admin, manager or ingest token", body = ErrorBody),
    )
)]
async fn list_experiments(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<ExperimentReading>>, ApiError> {
    principal.require(&[Role::Ingest, Role::Manager])?;
    let strategies = state.strategies.current();
    Ok(Json(crate::ops::experiments::read_all(&state.db, &strategies, state.clock.now()).await?))
}

/// One experiment read as of now (as in the list).
#[utoipa::path(
    get,
    path = "/v1/experiments/{name}",
    tag = "reports",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The experiment's name")),
    responses(
        (status = 200, description = "The reading", body = ExperimentReading),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an admin, manager or ingest token", body = ErrorBody),
        (status = 404, description = "No strategy or entry names this experiment", body = ErrorBody),
    )
)]
async fn get_experiment(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ExperimentReading>, ApiError> {
    principal.require(&[Role::Ingest, Role::Manager])?;
    let strategies = state.strategies.current();
    crate::ops::experiments::read_one(&state.db, &strategies, &name, state.clock.now())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no experiment is named `{name}`")))
}
