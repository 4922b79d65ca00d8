//! `POST /v1/payments`: payments from the servicing system, idempotent by reference. Thin: the
//! work (and the cancelling of an account's open tasks when it is paid in full) is in
//! `ops::ingest`.

use super::AppState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ApiJson, ErrorBody};
use crate::ops::ingest::{self, PaymentIn, PaymentsReport};
use axum::Json;
use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_payments))
}

/// Records payments. A reference already recorded with the same account, amount and time is a
/// duplicate and changes nothing. A new payment lowers its account's `amount_due` and
/// `balance`; an account whose `amount_due` reaches zero has its open tasks cancelled
/// (`paid_in_full`) in the same transaction.
#[utoipa::path(
    post,
    path = "/v1/payments",
    tag = "ingest",
    security(("bearer" = [])),
    request_body = Vec<PaymentIn>,
    responses(
        (status = 200, description = "Written", body = PaymentsReport),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an ingest or admin token", body = ErrorBody),
        (status = 409, description = "A reference already names another payment; nothing was written", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 422, description = "Invalid items or unknown accounts, each named `[i].field`; nothing was written", body = ErrorBody),
    )
)]
async fn post_payments(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(items): ApiJson<Vec<PaymentIn>>,
) -> Result<Json<PaymentsReport>, ApiError> {
    principal.require(&[Role::Ingest])?;
    let report = ingest::ingest_payments(&state.db, &items, state.clock.now(), &principal.actor()).await?;
    Ok(Json(report))
}
