//! `GET /v1/deliveries` and `POST /v1/deliveries/replay` (admin): the webhook outbox and its
//! dead letters. Thin: the work is in `ops::deliveries`.

use super::AppState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ApiJson, ErrorBody};
use crate::ops::deliveries::{self, DeliveriesError, DeliveryOut, ReplayReport, ReplayRequest};
use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(replay))
}

/// `?state=&limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// `pending`, `delivered`, `dead` (default), `disabled` or `void`.
    state: Option<String>,
    /// At most this many (default 100, at most 10,000).
    limit: Option<u64>,
}

impl From<DeliveriesError> for ApiError {
    fn from(error: DeliveriesError) -> Self {
        match error {
            DeliveriesError::UnknownState(_) => ApiError::validation(error.to_string(), vec![error.to_string()]),
            DeliveriesError::Store(error) => ApiError::store(error),
        }
    }
}

/// Deliveries in a state, oldest first: by default the dead letters; `void` ones carry the
/// reason they were never sent (`void_reason`).
#[utoipa::path(
    get,
    path = "/v1/deliveries",
    tag = "deliveries",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "The deliveries", body = Vec<DeliveryOut>),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 422, description = "An unknown state", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DeliveryOut>>, ApiError> {
    principal.require(&[Role::Admin])?;
    let Query(query) = query
        .map_err(|rejection| ApiError::new(axum::http::StatusCode::BAD_REQUEST, "bad_query", rejection.body_text()))?;
    let limit = query.limit.unwrap_or(100).min(10_000);
    let wanted = query.state.as_deref().unwrap_or("dead");
    Ok(Json(deliveries::list_deliveries(&state.db, wanted, limit).await?))
}

/// Puts dead letters back in the queue, due now with a fresh retry schedule, under their own
/// `webhook-id`: `{"ids": [..]}`, or `{}` for every dead letter. Each is checked again when
/// its turn comes: one about a task no longer sendable is voided, never sent.
#[utoipa::path(
    post,
    path = "/v1/deliveries/replay",
    tag = "deliveries",
    security(("bearer" = [])),
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "Requeued", body = ReplayReport),
        (status = 403, description = "Not an admin token", body = ErrorBody),
    )
)]
async fn replay(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> Result<Json<ReplayReport>, ApiError> {
    principal.require(&[Role::Admin])?;
    Ok(Json(deliveries::replay(&state.db, &request, state.clock.now()).await?))
}
