//! `/v1/strategies`: the running strategy versions, and reloading them from disk (admin only).
//! The reload itself is `ops::serve::reload_strategies`, shared with SIGHUP.

use super::AppState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ErrorBody};
use crate::ops::serve::{LoadedStrategy, reload_strategies};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(reload))
}

/// One running strategy.
#[derive(Debug, Serialize, ToSchema)]
pub struct StrategyOut {
    /// Its name.
    pub name: String,
    /// The file it was loaded from.
    pub file: String,
    /// SHA-256 of the file, hex.
    pub hash: String,
    /// Products it claims (empty: every product no other strategy claims).
    pub products: Vec<String>,
    /// Its compliance profile.
    pub policy: String,
    /// Number of rules.
    pub rules: usize,
}

/// A refused reload.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefusalOut {
    /// When.
    pub at: DateTime<Utc>,
    /// Every error, `file:line:col: message`.
    pub errors: Vec<String>,
}

/// The running strategies.
#[derive(Debug, Serialize, ToSchema)]
pub struct StrategiesOut {
    /// When the running set was loaded.
    pub loaded_at: DateTime<Utc>,
    /// The running set.
    pub strategies: Vec<StrategyOut>,
    /// The last refused reload, unless a reload succeeded since.
    pub last_refusal: Option<RefusalOut>,
}

/// One strategy of a successful reload.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadedOut {
    /// Its name.
    pub name: String,
    /// Its file.
    pub file: String,
    /// SHA-256 of the file, hex.
    pub hash: String,
    /// Whether this version had never been loaded before.
    pub new_version: bool,
}

/// The answer to a successful reload.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadOut {
    /// The set now running.
    pub strategies: Vec<ReloadedOut>,
}

/// The running strategy versions and the last refused reload.
#[utoipa::path(
    get,
    path = "/v1/strategies",
    tag = "strategies",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The running strategies", body = StrategiesOut),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
    )
)]
async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<StrategiesOut>, ApiError> {
    principal.require(&[Role::Admin])?;
    let set = state.strategies.current();
    let strategies = set
        .strategies
        .iter()
        .map(|strategy| StrategyOut {
            name: strategy.name.to_string(),
            file: strategy.file.clone(),
            hash: strategy.content_hash.clone(),
            products: strategy.products.clone(),
            policy: strategy.policy.name.to_string(),
            rules: strategy.rules.len(),
        })
        .collect();
    let last_refusal =
        state.strategies.last_refusal().map(|refusal| RefusalOut { at: refusal.at, errors: refusal.errors });
    Ok(Json(StrategiesOut { loaded_at: state.strategies.loaded_at(), strategies, last_refusal }))
}

/// Re-reads the strategies directory. Valid files replace the running set at once; invalid
/// ones are refused with every error and the running set is kept.
#[utoipa::path(
    post,
    path = "/v1/strategies/reload",
    tag = "strategies",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Loaded and running", body = ReloadOut),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 422, description = "Invalid files (code `strategies_invalid`, `details` as file:line:col: message); the running set is kept", body = ErrorBody),
    )
)]
async fn reload(State(state): State<AppState>, principal: Principal) -> Result<Json<ReloadOut>, ApiError> {
    principal.require(&[Role::Admin])?;
    let now = state.clock.now();
    let loaded = reload_strategies(&state.db, &state.settings, &state.strategies, now, &principal.actor()).await?;
    Ok(Json(ReloadOut { strategies: loaded.into_iter().map(reloaded).collect() }))
}

fn reloaded(strategy: LoadedStrategy) -> ReloadedOut {
    ReloadedOut { name: strategy.name, file: strategy.file, hash: strategy.hash, new_version: strategy.new_version }
}
