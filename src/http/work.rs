//! Agents' work queues and contact outcomes: `POST /v1/queues/{queue}/lease`,
//! `POST /v1/tasks/{id}/heartbeat | release | complete` and `POST /v1/tasks/{id}/attempts`.
//! Thin: the decisions (re-checks, lease rules, outcome effects) are in `ops::work`.

use super::AppState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::ops::work::{
    self, Actor, AttemptRecorded, AttemptReport, Lease, LeaseRenewed, Rules, TaskStateChanged, WorkError,
};
use crate::policy::Policy;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(lease))
        .routes(routes!(heartbeat))
        .routes(routes!(release))
        .routes(routes!(complete))
        .routes(routes!(attempts))
}

impl From<WorkError> for ApiError {
    fn from(error: WorkError) -> Self {
        match error {
            WorkError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            WorkError::NotYourLease(id) => ApiError::forbidden(format!("task {id} is not leased to you")),
            WorkError::Conflict(message) => ApiError::conflict(message, Vec::new()),
            WorkError::Invalid { field, message } => {
                ApiError::validation(format!("{field}: {message}"), vec![format!("{field}: {message}")])
            }
            WorkError::Store(error) => ApiError::store(error),
        }
    }
}

/// The calling agent's id: agent tokens carry one (admins act as `admin`).
fn agent_of(principal: &Principal) -> Result<String, ApiError> {
    principal.require(&[Role::Agent])?;
    Ok(principal.agent_id.clone().unwrap_or_else(|| format!("admin-{}", principal.token_id)))
}

/// The policy for tasks whose strategy is no longer loaded.
pub(super) fn fallback_policy(state: &AppState) -> Result<Policy, ApiError> {
    let config = &state.settings.config;
    Policy::builtin(&config.policy, &config.policies).map_err(|error| ApiError::internal(error.message))
}

/// What the work use cases decide with.
pub(super) fn rules<'a>(
    state: &AppState,
    strategies: &'a crate::strategy::StrategySet,
    fallback: &'a Policy,
) -> Rules<'a> {
    Rules { strategies, fallback, promise_max_days: state.settings.config.promise_max_days }
}

fn lease_ttl(state: &AppState) -> Result<chrono::Duration, ApiError> {
    state.settings.config.lease_duration().map_err(ApiError::internal)
}

/// Leases the best ready task of a queue to the calling agent: the highest priority, then the
/// oldest, inside its window and the policy's contact hours now in every zone of the borrower,
/// re-checked against the latest payments, promises, flags and caps. 204 when nothing can be
/// handed out now.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/lease",
    tag = "work",
    security(("bearer" = [])),
    params(("queue" = String, Path, description = "The human work queue")),
    responses(
        (status = 200, description = "A task is leased to you until `lease_expires_at`", body = Lease),
        (status = 204, description = "Nothing is ready in this queue now"),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an agent token", body = ErrorBody),
    )
)]
async fn lease(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(queue): ApiPath<String>,
) -> Result<Response, ApiError> {
    let agent = agent_of(&principal)?;
    let strategies = state.strategies.current();
    let fallback = fallback_policy(&state)?;
    let rules = rules(&state, &strategies, &fallback);
    // The semaphore is never closed: acquiring fails only if it were.
    let _slot = state.leasing.acquire().await.map_err(ApiError::internal)?;
    let now = state.clock.now();
    match work::lease_next(&state.db, &rules, &queue, &agent, now, lease_ttl(&state)?).await? {
        Some(lease) => {
            state.metrics.leases.inc();
            Ok(Json(lease).into_response())
        }
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// Extends your lease on a task by the lease time from now.
#[utoipa::path(
    post,
    path = "/v1/tasks/{id}/heartbeat",
    tag = "work",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Task id")),
    responses(
        (status = 200, description = "Renewed", body = LeaseRenewed),
        (status = 403, description = "Not your lease", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Not leased, or the lease expired", body = ErrorBody),
    )
)]
async fn heartbeat(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<LeaseRenewed>, ApiError> {
    let agent = agent_of(&principal)?;
    let strategies = state.strategies.current();
    let fallback = fallback_policy(&state)?;
    let rules = rules(&state, &strategies, &fallback);
    Ok(Json(work::heartbeat(&state.db, &rules, id, &agent, state.clock.now(), lease_ttl(&state)?).await?))
}

/// Gives a task back to its queue (state `ready`).
#[utoipa::path(
    post,
    path = "/v1/tasks/{id}/release",
    tag = "work",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Task id")),
    responses(
        (status = 200, description = "Back in its queue", body = TaskStateChanged),
        (status = 403, description = "Not your lease", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Not leased, or the lease expired", body = ErrorBody),
    )
)]
async fn release(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TaskStateChanged>, ApiError> {
    let agent = agent_of(&principal)?;
    Ok(Json(work::release(&state.db, id, &agent, state.clock.now()).await?))
}

/// Marks a leased task done.
#[utoipa::path(
    post,
    path = "/v1/tasks/{id}/complete",
    tag = "work",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Task id")),
    responses(
        (status = 200, description = "Done", body = TaskStateChanged),
        (status = 403, description = "Not your lease", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Not leased, or the lease expired", body = ErrorBody),
    )
)]
async fn complete(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TaskStateChanged>, ApiError> {
    let agent = agent_of(&principal)?;
    Ok(Json(work::complete(&state.db, id, &agent, state.clock.now()).await?))
}

/// Records one contact attempt on a task and its outcome: agents on tasks they hold, the
/// dialler on robot, SMS and e-mail tasks. `promise` needs `promise: {amount, due_on}` and opens
/// a promise (the account leaves the plan until the promised day); `callback` needs
/// `callback_at`; `do_not_call` and `dispute` set those flags; `wrong_number` marks the phone.
#[utoipa::path(
    post,
    path = "/v1/tasks/{id}/attempts",
    tag = "work",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Task id")),
    request_body = AttemptReport,
    responses(
        (status = 200, description = "Recorded (or already recorded: `duplicate`)", body = AttemptRecorded),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an agent holding the lease, nor the dialler on a non-human task", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 422, description = "A bad field, named", body = ErrorBody),
    )
)]
async fn attempts(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(report): ApiJson<AttemptReport>,
) -> Result<Json<AttemptRecorded>, ApiError> {
    principal.require(&[Role::Agent, Role::Dialler])?;
    let actor = match principal.role {
        Role::Dialler => Actor::Dialler,
        _ => Actor::Agent(principal.agent_id.clone().unwrap_or_else(|| format!("admin-{}", principal.token_id))),
    };
    let strategies = state.strategies.current();
    let fallback = fallback_policy(&state)?;
    let rules = rules(&state, &strategies, &fallback);
    Ok(Json(work::record_attempt(&state.db, &rules, id, &actor, report, state.clock.now()).await?))
}
